//! An emulated Arm PrimeCell UART (PL011), enough for Linux's `amba-pl011` driver and for
//! `earlycon=pl011,...` / `earlycon=pl011,mmio32,...`.
//!
//! Spec: PL011 TRM (Arm DDI 0183G), 3.2 "Summary of registers" and 3.3 "Register descriptions";
//! chapter 2, "Interrupts", for the interrupt rules. Where the TRM and a working guest disagree,
//! the model follows QEMU's `hw/char/pl011.c`, the model Linux is known to run on. It also shows
//! the same identity as QEMU's Arm variant (UARTPeriphID 0x00141011, revision 1), which makes
//! Linux size the FIFOs at 16 entries, as here.
//!
//! What is modelled:
//! * Transmit is instantaneous. A write to UARTDR appends the byte to an output buffer the
//!   hypervisor drains with [`Pl011::take_output`]. The transmit FIFO is therefore always
//!   empty: UARTFR.TXFE is set and TXFF and BUSY are clear, so polling drivers (earlycon,
//!   Linux's console write) never wait.
//! * Receive goes through a FIFO of [`FIFO_DEPTH`] bytes when UARTLCR_H.FEN is set, or a
//!   one-byte holding register when it is clear. The hypervisor feeds it with
//!   [`Pl011::receive`]; a byte that does not fit is refused, never dropped.
//! * Interrupts (UARTRIS bits; the output line is `UARTRIS & UARTIMSC != 0`):
//!   * RXRIS is set when a received byte makes the FIFO reach the UARTIFLS.RXIFLSEL trigger
//!     level (one byte with the FIFO disabled), and cleared when reads take the FIFO below it
//!     (TRM "UARTRXINTR").
//!   * RTRIS, the receive timeout, is modelled as QEMU does: set by every received byte and
//!     cleared when the FIFO becomes empty. There is no time in this model, so "data has sat in
//!     the FIFO for 32 bit periods" becomes "the FIFO holds data".
//!   * TXRIS is set by every byte written to UARTDR and cleared only by UARTICR (or reset),
//!     exactly as in QEMU. On hardware the line rises when the transmit FIFO drains to its
//!     trigger level; as our FIFO drains at once, each write "crosses" that level. Linux's
//!     `pl011_start_tx_pio` writes until UARTFR.TXFF (never set here) or its buffer is empty, and
//!     unmasks TXIM only if data is left, so with this model it drains its buffer in one go.
//!     Should a driver unmask TXIM with data pending, TXRIS latched by its last write fires at
//!     once, so no driver can wait for a TX interrupt that never comes; Linux masks TXIM again
//!     when its buffer is empty, which stops the level.
//!   * No other source (modem status, framing, parity, break, overrun) is ever raised.
//! * UARTCR.LBE loopback sends transmitted bytes to the receive FIFO as well as to the output
//!   (as QEMU does); while it is set, external input is refused.
//! * Baud rate, line format, IrDA and DMA registers hold what the guest writes (their
//!   implemented bits only) and have no effect.
//!
//! Departures from QEMU, each to keep RIS consistent with the FIFO: toggling FEN empties the
//! receive FIFO *and* clears RXRIS/RTRIS (QEMU leaves them set over an empty FIFO, which would
//! make Linux's handler spin); reading UARTDR with the FIFO empty returns 0 (QEMU returns a
//! stale byte); RXRIS clears whenever the level is below the trigger, not only when it passes
//! `trigger - 1`.
//!
//! Accesses: 8-, 16- and 32-bit, naturally aligned, within the 4 KiB frame. A narrow access
//! acts on the 32-bit register that holds it and sees the bytes of its lane, as on an APB bus
//! (so an 8-bit store to UARTDR transmits it, and any load from UARTDR pops the FIFO). 64-bit,
//! misaligned or odd-sized accesses and unknown offsets read as zero and ignore writes.
//!
//! Invariants: the receive FIFO never holds more than the current depth (16, or 1 with FEN
//! clear); no guest access can panic the model; the output buffer is bounded
//! ([`OUTPUT_CAPACITY`]), and bytes written while it is full are dropped and counted.

use heapless::Deque;
use tock_registers::fields::Field;

use super::{Access, MmioResult};

use regs::{CR, DMACR, DR, FBRD, FR, IBRD, IFLS, ILPR, INT, LCR_H};

/// Size of the register frame.
pub const MMIO_SIZE: u64 = 0x1000;

/// Receive FIFO depth with UARTLCR_H.FEN set (QEMU `PL011_FIFO_DEPTH`; what Linux assumes for a
/// revision 1 PL011).
pub const FIFO_DEPTH: usize = 16;

/// Bytes the output buffer holds between two [`Pl011::take_output`] calls.
pub const OUTPUT_CAPACITY: usize = 1024;

// Register offsets (TRM 3.2).
const UARTDR: u64 = 0x000;
const UARTRSR: u64 = 0x004;
const UARTFR: u64 = 0x018;
const UARTILPR: u64 = 0x020;
const UARTIBRD: u64 = 0x024;
const UARTFBRD: u64 = 0x028;
const UARTLCR_H: u64 = 0x02c;
const UARTCR: u64 = 0x030;
const UARTIFLS: u64 = 0x034;
const UARTIMSC: u64 = 0x038;
const UARTRIS: u64 = 0x03c;
const UARTMIS: u64 = 0x040;
const UARTICR: u64 = 0x044;
const UARTDMACR: u64 = 0x048;
const UARTPERIPHID0: u64 = 0xfe0;
const UARTPERIPHID1: u64 = 0xfe4;
const UARTPERIPHID2: u64 = 0xfe8;
const UARTPERIPHID3: u64 = 0xfec;
const UARTPCELLID0: u64 = 0xff0;
const UARTPCELLID1: u64 = 0xff4;
const UARTPCELLID2: u64 = 0xff8;
const UARTPCELLID3: u64 = 0xffc;

/// UARTPeriphID0-3 as QEMU's `pl011_id_arm` (part 0x011, designer Arm, revision 1) and
/// UARTPCellID0-3 (the PrimeCell identification 0xb105f00d), TRM 3.3.
const PERIPH_ID: [u32; 4] = [0x11, 0x10, 0x14, 0x00];
const PCELL_ID: [u32; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// Reset values (TRM 3.2): TXE and RXE set, both FIFO levels at 1/2.
const CR_RESET: u32 = 0x300;
const IFLS_RESET: u32 = 0x12;
/// Implemented bits of UARTCR: 15:7 and 2:0 (6:3 are reserved).
const CR_IMPLEMENTED: u32 = 0xff87;
/// Implemented bits of UARTIMSC, UARTRIS, UARTMIS and UARTICR: 10:0.
const INT_IMPLEMENTED: u32 = 0x7ff;

const INT_RX: u32 = INT::RX::SET.value;
const INT_TX: u32 = INT::TX::SET.value;
const INT_RT: u32 = INT::RT::SET.value;

/// Register layouts, TRM 3.3. Private, so the generated modules need no docs.
mod regs {
    use tock_registers::register_bitfields;

    register_bitfields! {u32,
        /// UARTDR, data register (3.3.1). Receive error bits 11:8 are never set here.
        pub DR [
            DATA OFFSET(0) NUMBITS(8) []
        ],
        /// UARTFR, flag register (3.3.3).
        pub FR [
            TXFE OFFSET(7) NUMBITS(1) [],
            RXFF OFFSET(6) NUMBITS(1) [],
            TXFF OFFSET(5) NUMBITS(1) [],
            RXFE OFFSET(4) NUMBITS(1) [],
            BUSY OFFSET(3) NUMBITS(1) []
        ],
        /// UARTILPR, IrDA low-power counter (3.3.4).
        pub ILPR [
            ILPDVSR OFFSET(0) NUMBITS(8) []
        ],
        /// UARTIBRD, integer baud rate divisor (3.3.5).
        pub IBRD [
            BAUD_DIVINT OFFSET(0) NUMBITS(16) []
        ],
        /// UARTFBRD, fractional baud rate divisor (3.3.6).
        pub FBRD [
            BAUD_DIVFRAC OFFSET(0) NUMBITS(6) []
        ],
        /// UARTLCR_H, line control (3.3.7); all 8 bits are implemented.
        pub LCR_H [
            ALL OFFSET(0) NUMBITS(8) [],
            FEN OFFSET(4) NUMBITS(1) []
        ],
        /// UARTCR, control register (3.3.8).
        pub CR [
            LBE OFFSET(7) NUMBITS(1) []
        ],
        /// UARTIFLS, interrupt FIFO level select (3.3.9).
        pub IFLS [
            RXIFLSEL OFFSET(3) NUMBITS(3) [
                OneEighth = 0,
                OneQuarter = 1,
                OneHalf = 2,
                ThreeQuarters = 3,
                SevenEighths = 4
            ],
            ALL OFFSET(0) NUMBITS(6) []
        ],
        /// UARTIMSC, UARTRIS, UARTMIS and UARTICR share this layout (3.3.10-3.3.13).
        pub INT [
            RT OFFSET(6) NUMBITS(1) [],
            TX OFFSET(5) NUMBITS(1) [],
            RX OFFSET(4) NUMBITS(1) []
        ],
        /// UARTDMACR, DMA control (3.3.14).
        pub DMACR [
            ALL OFFSET(0) NUMBITS(3) []
        ]
    }
}

/// Guest accesses by register group, for the observability counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pl011Counters {
    /// Loads from UARTDR (received bytes popped, or attempts on an empty FIFO).
    pub data_reads: u64,
    /// Stores to UARTDR (bytes transmitted).
    pub data_writes: u64,
    /// Loads from any other offset, including RAZ ones and refused widths.
    pub other_reads: u64,
    /// Stores to any other offset, including ignored ones and refused widths.
    pub other_writes: u64,
    /// Transmitted bytes dropped because the output buffer was full.
    pub output_dropped: u64,
}

/// One emulated PL011.
#[derive(Debug, Clone)]
pub struct Pl011 {
    /// Receive FIFO; never longer than [`Pl011::rx_depth`].
    rx: Deque<u8, FIFO_DEPTH>,
    /// Transmitted bytes waiting for the hypervisor.
    output: Deque<u8, OUTPUT_CAPACITY>,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    dmacr: u32,
    counters: Pl011Counters,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A PL011 in its reset state: FIFOs disabled and empty, TXE and RXE set (UARTEN clear, but
    /// like QEMU the model transmits and receives regardless), all interrupts masked.
    pub const fn new() -> Self {
        Pl011 {
            rx: Deque::new(),
            output: Deque::new(),
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            ris: 0,
            dmacr: 0,
            counters: Pl011Counters {
                data_reads: 0,
                data_writes: 0,
                other_reads: 0,
                other_writes: 0,
                output_dropped: 0,
            },
        }
    }

    /// A guest load of `width` bytes at `offset` in the frame, zero-extended.
    pub fn mmio_read(&mut self, offset: u64, width: u8) -> u64 {
        let Some(lane) = Lane::decode(offset, width) else {
            self.counters.other_reads = self.counters.other_reads.wrapping_add(1);
            return 0;
        };
        let counter = if lane.reg == UARTDR {
            &mut self.counters.data_reads
        } else {
            &mut self.counters.other_reads
        };
        *counter = counter.wrapping_add(1);
        (u64::from(self.read_reg(lane.reg)) >> lane.shift) & lane.mask
    }

    /// A guest store of the low `width` bytes of `value` at `offset` in the frame.
    pub fn mmio_write(&mut self, offset: u64, width: u8, value: u64) {
        let Some(lane) = Lane::decode(offset, width) else {
            self.counters.other_writes = self.counters.other_writes.wrapping_add(1);
            return;
        };
        let counter = if lane.reg == UARTDR {
            &mut self.counters.data_writes
        } else {
            &mut self.counters.other_writes
        };
        *counter = counter.wrapping_add(1);
        // The lane's bytes land in their place in the 32-bit register; the others are zero, as
        // on an APB bus.
        let word = ((value & lane.mask) << lane.shift) & u64::from(u32::MAX);
        self.write_reg(lane.reg, word as u32);
    }

    /// Handles a trapped access routed here by the MMIO bus. Never faults.
    pub fn access(&mut self, access: &Access) -> MmioResult {
        if access.write {
            self.mmio_write(access.offset, access.width, access.value);
            MmioResult::Written
        } else {
            MmioResult::Read(self.mmio_read(access.offset, access.width))
        }
    }

    /// Delivers a byte from the outside world to the receive FIFO. Returns false, leaving the
    /// byte with the caller, if the FIFO (or holding register) is full or loopback is on.
    pub fn receive(&mut self, byte: u8) -> bool {
        !self.loopback() && self.push_rx(byte)
    }

    /// How many more bytes [`Pl011::receive`] would accept now.
    pub fn rx_room(&self) -> usize {
        if self.loopback() {
            0
        } else {
            self.rx_depth().saturating_sub(self.rx.len())
        }
    }

    /// Drains the bytes the guest has transmitted, oldest first. Bytes the caller does not pull
    /// stay for the next call.
    pub fn take_output(&mut self) -> impl Iterator<Item = u8> + '_ {
        core::iter::from_fn(move || self.output.pop_front())
    }

    /// Number of transmitted bytes waiting in the output buffer.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Level of the combined interrupt line UARTINTR, which the vGIC should see:
    /// `(UARTRIS & UARTIMSC) != 0`.
    pub fn irq_level(&self) -> bool {
        self.mis() != 0
    }

    /// Access counts since reset.
    pub fn counters(&self) -> Pl011Counters {
        self.counters
    }

    fn read_reg(&mut self, reg: u64) -> u32 {
        match reg {
            UARTDR => self.pop_rx(),
            // No receive error is ever recorded.
            UARTRSR => 0,
            UARTFR => self.fr(),
            UARTILPR => self.ilpr,
            UARTIBRD => self.ibrd,
            UARTFBRD => self.fbrd,
            UARTLCR_H => self.lcr_h,
            UARTCR => self.cr,
            UARTIFLS => self.ifls,
            UARTIMSC => self.imsc,
            UARTRIS => self.ris,
            UARTMIS => self.mis(),
            // UARTICR is write-only (TRM 3.3.13).
            UARTICR => 0,
            UARTDMACR => self.dmacr,
            UARTPERIPHID0 => PERIPH_ID[0],
            UARTPERIPHID1 => PERIPH_ID[1],
            UARTPERIPHID2 => PERIPH_ID[2],
            UARTPERIPHID3 => PERIPH_ID[3],
            UARTPCELLID0 => PCELL_ID[0],
            UARTPCELLID1 => PCELL_ID[1],
            UARTPCELLID2 => PCELL_ID[2],
            UARTPCELLID3 => PCELL_ID[3],
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, value: u32) {
        match reg {
            UARTDR => self.transmit(DR::DATA.read(value) as u8),
            // UARTECR: a write clears the receive errors, of which there are none.
            UARTRSR => {}
            UARTILPR => self.ilpr = masked(ILPR::ILPDVSR, value),
            UARTIBRD => self.ibrd = masked(IBRD::BAUD_DIVINT, value),
            UARTFBRD => self.fbrd = masked(FBRD::BAUD_DIVFRAC, value),
            UARTLCR_H => {
                // Enabling or disabling the FIFOs flushes them, as in QEMU.
                if LCR_H::FEN.is_set(self.lcr_h) != LCR_H::FEN.is_set(value) {
                    self.rx.clear();
                    self.ris &= !(INT_RX | INT_RT);
                }
                self.lcr_h = masked(LCR_H::ALL, value);
            }
            UARTCR => self.cr = value & CR_IMPLEMENTED,
            UARTIFLS => self.ifls = masked(IFLS::ALL, value),
            UARTIMSC => self.imsc = value & INT_IMPLEMENTED,
            // "On a write of 1, the corresponding interrupt is cleared. A write of 0 has no
            // effect." (TRM 3.3.13)
            UARTICR => self.ris &= !(value & INT_IMPLEMENTED),
            UARTDMACR => self.dmacr = masked(DMACR::ALL, value),
            // UARTFR, UARTRIS, UARTMIS and the ID registers are read-only; the rest is
            // reserved.
            _ => {}
        }
    }

    fn transmit(&mut self, byte: u8) {
        if self.output.push_back(byte).is_err() {
            self.counters.output_dropped = self.counters.output_dropped.wrapping_add(1);
        }
        if self.loopback() {
            // A full receive FIFO would overrun on hardware; the byte is lost either way.
            let _ = self.push_rx(byte);
        }
        self.ris |= INT_TX;
    }

    fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx.len() >= self.rx_depth() || self.rx.push_back(byte).is_err() {
            return false;
        }
        if self.rx.len() == self.rx_trigger() {
            self.ris |= INT_RX;
        }
        self.ris |= INT_RT;
        true
    }

    fn pop_rx(&mut self) -> u32 {
        let byte = self.rx.pop_front();
        if self.rx.len() < self.rx_trigger() {
            self.ris &= !INT_RX;
        }
        if self.rx.is_empty() {
            self.ris &= !INT_RT;
        }
        byte.map_or(0, u32::from)
    }

    fn fr(&self) -> u32 {
        // The transmit side is always empty, never full, never busy.
        let mut fr = FR::TXFE::SET.value;
        if self.rx.is_empty() {
            fr |= FR::RXFE::SET.value;
        }
        if self.rx.len() >= self.rx_depth() {
            fr |= FR::RXFF::SET.value;
        }
        fr
    }

    fn mis(&self) -> u32 {
        self.ris & self.imsc
    }

    fn loopback(&self) -> bool {
        CR::LBE.is_set(self.cr)
    }

    fn fifo_enabled(&self) -> bool {
        LCR_H::FEN.is_set(self.lcr_h)
    }

    /// Entries the receive side holds: the FIFO, or the one-byte holding register.
    fn rx_depth(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    /// Receive FIFO level at which RXRIS is raised (TRM 3.3.9).
    fn rx_trigger(&self) -> usize {
        use regs::IFLS::RXIFLSEL::Value;
        if !self.fifo_enabled() {
            return 1;
        }
        match IFLS::RXIFLSEL.read_as_enum(self.ifls) {
            Some(Value::OneEighth) => FIFO_DEPTH / 8,
            Some(Value::OneQuarter) => FIFO_DEPTH / 4,
            Some(Value::OneHalf) => FIFO_DEPTH / 2,
            Some(Value::ThreeQuarters) => FIFO_DEPTH * 3 / 4,
            Some(Value::SevenEighths) => FIFO_DEPTH * 7 / 8,
            // Reserved encodings: QEMU triggers on any data.
            None => 1,
        }
    }
}

/// The implemented bits of `value` for a register made of the one field `field`.
fn masked<R: tock_registers::RegisterLongName>(field: Field<u32, R>, value: u32) -> u32 {
    value & (field.mask << field.shift)
}

/// Where a naturally aligned 1-, 2- or 4-byte access falls: the 32-bit register that holds it,
/// and the bit position and mask of its bytes.
struct Lane {
    reg: u64,
    shift: u32,
    mask: u64,
}

impl Lane {
    fn decode(offset: u64, width: u8) -> Option<Lane> {
        let mask = match width {
            1 => 0xff,
            2 => 0xffff,
            4 => 0xffff_ffff,
            _ => return None,
        };
        if offset >= MMIO_SIZE || !offset.is_multiple_of(u64::from(width)) {
            return None;
        }
        Some(Lane {
            reg: offset & !3,
            shift: ((offset & 3) * 8) as u32,
            mask,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const FEN: u32 = LCR_H::FEN::SET.value;
    const LBE: u32 = CR::LBE::SET.value;
    const TXFE: u32 = FR::TXFE::SET.value;
    const RXFE: u32 = FR::RXFE::SET.value;
    const RXFF: u32 = FR::RXFF::SET.value;
    const TXFF: u32 = FR::TXFF::SET.value;
    const BUSY: u32 = FR::BUSY::SET.value;

    fn read(uart: &mut Pl011, offset: u64) -> u32 {
        uart.mmio_read(offset, 4) as u32
    }

    fn write(uart: &mut Pl011, offset: u64, value: u32) {
        uart.mmio_write(offset, 4, u64::from(value));
    }

    fn output(uart: &mut Pl011) -> Vec<u8> {
        uart.take_output().collect()
    }

    /// A PL011 with the FIFOs enabled and the RX trigger at `ifls`'s level.
    fn fifo_uart(ifls: u32) -> Pl011 {
        let mut uart = Pl011::new();
        write(&mut uart, UARTIFLS, ifls);
        write(&mut uart, UARTLCR_H, FEN | 0x60);
        uart
    }

    #[test]
    fn reset_values_match_qemu() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
        assert_eq!(read(&mut uart, UARTCR), 0x300);
        assert_eq!(read(&mut uart, UARTIFLS), 0x12);
        for reg in [
            UARTRSR, UARTILPR, UARTIBRD, UARTFBRD, UARTLCR_H, UARTIMSC, UARTRIS, UARTMIS, UARTDMACR,
        ] {
            assert_eq!(read(&mut uart, reg), 0, "offset {reg:#x}");
        }
        assert!(!uart.irq_level());
        assert_eq!(uart.rx_room(), 1);
        assert_eq!(uart.output_len(), 0);
    }

    #[test]
    fn id_registers_read_arm_primecell_ids() {
        let mut uart = Pl011::new();
        let ids: Vec<u32> = (0..8).map(|i| read(&mut uart, 0xfe0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // Byte reads, as some probes do, see the same values.
        assert_eq!(uart.mmio_read(0xff0, 1), 0x0d);
        assert_eq!(uart.mmio_read(0xffc, 1), 0xb1);
    }

    #[test]
    fn dr_write_transmits_byte_to_output() {
        let mut uart = Pl011::new();
        for &b in b"hi\n" {
            write(&mut uart, UARTDR, u32::from(b));
        }
        assert_eq!(uart.output_len(), 3);
        assert_eq!(output(&mut uart), b"hi\n");
        assert_eq!(uart.output_len(), 0);
        assert!(output(&mut uart).is_empty());
    }

    #[test]
    fn dr_write_of_any_width_transmits_low_byte_only() {
        let mut uart = Pl011::new();
        uart.mmio_write(UARTDR, 1, 0x41);
        uart.mmio_write(UARTDR, 2, 0x0f42);
        uart.mmio_write(UARTDR, 4, 0xdead_be43);
        assert_eq!(output(&mut uart), b"ABC");
    }

    #[test]
    fn take_output_leaves_unconsumed_bytes_for_next_call() {
        let mut uart = Pl011::new();
        for &b in b"abcd" {
            write(&mut uart, UARTDR, u32::from(b));
        }
        let first: Vec<u8> = uart.take_output().take(2).collect();
        assert_eq!(first, b"ab");
        assert_eq!(output(&mut uart), b"cd");
    }

    #[test]
    fn output_overflow_drops_newest_bytes_and_counts_them() {
        let mut uart = Pl011::new();
        for i in 0..OUTPUT_CAPACITY + 3 {
            write(&mut uart, UARTDR, i as u32);
        }
        assert_eq!(uart.counters().output_dropped, 3);
        let out = output(&mut uart);
        assert_eq!(out.len(), OUTPUT_CAPACITY);
        assert_eq!(out.last(), Some(&((OUTPUT_CAPACITY - 1) as u8)));
    }

    #[test]
    fn transmit_is_never_full_or_busy() {
        let mut uart = fifo_uart(0x12);
        for i in 0..100 {
            write(&mut uart, UARTDR, i);
            let fr = read(&mut uart, UARTFR);
            assert_eq!(fr & (TXFF | BUSY), 0);
            assert_ne!(fr & TXFE, 0);
        }
    }

    #[test]
    fn fr_tracks_empty_partial_and_full_rx_fifo() {
        let mut uart = fifo_uart(0x12);
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
        assert!(uart.receive(b'x'));
        assert_eq!(read(&mut uart, UARTFR), TXFE);
        for _ in 1..FIFO_DEPTH {
            assert!(uart.receive(b'y'));
        }
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFF);
        read(&mut uart, UARTDR);
        assert_eq!(read(&mut uart, UARTFR), TXFE);
    }

    #[test]
    fn rx_interrupt_raised_when_fifo_reaches_ifls_trigger() {
        // RXIFLSEL = 0b010: 1/2 full, 8 of 16 bytes.
        let mut uart = fifo_uart(0x12);
        for _ in 0..7 {
            uart.receive(b'a');
        }
        assert_eq!(read(&mut uart, UARTRIS) & INT_RX, 0);
        uart.receive(b'a');
        assert_ne!(read(&mut uart, UARTRIS) & INT_RX, 0);
    }

    #[test]
    fn rx_trigger_follows_each_ifls_level() {
        for (rxiflsel, level) in [(0, 2), (1, 4), (2, 8), (3, 12), (4, 14), (5, 1), (7, 1)] {
            let mut uart = fifo_uart(rxiflsel << 3);
            for n in 1..=FIFO_DEPTH {
                uart.receive(0);
                let rx = read(&mut uart, UARTRIS) & INT_RX != 0;
                assert_eq!(rx, n >= level, "RXIFLSEL {rxiflsel}, {n} bytes");
            }
        }
    }

    #[test]
    fn rx_interrupt_on_first_byte_when_fifo_disabled() {
        let mut uart = Pl011::new();
        uart.receive(b'z');
        assert_ne!(read(&mut uart, UARTRIS) & INT_RX, 0);
    }

    #[test]
    fn rx_interrupt_clears_when_reads_take_fifo_below_trigger() {
        let mut uart = fifo_uart(0x08); // 1/4: 4 bytes
        for b in 0..6 {
            uart.receive(b);
        }
        read(&mut uart, UARTDR);
        read(&mut uart, UARTDR);
        assert_ne!(read(&mut uart, UARTRIS) & INT_RX, 0, "still at the trigger");
        read(&mut uart, UARTDR);
        assert_eq!(read(&mut uart, UARTRIS) & INT_RX, 0);
    }

    #[test]
    fn rt_interrupt_set_while_rx_fifo_holds_data() {
        let mut uart = fifo_uart(0x12);
        assert_eq!(read(&mut uart, UARTRIS) & INT_RT, 0);
        uart.receive(b'1');
        uart.receive(b'2');
        let ris = read(&mut uart, UARTRIS);
        assert_ne!(ris & INT_RT, 0, "timeout with data below the trigger");
        assert_eq!(ris & INT_RX, 0);
        read(&mut uart, UARTDR);
        assert_ne!(read(&mut uart, UARTRIS) & INT_RT, 0);
        read(&mut uart, UARTDR);
        assert_eq!(read(&mut uart, UARTRIS) & INT_RT, 0);
    }

    #[test]
    fn dr_read_pops_in_order_and_clears_rx_interrupts_when_empty() {
        let mut uart = fifo_uart(0x00); // 1/8: 2 bytes
        for &b in b"ok" {
            assert!(uart.receive(b));
        }
        assert_eq!(
            read(&mut uart, UARTRIS) & (INT_RX | INT_RT),
            INT_RX | INT_RT
        );
        assert_eq!(read(&mut uart, UARTDR), u32::from(b'o'));
        assert_eq!(read(&mut uart, UARTDR), u32::from(b'k'));
        assert_eq!(read(&mut uart, UARTRIS) & (INT_RX | INT_RT), 0);
        assert_eq!(read(&mut uart, UARTFR) & RXFE, RXFE);
    }

    #[test]
    fn dr_read_of_empty_fifo_returns_zero() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, UARTDR), 0);
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
        assert_eq!(read(&mut uart, UARTRIS), 0);
    }

    #[test]
    fn mis_is_ris_masked_by_imsc() {
        let mut uart = Pl011::new();
        uart.receive(b'r');
        write(&mut uart, UARTDR, u32::from(b't'));
        assert_eq!(read(&mut uart, UARTRIS), INT_RX | INT_TX | INT_RT);
        assert_eq!(read(&mut uart, UARTMIS), 0);
        write(&mut uart, UARTIMSC, INT_TX);
        assert_eq!(read(&mut uart, UARTMIS), INT_TX);
        assert_eq!(read(&mut uart, UARTRIS), INT_RX | INT_TX | INT_RT);
    }

    #[test]
    fn icr_clears_only_the_written_ones() {
        let mut uart = Pl011::new();
        uart.receive(b'r');
        write(&mut uart, UARTDR, u32::from(b't'));
        write(&mut uart, UARTICR, INT_TX);
        assert_eq!(read(&mut uart, UARTRIS), INT_RX | INT_RT);
        write(&mut uart, UARTICR, 0);
        assert_eq!(read(&mut uart, UARTRIS), INT_RX | INT_RT);
        write(&mut uart, UARTICR, 0x7ff);
        assert_eq!(read(&mut uart, UARTRIS), 0);
        // ICR is write-only.
        assert_eq!(read(&mut uart, UARTICR), 0);
    }

    #[test]
    fn tx_interrupt_is_raised_by_each_transmit_and_cleared_only_by_icr() {
        let mut uart = Pl011::new();
        assert_eq!(
            read(&mut uart, UARTRIS) & INT_TX,
            0,
            "not pending out of reset"
        );
        write(&mut uart, UARTDR, u32::from(b'a'));
        assert_ne!(read(&mut uart, UARTRIS) & INT_TX, 0);
        // Neither unmasking, nor time, nor reading FR drops it.
        write(&mut uart, UARTIMSC, INT_TX);
        read(&mut uart, UARTFR);
        assert_ne!(read(&mut uart, UARTRIS) & INT_TX, 0);
        write(&mut uart, UARTICR, INT_TX);
        assert_eq!(read(&mut uart, UARTRIS) & INT_TX, 0);
        write(&mut uart, UARTDR, u32::from(b'b'));
        assert_ne!(read(&mut uart, UARTRIS) & INT_TX, 0);
    }

    #[test]
    fn linux_tx_interrupt_fires_when_txim_is_unmasked_after_writing() {
        // amba-pl011: hwinit clears everything, startup unmasks RX/RT, the TX path writes a
        // batch and unmasks TXIM only if data remains; the handler masks TXIM once empty.
        let mut uart = fifo_uart(0x12);
        write(&mut uart, UARTICR, 0x7ff);
        write(&mut uart, UARTIMSC, INT_RX | INT_RT);
        for &b in b"12345678" {
            write(&mut uart, UARTDR, u32::from(b));
        }
        assert!(!uart.irq_level());
        write(&mut uart, UARTIMSC, INT_RX | INT_RT | INT_TX);
        assert!(uart.irq_level(), "a driver waiting for TXIS must get it");
        write(&mut uart, UARTIMSC, INT_RX | INT_RT);
        assert!(!uart.irq_level());
    }

    #[test]
    fn earlycon_polling_never_waits() {
        // earlycon pl011 putc: wait while FR.TXFF, write DR, wait while FR.BUSY.
        let mut uart = Pl011::new();
        for &b in b"earlycon" {
            assert_eq!(uart.mmio_read(UARTFR, 4) as u32 & TXFF, 0);
            uart.mmio_write(UARTDR, 4, u64::from(b));
            assert_eq!(uart.mmio_read(UARTFR, 4) as u32 & BUSY, 0);
        }
        assert_eq!(output(&mut uart), b"earlycon");
    }

    #[test]
    fn irq_level_follows_imsc() {
        let mut uart = Pl011::new();
        uart.receive(b'q');
        assert!(!uart.irq_level());
        write(&mut uart, UARTIMSC, INT_TX);
        assert!(!uart.irq_level(), "TX is not pending");
        write(&mut uart, UARTIMSC, INT_RT);
        assert!(uart.irq_level());
        write(&mut uart, UARTIMSC, INT_RX);
        assert!(uart.irq_level());
        read(&mut uart, UARTDR);
        assert!(!uart.irq_level(), "the line drops with the condition");
        write(&mut uart, UARTIMSC, 0);
        uart.receive(b'q');
        assert!(!uart.irq_level());
    }

    #[test]
    fn fifo_disabled_holds_one_byte() {
        let mut uart = Pl011::new();
        assert_eq!(uart.rx_room(), 1);
        assert!(uart.receive(b'1'));
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFF);
        assert_eq!(uart.rx_room(), 0);
        assert!(!uart.receive(b'2'));
        assert_eq!(read(&mut uart, UARTDR), u32::from(b'1'));
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
    }

    #[test]
    fn receive_when_full_returns_false_and_keeps_fifo_intact() {
        let mut uart = fifo_uart(0x12);
        for b in 0..FIFO_DEPTH as u8 {
            assert!(uart.receive(b));
        }
        assert_eq!(uart.rx_room(), 0);
        assert!(!uart.receive(0xff));
        for b in 0..FIFO_DEPTH as u32 {
            assert_eq!(read(&mut uart, UARTDR), b);
        }
        assert_eq!(read(&mut uart, UARTFR) & RXFE, RXFE);
    }

    #[test]
    fn rx_room_counts_free_fifo_entries() {
        let mut uart = fifo_uart(0x12);
        assert_eq!(uart.rx_room(), FIFO_DEPTH);
        uart.receive(0);
        uart.receive(0);
        assert_eq!(uart.rx_room(), FIFO_DEPTH - 2);
    }

    #[test]
    fn toggling_fen_flushes_rx_fifo_and_its_interrupts() {
        let mut uart = fifo_uart(0x00);
        for b in 0..4 {
            uart.receive(b);
        }
        write(&mut uart, UARTDR, 0);
        write(&mut uart, UARTLCR_H, 0x60); // FEN off
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
        assert_eq!(read(&mut uart, UARTRIS), INT_TX);
        assert_eq!(uart.rx_room(), 1);
        // Rewriting LCR_H without changing FEN keeps the data.
        uart.receive(7);
        write(&mut uart, UARTLCR_H, 0x70 & !FEN);
        assert_eq!(read(&mut uart, UARTDR), 7);
    }

    #[test]
    fn loopback_feeds_transmitted_bytes_to_rx_and_refuses_input() {
        let mut uart = fifo_uart(0x12);
        write(&mut uart, UARTCR, 0x301 | LBE);
        assert_eq!(uart.rx_room(), 0);
        assert!(!uart.receive(b'x'));
        write(&mut uart, UARTDR, u32::from(b'L'));
        assert_eq!(output(&mut uart), b"L");
        assert_eq!(read(&mut uart, UARTDR), u32::from(b'L'));
        write(&mut uart, UARTCR, 0x301);
        assert!(uart.receive(b'x'));
    }

    #[test]
    fn unknown_offsets_read_zero_and_ignore_writes() {
        let mut uart = Pl011::new();
        for offset in [
            0x008, 0x00c, 0x010, 0x014, 0x01c, 0x04c, 0x080, 0x800, 0xfdc,
        ] {
            write(&mut uart, offset, 0xffff_ffff);
            assert_eq!(read(&mut uart, offset), 0, "offset {offset:#x}");
        }
        assert_eq!(read(&mut uart, UARTFR), TXFE | RXFE);
        assert_eq!(read(&mut uart, UARTRIS), 0);
        assert!(output(&mut uart).is_empty());
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut uart = Pl011::new();
        for reg in [UARTFR, UARTRIS, UARTMIS, UARTPERIPHID0, UARTPCELLID3] {
            let before = read(&mut uart, reg);
            write(&mut uart, reg, 0xffff_ffff);
            assert_eq!(read(&mut uart, reg), before, "offset {reg:#x}");
        }
        assert!(!uart.irq_level());
    }

    #[test]
    fn wide_misaligned_and_odd_sized_accesses_are_raz_wi() {
        let mut uart = Pl011::new();
        uart.receive(b'k');
        // 64-bit
        assert_eq!(uart.mmio_read(UARTDR, 8), 0);
        uart.mmio_write(UARTDR, 8, 0x41);
        uart.mmio_write(UARTIBRD, 8, 0x1234);
        // misaligned
        assert_eq!(uart.mmio_read(UARTDR + 2, 4), 0);
        uart.mmio_write(UARTDR + 1, 2, 0x41);
        // odd widths
        assert_eq!(uart.mmio_read(UARTIBRD, 3), 0);
        uart.mmio_write(UARTDR, 0, 0x41);
        assert!(output(&mut uart).is_empty());
        assert_eq!(read(&mut uart, UARTIBRD), 0);
        assert_eq!(
            read(&mut uart, UARTDR),
            u32::from(b'k'),
            "no read popped the FIFO"
        );
    }

    #[test]
    fn offsets_beyond_frame_are_raz_wi() {
        let mut uart = Pl011::new();
        for offset in [MMIO_SIZE, MMIO_SIZE + UARTFR, 0x8000_0000, u64::MAX - 3] {
            assert_eq!(uart.mmio_read(offset, 4), 0);
            uart.mmio_write(offset, 4, 0x41);
        }
        assert_eq!(uart.mmio_read(u64::MAX, 1), 0);
        assert!(output(&mut uart).is_empty());
    }

    #[test]
    fn narrow_access_sees_its_byte_lane() {
        let mut uart = Pl011::new();
        write(&mut uart, UARTIBRD, 0xbeef);
        assert_eq!(uart.mmio_read(UARTIBRD, 1), 0xef);
        assert_eq!(uart.mmio_read(UARTIBRD + 1, 1), 0xbe);
        assert_eq!(uart.mmio_read(UARTIBRD + 2, 2), 0);
        assert_eq!(uart.mmio_read(UARTFR, 2), u64::from(TXFE | RXFE));
        // A store to a high lane writes the register with zeros in the other lanes.
        uart.mmio_write(UARTIBRD + 1, 1, 0x12);
        assert_eq!(read(&mut uart, UARTIBRD), 0x1200);
    }

    #[test]
    fn register_writes_keep_only_implemented_bits() {
        let mut uart = Pl011::new();
        for (reg, bits) in [
            (UARTILPR, 0xff),
            (UARTIBRD, 0xffff),
            (UARTFBRD, 0x3f),
            (UARTLCR_H, 0xff),
            (UARTCR, 0xff87),
            (UARTIFLS, 0x3f),
            (UARTIMSC, 0x7ff),
            (UARTDMACR, 0x7),
        ] {
            write(&mut uart, reg, 0xffff_ffff);
            assert_eq!(read(&mut uart, reg), bits, "offset {reg:#x}");
        }
    }

    #[test]
    fn counters_split_data_and_other_accesses() {
        let mut uart = Pl011::new();
        write(&mut uart, UARTDR, 1);
        uart.mmio_write(UARTDR, 1, 2);
        read(&mut uart, UARTDR);
        read(&mut uart, UARTFR);
        read(&mut uart, 0x800);
        uart.mmio_read(UARTDR, 8);
        write(&mut uart, UARTIMSC, 0);
        assert_eq!(
            uart.counters(),
            Pl011Counters {
                data_reads: 1,
                data_writes: 2,
                other_reads: 3,
                other_writes: 1,
                output_dropped: 0,
            }
        );
    }

    #[test]
    fn access_dispatches_loads_and_stores() {
        let mut uart = Pl011::new();
        assert_eq!(
            uart.access(&Access::write(UARTDR, 4, u64::from(b'!'))),
            MmioResult::Written
        );
        assert_eq!(
            uart.access(&Access::read(UARTFR, 4)),
            MmioResult::Read(u64::from(TXFE | RXFE))
        );
        assert_eq!(uart.access(&Access::read(UARTDR, 8)), MmioResult::Read(0));
        assert_eq!(output(&mut uart), b"!");
    }
}
