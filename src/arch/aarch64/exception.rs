//! The EL2 vector table (`vectors.S`) and what happens on an exception nobody expected: a
//! decoded report on the console (exception class by name, ESR, FAR, ELR, SPSR, CPU, the
//! decoded syndrome and the general registers), then this CPU stops. Other CPUs carry on.

use core::fmt;

use crate::drivers::console;
use crate::trap::esr;

core::arch::global_asm!(include_str!("vectors.S"));

/// Registers saved by `SAVE_FRAME` in `vectors.S`, in that order.
#[repr(C)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// SP at the time of the exception.
    pub sp: u64,
    /// ELR_EL2.
    pub elr: u64,
    /// SPSR_EL2.
    pub spsr: u64,
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
}

const VECTOR_NAMES: [&str; 16] = [
    "synchronous (EL2, SP_EL0)",
    "IRQ (EL2, SP_EL0)",
    "FIQ (EL2, SP_EL0)",
    "SError (EL2, SP_EL0)",
    "synchronous",
    "IRQ",
    "FIQ",
    "SError",
    "synchronous from a lower EL (AArch64)",
    "IRQ from a lower EL (AArch64)",
    "FIQ from a lower EL (AArch64)",
    "SError from a lower EL (AArch64)",
    "synchronous from a lower EL (AArch32)",
    "IRQ from a lower EL (AArch32)",
    "FIQ from a lower EL (AArch32)",
    "SError from a lower EL (AArch32)",
];

struct Registers<'a>(&'a TrapFrame);

impl fmt::Display for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.x.chunks(4).enumerate() {
            for (j, v) in pair.iter().enumerate() {
                write!(f, " x{:<2}={v:#018x}", i * 4 + j)?;
            }
            writeln!(f)?;
        }
        write!(f, " sp ={:#018x}", self.0.sp)
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
        cpu: super::cpu_index(),
    };
    console::print_emergency(format_args!(
        "\n*** EL2 exception: {vector}\n{report}\n{}\n*** CPU {} stopped\n",
        Registers(frame),
        super::cpu_index()
    ));
    super::halt()
}
