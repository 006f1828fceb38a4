//! vGICv3 register conformance: one test per rule of IHI 0069H 12.8-12.11 we emulate.

use super::*;
use crate::platform::GicVersion;
use crate::vgic::VgicConfig;
use crate::vgic::cpu_if::CpuIfShadow;
use crate::vgic::irq::{IrqState, Trigger};
use crate::vgic::lr::LrFormat;

/// Two vCPUs, 64 SPIs (INTIDs 32-95), 5 priority bits.
const CFG: VgicConfig = VgicConfig {
    version: GicVersion::V3,
    vcpus: 2,
    spis: 64,
    lr_count: 4,
    pri_bits: 5,
};

// Distributor offsets (IHI 0069H 12.8), written out independently of the table.
const CTLR: u64 = 0x0000;
const TYPER: u64 = 0x0004;
const IIDR: u64 = 0x0008;
const TYPER2: u64 = 0x000c;
const STATUSR: u64 = 0x0010;
const SETSPI_NSR: u64 = 0x0040;
const CLRSPI_NSR: u64 = 0x0048;
const IGROUPR: u64 = 0x0080;
const ISENABLER: u64 = 0x0100;
const ICENABLER: u64 = 0x0180;
const ISPENDR: u64 = 0x0200;
const ICPENDR: u64 = 0x0280;
const ISACTIVER: u64 = 0x0300;
const ICACTIVER: u64 = 0x0380;
const IPRIORITYR: u64 = 0x0400;
const ITARGETSR: u64 = 0x0800;
const ICFGR: u64 = 0x0c00;
const IGRPMODR: u64 = 0x0d00;
const NSACR: u64 = 0x0e00;
const SGIR: u64 = 0x0f00;
const CPENDSGIR: u64 = 0x0f10;
const SPENDSGIR: u64 = 0x0f20;
const IROUTER: u64 = 0x6000;
const PIDR0: u64 = 0xffe0;
const PIDR2: u64 = 0xffe8;
const CIDR0: u64 = 0xfff0;

// Redistributor offsets (IHI 0069H 12.10), from a frame's base.
const R_CTLR: u64 = 0x0000;
const R_IIDR: u64 = 0x0004;
const R_TYPER: u64 = 0x0008;
const R_STATUSR: u64 = 0x0010;
const R_WAKER: u64 = 0x0014;
const R_SETLPIR: u64 = 0x0040;
const R_CLRLPIR: u64 = 0x0048;
const R_PROPBASER: u64 = 0x0070;
const R_PENDBASER: u64 = 0x0078;
const R_INVLPIR: u64 = 0x00a0;
const R_INVALLR: u64 = 0x00b0;
const R_SYNCR: u64 = 0x00c0;
const R_PIDR0: u64 = 0xffe0;
const R_PIDR2: u64 = 0xffe8;
const SGI_BASE: u64 = 0x1_0000;
const R_IGROUPR0: u64 = SGI_BASE + 0x080;
const R_ISENABLER0: u64 = SGI_BASE + 0x100;
const R_ICENABLER0: u64 = SGI_BASE + 0x180;
const R_ISPENDR0: u64 = SGI_BASE + 0x200;
const R_ICPENDR0: u64 = SGI_BASE + 0x280;
const R_ISACTIVER0: u64 = SGI_BASE + 0x300;
const R_ICACTIVER0: u64 = SGI_BASE + 0x380;
const R_IPRIORITYR: u64 = SGI_BASE + 0x400;
const R_ICFGR0: u64 = SGI_BASE + 0xc00;
const R_ICFGR1: u64 = SGI_BASE + 0xc04;
const R_IGRPMODR0: u64 = SGI_BASE + 0xd00;
const R_NSACR: u64 = SGI_BASE + 0xe00;

fn vgic() -> Vgic {
    Vgic::new(&CFG)
}

/// Register n (4 bytes each) of a group.
fn reg(base: u64, n: u64) -> u64 {
    base + 4 * n
}

/// GICD_IROUTER<id>.
fn irouter(id: u64) -> u64 {
    IROUTER + 8 * id
}

/// The base of redistributor frame n.
fn frame(n: u64) -> u64 {
    n * GICR_FRAME_SIZE
}

/// A 32-bit distributor read by vCPU 0 that must pass the check.
fn rd(g: &mut Vgic, off: u64) -> u64 {
    let o = g.gicd_access(0, off, 4, None);
    assert!(o.ok, "read {off:#x}: {o:?}");
    o.value
}

/// A 32-bit distributor write by vCPU 0 that must pass the check.
fn wr(g: &mut Vgic, off: u64, v: u64) {
    let o = g.gicd_access(0, off, 4, Some(v));
    assert!(o.ok && o.value == 0, "write {off:#x}: {o:?}");
}

/// A 32-bit read of redistributor frame `f` by vCPU 0.
fn rdr(g: &mut Vgic, f: u64, off: u64) -> u64 {
    let o = g.gicr_access(0, frame(f) + off, 4, None);
    assert!(o.ok, "read frame {f} {off:#x}: {o:?}");
    o.value
}

/// A 32-bit write of redistributor frame `f` by vCPU 0.
fn wrr(g: &mut Vgic, f: u64, off: u64, v: u64) {
    let o = g.gicr_access(0, frame(f) + off, 4, Some(v));
    assert!(o.ok, "write frame {f} {off:#x}: {o:?}");
}

fn irq(g: &Vgic, vcpu: VcpuId, id: u32) -> IrqState {
    *g.irq(vcpu, IntId(id)).unwrap()
}

// --- GICD_CTLR ---

#[test]
fn gicd_ctlr_resets_with_are_and_ds_set_and_groups_disabled() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, CTLR), 0x50, "ARE (bit 4) and DS (bit 6)");
}

#[test]
fn gicd_ctlr_group_enables_are_read_write() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0b11);
    assert_eq!(rd(&mut g, CTLR), 0x53);
    assert!(g.enable_grp0 && g.enable_grp1);
    wr(&mut g, CTLR, 0b10);
    assert_eq!(rd(&mut g, CTLR), 0x52);
    assert!(!g.enable_grp0 && g.enable_grp1);
}

#[test]
fn gicd_ctlr_are_and_ds_are_rao_wi() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0);
    assert_eq!(rd(&mut g, CTLR), 0x50);
}

#[test]
fn gicd_ctlr_rwp_and_e1nwf_read_zero() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0x8000_0080);
    assert_eq!(rd(&mut g, CTLR), 0x50);
}

#[test]
fn gicd_ctlr_byte_access_is_raz_wi_and_reported() {
    let mut g = vgic();
    let w = g.gicd_access(0, CTLR, 1, Some(0x3));
    assert_eq!(
        w,
        MmioOutcome {
            value: 0,
            group: "bad-width",
            ok: false
        }
    );
    assert!(!g.enable_grp0 && !g.enable_grp1, "write ignored");
    assert_eq!(
        g.gicd_access(0, CTLR, 1, None).value,
        0,
        "RAZ, though the register holds 0x50"
    );
}

// --- Identification ---

#[test]
fn gicd_typer_for_2_vcpus_and_64_spis() {
    let mut g = vgic();
    let typer = rd(&mut g, TYPER);
    assert_eq!(typer & 0x1f, 2, "ITLinesNumber: 32 * (2 + 1) = 96 INTIDs");
    assert_eq!((typer >> 5) & 0x7, 0, "CPUNumber 0 with ARE (KVM, QEMU)");
    assert_eq!((typer >> 10) & 1, 0, "SecurityExtn");
    assert_eq!((typer >> 16) & 0x3, 0, "MBIS, LPIS");
    assert_eq!((typer >> 19) & 0x1f, 9, "IDbits: 10-bit INTIDs");
    assert_eq!((typer >> 24) & 1, 1, "A3V");
    assert_eq!((typer >> 25) & 1, 0, "No1N: 1-of-N supported");
    assert_eq!((typer >> 26) & 1, 1, "RSS");
    assert_eq!(typer, 0x0548_0002);
}

#[test]
fn gicd_typer_rounds_a_partial_line_up() {
    let mut g = Vgic::new(&VgicConfig { spis: 40, ..CFG });
    assert_eq!(rd(&mut g, TYPER) & 0x1f, 2, "72 INTIDs need 3 lines of 32");
    let mut g = Vgic::new(&VgicConfig { spis: 988, ..CFG });
    assert_eq!(rd(&mut g, TYPER) & 0x1f, 31);
}

#[test]
fn gicd_typer_and_iidr_are_read_only() {
    let mut g = vgic();
    wr(&mut g, TYPER, 0);
    wr(&mut g, IIDR, 0);
    assert_eq!(rd(&mut g, TYPER), 0x0548_0002);
    assert_eq!(
        rd(&mut g, IIDR),
        0x4500_043b,
        "Arm implementer, ProductID 'E'"
    );
}

#[test]
fn gicd_typer2_statusr_and_message_based_spis_are_raz_wi() {
    let mut g = vgic();
    for off in [TYPER2, STATUSR, SETSPI_NSR, CLRSPI_NSR, 0x50, 0x58] {
        wr(&mut g, off, 40);
        assert_eq!(rd(&mut g, off), 0, "{off:#x}");
    }
    assert!(
        !irq(&g, 0, 40).is_pending(),
        "SETSPI_NSR does not pend (MBIS = 0)"
    );
}

#[test]
fn gicd_pidr2_reports_arch_rev_3() {
    let mut g = vgic();
    assert_eq!((rd(&mut g, PIDR2) >> 4) & 0xf, 3);
}

#[test]
fn gicd_id_registers_match_qemu_gicv3() {
    let mut g = vgic();
    let ids: Vec<u64> = (0..12).map(|n| rd(&mut g, 0xffd0 + 4 * n)).collect();
    assert_eq!(
        ids,
        [0x44, 0, 0, 0, 0x92, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1]
    );
    assert_eq!(rd(&mut g, PIDR0), 0x92, "distributor");
    let cidrs: Vec<u64> = (0..4).map(|n| rd(&mut g, CIDR0 + 4 * n)).collect();
    assert_eq!(cidrs, [0x0d, 0xf0, 0x05, 0xb1], "CoreSight component class");
}

// --- Per-interrupt registers ---

#[test]
fn isenabler_sets_and_icenabler_clears() {
    let mut g = vgic();
    wr(&mut g, reg(ISENABLER, 1), 1 << 8 | 1 << 9);
    assert!(irq(&g, 0, 40).enabled && irq(&g, 0, 41).enabled);
    assert_eq!(rd(&mut g, reg(ISENABLER, 1)), 0x300);
    assert_eq!(
        rd(&mut g, reg(ICENABLER, 1)),
        0x300,
        "both registers read the enables"
    );
    wr(&mut g, reg(ICENABLER, 1), 1 << 8);
    assert!(!irq(&g, 0, 40).enabled && irq(&g, 0, 41).enabled);
    assert_eq!(rd(&mut g, reg(ISENABLER, 1)), 0x200);
}

#[test]
fn isenabler_and_icenabler_zero_bits_have_no_effect() {
    let mut g = vgic();
    wr(&mut g, reg(ISENABLER, 1), 1 << 8);
    wr(&mut g, reg(ISENABLER, 1), 0);
    wr(&mut g, reg(ICENABLER, 1), 0);
    assert!(irq(&g, 0, 40).enabled);
}

#[test]
fn isenabler_16bit_access_is_raz_wi_bad_width() {
    let mut g = vgic();
    let o = g.gicd_access(0, reg(ISENABLER, 1), 2, Some(0xffff));
    assert_eq!(
        o,
        MmioOutcome {
            value: 0,
            group: "bad-width",
            ok: false
        }
    );
    assert!(!irq(&g, 0, 32).enabled);
    assert!(
        !g.gicd_access(0, reg(ISENABLER, 1), 8, None).ok,
        "64-bit too"
    );
}

#[test]
fn misaligned_word_access_is_raz_wi() {
    let mut g = vgic();
    let o = g.gicd_access(0, reg(ISENABLER, 1) + 2, 4, Some(u64::MAX));
    assert_eq!(
        o,
        MmioOutcome {
            value: 0,
            group: "misaligned",
            ok: false
        }
    );
    assert!((32..96).all(|i| !irq(&g, 0, i).enabled));
}

#[test]
fn spi_registers_beyond_irq_count_are_raz_wi_and_reported() {
    let mut g = vgic();
    for off in [
        reg(ISENABLER, 3),
        reg(IGROUPR, 31),
        reg(IPRIORITYR, 24),
        reg(ICFGR, 6),
    ] {
        let o = g.gicd_access(0, off, 4, Some(u64::MAX));
        assert!(!o.ok && o.value == 0, "{off:#x}: {o:?}");
        let o = g.gicd_access(0, off, 4, None);
        assert!(!o.ok && o.value == 0, "{off:#x}: {o:?}");
    }
    assert_eq!(
        g.gicd_access(0, reg(ISENABLER, 3), 4, None).group,
        "GICD_ISENABLER"
    );
}

#[test]
fn unimplemented_spis_in_a_partial_word_are_raz_wi() {
    // 40 SPIs: INTIDs 32-71; GICD_ISENABLER2 covers 64-95.
    let mut g = Vgic::new(&VgicConfig { spis: 40, ..CFG });
    wr(&mut g, reg(ISENABLER, 2), 0xffff_ffff);
    assert_eq!(rd(&mut g, reg(ISENABLER, 2)), 0xff);
    wr(&mut g, reg(IPRIORITYR, 17), 0xffff_ffff);
    assert_eq!(rd(&mut g, reg(IPRIORITYR, 17)), 0xf8f8_f8f8, "INTIDs 68-71");
    assert!(
        !g.gicd_access(0, reg(IPRIORITYR, 18), 4, None).ok,
        "INTIDs 72-75"
    );
}

#[test]
fn spi_registers_are_shared_by_every_accessor() {
    let mut g = vgic();
    assert!(g.gicd_access(1, reg(ISENABLER, 1), 4, Some(1)).ok);
    assert_eq!(
        rd(&mut g, reg(ISENABLER, 1)),
        1,
        "vCPU 0 sees vCPU 1's write"
    );
}

#[test]
fn igroupr_is_read_write() {
    let mut g = vgic();
    wr(&mut g, reg(IGROUPR, 2), 0x8000_0001);
    assert!(irq(&g, 0, 64).group1 && irq(&g, 0, 95).group1 && !irq(&g, 0, 65).group1);
    assert_eq!(rd(&mut g, reg(IGROUPR, 2)), 0x8000_0001);
    wr(&mut g, reg(IGROUPR, 2), 0);
    assert!(!irq(&g, 0, 64).group1);
}

#[test]
fn ispendr_on_a_level_spi_latches_and_icpendr_clears() {
    let mut g = vgic();
    assert_eq!(
        irq(&g, 0, 40).trigger,
        Trigger::Level,
        "SPIs reset level-sensitive"
    );
    wr(&mut g, reg(ISPENDR, 1), 1 << 8);
    assert!(
        irq(&g, 0, 40).is_pending(),
        "the pending latch holds a level interrupt pending"
    );
    assert_eq!(rd(&mut g, reg(ISPENDR, 1)), 1 << 8);
    assert_eq!(rd(&mut g, reg(ICPENDR, 1)), 1 << 8);
    wr(&mut g, reg(ICPENDR, 1), 1 << 8);
    assert!(!irq(&g, 0, 40).is_pending());
}

#[test]
fn icpendr_does_not_lower_an_asserted_level_input() {
    let mut g = vgic();
    g.set_line_level(0, IntId(40), true);
    assert_eq!(
        rd(&mut g, reg(ISPENDR, 1)),
        1 << 8,
        "pending reads the input level"
    );
    wr(&mut g, reg(ICPENDR, 1), 1 << 8);
    assert_eq!(rd(&mut g, reg(ISPENDR, 1)), 1 << 8);
}

#[test]
fn isactiver_sets_and_icactiver_clears() {
    let mut g = vgic();
    wr(&mut g, reg(ISACTIVER, 2), 1 << 31);
    assert!(irq(&g, 0, 95).active);
    assert_eq!(rd(&mut g, reg(ICACTIVER, 2)), 1 << 31);
    wr(&mut g, reg(ICACTIVER, 2), 1 << 31);
    assert!(!irq(&g, 0, 95).active);
}

#[test]
fn ipriorityr_resets_to_zero() {
    let mut g = vgic();
    assert!((8..24).all(|n| rd(&mut g, reg(IPRIORITYR, n)) == 0));
}

#[test]
fn ipriorityr_byte_write_changes_one_interrupt_only() {
    let mut g = vgic();
    wr(&mut g, reg(IPRIORITYR, 10), 0x1010_1010);
    assert!(g.gicd_access(0, IPRIORITYR + 41, 1, Some(0x80)).ok);
    assert_eq!(irq(&g, 0, 41).priority, 0x80);
    assert_eq!(
        [irq(&g, 0, 40), irq(&g, 0, 42), irq(&g, 0, 43)].map(|i| i.priority),
        [0x10; 3]
    );
    assert_eq!(rd(&mut g, reg(IPRIORITYR, 10)), 0x1010_8010);
    assert_eq!(g.gicd_access(0, IPRIORITYR + 41, 1, None).value, 0x80);
}

#[test]
fn ipriorityr_keeps_the_5_implemented_bits() {
    let mut g = vgic();
    assert!(g.gicd_access(0, IPRIORITYR + 40, 1, Some(0xff)).ok);
    assert_eq!(g.gicd_access(0, IPRIORITYR + 40, 1, None).value, 0xf8);
}

#[test]
fn ipriorityr_word_covers_four_interrupts_little_endian() {
    let mut g = vgic();
    wr(&mut g, reg(IPRIORITYR, 8), 0x4030_2010);
    let p: Vec<u8> = (32..36).map(|i| irq(&g, 0, i).priority).collect();
    assert_eq!(p, [0x10, 0x20, 0x30, 0x40]);
}

#[test]
fn icfgr_spi_only_the_high_bit_of_each_field_is_writable() {
    let mut g = vgic();
    assert_eq!(rd(&mut g, reg(ICFGR, 2)), 0, "SPIs reset level-sensitive");
    wr(&mut g, reg(ICFGR, 2), 0xffff_ffff);
    assert_eq!(
        rd(&mut g, reg(ICFGR, 2)),
        0xaaaa_aaaa,
        "Int_config[0] is RES0"
    );
    assert_eq!(irq(&g, 0, 32).trigger, Trigger::Edge);
    wr(&mut g, reg(ICFGR, 2), 0x5555_5555);
    assert_eq!(rd(&mut g, reg(ICFGR, 2)), 0);
    assert_eq!(irq(&g, 0, 47).trigger, Trigger::Level);
}

#[test]
fn icfgr_field_n_configures_interrupt_16m_plus_n() {
    let mut g = vgic();
    wr(&mut g, reg(ICFGR, 3), 0b10 << 6);
    assert_eq!(irq(&g, 0, 51).trigger, Trigger::Edge);
    assert_eq!(irq(&g, 0, 50).trigger, Trigger::Level);
}

// --- Registers that affinity routing and the single security state make RAZ/WI ---

#[test]
fn banked_distributor_registers_are_raz_wi_with_are() {
    let mut g = vgic();
    let banked = [
        IGROUPR, ISENABLER, ICENABLER, ISPENDR, ICPENDR, ISACTIVER, ICACTIVER, ICFGR,
    ]
    .into_iter()
    .chain([ICFGR + 4])
    .chain((0..8).map(|n| reg(IPRIORITYR, n)));
    for off in banked {
        wr(&mut g, off, 0xffff_ffff);
        assert_eq!(rd(&mut g, off), 0, "{off:#x}");
    }
    for id in 0..32 {
        assert!(g.gicd_access(0, irouter(id), 8, Some(1)).ok);
        assert_eq!(g.gicd_access(0, irouter(id), 8, None).value, 0);
    }
    for v in 0..2 {
        for i in 0..32 {
            assert_eq!(
                irq(&g, v, i),
                IrqState::reset(IntId(i), false),
                "vCPU {v} INTID {i}"
            );
        }
    }
}

#[test]
fn itargetsr_is_raz_wi_with_are() {
    let mut g = vgic();
    wr(&mut g, reg(ITARGETSR, 10), 0x0101_0101);
    assert!(g.gicd_access(0, ITARGETSR + 40, 1, Some(2)).ok);
    assert_eq!(rd(&mut g, reg(ITARGETSR, 10)), 0);
    assert_eq!(irq(&g, 0, 40).route, Route::Affinity(0));
}

#[test]
fn igrpmodr_and_nsacr_are_raz_wi_with_ds() {
    let mut g = vgic();
    for off in [reg(IGRPMODR, 1), reg(NSACR, 2), reg(NSACR, 63)] {
        wr(&mut g, off, 0xffff_ffff);
        assert_eq!(rd(&mut g, off), 0);
    }
}

#[test]
fn sgir_is_wi_with_are() {
    let mut g = vgic();
    // TargetListFilter 0b01: all but self, SGI 3.
    wr(&mut g, SGIR, 1 << 24 | 3);
    wr(&mut g, SGIR, 0x00ff_0003);
    assert!((0..2).all(|v| !irq(&g, v, 3).is_pending()));
    assert_eq!(rd(&mut g, SGIR), 0);
}

#[test]
fn cpendsgir_and_spendsgir_are_raz_wi_with_are() {
    let mut g = vgic();
    for off in [CPENDSGIR, SPENDSGIR, SPENDSGIR + 12] {
        wr(&mut g, off, 0xffff_ffff);
        assert_eq!(rd(&mut g, off), 0);
        assert!(
            g.gicd_access(0, off + 1, 1, Some(0xff)).ok,
            "byte accessible"
        );
    }
    assert!((0..16).all(|i| !irq(&g, 0, i).is_pending()));
}

#[test]
fn unmapped_distributor_offset_is_raz_wi_and_reported() {
    let mut g = vgic();
    for off in [0x20, 0x1000, 0x5ffc, 0x7fe0, 0xffcc, 0x1_0000, u64::MAX - 3] {
        let o = g.gicd_access(0, off, 4, Some(u64::MAX));
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

// --- GICD_IROUTER ---

#[test]
fn irouter_resets_to_affinity_0() {
    let mut g = vgic();
    assert_eq!(g.gicd_access(0, irouter(40), 8, None).value, 0);
}

#[test]
fn irouter_64bit_write_reads_back_and_routes() {
    let mut g = vgic();
    let aff = 3 << 32 | 2 << 16 | 1 << 8 | 4;
    g.cpu_mut(1).unwrap().affinity = aff;
    assert!(g.gicd_access(0, irouter(40), 8, Some(aff)).ok);
    assert_eq!(g.gicd_access(0, irouter(40), 8, None).value, aff);
    assert_eq!(irq(&g, 0, 40).route, Route::Affinity(aff));
    g.set_group_enables(true, true);
    g.set_enabled(0, IntId(40), true);
    g.set_pending(0, IntId(40), true);
    assert_eq!(g.target(0, IntId(40)), Some(1));
}

#[test]
fn irouter_res0_bits_are_masked() {
    let mut g = vgic();
    let irm = 1 << 31;
    assert!(g.gicd_access(0, irouter(40), 8, Some(!irm)).ok);
    assert_eq!(
        g.gicd_access(0, irouter(40), 8, None).value,
        0x0000_00ff_00ff_ffff
    );
    assert!(
        g.gicd_access(0, irouter(41), 8, Some(0xffff_ff00_7f00_0000))
            .ok
    );
    assert_eq!(g.gicd_access(0, irouter(41), 8, None).value, 0);
}

#[test]
fn irouter_upper_half_write_keeps_lower_half() {
    let mut g = vgic();
    assert!(g.gicd_access(0, irouter(40), 8, Some(0x0001_0203)).ok);
    assert!(g.gicd_access(0, irouter(40) + 4, 4, Some(0x05)).ok);
    assert_eq!(
        g.gicd_access(0, irouter(40), 8, None).value,
        0x0000_0005_0001_0203
    );
    assert_eq!(irq(&g, 0, 40).route, Route::Affinity(0x0000_0005_0001_0203));
}

#[test]
fn irouter_lower_half_write_keeps_upper_half() {
    let mut g = vgic();
    assert!(
        g.gicd_access(0, irouter(40), 8, Some(0x0000_0007_0000_0001))
            .ok
    );
    assert!(g.gicd_access(0, irouter(40), 4, Some(0x0000_0002)).ok);
    assert_eq!(g.gicd_access(0, irouter(40), 4, None).value, 2);
    assert_eq!(g.gicd_access(0, irouter(40) + 4, 4, None).value, 7);
}

#[test]
fn irouter_irm_routes_to_any_participating_vcpu() {
    let mut g = vgic();
    assert!(g.gicd_access(0, irouter(50), 4, Some(1 << 31)).ok);
    assert!(matches!(irq(&g, 0, 50).route, Route::Any(_)));
    assert_eq!(
        g.gicd_access(0, irouter(50), 4, None).value,
        1 << 31,
        "IRM reads back"
    );
    assert!(g.gicd_access(0, irouter(50), 8, Some(1)).ok);
    assert_eq!(
        irq(&g, 0, 50).route,
        Route::Affinity(1),
        "IRM = 0 routes by affinity again"
    );
}

#[test]
fn irouter_byte_access_is_raz_wi() {
    let mut g = vgic();
    let o = g.gicd_access(0, irouter(40), 1, Some(1));
    assert_eq!(o.group, "bad-width");
    assert_eq!(irq(&g, 0, 40).route, Route::Affinity(0));
}

#[test]
fn irouter_beyond_irq_count_is_raz_wi() {
    let mut g = vgic();
    let o = g.gicd_access(0, irouter(96), 8, Some(1));
    assert_eq!(
        o,
        MmioOutcome {
            value: 0,
            group: "GICD_IROUTER",
            ok: false
        }
    );
    assert!(g.gicd_access(0, irouter(95), 8, Some(1)).ok, "the last SPI");
}

// --- Redistributor RD_base ---

#[test]
fn gicr_typer_describes_the_frame_not_the_accessor() {
    let mut g = vgic();
    for accessor in 0..2 {
        let o = g.gicr_access(accessor, frame(1) + R_TYPER, 8, None);
        assert_eq!(
            o.value,
            1 << 32 | 1 << 8 | 1 << 4,
            "Aff0 1, Processor_Number 1, Last"
        );
        let o = g.gicr_access(accessor, frame(0) + R_TYPER, 8, None);
        assert_eq!(o.value, 0);
    }
}

#[test]
fn gicr_typer_last_is_set_only_on_the_last_frame() {
    let mut g = Vgic::new(&VgicConfig { vcpus: 4, ..CFG });
    let last: Vec<bool> = (0..4)
        .map(|f| g.gicr_access(0, frame(f) + R_TYPER, 8, None).value & 1 << 4 != 0)
        .collect();
    assert_eq!(last, [false, false, false, true]);
}

#[test]
fn gicr_typer_two_halves_equal_the_64bit_read() {
    let mut g = vgic();
    g.cpu_mut(1).unwrap().affinity = 3 << 32 | 2 << 16 | 1 << 8 | 4;
    let full = g.gicr_access(0, frame(1) + R_TYPER, 8, None).value;
    let lo = rdr(&mut g, 1, R_TYPER);
    let hi = rdr(&mut g, 1, R_TYPER + 4);
    assert_eq!(full, hi << 32 | lo);
    assert_eq!(hi, 0x0302_0104, "Affinity_Value is Aff3.Aff2.Aff1.Aff0");
    assert_eq!((lo >> 8) & 0xffff, 1, "Processor_Number");
    assert_eq!(lo & 0b1011, 0, "PLPIS, VLPIS, DirectLPI");
}

#[test]
fn gicr_typer_is_read_only_and_not_byte_accessible() {
    let mut g = vgic();
    assert!(g.gicr_access(0, frame(1) + R_TYPER, 8, Some(0)).ok);
    assert_ne!(g.gicr_access(0, frame(1) + R_TYPER, 8, None).value, 0);
    assert_eq!(
        g.gicr_access(0, frame(1) + R_TYPER, 1, None).group,
        "bad-width"
    );
}

#[test]
fn gicr_waker_resets_asleep() {
    let mut g = vgic();
    assert_eq!(
        rdr(&mut g, 0, R_WAKER),
        0b110,
        "ProcessorSleep and ChildrenAsleep"
    );
}

#[test]
fn gicr_waker_wake_handshake_completes_at_once() {
    let mut g = vgic();
    wrr(&mut g, 1, R_WAKER, 0);
    assert_eq!(
        rdr(&mut g, 1, R_WAKER),
        0,
        "ChildrenAsleep reads 0 on the first poll"
    );
    assert!(!g.cpu(1).unwrap().processor_sleep);
    assert!(g.cpu(0).unwrap().processor_sleep, "frame 0 untouched");
}

#[test]
fn gicr_waker_sleep_request_sets_children_asleep() {
    let mut g = vgic();
    wrr(&mut g, 0, R_WAKER, 0);
    wrr(&mut g, 0, R_WAKER, 1 << 1);
    assert_eq!(rdr(&mut g, 0, R_WAKER), 0b110);
}

#[test]
fn gicr_waker_children_asleep_is_read_only() {
    let mut g = vgic();
    wrr(&mut g, 0, R_WAKER, 1 << 2);
    assert_eq!(
        rdr(&mut g, 0, R_WAKER),
        0,
        "writing ChildrenAsleep alone wakes"
    );
}

#[test]
fn gicr_ctlr_is_raz_wi_without_lpis() {
    let mut g = vgic();
    wrr(&mut g, 0, R_CTLR, 1);
    assert_eq!(rdr(&mut g, 0, R_CTLR), 0, "EnableLPIs RES0, RWP 0");
    assert!(!g.cpu(0).unwrap().lpis_enabled);
}

#[test]
fn gicr_iidr_matches_gicd_iidr() {
    let mut g = vgic();
    assert_eq!(rdr(&mut g, 1, R_IIDR), 0x4500_043b);
}

#[test]
fn gicr_statusr_and_direct_lpi_registers_are_raz_wi() {
    let mut g = vgic();
    for off in [R_STATUSR, R_SYNCR] {
        wrr(&mut g, 0, off, u64::MAX);
        assert_eq!(rdr(&mut g, 0, off), 0, "{off:#x}");
    }
    for off in [R_SETLPIR, R_CLRLPIR, R_INVLPIR, R_INVALLR] {
        assert!(g.gicr_access(0, off, 8, Some(8192)).ok, "{off:#x}");
        assert_eq!(g.gicr_access(0, off, 8, None).value, 0, "{off:#x}");
        assert!(
            g.gicr_access(0, off + 4, 4, None).ok,
            "{off:#x}: 32-bit halves"
        );
    }
}

#[test]
fn gicr_propbaser_is_stored_with_res0_bits_masked() {
    let mut g = vgic();
    assert!(
        g.gicr_access(0, frame(1) + R_PROPBASER, 8, Some(u64::MAX))
            .ok
    );
    assert_eq!(
        g.gicr_access(0, frame(1) + R_PROPBASER, 8, None).value,
        0x070f_ffff_ffff_ff9f
    );
    assert_eq!(g.cpu(1).unwrap().propbaser, 0x070f_ffff_ffff_ff9f);
    assert_eq!(g.cpu(0).unwrap().propbaser, 0, "frame 0 untouched");
}

#[test]
fn gicr_propbaser_halves_write_independently() {
    let mut g = vgic();
    wrr(&mut g, 0, R_PROPBASER, 0xdead_b01f);
    wrr(&mut g, 0, R_PROPBASER + 4, 0xab);
    assert_eq!(
        g.gicr_access(0, R_PROPBASER, 8, None).value,
        0x0000_00ab_dead_b01f
    );
    assert_eq!(rdr(&mut g, 0, R_PROPBASER), 0xdead_b01f);
}

#[test]
fn gicr_pendbaser_masks_res0_bits_and_ptz_reads_zero() {
    let mut g = vgic();
    assert!(g.gicr_access(0, R_PENDBASER, 8, Some(u64::MAX)).ok);
    assert_eq!(
        g.gicr_access(0, R_PENDBASER, 8, None).value,
        0x070f_ffff_ffff_0f80
    );
    assert_eq!(
        g.cpu(0).unwrap().pendbaser & 1 << 62,
        1 << 62,
        "PTZ is kept for the ITS"
    );
    assert_eq!(rdr(&mut g, 0, R_PENDBASER + 4), 0x070f_ffff);
}

#[test]
fn gicr_baser_writes_are_ignored_while_lpis_are_enabled() {
    let mut g = vgic();
    g.cpu_mut(0).unwrap().lpis_enabled = true;
    assert!(g.gicr_access(0, R_PROPBASER, 8, Some(0x1000)).ok);
    assert!(g.gicr_access(0, R_PENDBASER, 8, Some(0x1_0000)).ok);
    assert_eq!(
        (g.cpu(0).unwrap().propbaser, g.cpu(0).unwrap().pendbaser),
        (0, 0)
    );
}

#[test]
fn gicr_pidr2_reports_arch_rev_3_and_pidr0_a_redistributor() {
    let mut g = vgic();
    assert_eq!((rdr(&mut g, 1, R_PIDR2) >> 4) & 0xf, 3);
    assert_eq!(rdr(&mut g, 1, R_PIDR0), 0x93);
}

#[test]
fn gicr_offset_beyond_the_last_frame_is_raz_wi() {
    let mut g = vgic();
    for off in [
        frame(2),
        frame(2) + R_TYPER,
        frame(1000) + R_ISENABLER0,
        u64::MAX - 7,
    ] {
        let o = g.gicr_access(0, off, 4, Some(u64::MAX));
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
fn gicr_unmapped_offset_in_a_frame_is_raz_wi() {
    let mut g = vgic();
    for off in [
        0x20,
        0x100,
        SGI_BASE,
        SGI_BASE + 0x104,
        SGI_BASE + 0x420,
        0x1_ffff,
    ] {
        assert_eq!(
            g.gicr_access(0, frame(1) + off, 4, None).group,
            "unmapped",
            "{off:#x}"
        );
    }
}

// --- Redistributor SGI_base: the frame's vCPU's banked interrupts ---

#[test]
fn gicr_banked_registers_affect_only_that_frames_vcpu() {
    let mut g = vgic();
    wrr(&mut g, 1, R_ISENABLER0, 1 << 27);
    assert!(irq(&g, 1, 27).enabled);
    assert!(
        !irq(&g, 0, 27).enabled,
        "vCPU 0 accessed frame 1: its own PPI is untouched"
    );
    let from_1 = g.gicr_access(1, frame(1) + R_ISENABLER0, 4, None).value;
    assert_eq!(from_1, 1 << 27, "any accessor sees the frame's vCPU");
    assert_eq!(g.gicr_access(1, frame(0) + R_ISENABLER0, 4, None).value, 0);
    wrr(&mut g, 1, R_ICENABLER0, 1 << 27);
    assert!(!irq(&g, 1, 27).enabled);
}

#[test]
fn gicr_one_bit_registers_are_word_only() {
    let mut g = vgic();
    let o = g.gicr_access(0, frame(0) + R_ISENABLER0, 1, Some(0xff));
    assert_eq!(
        o,
        MmioOutcome {
            value: 0,
            group: "bad-width",
            ok: false
        }
    );
    assert!((0..8).all(|i| !irq(&g, 0, i).enabled));
}

#[test]
fn gicr_igroupr0_is_read_write_per_frame() {
    let mut g = vgic();
    wrr(&mut g, 0, R_IGROUPR0, 0xffff_ffff);
    assert_eq!(rdr(&mut g, 0, R_IGROUPR0), 0xffff_ffff);
    assert_eq!(rdr(&mut g, 1, R_IGROUPR0), 0);
    assert!(irq(&g, 0, 0).group1 && !irq(&g, 1, 0).group1);
}

#[test]
fn gicr_ispendr0_and_icpendr0_set_and_clear_an_sgi() {
    let mut g = vgic();
    wrr(&mut g, 1, R_ISPENDR0, 1 << 3);
    assert!(irq(&g, 1, 3).is_pending() && !irq(&g, 0, 3).is_pending());
    assert_eq!(rdr(&mut g, 1, R_ICPENDR0), 1 << 3);
    wrr(&mut g, 1, R_ICPENDR0, 1 << 3);
    assert!(!irq(&g, 1, 3).is_pending());
}

#[test]
fn gicr_isactiver0_and_icactiver0() {
    let mut g = vgic();
    wrr(&mut g, 0, R_ISACTIVER0, 1 << 30);
    assert!(irq(&g, 0, 30).active);
    assert_eq!(rdr(&mut g, 0, R_ICACTIVER0), 1 << 30);
    wrr(&mut g, 0, R_ICACTIVER0, 1 << 30);
    assert!(!irq(&g, 0, 30).active);
}

#[test]
fn gicr_ipriorityr_byte_write_changes_one_interrupt_only() {
    let mut g = vgic();
    assert!(
        g.gicr_access(0, frame(1) + R_IPRIORITYR + 27, 1, Some(0xff))
            .ok
    );
    assert_eq!(irq(&g, 1, 27).priority, 0xf8);
    assert_eq!(rdr(&mut g, 1, R_IPRIORITYR + 24), 0xf800_0000);
    assert_eq!(irq(&g, 0, 27).priority, 0);
    assert!(
        (0..8).all(|n| rdr(&mut g, 0, R_IPRIORITYR + 4 * n) == 0),
        "reset 0"
    );
}

#[test]
fn gicr_icfgr0_sgis_are_read_only_edge() {
    let mut g = vgic();
    assert_eq!(rdr(&mut g, 0, R_ICFGR0), 0xaaaa_aaaa);
    wrr(&mut g, 0, R_ICFGR0, 0);
    assert_eq!(rdr(&mut g, 0, R_ICFGR0), 0xaaaa_aaaa);
    assert_eq!(irq(&g, 0, 5).trigger, Trigger::Edge);
}

#[test]
fn gicr_icfgr1_ppis_are_configurable() {
    let mut g = vgic();
    assert_eq!(rdr(&mut g, 1, R_ICFGR1), 0, "PPIs reset level-sensitive");
    wrr(&mut g, 1, R_ICFGR1, 0b10 << 22);
    assert_eq!(irq(&g, 1, 27).trigger, Trigger::Edge);
    assert_eq!(rdr(&mut g, 1, R_ICFGR1), 0b10 << 22);
    assert_eq!(irq(&g, 0, 27).trigger, Trigger::Level);
}

#[test]
fn gicr_igrpmodr0_and_nsacr_are_raz_wi() {
    let mut g = vgic();
    for off in [R_IGRPMODR0, R_NSACR] {
        wrr(&mut g, 0, off, u64::MAX);
        assert_eq!(rdr(&mut g, 0, off), 0);
    }
}

// --- End to end: MMIO writes, then a flush into list registers ---

fn lr_ids(g: &mut Vgic, vcpu: VcpuId) -> Vec<u32> {
    let mut sh = CpuIfShadow::default();
    g.flush(vcpu, &mut sh);
    let ids = sh.lrs[..sh.used]
        .iter()
        .map(|&v| LrFormat::V3.vintid(v))
        .collect();
    g.fold(vcpu, &sh);
    ids
}

#[test]
fn gicd_writes_that_enable_and_pend_an_spi_put_it_in_an_lr() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0b10);
    wr(&mut g, reg(IGROUPR, 1), 1 << 8);
    assert!(g.gicd_access(0, IPRIORITYR + 40, 1, Some(0xa0)).ok);
    assert!(g.gicd_access(0, irouter(40), 8, Some(0)).ok);
    wr(&mut g, reg(ISENABLER, 1), 1 << 8);
    assert_eq!(lr_ids(&mut g, 0), [], "enabled but not pending");
    wr(&mut g, reg(ISPENDR, 1), 1 << 8);
    let mut sh = CpuIfShadow::default();
    g.flush(0, &mut sh);
    assert_eq!(sh.used, 1);
    let e = g.resident(0).next().copied().unwrap();
    assert_eq!((e.vintid, e.priority, e.group1), (40, 0xa0, true));
    assert!(e.state.pending);
}

#[test]
fn an_spi_routed_by_irouter_reaches_only_that_vcpu() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0b01);
    assert!(g.gicd_access(1, irouter(60), 8, Some(1)).ok);
    wr(&mut g, reg(ISENABLER, 0) + 4, 1 << 28);
    wr(&mut g, reg(ISPENDR, 0) + 4, 1 << 28);
    assert_eq!(lr_ids(&mut g, 0), []);
    assert_eq!(lr_ids(&mut g, 1), [60]);
}

#[test]
fn gicr_writes_that_enable_and_pend_a_ppi_reach_that_frames_vcpu() {
    let mut g = vgic();
    wr(&mut g, CTLR, 0b10);
    wrr(&mut g, 1, R_IGROUPR0, 1 << 27);
    wrr(&mut g, 1, R_ISENABLER0, 1 << 27);
    wrr(&mut g, 1, R_ISPENDR0, 1 << 27);
    assert_eq!(lr_ids(&mut g, 0), []);
    assert_eq!(lr_ids(&mut g, 1), [27]);
}

#[test]
fn a_disabled_group_keeps_the_spi_out_of_the_lrs() {
    let mut g = vgic();
    wr(&mut g, reg(IGROUPR, 1), 1 << 8);
    wr(&mut g, reg(ISENABLER, 1), 1 << 8);
    wr(&mut g, reg(ISPENDR, 1), 1 << 8);
    wr(&mut g, CTLR, 0b01);
    assert_eq!(lr_ids(&mut g, 0), [], "group 1 disabled");
    wr(&mut g, CTLR, 0b11);
    assert_eq!(lr_ids(&mut g, 0), [40]);
}

// --- Robustness ---

/// Every offset of the distributor and of three redistributor frames (one beyond the last),
/// every width, reads and writes of all-ones and a pattern, from existing and bogus vCPUs.
#[test]
fn no_offset_width_or_value_panics() {
    let mut g = vgic();
    for off in (0..0x1_0000u64).chain([0xffff_fffc, u64::MAX]) {
        for width in [1u8, 2, 3, 4, 8, 16] {
            for write in [None, Some(u64::MAX), Some(0x5a5a_5a5a_5a5a_5a5a)] {
                let o = g.gicd_access(0, off, width, write);
                assert!(o.ok || o.value == 0);
                g.gicd_access(usize::MAX, off, width, write);
            }
        }
    }
    for off in (0..3 * GICR_FRAME_SIZE).step_by(2).chain([u64::MAX]) {
        for width in [1u8, 4, 8] {
            for write in [None, Some(u64::MAX)] {
                let o = g.gicr_access(7, off, width, write);
                assert!(o.ok || o.value == 0);
            }
        }
    }
}
