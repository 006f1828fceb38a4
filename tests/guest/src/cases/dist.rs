//! Distributor and redistributor register semantics: identification, reset values, read-only
//! and RAZ/WI fields, access widths, and the per-interrupt register groups.

use super::{SPI, virt};
use crate::gic::{self, Version};
use crate::hw::{self, read32, read64, write32, write64};
use crate::rt::{self, gic, platform};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

pub const CASES: &[Case] = &[
    Case {
        group: "gicd",
        name: "CTLR: ARE and DS read as one and ignore writes, EnableGrp1 is writable",
        only: Only::V3,
        f: ctlr_v3,
    },
    Case {
        group: "gicd",
        name: "CTLR: the enable bit is writable and reads back",
        only: Only::V2,
        f: ctlr_v2,
    },
    Case {
        group: "gicd",
        name: "TYPER: ITLinesNumber covers the cases' SPIs and registers past it are RAZ/WI",
        only: Only::Both,
        f: typer_lines,
    },
    Case {
        group: "gicd",
        name: "TYPER: IDbits and CPUNumber are consistent",
        only: Only::Both,
        f: typer_fields,
    },
    Case {
        group: "gicd",
        name: "TYPER, IIDR and PIDR2 are read-only",
        only: Only::Both,
        f: id_ro,
    },
    Case {
        group: "gicd",
        name: "PIDR2.ArchRev names the GIC architecture",
        only: Only::Both,
        f: pidr2,
    },
    Case {
        group: "gicd",
        name: "reset: test SPIs disabled, not pending, not active",
        only: Only::Both,
        f: spi_reset,
    },
    Case {
        group: "gicd",
        name: "IGROUPR: SPI group bits are writable (DS = 1)",
        only: Only::V3,
        f: igroupr,
    },
    Case {
        group: "gicd",
        name: "ISENABLER/ICENABLER: write 1 sets/clears, write 0 does nothing",
        only: Only::Both,
        f: enable_bits,
    },
    Case {
        group: "gicd",
        name: "ISPENDR/ICPENDR: set/clear pending of an SPI",
        only: Only::Both,
        f: pend_bits,
    },
    Case {
        group: "gicd",
        name: "ISACTIVER/ICACTIVER: set/clear active of an SPI",
        only: Only::Both,
        f: active_bits,
    },
    Case {
        group: "gicd",
        name: "IPRIORITYR: implemented priority bits are the top bits, at least 4",
        only: Only::Both,
        f: prio_bits,
    },
    Case {
        group: "gicd",
        name: "IPRIORITYR: a byte write changes only its byte",
        only: Only::Both,
        f: prio_byte_write,
    },
    Case {
        group: "gicd",
        name: "IPRIORITYR: byte reads return each interrupt's priority",
        only: Only::Both,
        f: prio_byte_read,
    },
    Case {
        group: "gicd",
        name: "ICFGR: SPI edge/level bit is writable, bit 0 of each field reads 0",
        only: Only::Both,
        f: icfgr_spi,
    },
    Case {
        group: "gicd",
        name: "ICFGR for SGIs reads edge (0xaaaaaaaa) and ignores writes",
        only: Only::Both,
        f: icfgr_sgi,
    },
    Case {
        group: "gicd",
        name: "ICFGR for PPIs: bit 0 of each field reads 0, a write-back keeps the value",
        only: Only::Both,
        f: icfgr_ppi,
    },
    Case {
        group: "gicd",
        name: "a byte write to word-only ISENABLER changes no other interrupt",
        only: Only::Both,
        f: byte_to_word_reg,
    },
    Case {
        group: "gicd",
        name: "IROUTER: 64-bit write/read keeps Aff3..Aff0",
        only: Only::V3,
        f: irouter64,
    },
    Case {
        group: "gicd",
        name: "IROUTER: two 32-bit halves write and read the same register",
        only: Only::V3,
        f: irouter32,
    },
    Case {
        group: "gicd",
        name: "IROUTER of INTIDs 0-31 (reserved) is RAZ/WI",
        only: Only::V3,
        f: irouter_reserved,
    },
    Case {
        group: "gicd",
        name: "ARE = 1: banked SGI/PPI registers and ITARGETSR in the distributor are RAZ/WI",
        only: Only::V3,
        f: are_raz,
    },
    Case {
        group: "gicd",
        name: "ARE = 1: SGIR, SPENDSGIR and CPENDSGIR are RAZ/WI",
        only: Only::V3,
        f: are_sgir,
    },
    Case {
        group: "gicd",
        name: "DS = 1: NSACR and IGRPMODR are RAZ/WI",
        only: Only::V3,
        f: ds_raz,
    },
    Case {
        group: "gicr",
        name: "TYPER: one frame per CPU, affinity = MPIDR, Last only on the last frame",
        only: Only::V3,
        f: gicr_typer,
    },
    Case {
        group: "gicr",
        name: "WAKER: ChildrenAsleep reads 0 once ProcessorSleep is 0",
        only: Only::V3,
        f: gicr_waker,
    },
    Case {
        group: "gicr",
        name: "PIDR2.ArchRev and IIDR read-only",
        only: Only::V3,
        f: gicr_id,
    },
    Case {
        group: "gicr",
        name: "ISENABLER0/ICENABLER0 for SGIs and PPIs",
        only: Only::V3,
        f: gicr_enable,
    },
    Case {
        group: "gicr",
        name: "IPRIORITYR byte access for SGIs and PPIs",
        only: Only::V3,
        f: gicr_prio,
    },
    Case {
        group: "gicr",
        name: "another CPU's frame acts on that CPU only",
        only: Only::V3,
        f: gicr_other,
    },
    Case {
        group: "gicd",
        name: "ITARGETSR0-7: read-only, each CPU reads its own interface bit",
        only: Only::V2,
        f: itargetsr_banked,
    },
    Case {
        group: "gicd",
        name: "ITARGETSR: SPI target bytes are writable, word reads show them",
        only: Only::V2,
        f: itargetsr_spi,
    },
    Case {
        group: "gicd",
        name: "SPENDSGIR/CPENDSGIR: set and clear an SGI's pending source",
        only: Only::V2,
        f: spendsgir,
    },
    Case {
        group: "gicc",
        name: "IIDR is read-only; PMR implements the top bits",
        only: Only::V2,
        f: gicc_regs,
    },
];

/// Distributor word at `off`.
fn d(off: usize) -> usize {
    gic().d(off)
}

fn ctlr_v3() -> Outcome {
    let c = read32(d(gic::GICD_CTLR));
    ensure!(c & (1 << 4) != 0, "ARE is 0: {c:#x}");
    ensure!(c & (1 << 6) != 0, "DS is 0: {c:#x}");
    ensure!(c & 0b10 != 0, "EnableGrp1 was set by the guest: {c:#x}");
    write32(d(gic::GICD_CTLR), 0);
    hw::wait_until(hw::us(10_000), || {
        read32(d(gic::GICD_CTLR)) & (1 << 31) == 0
    });
    let z = read32(d(gic::GICD_CTLR));
    gic().dist_init();
    ensure!(
        z & (1 << 4) != 0 && z & (1 << 6) != 0,
        "ARE/DS cleared by a write: {z:#x}"
    );
    ensure!(z & 0b10 == 0, "EnableGrp1 not cleared: {z:#x}");
    ensure!(
        read32(d(gic::GICD_CTLR)) & 0b10 != 0,
        "EnableGrp1 not set again"
    );
    Outcome::Pass
}

fn ctlr_v2() -> Outcome {
    let c = read32(d(gic::GICD_CTLR));
    ensure!(c & 1 != 0, "enable bit is 0 after the guest set it: {c:#x}");
    write32(d(gic::GICD_CTLR), 0);
    let z = read32(d(gic::GICD_CTLR));
    gic().dist_init();
    ensure!(z & 1 == 0, "enable bit not cleared: {z:#x}");
    ensure!(
        read32(d(gic::GICD_CTLR)) & 1 != 0,
        "enable bit not set again"
    );
    Outcome::Pass
}

fn typer_lines() -> Outcome {
    let g = gic();
    diag!(
        "TYPER {:#x}: {} INTIDs",
        read32(d(gic::GICD_TYPER)),
        g.lines
    );
    ensure!(
        g.lines >= super::SPI + super::SPI_COUNT,
        "only {} INTIDs",
        g.lines
    );
    // The last register word (INTIDs 992-1019) is past any ITLinesNumber below 31. (QEMU's
    // GICv3 reports 256 INTIDs but implements 288, so the first word past the reported number
    // is not a portable check.)
    if g.lines <= 992 {
        let w = 31 * 4;
        write32(d(gic::GICD_ISENABLER + w), !0);
        let v = read32(d(gic::GICD_ISENABLER + w));
        write32(d(gic::GICD_ICENABLER + w), !0);
        ensure!(v == 0, "ISENABLER past ITLinesNumber reads {v:#x}");
        let p = read32(d(gic::GICD_IPRIORITYR + 1016));
        ensure!(p == 0, "IPRIORITYR past ITLinesNumber reads {p:#x}");
    }
    Outcome::Pass
}

fn typer_fields() -> Outcome {
    let t = read32(d(gic::GICD_TYPER));
    let g = gic();
    match g.version {
        Version::V3 => {
            let idbits = (t >> 19) & 0x1f;
            ensure!(
                idbits >= 9,
                "IDbits {idbits} < 9 (INTIDs up to 1019 need 10 bits)"
            );
            ensure!(t & (1 << 10) == 0, "SecurityExtn set with DS = 1: {t:#x}");
        }
        Version::V2 => {
            let cpus = ((t >> 5) & 7) + 1;
            ensure!(
                cpus as usize >= g.cpu_count,
                "CPUNumber + 1 = {cpus} < {} CPUs",
                g.cpu_count
            );
        }
    }
    Outcome::Pass
}

fn ro(off: usize) -> Result<(), (u32, u32)> {
    let a = read32(d(off));
    write32(d(off), !a);
    let b = read32(d(off));
    if a == b { Ok(()) } else { Err((a, b)) }
}

fn id_ro() -> Outcome {
    let pidr2 = match gic().version {
        Version::V3 => gic::GICD_PIDR2,
        Version::V2 => gic::GICD_V2_PIDR2,
    };
    for (name, off) in [
        ("TYPER", gic::GICD_TYPER),
        ("IIDR", gic::GICD_IIDR),
        ("PIDR2", pidr2),
    ] {
        if let Err((a, b)) = ro(off) {
            ensure!(false, "{name} changed from {a:#x} to {b:#x} on a write");
        }
    }
    Outcome::Pass
}

fn pidr2() -> Outcome {
    match gic().version {
        Version::V3 => {
            let v = read32(d(gic::GICD_PIDR2));
            let rev = (v >> 4) & 0xf;
            ensure!(
                rev == 3 || rev == 4,
                "GICD_PIDR2 {v:#x}: ArchRev {rev}, want 3 or 4"
            );
        }
        Version::V2 => {
            // GICv2 PIDR2 is IMPLEMENTATION DEFINED except that ArchRev in [7:4] is 1 or 2
            // when the ARM layout is used; the CPU interface's IIDR carries the version.
            let v = read32(gic().gicc + gic::GICC_IIDR);
            let arch = (v >> 16) & 0xf;
            ensure!(
                arch == 2,
                "GICC_IIDR {v:#x}: architecture version {arch}, want 2"
            );
        }
    }
    Outcome::Pass
}

fn spi_reset() -> Outcome {
    let g = gic();
    for i in SPI..SPI + super::SPI_COUNT {
        ensure!(!g.is_enabled(0, i), "SPI {i} enabled");
        ensure!(!g.is_pending(0, i), "SPI {i} pending");
        ensure!(!g.is_active(0, i), "SPI {i} active");
    }
    Outcome::Pass
}

fn igroupr() -> Outcome {
    let a = d(gic::GICD_IGROUPR + (SPI as usize / 32) * 4);
    write32(a, 0);
    let z = read32(a);
    write32(a, !0);
    let o = read32(a);
    ensure!(
        z == 0 && o == !0,
        "IGROUPR wrote 0 read {z:#x}, wrote ~0 read {o:#x}"
    );
    Outcome::Pass
}

fn enable_bits() -> Outcome {
    let g = gic();
    let w = (SPI as usize / 32) * 4;
    let bit = 1 << (SPI % 32 + 3);
    write32(d(gic::GICD_ISENABLER + w), bit);
    let s = read32(d(gic::GICD_ISENABLER + w));
    let c = read32(d(gic::GICD_ICENABLER + w));
    ensure!(
        s == bit && c == bit,
        "after set: ISENABLER {s:#x} ICENABLER {c:#x}, want {bit:#x}"
    );
    write32(d(gic::GICD_ISENABLER + w), 0);
    write32(d(gic::GICD_ICENABLER + w), 0);
    ensure!(
        g.is_enabled(0, SPI + 3),
        "a write of 0 changed the enable bit"
    );
    write32(d(gic::GICD_ICENABLER + w), bit);
    hw::dsb();
    ensure!(
        read32(d(gic::GICD_ISENABLER + w)) == 0,
        "ICENABLER did not clear"
    );
    Outcome::Pass
}

fn pend_bits() -> Outcome {
    let g = gic();
    let i = SPI + 5;
    g.pend(0, i);
    ensure!(g.is_pending(0, i), "ISPENDR does not read pending");
    ensure!(
        g.get_bit(0, gic::GICD_ICPENDR, i),
        "ICPENDR does not read pending"
    );
    g.unpend(0, i);
    ensure!(!g.is_pending(0, i), "ICPENDR did not clear");
    Outcome::Pass
}

fn active_bits() -> Outcome {
    let g = gic();
    let i = SPI + 6;
    g.activate(0, i);
    ensure!(g.is_active(0, i), "ISACTIVER does not read active");
    ensure!(
        g.get_bit(0, gic::GICD_ICACTIVER, i),
        "ICACTIVER does not read active"
    );
    g.deactivate(0, i);
    ensure!(!g.is_active(0, i), "ICACTIVER did not clear");
    Outcome::Pass
}

fn prio_bits() -> Outcome {
    let g = gic();
    g.set_priority(0, SPI, 0xff);
    let v = g.priority(0, SPI);
    g.set_priority(0, SPI, 0);
    let z = g.priority(0, SPI);
    diag!("IPRIORITYR implements {:#04x} ({} bits)", v, v.count_ones());
    ensure!(z == 0, "wrote 0, read {z:#x}");
    ensure!(
        (!v).wrapping_add(1).is_power_of_two() && v.count_ones() >= 4,
        "pattern {v:#x}"
    );
    Outcome::Pass
}

fn prio_byte_write() -> Outcome {
    let a = d(gic::GICD_IPRIORITYR + SPI as usize);
    write32(a, 0x1020_3040);
    hw::write8(a + 1, 0x80);
    let v = read32(a);
    ensure!(v == 0x1020_8040, "read {v:#x}, want 0x10208040");
    Outcome::Pass
}

fn prio_byte_read() -> Outcome {
    let a = d(gic::GICD_IPRIORITYR + SPI as usize + 4);
    write32(a, 0x90a0_b0c0);
    let b = [
        hw::read8(a),
        hw::read8(a + 1),
        hw::read8(a + 2),
        hw::read8(a + 3),
    ];
    ensure!(b == [0xc0, 0xb0, 0xa0, 0x90], "bytes {b:x?}");
    Outcome::Pass
}

fn icfgr_spi() -> Outcome {
    let a = d(gic::GICD_ICFGR + (SPI as usize / 16) * 4);
    write32(a, !0);
    let o = read32(a);
    write32(a, 0);
    let z = read32(a);
    write32(a, 0xaaaa_aaaa);
    ensure!(
        o & 0xaaaa_aaaa == 0xaaaa_aaaa,
        "edge bits not all set: {o:#x}"
    );
    ensure!(o & 0x5555_5555 == 0, "bit 0 of a field reads 1: {o:#x}");
    ensure!(z == 0, "wrote 0, read {z:#x}");
    Outcome::Pass
}

fn icfgr_sgi() -> Outcome {
    let g = gic();
    let a = g.irq_base(0, 0) + gic::GICD_ICFGR;
    let v = read32(a);
    write32(a, 0);
    let z = read32(a);
    ensure!(v == 0xaaaa_aaaa, "ICFGR0 reads {v:#x}");
    ensure!(z == 0xaaaa_aaaa, "ICFGR0 changed by a write: {z:#x}");
    Outcome::Pass
}

fn icfgr_ppi() -> Outcome {
    let g = gic();
    let a = g.irq_base(0, 16) + gic::GICD_ICFGR + 4;
    let v = read32(a);
    write32(a, v);
    let w = read32(a);
    diag!("ICFGR1 (PPIs) reads {v:#x}");
    ensure!(v & 0x5555_5555 == 0, "bit 0 set: {v:#x}");
    ensure!(v == w, "write-back changed it: {v:#x} -> {w:#x}");
    Outcome::Pass
}

fn byte_to_word_reg() -> Outcome {
    let g = gic();
    let w = (SPI as usize / 32) * 4;
    let (_, esr) = rt::probe(|| hw::write8(d(gic::GICD_ISENABLER + w + 1), 0xff));
    let v = read32(d(gic::GICD_ISENABLER + w));
    write32(d(gic::GICD_ICENABLER + w), !0);
    diag!("after a byte write of 0xff to byte 1: {v:#x}, abort: {esr:x?}");
    ensure!(
        v & !0xff00 == 0,
        "bits outside the written byte changed: {v:#x}"
    );
    ensure!(
        v == 0 || v == 0xff00 || esr.is_some(),
        "neither ignored nor byte-exact: {v:#x}"
    );
    let _ = g;
    Outcome::Pass
}

fn irouter64() -> Outcome {
    let a = d(gic::GICD_IROUTER + 8 * (SPI as usize + 1));
    write64(a, 0x0000_0012_0034_0056);
    let v = read64(a);
    write64(a, !0);
    let o = read64(a);
    gic().route(SPI + 1, 0);
    ensure!(v == 0x12_0034_0056, "wrote 0x1200340056, read {v:#x}");
    ensure!(
        o & 0xff_00ff_ffff == 0xff_00ff_ffff,
        "affinity bits lost: {o:#x}"
    );
    Outcome::Pass
}

fn irouter32() -> Outcome {
    let a = d(gic::GICD_IROUTER + 8 * (SPI as usize + 2));
    write32(a, 0x0003_0201);
    write32(a + 4, 0x4);
    let v = read64(a);
    let lo = read32(a);
    let hi = read32(a + 4);
    gic().route(SPI + 2, 0);
    ensure!(v == 0x4_0003_0201, "64-bit read {v:#x}");
    ensure!(lo == 0x0003_0201 && hi == 4, "halves {lo:#x} {hi:#x}");
    Outcome::Pass
}

fn irouter_reserved() -> Outcome {
    for i in [0usize, 16, 27, 31] {
        let a = d(gic::GICD_IROUTER + 8 * i);
        write64(a, 0x3);
        let v = read64(a);
        ensure!(v == 0, "IROUTER{i} reads {v:#x}");
    }
    Outcome::Pass
}

fn are_raz() -> Outcome {
    let g = gic();
    write32(d(gic::GICD_ISENABLER), 1 << 5);
    let v = read32(d(gic::GICD_ISENABLER));
    ensure!(v == 0, "GICD_ISENABLER0 reads {v:#x}");
    ensure!(
        !g.is_enabled(0, 5),
        "GICD_ISENABLER0 enabled SGI 5 in the redistributor"
    );
    write32(d(gic::GICD_IPRIORITYR), 0x1010_1010);
    let p = read32(d(gic::GICD_IPRIORITYR));
    ensure!(p == 0, "GICD_IPRIORITYR0 reads {p:#x}");
    ensure!(
        g.priority(0, 0) == super::PRIO,
        "GICD_IPRIORITYR0 reached the redistributor"
    );
    let t = d(gic::GICD_ITARGETSR + SPI as usize);
    write32(t, 0x0101_0101);
    let tv = read32(t);
    ensure!(tv == 0, "ITARGETSR reads {tv:#x}");
    Outcome::Pass
}

fn are_sgir() -> Outcome {
    let g = gic();
    g.enable(0, 3);
    write32(d(gic::GICD_SGIR), (2 << 24) | 3);
    hw::dsb();
    hw::delay(super::neg());
    ensure!(!g.is_pending(0, 3), "GICD_SGIR raised an SGI");
    write32(d(gic::GICD_SPENDSGIR), 0x0101_0101);
    let s = read32(d(gic::GICD_SPENDSGIR));
    ensure!(s == 0, "SPENDSGIR reads {s:#x}");
    let c = read32(d(gic::GICD_CPENDSGIR));
    ensure!(c == 0, "CPENDSGIR reads {c:#x}");
    ensure!(!g.is_pending(0, 0), "SPENDSGIR raised an SGI");
    Outcome::Pass
}

fn ds_raz() -> Outcome {
    for (name, off) in [
        ("NSACR", gic::GICD_NSACR + 8),
        ("IGRPMODR", gic::GICD_IGRPMODR + 4 * 3),
    ] {
        write32(d(off), !0);
        let v = read32(d(off));
        ensure!(v == 0, "{name} reads {v:#x}");
    }
    Outcome::Pass
}

fn gicr_typer() -> Outcome {
    let g = gic();
    let mut last_count = 0;
    for c in 0..g.cpu_count {
        let t = read64(g.gicr[c] + gic::GICR_TYPER);
        let m = g.mpidr[c];
        let aff = (m & 0xff_ffff) | ((m >> 32 & 0xff) << 24);
        ensure!(
            t >> 32 == aff,
            "CPU {c}: affinity {:#x}, MPIDR {m:#x}",
            t >> 32
        );
        if t & (1 << 4) != 0 {
            last_count += 1;
            ensure!(c == g.cpu_count - 1, "Last set on CPU {c}'s frame");
        }
    }
    ensure!(last_count == 1, "Last set on {last_count} frames");
    ensure!(
        g.frames == g.cpu_count,
        "{} frames for {} CPUs",
        g.frames,
        g.cpu_count
    );
    Outcome::Pass
}

fn gicr_waker() -> Outcome {
    let g = gic();
    for c in 0..g.cpu_count {
        let w = read32(g.gicr[c] + gic::GICR_WAKER);
        ensure!(w & 0b110 == 0, "CPU {c}: WAKER {w:#x}");
    }
    Outcome::Pass
}

fn gicr_id() -> Outcome {
    let g = gic();
    let rd = g.gicr[0];
    let v = read32(rd + gic::GICR_PIDR2);
    let rev = (v >> 4) & 0xf;
    ensure!(rev == 3 || rev == 4, "GICR_PIDR2 {v:#x}");
    let a = read32(rd + gic::GICR_IIDR);
    write32(rd + gic::GICR_IIDR, !a);
    ensure!(
        read32(rd + gic::GICR_IIDR) == a,
        "GICR_IIDR changed on a write"
    );
    let t = read64(rd + gic::GICR_TYPER);
    write64(rd + gic::GICR_TYPER, !t);
    ensure!(
        read64(rd + gic::GICR_TYPER) == t,
        "GICR_TYPER changed on a write"
    );
    Outcome::Pass
}

fn gicr_enable() -> Outcome {
    let g = gic();
    let sgi = g.gicr[0] + gic::SGI_BASE;
    let bits = (1 << 2) | (1 << 20);
    write32(sgi + gic::GICD_ISENABLER, bits);
    let s = read32(sgi + gic::GICD_ISENABLER);
    write32(sgi + gic::GICD_ICENABLER, bits);
    let c = read32(sgi + gic::GICD_ISENABLER);
    ensure!(s & bits == bits, "after set: {s:#x}");
    ensure!(c & bits == 0, "after clear: {c:#x}");
    Outcome::Pass
}

fn gicr_prio() -> Outcome {
    let g = gic();
    let a = g.gicr[0] + gic::SGI_BASE + gic::GICD_IPRIORITYR;
    write32(a + 4, 0x1020_3040);
    hw::write8(a + 6, 0x80);
    let v = read32(a + 4);
    let b = hw::read8(a + 7);
    ensure!(v == 0x1080_3040, "word {v:#x}");
    ensure!(b == 0x10, "byte 7 {b:#x}");
    hw::write8(a + 24, 0x60);
    ensure!(
        g.priority(0, 24) == 0x60,
        "PPI 24 priority {:#x}",
        g.priority(0, 24)
    );
    Outcome::Pass
}

fn gicr_other() -> Outcome {
    let g = gic();
    let Some(o) = super::other() else {
        return Outcome::Skip("one CPU");
    };
    g.set_priority(o, 9, 0x30);
    g.enable(o, 9);
    let mine = (g.priority(0, 9), g.is_enabled(0, 9));
    let theirs = rt::run_on(
        o,
        |_| {
            let g = gic();
            let c = crate::hw::cpu();
            (g.priority(c, 9) as u64) | ((g.is_enabled(c, 9) as u64) << 8)
        },
        0,
    );
    ensure!(
        mine == (super::PRIO, false),
        "CPU 0's SGI 9 changed: {mine:?}"
    );
    ensure!(
        theirs == Some(0x130),
        "CPU {o} sees {theirs:x?}, want priority 0x30 enabled"
    );
    Outcome::Pass
}

fn itargetsr_banked() -> Outcome {
    let g = gic();
    let mut seen = 0u8;
    for c in 0..g.cpu_count {
        let r = rt::run_on(
            c,
            |_| {
                let g = gic();
                let b = hw::read8(g.d(gic::GICD_ITARGETSR));
                let want = u32::from_ne_bytes([b; 4]);
                let mut ok = b.count_ones() == 1;
                for i in 0..8 {
                    ok &= read32(g.d(gic::GICD_ITARGETSR + 4 * i)) == want;
                }
                write32(g.d(gic::GICD_ITARGETSR), 0);
                ok &= read32(g.d(gic::GICD_ITARGETSR)) == want;
                b as u64 | (ok as u64) << 8
            },
            0,
        );
        ensure!(r.is_some(), "CPU {c} did not answer");
        let r = r.unwrap_or(0);
        ensure!(
            r >> 8 == 1,
            "CPU {c}: ITARGETSR0-7 not all its bit {:#x}, or writable",
            r & 0xff
        );
        ensure!(
            seen & r as u8 == 0,
            "CPU {c} shares interface bit {:#x}",
            r & 0xff
        );
        seen |= r as u8;
    }
    Outcome::Pass
}

fn itargetsr_spi() -> Outcome {
    let g = gic();
    let a = g.d(gic::GICD_ITARGETSR + SPI as usize);
    let t = if g.cpu_count > 2 {
        g.if_bit(2)
    } else {
        g.if_bit(0)
    };
    hw::write8(a + 1, t);
    let b = hw::read8(a + 1);
    let w = read32(a);
    ensure!(b == t, "byte reads {b:#x}, wrote {t:#x}");
    ensure!((w >> 8) & 0xff == t as u32, "word reads {w:#x}");
    write32(
        a,
        0x0f0f_0f0f & u32::from_ne_bytes([(1u8 << g.cpu_count) - 1; 4]),
    );
    let all = read32(a);
    ensure!(
        all == u32::from_ne_bytes([(1u8 << g.cpu_count) - 1; 4]) & 0x0f0f_0f0f,
        "word write: {all:#x}"
    );
    Outcome::Pass
}

fn spendsgir() -> Outcome {
    let g = gic();
    let me = g.if_bit(0);
    let a = g.d(gic::GICD_SPENDSGIR);
    hw::write8(a + 2, me); // SGI 2, source = this CPU
    let s = hw::read8(a + 2);
    ensure!(s == me, "SPENDSGIR byte {s:#x}, want {me:#x}");
    ensure!(g.is_pending(0, 2), "SGI 2 not pending");
    hw::write8(g.d(gic::GICD_CPENDSGIR + 2), me);
    let c = hw::read8(a + 2);
    ensure!(c == 0, "still pending after CPENDSGIR: {c:#x}");
    ensure!(!g.is_pending(0, 2), "ISPENDR0 still shows SGI 2");
    Outcome::Pass
}

fn gicc_regs() -> Outcome {
    let g = gic();
    let a = read32(g.gicc + gic::GICC_IIDR);
    write32(g.gicc + gic::GICC_IIDR, !a);
    ensure!(read32(g.gicc + gic::GICC_IIDR) == a, "GICC_IIDR changed");
    g.set_pmr(0xff);
    let p = g.pmr() as u8;
    diag!("GICC_PMR implements {p:#x}");
    ensure!(
        (!p).wrapping_add(1).is_power_of_two() && p.count_ones() >= 4,
        "PMR pattern {p:#x}"
    );
    ensure!(g.rpr() & 0xff == 0xff, "RPR not idle: {:#x}", g.rpr());
    let _ = (platform(), virt());
    Outcome::Pass
}
