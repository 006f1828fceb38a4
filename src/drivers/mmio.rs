//! [`MmioRef`]: a typed, shared reference to a device's register block at a fixed physical
//! address (the Tock `StaticRef` pattern). The one `unsafe` is the constructor's promise; every
//! use afterwards is safe.

use core::marker::PhantomData;
use core::ops::Deref;

/// A register block of type `T` at a fixed address, valid for the whole run.
pub struct MmioRef<T> {
    base: usize,
    _block: PhantomData<*const T>,
}

impl<T> MmioRef<T> {
    /// Wraps the register block at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a device whose registers have the layout `T`, mapped as
    /// Device memory (or the MMU off) for the rest of the run, and `T` must only contain
    /// `tock_registers` cells (interior mutability through volatile accesses).
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            base,
            _block: PhantomData,
        }
    }
}

impl<T> Clone for MmioRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MmioRef<T> {}

impl<T> Deref for MmioRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `new`'s caller promised that `base` holds a `T` register block valid for the
        // program's duration; register cells are accessed only through volatile operations.
        unsafe { &*(self.base as *const T) }
    }
}

// SAFETY: the block is device memory reached through volatile accesses of `tock_registers`
// cells; sharing the address between CPUs is what the hardware is built for.
unsafe impl<T> Send for MmioRef<T> {}
// SAFETY: as for `Send`: all access goes through the cells' volatile reads and writes.
unsafe impl<T> Sync for MmioRef<T> {}

/// A block of 32-bit registers reached by byte offset with volatile accesses: the shell's side
/// of the core's `platform::bcm2711::RegisterBlock`, for register sequences the core decides.
pub struct RawRegs {
    base: usize,
}

impl RawRegs {
    /// The register block at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be a device's register block, mapped as Device memory (or the MMU off), that
    /// no other code drives while this value is used, and every offset the user passes must be
    /// a 4-byte-aligned register of that device.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }
}

impl exitless_core::platform::bcm2711::RegisterBlock for RawRegs {
    fn read(&mut self, offset: usize) -> u32 {
        // SAFETY: `new`'s caller promised a device register at `base + offset`.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}
