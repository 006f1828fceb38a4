//! Memory management, pure part: address and range types, the page-table builder shared by the
//! EL2 stage-1 tables and every VM's stage-2 tables, and the physical region allocator that
//! hands out the memory the device tree reports as free.
//!
//! Invariant: nothing here dereferences an address. Tables are reached through the
//! [`pgtable::FrameAlloc`] trait, whose hardware implementation lives in `arch`.

pub mod pgtable;
pub mod region;

use core::fmt;

/// Where the hypervisor image sits in memory (the shell fills it from the linker script's
/// symbols; the EL2 tables map each part with its own permissions).
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    /// `_start`: the Image header, first byte of text.
    pub start: u64,
    /// End of text (read-only, executable).
    pub text_end: u64,
    /// End of read-only data (including relocations and GOT).
    pub rodata_end: u64,
    /// End of the image, .bss and stacks included.
    pub end: u64,
}

/// One VM's RAM, read by guest-physical address (IPA): the one way the core reads guest memory
/// (the ITS command queue, the LPI property and pending tables, the ITS's level-1 tables). The
/// shell's implementation answers only for addresses inside that VM's own RAM, so a table
/// address a guest chose can never make exitless read another VM's memory or its own.
pub trait GuestRam {
    /// Copies `buf.len()` bytes from IPA `ipa` into `buf`; false, and `buf` left unspecified,
    /// if any of those bytes lies outside the VM's RAM.
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool;

    /// The little-endian 64-bit word at `ipa`, if it lies in the VM's RAM.
    fn read_u64(&self, ipa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(ipa, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// The byte at `ipa`, if it lies in the VM's RAM.
    fn read_u8(&self, ipa: u64) -> Option<u8> {
        let mut b = [0u8; 1];
        self.read(ipa, &mut b).then_some(b[0])
    }
}

/// Guest RAM held in a byte slice at IPA `base` (host tests, the fuzzers).
#[derive(Debug, Clone, Copy)]
pub struct SliceRam<'a> {
    /// IPA of `bytes[0]`.
    pub base: u64,
    /// The RAM.
    pub bytes: &'a [u8],
}

impl GuestRam for SliceRam<'_> {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        let Some(start) = ipa.checked_sub(self.base) else {
            return false;
        };
        let src = usize::try_from(start)
            .ok()
            .and_then(|s| self.bytes.get(s..s.checked_add(buf.len())?));
        match src {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// 64 KiB of zeroed guest RAM at QEMU virt's RAM base, for the host tests and the fuzzers.
#[cfg(any(test, feature = "fuzzing"))]
pub static ZEROED_RAM: SliceRam<'static> = SliceRam {
    base: 0x4000_0000,
    bytes: &[0; 0x1_0000],
};

/// A 4 KiB page, the only translation granule exitless uses.
pub const PAGE_SIZE: u64 = 4096;

/// A range of physical (or intermediate-physical) addresses, `start..end`, end exclusive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemRange {
    /// First address in the range.
    pub start: u64,
    /// First address after the range.
    pub end: u64,
}

impl MemRange {
    /// The range `start..start + size`; `None` if it would wrap around the address space.
    pub const fn with_size(start: u64, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// Number of bytes in the range.
    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True if `addr` lies in the range.
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end
    }

    /// True if the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &MemRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// True if `other` lies wholly inside this range.
    pub const fn covers(&self, other: &MemRange) -> bool {
        other.start >= self.start && other.end <= self.end
    }
}

impl fmt::Debug for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}

impl fmt::Display for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#011x}-{:#011x}]",
            self.start,
            self.end.wrapping_sub(1)
        )
    }
}

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Rounds `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_overlap_is_half_open() {
        let a = MemRange {
            start: 0x1000,
            end: 0x2000,
        };
        let b = MemRange {
            start: 0x2000,
            end: 0x3000,
        };
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&MemRange {
            start: 0x1fff,
            end: 0x2001
        }));
        assert!(a.covers(&MemRange {
            start: 0x1000,
            end: 0x2000
        }));
        assert!(!a.covers(&MemRange {
            start: 0x1000,
            end: 0x2001
        }));
    }

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(0x1234, 0x1000), 0x1000);
        assert_eq!(align_up(0x1234, 0x1000), Some(0x2000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
        assert_eq!(MemRange::with_size(u64::MAX, 2), None);
    }
}
