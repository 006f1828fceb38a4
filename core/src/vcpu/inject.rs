//! Injecting a synchronous exception into the guest's EL1: what the hardware would have done had
//! the exception been taken to EL1 instead of trapping to EL2.
//!
//! Spec: Arm ARM DDI 0487, D1 "Exception entry" (what PSTATE, ELR and SPSR become) and
//! "Exception vectors" (the vector table offsets), D24.2 "ESR_EL1" (the syndromes built here)
//! and "SCTLR_EL1" (SPAN, DSSBS). Reference implementation: Linux KVM
//! `arch/arm64/kvm/hyp/exception.c` (`enter_exception64`) and `inject_fault.c` (`inject_abt64`,
//! `inject_undef64`).
//!
//! The pure part computes; the shell moves values. The shell reads VBAR_EL1 and SCTLR_EL1,
//! calls [`inject_sync`], and writes the resulting [`El1Exception`] to ELR_EL1, SPSR_EL1,
//! ESR_EL1 and (when `Some`) FAR_EL1 before it resumes the guest at the new PC and PSTATE.
//!
//! Invariants:
//!
//! * Exceptions are injected into AArch64 EL1h with D, A, I and F masked, as hardware takes them.
//!   The guest's EL1 is AArch64 (exitless runs no AArch32 kernels); its EL0 may be AArch32.
//! * The preferred return address is the guest's current PC: inject before advancing it.
//! * All address arithmetic wraps; nothing here can panic.

use tock_registers::fields::FieldValue;
use tock_registers::{LocalRegisterCopy, RegisterLongName, register_bitfields};

use super::regs::{GuestRegs, SPSR_EL2};
use crate::trap::esr::{ESR_ELx, ESR_ISS_DABT, ESR_ISS_IABT, ExceptionClass, FaultStatus};

register_bitfields! {u64,
    /// The SCTLR_EL1 fields exception entry depends on (DDI 0487 D24.2 "SCTLR_EL1").
    #[allow(missing_docs)]
    pub SCTLR_EL1 [
        /// Default PSTATE.SSBS value on exception entry (FEAT_SSBS; RES0 otherwise).
        DSSBS OFFSET(44) NUMBITS(1) [],
        /// Set Privileged Access Never on taking an exception to EL1: 0 sets PSTATE.PAN, 1 leaves
        /// it unchanged. RES1 without FEAT_PAN.
        SPAN OFFSET(23) NUMBITS(1) []
    ]
}

/// Vector offset for an exception from the current EL (EL1) while using SP_EL0 (EL1t).
pub const VECTOR_CURRENT_EL_SP0: u64 = 0x000;
/// Vector offset for an exception from the current EL (EL1) while using SP_EL1 (EL1h).
pub const VECTOR_CURRENT_EL_SPX: u64 = 0x200;
/// Vector offset for an exception from a lower EL (EL0) in AArch64 state.
pub const VECTOR_LOWER_EL_AARCH64: u64 = 0x400;
/// Vector offset for an exception from a lower EL (EL0) in AArch32 state.
pub const VECTOR_LOWER_EL_AARCH32: u64 = 0x600;

/// The kind of exception, which selects the entry within a group of four vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum ExceptionType {
    /// Synchronous exception: +0x000.
    Sync = 0x000,
    /// IRQ: +0x080.
    Irq = 0x080,
    /// FIQ: +0x100.
    Fiq = 0x100,
    /// SError: +0x180.
    SError = 0x180,
}

/// The EL1 system registers an injected exception writes. The shell copies them to the
/// hardware (or to the saved EL1 context) before resuming the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1Exception {
    /// ELR_EL1: the preferred return address, the guest PC at the exit.
    pub elr_el1: u64,
    /// SPSR_EL1: the guest PSTATE at the exit.
    pub spsr_el1: u64,
    /// ESR_EL1: the syndrome.
    pub esr_el1: u64,
    /// FAR_EL1 for aborts; `None` when the exception does not set it (FAR_EL1 is then UNKNOWN,
    /// and the shell leaves the register alone).
    pub far_el1: Option<u64>,
}

/// The PSTATE of `pstate` viewed through its fields.
fn spsr(pstate: u64) -> LocalRegisterCopy<u64, SPSR_EL2::Register> {
    LocalRegisterCopy::new(pstate)
}

/// The vector offset (relative to VBAR_EL1) of an exception taken to EL1 from a guest whose
/// PSTATE was `pstate`: EL1t +0x000, EL1h +0x200, AArch64 EL0 +0x400, AArch32 +0x600.
///
/// A mode the guest cannot be in (EL2, EL3 or a reserved M value, which SPSR_EL2 never reports
/// for a guest exit) is treated as a lower AArch64 EL, like KVM's `enter_exception64`.
pub fn vector_offset(pstate: u64) -> u64 {
    let pstate = spsr(pstate);
    if pstate.is_set(SPSR_EL2::M4) {
        return VECTOR_LOWER_EL_AARCH32;
    }
    match pstate.read_as_enum(SPSR_EL2::M) {
        Some(SPSR_EL2::M::Value::EL1t) => VECTOR_CURRENT_EL_SP0,
        Some(SPSR_EL2::M::Value::EL1h) => VECTOR_CURRENT_EL_SPX,
        _ => VECTOR_LOWER_EL_AARCH64,
    }
}

/// The address an exception of type `kind` taken to EL1 from `pstate` starts at.
pub fn vector_address(vbar_el1: u64, pstate: u64, kind: ExceptionType) -> u64 {
    vbar_el1
        .wrapping_add(vector_offset(pstate))
        .wrapping_add(kind as u64)
}

/// Whether an exception taken from `pstate` comes from EL0 (AArch64 EL0t or any AArch32 mode,
/// since an AArch64 EL1 guest runs only EL0 in AArch32), as opposed to from EL1 itself. This
/// selects between the "lower EL" and "same EL" exception classes of an abort.
pub fn taken_from_el0(pstate: u64) -> bool {
    let pstate = spsr(pstate);
    pstate.is_set(SPSR_EL2::M4) || pstate.matches_all(SPSR_EL2::M::EL0t)
}

/// The PSTATE after an exception is taken to EL1h from `old`, following KVM's
/// `enter_exception64` and the Arm ARM rules it cites:
///
/// * N, Z, C, V and DIT are kept;
/// * PAN is kept, and set if SCTLR_EL1.SPAN is 0 (SPAN is RES1 without FEAT_PAN, so an ARMv8.0
///   guest that follows the RES1 rule never sees PAN change);
/// * SSBS becomes SCTLR_EL1.DSSBS;
/// * UAO, SS, IL, BTYPE and TCO become 0 (TCO would be set for an MTE guest; exitless hides
///   MTE);
/// * D, A, I, F are set, and the mode is EL1h.
pub fn exception_entry_pstate(old: u64, sctlr_el1: u64) -> u64 {
    let sctlr = LocalRegisterCopy::<u64, SCTLR_EL1::Register>::new(sctlr_el1);
    let kept = field_mask(SPSR_EL2::N::SET)
        | field_mask(SPSR_EL2::Z::SET)
        | field_mask(SPSR_EL2::C::SET)
        | field_mask(SPSR_EL2::V::SET)
        | field_mask(SPSR_EL2::DIT::SET)
        | field_mask(SPSR_EL2::PAN::SET);
    let mut new = LocalRegisterCopy::<u64, SPSR_EL2::Register>::new(old & kept);
    if !sctlr.is_set(SCTLR_EL1::SPAN) {
        new.modify(SPSR_EL2::PAN::SET);
    }
    if sctlr.is_set(SCTLR_EL1::DSSBS) {
        new.modify(SPSR_EL2::SSBS::SET);
    }
    new.modify(
        SPSR_EL2::D::SET
            + SPSR_EL2::A::SET
            + SPSR_EL2::I::SET
            + SPSR_EL2::F::SET
            + SPSR_EL2::M::EL1h,
    );
    new.get()
}

/// The bits a field value covers.
fn field_mask<R: RegisterLongName>(value: FieldValue<u64, R>) -> u64 {
    value.mask()
}

/// Injects a synchronous exception with syndrome `esr` (and fault address `far`, for aborts)
/// into the guest's EL1, as if the instruction at `regs.pc` had taken it:
///
/// * ELR_EL1 = the guest PC, SPSR_EL1 = the guest PSTATE, ESR_EL1 = `esr`, FAR_EL1 = `far`;
/// * the guest PC moves to the synchronous vector `vbar_el1` + 0x000/0x200/0x400/0x600;
/// * the guest PSTATE becomes [`exception_entry_pstate`] of the old one under `sctlr_el1`.
///
/// `vbar_el1` and `sctlr_el1` are the guest's values, which the shell reads.
pub fn inject_sync(
    regs: &mut GuestRegs,
    el1: &mut El1Exception,
    vbar_el1: u64,
    sctlr_el1: u64,
    esr: u64,
    far: Option<u64>,
) {
    *el1 = El1Exception {
        elr_el1: regs.pc,
        spsr_el1: regs.pstate,
        esr_el1: esr,
        far_el1: far,
    };
    regs.pc = vector_address(vbar_el1, regs.pstate, ExceptionType::Sync);
    regs.pstate = exception_entry_pstate(regs.pstate, sctlr_el1);
}

/// ESR_ELx.{EC, IL} for `class`.
fn esr_header(class: ExceptionClass, il: bool) -> u64 {
    (ESR_ELx::EC.val(class.code().into()) + ESR_ELx::IL.val(il.into())).value
}

/// The syndrome of an UNDEFINED instruction: EC 0x00 "unknown reason", ISS 0. `il` is the
/// length of the instruction: `true` for a 32-bit one, which every AArch64 instruction is
/// (`false` only for a 16-bit T32 instruction at AArch32 EL0). KVM copies IL from the trap.
pub fn undef_esr(il: bool) -> u64 {
    esr_header(ExceptionClass::Unknown, il)
}

/// The syndrome of a data abort on an access the guest cannot be told more about: EC 0x24 if it
/// was taken from EL0 (`from_el0`, see [`taken_from_el0`]), EC 0x25 if from EL1 itself; IL=1 and
/// ISV=0 (no instruction syndrome, as for any abort that is not replayable); WnR = `write`;
/// DFSC = `fsc`.
///
/// For an MMIO access no device answers, or one without a syndrome (ISV=0), pass
/// [`FaultStatus::SyncExternal`]: a synchronous external abort (DFSC 0x10), which is what KVM's
/// `kvm_inject_dabt` injects (`inject_abt64`: IL from the trap, EC LOW/CUR, FSC EXTABT). KVM
/// leaves WnR clear; exitless reports it, which the Arm ARM allows for external aborts.
pub fn data_abort_esr(from_el0: bool, write: bool, fsc: FaultStatus) -> u64 {
    let class = if from_el0 {
        ExceptionClass::DataAbortLower
    } else {
        ExceptionClass::DataAbortSame
    };
    esr_header(class, true)
        | (ESR_ISS_DABT::WNR.val(write.into()) + ESR_ISS_DABT::DFSC.val(fsc.code().into())).value
}

/// The syndrome of an instruction abort: EC 0x20 from EL0, 0x21 from EL1; IL=1; IFSC = `fsc`
/// ([`FaultStatus::SyncExternal`] for a fetch from an IPA nothing backs, as KVM's
/// `kvm_inject_pabt`).
pub fn instruction_abort_esr(from_el0: bool, fsc: FaultStatus) -> u64 {
    let class = if from_el0 {
        ExceptionClass::InstrAbortLower
    } else {
        ExceptionClass::InstrAbortSame
    };
    esr_header(class, true) | ESR_ISS_IABT::IFSC.val(fsc.code().into()).value
}

/// Injects an UNDEFINED instruction exception for the instruction at `regs.pc` (a 32-bit one).
pub fn inject_undef(regs: &mut GuestRegs, el1: &mut El1Exception, vbar_el1: u64, sctlr_el1: u64) {
    inject_sync(regs, el1, vbar_el1, sctlr_el1, undef_esr(true), None);
}

/// Injects a synchronous external data abort at the guest virtual address `far` (FAR_EL2 of the
/// exit, not the IPA) for the access at `regs.pc`: what a guest gets for MMIO that no device
/// owns, or that has no syndrome (ISV=0).
pub fn inject_external_data_abort(
    regs: &mut GuestRegs,
    el1: &mut El1Exception,
    vbar_el1: u64,
    sctlr_el1: u64,
    far: u64,
    write: bool,
) {
    let esr = data_abort_esr(
        taken_from_el0(regs.pstate),
        write,
        FaultStatus::SyncExternal,
    );
    inject_sync(regs, el1, vbar_el1, sctlr_el1, esr, Some(far));
}

/// Injects a synchronous external instruction abort at the guest virtual address `far`: what a
/// guest gets for fetching from an IPA nothing backs.
pub fn inject_external_instruction_abort(
    regs: &mut GuestRegs,
    el1: &mut El1Exception,
    vbar_el1: u64,
    sctlr_el1: u64,
    far: u64,
) {
    let esr = instruction_abort_esr(taken_from_el0(regs.pstate), FaultStatus::SyncExternal);
    inject_sync(regs, el1, vbar_el1, sctlr_el1, esr, Some(far));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trap::esr::{Esr, Iss};
    use crate::vcpu::regs::{PSTATE_EL1H_MASKED, PSTATE_EL1T_MASKED};

    const VBAR: u64 = 0xffff_8000_1001_0800;
    /// SCTLR_EL1 of a Linux guest with PAN enabled: SPAN=0 (PAN on entry), DSSBS=0, plus the
    /// RES1 and MMU bits Linux sets (`INIT_SCTLR_EL1_MMU_ON`-like, composed).
    const SCTLR_SPAN_0: u64 = 0x0000_0000_3450_d91d;
    /// The same with SPAN=1 (an ARMv8.0 guest writes the RES1 bit as 1).
    const SCTLR_SPAN_1: u64 = SCTLR_SPAN_0 | (1 << 23);

    /// An AArch32 EL0 PSTATE: M[4]=1, User mode (M[3:0]=0), from Linux `PSR_AA32_MODE_USR`.
    const AARCH32_USR: u64 = 0x10;

    fn guest(pc: u64, pstate: u64) -> GuestRegs {
        GuestRegs {
            pc,
            pstate,
            ..GuestRegs::default()
        }
    }

    #[test]
    fn guest_at_el1h_takes_the_current_el_spx_vector() {
        let mut regs = guest(0xffff_8000_1234_5678, PSTATE_EL1H_MASKED);
        let mut el1 = El1Exception::default();
        inject_undef(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1);
        assert_eq!(regs.pc, VBAR + 0x200);
    }

    #[test]
    fn guest_at_el1t_takes_the_current_el_sp0_vector() {
        assert_eq!(vector_offset(PSTATE_EL1T_MASKED), 0x000);
        assert_eq!(
            vector_address(VBAR, PSTATE_EL1T_MASKED, ExceptionType::Irq),
            VBAR + 0x080
        );
    }

    #[test]
    fn guest_at_aarch64_el0_takes_the_lower_el_aarch64_vector() {
        let mut regs = guest(0x0000_aaaa_0000_1000, 0);
        let mut el1 = El1Exception::default();
        inject_undef(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1);
        assert_eq!(regs.pc, VBAR + 0x400);
    }

    #[test]
    fn guest_at_aarch32_el0_takes_the_lower_el_aarch32_vector() {
        let mut regs = guest(0x8000, AARCH32_USR);
        let mut el1 = El1Exception::default();
        inject_undef(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1);
        assert_eq!(regs.pc, VBAR + 0x600);
        // Thumb state (T, bit 5) and the IT bits do not change the vector.
        assert_eq!(vector_offset(AARCH32_USR | 0x20 | 0x0600_fc00), 0x600);
    }

    #[test]
    fn vector_type_offsets_are_0_80_100_180() {
        let address = |kind| vector_address(0, 0, kind);
        assert_eq!(address(ExceptionType::Sync), 0x400);
        assert_eq!(address(ExceptionType::Irq), 0x480);
        assert_eq!(address(ExceptionType::Fiq), 0x500);
        assert_eq!(address(ExceptionType::SError), 0x580);
    }

    #[test]
    fn impossible_guest_modes_take_the_lower_el_vector() {
        for el2 in [0b1000, 0b1001, 0b0010, 0b1111] {
            assert_eq!(vector_offset(el2), VECTOR_LOWER_EL_AARCH64);
        }
    }

    #[test]
    fn injection_saves_pc_and_pstate_in_elr_and_spsr() {
        // A guest at EL1h with IRQs unmasked, Z and C set.
        let old_pstate = 0x6000_0005;
        let mut regs = guest(0xffff_8000_1000_2000, old_pstate);
        regs.x[0] = 0x1234;
        let mut el1 = El1Exception::default();
        inject_sync(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1, 0x0200_0000, None);
        assert_eq!(
            el1,
            El1Exception {
                elr_el1: 0xffff_8000_1000_2000,
                spsr_el1: old_pstate,
                esr_el1: 0x0200_0000,
                far_el1: None,
            }
        );
        // The flags survive, DAIF is masked, the mode is EL1h; general registers are untouched.
        assert_eq!(regs.pstate, 0x6000_03c5);
        assert_eq!(regs.x[0], 0x1234);
    }

    #[test]
    fn vbar_near_the_top_wraps_instead_of_panicking() {
        let mut regs = guest(0, PSTATE_EL1H_MASKED);
        let mut el1 = El1Exception::default();
        inject_undef(&mut regs, &mut el1, u64::MAX - 0x100, SCTLR_SPAN_1);
        assert_eq!(regs.pc, 0xff);
    }

    #[test]
    fn span_0_sets_pan_on_entry() {
        assert_eq!(exception_entry_pstate(0x5, SCTLR_SPAN_0), 0x0040_03c5);
        assert_eq!(exception_entry_pstate(0x5, SCTLR_SPAN_1), 0x3c5);
        // PAN already set stays set with SPAN=1.
        assert_eq!(
            exception_entry_pstate(0x0040_0005, SCTLR_SPAN_1),
            0x0040_03c5
        );
    }

    #[test]
    fn ssbs_becomes_sctlr_dssbs() {
        let dssbs = 1 << 44;
        assert_eq!(exception_entry_pstate(0x1000, SCTLR_SPAN_1), 0x3c5);
        assert_eq!(exception_entry_pstate(0, SCTLR_SPAN_1 | dssbs), 0x13c5);
    }

    #[test]
    fn uao_ss_il_btype_and_tco_are_cleared_and_dit_is_kept() {
        // DIT (24), UAO (23), SS (21), IL (20), BTYPE (11:10), TCO (25), V (28).
        let old = (1 << 28) | (1 << 25) | (1 << 24) | (1 << 23) | (1 << 21) | (1 << 20) | 0xc00;
        assert_eq!(
            exception_entry_pstate(old, SCTLR_SPAN_1),
            (1 << 28) | (1 << 24) | 0x3c5
        );
    }

    #[test]
    fn undef_syndrome_is_ec_0_with_il() {
        assert_eq!(undef_esr(true), 0x0200_0000);
        assert_eq!(undef_esr(false), 0);
        assert_eq!(Esr::new(undef_esr(true)).ec(), ExceptionClass::Unknown);
    }

    #[test]
    fn external_data_abort_from_el1_matches_a_real_syndrome() {
        // apache/teaclave-trustzone-sdk#174: "Core data-abort ... esr 0x96000050": EC 0x25,
        // IL, WnR, synchronous external abort.
        assert_eq!(
            data_abort_esr(false, true, FaultStatus::SyncExternal),
            0x9600_0050
        );
        // KVM's injected MMIO abort from EL1 (no WnR): IL | EC 0x25 | FSC 0x10.
        assert_eq!(
            data_abort_esr(false, false, FaultStatus::SyncExternal),
            0x9600_0010
        );
        // From EL0: EC 0x24.
        assert_eq!(
            data_abort_esr(true, false, FaultStatus::SyncExternal),
            0x9200_0010
        );
        match Esr::new(data_abort_esr(true, true, FaultStatus::SyncExternal)).decode() {
            Iss::DataAbort(abort) => {
                assert!(!abort.isv() && abort.wnr);
                assert_eq!(abort.dfsc, FaultStatus::SyncExternal);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn external_instruction_abort_syndromes() {
        assert_eq!(
            instruction_abort_esr(false, FaultStatus::SyncExternal),
            0x8600_0010
        );
        assert_eq!(
            instruction_abort_esr(true, FaultStatus::SyncExternal),
            0x8200_0010
        );
    }

    #[test]
    fn data_abort_class_follows_the_guest_el() {
        assert!(taken_from_el0(0));
        assert!(taken_from_el0(AARCH32_USR));
        assert!(!taken_from_el0(PSTATE_EL1H_MASKED));
        assert!(!taken_from_el0(PSTATE_EL1T_MASKED));

        let mut regs = guest(0x400, 0);
        let mut el1 = El1Exception::default();
        inject_external_data_abort(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1, 0xdead_0000, true);
        assert_eq!(el1.esr_el1, 0x9200_0050);
        assert_eq!(el1.far_el1, Some(0xdead_0000));
        assert_eq!(regs.pc, VBAR + 0x400);

        let mut regs = guest(0xffff_8000_0000_0400, PSTATE_EL1H_MASKED);
        inject_external_data_abort(&mut regs, &mut el1, VBAR, SCTLR_SPAN_1, 0xbeef_0000, false);
        assert_eq!(el1.esr_el1, 0x9600_0010);
        assert_eq!(el1.elr_el1, 0xffff_8000_0000_0400);
        assert_eq!(regs.pc, VBAR + 0x200);
    }

    #[test]
    fn instruction_abort_injection_reports_far() {
        let mut regs = guest(0xffff_8000_5000_0000, PSTATE_EL1H_MASKED);
        let mut el1 = El1Exception::default();
        inject_external_instruction_abort(
            &mut regs,
            &mut el1,
            VBAR,
            SCTLR_SPAN_1,
            0xffff_8000_5000_0000,
        );
        assert_eq!(el1.esr_el1, 0x8600_0010);
        assert_eq!(el1.far_el1, Some(0xffff_8000_5000_0000));
    }
}
