//! The hypervisor's console: the UART that `/chosen/stdout-path` names, behind one lock, and
//! the `log` logger that writes every message to it with a time/CPU/level prefix.
//!
//! Once the VMs run, nobody waits for the UART: what is printed goes into a transmit ring
//! ([`TXQ_SIZE`] bytes) that [`pump`] empties into the UART's FIFO only as far as the FIFO has
//! room, whenever a CPU passes by (every exit while output waits, and the idle loops); bytes that
//! find the ring full are dropped and counted. Guests' output reaches the ring through their own
//! per-VM rings (`hv::console`, `util::console_out`), which share it fairly. Before the VMs run,
//! and for a panic, the power-off and Ctrl-] l, the ring is emptied with waiting: every byte
//! goes through the core's `util::uart_tx::TxGuard`, which drops (and counts) a byte the
//! transmitter has no room for within 10 ms, and then stops waiting until it drains again; a
//! console that never drains costs one register read per byte and the boot goes on. Everything the hypervisor itself prints also
//! goes to a log ring (`util::log_ring`, [`LOG_RING_SIZE`] bytes) that the console command
//! Ctrl-] l prints again.
//!
//! Invariant: exitless runs with interrupts masked at EL2, so a plain spin lock is enough; the
//! panic path takes the lock with a bounded wait and writes anyway if it is stuck, so a CPU that
//! died holding the lock cannot silence the panic message.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use exitless_core::util::lock::{Mutex, MutexGuard};
use log::{LevelFilter, Log, Metadata, Record};

use super::bcm2835_aux::MiniUart;
use super::mmio::RawRegs;
use super::pl011::Pl011;
use crate::arch;
use exitless_core::platform::{UartInfo, UartKind, bcm2711};
use exitless_core::util::console_mux::Screen;
use exitless_core::util::console_out::ByteRing;
use exitless_core::util::log_ring::LogRing;
use exitless_core::util::logfmt::Prefix;
use exitless_core::util::uart_tx::{self, TxGuard, TxPort};

/// Bytes of the hypervisor's own console output kept for Ctrl-] l.
pub const LOG_RING_SIZE: usize = 16 << 10;
/// Bytes of output that may wait for the UART.
pub const TXQ_SIZE: usize = 16 << 10;

/// Output waits in the transmit ring (cheap to ask on every exit).
static PENDING: AtomicBool = AtomicBool::new(false);
/// Until the VMs run, the hypervisor's text is sent at once (waiting, bounded).
static WAIT_FOR_UART: AtomicBool = AtomicBool::new(true);

/// The console UART.
pub enum Uart {
    /// A PL011.
    Pl011(Pl011),
    /// The BCM2835 mini UART.
    MiniUart(MiniUart),
}

impl TxPort for &Uart {
    fn tx_ready(&mut self) -> bool {
        match self {
            Uart::Pl011(u) => u.tx_ready(),
            Uart::MiniUart(u) => u.tx_ready(),
        }
    }

    fn send(&mut self, byte: u8) {
        match self {
            Uart::Pl011(u) => u.send(byte),
            Uart::MiniUart(u) => u.send(byte),
        }
    }
}

/// The generic timer's counter, for the transmit guard's deadline.
struct Counter;

impl uart_tx::Clock for Counter {
    fn now(&mut self) -> u64 {
        arch::timer::ticks()
    }
}

impl Uart {
    /// A received byte, if one is waiting.
    pub fn get(&self) -> Option<u8> {
        match self {
            Uart::Pl011(u) => u.get(),
            Uart::MiniUart(u) => u.get(),
        }
    }

    /// Enables the receive interrupt.
    pub fn enable_rx_interrupt(&self) {
        match self {
            Uart::Pl011(u) => u.enable_rx_interrupt(),
            Uart::MiniUart(u) => u.enable_rx_interrupt(),
        }
    }
}

struct Console {
    uart: Option<Uart>,
    /// The bound on waiting for the transmitter, and the bytes it dropped.
    tx: TxGuard,
    /// The hypervisor's own output, for Ctrl-] l.
    ring: LogRing<LOG_RING_SIZE>,
    /// A guest's output left the cursor mid-line: the hypervisor ends that line before it
    /// prints its own (`util::console_mux`).
    guest_mid_line: bool,
    /// Output not yet in the UART's FIFO.
    txq: ByteRing<TXQ_SIZE>,
    /// Bytes dropped because the transmit ring was full.
    txq_dropped: u64,
}

impl Console {
    /// Queues raw bytes for the UART (`\n` as `\r\n`) and sends what the FIFO takes now;
    /// before the VMs run, sends everything (each wait bounded).
    fn transmit(&mut self, bytes: &[u8]) {
        if self.uart.is_none() {
            return;
        }
        for &b in bytes {
            if (b == b'\n' && !self.txq.push(b'\r')) || !self.txq.push(b) {
                self.txq_dropped += 1;
            }
            if self.txq.free() < 2 && WAIT_FOR_UART.load(Ordering::Relaxed) {
                self.flush_blocking();
            }
        }
        if WAIT_FOR_UART.load(Ordering::Relaxed) {
            self.flush_blocking();
        } else {
            self.pump();
        }
    }

    /// Moves queued bytes into the UART's FIFO while it has room; never waits.
    fn pump(&mut self) {
        if let Some(uart) = &self.uart {
            let mut port = uart;
            while !self.txq.is_empty() && port.tx_ready() {
                if let Some(b) = self.txq.pop() {
                    port.send(b);
                }
            }
        }
        PENDING.store(!self.txq.is_empty(), Ordering::Relaxed);
    }

    /// Sends everything queued, each wait bounded by the transmit guard.
    fn flush_blocking(&mut self) {
        if let Some(uart) = &self.uart {
            while let Some(b) = self.txq.pop() {
                self.tx.put(&mut &*uart, &mut Counter, b);
            }
        }
        PENDING.store(false, Ordering::Relaxed);
    }

    /// Ends a guest's unfinished line, so that what the hypervisor prints starts a line.
    fn end_guest_line(&mut self) {
        if core::mem::take(&mut self.guest_mid_line) {
            let _ = self.write_str("\n");
        }
    }
}

/// The hypervisor's own text: to the log ring and the UART.
impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.ring.write(s.as_bytes());
        self.transmit(s.as_bytes());
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: None,
    tx: TxGuard::new(0),
    ring: LogRing::new(),
    guest_mid_line: false,
    txq: ByteRing::new(),
    txq_dropped: 0,
});

/// From now on nobody waits for the UART (called once the VMs run).
pub fn stop_waiting_for_uart() {
    WAIT_FOR_UART.store(false, Ordering::Relaxed);
}

/// True if output waits for the UART.
pub fn output_pending() -> bool {
    PENDING.load(Ordering::Relaxed)
}

/// Sends what the UART's FIFO takes now, unless another CPU is at the console.
pub fn pump() {
    if let Some(mut c) = CONSOLE.try_lock() {
        c.pump();
    }
}

/// Sends everything queued, waiting (power-off); gives up if the console stays locked.
pub fn flush() {
    for _ in 0..1_000_000 {
        if let Some(mut c) = CONSOLE.try_lock() {
            c.flush_blocking();
            return;
        }
        crate::arch::spin_hint();
    }
}

/// Starts using the UART `info` as the console.
///
/// # Safety
///
/// `info` must describe a real UART of its kind, mapped as device memory for the rest of the
/// run (or the MMU off), that nothing else drives.
pub unsafe fn init(info: &UartInfo) {
    let uart = match info.kind {
        // SAFETY: forwarded from the caller.
        UartKind::Pl011 => Uart::Pl011(unsafe { Pl011::new(info.base as usize) }),
        // SAFETY: forwarded from the caller.
        UartKind::Bcm2835Aux => Uart::MiniUart(unsafe { MiniUart::new(info.base as usize) }),
    };
    let mut c = CONSOLE.lock();
    c.uart = Some(uart);
    c.tx = TxGuard::for_frequency(arch::timer::frequency());
}

/// What [`setup_owned`] did, read back from the registers.
#[derive(Debug, Clone, Copy)]
pub struct OwnedSetup {
    /// GPFSEL1 after routing GPIO 14/15.
    pub gpfsel1: u32,
    /// The UART's registers after programming (`None`: the divisor does not fit).
    pub uart: Option<bcm2711::Pl011Setup>,
}

/// Sets up the Raspberry Pi 4's UART0 console as the core's `platform::bcm2711` says: GPIO
/// 14/15 to ALT0, then the PL011's baud, format and enables. Call before [`init`].
///
/// # Safety
///
/// `owned` must describe the BCM2711's GPIO block and UART0 from the device tree, reachable
/// (MMU off, or mapped as device memory), and nothing else may drive them meanwhile.
pub unsafe fn setup_owned(owned: &bcm2711::OwnedConsole) -> OwnedSetup {
    // SAFETY: forwarded from the caller: the GPIO block; the offsets used are its registers.
    let mut gpio = unsafe { RawRegs::new(owned.gpio as usize) };
    // SAFETY: forwarded from the caller: UART0, a PL011; the offsets used are its registers.
    let mut uart = unsafe { RawRegs::new(owned.uart.base as usize) };
    let gpfsel1 = bcm2711::route_uart0_pins(&mut gpio);
    let uart = bcm2711::setup_pl011(&mut uart, owned.clock_hz, owned.baud);
    OwnedSetup { gpfsel1, uart }
}

/// Writes formatted text to the console (no prefix), on a line of its own if a guest left one
/// unfinished.
pub fn print(args: fmt::Arguments<'_>) {
    let mut c = CONSOLE.lock();
    c.end_guest_line();
    let _ = c.write_fmt(args);
}

/// The console, locked for one piece of guest output: what `util::console_mux` writes through
/// it cannot be split by another CPU's log line.
pub struct GuestScreen(MutexGuard<'static, Console>);

/// Locks the console for guest output.
pub fn guest_screen() -> GuestScreen {
    GuestScreen(CONSOLE.lock())
}

/// The console for guest output, unless another CPU is at it.
pub fn try_guest_screen() -> Option<GuestScreen> {
    CONSOLE.try_lock().map(GuestScreen)
}

impl GuestScreen {
    /// Bytes the transmit ring can take now.
    pub fn room(&self) -> usize {
        self.0.txq.free()
    }
}

impl Screen for GuestScreen {
    /// Raw bytes; `\n` becomes `\r\n`.
    fn write(&mut self, bytes: &[u8]) {
        self.0.transmit(bytes);
    }
    fn mid_line(&self) -> bool {
        self.0.guest_mid_line
    }
    fn set_mid_line(&mut self, mid: bool) {
        self.0.guest_mid_line = mid;
    }
}

/// Makes the console UART raise its interrupt when it receives data.
pub fn enable_rx_interrupt() {
    if let Some(uart) = &CONSOLE.lock().uart {
        uart.enable_rx_interrupt();
    }
}

/// Writes formatted text even if another CPU holds the console lock (for panics and fatal
/// exception reports): waits a bounded time, then writes without the lock.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(mut c) = CONSOLE.try_lock() {
            emergency_write(&mut c, args);
            return;
        }
        crate::arch::spin_hint();
    }
    // SAFETY: the holder has not released the lock for a long time (it is stuck or dead); a
    // garbled line is better than no panic message. The console state is only a UART handle,
    // which stays valid.
    unsafe { CONSOLE.force_unlock() };
    emergency_write(&mut CONSOLE.lock(), args);
}

/// What is queued, then `args`, sent now (waiting, bounded).
fn emergency_write(c: &mut Console, args: fmt::Arguments<'_>) {
    c.flush_blocking();
    let _ = c.write_fmt(args);
    c.flush_blocking();
}

/// True if the console's lock is held (for the fatal-error policy).
pub fn lock_held() -> bool {
    CONSOLE.is_locked()
}

/// Prints the log ring again (the hypervisor's own lines, oldest first, from a line start),
/// framed, with how many bytes the transmitter dropped. The frame is not kept in the ring.
pub fn replay_log() {
    let mut c = CONSOLE.lock();
    c.end_guest_line();
    // Formatted on the stack: the console's keys act on CPU 0's exit path (nothing allocates).
    let mut head = heapless::String::<128>::new();
    let _ = writeln!(
        head,
        "=== hypervisor log ({} bytes no longer kept; {} bytes the UART dropped) ===",
        c.ring.lost(),
        c.tx.dropped() + c.txq_dropped
    );
    c.transmit(head.as_bytes());
    // A user asked: this one waits for the UART, piece by piece.
    c.flush_blocking();
    // Copied out in pieces: the ring cannot be borrowed while the console transmits.
    let mut buf = [0u8; 256];
    let mut at = 0;
    loop {
        let n = {
            let (a, b) = c.ring.contents();
            let rest = a.iter().chain(b.iter()).skip(at);
            let mut n = 0;
            for (slot, &byte) in buf.iter_mut().zip(rest) {
                *slot = byte;
                n += 1;
            }
            n
        };
        if n == 0 {
            break;
        }
        c.transmit(&buf[..n]);
        c.flush_blocking();
        at += n;
    }
    c.transmit(b"=== end of the hypervisor log ===\n");
}

/// Reads a byte from the console, if one is waiting.
pub fn get_byte() -> Option<u8> {
    CONSOLE.lock().uart.as_ref().and_then(Uart::get)
}

/// Prints like `print!`, to the hypervisor console.
#[macro_export]
macro_rules! console_print {
    ($($arg:tt)*) => { $crate::drivers::console::print(format_args!($($arg)*)) };
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = Prefix {
            ticks: arch::timer::since_boot(),
            freq: arch::timer::frequency(),
            cpu: arch::cpu_index(),
            level: record.level(),
        };
        let mut c = CONSOLE.lock();
        c.end_guest_line();
        let _ = writeln!(c, "{prefix}{}", record.args());
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the console logger at `level`.
pub fn init_logger(level: LevelFilter) {
    // A second call (impossible on the boot path) would only keep the first logger.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
