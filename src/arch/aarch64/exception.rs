//! The EL2 vector table (`vectors.S`) and the frame it saves. Every exception exitless does not
//! expect ends in `el2_unexpected_exception`, which lives with the other fatal-error paths in
//! `machine::fatal` (this module is below the console and cannot print).

use core::fmt;

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

/// The vector names, in `vectors.S` order (the `kind` it passes).
pub const VECTOR_NAMES: [&str; 16] = [
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

/// The general registers of a frame, four to a line.
pub struct Registers<'a>(pub &'a TrapFrame);

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
