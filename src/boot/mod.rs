//! Boot: from the boot loader's jump to `_start` (entry.S) to a hypervisor with its MMU on, its
//! heap, its GIC and every CPU online.
//!
//! The primary CPU runs [`primary_main`]: device tree, console and log, exception level check,
//! EL2 page tables, heap, GIC, secondary CPUs, banner. Secondaries run [`secondary::secondary_main`].
//! A user's mistake (no EL2, no or corrupt DTB, a platform without a GIC) ends here with one
//! clear line and a power-off, never with an exception dump.

pub mod secondary;

use core::fmt::Write;

use crate::arch::{self, mmu, psci, timer};
use crate::drivers::{console, gic};
use crate::machine::{heap, power};

use exitless_core::mm::ImageLayout;
use exitless_core::platform::{self, PlatformInfo, dt, fallback};
use exitless_core::util::cmdline;

/// Per-CPU stack size.
pub const STACK_SIZE: usize = 64 * 1024;

core::arch::global_asm!(
    include_str!("entry.S"),
    STACK_SIZE = const STACK_SIZE,
    MAX_CPUS = const platform::MAX_CPUS,
);

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

/// The running image's layout (addresses are physical: exitless maps memory identity).
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: &raw const __image_start as u64,
        text_end: &raw const __text_end as u64,
        rodata_end: &raw const __rodata_end as u64,
        end: &raw const __image_end as u64,
    }
}

/// The version line every boot starts with.
const VERSION: &str = concat!("exitless ", env!("CARGO_PKG_VERSION"));

/// Reads the DTB that the boot loader left at `pa`.
fn read_dtb(pa: u64) -> Result<&'static mut [u8], dt::DtError> {
    if pa == 0 {
        return Err(dt::DtError::NoDtb);
    }
    if !pa.is_multiple_of(8) {
        return Err(dt::DtError::BadHeader);
    }
    // SAFETY: the arm64 boot protocol (Linux booting.rst, which QEMU, U-Boot and the Pi firmware
    // follow) puts an 8-byte aligned DTB at x0 in RAM and never changes it afterwards. The
    // header is read first, so at most `totalsize` bytes (bounded by MAX_DTB_SIZE) are exposed.
    let header = unsafe { core::slice::from_raw_parts(pa as *const u8, dt::HEADER_SIZE) };
    let size = dt::total_size(header)?;
    // SAFETY: as above, for the size the header declares; the blob is exitless's from now on
    // (reserved from every allocation), and this is the only reference to it.
    Ok(unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, size) })
}

/// The boot cannot go on: print why (and what to do) and power off.
fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    log::error!("{args}");
    power::power_off()
}

/// Without a device tree there is no console to trust: guess one from the load address (see
/// `platform::fallback`), say what went wrong, and power off if the guess knows how.
fn fatal_no_dtb(err: dt::DtError, dtb_pa: u64, load: u64, el: u64) -> ! {
    let guess = fallback::guess(load);
    // SAFETY: a last-resort guess, documented in `platform::fallback`: the UART QEMU virt or the
    // Raspberry Pi 4 has at that address, written with the MMU off.
    unsafe { console::init(&guess.console()) };
    console::print(format_args!(
        "{VERSION} (started at EL{el}): cannot use the device tree at {dtb_pa:#x}: {err}.\n\
         exitless needs the boot loader to pass a valid DTB in x0: QEMU `-kernel` does it; \
         U-Boot: `booti <image addr> <bundle addr>:<bundle size in hex> <fdt addr>` (on QEMU \
         the fdt is ${{fdtcontroladdr}}); the Raspberry Pi firmware: a .dtb next to the image \
         that config.txt names.\n",
    ));
    let conduit = guess.psci(el as u8);
    console::print(format_args!(
        "(console guessed for {}; {})\n",
        guess.name(),
        if conduit.is_some() {
            "powering off"
        } else {
            "halting"
        }
    ));
    if let Some(conduit) = conduit {
        psci::system_off(conduit);
    }
    arch::halt()
}

/// The primary CPU's Rust entry, from `entry.S`, MMU off, .bss zeroed, relocated.
#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_pa: u64, el: u64, load: u64) -> ! {
    timer::mark_boot();
    let blob = read_dtb(dtb_pa).unwrap_or_else(|e| fatal_no_dtb(e, dtb_pa, load, el));
    let fdt =
        dt::validate_and_normalize(blob).unwrap_or_else(|e| fatal_no_dtb(e, dtb_pa, load, el));
    let info = PlatformInfo::parse(&fdt, dtb_pa);
    power::init(info.psci, info.bcm2835_pm);

    // A Raspberry Pi 4: exitless routes and programs UART0 itself (platform::bcm2711).
    let owned = info.owned_console.map(|o| {
        // SAFETY: the GPIO block and UART0 come from the device tree's BCM2711 nodes; the MMU
        // is off, so they are reached directly; nothing else drives them yet.
        (o, unsafe { console::setup_owned(&o) })
    });
    match &info.console {
        // SAFETY: the UART is the one `/chosen/stdout-path` names (or UART0, set up above);
        // the MMU is off and later maps it as device memory; nothing else drives it.
        Ok(uart) => unsafe { console::init(uart) },
        Err(problem) => {
            let guess = fallback::guess(load);
            // SAFETY: last-resort guess as in `fatal_no_dtb`.
            unsafe { console::init(&guess.console()) };
            console::print(format_args!(
                "{VERSION}: no usable console in the device tree ({problem:?}: /chosen/stdout-path \
                 must name an arm,pl011 or brcm,bcm2835-aux-uart); guessing {}\n",
                guess.name()
            ));
        }
    }
    let opts = cmdline::parse(info.bootargs);
    console::init_logger(opts.log_level);

    if el != 2 {
        fatal(format_args!(
            "{VERSION} must be started at EL2 (it was started at EL{el}). Start it with the \
                 virtualization extensions on: on QEMU, -machine virt,virtualization=on"
        ));
    }
    let from = if el == 3 { " (dropped from EL3)" } else { "" };
    log::info!(
        "{VERSION} starting at EL2{from} (non-VHE) on {:?}, image at {load:#x}, DTB at {dtb_pa:#x}",
        info.model
    );
    if let Some((o, done)) = owned {
        match done.uart {
            Some(u) => log::info!(
                "console: UART0 (PL011 at {:#x}) set up by exitless: GPIO 14/15 ALT0 (GPFSEL1 \
                 {:#010x}), {} 8N1 from {} MHz (IBRD {}, FBRD {}, LCR_H {:#x}, CR {:#x}){}",
                o.uart.base,
                done.gpfsel1,
                o.baud,
                o.clock_hz / 1_000_000,
                u.ibrd,
                u.fbrd,
                u.lcr_h,
                u.cr,
                if u.was_idle {
                    ""
                } else {
                    "; it was still busy"
                }
            ),
            None => log::warn!("console: no PL011 divisor for {} baud", o.baud),
        }
    }
    if let Some((word, _)) = opts.bad {
        log::warn!("ignoring unknown option {word:?} (known: exitless.log=<level>)");
    }
    if let Err(e) = info.check() {
        fatal(format_args!("unusable platform: {e}"));
    }

    let image = image_layout();
    if let Err(e) = mmu::init(&info, &image) {
        fatal(format_args!("cannot build the EL2 page tables: {e}"));
    }
    mmu::enable_primary(&image);
    log::debug!("EL2 MMU on: {}", mmu::describe());
    // Every lock and busy-wait of the core now waits with YIELD (before this only this CPU ran).
    exitless_core::util::lock::set_wait_hint(arch::spin_hint);

    let heap = heap::init(&info, &image).unwrap_or_else(|e| fatal(format_args!("{e}")));
    log_memory(&info, heap);

    // SAFETY: the GIC frames come from the device tree and are mapped as device memory by
    // `mmu::init`; only this driver touches them.
    let g = unsafe { gic::init(info.gic.as_ref().expect("checked by PlatformInfo::check")) };
    let g = g.unwrap_or_else(|e| fatal(format_args!("GIC: {e}")));
    if let Err(e) = g.init_cpu() {
        fatal(format_args!("GIC CPU interface: {e}"));
    }
    let facts = g.facts();
    log::info!("GIC: {facts}");
    if let Some(m) = info.gic.as_ref().and_then(|g| g.maintenance()) {
        log::info!("GIC: maintenance interrupt INTID {}", m.intid);
    }
    if let gic::Gic::V3(v3) = g
        && !v3.its_frames().is_empty()
    {
        match crate::drivers::its::init(v3) {
            Ok(line) => log::info!("{line}"),
            Err(e) => log::warn!("{e}: exitless does not use the ITS (the VMs' ITS is emulated)"),
        }
    }
    if let Some(c) = info.psci {
        let (major, minor) = psci::version(c).unwrap_or((0, 0));
        log::info!("PSCI {major}.{minor} over {c:?}");
    }
    if let Some(t) = &info.timer {
        log::info!(
            "timer: {} Hz, PPIs: EL1 virtual {}, EL1 physical {}, EL2 physical {}",
            timer::frequency(),
            t.virt.intid,
            t.phys.intid,
            t.hyp_phys.intid
        );
    }

    crate::hv::register_cpu(0);
    let online = secondary::start_all(&info);
    log::info!("all {online} CPUs online");
    if online < info.cpus.len() {
        log::warn!(
            "{} of {} CPUs did not come up",
            info.cpus.len() - online,
            info.cpus.len()
        );
    }
    crate::hv::start(&info, online, opts.test_fatal)
}

fn log_memory(info: &PlatformInfo<'_>, heap: exitless_core::mm::MemRange) {
    let mut line = heapless::String::<256>::new();
    for b in &info.memory {
        let _ = write!(line, " {b}");
    }
    log::info!("memory:{line}");
    for r in &info.reserved {
        log::debug!("reserved {} ({:?})", r.range, r.kind);
    }
    log::info!("heap {} ({} KiB)", heap, heap.size() / 1024);
}
