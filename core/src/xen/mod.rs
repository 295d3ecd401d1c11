//! The Xen guest ABI as Oxen serves it: error numbers, hypercall numbers
//! and special domain IDs, defined once for core and every subsystem.

pub mod errno;

/// A domain ID.
pub type DomId = u16;

/// `DOMID_SELF`: "the calling domain" in hypercall arguments.
pub const DOMID_SELF: DomId = 0x7ff0;
/// `DOMID_IO`.
pub const DOMID_IO: DomId = 0x7ff1;
/// `DOMID_XEN`.
pub const DOMID_XEN: DomId = 0x7ff2;
/// `DOMID_INVALID`.
pub const DOMID_INVALID: DomId = 0x7ff4;
/// First reserved domain ID; guests have IDs below it.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// The immediate of a Xen hypercall instruction, `HVC #0xEA1`.
pub const HYPERCALL_TAG: u16 = 0xea1;

/// Hypercall numbers (x16) Oxen knows on arm64.
pub mod nr {
    pub const PLATFORM_OP: u64 = 7;
    pub const MEMORY_OP: u64 = 12;
    pub const MULTICALL: u64 = 13;
    pub const XEN_VERSION: u64 = 17;
    pub const CONSOLE_IO: u64 = 18;
    pub const GRANT_TABLE_OP: u64 = 20;
    pub const VM_ASSIST: u64 = 21;
    pub const VCPU_OP: u64 = 24;
    pub const SCHED_OP: u64 = 29;
    pub const EVENT_CHANNEL_OP: u64 = 32;
    pub const PHYSDEV_OP: u64 = 33;
    pub const HVM_OP: u64 = 34;
}
