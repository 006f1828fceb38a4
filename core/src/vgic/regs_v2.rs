//! vGICv2 distributor: its register table for [`super::mmio`] and the handlers of its
//! non-per-interrupt registers.
//!
//! Spec: IHI 0048B 4.3 (distributor register descriptions) for a GIC without the Security
//! Extensions (GICD_TYPER.SecurityExtn = 0, no GICD_NSACR). Compared against Linux KVM
//! `vgic-mmio-v2.c` and QEMU `arm_gic.c`.
//!
//! Choices where the spec leaves room (each as QEMU's GICv2 makes it):
//! * GICD_CTLR: a GICv2 without the Security Extensions still implements interrupt grouping,
//!   and its GICD_CTLR has the layout with two enables: EnableGrp0 (bit 0) and EnableGrp1
//!   (bit 1), both read/write (QEMU `gic_dist_writeb`: `GICD_CTLR_EN_GRP0 |
//!   GICD_CTLR_EN_GRP1` when the GIC has groups). A guest that writes only bit 0 (Linux)
//!   enables group 0, where all interrupts are at reset.
//! * SGI enable bits are RAO/WI (whether they are programmable is IMPLEMENTATION DEFINED;
//!   QEMU resets them to 1 and ignores writes). The model resets them to 0, so every path that
//!   makes a vGICv2 SGI pending here (GICD_SGIR, GICD_SPENDSGIR) also sets its enable.
//! * PPI Int_config fields are programmable (IMPLEMENTATION DEFINED for PPIs; QEMU allows it,
//!   KVM does not). SGIs are read-only edge.
//! * GICD_SGIR TargetListFilter 0b11 (reserved) is ignored (KVM; QEMU sends to all).
//!
//! Invariants:
//! * Banked registers (SGI/PPI bits of IGROUPR0, ISENABLER0, ..., IPRIORITYR0-7,
//!   ITARGETSR0-7, ICFGR0-1, CPENDSGIR/SPENDSGIR) act on the accessing vCPU's interrupts.
//! * CPU interface n is vCPU n; only the first eight vCPUs have one (GICv2 has 8 CPU
//!   interfaces): target and source bits of others are RAZ/WI.
//!
//! Known limit: GICD_CPENDSGIR clears sources in the model only; a source already loaded in a
//! list register stays pending there until the vCPU exits (the model's `pending_request`
//! covers whole interrupts, not one SGI source).

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

use super::Vgic;
use super::irq::{IntId, VcpuId};
use super::mmio::IrqField as F;
use super::mmio::{Ctx, MmioOutcome, RegKind, RegionDesc, Widths, width_mask};

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u32,
        /// GICD_CTLR of a GICv2 with interrupt grouping (IHI 0048B 4.3.1).
        pub GICD_CTLR [
            EnableGrp0 OFFSET(0) NUMBITS(1) [],
            EnableGrp1 OFFSET(1) NUMBITS(1) []
        ],
        /// GICD_TYPER (IHI 0048B 4.3.2).
        pub GICD_TYPER [
            ITLinesNumber OFFSET(0) NUMBITS(5) [],
            CPUNumber OFFSET(5) NUMBITS(3) [],
            SecurityExtn OFFSET(10) NUMBITS(1) []
        ],
        /// GICD_SGIR (IHI 0048B 4.3.16).
        pub GICD_SGIR [
            SGIINTID OFFSET(0) NUMBITS(4) [],
            NSATT OFFSET(15) NUMBITS(1) [],
            CPUTargetList OFFSET(16) NUMBITS(8) [],
            TargetListFilter OFFSET(24) NUMBITS(2) [
                /// Forward to the CPU interfaces in CPUTargetList.
                List = 0,
                /// Forward to every CPU interface except the requester's.
                AllButSelf = 1,
                /// Forward only to the requester's CPU interface.
                SelfOnly = 2
            ]
        ]
    }
}

use fields::{GICD_CTLR, GICD_SGIR, GICD_TYPER};

/// CPU interfaces a GICv2 can have.
pub const V2_MAX_CPUS: usize = 8;

/// GICD CoreSight ID registers at 0xfd0: PIDR4-7, PIDR0-3, CIDR0-3, as QEMU's `gic_id_gicv2`
/// (an Arm GIC-400). PIDR2 = 0x2b: ArchRev (bits 7:4) = 2 (GICv2), JEDEC = 1, DES_1 = 3.
pub const GICD_V2_ID_REGS: [u8; 12] = [
    0x04, 0x00, 0x00, 0x00, 0x90, 0xb4, 0x2b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];

const W32: Widths = Widths::W32;
const W8_32: Widths = Widths::W8.or(Widths::W32);

const GICD_IDS: RegKind = RegKind::IdRegs(&GICD_V2_ID_REGS);

/// The vGICv2 distributor register map (IHI 0048B 4.1), sorted by offset.
pub const GICD_V2_REGIONS: &[RegionDesc] = &[
    RegionDesc::reg(0x000, 4, W32, RegKind::GicdCtlrV2, "GICD_CTLR"),
    RegionDesc::reg(0x004, 4, W32, RegKind::GicdTyperV2, "GICD_TYPER"),
    RegionDesc::reg(0x008, 4, W32, RegKind::Iidr, "GICD_IIDR"),
    RegionDesc::field(0x080, 0x80, W32, F::Group, "GICD_IGROUPR"),
    RegionDesc::field(0x100, 0x80, W32, F::SetEnableSgiRao, "GICD_ISENABLER"),
    RegionDesc::field(0x180, 0x80, W32, F::ClearEnableSgiRao, "GICD_ICENABLER"),
    RegionDesc::field(0x200, 0x80, W32, F::SetPendingSgiWi, "GICD_ISPENDR"),
    RegionDesc::field(0x280, 0x80, W32, F::ClearPendingSgiWi, "GICD_ICPENDR"),
    RegionDesc::field(0x300, 0x80, W32, F::SetActive, "GICD_ISACTIVER"),
    RegionDesc::field(0x380, 0x80, W32, F::ClearActive, "GICD_ICACTIVER"),
    RegionDesc::field(0x400, 0x400, W8_32, F::Priority, "GICD_IPRIORITYR"),
    RegionDesc::field(0x800, 0x400, W8_32, F::Targets, "GICD_ITARGETSR"),
    RegionDesc::field(0xc00, 0x100, W32, F::Config, "GICD_ICFGR"),
    RegionDesc::reg(0xf00, 4, W32, RegKind::GicdSgir, "GICD_SGIR"),
    RegionDesc::reg(0xf10, 0x10, W8_32, RegKind::GicdCpendsgir, "GICD_CPENDSGIR"),
    RegionDesc::reg(0xf20, 0x10, W8_32, RegKind::GicdSpendsgir, "GICD_SPENDSGIR"),
    RegionDesc::reg(0xfd0, 0x30, W32, GICD_IDS, "GICD_ID"),
];

impl Vgic {
    /// A guest access to the vGICv2 distributor by vCPU `vcpu` (whose banked registers it
    /// sees): `offset` from the distributor base, `width` in bytes, `write` the value stored or
    /// `None` for a load.
    pub fn gicd_v2_access(
        &mut self,
        vcpu: VcpuId,
        offset: u64,
        width: u8,
        write: Option<u64>,
    ) -> MmioOutcome {
        let ctx = Ctx {
            accessor: vcpu,
            owner: vcpu,
        };
        self.mmio_access(GICD_V2_REGIONS, ctx, offset, width, write)
    }

    /// The mask of implemented CPU interfaces (bit n = vCPU n, at most eight).
    pub(super) fn v2_cpu_interfaces(&self) -> u8 {
        let n = self.vcpu_count().min(V2_MAX_CPUS) as u32;
        ((1u16 << n) - 1) as u8
    }

    /// vCPU `vcpu`'s CPU interface bit, or 0 if it has none.
    pub(super) fn v2_cpu_bit(&self, vcpu: VcpuId) -> u8 {
        match u32::try_from(vcpu) {
            Ok(n) => 1u8.checked_shl(n).unwrap_or(0) & self.v2_cpu_interfaces(),
            Err(_) => 0,
        }
    }

    /// GICD_CTLR: "EnableGrp0, bit [0]: global enable for forwarding pending Group 0
    /// interrupts"; "EnableGrp1, bit [1]: ... Group 1 interrupts"; both read/write.
    pub(super) fn gicd_ctlr_v2(&mut self, write: Option<u64>) -> u64 {
        if let Some(v) = write {
            let v = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(v as u32);
            self.set_group_enables(
                v.is_set(GICD_CTLR::EnableGrp0),
                v.is_set(GICD_CTLR::EnableGrp1),
            );
        }
        let ctlr = GICD_CTLR::EnableGrp0.val(self.enable_grp0.into())
            + GICD_CTLR::EnableGrp1.val(self.enable_grp1.into());
        u64::from(ctlr.value)
    }

    /// GICD_TYPER (read-only): "ITLinesNumber: the maximum number of interrupts is
    /// 32(N+1)"; "CPUNumber: the number of implemented CPU interfaces minus one";
    /// SecurityExtn = 0; LSPI = 0.
    pub(super) fn gicd_typer_v2(&self) -> u64 {
        let cpus = self.vcpu_count().clamp(1, V2_MAX_CPUS) as u32;
        let typer = GICD_TYPER::ITLinesNumber.val(self.it_lines_number())
            + GICD_TYPER::CPUNumber.val(cpus - 1)
            + GICD_TYPER::SecurityExtn::CLEAR;
        u64::from(typer.value)
    }

    /// GICD_SGIR (write-only): "TargetListFilter: 0b00 forward to the CPU interfaces
    /// specified in CPUTargetList; 0b01 forward to all CPU interfaces except the requesting
    /// one; 0b10 forward only to the requesting one; 0b11 reserved" (ignored). NSATT is
    /// ignored (no Security Extensions). The requester is the SGI's source.
    pub(super) fn gicd_sgir(&mut self, vcpu: VcpuId, value: u64) {
        let own = self.v2_cpu_bit(vcpu);
        if own == 0 {
            return;
        }
        let sgir = LocalRegisterCopy::<u32, GICD_SGIR::Register>::new(value as u32);
        let targets = match sgir.read_as_enum(GICD_SGIR::TargetListFilter) {
            Some(GICD_SGIR::TargetListFilter::Value::List) => {
                sgir.read(GICD_SGIR::CPUTargetList) as u8 & self.v2_cpu_interfaces()
            }
            Some(GICD_SGIR::TargetListFilter::Value::AllButSelf) => self.v2_cpu_interfaces() & !own,
            Some(GICD_SGIR::TargetListFilter::Value::SelfOnly) => own,
            None => return,
        };
        let sgi = sgir.read(GICD_SGIR::SGIINTID);
        for t in 0..V2_MAX_CPUS {
            if targets & self.v2_cpu_bit(t) != 0 {
                // SGI enables are RAO/WI (see the module comment).
                self.update(t, IntId(sgi), |i| i.enabled = true);
            }
        }
        self.send_sgi(vcpu, sgi, u64::from(targets), true);
    }

    /// `GICD_CPENDSGIR<n>` (`set == false`) / `GICD_SPENDSGIR<n>` (`set == true`), banked: byte
    /// `b` of register `n` is SGI `4n + b` and bit `k` of it is "SGI pending from CPU
    /// interface k"; reads return the pending sources; writing 1 clears (CPENDSGIR) or sets
    /// (SPENDSGIR) that source's pending state, 0 has no effect.
    pub(super) fn gicd_sgi_pending(
        &mut self,
        ctx: Ctx,
        reg_off: u32,
        width: u8,
        set: bool,
        write: Option<u64>,
    ) -> u64 {
        let byte_mask = width_mask(1);
        let sources = self.v2_cpu_interfaces();
        let mut value = 0;
        for b in 0..u32::from(width) {
            let id = IntId(reg_off + b);
            let shift = b * u8::BITS;
            match write {
                Some(v) => {
                    let bits = ((v >> shift) & byte_mask) as u8 & sources;
                    if bits == 0 {
                        continue;
                    }
                    self.update(ctx.owner, id, |i| {
                        if set {
                            i.sgi_sources |= bits;
                            // SGI enables are RAO/WI (see the module comment).
                            i.enabled = true;
                        } else {
                            i.sgi_sources &= !bits;
                        }
                    });
                }
                None => {
                    let pending = self.irq(ctx.owner, id).map_or(0, |i| i.sgi_sources);
                    value |= u64::from(pending) << shift;
                }
            }
        }
        value
    }
}

#[cfg(test)]
mod tests;
