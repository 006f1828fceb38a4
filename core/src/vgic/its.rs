//! The virtual ITS: one VM's GICv3 Interrupt Translation Service, and the LPI side of its
//! redistributors, as its guest sees them, as a pure model.
//!
//! Spec: IHI 0069H 5.1 (LPIs, the property and pending tables), 5.2 (the ITS, its tables and
//! command queue), 5.3 (the commands; 5.3.19 command errors), 12.19 (the GITS_* registers),
//! 12.11 (GICR_CTLR.EnableLPIs, GICR_PROPBASER, GICR_PENDBASER). Where the architecture leaves
//! a choice, it follows Linux KVM (`vgic-its.c`) and agrees with what QEMU's ITS
//! (`arm_gicv3_its.c`) shows a guest natively, so that the conformance guest sees the same on
//! both.
//!
//! ## Where the state lives
//!
//! The guest programs a device table, a collection table and an ITT per device, but the
//! translation state lives here, in exitless's memory (KVM's way): mapped devices, interrupt
//! translation entries (ITEs) and collections. The guest's tables are only checked: the device
//! table's size bounds the DeviceIDs, and a two-level device table's level-1 entry must be
//! valid. Nothing is ever written to guest memory, and a guest that scribbles over its tables
//! changes nothing.
//!
//! Each mapped LPI has one [`Lpi`] record: its priority and enable (from the guest's property
//! table, read on MAPTI/MAPI, INV and INVALL only, as the architecture allows), its pending
//! state and the vCPU it targets (set by MAPTI/MAPI and MOVI from the collection, changed by
//! MAPC and MOVALL, as KVM does). An LPI is delivered when it is pending, enabled, targets a
//! vCPU and that vCPU's redistributor has GICR_CTLR.EnableLPIs set.
//!
//! ## Invariants
//!
//! * **Bounded memory.** The device, ITE and LPI tables have fixed capacities, reserved when
//!   the VM is created ([`ItsConfig`]); a command that would need more fails (and is skipped),
//!   nothing grows. A huge MAPD Size is refused by the range check, not allocated.
//! * **Bounded work per trapped access.** Processing the queue costs one unit per command and
//!   one per entry a command walks (MAPD's events, INVALL, MAPC, MOVALL); an access stops after
//!   [`WORK_BUDGET`] units with GITS_CREADR where it got to, and the next access to the ITS
//!   (Linux polls GITS_CREADR) goes on. A wrapped or out-of-range GITS_CWRITER is ignored.
//! * **Errors skip, never stall.** A command with a bad parameter, or one that cannot be read,
//!   is skipped and the queue goes on (KVM, Xen and QEMU do the same; GITS_TYPER.SEIS = 0, so
//!   no SError). The last error is kept for the counters ([`ItsStats`]).
//! * **Guest memory** is read only through [`GuestRam`], which answers only inside the VM's RAM.
//!
//! ## Direct injection (GICv4)
//!
//! With [`Its::set_owned`]`(.., true)` the events of owned devices are virtual LPIs in the
//! physical ITS (VMAPTI), delivered by the hardware to the resident vCPU with no exit: the
//! model then keeps their mapping and properties but never their pending state (the hardware
//! has it), so such an LPI never enters a list register. It keeps the **shadow property table**
//! the hardware reads (GICR_VPROPBASER): one byte per LPI, copied from the guest's table on
//! MAPTI/MAPI, INV and INVALL, so the guest's own memory is never handed to the hardware; and
//! turns the guest's INT, CLEAR, INV and INVALL on those events into physical work
//! ([`PhysItsOp`]).

use alloc::vec::Vec;

use super::irq::{IntId, IrqState, VcpuId};
use crate::gic::its::{Command, NO_DOORBELL};
use crate::mm::GuestRam;

/// The first LPI INTID.
pub const LPI_BASE: u32 = IntId::LPI_BASE;
/// Interrupt ID bits the vGIC reports with LPIs (GICD_TYPER.IDbits + 1): INTIDs below 2^16.
pub const LPI_ID_BITS: u32 = 16;
/// DeviceID bits (GITS_TYPER.Devbits + 1).
pub const DEVICE_ID_BITS: u32 = 16;
/// EventID bits (GITS_TYPER.ID_bits + 1): the largest MAPD Size is this minus one.
pub const EVENT_ID_BITS: u32 = 16;
/// Collections (GITS_TYPER.CIL = 1, CIDbits + 1 = 6: ICIDs 0-63).
pub const MAX_COLLECTIONS: usize = 64;
/// Work units one trapped access may spend on the command queue.
pub const WORK_BUDGET: u32 = 4096;
/// Bytes per command.
const CMD_SIZE: u64 = 32;

/// GITS_* register offsets (IHI 0069H 12.19), from the ITS's base.
pub mod regs {
    /// GITS_CTLR.
    pub const GITS_CTLR: u64 = 0x0000;
    /// GITS_IIDR.
    pub const GITS_IIDR: u64 = 0x0004;
    /// GITS_TYPER.
    pub const GITS_TYPER: u64 = 0x0008;
    /// GITS_CBASER.
    pub const GITS_CBASER: u64 = 0x0080;
    /// GITS_CWRITER.
    pub const GITS_CWRITER: u64 = 0x0088;
    /// GITS_CREADR.
    pub const GITS_CREADR: u64 = 0x0090;
    /// GITS_BASER0 (then BASER1..7, 8 bytes apart).
    pub const GITS_BASER: u64 = 0x0100;
    /// The CoreSight ID registers.
    pub const GITS_IDREGS: u64 = 0xffd0;
    /// GITS_TRANSLATER, in the second 64 KiB frame.
    pub const GITS_TRANSLATER: u64 = 0x1_0040;
    /// Size of the two frames (control, translation).
    pub const GITS_SIZE: u64 = 0x2_0000;
}
use regs::*;

/// ITS command opcodes (IHI 0069H 5.3).
pub mod cmd {
    /// MOVI.
    pub const MOVI: u8 = 0x01;
    /// INT.
    pub const INT: u8 = 0x03;
    /// CLEAR.
    pub const CLEAR: u8 = 0x04;
    /// SYNC.
    pub const SYNC: u8 = 0x05;
    /// MAPD.
    pub const MAPD: u8 = 0x08;
    /// MAPC.
    pub const MAPC: u8 = 0x09;
    /// MAPTI.
    pub const MAPTI: u8 = 0x0a;
    /// MAPI.
    pub const MAPI: u8 = 0x0b;
    /// INV.
    pub const INV: u8 = 0x0c;
    /// INVALL.
    pub const INVALL: u8 = 0x0d;
    /// MOVALL.
    pub const MOVALL: u8 = 0x0e;
    /// DISCARD.
    pub const DISCARD: u8 = 0x0f;
}

/// GITS CoreSight ID registers at 0xffd0: PIDR4-7, PIDR0-3, CIDR0-3, as QEMU's ITS (PIDR0 =
/// 0x94). Linux's ITS driver gives up unless PIDR2.ArchRev (bits 7:4) is 3 or 4.
const GITS_ID_REGS: [u8; 12] = [
    0x44, 0x00, 0x00, 0x00, 0x94, 0xb4, 0x3b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];

/// GITS_BASER<n>.Type values (IHI 0069H 12.19.1).
const BASER_TYPE_DEVICE: u64 = 1;
const BASER_TYPE_COLLECTION: u64 = 4;
/// GITS_BASER<n> and GITS_CBASER fields.
const BASER_VALID: u64 = 1 << 63;
const BASER_INDIRECT: u64 = 1 << 62;
const BASER_TYPE_SHIFT: u32 = 56;
const BASER_ENTRY_SIZE_SHIFT: u32 = 48;
/// Entry size the vITS asks for (KVM's): 8 bytes.
const TABLE_ENTRY_SIZE: u64 = 8;
/// InnerCache 61:59, OuterCache 55:53, Shareability 11:10, Page_Size 9:8, Size 7:0.
const BASER_ATTRS: u64 = (0b111 << 59) | (0b111 << 53) | (0b11 << 10);
const BASER_PA: u64 = 0x0000_ffff_ffff_f000;
const CBASER_PA: u64 = 0x000f_ffff_ffff_f000;
/// GITS_CWRITER/CREADR.Offset, bits 19:5.
const QUEUE_OFFSET: u64 = 0x000f_ffe0;
/// GICR_PROPBASER.Physical_Address (51:12) and IDbits (4:0).
const PROPBASER_PA: u64 = 0x000f_ffff_ffff_f000;
/// GICR_PENDBASER.Physical_Address (51:16) and PTZ (62).
const PENDBASER_PA: u64 = 0x000f_ffff_ffff_0000;
const PENDBASER_PTZ: u64 = 1 << 62;

/// What the hypervisor decides when it creates a VM's ITS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItsConfig {
    /// vCPUs of the VM (redistributor n is vCPU n); at most 64.
    pub vcpus: usize,
    /// Most devices mapped at once.
    pub max_devices: usize,
    /// Most events mapped at once (ITEs), and so most LPIs.
    pub max_events: usize,
}

impl ItsConfig {
    /// The limits exitless gives every VM: 64 devices, 1024 events.
    pub const fn new(vcpus: usize) -> Self {
        ItsConfig {
            vcpus,
            max_devices: 64,
            max_events: 1024,
        }
    }
}

/// Why a command was skipped: the conditions of IHI 0069H 5.3.19 (the E_ITS_* codes in the
/// comments), and exitless's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdError {
    /// The 32 bytes at GITS_CBASER + GITS_CREADR are not in the VM's RAM.
    Unreadable,
    /// An opcode the ITS does not implement (the GICv4 ones, with GITS_TYPER.Virtual = 0).
    UnknownCommand,
    /// DeviceID beyond GITS_TYPER.Devbits or the device table (E_ITS_MAPD_DEVICE_OOR).
    DeviceOutOfRange,
    /// A two-level device table whose level-1 entry is invalid or outside the VM's RAM.
    DeviceTableUnmapped,
    /// MAPD Size + 1 above GITS_TYPER.ID_bits + 1 (E_ITS_MAPD_ITTSIZE_OOR).
    SizeOutOfRange,
    /// No MAPD for the DeviceID (E_ITS_*_UNMAPPED_DEVICE).
    DeviceNotMapped,
    /// EventID at or above 2^(MAPD Size + 1) (E_ITS_*_ID_OOR).
    EventOutOfRange,
    /// No mapping for the EventID (E_ITS_*_UNMAPPED_INTERRUPT).
    EventNotMapped,
    /// ICID beyond the collections (E_ITS_*_COLLECTION_OOR).
    CollectionOutOfRange,
    /// The collection has no MAPC (E_ITS_*_UNMAPPED_COLLECTION).
    CollectionNotMapped,
    /// RDbase is not a redistributor of the VM (E_ITS_MAPC_PROCNUM_OOR, MOVALL).
    RdbaseOutOfRange,
    /// pINTID is not an LPI below 2^[`LPI_ID_BITS`] (E_ITS_MAPTI_PHYSICALID_OOR).
    LpiOutOfRange,
    /// exitless's per-VM limit on devices or events is reached ([`ItsConfig`]).
    NoRoom,
}

/// Physical-ITS work for an event of a device the VM owns (a passed-through PCI function, whose
/// MSIs go to the physical ITS): the vITS decides, the shell sends the physical commands after
/// the exit's locks are dropped ([`Its::take_phys_ops`]), and takes the physical LPI back as an
/// event of this vITS ([`Its::raise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhysItsOp {
    /// The guest mapped device `dev` with `event_bits` EventID bits.
    MapDevice {
        /// DeviceID (the requester ID).
        dev: u32,
        /// EventID bits.
        event_bits: u8,
    },
    /// The guest unmapped device `dev` (or mapped it again: its events are gone).
    UnmapDevice {
        /// DeviceID.
        dev: u32,
    },
    /// The guest mapped (dev, event) to its LPI `intid`: its MSIs should reach vCPU `vcpu`'s
    /// CPU (emulated), or be that vCPU's virtual LPI `intid` (direct; the shadow property
    /// byte is written).
    MapEvent {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// Where the LPI goes now (vCPU 0 while its collection is unmapped).
        vcpu: VcpuId,
        /// The guest's LPI.
        intid: u32,
    },
    /// The guest discarded (dev, event).
    UnmapEvent {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// (dev, event)'s LPI now goes to vCPU `vcpu` (MOVI, MAPC, MOVALL).
    MoveEvent {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// The new target.
        vcpu: VcpuId,
    },
    /// Direct only: the guest's INV changed (dev, event)'s shadow property byte (LPI `intid`,
    /// on vCPU `vcpu`): the hardware must read it again (INV, VSYNC).
    Property {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
        /// The guest's LPI.
        intid: u32,
        /// Its vCPU.
        vcpu: VcpuId,
    },
    /// Direct only: the guest's INVALL rewrote the shadow bytes of the LPIs of vCPU `vcpu`
    /// (VINVALL).
    PropertyAll {
        /// The vCPU whose LPIs changed.
        vcpu: VcpuId,
    },
    /// Direct only: the guest's INT on (dev, event): the physical INT makes the virtual LPI
    /// pending.
    Int {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
    /// Direct only: the guest's CLEAR on (dev, event).
    Clear {
        /// DeviceID.
        dev: u32,
        /// EventID.
        event: u32,
    },
}

/// One 4 KiB page of the shadow property table (the alignment GICR_VPROPBASER needs).
#[derive(Debug, Clone)]
#[repr(C, align(4096))]
pub struct PropPage(pub [u8; 4096]);

/// Pages of the shadow property table: one byte per LPI, INTIDs 8192 up to 2^[`LPI_ID_BITS`].
pub const SHADOW_PAGES: usize = ((1 << LPI_ID_BITS) - LPI_BASE as usize) / 4096;

/// The shadow property byte of an LPI of `priority` (bits 7:2), `enabled` (bit 0): bit 1 (RES1,
/// Group 1 as Linux writes it) set.
pub const fn shadow_byte(priority: u8, enabled: bool) -> u8 {
    (priority & 0xfc) | 0b10 | enabled as u8
}

/// EventIDs of an owned device the physical ITS maps: below 2^11 (2048 MSIs per function, the
/// ITT exitless allocates). A higher EventID stays an event of this vITS only: no physical
/// work, and with direct injection it keeps the emulated (list-register) path.
pub const PHYS_EVENT_BITS: u32 = 11;

/// The physical commands for one operation of a VM whose owned devices' events are virtual
/// LPIs (GICv4.0; IHI 0069H 5.3, the sequences Linux's `its_vlpi_map`/`its_vlpi_unmap` and
/// KVM's `vgic-v4.c` send): MapEvent -> VMAPTI (the guest's EventID and LPI as they are, no
/// doorbell), after a DISCARD when the event was mapped; UnmapEvent -> DISCARD; MoveEvent ->
/// VMOVI; Property -> INV; PropertyAll -> VINVALL; Int -> INT; Clear -> CLEAR; each followed
/// by VSYNC of the vPE concerned. `mapped` is the vCPU the event is mapped to now, if it is;
/// `vpe` gives a vCPU's vPEID. Empty when there is nothing to send (an event that is not
/// mapped physically, a vCPU without vPE). MapDevice and UnmapDevice are the same as on the
/// emulated path (MAPD) and are not handled here.
pub fn direct_commands(
    op: PhysItsOp,
    mapped: Option<VcpuId>,
    vpe: impl Fn(VcpuId) -> Option<u16>,
) -> heapless::Vec<Command, 4> {
    let mut out = heapless::Vec::new();
    let mut push = |c| {
        let _ = out.push(c);
    };
    let on_mapped = mapped.and_then(&vpe);
    match op {
        PhysItsOp::MapEvent {
            dev,
            event,
            vcpu,
            intid,
        } => {
            let Some(new) = vpe(vcpu) else {
                return out;
            };
            if mapped.is_some() {
                // VMAPTI of a mapped event is UNPREDICTABLE: DISCARD it first.
                push(Command::Discard { dev, event });
                push(Command::Vsync {
                    vpe: on_mapped.unwrap_or(new),
                });
            }
            push(Command::Vmapti {
                dev,
                event,
                vpe: new,
                vintid: intid,
                doorbell: NO_DOORBELL,
            });
            push(Command::Vsync { vpe: new });
        }
        PhysItsOp::UnmapEvent { dev, event } => {
            if let Some(v) = on_mapped {
                push(Command::Discard { dev, event });
                push(Command::Vsync { vpe: v });
            }
        }
        PhysItsOp::MoveEvent { dev, event, vcpu } => {
            if let (Some(_), Some(v)) = (mapped, vpe(vcpu)) {
                push(Command::Vmovi { dev, event, vpe: v });
                push(Command::Vsync { vpe: v });
            }
        }
        PhysItsOp::Property { dev, event, .. } => {
            if let Some(v) = on_mapped {
                push(Command::Inv { dev, event });
                push(Command::Vsync { vpe: v });
            }
        }
        PhysItsOp::PropertyAll { vcpu } => {
            if let Some(v) = vpe(vcpu) {
                push(Command::Vinvall { vpe: v });
                push(Command::Vsync { vpe: v });
            }
        }
        PhysItsOp::Int { dev, event } | PhysItsOp::Clear { dev, event } => {
            if let Some(v) = on_mapped {
                push(if matches!(op, PhysItsOp::Int { .. }) {
                    Command::Int { dev, event }
                } else {
                    Command::Clear { dev, event }
                });
                push(Command::Vsync { vpe: v });
            }
        }
        PhysItsOp::MapDevice { .. } | PhysItsOp::UnmapDevice { .. } => {}
    }
    out
}

/// Most physical operations one trapped access may leave for the shell: the queue stops there
/// (and goes on at the next access), so the buffer never grows.
pub const MAX_PHYS_OPS: usize = 64;
/// Work units a physical operation costs (so that an access sends a bounded number).
const PHYS_OP_COST: u32 = WORK_BUDGET / MAX_PHYS_OPS as u32;

/// ITS counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItsStats {
    /// Commands taken off the queue.
    pub commands: u64,
    /// Commands skipped because of an error.
    pub errors: u64,
    /// The last error: opcode and why.
    pub last_error: Option<(u8, CmdError)>,
    /// Trapped accesses that stopped with commands left ([`WORK_BUDGET`]).
    pub budget_stops: u64,
    /// LPIs made pending (INT, GITS_TRANSLATER, the pending table).
    pub lpis_raised: u64,
}

/// A mapped device.
#[derive(Debug, Clone, Copy)]
struct Device {
    id: u32,
    /// MAPD Size + 1: the device's EventIDs are below 2^event_bits.
    event_bits: u8,
}

/// An interrupt translation entry: (DeviceID, EventID) -> LPI, collection.
#[derive(Debug, Clone, Copy)]
struct Ite {
    dev: u32,
    event: u32,
    intid: u32,
    icid: u16,
}

/// One mapped LPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lpi {
    /// Its INTID (8192 or more).
    pub intid: u32,
    /// Its state as the list-register scheduler sees it (`cpu_if`): priority and enable from
    /// the property byte (bits 7:2, bit 0), the pending latch, the active state while the
    /// guest has acknowledged it in a list register, where it is resident.
    pub state: IrqState,
    /// The vCPU it is delivered to; `None` while its collection is unmapped.
    pub target: Option<VcpuId>,
    /// ITEs that map to it.
    refs: u16,
}

/// The LPI side of one redistributor.
#[derive(Debug, Clone, Copy, Default)]
struct RedistLpi {
    enable_lpis: bool,
    pendbaser: u64,
}

/// One VM's virtual ITS and its redistributors' LPI state.
#[derive(Debug, Clone)]
pub struct Its {
    cfg: ItsConfig,
    enabled: bool,
    cbaser: u64,
    cwriter: u64,
    creadr: u64,
    /// GITS_BASER0 (devices) and GITS_BASER1 (collections).
    baser: [u64; 2],
    /// Sorted by id.
    devices: Vec<Device>,
    /// Sorted by (dev, event).
    ites: Vec<Ite>,
    /// Sorted by intid.
    lpis: Vec<Lpi>,
    /// ICID -> redistributor (vCPU).
    collections: [Option<u16>; MAX_COLLECTIONS],
    /// GICR_PROPBASER: one for the whole VM (as KVM: every redistributor shows the last value
    /// written while its LPIs were off).
    propbaser: u64,
    redist: Vec<RedistLpi>,
    kicks: u64,
    /// DeviceIDs of devices the VM owns physically ([`PhysItsOp`]).
    owned: core::ops::Range<u32>,
    /// Their events are virtual LPIs in the physical ITS (GICv4): the shadow property table,
    /// empty otherwise.
    shadow: Vec<PropPage>,
    /// Physical work waiting for the shell, at most [`MAX_PHYS_OPS`].
    phys_ops: Vec<PhysItsOp>,
    /// Counters.
    pub stats: ItsStats,
}

/// Decoded fields of one command (IHI 0069H 5.3, "ITS command formats").
#[derive(Debug, Clone, Copy)]
struct Cmd([u64; 4]);

impl Cmd {
    fn opcode(&self) -> u8 {
        self.0[0] as u8
    }
    fn device(&self) -> u32 {
        (self.0[0] >> 32) as u32
    }
    fn event(&self) -> u32 {
        self.0[1] as u32
    }
    fn pintid(&self) -> u32 {
        (self.0[1] >> 32) as u32
    }
    fn size(&self) -> u32 {
        (self.0[1] & 0x1f) as u32
    }
    fn icid(&self) -> u32 {
        (self.0[2] & 0xffff) as u32
    }
    fn valid(&self) -> bool {
        self.0[2] >> 63 != 0
    }
    /// RDbase, bits 51:16 of DW2 (with GITS_TYPER.PTA = 0 the processor number).
    fn rdbase(&self) -> u64 {
        (self.0[2] >> 16) & 0xf_ffff_ffff
    }
    /// MOVALL's RDbase2, bits 51:16 of DW3.
    fn rdbase2(&self) -> u64 {
        (self.0[3] >> 16) & 0xf_ffff_ffff
    }
}

impl Its {
    /// An ITS in its reset state, its tables reserved to `cfg`'s limits.
    pub fn new(cfg: ItsConfig) -> Self {
        let vcpus = cfg.vcpus.min(64);
        Its {
            cfg: ItsConfig { vcpus, ..cfg },
            enabled: false,
            cbaser: 0,
            cwriter: 0,
            creadr: 0,
            baser: [
                (BASER_TYPE_DEVICE << BASER_TYPE_SHIFT)
                    | ((TABLE_ENTRY_SIZE - 1) << BASER_ENTRY_SIZE_SHIFT),
                (BASER_TYPE_COLLECTION << BASER_TYPE_SHIFT)
                    | ((TABLE_ENTRY_SIZE - 1) << BASER_ENTRY_SIZE_SHIFT),
            ],
            devices: Vec::with_capacity(cfg.max_devices),
            ites: Vec::with_capacity(cfg.max_events),
            lpis: Vec::with_capacity(cfg.max_events),
            collections: [None; MAX_COLLECTIONS],
            propbaser: 0,
            redist: alloc::vec![RedistLpi::default(); vcpus],
            kicks: 0,
            owned: 0..0,
            shadow: Vec::new(),
            phys_ops: Vec::with_capacity(MAX_PHYS_OPS),
            stats: ItsStats::default(),
        }
    }

    /// The VM owns the devices with these DeviceIDs: their events also live in the physical
    /// ITS ([`PhysItsOp`]); with `direct`, as virtual LPIs injected by the hardware (the shadow
    /// property table is allocated here, once).
    pub fn set_owned(&mut self, devices: core::ops::Range<u32>, direct: bool) {
        self.owned = devices;
        if direct && self.shadow.is_empty() {
            self.shadow = alloc::vec![PropPage([0; 4096]); SHADOW_PAGES];
        }
    }

    /// True if owned devices' events are injected directly (GICv4).
    pub fn direct(&self) -> bool {
        !self.shadow.is_empty()
    }

    /// The shadow property table (GICR_VPROPBASER's table: its byte `intid - 8192` is LPI
    /// `intid`'s), if the ITS injects directly. Its address never changes.
    pub fn shadow_table(&self) -> Option<&[PropPage]> {
        self.direct().then_some(&self.shadow[..])
    }

    /// The shadow byte of LPI `intid` (0 outside the table or without direct injection).
    pub fn shadow_prop(&self, intid: u32) -> u8 {
        let Some(i) = (intid as usize).checked_sub(LPI_BASE as usize) else {
            return 0;
        };
        self.shadow.get(i / 4096).map_or(0, |p| p.0[i % 4096])
    }

    fn set_shadow(&mut self, intid: u32, priority: u8, enabled: bool) {
        if let Some(i) = (intid as usize).checked_sub(LPI_BASE as usize)
            && let Some(p) = self.shadow.get_mut(i / 4096)
        {
            p.0[i % 4096] = shadow_byte(priority, enabled);
        }
    }

    /// Events mapped now whose LPI the hardware injects directly.
    pub fn direct_events(&self) -> usize {
        if !self.direct() {
            return 0;
        }
        self.ites
            .iter()
            .filter(|i| self.is_direct(i.dev, i.event))
            .count()
    }

    /// True if (dev, event) is the hardware's virtual LPI: an owned device's event that the
    /// physical ITS maps ([`PHYS_EVENT_BITS`]); others stay emulated.
    fn is_direct(&self, dev: u32, event: u32) -> bool {
        self.direct() && self.owns(dev) && event < 1 << PHYS_EVENT_BITS
    }

    /// True if DeviceID `dev` belongs to a device the VM owns.
    pub fn owns(&self, dev: u32) -> bool {
        self.owned.contains(&dev)
    }

    /// The physical work the last accesses left, in order; empties the buffer.
    pub fn take_phys_ops(&mut self) -> heapless::Vec<PhysItsOp, MAX_PHYS_OPS> {
        let mut out = heapless::Vec::new();
        for op in self.phys_ops.drain(..) {
            let _ = out.push(op);
        }
        out
    }

    /// Records physical work (the caller checked for room: [`Its::phys_room`]).
    fn phys(&mut self, op: PhysItsOp) {
        if self.phys_ops.len() < MAX_PHYS_OPS {
            self.phys_ops.push(op);
        }
    }

    /// Room for `n` more physical operations.
    fn phys_room(&self, n: usize) -> bool {
        self.phys_ops.len() + n <= MAX_PHYS_OPS
    }

    // --- GITS_* registers ----------------------------------------------------------------

    /// A guest read of `width` bytes at `offset` in the ITS frames; `None` for an offset or a
    /// width that is no register (the caller answers RAZ and reports it). A read of GITS_CTLR
    /// or GITS_CREADR also goes on with commands an earlier access left.
    pub fn read(&mut self, offset: u64, width: u8, ram: &dyn GuestRam) -> Option<u64> {
        let (reg, byte) = self.reg_of(offset, width)?;
        if matches!(reg, GITS_CTLR | GITS_CREADR) {
            self.process(ram);
        }
        let v = match reg {
            GITS_CTLR => self.enabled as u64 | (self.quiescent() as u64) << 31,
            GITS_IIDR => super::mmio::iidr() as u64,
            GITS_TYPER => typer(),
            GITS_CBASER => self.cbaser,
            GITS_CWRITER => self.cwriter,
            GITS_CREADR => self.creadr,
            r if (GITS_BASER..GITS_BASER + 0x40).contains(&r) => self
                .baser
                .get(((r - GITS_BASER) / 8) as usize)
                .copied()
                .unwrap_or(0),
            r if (GITS_IDREGS..GITS_IDREGS + 0x30).contains(&r) => {
                GITS_ID_REGS[((r - GITS_IDREGS) / 4) as usize] as u64
            }
            // GITS_TRANSLATER and the rest of the translation frame read as zero.
            _ => 0,
        };
        Some(super::mmio::extract_bytes(v, byte, width))
    }

    /// A guest write; false for an offset or width that is no register (ignored, reported).
    pub fn write(&mut self, offset: u64, width: u8, val: u64, ram: &dyn GuestRam) -> bool {
        let Some((reg, byte)) = self.reg_of(offset, width) else {
            return false;
        };
        let merge = |old: u64| super::mmio::update_bytes(old, byte, width, val);
        match reg {
            GITS_CTLR => {
                let on = val & 1 != 0;
                // Enabling needs the command queue and both tables (KVM); a refused enable
                // leaves the ITS off, which the guest reads back.
                let ready = self.cbaser & BASER_VALID != 0
                    && self.baser.iter().all(|b| b & BASER_VALID != 0);
                self.enabled = on && (self.enabled || ready);
            }
            GITS_CBASER if !self.enabled => {
                self.cbaser = merge(self.cbaser) & (BASER_VALID | BASER_ATTRS | CBASER_PA | 0xff);
                self.creadr = 0;
                self.cwriter = 0;
            }
            GITS_CWRITER => {
                let off = merge(self.cwriter) & QUEUE_OFFSET;
                // An offset beyond the queue is ignored (KVM); nothing is processed for it.
                if off < self.queue_size() {
                    self.cwriter = off;
                }
            }
            r if (GITS_BASER..GITS_BASER + 0x10).contains(&r) && !self.enabled => {
                let n = ((r - GITS_BASER) / 8) as usize;
                let fixed =
                    self.baser[n] & (0b111 << BASER_TYPE_SHIFT | 0x1f << BASER_ENTRY_SIZE_SHIFT);
                // Two levels only for the device table (KVM); Page_Size 0b11 is reserved: 64 KiB.
                let mut indirect = BASER_INDIRECT;
                if n == 1 {
                    indirect = 0;
                }
                let mut v = merge(self.baser[n])
                    & (BASER_VALID | indirect | BASER_ATTRS | BASER_PA | 0x3ff);
                if (v >> 8) & 3 == 3 {
                    v &= !(1 << 8);
                }
                self.baser[n] = v | fixed;
            }
            // A CPU's write carries no DeviceID: QEMU's ITS takes it as DeviceID 0.
            GITS_TRANSLATER if self.enabled => {
                let _ = self.raise(0, val as u32);
            }
            // GITS_CREADR is read-only (GICD_CTLR.DS = 1 would allow writes; the vITS keeps it
            // read-only as KVM does); IIDR, TYPER, the ID registers, BASER2-7 are RO or RAZ/WI.
            _ => {}
        }
        self.process(ram);
        true
    }

    /// The register an access hits and its byte offset in it; `None` if it hits none.
    fn reg_of(&self, offset: u64, width: u8) -> Option<(u64, u32)> {
        let reg64 = matches!(
            offset & !7,
            GITS_TYPER | GITS_CBASER | GITS_CWRITER | GITS_CREADR
        ) || (GITS_BASER..GITS_BASER + 0x40).contains(&(offset & !7));
        match width {
            8 if reg64 && offset.is_multiple_of(8) => Some((offset, 0)),
            4 if reg64 && offset.is_multiple_of(4) => Some((offset & !7, (offset % 8) as u32)),
            4 if matches!(offset, GITS_CTLR | GITS_IIDR) => Some((offset, 0)),
            4 if (GITS_IDREGS..GITS_IDREGS + 0x30).contains(&offset)
                && offset.is_multiple_of(4) =>
            {
                Some((offset, 0))
            }
            2 | 4 if offset == GITS_TRANSLATER => Some((offset, 0)),
            _ => None,
        }
    }

    /// GITS_CTLR.Quiescent: no command in flight (KVM; QEMU always says 1).
    fn quiescent(&self) -> bool {
        !self.enabled || self.creadr == self.cwriter
    }

    /// Bytes in the command queue: (GITS_CBASER.Size + 1) 4 KiB pages.
    fn queue_size(&self) -> u64 {
        ((self.cbaser & 0xff) + 1) * 4096
    }

    // --- The command queue -----------------------------------------------------------------

    /// Runs commands from GITS_CREADR up to GITS_CWRITER, at most [`WORK_BUDGET`] units.
    fn process(&mut self, ram: &dyn GuestRam) {
        if !self.enabled || self.cbaser & BASER_VALID == 0 {
            return;
        }
        let base = self.cbaser & CBASER_PA;
        let size = self.queue_size();
        let mut budget = WORK_BUDGET;
        while self.creadr != self.cwriter {
            // A command touching an owned device records at most two physical operations
            // (MAPC and MOVALL may record more: they stop at the buffer's end, see `retarget`).
            if budget == 0 || !self.phys_room(2) {
                self.stats.budget_stops += 1;
                return;
            }
            let mut words = [0u64; 4];
            let mut ok = true;
            for (i, w) in words.iter_mut().enumerate() {
                match ram.read_u64(base + self.creadr + 8 * i as u64) {
                    Some(v) => *w = v,
                    None => ok = false,
                }
            }
            let c = Cmd(words);
            let ops_before = self.phys_ops.len() as u32;
            let (cost, result) = if ok {
                self.execute(&c, ram)
            } else {
                (1, Err(CmdError::Unreadable))
            };
            self.stats.commands += 1;
            if let Err(e) = result {
                self.stats.errors += 1;
                self.stats.last_error = Some((c.opcode(), e));
            }
            let ops = self.phys_ops.len() as u32;
            budget =
                budget.saturating_sub(cost.max(1) + ops.saturating_sub(ops_before) * PHYS_OP_COST);
            self.creadr = (self.creadr + CMD_SIZE) % size;
        }
    }

    /// One command: its cost in work units and whether it was applied.
    fn execute(&mut self, c: &Cmd, ram: &dyn GuestRam) -> (u32, Result<(), CmdError>) {
        let walked = |n: usize| 1 + n as u32;
        match c.opcode() {
            cmd::MAPD => (walked(self.ites.len()), self.mapd(c, ram)),
            cmd::MAPC => (walked(self.ites.len()), self.mapc(c)),
            cmd::MAPTI => (
                1,
                self.mapti(c.device(), c.event(), c.pintid(), c.icid(), ram),
            ),
            cmd::MAPI => (
                1,
                self.mapti(c.device(), c.event(), c.event(), c.icid(), ram),
            ),
            cmd::INT => (1, self.int(c)),
            cmd::CLEAR => (1, self.clear(c)),
            cmd::DISCARD => (1, self.discard(c)),
            cmd::INV => (1, self.inv(c, ram)),
            cmd::INVALL => (walked(self.ites.len()), self.invall(c, ram)),
            cmd::MOVI => (1, self.movi(c)),
            cmd::MOVALL => (walked(self.lpis.len()), self.movall(c)),
            cmd::SYNC => (1, self.rd(c.rdbase()).map(|_| ())),
            _ => (1, Err(CmdError::UnknownCommand)),
        }
    }

    fn rd(&self, rdbase: u64) -> Result<VcpuId, CmdError> {
        if rdbase < self.cfg.vcpus as u64 {
            Ok(rdbase as VcpuId)
        } else {
            Err(CmdError::RdbaseOutOfRange)
        }
    }

    /// Whether DeviceID `dev` has an entry in the guest's device table (GITS_BASER0): below
    /// 2^Devbits and the table's entries; for a two-level table, its level-1 entry (read from
    /// guest RAM) is valid.
    fn device_in_table(&self, dev: u32, ram: &dyn GuestRam) -> Result<(), CmdError> {
        let b = self.baser[0];
        if b & BASER_VALID == 0 || dev as u64 >= 1 << DEVICE_ID_BITS {
            return Err(CmdError::DeviceOutOfRange);
        }
        let page = match (b >> 8) & 3 {
            0 => 4096,
            1 => 16384,
            _ => 65536,
        };
        let bytes = ((b & 0xff) + 1) * page;
        if b & BASER_INDIRECT == 0 {
            return if (dev as u64) < bytes / TABLE_ENTRY_SIZE {
                Ok(())
            } else {
                Err(CmdError::DeviceOutOfRange)
            };
        }
        let l1 = dev as u64 / (page / TABLE_ENTRY_SIZE);
        if l1 >= bytes / 8 {
            return Err(CmdError::DeviceOutOfRange);
        }
        match ram.read_u64((b & BASER_PA) + l1 * 8) {
            Some(e) if e & BASER_VALID != 0 => Ok(()),
            _ => Err(CmdError::DeviceTableUnmapped),
        }
    }

    fn mapd(&mut self, c: &Cmd, ram: &dyn GuestRam) -> Result<(), CmdError> {
        let dev = c.device();
        self.device_in_table(dev, ram)?;
        if c.valid() && c.size() + 1 > EVENT_ID_BITS {
            return Err(CmdError::SizeOutOfRange);
        }
        // A MAPD of a mapped device, valid or not, drops all its events first.
        let found = self.devices.binary_search_by_key(&dev, |d| d.id);
        if found.is_ok() || !c.valid() {
            self.unmap_events(|i| i.dev == dev);
        }
        if self.owns(dev) {
            if found.is_ok() || !c.valid() {
                self.phys(PhysItsOp::UnmapDevice { dev });
            }
            if c.valid() && (found.is_ok() || self.devices.len() < self.cfg.max_devices) {
                let event_bits = c.size() as u8 + 1;
                self.phys(PhysItsOp::MapDevice { dev, event_bits });
            }
        }
        match (found, c.valid()) {
            (Ok(i), true) => self.devices[i].event_bits = c.size() as u8 + 1,
            (Ok(i), false) => {
                self.devices.remove(i);
            }
            (Err(i), true) => {
                if self.devices.len() == self.cfg.max_devices {
                    return Err(CmdError::NoRoom);
                }
                let d = Device {
                    id: dev,
                    event_bits: c.size() as u8 + 1,
                };
                self.devices.insert(i, d);
            }
            (Err(_), false) => {}
        }
        Ok(())
    }

    /// Removes the ITEs `f` selects and the LPIs only they mapped.
    fn unmap_events(&mut self, f: impl Fn(&Ite) -> bool) {
        let mut i = 0;
        while i < self.ites.len() {
            if f(&self.ites[i]) {
                let intid = self.ites.remove(i).intid;
                self.unref_lpi(intid);
            } else {
                i += 1;
            }
        }
    }

    fn mapc(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let icid = c.icid() as usize;
        if icid >= MAX_COLLECTIONS {
            return Err(CmdError::CollectionOutOfRange);
        }
        let target = if c.valid() {
            Some(self.rd(c.rdbase())? as u16)
        } else {
            None
        };
        self.collections[icid] = target;
        // The collection's LPIs follow it (KVM `update_affinity_collection`), and so do the
        // physical events of owned devices (as far as the buffer has room).
        for k in 0..self.ites.len() {
            let it = self.ites[k];
            if it.icid as usize == icid {
                self.retarget(it.intid, target.map(VcpuId::from));
                if let Some(v) = target
                    && self.owns(it.dev)
                    && self.phys_room(1)
                {
                    let (dev, event, vcpu) = (it.dev, it.event, v as VcpuId);
                    self.phys(PhysItsOp::MoveEvent { dev, event, vcpu });
                }
            }
        }
        Ok(())
    }

    fn mapti(
        &mut self,
        dev: u32,
        event: u32,
        intid: u32,
        icid: u32,
        ram: &dyn GuestRam,
    ) -> Result<(), CmdError> {
        let d = self.device(dev)?;
        if event as u64 >= 1 << d.event_bits {
            return Err(CmdError::EventOutOfRange);
        }
        if icid as usize >= MAX_COLLECTIONS {
            return Err(CmdError::CollectionOutOfRange);
        }
        if !(LPI_BASE..1 << LPI_ID_BITS).contains(&intid) {
            return Err(CmdError::LpiOutOfRange);
        }
        let at = self
            .ites
            .binary_search_by_key(&(dev, event), |i| (i.dev, i.event));
        let lpi_at = self.lpis.binary_search_by_key(&intid, |l| l.intid);
        // Room first, so that a refused command changes nothing. A remap frees its old LPI
        // when no other event maps it.
        let frees_lpi = at.is_ok_and(|k| {
            self.lpi_index(self.ites[k].intid)
                .is_some_and(|l| self.lpis[l].refs == 1)
        });
        if (at.is_err() && self.ites.len() == self.cfg.max_events)
            || (lpi_at.is_err() && !frees_lpi && self.lpis.len() == self.cfg.max_events)
        {
            return Err(CmdError::NoRoom);
        }
        // A MAPTI of a mapped event replaces its mapping (as QEMU's ITS, which the guest sees
        // natively; the architecture leaves it UNPREDICTABLE).
        let ite = Ite {
            dev,
            event,
            intid,
            icid: icid as u16,
        };
        match at {
            Ok(k) => {
                let old = core::mem::replace(&mut self.ites[k], ite).intid;
                self.unref_lpi(old);
            }
            Err(k) => self.ites.insert(k, ite),
        }
        let target = self.collections[icid as usize].map(VcpuId::from);
        let (priority, enabled) = self.property(intid, ram);
        if self.owns(dev) && event < 1 << PHYS_EVENT_BITS {
            if at.is_ok() {
                self.phys(PhysItsOp::UnmapEvent { dev, event });
            }
            // The shadow byte is in place before the hardware maps the virtual LPI.
            self.set_shadow(intid, priority, enabled);
            let vcpu = target.unwrap_or(0);
            self.phys(PhysItsOp::MapEvent {
                dev,
                event,
                vcpu,
                intid,
            });
        }
        let direct = self.is_direct(dev, event);
        match self.lpis.binary_search_by_key(&intid, |l| l.intid) {
            Ok(k) => self.lpis[k].refs += 1,
            Err(k) => {
                self.lpis.insert(
                    k,
                    Lpi {
                        intid,
                        state: IrqState::lpi(priority, enabled),
                        target: None,
                        refs: 1,
                    },
                );
                // A new LPI takes its pending state from the pending table of its target, if
                // that redistributor's LPIs are on (KVM `vgic_v3_lpi_sync_pending_status`);
                // a virtual LPI's pending state is the hardware's.
                if let Some(v) = target
                    && !direct
                    && self.pending_table_bit(v, intid, ram)
                {
                    self.lpis[k].state.pending_latch = true;
                }
            }
        }
        self.retarget(intid, target);
        Ok(())
    }

    fn device(&self, dev: u32) -> Result<Device, CmdError> {
        self.devices
            .binary_search_by_key(&dev, |d| d.id)
            .map(|i| self.devices[i])
            .map_err(|_| CmdError::DeviceNotMapped)
    }

    /// The ITE of (DeviceID, EventID), checked as the architecture orders it: device, range,
    /// mapping.
    fn ite(&self, dev: u32, event: u32) -> Result<(usize, Ite), CmdError> {
        let d = self.device(dev)?;
        if event as u64 >= 1 << d.event_bits {
            return Err(CmdError::EventOutOfRange);
        }
        self.ites
            .binary_search_by_key(&(dev, event), |i| (i.dev, i.event))
            .map(|k| (k, self.ites[k]))
            .map_err(|_| CmdError::EventNotMapped)
    }

    fn lpi_index(&self, intid: u32) -> Option<usize> {
        self.lpis.binary_search_by_key(&intid, |l| l.intid).ok()
    }

    /// Clears an LPI's pending state. One the guest has not taken yet from a list register is
    /// cleared there at that vCPU's next fold (it is kicked).
    fn unpend(&mut self, intid: u32) {
        if let Some(k) = self.lpi_index(intid) {
            let s = &mut self.lpis[k].state;
            s.pending_latch = false;
            if let Some(r) = s.resident {
                s.pending_request = Some(false);
                self.kicks |= 1 << r;
            }
        }
    }

    fn clear(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let (_, ite) = self.ite(c.device(), c.event())?;
        if self.is_direct(ite.dev, ite.event) {
            let (dev, event) = (ite.dev, ite.event);
            self.phys(PhysItsOp::Clear { dev, event });
            return Ok(());
        }
        self.unpend(ite.intid);
        Ok(())
    }

    /// INT: on a directly injected event, the physical INT (the hardware keeps its pending
    /// state); otherwise an event of this ITS.
    fn int(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let (dev, event) = (c.device(), c.event());
        if self.is_direct(dev, event) {
            let (_, ite) = self.ite(dev, event)?;
            if self.collections[ite.icid as usize].is_none() {
                return Err(CmdError::CollectionNotMapped);
            }
            self.phys(PhysItsOp::Int { dev, event });
            return Ok(());
        }
        self.raise(dev, event)
    }

    fn unref_lpi(&mut self, intid: u32) {
        if let Some(k) = self.lpi_index(intid) {
            self.lpis[k].refs -= 1;
            if self.lpis[k].refs == 0 {
                self.lpis.remove(k);
            }
        }
    }

    /// An event from (DeviceID, EventID): INT, a GITS_TRANSLATER write, a device's MSI. An
    /// event whose collection is unmapped is dropped (KVM, QEMU); its mapping stays.
    pub fn raise(&mut self, dev: u32, event: u32) -> Result<(), CmdError> {
        let (_, ite) = self.ite(dev, event)?;
        if self.is_direct(dev, event) {
            // The hardware delivers it: a virtual LPI never enters a list register too.
            return Ok(());
        }
        if self.collections[ite.icid as usize].is_none() {
            return Err(CmdError::CollectionNotMapped);
        }
        if let Some(k) = self.lpi_index(ite.intid) {
            self.lpis[k].state.pending_latch = true;
            self.stats.lpis_raised += 1;
            self.kick_if_deliverable(k);
        }
        Ok(())
    }

    fn discard(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let (k, ite) = self.ite(c.device(), c.event())?;
        self.unpend(ite.intid);
        self.ites.remove(k);
        if self.owns(ite.dev) {
            let (dev, event) = (ite.dev, ite.event);
            self.phys(PhysItsOp::UnmapEvent { dev, event });
        }
        self.unref_lpi(ite.intid);
        Ok(())
    }

    fn inv(&mut self, c: &Cmd, ram: &dyn GuestRam) -> Result<(), CmdError> {
        let (_, ite) = self.ite(c.device(), c.event())?;
        self.reload_property(ite.intid, ram);
        if self.is_direct(ite.dev, ite.event) {
            let vcpu = self.lpi(ite.intid).and_then(|l| l.target).unwrap_or(0);
            let (dev, event, intid) = (ite.dev, ite.event, ite.intid);
            self.phys(PhysItsOp::Property {
                dev,
                event,
                intid,
                vcpu,
            });
        }
        Ok(())
    }

    fn invall(&mut self, c: &Cmd, ram: &dyn GuestRam) -> Result<(), CmdError> {
        let icid = c.icid() as usize;
        if icid >= MAX_COLLECTIONS {
            return Err(CmdError::CollectionOutOfRange);
        }
        if self.collections[icid].is_none() {
            return Err(CmdError::CollectionNotMapped);
        }
        let mut direct = false;
        for k in 0..self.ites.len() {
            let it = self.ites[k];
            if it.icid as usize == icid {
                self.reload_property(it.intid, ram);
                direct |= self.is_direct(it.dev, it.event);
            }
        }
        if direct && let Some(vcpu) = self.collections[icid] {
            let vcpu = vcpu as VcpuId;
            self.phys(PhysItsOp::PropertyAll { vcpu });
        }
        Ok(())
    }

    fn movi(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let (k, ite) = self.ite(c.device(), c.event())?;
        let icid = c.icid() as usize;
        if icid >= MAX_COLLECTIONS {
            return Err(CmdError::CollectionOutOfRange);
        }
        let Some(target) = self.collections[icid] else {
            return Err(CmdError::CollectionNotMapped);
        };
        self.ites[k].icid = icid as u16;
        self.retarget(ite.intid, Some(target as VcpuId));
        if self.owns(ite.dev) {
            let (dev, event, vcpu) = (ite.dev, ite.event, target as VcpuId);
            self.phys(PhysItsOp::MoveEvent { dev, event, vcpu });
        }
        Ok(())
    }

    fn movall(&mut self, c: &Cmd) -> Result<(), CmdError> {
        let from = self.rd(c.rdbase())?;
        let to = self.rd(c.rdbase2())?;
        for k in 0..self.lpis.len() {
            if self.lpis[k].target == Some(from) {
                let intid = self.lpis[k].intid;
                self.retarget(intid, Some(to));
            }
        }
        // Owned devices' events of LPIs that now go to `to` follow on the physical side.
        for k in 0..self.ites.len() {
            let it = self.ites[k];
            if self.owns(it.dev)
                && self.phys_room(1)
                && self.lpi(it.intid).is_some_and(|l| l.target == Some(to))
            {
                let (dev, event, vcpu) = (it.dev, it.event, to);
                self.phys(PhysItsOp::MoveEvent { dev, event, vcpu });
            }
        }
        Ok(())
    }

    fn retarget(&mut self, intid: u32, target: Option<VcpuId>) {
        if let Some(k) = self.lpi_index(intid) {
            self.lpis[k].target = target;
            // Pending in another vCPU's list register: that vCPU gives it back at its fold.
            if let Some(r) = self.lpis[k].state.resident
                && target != Some(r)
            {
                self.kicks |= 1 << r;
            }
            self.kick_if_deliverable(k);
        }
    }

    fn reload_property(&mut self, intid: u32, ram: &dyn GuestRam) {
        let (priority, enabled) = self.property(intid, ram);
        self.set_shadow(intid, priority, enabled);
        if let Some(k) = self.lpi_index(intid) {
            self.lpis[k].state.priority = priority;
            self.lpis[k].state.enabled = enabled;
            self.kick_if_deliverable(k);
        }
    }

    /// An LPI's property byte from the guest's table (GICR_PROPBASER): priority (bits 7:2)
    /// and enable (bit 0). An LPI beyond the table's IDbits, or a byte outside the VM's RAM,
    /// reads as disabled.
    fn property(&self, intid: u32, ram: &dyn GuestRam) -> (u8, bool) {
        let id_bits = (self.propbaser & 0x1f) + 1;
        if intid as u64 >= 1 << id_bits.min(LPI_ID_BITS as u64) {
            return (0xfc, false);
        }
        let at = (self.propbaser & PROPBASER_PA) + (intid - LPI_BASE) as u64;
        match ram.read_u8(at) {
            Some(b) => (b & 0xfc, b & 1 != 0),
            None => (0xfc, false),
        }
    }

    /// The bit of `intid` in vCPU `v`'s pending table, if its LPIs are on and the table says
    /// something (PTZ clear, inside the VM's RAM).
    fn pending_table_bit(&self, v: VcpuId, intid: u32, ram: &dyn GuestRam) -> bool {
        let Some(r) = self.redist.get(v) else {
            return false;
        };
        if !r.enable_lpis || r.pendbaser & PENDBASER_PTZ != 0 {
            return false;
        }
        let at = (r.pendbaser & PENDBASER_PA) + (intid / 8) as u64;
        ram.read_u8(at).is_some_and(|b| b & (1 << (intid % 8)) != 0)
    }

    /// Pending, enabled, targets a vCPU whose LPIs are on (the distributor's Group 1 enable is
    /// the vGIC's to check).
    fn deliverable(&self, l: &Lpi) -> bool {
        l.state.pending_latch && l.state.enabled && self.target_of(l).is_some()
    }

    /// The vCPU an LPI goes to: its target, if that redistributor's LPIs are on.
    pub fn target_of(&self, l: &Lpi) -> Option<VcpuId> {
        l.target.filter(|&v| self.lpis_enabled(v))
    }

    fn kick_if_deliverable(&mut self, k: usize) {
        let l = self.lpis[k];
        if self.deliverable(&l)
            && let Some(v) = l.target
        {
            self.kicks |= 1 << v;
        }
    }

    // --- The redistributors' LPI registers ---------------------------------------------------

    /// GICR_PROPBASER as every redistributor reads it.
    pub fn propbaser(&self) -> u64 {
        self.propbaser
    }

    /// A write of GICR_PROPBASER to vCPU `v`'s redistributor: ignored once its LPIs are on
    /// (KVM; the architecture makes it UNPREDICTABLE).
    pub fn set_propbaser(&mut self, v: VcpuId, val: u64) {
        if self.redist.get(v).is_some_and(|r| !r.enable_lpis) {
            self.propbaser = val;
        }
    }

    /// GICR_PENDBASER of vCPU `v` (PTZ reads as 0).
    pub fn pendbaser(&self, v: VcpuId) -> u64 {
        self.redist
            .get(v)
            .map_or(0, |r| r.pendbaser & !PENDBASER_PTZ)
    }

    /// A write of GICR_PENDBASER: ignored once that redistributor's LPIs are on.
    pub fn set_pendbaser(&mut self, v: VcpuId, val: u64) {
        if let Some(r) = self.redist.get_mut(v)
            && !r.enable_lpis
        {
            r.pendbaser = val;
        }
    }

    /// GICR_CTLR.EnableLPIs of vCPU `v`.
    pub fn lpis_enabled(&self, v: VcpuId) -> bool {
        self.redist.get(v).is_some_and(|r| r.enable_lpis)
    }

    /// A write of GICR_CTLR.EnableLPIs. Turning it on reads the pending table for the LPIs
    /// that target `v` (unless PENDBASER.PTZ); clearing it is allowed (GICR_CTLR.CES = 1, as
    /// QEMU and KVM). Work: one read per mapped LPI.
    pub fn set_lpis_enabled(&mut self, v: VcpuId, on: bool, ram: &dyn GuestRam) {
        let Some(r) = self.redist.get_mut(v) else {
            return;
        };
        let was = r.enable_lpis;
        r.enable_lpis = on;
        if on && !was {
            for k in 0..self.lpis.len() {
                let l = self.lpis[k];
                if l.target == Some(v) && self.pending_table_bit(v, l.intid, ram) {
                    self.lpis[k].state.pending_latch = true;
                    self.stats.lpis_raised += 1;
                }
                self.kick_if_deliverable(k);
            }
        }
    }

    // --- Delivery ---------------------------------------------------------------------------

    /// The LPIs to show vCPU `v` now: pending, enabled, targeting it, its LPIs on.
    pub fn deliverable_for(&self, v: VcpuId) -> impl Iterator<Item = &Lpi> + '_ {
        self.lpis
            .iter()
            .filter(move |l| l.target == Some(v) && self.deliverable(l))
    }

    /// The most LPIs this ITS maps at once (its table of LPIs never grows past it).
    pub fn max_lpis(&self) -> usize {
        self.cfg.max_events
    }

    /// Every mapped LPI, by INTID.
    pub fn lpis(&self) -> &[Lpi] {
        &self.lpis
    }

    /// Sets or clears an LPI's pending latch (tests; the vGIC goes through [`Its::lpi_mut`]).
    pub fn set_pending(&mut self, intid: u32, on: bool) {
        if let Some(k) = self.lpi_index(intid) {
            self.lpis[k].state.pending_latch = on;
            self.kick_if_deliverable(k);
        }
    }

    /// The LPI `intid`, if mapped.
    pub fn lpi(&self, intid: u32) -> Option<&Lpi> {
        self.lpi_index(intid).map(|k| &self.lpis[k])
    }

    /// The LPI `intid`'s state, if mapped, for the list-register scheduler.
    pub fn lpi_mut(&mut self, intid: u32) -> Option<&mut IrqState> {
        self.lpi_index(intid).map(|k| &mut self.lpis[k].state)
    }

    /// vCPUs that have a new deliverable LPI since the last call (bit n = vCPU n).
    pub fn take_kicks(&mut self) -> u64 {
        core::mem::take(&mut self.kicks)
    }

    /// Mapped devices, events and LPIs, and the limits ([`ItsConfig`]).
    pub fn usage(&self) -> (usize, usize, usize, ItsConfig) {
        (
            self.devices.len(),
            self.ites.len(),
            self.lpis.len(),
            self.cfg,
        )
    }

    /// Entries reserved for the device, ITE and LPI tables (they never grow).
    pub fn reserved(&self) -> (usize, usize, usize) {
        (
            self.devices.capacity(),
            self.ites.capacity(),
            self.lpis.capacity(),
        )
    }
}

/// The name of the register at `offset`, for the MMIO counters.
pub fn reg_name(offset: u64) -> &'static str {
    match offset & !7 {
        GITS_CTLR => {
            if offset == GITS_IIDR {
                "GITS_IIDR"
            } else {
                "GITS_CTLR"
            }
        }
        GITS_TYPER => "GITS_TYPER",
        GITS_CBASER => "GITS_CBASER",
        GITS_CWRITER => "GITS_CWRITER",
        GITS_CREADR => "GITS_CREADR",
        o if (GITS_BASER..GITS_BASER + 0x40).contains(&o) => "GITS_BASER",
        o if (GITS_IDREGS..GITS_IDREGS + 0x30).contains(&o) => "GITS_ID",
        o if o == GITS_TRANSLATER & !7 => "GITS_TRANSLATER",
        _ => "other",
    }
}

/// GITS_TYPER (IHI 0069H 12.19.22): Physical = 1, Virtual = 0, ITT_entry_size 8 bytes, ID_bits
/// and Devbits 16, SEIS = 0, PTA = 0 (RDbase is a vCPU number), CIL = 1 with CIDbits 6.
pub const fn typer() -> u64 {
    let cid_bits = MAX_COLLECTIONS.trailing_zeros() as u64;
    1 | (TABLE_ENTRY_SIZE - 1) << 4
        | ((EVENT_ID_BITS - 1) as u64) << 8
        | ((DEVICE_ID_BITS - 1) as u64) << 13
        | (cid_bits - 1) << 32
        | 1 << 36
}

#[cfg(test)]
mod tests;
