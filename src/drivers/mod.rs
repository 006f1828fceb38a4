//! Hardware shell, device side: drivers for the MMIO devices exitless itself uses (the console
//! UARTs, the GIC, the Raspberry Pi's power-management block). Register blocks are declared with
//! `tock_registers::register_structs!`, which checks every offset at compile time. Compiled only
//! for the bare-metal target.

pub mod bcm2835_aux;
pub mod bcm2835_pm;
pub mod console;
pub mod gic;
pub mod gicv2;
pub mod gicv3;
pub mod its;
pub mod mmio;
pub mod pl011;
