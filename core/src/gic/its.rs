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
    /// CLEAR: removes (dev, event)'s pending state (physical or virtual).
    Clear {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// VMAPP (GICv4): vPE `vpe` is on redistributor `rdbase`, its virtual pending table at
    /// `vpt` covering `id_bits` interrupt ID bits (or is unmapped).
    Vmapp {
        /// vPEID.
        vpe: u16,
        /// RDbase (as in MAPC).
        rdbase: u64,
        /// The virtual pending table (64 KiB aligned).
        vpt: u64,
        /// ID bits the table covers (VPT_size + 1).
        id_bits: u8,
        /// V.
        valid: bool,
    },
    /// VMAPTI (GICv4): (dev, event) -> virtual LPI `vintid` of vPE `vpe`, with doorbell LPI
    /// `doorbell` (1023: none).
    Vmapti {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// vPEID.
        vpe: u16,
        /// The guest's LPI.
        vintid: u32,
        /// Physical doorbell LPI, or [`NO_DOORBELL`].
        doorbell: u32,
    },
    /// VMOVI (GICv4): (dev, event)'s virtual LPI goes to vPE `vpe`; the doorbell is kept (D = 0).
    Vmovi {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// The new vPEID.
        vpe: u16,
    },
    /// VSYNC (GICv4): every earlier command's effect on vPE `vpe` is visible.
    Vsync {
        /// vPEID.
        vpe: u16,
    },
    /// VINVALL (GICv4): rereads the configuration of every virtual LPI of vPE `vpe`.
    Vinvall {
        /// vPEID.
        vpe: u16,
    },
    /// VMOVP (GICv4, an ITS with GITS_TYPER.VMOVP = 1: no ITSList, no SeqNum): vPE `vpe` is
    /// now on redistributor `rdbase`.
    Vmovp {
        /// vPEID.
        vpe: u16,
        /// RDbase of its new redistributor.
        rdbase: u64,
    },
}

/// The doorbell INTID that means "no doorbell" in VMAPTI/VMAPI (IHI 0069H 5.3.26).
pub const NO_DOORBELL: u32 = 1023;

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
            Command::Clear { dev, event } => [dev_op(0x04, dev), event as u64, 0, 0],
            Command::Vmapp {
                vpe,
                rdbase,
                vpt,
                id_bits,
                valid,
            } => [
                0x29,
                (vpe as u64) << 32,
                (rdbase & 0xf_ffff_ffff) << 16 | (valid as u64) << 63,
                (vpt & 0x000f_ffff_ffff_0000) | (id_bits.saturating_sub(1) & 0x1f) as u64,
            ],
            Command::Vmapti {
                dev,
                event,
                vpe,
                vintid,
                doorbell,
            } => [
                dev_op(0x2a, dev),
                event as u64 | (vpe as u64) << 32,
                vintid as u64 | (doorbell as u64) << 32,
                0,
            ],
            Command::Vmovi { dev, event, vpe } => {
                [dev_op(0x21, dev), event as u64 | (vpe as u64) << 32, 0, 0]
            }
            Command::Vsync { vpe } => [0x25, (vpe as u64) << 32, 0, 0],
            Command::Vinvall { vpe } => [0x2d, (vpe as u64) << 32, 0, 0],
            Command::Vmovp { vpe, rdbase } => {
                [0x22, (vpe as u64) << 32, (rdbase & 0xf_ffff_ffff) << 16, 0]
            }
        }
    }
}

/// A vPE's residency on a redistributor (GICv4.0): the values exitless writes to
/// GICR_VPROPBASER and GICR_VPENDBASER (IHI 0069H 12.11.36-37), and where the vPE is.
///
/// Rules: a vPE is resident on at most one redistributor; GICR_VPENDBASER goes Valid 0 -> 1
/// only from Valid = 0 (a change while Valid is UNPREDICTABLE), GICR_VPROPBASER is written
/// first; becoming resident on a redistributor other than the one VMAPP (or the last VMOVP)
/// named needs a VMOVP first, or the ITS keeps ringing the old one; after Valid 1 -> 0 the
/// redistributor is done with the table once Dirty reads 0, and PendingLast then says whether
/// a virtual LPI is pending.
pub mod vpe {
    /// GICR_VPENDBASER.Valid.
    pub const VALID: u64 = 1 << 63;
    /// GICR_VPENDBASER.PendingLast.
    pub const PENDING_LAST: u64 = 1 << 61;
    /// GICR_VPENDBASER.Dirty.
    pub const DIRTY: u64 = 1 << 60;
    /// Physical address bits 51:16 of the virtual pending table.
    pub const VPT_PA: u64 = 0x000f_ffff_ffff_0000;
    /// Physical address bits 51:12 of the virtual property table.
    pub const VPROP_PA: u64 = 0x000f_ffff_ffff_f000;
    /// InnerCache (9:7) write-back read/write-allocate, Shareability (11:10) Inner Shareable:
    /// the same fields in both registers.
    const ATTRS: u64 = 7 << 7 | 1 << 10;

    /// GICR_VPROPBASER for the VM's property table at `table` covering `id_bits` ID bits.
    pub const fn vpropbaser(table: u64, id_bits: u8) -> u64 {
        (table & VPROP_PA) | ATTRS | (id_bits.saturating_sub(1) & 0x1f) as u64
    }

    /// GICR_VPENDBASER making the vPE whose pending table is at `vpt` resident: Valid, and
    /// PendingLast (a 0 -> 1 write may set it: the redistributor scans the table).
    pub const fn vpendbaser_resident(vpt: u64) -> u64 {
        VALID | PENDING_LAST | (vpt & VPT_PA) | ATTRS
    }

    /// GICR_VPENDBASER `current` with Valid cleared (the vPE leaves).
    pub const fn vpendbaser_off(current: u64) -> u64 {
        current & !VALID
    }

    /// After Valid 1 -> 0 and Dirty clear: a virtual LPI was pending.
    pub const fn pending_last(after: u64) -> bool {
        after & PENDING_LAST != 0
    }

    /// Where a vPE is: the redistributor the ITS delivers it to (VMAPP/VMOVP) and whether it
    /// is resident there.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Residency {
        /// RDbase the ITS knows the vPE by.
        pub rdbase: u64,
        /// GICR_VPENDBASER.Valid is set for it on that redistributor.
        pub resident: bool,
    }

    impl Residency {
        /// Mapped by VMAPP on `rdbase`, not resident.
        pub const fn mapped(rdbase: u64) -> Self {
            Residency {
                rdbase,
                resident: false,
            }
        }

        /// The vPE is to be resident on `rdbase`: `Some(rdbase)` when a VMOVP must move it
        /// there first; `None` if it already is resident (nothing to write).
        pub fn load(&mut self, rdbase: u64) -> Option<Option<u64>> {
            if self.resident && self.rdbase == rdbase {
                return None;
            }
            debug_assert!(!self.resident, "put before load on another redistributor");
            let vmovp = (self.rdbase != rdbase).then_some(rdbase);
            *self = Residency {
                rdbase,
                resident: true,
            };
            Some(vmovp)
        }

        /// The vPE leaves its redistributor: true if it was resident (GICR_VPENDBASER must
        /// be made invalid).
        pub fn put(&mut self) -> bool {
            core::mem::replace(&mut self.resident, false)
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

    /// IHI 0069H 5.3: VMAPP carries the vPEID in DW1[47:32], RDbase in DW2[51:16] with V in
    /// DW2[63], the virtual pending table's address bits 51:16 and VPT_size (ID bits - 1) in
    /// DW3; the GICv4 opcodes are the GICv3 ones with bit 5 set.
    #[test]
    fn vmapp_encodes_vpeid_rdbase_vpt_and_its_size() {
        let c = Command::Vmapp {
            vpe: 7,
            rdbase: 3,
            vpt: 0x4abc_0000,
            id_bits: 16,
            valid: true,
        }
        .encode();
        assert_eq!(c[0] & 0xff, 0x29, "VMAPP = MAPC | 0x20");
        assert_eq!((c[1] >> 32) & 0xffff, 7);
        assert_eq!((c[2] >> 16) & 0xf_ffff_ffff, 3);
        assert_eq!(c[2] >> 63, 1);
        assert_eq!(c[3] & 0x000f_ffff_ffff_0000, 0x4abc_0000);
        assert_eq!(c[3] & 0x1f, 15);
    }

    /// VMAPTI: DeviceID in DW0[63:32], EventID in DW1[31:0], vPEID in DW1[47:32], the virtual
    /// INTID in DW2[31:0] and the doorbell in DW2[63:32]; VMOVI keeps D (DW2[0]) clear.
    #[test]
    fn vmapti_and_vmovi_encode_the_guest_event_and_vintid_as_they_are() {
        let c = Command::Vmapti {
            dev: 8,
            event: 2,
            vpe: 5,
            vintid: 8195,
            doorbell: NO_DOORBELL,
        }
        .encode();
        assert_eq!(c[0], 0x2a | 8 << 32);
        assert_eq!(c[1], 2 | 5 << 32);
        assert_eq!(c[2], 8195 | (NO_DOORBELL as u64) << 32);
        let m = Command::Vmovi {
            dev: 8,
            event: 2,
            vpe: 6,
        }
        .encode();
        assert_eq!(m[0], 0x21 | 8 << 32);
        assert_eq!(m[1], 2 | 6 << 32);
        assert_eq!(m[2] & 1, 0, "D = 0: the doorbell is not changed");
        assert_eq!(Command::Vsync { vpe: 9 }.encode()[..2], [0x25, 9 << 32]);
        assert_eq!(Command::Vinvall { vpe: 9 }.encode()[..2], [0x2d, 9 << 32]);
        assert_eq!(
            Command::Clear { dev: 8, event: 2 }.encode(),
            [0x04 | 8 << 32, 2, 0, 0]
        );
    }

    /// VMOVP (ITS with GITS_TYPER.VMOVP = 1): vPEID in DW1[47:32], RDbase in DW2[51:16].
    #[test]
    fn vmovp_encodes_the_vpe_and_its_new_redistributor() {
        let c = Command::Vmovp { vpe: 4, rdbase: 2 }.encode();
        assert_eq!(c, [0x22, 4 << 32, 2 << 16, 0]);
    }

    /// GICR_VPROPBASER: the table's address bits 51:12 and IDbits - 1; GICR_VPENDBASER:
    /// Valid, the pending table's address bits 51:16; leaving clears Valid only.
    #[test]
    fn vpe_residency_register_values_follow_gicr_vpropbaser_and_vpendbaser() {
        let prop = vpe::vpropbaser(0x4a12_3000, 16);
        assert_eq!(prop & vpe::VPROP_PA, 0x4a12_3000);
        assert_eq!(prop & 0x1f, 15);
        let on = vpe::vpendbaser_resident(0x4b01_0000);
        assert_ne!(on & vpe::VALID, 0);
        assert_eq!(on & vpe::VPT_PA, 0x4b01_0000);
        let off = vpe::vpendbaser_off(on);
        assert_eq!(off & vpe::VALID, 0);
        assert_eq!(off & vpe::VPT_PA, 0x4b01_0000, "only Valid changes");
        assert!(vpe::pending_last(off | vpe::PENDING_LAST));
        assert!(!vpe::pending_last(off & !vpe::PENDING_LAST));
    }

    /// A vPE is made resident where the ITS delivers it; on another redistributor a VMOVP
    /// comes first; loading it where it already is resident writes nothing; put reports
    /// whether GICR_VPENDBASER must be cleared.
    #[test]
    fn a_vpe_moves_with_vmovp_before_it_becomes_resident_elsewhere() {
        let mut r = vpe::Residency::mapped(2);
        assert_eq!(
            r.load(2),
            Some(None),
            "resident where VMAPP put it: no VMOVP"
        );
        assert_eq!(r.load(2), None, "already resident");
        assert!(r.put());
        assert!(!r.put(), "put twice clears once");
        assert_eq!(r.load(3), Some(Some(3)), "VMOVP to redistributor 3 first");
        assert_eq!(r.rdbase, 3);
        assert!(r.resident);
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
