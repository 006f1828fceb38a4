//! Emulated devices, pure models: each one holds a device's register state and answers the
//! guest accesses the VM's MMIO bus routes to it, as an [`Access`] answered with an [`MmioResult`]. A model never touches
//! hardware: the hypervisor feeds it input (received bytes) and collects its output (transmitted
//! bytes, the level of its interrupt line) through plain methods, so every rule is unit-tested
//! on the host.
//!
//! Invariant: no guest access, whatever its offset, width or value, can make a model panic;
//! offsets a model does not implement read as zero and ignore writes.

pub mod pl011;

/// One trapped guest access, as a device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Byte offset of the access inside the device's range.
    pub offset: u64,
    /// Access size in bytes (1, 2, 4 or 8 from a data abort syndrome).
    pub width: u8,
    /// True for a store, false for a load.
    pub write: bool,
    /// The value stored (low `width` bytes); zero for a load.
    pub value: u64,
}

impl Access {
    /// A load of `width` bytes at `offset`.
    pub const fn read(offset: u64, width: u8) -> Self {
        Access {
            offset,
            width,
            write: false,
            value: 0,
        }
    }

    /// A store of the low `width` bytes of `value` at `offset`.
    pub const fn write(offset: u64, width: u8, value: u64) -> Self {
        Access {
            offset,
            width,
            write: true,
            value,
        }
    }

    /// The bits an access of this width carries: `0xff` for a byte, ..., all ones for 8 bytes;
    /// zero for a width that is not 1, 2, 4 or 8.
    pub const fn mask(&self) -> u64 {
        match self.width {
            1 => 0xff,
            2 => 0xffff,
            4 => 0xffff_ffff,
            8 => u64::MAX,
            _ => 0,
        }
    }
}

/// What a device did with an [`Access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioResult {
    /// A load completed with this value (zero-extended to 64 bits; the trap handler applies the
    /// syndrome's sign extension).
    Read(u64),
    /// A store completed.
    Written,
    /// The access is not allowed: the guest gets a synchronous external abort.
    Fault,
}
