//! Physical GICv3/v4 driver: distributor, one redistributor per CPU, the system-register CPU
//! interface and the ITS identification (IHI 0069H chapters 12.9 GICD, 12.10-12.11 GICR, 12.19
//! GITS, 12.2 ICC).
//!
//! Host configuration: affinity routing on, every SPI group 1, disabled until claimed and routed
//! to the boot CPU; each CPU interface runs with EOImode=1 (ICC_CTLR_EL1.EOImode), so a guest
//! can deactivate a physical interrupt through an LR's HW bit; EL1 may use the system-register
//! interface (ICC_SRE_EL2.Enable).

use core::arch::asm;

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use super::mmio::MmioRef;
use crate::arch;
use exitless_core::gic::{self, GICR_TYPER, GITS_TYPER, GicFacts};
use exitless_core::platform::{GicV3Info, GicVersion};

register_structs! {
    /// GICD (IHI 0069H 12.8, Table 12-25), the registers the host driver uses.
    #[allow(non_snake_case)]
    pub GicdRegs {
        (0x0000 => CTLR: ReadWrite<u32>),
        (0x0004 => TYPER: ReadOnly<u32>),
        (0x0008 => IIDR: ReadOnly<u32>),
        (0x000c => _reserved0),
        (0x0080 => IGROUPR: [ReadWrite<u32>; 32]),
        (0x0100 => ISENABLER: [ReadWrite<u32>; 32]),
        (0x0180 => ICENABLER: [ReadWrite<u32>; 32]),
        (0x0200 => ISPENDR: [ReadWrite<u32>; 32]),
        (0x0280 => ICPENDR: [ReadWrite<u32>; 32]),
        (0x0300 => ISACTIVER: [ReadWrite<u32>; 32]),
        (0x0380 => ICACTIVER: [ReadWrite<u32>; 32]),
        (0x0400 => IPRIORITYR: [ReadWrite<u32>; 255]),
        (0x07fc => _reserved1),
        (0x0c00 => ICFGR: [ReadWrite<u32>; 64]),
        (0x0d00 => IGRPMODR: [ReadWrite<u32>; 32]),
        (0x0d80 => _reserved2),
        (0x6100 => IROUTER: [ReadWrite<u64>; 988]),
        (0x7fe0 => _reserved3),
        (0xffe8 => PIDR2: ReadOnly<u32>),
        (0xffec => _reserved4),
        (0x10000 => @END),
    }
}

register_structs! {
    /// A redistributor's RD_base frame (IHI 0069H 12.10).
    #[allow(non_snake_case)]
    pub GicrRdRegs {
        (0x0000 => pub CTLR: ReadWrite<u32>),
        (0x0004 => pub IIDR: ReadOnly<u32>),
        (0x0008 => pub TYPER: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0014 => pub WAKER: ReadWrite<u32>),
        (0x0018 => @END),
    }
}

register_structs! {
    /// A redistributor's SGI_base frame, 64 KiB after RD_base (IHI 0069H 12.11).
    #[allow(non_snake_case)]
    pub GicrSgiRegs {
        (0x0000 => _reserved0),
        (0x0080 => IGROUPR0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => ISENABLER0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => ICENABLER0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0200 => ISPENDR0: ReadWrite<u32>),
        (0x0204 => _reserved4),
        (0x0280 => ICPENDR0: ReadWrite<u32>),
        (0x0284 => _reserved5),
        (0x0300 => ISACTIVER0: ReadWrite<u32>),
        (0x0304 => _reserved6),
        (0x0380 => ICACTIVER0: ReadWrite<u32>),
        (0x0384 => _reserved7),
        (0x0400 => IPRIORITYR: [ReadWrite<u32>; 8]),
        (0x0420 => _reserved8),
        (0x0d00 => IGRPMODR0: ReadWrite<u32>),
        (0x0d04 => @END),
    }
}

register_structs! {
    /// The ITS control frame (IHI 0069H 12.19).
    #[allow(non_snake_case)]
    pub GitsRegs {
        (0x0000 => pub CTLR: ReadWrite<u32>),
        (0x0004 => pub IIDR: ReadOnly<u32>),
        (0x0008 => pub TYPER: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0080 => pub CBASER: ReadWrite<u64>),
        (0x0088 => pub CWRITER: ReadWrite<u64>),
        (0x0090 => pub CREADR: ReadWrite<u64>),
        (0x0098 => _reserved1),
        (0x0100 => pub BASER: [ReadWrite<u64>; 8]),
        (0x0140 => @END),
    }
}

register_structs! {
    /// A redistributor's LPI registers in its RD_base frame (IHI 0069H 12.10).
    #[allow(non_snake_case)]
    pub GicrLpiRegs {
        (0x0000 => pub CTLR: ReadWrite<u32>),
        (0x0004 => _reserved0),
        (0x0070 => pub PROPBASER: ReadWrite<u64>),
        (0x0078 => pub PENDBASER: ReadWrite<u64>),
        (0x0080 => @END),
    }
}

register_structs! {
    /// A GICv4 redistributor's VLPI_base frame (RD_base + 128 KiB; IHI 0069H 12.11.36-37).
    #[allow(non_snake_case)]
    pub GicrVlpiRegs {
        (0x0000 => _reserved0),
        (0x0070 => pub VPROPBASER: ReadWrite<u64>),
        (0x0078 => pub VPENDBASER: ReadWrite<u64>),
        (0x0080 => @END),
    }
}

/// Offset of the VLPI_base frame from RD_base.
pub const GICR_VLPI_FRAME: usize = 0x2_0000;

/// GICD_CTLR bits (single security state view, or the non-secure view).
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ENABLE_GRP1A: u32 = 1 << 0;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_TYPER_SECURITY_EXTN: u32 = 1 << 10;
/// GICR_WAKER bits.
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// Redistributor frame strides: RD + SGI (GICv3), plus VLPI + reserved (GICv4).
const GICR_STRIDE_V3: usize = 0x2_0000;
const GICR_STRIDE_V4: usize = 0x4_0000;
const GICR_SGI_OFFSET: usize = 0x1_0000;
const DEFAULT_PRIORITY: u32 = 0xa0a0_a0a0;

/// Reads a GIC system register by its generic encoding (names the assembler may not know).
macro_rules! read_sysreg {
    ($enc:literal) => {{
        let v: u64;
        // SAFETY: reading a GIC CPU-interface system register has no side effect on memory.
        unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// Writes a GIC system register by its generic encoding.
macro_rules! write_sysreg {
    ($enc:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the GIC CPU-interface registers written here configure interrupt delivery to
        // this CPU only; they do not touch memory.
        unsafe { asm!(concat!("msr ", $enc, ", {}"), "isb", in(reg) v, options(nomem, nostack)) };
    }};
}

/// ICC_SRE_EL2: SRE (system registers at EL2), Enable (EL1 may use them too).
const ICC_SRE_EL2_VALUE: u64 = 0b1001;
/// ICC_CTLR_EL1.EOImode: priority drop and deactivation separate.
const ICC_CTLR_EOIMODE: u64 = 1 << 1;

/// The physical GICv3/v4.
pub struct GicV3 {
    gicd: MmioRef<GicdRegs>,
    info: GicV3Info,
}

impl GicV3 {
    /// Wraps the frames described by `info`.
    ///
    /// # Safety
    ///
    /// The GICD, redistributor regions and ITS frames in `info` must be the GIC's, mapped as
    /// device memory for the rest of the run, and driven by no other code.
    pub unsafe fn new(info: &GicV3Info) -> Self {
        // SAFETY: forwarded from the caller.
        let gicd = unsafe { MmioRef::new(info.gicd.start as usize) };
        Self {
            gicd,
            info: info.clone(),
        }
    }

    fn wait_rwp(&self) {
        for _ in 0..1_000_000 {
            if self.gicd.CTLR.get() & GICD_CTLR_RWP == 0 {
                return;
            }
            crate::arch::spin_hint();
        }
        log::warn!("GICD_CTLR.RWP stuck at 1");
    }

    /// The ITS frames the device tree lists.
    pub fn its_frames(&self) -> &[exitless_core::mm::MemRange] {
        &self.info.its
    }

    /// Number of interrupt IDs the distributor implements.
    pub fn irq_count(&self) -> usize {
        (32 * ((self.gicd.TYPER.get() & 0x1f) as usize + 1)).min(1020)
    }

    /// Distributor set-up, once, on the boot CPU.
    pub fn init_distributor(&self) {
        self.gicd.CTLR.set(0);
        self.wait_rwp();
        let irqs = self.irq_count();
        for i in 1..irqs / 32 {
            self.gicd.ICENABLER[i].set(u32::MAX);
            self.gicd.ICPENDR[i].set(u32::MAX);
            self.gicd.ICACTIVER[i].set(u32::MAX);
            self.gicd.IGROUPR[i].set(u32::MAX);
            self.gicd.IGRPMODR[i].set(0);
        }
        for i in 8..irqs / 4 {
            self.gicd.IPRIORITYR[i].set(DEFAULT_PRIORITY);
        }
        for i in 2..irqs / 16 {
            self.gicd.ICFGR[i].set(0);
        }
        self.wait_rwp();
        let boot = arch::mpidr();
        for spi in 32..irqs {
            self.gicd.IROUTER[spi - 32].set(boot);
        }
        self.gicd
            .CTLR
            .set(GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1 | GICD_CTLR_ENABLE_GRP1A);
        self.wait_rwp();
    }

    /// Visits every redistributor frame (RD_base address and GICR_TYPER).
    /// Calls `f(RD_base, GICR_TYPER)` for every redistributor frame until it returns true.
    pub fn for_each_redist(&self, mut f: impl FnMut(usize, u64) -> bool) {
        for region in &self.info.redist_regions {
            let mut base = region.start as usize;
            while base + GICR_STRIDE_V3 <= region.end as usize {
                // SAFETY: `new`'s caller promised the redistributor regions are mapped GIC
                // frames; `base` stays inside one of them.
                let rd: MmioRef<GicrRdRegs> = unsafe { MmioRef::new(base) };
                let typer = rd.TYPER.get();
                if f(base, typer) {
                    return;
                }
                let t = gic::gicr_typer(typer);
                if t.is_set(GICR_TYPER::Last) {
                    break;
                }
                base += match self.info.redist_stride {
                    Some(s) if s > 0 => s as usize,
                    _ if t.is_set(GICR_TYPER::VLPIS) => GICR_STRIDE_V4,
                    _ => GICR_STRIDE_V3,
                };
            }
        }
    }

    /// The RD_base of the running CPU's redistributor.
    pub fn my_redist(&self) -> Option<usize> {
        let want = gic::mpidr_to_gicr_affinity(arch::mpidr());
        let mut found = None;
        self.for_each_redist(|base, typer| {
            let hit = gic::gicr_typer(typer).read(GICR_TYPER::Affinity) as u32 == want;
            if hit {
                found = Some(base);
            }
            hit
        });
        found
    }

    /// Per-CPU set-up on every CPU: wake this CPU's redistributor, configure its SGIs and PPIs
    /// (group 1, disabled, default priority), enable the system-register CPU interface.
    pub fn init_cpu(&self) -> Result<(), &'static str> {
        let base = self
            .my_redist()
            .ok_or("no redistributor matches this CPU's MPIDR")?;
        // SAFETY: `base` is a redistributor frame found inside the mapped regions.
        let rd: MmioRef<GicrRdRegs> = unsafe { MmioRef::new(base) };
        rd.WAKER.set(rd.WAKER.get() & !GICR_WAKER_PROCESSOR_SLEEP);
        let mut awake = false;
        for _ in 0..1_000_000 {
            if rd.WAKER.get() & GICR_WAKER_CHILDREN_ASLEEP == 0 {
                awake = true;
                break;
            }
            crate::arch::spin_hint();
        }
        if !awake {
            return Err("redistributor did not wake (GICR_WAKER.ChildrenAsleep stuck)");
        }
        // SAFETY: the SGI_base frame follows RD_base in the same redistributor.
        let sgi: MmioRef<GicrSgiRegs> = unsafe { MmioRef::new(base + GICR_SGI_OFFSET) };
        sgi.ICENABLER0.set(u32::MAX);
        sgi.ICPENDR0.set(u32::MAX);
        sgi.ICACTIVER0.set(u32::MAX);
        sgi.IGROUPR0.set(u32::MAX);
        sgi.IGRPMODR0.set(0);
        for p in sgi.IPRIORITYR.iter() {
            p.set(DEFAULT_PRIORITY);
        }

        write_sysreg!("S3_4_C12_C9_5", ICC_SRE_EL2_VALUE); // ICC_SRE_EL2
        let sre = read_sysreg!("S3_4_C12_C9_5");
        if sre & 1 == 0 {
            return Err("the GICv3 system-register interface is disabled (ICC_SRE_EL2.SRE)");
        }
        write_sysreg!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1: unmask every priority
        write_sysreg!("S3_0_C12_C12_3", 0); // ICC_BPR1_EL1
        let ctlr = read_sysreg!("S3_0_C12_C12_4"); // ICC_CTLR_EL1
        write_sysreg!("S3_0_C12_C12_4", ctlr | ICC_CTLR_EOIMODE);
        write_sysreg!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
        write_sysreg!("S3_4_C12_C11_0", 0); // ICH_HCR_EL2: virtual interface off
        Ok(())
    }

    /// The facts the banner shows.
    pub fn facts(&self) -> GicFacts {
        let vtr = read_sysreg!("S3_4_C12_C11_1") as u32; // ICH_VTR_EL2
        let mut f = GicFacts::from_registers(GicVersion::V3, self.gicd.TYPER.get(), vtr);
        let mut redists = 0;
        let mut all_vlpis = true;
        self.for_each_redist(|_, typer| {
            redists += 1;
            all_vlpis &= gic::gicr_typer(typer).is_set(GICR_TYPER::VLPIS);
            false
        });
        let mut its_virtual = !self.info.its.is_empty();
        for its in &self.info.its {
            // SAFETY: `new`'s caller promised the ITS frames are mapped.
            let regs: MmioRef<GitsRegs> = unsafe { MmioRef::new(its.start as usize) };
            its_virtual &= gic::gits_typer(regs.TYPER.get()).is_set(GITS_TYPER::Virtual);
        }
        f.redist_count = redists;
        f.its_count = self.info.its.len();
        f.security_extn = self.gicd.TYPER.get() & GICD_TYPER_SECURITY_EXTN != 0;
        f.direct_injection =
            redists > 0 && all_vlpis && its_virtual && GicFacts::vtr_allows_direct_injection(vtr);
        f
    }
}

/// ICH_LR<n>_EL2 by index (the register names are part of the instruction encoding).
macro_rules! lr_access {
    ($n:expr, $read:ident, $v:ident, $( $i:literal => $enc:literal ),* ) => {
        match $n {
            $( $i => if $read { $v = read_sysreg!($enc) } else { write_sysreg!($enc, $v) }, )*
            _ => {}
        }
    };
}

fn lr_op(n: usize, read: bool, v: &mut u64) {
    let mut val = *v;
    lr_access!(n, read, val,
        0 => "S3_4_C12_C12_0", 1 => "S3_4_C12_C12_1", 2 => "S3_4_C12_C12_2",
        3 => "S3_4_C12_C12_3", 4 => "S3_4_C12_C12_4", 5 => "S3_4_C12_C12_5",
        6 => "S3_4_C12_C12_6", 7 => "S3_4_C12_C12_7", 8 => "S3_4_C12_C13_0",
        9 => "S3_4_C12_C13_1", 10 => "S3_4_C12_C13_2", 11 => "S3_4_C12_C13_3",
        12 => "S3_4_C12_C13_4", 13 => "S3_4_C12_C13_5", 14 => "S3_4_C12_C13_6",
        15 => "S3_4_C12_C13_7");
    *v = val;
}

/// ICH_VMCR_EL2.VEOIM (bit 9): the guest's EOImode.
const ICH_VMCR_VEOIM: u64 = 1 << 9;

/// The GICv3 CPU interface of the running CPU: the physical one (ICC_*) the hypervisor takes
/// its interrupts through, and the virtual interface control (ICH_*) it programs for the vCPU.
/// Every function acts on the calling CPU only.
pub mod cpuif {
    use super::*;
    use exitless_core::vgic::cpu_if::CpuIfShadow;

    /// ICC_IAR1_EL1: acknowledges the highest-priority pending group-1 interrupt.
    pub fn ack() -> u32 {
        read_sysreg!("S3_0_C12_C12_0") as u32 & 0xff_ffff
    }

    /// ICC_EOIR1_EL1: priority drop (EOImode=1: the interrupt stays active).
    pub fn eoi(intid: u32) {
        write_sysreg!("S3_0_C12_C12_1", intid as u64);
    }

    /// ICC_DIR_EL1: deactivation.
    pub fn deactivate(intid: u32) {
        write_sysreg!("S3_0_C12_C11_1", intid as u64);
    }

    /// ICC_SGI1R_EL1: SGI `sgi` to the CPU with affinity `mpidr`.
    pub fn send_sgi(mpidr: u64, sgi: u32) {
        let aff0 = mpidr & 0xf;
        let v = ((mpidr >> 8) & 0xff) << 16 // Aff1
            | ((mpidr >> 16) & 0xff) << 32 // Aff2
            | ((mpidr >> 32) & 0xff) << 48 // Aff3
            | ((mpidr & 0xf0) >> 4) << 44 // RS: Aff0 / 16
            | (sgi as u64 & 0xf) << 24
            | 1 << aff0;
        // SAFETY: generating an SGI only signals another CPU; it touches no memory.
        unsafe { asm!("dsb ishst", "msr S3_0_C12_C11_5, {}", "isb", in(reg) v, options(nostack)) };
    }

    /// Sends SGI `sgi` to every PE but the caller (ICC_SGI1R_EL1.IRM = 1).
    pub fn send_sgi_to_others(sgi: u32) {
        let v = 1u64 << 40 | (sgi as u64 & 0xf) << 24;
        // SAFETY: generating an SGI only signals other CPUs; it touches no memory.
        unsafe { asm!("dsb ishst", "msr S3_0_C12_C11_5, {}", "isb", in(reg) v, options(nostack)) };
    }

    /// Writes the list registers and ICH_HCR_EL2 from `shadow` (zeros in unused LRs).
    pub fn load_lrs(shadow: &CpuIfShadow, lr_count: usize, previously_used: usize) {
        // The LRs flush filled, and those the previous entry used (now emptied): no others.
        let touched = shadow
            .used
            .max(previously_used)
            .min(lr_count)
            .min(shadow.lrs.len());
        for n in 0..touched {
            let mut v = shadow.lrs[n];
            lr_op(n, false, &mut v);
        }
        write_sysreg!("S3_4_C12_C11_0", shadow.hcr);
    }

    /// Reads back the list registers flush used, ICH_HCR_EL2 (EOIcount) and the guest's
    /// EOImode.
    pub fn save_lrs(shadow: &mut CpuIfShadow) {
        for n in 0..shadow.used {
            let mut v = 0;
            lr_op(n, true, &mut v);
            shadow.lrs[n] = v;
        }
        shadow.hcr = read_sysreg!("S3_4_C12_C11_0");
        shadow.eoimode1 = read_sysreg!("S3_4_C12_C11_7") & ICH_VMCR_VEOIM != 0;
        // Turn the interface off while the hypervisor runs: no maintenance interrupt from the
        // previous state, nothing the guest cannot see.
        write_sysreg!("S3_4_C12_C11_0", 0);
    }

    /// Resets the guest's view of the virtual CPU interface (a vCPU starting afresh):
    /// ICH_VMCR_EL2 and the active-priority registers zero, every LR empty.
    pub fn reset_virtual(lr_count: usize) {
        write_sysreg!("S3_4_C12_C11_7", 0);
        write_sysreg!("S3_4_C12_C8_0", 0);
        write_sysreg!("S3_4_C12_C9_0", 0);
        for n in 0..lr_count {
            let mut z = 0;
            lr_op(n, false, &mut z);
        }
        write_sysreg!("S3_4_C12_C11_0", 0);
    }
}

impl GicV3 {
    /// The running CPU's redistributor SGI frame.
    fn my_sgi_frame(&self) -> Option<MmioRef<GicrSgiRegs>> {
        let base = self.my_redist()?;
        // SAFETY: the SGI frame follows RD_base inside the mapped redistributor region.
        Some(unsafe { MmioRef::new(base + GICR_SGI_OFFSET) })
    }

    /// Enables SGI/PPI `intid` on the running CPU at `priority`.
    pub fn enable_private(&self, intid: u32, priority: u8) {
        let Some(sgi) = self.my_sgi_frame() else {
            return;
        };
        super::gic::set_byte_field(&sgi.IPRIORITYR, intid as usize, priority);
        sgi.ISENABLER0.set(1 << intid);
    }

    /// Sets (GICR_ISACTIVER0 / GICD_ISACTIVER) or clears (ICACTIVER) the active state of
    /// `intid`: an SGI or PPI of the running CPU, or an SPI.
    pub fn set_active(&self, intid: u32, on: bool) {
        use core::slice::from_ref;
        if intid < 32 {
            if let Some(sgi) = self.my_sgi_frame() {
                let (set, clear) = (from_ref(&sgi.ISACTIVER0), from_ref(&sgi.ICACTIVER0));
                super::gic::set_or_clear(set, clear, intid, on);
            }
        } else if (intid as usize) < self.irq_count() {
            let d = &self.gicd;
            super::gic::set_or_clear(&d.ISACTIVER, &d.ICACTIVER, intid, on);
        }
    }

    /// Clears the pending state of `intid` (GICR_ICPENDR0 for the running CPU's SGIs and PPIs,
    /// GICD_ICPENDR for SPIs). An asserted level input stays pending.
    pub fn clear_pending(&self, intid: u32) {
        if intid < 32 {
            if let Some(sgi) = self.my_sgi_frame() {
                sgi.ICPENDR0.set(1 << intid);
            }
        } else if (intid as usize) < self.irq_count() {
            super::gic::set_or_clear(&self.gicd.ISPENDR, &self.gicd.ICPENDR, intid, false);
        }
    }

    /// Routes SPI `intid` to the CPU with affinity `mpidr` (GICD_IROUTER, IRM = 0).
    pub fn route_spi(&self, intid: u32, mpidr: u64) {
        let i = intid as usize;
        if (32..self.irq_count()).contains(&i) {
            self.gicd.IROUTER[i - 32].set(mpidr & exitless_core::platform::MPIDR_AFFINITY_MASK);
        }
    }

    /// Enables SPI `intid` at `priority`, routed to the CPU with affinity `mpidr`.
    pub fn enable_spi(&self, intid: u32, priority: u8, mpidr: u64, level: bool) {
        let i = intid as usize;
        if !(32..self.irq_count()).contains(&i) {
            return;
        }
        super::gic::set_byte_field(&self.gicd.IPRIORITYR, i, priority);
        super::gic::set_trigger(&self.gicd.ICFGR, i, level);
        self.gicd.IROUTER[i - 32].set(mpidr & exitless_core::platform::MPIDR_AFFINITY_MASK);
        self.gicd.ISENABLER[i / 32].set(1 << (i % 32));
    }
}
