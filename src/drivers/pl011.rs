//! Arm PrimeCell UART (PL011) driver, transmit and receive by polling (PL011 TRM DDI 0183G,
//! 3.3 "Register descriptions"). The boot firmware has programmed the baud rate; exitless only
//! makes sure the UART and its transmitter and receiver are enabled.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

use super::mmio::MmioRef;

register_bitfields! {u32,
    /// UARTFR, flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// UARTCR, control register.
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
}

register_structs! {
    /// PL011 registers used here.
    #[allow(non_snake_case)]
    pub Pl011Regs {
        (0x000 => DR: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x018 => FR: ReadOnly<u32, FR::Register>),
        (0x01c => _reserved1),
        (0x030 => CR: ReadWrite<u32, CR::Register>),
        (0x034 => IFLS: ReadWrite<u32>),
        (0x038 => IMSC: ReadWrite<u32>),
        (0x03c => _reserved2),
        (0x044 => ICR: ReadWrite<u32>),
        (0x048 => @END),
    }
}

/// UARTIMSC receive interrupt mask bit.
const IMSC_RXIM: u32 = 1 << 4;
/// UARTIMSC receive timeout interrupt mask bit.
const IMSC_RTIM: u32 = 1 << 6;

/// A PL011 used by polling.
pub struct Pl011 {
    regs: MmioRef<Pl011Regs>,
}

impl Pl011 {
    /// Wraps the PL011 at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be a PL011's register frame, mapped as device memory for the rest of the run
    /// (or the MMU off), and no other code may drive it.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: forwarded from the caller.
        let regs = unsafe { MmioRef::new(base) };
        let uart = Self { regs };
        if !uart.regs.CR.is_set(CR::UARTEN) || !uart.regs.CR.is_set(CR::TXE) {
            uart.regs
                .CR
                .write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        }
        uart
    }

    /// True if the transmit FIFO has room for one byte.
    pub fn tx_ready(&self) -> bool {
        !self.regs.FR.is_set(FR::TXFF)
    }

    /// Writes one byte to the transmit FIFO (the caller checked [`Pl011::tx_ready`]; the
    /// console's `uart_tx::TxGuard` bounds the wait).
    pub fn send(&self, byte: u8) {
        self.regs.DR.set(byte as u32);
    }

    /// A received byte, if one is waiting.
    pub fn get(&self) -> Option<u8> {
        if self.regs.FR.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs.DR.get() as u8)
        }
    }

    /// Enables the receive and receive-timeout interrupts (UARTIMSC.RXIM, RTIM), so input
    /// raises the UART's interrupt line; reading the data clears them.
    pub fn enable_rx_interrupt(&self) {
        self.regs.ICR.set(IMSC_RXIM | IMSC_RTIM);
        self.regs
            .IMSC
            .set(self.regs.IMSC.get() | IMSC_RXIM | IMSC_RTIM);
    }
}
