//! The guest device tree: one flattened device tree (Devicetree Specification v0.4) per VM,
//! written with `vm-fdt`. It describes what the VM sees, modelled on the tree QEMU `virt` gives
//! its guests (hw/arm/virt.c; `scripts/fixtures/virt-gicv3.dts` and `virt-gicv2.dts` are QEMU's
//! own), restricted to the devices exitless provides:
//!
//! * `/`: `compatible = "linux,dummy-virt"`, `model = "exitless <name>"`, 2 address and 2 size
//!   cells, `interrupt-parent` = the GIC.
//! * `/memory@<ram>`: the VM's RAM.
//! * `/cpus/cpu@N`: `reg` = the vCPU's MPIDR (Aff0 = N), `compatible = "arm,armv8"` (the
//!   vCPUs of one VM need not share a core type with one another or with QEMU's `-cpu`),
//!   `enable-method = "psci"`.
//! * `/psci`: PSCI 1.0 (0.2 and 0.1 compatibles too, with the 0.1 function IDs QEMU also lists),
//!   called with `hvc`: the hypervisor implements it.
//! * The GIC (bindings: arm,gic-v3.yaml and arm,gic.yaml): v3 `intc@<gicd>`, `arm,gic-v3`, GICD
//!   64 KiB and one redistributor region of `vcpus` 128 KiB frames, an `its@` child when the VM
//!   has an ITS; v2 `arm,cortex-a15-gic` with GICD 4 KiB and GICC 8 KiB. Unlike QEMU's trees,
//!   there is no GICH/GICV frame and no maintenance interrupt: the guest has no EL2.
//! * `/timer`: `arm,armv8-timer` with the four PPIs (secure physical, physical, virtual,
//!   hypervisor) in QEMU's encoding: level-high flags (4), plus for GICv2 the target CPU mask in
//!   bits 15:8 (`0xf04` for four vCPUs).
//! * `/pl011@<uart>` (`arm,pl011`, `arm,primecell`) clocked by `/apb-pclk`, a 24 MHz fixed
//!   clock, as in QEMU.
//! * `/chosen`: `bootargs`, `stdout-path` = the PL011, and the initrd's range as 64-bit
//!   `linux,initrd-start`/`linux,initrd-end`; `/aliases`: `serial0` = the PL011.
//!
//! * A passed-through device with `compatible` strings in the configuration gets a node
//!   `/<name>@<first mmio base>`: `compatible`, `reg` (its MMIO ranges, mapped 1:1), `interrupts`
//!   (its SPIs, level-high) and, for an `arm,primecell` device, the `apb_pclk` clock. Other
//!   bindings' properties (further clocks, resets, DMA) are not invented: a device that needs
//!   them is described by the guest itself. Without `compatible` the device gets no node (Linux
//!   ignores a node without one; a bare-metal guest knows its devices).
//!
//! No `rng-seed`/`kaslr-seed`: the pure core has no entropy source.
//!
//! Invariant: the tree has explicit, unique phandles ([`PHANDLE_CLOCK`], [`PHANDLE_GIC`],
//! [`PHANDLE_ITS`]), and every interrupt specifier uses the GIC's 3 cells.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use vm_fdt::FdtWriter;

use super::config::Passthrough;
use super::layout::{GICR_FRAME_SIZE, MAX_VCPUS, VmLayout};
use crate::mm::MemRange;
use crate::platform::GicVersion;

/// Phandle of `/apb-pclk`.
pub const PHANDLE_CLOCK: u32 = 1;
/// Phandle of the GIC.
pub const PHANDLE_GIC: u32 = 2;
/// Phandle of the ITS.
pub const PHANDLE_ITS: u32 = 3;

/// GIC binding: first cell of an interrupt specifier.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// GIC binding: `IRQ_TYPE_LEVEL_HIGH`, QEMU's flags for the timer and the PL011.
const IRQ_LEVEL_HIGH: u32 = 4;
/// Size of the GICv3 distributor frame.
const GICD_V3_SIZE: u64 = 0x1_0000;
/// Size of the GICv2 distributor (the registers in use).
const GICD_V2_SIZE: u64 = 0x1000;
/// Size of the GICv2 CPU interface (GICC page and the GICC_DIR page).
const GICC_V2_SIZE: u64 = 0x2000;
/// Size of the ITS frame (control and translation pages).
const ITS_SIZE: u64 = 0x2_0000;
/// Size of the PL011 frame.
const UART_SIZE: u64 = 0x1000;
/// QEMU's PL011 / APB clock.
const APB_CLOCK_HZ: u32 = 24_000_000;

/// The architected timer's PPIs, as INTIDs (16..=31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerPpis {
    /// Secure physical timer (CNTPS).
    pub secure_phys: u32,
    /// Non-secure EL1 physical timer (CNTP).
    pub phys: u32,
    /// Virtual timer (CNTV).
    pub virt: u32,
    /// EL2 physical timer (CNTHP).
    pub hyp: u32,
}

impl Default for TimerPpis {
    /// The SBSA-recommended INTIDs QEMU virt uses: 29, 30, 27, 26.
    fn default() -> Self {
        TimerPpis {
            secure_phys: 29,
            phys: 30,
            virt: 27,
            hyp: 26,
        }
    }
}

/// What the guest device tree describes.
#[derive(Debug, Clone, Copy)]
pub struct GuestDt<'a> {
    /// The VM's name (in `model`).
    pub name: &'a str,
    /// vCPU count, 1..=[`MAX_VCPUS`].
    pub vcpus: usize,
    /// The IPA map.
    pub layout: &'a VmLayout,
    /// The vGIC's architecture.
    pub gic: GicVersion,
    /// The kernel command line.
    pub bootargs: &'a str,
    /// Where the initrd was loaded.
    pub initrd: Option<MemRange>,
    /// The timer's PPIs.
    pub timer_ppis: TimerPpis,
    /// True if the VM has a (v)ITS at `layout.its` (GICv3 only).
    pub its: bool,
    /// Passthrough devices (not described; see the module documentation).
    pub passthrough: &'a [Passthrough],
    /// The host's PCIe bridge, when the VM owns it: a `pcie@` node like the host's, with
    /// `msi-map` to the VM's ITS.
    pub pci: Option<&'a crate::platform::pci::PciHost>,
}

/// Why no device tree could be written (not `Clone`: `vm_fdt::Error` is not).
#[derive(Debug, PartialEq, Eq)]
pub enum FdtBuildError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    Vcpus(usize),
    /// A timer interrupt is not a PPI INTID.
    TimerPpi(u32),
    /// The UART interrupt is not an SPI INTID.
    UartIntid(u32),
    /// An ITS was asked for with a GICv2.
    ItsWithGicV2,
    /// The writer refused a name or value (a NUL in `bootargs` or in the VM name, for example).
    Writer(vm_fdt::Error),
}

impl fmt::Display for FdtBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdtBuildError::Vcpus(n) => {
                write!(f, "device tree for {n} vCPUs: use 1 to {MAX_VCPUS} vcpus")
            }
            FdtBuildError::TimerPpi(i) => {
                write!(
                    f,
                    "timer interrupt {i} is not a PPI (16..31): fix the timer INTIDs"
                )
            }
            FdtBuildError::UartIntid(i) => {
                write!(
                    f,
                    "UART interrupt {i} is not an SPI (32..1019): fix uart_irq"
                )
            }
            FdtBuildError::ItsWithGicV2 => {
                write!(f, "an ITS was asked for a GICv2 VM: the ITS needs gic = 3")
            }
            FdtBuildError::Writer(e) => write!(
                f,
                "cannot write the guest device tree ({e}): check the VM name and bootargs for \
                 NUL characters"
            ),
        }
    }
}

impl From<vm_fdt::Error> for FdtBuildError {
    fn from(e: vm_fdt::Error) -> Self {
        FdtBuildError::Writer(e)
    }
}

/// Writes the device tree blob of `vm`.
pub fn build(vm: &GuestDt<'_>) -> Result<Vec<u8>, FdtBuildError> {
    if !(1..=MAX_VCPUS).contains(&vm.vcpus) {
        return Err(FdtBuildError::Vcpus(vm.vcpus));
    }
    let t = vm.timer_ppis;
    let ppis = [t.secure_phys, t.phys, t.virt, t.hyp];
    if let Some(&bad) = ppis.iter().find(|i| !(16..32).contains(*i)) {
        return Err(FdtBuildError::TimerPpi(bad));
    }
    let uart_intid = vm.layout.uart_intid;
    if !(32..1020).contains(&uart_intid) {
        return Err(FdtBuildError::UartIntid(uart_intid));
    }
    if vm.its && vm.gic == GicVersion::V2 {
        return Err(FdtBuildError::ItsWithGicV2);
    }
    let l = vm.layout;
    let uart_path = format!("/pl011@{:x}", l.uart);

    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", &format!("exitless {}", vm.name))?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)?;

    let memory = w.begin_node(&format!("memory@{:x}", l.ram.start))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[l.ram.start, l.ram.size()])?;
    w.end_node(memory)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for n in 0..vm.vcpus {
        let cpu = w.begin_node(&format!("cpu@{n:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        w.property_u32("reg", n as u32)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list(
        "compatible",
        strings(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
    )?;
    w.property_string("method", "hvc")?;
    // PSCI 0.1 function IDs (the 0.2 SMC64/SMC32 ones), for guests that know only "arm,psci".
    w.property_u32("cpu_suspend", 0xc400_0001)?;
    w.property_u32("cpu_off", 0x8400_0002)?;
    w.property_u32("cpu_on", 0xc400_0003)?;
    w.property_u32("migrate", 0xc400_0005)?;
    w.end_node(psci)?;

    let intc = w.begin_node(&format!("intc@{:x}", l.gicd))?;
    w.property_phandle(PHANDLE_GIC)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null("interrupt-controller")?;
    match vm.gic {
        GicVersion::V3 => {
            w.property_string("compatible", "arm,gic-v3")?;
            w.property_u32("#redistributor-regions", 1)?;
            let gicr_size = vm.vcpus as u64 * GICR_FRAME_SIZE;
            w.property_array_u64("reg", &[l.gicd, GICD_V3_SIZE, l.gicr, gicr_size])?;
            w.property_u32("#address-cells", 2)?;
            w.property_u32("#size-cells", 2)?;
            w.property_null("ranges")?;
            if vm.its {
                let its = w.begin_node(&format!("its@{:x}", l.its))?;
                w.property_phandle(PHANDLE_ITS)?;
                w.property_string("compatible", "arm,gic-v3-its")?;
                w.property_null("msi-controller")?;
                w.property_u32("#msi-cells", 1)?;
                w.property_array_u64("reg", &[l.its, ITS_SIZE])?;
                w.end_node(its)?;
            }
        }
        GicVersion::V2 => {
            w.property_string("compatible", "arm,cortex-a15-gic")?;
            w.property_array_u64("reg", &[l.gicd, GICD_V2_SIZE, l.gicc, GICC_V2_SIZE])?;
            // No child node: dtc's interrupt_provider check still wants the cell count.
            w.property_u32("#address-cells", 0)?;
        }
    }
    w.end_node(intc)?;

    let timer = w.begin_node("timer")?;
    w.property_string_list(
        "compatible",
        strings(&["arm,armv8-timer", "arm,armv7-timer"]),
    )?;
    w.property_null("always-on")?;
    let flags = match vm.gic {
        GicVersion::V3 => IRQ_LEVEL_HIGH,
        // GICv2 binding: PPI target CPU mask in bits 15:8 (QEMU: (1 << smp_cpus) - 1).
        GicVersion::V2 => ((1u32 << vm.vcpus) - 1) << 8 | IRQ_LEVEL_HIGH,
    };
    let cells: Vec<u32> = ppis
        .iter()
        .flat_map(|&i| [GIC_PPI, i - 16, flags])
        .collect();
    w.property_array_u32("interrupts", &cells)?;
    w.end_node(timer)?;

    let clock = w.begin_node("apb-pclk")?;
    w.property_phandle(PHANDLE_CLOCK)?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", APB_CLOCK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.end_node(clock)?;

    let uart = w.begin_node(&uart_path[1..])?;
    w.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    w.property_array_u64("reg", &[l.uart, UART_SIZE])?;
    w.property_array_u32("interrupts", &[GIC_SPI, uart_intid - 32, IRQ_LEVEL_HIGH])?;
    w.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    w.property_array_u32("clocks", &[PHANDLE_CLOCK, PHANDLE_CLOCK])?;
    w.end_node(uart)?;

    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", vm.bootargs)?;
    w.property_string("stdout-path", &uart_path)?;
    if let Some(initrd) = vm.initrd {
        w.property_u64("linux,initrd-start", initrd.start)?;
        w.property_u64("linux,initrd-end", initrd.end)?;
    }
    w.end_node(chosen)?;

    for dev in vm.passthrough.iter().filter(|d| !d.compatible.is_empty()) {
        let base = dev.mmio.first().map_or(0, |r| r.start);
        let node = w.begin_node(&format!("{}@{base:x}", dev.name))?;
        w.property_string_list("compatible", dev.compatible.clone())?;
        let reg: Vec<u64> = dev.mmio.iter().flat_map(|r| [r.start, r.size()]).collect();
        if !reg.is_empty() {
            w.property_array_u64("reg", &reg)?;
        }
        let irqs: Vec<u32> = dev
            .irqs
            .iter()
            .flat_map(|&i| [GIC_SPI, i - 32, IRQ_LEVEL_HIGH])
            .collect();
        if !irqs.is_empty() {
            w.property_array_u32("interrupts", &irqs)?;
        }
        if dev.compatible.iter().any(|c| c == "arm,primecell") {
            w.property_string("clock-names", "apb_pclk")?;
            w.property_u32("clocks", PHANDLE_CLOCK)?;
        }
        w.end_node(node)?;
    }

    if let Some(p) = vm.pci {
        let node = w.begin_node(&format!("pcie@{:x}", p.ecam.start))?;
        w.property_string("compatible", "pci-host-ecam-generic")?;
        w.property_string("device_type", "pci")?;
        w.property_array_u64("reg", &[p.ecam.start, p.ecam.size()])?;
        w.property_array_u32("bus-range", &[p.bus_range.0, p.bus_range.1])?;
        w.property_u32("linux,pci-domain", p.domain)?;
        w.property_u32("#address-cells", 3)?;
        w.property_u32("#size-cells", 2)?;
        w.property_null("dma-coherent")?;
        let mut ranges = Vec::new();
        for win in &p.windows {
            let size = win.cpu.size();
            ranges.extend_from_slice(&[
                win.hi,
                (win.pci >> 32) as u32,
                win.pci as u32,
                (win.cpu.start >> 32) as u32,
                win.cpu.start as u32,
                (size >> 32) as u32,
                size as u32,
            ]);
        }
        w.property_array_u32("ranges", &ranges)?;
        // INTx: the guest's GIC has 2 address cells (it has an ITS child) on GICv3.
        w.property_u32("#interrupt-cells", 1)?;
        w.property_array_u32("interrupt-map-mask", &p.intx_mask)?;
        let map: Vec<u32> = p
            .intx
            .iter()
            .flat_map(|r| {
                [
                    r.hi,
                    0,
                    0,
                    r.pin,
                    PHANDLE_GIC,
                    0,
                    0,
                    GIC_SPI,
                    r.spi - 32,
                    r.flags,
                ]
            })
            .collect();
        w.property_array_u32("interrupt-map", &map)?;
        if vm.its {
            // DeviceID = requester ID, as on the host (QEMU virt: msi-map <0 &its 0 0x10000>).
            w.property_array_u32("msi-map", &[0, PHANDLE_ITS, 0, 0x1_0000])?;
        }
        w.end_node(node)?;
    }

    let aliases = w.begin_node("aliases")?;
    w.property_string("serial0", &uart_path)?;
    w.end_node(aliases)?;

    w.end_node(root)?;
    Ok(w.finish()?)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| String::from(*s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::fdt::Fdt;
    use ::fdt::node::FdtNode;

    const MIB: u64 = 1 << 20;

    fn dt<'a>(layout: &'a VmLayout, gic: GicVersion, vcpus: usize) -> GuestDt<'a> {
        GuestDt {
            name: "linux",
            vcpus,
            layout,
            gic,
            bootargs: "console=ttyAMA0 earlycon",
            initrd: None,
            timer_ppis: TimerPpis::default(),
            its: gic == GicVersion::V3,
            passthrough: &[],
            pci: None,
        }
    }

    fn node<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
        fdt.find_node(path)
            .unwrap_or_else(|| panic!("no node {path}"))
    }

    fn raw<'a>(n: FdtNode<'_, 'a>, prop: &str) -> &'a [u8] {
        n.property(prop)
            .unwrap_or_else(|| panic!("no property {}/{prop}", n.name))
            .value
    }

    fn cells(n: FdtNode<'_, '_>, prop: &str) -> Vec<u32> {
        raw(n, prop)
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn quads(n: FdtNode<'_, '_>, prop: &str) -> Vec<u64> {
        raw(n, prop)
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn strs<'a>(n: FdtNode<'_, 'a>, prop: &str) -> Vec<&'a str> {
        let v = raw(n, prop);
        let v = v.strip_suffix(&[0]).expect("strings end with NUL");
        v.split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    fn has(n: FdtNode<'_, '_>, prop: &str) -> bool {
        n.property(prop).is_some()
    }

    fn check_common(fdt: &Fdt<'_>, l: &VmLayout, vcpus: usize) {
        let root = node(fdt, "/");
        assert_eq!(strs(root, "compatible"), ["linux,dummy-virt"]);
        assert_eq!(strs(root, "model"), ["exitless linux"]);
        assert_eq!(cells(root, "#address-cells"), [2]);
        assert_eq!(cells(root, "#size-cells"), [2]);
        assert_eq!(cells(root, "interrupt-parent"), [PHANDLE_GIC]);

        let mem = node(fdt, "/memory@40000000");
        assert_eq!(strs(mem, "device_type"), ["memory"]);
        assert_eq!(quads(mem, "reg"), [l.ram.start, l.ram.size()]);

        let cpus = node(fdt, "/cpus");
        assert_eq!(cells(cpus, "#address-cells"), [1]);
        assert_eq!(cells(cpus, "#size-cells"), [0]);
        assert_eq!(cpus.children().count(), vcpus);
        for n in 0..vcpus {
            let cpu = node(fdt, &format!("/cpus/cpu@{n}"));
            assert_eq!(strs(cpu, "device_type"), ["cpu"]);
            assert_eq!(strs(cpu, "compatible"), ["arm,armv8"]);
            assert_eq!(cells(cpu, "reg"), [n as u32]);
            assert_eq!(strs(cpu, "enable-method"), ["psci"]);
        }

        let psci = node(fdt, "/psci");
        assert_eq!(
            strs(psci, "compatible"),
            ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
        );
        assert_eq!(strs(psci, "method"), ["hvc"]);
        assert_eq!(cells(psci, "cpu_on"), [0xc400_0003]);

        let gic = fdt
            .find_phandle(PHANDLE_GIC)
            .expect("the GIC phandle resolves");
        assert_eq!(gic.name, "intc@8000000");
        assert_eq!(cells(gic, "#interrupt-cells"), [3]);
        assert!(has(gic, "interrupt-controller"));
        assert!(
            !has(gic, "interrupts"),
            "no maintenance interrupt: the guest has no EL2"
        );

        let timer = node(fdt, "/timer");
        assert_eq!(strs(timer, "compatible")[0], "arm,armv8-timer");
        assert!(has(timer, "always-on"));

        let clk = fdt.find_phandle(PHANDLE_CLOCK).unwrap();
        assert_eq!(clk.name, "apb-pclk");
        assert_eq!(strs(clk, "compatible"), ["fixed-clock"]);
        assert_eq!(cells(clk, "#clock-cells"), [0]);
        assert_eq!(cells(clk, "clock-frequency"), [24_000_000]);
        assert_eq!(strs(clk, "clock-output-names"), ["clk24mhz"]);

        let uart = node(fdt, "/pl011@9000000");
        assert_eq!(strs(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
        assert_eq!(quads(uart, "reg"), [0x0900_0000, 0x1000]);
        assert_eq!(cells(uart, "interrupts"), [0, 1, 4]);
        assert_eq!(strs(uart, "clock-names"), ["uartclk", "apb_pclk"]);
        assert_eq!(cells(uart, "clocks"), [PHANDLE_CLOCK, PHANDLE_CLOCK]);

        let chosen = node(fdt, "/chosen");
        assert_eq!(strs(chosen, "bootargs"), ["console=ttyAMA0 earlycon"]);
        assert_eq!(strs(chosen, "stdout-path"), ["/pl011@9000000"]);
        assert_eq!(fdt.chosen().stdout().unwrap().name, "pl011@9000000");
        assert_eq!(
            fdt.aliases().unwrap().resolve("serial0"),
            Some("/pl011@9000000")
        );
    }

    #[test]
    fn gicv3_tree_has_every_node_and_property() {
        for vcpus in [1, 4] {
            let l = VmLayout::qemu_virt(512 * MIB);
            let blob = build(&dt(&l, GicVersion::V3, vcpus)).unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            check_common(&fdt, &l, vcpus);

            let gic = node(&fdt, "/intc@8000000");
            assert_eq!(strs(gic, "compatible"), ["arm,gic-v3"]);
            assert_eq!(cells(gic, "#redistributor-regions"), [1]);
            assert_eq!(
                quads(gic, "reg"),
                [0x0800_0000, 0x1_0000, 0x080a_0000, vcpus as u64 * 0x2_0000]
            );
            assert_eq!(cells(gic, "#address-cells"), [2]);
            assert_eq!(cells(gic, "#size-cells"), [2]);
            assert!(raw(gic, "ranges").is_empty());

            let its = node(&fdt, "/intc@8000000/its@8080000");
            assert_eq!(fdt.find_phandle(PHANDLE_ITS).unwrap().name, "its@8080000");
            assert_eq!(strs(its, "compatible"), ["arm,gic-v3-its"]);
            assert!(has(its, "msi-controller"));
            assert_eq!(cells(its, "#msi-cells"), [1]);
            assert_eq!(quads(its, "reg"), [0x0808_0000, 0x2_0000]);

            // PPIs 29, 30, 27, 26 as (type 1, INTID - 16, level-high).
            let timer = node(&fdt, "/timer");
            assert_eq!(
                cells(timer, "interrupts"),
                [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
            );
        }
    }

    #[test]
    fn gicv2_tree_has_gicd_and_gicc_only_and_the_cpu_mask_in_timer_flags() {
        for (vcpus, flags) in [(1, 0x104), (4, 0xf04), (8, 0xff04)] {
            let l = VmLayout::qemu_virt(256 * MIB);
            let blob = build(&dt(&l, GicVersion::V2, vcpus)).unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            check_common(&fdt, &l, vcpus);

            let gic = node(&fdt, "/intc@8000000");
            assert_eq!(strs(gic, "compatible"), ["arm,cortex-a15-gic"]);
            assert_eq!(
                quads(gic, "reg"),
                [0x0800_0000, 0x1000, 0x0801_0000, 0x2000]
            );
            assert_eq!(gic.children().count(), 0);
            assert!(!has(gic, "#redistributor-regions"));

            let timer = node(&fdt, "/timer");
            assert_eq!(
                cells(timer, "interrupts"),
                [1, 13, flags, 1, 14, flags, 1, 11, flags, 1, 10, flags]
            );
        }
    }

    #[test]
    fn without_its_there_is_no_its_node() {
        let l = VmLayout::qemu_virt(512 * MIB);
        let blob = build(&GuestDt {
            its: false,
            ..dt(&l, GicVersion::V3, 2)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(node(&fdt, "/intc@8000000").children().count(), 0);
        assert!(fdt.find_phandle(PHANDLE_ITS).is_none());
    }

    #[test]
    fn the_initrd_range_is_in_chosen_as_64_bit_values_only_when_there_is_one() {
        let l = VmLayout::qemu_virt(512 * MIB);
        let initrd = MemRange {
            start: 0x4800_0000,
            end: 0x4812_3456,
        };
        let blob = build(&GuestDt {
            initrd: Some(initrd),
            ..dt(&l, GicVersion::V3, 2)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let chosen = node(&fdt, "/chosen");
        assert_eq!(quads(chosen, "linux,initrd-start"), [0x4800_0000]);
        assert_eq!(quads(chosen, "linux,initrd-end"), [0x4812_3456]);

        let blob = build(&dt(&l, GicVersion::V3, 2)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert!(!has(node(&fdt, "/chosen"), "linux,initrd-start"));
        assert!(!has(node(&fdt, "/chosen"), "linux,initrd-end"));
    }

    #[test]
    fn layout_overrides_move_the_nodes() {
        let mut l = VmLayout::qemu_virt(64 * MIB);
        l.ram = MemRange {
            start: 0x8000_0000,
            end: 0x8400_0000,
        };
        l.gicd = 0x2f00_0000;
        l.gicr = 0x2f10_0000;
        l.its = 0x2f02_0000;
        l.uart = 0x1c09_0000;
        l.uart_intid = 37;
        let blob = build(&dt(&l, GicVersion::V3, 2)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(
            quads(node(&fdt, "/memory@80000000"), "reg"),
            [0x8000_0000, 64 * MIB]
        );
        let gic = node(&fdt, "/intc@2f000000");
        assert_eq!(
            quads(gic, "reg"),
            [0x2f00_0000, 0x1_0000, 0x2f10_0000, 0x4_0000]
        );
        node(&fdt, "/intc@2f000000/its@2f020000");
        let uart = node(&fdt, "/pl011@1c090000");
        assert_eq!(cells(uart, "interrupts"), [0, 5, 4]);
        assert_eq!(
            strs(node(&fdt, "/chosen"), "stdout-path"),
            ["/pl011@1c090000"]
        );
    }

    #[test]
    fn timer_ppis_are_configurable() {
        let l = VmLayout::qemu_virt(64 * MIB);
        let ppis = TimerPpis {
            secure_phys: 16,
            phys: 17,
            virt: 18,
            hyp: 31,
        };
        let blob = build(&GuestDt {
            timer_ppis: ppis,
            ..dt(&l, GicVersion::V3, 1)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(
            cells(node(&fdt, "/timer"), "interrupts"),
            [1, 0, 4, 1, 1, 4, 1, 2, 4, 1, 15, 4]
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        let l = VmLayout::qemu_virt(64 * MIB);
        let v3 = dt(&l, GicVersion::V3, 1);
        assert_eq!(
            build(&GuestDt { vcpus: 0, ..v3 }),
            Err(FdtBuildError::Vcpus(0))
        );
        assert_eq!(
            build(&GuestDt { vcpus: 9, ..v3 }),
            Err(FdtBuildError::Vcpus(9))
        );
        let ppis = TimerPpis {
            virt: 32,
            ..TimerPpis::default()
        };
        assert_eq!(
            build(&GuestDt {
                timer_ppis: ppis,
                ..v3
            }),
            Err(FdtBuildError::TimerPpi(32))
        );
        let bad_uart = VmLayout {
            uart_intid: 31,
            ..l
        };
        assert_eq!(
            build(&dt(&bad_uart, GicVersion::V3, 1)),
            Err(FdtBuildError::UartIntid(31))
        );
        let v2_its = GuestDt {
            its: true,
            ..dt(&l, GicVersion::V2, 1)
        };
        assert_eq!(build(&v2_its), Err(FdtBuildError::ItsWithGicV2));
        let e = build(&GuestDt {
            bootargs: "a\0b",
            ..v3
        })
        .unwrap_err();
        assert_eq!(e, FdtBuildError::Writer(vm_fdt::Error::InvalidString));
        assert!(e.to_string().contains("NUL"));
    }

    #[test]
    fn passthrough_device_with_compatible_gets_a_node_with_reg_interrupts_and_clock() {
        let l = VmLayout::qemu_virt(64 * MIB);
        let devs = [Passthrough {
            name: "rtc".into(),
            mmio: vec![MemRange {
                start: 0x0901_0000,
                end: 0x0901_1000,
            }],
            irqs: vec![34],
            compatible: vec!["arm,pl031".into(), "arm,primecell".into()],
        }];
        let blob = build(&GuestDt {
            passthrough: &devs,
            pci: None,
            ..dt(&l, GicVersion::V3, 1)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let rtc = fdt.find_node("/rtc@9010000").expect("node");
        assert_eq!(
            rtc.compatible().unwrap().all().collect::<Vec<_>>(),
            ["arm,pl031", "arm,primecell"]
        );
        let reg = rtc.reg().unwrap().next().unwrap();
        assert_eq!(
            (reg.starting_address as u64, reg.size),
            (0x0901_0000, Some(0x1000))
        );
        let cells: Vec<u32> = rtc
            .property("interrupts")
            .unwrap()
            .value
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            cells,
            [GIC_SPI, 2, IRQ_LEVEL_HIGH],
            "SPI 2 = INTID 34, level-high"
        );
        assert_eq!(
            rtc.property("clocks").unwrap().as_usize(),
            Some(PHANDLE_CLOCK as usize)
        );
    }

    #[test]
    fn passthrough_devices_without_compatible_get_no_node() {
        let l = VmLayout::qemu_virt(64 * MIB);
        let devs = [Passthrough {
            name: "rtc".into(),
            mmio: vec![MemRange {
                start: 0x0901_0000,
                end: 0x0901_1000,
            }],
            irqs: vec![34],
            compatible: vec![],
        }];
        let with = build(&GuestDt {
            passthrough: &devs,
            pci: None,
            ..dt(&l, GicVersion::V3, 1)
        })
        .unwrap();
        assert_eq!(with, build(&dt(&l, GicVersion::V3, 1)).unwrap());
    }

    #[test]
    fn the_default_bundle_if_built_goes_through_every_step() {
        // Optional: uses the bundle scripts/mk-default-bundle.sh writes, when it is there.
        use crate::vm::bundle::Bundle;
        use crate::vm::config::{Config, HostLimits};
        use crate::vm::image::{self, DTB_MAX_SIZE};
        let Some(home) = std::env::var_os("HOME") else {
            return;
        };
        let cache = std::env::var_os("EXITLESS_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(&home).join(".cache/exitless"));
        let Ok(bytes) = std::fs::read(cache.join("bundles/linux.cpio")) else {
            return;
        };

        let bundle = Bundle::parse(&bytes).unwrap();
        let config = Config::parse_bytes(bundle.config().unwrap()).unwrap();
        let host = HostLimits {
            cpus: 4,
            free_memory: 1 << 30,
            gic: GicVersion::V3,
            gicv2_compat: false,
            ipa_bits: 40,
            owned: &[],
            pci_bridge: false,
        };
        config.check(&host).unwrap();
        config.check_files(&bundle).unwrap();
        let vm = &config.vms[0];
        let kernel = bundle.file(&vm.kernel).unwrap();
        let initrd = vm
            .initrd
            .as_ref()
            .map(|name| bundle.file(name).unwrap().len() as u64);
        let plan = image::plan(vm.layout.ram, kernel, initrd, DTB_MAX_SIZE).unwrap();
        assert!(plan.is_linux_image);
        let blob = build(&GuestDt {
            name: &vm.name,
            vcpus: vm.vcpus,
            layout: &vm.layout,
            gic: vm.gic,
            bootargs: &vm.bootargs,
            initrd: plan.initrd,
            timer_ppis: TimerPpis::default(),
            its: true,
            passthrough: &vm.passthrough,
            pci: None,
        })
        .unwrap();
        assert!(blob.len() as u64 <= plan.dtb.size());
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some(vm.bootargs.as_str()));
    }

    /// Decompiles `blob` with dtc; returns the source and dtc's stderr.
    fn dtc(blob: &[u8], tag: &str) -> (String, String) {
        let path =
            std::env::temp_dir().join(format!("exitless-fdt-{}-{tag}.dtb", std::process::id()));
        std::fs::write(&path, blob).unwrap();
        let out = std::process::Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "-"])
            .arg(&path)
            .output()
            .expect("dtc is installed (scripts/setup.sh)");
        std::fs::remove_file(&path).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "dtc failed: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    }

    #[test]
    fn every_variant_decompiles_with_dtc_without_errors_or_warnings() {
        let l = VmLayout::qemu_virt(512 * MIB);
        let initrd = Some(MemRange {
            start: 0x4800_0000,
            end: 0x4810_0000,
        });
        for gic in [GicVersion::V2, GicVersion::V3] {
            for vcpus in [1, 4] {
                for initrd in [None, initrd] {
                    for its in [false, gic == GicVersion::V3] {
                        let vm = GuestDt {
                            initrd,
                            its,
                            ..dt(&l, gic, vcpus)
                        };
                        let tag = format!("{gic:?}-{vcpus}-{}-{its}", initrd.is_some());
                        let (dts, stderr) = dtc(&build(&vm).unwrap(), &tag);
                        assert_eq!(stderr, "", "{tag}");
                        assert!(dts.contains("pl011@9000000 {"), "{tag}: {dts}");
                        assert!(dts.contains("bootargs = \"console=ttyAMA0 earlycon\";"));
                    }
                }
            }
        }
    }

    /// QEMU virt's bridge, as `platform::pci` reads it.
    fn virt_pci() -> crate::platform::pci::PciHost {
        use crate::platform::pci::{IntxRoute, PciHost, PciWindow};
        let mut h = PciHost {
            ecam: MemRange::with_size(0x40_1000_0000, 0x1000_0000).unwrap(),
            bus_range: (0, 255),
            windows: heapless::Vec::new(),
            intx_mask: [0x1800, 0, 0, 7],
            intx: heapless::Vec::new(),
            msi: true,
            domain: 0,
        };
        for (hi, pci, cpu, size) in [
            (0x0100_0000, 0, 0x3eff_0000, 0x1_0000),
            (0x0200_0000, 0x1000_0000, 0x1000_0000, 0x2eff_0000),
            (0x0300_0000, 0x80_0000_0000, 0x80_0000_0000, 0x80_0000_0000),
        ] {
            let cpu = MemRange::with_size(cpu, size).unwrap();
            h.windows.push(PciWindow { hi, pci, cpu }).unwrap();
        }
        for slot in 0..4u32 {
            for pin in 1..=4u32 {
                let spi = 35 + (slot + pin - 1) % 4;
                let r = IntxRoute {
                    hi: slot << 11,
                    pin,
                    spi,
                    flags: 4,
                };
                h.intx.push(r).unwrap();
            }
        }
        h
    }

    #[test]
    fn a_vm_that_owns_the_pci_bridge_gets_its_node_with_msi_map_to_its_its() {
        let l = VmLayout::qemu_virt(512 * MIB);
        let host = virt_pci();
        let vm = GuestDt {
            pci: Some(&host),
            ..dt(&l, GicVersion::V3, 2)
        };
        let blob = build(&vm).unwrap();
        let (dts, stderr) = dtc(&blob, "pci");
        assert_eq!(stderr, "", "{dts}");
        assert!(dts.contains("pcie@4010000000 {"), "{dts}");
        assert!(dts.contains("compatible = \"pci-host-ecam-generic\";"));
        assert!(dts.contains("msi-map = <0x00 0x03 0x00 0x10000>;"), "{dts}");
        // The guest's tree reads back as the host's bridge.
        let fdt = crate::platform::dt::validate(&blob).unwrap();
        assert_eq!(crate::platform::pci::find(&fdt), Some(host));
    }
}
