//! The guest ABI of event channels: `event_channel_op` sub-op numbers,
//! argument layouts (AArch64, little endian), status codes and the shared
//! memory layouts of both delivery ABIs.

/// `EVTCHNOP_*` sub-op numbers (`event_channel_op`'s first argument).
pub mod cmd {
    pub const BIND_INTERDOMAIN: u32 = 0;
    pub const BIND_VIRQ: u32 = 1;
    pub const BIND_PIRQ: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const SEND: u32 = 4;
    pub const STATUS: u32 = 5;
    pub const ALLOC_UNBOUND: u32 = 6;
    pub const BIND_IPI: u32 = 7;
    pub const BIND_VCPU: u32 = 8;
    pub const UNMASK: u32 = 9;
    pub const RESET: u32 = 10;
    pub const INIT_CONTROL: u32 = 11;
    pub const EXPAND_ARRAY: u32 = 12;
    pub const SET_PRIORITY: u32 = 13;
    /// Xen's internal continuation of `reset`; Xen accepts it from guests
    /// too, and so does Oxen (as a plain reset: Oxen's reset is never
    /// preempted).
    pub const RESET_CONT: u32 = 14;
}

/// `EVTCHNSTAT_*`: what `EVTCHNOP_status` reports.
pub mod stat {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const PIRQ: u32 = 3;
    pub const VIRQ: u32 = 4;
    pub const IPI: u32 = 5;
}

/// VIRQ numbers a guest may bind (`VIRQ_*`).
pub mod virq {
    pub const TIMER: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const CONSOLE: u32 = 2;
    pub const DOM_EXC: u32 = 3;
    pub const XENOPROF: u32 = 7;
    pub const ARGO: u32 = 11;
    pub const XENPMU: u32 = 13;
    /// `NR_VIRQS`: VIRQs are numbered below this.
    pub const NR: u32 = 24;
}

/// Size in bytes of `event_channel_op`'s argument for `cmd`, or `None` for a
/// sub-op Oxen does not know (the hypercall then returns `-ENOSYS` without
/// reading anything).
pub fn arg_size(cmd: u32) -> Option<usize> {
    Some(match cmd {
        cmd::BIND_INTERDOMAIN | cmd::BIND_VIRQ | cmd::BIND_PIRQ => 12,
        cmd::CLOSE | cmd::SEND | cmd::UNMASK => 4,
        cmd::STATUS | cmd::INIT_CONTROL => 24,
        cmd::ALLOC_UNBOUND | cmd::BIND_IPI | cmd::BIND_VCPU => 8,
        cmd::EXPAND_ARRAY | cmd::SET_PRIORITY => 8,
        cmd::RESET | cmd::RESET_CONT => 2,
        _ => return None,
    })
}

/// Whether `cmd` writes results into its argument, which then has to be
/// copied back to the guest when the hypercall returns 0 (Xen copies back
/// only on success, and so the argument is left untouched on failure).
pub fn has_output(cmd: u32) -> bool {
    matches!(
        cmd,
        cmd::BIND_INTERDOMAIN
            | cmd::BIND_VIRQ
            | cmd::BIND_PIRQ
            | cmd::STATUS
            | cmd::ALLOC_UNBOUND
            | cmd::BIND_IPI
            | cmd::INIT_CONTROL
    )
}

/// Byte offsets of the fields of each argument struct.
pub(crate) mod off {
    // struct evtchn_bind_interdomain (12 bytes)
    pub const BI_REMOTE_DOM: usize = 0;
    pub const BI_REMOTE_PORT: usize = 4;
    pub const BI_LOCAL_PORT: usize = 8;
    // struct evtchn_bind_virq (12 bytes)
    pub const BV_VIRQ: usize = 0;
    pub const BV_VCPU: usize = 4;
    pub const BV_PORT: usize = 8;
    // struct evtchn_close / send / unmask (4 bytes)
    pub const PORT: usize = 0;
    // struct evtchn_status (24 bytes)
    pub const ST_DOM: usize = 0;
    pub const ST_PORT: usize = 4;
    pub const ST_STATUS: usize = 8;
    pub const ST_VCPU: usize = 12;
    pub const ST_U_DOM: usize = 16;
    pub const ST_U_PORT: usize = 20;
    pub const ST_U_VIRQ: usize = 16;
    // struct evtchn_alloc_unbound (8 bytes)
    pub const AU_DOM: usize = 0;
    pub const AU_REMOTE_DOM: usize = 2;
    pub const AU_PORT: usize = 4;
    // struct evtchn_bind_ipi (8 bytes)
    pub const BIPI_VCPU: usize = 0;
    pub const BIPI_PORT: usize = 4;
    // struct evtchn_bind_vcpu (8 bytes)
    pub const BVC_PORT: usize = 0;
    pub const BVC_VCPU: usize = 4;
    // struct evtchn_reset (2 bytes)
    pub const RS_DOM: usize = 0;
    // struct evtchn_init_control (24 bytes)
    pub const IC_GFN: usize = 0;
    pub const IC_OFFSET: usize = 8;
    pub const IC_VCPU: usize = 12;
    pub const IC_LINK_BITS: usize = 16;
    // struct evtchn_expand_array (8 bytes)
    pub const EA_GFN: usize = 0;
    // struct evtchn_set_priority (8 bytes)
    pub const SP_PORT: usize = 0;
    pub const SP_PRIORITY: usize = 4;
}

/// Layout of `struct shared_info` and `struct vcpu_info` on arm64.
pub mod shared {
    /// `vcpu_info[0]` (vCPU 0's vcpu_info until it registers its own).
    pub const VCPU_INFO: usize = 0;
    /// `evtchn_pending[64]`: port p is bit p % 64 of word p / 64.
    pub const EVTCHN_PENDING: usize = 48;
    /// `evtchn_mask[64]`.
    pub const EVTCHN_MASK: usize = 560;
    /// Bytes of `struct vcpu_info`.
    pub const VCPU_INFO_SIZE: usize = 48;
    /// `vcpu_info.evtchn_upcall_pending` (a byte; Xen sets bit 0 of the
    /// 64-bit word that starts there).
    pub const UPCALL_PENDING: usize = 0;
    /// `vcpu_info.evtchn_pending_sel`: bit w set means word w of
    /// `evtchn_pending` may have set bits.
    pub const PENDING_SEL: usize = 8;
}

/// The FIFO ABI's memory layouts and limits.
pub mod fifo {
    /// `EVTCHN_FIFO_LINK_BITS`, returned by `init_control`.
    pub const LINK_BITS: u8 = 17;
    /// `EVTCHN_FIFO_NR_CHANNELS`.
    pub const NR_CHANNELS: u32 = 1 << LINK_BITS;
    /// Event word bits.
    pub const PENDING: u32 = 1 << 31;
    pub const MASKED: u32 = 1 << 30;
    pub const LINKED: u32 = 1 << 29;
    pub const BUSY: u32 = 1 << 28;
    pub const LINK_MASK: u32 = NR_CHANNELS - 1;
    /// Event words per event-array page.
    pub const WORDS_PER_PAGE: u32 = 1024;
    /// Most event-array pages (`NR_CHANNELS / WORDS_PER_PAGE`).
    pub const MAX_PAGES: usize = (NR_CHANNELS / WORDS_PER_PAGE) as usize;
    /// Priorities: 0 is the highest, 15 the lowest.
    pub const PRIORITY_MAX: u32 = 0;
    pub const PRIORITY_DEFAULT: u8 = 7;
    pub const PRIORITY_MIN: u32 = 15;
    pub const QUEUES: usize = 16;
    /// Control block: `u32 ready` @0, `u32 _rsvd` @4, `u32 head[16]` @8.
    pub const READY: usize = 0;
    pub const HEAD: usize = 8;
    pub const CONTROL_BLOCK_SIZE: usize = 72;
}

/// Ports of the 2-level ABI on arm64 (64 words of 64 bits).
pub const NR_2L_CHANNELS: u32 = 64 * 64;

// The accessors below take offsets from `off`, inside the argument sizes
// `arg_size` gives, and `event_channel_op` checks the length first; a
// field past the end reads as 0 and is not written, rather than panicking.
// Always inlined: each is a load or a store of a constant size once
// inlined, and a `memcpy` call when not (the release build optimises for
// size, which would not inline them).

#[inline(always)]
fn get<const N: usize>(arg: &[u8], off: usize) -> [u8; N] {
    let mut b = [0; N];
    if let Some(field) = arg.get(off..off.saturating_add(N)) {
        b.copy_from_slice(field);
    }
    b
}

#[inline(always)]
fn put(arg: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(field) = arg.get_mut(off..off.saturating_add(bytes.len())) {
        field.copy_from_slice(bytes);
    }
}

#[inline(always)]
pub(crate) fn get_u16(arg: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(get(arg, off))
}

#[inline(always)]
pub(crate) fn get_u32(arg: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(get(arg, off))
}

#[inline(always)]
pub(crate) fn get_u64(arg: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(get(arg, off))
}

#[inline(always)]
pub(crate) fn put_u8(arg: &mut [u8], off: usize, v: u8) {
    put(arg, off, &[v]);
}

#[inline(always)]
pub(crate) fn put_u16(arg: &mut [u8], off: usize, v: u16) {
    put(arg, off, &v.to_le_bytes());
}

#[inline(always)]
pub(crate) fn put_u32(arg: &mut [u8], off: usize, v: u32) {
    put(arg, off, &v.to_le_bytes());
}
