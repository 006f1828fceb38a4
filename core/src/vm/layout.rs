//! A VM's guest-physical (IPA) memory map. The default is the one QEMU `virt` gives its guests
//! (hw/arm/virt.c `base_memmap`), so software written for QEMU virt runs unchanged as a guest:
//!
//! | Region | IPA | Size |
//! |---|---|---|
//! | GICD | 0x0800_0000 | 64 KiB |
//! | GICC (vGICv2) | 0x0801_0000 | 8 KiB (GICC + GICC_DIR page) |
//! | ITS (vGICv3) | 0x0808_0000 | 128 KiB |
//! | GICR (vGICv3) | 0x080a_0000 | 128 KiB per vCPU |
//! | PL011 | 0x0900_0000 | 4 KiB, SPI 1 (INTID 33) |
//! | RAM | 0x4000_0000 | the VM's memory size |
//!
//! Invariant: [`VmLayout::check`] has verified that no two regions overlap and that every
//! region fits below the IPA limit before a layout is used.

use core::fmt;

use crate::mm::MemRange;
use crate::platform::GicVersion;

/// Size of one GICv3 redistributor (RD_base + SGI_base frames).
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// Largest vCPU count a VM may have (the GICv3 redistributor region of QEMU's map holds 123,
/// GICv2 addresses 8; exitless pins one vCPU per physical CPU).
pub const MAX_VCPUS: usize = 8;

/// Where a VM's RAM and devices sit in its IPA space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmLayout {
    /// Guest RAM.
    pub ram: MemRange,
    /// Distributor (64 KiB frame; the emulated registers use the first 64 KiB).
    pub gicd: u64,
    /// GICv2 CPU interface (the hardware GICV frame is mapped here, 8 KiB).
    pub gicc: u64,
    /// First GICv3 redistributor; vCPU n's is at `gicr + n * GICR_FRAME_SIZE`.
    pub gicr: u64,
    /// GICv3 ITS frame.
    pub its: u64,
    /// The virtual PL011.
    pub uart: u64,
    /// The virtual PL011's interrupt (an SPI INTID).
    pub uart_intid: u32,
}

impl VmLayout {
    /// QEMU virt's map with `ram_size` bytes of RAM at 0x4000_0000.
    pub const fn qemu_virt(ram_size: u64) -> Self {
        VmLayout {
            ram: MemRange {
                start: 0x4000_0000,
                end: 0x4000_0000 + ram_size,
            },
            gicd: 0x0800_0000,
            gicc: 0x0801_0000,
            gicr: 0x080a_0000,
            its: 0x0808_0000,
            uart: 0x0900_0000,
            uart_intid: 33,
        }
    }

    /// The distributor's MMIO range.
    pub fn gicd_range(&self) -> MemRange {
        MemRange {
            start: self.gicd,
            end: self.gicd + 0x1_0000,
        }
    }

    /// The GICv2 CPU interface range (two 4 KiB pages: GICC and the GICC_DIR page).
    pub fn gicc_range(&self) -> MemRange {
        MemRange {
            start: self.gicc,
            end: self.gicc + 0x2000,
        }
    }

    /// The GICC_DIR page of the GICv2 CPU interface (its second 4 KiB page, GICC_DIR at its
    /// start): never mapped to the hardware's GICV, so that every DIR traps (see
    /// `vgic::cpu_if`, rule 6).
    pub fn gicc_dir_range(&self) -> MemRange {
        MemRange {
            start: self.gicc + 0x1000,
            end: self.gicc + 0x2000,
        }
    }

    /// The redistributor range for `vcpus` vCPUs.
    pub fn gicr_range(&self, vcpus: usize) -> MemRange {
        MemRange {
            start: self.gicr,
            end: self.gicr + vcpus as u64 * GICR_FRAME_SIZE,
        }
    }

    /// The ITS range.
    pub fn its_range(&self) -> MemRange {
        MemRange {
            start: self.its,
            end: self.its + 0x2_0000,
        }
    }

    /// The UART range.
    pub fn uart_range(&self) -> MemRange {
        MemRange {
            start: self.uart,
            end: self.uart + 0x1000,
        }
    }

    /// Checks that the regions used by a VM with `vcpus` vCPUs and a `gic` vGIC do not overlap
    /// and fit in `ipa_bits` of address space.
    pub fn check(&self, vcpus: usize, gic: GicVersion, ipa_bits: u8) -> Result<(), LayoutError> {
        let mut regions: heapless::Vec<(&'static str, MemRange), 6> = heapless::Vec::new();
        let _ = regions.push(("RAM", self.ram));
        let _ = regions.push(("GICD", self.gicd_range()));
        match gic {
            GicVersion::V2 => {
                let _ = regions.push(("GICC", self.gicc_range()));
            }
            GicVersion::V3 => {
                let _ = regions.push(("GICR", self.gicr_range(vcpus)));
                let _ = regions.push(("ITS", self.its_range()));
            }
        }
        let _ = regions.push(("PL011", self.uart_range()));
        let limit = 1u64 << ipa_bits;
        for (i, (a, ra)) in regions.iter().enumerate() {
            if ra.is_empty() || ra.end > limit {
                return Err(LayoutError::OutOfRange(a));
            }
            if ra.start % 0x1000 != 0 || ra.end % 0x1000 != 0 {
                return Err(LayoutError::Unaligned(a));
            }
            for (b, rb) in &regions[i + 1..] {
                if ra.overlaps(rb) {
                    return Err(LayoutError::Overlap(a, b));
                }
            }
        }
        if !(32..1020).contains(&self.uart_intid) {
            return Err(LayoutError::BadIntid(self.uart_intid));
        }
        Ok(())
    }
}

/// Why a layout is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// Two regions overlap.
    Overlap(&'static str, &'static str),
    /// A region is empty or beyond the IPA size.
    OutOfRange(&'static str),
    /// A region is not 4 KiB aligned.
    Unaligned(&'static str),
    /// The UART interrupt is not an SPI.
    BadIntid(u32),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Overlap(a, b) => write!(f, "the {a} and {b} regions overlap"),
            LayoutError::OutOfRange(a) => {
                write!(f, "the {a} region is empty or beyond the IPA size")
            }
            LayoutError::Unaligned(a) => write!(f, "the {a} region is not 4 KiB aligned"),
            LayoutError::BadIntid(i) => write!(f, "UART interrupt {i} is not an SPI (32..1019)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_map_is_valid_for_gicv3_and_gicv2() {
        let l = VmLayout::qemu_virt(512 << 20);
        assert_eq!(l.check(4, GicVersion::V3, 40), Ok(()));
        assert_eq!(l.check(8, GicVersion::V2, 40), Ok(()));
        assert_eq!(
            l.gicr_range(2),
            MemRange {
                start: 0x080a_0000,
                end: 0x080e_0000
            }
        );
    }

    #[test]
    fn ram_overlapping_a_device_is_refused() {
        let mut l = VmLayout::qemu_virt(512 << 20);
        l.ram = MemRange {
            start: 0x0800_0000,
            end: 0x1000_0000,
        };
        assert_eq!(
            l.check(2, GicVersion::V3, 40),
            Err(LayoutError::Overlap("RAM", "GICD"))
        );
    }

    #[test]
    fn ram_beyond_ipa_size_is_refused() {
        let l = VmLayout::qemu_virt(1 << 40);
        assert_eq!(
            l.check(2, GicVersion::V3, 40),
            Err(LayoutError::OutOfRange("RAM"))
        );
    }
}
