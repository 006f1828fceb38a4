//! The per-VM MMIO bus: which emulated device answers a trapped guest access, and the values
//! that travel between the trap handler and a device.
//!
//! The bus follows rust-vmm `vm-device`'s `Bus` (`src/bus/mod.rs`): a `BTreeMap` keyed by the
//! guest-physical range a device occupies, looked up by taking the last range that starts at or
//! below the address. Unlike `vm-device`, a range maps to a small `Copy` value the VM defines
//! (usually an enum naming its devices), not to a trait object or a function pointer, so
//! dispatch is a `match` the compiler checks for completeness (Hafnium: "don't use function
//! pointers").
//!
//! Invariants:
//! * No two ranges on a bus share a byte, and no range is empty: [`MmioBus::insert`] rejects
//!   both, naming the devices involved.
//! * A lookup never panics, whatever address the guest used.

use alloc::collections::BTreeMap;
use core::fmt;

use crate::mm::MemRange;

/// Why a device could not be put on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// The new range shares at least one byte with a range already on the bus.
    Overlap {
        /// The device being inserted.
        name: &'static str,
        /// Its range.
        range: MemRange,
        /// The device already on the bus.
        existing: &'static str,
        /// The range that device holds.
        existing_range: MemRange,
    },
    /// The range holds no byte (`end <= start`).
    EmptyRange {
        /// The device being inserted.
        name: &'static str,
        /// Its range.
        range: MemRange,
    },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Overlap {
                name,
                range,
                existing,
                existing_range,
            } => write!(
                f,
                "MMIO range of {name} {range} overlaps {existing} {existing_range}"
            ),
            BusError::EmptyRange { name, range } => {
                write!(f, "MMIO range of {name} is empty ({range:?})")
            }
        }
    }
}

/// One device on the bus.
#[derive(Debug, Clone, Copy)]
struct Slot<D: Copy> {
    dev: D,
    name: &'static str,
}

/// Routes guest-physical addresses to devices of type `D` (a `Copy` id, typically an enum).
#[derive(Debug, Clone)]
pub struct MmioBus<D: Copy> {
    /// Ordered by `MemRange`'s `Ord`, that is by start address first; the ranges are disjoint.
    devices: BTreeMap<MemRange, Slot<D>>,
}

impl<D: Copy> Default for MmioBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Copy> MmioBus<D> {
    /// An empty bus.
    pub const fn new() -> Self {
        MmioBus {
            devices: BTreeMap::new(),
        }
    }

    /// Puts `dev`, called `name` in errors and listings, at `range`.
    ///
    /// Fails if `range` is empty or shares a byte with a range already on the bus; the bus is
    /// then unchanged. Ranges that merely touch (one ends where the other starts) are fine.
    pub fn insert(&mut self, range: MemRange, dev: D, name: &'static str) -> Result<(), BusError> {
        if range.is_empty() {
            return Err(BusError::EmptyRange { name, range });
        }
        // The ranges on the bus are disjoint, so among those starting below `range.end` the one
        // that starts last also ends last: it is the only one that can reach into `range`.
        let below_end = MemRange {
            start: range.end,
            end: 0,
        };
        if let Some((existing_range, slot)) = self.devices.range(..below_end).next_back()
            && existing_range.overlaps(&range)
        {
            return Err(BusError::Overlap {
                name,
                range,
                existing: slot.name,
                existing_range: *existing_range,
            });
        }
        self.devices.insert(range, Slot { dev, name });
        Ok(())
    }

    /// The device whose range holds `addr`, the offset of `addr` inside that range, and the
    /// range itself.
    pub fn find(&self, addr: u64) -> Option<(D, u64, MemRange)> {
        // The last range starting at or below `addr` is the only candidate.
        let at_addr = MemRange {
            start: addr,
            end: u64::MAX,
        };
        let (range, slot) = self.devices.range(..=at_addr).next_back()?;
        range
            .contains(addr)
            .then(|| (slot.dev, addr - range.start, *range))
    }

    /// Every device on the bus as `(range, device, name)`, in address order (for debugging and
    /// the boot log).
    pub fn iter(&self) -> impl Iterator<Item = (MemRange, D, &'static str)> + '_ {
        self.devices
            .iter()
            .map(|(range, slot)| (*range, slot.dev, slot.name))
    }

    /// Number of devices on the bus.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True if no device is on the bus.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// The values that travel between the trap handler and a device live with the devices
/// (`crate::dev`), which sit below the VM; the bus speaks them too.
pub use crate::dev::{Access, MmioResult};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Dev {
        Uart,
        Gicd,
        Rtc,
    }

    fn r(start: u64, end: u64) -> MemRange {
        MemRange { start, end }
    }

    fn bus() -> MmioBus<Dev> {
        let mut bus = MmioBus::new();
        bus.insert(r(0x0900_0000, 0x0900_1000), Dev::Uart, "uart")
            .unwrap();
        bus.insert(r(0x0800_0000, 0x0801_0000), Dev::Gicd, "gicd")
            .unwrap();
        bus
    }

    #[test]
    fn empty_bus_finds_nothing() {
        let bus: MmioBus<Dev> = MmioBus::new();
        assert!(bus.is_empty());
        assert_eq!(bus.find(0), None);
        assert_eq!(bus.find(u64::MAX), None);
        assert_eq!(bus.iter().count(), 0);
    }

    #[test]
    fn find_covers_start_to_end_minus_one_but_not_end() {
        let bus = bus();
        let uart = r(0x0900_0000, 0x0900_1000);
        assert_eq!(bus.find(0x0900_0000), Some((Dev::Uart, 0, uart)));
        assert_eq!(bus.find(0x0900_0fff), Some((Dev::Uart, 0xfff, uart)));
        assert_eq!(bus.find(0x0900_1000), None);
        assert_eq!(bus.find(0x08ff_ffff), None);
    }

    #[test]
    fn find_returns_offset_inside_range() {
        let bus = bus();
        let (dev, offset, range) = bus.find(0x0800_0104).unwrap();
        assert_eq!(dev, Dev::Gicd);
        assert_eq!(offset, 0x104);
        assert_eq!(range, r(0x0800_0000, 0x0801_0000));
    }

    #[test]
    fn find_in_gap_between_devices_is_none() {
        let bus = bus();
        assert_eq!(bus.find(0x0801_0000), None);
        assert_eq!(bus.find(0x0850_0000), None);
        assert_eq!(bus.find(0), None);
        assert_eq!(bus.find(u64::MAX), None);
    }

    #[test]
    fn insert_rejects_overlap_naming_both_devices() {
        let mut bus = bus();
        let err = bus
            .insert(r(0x0900_0800, 0x0900_2000), Dev::Rtc, "rtc")
            .unwrap_err();
        assert_eq!(
            err,
            BusError::Overlap {
                name: "rtc",
                range: r(0x0900_0800, 0x0900_2000),
                existing: "uart",
                existing_range: r(0x0900_0000, 0x0900_1000),
            }
        );
        let msg = alloc::format!("{err}");
        assert!(msg.contains("rtc") && msg.contains("uart"), "{msg}");
        assert_eq!(bus.len(), 2);
    }

    #[test]
    fn insert_rejects_range_enclosing_or_inside_existing() {
        let mut bus = bus();
        assert!(matches!(
            bus.insert(r(0x0700_0000, 0x0a00_0000), Dev::Rtc, "rtc"),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(r(0x0900_0010, 0x0900_0020), Dev::Rtc, "rtc"),
            Err(BusError::Overlap {
                existing: "uart",
                ..
            })
        ));
        assert!(matches!(
            bus.insert(r(0x0900_0000, 0x0900_1000), Dev::Rtc, "rtc"),
            Err(BusError::Overlap { .. })
        ));
        assert_eq!(bus.len(), 2);
    }

    #[test]
    fn insert_accepts_adjacent_ranges() {
        let mut bus = bus();
        bus.insert(r(0x0900_1000, 0x0900_2000), Dev::Rtc, "rtc")
            .unwrap();
        bus.insert(r(0x08ff_f000, 0x0900_0000), Dev::Rtc, "rtc-low")
            .unwrap();
        assert_eq!(bus.find(0x0900_0fff).map(|f| f.0), Some(Dev::Uart));
        assert_eq!(bus.find(0x0900_1000).map(|f| f.0), Some(Dev::Rtc));
        assert_eq!(bus.find(0x08ff_ffff).map(|f| f.1), Some(0xfff));
    }

    #[test]
    fn insert_rejects_empty_range() {
        let mut bus: MmioBus<Dev> = MmioBus::new();
        assert_eq!(
            bus.insert(r(0x1000, 0x1000), Dev::Rtc, "rtc"),
            Err(BusError::EmptyRange {
                name: "rtc",
                range: r(0x1000, 0x1000)
            })
        );
        assert!(bus.insert(r(0x2000, 0x1000), Dev::Rtc, "rtc").is_err());
        assert!(bus.is_empty());
    }

    #[test]
    fn range_reaching_top_of_address_space_is_found() {
        let mut bus = MmioBus::new();
        bus.insert(r(u64::MAX - 0xfff, u64::MAX), Dev::Rtc, "top")
            .unwrap();
        assert_eq!(bus.find(u64::MAX - 1).map(|f| f.1), Some(0xffe));
        assert_eq!(bus.find(u64::MAX), None);
    }

    #[test]
    fn iter_lists_devices_in_address_order() {
        let bus = bus();
        let names: Vec<_> = bus.iter().map(|(_, _, name)| name).collect();
        assert_eq!(names, ["gicd", "uart"]);
    }

    #[test]
    fn access_mask_follows_width() {
        assert_eq!(Access::read(0, 1).mask(), 0xff);
        assert_eq!(Access::read(0, 2).mask(), 0xffff);
        assert_eq!(Access::write(0, 4, 1).mask(), 0xffff_ffff);
        assert_eq!(Access::read(0, 8).mask(), u64::MAX);
        assert_eq!(Access::read(0, 3).mask(), 0);
    }
}
