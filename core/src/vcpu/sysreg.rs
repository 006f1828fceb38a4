//! Trapped system register accesses: what exitless does with each ([`classify`]), and the ID
//! register values a guest sees ([`sanitize_id`]).
//!
//! Spec: Arm ARM DDI 0487, D24.2 (the ID registers and their fields), the System register
//! encoding tables for the Feature ID space (op0=3, op1=0, CRn=0, CRm=0..7: unallocated
//! encodings there are reserved and read as zero), and HCR_EL2.TID3 (which traps CRm=1..7 of
//! that space, reserved encodings included). Field
//! positions follow Linux `arch/arm64/tools/sysreg`; what is hidden follows Linux KVM
//! `sys_regs.c` (`__kvm_read_sanitised_id_reg`, `sanitise_id_aa64pfr0_el1`, `trap_raz_wi`,
//! `trap_loregion`).
//!
//! The shell traps ID register reads (HCR_EL2.TID3); for each it calls [`classify`], reads the
//! hardware value when told to ([`SysRegAction::ReadIdReg`]), and hands it to [`sanitize_id`].
//!
//! Hidden from the guest (the field reads as 0, "not implemented"), because exitless does not
//! virtualize the feature or does not context-switch its state:
//!
//! * SVE: ID_AA64PFR0_EL1.SVE; ID_AA64ZFR0_EL1 reads as 0.
//! * SME: ID_AA64PFR1_EL1.SME; ID_AA64SMFR0_EL1 reads as 0.
//! * MTE: ID_AA64PFR1_EL1.{MTE, MTE_frac, MTEX}; ID_AA64PFR2_EL1.{MTEPERM, MTESTOREONLY,
//!   MTEFAR}.
//! * AMU: ID_AA64PFR0_EL1.AMU; ID_PFR0_EL1.AMU.
//! * MPAM: ID_AA64PFR0_EL1.MPAM; ID_AA64PFR1_EL1.MPAM_frac.
//! * RAS: ID_AA64PFR0_EL1.RAS; ID_AA64PFR1_EL1.RAS_frac; ID_PFR0_EL1.RAS; ID_PFR2_EL1.RAS_frac.
//! * Nested virtualization: ID_AA64MMFR2_EL1.NV; ID_AA64MMFR4_EL1.NV_frac.
//! * PMU: ID_AA64DFR0_EL1.{PMUVer, PMSS, SEBEP, HPMN0, MTPMU}; ID_AA64DFR1_EL1.{EBEP, PMICNTR,
//!   SPMU}; ID_DFR0_EL1.PerfMon; ID_DFR1_EL1.{HPMN0, MTPMU}.
//! * SPE: ID_AA64DFR0_EL1.PMSVer; ID_AA64DFR2_EL1.{SPE_EXC, SPE_nVM}.
//! * TRBE: ID_AA64DFR0_EL1.{TraceBuffer, ExtTrcBuff}; ID_AA64DFR2_EL1.TRBE_EXC.
//! * Trace: ID_AA64DFR0_EL1.{TraceVer, TraceFilt}; ID_AA64DFR1_EL1.ITE; ID_DFR0_EL1.{TraceFilt,
//!   MMapTrc, CopTrc}.
//! * BRBE: ID_AA64DFR0_EL1.BRBE.
//! * IMPLEMENTATION DEFINED features: ID_AFR0_EL1, ID_AA64AFR0_EL1 and ID_AA64AFR1_EL1 read as 0
//!   (KVM hides them too).
//! * Features whose use needs EL2 set-up exitless does not do (HCRX_EL2 enables, extra
//!   context): NMI, GCS, THE (ID_AA64PFR1_EL1), FPMR (ID_AA64PFR2_EL1), LS64
//!   (ID_AA64ISAR1_EL1), MOPS (ID_AA64ISAR2_EL1).
//!
//! ID_AA64PFR0_EL1.GIC and ID_PFR1_EL1.GIC say what the *virtual* interrupt controller offers:
//! 1 (GICv3 system register interface) for a vGICv3 guest, 0 for a vGICv2 guest
//! ([`FeaturePolicy::gic_v3`]). Everything else, pointer authentication included, is passed
//! through (pointer authentication runs without traps: HCR_EL2.API and APK, `vm::traps`).
//!
//! Reserved encodings in the ID space (RAZ): CRm=3 op2 3, 7; CRm=4 op2 3, 6; CRm=5 op2 3, 6, 7;
//! CRm=6 op2 4..7; CRm=7 op2 5..7 ([`RESERVED_ID_ENCODINGS`]). They read as 0 even if the
//! hardware returns something: a newer CPU may have allocated one to a feature exitless has never
//! heard of, and exitless cannot vouch for it.
//!
//! Invariants: [`classify`] and [`sanitize_id`] are total; an encoding nobody named is UNDEFINED
//! (Hafnium's rule: inject, never crash), and an ID value is never widened, only narrowed or set
//! to what the virtual hardware really provides.

use tock_registers::{LocalRegisterCopy, register_bitfields};

use crate::trap::esr::SysRegId;

register_bitfields! {u64,
    /// AArch64 Processor Feature Register 0.
    #[allow(missing_docs)]
    pub ID_AA64PFR0_EL1 [
        CSV3 OFFSET(60) NUMBITS(4) [],
        CSV2 OFFSET(56) NUMBITS(4) [],
        RME OFFSET(52) NUMBITS(4) [],
        DIT OFFSET(48) NUMBITS(4) [],
        AMU OFFSET(44) NUMBITS(4) [],
        MPAM OFFSET(40) NUMBITS(4) [],
        SEL2 OFFSET(36) NUMBITS(4) [],
        SVE OFFSET(32) NUMBITS(4) [],
        RAS OFFSET(28) NUMBITS(4) [],
        /// System register interface to the GIC CPU interface.
        GIC OFFSET(24) NUMBITS(4) [
            NotImplemented = 0b0000,
            V3 = 0b0001,
            V4p1 = 0b0011
        ],
        ADVSIMD OFFSET(20) NUMBITS(4) [],
        FP OFFSET(16) NUMBITS(4) [],
        EL3 OFFSET(12) NUMBITS(4) [],
        EL2 OFFSET(8) NUMBITS(4) [],
        EL1 OFFSET(4) NUMBITS(4) [],
        EL0 OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Processor Feature Register 1.
    #[allow(missing_docs)]
    pub ID_AA64PFR1_EL1 [
        PFAR OFFSET(60) NUMBITS(4) [],
        DF2 OFFSET(56) NUMBITS(4) [],
        MTEX OFFSET(52) NUMBITS(4) [],
        THE OFFSET(48) NUMBITS(4) [],
        GCS OFFSET(44) NUMBITS(4) [],
        MTE_FRAC OFFSET(40) NUMBITS(4) [],
        NMI OFFSET(36) NUMBITS(4) [],
        CSV2_FRAC OFFSET(32) NUMBITS(4) [],
        RNDR_TRAP OFFSET(28) NUMBITS(4) [],
        SME OFFSET(24) NUMBITS(4) [],
        MPAM_FRAC OFFSET(16) NUMBITS(4) [],
        RAS_FRAC OFFSET(12) NUMBITS(4) [],
        MTE OFFSET(8) NUMBITS(4) [],
        SSBS OFFSET(4) NUMBITS(4) [],
        BT OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Instruction Set Attribute Register 1 (the fields exitless hides).
    #[allow(missing_docs)]
    pub ID_AA64ISAR1_EL1 [
        LS64 OFFSET(60) NUMBITS(4) []
    ],

    /// AArch64 Instruction Set Attribute Register 2 (the fields exitless hides).
    #[allow(missing_docs)]
    pub ID_AA64ISAR2_EL1 [
        MOPS OFFSET(16) NUMBITS(4) []
    ],

    /// AArch64 Processor Feature Register 2.
    #[allow(missing_docs)]
    pub ID_AA64PFR2_EL1 [
        FPMR OFFSET(32) NUMBITS(4) [],
        UINJ OFFSET(16) NUMBITS(4) [],
        MTEFAR OFFSET(8) NUMBITS(4) [],
        MTESTOREONLY OFFSET(4) NUMBITS(4) [],
        MTEPERM OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Debug Feature Register 0.
    #[allow(missing_docs)]
    pub ID_AA64DFR0_EL1 [
        HPMN0 OFFSET(60) NUMBITS(4) [],
        EXTTRCBUFF OFFSET(56) NUMBITS(4) [],
        BRBE OFFSET(52) NUMBITS(4) [],
        MTPMU OFFSET(48) NUMBITS(4) [],
        TRACEBUFFER OFFSET(44) NUMBITS(4) [],
        TRACEFILT OFFSET(40) NUMBITS(4) [],
        DOUBLELOCK OFFSET(36) NUMBITS(4) [],
        PMSVER OFFSET(32) NUMBITS(4) [],
        CTX_CMPS OFFSET(28) NUMBITS(4) [],
        SEBEP OFFSET(24) NUMBITS(4) [],
        WRPS OFFSET(20) NUMBITS(4) [],
        PMSS OFFSET(16) NUMBITS(4) [],
        BRPS OFFSET(12) NUMBITS(4) [],
        PMUVER OFFSET(8) NUMBITS(4) [],
        TRACEVER OFFSET(4) NUMBITS(4) [],
        DEBUGVER OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Debug Feature Register 1.
    #[allow(missing_docs)]
    pub ID_AA64DFR1_EL1 [
        ABL_CMPS OFFSET(56) NUMBITS(8) [],
        DPFZS OFFSET(52) NUMBITS(4) [],
        EBEP OFFSET(48) NUMBITS(4) [],
        ITE OFFSET(44) NUMBITS(4) [],
        ABLE OFFSET(40) NUMBITS(4) [],
        PMICNTR OFFSET(36) NUMBITS(4) [],
        SPMU OFFSET(32) NUMBITS(4) [],
        CTX_CMPS OFFSET(24) NUMBITS(8) [],
        WRPS OFFSET(16) NUMBITS(8) [],
        BRPS OFFSET(8) NUMBITS(8) [],
        SYSPMUID OFFSET(0) NUMBITS(8) []
    ],

    /// AArch64 Debug Feature Register 2.
    #[allow(missing_docs)]
    pub ID_AA64DFR2_EL1 [
        TRBE_EXC OFFSET(24) NUMBITS(4) [],
        SPE_NVM OFFSET(20) NUMBITS(4) [],
        SPE_EXC OFFSET(16) NUMBITS(4) [],
        BWE OFFSET(4) NUMBITS(4) [],
        STEP OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Memory Model Feature Register 2.
    #[allow(missing_docs)]
    pub ID_AA64MMFR2_EL1 [
        E0PD OFFSET(60) NUMBITS(4) [],
        EVT OFFSET(56) NUMBITS(4) [],
        BBM OFFSET(52) NUMBITS(4) [],
        TTL OFFSET(48) NUMBITS(4) [],
        FWB OFFSET(40) NUMBITS(4) [],
        IDS OFFSET(36) NUMBITS(4) [],
        AT OFFSET(32) NUMBITS(4) [],
        ST OFFSET(28) NUMBITS(4) [],
        NV OFFSET(24) NUMBITS(4) [],
        CCIDX OFFSET(20) NUMBITS(4) [],
        VARANGE OFFSET(16) NUMBITS(4) [],
        IESB OFFSET(12) NUMBITS(4) [],
        LSM OFFSET(8) NUMBITS(4) [],
        UAO OFFSET(4) NUMBITS(4) [],
        CNP OFFSET(0) NUMBITS(4) []
    ],

    /// AArch64 Memory Model Feature Register 4.
    #[allow(missing_docs)]
    pub ID_AA64MMFR4_EL1 [
        E3DSE OFFSET(36) NUMBITS(4) [],
        E2H0 OFFSET(24) NUMBITS(4) [],
        NV_FRAC OFFSET(20) NUMBITS(4) [],
        FGWTE3 OFFSET(16) NUMBITS(4) [],
        HACDBS OFFSET(12) NUMBITS(4) [],
        ASID2 OFFSET(8) NUMBITS(4) [],
        EIESB OFFSET(4) NUMBITS(4) []
    ],

    /// AArch32 Processor Feature Register 0.
    #[allow(missing_docs)]
    pub ID_PFR0_EL1 [
        RAS OFFSET(28) NUMBITS(4) [],
        DIT OFFSET(24) NUMBITS(4) [],
        AMU OFFSET(20) NUMBITS(4) [],
        CSV2 OFFSET(16) NUMBITS(4) [],
        STATE3 OFFSET(12) NUMBITS(4) [],
        STATE2 OFFSET(8) NUMBITS(4) [],
        STATE1 OFFSET(4) NUMBITS(4) [],
        STATE0 OFFSET(0) NUMBITS(4) []
    ],

    /// AArch32 Processor Feature Register 1.
    #[allow(missing_docs)]
    pub ID_PFR1_EL1 [
        /// System register interface to the GIC CPU interface (AArch32).
        GIC OFFSET(28) NUMBITS(4) [
            NotImplemented = 0b0000,
            V3 = 0b0001
        ],
        VIRT_FRAC OFFSET(24) NUMBITS(4) [],
        SEC_FRAC OFFSET(20) NUMBITS(4) [],
        GENTIMER OFFSET(16) NUMBITS(4) [],
        VIRTUALIZATION OFFSET(12) NUMBITS(4) [],
        MPROGMOD OFFSET(8) NUMBITS(4) [],
        SECURITY OFFSET(4) NUMBITS(4) [],
        PROGMOD OFFSET(0) NUMBITS(4) []
    ],

    /// AArch32 Processor Feature Register 2.
    #[allow(missing_docs)]
    pub ID_PFR2_EL1 [
        RAS_FRAC OFFSET(8) NUMBITS(4) [],
        SSBS OFFSET(4) NUMBITS(4) [],
        CSV3 OFFSET(0) NUMBITS(4) []
    ],

    /// AArch32 Debug Feature Register 0.
    #[allow(missing_docs)]
    pub ID_DFR0_EL1 [
        TRACEFILT OFFSET(28) NUMBITS(4) [],
        PERFMON OFFSET(24) NUMBITS(4) [],
        MPROFDBG OFFSET(20) NUMBITS(4) [],
        MMAPTRC OFFSET(16) NUMBITS(4) [],
        COPTRC OFFSET(12) NUMBITS(4) [],
        MMAPDBG OFFSET(8) NUMBITS(4) [],
        COPSDBG OFFSET(4) NUMBITS(4) [],
        COPDBG OFFSET(0) NUMBITS(4) []
    ],

    /// AArch32 Debug Feature Register 1.
    #[allow(missing_docs)]
    pub ID_DFR1_EL1 [
        HPMN0 OFFSET(4) NUMBITS(4) [],
        MTPMU OFFSET(0) NUMBITS(4) []
    ]
}

/// Defines the ID register encodings exitless names, as [`SysRegId`] constants.
macro_rules! id_registers {
    ($( $(#[$doc:meta])* $name:ident = ($crm:literal, $op2:literal); )*) => {
        $(
            $(#[$doc])*
            pub const $name: SysRegId = SysRegId::new(
                ID_SPACE_OP0, ID_SPACE_OP1, ID_SPACE_CRN, $crm, $op2,
            );
        )*
    };
}

/// op0 of the Feature ID register space.
const ID_SPACE_OP0: u8 = 3;
/// op1 of the Feature ID register space.
const ID_SPACE_OP1: u8 = 0;
/// CRn of the Feature ID register space.
const ID_SPACE_CRN: u8 = 0;
/// CRm values of the ID space that HCR_EL2.TID3 traps and [`classify`] treats as ID registers.
const ID_SPACE_CRM: core::ops::RangeInclusive<u8> = 1..=7;

id_registers! {
    /// AArch32 Processor Feature Register 0.
    ID_PFR0_EL1 = (1, 0);
    /// AArch32 Processor Feature Register 1.
    ID_PFR1_EL1 = (1, 1);
    /// AArch32 Debug Feature Register 0.
    ID_DFR0_EL1 = (1, 2);
    /// AArch32 Auxiliary Feature Register 0 (IMPLEMENTATION DEFINED).
    ID_AFR0_EL1 = (1, 3);
    /// AArch32 Processor Feature Register 2.
    ID_PFR2_EL1 = (3, 4);
    /// AArch32 Debug Feature Register 1.
    ID_DFR1_EL1 = (3, 5);
    /// AArch64 Processor Feature Register 0.
    ID_AA64PFR0_EL1 = (4, 0);
    /// AArch64 Processor Feature Register 1.
    ID_AA64PFR1_EL1 = (4, 1);
    /// AArch64 Processor Feature Register 2.
    ID_AA64PFR2_EL1 = (4, 2);
    /// SVE Feature ID Register 0.
    ID_AA64ZFR0_EL1 = (4, 4);
    /// SME Feature ID Register 0.
    ID_AA64SMFR0_EL1 = (4, 5);
    /// Floating-point Feature Register 0 (FP8).
    ID_AA64FPFR0_EL1 = (4, 7);
    /// AArch64 Debug Feature Register 0.
    ID_AA64DFR0_EL1 = (5, 0);
    /// AArch64 Debug Feature Register 1.
    ID_AA64DFR1_EL1 = (5, 1);
    /// AArch64 Debug Feature Register 2.
    ID_AA64DFR2_EL1 = (5, 2);
    /// AArch64 Auxiliary Feature Register 0 (IMPLEMENTATION DEFINED).
    ID_AA64AFR0_EL1 = (5, 4);
    /// AArch64 Auxiliary Feature Register 1 (IMPLEMENTATION DEFINED).
    ID_AA64AFR1_EL1 = (5, 5);
    /// AArch64 Instruction Set Attribute Register 0.
    ID_AA64ISAR0_EL1 = (6, 0);
    /// AArch64 Instruction Set Attribute Register 1.
    ID_AA64ISAR1_EL1 = (6, 1);
    /// AArch64 Instruction Set Attribute Register 2.
    ID_AA64ISAR2_EL1 = (6, 2);
    /// AArch64 Instruction Set Attribute Register 3.
    ID_AA64ISAR3_EL1 = (6, 3);
    /// AArch64 Memory Model Feature Register 0.
    ID_AA64MMFR0_EL1 = (7, 0);
    /// AArch64 Memory Model Feature Register 1.
    ID_AA64MMFR1_EL1 = (7, 1);
    /// AArch64 Memory Model Feature Register 2.
    ID_AA64MMFR2_EL1 = (7, 2);
    /// AArch64 Memory Model Feature Register 3.
    ID_AA64MMFR3_EL1 = (7, 3);
    /// AArch64 Memory Model Feature Register 4.
    ID_AA64MMFR4_EL1 = (7, 4);
}

/// The (CRm, op2) pairs of the Feature ID space (op0=3, op1=0, CRn=0, CRm=1..7) that the Arm ARM
/// leaves unallocated, as of DDI 0487 L.a and Linux 6.16 `sys_regs.c` (`ID_UNALLOCATED`). They
/// read as zero. CRm=1 and CRm=2 are fully allocated (AArch32 ID registers).
pub const RESERVED_ID_ENCODINGS: [(u8, u8); 14] = [
    (3, 3),
    (3, 7),
    (4, 3),
    (4, 6),
    (5, 3),
    (5, 6),
    (5, 7),
    (6, 4),
    (6, 5),
    (6, 6),
    (6, 7),
    (7, 5),
    (7, 6),
    (7, 7),
];

/// Debug and other System registers that exitless emulates as RAZ/WI when the shell traps them
/// (MDCR_EL2.TDOSA, TDA; HCR_EL2.TACR, TLOR), as KVM does.
mod emulated {
    use crate::trap::esr::SysRegId;

    /// OS Double Lock Register (MDCR_EL2.TDOSA). RAZ/WI: the double lock is never engaged.
    pub const OSDLR_EL1: SysRegId = SysRegId::new(2, 0, 1, 3, 4);
    /// Debug Power/Reset Control Register (TDOSA). RAZ/WI.
    pub const DBGPRCR_EL1: SysRegId = SysRegId::new(2, 0, 1, 4, 4);
    /// OS Lock Access Register (TDOSA), write-only. WI.
    pub const OSLAR_EL1: SysRegId = SysRegId::new(2, 0, 1, 0, 4);
    /// Debug ROM Address Register (TDA), read-only. RAZ: no ROM table.
    pub const MDRAR_EL1: SysRegId = SysRegId::new(2, 0, 1, 0, 0);
    /// OS Lock Exception Catch Control Register (TDOSA). RAZ/WI.
    pub const OSECCR_EL1: SysRegId = SysRegId::new(2, 0, 0, 6, 2);
    /// Monitor DCC Interrupt Enable Register (TDA). RAZ/WI: no debug communications channel.
    pub const MDCCINT_EL1: SysRegId = SysRegId::new(2, 0, 0, 2, 0);
    /// Debug CLAIM Tag Set register (TDA). RAZ/WI: no claim tags.
    pub const DBGCLAIMSET_EL1: SysRegId = SysRegId::new(2, 0, 7, 8, 6);
    /// Debug CLAIM Tag Clear register (TDA). RAZ/WI.
    pub const DBGCLAIMCLR_EL1: SysRegId = SysRegId::new(2, 0, 7, 9, 6);
    /// Auxiliary Control Register (HCR_EL2.TACR). RAZ/WI: its content is IMPLEMENTATION DEFINED
    /// and the guest must not change the physical one.
    pub const ACTLR_EL1: SysRegId = SysRegId::new(3, 0, 1, 0, 1);
    /// LORegion Start Address (HCR_EL2.TLOR). RAZ/WI: the trivial LORegion implementation
    /// ARMv8.1 permits.
    pub const LORSA_EL1: SysRegId = SysRegId::new(3, 0, 10, 4, 0);
    /// LORegion End Address (TLOR). RAZ/WI.
    pub const LOREA_EL1: SysRegId = SysRegId::new(3, 0, 10, 4, 1);
    /// LORegion Number (TLOR). RAZ/WI.
    pub const LORN_EL1: SysRegId = SysRegId::new(3, 0, 10, 4, 2);
    /// LORegion Control (TLOR). RAZ/WI.
    pub const LORC_EL1: SysRegId = SysRegId::new(3, 0, 10, 4, 3);
    /// LORegion ID (TLOR), read-only. RAZ: zero LORegions, zero descriptors.
    pub const LORID_EL1: SysRegId = SysRegId::new(3, 0, 10, 4, 7);
}

pub use emulated::*;

/// What exitless does with a trapped system register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SysRegAction {
    /// A read of an ID register: the shell reads the hardware value of the register, passes it
    /// through [`sanitize_id`], and writes the result to Rt.
    ReadIdReg(SysRegId),
    /// A write to ICC_SGI1R_EL1 (Group 1 SGI): the vGIC generates the SGI.
    Sgi1r,
    /// A write to ICC_ASGI1R_EL1 (alias Group 1 SGI): the vGIC generates the SGI.
    Asgi1r,
    /// A write to ICC_SGI0R_EL1 (Group 0 SGI): the vGIC generates the SGI.
    Sgi0r,
    /// The register reads as zero: write 0 to Rt.
    ReadAsZero,
    /// The write is ignored.
    Ignore,
    /// The access is UNDEFINED: inject UNDEF ([`crate::vcpu::inject::inject_undef`]).
    Undefined,
}

/// The VM's choices that change what its ID registers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeaturePolicy {
    /// The guest gets a vGICv3 (system register CPU interface) rather than a vGICv2
    /// (memory-mapped CPU interface only): sets ID_AA64PFR0_EL1.GIC and ID_PFR1_EL1.GIC to 1,
    /// or to 0.
    pub gic_v3: bool,
}

/// Whether `id` lies in the part of the Feature ID space HCR_EL2.TID3 traps: op0=3, op1=0,
/// CRn=0, CRm=1..7, any op2.
pub fn is_id_register(id: SysRegId) -> bool {
    id.op0() == ID_SPACE_OP0
        && id.op1() == ID_SPACE_OP1
        && id.crn() == ID_SPACE_CRN
        && ID_SPACE_CRM.contains(&id.crm())
}

/// Whether `id` is an unallocated (reserved, RAZ) encoding of the Feature ID space.
pub fn is_reserved_id_register(id: SysRegId) -> bool {
    is_id_register(id) && RESERVED_ID_ENCODINGS.contains(&(id.crm(), id.op2()))
}

/// What to do with a trapped access to `id` (`write`: MSR rather than MRS).
///
/// * ID registers (the whole TID3 space, reserved encodings included): reads are
///   [`SysRegAction::ReadIdReg`]; writes are UNDEFINED (the registers are read-only).
/// * GICv3 SGI generation registers: writes go to the vGIC; reads are UNDEFINED (write-only).
/// * The debug, ACTLR and LORegion registers this module names ([`OSDLR_EL1`],
///   [`DBGPRCR_EL1`], [`OSECCR_EL1`], [`MDCCINT_EL1`], [`DBGCLAIMSET_EL1`],
///   [`DBGCLAIMCLR_EL1`], [`ACTLR_EL1`], [`LORSA_EL1`], [`LOREA_EL1`], [`LORN_EL1`],
///   [`LORC_EL1`]): RAZ/WI. The read-only [`MDRAR_EL1`] and [`LORID_EL1`] are UNDEFINED on
///   write, the write-only [`OSLAR_EL1`] on read.
/// * Everything else is UNDEFINED: IMPLEMENTATION DEFINED registers (HCR_EL2.TIDCP), the
///   registers of hidden features (PMU, SPE, TRBE, AMU, MPAM, RAS error records, SME, SVE),
///   and any encoding exitless does not know.
pub fn classify(id: SysRegId, write: bool) -> SysRegAction {
    // The SGI registers first: the one trap a running guest makes often (an ID register's
    // encoding never equals theirs, CRn 0 against 12).
    match (id, write) {
        (SysRegId::ICC_SGI1R_EL1, true) => return SysRegAction::Sgi1r,
        (SysRegId::ICC_ASGI1R_EL1, true) => return SysRegAction::Asgi1r,
        (SysRegId::ICC_SGI0R_EL1, true) => return SysRegAction::Sgi0r,
        _ => {}
    }
    if is_id_register(id) {
        return if write {
            SysRegAction::Undefined
        } else {
            SysRegAction::ReadIdReg(id)
        };
    }
    match (id, write) {
        (
            OSDLR_EL1 | DBGPRCR_EL1 | OSECCR_EL1 | MDCCINT_EL1 | DBGCLAIMSET_EL1 | DBGCLAIMCLR_EL1
            | ACTLR_EL1 | LORSA_EL1 | LOREA_EL1 | LORN_EL1 | LORC_EL1,
            false,
        )
        | (MDRAR_EL1 | LORID_EL1, false) => SysRegAction::ReadAsZero,
        (
            OSDLR_EL1 | DBGPRCR_EL1 | OSECCR_EL1 | MDCCINT_EL1 | DBGCLAIMSET_EL1 | DBGCLAIMCLR_EL1
            | ACTLR_EL1 | LORSA_EL1 | LOREA_EL1 | LORN_EL1 | LORC_EL1,
            true,
        )
        | (OSLAR_EL1, true) => SysRegAction::Ignore,
        _ => SysRegAction::Undefined,
    }
}

/// The value of ID register `id` the guest sees, given the hardware value `hw` (see the module
/// documentation for what is hidden and why). Reserved encodings, the IMPLEMENTATION DEFINED
/// auxiliary feature registers, the SVE and SME feature registers, and anything that is not an
/// ID register read as 0.
pub fn sanitize_id(id: SysRegId, hw: u64, policy: &FeaturePolicy) -> u64 {
    if !is_id_register(id) || is_reserved_id_register(id) {
        return 0;
    }
    match id {
        ID_AA64PFR0_EL1 => {
            let gic = if policy.gic_v3 {
                ID_AA64PFR0_EL1::GIC::V3
            } else {
                ID_AA64PFR0_EL1::GIC::NotImplemented
            };
            let mut reg = LocalRegisterCopy::<u64, ID_AA64PFR0_EL1::Register>::new(hw);
            reg.modify(
                ID_AA64PFR0_EL1::SVE::CLEAR
                    + ID_AA64PFR0_EL1::AMU::CLEAR
                    + ID_AA64PFR0_EL1::MPAM::CLEAR
                    + ID_AA64PFR0_EL1::RAS::CLEAR
                    + gic,
            );
            reg.get()
        }
        ID_AA64PFR1_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64PFR1_EL1::Register>::new(hw);
            reg.modify(
                ID_AA64PFR1_EL1::SME::CLEAR
                    + ID_AA64PFR1_EL1::MTE::CLEAR
                    + ID_AA64PFR1_EL1::MTE_FRAC::CLEAR
                    + ID_AA64PFR1_EL1::MTEX::CLEAR
                    + ID_AA64PFR1_EL1::MPAM_FRAC::CLEAR
                    + ID_AA64PFR1_EL1::RAS_FRAC::CLEAR
                    // Features that need EL2 state exitless does not set up (HCRX_EL2,
                    // GCS and TCR2 registers): not offered.
                    + ID_AA64PFR1_EL1::NMI::CLEAR
                    + ID_AA64PFR1_EL1::GCS::CLEAR
                    + ID_AA64PFR1_EL1::THE::CLEAR,
            );
            reg.get()
        }
        ID_AA64PFR2_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64PFR2_EL1::Register>::new(hw);
            reg.modify(
                ID_AA64PFR2_EL1::MTEPERM::CLEAR
                    + ID_AA64PFR2_EL1::MTESTOREONLY::CLEAR
                    + ID_AA64PFR2_EL1::MTEFAR::CLEAR
                    // FPMR needs HCRX_EL2.EnFPM.
                    + ID_AA64PFR2_EL1::FPMR::CLEAR,
            );
            reg.get()
        }
        ID_AA64ISAR1_EL1 => {
            // LS64 needs HCRX_EL2 enables.
            let mut reg = LocalRegisterCopy::<u64, ID_AA64ISAR1_EL1::Register>::new(hw);
            reg.modify(ID_AA64ISAR1_EL1::LS64::CLEAR);
            reg.get()
        }
        ID_AA64ISAR2_EL1 => {
            // MOPS needs HCRX_EL2.MSCEn.
            let mut reg = LocalRegisterCopy::<u64, ID_AA64ISAR2_EL1::Register>::new(hw);
            reg.modify(ID_AA64ISAR2_EL1::MOPS::CLEAR);
            reg.get()
        }
        ID_AA64DFR0_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64DFR0_EL1::Register>::new(hw);
            reg.modify(
                // PMU.
                ID_AA64DFR0_EL1::PMUVER::CLEAR
                    + ID_AA64DFR0_EL1::PMSS::CLEAR
                    + ID_AA64DFR0_EL1::SEBEP::CLEAR
                    + ID_AA64DFR0_EL1::HPMN0::CLEAR
                    + ID_AA64DFR0_EL1::MTPMU::CLEAR
                    // SPE.
                    + ID_AA64DFR0_EL1::PMSVER::CLEAR
                    // TRBE.
                    + ID_AA64DFR0_EL1::TRACEBUFFER::CLEAR
                    + ID_AA64DFR0_EL1::EXTTRCBUFF::CLEAR
                    // Trace.
                    + ID_AA64DFR0_EL1::TRACEVER::CLEAR
                    + ID_AA64DFR0_EL1::TRACEFILT::CLEAR
                    // BRBE.
                    + ID_AA64DFR0_EL1::BRBE::CLEAR,
            );
            reg.get()
        }
        ID_AA64DFR1_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64DFR1_EL1::Register>::new(hw);
            reg.modify(
                ID_AA64DFR1_EL1::EBEP::CLEAR
                    + ID_AA64DFR1_EL1::PMICNTR::CLEAR
                    + ID_AA64DFR1_EL1::SPMU::CLEAR
                    + ID_AA64DFR1_EL1::ITE::CLEAR,
            );
            reg.get()
        }
        ID_AA64DFR2_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64DFR2_EL1::Register>::new(hw);
            reg.modify(
                ID_AA64DFR2_EL1::SPE_EXC::CLEAR
                    + ID_AA64DFR2_EL1::SPE_NVM::CLEAR
                    + ID_AA64DFR2_EL1::TRBE_EXC::CLEAR,
            );
            reg.get()
        }
        ID_AA64MMFR2_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64MMFR2_EL1::Register>::new(hw);
            reg.modify(ID_AA64MMFR2_EL1::NV::CLEAR);
            reg.get()
        }
        ID_AA64MMFR4_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_AA64MMFR4_EL1::Register>::new(hw);
            reg.modify(ID_AA64MMFR4_EL1::NV_FRAC::CLEAR);
            reg.get()
        }
        ID_PFR0_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_PFR0_EL1::Register>::new(hw);
            reg.modify(ID_PFR0_EL1::RAS::CLEAR + ID_PFR0_EL1::AMU::CLEAR);
            reg.get()
        }
        ID_PFR1_EL1 => {
            let gic = if policy.gic_v3 {
                ID_PFR1_EL1::GIC::V3
            } else {
                ID_PFR1_EL1::GIC::NotImplemented
            };
            let mut reg = LocalRegisterCopy::<u64, ID_PFR1_EL1::Register>::new(hw);
            reg.modify(gic);
            reg.get()
        }
        ID_PFR2_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_PFR2_EL1::Register>::new(hw);
            reg.modify(ID_PFR2_EL1::RAS_FRAC::CLEAR);
            reg.get()
        }
        ID_DFR0_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_DFR0_EL1::Register>::new(hw);
            reg.modify(
                ID_DFR0_EL1::PERFMON::CLEAR
                    + ID_DFR0_EL1::TRACEFILT::CLEAR
                    + ID_DFR0_EL1::MMAPTRC::CLEAR
                    + ID_DFR0_EL1::COPTRC::CLEAR,
            );
            reg.get()
        }
        ID_DFR1_EL1 => {
            let mut reg = LocalRegisterCopy::<u64, ID_DFR1_EL1::Register>::new(hw);
            reg.modify(ID_DFR1_EL1::HPMN0::CLEAR + ID_DFR1_EL1::MTPMU::CLEAR);
            reg.get()
        }
        ID_AA64ZFR0_EL1 | ID_AA64SMFR0_EL1 | ID_AFR0_EL1 | ID_AA64AFR0_EL1 | ID_AA64AFR1_EL1 => 0,
        _ => hw,
    }
}

#[cfg(test)]
mod tests {
    use tock_registers::RegisterLongName;
    use tock_registers::fields::FieldValue;

    use super::*;

    const V3: FeaturePolicy = FeaturePolicy { gic_v3: true };
    const V2: FeaturePolicy = FeaturePolicy { gic_v3: false };

    fn value<R: RegisterLongName>(fields: FieldValue<u64, R>) -> u64 {
        fields.value
    }

    // ---- Realistic inputs -------------------------------------------------------------------
    //
    // QEMU `-cpu max` (TCG), composed from `aarch64_max_tcg_initfn` (target/arm/tcg/cpu64.c as
    // of QEMU 8.0, which starts from the Cortex-A57 values of `aarch64_a57_initfn`):
    //
    // * ID_AA64PFR0_EL1: A57 0x2222 (EL0..EL3 AArch64+AArch32), FP=1, AdvSIMD=1 (FP16), GIC=1
    //   (added at read time by QEMU's GICv3 CPU interface), RAS=2, SVE=1, SEL2=1, DIT=1, CSV2=2,
    //   CSV3=1.
    // * ID_AA64PFR1_EL1: BT=1, SSBS=2, MTE=3 (with `mte=on`), SME=1.
    // * ID_AA64DFR0_EL1: A57 0x10305106 with DebugVer=9 (v8.4) and PMUVer=6 (PMUv3p5).
    // * ID_AA64MMFR2_EL1: CnP, UAO, IESB, VARange, ST, IDS, FWB, TTL=1, BBM=2, EVT=2, E0PD=1,
    //   plus NV=2 (FEAT_NV2, which `-cpu max` has from QEMU 9.0 on).
    const QEMU_MAX_PFR0: u64 = 0x1201_0011_2111_2222;
    const QEMU_MAX_PFR1: u64 = 0x0000_0000_0100_0321;
    const QEMU_MAX_DFR0: u64 = 0x0000_0000_1030_5609;
    const QEMU_MAX_MMFR2: u64 = 0x1221_0110_1201_1011;

    #[test]
    fn composed_qemu_values_have_the_fields_they_claim() {
        assert_eq!(
            QEMU_MAX_PFR0,
            value(
                ID_AA64PFR0_EL1::CSV3.val(1)
                    + ID_AA64PFR0_EL1::CSV2.val(2)
                    + ID_AA64PFR0_EL1::DIT.val(1)
                    + ID_AA64PFR0_EL1::SEL2.val(1)
                    + ID_AA64PFR0_EL1::SVE.val(1)
                    + ID_AA64PFR0_EL1::RAS.val(2)
                    + ID_AA64PFR0_EL1::GIC::V3
                    + ID_AA64PFR0_EL1::ADVSIMD.val(1)
                    + ID_AA64PFR0_EL1::FP.val(1)
                    + ID_AA64PFR0_EL1::EL3.val(2)
                    + ID_AA64PFR0_EL1::EL2.val(2)
                    + ID_AA64PFR0_EL1::EL1.val(2)
                    + ID_AA64PFR0_EL1::EL0.val(2)
            )
        );
        assert_eq!(
            QEMU_MAX_PFR1,
            value(
                ID_AA64PFR1_EL1::SME.val(1)
                    + ID_AA64PFR1_EL1::MTE.val(3)
                    + ID_AA64PFR1_EL1::SSBS.val(2)
                    + ID_AA64PFR1_EL1::BT.val(1)
            )
        );
        assert_eq!(
            QEMU_MAX_DFR0,
            value(
                ID_AA64DFR0_EL1::CTX_CMPS.val(1)
                    + ID_AA64DFR0_EL1::WRPS.val(3)
                    + ID_AA64DFR0_EL1::BRPS.val(5)
                    + ID_AA64DFR0_EL1::PMUVER.val(6)
                    + ID_AA64DFR0_EL1::DEBUGVER.val(9)
            )
        );
        assert_eq!(
            QEMU_MAX_MMFR2,
            value(
                ID_AA64MMFR2_EL1::E0PD.val(1)
                    + ID_AA64MMFR2_EL1::EVT.val(2)
                    + ID_AA64MMFR2_EL1::BBM.val(2)
                    + ID_AA64MMFR2_EL1::TTL.val(1)
                    + ID_AA64MMFR2_EL1::FWB.val(1)
                    + ID_AA64MMFR2_EL1::IDS.val(1)
                    + ID_AA64MMFR2_EL1::ST.val(1)
                    + ID_AA64MMFR2_EL1::NV.val(2)
                    + ID_AA64MMFR2_EL1::VARANGE.val(1)
                    + ID_AA64MMFR2_EL1::IESB.val(1)
                    + ID_AA64MMFR2_EL1::UAO.val(1)
                    + ID_AA64MMFR2_EL1::CNP.val(1)
            )
        );
    }

    // ---- Hidden features --------------------------------------------------------------------

    #[test]
    fn qemu_max_pfr0_loses_sve_and_ras_and_keeps_the_rest() {
        // SVE (35:32) and RAS (31:28) cleared; GIC stays 1 for a vGICv3 guest.
        assert_eq!(
            sanitize_id(ID_AA64PFR0_EL1, QEMU_MAX_PFR0, &V3),
            0x1201_0010_0111_2222
        );
    }

    #[test]
    fn pfr0_gic_field_follows_the_vgic_not_the_hardware() {
        assert_eq!(
            sanitize_id(ID_AA64PFR0_EL1, QEMU_MAX_PFR0, &V2),
            0x1201_0010_0011_2222
        );
        // A GICv2-only host (GIC=0) with a vGICv3 guest, and a GICv4.1 host (GIC=3).
        let gic = |hw, policy| {
            LocalRegisterCopy::<u64, ID_AA64PFR0_EL1::Register>::new(sanitize_id(
                ID_AA64PFR0_EL1,
                hw,
                policy,
            ))
            .read(ID_AA64PFR0_EL1::GIC)
        };
        assert_eq!(gic(0x2222, &V3), 1);
        assert_eq!(gic(value(ID_AA64PFR0_EL1::GIC::V4p1), &V3), 1);
        assert_eq!(gic(value(ID_AA64PFR0_EL1::GIC::V4p1), &V2), 0);
    }

    #[test]
    fn pfr0_hides_amu_and_mpam() {
        // Composed: a Neoverse-like PFR0 with AMU=1 (AMUv1) and MPAM=1 on top of QEMU max.
        let hw = QEMU_MAX_PFR0 | value(ID_AA64PFR0_EL1::AMU.val(1) + ID_AA64PFR0_EL1::MPAM.val(1));
        assert_eq!(hw, 0x1201_1111_2111_2222);
        assert_eq!(sanitize_id(ID_AA64PFR0_EL1, hw, &V3), 0x1201_0010_0111_2222);
    }

    #[test]
    fn qemu_max_pfr1_loses_sme_and_mte_and_keeps_bti_and_ssbs() {
        assert_eq!(sanitize_id(ID_AA64PFR1_EL1, QEMU_MAX_PFR1, &V3), 0x21);
    }

    #[test]
    fn pfr1_hides_mte_frac_mtex_mpam_frac_and_ras_frac() {
        let hw = QEMU_MAX_PFR1
            | value(
                ID_AA64PFR1_EL1::MTE_FRAC.val(0xf)
                    + ID_AA64PFR1_EL1::MTEX.val(1)
                    + ID_AA64PFR1_EL1::MPAM_FRAC.val(1)
                    + ID_AA64PFR1_EL1::RAS_FRAC.val(1)
                    + ID_AA64PFR1_EL1::GCS.val(1)
                    + ID_AA64PFR1_EL1::CSV2_FRAC.val(2),
            );
        // CSV2_frac is passed through; GCS is hidden (it needs EL2 state).
        assert_eq!(
            sanitize_id(ID_AA64PFR1_EL1, hw, &V3),
            value(
                ID_AA64PFR1_EL1::CSV2_FRAC.val(2)
                    + ID_AA64PFR1_EL1::SSBS.val(2)
                    + ID_AA64PFR1_EL1::BT.val(1)
            )
        );
    }

    #[test]
    fn pfr2_hides_mte_extensions_and_fpmr() {
        let hw = value(
            ID_AA64PFR2_EL1::FPMR.val(1)
                + ID_AA64PFR2_EL1::MTEFAR.val(1)
                + ID_AA64PFR2_EL1::MTESTOREONLY.val(1)
                + ID_AA64PFR2_EL1::MTEPERM.val(1),
        );
        assert_eq!(
            sanitize_id(ID_AA64PFR2_EL1, hw, &V3),
            0,
            "FPMR needs HCRX_EL2.EnFPM"
        );
    }

    #[test]
    fn sve_and_sme_feature_registers_read_as_zero() {
        // QEMU max ID_AA64ZFR0_EL1: SVEver=1, AES=2, BitPerm, BF16, SHA3, SM4, I8MM, F32MM, F64MM.
        assert_eq!(sanitize_id(ID_AA64ZFR0_EL1, 0x0110_1100_0011_0021, &V3), 0);
        assert_eq!(sanitize_id(ID_AA64SMFR0_EL1, 0x80f1_00fd_0000_0000, &V3), 0);
    }

    #[test]
    fn qemu_max_dfr0_loses_the_pmu() {
        // PMUVer (11:8) cleared; DebugVer, BRPs, WRPs, CTX_CMPs kept.
        assert_eq!(
            sanitize_id(ID_AA64DFR0_EL1, QEMU_MAX_DFR0, &V3),
            0x1030_5009
        );
    }

    #[test]
    fn dfr0_hides_spe_trbe_trace_brbe_and_pmu_extensions() {
        // Composed: a Neoverse-V2-like DFR0 with every debug and trace feature.
        let kept = ID_AA64DFR0_EL1::DOUBLELOCK.val(0xf)
            + ID_AA64DFR0_EL1::CTX_CMPS.val(1)
            + ID_AA64DFR0_EL1::WRPS.val(3)
            + ID_AA64DFR0_EL1::BRPS.val(5)
            + ID_AA64DFR0_EL1::DEBUGVER.val(0xa);
        let hidden = ID_AA64DFR0_EL1::HPMN0.val(1)
            + ID_AA64DFR0_EL1::EXTTRCBUFF.val(1)
            + ID_AA64DFR0_EL1::BRBE.val(1)
            + ID_AA64DFR0_EL1::MTPMU.val(1)
            + ID_AA64DFR0_EL1::TRACEBUFFER.val(1)
            + ID_AA64DFR0_EL1::TRACEFILT.val(1)
            + ID_AA64DFR0_EL1::PMSVER.val(4)
            + ID_AA64DFR0_EL1::SEBEP.val(1)
            + ID_AA64DFR0_EL1::PMSS.val(1)
            + ID_AA64DFR0_EL1::PMUVER.val(8)
            + ID_AA64DFR0_EL1::TRACEVER.val(1);
        assert_eq!(
            sanitize_id(ID_AA64DFR0_EL1, value(kept) | value(hidden), &V3),
            value(kept)
        );
        assert_eq!(value(hidden) & value(kept), 0);
    }

    #[test]
    fn dfr1_and_dfr2_hide_pmu_spe_and_trace_extensions() {
        let dfr1_kept = ID_AA64DFR1_EL1::CTX_CMPS.val(2)
            + ID_AA64DFR1_EL1::WRPS.val(4)
            + ID_AA64DFR1_EL1::BRPS.val(6)
            + ID_AA64DFR1_EL1::ABLE.val(1);
        let dfr1_hidden = ID_AA64DFR1_EL1::EBEP.val(1)
            + ID_AA64DFR1_EL1::PMICNTR.val(1)
            + ID_AA64DFR1_EL1::SPMU.val(1)
            + ID_AA64DFR1_EL1::ITE.val(1);
        assert_eq!(
            sanitize_id(ID_AA64DFR1_EL1, value(dfr1_kept) | value(dfr1_hidden), &V3),
            value(dfr1_kept)
        );
        let dfr2 = ID_AA64DFR2_EL1::TRBE_EXC.val(1)
            + ID_AA64DFR2_EL1::SPE_NVM.val(1)
            + ID_AA64DFR2_EL1::SPE_EXC.val(1)
            + ID_AA64DFR2_EL1::STEP.val(1);
        assert_eq!(
            sanitize_id(ID_AA64DFR2_EL1, value(dfr2), &V3),
            value(ID_AA64DFR2_EL1::STEP.val(1))
        );
    }

    #[test]
    fn mmfr2_hides_nested_virtualization() {
        assert_eq!(
            sanitize_id(ID_AA64MMFR2_EL1, QEMU_MAX_MMFR2, &V3),
            0x1221_0110_1001_1011
        );
        let mmfr4 = value(ID_AA64MMFR4_EL1::NV_FRAC.val(1) + ID_AA64MMFR4_EL1::ASID2.val(1));
        assert_eq!(
            sanitize_id(ID_AA64MMFR4_EL1, mmfr4, &V3),
            value(ID_AA64MMFR4_EL1::ASID2.val(1))
        );
    }

    #[test]
    fn aarch32_id_registers_hide_the_same_features() {
        // ID_PFR0_EL1: Cortex-A57 0x131 plus QEMU max's DIT=1, RAS=1, CSV2=2 and a composed AMU.
        let pfr0 = value(
            ID_PFR0_EL1::RAS.val(1)
                + ID_PFR0_EL1::DIT.val(1)
                + ID_PFR0_EL1::AMU.val(1)
                + ID_PFR0_EL1::CSV2.val(2),
        ) | 0x131;
        assert_eq!(pfr0, 0x1112_0131);
        assert_eq!(sanitize_id(ID_PFR0_EL1, pfr0, &V3), 0x0102_0131);
        // ID_PFR1_EL1: Cortex-A57 0x00011011 (GIC=0); a vGICv3 guest sees GIC=1.
        assert_eq!(sanitize_id(ID_PFR1_EL1, 0x0001_1011, &V3), 0x1001_1011);
        assert_eq!(sanitize_id(ID_PFR1_EL1, 0x1001_1011, &V2), 0x0001_1011);
        // ID_PFR2_EL1: QEMU max 0x11 (CSV3, SSBS) plus RAS_frac.
        assert_eq!(sanitize_id(ID_PFR2_EL1, 0x111, &V3), 0x11);
        // ID_DFR0_EL1: Cortex-A57 0x03010066 (PerfMon=3, MMapTrc=1) loses PMU and trace.
        assert_eq!(sanitize_id(ID_DFR0_EL1, 0x0301_0066, &V3), 0x0000_0066);
        assert_eq!(
            sanitize_id(
                ID_DFR1_EL1,
                value(ID_DFR1_EL1::HPMN0.val(1) + ID_DFR1_EL1::MTPMU.val(1)),
                &V3
            ),
            0
        );
    }

    #[test]
    fn implementation_defined_auxiliary_feature_registers_read_as_zero() {
        for id in [ID_AFR0_EL1, ID_AA64AFR0_EL1, ID_AA64AFR1_EL1] {
            assert_eq!(sanitize_id(id, u64::MAX, &V3), 0, "{id}");
        }
    }

    #[test]
    fn pointer_authentication_and_instruction_sets_pass_through() {
        // Composed values; ID_AA64ISAR1_EL1 has pointer authentication (APA=5, GPA=1).
        for (id, hw) in [
            (ID_AA64ISAR0_EL1, 0x1221_1111_1011_2120u64),
            (ID_AA64ISAR1_EL1, 0x0011_1112_0121_1052),
            (ID_AA64ISAR2_EL1, 0x0000_0000_0000_1002),
            (ID_AA64ISAR3_EL1, 0x10),
            (ID_AA64MMFR0_EL1, 0x1000_0220_0010_1126),
            (ID_AA64MMFR1_EL1, 0x0000_1111_1012_1122),
            (ID_AA64MMFR3_EL1, 0x11),
            (ID_AA64FPFR0_EL1, 0xc000_0003),
            // ID_MMFR4_EL1 (AArch32), which exitless does not name.
            (SysRegId::new(3, 0, 0, 2, 6), 0x0002_1110),
        ] {
            assert_eq!(sanitize_id(id, hw, &V3), hw, "{id}");
        }
    }

    #[test]
    fn names_match_the_trap_module() {
        assert_eq!(ID_AA64PFR0_EL1, SysRegId::ID_AA64PFR0_EL1);
        assert_eq!(ID_AA64ISAR2_EL1, SysRegId::ID_AA64ISAR2_EL1);
        assert_eq!(ID_AA64DFR0_EL1, SysRegId::new(3, 0, 0, 5, 0));
        assert_eq!(ID_AA64MMFR2_EL1, SysRegId::new(3, 0, 0, 7, 2));
    }

    // ---- Reserved encodings -------------------------------------------------------------------

    #[test]
    fn reserved_id_encodings_read_as_zero() {
        for (crm, op2) in RESERVED_ID_ENCODINGS {
            let id = SysRegId::new(3, 0, 0, crm, op2);
            assert!(is_reserved_id_register(id));
            assert_eq!(classify(id, false), SysRegAction::ReadIdReg(id), "{id}");
            assert_eq!(sanitize_id(id, u64::MAX, &V3), 0, "{id}");
        }
    }

    #[test]
    fn named_id_registers_are_not_reserved() {
        for id in [
            ID_PFR0_EL1,
            ID_PFR1_EL1,
            ID_DFR0_EL1,
            ID_AFR0_EL1,
            ID_PFR2_EL1,
            ID_DFR1_EL1,
            ID_AA64PFR0_EL1,
            ID_AA64PFR1_EL1,
            ID_AA64PFR2_EL1,
            ID_AA64ZFR0_EL1,
            ID_AA64SMFR0_EL1,
            ID_AA64FPFR0_EL1,
            ID_AA64DFR0_EL1,
            ID_AA64DFR1_EL1,
            ID_AA64DFR2_EL1,
            ID_AA64AFR0_EL1,
            ID_AA64AFR1_EL1,
            ID_AA64ISAR0_EL1,
            ID_AA64ISAR1_EL1,
            ID_AA64ISAR2_EL1,
            ID_AA64ISAR3_EL1,
            ID_AA64MMFR0_EL1,
            ID_AA64MMFR1_EL1,
            ID_AA64MMFR2_EL1,
            ID_AA64MMFR3_EL1,
            ID_AA64MMFR4_EL1,
        ] {
            assert!(is_id_register(id), "{id}");
            assert!(!is_reserved_id_register(id), "{id}");
        }
    }

    #[test]
    fn whole_id_space_reads_are_id_register_reads_and_writes_are_undefined() {
        for crm in 1..=7 {
            for op2 in 0..=7 {
                let id = SysRegId::new(3, 0, 0, crm, op2);
                assert_eq!(classify(id, false), SysRegAction::ReadIdReg(id), "{id}");
                assert_eq!(classify(id, true), SysRegAction::Undefined, "{id}");
            }
        }
    }

    #[test]
    fn registers_outside_the_tid3_space_are_not_id_registers() {
        // MIDR_EL1 and MPIDR_EL1 (CRm=0) come from VPIDR/VMPIDR_EL2, CTR_EL0 from TID2; CRm=8..15
        // and op1 != 0 are other spaces.
        for id in [
            SysRegId::new(3, 0, 0, 0, 0),
            SysRegId::new(3, 0, 0, 0, 5),
            SysRegId::CTR_EL0,
            SysRegId::new(3, 0, 0, 8, 0),
            SysRegId::new(3, 1, 0, 4, 0),
            SysRegId::new(2, 0, 0, 4, 0),
        ] {
            assert!(!is_id_register(id), "{id}");
            assert_eq!(sanitize_id(id, u64::MAX, &V3), 0, "{id}");
        }
    }

    // ---- classify -------------------------------------------------------------------------------

    #[test]
    fn sgi_register_writes_go_to_the_vgic() {
        assert_eq!(classify(SysRegId::ICC_SGI1R_EL1, true), SysRegAction::Sgi1r);
        assert_eq!(
            classify(SysRegId::ICC_ASGI1R_EL1, true),
            SysRegAction::Asgi1r
        );
        assert_eq!(classify(SysRegId::ICC_SGI0R_EL1, true), SysRegAction::Sgi0r);
    }

    #[test]
    fn sgi_register_reads_are_undefined() {
        for id in [
            SysRegId::ICC_SGI1R_EL1,
            SysRegId::ICC_ASGI1R_EL1,
            SysRegId::ICC_SGI0R_EL1,
        ] {
            assert_eq!(classify(id, false), SysRegAction::Undefined, "{id}");
        }
    }

    #[test]
    fn unknown_registers_are_undefined() {
        for id in [
            // SMPRI_EL1 (gunyah-hypervisor#14: a Linux guest probing SME).
            SysRegId::SMPRI_EL1,
            // IMPLEMENTATION DEFINED (HCR_EL2.TIDCP): S3_0_C15_C2_0, S3_1_C11_C0_2.
            SysRegId::new(3, 0, 15, 2, 0),
            SysRegId::new(3, 1, 11, 0, 2),
            // PMCR_EL0 (PMU hidden), PMSIDR_EL1 (SPE hidden), TRFCR_EL1 (trace hidden),
            // ERRIDR_EL1 (RAS hidden), MPAM1_EL1 (MPAM hidden), AMCR_EL0 (AMU hidden).
            SysRegId::new(3, 3, 9, 12, 0),
            SysRegId::new(3, 0, 9, 9, 7),
            SysRegId::new(3, 0, 1, 2, 1),
            SysRegId::new(3, 0, 5, 3, 0),
            SysRegId::new(3, 0, 10, 5, 0),
            SysRegId::new(3, 3, 13, 2, 0),
            // OSLSR_EL1 is not emulated.
            SysRegId::new(2, 0, 1, 1, 4),
            // A trapped `dc isw` (HCR_EL2.TSW).
            SysRegId::new(1, 0, 7, 6, 2),
        ] {
            assert_eq!(classify(id, false), SysRegAction::Undefined, "{id}");
            assert_eq!(classify(id, true), SysRegAction::Undefined, "{id}");
        }
    }

    #[test]
    fn os_lock_and_debug_communication_registers_are_raz_wi() {
        for id in [
            OSDLR_EL1,
            DBGPRCR_EL1,
            OSECCR_EL1,
            MDCCINT_EL1,
            DBGCLAIMSET_EL1,
            DBGCLAIMCLR_EL1,
        ] {
            assert_eq!(classify(id, false), SysRegAction::ReadAsZero, "{id}");
            assert_eq!(classify(id, true), SysRegAction::Ignore, "{id}");
        }
        // Write-only OSLAR_EL1 and read-only MDRAR_EL1.
        assert_eq!(classify(OSLAR_EL1, true), SysRegAction::Ignore);
        assert_eq!(classify(OSLAR_EL1, false), SysRegAction::Undefined);
        assert_eq!(classify(MDRAR_EL1, false), SysRegAction::ReadAsZero);
        assert_eq!(classify(MDRAR_EL1, true), SysRegAction::Undefined);
    }

    #[test]
    fn actlr_and_loregion_registers_are_raz_wi() {
        for id in [ACTLR_EL1, LORSA_EL1, LOREA_EL1, LORN_EL1, LORC_EL1] {
            assert_eq!(classify(id, false), SysRegAction::ReadAsZero, "{id}");
            assert_eq!(classify(id, true), SysRegAction::Ignore, "{id}");
        }
        assert_eq!(classify(LORID_EL1, false), SysRegAction::ReadAsZero);
        assert_eq!(classify(LORID_EL1, true), SysRegAction::Undefined);
    }

    #[test]
    fn classify_and_sanitize_are_total() {
        for op0 in 0..4 {
            for op1 in 0..8 {
                for crn in 0..16 {
                    for crm in 0..16 {
                        for op2 in 0..8 {
                            let id = SysRegId::new(op0, op1, crn, crm, op2);
                            for write in [false, true] {
                                if let SysRegAction::ReadIdReg(read) = classify(id, write) {
                                    assert_eq!(read, id);
                                    assert!(!write);
                                }
                            }
                            let _ = sanitize_id(id, u64::MAX, &V2);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn features_needing_hcrx_or_extra_state_are_hidden() {
        let p = FeaturePolicy { gic_v3: true };
        // NMI (39:36), GCS (47:44), THE (51:48) set, BT (3:0) set and kept.
        let pfr1 = 1 << 36 | 1 << 44 | 1 << 48 | 1;
        assert_eq!(sanitize_id(ID_AA64PFR1_EL1, pfr1, &p), 1);
        assert_eq!(sanitize_id(ID_AA64PFR2_EL1, 1 << 32, &p), 0, "FPMR");
        assert_eq!(
            sanitize_id(ID_AA64ISAR1_EL1, 1 << 60 | 0x52, &p),
            0x52,
            "LS64 only"
        );
        assert_eq!(
            sanitize_id(ID_AA64ISAR2_EL1, 1 << 16 | 0x1002, &p),
            0x1002,
            "MOPS only"
        );
    }
}
