//! Page-table builder for the 4 KiB granule, shared by the hypervisor's own EL2 stage-1 tables
//! (non-VHE EL2, one VA range through `TTBR0_EL2`) and every VM's stage-2 tables (`VTTBR_EL2`).
//!
//! Implements, from the Arm ARM (DDI 0487), chapter D8 "The AArch64 Virtual Memory System
//! Architecture":
//! * the VMSAv8-64 descriptor formats for the 4 KiB granule with 48-bit output addresses (no
//!   FEAT_LPA2): table descriptors at levels 0..=2, block descriptors at levels 1 and 2 (1 GiB and
//!   2 MiB), page descriptors at level 3;
//! * the stage 1 attributes of the EL2 regime (`AttrIndx` into `MAIR_EL2`, `AP[2:1]`, `SH`, `AF`,
//!   `XN`) and the stage 2 attributes (`MemAttr[3:0]` with `HCR_EL2.FWB == 0`, `S2AP`, `SH`,
//!   `AF`, `XN[1:0]`);
//! * the start level, concatenated root tables, `T0SZ` and `VTCR_EL2.SL0` rules for a given
//!   input address size, and the `TCR_EL2`, `VTCR_EL2` and `MAIR_EL2` values that go with them.
//!
//! This is the pure core: tables are reached only through [`FrameAlloc`], which hands out table
//! frames by physical address and lends their 512 descriptors as a plain array. Nothing here
//! dereferences an address, issues a barrier or invalidates a TLB.
//!
//! Invariants of every [`PageTable`]:
//! * the root is `geometry.root_frames` contiguous frames, aligned to their total size, and every
//!   other table is one frame; all of them came from the same [`FrameAlloc`];
//! * every valid descriptor is one this module wrote: a table descriptor below level 3, a block
//!   at level 1 or 2, or a page at level 3, never a level-0 block;
//! * a table, once linked, is never unlinked: [`FrameAlloc`] cannot take frames back, so unmap
//!   and remap rewrite the entries of an existing table instead of dropping it. No frame leaks.
//!
//! Break-before-make is the caller's business. [`PageTable::map`] and [`PageTable::unmap`] may
//! replace a valid block by a table (a split) or change the address or attributes of a valid
//! leaf. On tables the MMU may be walking (a running VM's stage 2, the live EL2 tables) the shell
//! must first make the old entry invalid, invalidate the TLBs, then write the new one (the
//! break-before-make requirement D8 places on translation table updates); on tables not yet
//! installed no such care is needed.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use tock_registers::fields::FieldValue;
use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::{PAGE_SIZE, align_down};

/// Number of descriptors in one 4 KiB table.
const ENTRY_COUNT: usize = 512;
/// log2 of the granule: a page offset is this many bits.
const PAGE_SHIFT: u32 = 12;
/// Input-address bits resolved by one level of lookup (512 entries).
const BITS_PER_LEVEL: u32 = 9;
/// The level of page descriptors.
const LAST_LEVEL: u8 = 3;
/// The highest start level used. Level 3 starts need FEAT_TTST, which exitless does not use.
const HIGHEST_START_LEVEL: u8 = 2;
/// log2 of the most root tables stage 2 may concatenate at its start level (16).
const MAX_CONCATENATED_SHIFT: u32 = 4;

/// Smallest input address size (`va_bits`/`ipa_bits`) that [`geometry`] accepts.
pub const MIN_INPUT_BITS: u8 = 32;
/// Largest input address size that [`geometry`] accepts: 48 bits, the limit without FEAT_LVA.
pub const MAX_INPUT_BITS: u8 = 48;
/// Output addresses are at most this wide: descriptors hold `OA[47:12]` (no FEAT_LPA2).
pub const OA_BITS: u8 = 48;

/// `ID_AA64MMFR0_EL1.PARange` (and `TCR_EL2.PS`/`VTCR_EL2.PS`) encoding of a 48-bit PA.
const PARANGE_48_BITS: u8 = 0b101;

register_bitfields![u64,
    /// Fields shared by all VMSAv8-64 descriptors, 4 KiB granule (D8, "Translation table
    /// descriptor formats").
    DESC [
        /// Bit 0: the descriptor is valid.
        VALID OFFSET(0) NUMBITS(1) [],
        /// Bit 1: block (levels 1 and 2) versus table (levels 0..=2) or page (level 3).
        TYPE OFFSET(1) NUMBITS(1) [
            Block = 0,
            TableOrPage = 1,
        ],
        /// Bits [47:12]: next-level table address, or output address (a level-1 block only
        /// uses [47:30], a level-2 block [47:21]; the rest is RES0 and written as zero).
        ADDR OFFSET(12) NUMBITS(36) [],
    ],
    /// Block and page attributes, stage 1 of the EL2 regime when `HCR_EL2.E2H == 0` (one VA
    /// range, one privilege level).
    S1_EL2 [
        /// Index of the memory type in `MAIR_EL2`.
        ATTR_INDX OFFSET(2) NUMBITS(3) [],
        /// `AP[1]`: "EL0 access" in two-privilege regimes. EL2 with E2H == 0 has no EL0, so the
        /// bit is RES1 there (older Arm ARM text says so outright; later text ignores it).
        /// Linux nVHE hyp writes 1 (`KVM_PTE_LEAF_ATTR_LO_S1_AP_RW == 0b01`, `_RO == 0b11`) and
        /// so does google/aarch64-paging (`El23Attributes::USER_RES1`); so do we.
        AP_1 OFFSET(6) NUMBITS(1) [],
        /// `AP[2]`: read-only when set, read/write when clear.
        AP_2 OFFSET(7) NUMBITS(1) [],
        /// Shareability.
        SH OFFSET(8) NUMBITS(2) [
            NonShareable = 0b00,
            OuterShareable = 0b10,
            InnerShareable = 0b11,
        ],
        /// Access flag; always set, so no Access flag fault is ever taken.
        AF OFFSET(10) NUMBITS(1) [],
        /// Execute-never (the single-range regimes have one XN bit, bit 54; bit 53 is RES0).
        XN OFFSET(54) NUMBITS(1) [],
    ],
    /// Block and page attributes, stage 2 (D8, "Stage 2 memory region attributes").
    S2 [
        /// `MemAttr[3:0]` as read with `HCR_EL2.FWB == 0`: `[3:2]` outer, `[1:0]` inner for
        /// Normal memory; `[3:2] == 0b00` selects Device memory, `[1:0]` its kind.
        MEM_ATTR OFFSET(2) NUMBITS(4) [
            DeviceNGnRE = 0b0001,
            NormalNonCacheable = 0b0101,
            NormalWriteBack = 0b1111,
        ],
        /// `S2AP[1:0]`: bit 6 allows reads, bit 7 allows writes.
        S2AP OFFSET(6) NUMBITS(2) [
            NoAccess = 0b00,
            ReadOnly = 0b01,
            WriteOnly = 0b10,
            ReadWrite = 0b11,
        ],
        /// Shareability.
        SH OFFSET(8) NUMBITS(2) [
            NonShareable = 0b00,
            OuterShareable = 0b10,
            InnerShareable = 0b11,
        ],
        /// Access flag; always set.
        AF OFFSET(10) NUMBITS(1) [],
        /// `XN[1:0]`. Without FEAT_XNX only bit 54 exists (bit 53 RES0); with it, 0b10 still
        /// means "not executable at EL1 nor EL0". exitless writes 0b00 or 0b10 only.
        XN OFFSET(53) NUMBITS(2) [
            Executable = 0b00,
            ExecuteNever = 0b10,
        ],
    ],
    /// `TCR_EL2` with `HCR_EL2.E2H == 0`.
    TCR_EL2 [
        /// Input size is `64 - T0SZ` bits.
        T0SZ OFFSET(0) NUMBITS(6) [],
        /// Inner cacheability of table walks.
        IRGN0 OFFSET(8) NUMBITS(2) [
            WriteBackWriteAllocate = 0b01,
        ],
        /// Outer cacheability of table walks.
        ORGN0 OFFSET(10) NUMBITS(2) [
            WriteBackWriteAllocate = 0b01,
        ],
        /// Shareability of table walks.
        SH0 OFFSET(12) NUMBITS(2) [
            InnerShareable = 0b11,
        ],
        /// Granule size.
        TG0 OFFSET(14) NUMBITS(2) [
            Granule4KiB = 0b00,
        ],
        /// Physical address size, `ID_AA64MMFR0_EL1.PARange` encoding.
        PS OFFSET(16) NUMBITS(3) [],
        /// RES1.
        RES1_23 OFFSET(23) NUMBITS(1) [],
        /// RES1.
        RES1_31 OFFSET(31) NUMBITS(1) [],
    ],
    /// `VTCR_EL2`.
    VTCR_EL2 [
        /// IPA size is `64 - T0SZ` bits.
        T0SZ OFFSET(0) NUMBITS(6) [],
        /// Start level; with the 4 KiB granule 0b00 is level 2, 0b01 level 1, 0b10 level 0.
        SL0 OFFSET(6) NUMBITS(2) [],
        /// Inner cacheability of table walks.
        IRGN0 OFFSET(8) NUMBITS(2) [
            WriteBackWriteAllocate = 0b01,
        ],
        /// Outer cacheability of table walks.
        ORGN0 OFFSET(10) NUMBITS(2) [
            WriteBackWriteAllocate = 0b01,
        ],
        /// Shareability of table walks.
        SH0 OFFSET(12) NUMBITS(2) [
            InnerShareable = 0b11,
        ],
        /// Granule size.
        TG0 OFFSET(14) NUMBITS(2) [
            Granule4KiB = 0b00,
        ],
        /// Physical address size of the stage 2 output, `PARange` encoding.
        PS OFFSET(16) NUMBITS(3) [],
        /// RES1.
        RES1_31 OFFSET(31) NUMBITS(1) [],
    ],
];

/// `MAIR_EL2` attribute for Normal memory, inner and outer Write-Back non-transient,
/// read- and write-allocate.
const MAIR_NORMAL_WRITE_BACK: u64 = 0xff;
/// `MAIR_EL2` attribute for Device-nGnRE memory.
const MAIR_DEVICE_NGNRE: u64 = 0x04;
/// `MAIR_EL2` attribute for Normal memory, inner and outer Non-cacheable.
const MAIR_NORMAL_NON_CACHEABLE: u64 = 0x44;
/// Bits per attribute in `MAIR_ELx`.
const MAIR_ATTR_BITS: u64 = 8;

/// The `MAIR_EL2` value the EL2 stage-1 descriptors index with `AttrIndx`; see
/// [`MemType::attr_index`] for which index is which.
pub const MAIR_EL2_VALUE: u64 = (MAIR_NORMAL_WRITE_BACK
    << (MAIR_ATTR_BITS * MemType::Normal.attr_index()))
    | (MAIR_DEVICE_NGNRE << (MAIR_ATTR_BITS * MemType::Device.attr_index()))
    | (MAIR_NORMAL_NON_CACHEABLE << (MAIR_ATTR_BITS * MemType::NormalNonCacheable.attr_index()));

/// Table memory, reached by physical address. The shell implements it over its frame allocator
/// and linear map; [`VecFrames`] implements it on the host.
pub trait FrameAlloc {
    /// A zeroed, `count`*4 KiB, naturally aligned to count*4KiB block of table memory; its
    /// physical address.
    fn alloc_frames(&mut self, count: usize) -> Option<u64>;
    /// The 512 descriptors of the table frame at physical address `pa` (one returned by
    /// alloc_frames, or pa + k*4096 within a multi-frame allocation).
    fn table(&mut self, pa: u64) -> &mut [u64; 512];
}

/// Which translation regime a table is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Stage 1 of the EL2 regime with `HCR_EL2.E2H == 0`: the hypervisor's own tables, one VA
    /// range through `TTBR0_EL2`.
    El2Stage1,
    /// Stage 2 of the EL1&0 regime: a VM's IPA-to-PA tables through `VTTBR_EL2`.
    Stage2,
}

/// The shape of a table for a given regime and input address size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Level of the root table (0, 1 or 2).
    pub start_level: u8,
    /// Number of concatenated root tables: always 1 for stage 1, 1..=16 for stage 2.
    pub root_frames: usize,
    /// `T0SZ`: 64 minus the input address size.
    pub t0sz: u8,
    /// `VTCR_EL2.SL0` for the start level (stage 2). 0 for [`Regime::El2Stage1`], whose start
    /// level follows from `T0SZ` alone and has no SL0 field.
    pub sl0: u8,
}

/// Why a page-table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or size is not a multiple of 4 KiB.
    Unaligned,
    /// The range runs past the input address size, or the output past 48 bits.
    OutOfRange,
    /// The [`FrameAlloc`] had no frame for a table.
    NoMemory,
    /// The attributes cannot be encoded in this regime (see [`Attrs`]).
    InvalidAttrs,
    /// The input address size is outside 32..=48 bits, or a stage-2 IPA size exceeds the PA
    /// size.
    InvalidAddressSize,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unaligned => "address or size not 4 KiB aligned",
            Self::OutOfRange => "range beyond the input or output address size",
            Self::NoMemory => "out of page-table frames",
            Self::InvalidAttrs => "attributes not encodable in this translation regime",
            Self::InvalidAddressSize => "unsupported input address size",
        })
    }
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Normal memory, inner and outer Write-Back, read/write-allocate.
    Normal,
    /// Device-nGnRE memory.
    Device,
    /// Normal memory, inner and outer Non-cacheable.
    NormalNonCacheable,
}

impl MemType {
    /// The `MAIR_EL2` index of this type ([`MAIR_EL2_VALUE`]): 0 Normal, 1 Device,
    /// 2 Normal Non-cacheable.
    pub const fn attr_index(self) -> u64 {
        match self {
            Self::Normal => 0,
            Self::Device => 1,
            Self::NormalNonCacheable => 2,
        }
    }

    fn from_attr_index(index: u64) -> Option<Self> {
        [Self::Normal, Self::Device, Self::NormalNonCacheable]
            .into_iter()
            .find(|t| t.attr_index() == index)
    }

    fn s2_mem_attr(self) -> FieldValue<u64, S2::Register> {
        match self {
            Self::Normal => S2::MEM_ATTR::NormalWriteBack,
            Self::Device => S2::MEM_ATTR::DeviceNGnRE,
            Self::NormalNonCacheable => S2::MEM_ATTR::NormalNonCacheable,
        }
    }
}

/// Memory type and permissions of a mapping.
///
/// Not every combination is encodable; [`PageTable::map`] returns [`MapError::InvalidAttrs`]
/// for:
/// * EL2 stage 1 without `read` (EL2 has no "no access" or write-only encoding) or with both
///   `write` and `exec` (W^X, as Linux hyp enforces, so `SCTLR_EL2.WXN` may be set);
/// * stage 2 with neither `read` nor `write`: that is "unmapped", use [`PageTable::unmap`];
/// * `exec` on [`MemType::Device`] in either regime: Device memory must be execute-never or
///   the core may fetch instructions from it speculatively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Memory type.
    pub mem: MemType,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Attrs {
    /// Normal memory, read/write, execute-never.
    pub const RW_DATA: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: true,
        exec: false,
    };
    /// Normal memory, read-only, executable.
    pub const RX_CODE: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: false,
        exec: true,
    };
    /// Normal memory, read-only, execute-never.
    pub const RO_DATA: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: false,
        exec: false,
    };
    /// Device-nGnRE memory, read/write, execute-never.
    pub const DEVICE_RW: Attrs = Attrs {
        mem: MemType::Device,
        read: true,
        write: true,
        exec: false,
    };
    /// Normal memory, read/write/execute: guest RAM at stage 2 (refused at EL2 stage 1).
    pub const RWX_RAM: Attrs = Attrs {
        mem: MemType::Normal,
        read: true,
        write: true,
        exec: true,
    };
}

/// The `T0SZ`, start level, root concatenation and `SL0` for `bits` of input address.
///
/// Each level resolves 9 bits, level 3 entries map 4 KiB, so a level-`l` entry maps
/// `2^(12 + 9 * (3 - l))` bytes.
/// * EL2 stage 1 starts at the highest level whose one table covers `bits`: level 1 up to 39
///   bits, level 0 from 40. (A single table may be only partly used; `T0SZ` fixes the level.)
/// * Stage 2 may concatenate up to 16 tables at the start level (D8, "Concatenated translation
///   tables"), which saves a level: like KVM (`kvm_get_vtcr`, `stage2_pgtable_levels(ipa) =
///   ARM64_HW_PGTABLE_LEVELS(ipa - 4)`) it takes the highest start level, at most 2, whose
///   entries cover `bits` with at most 16 tables: level 2 for 32..=34 bits (4..=16 tables),
///   level 1 for 35..=43 (1..=16), level 0 for 44..=48. Every choice lies within the Arm ARM's
///   valid `T0SZ` range for its `SL0` (level 2: 22..=34 bits, level 1: 31..=43, level 0:
///   40..=48), and `SL0` is `2 - start_level`.
///
/// # Errors
///
/// [`MapError::InvalidAddressSize`] if `bits` is outside
/// [`MIN_INPUT_BITS`]..=[`MAX_INPUT_BITS`].
pub fn geometry(regime: Regime, bits: u8) -> Result<Geometry, MapError> {
    if !(MIN_INPUT_BITS..=MAX_INPUT_BITS).contains(&bits) {
        return Err(MapError::InvalidAddressSize);
    }
    let t0sz = 64 - bits;
    let bits = u32::from(bits);
    // True if a root at `level` needs no more than 512 << max_tables_shift entries.
    let fits = |level: u8, max_tables_shift: u32| {
        bits.saturating_sub(entry_shift(level)) <= BITS_PER_LEVEL + max_tables_shift
    };
    let max_tables_shift = match regime {
        Regime::El2Stage1 => 0,
        Regime::Stage2 => MAX_CONCATENATED_SHIFT,
    };
    let start_level = (0..=HIGHEST_START_LEVEL)
        .rev()
        .find(|&level| fits(level, max_tables_shift))
        .ok_or(MapError::InvalidAddressSize)?;
    let root_entries_shift = bits.saturating_sub(entry_shift(start_level));
    let root_frames = 1usize << root_entries_shift.saturating_sub(BITS_PER_LEVEL);
    let sl0 = match regime {
        Regime::El2Stage1 => 0,
        Regime::Stage2 => HIGHEST_START_LEVEL - start_level,
    };
    Ok(Geometry {
        start_level,
        root_frames,
        t0sz,
        sl0,
    })
}

/// The PA size in bits for an `ID_AA64MMFR0_EL1.PARange` value; `None` for values not defined
/// by the architecture version this was written against (0..=6: 32, 36, 40, 42, 44, 48, 52).
pub fn pa_bits_from_parange(parange: u8) -> Option<u8> {
    match parange {
        0b000 => Some(32),
        0b001 => Some(36),
        0b010 => Some(40),
        0b011 => Some(42),
        0b100 => Some(44),
        0b101 => Some(48),
        0b110 => Some(52),
        _ => None,
    }
}

/// The `PS` field for `parange`: descriptors hold 48-bit output addresses only, so anything
/// larger (52 bits, or a later encoding) is capped at 48 bits, as Linux caps PARange at
/// `ID_AA64MMFR0_EL1_PARANGE_MAX` without 52-bit PA support.
fn effective_parange(parange: u8) -> u8 {
    parange.min(PARANGE_48_BITS)
}

/// The `TCR_EL2` value (`HCR_EL2.E2H == 0`) for `va_bits` of VA and the CPU's
/// `ID_AA64MMFR0_EL1.PARange`: `T0SZ`, table walks Write-Back write-allocate inner and outer
/// and Inner Shareable, 4 KiB granule, `PS` from `parange` (capped at 48 bits), RES1 bits 23
/// and 31 set. TBI, HA, HD and HPD are left 0.
///
/// # Errors
///
/// [`MapError::InvalidAddressSize`] if `va_bits` is outside 32..=48.
pub fn tcr_el2(parange: u8, va_bits: u8) -> Result<u64, MapError> {
    let geometry = geometry(Regime::El2Stage1, va_bits)?;
    let value = TCR_EL2::T0SZ.val(geometry.t0sz.into())
        + TCR_EL2::IRGN0::WriteBackWriteAllocate
        + TCR_EL2::ORGN0::WriteBackWriteAllocate
        + TCR_EL2::SH0::InnerShareable
        + TCR_EL2::TG0::Granule4KiB
        + TCR_EL2::PS.val(effective_parange(parange).into())
        + TCR_EL2::RES1_23::SET
        + TCR_EL2::RES1_31::SET;
    Ok(value.value)
}

/// The `VTCR_EL2` value for an IPA space of `ipa_bits` and the CPU's `PARange`: `T0SZ` and
/// `SL0` from [`geometry`], table walks Write-Back write-allocate and Inner Shareable, 4 KiB
/// granule, `PS` from `parange` (capped at 48 bits), RES1 bit 31 set. `VS` is 0 (8-bit VMIDs)
/// and HA/HD are 0; the shell may OR in `VS` after checking `ID_AA64MMFR1_EL1.VMIDBits`.
///
/// # Errors
///
/// [`MapError::InvalidAddressSize`] if `ipa_bits` is outside 32..=48 or larger than the PA
/// size. KVM refuses an IPA space wider than the PA space too (`kvm_ipa_limit`); the check also
/// keeps a level-0 start (`SL0 == 0b10`, 44 bits and up) off CPUs whose PA is narrower than
/// 44 bits, where that `SL0` is invalid.
pub fn vtcr_el2(parange: u8, ipa_bits: u8) -> Result<u64, MapError> {
    let ps = effective_parange(parange);
    let pa_bits = pa_bits_from_parange(ps).ok_or(MapError::InvalidAddressSize)?;
    if ipa_bits > pa_bits {
        return Err(MapError::InvalidAddressSize);
    }
    let geometry = geometry(Regime::Stage2, ipa_bits)?;
    let value = VTCR_EL2::T0SZ.val(geometry.t0sz.into())
        + VTCR_EL2::SL0.val(geometry.sl0.into())
        + VTCR_EL2::IRGN0::WriteBackWriteAllocate
        + VTCR_EL2::ORGN0::WriteBackWriteAllocate
        + VTCR_EL2::SH0::InnerShareable
        + VTCR_EL2::TG0::Granule4KiB
        + VTCR_EL2::PS.val(ps.into())
        + VTCR_EL2::RES1_31::SET;
    Ok(value.value)
}

/// log2 of the bytes one entry maps at `level`: 39, 30, 21, 12 for levels 0..=3.
const fn entry_shift(level: u8) -> u32 {
    PAGE_SHIFT + BITS_PER_LEVEL * (LAST_LEVEL - level) as u32
}

/// True if a block or page may be written at `level` (no level-0 blocks with 4 KiB granule).
const fn level_has_leaf(level: u8) -> bool {
    level >= 1
}

/// The descriptor bits that are neither valid, type nor address: a leaf's attributes.
fn leaf_attr_bits(desc: u64) -> u64 {
    desc & !(DESC::VALID::SET + DESC::TYPE::TableOrPage + DESC::ADDR.val(u64::MAX)).mask()
}

fn is_valid(desc: u64) -> bool {
    DESC::VALID.is_set(desc)
}

fn is_table(desc: u64, level: u8) -> bool {
    level < LAST_LEVEL && is_valid(desc) && DESC::TYPE.is_set(desc)
}

/// Address bits [47:12] of a descriptor.
fn desc_addr(desc: u64) -> u64 {
    DESC::ADDR.read(desc) << PAGE_SHIFT
}

fn table_desc(pa: u64) -> u64 {
    (DESC::VALID::SET + DESC::TYPE::TableOrPage + DESC::ADDR.val(pa >> PAGE_SHIFT)).value
}

fn leaf_desc(pa: u64, attr_bits: u64, level: u8) -> u64 {
    let kind = if level == LAST_LEVEL {
        DESC::TYPE::TableOrPage
    } else {
        DESC::TYPE::Block
    };
    attr_bits | (DESC::VALID::SET + kind + DESC::ADDR.val(pa >> PAGE_SHIFT)).value
}

impl Regime {
    /// The leaf attribute bits for `attrs`, or why they cannot be encoded (see [`Attrs`]).
    fn encode(self, attrs: Attrs) -> Result<u64, MapError> {
        if attrs.exec && attrs.mem == MemType::Device {
            return Err(MapError::InvalidAttrs);
        }
        match self {
            Self::El2Stage1 => {
                if !attrs.read || (attrs.write && attrs.exec) {
                    return Err(MapError::InvalidAttrs);
                }
                // Device and Normal Non-cacheable memory are Outer Shareable whatever SH says;
                // like Linux hyp, write Inner Shareable for every type.
                let mut v = S1_EL2::ATTR_INDX.val(attrs.mem.attr_index())
                    + S1_EL2::AP_1::SET
                    + S1_EL2::SH::InnerShareable
                    + S1_EL2::AF::SET;
                if !attrs.write {
                    v += S1_EL2::AP_2::SET;
                }
                if !attrs.exec {
                    v += S1_EL2::XN::SET;
                }
                Ok(v.value)
            }
            Self::Stage2 => {
                let s2ap = match (attrs.read, attrs.write) {
                    (true, true) => S2::S2AP::ReadWrite,
                    (true, false) => S2::S2AP::ReadOnly,
                    (false, true) => S2::S2AP::WriteOnly,
                    (false, false) => return Err(MapError::InvalidAttrs),
                };
                let xn = if attrs.exec {
                    S2::XN::Executable
                } else {
                    S2::XN::ExecuteNever
                };
                let v = attrs.mem.s2_mem_attr() + s2ap + S2::SH::InnerShareable + S2::AF::SET + xn;
                Ok(v.value)
            }
        }
    }

    /// The attributes of a leaf descriptor this module wrote; `None` for an encoding it never
    /// writes.
    fn decode(self, desc: u64) -> Option<Attrs> {
        match self {
            Self::El2Stage1 => {
                let d = LocalRegisterCopy::<u64, S1_EL2::Register>::new(desc);
                Some(Attrs {
                    mem: MemType::from_attr_index(d.read(S1_EL2::ATTR_INDX))?,
                    read: true,
                    write: !d.is_set(S1_EL2::AP_2),
                    exec: !d.is_set(S1_EL2::XN),
                })
            }
            Self::Stage2 => {
                let d = LocalRegisterCopy::<u64, S2::Register>::new(desc);
                let mem = match d.read_as_enum(S2::MEM_ATTR)? {
                    S2::MEM_ATTR::Value::NormalWriteBack => MemType::Normal,
                    S2::MEM_ATTR::Value::DeviceNGnRE => MemType::Device,
                    S2::MEM_ATTR::Value::NormalNonCacheable => MemType::NormalNonCacheable,
                };
                let (read, write) = match d.read_as_enum(S2::S2AP)? {
                    S2::S2AP::Value::NoAccess => (false, false),
                    S2::S2AP::Value::ReadOnly => (true, false),
                    S2::S2AP::Value::WriteOnly => (false, true),
                    S2::S2AP::Value::ReadWrite => (true, true),
                };
                let exec = match d.read_as_enum(S2::XN)? {
                    S2::XN::Value::Executable => true,
                    S2::XN::Value::ExecuteNever => false,
                };
                Some(Attrs {
                    mem,
                    read,
                    write,
                    exec,
                })
            }
        }
    }
}

/// What [`PageTable::update`] writes into the leaves of a range.
#[derive(Clone, Copy)]
enum Update {
    /// Map each address `a` to `a + delta` (wrapping) with these leaf attribute bits.
    Map { delta: u64, attr_bits: u64 },
    /// Make the range invalid.
    Unmap,
}

/// A translation table tree for one regime: the EL2 stage-1 tables or one VM's stage 2.
///
/// The tables live in memory of a [`FrameAlloc`]; every method that reads or writes them takes
/// that allocator, which must be the one passed to [`PageTable::new`].
#[derive(Debug)]
pub struct PageTable {
    root: u64,
    regime: Regime,
    geometry: Geometry,
}

impl PageTable {
    /// An empty table tree for `bits` of input address: allocates the root (for stage 2
    /// possibly several concatenated frames, see [`geometry`]).
    ///
    /// # Errors
    ///
    /// [`MapError::InvalidAddressSize`] for an unsupported `bits`, [`MapError::NoMemory`] if
    /// the root cannot be allocated.
    pub fn new<A: FrameAlloc + ?Sized>(
        alloc: &mut A,
        regime: Regime,
        bits: u8,
    ) -> Result<Self, MapError> {
        let geometry = geometry(regime, bits)?;
        let root = alloc
            .alloc_frames(geometry.root_frames)
            .ok_or(MapError::NoMemory)?;
        debug_assert!(
            root.is_multiple_of(PAGE_SIZE * geometry.root_frames as u64),
            "FrameAlloc returned a misaligned root"
        );
        Ok(Self {
            root,
            regime,
            geometry,
        })
    }

    /// Physical address of the root table: the `BADDR` of `TTBR0_EL2` or `VTTBR_EL2`.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The geometry the tree was built with.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The regime the tree was built for.
    pub fn regime(&self) -> Regime {
        self.regime
    }

    /// Maps `va..va + size` to `pa..pa + size` with `attrs`, overwriting whatever was mapped
    /// there. Each piece gets the largest leaf whose size both its `va` and `pa` are aligned to
    /// and that fits in the range: a 1 GiB block at level 1, a 2 MiB block at level 2, else a
    /// 4 KiB page. A block only partly covered is split into a next-level table that keeps the
    /// block's old mapping and attributes outside the range. Where a next-level table already
    /// exists it is rewritten in place, never replaced by a block (its frame could not be
    /// freed). A size of 0 maps nothing.
    ///
    /// Splits and overwrites of live entries need break-before-make by the caller (see the
    /// module documentation).
    ///
    /// # Errors
    ///
    /// * [`MapError::InvalidAttrs`]: `attrs` cannot be encoded in this regime ([`Attrs`]);
    /// * [`MapError::Unaligned`]: `va`, `pa` or `size` is not a multiple of 4 KiB;
    /// * [`MapError::OutOfRange`]: the input range runs past `2^bits`, or the output past
    ///   `2^48`;
    /// * [`MapError::NoMemory`]: a table frame could not be allocated. Nothing was checked
    ///   lazily before that, so this is the only error that leaves work done: the tree is
    ///   valid, a prefix of the range is mapped as asked and the rest keeps its old mapping; a
    ///   block being split is left whole (the new table is filled before it is linked); tables
    ///   already allocated stay linked, possibly empty, and are reused by the next call.
    ///   Repeating the call after freeing memory completes it.
    pub fn map<A: FrameAlloc + ?Sized>(
        &mut self,
        alloc: &mut A,
        va: u64,
        pa: u64,
        size: u64,
        attrs: Attrs,
    ) -> Result<(), MapError> {
        let attr_bits = self.regime.encode(attrs)?;
        if !is_page_aligned(pa) {
            return Err(MapError::Unaligned);
        }
        let end = self.checked_input_range(va, size)?;
        match pa.checked_add(size) {
            Some(pa_end) if pa_end <= 1 << OA_BITS => {}
            _ => return Err(MapError::OutOfRange),
        }
        let update = Update::Map {
            delta: pa.wrapping_sub(va),
            attr_bits,
        };
        self.update(alloc, self.root, self.geometry.start_level, va, end, update)
    }

    /// Makes `va..va + size` invalid. Blocks only partly covered are split first, as in
    /// [`PageTable::map`]; already unmapped parts are left alone, and tables are kept (empty)
    /// rather than freed. A size of 0 unmaps nothing.
    ///
    /// # Errors
    ///
    /// [`MapError::Unaligned`] and [`MapError::OutOfRange`] as for [`PageTable::map`]
    /// (nothing changed); [`MapError::NoMemory`] if a block needs splitting and no frame is
    /// left: a prefix of the range is unmapped, the rest unchanged.
    pub fn unmap<A: FrameAlloc + ?Sized>(
        &mut self,
        alloc: &mut A,
        va: u64,
        size: u64,
    ) -> Result<(), MapError> {
        let end = self.checked_input_range(va, size)?;
        self.update(
            alloc,
            self.root,
            self.geometry.start_level,
            va,
            end,
            Update::Unmap,
        )
    }

    /// What `va` translates to: the output address (with `va`'s offset within its page or
    /// block) and the mapping's attributes. `None` if `va` is unmapped or beyond the input
    /// address size. Reads the tables only.
    pub fn translate<A: FrameAlloc + ?Sized>(
        &self,
        alloc: &mut A,
        va: u64,
    ) -> Option<(u64, Attrs)> {
        if va >> self.input_bits() != 0 {
            return None;
        }
        let mut table = self.root;
        let mut level = self.geometry.start_level;
        loop {
            let (frame, slot) = self.slot(table, level, va);
            let desc = alloc.table(frame)[slot];
            if !is_valid(desc) {
                return None;
            }
            if is_table(desc, level) {
                table = desc_addr(desc);
                level += 1;
                continue;
            }
            if !level_has_leaf(level) {
                return None;
            }
            let offset_mask = (1u64 << entry_shift(level)) - 1;
            let pa = (desc_addr(desc) & !offset_mask) | (va & offset_mask);
            return Some((pa, self.regime.decode(desc)?));
        }
    }

    /// Input address size in bits.
    fn input_bits(&self) -> u32 {
        u64::BITS - u32::from(self.geometry.t0sz)
    }

    /// Checks that `va..va + size` is page aligned and within the input address size; returns
    /// its end.
    fn checked_input_range(&self, va: u64, size: u64) -> Result<u64, MapError> {
        if !is_page_aligned(va) || !is_page_aligned(size) {
            return Err(MapError::Unaligned);
        }
        match va.checked_add(size) {
            Some(end) if end <= 1 << self.input_bits() => Ok(end),
            _ => Err(MapError::OutOfRange),
        }
    }

    /// The frame and slot within it of the entry for `addr` in the table at `table`, `level`.
    /// The root at the start level may span several concatenated frames.
    fn slot(&self, table: u64, level: u8, addr: u64) -> (u64, usize) {
        let entry_count = if level == self.geometry.start_level {
            ENTRY_COUNT * self.geometry.root_frames
        } else {
            ENTRY_COUNT
        };
        // entry_count is a power of two, and addr < 2^bits keeps the index in the root.
        let index = (addr >> entry_shift(level)) as usize & (entry_count - 1);
        (
            table + (index / ENTRY_COUNT) as u64 * PAGE_SIZE,
            index % ENTRY_COUNT,
        )
    }

    /// Applies `update` to `start..end` (page aligned, non-empty or empty) in the table at
    /// `table`, which is at `level`.
    fn update<A: FrameAlloc + ?Sized>(
        &self,
        alloc: &mut A,
        table: u64,
        level: u8,
        start: u64,
        end: u64,
        update: Update,
    ) -> Result<(), MapError> {
        let entry_size = 1u64 << entry_shift(level);
        let mut addr = start;
        while addr < end {
            let (frame, slot) = self.slot(table, level, addr);
            let entry_start = align_down(addr, entry_size);
            // No overflow: addr < 2^48 and entry_size <= 2^39.
            let chunk_end = end.min(entry_start + entry_size);
            let whole_entry = addr == entry_start && chunk_end == entry_start + entry_size;
            let old = alloc.table(frame)[slot];
            let old_is_table = is_table(old, level);
            match update {
                Update::Map { delta, attr_bits } => {
                    let pa = addr.wrapping_add(delta);
                    if whole_entry
                        && !old_is_table
                        && level_has_leaf(level)
                        && pa.is_multiple_of(entry_size)
                    {
                        alloc.table(frame)[slot] = leaf_desc(pa, attr_bits, level);
                        addr = chunk_end;
                        continue;
                    }
                }
                Update::Unmap => {
                    if !is_valid(old) {
                        addr = chunk_end;
                        continue;
                    }
                    if whole_entry && !old_is_table {
                        alloc.table(frame)[slot] = 0;
                        addr = chunk_end;
                        continue;
                    }
                }
            }
            let child = next_table(alloc, frame, slot, old, level)?;
            self.update(alloc, child, level + 1, addr, chunk_end, update)?;
            addr = chunk_end;
        }
        Ok(())
    }
}

/// The next-level table under the entry `old` at `frame[slot]` (at `level` < 3), creating it if
/// needed: an existing table is returned as is; an invalid entry gets a new, empty table; a
/// block is split into a new table of 512 next-level leaves with the block's output addresses
/// and attributes. The new table is complete before it is linked, so a failed allocation
/// leaves the entry as it was.
fn next_table<A: FrameAlloc + ?Sized>(
    alloc: &mut A,
    frame: u64,
    slot: usize,
    old: u64,
    level: u8,
) -> Result<u64, MapError> {
    debug_assert!(level < LAST_LEVEL, "no table below level 3");
    if is_table(old, level) {
        return Ok(desc_addr(old));
    }
    let new = alloc.alloc_frames(1).ok_or(MapError::NoMemory)?;
    if is_valid(old) {
        let child_level = level + 1;
        let child_size = 1u64 << entry_shift(child_level);
        let base = align_down(desc_addr(old), 1u64 << entry_shift(level));
        let attr_bits = leaf_attr_bits(old);
        let mut pa = base;
        for entry in alloc.table(new).iter_mut() {
            *entry = leaf_desc(pa, attr_bits, child_level);
            pa += child_size;
        }
    }
    alloc.table(frame)[slot] = table_desc(new);
    Ok(new)
}

fn is_page_aligned(x: u64) -> bool {
    x.is_multiple_of(PAGE_SIZE)
}

/// A host [`FrameAlloc`]: frames are boxed arrays in a `Vec`, at fake physical addresses from
/// [`VecFrames::BASE`] up. For unit tests, here and in other modules, that build tables and
/// walk them; the addresses mean nothing to an MMU.
#[derive(Debug)]
pub struct VecFrames {
    frames: Vec<Box<[u64; ENTRY_COUNT]>>,
    limit: usize,
}

impl VecFrames {
    /// Fake physical address of the first frame.
    pub const BASE: u64 = 0x8000_0000;

    /// An allocator without limit (other than the host's memory).
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// An allocator that fails once `limit` frames (counting alignment padding) are in use.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            frames: Vec::new(),
            limit,
        }
    }

    /// Changes the limit on frames in use.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Frames handed out so far, alignment padding included.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }
}

impl Default for VecFrames {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAlloc for VecFrames {
    fn alloc_frames(&mut self, count: usize) -> Option<u64> {
        if count == 0 {
            return None;
        }
        // BASE is 2 GiB aligned, so aligning the index aligns the address.
        let align = count.next_power_of_two();
        let first = self.frames.len().next_multiple_of(align);
        if first.checked_add(count)? > self.limit {
            return None;
        }
        self.frames
            .resize_with(first + count, || Box::new([0; ENTRY_COUNT]));
        Some(Self::BASE + first as u64 * PAGE_SIZE)
    }

    /// # Panics
    ///
    /// If `pa` is not the address of a frame this allocator handed out: a bug in the caller.
    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        assert!(
            pa >= Self::BASE && is_page_aligned(pa),
            "not a VecFrames frame: {pa:#x}"
        );
        let index = usize::try_from((pa - Self::BASE) / PAGE_SIZE).expect("frame index");
        &mut self.frames[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB4: u64 = 4 << 10;
    const MIB2: u64 = 2 << 20;
    const GIB1: u64 = 1 << 30;

    fn new_table(regime: Regime, bits: u8) -> (VecFrames, PageTable) {
        let mut frames = VecFrames::new();
        let pt = PageTable::new(&mut frames, regime, bits).unwrap();
        (frames, pt)
    }

    /// The leaf descriptor for `va` and the level it sits at.
    fn leaf(frames: &mut VecFrames, pt: &PageTable, va: u64) -> (u64, u8) {
        let mut table = pt.root();
        let mut level = pt.geometry().start_level;
        loop {
            let (frame, slot) = pt.slot(table, level, va);
            let desc = frames.table(frame)[slot];
            if !is_table(desc, level) {
                return (desc, level);
            }
            table = desc_addr(desc);
            level += 1;
        }
    }

    #[test]
    fn geometry_el2_48bit_va_starts_at_level0() {
        let g = geometry(Regime::El2Stage1, 48).unwrap();
        assert_eq!(
            g,
            Geometry {
                start_level: 0,
                root_frames: 1,
                t0sz: 16,
                sl0: 0
            }
        );
    }

    #[test]
    fn geometry_el2_up_to_39bit_va_starts_at_level1() {
        assert_eq!(geometry(Regime::El2Stage1, 39).unwrap().start_level, 1);
        assert_eq!(geometry(Regime::El2Stage1, 32).unwrap().start_level, 1);
        assert_eq!(geometry(Regime::El2Stage1, 40).unwrap().start_level, 0);
        assert_eq!(geometry(Regime::El2Stage1, 40).unwrap().root_frames, 1);
    }

    #[test]
    fn stage2_40bit_ipa_uses_two_concatenated_level1_tables() {
        let g = geometry(Regime::Stage2, 40).unwrap();
        assert_eq!(
            g,
            Geometry {
                start_level: 1,
                root_frames: 2,
                t0sz: 24,
                sl0: 0b01
            }
        );
    }

    #[test]
    fn geometry_44bit_ipa_starts_at_level0() {
        let g = geometry(Regime::Stage2, 44).unwrap();
        assert_eq!(
            g,
            Geometry {
                start_level: 0,
                root_frames: 1,
                t0sz: 20,
                sl0: 0b10
            }
        );
    }

    #[test]
    fn stage2_43bit_ipa_concatenates_sixteen_level1_tables() {
        let g = geometry(Regime::Stage2, 43).unwrap();
        assert_eq!((g.start_level, g.root_frames, g.sl0), (1, 16, 0b01));
        let g = geometry(Regime::Stage2, 39).unwrap();
        assert_eq!((g.start_level, g.root_frames), (1, 1));
        let g = geometry(Regime::Stage2, 35).unwrap();
        assert_eq!((g.start_level, g.root_frames), (1, 1));
    }

    #[test]
    fn stage2_32bit_ipa_starts_at_level2_with_four_tables() {
        let g = geometry(Regime::Stage2, 32).unwrap();
        assert_eq!(
            g,
            Geometry {
                start_level: 2,
                root_frames: 4,
                t0sz: 32,
                sl0: 0b00
            }
        );
        let g = geometry(Regime::Stage2, 34).unwrap();
        assert_eq!((g.start_level, g.root_frames), (2, 16));
    }

    #[test]
    fn geometry_rejects_sizes_outside_32_to_48_bits() {
        for regime in [Regime::El2Stage1, Regime::Stage2] {
            assert_eq!(geometry(regime, 31), Err(MapError::InvalidAddressSize));
            assert_eq!(geometry(regime, 49), Err(MapError::InvalidAddressSize));
        }
    }

    #[test]
    fn pa_bits_from_parange_decodes_all_encodings() {
        let bits: Vec<_> = (0..=6).map(|p| pa_bits_from_parange(p).unwrap()).collect();
        assert_eq!(bits, [32, 36, 40, 42, 44, 48, 52]);
        assert_eq!(pa_bits_from_parange(7), None);
    }

    #[test]
    fn mair_el2_value_matches_attr_indices() {
        assert_eq!(MAIR_EL2_VALUE, 0x0044_04ff);
    }

    #[test]
    fn tcr_el2_fields() {
        // T0SZ=16, IRGN0=ORGN0=WBWA, SH0=IS, TG0=4K, PS=40 bits, RES1 bits 23 and 31.
        assert_eq!(tcr_el2(0b010, 48), Ok(0x8082_3510));
        assert_eq!(tcr_el2(0b010, 31), Err(MapError::InvalidAddressSize));
    }

    #[test]
    fn tcr_el2_caps_ps_at_48_bits() {
        let ps = |v: u64| (v >> 16) & 0b111;
        assert_eq!(ps(tcr_el2(0b110, 48).unwrap()), 0b101);
        assert_eq!(ps(tcr_el2(0b101, 48).unwrap()), 0b101);
        assert_eq!(ps(tcr_el2(0b000, 39).unwrap()), 0b000);
    }

    #[test]
    fn vtcr_el2_fields() {
        // T0SZ=24, SL0=1 (level 1), IRGN0=ORGN0=WBWA, SH0=IS, TG0=4K, PS=40 bits, RES1 bit 31.
        assert_eq!(vtcr_el2(0b010, 40), Ok(0x8002_3558));
        // 44-bit IPA on a 48-bit PA: T0SZ=20, SL0=2 (level 0), PS=0b101.
        assert_eq!(vtcr_el2(0b101, 44), Ok(0x8005_3594));
    }

    #[test]
    fn vtcr_el2_rejects_ipa_larger_than_pa() {
        assert_eq!(vtcr_el2(0b010, 41), Err(MapError::InvalidAddressSize));
        assert_eq!(vtcr_el2(0b000, 32).map(|v| v & 0x3f), Ok(32));
        // 52-bit PARange is capped at 48 bits, which still admits a 48-bit IPA.
        assert!(vtcr_el2(0b110, 48).is_ok());
    }

    #[test]
    fn new_allocates_aligned_concatenated_root() {
        let mut frames = VecFrames::new();
        frames.alloc_frames(1).unwrap(); // Misalign the next free frame.
        let pt = PageTable::new(&mut frames, Regime::Stage2, 42).unwrap();
        assert_eq!(pt.geometry().root_frames, 8);
        assert_eq!(pt.root() % (8 * PAGE_SIZE), 0);
    }

    #[test]
    fn new_without_memory_fails() {
        let mut frames = VecFrames::with_limit(1);
        let err = PageTable::new(&mut frames, Regime::Stage2, 40).unwrap_err();
        assert_eq!(err, MapError::NoMemory);
    }

    #[test]
    fn block_2m_used_when_va_and_pa_aligned() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        pt.map(&mut frames, 0x4000_0000, 0x4000_0000, MIB2, Attrs::RW_DATA)
            .unwrap();
        let (desc, level) = leaf(&mut frames, &pt, 0x4000_0000);
        assert_eq!(level, 2);
        // Block, AttrIndx 0, AP[2:1]=0b01, SH=IS, AF, XN (bit 54), OA 0x40000000.
        assert_eq!(desc, 0x0040_0000_4000_0741);
        // Root, level 1 and level 2 tables.
        assert_eq!(frames.frame_count(), 3);
    }

    #[test]
    fn block_1g_used_at_level1() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, GIB1, 2 * GIB1, GIB1, Attrs::RWX_RAM)
            .unwrap();
        let (desc, level) = leaf(&mut frames, &pt, GIB1 + 0x1234);
        assert_eq!(level, 1);
        assert_eq!(desc_addr(desc), 2 * GIB1);
        assert_eq!(frames.frame_count(), 2, "only the concatenated root");
    }

    #[test]
    fn pages_used_when_pa_not_block_aligned() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, KIB4, MIB2, Attrs::RWX_RAM).unwrap();
        let (desc, level) = leaf(&mut frames, &pt, MIB2 - KIB4);
        assert_eq!(level, 3);
        assert_eq!(desc_addr(desc), MIB2);
    }

    #[test]
    fn unaligned_range_ends_use_smaller_leaves() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        // 4 KiB below a 2 MiB boundary up to 4 KiB past the next: page, block, page.
        let va = MIB2 - KIB4;
        pt.map(&mut frames, va, va, MIB2 + 2 * KIB4, Attrs::RWX_RAM)
            .unwrap();
        assert_eq!(leaf(&mut frames, &pt, va).1, 3);
        assert_eq!(leaf(&mut frames, &pt, MIB2).1, 2);
        assert_eq!(leaf(&mut frames, &pt, 2 * MIB2).1, 3);
        assert_eq!(pt.translate(&mut frames, 2 * MIB2 + KIB4), None);
    }

    #[test]
    fn level0_block_never_used() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        let size = 1 << 39; // What one level-0 entry maps.
        pt.map(&mut frames, 0, 0, size, Attrs::RW_DATA).unwrap();
        assert_eq!(leaf(&mut frames, &pt, size - 1).1, 1);
        assert_eq!(frames.frame_count(), 2);
    }

    #[test]
    fn split_block_keeps_neighbour_attributes() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 39);
        pt.map(&mut frames, 0x4000_0000, 0x8000_0000, MIB2, Attrs::RW_DATA)
            .unwrap();
        pt.map(&mut frames, 0x4000_3000, 0x9000_0000, KIB4, Attrs::RX_CODE)
            .unwrap();
        assert_eq!(
            pt.translate(&mut frames, 0x4000_3010),
            Some((0x9000_0010, Attrs::RX_CODE))
        );
        for va in [
            0x4000_0000,
            0x4000_2000,
            0x4000_4000,
            0x4000_0000 + MIB2 - KIB4,
        ] {
            assert_eq!(
                pt.translate(&mut frames, va),
                Some((va - 0x4000_0000 + 0x8000_0000, Attrs::RW_DATA)),
                "{va:#x}"
            );
        }
        let (neighbour, level) = leaf(&mut frames, &pt, 0x4000_2000);
        assert_eq!(level, 3);
        // The block's bits, now as a page (bit 1) at its own address.
        assert_eq!(neighbour, 0x0040_0000_8000_2743);
    }

    #[test]
    fn split_1g_block_into_2m_blocks() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, 0, GIB1, Attrs::RWX_RAM).unwrap();
        pt.map(&mut frames, 0, 0, MIB2, Attrs::RO_DATA).unwrap();
        assert_eq!(
            leaf(&mut frames, &pt, MIB2).1,
            2,
            "neighbours become 2 MiB blocks"
        );
        assert_eq!(pt.translate(&mut frames, 0x1000).unwrap().1, Attrs::RO_DATA);
        assert_eq!(
            pt.translate(&mut frames, GIB1 - 1),
            Some((GIB1 - 1, Attrs::RWX_RAM))
        );
    }

    #[test]
    fn unmap_inside_block_splits_it() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0x4000_0000, 0x4000_0000, MIB2, Attrs::RWX_RAM)
            .unwrap();
        pt.unmap(&mut frames, 0x4000_1000, KIB4).unwrap();
        assert_eq!(pt.translate(&mut frames, 0x4000_1000), None);
        assert_eq!(
            pt.translate(&mut frames, 0x4000_0000),
            Some((0x4000_0000, Attrs::RWX_RAM))
        );
        assert_eq!(
            pt.translate(&mut frames, 0x4000_2000),
            Some((0x4000_2000, Attrs::RWX_RAM))
        );
    }

    #[test]
    fn unmap_of_whole_block_needs_no_table() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, 0, MIB2, Attrs::RWX_RAM).unwrap();
        let used = frames.frame_count();
        pt.unmap(&mut frames, 0, MIB2).unwrap();
        assert_eq!(pt.translate(&mut frames, 0), None);
        assert_eq!(frames.frame_count(), used);
    }

    #[test]
    fn unmap_of_unmapped_range_is_a_no_op() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.unmap(&mut frames, 0, GIB1 + KIB4).unwrap();
        assert_eq!(frames.frame_count(), 2, "no table allocated");
    }

    #[test]
    fn remap_overwrites_existing_mapping() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        pt.map(&mut frames, 0x1000, 0x5000, KIB4, Attrs::RW_DATA)
            .unwrap();
        pt.map(&mut frames, 0x1000, 0x7000, KIB4, Attrs::RO_DATA)
            .unwrap();
        assert_eq!(
            pt.translate(&mut frames, 0x1000),
            Some((0x7000, Attrs::RO_DATA))
        );
    }

    #[test]
    fn remap_block_over_table_reuses_the_table() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, 0, KIB4, Attrs::RWX_RAM).unwrap();
        let used = frames.frame_count();
        pt.map(&mut frames, 0, MIB2, MIB2, Attrs::RO_DATA).unwrap();
        assert_eq!(frames.frame_count(), used, "no new table, none orphaned");
        assert_eq!(leaf(&mut frames, &pt, 0).1, 3);
        assert_eq!(
            pt.translate(&mut frames, 0x1f_f000),
            Some((0x3f_f000, Attrs::RO_DATA))
        );
    }

    #[test]
    fn el2_xn_set_for_data() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        pt.map(&mut frames, 0, 0, KIB4, Attrs::RW_DATA).unwrap();
        let (desc, _) = leaf(&mut frames, &pt, 0);
        assert!(S1_EL2::XN.is_set(desc));
        assert!(!S1_EL2::AP_2.is_set(desc));
    }

    #[test]
    fn el2_code_is_executable_and_read_only() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        pt.map(&mut frames, 0, 0, KIB4, Attrs::RX_CODE).unwrap();
        let (desc, _) = leaf(&mut frames, &pt, 0);
        assert!(!S1_EL2::XN.is_set(desc));
        assert!(S1_EL2::AP_2.is_set(desc));
    }

    #[test]
    fn el2_ap1_is_res1() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        for (i, attrs) in [
            Attrs::RW_DATA,
            Attrs::RO_DATA,
            Attrs::RX_CODE,
            Attrs::DEVICE_RW,
        ]
        .into_iter()
        .enumerate()
        {
            let va = i as u64 * KIB4;
            pt.map(&mut frames, va, va, KIB4, attrs).unwrap();
            assert!(
                S1_EL2::AP_1.is_set(leaf(&mut frames, &pt, va).0),
                "{attrs:?}"
            );
        }
    }

    #[test]
    fn el2_device_uses_mair_index_1() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        pt.map(
            &mut frames,
            0x0900_0000,
            0x0900_0000,
            KIB4,
            Attrs::DEVICE_RW,
        )
        .unwrap();
        let (desc, _) = leaf(&mut frames, &pt, 0x0900_0000);
        // Page, AttrIndx 1, AP[2:1]=0b01, SH=IS, AF, XN.
        assert_eq!(desc, 0x0040_0000_0900_0747);
    }

    #[test]
    fn el2_rejects_unencodable_attrs() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 48);
        let write_only = Attrs {
            read: false,
            ..Attrs::RW_DATA
        };
        let writable_code = Attrs {
            exec: true,
            ..Attrs::RW_DATA
        };
        for attrs in [write_only, writable_code] {
            assert_eq!(
                pt.map(&mut frames, 0, 0, KIB4, attrs),
                Err(MapError::InvalidAttrs)
            );
        }
    }

    #[test]
    fn device_exec_is_rejected() {
        let attrs = Attrs {
            exec: true,
            write: false,
            ..Attrs::DEVICE_RW
        };
        for regime in [Regime::El2Stage1, Regime::Stage2] {
            let (mut frames, mut pt) = new_table(regime, 40);
            assert_eq!(
                pt.map(&mut frames, 0, 0, KIB4, attrs),
                Err(MapError::InvalidAttrs)
            );
        }
    }

    #[test]
    fn stage2_s2ap_encodes_read_write() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        let cases = [(true, false, 0b01), (false, true, 0b10), (true, true, 0b11)];
        for (i, (read, write, s2ap)) in cases.into_iter().enumerate() {
            let va = i as u64 * KIB4;
            let attrs = Attrs {
                mem: MemType::Normal,
                read,
                write,
                exec: false,
            };
            pt.map(&mut frames, va, va, KIB4, attrs).unwrap();
            let (desc, _) = leaf(&mut frames, &pt, va);
            assert_eq!((desc >> 6) & 0b11, s2ap, "read {read} write {write}");
            assert_eq!(pt.translate(&mut frames, va), Some((va, attrs)));
        }
    }

    #[test]
    fn stage2_no_access_is_rejected() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        let none = Attrs {
            mem: MemType::Normal,
            read: false,
            write: false,
            exec: true,
        };
        assert_eq!(
            pt.map(&mut frames, 0, 0, KIB4, none),
            Err(MapError::InvalidAttrs)
        );
    }

    #[test]
    fn stage2_descriptors_match_hand_encoding() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0x8000_1000, 0x8000_1000, KIB4, Attrs::RWX_RAM)
            .unwrap();
        // Page, MemAttr 0b1111, S2AP 0b11, SH=IS, AF, XN 0b00.
        assert_eq!(leaf(&mut frames, &pt, 0x8000_1000).0, 0x8000_17ff);
        pt.map(
            &mut frames,
            0x0900_0000,
            0x0900_0000,
            MIB2,
            Attrs::DEVICE_RW,
        )
        .unwrap();
        // Block, MemAttr 0b0001, S2AP 0b11, SH=IS, AF, XN 0b10.
        assert_eq!(leaf(&mut frames, &pt, 0x0900_0000).0, 0x0040_0000_0900_07c5);
        let nc = Attrs {
            mem: MemType::NormalNonCacheable,
            ..Attrs::RW_DATA
        };
        pt.map(&mut frames, 0x1000, 0x1000, KIB4, nc).unwrap();
        // Page, MemAttr 0b0101, S2AP 0b11, SH=IS, AF, XN 0b10.
        assert_eq!(leaf(&mut frames, &pt, 0x1000).0, 0x0040_0000_0000_17d7);
    }

    #[test]
    fn stage2_ipa_in_second_concatenated_table() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        let ipa = 1 << 39; // First IPA the second root frame maps.
        pt.map(&mut frames, ipa, GIB1, GIB1, Attrs::RWX_RAM)
            .unwrap();
        let desc = frames.table(pt.root() + PAGE_SIZE)[0];
        assert_eq!(desc_addr(desc), GIB1);
        assert_eq!(frames.table(pt.root())[0], 0);
        assert_eq!(
            pt.translate(&mut frames, ipa + 5),
            Some((GIB1 + 5, Attrs::RWX_RAM))
        );
    }

    #[test]
    fn unaligned_map_is_rejected() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        for (va, pa, size) in [(0x800, 0, KIB4), (0, 0x800, KIB4), (0, 0, 0x800)] {
            let got = pt.map(&mut frames, va, pa, size, Attrs::RWX_RAM);
            assert_eq!(got, Err(MapError::Unaligned));
        }
        assert_eq!(pt.unmap(&mut frames, 0, 0x800), Err(MapError::Unaligned));
        assert_eq!(frames.frame_count(), 2);
    }

    #[test]
    fn map_beyond_va_bits_is_rejected() {
        let (mut frames, mut pt) = new_table(Regime::El2Stage1, 39);
        let top = 1 << 39;
        let got = pt.map(&mut frames, top - KIB4, 0, 2 * KIB4, Attrs::RW_DATA);
        assert_eq!(got, Err(MapError::OutOfRange));
        let got = pt.map(&mut frames, !0xfff, 0, KIB4, Attrs::RW_DATA);
        assert_eq!(got, Err(MapError::OutOfRange));
        pt.map(&mut frames, top - KIB4, 0, KIB4, Attrs::RW_DATA)
            .unwrap();
        assert_eq!(pt.translate(&mut frames, top), None);
    }

    #[test]
    fn pa_beyond_48_bits_is_rejected() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        let got = pt.map(&mut frames, 0, 1 << 48, KIB4, Attrs::RWX_RAM);
        assert_eq!(got, Err(MapError::OutOfRange));
    }

    #[test]
    fn zero_size_map_is_a_no_op() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, 0, 0, Attrs::RWX_RAM).unwrap();
        assert_eq!(pt.translate(&mut frames, 0), None);
    }

    #[test]
    fn translate_returns_pa_and_attrs() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 44);
        pt.map(
            &mut frames,
            0x4020_0000,
            0x1_0000_0000,
            MIB2,
            Attrs::DEVICE_RW,
        )
        .unwrap();
        assert_eq!(
            pt.translate(&mut frames, 0x4020_0abc),
            Some((0x1_0000_0abc, Attrs::DEVICE_RW))
        );
        assert_eq!(pt.translate(&mut frames, 0x4040_0000), None);
        assert_eq!(pt.translate(&mut frames, 1 << 44), None);
    }

    #[test]
    fn allocation_failure_leaves_a_valid_prefix() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        // Two 2 MiB pieces, each 4 KiB off block alignment in pa, so each needs a level-3
        // table; allow only the level-2 table and the first level-3 table.
        frames.set_limit(frames.frame_count() + 2);
        let got = pt.map(&mut frames, 0, KIB4, 2 * MIB2, Attrs::RWX_RAM);
        assert_eq!(got, Err(MapError::NoMemory));
        assert_eq!(
            pt.translate(&mut frames, MIB2 - KIB4),
            Some((MIB2, Attrs::RWX_RAM))
        );
        assert_eq!(pt.translate(&mut frames, MIB2), None);
        frames.set_limit(usize::MAX);
        pt.map(&mut frames, 0, KIB4, 2 * MIB2, Attrs::RWX_RAM)
            .unwrap();
        assert_eq!(
            pt.translate(&mut frames, MIB2),
            Some((MIB2 + KIB4, Attrs::RWX_RAM))
        );
    }

    #[test]
    fn split_failure_keeps_the_block() {
        let (mut frames, mut pt) = new_table(Regime::Stage2, 40);
        pt.map(&mut frames, 0, 0, MIB2, Attrs::RWX_RAM).unwrap();
        frames.set_limit(frames.frame_count());
        let got = pt.map(&mut frames, 0, 0, KIB4, Attrs::RO_DATA);
        assert_eq!(got, Err(MapError::NoMemory));
        assert_eq!(leaf(&mut frames, &pt, 0).1, 2);
        assert_eq!(pt.translate(&mut frames, 0), Some((0, Attrs::RWX_RAM)));
    }

    #[test]
    fn map_error_display_is_human_readable() {
        assert_eq!(MapError::NoMemory.to_string(), "out of page-table frames");
    }
}
