//! The physical GIC, whichever version the device tree describes: one handle the boot path
//! initialises and asks for its facts.

use spin::Once;

use super::gicv2::GicV2;
use super::gicv3::GicV3;
use crate::gic::GicFacts;
use crate::platform::GicInfo;

/// The physical GIC.
#[allow(clippy::large_enum_variant, reason = "one instance, in a static")]
pub enum Gic {
    /// A GICv2.
    V2(GicV2),
    /// A GICv3/v4.
    V3(GicV3),
}

static GIC: Once<Gic> = Once::new();

/// Creates the GIC driver and sets up the distributor (boot CPU, once).
///
/// # Safety
///
/// `info`'s frames must be the GIC's, mapped as device memory for the rest of the run, and
/// driven by no other code.
pub unsafe fn init(info: &GicInfo) -> Result<&'static Gic, &'static str> {
    let gic = match info {
        // SAFETY: forwarded from the caller.
        GicInfo::V2(v2) => Gic::V2(unsafe { GicV2::new(v2) }.ok_or("GICv2 without GICH")?),
        // SAFETY: forwarded from the caller.
        GicInfo::V3(v3) => Gic::V3(unsafe { GicV3::new(v3) }),
    };
    let gic = GIC.call_once(|| gic);
    match gic {
        Gic::V2(g) => g.init_distributor(),
        Gic::V3(g) => g.init_distributor(),
    }
    Ok(gic)
}

/// The GIC, once [`init`] ran.
pub fn get() -> Option<&'static Gic> {
    GIC.get()
}

impl Gic {
    /// Per-CPU set-up (every CPU, the boot CPU included).
    pub fn init_cpu(&self) -> Result<(), &'static str> {
        match self {
            Gic::V2(g) => {
                g.init_cpu();
                Ok(())
            }
            Gic::V3(g) => g.init_cpu(),
        }
    }

    /// What the GIC offers the hypervisor.
    pub fn facts(&self) -> GicFacts {
        match self {
            Gic::V2(g) => g.facts(),
            Gic::V3(g) => g.facts(),
        }
    }
}
