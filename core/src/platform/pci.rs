//! The host's generic PCIe host bridge (`pci-host-ecam-generic`, Linux binding
//! `pci/host-generic-pci.yaml` and `pci/pci.txt`): what a VM that owns it needs to know: the
//! ECAM window, the bus range, the address windows (`ranges`, mapped 1:1), the legacy INTx
//! interrupts (`interrupt-map`, SPIs) and whether MSIs go to an ITS (`msi-map`).
//!
//! Invariant: only values read from the tree, checked (a window that is empty, that wraps, or
//! an INTx that is no SPI is left out); nothing here maps or touches the bridge.

use fdt::Fdt;
use fdt::node::FdtNode;
use heapless::Vec;

use super::dt::{self, Bus};
use crate::mm::MemRange;

/// Compatible strings of the bridge.
pub const PCI_HOST_COMPATIBLE: &[&str] = &["pci-host-ecam-generic"];
/// Most address windows kept (QEMU virt has I/O, 32-bit and 64-bit memory).
pub const MAX_WINDOWS: usize = 4;
/// Most `interrupt-map` entries kept (4 pins x 4 slots on QEMU virt).
pub const MAX_INTX: usize = 32;

/// One `ranges` entry: PCI space code (`phys.hi` bits 25:24: 1 I/O, 2 32-bit memory, 3 64-bit
/// memory), PCI address, CPU address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciWindow {
    /// The `phys.hi` cell as written (space code and flags).
    pub hi: u32,
    /// Address on the PCI side.
    pub pci: u64,
    /// The CPU physical range.
    pub cpu: MemRange,
}

/// One `interrupt-map` entry, for a parent with three interrupt cells (GIC): the child unit
/// address's `phys.hi` (device and function) and pin, and the SPI it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxRoute {
    /// `phys.hi` of the child unit address (bits 15:11 device, 10:8 function).
    pub hi: u32,
    /// INTA..INTD as 1..4.
    pub pin: u32,
    /// The SPI's INTID.
    pub spi: u32,
    /// The GIC binding's flags cell (4: level, high).
    pub flags: u32,
}

/// The bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciHost {
    /// ECAM (configuration space).
    pub ecam: MemRange,
    /// First and last bus number.
    pub bus_range: (u32, u32),
    /// Address windows, 1:1.
    pub windows: Vec<PciWindow, MAX_WINDOWS>,
    /// `interrupt-map-mask` (4 cells: phys.hi, mid, lo, pin).
    pub intx_mask: [u32; 4],
    /// Legacy interrupt routes.
    pub intx: Vec<IntxRoute, MAX_INTX>,
    /// `msi-map` or `msi-parent` is present: MSIs go to an ITS (identity DeviceIDs on QEMU).
    pub msi: bool,
    /// `linux,pci-domain`.
    pub domain: u32,
}

impl PciHost {
    /// The SPIs the INTx routes use, each once, ascending.
    pub fn intx_spis(&self) -> Vec<u32, MAX_INTX> {
        let mut out: Vec<u32, MAX_INTX> = Vec::new();
        for r in &self.intx {
            if !out.contains(&r.spi) {
                let _ = out.push(r.spi);
            }
        }
        out.sort_unstable();
        out
    }

    /// Every range the VM that owns the bridge maps 1:1: ECAM and the windows.
    pub fn mmio(&self) -> impl Iterator<Item = MemRange> + '_ {
        core::iter::once(self.ecam).chain(self.windows.iter().map(|w| w.cpu))
    }
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    let c = b.get(i * 4..i * 4 + 4)?;
    Some(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// The first enabled bridge of the tree, if it has a usable ECAM window.
pub fn find(fdt: &Fdt<'_>) -> Option<PciHost> {
    let mut found = None;
    dt::walk(fdt, &mut |node, bus, _| {
        if dt::is_compatible(node, PCI_HOST_COMPATIBLE) && dt::is_enabled(node) {
            found = parse(fdt, node, bus);
            found.is_some()
        } else {
            false
        }
    });
    found
}

/// Reads the bridge from its node; `None` if it has no usable ECAM window.
pub fn parse(fdt: &Fdt<'_>, node: &FdtNode<'_, '_>, bus: &Bus<'_>) -> Option<PciHost> {
    let ecam = *bus.reg::<1>(node).first()?;
    if ecam.is_empty() {
        return None;
    }
    let (pa_cells, _) = bus.cells();
    let mut host = PciHost {
        ecam,
        bus_range: (0, 255),
        windows: Vec::new(),
        intx_mask: [0; 4],
        intx: Vec::new(),
        msi: node.property("msi-map").is_some() || node.property("msi-parent").is_some(),
        domain: dt::prop_u32(node, "linux,pci-domain").unwrap_or(0),
    };
    if let Some(r) = node.property("bus-range")
        && let (Some(a), Some(b)) = (be32(r.value, 0), be32(r.value, 1))
    {
        host.bus_range = (a, b);
    }
    // ranges: <phys.hi phys.mid phys.lo> <parent address> <size (2 cells: the bridge's own
    // #size-cells)>.
    if let Some(r) = node.property("ranges") {
        let mut rest = r.value;
        while !rest.is_empty() {
            let Some(hi) = be32(rest, 0) else { break };
            let Some((pci, after)) = dt::read_cells(rest.get(4..)?, 2) else {
                break;
            };
            let Some((cpu, after)) = dt::read_cells(after, pa_cells) else {
                break;
            };
            let Some((size, after)) = dt::read_cells(after, 2) else {
                break;
            };
            rest = after;
            if let Some(cpu) = bus
                .translate(cpu, size)
                .and_then(|c| MemRange::with_size(c, size))
                && !cpu.is_empty()
            {
                let _ = host.windows.push(PciWindow { hi, pci, cpu });
            }
        }
    }
    if let Some(m) = node.property("interrupt-map-mask") {
        for (i, cell) in host.intx_mask.iter_mut().enumerate() {
            *cell = be32(m.value, i).unwrap_or(0);
        }
    }
    // interrupt-map: child unit address (3 cells) + child interrupt (1), parent phandle, parent
    // unit address (the GIC's #address-cells), parent interrupt (GIC: 3 cells).
    if let Some(m) = node.property("interrupt-map") {
        // The parent's #address-cells, found through the first entry's phandle (QEMU virt's
        // GICv3 has 2: it has ITS children).
        let parent_addr = be32(m.value, 4)
            .and_then(|ph| fdt.find_phandle(ph))
            .and_then(|gic| dt::prop_u32(&gic, "#address-cells"))
            .unwrap_or(0) as usize;
        let stride = 4 + 1 + parent_addr + 3;
        let cells = m.value.len() / 4;
        let mut i = 0;
        while i + stride <= cells {
            let hi = be32(m.value, i).unwrap_or(0);
            let pin = be32(m.value, i + 3).unwrap_or(0);
            let kind = be32(m.value, i + 5 + parent_addr).unwrap_or(1);
            let num = be32(m.value, i + 6 + parent_addr).unwrap_or(0);
            let flags = be32(m.value, i + 7 + parent_addr).unwrap_or(4);
            // GIC binding: type 0 = SPI, number + 32 is the INTID.
            if kind == 0 && num < 988 {
                let _ = host.intx.push(IntxRoute {
                    hi,
                    pin,
                    spi: num + 32,
                    flags,
                });
            }
            i += stride;
        }
    }
    Some(host)
}
