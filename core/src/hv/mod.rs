//! Run-loop policy: the decisions the hypervisor's per-CPU loop makes around a vCPU's exits,
//! taken out of the hardware shell so that they are tested on the host.
//!
//! * [`kick`]: which physical CPUs must be interrupted when the vGIC changed what their vCPUs
//!   should see;
//! * [`irq`]: what a physical interrupt taken at EL2 is (a vCPU's timer, a passed-through SPI,
//!   a kick, the maintenance interrupt, console input) and how it reaches a VM;
//! * [`power`]: a vCPU's way out of power-off, and stopping or resetting a VM (SYSTEM_OFF,
//!   SYSTEM_RESET) with every vCPU off before the VM changes state;
//! * [`console`]: console input, its command key and the focus among VMs;
//! * [`report`]: the counters a stopped VM prints;
//! * [`fatal`]: what exitless does when its own invariant breaks (stop one VM or power off);
//! * [`place_vcpus`] and [`passthrough_map`]: which CPU runs which vCPU, which VM owns which
//!   physical SPI.
//!
//! The shell (`src/hv`) keeps what touches hardware (the GIC, the timers, the UART, guest entry)
//! and gives it to this module through small traits: [`Cpus`] here, [`power::StopHw`].
//!
//! Invariant: nothing here touches hardware or blocks; a wait is a loop over a trait call the
//! shell implements (and the tests fake), bounded by a deadline. Locks follow the order written
//! at the head of [`crate::vm::machine`]; none is held across a trait call.

pub mod console;
pub mod fatal;
pub mod irq;
pub mod power;
pub mod report;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::vm::config::VmConfig;
use crate::vm::machine::Vm;

/// The physical SGI exitless uses to make another CPU leave its guest.
pub const KICK_SGI: u32 = 0;

/// The physical CPUs, as the policy needs them.
pub trait Cpus {
    /// Sends the kick SGI ([`KICK_SGI`]) to physical CPU `pcpu` (nothing if it cannot be
    /// reached).
    fn send_kick(&mut self, pcpu: usize);
    /// Wakes every CPU waiting for an event (SEV): a vCPU waiting to be powered on.
    fn send_event(&mut self);
}

/// Makes the vCPUs of `vm` in `mask` leave their guests (a kick SGI to each one's CPU) or their
/// wait for power-on (an event), from physical CPU `from_cpu`.
///
/// A vCPU pinned to `from_cpu` itself gets no SGI: that CPU is in the hypervisor now and
/// flushes the vGIC before it enters the guest again. An empty mask does nothing.
pub fn kick(vm: &Vm, from_cpu: usize, mask: u64, cpus: &mut impl Cpus) {
    if mask == 0 {
        return;
    }
    for (v, slot) in vm.vcpus.iter().enumerate() {
        if v < 64 && mask & (1 << v) != 0 && slot.pcpu != from_cpu {
            cpus.send_kick(slot.pcpu);
        }
    }
    cpus.send_event();
}

/// The first physical CPU of each VM: VM 0's vCPUs run on CPUs 0.., each next VM's right after
/// the previous one's (one vCPU per CPU; the configuration check made sure they fit).
pub fn place_vcpus(vcpus: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut next = 0;
    vcpus
        .into_iter()
        .map(|n| {
            let first = next;
            next += n;
            first
        })
        .collect()
}

/// Every passed-through physical SPI and the VM (by index) it belongs to.
pub fn passthrough_map<'a>(vms: impl IntoIterator<Item = &'a VmConfig>) -> BTreeMap<u32, usize> {
    let mut map = BTreeMap::new();
    for (id, vc) in vms.into_iter().enumerate() {
        for dev in &vc.passthrough {
            for &irq in &dev.irqs {
                map.insert(irq, id);
            }
        }
    }
    map
}

#[cfg(test)]
pub(crate) mod tests;
