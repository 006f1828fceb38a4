//! The ITS (GICv3 IHI 0069H 5.2-5.3): translation of (DeviceID, EventID) to LPIs, collections
//! and their redistributors, every command, the property and pending tables. Interrupts are
//! raised with INT (a device's MSI is an event like it); CPU 0 takes them by polling with its
//! interrupts masked, the secondaries in their handler. Every case maps fresh LPIs
//! ([`Its::lpi`]) after [`Its::fresh`].

use core::sync::atomic::Ordering::SeqCst;

use super::{neg, pos, wait_count};
use crate::gic::{self, GICR_TYPER};
use crate::hw::{self, read32, read64, write64};
use crate::its::{self as c, BIG_DEVICE, EVENT_BITS, Its, PROP_OFF, PROP_ON};
use crate::rt::{self, CPUS, gic};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

const fn case(name: &'static str, f: fn() -> Outcome) -> Case {
    Case {
        group: "its",
        name,
        only: Only::V3,
        f,
    }
}

pub const CASES: &[Case] = &[
    case(
        "GITS_TYPER.Physical, GICD_TYPER.LPIS and every GICR_TYPER.PLPIS are set",
        registers,
    ),
    case(
        "MAPD + MAPC + MAPTI, then INT: the LPI is taken, once",
        map_int,
    ),
    case("MAPI: the EventID is the LPI", map_i),
    case(
        "each CPU's collection gets its own LPIs (MAPC to every redistributor)",
        every_cpu,
    ),
    case(
        "MOVI: the event's LPI is taken on the new collection's CPU",
        mov_i,
    ),
    case(
        "MOVALL: a pending LPI moves to the other redistributor and is taken there",
        mov_all,
    ),
    case("DISCARD stops delivery; a new MAPTI restores it", discard),
    case("CLEAR removes a pending LPI before it is taken", clear),
    case(
        "an LPI disabled in the property table is kept pending after INV, taken once enabled + INV",
        inv,
    ),
    case(
        "INVALL applies the property table to every LPI of the collection",
        inv_all,
    ),
    case(
        "the property table's priority orders two pending LPIs",
        priority,
    ),
    case(
        "bad commands (EventID, DeviceID, LPI, unmapped event) are skipped and the queue goes on",
        bad_commands,
    ),
    case(
        "an event whose collection is unmapped is dropped; after MAPC the next one is taken",
        unmapped_collection,
    ),
    case("MAPC V=0 stops delivery to its LPIs", mapc_off),
    case(
        "GITS_CBASER and GITS_BASER<n> are read-only while the ITS is enabled",
        read_only,
    ),
    case(
        "EnableLPIs 0 -> 1 takes the pending state from the pending table",
        pending_table,
    ),
    case(
        "GITS_CREADR follows GITS_CWRITER through 300 commands (the queue wraps)",
        queue_wraps,
    ),
];

/// The ITS, reset for a case; `Err` skips the case.
fn setup() -> Result<&'static Its, Outcome> {
    let its = rt::its().map_err(Outcome::Skip)?;
    if !its.fresh(gic()) {
        diag!("the ITS did not take the reset commands");
        return Err(Outcome::Fail);
    }
    Ok(its)
}

macro_rules! its_or_return {
    () => {
        match setup() {
            Ok(i) => i,
            Err(o) => return o,
        }
    };
}

/// Device 1 with 32 events.
fn dev1(its: &Its) -> [u64; 4] {
    c::mapd(1, EVENT_BITS, its.itt(1), true)
}

/// Polls CPU 0 for up to `want` interrupts, `t` long; their INTIDs.
fn taken(want: usize, t: u64) -> ([u32; 8], usize) {
    let g = gic();
    let mut out = [0u32; 8];
    let mut n = 0;
    let end = hw::now() + t;
    while n < want && hw::now() < end {
        let iar = g.ack();
        let id = g.intid(iar);
        if (1020..rt::LPI_MIN).contains(&id) {
            continue;
        }
        g.eoi(iar);
        out[n] = id;
        n += 1;
    }
    (out, n)
}

/// Nothing arrives on CPU 0 within `neg()`.
fn nothing() -> bool {
    taken(1, neg()).1 == 0
}

fn registers() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    let t = read64(its.base + c::GITS_TYPER);
    diag!(
        "GITS_TYPER {t:#x}: ITT entry {} bytes, {} EventID bits, {} DeviceID bits",
        (t >> 4 & 0xf) + 1,
        (t >> 8 & 0x1f) + 1,
        (t >> 13 & 0x1f) + 1
    );
    ensure!(t & 1 == 1, "Physical = 0");
    ensure!(
        (t >> 8 & 0x1f) + 1 >= 14,
        "fewer EventID bits than the LPI range needs"
    );
    let arch = read32(its.base + c::GITS_PIDR2) >> 4 & 0xf;
    ensure!(arch == 3 || arch == 4, "GITS_PIDR2.ArchRev {arch}");
    let d = read32(g.d(gic::GICD_TYPER));
    ensure!(d >> 17 & 1 == 1, "GICD_TYPER.LPIS = 0");
    ensure!(
        (d >> 19 & 0x1f) + 1 >= 14,
        "GICD_TYPER.IDbits too small for LPIs"
    );
    for cpu in 0..g.cpu_count {
        ensure!(
            read64(g.gicr[cpu] + GICR_TYPER) & 1 == 1,
            "GICR_TYPER.PLPIS = 0 on CPU {cpu}"
        );
    }
    ensure!(
        read32(its.base + c::GITS_CTLR) == 1 << 31 | 1,
        "GITS_CTLR {:#x}: want Enabled and Quiescent",
        read32(its.base + c::GITS_CTLR)
    );
    Outcome::Pass
}

fn map_int() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[dev1(its), c::mapti(1, 7, l, 0), c::int(1, 7)]),
        "stuck"
    );
    let (ids, n) = taken(2, neg() + pos() / 4);
    ensure!(n == 1 && ids[0] == l, "took {:?}, want [{l}]", &ids[..n]);
    Outcome::Pass
}

fn map_i() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[
            c::mapd(BIG_DEVICE, 14, its.itt(BIG_DEVICE), true),
            c::mapi(BIG_DEVICE, l, 0),
            c::int(BIG_DEVICE, l)
        ]),
        "stuck"
    );
    let (ids, n) = taken(1, pos());
    ensure!(n == 1 && ids[0] == l, "took {:?}, want [{l}]", &ids[..n]);
    Outcome::Pass
}

/// Clears the secondaries' logs and unmasks nothing: they take interrupts in their handler.
fn clear_logs() {
    for cpu in 0..gic().cpu_count {
        CPUS[cpu].clear();
    }
}

fn every_cpu() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    clear_logs();
    let mut lpis = [0u32; 8];
    for l in lpis.iter_mut().take(g.cpu_count) {
        *l = its.lpi(PROP_ON);
    }
    ensure!(its.send(&[dev1(its)]), "stuck");
    for cpu in 0..g.cpu_count {
        ensure!(
            its.send(&[c::mapti(1, cpu as u32, lpis[cpu], cpu as u32)]),
            "stuck"
        );
    }
    for cpu in 0..g.cpu_count {
        ensure!(its.send(&[c::int(1, cpu as u32)]), "stuck");
    }
    let (ids, n) = taken(1, pos());
    ensure!(n == 1 && ids[0] == lpis[0], "CPU 0 took {:?}", &ids[..n]);
    for cpu in 1..g.cpu_count {
        ensure!(wait_count(cpu, 1, pos()), "CPU {cpu} took nothing");
        ensure!(
            CPUS[cpu].times_seen(lpis[cpu]) == 1,
            "CPU {cpu} did not take its LPI {}",
            lpis[cpu]
        );
    }
    ensure!(nothing(), "CPU 0 took more");
    Outcome::Pass
}

fn mov_i() -> Outcome {
    let Some(o) = super::other() else {
        return Outcome::Skip("needs 2 CPUs");
    };
    let its = its_or_return!();
    clear_logs();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[
            dev1(its),
            c::mapti(1, 3, l, 0),
            c::movi(1, 3, o as u32),
            c::int(1, 3)
        ]),
        "stuck"
    );
    ensure!(wait_count(o, 1, pos()), "CPU {o} took nothing");
    ensure!(CPUS[o].times_seen(l) == 1, "CPU {o} took another interrupt");
    ensure!(nothing(), "CPU 0 took it too");
    Outcome::Pass
}

/// Sets this CPU's priority mask (a job for a secondary).
fn set_pmr(v: u64) -> u64 {
    gic().set_pmr(v as u32);
    0
}

fn mov_all() -> Outcome {
    let g = gic();
    if g.cpu_count < 3 {
        return Outcome::Skip("needs 3 CPUs");
    }
    let its = its_or_return!();
    clear_logs();
    let l = its.lpi(PROP_ON);
    // CPU 1's priority mask keeps the LPI (priority 0xa0) pending on its redistributor but
    // lets its doorbell SGI (0x40) through, so that it still runs the job that opens it again.
    rt::run_on(1, set_pmr, 0x80);
    let ok = its.send(&[dev1(its), c::mapti(1, 0, l, 1), c::int(1, 0)]);
    hw::delay(neg());
    let before = CPUS[1].count.load(SeqCst);
    let moved = its.send(&[c::movall(its.rd(g, 1), its.rd(g, 2)), c::sync(its.rd(g, 2))]);
    let on2 = wait_count(2, 1, pos());
    rt::run_on(1, set_pmr, 0xff);
    hw::delay(neg());
    ensure!(ok && moved, "stuck");
    ensure!(before == 0, "CPU 1 took it through its priority mask");
    ensure!(on2 && CPUS[2].times_seen(l) == 1, "CPU 2 did not take it");
    ensure!(
        CPUS[1].times_seen(l) == 0,
        "CPU 1 took it too once its mask opened"
    );
    Outcome::Pass
}

fn discard() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[
            dev1(its),
            c::mapti(1, 4, l, 0),
            c::discard(1, 4),
            c::int(1, 4)
        ]),
        "stuck"
    );
    ensure!(nothing(), "taken after DISCARD");
    ensure!(its.send(&[c::mapti(1, 4, l, 0), c::int(1, 4)]), "stuck");
    let (ids, n) = taken(1, pos());
    ensure!(
        n == 1 && ids[0] == l,
        "after a new MAPTI: took {:?}",
        &ids[..n]
    );
    Outcome::Pass
}

fn clear() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[
            dev1(its),
            c::mapti(1, 5, l, 0),
            c::int(1, 5),
            c::clear(1, 5)
        ]),
        "stuck"
    );
    ensure!(nothing(), "taken after CLEAR");
    ensure!(its.send(&[c::int(1, 5)]), "stuck");
    let (ids, n) = taken(1, pos());
    ensure!(n == 1 && ids[0] == l, "a later INT: took {:?}", &ids[..n]);
    Outcome::Pass
}

fn inv() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    ensure!(its.send(&[dev1(its), c::mapti(1, 6, l, 0)]), "stuck");
    its.set_prop(l, PROP_OFF);
    ensure!(its.send(&[c::inv(1, 6), c::int(1, 6)]), "stuck");
    ensure!(nothing(), "a disabled LPI was taken");
    its.set_prop(l, PROP_ON);
    ensure!(its.send(&[c::inv(1, 6)]), "stuck");
    let (ids, n) = taken(2, pos() / 4);
    ensure!(n == 1 && ids[0] == l, "once enabled: took {:?}", &ids[..n]);
    Outcome::Pass
}

fn inv_all() -> Outcome {
    let its = its_or_return!();
    let a = its.lpi(PROP_ON);
    let b = its.lpi(PROP_ON);
    ensure!(
        its.send(&[dev1(its), c::mapti(1, 8, a, 0), c::mapti(1, 9, b, 0)]),
        "stuck"
    );
    its.set_prop(a, PROP_OFF);
    its.set_prop(b, PROP_OFF);
    ensure!(
        its.send(&[c::invall(0), c::int(1, 8), c::int(1, 9)]),
        "stuck"
    );
    ensure!(nothing(), "a disabled LPI was taken");
    its.set_prop(a, PROP_ON);
    its.set_prop(b, PROP_ON);
    ensure!(its.send(&[c::invall(0)]), "stuck");
    let (mut ids, n) = taken(3, pos() / 4);
    ids[..n].sort_unstable();
    ensure!(
        n == 2 && ids[..2] == [a, b],
        "took {:?}, want [{a}, {b}]",
        &ids[..n]
    );
    Outcome::Pass
}

fn priority() -> Outcome {
    let its = its_or_return!();
    let low = its.lpi(0x80 | 0b11);
    let high = its.lpi(0x40 | 0b11);
    // Both pending before CPU 0 looks: its PMR lets neither through until both are set.
    gic().set_pmr(0);
    let ok = its.send(&[
        dev1(its),
        c::mapti(1, 10, low, 0),
        c::mapti(1, 11, high, 0),
        c::int(1, 10),
        c::int(1, 11),
    ]);
    hw::delay(neg());
    gic().set_pmr(0xff);
    ensure!(ok, "stuck");
    let (ids, n) = taken(2, pos());
    ensure!(
        n == 2 && ids[..2] == [high, low],
        "took {:?}, want [{high}, {low}]",
        &ids[..n]
    );
    Outcome::Pass
}

fn bad_commands() -> Outcome {
    let its = its_or_return!();
    let l = its.lpi(PROP_ON);
    let ok = its.send(&[
        dev1(its),
        c::mapti(1, 32, l, 0),  // EventID 32 with 5 EventID bits
        c::mapti(2, 0, l, 0),   // device 2 not mapped
        c::mapti(1, 0, 100, 0), // INTID 100 is no LPI
        c::int(1, 1),           // event 1 not mapped
        c::int(3, 0),           // device 3 not mapped
        c::mapti(1, 2, l, 0),
        c::int(1, 2),
    ]);
    ensure!(ok, "GITS_CREADR did not reach GITS_CWRITER");
    let (ids, n) = taken(2, pos() / 4);
    ensure!(n == 1 && ids[0] == l, "took {:?}, want [{l}]", &ids[..n]);
    Outcome::Pass
}

fn unmapped_collection() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    let l = its.lpi(PROP_ON);
    let icid = 9; // beyond every CPU: unmapped by `fresh`
    ensure!(
        its.send(&[dev1(its), c::mapti(1, 12, l, icid), c::int(1, 12)]),
        "stuck"
    );
    ensure!(nothing(), "taken through an unmapped collection");
    ensure!(
        its.send(&[c::mapc(icid, its.rd(g, 0), true), c::int(1, 12)]),
        "stuck"
    );
    let (ids, n) = taken(2, pos() / 4);
    ensure!(
        n == 1 && ids[0] == l,
        "after MAPC: took {:?}, want [{l}]",
        &ids[..n]
    );
    Outcome::Pass
}

fn mapc_off() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    let l = its.lpi(PROP_ON);
    let icid = 10;
    ensure!(
        its.send(&[
            dev1(its),
            c::mapc(icid, its.rd(g, 0), true),
            c::mapti(1, 13, l, icid),
            c::int(1, 13)
        ]),
        "stuck"
    );
    let (ids, n) = taken(1, pos());
    ensure!(n == 1 && ids[0] == l, "mapped: took {:?}", &ids[..n]);
    ensure!(its.send(&[c::mapc(icid, 0, false), c::int(1, 13)]), "stuck");
    ensure!(nothing(), "taken after MAPC V=0");
    Outcome::Pass
}

fn read_only() -> Outcome {
    let its = its_or_return!();
    let cb = read64(its.base + c::GITS_CBASER);
    write64(its.base + c::GITS_CBASER, cb + 0x1000);
    let cb2 = read64(its.base + c::GITS_CBASER);
    let b0 = read64(its.base + c::GITS_BASER);
    write64(its.base + c::GITS_BASER, b0 ^ 0x1000);
    let b02 = read64(its.base + c::GITS_BASER);
    ensure!(cb2 == cb, "GITS_CBASER {cb:#x} became {cb2:#x}");
    ensure!(b02 == b0, "GITS_BASER0 {b0:#x} became {b02:#x}");
    Outcome::Pass
}

fn pending_table() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    let l = its.lpi(PROP_ON);
    ensure!(
        its.send(&[dev1(its), c::mapti(1, 14, l, 0), c::sync(its.rd(g, 0))]),
        "stuck"
    );
    its.set_lpis(g, 0, false);
    its.set_pending_bit(0, l, true);
    its.set_lpis(g, 0, true);
    let (ids, n) = taken(2, pos() / 4);
    its.set_lpis(g, 0, false);
    its.set_pending_bit(0, l, false);
    its.set_lpis(g, 0, true);
    ensure!(n == 1 && ids[0] == l, "took {:?}, want [{l}]", &ids[..n]);
    Outcome::Pass
}

fn queue_wraps() -> Outcome {
    let its = its_or_return!();
    let g = gic();
    let s = c::sync(its.rd(g, 0));
    let start = read64(its.base + c::GITS_CWRITER);
    let mut wrapped = false;
    let mut last = start;
    for _ in 0..30 {
        ensure!(
            its.send(&[s; 10]),
            "GITS_CREADR stopped at {:#x}",
            read64(its.base + c::GITS_CREADR)
        );
        let w = read64(its.base + c::GITS_CWRITER);
        wrapped |= w < last;
        last = w;
    }
    ensure!(wrapped, "the queue never wrapped");
    ensure!(
        read64(its.base + c::GITS_CREADR) & 0xf_ffe0 == last,
        "GITS_CREADR {:#x} != GITS_CWRITER {last:#x}",
        read64(its.base + c::GITS_CREADR)
    );
    Outcome::Pass
}
