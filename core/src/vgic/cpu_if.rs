//! List-register scheduling: [`Vgic::flush`] writes the interrupts a vCPU must see into a
//! shadow of its list registers before it runs; [`Vgic::fold`] reads the shadow back after it
//! exits and applies what the guest did (acknowledge, complete) to the model. The hardware shell
//! copies the shadow to and from ICH_LR<n>_EL2 / GICH_LR<n>; nothing here touches hardware.
//!
//! Rules (GICv3 IHI 0069H 12.5.7 ICH_HCR_EL2, 12.5.11 ICH_MISR_EL2; Linux KVM `vgic.c`, the
//! "Dealing with LR overflow is close to black magic" comment):
//!
//! 1. Candidates are the interrupts that are pending-and-deliverable or active for the vCPU.
//!    Those the guest can take (pending and not active) go first, highest priority (lowest
//!    value) first, then the active ones, active-and-pending included (the guest cannot take an
//!    active interrupt's pending instance before it deactivates it): a takeable interrupt is
//!    never kept out of the LRs by an active one, so the guest can always take the best one.
//!    An active candidate left out is counted for EOIcount even when it is also pending.
//! 2. An edge's pending state moves into the LR when loaded (the model's latch then records only
//!    new edges); fold puts it back if the guest has not taken it.
//! 3. More candidates than LRs: UIE (refill when the LRs are nearly empty); takeable ones left
//!    out: NPIE (refill when no LR is pending any more; never for an active-and-pending one
//!    alone, or LRs holding only active interrupts would assert NP for ever); active ones left
//!    out: LRENPIE, and an EOI the guest makes for one of them is counted in
//!    ICH_HCR_EL2.EOIcount, which fold replays by deactivating the highest-priority active
//!    interrupt outside the LRs; with EOImode=1 DIR is trapped (rule 6) so it can be applied
//!    to those too, and EOIcount is then ignored (an EOI is only a priority drop).
//! 4. A software level-triggered interrupt asks for an EOI maintenance interrupt so its level is
//!    sampled again after completion; a linked (HW) level interrupt is completed in hardware and
//!    fires again physically if its line is still asserted.
//! 5. GICv2 SGIs pending from several sources are loaded one source at a time, with an EOI
//!    maintenance interrupt to load the next (never UIE: it fires while at most one LR is valid,
//!    so with that SGI alone in the LRs the vCPU would exit for ever).
//! 6. EOImode=1 deactivation can come from any vCPU (KVM's "asymmetric deactivation": Linux
//!    threaded handlers deactivate an SPI on the CPU the thread runs on). DIR must then reach
//!    the model: a vGICv3 traps ICC_DIR_EL1 (TDIR) while an SPI is in flight on another vCPU or
//!    an active interrupt waits outside the LRs, and loading an SPI kicks running vCPUs that do
//!    not trap yet; a vGICv2's GICC_DIR page is never mapped, so its DIR always traps. A
//!    trapped DIR of an SPI in another vCPU's LR is applied by that vCPU's fold.

use alloc::vec::Vec;

use super::irq::{IntId, Trigger, VcpuId};
use super::lr::{LrEntry, LrState, MAX_LRS};
use super::{PhysOp, Vgic, VgicCpu};

/// ICH_HCR_EL2 / GICH_HCR bits the scheduler uses (same positions in both).
pub mod hcr {
    /// Virtual CPU interface enable.
    pub const EN: u64 = 1 << 0;
    /// Underflow maintenance interrupt enable.
    pub const UIE: u64 = 1 << 1;
    /// List Register Entry Not Present maintenance interrupt enable.
    pub const LRENPIE: u64 = 1 << 2;
    /// No Pending maintenance interrupt enable.
    pub const NPIE: u64 = 1 << 3;
    /// Trap ICC_DIR_EL1 (GICv3 only).
    pub const TDIR: u64 = 1 << 14;
    /// EOIcount field position and width.
    pub const EOICOUNT_SHIFT: u32 = 27;
    /// EOIcount mask (after shifting).
    pub const EOICOUNT_MASK: u64 = 0x1f;
}

/// The list registers and control state of one vCPU, as the shell moves them between the
/// hardware and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuIfShadow {
    /// LR values: written by flush, read back before fold. Those past `used` are zero (flush
    /// leaves them so; the shell reads back only the first `used`).
    pub lrs: [u64; MAX_LRS],
    /// How many LRs flush used (the shell writes zeros into the rest).
    pub used: usize,
    /// ICH_HCR_EL2 / GICH_HCR: flush writes it, fold reads EOIcount from it.
    pub hcr: u64,
    /// The guest's EOImode (ICH_VMCR_EL2.VEOIM / GICH_VMCR.VEM), read at exit.
    pub eoimode1: bool,
}

impl Default for CpuIfShadow {
    fn default() -> Self {
        CpuIfShadow {
            lrs: [0; MAX_LRS],
            used: 0,
            hcr: 0,
            eoimode1: false,
        }
    }
}

/// The run loop's note, kept per vCPU without the vGIC lock, of whether an exit needs the vGIC
/// at all. The common exit (a hypercall, a trapped register, with nothing pending for the
/// vCPU) then takes the vGIC lock neither after the guest (fold) nor before it (flush):
///
/// * [`Vgic::fold`] and the timers' resample ([`Vgic::resample_hw_level`]) change nothing when
///   flush loaded no list register and left no active interrupt outside them (no LRENPIE:
///   EOIcount has nothing to replay), the guest's EOImode is the one the last fold recorded,
///   and no linked level interrupt of the vCPU (a timer) was raised since the last resample
///   that found the model's level low ([`VgicSkip::fold_needed`]);
/// * [`Vgic::flush`] computes what it computed last time when the fold was skipped and nobody
///   held the vGIC's lock since that flush released it (the lock counts its releases,
///   `util::lock::VersionedMutex`; [`VgicSkip::flush_needed`]). The shell then writes the
///   ICH_HCR_EL2 value the last flush made ([`VgicSkip::reenter`]).
///
/// A skipped fold leaves the vCPU marked running until its next flush: an interrupt queued for
/// it meanwhile sends a kick (one exit it did not need), never goes unseen (the kick, or the
/// lock's new version, makes the next entry flush). A host test runs a random sequence with and
/// without the skips and requires the same list registers at every entry.
#[derive(Debug, Clone, Copy)]
pub struct VgicSkip {
    loaded: bool,
    eoimode1: bool,
    lines_high: u8,
    hcr: u64,
    version: Option<u64>,
}

impl VgicSkip {
    /// A vCPU that starts: its first exit folds (the model's EOImode is not known yet) and its
    /// first entry flushes.
    pub const fn new() -> Self {
        VgicSkip {
            loaded: true,
            eoimode1: false,
            lines_high: 0,
            hcr: 0,
            version: None,
        }
    }

    /// After flush: what it gave the guest, and the version the vGIC's lock has once that
    /// flush's guard is dropped (`VersionedGuard::release_version`).
    pub fn flushed(&mut self, shadow: &CpuIfShadow, version: u64) {
        self.loaded = shadow.used > 0 || shadow.hcr & hcr::LRENPIE != 0;
        self.hcr = shadow.hcr;
        self.version = Some(version);
    }

    /// Linked level interrupt `line` of this vCPU (the run loop's numbering: 0 the virtual
    /// timer, 1 the physical one; at most 8) was injected: its level is resampled at every exit
    /// until the model's level is low again.
    pub fn line_raised(&mut self, line: u32) {
        self.lines_high |= 1u8.checked_shl(line).unwrap_or(0);
    }

    /// True if the exit whose state `shadow` holds (read back from the hardware) must fold and
    /// resample.
    pub fn fold_needed(&self, shadow: &CpuIfShadow) -> bool {
        self.loaded || self.lines_high != 0 || shadow.eoimode1 != self.eoimode1
    }

    /// The lines to resample at this exit (bit n = line n): those that may be high in the
    /// model (a fold alone, for list registers, needs none).
    pub fn lines_to_resample(&self) -> u8 {
        self.lines_high
    }

    /// After fold and resample: the EOImode the fold recorded, and the lines still high in the
    /// model (bit n: what [`Vgic::resample_hw_level`] returned for line n).
    pub fn folded(&mut self, shadow: &CpuIfShadow, lines_high: u8) {
        self.eoimode1 = shadow.eoimode1;
        self.lines_high = lines_high;
    }

    /// True if the next entry must flush: the vGIC's lock has moved on since the last flush
    /// (`version` is its version now). A fold takes the lock, so an exit that folded always
    /// flushes.
    pub fn flush_needed(&self, version: u64) -> bool {
        self.version != Some(version)
    }

    /// An entry without flush: the list registers stay empty (the shadow's are zero since the
    /// last flush used none) and ICH_HCR_EL2 gets what that flush wrote.
    pub fn reenter(&self, shadow: &mut CpuIfShadow) {
        shadow.hcr = self.hcr;
    }
}

impl Default for VgicSkip {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    id: IntId,
    priority: u8,
    pending: bool,
    active: bool,
}

impl Candidate {
    /// The guest can acknowledge it now: pending, and not active (an active-and-pending
    /// interrupt's new instance waits for its deactivation).
    fn takeable(&self) -> bool {
        self.pending && !self.active
    }
}

impl Vgic {
    /// Fills `shadow` with the interrupts vCPU `vcpu` must see and marks it running. The shell
    /// then writes `shadow.lrs[..shadow.used]` (zeros in the rest) and `shadow.hcr`.
    pub fn flush(&mut self, vcpu: VcpuId, shadow: &mut CpuIfShadow) {
        if vcpu < self.cpus.len() && self.nothing_to_load(vcpu) {
            self.flush_empty(vcpu, shadow);
        } else {
            self.flush_full(vcpu, shadow);
        }
    }

    /// True when vCPU `vcpu` has no candidate at all: no SGI, PPI or SPI queued for it (every
    /// candidate is queued, `Vgic::requeue`) and no LPI of its ITS pending or active. The
    /// common case of an exit that changed nothing (a hypercall, a timer re-arm): flush then
    /// needs no scan, no sort and no list register ([`Vgic::flush_empty`]).
    fn nothing_to_load(&self, vcpu: VcpuId) -> bool {
        self.cpus[vcpu].queued_words == 0
            && self.its.as_ref().is_none_or(|its| {
                its.lpis()
                    .iter()
                    .all(|l| !l.state.active && !l.state.is_pending())
            })
    }

    /// [`Vgic::flush`] with no candidate: what the full flush computes for an empty list, in a
    /// few steps (the equivalence is a host test).
    fn flush_empty(&mut self, vcpu: VcpuId, shadow: &mut CpuIfShadow) {
        let lr_count = self.lr_count;
        let v3 = self.version == crate::platform::GicVersion::V3;
        let dir_trapped = !v3 || (self.cpus[vcpu].eoimode1 && self.spi_in_flight_elsewhere(vcpu));
        let c = &mut self.cpus[vcpu];
        c.outside_active.clear();
        if c.lrs_loaded > 0 {
            c.lrs[..c.lrs_loaded.min(lr_count)].fill(None);
            c.lrs_loaded = 0;
        }
        c.dir_trapped = dir_trapped;
        c.running = true;
        if shadow.used > 0 {
            shadow.lrs[..shadow.used.min(lr_count)].fill(0);
        }
        shadow.used = 0;
        shadow.hcr = hcr::EN | if v3 && dir_trapped { hcr::TDIR } else { 0 };
    }

    /// The flush of a vCPU that has candidates: collect, sort, load the best into the LRs.
    fn flush_full(&mut self, vcpu: VcpuId, shadow: &mut CpuIfShadow) {
        let fmt = self.lr_format();
        // Entries at and past these are empty already (`VgicCpu::lrs_loaded`; the shadow's LRs
        // past `used` are zero: flush zeroes them, and the shell reads back only `used`).
        let was_loaded = self.cpus[vcpu].lrs_loaded;
        let was_used = shadow.used;
        let mut cands = core::mem::take(&mut self.scratch);
        self.candidates(vcpu, &mut cands);
        cands.sort_unstable_by_key(|c| (!c.takeable(), c.priority, c.id.0));
        let lr_count = self.lr_count;
        let mut hcr = hcr::EN;
        let loaded = cands.len().min(lr_count);
        let mut loaded_spi = false;
        for (used, c) in cands[..loaded].iter().enumerate() {
            loaded_spi |= c.id.is_spi();
            let entry = self.load(vcpu, c.id, c.pending);
            shadow.lrs[used] = fmt.encode(&entry);
            self.cpus[vcpu].lrs[used] = Some(entry);
        }
        let used = loaded;
        // The ones left out. The vCPU's outside-active list, emptied by its last fold, is
        // refilled in place, within the room reserved when the vGIC was built (no allocation).
        let c = &mut self.cpus[vcpu];
        c.outside_active.clear();
        if cands.len() > lr_count {
            hcr |= hcr::UIE;
            c.stats.lr_overflows += 1;
            for left in &cands[lr_count..] {
                // NPIE only for one the guest could take once the LRs' pending ones are
                // taken. An active-and-pending one left out waits for its deactivation
                // (LRENPIE below); with NPIE for it, LRs holding only active interrupts would
                // assert NP at once and for ever, and the vCPU would never run again (found by
                // the hostile guest).
                if left.takeable() {
                    hcr |= hcr::NPIE;
                }
                if left.active {
                    c.outside_active.push(left.id);
                }
            }
        }
        let outside = !c.outside_active.is_empty();
        self.scratch = cands;
        if outside {
            hcr |= hcr::LRENPIE;
        }
        // Rule 6. A vGICv2's DIR page always traps; a vGICv3's DIR traps while the guest's
        // EOImode=1 deactivation could miss the LRs: an active interrupt waits outside them,
        // or an SPI is in flight on another vCPU.
        let v3 = self.version == crate::platform::GicVersion::V3;
        let dir_trapped =
            !v3 || (self.cpus[vcpu].eoimode1 && (outside || self.spi_in_flight_elsewhere(vcpu)));
        if v3 && dir_trapped {
            hcr |= hcr::TDIR;
        }
        if v3 && loaded_spi {
            // An SPI now in flight here: a running vCPU of this VM in EOImode=1 without the
            // DIR trap exits, so that its next flush traps DIR (its guest may deactivate it).
            for (n, o) in self.cpus.iter().enumerate() {
                if n != vcpu && o.running && o.eoimode1 && !o.dir_trapped {
                    self.kicks |= 1 << n;
                }
            }
        }
        let c = &mut self.cpus[vcpu];
        c.dir_trapped = dir_trapped;
        if was_loaded > used {
            c.lrs[used..was_loaded.min(lr_count)].fill(None);
        }
        c.lrs_loaded = used;
        c.stats.lr_loads += used as u64;
        c.running = true;
        if was_used > used {
            shadow.lrs[used..was_used.min(lr_count)].fill(0);
        }
        shadow.used = used;
        shadow.hcr = hcr;
    }

    /// The candidates of `vcpu`, pruning queue bits that no longer apply.
    fn candidates(&mut self, vcpu: VcpuId, out: &mut Vec<Candidate>) {
        out.clear();
        let mut words = self.cpus[vcpu].queued_words;
        while words != 0 {
            let word = words.trailing_zeros() as usize;
            words &= words - 1;
            let mut bits = self.cpus[vcpu].queued[word];
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                let id = IntId(word as u32 * 64 + bit);
                let Some(irq) = self.irq(vcpu, id) else {
                    self.cpus[vcpu].unqueue(id);
                    continue;
                };
                let pending = irq.wants_delivery(self.enable_grp0, self.enable_grp1);
                // The oracle, with the pending state just computed for a private interrupt
                // (`Vgic::target_of`: a candidate of its own vCPU).
                let mine = if id.is_private() {
                    irq.active || pending
                } else {
                    self.target_of(vcpu, id, irq) == Some(vcpu)
                };
                if !mine {
                    self.cpus[vcpu].unqueue(id);
                    continue;
                }
                out.push(Candidate {
                    id,
                    priority: irq.priority,
                    pending,
                    active: irq.active,
                });
            }
        }
        // LPIs (vGICv3 with an ITS): those pending for this vCPU, or active on it.
        if let Some(its) = &self.its {
            for l in its.lpis() {
                let id = IntId(l.intid);
                if self.target(vcpu, id) == Some(vcpu) {
                    out.push(Candidate {
                        id,
                        priority: l.state.priority,
                        pending: l.state.wants_delivery(self.enable_grp0, self.enable_grp1),
                        active: l.state.active,
                    });
                }
            }
        }
    }

    /// Builds the LR for one candidate and moves its pending state into it (rule 2, rule 5).
    /// `deliverable` is the candidate's pending state (`IrqState::wants_delivery`, computed by
    /// the scan under the same lock).
    fn load(&mut self, vcpu: VcpuId, id: IntId, deliverable: bool) -> LrEntry {
        let irq = self.irq_mut(vcpu, id).expect("candidates exist");
        // A linked interrupt's pending state is kept by the physical GIC: while the virtual one
        // is active it goes into the LR active only, never active and pending (KVM
        // `vgic_v3_populate_lr`). An active-and-pending HW LR would be taken again after the
        // guest's EOI has already deactivated the physical interrupt, and its model level would
        // never drop: the guest would see the interrupt for ever (found by the hostile guest).
        let pending = deliverable && !(irq.hw.is_some() && irq.active);
        let mut source = 0;
        let mut eoi_maintenance = false;
        if pending {
            if irq.sgi_sources != 0 {
                source = irq.sgi_sources.trailing_zeros() as u8;
                irq.sgi_sources &= !(1 << source);
                if irq.sgi_sources != 0 {
                    // The next source is loaded after this one's EOI maintenance interrupt.
                    // Not UIE: with this LR the only one valid, underflow would be signalled
                    // at once and for ever, and the vCPU would never run (livelock).
                    eoi_maintenance = true;
                }
            } else if irq.trigger == Trigger::Edge {
                irq.pending_latch = false;
            }
        }
        if irq.trigger == Trigger::Level && irq.hw.is_none() {
            eoi_maintenance = true;
        }
        irq.resident = Some(vcpu);
        LrEntry {
            vintid: id.0,
            state: LrState {
                pending,
                active: irq.active,
            },
            priority: irq.priority,
            group1: irq.group1,
            hw: irq.hw,
            eoi_maintenance,
            source,
        }
    }

    /// Applies what the guest did to the interrupts that were in vCPU `vcpu`'s list registers,
    /// replays EOIcount, and marks the vCPU not running. `shadow.lrs` holds the values read back
    /// from the hardware, `shadow.hcr` the ICH_HCR_EL2 value (for EOIcount).
    pub fn fold(&mut self, vcpu: VcpuId, shadow: &CpuIfShadow) {
        let fmt = self.lr_format();
        let Some(c) = self.cpus.get_mut(vcpu) else {
            return;
        };
        c.running = false;
        let dir_trapped = c.dir_trapped;
        c.dir_trapped = false;
        c.eoimode1 = shadow.eoimode1;
        // Nothing was in the list registers and nothing active waits outside them: the guest
        // cannot have changed any interrupt's state (EOIcount has nothing to deactivate).
        if c.lrs_loaded == 0 && c.outside_active.is_empty() {
            return;
        }
        let loaded = core::mem::take(&mut c.lrs_loaded);
        for n in 0..loaded {
            let Some(entry) = self.cpus[vcpu].lrs[n].take() else {
                continue;
            };
            let state = fmt.state(shadow.lrs[n]);
            self.fold_one(vcpu, &entry, state);
        }
        // With EOImode=1 an EOI is only a priority drop, yet QEMU's GICv3 virtual interface
        // still counts one that finds no LR in EOIcount. When DIR was trapped (TDIR, or the
        // vGICv2's DIR page), every deactivation of an interrupt outside the LRs arrived as a
        // trapped DIR: EOIcount then holds only such EOIs and must not deactivate anything.
        // Otherwise (EOImode=0) EOIcount counts deactivations and is replayed.
        let eoicount = if shadow.eoimode1 && dir_trapped {
            0
        } else {
            (shadow.hcr >> hcr::EOICOUNT_SHIFT) & hcr::EOICOUNT_MASK
        };
        for _ in 0..eoicount {
            if !self.deactivate_outside(vcpu) {
                break;
            }
        }
        self.cpus[vcpu].outside_active.clear();
    }

    fn fold_one(&mut self, vcpu: VcpuId, entry: &LrEntry, state: LrState) {
        let id = IntId(entry.vintid);
        let v2_sgi = self.version == crate::platform::GicVersion::V2 && id.is_sgi();
        let (grp0, grp1) = (self.enable_grp0, self.enable_grp1);
        let Some(irq) = self.irq_mut(vcpu, id) else {
            return;
        };
        irq.resident = None;
        if state.pending {
            // Not taken yet: the pending state goes back to the model (rule 2).
            if v2_sgi {
                irq.sgi_sources |= 1 << (entry.source & 7);
            } else if irq.trigger == Trigger::Edge {
                irq.pending_latch = true;
            }
        } else if entry.state.pending && irq.trigger == Trigger::Level {
            // Acknowledged: a software pending latch of a level interrupt is consumed.
            irq.pending_latch = false;
        }
        if irq.trigger == Trigger::Level && irq.hw.is_some() && state.is_invalid() {
            // Completed in hardware: the physical line fires again if it is still asserted.
            irq.line_level = false;
        }
        irq.active = state.active;
        irq.active_on = if state.active && (id.is_spi() || id.is_lpi()) {
            Some(vcpu)
        } else {
            None
        };
        if irq.pending_request.take() == Some(false) {
            irq.pending_latch = false;
            irq.sgi_sources = 0;
        }
        let mut phys = None;
        if let Some(a) = irq.active_request.take() {
            if !a && state.active && !entry.state.active {
                // Deactivated (ICACTIVER, another vCPU's DIR) after the guest acknowledged it
                // here: the model did not know it was active then, so a linked one's physical
                // twin is deactivated now.
                phys = entry.hw;
                if irq.trigger == Trigger::Level && entry.hw.is_some() {
                    irq.line_level = false;
                }
            }
            irq.active = a;
            if !a {
                irq.active_on = None;
            }
        }
        // A private interrupt's target follows from the state just folded (`Vgic::target_of`;
        // it is resident nowhere now).
        let target = if id.is_private() {
            let target = irq.is_candidate(grp0, grp1).then_some(vcpu);
            self.requeue_to(id, None, target)
        } else {
            self.requeue(vcpu, id)
        };
        // Completed (or moved elsewhere): its queue bit here goes now rather than at the next
        // flush's scan, so that the next flush can take the short path.
        if !id.is_lpi() && target != Some(vcpu) {
            self.cpus[vcpu].unqueue(id);
        }
        if let Some(p) = phys {
            self.phys_op(vcpu, PhysOp::Deactivate(p));
        }
    }

    /// True if an SPI of this VM is in another vCPU's list registers or active with no list
    /// register here (the guest may deactivate it from `vcpu`).
    fn spi_in_flight_elsewhere(&self, vcpu: VcpuId) -> bool {
        self.spis.iter().any(|i| {
            i.resident.is_some_and(|r| r != vcpu) || (i.active && i.active_on != Some(vcpu))
        })
    }

    /// EOIcount replay: deactivates the highest-priority active interrupt of `vcpu` that was
    /// outside the list registers. False if there is none.
    fn deactivate_outside(&mut self, vcpu: VcpuId) -> bool {
        let outside = core::mem::take(&mut self.cpus[vcpu].outside_active);
        let best = outside
            .iter()
            .copied()
            .filter(|&id| self.irq(vcpu, id).is_some_and(|i| i.active))
            .min_by_key(|&id| (self.irq(vcpu, id).map_or(u8::MAX, |i| i.priority), id.0));
        self.cpus[vcpu].outside_active = outside;
        let Some(id) = best else { return false };
        self.deactivate(vcpu, id);
        self.cpus[vcpu].stats.eoicount_deactivations += 1;
        true
    }

    /// Deactivates interrupt `id` on behalf of vCPU `vcpu` (EOIcount replay, trapped
    /// ICC_DIR_EL1 or GICC_DIR): clears its active state and, if it is linked, asks for the
    /// physical one to be deactivated. An SPI in another vCPU's list register (this vCPU's were
    /// folded before its trap was handled) is deactivated there: that vCPU is kicked and its
    /// fold applies it (rule 6).
    pub fn deactivate(&mut self, vcpu: VcpuId, id: IntId) {
        let mut phys = None;
        self.update(vcpu, id, |i| {
            if i.resident.is_some() {
                i.active_request = Some(false);
            }
            if i.active {
                phys = i.hw;
                if i.trigger == Trigger::Level && i.hw.is_some() {
                    i.line_level = false;
                }
            }
            i.active = false;
            i.active_on = None;
        });
        if let Some(p) = phys {
            self.phys_op(vcpu, PhysOp::Deactivate(p));
        }
    }

    /// The interrupts currently written in `vcpu`'s list registers (for tests and debugging).
    pub fn resident(&self, vcpu: VcpuId) -> impl Iterator<Item = &LrEntry> {
        self.cpus
            .get(vcpu)
            .into_iter()
            .flat_map(|c: &VgicCpu| c.lrs.iter().flatten())
    }
}

#[cfg(test)]
mod tests;
