//! Benchmarks (`exitless.bench` on the command line): what interrupt operations cost, in ticks
//! of the virtual counter (CNTVCT_EL0), natively and under exitless. Meant for QEMU's
//! `-icount shift=0`, where every instruction takes 1 ns of virtual time and the counter (62.5
//! MHz on virt) ticks every 16 instructions, hypervisor instructions included: the numbers are
//! deterministic and comparable between the two runs.
//!
//! Each operation prints one line that scripts/bench.py parses:
//! `bench op=NAME n=N min=.. p10=.. p50=.. p90=.. max=.. exits=E.EE detail=reason:E.EE,...`
//! in nanoseconds of virtual time (the counter's ticks scaled by its frequency: under
//! `-icount shift=0` that is instructions executed, 16 per tick), where `exits` is the exits per
//! operation read from exitless's counters (`-` natively). Cheap operations are timed `BATCH`
//! at a time and divided, for a resolution finer than one tick.

use core::sync::atomic::Ordering::SeqCst;

use crate::cases::{self, REASONS, SPI, exit_delta, exits, virt};
use crate::gic::{self, Target};
use crate::hw::{self, msr};
use crate::rt::{self, CPUS, gic, platform};
use crate::{print, println};

/// Iterations per operation (after `WARMUP` untimed ones).
const N: usize = 200;
const WARMUP: usize = 10;
/// Operations per sample for the cheap ones.
const BATCH: u64 = 4;

/// Counter ticks to nanoseconds of virtual time, per operation of a batch of `k`.
fn ns(ticks: u64, k: u64) -> u64 {
    ticks * 1_000_000_000 / hw::freq() / k
}

/// Exits per operation, in hundredths, by reason.
type Exits = [i64; 11];

fn report(op: &str, s: &mut [u64; N], e: Option<Exits>) {
    s.sort_unstable();
    let pct = |p: usize| s[(N - 1) * p / 100];
    print!(
        "bench op={op} n={N} min={} p10={} p50={} p90={} max={}",
        s[0],
        pct(10),
        pct(50),
        pct(90),
        s[N - 1]
    );
    match e {
        None => println!(" exits=- detail=-"),
        Some(e) => {
            let total: i64 = e.iter().sum();
            print!(" exits={}.{:02} detail=", total / 100, total % 100);
            let mut first = true;
            for i in 0..11 {
                if e[i] != 0 {
                    print!(
                        "{}{}:{}.{:02}",
                        if first { "" } else { "," },
                        REASONS[i],
                        e[i] / 100,
                        e[i] % 100
                    );
                    first = false;
                }
            }
            println!("{}", if first { "none" } else { "" });
        }
    }
}

/// Exit counters of this CPU, or zeros natively.
fn snap() -> [u64; 11] {
    if virt() { exits() } else { [0; 11] }
}

/// Per-operation exits (hundredths) between two snapshots over `n` operations, minus `minus`.
fn per_op(a: &[u64; 11], b: &[u64; 11], n: usize, minus: &Exits) -> Option<Exits> {
    if !virt() {
        return None;
    }
    let d = exit_delta(a, b);
    let mut out = [0; 11];
    for i in 0..11 {
        out[i] = (d[i] * 100 / n as i64 - minus[i]).max(0);
    }
    Some(out)
}

/// Exit counters of CPU `c`, read there.
fn snap_on(c: usize) -> [u64; 11] {
    let mut out = [0u64; 11];
    for (i, o) in out.iter_mut().enumerate() {
        *o = rt::run_on(c, |i| rt::call(0x8600_0001, i, 0, 0)[1], i as u64).unwrap_or(0);
    }
    out
}

/// An operation `exitless.loop=OP` repeats ([`repeat`]): a profile of exitless (scripts/profile.py
/// --loop) then shows what one such exit costs, function by function.
#[derive(Clone, Copy, Debug)]
pub enum LoopOp {
    /// A null hypercall (vendor Call Count).
    Hvc,
    /// A distributor register read (GICD_ISENABLER1).
    GicdRead,
    /// An SGI to self, sent and taken.
    SgiSelf,
    /// The virtual timer programmed to fire at once, and taken.
    Vtimer,
}

/// How many times [`repeat`] does its operation.
pub const LOOP_COUNT: u32 = 20_000;

impl LoopOp {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hvc" => Some(LoopOp::Hvc),
            "gicd-read" => Some(LoopOp::GicdRead),
            "sgi-self" => Some(LoopOp::SgiSelf),
            "vtimer" => Some(LoopOp::Vtimer),
            _ => None,
        }
    }
}

/// Does `op` [`LOOP_COUNT`] times and says so.
pub fn repeat(op: LoopOp) {
    let g = gic();
    match op {
        LoopOp::SgiSelf => {
            g.enable(0, 1);
            hw::irq_enable();
        }
        LoopOp::Vtimer => {
            g.set_priority(0, platform().vtimer, 0x80);
            g.enable(0, platform().vtimer);
            hw::irq_enable();
        }
        _ => {}
    }
    for _ in 0..LOOP_COUNT {
        match op {
            LoopOp::Hvc => {
                core::hint::black_box(rt::call(0x8600_ff00, 0, 0, 0));
            }
            LoopOp::GicdRead => {
                core::hint::black_box(hw::read32(g.d(gic::GICD_ISENABLER + 4)));
            }
            LoopOp::SgiSelf => {
                let n0 = CPUS[0].count.load(SeqCst);
                g.sgi(1, Target::Cpus(1));
                while CPUS[0].count.load(SeqCst) == n0 {}
            }
            LoopOp::Vtimer => {
                let n0 = CPUS[0].count.load(SeqCst);
                msr!("cntv_cval_el0", hw::now());
                msr!("cntv_ctl_el0", 1);
                while CPUS[0].count.load(SeqCst) == n0 {}
            }
        }
    }
    hw::irq_disable();
    println!("exitless-guest loop done: {op:?} x {LOOP_COUNT}");
}

pub fn run() {
    let g = gic();
    let v = virt();
    println!(
        "# exitless-guest bench: {}, {}, {} CPUs, counter {} Hz, {N} iterations",
        if g.version == gic::Version::V3 {
            "gicv3"
        } else {
            "gicv2"
        },
        if v { "virtualized" } else { "native" },
        g.cpu_count,
        hw::freq()
    );
    cases::reset();
    if v {
        // Calibrate the counter reads before anything is measured.
        let a = exits();
        let _ = exit_delta(&a, &a);
    }
    let zero = [0; 11];
    let mut s = [0u64; N];

    // Two counter reads with nothing between: the measuring overhead.
    for x in s.iter_mut() {
        let t0 = hw::now();
        let t1 = hw::now();
        *x = ns(t1 - t0, 1);
    }
    report("null", &mut s, v.then_some(zero));

    // SGI to self: send to handler entry, and the round trip back to the sender after EOI.
    g.enable(0, 1);
    hw::irq_enable();
    let mut rtt = [0u64; N];
    let a = snap();
    for i in 0..N + WARMUP {
        let n0 = CPUS[0].count.load(SeqCst);
        let t0 = hw::now();
        g.sgi(1, Target::Cpus(1));
        while CPUS[0].count.load(SeqCst) == n0 {}
        let t1 = hw::now();
        if i >= WARMUP {
            s[i - WARMUP] = ns(CPUS[0].last.load(SeqCst) - t0, 1);
            rtt[i - WARMUP] = ns(t1 - t0, 1);
        }
    }
    let b = snap();
    hw::irq_disable();
    let e = per_op(&a, &b, N + WARMUP, &zero);
    report("sgi-self-entry", &mut s, e);
    report("sgi-self-roundtrip", &mut rtt, e);

    // SGI to another CPU, waiting in WFI: send to its handler entry.
    if g.cpu_count > 1 {
        cases::reset();
        g.enable(1, 2);
        if g.version == gic::Version::V2 {
            rt::run_on(
                1,
                |_| {
                    gic().enable(hw::cpu(), 2);
                    0
                },
                0,
            );
        }
        let r0 = if v { snap_on(1) } else { zero_u() };
        let r1 = if v { snap_on(1) } else { zero_u() };
        let a = snap();
        for i in 0..N + WARMUP {
            let n0 = CPUS[1].count.load(SeqCst);
            // Let it go back to WFI (yielding: under -icount the CPUs run round-robin).
            hw::wait_other(hw::us(20), || false);
            let t0 = hw::now();
            g.sgi(2, Target::Cpus(1 << 1));
            while CPUS[1].count.load(SeqCst) == n0 {
                hw::wfe();
            }
            if i >= WARMUP {
                s[i - WARMUP] = ns(CPUS[1].last.load(SeqCst) - t0, 1);
            }
        }
        let b = snap();
        let r2 = if v { snap_on(1) } else { zero_u() };
        let e = per_op(&a, &b, N + WARMUP, &zero).map(|mut e| {
            // The receiver's exits, minus what reading its counters costs (r1 - r0).
            for k in 0..11 {
                let d = (r2[k] as i64 - r1[k] as i64) - (r1[k] as i64 - r0[k] as i64);
                e[k] += (d * 100 / (N + WARMUP) as i64).max(0);
            }
            e
        });
        report("sgi-remote-entry", &mut s, e);
    }

    // Virtual timer: programmed CVAL to handler entry.
    cases::reset();
    let vt = platform().vtimer;
    g.set_priority(0, vt, 0x80);
    g.enable(0, vt);
    hw::irq_enable();
    let a = snap();
    for i in 0..N + WARMUP {
        let n0 = CPUS[0].count.load(SeqCst);
        let cval = hw::now() + hw::us(50);
        msr!("cntv_cval_el0", cval);
        msr!("cntv_ctl_el0", 1);
        while CPUS[0].count.load(SeqCst) == n0 {}
        if i >= WARMUP {
            s[i - WARMUP] = ns(CPUS[0].last.load(SeqCst) - cval, 1);
        }
    }
    let b = snap();
    hw::irq_disable();
    report("vtimer-entry", &mut s, per_op(&a, &b, N + WARMUP, &zero));

    // A device's MSI (QEMU's edu behind the PCIe bridge, GICv3 with an ITS): the write that
    // raises it (BAR0 + 0x60) to the LPI handler's entry.
    if let Ok((f, bar, _lpi)) = cases::pci::edu_msi_setup() {
        hw::irq_enable();
        let a = snap();
        for i in 0..N + WARMUP {
            let n0 = CPUS[0].count.load(SeqCst);
            let t0 = hw::now();
            hw::write32(bar + 0x60, 1);
            while CPUS[0].count.load(SeqCst) == n0 {}
            hw::write32(bar + 0x64, 1);
            if i >= WARMUP {
                s[i - WARMUP] = ns(CPUS[0].last.load(SeqCst) - t0, 1);
            }
        }
        let b = snap();
        hw::irq_disable();
        cases::pci::edu_msi_teardown(&f);
        report("msi-entry", &mut s, per_op(&a, &b, N + WARMUP, &zero));
    }

    // IAR + EOI of pending SPIs: BATCH (<= 4, the list registers) made pending at once,
    // untimed, interrupts masked; then BATCH acknowledge + EOI pairs timed.
    cases::reset();
    let w = gic::GICD_ISPENDR + (SPI as usize + 1) / 32 * 4;
    let bits = ((1u32 << BATCH) - 1) << ((SPI + 1) % 32);
    for k in 0..BATCH as u32 {
        g.set_priority(0, SPI + 1 + k, 0x80);
        g.enable(0, SPI + 1 + k);
    }
    let a = snap();
    for i in 0..N + WARMUP {
        hw::write32(g.d(w), bits);
        hw::dsb();
        while g.intid(g.hppir()) != SPI + 1 {}
        let t0 = hw::now();
        for _ in 0..BATCH {
            let iar = g.ack();
            g.eoi(iar);
        }
        let t1 = hw::now();
        if i >= WARMUP {
            s[i - WARMUP] = ns(t1 - t0, BATCH);
        }
    }
    let b = snap();
    // What making them pending cost (one write each time), measured alone.
    let c = snap();
    for _ in 0..N + WARMUP {
        hw::write32(g.d(w), bits);
    }
    let d = snap();
    cases::drain();
    let setup = per_op(&c, &d, N + WARMUP, &zero);
    let full = per_op(&a, &b, N + WARMUP, &zero).map(|mut f| {
        for k in 0..11 {
            f[k] = (f[k] - setup.map_or(0, |e| e[k])).max(0) / BATCH as i64;
        }
        f
    });
    report("iar-eoi", &mut s, full);

    // A distributor register read (trapped and emulated under exitless).
    let a = snap();
    for i in 0..N + WARMUP {
        let t0 = hw::now();
        for _ in 0..BATCH {
            core::hint::black_box(hw::read32(g.d(gic::GICD_ISENABLER + 4)));
        }
        let t1 = hw::now();
        if i >= WARMUP {
            s[i - WARMUP] = ns(t1 - t0, BATCH);
        }
    }
    let b = snap();
    report(
        "gicd-read",
        &mut s,
        per_op(&a, &b, (N + WARMUP) * BATCH as usize, &zero),
    );

    // A null hypercall (vendor Call Count: NOT_SUPPORTED both ways) and PSCI_VERSION.
    for (name, f) in [
        ("null-hvc", 0x8600_ff00u32),
        ("psci-version", rt::PSCI_VERSION),
    ] {
        let a = snap();
        for i in 0..N + WARMUP {
            let t0 = hw::now();
            for _ in 0..BATCH {
                core::hint::black_box(rt::call(f, 0, 0, 0));
            }
            let t1 = hw::now();
            if i >= WARMUP {
                s[i - WARMUP] = ns(t1 - t0, BATCH);
            }
        }
        let b = snap();
        report(
            name,
            &mut s,
            per_op(&a, &b, (N + WARMUP) * BATCH as usize, &zero),
        );
    }
    cases::reset();
    println!("# exitless-guest bench done");
}

fn zero_u() -> [u64; 11] {
    [0; 11]
}
