//! Several VMs' console output on one UART, whole lines at a time, each line prefixed with its
//! VM's name (`[alpha] ...`), as Xen prefixes guest console lines with `(dN)`.
//!
//! Guests write their UART a byte at a time (one trapped store each), so printing bytes as they
//! come mixes two VMs' lines character by character. The rules:
//!
//! * The VM with the console **focus** (the one that gets input, so whose prompt and echo must
//!   show at once) prints straight through; its name starts each of its lines.
//! * Every other VM's output is kept until it completes a line, and complete lines are printed
//!   only while the screen is at the start of a line. So they never split the focused VM's
//!   line; they wait for its newline.
//! * A waiting VM whose kept output passes [`HOLD_LIMIT`] bytes (the focused VM sits at a
//!   prompt) ends the focused VM's line on screen with a newline and prints its lines; the
//!   focused VM's next byte then starts a new, prefixed line.
//!
//! Invariants: a line on the screen holds bytes of one VM only; a VM's held output fits the room
//! reserved for it at creation (no allocation after [`ConsoleMux::new`]). The screen itself tells whether
//! its cursor is mid-line ([`Screen::mid_line`]), so that the hypervisor's log can end the
//! line first as well.

use alloc::vec::Vec;

/// How many bytes a VM without the focus may keep waiting for the screen.
pub const HOLD_LIMIT: usize = 4096;
/// The room each VM's held buffer gets when the multiplexer is built: held output never grows
/// past it, so output (on a vCPU's exit path) never allocates.
const HELD_ROOM: usize = 2 * HOLD_LIMIT;

/// The physical console, as the multiplexer needs it.
pub trait Screen {
    /// Prints bytes.
    fn write(&mut self, bytes: &[u8]);
    /// True if the focused VM's output left the cursor mid-line.
    fn mid_line(&self) -> bool;
    /// Records whether the cursor is mid-line after the focused VM's output.
    fn set_mid_line(&mut self, mid: bool);
}

/// Line-by-line multiplexing of VM consoles (module documentation).
#[derive(Debug, Clone)]
pub struct ConsoleMux {
    held: Vec<Vec<u8>>,
    focus: usize,
}

impl ConsoleMux {
    /// A multiplexer for `vms` VMs, VM `focus` having the focus.
    pub fn new(vms: usize, focus: usize) -> Self {
        ConsoleMux {
            held: (0..vms).map(|_| Vec::with_capacity(HELD_ROOM)).collect(),
            focus,
        }
    }

    /// The VM with the focus.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// VM `vm` wrote `bytes`; `name(n)` is VM n's name.
    pub fn output<'a>(
        &mut self,
        vm: usize,
        bytes: &[u8],
        name: impl Fn(usize) -> &'a str,
        screen: &mut impl Screen,
    ) {
        if vm >= self.held.len() {
            return;
        }
        if vm == self.focus {
            let mut rest = bytes;
            while !rest.is_empty() {
                if !screen.mid_line() {
                    prefix(screen, name(vm));
                    screen.set_mid_line(true);
                }
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                screen.write(&rest[..end]);
                if rest[end - 1] == b'\n' {
                    screen.set_mid_line(false);
                    self.flush_others(&name, screen);
                }
                rest = &rest[end..];
            }
            return;
        }
        // Piece by piece, each within the room left: after each piece at most HOLD_LIMIT bytes
        // stay held (more and they are printed), so the next piece has room too.
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = HELD_ROOM.saturating_sub(self.held[vm].len()).max(1);
            let (now, later) = rest.split_at(rest.len().min(room));
            rest = later;
            self.held[vm].extend_from_slice(now);
            if screen.mid_line() && self.held[vm].len() > HOLD_LIMIT {
                screen.write(b"\n");
                screen.set_mid_line(false);
            }
            if !screen.mid_line() {
                self.flush(vm, name(vm), screen);
                if self.held[vm].len() > HOLD_LIMIT {
                    // One line longer than the limit: print it as it is, ended.
                    prefix(screen, name(vm));
                    screen.write(&self.held[vm]);
                    screen.write(b"\n");
                    self.held[vm].clear();
                }
            }
        }
    }

    /// Moves the focus to VM `vm`: the old one's line is ended, and held lines are printed.
    pub fn set_focus<'a>(
        &mut self,
        vm: usize,
        name: impl Fn(usize) -> &'a str,
        screen: &mut impl Screen,
    ) {
        if vm >= self.held.len() {
            return;
        }
        if screen.mid_line() {
            screen.write(b"\n");
            screen.set_mid_line(false);
        }
        // What the new focus held is printed now; its later output goes straight through.
        self.flush(vm, name(vm), screen);
        let mut partial = core::mem::take(&mut self.held[vm]);
        self.focus = vm;
        self.flush_others(&name, screen);
        self.output(vm, &partial, name, screen);
        // The buffer goes back, emptied, with its room.
        partial.clear();
        self.held[vm] = partial;
    }

    /// Prints the complete lines every VM without the focus holds.
    fn flush_others<'a>(&mut self, name: &impl Fn(usize) -> &'a str, screen: &mut impl Screen) {
        for v in 0..self.held.len() {
            if v != self.focus {
                self.flush(v, name(v), screen);
            }
        }
    }

    /// Prints VM `vm`'s complete held lines, each prefixed; keeps a trailing partial line.
    fn flush(&mut self, vm: usize, name: &str, screen: &mut impl Screen) {
        let held = &mut self.held[vm];
        let Some(last) = held.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in held[..=last].split_inclusive(|&b| b == b'\n') {
            prefix(screen, name);
            screen.write(line);
        }
        held.drain(..=last);
    }
}

fn prefix(screen: &mut impl Screen, name: &str) {
    screen.write(b"[");
    screen.write(name.as_bytes());
    screen.write(b"] ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[derive(Default)]
    struct Fake {
        out: Vec<u8>,
        mid: bool,
    }
    impl Screen for Fake {
        fn write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn mid_line(&self) -> bool {
            self.mid
        }
        fn set_mid_line(&mut self, mid: bool) {
            self.mid = mid;
        }
    }
    impl Fake {
        fn text(&self) -> String {
            String::from_utf8(self.out.clone()).unwrap()
        }
    }

    fn name(n: usize) -> &'static str {
        ["alpha", "beta", "gamma"][n]
    }

    /// Feeds `text` one byte at a time, as trapped UART stores arrive.
    fn bytes(m: &mut ConsoleMux, s: &mut Fake, vm: usize, text: &str) {
        for b in text.bytes() {
            m.output(vm, &[b], name, s);
        }
    }

    /// Output is on the exit path (a trapped UART store): whatever a VM writes, in chunks of any
    /// size, with or without newlines, while the focused VM sits mid-line or not, its held
    /// buffer keeps the room it was built with (no allocation), and no byte is lost.
    #[test]
    fn held_output_of_any_size_never_allocates_and_loses_nothing() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        let before = (m.held[1].capacity(), m.held[1].as_ptr());
        bytes(&mut m, &mut s, 0, "# ");
        let long = "x".repeat(5 * HOLD_LIMIT + 17);
        m.output(1, long.as_bytes(), name, &mut s);
        m.output(1, b"\nshort line\n", name, &mut s);
        for _ in 0..3 * HOLD_LIMIT {
            m.output(1, b"y", name, &mut s);
        }
        m.set_focus(1, name, &mut s);
        m.set_focus(0, name, &mut s);
        m.output(1, long.as_bytes(), name, &mut s);
        assert_eq!((m.held[1].capacity(), m.held[1].as_ptr()), before);
        let text = s.text();
        assert_eq!(
            text.matches('x').count(),
            2 * long.len(),
            "every byte printed"
        );
        assert_eq!(text.matches('y').count(), 3 * HOLD_LIMIT);
        assert!(text.contains("[beta] short line\n"));
    }

    #[test]
    fn the_focused_vm_prints_through_with_its_name_on_each_line() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 0, "one\ntwo\n# ");
        assert_eq!(s.text(), "[alpha] one\n[alpha] two\n[alpha] # ");
    }

    #[test]
    fn another_vms_line_waits_for_the_focused_vms_newline() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 0, "arch_timer");
        bytes(&mut m, &mut s, 1, "counts rose\n");
        bytes(&mut m, &mut s, 0, " rose\n");
        assert_eq!(s.text(), "[alpha] arch_timer rose\n[beta] counts rose\n");
    }

    #[test]
    fn interleaved_bytes_of_two_vms_never_share_a_line() {
        let (mut m, mut s) = (ConsoleMux::new(3, 0), Fake::default());
        let lines = ["first line of a\n", "b says hello\n", "c is here too\n"];
        let longest = lines.iter().map(|l| l.len()).max().unwrap();
        for i in 0..longest {
            for (vm, l) in lines.iter().enumerate() {
                if let Some(b) = l.as_bytes().get(i) {
                    m.output(vm, &[*b], name, &mut s);
                }
            }
        }
        assert_eq!(
            s.text(),
            "[alpha] first line of a\n[beta] b says hello\n[gamma] c is here too\n"
        );
    }

    #[test]
    fn a_vm_without_the_focus_keeps_its_partial_line() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 1, "done\n# ");
        assert_eq!(s.text(), "[beta] done\n");
    }

    #[test]
    fn too_much_held_output_ends_the_focused_line_and_the_focus_reprefixes() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 0, "# ");
        let line = "x".repeat(99) + "\n";
        for _ in 0..=HOLD_LIMIT / line.len() {
            m.output(1, line.as_bytes(), name, &mut s);
        }
        let t = s.text();
        assert!(t.starts_with("[alpha] # \n[beta] xxx"), "{t:.30}");
        bytes(&mut m, &mut s, 0, "ls\n");
        assert!(s.text().ends_with("\n[alpha] ls\n"));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_printed_ended() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        m.output(1, "y".repeat(HOLD_LIMIT + 1).as_bytes(), name, &mut s);
        assert_eq!(
            s.text(),
            std::format!("[beta] {}\n", "y".repeat(HOLD_LIMIT + 1))
        );
    }

    #[test]
    fn moving_the_focus_ends_the_old_line_and_shows_the_new_focus_prompt() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 0, "# ");
        bytes(&mut m, &mut s, 1, "ready\n$ ");
        m.set_focus(1, name, &mut s);
        assert_eq!(s.text(), "[alpha] # \n[beta] ready\n[beta] $ ");
        assert_eq!(m.focus(), 1);
        bytes(&mut m, &mut s, 0, "late\n");
        bytes(&mut m, &mut s, 1, "x\n");
        assert!(s.text().ends_with("[beta] $ x\n[alpha] late\n"));
    }

    #[test]
    fn a_hypervisor_log_line_between_makes_the_focus_reprefix() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        bytes(&mut m, &mut s, 0, "abc");
        // The logger ends the line and prints its own (drivers::console does this).
        s.write(b"\nlog\n");
        s.set_mid_line(false);
        bytes(&mut m, &mut s, 0, "def\n");
        assert_eq!(s.text(), "[alpha] abc\nlog\n[alpha] def\n");
    }

    #[test]
    fn an_unknown_vm_is_ignored() {
        let (mut m, mut s) = (ConsoleMux::new(2, 0), Fake::default());
        m.output(7, b"x\n", name, &mut s);
        m.set_focus(7, name, &mut s);
        assert!(s.out.is_empty());
        assert_eq!(m.focus(), 0);
    }
}
