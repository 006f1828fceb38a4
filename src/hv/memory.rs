//! Guest memory: RAM carved from the host's free memory, the VM's stage-2 tables (built by the
//! pure `mm::pgtable` builder into heap frames), and loading the images and the device tree into
//! guest RAM.

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::vec::Vec;

use crate::arch::cache;
use crate::machine::heap::PHYS;
use exitless_core::mm::pgtable::{self, Attrs, FrameAlloc, MapError, PageTable, Regime};
use exitless_core::mm::{GuestRam, MemRange, PAGE_SIZE};

/// Alignment of guest RAM in host memory (2 MiB: stage-2 block mappings).
const RAM_ALIGN: u64 = 2 << 20;

/// One VM's stage-2 table frames, from the heap. It remembers every run of frames it
/// allocated and hands out a table only inside them, so [`FrameAlloc::table`] cannot make a
/// reference to memory it does not own, whatever address it is given. Frames are never freed
/// (a VM lives as long as the hypervisor).
#[derive(Default)]
pub struct HeapFrames {
    /// The runs allocated so far: (first byte, end) in physical (= EL2 virtual) addresses.
    runs: Vec<(u64, u64)>,
}

impl FrameAlloc for HeapFrames {
    fn alloc_frames(&mut self, count: usize) -> Option<u64> {
        let size = count.checked_mul(PAGE_SIZE as usize).filter(|&s| s > 0)?;
        let layout = Layout::from_size_align(size, size).ok()?;
        self.runs.try_reserve(1).ok()?;
        // SAFETY: `layout` has a non-zero size (checked above); the result is checked for null.
        let p = unsafe { alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        self.runs.push((p as u64, p as u64 + size as u64));
        Some(p as u64)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        let owned = pa.is_multiple_of(PAGE_SIZE)
            && self
                .runs
                .iter()
                .any(|&(start, end)| pa >= start && pa < end);
        // The page-table builder only walks tables it allocated here: anything else is a bug in
        // exitless, not something a guest can cause.
        assert!(
            owned,
            "stage-2 table at {pa:#x} was not allocated by this VM's frames"
        );
        // SAFETY: `pa` is a 4 KiB-aligned frame inside a run this allocator took from the heap
        // (checked above) and never frees; exitless maps memory identity, so the address is a
        // valid pointer to 512 descriptors, and the returned borrow of `&mut self` keeps a second
        // reference from being made while this one lives.
        unsafe { &mut *(pa as *mut [u64; 512]) }
    }
}

/// `size` bytes of host RAM for a guest, 2 MiB aligned, below `limit` if given.
fn alloc_ram(size: u64, limit: Option<u64>) -> Result<MemRange, MemError> {
    PHYS.lock()
        .as_mut()
        .and_then(|p| match limit {
            Some(l) => p.alloc_below(size, RAM_ALIGN, l),
            None => p.alloc(size, RAM_ALIGN),
        })
        .ok_or(MemError::NoMemory(size))
}

/// A VM's memory: where its RAM is in host memory, and its stage-2 tables.
pub struct GuestMemory {
    /// Guest RAM in the IPA space.
    pub ipa: MemRange,
    /// The same RAM in host physical memory.
    pub pa: MemRange,
    /// Stage-2 tables.
    pub stage2: PageTable,
    /// The frames the stage-2 tables live in.
    frames: HeapFrames,
}

/// Why guest memory could not be set up.
#[derive(Debug)]
pub enum MemError {
    /// Not enough free host memory.
    NoMemory(u64),
    /// The stage-2 tables could not be built.
    Map(MapError),
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::NoMemory(size) => {
                write!(
                    f,
                    "no {} MiB of free host memory left for its RAM",
                    size >> 20
                )
            }
            MemError::Map(e) => write!(f, "stage-2 tables: {e}"),
        }
    }
}

impl GuestMemory {
    /// Allocates `ram` (IPA range) from host memory, below `limit` if given (DMA reach of
    /// passed-through devices), and maps it RWX in a new stage-2 table with an IPA space of
    /// `ipa_bits`.
    pub fn new(ram: MemRange, ipa_bits: u8, limit: Option<u64>) -> Result<Self, MemError> {
        let pa = alloc_ram(ram.size(), limit)?;
        Self::map(ram, pa, ipa_bits)
    }

    /// Allocates `size` bytes of RAM from host memory, below `limit` if given, and maps it at
    /// the same addresses in the IPA space (IPA == PA: `identity_ram`), so that a device
    /// passed through without an IOMMU reaches the addresses the guest gives it.
    pub fn new_identity(size: u64, ipa_bits: u8, limit: Option<u64>) -> Result<Self, MemError> {
        let pa = alloc_ram(size, limit)?;
        Self::map(pa, pa, ipa_bits)
    }

    fn map(ram: MemRange, pa: MemRange, ipa_bits: u8) -> Result<Self, MemError> {
        let mut frames = HeapFrames::default();
        let mut stage2 =
            PageTable::new(&mut frames, Regime::Stage2, ipa_bits).map_err(MemError::Map)?;
        stage2
            .map(&mut frames, ram.start, pa.start, ram.size(), Attrs::RWX_RAM)
            .map_err(MemError::Map)?;
        Ok(GuestMemory {
            ipa: ram,
            pa,
            stage2,
            frames,
        })
    }

    /// Maps a device frame (`ipa` -> `pa`) into the guest, read-write, never executable.
    pub fn map_device(&mut self, ipa: u64, pa: u64, size: u64) -> Result<(), MemError> {
        self.stage2
            .map(&mut self.frames, ipa, pa, size, Attrs::DEVICE_RW)
            .map_err(MemError::Map)
    }

    /// Copies `data` to guest IPA `at` (inside guest RAM) and cleans it to the point of
    /// coherency: the guest starts with its MMU and caches off and reads memory directly.
    pub fn load(&self, at: u64, data: &[u8]) -> bool {
        let Some(dst) = self.host_addr(at, data.len() as u64) else {
            return false;
        };
        // SAFETY: `dst..dst + len` lies inside this VM's RAM (checked by `host_addr`), which was
        // taken from the free-memory allocator for this VM alone and is mapped read-write at
        // EL2; `data` is host memory outside it (the bundle or the heap).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        cache::clean_invalidate(dst, data.len() as u64);
        true
    }

    /// The host address of `len` bytes at guest IPA `ipa`, if they lie in guest RAM.
    pub fn host_addr(&self, ipa: u64, len: u64) -> Option<u64> {
        let end = ipa.checked_add(len)?;
        (ipa >= self.ipa.start && end <= self.ipa.end)
            .then(|| self.pa.start + (ipa - self.ipa.start))
    }
}

/// Where a VM's RAM is, in its IPA space and in host memory: fixed for the VM's life, so it
/// reads guest RAM without taking the memory lock (an exit reads the ITS's tables under the
/// vGIC lock, which the lock order puts before the memory lock).
#[derive(Debug, Clone, Copy)]
pub struct RamWindow {
    ipa: MemRange,
    pa: MemRange,
}

impl GuestRam for RamWindow {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        let Some(end) = ipa.checked_add(buf.len() as u64) else {
            return false;
        };
        if ipa < self.ipa.start || end > self.ipa.end {
            return false;
        }
        let src = self.pa.start + (ipa - self.ipa.start);
        // SAFETY: `src..src + len` lies inside this VM's RAM (checked above against its IPA
        // range, which maps 1:1 onto `pa`), taken from the free-memory allocator for this VM
        // and mapped at EL2 for as long as the VM exists; `buf` is hypervisor memory outside
        // it. The guest may change these bytes meanwhile: they are plain data, copied as is.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

impl GuestMemory {
    /// The VM's RAM as a lock-free reader.
    pub fn window(&self) -> RamWindow {
        RamWindow {
            ipa: self.ipa,
            pa: self.pa,
        }
    }
}

/// VTCR_EL2 and the IPA size for this CPU: 40 bits (3-level stage-2 tables, as KVM's default) or
/// less if the CPU's physical address size is smaller.
pub fn stage2_params() -> (u64, u8) {
    let parange = crate::arch::mmu::parange();
    let pa_bits = pgtable::pa_bits_from_parange(parange).unwrap_or(40);
    let ipa_bits = pa_bits.min(40);
    let vtcr = pgtable::vtcr_el2(parange, ipa_bits).unwrap_or(0);
    (vtcr, ipa_bits)
}
