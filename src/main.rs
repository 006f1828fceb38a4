//! # exitless: the hardware shell of a type-1 hypervisor for AArch64
//!
//! This crate is the bare-metal image. It boots like a Linux kernel (arm64 Image header, DTB in
//! x0) at EL2, learns the machine from the device tree and runs VMs. Every decision is made in
//! the pure core, the `exitless_core` crate (`core/`), which is unit-tested on the host; this
//! crate only moves state between the hardware and the core: it reads a syndrome register into a
//! value the core decodes, writes a table the core built into TTBR0_EL2, pokes the UART, loads
//! and saves the list registers. It is tested by booting it under QEMU (`make test-qemu`).
//!
//! ## Layers
//!
//! Modules point one way, down this list (`scripts/check-layering.sh` checks it):
//!
//! | rank | modules | what |
//! |---|---|---|
//! | 5 | `boot` | `_start`, relocation, the boot CPU's and secondaries' way into `hv` |
//! | 4 | `hv` | the run loop: enter a vCPU, hand the exit to the core, do what the core decided |
//! | 3 | `machine` | services both use: the heap, power off, the fatal-error policy |
//! | 2 | `drivers` | the physical GIC, UARTs, the console |
//! | 1 | `arch` | AArch64 registers, exception vectors, stage-1/2 MMU, guest entry |
//!
//! The lock order is written once, at the head of `exitless_core::vm::machine`.
//!
//! ## Unsafe
//!
//! Every `unsafe` block is small and carries a `// SAFETY:` argument; every `unsafe fn` documents
//! its contract in a `# Safety` section. The lint table in `Cargo.toml` denies the alternatives.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod drivers;
#[cfg(target_os = "none")]
mod hv;
#[cfg(target_os = "none")]
mod machine;

/// On the host this binary is only a reminder: the hypervisor is a bare-metal image.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("exitless is a bare-metal image: build it with `make` and boot it with `make run`");
    std::process::exit(2);
}
