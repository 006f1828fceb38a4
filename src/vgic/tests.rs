//! Tests of the per-interrupt operations shared by the register tables.

use super::*;

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
    assert_eq!(g.phys.deactivate, [27]);
}
