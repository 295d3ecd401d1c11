//! `console_io` (18): guest output to the hypervisor console and input
//! typed while the domain has the console focus.

use alloc::vec;

use super::{Caller, HYPERCALLS, Hypercall, Request};
use crate::xen::errno::ENOSYS;
use crate::xen::nr;

const CHUNK: usize = 256;

/// The most one `console_io` write prints before it continues itself
/// (`Request::Continue`), letting other vCPUs run: unbounded, one call of a
/// few MiB held its pCPU for seconds and delayed another domain's timer
/// interrupt as long (found by the hostile test guest, configs/hostile-timer).
pub const WRITE_BUDGET: u64 = 1024;

/// The handler.
pub fn console_io(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, count, buf) = (a[0], a[1], a[2]);
    match cmd {
        0 => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0u64;
            while done < count {
                if done == WRITE_BUDGET {
                    c.request(Request::Continue([
                        cmd,
                        count - done,
                        buf.wrapping_add(done),
                        a[3],
                        a[4],
                    ]));
                    return 0;
                }
                let n = (count - done).min(CHUNK as u64) as usize;
                // n ≤ CHUNK, the chunk's length.
                let Some(part) = chunk.get_mut(..n) else {
                    return 0;
                };
                if let Err(e) = c.read(buf.wrapping_add(done), part) {
                    return e.ret();
                }
                c.console_write(part);
                done += n as u64;
            }
            0
        }
        1 => {
            let input = c.console_read(count.min(CHUNK as u64) as usize);
            let mut out = vec![0u8; input.len()];
            out.copy_from_slice(&input);
            match c.write(buf, &out) {
                Ok(()) => out.len() as i64,
                Err(e) => e.ret(),
            }
        }
        _ => ENOSYS.ret(),
    }
}

crate::arch::register! {
    HYPERCALLS,
    static CONSOLE_IO: Hypercall = Hypercall {
        nr: nr::CONSOLE_IO,
        name: "console_io",
        interface: None,
        handler: console_io,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;

    #[test]
    fn write_copies_the_guest_buffer_to_the_console() {
        let mut c = FakeCaller::new();
        c.put(BASE, b"hi\n");
        assert_eq!(console_io(&mut c, [0, 3, BASE, 0, 0]), 0);
        assert_eq!(c.console, b"hi\n");
    }

    #[test]
    fn write_with_a_bad_buffer_or_huge_count_is_efault() {
        let mut c = FakeCaller::new();
        assert_eq!(console_io(&mut c, [0, 3, 0x10, 0, 0]), -14);
        // Huge from readable memory: continued until the buffer runs into
        // memory the guest does not have.
        let mut args = [0, u64::MAX, BASE, 0, 0];
        let ret = loop {
            c.requests.clear();
            let r = console_io(&mut c, args);
            match c.requests.as_slice() {
                [Request::Continue(next)] => args = *next,
                _ => break r,
            }
        };
        assert_eq!(ret, -14);
    }

    #[test]
    fn a_long_write_prints_its_budget_then_continues_with_the_rest() {
        let mut c = FakeCaller::new();
        let text: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        c.put(BASE, &text);
        assert_eq!(console_io(&mut c, [0, 3000, BASE, 7, 9]), 0);
        assert_eq!(c.console, &text[..1024]);
        assert_eq!(
            c.requests,
            [Request::Continue([0, 3000 - 1024, BASE + 1024, 7, 9])]
        );
        // The continuation, issued as the guest re-executes the call.
        c.requests.clear();
        assert_eq!(console_io(&mut c, [0, 1976, BASE + 1024, 7, 9]), 0);
        assert_eq!(c.console, &text[..2048]);
        assert_eq!(c.requests, [Request::Continue([0, 952, BASE + 2048, 7, 9])]);
        c.requests.clear();
        assert_eq!(console_io(&mut c, [0, 952, BASE + 2048, 7, 9]), 0);
        assert_eq!(c.console, text);
        assert!(c.requests.is_empty());
    }

    #[test]
    fn a_write_of_exactly_the_budget_needs_no_continuation() {
        let mut c = FakeCaller::new();
        c.put(BASE, &[b'x'; 1024]);
        assert_eq!(console_io(&mut c, [0, WRITE_BUDGET, BASE, 0, 0]), 0);
        assert!(c.requests.is_empty());
    }

    #[test]
    fn read_returns_what_was_typed() {
        let mut c = FakeCaller::new();
        c.input = b"abc".to_vec();
        assert_eq!(console_io(&mut c, [1, 2, BASE, 0, 0]), 2);
        assert_eq!(c.bytes(BASE, 2), b"ab");
        assert_eq!(console_io(&mut c, [2, 2, BASE, 0, 0]), -38);
    }
}
