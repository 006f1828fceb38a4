//! Traps, pure part: what the hardware reports when it takes an exception to EL2, turned into
//! values that the rest of the hypervisor can act on.
//!
//! The exception vectors and the register save/restore live in the hardware shell (`arch`). That
//! code reads ESR_EL2, FAR_EL2, ELR_EL2 and SPSR_EL2 once and hands the values here. This module
//! decodes them for two users:
//!
//! * the report printed when EL2 takes an exception it did not expect ([`esr::Report`]), and
//! * the guest-exit path, which turns a syndrome into a typed exit ([`esr::Esr::decode`]).
//!
//! Spec: Arm ARM DDI 0487, D24.2 "ESR_EL2" and its "ISS encoding for an exception from ..."
//! subsections.
//!
//! Invariant: nothing here touches hardware, and every decoder is total. A guest chooses the
//! syndromes it causes, so no value may make the decoding panic.

pub mod esr;

pub use esr::{Esr, ExceptionClass, Iss, Report};
