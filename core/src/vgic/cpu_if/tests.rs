//! The list-register rules, each as a test (KVM's LR overflow comment is the oracle).

use super::*;
use crate::platform::GicVersion;
use crate::vgic::VgicConfig;
use crate::vgic::irq::Route;
use crate::vgic::lr::LrFormat;

const V3: VgicConfig = VgicConfig {
    version: GicVersion::V3,
    vcpus: 2,
    spis: 64,
    lr_count: 4,
    pri_bits: 5,
};

fn vgic() -> Vgic {
    let mut g = Vgic::new(&V3);
    g.set_group_enables(true, true);
    g
}

/// An enabled group-1 SPI routed to vCPU 0 with priority `prio`.
fn spi(g: &mut Vgic, id: u32, prio: u8) {
    g.set_group1(0, IntId(id), true);
    g.set_priority(0, IntId(id), prio);
    g.set_trigger(0, IntId(id), Trigger::Edge);
    g.set_route(0, IntId(id), Route::Affinity(0));
    g.set_enabled(0, IntId(id), true);
}

fn ids(sh: &CpuIfShadow) -> Vec<u32> {
    sh.lrs[..sh.used]
        .iter()
        .map(|&v| LrFormat::V3.vintid(v))
        .collect()
}

fn state(sh: &CpuIfShadow, n: usize) -> LrState {
    LrFormat::V3.state(sh.lrs[n])
}

fn set_state(sh: &mut CpuIfShadow, n: usize, pending: bool, active: bool) {
    sh.lrs[n] = (sh.lrs[n] & !(3 << 62)) | ((pending as u64) << 62) | ((active as u64) << 63);
}

/// The guest acknowledges the interrupt in LR n (pending -> active).
fn ack(sh: &mut CpuIfShadow, n: usize) {
    set_state(sh, n, false, true);
}

/// The guest completes it (EOImode 0: priority drop and deactivation).
fn eoi(sh: &mut CpuIfShadow, n: usize) {
    set_state(sh, n, false, false);
}

#[test]
fn lr_priority_order_pending_highest_first() {
    let mut g = vgic();
    for (id, prio) in [(40, 0xa0), (41, 0x20), (42, 0x80)] {
        spi(&mut g, id, prio);
        g.set_pending(0, IntId(id), true);
    }
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [41, 42, 40]);
    assert_eq!(
        sh.hcr,
        hcr::EN,
        "no overflow: no maintenance interrupt requested"
    );
}

#[test]
fn lr_overflow_with_4_lrs_and_32_pending_delivers_all_in_order_exactly_once() {
    let mut g = vgic();
    for i in 0..32u32 {
        spi(&mut g, 32 + i, (i as u8 * 8) & 0xf8);
        g.set_pending(0, IntId(32 + i), true);
    }
    let mut delivered = Vec::new();
    let mut sh = CpuIfShadow::default();
    for _round in 0..64 {
        g.flush(0, &mut sh);
        if sh.used == 0 {
            break;
        }
        if delivered.len() + sh.used < 32 {
            assert!(sh.hcr & hcr::UIE != 0, "more pending than LRs needs UIE");
            assert!(sh.hcr & hcr::NPIE != 0, "pending left out needs NPIE");
        }
        // The guest takes and completes everything in the LRs, in the order the hardware
        // presents them (highest priority first).
        let mut order: Vec<usize> = (0..sh.used).collect();
        order.sort_by_key(|&n| (sh.lrs[n] >> 48) & 0xff);
        for n in order {
            delivered.push(LrFormat::V3.vintid(sh.lrs[n]));
            ack(&mut sh, n);
            eoi(&mut sh, n);
        }
        g.fold(0, &sh);
    }
    let expect: Vec<u32> = (32..64).collect();
    assert_eq!(delivered, expect, "every SPI once, in priority order");
    assert!(g.cpu(0).unwrap().stats.lr_overflows > 0);
}

#[test]
fn edge_pending_moves_into_the_lr_and_back_if_not_taken() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert!(
        !g.irq(0, IntId(40)).unwrap().pending_latch,
        "pending now lives in the LR"
    );
    assert_eq!(g.irq(0, IntId(40)).unwrap().resident, Some(0));
    g.fold(0, &sh);
    let irq = g.irq(0, IntId(40)).unwrap();
    assert!(
        irq.pending_latch && irq.resident.is_none(),
        "not taken: pending again"
    );
}

#[test]
fn active_plus_pending_uses_one_lr() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    ack(&mut sh, 0);
    g.fold(0, &sh);
    g.set_pending(0, IntId(40), true); // a second edge while the first is being handled
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [40]);
    assert_eq!(
        state(&sh, 0),
        LrState {
            pending: true,
            active: true
        }
    );
}

#[test]
fn pending_goes_before_active_when_lrs_are_short() {
    let mut g = vgic();
    // Four active interrupts (the guest is nested four deep) and one pending.
    for i in 0..4 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    spi(&mut g, 50, 0x08);
    g.set_pending(0, IntId(50), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh)[0], 50, "the pending interrupt is resident");
    assert_eq!(sh.used, 4);
    assert!(
        sh.hcr & hcr::LRENPIE != 0,
        "an active interrupt is outside the LRs"
    );
}

/// KVM `vgic_sort_ap_list` keeps active interrupts apart from those the guest can take. Four
/// active-and-pending interrupts of higher priority used to sort as pending and fill the 4 LRs,
/// keeping out the one interrupt the guest could take (its pending instances wait for their
/// deactivation): the takeable one goes first, the active ones after it, and the one left out
/// is an active one for EOIcount.
#[test]
fn active_and_pending_sorts_with_the_active_ones_not_before_a_takeable_interrupt() {
    let mut g = vgic();
    for i in 0..4 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
        g.set_pending(0, IntId(40 + i), true);
    }
    spi(&mut g, 50, 0x80);
    g.set_pending(0, IntId(50), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [50, 40, 41, 42]);
    assert_eq!(g.cpu(0).unwrap().outside_active, [IntId(43)]);
    assert!(sh.hcr & hcr::LRENPIE != 0);
}

/// ICH_MISR_EL2.NP is asserted while NPIE is set and no LR is in the pending state. The hostile
/// guest made five interrupts active and pending: the four LRs held them (active and pending
/// counts as not pending for NP), the fifth was left out, and NPIE for it raised a maintenance
/// interrupt at every entry: the vCPU exited for ever without running. NPIE is for an
/// interrupt the guest could take; the one left out here needs its deactivation (LRENPIE).
#[test]
fn npie_only_when_an_interrupt_the_guest_could_take_is_left_out() {
    let mut g = vgic();
    for i in 0..5 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
        g.set_pending(0, IntId(40 + i), true);
    }
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [40, 41, 42, 43]);
    assert_eq!(
        sh.hcr & hcr::NPIE,
        0,
        "NP would fire at once: {:#x}",
        sh.hcr
    );
    assert!(sh.hcr & hcr::LRENPIE != 0);
    // A pending, inactive one left out still gets NPIE.
    for i in 0..5 {
        spi(&mut g, 50 + i, 0x08);
        g.set_pending(0, IntId(50 + i), true);
    }
    g.fold(0, &sh);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert!(sh.hcr & hcr::NPIE != 0);
}

#[test]
fn eoicount_deactivates_the_highest_priority_active_outside_the_lrs() {
    let mut g = vgic();
    for i in 0..4 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    spi(&mut g, 50, 0x08);
    g.set_pending(0, IntId(50), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    let outside: Vec<u32> = (40..44).filter(|id| !ids(&sh).contains(id)).collect();
    assert_eq!(
        outside,
        [43],
        "the lowest-priority active is the one left out"
    );
    // The guest EOIs it: the hardware finds no LR and counts.
    sh.hcr |= 1 << hcr::EOICOUNT_SHIFT;
    g.fold(0, &sh);
    assert!(!g.irq(0, IntId(43)).unwrap().active);
    assert_eq!(g.cpu(0).unwrap().stats.eoicount_deactivations, 1);
    assert!(
        g.irq(0, IntId(40)).unwrap().active,
        "the resident ones are untouched"
    );
}

/// Found by the conformance guest (tests/guest, "EOImode=1: 8 dropped-but-active SPIs"): with
/// EOImode=1 the guest's EOI of an interrupt outside the LRs is a priority drop only, even if
/// the virtual interface counts it in EOIcount; replaying it deactivated another interrupt.
#[test]
fn eoicount_is_not_replayed_as_a_deactivation_with_eoimode1() {
    let mut g = vgic();
    for i in 0..4 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    spi(&mut g, 50, 0x08);
    g.set_pending(0, IntId(50), true);
    let mut sh = CpuIfShadow {
        eoimode1: true,
        ..Default::default()
    };
    g.fold(0, &sh); // the guest is in EOImode=1
    g.flush(0, &mut sh);
    assert!(sh.hcr & hcr::TDIR != 0, "DIR is trapped");
    // The guest drops the priority of 43 (outside the LRs); the interface counts the EOI.
    sh.hcr |= 1 << hcr::EOICOUNT_SHIFT;
    g.fold(0, &sh);
    for i in 40..44 {
        assert!(
            g.irq(0, IntId(i)).unwrap().active,
            "{i} stays active until the guest's DIR"
        );
    }
    assert_eq!(g.cpu(0).unwrap().stats.eoicount_deactivations, 0);
}

/// A vGICv2's GICC_DIR page is never mapped (rule 6), so with EOImode=1 every DIR arrives
/// trapped and EOIcount (an EOI outside the LRs, a priority drop only) deactivates nothing.
#[test]
fn v2_dir_always_traps_so_eoicount_is_not_a_deactivation_with_eoimode1() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    for i in 0..5 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    let mut sh = CpuIfShadow {
        eoimode1: true,
        ..Default::default()
    };
    g.fold(0, &sh);
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 4, "44 waits outside");
    assert_eq!(sh.hcr & hcr::TDIR, 0, "TDIR is a GICv3 bit only");
    sh.hcr |= 1 << hcr::EOICOUNT_SHIFT;
    g.fold(0, &sh);
    assert!(g.irq(0, IntId(44)).unwrap().active, "an EOI is no DIR");
    // The guest's DIR of 44 traps (GICC_DIR page) and deactivates it.
    g.deactivate(0, IntId(44));
    assert!(!g.irq(0, IntId(44)).unwrap().active);
}

/// With EOImode=0 (no DIR at all) a vGICv2's EOIcount is still replayed as deactivations.
#[test]
fn v2_eoicount_is_replayed_with_eoimode0() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    for i in 0..5 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    sh.hcr |= 1 << hcr::EOICOUNT_SHIFT;
    g.fold(0, &sh);
    assert!(!g.irq(0, IntId(44)).unwrap().active);
}

/// KVM "asymmetric deactivation": an SPI acknowledged on vCPU 0 and deactivated with DIR on
/// vCPU 1 (EOImode=1). vCPU 1 traps DIR while the SPI is in flight on vCPU 0 (it is kicked
/// when the SPI is loaded there), and vCPU 0's fold applies the deactivation.
#[test]
fn eoimode1_dir_on_another_vcpu_deactivates_an_spi_active_there() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    let guest_in_eoimode1 = CpuIfShadow {
        eoimode1: true,
        ..Default::default()
    };
    let mut sh1 = guest_in_eoimode1;
    g.fold(1, &sh1);
    g.flush(1, &mut sh1);
    assert_eq!(
        sh1.hcr & hcr::TDIR,
        0,
        "nothing in flight: DIR runs in hardware"
    );
    let mut sh0 = guest_in_eoimode1;
    g.fold(0, &sh0);
    g.take_kicks();
    g.set_pending(0, IntId(40), true);
    g.flush(0, &mut sh0);
    assert_eq!(ids(&sh0), [40]);
    assert_eq!(
        g.take_kicks() & 0b10,
        0b10,
        "vCPU 1 must come back to trap DIR"
    );
    g.fold(1, &sh1);
    g.flush(1, &mut sh1);
    assert_ne!(sh1.hcr & hcr::TDIR, 0, "an SPI is in flight on vCPU 0");
    ack(&mut sh0, 0); // vCPU 0 takes it and drops its priority
    // vCPU 1's guest deactivates it: the trapped ICC_DIR_EL1.
    g.fold(1, &sh1);
    g.deactivate(1, IntId(40));
    assert_eq!(g.take_kicks() & 1, 1, "vCPU 0 holds it in an LR: kicked");
    g.fold(0, &sh0);
    assert!(!g.irq(0, IntId(40)).unwrap().active, "deactivated");
    g.flush(0, &mut sh0);
    assert_eq!(sh0.used, 0, "nothing left to show");
    g.flush(1, &mut sh1);
    assert_eq!(sh1.hcr & hcr::TDIR, 0, "nothing in flight any more");
}

/// The same with a linked SPI: the physical twin must be deactivated, or it never fires again.
#[test]
fn eoimode1_dir_on_another_vcpu_deactivates_a_linked_spis_physical_twin() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.link_spi(IntId(40), 77);
    let mut sh0 = CpuIfShadow {
        eoimode1: true,
        ..Default::default()
    };
    g.fold(0, &sh0);
    g.set_pending(0, IntId(40), true); // as the physical SPI's injection does
    while g.has_phys(0) {
        g.take_phys(0);
    }
    g.flush(0, &mut sh0);
    ack(&mut sh0, 0);
    g.deactivate(1, IntId(40));
    g.fold(0, &sh0);
    let mut ops = Vec::new();
    for v in 0..2 {
        while g.has_phys(v) {
            ops.extend(g.take_phys(v).iter().copied());
        }
    }
    assert!(
        ops.contains(&PhysOp::Deactivate(77)),
        "physical 77 deactivated: {ops:?}"
    );
}

#[test]
fn eoimode1_with_actives_outside_traps_dir() {
    let mut g = vgic();
    for i in 0..5 {
        spi(&mut g, 40 + i, 0x10 * (i as u8 + 1));
        g.set_active(0, IntId(40 + i), true);
    }
    let mut sh = CpuIfShadow {
        eoimode1: true,
        ..Default::default()
    };
    g.fold(0, &sh);
    g.flush(0, &mut sh);
    assert!(sh.hcr & hcr::TDIR != 0);
    assert!(sh.hcr & hcr::LRENPIE != 0);
}

#[test]
fn software_level_interrupt_requests_eoi_maintenance_and_is_reinjected_while_asserted() {
    let mut g = vgic();
    spi(&mut g, 33, 0xa0);
    g.set_trigger(0, IntId(33), Trigger::Level);
    g.set_line_level(0, IntId(33), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.lrs[0] & (1 << 41), 1 << 41, "EOI maintenance bit");
    ack(&mut sh, 0);
    eoi(&mut sh, 0);
    g.fold(0, &sh);
    g.flush(0, &mut sh);
    assert_eq!(
        ids(&sh),
        [33],
        "still asserted: pending again after the EOI"
    );
    assert_eq!(
        state(&sh, 0),
        LrState {
            pending: true,
            active: false
        }
    );
    // The device lowers its line: nothing to show after this completion.
    ack(&mut sh, 0);
    eoi(&mut sh, 0);
    g.fold(0, &sh);
    g.set_line_level(0, IntId(33), false);
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0);
}

#[test]
fn hw_level_interrupt_is_linked_and_completed_in_hardware() {
    let mut g = vgic();
    g.set_group1(0, IntId(27), true);
    g.set_enabled(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.lrs[0] >> 61 & 1, 1, "HW bit");
    assert_eq!(sh.lrs[0] >> 32 & 0x1fff, 27, "pINTID");
    assert!(
        !g.resident(0).next().unwrap().eoi_maintenance,
        "completion needs no exit"
    );
    ack(&mut sh, 0);
    eoi(&mut sh, 0);
    g.fold(0, &sh);
    let irq = g.irq(0, IntId(27)).unwrap();
    assert!(
        !irq.is_pending() && !irq.active,
        "the physical line re-fires if still asserted"
    );
    assert!(
        g.take_phys(0).is_empty(),
        "the guest's EOI deactivated the physical interrupt"
    );
}

/// Found by the conformance guest (tests/guest, "timer: its PPI stops being pending when the
/// condition goes away"): a linked level interrupt whose physical line dropped before the guest
/// took it must stop being pending, and its physical interrupt must be deactivated.
#[test]
fn hw_level_interrupt_whose_line_dropped_before_it_was_taken_is_withdrawn() {
    // The PPI disabled in the guest: injected, never loaded.
    let mut g = vgic();
    g.set_group1(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    assert!(g.irq(0, IntId(27)).unwrap().is_pending());
    assert!(
        g.resample_hw_level(0, IntId(27), true),
        "the model's level stays high"
    );
    assert!(g.take_phys(0).is_empty(), "still asserted: nothing changes");
    assert!(
        !g.resample_hw_level(0, IntId(27), false),
        "the model's level dropped"
    );
    assert!(!g.irq(0, IntId(27)).unwrap().is_pending());
    assert_eq!(g.take_phys(0), [PhysOp::Deactivate(27)]);

    // Enabled and loaded, still pending in its LR at the exit: withdrawn from the next flush.
    let mut g = vgic();
    g.set_group1(0, IntId(27), true);
    g.set_enabled(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 1);
    g.fold(0, &sh);
    g.resample_hw_level(0, IntId(27), false);
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0, "not offered to the guest again");
    assert_eq!(g.take_phys(0), [PhysOp::Deactivate(27)]);
}

#[test]
fn hw_level_interrupt_taken_by_the_guest_is_left_to_its_eoi() {
    let mut g = vgic();
    g.set_group1(0, IntId(27), true);
    g.set_enabled(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    ack(&mut sh, 0);
    g.fold(0, &sh);
    g.resample_hw_level(0, IntId(27), false);
    assert!(g.irq(0, IntId(27)).unwrap().active);
    assert!(
        g.take_phys(0).is_empty(),
        "the guest's EOI deactivates it through the HW bit"
    );
}

#[test]
fn disabling_a_pending_interrupt_in_an_lr_removes_it_but_not_an_active_one() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    spi(&mut g, 41, 0xa0);
    g.set_pending(0, IntId(40), true);
    g.set_pending(0, IntId(41), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    let n41 = ids(&sh).iter().position(|&i| i == 41).unwrap();
    ack(&mut sh, n41);
    g.fold(0, &sh);
    g.set_enabled(0, IntId(40), false);
    g.set_enabled(0, IntId(41), false);
    g.flush(0, &mut sh);
    assert_eq!(
        ids(&sh),
        [41],
        "the disabled pending one is not forwarded; the active stays"
    );
    assert!(
        g.irq(0, IntId(40)).unwrap().is_pending(),
        "it stays pending in the distributor"
    );
}

#[test]
fn disabled_active_hw_interrupt_can_still_be_deactivated_by_the_guest() {
    let mut g = vgic();
    g.set_group1(0, IntId(27), true);
    g.set_enabled(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    ack(&mut sh, 0);
    g.fold(0, &sh);
    g.set_enabled(0, IntId(27), false);
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [27]);
    assert_eq!(
        sh.lrs[0] >> 61 & 1,
        1,
        "still linked, so the guest's EOI reaches the hardware"
    );
}

#[test]
fn reprioritising_changes_the_next_flush_order() {
    let mut g = vgic();
    for (id, prio) in [(40, 0x80), (41, 0x90)] {
        spi(&mut g, id, prio);
        g.set_pending(0, IntId(id), true);
    }
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [40, 41]);
    g.fold(0, &sh);
    g.set_priority(0, IntId(41), 0x10);
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [41, 40]);
}

#[test]
fn retargeting_a_pending_spi_moves_it_and_kicks_the_new_vcpu() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    let mut sh0 = CpuIfShadow::default();
    let mut sh1 = CpuIfShadow::default();
    g.flush(1, &mut sh1); // vCPU 1 is running with nothing to do
    g.flush(0, &mut sh0);
    assert_eq!(ids(&sh0), [40]);
    g.set_route(0, IntId(40), Route::Affinity(1));
    assert_eq!(g.take_kicks(), 0b01, "vCPU 0 must give it up");
    g.fold(0, &sh0);
    assert_eq!(g.take_kicks(), 0b10, "back in the model, it goes to vCPU 1");
    g.flush(0, &mut sh0);
    assert_eq!(sh0.used, 0);
    g.fold(1, &sh1);
    g.flush(1, &mut sh1);
    assert_eq!(ids(&sh1), [40]);
}

#[test]
fn active_spi_stays_on_its_vcpu_after_retargeting() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    ack(&mut sh, 0);
    g.fold(0, &sh);
    g.set_route(0, IntId(40), Route::Affinity(1));
    g.flush(0, &mut sh);
    assert_eq!(
        ids(&sh),
        [40],
        "active on vCPU 0 until the guest deactivates it"
    );
}

#[test]
fn icpendr_on_an_interrupt_resident_elsewhere_is_applied_at_fold() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    g.set_pending(1, IntId(40), false); // vCPU 1 clears it while vCPU 0 runs
    assert_eq!(g.take_kicks(), 0b01);
    g.fold(0, &sh); // vCPU 0 had not taken it
    assert!(!g.irq(0, IntId(40)).unwrap().is_pending());
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0);
}

#[test]
fn kick_only_running_vcpus() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    assert_eq!(
        g.take_kicks(),
        0,
        "vCPU 0 is not running: it will see it at its next flush"
    );
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    g.fold(0, &sh);
    g.flush(0, &mut sh);
    g.set_pending(0, IntId(41), true);
    spi(&mut g, 41, 0xa0);
    assert_eq!(g.take_kicks(), 0b01);
}

#[test]
fn group_disabled_in_distributor_is_not_forwarded() {
    let mut g = vgic();
    spi(&mut g, 40, 0xa0);
    g.set_pending(0, IntId(40), true);
    g.set_group_enables(true, false);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0);
    g.fold(0, &sh);
    g.set_group_enables(false, true);
    g.flush(0, &mut sh);
    assert_eq!(ids(&sh), [40]);
}

#[test]
fn sgi_targets_and_group0_filter() {
    let mut g = vgic();
    for v in 0..2 {
        g.set_enabled(v, IntId(1), true);
        g.set_group1(v, IntId(1), true);
    }
    g.send_sgi(0, 1, 0b10, true);
    assert!(!g.irq(0, IntId(1)).unwrap().is_pending());
    assert!(g.irq(1, IntId(1)).unwrap().is_pending());
    g.send_sgi(0, 1, 0b01, false);
    assert!(
        !g.irq(0, IntId(1)).unwrap().is_pending(),
        "SGI0R cannot raise a group 1 SGI"
    );
}

const V2: VgicConfig = VgicConfig {
    version: GicVersion::V2,
    vcpus: 4,
    spis: 64,
    lr_count: 4,
    pri_bits: 5,
};

#[test]
fn v2_sgi_pending_from_several_sources_is_injected_one_source_at_a_time() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    g.send_sgi(1, 5, 0b0001, true);
    g.send_sgi(2, 5, 0b0001, true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(
        sh.used, 1,
        "one LR for the SGI, never two with the same virtual ID"
    );
    let lr = sh.lrs[0] as u32;
    assert_eq!(lr & 0x3ff, 5);
    assert_eq!(lr >> 10 & 7, 1, "the lowest source first, in GICH_LR.CPUID");
    assert_eq!(lr >> 19 & 1, 1, "EOI maintenance: another source waits");
    assert_eq!(
        sh.hcr & hcr::UIE,
        0,
        "no underflow interrupt: with one valid LR it would fire at once, for ever"
    );
    // The guest takes it and completes it.
    sh.lrs[0] = (sh.lrs[0] & !(3 << 28)) | 2 << 28;
    sh.lrs[0] &= !(3 << 28);
    g.fold(0, &sh);
    g.flush(0, &mut sh);
    let lr = sh.lrs[0] as u32;
    assert_eq!(
        (lr & 0x3ff, lr >> 10 & 7, lr >> 19 & 1),
        (5, 2, 0),
        "then source 2, the last"
    );
}

/// Found by the conformance guest (tests/guest, "sgi: the same SGI from two sources is
/// delivered once per source", GICv2): a vCPU with one multi-source SGI in its LRs and UIE set
/// took a maintenance interrupt on every entry and never ran again.
#[test]
fn v2_multi_source_sgi_alone_in_the_lrs_does_not_livelock_on_underflow() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    g.send_sgi(1, 9, 0b0001, true);
    g.send_sgi(2, 9, 0b0001, true);
    let mut sh = CpuIfShadow::default();
    for _ in 0..3 {
        // Exits that change nothing (the guest has interrupts masked).
        g.flush(0, &mut sh);
        g.fold(0, &sh);
    }
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 1);
    assert_eq!(
        sh.hcr & (hcr::UIE | hcr::NPIE),
        0,
        "nothing asks for maintenance before the guest takes the SGI"
    );
}

#[test]
fn v2_sgi_not_taken_keeps_its_source_pending() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    g.send_sgi(3, 1, 0b0001, true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    g.fold(0, &sh); // still pending in the LR at the exit
    assert_eq!(g.irq(0, IntId(1)).unwrap().sgi_sources, 0b1000);
}

#[test]
fn v2_hw_linked_timer_uses_the_10_bit_physical_id() {
    let mut g = Vgic::new(&V2);
    g.set_group_enables(true, true);
    g.set_enabled(0, IntId(27), true);
    g.inject_hw(0, IntId(27), 27);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    let lr = sh.lrs[0] as u32;
    assert_eq!(lr >> 31, 1, "HW");
    assert_eq!(lr >> 10 & 0x3ff, 27, "PhysicalID");
}

/// The exit path allocates nothing (issue 11): flush's candidate list and the list of active
/// interrupts left outside the LRs have room, from the start, for every interrupt a vCPU can
/// have, so even with every one pending and active (far more than the LRs) they never grow.
#[test]
fn flush_and_fold_with_every_interrupt_pending_and_active_allocate_nothing() {
    let mut g = vgic();
    let ids: Vec<u32> = (16..32).chain(32..32 + V3.spis).collect();
    for &id in &ids {
        if id >= 32 {
            spi(&mut g, id, 0x80);
        } else {
            g.set_group1(0, IntId(id), true);
            g.set_enabled(0, IntId(id), true);
        }
        g.set_active(0, IntId(id), true);
        g.set_pending(0, IntId(id), true);
    }
    let before = (
        g.scratch.capacity(),
        g.scratch.as_ptr(),
        g.cpus[0].outside_active.capacity(),
        g.cpus[0].outside_active.as_ptr(),
    );
    assert!(before.0 >= g.max_candidates() && before.2 >= g.max_candidates());
    let mut sh = CpuIfShadow::default();
    for _ in 0..4 {
        g.flush(0, &mut sh);
        assert_eq!(sh.used, V3.lr_count);
        assert!(
            g.cpus[0].outside_active.len() > 50,
            "the actives left out are listed"
        );
        g.fold(0, &sh);
    }
    let after = (
        g.scratch.capacity(),
        g.scratch.as_ptr(),
        g.cpus[0].outside_active.capacity(),
        g.cpus[0].outside_active.as_ptr(),
    );
    assert_eq!(before, after, "no list grew or moved");
}

#[test]
fn attaching_an_its_makes_room_for_its_lpis_among_the_candidates() {
    let mut g = vgic();
    let without = g.max_candidates();
    g.attach_its(crate::vgic::its::ItsConfig::new(2));
    assert_eq!(g.max_candidates(), without + g.its().unwrap().max_lpis());
    assert!(g.scratch.capacity() >= g.max_candidates());
    assert!(
        g.cpus
            .iter()
            .all(|c| c.outside_active.capacity() >= g.max_candidates())
    );
}

/// The flush of a vCPU with nothing to load takes a short path (no scan, no sort); it must leave
/// exactly what the full flush leaves: the shadow, the vCPU's LRs and lists, the DIR trap, the
/// kicks. Checked on a vGIC that never had an interrupt, after an SPI was taken and completed,
/// and with EOImode=1 while an SPI is active on the other vCPU (DIR must trap).
#[test]
fn flush_with_nothing_to_load_leaves_what_the_full_flush_leaves() {
    let mut scenarios = Vec::new();
    scenarios.push(vgic());
    let mut g = vgic();
    spi(&mut g, 40, 0x80);
    g.set_pending(0, IntId(40), true);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    ack(&mut sh, 0);
    eoi(&mut sh, 0);
    g.fold(0, &sh);
    scenarios.push(g);
    let mut g = vgic();
    spi(&mut g, 41, 0x80);
    g.set_route(0, IntId(41), Route::Affinity(1));
    g.set_pending(0, IntId(41), true);
    let mut sh = CpuIfShadow::default();
    g.flush(1, &mut sh);
    assert_eq!(ids(&sh), [41]);
    ack(&mut sh, 0);
    sh.eoimode1 = true;
    g.fold(1, &sh);
    g.cpus[0].eoimode1 = true;
    scenarios.push(g);
    for (n, g) in scenarios.into_iter().enumerate() {
        assert!(g.nothing_to_load(0), "scenario {n}");
        let (mut short, mut full) = (g.clone(), g);
        // What the shell read back after the last entry: `used` LRs, zeros past them.
        let mut stale = CpuIfShadow {
            lrs: [0; MAX_LRS],
            used: 2,
            hcr: 0xffff,
            eoimode1: true,
        };
        stale.lrs[..2].fill(0x1234);
        let (mut a, mut b) = (stale, stale);
        short.flush(0, &mut a);
        full.flush_full(0, &mut b);
        assert_eq!(a, b, "scenario {n}: shadow");
        let (x, y) = (&short.cpus[0], &full.cpus[0]);
        assert_eq!(
            (
                x.lrs,
                x.dir_trapped,
                x.running,
                &x.outside_active,
                short.kicks
            ),
            (
                y.lrs,
                y.dir_trapped,
                y.running,
                &y.outside_active,
                full.kicks
            ),
            "scenario {n}: vCPU state"
        );
    }
}

/// The run loop skips fold and the timers' resample, and then the next flush, when [`VgicSkip`]
/// says they change nothing. A random sequence of entries, guest runs (any LR state, EOIcount
/// and EOImode), timer injections with random line levels (the timer PPIs enabled and
/// disabled), SPIs, SGIs and deactivations, on two vGICs: one folds, resamples and flushes
/// around every exit, the other only when `VgicSkip` asks (the test counts the "lock releases"
/// of each step that touches it). At every entry both must load the same list registers and
/// ICH_HCR_EL2, and every interrupt's state must be the same. The skips must also happen.
#[test]
fn vgic_skips_change_nothing_the_guest_sees() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut below = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut always, mut skipping) = (vgic(), vgic());
    for g in [&mut always, &mut skipping] {
        for v in 0..2 {
            for id in (0..16).chain([27, 30]) {
                g.set_group1(v, IntId(id), true);
                g.set_enabled(v, IntId(id), true);
            }
        }
        for id in 32..40 {
            spi(g, id, (id as u8) << 2);
            g.set_trigger(0, IntId(id), Trigger::Level);
        }
    }
    // The skipping vGIC's lock version: moved on by every step that touches it.
    let mut version = 0u64;
    let mut sh = [[CpuIfShadow::default(); 2]; 2];
    let mut skip = [VgicSkip::new(); 2];
    let (mut folds_skipped, mut flushes_skipped) = (0, 0);
    for step in 0..40_000 {
        let v = below(2) as usize;
        always.flush(v, &mut sh[0][v]);
        if skip[v].flush_needed(version) {
            skipping.flush(v, &mut sh[1][v]);
            version += 1;
            skip[v].flushed(&sh[1][v], version);
        } else {
            skip[v].reenter(&mut sh[1][v]);
            flushes_skipped += 1;
        }
        assert_eq!(sh[0][v], sh[1][v], "step {step}: entry of vCPU {v}");
        // The guest runs: any state in each loaded LR, any EOIcount, EOImode now and then.
        let mut back = sh[0][v];
        for lr in back.lrs[..back.used].iter_mut() {
            if below(2) == 0 {
                *lr = (*lr & !(3 << 62)) | below(4) << 62;
            }
        }
        back.hcr = (back.hcr & !(0x1f << 27)) | below(4) << 27;
        if below(64) == 0 {
            back.eoimode1 = !back.eoimode1;
        }
        sh[0][v] = back;
        sh[1][v] = back;
        let lines = [below(2) == 0, below(2) == 0];
        always.fold(v, &back);
        always.resample_hw_level(v, IntId(27), lines[0]);
        always.resample_hw_level(v, IntId(30), lines[1]);
        if skip[v].fold_needed(&back) {
            skipping.fold(v, &back);
            let mut high = 0;
            for (n, id) in [27, 30].into_iter().enumerate() {
                if skip[v].lines_to_resample() & 1 << n != 0
                    && skipping.resample_hw_level(v, IntId(id), lines[n])
                {
                    high |= 1 << n;
                }
            }
            version += 1;
            skip[v].folded(&back, high);
        } else {
            folds_skipped += 1;
        }
        // What the exit's handler and the physical interrupts do, now and then.
        let touched = match below(24) {
            0 => {
                let line = below(2) as u32;
                let id = [27, 30][line as usize];
                always.inject_hw(v, IntId(id), id);
                skipping.inject_hw(v, IntId(id), id);
                skip[v].line_raised(line);
                true
            }
            1 => {
                let id = IntId(32 + below(8) as u32);
                let level = below(2) == 0;
                always.set_line_level(0, id, level);
                skipping.set_line_level(0, id, level);
                true
            }
            2 => {
                let (sgi, targets) = (below(16) as u32, below(4));
                always.send_sgi(v, sgi, targets, true);
                skipping.send_sgi(v, sgi, targets, true);
                true
            }
            3 => {
                let id = IntId(below(40) as u32);
                always.deactivate(v, id);
                skipping.deactivate(v, id);
                true
            }
            4 => {
                // A disabled timer PPI is never loaded: only the resample withdraws it.
                let (id, on) = (IntId([27, 30][below(2) as usize]), below(2) == 0);
                always.set_enabled(v, id, on);
                skipping.set_enabled(v, id, on);
                true
            }
            _ => false,
        };
        if touched {
            version += 1;
        }
        // The kicks go with whatever made them (one lock); physical work likewise.
        let _ = (always.take_kicks(), skipping.take_kicks());
        for w in 0..2 {
            assert_eq!(always.take_phys(w), skipping.take_phys(w), "step {step}");
            for id in 0..40 {
                assert_eq!(
                    always.irq(w, IntId(id)),
                    skipping.irq(w, IntId(id)),
                    "step {step}: INTID {id} of vCPU {w}"
                );
            }
        }
    }
    assert!(
        folds_skipped > 10_000 && flushes_skipped > 5_000,
        "{folds_skipped} folds and {flushes_skipped} flushes skipped"
    );
}
