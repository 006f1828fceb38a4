//! The hypervisor's own EL2 stage-1 translation (non-VHE, TTBR0_EL2 only): an identity map
//! (VA = PA) built by the pure [`exitless_core::mm::pgtable`] builder into a static pool of table frames.
//!
//! What is mapped: every RAM bank as Normal write-back, read-write, never executable; the
//! image's text read-only and executable, its rodata read-only; the DTB and initrd read-only;
//! the devices the device tree names (UART, GIC frames, ITS, PM block) as Device-nGnRE. Nothing
//! else: a stray pointer faults instead of reaching a device. SCTLR_EL2.WXN makes any writable
//! page non-executable.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL2, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable,
};
use exitless_core::util::lock::Mutex;
use spin::Once;

use super::cache;
use exitless_core::mm::ImageLayout;
use exitless_core::mm::pgtable::{self, Attrs, FrameAlloc, MapError, PageTable, Regime};
use exitless_core::mm::{MemRange, PAGE_SIZE, align_down, align_up};
use exitless_core::platform::{GicInfo, PlatformInfo};

/// Table frames for the EL2 map (it needs about ten on QEMU virt and the Raspberry Pi 4).
const POOL_FRAMES: usize = 64;

#[repr(C, align(4096))]
struct Frame([u64; 512]);

/// A fixed pool of page-aligned table frames inside the image (.bss), handed out in order.
struct FramePool {
    frames: [Frame; POOL_FRAMES],
    used: usize,
}

impl FramePool {
    fn base(&self) -> u64 {
        self.frames.as_ptr() as u64
    }
}

impl FrameAlloc for FramePool {
    fn alloc_frames(&mut self, count: usize) -> Option<u64> {
        // Naturally aligned runs: round the first frame up to a multiple of `count` (relative
        // to a pool whose base is page aligned; counts above 1 are only used by stage 2).
        let first = self.used.next_multiple_of(count.max(1));
        if first + count > POOL_FRAMES || !self.base().is_multiple_of(count as u64 * PAGE_SIZE) {
            return None;
        }
        for f in &mut self.frames[first..first + count] {
            f.0 = [0; 512];
        }
        self.used = first + count;
        Some(self.base() + first as u64 * PAGE_SIZE)
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        let index = ((pa - self.base()) / PAGE_SIZE) as usize;
        &mut self.frames[index].0
    }
}

/// True if the page-table frame pool's lock is held (for the fatal-error policy).
pub fn pool_lock_held() -> bool {
    POOL.is_locked()
}

static POOL: Mutex<FramePool> = Mutex::new(FramePool {
    frames: [const { Frame([0; 512]) }; POOL_FRAMES],
    used: 0,
});

/// The register values that turn this translation on, for the boot CPU and the secondaries.
#[derive(Debug, Clone, Copy)]
pub struct MmuRegisters {
    /// MAIR_EL2.
    pub mair: u64,
    /// TCR_EL2.
    pub tcr: u64,
    /// TTBR0_EL2.
    pub ttbr0: u64,
    /// SCTLR_EL2 with the MMU, caches, stack alignment check and WXN on.
    pub sctlr: u64,
}

static REGISTERS: Once<MmuRegisters> = Once::new();
static SUMMARY: Once<(u8, u8, usize)> = Once::new();

/// SCTLR_EL2 RES1 bits (non-VHE) plus M, C, SA, I and WXN.
const SCTLR_EL2_VALUE: u64 = 0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);

fn page_range(r: MemRange) -> (u64, u64) {
    let start = align_down(r.start, PAGE_SIZE);
    let end = align_up(r.end, PAGE_SIZE).unwrap_or(!(PAGE_SIZE - 1));
    (start, end - start)
}

/// ID_AA64MMFR0_EL1.PARange: the CPU's physical address size.
pub fn parange() -> u8 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) as u8
}

/// Builds the EL2 identity map for `info` and `image`. MMU still off afterwards.
pub fn init(info: &PlatformInfo<'_>, image: &ImageLayout) -> Result<(), MapError> {
    let parange = parange();
    let pa_bits = pgtable::pa_bits_from_parange(parange).ok_or(MapError::InvalidAddressSize)?;
    let va_bits = pa_bits.clamp(pgtable::MIN_INPUT_BITS, pgtable::MAX_INPUT_BITS);
    let mut pool = POOL.lock();
    let pool = &mut *pool;
    let mut pt = PageTable::new(pool, Regime::El2Stage1, va_bits)?;
    let mut map = |r: MemRange, attrs: Attrs| {
        let (start, size) = page_range(r);
        pt.map(pool, start, start, size, attrs)
    };
    for bank in &info.memory {
        map(*bank, Attrs::RW_DATA)?;
    }
    map(info.dtb, Attrs::RO_DATA)?;
    if let Some(initrd) = info.initrd {
        map(initrd, Attrs::RO_DATA)?;
    }
    map(
        MemRange {
            start: image.start,
            end: image.text_end,
        },
        Attrs::RX_CODE,
    )?;
    map(
        MemRange {
            start: image.text_end,
            end: image.rodata_end,
        },
        Attrs::RO_DATA,
    )?;
    map(
        MemRange {
            start: image.rodata_end,
            end: image.end,
        },
        Attrs::RW_DATA,
    )?;
    if let Ok(uart) = &info.console
        && let Some(r) = MemRange::with_size(uart.base, uart.size.max(PAGE_SIZE))
    {
        map(r, Attrs::DEVICE_RW)?;
    }
    match &info.gic {
        Some(GicInfo::V2(g)) => {
            for r in [Some(g.gicd), Some(g.gicc), g.gich, g.gicv]
                .into_iter()
                .flatten()
            {
                map(r, Attrs::DEVICE_RW)?;
            }
        }
        Some(GicInfo::V3(g)) => {
            map(g.gicd, Attrs::DEVICE_RW)?;
            for r in g.redist_regions.iter().chain(g.its.iter()) {
                map(*r, Attrs::DEVICE_RW)?;
            }
        }
        None => {}
    }
    if let Some(pm) = info.bcm2835_pm {
        map(
            MemRange {
                start: pm,
                end: pm + PAGE_SIZE,
            },
            Attrs::DEVICE_RW,
        )?;
    }
    let tcr = pgtable::tcr_el2(parange, va_bits)?;
    REGISTERS.call_once(|| MmuRegisters {
        mair: pgtable::MAIR_EL2_VALUE,
        tcr,
        ttbr0: pt.root(),
        sctlr: SCTLR_EL2_VALUE,
    });
    SUMMARY.call_once(|| (pa_bits, va_bits, pool.used));
    Ok(())
}

/// Turns the MMU and caches on, on the boot CPU.
pub fn enable_primary(image: &ImageLayout) {
    let regs = *REGISTERS
        .get()
        .expect("mmu::init must run before mmu::enable_primary");
    // SAFETY: the MMU and data cache are still off, so memory holds every value written so far
    // (relocations, .bss, the table pool, this stack): discarding stale cache lines for the
    // image loses nothing and keeps them from shadowing it once the caches are on.
    unsafe { cache::invalidate(image.start, image.end - image.start) };
    MAIR_EL2.set(regs.mair);
    TCR_EL2.set(regs.tcr);
    TTBR0_EL2.set(regs.ttbr0);
    barrier::isb(barrier::SY);
    // SAFETY: TLB invalidation has no memory-safety effect.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb", options(nostack)) };
    SCTLR_EL2.set(regs.sctlr);
    barrier::isb(barrier::SY);
    cache::invalidate_icache();
}

/// The values `entry.S` programs on a secondary CPU.
pub fn secondary_registers() -> MmuRegisters {
    *REGISTERS
        .get()
        .expect("mmu::init runs before secondaries start")
}

/// "PA 44 bits, VA 44 bits, 9 table frames": for the debug log.
pub fn describe() -> impl core::fmt::Display {
    struct D(u8, u8, usize);
    impl core::fmt::Display for D {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(
                f,
                "PA {} bits, VA {} bits, {} table frames",
                self.0, self.1, self.2
            )
        }
    }
    let (pa, va, used) = SUMMARY.get().copied().unwrap_or_default();
    D(pa, va, used)
}
