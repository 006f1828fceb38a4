//! The VM configuration: the `exitless.toml` file of a bundle (see [`super::bundle`]), parsed
//! with `toml` + `serde` into raw types that refuse unknown keys, then validated into the plain
//! types the rest of exitless uses ([`Config`], [`VmConfig`], [`Passthrough`]).
//!
//! ```toml
//! [[vm]]                          # one table per VM, at least one
//! name = "linux"                  # required: 1..=32 of [A-Za-z0-9_-], unique
//! vcpus = 2                       # 1..=MAX_VCPUS (default 1)
//! memory = "512M"                 # required: bytes, or a string "<n>[K|M|G]" (either case);
//!                                 #   >= 16M and a multiple of 2M
//! kernel = "Image"                # required: file in the bundle (arm64 Image or raw binary)
//! initrd = "initramfs.cpio.gz"    # optional file in the bundle
//! bootargs = "console=ttyAMA0"    # optional (default ""): at most 2047 bytes
//! gic = 3                         # 2 or 3 (default 3)
//! its = true                      # optional, gic = 3 only: an emulated ITS (MSIs, LPIs); the
//!                                 #   default is on when the machine's GIC has an ITS
//! pci = true                      # optional, gic = 3 only, one VM at most: the VM owns the
//!                                 #   host's PCIe bridge (pci-host-ecam-generic): ECAM and windows
//!                                 #   mapped 1:1, INTx linked, MSIs through its ITS
//! identity_ram = true             # optional: guest RAM at its host physical address (IPA ==
//!                                 #   PA), where exitless allocates it, so that a device passed
//!                                 #   through without an IOMMU reaches the addresses the guest
//!                                 #   programs for DMA; default: on with pci = true; excludes
//!                                 #   ram_base
//! console = true                  # optional: this VM gets console input first; when no VM
//!                                 #   says true, the first VM not saying false gets it
//! [vm.layout]                     # optional IPA map overrides (default: VmLayout::qemu_virt)
//! ram_base = 0x40000000           #   2 MiB aligned
//! gicd = 0x08000000
//! gicc = 0x08010000               #   used with gic = 2
//! gicr = 0x080a0000               #   used with gic = 3
//! its = 0x08080000                #   used with gic = 3
//! uart = 0x09000000
//! uart_irq = 33                   #   the PL011's INTID (an SPI)
//! [[vm.passthrough]]              # physical devices given to the VM, any number
//! name = "rtc"                    # required, same rule as VM names, unique in the VM
//! mmio = [0x09010000, 0x1000]     # one [base, size] pair, or a list of pairs:
//!                                 #   mmio = [[0x9010000, 0x1000], [0x9020000, 0x1000]]
//!                                 #   4 KiB aligned, mapped 1:1 (IPA = PA)
//! irqs = [34]                     # SPI INTIDs (32..=1019) forwarded to the VM (default [])
//! ```
//!
//! Two steps, so that every message can name the VM:
//! * [`parse`] reads the text and applies every rule that needs only the file: syntax, types,
//!   unknown keys (toml reports those with line and column), value ranges, unique names, one
//!   console, passthrough devices that collide with the VM's own regions or with each other
//!   (also across VMs: a physical device belongs to one VM).
//! * [`Config::check`] repeats those rules (a `Config` built by hand gets them too) and adds the
//!   ones that need the machine ([`HostLimits`]): CPU and memory totals, GIC version, the
//!   layout's fit in the IPA size. [`Config::check_files`] checks the files against the bundle.
//!
//! Invariant: a `Config` returned by [`parse`] has at least one VM, unique valid names, and at
//! most one VM with `console == true` (exactly one unless every VM said `console = false`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::bundle::{Bundle, CONFIG_FILE};
use super::layout::{LayoutError, MAX_VCPUS, VmLayout};
use crate::mm::{MemRange, PAGE_SIZE};
use crate::platform::GicVersion;

const MIB: u64 = 1 << 20;
/// Smallest VM memory.
pub const MIN_MEMORY: u64 = 16 * MIB;
/// VM memory and RAM base granule (one stage-2 level-2 block).
pub const MEMORY_ALIGN: u64 = 2 * MIB;
/// Longest VM or device name.
pub const MAX_NAME_LEN: usize = 32;
/// Longest `bootargs` (arm64 Linux `COMMAND_LINE_SIZE` is 2048 with the NUL).
pub const MAX_BOOTARGS_LEN: usize = 2047;

/// The whole configuration: every VM to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The VMs, in file order.
    pub vms: Vec<VmConfig>,
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Name (1..=32 of `[A-Za-z0-9_-]`), unique.
    pub name: String,
    /// vCPU count, 1..=[`MAX_VCPUS`].
    pub vcpus: usize,
    /// RAM size in bytes (equal to `layout.ram.size()`).
    pub memory: u64,
    /// Bundle file holding the kernel (arm64 Image or raw binary).
    pub kernel: String,
    /// Bundle file holding the initrd.
    pub initrd: Option<String>,
    /// Kernel command line.
    pub bootargs: String,
    /// The vGIC's architecture.
    pub gic: GicVersion,
    /// `its`: an emulated ITS (GICv3 only); `None`: on when the host's GIC has an ITS (the
    /// shell decides, [`VmConfig::has_its`]).
    pub its: Option<bool>,
    /// `pci`: the VM owns the host's generic PCIe host bridge.
    pub pci: bool,
    /// `identity_ram`: the VM's RAM sits at its host physical address (the shell allocates it
    /// and moves `layout.ram` there before the VM is built); `layout.ram.start` is then only a
    /// placeholder.
    pub identity_ram: bool,
    /// True if this VM receives console input first.
    pub console: bool,
    /// The IPA map; `layout.ram` starts at the configured `ram_base` and is `memory` long.
    pub layout: VmLayout,
    /// Devices passed through.
    pub passthrough: Vec<Passthrough>,
}

/// A physical device given to a VM: its MMIO is mapped at the same IPA, its SPIs forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passthrough {
    /// Name (same rule as VM names), unique in its VM.
    pub name: String,
    /// MMIO ranges, 4 KiB aligned.
    pub mmio: Vec<MemRange>,
    /// SPI INTIDs.
    pub irqs: Vec<u32>,
    /// The device's `compatible` strings: when given, the guest's device tree gets a node for
    /// it (so a guest driver can find it); empty: no node (the guest knows the device itself).
    pub compatible: Vec<String>,
}

/// What the machine offers, for [`Config::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits<'a> {
    /// Physical CPUs available to VMs (one vCPU per CPU).
    pub cpus: usize,
    /// Bytes of RAM available to VMs.
    pub free_memory: u64,
    /// The physical GIC.
    pub gic: GicVersion,
    /// True if the GICv3 can present a GICv2 CPU interface to guests (ICH_VTR_EL2 / GICV).
    pub gicv2_compat: bool,
    /// Size of the stage-2 input address space, in bits.
    pub ipa_bits: u8,
    /// What exitless keeps for itself: no passthrough range may overlap it ([`host_regions`]).
    pub owned: &'a [HostRegion],
    /// The machine has a generic PCIe host bridge a VM can own (`pci = true`).
    pub pci_bridge: bool,
}

/// A physical range exitless owns, and what it is (for the message that refuses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRegion {
    /// The range.
    pub range: MemRange,
    /// What it is, e.g. "the host's GIC distributor (GICD)".
    pub what: &'static str,
}

/// The ranges of `info` that exitless owns and never gives a VM: the physical GIC's frames
/// (GICD, redistributors, ITSs, GICC/GICH/GICV), the console UART, the power-off block, and all
/// RAM (exitless's own, and every VM's, comes from it; the DTB and the bundle lie in it).
pub fn host_regions(info: &crate::platform::PlatformInfo<'_>) -> Vec<HostRegion> {
    use crate::platform::GicInfo;
    let mut out = Vec::new();
    let mut add = |range: MemRange, what: &'static str| out.push(HostRegion { range, what });
    match &info.gic {
        Some(GicInfo::V2(g)) => {
            add(g.gicd, "the host's GIC distributor (GICD)");
            add(g.gicc, "the host's GIC CPU interface (GICC)");
            if let Some(r) = g.gich {
                add(r, "the host's GIC virtual interface control (GICH)");
            }
            if let Some(r) = g.gicv {
                add(r, "the host's GIC virtual CPU interface (GICV)");
            }
        }
        Some(GicInfo::V3(g)) => {
            add(g.gicd, "the host's GIC distributor (GICD)");
            for r in &g.redist_regions {
                add(*r, "the host's GIC redistributors (GICR)");
            }
            for r in &g.its {
                add(*r, "the host's GIC ITS");
            }
            if let Some((gicc, gich, gicv)) = g.v2_compat {
                add(gicc, "the host's GIC CPU interface (GICC)");
                add(gich, "the host's GIC virtual interface control (GICH)");
                add(gicv, "the host's GIC virtual CPU interface (GICV)");
            }
        }
        None => {}
    }
    if let Ok(uart) = &info.console
        && let Some(r) = MemRange::with_size(uart.base, uart.size.max(PAGE_SIZE))
    {
        add(r, "the console UART exitless uses");
    }
    if let Some(pm) = info
        .bcm2835_pm
        .and_then(|b| MemRange::with_size(b, PAGE_SIZE))
    {
        add(pm, "the power-management block exitless powers off with");
    }
    for bank in &info.memory {
        add(*bank, "RAM (exitless's and its VMs')");
    }
    out
}

/// What is wrong with a passthrough device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceProblem {
    /// The name breaks the naming rule.
    BadName,
    /// Neither `mmio` nor `irqs` is given.
    Empty,
    /// `mmio` is neither a `[base, size]` pair nor a list of pairs.
    MmioShape,
    /// A range is empty, negative, wraps, or is not 4 KiB aligned (base, size as written).
    BadRange(i128, i128),
    /// A range lies beyond the IPA size.
    BeyondIpa(MemRange),
    /// A range overlaps one of the VM's own regions (named).
    OverlapsVm(MemRange, &'static str),
    /// An IRQ is not an SPI INTID.
    NotSpi(i64),
    /// An IRQ is the VM's virtual UART interrupt.
    UartIrq(u32),
    /// A `compatible` string is empty or holds a NUL.
    BadCompatible,
}

/// Why a configuration is refused. Every message names the VM and says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is not UTF-8 (byte offset of the first bad byte).
    NotUtf8(usize),
    /// TOML syntax, a wrong type, a missing or an unknown key (toml's message, with the line).
    Toml(String),
    /// No `[[vm]]` table.
    NoVm,
    /// A VM name breaks the naming rule.
    BadName(String),
    /// Two VMs have the same name.
    DuplicateName(String),
    /// `vcpus` out of range.
    Vcpus {
        /// VM name.
        vm: String,
        /// The value written.
        value: i64,
    },
    /// `memory` is not a size.
    MemorySyntax {
        /// VM name.
        vm: String,
        /// The text written.
        text: String,
    },
    /// `memory` is too small or not a multiple of 2 MiB.
    MemorySize {
        /// VM name.
        vm: String,
        /// The size in bytes.
        bytes: u64,
    },
    /// `gic` is not 2 or 3.
    Gic {
        /// VM name.
        vm: String,
        /// The value written.
        value: i64,
    },
    /// An address or INTID key of `[vm.layout]` is negative or too large.
    LayoutValue {
        /// VM name.
        vm: String,
        /// The key.
        key: &'static str,
        /// The value written.
        value: i64,
    },
    /// `ram_base` is not 2 MiB aligned, or RAM wraps the address space.
    RamBase {
        /// VM name.
        vm: String,
        /// The base.
        base: u64,
    },
    /// A file key is the empty string.
    EmptyFileName {
        /// VM name.
        vm: String,
        /// `kernel` or `initrd`.
        key: &'static str,
    },
    /// `bootargs` is too long or holds a NUL.
    Bootargs {
        /// VM name.
        vm: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The memory map is unusable ([`VmLayout::check`]).
    Layout {
        /// VM name.
        vm: String,
        /// The problem.
        error: LayoutError,
    },
    /// More than one VM says `console = true`.
    TwoConsoles(String, String),
    /// A passthrough device is wrong on its own.
    Device {
        /// VM name.
        vm: String,
        /// Device name.
        dev: String,
        /// The problem.
        problem: DeviceProblem,
    },
    /// A passthrough range overlaps something exitless owns.
    HostOwned {
        /// (VM, device).
        dev: (String, String),
        /// The device's range.
        range: MemRange,
        /// What it overlaps.
        owner: HostRegion,
    },
    /// Two passthrough devices (of one VM or of two) share MMIO.
    DeviceOverlap {
        /// (VM, device) of the first.
        a: (String, String),
        /// (VM, device) of the second.
        b: (String, String),
    },
    /// Two passthrough devices (of one VM or of two) share an IRQ, or one names it twice.
    DeviceIrq {
        /// (VM, device) of the first.
        a: (String, String),
        /// (VM, device) of the second.
        b: (String, String),
        /// The INTID.
        irq: u32,
    },
    /// More vCPUs than CPUs.
    TooManyVcpus {
        /// The VMs.
        vms: Vec<String>,
        /// Their vCPUs.
        need: usize,
        /// The machine's CPUs.
        have: usize,
    },
    /// More memory than the machine has free.
    TooMuchMemory {
        /// The VMs.
        vms: Vec<String>,
        /// Their memory in bytes.
        need: u64,
        /// Free memory in bytes.
        have: u64,
    },
    /// `its = true` with `gic = 2`.
    ItsWithGicV2(String),
    /// `pci = true` with `gic = 2`.
    PciWithGicV2(String),
    /// Two VMs say `pci = true`.
    TwoPci(String, String),
    /// `identity_ram` (said, or the default with `pci = true`) and `ram_base` both given.
    IdentityWithRamBase(String),
    /// `pci = true` on a machine without a generic PCIe host bridge.
    NoPciBridge(String),
    /// A vGICv2 on a GICv3 without GICv2 compatibility.
    GicV2Unsupported(String),
    /// A vGICv3 on a GICv2.
    GicV3Unsupported(String),
    /// A file named by a VM is not in the bundle.
    MissingFile {
        /// VM name.
        vm: String,
        /// `kernel` or `initrd`.
        key: &'static str,
        /// The file name.
        file: String,
        /// The bundle's files.
        have: Vec<String>,
    },
    /// The kernel file is empty.
    EmptyKernel {
        /// VM name.
        vm: String,
        /// The file name.
        file: String,
    },
}

/// "VM 'a'", "VMs 'a' and 'b'", "VMs 'a', 'b' and 'c'".
struct VmList<'a>(&'a [String]);

impl fmt::Display for VmList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        f.write_str(if n == 1 { "VM " } else { "VMs " })?;
        for (i, name) in self.0.iter().enumerate() {
            let sep = match i {
                0 => "",
                _ if i + 1 == n => " and ",
                _ => ", ",
            };
            write!(f, "{sep}'{name}'")?;
        }
        Ok(())
    }
}

/// A number as written in the file: hex unless negative.
struct Num(i128);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n < 0 => write!(f, "{n}"),
            n => write!(f, "{n:#x}"),
        }
    }
}

/// "device 'rtc' of VM 'a'".
struct Dev<'a>(&'a (String, String));

impl fmt::Display for Dev<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "passthrough device '{}' of VM '{}'", self.0.1, self.0.0)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAME_RULE: &str = "use 1 to 32 letters, digits, '_' or '-'";
        match self {
            ConfigError::NotUtf8(at) => {
                write!(
                    f,
                    "{CONFIG_FILE}: byte {at} is not UTF-8: save the file as UTF-8"
                )
            }
            ConfigError::Toml(msg) => write!(f, "{CONFIG_FILE}: {}", msg.trim_end()),
            ConfigError::NoVm => write!(
                f,
                "{CONFIG_FILE} describes no VM: add a [[vm]] table with name, memory and kernel"
            ),
            ConfigError::BadName(name) => write!(f, "VM name '{name}' is not valid: {NAME_RULE}"),
            ConfigError::DuplicateName(name) => {
                write!(f, "two VMs are named '{name}': give each VM its own name")
            }
            ConfigError::Vcpus { vm, value } => write!(
                f,
                "VM '{vm}': vcpus = {value} is out of range: use 1 to {MAX_VCPUS}"
            ),
            ConfigError::MemorySyntax { vm, text } => write!(
                f,
                "VM '{vm}': memory = \"{text}\" is not a size: write bytes (268435456) or a \
                 number with K, M or G (\"512M\", \"1G\")"
            ),
            ConfigError::MemorySize { vm, bytes } if bytes.is_multiple_of(MIB) => write!(
                f,
                "VM '{vm}': memory is {} MiB: use at least 16M, in multiples of 2M",
                bytes / MIB
            ),
            ConfigError::MemorySize { vm, bytes } => write!(
                f,
                "VM '{vm}': memory is {bytes} bytes: use at least 16M, in multiples of 2M"
            ),
            ConfigError::Gic { vm, value } => {
                write!(
                    f,
                    "VM '{vm}': gic = {value} is not a GIC version: use 2 or 3"
                )
            }
            ConfigError::LayoutValue { vm, key, value } => write!(
                f,
                "VM '{vm}': [vm.layout] {key} = {value} is out of range: use an address (or for \
                 uart_irq an SPI INTID, 32 to 1019)"
            ),
            ConfigError::RamBase { vm, base } => write!(
                f,
                "VM '{vm}': [vm.layout] ram_base = {base:#x} is not 2 MiB aligned or RAM runs past \
                 the end of the address space: use a multiple of 0x200000"
            ),
            ConfigError::EmptyFileName { vm, key } => {
                write!(f, "VM '{vm}': {key} = \"\": name a file of the bundle")
            }
            ConfigError::Bootargs { vm, len } => write!(
                f,
                "VM '{vm}': bootargs is {len} bytes long or holds a NUL: Linux takes at most \
                 {MAX_BOOTARGS_LEN} bytes; shorten it"
            ),
            ConfigError::Layout { vm, error } => {
                write!(f, "VM '{vm}': {error}: fix [vm.layout] or memory")
            }
            ConfigError::TwoConsoles(a, b) => write!(
                f,
                "VMs '{a}' and '{b}' both say console = true: only one VM can get console input \
                 first; remove one"
            ),
            ConfigError::Device { vm, dev, problem } => {
                let d = (vm.clone(), dev.clone());
                let d = Dev(&d);
                match problem {
                    DeviceProblem::BadName => write!(f, "{d}: the name is not valid: {NAME_RULE}"),
                    DeviceProblem::Empty => {
                        write!(f, "{d} has neither mmio nor irqs: give at least one")
                    }
                    DeviceProblem::MmioShape => write!(
                        f,
                        "{d}: mmio must be one [base, size] pair or a list of [base, size] pairs"
                    ),
                    DeviceProblem::BadRange(base, size) => write!(
                        f,
                        "{d}: mmio [{}, {}] is not a usable range: base and size must be \
                         non-negative multiples of 4 KiB (0x1000), the size not 0",
                        Num(*base),
                        Num(*size)
                    ),
                    DeviceProblem::BeyondIpa(r) => write!(
                        f,
                        "{d}: mmio {r} lies beyond this machine's IPA size: it cannot be mapped"
                    ),
                    DeviceProblem::OverlapsVm(r, region) => write!(
                        f,
                        "{d}: mmio {r} overlaps the VM's {region} region: move the VM's region \
                         in [vm.layout] (or the RAM with ram_base/memory)"
                    ),
                    DeviceProblem::NotSpi(irq) => write!(
                        f,
                        "{d}: irq {irq} is not an SPI: only SPIs (INTID 32 to 1019) can be passed \
                         through"
                    ),
                    DeviceProblem::UartIrq(irq) => write!(
                        f,
                        "{d}: irq {irq} is the VM's virtual UART interrupt: move the UART with \
                         [vm.layout] uart_irq"
                    ),
                    DeviceProblem::BadCompatible => write!(
                        f,
                        "{d}: compatible must be a list of non-empty strings, e.g. \
                         [\"arm,pl031\", \"arm,primecell\"]"
                    ),
                }
            }
            ConfigError::HostOwned { dev, range, owner } => write!(
                f,
                "{}: mmio {range} overlaps {} at {}: exitless keeps it for itself and gives it \
                 to no VM; remove the range (a VM gets its own virtual GIC, UART and RAM)",
                Dev(dev),
                owner.what,
                owner.range
            ),
            ConfigError::DeviceOverlap { a, b } => write!(
                f,
                "{} and {} share MMIO: a physical device can be given to one VM once",
                Dev(a),
                Dev(b)
            ),
            ConfigError::DeviceIrq { a, b, irq } if a == b => {
                write!(f, "{} lists irq {irq} twice: list it once", Dev(a))
            }
            ConfigError::DeviceIrq { a, b, irq } => write!(
                f,
                "{} and {} both take irq {irq}: an interrupt can be given to one device once",
                Dev(a),
                Dev(b)
            ),
            ConfigError::TooManyVcpus { vms, need, have } => {
                let verb = if vms.len() == 1 { "needs" } else { "need" };
                write!(
                    f,
                    "{} {verb} {need} vCPUs, this machine has {have} CPUs: lower vcpus",
                    VmList(vms)
                )
            }
            ConfigError::TooMuchMemory { vms, need, have } => {
                let verb = if vms.len() == 1 { "needs" } else { "need" };
                write!(
                    f,
                    "{} {verb} {} MiB of RAM, this machine has {} MiB free for VMs: lower memory",
                    VmList(vms),
                    need.div_ceil(MIB),
                    have / MIB
                )
            }
            ConfigError::PciWithGicV2(vm) => write!(
                f,
                "VM '{vm}' asks for pci = true with gic = 2: the PCIe bridge's MSIs need a GICv3 \
                 ITS; use gic = 3"
            ),
            ConfigError::TwoPci(a, b) => write!(
                f,
                "VMs '{a}' and '{b}' both say pci = true: the host has one PCIe bridge and it goes \
                 to one VM; remove one"
            ),
            ConfigError::IdentityWithRamBase(vm) => write!(
                f,
                "VM '{vm}' has identity_ram (on by default with pci = true) and [vm.layout] \
                 ram_base: identity RAM sits where exitless finds free host memory; remove \
                 ram_base, or say identity_ram = false (then a passed-through device's DMA does \
                 not reach the guest's RAM)"
            ),
            ConfigError::NoPciBridge(vm) => write!(
                f,
                "VM '{vm}' asks for pci = true, but this machine's device tree has no generic PCIe \
                 host bridge (pci-host-ecam-generic); remove pci"
            ),
            ConfigError::ItsWithGicV2(vm) => write!(
                f,
                "VM '{vm}' asks for its = true with gic = 2: an ITS needs a GICv3; use gic = 3 or \
                 remove its"
            ),
            ConfigError::GicV2Unsupported(vm) => write!(
                f,
                "VM '{vm}' asks for gic = 2, but this machine's GICv3 has no GICv2 compatibility: \
                 use gic = 3"
            ),
            ConfigError::GicV3Unsupported(vm) => write!(
                f,
                "VM '{vm}' asks for gic = 3, but this machine has a GICv2: use gic = 2"
            ),
            ConfigError::MissingFile {
                vm,
                key,
                file,
                have,
            } => {
                write!(
                    f,
                    "VM '{vm}': {key} file '{file}' is not in the bundle (it holds"
                )?;
                for (i, name) in have.iter().enumerate() {
                    write!(f, "{}{name}", if i == 0 { " " } else { ", " })?;
                }
                write!(
                    f,
                    "): add it to the bundle (scripts/mkbundle.py) or fix the name"
                )
            }
            ConfigError::EmptyKernel { vm, file } => write!(
                f,
                "VM '{vm}': kernel file '{file}' in the bundle is empty: rebuild the bundle"
            ),
        }
    }
}

/// Parses and validates `exitless.toml` (see the module documentation for the format).
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text)
}

impl Config {
    /// Parses and validates `exitless.toml` (see the module documentation for the format).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        let mut vms = raw
            .vm
            .into_iter()
            .map(RawVm::validate)
            .collect::<Result<Vec<_>, _>>()?;
        // Console default: the first VM that does not refuse it, when nobody asks for it.
        if !vms.iter().any(|(vm, _)| vm.console)
            && let Some((vm, _)) = vms.iter_mut().find(|(_, console)| console.is_none())
        {
            vm.console = true;
        }
        let config = Config {
            vms: vms.into_iter().map(|(vm, _)| vm).collect(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Like [`Config::parse`], from the bytes of the bundle's file.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text =
            core::str::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8(e.valid_up_to()))?;
        Self::parse(text)
    }

    /// Checks every rule, including those that need the machine: CPU and memory totals, the
    /// GIC version, the memory map's fit in `host.ipa_bits`.
    pub fn check(&self, host: &HostLimits<'_>) -> Result<(), ConfigError> {
        self.validate()?;
        // Hardware reports at most 52 bits; 63 keeps VmLayout::check's shift defined.
        let ipa_bits = host.ipa_bits.min(63);
        let ipa_limit = 1u64 << ipa_bits;
        for vm in &self.vms {
            if vm.pci && !host.pci_bridge {
                return Err(ConfigError::NoPciBridge(vm.name.clone()));
            }
            match (vm.gic, host.gic) {
                (GicVersion::V2, GicVersion::V3) if !host.gicv2_compat => {
                    return Err(ConfigError::GicV2Unsupported(vm.name.clone()));
                }
                (GicVersion::V3, GicVersion::V2) => {
                    return Err(ConfigError::GicV3Unsupported(vm.name.clone()));
                }
                _ => {}
            }
            vm.layout
                .check(vm.vcpus, vm.gic, ipa_bits)
                .map_err(|error| ConfigError::Layout {
                    vm: vm.name.clone(),
                    error,
                })?;
            for dev in &vm.passthrough {
                if let Some(r) = dev.mmio.iter().find(|r| r.end > ipa_limit) {
                    return Err(vm.device_error(dev, DeviceProblem::BeyondIpa(*r)));
                }
                for r in &dev.mmio {
                    if let Some(owner) = host.owned.iter().find(|o| o.range.overlaps(r)) {
                        return Err(ConfigError::HostOwned {
                            dev: (vm.name.clone(), dev.name.clone()),
                            range: *r,
                            owner: *owner,
                        });
                    }
                }
            }
        }
        let names = || {
            self.vms
                .iter()
                .map(|vm| vm.name.clone())
                .collect::<Vec<_>>()
        };
        let need: usize = self.vms.iter().map(|vm| vm.vcpus).sum();
        if need > host.cpus {
            return Err(ConfigError::TooManyVcpus {
                vms: names(),
                need,
                have: host.cpus,
            });
        }
        let need = self
            .vms
            .iter()
            .fold(0u64, |acc, vm| acc.saturating_add(vm.memory));
        if need > host.free_memory {
            return Err(ConfigError::TooMuchMemory {
                vms: names(),
                need,
                have: host.free_memory,
            });
        }
        Ok(())
    }

    /// Checks that every file a VM names is in `bundle` (and that kernels are not empty).
    pub fn check_files(&self, bundle: &Bundle<'_>) -> Result<(), ConfigError> {
        for vm in &self.vms {
            let files = [("kernel", Some(&vm.kernel)), ("initrd", vm.initrd.as_ref())];
            for (key, file) in files {
                let Some(file) = file else { continue };
                match bundle.file(file) {
                    None => {
                        return Err(ConfigError::MissingFile {
                            vm: vm.name.clone(),
                            key,
                            file: file.clone(),
                            have: bundle.files().map(|(n, _)| n.to_string()).collect(),
                        });
                    }
                    Some([]) if key == "kernel" => {
                        return Err(ConfigError::EmptyKernel {
                            vm: vm.name.clone(),
                            file: file.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Every rule that needs only the configuration.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.vms.is_empty() {
            return Err(ConfigError::NoVm);
        }
        let mut console: Option<&str> = None;
        let mut pci: Option<&str> = None;
        for (i, vm) in self.vms.iter().enumerate() {
            vm.validate()?;
            if vm.pci {
                if let Some(first) = pci {
                    return Err(ConfigError::TwoPci(first.into(), vm.name.clone()));
                }
                pci = Some(&vm.name);
            }
            if self.vms[..i].iter().any(|o| o.name == vm.name) {
                return Err(ConfigError::DuplicateName(vm.name.clone()));
            }
            if vm.console {
                if let Some(first) = console {
                    return Err(ConfigError::TwoConsoles(first.into(), vm.name.clone()));
                }
                console = Some(&vm.name);
            }
        }
        // A physical device (MMIO or SPI) belongs to one VM: compare across VMs. Within a VM
        // VmConfig::validate has done it.
        for (i, a) in self.vms.iter().enumerate() {
            for b in &self.vms[i + 1..] {
                for da in &a.passthrough {
                    for db in &b.passthrough {
                        let pair = || {
                            (
                                (a.name.clone(), da.name.clone()),
                                (b.name.clone(), db.name.clone()),
                            )
                        };
                        if da
                            .mmio
                            .iter()
                            .any(|ra| db.mmio.iter().any(|rb| ra.overlaps(rb)))
                        {
                            let (a, b) = pair();
                            return Err(ConfigError::DeviceOverlap { a, b });
                        }
                        if let Some(&irq) = da.irqs.iter().find(|i| db.irqs.contains(i)) {
                            let (a, b) = pair();
                            return Err(ConfigError::DeviceIrq { a, b, irq });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl VmConfig {
    /// Whether the VM gets an ITS on a host whose GIC has (`host_its`) or has no ITS: as
    /// configured, else when the host has one; never with a vGICv2.
    pub fn has_its(&self, host_its: bool) -> bool {
        self.gic == GicVersion::V3 && self.its.unwrap_or(host_its)
    }

    /// The rules of one VM that need only the configuration.
    fn validate(&self) -> Result<(), ConfigError> {
        let vm = || self.name.clone();
        if !valid_name(&self.name) {
            return Err(ConfigError::BadName(vm()));
        }
        if self.its == Some(true) && self.gic == GicVersion::V2 {
            return Err(ConfigError::ItsWithGicV2(vm()));
        }
        if self.pci && self.gic == GicVersion::V2 {
            return Err(ConfigError::PciWithGicV2(vm()));
        }
        if !(1..=MAX_VCPUS).contains(&self.vcpus) {
            return Err(ConfigError::Vcpus {
                vm: vm(),
                value: self.vcpus as i64,
            });
        }
        if self.memory < MIN_MEMORY || !self.memory.is_multiple_of(MEMORY_ALIGN) {
            return Err(ConfigError::MemorySize {
                vm: vm(),
                bytes: self.memory,
            });
        }
        let ram = self.layout.ram;
        if !ram.start.is_multiple_of(MEMORY_ALIGN) || ram.is_empty() {
            return Err(ConfigError::RamBase {
                vm: vm(),
                base: ram.start,
            });
        }
        if self.kernel.is_empty() {
            return Err(ConfigError::EmptyFileName {
                vm: vm(),
                key: "kernel",
            });
        }
        if self.initrd.as_deref() == Some("") {
            return Err(ConfigError::EmptyFileName {
                vm: vm(),
                key: "initrd",
            });
        }
        if self.bootargs.len() > MAX_BOOTARGS_LEN || self.bootargs.contains('\0') {
            return Err(ConfigError::Bootargs {
                vm: vm(),
                len: self.bootargs.len(),
            });
        }
        let uart_irq = self.layout.uart_intid;
        if !is_spi(uart_irq.into()) {
            return Err(ConfigError::LayoutValue {
                vm: vm(),
                key: "uart_irq",
                value: uart_irq.into(),
            });
        }
        let regions = self.regions();
        for (i, dev) in self.passthrough.iter().enumerate() {
            if !valid_name(&dev.name) {
                return Err(self.device_error(dev, DeviceProblem::BadName));
            }
            if self.passthrough[..i].iter().any(|o| o.name == dev.name) {
                return Err(self.device_error(dev, DeviceProblem::BadName));
            }
            if dev.mmio.is_empty() && dev.irqs.is_empty() {
                return Err(self.device_error(dev, DeviceProblem::Empty));
            }
            for (j, r) in dev.mmio.iter().enumerate() {
                if r.is_empty()
                    || !r.start.is_multiple_of(PAGE_SIZE)
                    || !r.end.is_multiple_of(PAGE_SIZE)
                {
                    let (base, size) = (r.start.into(), i128::from(r.end) - i128::from(r.start));
                    return Err(self.device_error(dev, DeviceProblem::BadRange(base, size)));
                }
                if let Some((region, _)) = regions.iter().find(|(_, v)| v.overlaps(r)) {
                    return Err(self.device_error(dev, DeviceProblem::OverlapsVm(*r, region)));
                }
                let clash = |o: &MemRange| o.overlaps(r);
                if dev.mmio[..j].iter().any(clash) {
                    let d = (vm(), dev.name.clone());
                    return Err(ConfigError::DeviceOverlap { a: d.clone(), b: d });
                }
                if let Some(o) = self.passthrough[..i]
                    .iter()
                    .find(|o| o.mmio.iter().any(clash))
                {
                    let (a, b) = ((vm(), o.name.clone()), (vm(), dev.name.clone()));
                    return Err(ConfigError::DeviceOverlap { a, b });
                }
            }
            for (j, &irq) in dev.irqs.iter().enumerate() {
                if !is_spi(irq.into()) {
                    return Err(self.device_error(dev, DeviceProblem::NotSpi(irq.into())));
                }
                if irq == uart_irq {
                    return Err(self.device_error(dev, DeviceProblem::UartIrq(irq)));
                }
                let owner = if dev.irqs[..j].contains(&irq) {
                    Some(dev)
                } else {
                    self.passthrough[..i].iter().find(|o| o.irqs.contains(&irq))
                };
                if let Some(o) = owner {
                    let (a, b) = ((vm(), o.name.clone()), (vm(), dev.name.clone()));
                    return Err(ConfigError::DeviceIrq { a, b, irq });
                }
            }
        }
        Ok(())
    }

    /// The VM's own regions, as [`VmLayout::check`] lists them.
    fn regions(&self) -> [(&'static str, MemRange); 5] {
        let l = &self.layout;
        let empty = MemRange::default();
        let (gic_a, gic_b) = match self.gic {
            GicVersion::V2 => (("GICC", l.gicc_range()), ("ITS", empty)),
            GicVersion::V3 => (("GICR", l.gicr_range(self.vcpus)), ("ITS", l.its_range())),
        };
        [
            ("RAM", l.ram),
            ("GICD", l.gicd_range()),
            gic_a,
            gic_b,
            ("PL011", l.uart_range()),
        ]
    }

    fn device_error(&self, dev: &Passthrough, problem: DeviceProblem) -> ConfigError {
        ConfigError::Device {
            vm: self.name.clone(),
            dev: dev.name.clone(),
            problem,
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn is_spi(intid: i64) -> bool {
    (32..=1019).contains(&intid)
}

/// Parses "512M", "1g", "64K", "268435456" (no sign, no spaces).
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

// --- Raw (serde) types: the file as written --------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    vm: Vec<RawVm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: String,
    #[serde(default = "default_vcpus")]
    vcpus: i64,
    memory: RawSize,
    kernel: String,
    initrd: Option<String>,
    #[serde(default)]
    bootargs: String,
    #[serde(default = "default_gic")]
    gic: i64,
    its: Option<bool>,
    #[serde(default)]
    pci: bool,
    identity_ram: Option<bool>,
    console: Option<bool>,
    #[serde(default)]
    layout: RawLayout,
    #[serde(default)]
    passthrough: Vec<RawPassthrough>,
}

fn default_vcpus() -> i64 {
    1
}

fn default_gic() -> i64 {
    3
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    ram_base: Option<i64>,
    gicd: Option<i64>,
    gicc: Option<i64>,
    gicr: Option<i64>,
    its: Option<i64>,
    uart: Option<i64>,
    uart_irq: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassthrough {
    name: String,
    #[serde(default)]
    mmio: Vec<RawMmioItem>,
    #[serde(default)]
    irqs: Vec<i64>,
    #[serde(default)]
    compatible: Vec<String>,
}

/// `memory`: an integer or a string.
enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: bytes (268435456) or a string like \"512M\" or \"1G\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of `mmio`: a number (of a single `[base, size]` pair) or a pair.
enum RawMmioItem {
    Int(i64),
    List(Vec<i64>),
}

impl<'de> Deserialize<'de> for RawMmioItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMmioItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[base, size] or a list of [base, size] pairs")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawMmioItem, E> {
                Ok(RawMmioItem::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawMmioItem, E> {
                Ok(RawMmioItem::Int(i64::try_from(v).unwrap_or(-1)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawMmioItem, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<i64>()? {
                    v.push(x);
                }
                Ok(RawMmioItem::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawVm {
    /// Converts one VM to plain types, checking what the conversion needs. Returns the VM (its
    /// `console` set to the value written, false if none) and whether `console` was written.
    fn validate(self) -> Result<(VmConfig, Option<bool>), ConfigError> {
        let name = self.name;
        if !valid_name(&name) {
            return Err(ConfigError::BadName(name));
        }
        let vcpus = match usize::try_from(self.vcpus) {
            Ok(n) if (1..=MAX_VCPUS).contains(&n) => n,
            _ => {
                return Err(ConfigError::Vcpus {
                    vm: name,
                    value: self.vcpus,
                });
            }
        };
        let memory = match self.memory {
            RawSize::Bytes(b) if b > 0 => b as u64,
            RawSize::Bytes(_) => return Err(ConfigError::MemorySize { vm: name, bytes: 0 }),
            RawSize::Text(t) => match parse_size(&t) {
                Some(b) => b,
                None => return Err(ConfigError::MemorySyntax { vm: name, text: t }),
            },
        };
        let gic = match self.gic {
            2 => GicVersion::V2,
            3 => GicVersion::V3,
            value => return Err(ConfigError::Gic { vm: name, value }),
        };

        let d = VmLayout::qemu_virt(0);
        let l = &self.layout;
        let addr = |key: &'static str, value: Option<i64>, default: u64| match value {
            None => Ok(default),
            Some(v) => u64::try_from(v).map_err(|_| (key, v)),
        };
        let fields = (|| {
            Ok::<_, (&'static str, i64)>((
                addr("ram_base", l.ram_base, d.ram.start)?,
                addr("gicd", l.gicd, d.gicd)?,
                addr("gicc", l.gicc, d.gicc)?,
                addr("gicr", l.gicr, d.gicr)?,
                addr("its", l.its, d.its)?,
                addr("uart", l.uart, d.uart)?,
                addr("uart_irq", l.uart_irq, d.uart_intid.into())?,
            ))
        })();
        let (ram_base, gicd, gicc, gicr, its, uart, uart_irq) = match fields {
            Ok(f) => f,
            Err((key, value)) => {
                return Err(ConfigError::LayoutValue {
                    vm: name,
                    key,
                    value,
                });
            }
        };
        let Ok(uart_intid) = u32::try_from(uart_irq) else {
            let value = uart_irq as i64;
            return Err(ConfigError::LayoutValue {
                vm: name,
                key: "uart_irq",
                value,
            });
        };
        let identity_ram = self.identity_ram.unwrap_or(self.pci);
        if identity_ram && l.ram_base.is_some() {
            return Err(ConfigError::IdentityWithRamBase(name));
        }
        let Some(ram) = MemRange::with_size(ram_base, memory) else {
            return Err(ConfigError::RamBase {
                vm: name,
                base: ram_base,
            });
        };
        let layout = VmLayout {
            ram,
            gicd,
            gicc,
            gicr,
            its,
            uart,
            uart_intid,
        };

        let mut passthrough = Vec::new();
        for dev in self.passthrough {
            let err = |problem| ConfigError::Device {
                vm: name.clone(),
                dev: dev.name.clone(),
                problem,
            };
            let mmio = mmio_ranges(&dev.mmio).map_err(err)?;
            let irqs = dev
                .irqs
                .iter()
                .map(|&i| match u32::try_from(i) {
                    Ok(v) if is_spi(i) => Ok(v),
                    _ => Err(err(DeviceProblem::NotSpi(i))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if dev
                .compatible
                .iter()
                .any(|c| c.is_empty() || c.contains('\0'))
            {
                return Err(err(DeviceProblem::BadCompatible));
            }
            passthrough.push(Passthrough {
                name: dev.name,
                mmio,
                irqs,
                compatible: dev.compatible,
            });
        }

        let vm = VmConfig {
            name,
            vcpus,
            memory,
            kernel: self.kernel,
            initrd: self.initrd,
            bootargs: self.bootargs,
            gic,
            its: self.its,
            pci: self.pci,
            identity_ram,
            console: self.console.unwrap_or(false),
            layout,
            passthrough,
        };
        vm.validate()?;
        Ok((vm, self.console))
    }
}

/// `mmio` as written: `[base, size]` or `[[base, size], ...]` (or `[]`).
fn mmio_ranges(items: &[RawMmioItem]) -> Result<Vec<MemRange>, DeviceProblem> {
    let pairs: Vec<(i64, i64)> = match items {
        [RawMmioItem::Int(base), RawMmioItem::Int(size)] => [(*base, *size)].into(),
        _ => items
            .iter()
            .map(|item| match item {
                RawMmioItem::List(p) if p.len() == 2 => Ok((p[0], p[1])),
                _ => Err(DeviceProblem::MmioShape),
            })
            .collect::<Result<_, _>>()?,
    };
    pairs
        .into_iter()
        .map(|(base, size)| {
            let bad = DeviceProblem::BadRange(base.into(), size.into());
            let (Ok(b), Ok(s)) = (u64::try_from(base), u64::try_from(size)) else {
                return Err(bad);
            };
            MemRange::with_size(b, s).ok_or(bad)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const EXAMPLE: &str = r#"
# exitless.toml
[[vm]]
name = "linux"            # required, 1..=32 chars [A-Za-z0-9_-]
vcpus = 2                 # 1..=MAX_VCPUS
memory = "512M"           # bytes as integer, or string with K/M/G suffix; >= 16M, multiple of 2M
kernel = "Image"          # file in the bundle (required)
initrd = "initramfs.cpio.gz"   # optional file in the bundle
bootargs = "console=ttyAMA0"   # optional, default ""
gic = 3                   # 2 or 3 (default 3)
console = true            # optional: this VM gets console input first (default: the first VM)
# optional memory-map overrides (defaults: VmLayout::qemu_virt)
[vm.layout]
ram_base = 0x40000000
gicd = 0x08000000
gicc = 0x08010000
gicr = 0x080a0000
uart = 0x09000000
uart_irq = 33             # INTID
# devices passed through (physical MMIO mapped 1:1 at the same IPA, physical SPIs forwarded)
[[vm.passthrough]]
name = "rtc"
mmio = [0x09010000, 0x1000]   # base, size (4 KiB aligned)
irqs = [34]                    # SPI INTIDs (32..1019)
"#;

    const HOST: HostLimits<'static> = HostLimits {
        cpus: 4,
        free_memory: 2048 * MIB,
        gic: GicVersion::V3,
        gicv2_compat: true,
        ipa_bits: 40,
        owned: &[],
        pci_bridge: true,
    };

    fn vm(name: &str, extra: &str) -> String {
        format!("[[vm]]\nname = \"{name}\"\nmemory = \"64M\"\nkernel = \"Image\"\n{extra}\n")
    }

    fn err(text: &str) -> ConfigError {
        parse(text).expect_err("the configuration should be refused")
    }

    fn msg(text: &str) -> String {
        err(text).to_string()
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.vms.len(), 1);
        let v = &c.vms[0];
        assert_eq!(v.name, "linux");
        assert_eq!(v.vcpus, 2);
        assert_eq!(v.memory, 512 * MIB);
        assert_eq!(v.kernel, "Image");
        assert_eq!(v.initrd.as_deref(), Some("initramfs.cpio.gz"));
        assert_eq!(v.bootargs, "console=ttyAMA0");
        assert_eq!(v.gic, GicVersion::V3);
        assert!(v.console);
        assert_eq!(v.layout, VmLayout::qemu_virt(512 * MIB));
        assert_eq!(
            v.passthrough,
            vec![Passthrough {
                name: "rtc".into(),
                mmio: vec![MemRange {
                    start: 0x0901_0000,
                    end: 0x0901_1000
                }],
                irqs: vec![34],
                compatible: vec![],
            }]
        );
        assert_eq!(c.check(&HOST), Ok(()));
    }

    #[test]
    fn passthrough_compatible_is_kept_and_must_be_non_empty_strings() {
        let text = |c: &str| {
            format!(
                "[[vm]]\nname = \"a\"\nmemory = \"64M\"\nkernel = \"k\"\n\
                 [[vm.passthrough]]\nname = \"rtc\"\nmmio = [0x09010000, 0x1000]\n\
                 irqs = [34]\ncompatible = {c}\n"
            )
        };
        let c = parse(&text("[\"arm,pl031\", \"arm,primecell\"]")).unwrap();
        assert_eq!(
            c.vms[0].passthrough[0].compatible,
            ["arm,pl031", "arm,primecell"]
        );
        assert!(matches!(
            parse(&text("[\"\"]")),
            Err(ConfigError::Device {
                problem: DeviceProblem::BadCompatible,
                ..
            })
        ));
    }

    #[test]
    fn defaults_are_one_vcpu_gicv3_no_initrd_empty_bootargs_and_the_qemu_virt_map() {
        let c = parse(&vm("a", "")).unwrap();
        let v = &c.vms[0];
        assert_eq!(v.vcpus, 1);
        assert_eq!(v.gic, GicVersion::V3);
        assert_eq!(v.initrd, None);
        assert_eq!(v.bootargs, "");
        assert!(v.console);
        assert_eq!(v.layout, VmLayout::qemu_virt(64 * MIB));
        assert!(v.passthrough.is_empty());
    }

    #[test]
    fn the_console_defaults_to_the_first_vm() {
        let c = parse(&(vm("a", "") + &vm("b", ""))).unwrap();
        assert_eq!(
            c.vms.iter().map(|v| v.console).collect::<Vec<_>>(),
            [true, false]
        );
        let c = parse(&(vm("a", "") + &vm("b", "console = true"))).unwrap();
        assert_eq!(
            c.vms.iter().map(|v| v.console).collect::<Vec<_>>(),
            [false, true]
        );
        let c = parse(&(vm("a", "console = false") + &vm("b", ""))).unwrap();
        assert_eq!(
            c.vms.iter().map(|v| v.console).collect::<Vec<_>>(),
            [false, true]
        );
    }

    #[test]
    fn at_most_one_vm_has_console_true() {
        let e = err(&(vm("a", "console = true") + &vm("b", "console = true")));
        assert_eq!(e, ConfigError::TwoConsoles("a".into(), "b".into()));
        assert!(e.to_string().contains("remove one"));
    }

    #[test]
    fn memory_sizes_accept_suffixes_and_plain_bytes() {
        for (text, bytes) in [
            ("\"512M\"", 512 * MIB),
            ("\"1G\"", 1024 * MIB),
            ("\"1g\"", 1024 * MIB),
            ("268435456", 256 * MIB),
            ("\"268435456\"", 256 * MIB),
            ("\"32768K\"", 32 * MIB),
            ("0x4000000", 64 * MIB),
        ] {
            let t = format!("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = {text}\n");
            assert_eq!(parse(&t).unwrap().vms[0].memory, bytes, "{text}");
        }
    }

    #[test]
    fn memory_that_is_not_a_size_is_refused() {
        for text in [
            "\"\"",
            "\"M\"",
            "\"1.5G\"",
            "\"-1M\"",
            "\"512 M\"",
            "\"512MB\"",
            "\"99999999999G\"",
        ] {
            let t = format!("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = {text}\n");
            assert!(
                matches!(err(&t), ConfigError::MemorySyntax { .. }),
                "{text}"
            );
        }
        let t = "[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = true\n";
        assert!(msg(t).contains("\"512M\""), "{}", msg(t));
    }

    #[test]
    fn memory_below_16m_or_not_a_multiple_of_2m_is_refused() {
        for text in ["\"8M\"", "\"17M\"", "0", "-4", "\"16385K\""] {
            let t = format!("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = {text}\n");
            assert!(matches!(err(&t), ConfigError::MemorySize { .. }), "{text}");
        }
        assert!(parse("[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = \"16M\"\n").is_ok());
    }

    #[test]
    fn vcpus_must_be_1_to_max_vcpus() {
        for n in [0i64, -1, MAX_VCPUS as i64 + 1] {
            let e = err(&vm("a", &format!("vcpus = {n}")));
            assert_eq!(
                e,
                ConfigError::Vcpus {
                    vm: "a".into(),
                    value: n
                }
            );
        }
        assert!(msg(&vm("a", "vcpus = 0")).contains("use 1 to 8"));
        assert_eq!(parse(&vm("a", "vcpus = 8")).unwrap().vms[0].vcpus, 8);
    }

    #[test]
    fn pci_is_for_one_gic_3_vm_on_a_machine_with_a_bridge() {
        assert!(parse(&vm("a", "pci = true")).unwrap().vms[0].pci);
        assert!(!parse(&vm("a", "")).unwrap().vms[0].pci);
        assert_eq!(
            err(&vm("a", "gic = 2\npci = true")),
            ConfigError::PciWithGicV2("a".into())
        );
        assert_eq!(
            err(&(vm("a", "pci = true") + &vm("b", "pci = true"))),
            ConfigError::TwoPci("a".into(), "b".into())
        );
        let c = parse(&vm("a", "pci = true")).unwrap();
        let host = HostLimits {
            pci_bridge: false,
            ..HOST
        };
        assert_eq!(c.check(&host), Err(ConfigError::NoPciBridge("a".into())));
        assert!(
            ConfigError::NoPciBridge("a".into())
                .to_string()
                .contains("pci-host-ecam-generic")
        );
        assert_eq!(c.check(&HOST), Ok(()));
    }

    #[test]
    fn identity_ram_is_the_default_with_pci_and_excludes_ram_base() {
        let v = |extra: &str| parse(&vm("a", extra)).map(|c| c.vms[0].identity_ram);
        assert_eq!(v(""), Ok(false));
        assert_eq!(v("pci = true"), Ok(true));
        assert_eq!(v("pci = true\nidentity_ram = false"), Ok(false));
        assert_eq!(v("identity_ram = true"), Ok(true));
        // RAM placed by hand is not identity RAM: said or defaulted, the pair is refused.
        for extra in [
            "pci = true\n[vm.layout]\nram_base = 0x80000000",
            "identity_ram = true\n[vm.layout]\nram_base = 0x80000000",
        ] {
            assert_eq!(
                err(&vm("a", extra)),
                ConfigError::IdentityWithRamBase("a".into())
            );
        }
        assert_eq!(
            v("pci = true\nidentity_ram = false\n[vm.layout]\nram_base = 0x80000000"),
            Ok(false)
        );
        assert!(
            ConfigError::IdentityWithRamBase("a".into())
                .to_string()
                .contains("identity_ram = false")
        );
    }

    #[test]
    fn its_is_for_gic_3_and_defaults_to_the_hosts() {
        let c = parse(&vm("a", "")).unwrap();
        assert_eq!(c.vms[0].its, None);
        assert!(c.vms[0].has_its(true) && !c.vms[0].has_its(false));
        let c = parse(&vm("a", "its = false")).unwrap();
        assert!(!c.vms[0].has_its(true));
        let c = parse(&vm("a", "its = true")).unwrap();
        assert!(c.vms[0].has_its(false), "emulated even without a host ITS");
        assert!(!parse(&vm("a", "gic = 2")).unwrap().vms[0].has_its(true));
        assert_eq!(
            err(&vm("a", "gic = 2\nits = true")),
            ConfigError::ItsWithGicV2("a".into())
        );
        assert!(msg(&vm("a", "gic = 2\nits = true")).contains("use gic = 3"));
    }

    #[test]
    fn gic_must_be_2_or_3() {
        assert_eq!(
            parse(&vm("a", "gic = 2")).unwrap().vms[0].gic,
            GicVersion::V2
        );
        assert_eq!(
            err(&vm("a", "gic = 4")),
            ConfigError::Gic {
                vm: "a".into(),
                value: 4
            }
        );
        assert!(msg(&vm("a", "gic = \"3\"")).contains("line 5"));
    }

    #[test]
    fn names_are_1_to_32_letters_digits_underscores_or_dashes() {
        for good in ["a", "linux-2_B", &"x".repeat(32)] {
            assert!(parse(&vm(good, "")).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(33)] {
            assert_eq!(err(&vm(bad, "")), ConfigError::BadName(bad.into()), "{bad}");
        }
    }

    #[test]
    fn vm_names_are_unique() {
        assert_eq!(
            err(&(vm("a", "") + &vm("a", ""))),
            ConfigError::DuplicateName("a".into())
        );
    }

    #[test]
    fn a_file_without_vm_is_refused() {
        assert_eq!(err(""), ConfigError::NoVm);
        assert_eq!(err("# nothing\n"), ConfigError::NoVm);
        let empty = Config { vms: Vec::new() };
        assert_eq!(empty.check(&HOST), Err(ConfigError::NoVm));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name_and_line() {
        let m = msg(&vm("a", "vpcus = 2"));
        assert!(m.contains("vpcus") && m.contains("line 5"), "{m}");
        let m = msg(&vm("a", "[vm.layout]\nuart_intid = 33"));
        assert!(m.contains("uart_intid"), "{m}");
        let m = msg(&vm(
            "a",
            "[[vm.passthrough]]\nname = \"x\"\nreg = [0, 4096]",
        ));
        assert!(m.contains("reg"), "{m}");
        let m = msg("[[vms]]\nname = \"a\"\n");
        assert!(m.contains("vms"), "{m}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let m = msg("[[vm]]\nname = \"a\"\nmemory = \"64M\"\n");
        assert!(m.contains("kernel"), "{m}");
        let m = msg("[[vm]]\nname = \"a\"\nkernel = \"k\"\n");
        assert!(m.contains("memory"), "{m}");
        let m = msg("[[vm]]\nkernel = \"k\"\nmemory = \"64M\"\n");
        assert!(m.contains("name"), "{m}");
    }

    #[test]
    fn toml_syntax_errors_keep_line_and_column() {
        let m = msg("[[vm]]\nname = \"a\"\nmemory = \n");
        assert!(
            m.starts_with("exitless.toml: ") && m.contains("line 3"),
            "{m}"
        );
    }

    #[test]
    fn empty_file_names_and_long_bootargs_are_refused() {
        let t = "[[vm]]\nname = \"a\"\nmemory = \"64M\"\nkernel = \"\"\n";
        assert_eq!(
            err(t),
            ConfigError::EmptyFileName {
                vm: "a".into(),
                key: "kernel"
            }
        );
        let e = err(&vm("a", "initrd = \"\""));
        assert_eq!(
            e,
            ConfigError::EmptyFileName {
                vm: "a".into(),
                key: "initrd"
            }
        );
        let long = format!("bootargs = \"{}\"", "x".repeat(2048));
        assert_eq!(
            err(&vm("a", &long)),
            ConfigError::Bootargs {
                vm: "a".into(),
                len: 2048
            }
        );
        let e = err(&vm("a", "bootargs = \"a\\u0000b\""));
        assert_eq!(
            e,
            ConfigError::Bootargs {
                vm: "a".into(),
                len: 3
            }
        );
    }

    #[test]
    fn layout_overrides_replace_the_defaults() {
        let t = vm(
            "a",
            "gic = 2\n[vm.layout]\nram_base = 0x80000000\ngicd = 0x2f000000\ngicc = 0x2f002000\n\
             uart = 0x1c090000\nuart_irq = 37",
        );
        let l = parse(&t).unwrap().vms[0].layout;
        assert_eq!(
            l.ram,
            MemRange {
                start: 0x8000_0000,
                end: 0x8400_0000
            }
        );
        assert_eq!(
            (l.gicd, l.gicc, l.uart, l.uart_intid),
            (0x2f00_0000, 0x2f00_2000, 0x1c09_0000, 37)
        );
        assert_eq!((l.gicr, l.its), (0x080a_0000, 0x0808_0000));
    }

    #[test]
    fn negative_layout_values_and_a_uart_irq_that_is_not_an_spi_are_refused() {
        let e = err(&vm("a", "[vm.layout]\ngicd = -1"));
        assert_eq!(
            e,
            ConfigError::LayoutValue {
                vm: "a".into(),
                key: "gicd",
                value: -1
            }
        );
        let e = err(&vm("a", "[vm.layout]\nuart_irq = 27"));
        assert_eq!(
            e,
            ConfigError::LayoutValue {
                vm: "a".into(),
                key: "uart_irq",
                value: 27
            }
        );
    }

    #[test]
    fn ram_base_must_be_2m_aligned() {
        let e = err(&vm("a", "[vm.layout]\nram_base = 0x40100000"));
        assert_eq!(
            e,
            ConfigError::RamBase {
                vm: "a".into(),
                base: 0x4010_0000
            }
        );
        let t = "[[vm]]\nname = \"a\"\nkernel = \"k\"\nmemory = \"9999999999G\"\n\
                 [vm.layout]\nram_base = 0x7fffffffffe00000\n";
        let e = err(t);
        assert!(matches!(e, ConfigError::RamBase { .. }), "{e:?}");
    }

    #[test]
    fn layout_is_checked_against_the_host_ipa_size_with_the_vm_name() {
        let c = parse(&vm("big", "[vm.layout]\nram_base = 0xfffe000000")).unwrap();
        let e = c.check(&HOST).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Layout {
                vm: "big".into(),
                error: LayoutError::OutOfRange("RAM")
            }
        );
        assert!(e.to_string().starts_with("VM 'big': the RAM region"), "{e}");
        let c = parse(&vm("a", "[vm.layout]\nuart = 0x08001000")).unwrap();
        let e = c.check(&HOST).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Layout {
                vm: "a".into(),
                error: LayoutError::Overlap("GICD", "PL011")
            }
        );
    }

    #[test]
    fn mmio_is_one_pair_or_a_list_of_pairs() {
        let one = "[[vm.passthrough]]\nname = \"d\"\nmmio = [0x9010000, 0x1000]";
        let list =
            "[[vm.passthrough]]\nname = \"d\"\nmmio = [[0x9010000, 0x1000], [0x9020000, 0x2000]]";
        assert_eq!(
            parse(&vm("a", one)).unwrap().vms[0].passthrough[0].mmio,
            [MemRange {
                start: 0x901_0000,
                end: 0x901_1000
            }]
        );
        assert_eq!(
            parse(&vm("a", list)).unwrap().vms[0].passthrough[0].mmio,
            [
                MemRange {
                    start: 0x901_0000,
                    end: 0x901_1000
                },
                MemRange {
                    start: 0x902_0000,
                    end: 0x902_2000
                }
            ]
        );
        for bad in ["[1, 2, 3]", "[[1, 2], 3]", "[[1, 2, 3]]", "[1]"] {
            let t = vm(
                "a",
                &format!("[[vm.passthrough]]\nname = \"d\"\nmmio = {bad}"),
            );
            let e = err(&t);
            assert_eq!(
                e,
                ConfigError::Device {
                    vm: "a".into(),
                    dev: "d".into(),
                    problem: DeviceProblem::MmioShape
                },
                "{bad}"
            );
        }
    }

    fn dev(mmio: &str, irqs: &str) -> String {
        format!("[[vm.passthrough]]\nname = \"d\"\nmmio = {mmio}\nirqs = {irqs}\n")
    }

    fn device_problem(text: &str) -> DeviceProblem {
        match err(text) {
            ConfigError::Device { problem, .. } => problem,
            e => panic!("expected a device error, got {e:?}"),
        }
    }

    #[test]
    fn passthrough_ranges_must_be_4k_aligned_and_not_empty() {
        for (mmio, base, size) in [
            ("[0x9010800, 0x1000]", 0x901_0800, 0x1000),
            ("[0x9010000, 0x800]", 0x901_0000, 0x800),
            ("[0x9010000, 0]", 0x901_0000, 0),
            ("[-4096, 0x1000]", -4096, 0x1000),
        ] {
            let p = device_problem(&vm("a", &dev(mmio, "[]")));
            assert_eq!(p, DeviceProblem::BadRange(base, size), "{mmio}");
        }
    }

    #[test]
    fn passthrough_ranges_must_not_overlap_the_vm_regions() {
        for (mmio, region) in [
            ("[0x40000000, 0x1000]", "RAM"),
            ("[0x08000000, 0x1000]", "GICD"),
            ("[0x080a0000, 0x1000]", "GICR"),
            ("[0x08080000, 0x1000]", "ITS"),
            ("[0x09000000, 0x1000]", "PL011"),
        ] {
            let p = device_problem(&vm("a", &dev(mmio, "[]")));
            assert!(
                matches!(p, DeviceProblem::OverlapsVm(_, r) if r == region),
                "{mmio}: {p:?}"
            );
        }
        // The GICC frame is the VM's only with a vGICv2; GICR and ITS only with a vGICv3.
        let p = device_problem(&vm(
            "a",
            &(String::from("gic = 2\n") + &dev("[0x08010000, 0x1000]", "[]")),
        ));
        assert!(matches!(p, DeviceProblem::OverlapsVm(_, "GICC")), "{p:?}");
        assert!(parse(&vm("a", &dev("[0x08010000, 0x1000]", "[]"))).is_ok());
        assert!(
            parse(&vm(
                "a",
                &(String::from("gic = 2\n") + &dev("[0x080a0000, 0x1000]", "[]"))
            ))
            .is_ok()
        );
        // The RAM region grows with memory.
        let t = "[[vm]]\nname = \"a\"\nmemory = \"64M\"\nkernel = \"k\"\n".to_string()
            + &dev("[0x43fff000, 0x1000]", "[]");
        assert!(matches!(
            device_problem(&t),
            DeviceProblem::OverlapsVm(_, "RAM")
        ));
    }

    #[test]
    fn passthrough_ranges_must_not_overlap_each_other() {
        let t = vm(
            "a",
            "[[vm.passthrough]]\nname = \"x\"\nmmio = [0x9010000, 0x2000]\n\
             [[vm.passthrough]]\nname = \"y\"\nmmio = [0x9011000, 0x1000]",
        );
        let e = err(&t);
        assert_eq!(
            e,
            ConfigError::DeviceOverlap {
                a: ("a".into(), "x".into()),
                b: ("a".into(), "y".into())
            }
        );
        let e = err(&vm(
            "a",
            &dev("[[0x9010000, 0x2000], [0x9011000, 0x1000]]", "[]"),
        ));
        assert!(matches!(e, ConfigError::DeviceOverlap { .. }), "{e:?}");
    }

    #[test]
    fn a_physical_device_is_given_to_one_vm_only() {
        let t = vm("a", &dev("[0x9010000, 0x1000]", "[]"))
            + &vm("b", &dev("[0x9010000, 0x1000]", "[]"));
        let e = err(&t);
        assert_eq!(
            e,
            ConfigError::DeviceOverlap {
                a: ("a".into(), "d".into()),
                b: ("b".into(), "d".into())
            }
        );
        assert!(e.to_string().contains("VM 'a'") && e.to_string().contains("VM 'b'"));
        let t = vm("a", &dev("[]", "[40]")) + &vm("b", &dev("[]", "[40]"));
        assert!(matches!(err(&t), ConfigError::DeviceIrq { irq: 40, .. }));
    }

    #[test]
    fn passthrough_irqs_must_be_spis() {
        for irq in [-1i64, 0, 27, 31, 1020, 5000] {
            let p = device_problem(&vm("a", &dev("[0x9010000, 0x1000]", &format!("[{irq}]"))));
            assert_eq!(p, DeviceProblem::NotSpi(irq));
        }
        assert!(parse(&vm("a", &dev("[0x9010000, 0x1000]", "[32, 1019]"))).is_ok());
    }

    #[test]
    fn passthrough_irqs_must_not_be_the_uart_irq() {
        let p = device_problem(&vm("a", &dev("[0x9010000, 0x1000]", "[33]")));
        assert_eq!(p, DeviceProblem::UartIrq(33));
        let t = vm(
            "a",
            &(String::from("[vm.layout]\nuart_irq = 40\n") + &dev("[0x9010000, 0x1000]", "[33]")),
        );
        assert!(parse(&t).is_ok());
    }

    #[test]
    fn passthrough_irqs_are_not_shared() {
        let e = err(&vm("a", &dev("[]", "[40, 40]")));
        let d = ("a".to_string(), "d".to_string());
        assert_eq!(
            e,
            ConfigError::DeviceIrq {
                a: d.clone(),
                b: d,
                irq: 40
            }
        );
        assert!(e.to_string().contains("twice"));
        let t = vm(
            "a",
            "[[vm.passthrough]]\nname = \"x\"\nirqs = [40]\n[[vm.passthrough]]\nname = \"y\"\nirqs = [40]",
        );
        assert!(matches!(err(&t), ConfigError::DeviceIrq { irq: 40, .. }));
    }

    #[test]
    fn passthrough_devices_need_a_valid_unique_name_and_something_to_pass() {
        assert_eq!(
            device_problem(&vm("a", "[[vm.passthrough]]\nname = \"x y\"\nirqs = [40]")),
            DeviceProblem::BadName
        );
        assert_eq!(
            device_problem(&vm("a", "[[vm.passthrough]]\nname = \"x\"")),
            DeviceProblem::Empty
        );
        let t = vm(
            "a",
            "[[vm.passthrough]]\nname = \"x\"\nirqs = [40]\n[[vm.passthrough]]\nname = \"x\"\nirqs = [41]",
        );
        assert_eq!(device_problem(&t), DeviceProblem::BadName);
    }

    #[test]
    fn passthrough_ranges_must_fit_the_ipa_size() {
        let c = parse(&vm("a", &dev("[0x10000000000, 0x1000]", "[]"))).unwrap();
        let e = c.check(&HOST).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Device {
                    problem: DeviceProblem::BeyondIpa(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            c.check(&HostLimits {
                ipa_bits: 44,
                ..HOST
            }),
            Ok(())
        );
    }

    #[test]
    fn total_vcpus_must_not_exceed_host_cpus() {
        let c = parse(&(vm("x", "vcpus = 3") + &vm("y", "vcpus = 3"))).unwrap();
        let e = c.check(&HOST).unwrap_err();
        assert_eq!(
            e.to_string(),
            "VMs 'x' and 'y' need 6 vCPUs, this machine has 4 CPUs: lower vcpus"
        );
        let c = parse(&vm("x", "vcpus = 5")).unwrap();
        assert_eq!(
            c.check(&HOST).unwrap_err().to_string(),
            "VM 'x' needs 5 vCPUs, this machine has 4 CPUs: lower vcpus"
        );
        let c = parse(&(vm("x", "vcpus = 2") + &vm("y", "vcpus = 2"))).unwrap();
        assert_eq!(c.check(&HOST), Ok(()));
    }

    #[test]
    fn total_memory_must_fit_in_free_memory() {
        let t = vm("a", "").replace("64M", "1G") + &vm("b", "").replace("64M", "1G") + &vm("c", "");
        let c = parse(&t).unwrap();
        let e = c.check(&HOST).unwrap_err();
        assert_eq!(
            e.to_string(),
            "VMs 'a', 'b' and 'c' need 2112 MiB of RAM, this machine has 2048 MiB free for VMs: \
             lower memory"
        );
        let c =
            parse(&(vm("a", "").replace("64M", "1G") + &vm("b", "").replace("64M", "1G"))).unwrap();
        assert_eq!(c.check(&HOST), Ok(()));
    }

    #[test]
    fn a_vgicv2_on_a_gicv3_host_needs_v2_compatibility() {
        let c = parse(&vm("old", "gic = 2")).unwrap();
        assert_eq!(c.check(&HOST), Ok(()));
        let host = HostLimits {
            gicv2_compat: false,
            ..HOST
        };
        let e = c.check(&host).unwrap_err();
        assert_eq!(e, ConfigError::GicV2Unsupported("old".into()));
        assert!(e.to_string().contains("use gic = 3"));
    }

    #[test]
    fn a_vgicv3_on_a_gicv2_host_is_refused() {
        let c = parse(&vm("new", "")).unwrap();
        let host = HostLimits {
            gic: GicVersion::V2,
            ..HOST
        };
        let e = c.check(&host).unwrap_err();
        assert_eq!(e, ConfigError::GicV3Unsupported("new".into()));
        assert!(e.to_string().contains("use gic = 2"));
        let c = parse(&vm("old", "gic = 2")).unwrap();
        assert_eq!(c.check(&host), Ok(()));
    }

    #[test]
    fn check_applies_the_file_rules_to_a_config_built_by_hand() {
        let mut c = parse(&(vm("a", "") + &vm("b", ""))).unwrap();
        c.vms[1].console = true;
        assert_eq!(
            c.check(&HOST),
            Err(ConfigError::TwoConsoles("a".into(), "b".into()))
        );
        c.vms[1].console = false;
        c.vms[1].name = "a".into();
        assert_eq!(c.check(&HOST), Err(ConfigError::DuplicateName("a".into())));
        c.vms[1].name = "b".into();
        c.vms[1].vcpus = 0;
        assert!(matches!(c.check(&HOST), Err(ConfigError::Vcpus { .. })));
    }

    #[test]
    fn files_must_be_in_the_bundle() {
        // A bundle with the config and "Image" (built with a tiny newc writer).
        fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut entry = |name: &str, mode: u32, data: &[u8]| {
                out.extend_from_slice(b"070701");
                let f = [
                    0,
                    mode,
                    0,
                    0,
                    1,
                    0,
                    data.len() as u32,
                    0,
                    0,
                    0,
                    0,
                    name.len() as u32 + 1,
                    0,
                ];
                for v in f {
                    out.extend_from_slice(format!("{v:08x}").as_bytes());
                }
                out.extend_from_slice(name.as_bytes());
                out.push(0);
                out.resize(out.len().next_multiple_of(4), 0);
                out.extend_from_slice(data);
                out.resize(out.len().next_multiple_of(4), 0);
            };
            for (n, d) in files {
                entry(n, 0o100644, d);
            }
            entry("TRAILER!!!", 0, &[]);
            out
        }
        let text = vm("a", "initrd = \"initrd.gz\"");
        let c = parse(&text).unwrap();
        let bytes = newc(&[(CONFIG_FILE, text.as_bytes()), ("Image", b"kernel")]);
        let b = Bundle::parse(&bytes).unwrap();
        let e = c.check_files(&b).unwrap_err();
        assert_eq!(
            e,
            ConfigError::MissingFile {
                vm: "a".into(),
                key: "initrd",
                file: "initrd.gz".into(),
                have: vec![CONFIG_FILE.into(), "Image".into()],
            }
        );
        assert_eq!(
            e.to_string(),
            "VM 'a': initrd file 'initrd.gz' is not in the bundle (it holds exitless.toml, \
             Image): add it to the bundle (scripts/mkbundle.py) or fix the name"
        );

        let bytes = newc(&[("Image", b"kernel"), ("initrd.gz", b"")]);
        assert_eq!(c.check_files(&Bundle::parse(&bytes).unwrap()), Ok(()));
        let bytes = newc(&[("Image", b""), ("initrd.gz", b"x")]);
        assert_eq!(
            c.check_files(&Bundle::parse(&bytes).unwrap()),
            Err(ConfigError::EmptyKernel {
                vm: "a".into(),
                file: "Image".into()
            })
        );
    }

    #[test]
    fn parse_bytes_reports_invalid_utf8_with_its_offset() {
        assert_eq!(
            Config::parse_bytes(b"[[vm]]\n\xff"),
            Err(ConfigError::NotUtf8(7))
        );
        assert!(Config::parse_bytes(vm("a", "").as_bytes()).is_ok());
    }

    #[test]
    fn the_shipped_bundle_configs_parse_and_fit_a_4_cpu_1g_machine() {
        for text in [
            include_str!("../../../scripts/bundles/linux.toml"),
            include_str!("../../../scripts/bundles/linux-test.toml"),
        ] {
            let c = parse(text).unwrap();
            assert_eq!(
                c.check(&HostLimits {
                    free_memory: 1024 * MIB,
                    ..HOST
                }),
                Ok(())
            );
            assert_eq!(c.vms[0].kernel, "Image");
            assert_eq!(c.vms[0].initrd.as_deref(), Some("initramfs.cpio.gz"));
        }
    }

    /// The host regions of a QEMU virt tree (the platform tests' fixture, compiled with dtc).
    fn virt_host_regions(fixture: &str) -> Vec<HostRegion> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::process::Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb"])
            .arg(root.join("scripts/fixtures").join(format!("{fixture}.dts")))
            .output()
            .expect("dtc is needed: run scripts/setup.sh");
        let fdt = crate::platform::dt::validate(&out.stdout).unwrap();
        host_regions(&crate::platform::PlatformInfo::parse(&fdt, 0x4800_0000))
    }

    /// VM 'x' passing through `[base, size]`, with its own regions moved away from QEMU
    /// virt's addresses (so that only the host check can refuse the range).
    fn passthrough(base: u64, size: u64) -> Config {
        parse(&vm(
            "x",
            &format!(
                "[vm.layout]\nram_base = 0x100000000\ngicd = 0x20000000\ngicr = 0x20100000\n\
                 its = 0x22000000\nuart = 0x23000000\n\
                 [[vm.passthrough]]\nname = \"dev\"\nmmio = [{base:#x}, {size:#x}]\nirqs = [40]"
            ),
        ))
        .unwrap()
    }

    #[test]
    fn a_passthrough_range_over_anything_exitless_owns_is_refused_naming_both() {
        let owned = virt_host_regions("virt-gicv3");
        let host = HostLimits {
            owned: &owned,
            ..HOST
        };
        for (base, size, what) in [
            (0x0800_0000, 0x1_0000, "the host's GIC distributor (GICD)"),
            (
                0x080a_0000,
                0x2_0000,
                "the host's GIC redistributors (GICR)",
            ),
            (0x0808_0000, 0x1000, "the host's GIC ITS"),
            (0x0900_0000, 0x1000, "the console UART exitless uses"),
            (0x4000_0000, 0x20_0000, "RAM (exitless's and its VMs')"),
            (0x7fe0_0000, 0x1000, "RAM (exitless's and its VMs')"),
        ] {
            let e = passthrough(base, size).check(&host).unwrap_err();
            let ConfigError::HostOwned { owner, range, .. } = &e else {
                panic!("{base:#x}: {e:?}")
            };
            assert_eq!(owner.what, what, "{base:#x}");
            assert_eq!(range.start, base);
            let text = e.to_string();
            assert!(
                text.contains("passthrough device 'dev' of VM 'x'") && text.contains(what),
                "{text}"
            );
        }
        // The RTC next to the UART is a device exitless does not use: accepted.
        assert_eq!(passthrough(0x0901_0000, 0x1000).check(&host), Ok(()));
    }

    #[test]
    fn gicv2_frames_and_the_pis_power_block_are_host_owned() {
        let owned = virt_host_regions("virt-gicv2");
        for what in [
            "the host's GIC CPU interface (GICC)",
            "the host's GIC virtual interface control (GICH)",
            "the host's GIC virtual CPU interface (GICV)",
        ] {
            assert!(owned.iter().any(|o| o.what == what), "{what}");
        }
        let pi = virt_host_regions("rpi4b");
        assert!(
            pi.iter()
                .any(|o| o.range.start == 0xfe10_0000 && o.what.contains("power"))
        );
        assert!(
            pi.iter()
                .any(|o| o.range.start == 0xfe20_1000 && o.what.contains("console"))
        );
    }
}
