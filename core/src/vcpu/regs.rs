//! The guest register state the world switch saves, and the exit snapshot the shell takes.
//!
//! Spec: Arm ARM DDI 0487, C5.2 "SPSR_EL2" (the AArch64 PSTATE layout an exception saves) and
//! D1 "Process state, PSTATE"; Linux `Documentation/arch/arm64/booting.rst` for the state a
//! kernel is entered with.
//!
//! Invariants:
//!
//! * [`GuestRegs`] is `#[repr(C)]` with x0..x30, then PC (ELR_EL2), then PSTATE (SPSR_EL2). The
//!   vector and world-switch assembly in `arch` stores and loads it by offset, so the layout is
//!   fixed by the `GUEST_REGS_*` constants and checked at compile time below. Changing the struct
//!   means changing the assembly.
//! * Register number 31 is the zero register wherever a syndrome names a general-purpose
//!   register (SRT of a data abort, Rt of MSR/MRS): [`GuestRegs::reg`] reads it as 0 and
//!   [`GuestRegs::set_reg`] ignores writes to it. Neither can panic on any number.
//! * Nothing here touches hardware.

use core::mem::{offset_of, size_of};

use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// The AArch64 layout of a saved PSTATE: SPSR_EL2, SPSR_EL1 (DDI 0487 C5.2).
    /// Only the fields exitless reads or writes are named.
    #[allow(missing_docs)]
    pub SPSR_EL2 [
        /// Negative condition flag.
        N OFFSET(31) NUMBITS(1) [],
        /// Zero condition flag.
        Z OFFSET(30) NUMBITS(1) [],
        /// Carry condition flag.
        C OFFSET(29) NUMBITS(1) [],
        /// Overflow condition flag.
        V OFFSET(28) NUMBITS(1) [],
        /// Tag Check Override (FEAT_MTE).
        TCO OFFSET(25) NUMBITS(1) [],
        /// Data Independent Timing (FEAT_DIT).
        DIT OFFSET(24) NUMBITS(1) [],
        /// User Access Override (FEAT_UAO).
        UAO OFFSET(23) NUMBITS(1) [],
        /// Privileged Access Never (FEAT_PAN).
        PAN OFFSET(22) NUMBITS(1) [],
        /// Software Step.
        SS OFFSET(21) NUMBITS(1) [],
        /// Illegal Execution state.
        IL OFFSET(20) NUMBITS(1) [],
        /// Speculative Store Bypass Safe (FEAT_SSBS).
        SSBS OFFSET(12) NUMBITS(1) [],
        /// Branch Type (FEAT_BTI).
        BTYPE OFFSET(10) NUMBITS(2) [],
        /// Debug exception mask.
        D OFFSET(9) NUMBITS(1) [],
        /// SError exception mask.
        A OFFSET(8) NUMBITS(1) [],
        /// IRQ mask.
        I OFFSET(7) NUMBITS(1) [],
        /// FIQ mask.
        F OFFSET(6) NUMBITS(1) [],
        /// M[4]: the exception was taken from AArch32 state (the AArch32 mode is then in M[4:0]).
        M4 OFFSET(4) NUMBITS(1) [],
        /// M[3:0] in AArch64 state: Exception level and stack pointer ("t" = SP_EL0, "h" =
        /// SP_ELx).
        M OFFSET(0) NUMBITS(4) [
            EL0t = 0b0000,
            EL1t = 0b0100,
            EL1h = 0b0101,
            EL2t = 0b1000,
            EL2h = 0b1001
        ]
    ]
}

/// PSTATE.{D,A,I,F} all set: every asynchronous exception and debug exception masked (0x3c0).
pub const PSTATE_DAIF_MASKED: u64 = SPSR_EL2::D::SET.value
    | SPSR_EL2::A::SET.value
    | SPSR_EL2::I::SET.value
    | SPSR_EL2::F::SET.value;

/// EL1 with SP_EL1 and DAIF masked (0x3c5): how Linux wants to be entered, and the PSTATE of
/// every exception exitless injects into EL1.
pub const PSTATE_EL1H_MASKED: u64 = SPSR_EL2::M::EL1h.value | PSTATE_DAIF_MASKED;

/// EL1 with SP_EL0 and DAIF masked (0x3c4).
pub const PSTATE_EL1T_MASKED: u64 = SPSR_EL2::M::EL1t.value | PSTATE_DAIF_MASKED;

/// The register number that names the zero register (XZR/WZR) in SRT and Rt fields.
pub const XZR: u8 = 31;

/// The number of general-purpose registers the world switch saves: x0..x30.
pub const GPR_COUNT: usize = 31;

/// Offset of `x[0]` in [`GuestRegs`]: register `xN` is at `GUEST_REGS_X_OFFSET + 8 * N`.
pub const GUEST_REGS_X_OFFSET: usize = 0;
/// Offset of [`GuestRegs::pc`] (ELR_EL2) in [`GuestRegs`]: 248.
pub const GUEST_REGS_PC_OFFSET: usize = GPR_COUNT * size_of::<u64>();
/// Offset of [`GuestRegs::pstate`] (SPSR_EL2) in [`GuestRegs`]: 256.
pub const GUEST_REGS_PSTATE_OFFSET: usize = GUEST_REGS_PC_OFFSET + size_of::<u64>();
/// Size of [`GuestRegs`]: 264 bytes. Not a multiple of 16: an assembly frame that holds it on
/// the stack must round up.
pub const GUEST_REGS_SIZE: usize = GUEST_REGS_PSTATE_OFFSET + size_of::<u64>();

/// The general registers of a vCPU as the exception vector saves them at a guest exit and the
/// world switch restores them at entry.
///
/// The layout is ABI: the assembly in `arch` addresses the fields through the `GUEST_REGS_*`
/// offsets, which a compile-time assertion ties to this definition.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; GPR_COUNT],
    /// The guest PC: ELR_EL2, the preferred return address of the exit.
    pub pc: u64,
    /// The guest PSTATE: SPSR_EL2.
    pub pstate: u64,
}

// The assembly depends on this layout: fail the build, not the guest, if it ever changes.
const _: () = {
    assert!(offset_of!(GuestRegs, x) == GUEST_REGS_X_OFFSET);
    assert!(offset_of!(GuestRegs, pc) == GUEST_REGS_PC_OFFSET);
    assert!(offset_of!(GuestRegs, pstate) == GUEST_REGS_PSTATE_OFFSET);
    assert!(size_of::<GuestRegs>() == GUEST_REGS_SIZE);
    assert!(GUEST_REGS_PC_OFFSET == 248 && GUEST_REGS_PSTATE_OFFSET == 256);
};

/// SPSR_EL2.M[4]: the guest was in AArch32 state.
const SPSR_NRW: u64 = 1 << 4;
/// SPSR_EL2.T (AArch32): T32 state.
const SPSR_T: u64 = 1 << 5;
/// SPSR_EL2.IT[1:0] at bits 26:25, IT[7:2] at bits 15:10 (AArch32).
const SPSR_IT_LOW_SHIFT: u32 = 25;
const SPSR_IT_HIGH_SHIFT: u32 = 10;
const SPSR_IT_MASK: u64 = (0b11 << SPSR_IT_LOW_SHIFT) | (0x3f << SPSR_IT_HIGH_SHIFT);

impl GuestRegs {
    /// Moves the guest past the trapped instruction it just emulated, `len` bytes long (4, or
    /// 2 for a 16-bit T32 instruction: ESR_EL2.IL), as executing it would have: the PC
    /// advances, and in AArch32 it wraps at 32 bits and, in T32 state, an IT block moves on to
    /// its next instruction (Arm ARM, "ITSTATE advance"; KVM `kvm_skip_instr32`).
    pub fn skip_instruction(&mut self, len: u8) {
        self.pc = self.pc.wrapping_add(u64::from(len));
        if self.pstate & SPSR_NRW == 0 {
            return;
        }
        self.pc &= 0xffff_ffff;
        if self.pstate & SPSR_T == 0 {
            return;
        }
        let it = ((self.pstate >> SPSR_IT_LOW_SHIFT) & 0b11)
            | (((self.pstate >> SPSR_IT_HIGH_SHIFT) & 0x3f) << 2);
        if it == 0 {
            return;
        }
        // The last instruction of the block (IT[2:0] == 0) ends it; otherwise the condition's
        // low bit and the mask shift left.
        let next = if it & 0b111 == 0 {
            0
        } else {
            (it & 0xe0) | ((it << 1) & 0x1f)
        };
        self.pstate = (self.pstate & !SPSR_IT_MASK)
            | ((next & 0b11) << SPSR_IT_LOW_SHIFT)
            | (((next >> 2) & 0x3f) << SPSR_IT_HIGH_SHIFT);
    }

    /// Register `n` as an instruction with a 5-bit register field sees it: `x0`..`x30` for
    /// 0..=30, and 0 for 31 (XZR). Numbers above 31 cannot come from a syndrome; they read as 0
    /// too rather than panic.
    pub fn reg(&self, n: u8) -> u64 {
        self.x.get(usize::from(n)).copied().unwrap_or(0)
    }

    /// Writes register `n`. A write to 31 (XZR), or to any larger number, is discarded.
    pub fn set_reg(&mut self, n: u8, value: u64) {
        if let Some(reg) = self.x.get_mut(usize::from(n)) {
            *reg = value;
        }
    }
}

/// The fault registers the shell snapshots at every guest exit, before anything can overwrite
/// them. [`crate::vcpu::exit::decode`] turns them into an [`crate::vcpu::exit::Exit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// ESR_EL2: the syndrome.
    pub esr: u64,
    /// FAR_EL2: the faulting virtual address of an abort (the guest's VA, not the IPA).
    pub far: u64,
    /// HPFAR_EL2: the faulting IPA of a stage-2 abort, in 4KB units.
    pub hpfar: u64,
}

/// The register state of a vCPU about to enter a kernel image, as Linux `booting.rst` requires
/// of a boot loader for the primary CPU (and PSCI CPU_ON for the others): EL1h with D, A, I and F
/// masked, `x0` = the argument (the DTB address for Linux, the context ID for CPU_ON), `x1`..`x3`
/// = 0 ("reserved for future use"), PC = the entry point. Every other register is 0 too.
///
/// The MMU-off, caches-off state of the EL1 system registers is the shell's business.
pub fn reset_state(entry: u64, x0: u64) -> GuestRegs {
    let mut regs = GuestRegs {
        pc: entry,
        pstate: PSTATE_EL1H_MASKED,
        ..GuestRegs::default()
    };
    regs.set_reg(0, x0);
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pstate_el1h_masked_is_0x3c5() {
        assert_eq!(PSTATE_DAIF_MASKED, 0x3c0);
        assert_eq!(PSTATE_EL1H_MASKED, 0x3c5);
        assert_eq!(PSTATE_EL1T_MASKED, 0x3c4);
    }

    #[test]
    fn layout_matches_the_offsets_the_assembly_uses() {
        let regs = GuestRegs {
            x: core::array::from_fn(|n| n as u64),
            pc: 0x4008_0000,
            pstate: PSTATE_EL1H_MASKED,
        };
        let base = core::ptr::from_ref(&regs).addr();
        assert_eq!(core::ptr::from_ref(&regs.x[30]).addr() - base, 30 * 8);
        assert_eq!(core::ptr::from_ref(&regs.pc).addr() - base, 248);
        assert_eq!(core::ptr::from_ref(&regs.pstate).addr() - base, 256);
        assert_eq!(size_of::<GuestRegs>(), 264);
    }

    #[test]
    fn register_31_reads_zero_and_ignores_writes() {
        let mut regs = GuestRegs {
            x: [u64::MAX; GPR_COUNT],
            ..GuestRegs::default()
        };
        assert_eq!(regs.reg(XZR), 0);
        regs.set_reg(XZR, 0x1234);
        assert_eq!(regs.reg(XZR), 0);
        assert_eq!(regs.x, [u64::MAX; GPR_COUNT]);
    }

    #[test]
    fn registers_0_to_30_read_and_write_x() {
        let mut regs = GuestRegs::default();
        for n in 0..=30u8 {
            regs.set_reg(n, (u64::from(n) << 32) | 0xabc);
        }
        for n in 0..=30u8 {
            assert_eq!(regs.reg(n), (u64::from(n) << 32) | 0xabc);
            assert_eq!(regs.x[usize::from(n)], regs.reg(n));
        }
    }

    #[test]
    fn register_numbers_above_31_never_panic() {
        let mut regs = GuestRegs::default();
        for n in 32..=u8::MAX {
            regs.set_reg(n, 1);
            assert_eq!(regs.reg(n), 0);
        }
        assert_eq!(regs, GuestRegs::default());
    }

    #[test]
    fn reset_state_follows_linux_booting_rst() {
        let regs = reset_state(0x4020_0000, 0x4800_0000);
        assert_eq!(regs.pc, 0x4020_0000);
        assert_eq!(regs.reg(0), 0x4800_0000);
        assert_eq!((regs.reg(1), regs.reg(2), regs.reg(3)), (0, 0, 0));
        assert!(regs.x[1..].iter().all(|&x| x == 0));
        assert_eq!(regs.pstate, PSTATE_EL1H_MASKED);
    }

    #[test]
    fn an_aarch64_instruction_advances_the_pc_by_4() {
        let mut r = reset_state(0x4020_0000, 0);
        r.skip_instruction(4);
        assert_eq!(r.pc, 0x4020_0004);
    }

    #[test]
    fn a_16_bit_t32_instruction_advances_the_pc_by_2_esr_il_0() {
        let mut r = GuestRegs {
            pc: 0x8000,
            pstate: SPSR_NRW | SPSR_T | 0x10,
            ..GuestRegs::default()
        };
        r.skip_instruction(2);
        assert_eq!(r.pc, 0x8002);
        r.skip_instruction(4);
        assert_eq!(r.pc, 0x8006);
    }

    #[test]
    fn an_aarch32_pc_wraps_at_32_bits() {
        let mut r = GuestRegs {
            pc: 0xffff_fffe,
            pstate: SPSR_NRW | SPSR_T,
            ..GuestRegs::default()
        };
        r.skip_instruction(2);
        assert_eq!(r.pc, 0);
    }

    /// ITSTATE as SPSR_EL2 holds it.
    fn with_it(it: u64) -> u64 {
        SPSR_NRW | SPSR_T | ((it & 0b11) << SPSR_IT_LOW_SHIFT) | ((it >> 2) << SPSR_IT_HIGH_SHIFT)
    }

    #[test]
    fn skipping_an_instruction_in_an_it_block_advances_itstate_and_the_last_one_ends_it() {
        // ITTE EQ: firstcond 0b0000, mask for three instructions.
        let mut r = GuestRegs {
            pc: 0x8000,
            pstate: with_it(0b0000_0110),
            ..GuestRegs::default()
        };
        r.skip_instruction(2);
        assert_eq!(r.pstate, with_it(0b0000_1100));
        r.skip_instruction(2);
        assert_eq!(r.pstate, with_it(0b0001_1000));
        r.skip_instruction(2);
        assert_eq!(r.pstate, with_it(0), "the block is over");
    }
}
