//! The counters report a VM prints when it powers off (and on Ctrl-] c): exits per vCPU by
//! reason, the vGIC's list-register work, trapped system registers, MMIO exits by device and
//! register group, interrupts injected by kind, and the figure the product is about: exits for
//! acknowledging and completing interrupts, which the hardware CPU interface makes zero.

use alloc::string::{String, ToString};
use core::fmt;
use core::sync::atomic::Ordering;

use crate::trap::esr::SysRegId;
use crate::vm::machine::{ExitReason, MAX_SYSREG_KEYS, Vm};

/// The GIC CPU-interface registers whose trap would be an exit for acknowledging or completing
/// an interrupt (GICv3 system registers; on a vGICv2 the same work is GICC MMIO).
pub const ACK_EOI_REGS: [(&str, SysRegId); 6] = [
    ("ICC_IAR1_EL1", SysRegId::new(3, 0, 12, 12, 0)),
    ("ICC_EOIR1_EL1", SysRegId::new(3, 0, 12, 12, 1)),
    ("ICC_IAR0_EL1", SysRegId::new(3, 0, 12, 8, 0)),
    ("ICC_EOIR0_EL1", SysRegId::new(3, 0, 12, 8, 1)),
    ("ICC_DIR_EL1", SysRegId::new(3, 0, 12, 11, 1)),
    ("ICC_PMR_EL1", SysRegId::new(3, 0, 4, 6, 0)),
];

/// The counters report of `vm`, one line per fact, ending with a newline.
pub fn counters(vm: &Vm) -> String {
    Counters(vm).to_string()
}

/// The counters report of a VM, written as it is formatted: nothing is allocated (the console's
/// counters key prints it on CPU 0's exit path).
pub struct Counters<'a>(pub &'a Vm);

impl fmt::Display for Counters<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_counters(self.0, out)
    }
}

fn write_counters(vm: &Vm, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(out, "=== counters of VM '{}' ===", vm.name())?;
    let mut ack_eoi_exits = 0;
    for (n, slot) in vm.vcpus.iter().enumerate() {
        let s = slot.stats.lock().clone();
        write!(out, "vCPU {n}: {} exits:", slot.exits.total())?;
        for r in ExitReason::ALL {
            let c = slot.exits.count(r);
            if c > 0 {
                write!(out, " {} {c}", r.name())?;
            }
        }
        writeln!(
            out,
            "; maintenance interrupts {}, kicks {}",
            s.maintenance, s.kicks
        )?;
        if let Some(c) = vm.vgic.lock().cpu(n).map(|c| c.stats) {
            writeln!(
                out,
                "  vGIC: {} interrupts loaded into list registers, {} LR overflows, {} EOIcount \
                 deactivations",
                c.lr_loads, c.lr_overflows, c.eoicount_deactivations
            )?;
        }
        let sysregs = &slot.sysregs;
        if !sysregs.is_empty() || sysregs.other() != 0 {
            let is_id = |id: &SysRegId| id.op0() == 3 && id.op1() == 0 && id.crn() == 0;
            let mut regs: heapless::Vec<(SysRegId, u64), MAX_SYSREG_KEYS> =
                sysregs.iter().collect();
            regs.sort_unstable_by_key(|(id, _)| id.raw());
            let ids: u64 = regs
                .iter()
                .filter(|(id, _)| is_id(id))
                .map(|(_, c)| c)
                .sum();
            write!(out, "  trapped system registers: ID registers (TID3) {ids}")?;
            for (id, c) in regs.iter().filter(|(id, _)| !is_id(id)) {
                write!(out, ", {id} {c}")?;
            }
            if sysregs.other() != 0 {
                write!(out, ", other encodings {}", sysregs.other())?;
            }
            writeln!(out)?;
        }
        ack_eoi_exits += ACK_EOI_REGS
            .iter()
            .map(|(_, id)| sysregs.get(*id))
            .sum::<u64>();
    }
    let (mmio, other) = {
        let m = vm.stats.mmio.lock();
        (m.by_name(), m.other)
    };
    write!(out, "MMIO exits by device/register:")?;
    for ((dev, group), c) in mmio.iter() {
        write!(out, " {dev}.{group}={c}")?;
    }
    if other != 0 {
        write!(out, " other={other}")?;
    }
    writeln!(out)?;
    let inj: [u64; 5] = core::array::from_fn(|i| vm.stats.injected[i].load(Ordering::Relaxed));
    writeln!(
        out,
        "interrupts injected: SGI {} (sends), timer PPI {} (linked, HW bit), UART SPI {}, \
         passthrough SPI {} ({} taken on another vCPU's CPU), MSI {} (physical LPIs of owned \
         PCI functions); guest aborts {}",
        inj[0],
        inj[1],
        inj[2],
        inj[3],
        vm.stats.passthrough_remote.load(Ordering::Relaxed),
        inj[4],
        vm.stats.aborts.load(Ordering::Relaxed)
    )?;
    if let Some(its) = vm.vgic.lock().its() {
        let st = its.stats;
        let (devices, events, lpis, cfg) = its.usage();
        write!(out, "ITS: {} commands, {} skipped", st.commands, st.errors)?;
        if let Some((op, why)) = st.last_error {
            write!(out, " (last: opcode {op:#04x}, {why:?})")?;
        }
        write!(
            out,
            "; {} LPIs raised; {devices} of {} devices, {events} of {} events, {lpis} LPIs \
             mapped; {} accesses stopped at the work budget",
            st.lpis_raised, cfg.max_devices, cfg.max_events, st.budget_stops
        )?;
        if its.direct() {
            write!(
                out,
                "; direct injection (GICv4): {} events of owned devices are vLPIs the hardware \
                 delivers with no exit",
                its.direct_events()
            )?;
        }
        writeln!(out)?;
    }
    let gicc_exits = mmio
        .iter()
        .filter(|((d, _), _)| *d == "GICC")
        .map(|(_, c)| c)
        .sum::<u64>();
    writeln!(
        out,
        "exits for interrupt acknowledge and completion (ICC_IAR/EOIR/DIR/PMR traps, GICC MMIO): {}",
        ack_eoi_exits + gicc_exits
    )
}
