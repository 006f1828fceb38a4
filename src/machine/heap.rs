//! The hypervisor heap (buddy_system_allocator) and the physical memory it comes from.
//!
//! Free memory = the device tree's RAM banks minus every reservation (`/memreserve/`,
//! `/reserved-memory`, the DTB, the initrd) and the hypervisor image. The heap takes
//! [`HEAP_SIZE`] from the top of it; the rest stays in [`PHYS`] for guest memory, low memory
//! first (the Raspberry Pi's DMA masters only see the first GiB).

use buddy_system_allocator::LockedHeap;
use spin::Mutex;

use exitless_core::mm::region::RegionAllocator;
use exitless_core::mm::{ImageLayout, MemRange, PAGE_SIZE};
use exitless_core::platform::{MAX_RESERVED, PlatformInfo};

/// Heap size: page tables, VM state, guest device trees. Guest RAM does not come from here.
pub const HEAP_SIZE: u64 = 32 << 20;

#[global_allocator]
static HEAP: LockedHeap<33> = LockedHeap::empty();

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
    unsafe { HEAP.lock().init(heap.start as usize, heap.size() as usize) };
    *PHYS.lock() = Some(phys);
    Ok(heap)
}
