//! GIC architecture facts shared by the physical GIC drivers (`drivers::gicv2`, `drivers::gicv3`)
//! and the virtual GIC: identification-register field layouts and what they mean for
//! virtualization.
//!
//! Specs: GICv2 IHI 0048B (4.3.2 GICD_TYPER, 5.3.2 GICH_VTR), GICv3/v4 IHI 0069H (12.9.38
//! GICD_TYPER, 12.11.37 GICR_TYPER, 12.19.29 GITS_TYPER, 12.5.26 ICH_VTR_EL2).
//!
//! Invariant: pure decoding of values the shell read; every field here is named after the spec.

pub mod its;

use core::fmt;

use tock_registers::LocalRegisterCopy;

use crate::platform::GicVersion;

/// Field layouts of the identification registers (`register_bitfields!` output).
#[allow(missing_docs)]
pub mod fields {
    use tock_registers::register_bitfields;

    register_bitfields! {u32,
        /// GICD_TYPER (both versions; v3-only fields read as 0 on a GICv2).
        pub GICD_TYPER [
            /// Supported interrupt IDs: 32 * (ITLinesNumber + 1), capped at 1020.
            ITLinesNumber OFFSET(0) NUMBITS(5) [],
            /// Number of CPU interfaces minus 1 (GICv2; GICv3 with ARE=0).
            CPUNumber OFFSET(5) NUMBITS(3) [],
            /// The GIC implements the Security Extensions (GICv2) / two security states (GICv3).
            SecurityExtn OFFSET(10) NUMBITS(1) [],
            /// Message-based SPIs (GICv3).
            MBIS OFFSET(16) NUMBITS(1) [],
            /// LPIs supported (GICv3).
            LPIS OFFSET(17) NUMBITS(1) [],
            /// Direct virtual LPI injection supported (GICv4).
            DVIS OFFSET(18) NUMBITS(1) [],
            /// Interrupt ID bits minus 1 (GICv3).
            IDbits OFFSET(19) NUMBITS(5) [],
            /// Affinity level 3 supported (GICv3).
            A3V OFFSET(24) NUMBITS(1) [],
            /// 1 of N SPI routing NOT supported (GICv3).
            No1N OFFSET(25) NUMBITS(1) [],
            /// Range Selector supported for SGIs (GICv3).
            RSS OFFSET(26) NUMBITS(1) []
        ],
        /// GICH_VTR (GICv2) and ICH_VTR_EL2 (GICv3): the virtual CPU interface's capabilities.
        pub VTR [
            /// Number of list registers minus 1.
            ListRegs OFFSET(0) NUMBITS(5) [],
            /// Direct injection of virtual interrupts is NOT supported (GICv3 ICH_VTR_EL2 only).
            nV4 OFFSET(20) NUMBITS(1) [],
            /// Virtual interrupt ID bits: 0 = 16 bits, 1 = 24 bits (GICv3 only).
            IDbits OFFSET(23) NUMBITS(3) [],
            /// Preemption bits minus 1.
            PREbits OFFSET(26) NUMBITS(3) [],
            /// Priority bits minus 1.
            PRIbits OFFSET(29) NUMBITS(3) []
        ]
    }

    register_bitfields! {u64,
        /// GICR_TYPER.
        pub GICR_TYPER [
            /// Physical LPIs supported.
            PLPIS OFFSET(0) NUMBITS(1) [],
            /// Virtual LPIs supported (GICv4 direct injection).
            VLPIS OFFSET(1) NUMBITS(1) [],
            /// GICR_SETLPIR/CLRLPIR/INVLPIR/INVALLR implemented.
            DirectLPI OFFSET(3) NUMBITS(1) [],
            /// This is the last redistributor frame of its region.
            Last OFFSET(4) NUMBITS(1) [],
            /// Processor number (for ITS target addresses with GITS_TYPER.PTA = 0).
            Processor_Number OFFSET(8) NUMBITS(16) [],
            /// Affinity of the PE this redistributor serves (Aff3.Aff2.Aff1.Aff0).
            Affinity OFFSET(32) NUMBITS(32) []
        ],
        /// GITS_TYPER.
        pub GITS_TYPER [
            /// Physical LPIs supported.
            Physical OFFSET(0) NUMBITS(1) [],
            /// Virtual LPIs and the GICv4 commands supported.
            Virtual OFFSET(1) NUMBITS(1) [],
            /// Bytes per interrupt translation table entry minus 1.
            ITT_entry_size OFFSET(4) NUMBITS(4) [],
            /// EventID bits minus 1.
            ID_bits OFFSET(8) NUMBITS(5) [],
            /// DeviceID bits minus 1.
            Devbits OFFSET(13) NUMBITS(5) [],
            /// Target addresses are physical addresses (1) or processor numbers (0).
            PTA OFFSET(19) NUMBITS(1) [],
            /// Interrupt collections the ITS holds in hardware.
            HCC OFFSET(24) NUMBITS(8) []
        ]
    }
}

pub use fields::{GICD_TYPER, GICR_TYPER, GITS_TYPER, VTR};

/// Converts an MPIDR's affinity fields to GICR_TYPER.Affinity layout (Aff3 in 31:24, then Aff2,
/// Aff1, Aff0).
pub const fn mpidr_to_gicr_affinity(mpidr: u64) -> u32 {
    (((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff)) as u32
}

/// What the physical GIC offers the hypervisor, read at boot and shown in the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicFacts {
    /// Architecture version of the distributor.
    pub version: GicVersion,
    /// Interrupt IDs the distributor implements (SGIs + PPIs + SPIs).
    pub irq_count: u32,
    /// List registers in the virtual CPU interface.
    pub lr_count: u8,
    /// Virtual priority bits.
    pub pri_bits: u8,
    /// Virtual preemption bits.
    pub pre_bits: u8,
    /// GICv3: LPIs supported by the distributor.
    pub lpis: bool,
    /// GICv3: number of ITSs in the device tree.
    pub its_count: usize,
    /// GICv4: every redistributor has GICR_TYPER.VLPIS, every ITS GITS_TYPER.Virtual, and
    /// ICH_VTR_EL2.nV4 is clear.
    pub direct_injection: bool,
    /// Redistributors found (GICv3).
    pub redist_count: usize,
    /// The GIC implements two security states.
    pub security_extn: bool,
}

impl GicFacts {
    /// Reads the version-independent facts out of GICD_TYPER and a VTR value.
    pub fn from_registers(version: GicVersion, gicd_typer: u32, vtr: u32) -> Self {
        let t = LocalRegisterCopy::<u32, GICD_TYPER::Register>::new(gicd_typer);
        let v = LocalRegisterCopy::<u32, VTR::Register>::new(vtr);
        GicFacts {
            version,
            irq_count: (32 * (t.read(GICD_TYPER::ITLinesNumber) + 1)).min(1020),
            lr_count: v.read(VTR::ListRegs) as u8 + 1,
            pri_bits: v.read(VTR::PRIbits) as u8 + 1,
            pre_bits: v.read(VTR::PREbits) as u8 + 1,
            lpis: version == GicVersion::V3 && t.is_set(GICD_TYPER::LPIS),
            its_count: 0,
            direct_injection: false,
            redist_count: 0,
            security_extn: t.is_set(GICD_TYPER::SecurityExtn),
        }
    }

    /// True if ICH_VTR_EL2 allows direct injection (nV4 clear).
    pub fn vtr_allows_direct_injection(vtr: u32) -> bool {
        !LocalRegisterCopy::<u32, VTR::Register>::new(vtr).is_set(VTR::nV4)
    }

    /// The name of the architecture as the banner prints it.
    pub fn name(&self) -> &'static str {
        match (self.version, self.direct_injection) {
            (GicVersion::V2, _) => "GICv2",
            (GicVersion::V3, false) => "GICv3",
            (GicVersion::V3, true) => "GICv4",
        }
    }
}

impl fmt::Display for GicFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} interrupt IDs, {} list registers, {} priority bits, {} preemption bits",
            self.name(),
            self.irq_count,
            self.lr_count,
            self.pri_bits,
            self.pre_bits
        )?;
        if self.version == GicVersion::V3 {
            write!(
                f,
                ", {} redistributors, LPIs {}, {} ITS, direct vLPI injection {}",
                self.redist_count,
                if self.lpis { "yes" } else { "no" },
                self.its_count,
                if self.direct_injection { "yes" } else { "no" }
            )?;
        }
        Ok(())
    }
}

/// Decoded GICR_TYPER.
pub fn gicr_typer(v: u64) -> LocalRegisterCopy<u64, GICR_TYPER::Register> {
    LocalRegisterCopy::new(v)
}

/// Decoded GITS_TYPER.
pub fn gits_typer(v: u64) -> LocalRegisterCopy<u64, GITS_TYPER::Register> {
    LocalRegisterCopy::new(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values read at EL2 by a bare-metal probe (shared/PLATFORMS.md 1.1 and 2.3).
    const RPI4_GICD_TYPER: u32 = 0x66;
    const RPI4_GICH_VTR: u32 = 0x9000_0003;
    const VIRT_V3_GICD_TYPER: u32 = 0x037a_0007;
    const VIRT_V3_ICH_VTR: u32 = 0x90b8_0003;
    const VIRT_V4_ICH_VTR: u32 = 0x90a8_0003;
    const VIRT_V3_GICR_TYPER: u64 = 0x11;
    const VIRT_V4_GICR_TYPER: u64 = 0x13;
    const VIRT_V3_GITS_TYPER: u64 = 0x1f_0001_efb1;
    const VIRT_V4_GITS_TYPER: u64 = 0x3f_0001_efb3;

    #[test]
    fn gic400_has_224_ids_4_lrs_5_priority_bits() {
        let f = GicFacts::from_registers(GicVersion::V2, RPI4_GICD_TYPER, RPI4_GICH_VTR);
        assert_eq!(f.irq_count, 224);
        assert_eq!(f.lr_count, 4);
        assert_eq!(f.pri_bits, 5);
        assert_eq!(f.pre_bits, 5);
        assert!(
            !f.security_extn,
            "QEMU's GIC-400 has no Security Extensions"
        );
    }

    #[test]
    fn qemu_gicv3_has_4_lrs_and_lpis() {
        let f = GicFacts::from_registers(GicVersion::V3, VIRT_V3_GICD_TYPER, VIRT_V3_ICH_VTR);
        assert_eq!(f.lr_count, 4);
        assert_eq!(f.pri_bits, 5);
        assert!(f.lpis);
        assert_eq!(f.irq_count, 256);
    }

    #[test]
    fn nv4_clear_means_direct_injection() {
        assert!(!GicFacts::vtr_allows_direct_injection(VIRT_V3_ICH_VTR));
        assert!(GicFacts::vtr_allows_direct_injection(VIRT_V4_ICH_VTR));
    }

    #[test]
    fn gicr_typer_vlpis_and_last() {
        assert!(!gicr_typer(VIRT_V3_GICR_TYPER).is_set(GICR_TYPER::VLPIS));
        assert!(gicr_typer(VIRT_V4_GICR_TYPER).is_set(GICR_TYPER::VLPIS));
        assert!(gicr_typer(VIRT_V3_GICR_TYPER).is_set(GICR_TYPER::Last));
        assert!(gicr_typer(VIRT_V3_GICR_TYPER).is_set(GICR_TYPER::PLPIS));
    }

    #[test]
    fn gits_typer_virtual_only_on_v4() {
        assert!(!gits_typer(VIRT_V3_GITS_TYPER).is_set(GITS_TYPER::Virtual));
        assert!(gits_typer(VIRT_V4_GITS_TYPER).is_set(GITS_TYPER::Virtual));
        assert!(gits_typer(VIRT_V4_GITS_TYPER).is_set(GITS_TYPER::Physical));
    }

    #[test]
    fn gicr_affinity_packs_aff3_on_top() {
        assert_eq!(mpidr_to_gicr_affinity(0x01_0002_0304), 0x0102_0304);
        assert_eq!(mpidr_to_gicr_affinity(0x8000_0003), 0x0000_0003);
    }
}
