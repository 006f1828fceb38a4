//! The hypervisor heap (buddy_system_allocator) and the physical memory it comes from.
//!
//! Free memory = the device tree's RAM banks minus every reservation (`/memreserve/`,
//! `/reserved-memory`, the DTB, the initrd) and the hypervisor image. The heap takes
//! [`HEAP_SIZE`] from the top of it; the rest stays in [`PHYS`] for guest memory, low memory
//! first (the Raspberry Pi's DMA masters only see the first GiB).
//!
//! The allocator counts: bytes in use and their high-water mark since the VMs started (a guest
//! must not make the heap grow), and allocations made while a CPU handles a vCPU's exit (the
//! exit path must make none: [`exit_path`], [`exit_path_allocs`]).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use buddy_system_allocator::LockedHeap;
use exitless_core::util::lock::Mutex;

use exitless_core::mm::region::RegionAllocator;
use exitless_core::mm::{ImageLayout, MemRange, PAGE_SIZE};
use exitless_core::platform::{MAX_CPUS, MAX_RESERVED, PlatformInfo};

/// Heap size: page tables, VM state, guest device trees. Guest RAM does not come from here.
pub const HEAP_SIZE: u64 = 32 << 20;

/// How much the heap may grow, at most, beyond what it held when the VMs started: nothing a
/// guest does allocates (a VM reset rebuilds its vGIC, freeing the old one), so this is slack
/// for the allocator's rounding, and a guest that could make exitless allocate would cross it.
pub const GROWTH_BOUND: usize = 64 << 10;

/// Set on a CPU while it handles a vCPU's exit ([`exit_path`]): an allocation then is counted in
/// [`EXIT_PATH_ALLOCS`] (the exit path must allocate nothing, issue 11).
static IN_EXIT_PATH: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Allocations made on the exit path, and the size of the first one (0: none).
static EXIT_PATH_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FIRST_EXIT_PATH_ALLOC: AtomicUsize = AtomicUsize::new(0);

/// Return addresses of the first exit-path allocation's callers, as offsets into the image
/// (`addr2line -e out/exitless.elf` reads them).
static FIRST_CALLERS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

unsafe extern "C" {
    static __image_start: u8;
}

/// Records the return addresses of the frames above the allocator (frame records: the image is
/// built with frame pointers).
fn record_callers() {
    let mut fp: usize;
    // SAFETY: reads the frame pointer register; no memory, no side effect.
    unsafe { core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack)) };
    let base = &raw const __image_start as usize;
    for slot in &FIRST_CALLERS {
        if fp == 0 || !fp.is_multiple_of(16) {
            break;
        }
        // SAFETY: with frame pointers forced (.cargo/config.toml), x29 points to a frame record
        // {caller's x29, return address} on this CPU's stack, which is mapped; the walk stops at
        // a null or misaligned link, at a link that does not go up the stack, and after 6 frames.
        let (next, ra) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        slot.store(ra.wrapping_sub(base), Ordering::Relaxed);
        if next <= fp {
            break;
        }
        fp = next;
    }
}

/// The callers [`record_callers`] saw for the first exit-path allocation (0: none).
pub fn first_exit_path_callers() -> [usize; 6] {
    core::array::from_fn(|i| FIRST_CALLERS[i].load(Ordering::Relaxed))
}

/// Marks the calling CPU as on (or off) the exit path: while it runs a vCPU's loop of exits and
/// entries (set once when the loop starts, cleared when the vCPU leaves the CPU: what runs at
/// EL2 in between is exit handling, the guest runs at EL1).
#[inline]
pub fn exit_path(on: bool) {
    if let Some(f) = IN_EXIT_PATH.get(crate::arch::cpu_index_el2()) {
        f.store(on, Ordering::Relaxed);
    }
}

/// Allocations made on the exit path so far, and the size in bytes of the first one.
pub fn exit_path_allocs() -> (usize, usize) {
    (
        EXIT_PATH_ALLOCS.load(Ordering::Relaxed),
        FIRST_EXIT_PATH_ALLOC.load(Ordering::Relaxed),
    )
}

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
        if IN_EXIT_PATH
            .get(crate::arch::cpu_index())
            .is_some_and(|f| f.load(Ordering::Relaxed))
            && EXIT_PATH_ALLOCS.fetch_add(1, Ordering::Relaxed) == 0
        {
            FIRST_EXIT_PATH_ALLOC.store(layout.size(), Ordering::Relaxed);
            record_callers();
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
