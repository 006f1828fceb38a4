//! The Raspberry Pi 4's console, owned by exitless: the BCM2711's PL011 UART0 on GPIO 14/15
//! (header pins 8 and 10), set up here instead of trusted to the firmware.
//!
//! The firmware sets a console up only when it judges it the console, from the DTB's
//! `__symbols__` or `/aliases`, and by default it routes GPIO 14/15 to the mini UART, whose baud
//! rate follows the VPU core clock. exitless does what TF-A and U-Boot do instead: it routes
//! GPIO 14/15 to UART0 (function ALT0) itself and programs UART0's baud rate from its own
//! 48 MHz reference clock (the firmware's `init_uart_clock` default, pinned in the SD card's
//! `config.txt`), so the console comes up at 115200 8N1 whatever the DTB or the firmware did.
//! Bluetooth, which also uses UART0 and which exitless does not use, loses it.
//!
//! Sources: BCM2711 ARM Peripherals (2020), 5.2 "GPIO register view" (GPFSEL1,
//! GPIO_PUP_PDN_CNTRL_REG0) and 5.3 "Alternative function assignments" (GPIO 14/15 ALT0 =
//! TXD0/RXD0); PL011 TRM (DDI 0183G) 3.3 (UARTIBRD, UARTFBRD, UARTLCR_H, UARTCR) and 3.3.6
//! (the baud divisor, in 64ths).
//!
//! Pure: the register sequences run against [`RegisterBlock`], which the shell implements with
//! volatile accesses and the tests with a fake. Invariant: every wait on the hardware is
//! bounded ([`PL011_IDLE_POLLS`]).

use fdt::Fdt;

use super::{UartInfo, UartKind, dt};

/// A block of 32-bit device registers, by byte offset.
pub trait RegisterBlock {
    /// Reads the register at `offset`.
    fn read(&mut self, offset: usize) -> u32;
    /// Writes the register at `offset`.
    fn write(&mut self, offset: usize, value: u32);
}

/// The SoC's compatible string (root node).
pub const SOC_COMPATIBLE: &str = "brcm,bcm2711";
/// UART0's node: a PL011 at bus address 0x7e201000.
pub const UART0_PATH: &str = "/soc/serial@7e201000";
/// The GPIO block's node, at bus address 0x7e200000.
pub const GPIO_PATH: &str = "/soc/gpio@7e200000";
/// UART0's reference clock: 48 MHz (`init_uart_clock`, the Pi 4 firmware's default).
pub const UART0_CLOCK_HZ: u32 = 48_000_000;
/// The console's baud rate.
pub const CONSOLE_BAUD: u32 = 115_200;

/// GPFSEL1: function select of GPIO 10-19, 3 bits each.
pub const GPFSEL1: usize = 0x04;
/// GPIO_PUP_PDN_CNTRL_REG0: pull of GPIO 0-15, 2 bits each (BCM2711; the BCM2835's GPPUD is
/// gone).
pub const GPIO_PUP_PDN_CNTRL_REG0: usize = 0xe4;
/// Function select value ALT0 (0b100): GPIO 14 = TXD0, GPIO 15 = RXD0.
pub const FSEL_ALT0: u32 = 0b100;
/// Pull value: none.
pub const PULL_NONE: u32 = 0b00;
/// Pull value: up.
pub const PULL_UP: u32 = 0b01;

/// PL011 UARTFR.
pub const UARTFR: usize = 0x18;
/// PL011 UARTIBRD.
pub const UARTIBRD: usize = 0x24;
/// PL011 UARTFBRD.
pub const UARTFBRD: usize = 0x28;
/// PL011 UARTLCR_H.
pub const UARTLCR_H: usize = 0x2c;
/// PL011 UARTCR.
pub const UARTCR: usize = 0x30;
/// PL011 UARTIMSC.
pub const UARTIMSC: usize = 0x38;
/// PL011 UARTICR.
pub const UARTICR: usize = 0x44;
/// UARTFR.BUSY.
pub const FR_BUSY: u32 = 1 << 3;
/// UARTLCR_H: 8 data bits (WLEN = 0b11), FIFOs enabled (FEN), no parity, 1 stop bit.
pub const LCR_H_8N1_FIFO: u32 = (0b11 << 5) | (1 << 4);
/// UARTCR: UART, transmitter and receiver enabled.
pub const CR_UARTEN_TXE_RXE: u32 = (1 << 9) | (1 << 8) | 1;
/// Every interrupt bit of UARTICR.
pub const ICR_ALL: u32 = 0x7ff;
/// Most UARTFR reads while waiting for a character in flight to leave before the UART is
/// reprogrammed (a character at 1200 baud is ~8 ms; a register read is well over 10 ns).
pub const PL011_IDLE_POLLS: u32 = 1_000_000;

/// The Pi 4's console as exitless sets it up: UART0 and the GPIO block that routes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedConsole {
    /// UART0 (a PL011).
    pub uart: UartInfo,
    /// The GPIO block's base (CPU physical address).
    pub gpio: u64,
    /// UART0's reference clock, Hz.
    pub clock_hz: u32,
    /// The baud rate to program.
    pub baud: u32,
}

/// On a BCM2711 whose tree has UART0 and the GPIO block, the console exitless sets up itself;
/// `None` on any other machine (its console is the one `/chosen/stdout-path` names).
pub fn owned_console<'a>(fdt: &'a Fdt<'a>) -> Option<OwnedConsole> {
    let root = fdt.find_node("/")?;
    if !dt::is_compatible(&root, &[SOC_COMPATIBLE]) {
        return None;
    }
    let (uart_node, uart_bus) = dt::find_path(fdt, UART0_PATH)?;
    if !dt::is_compatible(&uart_node, super::PL011_COMPATIBLE) {
        return None;
    }
    let (gpio_node, gpio_bus) = dt::find_path(fdt, GPIO_PATH)?;
    if !dt::is_compatible(&gpio_node, &["brcm,bcm2711-gpio", "brcm,bcm2835-gpio"]) {
        return None;
    }
    let uart = super::uart(&uart_node, &uart_bus, UartKind::Pl011)?;
    let gpio = gpio_bus.reg::<1>(&gpio_node).first()?.start;
    Some(OwnedConsole {
        uart,
        gpio,
        clock_hz: UART0_CLOCK_HZ,
        baud: CONSOLE_BAUD,
    })
}

/// The PL011 divisor for `baud` from a `clock_hz` reference: (UARTIBRD, UARTFBRD), i.e.
/// clock / (16 * baud) in 16.6 fixed point, rounded to the nearest 64th. `None` if it does not
/// fit the registers (IBRD 1..=65535, FBRD 0..=63) or `baud` is 0.
pub fn pl011_divisors(clock_hz: u32, baud: u32) -> Option<(u32, u32)> {
    if baud == 0 {
        return None;
    }
    // 64 * clock / (16 * baud) = 4 * clock / baud, rounded.
    let div = (4 * u64::from(clock_hz) + u64::from(baud) / 2) / u64::from(baud);
    let (ibrd, fbrd) = ((div >> 6) as u32, (div & 63) as u32);
    (1..=0xffff).contains(&ibrd).then_some((ibrd, fbrd))
}

/// Routes GPIO 14/15 to UART0 (ALT0), TXD with no pull and RXD pulled up (an unconnected input
/// reads idle, not noise). Other pins' settings are kept. Returns the new GPFSEL1.
pub fn route_uart0_pins(gpio: &mut impl RegisterBlock) -> u32 {
    let fsel = gpio.read(GPFSEL1);
    // GPIO 14 is bits 14:12 of GPFSEL1, GPIO 15 bits 17:15.
    let fsel = (fsel & !(0o77 << 12)) | (FSEL_ALT0 << 12) | (FSEL_ALT0 << 15);
    gpio.write(GPFSEL1, fsel);
    let pull = gpio.read(GPIO_PUP_PDN_CNTRL_REG0);
    // GPIO 14 is bits 29:28, GPIO 15 bits 31:30.
    let pull = (pull & !(0xf << 28)) | (PULL_NONE << 28) | (PULL_UP << 30);
    gpio.write(GPIO_PUP_PDN_CNTRL_REG0, pull);
    fsel
}

/// What [`setup_pl011`] left in the UART, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pl011Setup {
    /// UARTIBRD.
    pub ibrd: u32,
    /// UARTFBRD.
    pub fbrd: u32,
    /// UARTLCR_H.
    pub lcr_h: u32,
    /// UARTCR.
    pub cr: u32,
    /// False if a character was still in flight after [`PL011_IDLE_POLLS`] reads (the UART
    /// was reprogrammed anyway).
    pub was_idle: bool,
}

/// Programs a PL011 for `baud` 8N1 with FIFOs from a `clock_hz` reference, as the TRM
/// requires: disable the UART, let a character in flight finish (bounded), flush the FIFOs
/// (LCR_H.FEN = 0), set the divisors, then LCR_H (which latches them), mask and clear every
/// interrupt, and enable the UART, transmitter and receiver. `None` if the divisor does not fit.
pub fn setup_pl011(uart: &mut impl RegisterBlock, clock_hz: u32, baud: u32) -> Option<Pl011Setup> {
    let (ibrd, fbrd) = pl011_divisors(clock_hz, baud)?;
    uart.write(UARTCR, 0);
    let mut was_idle = false;
    for _ in 0..PL011_IDLE_POLLS {
        if uart.read(UARTFR) & FR_BUSY == 0 {
            was_idle = true;
            break;
        }
        crate::util::lock::wait_hint();
    }
    uart.write(UARTLCR_H, 0);
    uart.write(UARTIBRD, ibrd);
    uart.write(UARTFBRD, fbrd);
    uart.write(UARTLCR_H, LCR_H_8N1_FIFO);
    uart.write(UARTIMSC, 0);
    uart.write(UARTICR, ICR_ALL);
    uart.write(UARTCR, CR_UARTEN_TXE_RXE);
    Some(Pl011Setup {
        ibrd: uart.read(UARTIBRD),
        fbrd: uart.read(UARTFBRD),
        lcr_h: uart.read(UARTLCR_H),
        cr: uart.read(UARTCR),
        was_idle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A register block that remembers writes in order and answers reads from its state;
    /// UARTFR reports BUSY for the first `busy_reads` reads.
    struct FakeRegs {
        regs: [u32; 64],
        writes: Vec<(usize, u32)>,
        busy_reads: u32,
        fr_reads: u32,
    }

    impl FakeRegs {
        fn new(busy_reads: u32) -> Self {
            FakeRegs {
                regs: [0; 64],
                writes: Vec::new(),
                busy_reads,
                fr_reads: 0,
            }
        }
    }

    impl RegisterBlock for FakeRegs {
        fn read(&mut self, offset: usize) -> u32 {
            if offset == UARTFR {
                self.fr_reads += 1;
                return if self.fr_reads <= self.busy_reads {
                    FR_BUSY
                } else {
                    0
                };
            }
            self.regs[offset / 4]
        }
        fn write(&mut self, offset: usize, value: u32) {
            self.writes.push((offset, value));
            self.regs[offset / 4] = value;
        }
    }

    #[test]
    fn divisor_for_115200_from_48_mhz_is_ibrd_26_fbrd_3() {
        assert_eq!(pl011_divisors(48_000_000, 115_200), Some((26, 3)));
        // The QEMU virt / 24 MHz case and slow rates.
        assert_eq!(pl011_divisors(24_000_000, 115_200), Some((13, 1)));
        assert_eq!(pl011_divisors(48_000_000, 9600), Some((312, 32)));
    }

    #[test]
    fn a_divisor_outside_the_registers_is_refused() {
        assert_eq!(pl011_divisors(48_000_000, 0), None);
        assert_eq!(pl011_divisors(1_000, 115_200), None);
        assert_eq!(pl011_divisors(u32::MAX, 1), None);
    }

    #[test]
    fn gpio_14_and_15_become_alt0_with_rx_pulled_up_and_other_pins_are_kept() {
        let mut gpio = FakeRegs::new(0);
        // The firmware's mini UART routing (ALT5 = 0b010 on 14/15) and neighbours' settings.
        gpio.regs[GPFSEL1 / 4] = (0o7227 << 9) | 0o3;
        gpio.regs[GPIO_PUP_PDN_CNTRL_REG0 / 4] = 0xa555_5555;
        let fsel = route_uart0_pins(&mut gpio);
        assert_eq!((fsel >> 12) & 0o7, FSEL_ALT0, "GPIO 14");
        assert_eq!((fsel >> 15) & 0o7, FSEL_ALT0, "GPIO 15");
        assert_eq!((fsel >> 9) & 0o7, 0o7, "GPIO 13 kept");
        assert_eq!((fsel >> 18) & 0o7, 0o7, "GPIO 16 kept");
        assert_eq!(fsel & 0o7, 0o3, "GPIO 10 kept");
        assert_eq!(gpio.regs[GPFSEL1 / 4], fsel);
        let pull = gpio.regs[GPIO_PUP_PDN_CNTRL_REG0 / 4];
        assert_eq!((pull >> 28) & 3, PULL_NONE, "TXD0 no pull");
        assert_eq!((pull >> 30) & 3, PULL_UP, "RXD0 pulled up");
        assert_eq!(pull & 0x0fff_ffff, 0x0555_5555, "GPIO 0-13 pulls kept");
    }

    #[test]
    fn pl011_is_disabled_then_divisors_then_lcr_h_then_enabled() {
        let mut uart = FakeRegs::new(3);
        let s = setup_pl011(&mut uart, 48_000_000, 115_200).unwrap();
        assert_eq!(
            s,
            Pl011Setup {
                ibrd: 26,
                fbrd: 3,
                lcr_h: LCR_H_8N1_FIFO,
                cr: CR_UARTEN_TXE_RXE,
                was_idle: true
            }
        );
        assert_eq!(
            uart.writes,
            [
                (UARTCR, 0),
                (UARTLCR_H, 0),
                (UARTIBRD, 26),
                (UARTFBRD, 3),
                (UARTLCR_H, LCR_H_8N1_FIFO),
                (UARTIMSC, 0),
                (UARTICR, ICR_ALL),
                (UARTCR, CR_UARTEN_TXE_RXE),
            ]
        );
        assert_eq!(uart.fr_reads, 4, "waited for the character in flight");
    }

    #[test]
    fn a_pl011_that_stays_busy_is_waited_for_a_bounded_time_and_set_up_anyway() {
        let mut uart = FakeRegs::new(u32::MAX);
        let s = setup_pl011(&mut uart, 48_000_000, 115_200).unwrap();
        assert!(!s.was_idle);
        assert_eq!(uart.fr_reads, PL011_IDLE_POLLS);
        assert_eq!(s.cr, CR_UARTEN_TXE_RXE);
    }
}
