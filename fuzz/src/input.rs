//! Reading a fuzz input as a stream of small decisions: each read takes
//! the next bytes, and an exhausted input reads as zeros, so every input
//! means something and a shorter one is a prefix of the same run.

/// The unread rest of an input.
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `n` bytes, or fewer when the input ends.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        let got = self.bytes(N);
        b[..got.len()].copy_from_slice(got);
        b
    }

    pub fn u8(&mut self) -> u8 {
        self.le::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }

    /// A number below `n` (`n > 0`), from one byte.
    pub fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }

    /// A small number most of the time, any `u32` sometimes: ports, refs,
    /// indices and counts are interesting near 0 and at the extremes.
    pub fn index(&mut self) -> u32 {
        match self.u8() {
            0..=191 => u32::from(self.u8()),
            192..=223 => u32::from(self.u16()),
            224..=239 => u32::MAX - u32::from(self.u8()),
            _ => self.u32(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_input_reads_zeros() {
        let mut i = Input::new(&[1, 2]);
        assert_eq!(i.u32(), 0x0201);
        assert_eq!(i.u64(), 0);
        assert!(i.is_empty());
    }
}
