//! # exitless-core: the pure core of the exitless hypervisor
//!
//! exitless runs at EL2 directly on the machine. It is two crates, and the line between them is
//! the most important rule of the code:
//!
//! * **This crate, the pure core**, holds every decision: how the device tree describes the
//!   machine, how page tables are laid out, what a syndrome means, how the vGIC answers a
//!   register access and fills the list registers, what a PSCI call does, which vCPU to kick and
//!   when a VM stops. It never touches hardware: `#![forbid(unsafe_code)]`, no `asm!`, no
//!   volatile access, no system register, no hardware crate. It builds on the host and is
//!   unit-tested there with `cargo test` (`make test-host`). Where a decision needs the hardware
//!   it asks through a small trait (`vm::machine::ExitHw`, `hv::Cpus`, `mm::pgtable::FrameAlloc`)
//!   that the shell implements on the machine and the tests implement with fakes.
//! * **The hardware shell** (the `exitless` binary crate in `src/`: `boot`, `arch`, `drivers`,
//!   `machine`, `hv`) moves values between the hardware and the core. It depends on this crate;
//!   this crate cannot name it, so a reference from the core to the shell is a build error.
//!
//! ## Layers
//!
//! Modules point one way, down this list (`scripts/check-layering.sh` checks it):
//!
//! | rank | modules | what |
//! |---|---|---|
//! | 6 | `hv` | run-loop policy: console focus, interrupt routing, kick, stop and reset, placement |
//! | 5 | `vm` | a VM: configuration, bundle, stage-2 layout, the exit handler (`vm::machine`) |
//! | 4 | `vgic`, `vcpu`, `dev` | the virtual GIC, vCPU state and PSCI, emulated devices |
//! | 3 | `gic` | GIC facts shared by the physical driver and the vGIC |
//! | 2 | `platform` | the machine as the device tree describes it |
//! | 1 | `mm`, `trap`, `util` | page tables, syndrome decoding, text helpers |
//!
//! The one lock order of the hypervisor is written at the head of `vm::machine`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod dev;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod gic;
pub mod hv;
pub mod mm;
pub mod platform;
pub mod trap;
pub mod util;
pub mod vcpu;
pub mod vgic;
pub mod vm;
