//! Data and instruction cache maintenance by virtual address (Arm ARM D7.5.9 "Data cache
//! maintenance instructions"). exitless maps memory identity (VA = PA), so these serve for
//! physical ranges too.

use core::arch::asm;

/// Smallest data cache line in bytes: 4 << CTR_EL0.DminLine (bits 19:16).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans and invalidates `start..start + len` to the point of coherency, so that a CPU or
/// device that reads memory with caches off sees what this CPU wrote.
pub fn clean_invalidate(start: u64, len: u64) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: DC CIVAC only moves data between the cache and memory; it changes no value the
        // program can observe. A faulting address would be a hypervisor bug caught by the
        // vector table, not memory unsafety.
        unsafe { asm!("dc civac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates `start..start + len` from the data cache without writing it back, so that
/// reads after the MMU is turned on see what was written to memory with the MMU off.
///
/// # Safety
///
/// Dirty cached data in the range is discarded: the caller must know that memory holds the
/// current contents (true before this CPU first turns its caches on).
pub unsafe fn invalidate(start: u64, len: u64) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: the caller guarantees no dirty line in the range holds needed data.
        unsafe { asm!("dc ivac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates the whole instruction cache to the point of unification.
pub fn invalidate_icache() {
    // SAFETY: instruction-cache invalidation and barriers only affect performance.
    unsafe {
        asm!(
            "ic iallu",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
