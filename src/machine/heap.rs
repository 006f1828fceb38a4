//! The hypervisor heap (buddy_system_allocator) and the physical memory it comes from.
//!
//! Free memory = the device tree's RAM banks minus every reservation (`/memreserve/`,
//! `/reserved-memory`, the DTB, the initrd) and the hypervisor image. The heap takes
//! [`HEAP_SIZE`] from the top of it; the rest stays in [`PHYS`] for guest memory, low memory
//! first (the Raspberry Pi's DMA masters only see the first GiB).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use buddy_system_allocator::LockedHeap;
use spin::Mutex;

use exitless_core::mm::region::RegionAllocator;
use exitless_core::mm::{ImageLayout, MemRange, PAGE_SIZE};
use exitless_core::platform::{MAX_RESERVED, PlatformInfo};

/// Heap size: page tables, VM state, guest device trees. Guest RAM does not come from here.
pub const HEAP_SIZE: u64 = 32 << 20;

/// How much the heap may grow, at most, beyond what it held when the VMs started: nothing a
/// guest does allocates (a VM reset rebuilds its vGIC, freeing the old one), so this is slack
/// for the allocator's rounding, and a guest that could make exitless allocate would cross it.
pub const GROWTH_BOUND: usize = 64 << 10;

/// The buddy heap, with the bytes in use and their high-water mark counted.
struct CountingHeap {
    heap: LockedHeap<33>,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: every call is forwarded unchanged to the buddy allocator, which upholds the
// GlobalAlloc contract; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (non-zero size).
        let p = unsafe { self.heap.alloc(layout) };
        if !p.is_null() {
            let now = self.in_use.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees (`ptr` came from `alloc` with `layout`).
        unsafe { self.heap.dealloc(ptr, layout) };
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    heap: LockedHeap::empty(),
    in_use: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

/// Bytes in use when the VMs started ([`mark_started`]).
static AT_START: AtomicUsize = AtomicUsize::new(0);

/// Records what the heap holds now that every VM is built, and restarts the high-water mark
/// from there.
pub fn mark_started() {
    let now = HEAP.in_use.load(Ordering::Relaxed);
    AT_START.store(now, Ordering::Relaxed);
    HEAP.peak.store(now, Ordering::Relaxed);
}

/// The heap's use since the VMs started: (bytes at start, high-water mark since).
pub fn usage() -> (usize, usize) {
    (
        AT_START.load(Ordering::Relaxed),
        HEAP.peak.load(Ordering::Relaxed),
    )
}

/// True if the heap's or the physical-memory allocator's lock is held (the fatal-error policy
/// asks: a CPU that died holding one would hang every other CPU).
pub fn lock_held() -> bool {
    HEAP.heap.is_locked() || PHYS.is_locked()
}

/// Physical memory not used by the hypervisor, for guests.
pub static PHYS: Mutex<Option<RegionAllocator>> = Mutex::new(None);

/// Sets up the heap; returns its range.
pub fn init(info: &PlatformInfo<'_>, image: &ImageLayout) -> Result<MemRange, &'static str> {
    let mut reserved = heapless::Vec::<MemRange, { MAX_RESERVED + 1 }>::new();
    for r in &info.reserved {
        let _ = reserved.push(r.range);
    }
    let _ = reserved.push(MemRange {
        start: image.start,
        end: image.end,
    });
    let mut phys = RegionAllocator::new(&info.memory, &reserved)
        .map_err(|_| "cannot compute free memory from the device tree")?;
    let size = HEAP_SIZE.min(phys.total_free() / 2 / PAGE_SIZE * PAGE_SIZE);
    let heap = phys
        .alloc_high(size, PAGE_SIZE)
        .ok_or("no free memory for the heap")?;
    // SAFETY: `heap` is free RAM (inside a device-tree bank, outside every reservation and the
    // image), mapped read-write by the EL2 tables, and now removed from the allocator so
    // nothing else will use it.
    unsafe {
        HEAP.heap
            .lock()
            .init(heap.start as usize, heap.size() as usize)
    };
    *PHYS.lock() = Some(phys);
    Ok(heap)
}
