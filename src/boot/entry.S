// exitless entry points: the arm64 Image header, the primary CPU's entry from the boot loader,
// the EL3 -> EL2 drop, and the secondary CPUs' entry (PSCI CPU_ON or spin-table release).
//
// Invariants on leaving this file for Rust:
//   * interrupts (DAIF) are masked, the CPU is at EL2 (or EL1, only to report that EL2 is needed);
//   * the image's R_AARCH64_RELATIVE relocations have been applied for the load address (primary
//     CPU only, exactly once), .bss is zero, SP is the top of this CPU's stack;
//   * VBAR_EL2 points at the EL2 vector table (at EL2).
// Everything runs with the MMU off until Rust builds the EL2 page tables, so every access here is
// naturally aligned (Device-nGnRnE rules), and so is the Rust that runs before (target strict-align).

.equ R_AARCH64_RELATIVE, 1027
.equ SPSR_EL2H_MASKED, 0x3c9          // D, A, I, F masked; EL2h
.equ SCR_EL3_VALUE, 0x5b1             // NS | res1(5:4) | SMD | HCE | RW
.equ SCTLR_EL2_RES1, 0x30c50830       // SCTLR_EL2 RES1 bits (non-VHE), MMU and caches off

.section .text.head, "ax"
.global _start
_start:
    // arm64 Image header (Linux Documentation/arch/arm64/booting.rst).
    b       primary_entry           // code0: branch to the real entry
    .long   0                       // code1
    .quad   0                       // text_offset: load at a 2 MiB aligned base + 0
    .quad   __image_size            // image_size: text + data + bss (what the loader must reserve)
    .quad   0xa                     // flags: little endian, 4 KiB pages, anywhere in memory
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5 (PE header offset; none)

.section .text, "ax"
primary_entry:
    mov     x19, x0                 // x19 = DTB physical address (0 if the loader passed none)
    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2        // x20 = exception level we were started at
    msr     daifset, #0xf
    cmp     x20, #3
    b.ne    1f
    // A loader that starts us at EL3 may start every CPU here at once: only the CPU with
    // affinity 0.0.0.0 goes on; the others park (no release protocol exists for them).
    mrs     x9, mpidr_el1
    and     x9, x9, #0xffffff
    cbnz    x9, 8f
    bl      el3_drop_to_el2         // returns at EL2 with x19, x20 intact
1:
    // Self-relocation: for each R_AARCH64_RELATIVE entry, *(base + offset) = base + addend.
    adrp    x0, _start
    add     x0, x0, :lo12:_start
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
2:  cmp     x1, x2
    b.hs    4f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     w4, #R_AARCH64_RELATIVE
    b.ne    3f                      // the build checks that no other kind exists
    add     x5, x5, x0
    str     x5, [x0, x3]
3:  b       2b
4:
    // Zero .bss (16-byte aligned at both ends, see linker.ld).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
5:  cmp     x1, x2
    b.hs    6f
    stp     xzr, xzr, [x1], #16
    b       5b
6:
    // CPU 0's stack.
    adrp    x1, __boot_stacks
    add     x1, x1, :lo12:__boot_stacks
    mov     x2, #{STACK_SIZE}
    add     sp, x1, x2
    mov     x29, xzr
    mov     x30, xzr
    cmp     x20, #2
    b.ne    7f
    msr     tpidr_el2, xzr          // logical CPU number 0
    adrp    x1, __el2_vectors
    add     x1, x1, :lo12:__el2_vectors
    msr     vbar_el2, x1
    isb
7:
    mov     x0, x19                 // dtb
    mov     x1, x20                 // entry exception level
    adrp    x2, _start
    add     x2, x2, :lo12:_start    // load address
    bl      primary_main
8:  wfe
    b       8b

// Started at EL3 (e.g. an ELF booted by QEMU or a bare loader, no firmware): the minimum for a
// non-secure EL2 and nothing more. Lower ELs run AArch64 (RW), HVC is enabled (HCE), SMC is made
// UNDEFINED (SMD) since no secure monitor will answer it, and no FP/SIMD traps to EL3. The GICv3
// system-register interface is opened to EL2 when the CPU has one.
el3_drop_to_el2:
    mov     x9, #SCR_EL3_VALUE
    msr     scr_el3, x9
    msr     cptr_el3, xzr
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4         // ID_AA64PFR0_EL1.GIC
    cbz     x9, 1f
    mov     x9, #0xf                // ICC_SRE_EL3: Enable | DIB | DFB | SRE
    msr     S3_6_C12_C12_5, x9
    isb
1:  ldr     x9, =SCTLR_EL2_RES1
    msr     sctlr_el2, x9
    mov     x9, #SPSR_EL2H_MASKED
    msr     spsr_el3, x9
    msr     elr_el3, x30
    isb
    eret

// Secondary CPUs enter here at EL2 with the MMU off, from PSCI CPU_ON or a spin-table release.
// The primary CPU filled `SECONDARY_BOOT` (see boot/secondary.rs) and cleaned it to the point of
// coherency before releasing this CPU, and releases one CPU at a time.
.global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    adrp    x9, SECONDARY_BOOT
    add     x9, x9, :lo12:SECONDARY_BOOT
    ldp     x10, x11, [x9, #0]      // stack top, logical CPU number
    ldp     x12, x13, [x9, #16]     // MAIR_EL2, TCR_EL2
    ldp     x14, x15, [x9, #32]     // TTBR0_EL2, SCTLR_EL2
    mov     sp, x10
    mov     x29, xzr
    mov     x30, xzr
    msr     tpidr_el2, x11
    adrp    x1, __el2_vectors
    add     x1, x1, :lo12:__el2_vectors
    msr     vbar_el2, x1
    msr     mair_el2, x12
    msr     tcr_el2, x13
    msr     ttbr0_el2, x14
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x15
    isb
    ic      iallu
    dsb     nsh
    isb
    mov     x0, x11
    bl      secondary_main
9:  wfe
    b       9b

.section .bss.stacks, "aw", %nobits
.balign 4096
.global __boot_stacks
__boot_stacks:
    .space {STACK_SIZE} * {MAX_CPUS}
.global __boot_stacks_end
__boot_stacks_end:
