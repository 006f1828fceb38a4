//! A running VM, as the hypervisor's exit handlers see it: its configuration and memory map,
//! its virtual GIC, its virtual UART, the MMIO bus between them, its vCPUs' power states, and
//! its counters; and [`Vm::handle_exit`], which turns a decoded guest exit into the emulation
//! and tells the hardware shell what is left to do (inject an exception, start a vCPU, stop the
//! VM, handle a physical interrupt).
//!
//! Pure: nothing here touches hardware; the few things an exit needs from it (an ID register's
//! real value, kicking a vCPU on another CPU, console output) go through [`ExitHw`].
//!
//! ## Lock order
//!
//! This is the one place the hypervisor's lock order is written; every other module points
//! here. All locks are `spin::Mutex`es and the hypervisor runs with interrupts masked. A thread
//! that holds a lock may take only locks further down the list:
//!
//! 1. a vCPU's power state, `Vm::vcpus[n].power` (taken alone, never with another VM lock);
//! 2. the console input queue, `Vm::console_in`;
//! 3. the virtual UART, `Vm::uart` (under `console_in` when queued input moves into its FIFO);
//! 4. the virtual GIC, `Vm::vgic` (every vGIC operation; a device's line level is read from the
//!    device first and the device lock dropped before the vGIC lock is taken);
//! 5. a vCPU's counters, `Vm::vcpus[n].stats`, then the VM's MMIO counters, `VmStats::mmio`;
//! 6. the shell's own locks (the console input state, taken alone; the console multiplexer,
//!    then the physical console; a VM's guest memory; the free-memory allocator), taken with no
//!    VM lock held;
//! 7. the heap allocator's lock, innermost: any code may allocate.
//!
//! No VM lock is held across a call into the shell: every [`ExitHw`] call (kick, console
//! output, ID register) and every `hv` trait call is made after the locks above are dropped,
//! so the shell may take its own locks, or this VM's, without deadlocking.

use alloc::collections::VecDeque;

use crate::util::counters::{CountKey, CountTable};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::util::lock::{Mutex, VersionedMutex};

use super::config::VmConfig;
use super::layout::VmLayout;
use super::mmio::MmioBus;
use crate::dev::pl011::Pl011;
use crate::platform::GicVersion;
use crate::trap::esr::SysRegId;
use crate::vcpu::exit::{Exit, MmioAccess};
use crate::vcpu::psci::{self, PowerState, PsciAction, PsciVm};
use crate::vcpu::regs::GuestRegs;
use crate::vcpu::sysreg::{self, FeaturePolicy, SysRegAction};
use crate::vgic::irq::IntId;
use crate::vgic::{Vgic, VgicConfig};

/// Console input bytes a VM queues while its UART's receive FIFO is full.
pub const CONSOLE_INPUT_QUEUE: usize = 4096;

/// SPIs every VM's vGIC has (224, so 256 interrupt IDs as on QEMU virt).
pub const VM_SPIS: u32 = 224;

/// ICC_DIR_EL1, trapped (ICH_HCR_EL2.TDIR) while the guest uses EOImode=1 and an active
/// interrupt waits outside the list registers or an SPI is in flight on another vCPU.
pub const ICC_DIR_EL1: SysRegId = SysRegId::new(3, 0, 12, 11, 1);

/// Emulated devices on a VM's MMIO bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Device {
    /// The distributor.
    Gicd,
    /// The GICv3 redistributors.
    Gicr,
    /// The PL011.
    Uart,
    /// The vGICv2's GICC_DIR page (the GICC page itself is the hardware's GICV).
    GiccDir,
    /// The ITS (vGICv3 with `its`).
    Its,
}

impl Device {
    /// The name counters use.
    pub fn name(self) -> &'static str {
        match self {
            Device::Gicd => "GICD",
            Device::Gicr => "GICR",
            Device::Uart => "PL011",
            Device::GiccDir => "GICC",
            Device::Its => "GITS",
        }
    }
}

/// Why a vCPU left the guest, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitReason {
    /// Emulated MMIO.
    Mmio,
    /// MMIO the syndrome does not describe (aborted).
    MmioUndecodable,
    /// HVC (SMCCC, PSCI).
    Hvc,
    /// SMC.
    Smc,
    /// Trapped system register.
    SysReg,
    /// Trapped WFI/WFE.
    Wfx,
    /// Physical IRQ.
    Irq,
    /// Physical FIQ.
    Fiq,
    /// SError.
    SError,
    /// Abort at an address no device owns, or another guest fault.
    GuestFault,
    /// Anything that gets an UNDEF.
    Undefined,
}

impl ExitReason {
    /// All reasons, in counter order (their declaration order: `r as usize` indexes it).
    pub const ALL: [ExitReason; 11] = [
        ExitReason::Mmio,
        ExitReason::MmioUndecodable,
        ExitReason::Hvc,
        ExitReason::Smc,
        ExitReason::SysReg,
        ExitReason::Wfx,
        ExitReason::Irq,
        ExitReason::Fiq,
        ExitReason::SError,
        ExitReason::GuestFault,
        ExitReason::Undefined,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Mmio => "mmio",
            ExitReason::MmioUndecodable => "mmio-undecodable",
            ExitReason::Hvc => "hvc",
            ExitReason::Smc => "smc",
            ExitReason::SysReg => "sysreg",
            ExitReason::Wfx => "wfx",
            ExitReason::Irq => "irq",
            ExitReason::Fiq => "fiq",
            ExitReason::SError => "serror",
            ExitReason::GuestFault => "guest-fault",
            ExitReason::Undefined => "undef",
        }
    }

    /// The reason for a decoded exit.
    pub fn of(exit: &Exit) -> Self {
        match exit {
            Exit::Mmio(_) => ExitReason::Mmio,
            Exit::MmioUndecodable { .. } => ExitReason::MmioUndecodable,
            Exit::Hvc { .. } => ExitReason::Hvc,
            Exit::Smc { .. } => ExitReason::Smc,
            Exit::SysReg { .. } => ExitReason::SysReg,
            Exit::Wfx { .. } => ExitReason::Wfx,
            Exit::Irq => ExitReason::Irq,
            Exit::Fiq => ExitReason::Fiq,
            Exit::SError { .. } => ExitReason::SError,
            Exit::GuestFault { .. } => ExitReason::GuestFault,
            Exit::Undefined { .. } => ExitReason::Undefined,
        }
    }
}

/// Kinds of interrupts injected, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectKind {
    /// SGIs between vCPUs.
    Sgi,
    /// Timer PPIs, linked to the physical ones.
    TimerPpi,
    /// The virtual UART's SPI.
    UartSpi,
    /// A passed-through device's SPI, linked to the physical one.
    PassthroughSpi,
    /// A passed-through PCI function's MSI: a physical LPI made an event of the VM's ITS.
    Msi,
}

/// The most system-register encodings a vCPU's trap counters keep by name.
pub const MAX_SYSREG_KEYS: usize = 64;

/// A vCPU's exits by reason, indexed like [`ExitReason::ALL`], counted without a lock (every
/// exit counts one): only the vCPU's own CPU adds, with a load and a store (no atomic
/// read-modify-write); anybody reads.
#[derive(Debug)]
pub struct ExitCounts([AtomicU64; ExitReason::ALL.len()]);

impl ExitCounts {
    /// All zero.
    pub const fn new() -> Self {
        ExitCounts([const { AtomicU64::new(0) }; ExitReason::ALL.len()])
    }

    /// One more exit of reason `r` (the vCPU's own CPU only).
    #[inline]
    pub fn add(&self, r: ExitReason) {
        let c = &self.0[r as usize];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Exits of one reason.
    pub fn count(&self, r: ExitReason) -> u64 {
        self.0[r as usize].load(Ordering::Relaxed)
    }

    /// Exits of the reason of index `index` in [`ExitReason::ALL`], if there is one.
    pub fn by_index(&self, index: u64) -> Option<u64> {
        let c = self.0.get(usize::try_from(index).ok()?)?;
        Some(c.load(Ordering::Relaxed))
    }

    /// Total exits.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for ExitCounts {
    fn default() -> Self {
        Self::new()
    }
}

/// A vCPU's trapped system registers by encoding, counted without a lock (a trapped SGI
/// register write is an exit of its own): only the vCPU's own CPU adds, anybody reads. The
/// first [`MAX_SYSREG_KEYS`] encodings seen keep their own count, found by open addressing from
/// the encoding's hash like a [`CountTable`]; traps of encodings beyond those are counted in
/// [`SysRegCounts::other`] (a guest that walks the IMPLEMENTATION DEFINED space, thousands of
/// encodings, grows nothing). A slot's count is written before its key is published (Release),
/// so a reader that sees the key sees its count.
#[derive(Debug)]
pub struct SysRegCounts {
    /// The encoding plus one (0: a free slot).
    keys: [AtomicU32; MAX_SYSREG_KEYS],
    counts: [AtomicU64; MAX_SYSREG_KEYS],
    other: AtomicU64,
}

impl SysRegCounts {
    /// Nothing counted.
    pub const fn new() -> Self {
        SysRegCounts {
            keys: [const { AtomicU32::new(0) }; MAX_SYSREG_KEYS],
            counts: [const { AtomicU64::new(0) }; MAX_SYSREG_KEYS],
            other: AtomicU64::new(0),
        }
    }

    /// One more trap of `id` (the vCPU's own CPU only).
    #[inline]
    pub fn add(&self, id: SysRegId) {
        self.add_n(id, 1);
    }

    /// `n` more traps of `id` (the vCPU's own CPU only).
    pub fn add_n(&self, id: SysRegId, n: u64) {
        let key = u32::from(id.raw()) + 1;
        let start = id.slot_hash() % MAX_SYSREG_KEYS;
        for k in 0..MAX_SYSREG_KEYS {
            let i = (start + k) % MAX_SYSREG_KEYS;
            let have = self.keys[i].load(Ordering::Relaxed);
            if have == key {
                let c = &self.counts[i];
                c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
                return;
            }
            if have == 0 {
                self.counts[i].store(n, Ordering::Relaxed);
                self.keys[i].store(key, Ordering::Release);
                return;
            }
        }
        let o = &self.other;
        o.store(o.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// The traps of `id` (0 if none, or if it did not get a slot).
    pub fn get(&self, id: SysRegId) -> u64 {
        self.iter().find(|&(k, _)| k == id).map_or(0, |(_, c)| c)
    }

    /// The encodings kept and their counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (SysRegId, u64)> + '_ {
        self.keys.iter().zip(&self.counts).filter_map(|(k, c)| {
            let key = k.load(Ordering::Acquire);
            let raw = u16::try_from(key.checked_sub(1)?).ok()?;
            Some((SysRegId::from_raw(raw), c.load(Ordering::Relaxed)))
        })
    }

    /// Encodings kept.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if no trap was counted under its encoding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Traps of encodings that found the table full.
    pub fn other(&self) -> u64 {
        self.other.load(Ordering::Relaxed)
    }
}

impl Default for SysRegCounts {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-vCPU counters besides the exits and the trapped registers.
#[derive(Debug, Clone, Default)]
pub struct VcpuStats {
    /// Maintenance interrupts taken.
    pub maintenance: u64,
    /// Kicks (physical SGIs) received.
    pub kicks: u64,
}

/// Keys the MMIO counter table keeps.
pub const MMIO_COUNTER_SLOTS: usize = 64;

/// An MMIO counter's key: (device, register group), both `'static` names compared by address
/// (one name that exists at two addresses gets two slots, summed by [`MmioCounters::by_name`]).
#[derive(Debug, Clone, Copy)]
pub struct MmioKey(pub &'static str, pub &'static str);

impl PartialEq for MmioKey {
    fn eq(&self, o: &Self) -> bool {
        core::ptr::eq(self.0, o.0) && core::ptr::eq(self.1, o.1)
    }
}

impl Eq for MmioKey {}

impl CountKey for MmioKey {
    fn slot_hash(&self) -> usize {
        let k = (self.0.as_ptr() as usize) ^ (self.1.as_ptr() as usize).rotate_left(7);
        k ^ (k >> 7) ^ (k >> 13)
    }
}

impl CountKey for SysRegId {
    fn slot_hash(&self) -> usize {
        let r = self.raw() as usize;
        r ^ (r >> 5)
    }
}

/// MMIO accesses by (device, register group).
pub type MmioCounters = CountTable<MmioKey, MMIO_COUNTER_SLOTS>;

impl MmioCounters {
    /// The counts by (device, group) name, in name order (a fixed list: no allocation; the
    /// table has no more distinct names than slots).
    pub fn by_name(
        &self,
    ) -> heapless::Vec<((&'static str, &'static str), u64), MMIO_COUNTER_SLOTS> {
        let mut out: heapless::Vec<_, MMIO_COUNTER_SLOTS> = heapless::Vec::new();
        for (MmioKey(d, g), c) in self.iter() {
            match out.iter_mut().find(|(k, _)| *k == (d, g)) {
                Some((_, n)) => *n += c,
                None => {
                    let _ = out.push(((d, g), c));
                }
            }
        }
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// The count of one (device, group) name.
    pub fn count_of(&self, dev: &str, group: &str) -> u64 {
        self.iter()
            .filter(|(MmioKey(d, g), _)| *d == dev && *g == group)
            .map(|(_, c)| c)
            .sum()
    }
}

/// Per-VM counters.
#[derive(Debug, Default)]
pub struct VmStats {
    /// MMIO accesses by (device, register group).
    pub mmio: Mutex<MmioCounters>,
    /// Interrupts injected: SGI, timer PPI, UART SPI, passthrough SPI, MSI.
    pub injected: [AtomicU64; 5],
    /// Guest accesses aborted (unowned address, undecodable access).
    pub aborts: AtomicU64,
    /// Passed-through SPIs taken on a CPU other than that of the vCPU they were for (each
    /// cost that vCPU a kick): the physical route lagged the guest's.
    pub passthrough_remote: AtomicU64,
}

impl VmStats {
    /// Counts one injection.
    pub fn inject(&self, kind: InjectKind) {
        let i = match kind {
            InjectKind::Sgi => 0,
            InjectKind::TimerPpi => 1,
            InjectKind::UartSpi => 2,
            InjectKind::PassthroughSpi => 3,
            InjectKind::Msi => 4,
        };
        self.injected[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// A vCPU's power state and what to start it with (PSCI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuPower {
    /// On, off, or on-pending (CPU_ON accepted, not yet running).
    pub state: PowerState,
    /// Entry point and x0 for the next start.
    pub boot: Option<(u64, u64)>,
}

/// One vCPU slot of a VM.
#[derive(Debug)]
pub struct VcpuSlot {
    /// Power state and boot arguments.
    pub power: Mutex<VcpuPower>,
    /// The physical CPU (logical number) this vCPU is pinned to.
    pub pcpu: usize,
    /// Exits by reason.
    pub exits: ExitCounts,
    /// Trapped system registers by encoding.
    pub sysregs: SysRegCounts,
    /// The other counters.
    pub stats: Mutex<VcpuStats>,
}

/// A VM's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VmState {
    /// Running (or about to).
    Running = 0,
    /// SYSTEM_OFF: every vCPU stops.
    Stopping = 1,
    /// SYSTEM_RESET: every vCPU stops, then the VM restarts.
    Resetting = 2,
}

/// A VM.
#[derive(Debug)]
pub struct Vm {
    /// Index among the hypervisor's VMs (also its VMID - 1).
    pub id: usize,
    /// Its configuration.
    pub config: VmConfig,
    /// Its guest-physical memory map.
    pub layout: VmLayout,
    /// The virtual GIC. Its lock counts its releases: a vCPU whose exit changed nothing
    /// enters again without taking it when nobody held it since its last flush (the run loop,
    /// `vgic::cpu_if::FoldSkip`).
    pub vgic: VersionedMutex<Vgic>,
    /// The virtual UART.
    pub uart: Mutex<Pl011>,
    /// Console input waiting for room in the UART's receive FIFO.
    pub console_in: Mutex<VecDeque<u8>>,
    /// MMIO routing.
    pub bus: MmioBus<Device>,
    /// vCPUs.
    pub vcpus: Vec<VcpuSlot>,
    /// Counters.
    pub stats: VmStats,
    state: AtomicU8,
    /// What the guest may see of the CPU's features.
    pub features: FeaturePolicy,
    /// The events of the PCI devices it owns are injected directly (GICv4 vLPIs).
    pub direct_lpis: bool,
}

/// What the hardware shell must do after [`Vm::handle_exit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go back into the guest (registers already updated).
    Resume,
    /// Inject an UNDEF (unknown reason) at the current PC.
    InjectUndef,
    /// Inject a synchronous external abort for the faulting access (an instruction abort if
    /// the exit was an instruction fetch, else a data abort; FAR is the guest's virtual
    /// address from FAR_EL2).
    InjectAbort {
        /// Whether the access was a write.
        write: bool,
    },
    /// Take the physical interrupt(s) that caused the exit.
    PhysIrq,
    /// This vCPU powers off (PSCI CPU_OFF).
    CpuOff,
    /// This vCPU restarts at `entry` with x0 = `context` (CPU_SUSPEND powerdown).
    Restart {
        /// Entry point.
        entry: u64,
        /// x0.
        context: u64,
    },
    /// A vCPU was powered on: wake its physical CPU; then resume.
    Wake(usize),
    /// The VM stops (SYSTEM_OFF).
    VmOff,
    /// The VM restarts (SYSTEM_RESET).
    VmReset,
}

/// What an exit may need from the hardware.
pub trait ExitHw {
    /// The hardware value of an ID register.
    fn read_id_reg(&mut self, id: SysRegId) -> u64;
    /// Kicks the vCPUs in `mask` (bit n = vCPU n of `vm`) that are running on other CPUs.
    fn kick(&mut self, vm: &Vm, mask: u64);
    /// Writes the guest's console output.
    fn console_out(&mut self, vm: &Vm, bytes: &[u8]);
    /// The RAM of the VM whose vCPU exited, for the ITS's tables (read only through this).
    fn guest_ram(&self) -> &dyn crate::mm::GuestRam;
    /// Does the physical-ITS work the VM's ITS recorded for devices it owns (no VM lock held).
    fn its_phys(&mut self, vm: &Vm, ops: &[crate::vgic::its::PhysItsOp]);
}

/// Why a VM could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    /// Two devices of the memory map overlap (the layout check should have caught it).
    Bus(String),
}

impl core::fmt::Display for VmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VmError::Bus(e) => write!(f, "memory map: {e}"),
        }
    }
}

/// The hardware facts a VM is built with.
#[derive(Debug, Clone, Copy)]
pub struct VmHost {
    /// List registers of the virtual CPU interface.
    pub lr_count: usize,
    /// Its priority bits.
    pub pri_bits: u8,
    /// The physical CPU each vCPU is pinned to.
    pub first_pcpu: usize,
    /// The host's list-register format.
    pub lr_format: crate::vgic::lr::LrFormat,
    /// The owned PCI devices' MSIs become virtual LPIs the hardware injects (a GICv4 host
    /// whose ITS exitless set up for it); else they exit and go through list registers.
    pub direct_lpis: bool,
}

/// A VM's vGIC in its reset state, at creation and at SYSTEM_RESET alike: passed-through SPIs
/// keep their number in the guest and are linked to their physical twins from the start
/// (`Vm::reset_devices` also puts their physical twins back: inactive, routed to vCPU 0).
fn reset_vgic(
    config: &VmConfig,
    lr_count: usize,
    pri_bits: u8,
    lr_format: crate::vgic::lr::LrFormat,
    direct_lpis: bool,
) -> Vgic {
    let mut vgic = Vgic::new(&VgicConfig {
        version: config.gic,
        vcpus: config.vcpus,
        spis: VM_SPIS,
        lr_count,
        pri_bits,
    });
    vgic.set_lr_format(lr_format);
    if config.its == Some(true) {
        vgic.attach_its(crate::vgic::its::ItsConfig::new(config.vcpus));
        if config.pci
            && let Some(its) = vgic.its_mut()
        {
            // Every requester ID of the bridge's segment but 0 (the bridge itself, and what
            // QEMU's CPUs write to GITS_TRANSLATER carries): their MSIs reach the physical ITS.
            its.set_owned(1..0x1_0000, direct_lpis);
        }
    }
    for dev in &config.passthrough {
        for &irq in &dev.irqs {
            vgic.link_spi(IntId(irq), irq);
        }
    }
    vgic
}

impl Vm {
    /// Builds VM `id` from its configuration. Its vCPU 0 is on-pending with `boot` (entry, x0);
    /// the others are off until the guest starts them with PSCI.
    pub fn new(
        id: usize,
        config: VmConfig,
        host: &VmHost,
        boot: (u64, u64),
    ) -> Result<Vm, VmError> {
        let layout = config.layout;
        let direct_lpis = host.direct_lpis && config.pci;
        let vgic = reset_vgic(
            &config,
            host.lr_count,
            host.pri_bits,
            host.lr_format,
            direct_lpis,
        );
        let mut bus = MmioBus::new();
        let bus_err = |e: super::mmio::BusError| VmError::Bus(alloc::format!("{e}"));
        bus.insert(layout.gicd_range(), Device::Gicd, "GICD")
            .map_err(bus_err)?;
        if config.gic == GicVersion::V3 {
            bus.insert(layout.gicr_range(config.vcpus), Device::Gicr, "GICR")
                .map_err(bus_err)?;
            if vgic.its().is_some() {
                bus.insert(layout.its_range(), Device::Its, "GITS")
                    .map_err(bus_err)?;
            }
        } else {
            bus.insert(layout.gicc_dir_range(), Device::GiccDir, "GICC_DIR")
                .map_err(bus_err)?;
        }
        bus.insert(layout.uart_range(), Device::Uart, "PL011")
            .map_err(bus_err)?;
        let vcpus = (0..config.vcpus)
            .map(|n| VcpuSlot {
                power: Mutex::new(VcpuPower {
                    state: if n == 0 {
                        PowerState::OnPending
                    } else {
                        PowerState::Off
                    },
                    boot: (n == 0).then_some(boot),
                }),
                pcpu: host.first_pcpu + n,
                exits: ExitCounts::new(),
                sysregs: SysRegCounts::new(),
                stats: Mutex::new(VcpuStats::default()),
            })
            .collect();
        let features = FeaturePolicy {
            gic_v3: config.gic == GicVersion::V3,
        };
        Ok(Vm {
            id,
            config,
            layout,
            vgic: VersionedMutex::new(vgic),
            uart: Mutex::new(Pl011::new()),
            console_in: Mutex::new(VecDeque::with_capacity(CONSOLE_INPUT_QUEUE)),
            bus,
            vcpus,
            stats: VmStats::default(),
            state: AtomicU8::new(VmState::Running as u8),
            features,
            direct_lpis,
        })
    }

    /// Puts the vGIC and the UART back in their reset state (SYSTEM_RESET; every vCPU is off).
    pub fn reset_devices(&self) {
        let (lr_count, pri_bits, format) = {
            let g = self.vgic.lock();
            (g.lr_count(), g.pri_bits(), g.lr_format())
        };
        let mut vgic = reset_vgic(&self.config, lr_count, pri_bits, format, self.direct_lpis);
        vgic.reset_linked_spis();
        *self.vgic.lock() = vgic;
        *self.uart.lock() = Pl011::new();
        self.console_in.lock().clear();
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The VM's state.
    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            0 => VmState::Running,
            1 => VmState::Stopping,
            _ => VmState::Resetting,
        }
    }

    /// Moves the VM to `s` (stopping wins over resetting).
    pub fn set_state(&self, s: VmState) {
        if s == VmState::Resetting && self.state() == VmState::Stopping {
            return;
        }
        self.state.store(s as u8, Ordering::Release);
    }

    /// Console input for this VM: queued (up to [`CONSOLE_INPUT_QUEUE`] bytes, the rest
    /// dropped) and moved into the UART's receive FIFO as the guest makes room.
    pub fn console_input(&self, bytes: &[u8], hw: &mut impl ExitHw) {
        {
            let mut q = self.console_in.lock();
            for &b in bytes {
                if q.len() < CONSOLE_INPUT_QUEUE {
                    q.push_back(b);
                }
            }
        }
        self.refill_uart();
        self.sync_uart_irq(hw);
    }

    /// Moves queued console input into the UART's receive FIFO while it has room.
    fn refill_uart(&self) {
        let mut q = self.console_in.lock();
        if q.is_empty() {
            return;
        }
        let mut uart = self.uart.lock();
        while let Some(&b) = q.front() {
            if !uart.receive(b) {
                break;
            }
            q.pop_front();
        }
    }

    /// The virtual UART's interrupt, raised or lowered to match its output line.
    pub fn sync_uart_irq(&self, hw: &mut impl ExitHw) {
        let level = self.uart.lock().irq_level();
        let id = IntId(self.layout.uart_intid);
        let mut vgic = self.vgic.lock();
        let before = vgic.irq(0, id).is_some_and(|i| i.line_level);
        vgic.set_line_level(0, id, level);
        let kicks = vgic.take_kicks();
        drop(vgic);
        if level && !before {
            self.stats.inject(InjectKind::UartSpi);
        }
        hw.kick(self, kicks);
    }

    /// Handles one exit of vCPU `vcpu` whose registers are `regs`.
    pub fn handle_exit(
        &self,
        vcpu: usize,
        regs: &mut GuestRegs,
        exit: Exit,
        hw: &mut impl ExitHw,
    ) -> Outcome {
        if let Some(slot) = self.vcpus.get(vcpu) {
            // The declaration order is the counter order (ALL; a host test checks it).
            slot.exits.add(ExitReason::of(&exit));
            if let Exit::SysReg { id, .. } = exit {
                slot.sysregs.add(id);
            }
        }
        match exit {
            Exit::Mmio(access) => self.mmio(vcpu, regs, &access, hw),
            Exit::MmioUndecodable { ipa } => {
                self.report_abort(format_args!(
                    "vCPU {vcpu}: an access the syndrome does not describe (ISV=0, e.g. a load \
                     or store pair) at IPA {ipa:#x}, pc {:#x}",
                    regs.pc
                ));
                Outcome::InjectAbort { write: false }
            }
            Exit::Hvc { .. } => self.smccc(vcpu, regs, hw),
            Exit::Smc { .. } => {
                // A trapped SMC returns to the SMC itself (ELR points at it); SMC64 is 4 bytes.
                regs.skip_instruction(4);
                self.smccc(vcpu, regs, hw)
            }
            Exit::SysReg { id, rt, write } => self.sysreg(vcpu, regs, id, rt, write, hw),
            Exit::Wfx { instr_len, .. } => {
                regs.skip_instruction(instr_len);
                Outcome::Resume
            }
            Exit::Irq | Exit::Fiq => Outcome::PhysIrq,
            Exit::SError { esr } => {
                log::warn!(
                    "VM {} vCPU {vcpu}: SError (ESR {esr:#x}): stopping the VM",
                    self.name()
                );
                self.set_state(VmState::Stopping);
                Outcome::VmOff
            }
            Exit::GuestFault { ipa, write, fsc } => {
                self.report_abort(format_args!(
                    "vCPU {vcpu}: stage-2 {fsc} at IPA {ipa:#x}, pc {:#x}",
                    regs.pc
                ));
                Outcome::InjectAbort { write }
            }
            Exit::Undefined { ec } => {
                log::debug!(
                    "VM {} vCPU {vcpu}: exception class {ec:#x} at pc {:#x}: UNDEF",
                    self.name(),
                    regs.pc
                );
                Outcome::InjectUndef
            }
        }
    }

    /// Counts an aborted guest access and logs it, rate-limited: the 1st, 2nd, 4th, 8th... of
    /// each VM (a misbehaving guest cannot flood the console).
    fn report_abort(&self, what: core::fmt::Arguments<'_>) {
        let n = self.stats.aborts.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            log::warn!(
                "VM '{}': {what}: the guest gets an abort ({n} so far)",
                self.name()
            );
        }
    }

    fn mmio(
        &self,
        vcpu: usize,
        regs: &mut GuestRegs,
        a: &MmioAccess,
        hw: &mut impl ExitHw,
    ) -> Outcome {
        let Some((dev, offset, _)) = self.bus.find(a.ipa) else {
            self.report_abort(format_args!(
                "vCPU {vcpu}: {}-byte {} at IPA {:#x}, which nothing owns, pc {:#x}",
                a.width,
                if a.write { "write" } else { "read" },
                a.ipa,
                regs.pc
            ));
            return Outcome::InjectAbort { write: a.write };
        };
        let value = a.write.then(|| a.write_value(regs.reg(a.reg)));
        let (raw, group) = match dev {
            Device::Gicd | Device::Gicr => {
                let mut vgic = self.vgic.lock();
                let out = match (dev, self.config.gic) {
                    (Device::Gicd, GicVersion::V3) => {
                        vgic.gicd_access(vcpu, offset, a.width, value)
                    }
                    (Device::Gicd, GicVersion::V2) => {
                        vgic.gicd_v2_access(vcpu, offset, a.width, value)
                    }
                    _ => vgic.gicr_access_lpi(vcpu, offset, a.width, value, hw.guest_ram()),
                };
                let kicks = vgic.take_kicks();
                drop(vgic);
                hw.kick(self, kicks);
                if out.group == "GICD_SGIR" && a.write {
                    self.stats.inject(InjectKind::Sgi);
                }
                (out.value, out.group)
            }
            Device::Its => {
                let mut vgic = self.vgic.lock();
                let ram = hw.guest_ram();
                let raw = match (vgic.its_mut(), value) {
                    (Some(its), Some(v)) => its.write(offset, a.width, v, ram).then_some(0),
                    (Some(its), None) => its.read(offset, a.width, ram),
                    (None, _) => None,
                };
                let kicks = vgic.take_kicks();
                let ops = vgic
                    .its_mut()
                    .map(|i| i.take_phys_ops())
                    .unwrap_or_default();
                drop(vgic);
                hw.kick(self, kicks);
                if !ops.is_empty() {
                    hw.its_phys(self, &ops);
                }
                match raw {
                    Some(v) => (v, crate::vgic::its::reg_name(offset)),
                    None => (0, "bad-access"),
                }
            }
            Device::GiccDir => {
                // GICC_DIR (EOImode=1 deactivation), 32-bit write-only; the rest of the page is
                // reserved: RAZ/WI. Applied to whichever vCPU holds the interrupt (rule 6).
                match value {
                    Some(v) if offset == 0 && a.width == 4 => {
                        let mut vgic = self.vgic.lock();
                        vgic.deactivate(vcpu, IntId(v as u32 & 0x3ff));
                        let kicks = vgic.take_kicks();
                        drop(vgic);
                        hw.kick(self, kicks);
                        (0, "DIR")
                    }
                    _ => (0, "other"),
                }
            }
            Device::Uart => {
                let v = {
                    let mut uart = self.uart.lock();
                    match value {
                        Some(v) => {
                            uart.mmio_write(offset, a.width, v);
                            0
                        }
                        None => uart.mmio_read(offset, a.width),
                    }
                };
                // Transmitted bytes go out in chunks, the UART lock dropped before each call
                // into the shell (lock order above).
                let mut out = [0u8; 64];
                loop {
                    let n = {
                        let mut uart = self.uart.lock();
                        let mut n = 0;
                        for (slot, b) in out.iter_mut().zip(uart.take_output()) {
                            *slot = b;
                            n += 1;
                        }
                        n
                    };
                    if n == 0 {
                        break;
                    }
                    hw.console_out(self, &out[..n]);
                }
                self.refill_uart();
                self.sync_uart_irq(hw);
                (v, if offset == 0 { "DR" } else { "other" })
            }
        };
        self.stats.mmio.lock().add(MmioKey(dev.name(), group));
        if !a.write {
            regs.set_reg(a.reg, a.read_result(raw));
        }
        regs.skip_instruction(a.instr_len);
        Outcome::Resume
    }

    fn smccc(&self, vcpu: usize, regs: &mut GuestRegs, hw: &mut impl ExitHw) -> Outcome {
        let call = [regs.x[0], regs.x[1], regs.x[2], regs.x[3]];
        match psci::handle(&call, vcpu, self) {
            PsciAction::Return(r) => {
                regs.x[..4].copy_from_slice(&r);
                Outcome::Resume
            }
            PsciAction::CpuOn {
                target,
                entry,
                context,
            } => {
                // Check and start under the target's power lock: of concurrent CPU_ONs of
                // one target exactly one sees it OFF and gets SUCCESS (KVM serialises them the
                // same way); the others get ALREADY_ON.
                let won = self.vcpus.get(target).is_some_and(|slot| {
                    let mut p = slot.power.lock();
                    let off = p.state == PowerState::Off;
                    if off {
                        *p = VcpuPower {
                            state: PowerState::OnPending,
                            boot: Some((entry, context)),
                        };
                    }
                    off
                });
                let _ = hw;
                if won {
                    regs.x[0] = psci::SUCCESS as u64;
                    Outcome::Wake(target)
                } else {
                    regs.x[0] = psci::ALREADY_ON as u64;
                    Outcome::Resume
                }
            }
            PsciAction::CpuOff => Outcome::CpuOff,
            PsciAction::Suspend {
                powerdown: Some((entry, context)),
            } => Outcome::Restart { entry, context },
            PsciAction::Suspend { powerdown: None } => {
                regs.x[0] = psci::SUCCESS as u64;
                Outcome::Resume
            }
            PsciAction::SystemOff => {
                self.set_state(VmState::Stopping);
                Outcome::VmOff
            }
            PsciAction::SystemReset => {
                self.set_state(VmState::Resetting);
                Outcome::VmReset
            }
            PsciAction::Vendor { function, .. } => {
                regs.x[0] = self.vendor_call(vcpu, function, regs);
                Outcome::Resume
            }
        }
    }

    /// Vendor-specific hypervisor services (exitless's own SMCCC range).
    fn vendor_call(&self, vcpu: usize, function: u32, regs: &mut GuestRegs) -> u64 {
        if function == psci::HYP_GET_EXIT_COUNTERS {
            // x1 = reason index: returns that counter of the calling vCPU in x1 (x0 = 0), or the
            // total when x1 is u64::MAX; unknown index: NOT_SUPPORTED.
            let which = regs.x[1];
            let v = match self.vcpus.get(vcpu) {
                Some(slot) if which == u64::MAX => Some(slot.exits.total()),
                Some(slot) => slot.exits.by_index(which),
                None => (which == u64::MAX || which < ExitReason::ALL.len() as u64).then_some(0),
            };
            return match v {
                Some(v) => {
                    regs.x[1] = v;
                    0
                }
                None => psci::NOT_SUPPORTED as u64,
            };
        }
        psci::NOT_SUPPORTED as u64
    }

    fn sysreg(
        &self,
        vcpu: usize,
        regs: &mut GuestRegs,
        id: SysRegId,
        rt: u8,
        write: bool,
        hw: &mut impl ExitHw,
    ) -> Outcome {
        if id == ICC_DIR_EL1 && write {
            let intid = regs.reg(rt) as u32 & 0xff_ffff;
            let mut vgic = self.vgic.lock();
            vgic.deactivate(vcpu, IntId(intid));
            let kicks = vgic.take_kicks();
            drop(vgic);
            hw.kick(self, kicks);
            // MSR/MRS trap only from AArch64 (EC 0x18): 4 bytes.
            regs.skip_instruction(4);
            return Outcome::Resume;
        }
        let action = sysreg::classify(id, write);
        let value = match action {
            SysRegAction::ReadIdReg(id) => {
                let hwv = hw.read_id_reg(id);
                sysreg::sanitize_id(id, hwv, &self.features)
            }
            SysRegAction::Sgi1r | SysRegAction::Asgi1r | SysRegAction::Sgi0r => {
                let group1 = matches!(action, SysRegAction::Sgi1r);
                let v = regs.reg(rt);
                let mut vgic = self.vgic.lock();
                vgic.sgi_register_write(vcpu, v, group1);
                let kicks = vgic.take_kicks();
                drop(vgic);
                self.stats.inject(InjectKind::Sgi);
                hw.kick(self, kicks);
                0
            }
            SysRegAction::ReadAsZero | SysRegAction::Ignore => 0,
            SysRegAction::Undefined => {
                log::debug!(
                    "VM {} vCPU {vcpu}: {} {id:?} at pc {:#x}: UNDEF",
                    self.name(),
                    if write { "write to" } else { "read of" },
                    regs.pc
                );
                return Outcome::InjectUndef;
            }
        };
        if !write {
            regs.set_reg(rt, value);
        }
        regs.skip_instruction(4);
        Outcome::Resume
    }
}

impl PsciVm for Vm {
    fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    fn mpidr_to_vcpu(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & crate::platform::MPIDR_AFFINITY_MASK;
        (aff < self.vcpus.len() as u64).then_some(aff as usize)
    }

    fn power_state(&self, vcpu: usize) -> PowerState {
        self.vcpus
            .get(vcpu)
            .map_or(PowerState::Off, |v| v.power.lock().state)
    }

    /// A CPU_ON or CPU_SUSPEND entry point must lie in the VM's RAM: anything else would start
    /// the vCPU on an abort (INVALID_ADDRESS instead, as KVM and TF-A answer).
    fn entry_point_valid(&self, entry: u64) -> bool {
        self.layout.ram.start <= entry && entry < self.layout.ram.end
    }
}

#[cfg(test)]
mod tests;
