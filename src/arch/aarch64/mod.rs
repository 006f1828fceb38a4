//! AArch64 at EL2 (non-VHE): CPU identity, barriers and the small helpers the boot path needs.
//!
//! Invariant: TPIDR_EL2 holds the logical number of the running CPU from its first instruction
//! in `boot/entry.S` on.

pub mod cache;
pub mod exception;
pub mod mmu;
pub mod psci;
pub mod timer;
pub mod vcpu;

use aarch64_cpu::asm;
use aarch64_cpu::registers::{CurrentEL, MPIDR_EL1, Readable, TPIDR_EL2};

/// The logical number of the running CPU (0 for the boot CPU). Reads as 0 outside EL2, where
/// exitless only runs long enough to say that it needs EL2.
#[inline]
pub fn cpu_index() -> usize {
    if current_el() == 2 {
        TPIDR_EL2.get() as usize
    } else {
        0
    }
}

/// [`cpu_index`] for code that runs only at EL2 (the run loop): one register read.
#[inline]
pub fn cpu_index_el2() -> usize {
    TPIDR_EL2.get() as usize
}

/// The running CPU's MPIDR_EL1 affinity fields.
#[inline]
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & exitless_core::platform::MPIDR_AFFINITY_MASK
}

/// The exception level the CPU runs at.
#[inline]
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// Signals an event to every CPU (wakes `wfe` waiters such as spin-table secondaries).
#[inline]
pub fn send_event() {
    asm::sev();
}

/// One iteration of a busy-wait: the architecture's spin hint, `YIELD` (Rust's
/// `core::hint::spin_loop` is a lone `ISB` on AArch64, which tells nobody that this CPU waits).
/// Registered with the core at boot as its locks' wait hint (`exitless_core::util::lock`).
#[inline]
pub fn spin_hint() {
    // SAFETY: YIELD is a hint: no memory, register or flag effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Stops this CPU for good: interrupts stay masked, it waits for events forever.
pub fn halt() -> ! {
    loop {
        asm::wfe();
    }
}
