//! A vCPU on the hardware: entering and leaving the guest (`guest.S`), the EL2 controls it runs
//! under, its EL1 system-register and FP/SIMD context, exception injection, and reading the ID
//! registers it may not see unfiltered.
//!
//! Context policy: exitless runs one vCPU per physical CPU, and the hypervisor never touches
//! EL1 system registers, FP/SIMD registers or the virtual timer while it handles an exit (the
//! target is soft-float). So exits save and restore only the general registers; the full EL1
//! context ([`El1Context`]) is written when a vCPU is loaded onto its CPU (started, or restarted
//! by PSCI) and read back when it is put (stopped). The exit path stays short.

use core::arch::asm;

use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2, Readable};

use exitless_core::trap::esr::SysRegId;
use exitless_core::vcpu::exit::ExitKind;
use exitless_core::vcpu::regs::{ExitInfo, GuestRegs};

core::arch::global_asm!(include_str!("guest.S"));

unsafe extern "C" {
    fn __guest_enter(regs: *mut GuestRegs) -> u64;
}

/// Reads a system register by name or generic encoding.
macro_rules! mrs {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: reading this system register at EL2 has no side effect.
        unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// Writes a system register by name or generic encoding.
macro_rules! msr {
    ($reg:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: these registers configure the guest's EL1/EL0 context or the EL2 controls
        // of the guest about to run on this CPU; they do not change what EL2 code can access.
        unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

/// Runs the guest until it exits; returns which vector it left through and the fault
/// registers.
pub fn run(regs: &mut GuestRegs) -> (ExitKind, ExitInfo) {
    // SAFETY: `__guest_enter` saves the callee-saved registers on this stack, erets into the
    // guest described by `regs` (under the stage-2 translation and controls `load` installed,
    // which confine it to its own memory), and returns here at the guest's next exception with
    // `regs` updated and every callee-saved register restored.
    let kind = unsafe { __guest_enter(regs) };
    let info = ExitInfo {
        esr: ESR_EL2.get(),
        far: FAR_EL2.get(),
        hpfar: HPFAR_EL2.get(),
    };
    let kind = match kind {
        0 => ExitKind::Sync,
        1 => ExitKind::Irq,
        2 => ExitKind::Fiq,
        _ => ExitKind::SError,
    };
    (kind, info)
}

/// The EL2 controls a vCPU runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestControl {
    /// HCR_EL2 (`vm::traps::guest_hcr`).
    pub hcr: u64,
    /// CPTR_EL2.
    pub cptr: u64,
    /// MDCR_EL2.
    pub mdcr: u64,
    /// CNTHCTL_EL2.
    pub cnthctl: u64,
    /// CNTVOFF_EL2: the VM's virtual counter offset.
    pub cntvoff: u64,
    /// VTTBR_EL2: VMID and stage-2 root.
    pub vttbr: u64,
    /// VTCR_EL2.
    pub vtcr: u64,
    /// VMPIDR_EL2: the MPIDR the guest reads.
    pub vmpidr: u64,
    /// VPIDR_EL2: the MIDR the guest reads.
    pub vpidr: u64,
}

/// Installs `ctl` on this CPU and invalidates the stage-1 and stage-2 TLB entries of its VMID
/// (the VMID may have served another VM before).
pub fn load_control(ctl: &GuestControl) {
    msr!("vtcr_el2", ctl.vtcr);
    msr!("vttbr_el2", ctl.vttbr);
    msr!("cptr_el2", ctl.cptr);
    msr!("mdcr_el2", ctl.mdcr);
    msr!("cnthctl_el2", ctl.cnthctl);
    msr!("cntvoff_el2", ctl.cntvoff);
    msr!("vmpidr_el2", ctl.vmpidr);
    msr!("vpidr_el2", ctl.vpidr);
    msr!("hcr_el2", ctl.hcr);
    // SAFETY: TLB maintenance has no memory-safety effect.
    unsafe { asm!("isb", "tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

/// Restores the hypervisor's own controls after the last vCPU on this CPU stopped.
pub fn unload_control(host_hcr: u64) {
    msr!("hcr_el2", host_hcr);
    msr!("vttbr_el2", 0);
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack)) };
}

/// SCTLR_EL1 at reset (ARMv8.0 RES1 bits 29, 28, 23, 22, 20, 11; MMU and caches off).
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// A vCPU's EL1 (and EL0) system registers, timers and FP/SIMD state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct El1Context {
    /// SCTLR_EL1, CPACR_EL1, TTBR0_EL1, TTBR1_EL1, TCR_EL1, MAIR_EL1, AMAIR_EL1, VBAR_EL1,
    /// CONTEXTIDR_EL1, TPIDR_EL0, TPIDRRO_EL0, TPIDR_EL1, SP_EL0, SP_EL1, ELR_EL1, SPSR_EL1,
    /// ESR_EL1, FAR_EL1, AFSR0_EL1, AFSR1_EL1, PAR_EL1, CNTKCTL_EL1, MDSCR_EL1, CSSELR_EL1,
    /// CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0, FPCR, FPSR (in this order).
    pub sys: [u64; 30],
    /// V0..V31.
    pub v: [u128; 32],
}

impl El1Context {
    /// The state of a CPU coming out of reset, as PSCI CPU_ON and the boot protocol promise
    /// it: MMU and caches off, timers disabled, everything else zero.
    pub fn reset() -> Self {
        let mut sys = [0; 30];
        sys[0] = SCTLR_EL1_RESET;
        El1Context { sys, v: [0; 32] }
    }
}

macro_rules! sys_regs {
    ($m:ident) => {
        $m!(0, "sctlr_el1");
        $m!(1, "cpacr_el1");
        $m!(2, "ttbr0_el1");
        $m!(3, "ttbr1_el1");
        $m!(4, "tcr_el1");
        $m!(5, "mair_el1");
        $m!(6, "amair_el1");
        $m!(7, "vbar_el1");
        $m!(8, "contextidr_el1");
        $m!(9, "tpidr_el0");
        $m!(10, "tpidrro_el0");
        $m!(11, "tpidr_el1");
        $m!(12, "sp_el0");
        $m!(13, "sp_el1");
        $m!(14, "elr_el1");
        $m!(15, "spsr_el1");
        $m!(16, "esr_el1");
        $m!(17, "far_el1");
        $m!(18, "afsr0_el1");
        $m!(19, "afsr1_el1");
        $m!(20, "par_el1");
        $m!(21, "cntkctl_el1");
        $m!(22, "mdscr_el1");
        $m!(23, "csselr_el1");
        $m!(24, "cntv_ctl_el0");
        $m!(25, "cntv_cval_el0");
        $m!(26, "cntp_ctl_el0");
        $m!(27, "cntp_cval_el0");
        $m!(28, "S3_3_C4_C4_0"); // FPCR
        $m!(29, "S3_3_C4_C4_1"); // FPSR
    };
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".section .text.fpsimd, \"ax\"",
    ".global __fpsimd_save",
    "__fpsimd_save:",
    "stp q0, q1, [x0, #0]",
    "stp q2, q3, [x0, #32]",
    "stp q4, q5, [x0, #64]",
    "stp q6, q7, [x0, #96]",
    "stp q8, q9, [x0, #128]",
    "stp q10, q11, [x0, #160]",
    "stp q12, q13, [x0, #192]",
    "stp q14, q15, [x0, #224]",
    "stp q16, q17, [x0, #256]",
    "stp q18, q19, [x0, #288]",
    "stp q20, q21, [x0, #320]",
    "stp q22, q23, [x0, #352]",
    "stp q24, q25, [x0, #384]",
    "stp q26, q27, [x0, #416]",
    "stp q28, q29, [x0, #448]",
    "stp q30, q31, [x0, #480]",
    "ret",
    ".global __fpsimd_restore",
    "__fpsimd_restore:",
    "ldp q0, q1, [x0, #0]",
    "ldp q2, q3, [x0, #32]",
    "ldp q4, q5, [x0, #64]",
    "ldp q6, q7, [x0, #96]",
    "ldp q8, q9, [x0, #128]",
    "ldp q10, q11, [x0, #160]",
    "ldp q12, q13, [x0, #192]",
    "ldp q14, q15, [x0, #224]",
    "ldp q16, q17, [x0, #256]",
    "ldp q18, q19, [x0, #288]",
    "ldp q20, q21, [x0, #320]",
    "ldp q22, q23, [x0, #352]",
    "ldp q24, q25, [x0, #384]",
    "ldp q26, q27, [x0, #416]",
    "ldp q28, q29, [x0, #448]",
    "ldp q30, q31, [x0, #480]",
    "ret",
);

unsafe extern "C" {
    fn __fpsimd_save(v: *mut [u128; 32]);
    fn __fpsimd_restore(v: *const [u128; 32]);
}

/// Writes a vCPU's EL1 context into this CPU's registers (vCPU load).
pub fn restore_el1(ctx: &El1Context) {
    macro_rules! put {
        ($i:expr, $r:literal) => {
            msr!($r, ctx.sys[$i])
        };
    }
    sys_regs!(put);
    // SAFETY: `ctx.v` is a valid, aligned array of 32 quadwords; the routine only loads the
    // FP/SIMD registers from it, which EL2 code never uses.
    unsafe { __fpsimd_restore(&ctx.v) };
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack)) };
}

/// Stops the guest's timers on this CPU (a vCPU that is put must not leave its timer
/// interrupts firing at a CPU that no longer runs it).
pub fn stop_timers() {
    msr!("cntv_ctl_el0", 0);
    msr!("cntp_ctl_el0", 0);
}

/// Whether the guest's EL1 virtual and physical timers assert their interrupt lines now
/// (CNTV_CTL_EL0 / CNTP_CTL_EL0: ENABLE and ISTATUS set, IMASK clear).
pub fn timer_lines() -> (bool, bool) {
    let asserted = |ctl: u64| ctl & 0b111 == 0b101;
    (
        asserted(mrs!("cntv_ctl_el0")),
        asserted(mrs!("cntp_ctl_el0")),
    )
}

/// The EL1 registers exception injection reads and writes.
pub struct El1ExceptionRegs {
    /// VBAR_EL1.
    pub vbar: u64,
    /// SCTLR_EL1.
    pub sctlr: u64,
}

/// Reads VBAR_EL1 and SCTLR_EL1.
pub fn exception_regs() -> El1ExceptionRegs {
    El1ExceptionRegs {
        vbar: mrs!("vbar_el1"),
        sctlr: mrs!("sctlr_el1"),
    }
}

/// Writes the EL1 exception registers of an injected synchronous exception.
pub fn write_exception(elr: u64, spsr: u64, esr: u64, far: Option<u64>) {
    msr!("elr_el1", elr);
    msr!("spsr_el1", spsr);
    msr!("esr_el1", esr);
    if let Some(far) = far {
        msr!("far_el1", far);
    }
}

/// MIDR_EL1 of this CPU.
pub fn midr() -> u64 {
    mrs!("midr_el1")
}

/// PMCR_EL0.N: the number of event counters (0 without a PMU, whose registers would be
/// UNDEFINED: ID_AA64DFR0_EL1.PMUVer is checked first).
pub fn pmu_counters() -> u8 {
    let pmuver = (mrs!("id_aa64dfr0_el1") >> 8) & 0xf;
    if pmuver == 0 || pmuver == 0xf {
        return 0;
    }
    ((mrs!("pmcr_el0") >> 11) & 0x1f) as u8
}

/// Reads the hardware value of an ID register in the op0=3, op1=0, CRn=0, CRm=1..7 space.
/// Encodings the architecture reserves there read as zero without being executed.
pub fn read_id_reg(id: SysRegId) -> u64 {
    macro_rules! ids {
        ($($crm:literal, $op2:literal);* $(;)?) => {
            match (id.crm(), id.op2()) {
                $( ($crm, $op2) => {
                    let v: u64;
                    // SAFETY: reading an ID register at EL2 has no side effect.
                    unsafe {
                        asm!(concat!("mrs {}, S3_0_C0_C", $crm, "_", $op2), out(reg) v,
                             options(nomem, nostack))
                    };
                    v
                } )*
                _ => 0,
            }
        };
    }
    if id.op0() != 3 || id.op1() != 0 || id.crn() != 0 {
        return 0;
    }
    ids!(
        1, 0; 1, 1; 1, 2; 1, 3; 1, 4; 1, 5; 1, 6; 1, 7;
        2, 0; 2, 1; 2, 2; 2, 3; 2, 4; 2, 5; 2, 6; 2, 7;
        3, 0; 3, 1; 3, 2; 3, 4; 3, 5; 3, 6;
        4, 0; 4, 1; 4, 4;
        5, 0; 5, 1; 5, 4; 5, 5;
        6, 0; 6, 1; 6, 2;
        7, 0; 7, 1; 7, 2; 7, 3; 7, 4;
    )
}
