//! Just enough PCI for the conformance cases: configuration space through the bridge's ECAM
//! (PCIe base spec 7.2.2: bus << 20 | device << 15 | function << 12), finding a function by
//! vendor and device ID, sizing and placing its BAR0 in the bridge's 32-bit window, and its MSI
//! capability (PCI local bus spec 6.8.1).

use crate::hw::{read32, write32};

/// A function on bus 0.
#[derive(Clone, Copy)]
pub struct Func {
    ecam: usize,
    pub dev: u32,
    pub func: u32,
}

impl Func {
    fn cfg(&self, off: usize) -> usize {
        self.ecam + ((self.dev as usize) << 15 | (self.func as usize) << 12 | off)
    }
    pub fn read(&self, off: usize) -> u32 {
        read32(self.cfg(off))
    }
    pub fn write(&self, off: usize, v: u32) {
        write32(self.cfg(off), v)
    }
    /// The requester ID (bus 0): the DeviceID its MSIs carry to the ITS.
    pub fn rid(&self) -> u32 {
        self.dev << 3 | self.func
    }

    /// Places BAR0 (32-bit memory) at `at` (aligned to its size) and enables memory decoding and
    /// bus mastering (an MSI is a memory write the function makes). Returns the BAR's address.
    pub fn enable_bar0(&self, at: usize) -> usize {
        self.write(0x10, 0xffff_ffff);
        let size = (!(self.read(0x10) & !0xf)).wrapping_add(1) as usize;
        let base = at.next_multiple_of(size.max(16));
        self.write(0x10, base as u32);
        self.write(0x04, self.read(0x04) | 0b110);
        base
    }

    /// The offset of capability `id` in configuration space, if the function lists it.
    pub fn capability(&self, id: u8) -> Option<usize> {
        if self.read(0x04) >> 16 & (1 << 4) == 0 {
            return None;
        }
        let mut at = (self.read(0x34) & 0xfc) as usize;
        for _ in 0..48 {
            if at == 0 {
                return None;
            }
            let h = self.read(at);
            if h as u8 == id {
                return Some(at);
            }
            at = (h >> 8 & 0xfc) as usize;
        }
        None
    }

    /// Programs and enables the MSI capability: writes of `data` to `addr`.
    pub fn enable_msi(&self, addr: u64, data: u16) -> bool {
        let Some(c) = self.capability(5) else {
            return false;
        };
        let ctl = self.read(c) >> 16;
        self.write(c + 4, addr as u32);
        if ctl & (1 << 7) != 0 {
            self.write(c + 8, (addr >> 32) as u32);
            self.write(c + 12, data as u32);
        } else {
            self.write(c + 8, data as u32);
        }
        // Enable, one vector (Multiple Message Enable = 0).
        let ctl = (ctl & !(0x7 << 4)) | 1;
        self.write(c, (self.read(c) & 0xffff) | ctl << 16);
        true
    }
}

/// The first function on bus 0 with `vendor` and `device`.
pub fn find(ecam: usize, vendor: u16, device: u16) -> Option<Func> {
    let want = (device as u32) << 16 | vendor as u32;
    for dev in 0..32 {
        let f = Func { ecam, dev, func: 0 };
        if f.read(0) == want {
            return Some(f);
        }
    }
    None
}
