//! The EL1 virtual timer (DDI 0487 D11.2, CNTV_CTL_EL0 / CNTV_CVAL_EL0 / CNTV_TVAL_EL0) and
//! its PPI: it fires at the programmed count, IMASK holds it off, it can be re-armed from its
//! handler, and its level shows in the redistributor's pending bits.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use super::{neg, pos, wait_count};
use crate::hw::{self, mrs, msr};
use crate::rt::{self, CPUS, gic, platform};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

pub const CASES: &[Case] = &[
    Case {
        group: "timer",
        name: "the virtual timer fires at the programmed CVAL, not before",
        only: Only::Both,
        f: fires_at_cval,
    },
    Case {
        group: "timer",
        name: "IMASK holds a due timer off (ISTATUS = 1); unmasking delivers it",
        only: Only::Both,
        f: imask,
    },
    Case {
        group: "timer",
        name: "re-armed from its handler, it fires 5 times, each at its CVAL",
        only: Only::Both,
        f: rearm,
    },
    Case {
        group: "timer",
        name: "TVAL sets CVAL = now + TVAL and counts down",
        only: Only::Both,
        f: tval,
    },
    Case {
        group: "timer",
        name: "a disabled timer never fires",
        only: Only::Both,
        f: disabled,
    },
    Case {
        group: "timer",
        name: "its PPI reads pending while the timer condition holds and the PPI is disabled",
        only: Only::Both,
        f: ppi_pending,
    },
    Case {
        group: "timer",
        name: "its PPI stops being pending when the condition goes away",
        only: Only::Both,
        f: ppi_level_drops,
    },
];

const ENABLE: u64 = 1;
const IMASK: u64 = 2;
const ISTATUS: u64 = 4;

fn vtimer() -> u32 {
    platform().vtimer
}

/// Enables the virtual timer's PPI on CPU 0.
fn ppi_on() {
    let g = gic();
    g.set_priority(0, vtimer(), 0x80);
    g.enable(0, vtimer());
}

fn fires_at_cval() -> Outcome {
    ppi_on();
    let cval = hw::now() + hw::us(2_000);
    msr!("cntv_cval_el0", cval);
    msr!("cntv_ctl_el0", ENABLE);
    hw::irq_enable();
    let ok = wait_count(0, 1, pos());
    hw::irq_disable();
    let t = CPUS[0].time[0].load(SeqCst);
    let id = gic().intid(CPUS[0].iar[0].load(SeqCst));
    diag!("entered {} ticks after CVAL", t.wrapping_sub(cval) as i64);
    ensure!(ok, "no interrupt");
    ensure!(id == vtimer(), "INTID {id}");
    ensure!(t >= cval, "entered {} ticks early", cval - t);
    Outcome::Pass
}

fn imask() -> Outcome {
    ppi_on();
    msr!("cntv_cval_el0", hw::now());
    msr!("cntv_ctl_el0", ENABLE | IMASK);
    hw::irq_enable();
    hw::delay(neg());
    let early = CPUS[0].count.load(SeqCst);
    let ctl = mrs!("cntv_ctl_el0");
    msr!("cntv_ctl_el0", ENABLE);
    let ok = wait_count(0, 1, pos());
    hw::irq_disable();
    ensure!(early == 0, "delivered while IMASK was set");
    ensure!(
        ctl & ISTATUS != 0,
        "ISTATUS is 0 with the condition met: {ctl:#x}"
    );
    ensure!(ok, "not delivered after clearing IMASK");
    Outcome::Pass
}

static PERIOD: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU32 = AtomicU32::new(0);
static LIMIT: AtomicU32 = AtomicU32::new(5);
static CVALS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Makes CPU 0's handler re-arm the timer `period` ticks after each CVAL, `limit` times.
pub fn rearm_setup(period: u64, limit: u32) {
    PERIOD.store(period, SeqCst);
    FIRED.store(0, SeqCst);
    LIMIT.store(limit, SeqCst);
    rt::set_hook(0, Some(rearm_hook));
}

/// Re-arms the timer `PERIOD` after its CVAL (or after now, if the handler ran so late that
/// this is already past) until `LIMIT` interrupts, then disables it.
///
/// The new CVAL is always in the future, so the timer line drops before the EOI. QEMU's GICv2
/// model needs that under a hypervisor: when a guest's EOI deactivates a linked physical
/// interrupt (LR HW bit) whose line is still asserted, it updates only the virtual CPU
/// interface, so the physical interrupt stays pending unsignalled until the next event that
/// makes QEMU re-evaluate the physical GIC (a real GIC-400 signals it). On a loaded machine a
/// handler entered more than a period late used to hit that and stall the timer.
pub fn rearm_hook(_: u32) -> bool {
    let n = FIRED.fetch_add(1, SeqCst) + 1;
    let period = PERIOD.load(SeqCst);
    let next = (mrs!("cntv_cval_el0") + period).max(hw::now() + period);
    if (n as usize) < CVALS.len() {
        CVALS[n as usize].store(next, SeqCst);
    }
    if n < LIMIT.load(SeqCst) {
        msr!("cntv_cval_el0", next);
    } else {
        msr!("cntv_ctl_el0", 0);
    }
    false
}

fn rearm() -> Outcome {
    ppi_on();
    rearm_setup(hw::us(1_000), 5);
    let cval = hw::now() + hw::us(1_000);
    CVALS[0].store(cval, SeqCst);
    msr!("cntv_cval_el0", cval);
    msr!("cntv_ctl_el0", ENABLE);
    hw::irq_enable();
    let ok = wait_count(0, 5, pos());
    hw::delay(neg());
    hw::irq_disable();
    let n = CPUS[0].count.load(SeqCst);
    ensure!(ok && n == 5, "fired {n} times, want 5");
    for k in 0..5 {
        let t = CPUS[0].time[k].load(SeqCst);
        let c = CVALS[k].load(SeqCst);
        ensure!(
            t >= c,
            "interrupt {k} entered {} ticks before its CVAL",
            c - t
        );
    }
    Outcome::Pass
}

fn tval() -> Outcome {
    let d = hw::us(100_000);
    let before = hw::now();
    msr!("cntv_tval_el0", d);
    let after = hw::now();
    let cval = mrs!("cntv_cval_el0");
    let t1 = mrs!("cntv_tval_el0") as i32;
    hw::delay(hw::us(1_000));
    let t2 = mrs!("cntv_tval_el0") as i32;
    ensure!(
        cval >= before + d && cval <= after + d,
        "CVAL {cval} not in [{}, {}]",
        before + d,
        after + d
    );
    ensure!(t2 < t1 && t1 as u64 <= d, "TVAL {t1} then {t2}");
    Outcome::Pass
}

fn disabled() -> Outcome {
    ppi_on();
    msr!("cntv_cval_el0", 0);
    msr!("cntv_ctl_el0", 0);
    hw::irq_enable();
    hw::delay(neg());
    hw::irq_disable();
    ensure!(CPUS[0].count.load(SeqCst) == 0, "a disabled timer fired");
    Outcome::Pass
}

fn ppi_pending() -> Outcome {
    let g = gic();
    msr!("cntv_cval_el0", 0);
    msr!("cntv_ctl_el0", ENABLE);
    let ok = hw::wait_until(pos(), || g.is_pending(0, vtimer()));
    msr!("cntv_ctl_el0", 0);
    ensure!(
        ok,
        "the PPI does not read pending while the timer condition holds"
    );
    Outcome::Pass
}

fn ppi_level_drops() -> Outcome {
    let g = gic();
    msr!("cntv_cval_el0", 0);
    msr!("cntv_ctl_el0", ENABLE);
    let was = hw::wait_until(pos(), || g.is_pending(0, vtimer()));
    msr!("cntv_ctl_el0", ENABLE | IMASK);
    let gone = hw::wait_until(pos(), || !g.is_pending(0, vtimer()));
    // And it is not delivered once enabled, since the line is low.
    ppi_on();
    hw::irq_enable();
    hw::delay(neg());
    hw::irq_disable();
    msr!("cntv_ctl_el0", 0);
    let n = CPUS[0].count.load(SeqCst);
    ensure!(was, "never pending");
    ensure!(gone, "still pending after IMASK dropped the line");
    ensure!(n == 0, "delivered {n} times after the line dropped");
    Outcome::Pass
}
