// World switch between the hypervisor (EL2) and a guest (EL1/EL0), KVM's __guest_enter done
// small: entering a guest is a function call that returns when the guest exits.
//
//   u64 __guest_enter(GuestRegs *regs)    returns the exit kind: 0 sync, 1 IRQ, 2 FIQ, 3 SError
//
// GuestRegs layout (vcpu/regs.rs, #[repr(C)]): x0..x30 at 0..240, pc at 248, pstate at 256.
// Only the general registers, ELR_EL2 and SPSR_EL2 move here. The guest's EL1 system registers,
// FP/SIMD registers and GIC virtual interface stay in the hardware across exits: exitless runs
// one vCPU per physical CPU and never touches them at EL2 (the target is soft-float), so they are
// saved and restored only when a vCPU is loaded or put (arch/aarch64/vcpu.rs).
//
// While the guest runs, SP_EL2 points at a frame holding the GuestRegs pointer and the host's
// callee-saved registers; the exit path finds everything there.

.equ GUEST_PC, 248

.section .text.guest, "ax"
.global __guest_enter
__guest_enter:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    stp     x0, xzr, [sp, #-16]!        // [sp] = regs
    ldp     x1, x2, [x0, #GUEST_PC]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16 * 1]
    ldp     x4, x5, [x0, #16 * 2]
    ldp     x6, x7, [x0, #16 * 3]
    ldp     x8, x9, [x0, #16 * 4]
    ldp     x10, x11, [x0, #16 * 5]
    ldp     x12, x13, [x0, #16 * 6]
    ldp     x14, x15, [x0, #16 * 7]
    ldp     x16, x17, [x0, #16 * 8]
    ldp     x18, x19, [x0, #16 * 9]
    ldp     x20, x21, [x0, #16 * 10]
    ldp     x22, x23, [x0, #16 * 11]
    ldp     x24, x25, [x0, #16 * 12]
    ldp     x26, x27, [x0, #16 * 13]
    ldp     x28, x29, [x0, #16 * 14]
    ldr     x30, [x0, #16 * 15]
    ldp     x0, x1, [x0, #16 * 0]
    eret
    dsb     nsh                         // no speculation past the eret
    isb

// Entered from the lower-EL vectors with the guest's x0 and x1 pushed and x0 = exit kind.
.global __guest_exit
__guest_exit:
    ldr     x1, [sp, #16]               // regs
    stp     x2, x3, [x1, #16 * 1]
    stp     x4, x5, [x1, #16 * 2]
    stp     x6, x7, [x1, #16 * 3]
    stp     x8, x9, [x1, #16 * 4]
    stp     x10, x11, [x1, #16 * 5]
    stp     x12, x13, [x1, #16 * 6]
    stp     x14, x15, [x1, #16 * 7]
    stp     x16, x17, [x1, #16 * 8]
    stp     x18, x19, [x1, #16 * 9]
    stp     x20, x21, [x1, #16 * 10]
    stp     x22, x23, [x1, #16 * 11]
    stp     x24, x25, [x1, #16 * 12]
    stp     x26, x27, [x1, #16 * 13]
    stp     x28, x29, [x1, #16 * 14]
    str     x30, [x1, #16 * 15]
    ldp     x2, x3, [sp], #16           // the guest's x0, x1
    stp     x2, x3, [x1, #16 * 0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x1, #GUEST_PC]
    add     sp, sp, #16                 // drop the regs slot
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret
