//! The log ring: the hypervisor's own console lines, kept in a fixed buffer so that they can be
//! printed again later (console command Ctrl-] l). Lines written while the console could not
//! transmit (a UART that was not yet set up, a stalled transmitter; see `util::uart_tx`), and the
//! first lines of the boot, stay readable this way.
//!
//! Invariant: the ring never allocates (it lives in a `static` from the first log line, before
//! the heap exists) and keeps the most recent `N` bytes. When it has wrapped, what it gives back
//! starts at a line start, so no half line is shown.

/// The most recent `N` bytes written to the console by the hypervisor.
#[derive(Debug, Clone)]
pub struct LogRing<const N: usize> {
    buf: [u8; N],
    /// Total bytes ever written; the next byte goes to `written % N`.
    written: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        LogRing {
            buf: [0; N],
            written: 0,
        }
    }

    /// Appends `bytes`, overwriting the oldest ones when full.
    pub fn write(&mut self, bytes: &[u8]) {
        if N == 0 {
            return;
        }
        // Only the last N bytes of a long write can survive.
        let skip = bytes.len().saturating_sub(N);
        self.written = self.written.wrapping_add(skip as u64);
        for &b in &bytes[skip..] {
            self.buf[(self.written % N as u64) as usize] = b;
            self.written = self.written.wrapping_add(1);
        }
    }

    /// Bytes written in all.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes overwritten (no longer in the ring).
    pub fn lost(&self) -> u64 {
        self.written.saturating_sub(N as u64)
    }

    /// The kept bytes, oldest first, as two slices (the ring's tail, then its head). After a
    /// wrap, the text starts after the first newline, so it begins with a whole line.
    pub fn contents(&self) -> (&[u8], &[u8]) {
        if self.written <= N as u64 {
            return (&self.buf[..self.written as usize], &[]);
        }
        let start = (self.written % N as u64) as usize;
        let (older, newer) = (&self.buf[start..], &self.buf[..start]);
        match older.iter().position(|&b| b == b'\n') {
            Some(i) => (&older[i + 1..], newer),
            None => match newer.iter().position(|&b| b == b'\n') {
                Some(i) => (&newer[i + 1..], &[]),
                // One line longer than the ring: show what there is.
                None => (older, newer),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn text<const N: usize>(r: &LogRing<N>) -> Vec<u8> {
        let (a, b) = r.contents();
        [a, b].concat()
    }

    #[test]
    fn an_unwrapped_ring_gives_back_everything_in_order() {
        let mut r = LogRing::<64>::new();
        r.write(b"line one\n");
        r.write(b"line two\n");
        assert_eq!(text(&r), b"line one\nline two\n");
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn a_wrapped_ring_keeps_the_newest_bytes_from_a_whole_line_on() {
        let mut r = LogRing::<32>::new();
        for i in 0..10 {
            r.write(alloc::format!("boot line {i}\n").as_bytes());
        }
        let t = text(&r);
        assert!(t.len() <= 32);
        assert!(t.ends_with(b"boot line 9\n"));
        assert!(
            t.starts_with(b"boot line "),
            "{:?}",
            core::str::from_utf8(&t)
        );
        assert_eq!(r.written(), 120);
        assert_eq!(r.lost(), 120 - 32);
    }

    #[test]
    fn a_write_longer_than_the_ring_keeps_its_tail() {
        let mut r = LogRing::<8>::new();
        r.write(b"abcdefghijklmnop");
        assert_eq!(text(&r), b"ijklmnop");
        assert_eq!(r.written(), 16);
    }

    #[test]
    fn a_ring_exactly_full_is_not_cut() {
        let mut r = LogRing::<6>::new();
        r.write(b"ab\ncd\n");
        assert_eq!(text(&r), b"ab\ncd\n");
    }
}
