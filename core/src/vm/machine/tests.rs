//! Exit handling against a VM model with a fake hardware: what each kind of exit does to the
//! guest's registers, the VM's devices and the outcome the shell applies.

use std::vec::Vec;

use super::*;
use crate::trap::esr::SysRegId;
use crate::vcpu::exit::{Exit, MmioAccess};
use crate::vcpu::psci::PowerState;
use crate::vgic::PhysOp;
use crate::vgic::cpu_if::CpuIfShadow;
use crate::vm::config;

const TWO_VCPUS: &str = r#"
[[vm]]
name = "t"
vcpus = 2
memory = "64M"
kernel = "Image"
"#;

#[derive(Default)]
struct FakeHw {
    kicks: u64,
    out: Vec<u8>,
    id_reads: Vec<SysRegId>,
    phys_ops: usize,
}

impl ExitHw for FakeHw {
    fn read_id_reg(&mut self, id: SysRegId) -> u64 {
        self.id_reads.push(id);
        // ID_AA64PFR0_EL1 of a CPU with SVE (bits 35:32 = 1), GICv3 (27:24 = 1), FP/AdvSIMD.
        1 << 32 | 1 << 24 | 0x1111
    }

    fn kick(&mut self, vm: &Vm, mask: u64) {
        assert_no_vm_lock_held(vm, "kick");
        self.kicks |= mask;
    }

    fn console_out(&mut self, vm: &Vm, bytes: &[u8]) {
        assert_no_vm_lock_held(vm, "console_out");
        self.out.extend_from_slice(bytes);
    }
    fn guest_ram(&self) -> &dyn crate::mm::GuestRam {
        &crate::mm::ZEROED_RAM
    }

    fn its_phys(&mut self, _: &Vm, ops: &[crate::vgic::its::PhysItsOp]) {
        self.phys_ops += ops.len();
    }
}

/// The lock-order rule (module head): no VM lock is held across a call into the shell. Every
/// test below, the randomized hostile guests included, checks it on every `ExitHw` call.
fn assert_no_vm_lock_held(vm: &Vm, call: &str) {
    let held = [
        ("vgic", vm.vgic.is_locked()),
        ("uart", vm.uart.is_locked()),
        ("console_in", vm.console_in.is_locked()),
        ("stats.mmio", vm.stats.mmio.is_locked()),
    ];
    for (lock, locked) in held {
        assert!(!locked, "{lock} held across ExitHw::{call}");
    }
    for (n, slot) in vm.vcpus.iter().enumerate() {
        assert!(
            !slot.power.is_locked(),
            "vcpus[{n}].power held across ExitHw::{call}"
        );
        assert!(
            !slot.stats.is_locked(),
            "vcpus[{n}].stats held across ExitHw::{call}"
        );
    }
}

fn vm() -> Vm {
    vm_from(TWO_VCPUS, crate::vgic::lr::LrFormat::V3)
}

/// The first VM of configuration `toml`, on a host with 4 LRs of format `lr_format`.
fn vm_from(toml: &str, lr_format: crate::vgic::lr::LrFormat) -> Vm {
    let cfg = config::parse(toml).unwrap().vms.remove(0);
    Vm::new(
        0,
        cfg,
        &VmHost {
            lr_count: 4,
            pri_bits: 5,
            first_pcpu: 0,
            lr_format,
            direct_lpis: false,
        },
        (0x4000_0000, 0x4800_0000),
    )
    .unwrap()
}

fn mmio(ipa: u64, width: u8, write: bool, reg: u8) -> Exit {
    Exit::Mmio(MmioAccess {
        ipa,
        width,
        write,
        reg,
        sign_extend: false,
        sixty_four: true,
        instr_len: 4,
    })
}

fn regs_at(pc: u64) -> GuestRegs {
    GuestRegs {
        pc,
        ..Default::default()
    }
}

#[test]
fn write_to_an_address_nothing_owns_is_aborted_and_counted() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    let out = vm.handle_exit(
        0,
        &mut r,
        mmio(0x0a00_0000, 4, true, 1),
        &mut FakeHw::default(),
    );
    assert_eq!(out, Outcome::InjectAbort { write: true });
    assert_eq!(
        r.pc, 0x4000_1000,
        "the abort is taken at the faulting instruction"
    );
    assert_eq!(vm.stats.aborts.load(Ordering::Relaxed), 1);
}

#[test]
fn load_pair_to_the_distributor_is_aborted() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    let out = vm.handle_exit(
        0,
        &mut r,
        Exit::MmioUndecodable { ipa: 0x0800_0000 },
        &mut FakeHw::default(),
    );
    assert_eq!(out, Outcome::InjectAbort { write: false });
    let again = vm.handle_exit(
        0,
        &mut r,
        Exit::MmioUndecodable { ipa: 0x0800_0000 },
        &mut FakeHw::default(),
    );
    assert_eq!(
        again,
        Outcome::InjectAbort { write: false },
        "the VM keeps being served"
    );
    assert_eq!(vm.stats.aborts.load(Ordering::Relaxed), 2);
}

/// ESR_EL2.IL: a 16-bit T32 load from an AArch32 EL0 process (IL = 0) advances the PC by 2,
/// not 4 (KVM `kvm_skip_instr`); the PC stayed on an instruction boundary only by luck before.
#[test]
fn an_emulated_16_bit_t32_access_advances_the_pc_by_2_esr_il() {
    let vm = vm();
    let mut r = regs_at(0x8000);
    r.pstate = 0x30; // AArch32 EL0 (M[4] = 1), T32 (T = 1)
    let Exit::Mmio(mut a) = mmio(0x0800_0004, 4, false, 3) else {
        unreachable!()
    };
    a.instr_len = 2;
    let out = vm.handle_exit(0, &mut r, Exit::Mmio(a), &mut FakeHw::default());
    assert_eq!(out, Outcome::Resume);
    assert_eq!(r.pc, 0x8002);
}

#[test]
fn gicd_read_goes_to_the_vgic_and_advances_pc() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    // GICD_TYPER: ITLinesNumber = 7 for 256 interrupt IDs.
    let out = vm.handle_exit(
        0,
        &mut r,
        mmio(0x0800_0004, 4, false, 3),
        &mut FakeHw::default(),
    );
    assert_eq!(out, Outcome::Resume);
    assert_eq!(r.x[3] & 0x1f, 7);
    assert_eq!(r.pc, 0x4000_1004);
    assert_eq!(vm.stats.mmio.lock().count_of("GICD", "GICD_TYPER"), 1);
}

#[test]
fn uart_data_write_reaches_the_console() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    r.x[2] = b'x' as u64;
    let mut hw = FakeHw::default();
    vm.handle_exit(0, &mut r, mmio(0x0900_0000, 4, true, 2), &mut hw);
    assert_eq!(hw.out, b"x");
}

#[test]
fn uart_output_reaches_the_console_with_no_vm_lock_held() {
    // Lock order: the UART lock is dropped before the bytes go to the shell (FakeHw checks).
    let vm = vm();
    let mut hw = FakeHw::default();
    for &b in b"hello" {
        let mut r = regs_at(0x4000_1000);
        r.x[2] = u64::from(b);
        vm.handle_exit(0, &mut r, mmio(0x0900_0000, 4, true, 2), &mut hw);
    }
    assert_eq!(hw.out, b"hello");
}

#[test]
fn console_input_waits_for_room_in_the_uart_fifo() {
    let vm = vm();
    let mut hw = FakeHw::default();
    let input: Vec<u8> = (0..40).collect();
    vm.console_input(&input, &mut hw);
    let room = vm.uart.lock().rx_room();
    let queued = vm.console_in.lock().len();
    assert_eq!(room, 0, "the FIFO is filled first");
    assert!(
        queued > 0 && queued < 40,
        "the rest waits in the queue ({queued})"
    );
    // The guest reads one byte: one more moves in.
    let mut r = regs_at(0x4000_1000);
    let before = vm.console_in.lock().len();
    vm.handle_exit(0, &mut r, mmio(0x0900_0000, 4, false, 1), &mut hw);
    assert_eq!(r.x[1], 0);
    assert_eq!(vm.console_in.lock().len(), before - 1);
}

/// Console input arrives on a vCPU's exit path (the UART's interrupt): queued, up to its bound,
/// in room reserved when the VM was built, so even a flood allocates nothing and drops the rest.
#[test]
fn console_input_beyond_the_queue_is_dropped_without_allocating() {
    let vm = vm();
    let mut hw = FakeHw::default();
    let room = vm.console_in.lock().capacity();
    assert!(room >= CONSOLE_INPUT_QUEUE);
    let flood = vec![b'x'; 3 * CONSOLE_INPUT_QUEUE];
    vm.console_input(&flood, &mut hw);
    vm.console_input(&flood, &mut hw);
    let q = vm.console_in.lock();
    assert_eq!(q.len(), CONSOLE_INPUT_QUEUE, "the queue stops at its bound");
    assert_eq!(q.capacity(), room, "and never grew");
}

#[test]
fn psci_version_over_hvc() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    r.x[0] = 0x8400_0000;
    assert_eq!(
        vm.handle_exit(0, &mut r, Exit::Hvc { imm: 0 }, &mut FakeHw::default()),
        Outcome::Resume
    );
    assert_eq!(r.x[0], 0x1_0001);
    assert_eq!(r.pc, 0x4000_1000, "ELR already points past the HVC");
}

#[test]
fn smc_is_smccc_too_and_skips_the_instruction() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    r.x[0] = 0x8400_0000;
    vm.handle_exit(0, &mut r, Exit::Smc { imm: 0 }, &mut FakeHw::default());
    assert_eq!((r.x[0], r.pc), (0x1_0001, 0x4000_1004));
}

#[test]
fn cpu_on_powers_the_target_on_pending_and_wakes_it() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    r.x[..4].copy_from_slice(&[0xc400_0003, 1, 0x4008_0000, 0x1234]);
    let out = vm.handle_exit(0, &mut r, Exit::Hvc { imm: 0 }, &mut FakeHw::default());
    assert_eq!(out, Outcome::Wake(1));
    assert_eq!(r.x[0], 0);
    let p = *vm.vcpus[1].power.lock();
    assert_eq!(p.state, PowerState::OnPending);
    assert_eq!(p.boot, Some((0x4008_0000, 0x1234)));
}

/// PSCI CPU_ON serialisation (KVM `kvm_psci_vcpu_on` under the target's lock): three vCPUs
/// start vCPU 3 at the same moment, 1,000 times; each round exactly one gets SUCCESS and the
/// others ALREADY_ON (before: the others got ON_PENDING, and two could both see SUCCESS).
#[test]
fn concurrent_cpu_on_of_one_target_gives_exactly_one_success() {
    const ALREADY_ON: u64 = -4i64 as u64;
    let vm = vm_from(
        &TWO_VCPUS.replace("vcpus = 2", "vcpus = 4"),
        crate::vgic::lr::LrFormat::V3,
    );
    for round in 0..1000 {
        vm.vcpus[3].power.lock().state = PowerState::Off;
        let start = std::sync::Barrier::new(3);
        let answers: Vec<u64> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..3)
                .map(|caller| {
                    let (vm, start) = (&vm, &start);
                    s.spawn(move || {
                        let mut r = regs_at(0x4000_1000);
                        r.x[..4].copy_from_slice(&[0xc400_0003, 3, 0x4008_0000, caller]);
                        start.wait();
                        vm.handle_exit(
                            caller as usize,
                            &mut r,
                            Exit::Hvc { imm: 0 },
                            &mut FakeHw::default(),
                        );
                        r.x[0]
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let wins = answers.iter().filter(|&&x| x == 0).count();
        let already = answers.iter().filter(|&&x| x == ALREADY_ON).count();
        assert_eq!((wins, already), (1, 2), "round {round}: {answers:x?}");
        assert_eq!(vm.vcpus[3].power.lock().state, PowerState::OnPending);
    }
}

#[test]
fn cpu_on_with_an_entry_point_outside_the_vms_ram_is_invalid_address() {
    let vm = vm();
    for entry in [0x0800_0000, 0x3fff_fffc, 0x4400_0000, u64::MAX - 3] {
        let mut r = regs_at(0x4000_1000);
        r.x[..4].copy_from_slice(&[0xc400_0003, 1, entry, 0]);
        let out = vm.handle_exit(0, &mut r, Exit::Hvc { imm: 0 }, &mut FakeHw::default());
        assert_eq!((out, r.x[0]), (Outcome::Resume, -9i64 as u64), "{entry:#x}");
        assert_eq!(vm.vcpus[1].power.lock().state, PowerState::Off);
    }
}

#[test]
fn system_off_stops_the_vm() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    r.x[0] = 0x8400_0008;
    assert_eq!(
        vm.handle_exit(0, &mut r, Exit::Hvc { imm: 0 }, &mut FakeHw::default()),
        Outcome::VmOff
    );
    assert_eq!(vm.state(), VmState::Stopping);
}

#[test]
fn sgi1r_write_makes_the_sgi_pending_on_the_target_and_kicks_it_if_running() {
    let vm = vm();
    {
        let mut g = vm.vgic.lock();
        g.set_group_enables(true, true);
        g.set_group1(1, IntId(3), true);
        g.set_enabled(1, IntId(3), true);
        let mut sh = crate::vgic::cpu_if::CpuIfShadow::default();
        g.flush(1, &mut sh); // vCPU 1 is running
    }
    let mut r = regs_at(0x4000_1000);
    r.x[5] = 3 << 24 | 0b10; // INTID 3, TargetList = {Aff0 1}
    let mut hw = FakeHw::default();
    let out = vm.handle_exit(
        0,
        &mut r,
        Exit::SysReg {
            id: SysRegId::new(3, 0, 12, 11, 5),
            rt: 5,
            write: true,
        },
        &mut hw,
    );
    assert_eq!(out, Outcome::Resume);
    assert!(vm.vgic.lock().irq(1, IntId(3)).unwrap().is_pending());
    assert_eq!(hw.kicks, 0b10);
    assert_eq!(r.pc, 0x4000_1004);
}

#[test]
fn id_register_read_hides_sve_and_reports_the_vgic() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    let mut hw = FakeHw::default();
    let pfr0 = SysRegId::new(3, 0, 0, 4, 0);
    vm.handle_exit(
        0,
        &mut r,
        Exit::SysReg {
            id: pfr0,
            rt: 7,
            write: false,
        },
        &mut hw,
    );
    assert_eq!(hw.id_reads, [pfr0]);
    assert_eq!(r.x[7] >> 32 & 0xf, 0, "SVE hidden");
    assert_eq!(r.x[7] >> 24 & 0xf, 1, "GICv3 system registers");
}

#[test]
fn trapped_dir_deactivates_in_the_model() {
    let vm = vm();
    vm.vgic.lock().set_active(0, IntId(40), true);
    let mut r = regs_at(0x4000_1000);
    r.x[4] = 40;
    vm.handle_exit(
        0,
        &mut r,
        Exit::SysReg {
            id: ICC_DIR_EL1,
            rt: 4,
            write: true,
        },
        &mut FakeHw::default(),
    );
    assert!(!vm.vgic.lock().irq(0, IntId(40)).unwrap().active);
}

#[test]
fn unknown_system_register_is_undef() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    let pmcr = SysRegId::new(3, 3, 9, 12, 0);
    let out = vm.handle_exit(
        0,
        &mut r,
        Exit::SysReg {
            id: pmcr,
            rt: 1,
            write: false,
        },
        &mut FakeHw::default(),
    );
    assert_eq!(out, Outcome::InjectUndef);
    assert_eq!(vm.vcpus[0].sysregs.get(pmcr), 1);
}

/// Found reading the hostile run's heap figures: each trapped encoding was a new key of the
/// vCPU's counters, and a guest walking the IMPLEMENTATION DEFINED space (TIDCP traps 2,048
/// encodings, more with the debug and PMU spaces) grew the heap with it. The first 64 keep
/// their names; the rest are counted together.
#[test]
fn trapped_system_register_counters_keep_at_most_64_encodings() {
    let vm = vm();
    let mut hw = FakeHw::default();
    let mut n = 0u64;
    for op1 in 0..8 {
        for crm in 0..16 {
            for op2 in 0..2 {
                let exit = Exit::SysReg {
                    id: SysRegId::new(3, op1, 15, crm, op2),
                    rt: 0,
                    write: false,
                };
                vm.handle_exit(0, &mut regs_at(0x4000_1000), exit, &mut hw);
                n += 1;
            }
        }
    }
    let s = &vm.vcpus[0].sysregs;
    assert_eq!(s.len(), MAX_SYSREG_KEYS);
    assert_eq!(s.other(), n - MAX_SYSREG_KEYS as u64);
    let kept: u64 = s.iter().map(|(_, c)| c).sum();
    assert_eq!(kept + s.other(), n, "every trap counted once");
    assert_eq!(vm.vcpus[0].exits.count(ExitReason::SysReg), n);
}

#[test]
fn vendor_call_returns_exit_counters() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    vm.handle_exit(
        0,
        &mut r,
        mmio(0x0a00_0000, 4, true, 1),
        &mut FakeHw::default(),
    );
    r.x[0] = psci::HYP_GET_EXIT_COUNTERS as u64;
    r.x[1] = u64::MAX;
    vm.handle_exit(0, &mut r, Exit::Hvc { imm: 0 }, &mut FakeHw::default());
    assert_eq!(r.x[0], 0);
    assert_eq!(r.x[1], 2, "the MMIO exit and this HVC");
}

#[test]
fn exits_are_counted_by_reason() {
    let vm = vm();
    let mut r = regs_at(0x4000_1000);
    let mut hw = FakeHw::default();
    vm.handle_exit(1, &mut r, Exit::Irq, &mut hw);
    vm.handle_exit(1, &mut r, Exit::Irq, &mut hw);
    vm.handle_exit(
        1,
        &mut r,
        Exit::Wfx {
            wfe: false,
            instr_len: 4,
        },
        &mut hw,
    );
    let s = &vm.vcpus[1].exits;
    assert_eq!(
        (
            s.count(ExitReason::Irq),
            s.count(ExitReason::Wfx),
            s.total()
        ),
        (2, 1, 3)
    );
}

const PASSTHROUGH: &str = r#"
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

#[test]
fn guest_irouter_write_moves_a_passed_through_spi_to_the_target_vcpus_cpu() {
    let vm = vm_from(PASSTHROUGH, crate::vgic::lr::LrFormat::V3);
    // vCPU 0 writes GICD_IROUTER34 = affinity 0.0.0.1 (vCPU 1), as Linux does for
    // /proc/irq/N/smp_affinity.
    let mut r = regs_at(0x4000_1000);
    r.x[2] = 1;
    let ipa = 0x0800_0000 + 0x6000 + 8 * 34;
    let out = vm.handle_exit(0, &mut r, mmio(ipa, 8, true, 2), &mut FakeHw::default());
    assert_eq!(out, Outcome::Resume);
    assert_eq!(vm.vgic.lock().take_phys(0), [PhysOp::Route(34, 1)]);
}

/// Found as a user would: after `reboot` in a guest with the RTC passed through, the alarm
/// never came again. SYSTEM_RESET rebuilt the vGIC without the links made at VM creation.
/// The reset vGIC keeps them (KVM keeps `irq->hw` across a vCPU reset too), and the physical
/// SPI, possibly left active and routed to vCPU 1 by the guest, goes back to inactive and
/// routed to vCPU 0.
#[test]
fn system_reset_keeps_passthrough_links_and_resets_the_physical_spi() {
    let vm = vm_from(PASSTHROUGH, crate::vgic::lr::LrFormat::V3);
    {
        let mut g = vm.vgic.lock();
        g.inject_hw(0, IntId(34), 34);
        g.set_route(0, IntId(34), crate::vgic::irq::Route::Affinity(1));
        while !g.take_phys(0).is_empty() {}
    }
    vm.reset_devices();
    let mut g = vm.vgic.lock();
    assert_eq!(
        g.irq(0, IntId(34)).and_then(|i| i.hw),
        Some(34),
        "still linked"
    );
    assert!(!g.irq(0, IntId(34)).unwrap().active);
    assert_eq!(
        g.take_phys(0),
        [PhysOp::Deactivate(34), PhysOp::Route(34, 0)]
    );
}

// --- A hostile guest: long deterministic random sequences of everything a guest can make
// --- exitless do (any MMIO width and offset in the GIC frames and elsewhere, any HVC/SMC
// --- function, any system register, interrupts, any list-register state the hardware can
// --- hand back), checking that nothing panics and that the invariants hold throughout.

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn hostile_vm(gic: &str, vcpus: usize, lr_format: crate::vgic::lr::LrFormat) -> Vm {
    let toml = format!(
        "[[vm]]\nname = \"h\"\nvcpus = {vcpus}\nmemory = \"64M\"\nkernel = \"Image\"\ngic = {gic}\n\
         [[vm.passthrough]]\nname = \"rtc\"\nmmio = [0x09010000, 0x1000]\nirqs = [34]\n"
    );
    vm_from(&toml, lr_format)
}

/// One random exit, with random registers.
fn hostile_exit(rng: &mut Rng, vcpus: usize, regs: &mut GuestRegs) -> Exit {
    for x in regs.x.iter_mut() {
        *x = match rng.below(4) {
            0 => rng.next(),
            1 => rng.below(64),
            2 => rng.below(vcpus as u64 + 2),
            _ => 0x4000_0000 + rng.below(0x400_0000),
        };
    }
    match rng.below(14) {
        0..=5 => {
            let ipa = match rng.below(6) {
                0 | 1 => 0x0800_0000 + rng.below(0x1_0000),
                2 | 3 => 0x080a_0000 + rng.below(0x2_0000 * vcpus as u64 + 0x1000),
                4 => 0x0900_0000 + rng.below(0x2000),
                _ => rng.next() & 0xffff_ffff_ffff,
            };
            let width = rng.pick(&[1, 2, 4, 8, 4, 4, 3, 16, 0]);
            mmio(ipa, width, rng.below(2) == 0, rng.below(32) as u8)
        }
        6 | 7 => {
            regs.x[0] = match rng.below(5) {
                0 => 0x8400_0000 + rng.below(0x20),
                1 => 0xc400_0000 + rng.below(0x20),
                2 => 0x8600_0000 + rng.pick(&[0, 1, 2, 0xff00, 0xff01, 0xff03]),
                3 => 0x8000_0000 + rng.pick(&[0, 1, 0x3fff, 0x7fff, 0x8000]),
                _ => rng.next(),
            };
            // SYSTEM_OFF and SYSTEM_RESET end the sequence's point; keep the VM running.
            if matches!(regs.x[0] as u32, 0x8400_0008 | 0x8400_0009) {
                regs.x[0] = 0x8400_0000;
            }
            if rng.below(2) == 0 {
                Exit::Hvc { imm: 0 }
            } else {
                Exit::Smc {
                    imm: rng.below(3) as u16,
                }
            }
        }
        8 | 9 => Exit::SysReg {
            id: SysRegId::new(
                rng.below(4) as u8,
                rng.below(8) as u8,
                rng.below(16) as u8,
                rng.below(16) as u8,
                rng.below(8) as u8,
            ),
            rt: rng.below(32) as u8,
            write: rng.below(2) == 0,
        },
        10 => Exit::MmioUndecodable {
            ipa: rng.next() & 0xffff_ffff,
        },
        11 => Exit::Wfx {
            wfe: rng.below(2) == 0,
            instr_len: if rng.below(2) == 0 { 4 } else { 2 },
        },
        12 => rng.pick(&[Exit::Irq, Exit::Fiq]),
        _ => Exit::Undefined {
            ec: rng.below(64) as u8,
        },
    }
}

/// What the hardware may hand back after the guest ran: any state in each loaded LR (V3 and V2
/// formats keep State in 63:62 and 29:28), any EOIcount, either EOImode.
fn hostile_guest_run(rng: &mut Rng, fmt: crate::vgic::lr::LrFormat, sh: &mut CpuIfShadow) {
    let shift = match fmt {
        crate::vgic::lr::LrFormat::V3 => 62,
        crate::vgic::lr::LrFormat::V2 => 28,
    };
    for lr in sh.lrs[..sh.used].iter_mut() {
        if rng.below(2) == 0 {
            *lr = (*lr & !(3 << shift)) | rng.below(4) << shift;
        }
    }
    sh.hcr = (sh.hcr & !(0x1f << 27)) | rng.below(4) << 27;
    sh.eoimode1 = rng.below(4) == 0;
}

fn hostile_run(gic: &str, vcpus: usize, fmt: crate::vgic::lr::LrFormat, seed: u64, steps: usize) {
    let vm = hostile_vm(gic, vcpus, fmt);
    let mut rng = Rng(seed);
    let mut hw = FakeHw::default();
    let mut shadows = std::vec![CpuIfShadow::default(); vcpus];
    let linked = [27, 30, 34];
    // Set up as a guest would, so that interrupts flow; the random writes then undo it.
    {
        let mut g = vm.vgic.lock();
        g.set_group_enables(true, true);
        for w in 0..vcpus {
            for id in 0..64 {
                g.set_group1(w, IntId(id), true);
                g.set_enabled(w, IntId(id), true);
                g.set_priority(w, IntId(id), (id as u8) << 2);
            }
        }
    }
    for step in 0..steps {
        let v = rng.below(vcpus as u64) as usize;
        let ctx = format!("{gic} seed {seed:#x} step {step} vCPU {v}");
        // Flush, let the "guest" run, fold: as the run loop does around every exit.
        {
            let mut g = vm.vgic.lock();
            g.flush(v, &mut shadows[v]);
            let sh = &shadows[v];
            assert!(sh.used <= g.lr_count(), "{ctx}: {} LRs used", sh.used);
            let mut seen = std::vec::Vec::new();
            for e in g.resident(v) {
                assert!(!seen.contains(&e.vintid), "{ctx}: INTID {} twice", e.vintid);
                seen.push(e.vintid);
            }
        }
        hostile_guest_run(&mut rng, fmt, &mut shadows[v]);
        {
            let mut g = vm.vgic.lock();
            g.fold(v, &shadows[v]);
            match rng.below(8) {
                0 => g.inject_hw(v, IntId(27), 27),
                1 => g.inject_hw(v, IntId(30), 30),
                2 => g.inject_hw(0, IntId(34), 34),
                3 => {
                    g.resample_hw_level(v, IntId(27), rng.below(2) == 0);
                }
                4 => g.set_pending(v, IntId(rng.below(64) as u32), true),
                5 => g.send_sgi(v, rng.below(16) as u32, rng.below(1 << vcpus), true),
                _ => {}
            }
            g.drain_checked(&linked, &ctx);
        }
        let mut regs = regs_at(0x4000_1000);
        let exit = hostile_exit(&mut rng, vcpus, &mut regs);
        // An emulated instruction moves the PC by its length (ESR_EL2.IL), nothing else does.
        let len = u64::from(exit.instr_len());
        let out = vm.handle_exit(v, &mut regs, exit, &mut hw);
        assert!(
            !matches!(out, Outcome::VmOff | Outcome::VmReset),
            "{ctx}: {out:?} without SYSTEM_OFF/RESET"
        );
        assert!(
            regs.pc == 0x4000_1000 || regs.pc == 0x4000_1000 + len,
            "{ctx}: PC moved to {:#x} ({len}-byte instruction)",
            regs.pc
        );
    }
    assert_eq!(hw.kicks >> vcpus, 0, "kick of a vCPU that does not exist");
    let loads: u64 = (0..vcpus)
        .map(|w| vm.vgic.lock().cpu(w).unwrap().stats.lr_loads)
        .sum();
    let mmio: u64 = vm.stats.mmio.lock().by_name().iter().map(|(_, c)| c).sum();
    // The sequence must have exercised what it claims to (a vacuous run would pass too).
    assert!(
        loads > 10_000,
        "only {loads} interrupts reached list registers"
    );
    assert!(mmio > 1_000, "only {mmio} emulated MMIO accesses");
    assert!(
        vm.stats.aborts.load(Ordering::Relaxed) > 1_000,
        "too few aborted accesses"
    );
}

#[test]
fn hostile_guest_on_vgicv3_never_panics_and_keeps_the_invariants() {
    for seed in [0x9e37_79b9_7f4a_7c15, 0x1234_5678_9abc_def1] {
        hostile_run("3", 4, crate::vgic::lr::LrFormat::V3, seed, 20_000);
    }
}

#[test]
fn hostile_guest_on_vgicv2_never_panics_and_keeps_the_invariants() {
    for (fmt, seed) in [
        (crate::vgic::lr::LrFormat::V2, 0xdead_beef_cafe_f00d),
        (crate::vgic::lr::LrFormat::V3, 0x0bad_c0de_5eed_0001),
    ] {
        hostile_run("2", 4, fmt, seed, 20_000);
    }
}

/// The MMIO counters are a fixed table: counting allocates nothing and never fails; an access
/// that finds the table full is counted as "other", and the report sums by name.
#[test]
fn mmio_counters_are_bounded_and_count_every_access() {
    use super::{MMIO_COUNTER_SLOTS, MmioCounters, MmioKey};
    let mut m = MmioCounters::default();
    m.add(MmioKey("GICD", "GICD_CTLR"));
    m.add(MmioKey("GICD", "GICD_CTLR"));
    m.add(MmioKey("PL011", "DR"));
    assert_eq!(m.count_of("GICD", "GICD_CTLR"), 2);
    assert_eq!(m.count_of("PL011", "DR"), 1);
    let names = m.by_name();
    assert_eq!(
        names.as_slice(),
        [(("GICD", "GICD_CTLR"), 2), (("PL011", "DR"), 1)],
        "by name, in name order"
    );
    // 100 distinct groups: the table keeps 64, the rest count as other.
    let groups: alloc::vec::Vec<&'static str> = (0..100)
        .map(|i| &*alloc::boxed::Box::leak(alloc::format!("G{i}").into_boxed_str()))
        .collect();
    let mut full = MmioCounters::default();
    for g in &groups {
        full.add(MmioKey("X", g));
    }
    let kept: u64 = full.by_name().iter().map(|(_, c)| c).sum();
    assert_eq!(kept + full.other, 100);
    assert_eq!(full.other, 100 - MMIO_COUNTER_SLOTS as u64);
}

/// Exits are counted at `reason as usize` (no search on the exit path): that must be the
/// reason's place in `ExitReason::ALL`, the order the report prints.
#[test]
fn exit_reasons_are_counted_at_their_place_in_all() {
    for (i, r) in ExitReason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "{r:?}");
    }
}
