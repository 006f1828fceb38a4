//! The table machinery: every table's shape, the one check, and the 64-bit half helpers.

use super::*;
use crate::vgic::regs_v2::GICD_V2_REGIONS;
use crate::vgic::regs_v3::{GICD_V3_REGIONS, GICR_REGIONS};

const TABLES: [(&str, &[RegionDesc]); 3] = [
    ("GICD v3", GICD_V3_REGIONS),
    ("GICR", GICR_REGIONS),
    ("GICD v2", GICD_V2_REGIONS),
];

#[test]
fn tables_are_sorted_and_disjoint() {
    for (name, table) in TABLES {
        for pair in table.windows(2) {
            assert!(
                pair[0].offset + pair[0].len <= pair[1].offset,
                "{name}: {} overlaps or follows {}",
                pair[0].name,
                pair[1].name
            );
        }
    }
}

#[test]
fn regions_are_non_empty_and_aligned_to_their_widest_access() {
    for (name, table) in TABLES {
        for r in table {
            assert!(r.len > 0, "{name}: {} is empty", r.name);
            for w in [1u8, 2, 4, 8] {
                if r.widths.allows(w) {
                    let w = u32::from(w);
                    assert!(r.offset % w == 0 && r.len % w == 0, "{name}: {}", r.name);
                }
            }
        }
    }
}

#[test]
fn per_irq_bits_match_the_kind() {
    for (name, table) in TABLES {
        for r in table {
            match r.kind {
                RegKind::Field(f) => assert_eq!(r.bits_per_irq, f.bits(), "{name}: {}", r.name),
                RegKind::Router => assert_eq!(r.bits_per_irq, 64, "{name}: {}", r.name),
                _ => assert_eq!(r.bits_per_irq, 0, "{name}: {}", r.name),
            }
        }
    }
}

#[test]
fn per_irq_regions_map_offsets_to_the_spec_intids() {
    // The register groups start at multiples of their full size, so the offset alone gives
    // the INTID: GICD_ISENABLER1 is INTIDs 32-63, GICD_IPRIORITYR8 32-35, GICD_ICFGR2 32-47,
    // GICD_IROUTER32 INTID 32, GICR_ISENABLER0 INTIDs 0-31.
    let region = |t: &'static [RegionDesc], off| find(t, off).unwrap();
    assert_eq!(region(GICD_V3_REGIONS, 0x104).intid_at(0x104), 32);
    assert_eq!(region(GICD_V3_REGIONS, 0x17c).intid_at(0x17c), 992);
    assert_eq!(region(GICD_V3_REGIONS, 0x420).intid_at(0x421), 33);
    assert_eq!(region(GICD_V3_REGIONS, 0xc08).intid_at(0xc08), 32);
    assert_eq!(region(GICD_V3_REGIONS, 0x6100).intid_at(0x6104), 32);
    assert_eq!(region(GICD_V3_REGIONS, 0x6108).intid_at(0x6108), 33);
    assert_eq!(region(GICR_REGIONS, 0x1_0100).intid_at(0x1_0100), 0);
    assert_eq!(region(GICR_REGIONS, 0x1_0c04).intid_at(0x1_0c04), 16);
    assert_eq!(region(GICD_V2_REGIONS, 0x800).intid_at(0x81f), 31);
    assert_eq!(region(GICD_V2_REGIONS, 0xc00).intid_at(0xcfc), 1008);
}

#[test]
fn find_matches_first_and_last_byte_and_misses_gaps() {
    let ctlr = find(GICD_V3_REGIONS, 0).unwrap();
    assert_eq!(ctlr.name, "GICD_CTLR");
    assert_eq!(find(GICD_V3_REGIONS, 3).unwrap().name, "GICD_CTLR");
    assert_eq!(find(GICD_V3_REGIONS, 0x14), None, "gap after GICD_STATUSR");
    assert_eq!(find(GICD_V3_REGIONS, 0x7fdf).unwrap().name, "GICD_IROUTER");
    assert_eq!(find(GICD_V3_REGIONS, 0x7fe0), None);
    assert_eq!(find(GICD_V3_REGIONS, 0xfffc).unwrap().name, "GICD_ID");
    assert_eq!(find(GICD_V3_REGIONS, 0x1_0000), None);
    assert_eq!(find(GICD_V3_REGIONS, u32::MAX), None);
}

#[test]
fn widths_allow_only_the_listed_sizes() {
    let w = Widths::W8.or(Widths::W32);
    assert!(w.allows(1) && w.allows(4));
    assert!(!w.allows(2) && !w.allows(8));
    for odd in [0u8, 3, 5, 6, 7, 16, 32, 255] {
        assert!(
            !Widths::W8
                .or(Widths::W16)
                .or(Widths::W32)
                .or(Widths::W64)
                .allows(odd)
        );
    }
}

#[test]
fn check_refuses_a_width_the_region_does_not_allow() {
    assert_eq!(
        check(GICD_V3_REGIONS, 0x100 + 4, 2, 96),
        Err(MmioOutcome::refused("bad-width"))
    );
    assert_eq!(
        check(GICD_V3_REGIONS, 0, 1, 96),
        Err(MmioOutcome::refused("bad-width"))
    );
    assert_eq!(
        check(GICD_V3_REGIONS, 0, 8, 96),
        Err(MmioOutcome::refused("bad-width"))
    );
}

#[test]
fn check_refuses_a_misaligned_access() {
    assert_eq!(
        check(GICD_V3_REGIONS, 0x106, 4, 96),
        Err(MmioOutcome::refused("misaligned"))
    );
    assert_eq!(
        check(GICD_V3_REGIONS, 0x6104, 8, 96),
        Err(MmioOutcome::refused("misaligned"))
    );
}

#[test]
fn check_refuses_interrupts_beyond_irq_count_naming_the_region() {
    let beyond = check(GICD_V3_REGIONS, 0x10c, 4, 96);
    assert_eq!(
        beyond,
        Err(MmioOutcome {
            value: 0,
            group: "GICD_ISENABLER",
            ok: false
        })
    );
    assert!(
        check(GICD_V3_REGIONS, 0x108, 4, 96).is_ok(),
        "INTIDs 64-95 exist"
    );
    assert!(check(GICD_V3_REGIONS, 0x6000 + 8 * 95, 8, 96).is_ok());
    assert!(check(GICD_V3_REGIONS, 0x6000 + 8 * 96, 8, 96).is_err());
}

#[test]
fn check_refuses_offsets_beyond_u32_and_unmapped_ones() {
    assert_eq!(
        check(GICD_V3_REGIONS, 1 << 32, 4, 96),
        Err(MmioOutcome::refused("unmapped"))
    );
    assert_eq!(
        check(GICD_V3_REGIONS, 0x20, 4, 96),
        Err(MmioOutcome::refused("unmapped"))
    );
    assert_eq!(
        check(GICD_V3_REGIONS, u64::MAX, 1, 96),
        Err(MmioOutcome::refused("unmapped"))
    );
}

#[test]
fn check_accepts_and_locates_a_good_access() {
    let d = check(GICD_V3_REGIONS, 0x424, 1, 96).unwrap();
    assert_eq!(d.region.name, "GICD_IPRIORITYR");
    assert_eq!((d.offset, d.region_offset()), (0x424, 4));
}

#[test]
fn extract_bytes_reads_either_half() {
    let reg = 0x1122_3344_5566_7788;
    assert_eq!(extract_bytes(reg, 0, 8), reg);
    assert_eq!(extract_bytes(reg, 0, 4), 0x5566_7788);
    assert_eq!(extract_bytes(reg, 4, 4), 0x1122_3344);
    assert_eq!(
        extract_bytes(reg, 9, 4),
        0,
        "out-of-range byte offsets read as zero"
    );
}

#[test]
fn update_bytes_upper_half_write_keeps_lower_half() {
    let reg = 0x1122_3344_5566_7788;
    assert_eq!(update_bytes(reg, 4, 4, 0xaabb_ccdd), 0xaabb_ccdd_5566_7788);
    assert_eq!(
        update_bytes(reg, 0, 4, 0xffff_ffff_0000_0001),
        0x1122_3344_0000_0001
    );
    assert_eq!(update_bytes(reg, 0, 8, 7), 7);
    assert_eq!(
        update_bytes(reg, 8, 4, 0),
        reg,
        "out-of-range byte offsets change nothing"
    );
}

#[test]
fn iidr_is_arm_with_the_exitless_product_id() {
    assert_eq!(iidr(), 0x4500_043b);
}

#[test]
fn byte_helpers_never_overflow_on_huge_offsets() {
    assert_eq!(extract_bytes(u64::MAX, u32::MAX, 8), 0);
    assert_eq!(update_bytes(5, u32::MAX, 8, 7), 5);
}

/// The register read of a whole bank of interrupts (one pass over the bank's slice) gives what
/// reading each interrupt's field in turn gives, for every field it takes, every bank and
/// width, on a vGIC with random enable, pending, active, group, priority and trigger states.
#[test]
fn a_banked_field_read_equals_the_per_interrupt_read() {
    use crate::platform::GicVersion;
    use crate::vgic::VgicConfig;
    let mut g = Vgic::new(&VgicConfig {
        version: GicVersion::V3,
        vcpus: 2,
        spis: 96,
        lr_count: 4,
        pri_bits: 5,
    });
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for v in 0..2 {
        for id in (0..32).chain(if v == 0 { 32..128 } else { 0..0 }) {
            let (id, r) = (IntId(id), next());
            g.set_group1(v, id, r & 1 != 0);
            g.set_priority(v, id, (r >> 8) as u8);
            if id.0 >= 16 {
                let t = if r & 4 != 0 {
                    Trigger::Level
                } else {
                    Trigger::Edge
                };
                g.set_trigger(v, id, t);
            }
            g.set_enabled(v, id, r & 2 != 0);
            g.set_pending(v, id, r & 8 != 0);
            g.set_active(v, id, r & 16 != 0);
        }
    }
    let fields = [
        (IrqField::Group, 1),
        (IrqField::SetEnable, 1),
        (IrqField::ClearEnable, 1),
        (IrqField::SetPending, 1),
        (IrqField::ClearPendingSgiWi, 1),
        (IrqField::SetActive, 1),
        (IrqField::ClearActive, 1),
        (IrqField::Priority, 8),
    ];
    let mut compared = 0;
    for (field, bits) in fields {
        for owner in 0..2 {
            let ctx = Ctx {
                accessor: owner,
                owner,
            };
            for width in [1u32, 2, 4, 8] {
                let count = width * 8 / bits;
                for first in (0..128).step_by(count as usize) {
                    let Some(fast) = g.read_fields_in_bank(ctx, field, first, count, bits) else {
                        continue;
                    };
                    let slow = (0..count).fold(0, |v, n| {
                        v | g.read_irq_field(ctx, field, IntId(first + n)) << (n * bits)
                    });
                    assert_eq!(fast, slow, "{field:?} from {first}, {count} interrupts");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 400, "only {compared} reads compared");
}
