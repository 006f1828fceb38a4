//! Console output that never makes anyone wait for the UART: a byte ring per VM that the guest's
//! UART writes fill, drained round robin into the console's transmit ring (itself emptied into
//! the UART's FIFO only as far as the FIFO has room, whenever a CPU passes by), so a guest that
//! writes faster than the UART sends loses its own excess, counted, and nobody else's.
//!
//! Rules:
//! * A VM's ring holds [`VM_OUT_BYTES`]; bytes written while it is full are dropped and counted
//!   against that VM ([`ConsoleQueues::dropped`]).
//! * [`ConsoleQueues::drain`] moves at most [`DRAIN_CHUNK`] bytes of one VM at a time, VMs in
//!   turn, and only while the sink reports at least [`DRAIN_ROOM`] bytes of room: room for a
//!   chunk and anything the multiplexer may print with it (a held line of up to
//!   `console_mux::HOLD_LIMIT` bytes, name prefixes, `\r\n` for `\n`). So a flooding VM gets
//!   its turn and no more, and the transmit ring never overflows because of a guest.
//!
//! Invariant: no allocation after [`ConsoleQueues::new`]; one `drain` does work bounded by the
//! rings' sizes.

use alloc::vec::Vec;

use super::console_mux::HOLD_LIMIT;

/// Bytes of console output a VM may have waiting.
pub const VM_OUT_BYTES: usize = 4096;
/// Bytes of one VM moved per turn.
pub const DRAIN_CHUNK: usize = 256;
/// Room a sink must have for one more chunk (see the module's rules).
pub const DRAIN_ROOM: usize = 2 * (DRAIN_CHUNK + HOLD_LIMIT) + 256;

/// A fixed-size FIFO of bytes.
#[derive(Debug, Clone)]
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        ByteRing {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn free(&self) -> usize {
        N - self.len
    }

    /// Appends one byte; false (and nothing changes) if the ring is full.
    pub fn push(&mut self, b: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
        true
    }

    /// Appends as much of `bytes` as fits; returns how many.
    pub fn push_slice(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        for &b in &bytes[..n] {
            self.push(b);
        }
        n
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(b)
    }

    /// Takes up to `out.len()` of the oldest bytes into `out`; returns how many.
    pub fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for slot in &mut out[..n] {
            *slot = self.pop().unwrap_or(0);
        }
        n
    }
}

/// Where drained output goes (the multiplexer and the console's transmit ring).
pub trait Sink {
    /// Bytes it can take now without anyone waiting.
    fn room(&self) -> usize;
    /// VM `vm`'s next bytes.
    fn emit(&mut self, vm: usize, bytes: &[u8]);
}

/// The per-VM output rings (module documentation).
#[derive(Debug)]
pub struct ConsoleQueues {
    vms: Vec<VmQueue>,
    next: usize,
}

#[derive(Debug)]
struct VmQueue {
    ring: ByteRing<VM_OUT_BYTES>,
    dropped: u64,
}

impl ConsoleQueues {
    /// Rings for `vms` VMs (the only allocation).
    pub fn new(vms: usize) -> Self {
        ConsoleQueues {
            vms: (0..vms)
                .map(|_| VmQueue {
                    ring: ByteRing::new(),
                    dropped: 0,
                })
                .collect(),
            next: 0,
        }
    }

    /// VM `vm` wrote `bytes`: queued, the excess dropped and counted. Returns the bytes dropped.
    pub fn push(&mut self, vm: usize, bytes: &[u8]) -> usize {
        let Some(q) = self.vms.get_mut(vm) else {
            return 0;
        };
        let lost = bytes.len() - q.ring.push_slice(bytes);
        q.dropped += lost as u64;
        lost
    }

    /// True if no VM has output waiting.
    pub fn is_empty(&self) -> bool {
        self.vms.iter().all(|q| q.ring.is_empty())
    }

    /// Bytes of VM `vm`'s output dropped so far.
    pub fn dropped(&self, vm: usize) -> u64 {
        self.vms.get(vm).map_or(0, |q| q.dropped)
    }

    /// Moves waiting output into `sink`, VMs in turn, while it has room (module rules).
    pub fn drain(&mut self, sink: &mut impl Sink) {
        let n = self.vms.len();
        let mut idle_turns = 0;
        while idle_turns < n && sink.room() >= DRAIN_ROOM {
            let vm = self.next;
            self.next = (self.next + 1) % n;
            let mut chunk = [0u8; DRAIN_CHUNK];
            let len = self.vms[vm].ring.pop_into(&mut chunk);
            if len == 0 {
                idle_turns += 1;
                continue;
            }
            idle_turns = 0;
            sink.emit(vm, &chunk[..len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_byte_ring_keeps_order_across_the_wrap_and_refuses_when_full() {
        let mut r = ByteRing::<4>::new();
        assert_eq!(r.push_slice(b"abc"), 3);
        assert_eq!(r.pop(), Some(b'a'));
        assert_eq!(r.push_slice(b"def"), 2, "room for two");
        let mut out = [0; 8];
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(&out[..4], b"bcde");
        assert!(r.is_empty() && r.pop().is_none());
    }

    /// A UART that sends `rate` bytes per pump: a sink with a transmit ring of `cap` bytes.
    struct SlowConsole {
        txq: Vec<(usize, u8)>,
        cap: usize,
        shown: Vec<Vec<u8>>,
    }

    impl Sink for SlowConsole {
        fn room(&self) -> usize {
            self.cap - self.txq.len()
        }
        fn emit(&mut self, vm: usize, bytes: &[u8]) {
            assert!(bytes.len() <= self.room(), "the transmit ring overflowed");
            self.txq.extend(bytes.iter().map(|&b| (vm, b)));
        }
    }

    impl SlowConsole {
        fn pump(&mut self, rate: usize) {
            let n = rate.min(self.txq.len());
            for (vm, b) in self.txq.drain(..n) {
                self.shown[vm].push(b);
            }
        }
    }

    /// The rule: a VM that floods its console loses its own excess output, counted, and
    /// a quiet VM beside it loses nothing, with the UART far slower than the flood.
    #[test]
    fn a_flooding_vm_loses_only_its_own_output_and_it_is_counted() {
        let mut q = ConsoleQueues::new(2);
        let mut con = SlowConsole {
            txq: Vec::new(),
            cap: 16 << 10,
            shown: vec![Vec::new(), Vec::new()],
        };
        let mut quiet = Vec::new();
        let mut flood_written = 0u64;
        for round in 0..2000 {
            // VM 0 writes 1 KiB per round; VM 1 one short line every 10 rounds.
            let flood = [b'x'; 1024];
            q.push(0, &flood);
            flood_written += 1024;
            if round % 10 == 0 {
                let line = alloc::format!("line {round}\n");
                assert_eq!(q.push(1, line.as_bytes()), 0, "the quiet VM never drops");
                quiet.extend_from_slice(line.as_bytes());
            }
            q.drain(&mut con);
            con.pump(64); // the UART: 64 bytes per round
        }
        while !q.is_empty() || !con.txq.is_empty() {
            q.drain(&mut con);
            con.pump(64);
        }
        assert_eq!(con.shown[1], quiet, "every byte of the quiet VM, in order");
        assert_eq!(q.dropped(1), 0);
        let shown0 = con.shown[0].len() as u64;
        assert!(q.dropped(0) > 0, "the flood was throttled");
        assert_eq!(
            shown0 + q.dropped(0),
            flood_written,
            "every flood byte shown or counted"
        );
    }

    #[test]
    fn drain_stops_while_the_sink_lacks_room_and_moves_one_chunk_per_turn() {
        let mut q = ConsoleQueues::new(2);
        q.push(0, &[b'a'; 1000]);
        q.push(1, &[b'b'; 10]);
        let mut con = SlowConsole {
            txq: Vec::new(),
            cap: DRAIN_ROOM + DRAIN_CHUNK,
            shown: vec![Vec::new(), Vec::new()],
        };
        q.drain(&mut con);
        let order: Vec<usize> = con.txq.iter().map(|&(vm, _)| vm).collect();
        assert_eq!(order.len(), DRAIN_CHUNK + 10, "room for two turns only");
        assert_eq!(
            order[DRAIN_CHUNK], 1,
            "VM 1 had its turn after one chunk of VM 0"
        );
    }

    #[test]
    fn an_unknown_vm_is_ignored() {
        let mut q = ConsoleQueues::new(1);
        assert_eq!(q.push(5, b"x"), 0);
        assert!(q.is_empty());
    }
}
