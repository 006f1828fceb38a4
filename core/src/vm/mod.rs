//! Virtual machines, pure part: the configuration a user writes, the bundle that carries it and
//! the images to the hypervisor, the guest memory map, image placement, the guest device tree,
//! and the MMIO bus that routes trapped accesses to emulated devices.

pub mod bundle;
pub mod config;
pub mod fdt;
pub mod image;
pub mod layout;
pub mod machine;
pub mod mmio;
pub mod traps;
