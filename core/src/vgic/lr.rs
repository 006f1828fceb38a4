//! List-register encodings: what one interrupt looks like in an ICH_LR<n>_EL2 (GICv3) or a
//! GICH_LR<n> (GICv2) register, and back. One scheduler (`cpu_if`) drives both through
//! [`LrFormat`].
//!
//! Specs: IHI 0069H 12.5.10 ICH_LR<n>_EL2 (vINTID 31:0, pINTID 44:32, EOI 41 when HW=0,
//! Priority 55:48, Group 60, HW 61, State 63:62); IHI 0048B 5.3.9 GICH_LR<n> (VirtualID 9:0,
//! PhysicalID 19:10 when HW=1, else EOI 19 and CPUID 12:10 (the SGI source), Priority 27:23 (the
//! top 5 bits of the 8-bit priority: "The GICv2 LR only holds five bits of priority"), State
//! 29:28, Grp1 30, HW 31).
//!
//! Invariant: the HW bit is only ever set with a physical ID below 1020 (never for LPIs or SGIs)
//! and never together with the EOI maintenance bit (the architecture overlays them).

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u64,
        pub ICH_LR [
            vINTID OFFSET(0) NUMBITS(32) [],
            pINTID OFFSET(32) NUMBITS(13) [],
            EOI OFFSET(41) NUMBITS(1) [],
            Priority OFFSET(48) NUMBITS(8) [],
            Group OFFSET(60) NUMBITS(1) [],
            HW OFFSET(61) NUMBITS(1) [],
            State OFFSET(62) NUMBITS(2) []
        ]
    }

    register_bitfields! {u32,
        pub GICH_LR [
            VirtualID OFFSET(0) NUMBITS(10) [],
            PhysicalID OFFSET(10) NUMBITS(10) [],
            CPUID OFFSET(10) NUMBITS(3) [],
            EOI OFFSET(19) NUMBITS(1) [],
            Priority OFFSET(23) NUMBITS(5) [],
            State OFFSET(28) NUMBITS(2) [],
            Grp1 OFFSET(30) NUMBITS(1) [],
            HW OFFSET(31) NUMBITS(1) []
        ]
    }
}

use fields::{GICH_LR, ICH_LR};

/// Most list registers any GIC implements (ICH_VTR_EL2.ListRegs is 4 bits).
pub const MAX_LRS: usize = 16;

/// Which register layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrFormat {
    /// GICH_LR<n>, 32 bits.
    V2,
    /// ICH_LR<n>_EL2, 64 bits.
    V3,
}

/// An interrupt's state in a list register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LrState {
    /// Pending.
    pub pending: bool,
    /// Active.
    pub active: bool,
}

impl LrState {
    const fn bits(self) -> u64 {
        (self.pending as u64) | ((self.active as u64) << 1)
    }

    const fn from_bits(b: u64) -> Self {
        LrState {
            pending: b & 1 != 0,
            active: b & 2 != 0,
        }
    }

    /// Neither pending nor active: the LR is free.
    pub const fn is_invalid(self) -> bool {
        !self.pending && !self.active
    }
}

/// Everything that goes into one list register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LrEntry {
    /// The virtual interrupt ID the guest sees.
    pub vintid: u32,
    /// Pending/active.
    pub state: LrState,
    /// 8-bit priority (the format keeps the bits the hardware has).
    pub priority: u8,
    /// Group 1 (true) or 0.
    pub group1: bool,
    /// The linked physical interrupt (HW bit).
    pub hw: Option<u32>,
    /// Ask for a maintenance interrupt when the guest EOIs it (HW=0 only).
    pub eoi_maintenance: bool,
    /// GICv2 SGIs: the source CPU interface the guest reads in GICC_IAR.
    pub source: u8,
}

impl LrFormat {
    /// The register value for `e`.
    pub fn encode(self, e: &LrEntry) -> u64 {
        let hw = e.hw.filter(|&p| p < 1020 && e.vintid >= 16);
        match self {
            LrFormat::V3 => {
                let mut v = LocalRegisterCopy::<u64, ICH_LR::Register>::new(0);
                v.modify(
                    ICH_LR::vINTID.val(e.vintid as u64)
                        + ICH_LR::Priority.val(e.priority as u64)
                        + ICH_LR::Group.val(e.group1 as u64)
                        + ICH_LR::State.val(e.state.bits()),
                );
                match hw {
                    Some(p) => v.modify(ICH_LR::HW::SET + ICH_LR::pINTID.val(p as u64)),
                    None if e.eoi_maintenance => v.modify(ICH_LR::EOI::SET),
                    None => {}
                }
                // A GICv2 guest on a GICv3 host (legacy mode): an SGI's source CPU goes in
                // vINTID bits 12:10, where the guest's GICV_IAR reports it.
                if e.vintid < 16 && hw.is_none() {
                    v.modify(ICH_LR::vINTID.val((e.vintid | (e.source as u32 & 7) << 10) as u64));
                }
                v.get()
            }
            LrFormat::V2 => {
                let mut v = LocalRegisterCopy::<u32, GICH_LR::Register>::new(0);
                v.modify(
                    GICH_LR::VirtualID.val(e.vintid & 0x3ff)
                        + GICH_LR::Priority.val((e.priority >> 3) as u32)
                        + GICH_LR::Grp1.val(e.group1 as u32)
                        + GICH_LR::State.val(e.state.bits() as u32),
                );
                match hw {
                    Some(p) => v.modify(GICH_LR::HW::SET + GICH_LR::PhysicalID.val(p)),
                    None => {
                        if e.vintid < 16 {
                            v.modify(GICH_LR::CPUID.val(e.source as u32 & 7));
                        }
                        if e.eoi_maintenance {
                            v.modify(GICH_LR::EOI::SET);
                        }
                    }
                }
                v.get() as u64
            }
        }
    }

    /// The state field of a register value read back after the guest ran.
    pub fn state(self, raw: u64) -> LrState {
        match self {
            LrFormat::V3 => LrState::from_bits(
                LocalRegisterCopy::<u64, ICH_LR::Register>::new(raw).read(ICH_LR::State),
            ),
            LrFormat::V2 => LrState::from_bits(
                LocalRegisterCopy::<u32, GICH_LR::Register>::new(raw as u32).read(GICH_LR::State)
                    as u64,
            ),
        }
    }

    /// The virtual interrupt ID field of a register value (without a GICv2 SGI's source).
    pub fn vintid(self, raw: u64) -> u32 {
        match self {
            LrFormat::V3 if (raw as u32) < 1 << 13 && (raw as u32 & 0x3ff) < 16 => {
                raw as u32 & 0x3ff
            }
            LrFormat::V3 => raw as u32,
            LrFormat::V2 => raw as u32 & 0x3ff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vintid: u32) -> LrEntry {
        LrEntry {
            vintid,
            state: LrState {
                pending: true,
                active: false,
            },
            priority: 0xa0,
            group1: true,
            hw: None,
            eoi_maintenance: false,
            source: 0,
        }
    }

    #[test]
    fn v3_lr_pending_group1_priority() {
        // State=01 (63:62), Group=1 (60), Priority 0xa0 (55:48), vINTID 27.
        assert_eq!(LrFormat::V3.encode(&entry(27)), 0x50a0_0000_0000_001b);
    }

    #[test]
    fn v3_hw_bit_carries_the_physical_id() {
        let mut e = entry(27);
        e.hw = Some(27);
        e.eoi_maintenance = true;
        let v = LrFormat::V3.encode(&e);
        assert_eq!(v, 0x70a0_001b_0000_001b, "HW=1, pINTID=27, and no EOI bit");
    }

    #[test]
    fn v3_eoi_maintenance_only_without_hw() {
        let mut e = entry(33);
        e.eoi_maintenance = true;
        assert_eq!(LrFormat::V3.encode(&e) & (1 << 41), 1 << 41);
    }

    #[test]
    fn hw_bit_never_for_sgis_or_special_ids() {
        let mut e = entry(5);
        e.hw = Some(5);
        assert_eq!(LrFormat::V3.encode(&e) & (1 << 61), 0);
        let mut e = entry(40);
        e.hw = Some(8192);
        assert_eq!(
            LrFormat::V3.encode(&e) & (1 << 61),
            0,
            "an LPI cannot be HW-linked"
        );
    }

    #[test]
    fn v2_lr_keeps_five_priority_bits_and_sgi_source() {
        let mut e = entry(3);
        e.priority = 0xa7;
        e.source = 2;
        // State=01 (29:28), Grp1 (30), Priority 0xa0>>3 = 0x14 (27:23), CPUID 2 (12:10), ID 3.
        assert_eq!(LrFormat::V2.encode(&e), 0x5a00_0803);
    }

    #[test]
    fn v2_hw_bit_with_10_bit_physical_id() {
        let mut e = entry(27);
        e.hw = Some(27);
        e.state = LrState {
            pending: false,
            active: true,
        };
        // HW (31), State=10, Grp1, prio 0x14, PhysicalID 27 (19:10), VirtualID 27.
        assert_eq!(LrFormat::V2.encode(&e), 0xea00_6c1b);
    }

    #[test]
    fn v3_lr_of_a_gicv2_guest_sgi_carries_its_source_in_vintid_12_10() {
        let mut e = entry(2);
        e.source = 3;
        let v = LrFormat::V3.encode(&e);
        assert_eq!(v & 0xffff_ffff, 3 << 10 | 2);
        assert_eq!(LrFormat::V3.vintid(v), 2);
    }

    #[test]
    fn state_round_trips_in_both_formats() {
        for f in [LrFormat::V2, LrFormat::V3] {
            for (p, a) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut e = entry(40);
                e.state = LrState {
                    pending: p,
                    active: a,
                };
                assert_eq!(f.state(f.encode(&e)), e.state);
                assert_eq!(f.vintid(f.encode(&e)), 40);
            }
        }
    }
}
