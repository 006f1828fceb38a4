//! The fatal-error policy: what exitless does when its own invariant breaks (a panic, or an
//! exception taken at EL2 that it did not expect). A guest never gets here: whatever a guest
//! does gets the architected answer (RAZ/WI, an injected abort, an error code) instead.
//!
//! 1. First, always: the report on the console (the shell's emergency path, which takes the
//!    console even from a holder that died).
//! 2. Contain it to one VM when that is safe: the failing CPU was running a vCPU of a VM, and no
//!    machine-wide lock (console, console input and multiplexer, heap, physical memory, page
//!    tables) stays held, which would mean the failing CPU died holding it and every other VM
//!    would hang on it next. That VM is stopped: its other vCPUs leave at their next exit (or
//!    spin on a lock of that VM the failing CPU held, which no other VM takes), its CPUs stay
//!    parked until the machine restarts, and every other VM goes on.
//! 3. Otherwise power the machine off: the failure was in boot code, on a CPU that runs no
//!    vCPU, or with a machine-wide lock held. A silent hang of every VM is the one outcome this
//!    policy does not allow.
//! 4. The failed VM counts as off: when the last other VM powers off, so does the machine.
//!
//! Invariant: this module only decides; the shell (`src/hv/fatal.rs`) prints, stops a VM and
//! powers off.

/// What the shell does after the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    /// Stop this VM (its index) and park the failing CPU; the other VMs go on.
    StopVm(usize),
    /// Power the machine off, for this reason.
    PowerOff(&'static str),
}

/// Decides per the module's rules. `vm` is the VM whose vCPU the failing CPU runs (None during
/// boot or on a CPU without one); `held` names a machine-wide lock that stayed held.
pub fn decide(vm: Option<usize>, held: Option<&'static str>) -> Fatal {
    match (vm, held) {
        (_, Some(lock)) => Fatal::PowerOff(lock),
        (Some(id), None) => Fatal::StopVm(id),
        (None, None) => Fatal::PowerOff("no VM runs on this CPU"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_while_running_a_vcpu_stops_only_that_vm() {
        assert_eq!(decide(Some(1), None), Fatal::StopVm(1));
    }

    #[test]
    fn a_machine_wide_lock_left_held_powers_off() {
        assert_eq!(
            decide(Some(1), Some("the heap")),
            Fatal::PowerOff("the heap")
        );
    }

    #[test]
    fn a_failure_outside_any_vm_powers_off() {
        assert!(matches!(decide(None, None), Fatal::PowerOff(_)));
    }
}
