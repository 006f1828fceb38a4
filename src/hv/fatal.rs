//! The fatal-error policy's shell (the rules are `exitless_core::hv::fatal`'s): after the panic
//! handler or the EL2 exception report printed, stop only the VM the failing CPU was running,
//! or power the machine off when that cannot be safe. Also the fault that the boot tests of this
//! policy inject (`exitless.test_fatal`).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{PCPUS, STARTED, VMS, run};
use crate::arch::{self, timer};
use crate::drivers::console;
use crate::machine::power::power_off;
use exitless_core::hv::fatal::{Fatal, decide};
use exitless_core::util::cmdline::FatalTest;
use exitless_core::vm::machine::VmState;

/// Registers [`contain`] with the panic handler and the EL2 exception report.
pub fn install() {
    crate::machine::fatal::set_containment(contain);
}

/// How long a machine-wide lock may stay held before the failing CPU is taken to have died
/// holding it.
const LOCK_WAIT_MS: u64 = 100;

/// The machine-wide lock that stays held for [`LOCK_WAIT_MS`], if any.
fn held_lock() -> Option<&'static str> {
    type Held = fn() -> bool;
    let locks: [(&str, Held); 4] = [
        ("the console", console::lock_held),
        (
            "the console multiplexer or input",
            super::console::lock_held,
        ),
        ("the heap", crate::machine::heap::lock_held),
        ("the page-table pool", arch::mmu::pool_lock_held),
    ];
    let deadline = timer::ticks() + timer::frequency() * LOCK_WAIT_MS / 1000;
    for (name, held) in locks {
        while held() {
            if timer::ticks() > deadline {
                return Some(name);
            }
            crate::arch::spin_hint();
        }
    }
    None
}

/// Never returns: stops the VM the failing CPU `cpu` ran and parks the CPU, or powers off.
fn contain(cpu: usize) -> ! {
    let vm = STARTED
        .load(Ordering::Acquire)
        .then(|| PCPUS.get(cpu).and_then(|p| p.vcpu.get().copied().flatten()))
        .flatten()
        .map(|(id, _)| id);
    match decide(vm, held_lock()) {
        Fatal::StopVm(id) => {
            let Some(rt) = VMS.get().and_then(|v| v.get(id)) else {
                power_off()
            };
            rt.vm.set_state(VmState::Stopping);
            rt.stopped.store(true, Ordering::Release);
            let others = (0..rt.vm.vcpus.len())
                .filter(|&v| rt.vm.vcpus[v].pcpu != cpu)
                .fold(0u64, |m, v| m | 1 << v);
            run::kick(cpu, &rt.vm, others);
            console::print_emergency(format_args!(
                "*** VM '{}' stopped: exitless failed on CPU {cpu} while running its vCPU; the \
                 other VMs go on (CPU {cpu} stays parked)\n",
                rt.vm.name()
            ));
            let all = VMS
                .get()
                .is_some_and(|vms| vms.iter().all(|r| r.stopped.load(Ordering::Acquire)));
            if all {
                console::print_emergency(format_args!(
                    "*** no VM is left running: powering the machine off\n"
                ));
                super::console::flush_all();
                power_off()
            }
            arch::halt()
        }
        Fatal::PowerOff(why) => {
            console::print_emergency(format_args!(
                "*** cannot stop just one VM ({why}): powering the machine off\n"
            ));
            super::console::flush_all();
            power_off()
        }
    }
}

/// `exitless.test_fatal`: VM index + 1 (0: off) and the kind (0 panic, 1 EL2 data abort).
static TEST_VM: AtomicUsize = AtomicUsize::new(0);
static TEST_EL2: AtomicUsize = AtomicUsize::new(0);
/// Exits of that VM's vCPU 0 so far.
static TEST_EXITS: AtomicU64 = AtomicU64::new(0);
/// The exit that fails.
const TEST_AT_EXIT: u64 = 1000;

/// Arms `exitless.test_fatal` for the VM with index `vm`.
pub fn arm_test(vm: usize, kind: FatalTest) {
    TEST_EL2.store((kind == FatalTest::El2Abort) as usize, Ordering::Relaxed);
    TEST_VM.store(vm + 1, Ordering::Release);
}

/// Called on every exit of vCPU 0: fails on purpose at the armed VM's 1000th.
#[inline]
pub fn test_point(vm: usize) {
    if TEST_VM.load(Ordering::Relaxed) != vm + 1
        || TEST_EXITS.fetch_add(1, Ordering::Relaxed) + 1 != TEST_AT_EXIT
    {
        return;
    }
    break_on_purpose();
}

/// What `exitless.test_fatal` asks for, out of the exit path's line.
#[cold]
#[inline(never)]
fn break_on_purpose() -> ! {
    log::warn!("exitless.test_fatal: breaking exitless on purpose");
    if TEST_EL2.load(Ordering::Relaxed) == 1 {
        // SAFETY: not safe, on purpose: a read of an address exitless never maps, to take the
        // data abort at EL2 that the boot test of the fatal-error policy needs. Only reached
        // with `exitless.test_fatal=<vm>:el2` on the command line.
        let v = unsafe { core::ptr::read_volatile(0xdead_0000_0000usize as *const u64) };
        core::hint::black_box(v);
    }
    panic!("exitless.test_fatal: a panic on purpose");
}
