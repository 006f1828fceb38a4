//! vCPU power and VM life, as policy: when a powered-off vCPU may start, and how a VM stops
//! (PSCI SYSTEM_OFF) or restarts (SYSTEM_RESET).
//!
//! A vCPU's power state (`Vm::vcpus[n].power`) is Off, OnPending (CPU_ON accepted, or vCPU 0 at
//! VM start) or On. Its CPU waits until it is OnPending *and* the VM is running, then takes the
//! boot arguments and marks it On ([`take_power_on`]).
//!
//! Stopping ([`stop_vm`], run by the vCPU whose guest asked): that vCPU is already Off; the
//! others are kicked out of their guests until none is On, or a deadline passes (a CPU that
//! does not answer must not hang the VM's stop for ever: it is reported and the stop goes on).
//! Then, for SYSTEM_RESET, every vCPU but vCPU 0 is Off, vCPU 0 is OnPending with the VM's boot
//! arguments, the devices are reset, the images reloaded, the VM runs again and vCPU 0's CPU is
//! woken; for SYSTEM_OFF the VM's passed-through interrupts are deactivated (they must not stay
//! active for ever) and the VM stays stopped.

use crate::vcpu::psci::PowerState;
use crate::vm::machine::{VcpuPower, Vm, VmState};

/// What [`stop_vm`] needs from the machine.
pub trait StopHw {
    /// Kicks the vCPUs of the VM in `mask` (see [`super::kick`]).
    fn kick(&mut self, vm: &Vm, mask: u64);
    /// A monotonic clock, in ticks.
    fn now(&mut self) -> u64;
    /// Ticks per second of [`StopHw::now`].
    fn ticks_per_second(&mut self) -> u64;
    /// Writes the VM's kernel, initrd and device tree into its RAM again (SYSTEM_RESET).
    fn reload_images(&mut self, vm: &Vm) -> Result<(), &'static str>;
    /// Deactivates physical interrupt `intid` (a passed-through SPI of a VM that stopped).
    fn deactivate(&mut self, intid: u32);
    /// Waits a little while another CPU gets on (a wait for an event: it lets the other CPUs
    /// run, on QEMU's single-threaded TCG too, and burns nothing on hardware).
    fn relax(&mut self);
}

/// How [`stop_vm`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopEnd {
    /// SYSTEM_OFF: every vCPU is off (or did not answer in time); the VM stays stopped.
    PoweredOff {
        /// vCPUs that were still on at the deadline.
        stragglers: usize,
    },
    /// SYSTEM_RESET: the VM runs again from vCPU 0.
    Restarted {
        /// vCPUs that were still on at the deadline.
        stragglers: usize,
    },
    /// SYSTEM_RESET, but the images could not be reloaded: the VM stays stopped.
    ReloadFailed(&'static str),
}

/// If vCPU `v` of `vm` is to be started now (OnPending and the VM running), marks it On and
/// returns its entry point and x0; `None` means keep waiting.
pub fn take_power_on(vm: &Vm, v: usize) -> Option<(u64, u64)> {
    let slot = vm.vcpus.get(v)?;
    let mut p = slot.power.lock();
    if p.state != PowerState::OnPending || vm.state() != VmState::Running {
        return None;
    }
    let boot = p.boot.take()?;
    p.state = PowerState::On;
    Some(boot)
}

/// Sets vCPU `v`'s power state (a vCPU that left its guest: CPU_OFF, or its VM stopping).
pub fn set_power(vm: &Vm, v: usize, state: PowerState) {
    if let Some(slot) = vm.vcpus.get(v) {
        slot.power.lock().state = state;
    }
}

/// The vCPUs of `vm` that are On.
pub fn running_vcpus(vm: &Vm) -> usize {
    running_mask(vm).count_ones() as usize
}

/// The vCPUs of `vm` that are on, as a mask.
pub fn running_mask(vm: &Vm) -> u64 {
    vm.vcpus
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, s)| s.power.lock().state == PowerState::On)
        .fold(0, |m, (v, _)| m | 1 << v)
}

/// Every vCPU of `vm` but `me`, as a mask.
pub fn others(vm: &Vm, me: usize) -> u64 {
    (0..vm.vcpus.len().min(64))
        .filter(|&v| v != me)
        .fold(0, |m, v| m | 1 << v)
}

/// The power states a VM restarts with: vCPU 0 OnPending with `boot` (entry, x0), the others
/// Off until the guest starts them.
pub fn reset_power(vm: &Vm, boot: (u64, u64)) {
    for (v, slot) in vm.vcpus.iter().enumerate() {
        *slot.power.lock() = VcpuPower {
            state: if v == 0 {
                PowerState::OnPending
            } else {
                PowerState::Off
            },
            boot: (v == 0).then_some(boot),
        };
    }
}

/// Stops or resets `vm` (its state says which) on behalf of vCPU `me`, whose guest asked;
/// `boot` is vCPU 0's entry point and x0 for a restart. Waits at most one second for the other
/// vCPUs to leave their guests.
pub fn stop_vm(vm: &Vm, me: usize, boot: (u64, u64), hw: &mut impl StopHw) -> StopEnd {
    set_power(vm, me, PowerState::Off);
    let others = others(vm, me);
    hw.kick(vm, others);
    let tps = hw.ticks_per_second();
    let deadline = hw.now().saturating_add(tps);
    // A vCPU that has not stopped yet is kicked again once a millisecond (a kick in flight
    // suffices; one per poll would be a storm of SGIs), and the wait between polls lets the
    // other CPUs run.
    let mut kicked = hw.now();
    let stragglers = loop {
        let running = running_mask(vm) & others;
        if running == 0 {
            break 0;
        }
        let now = hw.now();
        if now > deadline {
            log::warn!(
                "VM '{}': {} vCPU(s) did not stop within 1 s",
                vm.name(),
                running.count_ones()
            );
            break running.count_ones() as usize;
        }
        if now.saturating_sub(kicked) >= (tps / 1000).max(1) {
            hw.kick(vm, running);
            kicked = now;
        }
        hw.relax();
    };
    match vm.state() {
        VmState::Resetting => {
            log::info!("VM '{}': SYSTEM_RESET: restarting", vm.name());
            reset_power(vm, boot);
            vm.reset_devices();
            if let Err(e) = hw.reload_images(vm) {
                log::error!("VM '{}': cannot reload its images: {e}", vm.name());
                return StopEnd::ReloadFailed(e);
            }
            vm.set_state(VmState::Running);
            hw.kick(vm, 1);
            StopEnd::Restarted { stragglers }
        }
        _ => {
            log::info!("VM '{}' powered off", vm.name());
            for dev in &vm.config.passthrough {
                for &irq in &dev.irqs {
                    hw.deactivate(irq);
                }
            }
            StopEnd::PoweredOff { stragglers }
        }
    }
}
