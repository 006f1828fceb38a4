// The EL2 exception vector table (Arm ARM D1.3.1 "Exception vectors"): 16 entries of 0x80 bytes,
// 2 KiB aligned. EL2 itself always runs with DAIF masked, so any exception taken from EL2 is a
// hypervisor bug: the handler saves the general registers into a `TrapFrame` on the current stack
// and calls `el2_unexpected_exception`, which prints a decoded report and stops this CPU.

.equ FRAME_SIZE, 8 * 36    // x0..x30, sp, elr, spsr, esr, far

.macro SAVE_FRAME kind
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    add     x0, sp, #FRAME_SIZE
    stp     x30, x0, [sp, #16 * 15]
    mrs     x0, elr_el2
    mrs     x1, spsr_el2
    stp     x0, x1, [sp, #16 * 16]
    mrs     x0, esr_el2
    mrs     x1, far_el2
    stp     x0, x1, [sp, #16 * 17]
    mov     x0, sp
    mov     x1, #\kind
.endm

// A guest exit: keep the guest's x0/x1, say which vector, and switch back (guest.S).
.macro GUEST_EXIT kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       __guest_exit
.endm

.macro UNEXPECTED kind
    .balign 0x80
    SAVE_FRAME \kind
    bl      el2_unexpected_exception
1:  wfe
    b       1b
.endm

.section .text.vectors, "ax"
.balign 0x800
.global __el2_vectors
__el2_vectors:
    // Current EL with SP_EL0 (never used at EL2).
    UNEXPECTED 0
    UNEXPECTED 1
    UNEXPECTED 2
    UNEXPECTED 3
    // Current EL with SP_EL2: a fault in the hypervisor.
    UNEXPECTED 4
    UNEXPECTED 5
    UNEXPECTED 6
    UNEXPECTED 7
    // Lower EL, AArch64 (a guest's EL1 or EL0): sync, IRQ, FIQ, SError.
    GUEST_EXIT 0
    GUEST_EXIT 1
    GUEST_EXIT 2
    GUEST_EXIT 3
    // Lower EL, AArch32 (a guest's 32-bit EL0): the same exits.
    GUEST_EXIT 0
    GUEST_EXIT 1
    GUEST_EXIT 2
    GUEST_EXIT 3
