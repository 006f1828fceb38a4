//! The per-CPU run loop: each physical CPU runs the one vCPU pinned to it.
//!
//! ```text
//! loop:  wait (wfe) until the vCPU is powered on (boot, PSCI CPU_ON)
//!        load: EL2 controls, reset EL1 context, empty virtual CPU interface
//!        loop:  vGIC flush -> list registers (none when nothing changed: VgicSkip)
//!               enter the guest ........ guest runs, ACK/EOI/DIR/PMR without exits
//!               list registers -> vGIC fold (none when nothing was loaded: VgicSkip)
//!               decode the exit, handle it (vm::machine), apply the outcome
//!        put:   timers off, linked physical interrupts deactivated
//! ```
//!
//! Stopping a VM (SYSTEM_OFF, SYSTEM_RESET): the vCPU that asked marks the VM, kicks the other
//! vCPUs out of their guests, waits until they are all off, then prints the counters and powers
//! the machine off (last VM) or reloads the images and restarts vCPU 0.
//!
//! The decisions (when a vCPU starts, whom to kick, how a stop goes, where a linked interrupt
//! is routed) are the core's (`exitless_core::hv`); this file implements its traits ([`GicCpus`]
//! for `Cpus`, [`StopOnHw`] for `StopHw`) with the GIC, the timer and guest memory.

use core::sync::atomic::Ordering;

use super::memory::RamWindow;
use super::{PCPUS, VMS, VmRuntime, console, hw, irq};
use crate::arch::{self, timer};
use crate::drivers::gic;
use crate::machine::heap;
use exitless_core::hv::power::{self, StopEnd, StopHw};
use exitless_core::hv::{self as policy, Cpus};
use exitless_core::mm::GuestRam;
use exitless_core::vcpu::exit::{self, ExitKind};
use exitless_core::vcpu::inject::{self, El1Exception};
use exitless_core::vcpu::psci::PowerState;
use exitless_core::vcpu::regs::{ExitInfo, GuestRegs, reset_state};
use exitless_core::vgic::PhysOp;
use exitless_core::vgic::cpu_if::{CpuIfShadow, VgicSkip};
use exitless_core::vgic::irq::IntId;
use exitless_core::vgic::its::PhysItsOp;
use exitless_core::vm::machine::{ExitHw, Outcome, Vm, VmState};
use exitless_core::vm::traps;

/// How a vCPU's run ended.
enum RunEnd {
    /// PSCI CPU_OFF.
    CpuOff,
    /// Its VM is stopping or resetting (another vCPU finishes the job).
    VmStopping,
    /// This vCPU stopped or reset its VM and finished the job (power states already set).
    VmDone,
}

/// A physical CPU's life after boot: run its pinned vCPU, or idle.
pub fn pcpu_main(cpu: usize) -> ! {
    let g = gic::get().expect("GIC initialised");
    let h = hw();
    timer::host_event_stream();
    g.enable_private(policy::KICK_SGI);
    g.enable_private(h.maintenance);
    g.enable_private(h.vtimer);
    g.enable_private(h.ptimer);
    if cpu == 0 {
        console::enable_input(g);
    }
    let Some((vm_id, v)) = PCPUS[cpu].vcpu.get().copied().flatten() else {
        idle(cpu)
    };
    let rt = &VMS.get().expect("VMs created")[vm_id];
    loop {
        let (entry, x0) = wait_power_on(cpu, rt, v);
        match run_vcpu(cpu, rt, v, entry, x0) {
            RunEnd::CpuOff | RunEnd::VmStopping => power::set_power(&rt.vm, v, PowerState::Off),
            RunEnd::VmDone => {}
        }
    }
}

/// A CPU with no vCPU: waits for events forever (CPU 0 keeps serving the console).
fn idle(cpu: usize) -> ! {
    loop {
        idle_poll(cpu);
        idle_sleep(cpu);
    }
}

/// Waits until vCPU `v` is to be started; returns its entry point and x0.
fn wait_power_on(cpu: usize, rt: &VmRuntime, v: usize) -> (u64, u64) {
    loop {
        // Interrupts are taken before the check, never between it and the sleep: a kick taken
        // there would be gone, and the CPU would sleep through the CPU_ON it announced.
        idle_poll(cpu);
        if let Some(boot) = power::take_power_on(&rt.vm, v) {
            return boot;
        }
        idle_sleep(cpu);
    }
}

/// The work of a CPU that has nothing to run: takes the physical interrupts pending for it
/// (kick SGIs, a passed-through SPI or an LPI routed here, console input), moves console output
/// along, and runs the power-off watchdog.
fn idle_poll(cpu: usize) {
    irq::poll_host(cpu);
    if console::output_pending() {
        console::pump();
    }
    crate::machine::power::watchdog(cpu);
}

/// Sleeps until the next interrupt, after [`idle_poll`] and the caller's check. WFI costs
/// nothing (QEMU's TCG stops the CPU's thread; hardware may gate its clock): whatever gives
/// this CPU work sends it an interrupt (CPU_ON and a VM reset kick the vCPU's CPU,
/// `exitless_core::hv::kick`), and an interrupt that became pending after the check ends WFI
/// at once, even with IRQs masked. It waits in WFE instead (woken by the host's event stream
/// as well) while it has something to poll: on CPU 0, the console's CPU, console output waiting
/// for the UART or a console without an interrupt; on every CPU, a power-off under way (the
/// watchdog; the power-off wakes every CPU when it begins). The other idle CPUs leave console
/// output to CPU 0 and to the running vCPUs' exits: QEMU's TCG does not sleep on WFE, so three
/// idle CPUs polling a busy console cost more host time than the guest itself.
fn idle_sleep(cpu: usize) {
    if crate::machine::power::under_way()
        || (cpu == 0 && (console::output_pending() || hw().uart.is_none()))
    {
        aarch64_cpu::asm::wfe();
    } else {
        aarch64_cpu::asm::wfi();
    }
}

/// The hardware side of an exit's needs.
pub struct Hw {
    cpu: usize,
    ram: RamWindow,
}

impl Hw {
    /// The exit services of physical CPU `cpu` for the VM `rt`.
    pub fn new(cpu: usize, rt: &VmRuntime) -> Self {
        Hw { cpu, ram: rt.ram }
    }
}

impl ExitHw for Hw {
    fn read_id_reg(&mut self, id: exitless_core::trap::esr::SysRegId) -> u64 {
        arch::vcpu::read_id_reg(id)
    }

    fn kick(&mut self, vm: &Vm, mask: u64) {
        kick(self.cpu, vm, mask);
    }

    fn console_out(&mut self, vm: &Vm, bytes: &[u8]) {
        console::guest_output(vm, bytes);
    }

    fn guest_ram(&self) -> &dyn GuestRam {
        &self.ram
    }

    fn its_phys(&mut self, vm: &Vm, ops: &[PhysItsOp]) {
        let Some(its) = crate::drivers::its::get() else {
            log::warn!(
                "VM '{}' maps MSIs of a device it owns, but exitless drives no ITS: they do not \
                 arrive",
                vm.name()
            );
            return;
        };
        // The physical event goes to the collection of the CPU that runs the target vCPU.
        let icid = |v: usize| {
            vm.vcpus
                .get(v)
                .and_then(|s| PCPUS.get(s.pcpu))
                .and_then(|p| p.target.get())
                .and_then(|t| its.icid_of(exitless_core::gic::mpidr_to_gicr_affinity(t.mpidr)))
                .unwrap_or(0)
        };
        for &op in ops {
            log::debug!("VM {}: physical ITS: {op:?}", vm.name());
            if let Err(e) = its.apply(vm.id, op, icid) {
                log::warn!("VM '{}': {op:?}: {e}", vm.name());
            }
        }
    }
}

/// The physical CPUs as the core's policy reaches them: the kick SGI through the GIC, events
/// with SEV.
pub struct GicCpus;

impl Cpus for GicCpus {
    fn send_kick(&mut self, pcpu: usize) {
        if let (Some(g), Some(t)) = (gic::get(), PCPUS.get(pcpu).and_then(|p| p.target.get())) {
            g.send_sgi(*t, policy::KICK_SGI);
        }
    }

    fn send_event(&mut self) {
        arch::send_event();
    }
}

/// Makes the vCPUs in `mask` leave their guests (physical SGI) or their wait (event).
pub fn kick(from_cpu: usize, vm: &Vm, mask: u64) {
    policy::kick(vm, from_cpu, mask, &mut GicCpus);
}

fn run_vcpu(cpu: usize, rt: &VmRuntime, v: usize, entry: u64, x0: u64) -> RunEnd {
    let vm = &rt.vm;
    let g = gic::get().expect("GIC initialised");
    let lr_count = hw().lr_count;
    let mut ctl = rt.control;
    ctl.vmpidr = (v as u64) | 1 << 31;
    vm.vgic.lock().reset_vcpu(v);
    g.reset_virtual(lr_count);
    arch::vcpu::load_control(&ctl);
    arch::vcpu::restore_el1(&arch::vcpu::El1Context::reset());
    if vm.direct_lpis {
        load_vpe(vm, v);
    }
    let mut regs = reset_state(entry, x0);
    let mut shadow = CpuIfShadow::default();
    let mut skip = VgicSkip::new();
    let mut prev_used = 0;
    let mut hw_ops = Hw::new(cpu, rt);
    let timers = (hw().vtimer, hw().ptimer);
    log::debug!(
        "VM '{}' vCPU {v} starts at {entry:#x} (x0 = {x0:#x})",
        vm.name()
    );
    // From here until the vCPU leaves this CPU, this CPU is on the exit path (its loop runs
    // nothing but exits and entries): it allocates nothing, the heap counts what it does and
    // exitless prints the count at power-off.
    heap::exit_path(true);
    let end = loop {
        if vm.state() != VmState::Running {
            break RunEnd::VmStopping;
        }
        // Nobody held the vGIC's lock since this vCPU's last flush, and its exit needed no
        // fold: that flush's list registers (none) stand (`VgicSkip`).
        if skip.flush_needed(vm.vgic.version()) {
            let mut vgic = vm.vgic.lock();
            vgic.flush(v, &mut shadow);
            let kicks = vgic.take_kicks();
            let phys_work = vgic.has_phys(v);
            skip.flushed(&shadow, vgic.release_version());
            drop(vgic);
            kick(cpu, vm, kicks);
            // This vCPU's physical work: only its own CPU may do it (banked PPIs).
            if phys_work {
                drain_phys(g, vm, v, |_| true);
            }
        } else {
            skip.reenter(&mut shadow);
        }
        g.load_lrs(&shadow, lr_count, prev_used);
        prev_used = shadow.used;
        let (kind, info) = arch::vcpu::run(&mut regs);
        g.save_lrs(&mut shadow);
        // An exit after an entry that loaded nothing, with no timer interrupt waiting in the
        // model, needs no fold and takes no lock here (`VgicSkip`).
        if skip.fold_needed(&shadow) {
            let mut vgic = vm.vgic.lock();
            vgic.fold(v, &shadow);
            // A timer line that dropped before the guest took its interrupt withdraws it.
            let lines = skip.lines_to_resample();
            let mut high = 0;
            if lines != 0 {
                let (vt, pt) = arch::vcpu::timer_lines();
                for (n, (id, level)) in [(timers.0, vt), (timers.1, pt)].into_iter().enumerate() {
                    if lines & 1 << n != 0 && vgic.resample_hw_level(v, IntId(id), level) {
                        high |= 1 << n;
                    }
                }
            }
            let kicks = vgic.take_kicks();
            drop(vgic);
            skip.folded(&shadow, high);
            kick(cpu, vm, kicks);
        }
        if v == 0 {
            super::fatal::test_point(vm.id);
        }
        // Console output still waiting for the UART moves along (two loads when none does).
        if console::output_pending() {
            console::pump();
        }
        let exit = exit::decode(&info, kind);
        match vm.handle_exit(v, &mut regs, exit, &mut hw_ops) {
            Outcome::Resume => {}
            Outcome::PhysIrq => {
                // A timer's interrupt it injects is resampled from the next exit on.
                let raised = irq::handle_guest(cpu, rt, v);
                for line in [0, 1] {
                    if raised & 1 << line != 0 {
                        skip.line_raised(line);
                    }
                }
            }
            Outcome::InjectUndef => inject_undef(&mut regs),
            Outcome::InjectAbort { write } => inject_abort(&mut regs, &info, kind, write),
            Outcome::Wake(target) => kick(cpu, vm, 1 << target),
            Outcome::Restart { entry, context } => {
                arch::vcpu::restore_el1(&arch::vcpu::El1Context::reset());
                regs = reset_state(entry, context);
            }
            Outcome::CpuOff => break RunEnd::CpuOff,
            Outcome::VmOff | Outcome::VmReset => {
                heap::exit_path(false);
                put(g, v, vm);
                stop_vm(cpu, rt, v);
                return RunEnd::VmDone;
            }
        }
    };
    // Leaving the guest for good (CPU_OFF, the VM stopping) is not an exit it comes back from.
    heap::exit_path(false);
    put(g, v, vm);
    end
}

/// A vCPU leaves its CPU: its timers stop, linked physical interrupts it left active are
/// deactivated, the virtual interface is emptied, and the EL2 controls go back to the host's.
#[inline(never)]
fn put(g: &gic::Gic, v: usize, vm: &Vm) {
    if vm.direct_lpis
        && let Some(its) = crate::drivers::its::get()
        && let Err(e) = its.make_non_resident(vm.id, v)
    {
        log::warn!("VM '{}' vCPU {v}: {e}", vm.name());
    }
    arch::vcpu::stop_timers();
    let h = hw();
    g.deactivate(h.vtimer);
    g.deactivate(h.ptimer);
    g.reset_virtual(h.lr_count);
    arch::vcpu::unload_control(traps::host_hcr());
    timer::host_event_stream();
    vm.vgic.lock().reset_vcpu(v);
    // The timers were deactivated above; recorded work on passed-through SPIs still applies.
    drain_phys(g, vm, v, |op| op.intid() >= 32);
}

/// vCPU `v`'s vPE becomes resident on this CPU's redistributor (GICv4), with the vITS's
/// shadow property table: from here on the hardware injects the VM's device MSIs for this
/// vCPU straight into it, and it stays resident while the vCPU runs on this CPU (pinned, WFI
/// not trapped: no doorbell is needed).
fn load_vpe(vm: &Vm, v: usize) {
    let vprop = vm
        .vgic
        .lock()
        .its()
        .and_then(|i| i.shadow_table())
        .map(|t| t.as_ptr() as u64);
    if let (Some(its), Some(vprop)) = (crate::drivers::its::get(), vprop)
        && let Err(e) = its.make_resident(vm.id, v, vprop)
    {
        log::warn!("VM '{}' vCPU {v}: {e}", vm.name());
    }
}

/// Does vCPU `v`'s recorded physical work that `wanted` accepts, batch by batch (the vGIC
/// lock is not held while the GIC is written). Bounded: each batch empties up to
/// `PHYS_BATCH` interrupts' records, and there are at most `MAX_PHYS_INTID` of them.
#[inline(never)]
fn drain_phys(g: &gic::Gic, vm: &Vm, v: usize, wanted: impl Fn(&PhysOp) -> bool) {
    loop {
        let ops = vm.vgic.lock().take_phys(v);
        if ops.is_empty() {
            break;
        }
        for op in ops.into_iter().filter(|op| wanted(op)) {
            apply_phys(g, vm, op);
        }
    }
}

/// Does what the vGIC asked of a linked physical interrupt (a route names a vCPU: its CPU).
fn apply_phys(g: &gic::Gic, vm: &Vm, op: PhysOp) {
    let route = policy::irq::phys_route_cpu(vm, &op)
        .and_then(|pcpu| PCPUS.get(pcpu))
        .and_then(|p| p.target.get())
        .copied();
    g.apply(op, route);
}

#[inline(never)]
fn inject_undef(regs: &mut GuestRegs) {
    let r = arch::vcpu::exception_regs();
    let mut exc = El1Exception::default();
    inject::inject_undef(regs, &mut exc, r.vbar, r.sctlr);
    arch::vcpu::write_exception(exc.elr_el1, exc.spsr_el1, exc.esr_el1, exc.far_el1);
}

#[inline(never)]
fn inject_abort(regs: &mut GuestRegs, info: &ExitInfo, kind: ExitKind, write: bool) {
    let r = arch::vcpu::exception_regs();
    let mut exc = El1Exception::default();
    let instr = kind == ExitKind::Sync
        && exitless_core::trap::esr::Esr::new(info.esr).ec()
            == exitless_core::trap::esr::ExceptionClass::InstrAbortLower;
    if instr {
        inject::inject_external_instruction_abort(regs, &mut exc, r.vbar, r.sctlr, info.far);
    } else {
        inject::inject_external_data_abort(regs, &mut exc, r.vbar, r.sctlr, info.far, write);
    }
    arch::vcpu::write_exception(exc.elr_el1, exc.spsr_el1, exc.esr_el1, exc.far_el1);
}

/// What stopping a VM needs from the machine, for `exitless_core::hv::power::stop_vm`.
struct StopOnHw<'a> {
    cpu: usize,
    rt: &'a VmRuntime,
}

impl StopHw for StopOnHw<'_> {
    fn kick(&mut self, vm: &Vm, mask: u64) {
        kick(self.cpu, vm, mask);
    }

    fn now(&mut self) -> u64 {
        timer::ticks()
    }

    fn ticks_per_second(&mut self) -> u64 {
        timer::frequency()
    }

    fn reload_images(&mut self, vm: &Vm) -> Result<(), &'static str> {
        // The VM restarts with an empty vITS: what its old one mapped in the physical ITS
        // goes (a device's MSIs must not reach the guest before it maps them again).
        if let Some(its) = crate::drivers::its::get()
            && let Err(e) = its.forget_vm(vm.id)
        {
            log::warn!("VM '{}': {e}", vm.name());
        }
        super::load_images(self.rt)
    }

    fn deactivate(&mut self, intid: u32) {
        if let Some(g) = gic::get() {
            g.deactivate(intid);
        }
    }

    fn relax(&mut self) {
        // The host's event stream (and the stopping vCPUs' events) end the wait.
        aarch64_cpu::asm::wfe();
    }
}

/// The vCPU that stopped or reset its VM: the core's stop policy, then, for a VM that is off,
/// its counters and, once every VM is off, the machine's power-off.
#[inline(never)]
fn stop_vm(cpu: usize, rt: &VmRuntime, me: usize) {
    let boot = (rt.plan.entry, rt.plan.dtb.start);
    // What the guest wrote before it asked goes out before exitless says the VM stopped: its
    // last line must not be split by that line (the hostile guest's verdict once was).
    console::flush_all();
    match power::stop_vm(&rt.vm, me, boot, &mut StopOnHw { cpu, rt }) {
        StopEnd::Restarted { .. } | StopEnd::ReloadFailed(_) => {}
        StopEnd::PoweredOff { .. } => {
            // The VM's last output goes out before its counters (waiting: it no longer runs).
            console::flush_all();
            console::print_counters(rt);
            rt.stopped.store(true, Ordering::Release);
            let all = VMS
                .get()
                .is_some_and(|vms| vms.iter().all(|r| r.stopped.load(Ordering::Acquire)));
            if all {
                let (allocs, first) = heap::exit_path_allocs();
                log::info!(
                    "exit path: {allocs} heap allocations{}",
                    if allocs > 0 {
                        alloc::format!(
                            " (the first of {first} bytes, called from image offsets {:x?})",
                            heap::first_exit_path_callers()
                        )
                    } else {
                        alloc::string::String::new()
                    }
                );
                let (start, peak) = heap::usage();
                let bound = heap::GROWTH_BOUND;
                log::info!(
                    "heap: {} KiB in use when the VMs started, high-water mark since {} KiB: {} \
                     the bound of {} KiB more",
                    start >> 10,
                    peak >> 10,
                    if peak <= start + bound {
                        "within"
                    } else {
                        "ABOVE"
                    },
                    bound >> 10
                );
                crate::machine::power::note(cpu, crate::machine::power::Stage::Announced);
                log::info!("all VMs are off: powering the machine off");
                console::flush_all();
                crate::machine::power::power_off();
            }
        }
    }
}
