//! The hypervisor's console: the UART that `/chosen/stdout-path` names, behind one lock, and
//! the `log` logger that writes every message to it with a time/CPU/level prefix.
//!
//! Invariant: exitless runs with interrupts masked at EL2, so a plain spin lock is enough; the
//! panic path takes the lock with a bounded wait and writes anyway if it is stuck, so a CPU that
//! died holding the lock cannot silence the panic message.

use core::fmt::{self, Write};

use log::{LevelFilter, Log, Metadata, Record};
use spin::Mutex;

use super::bcm2835_aux::MiniUart;
use super::pl011::Pl011;
use crate::arch;
use exitless_core::platform::{UartInfo, UartKind};
use exitless_core::util::console_mux::Screen;
use exitless_core::util::logfmt::Prefix;

/// The console UART.
pub enum Uart {
    /// A PL011.
    Pl011(Pl011),
    /// The BCM2835 mini UART.
    MiniUart(MiniUart),
}

impl Uart {
    fn put(&self, byte: u8) {
        match self {
            Uart::Pl011(u) => u.put(byte),
            Uart::MiniUart(u) => u.put(byte),
        }
    }

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
    /// A guest's output left the cursor mid-line: the hypervisor ends that line before it
    /// prints its own (`util::console_mux`).
    guest_mid_line: bool,
}

impl Console {
    /// Ends a guest's unfinished line, so that what the hypervisor prints starts a line.
    fn end_guest_line(&mut self) {
        if core::mem::take(&mut self.guest_mid_line) {
            let _ = self.write_str("\n");
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(uart) = &self.uart {
            for b in s.bytes() {
                if b == b'\n' {
                    uart.put(b'\r');
                }
                uart.put(b);
            }
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: None,
    guest_mid_line: false,
});

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
    CONSOLE.lock().uart = Some(uart);
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
pub struct GuestScreen(spin::MutexGuard<'static, Console>);

/// Locks the console for guest output.
pub fn guest_screen() -> GuestScreen {
    GuestScreen(CONSOLE.lock())
}

impl Screen for GuestScreen {
    /// Raw bytes; `\n` becomes `\r\n`.
    fn write(&mut self, bytes: &[u8]) {
        if let Some(uart) = &self.0.uart {
            for &b in bytes {
                if b == b'\n' {
                    uart.put(b'\r');
                }
                uart.put(b);
            }
        }
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
            let _ = c.write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder has not released the lock for a long time (it is stuck or dead); a
    // garbled line is better than no panic message. The console state is only a UART handle,
    // which stays valid.
    unsafe { CONSOLE.force_unlock() };
    let _ = CONSOLE.lock().write_fmt(args);
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
