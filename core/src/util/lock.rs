//! The lock every part of exitless uses, and how a CPU waits for one.
//!
//! [`Mutex`] is the `spin` crate's mutex with one change: a CPU that finds it held waits with
//! [`wait_hint`], the hint the shell registers at boot ([`set_wait_hint`]: the architecture's
//! spin hint, `YIELD`, on AArch64), instead of `core::hint::spin_loop`, which Rust emits as a
//! lone `ISB` on AArch64. `YIELD` tells the CPU (and an emulator: QEMU's single-threaded TCG,
//! which runs one CPU at a time under `-icount`, switches to the next CPU at a `YIELD`) that this
//! CPU waits for another one; an `ISB` says nothing of the kind, so under `-icount` a waiter spun
//! through its whole time slice while the holder waited for its turn.
//!
//! The core cannot issue the hint itself (it never touches hardware, see the crate's doc), so
//! the shell hands it a function once; until then, and on the host, the standard hint is used.
//!
//! Invariant: every busy-wait of the hypervisor, in a lock or in a polling loop, goes through
//! [`wait_hint`] (or the shell's own `arch::spin_hint`, the same instruction).

use spin::Once;

static HINT: Once<fn()> = Once::new();

/// The wait hint, given by the shell once at boot (later calls change nothing).
pub fn set_wait_hint(hint: fn()) {
    HINT.call_once(|| hint);
}

/// One iteration of a busy-wait: the registered hint, or `core::hint::spin_loop`.
#[inline]
pub fn wait_hint() {
    match HINT.get() {
        Some(hint) => hint(),
        None => core::hint::spin_loop(),
    }
}

/// The relax strategy of [`Mutex`]: [`wait_hint`].
pub struct WaitHint;

impl spin::RelaxStrategy for WaitHint {
    #[inline]
    fn relax() {
        wait_hint();
    }
}

/// A spin lock whose waiters use [`wait_hint`].
pub type Mutex<T> = spin::mutex::Mutex<T, WaitHint>;
/// Its guard.
pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    static HINTS: AtomicUsize = AtomicUsize::new(0);

    fn counting_hint() {
        HINTS.fetch_add(1, Ordering::Relaxed);
        std::thread::yield_now();
    }

    #[test]
    fn a_waiter_for_a_held_lock_waits_with_the_registered_hint() {
        set_wait_hint(counting_hint);
        let m = Arc::new(Mutex::new(0u32));
        let g = m.lock();
        let before = HINTS.load(Ordering::Relaxed);
        let m2 = Arc::clone(&m);
        let t = std::thread::spawn(move || *m2.lock() += 1);
        while HINTS.load(Ordering::Relaxed) == before {
            std::thread::yield_now();
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock(), 1);
        assert!(HINTS.load(Ordering::Relaxed) > before);
    }
}
