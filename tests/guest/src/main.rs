//! exitless-guest: a bare-metal AArch64 EL1 program that checks the GIC the way a guest sees it
//! and measures what interrupts cost, natively on QEMU virt and as a VM under exitless.
//!
//! It learns the machine from the DTB in x0 ([`dt`]), brings its secondaries up with PSCI
//! CPU_ON ([`rt`]), runs the conformance cases ([`cases`]) and prints them as TAP, or with
//! `exitless.bench` on the command line runs the benchmarks ([`bench`]); then it asks PSCI
//! SYSTEM_OFF, which ends the QEMU run (natively) or the VM and the machine (under exitless).
//! scripts/guest-tests.py and scripts/bench.py drive it.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
// Loops over register and CPU numbers index several parallel tables; ranges read like the spec.
#![allow(clippy::needless_range_loop)]

mod bench;
mod cases;
mod dt;
mod gic;
mod hostile;
mod hw;
mod its;
mod pci;
mod rt;
mod tap;

use core::arch::global_asm;

use rt::{STACK_SIZE, STACKS};

// Entry points and EL1 vectors. The primary CPU enters `_start` with x0 = DTB; secondaries
// enter `secondary_entry` through PSCI CPU_ON with x0 = their CPU index (the context ID).
// Every vector saves x0..x30, ELR and SPSR in a frame on the stack ([`rt::Frame`]), so that
// handlers may unmask interrupts and nest.
global_asm!(
    r#"
// sp = STACKS + (index + 1) * STACK_SIZE
.macro STACK index
    adrp x1, {stacks}
    add x1, x1, :lo12:{stacks}
    mov x2, #{stack_size}
    add x3, \index, #1
    madd x1, x3, x2, x1
    mov sp, x1
.endm

// Started at EL2 (QEMU virt with virtualization=on, which gic-version=4 requires): become a
// plain EL1 program. EL1 is AArch64, nothing is trapped or routed to EL2 (HCR_EL2.IMO/FMO = 0,
// no stage 2), EL1 reaches the counters, timers, FP/SIMD and (if implemented) the GICv3
// system registers. Uses x9 only.
.macro LEAVE_EL2
    mrs x9, CurrentEL
    cmp x9, #(2 << 2)
    b.ne 9f
    mov x9, #(1 << 31)
    msr hcr_el2, x9
    mrs x9, id_aa64pfr0_el1
    ubfx x9, x9, #24, #4
    cbz x9, 8f
    mrs x9, icc_sre_el2
    orr x9, x9, #0x1
    orr x9, x9, #0x8
    msr icc_sre_el2, x9
    isb
8:  mov x9, #0x3
    msr cnthctl_el2, x9
    msr cntvoff_el2, xzr
    mov x9, #0x33ff
    msr cptr_el2, x9
    msr mdcr_el2, xzr
    adrp x9, el2_vectors
    add x9, x9, :lo12:el2_vectors
    msr vbar_el2, x9
    mov x9, #0x3c5
    msr spsr_el2, x9
    adr x9, 9f
    msr elr_el2, x9
    eret
9:
.endm

.section .text.boot, "ax"
.global _start
_start:
    msr daifset, #0xf
    mov x19, x0
    LEAVE_EL2
    adrp x1, __bss_start
    add x1, x1, :lo12:__bss_start
    adrp x2, __bss_end
    add x2, x2, :lo12:__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  mov x20, #0
    STACK x20
    adrp x1, vectors
    add x1, x1, :lo12:vectors
    msr vbar_el1, x1
    msr tpidr_el1, xzr
    isb
    mov x0, x19
    bl {primary}
3:  wfi
    b 3b

.global secondary_entry
secondary_entry:
    msr daifset, #0xf
    mov x19, x0
    LEAVE_EL2
    STACK x19
    adrp x1, vectors
    add x1, x1, :lo12:vectors
    msr vbar_el1, x1
    msr tpidr_el1, x19
    isb
    mov x0, x19
    bl {secondary}
4:  wfi
    b 4b

.macro VECTOR kind
    .balign 0x80
    sub sp, sp, #272
    stp x0, x1, [sp, #0]
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    mrs x0, elr_el1
    mrs x1, spsr_el1
    stp x30, x0, [sp, #240]
    str x1, [sp, #256]
    mov x0, sp
    mov x1, #\kind
    bl {handler}
    b exception_return
.endm

.balign 2048
.global vectors
vectors:
    VECTOR 0x10
    VECTOR 0x11
    VECTOR 0x12
    VECTOR 0x13
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 0x20
    VECTOR 0x21
    VECTOR 0x22
    VECTOR 0x23
    VECTOR 0x30
    VECTOR 0x31
    VECTOR 0x32
    VECTOR 0x33

// EL2, after LEAVE_EL2: nothing is routed here, but an HVC from EL1 would arrive (the
// guest uses the DTB's conduit, SMC in that case). Any synchronous exception from EL1 answers
// SMCCC NOT_SUPPORTED (x0 = -1) and returns after the instruction; anything else stops here.
.balign 2048
el2_vectors:
    .rept 8
    .balign 0x80
    b .
    .endr
    .balign 0x80
    mov x0, #-1
    eret
    .rept 7
    .balign 0x80
    b .
    .endr

exception_return:
    ldr x1, [sp, #256]
    ldp x30, x0, [sp, #240]
    msr elr_el1, x0
    msr spsr_el1, x1
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    add sp, sp, #272
    eret
"#,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    primary = sym rt::primary_main,
    secondary = sym rt::secondary_main,
    handler = sym rt::exception,
);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("Bail out! guest panic on CPU {}: {}", hw::cpu(), info);
    rt::system_off()
}
