//! Console input policy: which VM a typed byte goes to, and the command key.
//!
//! Bytes typed on the console go to the VM with the focus: the first with `console = true` in
//! its configuration, else the first VM. The command key is **Ctrl-]** followed by `c` (print
//! every VM's counters), `l` (print the hypervisor's log again, from its log ring), `n` (move
//! the focus to the next VM, wrapping) or anything else (help);
//! Ctrl-] twice sends one Ctrl-] to the guest. A command key split across two reads of the
//! UART is still one command: the state lives here, not in a read loop.
//!
//! Invariant: the focus is always a valid VM index (or 0 when there is no VM).

/// The command key: Ctrl-] (as telnet and QEMU's monitor use it).
pub const COMMAND_KEY: u8 = 0x1d;

/// What one typed byte asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Give the byte to VM `vm`'s console.
    Deliver {
        /// The VM with the focus.
        vm: usize,
        /// The byte.
        byte: u8,
    },
    /// The command key was typed; the next byte says what to do.
    CommandPending,
    /// Ctrl-] c: print every VM's counters.
    Counters,
    /// Ctrl-] l: print the hypervisor's log again (its log ring).
    Log,
    /// Ctrl-] n: the focus moved to VM `vm`.
    Focus {
        /// The VM that has the focus now.
        vm: usize,
    },
    /// Ctrl-] and an unknown key: print the list of commands.
    Help,
}

/// The console input state: the focus and whether a command key is pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleInput {
    vms: usize,
    focus: usize,
    pending: bool,
}

impl ConsoleInput {
    /// The state for `vms` VMs whose `console = true` flags are `console`, in VM order: the
    /// focus starts on the first flagged VM, else on VM 0.
    pub fn new(console: impl IntoIterator<Item = bool>) -> Self {
        let mut vms = 0;
        let mut focus = None;
        for (i, flagged) in console.into_iter().enumerate() {
            vms = i + 1;
            if flagged && focus.is_none() {
                focus = Some(i);
            }
        }
        ConsoleInput {
            vms,
            focus: focus.unwrap_or(0),
            pending: false,
        }
    }

    /// The VM that has the focus.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// Takes one byte typed on the console.
    pub fn key(&mut self, byte: u8) -> Input {
        if core::mem::take(&mut self.pending) {
            return match byte {
                COMMAND_KEY => self.deliver(byte),
                b'c' | b'C' => Input::Counters,
                b'l' | b'L' => Input::Log,
                b'n' | b'N' => {
                    self.focus = (self.focus + 1) % self.vms.max(1);
                    Input::Focus { vm: self.focus }
                }
                _ => Input::Help,
            };
        }
        if byte == COMMAND_KEY {
            self.pending = true;
            return Input::CommandPending;
        }
        self.deliver(byte)
    }

    fn deliver(&self, byte: u8) -> Input {
        Input::Deliver {
            vm: self.focus,
            byte,
        }
    }
}
