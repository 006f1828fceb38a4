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

use core::sync::atomic::{AtomicU64, Ordering};

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

/// A [`Mutex`] that counts the times it was held: [`VersionedMutex::version`] changes whenever
/// a guard was dropped, so a reader that saw version `n` when it last released the lock knows,
/// without taking it, whether anybody held it since (KVM's `kvm_vcpu_kick` handshake needs a
/// request flag per change; the count covers every change of the protected state at once).
///
/// The count is written only under the lock (a load and a store, no atomic read-modify-write)
/// and read with Acquire. A reader that finds it unchanged may still race with a holder that
/// takes the lock right after: it must be told of such a change another way (the vGIC kicks a
/// running vCPU).
pub struct VersionedMutex<T> {
    inner: Mutex<T>,
    version: AtomicU64,
}

/// The guard of a [`VersionedMutex`]: the version moves on when it is dropped.
pub struct VersionedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    version: &'a AtomicU64,
}

impl<T> VersionedMutex<T> {
    /// A lock around `value`, at version 0.
    pub const fn new(value: T) -> Self {
        VersionedMutex {
            inner: Mutex::new(value),
            version: AtomicU64::new(0),
        }
    }

    /// Takes the lock (waiting with [`wait_hint`]).
    #[inline]
    pub fn lock(&self) -> VersionedGuard<'_, T> {
        VersionedGuard {
            guard: self.inner.lock(),
            version: &self.version,
        }
    }

    /// How many times the lock was released.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// True while somebody holds it (for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for VersionedMutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VersionedMutex")
            .field("inner", &self.inner)
            .field("version", &self.version)
            .finish()
    }
}

impl<T> VersionedGuard<'_, T> {
    /// The version the lock will have once this guard is dropped.
    #[inline]
    pub fn release_version(&self) -> u64 {
        self.version.load(Ordering::Relaxed).wrapping_add(1)
    }
}

impl<T> core::ops::Deref for VersionedGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for VersionedGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for VersionedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Only the holder writes the count: a plain increment, published before the lock's own
        // release (the guard field is dropped after this).
        let next = self.version.load(Ordering::Relaxed).wrapping_add(1);
        self.version.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;
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

    #[test]
    fn a_versioned_lock_moves_on_at_every_release_and_only_then() {
        let m = VersionedMutex::new(0u32);
        assert_eq!(m.version(), 0);
        let mut g = m.lock();
        *g += 1;
        assert_eq!(g.release_version(), 1);
        assert_eq!(m.version(), 0, "not while held");
        drop(g);
        assert_eq!(m.version(), 1);
        let g = m.lock();
        drop(g);
        assert_eq!(m.version(), 2, "a guard that changed nothing counts too");
        let m = Arc::new(m);
        let ts: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 4001);
        assert_eq!(m.version(), 4003, "every release counted once");
    }
}
