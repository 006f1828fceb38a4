//! Powering the machine off, the one way every part of the shell ends the machine: PSCI
//! SYSTEM_OFF where the device tree names PSCI, else the Raspberry Pi's PM watchdog, else a halt.
//!
//! `boot` records the method once from the device tree ([`init`]); `hv` (a VM's SYSTEM_OFF when
//! it is the last VM, the console's quit key) and the fatal-error path call [`power_off`].

use spin::Once;

use crate::arch::{self, psci, timer};
use crate::drivers::bcm2835_pm;
use exitless_core::platform::Conduit;

/// How this machine powers off, from the device tree.
#[derive(Clone, Copy)]
struct PowerMethod {
    psci: Option<Conduit>,
    bcm2835_pm: Option<u64>,
}

static POWER: Once<PowerMethod> = Once::new();

/// Powers the machine off: PSCI SYSTEM_OFF, else the Raspberry Pi's PM watchdog, else halt.
pub fn power_off() -> ! {
    // What waits for the UART goes out first (waiting, bounded).
    crate::drivers::console::flush();
    let method = POWER.get().copied().unwrap_or(PowerMethod {
        psci: None,
        bcm2835_pm: None,
    });
    if let Some(conduit) = method.psci {
        let e = psci::system_off(conduit);
        log::error!("PSCI SYSTEM_OFF failed: {e:?}");
    } else if let Some(pm) = method.bcm2835_pm {
        // SAFETY: the device tree names this block as the BCM2835 PM watchdog; it is mapped as
        // device memory (or the MMU is still off).
        unsafe { bcm2835_pm::power_off(pm as usize) };
        timer::delay_us(100_000);
    }
    log::warn!("no way to power off this machine: halting");
    arch::halt()
}

/// Records how this machine powers off (called once, by the boot CPU, from the device tree).
pub fn init(psci: Option<Conduit>, bcm2835_pm: Option<u64>) {
    POWER.call_once(|| PowerMethod { psci, bcm2835_pm });
}
