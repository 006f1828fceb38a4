//! The guest's hardware access: MMIO with single `ldr`/`str` instructions (so that every access
//! a hypervisor traps has a valid syndrome, ISV = 1), system registers, the counter, SMCCC calls,
//! and the EL1 MMU (an identity map: device memory below 1 GiB, normal memory from 1 to 4 GiB,
//! and the PCIe bridge's ECAM as device memory wherever it is below 512 GiB).

use core::arch::asm;

/// Reads a system register by name.
macro_rules! mrs {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effect the compiler must know about.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nostack)) };
        v
    }};
}

/// Writes a system register by name, then an ISB.
macro_rules! msr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the callers write registers of the guest's own EL1 state.
        unsafe {
            core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack))
        };
    }};
}
pub(crate) use {mrs, msr};

/// 32-bit MMIO read.
pub fn read32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: `addr` is a device register found in the DTB, mapped as device memory.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack)) };
    v
}

/// 32-bit MMIO write.
pub fn write32(addr: usize, v: u32) {
    // SAFETY: as in `read32`.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack)) };
}

/// 8-bit MMIO read.
pub fn read8(addr: usize) -> u8 {
    let v: u32;
    // SAFETY: as in `read32`.
    unsafe { asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack)) };
    v as u8
}

/// 8-bit MMIO write.
pub fn write8(addr: usize, v: u8) {
    // SAFETY: as in `read32`.
    unsafe { asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v as u32, options(nostack)) };
}

/// 64-bit MMIO read.
pub fn read64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: as in `read32`.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack)) };
    v
}

/// 64-bit MMIO write.
pub fn write64(addr: usize, v: u64) {
    // SAFETY: as in `read32`.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack)) };
}

/// Full-system data synchronization barrier.
pub fn dsb() {
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Wait for event: on QEMU a yield to the other vCPUs (needed under -icount, where CPUs run
/// round-robin and a spinning CPU would keep the others from running). WFE does not trap
/// under exitless.
pub fn wfe() {
    // SAFETY: a hint.
    unsafe { asm!("wfe", options(nostack)) };
}

/// Wait for interrupt.
pub fn wfi() {
    // SAFETY: a hint.
    unsafe { asm!("dsb sy", "wfi", options(nostack)) };
}

/// Unmasks IRQs (PSTATE.I = 0).
pub fn irq_enable() {
    // SAFETY: the vectors are installed before any CPU unmasks interrupts.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Masks IRQs.
pub fn irq_disable() {
    // SAFETY: masking is always allowed.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack)) };
}

/// The virtual counter (CNTVCT_EL0), after an ISB so it is not read early.
#[inline(always)]
pub fn now() -> u64 {
    let v: u64;
    // SAFETY: reading the counter.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nostack)) };
    v
}

/// The counter frequency in Hz.
pub fn freq() -> u64 {
    mrs!("cntfrq_el0")
}

/// Ticks of the counter in `us` microseconds.
pub fn us(us: u64) -> u64 {
    freq() * us / 1_000_000
}

/// Busy-waits `ticks` counter ticks.
pub fn delay(ticks: u64) {
    let end = now() + ticks;
    while now() < end {
        core::hint::spin_loop();
    }
}

/// Spins until `f` holds or `ticks` pass; true if it held.
pub fn wait_until(ticks: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = now() + ticks;
    loop {
        if f() {
            return true;
        }
        if now() > end {
            return f();
        }
        core::hint::spin_loop();
    }
}

/// Like [`wait_until`], yielding (WFE) between polls: for waits on another CPU.
pub fn wait_other(ticks: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = now() + ticks;
    loop {
        if f() {
            return true;
        }
        if now() > end {
            return f();
        }
        wfe();
    }
}

/// This CPU's index (TPIDR_EL1, set at start-up).
pub fn cpu() -> usize {
    mrs!("tpidr_el1") as usize
}

/// The SMCCC conduit from the DTB's `/psci` node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Conduit {
    /// HVC (what QEMU virt without EL2, and exitless, advertise).
    Hvc,
    /// SMC.
    Smc,
}

/// An SMCCC call: function `f`, arguments x1..x3; returns x0..x3.
pub fn smccc(conduit: Conduit, f: u32, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    let (mut r0, mut r1, mut r2, mut r3) = (f as u64, a1, a2, a3);
    // SAFETY: an SMCCC call clobbers at most x0..x17 (SMCCC 1.0); memory is not touched except
    // by calls that the caller documents (CPU_ON starts another CPU at a valid entry point).
    unsafe {
        match conduit {
            Conduit::Hvc => asm!("hvc #0",
                inout("x0") r0, inout("x1") r1, inout("x2") r2, inout("x3") r3,
                lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
                lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
                lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
                lateout("x16") _, lateout("x17") _, options(nostack)),
            Conduit::Smc => asm!("smc #0",
                inout("x0") r0, inout("x1") r1, inout("x2") r2, inout("x3") r3,
                lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
                lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
                lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
                lateout("x16") _, lateout("x17") _, options(nostack)),
        }
    }
    [r0, r1, r2, r3]
}

/// The identity map: one level-1 table of 1 GiB blocks.
#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut L1: Table = Table([0; 512]);

const BLOCK: u64 = 0b01;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 3 << 8;
const XN: u64 = 3 << 53;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;

/// Fills the identity map (primary CPU, once, before `mmu_on` anywhere).
pub fn mmu_build() {
    // SAFETY: only the primary CPU writes the table, before any CPU uses it.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(L1) };
    t.0[0] = BLOCK | AF | ATTR_DEVICE | XN; // devices (GIC, UART) in the first GiB
    for (i, e) in t.0.iter_mut().enumerate().take(4).skip(1) {
        *e = ((i as u64) << 30) | BLOCK | AF | SH_INNER | ATTR_NORMAL; // RAM
    }
    // The PCIe bridge's ECAM, if it is above 4 GiB (QEMU virt's highmem: 256 GiB): device.
    let ecam = crate::rt::platform().pci_ecam as u64;
    if (4 << 30..1 << 39).contains(&ecam) {
        t.0[(ecam >> 30) as usize] = (ecam & !((1 << 30) - 1)) | BLOCK | AF | ATTR_DEVICE | XN;
    }
    dsb();
}

/// Turns this CPU's MMU and caches on with the identity map.
pub fn mmu_on() {
    msr!("mair_el1", 0xff << 8); // attr0 Device-nGnRnE, attr1 Normal WB
    // T0SZ = 25 (512 GiB, walks start at level 1 with 512 entries), WB WA inner shareable
    // walks, 4 KiB granule, TTBR1 walks disabled (EPD1), IPS 40 bits.
    let tcr = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 32);
    msr!("tcr_el1", tcr);
    msr!("ttbr0_el1", core::ptr::addr_of!(L1) as u64);
    // SAFETY: invalidates this CPU's stale TLB entries before the MMU goes on.
    unsafe { asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack)) };
    let sctlr = mrs!("sctlr_el1");
    // M, C, I on; A (alignment checks) off.
    msr!("sctlr_el1", (sctlr | 1 | (1 << 2) | (1 << 12)) & !(1 << 1));
}
