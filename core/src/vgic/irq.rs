//! One virtual interrupt's state, and the oracle that says which vCPU should see it.
//!
//! Spec: GICv3/v4 IHI 0069H 4.1 "Interrupt lifecycle" (inactive, pending, active, active and
//! pending), 4.1.2 (edge and level semantics: a level-sensitive interrupt is pending while its
//! input is asserted or its pending latch is set by software), 5.1 (routing, GICD_IROUTER.IRM);
//! GICv2 IHI 0048B 3.2 (the same life cycle, GICD_ITARGETSR routing, per-source SGI pending).
//!
//! Invariants:
//! * An interrupt is *deliverable* when it is pending, enabled and its group is enabled in the
//!   distributor, or when it is active (an active interrupt must stay visible to the vCPU that
//!   acknowledged it until the guest deactivates it).
//! * While an interrupt sits in a list register (`resident`), its pending/active bits here are
//!   what was true when it was loaded; the LR is the truth until the next fold (see `cpu_if`).

/// A GIC interrupt ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntId(pub u32);

impl IntId {
    /// Software-generated interrupts: 0..=15.
    pub const SGI_COUNT: u32 = 16;
    /// Interrupts private to a CPU (SGIs and PPIs): 0..=31.
    pub const PRIVATE_COUNT: u32 = 32;
    /// The first ID that is not an SPI (1020..=1023 are special).
    pub const SPI_END: u32 = 1020;
    /// "No pending interrupt".
    pub const SPURIOUS: IntId = IntId(1023);

    /// True for 0..=15.
    pub const fn is_sgi(self) -> bool {
        self.0 < Self::SGI_COUNT
    }

    /// True for 16..=31.
    pub const fn is_ppi(self) -> bool {
        self.0 >= Self::SGI_COUNT && self.0 < Self::PRIVATE_COUNT
    }

    /// True for SGIs and PPIs.
    pub const fn is_private(self) -> bool {
        self.0 < Self::PRIVATE_COUNT
    }

    /// True for 32..=1019.
    pub const fn is_spi(self) -> bool {
        self.0 >= Self::PRIVATE_COUNT && self.0 < Self::SPI_END
    }

    /// The first LPI.
    pub const LPI_BASE: u32 = 8192;

    /// True for 8192 and above (IHI 0069H 2.2.1).
    pub const fn is_lpi(self) -> bool {
        self.0 >= Self::LPI_BASE
    }
}

/// A vCPU's index in its VM (0-based; vCPU n has MPIDR affinity n).
pub type VcpuId = usize;

/// How the interrupt input is sampled (GICD_ICFGR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A rising edge latches the pending state.
    Edge,
    /// Pending while the input is asserted.
    Level,
}

/// Where an SPI goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// GICv3 GICD_IROUTER with IRM=0: the PE with this affinity (Aff3 in 39:32, Aff2..0 in 23:0).
    Affinity(u64),
    /// GICv3 GICD_IROUTER with IRM=1: any participating PE ("1 of N"); the affinity
    /// fields are kept so they read back as written.
    Any(u64),
    /// GICv2 GICD_ITARGETSR: a mask of CPU interfaces.
    Targets(u8),
}

/// One interrupt's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqState {
    /// GICD_ISENABLER.
    pub enabled: bool,
    /// The pending latch: an edge seen, or a software ISPENDR write.
    pub pending_latch: bool,
    /// The level of the input (level-sensitive interrupts of emulated or linked devices).
    pub line_level: bool,
    /// GICD_ISACTIVER.
    pub active: bool,
    /// GICD_IPRIORITYR, with the unimplemented low bits cleared.
    pub priority: u8,
    /// GICD_IGROUPR: group 1 (true) or 0.
    pub group1: bool,
    /// GICD_ICFGR.
    pub trigger: Trigger,
    /// SPI routing; ignored for private interrupts.
    pub route: Route,
    /// The physical interrupt this one is linked to (LR HW bit): its deactivation by the guest
    /// deactivates the physical one.
    pub hw: Option<u32>,
    /// GICv2 SGIs: the CPU interfaces (bit n = vCPU n) that have this SGI pending.
    pub sgi_sources: u8,
    /// The vCPU whose list registers hold it right now.
    pub resident: Option<VcpuId>,
    /// The vCPU that acknowledged it while it is active (an active SPI stays there).
    pub active_on: Option<VcpuId>,
    /// A change to the pending state requested while the interrupt was resident on another
    /// vCPU, applied when that vCPU folds its list registers.
    pub pending_request: Option<bool>,
    /// The same for the active state.
    pub active_request: Option<bool>,
}

impl IrqState {
    /// The reset state of interrupt `id`: disabled, inactive, priority 0, group 0; SGIs
    /// edge-triggered, PPIs and SPIs level-sensitive; SPIs routed to vCPU 0.
    pub const fn reset(id: IntId, v2: bool) -> Self {
        IrqState {
            // GICv2 SGIs are always enabled (their GICD_ISENABLER bits are RAO/WI).
            enabled: v2 && id.is_sgi(),
            pending_latch: false,
            line_level: false,
            active: false,
            priority: 0,
            group1: false,
            trigger: if id.is_sgi() {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            route: if v2 {
                Route::Targets(0)
            } else {
                Route::Affinity(0)
            },
            hw: None,
            sgi_sources: 0,
            resident: None,
            active_on: None,
            pending_request: None,
            active_request: None,
        }
    }

    /// An LPI's state when it is mapped: edge-triggered, Group 1, not pending (IHI 0069H 5.1:
    /// LPIs are always Group 1 edge-triggered interrupts); priority and enable come from its
    /// byte in the property table.
    pub const fn lpi(priority: u8, enabled: bool) -> Self {
        IrqState {
            enabled,
            priority,
            group1: true,
            trigger: Trigger::Edge,
            ..Self::reset(IntId(IntId::LPI_BASE), false)
        }
    }

    /// GICD_ISPENDR's view: the pending state (IHI 0069H 4.1.2).
    pub const fn is_pending(&self) -> bool {
        self.pending_latch
            || self.sgi_sources != 0
            || (matches!(self.trigger, Trigger::Level) && self.line_level)
    }

    /// Pending, enabled, and its group enabled in the distributor.
    pub const fn wants_delivery(&self, grp0: bool, grp1: bool) -> bool {
        self.enabled && self.is_pending() && if self.group1 { grp1 } else { grp0 }
    }

    /// True if a vCPU has to see it: deliverable pending, or active.
    pub const fn is_candidate(&self, grp0: bool, grp1: bool) -> bool {
        self.active || self.wants_delivery(grp0, grp1)
    }
}

/// The oracle (KVM's `vgic_target_oracle`): which vCPU, if any, must have this SPI in its list
/// registers. `vcpu_of_affinity` maps an affinity to a vCPU; `any` is the vCPU picked for
/// "1 of N" routing; `vcpu_count` bounds GICv2 target masks.
pub fn spi_target(
    irq: &IrqState,
    grp0: bool,
    grp1: bool,
    vcpu_count: usize,
    any: VcpuId,
    vcpu_of_affinity: impl Fn(u64) -> Option<VcpuId>,
) -> Option<VcpuId> {
    if irq.active {
        // An active interrupt stays with the vCPU that acknowledged it. An interrupt made
        // active by software (ISACTIVER) and never acknowledged goes where it is routed.
        if let Some(v) = irq.active_on {
            return Some(v);
        }
    } else if !irq.wants_delivery(grp0, grp1) {
        return None;
    }
    match irq.route {
        Route::Affinity(aff) => vcpu_of_affinity(aff),
        Route::Any(_) => Some(any),
        // A uniprocessor GICv2 has RAZ/WI targets: everything goes to the one CPU interface.
        Route::Targets(_) if vcpu_count == 1 => Some(0),
        // GICv2 1-N model: the lowest-numbered targeted CPU interface that exists.
        Route::Targets(mask) => {
            let mask = mask as u32 & ((1u32 << vcpu_count.min(8)) - 1);
            (mask != 0).then(|| mask.trailing_zeros() as VcpuId)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_aff(aff: u64) -> Option<VcpuId> {
        (aff < 4).then_some(aff as VcpuId)
    }

    fn pending_spi() -> IrqState {
        let mut s = IrqState::reset(IntId(40), false);
        s.enabled = true;
        s.pending_latch = true;
        s.group1 = true;
        s
    }

    #[test]
    fn intid_classes() {
        assert!(IntId(15).is_sgi() && !IntId(16).is_sgi());
        assert!(IntId(16).is_ppi() && IntId(31).is_ppi() && !IntId(32).is_ppi());
        assert!(IntId(32).is_spi() && IntId(1019).is_spi() && !IntId(1020).is_spi());
    }

    #[test]
    fn reset_sgis_are_edge_others_level() {
        assert_eq!(IrqState::reset(IntId(3), false).trigger, Trigger::Edge);
        assert_eq!(IrqState::reset(IntId(27), false).trigger, Trigger::Level);
        assert_eq!(IrqState::reset(IntId(40), true).route, Route::Targets(0));
    }

    #[test]
    fn level_interrupt_is_pending_while_asserted() {
        let mut s = IrqState::reset(IntId(40), false);
        assert!(!s.is_pending());
        s.line_level = true;
        assert!(s.is_pending());
        s.trigger = Trigger::Edge;
        assert!(
            !s.is_pending(),
            "an edge interrupt is pending only through its latch"
        );
    }

    #[test]
    fn disabled_or_group_disabled_interrupt_is_not_delivered() {
        let mut s = pending_spi();
        assert_eq!(spi_target(&s, false, true, 4, 0, by_aff), Some(0));
        assert_eq!(
            spi_target(&s, true, false, 4, 0, by_aff),
            None,
            "group 1 disabled"
        );
        s.enabled = false;
        assert_eq!(spi_target(&s, true, true, 4, 0, by_aff), None);
    }

    #[test]
    fn active_spi_stays_on_the_vcpu_that_acknowledged_it() {
        let mut s = pending_spi();
        s.route = Route::Affinity(2);
        s.active = true;
        s.active_on = Some(1);
        s.enabled = false;
        assert_eq!(spi_target(&s, true, true, 4, 0, by_aff), Some(1));
    }

    #[test]
    fn irouter_affinity_selects_the_vcpu_and_unknown_affinity_none() {
        let mut s = pending_spi();
        s.route = Route::Affinity(3);
        assert_eq!(spi_target(&s, true, true, 4, 0, by_aff), Some(3));
        s.route = Route::Affinity(0x100);
        assert_eq!(spi_target(&s, true, true, 4, 0, by_aff), None);
        s.route = Route::Any(0);
        assert_eq!(spi_target(&s, true, true, 4, 2, by_aff), Some(2));
    }

    #[test]
    fn itargetsr_picks_lowest_existing_target() {
        let mut s = pending_spi();
        s.route = Route::Targets(0b1100);
        assert_eq!(spi_target(&s, true, true, 4, 0, by_aff), Some(2));
        s.route = Route::Targets(0b1000_0000);
        assert_eq!(
            spi_target(&s, true, true, 4, 0, by_aff),
            None,
            "no such CPU interface"
        );
    }
}
