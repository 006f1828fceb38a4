//! The hypervisor proper, hardware side: from the boot loader's initrd (the VM bundle) to VMs
//! running on their physical CPUs.
//!
//! * [`start`] (boot CPU): reads the bundle, checks the configuration against the machine,
//!   creates each VM (memory, stage-2 tables, images, device tree, vGIC), pins vCPUs to
//!   physical CPUs (VM 0's vCPUs on CPUs 0.., the next VM's after them), releases the other CPUs
//!   and runs its own vCPU.
//! * [`run`]: the per-CPU loop: wait until the pinned vCPU is powered on (PSCI), run it, apply
//!   what each exit asks, stop or reset its VM when the guest says so.
//! * [`irq`]: physical interrupts taken while a guest runs.
//! * [`console`]: guest console output, console input and its command key.
//! * [`fatal`]: the fatal-error policy (stop one VM or power off) and its test fault.
//!
//! Every decision here is the core's (`exitless_core::hv`: placement, passthrough ownership,
//! interrupt classification, kicks, power-on, stopping and resetting a VM, console input,
//! the counters report), tested on the host; this module implements the core's small traits
//! with the GIC, the timer, the UART and guest memory.
//!
//! A user's mistake (no bundle, a bad configuration, a missing image, too little memory) ends
//! the boot with one line that names it and what to do.

pub mod console;
pub mod fatal;
pub mod irq;
pub mod memory;
pub mod run;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use exitless_core::util::lock::Mutex;
use spin::Once;

use crate::arch::{self, timer};
use crate::drivers::gic::{self, CpuTarget};
use exitless_core::hv::{self as policy, irq::HostIrqs};
use exitless_core::platform::{GicInfo, GicVersion, MAX_CPUS, PlatformInfo};
use exitless_core::vm::bundle::Bundle;
use exitless_core::vm::config::{Config, HostLimits};
use exitless_core::vm::fdt::{GuestDt, TimerPpis};
use exitless_core::vm::image::{self, DTB_MAX_SIZE, LoadPlan};
use exitless_core::vm::machine::{Vm, VmHost};
use exitless_core::vm::traps::{self, CpuFeatures};
use memory::GuestMemory;

/// What a physical CPU knows about itself and its vCPU.
pub struct Pcpu {
    /// How to send it an SGI.
    pub target: Once<CpuTarget>,
    /// The (VM, vCPU) pinned to it.
    pub vcpu: Once<Option<(usize, usize)>>,
}

/// Every physical CPU, by logical number.
pub static PCPUS: [Pcpu; MAX_CPUS] = [const {
    Pcpu {
        target: Once::new(),
        vcpu: Once::new(),
    }
}; MAX_CPUS];

/// A VM and what the hardware side keeps for it.
pub struct VmRuntime {
    /// The VM model.
    pub vm: Vm,
    /// Its memory and stage-2 tables.
    pub mem: Mutex<GuestMemory>,
    /// The images, for SYSTEM_RESET (they stay in the bundle, in reserved memory).
    pub kernel: &'static [u8],
    /// The initrd image.
    pub initrd: Option<&'static [u8]>,
    /// Where things go in guest RAM.
    pub plan: LoadPlan,
    /// The guest device tree.
    pub dtb: Vec<u8>,
    /// The EL2 controls its vCPUs run under (VMPIDR is set per vCPU).
    pub control: arch::vcpu::GuestControl,
    /// Its RAM, read without the memory lock (the ITS's tables).
    pub ram: memory::RamWindow,
    /// Set once every vCPU has stopped after SYSTEM_OFF.
    pub stopped: AtomicBool,
}

/// The VMs, once created.
pub static VMS: Once<Vec<VmRuntime>> = Once::new();
/// Physical SPIs passed through, and the VM each belongs to.
pub static PASSTHROUGH_IRQS: Once<alloc::collections::BTreeMap<u32, usize>> = Once::new();
static STARTED: AtomicBool = AtomicBool::new(false);
static PLATFORM: Once<HostIrqs> = Once::new();

/// The platform facts the runtime needs after boot: the list registers and the physical
/// interrupts exitless itself uses.
pub fn hw() -> &'static HostIrqs {
    PLATFORM.get().expect("hv::start ran")
}

/// Records how to reach the calling CPU (every CPU calls it once, at bring-up).
pub fn register_cpu(cpu: usize) {
    if let (Some(slot), Some(g)) = (PCPUS.get(cpu), gic::get()) {
        slot.target.call_once(|| g.this_cpu_target());
    }
}

/// A secondary CPU waits here until the boot CPU has created the VMs, then runs its vCPU.
pub fn secondary_wait(cpu: usize) -> ! {
    while !STARTED.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfe();
    }
    run::pcpu_main(cpu)
}

/// Ends the boot because of a user's mistake with VMs: one line, then power off.
fn refuse(args: core::fmt::Arguments<'_>) -> ! {
    log::error!("{args}");
    crate::machine::power::power_off()
}

/// Creates the VMs described by the bundle in the initrd and runs them. Never returns.
pub fn start(
    info: &PlatformInfo<'_>,
    online: usize,
    test_fatal: Option<(&str, exitless_core::util::cmdline::FatalTest)>,
) -> ! {
    let facts = gic::get().map(|g| g.facts()).expect("GIC initialised");
    let irqs = HostIrqs::from_platform(info, &facts)
        .unwrap_or_else(|| refuse(format_args!("the device tree has no timer")));
    PLATFORM.call_once(|| irqs);
    let Some(initrd) = info.initrd else {
        refuse(format_args!(
            "no VM bundle: the boot loader loaded no initrd. Build one with \
             scripts/mkbundle.py (`make run` does it) and pass it as the initrd: QEMU \
             `-initrd bundle.cpio`; U-Boot `booti <image addr> <bundle addr>:<bundle size in hex> \
             <fdt addr>` (the bundle is the second argument, not `-`); the Raspberry Pi firmware \
             `initramfs bundle.cpio followkernel` in config.txt"
        ));
    };
    // SAFETY: the device tree's /chosen names this range as the initrd the boot loader loaded;
    // it is reserved (never allocated), mapped read-only at EL2, and never written, so a shared
    // 'static slice of it is sound.
    let blob: &'static [u8] =
        unsafe { core::slice::from_raw_parts(initrd.start as *const u8, initrd.size() as usize) };
    let bundle = Bundle::parse(blob).unwrap_or_else(|e| {
        refuse(format_args!(
            "the initrd is not a valid exitless VM bundle: {e}"
        ))
    });
    let text = bundle.config().unwrap_or_else(|| {
        refuse(format_args!(
            "the VM bundle has no {} (build it with scripts/mkbundle.py)",
            exitless_core::vm::bundle::CONFIG_FILE
        ))
    });
    let config = Config::parse_bytes(text).unwrap_or_else(|e| {
        refuse(format_args!(
            "{}: {e}",
            exitless_core::vm::bundle::CONFIG_FILE
        ))
    });
    let (vtcr, ipa_bits) = memory::stage2_params();
    let free = crate::machine::heap::PHYS
        .lock()
        .as_ref()
        .map_or(0, |p| p.total_free());
    let owned = exitless_core::vm::config::host_regions(info);
    let limits = HostLimits {
        cpus: online,
        free_memory: free,
        gic: facts.version,
        gicv2_compat: matches!(&info.gic, Some(GicInfo::V3(g)) if g.v2_compat.is_some()),
        ipa_bits,
        owned: &owned,
        pci_bridge: info.pci.is_some(),
    };
    if let Err(e) = config
        .check(&limits)
        .and_then(|()| config.check_files(&bundle))
    {
        refuse(format_args!(
            "{}: {e}",
            exitless_core::vm::bundle::CONFIG_FILE
        ));
    }

    let features = CpuFeatures {
        pfr0: arch::vcpu::read_id_reg(exitless_core::trap::esr::SysRegId::new(3, 0, 0, 4, 0)),
        isar1: arch::vcpu::read_id_reg(exitless_core::trap::esr::SysRegId::new(3, 0, 0, 6, 1)),
        isar2: arch::vcpu::read_id_reg(exitless_core::trap::esr::SysRegId::new(3, 0, 0, 6, 2)),
        mmfr1: arch::vcpu::read_id_reg(exitless_core::trap::esr::SysRegId::new(3, 0, 0, 7, 1)),
    };
    // The VM that owns the PCIe bridge gets its ECAM and windows mapped 1:1 and its INTx SPIs
    // linked, as any passed-through device (the device tree node is the bridge's own).
    let mut config = config;
    if let Some(host) = &info.pci {
        for vc in config.vms.iter_mut().filter(|vc| vc.pci) {
            vc.passthrough.push(exitless_core::vm::config::Passthrough {
                name: "pcie".into(),
                mmio: host.mmio().collect(),
                irqs: host.intx_spis().to_vec(),
                compatible: Vec::new(),
            });
        }
    }
    let first_pcpus = policy::place_vcpus(config.vms.iter().map(|vc| vc.vcpus));
    let passthrough = policy::passthrough_map(&config.vms);
    let mut vms = Vec::new();
    for ((id, vc), first) in config.vms.into_iter().enumerate().zip(first_pcpus) {
        let name = vc.name.clone();
        let rt = create_vm(id, vc, &bundle, info, first, vtcr, ipa_bits, &features)
            .unwrap_or_else(|e| refuse(format_args!("VM '{name}': {e}")));
        for v in 0..rt.vm.vcpus.len() {
            PCPUS[first + v].vcpu.call_once(|| Some((id, v)));
        }
        vms.push(rt);
    }
    for p in &PCPUS {
        p.vcpu.call_once(|| None);
    }
    for rt in &vms {
        log::info!(
            "VM '{}': {} vCPUs on CPUs {}..{}, {} MiB at IPA {:#x} (host {:#x}), vGICv{}, kernel \
             at {:#x}, {}device tree at {:#x}",
            rt.vm.name(),
            rt.vm.vcpus.len(),
            rt.vm.vcpus[0].pcpu,
            rt.vm.vcpus[rt.vm.vcpus.len() - 1].pcpu,
            rt.vm.layout.ram.size() >> 20,
            rt.vm.layout.ram.start,
            rt.mem.lock().pa.start,
            if rt.vm.config.gic == GicVersion::V2 {
                2
            } else {
                3
            },
            rt.plan.entry,
            if rt.initrd.is_some() { "initrd, " } else { "" },
            rt.plan.dtb.start,
        );
    }
    // Passed-through SPIs: level-sensitive, delivered to the CPU of the VM's vCPU 0 (the guest's
    // routing moves them later), linked to the virtual SPI when they fire (irq.rs).
    if let Some(g) = gic::get() {
        for (&irq, &vm) in &passthrough {
            if let Some(target) = PCPUS[vms[vm].vm.vcpus[0].pcpu].target.get() {
                g.enable_spi(irq, *target, true);
            }
        }
    }
    PASSTHROUGH_IRQS.call_once(|| passthrough);
    if let Some((name, kind)) = test_fatal {
        match vms.iter().position(|rt| rt.vm.name() == name) {
            Some(id) => {
                log::warn!("exitless.test_fatal: VM '{name}' will break exitless on purpose");
                fatal::arm_test(id, kind);
            }
            None => log::warn!("exitless.test_fatal: no VM is named '{name}': ignored"),
        }
    }
    VMS.call_once(|| vms);
    fatal::install();
    console::init();
    crate::drivers::console::stop_waiting_for_uart();
    crate::machine::heap::mark_started();
    STARTED.store(true, Ordering::Release);
    arch::send_event();
    log::info!(
        "running {} VM(s); console input goes to '{}' (Ctrl-] h for the console commands)",
        VMS.get().map_or(0, Vec::len),
        console::focus_name()
    );
    run::pcpu_main(0)
}

#[allow(clippy::too_many_arguments)]
fn create_vm(
    id: usize,
    vc: exitless_core::vm::config::VmConfig,
    bundle: &Bundle<'static>,
    info: &PlatformInfo<'_>,
    first_pcpu: usize,
    vtcr: u64,
    ipa_bits: u8,
    features: &CpuFeatures,
) -> Result<VmRuntime, alloc::string::String> {
    use alloc::string::ToString;
    let kernel = bundle
        .file(&vc.kernel)
        .ok_or("kernel missing from the bundle")?;
    let initrd = match &vc.initrd {
        Some(n) => Some(bundle.file(n).ok_or("initrd missing from the bundle")?),
        None => None,
    };
    // A device passed through may do DMA into guest RAM: keep it where the bus can reach.
    let limit = if vc.passthrough.is_empty() && !vc.pci {
        None
    } else {
        info.dma_limit
    };
    let mut vc = vc;
    let mut mem = if vc.identity_ram {
        // IPA == PA: the RAM is wherever host memory is free, and the rest of the VM's map
        // (its vGIC, UART, the bridge's windows) must not sit there.
        let mem =
            GuestMemory::new_identity(vc.memory, ipa_bits, limit).map_err(|e| e.to_string())?;
        vc.layout.ram = mem.ipa;
        vc.layout.check(vc.vcpus, vc.gic, ipa_bits).map_err(|e| {
            alloc::format!(
                "identity_ram puts its RAM at the host's {:#x}..{:#x}, and then {e}: move \
                     the other regions in [vm.layout], or say identity_ram = false",
                mem.ipa.start,
                mem.ipa.end
            )
        })?;
        mem
    } else {
        GuestMemory::new(vc.layout.ram, ipa_bits, limit).map_err(|e| e.to_string())?
    };
    let plan = image::plan(
        vc.layout.ram,
        kernel,
        initrd.map(|i| i.len() as u64),
        DTB_MAX_SIZE,
    )
    .map_err(|e| e.to_string())?;
    let timer = info.timer.map_or(TimerPpis::default(), |t| TimerPpis {
        secure_phys: t.secure_phys.intid,
        phys: t.phys.intid,
        virt: t.virt.intid,
        hyp: t.hyp_phys.intid,
    });
    // An emulated ITS: as configured, else when the host's GIC has one.
    let host_its = matches!(&info.gic, Some(GicInfo::V3(g)) if !g.its.is_empty());
    vc.its = Some(vc.has_its(host_its));
    let dtb = exitless_core::vm::fdt::build(&GuestDt {
        name: &vc.name,
        vcpus: vc.vcpus,
        layout: &vc.layout,
        gic: vc.gic,
        bootargs: &vc.bootargs,
        initrd: plan.initrd,
        timer_ppis: timer,
        its: vc.its == Some(true),
        passthrough: &vc.passthrough,
        pci: info.pci.as_ref().filter(|_| vc.pci),
    })
    .map_err(|e| e.to_string())?;
    if vc.gic == GicVersion::V2 {
        let gicv = match &info.gic {
            Some(GicInfo::V2(g)) => g.gicv,
            Some(GicInfo::V3(g)) => g.v2_compat.map(|(_, _, v)| v),
            None => None,
        }
        .ok_or("vGICv2 needs the GIC's virtual CPU interface frame (GICV)")?;
        // The guest's GICC page is the hardware's GICV: IAR/EOIR/PMR without exits. Its
        // GICC_DIR page stays unmapped: an EOImode=1 DIR traps, so that it can deactivate an
        // interrupt in another vCPU's list register (vgic::cpu_if, rule 6).
        mem.map_device(vc.layout.gicc, gicv.start, 0x1000)
            .map_err(|e| e.to_string())?;
    }
    for p in &vc.passthrough {
        for r in &p.mmio {
            mem.map_device(r.start, r.start, r.size())
                .map_err(|e| e.to_string())?;
        }
    }
    let direct_lpis = vc.pci && vc.its == Some(true) && direct_msis(id, &vc, first_pcpu);
    let host = VmHost {
        lr_count: gic::get().map_or(4, |g| g.facts().lr_count as usize),
        pri_bits: gic::get().map_or(5, |g| g.facts().pri_bits),
        first_pcpu,
        lr_format: match host_gic_version() {
            GicVersion::V2 => exitless_core::vgic::lr::LrFormat::V2,
            GicVersion::V3 => exitless_core::vgic::lr::LrFormat::V3,
        },
        direct_lpis,
    };
    let vm = Vm::new(id, vc, &host, (plan.entry, plan.dtb.start)).map_err(|e| e.to_string())?;
    let vmid = (id + 1) as u64;
    let control = arch::vcpu::GuestControl {
        hcr: traps::guest_hcr(features),
        cptr: traps::guest_cptr(),
        mdcr: traps::guest_mdcr(arch::vcpu::pmu_counters()),
        cnthctl: traps::guest_cnthctl(),
        cntvoff: timer::ticks(),
        vttbr: vmid << 48 | mem.stage2.root(),
        vtcr,
        vmpidr: 0,
        vpidr: arch::vcpu::midr(),
    };
    let rt = VmRuntime {
        vm,
        ram: mem.window(),
        mem: Mutex::new(mem),
        kernel,
        initrd,
        plan,
        dtb,
        control,
        stopped: AtomicBool::new(false),
    };
    load_images(&rt)?;
    Ok(rt)
}

/// On a GICv4 host, gives VM `id` a vPE per vCPU (on the redistributor of the CPU it is pinned
/// to) so that the MSIs of the PCI devices it owns are injected directly; false, with the
/// reason in the log, when they stay emulated (one exit each).
fn direct_msis(id: usize, vc: &exitless_core::vm::config::VmConfig, first_pcpu: usize) -> bool {
    let Some(its) = crate::drivers::its::get().filter(|i| i.direct_ok()) else {
        return false;
    };
    if !gic::get().is_some_and(|g| g.facts().direct_injection) {
        return false;
    }
    let rdbases: Option<Vec<u64>> = (0..vc.vcpus)
        .map(|n| {
            PCPUS
                .get(first_pcpu + n)
                .and_then(|p| p.target.get())
                .and_then(|t| its.rdbase_of(exitless_core::gic::mpidr_to_gicr_affinity(t.mpidr)))
        })
        .collect();
    let made = match rdbases {
        Some(r) => its.create_vpes(id, &r),
        None => Err("a vCPU's CPU has no redistributor".into()),
    };
    match made {
        Ok(()) => {
            log::info!(
                "VM '{}': its PCI devices' MSIs are injected directly (GICv4: {} vPEs mapped)",
                vc.name,
                vc.vcpus
            );
            true
        }
        Err(e) => {
            log::warn!(
                "VM '{}': its PCI devices' MSIs stay emulated (one exit each): {e}",
                vc.name
            );
            false
        }
    }
}

/// Writes the kernel, initrd and device tree into guest RAM (VM start and SYSTEM_RESET).
pub fn load_images(rt: &VmRuntime) -> Result<(), &'static str> {
    let mem = rt.mem.lock();
    if !mem.load(rt.plan.kernel.start, rt.kernel) {
        return Err("the kernel does not fit in guest RAM");
    }
    if let (Some(data), Some(at)) = (rt.initrd, rt.plan.initrd)
        && !mem.load(at.start, data)
    {
        return Err("the initrd does not fit in guest RAM");
    }
    if !mem.load(rt.plan.dtb.start, &rt.dtb) {
        return Err("the device tree does not fit in guest RAM");
    }
    crate::arch::cache::invalidate_icache();
    Ok(())
}

/// The platform's GIC version.
pub fn host_gic_version() -> GicVersion {
    gic::get().map_or(GicVersion::V3, |g| g.facts().version)
}
