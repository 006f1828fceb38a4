//! The machine as the boot loader's device tree describes it, turned into one plain value,
//! [`PlatformInfo`], that the rest of exitless reads. Nothing about a board is assumed: QEMU
//! virt and the Raspberry Pi 4 differ only in what their trees say. The one exception is
//! [`fallback`], a clearly named guess used only to print an error when there is no usable tree.
//!
//! One board gets more than its tree: on a Raspberry Pi 4 exitless owns its console
//! ([`bcm2711`]), because the firmware's choice of console cannot be trusted.
//!
//! Bindings followed (Linux `Documentation/devicetree/bindings`): `arm,gic` (GICv2 and its
//! virtualization frames), `arm,gic-v3` (redistributor regions, ITS children), `arm,psci`,
//! `arm,armv8-timer`, `arm,pl011`, `brcm,bcm2835-aux-uart`, `cpus` enable methods (`psci`,
//! `spin-table` with `cpu-release-addr`), `/chosen`, `/memreserve/` and `/reserved-memory`.
//!
//! Invariant: parsing never allocates (it runs before the heap exists) and never panics on any
//! blob: [`dt::validate`] has checked the structure, and everything else is an `Option`.

pub mod bcm2711;
pub mod dt;
pub mod fallback;
pub mod pci;

use core::fmt;

use fdt::Fdt;
use fdt::node::FdtNode;
use heapless::Vec;

use crate::mm::MemRange;
pub use dt::{DtError, Interrupt};

/// Most CPUs exitless brings up; further CPUs in the tree are reported and left off.
pub const MAX_CPUS: usize = 8;
/// Most memory banks kept from `/memory` nodes.
pub const MAX_MEM_BANKS: usize = 8;
/// Most reserved ranges kept (`/memreserve/`, `/reserved-memory`, DTB, initrd).
pub const MAX_RESERVED: usize = 32;
/// Most GICv3 redistributor regions kept.
pub const MAX_REDIST_REGIONS: usize = 4;
/// Most GICv3 ITSs kept.
pub const MAX_ITS: usize = 4;

/// Everything exitless learns from the boot loader's device tree.
#[derive(Debug, Clone)]
pub struct PlatformInfo<'a> {
    /// Root `model`.
    pub model: &'a str,
    /// First entry of the root `compatible`.
    pub compatible: &'a str,
    /// `/chosen/bootargs` (empty if absent).
    pub bootargs: &'a str,
    /// RAM banks from every `device_type = "memory"` node.
    pub memory: Vec<MemRange, MAX_MEM_BANKS>,
    /// Memory that must not be used: reservations, the DTB itself and the initrd.
    pub reserved: Vec<Reserved, MAX_RESERVED>,
    /// Reserved ranges that did not fit in [`MAX_RESERVED`] (an error at boot if not zero).
    pub reserved_dropped: usize,
    /// The DTB blob's own location.
    pub dtb: MemRange,
    /// The initrd the boot loader loaded (`/chosen/linux,initrd-start/end`).
    pub initrd: Option<MemRange>,
    /// The console UART: the one `/chosen/stdout-path` names, or, on a Raspberry Pi 4, UART0,
    /// which exitless sets up itself ([`PlatformInfo::owned_console`]).
    pub console: Result<UartInfo, ConsoleProblem>,
    /// On a Raspberry Pi 4 (BCM2711): the console exitless routes and programs itself, whatever
    /// `stdout-path` and the firmware chose ([`bcm2711`]).
    pub owned_console: Option<bcm2711::OwnedConsole>,
    /// The interrupt controller.
    pub gic: Option<GicInfo>,
    /// CPUs in tree order, at most [`MAX_CPUS`].
    pub cpus: Vec<CpuInfo, MAX_CPUS>,
    /// CPUs beyond [`MAX_CPUS`] that are left off.
    pub cpus_ignored: usize,
    /// How to call PSCI, if the firmware provides it.
    pub psci: Option<Conduit>,
    /// The architected timer's interrupts.
    pub timer: Option<TimerInfo>,
    /// The Broadcom power-management watchdog (Raspberry Pi), used to power off without PSCI.
    pub bcm2835_pm: Option<u64>,
    /// The end of the memory that bus masters behind a top-level bus's `dma-ranges` can reach
    /// (the Raspberry Pi 4's legacy DMA sees the first GiB): guest RAM for passed-through
    /// devices is taken below it.
    pub dma_limit: Option<u64>,
    /// The generic PCIe host bridge, if the tree has one ([`pci`]).
    pub pci: Option<pci::PciHost>,
}

/// A reserved range and where the reservation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// The reserved physical range.
    pub range: MemRange,
    /// Its origin.
    pub kind: ReservedKind,
}

/// Where a reservation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    /// The DTB's memory reservation block (`/memreserve/`).
    MemReserve,
    /// A child of `/reserved-memory` with a static `reg`.
    ReservedMemory,
    /// The device-tree blob.
    Dtb,
    /// The initrd named in `/chosen`.
    Initrd,
}

/// UART models exitless drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PrimeCell PL011 (QEMU virt, Raspberry Pi 4 UART0).
    Pl011,
    /// The BCM2835 auxiliary "mini UART" (Raspberry Pi 4 UART1).
    Bcm2835Aux,
}

/// The console UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartInfo {
    /// Model.
    pub kind: UartKind,
    /// MMIO base (CPU physical address).
    pub base: u64,
    /// MMIO size.
    pub size: u64,
    /// Its interrupt, if the tree gives one in GIC format.
    pub irq: Option<Interrupt>,
}

/// Why there is no console UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleProblem {
    /// No `/chosen/stdout-path` and no enabled PL011 in the tree.
    NotNamed,
    /// `stdout-path` names a node or alias that does not exist.
    NotFound,
    /// The node exists but is not a UART exitless can drive.
    Unsupported,
}

/// GIC architecture version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GicVersion {
    /// GICv2 (GIC-400 and compatibles).
    V2,
    /// GICv3 or GICv4 (the same binding; the registers tell them apart).
    V3,
}

/// The interrupt controller's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GicInfo {
    /// A GICv2.
    V2(GicV2Info),
    /// A GICv3/v4.
    V3(GicV3Info),
}

impl GicInfo {
    /// The architecture version.
    pub fn version(&self) -> GicVersion {
        match self {
            GicInfo::V2(_) => GicVersion::V2,
            GicInfo::V3(_) => GicVersion::V3,
        }
    }

    /// The virtualization maintenance interrupt.
    pub fn maintenance(&self) -> Option<Interrupt> {
        match self {
            GicInfo::V2(g) => g.maintenance,
            GicInfo::V3(g) => g.maintenance,
        }
    }
}

/// GICv2 frames (`arm,gic-400`, `arm,cortex-a15-gic`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicV2Info {
    /// Distributor.
    pub gicd: MemRange,
    /// CPU interface.
    pub gicc: MemRange,
    /// Virtual interface control (hypervisor) frame; absent without virtualization extensions.
    pub gich: Option<MemRange>,
    /// Virtual CPU interface frame.
    pub gicv: Option<MemRange>,
    /// Maintenance interrupt.
    pub maintenance: Option<Interrupt>,
}

/// GICv3/v4 frames (`arm,gic-v3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GicV3Info {
    /// Distributor.
    pub gicd: MemRange,
    /// Redistributor regions.
    pub redist_regions: Vec<MemRange, MAX_REDIST_REGIONS>,
    /// `redistributor-stride`, if the tree overrides the architected frame layout.
    pub redist_stride: Option<u64>,
    /// ITS register frames (`arm,gic-v3-its` children).
    pub its: Vec<MemRange, MAX_ITS>,
    /// Maintenance interrupt.
    pub maintenance: Option<Interrupt>,
    /// GICv2-compatible frames (GICC, GICH, GICV), if the hardware offers them.
    pub v2_compat: Option<(MemRange, MemRange, MemRange)>,
}

/// One CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    /// Its MPIDR affinity fields (`reg`).
    pub mpidr: u64,
    /// How to start it.
    pub enable: EnableMethod,
}

/// How a secondary CPU is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI CPU_ON.
    Psci,
    /// Write the entry point to `release_addr`, clean it to memory, `sev`.
    SpinTable {
        /// `cpu-release-addr`.
        release_addr: u64,
    },
    /// No or an unknown method (normally the boot CPU).
    None,
}

/// The SMCCC conduit for PSCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    /// `smc #0`.
    Smc,
    /// `hvc #0`.
    Hvc,
}

/// The architected timer's PPIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerInfo {
    /// Secure EL1 physical timer.
    pub secure_phys: Interrupt,
    /// Non-secure EL1 physical timer.
    pub phys: Interrupt,
    /// EL1 virtual timer.
    pub virt: Interrupt,
    /// EL2 physical timer.
    pub hyp_phys: Interrupt,
    /// EL2 virtual timer, if described.
    pub hyp_virt: Option<Interrupt>,
}

/// What makes a platform unusable for exitless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformError {
    /// No RAM described.
    NoMemory,
    /// No CPU described.
    NoCpus,
    /// No supported interrupt controller.
    NoGic,
    /// The GIC lacks the virtualization frames (GICv2 without GICH/GICV).
    NoGicVirtualization,
    /// More reserved ranges than [`MAX_RESERVED`].
    TooManyReservations,
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlatformError::NoMemory => "the device tree describes no memory (/memory nodes)",
            PlatformError::NoCpus => "the device tree describes no CPUs (/cpus)",
            PlatformError::NoGic => {
                "the device tree has no supported interrupt controller (arm,gic-400, \
                 arm,cortex-a15-gic or arm,gic-v3)"
            }
            PlatformError::NoGicVirtualization => {
                "the GICv2 has no virtualization frames (GICH/GICV): exitless needs the \
                 virtualization extensions (on QEMU: -machine virt,virtualization=on)"
            }
            PlatformError::TooManyReservations => "too many reserved memory ranges",
        })
    }
}

const GICV2_COMPATIBLE: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,arm11mp-gic",
    "arm,gic-v2",
];
const GICV3_COMPATIBLE: &[&str] = &["arm,gic-v3"];
const PSCI_COMPATIBLE: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];
const TIMER_COMPATIBLE: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
const PL011_COMPATIBLE: &[&str] = &["arm,pl011"];
const AUX_UART_COMPATIBLE: &[&str] = &["brcm,bcm2835-aux-uart"];
const BCM2835_PM_COMPATIBLE: &[&str] = &["brcm,bcm2835-pm-wdt", "brcm,bcm2835-pm"];

impl<'a> PlatformInfo<'a> {
    /// Interprets a validated tree located at `dtb_pa` in physical memory.
    pub fn parse(fdt: &'a Fdt<'a>, dtb_pa: u64) -> Self {
        let root = fdt.find_node("/");
        let model = root
            .as_ref()
            .and_then(|r| dt::prop_str(r, "model"))
            .unwrap_or("");
        let compatible = root
            .as_ref()
            .and_then(|r| dt::prop_str(r, "compatible"))
            .unwrap_or("");
        let chosen = fdt.find_node("/chosen");
        let bootargs = chosen
            .as_ref()
            .and_then(|c| dt::prop_str(c, "bootargs"))
            .unwrap_or("");
        let initrd = chosen.as_ref().and_then(|c| {
            let start = dt::prop_u64(c, "linux,initrd-start")?;
            let end = dt::prop_u64(c, "linux,initrd-end")?;
            (end > start).then_some(MemRange { start, end })
        });
        let dtb = MemRange::with_size(dtb_pa, fdt.total_size() as u64).unwrap_or_default();

        let mut info = PlatformInfo {
            model,
            compatible,
            bootargs,
            memory: Vec::new(),
            reserved: Vec::new(),
            reserved_dropped: 0,
            dtb,
            initrd,
            console: Err(ConsoleProblem::NotNamed),
            owned_console: None,
            gic: None,
            cpus: Vec::new(),
            cpus_ignored: 0,
            psci: None,
            timer: None,
            bcm2835_pm: None,
            dma_limit: None,
            pci: None,
        };

        for r in fdt.memory_reservations() {
            let range = MemRange::with_size(r.address() as u64, r.size() as u64);
            info.reserve(range, ReservedKind::MemReserve);
        }
        info.reserve(Some(dtb), ReservedKind::Dtb);
        info.reserve(initrd, ReservedKind::Initrd);

        let mut pl011_fallback = None;
        dt::walk(fdt, &mut |node, bus, path| {
            info.visit(node, bus, path, &mut pl011_fallback);
            false
        });
        info.pci = pci::find(fdt);
        info.owned_console = bcm2711::owned_console(fdt);
        info.console = match info.owned_console {
            Some(owned) => Ok(owned.uart),
            None => find_console(fdt, chosen.as_ref(), pl011_fallback),
        };
        info
    }

    fn reserve(&mut self, range: Option<MemRange>, kind: ReservedKind) {
        let Some(range) = range.filter(|r| !r.is_empty()) else {
            return;
        };
        if self.reserved.push(Reserved { range, kind }).is_err() {
            self.reserved_dropped += 1;
        }
    }

    fn visit(
        &mut self,
        node: &FdtNode<'a, 'a>,
        bus: &dt::Bus<'a>,
        path: &str,
        pl011: &mut Option<UartInfo>,
    ) {
        let enabled = dt::is_enabled(node);
        if path.matches('/').count() == 1
            && let Some(limit) = dma_limit(node, bus)
        {
            self.dma_limit = Some(self.dma_limit.map_or(limit, |l| l.min(limit)));
        }
        if dt::prop_str(node, "device_type") == Some("memory") && enabled {
            for bank in bus
                .reg::<MAX_MEM_BANKS>(node)
                .into_iter()
                .filter(|b| !b.is_empty())
            {
                // A bank list longer than MAX_MEM_BANKS loses its tail: that memory is unused.
                let _ = self.memory.push(bank);
            }
        } else if path.starts_with("/reserved-memory/") && path.matches('/').count() == 2 {
            for r in bus.reg::<4>(node) {
                self.reserve(Some(r), ReservedKind::ReservedMemory);
            }
        } else if path.starts_with("/cpus/") && dt::prop_str(node, "device_type") == Some("cpu") {
            self.add_cpu(node, bus);
        } else if dt::is_compatible(node, GICV3_COMPATIBLE) && self.gic.is_none() {
            self.gic = gicv3(node, bus);
        } else if dt::is_compatible(node, GICV2_COMPATIBLE) && self.gic.is_none() {
            self.gic = gicv2(node, bus);
        } else if dt::is_compatible(node, &["arm,gic-v3-its"]) && enabled {
            if let Some(GicInfo::V3(g)) = &mut self.gic
                && let Some(frame) = bus.reg::<1>(node).first()
            {
                let _ = g.its.push(*frame);
            }
        } else if dt::is_compatible(node, PSCI_COMPATIBLE) && self.psci.is_none() {
            self.psci = match dt::prop_str(node, "method") {
                Some("smc") => Some(Conduit::Smc),
                Some("hvc") => Some(Conduit::Hvc),
                _ => None,
            };
        } else if dt::is_compatible(node, TIMER_COMPATIBLE) && self.timer.is_none() {
            let irqs = dt::gic_interrupts::<5>(node);
            if irqs.len() >= 4 {
                self.timer = Some(TimerInfo {
                    secure_phys: irqs[0],
                    phys: irqs[1],
                    virt: irqs[2],
                    hyp_phys: irqs[3],
                    hyp_virt: irqs.get(4).copied(),
                });
            }
        } else if dt::is_compatible(node, PL011_COMPATIBLE) && enabled && pl011.is_none() {
            *pl011 = uart(node, bus, UartKind::Pl011);
        } else if dt::is_compatible(node, BCM2835_PM_COMPATIBLE) && self.bcm2835_pm.is_none() {
            self.bcm2835_pm = bus.reg::<1>(node).first().map(|r| r.start);
        }
    }

    fn add_cpu(&mut self, node: &FdtNode<'a, 'a>, bus: &dt::Bus<'a>) {
        let (ac, _) = bus.cells();
        let Some(mpidr) = node
            .property("reg")
            .and_then(|p| dt::read_cells(p.value, ac))
        else {
            return;
        };
        let enable = match dt::prop_str(node, "enable-method") {
            Some("psci") => EnableMethod::Psci,
            Some("spin-table") => match dt::prop_u64(node, "cpu-release-addr") {
                Some(release_addr) => EnableMethod::SpinTable { release_addr },
                None => EnableMethod::None,
            },
            _ => EnableMethod::None,
        };
        if self
            .cpus
            .push(CpuInfo {
                mpidr: mpidr.0,
                enable,
            })
            .is_err()
        {
            self.cpus_ignored += 1;
        }
    }

    /// Checks that the platform has what exitless cannot run without.
    pub fn check(&self) -> Result<(), PlatformError> {
        if self.memory.is_empty() {
            return Err(PlatformError::NoMemory);
        }
        if self.cpus.is_empty() {
            return Err(PlatformError::NoCpus);
        }
        match &self.gic {
            None => return Err(PlatformError::NoGic),
            Some(GicInfo::V2(g)) if g.gich.is_none() || g.gicv.is_none() => {
                return Err(PlatformError::NoGicVirtualization);
            }
            _ => {}
        }
        if self.reserved_dropped > 0 {
            return Err(PlatformError::TooManyReservations);
        }
        Ok(())
    }

    /// The index in [`PlatformInfo::cpus`] of the CPU whose MPIDR affinity is `mpidr`.
    pub fn cpu_index(&self, mpidr: u64) -> Option<usize> {
        self.cpus
            .iter()
            .position(|c| c.mpidr == mpidr & MPIDR_AFFINITY_MASK)
    }
}

/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0), which `cpus/reg` holds.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// The highest CPU address + 1 that a bus's `dma-ranges` (child address, parent address, size
/// triplets) lets its masters reach; `None` without the property or with an empty one
/// (identity: no limit).
fn dma_limit(node: &FdtNode<'_, '_>, bus: &dt::Bus<'_>) -> Option<u64> {
    let v = node.property("dma-ranges")?.value;
    let child_ac = dt::prop_u32(node, "#address-cells").unwrap_or(2) as usize;
    let child_sc = dt::prop_u32(node, "#size-cells").unwrap_or(1) as usize;
    let (parent_ac, _) = bus.cells();
    let mut r = v;
    let mut limit: Option<u64> = None;
    while !r.is_empty() {
        let (_, rest) = dt::read_cells(r, child_ac)?;
        let (parent, rest) = dt::read_cells(rest, parent_ac)?;
        let (size, rest) = dt::read_cells(rest, child_sc)?;
        r = rest;
        let end = parent.checked_add(size)?;
        limit = Some(limit.map_or(end, |l| l.max(end)));
    }
    limit
}

fn uart(node: &FdtNode<'_, '_>, bus: &dt::Bus<'_>, kind: UartKind) -> Option<UartInfo> {
    let reg = *bus.reg::<1>(node).first()?;
    let irq = dt::gic_interrupts::<1>(node).first().copied();
    Some(UartInfo {
        kind,
        base: reg.start,
        size: reg.size(),
        irq,
    })
}

fn gicv2(node: &FdtNode<'_, '_>, bus: &dt::Bus<'_>) -> Option<GicInfo> {
    let reg = bus.reg::<4>(node);
    Some(GicInfo::V2(GicV2Info {
        gicd: *reg.first()?,
        gicc: *reg.get(1)?,
        gich: reg.get(2).copied(),
        gicv: reg.get(3).copied(),
        maintenance: dt::gic_interrupts::<1>(node).first().copied(),
    }))
}

fn gicv3(node: &FdtNode<'_, '_>, bus: &dt::Bus<'_>) -> Option<GicInfo> {
    let reg = bus.reg::<{ MAX_REDIST_REGIONS + 4 }>(node);
    let regions = dt::prop_u32(node, "#redistributor-regions").unwrap_or(1) as usize;
    let regions = regions.clamp(1, MAX_REDIST_REGIONS);
    let gicd = *reg.first()?;
    let redist_regions: Vec<MemRange, MAX_REDIST_REGIONS> =
        reg.iter().skip(1).take(regions).copied().collect();
    if redist_regions.is_empty() {
        return None;
    }
    let rest = &reg[(1 + redist_regions.len()).min(reg.len())..];
    let v2_compat = match rest {
        [gicc, gich, gicv, ..] => Some((*gicc, *gich, *gicv)),
        _ => None,
    };
    Some(GicInfo::V3(GicV3Info {
        gicd,
        redist_regions,
        redist_stride: dt::prop_u64(node, "redistributor-stride"),
        its: Vec::new(),
        maintenance: dt::gic_interrupts::<1>(node).first().copied(),
        v2_compat,
    }))
}

/// Resolves `/chosen/stdout-path` ("serial0:115200n8", or a full path) to a UART.
fn find_console<'a>(
    fdt: &'a Fdt<'a>,
    chosen: Option<&FdtNode<'a, 'a>>,
    pl011_fallback: Option<UartInfo>,
) -> Result<UartInfo, ConsoleProblem> {
    let Some(stdout) = chosen.and_then(|c| dt::prop_str(c, "stdout-path")) else {
        return pl011_fallback.ok_or(ConsoleProblem::NotNamed);
    };
    let name = stdout.split(':').next().unwrap_or("");
    let path = if name.starts_with('/') {
        name
    } else {
        let aliases = fdt.find_node("/aliases").ok_or(ConsoleProblem::NotFound)?;
        dt::prop_str(&aliases, name).ok_or(ConsoleProblem::NotFound)?
    };
    let (node, bus) = dt::find_path(fdt, path).ok_or(ConsoleProblem::NotFound)?;
    let kind = if dt::is_compatible(&node, PL011_COMPATIBLE) {
        UartKind::Pl011
    } else if dt::is_compatible(&node, AUX_UART_COMPATIBLE) {
        UartKind::Bcm2835Aux
    } else {
        return Err(ConsoleProblem::Unsupported);
    };
    uart(&node, &bus, kind).ok_or(ConsoleProblem::NotFound)
}

#[cfg(test)]
mod tests;
