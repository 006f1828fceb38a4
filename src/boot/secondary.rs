//! Secondary CPU bring-up, one CPU at a time: the primary fills [`SECONDARY_BOOT`] (stack, CPU
//! number, EL2 MMU registers), cleans it to the point of coherency (the secondary reads it with
//! its MMU and caches off), starts the CPU with the method the device tree gives (PSCI CPU_ON
//! or a spin-table release), and waits until it reports in.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{self, cache, mmu, psci, timer};
use crate::drivers::gic;
use exitless_core::platform::{EnableMethod, MAX_CPUS, PlatformInfo};

use super::STACK_SIZE;

/// Boot arguments for the CPU being started, read by `secondary_entry` in `entry.S`:
/// stack top, logical CPU number, MAIR_EL2, TCR_EL2, TTBR0_EL2, SCTLR_EL2.
#[unsafe(no_mangle)]
static SECONDARY_BOOT: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// How long a CPU may take to report in.
const START_TIMEOUT_US: u64 = 2_000_000;

unsafe extern "C" {
    static __boot_stacks: u8;
    fn secondary_entry();
}

fn stack_top(cpu: usize) -> u64 {
    &raw const __boot_stacks as u64 + ((cpu + 1) * STACK_SIZE) as u64
}

/// Starts every CPU of the device tree; returns how many are online (the boot CPU included).
/// Logical CPU numbers: the boot CPU is 0, the others follow in device-tree order.
pub fn start_all(info: &PlatformInfo<'_>) -> usize {
    ONLINE[0].store(true, Ordering::Release);
    let me = arch::mpidr();
    let mut online = 1;
    let others = info.cpus.iter().filter(|c| c.mpidr != me);
    for (logical, cpu) in (1..).zip(others) {
        if logical >= MAX_CPUS {
            break;
        }
        if start(info, logical, cpu.mpidr, cpu.enable) {
            online += 1;
        }
    }
    if info.cpus_ignored > 0 {
        log::warn!(
            "{} CPUs beyond the first {MAX_CPUS} are left off",
            info.cpus_ignored
        );
    }
    online
}

fn start(info: &PlatformInfo<'_>, cpu: usize, mpidr: u64, method: EnableMethod) -> bool {
    let regs = mmu::secondary_registers();
    let args = [
        stack_top(cpu),
        cpu as u64,
        regs.mair,
        regs.tcr,
        regs.ttbr0,
        regs.sctlr,
    ];
    for (slot, v) in SECONDARY_BOOT.iter().zip(args) {
        slot.store(v, Ordering::Relaxed);
    }
    cache::clean_invalidate(
        SECONDARY_BOOT.as_ptr() as u64,
        size_of_val(&SECONDARY_BOOT) as u64,
    );
    let entry = secondary_entry as *const () as u64;
    match method {
        EnableMethod::Psci => {
            let Some(conduit) = info.psci else {
                log::error!("CPU {cpu} (MPIDR {mpidr:#x}) uses PSCI but the tree has no PSCI node");
                return false;
            };
            if let Err(e) = psci::cpu_on(conduit, mpidr, entry, cpu as u64) {
                log::error!("CPU {cpu} (MPIDR {mpidr:#x}): PSCI CPU_ON failed: {e:?}");
                return false;
            }
        }
        EnableMethod::SpinTable { release_addr } => {
            let slot = release_addr as *mut u64;
            // SAFETY: `cpu-release-addr` is the 8-byte slot the device tree reserves for this
            // CPU (inside /memreserve/d RAM, mapped by the EL2 tables); writing our entry point
            // there is the spin-table protocol.
            unsafe { slot.write_volatile(entry) };
            cache::clean_invalidate(release_addr, 8);
            arch::send_event();
        }
        EnableMethod::None => {
            log::warn!("CPU {cpu} (MPIDR {mpidr:#x}) has no enable-method: left off");
            return false;
        }
    }
    let deadline = timer::ticks() + START_TIMEOUT_US * timer::frequency() / 1_000_000;
    while !ONLINE[cpu].load(Ordering::Acquire) {
        if timer::ticks() > deadline {
            log::error!("CPU {cpu} (MPIDR {mpidr:#x}) did not come up within 2 s");
            return false;
        }
        crate::arch::spin_hint();
    }
    true
}

/// A secondary CPU's Rust entry, from `entry.S`, with its stack, vectors and MMU set up.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(cpu: u64) -> ! {
    let result = gic::get().map(|g| g.init_cpu());
    log::info!("CPU {cpu} online (MPIDR {:#x})", arch::mpidr());
    if let Some(Err(e)) = result {
        log::error!("CPU {cpu}: GIC CPU interface: {e}");
    }
    crate::hv::register_cpu(cpu as usize);
    ONLINE[cpu as usize].store(true, Ordering::Release);
    crate::hv::secondary_wait(cpu as usize)
}
