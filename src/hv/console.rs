//! The console shared by the hypervisor and its guests.
//!
//! * Output: what a guest writes to its virtual UART goes to the physical console as is when
//!   there is one VM; with several, whole lines, each starting with the VM's name, the VM with
//!   the focus printing straight through and the others' lines waiting for the screen to be at
//!   a line start ([`exitless_core::util::console_mux`]).
//! * Input: bytes typed on the console go to the VM that has the focus (the one with
//!   `console = true`, else the first). The command key is **Ctrl-]** followed by:
//!   `c` print every VM's counters, `n` move the focus to the next VM, `h` help;
//!   Ctrl-] twice sends one Ctrl-] to the guest.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;

use super::{VMS, VmRuntime, run};
use crate::drivers::{console, gic};
use exitless_core::util::console_mux::{ConsoleMux, Screen};
use exitless_core::vm::machine::{ExitReason, Vm};

/// The command key: Ctrl-].
pub const COMMAND_KEY: u8 = 0x1d;

static FOCUS: AtomicUsize = AtomicUsize::new(0);
static COMMAND_PENDING: AtomicBool = AtomicBool::new(false);
/// Several VMs' output, line by line (set up by `init` when there are several VMs).
static MUX: Mutex<Option<ConsoleMux>> = Mutex::new(None);

/// Picks the initial focus.
pub fn init() {
    if let Some(vms) = VMS.get() {
        let f = vms.iter().position(|r| r.vm.config.console).unwrap_or(0);
        FOCUS.store(f, Ordering::Relaxed);
        if vms.len() > 1 {
            *MUX.lock() = Some(ConsoleMux::new(vms.len(), f));
        }
    }
}

/// VM `n`'s name.
fn vm_name(n: usize) -> &'static str {
    VMS.get()
        .and_then(|v| v.get(n))
        .map_or("?", |r| r.vm.name())
}

/// The name of the VM with the focus.
pub fn focus_name() -> &'static str {
    VMS.get()
        .and_then(|v| v.get(FOCUS.load(Ordering::Relaxed)))
        .map_or("", |r| r.vm.name())
}

/// Routes the console UART's interrupt to the calling CPU and enables it.
pub fn enable_input(g: &gic::Gic) {
    let Some(irq) = super::hw().uart_irq else {
        return;
    };
    let Some(target) = super::PCPUS[0].target.get() else {
        return;
    };
    console::enable_rx_interrupt();
    g.enable_spi(irq, *target, true);
}

/// A guest's console output.
pub fn guest_output(vm: &Vm, bytes: &[u8]) {
    // Lock order: the multiplexer, then the console.
    let mut mux = MUX.lock();
    let mut screen = console::guest_screen();
    match mux.as_mut() {
        Some(m) => m.output(vm.id, bytes, vm_name, &mut screen),
        None => {
            screen.write(bytes);
            if let Some(&last) = bytes.last() {
                screen.set_mid_line(last != b'\n');
            }
        }
    }
}

/// Reads everything the console UART has received and delivers it.
pub fn input(cpu: usize) {
    while let Some(b) = console::get_byte() {
        if COMMAND_PENDING.swap(false, Ordering::Relaxed) {
            if b != COMMAND_KEY {
                command(b);
                continue;
            }
        } else if b == COMMAND_KEY {
            COMMAND_PENDING.store(true, Ordering::Relaxed);
            continue;
        }
        deliver(cpu, b);
    }
}

fn deliver(cpu: usize, b: u8) {
    let Some(rt) = VMS.get().and_then(|v| v.get(FOCUS.load(Ordering::Relaxed))) else {
        return;
    };
    let mut hw = run::Hw::new(cpu);
    rt.vm.console_input(&[b], &mut hw);
}

fn command(key: u8) {
    match key {
        b'c' | b'C' => {
            for rt in VMS.get().into_iter().flatten() {
                print_counters(rt);
            }
        }
        b'n' | b'N' => {
            let n = VMS.get().map_or(1, |v| v.len().max(1));
            let f = (FOCUS.load(Ordering::Relaxed) + 1) % n;
            FOCUS.store(f, Ordering::Relaxed);
            if let Some(m) = MUX.lock().as_mut() {
                m.set_focus(f, vm_name, &mut console::guest_screen());
            }
            log::info!("console input now goes to VM '{}'", focus_name());
        }
        _ => log::info!(
            "console commands: Ctrl-] c counters, Ctrl-] n next VM (input goes to '{}'), \
             Ctrl-] Ctrl-] a literal Ctrl-]",
            focus_name()
        ),
    }
}

/// ICC_* registers whose trap would mean an exit for acknowledging or completing an interrupt.
const ACK_EOI_REGS: [(&str, exitless_core::trap::esr::SysRegId); 6] = [
    (
        "ICC_IAR1_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 12, 12, 0),
    ),
    (
        "ICC_EOIR1_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 12, 12, 1),
    ),
    (
        "ICC_IAR0_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 12, 8, 0),
    ),
    (
        "ICC_EOIR0_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 12, 8, 1),
    ),
    (
        "ICC_DIR_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 12, 11, 1),
    ),
    (
        "ICC_PMR_EL1",
        exitless_core::trap::esr::SysRegId::new(3, 0, 4, 6, 0),
    ),
];

/// Prints a VM's counters.
pub fn print_counters(rt: &VmRuntime) {
    let vm = &rt.vm;
    let mut out = String::new();
    let _ = writeln!(out, "=== counters of VM '{}' ===", vm.name());
    let mut ack_eoi_exits = 0;
    for (n, slot) in vm.vcpus.iter().enumerate() {
        let s = slot.stats.lock().clone();
        let _ = write!(out, "vCPU {n}: {} exits:", s.total());
        for r in ExitReason::ALL {
            let c = s.count(r);
            if c > 0 {
                let _ = write!(out, " {} {c}", r.name());
            }
        }
        let _ = writeln!(
            out,
            "; maintenance interrupts {}, kicks {}",
            s.maintenance, s.kicks
        );
        if let Some(c) = vm.vgic.lock().cpu(n).map(|c| c.stats) {
            let _ = writeln!(
                out,
                "  vGIC: {} interrupts loaded into list registers, {} LR overflows, {} EOIcount \
                 deactivations",
                c.lr_loads, c.lr_overflows, c.eoicount_deactivations
            );
        }
        if !s.sysregs.is_empty() {
            let is_id = |id: &exitless_core::trap::esr::SysRegId| {
                id.op0() == 3 && id.op1() == 0 && id.crn() == 0
            };
            let ids: u64 = s
                .sysregs
                .iter()
                .filter(|(id, _)| is_id(id))
                .map(|(_, c)| c)
                .sum();
            let _ = write!(out, "  trapped system registers: ID registers (TID3) {ids}");
            for (id, c) in s.sysregs.iter().filter(|(id, _)| !is_id(id)) {
                let _ = write!(out, ", {id} {c}");
            }
            let _ = writeln!(out);
        }
        ack_eoi_exits += ACK_EOI_REGS
            .iter()
            .map(|(_, id)| s.sysregs.get(id).copied().unwrap_or(0))
            .sum::<u64>();
    }
    let mmio = vm.stats.mmio.lock().clone();
    let _ = write!(out, "MMIO exits by device/register:");
    for ((dev, group), c) in &mmio {
        let _ = write!(out, " {dev}.{group}={c}");
    }
    let _ = writeln!(out);
    let inj: [u64; 4] = core::array::from_fn(|i| vm.stats.injected[i].load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "interrupts injected: SGI {} (sends), timer PPI {} (linked, HW bit), UART SPI {}, \
         passthrough SPI {} ({} taken on another vCPU's CPU); guest aborts {}",
        inj[0],
        inj[1],
        inj[2],
        inj[3],
        vm.stats.passthrough_remote.load(Ordering::Relaxed),
        vm.stats.aborts.load(Ordering::Relaxed)
    );
    let gicc_exits = mmio
        .iter()
        .filter(|((d, _), _)| *d == "GICC")
        .map(|(_, c)| c)
        .sum::<u64>();
    let _ = writeln!(
        out,
        "exits for interrupt acknowledge and completion (ICC_IAR/EOIR/DIR/PMR traps, GICC MMIO): {}",
        ack_eoi_exits + gicc_exits
    );
    console::print(format_args!("{out}"));
}
