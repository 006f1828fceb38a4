//! Fatal errors: the panic handler and the report of an EL2 exception nobody expected.
//!
//! A panic prints its location and message and powers the machine off (so QEMU exits instead of
//! hanging). An unexpected EL2 exception prints a decoded report (exception class by name, ESR,
//! FAR, ELR, SPSR, CPU, the decoded syndrome and the general registers) and stops this CPU; the
//! other CPUs carry on. Both print through the console's emergency path, which takes the console
//! even if the failing CPU held its lock.

use crate::arch;
use crate::arch::exception::{Registers, TrapFrame, VECTOR_NAMES};
use crate::drivers::console;
use exitless_core::trap::esr;

use super::power::power_off;

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
        "\n*** EL2 exception: {vector}\n{report}\n{}\n*** CPU {} stopped\n",
        Registers(frame),
        arch::cpu_index()
    ));
    arch::halt()
}

/// The panic handler: location and message on the console, then power off (so QEMU exits
/// instead of hanging).
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
    power_off()
}
