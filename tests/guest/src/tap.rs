//! TAP output: a plan line, one `ok N - group: description` / `not ok N - ...` line per case
//! (`# SKIP reason` for a case that does not apply), diagnostics as `#` lines, and a summary.

use crate::println;

/// What a case found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Pass,
    Fail,
    Skip(&'static str),
}

/// Which GIC versions a case applies to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Only {
    Both,
    V2,
    V3,
}

/// One case.
pub struct Case {
    pub group: &'static str,
    pub name: &'static str,
    pub only: Only,
    pub f: fn() -> Outcome,
}

/// Fails the case with a diagnostic line unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($a:tt)*) => {
        if !$cond {
            $crate::println!("#   line {}: {}", line!(), format_args!($($a)*));
            return $crate::tap::Outcome::Fail;
        }
    };
}

/// Prints a diagnostic line.
#[macro_export]
macro_rules! diag {
    ($($a:tt)*) => { $crate::println!("#   {}", format_args!($($a)*)) };
}

/// Runs `cases` (those that apply to `v`), each after `reset`, and prints TAP; `what` names
/// the run in the summary.
pub fn run(cases: &[Case], v: Only, what: &str, reset: fn()) -> (u32, u32, u32) {
    let applies = |c: &&Case| c.only == Only::Both || c.only == v;
    let n = cases.iter().filter(applies).count();
    println!("TAP version 13");
    println!("1..{n}");
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for (i, c) in cases.iter().filter(applies).enumerate() {
        reset();
        let o = (c.f)();
        let i = i + 1;
        match o {
            Outcome::Pass => {
                pass += 1;
                println!("ok {i} - {}: {}", c.group, c.name);
            }
            Outcome::Fail => {
                fail += 1;
                println!("not ok {i} - {}: {}", c.group, c.name);
            }
            Outcome::Skip(why) => {
                skip += 1;
                println!("ok {i} - {}: {} # SKIP {why}", c.group, c.name);
            }
        }
    }
    println!("# exitless-guest summary: {pass} passed, {fail} failed, {skip} skipped ({what})");
    (pass, fail, skip)
}
