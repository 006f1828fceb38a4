//! The guest's runtime: start-up, console, exceptions, the interrupt handler and its per-CPU
//! log, PSCI, and the mailboxes through which CPU 0 runs functions on the secondaries.
//!
//! Secondaries wait in WFI with interrupts unmasked; CPU 0 posts a job in a CPU's mailbox and
//! rings SGI [`DOORBELL`] (so idle CPUs cost nothing, natively or under `-icount`). The
//! doorbell is handled without being logged; the cases use SGIs 0..=14.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use crate::dt::{self, MAX_CPUS, Platform};
use crate::gic::{Gic, Target};
use crate::hw::{self, Conduit, mrs, msr};
use crate::its::Its;

/// Stack per CPU.
pub const STACK_SIZE: usize = 0x10000;

/// The CPUs' stacks (CPU i's stack ends at `STACKS + (i + 1) * STACK_SIZE`).
#[repr(C, align(16))]
pub struct Stacks([u8; STACK_SIZE * MAX_CPUS]);
#[unsafe(no_mangle)]
pub static mut STACKS: Stacks = Stacks([0; STACK_SIZE * MAX_CPUS]);

/// The first LPI: INTIDs 1020..=1023 are special (1023: none pending), 1024..8191 unused.
pub const LPI_MIN: u32 = 8192;

/// The SGI that wakes a secondary for a job.
pub const DOORBELL: u32 = 15;

/// A value written once by CPU 0 before any other CPU starts, then only read.
pub struct Global<T>(UnsafeCell<MaybeUninit<T>>, AtomicBool);
// SAFETY: written once before it is shared (`set` happens before CPU_ON of any secondary,
// which orders memory), then read-only.
unsafe impl<T> Sync for Global<T> {}
impl<T> Global<T> {
    const fn new() -> Self {
        Global(
            UnsafeCell::new(MaybeUninit::uninit()),
            AtomicBool::new(false),
        )
    }
    fn set(&self, v: T) {
        assert!(!self.1.load(Acquire));
        // SAFETY: only CPU 0 calls `set`, once, before anyone reads.
        unsafe { (*self.0.get()).write(v) };
        self.1.store(true, Release);
    }
    pub fn get(&self) -> &T {
        assert!(self.1.load(Acquire), "global used before set");
        // SAFETY: set (checked above) and never written again.
        unsafe { (*self.0.get()).assume_init_ref() }
    }
    fn is_set(&self) -> bool {
        self.1.load(Acquire)
    }
}

static PLATFORM: Global<Platform> = Global::new();
static GIC: Global<Gic> = Global::new();
static ITS: Global<Result<Its, &'static str>> = Global::new();
static UART: AtomicUsize = AtomicUsize::new(0);

/// The platform from the DTB.
pub fn platform() -> &'static Platform {
    PLATFORM.get()
}

/// The GIC.
pub fn gic() -> &'static Gic {
    GIC.get()
}

/// The ITS, set up with LPIs on every CPU; `Err` says why there is none.
pub fn its() -> Result<&'static Its, &'static str> {
    ITS.get().as_ref().map_err(|e| *e)
}

// ---------------------------------------------------------------------------------------------
// Console

static CONSOLE_LOCK: AtomicBool = AtomicBool::new(false);

struct Uart(usize);
impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(self.0, b'\r');
            }
            put(self.0, b);
        }
        Ok(())
    }
}

fn put(base: usize, b: u8) {
    // PL011: wait while the transmit FIFO is full (FR.TXFF), then write DR.
    while hw::read32(base + 0x18) & (1 << 5) != 0 {
        core::hint::spin_loop();
    }
    hw::write32(base, b as u32);
}

/// Prints to the PL011 (used by `print!`/`println!`).
pub fn print(args: fmt::Arguments) {
    let base = UART.load(Relaxed);
    if base == 0 {
        return;
    }
    while CONSOLE_LOCK
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let _ = Uart(base).write_fmt(args);
    CONSOLE_LOCK.store(false, Release);
}

#[macro_export]
macro_rules! print {
    ($($a:tt)*) => { $crate::rt::print(format_args!($($a)*)) };
}
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($a:tt)*) => { $crate::rt::print(format_args!("{}\n", format_args!($($a)*))) };
}

// ---------------------------------------------------------------------------------------------
// PSCI

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const PSCI_CPU_OFF: u32 = 0x8400_0002;
pub const PSCI_CPU_ON: u32 = 0xc400_0003;
pub const PSCI_AFFINITY_INFO: u32 = 0xc400_0004;
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// An SMCCC call through the DTB's conduit.
pub fn call(f: u32, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    let conduit = if PLATFORM.is_set() {
        platform().conduit
    } else {
        Conduit::Hvc
    };
    hw::smccc(conduit, f, a1, a2, a3)
}

/// PSCI SYSTEM_OFF; spins if it returns.
pub fn system_off() -> ! {
    call(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        hw::wfi();
    }
}

unsafe extern "C" {
    fn secondary_entry();
}

/// PSCI CPU_ON of CPU `c` at `secondary_entry` with context ID `c`; returns x0 as i64.
pub fn cpu_on(c: usize) -> i64 {
    let entry = secondary_entry as *const () as u64;
    call(PSCI_CPU_ON, platform().mpidr[c], entry, c as u64)[0] as i64
}

/// PSCI AFFINITY_INFO of CPU `c` at level 0 (0 on, 1 off, 2 on pending).
pub fn affinity_info(c: usize) -> i64 {
    call(PSCI_AFFINITY_INFO, platform().mpidr[c], 0, 0)[0] as i64
}

// ---------------------------------------------------------------------------------------------
// Per-CPU state: the interrupt log and the mailbox.

/// Entries kept in each CPU's interrupt log.
pub const LOG: usize = 128;

/// A handler hook: gets the raw IAR; returns true if it completed (EOI/DIR) the interrupt.
pub type Hook = fn(u32) -> bool;

pub struct PerCpu {
    /// Interrupts taken (including beyond `LOG`).
    pub count: AtomicU32,
    pub iar: [AtomicU32; LOG],
    pub time: [AtomicU64; LOG],
    pub spurious: AtomicU32,
    /// Entry time of the last interrupt taken.
    pub last: AtomicU64,
    pub hook: AtomicUsize,
    /// EOImode = 1 in force: the handler also writes DIR.
    pub split: AtomicBool,
    /// Nesting depth of the handler, and its maximum.
    pub depth: AtomicU32,
    pub max_depth: AtomicU32,
    /// A data abort is expected: record ESR, skip the instruction.
    pub probe: AtomicBool,
    pub probe_esr: AtomicU64,
    /// Mailbox.
    pub job: AtomicUsize,
    pub arg: AtomicU64,
    pub result: AtomicU64,
    pub online: AtomicBool,
    pub started: AtomicU32,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            count: AtomicU32::new(0),
            iar: [const { AtomicU32::new(0) }; LOG],
            time: [const { AtomicU64::new(0) }; LOG],
            spurious: AtomicU32::new(0),
            last: AtomicU64::new(0),
            hook: AtomicUsize::new(0),
            split: AtomicBool::new(false),
            depth: AtomicU32::new(0),
            max_depth: AtomicU32::new(0),
            probe: AtomicBool::new(false),
            probe_esr: AtomicU64::new(0),
            job: AtomicUsize::new(0),
            arg: AtomicU64::new(0),
            result: AtomicU64::new(0),
            online: AtomicBool::new(false),
            started: AtomicU32::new(0),
        }
    }

    /// Clears the log (not the mailbox).
    pub fn clear(&self) {
        self.count.store(0, SeqCst);
        self.spurious.store(0, SeqCst);
        self.max_depth.store(0, SeqCst);
        for i in &self.iar {
            i.store(0, Relaxed);
        }
    }

    /// The logged INTIDs (raw IAR values), up to `LOG`.
    pub fn ids(&self) -> ([u32; LOG], usize) {
        let n = (self.count.load(SeqCst) as usize).min(LOG);
        let mut out = [0; LOG];
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = self.iar[i].load(SeqCst);
        }
        (out, n)
    }

    /// How many times `intid` was logged.
    pub fn times_seen(&self, intid: u32) -> usize {
        let (ids, n) = self.ids();
        ids[..n]
            .iter()
            .filter(|&&i| gic().intid(i) == intid)
            .count()
    }
}

pub static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// This CPU's state.
pub fn me() -> &'static PerCpu {
    &CPUS[hw::cpu()]
}

/// Installs (or with `None` removes) this CPU's handler hook.
pub fn set_hook(c: usize, h: Option<Hook>) {
    CPUS[c].hook.store(h.map_or(0, |f| f as usize), SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Exceptions

/// The registers a vector saves.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 30],
    pub x30: u64,
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// Every vector lands here; `kind` is the vector's offset / 0x80 with the group in bits 5:4
/// (0x0x current EL with SP_ELx, 0x1x current EL with SP_EL0, ...).
pub extern "C" fn exception(frame: &mut Frame, kind: u64) {
    match kind {
        1 => irq(),
        0 => {
            let esr = mrs!("esr_el1");
            let ec = esr >> 26;
            let c = me();
            if ec == 0x25 && c.probe.load(SeqCst) {
                c.probe_esr.store(esr, SeqCst);
                frame.elr += 4;
                return;
            }
            if crate::hostile::ACTIVE.load(Relaxed) && crate::hostile::tolerate(esr) {
                frame.elr += 4;
                return;
            }
            println!(
                "Bail out! CPU {} synchronous exception: ESR {:#x} (EC {:#x}) ELR {:#x} FAR {:#x}",
                hw::cpu(),
                esr,
                ec,
                frame.elr,
                mrs!("far_el1")
            );
            system_off();
        }
        _ => {
            println!(
                "Bail out! CPU {} unexpected exception vector {:#x}, ESR {:#x} ELR {:#x}",
                hw::cpu(),
                kind,
                mrs!("esr_el1"),
                frame.elr
            );
            system_off();
        }
    }
}

/// Runs `f` expecting that it may take a data abort; returns the ESR if it did.
pub fn probe<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    let c = me();
    c.probe_esr.store(0, SeqCst);
    c.probe.store(true, SeqCst);
    let v = f();
    c.probe.store(false, SeqCst);
    let esr = c.probe_esr.load(SeqCst);
    (v, if esr == 0 { None } else { Some(esr) })
}

/// The interrupt handler: logs the entry time and the IAR, runs the hook, else completes the
/// interrupt (EOI, and DIR with EOImode = 1). An unhooked virtual timer interrupt is silenced
/// (CNTV_CTL.ENABLE = 0) before completion, since it is level-sensitive.
fn irq() {
    let t = hw::now();
    let g = gic();
    let c = me();
    let iar = g.ack();
    let id = g.intid(iar);
    if (1020..LPI_MIN).contains(&id) {
        c.spurious.fetch_add(1, SeqCst);
        return;
    }
    let d = c.depth.fetch_add(1, SeqCst) + 1;
    c.max_depth.fetch_max(d, SeqCst);
    if id == DOORBELL && hw::cpu() != 0 {
        g.eoi(iar);
        if c.split.load(SeqCst) {
            g.dir(iar);
        }
        c.depth.fetch_sub(1, SeqCst);
        return;
    }
    c.last.store(t, SeqCst);
    let n = c.count.load(SeqCst) as usize;
    if n < LOG {
        c.iar[n].store(iar, SeqCst);
        c.time[n].store(t, SeqCst);
    }
    c.count.store(n as u32 + 1, SeqCst);
    let hook = c.hook.load(SeqCst);
    let done = if hook != 0 {
        // SAFETY: `hook` was stored from a `Hook` by `set_hook`.
        let f: Hook = unsafe { core::mem::transmute::<usize, Hook>(hook) };
        f(iar)
    } else {
        if id == platform().vtimer {
            msr!("cntv_ctl_el0", 0);
        }
        false
    };
    if !done {
        g.eoi(iar);
        if c.split.load(SeqCst) {
            g.dir(iar);
        }
    }
    c.depth.fetch_sub(1, SeqCst);
}

// ---------------------------------------------------------------------------------------------
// Secondaries

/// A job for another CPU.
pub type Job = fn(u64) -> u64;

/// Runs `f(arg)` on CPU `c` (CPU 0 runs it directly) and returns its result, or `None` if the
/// CPU did not finish within `timeout` ticks.
pub fn run_on(c: usize, f: Job, arg: u64) -> Option<u64> {
    if c == hw::cpu() {
        return Some(f(arg));
    }
    let p = &CPUS[c];
    if !p.online.load(SeqCst) {
        return None;
    }
    p.arg.store(arg, SeqCst);
    p.job.store(f as usize, SeqCst);
    gic().sgi(DOORBELL, Target::Cpus(1 << c));
    if hw::wait_other(hw::us(5_000_000), || p.job.load(SeqCst) == 0) {
        Some(p.result.load(SeqCst))
    } else {
        None
    }
}

/// Posts `f(arg)` on CPU `c` without waiting for it.
pub fn post(c: usize, f: Job, arg: u64) {
    let p = &CPUS[c];
    p.arg.store(arg, SeqCst);
    p.job.store(f as usize, SeqCst);
    gic().sgi(DOORBELL, Target::Cpus(1 << c));
}

/// Brings up this CPU's GIC interface and enables the doorbell (secondaries).
fn cpu_gic_init() {
    let g = gic();
    let c = hw::cpu();
    g.cpu_init();
    g.set_priority(c, DOORBELL, 0x40);
    g.enable(c, DOORBELL);
}

pub extern "C" fn secondary_main(c: usize) -> ! {
    hw::mmu_on();
    cpu_gic_init();
    let p = &CPUS[c];
    p.started.fetch_add(1, SeqCst);
    p.online.store(true, SeqCst);
    loop {
        // Interrupts masked between the check and WFI: a doorbell that arrives after the check
        // stays pending and ends the WFI (it is taken once they are unmasked), instead of being
        // taken before the WFI and lost (the CPU would then sleep with a job posted).
        hw::irq_disable();
        let job = p.job.load(SeqCst);
        if job == 0 {
            hw::wfi();
            hw::irq_enable();
            continue;
        }
        hw::irq_enable();
        // SAFETY: `job` was stored from a `Job` by `run_on` or `post`.
        let f: Job = unsafe { core::mem::transmute::<usize, Job>(job) };
        let r = f(p.arg.load(SeqCst));
        p.result.store(r, SeqCst);
        p.job.store(0, SeqCst);
    }
}

/// CPU_OFF from a job (does not return; `online` drops first).
pub fn cpu_off_job(_: u64) -> u64 {
    let p = me();
    hw::irq_disable();
    p.online.store(false, SeqCst);
    p.job.store(0, SeqCst);
    call(PSCI_CPU_OFF, 0, 0, 0);
    println!("# CPU {}: CPU_OFF returned", hw::cpu());
    loop {
        hw::wfi();
    }
}

/// Results of the boot-time CPU_ON calls, for the PSCI cases.
pub static BOOT_CPU_ON: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub extern "C" fn primary_main(dtb: usize) -> ! {
    let p = match dt::parse(dtb) {
        Ok(p) => p,
        Err(e) => {
            // No console yet: try QEMU virt's PL011 so the message is seen somewhere.
            UART.store(0x0900_0000, Relaxed);
            println!("Bail out! DTB at {dtb:#x}: {e}");
            system_off();
        }
    };
    UART.store(p.uart, Relaxed);
    PLATFORM.set(p);
    hw::mmu_build();
    hw::mmu_on();
    let g = match Gic::new(&p) {
        Ok(g) => g,
        Err(e) => {
            println!("Bail out! GIC: {e}");
            system_off();
        }
    };
    GIC.set(g);
    let g = gic();
    g.dist_init();
    g.cpu_init();
    ITS.set(match (p.its, g.version) {
        (0, _) => Err("no ITS in the device tree"),
        (_, crate::gic::Version::V2) => Err("an ITS with a GICv2"),
        (base, _) => Its::new(base, g),
    });
    CPUS[0].online.store(true, SeqCst);
    CPUS[0].started.store(1, SeqCst);
    for c in 1..p.cpu_count {
        let r = cpu_on(c);
        BOOT_CPU_ON[c].store(r as u64, SeqCst);
    }
    for c in 1..p.cpu_count {
        hw::wait_until(hw::us(5_000_000), || CPUS[c].online.load(SeqCst));
    }
    if let Some((writes, ops)) = p.hostile {
        crate::hostile::run(writes, ops);
    } else if let Some(op) = p.op_loop {
        crate::bench::repeat(op);
    } else if p.bench {
        crate::bench::run();
    } else {
        crate::cases::run();
    }
    system_off()
}
