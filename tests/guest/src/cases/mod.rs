//! The conformance cases and what they share: the reset that runs before every case, the
//! interrupt numbers they use, polling helpers, and the exitless exit counters.
//!
//! Every case states an architectural rule (GICv3: IHI 0069, GICv2: IHI 0048B, the generic
//! timer: DDI 0487 D11, PSCI: DEN 0022) and checks it; nothing depends on an implementation
//! choice the specs leave open (priority bits, No1N, ...), so the native run is the reference
//! for the virtualized one. Cases that exist only under exitless (the exit counters) report
//! `# SKIP native` natively.

mod deliver;
mod dist;
mod hyp;
mod its;
pub mod pci;
mod psci;
pub mod timer;

use core::sync::atomic::Ordering::SeqCst;

use crate::gic::{self, Version};
use crate::hw::{self, msr};
use crate::rt::{self, CPUS, DOORBELL, gic, platform};
use crate::tap::{Case, Only, Outcome};

/// The first SPI the cases use (64 of them, clear of the devices of QEMU virt and exitless).
pub const SPI: u32 = 96;
/// SPIs the reset restores.
pub const SPI_COUNT: u32 = 64;
/// How long a case waits to conclude that something does NOT happen.
pub fn neg() -> u64 {
    hw::us(20_000)
}
/// How long a case waits for something that must happen.
pub fn pos() -> u64 {
    hw::us(2_000_000)
}

/// The default priority after reset.
pub const PRIO: u8 = 0xa0;

/// True when running under exitless (the vendor hypervisor Call UID is exitless's).
pub fn virt() -> bool {
    const UID: [u64; 4] = [0x8c82_d039, 0x5543_3eeb, 0xb7ee_5a96, 0x1e79_fb37];
    let r = rt::call(0x8600_ff01, 0, 0, 0);
    r == UID
}

/// The exit counters of this vCPU, in exitless's `ExitReason::ALL` order.
pub const REASONS: [&str; 11] = [
    "mmio",
    "mmio-undecodable",
    "hvc",
    "smc",
    "sysreg",
    "wfx",
    "irq",
    "fiq",
    "serror",
    "guest-fault",
    "undef",
];
pub const R_MMIO: usize = 0;
pub const R_HVC: usize = 2;
pub const R_SYSREG: usize = 4;
pub const R_IRQ: usize = 6;

/// Reads all exit counters (one HVC each, counted before it is answered).
pub fn exits() -> [u64; 11] {
    let mut out = [0; 11];
    for (i, o) in out.iter_mut().enumerate() {
        let r = rt::call(0x8600_0001, i as u64, 0, 0);
        *o = if r[0] == 0 { r[1] } else { u64::MAX };
    }
    out
}

/// Counter deltas `b - a` minus what reading the counters itself costs (measured once).
pub fn exit_delta(a: &[u64; 11], b: &[u64; 11]) -> [i64; 11] {
    static CAL: [core::sync::atomic::AtomicI64; 11] =
        [const { core::sync::atomic::AtomicI64::new(i64::MIN) }; 11];
    if CAL[0].load(SeqCst) == i64::MIN {
        let x = exits();
        let y = exits();
        for i in 0..11 {
            CAL[i].store(y[i] as i64 - x[i] as i64, SeqCst);
        }
    }
    let mut d = [0; 11];
    for i in 0..11 {
        d[i] = b[i] as i64 - a[i] as i64 - CAL[i].load(SeqCst);
    }
    d
}

/// Prints the non-zero entries of an exit delta.
pub fn show_exits(what: &str, d: &[i64; 11]) {
    crate::print!("#   exits for {what}:");
    let mut any = false;
    for i in 0..11 {
        if d[i] != 0 {
            crate::print!(" {}={}", REASONS[i], d[i]);
            any = true;
        }
    }
    crate::println!("{}", if any { "" } else { " none" });
}

/// Acknowledges and completes everything pending for this CPU (interrupts masked).
pub fn drain() -> u32 {
    let g = gic();
    let mut n = 0;
    for _ in 0..256 {
        let iar = g.ack();
        if (1020..rt::LPI_MIN).contains(&g.intid(iar)) {
            break;
        }
        g.eoi(iar);
        if rt::me().split.load(SeqCst) {
            g.dir(iar);
        }
        n += 1;
    }
    n
}

/// Polls IAR (interrupts masked) until `want` interrupts were taken or `pos()` passes,
/// completing each; returns the raw IAR values in order.
pub fn poll(want: usize, out: &mut [u32]) -> usize {
    let g = gic();
    let mut n = 0;
    let end = hw::now() + pos();
    while n < want && n < out.len() && hw::now() < end {
        let iar = g.ack();
        if (1020..rt::LPI_MIN).contains(&g.intid(iar)) {
            continue;
        }
        out[n] = iar;
        n += 1;
        g.eoi(iar);
    }
    n
}

/// Resets the banked state of this CPU: SGIs/PPIs (but the doorbell) disabled, not pending,
/// not active, priority [`PRIO`]; PMR open, BPR minimal, EOImode 0; nothing left pending.
fn reset_cpu(_: u64) -> u64 {
    let g = gic();
    let c = hw::cpu();
    let secondary = c != 0;
    hw::irq_disable();
    msr!("cntv_ctl_el0", 0);
    msr!("cntp_ctl_el0", 0);
    let keep = if secondary { 1 << DOORBELL } else { 0 };
    let base = g.irq_base(c, 0);
    hw::write32(base + gic::GICD_ICENABLER, !keep);
    hw::write32(base + gic::GICD_ICPENDR, !keep);
    hw::write32(base + gic::GICD_ICACTIVER, !keep);
    if g.version == Version::V2 {
        // SGI pending state is per source: clear it through CPENDSGIR.
        for i in 0..4 {
            let mut v = 0xffff_ffffu32;
            if secondary && i == 3 {
                v &= 0x00ff_ffff; // leave the doorbell (SGI 15)
            }
            hw::write32(g.d(gic::GICD_CPENDSGIR + 4 * i), v);
        }
    }
    let p = u32::from_ne_bytes([PRIO; 4]);
    for i in 0..8 {
        hw::write32(base + gic::GICD_IPRIORITYR + 4 * i, p);
    }
    g.set_priority(c, DOORBELL, 0x40);
    if g.version == Version::V3 {
        hw::write32(base + gic::GICD_IGROUPR, 0xffff_ffff);
    }
    hw::dsb();
    rt::me().split.store(false, SeqCst);
    g.set_eoimode(false);
    g.set_pmr(0xff);
    g.set_bpr(0);
    drain();
    if g.rpr() & 0xff != 0xff {
        // An interrupt was left acknowledged: clear the active priorities.
        match g.version {
            Version::V3 => msr!("icc_ap1r0_el1", 0),
            Version::V2 => hw::write32(g.gicc + 0xd0, 0),
        }
    }
    rt::me().clear();
    rt::set_hook(c, None);
    if secondary {
        hw::irq_enable();
    }
    0
}

/// The state every case starts from: test SPIs disabled, idle, edge, priority [`PRIO`],
/// routed to CPU 0; every CPU reset by [`reset_cpu`]; interrupts masked on CPU 0.
pub fn reset() {
    let g = gic();
    hw::irq_disable();
    for c in 0..g.cpu_count {
        CPUS[c].hook.store(0, SeqCst);
    }
    for w in (SPI / 32)..((SPI + SPI_COUNT) / 32) {
        let w = w as usize * 4;
        hw::write32(g.d(gic::GICD_ICENABLER + w), !0);
        hw::write32(g.d(gic::GICD_ICPENDR + w), !0);
        hw::write32(g.d(gic::GICD_ICACTIVER + w), !0);
    }
    let p = u32::from_ne_bytes([PRIO; 4]);
    for i in (SPI / 4)..((SPI + SPI_COUNT) / 4) {
        hw::write32(g.d(gic::GICD_IPRIORITYR + 4 * i as usize), p);
    }
    for i in (SPI / 16)..((SPI + SPI_COUNT) / 16) {
        hw::write32(g.d(gic::GICD_ICFGR + 4 * i as usize), 0xaaaa_aaaa);
    }
    for i in SPI..SPI + SPI_COUNT {
        g.route(i, 0);
    }
    hw::dsb();
    for c in 0..g.cpu_count {
        if CPUS[c].online.load(SeqCst) {
            rt::run_on(c, reset_cpu, 0);
        }
    }
}

/// Runs the cases and prints TAP.
pub fn run() {
    let g = gic();
    let p = platform();
    let v = match g.version {
        Version::V2 => Only::V2,
        Version::V3 => Only::V3,
    };
    let what = match (g.version, virt()) {
        (Version::V2, false) => "gicv2, native",
        (Version::V2, true) => "gicv2, virtualized",
        (Version::V3, false) => "gicv3, native",
        (Version::V3, true) => "gicv3, virtualized",
    };
    crate::println!(
        "# exitless-guest: {what}, {} CPUs, {} INTIDs, timer PPIs {}/{}, counter {} Hz",
        p.cpu_count,
        g.lines,
        p.ptimer,
        p.vtimer,
        hw::freq()
    );
    let mut all: [Option<&Case>; 128] = [None; 128];
    let mut n = 0;
    for list in [
        dist::CASES,
        deliver::CASES,
        timer::CASES,
        psci::CASES,
        its::CASES,
        pci::CASES,
        hyp::CASES,
    ] {
        for c in list {
            all[n] = Some(c);
            n += 1;
        }
    }
    let mut cases: [Case; 128] = [const {
        Case {
            group: "",
            name: "",
            only: Only::Both,
            f: none,
        }
    }; 128];
    for i in 0..n {
        let c = all[i].unwrap();
        cases[i] = Case {
            group: c.group,
            name: c.name,
            only: c.only,
            f: c.f,
        };
    }
    crate::tap::run(&cases[..n], v, what, reset);
    reset();
}

fn none() -> Outcome {
    Outcome::Skip("empty")
}

/// Unmasks interrupts on CPU 0 and waits until CPU `c` logged `n` interrupts (or timeout).
pub fn wait_count(c: usize, n: u32, t: u64) -> bool {
    hw::wait_until(t, || CPUS[c].count.load(SeqCst) >= n)
}

/// A helper for cases that need a secondary: the second CPU if there is one.
pub fn other() -> Option<usize> {
    (gic().cpu_count > 1).then_some(1)
}
