//! Host tests of the run-loop policy, against VM models and fake machines; each test is named
//! after the rule it checks.

use alloc::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use super::console::{COMMAND_KEY, ConsoleInput, Input};
use super::irq::{self, DEFAULT_MAINTENANCE_INTID, HostIrqs, PhysIrq};
use super::power::{self, StopEnd, StopHw};
use super::*;
use crate::gic::GicFacts;
use crate::platform::dt::Interrupt;
use crate::platform::{GicVersion, TimerInfo};
use crate::vcpu::psci::PowerState;
use crate::vgic::PhysOp;
use crate::vgic::irq::IntId;
use crate::vm::config;
use crate::vm::machine::{VmHost, VmState};

/// Two vCPUs and an RTC passed through with SPI 34.
const TWO_VCPUS_RTC: &str = r#"
[[vm]]
name = "t"
vcpus = 2
memory = "64M"
kernel = "Image"

[[vm.passthrough]]
name = "rtc"
mmio = [0x09010000, 0x1000]
irqs = [34]
"#;

const BOOT: (u64, u64) = (0x4008_0000, 0x4800_0000);

/// VM `id` from the first VM of `toml`, its vCPUs on CPUs `first_pcpu..`.
fn vm_at(toml: &str, id: usize, first_pcpu: usize) -> Vm {
    let cfg = config::parse(toml).unwrap().vms.remove(0);
    Vm::new(
        id,
        cfg,
        &VmHost {
            lr_count: 4,
            pri_bits: 5,
            first_pcpu,
            lr_format: crate::vgic::lr::LrFormat::V3,
            direct_lpis: false,
        },
        BOOT,
    )
    .unwrap()
}

fn vm() -> Vm {
    vm_at(TWO_VCPUS_RTC, 0, 0)
}

#[derive(Default)]
struct FakeCpus {
    sgis: Vec<usize>,
    events: usize,
}

impl Cpus for FakeCpus {
    fn send_kick(&mut self, pcpu: usize) {
        self.sgis.push(pcpu);
    }
    fn send_event(&mut self) {
        self.events += 1;
    }
}

// ---- kick, placement, passthrough ownership

#[test]
fn kick_sends_the_sgi_to_each_masked_vcpus_cpu_except_the_callers_own() {
    let vm = vm_at(TWO_VCPUS_RTC, 0, 2); // vCPUs on CPUs 2 and 3
    let mut cpus = FakeCpus::default();
    kick(&vm, 2, 0b11, &mut cpus);
    assert_eq!(
        cpus.sgis,
        vec![3],
        "CPU 2 is the caller: it flushes before entering"
    );
    assert_eq!(
        cpus.events, 1,
        "a vCPU waiting for power-on is woken by an event"
    );
}

#[test]
fn kick_with_an_empty_mask_sends_nothing() {
    let mut cpus = FakeCpus::default();
    kick(&vm(), 5, 0, &mut cpus);
    assert!(cpus.sgis.is_empty());
    assert_eq!(cpus.events, 0);
}

#[test]
fn kick_ignores_mask_bits_beyond_the_vms_vcpus() {
    let mut cpus = FakeCpus::default();
    kick(&vm(), 7, u64::MAX, &mut cpus);
    assert_eq!(cpus.sgis, vec![0, 1]);
}

#[test]
fn each_vm_is_placed_on_the_cpus_after_the_previous_vms() {
    assert_eq!(place_vcpus([2, 1, 3]), vec![0, 2, 3]);
    assert_eq!(place_vcpus([]), Vec::<usize>::new());
}

#[test]
fn a_passed_through_spi_belongs_to_the_vm_that_lists_it() {
    let one = config::parse(TWO_VCPUS_RTC).unwrap().vms.remove(0);
    let mut other = one.clone();
    other.passthrough[0].irqs = vec![40, 41];
    let none = {
        let mut c = one.clone();
        c.passthrough.clear();
        c
    };
    let map = passthrough_map([&none, &one, &other]);
    assert_eq!(map, BTreeMap::from([(34, 1), (40, 2), (41, 2)]));
}

// ---- console input

#[test]
fn console_focus_starts_on_the_first_vm_with_console_true_else_vm_0() {
    assert_eq!(ConsoleInput::new([false, true, true]).focus(), 1);
    assert_eq!(ConsoleInput::new([false, false]).focus(), 0);
    assert_eq!(ConsoleInput::new([]).focus(), 0);
}

#[test]
fn typed_bytes_go_to_the_vm_with_the_focus() {
    let mut c = ConsoleInput::new([false, true]);
    assert_eq!(c.key(b'a'), Input::Deliver { vm: 1, byte: b'a' });
}

#[test]
fn command_key_twice_sends_one_command_key_to_the_guest() {
    let mut c = ConsoleInput::new([true]);
    assert_eq!(c.key(COMMAND_KEY), Input::CommandPending);
    assert_eq!(
        c.key(COMMAND_KEY),
        Input::Deliver {
            vm: 0,
            byte: COMMAND_KEY
        }
    );
    assert_eq!(c.key(b'x'), Input::Deliver { vm: 0, byte: b'x' });
}

#[test]
fn command_key_n_moves_the_focus_to_the_next_vm_and_wraps() {
    let mut c = ConsoleInput::new([false, false, false]);
    for want in [1, 2, 0] {
        assert_eq!(c.key(COMMAND_KEY), Input::CommandPending);
        assert_eq!(c.key(b'n'), Input::Focus { vm: want });
    }
    assert_eq!(c.key(b'z'), Input::Deliver { vm: 0, byte: b'z' });
    let mut empty = ConsoleInput::new([]);
    empty.key(COMMAND_KEY);
    assert_eq!(empty.key(b'N'), Input::Focus { vm: 0 });
}

#[test]
fn command_key_c_asks_for_counters_l_for_the_log_any_other_key_for_help_and_none_reaches_the_guest()
{
    let mut c = ConsoleInput::new([true, false]);
    c.key(COMMAND_KEY);
    assert_eq!(c.key(b'c'), Input::Counters);
    c.key(COMMAND_KEY);
    assert_eq!(c.key(b'l'), Input::Log);
    c.key(COMMAND_KEY);
    assert_eq!(c.key(b'?'), Input::Help);
    assert_eq!(c.focus(), 0);
    assert_eq!(c.key(b'q'), Input::Deliver { vm: 0, byte: b'q' });
}

#[test]
fn a_command_split_across_two_uart_reads_is_still_one_command() {
    let mut c = ConsoleInput::new([false, false]);
    let first: Vec<Input> = [b'a', COMMAND_KEY].iter().map(|&b| c.key(b)).collect();
    assert_eq!(first.last(), Some(&Input::CommandPending));
    let second: Vec<Input> = [b'n', b'b'].iter().map(|&b| c.key(b)).collect();
    assert_eq!(
        second,
        vec![Input::Focus { vm: 1 }, Input::Deliver { vm: 1, byte: b'b' }]
    );
}

// ---- physical interrupts

fn ppi(intid: u32) -> Interrupt {
    Interrupt { intid, level: true }
}

fn timer() -> TimerInfo {
    TimerInfo {
        secure_phys: ppi(29),
        phys: ppi(30),
        virt: ppi(27),
        hyp_phys: ppi(26),
        hyp_virt: None,
    }
}

fn facts() -> GicFacts {
    GicFacts::from_registers(GicVersion::V2, 0, 3)
}

fn host_irqs() -> HostIrqs {
    HostIrqs {
        lr_count: 4,
        maintenance: 25,
        vtimer: 27,
        ptimer: 30,
        uart: Some(33),
    }
}

#[test]
fn host_irqs_come_from_the_timer_node_and_the_maintenance_interrupt_defaults_to_ppi_9() {
    let h = HostIrqs::new(&timer(), None, Some(33), &facts());
    assert_eq!(h.vtimer, 27);
    assert_eq!(h.ptimer, 30);
    assert_eq!(h.uart, Some(33));
    assert_eq!(h.maintenance, DEFAULT_MAINTENANCE_INTID);
    assert_eq!(
        h.lr_count, 4,
        "GICH_VTR.ListRegs = 3 means 4 list registers"
    );
}

#[test]
fn each_physical_interrupt_is_classified_by_what_exitless_uses_it_for() {
    let h = host_irqs();
    let pt = BTreeMap::from([(34, 1)]);
    assert_eq!(h.classify(27, &pt), PhysIrq::Timer);
    assert_eq!(h.classify(30, &pt), PhysIrq::Timer);
    assert_eq!(h.classify(34, &pt), PhysIrq::Passthrough { vm: 1 });
    assert_eq!(h.classify(KICK_SGI, &pt), PhysIrq::Kick);
    assert_eq!(h.classify(25, &pt), PhysIrq::Maintenance);
    assert_eq!(h.classify(33, &pt), PhysIrq::ConsoleUart);
    assert_eq!(h.classify(35, &pt), PhysIrq::Unexpected);
    assert_eq!(h.classify(1023, &pt), PhysIrq::Unexpected);
}

#[test]
fn only_timers_and_passed_through_spis_stay_active_for_the_guest_to_complete() {
    let linked: Vec<bool> = [
        PhysIrq::Timer,
        PhysIrq::Passthrough { vm: 0 },
        PhysIrq::Kick,
        PhysIrq::Maintenance,
        PhysIrq::ConsoleUart,
        PhysIrq::Unexpected,
    ]
    .iter()
    .map(|i| i.is_linked())
    .collect();
    assert_eq!(linked, vec![true, true, false, false, false, false]);
}

#[test]
fn a_timer_interrupt_is_injected_linked_into_the_running_vcpu_and_counted() {
    let vm = vm();
    irq::inject_timer(&vm, 1, 27);
    let vgic = vm.vgic.lock();
    let i = vgic.irq(1, IntId(27)).unwrap();
    assert!(i.is_pending());
    assert_eq!(i.hw, Some(27), "linked to the physical PPI (LR HW bit)");
    assert!(
        !vgic.irq(0, IntId(27)).unwrap().is_pending(),
        "PPIs are per vCPU"
    );
    drop(vgic);
    assert_eq!(
        vm.stats.injected[1].load(core::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_passed_through_spi_taken_on_another_cpu_kicks_its_target_and_is_counted_remote() {
    let vm = vm_at(TWO_VCPUS_RTC, 0, 4); // vCPUs on CPUs 4 and 5
    {
        let mut vgic = vm.vgic.lock();
        // The guest enables Group 1 and affinity routing (GICD_CTLR), puts SPI 34 in Group 1
        // (GICD_IGROUPR1) and enables it (GICD_ISENABLER1), routed to vCPU 0, which is in its
        // guest (flushed, not folded).
        vgic.gicd_access(0, 0x0000, 4, Some(0x12));
        vgic.gicd_access(0, 0x0084, 4, Some(1 << 2));
        vgic.gicd_access(0, 0x0104, 4, Some(1 << 2));
        vgic.flush(0, &mut crate::vgic::cpu_if::CpuIfShadow::default());
    }
    let mut cpus = FakeCpus::default();
    irq::forward_passthrough(&vm, 34, 0, &mut cpus);
    let remote = vm
        .stats
        .passthrough_remote
        .load(core::sync::atomic::Ordering::Relaxed);
    assert_eq!(remote, 1, "taken on CPU 0, wanted on vCPU 0's CPU 4");
    assert_eq!(cpus.sgis, vec![4]);
    assert!(vm.vgic.lock().irq(0, IntId(34)).unwrap().is_pending());
    assert_eq!(
        vm.stats.injected[3].load(core::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_route_request_names_the_cpu_of_the_vcpu_and_nothing_else_has_a_route() {
    let vm = vm_at(TWO_VCPUS_RTC, 0, 2);
    assert_eq!(irq::phys_route_cpu(&vm, &PhysOp::Route(34, 1)), Some(3));
    assert_eq!(irq::phys_route_cpu(&vm, &PhysOp::Route(34, 9)), None);
    assert_eq!(irq::phys_route_cpu(&vm, &PhysOp::Deactivate(34)), None);
}

// ---- power and VM life

/// A machine whose clock advances by `step` on every read; vCPUs in `stuck` never stop.
struct FakeStop {
    now: u64,
    step: u64,
    kicks: Vec<u64>,
    reloads: usize,
    reload_error: Option<&'static str>,
    deactivated: Vec<u32>,
    /// Kicks that make the vCPUs they name leave their guests (set them Off), as a real CPU
    /// would; `false` models CPUs that never answer.
    kicks_stop: bool,
    /// Ticks per second the clock claims.
    tps: u64,
    /// Waits between polls.
    relaxed: usize,
}

impl FakeStop {
    fn new() -> Self {
        FakeStop {
            now: 0,
            step: 1,
            kicks: Vec::new(),
            reloads: 0,
            reload_error: None,
            deactivated: Vec::new(),
            kicks_stop: true,
            tps: 1000,
            relaxed: 0,
        }
    }
}

impl StopHw for FakeStop {
    fn kick(&mut self, vm: &Vm, mask: u64) {
        self.kicks.push(mask);
        if self.kicks_stop {
            for (v, slot) in vm.vcpus.iter().enumerate() {
                if mask & 1 << v != 0 && slot.power.lock().state == PowerState::On {
                    slot.power.lock().state = PowerState::Off;
                }
            }
        }
    }
    fn now(&mut self) -> u64 {
        self.now += self.step;
        self.now
    }
    fn ticks_per_second(&mut self) -> u64 {
        self.tps
    }
    fn reload_images(&mut self, _vm: &Vm) -> Result<(), &'static str> {
        self.reloads += 1;
        self.reload_error.map_or(Ok(()), Err)
    }
    fn deactivate(&mut self, intid: u32) {
        self.deactivated.push(intid);
    }
    fn relax(&mut self) {
        self.relaxed += 1;
    }
}

/// Both vCPUs of the VM running.
fn running_vm() -> Vm {
    let vm = vm();
    assert_eq!(power::take_power_on(&vm, 0), Some(BOOT));
    vm.vcpus[1].power.lock().state = PowerState::On;
    vm
}

#[test]
fn a_vcpu_starts_only_when_on_pending_and_its_vm_is_running_and_takes_its_boot_once() {
    let vm = vm();
    assert_eq!(
        power::take_power_on(&vm, 1),
        None,
        "vCPU 1 is off until CPU_ON"
    );
    vm.set_state(VmState::Resetting);
    assert_eq!(power::take_power_on(&vm, 0), None, "the VM is not running");
    vm.set_state(VmState::Running);
    assert_eq!(power::take_power_on(&vm, 0), Some(BOOT));
    assert_eq!(vm.vcpus[0].power.lock().state, PowerState::On);
    assert_eq!(
        power::take_power_on(&vm, 0),
        None,
        "the boot arguments are used once"
    );
    assert_eq!(power::take_power_on(&vm, 9), None, "no such vCPU");
}

#[test]
fn system_off_stops_every_vcpu_and_deactivates_the_vms_passed_through_spis() {
    let vm = running_vm();
    vm.set_state(VmState::Stopping);
    let mut hw = FakeStop::new();
    let end = power::stop_vm(&vm, 1, BOOT, &mut hw);
    assert_eq!(end, StopEnd::PoweredOff { stragglers: 0 });
    assert_eq!(hw.kicks[0], 0b01, "the others are kicked, not the caller");
    assert_eq!(power::running_vcpus(&vm), 0);
    assert_eq!(hw.deactivated, vec![34]);
    assert_eq!(hw.reloads, 0);
    assert_eq!(
        vm.state(),
        VmState::Stopping,
        "a powered-off VM stays stopped"
    );
}

#[test]
fn system_reset_restarts_the_vm_from_vcpu_0_with_the_others_off() {
    let vm = running_vm();
    vm.set_state(VmState::Resetting);
    let mut hw = FakeStop::new();
    let end = power::stop_vm(&vm, 1, BOOT, &mut hw);
    assert_eq!(end, StopEnd::Restarted { stragglers: 0 });
    assert_eq!(hw.reloads, 1, "the images are written again");
    assert_eq!(vm.state(), VmState::Running);
    let p0 = *vm.vcpus[0].power.lock();
    assert_eq!((p0.state, p0.boot), (PowerState::OnPending, Some(BOOT)));
    let p1 = *vm.vcpus[1].power.lock();
    assert_eq!((p1.state, p1.boot), (PowerState::Off, None));
    assert_eq!(hw.kicks.last(), Some(&1), "vCPU 0's CPU is woken");
    assert!(hw.deactivated.is_empty());
}

#[test]
fn a_vcpu_that_never_stops_delays_the_stop_by_at_most_the_deadline() {
    let vm = running_vm();
    vm.set_state(VmState::Stopping);
    let mut hw = FakeStop::new();
    hw.kicks_stop = false;
    let end = power::stop_vm(&vm, 0, BOOT, &mut hw);
    assert_eq!(end, StopEnd::PoweredOff { stragglers: 1 });
    assert!(
        hw.now > 1000 && hw.now < 1100,
        "gave up just after 1 s: {}",
        hw.now
    );
}

/// A vCPU that has not stopped is kicked again at most once a millisecond, never one that
/// stopped, and the wait between polls relaxes (waits for an event) instead of kicking.
#[test]
fn a_stop_rekicks_only_running_vcpus_at_most_once_a_millisecond() {
    let vm = running_vm();
    vm.set_state(VmState::Stopping);
    let mut hw = FakeStop::new();
    hw.kicks_stop = false;
    hw.tps = 10_000; // 10 ticks a millisecond; the fake clock moves 1 tick per reading
    let _ = power::stop_vm(&vm, 0, BOOT, &mut hw);
    assert_eq!(hw.kicks[0], 0b10, "the first kick: every other vCPU");
    assert!(hw.kicks[1..].iter().all(|&m| m == 0b10));
    assert!(
        hw.kicks.len() <= 1 + 10_000 / 10,
        "{} kicks in 1 s",
        hw.kicks.len()
    );
    assert!(hw.relaxed >= 9_000, "{} waits", hw.relaxed);
}

#[test]
fn a_reset_whose_images_cannot_be_reloaded_leaves_the_vm_stopped() {
    let vm = running_vm();
    vm.set_state(VmState::Resetting);
    let mut hw = FakeStop::new();
    hw.reload_error = Some("the kernel does not fit in guest RAM");
    let end = power::stop_vm(&vm, 0, BOOT, &mut hw);
    assert_eq!(
        end,
        StopEnd::ReloadFailed("the kernel does not fit in guest RAM")
    );
    assert_ne!(vm.state(), VmState::Running);
    assert_eq!(power::take_power_on(&vm, 0), None, "vCPU 0 does not start");
}

// ---- counters report

#[test]
fn the_counters_report_names_the_vm_and_counts_each_vcpus_exits_by_reason() {
    let vm = vm();
    vm.vcpus[1].stats.lock().maintenance = 7;
    let text = report::counters(&vm);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "=== counters of VM 't' ===");
    assert_eq!(
        lines[1],
        "vCPU 0: 0 exits:; maintenance interrupts 0, kicks 0"
    );
    assert!(
        text.contains("vCPU 1: 0 exits:; maintenance interrupts 7, kicks 0"),
        "{text}"
    );
    assert!(text.ends_with("GICC MMIO): 0\n"), "{text}");
}

#[test]
fn acknowledge_and_completion_exits_count_trapped_icc_registers_and_gicc_mmio() {
    let vm = vm();
    let dir = report::ACK_EOI_REGS[4].1;
    vm.vcpus[0].sysregs.add_n(dir, 3);
    // An ID register trap is not an acknowledge or completion.
    let id_aa64pfr0 = crate::trap::esr::SysRegId::new(3, 0, 0, 4, 0);
    vm.vcpus[1].sysregs.add_n(id_aa64pfr0, 5);
    use crate::vm::machine::MmioKey;
    vm.stats.mmio.lock().add_n(MmioKey("GICC", "GICC_EOIR"), 2);
    vm.stats
        .mmio
        .lock()
        .add_n(MmioKey("GICD", "GICD_ISENABLER"), 9);
    let text = report::counters(&vm);
    assert!(
        text.ends_with(
            "exits for interrupt acknowledge and completion (ICC_IAR/EOIR/DIR/PMR traps, GICC \
             MMIO): 5\n"
        ),
        "{text}"
    );
    assert!(text.contains("ID registers (TID3) 5"), "{text}");
    assert!(text.contains("GICD.GICD_ISENABLER=9"), "{text}");
}
