//! The virtual GIC: one VM's interrupt controller as its guest sees it, as a pure model.
//!
//! * The **distributor** and the **redistributors** (vGICv3) or the banked distributor (vGICv2)
//!   are emulated: their MMIO traps and [`mmio`] dispatches it through register tables to the
//!   per-interrupt operations of [`Vgic`].
//! * The **CPU interface** is the hardware's: pending interrupts are written into list
//!   registers before the vCPU runs ([`Vgic::flush`]) and read back after it exits
//!   ([`Vgic::fold`]); the guest acknowledges and completes them with no exit.
//!
//! Specs: GICv3/v4 IHI 0069H, GICv2 IHI 0048B; the list-register rules follow Linux KVM's
//! `vgic.c` (its "LR overflow" comment is the oracle of the tests in `cpu_if`).
//!
//! ## Locking
//!
//! A VM has one `spin::Mutex<Vgic>`; every vGIC operation (MMIO emulation, injection, SGI
//! generation, flush and fold) runs under it. Where it sits among the other locks is written
//! once, at the head of `vm::machine` ("Lock order"). The hypervisor runs with interrupts
//! masked, so holding it never races an interrupt handler.
//!
//! ## Ownership of list registers
//!
//! Only a vCPU's own physical CPU reads or writes its list registers. When an operation on
//! another CPU changes what a running vCPU should see, the model marks that vCPU in a kick set
//! ([`Vgic::take_kicks`]); the hypervisor sends it a physical SGI, the vCPU exits, folds its
//! list registers and flushes them again with the new state.
//!
//! ## Linked physical interrupts
//!
//! A virtual interrupt linked to a physical one (LR HW bit: the timers, passed-through SPIs)
//! keeps the physical one active from injection until the guest deactivates the virtual one.
//! When the model changes such an interrupt outside a list register (ISACTIVER/ICACTIVER,
//! ISPENDR/ICPENDR, a trapped DIR, EOIcount replay, a timer line that dropped), the physical
//! side must follow, or the physical interrupt stays active and never fires again (KVM
//! `vgic_hw_irq_spending`/`_cpending`/`_change_active`). The model cannot touch hardware, so it
//! records [`PhysOp`]s **per vCPU**: SGIs and PPIs are banked per physical CPU, so an operation
//! on vCPU n's timer PPI is only right on vCPU n's CPU; that vCPU takes its work at its next
//! flush ([`Vgic::take_phys`]) and is kicked if it is running. The work is kept as each
//! interrupt's desired physical state ([`phys::PhysWork`]), not as a queue: however often a
//! guest writes, even to an offline vCPU's frame, it takes fixed memory.

pub mod cpu_if;
pub mod irq;
pub mod its;
pub mod lr;
pub mod mmio;
pub mod phys;
pub mod regs_v2;
pub mod regs_v3;
pub mod sgi;

use alloc::vec::Vec;

use irq::{IntId, IrqState, Route, Trigger, VcpuId};
use lr::{LrEntry, LrFormat, MAX_LRS};

use crate::platform::GicVersion;

/// What the hypervisor knows when it creates a VM's vGIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VgicConfig {
    /// vGICv2 or vGICv3.
    pub version: GicVersion,
    /// Number of vCPUs (vCPU n has affinity n).
    pub vcpus: usize,
    /// Number of SPIs (a multiple of 32, at most 988).
    pub spis: u32,
    /// Hardware list registers.
    pub lr_count: usize,
    /// Priority bits the virtual CPU interface implements (ICH_VTR_EL2.PRIbits + 1).
    pub pri_bits: u8,
}

/// Per-vCPU vGIC state.
#[derive(Debug, Clone)]
pub struct VgicCpu {
    /// SGIs and PPIs.
    pub private: [IrqState; 32],
    /// The vCPU's affinity (MPIDR Aff3.Aff2.Aff1.Aff0 as in GICD_IROUTER).
    pub affinity: u64,
    /// Interrupts that may want this vCPU (a superset, pruned by every flush): 1024 bits.
    queued: [u64; 16],
    /// Which words of `queued` are not zero (bit w: `queued[w] != 0`), so that an empty queue is
    /// seen in one test and a scan visits only the words that hold something.
    queued_words: u16,
    /// What the last flush wrote into each list register.
    lrs: [Option<LrEntry>; MAX_LRS],
    /// How many of `lrs` the last flush filled: `lrs[..lrs_loaded]` are `Some`, the rest `None`
    /// (so an exit that had nothing in the LRs is seen in one test).
    lrs_loaded: usize,
    /// Active interrupts that the last flush could not fit in a list register (for EOIcount).
    outside_active: Vec<IntId>,
    /// True between flush and fold: the vCPU may be running guest code right now.
    pub running: bool,
    /// The guest's ICH_VMCR_EL2.VEOIM / GICV_CTLR.EOImode (split priority drop and
    /// deactivation), as read at the last exit.
    pub eoimode1: bool,
    /// Whether every deactivation the guest makes outside the list registers reaches the model
    /// as a trapped DIR until the next exit: ICH_HCR_EL2.TDIR was set by the last flush, or
    /// the VM is a vGICv2 (its GICC_DIR page is never mapped). Fold then ignores EOIcount
    /// under EOImode=1.
    pub dir_trapped: bool,
    /// GICR_WAKER.ProcessorSleep (vGICv3).
    pub processor_sleep: bool,
    /// GICR_CTLR.EnableLPIs and the LPI tables (kept for the ITS).
    pub lpis_enabled: bool,
    /// GICR_PROPBASER.
    pub propbaser: u64,
    /// GICR_PENDBASER.
    pub pendbaser: u64,
    /// Work for the physical GIC, to be done on this vCPU's CPU.
    phys: phys::PhysWork,
    /// Counters.
    pub stats: VgicCpuStats,
}

impl VgicCpu {
    /// Queues interrupt `id` (an SGI, PPI or SPI) for this vCPU.
    fn queue(&mut self, id: IntId) {
        let w = (id.0 / 64) as usize % 16;
        self.queued[w] |= 1 << (id.0 % 64);
        self.queued_words |= 1 << w;
    }

    /// Takes interrupt `id` out of this vCPU's queue.
    fn unqueue(&mut self, id: IntId) {
        let w = (id.0 / 64) as usize % 16;
        self.queued[w] &= !(1 << (id.0 % 64));
        if self.queued[w] == 0 {
            self.queued_words &= !(1 << w);
        }
    }
}

/// Per-vCPU vGIC counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VgicCpuStats {
    /// Flushes that had more interrupts to show than list registers.
    pub lr_overflows: u64,
    /// Active interrupts deactivated by replaying ICH_HCR_EL2.EOIcount.
    pub eoicount_deactivations: u64,
    /// Interrupts written into list registers.
    pub lr_loads: u64,
}

/// Physical-side work that the model asks the hypervisor to do to a linked physical interrupt
/// (its INTID), on the CPU of the vCPU whose queue holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhysOp {
    /// The virtual twin was deactivated outside a list register: deactivate (ICC_DIR_EL1 /
    /// GICC_DIR), so that the physical interrupt can fire again.
    Deactivate(u32),
    /// The guest made the virtual twin active or pending (ISACTIVER, ISPENDR): make the
    /// physical one active, so that it cannot fire meanwhile and the guest's deactivation of
    /// the HW-linked list register has an active interrupt to deactivate.
    Activate(u32),
    /// The guest cleared the virtual twin's pending state (ICPENDR).
    ClearPending(u32),
    /// The guest routed the virtual twin, an SPI, to this vCPU (GICD_IROUTER, ITARGETSR):
    /// route the physical SPI to that vCPU's CPU, so that it is taken where it is wanted and
    /// needs no kick (Xen `vgic_migrate_irq`, Bao). Any CPU may do it.
    Route(u32, VcpuId),
}

impl PhysOp {
    /// The physical interrupt it acts on.
    pub fn intid(self) -> u32 {
        match self {
            PhysOp::Deactivate(p)
            | PhysOp::Activate(p)
            | PhysOp::ClearPending(p)
            | PhysOp::Route(p, _) => p,
        }
    }
}

/// A VM's virtual GIC.
#[derive(Debug, Clone)]
pub struct Vgic {
    /// Version the guest sees.
    pub version: GicVersion,
    /// GICD_CTLR.EnableGrp0.
    pub enable_grp0: bool,
    /// GICD_CTLR.EnableGrp1 (EnableGrp1NS).
    pub enable_grp1: bool,
    spis: Vec<IrqState>,
    cpus: Vec<VgicCpu>,
    lr_count: usize,
    pri_mask: u8,
    kicks: u64,
    lr_format: LrFormat,
    /// The VM's ITS and its LPIs (vGICv3 only).
    its: Option<its::Its>,
    /// Flush's list of candidates, kept between flushes. It and every vCPU's `outside_active`
    /// are given, when the vGIC is built (and when its ITS is attached), room for every
    /// interrupt that can be a candidate ([`Vgic::max_candidates`]), so flush and fold never
    /// allocate (the exit path allocates nothing, issue 11).
    scratch: Vec<cpu_if::Candidate>,
}

impl Vgic {
    /// A vGIC in its reset state.
    pub fn new(cfg: &VgicConfig) -> Self {
        let v2 = cfg.version == GicVersion::V2;
        let spi_count = cfg.spis.min(IntId::SPI_END - 32) as usize;
        // Target masks and kick sets are u64 bitmaps: at most 64 vCPUs (configurations allow 8).
        let cpus = (0..cfg.vcpus.min(64))
            .map(|n| VgicCpu {
                private: core::array::from_fn(|i| IrqState::reset(IntId(i as u32), v2)),
                affinity: n as u64,
                queued: [0; 16],
                queued_words: 0,
                lrs: [None; MAX_LRS],
                lrs_loaded: 0,
                outside_active: Vec::with_capacity(32 + spi_count),
                running: false,
                eoimode1: false,
                dir_trapped: false,
                processor_sleep: true,
                lpis_enabled: false,
                propbaser: 0,
                pendbaser: 0,
                phys: phys::PhysWork::default(),
                stats: VgicCpuStats::default(),
            })
            .collect();
        let spis = (0..cfg.spis.min(IntId::SPI_END - 32))
            .map(|i| IrqState::reset(IntId(32 + i), v2))
            .collect();
        let pri_bits = cfg.pri_bits.clamp(4, 8);
        Vgic {
            version: cfg.version,
            enable_grp0: false,
            enable_grp1: false,
            spis,
            cpus,
            lr_count: cfg.lr_count.min(MAX_LRS),
            pri_mask: !((1u16 << (8 - pri_bits)) - 1) as u8,
            kicks: 0,
            lr_format: match cfg.version {
                GicVersion::V2 => LrFormat::V2,
                GicVersion::V3 => LrFormat::V3,
            },
            scratch: Vec::with_capacity(32 + spi_count),
            its: None,
        }
    }

    /// Gives a vGICv3 an ITS (LPIs then exist: GICD_TYPER.LPIS, GICR_TYPER.PLPIS); its tables
    /// are reserved here, once. Ignored for a vGICv2.
    pub fn attach_its(&mut self, cfg: its::ItsConfig) {
        if self.version == GicVersion::V3 {
            self.its = Some(its::Its::new(its::ItsConfig {
                vcpus: self.cpus.len(),
                ..cfg
            }));
            let room = self.max_candidates();
            self.scratch.reserve_exact(room);
            for c in &mut self.cpus {
                c.outside_active.reserve_exact(room);
            }
        }
    }

    /// The most candidates one vCPU's flush can have: its SGIs and PPIs, every SPI, and every
    /// LPI its ITS can map.
    pub fn max_candidates(&self) -> usize {
        32 + self.spis.len() + self.its.as_ref().map_or(0, |i| i.max_lpis())
    }

    /// The VM's ITS, if it has one.
    pub fn its(&self) -> Option<&its::Its> {
        self.its.as_ref()
    }

    /// The VM's ITS, if it has one, to emulate an access to it (the caller then takes the
    /// kicks with [`Vgic::take_kicks`]).
    pub fn its_mut(&mut self) -> Option<&mut its::Its> {
        self.its.as_mut()
    }

    /// Hardware list registers this vGIC schedules.
    pub fn lr_count(&self) -> usize {
        self.lr_count
    }

    /// Implemented priority bits.
    pub fn pri_bits(&self) -> u8 {
        8 - self.pri_mask.trailing_zeros() as u8
    }

    /// The list-register format: the host's virtual interface, not the guest's GIC version
    /// (a vGICv2 guest on a GICv3 host with GICv2 compatibility uses ICH_LR<n>_EL2).
    pub fn lr_format(&self) -> LrFormat {
        self.lr_format
    }

    /// Sets the list-register format to the host's (see [`Vgic::lr_format`]).
    pub fn set_lr_format(&mut self, f: LrFormat) {
        self.lr_format = f;
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// Number of interrupt IDs (32 private + SPIs).
    pub fn irq_count(&self) -> u32 {
        32 + self.spis.len() as u32
    }

    /// The mask of implemented priority bits (e.g. 0xf8 for 5 bits).
    pub fn priority_mask(&self) -> u8 {
        self.pri_mask
    }

    /// Per-vCPU state.
    pub fn cpu(&self, vcpu: VcpuId) -> Option<&VgicCpu> {
        self.cpus.get(vcpu)
    }

    /// Per-vCPU state, mutable (redistributor registers, `running`).
    pub fn cpu_mut(&mut self, vcpu: VcpuId) -> Option<&mut VgicCpu> {
        self.cpus.get_mut(vcpu)
    }

    /// The vCPU whose affinity is `aff` (GICD_IROUTER layout).
    pub fn vcpu_of_affinity(&self, aff: u64) -> Option<VcpuId> {
        // vCPU n has affinity n (`Vgic::new`): one comparison, the search only if that changes.
        match usize::try_from(aff).ok().and_then(|n| self.cpus.get(n)) {
            Some(c) if c.affinity == aff => usize::try_from(aff).ok(),
            _ => self.cpus.iter().position(|c| c.affinity == aff),
        }
    }

    /// An interrupt's state as the vCPU `vcpu` sees it (private interrupts are banked).
    pub fn irq(&self, vcpu: VcpuId, id: IntId) -> Option<&IrqState> {
        if id.is_lpi() {
            return self.its.as_ref()?.lpi(id.0).map(|l| &l.state);
        }
        if id.is_private() {
            self.cpus.get(vcpu).map(|c| &c.private[id.0 as usize])
        } else {
            self.spis.get(id.0.checked_sub(32)? as usize)
        }
    }

    fn irq_mut(&mut self, vcpu: VcpuId, id: IntId) -> Option<&mut IrqState> {
        if id.is_lpi() {
            return self.its.as_mut()?.lpi_mut(id.0);
        }
        if id.is_private() {
            self.cpus
                .get_mut(vcpu)
                .map(|c| &mut c.private[id.0 as usize])
        } else {
            self.spis.get_mut(id.0.checked_sub(32)? as usize)
        }
    }

    /// The vCPU that must see interrupt `id` (banked for `vcpu`), per the oracle.
    pub fn target(&self, vcpu: VcpuId, id: IntId) -> Option<VcpuId> {
        self.target_of(vcpu, id, self.irq(vcpu, id)?)
    }

    /// [`Vgic::target`] of interrupt `id` whose state the caller already looked up. A private
    /// interrupt (the timers, SGIs: most of what an exit delivers) is decided here, inline; an
    /// SPI or LPI asks the routing ([`Vgic::shared_target`]).
    #[inline(always)]
    fn target_of(&self, vcpu: VcpuId, id: IntId, irq: &IrqState) -> Option<VcpuId> {
        if id.is_private() {
            return irq
                .is_candidate(self.enable_grp0, self.enable_grp1)
                .then_some(vcpu);
        }
        self.shared_target(id, irq)
    }

    /// [`Vgic::target_of`] an SPI or LPI.
    #[inline(never)]
    fn shared_target(&self, id: IntId, irq: &IrqState) -> Option<VcpuId> {
        if id.is_lpi() {
            // An active LPI stays with the vCPU that acknowledged it; a pending one goes where
            // its collection points, if that redistributor's LPIs are on.
            if irq.active {
                return irq.active_on;
            }
            let its = self.its.as_ref()?;
            return irq
                .wants_delivery(self.enable_grp0, self.enable_grp1)
                .then(|| its.lpi(id.0).and_then(|l| its.target_of(l)))
                .flatten();
        }
        // IRM=1 ("1 of N"): exitless picks vCPU 0, one of the participating PEs the
        // architecture lets it choose.
        irq::spi_target(
            irq,
            self.enable_grp0,
            self.enable_grp1,
            self.cpus.len(),
            0,
            |aff| self.vcpu_of_affinity(aff),
        )
    }

    /// Re-evaluates where interrupt `id` should go after a change, queues it there and, if
    /// that vCPU (or the one holding it in an LR) is running, asks for a kick. Returns where.
    fn requeue(&mut self, vcpu: VcpuId, id: IntId) -> Option<VcpuId> {
        let irq = self.irq(vcpu, id)?;
        let resident = irq.resident;
        let target = self.target_of(vcpu, id, irq);
        self.requeue_to(id, resident, target)
    }

    /// [`Vgic::requeue`] once the interrupt's `resident` vCPU and its `target` are known (the
    /// caller looked them up with the state it changed: a private interrupt's target follows
    /// from its own state, [`Vgic::target_of`]).
    #[inline]
    fn requeue_to(
        &mut self,
        id: IntId,
        resident: Option<VcpuId>,
        target: Option<VcpuId>,
    ) -> Option<VcpuId> {
        if let Some(r) = resident
            && self.cpus.get(r).is_some_and(|c| c.running)
        {
            self.kicks |= 1 << r;
        }
        if let Some(t) = target {
            let c = &mut self.cpus[t];
            // LPIs are not in the queue bitmap: every flush looks at the ITS's LPIs.
            if !id.is_lpi() {
                c.queue(id);
            }
            if c.running && resident != Some(t) {
                self.kicks |= 1 << t;
            }
        }
        target
    }

    /// Applies `f` to interrupt `id` (banked for `vcpu`) and requeues it. Returns false if the
    /// interrupt does not exist.
    pub fn update(&mut self, vcpu: VcpuId, id: IntId, f: impl FnOnce(&mut IrqState)) -> bool {
        let (grp0, grp1) = (self.enable_grp0, self.enable_grp1);
        let Some(irq) = self.irq_mut(vcpu, id) else {
            return false;
        };
        f(irq);
        if id.is_private() {
            // Its target follows from the state just changed (`Vgic::target_of`).
            let resident = irq.resident;
            let target = irq.is_candidate(grp0, grp1).then_some(vcpu);
            self.requeue_to(id, resident, target);
        } else {
            self.requeue(vcpu, id);
        }
        true
    }

    /// Records `op` for vCPU `vcpu`'s CPU; kicks the vCPU if it is running, so that it exits
    /// and does it at its next flush.
    fn phys_op(&mut self, vcpu: VcpuId, op: PhysOp) {
        if let Some(c) = self.cpus.get_mut(vcpu)
            && c.phys.record(op)
            && c.running
        {
            self.kicks |= 1 << vcpu;
        }
    }

    /// True if vCPU `vcpu` has physical work recorded (cheap: every exit asks).
    pub fn has_phys(&self, vcpu: VcpuId) -> bool {
        self.cpus.get(vcpu).is_some_and(|c| !c.phys.is_empty())
    }

    /// Up to [`phys::PHYS_BATCH`] interrupts' physical work for vCPU `vcpu`, to be done on its
    /// CPU, in order, and forgets it; call again until it is empty.
    pub fn take_phys(&mut self, vcpu: VcpuId) -> phys::PhysBatch {
        self.cpus
            .get_mut(vcpu)
            .map(|c| c.phys.take())
            .unwrap_or_default()
    }

    /// vCPUs to kick (bit n = vCPU n), and forgets them. The ITS's are kept to the vCPUs that
    /// run (one that does not sees its LPIs at its next flush).
    pub fn take_kicks(&mut self) -> u64 {
        let mut kicks = core::mem::take(&mut self.kicks);
        // Every exit asks: the ITS's kicks cost a look at the vCPUs only when there are some.
        let mut its = self.its.as_mut().map_or(0, |i| i.take_kicks());
        while its != 0 {
            let n = its.trailing_zeros() as usize;
            its &= its - 1;
            if self.cpus.get(n).is_some_and(|c| c.running) {
                kicks |= 1 << n;
            }
        }
        kicks
    }

    /// For the randomized host tests and the fuzzer: takes every vCPU's physical work and the
    /// kicks, and panics (naming `ctx`) unless the work concerns only the `linked` INTIDs, routes
    /// only to vCPUs that exist, and no kick names a vCPU that does not exist.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn drain_checked(&mut self, linked: &[u32], ctx: &dyn core::fmt::Display) {
        let vcpus = self.cpus.len();
        for w in 0..vcpus {
            for op in self.take_phys(w) {
                assert!(
                    linked.contains(&op.intid()),
                    "{ctx}: {op:?} on an unlinked INTID"
                );
                if let PhysOp::Route(_, t) = op {
                    assert!(t < vcpus, "{ctx}: {op:?} to no vCPU");
                }
            }
        }
        assert_eq!(
            self.take_kicks() >> vcpus,
            0,
            "{ctx}: a kick of a vCPU that does not exist"
        );
    }

    /// GICD_CTLR group enables; every interrupt may change its target.
    pub fn set_group_enables(&mut self, grp0: bool, grp1: bool) {
        self.enable_grp0 = grp0;
        self.enable_grp1 = grp1;
        self.requeue_all();
    }

    fn requeue_all(&mut self) {
        for v in 0..self.cpus.len() {
            for i in 0..IntId::PRIVATE_COUNT {
                self.requeue(v, IntId(i));
            }
        }
        for i in 0..self.spis.len() as u32 {
            self.requeue(0, IntId(32 + i));
        }
        let lpis = self.its.as_ref().map_or(0, |i| i.lpis().len());
        for k in 0..lpis {
            if let Some(id) = self
                .its
                .as_ref()
                .and_then(|i| i.lpis().get(k))
                .map(|l| l.intid)
            {
                self.requeue(0, IntId(id));
            }
        }
    }

    // --- Per-interrupt operations, shared by the vGICv2 and vGICv3 register tables. ---

    /// ISENABLER/ICENABLER.
    pub fn set_enabled(&mut self, vcpu: VcpuId, id: IntId, on: bool) {
        self.update(vcpu, id, |i| i.enabled = on);
    }

    /// ISPENDR (true) / ICPENDR (false). Clearing does not lower an asserted level input.
    ///
    /// On a linked interrupt the physical side follows (see the module's "Linked physical
    /// interrupts"): setting pending makes the physical interrupt active; clearing clears its
    /// pending state and, unless the virtual interrupt is active, deactivates it, and a level
    /// interrupt's virtual line drops until the physical line fires again.
    pub fn set_pending(&mut self, vcpu: VcpuId, id: IntId, on: bool) {
        let mut ops = [None, None];
        self.update(vcpu, id, |i| {
            // The physical interrupt is active from injection until the virtual one is done.
            let phys_active = i.active || i.line_level || i.pending_latch;
            if i.resident.is_some() && !on {
                i.pending_request = Some(false);
            }
            i.pending_latch = on;
            if !on {
                i.sgi_sources = 0;
            }
            if let Some(p) = i.hw {
                if on {
                    ops[0] = Some(PhysOp::Activate(p));
                } else {
                    ops[0] = Some(PhysOp::ClearPending(p));
                    if phys_active && !i.active {
                        ops[1] = Some(PhysOp::Deactivate(p));
                        if i.trigger == Trigger::Level {
                            i.line_level = false;
                        }
                    }
                }
            }
        });
        for op in ops.into_iter().flatten() {
            self.phys_op(vcpu, op);
        }
    }

    /// ISACTIVER (true) / ICACTIVER (false). On a linked interrupt the physical one is made
    /// active or deactivated with it; a deactivated level interrupt's virtual line drops until
    /// the physical line fires again.
    pub fn set_active(&mut self, vcpu: VcpuId, id: IntId, on: bool) {
        let mut op = None;
        self.update(vcpu, id, |i| {
            if i.resident.is_some() {
                i.active_request = Some(on);
            }
            if let Some(p) = i.hw {
                if on {
                    op = Some(PhysOp::Activate(p));
                } else if i.active || (i.trigger == Trigger::Level && i.line_level) {
                    op = Some(PhysOp::Deactivate(p));
                    if i.trigger == Trigger::Level {
                        i.line_level = false;
                    }
                }
            }
            i.active = on;
            if !on {
                i.active_on = None;
            }
        });
        if let Some(op) = op {
            self.phys_op(vcpu, op);
        }
    }

    /// IPRIORITYR (the unimplemented low bits read as zero).
    pub fn set_priority(&mut self, vcpu: VcpuId, id: IntId, prio: u8) {
        let p = prio & self.pri_mask;
        self.update(vcpu, id, |i| i.priority = p);
    }

    /// ICFGR (SGIs are always edge-triggered).
    pub fn set_trigger(&mut self, vcpu: VcpuId, id: IntId, t: Trigger) {
        if !id.is_sgi() {
            self.update(vcpu, id, |i| i.trigger = t);
        }
    }

    /// IGROUPR.
    pub fn set_group1(&mut self, vcpu: VcpuId, id: IntId, g1: bool) {
        self.update(vcpu, id, |i| i.group1 = g1);
    }

    /// IROUTER / ITARGETSR of an SPI, written by vCPU `vcpu`. A linked SPI's physical twin
    /// follows to the CPU of the vCPU it is now routed to (the one the model would deliver it
    /// to: the affinity's vCPU, vCPU 0 for IRM = 1, the lowest target of a GICv2 target list).
    /// A route to no vCPU leaves the physical route alone: nothing is delivered anyway.
    pub fn set_route(&mut self, vcpu: VcpuId, id: IntId, route: Route) {
        if !id.is_spi() {
            return;
        }
        self.update(vcpu, id, |i| i.route = route);
        let Some(phys) = self.irq(vcpu, id).and_then(|i| i.hw) else {
            return;
        };
        let dest = match route {
            Route::Affinity(aff) => self.vcpu_of_affinity(aff),
            Route::Any(_) => Some(0),
            Route::Targets(_) if self.cpus.len() == 1 => Some(0),
            Route::Targets(mask) => {
                let mask = mask as u32 & ((1u32 << self.cpus.len().min(8)) - 1);
                (mask != 0).then(|| mask.trailing_zeros() as VcpuId)
            }
        };
        if let Some(d) = dest {
            self.phys_op(vcpu, PhysOp::Route(phys, d));
        }
    }

    /// Links SPI `id` to physical SPI `phys` from the start (a passed-through device's
    /// interrupt): the model then keeps the physical one's state and route in step with the
    /// guest's writes even before it first fires.
    pub fn link_spi(&mut self, id: IntId, phys: u32) {
        if id.is_spi()
            && let Some(i) = self.irq_mut(0, id)
        {
            i.hw = Some(phys);
        }
    }

    /// Puts every linked SPI's physical twin in the state its virtual one has after reset:
    /// inactive and routed to vCPU 0 (recorded for vCPU 0's CPU). SYSTEM_RESET calls it on
    /// the new vGIC, so that what the guest left behind (an SPI it never completed, a route to
    /// another vCPU) does not outlive the reset.
    pub fn reset_linked_spis(&mut self) {
        let linked: Vec<u32> = (32..1020)
            .filter_map(|n| self.irq(0, IntId(n)).and_then(|i| i.hw))
            .collect();
        for phys in linked {
            self.phys_op(0, PhysOp::Deactivate(phys));
            self.phys_op(0, PhysOp::Route(phys, 0));
        }
    }

    // --- Injection from devices and the hypervisor. ---

    /// Sets the level of a level-sensitive input (emulated devices, linked physical lines).
    pub fn set_line_level(&mut self, vcpu: VcpuId, id: IntId, level: bool) {
        self.update(vcpu, id, |i| i.line_level = level);
    }

    /// A rising edge on an edge-triggered input (or a level pulse on a level one).
    pub fn inject_edge(&mut self, vcpu: VcpuId, id: IntId) {
        self.update(vcpu, id, |i| i.pending_latch = true);
    }

    /// Links virtual interrupt `id` to physical `phys` (LR HW bit) and makes it pending: the
    /// physical interrupt fired and stays active until the guest deactivates the virtual one.
    pub fn inject_hw(&mut self, vcpu: VcpuId, id: IntId, phys: u32) {
        self.update(vcpu, id, |i| {
            i.hw = Some(phys);
            match i.trigger {
                Trigger::Level => i.line_level = true,
                Trigger::Edge => i.pending_latch = true,
            }
        });
    }

    /// The physical line of linked level-sensitive interrupt `id` of `vcpu` was sampled at an
    /// exit (the timers: CNTx_CTL ENABLE and ISTATUS set, IMASK clear). If it dropped while the
    /// virtual interrupt is only pending (neither active nor in a list register), its virtual
    /// level drops too and the physical interrupt, left active when it was injected, is
    /// deactivated so that it can fire again (KVM `vgic_v3_fold_lr_state`: "If this causes us
    /// to lower the level, we have to also clear the physical active state"). Without this a
    /// guest that masks its timer before taking the interrupt (or while the PPI is disabled)
    /// keeps seeing it pending. Returns the model's level afterwards (the run loop resamples
    /// again at the next exit only while it is high, `cpu_if::FoldSkip`).
    pub fn resample_hw_level(&mut self, vcpu: VcpuId, id: IntId, level: bool) -> bool {
        let Some(i) = self.irq(vcpu, id) else {
            return false;
        };
        if !i.line_level {
            return false;
        }
        let stale = !level
            && i.hw.is_some()
            && i.trigger == Trigger::Level
            && !i.active
            && i.resident.is_none();
        if !stale {
            return true;
        }
        let mut phys = None;
        self.update(vcpu, id, |i| {
            i.line_level = false;
            phys = i.hw;
        });
        if let Some(p) = phys {
            self.phys_op(vcpu, PhysOp::Deactivate(p));
        }
        false
    }

    /// Makes SGI `sgi` pending on each vCPU in `targets` (bit n = vCPU n), from vCPU `source`.
    /// With `group1_allowed == false` (ICC_SGI0R_EL1, ICC_ASGI1R_EL1 in a single security
    /// state) only SGIs configured as group 0 are generated.
    pub fn send_sgi(&mut self, source: VcpuId, sgi: u32, targets: u64, group1_allowed: bool) {
        let id = IntId(sgi & 0xf);
        let v2 = self.version == GicVersion::V2;
        let exist = u32::try_from(self.cpus.len())
            .ok()
            .and_then(|n| 1u64.checked_shl(n))
            .map_or(u64::MAX, |b| b - 1);
        // The targets' bits only (usually one).
        let mut rest = targets & exist;
        while rest != 0 {
            let t = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            self.update(t, id, |i| {
                if !group1_allowed && i.group1 {
                    return;
                }
                if v2 {
                    i.sgi_sources |= 1 << (source & 7);
                } else {
                    i.pending_latch = true;
                }
            });
        }
    }

    /// Resets one vCPU's private interrupts and list-register bookkeeping (PSCI CPU_ON of a
    /// vCPU that was off). Its linked physical interrupts are deactivated (recorded for its
    /// CPU).
    pub fn reset_vcpu(&mut self, vcpu: VcpuId) {
        let v2 = self.version == GicVersion::V2;
        let Some(c) = self.cpus.get_mut(vcpu) else {
            return;
        };
        for (i, irq) in c.private.iter_mut().enumerate() {
            // Every linked private interrupt starts physically inactive: deactivating an idle
            // one is harmless, and it overrides whatever stale activation the guest asked for
            // while this vCPU was off (ISPENDR/ISACTIVER in its frame).
            if let Some(p) = irq.hw {
                c.phys.record(PhysOp::Deactivate(p));
            }
            let hw = irq.hw;
            *irq = IrqState::reset(IntId(i as u32), v2);
            irq.hw = hw;
        }
        c.lrs = [None; MAX_LRS];
        c.lrs_loaded = 0;
        c.outside_active.clear();
        c.queued = [0; 16];
        c.queued_words = 0;
        c.running = false;
        c.dir_trapped = false;
    }
}

#[cfg(test)]
mod tests;
