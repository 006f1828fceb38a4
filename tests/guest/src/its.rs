//! A small ITS driver for the conformance cases (GICv3 IHI 0069H 5.2-5.3, 12.19): the tables in
//! the guest's own memory, the command queue, the LPI property and pending tables of every
//! redistributor, and the commands as functions. It drives QEMU's ITS natively and exitless's
//! vITS alike, and assumes nothing the architecture leaves open: entry sizes and page sizes are
//! read from GITS_BASER<n>, the redistributor's processor number from GICR_TYPER (PTA = 0).
//!
//! Every LPI a case uses is fresh ([`Its::lpi`]): no LPI number is used twice in a run, so that
//! a pending bit a case leaves behind can never be mistaken for another case's interrupt.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use crate::dt::MAX_CPUS;
use crate::gic::{GICR_TYPER, Gic};
use crate::hw::{self, read32, read64, write32, write64};

pub const GITS_CTLR: usize = 0x0000;
pub const GITS_TYPER: usize = 0x0008;
pub const GITS_CBASER: usize = 0x0080;
pub const GITS_CWRITER: usize = 0x0088;
pub const GITS_CREADR: usize = 0x0090;
pub const GITS_BASER: usize = 0x0100;
pub const GITS_PIDR2: usize = 0xffe8;
pub const GICR_CTLR: usize = 0x0000;
pub const GICR_PROPBASER: usize = 0x0070;
pub const GICR_PENDBASER: usize = 0x0078;

/// LPI ID bits the property table covers: INTIDs below 2^14, LPIs 8192..16383.
const ID_BITS: u64 = 14;
pub const LPI_BASE: u32 = 8192;
const LPI_COUNT: usize = 1 << (ID_BITS - 1);
/// Property byte: priority 0xa0, bit 1 RES1 (Linux writes it), enabled.
pub const PROP_ON: u8 = 0xa0 | 0b10 | 1;
/// The same, disabled.
pub const PROP_OFF: u8 = 0xa0 | 0b10;

const VALID: u64 = 1 << 63;
/// Devices the cases use: DeviceIDs 1..=DEVICES (never 0: a CPU's GITS_TRANSLATER write is
/// DeviceID 0 on QEMU).
pub const DEVICES: usize = 6;
/// EventID bits of the small devices (MAPD Size + 1): 32 events.
pub const EVENT_BITS: u32 = 5;
/// The device whose EventIDs reach the LPI range (for MAPI): 14 EventID bits.
pub const BIG_DEVICE: u32 = DEVICES as u32 + 1;

#[repr(C, align(65536))]
struct Pend([[u8; 65536]; MAX_CPUS]);
#[repr(C, align(4096))]
struct Page<const N: usize>([u8; N]);
#[repr(C, align(4096))]
struct Itts([[u8; 4096]; DEVICES]);

static mut PEND: Pend = Pend([[0; 65536]; MAX_CPUS]);
static mut PROP: Page<LPI_COUNT> = Page([0; LPI_COUNT]);
static mut CMDQ: Page<4096> = Page([0; 4096]);
static mut DEVT: Page<4096> = Page([0; 4096]);
static mut COLLT: Page<4096> = Page([0; 4096]);
static mut ITT: Itts = Itts([[0; 4096]; DEVICES]);
/// 2^14 events of at most 16 bytes.
static mut BIG_ITT: Page<{ 16 << 14 }> = Page([0; 16 << 14]);

pub struct Its {
    pub base: usize,
    /// GITS_CWRITER as the driver last wrote it.
    next: AtomicUsize,
    /// The next fresh LPI.
    next_lpi: AtomicU32,
    /// Commands that did not complete (GITS_CREADR never reached GITS_CWRITER).
    pub stuck: AtomicU32,
}

pub fn cmd(op: u8, dev: u32, dw1: u64, dw2: u64, dw3: u64) -> [u64; 4] {
    [op as u64 | (dev as u64) << 32, dw1, dw2, dw3]
}
pub fn mapd(dev: u32, bits: u32, itt: u64, valid: bool) -> [u64; 4] {
    cmd(0x08, dev, (bits - 1) as u64, itt | (valid as u64) << 63, 0)
}
pub fn mapc(icid: u32, rd: u64, valid: bool) -> [u64; 4] {
    cmd(0x09, 0, 0, icid as u64 | rd << 16 | (valid as u64) << 63, 0)
}
pub fn mapti(dev: u32, ev: u32, lpi: u32, icid: u32) -> [u64; 4] {
    cmd(0x0a, dev, ev as u64 | (lpi as u64) << 32, icid as u64, 0)
}
pub fn mapi(dev: u32, ev: u32, icid: u32) -> [u64; 4] {
    cmd(0x0b, dev, ev as u64, icid as u64, 0)
}
pub fn int(dev: u32, ev: u32) -> [u64; 4] {
    cmd(0x03, dev, ev as u64, 0, 0)
}
pub fn clear(dev: u32, ev: u32) -> [u64; 4] {
    cmd(0x04, dev, ev as u64, 0, 0)
}
pub fn discard(dev: u32, ev: u32) -> [u64; 4] {
    cmd(0x0f, dev, ev as u64, 0, 0)
}
pub fn inv(dev: u32, ev: u32) -> [u64; 4] {
    cmd(0x0c, dev, ev as u64, 0, 0)
}
pub fn invall(icid: u32) -> [u64; 4] {
    cmd(0x0d, 0, 0, icid as u64, 0)
}
pub fn movi(dev: u32, ev: u32, icid: u32) -> [u64; 4] {
    cmd(0x01, dev, ev as u64, icid as u64, 0)
}
pub fn movall(rd1: u64, rd2: u64) -> [u64; 4] {
    cmd(0x0e, 0, 0, rd1 << 16, rd2 << 16)
}
pub fn sync(rd: u64) -> [u64; 4] {
    cmd(0x05, 0, 0, rd << 16, 0)
}

impl Its {
    /// Sets up the ITS at `base` and LPIs on every redistributor of `g`; `Err` says what the
    /// hardware lacks.
    pub fn new(base: usize, g: &Gic) -> Result<Its, &'static str> {
        if read64(base + GITS_TYPER) & 1 == 0 {
            return Err("GITS_TYPER.Physical = 0");
        }
        let its = Its {
            base,
            next: AtomicUsize::new(0),
            next_lpi: AtomicU32::new(LPI_BASE),
            stuck: AtomicU32::new(0),
        };
        write32(base + GITS_CTLR, 0);
        hw::wait_until(hw::us(100_000), || {
            read32(base + GITS_CTLR) & (1 << 31) != 0
        });
        for n in 0..8 {
            let a = base + GITS_BASER + 8 * n;
            let b = read64(a);
            let ty = b >> 56 & 7;
            let table = match ty {
                1 => core::ptr::addr_of!(DEVT) as u64,
                4 => core::ptr::addr_of!(COLLT) as u64,
                _ => continue,
            };
            // One flat 4 KiB page (Page_Size 0b00, Size 0), the entry size as the ITS says.
            let keep = b & (0x7 << 56 | 0x1f << 48);
            write64(a, VALID | keep | table);
        }
        write64(base + GITS_CBASER, VALID | core::ptr::addr_of!(CMDQ) as u64);
        write64(base + GITS_CWRITER, 0);
        write32(base + GITS_CTLR, 1);
        if read32(base + GITS_CTLR) & 1 == 0 {
            return Err("GITS_CTLR.Enabled does not stick");
        }
        for c in 0..g.cpu_count {
            let rd = g.gicr[c];
            write32(rd + GICR_CTLR, 0);
            write64(
                rd + GICR_PROPBASER,
                core::ptr::addr_of!(PROP) as u64 | (ID_BITS - 1),
            );
            write64(rd + GICR_PENDBASER, its.pend_table(c));
            write32(rd + GICR_CTLR, 1);
        }
        Ok(its)
    }

    fn pend_table(&self, c: usize) -> u64 {
        // SAFETY: only the address is taken.
        unsafe { core::ptr::addr_of!(PEND.0[c]) as u64 }
    }

    /// The redistributor of CPU `c` as a command's RDbase (GICR_TYPER.Processor_Number).
    pub fn rd(&self, g: &Gic, c: usize) -> u64 {
        read64(g.gicr[c] + GICR_TYPER) >> 8 & 0xffff
    }

    /// Queues `cmds` and waits until the ITS has taken them all (GITS_CREADR).
    pub fn send(&self, cmds: &[[u64; 4]]) -> bool {
        let q = core::ptr::addr_of!(CMDQ) as usize;
        let mut next = self.next.load(SeqCst);
        for c in cmds {
            for (i, w) in c.iter().enumerate() {
                write64(q + next + 8 * i, *w);
            }
            next = (next + 32) % 4096;
        }
        hw::dsb();
        self.next.store(next, SeqCst);
        write64(self.base + GITS_CWRITER, next as u64);
        let done = hw::wait_until(hw::us(1_000_000), || {
            read64(self.base + GITS_CREADR) as usize & 0xf_ffe0 == next
        });
        if !done {
            self.stuck.fetch_add(1, SeqCst);
        }
        done
    }

    /// A fresh LPI with `prop` in the property table (written before any command maps it).
    pub fn lpi(&self, prop: u8) -> u32 {
        let l = self.next_lpi.fetch_add(1, SeqCst);
        self.set_prop(l, prop);
        l
    }

    /// Writes an LPI's property byte (a command makes the ITS read it: INV, INVALL, MAPTI).
    pub fn set_prop(&self, lpi: u32, prop: u8) {
        let i = (lpi - LPI_BASE) as usize % LPI_COUNT;
        // SAFETY: `i` is inside the table; the ITS only reads it.
        unsafe { core::ptr::addr_of_mut!(PROP.0[i]).write_volatile(prop) };
        hw::dsb();
    }

    /// Sets an LPI's bit in CPU `c`'s pending table (only while that CPU's LPIs are off).
    pub fn set_pending_bit(&self, c: usize, lpi: u32, on: bool) {
        let p = self.pend_table(c) as usize + lpi as usize / 8;
        let b = hw::read8(p);
        let m = 1 << (lpi % 8);
        hw::write8(p, if on { b | m } else { b & !m });
        hw::dsb();
    }

    /// GICR_CTLR.EnableLPIs of CPU `c`.
    pub fn set_lpis(&self, g: &Gic, c: usize, on: bool) {
        write32(g.gicr[c] + GICR_CTLR, on as u32);
        hw::wait_until(hw::us(100_000), || {
            read32(g.gicr[c] + GICR_CTLR) & (1 << 3) == 0
        });
    }

    /// The ITT address of device `dev` (1..=DEVICES, or BIG_DEVICE), zeroed for a new MAPD.
    pub fn itt(&self, dev: u32) -> u64 {
        // SAFETY: plain statics of this driver; nothing reads an ITT the ITS does not own.
        unsafe {
            if dev == BIG_DEVICE {
                core::ptr::addr_of_mut!(BIG_ITT.0).write_bytes(0, 1);
                core::ptr::addr_of!(BIG_ITT) as u64
            } else {
                let p = core::ptr::addr_of_mut!(ITT.0[dev as usize - 1]);
                p.write_bytes(0, 1);
                p as u64
            }
        }
    }

    /// The state every ITS case starts from: every device unmapped, ICID c -> CPU c for every
    /// CPU, ICIDs beyond unmapped, every LPI used so far disabled in the property table.
    pub fn fresh(&self, g: &Gic) -> bool {
        let mut cmds = [[0u64; 4]; 2 * MAX_CPUS + DEVICES + 2];
        let mut n = 0;
        for d in 1..=BIG_DEVICE {
            cmds[n] = mapd(d, 1, 0, false);
            n += 1;
        }
        for c in 0..MAX_CPUS {
            cmds[n] = if c < g.cpu_count {
                mapc(c as u32, self.rd(g, c), true)
            } else {
                mapc(c as u32, 0, false)
            };
            n += 1;
        }
        cmds[n] = sync(self.rd(g, 0));
        n += 1;
        for l in LPI_BASE..self.next_lpi.load(SeqCst) {
            self.set_prop(l, PROP_OFF);
        }
        self.send(&cmds[..n])
    }
}
