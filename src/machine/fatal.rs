//! Fatal errors: the panic handler and the report of an EL2 exception nobody expected.
//!
//! One policy for both (`exitless_core::hv::fatal` has its rules): print the report, then let
//! the runtime contain it (stop only the VM this CPU was running, when no machine-wide lock is
//! left held) or power the machine off (before the VMs run, or when containing is not safe).
//! A panic prints its location and message; an unexpected EL2 exception a decoded report
//! (exception class by name, ESR, FAR, ELR, SPSR, CPU, the decoded syndrome and the general
//! registers). Both print through the console's emergency path, which takes the console even
//! if the failing CPU held its lock.

use crate::arch;
use crate::arch::exception::{Registers, TrapFrame, VECTOR_NAMES};
use crate::drivers::console;
use exitless_core::trap::esr;

use super::power::power_off;

/// The runtime's containment ([`set_containment`]); until it is set, a fatal error powers off.
static CONTAIN: spin::Once<fn(usize) -> !> = spin::Once::new();

/// Installs the runtime's containment (`hv::fatal`), called once the VMs exist.
pub fn set_containment(f: fn(usize) -> !) {
    CONTAIN.call_once(|| f);
}

/// After the report: contain it, or power off.
fn contain(cpu: usize) -> ! {
    match CONTAIN.get() {
        Some(f) => f(cpu),
        None => power_off(),
    }
}

/// Called by `vectors.S` for every exception that exitless does not expect. Never returns.
#[unsafe(no_mangle)]
extern "C" fn el2_unexpected_exception(frame: &TrapFrame, kind: u64) -> ! {
    let vector = VECTOR_NAMES
        .get(kind as usize)
        .copied()
        .unwrap_or("unknown vector");
    let report = esr::Report {
        esr: esr::Esr::new(frame.esr),
        far: frame.far,
        elr: frame.elr,
        spsr: frame.spsr,
        cpu: arch::cpu_index(),
    };
    console::print_emergency(format_args!(
        "\n*** EL2 exception: {vector}\n{report}\n{}\n",
        Registers(frame)
    ));
    contain(arch::cpu_index())
}

/// The panic handler: location and message on the console, then the policy.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let cpu = arch::cpu_index();
    match info.location() {
        Some(l) => console::print_emergency(format_args!(
            "\n*** PANIC on CPU {cpu} at {}:{}: {}\n",
            l.file(),
            l.line(),
            info.message()
        )),
        None => console::print_emergency(format_args!(
            "\n*** PANIC on CPU {cpu}: {}\n",
            info.message()
        )),
    }
    contain(cpu)
}
