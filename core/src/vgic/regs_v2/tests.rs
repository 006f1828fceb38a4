//! vGICv2 distributor conformance: one test per rule of IHI 0048B 4.3 we emulate.

use super::*;
use crate::platform::GicVersion;
use crate::vgic::VgicConfig;
use crate::vgic::cpu_if::CpuIfShadow;
use crate::vgic::irq::{IrqState, Route, Trigger};

/// Two vCPUs, 64 SPIs (INTIDs 32-95), 5 priority bits.
const CFG: VgicConfig = VgicConfig {
    version: GicVersion::V2,
    vcpus: 2,
    spis: 64,
    lr_count: 4,
    pri_bits: 5,
};

// Distributor offsets (IHI 0048B 4.1), written out independently of the table.
const CTLR: u64 = 0x000;
const TYPER: u64 = 0x004;
const IIDR: u64 = 0x008;
const IGROUPR: u64 = 0x080;
const ISENABLER: u64 = 0x100;
const ICENABLER: u64 = 0x180;
const ISPENDR: u64 = 0x200;
const ICPENDR: u64 = 0x280;
const ISACTIVER: u64 = 0x300;
const ICACTIVER: u64 = 0x380;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const ICFGR: u64 = 0xc00;
const SGIR: u64 = 0xf00;
const CPENDSGIR: u64 = 0xf10;
const SPENDSGIR: u64 = 0xf20;
const PIDR0: u64 = 0xfe0;
const PIDR2: u64 = 0xfe8;

/// GICD_SGIR.TargetListFilter values.
const FILTER_LIST: u64 = 0 << 24;
const FILTER_ALL_BUT_SELF: u64 = 1 << 24;
const FILTER_SELF: u64 = 2 << 24;
const FILTER_RESERVED: u64 = 3 << 24;

fn vgic() -> Vgic {
    Vgic::new(&CFG)
}

fn reg(base: u64, n: u64) -> u64 {
    base + 4 * n
}

/// A 32-bit read by `vcpu` that must pass the check.
fn rd(g: &mut Vgic, vcpu: VcpuId, off: u64) -> u64 {
    let o = g.gicd_v2_access(vcpu, off, 4, None);
    assert!(o.ok, "read {off:#x}: {o:?}");
    o.value
}

/// A 32-bit write by `vcpu` that must pass the check.
fn wr(g: &mut Vgic, vcpu: VcpuId, off: u64, v: u64) {
    let o = g.gicd_v2_access(vcpu, off, 4, Some(v));
    assert!(o.ok && o.value == 0, "write {off:#x}: {o:?}");
}

fn irq(g: &Vgic, vcpu: VcpuId, id: u32) -> IrqState {
    *g.irq(vcpu, IntId(id)).unwrap()
}

fn sources(g: &Vgic, vcpu: VcpuId, sgi: u32) -> u8 {
    irq(g, vcpu, sgi).sgi_sources
}

// --- Control and identification ---

#[test]
fn gicd_ctlr_resets_disabled() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, 0, CTLR), 0);
}

#[test]
fn gicd_ctlr_bit0_enables_group0_and_bit1_group1() {
    let mut g = vgic();
    wr(&mut g, 0, CTLR, 0b01);
    assert!(g.enable_grp0 && !g.enable_grp1);
    wr(&mut g, 1, CTLR, 0b10);
    assert!(!g.enable_grp0 && g.enable_grp1);
    wr(&mut g, 0, CTLR, 0xffff_ffff);
    assert_eq!(
        rd(&mut g, 1, CTLR),
        0b11,
        "other bits reserved; the register is not banked"
    );
}

#[test]
fn gicd_typer_cpunumber_is_vcpus_minus_1() {
    let mut g = vgic();
    assert_eq!(
        rd(&mut g, 0, TYPER),
        2 | 1 << 5,
        "96 INTIDs, 2 CPUs, SecurityExtn 0"
    );
    let mut g = Vgic::new(&VgicConfig {
        vcpus: 8,
        spis: 32,
        ..CFG
    });
    assert_eq!(rd(&mut g, 0, TYPER), 1 | 7 << 5);
    let mut g = Vgic::new(&VgicConfig { vcpus: 12, ..CFG });
    assert_eq!(
        (rd(&mut g, 0, TYPER) >> 5) & 7,
        7,
        "at most eight CPU interfaces"
    );
}

#[test]
fn gicd_typer_and_iidr_are_read_only() {
    let mut g = vgic();
    wr(&mut g, 0, TYPER, 0);
    wr(&mut g, 0, IIDR, 0);
    assert_eq!(rd(&mut g, 0, TYPER), 0x22);
    assert_eq!(rd(&mut g, 0, IIDR), 0x4500_043b);
}

#[test]
fn gicd_id_registers_match_qemu_gicv2() {
    let mut g = vgic();
    let ids: Vec<u64> = (0..12).map(|n| rd(&mut g, 0, 0xfd0 + 4 * n)).collect();
    assert_eq!(
        ids,
        [0x04, 0, 0, 0, 0x90, 0xb4, 0x2b, 0, 0x0d, 0xf0, 0x05, 0xb1]
    );
    assert_eq!((rd(&mut g, 0, PIDR2) >> 4) & 0xf, 2, "ArchRev: GICv2");
    assert_eq!(rd(&mut g, 0, PIDR0), 0x90);
}

// --- Enables, pending, active, groups ---

#[test]
fn sgi_enable_bits_are_rao_wi() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, 0, ISENABLER) & 0xffff, 0xffff);
    wr(&mut g, 0, ICENABLER, 0xffff_ffff);
    assert_eq!(
        rd(&mut g, 0, ICENABLER),
        0xffff,
        "SGIs stay enabled, PPIs are cleared"
    );
}

#[test]
fn ppi_enable_bits_are_banked_per_vcpu() {
    let mut g = vgic();
    wr(&mut g, 1, ISENABLER, 1 << 27);
    assert!(irq(&g, 1, 27).enabled && !irq(&g, 0, 27).enabled);
    assert_eq!(rd(&mut g, 1, ISENABLER) >> 16, 1 << 11);
    assert_eq!(rd(&mut g, 0, ISENABLER) >> 16, 0);
}

#[test]
fn spi_enable_is_shared_by_every_vcpu() {
    let mut g = vgic();
    wr(&mut g, 0, reg(ISENABLER, 1), 1 << 8);
    assert_eq!(rd(&mut g, 1, reg(ISENABLER, 1)), 1 << 8);
    wr(&mut g, 1, reg(ICENABLER, 1), 1 << 8);
    assert!(!irq(&g, 0, 40).enabled);
}

#[test]
fn ispendr_and_icpendr_sgi_bits_are_wi() {
    let mut g = vgic();
    wr(&mut g, 0, ISPENDR, 0xffff);
    assert!(
        (0..16).all(|i| !irq(&g, 0, i).is_pending()),
        "use GICD_SPENDSGIR"
    );
    wr(&mut g, 0, SPENDSGIR, 0x01);
    wr(&mut g, 0, ICPENDR, 0xffff);
    assert!(irq(&g, 0, 0).is_pending(), "use GICD_CPENDSGIR");
    assert_eq!(rd(&mut g, 0, ISPENDR), 1, "but they read the pending state");
}

#[test]
fn ispendr_and_icpendr_ppi_and_spi_bits_are_writable() {
    let mut g = vgic();
    wr(&mut g, 1, ISPENDR, 1 << 27);
    wr(&mut g, 0, reg(ISPENDR, 2), 1);
    assert!(irq(&g, 1, 27).is_pending() && !irq(&g, 0, 27).is_pending());
    assert!(irq(&g, 0, 64).is_pending());
    wr(&mut g, 1, ICPENDR, 1 << 27);
    wr(&mut g, 1, reg(ICPENDR, 2), 1);
    assert!(!irq(&g, 1, 27).is_pending() && !irq(&g, 0, 64).is_pending());
}

#[test]
fn isactiver_and_icactiver_include_sgis() {
    let mut g = vgic();
    wr(&mut g, 0, ISACTIVER, 1 << 2 | 1 << 20);
    assert!(irq(&g, 0, 2).active && irq(&g, 0, 20).active);
    assert_eq!(rd(&mut g, 0, ICACTIVER), 1 << 2 | 1 << 20);
    wr(&mut g, 0, ICACTIVER, 1 << 2);
    assert!(!irq(&g, 0, 2).active);
}

#[test]
fn igroupr_is_banked_for_private_interrupts() {
    let mut g = vgic();
    wr(&mut g, 1, IGROUPR, 0xffff_ffff);
    wr(&mut g, 1, reg(IGROUPR, 1), 1);
    assert!(irq(&g, 1, 0).group1 && !irq(&g, 0, 0).group1);
    assert_eq!(rd(&mut g, 0, reg(IGROUPR, 1)), 1, "SPIs are shared");
}

// --- IPRIORITYR ---

#[test]
fn ipriorityr_byte_write_changes_one_interrupt_only() {
    let mut g = vgic();
    assert!(g.gicd_v2_access(0, IPRIORITYR + 33, 1, Some(0x48)).ok);
    assert_eq!(rd(&mut g, 0, reg(IPRIORITYR, 8)), 0x4800);
    assert_eq!(irq(&g, 0, 32).priority, 0);
}

#[test]
fn ipriorityr_keeps_the_5_implemented_bits() {
    let mut g = vgic();
    wr(&mut g, 0, reg(IPRIORITYR, 8), 0xffff_ffff);
    assert_eq!(rd(&mut g, 0, reg(IPRIORITYR, 8)), 0xf8f8_f8f8);
}

#[test]
fn ipriorityr_of_private_interrupts_is_banked() {
    let mut g = vgic();
    assert!(g.gicd_v2_access(1, IPRIORITYR + 3, 1, Some(0x80)).ok);
    assert_eq!(irq(&g, 1, 3).priority, 0x80);
    assert_eq!(irq(&g, 0, 3).priority, 0);
}

#[test]
fn ipriorityr_halfword_access_is_raz_wi() {
    let mut g = vgic();
    assert_eq!(
        g.gicd_v2_access(0, IPRIORITYR + 32, 2, Some(0xffff)).group,
        "bad-width"
    );
    assert_eq!(irq(&g, 0, 32).priority, 0);
}

// --- ITARGETSR ---

#[test]
fn itargetsr0_to_7_return_the_readers_bit_in_every_byte() {
    let mut g = vgic();
    for n in 0..8 {
        assert_eq!(rd(&mut g, 0, reg(ITARGETSR, n)), 0x0101_0101);
        assert_eq!(rd(&mut g, 1, reg(ITARGETSR, n)), 0x0202_0202);
    }
    assert_eq!(g.gicd_v2_access(1, ITARGETSR + 29, 1, None).value, 0x02);
}

#[test]
fn itargetsr0_to_7_are_read_only() {
    let mut g = vgic();
    wr(&mut g, 0, reg(ITARGETSR, 7), 0x0202_0202);
    assert!(g.gicd_v2_access(0, ITARGETSR, 1, Some(0xff)).ok);
    assert_eq!(rd(&mut g, 0, reg(ITARGETSR, 7)), 0x0101_0101);
    assert_eq!(rd(&mut g, 0, ITARGETSR), 0x0101_0101);
    assert!((0..32).all(|i| irq(&g, 0, i) == IrqState::reset(IntId(i), true)));
}

#[test]
fn itargetsr_spi_resets_to_no_target() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, 0, reg(ITARGETSR, 8)), 0);
}

#[test]
fn itargetsr_spi_write_masks_nonexistent_cpu_interfaces() {
    let mut g = vgic();
    wr(&mut g, 0, reg(ITARGETSR, 8), 0xffff_ffff);
    assert_eq!(
        rd(&mut g, 0, reg(ITARGETSR, 8)),
        0x0303_0303,
        "two CPU interfaces"
    );
    assert_eq!(irq(&g, 0, 32).route, Route::Targets(0b11));
}

#[test]
fn itargetsr_spi_byte_write_changes_one_interrupt_and_routes_it() {
    let mut g = vgic();
    assert!(g.gicd_v2_access(0, ITARGETSR + 42, 1, Some(0x02)).ok);
    assert_eq!(irq(&g, 0, 42).route, Route::Targets(0b10));
    assert_eq!(irq(&g, 0, 41).route, Route::Targets(0));
    assert_eq!(rd(&mut g, 1, reg(ITARGETSR, 10)), 0x0002_0000);
    g.set_group_enables(true, true);
    g.set_enabled(0, IntId(42), true);
    g.set_pending(0, IntId(42), true);
    assert_eq!(g.target(0, IntId(42)), Some(1));
}

#[test]
fn itargetsr_beyond_irq_count_is_raz_wi() {
    let mut g = vgic();
    let o = g.gicd_v2_access(0, ITARGETSR + 96, 1, Some(1));
    assert_eq!(
        o,
        MmioOutcome {
            value: 0,
            group: "GICD_ITARGETSR",
            ok: false
        }
    );
}

// --- ICFGR ---

#[test]
fn icfgr0_sgis_are_read_only_edge() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, 0, ICFGR), 0xaaaa_aaaa);
    wr(&mut g, 0, ICFGR, 0);
    assert_eq!(rd(&mut g, 0, ICFGR), 0xaaaa_aaaa);
}

#[test]
fn icfgr1_ppis_are_configurable_per_vcpu() {
    let mut g = vgic();
    assert_eq!(
        rd(&mut g, 1, reg(ICFGR, 1)),
        0,
        "PPIs reset level-sensitive"
    );
    wr(&mut g, 1, reg(ICFGR, 1), 0b10 << 22);
    assert_eq!(irq(&g, 1, 27).trigger, Trigger::Edge);
    assert_eq!(irq(&g, 0, 27).trigger, Trigger::Level);
    assert_eq!(rd(&mut g, 1, reg(ICFGR, 1)), 0b10 << 22);
}

#[test]
fn icfgr_spi_only_the_high_bit_of_each_field_is_writable() {
    let mut g = vgic();
    wr(&mut g, 0, reg(ICFGR, 2), 0xffff_ffff);
    assert_eq!(rd(&mut g, 0, reg(ICFGR, 2)), 0xaaaa_aaaa);
    assert_eq!(irq(&g, 0, 47).trigger, Trigger::Edge);
}

// --- SGIR, CPENDSGIR, SPENDSGIR ---

#[test]
fn sgir_filter_0_targets_the_cpu_target_list() {
    let mut g = Vgic::new(&VgicConfig { vcpus: 4, ..CFG });
    wr(&mut g, 1, SGIR, FILTER_LIST | 0b1010 << 16 | 5);
    let pending: Vec<bool> = (0..4).map(|v| irq(&g, v, 5).is_pending()).collect();
    assert_eq!(
        pending,
        [false, true, false, true],
        "the list may name the requester"
    );
}

#[test]
fn sgir_filter_1_targets_all_but_self() {
    let mut g = Vgic::new(&VgicConfig { vcpus: 4, ..CFG });
    wr(&mut g, 2, SGIR, FILTER_ALL_BUT_SELF | 0xff << 16 | 7);
    let pending: Vec<bool> = (0..4).map(|v| irq(&g, v, 7).is_pending()).collect();
    assert_eq!(pending, [true, true, false, true], "CPUTargetList ignored");
}

#[test]
fn sgir_filter_2_targets_self() {
    let mut g = Vgic::new(&VgicConfig { vcpus: 4, ..CFG });
    wr(&mut g, 3, SGIR, FILTER_SELF | 0x01 << 16 | 15);
    let pending: Vec<bool> = (0..4).map(|v| irq(&g, v, 15).is_pending()).collect();
    assert_eq!(pending, [false, false, false, true]);
    assert_eq!(sources(&g, 3, 15), 1 << 3);
}

#[test]
fn sgir_filter_3_is_reserved_and_ignored() {
    let mut g = vgic();
    wr(&mut g, 0, SGIR, FILTER_RESERVED | 0xff << 16 | 1);
    assert!((0..2).all(|v| !irq(&g, v, 1).is_pending()));
}

#[test]
fn sgir_list_bits_for_nonexistent_cpu_interfaces_are_ignored() {
    let mut g = vgic();
    wr(&mut g, 0, SGIR, FILTER_LIST | 0xfc << 16 | 2);
    assert!((0..2).all(|v| !irq(&g, v, 2).is_pending()));
}

#[test]
fn sgir_records_the_requester_as_the_source() {
    let mut g = vgic();
    wr(&mut g, 1, SGIR, FILTER_LIST | 0b01 << 16 | 4);
    wr(&mut g, 0, SGIR, FILTER_LIST | 0b01 << 16 | 4);
    assert_eq!(sources(&g, 0, 4), 0b11, "pending from CPU 0 and CPU 1");
    assert_eq!(
        rd(&mut g, 0, SPENDSGIR + 4),
        0b11,
        "GICD_SPENDSGIR1 byte 0 = SGI 4"
    );
}

#[test]
fn sgir_uses_only_the_low_4_bits_of_sgiintid_and_ignores_nsatt() {
    let mut g = vgic();
    wr(&mut g, 0, SGIR, FILTER_SELF | 1 << 15 | 0x3f3);
    assert!(irq(&g, 0, 3).is_pending());
}

#[test]
fn sgir_from_a_vcpu_without_a_cpu_interface_is_ignored() {
    let mut g = vgic();
    wr(&mut g, 5, SGIR, FILTER_LIST | 0b11 << 16 | 1);
    assert!((0..2).all(|v| !irq(&g, v, 1).is_pending()));
}

#[test]
fn sgir_reads_as_zero() {
    let mut g = vgic();
    wr(&mut g, 0, SGIR, FILTER_SELF | 1);
    assert_eq!(rd(&mut g, 0, SGIR), 0);
}

#[test]
fn spendsgir_sets_per_source_bits_of_the_accessors_sgis() {
    let mut g = vgic();
    assert!(g.gicd_v2_access(1, SPENDSGIR + 6, 1, Some(0b01)).ok);
    assert_eq!(
        sources(&g, 1, 6),
        0b01,
        "SGI 6 pending on vCPU 1 from CPU 0"
    );
    assert_eq!(sources(&g, 0, 6), 0);
    assert_eq!(rd(&mut g, 1, SPENDSGIR + 4), 0x0001_0000);
    assert_eq!(
        rd(&mut g, 1, CPENDSGIR + 4),
        0x0001_0000,
        "both registers read the sources"
    );
}

#[test]
fn spendsgir_word_covers_four_sgis() {
    let mut g = vgic();
    wr(&mut g, 0, SPENDSGIR + 12, 0x0201_0002);
    assert_eq!(
        [12, 13, 14, 15].map(|s| sources(&g, 0, s)),
        [0b10, 0, 0b01, 0b10]
    );
}

#[test]
fn spendsgir_bits_for_nonexistent_sources_are_ignored() {
    let mut g = vgic();
    wr(&mut g, 0, SPENDSGIR, 0xfc);
    assert_eq!(sources(&g, 0, 0), 0);
    assert!(!irq(&g, 0, 0).is_pending());
}

#[test]
fn cpendsgir_clears_only_the_written_sources() {
    let mut g = vgic();
    wr(&mut g, 0, SPENDSGIR, 0b11);
    assert!(g.gicd_v2_access(0, CPENDSGIR, 1, Some(0b01)).ok);
    assert_eq!(sources(&g, 0, 0), 0b10);
    assert!(irq(&g, 0, 0).is_pending());
    wr(&mut g, 0, CPENDSGIR, 0b10);
    assert!(!irq(&g, 0, 0).is_pending(), "no source left: not pending");
}

#[test]
fn cpendsgir_halfword_access_is_raz_wi() {
    let mut g = vgic();
    assert_eq!(g.gicd_v2_access(0, CPENDSGIR, 2, None).group, "bad-width");
}

// --- Robustness and end to end ---

#[test]
fn unmapped_offset_is_raz_wi_and_reported() {
    let mut g = vgic();
    for off in [0x00c, 0x040, 0xd00, 0xf04, 0xf30, 0xfcc, 0x1000, u64::MAX] {
        let o = g.gicd_v2_access(0, off, 4, Some(u64::MAX));
        assert_eq!(
            o,
            MmioOutcome {
                value: 0,
                group: "unmapped",
                ok: false
            },
            "{off:#x}"
        );
    }
}

#[test]
fn no_offset_width_or_value_panics() {
    let mut g = Vgic::new(&VgicConfig { vcpus: 9, ..CFG });
    for off in (0..0x2000u64).chain([u64::MAX - 3, u64::MAX]) {
        for width in [0u8, 1, 2, 3, 4, 8] {
            for vcpu in [0, 8, 9, usize::MAX] {
                for write in [None, Some(u64::MAX), Some(0x0300_a5a5)] {
                    let o = g.gicd_v2_access(vcpu, off, width, write);
                    assert!(o.ok || o.value == 0);
                }
            }
        }
    }
}

#[test]
fn sgir_then_flush_loads_the_sgi_with_its_source() {
    let mut g = vgic();
    wr(&mut g, 0, CTLR, 0b01);
    wr(&mut g, 1, SGIR, FILTER_LIST | 0b01 << 16 | 9);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    let e = g.resident(0).next().copied().unwrap();
    assert_eq!((e.vintid, e.source), (9, 1), "SGI 9 from CPU 1");
}

#[test]
fn spi_enabled_pended_and_targeted_by_mmio_reaches_the_targeted_vcpu() {
    let mut g = vgic();
    wr(&mut g, 0, CTLR, 0b01);
    assert!(g.gicd_v2_access(0, ITARGETSR + 40, 1, Some(0b10)).ok);
    wr(&mut g, 0, reg(ISENABLER, 1), 1 << 8);
    wr(&mut g, 0, reg(ISPENDR, 1), 1 << 8);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 0);
    g.flush(1, &mut sh);
    assert_eq!(g.resident(1).map(|e| e.vintid).collect::<Vec<_>>(), [40]);
}
