//! The architected generic timer's counter (Arm ARM D11 "The Generic Timer"), used for time
//! stamps. CNTFRQ_EL0 is read, never assumed: QEMU says 62.5 MHz, the Raspberry Pi 4 54 MHz.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

static BOOT_TICKS: AtomicU64 = AtomicU64::new(0);

/// The physical counter (CNTPCT_EL0), read after an ISB so it is not taken early.
#[inline]
pub fn ticks() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// Counter frequency in Hz.
#[inline]
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Marks the boot time that [`since_boot`] counts from.
pub fn mark_boot() {
    BOOT_TICKS.store(ticks(), Ordering::Relaxed);
}

/// Counter ticks since [`mark_boot`].
pub fn since_boot() -> u64 {
    ticks().wrapping_sub(BOOT_TICKS.load(Ordering::Relaxed))
}

/// CNTHCTL_EL2 while no guest runs on this CPU: the EL1 counter and timer accessible
/// (EL1PCTEN, EL1PCEN) and an event stream (EVNTEN) from counter bit 15 (EVNTI), about every
/// millisecond at 62.5 MHz: a CPU waiting in `wfe` wakes up periodically to look for work
/// (console input) even if nobody sends it an event.
const CNTHCTL_EL2_HOST: u64 = 0b11 | 1 << 2 | 15 << 4;

/// Installs the host's CNTHCTL_EL2 (see [`CNTHCTL_EL2_HOST`]).
pub fn host_event_stream() {
    // SAFETY: CNTHCTL_EL2 only controls EL1/EL0 timer access and the event stream.
    unsafe {
        core::arch::asm!("msr cnthctl_el2, {}", "isb", in(reg) CNTHCTL_EL2_HOST, options(nostack))
    };
}

/// Busy-waits for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = ticks() + us * frequency() / 1_000_000;
    while ticks() < end {
        crate::arch::spin_hint();
    }
}
