//! Physical interrupts. While a guest runs, every physical interrupt exits to EL2
//! (HCR_EL2.IMO); [`handle_guest`] takes them all:
//!
//! * the vCPU's timers (EL1 virtual and physical timer PPIs): priority drop only, then injected
//!   into the vGIC linked to the physical interrupt (list register HW bit). It stays active
//!   until the guest completes the virtual one, which deactivates it in hardware: no exit for
//!   the completion, and a line still asserted fires again;
//! * the kick SGI (another CPU changed what this vCPU must see) and the maintenance interrupt
//!   (list registers need a refill): dropped and deactivated; the fold and flush around every
//!   exit do the work;
//! * the console UART's interrupt: input for the guest with the console focus;
//! * a passed-through device's SPI: priority drop only, injected into its VM linked to the
//!   physical SPI (HW bit), so the guest's completion deactivates it in hardware;
//! * anything else: dropped and deactivated, logged once.
//!
//! The host runs with EOImode=1: EOIR is the priority drop, DIR the deactivation.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{VmRuntime, console, hw};
use crate::drivers::gic;
use exitless_core::vgic::irq::IntId;
use exitless_core::vm::machine::InjectKind;

static UNEXPECTED_LOGGED: AtomicBool = AtomicBool::new(false);

/// Takes every pending physical interrupt after an IRQ exit of vCPU `v` of `rt`.
pub fn handle_guest(cpu: usize, rt: &VmRuntime, v: usize) {
    let Some(g) = gic::get() else { return };
    let h = hw();
    while let Some(id) = g.ack() {
        g.eoi(id);
        if id == h.vtimer || id == h.ptimer {
            let mut vgic = rt.vm.vgic.lock();
            vgic.inject_hw(v, IntId(id), id);
            drop(vgic);
            rt.vm.stats.inject(InjectKind::TimerPpi);
            continue;
        }
        if forward_passthrough(cpu, id) {
            continue;
        }
        g.deactivate(id);
        let slot = &rt.vm.vcpus[v];
        if id == super::KICK_SGI {
            slot.stats.lock().kicks += 1;
        } else if id == h.maintenance {
            slot.stats.lock().maintenance += 1;
        } else if Some(id) == h.uart_irq {
            console::input(cpu);
        } else if !UNEXPECTED_LOGGED.swap(true, Ordering::Relaxed) {
            log::warn!("unexpected physical interrupt {id} on CPU {cpu} (further ones not logged)");
        }
    }
}

/// Injects a passed-through SPI into its VM (after the priority drop); false if `id` is not
/// passed through.
fn forward_passthrough(cpu: usize, id: u32) -> bool {
    let Some(&vm_id) = super::PASSTHROUGH_IRQS.get().and_then(|m| m.get(&id)) else {
        return false;
    };
    let Some(rt) = super::VMS.get().and_then(|v| v.get(vm_id)) else {
        return false;
    };
    let mut vgic = rt.vm.vgic.lock();
    vgic.inject_hw(0, IntId(id), id);
    let target = vgic.target(0, IntId(id));
    let kicks = vgic.take_kicks();
    drop(vgic);
    rt.vm.stats.inject(InjectKind::PassthroughSpi);
    if target
        .and_then(|t| rt.vm.vcpus.get(t))
        .is_some_and(|s| s.pcpu != cpu)
    {
        rt.vm
            .stats
            .passthrough_remote
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    super::run::kick(cpu, &rt.vm, kicks);
    true
}

/// A CPU without a running vCPU polls for the console interrupt (CPU 0 only).
pub fn poll_host(cpu: usize) {
    let Some(g) = gic::get() else { return };
    while let Some(id) = g.ack() {
        g.eoi(id);
        if forward_passthrough(cpu, id) {
            continue;
        }
        g.deactivate(id);
        if Some(id) == hw().uart_irq {
            console::input(cpu);
        }
    }
    console::input(cpu);
}
