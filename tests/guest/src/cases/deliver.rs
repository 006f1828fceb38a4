//! Delivery: enable, pending and active state and what they do to delivery; SGIs; priority,
//! preemption, masking and the binary point; EOImode = 1; more pending and active interrupts
//! than a GIC has list registers; level-sensitive semantics a guest can drive.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use super::{SPI, drain, neg, poll, pos, wait_count};
use crate::gic::{self, Target, Version};
use crate::hw;
use crate::rt::{self, CPUS, gic};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

pub const CASES: &[Case] = &[
    Case {
        group: "enable",
        name: "a pending disabled SPI is not delivered until it is enabled",
        only: Only::Both,
        f: enable_gates,
    },
    Case {
        group: "enable",
        name: "disabling a pending SPI holds it pending, re-enabling delivers it",
        only: Only::Both,
        f: disable_holds,
    },
    Case {
        group: "pending",
        name: "ICPENDR withdraws a pending SPI before it is taken",
        only: Only::Both,
        f: icpendr_withdraws,
    },
    Case {
        group: "pending",
        name: "ISPENDR delivers an SPI once, to the CPU it is routed to",
        only: Only::Both,
        f: routed_each_cpu,
    },
    Case {
        group: "pending",
        name: "an SPI made pending again in its handler is delivered again after EOI",
        only: Only::Both,
        f: repend_in_handler,
    },
    Case {
        group: "active",
        name: "IAR makes the SPI active and not pending, EOI makes it inactive",
        only: Only::Both,
        f: iar_activates,
    },
    Case {
        group: "active",
        name: "an SPI set active by ISACTIVER is not delivered until ICACTIVER",
        only: Only::Both,
        f: active_blocks,
    },
    Case {
        group: "active",
        name: "an acknowledged SPI made pending again reads active and pending",
        only: Only::Both,
        f: active_and_pending,
    },
    Case {
        group: "sgi",
        name: "to self, with the right INTID (and source CPU on GICv2)",
        only: Only::Both,
        f: sgi_self,
    },
    Case {
        group: "sgi",
        name: "to one other CPU only",
        only: Only::Both,
        f: sgi_other,
    },
    Case {
        group: "sgi",
        name: "to all but self",
        only: Only::Both,
        f: sgi_others,
    },
    Case {
        group: "sgi",
        name: "by target list: two CPUs of four",
        only: Only::Both,
        f: sgi_list,
    },
    Case {
        group: "sgi",
        name: "from a secondary to CPU 0 (source CPU on GICv2)",
        only: Only::Both,
        f: sgi_from_secondary,
    },
    Case {
        group: "sgi",
        name: "a target list that names no CPU delivers nothing",
        only: Only::Both,
        f: sgi_nobody,
    },
    Case {
        group: "sgi",
        name: "a disabled SGI stays pending and is delivered once enabled (or SGIs are always enabled, v2)",
        only: Only::Both,
        f: sgi_disabled,
    },
    Case {
        group: "sgi",
        name: "15 SGIs pending at once are delivered once each in priority order",
        only: Only::Both,
        f: sgi_all,
    },
    Case {
        group: "sgi",
        name: "by affinity: Aff1 of another cluster reaches nobody here",
        only: Only::V3,
        f: sgi_affinity,
    },
    Case {
        group: "sgi",
        name: "the same SGI from two sources is delivered once per source",
        only: Only::V2,
        f: sgi_two_sources,
    },
    Case {
        group: "sgi",
        name: "SGIR filter 'self' reaches only the sender",
        only: Only::V2,
        f: sgi_filter_self,
    },
    Case {
        group: "priority",
        name: "the higher priority of two pending SPIs is taken first",
        only: Only::Both,
        f: prio_two,
    },
    Case {
        group: "priority",
        name: "HPPIR shows the highest priority pending interrupt",
        only: Only::Both,
        f: hppir,
    },
    Case {
        group: "priority",
        name: "PMR masks equal and lower priorities, not higher",
        only: Only::Both,
        f: pmr_masks,
    },
    Case {
        group: "priority",
        name: "RPR is the active priority, idle (0xff) after EOI",
        only: Only::Both,
        f: rpr,
    },
    Case {
        group: "priority",
        name: "a higher priority interrupt preempts a running handler",
        only: Only::Both,
        f: preempt,
    },
    Case {
        group: "priority",
        name: "equal and lower priorities do not preempt",
        only: Only::Both,
        f: no_preempt,
    },
    Case {
        group: "priority",
        name: "binary point: same group priority does not preempt",
        only: Only::Both,
        f: binary_point,
    },
    Case {
        group: "eoimode",
        name: "EOImode=1: EOI drops priority, the SPI stays active until DIR",
        only: Only::Both,
        f: eoimode_split,
    },
    Case {
        group: "eoimode",
        name: "EOImode=1: 8 dropped-but-active SPIs (more than LRs) all deactivated by DIR",
        only: Only::Both,
        f: eoimode_many,
    },
    Case {
        group: "eoimode",
        name: "EOImode=1: an SPI taken on CPU 0 is deactivated by DIR on CPU 1",
        only: Only::Both,
        f: eoimode_dir_elsewhere,
    },
    Case {
        group: "overflow",
        name: "32 SPIs pending at once: each delivered once, in priority order",
        only: Only::Both,
        f: overflow_spis,
    },
    Case {
        group: "overflow",
        name: "15 SGIs + 17 SPIs pending at once (IAR polling): once each, in order",
        only: Only::Both,
        f: overflow_mixed,
    },
    Case {
        group: "overflow",
        name: "7 nested preemptions (more actives than LRs) unwind in order",
        only: Only::Both,
        f: nested,
    },
    Case {
        group: "level",
        name: "ISPENDR latches a level SPI; IAR consumes the latch, no redelivery",
        only: Only::Both,
        f: level_latch,
    },
    Case {
        group: "level",
        name: "ICPENDR clears a level SPI's pending latch",
        only: Only::Both,
        f: level_icpendr,
    },
    Case {
        group: "level",
        name: "a level SPI pended again in its handler is delivered twice",
        only: Only::Both,
        f: level_repend,
    },
];

/// Enables SGI/PPI `id` on CPU `c` (GICv2 banks it: done on that CPU).
fn enable_on(c: usize, id: u32) {
    let g = gic();
    if g.version == Version::V3 || c == hw::cpu() {
        g.enable(c, id);
    } else {
        rt::run_on(
            c,
            |id| {
                gic().enable(hw::cpu(), id as u32);
                0
            },
            id as u64,
        );
    }
}

/// Counts of interrupts logged by each CPU.
fn counts() -> [u32; 8] {
    let mut out = [0; 8];
    for (c, o) in out.iter_mut().enumerate().take(gic().cpu_count) {
        *o = CPUS[c].count.load(SeqCst);
    }
    out
}

/// Enables an SPI and its delivery to CPU 0 (interrupts unmasked).
fn spi_on(i: u32, p: u8) {
    let g = gic();
    g.set_priority(0, i, p);
    g.enable(0, i);
}

fn enable_gates() -> Outcome {
    let g = gic();
    let i = SPI + 10;
    g.pend(0, i);
    hw::irq_enable();
    hw::delay(neg());
    ensure!(CPUS[0].count.load(SeqCst) == 0, "delivered while disabled");
    ensure!(g.is_pending(0, i), "not pending");
    g.enable(0, i);
    ensure!(wait_count(0, 1, pos()), "not delivered after enable");
    hw::irq_disable();
    ensure!(
        CPUS[0].times_seen(i) == 1,
        "log {:?}",
        CPUS[0].ids().0[..2].as_ref()
    );
    Outcome::Pass
}

fn disable_holds() -> Outcome {
    let g = gic();
    let i = SPI + 11;
    g.enable(0, i);
    g.pend(0, i);
    g.disable(0, i);
    hw::irq_enable();
    hw::delay(neg());
    ensure!(CPUS[0].count.load(SeqCst) == 0, "delivered while disabled");
    ensure!(g.is_pending(0, i), "pending state lost by disabling");
    g.enable(0, i);
    ensure!(wait_count(0, 1, pos()), "not delivered after re-enable");
    hw::irq_disable();
    Outcome::Pass
}

fn icpendr_withdraws() -> Outcome {
    let g = gic();
    let i = SPI + 12;
    g.enable(0, i);
    g.pend(0, i);
    g.unpend(0, i);
    hw::irq_enable();
    hw::delay(neg());
    hw::irq_disable();
    ensure!(
        CPUS[0].count.load(SeqCst) == 0,
        "a withdrawn SPI was delivered"
    );
    ensure!(!g.is_pending(0, i), "still pending");
    Outcome::Pass
}

fn routed_each_cpu() -> Outcome {
    let g = gic();
    let i = SPI + 13;
    g.enable(0, i);
    hw::irq_enable();
    for c in 0..g.cpu_count {
        for p in CPUS.iter().take(g.cpu_count) {
            p.clear();
        }
        g.route(i, c);
        g.pend(0, i);
        ensure!(wait_count(c, 1, pos()), "CPU {c} did not get SPI {i}");
        hw::delay(neg());
        let n = counts();
        for (o, &k) in n.iter().enumerate().take(g.cpu_count) {
            ensure!(
                k == (o == c) as u32,
                "routed to CPU {c}: counts {:?}",
                &n[..g.cpu_count]
            );
        }
    }
    hw::irq_disable();
    Outcome::Pass
}

static SEEN: AtomicU32 = AtomicU32::new(0);

fn repend_in_handler() -> Outcome {
    let i = SPI + 14;
    SEEN.store(0, SeqCst);
    rt::set_hook(
        0,
        Some(|iar| {
            if SEEN.fetch_add(1, SeqCst) == 0 {
                let g = gic();
                g.pend(0, g.intid(iar));
            }
            false
        }),
    );
    spi_on(i, 0x80);
    gic().pend(0, i);
    hw::irq_enable();
    let ok = wait_count(0, 2, pos());
    hw::delay(neg());
    hw::irq_disable();
    ensure!(ok, "delivered {} times, want 2", CPUS[0].count.load(SeqCst));
    ensure!(
        CPUS[0].count.load(SeqCst) == 2,
        "delivered {} times",
        CPUS[0].count.load(SeqCst)
    );
    Outcome::Pass
}

fn iar_activates() -> Outcome {
    let g = gic();
    let i = SPI + 15;
    spi_on(i, 0x80);
    g.pend(0, i);
    let mut got = [0u32; 1];
    let taken = hw::wait_until(pos(), || {
        got[0] = g.ack();
        g.intid(got[0]) < 1020
    });
    ensure!(taken, "IAR returned nothing");
    let iar = got[0];
    ensure!(g.intid(iar) == i, "IAR {iar:#x}");
    let act = g.is_active(0, i);
    let pend = g.is_pending(0, i);
    g.eoi(iar);
    let after = g.is_active(0, i);
    ensure!(act && !pend, "after IAR: active {act} pending {pend}");
    ensure!(!after, "still active after EOI");
    Outcome::Pass
}

fn active_blocks() -> Outcome {
    let g = gic();
    let i = SPI + 16;
    g.activate(0, i);
    spi_on(i, 0x80);
    g.pend(0, i);
    hw::irq_enable();
    hw::delay(neg());
    ensure!(
        CPUS[0].count.load(SeqCst) == 0,
        "an active SPI was delivered again"
    );
    ensure!(
        g.is_active(0, i) && g.is_pending(0, i),
        "not active and pending"
    );
    g.deactivate(0, i);
    let ok = wait_count(0, 1, pos());
    hw::delay(neg());
    hw::irq_disable();
    ensure!(ok, "not delivered after ICACTIVER");
    ensure!(
        CPUS[0].count.load(SeqCst) == 1,
        "delivered {} times",
        CPUS[0].count.load(SeqCst)
    );
    Outcome::Pass
}

fn active_and_pending() -> Outcome {
    let g = gic();
    let i = SPI + 17;
    spi_on(i, 0x80);
    g.pend(0, i);
    let mut v = [0u32; 1];
    ensure!(
        hw::wait_until(pos(), || {
            v[0] = g.ack();
            g.intid(v[0]) == i
        }),
        "not acknowledged"
    );
    g.pend(0, i);
    let (a, p) = (g.is_active(0, i), g.is_pending(0, i));
    let early = g.ack();
    g.eoi(v[0]);
    let mut again = [0u32; 1];
    let n = poll(1, &mut again);
    ensure!(a && p, "after re-pend: active {a} pending {p}");
    ensure!(
        g.intid(early) >= 1020,
        "IAR gave {early:#x} while the SPI was active"
    );
    ensure!(
        n == 1 && g.intid(again[0]) == i,
        "not delivered again after EOI"
    );
    Outcome::Pass
}

/// The GICv2 source CPU of a logged IAR value.
fn source(iar: u32) -> u32 {
    (iar >> 10) & 7
}

/// GICv2: the CPU interface number (0..7) of CPU `c`.
fn if_num(c: usize) -> u32 {
    gic().if_bit(c).trailing_zeros()
}

fn sgi_self() -> Outcome {
    let g = gic();
    g.enable(0, 1);
    hw::irq_enable();
    g.sgi(1, Target::Cpus(1));
    let ok = wait_count(0, 1, pos());
    hw::irq_disable();
    ensure!(ok, "not delivered");
    let iar = CPUS[0].iar[0].load(SeqCst);
    ensure!(g.intid(iar) == 1, "IAR {iar:#x}");
    if g.version == Version::V2 {
        ensure!(
            source(iar) == if_num(0),
            "source {} want {}",
            source(iar),
            if_num(0)
        );
    }
    Outcome::Pass
}

fn sgi_other() -> Outcome {
    let g = gic();
    let Some(o) = super::other() else {
        return Outcome::Skip("one CPU");
    };
    for c in 0..g.cpu_count {
        enable_on(c, 2);
    }
    hw::irq_enable();
    g.sgi(2, Target::Cpus(1 << o));
    let ok = wait_count(o, 1, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(ok, "CPU {o} got nothing");
    for c in 0..g.cpu_count {
        ensure!(n[c] == (c == o) as u32, "counts {:?}", &n[..g.cpu_count]);
    }
    ensure!(g.intid(CPUS[o].iar[0].load(SeqCst)) == 2, "wrong INTID");
    Outcome::Pass
}

fn sgi_others() -> Outcome {
    let g = gic();
    if g.cpu_count < 2 {
        return Outcome::Skip("one CPU");
    }
    for c in 0..g.cpu_count {
        enable_on(c, 3);
    }
    hw::irq_enable();
    g.sgi(3, Target::Others);
    let ok = (1..g.cpu_count).all(|c| wait_count(c, 1, pos()));
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(ok, "not every other CPU got it: {:?}", &n[..g.cpu_count]);
    for c in 0..g.cpu_count {
        ensure!(n[c] == (c != 0) as u32, "counts {:?}", &n[..g.cpu_count]);
    }
    Outcome::Pass
}

fn sgi_list() -> Outcome {
    let g = gic();
    if g.cpu_count < 4 {
        return Outcome::Skip("fewer than 4 CPUs");
    }
    for c in 0..g.cpu_count {
        enable_on(c, 4);
    }
    hw::irq_enable();
    g.sgi(4, Target::Cpus(0b1100));
    let ok = wait_count(2, 1, pos()) && wait_count(3, 1, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(
        ok && n[..4] == [0, 0, 1, 1],
        "counts {:?}",
        &n[..g.cpu_count]
    );
    Outcome::Pass
}

fn sgi_from_secondary() -> Outcome {
    let g = gic();
    let Some(o) = super::other() else {
        return Outcome::Skip("one CPU");
    };
    g.enable(0, 5);
    hw::irq_enable();
    rt::run_on(
        o,
        |_| {
            gic().sgi(5, Target::Cpus(1));
            0
        },
        0,
    );
    let ok = wait_count(0, 1, pos());
    hw::irq_disable();
    ensure!(ok, "CPU 0 got nothing");
    let iar = CPUS[0].iar[0].load(SeqCst);
    ensure!(g.intid(iar) == 5, "IAR {iar:#x}");
    if g.version == Version::V2 {
        ensure!(
            source(iar) == if_num(o),
            "source {} want {}",
            source(iar),
            if_num(o)
        );
    }
    Outcome::Pass
}

fn sgi_nobody() -> Outcome {
    let g = gic();
    for c in 0..g.cpu_count {
        enable_on(c, 6);
    }
    hw::irq_enable();
    match g.version {
        Version::V3 => g.sgi1r(6 << 24), // empty target list
        Version::V2 => {
            hw::write32(g.d(gic::GICD_SGIR), 6);
            hw::dsb();
        }
    }
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(n.iter().all(|&k| k == 0), "counts {:?}", &n[..g.cpu_count]);
    Outcome::Pass
}

fn sgi_affinity() -> Outcome {
    let g = gic();
    for c in 0..g.cpu_count {
        enable_on(c, 7);
    }
    hw::irq_enable();
    // Aff1 = 0x7f (no CPU of this machine), target list bit 0.
    g.sgi1r((7 << 24) | (0x7f << 16) | 1);
    hw::delay(neg());
    // Aff1 of CPU 1 and its Aff0 bit: reaches it.
    let m = g.mpidr[1.min(g.cpu_count - 1)];
    g.sgi1r((7 << 24) | ((m >> 8 & 0xff) << 16) | (m >> 16 & 0xff) << 32 | (1 << (m & 0xf)));
    let c = 1.min(g.cpu_count - 1);
    let ok = wait_count(c, 1, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(
        ok,
        "the matching affinity got nothing: {:?}",
        &n[..g.cpu_count]
    );
    let total: u32 = n.iter().sum();
    ensure!(total == 1, "counts {:?}", &n[..g.cpu_count]);
    Outcome::Pass
}

fn sgi_disabled() -> Outcome {
    let g = gic();
    if g.version == Version::V2 && g.is_enabled(0, 8) {
        // GICv2 lets SGIs be permanently enabled (ISENABLER0[15:0] RAO/WI, IHI 0048B
        // 4.3.5); then the SGI must simply be delivered.
        diag!("SGI enable bits are RAO/WI");
        hw::irq_enable();
        g.sgi(8, Target::Cpus(1));
        let ok = wait_count(0, 1, pos());
        hw::irq_disable();
        ensure!(ok, "an always-enabled SGI was not delivered");
        return Outcome::Pass;
    }
    hw::irq_enable();
    g.sgi(8, Target::Cpus(1));
    hw::delay(neg());
    ensure!(
        CPUS[0].count.load(SeqCst) == 0,
        "a disabled SGI was delivered"
    );
    ensure!(g.is_pending(0, 8), "SGI 8 not pending");
    g.enable(0, 8);
    let ok = wait_count(0, 1, pos());
    hw::irq_disable();
    ensure!(ok, "not delivered once enabled");
    Outcome::Pass
}

/// Checks that `ids` (raw IARs) holds each of `want` once, in non-decreasing priority.
fn check_order(ids: &[u32], want: &[u32], prio: impl Fn(u32) -> u8) -> Result<(), u32> {
    let g = gic();
    if ids.len() != want.len() {
        return Err(u32::MAX);
    }
    let mut last = 0u8;
    for &iar in ids {
        let id = g.intid(iar);
        if !want.contains(&id) || ids.iter().filter(|&&x| g.intid(x) == id).count() != 1 {
            return Err(id);
        }
        let p = prio(id);
        if p < last {
            return Err(id);
        }
        last = p;
    }
    Ok(())
}

fn sgi_all() -> Outcome {
    let g = gic();
    let want: [u32; 15] = core::array::from_fn(|i| i as u32);
    let prio = |id: u32| (0x10 * (15 - id)) as u8; // SGI 14 first (0x10) ... SGI 0 last (0xf0)
    for &i in &want {
        g.set_priority(0, i, prio(i));
        g.enable(0, i);
    }
    for &i in &want {
        g.sgi(i, Target::Cpus(1));
    }
    hw::irq_enable();
    let ok = wait_count(0, 15, pos());
    hw::delay(neg());
    hw::irq_disable();
    let (ids, n) = CPUS[0].ids();
    ensure!(ok && n == 15, "delivered {n} of 15: {:?}", &ids[..n]);
    if let Err(id) = check_order(&ids[..n], &want, prio) {
        ensure!(false, "out of order or twice at {id}: {:?}", &ids[..n]);
    }
    Outcome::Pass
}

fn sgi_two_sources() -> Outcome {
    let g = gic();
    if g.cpu_count < 3 {
        return Outcome::Skip("fewer than 3 CPUs");
    }
    g.enable(0, 9);
    for o in [1, 2] {
        rt::run_on(
            o,
            |_| {
                gic().sgi(9, Target::Cpus(1));
                0
            },
            0,
        );
    }
    hw::irq_enable();
    let ok = wait_count(0, 2, pos());
    hw::delay(neg());
    hw::irq_disable();
    let (ids, n) = CPUS[0].ids();
    ensure!(
        ok && n == 2,
        "delivered {n} times, want 2: {:x?}",
        &ids[..n]
    );
    let mut s = [source(ids[0]), source(ids[1])];
    s.sort_unstable();
    let mut want = [if_num(1), if_num(2)];
    want.sort_unstable();
    ensure!(s == want, "sources {s:?}, want {want:?}");
    Outcome::Pass
}

fn sgi_filter_self() -> Outcome {
    let g = gic();
    for c in 0..g.cpu_count {
        enable_on(c, 10);
    }
    hw::irq_enable();
    hw::write32(g.d(gic::GICD_SGIR), (2 << 24) | (0xff << 16) | 10);
    hw::dsb();
    let ok = wait_count(0, 1, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = counts();
    ensure!(ok, "the sender got nothing");
    ensure!(n.iter().sum::<u32>() == 1, "counts {:?}", &n[..g.cpu_count]);
    Outcome::Pass
}

fn prio_two() -> Outcome {
    let g = gic();
    let (lo, hi) = (SPI + 20, SPI + 21);
    spi_on(lo, 0x80);
    spi_on(hi, 0x40);
    g.pend(0, lo);
    g.pend(0, hi);
    let mut got = [0u32; 2];
    let n = poll(2, &mut got);
    ensure!(n == 2, "took {n}");
    ensure!(
        g.intid(got[0]) == hi && g.intid(got[1]) == lo,
        "order {got:?}"
    );
    Outcome::Pass
}

fn hppir() -> Outcome {
    let g = gic();
    let (lo, hi) = (SPI + 22, SPI + 23);
    spi_on(lo, 0x80);
    spi_on(hi, 0x40);
    g.pend(0, lo);
    g.pend(0, hi);
    let mut h = 0;
    let ok = hw::wait_until(pos(), || {
        h = g.intid(g.hppir());
        h == hi
    });
    drain();
    ensure!(ok, "HPPIR {h}, want {hi}");
    Outcome::Pass
}

fn pmr_masks() -> Outcome {
    let g = gic();
    let (a, b) = (SPI + 24, SPI + 25);
    spi_on(a, 0x80);
    spi_on(b, 0x70);
    g.set_pmr(0x80);
    g.pend(0, a);
    let masked = !hw::wait_until(neg(), || {
        g.intid(g.hppir()) < 1020 && g.intid(g.ack()) < 1020
    });
    g.pend(0, b);
    let mut got = [0u32; 1];
    let n1 = poll(1, &mut got);
    let first = g.intid(got[0]);
    g.set_pmr(0x90);
    let n2 = poll(1, &mut got);
    let second = g.intid(got[0]);
    g.set_pmr(0xff);
    ensure!(
        masked,
        "an interrupt of the PMR's priority was acknowledged"
    );
    ensure!(
        n1 == 1 && first == b,
        "priority 0x70 under PMR 0x80 not taken ({first})"
    );
    ensure!(
        n2 == 1 && second == a,
        "priority 0x80 under PMR 0x90 not taken ({second})"
    );
    Outcome::Pass
}

fn rpr() -> Outcome {
    let g = gic();
    let i = SPI + 26;
    spi_on(i, 0x60);
    let idle = g.rpr() & 0xff;
    g.pend(0, i);
    let mut iar = 0;
    ensure!(
        hw::wait_until(pos(), || {
            iar = g.ack();
            g.intid(iar) == i
        }),
        "not taken"
    );
    let running = g.rpr() & 0xff;
    g.eoi(iar);
    let after = g.rpr() & 0xff;
    ensure!(idle == 0xff, "idle RPR {idle:#x}");
    ensure!(running == 0x60, "RPR {running:#x} while 0x60 is active");
    ensure!(after == 0xff, "RPR {after:#x} after EOI");
    Outcome::Pass
}

/// Hook for the preemption cases: the first interrupt (the low one) makes `NEXT` pending,
/// unmasks interrupts, waits `WAIT` ticks or until `UNTIL` interrupts were seen, and records
/// how many were seen then in `INSIDE`.
static NEXT: AtomicU32 = AtomicU32::new(0);
static NEXT2: AtomicU32 = AtomicU32::new(0);
static INSIDE: AtomicU32 = AtomicU32::new(0);
static UNTIL: AtomicU32 = AtomicU32::new(0);

fn preempt_hook(iar: u32) -> bool {
    let g = gic();
    if CPUS[0].count.load(SeqCst) == 1 && g.intid(iar) != NEXT.load(SeqCst) {
        g.pend(0, NEXT.load(SeqCst));
        if NEXT2.load(SeqCst) != 0 {
            g.pend(0, NEXT2.load(SeqCst));
        }
        hw::irq_enable();
        let until = UNTIL.load(SeqCst);
        hw::wait_until(if until > 1 { pos() } else { neg() }, || {
            CPUS[0].count.load(SeqCst) >= until.max(2)
        });
        if until <= 1 {
            hw::delay(neg());
        }
        INSIDE.store(CPUS[0].count.load(SeqCst), SeqCst);
        hw::irq_disable();
    }
    false
}

fn preempt_setup(low: u8, next: &[(u32, u8)], until: u32) {
    let i = SPI + 30;
    spi_on(i, low);
    NEXT.store(next[0].0, SeqCst);
    NEXT2.store(next.get(1).map_or(0, |n| n.0), SeqCst);
    for &(n, p) in next {
        spi_on(n, p);
    }
    UNTIL.store(until, SeqCst);
    INSIDE.store(0, SeqCst);
    rt::set_hook(0, Some(preempt_hook));
    gic().pend(0, i);
}

fn preempt() -> Outcome {
    preempt_setup(0xc0, &[(SPI + 31, 0x40)], 2);
    hw::irq_enable();
    let ok = wait_count(0, 2, pos());
    hw::irq_disable();
    let inside = INSIDE.load(SeqCst);
    let depth = CPUS[0].max_depth.load(SeqCst);
    ensure!(ok, "the higher priority SPI was not delivered");
    ensure!(
        inside == 2 && depth == 2,
        "not nested: seen inside {inside}, depth {depth}"
    );
    Outcome::Pass
}

fn no_preempt() -> Outcome {
    preempt_setup(0xc0, &[(SPI + 31, 0xc0), (SPI + 32, 0xe0)], 1);
    hw::irq_enable();
    let ok = wait_count(0, 3, pos());
    hw::irq_disable();
    let inside = INSIDE.load(SeqCst);
    let depth = CPUS[0].max_depth.load(SeqCst);
    ensure!(ok, "the other SPIs were not delivered after the handler");
    ensure!(
        inside == 1 && depth == 1,
        "preempted: seen inside {inside}, depth {depth}"
    );
    Outcome::Pass
}

fn binary_point() -> Outcome {
    let g = gic();
    // Group priority of 0xa0 and 0x80 is the same with only bit 7 (GICv3 BPR1 = 7, GICv2
    // GICC_BPR = 6), different with the finest binary point.
    let coarse = if g.version == Version::V3 { 7 } else { 6 };
    g.set_bpr(coarse);
    let bpr = g.bpr();
    preempt_setup(0xa0, &[(SPI + 31, 0x80)], 1);
    hw::irq_enable();
    let ok1 = wait_count(0, 2, pos());
    hw::irq_disable();
    let inside1 = INSIDE.load(SeqCst);
    super::reset();
    g.set_bpr(0);
    let fine = g.bpr();
    preempt_setup(0xa0, &[(SPI + 31, 0x80)], 2);
    hw::irq_enable();
    let ok2 = wait_count(0, 2, pos());
    hw::irq_disable();
    let inside2 = INSIDE.load(SeqCst);
    diag!("BPR coarse {bpr}, finest {fine}");
    ensure!(bpr == coarse, "BPR wrote {coarse} read {bpr}");
    ensure!(
        ok1 && inside1 == 1,
        "preempted within the group priority (seen inside {inside1})"
    );
    ensure!(
        ok2 && inside2 == 2,
        "not preempted with BPR {fine} (seen inside {inside2})"
    );
    Outcome::Pass
}

fn eoimode_split() -> Outcome {
    let g = gic();
    let i = SPI + 33;
    spi_on(i, 0x60);
    g.set_eoimode(true);
    g.pend(0, i);
    let mut iar = 0;
    ensure!(
        hw::wait_until(pos(), || {
            iar = g.ack();
            g.intid(iar) == i
        }),
        "not taken"
    );
    g.eoi(iar);
    let rpr = g.rpr() & 0xff;
    let active = g.is_active(0, i);
    g.pend(0, i);
    let again = hw::wait_until(neg(), || g.intid(g.ack()) < 1020);
    g.dir(iar);
    let after = g.is_active(0, i);
    let mut got = [0u32; 1];
    let mut n = 0;
    if !again {
        let end = hw::now() + pos();
        while hw::now() < end {
            let v = g.ack();
            if g.intid(v) < 1020 {
                got[0] = v;
                n = 1;
                g.eoi(v);
                g.dir(v);
                break;
            }
        }
    }
    g.set_eoimode(false);
    ensure!(rpr == 0xff, "RPR {rpr:#x} after the priority drop");
    ensure!(active, "not active after EOI with EOImode=1");
    ensure!(!again, "taken again while still active");
    ensure!(
        n == 1 && g.intid(got[0]) == i,
        "the pending one was not taken after DIR"
    );
    let _ = after;
    Outcome::Pass
}

fn eoimode_many() -> Outcome {
    let g = gic();
    g.set_eoimode(true);
    for k in 0..8u32 {
        spi_on(SPI + 40 + k, 0x20 + 0x10 * k as u8);
    }
    hw::write32(
        g.d(gic::GICD_ISPENDR + (SPI as usize + 40) / 32 * 4),
        0xff << ((SPI + 40) % 32),
    );
    hw::dsb();
    let mut iars = [0u32; 8];
    let mut n = 0;
    let end = hw::now() + pos();
    while n < 8 && hw::now() < end {
        let v = g.ack();
        if g.intid(v) < 1020 {
            iars[n] = v;
            n += 1;
            g.eoi(v); // priority drop only
        }
    }
    let mut active_mask = 0u32;
    for k in 0..8 {
        active_mask |= (g.is_active(0, SPI + 40 + k) as u32) << k;
    }
    let all_active = active_mask == 0xff;
    for &v in iars[..n].iter().rev() {
        g.dir(v);
    }
    let mut none_active = true;
    for k in 0..8 {
        none_active &= !g.is_active(0, SPI + 40 + k);
    }
    let extra = hw::wait_until(neg(), || g.intid(g.ack()) < 1020);
    g.set_eoimode(false);
    ensure!(n == 8, "took {n} of 8: {:?}", &iars[..n]);
    let want: [u32; 8] = core::array::from_fn(|k| SPI + 40 + k as u32);
    if let Err(id) = check_order(&iars, &want, |id| (id - SPI - 40) as u8) {
        ensure!(false, "order broken at {id}: {iars:?}");
    }
    ensure!(
        all_active,
        "not all 8 active after the priority drops: {active_mask:#x}"
    );
    ensure!(none_active, "some still active after DIR");
    ensure!(!extra, "something was delivered again");
    Outcome::Pass
}

/// KVM's "asymmetric deactivation" (its `vgic_irq` selftest has the case): with EOImode=1 an
/// SPI acknowledged and priority-dropped on CPU 0, then deactivated with DIR on CPU 1, as
/// Linux's threaded interrupt handlers may do. QEMU's own GICv2 model clears an SPI's active
/// state only for the CPU that writes GICC_DIR (`gic_deactivate_irq`), so natively on GICv2 the
/// case cannot pass and only runs under exitless (a GIC-400 deactivates it).
fn eoimode_dir_elsewhere() -> Outcome {
    let g = gic();
    let Some(o) = super::other() else {
        return Outcome::Skip("one CPU");
    };
    if g.version == Version::V2 && !super::virt() {
        return Outcome::Skip("native");
    }
    let i = SPI + 12;
    g.set_eoimode(true);
    spi_on(i, 0x80);
    g.pend(0, i);
    let taken = |g: &gic::Gic| {
        let end = hw::now() + pos();
        while hw::now() < end {
            let v = g.ack();
            if g.intid(v) < 1020 {
                return Some(v);
            }
        }
        None
    };
    let Some(iar) = taken(g) else {
        g.set_eoimode(false);
        diag!("SPI {i} was never taken");
        return Outcome::Fail;
    };
    g.eoi(iar); // priority drop only
    let active = g.is_active(0, i);
    let done = rt::run_on(
        o,
        |iar| {
            let g = gic();
            g.set_eoimode(true);
            // A hypervisor sees a new EOImode when the CPU next exits (KVM alike): a trapped
            // distributor read makes sure it has.
            let _ = hw::read32(g.d(gic::GICD_TYPER));
            g.dir(iar as u32);
            g.set_eoimode(false);
            0
        },
        iar as u64,
    );
    let after = g.is_active(0, i);
    g.pend(0, i);
    let again = taken(g);
    if let Some(v) = again {
        g.eoi(v);
        g.dir(v);
    }
    g.set_eoimode(false);
    ensure!(g.intid(iar) == i, "took {} instead of {i}", g.intid(iar));
    ensure!(active, "not active after the priority drop");
    ensure!(done.is_some(), "CPU {o} did not run its DIR");
    ensure!(!after, "still active after CPU {o}'s DIR");
    ensure!(again.is_some(), "not taken again after CPU {o}'s DIR");
    Outcome::Pass
}

fn overflow_spis() -> Outcome {
    let g = gic();
    let w = (SPI as usize / 32) * 4;
    let prio = |id: u32| (((id - SPI) / 2) * 0x10) as u8;
    for i in SPI..SPI + 32 {
        g.set_priority(0, i, prio(i));
    }
    hw::write32(g.d(gic::GICD_ISPENDR + w), !0);
    hw::write32(g.d(gic::GICD_ISENABLER + w), !0);
    hw::dsb();
    hw::irq_enable();
    let ok = wait_count(0, 32, pos());
    hw::delay(neg());
    hw::irq_disable();
    let (ids, n) = CPUS[0].ids();
    ensure!(ok && n == 32, "delivered {n} of 32");
    let want: [u32; 32] = core::array::from_fn(|k| SPI + k as u32);
    if let Err(id) = check_order(&ids[..n], &want, prio) {
        ensure!(false, "out of order or twice at {id}: {:?}", &ids[..n]);
    }
    Outcome::Pass
}

fn overflow_mixed() -> Outcome {
    let g = gic();
    // k = 0..15 are SGIs 0..14 and k = 15..32 SPIs; priority (k / 2) * 0x10, interleaving them.
    let id_of = |k: u32| if k < 15 { k } else { SPI + k - 15 };
    let prio_of_k = |k: u32| ((k / 2) * 0x10) as u8;
    let mut want = [0u32; 32];
    for k in 0..32 {
        let id = id_of(k);
        want[k as usize] = id;
        g.set_priority(0, id, prio_of_k(k));
        g.enable(0, id);
    }
    for k in 0..15 {
        g.sgi(k, Target::Cpus(1));
    }
    hw::write32(g.d(gic::GICD_ISPENDR + (SPI as usize / 32) * 4), 0x1ffff);
    hw::dsb();
    let mut got = [0u32; 40];
    let n = poll(32, &mut got);
    let extra = hw::wait_until(neg(), || g.intid(g.ack()) < 1020);
    let prio = |id: u32| {
        if id < 16 {
            prio_of_k(id)
        } else {
            prio_of_k(id - SPI + 15)
        }
    };
    ensure!(n == 32, "took {n} of 32: {:?}", &got[..n]);
    if let Err(id) = check_order(&got[..n], &want, prio) {
        ensure!(false, "out of order or twice at {id}: {:?}", &got[..n]);
    }
    ensure!(!extra, "an interrupt was delivered a second time");
    Outcome::Pass
}

fn nested_hook(iar: u32) -> bool {
    let g = gic();
    let k = g.intid(iar) - (SPI + 50);
    if k < 6 {
        g.pend(0, SPI + 50 + k + 1);
        hw::irq_enable();
        hw::wait_until(pos(), || CPUS[0].count.load(SeqCst) >= 7);
        hw::irq_disable();
    }
    false
}

fn nested() -> Outcome {
    let g = gic();
    for k in 0..7u32 {
        spi_on(SPI + 50 + k, 0xe0 - 0x20 * k as u8);
    }
    rt::set_hook(0, Some(nested_hook));
    g.pend(0, SPI + 50);
    hw::irq_enable();
    let ok = wait_count(0, 7, pos());
    hw::delay(neg());
    hw::irq_disable();
    let (ids, n) = CPUS[0].ids();
    let depth = CPUS[0].max_depth.load(SeqCst);
    let rpr = g.rpr() & 0xff;
    let mut active = 0;
    for k in 0..7 {
        active += g.is_active(0, SPI + 50 + k) as u32;
    }
    ensure!(ok && n == 7, "delivered {n} of 7: {:?}", &ids[..n]);
    for k in 0..7 {
        ensure!(
            g.intid(ids[k]) == SPI + 50 + k as u32,
            "order {:?}",
            &ids[..n]
        );
    }
    ensure!(depth == 7, "nesting depth {depth}, want 7");
    ensure!(
        rpr == 0xff && active == 0,
        "after unwinding: RPR {rpr:#x}, {active} still active"
    );
    Outcome::Pass
}

fn level_latch() -> Outcome {
    let g = gic();
    let i = SPI + 60;
    g.set_edge(0, i, false);
    spi_on(i, 0x80);
    g.pend(0, i);
    let mut iar = 0;
    ensure!(
        hw::wait_until(pos(), || {
            iar = g.ack();
            g.intid(iar) == i
        }),
        "not taken"
    );
    let pend = g.is_pending(0, i);
    g.eoi(iar);
    let again = hw::wait_until(neg(), || g.intid(g.ack()) < 1020);
    let p2 = g.is_pending(0, i);
    let a2 = g.is_active(0, i);
    ensure!(!pend, "still pending after IAR (nothing drives the line)");
    ensure!(
        !again && !p2 && !a2,
        "redelivered {again}, pending {p2}, active {a2}"
    );
    Outcome::Pass
}

fn level_icpendr() -> Outcome {
    let g = gic();
    let i = SPI + 61;
    g.set_edge(0, i, false);
    g.pend(0, i);
    let p = g.is_pending(0, i);
    g.unpend(0, i);
    let q = g.is_pending(0, i);
    spi_on(i, 0x80);
    let taken = hw::wait_until(neg(), || g.intid(g.ack()) < 1020);
    ensure!(p && !q, "pending {p} then {q}");
    ensure!(!taken, "taken after ICPENDR");
    Outcome::Pass
}

fn level_repend() -> Outcome {
    let g = gic();
    let i = SPI + 62;
    g.set_edge(0, i, false);
    SEEN.store(0, SeqCst);
    rt::set_hook(
        0,
        Some(|iar| {
            if SEEN.fetch_add(1, SeqCst) == 0 {
                let g = gic();
                g.pend(0, g.intid(iar));
            }
            false
        }),
    );
    spi_on(i, 0x80);
    g.pend(0, i);
    hw::irq_enable();
    let ok = wait_count(0, 2, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = CPUS[0].count.load(SeqCst);
    ensure!(ok && n == 2, "delivered {n} times, want 2");
    Outcome::Pass
}
