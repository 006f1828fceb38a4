//! What costs an exit under exitless, read from its exit counters (the vendor hypervisor call
//! HYP_GET_EXIT_COUNTERS). These cases are meaningful only virtualized (`# SKIP native`).
//!
//! By design, acknowledging, completing and deactivating interrupts and writing the priority
//! mask run on the GIC's virtual CPU interface without an exit; so do the virtual timer
//! interrupt's acknowledge, EOI and re-arm. Its delivery does cost one exit: the timer's PPI
//! fires physically (at EL2) and exitless injects it through a list register with the HW bit.
//! Distributor accesses and SGI sends trap by design (one exit each).

use core::sync::atomic::Ordering::SeqCst;

use super::{R_HVC, R_IRQ, R_MMIO, R_SYSREG, SPI, exit_delta, exits, pos, show_exits, virt};
use crate::gic::{self, Target, Version};
use crate::hw::{self, mrs, msr};
use crate::rt::{self, CPUS, gic, platform};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

pub const CASES: &[Case] = &[
    Case {
        group: "hyp",
        name: "vendor hypervisor Call UID identifies exitless",
        only: Only::Both,
        f: uid,
    },
    Case {
        group: "hyp",
        name: "reading the exit counters costs one HVC exit per read, nothing else",
        only: Only::Both,
        f: calibration,
    },
    Case {
        group: "hyp",
        name: "IAR + EOI of 20 interrupts: 0 exits",
        only: Only::Both,
        f: iar_eoi,
    },
    Case {
        group: "hyp",
        name: "EOImode=1: IAR + EOI + DIR of 12 interrupts: 0 exits (GICv3), 1 per DIR (GICv2)",
        only: Only::Both,
        f: dir,
    },
    Case {
        group: "hyp",
        name: "400 PMR/BPR writes and PMR/RPR/HPPIR reads: 0 exits",
        only: Only::Both,
        f: pmr,
    },
    Case {
        group: "hyp",
        name: "virtual timer x10: ack/EOI/re-arm 0 exits, delivery 1 IRQ exit each",
        only: Only::Both,
        f: timer,
    },
    Case {
        group: "hyp",
        name: "a distributor read costs exactly one MMIO exit (trapped by design)",
        only: Only::Both,
        f: gicd_read,
    },
    Case {
        group: "hyp",
        name: "sending an SGI costs exactly one exit (trapped by design)",
        only: Only::Both,
        f: sgi_send,
    },
];

macro_rules! virt_only {
    () => {
        if !virt() {
            return Outcome::Skip("native");
        }
    };
}

fn uid() -> Outcome {
    virt_only!();
    let r = rt::call(0x8600_ff03, 0, 0, 0);
    diag!("exitless hypercall revision {}.{}", r[0], r[1]);
    Outcome::Pass
}

fn calibration() -> Outcome {
    virt_only!();
    let a = exits();
    let b = exits();
    let c = exits();
    for i in 0..11 {
        let d1 = b[i] - a[i];
        let d2 = c[i] - b[i];
        let want = if i == R_HVC { 11 } else { 0 };
        ensure!(
            d1 == want && d2 == want,
            "{}: {d1} then {d2}, want {want}",
            super::REASONS[i]
        );
    }
    Outcome::Pass
}

fn zero(d: &[i64; 11]) -> bool {
    d.iter().all(|&x| x == 0)
}

/// Pends `n` (<= 4, the list registers) SPIs from SPI + 40 and waits until IAR can see them.
fn pend_batch(n: u32) {
    let g = gic();
    let w = (SPI as usize + 40) / 32 * 4;
    hw::write32(
        g.d(gic::GICD_ISPENDR + w),
        ((1 << n) - 1) << ((SPI + 40) % 32),
    );
    hw::dsb();
}

fn iar_eoi() -> Outcome {
    virt_only!();
    let g = gic();
    for k in 0..4 {
        g.set_priority(0, SPI + 40 + k, 0x40 + 0x10 * k as u8);
        g.enable(0, SPI + 40 + k);
    }
    let mut total = [0i64; 11];
    let mut taken = 0;
    for _ in 0..5 {
        pend_batch(4);
        let a = exits();
        for _ in 0..4 {
            let end = hw::now() + pos();
            while hw::now() < end {
                let v = g.ack();
                if g.intid(v) < 1020 {
                    g.eoi(v);
                    taken += 1;
                    break;
                }
            }
        }
        let b = exits();
        let d = exit_delta(&a, &b);
        for i in 0..11 {
            total[i] += d[i];
        }
    }
    show_exits("20 x (IAR + EOI)", &total);
    ensure!(taken == 20, "took {taken} of 20");
    ensure!(zero(&total), "exits taken");
    Outcome::Pass
}

fn dir() -> Outcome {
    virt_only!();
    let g = gic();
    g.set_eoimode(true);
    rt::me().split.store(true, SeqCst);
    for k in 0..3 {
        g.set_priority(0, SPI + 40 + k, 0x40 + 0x10 * k as u8);
        g.enable(0, SPI + 40 + k);
    }
    let mut total = [0i64; 11];
    let mut taken = 0;
    for _ in 0..4 {
        pend_batch(3);
        let a = exits();
        let mut iars = [0u32; 3];
        let mut n = 0;
        let end = hw::now() + pos();
        while n < 3 && hw::now() < end {
            let v = g.ack();
            if g.intid(v) < 1020 {
                g.eoi(v);
                iars[n] = v;
                n += 1;
            }
        }
        for &v in &iars[..n] {
            g.dir(v);
        }
        taken += n;
        let b = exits();
        let d = exit_delta(&a, &b);
        for i in 0..11 {
            total[i] += d[i];
        }
    }
    g.set_eoimode(false);
    show_exits("12 x (IAR + EOI + DIR)", &total);
    ensure!(taken == 12, "took {taken} of 12");
    if g.version == Version::V2 {
        // A vGICv2's GICC_DIR page always traps (as in KVM), so that a DIR can deactivate an
        // SPI in another vCPU's list register; IAR and EOI stay exit-free.
        let mut others = total;
        others[R_MMIO] = 0;
        ensure!(
            total[R_MMIO] == 12 && zero(&others),
            "want exactly the 12 DIRs to exit"
        );
    } else {
        ensure!(zero(&total), "exits taken");
    }
    Outcome::Pass
}

fn pmr() -> Outcome {
    virt_only!();
    let g = gic();
    let a = exits();
    let mut acc = 0u32;
    for k in 0..100u32 {
        g.set_pmr(0x80 + (k % 8) * 0x10);
        acc = acc.wrapping_add(g.pmr());
        g.set_bpr(k % 4);
        acc = acc.wrapping_add(g.rpr()).wrapping_add(g.hppir());
        g.set_pmr(0xff);
        g.set_bpr(0);
    }
    let b = exits();
    let d = exit_delta(&a, &b);
    show_exits(
        "100 x (2 PMR writes, 2 BPR writes, PMR/RPR/HPPIR reads)",
        &d,
    );
    diag!("(checksum {acc:#x})");
    ensure!(zero(&d), "exits taken");
    Outcome::Pass
}

fn timer() -> Outcome {
    virt_only!();
    let g = gic();
    let vt = platform().vtimer;
    g.set_priority(0, vt, 0x80);
    g.enable(0, vt);
    super::timer::rearm_setup(hw::us(2_000), 10);
    let a = exits();
    msr!("cntv_cval_el0", hw::now() + hw::us(2_000));
    msr!("cntv_ctl_el0", 1);
    hw::irq_enable();
    let ok = super::wait_count(0, 10, pos());
    hw::irq_disable();
    let b = exits();
    let d = exit_delta(&a, &b);
    show_exits(
        "10 virtual timer interrupts (delivery, ack, EOI, re-arm)",
        &d,
    );
    let n = CPUS[0].count.load(SeqCst) as i64;
    if !(ok && n == 10) {
        diag!(
            "now {:#x} cval {:#x} ctl {:#x}; 27 enabled {} pending {} active {}; rpr {:#x} hppir {:#x} pmr {:#x}",
            hw::now(),
            mrs!("cntv_cval_el0"),
            mrs!("cntv_ctl_el0"),
            g.is_enabled(0, vt),
            g.is_pending(0, vt),
            g.is_active(0, vt),
            g.rpr(),
            g.hppir(),
            g.pmr()
        );
    }
    ensure!(ok && n == 10, "fired {n} times");
    // Writing CNTV_CVAL/CTL to arm the first one is part of the measurement: no exit either.
    for i in 0..11 {
        let want = if i == R_IRQ { n } else { 0 };
        ensure!(
            d[i] == want,
            "{} exits: {}, want {want}",
            super::REASONS[i],
            d[i]
        );
    }
    Outcome::Pass
}

fn gicd_read() -> Outcome {
    virt_only!();
    let g = gic();
    let a = exits();
    let v = hw::read32(g.d(gic::GICD_TYPER));
    let b = exits();
    let d = exit_delta(&a, &b);
    show_exits("one GICD_TYPER read", &d);
    let _ = v;
    for i in 0..11 {
        let want = (i == R_MMIO) as i64;
        ensure!(d[i] == want, "{}: {}", super::REASONS[i], d[i]);
    }
    Outcome::Pass
}

fn sgi_send() -> Outcome {
    virt_only!();
    let g = gic();
    g.enable(0, 11);
    let a = exits();
    g.sgi(11, Target::Cpus(1));
    let b = exits();
    let d = exit_delta(&a, &b);
    let mut got = [0u32; 1];
    super::poll(1, &mut got);
    show_exits("one SGI to self", &d);
    let reason = if g.version == Version::V3 {
        R_SYSREG
    } else {
        R_MMIO
    };
    for i in 0..11 {
        let want = (i == reason) as i64;
        ensure!(d[i] == want, "{}: {}", super::REASONS[i], d[i]);
    }
    ensure!(g.intid(got[0]) == 11, "the SGI was not delivered");
    Outcome::Pass
}
