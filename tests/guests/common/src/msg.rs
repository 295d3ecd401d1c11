//! A short text built with `write!` in a fixed buffer: the guest has no heap.

use core::fmt;

/// Up to `CAP` bytes of text; anything longer is cut and ends in `…`.
pub struct Msg {
    buf: [u8; Msg::CAP],
    len: usize,
    cut: bool,
}

impl Msg {
    /// The longest text kept.
    pub const CAP: usize = 200;

    pub const fn new() -> Self {
        Self {
            buf: [0; Self::CAP],
            len: 0,
            cut: false,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 sequences are ever copied in (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Msg {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let w = c.len_utf8();
            if self.len + w > Self::CAP {
                self.cut = true;
                break;
            }
            c.encode_utf8(&mut self.buf[self.len..self.len + w]);
            self.len += w;
        }
        Ok(())
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// A [`Msg`] from format arguments: `msg!("got {v:#x}")`.
#[macro_export]
macro_rules! msg {
    ($($arg:tt)*) => {{
        let mut m = $crate::msg::Msg::new();
        let _ = core::fmt::Write::write_fmt(&mut m, format_args!($($arg)*));
        m
    }};
}
