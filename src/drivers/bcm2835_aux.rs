//! The BCM2835/BCM2711 auxiliary mini UART (BCM2835 ARM Peripherals, 2.2 "Mini UART"), by
//! polling. The device-tree node's `reg` starts at AUX_MU_IO_REG; the firmware has set it up
//! when `enable_uart=1`.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

use super::mmio::MmioRef;

register_bitfields! {u32,
    /// AUX_MU_LSR_REG, line status.
    LSR [
        /// The transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        /// The receive FIFO holds at least one byte.
        DATA_READY OFFSET(0) NUMBITS(1) []
    ]
}

register_structs! {
    /// Mini UART registers, relative to AUX_MU_IO_REG.
    #[allow(non_snake_case)]
    pub MiniUartRegs {
        (0x00 => IO: ReadWrite<u32>),
        (0x04 => IER: ReadWrite<u32>),
        (0x08 => _reserved0),
        (0x14 => LSR: ReadOnly<u32, LSR::Register>),
        (0x18 => @END),
    }
}

/// The mini UART used by polling.
pub struct MiniUart {
    regs: MmioRef<MiniUartRegs>,
}

impl MiniUart {
    /// Wraps the mini UART whose AUX_MU_IO_REG is at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the mini UART's register frame, mapped as device memory for the rest of
    /// the run (or the MMU off), and no other code may drive it.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: forwarded from the caller.
        let regs = unsafe { MmioRef::new(base) };
        Self { regs }
    }

    /// True if the transmit FIFO can take one byte.
    pub fn tx_ready(&self) -> bool {
        self.regs.LSR.is_set(LSR::TX_EMPTY)
    }

    /// Writes one byte to the transmit FIFO (the caller checked [`MiniUart::tx_ready`]; the
    /// console's `uart_tx::TxGuard` bounds the wait).
    pub fn send(&self, byte: u8) {
        self.regs.IO.set(byte as u32);
    }

    /// Enables the receive interrupt (AUX_MU_IER_REG bit 0).
    pub fn enable_rx_interrupt(&self) {
        self.regs.IER.set(self.regs.IER.get() | 1);
    }

    /// A received byte, if one is waiting.
    pub fn get(&self) -> Option<u8> {
        if self.regs.LSR.is_set(LSR::DATA_READY) {
            Some(self.regs.IO.get() as u8)
        } else {
            None
        }
    }
}
