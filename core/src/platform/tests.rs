//! Device-tree interpretation against real trees: the DTBs QEMU 7.2 gives `virt` with GICv2, v3
//! and v4, QEMU 10's `raspi4b` one, and the Raspberry Pi 4 DTB the firmware starts from
//! (`scripts/fixtures`, compiled with dtc on the fly).

use std::path::PathBuf;
use std::process::Command;

use super::*;
use std::vec::Vec;

/// Compiles `scripts/fixtures/<name>.dts` with dtc and returns the blob.
fn fixture(name: &str) -> Vec<u8> {
    // The fixtures live in the workspace root, one level above this crate.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = root.join("scripts/fixtures").join(format!("{name}.dts"));
    let out = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .arg(&src)
        .output()
        .expect("dtc (device-tree-compiler) is needed by the platform tests: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "dtc failed on {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn with_platform(name: &str, dtb_pa: u64, f: impl FnOnce(&PlatformInfo<'_>)) {
    let blob = fixture(name);
    let fdt = dt::validate(&blob).expect("fixture must validate");
    let info = PlatformInfo::parse(&fdt, dtb_pa);
    f(&info);
}

/// `scripts/fixtures/<name>.dts` with each `(from, to)` text replacement made (each `from` must
/// be there), compiled with dtc.
fn patched_fixture(name: &str, edits: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write as _;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut text =
        std::fs::read_to_string(root.join("scripts/fixtures").join(format!("{name}.dts")))
            .expect("fixture source");
    for (from, to) in edits {
        assert!(text.contains(from), "{name}.dts has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    let mut child = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dtc (device-tree-compiler) is needed by the platform tests: run scripts/setup.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dtc failed on the patched {name}.dts");
    out.stdout
}

fn r(start: u64, size: u64) -> MemRange {
    MemRange::with_size(start, size).unwrap()
}

#[test]
fn virt_gicv3_frames_its_and_maintenance_irq() {
    with_platform("virt-gicv3", 0x4800_0000, |p| {
        let Some(GicInfo::V3(g)) = &p.gic else {
            panic!("expected GICv3, got {:?}", p.gic)
        };
        assert_eq!(g.gicd, r(0x0800_0000, 0x1_0000));
        assert_eq!(g.redist_regions.as_slice(), &[r(0x080a_0000, 0xf6_0000)]);
        assert_eq!(g.its.as_slice(), &[r(0x0808_0000, 0x2_0000)]);
        assert_eq!(g.redist_stride, None);
        assert_eq!(
            g.maintenance,
            Some(Interrupt {
                intid: 25,
                level: true
            })
        );
        assert_eq!(g.v2_compat, None);
        assert!(p.check().is_ok());
    });
}

#[test]
fn virt_gicv3_memory_cpus_psci_timer() {
    with_platform("virt-gicv3", 0x4800_0000, |p| {
        assert_eq!(p.memory.as_slice(), &[r(0x4000_0000, 1 << 30)]);
        assert_eq!(p.cpus.len(), 4);
        for (i, c) in p.cpus.iter().enumerate() {
            assert_eq!(c.mpidr, i as u64);
            assert_eq!(c.enable, EnableMethod::Psci);
        }
        assert_eq!(p.psci, Some(Conduit::Smc));
        let t = p.timer.expect("timer");
        assert_eq!(
            (
                t.secure_phys.intid,
                t.phys.intid,
                t.virt.intid,
                t.hyp_phys.intid
            ),
            (29, 30, 27, 26)
        );
        assert_eq!(p.model, "linux,dummy-virt");
        assert_eq!(p.bcm2835_pm, None);
        assert_eq!(p.dma_limit, None);
    });
}

#[test]
fn virt_stdout_path_names_the_pl011() {
    with_platform("virt-gicv3", 0x4800_0000, |p| {
        let uart = p.console.expect("console");
        assert_eq!(uart.kind, UartKind::Pl011);
        assert_eq!(uart.base, 0x0900_0000);
        assert_eq!(
            uart.irq,
            Some(Interrupt {
                intid: 33,
                level: true
            })
        );
    });
}

#[test]
fn virt_chosen_initrd_bootargs_and_dtb_are_reserved() {
    with_platform("virt-gicv3", 0x4800_0000, |p| {
        assert_eq!(p.bootargs, "console=ttyAMA0 exitless.log=debug");
        assert_eq!(
            p.initrd,
            Some(MemRange {
                start: 0x4800_0000,
                end: 0x4800_1000
            })
        );
        let kinds: Vec<_> = p.reserved.iter().map(|r| r.kind).collect();
        assert!(kinds.contains(&ReservedKind::Dtb));
        assert!(kinds.contains(&ReservedKind::Initrd));
        let dtb = p
            .reserved
            .iter()
            .find(|r| r.kind == ReservedKind::Dtb)
            .unwrap();
        assert_eq!(dtb.range.start, 0x4800_0000);
        assert_eq!(dtb.range.size(), fixture("virt-gicv3").len() as u64);
    });
}

#[test]
fn virt_gicv2_has_four_frames_and_maintenance_irq() {
    with_platform("virt-gicv2", 0x4800_0000, |p| {
        let Some(GicInfo::V2(g)) = &p.gic else {
            panic!("expected GICv2, got {:?}", p.gic)
        };
        assert_eq!(g.gicd, r(0x0800_0000, 0x1_0000));
        assert_eq!(g.gicc, r(0x0801_0000, 0x1_0000));
        assert_eq!(g.gich, Some(r(0x0803_0000, 0x1_0000)));
        assert_eq!(g.gicv, Some(r(0x0804_0000, 0x1_0000)));
        assert_eq!(
            g.maintenance,
            Some(Interrupt {
                intid: 25,
                level: true
            })
        );
        assert!(p.check().is_ok());
    });
}

#[test]
fn virt_gicv4_is_described_like_gicv3() {
    with_platform("virt-gicv4", 0x4800_0000, |p| {
        assert_eq!(p.gic.as_ref().map(GicInfo::version), Some(GicVersion::V3));
        let Some(GicInfo::V3(g)) = &p.gic else {
            unreachable!()
        };
        assert_eq!(g.its.len(), 1);
        assert_eq!(
            g.redist_stride, None,
            "the stride comes from GICR_TYPER.VLPIS"
        );
    });
}

#[test]
fn virt_cpu_max_two_cpus() {
    with_platform("virt-gicv3-max", 0x4800_0000, |p| {
        assert_eq!(p.cpus.len(), 2);
        assert_eq!(
            p.cpu_index(0x8000_0001),
            Some(1),
            "MPIDR bit 31 (RES1) is ignored"
        );
    });
}

#[test]
fn rpi4_gic400_is_translated_through_soc_ranges() {
    with_platform("rpi4b", 0x0800_0000, |p| {
        let Some(GicInfo::V2(g)) = &p.gic else {
            panic!("expected GIC-400, got {:?}", p.gic)
        };
        assert_eq!(g.gicd, r(0xff84_1000, 0x1000));
        assert_eq!(g.gicc, r(0xff84_2000, 0x2000));
        assert_eq!(g.gich, Some(r(0xff84_4000, 0x2000)));
        assert_eq!(g.gicv, Some(r(0xff84_6000, 0x2000)));
        assert_eq!(
            g.maintenance,
            Some(Interrupt {
                intid: 25,
                level: true
            })
        );
    });
}

#[test]
fn rpi4_console_is_uart0_pl011_at_0xfe201000() {
    with_platform("rpi4b", 0x0800_0000, |p| {
        let uart = p.console.expect("console");
        assert_eq!(uart.kind, UartKind::Pl011);
        assert_eq!(uart.base, 0xfe20_1000);
        assert_eq!(
            uart.irq,
            Some(Interrupt {
                intid: 153,
                level: true
            })
        );
    });
}

#[test]
fn rpi4_cpus_use_spin_table_slots() {
    with_platform("rpi4b", 0x0800_0000, |p| {
        let slots: Vec<_> = p.cpus.iter().map(|c| c.enable).collect();
        assert_eq!(
            slots,
            [0xd8, 0xe0, 0xe8, 0xf0]
                .map(|a| EnableMethod::SpinTable { release_addr: a })
                .to_vec()
        );
        assert_eq!(p.psci, None, "the Pi firmware has no PSCI");
        assert_eq!(
            p.dma_limit,
            Some(0x4000_0000),
            "legacy DMA masters see the first GiB"
        );
        assert_eq!(p.bcm2835_pm, Some(0xfe10_0000));
    });
}

#[test]
fn rpi4_memory_and_memreserve() {
    with_platform("rpi4b", 0x0800_0000, |p| {
        assert_eq!(p.memory.as_slice(), &[r(0, 0x3c00_0000)]);
        assert!(
            p.reserved
                .iter()
                .any(|x| x.kind == ReservedKind::MemReserve && x.range == r(0, 0x1000))
        );
        let t = p.timer.expect("timer");
        assert_eq!((t.phys.intid, t.virt.intid, t.hyp_phys.intid), (30, 27, 26));
        assert!(p.check().is_ok());
    });
}

#[test]
fn rpi4_firmware_dtb_has_empty_memory_until_filled() {
    with_platform("rpi4b-firmware", 0x0800_0000, |p| {
        assert!(p.memory.is_empty(), "reg = <0 0 0> describes no RAM");
        assert_eq!(p.check(), Err(PlatformError::NoMemory));
    });
}

#[test]
fn rpi4_console_is_uart0_owned_by_exitless_whatever_stdout_path_names() {
    // Debian's DTB names the mini UART (serial1) as stdout-path; exitless sets up UART0.
    with_platform("rpi4b-firmware", 0x0800_0000, |p| {
        let owned = p.owned_console.expect("a BCM2711 with UART0 and GPIO");
        assert_eq!(owned.uart.kind, UartKind::Pl011);
        assert_eq!(owned.uart.base, 0xfe20_1000);
        assert_eq!(owned.gpio, 0xfe20_0000, "GPIO block through the soc ranges");
        assert_eq!((owned.clock_hz, owned.baud), (48_000_000, 115_200));
        assert_eq!(p.console, Ok(owned.uart));
        assert_eq!(
            owned.uart.irq,
            Some(Interrupt {
                intid: 153,
                level: true
            }),
            "console input: UART0's SPI 121"
        );
    });
}

#[test]
fn only_a_bcm2711_gets_an_owned_console() {
    for name in ["virt-gicv2", "virt-gicv3", "virt-gicv4"] {
        with_platform(name, 0x4800_0000, |p| {
            assert_eq!(p.owned_console, None, "{name}");
            assert_eq!(p.console.map(|u| u.base), Ok(0x0900_0000), "{name}");
        });
    }
}

#[test]
fn rpi4_8gb_tree_as_the_firmware_fills_it() {
    // What start4.elf writes into the DTB of an 8 GB board: four RAM ranges (two above 4 GiB,
    // 32-bit size cells), the initrd in 32-bit `linux,initrd-*` cells, cmdline.txt as bootargs.
    let blob = patched_fixture(
        "rpi4b-firmware",
        &[
            (
                "device_type = \"memory\";\n\t\treg = <0x00 0x00 0x00>;",
                "device_type = \"memory\"; reg = <0x00 0x00 0x3b400000 0x00 0x40000000 0xbc000000 \
                 0x01 0x00 0x80000000 0x01 0x80000000 0x80000000>;",
            ),
            (
                "stdout-path = \"serial1:115200n8\";",
                "stdout-path = \"serial1:115200n8\"; linux,initrd-start = <0x2e000000>; \
                 linux,initrd-end = <0x2f0a0000>; bootargs = \"exitless.log=debug\";",
            ),
        ],
    );
    let fdt = dt::validate(&blob).expect("filled tree validates");
    let p = PlatformInfo::parse(&fdt, 0x2eff_2000);
    assert_eq!(
        p.memory.as_slice(),
        &[
            r(0, 0x3b40_0000),
            r(0x4000_0000, 0xbc00_0000),
            r(0x1_0000_0000, 0x8000_0000),
            r(0x1_8000_0000, 0x8000_0000)
        ]
    );
    let initrd = MemRange {
        start: 0x2e00_0000,
        end: 0x2f0a_0000,
    };
    assert_eq!(p.initrd, Some(initrd));
    assert!(
        p.reserved
            .iter()
            .any(|x| x.kind == ReservedKind::Initrd && x.range == initrd)
    );
    assert_eq!(p.bootargs, "exitless.log=debug");
    assert_eq!(p.psci, None, "no PSCI: secondaries from the spin-table");
    assert!(
        p.cpus
            .iter()
            .all(|c| matches!(c.enable, EnableMethod::SpinTable { .. }))
    );
    assert_eq!(p.console.map(|u| u.base), Ok(0xfe20_1000));
    assert!(p.check().is_ok(), "{:?}", p.check());
}

#[test]
fn corrupt_structure_is_an_error_not_a_panic() {
    let good = fixture("virt-gicv3");
    let off_struct = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    // Every single-byte corruption of the first 512 bytes of the structure block must either
    // validate (and then parse without panicking) or be refused.
    for i in 0..512 {
        let mut bad = good.clone();
        bad[off_struct + i] ^= 0xa5;
        if let Ok(fdt) = dt::validate(&bad) {
            let _ = PlatformInfo::parse(&fdt, 0);
        }
    }
    let mut bad = good.clone();
    bad[off_struct..off_struct + 4].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(dt::validate(&bad).err(), Some(DtError::BadStructure(0)));
}

/// A minimal version-17 blob around structure block `structs` and strings block `strings`.
fn blob_of(structs: &[u32], strings: &[u8]) -> Vec<u8> {
    let off_rsvmap = 40;
    let off_struct = off_rsvmap + 16;
    let size_struct = structs.len() * 4;
    let off_strings = off_struct + size_struct;
    let total = off_strings + strings.len();
    let header = [
        0xd00d_feed,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsvmap as u32,
        17,
        16,
        0,
        strings.len() as u32,
        size_struct as u32,
    ];
    let mut b: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
    b.extend_from_slice(&[0; 16]);
    b.extend(structs.iter().flat_map(|w| w.to_be_bytes()));
    b.extend_from_slice(strings);
    b
}

/// DTSpec 5.4.1: a node's properties come before its child nodes. The `fdt` crate asserts on a
/// property after a child ("bad node"): found by `make fuzz` (the dtb target), with a tree that
/// passed validation and then panicked in `PlatformInfo::parse`.
#[test]
fn a_property_after_a_child_node_is_refused() {
    const BEGIN: u32 = 1;
    const END_NODE: u32 = 2;
    const PROP: u32 = 3;
    const END: u32 = 9;
    // / { a { }; x; };  with the name "a" padded to 4 bytes, x an empty property.
    let name_a = u32::from_be_bytes(*b"a\0\0\0");
    let bad = blob_of(
        &[BEGIN, 0, BEGIN, name_a, END_NODE, PROP, 0, 0, END_NODE, END],
        b"x\0",
    );
    assert!(matches!(dt::validate(&bad), Err(DtError::BadStructure(_))));
    // The same property before the child is fine, and parses.
    let good = blob_of(
        &[BEGIN, 0, PROP, 0, 0, BEGIN, name_a, END_NODE, END_NODE, END],
        b"x\0",
    );
    let fdt = dt::validate(&good).expect("properties first validates");
    let _ = PlatformInfo::parse(&fdt, 0);
}

#[test]
fn truncated_blob_is_refused() {
    let good = fixture("virt-gicv3");
    assert!(matches!(
        dt::validate(&good[..good.len() / 2]),
        Err(DtError::BadSize(_))
    ));
    let mut bad = good.clone();
    bad[0] = 0;
    assert!(matches!(dt::validate(&bad), Err(DtError::BadMagic(_))));
}

#[test]
fn missing_gic_virtualization_frames_is_reported() {
    let mut p = {
        let blob = fixture("virt-gicv2");
        let fdt = dt::validate(&blob).unwrap();
        let info = PlatformInfo::parse(&fdt, 0);
        (info.gic.clone(), info.check())
    };
    assert_eq!(p.1, Ok(()));
    if let Some(GicInfo::V2(g)) = &mut p.0 {
        g.gich = None;
    }
    with_platform("virt-gicv2", 0, |info| {
        let mut info = info.clone();
        info.gic = p.0.clone();
        assert_eq!(info.check(), Err(PlatformError::NoGicVirtualization));
    });
}

#[test]
fn qemu_virt_pcie_bridge_is_read_with_its_windows_intx_and_msi_map() {
    with_platform("virt-gicv3", 0x4800_0000, |info| {
        let p = info.pci.as_ref().expect("the bridge");
        assert_eq!(
            p.ecam,
            MemRange {
                start: 0x40_1000_0000,
                end: 0x40_2000_0000
            }
        );
        assert_eq!(p.bus_range, (0, 255));
        let w: Vec<_> = p
            .windows
            .iter()
            .map(|w| (w.hi >> 24 & 3, w.pci, w.cpu.start, w.cpu.size()))
            .collect();
        assert_eq!(
            w,
            [
                (1, 0, 0x3eff_0000, 0x1_0000),
                (2, 0x1000_0000, 0x1000_0000, 0x2eff_0000),
                (3, 0x80_0000_0000, 0x80_0000_0000, 0x80_0000_0000)
            ]
        );
        assert_eq!(p.intx.len(), 16);
        assert_eq!(
            p.intx[0],
            pci::IntxRoute {
                hi: 0,
                pin: 1,
                spi: 35,
                flags: 4
            }
        );
        assert_eq!(p.intx_spis().as_slice(), [35, 36, 37, 38]);
        assert_eq!(p.intx_mask, [0x1800, 0, 0, 7]);
        assert!(p.msi);
        assert_eq!(p.mmio().count(), 4);
    });
}

#[test]
fn the_raspberry_pi_4_tree_has_no_generic_pcie_bridge() {
    with_platform("rpi4b", 0x4800_0000, |info| assert!(info.pci.is_none()));
}
