// badaccess: makes an access a hypervisor must answer with an abort, from user space in a
// Linux guest (through /dev/mem), so that a test can check that the guest gets the abort (the
// process dies of SIGBUS) and that the hypervisor and the VM go on.
//
//   badaccess unowned   a 32-bit store to IPA 0x0a000000, which no device of the VM owns
//   badaccess ldp       a load pair (LDP, no instruction syndrome: ISV=0) from the
//                       distributor at IPA 0x08000000
//
// Assembled with aarch64-linux-gnu-as and linked static with aarch64-linux-gnu-ld by
// scripts/mk-initramfs.sh (binutils only, no C compiler). Linux arm64 syscall ABI: number in
// x8, arguments in x0..x5, `svc #0`.

.equ SYS_openat, 56
.equ SYS_write, 64
.equ SYS_exit, 93
.equ SYS_mmap, 222
.equ AT_FDCWD, -100
.equ O_RDWR_SYNC, 0x101002
.equ PROT_RW, 3
.equ MAP_SHARED, 1

.text
.global _start
_start:
    ldr     x9, [sp]                // argc
    cmp     x9, #2
    b.lt    usage
    ldr     x10, [sp, #16]          // argv[1]
    ldrb    w19, [x10]              // 'u' (unowned) or 'l' (ldp)
    mov     x0, #AT_FDCWD
    adr     x1, devmem
    ldr     x2, =O_RDWR_SYNC
    mov     x3, #0
    mov     x8, #SYS_openat
    svc     #0
    cmp     x0, #0
    b.lt    fail
    mov     x4, x0                  // fd
    ldr     x5, =0x08000000         // GICD
    cmp     w19, #'u'
    b.ne    1f
    ldr     x5, =0x0a000000         // nothing there
1:  mov     x0, #0
    mov     x1, #4096
    mov     x2, #PROT_RW
    mov     x3, #MAP_SHARED
    mov     x8, #SYS_mmap
    svc     #0
    cmn     x0, #4096               // -4095..-1 are errors
    b.hi    fail
    cmp     w19, #'u'
    b.eq    2f
    ldp     x1, x2, [x0]            // ISV=0 access to an emulated device
    b       3f
2:  mov     w1, #0x55
    str     w1, [x0]                // access to an address nothing owns
3:  adr     x1, notaborted          // only reached if the access was not aborted
    mov     x2, #(notaborted_end - notaborted)
    b       print_exit

usage:
    adr     x1, usagemsg
    mov     x2, #(usagemsg_end - usagemsg)
    b       print_exit
fail:
    adr     x1, failmsg
    mov     x2, #(failmsg_end - failmsg)
print_exit:
    mov     x0, #1
    mov     x8, #SYS_write
    svc     #0
    mov     x0, #1
    mov     x8, #SYS_exit
    svc     #0

devmem:      .asciz "/dev/mem"
usagemsg:    .ascii "usage: badaccess unowned|ldp\n"
usagemsg_end:
failmsg:     .ascii "badaccess: cannot open or map /dev/mem\n"
failmsg_end:
notaborted:  .ascii "badaccess: the access was NOT aborted\n"
notaborted_end:
