//! Bounded UART transmit: a console whose transmitter never drains (a UART the firmware left
//! disabled, a clock that is off, pins routed elsewhere, flow control held) must cost a bounded
//! time per byte and never stop the hypervisor.
//!
//! [`TxGuard::put`] waits for room in the transmit FIFO for at most [`TxGuard::budget`] clock
//! ticks. A byte that finds no room in time is dropped and counted, and the guard enters the
//! *stalled* state: from then on a byte is sent only if the FIFO has room at the first look,
//! and dropped otherwise, so a dead console costs one register read per byte. The first byte
//! that finds room ends the stall.
//!
//! Invariant: one call to [`TxGuard::put`] reads the clock and the FIFO status a bounded number
//! of times: at most `budget` / (the clock's advance per poll) + 2, and exactly once when
//! stalled.

/// A UART transmitter, as the guard needs it.
pub trait TxPort {
    /// True if the transmit FIFO can take one more byte now.
    fn tx_ready(&mut self) -> bool;
    /// Writes `byte` to the transmit FIFO (called only right after `tx_ready` said true).
    fn send(&mut self, byte: u8);
}

/// A monotonic clock.
pub trait Clock {
    /// The current time, in ticks.
    fn now(&mut self) -> u64;
}

/// What happened to one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxResult {
    /// Written to the FIFO.
    Sent,
    /// Dropped: the FIFO had no room in time (or at once, while stalled).
    Dropped,
}

/// The transmit state of one console UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxGuard {
    budget: u64,
    stalled: bool,
    dropped: u64,
}

impl TxGuard {
    /// A guard that waits at most `budget` ticks for room for one byte.
    pub const fn new(budget: u64) -> Self {
        TxGuard {
            budget,
            stalled: false,
            dropped: 0,
        }
    }

    /// A guard for a clock of `freq` Hz: 10 ms per byte, about 100 byte times at 115200 baud
    /// (a FIFO that makes no room in that time is not draining). A clock that reports 0 Hz
    /// gets a budget of 10 ms at 1 GHz.
    pub const fn for_frequency(freq: u64) -> Self {
        let freq = if freq == 0 { 1_000_000_000 } else { freq };
        Self::new(freq / 100)
    }

    /// The longest wait for one byte, in ticks.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True while the transmitter is considered stalled.
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// Sends `byte` through `port` if the FIFO makes room within the budget; drops it otherwise.
    pub fn put(&mut self, port: &mut impl TxPort, clock: &mut impl Clock, byte: u8) -> TxResult {
        if port.tx_ready() {
            self.stalled = false;
            port.send(byte);
            return TxResult::Sent;
        }
        if !self.stalled {
            let deadline = clock.now().saturating_add(self.budget);
            loop {
                crate::util::lock::wait_hint();
                if port.tx_ready() {
                    port.send(byte);
                    return TxResult::Sent;
                }
                if clock.now() >= deadline {
                    break;
                }
            }
            self.stalled = true;
        }
        self.dropped = self.dropped.saturating_add(1);
        TxResult::Dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO of `room` bytes that drains one byte every `drain_every` status reads (never, if
    /// 0), counting the reads.
    struct FakeUart {
        room: u32,
        capacity: u32,
        drain_every: u32,
        reads: u64,
        sent: alloc::vec::Vec<u8>,
    }

    impl FakeUart {
        fn new(capacity: u32, drain_every: u32) -> Self {
            FakeUart {
                room: capacity,
                capacity,
                drain_every,
                reads: 0,
                sent: alloc::vec::Vec::new(),
            }
        }
    }

    impl TxPort for FakeUart {
        fn tx_ready(&mut self) -> bool {
            self.reads += 1;
            if self.drain_every != 0
                && self.reads.is_multiple_of(u64::from(self.drain_every))
                && self.room < self.capacity
            {
                self.room += 1;
            }
            self.room > 0
        }
        fn send(&mut self, byte: u8) {
            assert!(self.room > 0, "send without room");
            self.room -= 1;
            self.sent.push(byte);
        }
    }

    /// A clock that advances `step` ticks at every read.
    struct FakeClock {
        t: u64,
        step: u64,
        reads: u64,
    }

    impl FakeClock {
        fn new(step: u64) -> Self {
            FakeClock {
                t: 0,
                step,
                reads: 0,
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&mut self) -> u64 {
            self.reads += 1;
            self.t += self.step;
            self.t
        }
    }

    #[test]
    fn a_draining_uart_gets_every_byte_in_order() {
        let mut uart = FakeUart::new(16, 3);
        let mut clock = FakeClock::new(1);
        let mut g = TxGuard::new(1000);
        let text = b"exitless starting at EL2\n".repeat(20);
        for &b in &text {
            assert_eq!(g.put(&mut uart, &mut clock, b), TxResult::Sent);
        }
        assert_eq!(uart.sent, text);
        assert_eq!(g.dropped(), 0);
        assert!(!g.stalled());
    }

    #[test]
    fn a_uart_that_never_drains_costs_a_bounded_time_per_byte_and_the_boot_goes_on() {
        let mut uart = FakeUart::new(16, 0);
        let mut clock = FakeClock::new(10);
        let mut g = TxGuard::new(1000);
        // A whole boot log's worth of bytes: every call returns.
        let n = 100_000u64;
        for i in 0..n {
            let r = g.put(&mut uart, &mut clock, b'x');
            assert_eq!(
                r,
                if i < 16 {
                    TxResult::Sent
                } else {
                    TxResult::Dropped
                }
            );
        }
        assert_eq!(g.dropped(), n - 16);
        assert!(g.stalled());
        // Only the first dropped byte waited out the budget (1000 ticks / 10 per read = 100
        // reads); every later byte cost one status read and no clock read.
        assert!(clock.reads <= 100 + 2, "clock read {} times", clock.reads);
        assert!(
            uart.reads <= n + 100 + 2,
            "status read {} times",
            uart.reads
        );
    }

    #[test]
    fn a_stalled_uart_that_makes_room_again_ends_the_stall() {
        let mut uart = FakeUart::new(1, 0);
        let mut clock = FakeClock::new(1);
        let mut g = TxGuard::new(50);
        assert_eq!(g.put(&mut uart, &mut clock, b'a'), TxResult::Sent);
        assert_eq!(g.put(&mut uart, &mut clock, b'b'), TxResult::Dropped);
        assert!(g.stalled());
        uart.room = 1;
        assert_eq!(g.put(&mut uart, &mut clock, b'c'), TxResult::Sent);
        assert!(!g.stalled());
        assert_eq!(uart.sent, b"ac");
        assert_eq!(g.dropped(), 1);
    }

    #[test]
    fn a_slow_but_draining_uart_loses_nothing_within_the_budget() {
        // Drains one byte per 40 status reads; the budget covers 1000 reads.
        let mut uart = FakeUart::new(4, 40);
        let mut clock = FakeClock::new(1);
        let mut g = TxGuard::new(1000);
        for b in 0..200u8 {
            assert_eq!(g.put(&mut uart, &mut clock, b), TxResult::Sent);
        }
        assert_eq!(g.dropped(), 0);
    }

    #[test]
    fn the_budget_is_ten_milliseconds_of_the_clock() {
        assert_eq!(TxGuard::for_frequency(62_500_000).budget(), 625_000);
        assert_eq!(TxGuard::for_frequency(54_000_000).budget(), 540_000);
        assert_eq!(TxGuard::for_frequency(0).budget(), 10_000_000);
    }
}
