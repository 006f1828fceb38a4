//! Table-driven emulation of the GIC's memory-mapped registers, shared by the vGICv2 distributor
//! ([`super::regs_v2`]) and the vGICv3 distributor and redistributors ([`super::regs_v3`]).
//!
//! The design is Linux KVM's `vgic-mmio.c` (`struct vgic_register_region`,
//! `vgic_find_mmio_region`, `check_region`) with Bao's `field_width` loop: a register block is a
//! sorted `const` table of [`RegionDesc`]s; an access is looked up by binary search ([`find`]),
//! validated by one function ([`check`]: access width allowed, naturally aligned, interrupt IDs
//! implemented) and then dispatched by one `match` on [`RegKind`] (an enum instead of C function
//! pointers, so the compiler sees every behaviour handled). Registers with a field per interrupt
//! share one loop that turns an access of any allowed width into per-interrupt operations of
//! [`Vgic`] (1 bit: group, enable, pending, active; 2 bits: configuration; 8 bits: priority,
//! targets).
//!
//! Specs: GICv3 IHI 0069H chapter 12 (registers are 32 bits wide; byte access is allowed to
//! GICD_IPRIORITYR, GICD_ITARGETSR, GICD_CPENDSGIR, GICD_SPENDSGIR and GICR_IPRIORITYR, 64-bit
//! access to the 64-bit registers, which may also be accessed as two 32-bit halves); GICv2
//! IHI 0048B chapter 4 (the same rules without the 64-bit registers). Reserved and
//! unimplemented locations are RAZ/WI.
//!
//! Invariants:
//! * Each table is sorted by offset and its regions are disjoint (tested for every table).
//! * A per-interrupt region lies in a register group that starts at a multiple of the group's
//!   full size (`1024 * bits_per_irq / 8` bytes), as in both specs' register maps, so an offset
//!   alone gives the interrupt ID ([`RegionDesc::intid_at`], KVM's `VGIC_ADDR_TO_INTID`).
//! * No access panics, whatever its offset, width or value: a failed check reads as zero,
//!   ignores the write and says so in [`MmioOutcome`] so the hypervisor can count it.

use core::mem::size_of;

use tock_registers::register_bitfields;

use super::Vgic;
use super::irq::{IntId, IrqState, Route, Trigger, VcpuId};

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u32,
        /// GICD_IIDR / GICR_IIDR (IHI 0069H 12.9, 12.11; IHI 0048B 4.3).
        pub IIDR [
            Implementer OFFSET(0) NUMBITS(12) [Arm = 0x43b],
            Revision OFFSET(12) NUMBITS(4) [],
            Variant OFFSET(16) NUMBITS(4) [],
            ProductID OFFSET(24) NUMBITS(8) []
        ]
    }

    register_bitfields! {u8,
        /// One 2-bit Int_config field of `GICD_ICFGR<n>` / `GICR_ICFGR<n>`.
        pub ICFGR_FIELD [
            /// `Int_config[1]`: 0 = level-sensitive, 1 = edge-triggered. `Int_config[0]` is RES0.
            IntConfig OFFSET(1) NUMBITS(1) [Level = 0, Edge = 1]
        ]
    }
}

use fields::{ICFGR_FIELD, IIDR};

/// `GICD_IIDR.ProductID` of exitless: `'E'`. KVM uses `'K'` (0x4b); any value an Arm driver
/// does not match against a GIC-500/600 erratum list is fine.
pub const PRODUCT_ID_EXITLESS: u32 = b'E' as u32;

/// GICD_IIDR and GICR_IIDR (and the vGICv2 GICD_IIDR): implementer Arm (JEP106 0x43b),
/// product [`PRODUCT_ID_EXITLESS`], variant 0, revision 0.
pub fn iidr() -> u32 {
    let id = IIDR::Implementer::Arm
        + IIDR::Revision.val(0)
        + IIDR::Variant.val(0)
        + IIDR::ProductID.val(PRODUCT_ID_EXITLESS);
    id.value
}

/// Width of one GICD_ICFGR / GICR_ICFGR field.
const ICFGR_BITS_PER_IRQ: u8 = 2;

/// Interrupt IDs a per-interrupt register group describes (the whole INTID space of GICv2 and of
/// the GICv3 distributor).
const INTID_SPACE: u32 = 1024;

/// The access sizes a region accepts: a set of byte widths, each width being its own bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths(u8);

impl Widths {
    /// Byte accesses.
    pub const W8: Widths = Widths(size_of::<u8>() as u8);
    /// Halfword accesses.
    pub const W16: Widths = Widths(size_of::<u16>() as u8);
    /// Word accesses.
    pub const W32: Widths = Widths(size_of::<u32>() as u8);
    /// Doubleword accesses.
    pub const W64: Widths = Widths(size_of::<u64>() as u8);

    /// The union of two sets.
    pub const fn or(self, other: Widths) -> Widths {
        Widths(self.0 | other.0)
    }

    /// True if an access of `width` bytes is allowed (false for any width that is not 1, 2, 4
    /// or 8).
    pub const fn allows(self, width: u8) -> bool {
        width.is_power_of_two() && self.0 & width == width
    }
}

/// What a register group does with one interrupt's field: the per-interrupt behaviours the
/// generic per-interrupt loop applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqField {
    /// IGROUPR (1 bit): read/write group 1 (1) or group 0 (0).
    Group,
    /// ISENABLER (1 bit): reads the enable; writing 1 enables, 0 has no effect.
    SetEnable,
    /// ICENABLER (1 bit): reads the enable; writing 1 disables, 0 has no effect.
    ClearEnable,
    /// vGICv2 ISENABLER: as [`IrqField::SetEnable`], but SGI bits are RAO/WI (QEMU's GICv2:
    /// SGIs are always enabled, an IMPLEMENTATION DEFINED choice of IHI 0048B 4.3.5).
    SetEnableSgiRao,
    /// vGICv2 ICENABLER: as [`IrqField::ClearEnable`], SGI bits RAO/WI.
    ClearEnableSgiRao,
    /// ISPENDR (1 bit): reads the pending state; writing 1 sets the pending latch.
    SetPending,
    /// ICPENDR (1 bit): reads the pending state; writing 1 clears the pending latch.
    ClearPending,
    /// vGICv2 ISPENDR: SGI bits ignore writes (IHI 0048B 4.3.7: use GICD_SPENDSGIR).
    SetPendingSgiWi,
    /// vGICv2 ICPENDR: SGI bits ignore writes (IHI 0048B 4.3.8: use GICD_CPENDSGIR).
    ClearPendingSgiWi,
    /// ISACTIVER (1 bit): reads the active state; writing 1 activates.
    SetActive,
    /// ICACTIVER (1 bit): reads the active state; writing 1 deactivates.
    ClearActive,
    /// IPRIORITYR (8 bits): the priority, unimplemented low bits RAZ/WI.
    Priority,
    /// ICFGR (2 bits): `Int_config[1]` = edge; SGIs read-only edge; `Int_config[0]` RES0.
    Config,
    /// vGICv2 ITARGETSR (8 bits): CPU targets of SPIs; read-only for SGIs and PPIs.
    Targets,
}

impl IrqField {
    /// The width of this field per interrupt, in bits.
    pub const fn bits(self) -> u8 {
        match self {
            IrqField::Priority | IrqField::Targets => u8::BITS as u8,
            IrqField::Config => ICFGR_BITS_PER_IRQ,
            _ => 1,
        }
    }
}

/// Every register behaviour of the emulated register blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegKind {
    /// Reads as zero, writes ignored (reserved, unimplemented, or RAZ/WI by configuration).
    RazWi,
    /// The CoreSight identification registers (PIDR4-7, PIDR0-3, CIDR0-3, one word each).
    IdRegs(&'static [u8; 12]),
    /// GICD_IIDR / GICR_IIDR: read-only [`iidr`].
    Iidr,
    /// A register with one field per interrupt, handled by the generic loop.
    Field(IrqField),
    /// `GICD_IROUTER<n>` (vGICv3): 64 bits per SPI, 64-bit or 32-bit halves.
    Router,
    /// vGICv3 GICD_CTLR (single security state, affinity routing always on).
    GicdCtlrV3,
    /// vGICv3 GICD_TYPER.
    GicdTyperV3,
    /// GICR_TYPER: 64-bit or 32-bit halves, describing the frame's own vCPU.
    GicrTyper,
    /// GICR_WAKER: ProcessorSleep / ChildrenAsleep handshake.
    GicrWaker,
    /// GICR_PROPBASER: stored, RES0 bits masked.
    GicrPropbaser,
    /// GICR_PENDBASER: stored, RES0 bits masked, PTZ reads 0.
    GicrPendbaser,
    /// vGICv2 GICD_CTLR: EnableGrp0, EnableGrp1.
    GicdCtlrV2,
    /// vGICv2 GICD_TYPER.
    GicdTyperV2,
    /// vGICv2 GICD_SGIR: write-only SGI generation.
    GicdSgir,
    /// vGICv2 `GICD_CPENDSGIR<n>`: per-source SGI pending bits, write 1 to clear.
    GicdCpendsgir,
    /// vGICv2 `GICD_SPENDSGIR<n>`: per-source SGI pending bits, write 1 to set.
    GicdSpendsgir,
}

/// One register or register group of a block (KVM `struct vgic_register_region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionDesc {
    /// Byte offset of the region in its block (distributor, or one redistributor frame).
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
    /// Bits per interrupt for per-interrupt registers, 0 otherwise.
    pub bits_per_irq: u8,
    /// Allowed access sizes.
    pub widths: Widths,
    /// What the region does.
    pub kind: RegKind,
    /// Register group name (spec spelling), for counters and logs.
    pub name: &'static str,
}

impl RegionDesc {
    /// A region whose registers are not per-interrupt.
    pub const fn reg(
        offset: u32,
        len: u32,
        widths: Widths,
        kind: RegKind,
        name: &'static str,
    ) -> Self {
        RegionDesc {
            offset,
            len,
            bits_per_irq: 0,
            widths,
            kind,
            name,
        }
    }

    /// A region with one `field` per interrupt (its width gives `bits_per_irq`).
    pub const fn field(
        offset: u32,
        len: u32,
        widths: Widths,
        field: IrqField,
        name: &'static str,
    ) -> Self {
        let bits_per_irq = field.bits();
        RegionDesc {
            offset,
            len,
            bits_per_irq,
            widths,
            kind: RegKind::Field(field),
            name,
        }
    }

    /// `GICD_IROUTER<n>`: 64 bits per interrupt, 32- or 64-bit accesses.
    pub const fn router(offset: u32, len: u32, name: &'static str) -> Self {
        let widths = Widths::W32.or(Widths::W64);
        let bits_per_irq = u64::BITS as u8;
        RegionDesc {
            offset,
            len,
            bits_per_irq,
            widths,
            kind: RegKind::Router,
            name,
        }
    }

    /// Bytes the whole register group takes for [`INTID_SPACE`] interrupts.
    const fn group_size(&self) -> u32 {
        self.bits_per_irq as u32 * (INTID_SPACE / u8::BITS)
    }

    /// The first interrupt ID that the byte at block offset `offset` describes (0 for regions
    /// that are not per-interrupt).
    pub const fn intid_at(&self, offset: u32) -> u32 {
        if self.bits_per_irq == 0 {
            return 0;
        }
        (offset % self.group_size()) * u8::BITS / self.bits_per_irq as u32
    }

    /// True if `offset` lies in the region.
    pub const fn contains(&self, offset: u32) -> bool {
        offset >= self.offset && offset - self.offset < self.len
    }
}

/// `MmioOutcome::group` of an access that matched no region.
pub const GROUP_UNMAPPED: &str = "unmapped";
/// `MmioOutcome::group` of an access whose size the region does not allow.
pub const GROUP_BAD_WIDTH: &str = "bad-width";
/// `MmioOutcome::group` of an access not aligned to its size.
pub const GROUP_MISALIGNED: &str = "misaligned";

/// What an emulated access did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioOutcome {
    /// The value a read returns (zero-extended); 0 for writes.
    pub value: u64,
    /// The register group matched ([`RegionDesc::name`]), or [`GROUP_UNMAPPED`],
    /// [`GROUP_BAD_WIDTH`] or [`GROUP_MISALIGNED`].
    pub group: &'static str,
    /// False if the access failed a check and was treated as RAZ/WI: no region, a width the
    /// region does not allow, a misaligned access, or (with `group` naming the region)
    /// interrupt IDs that are not implemented.
    pub ok: bool,
}

impl MmioOutcome {
    /// A failed check: reads as zero, the write was ignored.
    pub const fn refused(group: &'static str) -> Self {
        MmioOutcome {
            value: 0,
            group,
            ok: false,
        }
    }
}

/// A checked access: the region it hits and its offset in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The region.
    pub region: &'static RegionDesc,
    /// Offset of the access in the block.
    pub offset: u32,
}

impl Decoded {
    /// Offset of the access from the start of its region.
    pub const fn region_offset(&self) -> u32 {
        self.offset - self.region.offset
    }
}

/// The region of `table` containing `offset`, by binary search (KVM `vgic_find_mmio_region`).
pub fn find(table: &'static [RegionDesc], offset: u32) -> Option<&'static RegionDesc> {
    use core::cmp::Ordering;
    table
        .binary_search_by(|r| {
            if offset < r.offset {
                Ordering::Greater
            } else if r.contains(offset) {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        })
        .ok()
        .and_then(|i| table.get(i))
}

/// The one validity check of an access (KVM `check_region`): a region contains `offset`, it
/// allows `width`, the access is naturally aligned and stays inside the region, and for a
/// per-interrupt region the first interrupt covered is below `irq_count`. A failure is the
/// outcome to return: RAZ/WI, reported.
pub fn check(
    table: &'static [RegionDesc],
    offset: u64,
    width: u8,
    irq_count: u32,
) -> Result<Decoded, MmioOutcome> {
    let Ok(offset) = u32::try_from(offset) else {
        return Err(MmioOutcome::refused(GROUP_UNMAPPED));
    };
    let Some(region) = find(table, offset) else {
        return Err(MmioOutcome::refused(GROUP_UNMAPPED));
    };
    if !region.widths.allows(width) {
        return Err(MmioOutcome::refused(GROUP_BAD_WIDTH));
    }
    if !offset.is_multiple_of(u32::from(width)) {
        return Err(MmioOutcome::refused(GROUP_MISALIGNED));
    }
    if offset - region.offset + u32::from(width) > region.len {
        return Err(MmioOutcome::refused(GROUP_BAD_WIDTH));
    }
    if region.bits_per_irq != 0 && region.intid_at(offset) >= irq_count {
        // Per-interrupt registers of interrupts that are not implemented are RAZ/WI.
        return Err(MmioOutcome::refused(region.name));
    }
    Ok(Decoded { region, offset })
}

/// The bits an access of `width` bytes carries (0 for a width that is not 1, 2, 4 or 8).
pub const fn width_mask(width: u8) -> u64 {
    match width {
        1 => u8::MAX as u64,
        2 => u16::MAX as u64,
        4 => u32::MAX as u64,
        8 => u64::MAX,
        _ => 0,
    }
}

/// The `width` bytes of `reg` starting at byte `byte` (KVM `extract_bytes`): a read of part of a
/// 64-bit register.
pub const fn extract_bytes(reg: u64, byte: u32, width: u8) -> u64 {
    let Some(shift) = byte.checked_mul(u8::BITS) else {
        return 0;
    };
    match reg.checked_shr(shift) {
        Some(v) => v & width_mask(width),
        None => 0,
    }
}

/// `reg` with its `width` bytes starting at byte `byte` replaced by `val` (KVM
/// `update_64bit_reg`): a write of part of a 64-bit register keeps the other part.
pub const fn update_bytes(reg: u64, byte: u32, width: u8, val: u64) -> u64 {
    let Some(shift) = byte.checked_mul(u8::BITS) else {
        return reg;
    };
    let (Some(mask), Some(val)) = (
        width_mask(width).checked_shl(shift),
        (val & width_mask(width)).checked_shl(shift),
    ) else {
        return reg;
    };
    (reg & !mask) | val
}

/// Who makes an access and whose banked state it addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// The vCPU making the access (the SGI source for GICD_SGIR, the reader of ITARGETSR0-7).
    pub accessor: VcpuId,
    /// The vCPU whose private interrupts (SGIs, PPIs) and redistributor the access addresses:
    /// the accessor for a distributor, the frame's vCPU for a redistributor.
    pub owner: VcpuId,
}

impl Vgic {
    /// Emulates one access to the block described by `table`: [`check`], then the region's
    /// behaviour. `write` is `None` for a read; only its low `width` bytes are used.
    pub(super) fn mmio_access(
        &mut self,
        table: &'static [RegionDesc],
        ctx: Ctx,
        offset: u64,
        width: u8,
        write: Option<u64>,
    ) -> MmioOutcome {
        let d = match check(table, offset, width, self.irq_count()) {
            Ok(d) => d,
            Err(refused) => return refused,
        };
        let write = write.map(|v| v & width_mask(width));
        let reg_off = d.region_offset();
        let read = match d.region.kind {
            RegKind::RazWi => 0,
            // PIDR/CIDR: read-only CoreSight identification, one byte per word.
            RegKind::IdRegs(ids) => {
                let index = (reg_off / size_of::<u32>() as u32) as usize;
                ids.get(index).map_or(0, |&b| u64::from(b))
            }
            // GICD_IIDR/GICR_IIDR: read-only implementer and product.
            RegKind::Iidr => u64::from(iidr()),
            RegKind::Field(field) => self.irq_fields(ctx, d, width, field, write),
            RegKind::Router => self.gicd_irouter(ctx.accessor, d, width, write),
            RegKind::GicdCtlrV3 => self.gicd_ctlr_v3(write),
            RegKind::GicdTyperV3 => self.gicd_typer_v3(),
            RegKind::GicrTyper => self.gicr_typer(ctx.owner, reg_off, width),
            RegKind::GicrWaker => self.gicr_waker(ctx.owner, write),
            RegKind::GicrPropbaser => self.gicr_propbaser(ctx.owner, reg_off, width, write),
            RegKind::GicrPendbaser => self.gicr_pendbaser(ctx.owner, reg_off, width, write),
            RegKind::GicdCtlrV2 => self.gicd_ctlr_v2(write),
            RegKind::GicdTyperV2 => self.gicd_typer_v2(),
            RegKind::GicdSgir => {
                if let Some(v) = write {
                    self.gicd_sgir(ctx.accessor, v);
                }
                // Write-only: reads are RAZ.
                0
            }
            RegKind::GicdCpendsgir => self.gicd_sgi_pending(ctx, reg_off, width, false, write),
            RegKind::GicdSpendsgir => self.gicd_sgi_pending(ctx, reg_off, width, true, write),
        };
        let value = if write.is_some() {
            0
        } else {
            read & width_mask(width)
        };
        MmioOutcome {
            value,
            group: d.region.name,
            ok: true,
        }
    }

    /// The generic per-interrupt loop (KVM's per-IRQ handlers, Bao `vgic_emul_generic_access`):
    /// an access of `width` bytes to a region with `bits_per_irq`-bit fields covers
    /// `width * 8 / bits_per_irq` interrupts from the one at the access offset; field `n` of the
    /// value is interrupt `first + n`. Interrupts that do not exist read as zero and ignore
    /// writes.
    fn irq_fields(
        &mut self,
        ctx: Ctx,
        d: Decoded,
        width: u8,
        field: IrqField,
        write: Option<u64>,
    ) -> u64 {
        let bits = u32::from(d.region.bits_per_irq);
        if bits == 0 || bits > u8::BITS {
            return 0;
        }
        let first = d.region.intid_at(d.offset);
        let count = u32::from(width) * u8::BITS / bits;
        let field_mask = (1u64 << bits) - 1;
        if write.is_none()
            && let Some(v) = self.read_fields_in_bank(ctx, field, first, count, bits)
        {
            return v;
        }
        let mut value = 0;
        for n in 0..count {
            let id = IntId(first + n);
            let shift = n * bits;
            match write {
                Some(v) => self.write_irq_field(ctx, field, id, (v >> shift) & field_mask),
                None => value |= self.read_irq_field(ctx, field, id) << shift,
            }
        }
        value
    }

    /// A read of `count` interrupts' `field` from `first` on, when they are all in one bank
    /// (the reader's SGIs and PPIs, or existing SPIs) and the field is one of the common
    /// per-interrupt bits or bytes: the field is chosen once and the interrupts are read from
    /// the bank's slice in one pass, instead of a lookup and a field match per interrupt
    /// ([`Vgic::read_irq_field`], which gives the same value; a host test compares them).
    /// `None`: take the general path.
    fn read_fields_in_bank(
        &self,
        ctx: Ctx,
        field: IrqField,
        first: u32,
        count: u32,
        bits: u32,
    ) -> Option<u64> {
        let end = first.checked_add(count)?;
        let irqs: &[IrqState] = if end <= IntId::PRIVATE_COUNT {
            self.cpus
                .get(ctx.owner)?
                .private
                .get(first as usize..end as usize)?
        } else if first >= IntId::PRIVATE_COUNT {
            self.spis.get((first - 32) as usize..(end - 32) as usize)?
        } else {
            return None;
        };
        fn gather(irqs: &[IrqState], bits: u32, f: impl Fn(&IrqState) -> u64) -> u64 {
            irqs.iter()
                .enumerate()
                .fold(0, |v, (n, i)| v | f(i) << (n as u32 * bits))
        }
        Some(match field {
            IrqField::Group => gather(irqs, bits, |i| u64::from(i.group1)),
            IrqField::SetEnable | IrqField::ClearEnable => {
                gather(irqs, bits, |i| u64::from(i.enabled))
            }
            IrqField::SetPending
            | IrqField::ClearPending
            | IrqField::SetPendingSgiWi
            | IrqField::ClearPendingSgiWi => gather(irqs, bits, |i| u64::from(i.is_pending())),
            IrqField::SetActive | IrqField::ClearActive => {
                gather(irqs, bits, |i| u64::from(i.active))
            }
            IrqField::Priority => gather(irqs, bits, |i| u64::from(i.priority)),
            _ => return None,
        })
    }

    /// One interrupt's field as a read returns it.
    fn read_irq_field(&self, ctx: Ctx, field: IrqField, id: IntId) -> u64 {
        let Some(irq) = self.irq(ctx.owner, id) else {
            return 0;
        };
        match field {
            IrqField::Group => u64::from(irq.group1),
            IrqField::SetEnable | IrqField::ClearEnable => u64::from(irq.enabled),
            IrqField::SetEnableSgiRao | IrqField::ClearEnableSgiRao => {
                u64::from(irq.enabled || id.is_sgi())
            }
            IrqField::SetPending
            | IrqField::ClearPending
            | IrqField::SetPendingSgiWi
            | IrqField::ClearPendingSgiWi => u64::from(irq.is_pending()),
            IrqField::SetActive | IrqField::ClearActive => u64::from(irq.active),
            IrqField::Priority => u64::from(irq.priority),
            IrqField::Config => {
                let cfg = match irq.trigger {
                    Trigger::Edge => ICFGR_FIELD::IntConfig::Edge,
                    Trigger::Level => ICFGR_FIELD::IntConfig::Level,
                };
                u64::from(cfg.value)
            }
            // IHI 0048B 4.3.12: "GICD_ITARGETSR0 to GICD_ITARGETSR7 are read-only, and each
            // field returns a value that corresponds only to the processor reading the
            // register" (pitfall 6: the reader's own CPU interface bit, in every byte).
            IrqField::Targets if id.is_private() => self.v2_cpu_bit(ctx.accessor).into(),
            IrqField::Targets => match irq.route {
                Route::Targets(mask) => u64::from(mask),
                Route::Affinity(_) | Route::Any(_) => 0,
            },
        }
    }

    /// Applies one interrupt's field of a write.
    fn write_irq_field(&mut self, ctx: Ctx, field: IrqField, id: IntId, v: u64) {
        let (vcpu, one) = (ctx.owner, v != 0);
        match field {
            // IGROUPR: "0 = group 0, 1 = group 1", read/write.
            IrqField::Group => self.set_group1(vcpu, id, one),
            // ISENABLER/ISPENDR/ISACTIVER: "writing 1 sets, writing 0 has no effect"; the
            // IC*R registers clear the same way.
            IrqField::SetEnable if one => self.set_enabled(vcpu, id, true),
            IrqField::ClearEnable if one => self.set_enabled(vcpu, id, false),
            IrqField::SetEnableSgiRao if one && !id.is_sgi() => self.set_enabled(vcpu, id, true),
            IrqField::ClearEnableSgiRao if one && !id.is_sgi() => self.set_enabled(vcpu, id, false),
            IrqField::SetPending if one => self.set_pending(vcpu, id, true),
            IrqField::ClearPending if one => self.set_pending(vcpu, id, false),
            IrqField::SetPendingSgiWi if one && !id.is_sgi() => self.set_pending(vcpu, id, true),
            IrqField::ClearPendingSgiWi if one && !id.is_sgi() => self.set_pending(vcpu, id, false),
            IrqField::SetActive if one => self.set_active(vcpu, id, true),
            IrqField::ClearActive if one => self.set_active(vcpu, id, false),
            // IPRIORITYR: the model keeps only the implemented high bits.
            IrqField::Priority => self.set_priority(vcpu, id, (v & width_mask(1)) as u8),
            // ICFGR: "Int_config[1]: 0 = level-sensitive, 1 = edge-triggered"; the model keeps
            // SGIs edge-triggered (read-only), Int_config[0] is RES0.
            IrqField::Config => {
                let edge = ICFGR_FIELD::IntConfig.is_set((v & width_mask(1)) as u8);
                self.set_trigger(vcpu, id, if edge { Trigger::Edge } else { Trigger::Level });
            }
            // ITARGETSR8+: "bits for CPU interfaces that are not implemented are RAZ/WI";
            // ITARGETSR0-7 are read-only.
            IrqField::Targets if id.is_spi() => {
                let mask = (v & width_mask(1)) as u8 & self.v2_cpu_interfaces();
                self.set_route(vcpu, id, Route::Targets(mask));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
