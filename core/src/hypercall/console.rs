//! `console_io` (18): guest output to the hypervisor console and input
//! typed while the domain has the console focus.

use alloc::vec;
use linkme::distributed_slice;

use super::{Caller, HYPERCALLS, Hypercall};
use crate::xen::errno::ENOSYS;
use crate::xen::nr;

const CHUNK: usize = 256;

/// The handler.
pub fn console_io(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, count, buf) = (a[0], a[1], a[2]);
    match cmd {
        0 => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0u64;
            while done < count {
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

// linkme places the entry with #[link_section], which the crate-wide
// unsafe_code lint counts.
#[allow(unsafe_code)]
#[distributed_slice(HYPERCALLS)]
static CONSOLE_IO: Hypercall = Hypercall {
    nr: nr::CONSOLE_IO,
    name: "console_io",
    interface: None,
    handler: console_io,
};

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
        assert_eq!(console_io(&mut c, [0, u64::MAX, BASE, 0, 0]), -14);
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
