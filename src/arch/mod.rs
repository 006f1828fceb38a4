//! Hardware shell, CPU side: everything that executes an AArch64 instruction the compiler would
//! not emit by itself (system registers, cache and TLB maintenance, exception vectors, SMC/HVC).
//! Compiled only for the bare-metal target.

pub mod aarch64;

pub use aarch64::*;
