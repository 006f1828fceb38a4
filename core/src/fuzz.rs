//! Fuzzing entry points (cargo feature `fuzzing`): each turns a fuzzer's bytes into input for one
//! guest-facing decoder or model and checks what must hold whatever the input. `fuzz/` (cargo-fuzz,
//! libFuzzer) has one target per function; `make fuzz` runs each for a bounded time.
//!
//! A panic is a finding: a guest (the exits, the vGIC, the UART, PSCI) or a user (the bundle, its
//! TOML, the device tree) must never be able to make the hypervisor panic. Each finding is fixed
//! and kept as a host test named after the rule it broke.
//!
//! Every result is passed through `black_box`: most of these functions are pure, and the
//! optimiser would otherwise remove the very calls being fuzzed.
//!
//! Invariants checked beyond "no panic":
//! * [`vm_exits`]: the PC moves by the instruction's length or not at all; no list register
//!   holds an INTID twice and no more are used than exist; the physical work the vGIC asks for
//!   concerns linked interrupts only and routes to vCPUs that exist; no kick names a vCPU that
//!   does not exist.
//! * [`pl011`]: the output the guest can leave behind between two drains is bounded.
//! * [`its`]: the vITS's tables never grow past their reserved size, one access reads guest
//!   memory a bounded number of times and leaves at most `MAX_PHYS_OPS` physical operations,
//!   and no kick names a vCPU that does not exist.

use alloc::format;
use alloc::vec::Vec;
use core::hint::black_box;

use crate::platform::{GicVersion, PlatformInfo};
use crate::trap::esr::SysRegId;
use crate::vcpu::exit::{self, Exit, ExitKind, MmioAccess};
use crate::vcpu::psci::{self, PowerState, PsciVm};
use crate::vcpu::regs::{ExitInfo, GuestRegs};
use crate::vgic::cpu_if::CpuIfShadow;
use crate::vgic::irq::IntId;
use crate::vgic::lr::LrFormat;
use crate::vm::bundle::Bundle;
use crate::vm::config::{self, Config, HostLimits};
use crate::vm::machine::{ExitHw, Outcome, Vm, VmHost};

/// The fuzzer's bytes, read front to back; `None` once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u64_n(&mut self, n: usize) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.u8()?) << (8 * i);
        }
        Some(v)
    }

    fn u32(&mut self) -> Option<u32> {
        self.u64_n(4).map(|v| v as u32)
    }

    fn u64(&mut self) -> Option<u64> {
        self.u64_n(8)
    }
}

/// The most exits one input drives (each exit's work is bounded; this bounds the input's).
const MAX_STEPS: usize = 4096;

/// The shell as the exit handler sees it: ID registers of a CPU with SVE and GICv3, kicks and
/// console output recorded.
#[derive(Default)]
struct FakeHw {
    kicks: u64,
    out: usize,
    phys_ops: usize,
}

impl ExitHw for FakeHw {
    fn read_id_reg(&mut self, _: SysRegId) -> u64 {
        1 << 32 | 1 << 24 | 0x1111
    }

    fn kick(&mut self, _: &Vm, mask: u64) {
        self.kicks |= mask;
    }

    fn console_out(&mut self, _: &Vm, bytes: &[u8]) {
        self.out += bytes.len();
    }
    fn guest_ram(&self) -> &dyn crate::mm::GuestRam {
        &crate::mm::ZEROED_RAM
    }

    fn its_phys(&mut self, _: &Vm, ops: &[crate::vgic::its::PhysItsOp]) {
        self.phys_ops += ops.len();
    }
}

/// A VM (vGICv3 or vGICv2, 1 to 4 vCPUs, the RTC passed through with SPI 34) driven by a
/// sequence of exits, interrupt injections and guest list-register changes, as the run loop
/// would drive it.
pub fn vm_exits(data: &[u8]) {
    let mut b = Bytes(data);
    let Some(head) = b.u8() else { return };
    let gic = if head & 1 == 0 { 3 } else { 2 };
    let vcpus = 1 + usize::from(head >> 1 & 3);
    let fmt = if gic == 3 || head & 8 == 0 {
        LrFormat::V3
    } else {
        LrFormat::V2
    };
    let toml = format!(
        "[[vm]]\nname = \"f\"\nvcpus = {vcpus}\nmemory = \"64M\"\nkernel = \"Image\"\ngic = {gic}\n\
         [[vm.passthrough]]\nname = \"rtc\"\nmmio = [0x09010000, 0x1000]\nirqs = [34]\n"
    );
    let cfg = config::parse(&toml)
        .expect("a valid configuration")
        .vms
        .remove(0);
    let host = VmHost {
        lr_count: 4,
        pri_bits: 5,
        first_pcpu: 0,
        lr_format: fmt,
        direct_lpis: false,
    };
    let vm = Vm::new(0, cfg, &host, (0x4000_0000, 0x4800_0000)).expect("a VM");
    let mut hw = FakeHw::default();
    let mut shadows = alloc::vec![CpuIfShadow::default(); vcpus];
    let lr_shift = match fmt {
        LrFormat::V3 => 62,
        LrFormat::V2 => 28,
    };
    for _ in 0..MAX_STEPS {
        let Some(op) = b.u8() else { break };
        let v = usize::from(op >> 4) % vcpus;
        if crate::hv::power::take_power_on(&vm, v).is_some()
            || vm.vcpus[v].power.lock().state != PowerState::On
        {
            // Off, or just started: the shell would (re)enter it later; this step is its CPU's.
            continue;
        }
        {
            let mut g = vm.vgic.lock();
            g.flush(v, &mut shadows[v]);
            let sh = &mut shadows[v];
            assert!(sh.used <= g.lr_count());
            let mut seen = Vec::new();
            for e in g.resident(v) {
                assert!(!seen.contains(&e.vintid), "INTID {} in two LRs", e.vintid);
                seen.push(e.vintid);
            }
            // What the guest did while it ran: any state in each LR, any EOIcount, EOImode.
            let states = b.u8().unwrap_or(0);
            for (n, lr) in sh.lrs[..sh.used].iter_mut().enumerate() {
                let s = u64::from(states >> (2 * n) & 3);
                *lr = (*lr & !(3 << lr_shift)) | s << lr_shift;
            }
            let extra = b.u8().unwrap_or(0);
            sh.hcr = (sh.hcr & !(0x1f << 27)) | u64::from(extra & 0x1f) << 27;
            sh.eoimode1 = extra & 0x80 != 0;
            g.fold(v, sh);
            match extra >> 5 & 3 {
                1 => g.inject_hw(v, IntId(27), 27),
                2 => g.inject_hw(0, IntId(34), 34),
                3 => {
                    g.resample_hw_level(v, IntId(27), extra & 0x10 != 0);
                }
                _ => {}
            }
            g.drain_checked(&[27, 34], &"vm_exits");
        }
        let mut regs = GuestRegs {
            pc: 0x4000_1000,
            ..Default::default()
        };
        for x in regs.x.iter_mut().take(4) {
            *x = b.u64().unwrap_or(0);
        }
        let Some(exit) = exit_from(&mut b, op & 0xf) else {
            break;
        };
        let len = u64::from(exit.instr_len());
        let out = vm.handle_exit(v, &mut regs, exit, &mut hw);
        assert!(
            regs.pc == 0x4000_1000 || regs.pc == 0x4000_1000 + len,
            "the PC moved to {:#x} after a {len}-byte instruction",
            regs.pc
        );
        match out {
            Outcome::CpuOff => crate::hv::power::set_power(&vm, v, PowerState::Off),
            Outcome::VmOff | Outcome::VmReset => break,
            _ => {}
        }
    }
    assert_eq!(hw.kicks >> vcpus, 0, "a kick of a vCPU that does not exist");
}

/// One exit of kind `kind` (0..=15) with its fields from the bytes.
fn exit_from(b: &mut Bytes, kind: u8) -> Option<Exit> {
    Some(match kind {
        0..=5 => {
            let base = [
                0x0800_0000,
                0x080a_0000,
                0x0900_0000,
                0x0901_0000,
                0,
                0x4000_0000,
            ][usize::from(kind)];
            let off = u64::from(b.u32()?) & if kind == 4 { !0 } else { 0x3_ffff };
            let w = b.u8()?;
            Exit::Mmio(MmioAccess {
                ipa: base + off,
                width: [1, 2, 4, 8][usize::from(w & 3)],
                write: w & 4 != 0,
                reg: w >> 3,
                sign_extend: false,
                sixty_four: true,
                instr_len: if b.u8()? & 1 == 0 { 4 } else { 2 },
            })
        }
        6 => Exit::Hvc { imm: 0 },
        7 => Exit::Smc { imm: 0 },
        8 | 9 => {
            let e = b.u32()?;
            Exit::SysReg {
                id: SysRegId::new(
                    (e & 3) as u8,
                    (e >> 2 & 7) as u8,
                    (e >> 5 & 15) as u8,
                    (e >> 9 & 15) as u8,
                    (e >> 13 & 7) as u8,
                ),
                rt: (e >> 16 & 31) as u8,
                write: kind == 9,
            }
        }
        10 => Exit::MmioUndecodable {
            ipa: u64::from(b.u32()?),
        },
        11 => Exit::Wfx {
            wfe: b.u8()? & 1 != 0,
            instr_len: 4,
        },
        12 => Exit::Irq,
        13 => Exit::Fiq,
        // A raw syndrome, decoded as the shell decodes it.
        _ => {
            let info = ExitInfo {
                esr: b.u64()?,
                far: b.u64()?,
                hpfar: b.u64()?,
            };
            exit::decode(&info, ExitKind::Sync)
        }
    })
}

/// ESR_EL2/FAR_EL2/HPFAR_EL2 as any exception vector may see them, decoded and printed.
pub fn esr(data: &[u8]) {
    let mut b = Bytes(data);
    let (Some(esr), Some(far), Some(hpfar), Some(k)) = (b.u64(), b.u64(), b.u64(), b.u8()) else {
        return;
    };
    let kind = [
        ExitKind::Sync,
        ExitKind::Irq,
        ExitKind::Fiq,
        ExitKind::SError,
    ][usize::from(k & 3)];
    let e = exit::decode(&ExitInfo { esr, far, hpfar }, kind);
    black_box(format!("{e} {e:?}"));
    if let Exit::Mmio(a) = e {
        assert!(matches!(a.width, 1 | 2 | 4 | 8), "{a:?}");
        assert!(matches!(a.instr_len, 2 | 4), "{a:?}");
        assert!(a.reg < 32, "{a:?}");
    }
}

/// A VM that PSCI sees: 4 vCPUs with MPIDRs 0..3 whose power states come from the input, RAM at
/// 0x4000_0000..0x8000_0000.
struct PsciFake([PowerState; 4]);

impl PsciVm for PsciFake {
    fn vcpu_count(&self) -> usize {
        4
    }
    fn mpidr_to_vcpu(&self, mpidr: u64) -> Option<usize> {
        (mpidr < 4).then_some(mpidr as usize)
    }
    fn power_state(&self, vcpu: usize) -> PowerState {
        self.0[vcpu]
    }
    fn entry_point_valid(&self, entry: u64) -> bool {
        (0x4000_0000..0x8000_0000).contains(&entry)
    }
}

/// PSCI/SMCCC calls with any function ID and arguments, from any vCPU in any power states.
pub fn psci(data: &[u8]) {
    let mut b = Bytes(data);
    while let (Some(s), Some(f)) = (b.u8(), b.u32()) {
        let state = |n: u8| match n & 3 {
            0 => PowerState::Off,
            1 => PowerState::OnPending,
            _ => PowerState::On,
        };
        let vm = PsciFake([state(s), state(s >> 2), state(s >> 4), state(s >> 6)]);
        let call = [
            u64::from(f),
            b.u64().unwrap_or(0),
            b.u64().unwrap_or(0),
            b.u64().unwrap_or(0),
        ];
        black_box(psci::handle(&call, usize::from(s & 3), &vm));
    }
}

/// The emulated PL011 driven by any sequence of reads, writes and received bytes.
pub fn pl011(data: &[u8]) {
    let mut b = Bytes(data);
    let mut uart = crate::dev::pl011::Pl011::new();
    while let Some(op) = b.u8() {
        let offset = u64::from(b.u32().unwrap_or(0) & 0xfff);
        let width = [1, 2, 4, 8][usize::from(op >> 1 & 3)];
        match op & 1 {
            0 => {
                black_box(uart.mmio_read(offset, width));
            }
            _ => uart.mmio_write(offset, width, b.u64().unwrap_or(0)),
        }
        if op & 0x10 != 0 {
            black_box(uart.receive(op));
        }
        // The shell drains the output after every exit: one write leaves at most one byte.
        assert!(uart.take_output().count() <= 1);
    }
}

/// Guest RAM that counts its reads (for the per-access bound).
struct CountingRam<'a> {
    ram: crate::mm::SliceRam<'a>,
    reads: core::cell::Cell<u64>,
}

impl crate::mm::GuestRam for CountingRam<'_> {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        self.reads.set(self.reads.get() + 1);
        self.ram.read(ipa, buf)
    }
}

/// A VM's ITS (4 vCPUs, every DeviceID but 0 owned by the VM; their events injected directly,
/// GICv4, when the input's first byte is odd) driven by any guest: the first 16 KiB of the
/// input are its RAM (command queue, tables: whatever the guest wrote), the rest
/// a sequence of GITS_* accesses, redistributor LPI register writes, device events and list
/// register round trips.
pub fn its(data: &[u8]) {
    use crate::vgic::its::{Its, ItsConfig, MAX_PHYS_OPS, WORK_BUDGET, regs};
    const BASE: u64 = 0x4000_0000;
    let (image, ops) = data.split_at(data.len().min(0x4000));
    let mut bytes = alloc::vec![0u8; 0x4_0000];
    bytes[..image.len()].copy_from_slice(image);
    let ram = CountingRam {
        ram: crate::mm::SliceRam {
            base: BASE,
            bytes: &bytes,
        },
        reads: core::cell::Cell::new(0),
    };
    let cfg = ItsConfig {
        vcpus: 4,
        max_devices: 8,
        max_events: 32,
    };
    let mut its = Its::new(cfg);
    its.set_owned(1..0x1_0000, data.first().is_some_and(|b| b & 1 != 0));
    let reserved = its.reserved();
    let offsets = [
        regs::GITS_CTLR,
        regs::GITS_IIDR,
        regs::GITS_TYPER,
        regs::GITS_CBASER,
        regs::GITS_CWRITER,
        regs::GITS_CREADR,
        regs::GITS_BASER,
        regs::GITS_BASER + 8,
        regs::GITS_TRANSLATER,
    ];
    let mut b = Bytes(ops);
    while let Some(op) = b.u8() {
        ram.reads.set(0);
        let sel = usize::from(b.u8().unwrap_or(0));
        let width = [1, 2, 4, 8][usize::from(op >> 4 & 3)];
        let offset = match op >> 6 {
            0 => u64::from(b.u32().unwrap_or(0)) % regs::GITS_SIZE,
            _ => offsets[sel % offsets.len()] + u64::from(op >> 4 & 1) * 4,
        };
        let v = b.u64().unwrap_or(0);
        // Addresses the guest writes mostly point into its RAM, where the input put its tables.
        let v = if op & 8 != 0 {
            BASE | (v & 0x3_ffe0) | v >> 63 << 63
        } else {
            v
        };
        match op & 7 {
            0 => {
                black_box(its.read(offset, width, &ram));
            }
            1 | 2 => {
                black_box(its.write(offset, width, v, &ram));
            }
            3 => its.set_propbaser(sel % 4, v),
            4 => its.set_pendbaser(sel % 4, v),
            5 => its.set_lpis_enabled(sel % 4, v & 1 != 0, &ram),
            6 => {
                let _ = black_box(its.raise(v as u32 & 0xffff, (v >> 32) as u32));
            }
            _ => {
                let intid = 8192 + (v as u32 & 0xff);
                its.set_pending(intid, v >> 63 != 0);
                if let Some(st) = its.lpi_mut(intid) {
                    st.active = v >> 62 & 1 != 0;
                }
            }
        }
        // Bounded work per access: a command is four reads, a unit at most one more.
        assert!(
            ram.reads.get() <= 5 * u64::from(WORK_BUDGET) + 4096,
            "{} reads",
            ram.reads.get()
        );
        assert!(its.take_phys_ops().len() <= MAX_PHYS_OPS);
        assert_eq!(
            its.take_kicks() >> 4,
            0,
            "a kick of a vCPU that does not exist"
        );
        let (devices, events, lpis, _) = its.usage();
        assert!(devices <= 8 && events <= 32 && lpis <= 32);
        assert_eq!(its.reserved(), reserved, "a table grew");
        for v in 0..4 {
            black_box(its.deliverable_for(v).count());
        }
    }
}

/// A VM bundle (newc cpio) and its `exitless.toml`, parsed and checked against a host.
pub fn bundle(data: &[u8]) {
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    for (name, bytes) in bundle.files() {
        assert_eq!(bundle.file(name).map(<[u8]>::len), Some(bytes.len()));
    }
    if let Some(text) = bundle.config()
        && let Ok(c) = Config::parse_bytes(text)
    {
        let _ = black_box(c.check(&limits()).and_then(|()| c.check_files(&bundle)));
    }
}

/// A configuration file as a user may write it, parsed and checked against a host.
pub fn config(data: &[u8]) {
    if let Ok(c) = Config::parse_bytes(data) {
        let _ = black_box(c.check(&limits()));
    }
}

fn limits() -> HostLimits<'static> {
    HostLimits {
        cpus: 4,
        free_memory: 1 << 30,
        gic: GicVersion::V3,
        gicv2_compat: true,
        ipa_bits: 40,
        owned: &[],
        pci_bridge: true,
    }
}

/// A device tree as a boot loader may hand it over, validated and interpreted as at boot
/// (src/boot: `validate_and_normalize`, then `PlatformInfo::parse`). The `fdt` crate itself
/// panics on some malformed trees (a property longer than the structure block: the first input
/// this target ran); the validation in front of it must refuse every such tree.
pub fn dtb(data: &[u8]) {
    let mut blob = data.to_vec();
    let Ok(fdt) = crate::platform::dt::validate_and_normalize(&mut blob) else {
        return;
    };
    let info = PlatformInfo::parse(&fdt, 0x4000_0000);
    black_box(config::host_regions(&info));
    black_box(info);
}
