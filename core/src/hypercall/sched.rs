//! `sched_op` (29): yield, block, poll and shutdown (with its reasons).

use super::{Caller, HYPERCALLS, Hypercall, Request, ShutdownReason, field};
use crate::xen::errno::{EINVAL, ENOSYS, EOPNOTSUPP, EPERM};
use crate::xen::nr;

/// SCHEDOP_poll accepts at most this many ports.
pub const POLL_MAX_PORTS: u64 = 128;

fn read_u32(c: &mut dyn Caller, gva: u64) -> Result<u32, i64> {
    let mut b = [0u8; 4];
    c.read(gva, &mut b).map_err(|e| e.ret())?;
    Ok(u32::from_le_bytes(b))
}

/// The handler.
pub fn sched_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        0 => {
            c.request(Request::Yield);
            0
        }
        1 => {
            c.request(Request::Block);
            0
        }
        2 => {
            let reason = match read_u32(c, arg) {
                Ok(r) => r,
                Err(e) => return e,
            };
            let reason = match reason {
                0 => ShutdownReason::Poweroff,
                1 => ShutdownReason::Reboot,
                // Nothing exists that could resume or soft-reset a dom0less
                // domain, so these are refused rather than left paused.
                2 | 5 => return EOPNOTSUPP.ret(),
                3 => ShutdownReason::Crash,
                4 => ShutdownReason::Watchdog,
                _ => return EINVAL.ret(),
            };
            c.request(Request::Shutdown(reason));
            0
        }
        3 => {
            // struct sched_poll: handle ports, u32 nr_ports, u64 timeout.
            let mut b = [0u8; 24];
            if let Err(e) = c.read(arg, &mut b) {
                return e.ret();
            }
            if field::<4>(&b, 8) > POLL_MAX_PORTS {
                return EINVAL.ret();
            }
            // Returning early is allowed: the caller re-checks its ports.
            c.request(Request::Yield);
            0
        }
        4 | 7 => EPERM.ret(),
        5 => match read_u32(c, arg) {
            Ok(_) => 0,
            Err(e) => e,
        },
        _ => ENOSYS.ret(),
    }
}

crate::arch::register! {
    HYPERCALLS,
    static SCHED_OP: Hypercall = Hypercall {
        nr: nr::SCHED_OP,
        name: "sched_op",
        interface: None,
        handler: sched_op,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;

    #[test]
    fn shutdown_reasons_map_to_requests() {
        for (reason, want) in [
            (0u32, Some(ShutdownReason::Poweroff)),
            (1, Some(ShutdownReason::Reboot)),
            (3, Some(ShutdownReason::Crash)),
            (4, Some(ShutdownReason::Watchdog)),
        ] {
            let mut c = FakeCaller::new();
            c.put(BASE, &reason.to_le_bytes());
            assert_eq!(sched_op(&mut c, [2, BASE, 0, 0, 0]), 0);
            assert_eq!(c.requests, [Request::Shutdown(want.unwrap())]);
        }
    }

    #[test]
    fn suspend_and_soft_reset_are_refused_and_bad_reasons_einval() {
        let mut c = FakeCaller::new();
        for (reason, rc) in [(2u32, -95), (5, -95), (6, -22)] {
            c.put(BASE, &reason.to_le_bytes());
            assert_eq!(sched_op(&mut c, [2, BASE, 0, 0, 0]), rc);
        }
        assert!(c.requests.is_empty());
    }

    #[test]
    fn poll_with_more_than_128_ports_is_einval() {
        let mut c = FakeCaller::new();
        c.put(BASE + 8, &129u32.to_le_bytes());
        assert_eq!(sched_op(&mut c, [3, BASE, 0, 0, 0]), -22);
        c.put(BASE + 8, &128u32.to_le_bytes());
        assert_eq!(sched_op(&mut c, [3, BASE, 0, 0, 0]), 0);
    }

    #[test]
    fn yield_block_and_privileged_ops() {
        let mut c = FakeCaller::new();
        assert_eq!(sched_op(&mut c, [0, 0, 0, 0, 0]), 0);
        assert_eq!(sched_op(&mut c, [1, 0, 0, 0, 0]), 0);
        assert_eq!(c.requests, [Request::Yield, Request::Block]);
        assert_eq!(sched_op(&mut c, [4, BASE, 0, 0, 0]), -1);
        assert_eq!(sched_op(&mut c, [42, BASE, 0, 0, 0]), -38);
        assert_eq!(sched_op(&mut c, [2, 0, 0, 0, 0]), -14);
    }
}
