//! ESR_ELx syndrome decoding.
//!
//! Spec: Arm ARM DDI 0487, chapter D24.2, "ESR_EL2, Exception Syndrome Register (EL2)", and the
//! "ISS encoding for an exception from ..." subsections it points to for each Exception Class
//! (EC). ESR_EL1 has the same layout, so everything here applies to it too. Field positions were
//! cross-checked against Linux `arch/arm64/include/asm/esr.h` and QEMU `target/arm/syndrome.h`.
//!
//! An [`Esr`] is a value the trap path snapshots once; nothing here reads hardware. It answers
//! three questions:
//!
//! * *What kind of exception?* [`Esr::ec`] gives the [`ExceptionClass`], with a short human name.
//! * *What exactly happened?* [`Esr::decode`] turns the Instruction Specific Syndrome (ISS) into a
//!   typed [`Iss`] for the classes a hypervisor acts on: data and instruction aborts, trapped
//!   system register accesses, HVC/SMC/SVC/BRK immediates and WFI/WFE/WFIT/WFET.
//! * *What do we print when EL2 takes an exception it did not expect?* [`Report`].
//!
//! Invariants:
//!
//! * Decoding is total and never panics: every 64-bit value decodes. Unallocated ECs become
//!   [`ExceptionClass::Other`], unallocated fault codes [`FaultStatus::Reserved`], classes without
//!   a typed decoder [`Iss::Other`]. A guest chooses its own syndromes, so a crash here would be a
//!   guest-triggered hypervisor crash.
//! * A field the architecture defines only under a condition is an `Option` that is `None` when
//!   the condition is false: the data-abort instruction syndrome exists only when ISV=1, the WFxT
//!   timeout register only when RV=1.
//! * Bit positions appear only in the `register_bitfields!` definitions below; the logic reads
//!   named fields.

use core::fmt;

use tock_registers::fields::Field;
use tock_registers::{LocalRegisterCopy, RegisterLongName, register_bitfields};

register_bitfields! {u64,
    /// The layout every exception class shares (DDI 0487 D24.2, ESR_EL2). aarch64-cpu's `ESR_EL2`
    /// has the same EC/IL/ISS fields but only five bits of ISS2; this one is independent of the
    /// register it was read from.
    #[allow(missing_docs)]
    pub ESR_ELx [
        /// Instruction Specific Syndrome 2, bits `[55:32]` (FEAT_LS64, FEAT_GCS, FEAT_S1POE, ...).
        ISS2 OFFSET(32) NUMBITS(24) [],
        /// Exception Class: why the exception was taken.
        EC OFFSET(26) NUMBITS(6) [],
        /// Instruction Length: 1 for a 32-bit instruction, and for every exception that is not
        /// caused by an instruction of known length.
        IL OFFSET(25) NUMBITS(1) [],
        /// Instruction Specific Syndrome; its layout depends on EC.
        ISS OFFSET(0) NUMBITS(25) []
    ],

    /// ISS of a Data Abort (EC 0x24, 0x25): "ISS encoding for an exception from a Data Abort".
    /// SAS..AR are valid only when ISV is 1.
    #[allow(missing_docs)]
    pub ESR_ISS_DABT [
        /// Instruction Syndrome Valid: SAS, SSE, SRT, SF and AR hold a valid syndrome.
        ISV OFFSET(24) NUMBITS(1) [],
        /// Syndrome Access Size.
        SAS OFFSET(22) NUMBITS(2) [
            Byte = 0b00,
            Halfword = 0b01,
            Word = 0b10,
            Doubleword = 0b11
        ],
        /// Syndrome Sign Extend: the load sign-extends the value into the register.
        SSE OFFSET(21) NUMBITS(1) [],
        /// Syndrome Register Transfer: the general-purpose register of the load or store.
        SRT OFFSET(16) NUMBITS(5) [],
        /// Sixty-Four: the register is the 64-bit Xn (1) or the 32-bit Wn (0).
        SF OFFSET(15) NUMBITS(1) [],
        /// Acquire/Release semantics.
        AR OFFSET(14) NUMBITS(1) [],
        /// The fault came from an access through VNCR_EL2 (FEAT_NV2).
        VNCR OFFSET(13) NUMBITS(1) [],
        /// FAR not Valid.
        FNV OFFSET(10) NUMBITS(1) [],
        /// External abort type (IMPLEMENTATION DEFINED classification).
        EA OFFSET(9) NUMBITS(1) [],
        /// Cache Maintenance: the fault came from a cache maintenance or address translation
        /// instruction.
        CM OFFSET(8) NUMBITS(1) [],
        /// The fault was on a stage-2 translation of a stage-1 table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Write not Read.
        WNR OFFSET(6) NUMBITS(1) [],
        /// Data Fault Status Code.
        DFSC OFFSET(0) NUMBITS(6) []
    ],

    /// ISS of an Instruction Abort (EC 0x20, 0x21).
    #[allow(missing_docs)]
    pub ESR_ISS_IABT [
        /// FAR not Valid.
        FNV OFFSET(10) NUMBITS(1) [],
        /// External abort type.
        EA OFFSET(9) NUMBITS(1) [],
        /// The fault was on a stage-2 translation of a stage-1 table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Instruction Fault Status Code.
        IFSC OFFSET(0) NUMBITS(6) []
    ],

    /// ISS of a trapped MSR, MRS or System instruction in AArch64 state (EC 0x18).
    #[allow(missing_docs)]
    pub ESR_ISS_SYS64 [
        OP0 OFFSET(20) NUMBITS(2) [],
        OP2 OFFSET(17) NUMBITS(3) [],
        OP1 OFFSET(14) NUMBITS(3) [],
        CRN OFFSET(10) NUMBITS(4) [],
        /// The general-purpose register transferred.
        RT OFFSET(5) NUMBITS(5) [],
        CRM OFFSET(1) NUMBITS(4) [],
        /// Direction of the access.
        DIRECTION OFFSET(0) NUMBITS(1) [
            /// MSR, or SYS.
            Write = 0,
            /// MRS, or SYSL.
            Read = 1
        ]
    ],

    /// ISS of SVC, HVC, SMC (AArch64, EC 0x15..0x17) and BRK (EC 0x3C): the instruction's
    /// 16-bit immediate.
    #[allow(missing_docs)]
    pub ESR_ISS_IMM16 [
        IMM16 OFFSET(0) NUMBITS(16) []
    ],

    /// ISS of a trapped WF* instruction (EC 0x01). CV and COND (AArch32 only) are not decoded.
    #[allow(missing_docs)]
    pub ESR_ISS_WFX [
        /// The register holding the WFIT/WFET timeout (valid when RV is 1).
        RN OFFSET(5) NUMBITS(5) [],
        /// Register Valid: RN is valid (FEAT_WFxT).
        RV OFFSET(2) NUMBITS(1) [],
        /// Trapped Instruction.
        TI OFFSET(0) NUMBITS(2) [
            Wfi = 0b00,
            Wfe = 0b01,
            Wfit = 0b10,
            Wfet = 0b11
        ]
    ]
}

register_bitfields! {u16,
    /// The packing of a [`SysRegId`]: op0:op1:CRn:CRm:op2, the order of the MRS/MSR encoding.
    SYSREG_ID [
        OP0 OFFSET(14) NUMBITS(2) [],
        OP1 OFFSET(11) NUMBITS(3) [],
        CRN OFFSET(7) NUMBITS(4) [],
        CRM OFFSET(3) NUMBITS(4) [],
        OP2 OFFSET(0) NUMBITS(3) []
    ]
}

/// Register number 31 in the Rt/SRT field of a load, store, MSR or MRS names the zero register
/// (XZR/WZR), not SP.
const ZERO_REGISTER: u8 = 31;

/// op0 of the System instruction space (SYS/SYSL: DC, IC, TLBI, AT, ...); op0 0b10 and 0b11 are
/// register accesses (MSR/MRS).
const OP0_SYSTEM_INSTRUCTION: u8 = 0b01;

/// An exception syndrome: a snapshot of ESR_EL2 (or ESR_EL1, which has the same layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Esr(u64);

impl Esr {
    /// Wraps a raw ESR_ELx value.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The value viewed through the bitfields of `R`.
    fn view<R: RegisterLongName>(self) -> LocalRegisterCopy<u64, R> {
        LocalRegisterCopy::new(self.0)
    }

    /// The Exception Class.
    pub fn ec(self) -> ExceptionClass {
        ExceptionClass::from_code(self.ec_code())
    }

    /// The raw 6-bit EC field.
    #[inline]
    pub fn ec_code(self) -> u8 {
        // EC is 6 bits wide, so the value always fits.
        self.view::<ESR_ELx::Register>().read(ESR_ELx::EC) as u8
    }

    /// Instruction Length: `true` for a 32-bit instruction (and for exceptions that the
    /// architecture reports with IL=1 because no instruction length applies, such as aborts with
    /// ISV=0 or SError), `false` for a 16-bit T32 instruction.
    pub fn il(self) -> bool {
        self.view::<ESR_ELx::Register>().is_set(ESR_ELx::IL)
    }

    /// The Instruction Specific Syndrome, `ISS[24:0]`.
    pub fn iss(self) -> u32 {
        // ISS is 25 bits wide.
        self.view::<ESR_ELx::Register>().read(ESR_ELx::ISS) as u32
    }

    /// The Instruction Specific Syndrome 2, `ESR[55:32]`.
    pub fn iss2(self) -> u32 {
        // ISS2 is 24 bits wide.
        self.view::<ESR_ELx::Register>().read(ESR_ELx::ISS2) as u32
    }

    /// Decodes the ISS according to the exception class.
    ///
    /// Only the AArch64 forms of HVC, SMC and SVC are decoded; classes without a typed decoder
    /// give [`Iss::Other`] with the raw ISS.
    pub fn decode(self) -> Iss {
        match self.ec() {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                Iss::DataAbort(DataAbort::from_esr(self))
            }
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
                Iss::InstrAbort(InstrAbort::from_esr(self))
            }
            ExceptionClass::SysReg => Iss::SysReg(SysReg::from_esr(self)),
            ExceptionClass::Hvc64 => Iss::Hvc {
                imm16: self.imm16(),
            },
            ExceptionClass::Smc64 => Iss::Smc {
                imm16: self.imm16(),
            },
            ExceptionClass::Svc64 => Iss::Svc {
                imm16: self.imm16(),
            },
            ExceptionClass::Brk => Iss::Brk {
                comment: self.imm16(),
            },
            ExceptionClass::Wfx => Iss::Wfx(Wfx::from_esr(self)),
            _ => Iss::Other(self.iss()),
        }
    }

    /// The 16-bit immediate of SVC/HVC/SMC/BRK.
    fn imm16(self) -> u16 {
        // IMM16 is 16 bits wide.
        self.view::<ESR_ISS_IMM16::Register>()
            .read(ESR_ISS_IMM16::IMM16) as u16
    }
}

impl From<u64> for Esr {
    fn from(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Esr({:#018x}: {})", self.0, self.ec())
    }
}

/// Defines [`ExceptionClass`] from one table: variant, EC value and short human name.
macro_rules! exception_classes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal; )*) => {
        /// The Exception Class (ESR_ELx.EC): every value the Arm ARM allocates for exceptions
        /// taken to AArch64, plus [`ExceptionClass::Other`] for the unallocated ones.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ExceptionClass {
            $( $(#[$doc])* $variant, )*
            /// An EC value the Arm ARM leaves unallocated. [`ExceptionClass::from_code`] never
            /// puts an allocated value here.
            Other(u8),
        }

        impl ExceptionClass {
            /// The class of a 6-bit EC value.
            pub const fn from_code(code: u8) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    other => Self::Other(other),
                }
            }

            /// The EC value.
            pub const fn code(self) -> u8 {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Other(code) => code,
                }
            }

            /// A short human name, e.g. "data abort from a lower EL".
            pub const fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Other(_) => "unallocated exception class",
                }
            }
        }
    };
}

exception_classes! {
    /// Unknown reason, including UNDEFINED instructions.
    Unknown = 0x00, "unknown reason (undefined instruction)";
    /// Trapped WFI, WFE, WFIT or WFET.
    Wfx = 0x01, "trapped WFI/WFE";
    /// Trapped AArch32 MCR or MRC access with coproc 0b1111 (CP15).
    Cp15McrMrc = 0x03, "trapped MCR/MRC (CP15) from AArch32";
    /// Trapped AArch32 MCRR or MRRC access with coproc 0b1111 (CP15).
    Cp15McrrMrrc = 0x04, "trapped MCRR/MRRC (CP15) from AArch32";
    /// Trapped AArch32 MCR or MRC access with coproc 0b1110 (CP14).
    Cp14McrMrc = 0x05, "trapped MCR/MRC (CP14) from AArch32";
    /// Trapped AArch32 LDC or STC access (CP14).
    Cp14LdcStc = 0x06, "trapped LDC/STC (CP14) from AArch32";
    /// Access to SME, SVE, Advanced SIMD or floating-point functionality trapped.
    FpAsimd = 0x07, "trapped FP/SIMD access";
    /// Trapped AArch32 VMRS access, from the ID group trap.
    Cp10Vmrs = 0x08, "trapped VMRS (CP10) from AArch32";
    /// Trapped use of a Pointer Authentication instruction (HCR_EL2.API is 0).
    PacTrap = 0x09, "trapped pointer authentication instruction";
    /// Trapped execution of an instruction not covered by another EC (LD64B, ST64B*, TSB CSYNC,
    /// PSB CSYNC).
    OtherTrap = 0x0a, "trapped LD64B/ST64B or other instruction";
    /// Trapped AArch32 MRRC access with coproc 0b1110 (CP14).
    Cp14Mrrc = 0x0c, "trapped MRRC (CP14) from AArch32";
    /// Branch Target Exception (FEAT_BTI).
    BranchTarget = 0x0d, "branch target exception";
    /// Illegal Execution state.
    IllegalState = 0x0e, "illegal execution state";
    /// SVC in AArch32 state.
    Svc32 = 0x11, "SVC from AArch32";
    /// HVC in AArch32 state.
    Hvc32 = 0x12, "HVC from AArch32";
    /// SMC in AArch32 state.
    Smc32 = 0x13, "SMC from AArch32";
    /// Trapped MSRR, MRRS or SYSP (128-bit System registers, FEAT_SYSREG128/FEAT_SYSINSTR128).
    SysReg128 = 0x14, "trapped MSRR/MRRS/SYSP";
    /// SVC in AArch64 state.
    Svc64 = 0x15, "SVC from AArch64";
    /// HVC in AArch64 state.
    Hvc64 = 0x16, "HVC from AArch64";
    /// SMC in AArch64 state.
    Smc64 = 0x17, "SMC from AArch64";
    /// Trapped MSR, MRS or System instruction in AArch64 state.
    SysReg = 0x18, "trapped MSR/MRS/system instruction";
    /// Access to SVE functionality trapped.
    Sve = 0x19, "trapped SVE access";
    /// Trapped ERET, ERETAA or ERETAB (FEAT_NV, FEAT_FGT).
    Eret = 0x1a, "trapped ERET";
    /// Exception from a TSTART instruction (FEAT_TME).
    Tstart = 0x1b, "TSTART exception";
    /// Pointer Authentication failure (FEAT_FPAC).
    Fpac = 0x1c, "pointer authentication failure";
    /// Access to SME functionality trapped.
    Sme = 0x1d, "trapped SME access";
    /// Granule Protection Check exception (FEAT_RME; taken to EL3 only).
    GranuleProtection = 0x1e, "granule protection check";
    /// IMPLEMENTATION DEFINED exception (taken to EL3 only).
    ImpDef = 0x1f, "implementation defined exception";
    /// Instruction Abort from a lower Exception level.
    InstrAbortLower = 0x20, "instruction abort from a lower EL";
    /// Instruction Abort taken without a change in Exception level.
    InstrAbortSame = 0x21, "instruction abort from the same EL";
    /// PC alignment fault.
    PcAlignment = 0x22, "PC alignment fault";
    /// Data Abort from a lower Exception level.
    DataAbortLower = 0x24, "data abort from a lower EL";
    /// Data Abort taken without a change in Exception level.
    DataAbortSame = 0x25, "data abort from the same EL";
    /// SP alignment fault.
    SpAlignment = 0x26, "SP alignment fault";
    /// Memory Copy or Memory Set exception (FEAT_MOPS).
    Mops = 0x27, "memory copy/set exception";
    /// Trapped floating-point exception taken from AArch32 state.
    FpException32 = 0x28, "floating-point exception from AArch32";
    /// Trapped floating-point exception taken from AArch64 state.
    FpException64 = 0x2c, "floating-point exception from AArch64";
    /// Guarded Control Stack exception (FEAT_GCS).
    Gcs = 0x2d, "guarded control stack exception";
    /// SError exception.
    SError = 0x2f, "SError";
    /// Breakpoint exception from a lower Exception level.
    BreakpointLower = 0x30, "breakpoint from a lower EL";
    /// Breakpoint exception taken without a change in Exception level.
    BreakpointSame = 0x31, "breakpoint from the same EL";
    /// Software Step exception from a lower Exception level.
    SoftwareStepLower = 0x32, "software step from a lower EL";
    /// Software Step exception taken without a change in Exception level.
    SoftwareStepSame = 0x33, "software step from the same EL";
    /// Watchpoint exception from a lower Exception level.
    WatchpointLower = 0x34, "watchpoint from a lower EL";
    /// Watchpoint exception taken without a change in Exception level.
    WatchpointSame = 0x35, "watchpoint from the same EL";
    /// BKPT in AArch32 state.
    Bkpt32 = 0x38, "BKPT from AArch32";
    /// Vector Catch exception from AArch32 state.
    VectorCatch32 = 0x3a, "vector catch from AArch32";
    /// BRK in AArch64 state.
    Brk = 0x3c, "BRK from AArch64";
    /// Profiling exception (FEAT_EBEP, FEAT_SPE_EXC, FEAT_TRBE_EXC).
    Profiling = 0x3d, "profiling exception";
}

impl fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fault Status Code values (DFSC/IFSC, "ISS encoding for an exception from a Data Abort").
/// A `_L0` value is the level-0 code of a group whose levels 0 to 3 are consecutive; the negative
/// levels (FEAT_LPA2 level -1, FEAT_D128 level -2) have codes of their own.
mod fsc {
    pub const ADDRESS_SIZE_L0: u8 = 0x00;
    pub const ADDRESS_SIZE_L3: u8 = 0x03;
    pub const TRANSLATION_L0: u8 = 0x04;
    pub const TRANSLATION_L3: u8 = 0x07;
    pub const ACCESS_FLAG_L0: u8 = 0x08;
    pub const ACCESS_FLAG_L3: u8 = 0x0b;
    pub const PERMISSION_L0: u8 = 0x0c;
    pub const PERMISSION_L3: u8 = 0x0f;
    pub const SYNC_EXTERNAL: u8 = 0x10;
    pub const SYNC_TAG_CHECK: u8 = 0x11;
    pub const SYNC_EXTERNAL_WALK_LM2: u8 = 0x12;
    pub const SYNC_EXTERNAL_WALK_LM1: u8 = 0x13;
    pub const SYNC_EXTERNAL_WALK_L0: u8 = 0x14;
    pub const SYNC_EXTERNAL_WALK_L3: u8 = 0x17;
    pub const SYNC_PARITY_ECC: u8 = 0x18;
    pub const SYNC_PARITY_ECC_WALK_LM1: u8 = 0x1b;
    pub const SYNC_PARITY_ECC_WALK_L0: u8 = 0x1c;
    pub const SYNC_PARITY_ECC_WALK_L3: u8 = 0x1f;
    pub const ALIGNMENT: u8 = 0x21;
    pub const GRANULE_PROTECTION_WALK_LM2: u8 = 0x22;
    pub const GRANULE_PROTECTION_WALK_LM1: u8 = 0x23;
    pub const GRANULE_PROTECTION_WALK_L0: u8 = 0x24;
    pub const GRANULE_PROTECTION_WALK_L3: u8 = 0x27;
    pub const GRANULE_PROTECTION: u8 = 0x28;
    /// Arm ARM: 0b101001. (Linux `ESR_ELx_FSC_ADDRSZ_nL(-1)` says 0x25, which the Arm ARM
    /// allocates to a level-1 Granule Protection Fault on a walk.)
    pub const ADDRESS_SIZE_LM1: u8 = 0x29;
    pub const TRANSLATION_LM2: u8 = 0x2a;
    pub const TRANSLATION_LM1: u8 = 0x2b;
    pub const ADDRESS_SIZE_LM2: u8 = 0x2c;
    pub const TLB_CONFLICT: u8 = 0x30;
    pub const UNSUPPORTED_ATOMIC_UPDATE: u8 = 0x31;
    pub const IMPDEF_LOCKDOWN: u8 = 0x34;
    pub const IMPDEF_UNSUPPORTED_EXCLUSIVE: u8 = 0x35;
}

/// A translation table level, -2 (FEAT_D128) to 3.
pub type Level = i8;

/// A Fault Status Code (DFSC of a data abort, IFSC of an instruction abort), decoded.
///
/// The two codes share one table. A few values occur only for data aborts (alignment fault, tag
/// check fault); an instruction abort that reports one anyway decodes to the same variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultStatus {
    /// Address size fault at a level, or on the translation table base register (level 0).
    AddressSize {
        /// Lookup level.
        level: Level,
    },
    /// Translation fault: no valid descriptor at a level.
    Translation {
        /// Lookup level.
        level: Level,
    },
    /// Access flag fault.
    AccessFlag {
        /// Lookup level.
        level: Level,
    },
    /// Permission fault.
    Permission {
        /// Lookup level.
        level: Level,
    },
    /// Synchronous External abort, not on a translation table walk.
    SyncExternal,
    /// Synchronous Tag Check Fault (FEAT_MTE2).
    SyncTagCheck,
    /// Synchronous External abort on a translation table walk or hardware table update.
    SyncExternalOnWalk {
        /// Lookup level.
        level: Level,
    },
    /// Synchronous parity or ECC error on a memory access, not on a walk (without FEAT_RAS).
    SyncParityEcc,
    /// Synchronous parity or ECC error on a translation table walk (without FEAT_RAS).
    SyncParityEccOnWalk {
        /// Lookup level.
        level: Level,
    },
    /// Alignment fault.
    Alignment,
    /// Granule Protection Fault on a translation table walk (FEAT_RME).
    GranuleProtectionOnWalk {
        /// Lookup level.
        level: Level,
    },
    /// Granule Protection Fault, not on a walk (FEAT_RME).
    GranuleProtection,
    /// TLB conflict abort.
    TlbConflict,
    /// Unsupported atomic hardware update fault (FEAT_HAFDBS).
    UnsupportedAtomicUpdate,
    /// IMPLEMENTATION DEFINED fault (Lockdown).
    ImpDefLockdown,
    /// IMPLEMENTATION DEFINED fault (Unsupported Exclusive or Atomic access).
    ImpDefUnsupportedExclusive,
    /// A code the Arm ARM does not allocate.
    Reserved(u8),
}

impl FaultStatus {
    /// Decodes a 6-bit fault status code.
    pub const fn from_code(code: u8) -> Self {
        /// The level of `code` in a group whose level-0 code is `l0`.
        const fn level(code: u8, l0: u8) -> Level {
            // The caller matched `l0..=l0 + 3`, so the difference is 0..=3.
            (code - l0) as Level
        }
        match code {
            fsc::ADDRESS_SIZE_L0..=fsc::ADDRESS_SIZE_L3 => Self::AddressSize {
                level: level(code, fsc::ADDRESS_SIZE_L0),
            },
            fsc::ADDRESS_SIZE_LM1 => Self::AddressSize { level: -1 },
            fsc::ADDRESS_SIZE_LM2 => Self::AddressSize { level: -2 },
            fsc::TRANSLATION_L0..=fsc::TRANSLATION_L3 => Self::Translation {
                level: level(code, fsc::TRANSLATION_L0),
            },
            fsc::TRANSLATION_LM1 => Self::Translation { level: -1 },
            fsc::TRANSLATION_LM2 => Self::Translation { level: -2 },
            fsc::ACCESS_FLAG_L0..=fsc::ACCESS_FLAG_L3 => Self::AccessFlag {
                level: level(code, fsc::ACCESS_FLAG_L0),
            },
            fsc::PERMISSION_L0..=fsc::PERMISSION_L3 => Self::Permission {
                level: level(code, fsc::PERMISSION_L0),
            },
            fsc::SYNC_EXTERNAL => Self::SyncExternal,
            fsc::SYNC_TAG_CHECK => Self::SyncTagCheck,
            fsc::SYNC_EXTERNAL_WALK_LM2 => Self::SyncExternalOnWalk { level: -2 },
            fsc::SYNC_EXTERNAL_WALK_LM1 => Self::SyncExternalOnWalk { level: -1 },
            fsc::SYNC_EXTERNAL_WALK_L0..=fsc::SYNC_EXTERNAL_WALK_L3 => Self::SyncExternalOnWalk {
                level: level(code, fsc::SYNC_EXTERNAL_WALK_L0),
            },
            fsc::SYNC_PARITY_ECC => Self::SyncParityEcc,
            fsc::SYNC_PARITY_ECC_WALK_LM1 => Self::SyncParityEccOnWalk { level: -1 },
            fsc::SYNC_PARITY_ECC_WALK_L0..=fsc::SYNC_PARITY_ECC_WALK_L3 => {
                Self::SyncParityEccOnWalk {
                    level: level(code, fsc::SYNC_PARITY_ECC_WALK_L0),
                }
            }
            fsc::ALIGNMENT => Self::Alignment,
            fsc::GRANULE_PROTECTION_WALK_LM2 => Self::GranuleProtectionOnWalk { level: -2 },
            fsc::GRANULE_PROTECTION_WALK_LM1 => Self::GranuleProtectionOnWalk { level: -1 },
            fsc::GRANULE_PROTECTION_WALK_L0..=fsc::GRANULE_PROTECTION_WALK_L3 => {
                Self::GranuleProtectionOnWalk {
                    level: level(code, fsc::GRANULE_PROTECTION_WALK_L0),
                }
            }
            fsc::GRANULE_PROTECTION => Self::GranuleProtection,
            fsc::TLB_CONFLICT => Self::TlbConflict,
            fsc::UNSUPPORTED_ATOMIC_UPDATE => Self::UnsupportedAtomicUpdate,
            fsc::IMPDEF_LOCKDOWN => Self::ImpDefLockdown,
            fsc::IMPDEF_UNSUPPORTED_EXCLUSIVE => Self::ImpDefUnsupportedExclusive,
            other => Self::Reserved(other),
        }
    }

    /// The 6-bit code, e.g. to inject the same fault into a guest. `from_code(c).code() == c`
    /// for every 6-bit `c`.
    pub const fn code(self) -> u8 {
        /// The code of `level` in a group that has codes for levels 0 to 3 from `l0` on and
        /// separate codes `lm1`, `lm2` for levels -1 and -2.
        const fn at(level: Level, l0: u8, lm1: u8, lm2: u8) -> u8 {
            match level {
                -2 => lm2,
                -1 => lm1,
                // Decoding only builds levels -2..=3; a hand-built level outside that range
                // gives an unspecified code rather than a panic.
                _ => l0.wrapping_add(level as u8),
            }
        }
        match self {
            Self::AddressSize { level } => at(
                level,
                fsc::ADDRESS_SIZE_L0,
                fsc::ADDRESS_SIZE_LM1,
                fsc::ADDRESS_SIZE_LM2,
            ),
            Self::Translation { level } => at(
                level,
                fsc::TRANSLATION_L0,
                fsc::TRANSLATION_LM1,
                fsc::TRANSLATION_LM2,
            ),
            Self::AccessFlag { level } => fsc::ACCESS_FLAG_L0.wrapping_add(level as u8),
            Self::Permission { level } => fsc::PERMISSION_L0.wrapping_add(level as u8),
            Self::SyncExternal => fsc::SYNC_EXTERNAL,
            Self::SyncTagCheck => fsc::SYNC_TAG_CHECK,
            Self::SyncExternalOnWalk { level } => at(
                level,
                fsc::SYNC_EXTERNAL_WALK_L0,
                fsc::SYNC_EXTERNAL_WALK_LM1,
                fsc::SYNC_EXTERNAL_WALK_LM2,
            ),
            Self::SyncParityEcc => fsc::SYNC_PARITY_ECC,
            Self::SyncParityEccOnWalk { level } => at(
                level,
                fsc::SYNC_PARITY_ECC_WALK_L0,
                fsc::SYNC_PARITY_ECC_WALK_LM1,
                // No level -2 code exists; decoding never builds one.
                fsc::SYNC_PARITY_ECC_WALK_LM1,
            ),
            Self::Alignment => fsc::ALIGNMENT,
            Self::GranuleProtectionOnWalk { level } => at(
                level,
                fsc::GRANULE_PROTECTION_WALK_L0,
                fsc::GRANULE_PROTECTION_WALK_LM1,
                fsc::GRANULE_PROTECTION_WALK_LM2,
            ),
            Self::GranuleProtection => fsc::GRANULE_PROTECTION,
            Self::TlbConflict => fsc::TLB_CONFLICT,
            Self::UnsupportedAtomicUpdate => fsc::UNSUPPORTED_ATOMIC_UPDATE,
            Self::ImpDefLockdown => fsc::IMPDEF_LOCKDOWN,
            Self::ImpDefUnsupportedExclusive => fsc::IMPDEF_UNSUPPORTED_EXCLUSIVE,
            Self::Reserved(code) => code,
        }
    }

    /// The lookup level, for the faults that have one.
    pub const fn level(self) -> Option<Level> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalOnWalk { level }
            | Self::SyncParityEccOnWalk { level }
            | Self::GranuleProtectionOnWalk { level } => Some(level),
            _ => None,
        }
    }

    /// A short human name, without the level, e.g. "translation fault".
    pub const fn name(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::SyncTagCheck => "synchronous tag check fault",
            Self::SyncExternalOnWalk { .. } => "synchronous external abort on table walk",
            Self::SyncParityEcc => "synchronous parity/ECC error",
            Self::SyncParityEccOnWalk { .. } => "synchronous parity/ECC error on table walk",
            Self::Alignment => "alignment fault",
            Self::GranuleProtectionOnWalk { .. } => "granule protection fault on table walk",
            Self::GranuleProtection => "granule protection fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
            Self::ImpDefLockdown => "implementation defined fault (lockdown)",
            Self::ImpDefUnsupportedExclusive => {
                "implementation defined fault (unsupported exclusive or atomic)"
            }
            Self::Reserved(_) => "reserved fault status code",
        }
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Some(level) = self.level() {
            write!(f, ", level {level}")?;
        }
        if let Self::Reserved(code) = self {
            write!(f, " {code:#04x}")?;
        }
        Ok(())
    }
}

/// The size of a data access, from ESR.ISS.SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AccessSize {
    /// 1 byte.
    Byte = 1,
    /// 2 bytes.
    Halfword = 2,
    /// 4 bytes.
    Word = 4,
    /// 8 bytes.
    Doubleword = 8,
}

impl AccessSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u8 {
        self as u8
    }
}

/// A general-purpose register as a load, store, MSR or MRS names it, for display: `x2`, `w1`,
/// `xzr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gpr {
    index: u8,
    wide: bool,
}

impl fmt::Display for Gpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.wide { 'x' } else { 'w' };
        if self.index == ZERO_REGISTER {
            write!(f, "{prefix}zr")
        } else {
            write!(f, "{prefix}{}", self.index)
        }
    }
}

/// The instruction syndrome of a data abort: what an MMIO emulator needs to replay the access.
/// Present only when ISV=1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataAccess {
    /// SAS: the access size.
    pub sas: AccessSize,
    /// SSE: a load sign-extends the value to the register width.
    pub sse: bool,
    /// SRT: the register loaded or stored; 31 is the zero register.
    pub srt: u8,
    /// SF: the register is 64-bit (Xn) rather than 32-bit (Wn).
    pub sf: bool,
    /// AR: the instruction has acquire/release semantics.
    pub ar: bool,
}

impl DataAccess {
    fn gpr(&self) -> Gpr {
        Gpr {
            index: self.srt,
            wide: self.sf,
        }
    }
}

/// A decoded Data Abort syndrome (EC 0x24, 0x25).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataAbort {
    /// `ISS[23:14]`, the instruction syndrome: `Some` exactly when ISV is 1. When it is `None`, the
    /// access cannot be emulated from the syndrome (for example an LDP, or a load with
    /// writeback), and a hypervisor must not guess.
    pub access: Option<DataAccess>,
    /// VNCR: the fault came from an access through VNCR_EL2 (FEAT_NV2).
    pub vncr: bool,
    /// FnV: FAR is not valid.
    pub fnv: bool,
    /// EA: external abort type.
    pub ea: bool,
    /// CM: the fault came from a cache maintenance or address translation instruction.
    pub cm: bool,
    /// S1PTW: the fault was on the stage-2 translation of a stage-1 table walk.
    pub s1ptw: bool,
    /// WnR: the access was a write.
    pub wnr: bool,
    /// DFSC: the kind of fault.
    pub dfsc: FaultStatus,
}

impl DataAbort {
    pub(crate) fn from_esr(esr: Esr) -> Self {
        let iss = esr.view::<ESR_ISS_DABT::Register>();
        let access = iss.is_set(ESR_ISS_DABT::ISV).then(|| DataAccess {
            sas: match iss.read_as_enum(ESR_ISS_DABT::SAS) {
                Some(ESR_ISS_DABT::SAS::Value::Byte) => AccessSize::Byte,
                Some(ESR_ISS_DABT::SAS::Value::Halfword) => AccessSize::Halfword,
                Some(ESR_ISS_DABT::SAS::Value::Word) => AccessSize::Word,
                // SAS is two bits and all four values are named, so `None` cannot happen.
                Some(ESR_ISS_DABT::SAS::Value::Doubleword) | None => AccessSize::Doubleword,
            },
            sse: iss.is_set(ESR_ISS_DABT::SSE),
            // SRT is 5 bits wide.
            srt: iss.read(ESR_ISS_DABT::SRT) as u8,
            sf: iss.is_set(ESR_ISS_DABT::SF),
            ar: iss.is_set(ESR_ISS_DABT::AR),
        });
        Self {
            access,
            vncr: iss.is_set(ESR_ISS_DABT::VNCR),
            fnv: iss.is_set(ESR_ISS_DABT::FNV),
            ea: iss.is_set(ESR_ISS_DABT::EA),
            cm: iss.is_set(ESR_ISS_DABT::CM),
            s1ptw: iss.is_set(ESR_ISS_DABT::S1PTW),
            wnr: iss.is_set(ESR_ISS_DABT::WNR),
            // DFSC is 6 bits wide.
            dfsc: FaultStatus::from_code(iss.read(ESR_ISS_DABT::DFSC) as u8),
        }
    }

    /// ISV: the syndrome describes the access ([`DataAbort::access`] is `Some`).
    pub fn isv(&self) -> bool {
        self.access.is_some()
    }
}

/// E.g. "translation fault, level 3, write, 4-byte access, register w1".
impl fmt::Display for DataAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.wnr { "write" } else { "read" };
        write!(f, "{}, {direction}", self.dfsc)?;
        match &self.access {
            Some(access) => {
                write!(
                    f,
                    ", {}-byte access, register {}",
                    access.sas.bytes(),
                    access.gpr()
                )?;
                if access.sse {
                    f.write_str(", sign-extended")?;
                }
                if access.ar {
                    f.write_str(", acquire/release")?;
                }
            }
            None => f.write_str(", no instruction syndrome (ISV=0)")?,
        }
        write_flags(
            f,
            &[
                (self.cm, "cache maintenance"),
                (self.s1ptw, "on stage-1 table walk"),
                (self.ea, "external abort"),
                (self.fnv, "FAR not valid"),
                (self.vncr, "VNCR_EL2 access"),
            ],
        )
    }
}

/// Appends ", name" for each flag that is set.
fn write_flags(f: &mut fmt::Formatter<'_>, flags: &[(bool, &str)]) -> fmt::Result {
    for (_, name) in flags.iter().filter(|(set, _)| *set) {
        write!(f, ", {name}")?;
    }
    Ok(())
}

/// A decoded Instruction Abort syndrome (EC 0x20, 0x21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstrAbort {
    /// FnV: FAR is not valid.
    pub fnv: bool,
    /// EA: external abort type.
    pub ea: bool,
    /// S1PTW: the fault was on the stage-2 translation of a stage-1 table walk.
    pub s1ptw: bool,
    /// IFSC: the kind of fault.
    pub ifsc: FaultStatus,
}

impl InstrAbort {
    pub(crate) fn from_esr(esr: Esr) -> Self {
        let iss = esr.view::<ESR_ISS_IABT::Register>();
        Self {
            fnv: iss.is_set(ESR_ISS_IABT::FNV),
            ea: iss.is_set(ESR_ISS_IABT::EA),
            s1ptw: iss.is_set(ESR_ISS_IABT::S1PTW),
            // IFSC is 6 bits wide.
            ifsc: FaultStatus::from_code(iss.read(ESR_ISS_IABT::IFSC) as u8),
        }
    }
}

/// E.g. "permission fault, level 2".
impl fmt::Display for InstrAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ifsc)?;
        write_flags(
            f,
            &[
                (self.s1ptw, "on stage-1 table walk"),
                (self.ea, "external abort"),
                (self.fnv, "FAR not valid"),
            ],
        )
    }
}

/// A System register or System instruction, by its encoding (op0, op1, CRn, CRm, op2), packed
/// into 16 bits in the order of the MRS/MSR instruction fields.
///
/// Compare against the named constants: `id == SysRegId::ICC_SGI1R_EL1`, or use them as `match`
/// patterns.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysRegId(u16);

impl SysRegId {
    /// The register `S<op0>_<op1>_C<crn>_C<crm>_<op2>`. Each argument is truncated to its field
    /// width (op0: 2 bits, op1 and op2: 3 bits, CRn and CRm: 4 bits).
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        /// `value` placed in `field`.
        const fn put(field: Field<u16, SYSREG_ID::Register>, value: u8) -> u16 {
            (value as u16 & field.mask) << field.shift
        }
        Self(
            put(SYSREG_ID::OP0, op0)
                | put(SYSREG_ID::OP1, op1)
                | put(SYSREG_ID::CRN, crn)
                | put(SYSREG_ID::CRM, crm)
                | put(SYSREG_ID::OP2, op2),
        )
    }

    /// The packed 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// The register whose packed encoding [`SysRegId::raw`] returned.
    pub const fn from_raw(raw: u16) -> Self {
        SysRegId(raw)
    }

    fn field(self, field: Field<u16, SYSREG_ID::Register>) -> u8 {
        // Every field is at most 4 bits wide.
        LocalRegisterCopy::<u16, SYSREG_ID::Register>::new(self.0).read(field) as u8
    }

    /// op0.
    pub fn op0(self) -> u8 {
        self.field(SYSREG_ID::OP0)
    }

    /// op1.
    pub fn op1(self) -> u8 {
        self.field(SYSREG_ID::OP1)
    }

    /// CRn.
    pub fn crn(self) -> u8 {
        self.field(SYSREG_ID::CRN)
    }

    /// CRm.
    pub fn crm(self) -> u8 {
        self.field(SYSREG_ID::CRM)
    }

    /// op2.
    pub fn op2(self) -> u8 {
        self.field(SYSREG_ID::OP2)
    }
}

/// Defines named [`SysRegId`] constants and [`SysRegId::name`] from one table.
macro_rules! sysreg_ids {
    ($( $(#[$doc:meta])* $name:ident = ($op0:literal, $op1:literal, $crn:literal, $crm:literal,
        $op2:literal); )*) => {
        impl SysRegId {
            $(
                $(#[$doc])*
                pub const $name: Self = Self::new($op0, $op1, $crn, $crm, $op2);
            )*

            /// The architectural name, for the registers named here.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$name => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

sysreg_ids! {
    /// GICv3 Group 1 SGI generation (IHI 0069, 12.2.22).
    ICC_SGI1R_EL1 = (3, 0, 12, 11, 5);
    /// GICv3 alias Group 1 SGI generation.
    ICC_ASGI1R_EL1 = (3, 1, 12, 11, 6);
    /// GICv3 Group 0 SGI generation.
    ICC_SGI0R_EL1 = (3, 2, 12, 11, 7);
    /// GICv3 System Register Enable (EL1).
    ICC_SRE_EL1 = (3, 0, 12, 12, 5);
    /// EL1 physical timer control.
    CNTP_CTL_EL0 = (3, 3, 14, 2, 1);
    /// EL1 physical timer compare value.
    CNTP_CVAL_EL0 = (3, 3, 14, 2, 2);
    /// EL1 physical timer value.
    CNTP_TVAL_EL0 = (3, 3, 14, 2, 0);
    /// Counter frequency.
    CNTFRQ_EL0 = (3, 3, 14, 0, 0);
    /// Virtual count.
    CNTVCT_EL0 = (3, 3, 14, 0, 2);
    /// Cache Type Register.
    CTR_EL0 = (3, 3, 0, 0, 1);
    /// AArch64 Processor Feature Register 0.
    ID_AA64PFR0_EL1 = (3, 0, 0, 4, 0);
    /// AArch64 Instruction Set Attribute Register 2.
    ID_AA64ISAR2_EL1 = (3, 0, 0, 6, 2);
    /// SME priority (FEAT_SME).
    SMPRI_EL1 = (3, 0, 1, 2, 4);
}

/// The name if it is known, else the generic `S3_0_C12_C11_5` form assemblers accept.
impl fmt::Display for SysRegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(
                f,
                "S{}_{}_C{}_C{}_{}",
                self.op0(),
                self.op1(),
                self.crn(),
                self.crm(),
                self.op2()
            ),
        }
    }
}

impl fmt::Debug for SysRegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SysRegId({self})")
    }
}

/// A decoded trapped MSR, MRS or System instruction (EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysReg {
    /// The register or System instruction accessed.
    pub id: SysRegId,
    /// Rt: the general-purpose register transferred; 31 is XZR.
    pub rt: u8,
    /// Direction: `true` for a read (MRS, SYSL), `false` for a write (MSR, SYS).
    pub read: bool,
}

impl SysReg {
    pub(crate) fn from_esr(esr: Esr) -> Self {
        let iss = esr.view::<ESR_ISS_SYS64::Register>();
        // Every field is at most 5 bits wide.
        let field = |field| iss.read(field) as u8;
        Self {
            id: SysRegId::new(
                field(ESR_ISS_SYS64::OP0),
                field(ESR_ISS_SYS64::OP1),
                field(ESR_ISS_SYS64::CRN),
                field(ESR_ISS_SYS64::CRM),
                field(ESR_ISS_SYS64::OP2),
            ),
            rt: field(ESR_ISS_SYS64::RT),
            read: iss.matches_all(ESR_ISS_SYS64::DIRECTION::Read),
        }
    }
}

/// In assembler order: "MSR ICC_SGI1R_EL1, x2", "MRS x0, S3_0_C1_C2_4", "SYS S1_3_C7_C14_1, x0".
impl fmt::Display for SysReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gpr = Gpr {
            index: self.rt,
            wide: true,
        };
        let system_instruction = self.id.op0() == OP0_SYSTEM_INSTRUCTION;
        match (system_instruction, self.read) {
            (false, true) => write!(f, "MRS {gpr}, {}", self.id),
            (false, false) => write!(f, "MSR {}, {gpr}", self.id),
            (true, true) => write!(f, "SYSL {gpr}, {}", self.id),
            (true, false) => write!(f, "SYS {}, {gpr}", self.id),
        }
    }
}

/// The instruction a WF* trap reports (ISS.TI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WfxInstr {
    /// WFI.
    Wfi,
    /// WFE.
    Wfe,
    /// WFIT, WFI with timeout (FEAT_WFxT).
    Wfit,
    /// WFET, WFE with timeout (FEAT_WFxT).
    Wfet,
}

/// A decoded trapped WF* instruction (EC 0x01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Wfx {
    /// TI: which instruction trapped.
    pub ti: WfxInstr,
    /// Rn, the register holding the WFIT/WFET timeout: `Some` exactly when RV is 1.
    pub rn: Option<u8>,
}

impl Wfx {
    pub(crate) fn from_esr(esr: Esr) -> Self {
        let iss = esr.view::<ESR_ISS_WFX::Register>();
        Self {
            ti: match iss.read_as_enum(ESR_ISS_WFX::TI) {
                Some(ESR_ISS_WFX::TI::Value::Wfi) => WfxInstr::Wfi,
                Some(ESR_ISS_WFX::TI::Value::Wfe) => WfxInstr::Wfe,
                Some(ESR_ISS_WFX::TI::Value::Wfit) => WfxInstr::Wfit,
                // TI is two bits and all four values are named, so `None` cannot happen.
                Some(ESR_ISS_WFX::TI::Value::Wfet) | None => WfxInstr::Wfet,
            },
            // RN is 5 bits wide.
            rn: iss
                .is_set(ESR_ISS_WFX::RV)
                .then(|| iss.read(ESR_ISS_WFX::RN) as u8),
        }
    }
}

/// "WFI", "WFE", or "WFIT x3" when the timeout register is valid.
impl fmt::Display for Wfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.ti {
            WfxInstr::Wfi => "WFI",
            WfxInstr::Wfe => "WFE",
            WfxInstr::Wfit => "WFIT",
            WfxInstr::Wfet => "WFET",
        })?;
        if let Some(index) = self.rn {
            write!(f, " {}", Gpr { index, wide: true })?;
        }
        Ok(())
    }
}

/// A decoded Instruction Specific Syndrome, from [`Esr::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Iss {
    /// A Data Abort, from a lower or the same EL (EC 0x24, 0x25).
    DataAbort(DataAbort),
    /// An Instruction Abort, from a lower or the same EL (EC 0x20, 0x21).
    InstrAbort(InstrAbort),
    /// A trapped MSR, MRS or System instruction (EC 0x18).
    SysReg(SysReg),
    /// HVC in AArch64 state (EC 0x16).
    Hvc {
        /// The HVC immediate.
        imm16: u16,
    },
    /// SMC in AArch64 state (EC 0x17), trapped by HCR_EL2.TSC or taken to EL3.
    Smc {
        /// The SMC immediate.
        imm16: u16,
    },
    /// SVC in AArch64 state (EC 0x15).
    Svc {
        /// The SVC immediate.
        imm16: u16,
    },
    /// BRK in AArch64 state (EC 0x3C).
    Brk {
        /// The BRK immediate (Linux calls it the comment: 0x800 is `BUG()`).
        comment: u16,
    },
    /// A trapped WFI, WFE, WFIT or WFET (EC 0x01).
    Wfx(Wfx),
    /// Any other class: the raw 25-bit ISS.
    Other(u32),
}

impl fmt::Display for Iss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataAbort(abort) => write!(f, "data abort: {abort}"),
            Self::InstrAbort(abort) => write!(f, "instruction abort: {abort}"),
            Self::SysReg(access) => write!(f, "system register access: {access}"),
            Self::Hvc { imm16 } => write!(f, "HVC #{imm16:#x}"),
            Self::Smc { imm16 } => write!(f, "SMC #{imm16:#x}"),
            Self::Svc { imm16 } => write!(f, "SVC #{imm16:#x}"),
            Self::Brk { comment } => write!(f, "BRK #{comment:#x}"),
            Self::Wfx(wfx) => write!(f, "{wfx}"),
            Self::Other(iss) => write!(f, "ISS {iss:#09x}"),
        }
    }
}

/// The human report of an exception EL2 did not expect, formatted without allocating:
///
/// ```text
/// EL2 exception: data abort from the same EL (EC 0x25) ESR 0x000000009600004f FAR 0xebe08910 ELR 0xebe1e89c SPSR 0x60000209 on CPU 0
///   data abort: permission fault, level 3, write, no instruction syndrome (ISV=0)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// ESR_EL2.
    pub esr: Esr,
    /// FAR_EL2. Meaningful only for aborts, alignment faults and watchpoints, and only when the
    /// decoded syndrome does not say "FAR not valid".
    pub far: u64,
    /// ELR_EL2.
    pub elr: u64,
    /// SPSR_EL2.
    pub spsr: u64,
    /// The index of the CPU that took the exception.
    pub cpu: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = self.esr.ec();
        writeln!(
            f,
            "EL2 exception: {ec} (EC {:#04x}) ESR {:#018x} FAR {:#x} ELR {:#x} SPSR {:#x} on CPU {}",
            ec.code(),
            self.esr.raw(),
            self.far,
            self.elr,
            self.spsr,
            self.cpu
        )?;
        write!(f, "  {}", self.esr.decode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an ESR from named fields of the common layout and of one ISS layout.
    fn esr_from<R: RegisterLongName>(
        common: tock_registers::fields::FieldValue<u64, ESR_ELx::Register>,
        iss: tock_registers::fields::FieldValue<u64, R>,
    ) -> Esr {
        Esr::new(common.value | iss.value)
    }

    fn data_abort(raw: u64) -> DataAbort {
        match Esr::new(raw).decode() {
            Iss::DataAbort(abort) => abort,
            other => panic!("{raw:#x} decoded as {other:?}, not a data abort"),
        }
    }

    fn instr_abort(raw: u64) -> InstrAbort {
        match Esr::new(raw).decode() {
            Iss::InstrAbort(abort) => abort,
            other => panic!("{raw:#x} decoded as {other:?}, not an instruction abort"),
        }
    }

    fn sysreg(raw: u64) -> SysReg {
        match Esr::new(raw).decode() {
            Iss::SysReg(access) => access,
            other => panic!("{raw:#x} decoded as {other:?}, not a sysreg trap"),
        }
    }

    fn wfx(raw: u64) -> Wfx {
        match Esr::new(raw).decode() {
            Iss::Wfx(wfx) => wfx,
            other => panic!("{raw:#x} decoded as {other:?}, not a WF* trap"),
        }
    }

    // ---- Real syndromes from public logs --------------------------------------------------

    #[test]
    fn kernel_read_of_unmapped_pud_is_level1_translation_fault() {
        // raspberrypi/linux#6792 (RPi, 6.x): "ESR = 0x0000000096000005, EC = 0x25: DABT
        // (current EL), IL = 32 bits ... FSC = 0x05: level 1 translation fault ... ISV = 0,
        // ISS = 0x00000005 ... CM = 0, WnR = 0".
        let esr = Esr::new(0x0000_0000_9600_0005);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortSame);
        assert!(esr.il());
        assert_eq!(esr.iss(), 0x5);
        assert_eq!(esr.iss2(), 0);
        let abort = data_abort(esr.raw());
        assert!(!abort.isv());
        assert!(!abort.wnr);
        assert!(!abort.cm);
        assert!(!abort.ea);
        assert!(!abort.s1ptw);
        assert!(!abort.fnv);
        assert_eq!(abort.dfsc, FaultStatus::Translation { level: 1 });
    }

    #[test]
    fn dfsc_6_is_level2_translation_fault() {
        // daeuniverse/daed#511 (OpenWrt arm64): "ISV = 0, ISS = 0x00000006 / CM = 0, WnR = 0
        // ... Internal error: Oops: 0000000096000006".
        let abort = data_abort(0x0000_0000_9600_0006);
        assert_eq!(abort.dfsc, FaultStatus::Translation { level: 2 });
        assert!(!abort.wnr);
    }

    #[test]
    fn uefi_store_to_read_only_page_is_level3_permission_write() {
        // jaredmcneill/quartz64_uefi#50: "ESR 0x9600004F FAR 0x00000000EBE08910 / ESR : EC 0x25
        // IL 0x1 ISS 0x0000004F / Data abort: Permission fault, third level".
        let abort = data_abort(0x9600_004f);
        assert_eq!(abort.dfsc, FaultStatus::Permission { level: 3 });
        assert!(abort.wnr);
        assert!(!abort.isv());
    }

    #[test]
    fn dfsc_0x10_is_synchronous_external_abort() {
        // apache/teaclave-trustzone-sdk#174 (OP-TEE core): "Core data-abort at address
        // 0x24600000 / esr 0x96000050".
        let abort = data_abort(0x9600_0050);
        assert_eq!(abort.dfsc, FaultStatus::SyncExternal);
        assert_eq!(abort.dfsc.level(), None);
        assert!(abort.wnr);
    }

    #[test]
    fn user_space_fault_is_data_abort_from_lower_el() {
        // longsleep/linux-pine64#60: "abrt-hook-ccpp[28134]: unhandled level 1 translation
        // fault (11) at 0x00000000, esr 0x92000005".
        let esr = Esr::new(0x9200_0005);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortLower);
        assert_eq!(esr.ec().name(), "data abort from a lower EL");
        assert_eq!(
            data_abort(esr.raw()).dfsc,
            FaultStatus::Translation { level: 1 }
        );
    }

    #[test]
    fn execute_from_non_executable_is_instruction_permission_fault() {
        // ubicloud/ubicloud#1113: "Unable to handle kernel execute from non-executable memory
        // ... ESR = 0x000000008600000e / EC = 0x21: IABT (current EL) ... FSC = 0x0e: level 2
        // permission fault".
        let esr = Esr::new(0x0000_0000_8600_000e);
        assert_eq!(esr.ec(), ExceptionClass::InstrAbortSame);
        let abort = instr_abort(esr.raw());
        assert_eq!(abort.ifsc, FaultStatus::Permission { level: 2 });
        assert!(!abort.fnv && !abort.ea && !abort.s1ptw);
        assert_eq!(
            esr.decode().to_string(),
            "instruction abort: permission fault, level 2"
        );
    }

    #[test]
    fn instruction_fetch_from_unmapped_va_is_level0_translation_fault() {
        // seL4/microkit#423: "esr_el1: 0x0000000086000004 / ec: 0x00000021 (Instruction Abort
        // taken without a change in Exception level) ... far: 0xffffff8040000000".
        let abort = instr_abort(0x0000_0000_8600_0004);
        assert_eq!(abort.ifsc, FaultStatus::Translation { level: 0 });
    }

    #[test]
    fn fsc_0_is_address_size_fault_level_0() {
        // seL4/seL4#1639: 0x86000000 "Instruction abort: Address size fault, level 0 of
        // translation or translation table base register" and 0x96000000 "Data Abort (read):
        // Address size fault, level 0 ...".
        assert_eq!(
            instr_abort(0x8600_0000).ifsc,
            FaultStatus::AddressSize { level: 0 }
        );
        let abort = data_abort(0x9600_0000);
        assert_eq!(abort.dfsc, FaultStatus::AddressSize { level: 0 });
        assert!(!abort.wnr);
    }

    #[test]
    fn serror_is_named_and_left_undecoded() {
        // qualcomm-linux/kernel#541: "SError Interrupt on CPU5, code 0x00000000be000000 --
        // SError"; tobetter/linux#36: "SError Interrupt on CPU3, code 0xbe000011 -- SError".
        for (raw, iss) in [(0x0000_0000_be00_0000, 0), (0xbe00_0011, 0x11)] {
            let esr = Esr::new(raw);
            assert_eq!(esr.ec(), ExceptionClass::SError);
            assert!(esr.il());
            assert_eq!(esr.decode(), Iss::Other(iss));
        }
    }

    #[test]
    fn brk_reports_its_immediate() {
        // tiann/KernelSU#2618: "Unexpected kernel BRK exception at EL1 / Internal error: BRK
        // handler: f2000006" (the kprobes BRK immediate).
        let esr = Esr::new(0xf200_0006);
        assert_eq!(esr.ec(), ExceptionClass::Brk);
        assert_eq!(esr.decode(), Iss::Brk { comment: 6 });
        assert_eq!(esr.decode().to_string(), "BRK #0x6");
    }

    #[test]
    fn undefined_instruction_is_unknown_class_with_il_set() {
        // kernkonzept/manifest#24 (L4Re on Cortex-A76): "EXCEPTION: (00) undef insn
        // pfa=0100a388, error=02000000".
        let esr = Esr::new(0x0200_0000);
        assert_eq!(esr.ec(), ExceptionClass::Unknown);
        assert!(esr.il());
        assert_eq!(esr.decode(), Iss::Other(0));
    }

    #[test]
    fn sysreg_trap_direction_read_is_mrs() {
        // quic/gunyah-hypervisor#14: "[HYP] Unhandled trap from VM 3, ESR_EL2 = 0x62380405";
        // the maintainer: "Linux VM is trying to access an SME system register".
        let access = sysreg(0x6238_0405);
        assert!(access.read);
        assert_eq!(access.rt, 0);
        assert_eq!(
            (
                access.id.op0(),
                access.id.op1(),
                access.id.crn(),
                access.id.crm(),
                access.id.op2()
            ),
            (3, 0, 1, 2, 4)
        );
        assert_eq!(access.id, SysRegId::SMPRI_EL1);
        assert_eq!(
            Esr::new(0x6238_0405).decode().to_string(),
            "system register access: MRS x0, SMPRI_EL1"
        );
    }

    #[test]
    fn tid3_trap_iss_names_the_id_register() {
        // quic/gunyah-hypervisor#14: "sysreg_read: unhandled TID3 trap, ISS: 0x34004d. RAZ".
        // Only the ISS was logged; EC 0x18 and IL=1 are added to make a whole ESR.
        let esr = esr_from(
            ESR_ELx::EC.val(ExceptionClass::SysReg.code().into()) + ESR_ELx::IL::SET,
            ESR_ELx::ISS.val(0x34_004d),
        );
        let access = sysreg(esr.raw());
        assert_eq!(access.id, SysRegId::ID_AA64ISAR2_EL1);
        assert_eq!(access.rt, 2);
        assert!(access.read);
    }

    #[test]
    fn linux_cntvct_trap_template_matches_cntvct_el0() {
        // Linux esr.h: ESR_ELx_SYS64_ISS_SYS_CNTVCT = ESR_ELx_SYS64_ISS_SYS_VAL(3, 3, 2, 14, 0)
        // | ESR_ELx_SYS64_ISS_DIR_READ (arguments op0, op1, op2, crn, crm), which is ISS
        // 0x34f801 with Rt=0; here as "MRS x5, CNTVCT_EL0".
        let esr = Esr::new(0x6200_0000 | 0x34_f801 | (5 << 5));
        let access = sysreg(esr.raw());
        assert_eq!(access.id, SysRegId::CNTVCT_EL0);
        assert_eq!(access.rt, 5);
        assert!(access.read);
    }

    #[test]
    fn linux_wfi_template_decodes_as_wfi() {
        // Linux esr.h: ESR_ELx_WFx_WFI_VAL = (ESR_ELx_EC_WFx << ESR_ELx_EC_SHIFT) |
        // ESR_ELx_WFx_ISS_WFI = 0x04000000 (IL left clear in the template).
        assert_eq!(
            wfx(0x0400_0000),
            Wfx {
                ti: WfxInstr::Wfi,
                rn: None
            }
        );
    }

    // ---- Guest exits constructed from the spec (not observed on hardware) -----------------

    /// Constructed: a guest `str w1, [x0]` to a GICD register the hypervisor left unmapped at
    /// stage 2. EC 0x24 (from EL1), IL=1, ISV=1, SAS=0b10 (word), SSE=0, SRT=1, SF=0 (Wn),
    /// AR=0, WnR=1, DFSC=0b000111 (translation fault, level 3):
    /// 0x90000000 | 0x02000000 | 0x01000000 | 0x00800000 | 0x00010000 | 0x40 | 0x07.
    const GICD_WORD_WRITE: u64 = 0x9381_0047;

    #[test]
    fn gicd_word_write_with_isv_decodes_field_by_field() {
        let built = esr_from(
            ESR_ELx::EC.val(ExceptionClass::DataAbortLower.code().into()) + ESR_ELx::IL::SET,
            ESR_ISS_DABT::ISV::SET
                + ESR_ISS_DABT::SAS::Word
                + ESR_ISS_DABT::SRT.val(1)
                + ESR_ISS_DABT::WNR::SET
                + ESR_ISS_DABT::DFSC.val(FaultStatus::Translation { level: 3 }.code().into()),
        );
        assert_eq!(built.raw(), GICD_WORD_WRITE);

        let esr = Esr::new(GICD_WORD_WRITE);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortLower);
        assert!(esr.il());
        let abort = data_abort(GICD_WORD_WRITE);
        assert!(abort.isv());
        assert_eq!(
            abort.access,
            Some(DataAccess {
                sas: AccessSize::Word,
                sse: false,
                srt: 1,
                sf: false,
                ar: false,
            })
        );
        assert!(abort.wnr);
        assert!(!abort.vncr && !abort.fnv && !abort.ea && !abort.cm && !abort.s1ptw);
        assert_eq!(abort.dfsc, FaultStatus::Translation { level: 3 });
        assert_eq!(
            esr.decode().to_string(),
            "data abort: translation fault, level 3, write, 4-byte access, register w1"
        );
    }

    #[test]
    fn sas_2_means_4_bytes() {
        let sas = |value| {
            let esr = esr_from(
                ESR_ELx::EC.val(ExceptionClass::DataAbortLower.code().into()),
                ESR_ISS_DABT::ISV::SET + ESR_ISS_DABT::SAS.val(value),
            );
            data_abort(esr.raw())
                .access
                .map(|access| access.sas.bytes())
        };
        assert_eq!(sas(0), Some(1));
        assert_eq!(sas(1), Some(2));
        assert_eq!(sas(2), Some(4));
        assert_eq!(sas(3), Some(8));
    }

    #[test]
    fn data_abort_isv0_has_no_access_fields() {
        // Constructed: a guest `ldp x0, x1, [x2]` from device memory at an unmapped IPA. A
        // load pair has no single-register syndrome, so ISV=0: EC 0x24, IL=1, WnR=0, DFSC
        // translation fault level 3.
        let raw = 0x9200_0007;
        let abort = data_abort(raw);
        assert!(!abort.isv());
        assert_eq!(abort.access, None);
        assert!(!abort.wnr);
        assert_eq!(abort.dfsc, FaultStatus::Translation { level: 3 });
        // With ISV=0, whatever sits in bits 23:14 is not an access syndrome.
        let noisy = esr_from(
            ESR_ELx::EC.val(ExceptionClass::DataAbortLower.code().into()) + ESR_ELx::IL::SET,
            ESR_ISS_DABT::SAS::Doubleword + ESR_ISS_DABT::SRT.val(7) + ESR_ISS_DABT::SF::SET,
        );
        assert_eq!(data_abort(noisy.raw() | raw).access, None);
        assert_eq!(
            Esr::new(raw).decode().to_string(),
            "data abort: translation fault, level 3, read, no instruction syndrome (ISV=0)"
        );
    }

    #[test]
    fn isv1_load_reports_sign_extension_and_64_bit_register() {
        // Constructed: `ldrsh x3, [x0]`: SAS=0b01, SSE=1, SRT=3, SF=1, read.
        let esr = esr_from(
            ESR_ELx::EC.val(ExceptionClass::DataAbortLower.code().into()) + ESR_ELx::IL::SET,
            ESR_ISS_DABT::ISV::SET
                + ESR_ISS_DABT::SAS::Halfword
                + ESR_ISS_DABT::SSE::SET
                + ESR_ISS_DABT::SRT.val(3)
                + ESR_ISS_DABT::SF::SET
                + ESR_ISS_DABT::DFSC.val(FaultStatus::Translation { level: 2 }.code().into()),
        );
        let access = data_abort(esr.raw()).access.expect("ISV=1");
        assert_eq!(access.sas, AccessSize::Halfword);
        assert!(access.sse && access.sf);
        assert_eq!(access.srt, 3);
        assert_eq!(
            esr.decode().to_string(),
            "data abort: translation fault, level 2, read, 2-byte access, register x3, \
             sign-extended"
        );
    }

    #[test]
    fn srt_31_is_the_zero_register() {
        // Constructed: `str wzr, [x0]`, a 32-bit store of zero (EC 0x24, ISV, SAS=2, SRT=31).
        let esr = esr_from(
            ESR_ELx::EC.val(ExceptionClass::DataAbortLower.code().into()) + ESR_ELx::IL::SET,
            ESR_ISS_DABT::ISV::SET
                + ESR_ISS_DABT::SAS::Word
                + ESR_ISS_DABT::SRT.val(31)
                + ESR_ISS_DABT::WNR::SET
                + ESR_ISS_DABT::DFSC.val(FaultStatus::Translation { level: 3 }.code().into()),
        );
        let access = data_abort(esr.raw()).access.expect("ISV=1");
        assert_eq!(access.srt, 31);
        assert!(esr.decode().to_string().ends_with("register wzr"));
    }

    #[test]
    fn hvc_0_is_5a000000() {
        // Constructed: `hvc #0` (the SMCCC conduit): EC 0x16 << 26 | IL = 0x5a000000.
        let esr = Esr::new(0x5a00_0000);
        assert_eq!(esr.ec(), ExceptionClass::Hvc64);
        assert_eq!(esr.ec().name(), "HVC from AArch64");
        assert_eq!(esr.decode(), Iss::Hvc { imm16: 0 });
        assert_eq!(
            Esr::new(0x5a00_0000 | 0x4711).decode(),
            Iss::Hvc { imm16: 0x4711 }
        );
    }

    #[test]
    fn smc_0_is_5e000000() {
        // Constructed: `smc #0` trapped by HCR_EL2.TSC: EC 0x17 << 26 | IL = 0x5e000000.
        let esr = Esr::new(0x5e00_0000);
        assert_eq!(esr.ec(), ExceptionClass::Smc64);
        assert_eq!(esr.decode(), Iss::Smc { imm16: 0 });
        assert_eq!(esr.decode().to_string(), "SMC #0x0");
    }

    #[test]
    fn sysreg_trap_msr_icc_sgi1r_el1_is_a_write_from_x2() {
        // Constructed: `msr ICC_SGI1R_EL1, x2` trapped by ICH_HCR_EL2.TC or TALL1: EC 0x18, IL,
        // op0=3 (<<20), op2=5 (<<17), op1=0 (<<14), CRn=12 (<<10), Rt=2 (<<5), CRm=11 (<<1),
        // Direction=0: 0x62000000 | 0x300000 | 0xa0000 | 0x3000 | 0x40 | 0x16 = 0x623a3056.
        let raw = 0x623a_3056;
        let built = esr_from(
            ESR_ELx::EC.val(ExceptionClass::SysReg.code().into()) + ESR_ELx::IL::SET,
            ESR_ISS_SYS64::OP0.val(3)
                + ESR_ISS_SYS64::OP2.val(5)
                + ESR_ISS_SYS64::OP1.val(0)
                + ESR_ISS_SYS64::CRN.val(12)
                + ESR_ISS_SYS64::RT.val(2)
                + ESR_ISS_SYS64::CRM.val(11)
                + ESR_ISS_SYS64::DIRECTION::Write,
        );
        assert_eq!(built.raw(), raw);
        let access = sysreg(raw);
        assert_eq!(access.id, SysRegId::ICC_SGI1R_EL1);
        assert_ne!(access.id, SysRegId::ICC_ASGI1R_EL1);
        assert_ne!(access.id, SysRegId::ICC_SGI0R_EL1);
        assert_eq!(access.rt, 2);
        assert!(!access.read);
        assert_eq!(
            Esr::new(raw).decode().to_string(),
            "system register access: MSR ICC_SGI1R_EL1, x2"
        );
    }

    #[test]
    fn sysreg_ids_work_as_match_patterns() {
        let kind = |id| match id {
            SysRegId::ICC_SGI1R_EL1 | SysRegId::ICC_ASGI1R_EL1 | SysRegId::ICC_SGI0R_EL1 => "sgi",
            SysRegId::CNTP_CTL_EL0 | SysRegId::CNTP_CVAL_EL0 | SysRegId::CNTP_TVAL_EL0 => "timer",
            _ => "other",
        };
        assert_eq!(kind(SysRegId::new(3, 2, 12, 11, 7)), "sgi");
        assert_eq!(kind(SysRegId::new(3, 3, 14, 2, 0)), "timer");
        assert_eq!(kind(SysRegId::ID_AA64PFR0_EL1), "other");
    }

    #[test]
    fn sysreg_id_fields_round_trip() {
        for (op0, op1, crn, crm, op2) in [(3, 0, 12, 11, 5), (1, 3, 7, 14, 1), (3, 7, 15, 15, 7)] {
            let id = SysRegId::new(op0, op1, crn, crm, op2);
            assert_eq!(
                (id.op0(), id.op1(), id.crn(), id.crm(), id.op2()),
                (op0, op1, crn, crm, op2)
            );
        }
        assert_ne!(SysRegId::new(3, 0, 0, 0, 0), SysRegId::new(2, 0, 0, 0, 0));
    }

    #[test]
    fn unnamed_sysreg_displays_in_generic_form() {
        assert_eq!(SysRegId::new(3, 0, 1, 2, 6).to_string(), "S3_0_C1_C2_6");
        assert_eq!(SysRegId::CNTP_TVAL_EL0.to_string(), "CNTP_TVAL_EL0");
        // Constructed: `dc civac, x0` trapped by HCR_EL2.TPC (op0=1 is the SYS space).
        let dc = SysReg {
            id: SysRegId::new(1, 3, 7, 14, 1),
            rt: 0,
            read: false,
        };
        assert_eq!(dc.to_string(), "SYS S1_3_C7_C14_1, x0");
    }

    #[test]
    fn wfi_has_ti_0() {
        // Constructed: a guest `wfi` trapped by HCR_EL2.TWI: EC 0x01 << 26 | IL = 0x06000000.
        let esr = Esr::new(0x0600_0000);
        assert_eq!(esr.ec(), ExceptionClass::Wfx);
        assert_eq!(
            wfx(esr.raw()),
            Wfx {
                ti: WfxInstr::Wfi,
                rn: None
            }
        );
        assert_eq!(esr.decode().to_string(), "WFI");
    }

    #[test]
    fn wfe_has_ti_1() {
        // Constructed: a guest `wfe` trapped by HCR_EL2.TWE: 0x06000001.
        assert_eq!(wfx(0x0600_0001).ti, WfxInstr::Wfe);
    }

    #[test]
    fn wfit_with_rv_reports_the_timeout_register() {
        // Constructed: `wfit x3` (FEAT_WFxT): TI=0b10, RV=1, RN=3: 0x06000000 | 0x60 | 0x4 | 0x2.
        let esr = Esr::new(0x0600_0066);
        assert_eq!(
            wfx(esr.raw()),
            Wfx {
                ti: WfxInstr::Wfit,
                rn: Some(3)
            }
        );
        assert_eq!(esr.decode().to_string(), "WFIT x3");
        // Without RV the Rn field is not meaningful and is not reported.
        assert_eq!(wfx(0x0600_0063).rn, None);
    }

    // ---- Tables -----------------------------------------------------------------------------

    /// EC values the Arm ARM leaves unallocated for AArch64.
    const UNALLOCATED_EC: [u8; 15] = [
        0x02, 0x0b, 0x0f, 0x10, 0x23, 0x29, 0x2a, 0x2b, 0x2e, 0x36, 0x37, 0x39, 0x3b, 0x3e, 0x3f,
    ];

    #[test]
    fn every_ec_value_round_trips_and_only_unallocated_ones_are_other() {
        for code in 0..64u8 {
            let class = ExceptionClass::from_code(code);
            assert_eq!(class.code(), code);
            assert_eq!(
                matches!(class, ExceptionClass::Other(_)),
                UNALLOCATED_EC.contains(&code),
                "EC {code:#04x} is {class:?}"
            );
        }
    }

    #[test]
    fn exception_class_names_match_the_brief() {
        assert_eq!(
            ExceptionClass::from_code(0x24).to_string(),
            "data abort from a lower EL"
        );
        assert_eq!(ExceptionClass::from_code(0x16).name(), "HVC from AArch64");
        assert_eq!(ExceptionClass::from_code(0x19), ExceptionClass::Sve);
        assert_eq!(ExceptionClass::from_code(0x1a), ExceptionClass::Eret);
        assert_eq!(ExceptionClass::from_code(0x09), ExceptionClass::PacTrap);
        assert_eq!(ExceptionClass::from_code(0x1c), ExceptionClass::Fpac);
        assert_eq!(ExceptionClass::from_code(0x26), ExceptionClass::SpAlignment);
        assert_eq!(ExceptionClass::from_code(0x22), ExceptionClass::PcAlignment);
        assert_eq!(ExceptionClass::from_code(0x3c), ExceptionClass::Brk);
        assert_eq!(
            ExceptionClass::from_code(0x3b).name(),
            "unallocated exception class"
        );
    }

    #[test]
    fn every_fault_status_code_round_trips() {
        for code in 0..64u8 {
            assert_eq!(FaultStatus::from_code(code).code(), code, "FSC {code:#04x}");
        }
    }

    #[test]
    fn negative_levels_have_their_own_codes() {
        // Arm ARM DFSC table: 0b101001 address size L-1, 0b101100 address size L-2, 0b101011
        // translation L-1, 0b101010 translation L-2, 0b010011 external abort on walk L-1.
        assert_eq!(
            FaultStatus::from_code(0x29),
            FaultStatus::AddressSize { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x2c),
            FaultStatus::AddressSize { level: -2 }
        );
        assert_eq!(
            FaultStatus::from_code(0x2b),
            FaultStatus::Translation { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x2a),
            FaultStatus::Translation { level: -2 }
        );
        assert_eq!(
            FaultStatus::from_code(0x13),
            FaultStatus::SyncExternalOnWalk { level: -1 }
        );
        // 0x25 is a level-1 granule protection fault on a walk, not an address size fault.
        assert_eq!(
            FaultStatus::from_code(0x25),
            FaultStatus::GranuleProtectionOnWalk { level: 1 }
        );
    }

    #[test]
    fn unallocated_fault_codes_are_reserved() {
        for code in [0x19, 0x1a, 0x20, 0x2d, 0x2e, 0x2f, 0x32, 0x33, 0x36, 0x3f] {
            assert_eq!(FaultStatus::from_code(code), FaultStatus::Reserved(code));
        }
        assert_eq!(
            FaultStatus::Reserved(0x3f).to_string(),
            "reserved fault status code 0x3f"
        );
        assert_eq!(FaultStatus::from_code(0x21).to_string(), "alignment fault");
        assert_eq!(
            FaultStatus::from_code(0x0b).to_string(),
            "access flag fault, level 3"
        );
    }

    #[test]
    fn decode_is_total_over_every_class_and_extreme_iss() {
        for code in 0..64u64 {
            for iss in [0, ESR_ELx::ISS.mask] {
                for iss2 in [0, ESR_ELx::ISS2.mask] {
                    let esr = Esr::new(
                        (ESR_ELx::EC.val(code) + ESR_ELx::ISS.val(iss) + ESR_ELx::ISS2.val(iss2))
                            .value,
                    );
                    assert_eq!(u64::from(esr.ec().code()), code);
                    let report = Report {
                        esr,
                        far: 0,
                        elr: 0,
                        spsr: 0,
                        cpu: 0,
                    };
                    assert_eq!(report.to_string().lines().count(), 2);
                }
            }
        }
    }

    #[test]
    fn iss2_does_not_disturb_ec_or_iss() {
        // Constructed: the GICD write with ISS2.Xs (bits [36:32]) set to 5, as an ST64BV would
        // report it.
        let esr = Esr::new((5 << 32) | GICD_WORD_WRITE);
        assert_eq!(esr.iss2(), 5);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortLower);
        assert_eq!(esr.decode(), Esr::new(GICD_WORD_WRITE).decode());
    }

    // ---- Report -----------------------------------------------------------------------------

    #[test]
    fn report_names_class_prints_registers_and_decodes_iss() {
        // jaredmcneill/quartz64_uefi#50: "ELR 0x00000000EBE1E89C SPSR 0x60000209 ... ESR
        // 0x9600004F FAR 0x00000000EBE08910".
        let report = Report {
            esr: Esr::new(0x9600_004f),
            far: 0xebe0_8910,
            elr: 0xebe1_e89c,
            spsr: 0x6000_0209,
            cpu: 0,
        };
        assert_eq!(
            report.to_string(),
            "EL2 exception: data abort from the same EL (EC 0x25) ESR 0x000000009600004f \
             FAR 0xebe08910 ELR 0xebe1e89c SPSR 0x60000209 on CPU 0\n  \
             data abort: permission fault, level 3, write, no instruction syndrome (ISV=0)"
        );
    }

    #[test]
    fn report_of_unallocated_class_shows_raw_iss() {
        // Constructed: EC 0x3f (unallocated), IL, ISS 0x1234.
        let report = Report {
            esr: Esr::new(0xfe00_1234),
            far: 0,
            elr: 0x4008_0000,
            spsr: 0x3c9,
            cpu: 3,
        };
        assert_eq!(
            report.to_string(),
            "EL2 exception: unallocated exception class (EC 0x3f) ESR 0x00000000fe001234 \
             FAR 0x0 ELR 0x40080000 SPSR 0x3c9 on CPU 3\n  ISS 0x0001234"
        );
    }
}
