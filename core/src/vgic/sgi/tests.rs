//! ICC_SGI1R_EL1 targeting (IHI 0069H 12.2.22), as a pure function and through the model.

use super::*;
use crate::platform::GicVersion;
use crate::vgic::VgicConfig;
use crate::vgic::cpu_if::CpuIfShadow;
use crate::vgic::irq::IntId;

const CFG: VgicConfig = VgicConfig {
    version: GicVersion::V3,
    vcpus: 4,
    spis: 32,
    lr_count: 4,
    pri_bits: 5,
};

/// Builds an ICC_SGI1R_EL1 value.
fn sgi1r(intid: u64, aff3: u64, aff2: u64, aff1: u64, rs: u64, list: u64) -> u64 {
    aff3 << 48 | rs << 44 | aff2 << 32 | intid << 24 | aff1 << 16 | list
}

const IRM: u64 = 1 << 40;

/// An affinity in the GICD_IROUTER layout.
fn aff(aff3: u64, aff2: u64, aff1: u64, aff0: u64) -> u64 {
    aff3 << 32 | aff2 << 16 | aff1 << 8 | aff0
}

#[test]
fn sgi1r_target_list_bit_n_selects_aff0_n() {
    let affs = [
        aff(0, 0, 0, 0),
        aff(0, 0, 0, 1),
        aff(0, 0, 0, 2),
        aff(0, 0, 0, 3),
    ];
    assert_eq!(
        sgi1r_targets(sgi1r(1, 0, 0, 0, 0, 0b1010), 0, &affs),
        0b1010
    );
    assert_eq!(
        sgi1r_targets(sgi1r(1, 0, 0, 0, 0, 0b0001), 0, &affs),
        0b0001,
        "self is allowed"
    );
    assert_eq!(
        sgi1r_targets(sgi1r(1, 0, 0, 0, 0, 0), 0, &affs),
        0,
        "empty list"
    );
}

#[test]
fn sgi1r_rs_selects_the_aff0_range() {
    let affs: Vec<u64> = (0..40).map(|n| aff(0, 0, 0, n)).collect();
    assert_eq!(
        sgi1r_targets(sgi1r(0, 0, 0, 0, 1, 0b101), 0, &affs),
        1 << 16 | 1 << 18
    );
    assert_eq!(
        sgi1r_targets(sgi1r(0, 0, 0, 0, 2, 1 << 7), 0, &affs),
        1 << 39
    );
    assert_eq!(
        sgi1r_targets(sgi1r(0, 0, 0, 0, 3, 0xffff), 0, &affs),
        0,
        "Aff0 48-63: none"
    );
}

#[test]
fn sgi1r_aff3_aff2_aff1_must_all_match() {
    let affs = [
        aff(0, 0, 0, 0),
        aff(1, 0, 0, 0),
        aff(0, 1, 0, 0),
        aff(0, 0, 1, 0),
        aff(3, 2, 1, 5),
    ];
    assert_eq!(sgi1r_targets(sgi1r(0, 1, 0, 0, 0, 1), 0, &affs), 1 << 1);
    assert_eq!(sgi1r_targets(sgi1r(0, 0, 1, 0, 0, 1), 0, &affs), 1 << 2);
    assert_eq!(sgi1r_targets(sgi1r(0, 0, 0, 1, 0, 1), 0, &affs), 1 << 3);
    assert_eq!(
        sgi1r_targets(sgi1r(0, 3, 2, 1, 0, 1 << 5), 0, &affs),
        1 << 4
    );
    assert_eq!(sgi1r_targets(sgi1r(0, 3, 2, 1, 0, 1 << 4), 0, &affs), 0);
}

#[test]
fn sgi1r_irm_targets_every_vcpu_but_the_sender() {
    let affs = [
        aff(0, 0, 0, 0),
        aff(0, 0, 0, 1),
        aff(0, 0, 1, 0),
        aff(1, 0, 0, 0),
    ];
    assert_eq!(
        sgi1r_targets(IRM | sgi1r(3, 0, 0, 0, 0, 0), 2, &affs),
        0b1011
    );
    assert_eq!(
        sgi1r_targets(IRM | sgi1r(3, 5, 5, 5, 5, 0xffff), 0, &affs),
        0b1110,
        "list ignored"
    );
    assert_eq!(
        sgi1r_targets(IRM, 0, &affs[..1]),
        0,
        "a lone vCPU has no one to signal"
    );
}

#[test]
fn sgi1r_target_list_naming_nonexistent_vcpus_is_ignored() {
    let affs = [aff(0, 0, 0, 0), aff(0, 0, 0, 1)];
    assert_eq!(sgi1r_targets(sgi1r(0, 0, 0, 0, 0, 0xffff), 0, &affs), 0b11);
    assert_eq!(
        sgi1r_targets(sgi1r(0, 0, 0, 7, 0, 0xffff), 0, &affs),
        0,
        "no cluster 7"
    );
    assert_eq!(sgi1r_targets(sgi1r(0, 0, 0, 0, 0, 0b11), 0, &[]), 0);
}

#[test]
fn sgi1r_masks_cannot_name_vcpus_beyond_63() {
    let affs: Vec<u64> = (0..80).map(|n| aff(0, 0, 0, n)).collect();
    assert_eq!(
        sgi1r_targets(sgi1r(0, 0, 0, 0, 4, 0xffff), 0, &affs),
        0,
        "Aff0 64-79"
    );
    assert_eq!(
        sgi1r_targets(IRM, 70, &affs),
        u64::MAX,
        "a sender beyond 63 excludes no bit"
    );
}

#[test]
fn sgi_register_write_pends_intid_on_the_targets() {
    let mut g = Vgic::new(&CFG);
    g.sgi_register_write(0, sgi1r(11, 0, 0, 0, 0, 0b0110), true);
    let pending: Vec<bool> = (0..4)
        .map(|v| g.irq(v, IntId(11)).unwrap().is_pending())
        .collect();
    assert_eq!(pending, [false, true, true, false]);
    assert!(!g.irq(1, IntId(10)).unwrap().is_pending());
}

#[test]
fn sgi_register_write_uses_the_vcpus_affinities() {
    let mut g = Vgic::new(&CFG);
    g.cpu_mut(3).unwrap().affinity = aff(0, 0, 1, 0);
    g.sgi_register_write(0, sgi1r(2, 0, 0, 1, 0, 1), true);
    assert!(g.irq(3, IntId(2)).unwrap().is_pending());
    assert!(
        !g.irq(0, IntId(2)).unwrap().is_pending(),
        "Aff1 = 1 is not vCPU 0"
    );
}

#[test]
fn sgi_register_write_with_irm_skips_the_sender() {
    let mut g = Vgic::new(&CFG);
    g.sgi_register_write(1, IRM | sgi1r(0, 0, 0, 0, 0, 0), true);
    let pending: Vec<bool> = (0..4)
        .map(|v| g.irq(v, IntId(0)).unwrap().is_pending())
        .collect();
    assert_eq!(pending, [true, false, true, true]);
}

#[test]
fn sgi0r_does_not_generate_group1_sgis() {
    let mut g = Vgic::new(&CFG);
    g.set_group1(1, IntId(5), true);
    g.sgi_register_write(0, sgi1r(5, 0, 0, 0, 0, 0b110), false);
    assert!(
        !g.irq(1, IntId(5)).unwrap().is_pending(),
        "group 1 on vCPU 1"
    );
    assert!(
        g.irq(2, IntId(5)).unwrap().is_pending(),
        "group 0 on vCPU 2"
    );
}

#[test]
fn sgi_register_write_from_a_nonexistent_vcpu_is_ignored() {
    let mut g = Vgic::new(&CFG);
    g.sgi_register_write(9, IRM, true);
    g.sgi_register_write(usize::MAX, sgi1r(0, 0, 0, 0, 0, 0xf), true);
    assert!((0..4).all(|v| !g.irq(v, IntId(0)).unwrap().is_pending()));
}

#[test]
fn sgi1r_write_then_flush_shows_the_sgi_in_the_targets_lr() {
    let mut g = Vgic::new(&CFG);
    g.set_group_enables(false, true);
    g.set_group1(2, IntId(1), true);
    g.set_enabled(2, IntId(1), true);
    g.sgi_register_write(0, sgi1r(1, 0, 0, 0, 0, 1 << 2), true);
    let mut sh = CpuIfShadow::default();
    g.flush(2, &mut sh);
    assert_eq!(g.resident(2).map(|e| e.vintid).collect::<Vec<_>>(), [1]);
}
