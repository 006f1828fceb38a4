//! Guest memory: RAM carved from the host's free memory, the VM's stage-2 tables (built by the
//! pure `mm::pgtable` builder into heap frames), and loading the images and the device tree into
//! guest RAM.

use alloc::alloc::{Layout, alloc_zeroed};

use crate::arch::cache;
use crate::machine::heap::PHYS;
use exitless_core::mm::pgtable::{self, Attrs, FrameAlloc, MapError, PageTable, Regime};
use exitless_core::mm::{MemRange, PAGE_SIZE};

/// Alignment of guest RAM in host memory (2 MiB: stage-2 block mappings).
const RAM_ALIGN: u64 = 2 << 20;

/// Stage-2 table frames from the heap. Frames are never freed (a VM lives as long as the
/// hypervisor).
pub struct HeapFrames;

impl FrameAlloc for HeapFrames {
    fn alloc_frames(&mut self, count: usize) -> Option<u64> {
        let size = count.checked_mul(PAGE_SIZE as usize)?;
        let layout = Layout::from_size_align(size, size).ok()?;
        // SAFETY: `layout` has a non-zero size; the result is checked for null.
        let p = unsafe { alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        // SAFETY: `pa` is a frame this allocator returned from the heap (or a frame inside such
        // an allocation), 4 KiB aligned, never freed, and exitless maps memory identity, so the
        // physical address is a valid pointer to 512 descriptors. The page-table builder is the
        // only user and holds `&mut self` for the lifetime of the reference.
        unsafe { &mut *(pa as *mut [u64; 512]) }
    }
}

/// A VM's memory: where its RAM is in host memory, and its stage-2 tables.
pub struct GuestMemory {
    /// Guest RAM in the IPA space.
    pub ipa: MemRange,
    /// The same RAM in host physical memory.
    pub pa: MemRange,
    /// Stage-2 tables.
    pub stage2: PageTable,
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
        let pa = PHYS
            .lock()
            .as_mut()
            .and_then(|p| match limit {
                Some(l) => p.alloc_below(ram.size(), RAM_ALIGN, l),
                None => p.alloc(ram.size(), RAM_ALIGN),
            })
            .ok_or(MemError::NoMemory(ram.size()))?;
        let mut stage2 =
            PageTable::new(&mut HeapFrames, Regime::Stage2, ipa_bits).map_err(MemError::Map)?;
        stage2
            .map(
                &mut HeapFrames,
                ram.start,
                pa.start,
                ram.size(),
                Attrs::RWX_RAM,
            )
            .map_err(MemError::Map)?;
        Ok(GuestMemory {
            ipa: ram,
            pa,
            stage2,
        })
    }

    /// Maps a device frame (`ipa` -> `pa`) into the guest, read-write, never executable.
    pub fn map_device(&mut self, ipa: u64, pa: u64, size: u64) -> Result<(), MemError> {
        self.stage2
            .map(&mut HeapFrames, ipa, pa, size, Attrs::DEVICE_RW)
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

/// VTCR_EL2 and the IPA size for this CPU: 40 bits (3-level stage-2 tables, as KVM's default) or
/// less if the CPU's physical address size is smaller.
pub fn stage2_params() -> (u64, u8) {
    let parange = crate::arch::mmu::parange();
    let pa_bits = pgtable::pa_bits_from_parange(parange).unwrap_or(40);
    let ipa_bits = pa_bits.min(40);
    let vtcr = pgtable::vtcr_el2(parange, ipa_bits).unwrap_or(0);
    (vtcr, ipa_bits)
}
