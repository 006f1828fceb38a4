//! # exitless: a type-1 hypervisor for AArch64 that virtualizes interrupts without exits
//!
//! exitless runs at EL2 directly on the machine. It boots like a Linux kernel (arm64 Image header,
//! DTB in x0) and learns everything about the platform from the device tree.
//!
//! ## Layering
//!
//! The crate has two halves, and the line between them is the most important rule of the code:
//!
//! * **The pure core** (`platform`, `mm`, `trap`, `util`, ...) holds every decision: how the device
//!   tree describes the machine, how page tables are laid out, what a syndrome means. It never
//!   touches hardware: no `asm!`, no volatile access, no system register. It builds on the host
//!   and is unit-tested there with `cargo test` (`make test-host`).
//! * **The hardware shell** (`boot`, `arch`, `drivers`, `hv`) moves values between the hardware and the
//!   core: it reads a syndrome register into a value the core decodes, writes a table the core
//!   built into TTBR0_EL2, pokes the UART. It is compiled only for the bare-metal target
//!   (`target_os = "none"`) and is tested by booting it under QEMU (`make test-qemu`).
//!
//! `scripts/check-layering.sh` (part of `make check`) enforces the line with a grep.
//!
//! ## Unsafe
//!
//! Every `unsafe` block is small, sits in the shell, and carries a `// SAFETY:` argument; every
//! `unsafe fn` documents its contract in a `# Safety` section. The lint table in `Cargo.toml`
//! denies the alternatives.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod dev;
pub mod gic;
pub mod mm;
pub mod platform;
pub mod trap;
pub mod util;
pub mod vcpu;
pub mod vgic;
pub mod vm;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod hv;
