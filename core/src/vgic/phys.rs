//! The physical work a vCPU owes its linked interrupts, kept as *desired state*, not as a queue
//! of operations.
//!
//! The model asks for [`PhysOp`]s on a linked interrupt's physical twin (see the parent
//! module's "Linked physical interrupts"); only the vCPU's own CPU may do them (its PPIs are
//! banked). A queue of operations grows with every guest write until that vCPU runs again,
//! and a vCPU that is off never runs: a guest writing GICR_ISACTIVER0 in a powered-off vCPU's
//! frame in a loop would grow hypervisor memory without bound. So each interrupt keeps only
//! what its physical side must end up as: pending cleared or not, active or inactive (the last
//! request wins), routed to which vCPU (the last route wins). Recording is idempotent and
//! allocates nothing: the state is a fixed array by physical INTID plus a bitmap of INTIDs
//! with work.
//!
//! Reconciling applies, per interrupt: clear pending, then make active or deactivate, then
//! route. That order has the effect of the operations in any order the model asks them: a
//! clear of the pending state never undoes an activation, and the last activation request is
//! the one the guest's registers show.
//!
//! Invariant: memory is fixed at creation (`MAX_PHYS_INTID` entries), and one [`PhysWork::take`]
//! returns at most [`PHYS_BATCH`] interrupts' work.

use heapless::Vec as HVec;

use super::PhysOp;
use super::irq::VcpuId;

/// Physical INTIDs that can be linked: SGIs, PPIs and SPIs (LPIs are not linked this way).
pub const MAX_PHYS_INTID: usize = 1024;
/// Interrupts whose work one [`PhysWork::take`] returns (the caller takes again until empty).
pub const PHYS_BATCH: usize = 16;
/// Operations one batch can hold: three per interrupt at most.
pub const PHYS_BATCH_OPS: usize = 3 * PHYS_BATCH;

/// One batch of physical operations, in the order to apply them.
pub type PhysBatch = HVec<PhysOp, PHYS_BATCH_OPS>;

const CLEAR_PENDING: u16 = 1 << 0;
const ACTIVATE: u16 = 1 << 1;
const DEACTIVATE: u16 = 1 << 2;
const ROUTE: u16 = 1 << 3;
const ROUTE_SHIFT: u32 = 8;

/// The desired physical state of every linked interrupt of one vCPU.
#[derive(Clone)]
pub struct PhysWork {
    /// Per physical INTID: flags and, in bits 8-15, the route's vCPU.
    work: [u16; MAX_PHYS_INTID],
    /// INTIDs with work.
    pending: [u64; MAX_PHYS_INTID / 64],
    /// How many bits of `pending` are set (so that "no work", every exit's case, is one load).
    count: u16,
}

impl core::fmt::Debug for PhysWork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PhysWork")
            .field("interrupts", &self.len())
            .finish()
    }
}

impl Default for PhysWork {
    fn default() -> Self {
        PhysWork {
            work: [0; MAX_PHYS_INTID],
            pending: [0; MAX_PHYS_INTID / 64],
            count: 0,
        }
    }
}

impl PhysWork {
    /// Records `op`. Returns false (and records nothing) for an INTID that cannot be linked.
    pub fn record(&mut self, op: PhysOp) -> bool {
        let p = op.intid() as usize;
        let Some(w) = self.work.get_mut(p) else {
            return false;
        };
        match op {
            PhysOp::ClearPending(_) => *w |= CLEAR_PENDING,
            PhysOp::Activate(_) => *w = (*w & !DEACTIVATE) | ACTIVATE,
            PhysOp::Deactivate(_) => *w = (*w & !ACTIVATE) | DEACTIVATE,
            PhysOp::Route(_, v) => {
                // vCPU numbers are below 64 (a VM has at most MAX_CPUS vCPUs).
                *w = (*w & 0xff) | ROUTE | ((v.min(0xff) as u16) << ROUTE_SHIFT);
            }
        }
        let bit = 1 << (p % 64);
        if self.pending[p / 64] & bit == 0 {
            self.pending[p / 64] |= bit;
            self.count += 1;
        }
        true
    }

    /// True if no interrupt has work.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Interrupts with work.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Takes the work of up to [`PHYS_BATCH`] interrupts, lowest INTID first, as operations in
    /// the order to apply them; the rest stays for the next call.
    pub fn take(&mut self) -> PhysBatch {
        let mut out = PhysBatch::new();
        if self.count == 0 {
            return out;
        }
        let mut taken = 0;
        for word in 0..self.pending.len() {
            while self.pending[word] != 0 && taken < PHYS_BATCH {
                let bit = self.pending[word].trailing_zeros() as usize;
                self.pending[word] &= !(1 << bit);
                self.count -= 1;
                let p = word * 64 + bit;
                let w = core::mem::take(&mut self.work[p]);
                let intid = p as u32;
                // Capacity: three per interrupt, PHYS_BATCH interrupts.
                if w & CLEAR_PENDING != 0 {
                    let _ = out.push(PhysOp::ClearPending(intid));
                }
                if w & ACTIVATE != 0 {
                    let _ = out.push(PhysOp::Activate(intid));
                }
                if w & DEACTIVATE != 0 {
                    let _ = out.push(PhysOp::Deactivate(intid));
                }
                if w & ROUTE != 0 {
                    let v = (w >> ROUTE_SHIFT) as VcpuId;
                    let _ = out.push(PhysOp::Route(intid, v));
                }
                taken += 1;
            }
            if taken == PHYS_BATCH {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_requests_on_one_interrupt_keep_one_entry() {
        let mut w = PhysWork::default();
        for _ in 0..2_000_000 {
            w.record(PhysOp::Activate(27));
        }
        assert_eq!(w.len(), 1);
        assert_eq!(w.take(), [PhysOp::Activate(27)]);
        assert!(w.is_empty());
    }

    #[test]
    fn the_last_activation_request_wins() {
        let mut w = PhysWork::default();
        w.record(PhysOp::Activate(27));
        w.record(PhysOp::Deactivate(27));
        assert_eq!(w.take(), [PhysOp::Deactivate(27)]);
        w.record(PhysOp::Deactivate(27));
        w.record(PhysOp::Activate(27));
        assert_eq!(w.take(), [PhysOp::Activate(27)]);
    }

    #[test]
    fn clear_pending_comes_before_the_activation_state_and_the_route_last() {
        let mut w = PhysWork::default();
        w.record(PhysOp::Route(40, 1));
        w.record(PhysOp::Deactivate(40));
        w.record(PhysOp::ClearPending(40));
        w.record(PhysOp::Route(40, 3));
        assert_eq!(
            w.take(),
            [
                PhysOp::ClearPending(40),
                PhysOp::Deactivate(40),
                PhysOp::Route(40, 3)
            ]
        );
    }

    #[test]
    fn work_is_taken_in_batches_lowest_intid_first_until_empty() {
        let mut w = PhysWork::default();
        for p in (32..1020).rev() {
            w.record(PhysOp::Deactivate(p));
        }
        let mut seen = alloc::vec::Vec::new();
        loop {
            let batch = w.take();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= PHYS_BATCH);
            seen.extend(batch.iter().map(|op| op.intid()));
        }
        assert_eq!(seen, (32..1020).collect::<alloc::vec::Vec<_>>());
    }

    #[test]
    fn an_intid_that_cannot_be_linked_is_refused() {
        let mut w = PhysWork::default();
        assert!(!w.record(PhysOp::Activate(8192)));
        assert!(w.is_empty());
    }
}
