//! Power-off through the BCM2835 power-management watchdog, the way the Raspberry Pi firmware
//! and Linux's `bcm2835_wdt` do it: mark partition 63 ("halt") in PM_RSTS, then request a full
//! reset in PM_RSTC. The firmware then halts instead of rebooting; QEMU's raspi machines treat
//! it as a shutdown request. Used when the platform has no PSCI.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::ReadWrite;

use super::mmio::MmioRef;

/// Every write must carry this password in bits 31:24.
const PM_PASSWORD: u32 = 0x5a00_0000;
/// PM_RSTC: the watchdog configuration field and its "full reset" value.
const PM_RSTC_WRCFG_CLR: u32 = 0xffff_ffcf;
const PM_RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;
/// PM_RSTS: the boot partition number is spread over the even bits 0..10; 63 means halt.
const PM_RSTS_PARTITION_CLR: u32 = 0xffff_faaa;
const HALT_PARTITION_BITS: u32 = 0x555;

register_structs! {
    /// The watchdog's registers inside the PM block.
    #[allow(non_snake_case)]
    pub PmRegs {
        (0x00 => _reserved0),
        (0x1c => RSTC: ReadWrite<u32>),
        (0x20 => RSTS: ReadWrite<u32>),
        (0x24 => WDOG: ReadWrite<u32>),
        (0x28 => @END),
    }
}

/// Halts the board through the PM watchdog at `base`.
///
/// # Safety
///
/// `base` must be the BCM2835 PM block (`brcm,bcm2835-pm`), mapped as device memory.
pub unsafe fn power_off(base: usize) {
    // SAFETY: forwarded from the caller.
    let pm: MmioRef<PmRegs> = unsafe { MmioRef::new(base) };
    let rsts = (pm.RSTS.get() & PM_RSTS_PARTITION_CLR) | HALT_PARTITION_BITS;
    pm.RSTS.set(PM_PASSWORD | rsts);
    pm.WDOG.set(PM_PASSWORD | 10);
    let rstc = (pm.RSTC.get() & PM_RSTC_WRCFG_CLR) | PM_RSTC_WRCFG_FULL_RESET;
    pm.RSTC.set(PM_PASSWORD | rstc);
}
