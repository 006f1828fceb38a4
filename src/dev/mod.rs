//! Emulated devices, pure models: each one holds a device's register state and answers the
//! guest accesses the MMIO bus ([`crate::vm::mmio`]) routes to it. A model never touches
//! hardware: the hypervisor feeds it input (received bytes) and collects its output (transmitted
//! bytes, the level of its interrupt line) through plain methods, so every rule is unit-tested
//! on the host.
//!
//! Invariant: no guest access, whatever its offset, width or value, can make a model panic;
//! offsets a model does not implement read as zero and ignore writes.

pub mod pl011;
