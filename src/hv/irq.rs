//! Physical interrupts, hardware side. While a guest runs, every physical interrupt exits to
//! EL2 (HCR_EL2.IMO); [`handle_guest`] takes them all: it acknowledges each one and drops its
//! priority, asks the core what it is (`exitless_core::hv::irq::HostIrqs::classify`) and does
//! what the core's policy says:
//!
//! * the vCPU's timers and a passed-through device's SPI are linked: injected into the vGIC
//!   with the list register's HW bit and left active, so that the guest's completion
//!   deactivates them in hardware (no exit for the completion);
//! * the kick SGI and the maintenance interrupt are deactivated and counted (the vGIC fold and
//!   flush around every exit do the work); the console UART's interrupt is input to read (a
//!   console with no interrupt is polled instead, on CPU 0 at every interrupt exit);
//!   anything else is deactivated and logged once.
//!
//! The host runs with EOImode=1: EOIR is the priority drop, DIR the deactivation.

use core::sync::atomic::{AtomicBool, Ordering};

use super::run::GicCpus;
use super::{PASSTHROUGH_IRQS, VMS, VmRuntime, console, hw};
use crate::drivers::gic;
use exitless_core::hv::irq::{self as policy, PhysIrq};

static UNEXPECTED_LOGGED: AtomicBool = AtomicBool::new(false);

/// What a physical interrupt is, by the core's rules.
fn classify(id: u32) -> PhysIrq {
    match PASSTHROUGH_IRQS.get() {
        Some(pt) => hw().classify(id, pt),
        None => hw().classify(id, &alloc::collections::BTreeMap::new()),
    }
}

/// Takes every pending physical interrupt after an IRQ exit of vCPU `v` of `rt`. Returns the
/// timers whose interrupt it injected (bit 0 the virtual timer, bit 1 the physical one).
pub fn handle_guest(cpu: usize, rt: &VmRuntime, v: usize) -> u32 {
    let mut timers = 0;
    let Some(g) = gic::get() else { return timers };
    while let Some(id) = g.ack() {
        g.eoi(id);
        // An LPI has no active state: the priority drop is all its completion needs.
        if id >= 8192 {
            device_lpi(cpu, id);
            continue;
        }
        let kind = classify(id);
        match kind {
            PhysIrq::Timer => {
                policy::inject_timer(&rt.vm, v, id);
                timers |= if id == hw().vtimer { 1 } else { 2 };
            }
            PhysIrq::Passthrough { vm } => forward_passthrough(cpu, vm, id),
            PhysIrq::Kick => rt.vm.vcpus[v].stats.lock().kicks += 1,
            PhysIrq::Maintenance => rt.vm.vcpus[v].stats.lock().maintenance += 1,
            PhysIrq::ConsoleUart => console::input(cpu),
            PhysIrq::Unexpected => log_unexpected(cpu, id),
        }
        if !kind.is_linked() {
            g.deactivate(id);
        }
    }
    // A console without an interrupt in the device tree: CPU 0 polls it at each interrupt exit
    // (at least every guest timer tick), so typed input still arrives.
    if cpu == 0 && hw().uart.is_none() {
        console::input(cpu);
    }
    timers
}

/// A physical LPI of a device a VM owns: an event of that VM's ITS (one exit per MSI when it
/// arrives on the CPU of its target vCPU; otherwise that vCPU is kicked).
fn device_lpi(cpu: usize, id: u32) {
    let Some((vm, dev, event)) = crate::drivers::its::owner(id) else {
        log_unexpected(cpu, id);
        return;
    };
    let Some(rt) = VMS.get().and_then(|v| v.get(vm)) else {
        return;
    };
    let kicks = {
        let mut vgic = rt.vm.vgic.lock();
        if let Some(its) = vgic.its_mut() {
            let _ = its.raise(dev, event);
        }
        vgic.take_kicks()
    };
    super::run::kick(cpu, &rt.vm, kicks);
    rt.vm
        .stats
        .inject(exitless_core::vm::machine::InjectKind::Msi);
}

/// Injects passed-through SPI `id` into VM `vm` (after the priority drop).
fn forward_passthrough(cpu: usize, vm: usize, id: u32) {
    match VMS.get().and_then(|v| v.get(vm)) {
        Some(rt) => policy::forward_passthrough(&rt.vm, id, cpu, &mut GicCpus),
        // Not reachable: the map is built from the VMs. Never leave it active.
        None => {
            if let Some(g) = gic::get() {
                g.deactivate(id);
            }
        }
    }
}

fn log_unexpected(cpu: usize, id: u32) {
    if !UNEXPECTED_LOGGED.swap(true, Ordering::Relaxed) {
        log::warn!("unexpected physical interrupt {id} on CPU {cpu} (further ones not logged)");
    }
}

/// Takes what is pending on a CPU without a running vCPU: kicks (deactivated: they only ended a
/// wait), a passed-through SPI or a device's LPI routed here, console input (CPU 0, which also
/// polls a console that has no interrupt). Timer PPIs are not taken here (no vCPU runs);
/// anything but a passed-through SPI is deactivated.
pub fn poll_host(cpu: usize) {
    let Some(g) = gic::get() else { return };
    while let Some(id) = g.ack() {
        g.eoi(id);
        if id >= 8192 {
            device_lpi(cpu, id);
            continue;
        }
        match classify(id) {
            PhysIrq::Passthrough { vm } => forward_passthrough(cpu, vm, id),
            PhysIrq::ConsoleUart => {
                g.deactivate(id);
                console::input(cpu);
            }
            _ => g.deactivate(id),
        }
    }
    if cpu == 0 {
        console::input(cpu);
    }
}
