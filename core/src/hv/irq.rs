//! Physical interrupts taken at EL2, as policy: what each one is, and how one meant for a VM
//! reaches its vGIC.
//!
//! While a guest runs every physical interrupt exits to EL2 (HCR_EL2.IMO), and the host runs
//! with EOImode=1 (EOIR is the priority drop, DIR the deactivation). The shell acknowledges an
//! interrupt and drops its priority, asks [`HostIrqs::classify`] what it is, and then:
//!
//! * a vCPU's timer (EL1 virtual or physical timer PPI) or a passed-through SPI is **linked**:
//!   injected into the vGIC with the list register's HW bit ([`inject_timer`],
//!   [`forward_passthrough`]) and left active; the guest's completion of the virtual interrupt
//!   deactivates it in hardware, so the completion needs no exit;
//! * everything else is deactivated at once: the kick SGI and the maintenance interrupt carry
//!   no payload (the vGIC fold and flush around every exit do the work), the console UART's
//!   interrupt means input to read, and an unexpected interrupt is logged once.
//!
//! A passed-through SPI goes to vCPU 0's view of the vGIC, which routes it to the vCPU the
//! guest targeted; if that vCPU runs on another CPU it is kicked (and counted: the physical
//! route lagged the guest's).

use alloc::collections::BTreeMap;
use core::sync::atomic::Ordering;

use super::{Cpus, KICK_SGI, kick};
use crate::gic::GicFacts;
use crate::platform::{GicInfo, PlatformInfo, TimerInfo};
use crate::vgic::PhysOp;
use crate::vgic::irq::IntId;
use crate::vm::machine::{InjectKind, Vm};

/// The maintenance interrupt when the device tree does not name one: PPI 9 (INTID 25), the
/// Arm Base System Architecture's choice and every board exitless knows.
pub const DEFAULT_MAINTENANCE_INTID: u32 = 25;

/// The physical interrupts the hypervisor itself uses, from the device tree and the GIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostIrqs {
    /// List registers of the virtual CPU interface.
    pub lr_count: usize,
    /// The GIC's maintenance interrupt.
    pub maintenance: u32,
    /// The EL1 virtual timer's PPI.
    pub vtimer: u32,
    /// The EL1 physical timer's PPI.
    pub ptimer: u32,
    /// The console UART's interrupt, if the device tree gives one.
    pub uart: Option<u32>,
}

/// What a physical interrupt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhysIrq {
    /// The running vCPU's EL1 virtual or physical timer: linked into its vGIC.
    Timer,
    /// A passed-through device's SPI, owned by VM `vm`: linked into that VM's vGIC.
    Passthrough {
        /// The VM (index) the SPI belongs to.
        vm: usize,
    },
    /// Another CPU kicked this one out of its guest.
    Kick,
    /// The list registers need attention (underflow, EOI count).
    Maintenance,
    /// The console UART has input.
    ConsoleUart,
    /// Nothing exitless expects.
    Unexpected,
}

impl PhysIrq {
    /// True if the interrupt stays active for the guest to complete (HW bit); false if the
    /// hypervisor deactivates it itself.
    pub fn is_linked(self) -> bool {
        matches!(self, PhysIrq::Timer | PhysIrq::Passthrough { .. })
    }
}

impl HostIrqs {
    /// The facts from the device tree's timer, GIC and console nodes and the GIC's registers.
    pub fn new(
        timer: &TimerInfo,
        gic: Option<&GicInfo>,
        uart_irq: Option<u32>,
        gic_facts: &GicFacts,
    ) -> Self {
        HostIrqs {
            lr_count: usize::from(gic_facts.lr_count),
            maintenance: gic
                .and_then(GicInfo::maintenance)
                .map_or(DEFAULT_MAINTENANCE_INTID, |m| m.intid),
            vtimer: timer.virt.intid,
            ptimer: timer.phys.intid,
            uart: uart_irq,
        }
    }

    /// The facts of a platform; `None` if its device tree has no timer.
    pub fn from_platform(info: &PlatformInfo<'_>, gic_facts: &GicFacts) -> Option<Self> {
        let uart = info.console.ok().and_then(|u| u.irq).map(|i| i.intid);
        Some(Self::new(
            info.timer.as_ref()?,
            info.gic.as_ref(),
            uart,
            gic_facts,
        ))
    }

    /// What physical interrupt `id` is. `passthrough` maps passed-through SPIs to their VM.
    ///
    /// The timers are checked first (they are the most frequent), then the passed-through
    /// SPIs, then the hypervisor's own interrupts.
    pub fn classify(&self, id: u32, passthrough: &BTreeMap<u32, usize>) -> PhysIrq {
        if id == self.vtimer || id == self.ptimer {
            PhysIrq::Timer
        } else if let Some(&vm) = passthrough.get(&id) {
            PhysIrq::Passthrough { vm }
        } else if id == KICK_SGI {
            PhysIrq::Kick
        } else if id == self.maintenance {
            PhysIrq::Maintenance
        } else if Some(id) == self.uart {
            PhysIrq::ConsoleUart
        } else {
            PhysIrq::Unexpected
        }
    }
}

/// Injects the running vCPU `v`'s timer interrupt `id`, linked to the physical one.
pub fn inject_timer(vm: &Vm, v: usize, id: u32) {
    vm.vgic.lock().inject_hw(v, IntId(id), id);
    vm.stats.inject(InjectKind::TimerPpi);
}

/// Injects passed-through SPI `id` into `vm`, linked to the physical one, taken on physical
/// CPU `cpu`; kicks the vCPU the guest routed it to.
pub fn forward_passthrough(vm: &Vm, id: u32, cpu: usize, cpus: &mut impl Cpus) {
    let (target, kicks) = {
        let mut vgic = vm.vgic.lock();
        vgic.inject_hw(0, IntId(id), id);
        (vgic.target(0, IntId(id)), vgic.take_kicks())
    };
    vm.stats.inject(InjectKind::PassthroughSpi);
    if target
        .and_then(|t| vm.vcpus.get(t))
        .is_some_and(|s| s.pcpu != cpu)
    {
        vm.stats.passthrough_remote.fetch_add(1, Ordering::Relaxed);
    }
    kick(vm, cpu, kicks, cpus);
}

/// The physical CPU a linked interrupt must be routed to when the vGIC asks for a route (the
/// CPU of the vCPU it names); `None` for any other operation or an unknown vCPU.
pub fn phys_route_cpu(vm: &Vm, op: &PhysOp) -> Option<usize> {
    match *op {
        PhysOp::Route(_, v) => vm.vcpus.get(v).map(|slot| slot.pcpu),
        _ => None,
    }
}
