//! The only board addresses written in exitless: a guess at the console, used solely to print
//! why the boot failed when the boot loader passed no device tree or a corrupt one. The guess
//! follows where the image was loaded: QEMU virt loads Image files at RAM base 0x40000000 +
//! 2 MiB, the Raspberry Pi firmware at 0x200000 (or 0x80000).
//!
//! Nothing else may use these: a working boot reads every address from the device tree.

use super::{Conduit, UartInfo, UartKind};

/// QEMU `virt`: PL011 at 0x09000000 (hw/arm/virt.c `VIRT_UART`).
pub const QEMU_VIRT_UART: UartInfo = UartInfo {
    kind: UartKind::Pl011,
    base: 0x0900_0000,
    size: 0x1000,
    irq: None,
};

/// Raspberry Pi 4 (BCM2711, low-peripheral mode): UART0, a PL011 at 0xfe201000.
pub const RPI4_UART0: UartInfo = UartInfo {
    kind: UartKind::Pl011,
    base: 0xfe20_1000,
    size: 0x200,
    irq: None,
};

/// QEMU virt's RAM base; images loaded at or above it are taken to be on QEMU virt.
const QEMU_VIRT_RAM_BASE: u64 = 0x4000_0000;

/// The machine the load address suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    /// Loaded in QEMU virt's RAM.
    QemuVirt,
    /// Loaded low, as the Raspberry Pi firmware does.
    RaspberryPi4,
}

/// Guesses the machine from the image's load address.
pub fn guess(load_address: u64) -> Guess {
    if load_address >= QEMU_VIRT_RAM_BASE {
        Guess::QemuVirt
    } else {
        Guess::RaspberryPi4
    }
}

impl Guess {
    /// The console to try.
    pub fn console(self) -> UartInfo {
        match self {
            Guess::QemuVirt => QEMU_VIRT_UART,
            Guess::RaspberryPi4 => RPI4_UART0,
        }
    }

    /// How to reach PSCI to power off, given the exception level exitless was started at
    /// (`el`): QEMU emulates PSCI on SMC for software started at EL2 and on HVC for software
    /// started at EL1. Started at EL3 there is no firmware to call, and the Raspberry Pi
    /// firmware has no PSCI.
    pub fn psci(self, el: u8) -> Option<Conduit> {
        match (self, el) {
            (Guess::QemuVirt, 1) => Some(Conduit::Hvc),
            (Guess::QemuVirt, 2) => Some(Conduit::Smc),
            _ => None,
        }
    }

    /// A human name for the log line.
    pub fn name(self) -> &'static str {
        match self {
            Guess::QemuVirt => "QEMU virt",
            Guess::RaspberryPi4 => "Raspberry Pi 4",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_load_address_guesses_virt_uart() {
        assert_eq!(guess(0x4020_0000).console(), QEMU_VIRT_UART);
        assert_eq!(guess(0x4020_0000).psci(2), Some(Conduit::Smc));
        assert_eq!(guess(0x4020_0000).psci(1), Some(Conduit::Hvc));
        assert_eq!(
            guess(0x4020_0000).psci(3),
            None,
            "started at EL3 there is no firmware"
        );
    }

    #[test]
    fn pi_load_address_guesses_uart0_and_no_psci() {
        assert_eq!(guess(0x20_0000).console(), RPI4_UART0);
        assert_eq!(guess(0x8_0000).psci(2), None);
    }
}
