//! A PCI device the guest owns: QEMU's `edu` (vendor 0x1234, device 0x11e8; QEMU
//! docs/specs/edu.txt) behind the generic PCIe bridge, found through ECAM, its BAR0 placed in
//! the bridge's 32-bit window. Natively the guest owns QEMU's bridge; under exitless a VM with
//! `pci = true` owns the host's, mapped 1:1.

use crate::pci::{self, Func};
use crate::rt::platform;
use crate::tap::{Case, Only, Outcome};
use crate::{diag, ensure, hw};

pub const CASES: &[Case] = &[Case {
    group: "pci",
    name: "the edu device is found through ECAM and its BAR0 identification register reads 0x010000ed",
    only: Only::V3,
    f: edu_found,
}];

/// edu's identification register (BAR0 + 0): major 1, minor 0, 0xed.
const EDU_ID: u32 = 0x0100_00ed;

/// The edu function and its BAR0, set up; `Err` skips the case.
pub fn edu() -> Result<(Func, usize), Outcome> {
    let p = platform();
    if p.pci_ecam == 0 || p.pci_mmio32 == 0 {
        return Err(Outcome::Skip("no PCIe bridge in the device tree"));
    }
    let f = pci::find(p.pci_ecam, 0x1234, 0x11e8)
        .ok_or(Outcome::Skip("no edu device (QEMU -device edu)"))?;
    let bar = f.enable_bar0(p.pci_mmio32);
    Ok((f, bar))
}

fn edu_found() -> Outcome {
    let (f, bar) = match edu() {
        Ok(x) => x,
        Err(o) => return o,
    };
    diag!(
        "edu at 00:{:02x}.{} (requester ID {:#x}), BAR0 at {bar:#x}",
        f.dev,
        f.func,
        f.rid()
    );
    let id = hw::read32(bar);
    ensure!(id == EDU_ID, "BAR0 + 0 reads {id:#x}, want {EDU_ID:#x}");
    // The liveness register returns the complement of what was written.
    hw::write32(bar + 4, 0x1234_5678);
    let live = hw::read32(bar + 4);
    ensure!(live == !0x1234_5678, "liveness register {live:#x}");
    Outcome::Pass
}
