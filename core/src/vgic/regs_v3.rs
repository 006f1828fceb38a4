//! vGICv3 register blocks: the distributor (GICD) and the redistributor frames (GICR), as
//! register tables for [`super::mmio`] and the handlers of their non-per-interrupt registers.
//!
//! Spec: IHI 0069H 12.8/12.9 (distributor register map and descriptions), 12.10/12.11
//! (redistributor), 12.1 (access sizes). Compared against Linux KVM `vgic-mmio-v3.c` and QEMU
//! `arm_gicv3_dist.c` / `arm_gicv3_redist.c`.
//!
//! The distributor exitless emulates has:
//! * a single security state: GICD_CTLR.DS is RAO/WI, GICD_TYPER.SecurityExtn is 0, and
//!   IGRPMODR and NSACR are RAZ/WI;
//! * affinity routing always on: GICD_CTLR.ARE is RAO/WI, so the distributor's copies of the
//!   banked registers of INTIDs 0-31 (IGROUPR0, ISENABLER0, ..., IPRIORITYR0-7, ICFGR0-1,
//!   IROUTER0-31) and ITARGETSR, SGIR, CPENDSGIR, SPENDSGIR are RAZ/WI; SGIs and PPIs are
//!   programmed through each vCPU's redistributor;
//! * Aff3 routing (GICD_TYPER.A3V = 1; GICD_IROUTER keeps Aff3) and 1-of-N routing
//!   (GICD_TYPER.No1N = 0; IRM = 1 routes to [`Route::Any`]);
//! * LPIs only with an ITS ([`super::its`]): then GICD_TYPER.LPIS = 1 with 16 ID bits,
//!   GICR_TYPER.PLPIS = 1, and GICR_CTLR.EnableLPIs, GICR_PROPBASER and GICR_PENDBASER are the
//!   ITS's ([`Vgic::gicr_access_lpi`]). Without one, GICD_TYPER.LPIS = 0, PLPIS = 0, GICR_CTLR
//!   is RAZ/WI and PROPBASER/PENDBASER are stored (RES0 bits masked) and unused. VLPIS and
//!   DirectLPI are always 0 (the direct LPI registers are RAZ/WI).
//!
//! Invariants:
//! * Redistributor frame n (offset `n * 0x20000`: RD_base, then SGI_base at +0x10000) belongs
//!   to vCPU n, and every access to it acts on vCPU n's banked state, whoever makes it.
//!   GICR_TYPER describes that vCPU; its Last bit is set only on the last frame.
//! * Offsets beyond the last frame, and every failed check, are RAZ/WI and reported.

use core::mem::size_of;

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

use super::Vgic;
use super::irq::{IntId, Route, VcpuId};
use super::mmio::IrqField as F;
use super::mmio::{
    Ctx, Decoded, GROUP_UNMAPPED, MmioOutcome, RegKind, RegionDesc, Widths, extract_bytes,
    update_bytes,
};

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u32,
        /// GICD_CTLR with GICD_CTLR.DS = 1 (IHI 0069H 12.9).
        pub GICD_CTLR [
            EnableGrp0 OFFSET(0) NUMBITS(1) [],
            EnableGrp1 OFFSET(1) NUMBITS(1) [],
            ARE OFFSET(4) NUMBITS(1) [],
            DS OFFSET(6) NUMBITS(1) [],
            E1NWF OFFSET(7) NUMBITS(1) [],
            RWP OFFSET(31) NUMBITS(1) []
        ],
        /// GICR_WAKER (IHI 0069H 12.11).
        pub GICR_WAKER [
            ProcessorSleep OFFSET(1) NUMBITS(1) [],
            ChildrenAsleep OFFSET(2) NUMBITS(1) []
        ]
    }

    register_bitfields! {u64,
        /// `GICD_IROUTER<n>` (IHI 0069H 12.9).
        pub GICD_IROUTER [
            Aff0 OFFSET(0) NUMBITS(8) [],
            Aff1 OFFSET(8) NUMBITS(8) [],
            Aff2 OFFSET(16) NUMBITS(8) [],
            IRM OFFSET(31) NUMBITS(1) [],
            Aff3 OFFSET(32) NUMBITS(8) []
        ],
        /// GICR_PROPBASER (IHI 0069H 12.11).
        pub GICR_PROPBASER [
            IDbits OFFSET(0) NUMBITS(5) [],
            InnerCache OFFSET(7) NUMBITS(3) [],
            Shareability OFFSET(10) NUMBITS(2) [],
            Physical_Address OFFSET(12) NUMBITS(40) [],
            OuterCache OFFSET(56) NUMBITS(3) []
        ],
        /// GICR_PENDBASER (IHI 0069H 12.11).
        pub GICR_PENDBASER [
            InnerCache OFFSET(7) NUMBITS(3) [],
            Shareability OFFSET(10) NUMBITS(2) [],
            Physical_Address OFFSET(16) NUMBITS(36) [],
            OuterCache OFFSET(56) NUMBITS(3) [],
            PTZ OFFSET(62) NUMBITS(1) []
        ]
    }
}

use crate::gic::{GICD_TYPER, GICR_TYPER};
use fields::{GICD_CTLR, GICD_IROUTER, GICR_PENDBASER, GICR_PROPBASER, GICR_WAKER};

/// Size of one redistributor frame: RD_base and SGI_base, 64 KiB each.
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// Offset of SGI_base in a redistributor frame.
pub const GICR_SGI_BASE: u32 = 0x1_0000;

/// GICD_TYPER.IDbits: interrupt ID bits minus one (10 bits: INTIDs up to 1023, no LPIs).
const IDBITS_SPIS: u32 = 10 - 1;

/// The bits of a field, in place (for masks of the writable bits of a register).
const fn bits64<R: tock_registers::RegisterLongName>(
    f: tock_registers::fields::Field<u64, R>,
) -> u64 {
    f.mask << f.shift
}

/// GICD_IROUTER bits that hold state: Aff3..Aff0 and IRM; the rest is RES0.
const IROUTER_WRITABLE: u64 = bits64(GICD_IROUTER::Aff0)
    | bits64(GICD_IROUTER::Aff1)
    | bits64(GICD_IROUTER::Aff2)
    | bits64(GICD_IROUTER::IRM)
    | bits64(GICD_IROUTER::Aff3);
/// The affinity part of GICD_IROUTER (the layout of [`Route::Affinity`]).
const IROUTER_AFFINITY: u64 = IROUTER_WRITABLE & !bits64(GICD_IROUTER::IRM);
/// GICR_PROPBASER bits that are not RES0.
const PROPBASER_WRITABLE: u64 = bits64(GICR_PROPBASER::IDbits)
    | bits64(GICR_PROPBASER::InnerCache)
    | bits64(GICR_PROPBASER::Shareability)
    | bits64(GICR_PROPBASER::Physical_Address)
    | bits64(GICR_PROPBASER::OuterCache);
/// GICR_PENDBASER bits that are not RES0 (PTZ is stored but reads as 0).
const PENDBASER_WRITABLE: u64 = bits64(GICR_PENDBASER::InnerCache)
    | bits64(GICR_PENDBASER::Shareability)
    | bits64(GICR_PENDBASER::Physical_Address)
    | bits64(GICR_PENDBASER::OuterCache)
    | bits64(GICR_PENDBASER::PTZ);

/// GICD CoreSight ID registers at 0xffd0: PIDR4-7, PIDR0-3, CIDR0-3, as QEMU's `gicv3_idreg`
/// (an Arm GIC-500 distributor, PIDR0 = 0x92). PIDR2 = 0x3b: ArchRev (bits 7:4) = 3 (GICv3),
/// JEDEC (bit 3) = 1, DES_1 = 3.
pub const GICD_V3_ID_REGS: [u8; 12] = [
    0x44, 0x00, 0x00, 0x00, 0x92, 0xb4, 0x3b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];
/// GICR CoreSight ID registers: as the distributor's, PIDR0 = 0x93 (a redistributor).
pub const GICR_ID_REGS: [u8; 12] = [
    0x44, 0x00, 0x00, 0x00, 0x93, 0xb4, 0x3b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];

const W32: Widths = Widths::W32;
const W8_32: Widths = Widths::W8.or(Widths::W32);
const W32_64: Widths = Widths::W32.or(Widths::W64);
const RAZ: RegKind = RegKind::RazWi;
const SGI: u32 = GICR_SGI_BASE;

const GICD_IDS: RegKind = RegKind::IdRegs(&GICD_V3_ID_REGS);
const GICR_IDS: RegKind = RegKind::IdRegs(&GICR_ID_REGS);

/// The vGICv3 distributor register map (IHI 0069H 12.8), sorted by offset.
pub const GICD_V3_REGIONS: &[RegionDesc] = &[
    RegionDesc::reg(0x0000, 4, W32, RegKind::GicdCtlrV3, "GICD_CTLR"),
    RegionDesc::reg(0x0004, 4, W32, RegKind::GicdTyperV3, "GICD_TYPER"),
    RegionDesc::reg(0x0008, 4, W32, RegKind::Iidr, "GICD_IIDR"),
    RegionDesc::reg(0x000c, 4, W32, RAZ, "GICD_TYPER2"),
    RegionDesc::reg(0x0010, 4, W32, RAZ, "GICD_STATUSR"),
    // Message-based SPIs are not implemented (GICD_TYPER.MBIS = 0).
    RegionDesc::reg(0x0040, 4, W32, RAZ, "GICD_SETSPI_NSR"),
    RegionDesc::reg(0x0048, 4, W32, RAZ, "GICD_CLRSPI_NSR"),
    RegionDesc::reg(0x0050, 4, W32, RAZ, "GICD_SETSPI_SR"),
    RegionDesc::reg(0x0058, 4, W32, RAZ, "GICD_CLRSPI_SR"),
    // With ARE = 1 the registers of INTIDs 0-31 are RAZ/WI here: they live in the GICRs.
    RegionDesc::reg(0x0080, 4, W32, RAZ, "GICD_IGROUPR0"),
    RegionDesc::field(0x0084, 0x7c, W32, F::Group, "GICD_IGROUPR"),
    RegionDesc::reg(0x0100, 4, W32, RAZ, "GICD_ISENABLER0"),
    RegionDesc::field(0x0104, 0x7c, W32, F::SetEnable, "GICD_ISENABLER"),
    RegionDesc::reg(0x0180, 4, W32, RAZ, "GICD_ICENABLER0"),
    RegionDesc::field(0x0184, 0x7c, W32, F::ClearEnable, "GICD_ICENABLER"),
    RegionDesc::reg(0x0200, 4, W32, RAZ, "GICD_ISPENDR0"),
    RegionDesc::field(0x0204, 0x7c, W32, F::SetPending, "GICD_ISPENDR"),
    RegionDesc::reg(0x0280, 4, W32, RAZ, "GICD_ICPENDR0"),
    RegionDesc::field(0x0284, 0x7c, W32, F::ClearPending, "GICD_ICPENDR"),
    RegionDesc::reg(0x0300, 4, W32, RAZ, "GICD_ISACTIVER0"),
    RegionDesc::field(0x0304, 0x7c, W32, F::SetActive, "GICD_ISACTIVER"),
    RegionDesc::reg(0x0380, 4, W32, RAZ, "GICD_ICACTIVER0"),
    RegionDesc::field(0x0384, 0x7c, W32, F::ClearActive, "GICD_ICACTIVER"),
    RegionDesc::reg(0x0400, 0x20, W8_32, RAZ, "GICD_IPRIORITYR0-7"),
    RegionDesc::field(0x0420, 0x3e0, W8_32, F::Priority, "GICD_IPRIORITYR"),
    // With affinity routing enabled GICD_ITARGETSR<n> is RES0: RAZ/WI.
    RegionDesc::reg(0x0800, 0x400, W8_32, RAZ, "GICD_ITARGETSR"),
    RegionDesc::reg(0x0c00, 8, W32, RAZ, "GICD_ICFGR0-1"),
    RegionDesc::field(0x0c08, 0xf8, W32, F::Config, "GICD_ICFGR"),
    // With DS = 1, GICD_IGRPMODR and GICD_NSACR are RAZ/WI.
    RegionDesc::reg(0x0d00, 0x80, W32, RAZ, "GICD_IGRPMODR"),
    RegionDesc::reg(0x0e00, 0x100, W32, RAZ, "GICD_NSACR"),
    // With affinity routing enabled GICD_SGIR, GICD_CPENDSGIR and GICD_SPENDSGIR are RES0.
    RegionDesc::reg(0x0f00, 4, W32, RAZ, "GICD_SGIR"),
    RegionDesc::reg(0x0f10, 0x10, W8_32, RAZ, "GICD_CPENDSGIR"),
    RegionDesc::reg(0x0f20, 0x10, W8_32, RAZ, "GICD_SPENDSGIR"),
    RegionDesc::reg(0x6000, 0x100, W32_64, RAZ, "GICD_IROUTER0-31"),
    RegionDesc::router(0x6100, 0x1ee0, "GICD_IROUTER"),
    RegionDesc::reg(0xffd0, 0x30, W32, GICD_IDS, "GICD_ID"),
];

/// One redistributor frame's register map (IHI 0069H 12.10): RD_base at 0,
/// SGI_base at [`GICR_SGI_BASE`]; sorted by offset.
pub const GICR_REGIONS: &[RegionDesc] = &[
    // GICR_CTLR: EnableLPIs is RES0 with GICR_TYPER.PLPIS = 0, RWP/UWP read 0, DPG* are
    // RAZ/WI with GICR_TYPER.DPGS = 0: the whole register is RAZ/WI.
    RegionDesc::reg(0x0000, 4, W32, RAZ, "GICR_CTLR"),
    RegionDesc::reg(0x0004, 4, W32, RegKind::Iidr, "GICR_IIDR"),
    RegionDesc::reg(0x0008, 8, W32_64, RegKind::GicrTyper, "GICR_TYPER"),
    RegionDesc::reg(0x0010, 4, W32, RAZ, "GICR_STATUSR"),
    RegionDesc::reg(0x0014, 4, W32, RegKind::GicrWaker, "GICR_WAKER"),
    // Direct LPI registers: RAZ/WI with GICR_TYPER.DirectLPI = 0.
    RegionDesc::reg(0x0040, 8, W32_64, RAZ, "GICR_SETLPIR"),
    RegionDesc::reg(0x0048, 8, W32_64, RAZ, "GICR_CLRLPIR"),
    RegionDesc::reg(0x0070, 8, W32_64, RegKind::GicrPropbaser, "GICR_PROPBASER"),
    RegionDesc::reg(0x0078, 8, W32_64, RegKind::GicrPendbaser, "GICR_PENDBASER"),
    RegionDesc::reg(0x00a0, 8, W32_64, RAZ, "GICR_INVLPIR"),
    RegionDesc::reg(0x00b0, 8, W32_64, RAZ, "GICR_INVALLR"),
    // GICR_SYNCR.Busy reads 0: nothing is ever in flight.
    RegionDesc::reg(0x00c0, 4, W32, RAZ, "GICR_SYNCR"),
    RegionDesc::reg(0xffd0, 0x30, W32, GICR_IDS, "GICR_ID"),
    RegionDesc::field(SGI + 0x80, 4, W32, F::Group, "GICR_IGROUPR0"),
    RegionDesc::field(SGI + 0x100, 4, W32, F::SetEnable, "GICR_ISENABLER0"),
    RegionDesc::field(SGI + 0x180, 4, W32, F::ClearEnable, "GICR_ICENABLER0"),
    RegionDesc::field(SGI + 0x200, 4, W32, F::SetPending, "GICR_ISPENDR0"),
    RegionDesc::field(SGI + 0x280, 4, W32, F::ClearPending, "GICR_ICPENDR0"),
    RegionDesc::field(SGI + 0x300, 4, W32, F::SetActive, "GICR_ISACTIVER0"),
    RegionDesc::field(SGI + 0x380, 4, W32, F::ClearActive, "GICR_ICACTIVER0"),
    RegionDesc::field(SGI + 0x400, 0x20, W8_32, F::Priority, "GICR_IPRIORITYR"),
    // ICFGR0 (SGIs) reads 0xaaaaaaaa and ignores writes (the model keeps SGIs edge);
    // ICFGR1 (PPIs) is programmable.
    RegionDesc::field(SGI + 0xc00, 8, W32, F::Config, "GICR_ICFGR"),
    RegionDesc::reg(SGI + 0xd00, 4, W32, RAZ, "GICR_IGRPMODR0"),
    RegionDesc::reg(SGI + 0xe00, 4, W32, RAZ, "GICR_NSACR"),
];

impl Vgic {
    /// A guest access to the vGICv3 distributor by vCPU `vcpu`: `offset` from the distributor
    /// base, `width` in bytes, `write` the value stored or `None` for a load.
    pub fn gicd_access(
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
        self.mmio_access(GICD_V3_REGIONS, ctx, offset, width, write)
    }

    /// A guest access to the redistributor region by vCPU `vcpu`: `offset` from the start of
    /// the region; frame `offset / 0x20000` belongs to the vCPU of that index, and the access
    /// acts on that vCPU's state whoever makes it. Beyond the last frame: RAZ/WI, reported.
    pub fn gicr_access(
        &mut self,
        vcpu: VcpuId,
        offset: u64,
        width: u8,
        write: Option<u64>,
    ) -> MmioOutcome {
        let frame = offset / GICR_FRAME_SIZE;
        let owner = match usize::try_from(frame) {
            Ok(owner) if owner < self.vcpu_count() => owner,
            _ => return MmioOutcome::refused(GROUP_UNMAPPED),
        };
        let ctx = Ctx {
            accessor: vcpu,
            owner,
        };
        self.mmio_access(GICR_REGIONS, ctx, offset % GICR_FRAME_SIZE, width, write)
    }

    /// A guest access to the redistributor region when the VM has an ITS: GICR_CTLR,
    /// GICR_PROPBASER and GICR_PENDBASER are then the ITS's LPI registers (turning
    /// EnableLPIs on reads the pending table from `ram`); everything else is
    /// [`Vgic::gicr_access`].
    ///
    /// GICR_CTLR: "EnableLPIs, bit [0]" read/write; "CES, bit [1]" = 1 (EnableLPIs may be
    /// cleared again, as QEMU and KVM allow); IR = 0 (no GICR_INVLPIR), RWP and UWP read 0.
    /// GICR_PROPBASER is one register for the whole VM (KVM); both are ignored while that
    /// redistributor's EnableLPIs is set.
    pub fn gicr_access_lpi(
        &mut self,
        vcpu: VcpuId,
        offset: u64,
        width: u8,
        write: Option<u64>,
        ram: &dyn crate::mm::GuestRam,
    ) -> MmioOutcome {
        let owner = (offset / GICR_FRAME_SIZE) as usize;
        let off = offset % GICR_FRAME_SIZE;
        let Some(its) = self.its.as_mut().filter(|_| owner < self.cpus.len()) else {
            return self.gicr_access(vcpu, offset, width, write);
        };
        let byte = (off % 8) as u32;
        let ok = |value: u64, group| MmioOutcome {
            value: if write.is_some() { 0 } else { value },
            group,
            ok: true,
        };
        match (off, width) {
            (0x0000, 4) => {
                if let Some(v) = write {
                    its.set_lpis_enabled(owner, v & 1 != 0, ram);
                }
                ok(its.lpis_enabled(owner) as u64 | 1 << 1, "GICR_CTLR")
            }
            (0x0070, 8) | (0x0070 | 0x0074, 4) => {
                if let Some(v) = write {
                    let new = update_bytes(its.propbaser(), byte, width, v) & PROPBASER_WRITABLE;
                    its.set_propbaser(owner, new);
                }
                ok(
                    extract_bytes(its.propbaser(), byte, width),
                    "GICR_PROPBASER",
                )
            }
            (0x0078, 8) | (0x0078 | 0x007c, 4) => {
                if let Some(v) = write {
                    let new =
                        update_bytes(its.pendbaser(owner), byte, width, v) & PENDBASER_WRITABLE;
                    its.set_pendbaser(owner, new);
                }
                ok(
                    extract_bytes(its.pendbaser(owner), byte, width),
                    "GICR_PENDBASER",
                )
            }
            _ => self.gicr_access(vcpu, offset, width, write),
        }
    }

    /// GICD_CTLR (DS = 1): "EnableGrp0, bit [0]" and "EnableGrp1, bit [1]" are read/write;
    /// "ARE, bit [4]" is RAO/WI (affinity routing is always on); "DS, bit [6]" is RAO/WI (one
    /// security state); E1NWF is RAZ/WI; "RWP, bit [31]" reads 0 (writes take effect at once).
    pub(super) fn gicd_ctlr_v3(&mut self, write: Option<u64>) -> u64 {
        if let Some(v) = write {
            let v = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(v as u32);
            self.set_group_enables(
                v.is_set(GICD_CTLR::EnableGrp0),
                v.is_set(GICD_CTLR::EnableGrp1),
            );
        }
        let ctlr = GICD_CTLR::EnableGrp0.val(self.enable_grp0.into())
            + GICD_CTLR::EnableGrp1.val(self.enable_grp1.into())
            + GICD_CTLR::ARE::SET
            + GICD_CTLR::DS::SET;
        u64::from(ctlr.value)
    }

    /// GICD_TYPER (read-only): ITLinesNumber = 32 * (N + 1) interrupt IDs; CPUNumber = 0 (as
    /// KVM and QEMU report it: with ARE = 1 it only counts PEs usable without affinity
    /// routing); SecurityExtn = 0, MBIS = 0, LPIS = 0, DVIS = 0; IDbits = 9 (10-bit INTIDs);
    /// A3V = 1 (Aff3 routing); No1N = 0 (1-of-N supported); RSS = 1 (ICC_SGI1R_EL1.RS is
    /// decoded: Aff0 0-255 can be targeted).
    pub(super) fn gicd_typer_v3(&self) -> u64 {
        let typer = GICD_TYPER::ITLinesNumber.val(self.it_lines_number())
            + GICD_TYPER::CPUNumber.val(0)
            + GICD_TYPER::SecurityExtn::CLEAR
            + GICD_TYPER::MBIS::CLEAR
            + GICD_TYPER::LPIS.val(self.its.is_some().into())
            + GICD_TYPER::DVIS::CLEAR
            + GICD_TYPER::IDbits.val(if self.its.is_some() {
                super::its::LPI_ID_BITS - 1
            } else {
                IDBITS_SPIS
            })
            + GICD_TYPER::A3V::SET
            + GICD_TYPER::No1N::CLEAR
            + GICD_TYPER::RSS::SET;
        u64::from(typer.value)
    }

    /// GICD_TYPER.ITLinesNumber (both versions): the smallest N with 32 * (N + 1) >= the
    /// number of interrupt IDs.
    pub(super) fn it_lines_number(&self) -> u32 {
        self.irq_count()
            .div_ceil(IntId::PRIVATE_COUNT)
            .saturating_sub(1)
    }

    /// `GICD_IROUTER<n>` (n >= 32): "IRM, bit [31]: 0 = routed to the PE specified by
    /// a.b.c.d, 1 = routed to any participating PE"; with IRM = 0, Aff3 (39:32) and
    /// Aff2..Aff0 (23:0) read back as written, with IRM = 0 or 1; RES0 bits are masked. A
    /// 32-bit access reads or writes one half and keeps the other. `accessor` writes it.
    pub(super) fn gicd_irouter(
        &mut self,
        accessor: VcpuId,
        d: Decoded,
        width: u8,
        write: Option<u64>,
    ) -> u64 {
        let id = IntId(d.region.intid_at(d.offset));
        let byte = d.offset % size_of::<u64>() as u32;
        let Some(irq) = self.irq(0, id) else {
            return 0;
        };
        let current = match irq.route {
            Route::Affinity(aff) => aff & IROUTER_AFFINITY,
            Route::Any(aff) => GICD_IROUTER::IRM::SET.value | (aff & IROUTER_AFFINITY),
            Route::Targets(_) => 0,
        };
        let Some(v) = write else {
            return extract_bytes(current, byte, width);
        };
        let new = update_bytes(current, byte, width, v) & IROUTER_WRITABLE;
        let route = if GICD_IROUTER::IRM.is_set(new) {
            Route::Any(new & IROUTER_AFFINITY)
        } else {
            Route::Affinity(new & IROUTER_AFFINITY)
        };
        self.set_route(accessor, id, route);
        0
    }

    /// GICR_TYPER of frame `owner` (read-only, 64-bit or halves): "Affinity_Value, bits
    /// [63:32]: the identity of the PE associated with this Redistributor" (that vCPU's
    /// Aff3.Aff2.Aff1.Aff0); "Processor_Number, bits [23:8]" = the frame index; "Last, bit
    /// [4]: this Redistributor is the highest-numbered Redistributor in a series of contiguous
    /// Redistributor pages" (only the last frame); PLPIS = VLPIS = DirectLPI = 0.
    pub(super) fn gicr_typer(&self, owner: VcpuId, reg_off: u32, width: u8) -> u64 {
        let Some(cpu) = self.cpu(owner) else {
            return 0;
        };
        let last = owner + 1 == self.vcpu_count();
        let typer = GICR_TYPER::PLPIS.val(self.its.is_some().into())
            + GICR_TYPER::VLPIS::CLEAR
            + GICR_TYPER::DirectLPI::CLEAR
            + GICR_TYPER::Last.val(last.into())
            + GICR_TYPER::Processor_Number.val(owner as u64)
            + GICR_TYPER::Affinity.val(u64::from(crate::gic::mpidr_to_gicr_affinity(cpu.affinity)));
        extract_bytes(typer.value, reg_off, width)
    }

    /// GICR_WAKER: "ProcessorSleep, bit [1]" is read/write; "ChildrenAsleep, bit [2]"
    /// (read-only) reads as ProcessorSleep: the virtual redistributor quiesces and wakes at
    /// once, so a guest clearing ProcessorSleep and polling ChildrenAsleep == 0 (or setting it
    /// and polling for 1) completes the handshake on the first read. Both read 1 at reset.
    pub(super) fn gicr_waker(&mut self, owner: VcpuId, write: Option<u64>) -> u64 {
        let Some(cpu) = self.cpu_mut(owner) else {
            return 0;
        };
        if let Some(v) = write {
            cpu.processor_sleep = GICR_WAKER::ProcessorSleep.is_set(v as u32);
        }
        let sleep = u32::from(cpu.processor_sleep);
        let waker = GICR_WAKER::ProcessorSleep.val(sleep) + GICR_WAKER::ChildrenAsleep.val(sleep);
        u64::from(waker.value)
    }

    /// GICR_PROPBASER (64-bit or halves): stored with its RES0 bits (63:59, 55:52, 6:5)
    /// masked. Writing it while GICR_CTLR.EnableLPIs == 1 is UNPREDICTABLE: such writes are
    /// ignored (KVM).
    pub(super) fn gicr_propbaser(
        &mut self,
        owner: VcpuId,
        reg_off: u32,
        width: u8,
        write: Option<u64>,
    ) -> u64 {
        let Some(cpu) = self.cpu_mut(owner) else {
            return 0;
        };
        if let Some(v) = write
            && !cpu.lpis_enabled
        {
            cpu.propbaser = update_bytes(cpu.propbaser, reg_off, width, v) & PROPBASER_WRITABLE;
        }
        extract_bytes(cpu.propbaser, reg_off, width)
    }

    /// GICR_PENDBASER (64-bit or halves): stored with its RES0 bits (63, 61:59, 55:52, 15:12,
    /// 6:0) masked; "PTZ, bit [62]" is write-only and reads 0. Ignored while EnableLPIs == 1.
    pub(super) fn gicr_pendbaser(
        &mut self,
        owner: VcpuId,
        reg_off: u32,
        width: u8,
        write: Option<u64>,
    ) -> u64 {
        let Some(cpu) = self.cpu_mut(owner) else {
            return 0;
        };
        if let Some(v) = write
            && !cpu.lpis_enabled
        {
            cpu.pendbaser = update_bytes(cpu.pendbaser, reg_off, width, v) & PENDBASER_WRITABLE;
        }
        let visible = cpu.pendbaser & !bits64(GICR_PENDBASER::PTZ);
        extract_bytes(visible, reg_off, width)
    }
}

#[cfg(test)]
mod tests;
