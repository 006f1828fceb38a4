//! Guest image placement: where the kernel, the initrd and the device tree go in a VM's RAM,
//! computed the way QEMU's `-kernel` does it (hw/arm/boot.c `load_aarch64_image` and
//! `arm_setup_direct_kernel_boot`) within the rules of Linux Documentation/arch/arm64/booting.rst.
//!
//! * **arm64 Image** (magic `ARM\x64` at byte 56 of the 64-byte header): copied to a 2 MiB
//!   aligned base (the RAM base, rounded up) plus `text_offset`, and entered at its first byte.
//!   At least `image_size` bytes from there belong to the kernel (its BSS and early page
//!   tables), so nothing else is put there. A header with `image_size == 0` comes from a kernel
//!   older than v3.17: `text_offset` is then 0x80000 whatever the field says, and the file size
//!   stands for `image_size` (QEMU does the same). QEMU adds 2 MiB to a `text_offset` below
//!   4 KiB because its own boot stub sits at the RAM base; exitless has no stub there and keeps
//!   the kernel at the base, where booting.rst recommends it.
//! * **Raw binary** (no magic, e.g. a bare-metal program): copied to and entered at RAM base +
//!   0x80000, QEMU's `KERNEL64_LOAD_ADDR`.
//! * **initrd**: at RAM base + min(RAM / 2, 128 MiB), or right after the kernel's reserved end
//!   if that is higher, rounded up to 4 KiB (QEMU's `TARGET_PAGE_ALIGN`). When the pieces do not
//!   fit that way, the initrd moves down to the kernel's reserved end (QEMU would give up).
//! * **Device tree**: at the first 2 MiB boundary after the initrd (or after the initrd slot when
//!   there is none), as QEMU does for AArch64. With at most 2 MiB ([`DTB_MAX_SIZE`]) it is then
//!   8-byte aligned and never crosses a 2 MiB boundary, as booting.rst requires.
//!
//! Invariant of a [`LoadPlan`]: every range lies in the VM's RAM, and the kernel's reserved
//! range, the initrd and the device tree slot do not overlap.

use core::fmt;

use crate::mm::{MemRange, PAGE_SIZE, align_up};

const MIB: u64 = 1 << 20;
/// Length of the arm64 Image header.
pub const IMAGE_HEADER_LEN: usize = 64;
/// The Image magic, at byte 56 of the header.
pub const IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";
/// The kernel's base alignment (booting.rst: "a 2MB aligned base address").
pub const KERNEL_BASE_ALIGN: u64 = 2 * MIB;
/// Load offset of raw binaries and of pre-v3.17 Images (QEMU `KERNEL64_LOAD_ADDR`).
pub const DEFAULT_TEXT_OFFSET: u64 = 0x8_0000;
/// Largest device tree booting.rst allows.
pub const DTB_MAX_SIZE: u64 = 2 * MIB;
/// Alignment of the device tree slot (QEMU's choice for AArch64: 2 MiB).
const DTB_ALIGN: u64 = 2 * MIB;
/// Farthest the initrd is put from the RAM base (QEMU: `MIN(ram_size / 2, 128 * MiB)`).
const INITRD_MAX_OFFSET: u64 = 128 * MIB;

/// The fields of an arm64 Image header that placement needs (all little-endian in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image from its 2 MiB aligned base.
    pub text_offset: u64,
    /// Bytes from the image start the kernel needs (0: pre-v3.17 kernel, unknown).
    pub image_size: u64,
    /// Bit 0: big-endian; bits 1-2: page size; bit 3: physical placement anywhere.
    pub flags: u64,
}

impl ImageHeader {
    /// The header of `kernel`, or `None` if it is not an arm64 Image (no magic).
    pub fn parse(kernel: &[u8]) -> Option<ImageHeader> {
        let header = kernel.get(..IMAGE_HEADER_LEN)?;
        if header[56..60] != IMAGE_MAGIC {
            return None;
        }
        let le64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Some(ImageHeader {
            text_offset: le64(8),
            image_size: le64(16),
            flags: le64(24),
        })
    }
}

/// Where each piece of a guest goes (IPAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    /// Where the kernel file is copied (exactly the file's length).
    pub kernel: MemRange,
    /// End of the range the kernel owns from `kernel.start` (image start + `image_size`): its
    /// BSS must stay free, nothing else is placed below this.
    pub kernel_end_reserved: u64,
    /// The first instruction (x0 = `dtb.start` on entry, booting.rst).
    pub entry: u64,
    /// Where the initrd is copied, if there is one.
    pub initrd: Option<MemRange>,
    /// The slot reserved for the device tree (`dtb_max` bytes).
    pub dtb: MemRange,
    /// True for an arm64 Image, false for a raw binary.
    pub is_linux_image: bool,
}

/// Why a guest cannot be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// The kernel file is empty.
    EmptyKernel,
    /// The device tree slot asked for is 0 or above 2 MiB.
    DtbSize(u64),
    /// The pieces do not fit in RAM (sizes in bytes; `kernel` counts its reserved size).
    DoesNotFit {
        /// The kernel's reserved size.
        kernel: u64,
        /// The initrd's size.
        initrd: Option<u64>,
        /// The RAM size.
        ram: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::EmptyKernel => {
                write!(
                    f,
                    "the kernel file is empty: put the kernel Image in the bundle"
                )
            }
            ImageError::DtbSize(n) => write!(
                f,
                "a device tree of {n} bytes: arm64 kernels take 1 byte to 2 MiB (booting.rst)"
            ),
            ImageError::DoesNotFit {
                kernel,
                initrd,
                ram,
            } => {
                write!(f, "kernel ({} MiB)", kernel.div_ceil(MIB))?;
                if let Some(i) = initrd {
                    write!(f, " + initrd ({} MiB)", i.div_ceil(MIB))?;
                }
                write!(
                    f,
                    " + device tree do not fit in {} MiB of RAM: raise memory",
                    ram / MIB
                )
            }
        }
    }
}

/// Places `kernel`, an initrd of `initrd_len` bytes and a device tree of up to `dtb_max` bytes
/// in `ram` (see the module documentation for the rules).
pub fn plan(
    ram: MemRange,
    kernel: &[u8],
    initrd_len: Option<u64>,
    dtb_max: u64,
) -> Result<LoadPlan, ImageError> {
    if kernel.is_empty() {
        return Err(ImageError::EmptyKernel);
    }
    if dtb_max == 0 || dtb_max > DTB_MAX_SIZE {
        return Err(ImageError::DtbSize(dtb_max));
    }
    let file_len = kernel.len() as u64;
    let header = ImageHeader::parse(kernel);
    let (text_offset, reserved) = match header {
        Some(h) if h.image_size != 0 => (h.text_offset, h.image_size.max(file_len)),
        _ => (DEFAULT_TEXT_OFFSET, file_len),
    };
    let does_not_fit = ImageError::DoesNotFit {
        kernel: reserved,
        initrd: initrd_len,
        ram: ram.size(),
    };

    let start = align_up(ram.start, KERNEL_BASE_ALIGN)
        .and_then(|base| base.checked_add(text_offset))
        .ok_or(does_not_fit)?;
    let kernel_range = MemRange::with_size(start, file_len).ok_or(does_not_fit)?;
    let reserved_end = start.checked_add(reserved).ok_or(does_not_fit)?;
    if reserved_end > ram.end {
        return Err(does_not_fit);
    }

    // Puts the initrd at `slot` and the device tree after it, if that fits.
    let place = |slot: u64| -> Option<(Option<MemRange>, MemRange)> {
        let slot = align_up(slot, PAGE_SIZE)?;
        let initrd = match initrd_len {
            Some(len) => Some(MemRange::with_size(slot, len)?),
            None => None,
        };
        let dtb_start = align_up(initrd.map_or(slot, |r| r.end), DTB_ALIGN)?;
        let dtb = MemRange::with_size(dtb_start, dtb_max)?;
        (dtb.end <= ram.end && initrd.is_none_or(|r| r.end <= ram.end)).then_some((initrd, dtb))
    };
    let preferred = ram
        .start
        .saturating_add(INITRD_MAX_OFFSET.min(ram.size() / 2));
    let (initrd, dtb) = place(preferred.max(reserved_end))
        .or_else(|| place(reserved_end))
        .ok_or(does_not_fit)?;

    Ok(LoadPlan {
        kernel: kernel_range,
        kernel_end_reserved: reserved_end,
        entry: start,
        initrd,
        dtb,
        is_linux_image: header.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    const RAM_BASE: u64 = 0x4000_0000;

    fn ram(mib: u64) -> MemRange {
        MemRange {
            start: RAM_BASE,
            end: RAM_BASE + mib * MIB,
        }
    }

    /// An Image of `len` bytes with the given header fields.
    fn image(len: usize, text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut k = vec![0u8; len.max(IMAGE_HEADER_LEN)];
        k[0..4].copy_from_slice(&0x1459_a356u32.to_le_bytes()); // "ccmp" code0 of a real kernel
        k[8..16].copy_from_slice(&text_offset.to_le_bytes());
        k[16..24].copy_from_slice(&image_size.to_le_bytes());
        k[24..32].copy_from_slice(&flags.to_le_bytes());
        k[56..60].copy_from_slice(&IMAGE_MAGIC);
        k[60..64].copy_from_slice(&0x40u32.to_le_bytes());
        k
    }

    fn assert_invariants(p: &LoadPlan, ram: MemRange) {
        let reserved = MemRange {
            start: p.kernel.start,
            end: p.kernel_end_reserved,
        };
        assert!(
            ram.covers(&p.kernel) && ram.covers(&reserved) && ram.covers(&p.dtb),
            "{p:?}"
        );
        assert!(reserved.covers(&p.kernel));
        assert!(!reserved.overlaps(&p.dtb));
        if let Some(i) = p.initrd {
            assert!(
                ram.covers(&i) && !i.overlaps(&reserved) && !i.overlaps(&p.dtb),
                "{p:?}"
            );
            assert!(i.start.is_multiple_of(PAGE_SIZE));
            assert!(p.dtb.start >= i.end);
        }
        assert!(p.dtb.start.is_multiple_of(8));
        assert_eq!(
            p.dtb.start / (2 * MIB),
            (p.dtb.end - 1) / (2 * MIB),
            "dtb crosses 2 MiB"
        );
    }

    #[test]
    fn the_header_fields_are_read_little_endian() {
        let k = image(4096, 0x8_0000, 0x123_4567, 0xa);
        let h = ImageHeader::parse(&k).unwrap();
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0x8_0000,
                image_size: 0x123_4567,
                flags: 0xa
            }
        );
    }

    #[test]
    fn a_file_without_the_magic_or_shorter_than_the_header_is_not_an_image() {
        let mut k = image(4096, 0, 0x10_0000, 0);
        k[59] = 0x65;
        assert_eq!(ImageHeader::parse(&k), None);
        assert_eq!(ImageHeader::parse(&image(64, 0, 1, 0)[..63]), None);
    }

    #[test]
    fn a_real_sized_image_goes_at_the_ram_base_and_reserves_image_size() {
        // Debian 6.1 arm64: text_offset 0, image_size 0x2010000, flags 0xa (LE, 4K, anywhere).
        let k = image(32_956_352, 0, 0x201_0000, 0xa);
        let p = plan(ram(512), &k, Some(2 * MIB), DTB_MAX_SIZE).unwrap();
        assert!(p.is_linux_image);
        assert_eq!(
            p.kernel,
            MemRange {
                start: RAM_BASE,
                end: RAM_BASE + 32_956_352
            }
        );
        assert_eq!(p.entry, RAM_BASE);
        assert_eq!(p.kernel_end_reserved, RAM_BASE + 0x201_0000);
        // initrd at base + min(512M / 2, 128M), the DTB at the next 2 MiB boundary after it.
        assert_eq!(
            p.initrd,
            Some(MemRange {
                start: RAM_BASE + 128 * MIB,
                end: RAM_BASE + 130 * MIB
            })
        );
        assert_eq!(
            p.dtb,
            MemRange {
                start: RAM_BASE + 130 * MIB,
                end: RAM_BASE + 132 * MIB
            }
        );
        assert_invariants(&p, ram(512));
    }

    #[test]
    fn an_image_goes_at_text_offset_from_a_2m_aligned_base() {
        let k = image(0x10_0000, 0x8_0000, 0x20_0000, 0x2);
        let p = plan(ram(64), &k, None, 0x1_0000).unwrap();
        assert_eq!(p.entry, RAM_BASE + 0x8_0000);
        assert_eq!(p.kernel.start, RAM_BASE + 0x8_0000);
        assert_eq!(p.kernel_end_reserved, RAM_BASE + 0x28_0000);
        // A RAM base that is not 2 MiB aligned is rounded up.
        let r = MemRange {
            start: RAM_BASE + 0x1000,
            end: RAM_BASE + 64 * MIB,
        };
        let p = plan(r, &k, None, 0x1_0000).unwrap();
        assert_eq!(p.entry, RAM_BASE + 2 * MIB + 0x8_0000);
        assert_invariants(&p, r);
    }

    #[test]
    fn image_size_zero_means_text_offset_0x80000_and_the_file_size() {
        let k = image(0x30_0000, 0x1234, 0, 0);
        let p = plan(ram(64), &k, None, DTB_MAX_SIZE).unwrap();
        assert!(p.is_linux_image);
        assert_eq!(p.entry, RAM_BASE + 0x8_0000);
        assert_eq!(p.kernel_end_reserved, RAM_BASE + 0x8_0000 + 0x30_0000);
    }

    #[test]
    fn an_image_size_below_the_file_size_reserves_the_file() {
        let k = image(0x30_0000, 0, 0x1000, 0);
        let p = plan(ram(64), &k, None, DTB_MAX_SIZE).unwrap();
        assert_eq!(p.kernel_end_reserved, p.kernel.end);
    }

    #[test]
    fn a_raw_binary_is_loaded_and_entered_at_ram_base_plus_0x80000() {
        let k = vec![0xd503_201fu32.to_le_bytes(); 1024].concat(); // nops
        let p = plan(ram(16), &k, None, DTB_MAX_SIZE).unwrap();
        assert!(!p.is_linux_image);
        assert_eq!(p.entry, RAM_BASE + 0x8_0000);
        assert_eq!(
            p.kernel,
            MemRange {
                start: RAM_BASE + 0x8_0000,
                end: RAM_BASE + 0x8_1000
            }
        );
        assert_eq!(p.kernel_end_reserved, p.kernel.end);
        assert_eq!(p.initrd, None);
        // No initrd: the DTB takes the initrd slot, base + 16M / 2.
        assert_eq!(
            p.dtb,
            MemRange {
                start: RAM_BASE + 8 * MIB,
                end: RAM_BASE + 10 * MIB
            }
        );
        assert_invariants(&p, ram(16));
    }

    #[test]
    fn the_initrd_goes_after_the_kernel_reserved_end_page_aligned() {
        // 40 MiB + 1 byte reserved in 64 MiB of RAM: the slot (base + 32M) is inside the kernel.
        let k = image(4096, 0, 40 * MIB + 1, 0);
        let p = plan(ram(64), &k, Some(4096), DTB_MAX_SIZE).unwrap();
        assert_eq!(p.initrd.unwrap().start, RAM_BASE + 40 * MIB + PAGE_SIZE);
        assert_eq!(p.dtb.start, RAM_BASE + 42 * MIB);
        assert_invariants(&p, ram(64));
    }

    #[test]
    fn the_dtb_slot_is_2m_aligned_after_the_initrd_so_it_never_crosses_2m() {
        let k = image(4096, 0, 4 * MIB, 0);
        for initrd in [
            1,
            4095,
            4096,
            2 * MIB - 1,
            2 * MIB,
            2 * MIB + 1,
            9 * MIB + 17,
        ] {
            for dtb_max in [8, 0x1_0000, DTB_MAX_SIZE] {
                let p = plan(ram(256), &k, Some(initrd), dtb_max).unwrap();
                assert!(p.dtb.start.is_multiple_of(2 * MIB));
                assert_eq!(p.dtb.size(), dtb_max);
                assert_invariants(&p, ram(256));
            }
        }
    }

    #[test]
    fn a_large_initrd_moves_down_next_to_the_kernel_when_the_slot_is_too_high() {
        // 64 MiB: slot at 32 MiB, 30 MiB initrd would end at 62, DTB at 62..64 fits exactly.
        let k = image(4096, 0, 20 * MIB, 0);
        let p = plan(ram(64), &k, Some(30 * MIB), DTB_MAX_SIZE).unwrap();
        assert_eq!(p.initrd.unwrap().start, RAM_BASE + 32 * MIB);
        // 31 MiB does not fit there, but does right after the kernel (20..51, DTB 52..54).
        let p = plan(ram(64), &k, Some(31 * MIB), DTB_MAX_SIZE).unwrap();
        assert_eq!(p.initrd.unwrap().start, RAM_BASE + 20 * MIB);
        assert_eq!(p.dtb.start, RAM_BASE + 52 * MIB);
        assert_invariants(&p, ram(64));
    }

    #[test]
    fn a_huge_initrd_is_refused_with_the_sizes_in_mib() {
        let k = image(4096, 0, 34 * MIB, 0);
        let e = plan(ram(64), &k, Some(40 * MIB), DTB_MAX_SIZE).unwrap_err();
        assert_eq!(
            e,
            ImageError::DoesNotFit {
                kernel: 34 * MIB,
                initrd: Some(40 * MIB),
                ram: 64 * MIB
            }
        );
        assert_eq!(
            e.to_string(),
            "kernel (34 MiB) + initrd (40 MiB) + device tree do not fit in 64 MiB of RAM: raise \
             memory"
        );
        let e = plan(ram(64), &k, Some(u64::MAX - 4), DTB_MAX_SIZE).unwrap_err();
        assert!(matches!(e, ImageError::DoesNotFit { .. }));
    }

    #[test]
    fn a_kernel_larger_than_ram_is_refused() {
        let k = image(4096, 0, 34 * MIB, 0);
        let e = plan(ram(32), &k, Some(2 * MIB), DTB_MAX_SIZE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel (34 MiB) + initrd (2 MiB) + device tree do not fit in 32 MiB of RAM: raise \
             memory"
        );
        let e = plan(ram(32), &k, None, DTB_MAX_SIZE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel (34 MiB) + device tree do not fit in 32 MiB of RAM: raise memory"
        );
    }

    #[test]
    fn a_kernel_that_leaves_no_room_for_the_dtb_is_refused() {
        // 31 MiB reserved in 32 MiB: the DTB slot (2 MiB aligned) would end at 34 MiB.
        let k = image(4096, 0, 31 * MIB, 0);
        assert!(matches!(
            plan(ram(32), &k, None, DTB_MAX_SIZE),
            Err(ImageError::DoesNotFit { .. })
        ));
        // A small DTB still needs its own 2 MiB aligned slot: 30 MiB leaves 30..32.
        let k = image(4096, 0, 30 * MIB, 0);
        let p = plan(ram(32), &k, None, 0x1_0000).unwrap();
        assert_eq!(p.dtb.start, RAM_BASE + 30 * MIB);
    }

    #[test]
    fn a_garbage_text_offset_does_not_overflow() {
        let k = image(4096, u64::MAX - 10, 4096, 0);
        assert!(matches!(
            plan(ram(64), &k, None, DTB_MAX_SIZE),
            Err(ImageError::DoesNotFit { .. })
        ));
        let k = image(4096, 0, u64::MAX, 0);
        assert!(matches!(
            plan(ram(64), &k, None, DTB_MAX_SIZE),
            Err(ImageError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn an_empty_kernel_and_a_bad_dtb_size_are_refused() {
        assert_eq!(
            plan(ram(64), &[], None, DTB_MAX_SIZE),
            Err(ImageError::EmptyKernel)
        );
        let k = image(4096, 0, 4096, 0);
        assert_eq!(plan(ram(64), &k, None, 0), Err(ImageError::DtbSize(0)));
        assert_eq!(
            plan(ram(64), &k, None, DTB_MAX_SIZE + 8),
            Err(ImageError::DtbSize(DTB_MAX_SIZE + 8))
        );
    }

    #[test]
    fn the_real_debian_image_if_cached_is_placed_like_qemu_minus_its_boot_stub() {
        // Optional: uses the kernel scripts/fetch-guest.sh downloads, when it is there.
        let Some(home) = std::env::var_os("HOME") else {
            return;
        };
        let cache = std::env::var_os("EXITLESS_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(&home).join(".cache/exitless"));
        let Ok(k) = std::fs::read(cache.join("guest/Image")) else {
            return;
        };
        let h = ImageHeader::parse(&k).expect("Debian's kernel is an arm64 Image");
        let p = plan(ram(512), &k, Some(4 * MIB), DTB_MAX_SIZE).unwrap();
        assert_eq!(p.entry, RAM_BASE + h.text_offset);
        assert!(p.kernel_end_reserved >= p.kernel.end);
        assert_invariants(&p, ram(512));
    }
}
