//! The console shared by the hypervisor and its guests.
//!
//! * Output: what a guest writes to its virtual UART goes into that VM's own ring
//!   ([`exitless_core::util::console_out`]), never waiting for the physical UART; the rings are
//!   drained in turn into the console's transmit ring whenever a CPU passes by ([`pump`]), so a
//!   VM that writes faster than the UART sends loses its own excess (counted in its counters)
//!   and nobody else's. On the screen: as is when there is one VM; with several, whole lines,
//!   each starting with the VM's name, the VM with the focus printing straight through and the
//!   others' lines waiting for the screen to be at a line start
//!   ([`exitless_core::util::console_mux`]).
//! * Input: bytes typed on the console go to the VM that has the focus (the one with
//!   `console = true`, else the first). The command key is **Ctrl-]** followed by:
//!   `c` print every VM's counters, `l` print the hypervisor's log again, `n` move the focus
//!   to the next VM, `h` help;
//!   Ctrl-] twice sends one Ctrl-] to the guest.

use core::sync::atomic::{AtomicBool, Ordering};

use exitless_core::util::lock::Mutex;

use super::{VMS, VmRuntime, run};
use crate::drivers::{console, gic};
use exitless_core::hv::console::{ConsoleInput, Input};
use exitless_core::hv::report;
use exitless_core::util::console_mux::{ConsoleMux, Screen};
use exitless_core::util::console_out::{ConsoleQueues, Sink};
use exitless_core::vm::machine::Vm;

/// The focus and the command key's state (the core's `ConsoleInput`), set up by [`init`].
static INPUT: Mutex<Option<ConsoleInput>> = Mutex::new(None);
/// The VMs' output rings and, with several VMs, the line multiplexer (set up by `init`).
static OUT: Mutex<Option<Out>> = Mutex::new(None);
/// A VM's ring holds output (cheap to ask on every exit).
static VM_PENDING: AtomicBool = AtomicBool::new(false);

struct Out {
    queues: ConsoleQueues,
    mux: Option<ConsoleMux>,
}

/// True if the console multiplexer's or the console input's lock is held (for the fatal-error
/// policy).
pub fn lock_held() -> bool {
    OUT.is_locked() || INPUT.is_locked()
}

/// The screen as the rings drain into it: through the multiplexer with several VMs.
struct ScreenSink<'a> {
    mux: &'a mut Option<ConsoleMux>,
    screen: &'a mut console::GuestScreen,
}

impl Sink for ScreenSink<'_> {
    fn room(&self) -> usize {
        self.screen.room()
    }

    fn emit(&mut self, vm: usize, bytes: &[u8]) {
        match self.mux.as_mut() {
            Some(m) => m.output(vm, bytes, vm_name, self.screen),
            None => {
                self.screen.write(bytes);
                if let Some(&last) = bytes.last() {
                    self.screen.set_mid_line(last != b'\n');
                }
            }
        }
    }
}

/// True if console output waits anywhere (asked on every exit: two loads).
pub fn output_pending() -> bool {
    VM_PENDING.load(Ordering::Relaxed) || console::output_pending()
}

/// Moves waiting output along without waiting: the VMs' rings into the transmit ring (unless
/// another CPU is at it), the transmit ring into the UART's FIFO as far as it has room.
#[inline(never)]
pub fn pump() {
    if let Some(mut out) = OUT.try_lock()
        && let Some(o) = out.as_mut()
    {
        if !o.queues.is_empty()
            && let Some(mut screen) = console::try_guest_screen()
        {
            o.queues.drain(&mut ScreenSink {
                mux: &mut o.mux,
                screen: &mut screen,
            });
        }
        VM_PENDING.store(!o.queues.is_empty(), Ordering::Relaxed);
    }
    console::pump();
}

/// Sends every VM's waiting output, waiting for the UART (before the machine powers off).
pub fn flush_all() {
    for _ in 0..64 {
        let empty = {
            let Some(mut out) = OUT.try_lock() else {
                break;
            };
            let Some(o) = out.as_mut() else { break };
            let mut screen = console::guest_screen();
            o.queues.drain(&mut ScreenSink {
                mux: &mut o.mux,
                screen: &mut screen,
            });
            o.queues.is_empty()
        };
        console::flush();
        if empty {
            break;
        }
    }
    console::flush();
}

/// Bytes of VM `vm`'s console output dropped (it wrote faster than the UART sends).
pub fn dropped(vm: usize) -> u64 {
    OUT.lock().as_ref().map_or(0, |o| o.queues.dropped(vm))
}

/// Picks the initial focus.
pub fn init() {
    if let Some(vms) = VMS.get() {
        let input = ConsoleInput::new(vms.iter().map(|r| r.vm.config.console));
        *OUT.lock() = Some(Out {
            queues: ConsoleQueues::new(vms.len()),
            mux: (vms.len() > 1).then(|| ConsoleMux::new(vms.len(), input.focus())),
        });
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

/// A guest's console output: into its VM's ring (the excess dropped and counted), never
/// waiting for the UART; then moved along as far as it goes now.
pub fn guest_output(vm: &Vm, bytes: &[u8]) {
    {
        let mut out = OUT.lock();
        match out.as_mut() {
            Some(o) => {
                o.queues.push(vm.id, bytes);
                VM_PENDING.store(true, Ordering::Relaxed);
            }
            None => {
                // Before `init` (no VM runs yet): straight to the screen.
                let mut screen = console::guest_screen();
                screen.write(bytes);
            }
        }
    }
    pump();
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
                if let Some(m) = OUT.lock().as_mut().and_then(|o| o.mux.as_mut()) {
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
    let mut hw = run::Hw::new(cpu, rt);
    rt.vm.console_input(&[b], &mut hw);
}

/// Prints a VM's counters (the core's report).
pub fn print_counters(rt: &VmRuntime) {
    console::print(format_args!("{}", report::Counters(&rt.vm)));
    let lost = dropped(rt.vm.id);
    if lost > 0 {
        console::print(format_args!(
            "console: {lost} bytes of this VM's output dropped (it wrote faster than the UART \
             sends; other VMs' output is not affected)\n"
        ));
    }
}
