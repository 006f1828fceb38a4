//! The hostile guest (`exitless.hostile[=WRITES,OPS]` on the command line): a VM that does, for
//! a bounded number of operations, what a guest can do to a hypervisor. scripts/guest-tests.py
//! runs it beside a victim VM (the conformance cases) and checks that exitless stays up, that its
//! heap stays under the bound it prints, and that the victim's cases still pass (issue 10).
//!
//! 1. OPS random operations on every vCPU at once (while the victim runs its cases): MMIO of
//!    every width, aligned or not, to the distributor, every redistributor frame (also those
//!    of vCPUs that are off), the ITS (its queue pointed at random guest memory: random
//!    commands), the UART and unmapped space; loads and stores that give no
//!    syndrome (ISV = 0: LDP/STP, writeback); HVC and SMC with random function IDs, immediates
//!    and arguments; random system-register reads, and writes of the registers that trap or
//!    drive interrupts (ICC_*, the timers, ID, IMPLEMENTATION DEFINED and ACTLR encodings); SGI
//!    floods; WFI storms; CPU_OFF/CPU_ON churn. Each vCPU then puts its own GIC state back.
//!    vCPU 0, and a vCPU that finished, wake the ones asleep in a WFI storm (`wfi-rescued`):
//!    another vCPU's write can block the storm's interrupt just before its WFI, a guest-side
//!    race. vCPU 0 makes no WFI storms: it is the one that brings back vCPUs that went off, so
//!    a vCPU that blocked its path and then went off would leave it asleep for good.
//! 2. The redistributor sequence: vCPU 1 takes its virtual timer interrupt (linked to the
//!    physical one by exitless), goes off with PSCI CPU_OFF; vCPU 0 writes GICR_ISACTIVER0,
//!    GICR_ISPENDR0, GICR_ICPENDR0 and GICR_ICACTIVER0 of vCPU 1's frame WRITES times in turn;
//!    vCPU 1 comes back with CPU_ON and its timer must fire again, three times.
//!
//! It means something only under exitless (natively there is nothing to attack). Every
//! synchronous exception (the aborts and UNDEFs exitless injects or the CPU raises) is counted
//! and skipped; interrupts are taken and silenced at their source. Not attempted, because they
//! would only break the attacker itself: writes to its own RAM, to the EL1 translation and
//! control registers, and the PSCI calls that end or suspend it (SYSTEM_OFF/RESET, CPU_SUSPEND).
//! Output: `hostile: ...` lines, ending with `hostile: done` (then PSCI SYSTEM_OFF).

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

use crate::dt::MAX_CPUS;
use crate::gic::{self, Version};
use crate::hw::{self, msr};
use crate::rt::{self, CPUS, gic, platform};
use crate::{cases, println};

/// Set while the attack runs: the exception handler then counts and skips instead of bailing out.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Default WRITES and OPS.
const WRITES: u64 = 1_000_000;
const OPS: u64 = 100_000;

/// What a vCPU did (and had done to it), counted.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Kind {
    Gicd,
    Gicr,
    Its,
    Uart,
    Unmapped,
    NoSyndrome,
    Smccc,
    SysRegRead,
    SysRegWrite,
    SgiFlood,
    WfiStorm,
    WfiBlocked,
    WfiRescued,
    CpuOn,
    CpuOff,
    Abort,
    Undef,
    OtherException,
    Irq,
}
const KINDS: usize = 19;
const NAMES: [&str; KINDS] = [
    "gicd",
    "gicr",
    "its",
    "uart",
    "unmapped",
    "no-syndrome",
    "hvc/smc",
    "sysreg-read",
    "sysreg-write",
    "sgi-flood",
    "wfi-storm",
    "wfi-blocked",
    "wfi-rescued",
    "cpu-on",
    "cpu-off",
    "aborts",
    "undefs",
    "other-exceptions",
    "irqs",
];

static COUNT: [[AtomicU64; KINDS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; KINDS] }; MAX_CPUS];
/// Operations left per vCPU, its generator state, and whether it finished (kept across CPU_OFF).
static LEFT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SEED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DONE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn count(k: Kind) {
    COUNT[hw::cpu()][k as usize].fetch_add(1, Relaxed);
}

/// Called by the exception handler while [`ACTIVE`]: counts a synchronous exception; true to
/// skip the instruction. An instruction abort (a jump to nowhere) is not skipped: it would loop.
pub fn tolerate(esr: u64) -> bool {
    match esr >> 26 {
        0x25 | 0x24 => count(Kind::Abort),
        0x00 => count(Kind::Undef),
        0x20 | 0x21 => return false,
        _ => count(Kind::OtherException),
    }
    true
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs both phases, prints the summary; the caller then powers the VM off.
pub fn run(writes: u64, ops: u64) {
    let writes = if writes == 0 { WRITES } else { writes };
    let ops = if ops == 0 { OPS } else { ops };
    if !cases::virt() {
        println!("hostile: not under exitless, nothing to attack");
        return;
    }
    let g = gic();
    println!(
        "hostile: {} vCPUs, gicv{}, {writes} redistributor writes, {ops} random operations per vCPU",
        g.cpu_count,
        if g.version == Version::V3 { 3 } else { 2 }
    );
    // The random phase first, while the victim runs its cases beside it.
    ACTIVE.store(true, SeqCst);
    let t0 = hw::now();
    let finished = fuzz(ops);
    let secs = (hw::now() - t0) / hw::freq();
    ACTIVE.store(false, SeqCst);
    g.dist_init();
    restore_cpu();
    // The UART may have been reprogrammed: make it transmit again (PL011 UARTCR: UARTEN, TXE,
    // RXE; UARTLCR_H: 8 bits, FIFOs; no interrupts).
    let uart = platform().uart;
    hw::write32(uart + 0x38, 0);
    hw::write32(uart + 0x2c, 0x70);
    hw::write32(uart + 0x30, 0x301);
    let mut total = [0u64; KINDS];
    for c in 0..g.cpu_count {
        for k in 0..KINDS {
            total[k] += COUNT[c][k].load(SeqCst);
        }
    }
    crate::print!("hostile: random phase took {secs} s:");
    for k in 0..KINDS {
        crate::print!(" {}={}", NAMES[k], total[k]);
    }
    println!();
    let seq = redistributor_sequence(writes);
    println!(
        "hostile: {} redistributor sequence, {} random phase",
        if seq { "ok" } else { "FAILED" },
        match (finished, STORMED.load(SeqCst)) {
            (true, false) => "ok",
            (false, _) => "FAILED (a vCPU did not finish)",
            (true, true) => "FAILED (an interrupt storm)",
        }
    );
    println!("hostile: done");
}

// ---------------------------------------------------------------------------------------------
// Phase 1

/// On the calling vCPU: enables its virtual timer PPI, arms the timer 1 ms ahead and waits for
/// the interrupt (the runtime's handler silences it); 1 if it came.
fn timer_tick(_: u64) -> u64 {
    let g = gic();
    let c = hw::cpu();
    let vt = platform().vtimer;
    let me = rt::me();
    me.clear();
    g.set_priority(c, vt, 0x80);
    g.enable(c, vt);
    msr!("cntv_cval_el0", hw::now() + hw::us(1000));
    msr!("cntv_ctl_el0", 1);
    hw::irq_enable();
    let ok = hw::wait_until(cases::pos(), || me.times_seen(vt) > 0);
    msr!("cntv_ctl_el0", 0);
    ok as u64
}

fn redistributor_sequence(writes: u64) -> bool {
    let g = gic();
    if g.version != Version::V3 || g.cpu_count < 2 {
        println!("hostile: redistributor sequence skipped (needs a vGICv3 and 2 vCPUs)");
        return true;
    }
    let fired = rt::run_on(1, timer_tick, 0) == Some(1);
    rt::post(1, rt::cpu_off_job, 0);
    let off = hw::wait_other(cases::pos(), || rt::affinity_info(1) == 1);
    let frame = g.gicr[1] + gic::SGI_BASE;
    let bit = 1u32 << platform().vtimer;
    let regs = [
        gic::GICD_ISACTIVER,
        gic::GICD_ISPENDR,
        gic::GICD_ICPENDR,
        gic::GICD_ICACTIVER,
    ];
    let t0 = hw::now();
    for i in 0..writes {
        hw::write32(frame + regs[(i % 4) as usize], bit);
    }
    hw::write32(frame + gic::GICD_ICPENDR, bit);
    hw::write32(frame + gic::GICD_ICACTIVER, bit);
    let ms = (hw::now() - t0) * 1000 / hw::freq();
    let on = rt::cpu_on(1);
    let up = hw::wait_other(cases::pos(), || CPUS[1].online.load(SeqCst));
    let mut ticks = 0;
    for _ in 0..3 {
        if rt::run_on(1, timer_tick, 0) == Some(1) {
            ticks += 1;
        }
    }
    println!(
        "hostile: redistributor sequence: vCPU 1 took its timer interrupt: {fired}; CPU_OFF: {off}; \
         {writes} writes to its GICR_ISACTIVER0/ISPENDR0/ICPENDR0/ICACTIVER0 in {ms} ms; \
         CPU_ON: {on}; its timer fired {ticks} of 3 times after"
    );
    fired && off && on == 0 && up && ticks == 3
}

// ---------------------------------------------------------------------------------------------
// Phase 2

/// The interrupt hook while the attack runs: silences what may stay asserted (both timers, the
/// UART's interrupt mask), and lets the handler complete the interrupt.
fn silence(iar: u32) -> bool {
    msr!("cntv_ctl_el0", 0);
    msr!("cntp_ctl_el0", 0);
    hw::write32(platform().uart + 0x38, 0);
    count(Kind::Irq);
    let c = hw::cpu();
    let n = STORM[c].fetch_add(1, Relaxed);
    if n == STORM_LIMIT {
        // Everything that can stay asserted was silenced above: an interrupt that keeps coming
        // is one exitless keeps presenting.
        STORMED.store(true, SeqCst);
        println!(
            "hostile: CPU {c}: interrupt storm: IAR {iar:#x} taken {n} times in one operation"
        );
    }
    false
}

/// Interrupts taken during one operation (reset before each), and the most that is not a storm.
static STORM: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
const STORM_LIMIT: u64 = 100_000;
static STORMED: AtomicBool = AtomicBool::new(false);

/// The random phase: every vCPU runs [`fuzz_job`] until its operations are done; vCPU 0 also
/// brings back the vCPUs that went off. True if all finished within the time limit.
fn fuzz(ops: u64) -> bool {
    let n = gic().cpu_count;
    for c in 0..n {
        LEFT[c].store(ops, SeqCst);
        SEED[c].store(
            0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1),
            SeqCst,
        );
        DONE[c].store(false, SeqCst);
    }
    for c in 1..n {
        rt::post(c, fuzz_job, 0);
    }
    fuzz_job(0);
    // Generous: the operations take seconds under QEMU's TCG; a vCPU that exitless lost would
    // never finish.
    let end = hw::now() + hw::us(600_000_000);
    while hw::now() < end {
        let mut all = true;
        for c in 1..n {
            if !DONE[c].load(SeqCst) {
                all = false;
                revive(c);
            }
        }
        if all {
            return true;
        }
        rescue_sleepers();
        hw::delay(hw::us(1000));
    }
    false
}

/// CPU_ON of vCPU `c` with the attack as its job, if it is off and not finished.
fn revive(c: usize) {
    if !DONE[c].load(SeqCst) && rt::affinity_info(c) == 1 {
        let p = &CPUS[c];
        p.arg.store(0, SeqCst);
        p.job.store(fuzz_job as rt::Job as usize, SeqCst);
        rt::cpu_on(c);
        count(Kind::CpuOn);
    }
}

fn fuzz_job(_: u64) -> u64 {
    let c = hw::cpu();
    rt::set_hook(c, Some(silence));
    hw::irq_enable();
    let mut rng = Rng(SEED[c].load(SeqCst));
    // Resuming after CPU_OFF: step past the state that chose it, or it would be chosen again.
    rng.next();
    while LEFT[c].load(SeqCst) > 0 {
        LEFT[c].fetch_sub(1, SeqCst);
        SEED[c].store(rng.0, SeqCst);
        STORM[c].store(0, Relaxed);
        one(c, &mut rng);
        if c == 0 && LEFT[0].load(Relaxed).is_multiple_of(256) {
            rescue_sleepers();
        }
    }
    hw::irq_disable();
    rt::set_hook(c, None);
    restore_cpu();
    DONE[c].store(true, SeqCst);
    // vCPU 0 rescues the others while it waits for them ([`fuzz`]); the others rescue vCPU 0.
    while c != 0 && !DONE[0].load(SeqCst) {
        rescue_sleepers();
        hw::delay(hw::us(1000));
    }
    0
}

/// Set while a vCPU sleeps in a WFI storm.
static IN_WFI: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// For each vCPU in a WFI storm: undoes from outside what other vCPUs' random writes may have
/// done to its virtual timer interrupt's path (the distributor's enables; on GICv3 its
/// redistributor's wake state, and the PPI's group, enable, active state and priority). Each
/// write that changes the sleeper's state makes exitless kick it, which ends its WFI; on GICv2
/// the PPI's state is banked and out of reach, but then only GICD_CTLR could have blocked it.
fn rescue_sleepers() {
    let g = gic();
    let vt = platform().vtimer;
    for t in 0..g.cpu_count {
        if t == hw::cpu() || !IN_WFI[t].load(SeqCst) {
            continue;
        }
        count(Kind::WfiRescued);
        match g.version {
            Version::V3 => {
                hw::write32(g.d(gic::GICD_CTLR), (1 << 4) | 0b10);
                let rd = g.gicr[t];
                hw::write32(rd + gic::GICR_WAKER, 0);
                let frame = rd + gic::SGI_BASE;
                hw::write32(frame + gic::GICD_IGROUPR, 0xffff_ffff);
                hw::write32(frame + gic::GICD_ICACTIVER, 1 << vt);
                g.set_priority(t, vt, 0);
                hw::write32(frame + gic::GICD_ISENABLER, 1 << vt);
            }
            Version::V2 => hw::write32(g.d(gic::GICD_CTLR), 0b11),
        }
    }
}

/// Puts this vCPU's side of its GIC and its timers back as the runtime set them up (interface
/// on, priority mask open, EOImode 0, no active priorities, the doorbell enabled), so that the
/// runtime's mailboxes work again after the random phase.
fn restore_cpu() {
    let g = gic();
    let c = hw::cpu();
    msr!("cntv_ctl_el0", 0);
    msr!("cntp_ctl_el0", 0);
    g.cpu_init();
    clear_active_priorities();
    rt::me().split.store(false, SeqCst);
    g.set_priority(c, rt::DOORBELL, 0x40);
    g.enable(c, rt::DOORBELL);
}

fn one(c: usize, rng: &mut Rng) {
    let g = gic();
    let p = platform();
    match rng.below(100) {
        0..20 => {
            count(Kind::Gicd);
            mmio(g.gicd + rng.below(0x1_0000) as usize, rng);
        }
        35..40 if platform().its != 0 => {
            count(Kind::Its);
            its_attack(platform().its, rng);
        }
        20..40 => {
            count(Kind::Gicr);
            if g.version == Version::V3 {
                mmio(
                    g.gicr[0] + rng.below(g.frames as u64 * 0x2_0000) as usize,
                    rng,
                );
            } else {
                mmio(g.gicc + rng.below(0x2000) as usize, rng);
            }
        }
        40..45 => {
            count(Kind::Uart);
            // Not the data register: the log is the test's evidence.
            let off = 4 + rng.below(0x1000 - 4) as usize;
            mmio(p.uart + off, rng);
        }
        45..55 => {
            count(Kind::Unmapped);
            mmio(unmapped(rng), rng);
        }
        55..60 => {
            count(Kind::NoSyndrome);
            let a = match rng.below(4) {
                0 => g.gicd + rng.below(0x1_0000) as usize,
                1 => g.gicr[0] + rng.below(0x2_0000) as usize,
                2 => p.uart + 8 + rng.below(0x1000 - 8) as usize,
                _ => unmapped(rng),
            };
            no_syndrome(a & !7, rng);
        }
        60..72 => {
            count(Kind::Smccc);
            smccc(rng);
        }
        72..80 => {
            count(Kind::SysRegRead);
            sysreg_read(rng);
        }
        80..90 => {
            count(Kind::SysRegWrite);
            sysreg_write(rng);
        }
        90..93 => {
            count(Kind::SgiFlood);
            for _ in 0..16 {
                if g.version == Version::V3 {
                    g.sgi1r(rng.next() & !(0xff << 56) | 1 << 40);
                } else {
                    hw::write32(g.d(gic::GICD_SGIR), (1 << 24) | rng.below(16) as u32);
                }
            }
        }
        // Not on vCPU 0: it alone brings back the vCPUs that went off, so nobody could wake it
        // from a WFI whose interrupt another vCPU blocked just before going off (the attacker
        // itself would then hang, natively too: the vCPU waits in WFI with IRQs masked and
        // nothing pending). The other vCPUs' storms are ended by vCPU 0 ([`rescue_sleepers`]).
        93..95 if c != 0 => {
            count(Kind::WfiStorm);
            hw::irq_disable();
            wake_path(c);
            msr!("cntv_cval_el0", hw::now());
            msr!("cntv_ctl_el0", 1);
            // WFI is not trapped: the vCPU sleeps in hardware until the timer's interrupt is
            // presented. The other vCPU's random writes may make that interrupt active,
            // disabled or not pending in this vCPU's redistributor (an architected way to
            // block it; the change kicks this vCPU, which ends a WFI), so each WFI is made only
            // while the interrupt is presented (HPPIR), and a blocked storm just ends.
            // The check and the WFI cannot be one step: another vCPU's write may land between
            // them, and its kick then comes before the WFI, which sleeps with nothing to wake
            // it (natively too). So while this vCPU is in the loop, the vCPUs that finished
            // their operations reopen its path from outside ([`rescue_sleepers`]).
            let vt = platform().vtimer;
            let mut slept = 0;
            if hw::wait_until(hw::us(100_000), || g.hppir() & 0xff_ffff == vt) {
                IN_WFI[c].store(true, SeqCst);
                while slept < 16 && g.hppir() & 0xff_ffff == vt {
                    hw::wfi();
                    slept += 1;
                }
                IN_WFI[c].store(false, SeqCst);
            }
            if slept < 16 {
                count(Kind::WfiBlocked);
            }
            msr!("cntv_ctl_el0", 0);
            hw::irq_enable();
        }
        95..97 => {
            let n = g.cpu_count;
            let t = rng.below(n as u64) as usize;
            if t != c {
                revive(t);
            }
        }
        97 if c != 0 => {
            count(Kind::CpuOff);
            rt::set_hook(c, None);
            rt::cpu_off_job(0);
        }
        _ => {
            // The same register again and again: a vCPU's redistributor writes in a burst.
            let t = rng.below(g.cpu_count as u64) as usize;
            count(Kind::Gicr);
            let base = g.irq_base(t, 0);
            for _ in 0..64 {
                let r = [
                    gic::GICD_ISACTIVER,
                    gic::GICD_ISPENDR,
                    gic::GICD_ICPENDR,
                    gic::GICD_ICACTIVER,
                ][rng.below(4) as usize];
                hw::write32(base + r, rng.next() as u32);
            }
        }
    }
}

/// Undoes what the random writes may have done to this vCPU's own path for its virtual timer
/// interrupt (distributor, redistributor, CPU interface, the PPI's state and priority, active
/// priorities), so that a WFI storm, woken by that interrupt, ends.
fn wake_path(c: usize) {
    let g = gic();
    let vt = platform().vtimer;
    g.dist_init();
    g.cpu_init();
    let base = g.irq_base(c, vt);
    hw::write32(base + gic::GICD_ICPENDR, 1 << vt);
    hw::write32(base + gic::GICD_ICACTIVER, 1 << vt);
    g.set_priority(c, vt, 0);
    g.enable(c, vt);
    clear_active_priorities();
}

/// Clears the active priorities of both groups: a random read of ICC_IAR0_EL1/ICC_IAR1_EL1
/// (or GICC_IAR) acknowledges an interrupt that is then never completed, and its priority would
/// keep every interrupt of the same or lower priority (the timer's too) from being signalled.
fn clear_active_priorities() {
    let g = gic();
    match g.version {
        Version::V3 => {
            msr!("icc_ap1r0_el1", 0);
            msr!("s3_0_c12_c8_4", 0); // ICC_AP0R0_EL1
        }
        Version::V2 => {
            hw::write32(g.gicc + 0xd0, 0); // GICC_APR0
            hw::write32(g.gicc + 0xe0, 0); // GICC_NSAPR0
        }
    }
}

/// An access to the VM's ITS: any register at random, or its command queue pointed at this
/// guest's own RAM (its code and data then read as commands: random ones, bad IDs, huge MAPD
/// sizes, table addresses anywhere) and its GITS_CWRITER moved anywhere.
fn its_attack(its: usize, rng: &mut Rng) {
    match rng.below(4) {
        0 | 1 => mmio(its + rng.below(0x2_0000) as usize, rng),
        2 => {
            hw::write32(its, 0);
            let page = (0x4000_0000 + rng.below(0x100_0000)) & !0xfff;
            hw::write64(its + 0x80, 1 << 63 | page | rng.below(16));
            hw::write32(its, 1);
        }
        _ => hw::write64(its + 0x88, rng.next() & 0xf_ffe0),
    }
}

/// An address no device of the VM owns: the first GiB (device memory in the guest's map) or
/// above 2 GiB (normal memory there; the VM's RAM, at 1 GiB, is smaller than 1 GiB).
fn unmapped(rng: &mut Rng) -> usize {
    if rng.below(2) == 0 {
        rng.below(0x4000_0000) as usize
    } else {
        0x8000_0000 + rng.below(0x8000_0000) as usize
    }
}

/// One random access at `addr`: read or write, 1, 2, 4 or 8 bytes, aligned 15 times in 16.
fn mmio(addr: usize, rng: &mut Rng) {
    let w = 1usize << rng.below(4);
    let a = if rng.below(16) == 0 {
        addr
    } else {
        addr & !(w - 1)
    };
    let v = rng.next();
    let write = rng.below(2) == 0;
    // SAFETY: `a` is a device register of this VM or an address exitless answers with an abort,
    // never this guest's RAM; a fault is counted and skipped by the exception handler.
    unsafe {
        match (w, write) {
            (1, false) => {
                asm!("ldrb {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack))
            }
            (1, true) => asm!("strb {v:w}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack)),
            (2, false) => {
                asm!("ldrh {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack))
            }
            (2, true) => asm!("strh {v:w}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack)),
            (4, false) => asm!("ldr {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack)),
            (4, true) => asm!("str {v:w}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack)),
            (_, false) => asm!("ldr {v}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack)),
            (_, true) => asm!("str {v}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack)),
        }
    }
}

/// An access whose syndrome the CPU does not describe (ISV = 0): a pair, or a writeback form.
fn no_syndrome(a: usize, rng: &mut Rng) {
    let v = rng.next();
    // SAFETY: as in `mmio`.
    unsafe {
        match rng.below(4) {
            0 => {
                asm!("ldp {x}, {y}, [{a}]", a = in(reg) a, x = out(reg) _, y = out(reg) _, options(nostack))
            }
            1 => asm!("stp {v}, {v}, [{a}]", a = in(reg) a, v = in(reg) v, options(nostack)),
            2 => {
                asm!("ldr {x}, [{a}], #8", a = inout(reg) a => _, x = out(reg) _, options(nostack))
            }
            _ => {
                asm!("str {v:w}, [{a}, #4]!", a = inout(reg) a => _, v = in(reg) v, options(nostack))
            }
        }
    }
}

/// HVC or SMC with a random function ID (a third of them in PSCI's range, a third in exitless's
/// vendor range), random arguments, and now and then a random immediate. PSCI calls that would
/// end or suspend the attacker become PSCI_VERSION; CPU_ON gets an MPIDR that matches no vCPU.
fn smccc(rng: &mut Rng) {
    let mut f = rng.next() as u32;
    match rng.below(3) {
        0 => f = 0x8400_0000 | (f & 0x4000_001f),
        1 => f = 0x8600_0000 | (f & 0x4000_ffff),
        _ => {}
    }
    let mut a1 = rng.next();
    if (f >> 24) & 0x3f == 4 {
        match f & 0xffff {
            0 | 4 | 6 | 7 | 0xa | 0x10 | 0x11 => {}
            3 => a1 |= 1 << 40,
            _ => f = rt::PSCI_VERSION,
        }
    }
    let (a2, a3) = (rng.next(), rng.next());
    let imm = if rng.below(8) == 0 {
        rng.below(0x1_0000) as u32
    } else {
        0
    };
    let insn = if rng.below(2) == 0 {
        0xd400_0002
    } else {
        0xd400_0003
    } | imm << 5;
    exec(insn, [f as u64, a1, a2, a3]);
}

/// A system-register read at a random encoding (op0 2 or 3, the EL1 ones and the IMPLEMENTATION
/// DEFINED space mostly): traps, UNDEFs and plain reads alike.
fn sysreg_read(rng: &mut Rng) {
    let op0 = 2 + rng.below(2) as u32;
    let op1 = [0, 0, 0, 3, 3, rng.below(8)][rng.below(6) as usize] as u32;
    let crn = [0, 0, 11, 12, 12, 14, 15, 9, rng.below(16)][rng.below(9) as usize] as u32;
    let (crm, op2) = (rng.below(16) as u32, rng.below(8) as u32);
    let insn = 0xd520_0000 | op0 << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5;
    exec(insn, [0; 4]);
}

/// A system-register write with a random value to an encoding that traps or drives interrupts:
/// the GIC CPU interface (SGI generation, EOI, DIR, PMR, BPR, CTLR, active priorities, group
/// enables, SRE), the EL1 timers, the ID registers, ACTLR_EL1, the PMU and the IMPLEMENTATION
/// DEFINED space.
fn sysreg_write(rng: &mut Rng) {
    const FIXED: [(u32, u32, u32, u32, u32); 19] = [
        (3, 0, 12, 11, 5), // ICC_SGI1R_EL1
        (3, 0, 12, 11, 6), // ICC_ASGI1R_EL1
        (3, 0, 12, 11, 7), // ICC_SGI0R_EL1
        (3, 0, 12, 11, 1), // ICC_DIR_EL1
        (3, 0, 12, 12, 1), // ICC_EOIR1_EL1
        (3, 0, 12, 8, 1),  // ICC_EOIR0_EL1
        (3, 0, 4, 6, 0),   // ICC_PMR_EL1
        (3, 0, 12, 12, 3), // ICC_BPR1_EL1
        (3, 0, 12, 12, 4), // ICC_CTLR_EL1
        (3, 0, 12, 9, 0),  // ICC_AP1R0_EL1
        (3, 0, 12, 12, 7), // ICC_IGRPEN1_EL1
        (3, 0, 12, 12, 6), // ICC_IGRPEN0_EL1
        (3, 0, 12, 12, 5), // ICC_SRE_EL1
        (3, 3, 14, 3, 1),  // CNTV_CTL_EL0
        (3, 3, 14, 3, 2),  // CNTV_CVAL_EL0
        (3, 3, 14, 3, 0),  // CNTV_TVAL_EL0
        (3, 3, 14, 2, 1),  // CNTP_CTL_EL0
        (3, 3, 14, 2, 2),  // CNTP_CVAL_EL0
        (3, 0, 1, 0, 1),   // ACTLR_EL1
    ];
    let (op0, op1, crn, crm, op2) = match rng.below(4) {
        0 | 1 => FIXED[rng.below(FIXED.len() as u64) as usize],
        2 => (3, 0, 0, 1 + rng.below(7) as u32, rng.below(8) as u32), // ID registers
        _ => (
            3,
            rng.below(8) as u32,
            [9, 11, 15][rng.below(3) as usize], // PMU, IMPLEMENTATION DEFINED
            rng.below(16) as u32,
            rng.below(8) as u32,
        ),
    };
    let mut v = rng.next();
    if (op0, op1, crn, crm, op2) == (3, 0, 12, 12, 3) {
        // QEMU 7.2 aborts on an ICV_BPR1_EL1 write above 7 whose bits [2:0] are 0 (it clamps to
        // the minimum before it truncates to the 3-bit field, then asserts VBPR1 > 0). That
        // register never traps, so the write tests QEMU, not exitless: keep to the field.
        v &= 7;
    }
    match (op0, op1, crn, crm, op2) {
        // QEMU 7.2 livelocks (its main loop re-arms the virtual timer in the past for ever,
        // holding its global lock, and every CPU stops) when CNTV_CVAL_EL0 + CNTVOFF_EL2 wraps
        // past 2^64: a CVAL near 2^64, or a negative TVAL larger than the guest's uptime.
        // Upstream QEMU fixed it (gt_recalc_timer checks the addition with uadd64_overflow);
        // hardware has no such bug. So the timer's values stay where the sum cannot wrap.
        (3, 3, 14, 3, 2) => v &= (1 << 62) - 1,
        (3, 3, 14, 3, 0) => v &= 0x7fff_ffff,
        _ => {}
    }
    let insn = 0xd500_0000 | op0 << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5;
    exec(insn, [v, 0, 0, 0]);
}

/// Per-vCPU code buffers for [`exec`]: one instruction, then RET.
#[repr(C, align(64))]
struct Code([[u32; 16]; MAX_CPUS]);
static mut CODE: Code = Code([[0; 16]; MAX_CPUS]);

/// Executes one instruction with x0..x3 = `x` (its register operand, where it has one, is x0).
fn exec(insn: u32, x: [u64; 4]) {
    let c = hw::cpu();
    // SAFETY: each vCPU writes only its own buffer, which nothing else reads.
    let buf = unsafe { core::ptr::addr_of_mut!(CODE.0[c]) } as *mut u32;
    // SAFETY: `buf` is this vCPU's 64-byte buffer, in RAM (normal, executable memory).
    unsafe {
        buf.write_volatile(insn);
        buf.add(1).write_volatile(0xd65f_03c0); // ret
        asm!("dc cvau, {a}", "dsb ish", "ic ivau, {a}", "dsb ish", "isb", a = in(reg) buf, options(nostack));
    }
    // SAFETY: the buffer holds one instruction that touches x0..x3 at most (an MRS/MSR on x0, or
    // an HVC/SMC, whose SMCCC results are x0..x3; both caller-saved) and RET; an exception it
    // raises is counted and skipped, so control reaches the RET.
    unsafe {
        asm!("blr {f}", f = in(reg) buf,
            inout("x0") x[0] => _, inout("x1") x[1] => _, inout("x2") x[2] => _, inout("x3") x[3] => _,
            lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
            lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
            lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
            lateout("x16") _, lateout("x17") _, lateout("lr") _, options(nostack));
    }
}
