//! vCPU, pure part: everything the hypervisor decides about a guest exit, without touching
//! hardware.
//!
//! The shell (`arch`) saves the guest's general registers into a [`regs::GuestRegs`] and
//! snapshots ESR_EL2, FAR_EL2 and HPFAR_EL2 into a [`regs::ExitInfo`] at every exit. From there:
//!
//! * [`exit`] turns the snapshot into an [`exit::Exit`]: MMIO, HVC/SMC, system register access,
//!   WFx, interrupt, guest fault or "undefined";
//! * [`psci`] answers SMCCC and PSCI calls (and exitless's own hypercalls) over HVC or SMC;
//! * [`sysreg`] classifies trapped system register accesses and sanitizes the ID registers the
//!   guest reads;
//! * [`inject`] computes the register changes that inject an exception (UNDEF, abort) into the
//!   guest's EL1 when the exit cannot be served.
//!
//! Spec: Arm ARM DDI 0487 (D1 "The AArch64 System Level Programmers' Model", D24.2 the EL2
//! syndrome and fault address registers), SMCCC (DEN 0028) and PSCI (DEN 0022). Each module
//! names the sections it implements.
//!
//! Invariants: no `unsafe`, no hardware access, and no panic on any guest-controlled value.
//! Every function here is total over its inputs, because the guest chooses its syndromes, its
//! hypercall arguments and its register contents. Whatever cannot be handled goes back to the
//! guest as an exception (Hafnium's rule), never into a hypervisor crash.

pub mod exit;
pub mod inject;
pub mod psci;
pub mod regs;
pub mod sysreg;
