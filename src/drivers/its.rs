//! The physical ITS, owned by exitless (GICv3/v4 hosts): its device and collection tables, its
//! command queue, the LPI property and pending tables of every redistributor, one collection
//! per redistributor, and a self-test at boot that maps an event, raises it with INT and takes
//! the LPI at EL2. Every decision (table sizes, command encodings, ring arithmetic) is the
//! core's `exitless_core::gic::its`; this module allocates, writes registers and waits.
//!
//! Spec: IHI 0069H 5.1 (LPIs and their tables), 5.2-5.3 (the ITS), 12.19 (GITS_*), 12.10-12.11
//! (GICR_CTLR.EnableLPIs, GICR_PROPBASER, GICR_PENDBASER). Linux `irq-gic-v3-its.c` does the
//! same set-up (`its_probe_one`, `its_alloc_tables`, `its_cpu_init_lpis`).
//!
//! Invariants: every wait is bounded ([`CMD_TIMEOUT_US`]): an ITS that does not take a command,
//! or reports Stalled, is reported by name and no longer used, never waited on for ever. The
//! tables are hypervisor memory no guest maps (a guest never reaches the physical ITS's
//! translation frame either: it is not in any stage 2).

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};

use exitless_core::util::lock::Mutex;
use spin::Once;
use tock_registers::interfaces::{Readable, Writeable};

use super::gicv3::{GICR_VLPI_FRAME, GicV3, GicrLpiRegs, GicrVlpiRegs, GitsRegs, cpuif};
use super::mmio::MmioRef;
use crate::arch::{cache, timer};
use exitless_core::gic::its::{
    self as core_its, CREADR_STALLED, CmdRing, Command, TableType, baser, plan_table, vpe,
};
use exitless_core::vgic::its::PhysItsOp;

/// Longest wait for the ITS to take a command, in microseconds.
pub const CMD_TIMEOUT_US: u64 = 100_000;
/// LPI ID bits exitless's property table covers: INTIDs below 2^14, 8192 LPIs.
const LPI_ID_BITS: u64 = 14;
/// The LPI the self-test raises.
const SELF_TEST_LPI: u32 = 8192;
/// Command queue: 16 pages of 4 KiB, 2048 commands.
const QUEUE_BYTES: u64 = 16 * 4096;
/// DeviceIDs the device table covers: a PCI segment's requester IDs.
const DEVICE_IDS: u64 = 1 << 16;
/// Property byte of a disabled LPI at exitless's priority (bit 1 is RES1, as Linux writes it).
const PROP_DISABLED: u8 = 0xa0 | 0b10;
const PROP_ENABLED: u8 = PROP_DISABLED | 1;
/// GICR_CTLR.EnableLPIs; GICR_CTLR.RWP.
const GICR_CTLR_ENABLE_LPIS: u32 = 1;
const GICR_CTLR_RWP: u32 = 1 << 3;
/// GICR_PENDBASER.PTZ.
const PENDBASER_PTZ: u64 = 1 << 62;

/// The ITS exitless drives, once set up.
pub struct Its {
    regs: MmioRef<GitsRegs>,
    /// The control frame's address (for messages).
    pub base: u64,
    ring: Mutex<CmdRing>,
    queue: u64,
    /// Commands and tables must be cleaned to memory (the ITS reads them non-shareable).
    flush: bool,
    /// RDbase of the boot CPU's redistributor in commands.
    boot_rdbase: u64,
    /// The property table.
    prop: u64,
    /// ITT entry size (GITS_TYPER.ITT_entry_size + 1).
    itt_entry: u64,
    /// Collections: (GICR_TYPER affinity of the redistributor, ICID).
    icids: heapless::Vec<(u32, u16), 64>,
    /// Who each LPI belongs to: 0 = free, else [`owner_word`] (lock-free lookup per MSI).
    owners: alloc::vec::Vec<AtomicU64>,
    /// Devices of VMs mapped in the physical ITS: (DeviceID, its ITT, VM); at most
    /// [`MAX_OWNED_DEVICES`] (room reserved at boot).
    devices: Mutex<alloc::vec::Vec<(u32, u64, usize)>>,
    /// ITTs not in use, allocated at boot (a guest's MAPD takes one, no allocation).
    free_itts: Mutex<heapless::Vec<u64, MAX_OWNED_DEVICES>>,
    /// Redistributors: (GICR_TYPER affinity, RD_base address, RDbase in commands).
    rds: heapless::Vec<(u32, usize, u64), 64>,
    /// vPEIDs the vPE table holds (GICv4; 0: no direct injection).
    vpe_ids: u16,
    /// VMs whose owned devices' events are virtual LPIs: VM -> its vPEs and events.
    direct: Mutex<BTreeMap<usize, DirectVm>>,
}

/// A VM whose owned devices' MSIs are injected directly (GICv4.0).
struct DirectVm {
    /// One vPE per vCPU.
    vpes: alloc::vec::Vec<Vpe>,
    /// Its shadow property table (the vITS's; GICR_VPROPBASER), once a vCPU was loaded.
    vprop: u64,
    /// (DeviceID, EventID, vCPU) of the events mapped with VMAPTI; at most
    /// [`MAX_DIRECT_EVENTS`] (room reserved when the VM's vPEs are made).
    events: alloc::vec::Vec<(u32, u32, usize)>,
}

/// One vCPU's vPE.
struct Vpe {
    id: u16,
    /// Its virtual pending table (64 KiB aligned, zeroed at creation).
    vpt: u64,
    residency: vpe::Residency,
}

/// Most EventID bits exitless maps for a passed-through device (its ITT, 2^11 entries, comes
/// from the heap; events beyond are not mapped physically, and are said so).
const MAX_PHYS_EVENT_BITS: u8 = exitless_core::vgic::its::PHYS_EVENT_BITS as u8;
/// Interrupt ID bits of a VM's virtual LPIs (the vITS's: INTIDs below 2^16).
const VLPI_ID_BITS: u8 = exitless_core::vgic::its::LPI_ID_BITS as u8;
/// Most vPEs exitless sets up (the vPE table's entries).
const MAX_VPES: u64 = 64;
/// Most devices of VMs mapped in the physical ITS at once (the vITS's own limit per VM is the
/// same): their ITTs are allocated once, at boot, each for 2^MAX_PHYS_EVENT_BITS events.
const MAX_OWNED_DEVICES: usize = 64;
/// Most events a direct VM maps with VMAPTI (the vITS's limit of events per VM).
const MAX_DIRECT_EVENTS: usize = 1024;
/// The first LPI handed to devices (8192 is the self-test's).
const FIRST_DEVICE_LPI: u32 = 8193;

/// An LPI's owner as one word: bit 63 set, VM in 55:48, DeviceID in 47:32, EventID in 31:0.
const fn owner_word(vm: usize, dev: u32, event: u32) -> u64 {
    1 << 63 | (vm as u64 & 0xff) << 48 | (dev as u64 & 0xffff) << 32 | event as u64
}

static ITS: Once<Its> = Once::new();

/// Why an operation on the physical ITS failed. A plain value (no allocation): the operations
/// that return it run on a vCPU's exit path (a guest's ITS command for a device it owns).
#[derive(Debug, Clone, Copy)]
pub enum ItsError {
    /// The ITS did not take `cmd` within [`CMD_TIMEOUT_US`] (GITS_CREADR `creadr`).
    Stuck {
        base: u64,
        cmd: Command,
        creadr: u64,
    },
    /// An EventID beyond the [`MAX_PHYS_EVENT_BITS`] exitless maps physically.
    EventBeyond { dev: u32, event: u32 },
    /// Every LPI exitless hands to devices is in use.
    NoFreeLpi,
    /// Every ITT of the pool is in use (at most [`MAX_OWNED_DEVICES`] devices mapped).
    NoItt { dev: u32 },
    /// A direct VM has mapped as many events as its table holds.
    TooManyEvents { dev: u32, event: u32 },
    /// vCPU `v` has no vPE.
    NoVpe { v: usize },
    /// The calling CPU, or a vPE's, has no known redistributor.
    NoRedistributor,
    /// A redistributor did not finish with a vPE's pending table in time (`loading`: making
    /// it resident, else letting it go).
    VpeTimeout {
        rd_base: u64,
        vpe: u16,
        loading: bool,
    },
}

impl core::fmt::Display for ItsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ItsError::Stuck { base, cmd, creadr } => write!(
                f,
                "ITS at {base:#x} did not take {cmd:?} within {} ms (GITS_CREADR {creadr:#x}{})",
                CMD_TIMEOUT_US / 1000,
                if creadr & CREADR_STALLED != 0 {
                    ", Stalled"
                } else {
                    ""
                }
            ),
            ItsError::EventBeyond { dev, event } => write!(
                f,
                "event {event} of device {dev:#x} is beyond the {MAX_PHYS_EVENT_BITS} EventID \
                 bits exitless maps"
            ),
            ItsError::NoFreeLpi => write!(f, "no free LPI for a device event"),
            ItsError::NoItt { dev } => write!(
                f,
                "device {dev:#x}: all {MAX_OWNED_DEVICES} device slots (ITTs) are in use"
            ),
            ItsError::TooManyEvents { dev, event } => write!(
                f,
                "event {event} of device {dev:#x}: the VM has {MAX_DIRECT_EVENTS} direct events \
                 mapped already"
            ),
            ItsError::NoVpe { v } => write!(f, "vCPU {v} has no vPE"),
            ItsError::NoRedistributor => write!(f, "no redistributor for this CPU or vPE"),
            ItsError::VpeTimeout {
                rd_base,
                vpe,
                loading,
            } => write!(
                f,
                "redistributor at {rd_base:#x} {} vPE {vpe}'s pending table within {} ms",
                if loading {
                    "did not finish parsing"
                } else {
                    "did not let go of"
                },
                CMD_TIMEOUT_US / 1000
            ),
        }
    }
}

impl From<ItsError> for String {
    fn from(e: ItsError) -> String {
        format!("{e}")
    }
}

/// Zeroed heap memory, `align`-aligned (a power of two); its physical address (identity map).
fn alloc_table(bytes: u64, align: u64) -> Result<u64, String> {
    let layout = Layout::from_size_align(bytes as usize, align as usize)
        .map_err(|_| format!("bad table layout ({bytes} bytes, {align} alignment)"))?;
    // SAFETY: `layout` has a non-zero size (every caller asks for at least one page); the result
    // is checked for null. The memory is never freed: the ITS owns it for the whole run.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return Err(format!("no {} KiB of heap for an ITS table", bytes / 1024));
    }
    cache::clean_invalidate(p as u64, bytes);
    Ok(p as u64)
}

/// Sets up the first ITS of `gic` and LPIs on every redistributor, and runs the self-test.
/// Returns the banner line; `Err` says why the ITS is not used (the VMs' emulated ITS does not
/// need it).
pub fn init(gic: &GicV3) -> Result<String, String> {
    let frame = *gic
        .its_frames()
        .first()
        .ok_or("no ITS in the device tree")?;
    // SAFETY: the ITS frames come from the device tree and are mapped as device memory by the
    // EL2 tables (`GicV3::new`'s contract); only this driver touches them.
    let regs: MmioRef<GitsRegs> = unsafe { MmioRef::new(frame.start as usize) };
    let typer = regs.TYPER.get();
    if typer & 1 == 0 {
        return Err(format!(
            "ITS at {:#x}: no physical LPIs (GITS_TYPER.Physical = 0)",
            frame.start
        ));
    }
    // Off, and quiescent, before its tables change.
    regs.CTLR.set(regs.CTLR.get() & !1);
    if !wait_us(CMD_TIMEOUT_US, || regs.CTLR.get() & (1 << 31) != 0) {
        return Err(format!(
            "ITS at {:#x}: not quiescent after it was disabled",
            frame.start
        ));
    }
    let mut line = format!("ITS at {:#x}:", frame.start);
    let mut flush = false;
    let mut vpe_ids = 0u16;
    for n in 0..8 {
        let r = &regs.BASER[n];
        let read = r.get();
        let ty = TableType::of(read);
        if matches!(ty, TableType::None | TableType::Other(_))
            || (ty == TableType::Vpe && typer & 2 == 0)
        {
            continue;
        }
        // Ask for 64 KiB pages and two levels; keep what the ITS accepts.
        r.set((read & !(3 << 8)) | 2 << 8 | baser::INDIRECT);
        let probe = r.get();
        let page = core_its::page_bytes(probe);
        let entry = core_its::entry_bytes(probe);
        let indirect_ok = ty == TableType::Device && probe & baser::INDIRECT != 0;
        let ids = match ty {
            TableType::Device => DEVICE_IDS.min(1 << (((typer >> 13) & 0x1f) + 1)),
            TableType::Vpe => MAX_VPES,
            _ => 64,
        };
        let plan = plan_table(ids, entry, page, 1 << 20, indirect_ok);
        let pa = alloc_table(plan.bytes(), plan.page)?;
        r.set(plan.baser(probe, pa));
        let back = r.get();
        flush |= back & baser::SHAREABILITY == 0;
        if ty == TableType::Vpe {
            vpe_ids = plan.ids.min(MAX_VPES) as u16;
        }
        let _ = write!(
            line,
            " {} table for {} IDs ({}, {} KiB, {entry}-byte entries),",
            match ty {
                TableType::Device => "device",
                TableType::Vpe => "vPE",
                _ => "collection",
            },
            plan.ids,
            if plan.indirect { "two levels" } else { "flat" },
            plan.bytes() / 1024
        );
    }
    let queue = alloc_table(QUEUE_BYTES, 64 << 10)?;
    regs.CBASER.set(
        baser::VALID
            | baser::INNER_WAWB
            | baser::INNER_SHAREABLE
            | queue
            | (QUEUE_BYTES / 4096 - 1),
    );
    flush |= regs.CBASER.get() & baser::SHAREABILITY == 0;
    regs.CWRITER.set(0);
    regs.CTLR.set(regs.CTLR.get() | 1);

    // LPIs on every redistributor: one property table, a pending table each.
    let prop = alloc_table(1 << (LPI_ID_BITS - 1), 4096)?;
    fill_prop(prop, PROP_DISABLED);
    cache::clean_invalidate(prop, 1 << (LPI_ID_BITS - 1));
    let pend_bytes = (1u64 << LPI_ID_BITS) / 8;
    let pta = typer >> 19 & 1 != 0;
    let mut err = None;
    let mut redists = 0;
    let mut icids = heapless::Vec::<(u16, u64), 64>::new();
    let mut affinities = heapless::Vec::<(u32, u16), 64>::new();
    let mut rds = heapless::Vec::<(u32, usize, u64), 64>::new();
    gic.for_each_redist(|rd_base, rd_typer| {
        // SAFETY: `rd_base` is a redistributor frame of the mapped GIC regions.
        let rd: MmioRef<GicrLpiRegs> = unsafe { MmioRef::new(rd_base) };
        if rd.CTLR.get() & GICR_CTLR_ENABLE_LPIS != 0 {
            rd.CTLR.set(rd.CTLR.get() & !GICR_CTLR_ENABLE_LPIS);
            wait_us(CMD_TIMEOUT_US, || rd.CTLR.get() & GICR_CTLR_RWP == 0);
            if rd.CTLR.get() & GICR_CTLR_ENABLE_LPIS != 0 {
                err = Some(format!(
                    "redistributor at {rd_base:#x} has LPIs on already and cannot turn them off"
                ));
                return true;
            }
        }
        let pend = match alloc_table(pend_bytes, 64 << 10) {
            Ok(p) => p,
            Err(e) => {
                err = Some(e);
                return true;
            }
        };
        rd.PROPBASER
            .set(prop | baser::INNER_WAWB | baser::INNER_SHAREABLE | (LPI_ID_BITS - 1));
        rd.PENDBASER
            .set(pend | baser::INNER_WAWB | baser::INNER_SHAREABLE | PENDBASER_PTZ);
        rd.CTLR.set(rd.CTLR.get() | GICR_CTLR_ENABLE_LPIS);
        let proc_num = rd_typer >> 8 & 0xffff;
        let rdbase = if pta { rd_base as u64 >> 16 } else { proc_num };
        let _ = icids.push((proc_num as u16, rdbase));
        let _ = affinities.push(((rd_typer >> 32) as u32, proc_num as u16));
        let _ = rds.push(((rd_typer >> 32) as u32, rd_base, rdbase));
        redists += 1;
        false
    });
    if let Some(e) = err {
        return Err(format!("{line} {e}"));
    }
    let my_rd = gic.my_redist().ok_or("the boot CPU has no redistributor")?;
    // SAFETY: as above.
    let my_typer = unsafe { MmioRef::<super::gicv3::GicrRdRegs>::new(my_rd) }
        .TYPER
        .get();
    let boot_rdbase = if pta {
        my_rd as u64 >> 16
    } else {
        my_typer >> 8 & 0xffff
    };
    // The ITTs of the devices VMs will own, each for 2^MAX_PHYS_EVENT_BITS events.
    let itt_entry = ((typer >> 4) & 0xf) + 1;
    let itt_bytes = ((1u64 << MAX_PHYS_EVENT_BITS) * itt_entry).max(256);
    let mut itts = heapless::Vec::<u64, MAX_OWNED_DEVICES>::new();
    while !itts.is_full() {
        let _ = itts.push(alloc_table(itt_bytes, 256)?);
    }
    let its = ITS.call_once(|| Its {
        regs,
        base: frame.start,
        ring: Mutex::new(CmdRing::new(QUEUE_BYTES)),
        queue,
        flush,
        boot_rdbase,
        prop,
        itt_entry,
        icids: affinities,
        owners: (0..(1u32 << (LPI_ID_BITS - 1)))
            .map(|_| AtomicU64::new(0))
            .collect(),
        devices: Mutex::new(alloc::vec::Vec::with_capacity(MAX_OWNED_DEVICES)),
        free_itts: Mutex::new(itts),
        rds,
        vpe_ids,
        direct: Mutex::new(BTreeMap::new()),
    });
    for &(icid, rdbase) in &icids {
        its.send(&[Command::Mapc {
            icid,
            rdbase,
            valid: true,
        }])?;
    }
    let _ = write!(
        line,
        " {} KiB command queue, {redists} collections mapped (one per redistributor), LPIs \
         8192-{}",
        QUEUE_BYTES / 1024,
        (1u32 << LPI_ID_BITS) - 1
    );
    match its.self_test(my_typer >> 8 & 0xffff) {
        Ok(us) => {
            let _ = write!(
                line,
                "; LPIs work (LPI {SELF_TEST_LPI} taken {us} us after INT)"
            );
            Ok(line)
        }
        Err(e) => Err(format!("{line}; LPIs do not work: {e}")),
    }
}

/// The ITS, if [`init`] set one up.
pub fn get() -> Option<&'static Its> {
    ITS.get()
}

/// The VM, DeviceID and EventID a device LPI was mapped for, if it is one.
pub fn owner(intid: u32) -> Option<(usize, u32, u32)> {
    let its = ITS.get()?;
    let w = its
        .owners
        .get(intid.checked_sub(8192)? as usize)?
        .load(Ordering::Acquire);
    (w >> 63 != 0).then_some((
        (w >> 48 & 0xff) as usize,
        (w >> 32 & 0xffff) as u32,
        w as u32,
    ))
}

fn fill_prop(prop: u64, byte: u8) {
    // SAFETY: `prop` is the property table this module allocated, 2^(LPI_ID_BITS-1) bytes.
    unsafe { core::ptr::write_bytes(prop as *mut u8, byte, 1 << (LPI_ID_BITS - 1)) };
}

/// Spins until `f` holds or `us` microseconds pass; true if it held.
fn wait_us(us: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = timer::ticks() + us * timer::frequency() / 1_000_000;
    loop {
        if f() {
            return true;
        }
        if timer::ticks() > end {
            return f();
        }
        crate::arch::spin_hint();
    }
}

impl Its {
    /// Sends `cmds` and waits until the ITS has read them all (a SYNC the caller adds makes
    /// their effects visible too). `Err` names the command the ITS did not take.
    pub fn send(&self, cmds: &[Command]) -> Result<(), ItsError> {
        let mut ring = self.ring.lock();
        for c in cmds {
            let creadr = self.regs.CREADR.get();
            let at = match ring.push(creadr) {
                Some(at) => at,
                None => {
                    // Full: wait for room, bounded.
                    if !wait_us(CMD_TIMEOUT_US, || ring.free(self.regs.CREADR.get()) > 0) {
                        return Err(self.stuck(*c));
                    }
                    ring.push(self.regs.CREADR.get())
                        .ok_or_else(|| self.stuck(*c))?
                }
            };
            let slot = self.queue + at;
            for (i, w) in c.encode().iter().enumerate() {
                // SAFETY: `slot` is a 32-byte command slot inside the queue this module
                // allocated; the ITS reads it only once CWRITER moves past it.
                unsafe { core::ptr::write_volatile((slot + 8 * i as u64) as *mut u64, *w) };
            }
            if self.flush {
                cache::clean_invalidate(slot, 32);
            }
        }
        // SAFETY: a barrier: the commands are in memory before the ITS is told.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        self.regs.CWRITER.set(ring.cwriter);
        let last = cmds.last();
        if !wait_us(CMD_TIMEOUT_US, || {
            let r = self.regs.CREADR.get();
            ring.done(r) || r & CREADR_STALLED != 0
        }) || self.regs.CREADR.get() & CREADR_STALLED != 0
        {
            return Err(self.stuck(last.copied().unwrap_or(Command::Sync {
                rdbase: self.boot_rdbase,
            })));
        }
        Ok(())
    }

    fn stuck(&self, cmd: Command) -> ItsError {
        ItsError::Stuck {
            base: self.base,
            cmd,
            creadr: self.regs.CREADR.get(),
        }
    }

    /// The ICID of the collection of the redistributor whose affinity is `aff` (the GICR_TYPER
    /// layout of an MPIDR).
    pub fn icid_of(&self, aff: u32) -> Option<u16> {
        self.icids.iter().find(|&&(a, _)| a == aff).map(|&(_, i)| i)
    }

    /// Does one operation of VM `vm`'s ITS on the physical ITS; `icid` is the collection of the
    /// CPU running the target vCPU. `Err` says what failed (the MSIs of that event then do not
    /// arrive; the guest's own ITS state is unaffected).
    pub fn apply(
        &self,
        vm: usize,
        op: PhysItsOp,
        icid: impl Fn(usize) -> u16,
    ) -> Result<(), ItsError> {
        let sync = Command::Sync {
            rdbase: self.boot_rdbase,
        };
        if let PhysItsOp::MapDevice { dev, .. } | PhysItsOp::UnmapDevice { dev } = op {
            // MAPD drops every event of the device, virtual ones too.
            if let Some(d) = self.direct.lock().get_mut(&vm) {
                d.events.retain(|&(de, _, _)| de != dev);
            }
        } else if let Some(r) = self.apply_direct(vm, op) {
            return r;
        }
        match op {
            PhysItsOp::MapDevice { dev, event_bits } => {
                self.unmap_device(dev)?;
                let bits = event_bits.clamp(1, MAX_PHYS_EVENT_BITS);
                let itt = self.free_itts.lock().pop().ok_or(ItsError::NoItt { dev })?;
                let bytes = ((1u64 << MAX_PHYS_EVENT_BITS) * self.itt_entry).max(256);
                // SAFETY: `itt` is one of the pool's ITTs (`bytes` long, allocated in `init`),
                // taken from the free list above: no device uses it.
                unsafe { core::ptr::write_bytes(itt as *mut u8, 0, bytes as usize) };
                cache::clean_invalidate(itt, bytes);
                // Room for every ITT of the pool was reserved in `init`: no allocation.
                self.devices.lock().push((dev, itt, vm));
                self.send(&[
                    Command::Mapd {
                        dev,
                        event_bits: bits,
                        itt,
                        valid: true,
                    },
                    sync,
                ])
            }
            PhysItsOp::UnmapDevice { dev } => self.unmap_device(dev),
            PhysItsOp::MapEvent {
                dev, event, vcpu, ..
            } => {
                if event >= 1 << MAX_PHYS_EVENT_BITS {
                    return Err(ItsError::EventBeyond { dev, event });
                }
                self.unmap_event(dev, event)?;
                let word = owner_word(vm, dev, event);
                let lpi = (FIRST_DEVICE_LPI - 8192..self.owners.len() as u32)
                    .find(|&i| {
                        self.owners[i as usize]
                            .compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                    })
                    .map(|i| i + 8192)
                    .ok_or(ItsError::NoFreeLpi)?;
                self.set_prop_byte(lpi, true);
                self.send(&[
                    Command::Mapti {
                        dev,
                        event,
                        intid: lpi,
                        icid: icid(vcpu),
                    },
                    Command::Inv { dev, event },
                    sync,
                ])
            }
            PhysItsOp::UnmapEvent { dev, event } => self.unmap_event(dev, event),
            PhysItsOp::MoveEvent { dev, event, vcpu } => {
                if self.lpi_of(vm, dev, event).is_none() {
                    return Ok(());
                }
                self.send(&[
                    Command::Movi {
                        dev,
                        event,
                        icid: icid(vcpu),
                    },
                    sync,
                ])
            }
            // Only a vITS that injects directly records these (`apply_direct` took them).
            PhysItsOp::Property { .. }
            | PhysItsOp::PropertyAll { .. }
            | PhysItsOp::Int { .. }
            | PhysItsOp::Clear { .. } => Ok(()),
        }
    }

    /// True if this ITS can map virtual LPIs (GICv4: GITS_TYPER.Virtual and a vPE table).
    pub fn direct_ok(&self) -> bool {
        self.vpe_ids > 0
    }

    /// RDbase of the redistributor whose affinity is `aff`.
    pub fn rdbase_of(&self, aff: u32) -> Option<u64> {
        self.rds.iter().find(|r| r.0 == aff).map(|r| r.2)
    }

    /// Makes VM `vm`'s MSIs direct: one vPE per vCPU, on the redistributors `rdbases` (vCPU
    /// n's CPU's), each with a zeroed virtual pending table, mapped with VMAPP. `Err` says why
    /// not (no vPE table, vPEIDs used up, no memory): the VM then keeps the emulated path.
    pub fn create_vpes(&self, vm: usize, rdbases: &[u64]) -> Result<(), String> {
        if !self.direct_ok() {
            return Err("the ITS has no vPE table (GITS_TYPER.Virtual = 0)".into());
        }
        let mut direct = self.direct.lock();
        let used: usize = direct.values().map(|d| d.vpes.len()).sum();
        if used + rdbases.len() > self.vpe_ids as usize {
            return Err(format!(
                "no vPE IDs left ({used} of {} in use, {} needed)",
                self.vpe_ids,
                rdbases.len()
            ));
        }
        let mut vpes = alloc::vec::Vec::with_capacity(rdbases.len());
        for (i, &rdbase) in rdbases.iter().enumerate() {
            // One bit per INTID below 2^VLPI_ID_BITS, 64 KiB aligned (GICR_VPENDBASER).
            let vpt = alloc_table(1 << (VLPI_ID_BITS - 3), 64 << 10)?;
            let id = (used + i) as u16;
            self.send(&[
                Command::Vmapp {
                    vpe: id,
                    rdbase,
                    vpt,
                    id_bits: VLPI_ID_BITS,
                    valid: true,
                },
                Command::Vinvall { vpe: id },
                Command::Vsync { vpe: id },
            ])?;
            vpes.push(Vpe {
                id,
                vpt,
                residency: vpe::Residency::mapped(rdbase),
            });
        }
        direct.insert(
            vm,
            DirectVm {
                vpes,
                vprop: 0,
                events: alloc::vec::Vec::with_capacity(MAX_DIRECT_EVENTS),
            },
        );
        Ok(())
    }

    /// vCPU `v` of VM `vm` is loaded on this CPU: its vPE becomes resident on this CPU's
    /// redistributor, with `vprop` (the vITS's shadow property table) as its property table.
    /// Nothing for a VM without direct injection.
    pub fn make_resident(&self, vm: usize, v: usize, vprop: u64) -> Result<(), ItsError> {
        let me = exitless_core::gic::mpidr_to_gicr_affinity(crate::arch::mpidr());
        let &(_, rd_base, rdbase) = self
            .rds
            .iter()
            .find(|r| r.0 == me)
            .ok_or(ItsError::NoRedistributor)?;
        let mut direct = self.direct.lock();
        let Some(d) = direct.get_mut(&vm) else {
            return Ok(());
        };
        d.vprop = vprop;
        let Some(p) = d.vpes.get_mut(v) else {
            return Err(ItsError::NoVpe { v });
        };
        let vpe_id = p.id;
        match p.residency.load(rdbase) {
            None => return Ok(()),
            Some(Some(to)) => self.send(&[
                Command::Vmovp {
                    vpe: vpe_id,
                    rdbase: to,
                },
                Command::Vsync { vpe: vpe_id },
            ])?,
            Some(None) => {}
        }
        if self.flush {
            cache::clean_invalidate(vprop, (1 << VLPI_ID_BITS) - 8192);
        }
        // SAFETY: `rd_base` is a redistributor of the GIC regions mapped at boot, and a GICv4
        // one (this VM has vPEs only on such a GIC): its VLPI_base frame follows.
        let regs: MmioRef<GicrVlpiRegs> = unsafe { MmioRef::new(rd_base + GICR_VLPI_FRAME) };
        regs.VPROPBASER.set(vpe::vpropbaser(vprop, VLPI_ID_BITS));
        regs.VPENDBASER.set(vpe::vpendbaser_resident(p.vpt));
        if !wait_us(CMD_TIMEOUT_US, || regs.VPENDBASER.get() & vpe::DIRTY == 0) {
            return Err(ItsError::VpeTimeout {
                rd_base: rd_base as u64,
                vpe: vpe_id,
                loading: true,
            });
        }
        Ok(())
    }

    /// vCPU `v` of VM `vm` leaves its CPU (CPU_OFF, VM stop or reset): its vPE is no longer
    /// resident; events for it stay pending in its table. Returns PendingLast.
    pub fn make_non_resident(&self, vm: usize, v: usize) -> Result<bool, ItsError> {
        let mut direct = self.direct.lock();
        let Some(p) = direct.get_mut(&vm).and_then(|d| d.vpes.get_mut(v)) else {
            return Ok(false);
        };
        let rdbase = p.residency.rdbase;
        if !p.residency.put() {
            return Ok(false);
        }
        let &(_, rd_base, _) = self
            .rds
            .iter()
            .find(|r| r.2 == rdbase)
            .ok_or(ItsError::NoRedistributor)?;
        // SAFETY: as in `make_resident`.
        let regs: MmioRef<GicrVlpiRegs> = unsafe { MmioRef::new(rd_base + GICR_VLPI_FRAME) };
        regs.VPENDBASER
            .set(vpe::vpendbaser_off(regs.VPENDBASER.get()));
        if !wait_us(CMD_TIMEOUT_US, || regs.VPENDBASER.get() & vpe::DIRTY == 0) {
            return Err(ItsError::VpeTimeout {
                rd_base: rd_base as u64,
                vpe: p.id,
                loading: false,
            });
        }
        Ok(vpe::pending_last(regs.VPENDBASER.get()))
    }

    /// Forgets everything VM `vm` mapped in the physical ITS (its devices and their events,
    /// virtual or not): a VM reset starts with an empty vITS. Its vPEs stay, their pending
    /// tables emptied (no vLPI from before the reset reaches the restarted guest). Called while
    /// every vCPU of the VM is stopped, so no vPE is resident.
    pub fn forget_vm(&self, vm: usize) -> Result<(), ItsError> {
        if let Some(d) = self.direct.lock().get_mut(&vm) {
            d.events.clear();
            for p in &d.vpes {
                if p.residency.resident {
                    continue;
                }
                let bytes = 1u64 << (VLPI_ID_BITS - 3);
                // SAFETY: `p.vpt` is the pending table `create_vpes` allocated with this size;
                // its vPE is not resident (checked above), so no redistributor uses it now.
                unsafe { core::ptr::write_bytes(p.vpt as *mut u8, 0, bytes as usize) };
                cache::clean_invalidate(p.vpt, bytes);
            }
        }
        let devs: heapless::Vec<u32, MAX_OWNED_DEVICES> = self
            .devices
            .lock()
            .iter()
            .filter(|e| e.2 == vm)
            .map(|e| e.0)
            .take(MAX_OWNED_DEVICES)
            .collect();
        for dev in devs {
            self.unmap_device(dev)?;
        }
        Ok(())
    }

    /// A direct VM's event work: the physical commands are the core's
    /// (`vgic::its::direct_commands`); this keeps which vCPU each event is mapped to, and
    /// cleans the shadow property bytes the hardware is about to read. `None`: not a direct VM,
    /// or a MAPD (the emulated path's).
    fn apply_direct(&self, vm: usize, op: PhysItsOp) -> Option<Result<(), ItsError>> {
        if matches!(
            op,
            PhysItsOp::MapDevice { .. } | PhysItsOp::UnmapDevice { .. }
        ) {
            return None;
        }
        let mut direct = self.direct.lock();
        let d = direct.get_mut(&vm)?;
        let key = match op {
            PhysItsOp::MapEvent { dev, event, .. }
            | PhysItsOp::UnmapEvent { dev, event }
            | PhysItsOp::MoveEvent { dev, event, .. }
            | PhysItsOp::Property { dev, event, .. }
            | PhysItsOp::Int { dev, event }
            | PhysItsOp::Clear { dev, event } => Some((dev, event)),
            _ => None,
        };
        if let PhysItsOp::MapEvent { dev, event, .. } = op
            && event >= 1 << MAX_PHYS_EVENT_BITS
        {
            return Some(Err(ItsError::EventBeyond { dev, event }));
        }
        // The hardware reads the shadow bytes (GICR_VPROPBASER): in memory before it is told.
        if self.flush && d.vprop != 0 {
            match op {
                PhysItsOp::MapEvent { intid, .. } | PhysItsOp::Property { intid, .. } => {
                    cache::clean_invalidate(d.vprop + (intid - 8192) as u64, 1)
                }
                PhysItsOp::PropertyAll { .. } => {
                    cache::clean_invalidate(d.vprop, (1 << VLPI_ID_BITS) - 8192)
                }
                _ => {}
            }
        }
        let at = key.and_then(|(dev, event)| {
            d.events
                .iter()
                .position(|&(de, ev, _)| de == dev && ev == event)
        });
        let mapped = at.map(|i| d.events[i].2);
        if let PhysItsOp::MapEvent { dev, event, .. } = op
            && at.is_none()
            && d.events.len() >= MAX_DIRECT_EVENTS
        {
            return Some(Err(ItsError::TooManyEvents { dev, event }));
        }
        let cmds =
            exitless_core::vgic::its::direct_commands(op, mapped, |v| d.vpes.get(v).map(|p| p.id));
        // The table never grows past the room reserved for it (checked above): no allocation.
        match (op, at) {
            (PhysItsOp::MapEvent { vcpu, .. } | PhysItsOp::MoveEvent { vcpu, .. }, Some(i))
                if !cmds.is_empty() =>
            {
                d.events[i].2 = vcpu;
            }
            (
                PhysItsOp::MapEvent {
                    dev, event, vcpu, ..
                },
                None,
            ) if !cmds.is_empty() => {
                d.events.push((dev, event, vcpu));
            }
            (PhysItsOp::UnmapEvent { .. }, Some(i)) => {
                d.events.swap_remove(i);
            }
            _ => {}
        }
        Some(if cmds.is_empty() {
            Ok(())
        } else {
            self.send(&cmds)
        })
    }

    /// The LPI mapped for (vm, dev, event).
    fn lpi_of(&self, vm: usize, dev: u32, event: u32) -> Option<u32> {
        let word = owner_word(vm, dev, event);
        self.owners
            .iter()
            .position(|o| o.load(Ordering::Acquire) == word)
            .map(|i| i as u32 + 8192)
    }

    fn unmap_event(&self, dev: u32, event: u32) -> Result<(), ItsError> {
        let Some(vm) = self.devices.lock().iter().find(|e| e.0 == dev).map(|e| e.2) else {
            return Ok(());
        };
        let Some(lpi) = self.lpi_of(vm, dev, event) else {
            return Ok(());
        };
        self.send(&[
            Command::Discard { dev, event },
            Command::Sync {
                rdbase: self.boot_rdbase,
            },
        ])?;
        self.set_prop_byte(lpi, false);
        self.owners[(lpi - 8192) as usize].store(0, Ordering::Release);
        Ok(())
    }

    fn unmap_device(&self, dev: u32) -> Result<(), ItsError> {
        let (itt, vm) = {
            let mut devices = self.devices.lock();
            let Some(i) = devices.iter().position(|e| e.0 == dev) else {
                return Ok(());
            };
            let (_, itt, vm) = devices.swap_remove(i);
            (itt, vm)
        };
        for o in &self.owners {
            let w = o.load(Ordering::Acquire);
            if w >> 63 != 0 && (w >> 48 & 0xff) as usize == vm && (w >> 32 & 0xffff) as u32 == dev {
                o.store(0, Ordering::Release);
            }
        }
        let sent = self.send(&self.unmap_device_cmds(dev));
        // Back to the pool once the ITS no longer uses it (MAPD V=0 and SYNC completed); an ITS
        // that did not take the commands may still read it: that ITT is not reused.
        if sent.is_ok() {
            let _ = self.free_itts.lock().push(itt);
        }
        sent
    }

    /// MAPD V=0 of `dev`, then SYNC.
    fn unmap_device_cmds(&self, dev: u32) -> [Command; 2] {
        [
            Command::Mapd {
                dev,
                event_bits: 1,
                itt: 0,
                valid: false,
            },
            Command::Sync {
                rdbase: self.boot_rdbase,
            },
        ]
    }

    fn set_prop_byte(&self, intid: u32, on: bool) {
        let at = self.prop + (intid - 8192) as u64;
        // SAFETY: `at` is inside the property table (INTIDs below 2^LPI_ID_BITS).
        unsafe {
            core::ptr::write_volatile(at as *mut u8, if on { PROP_ENABLED } else { PROP_DISABLED })
        };
        cache::clean_invalidate(at, 1);
    }

    /// Sets an LPI's property byte (enable and priority) and makes the ITS read it again.
    fn set_lpi(&self, intid: u32, on: bool, dev: u32, event: u32) -> Result<(), ItsError> {
        let at = self.prop + (intid - 8192) as u64;
        // SAFETY: `at` is inside the property table (INTIDs below 2^LPI_ID_BITS).
        unsafe {
            core::ptr::write_volatile(at as *mut u8, if on { PROP_ENABLED } else { PROP_DISABLED })
        };
        cache::clean_invalidate(at, 1);
        self.send(&[
            Command::Inv { dev, event },
            Command::Sync {
                rdbase: self.boot_rdbase,
            },
        ])
    }

    /// Maps DeviceID 0's event 0 to [`SELF_TEST_LPI`] on the boot CPU's collection, raises it
    /// with INT and takes it at EL2 (interrupts masked: polled with ICC_IAR1_EL1); then unmaps
    /// it. The time it took, in microseconds.
    fn self_test(&self, icid: u64) -> Result<u64, String> {
        let itt = alloc_table(4096, 4096)?;
        self.send(&[
            Command::Mapd {
                dev: 0,
                event_bits: 1,
                itt,
                valid: true,
            },
            Command::Mapti {
                dev: 0,
                event: 0,
                intid: SELF_TEST_LPI,
                icid: icid as u16,
            },
            Command::Sync {
                rdbase: self.boot_rdbase,
            },
        ])?;
        self.set_lpi(SELF_TEST_LPI, true, 0, 0)?;
        let t0 = timer::ticks();
        self.send(&[
            Command::Int { dev: 0, event: 0 },
            Command::Sync {
                rdbase: self.boot_rdbase,
            },
        ])?;
        let mut got = None;
        wait_us(CMD_TIMEOUT_US, || {
            let id = cpuif::ack();
            if (1020..8192).contains(&id) {
                return false;
            }
            cpuif::eoi(id);
            if id != SELF_TEST_LPI {
                cpuif::deactivate(id);
                return false;
            }
            got = Some(timer::ticks());
            true
        });
        self.set_lpi(SELF_TEST_LPI, false, 0, 0)?;
        self.send(&[Command::Discard { dev: 0, event: 0 }])?;
        self.send(&self.unmap_device_cmds(0))?;
        let t = got.ok_or_else(|| {
            format!(
                "INT of LPI {SELF_TEST_LPI} was not taken within {} ms",
                CMD_TIMEOUT_US / 1000
            )
        })?;
        Ok((t - t0) * 1_000_000 / timer::frequency().max(1))
    }
}
