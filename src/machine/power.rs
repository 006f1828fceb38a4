//! Powering the machine off, the one way every part of the shell ends the machine: PSCI
//! SYSTEM_OFF where the device tree names PSCI, else the Raspberry Pi's PM watchdog, else a halt.
//!
//! `boot` records the method once from the device tree ([`init`]); `hv` (a VM's SYSTEM_OFF when
//! it is the last VM, the console's quit key) and the fatal-error path call [`power_off`].
//!
//! A power-off that does not end the machine is caught by the other CPUs ([`watchdog`], called
//! from their idle loops, which stop sleeping in WFI once [`note`] has woken them): two seconds after it began, one of them says where the CPU that
//! powers off got to ([`Stage`]) and makes the PSCI call itself, without taking any lock. (One
//! hostile-guest run in about forty on QEMU 7.2 printed the power-off line and never ended.)

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

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

/// How far the CPU powering the machine off got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Not powering off.
    None = 0,
    /// Decided (the last VM is off): flushing the VMs' console output.
    Announced = 1,
    /// In [`power_off`]: flushing the hypervisor's console.
    Flushing = 2,
    /// The PSCI SYSTEM_OFF call is made.
    Called = 3,
}

static STAGE: AtomicU8 = AtomicU8::new(0);
/// Counter ticks when the power-off began (0: it did not), and by which CPU.
static SINCE: AtomicU64 = AtomicU64::new(0);
static BY: AtomicUsize = AtomicUsize::new(0);
static RETRIED: AtomicBool = AtomicBool::new(false);

/// Records that CPU `cpu` is powering the machine off, at `stage`. The first call wakes every
/// other CPU (the kick SGI): one asleep in WFI then waits with WFE, woken by the event stream,
/// and so runs [`watchdog`].
pub fn note(cpu: usize, stage: Stage) {
    STAGE.store(stage as u8, Ordering::Release);
    if SINCE.load(Ordering::Acquire) == 0 {
        BY.store(cpu, Ordering::Relaxed);
        SINCE.store(timer::ticks().max(1), Ordering::Release);
        if let Some(g) = crate::drivers::gic::get() {
            g.send_sgi_to_others(exitless_core::hv::KICK_SGI);
        }
    }
}

/// True once a power-off began ([`note`]).
pub fn under_way() -> bool {
    SINCE.load(Ordering::Acquire) != 0
}

/// For the idle loops of the other CPUs: when a power-off began more than two seconds ago and
/// the machine still runs, says so (naming the stage) and makes the PSCI call from here, once.
pub fn watchdog(cpu: usize) {
    let since = SINCE.load(Ordering::Acquire);
    if since == 0
        || timer::ticks().saturating_sub(since) < 2 * timer::frequency()
        || RETRIED.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let stage = match STAGE.load(Ordering::Acquire) {
        1 => Stage::Announced,
        2 => Stage::Flushing,
        3 => Stage::Called,
        _ => Stage::None,
    };
    crate::drivers::console::print_emergency(format_args!(
        "power-off by CPU {} did not end the machine within 2 s (it got to {stage:?}): CPU \
         {cpu} makes the PSCI SYSTEM_OFF call\n",
        BY.load(Ordering::Relaxed)
    ));
    if let Some(conduit) = POWER.get().and_then(|m| m.psci) {
        let _ = psci::system_off(conduit);
    }
}

/// Powers the machine off: PSCI SYSTEM_OFF, else the Raspberry Pi's PM watchdog, else halt.
pub fn power_off() -> ! {
    note(crate::arch::cpu_index(), Stage::Flushing);
    // What waits for the UART goes out first (waiting, bounded).
    crate::drivers::console::flush();
    let method = POWER.get().copied().unwrap_or(PowerMethod {
        psci: None,
        bcm2835_pm: None,
    });
    if let Some(conduit) = method.psci {
        note(crate::arch::cpu_index(), Stage::Called);
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
