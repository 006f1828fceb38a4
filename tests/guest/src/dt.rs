//! What the guest learns from the DTB in x0: the GIC (version and frames), the timer PPIs, the
//! UART, the PSCI conduit, the CPUs and the command line. Nothing is assumed: the same binary
//! runs on QEMU's device tree and on the one exitless writes for its VMs.

use crate::hw::Conduit;

/// The most CPUs the guest drives.
pub const MAX_CPUS: usize = 8;

/// The GIC's architecture and frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicDesc {
    /// GICv2: distributor and CPU interface.
    V2 { gicd: usize, gicc: usize },
    /// GICv3: distributor, first redistributor region (base, size) and frame stride (0: none
    /// given, each frame's own size: 128 KiB, or 256 KiB with GICR_TYPER.VLPIS, GICv4).
    V3 {
        gicd: usize,
        gicr: usize,
        gicr_size: usize,
        stride: usize,
    },
}

/// The platform as the DTB describes it.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub gic: GicDesc,
    /// The first ITS's frames (`arm,gic-v3-its`), 0 if there is none.
    pub its: usize,
    /// The generic PCIe bridge: its ECAM and the CPU address of its 32-bit memory window (0 if
    /// there is no bridge).
    pub pci_ecam: usize,
    pub pci_mmio32: usize,
    pub uart: usize,
    pub conduit: Conduit,
    pub cpu_count: usize,
    pub mpidr: [u64; MAX_CPUS],
    /// Timer PPIs as INTIDs: EL1 physical (non-secure) and EL1 virtual.
    pub ptimer: u32,
    pub vtimer: u32,
    pub bench: bool,
    /// `exitless.loop=OP`: repeat one benchmark operation (scripts/profile.py).
    pub op_loop: Option<crate::bench::LoopOp>,
    /// `exitless.direct-msi`: the hypervisor injects the owned PCI devices' MSIs directly
    /// (GICv4), so the `pci` cases expect no exit for them.
    pub direct_msi: bool,
    /// `exitless.hostile[=WRITES,OPS]`: run the hostile guest ([`crate::hostile`]) with these
    /// counts (0: its defaults) instead of the cases.
    pub hostile: Option<(u64, u64)>,
}

/// The big-endian u32 cells of a property.
fn cells(v: &[u8]) -> impl Iterator<Item = u32> + '_ {
    v.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// Parses the DTB at `addr`; `Err` says what is missing.
pub fn parse(addr: usize) -> Result<Platform, &'static str> {
    // SAFETY: the boot loader passes a DTB in x0; `from_ptr` checks its header and size.
    let fdt = unsafe { fdt::Fdt::from_ptr(addr as *const u8) }.map_err(|_| "bad DTB")?;

    let gic = if let Some(n) = fdt.find_compatible(&["arm,gic-v3"]) {
        let mut regs = n.reg().ok_or("GICv3 without reg")?;
        let d = regs.next().ok_or("GICv3 without GICD")?;
        let r = regs.next().ok_or("GICv3 without GICR")?;
        let stride = n
            .property("redistributor-stride")
            .and_then(|p| p.as_usize())
            .unwrap_or(0);
        GicDesc::V3 {
            gicd: d.starting_address as usize,
            gicr: r.starting_address as usize,
            gicr_size: r.size.unwrap_or(0),
            stride,
        }
    } else if let Some(n) =
        fdt.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"])
    {
        let mut regs = n.reg().ok_or("GICv2 without reg")?;
        let d = regs.next().ok_or("GICv2 without GICD")?;
        let c = regs.next().ok_or("GICv2 without GICC")?;
        GicDesc::V2 {
            gicd: d.starting_address as usize,
            gicc: c.starting_address as usize,
        }
    } else {
        return Err("no GICv2 or GICv3 node");
    };

    let its = fdt
        .find_compatible(&["arm,gic-v3-its"])
        .and_then(|n| n.reg()?.next())
        .map_or(0, |r| r.starting_address as usize);

    let (mut pci_ecam, mut pci_mmio32) = (0, 0);
    if let Some(n) = fdt.find_compatible(&["pci-host-ecam-generic"]) {
        if let Some(r) = n.reg().and_then(|mut r| r.next()) {
            pci_ecam = r.starting_address as usize;
        }
        // ranges: phys.hi, PCI address (2 cells), CPU address (2 cells), size (2 cells).
        if let Some(r) = n.property("ranges") {
            let c: [u32; 64] = {
                let mut a = [0u32; 64];
                for (i, x) in cells(r.value).take(64).enumerate() {
                    a[i] = x;
                }
                a
            };
            for e in c.chunks_exact(7) {
                if e[0] >> 24 & 3 == 2 {
                    pci_mmio32 = ((e[3] as usize) << 32) | e[4] as usize;
                    break;
                }
            }
        }
    }

    let uart = fdt
        .chosen()
        .stdout()
        .filter(|n| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == "arm,pl011"))
        })
        .or_else(|| fdt.find_compatible(&["arm,pl011"]))
        .and_then(|n| n.reg()?.next())
        .ok_or("no PL011")?
        .starting_address as usize;

    let psci = fdt
        .find_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])
        .ok_or("no PSCI")?;
    let conduit = match psci.property("method").and_then(|p| p.as_str()) {
        Some("hvc") => Conduit::Hvc,
        Some("smc") => Conduit::Smc,
        _ => return Err("PSCI method neither hvc nor smc"),
    };

    // Timer: <type number flags> x4: secure phys, non-secure phys, virtual, hyp phys.
    let timer = fdt
        .find_compatible(&["arm,armv8-timer"])
        .ok_or("no arm,armv8-timer")?;
    let irqs = timer
        .property("interrupts")
        .ok_or("timer without interrupts")?
        .value;
    let mut ppis = [0u32; 4];
    for (i, c) in cells(irqs).collect_triplets().iter().take(4).enumerate() {
        ppis[i] = c.1 + if c.0 == 1 { 16 } else { 32 };
    }
    if ppis[2] == 0 {
        return Err("timer without the virtual timer PPI");
    }

    let mut mpidr = [0u64; MAX_CPUS];
    let mut cpu_count = 0;
    let cpus = fdt.find_node("/cpus").ok_or("no /cpus")?;
    let ac = cpus
        .property("#address-cells")
        .and_then(|p| p.as_usize())
        .unwrap_or(2);
    for c in cpus.children() {
        if c.property("device_type").and_then(|p| p.as_str()) != Some("cpu") {
            continue;
        }
        let Some(reg) = c.property("reg") else {
            continue;
        };
        let mut v = 0u64;
        for x in cells(reg.value).take(ac) {
            v = (v << 32) | x as u64;
        }
        if cpu_count < MAX_CPUS {
            mpidr[cpu_count] = v;
            cpu_count += 1;
        }
    }
    if cpu_count == 0 {
        return Err("no CPU in /cpus");
    }

    let bootargs = fdt.chosen().bootargs().unwrap_or("");
    let bench = bootargs
        .split_ascii_whitespace()
        .any(|w| w == "exitless.bench");
    // `exitless.loop=OP`: one operation many times, for scripts/profile.py.
    let op_loop = bootargs
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("exitless.loop="))
        .and_then(crate::bench::LoopOp::parse);
    let direct_msi = bootargs
        .split_ascii_whitespace()
        .any(|w| w == "exitless.direct-msi");
    let hostile = bootargs.split_ascii_whitespace().find_map(|w| {
        let rest = w.strip_prefix("exitless.hostile")?;
        let rest = match rest.strip_prefix('=') {
            Some(r) => r,
            None if rest.is_empty() => return Some((0, 0)),
            None => return None,
        };
        let (a, b) = rest.split_once(',').unwrap_or((rest, "0"));
        Some((a.parse().unwrap_or(0), b.parse().unwrap_or(0)))
    });

    Ok(Platform {
        gic,
        its,
        pci_ecam,
        pci_mmio32,
        uart,
        conduit,
        cpu_count,
        mpidr,
        ptimer: ppis[1],
        vtimer: ppis[2],
        bench,
        op_loop,
        direct_msi,
        hostile,
    })
}

/// Groups of three cells.
trait Triplets {
    fn collect_triplets(self) -> [(u32, u32, u32); 4];
}

impl<I: Iterator<Item = u32>> Triplets for I {
    fn collect_triplets(mut self) -> [(u32, u32, u32); 4] {
        let mut out = [(0, 0, 0); 4];
        for o in out.iter_mut() {
            match (self.next(), self.next(), self.next()) {
                (Some(a), Some(b), Some(c)) => *o = (a, b, c),
                _ => break,
            }
        }
        out
    }
}
