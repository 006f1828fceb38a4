//! Calls into the firmware's PSCI (Arm DEN 0022) over the conduit the device tree names.

use smccc::psci;
use smccc::{Hvc, Smc};

use exitless_core::platform::Conduit;

/// PSCI CPU_ON: starts the CPU with affinity `mpidr` at `entry` (physical), at EL2, with
/// `context` in x0.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), psci::Error> {
    match conduit {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// PSCI SYSTEM_OFF. Returns only if the firmware refuses.
pub fn system_off(conduit: Conduit) -> psci::Error {
    let r = match conduit {
        Conduit::Smc => psci::system_off::<Smc>(),
        Conduit::Hvc => psci::system_off::<Hvc>(),
    };
    r.err().unwrap_or(psci::Error::InternalFailure)
}

/// PSCI_VERSION as (major, minor).
pub fn version(conduit: Conduit) -> Option<(u16, u16)> {
    let v = match conduit {
        Conduit::Smc => psci::version::<Smc>(),
        Conduit::Hvc => psci::version::<Hvc>(),
    };
    v.ok().map(|v| (v.major, v.minor))
}
