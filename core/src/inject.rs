//! Exceptions Oxen injects into a guest (an undefined instruction, an
//! external abort), computed as the architecture would take them to EL1.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

/// PSTATE for EL1h with D, A, I and F masked: the state exception entry
/// leaves, and the state a vCPU boots in.
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;

/// Fault status code for a synchronous external abort.
pub const FSC_EXTERNAL_ABORT: u64 = 0x10;

/// The register values that take an exception to the guest's EL1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    pub esr_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub far_el1: Option<u64>,
    /// The new PC: the right entry of the guest's vector table.
    pub pc: u64,
    pub pstate: u64,
}

/// What kind of exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Undefined,
    DataAbort { far: u64 },
    InstructionAbort { far: u64 },
}

fn from_el0(pstate: u64) -> bool {
    pstate & 0x10 != 0 || pstate & 0xc == 0
}

/// The vector-table offset for a synchronous exception taken from `pstate`.
fn vector_offset(pstate: u64) -> u64 {
    if pstate & 0x10 != 0 {
        0x600 // lower EL, AArch32
    } else {
        match pstate & 0xf {
            0b0000 => 0x400, // EL0t: lower EL, AArch64
            0b0100 => 0x000, // EL1t: current EL with SP_EL0
            _ => 0x200,      // EL1h: current EL with SP_EL1
        }
    }
}

/// Computes how the guest, at `pc`/`pstate` with vectors at `vbar`, takes
/// `kind` (with a 32-bit faulting instruction).
pub fn synchronous(kind: Kind, pc: u64, pstate: u64, vbar: u64) -> Injection {
    let lower = from_el0(pstate);
    let (ec, iss, far) = match kind {
        Kind::Undefined => (0x00, 0, None),
        Kind::DataAbort { far } => (
            if lower { 0x24 } else { 0x25 },
            FSC_EXTERNAL_ABORT,
            Some(far),
        ),
        Kind::InstructionAbort { far } => (
            if lower { 0x20 } else { 0x21 },
            FSC_EXTERNAL_ABORT,
            Some(far),
        ),
    };
    Injection {
        esr_el1: (ec << 26) | (1 << 25) | iss,
        elr_el1: pc,
        spsr_el1: pstate,
        far_el1: far,
        pc: vbar + vector_offset(pstate),
        pstate: PSTATE_EL1H_MASKED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_from_el1h_uses_the_current_el_spx_vector() {
        let inj = synchronous(Kind::Undefined, 0x4008_1000, 0x3c5, 0xffff_8000_1001_0000);
        assert_eq!(inj.pc, 0xffff_8000_1001_0200);
        assert_eq!(inj.esr_el1, 1 << 25);
        assert_eq!((inj.elr_el1, inj.spsr_el1), (0x4008_1000, 0x3c5));
        assert_eq!(inj.far_el1, None);
    }

    #[test]
    fn data_abort_from_el0_is_a_lower_el_abort_with_far() {
        let inj = synchronous(Kind::DataAbort { far: 0x1234 }, 0x400000, 0x0, 0x8000);
        assert_eq!(inj.pc, 0x8400);
        assert_eq!(inj.esr_el1 >> 26, 0x24);
        assert_eq!(inj.esr_el1 & 0x3f, FSC_EXTERNAL_ABORT);
        assert_eq!(inj.far_el1, Some(0x1234));
        assert_eq!(inj.pstate, PSTATE_EL1H_MASKED);
    }

    #[test]
    fn aarch32_el0_uses_the_last_vector_group() {
        let inj = synchronous(Kind::Undefined, 0x8000, 0x10, 0);
        assert_eq!(inj.pc, 0x600);
    }
}
