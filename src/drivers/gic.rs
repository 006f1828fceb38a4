//! The physical GIC, whichever version the device tree describes: one handle the boot path
//! initialises and asks for its facts.

use spin::Once;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::ReadWrite;

use super::gicv2::GicV2;
use super::gicv3::GicV3;
use exitless_core::gic::GicFacts;
use exitless_core::platform::GicInfo;

/// The physical GIC.
#[allow(clippy::large_enum_variant, reason = "one instance, in a static")]
pub enum Gic {
    /// A GICv2.
    V2(GicV2),
    /// A GICv3/v4.
    V3(GicV3),
}

static GIC: Once<Gic> = Once::new();

/// Creates the GIC driver and sets up the distributor (boot CPU, once).
///
/// # Safety
///
/// `info`'s frames must be the GIC's, mapped as device memory for the rest of the run, and
/// driven by no other code.
pub unsafe fn init(info: &GicInfo) -> Result<&'static Gic, &'static str> {
    let gic = match info {
        // SAFETY: forwarded from the caller.
        GicInfo::V2(v2) => Gic::V2(unsafe { GicV2::new(v2) }.ok_or("GICv2 without GICH")?),
        // SAFETY: forwarded from the caller.
        GicInfo::V3(v3) => Gic::V3(unsafe { GicV3::new(v3) }),
    };
    let gic = GIC.call_once(|| gic);
    match gic {
        Gic::V2(g) => g.init_distributor(),
        Gic::V3(g) => g.init_distributor(),
    }
    Ok(gic)
}

/// The GIC, once [`init`] ran.
pub fn get() -> Option<&'static Gic> {
    GIC.get()
}

impl Gic {
    /// Per-CPU set-up (every CPU, the boot CPU included).
    pub fn init_cpu(&self) -> Result<(), &'static str> {
        match self {
            Gic::V2(g) => {
                g.init_cpu();
                Ok(())
            }
            Gic::V3(g) => g.init_cpu(),
        }
    }

    /// What the GIC offers the hypervisor.
    pub fn facts(&self) -> GicFacts {
        match self {
            Gic::V2(g) => g.facts(),
            Gic::V3(g) => g.facts(),
        }
    }
}

/// Writes byte `index` of a byte-per-interrupt register array (IPRIORITYR, ITARGETSR) with
/// word accesses, keeping the other bytes.
pub(super) fn set_byte_field(regs: &[ReadWrite<u32>], index: usize, value: u8) {
    let Some(reg) = regs.get(index / 4) else {
        return;
    };
    let shift = (index % 4) * 8;
    reg.set((reg.get() & !(0xff << shift)) | (value as u32) << shift);
}

/// Writes interrupt `intid`'s bit to a set-register array (ISACTIVER, ISPENDR...) when `on`,
/// to its clear twin (ICACTIVER, ICPENDR...) otherwise: a 1 acts, a 0 leaves the others alone.
pub(super) fn set_or_clear(set: &[ReadWrite<u32>], clear: &[ReadWrite<u32>], intid: u32, on: bool) {
    let regs = if on { set } else { clear };
    if let Some(reg) = regs.get(intid as usize / 32) {
        reg.set(1 << (intid % 32));
    }
}

/// Sets interrupt `intid`'s trigger in an ICFGR array: level-sensitive (0) or edge (1) in the
/// upper bit of its 2-bit field.
pub(super) fn set_trigger(icfgr: &[ReadWrite<u32>], intid: usize, level: bool) {
    let Some(cfg) = icfgr.get(intid / 16) else {
        return;
    };
    let bit = 2 << ((intid % 16) * 2);
    cfg.set(if level {
        cfg.get() & !bit
    } else {
        cfg.get() | bit
    });
}

/// How to reach a physical CPU with an SGI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTarget {
    /// MPIDR affinity (GICv3).
    pub mpidr: u64,
    /// GICv2 CPU interface bit (read from the banked ITARGETSR0).
    pub v2_mask: u8,
}

/// The priority exitless gives every physical interrupt it takes.
const PRIORITY: u8 = 0xa0;

impl Gic {
    /// This CPU's SGI target (call on the CPU itself).
    pub fn this_cpu_target(&self) -> CpuTarget {
        let v2_mask = match self {
            Gic::V2(g) => g.cpu_target_byte() as u8,
            Gic::V3(_) => 0,
        };
        CpuTarget {
            mpidr: crate::arch::mpidr(),
            v2_mask,
        }
    }

    /// Acknowledges the highest-priority pending interrupt; `None` if there is none (1023).
    pub fn ack(&self) -> Option<u32> {
        let id = match self {
            Gic::V2(g) => g.ack(),
            Gic::V3(_) => super::gicv3::cpuif::ack(),
        };
        // 1020..=1023 are special (1023: nothing pending); LPIs (8192 and up) are interrupts.
        (!(1020..1024).contains(&id)).then_some(id)
    }

    /// Priority drop (EOImode=1): the interrupt stays active until [`Gic::deactivate`] or the
    /// guest's completion of a linked virtual interrupt.
    pub fn eoi(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.eoi(intid),
            Gic::V3(_) => super::gicv3::cpuif::eoi(intid),
        }
    }

    /// Deactivates a physical interrupt.
    pub fn deactivate(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.deactivate(intid),
            Gic::V3(_) => super::gicv3::cpuif::deactivate(intid),
        }
    }

    /// Sets or clears the active state of a physical interrupt (SGIs and PPIs: the calling
    /// CPU's).
    pub fn set_active(&self, intid: u32, on: bool) {
        match self {
            Gic::V2(g) => g.set_active(intid, on),
            Gic::V3(g) => g.set_active(intid, on),
        }
    }

    /// Clears the pending state of a physical interrupt (SGIs and PPIs: the calling CPU's).
    pub fn clear_pending(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.clear_pending(intid),
            Gic::V3(g) => g.clear_pending(intid),
        }
    }

    /// Applies what the vGIC asked of a linked physical interrupt; `route` is the CPU that
    /// a [`PhysOp::Route`](exitless_core::vgic::PhysOp::Route) names (None: leave the route).
    pub fn apply(&self, op: exitless_core::vgic::PhysOp, route: Option<CpuTarget>) {
        use exitless_core::vgic::PhysOp;
        match op {
            PhysOp::Deactivate(p) => self.deactivate(p),
            PhysOp::Activate(p) => self.set_active(p, true),
            PhysOp::ClearPending(p) => self.clear_pending(p),
            PhysOp::Route(p, _) => {
                if let Some(t) = route {
                    self.route_spi(p, t);
                }
            }
        }
    }

    /// Routes SPI `intid` to the physical CPU `target`.
    pub fn route_spi(&self, intid: u32, target: CpuTarget) {
        match self {
            Gic::V2(g) => g.route_spi(intid, target.v2_mask),
            Gic::V3(g) => g.route_spi(intid, target.mpidr),
        }
    }

    /// Sends SGI `sgi` to the physical CPU `target`.
    pub fn send_sgi(&self, target: CpuTarget, sgi: u32) {
        match self {
            Gic::V2(g) => g.send_sgi(target.v2_mask, sgi),
            Gic::V3(_) => super::gicv3::cpuif::send_sgi(target.mpidr, sgi),
        }
    }

    /// Sends SGI `sgi` to every physical CPU but the calling one (GICv3: ICC_SGI1R_EL1.IRM;
    /// GICv2: GICD_SGIR.TargetListFilter = 0b01).
    pub fn send_sgi_to_others(&self, sgi: u32) {
        match self {
            Gic::V2(g) => g.send_sgi_to_others(sgi),
            Gic::V3(_) => super::gicv3::cpuif::send_sgi_to_others(sgi),
        }
    }

    /// Enables SGI or PPI `intid` on the calling CPU.
    pub fn enable_private(&self, intid: u32) {
        match self {
            Gic::V2(g) => g.enable_private(intid, PRIORITY),
            Gic::V3(g) => g.enable_private(intid, PRIORITY),
        }
    }

    /// Enables SPI `intid`, delivered to `target`.
    pub fn enable_spi(&self, intid: u32, target: CpuTarget, level: bool) {
        match self {
            Gic::V2(g) => g.enable_spi(intid, PRIORITY, target.v2_mask, level),
            Gic::V3(g) => g.enable_spi(intid, PRIORITY, target.mpidr, level),
        }
    }

    /// Writes a vCPU's list registers and hypervisor control register.
    pub fn load_lrs(
        &self,
        shadow: &exitless_core::vgic::cpu_if::CpuIfShadow,
        lr_count: usize,
        prev: usize,
    ) {
        match self {
            Gic::V2(g) => g.load_lrs(shadow, prev),
            Gic::V3(_) => super::gicv3::cpuif::load_lrs(shadow, lr_count, prev),
        }
    }

    /// Reads them back after the vCPU exited.
    pub fn save_lrs(&self, shadow: &mut exitless_core::vgic::cpu_if::CpuIfShadow) {
        match self {
            Gic::V2(g) => g.save_lrs(shadow),
            Gic::V3(_) => super::gicv3::cpuif::save_lrs(shadow),
        }
    }

    /// Resets the virtual CPU interface for a vCPU that starts afresh.
    pub fn reset_virtual(&self, lr_count: usize) {
        match self {
            Gic::V2(g) => g.reset_virtual(lr_count),
            Gic::V3(_) => super::gicv3::cpuif::reset_virtual(lr_count),
        }
    }
}
