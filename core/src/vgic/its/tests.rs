//! The vITS's rules, each replayed as a command stream a guest writes into its queue.

use core::cell::Cell;

use super::*;

/// Guest RAM for the tests: `base..base + len`, counting reads.
struct Ram {
    base: u64,
    bytes: Vec<u8>,
    reads: Cell<u64>,
}

impl GuestRam for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        self.reads.set(self.reads.get() + 1);
        let Some(off) = ipa.checked_sub(self.base) else {
            return false;
        };
        let Some(end) = off.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.bytes.len() as u64 {
            return false;
        }
        buf.copy_from_slice(&self.bytes[off as usize..end as usize]);
        true
    }
}

const RAM: u64 = 0x4000_0000;
const QUEUE: u64 = RAM + 0x10_0000;
const PROP: u64 = RAM + 0x20_0000;
const PEND: u64 = RAM + 0x30_0000; // vCPU n's table at PEND + n * 0x1_0000
const DEVTAB: u64 = RAM + 0x40_0000;
const COLLTAB: u64 = RAM + 0x50_0000;

/// A VM with 4 vCPUs, its ITS set up as Linux does: property table (16 ID bits, every LPI
/// enabled at priority 0xa0), pending tables, LPIs on, flat tables, 4 KiB queue, enabled.
struct Vm {
    its: Its,
    ram: Ram,
    /// Commands written so far (the queue offset of the next one).
    next: u64,
}

fn vm() -> Vm {
    vm_with(ItsConfig::new(4))
}

fn vm_with(cfg: ItsConfig) -> Vm {
    let ram = Ram {
        base: RAM,
        bytes: alloc::vec![0; 0x60_0000],
        reads: Cell::new(0),
    };
    let mut v = Vm {
        its: Its::new(cfg),
        ram,
        next: 0,
    };
    for b in &mut v.ram.bytes[(PROP - RAM) as usize..(PROP - RAM) as usize + 0x1_0000] {
        *b = 0xa0 | 0b10 | 1;
    }
    v.its.set_propbaser(0, PROP | (LPI_ID_BITS as u64 - 1));
    for c in 0..cfg.vcpus {
        v.its.set_pendbaser(c, PEND + c as u64 * 0x1_0000);
        v.its.set_lpis_enabled(c, true, &v.ram);
    }
    v.w(GITS_BASER, 8, BASER_VALID | DEVTAB | 0xf); // 16 pages of 4 KiB: 8192 devices
    v.w(GITS_BASER + 8, 8, BASER_VALID | COLLTAB);
    v.w(GITS_CBASER, 8, BASER_VALID | QUEUE); // one 4 KiB page: 128 commands
    v.w(GITS_CTLR, 4, 1);
    assert_eq!(v.r(GITS_CTLR, 4) & 1, 1, "the ITS enables");
    v
}

impl Vm {
    fn w(&mut self, off: u64, width: u8, val: u64) {
        assert!(self.its.write(off, width, val, &self.ram), "write {off:#x}");
    }
    fn r(&mut self, off: u64, width: u8) -> u64 {
        self.its.read(off, width, &self.ram).expect("a register")
    }
    /// Puts commands into the queue and writes GITS_CWRITER once.
    fn send(&mut self, cmds: &[[u64; 4]]) {
        let size = self.its.queue_size();
        for c in cmds {
            let at = (QUEUE - RAM + self.next) as usize;
            for (i, w) in c.iter().enumerate() {
                self.ram.bytes[at + 8 * i..at + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
            }
            self.next = (self.next + 32) % size;
        }
        let n = self.next;
        self.w(GITS_CWRITER, 8, n);
    }
    fn errors(&self) -> u64 {
        self.its.stats.errors
    }
    fn pending_on(&self, v: VcpuId) -> Vec<u32> {
        self.its.deliverable_for(v).map(|l| l.intid).collect()
    }
    fn set_prop(&mut self, intid: u32, byte: u8) {
        self.ram.bytes[(PROP - RAM) as usize + (intid - LPI_BASE) as usize] = byte;
    }
}

fn mapd(dev: u32, size: u32, valid: bool) -> [u64; 4] {
    [
        cmd::MAPD as u64 | (dev as u64) << 32,
        size as u64,
        0x8000_0000 | (valid as u64) << 63,
        0,
    ]
}
fn mapc(icid: u32, rd: u64, valid: bool) -> [u64; 4] {
    [
        cmd::MAPC as u64,
        0,
        icid as u64 | rd << 16 | (valid as u64) << 63,
        0,
    ]
}
fn mapti(dev: u32, event: u32, intid: u32, icid: u32) -> [u64; 4] {
    [
        cmd::MAPTI as u64 | (dev as u64) << 32,
        event as u64 | (intid as u64) << 32,
        icid as u64,
        0,
    ]
}
fn mapi(dev: u32, event: u32, icid: u32) -> [u64; 4] {
    [
        cmd::MAPI as u64 | (dev as u64) << 32,
        event as u64,
        icid as u64,
        0,
    ]
}
fn ev(op: u8, dev: u32, event: u32) -> [u64; 4] {
    [op as u64 | (dev as u64) << 32, event as u64, 0, 0]
}
fn movi(dev: u32, event: u32, icid: u32) -> [u64; 4] {
    [
        cmd::MOVI as u64 | (dev as u64) << 32,
        event as u64,
        icid as u64,
        0,
    ]
}
fn invall(icid: u32) -> [u64; 4] {
    [cmd::INVALL as u64, 0, icid as u64, 0]
}
fn movall(from: u64, to: u64) -> [u64; 4] {
    [cmd::MOVALL as u64, 0, from << 16, to << 16]
}
fn sync(rd: u64) -> [u64; 4] {
    [cmd::SYNC as u64, 0, rd << 16, 0]
}

/// One collection per vCPU (ICID n -> vCPU n) and device 8 with 32 events.
fn with_device() -> Vm {
    let mut v = vm();
    v.send(&[
        mapc(0, 0, true),
        mapc(1, 1, true),
        mapc(2, 2, true),
        mapc(3, 3, true),
        mapd(8, 4, true),
    ]);
    assert_eq!(v.errors(), 0);
    v
}

#[test]
fn gits_typer_says_physical_lpis_8_byte_itt_16_devbits_16_event_bits_no_virtual() {
    let mut v = vm();
    let t = v.r(GITS_TYPER, 8);
    assert_eq!(t & 1, 1, "Physical");
    assert_eq!(t >> 1 & 1, 0, "Virtual = 0 whatever the host");
    assert_eq!((t >> 4 & 0xf) + 1, 8, "ITT_entry_size");
    assert_eq!((t >> 8 & 0x1f) + 1, 16, "ID_bits");
    assert_eq!((t >> 13 & 0x1f) + 1, 16, "Devbits");
    assert_eq!(t >> 18 & 1, 0, "SEIS");
    assert_eq!(t >> 19 & 1, 0, "PTA = 0: RDbase is a processor number");
    assert_eq!(t >> 36 & 1, 1, "CIL");
    assert_eq!(
        1 << ((t >> 32 & 0xf) + 1),
        MAX_COLLECTIONS as u64,
        "CIDbits"
    );
    assert_eq!(v.r(GITS_TYPER + 4, 4), t >> 32, "the upper half alone");
    assert_eq!(
        v.r(GITS_IDREGS + 0x18, 4) >> 4 & 0xf,
        3,
        "PIDR2.ArchRev = GICv3"
    );
}

#[test]
fn gits_baser_type_and_entry_size_are_read_only_and_baser2_to_7_are_raz_wi() {
    let mut v = Vm {
        its: Its::new(ItsConfig::new(2)),
        ram: Ram {
            base: RAM,
            bytes: alloc::vec![0; 0x1000],
            reads: Cell::new(0),
        },
        next: 0,
    };
    v.w(GITS_BASER, 8, u64::MAX);
    let b0 = v.r(GITS_BASER, 8);
    assert_eq!(b0 >> 56 & 7, 1, "Device");
    assert_eq!((b0 >> 48 & 0x1f) + 1, 8, "Entry_Size");
    assert_ne!(b0 & BASER_INDIRECT, 0, "two levels allowed for devices");
    assert_eq!(b0 >> 8 & 3, 2, "reserved Page_Size 0b11 reads as 64 KiB");
    v.w(GITS_BASER + 8, 8, u64::MAX);
    let b1 = v.r(GITS_BASER + 8, 8);
    assert_eq!(b1 >> 56 & 7, 4, "Collection");
    assert_eq!(b1 & BASER_INDIRECT, 0, "one level for collections");
    v.w(GITS_BASER + 16, 8, u64::MAX);
    assert_eq!(v.r(GITS_BASER + 16, 8), 0);
}

#[test]
fn enabling_is_refused_until_the_queue_and_both_tables_are_valid() {
    let mut v = Vm {
        its: Its::new(ItsConfig::new(2)),
        ram: Ram {
            base: RAM,
            bytes: alloc::vec![0; 0x1000],
            reads: Cell::new(0),
        },
        next: 0,
    };
    v.w(GITS_CTLR, 4, 1);
    assert_eq!(v.r(GITS_CTLR, 4) & 1, 0);
    v.w(GITS_CBASER, 8, BASER_VALID | QUEUE);
    v.w(GITS_BASER, 8, BASER_VALID | DEVTAB);
    v.w(GITS_CTLR, 4, 1);
    assert_eq!(v.r(GITS_CTLR, 4) & 1, 0, "no collection table yet");
    v.w(GITS_BASER + 8, 8, BASER_VALID | COLLTAB);
    v.w(GITS_CTLR, 4, 1);
    assert_eq!(v.r(GITS_CTLR, 4), 1 << 31 | 1, "enabled and quiescent");
}

#[test]
fn cbaser_and_baser_are_read_only_while_the_its_is_enabled() {
    let mut v = vm();
    let (cb, b0) = (v.r(GITS_CBASER, 8), v.r(GITS_BASER, 8));
    v.w(GITS_CBASER, 8, BASER_VALID | (QUEUE + 0x1000));
    v.w(GITS_BASER, 8, BASER_VALID | (DEVTAB + 0x1000));
    assert_eq!((v.r(GITS_CBASER, 8), v.r(GITS_BASER, 8)), (cb, b0));
}

#[test]
fn a_cbaser_write_resets_creadr_and_cwriter() {
    let mut v = with_device();
    assert_ne!(v.r(GITS_CREADR, 8), 0);
    v.w(GITS_CTLR, 4, 0);
    v.w(GITS_CBASER, 8, BASER_VALID | QUEUE);
    assert_eq!((v.r(GITS_CREADR, 8), v.r(GITS_CWRITER, 8)), (0, 0));
}

#[test]
fn commands_are_processed_only_while_the_its_is_enabled() {
    let mut v = with_device();
    v.w(GITS_CTLR, 4, 0);
    v.send(&[mapti(8, 0, 8192, 0)]);
    assert_eq!(v.r(GITS_CREADR, 8), 5 * 32, "nothing taken while disabled");
    assert!(v.its.lpi(8192).is_none());
    v.w(GITS_CTLR, 4, 1);
    assert_eq!(v.r(GITS_CREADR, 8), 6 * 32, "taken on enable");
    assert!(v.its.lpi(8192).is_some());
}

#[test]
fn mapti_then_int_makes_the_lpi_pending_on_the_vcpu_of_its_collection() {
    let mut v = with_device();
    v.send(&[mapti(8, 3, 8200, 2), ev(cmd::INT, 8, 3), sync(2)]);
    assert_eq!(v.errors(), 0);
    assert_eq!(v.pending_on(2), [8200]);
    assert!(v.pending_on(0).is_empty());
    assert_eq!(v.its.take_kicks(), 1 << 2, "the target vCPU is kicked");
    let l = v.its.lpi(8200).unwrap().state;
    assert_eq!(
        (l.priority, l.enabled),
        (0xa0, true),
        "property byte 7:2 and 0"
    );
}

#[test]
fn mapi_uses_the_event_id_as_the_lpi() {
    let mut v = with_device();
    v.send(&[mapd(9, 15, true), mapi(9, 8300, 1), ev(cmd::INT, 9, 8300)]);
    assert_eq!(v.errors(), 0);
    assert_eq!(v.pending_on(1), [8300]);
}

#[test]
fn a_bad_command_is_skipped_and_the_queue_goes_on() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 32, 8192, 0),   // EventID 32 with Size 4: out of range
        mapti(7, 0, 8192, 0),    // device 7 not mapped
        mapti(8, 0, 100, 0),     // not an LPI
        mapti(8, 0, 1 << 16, 0), // beyond IDbits
        mapti(8, 0, 8192, 64),   // ICID out of range
        mapc(5, 4, true),        // RDbase 4 with 4 vCPUs
        [0x2a, 0, 0, 0],         // VMAPTI: GITS_TYPER.Virtual = 0
        mapd(8, 16, true),       // Size + 1 = 17 > 16 EventID bits
        mapti(8, 1, 8193, 1),    // good
        ev(cmd::INT, 8, 1),      // good
    ]);
    assert_eq!(v.errors(), 8);
    assert_eq!(
        v.pending_on(1),
        [8193],
        "the good commands after the bad ones ran"
    );
    assert_eq!(v.r(GITS_CREADR, 8), v.r(GITS_CWRITER, 8));
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MAPD, CmdError::SizeOutOfRange))
    );
    let (devices, events, lpis, _) = v.its.usage();
    assert_eq!(
        (devices, events, lpis),
        (1, 1, 1),
        "the bad ones changed nothing"
    );
}

#[test]
fn the_event_id_must_be_below_2_to_the_mapd_size_plus_1() {
    let mut v = with_device();
    v.send(&[mapti(8, 31, 8192, 0), mapti(8, 32, 8193, 0)]);
    assert_eq!(v.errors(), 1);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MAPTI, CmdError::EventOutOfRange))
    );
}

#[test]
fn an_event_whose_collection_is_unmapped_is_not_delivered_and_its_mapping_survives() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 9), ev(cmd::INT, 8, 0)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INT, CmdError::CollectionNotMapped))
    );
    assert!((0..4).all(|c| v.pending_on(c).is_empty()));
    v.send(&[mapc(9, 3, true), ev(cmd::INT, 8, 0)]);
    assert_eq!(v.pending_on(3), [8192], "MAPTI before MAPC is legal");
}

#[test]
fn mapc_moves_the_lpis_of_its_collection_and_mapc_v0_stops_their_delivery() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 1), ev(cmd::INT, 8, 0)]);
    assert_eq!(v.pending_on(1), [8192]);
    v.send(&[mapc(1, 3, true)]);
    assert_eq!(v.pending_on(3), [8192]);
    v.send(&[mapc(1, 0, false)]);
    assert!((0..4).all(|c| v.pending_on(c).is_empty()));
}

#[test]
fn the_rdbase_of_mapc_must_name_a_vcpu_of_the_vm() {
    let mut v = with_device();
    v.send(&[mapc(4, 4, true), mapc(4, 1 << 20, true)]);
    assert_eq!(v.errors(), 2);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MAPC, CmdError::RdbaseOutOfRange))
    );
}

#[test]
fn mapd_of_a_mapped_device_drops_all_its_events() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 0), mapti(8, 1, 8193, 0), mapd(8, 4, true)]);
    assert_eq!(v.its.usage().1, 0);
    v.send(&[ev(cmd::INT, 8, 0)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INT, CmdError::EventNotMapped))
    );
}

#[test]
fn mapd_v0_unmaps_the_device_and_its_events() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0), mapd(8, 0, false)]);
    assert_eq!(v.its.usage(), (0, 0, 0, ItsConfig::new(4)));
    assert!(v.pending_on(0).is_empty(), "its pending LPI went with it");
    v.send(&[ev(cmd::INT, 8, 0)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INT, CmdError::DeviceNotMapped))
    );
}

#[test]
fn discard_clears_the_pending_state_and_removes_the_mapping() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 0, 8192, 0),
        ev(cmd::INT, 8, 0),
        ev(cmd::DISCARD, 8, 0),
    ]);
    assert!(v.pending_on(0).is_empty());
    assert!(v.its.lpi(8192).is_none());
    v.send(&[ev(cmd::INT, 8, 0)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INT, CmdError::EventNotMapped))
    );
    v.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
    assert_eq!(v.pending_on(0), [8192], "a new MAPTI restores delivery");
}

#[test]
fn clear_removes_the_pending_state_only() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 0, 8192, 0),
        ev(cmd::INT, 8, 0),
        ev(cmd::CLEAR, 8, 0),
    ]);
    assert!(v.pending_on(0).is_empty());
    v.send(&[ev(cmd::INT, 8, 0)]);
    assert_eq!(v.pending_on(0), [8192]);
}

#[test]
fn movi_moves_a_pending_lpi_to_the_vcpu_of_the_new_collection() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
    v.its.take_kicks();
    v.send(&[movi(8, 0, 3)]);
    assert_eq!(v.pending_on(3), [8192]);
    assert!(v.pending_on(0).is_empty());
    assert_eq!(v.its.take_kicks(), 1 << 3);
    v.send(&[movi(8, 0, 10)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MOVI, CmdError::CollectionNotMapped))
    );
}

#[test]
fn movall_moves_every_lpi_of_one_redistributor_to_another() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 0, 8192, 1),
        mapti(8, 1, 8193, 1),
        mapti(8, 2, 8194, 2),
        ev(cmd::INT, 8, 0),
        ev(cmd::INT, 8, 2),
        movall(1, 3),
    ]);
    assert_eq!(v.pending_on(3), [8192]);
    assert_eq!(v.pending_on(2), [8194]);
    v.send(&[ev(cmd::INT, 8, 1)]);
    assert_eq!(
        v.pending_on(3),
        [8192, 8193],
        "later events follow too (KVM)"
    );
}

#[test]
fn a_property_table_change_takes_effect_only_after_inv() {
    let mut v = with_device();
    v.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
    v.set_prop(8192, 0x40 | 0b10); // disabled, priority 0x40
    assert_eq!(v.pending_on(0), [8192], "not read until INV");
    v.send(&[ev(cmd::INV, 8, 0)]);
    assert!(
        v.pending_on(0).is_empty(),
        "disabled: kept pending, not delivered"
    );
    assert!(v.its.lpi(8192).unwrap().state.pending_latch);
    v.set_prop(8192, 0x40 | 0b10 | 1);
    v.its.take_kicks();
    v.send(&[ev(cmd::INV, 8, 0)]);
    assert_eq!(v.pending_on(0), [8192]);
    assert_eq!(v.its.lpi(8192).unwrap().state.priority, 0x40);
    assert_eq!(v.its.take_kicks(), 1, "enabling a pending LPI kicks");
}

#[test]
fn invall_rereads_every_lpi_of_the_collection_and_no_other() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 0, 8192, 0),
        mapti(8, 1, 8193, 0),
        mapti(8, 2, 8194, 1),
    ]);
    for i in 8192..8195 {
        v.set_prop(i, 0x10);
    }
    v.send(&[invall(0)]);
    assert!(!v.its.lpi(8192).unwrap().state.enabled);
    assert!(!v.its.lpi(8193).unwrap().state.enabled);
    assert!(v.its.lpi(8194).unwrap().state.enabled, "another collection");
    v.send(&[invall(20)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INVALL, CmdError::CollectionNotMapped))
    );
}

#[test]
fn an_lpi_is_delivered_only_while_its_redistributor_has_enable_lpis() {
    let mut v = with_device();
    v.its.set_lpis_enabled(2, false, &v.ram);
    v.send(&[mapti(8, 0, 8192, 2), ev(cmd::INT, 8, 0)]);
    assert!(v.pending_on(2).is_empty());
    v.its.take_kicks();
    v.its.set_lpis_enabled(2, true, &v.ram);
    assert_eq!(v.pending_on(2), [8192]);
    assert_eq!(v.its.take_kicks(), 1 << 2);
}

#[test]
fn enable_lpis_takes_the_pending_state_from_the_pending_table_unless_ptz() {
    let mut v = with_device();
    v.its.set_lpis_enabled(1, false, &v.ram);
    v.send(&[mapti(8, 0, 8195, 1), mapti(8, 1, 8196, 1)]);
    let byte = (PEND - RAM) as usize + 0x1_0000 + 8195 / 8;
    v.ram.bytes[byte] |= 1 << (8195 % 8);
    v.its.set_lpis_enabled(1, true, &v.ram);
    assert_eq!(v.pending_on(1), [8195]);
    // PTZ: the table is known to be zero and is not read.
    v.its.set_lpis_enabled(1, false, &v.ram);
    v.its.set_pending(8195, false);
    v.its.set_pendbaser(1, (PEND + 0x1_0000) | PENDBASER_PTZ);
    v.its.set_lpis_enabled(1, true, &v.ram);
    assert!(v.pending_on(1).is_empty());
    assert_eq!(v.its.pendbaser(1) & PENDBASER_PTZ, 0, "PTZ reads as 0");
}

#[test]
fn propbaser_and_pendbaser_are_ignored_once_lpis_are_on() {
    let mut v = vm();
    let (p, q) = (v.its.propbaser(), v.its.pendbaser(0));
    for c in 0..4 {
        v.its.set_propbaser(c, 0x1234_5000);
    }
    v.its.set_pendbaser(0, 0x1234_0000);
    assert_eq!((v.its.propbaser(), v.its.pendbaser(0)), (p, q));
}

#[test]
fn a_table_address_outside_the_vm_is_never_read_beyond_it() {
    let mut v = with_device();
    // The property table moved outside RAM: the LPI reads as disabled.
    v.its.set_lpis_enabled(0, false, &v.ram);
    v.its.set_propbaser(0, 0x7_0000_0000 | 15);
    v.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
    assert!(!v.its.lpi(8192).unwrap().state.enabled);
    // A queue outside RAM: each command is unreadable, skipped; the ITS does not stall.
    v.w(GITS_CTLR, 4, 0);
    v.w(GITS_CBASER, 8, BASER_VALID | 0x7_0000_0000);
    v.w(GITS_CTLR, 4, 1);
    v.w(GITS_CWRITER, 8, 3 * 32);
    assert_eq!(v.r(GITS_CREADR, 8), 3 * 32);
    assert_eq!(v.its.stats.last_error, Some((0, CmdError::Unreadable)));
}

#[test]
fn a_two_level_device_table_needs_a_valid_level_1_entry_in_the_vm() {
    let mut v = vm();
    v.w(GITS_CTLR, 4, 0);
    // 4 KiB pages: a level-2 page holds 512 DeviceIDs; one level-1 page, 512 entries.
    v.w(GITS_BASER, 8, BASER_VALID | BASER_INDIRECT | DEVTAB);
    v.w(GITS_CTLR, 4, 1);
    let l1 = (DEVTAB - RAM) as usize + 8; // the entry for DeviceIDs 512-1023
    v.ram.bytes[l1..l1 + 8].copy_from_slice(&(BASER_VALID | (RAM + 0x58_0000)).to_le_bytes());
    v.send(&[
        mapd(600, 1, true),
        mapd(100, 1, true),
        mapd(512 * 512, 1, true),
    ]);
    assert_eq!(
        v.its.usage().0,
        1,
        "only the device whose level-1 entry is valid"
    );
    assert_eq!(v.errors(), 2);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MAPD, CmdError::DeviceOutOfRange))
    );
}

#[test]
fn a_deviceid_beyond_a_flat_device_table_is_refused() {
    let mut v = vm();
    v.send(&[mapd(8191, 0, true), mapd(8192, 0, true)]);
    assert_eq!(v.its.usage().0, 1);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::MAPD, CmdError::DeviceOutOfRange))
    );
}

#[test]
fn cwriter_beyond_the_queue_is_ignored() {
    let mut v = with_device();
    let before = v.r(GITS_CWRITER, 8);
    v.w(GITS_CWRITER, 8, 0x1000);
    assert_eq!(v.r(GITS_CWRITER, 8), before);
    assert_eq!(v.r(GITS_CREADR, 8), before);
}

#[test]
fn creadr_wraps_at_the_end_of_the_queue() {
    let mut v = with_device();
    // 128 commands fit; send 200 INTs in turns so the queue wraps.
    v.send(&[mapti(8, 0, 8192, 0)]);
    for _ in 0..4 {
        v.send(&[ev(cmd::INT, 8, 0); 50]);
    }
    assert_eq!(v.errors(), 0);
    assert_eq!(v.its.stats.commands, 5 + 1 + 200);
    assert_eq!(v.r(GITS_CREADR, 8), (206 * 32) % 4096);
}

#[test]
fn the_work_of_one_access_is_bounded_and_the_next_access_goes_on() {
    let mut v = vm_with(ItsConfig {
        vcpus: 4,
        max_devices: 64,
        max_events: 1024,
    });
    v.w(GITS_CTLR, 4, 0);
    v.w(GITS_CBASER, 8, BASER_VALID | QUEUE | 0xf); // 16 pages: 2048 commands
    v.w(GITS_CTLR, 4, 1);
    let mut cmds = alloc::vec![mapc(0, 0, true), mapd(8, 15, true)];
    for e in 0..1000 {
        cmds.push(mapti(8, e, 8192 + e, 0));
    }
    v.send(&cmds);
    // An INVALL storm: each one walks 1000 events and reads 1000 property bytes.
    v.send(&[invall(0); 1000]);
    let mut accesses = 0;
    loop {
        v.ram.reads.set(0);
        let creadr = v.r(GITS_CREADR, 8);
        accesses += 1;
        // A unit is at most one guest-memory read (plus 4 for the command itself).
        assert!(
            v.ram.reads.get() <= 5 * WORK_BUDGET as u64,
            "{} reads",
            v.ram.reads.get()
        );
        if creadr == v.r(GITS_CWRITER, 8) {
            break;
        }
        assert!(!v.its.quiescent(), "not quiescent while commands wait");
        assert!(accesses < 1000);
    }
    assert!(accesses > 100, "the storm took {accesses} accesses");
    assert_eq!(v.errors(), 0);
    assert!(v.its.stats.budget_stops > 100);
}

#[test]
fn a_huge_mapd_size_or_full_tables_refuse_and_allocate_nothing() {
    let mut v = vm_with(ItsConfig {
        vcpus: 4,
        max_devices: 2,
        max_events: 3,
    });
    let reserved = v.its.reserved();
    v.send(&[
        mapc(0, 0, true),
        mapd(1, 31, true), // 2^32 events: refused by the range check
        mapd(1, 15, true),
        mapd(2, 15, true),
        mapd(3, 15, true), // a third device: no room
        mapti(1, 0, 8192, 0),
        mapti(1, 1, 8193, 0),
        mapti(2, 0, 8194, 0),
        mapti(2, 1, 8195, 0), // a fourth event: no room
        mapti(2, 0, 8196, 0), // a remap needs no room
    ]);
    assert_eq!(v.errors(), 3);
    assert_eq!(v.its.stats.last_error, Some((cmd::MAPTI, CmdError::NoRoom)));
    assert_eq!(v.its.usage().0..v.its.usage().2, 2..3);
    assert!(v.its.lpi(8196).is_some() && v.its.lpi(8194).is_none());
    assert_eq!(v.its.reserved(), reserved, "no table grew");
}

#[test]
fn two_events_may_map_one_lpi_and_it_lives_until_both_are_gone() {
    let mut v = with_device();
    v.send(&[
        mapti(8, 0, 8192, 0),
        mapti(8, 1, 8192, 0),
        ev(cmd::DISCARD, 8, 0),
    ]);
    assert!(v.its.lpi(8192).is_some());
    v.send(&[ev(cmd::INT, 8, 1)]);
    assert_eq!(v.pending_on(0), [8192]);
    v.send(&[ev(cmd::DISCARD, 8, 1)]);
    assert!(v.its.lpi(8192).is_none());
}

#[test]
fn a_translater_write_is_an_event_from_device_0() {
    let mut v = with_device();
    v.send(&[mapd(0, 4, true), mapti(0, 5, 8205, 1)]);
    v.w(GITS_TRANSLATER, 4, 5);
    assert_eq!(v.pending_on(1), [8205]);
    assert_eq!(v.r(GITS_TRANSLATER, 4), 0, "reads as zero");
    v.its.set_pending(8205, false);
    v.w(GITS_CTLR, 4, 0);
    v.w(GITS_TRANSLATER, 2, 5);
    assert!(
        v.pending_on(1).is_empty(),
        "ignored while the ITS is disabled"
    );
}

#[test]
fn accesses_of_the_wrong_width_or_to_no_register_are_reported() {
    let mut v = vm();
    assert_eq!(v.its.read(GITS_CTLR, 8, &v.ram), None);
    assert_eq!(v.its.read(GITS_CTLR, 1, &v.ram), None);
    assert_eq!(v.its.read(0x40, 4, &v.ram), None);
    assert_eq!(v.its.read(GITS_TYPER + 2, 4, &v.ram), None);
    assert!(!v.its.write(GITS_TRANSLATER, 8, 0, &v.ram));
    assert!(v.its.read(GITS_CWRITER + 4, 4, &v.ram).is_some());
}

#[test]
fn commands_on_a_device_the_vm_owns_record_the_physical_work_in_order() {
    let mut v = with_device();
    v.its.set_owned(1..0x1_0000, false);
    v.send(&[
        mapd(9, 4, true),
        mapti(9, 0, 8192, 1),
        movi(9, 0, 0),
        mapc(0, 2, true),
        ev(cmd::DISCARD, 9, 0),
        mapd(9, 0, false),
    ]);
    assert_eq!(v.errors(), 0);
    assert_eq!(
        v.its.take_phys_ops().as_slice(),
        [
            PhysItsOp::MapDevice {
                dev: 9,
                event_bits: 5
            },
            PhysItsOp::MapEvent {
                dev: 9,
                event: 0,
                vcpu: 1,
                intid: 8192
            },
            PhysItsOp::MoveEvent {
                dev: 9,
                event: 0,
                vcpu: 0
            },
            PhysItsOp::MoveEvent {
                dev: 9,
                event: 0,
                vcpu: 2
            },
            PhysItsOp::UnmapEvent { dev: 9, event: 0 },
            PhysItsOp::UnmapDevice { dev: 9 },
        ]
    );
    assert!(v.its.take_phys_ops().is_empty(), "taken once");
}

#[test]
fn a_device_the_vm_does_not_own_records_no_physical_work() {
    let mut v = with_device();
    v.its.set_owned(1..8, false);
    v.send(&[mapti(8, 0, 8192, 1), ev(cmd::INT, 8, 0)]);
    assert!(v.its.take_phys_ops().is_empty());
    assert_eq!(
        v.pending_on(1),
        [8192],
        "the emulated event works as before"
    );
}

#[test]
fn physical_work_is_bounded_per_access_and_the_queue_goes_on_once_it_was_taken() {
    let mut v = with_device();
    v.its.set_owned(1..0x1_0000, false);
    let mut cmds = alloc::vec![mapd(9, 8, true)];
    for e in 0..100 {
        cmds.push(mapti(9, e, 8192 + e, 0));
    }
    v.send(&cmds);
    let first = v.its.take_phys_ops();
    assert!(
        first.len() <= MAX_PHYS_OPS && first.len() > 16,
        "{}",
        first.len()
    );
    assert!(!v.its.quiescent(), "stopped with commands left");
    let mut total = first.len();
    for _ in 0..10 {
        let _ = v.r(GITS_CREADR, 8);
        total += v.its.take_phys_ops().len();
    }
    assert_eq!(total, 101, "every command's work, in turns");
    assert_eq!(v.r(GITS_CREADR, 8), v.r(GITS_CWRITER, 8));
    assert_eq!(v.errors(), 0);
}

// ---------------------------------------------------------------------------------------------
// Direct injection (GICv4): owned devices' events are the hardware's virtual LPIs.

fn direct() -> Vm {
    let mut v = with_device();
    v.its.set_owned(1..0x1_0000, true);
    v
}

/// The hardware reads the shadow, never the guest's table: MAPTI copies the guest's property
/// byte (priority 7:2, enable 0; bit 1 set) into the shadow before the event is mapped.
#[test]
fn direct_mapti_copies_the_guest_property_byte_into_the_shadow_table_first() {
    let mut v = direct();
    assert!(v.its.direct());
    let table = v.its.shadow_table().expect("a shadow table");
    assert_eq!(table.len() * 4096, (1 << LPI_ID_BITS) - 8192);
    assert_eq!(
        table.as_ptr() as usize % 4096,
        0,
        "GICR_VPROPBASER is 4 KiB aligned"
    );
    v.set_prop(8200, 0x40 | 1);
    v.send(&[mapd(9, 4, true), mapti(9, 3, 8200, 1)]);
    assert_eq!(v.its.shadow_prop(8200), 0x40 | 0b10 | 1);
    assert_eq!(v.its.shadow_prop(8201), 0, "untouched LPIs stay disabled");
    let ops = v.its.take_phys_ops();
    assert_eq!(
        ops[1],
        PhysItsOp::MapEvent {
            dev: 9,
            event: 3,
            vcpu: 1,
            intid: 8200
        }
    );
    // The guest scribbling over its table changes nothing until it says INV.
    v.set_prop(8200, 0);
    assert_eq!(v.its.shadow_prop(8200), 0x40 | 0b10 | 1);
}

/// IHI 0069H 5.3.13: INV makes the ITS reread one LPI's property; INVALL (5.3.14) those of a
/// collection. Directly injected, the shadow follows and the hardware is told (INV/VINVALL).
#[test]
fn direct_inv_and_invall_update_the_shadow_and_ask_the_hardware_to_reread_it() {
    let mut v = direct();
    v.send(&[mapd(9, 4, true), mapti(9, 0, 8192, 2), mapti(9, 1, 8193, 2)]);
    let _ = v.its.take_phys_ops();
    v.set_prop(8192, 0x80 | 0b10); // disabled
    v.send(&[ev(cmd::INV, 9, 0)]);
    assert_eq!(v.its.shadow_prop(8192), 0x80 | 0b10);
    assert_eq!(
        v.its.take_phys_ops().as_slice(),
        [PhysItsOp::Property {
            dev: 9,
            event: 0,
            intid: 8192,
            vcpu: 2
        }]
    );
    v.set_prop(8193, 0x20 | 0b10 | 1);
    v.send(&[invall(2)]);
    assert_eq!(v.its.shadow_prop(8193), 0x20 | 0b10 | 1);
    assert_eq!(
        v.its.take_phys_ops().as_slice(),
        [PhysItsOp::PropertyAll { vcpu: 2 }]
    );
}

/// A virtual LPI's pending state is the hardware's: the guest's INT and CLEAR become the
/// physical commands, and the LPI never goes pending in the model (so never into a list
/// register, where the hardware could deliver it a second time).
#[test]
fn direct_int_and_clear_are_physical_and_never_pend_in_a_list_register() {
    let mut v = direct();
    v.send(&[mapd(9, 4, true), mapti(9, 0, 8192, 1)]);
    let _ = v.its.take_phys_ops();
    v.send(&[ev(cmd::INT, 9, 0), ev(cmd::CLEAR, 9, 0)]);
    assert_eq!(v.errors(), 0);
    assert_eq!(
        v.its.take_phys_ops().as_slice(),
        [
            PhysItsOp::Int { dev: 9, event: 0 },
            PhysItsOp::Clear { dev: 9, event: 0 }
        ]
    );
    assert!(v.pending_on(1).is_empty());
    assert_eq!(v.its.raise(9, 0), Ok(()));
    assert!(
        v.pending_on(1).is_empty(),
        "raise leaves a virtual LPI to the hardware"
    );
    // INT on an unmapped collection is the architected error, as on the emulated path.
    v.send(&[mapti(9, 1, 8193, 5), ev(cmd::INT, 9, 1)]);
    assert_eq!(
        v.its.stats.last_error,
        Some((cmd::INT, CmdError::CollectionNotMapped))
    );
}

/// A device the VM does not own keeps the emulated path even when its ITS injects directly
/// (fallback: a guest INT on an emulated event goes through the list registers).
#[test]
fn direct_injection_leaves_emulated_events_on_the_list_register_path() {
    let mut v = with_device();
    v.its.set_owned(9..10, true);
    v.send(&[mapti(8, 0, 8192, 1), ev(cmd::INT, 8, 0)]);
    assert!(v.its.take_phys_ops().is_empty());
    assert_eq!(v.pending_on(1), [8192]);
    assert_eq!(v.its.shadow_prop(8192), 0, "no shadow for an emulated LPI");
}

/// Guest command -> physical commands on a GICv4 host: each guest operation on an owned
/// device's event becomes its GICv4 form on the vPE of the target vCPU (vPEID = 10 + vCPU
/// here), followed by VSYNC of that vPE; nothing is sent for an event not mapped physically.
#[test]
fn direct_commands_translate_each_guest_operation_to_its_gicv4_form() {
    use crate::gic::its::{Command as C, NO_DOORBELL};
    let vpe = |v: VcpuId| (v < 4).then_some(10 + v as u16);
    let map = PhysItsOp::MapEvent {
        dev: 8,
        event: 1,
        vcpu: 2,
        intid: 8200,
    };
    assert_eq!(
        direct_commands(map, None, vpe).as_slice(),
        [
            C::Vmapti {
                dev: 8,
                event: 1,
                vpe: 12,
                vintid: 8200,
                doorbell: NO_DOORBELL
            },
            C::Vsync { vpe: 12 }
        ],
        "MAPTI -> VMAPTI, the guest's EventID and INTID as they are, no doorbell"
    );
    assert_eq!(
        direct_commands(map, Some(0), vpe).as_slice(),
        [
            C::Discard { dev: 8, event: 1 },
            C::Vsync { vpe: 10 },
            C::Vmapti {
                dev: 8,
                event: 1,
                vpe: 12,
                vintid: 8200,
                doorbell: NO_DOORBELL
            },
            C::Vsync { vpe: 12 }
        ],
        "a mapped event is discarded before VMAPTI (re-VMAPTI is UNPREDICTABLE)"
    );
    let unmap = PhysItsOp::UnmapEvent { dev: 8, event: 1 };
    assert_eq!(
        direct_commands(unmap, Some(2), vpe).as_slice(),
        [C::Discard { dev: 8, event: 1 }, C::Vsync { vpe: 12 }]
    );
    assert!(direct_commands(unmap, None, vpe).is_empty());
    let mv = PhysItsOp::MoveEvent {
        dev: 8,
        event: 1,
        vcpu: 3,
    };
    assert_eq!(
        direct_commands(mv, Some(2), vpe).as_slice(),
        [
            C::Vmovi {
                dev: 8,
                event: 1,
                vpe: 13
            },
            C::Vsync { vpe: 13 }
        ],
        "MOVI -> VMOVI to the new vCPU's vPE"
    );
    let inv = PhysItsOp::Property {
        dev: 8,
        event: 1,
        intid: 8200,
        vcpu: 2,
    };
    assert_eq!(
        direct_commands(inv, Some(2), vpe).as_slice(),
        [C::Inv { dev: 8, event: 1 }, C::Vsync { vpe: 12 }]
    );
    assert_eq!(
        direct_commands(PhysItsOp::PropertyAll { vcpu: 1 }, None, vpe).as_slice(),
        [C::Vinvall { vpe: 11 }, C::Vsync { vpe: 11 }],
        "INVALL -> VINVALL"
    );
    assert_eq!(
        direct_commands(PhysItsOp::Int { dev: 8, event: 1 }, Some(2), vpe).as_slice(),
        [C::Int { dev: 8, event: 1 }, C::Vsync { vpe: 12 }]
    );
    assert_eq!(
        direct_commands(PhysItsOp::Clear { dev: 8, event: 1 }, Some(2), vpe).as_slice(),
        [C::Clear { dev: 8, event: 1 }, C::Vsync { vpe: 12 }]
    );
    assert!(
        direct_commands(PhysItsOp::Int { dev: 8, event: 1 }, None, vpe).is_empty(),
        "an event not mapped physically has nothing to raise"
    );
    let far = PhysItsOp::MapEvent {
        dev: 8,
        event: 1,
        vcpu: 9,
        intid: 8200,
    };
    assert!(
        direct_commands(far, None, vpe).is_empty(),
        "no vPE: nothing"
    );
}

/// The physical ITS maps an owned device's EventIDs below 2^PHYS_EVENT_BITS only: a higher
/// one (the conformance guest's MAPI of EventID 8193) records no physical work and stays an
/// emulated event, delivered through the list registers, even with direct injection.
#[test]
fn direct_injection_keeps_events_beyond_the_physical_itt_emulated() {
    let mut v = direct();
    let high = 8193; // MAPI: the EventID is the LPI
    assert!(high >= 1 << PHYS_EVENT_BITS);
    v.send(&[mapd(7, 15, true), mapi(7, high, 1), ev(cmd::INT, 7, high)]);
    assert_eq!(v.errors(), 0);
    assert_eq!(
        v.its.take_phys_ops().as_slice(),
        [PhysItsOp::MapDevice {
            dev: 7,
            event_bits: 16
        }]
    );
    assert_eq!(v.pending_on(1), [high]);
    assert_eq!(v.its.direct_events(), 0);
}

// ---------------------------------------------------------------------------------------------
// Through the vGIC: the redistributors' LPI registers and the list registers.

mod through_the_vgic {
    use super::*;
    use crate::platform::GicVersion;
    use crate::vgic::cpu_if::{CpuIfShadow, hcr};
    use crate::vgic::lr::{LrFormat, LrState};
    use crate::vgic::{Vgic, VgicConfig};

    const CFG: VgicConfig = VgicConfig {
        version: GicVersion::V3,
        vcpus: 2,
        spis: 64,
        lr_count: 4,
        pri_bits: 5,
    };

    /// A vGICv3 with an ITS set up as in [`vm`] through its registers (2 vCPUs, ICID n ->
    /// vCPU n, device 8 with 32 events), the distributor's groups on.
    struct Gic {
        g: Vgic,
        v: Vm,
    }

    fn gic() -> Gic {
        let mut g = Vgic::new(&CFG);
        g.attach_its(ItsConfig::new(2));
        g.set_group_enables(false, true);
        let mut v = vm_with(ItsConfig::new(2));
        // The registers the Vm helper set on its own ITS, now through the redistributors.
        for c in 0..2u64 {
            let frame = c * 0x2_0000;
            let r = &v.ram;
            g.gicr_access_lpi(0, frame + 0x70, 8, Some(PROP | 15), r);
            g.gicr_access_lpi(0, frame + 0x78, 8, Some(PEND + c * 0x1_0000), r);
            g.gicr_access_lpi(0, frame, 4, Some(1), r);
        }
        v.next = 0;
        let mut gic = Gic { g, v };
        gic.its_w(GITS_BASER, BASER_VALID | DEVTAB | 0xf);
        gic.its_w(GITS_BASER + 8, BASER_VALID | COLLTAB);
        gic.its_w(GITS_CBASER, BASER_VALID | QUEUE);
        gic.its_w(GITS_CTLR, 1);
        gic.send(&[mapc(0, 0, true), mapc(1, 1, true), mapd(8, 4, true)]);
        gic
    }

    impl Gic {
        fn its_w(&mut self, off: u64, val: u64) {
            let its = self.g.its_mut().unwrap();
            assert!(its.write(off, if off == GITS_CTLR { 4 } else { 8 }, val, &self.v.ram));
        }
        fn send(&mut self, cmds: &[[u64; 4]]) {
            // Write the commands with the Vm helper's queue layout, then CWRITER here.
            for c in cmds {
                let at = (QUEUE - RAM + self.v.next) as usize;
                for (i, w) in c.iter().enumerate() {
                    self.v.ram.bytes[at + 8 * i..at + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
                }
                self.v.next = (self.v.next + 32) % 4096;
            }
            let n = self.v.next;
            self.its_w(GITS_CWRITER, n);
            assert_eq!(self.g.its().unwrap().stats.errors, 0);
        }
        fn flush(&mut self, vcpu: usize) -> CpuIfShadow {
            let mut sh = CpuIfShadow::default();
            self.g.flush(vcpu, &mut sh);
            sh
        }
    }

    fn lr(sh: &CpuIfShadow, n: usize) -> (u32, LrState) {
        (
            LrFormat::V3.vintid(sh.lrs[n]),
            LrFormat::V3.state(sh.lrs[n]),
        )
    }

    fn set(sh: &mut CpuIfShadow, n: usize, pending: bool, active: bool) {
        sh.lrs[n] = (sh.lrs[n] & !(3 << 62)) | (pending as u64) << 62 | (active as u64) << 63;
    }

    const PENDING: LrState = LrState {
        pending: true,
        active: false,
    };

    #[test]
    fn gicd_typer_and_gicr_typer_say_lpis_only_with_an_its() {
        let mut g = Vgic::new(&CFG);
        let typer = |g: &mut Vgic| g.gicd_access(0, 4, 4, None).value;
        assert_eq!(typer(&mut g) >> 17 & 1, 0, "LPIS");
        assert_eq!((typer(&mut g) >> 19 & 0x1f) + 1, 10, "IDbits");
        assert_eq!(g.gicr_access(0, 8, 4, None).value & 1, 0, "PLPIS");
        g.attach_its(ItsConfig::new(2));
        assert_eq!(typer(&mut g) >> 17 & 1, 1, "LPIS");
        assert_eq!((typer(&mut g) >> 19 & 0x1f) + 1, 16, "IDbits");
        assert_eq!(g.gicr_access(0, 8, 4, None).value & 1, 1, "PLPIS");
    }

    #[test]
    fn gicr_ctlr_enable_lpis_reads_back_and_ces_says_it_can_be_cleared() {
        let mut gic = gic();
        let ram = &gic.v.ram;
        let ctlr = |g: &mut Vgic, w| g.gicr_access_lpi(0, 0x2_0000, 4, w, ram);
        assert_eq!(ctlr(&mut gic.g, None).value, 0b11);
        ctlr(&mut gic.g, Some(0));
        assert_eq!(ctlr(&mut gic.g, None).value, 0b10);
        assert!(
            gic.g.its().unwrap().lpis_enabled(0),
            "only vCPU 1's frame changed"
        );
    }

    #[test]
    fn an_lpi_goes_into_a_list_register_as_group_1_at_its_property_priority() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 1), ev(cmd::INT, 8, 0)]);
        assert_eq!(gic.g.take_kicks(), 0, "vCPU 1 is not running: no kick");
        assert_eq!(gic.flush(0).used, 0);
        let sh = gic.flush(1);
        assert_eq!(lr(&sh, 0), (8192, PENDING));
        let raw = sh.lrs[0];
        assert_eq!(raw >> 60 & 1, 1, "Group 1");
        assert_eq!(raw >> 48 & 0xff, 0xa0, "priority from the property byte");
        assert_eq!(raw >> 61 & 1, 0, "never HW");
        assert!(
            !gic.g.its().unwrap().lpi(8192).unwrap().state.pending_latch,
            "the pending state moved into the LR"
        );
    }

    #[test]
    fn an_lpi_the_guest_did_not_take_goes_back_pending_at_fold() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
        let sh = gic.flush(0);
        gic.g.fold(0, &sh);
        assert!(gic.g.its().unwrap().lpi(8192).unwrap().state.pending_latch);
        assert_eq!(lr(&gic.flush(0), 0), (8192, PENDING));
    }

    #[test]
    fn an_acknowledged_lpi_stays_in_the_list_registers_until_the_guest_completes_it() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
        let mut sh = gic.flush(0);
        set(&mut sh, 0, false, true); // acknowledged
        gic.g.fold(0, &sh);
        // A new event meanwhile: active and pending, as any edge interrupt.
        gic.send(&[ev(cmd::INT, 8, 0)]);
        let mut sh = gic.flush(0);
        assert_eq!(lr(&sh, 0).0, 8192);
        assert!(
            lr(&sh, 0).1.active,
            "still active: the guest's EOI needs this LR"
        );
        set(&mut sh, 0, true, false); // completed; the new instance waits in the LR
        gic.g.fold(0, &sh);
        let mut sh = gic.flush(0);
        assert_eq!(lr(&sh, 0), (8192, PENDING));
        set(&mut sh, 0, false, false); // taken and completed
        gic.g.fold(0, &sh);
        assert_eq!(gic.flush(0).used, 0);
        assert_eq!(sh.hcr & hcr::EN, hcr::EN);
    }

    #[test]
    fn an_lpi_is_delivered_only_while_the_distributors_group_1_is_enabled() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
        gic.g.set_group_enables(false, false);
        assert_eq!(gic.flush(0).used, 0);
        gic.g.set_group_enables(false, true);
        assert_eq!(lr(&gic.flush(0), 0), (8192, PENDING));
    }

    #[test]
    fn clear_of_an_lpi_waiting_in_a_list_register_is_applied_at_the_fold() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
        let sh = gic.flush(0);
        gic.send(&[ev(cmd::CLEAR, 8, 0)]);
        assert_eq!(gic.g.take_kicks(), 1, "the vCPU holding it is kicked");
        gic.g.fold(0, &sh); // the LR still says pending
        assert_eq!(gic.flush(0).used, 0, "cleared");
    }

    #[test]
    fn movi_of_an_lpi_waiting_in_a_list_register_moves_it_at_the_fold() {
        let mut gic = gic();
        gic.send(&[mapti(8, 0, 8192, 0), ev(cmd::INT, 8, 0)]);
        let sh = gic.flush(0);
        gic.send(&[movi(8, 0, 1)]);
        assert_eq!(gic.g.take_kicks() & 1, 1, "the vCPU holding it is kicked");
        gic.g.fold(0, &sh);
        assert_eq!(gic.flush(0).used, 0);
        assert_eq!(lr(&gic.flush(1), 0), (8192, PENDING));
    }

    #[test]
    fn many_lpis_overflow_the_list_registers_and_all_are_delivered_once() {
        let mut gic = gic();
        let mut cmds = Vec::new();
        for e in 0..16 {
            cmds.push(mapti(8, e, 8192 + e, 0));
            cmds.push(ev(cmd::INT, 8, e));
        }
        gic.send(&cmds);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let mut sh = gic.flush(0);
            for n in 0..sh.used {
                seen.push(lr(&sh, n).0);
                set(&mut sh, n, false, false);
            }
            gic.g.fold(0, &sh);
        }
        seen.sort();
        assert_eq!(seen, (8192..8208).collect::<Vec<_>>());
    }
}

// The physical ITS driver's encodings (`gic::its`), replayed through the virtual ITS.
#[test]
/// The encodings, replayed through exitless's own virtual ITS: each does what it says.
fn the_physical_its_command_encodings_are_what_the_virtual_its_decodes() {
    use crate::gic::its::Command;
    use crate::mm::SliceRam;
    let mut ram = alloc::vec![0u8; 0x10_0000];
    let base = 0x4000_0000u64;
    let (queue, prop, pend) = (base, base + 0x1_0000, base + 0x2_0000);
    for b in &mut ram[0x1_0000..0x1_4000] {
        *b = 0xa3;
    }
    let cmds = [
        Command::Mapd {
            dev: 5,
            event_bits: 4,
            itt: 0x4008_0000,
            valid: true,
        },
        Command::Mapc {
            icid: 1,
            rdbase: 1,
            valid: true,
        },
        Command::Mapti {
            dev: 5,
            event: 3,
            intid: 8200,
            icid: 1,
        },
        Command::Inv { dev: 5, event: 3 },
        Command::Invall { icid: 1 },
        Command::Int { dev: 5, event: 3 },
        Command::Sync { rdbase: 1 },
    ];
    for (i, c) in cmds.iter().enumerate() {
        for (k, w) in c.encode().iter().enumerate() {
            let at = i * 32 + k * 8;
            ram[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    let mut its = Its::new(ItsConfig::new(2));
    let r = SliceRam { base, bytes: &ram };
    its.set_propbaser(0, prop | 13);
    for v in 0..2 {
        its.set_pendbaser(v, pend + v as u64 * 0x1_0000);
        its.set_lpis_enabled(v, true, &r);
    }
    its.write(
        GITS_BASER,
        8,
        crate::gic::its::baser::VALID | (base + 0x3_0000),
        &r,
    );
    its.write(
        GITS_BASER + 8,
        8,
        crate::gic::its::baser::VALID | (base + 0x4_0000),
        &r,
    );
    its.write(GITS_CBASER, 8, crate::gic::its::baser::VALID | queue, &r);
    its.write(GITS_CTLR, 4, 1, &r);
    its.write(GITS_CWRITER, 8, cmds.len() as u64 * 32, &r);
    assert_eq!(its.stats.errors, 0, "{:?}", its.stats.last_error);
    assert_eq!(
        its.deliverable_for(1)
            .map(|l| l.intid)
            .collect::<alloc::vec::Vec<_>>(),
        [8200]
    );
    // DISCARD, then MAPD V=0.
    let more = [
        Command::Discard { dev: 5, event: 3 },
        Command::Mapd {
            dev: 5,
            event_bits: 1,
            itt: 0,
            valid: false,
        },
    ];
    let mut ram2 = ram.clone();
    for (i, c) in more.iter().enumerate() {
        for (k, w) in c.encode().iter().enumerate() {
            let at = (cmds.len() + i) * 32 + k * 8;
            ram2[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    let r2 = SliceRam { base, bytes: &ram2 };
    its.write(GITS_CWRITER, 8, (cmds.len() + 2) as u64 * 32, &r2);
    assert_eq!(its.stats.errors, 0, "{:?}", its.stats.last_error);
    assert_eq!(its.usage().0, 0);
}
