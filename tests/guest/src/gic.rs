//! The guest's GIC driver, for GICv2 (GICD + GICC, memory-mapped) and GICv3 (GICD + GICR +
//! the ICC system registers), behind one interface so that most cases run on both.
//!
//! Everything uses Group 1 on GICv3 (ICC_*1_EL1) and Group 0 on GICv2 (QEMU's GICv2 without
//! security extensions has no groups; a GICv2 VM's GICV uses Group 0 as IRQ).

use crate::dt::{GicDesc, MAX_CPUS, Platform};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::hw::{self, mrs, msr, read32, read64, write32, write64};

// Distributor (common offsets).
pub const GICD_CTLR: usize = 0x000;
pub const GICD_TYPER: usize = 0x004;
pub const GICD_IIDR: usize = 0x008;
pub const GICD_IGROUPR: usize = 0x080;
pub const GICD_ISENABLER: usize = 0x100;
pub const GICD_ICENABLER: usize = 0x180;
pub const GICD_ISPENDR: usize = 0x200;
pub const GICD_ICPENDR: usize = 0x280;
pub const GICD_ISACTIVER: usize = 0x300;
pub const GICD_ICACTIVER: usize = 0x380;
pub const GICD_IPRIORITYR: usize = 0x400;
pub const GICD_ITARGETSR: usize = 0x800;
pub const GICD_ICFGR: usize = 0xc00;
pub const GICD_IGRPMODR: usize = 0xd00;
pub const GICD_NSACR: usize = 0xe00;
pub const GICD_SGIR: usize = 0xf00;
pub const GICD_CPENDSGIR: usize = 0xf10;
pub const GICD_SPENDSGIR: usize = 0xf20;
pub const GICD_IROUTER: usize = 0x6000;
pub const GICD_PIDR2: usize = 0xffe8;
pub const GICD_V2_PIDR2: usize = 0xfe8;

// Redistributor RD_base, and SGI_base at +64 KiB.
pub const GICR_IIDR: usize = 0x0004;
pub const GICR_TYPER: usize = 0x0008;
pub const GICR_WAKER: usize = 0x0014;
pub const GICR_PIDR2: usize = 0xffe8;
pub const SGI_BASE: usize = 0x1_0000;

// GICv2 CPU interface.
pub const GICC_CTLR: usize = 0x00;
pub const GICC_PMR: usize = 0x04;
pub const GICC_BPR: usize = 0x08;
pub const GICC_IAR: usize = 0x0c;
pub const GICC_EOIR: usize = 0x10;
pub const GICC_RPR: usize = 0x14;
pub const GICC_HPPIR: usize = 0x18;
pub const GICC_IIDR: usize = 0xfc;
pub const GICC_DIR: usize = 0x1000;

/// Which CPUs an SGI goes to.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The CPUs of this mask of CPU indexes.
    Cpus(u32),
    /// Every CPU but the sender.
    Others,
}

/// The GIC version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// The GIC of this machine.
pub struct Gic {
    pub version: Version,
    pub gicd: usize,
    pub gicc: usize,
    /// GICv3: each CPU's redistributor frame (RD_base), by CPU index.
    pub gicr: [usize; MAX_CPUS],
    /// GICv3: the number of frames in the first region and whether the last had Last set.
    pub frames: usize,
    /// GICv2: each CPU's interface bit (from its banked GICD_ITARGETSR0).
    pub v2_if: [AtomicU8; MAX_CPUS],
    pub mpidr: [u64; MAX_CPUS],
    pub cpu_count: usize,
    /// INTIDs the distributor implements (32 * (ITLinesNumber + 1), at most 1020).
    pub lines: u32,
}

impl Gic {
    /// Finds the frames; GICv3: matches each CPU's MPIDR to a redistributor by GICR_TYPER.
    pub fn new(p: &Platform) -> Result<Gic, &'static str> {
        let mut g = Gic {
            version: Version::V3,
            gicd: 0,
            gicc: 0,
            gicr: [0; MAX_CPUS],
            frames: 0,
            v2_if: [const { AtomicU8::new(0) }; MAX_CPUS],
            mpidr: p.mpidr,
            cpu_count: p.cpu_count,
            lines: 0,
        };
        match p.gic {
            GicDesc::V2 { gicd, gicc } => {
                g.version = Version::V2;
                g.gicd = gicd;
                g.gicc = gicc;
            }
            GicDesc::V3 {
                gicd,
                gicr,
                gicr_size,
                stride,
            } => {
                g.gicd = gicd;
                let mut off = 0;
                loop {
                    let typer = read64(gicr + off + GICR_TYPER);
                    // GICv4 frames add VLPI_base and a reserved frame (GICR_TYPER.VLPIS).
                    let frame = match stride {
                        0 if typer & (1 << 1) != 0 => 0x40000,
                        0 => 0x20000,
                        s => s,
                    };
                    let aff = typer >> 32;
                    for c in 0..p.cpu_count {
                        let m = p.mpidr[c];
                        let want = (m & 0xff_ffff) | ((m >> 32 & 0xff) << 24);
                        if want == aff {
                            g.gicr[c] = gicr + off;
                        }
                    }
                    g.frames += 1;
                    off += frame;
                    if typer & (1 << 4) != 0 || off + frame > gicr_size.max(frame) {
                        break;
                    }
                }
                if g.gicr[..p.cpu_count].contains(&0) {
                    return Err("a CPU has no redistributor");
                }
            }
        }
        let itlines = read32(g.gicd + GICD_TYPER) & 0x1f;
        g.lines = (32 * (itlines + 1)).min(1020);
        Ok(g)
    }

    /// GICv2: the CPU interface bit of CPU `cpu`.
    pub fn if_bit(&self, cpu: usize) -> u8 {
        self.v2_if[cpu].load(Ordering::Relaxed)
    }

    /// Distributor register address.
    pub fn d(&self, off: usize) -> usize {
        self.gicd + off
    }

    /// The base of the per-interrupt registers that hold `intid` for `cpu`: its redistributor's
    /// SGI_base (GICv3, INTIDs < 32), else the distributor (GICv2 banks INTIDs < 32 by the CPU
    /// that accesses, so `cpu` must then be the current CPU).
    pub fn irq_base(&self, cpu: usize, intid: u32) -> usize {
        if intid < 32 && self.version == Version::V3 {
            self.gicr[cpu] + SGI_BASE
        } else {
            self.gicd
        }
    }

    /// Writes the bit of `intid` in the one-bit-per-interrupt register group at `reg`.
    pub fn set_bit(&self, cpu: usize, reg: usize, intid: u32) {
        let a = self.irq_base(cpu, intid) + reg + (intid as usize / 32) * 4;
        write32(a, 1 << (intid % 32));
        hw::dsb();
    }

    /// Reads the bit of `intid` in the register group at `reg`.
    pub fn get_bit(&self, cpu: usize, reg: usize, intid: u32) -> bool {
        let a = self.irq_base(cpu, intid) + reg + (intid as usize / 32) * 4;
        read32(a) & (1 << (intid % 32)) != 0
    }

    pub fn enable(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ISENABLER, intid);
        if self.version == Version::V3 && intid >= 32 {
            // GICD writes are asynchronous for enable bits: wait for RWP.
            hw::wait_until(hw::us(10_000), || {
                read32(self.d(GICD_CTLR)) & (1 << 31) == 0
            });
        }
    }
    pub fn disable(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ICENABLER, intid);
        if self.version == Version::V3 && intid >= 32 {
            hw::wait_until(hw::us(10_000), || {
                read32(self.d(GICD_CTLR)) & (1 << 31) == 0
            });
        }
    }
    pub fn pend(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ISPENDR, intid);
    }
    pub fn unpend(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ICPENDR, intid);
    }
    pub fn activate(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ISACTIVER, intid);
    }
    pub fn deactivate(&self, cpu: usize, intid: u32) {
        self.set_bit(cpu, GICD_ICACTIVER, intid);
    }
    pub fn is_enabled(&self, cpu: usize, intid: u32) -> bool {
        self.get_bit(cpu, GICD_ISENABLER, intid)
    }
    pub fn is_pending(&self, cpu: usize, intid: u32) -> bool {
        self.get_bit(cpu, GICD_ISPENDR, intid)
    }
    pub fn is_active(&self, cpu: usize, intid: u32) -> bool {
        self.get_bit(cpu, GICD_ISACTIVER, intid)
    }

    /// Sets the priority of `intid` (byte access, allowed on both versions).
    pub fn set_priority(&self, cpu: usize, intid: u32, p: u8) {
        hw::write8(
            self.irq_base(cpu, intid) + GICD_IPRIORITYR + intid as usize,
            p,
        );
        hw::dsb();
    }
    pub fn priority(&self, cpu: usize, intid: u32) -> u8 {
        hw::read8(self.irq_base(cpu, intid) + GICD_IPRIORITYR + intid as usize)
    }

    /// Edge (true) or level (false) for an SPI or PPI.
    pub fn set_edge(&self, cpu: usize, intid: u32, edge: bool) {
        let a = self.irq_base(cpu, intid) + GICD_ICFGR + (intid as usize / 16) * 4;
        let shift = (intid % 16) * 2 + 1;
        let v = read32(a);
        write32(
            a,
            if edge {
                v | 1 << shift
            } else {
                v & !(1 << shift)
            },
        );
        hw::dsb();
    }

    /// Routes SPI `intid` to CPU `cpu`.
    pub fn route(&self, intid: u32, cpu: usize) {
        match self.version {
            Version::V3 => {
                let m = self.mpidr[cpu];
                write64(
                    self.d(GICD_IROUTER + 8 * intid as usize),
                    m & 0xff_00ff_ffff,
                );
            }
            Version::V2 => hw::write8(self.d(GICD_ITARGETSR + intid as usize), self.if_bit(cpu)),
        }
        hw::dsb();
    }

    /// Brings up this CPU's side: the GICv3 redistributor wake-up and system-register
    /// interface, or the GICv2 interface bit; priority mask open, all SGIs/PPIs Group 1 (v3).
    pub fn cpu_init(&self) {
        let c = hw::cpu();
        match self.version {
            Version::V3 => {
                let rd = self.gicr[c];
                let w = read32(rd + GICR_WAKER);
                write32(rd + GICR_WAKER, w & !(1 << 1));
                hw::wait_until(hw::us(100_000), || read32(rd + GICR_WAKER) & (1 << 2) == 0);
                write32(rd + SGI_BASE + GICD_IGROUPR, 0xffff_ffff);
                msr!("icc_sre_el1", mrs!("icc_sre_el1") | 1);
                msr!("icc_pmr_el1", 0xff);
                msr!("icc_bpr1_el1", 0);
                msr!("icc_ctlr_el1", 0); // EOImode 0, CBPR 0
                msr!("icc_igrpen1_el1", 1);
            }
            Version::V2 => {
                self.v2_if[c].store(hw::read8(self.d(GICD_ITARGETSR)), Ordering::Relaxed);
                write32(self.gicc + GICC_PMR, 0xff);
                write32(self.gicc + GICC_BPR, 0);
                write32(self.gicc + GICC_CTLR, 0b11); // EnableGrp0/1, EOImode 0
            }
        }
        hw::dsb();
    }

    /// Distributor on: GICv3 Group 1 (ARE is RAO with DS = 1), SPIs Group 1; GICv2 enabled.
    pub fn dist_init(&self) {
        match self.version {
            Version::V3 => {
                write32(self.d(GICD_CTLR), 0);
                hw::wait_until(hw::us(10_000), || {
                    read32(self.d(GICD_CTLR)) & (1 << 31) == 0
                });
                for i in 1..(self.lines as usize / 32) {
                    write32(self.d(GICD_IGROUPR + 4 * i), 0xffff_ffff);
                }
                write32(self.d(GICD_CTLR), (1 << 4) | 0b10);
                hw::wait_until(hw::us(10_000), || {
                    read32(self.d(GICD_CTLR)) & (1 << 31) == 0
                });
            }
            Version::V2 => write32(self.d(GICD_CTLR), 0b11),
        }
    }

    // --- CPU interface ---

    /// Acknowledge: the raw IAR (GICv2: source CPU in bits 12:10).
    #[inline(always)]
    pub fn ack(&self) -> u32 {
        match self.version {
            Version::V3 => mrs!("icc_iar1_el1") as u32,
            Version::V2 => read32(self.gicc + GICC_IAR),
        }
    }
    /// The INTID of a raw IAR value.
    pub fn intid(&self, iar: u32) -> u32 {
        match self.version {
            Version::V3 => iar & 0xff_ffff,
            Version::V2 => iar & 0x3ff,
        }
    }
    /// End of interrupt (priority drop, and deactivation unless EOImode = 1).
    #[inline(always)]
    pub fn eoi(&self, iar: u32) {
        match self.version {
            Version::V3 => msr!("icc_eoir1_el1", iar as u64),
            Version::V2 => write32(self.gicc + GICC_EOIR, iar),
        }
    }
    /// Deactivate (EOImode = 1).
    #[inline(always)]
    pub fn dir(&self, iar: u32) {
        match self.version {
            Version::V3 => msr!("icc_dir_el1", iar as u64),
            Version::V2 => write32(self.gicc + GICC_DIR, iar),
        }
    }
    pub fn pmr(&self) -> u32 {
        match self.version {
            Version::V3 => mrs!("icc_pmr_el1") as u32,
            Version::V2 => read32(self.gicc + GICC_PMR),
        }
    }
    #[inline(always)]
    pub fn set_pmr(&self, v: u32) {
        match self.version {
            Version::V3 => msr!("icc_pmr_el1", v as u64),
            Version::V2 => write32(self.gicc + GICC_PMR, v),
        }
    }
    pub fn bpr(&self) -> u32 {
        match self.version {
            Version::V3 => mrs!("icc_bpr1_el1") as u32,
            Version::V2 => read32(self.gicc + GICC_BPR),
        }
    }
    pub fn set_bpr(&self, v: u32) {
        match self.version {
            Version::V3 => msr!("icc_bpr1_el1", v as u64),
            Version::V2 => write32(self.gicc + GICC_BPR, v),
        }
    }
    pub fn rpr(&self) -> u32 {
        match self.version {
            Version::V3 => mrs!("icc_rpr_el1") as u32,
            Version::V2 => read32(self.gicc + GICC_RPR),
        }
    }
    pub fn hppir(&self) -> u32 {
        match self.version {
            Version::V3 => mrs!("icc_hppir1_el1") as u32,
            Version::V2 => read32(self.gicc + GICC_HPPIR),
        }
    }
    /// Sets EOImode (split priority drop and deactivation).
    pub fn set_eoimode(&self, split: bool) {
        match self.version {
            Version::V3 => {
                let c = mrs!("icc_ctlr_el1");
                msr!("icc_ctlr_el1", if split { c | 2 } else { c & !2 });
            }
            Version::V2 => {
                let c = read32(self.gicc + GICC_CTLR);
                write32(
                    self.gicc + GICC_CTLR,
                    if split { c | 1 << 9 } else { c & !(1 << 9) },
                );
            }
        }
    }

    /// Sends SGI `id`.
    pub fn sgi(&self, id: u32, t: Target) {
        match self.version {
            Version::V3 => {
                let v = match t {
                    Target::Others => 1 << 40,
                    Target::Cpus(mask) => {
                        let mut list = 0u64;
                        let mut first = None;
                        for c in 0..self.cpu_count {
                            if mask & (1 << c) != 0 {
                                list |= 1 << (self.mpidr[c] & 0xf);
                                first.get_or_insert(self.mpidr[c]);
                            }
                        }
                        let m = first.unwrap_or(0);
                        list | (m >> 8 & 0xff) << 16
                            | (m >> 16 & 0xff) << 32
                            | (m >> 32 & 0xff) << 48
                    }
                };
                self.sgi1r(v | (id as u64 & 0xf) << 24);
            }
            Version::V2 => {
                let v = match t {
                    Target::Others => 1 << 24,
                    Target::Cpus(mask) => {
                        let mut list = 0u32;
                        for c in 0..self.cpu_count {
                            if mask & (1 << c) != 0 {
                                list |= self.if_bit(c) as u32;
                            }
                        }
                        list << 16
                    }
                };
                hw::dsb();
                write32(self.d(GICD_SGIR), v | (id & 0xf));
                hw::dsb();
            }
        }
    }

    /// Writes ICC_SGI1R_EL1 as given.
    #[inline(always)]
    pub fn sgi1r(&self, v: u64) {
        hw::dsb();
        msr!("icc_sgi1r_el1", v);
    }
}
