//! The console shared by the hypervisor and its guests.
//!
//! * Output: what a guest writes to its virtual UART goes to the physical console as is when
//!   there is one VM; with several, whole lines, each starting with the VM's name, the VM with
//!   the focus printing straight through and the others' lines waiting for the screen to be at
//!   a line start ([`exitless_core::util::console_mux`]).
//! * Input: bytes typed on the console go to the VM that has the focus (the one with
//!   `console = true`, else the first). The command key is **Ctrl-]** followed by:
//!   `c` print every VM's counters, `l` print the hypervisor's log again, `n` move the focus
//!   to the next VM, `h` help;
//!   Ctrl-] twice sends one Ctrl-] to the guest.

use spin::Mutex;

use super::{VMS, VmRuntime, run};
use crate::drivers::{console, gic};
use exitless_core::hv::console::{ConsoleInput, Input};
use exitless_core::hv::report;
use exitless_core::util::console_mux::{ConsoleMux, Screen};
use exitless_core::vm::machine::Vm;

/// The focus and the command key's state (the core's `ConsoleInput`), set up by [`init`].
static INPUT: Mutex<Option<ConsoleInput>> = Mutex::new(None);
/// Several VMs' output, line by line (set up by `init` when there are several VMs).
static MUX: Mutex<Option<ConsoleMux>> = Mutex::new(None);

/// True if the console multiplexer's or the console input's lock is held (for the fatal-error
/// policy).
pub fn lock_held() -> bool {
    MUX.is_locked() || INPUT.is_locked()
}

/// Picks the initial focus.
pub fn init() {
    if let Some(vms) = VMS.get() {
        let input = ConsoleInput::new(vms.iter().map(|r| r.vm.config.console));
        if vms.len() > 1 {
            *MUX.lock() = Some(ConsoleMux::new(vms.len(), input.focus()));
        }
        *INPUT.lock() = Some(input);
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
    let focus = INPUT.lock().as_ref().map_or(0, ConsoleInput::focus);
    VMS.get()
        .and_then(|v| v.get(focus))
        .map_or("", |r| r.vm.name())
}

/// Routes the console UART's interrupt to the calling CPU and enables it.
pub fn enable_input(g: &gic::Gic) {
    let Some(irq) = super::hw().uart else {
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

/// Reads everything the console UART has received and does what each byte asks (the core's
/// `ConsoleInput` decides: deliver it to the VM with the focus, or a command).
pub fn input(cpu: usize) {
    while let Some(b) = console::get_byte() {
        // The input lock is not held while the byte is delivered or a command runs.
        let Some(what) = INPUT.lock().as_mut().map(|i| i.key(b)) else {
            continue;
        };
        match what {
            Input::Deliver { vm, byte } => deliver(cpu, vm, byte),
            Input::CommandPending => {}
            Input::Counters => {
                for rt in VMS.get().into_iter().flatten() {
                    print_counters(rt);
                }
            }
            Input::Log => console::replay_log(),
            Input::Focus { vm } => {
                if let Some(m) = MUX.lock().as_mut() {
                    m.set_focus(vm, vm_name, &mut console::guest_screen());
                }
                log::info!("console input now goes to VM '{}'", vm_name(vm));
            }
            Input::Help => log::info!(
                "console commands: Ctrl-] c counters, Ctrl-] l the hypervisor's log again, \
                 Ctrl-] n next VM (input goes to '{}'), Ctrl-] Ctrl-] a literal Ctrl-]",
                focus_name()
            ),
        }
    }
}

fn deliver(cpu: usize, vm: usize, b: u8) {
    let Some(rt) = VMS.get().and_then(|v| v.get(vm)) else {
        return;
    };
    let mut hw = run::Hw::new(cpu);
    rt.vm.console_input(&[b], &mut hw);
}

/// Prints a VM's counters (the core's report).
pub fn print_counters(rt: &VmRuntime) {
    console::print(format_args!("{}", report::counters(&rt.vm)));
}
