//! vGICv3 SGI generation: decoding of a guest's (trapped) write to ICC_SGI1R_EL1,
//! ICC_ASGI1R_EL1 or ICC_SGI0R_EL1 and the set of vCPUs it targets.
//!
//! Spec: IHI 0069H 12.2.22 (ICC_SGI1R_EL1; ICC_ASGI1R_EL1 and ICC_SGI0R_EL1 share its layout):
//! TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2 39:32, IRM 40, RS 47:44, Aff3 55:48.
//! "IRM = 0: interrupts routed to the PEs specified by Aff3.Aff2.Aff1.`<target list>`"; "IRM =
//! 1: interrupts routed to all PEs in the system, excluding 'self'"; "RS: the range of
//! affinity level 0 values: TargetList bit n targets Aff0 = RS * 16 + n". Compared against
//! Linux KVM `vgic_v3_dispatch_sgi`.
//!
//! Invariants:
//! * A target-list bit naming an affinity no vCPU has is ignored, never an error.
//! * Target sets are 64-bit masks (bit n = vCPU n), like the rest of the model's vCPU sets; a
//!   vCPU with an index of 64 or more is never targeted.

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

use super::Vgic;
use super::irq::VcpuId;

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u64,
        /// ICC_SGI1R_EL1 / ICC_ASGI1R_EL1 / ICC_SGI0R_EL1.
        pub ICC_SGIR [
            TargetList OFFSET(0) NUMBITS(16) [],
            Aff1 OFFSET(16) NUMBITS(8) [],
            INTID OFFSET(24) NUMBITS(4) [],
            Aff2 OFFSET(32) NUMBITS(8) [],
            IRM OFFSET(40) NUMBITS(1) [],
            RS OFFSET(44) NUMBITS(4) [],
            Aff3 OFFSET(48) NUMBITS(8) []
        ],
        /// A vCPU affinity as the model stores it (the GICD_IROUTER layout).
        pub AFFINITY [
            Aff0 OFFSET(0) NUMBITS(8) [],
            Aff1 OFFSET(8) NUMBITS(8) [],
            Aff2 OFFSET(16) NUMBITS(8) [],
            Aff3 OFFSET(32) NUMBITS(8) []
        ]
    }
}

use fields::{AFFINITY, ICC_SGIR};

/// Aff0 values one TargetList covers (its width): `RS` selects which 16.
const TARGET_LIST_LEN: u64 = 16;

/// Bit `v` of a vCPU mask, or 0 for a vCPU the mask cannot hold.
fn vcpu_bit(v: VcpuId) -> u64 {
    u32::try_from(v)
        .ok()
        .and_then(|n| 1u64.checked_shl(n))
        .unwrap_or(0)
}

/// The vCPUs (bit n = vCPU n) an ICC_SGI1R_EL1 `value` written by vCPU `sender` targets, given
/// each vCPU's affinity (`vcpu_affinities[n]` for vCPU n, GICD_IROUTER layout: Aff3 in 39:32,
/// Aff2..Aff0 in 23:0).
pub fn sgi1r_targets(value: u64, sender: VcpuId, vcpu_affinities: &[u64]) -> u64 {
    targets(value, sender, vcpu_affinities.len(), |aff| {
        vcpu_affinities.iter().position(|&a| a == aff)
    })
}

/// [`sgi1r_targets`] over any affinity-to-vCPU lookup.
fn targets(
    value: u64,
    sender: VcpuId,
    vcpu_count: usize,
    vcpu_of_affinity: impl Fn(u64) -> Option<VcpuId>,
) -> u64 {
    let r = LocalRegisterCopy::<u64, ICC_SGIR::Register>::new(value);
    if r.is_set(ICC_SGIR::IRM) {
        // "Interrupts routed to all PEs in the system, excluding self."
        let all = (0..vcpu_count).fold(0, |m, v| m | vcpu_bit(v));
        return all & !vcpu_bit(sender);
    }
    let upper = AFFINITY::Aff3.val(r.read(ICC_SGIR::Aff3))
        + AFFINITY::Aff2.val(r.read(ICC_SGIR::Aff2))
        + AFFINITY::Aff1.val(r.read(ICC_SGIR::Aff1));
    let mut list = r.read(ICC_SGIR::TargetList) & ((1 << TARGET_LIST_LEN) - 1);
    let first_aff0 = r.read(ICC_SGIR::RS) * TARGET_LIST_LEN;
    let mut out = 0;
    // Only the listed targets (usually one bit of the 16).
    while list != 0 {
        let n = u64::from(list.trailing_zeros());
        list &= list - 1;
        // "TargetList bit n targets the PE with Aff0 = RS * 16 + n" (at most 255).
        let aff = (upper + AFFINITY::Aff0.val(first_aff0 + n)).value;
        if let Some(v) = vcpu_of_affinity(aff) {
            out |= vcpu_bit(v);
        }
    }
    out
}

impl Vgic {
    /// A trapped write of `value` to ICC_SGI1R_EL1 (`group1_allowed = true`), ICC_SGI0R_EL1 or
    /// ICC_ASGI1R_EL1 (`false`: with one security state, ASGI1R names the other state's group
    /// 1, so like SGI0R it only generates group 0 SGIs; KVM does the same) by vCPU `vcpu`:
    /// makes SGI `INTID` pending on every targeted vCPU, with `vcpu` as its source. A write
    /// from a vCPU that does not exist is ignored.
    pub fn sgi_register_write(&mut self, vcpu: VcpuId, value: u64, group1_allowed: bool) {
        if self.cpu(vcpu).is_none() {
            return;
        }
        let targets = targets(value, vcpu, self.vcpu_count(), |aff| {
            self.vcpu_of_affinity(aff)
        });
        let sgi = LocalRegisterCopy::<u64, ICC_SGIR::Register>::new(value).read(ICC_SGIR::INTID);
        if targets != 0 {
            self.send_sgi(vcpu, sgi as u32, targets, group1_allowed);
        }
    }
}

#[cfg(test)]
mod tests;
