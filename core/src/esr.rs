//! Decoding of the Exception Syndrome Register, for fault reports and trap
//! dispatch.

use core::fmt;

/// An ESR_ELx value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Esr(pub u64);

/// Exception classes Oxen distinguishes (ESR_ELx.EC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    Unknown,
    WfiWfe,
    FpSimdAccess,
    IllegalState,
    Svc64,
    Hvc64,
    Smc64,
    SysReg,
    SveAccess,
    InstrAbortLower,
    InstrAbortSame,
    PcAlignment,
    DataAbortLower,
    DataAbortSame,
    SpAlignment,
    FpException,
    SError,
    BreakpointLower,
    BreakpointSame,
    StepLower,
    StepSame,
    WatchpointLower,
    WatchpointSame,
    Brk64,
    Other(u8),
}

impl ExceptionClass {
    /// The class for an EC field value.
    #[inline(always)]
    pub fn from_ec(ec: u8) -> Self {
        match ec {
            0x00 => Self::Unknown,
            0x01 => Self::WfiWfe,
            0x07 => Self::FpSimdAccess,
            0x0e => Self::IllegalState,
            0x15 => Self::Svc64,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg,
            0x19 => Self::SveAccess,
            0x20 => Self::InstrAbortLower,
            0x21 => Self::InstrAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x2c => Self::FpException,
            0x2f => Self::SError,
            0x30 => Self::BreakpointLower,
            0x31 => Self::BreakpointSame,
            0x32 => Self::StepLower,
            0x33 => Self::StepSame,
            0x34 => Self::WatchpointLower,
            0x35 => Self::WatchpointSame,
            0x3c => Self::Brk64,
            other => Self::Other(other),
        }
    }

    /// The class in words, for people reading a fault report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unknown => "unknown reason (undefined instruction)",
            Self::WfiWfe => "trapped WFI/WFE",
            Self::FpSimdAccess => "trapped FP/SIMD access",
            Self::IllegalState => "illegal execution state",
            Self::Svc64 => "SVC from AArch64",
            Self::Hvc64 => "HVC from AArch64",
            Self::Smc64 => "SMC from AArch64",
            Self::SysReg => "trapped system register access",
            Self::SveAccess => "trapped SVE access",
            Self::InstrAbortLower => "instruction abort from a lower exception level",
            Self::InstrAbortSame => "instruction abort at EL2",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbortLower => "data abort from a lower exception level",
            Self::DataAbortSame => "data abort at EL2",
            Self::SpAlignment => "SP alignment fault",
            Self::FpException => "floating-point exception",
            Self::SError => "SError interrupt",
            Self::BreakpointLower | Self::BreakpointSame => "breakpoint",
            Self::StepLower | Self::StepSame => "software step",
            Self::WatchpointLower | Self::WatchpointSame => "watchpoint",
            Self::Brk64 => "BRK instruction",
            Self::Other(_) => "unrecognised exception class",
        }
    }
}

impl Esr {
    /// EC, bits [31:26].
    #[inline(always)]
    pub fn ec_bits(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// The decoded exception class.
    #[inline(always)]
    pub fn class(self) -> ExceptionClass {
        ExceptionClass::from_ec(self.ec_bits())
    }

    /// Instruction length bit: true for a 32-bit instruction.
    pub fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }

    /// ISS, bits [24:0].
    #[inline(always)]
    pub fn iss(self) -> u32 {
        (self.0 & 0x01ff_ffff) as u32
    }

    /// For data aborts: the fault status code in words.
    pub fn fault_status(self) -> &'static str {
        let fsc = self.iss() & 0x3f;
        match fsc {
            0b000000..=0b000011 => "address size fault",
            0b000100..=0b000111 => "translation fault",
            0b001001..=0b001011 => "access flag fault",
            0b001101..=0b001111 => "permission fault",
            0b010000 => "synchronous external abort",
            0b100001 => "alignment fault",
            0b110000 => "TLB conflict abort",
            _ => "other fault",
        }
    }

    /// For data aborts: translation level of the fault (0–3), if reported.
    pub fn fault_level(self) -> Option<u8> {
        let fsc = self.iss() & 0x3f;
        matches!(fsc >> 2, 0b0000..=0b0011).then_some((fsc & 3) as u8)
    }

    /// For data aborts: the access was a write (WnR).
    pub fn is_write(self) -> bool {
        self.iss() & (1 << 6) != 0
    }
}

/// The syndrome of a data abort (ISS when ESR.EC is 0x24/0x25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataAbort {
    /// The fields below are valid (a single load/store to one register).
    pub isv: bool,
    /// Access size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// Sign-extend a load.
    pub sign_extend: bool,
    /// The register transferred (31 = xzr/wzr).
    pub reg: u8,
    /// The register is 64 bits wide (else 32).
    pub sixty_four: bool,
    pub write: bool,
    /// The fault happened on a stage-1 table walk.
    pub s1ptw: bool,
}

/// The syndrome of a trapped MSR/MRS (ISS when ESR.EC is 0x18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
    /// The general register read or written.
    pub reg: u8,
    /// MRS (a read of the system register).
    pub read: bool,
}

impl SysRegAccess {
    /// ICC_SGI1R_EL1: S3_0_C12_C11_5.
    pub fn is_icc_sgi1r(&self) -> bool {
        (self.op0, self.op1, self.crn, self.crm, self.op2) == (3, 0, 12, 11, 5)
    }

    /// A debug register (`op0` = 2: breakpoints, watchpoints, MDSCR_EL1,
    /// the OS lock, the debug communication channel), trapped by
    /// MDCR_EL2.TDA, TDOSA and TDRA.
    pub fn is_debug(&self) -> bool {
        self.op0 == 2
    }

    /// A performance-monitor register, trapped by MDCR_EL2.TPM: PMCR_EL0
    /// and the rest of `S3_3_C9_C12`–`C14`, PMINTENSET/CLR_EL1 and PMMIR_EL1
    /// (`S3_0_C9_C14`), the event counters and their types (`S3_3_C14_C8`–
    /// `C15`).
    pub fn is_pmu(&self) -> bool {
        matches!(
            (self.op0, self.op1, self.crn, self.crm),
            (3, 3, 9, 12..=14) | (3, 0, 9, 14) | (3, 3, 14, 8..=15)
        )
    }
}

impl Esr {
    /// Decodes a data abort's ISS.
    pub fn data_abort(self) -> DataAbort {
        let iss = self.iss();
        DataAbort {
            isv: iss & (1 << 24) != 0,
            size: 1 << ((iss >> 22) & 3),
            sign_extend: iss & (1 << 21) != 0,
            reg: ((iss >> 16) & 0x1f) as u8,
            sixty_four: iss & (1 << 15) != 0,
            write: iss & (1 << 6) != 0,
            s1ptw: iss & (1 << 7) != 0,
        }
    }

    /// Decodes a trapped system-register access's ISS.
    pub fn sysreg(self) -> SysRegAccess {
        let iss = self.iss();
        SysRegAccess {
            op0: ((iss >> 20) & 3) as u8,
            op2: ((iss >> 17) & 7) as u8,
            op1: ((iss >> 14) & 7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            reg: ((iss >> 5) & 0x1f) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
            read: iss & 1 != 0,
        }
    }

    /// The 16-bit immediate of an HVC or SMC.
    pub fn imm16(self) -> u16 {
        (self.iss() & 0xffff) as u16
    }
}

impl fmt::Debug for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x} ({})", self.0, self.class().describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_abort_at_el2_is_named_with_its_fault() {
        // EC 0x25, IL, WnR, level-3 translation fault.
        let esr = Esr((0x25 << 26) | (1 << 25) | (1 << 6) | 0b000111);
        assert_eq!(esr.class(), ExceptionClass::DataAbortSame);
        assert_eq!(esr.class().describe(), "data abort at EL2");
        assert_eq!(esr.fault_status(), "translation fault");
        assert_eq!(esr.fault_level(), Some(3));
        assert!(esr.is_write());
    }

    #[test]
    fn hvc_iss_carries_the_immediate() {
        let esr = Esr((0x16 << 26) | (1 << 25) | 0xea1);
        assert_eq!(esr.class(), ExceptionClass::Hvc64);
        assert_eq!(esr.iss(), 0xea1);
    }

    #[test]
    fn data_abort_syndrome_gives_size_register_and_direction() {
        // ISV, SAS=2 (4 bytes), SRT=3, WnR, EC 0x24.
        let esr = Esr((0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (3 << 16) | (1 << 6));
        let da = esr.data_abort();
        assert!(da.isv && da.write && !da.sixty_four && !da.sign_extend);
        assert_eq!((da.size, da.reg), (4, 3));
    }

    #[test]
    fn msr_icc_sgi1r_is_recognised() {
        // MSR ICC_SGI1R_EL1, x5: Op0=3 Op2=5 Op1=0 CRn=12 Rt=5 CRm=11 write.
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (5 << 5) | (11 << 1);
        let acc = Esr((0x18 << 26) | (1 << 25) | iss).sysreg();
        assert!(acc.is_icc_sgi1r());
        assert_eq!((acc.reg, acc.read), (5, false));
    }

    #[test]
    fn unlisted_class_is_reported_with_its_number() {
        assert_eq!(Esr(0x3f << 26).class(), ExceptionClass::Other(0x3f));
    }

    fn sysreg(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> SysRegAccess {
        SysRegAccess {
            op0,
            op1,
            crn,
            crm,
            op2,
            reg: 0,
            read: true,
        }
    }

    #[test]
    fn debug_and_pmu_registers_are_told_apart_from_the_rest() {
        // DBGBVR0_EL1, MDSCR_EL1, OSLAR_EL1: op0 = 2.
        for r in [
            sysreg(2, 0, 0, 0, 4),
            sysreg(2, 0, 0, 2, 2),
            sysreg(2, 0, 1, 0, 4),
        ] {
            assert!(r.is_debug() && !r.is_pmu(), "{r:?}");
        }
        // PMCR_EL0, PMCCNTR_EL0, PMUSERENR_EL0, PMINTENSET_EL1,
        // PMEVCNTR0_EL0, PMCCFILTR_EL0.
        for r in [
            sysreg(3, 3, 9, 12, 0),
            sysreg(3, 3, 9, 13, 0),
            sysreg(3, 3, 9, 14, 0),
            sysreg(3, 0, 9, 14, 1),
            sysreg(3, 3, 14, 8, 0),
            sysreg(3, 3, 14, 15, 7),
        ] {
            assert!(r.is_pmu() && !r.is_debug(), "{r:?}");
        }
        // ICC_SGI1R_EL1, CNTV_CTL_EL0, SCTLR_EL1 are neither.
        for r in [
            sysreg(3, 0, 12, 11, 5),
            sysreg(3, 3, 14, 3, 1),
            sysreg(3, 0, 1, 0, 0),
        ] {
            assert!(!r.is_pmu() && !r.is_debug(), "{r:?}");
        }
    }
}
