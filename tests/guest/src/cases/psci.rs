//! PSCI (DEN 0022): the version, CPU_ON of each secondary, AFFINITY_INFO, CPU_OFF and CPU_ON
//! again. SYSTEM_OFF ends every run, which the host runner checks (QEMU exits by itself).

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::SeqCst;

use crate::hw;
use crate::rt::{self, BOOT_CPU_ON, CPUS, gic};
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure};

pub const CASES: &[Case] = &[
    Case {
        group: "psci",
        name: "PSCI_VERSION is 0.2 or later",
        only: Only::Both,
        f: version,
    },
    Case {
        group: "psci",
        name: "CPU_ON of each secondary succeeded and it runs jobs",
        only: Only::Both,
        f: cpu_on_boot,
    },
    Case {
        group: "psci",
        name: "AFFINITY_INFO reports every CPU ON",
        only: Only::Both,
        f: affinity_on,
    },
    Case {
        group: "psci",
        name: "CPU_ON of a running CPU returns ALREADY_ON",
        only: Only::Both,
        f: already_on,
    },
    Case {
        group: "psci",
        name: "CPU_ON of an MPIDR that does not exist returns INVALID_PARAMETERS",
        only: Only::Both,
        f: invalid,
    },
    Case {
        group: "psci",
        name: "CPU_OFF: the CPU stops and AFFINITY_INFO reports it OFF",
        only: Only::Both,
        f: cpu_off,
    },
    Case {
        group: "psci",
        name: "CPU_ON after CPU_OFF starts it again at the entry point",
        only: Only::Both,
        f: cpu_on_again,
    },
    Case {
        group: "psci",
        name: "CPU_ON of one CPU from 3 CPUs at once, 1000 times: one SUCCESS, the rest ALREADY_ON",
        only: Only::Both,
        f: concurrent_cpu_on,
    },
];

const ALREADY_ON: i64 = -4;
const INVALID_PARAMETERS: i64 = -2;

fn version() -> Outcome {
    let v = rt::call(rt::PSCI_VERSION, 0, 0, 0)[0] as u32;
    diag!("PSCI {}.{}", v >> 16, v & 0xffff);
    ensure!(v >= 2 && v >> 31 == 0, "version {v:#x}");
    Outcome::Pass
}

fn cpu_on_boot() -> Outcome {
    let g = gic();
    for c in 1..g.cpu_count {
        let r = BOOT_CPU_ON[c].load(SeqCst) as i64;
        ensure!(r == 0, "CPU_ON of CPU {c} returned {r}");
        ensure!(CPUS[c].online.load(SeqCst), "CPU {c} never came online");
        let got = rt::run_on(c, |a| a + hw::cpu() as u64, 100);
        ensure!(got == Some(100 + c as u64), "CPU {c} job returned {got:?}");
    }
    Outcome::Pass
}

fn affinity_on() -> Outcome {
    for c in 0..gic().cpu_count {
        let r = rt::affinity_info(c);
        ensure!(r == 0, "AFFINITY_INFO of CPU {c}: {r}");
    }
    Outcome::Pass
}

fn already_on() -> Outcome {
    let Some(o) = super::other() else {
        return Outcome::Skip("one CPU");
    };
    let r = rt::cpu_on(o);
    ensure!(r == ALREADY_ON, "CPU_ON of running CPU {o}: {r}");
    Outcome::Pass
}

fn invalid() -> Outcome {
    let entry = rt::cpu_on as *const () as u64;
    let r = rt::call(rt::PSCI_CPU_ON, 0xff_00ff_ff7f, entry, 0)[0] as i64;
    ensure!(r == INVALID_PARAMETERS, "CPU_ON of MPIDR 0xff00ffff7f: {r}");
    Outcome::Pass
}

/// The CPU the CPU_OFF cases use: the last one.
fn last() -> Option<usize> {
    let n = gic().cpu_count;
    (n > 1).then_some(n - 1)
}

fn cpu_off() -> Outcome {
    let Some(c) = last() else {
        return Outcome::Skip("one CPU");
    };
    rt::post(c, rt::cpu_off_job, 0);
    let off = hw::wait_until(super::pos(), || rt::affinity_info(c) == 1);
    ensure!(
        off,
        "AFFINITY_INFO of CPU {c} after CPU_OFF: {}",
        rt::affinity_info(c)
    );
    ensure!(!CPUS[c].online.load(SeqCst), "CPU {c} still online");
    Outcome::Pass
}

fn cpu_on_again() -> Outcome {
    let Some(c) = last() else {
        return Outcome::Skip("one CPU");
    };
    if CPUS[c].online.load(SeqCst) {
        rt::post(c, rt::cpu_off_job, 0);
        hw::wait_until(super::pos(), || rt::affinity_info(c) == 1);
    }
    let before = CPUS[c].started.load(SeqCst);
    let r = rt::cpu_on(c);
    ensure!(r == 0, "CPU_ON returned {r}");
    ensure!(
        hw::wait_until(super::pos(), || CPUS[c].online.load(SeqCst)),
        "not online again"
    );
    let after = CPUS[c].started.load(SeqCst);
    let got = rt::run_on(c, |a| a * 2, 21);
    ensure!(after == before + 1, "entered {} times", after - before);
    ensure!(got == Some(42), "job returned {got:?}");
    ensure!(
        rt::affinity_info(c) == 0,
        "AFFINITY_INFO {}",
        rt::affinity_info(c)
    );
    Outcome::Pass
}

/// The round the racers may start (0: none yet).
static GO: AtomicU64 = AtomicU64::new(0);

/// A racer's job: wait for round `round` to start, then CPU_ON the last CPU; returns x0.
fn racer(round: u64) -> u64 {
    if !hw::wait_until(super::pos(), || GO.load(SeqCst) == round) {
        return u64::MAX;
    }
    let Some(target) = last() else {
        return u64::MAX;
    };
    rt::cpu_on(target) as u64
}

/// KVM serialises CPU_ONs of one target (`kvm_psci_vcpu_on`): exactly one caller sees SUCCESS,
/// the others ALREADY_ON, never ON_PENDING. QEMU 7.2's own PSCI, which the native run uses,
/// does not serialise them (run natively this case saw answers [0, -4, 0] and [0, 0, 0]: two
/// and three SUCCESSes in one round), so it runs virtualized only.
fn concurrent_cpu_on() -> Outcome {
    const ROUNDS: u64 = 1000;
    const ON_PENDING: i64 = -5;
    if !super::virt() {
        return Outcome::Skip("native");
    }
    let n = gic().cpu_count;
    if n < 4 {
        return Outcome::Skip("needs 4 CPUs");
    }
    let target = n - 1;
    let mut pending_seen = 0;
    for round in 1..=ROUNDS {
        if CPUS[target].online.load(SeqCst) {
            rt::post(target, rt::cpu_off_job, 0);
        }
        ensure!(
            hw::wait_until(super::pos(), || rt::affinity_info(target) == 1),
            "round {round}: CPU {target} did not go off"
        );
        for c in 1..3 {
            rt::post(c, racer, round);
        }
        GO.store(round, SeqCst);
        let mine = rt::cpu_on(target);
        let done = hw::wait_until(super::pos(), || {
            (1..3).all(|c| CPUS[c].job.load(SeqCst) == 0)
        });
        ensure!(done, "round {round}: a racer did not finish");
        let answers = [
            mine,
            CPUS[1].result.load(SeqCst) as i64,
            CPUS[2].result.load(SeqCst) as i64,
        ];
        let wins = answers.iter().filter(|&&r| r == 0).count();
        let already = answers.iter().filter(|&&r| r == ALREADY_ON).count();
        pending_seen += answers.iter().filter(|&&r| r == ON_PENDING).count();
        ensure!(
            wins == 1 && already == 2,
            "round {round}: answers {answers:?} (0 SUCCESS, -4 ALREADY_ON, -5 ON_PENDING)"
        );
        ensure!(
            hw::wait_until(super::pos(), || CPUS[target].online.load(SeqCst)),
            "round {round}: CPU {target} did not come online"
        );
    }
    diag!("{ROUNDS} rounds, ON_PENDING seen {pending_seen} times");
    Outcome::Pass
}
