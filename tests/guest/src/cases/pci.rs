//! A PCI device the guest owns: QEMU's `edu` (vendor 0x1234, device 0x11e8; QEMU
//! docs/specs/edu.txt) behind the generic PCIe bridge, found through ECAM, its BAR0 placed in
//! the bridge's 32-bit window. Natively the guest owns QEMU's bridge; under exitless a VM with
//! `pci = true` owns the host's, mapped 1:1.

use crate::cases::{R_IRQ, exit_delta, exits, neg, other, pos, show_exits, virt, wait_count};
use crate::its::{self as c, PROP_OFF, PROP_ON};
use crate::pci::{self, Func};
use crate::rt::{self, CPUS, gic, platform};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure, hw};

pub const CASES: &[Case] = &[
    Case {
        group: "pci",
        name: "the edu device is found through ECAM and its BAR0 identification register reads 0x010000ed",
        only: Only::V3,
        f: edu_found,
    },
    Case {
        group: "pci",
        name: "1000 MSIs from edu, mapped with MAPD/MAPTI of its requester ID, are 1000 LPIs, each taken once (virtualized: 1 exit each, 0 injected directly)",
        only: Only::V3,
        f: edu_msi,
    },
    Case {
        group: "pci",
        name: "edu's MSI: DISCARD stops its delivery, a new MAPTI brings it back",
        only: Only::V3,
        f: edu_discard,
    },
    Case {
        group: "pci",
        name: "edu's MSI: MOVI to another CPU's collection delivers it there, not on CPU 0",
        only: Only::V3,
        f: edu_movi,
    },
    Case {
        group: "pci",
        name: "edu's MSI: disabled in the property table + INV it is not taken; enabled + INV it is",
        only: Only::V3,
        f: edu_inv,
    },
    Case {
        group: "pci",
        name: "INT on edu's event raises its LPI, CLEAR withdraws it before it is taken",
        only: Only::V3,
        f: edu_int_clear,
    },
    Case {
        group: "pci",
        name: "edu's MSI to a CPU that is off (PSCI CPU_OFF) waits, and is taken there once after CPU_ON",
        only: Only::V3,
        f: edu_cpu_off,
    },
];

/// edu's identification register (BAR0 + 0): major 1, minor 0, 0xed.
const EDU_ID: u32 = 0x0100_00ed;

/// The edu function and its BAR0, set up; `Err` skips the case.
pub fn edu() -> Result<(Func, usize), Outcome> {
    let p = platform();
    if p.pci_ecam == 0 || p.pci_mmio32 == 0 {
        return Err(Outcome::Skip("no PCIe bridge in the device tree"));
    }
    let f = pci::find(p.pci_ecam, 0x1234, 0x11e8)
        .ok_or(Outcome::Skip("no edu device (QEMU -device edu)"))?;
    let bar = f.enable_bar0(p.pci_mmio32);
    Ok((f, bar))
}

fn edu_found() -> Outcome {
    let (f, bar) = match edu() {
        Ok(x) => x,
        Err(o) => return o,
    };
    diag!(
        "edu at 00:{:02x}.{} (requester ID {:#x}), BAR0 at {bar:#x}",
        f.dev,
        f.func,
        f.rid()
    );
    let id = hw::read32(bar);
    ensure!(id == EDU_ID, "BAR0 + 0 reads {id:#x}, want {EDU_ID:#x}");
    // The liveness register returns the complement of what was written.
    hw::write32(bar + 4, 0x1234_5678);
    let live = hw::read32(bar + 4);
    ensure!(live == !0x1234_5678, "liveness register {live:#x}");
    Outcome::Pass
}

/// Raises one MSI (BAR0 + 0x60: "raise interrupt"), takes it on CPU 0 by polling, and lowers
/// it (BAR0 + 0x64: "interrupt acknowledge"); the INTID taken, if any.
fn one_msi(bar: usize) -> Option<u32> {
    hw::write32(bar + 0x60, 1);
    let got = take(pos());
    hw::write32(bar + 0x64, 1);
    got
}

/// edu with its MSI mapped to a fresh LPI on CPU 0's collection: (function, BAR0, LPI).
pub fn edu_msi_setup() -> Result<(Func, usize, u32), Outcome> {
    let its = rt::its().map_err(Outcome::Skip)?;
    let (f, bar) = edu()?;
    let g = gic();
    if !its.fresh(g) {
        diag!("the ITS did not take the reset commands");
        return Err(Outcome::Fail);
    }
    let lpi = its.lpi(PROP_ON);
    let rid = f.rid();
    let mapped = its.send(&[
        c::mapd(rid, 1, its.itt(1), true),
        c::mapti(rid, 0, lpi, 0),
        c::sync(its.rd(g, 0)),
    ]);
    if !mapped {
        diag!("the ITS did not take MAPD/MAPTI");
        return Err(Outcome::Fail);
    }
    // The MSI goes to GITS_TRANSLATER: the ITS's frame + 0x10040; data = EventID 0.
    if !f.enable_msi(its.base as u64 + 0x1_0040, 0) {
        diag!("edu has no MSI capability");
        return Err(Outcome::Fail);
    }
    Ok((f, bar, lpi))
}

/// Undoes [`edu_msi_setup`]: bus mastering (and so MSIs) off, the device unmapped.
pub fn edu_msi_teardown(f: &Func) {
    f.write(0x04, f.read(0x04) & !0b100);
    if let Ok(its) = rt::its() {
        let g = gic();
        let _ = its.send(&[c::mapd(f.rid(), 1, 0, false), c::sync(its.rd(g, 0))]);
    }
}

fn edu_msi() -> Outcome {
    let (f, bar, lpi) = match edu_msi_setup() {
        Ok(x) => x,
        Err(o) => return o,
    };
    let g = gic();
    let v = virt();
    let before = if v { exits() } else { [0; 11] };
    let mut ok = 0;
    let mut wrong = None;
    for _ in 0..1000 {
        match one_msi(bar) {
            Some(id) if id == lpi => ok += 1,
            other => {
                wrong = Some(other);
                break;
            }
        }
    }
    let after = if v { exits() } else { [0; 11] };
    let extra = hw::wait_until(neg(), || g.intid(g.hppir()) != 1023);
    edu_msi_teardown(&f);
    diag!("{ok} of 1000 MSIs taken as LPI {lpi}");
    ensure!(
        wrong.is_none(),
        "after {ok}: took {:?}, want LPI {lpi}",
        wrong.flatten()
    );
    ensure!(!extra, "an interrupt was left pending after the last MSI");
    if v {
        let d = exit_delta(&before, &after);
        show_exits("1000 MSIs (raise, LPI taken, ack)", &d);
        // Emulated: the physical LPI exits and goes through a list register. Injected
        // directly (GICv4): the ITS makes it a virtual LPI of this vCPU, no exit at all.
        if platform().direct_msi {
            ensure!(
                d[R_IRQ] == 0,
                "{} IRQ exits, want 0 (direct injection)",
                d[R_IRQ]
            );
        } else {
            ensure!(d[R_IRQ] == 1000, "{} IRQ exits, want 1 per MSI", d[R_IRQ]);
        }
        let others: i64 = (0..d.len()).filter(|&i| i != R_IRQ).map(|i| d[i]).sum();
        ensure!(
            others == 0,
            "{others} other exits, want 0 (acknowledge and EOI are free)"
        );
    }
    Outcome::Pass
}

/// Polls CPU 0 for an interrupt for `t`: its INTID.
fn take(t: u64) -> Option<u32> {
    let g = gic();
    let end = hw::now() + t;
    while hw::now() < end {
        let iar = g.ack();
        let id = g.intid(iar);
        if (1020..rt::LPI_MIN).contains(&id) {
            continue;
        }
        g.eoi(iar);
        return Some(id);
    }
    None
}

/// Raises one MSI and lowers edu's status again (the MSI is an edge: one write, one event).
fn raise(bar: usize) {
    hw::write32(bar + 0x60, 1);
    hw::write32(bar + 0x64, 1);
}

/// Runs `f` with edu's MSI mapped (requester ID, event 0 -> its LPI on CPU 0), then unmaps.
fn with_edu(f: impl FnOnce(&c::Its, u32, usize, u32) -> Outcome) -> Outcome {
    let (func, bar, lpi) = match edu_msi_setup() {
        Ok(x) => x,
        Err(o) => return o,
    };
    let its = match rt::its() {
        Ok(i) => i,
        Err(e) => return Outcome::Skip(e),
    };
    let out = f(its, func.rid(), bar, lpi);
    edu_msi_teardown(&func);
    // Whatever a failed case left pending goes.
    while take(neg() / 4).is_some() {}
    out
}

fn edu_discard() -> Outcome {
    with_edu(|its, rid, bar, lpi| {
        let g = gic();
        raise(bar);
        ensure!(take(pos()) == Some(lpi), "mapped: the MSI was not taken");
        ensure!(
            its.send(&[c::discard(rid, 0), c::sync(its.rd(g, 0))]),
            "stuck"
        );
        raise(bar);
        let got = take(neg());
        ensure!(got.is_none(), "after DISCARD: took {got:?}");
        ensure!(
            its.send(&[c::mapti(rid, 0, lpi, 0), c::sync(its.rd(g, 0))]),
            "stuck"
        );
        raise(bar);
        let got = take(pos());
        ensure!(
            got == Some(lpi),
            "after a new MAPTI: took {got:?}, want {lpi}"
        );
        Outcome::Pass
    })
}

fn edu_movi() -> Outcome {
    let Some(o) = other() else {
        return Outcome::Skip("needs 2 CPUs");
    };
    with_edu(|its, rid, bar, lpi| {
        let g = gic();
        CPUS[o].clear();
        ensure!(
            its.send(&[c::movi(rid, 0, o as u32), c::sync(its.rd(g, o))]),
            "stuck"
        );
        raise(bar);
        ensure!(wait_count(o, 1, pos()), "CPU {o} took nothing");
        ensure!(
            CPUS[o].times_seen(lpi) == 1,
            "CPU {o} took another interrupt"
        );
        let got = take(neg());
        ensure!(got.is_none(), "CPU 0 took {got:?} too");
        Outcome::Pass
    })
}

fn edu_inv() -> Outcome {
    with_edu(|its, rid, bar, lpi| {
        let g = gic();
        its.set_prop(lpi, PROP_OFF);
        ensure!(its.send(&[c::inv(rid, 0), c::sync(its.rd(g, 0))]), "stuck");
        raise(bar);
        let got = take(neg());
        ensure!(got.is_none(), "disabled: took {got:?}");
        its.set_prop(lpi, PROP_ON);
        ensure!(its.send(&[c::inv(rid, 0), c::sync(its.rd(g, 0))]), "stuck");
        // The MSI that came while the LPI was disabled stayed pending.
        let got = take(pos());
        ensure!(got == Some(lpi), "enabled again: took {got:?}, want {lpi}");
        raise(bar);
        let got = take(pos());
        ensure!(got == Some(lpi), "a new MSI: took {got:?}, want {lpi}");
        Outcome::Pass
    })
}

fn edu_int_clear() -> Outcome {
    with_edu(|its, rid, _bar, lpi| {
        let g = gic();
        ensure!(its.send(&[c::int(rid, 0), c::sync(its.rd(g, 0))]), "stuck");
        let got = take(pos());
        ensure!(got == Some(lpi), "INT: took {got:?}, want {lpi}");
        // Masked while INT and CLEAR go through the queue: CLEAR wins.
        let pmr = g.pmr();
        g.set_pmr(0);
        let ok = its.send(&[c::int(rid, 0), c::clear(rid, 0), c::sync(its.rd(g, 0))]);
        g.set_pmr(pmr);
        ensure!(ok, "stuck");
        let got = take(neg());
        ensure!(got.is_none(), "after CLEAR: took {got:?}");
        Outcome::Pass
    })
}

fn edu_cpu_off() -> Outcome {
    let n = gic().cpu_count;
    if n < 2 {
        return Outcome::Skip("needs 2 CPUs");
    }
    let o = n - 1;
    with_edu(|its, rid, bar, lpi| {
        let g = gic();
        ensure!(
            its.send(&[c::movi(rid, 0, o as u32), c::sync(its.rd(g, o))]),
            "stuck"
        );
        rt::post(o, rt::cpu_off_job, 0);
        ensure!(
            hw::wait_until(pos(), || rt::affinity_info(o) == 1),
            "CPU {o} did not go off"
        );
        CPUS[o].clear();
        raise(bar);
        let got = take(neg());
        ensure!(got.is_none(), "CPU 0 took {got:?}");
        let r = rt::cpu_on(o);
        ensure!(r == 0, "CPU_ON of CPU {o} returned {r}");
        ensure!(
            wait_count(o, 1, pos()),
            "CPU {o} did not take the MSI that came while it was off"
        );
        ensure!(
            CPUS[o].times_seen(lpi) == 1,
            "CPU {o} took another interrupt, or LPI {lpi} twice"
        );
        Outcome::Pass
    })
}
