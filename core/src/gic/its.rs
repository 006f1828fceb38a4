//! The physical ITS, pure part: the command encodings exitless sends, how its tables are sized
//! from what GITS_TYPER and GITS_BASER<n> report, and the command queue's ring arithmetic. The
//! shell (`drivers::its`) allocates, writes the registers and waits; everything it decides is
//! decided here and host-tested.
//!
//! Spec: IHI 0069H 5.3 (command formats), 12.19.1 GITS_BASER<n> (Type, Entry_Size, Page_Size,
//! Size, Indirect), 12.19.4 GITS_CBASER, 12.19.5-6 GITS_CREADR/CWRITER. The field positions are
//! the ones the virtual ITS decodes (`vgic::its`), and the tests run one through the other.
//!
//! Invariants: a command is 32 bytes; the queue never fills up (one slot stays empty, so
//! CWRITER == CREADR means empty); a table plan never asks for more than 256 pages
//! (GITS_BASER<n>.Size is 8 bits) nor for a page size the ITS did not keep.

/// GITS_BASER<n>.Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableType {
    /// Unimplemented (0).
    None,
    /// Devices (1).
    Device,
    /// vPEs (2, GICv4).
    Vpe,
    /// Collections (4).
    Collection,
    /// Reserved values.
    Other(u8),
}

impl TableType {
    /// The type in a GITS_BASER<n> value.
    pub const fn of(baser: u64) -> Self {
        match (baser >> 56) & 7 {
            0 => TableType::None,
            1 => TableType::Device,
            2 => TableType::Vpe,
            4 => TableType::Collection,
            t => TableType::Other(t as u8),
        }
    }
}

/// GITS_BASER<n> fields.
pub mod baser {
    /// Valid.
    pub const VALID: u64 = 1 << 63;
    /// Two-level table.
    pub const INDIRECT: u64 = 1 << 62;
    /// InnerCache = 0b111 (Normal, inner write-back, read- and write-allocate).
    pub const INNER_WAWB: u64 = 7 << 59;
    /// Shareability = Inner Shareable.
    pub const INNER_SHAREABLE: u64 = 1 << 10;
    /// Shareability mask.
    pub const SHAREABILITY: u64 = 3 << 10;
    /// Physical address bits 47:12 (the plan keeps tables below 2^48).
    pub const PA: u64 = 0x0000_ffff_ffff_f000;
}

/// Bytes in the page sizes GITS_BASER<n>.Page_Size encodes (0b11 is reserved: 64 KiB).
pub const fn page_bytes(baser: u64) -> u64 {
    match (baser >> 8) & 3 {
        0 => 4 << 10,
        1 => 16 << 10,
        _ => 64 << 10,
    }
}

/// Bytes per entry: GITS_BASER<n>.Entry_Size + 1.
pub const fn entry_bytes(baser: u64) -> u64 {
    ((baser >> 48) & 0x1f) + 1
}

/// How one table is set up: a flat table of `pages` pages of `page` bytes, or a level-1 table
/// of that size whose entries point to level-2 pages allocated when an ID needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePlan {
    /// Page size (the Page_Size the ITS kept).
    pub page: u64,
    /// Pages of the (level-1) table, 1..=256.
    pub pages: u64,
    /// Two levels.
    pub indirect: bool,
    /// IDs the table covers.
    pub ids: u64,
}

impl TablePlan {
    /// Bytes to allocate (aligned to `page`) for the flat or level-1 table.
    pub const fn bytes(&self) -> u64 {
        self.page * self.pages
    }

    /// The GITS_BASER<n> value for the table at `pa`, keeping `read`'s Type, Entry_Size and
    /// Page_Size, asking for inner-shareable write-back memory.
    pub const fn baser(&self, read: u64, pa: u64) -> u64 {
        let keep = read & (0x7 << 56 | 0x1f << 48 | 3 << 8);
        baser::VALID
            | keep
            | baser::INNER_WAWB
            | baser::INNER_SHAREABLE
            | (pa & baser::PA)
            | if self.indirect { baser::INDIRECT } else { 0 }
            | (self.pages - 1)
    }
}

/// Plans a table that must cover IDs `0..ids` with entries of `entry` bytes in pages of
/// `page` bytes: flat when that fits in `flat_limit` bytes (and in 256 pages), else two levels
/// if the ITS allows it (`indirect_ok`, as read back from GITS_BASER<n>.Indirect), else a flat
/// table as large as the register can describe, covering fewer IDs.
pub fn plan_table(
    ids: u64,
    entry: u64,
    page: u64,
    flat_limit: u64,
    indirect_ok: bool,
) -> TablePlan {
    let entry = entry.max(1);
    let page = page.max(4096);
    let flat_bytes = ids.saturating_mul(entry);
    let flat_pages = flat_bytes.div_ceil(page).max(1);
    if (flat_bytes <= flat_limit || !indirect_ok) && flat_pages <= 256 {
        return TablePlan {
            page,
            pages: flat_pages,
            indirect: false,
            ids: ids.min(flat_pages * page / entry),
        };
    }
    if !indirect_ok {
        return TablePlan {
            page,
            pages: 256,
            indirect: false,
            ids: 256 * page / entry,
        };
    }
    // Level 1: 8-byte entries, one per level-2 page of page / entry IDs.
    let per_l2 = page / entry;
    let l1_entries = ids.div_ceil(per_l2);
    let pages = (l1_entries * 8).div_ceil(page).clamp(1, 256);
    TablePlan {
        page,
        pages,
        indirect: true,
        ids: ids.min(pages * page / 8 * per_l2),
    }
}

/// The ITS commands exitless sends (IHI 0069H 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// MAPD: device `dev` has `event_bits` EventID bits and its ITT at `itt` (valid), or is
    /// unmapped.
    Mapd {
        /// DeviceID.
        dev: u32,
        /// EventID bits (Size + 1).
        event_bits: u8,
        /// ITT address (256-byte aligned).
        itt: u64,
        /// V.
        valid: bool,
    },
    /// MAPC: collection `icid` goes to redistributor `rdbase` (or is unmapped).
    Mapc {
        /// ICID.
        icid: u16,
        /// RDbase: the processor number (GITS_TYPER.PTA = 0) or the frame's address >> 16.
        rdbase: u64,
        /// V.
        valid: bool,
    },
    /// MAPTI: (dev, event) -> LPI `intid` in collection `icid`.
    Mapti {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// The LPI.
        intid: u32,
        /// ICID.
        icid: u16,
    },
    /// INT: makes (dev, event)'s LPI pending.
    Int {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// DISCARD: removes (dev, event)'s mapping and its pending state.
    Discard {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// MOVI: (dev, event) goes to collection `icid`.
    Movi {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// The new collection.
        icid: u16,
    },
    /// INV: rereads (dev, event)'s LPI configuration.
    Inv {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// INVALL: rereads the configuration of every LPI of collection `icid`.
    Invall {
        /// ICID.
        icid: u16,
    },
    /// SYNC: every earlier command's effect on redistributor `rdbase` is visible.
    Sync {
        /// RDbase.
        rdbase: u64,
    },
}

impl Command {
    /// The 32-byte encoding, as four little-endian doublewords.
    pub const fn encode(&self) -> [u64; 4] {
        const fn dev_op(op: u64, dev: u32) -> u64 {
            op | (dev as u64) << 32
        }
        match *self {
            Command::Mapd {
                dev,
                event_bits,
                itt,
                valid,
            } => [
                dev_op(0x08, dev),
                (event_bits.saturating_sub(1) & 0x1f) as u64,
                (itt & 0x000f_ffff_ffff_ff00) | (valid as u64) << 63,
                0,
            ],
            Command::Mapc {
                icid,
                rdbase,
                valid,
            } => [
                0x09,
                0,
                icid as u64 | (rdbase & 0xf_ffff_ffff) << 16 | (valid as u64) << 63,
                0,
            ],
            Command::Mapti {
                dev,
                event,
                intid,
                icid,
            } => [
                dev_op(0x0a, dev),
                event as u64 | (intid as u64) << 32,
                icid as u64,
                0,
            ],
            Command::Int { dev, event } => [dev_op(0x03, dev), event as u64, 0, 0],
            Command::Movi { dev, event, icid } => [dev_op(0x01, dev), event as u64, icid as u64, 0],
            Command::Discard { dev, event } => [dev_op(0x0f, dev), event as u64, 0, 0],
            Command::Inv { dev, event } => [dev_op(0x0c, dev), event as u64, 0, 0],
            Command::Invall { icid } => [0x0d, 0, icid as u64, 0],
            Command::Sync { rdbase } => [0x05, 0, (rdbase & 0xf_ffff_ffff) << 16, 0],
        }
    }
}

/// The command queue's ring: `size` bytes, offsets in bytes, 32 per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdRing {
    /// Queue size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// The next free slot (what GITS_CWRITER says once written).
    pub cwriter: u64,
}

impl CmdRing {
    /// An empty ring of `size` bytes.
    pub const fn new(size: u64) -> Self {
        CmdRing { size, cwriter: 0 }
    }

    /// Free slots given the ITS's GITS_CREADR offset (one slot always stays empty).
    pub const fn free(&self, creadr: u64) -> u64 {
        let used = (self.cwriter + self.size - creadr % self.size) % self.size;
        (self.size - used) / 32 - 1
    }

    /// The offset to write the next command at, and moves past it; `None` when full.
    pub fn push(&mut self, creadr: u64) -> Option<u64> {
        if self.free(creadr) == 0 {
            return None;
        }
        let at = self.cwriter;
        self.cwriter = (self.cwriter + 32) % self.size;
        Some(at)
    }

    /// True once the ITS has read every command written (GITS_CREADR == GITS_CWRITER).
    pub const fn done(&self, creadr: u64) -> bool {
        creadr & 0xf_ffe0 == self.cwriter
    }
}

/// GITS_CREADR.Stalled: the ITS stopped on a command error (GITS_TYPER.SEIS may report it).
pub const CREADR_STALLED: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_table_is_flat_and_covers_every_id() {
        let p = plan_table(65536, 8, 65536, 1 << 20, true);
        assert_eq!((p.pages, p.indirect, p.ids), (8, false, 65536));
        assert_eq!(p.bytes(), 512 << 10);
    }

    #[test]
    fn a_big_table_goes_two_level_when_the_its_allows_it() {
        let p = plan_table(1 << 20, 16, 4096, 1 << 20, true);
        assert!(p.indirect);
        assert_eq!(p.ids, 1 << 20);
        // 256 IDs per level-2 page: 4096 level-1 entries, 8 pages of them.
        assert_eq!(p.pages, 8);
    }

    #[test]
    fn without_two_levels_a_table_is_capped_at_256_pages() {
        let p = plan_table(1 << 24, 8, 4096, 1 << 20, false);
        assert_eq!((p.pages, p.indirect), (256, false));
        assert_eq!(p.ids, 256 * 4096 / 8);
    }

    #[test]
    fn the_baser_value_keeps_type_entry_size_and_page_size() {
        let read = 1u64 << 56 | 7 << 48 | 2 << 8 | 0xabc; // Device, 8 bytes, 64 KiB
        let p = plan_table(1024, 8, page_bytes(read), 1 << 20, false);
        let v = p.baser(read, 0x4123_0000);
        assert_eq!(TableType::of(v), TableType::Device);
        assert_eq!((entry_bytes(v), page_bytes(v)), (8, 65536));
        assert_eq!(v & baser::PA, 0x4123_0000);
        assert_eq!(v & 0xff, 0, "one page: Size = 0");
        assert_ne!(v & baser::VALID, 0);
    }

    #[test]
    fn the_ring_keeps_one_slot_empty_and_wraps() {
        let mut r = CmdRing::new(4096);
        assert_eq!(r.free(0), 127);
        for i in 0..127 {
            assert_eq!(r.push(0), Some(i * 32));
        }
        assert_eq!(r.push(0), None, "full: CWRITER may not reach CREADR");
        assert!(!r.done(0));
        assert_eq!(r.push(64), Some(127 * 32));
        assert_eq!(r.push(64), Some(0), "wrapped");
        assert!(r.done(32));
    }
}
