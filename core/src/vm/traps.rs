//! What a guest may do without the hypervisor, and what traps: the EL2 control registers
//! (HCR_EL2, CPTR_EL2, MDCR_EL2, CNTHCTL_EL2) a vCPU runs with, computed from the CPU's
//! features. Arm ARM D24.2 (HCR_EL2, CPTR_EL2 with HCR_EL2.E2H = 0, MDCR_EL2, CNTHCTL_EL2).
//!
//! Policy, bit by bit (each set bit is named and explained in [`guest_hcr`]):
//! * interrupts: physical IRQ/FIQ/SError go to EL2 and the guest gets virtual ones;
//! * WFI and WFE are **not** trapped: a vCPU owns its physical CPU, so a guest that waits for
//!   an interrupt may as well wait in hardware; a virtual interrupt (list register) or a
//!   physical one (which exits) wakes it. This costs no exit when a vCPU idles;
//! * the ID registers trap (TID3) so that features exitless does not virtualize (SVE, SME, MTE,
//!   AMU, PMU, ...) are hidden, and those features' instructions trap too (CPTR_EL2, MDCR_EL2,
//!   HCR_EL2.ATA left 0) so a guest that ignores the ID registers gets an UNDEF, not another
//!   VM's state;
//! * SMC traps (TSC): a guest's SMC reaches exitless's SMCCC, never the firmware;
//! * the EL1 physical timer and counter are the guest's (the hypervisor uses the EL2 timer).
//!
//! Invariant: no bit for a feature the CPU lacks is set (those bits are RES0).

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

#[allow(missing_docs)]
mod fields {
    use super::register_bitfields;

    register_bitfields! {u64,
        pub HCR_EL2 [
            VM OFFSET(0) NUMBITS(1) [],
            SWIO OFFSET(1) NUMBITS(1) [],
            FMO OFFSET(3) NUMBITS(1) [],
            IMO OFFSET(4) NUMBITS(1) [],
            AMO OFFSET(5) NUMBITS(1) [],
            FB OFFSET(9) NUMBITS(1) [],
            BSU OFFSET(10) NUMBITS(2) [InnerShareable = 1],
            TWI OFFSET(13) NUMBITS(1) [],
            TWE OFFSET(14) NUMBITS(1) [],
            TID3 OFFSET(18) NUMBITS(1) [],
            TSC OFFSET(19) NUMBITS(1) [],
            TIDCP OFFSET(20) NUMBITS(1) [],
            TACR OFFSET(21) NUMBITS(1) [],
            RW OFFSET(31) NUMBITS(1) [],
            E2H OFFSET(34) NUMBITS(1) [],
            TLOR OFFSET(35) NUMBITS(1) [],
            TERR OFFSET(36) NUMBITS(1) [],
            APK OFFSET(40) NUMBITS(1) [],
            API OFFSET(41) NUMBITS(1) []
        ],
        pub CPTR_EL2 [
            /// RES1 bits with E2H = 0 (13:12, 9:0).
            RES1 OFFSET(0) NUMBITS(10) [],
            RES1_13_12 OFFSET(12) NUMBITS(2) [],
            TZ OFFSET(8) NUMBITS(1) [],
            TFP OFFSET(10) NUMBITS(1) [],
            TSM OFFSET(12) NUMBITS(1) [],
            TTA OFFSET(20) NUMBITS(1) [],
            TAM OFFSET(30) NUMBITS(1) [],
            TCPAC OFFSET(31) NUMBITS(1) []
        ],
        pub MDCR_EL2 [
            HPMN OFFSET(0) NUMBITS(5) [],
            TPMCR OFFSET(5) NUMBITS(1) [],
            TPM OFFSET(6) NUMBITS(1) [],
            TPMS OFFSET(14) NUMBITS(1) [],
            TTRF OFFSET(19) NUMBITS(1) []
        ],
        pub CNTHCTL_EL2 [
            EL1PCTEN OFFSET(0) NUMBITS(1) [],
            EL1PCEN OFFSET(1) NUMBITS(1) []
        ],
        pub ID_AA64PFR0 [
            RAS OFFSET(28) NUMBITS(4) []
        ],
        pub ID_AA64ISAR1 [
            APA OFFSET(4) NUMBITS(4) [],
            API OFFSET(8) NUMBITS(4) [],
            GPA OFFSET(24) NUMBITS(4) [],
            GPI OFFSET(28) NUMBITS(4) []
        ],
        pub ID_AA64ISAR2 [
            GPA3 OFFSET(8) NUMBITS(4) [],
            APA3 OFFSET(12) NUMBITS(4) []
        ],
        pub ID_AA64MMFR1 [
            LO OFFSET(16) NUMBITS(4) []
        ]
    }
}

use fields::{
    CNTHCTL_EL2, CPTR_EL2, HCR_EL2, ID_AA64ISAR1, ID_AA64ISAR2, ID_AA64MMFR1, ID_AA64PFR0, MDCR_EL2,
};

/// The CPU features that decide the trap configuration, read from the hardware ID registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// ID_AA64PFR0_EL1.
    pub pfr0: u64,
    /// ID_AA64ISAR1_EL1.
    pub isar1: u64,
    /// ID_AA64ISAR2_EL1.
    pub isar2: u64,
    /// ID_AA64MMFR1_EL1.
    pub mmfr1: u64,
}

impl CpuFeatures {
    /// FEAT_PAuth in any form (address or generic authentication, QARMA or IMPDEF or QARMA3).
    pub fn has_pauth(&self) -> bool {
        let i1 = LocalRegisterCopy::<u64, ID_AA64ISAR1::Register>::new(self.isar1);
        let i2 = LocalRegisterCopy::<u64, ID_AA64ISAR2::Register>::new(self.isar2);
        i1.read(ID_AA64ISAR1::APA) != 0
            || i1.read(ID_AA64ISAR1::API) != 0
            || i1.read(ID_AA64ISAR1::GPA) != 0
            || i1.read(ID_AA64ISAR1::GPI) != 0
            || i2.read(ID_AA64ISAR2::APA3) != 0
            || i2.read(ID_AA64ISAR2::GPA3) != 0
    }

    /// FEAT_RAS.
    pub fn has_ras(&self) -> bool {
        LocalRegisterCopy::<u64, ID_AA64PFR0::Register>::new(self.pfr0).read(ID_AA64PFR0::RAS) != 0
    }

    /// FEAT_LOR (limited ordering regions).
    pub fn has_lor(&self) -> bool {
        LocalRegisterCopy::<u64, ID_AA64MMFR1::Register>::new(self.mmfr1).read(ID_AA64MMFR1::LO)
            != 0
    }
}

/// HCR_EL2 for a guest vCPU.
///
/// | Bit | Why |
/// |---|---|
/// | VM | stage-2 translation: the guest sees only its own memory |
/// | SWIO | data-cache invalidate by set/way behaves as clean+invalidate (a guest with caches off must not discard another's dirty lines) |
/// | FMO, IMO, AMO | physical FIQ/IRQ/SError are taken to EL2; the guest gets virtual ones (list registers, VSE) and its ICC_* accesses go to the virtual CPU interface |
/// | FB | TLB and I-cache maintenance broadcast within the inner shareable domain |
/// | BSU = inner shareable | barriers at least inner shareable |
/// | TID3 | ID registers trap, to hide what is not virtualized |
/// | TSC | SMC traps: exitless answers it (SMCCC), the firmware never sees a guest |
/// | TIDCP | IMPLEMENTATION DEFINED system registers trap (the guest gets UNDEF) |
/// | TACR | ACTLR_EL1 traps (it can change how the physical CPU behaves) |
/// | RW | EL1 is AArch64 |
/// | TLOR | LORegion registers trap (UNDEF), if FEAT_LOR |
/// | TERR | RAS error records trap (UNDEF), if FEAT_RAS (hidden in ID_AA64PFR0_EL1) |
/// | APK, API | pointer authentication keys and instructions do not trap, if FEAT_PAuth (exposed) |
///
/// Left clear on purpose: TWI/TWE (see the module doc), E2H (non-VHE), TGE, DC, TVM, TSW.
pub fn guest_hcr(f: &CpuFeatures) -> u64 {
    let mut v = LocalRegisterCopy::<u64, HCR_EL2::Register>::new(0);
    v.modify(
        HCR_EL2::VM::SET
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::SET
            + HCR_EL2::IMO::SET
            + HCR_EL2::AMO::SET
            + HCR_EL2::FB::SET
            + HCR_EL2::BSU::InnerShareable
            + HCR_EL2::TID3::SET
            + HCR_EL2::TSC::SET
            + HCR_EL2::TIDCP::SET
            + HCR_EL2::TACR::SET
            + HCR_EL2::RW::SET,
    );
    if f.has_lor() {
        v.modify(HCR_EL2::TLOR::SET);
    }
    if f.has_ras() {
        v.modify(HCR_EL2::TERR::SET);
    }
    if f.has_pauth() {
        v.modify(HCR_EL2::APK::SET + HCR_EL2::API::SET);
    }
    v.get()
}

/// HCR_EL2 while no guest runs: only RW (EL1 would be AArch64), nothing routed or trapped.
pub fn host_hcr() -> u64 {
    let mut v = LocalRegisterCopy::<u64, HCR_EL2::Register>::new(0);
    v.modify(HCR_EL2::RW::SET);
    v.get()
}

/// CPTR_EL2 (E2H = 0) for a guest: FP/SIMD is the guest's (TFP clear; EL2 never touches those
/// registers); SVE (TZ), SME (TSM), the activity monitors (TAM) and trace (TTA) trap, as they
/// are hidden; CPACR_EL1 accesses do not trap (TCPAC clear).
pub fn guest_cptr() -> u64 {
    let mut v = LocalRegisterCopy::<u64, CPTR_EL2::Register>::new(0);
    v.modify(
        CPTR_EL2::RES1.val(0x2ff)
            + CPTR_EL2::RES1_13_12.val(0b11)
            + CPTR_EL2::TZ::SET
            + CPTR_EL2::TSM::SET
            + CPTR_EL2::TTA::SET
            + CPTR_EL2::TAM::SET,
    );
    v.get()
}

/// MDCR_EL2 for a guest: the PMU is hidden, so its registers trap (TPM, TPMCR) and give UNDEF;
/// the statistical profiling (TPMS) and trace filter (TTRF) registers trap too. The debug
/// registers are the guest's (a vCPU owns its CPU): TDA, TDOSA, TDRA stay clear. HPMN keeps the
/// hardware's counter count (`pmcr_n`) so no counter is reserved for EL2.
pub fn guest_mdcr(pmcr_n: u8) -> u64 {
    let mut v = LocalRegisterCopy::<u64, MDCR_EL2::Register>::new(0);
    v.modify(
        MDCR_EL2::HPMN.val(pmcr_n as u64 & 0x1f)
            + MDCR_EL2::TPMCR::SET
            + MDCR_EL2::TPM::SET
            + MDCR_EL2::TPMS::SET
            + MDCR_EL2::TTRF::SET,
    );
    v.get()
}

/// CNTHCTL_EL2 (E2H = 0) for a guest: the EL1 physical counter (EL1PCTEN) and timer (EL1PCEN)
/// are accessible; the EL1 virtual timer always is. Their interrupts (PPIs 30 and 27) are
/// linked to the guest's virtual ones.
pub fn guest_cnthctl() -> u64 {
    let mut v = LocalRegisterCopy::<u64, CNTHCTL_EL2::Register>::new(0);
    v.modify(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::SET);
    v.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_hcr_on_cortex_a72() {
        // ARMv8.0: no PAuth, no RAS, no LOR.
        let f = CpuFeatures {
            pfr0: 0x1122,
            isar1: 0,
            isar2: 0,
            mmfr1: 0,
        };
        let hcr = guest_hcr(&f);
        assert_eq!(
            hcr, 0x803c_063b,
            "VM SWIO FMO IMO AMO FB BSU TID3 TSC TIDCP TACR RW"
        );
        assert_eq!(hcr & (1 << 13 | 1 << 14), 0, "WFI and WFE do not trap");
        assert_eq!(hcr & (1 << 34), 0, "non-VHE");
    }

    #[test]
    fn pauth_is_exposed_without_traps_when_present() {
        let f = CpuFeatures {
            isar1: 1 << 8,
            ..Default::default()
        }; // API = 1
        assert!(f.has_pauth());
        assert_eq!(guest_hcr(&f) & (3 << 40), 3 << 40);
    }

    #[test]
    fn ras_and_lor_trap_only_when_implemented() {
        let f = CpuFeatures {
            pfr0: 1 << 28,
            mmfr1: 1 << 16,
            ..Default::default()
        };
        let hcr = guest_hcr(&f);
        assert_ne!(hcr & (1 << 36), 0);
        assert_ne!(hcr & (1 << 35), 0);
        assert_eq!(guest_hcr(&CpuFeatures::default()) & (3 << 35), 0);
    }

    #[test]
    fn cptr_traps_sve_sme_amu_trace_but_not_fp() {
        let c = guest_cptr();
        assert_eq!(c & (1 << 10), 0, "FP/SIMD is the guest's");
        assert_ne!(c & (1 << 8), 0, "SVE traps");
        assert_ne!(c & (1 << 30), 0, "AMU traps");
        assert_eq!(c & 0x3ff & !(1 << 8), 0x2ff, "RES1 bits set");
    }

    #[test]
    fn mdcr_traps_pmu_keeps_debug() {
        let m = guest_mdcr(6);
        assert_eq!(m & 0x1f, 6);
        assert_ne!(m & (1 << 6), 0);
        assert_eq!(m & (1 << 8 | 1 << 9 | 1 << 10), 0, "TDE/TDA/TDOSA clear");
    }

    #[test]
    fn cnthctl_gives_the_guest_the_physical_counter_and_timer() {
        assert_eq!(guest_cnthctl(), 0b11);
        assert_eq!(host_hcr(), 1 << 31);
    }
}
