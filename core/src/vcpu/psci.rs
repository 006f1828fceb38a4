//! SMCCC and PSCI emulation for guests: the firmware interface a guest kernel calls with HVC (or
//! SMC, which exitless traps with HCR_EL2.TSC and treats the same way).
//!
//! Spec: Arm DEN 0028 "SMC Calling Convention" 1.1 (function identifiers, the Arm Architecture
//! Service, the standard service queries of each owner), Arm DEN 0022 "Power State Coordination
//! Interface" 1.1 (section 5, the functions and their return codes). Reference implementations:
//! Linux KVM `arch/arm64/kvm/psci.c` and `hypercalls.c`, TF-A `lib/psci`. Function IDs and
//! return codes come from the `smccc` crate.
//!
//! [`handle`] is pure: it reads x0..x3 of the call and the VM's view of its vCPUs through
//! [`PsciVm`], and returns a [`PsciAction`] the caller carries out.
//!
//! Invariants:
//!
//! * The function ID is W0 (the upper half of X0 is ignored, as KVM's `smccc_get_function`).
//!   For an SMC32/HVC32 function ID (bit 30 clear) the arguments are W1..W3: their upper halves
//!   are discarded before anything looks at them.
//! * Every unknown function ID returns NOT_SUPPORTED, -1 sign-extended to 64 bits in X0 (SMCCC
//!   "Unknown Function Identifier"), and x1..x3 = 0. Nothing a guest passes can panic.
//! * Error codes are sign-extended to 64 bits, for SMC32 calls too (KVM does the same; a caller
//!   using the 32-bit convention reads W0).
//! * The vendor-specific hypervisor service range (owner 6) belongs to exitless: the standard
//!   queries (Call UID, Revision) are answered here, the rest go to the VM as
//!   [`PsciAction::Vendor`].

use smccc::arch::{
    self as smccc_arch, SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3, SMCCC_VERSION,
};
use smccc::psci::{
    self, AffinityState, MigrateType, PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF,
    PSCI_CPU_ON_32, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES,
    PSCI_MIGRATE_INFO_TYPE, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};
use tock_registers::{LocalRegisterCopy, register_bitfields};

/// The PSCI return codes (DEN 0022 5.2.2), from the `smccc` crate. [`SUCCESS`] is also the SMCCC
/// success code; NOT_SUPPORTED is -1 for SMCCC and PSCI alike. Sign-extend them into x0.
pub use smccc::psci::error::{
    ALREADY_ON, DENIED, DISABLED, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS,
    NOT_PRESENT, NOT_SUPPORTED, ON_PENDING, SUCCESS,
};

register_bitfields! {u32,
    /// An SMCCC Function Identifier (DEN 0028, 2.5 "Function Identifier").
    #[allow(missing_docs)]
    pub FUNCTION_ID [
        /// 1: fast call (atomic); 0: yielding call.
        FAST_CALL OFFSET(31) NUMBITS(1) [],
        /// 1: SMC64/HVC64 calling convention; 0: SMC32/HVC32.
        SMC64 OFFSET(30) NUMBITS(1) [],
        /// Owning Entity Number.
        OWNER OFFSET(24) NUMBITS(6) [
            Arch = 0,
            Cpu = 1,
            Sip = 2,
            Oem = 3,
            Standard = 4,
            StandardHyp = 5,
            VendorHyp = 6
        ],
        /// Must be zero in a fast call.
        RESERVED OFFSET(16) NUMBITS(8) [],
        /// Function number within the owner's range.
        NUMBER OFFSET(0) NUMBITS(16) []
    ],

    /// The `power_state` parameter of CPU_SUSPEND in the original format (DEN 0022 5.4.2.1);
    /// bits [31:26] and [23:17] are reserved and must be zero.
    #[allow(missing_docs)]
    pub POWER_STATE [
        /// The highest power level the request affects.
        POWER_LEVEL OFFSET(24) NUMBITS(2) [],
        /// Standby/retention (execution resumes after the call) or powerdown (execution resumes
        /// at the entry point).
        STATE_TYPE OFFSET(16) NUMBITS(1) [
            Standby = 0,
            PowerDown = 1
        ],
        /// Platform-specific state ID.
        STATE_ID OFFSET(0) NUMBITS(16) []
    ],

    /// The feature flags PSCI_FEATURES returns for CPU_SUSPEND (DEN 0022 5.15.2).
    #[allow(missing_docs)]
    pub CPU_SUSPEND_FEATURES [
        /// Format of the power_state parameter.
        PARAMETER_FORMAT OFFSET(1) NUMBITS(1) [
            Original = 0,
            Extended = 1
        ],
        /// OS-initiated mode.
        OS_INITIATED_MODE OFFSET(0) NUMBITS(1) [
            NotSupported = 0,
            Supported = 1
        ]
    ]
}

register_bitfields! {u64,
    /// The affinity fields of an MPIDR_EL1 value, the target of CPU_ON and AFFINITY_INFO. Every
    /// other bit must be zero in a PSCI `target_cpu`.
    #[allow(missing_docs)]
    pub MPIDR [
        AFF3 OFFSET(32) NUMBITS(8) [],
        AFF2 OFFSET(16) NUMBITS(8) [],
        AFF1 OFFSET(8) NUMBITS(8) [],
        AFF0 OFFSET(0) NUMBITS(8) []
    ]
}

/// The PSCI version exitless implements: 1.1.
pub const PSCI_VERSION_IMPLEMENTED: psci::Version = psci::Version { major: 1, minor: 1 };

/// The SMCCC version exitless implements: 1.1.
pub const SMCCC_VERSION_IMPLEMENTED: smccc_arch::Version =
    smccc_arch::Version { major: 1, minor: 1 };

/// PSCI_FEATURES(CPU_SUSPEND): the original power_state format, no OS-initiated mode.
pub const CPU_SUSPEND_FEATURE_FLAGS: u32 = CPU_SUSPEND_FEATURES::PARAMETER_FORMAT::Original.value
    | CPU_SUSPEND_FEATURES::OS_INITIATED_MODE::NotSupported.value;

/// A fast SMC32/HVC32 function ID of `owner` with function number `number`.
const fn fast_call_32(owner: u32, number: u32) -> u32 {
    FUNCTION_ID::FAST_CALL::SET.value
        | FUNCTION_ID::OWNER.val(owner).value
        | FUNCTION_ID::NUMBER.val(number).value
}

/// Owner number of the vendor-specific hypervisor service.
const OWNER_VENDOR_HYP: u32 = FUNCTION_ID::OWNER::VendorHyp.value >> FUNCTION_ID::OWNER.shift;

/// The "general service queries" every owner reserves at the top of its function number range
/// (DEN 0028 6.2): numbers from here up are queries, not services.
const SERVICE_QUERY_FIRST: u32 = 0xff00;
/// General service query: Call Count (deprecated).
const SERVICE_QUERY_CALL_COUNT: u32 = 0xff00;
/// General service query: Call UID.
const SERVICE_QUERY_CALL_UID: u32 = 0xff01;
/// General service query: Revision.
const SERVICE_QUERY_REVISION: u32 = 0xff03;
/// Function number of [`HYP_GET_EXIT_COUNTERS`].
const EXITLESS_GET_EXIT_COUNTERS: u32 = 0x0001;

/// Vendor hypervisor service "Call Count" (deprecated by SMCCC; exitless returns NOT_SUPPORTED).
pub const VENDOR_HYP_CALL_COUNT: u32 = fast_call_32(OWNER_VENDOR_HYP, SERVICE_QUERY_CALL_COUNT);
/// Vendor hypervisor service "Call UID": returns [`EXITLESS_HYP_UID`] in x0..x3.
pub const VENDOR_HYP_CALL_UID: u32 = fast_call_32(OWNER_VENDOR_HYP, SERVICE_QUERY_CALL_UID);
/// Vendor hypervisor service "Revision": returns the major revision in x0, the minor in x1.
pub const VENDOR_HYP_REVISION: u32 = fast_call_32(OWNER_VENDOR_HYP, SERVICE_QUERY_REVISION);

/// exitless hypercall: read the vCPU's exit counters. Declared here, handled by the VM (it
/// arrives as [`PsciAction::Vendor`]).
pub const HYP_GET_EXIT_COUNTERS: u32 = fast_call_32(OWNER_VENDOR_HYP, EXITLESS_GET_EXIT_COUNTERS);

/// The revision of the exitless hypercall interface: 0.1 (major, minor).
pub const EXITLESS_HYP_REVISION: (u32, u32) = (0, 1);

/// exitless's hypervisor UUID, `39d0828c-eb3e-4355-965a-eeb737fb791e` (random, version 4, drawn
/// once), in RFC 4122 byte order.
pub const EXITLESS_HYP_UUID: [u8; 16] = [
    0x39, 0xd0, 0x82, 0x8c, 0xeb, 0x3e, 0x43, 0x55, 0x96, 0x5a, 0xee, 0xb7, 0x37, 0xfb, 0x79, 0x1e,
];

/// [`EXITLESS_HYP_UUID`] as Call UID returns it in W0..W3: register `i` holds bytes `4i..4i+3`
/// with the first byte in bits `[7:0]`. This is the layout of Linux's
/// `ARM_SMCCC_VENDOR_HYP_UID_KVM` (UUID `28b46fb6-...` is returned as W0 = 0xb66fb428).
pub const EXITLESS_HYP_UID: [u32; 4] = uid_registers(&EXITLESS_HYP_UUID);

/// A UUID in the Call UID register layout.
pub const fn uid_registers(uuid: &[u8; 16]) -> [u32; 4] {
    /// Bytes `first..first + 4` of `uuid`, the first one least significant.
    const fn word(uuid: &[u8; 16], first: usize) -> u32 {
        u32::from_le_bytes([
            uuid[first],
            uuid[first + 1],
            uuid[first + 2],
            uuid[first + 3],
        ])
    }
    [word(uuid, 0), word(uuid, 4), word(uuid, 8), word(uuid, 12)]
}

/// The power state of a vCPU as PSCI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// Running (or suspended: a suspended CPU is ON for PSCI).
    On,
    /// Off: never started, or called CPU_OFF.
    Off,
    /// A CPU_ON for it was accepted, and it has not started yet.
    OnPending,
}

/// What the PSCI emulation needs to know about the VM. The VM implements it.
pub trait PsciVm {
    /// The number of vCPUs; vCPU indices are `0..vcpu_count()`.
    fn vcpu_count(&self) -> usize;
    /// The vCPU whose virtual MPIDR_EL1 has the affinity `mpidr` (Aff3..Aff0, all other bits
    /// zero), if any.
    fn mpidr_to_vcpu(&self, mpidr: u64) -> Option<usize>;
    /// The power state of vCPU `vcpu` (an index below [`PsciVm::vcpu_count`]).
    fn power_state(&self, vcpu: usize) -> PowerState;
    /// Whether `entry` is an acceptable entry point (CPU_ON, CPU_SUSPEND): the VM checks that it
    /// lies in guest RAM. The default accepts every address; [`handle`] rejects misaligned ones
    /// itself.
    fn entry_point_valid(&self, entry: u64) -> bool {
        let _ = entry;
        true
    }
}

/// What the caller of [`handle`] does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PsciAction {
    /// Write x0..x3 and resume the caller.
    Return([u64; 4]),
    /// Start vCPU `target` with [`crate::vcpu::regs::reset_state`]`(entry, context)` (and its
    /// EL1 system registers in their reset state), then return SUCCESS (0) in x0 to the caller.
    /// [`handle`] has checked that `target` exists and was OFF; the caller checks again under
    /// the target's power lock and answers ALREADY_ON if another CPU_ON got there first.
    CpuOn {
        /// The vCPU to start.
        target: usize,
        /// Its entry point (a guest physical address).
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// Power the calling vCPU off. It does not return; a later CPU_ON restarts it.
    CpuOff,
    /// CPU_SUSPEND. With `powerdown: None` (a standby state) the caller returns SUCCESS (0) in x0,
    /// at once or after waiting for an interrupt as for WFI: a wakeup may be spurious. With
    /// `powerdown: Some((entry, context))` the caller restarts the vCPU as if woken at once:
    /// [`crate::vcpu::regs::reset_state`]`(entry, context)`, EL1 system registers as for CPU_ON.
    Suspend {
        /// `(entry, context)` of a powerdown state.
        powerdown: Option<(u64, u64)>,
    },
    /// Power the whole VM off. The caller never resumes any of its vCPUs.
    SystemOff,
    /// Reset the whole VM. The caller never resumes the calling context.
    SystemReset,
    /// A call in the vendor hypervisor service range that [`handle`] does not answer itself
    /// (e.g. [`HYP_GET_EXIT_COUNTERS`]): the VM implements it, or returns NOT_SUPPORTED.
    Vendor {
        /// The function ID (W0).
        function: u32,
        /// x1..x3, truncated to 32 bits for an SMC32/HVC32 function ID.
        args: [u64; 3],
    },
}

/// `Return` with `value` in x0, 0 in x1..x3.
fn ret(value: u64) -> PsciAction {
    PsciAction::Return([value, 0, 0, 0])
}

/// `Return` with a signed status code in x0, sign-extended.
fn status(code: i32) -> PsciAction {
    ret(i64::from(code) as u64)
}

/// `Return` with a 32-bit result in x0.
fn value32(value: u32) -> PsciAction {
    ret(u64::from(value))
}

/// The PSCI functions [`handle`] implements, which PSCI_FEATURES reports as present (with
/// SMCCC_VERSION, which PSCI_FEATURES must report for SMCCC 1.1 discovery).
const IMPLEMENTED: [u32; 13] = [
    PSCI_VERSION,
    PSCI_CPU_SUSPEND_32,
    PSCI_CPU_SUSPEND_64,
    PSCI_CPU_OFF,
    PSCI_CPU_ON_32,
    PSCI_CPU_ON_64,
    PSCI_AFFINITY_INFO_32,
    PSCI_AFFINITY_INFO_64,
    PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
    PSCI_FEATURES,
    SMCCC_VERSION,
];

/// Handles one SMCCC call: `call` is x0..x3 of vCPU `caller` at its HVC #0 (or trapped SMC #0).
pub fn handle(call: &[u64; 4], caller: usize, vm: &impl PsciVm) -> PsciAction {
    let [x0, x1, x2, x3] = *call;
    // SMCCC: the function ID is W0.
    let function = x0 as u32;
    let id = LocalRegisterCopy::<u32, FUNCTION_ID::Register>::new(function);
    let args = if id.is_set(FUNCTION_ID::SMC64) {
        [x1, x2, x3]
    } else {
        [x1, x2, x3].map(|arg| u64::from(arg as u32))
    };
    let [a1, a2, a3] = args;

    match function {
        PSCI_VERSION => value32(PSCI_VERSION_IMPLEMENTED.into()),
        PSCI_FEATURES => psci_features(a1 as u32),
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => cpu_suspend(a1 as u32, a2, a3, vm),
        PSCI_CPU_OFF => PsciAction::CpuOff,
        PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => cpu_on(a1, a2, a3, caller, vm),
        PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => affinity_info(a1, a2, caller, vm),
        PSCI_MIGRATE_INFO_TYPE => status(MigrateType::MigrationNotRequired as i32),
        PSCI_SYSTEM_OFF => PsciAction::SystemOff,
        PSCI_SYSTEM_RESET => PsciAction::SystemReset,
        SMCCC_VERSION => value32(SMCCC_VERSION_IMPLEMENTED.into()),
        SMCCC_ARCH_FEATURES => arch_features(a1 as u32),
        _ if is_vendor_hyp_fast_call(&id) => vendor_hyp(function, &id, args),
        _ => status(NOT_SUPPORTED),
    }
}

/// PSCI_FEATURES: SUCCESS for an implemented function, the feature flags for CPU_SUSPEND,
/// NOT_SUPPORTED for anything else.
fn psci_features(queried: u32) -> PsciAction {
    match queried {
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => value32(CPU_SUSPEND_FEATURE_FLAGS),
        _ if IMPLEMENTED.contains(&queried) => status(SUCCESS),
        _ => status(NOT_SUPPORTED),
    }
}

/// SMCCC_ARCH_FEATURES: SUCCESS for SMCCC_VERSION and SMCCC_ARCH_FEATURES themselves;
/// NOT_SUPPORTED for the firmware workarounds (exitless implements none of them) and anything
/// else.
fn arch_features(queried: u32) -> PsciAction {
    match queried {
        SMCCC_VERSION | SMCCC_ARCH_FEATURES => status(smccc_arch::error::SUCCESS),
        SMCCC_ARCH_WORKAROUND_1 | SMCCC_ARCH_WORKAROUND_2 | SMCCC_ARCH_WORKAROUND_3 => {
            status(smccc_arch::error::NOT_SUPPORTED)
        }
        _ => status(smccc_arch::error::NOT_SUPPORTED),
    }
}

/// The vCPU a PSCI `target_cpu` names, or INVALID_PARAMETERS (as a return action) if it has bits
/// outside Aff3..Aff0 or names no vCPU of this VM.
fn target_vcpu(mpidr: u64, vm: &impl PsciVm) -> Result<usize, PsciAction> {
    let affinity = (MPIDR::AFF3.mask << MPIDR::AFF3.shift)
        | (MPIDR::AFF2.mask << MPIDR::AFF2.shift)
        | (MPIDR::AFF1.mask << MPIDR::AFF1.shift)
        | (MPIDR::AFF0.mask << MPIDR::AFF0.shift);
    if mpidr & !affinity != 0 {
        return Err(status(INVALID_PARAMETERS));
    }
    vm.mpidr_to_vcpu(mpidr)
        // A VM that maps an MPIDR to an index it does not have is buggy; the guest still gets
        // an error rather than a vCPU that does not exist.
        .filter(|&vcpu| vcpu < vm.vcpu_count())
        .ok_or_else(|| status(INVALID_PARAMETERS))
}

/// Whether `entry` may be an AArch64 entry point: instruction-aligned, and accepted by the VM.
fn entry_point_valid(entry: u64, vm: &impl PsciVm) -> bool {
    /// AArch64 instructions are 4 bytes, and a misaligned PC faults at once.
    const INSTRUCTION_ALIGN: u64 = 4;
    entry.is_multiple_of(INSTRUCTION_ALIGN) && vm.entry_point_valid(entry)
}

/// CPU_ON (DEN 0022 5.6), with TF-A's order of checks: target, entry point, state.
fn cpu_on(mpidr: u64, entry: u64, context: u64, caller: usize, vm: &impl PsciVm) -> PsciAction {
    let target = match target_vcpu(mpidr, vm) {
        Ok(target) => target,
        Err(error) => return error,
    };
    if !entry_point_valid(entry, vm) {
        return status(INVALID_ADDRESS);
    }
    // The caller is running by definition, whatever the VM's bookkeeping says.
    if target == caller {
        return status(ALREADY_ON);
    }
    // A target that another CPU_ON already started is ALREADY_ON, as in KVM: software written
    // against KVM treats ON_PENDING as a failure. The final check is the caller's, under the
    // target's power lock (`PsciAction::CpuOn`), so that of concurrent calls exactly one wins.
    match vm.power_state(target) {
        PowerState::On | PowerState::OnPending => status(ALREADY_ON),
        PowerState::Off => PsciAction::CpuOn {
            target,
            entry,
            context,
        },
    }
}

/// CPU_SUSPEND (DEN 0022 5.4) with the original power_state format.
fn cpu_suspend(power_state: u32, entry: u64, context: u64, vm: &impl PsciVm) -> PsciAction {
    let valid_bits = (POWER_STATE::POWER_LEVEL.mask << POWER_STATE::POWER_LEVEL.shift)
        | (POWER_STATE::STATE_TYPE.mask << POWER_STATE::STATE_TYPE.shift)
        | (POWER_STATE::STATE_ID.mask << POWER_STATE::STATE_ID.shift);
    if power_state & !valid_bits != 0 {
        return status(INVALID_PARAMETERS);
    }
    let power_state = LocalRegisterCopy::<u32, POWER_STATE::Register>::new(power_state);
    if power_state.matches_all(POWER_STATE::STATE_TYPE::Standby) {
        return PsciAction::Suspend { powerdown: None };
    }
    if !entry_point_valid(entry, vm) {
        return status(INVALID_ADDRESS);
    }
    PsciAction::Suspend {
        powerdown: Some((entry, context)),
    }
}

/// AFFINITY_INFO (DEN 0022 5.7) at affinity level 0; higher levels are INVALID_PARAMETERS.
fn affinity_info(mpidr: u64, lowest_level: u64, caller: usize, vm: &impl PsciVm) -> PsciAction {
    if lowest_level != 0 {
        return status(INVALID_PARAMETERS);
    }
    let target = match target_vcpu(mpidr, vm) {
        Ok(target) => target,
        Err(error) => return error,
    };
    let state = if target == caller {
        AffinityState::On
    } else {
        match vm.power_state(target) {
            PowerState::On => AffinityState::On,
            PowerState::Off => AffinityState::Off,
            PowerState::OnPending => AffinityState::OnPending,
        }
    };
    status(state as i32)
}

/// A fast call in the vendor hypervisor service range (owner 6, bits [23:16] zero).
fn is_vendor_hyp_fast_call(id: &LocalRegisterCopy<u32, FUNCTION_ID::Register>) -> bool {
    id.is_set(FUNCTION_ID::FAST_CALL)
        && id.matches_all(FUNCTION_ID::OWNER::VendorHyp)
        && id.read(FUNCTION_ID::RESERVED) == 0
}

/// The vendor hypervisor service: Call UID and Revision here, other queries NOT_SUPPORTED,
/// everything below the query range to the VM.
fn vendor_hyp(
    function: u32,
    id: &LocalRegisterCopy<u32, FUNCTION_ID::Register>,
    args: [u64; 3],
) -> PsciAction {
    match function {
        VENDOR_HYP_CALL_UID => PsciAction::Return(EXITLESS_HYP_UID.map(u64::from)),
        VENDOR_HYP_REVISION => {
            let (major, minor) = EXITLESS_HYP_REVISION;
            PsciAction::Return([major.into(), minor.into(), 0, 0])
        }
        _ if id.read(FUNCTION_ID::NUMBER) >= SERVICE_QUERY_FIRST => status(NOT_SUPPORTED),
        _ => PsciAction::Vendor { function, args },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NOT_SUPPORTED as the guest sees it in x0.
    const NOT_SUPPORTED_X0: u64 = 0xffff_ffff_ffff_ffff;
    const INVALID_PARAMETERS_X0: u64 = 0xffff_ffff_ffff_fffe;
    const ALREADY_ON_X0: u64 = 0xffff_ffff_ffff_fffc;
    const ON_PENDING_X0: u64 = 0xffff_ffff_ffff_fffb;
    const INVALID_ADDRESS_X0: u64 = 0xffff_ffff_ffff_fff7;

    /// A VM of vCPUs with MPIDRs `0x0`, `0x1`, ..., each in a given state, and RAM at
    /// 0x4000_0000..0x8000_0000.
    struct FakeVm {
        states: Vec<PowerState>,
    }

    impl FakeVm {
        fn new(states: &[PowerState]) -> Self {
            Self {
                states: states.to_vec(),
            }
        }
    }

    impl PsciVm for FakeVm {
        fn vcpu_count(&self) -> usize {
            self.states.len()
        }
        fn mpidr_to_vcpu(&self, mpidr: u64) -> Option<usize> {
            usize::try_from(mpidr)
                .ok()
                .filter(|&vcpu| vcpu < self.states.len())
        }
        fn power_state(&self, vcpu: usize) -> PowerState {
            self.states[vcpu]
        }
        fn entry_point_valid(&self, entry: u64) -> bool {
            (0x4000_0000..0x8000_0000).contains(&entry)
        }
    }

    /// vCPU 0 running (the caller), 1 off, 2 being started, 3 running.
    fn vm() -> FakeVm {
        FakeVm::new(&[
            PowerState::On,
            PowerState::Off,
            PowerState::OnPending,
            PowerState::On,
        ])
    }

    fn call(x0: u32, x1: u64, x2: u64, x3: u64) -> PsciAction {
        handle(&[u64::from(x0), x1, x2, x3], 0, &vm())
    }

    fn x0(action: PsciAction) -> u64 {
        match action {
            PsciAction::Return([x0, 0, 0, 0]) => x0,
            other => panic!("{other:?} is not a single-value return"),
        }
    }

    #[test]
    fn psci_version_is_1_1() {
        assert_eq!(x0(call(PSCI_VERSION, 0, 0, 0)), 0x0001_0001);
    }

    #[test]
    fn smccc_version_is_1_1() {
        assert_eq!(x0(call(SMCCC_VERSION, 0, 0, 0)), 0x0001_0001);
    }

    #[test]
    fn psci_features_reports_success_for_every_implemented_function() {
        for function in IMPLEMENTED {
            let flags = x0(call(PSCI_FEATURES, function.into(), 0, 0));
            if matches!(function, PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64) {
                assert_eq!(flags, u64::from(CPU_SUSPEND_FEATURE_FLAGS));
            } else {
                assert_eq!(flags, 0, "{function:#x}");
            }
        }
    }

    #[test]
    fn psci_features_of_cpu_suspend_is_original_format_without_os_initiated_mode() {
        // DEN 0022 5.15.2: bit 1 = extended StateID format, bit 0 = OS-initiated mode.
        assert_eq!(CPU_SUSPEND_FEATURE_FLAGS, 0);
        assert_eq!(x0(call(PSCI_FEATURES, PSCI_CPU_SUSPEND_64.into(), 0, 0)), 0);
    }

    #[test]
    fn psci_features_of_unimplemented_function_is_not_supported() {
        for function in [
            psci::PSCI_MIGRATE_32,
            psci::PSCI_MIGRATE_INFO_UP_CPU_64,
            psci::PSCI_SYSTEM_SUSPEND_64,
            psci::PSCI_SYSTEM_RESET2_64,
            psci::PSCI_CPU_FREEZE,
            psci::PSCI_SET_SUSPEND_MODE,
            SMCCC_ARCH_FEATURES,
            0xdead_beef,
        ] {
            assert_eq!(
                x0(call(PSCI_FEATURES, function.into(), 0, 0)),
                NOT_SUPPORTED_X0,
                "{function:#x}"
            );
        }
    }

    #[test]
    fn cpu_on_of_off_cpu_starts_it() {
        assert_eq!(
            call(PSCI_CPU_ON_64, 1, 0x4008_0000, 0xffff_0000_1234_5678),
            PsciAction::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 0xffff_0000_1234_5678,
            }
        );
    }

    #[test]
    fn cpu_on_of_running_cpu_is_already_on() {
        assert_eq!(x0(call(PSCI_CPU_ON_64, 3, 0x4008_0000, 0)), ALREADY_ON_X0);
    }

    #[test]
    fn cpu_on_of_the_caller_is_already_on() {
        // Even if the VM's bookkeeping has not caught up with the caller yet.
        let vm = FakeVm::new(&[PowerState::OnPending, PowerState::Off]);
        assert_eq!(
            x0(handle(&[PSCI_CPU_ON_64.into(), 0, 0x4008_0000, 0], 0, &vm)),
            ALREADY_ON_X0
        );
    }

    /// KVM's answer (`kvm_psci_vcpu_on`): a target another CPU_ON already started is
    /// ALREADY_ON, never ON_PENDING, which Linux and KVM-tested software take as a failure.
    #[test]
    fn cpu_on_of_a_cpu_being_started_is_already_on_as_in_kvm() {
        assert_eq!(x0(call(PSCI_CPU_ON_64, 2, 0x4008_0000, 0)), ALREADY_ON_X0);
        assert_ne!(ON_PENDING_X0, ALREADY_ON_X0);
    }

    #[test]
    fn cpu_on_of_unknown_mpidr_is_invalid_parameters() {
        assert_eq!(
            x0(call(PSCI_CPU_ON_64, 4, 0x4008_0000, 0)),
            INVALID_PARAMETERS_X0
        );
        assert_eq!(
            x0(call(PSCI_CPU_ON_64, 0x1_0000_0000, 0x4008_0000, 0)),
            INVALID_PARAMETERS_X0
        );
    }

    #[test]
    fn cpu_on_with_non_affinity_mpidr_bits_is_invalid_parameters() {
        // MPIDR_EL1.U (bit 30) and MT (bit 24) and bit 31 (RES1) are not affinity.
        for mpidr in [1 | (1 << 31), 1 | (1 << 30), 1 | (1 << 24), 1 | (1 << 40)] {
            assert_eq!(
                x0(call(PSCI_CPU_ON_64, mpidr, 0x4008_0000, 0)),
                INVALID_PARAMETERS_X0,
                "{mpidr:#x}"
            );
        }
    }

    #[test]
    fn cpu_on_with_misaligned_entry_is_invalid_address() {
        assert_eq!(
            x0(call(PSCI_CPU_ON_64, 1, 0x4008_0002, 0)),
            INVALID_ADDRESS_X0
        );
    }

    #[test]
    fn cpu_on_with_entry_outside_guest_ram_is_invalid_address() {
        assert_eq!(x0(call(PSCI_CPU_ON_64, 1, 0x1000, 0)), INVALID_ADDRESS_X0);
    }

    #[test]
    fn cpu_on_with_a_vm_index_out_of_range_is_invalid_parameters() {
        struct Liar;
        impl PsciVm for Liar {
            fn vcpu_count(&self) -> usize {
                1
            }
            fn mpidr_to_vcpu(&self, _: u64) -> Option<usize> {
                Some(7)
            }
            fn power_state(&self, vcpu: usize) -> PowerState {
                panic!("asked about vCPU {vcpu}, which does not exist")
            }
        }
        let action = handle(&[PSCI_CPU_ON_64.into(), 1, 0x4008_0000, 0], 0, &Liar);
        assert_eq!(x0(action), INVALID_PARAMETERS_X0);
    }

    #[test]
    fn smc32_arguments_are_truncated() {
        // CPU_ON_32 with garbage in the upper halves of x1..x3: W1 = 1, W2 = entry, W3 = context.
        assert_eq!(
            call(
                PSCI_CPU_ON_32,
                0xdead_beef_0000_0001,
                0xffff_ffff_4008_0000,
                0x1234_5678_9abc_def0
            ),
            PsciAction::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 0x9abc_def0,
            }
        );
        // The same garbage in a 64-bit call is an invalid MPIDR.
        assert_eq!(
            x0(call(PSCI_CPU_ON_64, 0xdead_beef_0000_0001, 0x4008_0000, 0)),
            INVALID_PARAMETERS_X0
        );
    }

    #[test]
    fn function_id_is_w0() {
        assert_eq!(
            x0(handle(
                &[0xffff_ffff_0000_0000 | u64::from(PSCI_VERSION), 0, 0, 0],
                0,
                &vm()
            )),
            0x0001_0001
        );
    }

    #[test]
    fn cpu_off_turns_the_caller_off() {
        assert_eq!(call(PSCI_CPU_OFF, 0, 0, 0), PsciAction::CpuOff);
    }

    #[test]
    fn cpu_suspend_to_standby_returns_without_entry_point() {
        // power_state 0: standby, level 0, state ID 0 (entry and context are ignored).
        assert_eq!(
            call(PSCI_CPU_SUSPEND_64, 0, 0x3, 0x7),
            PsciAction::Suspend { powerdown: None }
        );
        assert_eq!(
            call(PSCI_CPU_SUSPEND_32, 0x0100_0001, 0, 0),
            PsciAction::Suspend { powerdown: None }
        );
    }

    #[test]
    fn cpu_suspend_to_powerdown_resumes_at_entry_with_context() {
        // power_state 0x0001_0000: StateType = powerdown (Linux `PSCI_0_2_POWER_STATE_TYPE`).
        assert_eq!(
            call(
                PSCI_CPU_SUSPEND_64,
                0x0001_0000,
                0x4010_0000,
                0xffff_0000_0000_0042
            ),
            PsciAction::Suspend {
                powerdown: Some((0x4010_0000, 0xffff_0000_0000_0042)),
            }
        );
    }

    #[test]
    fn cpu_suspend_with_reserved_power_state_bits_is_invalid_parameters() {
        for power_state in [1 << 17, 1 << 23, 1 << 26, 1 << 31] {
            assert_eq!(
                x0(call(PSCI_CPU_SUSPEND_64, power_state, 0x4010_0000, 0)),
                INVALID_PARAMETERS_X0,
                "{power_state:#x}"
            );
        }
    }

    #[test]
    fn cpu_suspend_to_powerdown_with_bad_entry_is_invalid_address() {
        assert_eq!(
            x0(call(PSCI_CPU_SUSPEND_64, 0x0001_0000, 0x4010_0001, 0)),
            INVALID_ADDRESS_X0
        );
        assert_eq!(
            x0(call(PSCI_CPU_SUSPEND_64, 0x0001_0000, 0x9000_0000, 0)),
            INVALID_ADDRESS_X0
        );
    }

    #[test]
    fn affinity_info_reports_on_off_and_on_pending() {
        let state = |mpidr| x0(call(PSCI_AFFINITY_INFO_64, mpidr, 0, 0));
        assert_eq!(state(0), 0);
        assert_eq!(state(1), 1);
        assert_eq!(state(2), 2);
        assert_eq!(state(3), 0);
        assert_eq!(x0(call(PSCI_AFFINITY_INFO_32, 1, 0, 0)), 1);
    }

    #[test]
    fn affinity_info_level_1_is_invalid_parameters() {
        for level in [1, 2, 3, u64::MAX] {
            assert_eq!(
                x0(call(PSCI_AFFINITY_INFO_64, 0, level, 0)),
                INVALID_PARAMETERS_X0
            );
        }
    }

    #[test]
    fn affinity_info_of_unknown_mpidr_is_invalid_parameters() {
        assert_eq!(
            x0(call(PSCI_AFFINITY_INFO_64, 0x100, 0, 0)),
            INVALID_PARAMETERS_X0
        );
        assert_eq!(
            x0(call(PSCI_AFFINITY_INFO_64, (1 << 31) | 1, 0, 0)),
            INVALID_PARAMETERS_X0
        );
    }

    #[test]
    fn system_off_and_system_reset_are_vm_actions() {
        assert_eq!(call(PSCI_SYSTEM_OFF, 0, 0, 0), PsciAction::SystemOff);
        assert_eq!(call(PSCI_SYSTEM_RESET, 0, 0, 0), PsciAction::SystemReset);
    }

    #[test]
    fn migrate_info_type_is_2_migration_not_required() {
        assert_eq!(x0(call(PSCI_MIGRATE_INFO_TYPE, 0, 0, 0)), 2);
    }

    #[test]
    fn migrate_and_other_optional_functions_are_not_supported() {
        for function in [
            psci::PSCI_MIGRATE_64,
            psci::PSCI_MIGRATE_INFO_UP_CPU_32,
            psci::PSCI_SYSTEM_SUSPEND_64,
            psci::PSCI_SYSTEM_RESET2_32,
            psci::PSCI_MEM_PROTECT,
            psci::PSCI_STAT_COUNT_64,
        ] {
            assert_eq!(
                x0(call(function, 0, 0, 0)),
                NOT_SUPPORTED_X0,
                "{function:#x}"
            );
        }
    }

    #[test]
    fn smccc_arch_features_knows_only_version_and_itself() {
        let features = |function: u32| x0(call(SMCCC_ARCH_FEATURES, function.into(), 0, 0));
        assert_eq!(features(SMCCC_VERSION), 0);
        assert_eq!(features(SMCCC_ARCH_FEATURES), 0);
        assert_eq!(features(smccc::arch::SMCCC_ARCH_SOC_ID), NOT_SUPPORTED_X0);
        assert_eq!(features(PSCI_VERSION), NOT_SUPPORTED_X0);
    }

    #[test]
    fn arch_workarounds_are_not_supported() {
        for workaround in [
            SMCCC_ARCH_WORKAROUND_1,
            SMCCC_ARCH_WORKAROUND_2,
            SMCCC_ARCH_WORKAROUND_3,
        ] {
            assert_eq!(
                x0(call(SMCCC_ARCH_FEATURES, workaround.into(), 0, 0)),
                NOT_SUPPORTED_X0
            );
            // Calling one anyway is an unknown function too.
            assert_eq!(x0(call(workaround, 0, 0, 0)), NOT_SUPPORTED_X0);
        }
    }

    #[test]
    fn unknown_function_is_not_supported() {
        // TRNG_VERSION, a standard hypervisor service call (PV time), an SiP call, a yielding
        // call, and garbage: -1 sign-extended to 64 bits.
        for function in [
            0x8400_0050,
            0xc500_0020,
            0xc200_0001,
            0x0600_0001,
            0xffff_ffff,
            0,
        ] {
            assert_eq!(
                call(function, 1, 2, 3),
                PsciAction::Return([NOT_SUPPORTED_X0, 0, 0, 0]),
                "{function:#x}"
            );
        }
    }

    #[test]
    fn vendor_call_uid_returns_the_exitless_uuid() {
        assert_eq!(VENDOR_HYP_CALL_UID, 0x8600_ff01);
        assert_eq!(
            call(VENDOR_HYP_CALL_UID, 0, 0, 0),
            PsciAction::Return([0x8c82_d039, 0x5543_3eeb, 0xb7ee_5a96, 0x1e79_fb37])
        );
    }

    #[test]
    fn uid_layout_matches_kvm() {
        // Linux include/linux/arm-smccc.h: KVM UID 28b46fb6-2ec5-11e9-a9ca-4b564d003a74 is
        // returned as 0xb66fb428, 0xe911c52e, 0x564bcaa9, 0x743a004d.
        let kvm = [
            0x28, 0xb4, 0x6f, 0xb6, 0x2e, 0xc5, 0x11, 0xe9, 0xa9, 0xca, 0x4b, 0x56, 0x4d, 0x00,
            0x3a, 0x74,
        ];
        assert_eq!(
            uid_registers(&kvm),
            [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d]
        );
        assert_eq!(EXITLESS_HYP_UID, uid_registers(&EXITLESS_HYP_UUID));
    }

    #[test]
    fn vendor_revision_is_0_1() {
        assert_eq!(VENDOR_HYP_REVISION, 0x8600_ff03);
        assert_eq!(
            call(VENDOR_HYP_REVISION, 0, 0, 0),
            PsciAction::Return([0, 1, 0, 0])
        );
    }

    #[test]
    fn other_vendor_queries_are_not_supported() {
        assert_eq!(VENDOR_HYP_CALL_COUNT, 0x8600_ff00);
        for function in [VENDOR_HYP_CALL_COUNT, 0x8600_ff02, 0x8600_ffff, 0xc600_ff01] {
            assert_eq!(
                x0(call(function, 0, 0, 0)),
                NOT_SUPPORTED_X0,
                "{function:#x}"
            );
        }
    }

    #[test]
    fn other_vendor_calls_go_to_the_vm() {
        assert_eq!(HYP_GET_EXIT_COUNTERS, 0x8600_0001);
        assert_eq!(
            call(HYP_GET_EXIT_COUNTERS, 0xffff_0000_0000_0005, 6, 7),
            PsciAction::Vendor {
                function: HYP_GET_EXIT_COUNTERS,
                args: [5, 6, 7],
            }
        );
        // SMC64 vendor calls keep their 64-bit arguments.
        assert_eq!(
            call(0xc600_0002, 0xffff_0000_0000_0005, 6, 7),
            PsciAction::Vendor {
                function: 0xc600_0002,
                args: [0xffff_0000_0000_0005, 6, 7],
            }
        );
    }

    #[test]
    fn vendor_range_with_reserved_bits_or_yielding_is_not_supported() {
        for function in [0x8601_0001, 0x0600_0001, 0x4600_0001] {
            assert_eq!(
                x0(call(function, 0, 0, 0)),
                NOT_SUPPORTED_X0,
                "{function:#x}"
            );
        }
    }

    #[test]
    fn handle_is_total_over_owner_ranges_and_extreme_arguments() {
        let vm = vm();
        for high in 0..=0xffu32 {
            for low in [0u32, 1, 2, 3, 0xa, 0xff00, 0xff01, 0xff03, 0xffff] {
                let function = (high << 24) | low;
                for arg in [0, u64::MAX, 0x8000_0000_0000_0000] {
                    for caller in [0, 3, usize::MAX] {
                        let _ = handle(&[function.into(), arg, arg, arg], caller, &vm);
                    }
                }
            }
        }
    }
}
