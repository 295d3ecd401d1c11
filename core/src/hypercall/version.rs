//! `xen_version` (17): the Xen version Oxen presents, its features and
//! identification strings.

use super::{Caller, HYPERCALLS, Hypercall, field};
use crate::xen::errno::{EINVAL, ENOSYS, EPERM};
use crate::xen::nr;

/// XENFEAT bits of sub-map 0 for a non-direct-mapped domU: writable page
/// tables (0), auto-translated physmap (2), memory_op vnode (13), SMCCC
/// (14), not direct-mapped (16), runstate phys area (18) — Xen 4.18+'s
/// value.
pub const FEATURES_SUBMAP0: u32 =
    (1 << 0) | (1 << 2) | (1 << 13) | (1 << 14) | (1 << 16) | (1 << 18);

/// XENVER_extraversion: says who is answering.
pub const EXTRAVERSION: &str = "-oxen";
/// XENVER_capabilities.
pub const CAPABILITIES: &str = "xen-3.0-aarch64 ";

fn put_str(c: &mut dyn Caller, gva: u64, s: &str, size: usize) -> i64 {
    let mut buf = alloc::vec![0u8; size];
    // Up to `size - 1` bytes, so the string stays NUL-terminated.
    for (to, &from) in buf
        .iter_mut()
        .zip(s.as_bytes())
        .take(size.saturating_sub(1))
    {
        *to = from;
    }
    match c.write(gva, &buf) {
        Ok(()) => 0,
        Err(e) => e.ret(),
    }
}

/// The handler.
pub fn xen_version(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        0 => i64::from((u32::from(crate::XEN_VERSION.0) << 16) | u32::from(crate::XEN_VERSION.1)),
        1 => put_str(c, arg, EXTRAVERSION, 16),
        2 => {
            // compiler[64], compile_by[16], compile_domain[32], compile_date[32]
            let mut buf = [0u8; 144];
            buf[..5].copy_from_slice(b"rustc");
            buf[64..68].copy_from_slice(b"oxen");
            match c.write(arg, &buf) {
                Ok(()) => 0,
                Err(e) => e.ret(),
            }
        }
        3 => put_str(c, arg, CAPABILITIES, 1024),
        4 => put_str(c, arg, concat!("oxen ", env!("CARGO_PKG_VERSION")), 64),
        5 => match c.write(arg, &0u64.to_le_bytes()) {
            Ok(()) => 0,
            Err(e) => e.ret(),
        },
        6 => {
            let mut buf = [0u8; 8];
            if let Err(e) = c.read(arg, &mut buf) {
                return e.ret();
            }
            if field::<4>(&buf, 0) != 0 {
                return EINVAL.ret();
            }
            buf[4..].copy_from_slice(&FEATURES_SUBMAP0.to_le_bytes());
            match c.write(arg, &buf) {
                Ok(()) => 0,
                Err(e) => e.ret(),
            }
        }
        7 => {
            if arg != 0 {
                EINVAL.ret()
            } else {
                4096
            }
        }
        8 => match c.write(arg, &[0u8; 16]) {
            Ok(()) => 0,
            Err(e) => e.ret(),
        },
        9 => put_str(c, arg, "<denied>", 1024),
        10..=14 => EPERM.ret(),
        _ => ENOSYS.ret(),
    }
}

crate::arch::register! {
    HYPERCALLS,
    static XEN_VERSION: Hypercall = Hypercall {
        nr: nr::XEN_VERSION,
        name: "xen_version",
        interface: None,
        handler: xen_version,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;

    #[test]
    fn version_is_the_impersonated_xen() {
        let mut c = FakeCaller::new();
        assert_eq!(xen_version(&mut c, [0, 0, 0, 0, 0]), 0x0004_0014);
    }

    #[test]
    fn features_submap_0_is_a_domu_s_and_other_submaps_are_einval() {
        let mut c = FakeCaller::new();
        assert_eq!(xen_version(&mut c, [6, BASE, 0, 0, 0]), 0);
        assert_eq!(&c.bytes(BASE + 4, 4), &0x56005u32.to_le_bytes());
        c.put(BASE, &1u32.to_le_bytes());
        assert_eq!(xen_version(&mut c, [6, BASE, 0, 0, 0]), -22);
    }

    #[test]
    fn pagesize_needs_a_null_argument() {
        let mut c = FakeCaller::new();
        assert_eq!(xen_version(&mut c, [7, 0, 0, 0, 0]), 4096);
        assert_eq!(xen_version(&mut c, [7, BASE, 0, 0, 0]), -22);
    }

    #[test]
    fn strings_are_nul_terminated_in_their_buffers() {
        let mut c = FakeCaller::new();
        assert_eq!(xen_version(&mut c, [3, BASE, 0, 0, 0]), 0);
        assert_eq!(&c.bytes(BASE, 17), b"xen-3.0-aarch64 \0");
        assert_eq!(xen_version(&mut c, [9, BASE, 0, 0, 0]), 0);
        assert_eq!(&c.bytes(BASE, 9), b"<denied>\0");
    }

    #[test]
    fn bad_pointer_is_efault_and_privileged_or_unknown_commands_fail() {
        let mut c = FakeCaller::new();
        assert_eq!(xen_version(&mut c, [1, 0xdead_0000, 0, 0, 0]), -14);
        assert_eq!(xen_version(&mut c, [10, BASE, 0, 0, 0]), -1);
        assert_eq!(xen_version(&mut c, [99, BASE, 0, 0, 0]), -38);
    }
}
