//! Physical GICv2 (GIC-400) driver: distributor, CPU interface and the virtual interface
//! control frame GICH (IHI 0048B chapters 4 and 5).
//!
//! Host configuration: the distributor forwards every interrupt, all are disabled until someone
//! claims them, the CPU interface runs with EOImode=1 (priority drop on GICC_EOIR, deactivation
//! on GICC_DIR), so a guest can deactivate a physical interrupt through an LR's HW bit.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use super::mmio::MmioRef;
use exitless_core::gic::GicFacts;
use exitless_core::platform::{GicV2Info, GicVersion};

register_structs! {
    /// GICD (IHI 0048B 4.1.2, Table 4-1), the registers the host driver uses.
    #[allow(non_snake_case)]
    pub GicdRegs {
        (0x000 => CTLR: ReadWrite<u32>),
        (0x004 => TYPER: ReadOnly<u32>),
        (0x008 => IIDR: ReadOnly<u32>),
        (0x00c => _reserved0),
        (0x080 => IGROUPR: [ReadWrite<u32>; 32]),
        (0x100 => ISENABLER: [ReadWrite<u32>; 32]),
        (0x180 => ICENABLER: [ReadWrite<u32>; 32]),
        (0x200 => ISPENDR: [ReadWrite<u32>; 32]),
        (0x280 => ICPENDR: [ReadWrite<u32>; 32]),
        (0x300 => ISACTIVER: [ReadWrite<u32>; 32]),
        (0x380 => ICACTIVER: [ReadWrite<u32>; 32]),
        (0x400 => IPRIORITYR: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved1),
        (0x800 => ITARGETSR: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved2),
        (0xc00 => ICFGR: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved3),
        (0xf00 => SGIR: WriteOnly<u32>),
        (0xf04 => @END),
    }
}

register_structs! {
    /// GICC (IHI 0048B 4.1.3, Table 4-2).
    #[allow(non_snake_case)]
    pub GiccRegs {
        (0x000 => CTLR: ReadWrite<u32>),
        (0x004 => PMR: ReadWrite<u32>),
        (0x008 => BPR: ReadWrite<u32>),
        (0x00c => IAR: ReadOnly<u32>),
        (0x010 => EOIR: WriteOnly<u32>),
        (0x014 => _reserved0),
        (0x0fc => IIDR: ReadOnly<u32>),
        (0x100 => _reserved1),
        (0x1000 => DIR: WriteOnly<u32>),
        (0x1004 => @END),
    }
}

register_structs! {
    /// GICH, the virtual interface control frame (IHI 0048B 5.3, Table 5-1).
    #[allow(non_snake_case)]
    pub GichRegs {
        (0x000 => HCR: ReadWrite<u32>),
        (0x004 => VTR: ReadOnly<u32>),
        (0x008 => VMCR: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => MISR: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x020 => EISR: [ReadOnly<u32>; 2]),
        (0x028 => _reserved2),
        (0x030 => ELRSR: [ReadOnly<u32>; 2]),
        (0x038 => _reserved3),
        (0x0f0 => APR: ReadWrite<u32>),
        (0x0f4 => _reserved4),
        (0x100 => LR: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

/// GICD_CTLR / GICC_CTLR enable bit (group 1 in the non-secure view, everything without the
/// Security Extensions).
const CTLR_ENABLE: u32 = 1 << 0;
/// GICC_CTLR.EOImodeNS (bit 9): priority drop and deactivation are separate (Linux's
/// GIC_CPU_CTRL_EOImodeNS; on a GIC without Security Extensions bit 9 is EOImodeS, which governs
/// the same interrupts because all are in group 0 there).
const GICC_CTLR_EOIMODE: u32 = 1 << 9;
/// Default priority for every interrupt (the middle of the range, as Linux uses).
const DEFAULT_PRIORITY: u32 = 0xa0a0_a0a0;

/// The physical GICv2.
pub struct GicV2 {
    gicd: MmioRef<GicdRegs>,
    gicc: MmioRef<GiccRegs>,
    gich: MmioRef<GichRegs>,
}

impl GicV2 {
    /// Wraps the GICv2 frames described by `info` (GICH and GICV are required).
    ///
    /// # Safety
    ///
    /// The frames must be the GIC's, mapped as device memory for the rest of the run, and
    /// driven by no other code.
    pub unsafe fn new(info: &GicV2Info) -> Option<Self> {
        let gich = info.gich?;
        // SAFETY: forwarded from the caller.
        unsafe {
            Some(Self {
                gicd: MmioRef::new(info.gicd.start as usize),
                gicc: MmioRef::new(info.gicc.start as usize),
                gich: MmioRef::new(gich.start as usize),
            })
        }
    }

    /// Number of interrupt IDs the distributor implements.
    pub fn irq_count(&self) -> usize {
        (32 * ((self.gicd.TYPER.get() & 0x1f) as usize + 1)).min(1020)
    }

    /// Distributor set-up, once, on the boot CPU: every SPI disabled, inactive, at the default
    /// priority, level-sensitive, targeted at this CPU; then the distributor is enabled.
    pub fn init_distributor(&self) {
        let irqs = self.irq_count();
        self.gicd.CTLR.set(0);
        for i in 1..irqs / 32 {
            self.gicd.ICENABLER[i].set(u32::MAX);
            self.gicd.ICPENDR[i].set(u32::MAX);
            self.gicd.ICACTIVER[i].set(u32::MAX);
        }
        for i in 8..irqs / 4 {
            self.gicd.IPRIORITYR[i].set(DEFAULT_PRIORITY);
            self.gicd.ITARGETSR[i].set(self.cpu_target_byte() * 0x0101_0101);
        }
        for i in 2..irqs / 16 {
            self.gicd.ICFGR[i].set(0);
        }
        self.gicd.CTLR.set(CTLR_ENABLE);
    }

    /// This CPU's GICv2 target bit, read from the banked ITARGETSR0..7 (IHI 0048B 4.3.12: they
    /// return the reading CPU's own bit), never computed from MPIDR.
    pub fn cpu_target_byte(&self) -> u32 {
        let v = self.gicd.ITARGETSR[0].get()
            | self.gicd.ITARGETSR[1].get()
            | self.gicd.ITARGETSR[4].get()
            | self.gicd.ITARGETSR[7].get();
        (v | v >> 8 | v >> 16 | v >> 24) & 0xff
    }

    /// Per-CPU set-up on every CPU: banked SGIs/PPIs disabled and prioritised, CPU interface
    /// enabled with EOImode=1 and every priority unmasked; the virtual interface disabled.
    pub fn init_cpu(&self) {
        self.gicd.ICENABLER[0].set(u32::MAX);
        self.gicd.ICPENDR[0].set(u32::MAX);
        self.gicd.ICACTIVER[0].set(u32::MAX);
        for i in 0..8 {
            self.gicd.IPRIORITYR[i].set(DEFAULT_PRIORITY);
        }
        self.gicc.PMR.set(0xff);
        self.gicc.BPR.set(0);
        self.gicc.CTLR.set(CTLR_ENABLE | GICC_CTLR_EOIMODE);
        self.gich.HCR.set(0);
    }

    /// The facts the banner shows.
    pub fn facts(&self) -> GicFacts {
        GicFacts::from_registers(GicVersion::V2, self.gicd.TYPER.get(), self.gich.VTR.get())
    }
}

/// GICH_VMCR.VEM (bit 9): the guest's EOImode.
const GICH_VMCR_VEM: u32 = 1 << 9;

impl GicV2 {
    /// GICC_IAR: acknowledges the highest-priority pending interrupt (interrupt ID in 9:0; the
    /// source CPU of an SGI in 12:10 is dropped: the hypervisor's own SGIs do not need it).
    pub fn ack(&self) -> u32 {
        self.gicc.IAR.get() & 0x3ff
    }

    /// GICC_EOIR: priority drop (EOImode=1: the interrupt stays active).
    pub fn eoi(&self, intid: u32) {
        self.gicc.EOIR.set(intid);
    }

    /// GICC_DIR: deactivation.
    pub fn deactivate(&self, intid: u32) {
        self.gicc.DIR.set(intid);
    }

    /// Sets (GICD_ISACTIVER) or clears (GICD_ICACTIVER) the active state of `intid` (SGIs
    /// and PPIs: the running CPU's, the registers are banked).
    pub fn set_active(&self, intid: u32, on: bool) {
        if (intid as usize) < self.irq_count() {
            let d = &self.gicd;
            super::gic::set_or_clear(&d.ISACTIVER, &d.ICACTIVER, intid, on);
        }
    }

    /// Clears the pending state of `intid` (GICD_ICPENDR; banked for SGIs and PPIs). An
    /// asserted level input stays pending.
    pub fn clear_pending(&self, intid: u32) {
        if (intid as usize) < self.irq_count() {
            super::gic::set_or_clear(&self.gicd.ISPENDR, &self.gicd.ICPENDR, intid, false);
        }
    }

    /// GICD_SGIR: SGI `sgi` to the CPU interfaces in `targets`.
    pub fn send_sgi(&self, targets: u8, sgi: u32) {
        // TargetListFilter 0 (use the list), CPUTargetList 23:16, SGIINTID 3:0.
        self.gicd.SGIR.set((targets as u32) << 16 | (sgi & 0xf));
    }

    /// Sends SGI `sgi` to every CPU interface but the caller's (TargetListFilter 0b01).
    pub fn send_sgi_to_others(&self, sgi: u32) {
        self.gicd.SGIR.set(1 << 24 | (sgi & 0xf));
    }

    /// Enables SGI/PPI `intid` on the running CPU at `priority` (banked registers).
    pub fn enable_private(&self, intid: u32, priority: u8) {
        self.set_priority(intid, priority);
        self.gicd.ISENABLER[0].set(1 << intid);
    }

    fn set_priority(&self, intid: u32, priority: u8) {
        super::gic::set_byte_field(&self.gicd.IPRIORITYR, intid as usize, priority);
    }

    /// Enables SPI `intid` at `priority`, targeted at the CPU interfaces in `targets`.
    pub fn enable_spi(&self, intid: u32, priority: u8, targets: u8, level: bool) {
        let i = intid as usize;
        if !(32..self.irq_count()).contains(&i) {
            return;
        }
        self.set_priority(intid, priority);
        super::gic::set_byte_field(&self.gicd.ITARGETSR, i, targets);
        super::gic::set_trigger(&self.gicd.ICFGR, i, level);
        self.gicd.ISENABLER[i / 32].set(1 << (i % 32));
    }

    /// Routes SPI `intid` to the CPU interfaces in `targets` (GICD_ITARGETSR).
    pub fn route_spi(&self, intid: u32, targets: u8) {
        let i = intid as usize;
        if (32..self.irq_count()).contains(&i) {
            super::gic::set_byte_field(&self.gicd.ITARGETSR, i, targets);
        }
    }

    /// Writes the list registers and GICH_HCR from `shadow` (zeros in LRs used before).
    pub fn load_lrs(
        &self,
        shadow: &exitless_core::vgic::cpu_if::CpuIfShadow,
        previously_used: usize,
    ) {
        // The LRs flush filled, and those the previous entry used (now emptied): no others.
        let touched = shadow
            .used
            .max(previously_used)
            .min(shadow.lrs.len())
            .min(self.gich.LR.len());
        for n in 0..touched {
            self.gich.LR[n].set(shadow.lrs[n] as u32);
        }
        self.gich.HCR.set(shadow.hcr as u32);
    }

    /// Reads back the list registers flush used, GICH_HCR (EOICount) and the guest's EOImode,
    /// and disables the virtual interface while the hypervisor runs.
    pub fn save_lrs(&self, shadow: &mut exitless_core::vgic::cpu_if::CpuIfShadow) {
        for n in 0..shadow.used.min(self.gich.LR.len()) {
            shadow.lrs[n] = self.gich.LR[n].get() as u64;
        }
        shadow.hcr = self.gich.HCR.get() as u64;
        shadow.eoimode1 = self.gich.VMCR.get() & GICH_VMCR_VEM != 0;
        self.gich.HCR.set(0);
    }

    /// Resets the guest's view of the virtual CPU interface: GICH_VMCR, GICH_APR, every LR.
    pub fn reset_virtual(&self, lr_count: usize) {
        self.gich.VMCR.set(0);
        self.gich.APR.set(0);
        for lr in self.gich.LR.iter().take(lr_count) {
            lr.set(0);
        }
        self.gich.HCR.set(0);
    }
}
