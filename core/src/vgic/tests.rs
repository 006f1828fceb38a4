//! Tests of the per-interrupt operations shared by the register tables.

use super::*;
use crate::vgic::cpu_if::CpuIfShadow;

const V3: VgicConfig = VgicConfig {
    version: GicVersion::V3,
    vcpus: 4,
    spis: 64,
    lr_count: 4,
    pri_bits: 5,
};

#[test]
fn priority_keeps_only_implemented_bits() {
    let mut g = Vgic::new(&V3);
    g.set_priority(0, IntId(40), 0xff);
    assert_eq!(g.irq(0, IntId(40)).unwrap().priority, 0xf8);
    assert_eq!(g.priority_mask(), 0xf8);
}

#[test]
fn private_interrupts_are_banked_per_vcpu() {
    let mut g = Vgic::new(&V3);
    g.set_enabled(2, IntId(27), true);
    assert!(g.irq(2, IntId(27)).unwrap().enabled);
    assert!(!g.irq(1, IntId(27)).unwrap().enabled);
    g.set_enabled(1, IntId(40), true);
    assert!(g.irq(3, IntId(40)).unwrap().enabled, "SPIs are shared");
}

#[test]
fn sgi_trigger_is_read_only_edge() {
    let mut g = Vgic::new(&V3);
    g.set_trigger(0, IntId(5), Trigger::Level);
    assert_eq!(g.irq(0, IntId(5)).unwrap().trigger, Trigger::Edge);
    g.set_trigger(0, IntId(20), Trigger::Edge);
    assert_eq!(
        g.irq(0, IntId(20)).unwrap().trigger,
        Trigger::Edge,
        "PPIs are configurable"
    );
}

#[test]
fn out_of_range_interrupts_do_not_exist() {
    let mut g = Vgic::new(&V3);
    assert!(g.irq(0, IntId(96)).is_none());
    assert!(g.irq(4, IntId(3)).is_none());
    assert!(!g.update(0, IntId(1020), |i| i.enabled = true));
    assert_eq!(g.irq_count(), 96);
}

#[test]
fn clearing_pending_does_not_lower_an_asserted_level() {
    let mut g = Vgic::new(&V3);
    g.set_line_level(0, IntId(40), true);
    g.set_pending(0, IntId(40), false);
    assert!(g.irq(0, IntId(40)).unwrap().is_pending());
}

#[test]
fn v2_sgis_keep_one_pending_bit_per_source() {
    let cfg = VgicConfig {
        version: GicVersion::V2,
        ..V3
    };
    let mut g = Vgic::new(&cfg);
    g.send_sgi(1, 3, 0b1, true);
    g.send_sgi(2, 3, 0b1, true);
    assert_eq!(g.irq(0, IntId(3)).unwrap().sgi_sources, 0b110);
}

#[test]
fn reset_vcpu_clears_private_state_and_returns_active_linked_interrupts() {
    let mut g = Vgic::new(&V3);
    g.inject_hw(1, IntId(27), 27);
    g.set_active(1, IntId(27), true);
    g.set_enabled(1, IntId(27), true);
    g.reset_vcpu(1);
    let irq = g.irq(1, IntId(27)).unwrap();
    assert!(!irq.enabled && !irq.active && !irq.is_pending());
    // The activation the guest asked for is overridden: the physical twin ends inactive.
    assert_eq!(g.take_phys(1), [PhysOp::Deactivate(27)]);
}

/// The machine-down bug: vCPU 1 took a timer interrupt and went off (PSCI CPU_OFF); vCPU 0
/// wrote GICR_ISACTIVER0/ISPENDR0/ICPENDR0 bit 27 in vCPU 1's frame in a loop. With a queue
/// of operations every write grew the heap until it was exhausted; now the work is one
/// interrupt's desired state, and at CPU_ON the timer's twin ends deactivated, so it fires
/// again.
#[test]
fn writes_to_an_offline_vcpus_linked_timer_take_fixed_memory_and_power_on_deactivates_it() {
    let mut g = linked_timer(1);
    for i in 0..1_000_000 {
        match i % 3 {
            0 => g.set_active(1, IntId(27), true),
            1 => g.set_pending(1, IntId(27), true),
            _ => g.set_pending(1, IntId(27), false),
        }
    }
    g.set_pending(1, IntId(27), true);
    g.reset_vcpu(1);
    let work = g.take_phys(1);
    assert!(work.len() <= 3, "{work:?}");
    assert_eq!(work.last(), Some(&PhysOp::Deactivate(27)));
    assert!(!work.contains(&PhysOp::Activate(27)));
    assert!(g.take_phys(1).is_empty());
}

// --- Linked (HW) interrupts: the physical side follows the guest's register writes, on the
// --- CPU of the vCPU that owns the interrupt (KVM vgic_hw_irq_spending/_cpending/_change_active).

/// The guest acknowledges the interrupt in ICH_LR<n> (State: pending -> active).
fn guest_acks(sh: &mut CpuIfShadow, n: usize) {
    sh.lrs[n] = (sh.lrs[n] & !(3 << 62)) | 1 << 63;
}

/// A linked timer PPI of vCPU `v`, injected (physical active) and not yet taken.
fn linked_timer(v: VcpuId) -> Vgic {
    let mut g = Vgic::new(&V3);
    g.set_group_enables(false, true);
    g.set_group1(v, IntId(27), true);
    g.set_enabled(v, IntId(27), true);
    g.inject_hw(v, IntId(27), 27);
    g
}

/// The same, taken by the guest: active in the model (and physically).
fn linked_timer_taken() -> Vgic {
    let mut g = linked_timer(0);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 1);
    guest_acks(&mut sh, 0);
    g.fold(0, &sh);
    assert!(g.irq(0, IntId(27)).unwrap().active);
    g
}

/// KVM `vgic_v3_populate_lr`: "Never set pending+active on a HW interrupt, as the pending
/// state is kept at the physical distributor level." Found by the hostile guest: its timer,
/// taken and silenced, came back after every EOI (active+pending LR -> pending after the
/// deactivation) and the vCPU took it for ever.
#[test]
fn a_linked_interrupt_is_never_loaded_active_and_pending() {
    let mut g = linked_timer_taken();
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 1);
    assert_eq!(sh.lrs[0] >> 62, 0b10, "active only: {:#x}", sh.lrs[0]);
    // The guest's EOI deactivates the physical interrupt (HW) and empties the LR; its line is
    // low, so the interrupt is over.
    sh.lrs[0] &= !(3 << 62);
    g.fold(0, &sh);
    let irq = g.irq(0, IntId(27)).unwrap();
    assert!(!irq.active && !irq.is_pending(), "{irq:?}");
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0);
}

/// Found by the conformance guest under load: with one VM-wide queue, vCPU 2's flush took the
/// deactivation of vCPU 0's timer PPI and did it on its own CPU, and vCPU 0's timer never
/// fired again.
#[test]
fn physical_work_on_a_banked_ppi_is_queued_for_its_own_vcpu() {
    let mut g = linked_timer(1);
    g.resample_hw_level(1, IntId(27), false);
    assert!(g.take_phys(0).is_empty() && g.take_phys(2).is_empty());
    assert_eq!(g.take_phys(1), [PhysOp::Deactivate(27)]);
    assert!(g.take_phys(1).is_empty(), "taken once");
}

#[test]
fn icactiver_of_an_active_linked_interrupt_deactivates_the_physical_one() {
    let mut g = linked_timer_taken();
    assert!(g.take_phys(0).is_empty());
    g.set_active(0, IntId(27), false);
    let irq = g.irq(0, IntId(27)).unwrap();
    assert!(
        !irq.active && !irq.is_pending(),
        "the line is sampled again by the hardware"
    );
    assert_eq!(g.take_phys(0), [PhysOp::Deactivate(27)]);
}

#[test]
fn icactiver_of_a_pending_linked_level_interrupt_resamples_the_physical_line() {
    let mut g = linked_timer(0);
    g.set_active(0, IntId(27), false);
    assert!(!g.irq(0, IntId(27)).unwrap().is_pending());
    assert_eq!(g.take_phys(0), [PhysOp::Deactivate(27)]);
}

#[test]
fn icactiver_of_an_idle_linked_interrupt_does_nothing_physical() {
    let mut g = Vgic::new(&V3);
    g.inject_hw(0, IntId(27), 27);
    g.resample_hw_level(0, IntId(27), false);
    g.take_phys(0);
    g.set_active(0, IntId(27), false);
    assert!(g.take_phys(0).is_empty());
}

#[test]
fn icpendr_of_a_pending_linked_interrupt_clears_and_deactivates_the_physical_one() {
    let mut g = linked_timer(0);
    g.set_pending(0, IntId(27), false);
    assert!(!g.irq(0, IntId(27)).unwrap().is_pending());
    assert_eq!(
        g.take_phys(0),
        [PhysOp::ClearPending(27), PhysOp::Deactivate(27)]
    );
}

#[test]
fn icpendr_of_an_active_linked_interrupt_leaves_the_physical_one_active() {
    let mut g = linked_timer_taken();
    g.set_pending(0, IntId(27), false);
    assert!(g.irq(0, IntId(27)).unwrap().active);
    assert_eq!(
        g.take_phys(0),
        [PhysOp::ClearPending(27)],
        "the guest's deactivation through the HW bit ends it"
    );
}

#[test]
fn ispendr_and_isactiver_of_a_linked_interrupt_make_the_physical_one_active() {
    let mut g = Vgic::new(&V3);
    g.inject_hw(0, IntId(27), 27);
    g.resample_hw_level(0, IntId(27), false);
    g.take_phys(0);
    g.set_pending(0, IntId(27), true);
    assert!(g.irq(0, IntId(27)).unwrap().is_pending());
    assert_eq!(g.take_phys(0), [PhysOp::Activate(27)]);
    g.set_active(0, IntId(27), true);
    assert_eq!(g.take_phys(0), [PhysOp::Activate(27)]);
}

#[test]
fn unlinked_interrupts_ask_nothing_physical() {
    let mut g = Vgic::new(&V3);
    for on in [true, false] {
        g.set_pending(0, IntId(27), on);
        g.set_active(0, IntId(27), on);
    }
    assert!(g.take_phys(0).is_empty());
}

#[test]
fn physical_work_for_a_running_vcpu_kicks_it() {
    let mut g = linked_timer(1);
    let mut sh = CpuIfShadow::default();
    g.flush(1, &mut sh);
    g.take_kicks();
    // vCPU 0 writes vCPU 1's redistributor while vCPU 1 runs with the timer in an LR.
    g.set_pending(1, IntId(27), false);
    assert_ne!(g.take_kicks() & 0b10, 0);
    assert_eq!(g.take_phys(1).first(), Some(&PhysOp::ClearPending(27)));
}

// --- Linked SPIs follow the guest's routing (GICD_IROUTER / ITARGETSR) to the target vCPU's
// --- CPU, so a passed-through interrupt is taken where the guest wants it, with no kick.

fn linked_spi(version: GicVersion) -> Vgic {
    let mut g = Vgic::new(&VgicConfig { version, ..V3 });
    g.link_spi(IntId(40), 40);
    g
}

#[test]
fn irouter_of_a_linked_spi_routes_the_physical_spi_to_that_vcpus_cpu() {
    let mut g = linked_spi(GicVersion::V3);
    g.set_route(0, IntId(40), Route::Affinity(2));
    assert_eq!(
        g.take_phys(0),
        [PhysOp::Route(40, 2)],
        "queued for the writer"
    );
    assert!(g.take_phys(2).is_empty());
}

#[test]
fn irouter_irm_any_routes_the_physical_spi_to_vcpu0() {
    let mut g = linked_spi(GicVersion::V3);
    g.set_route(1, IntId(40), Route::Any(3));
    assert_eq!(g.take_phys(1), [PhysOp::Route(40, 0)]);
}

#[test]
fn irouter_to_an_affinity_with_no_vcpu_leaves_the_physical_route() {
    let mut g = linked_spi(GicVersion::V3);
    g.set_route(0, IntId(40), Route::Affinity(0x100));
    assert!(g.take_phys(0).is_empty());
}

#[test]
fn itargetsr_of_a_linked_spi_routes_to_the_lowest_targeted_vcpu() {
    let mut g = linked_spi(GicVersion::V2);
    g.set_route(0, IntId(40), Route::Targets(0b1100));
    assert_eq!(g.take_phys(0), [PhysOp::Route(40, 2)]);
    g.set_route(0, IntId(40), Route::Targets(0));
    assert!(
        g.take_phys(0).is_empty(),
        "no target: nothing to deliver, route left"
    );
    g.set_route(0, IntId(40), Route::Targets(0b1000_0000));
    assert!(
        g.take_phys(0).is_empty(),
        "CPU interface 7 does not exist in a 4-vCPU VM"
    );
}

#[test]
fn routing_an_unlinked_spi_asks_nothing_physical() {
    let mut g = Vgic::new(&V3);
    g.set_route(0, IntId(40), Route::Affinity(1));
    assert!(g.take_phys(0).is_empty());
}

#[test]
fn a_linked_spi_made_pending_by_the_guest_before_it_ever_fired_activates_the_physical_one() {
    let mut g = linked_spi(GicVersion::V3);
    g.set_pending(0, IntId(40), true);
    assert_eq!(g.take_phys(0), [PhysOp::Activate(40)]);
}
