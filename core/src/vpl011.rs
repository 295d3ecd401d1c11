//! The virtual SBSA UART (vPL011) each domain with `vpl011` sees, and the
//! line buffer that turns its output into prefixed console lines.
//!
//! The model is what Linux's PL011 driver in SBSA mode and the `pl011`
//! earlycon need: transmit is instantaneous (the transmit FIFO is always
//! empty), input waits in a 32-byte receive FIFO, and one level-triggered
//! interrupt line is the OR of the unmasked interrupt sources. The SBSA
//! generic UART has no control or baud-rate registers; the PL011 ones are
//! kept as plain storage so a full PL011 driver can program them harmlessly.
//! `CR` does not gate transmit or receive: its reset value leaves the UART
//! disabled and SBSA drivers never write it.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use core::fmt;

use crate::guest_layout::GUEST_PL011;

/// Register offsets inside the 4 KiB window.
mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR_ECR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    pub const PERIPH_ID0: u64 = 0xfe0;
    pub const PCELL_ID3: u64 = 0xffc;
}

/// Flag register (FR) bits.
pub mod fr {
    /// The UART is busy transmitting (never, here).
    pub const BUSY: u32 = 1 << 3;
    /// The receive FIFO is empty.
    pub const RXFE: u32 = 1 << 4;
    /// The transmit FIFO is full (never, here).
    pub const TXFF: u32 = 1 << 5;
    /// The receive FIFO is full.
    pub const RXFF: u32 = 1 << 6;
    /// The transmit FIFO is empty (always, here).
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits, shared by IMSC, RIS, MIS and ICR.
pub mod int {
    /// Receive: data is waiting in the receive FIFO.
    pub const RX: u32 = 1 << 4;
    /// Transmit: the transmit FIFO has room.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout: data has waited in the receive FIFO.
    pub const RT: u32 = 1 << 6;
    /// Every interrupt source the PL011 has (modem, RX, TX, RT and errors).
    pub const ALL: u32 = 0x7ff;
}

/// PeriphID0..3 then PCellID0..3 of an Arm PL011 r1p5, from its TRM.
const ID_REGS: [u32; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// The receive FIFO depth of a PL011, which SBSA keeps.
pub const RX_FIFO_DEPTH: usize = 32;

/// One trapped guest access to the UART window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load of `size` bytes.
    Read { size: u8 },
    /// A store of the low `size` bytes of `value`.
    Write { size: u8, value: u32 },
}

impl Access {
    fn size(&self) -> u8 {
        match *self {
            Access::Read { size } | Access::Write { size, .. } => size,
        }
    }
}

/// Why a guest access cannot be emulated; the caller injects a data abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vpl011Error {
    /// An access of a size other than 1, 2 or 4 bytes.
    BadSize { offset: u64, size: u8 },
    /// An access that does not start at a register's first byte.
    Misaligned { offset: u64, size: u8 },
    /// An offset beyond the 4 KiB window.
    OutsideWindow { offset: u64 },
}

impl fmt::Display for Vpl011Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Vpl011Error::BadSize { offset, size } => write!(
                f,
                "vpl011: {size}-byte access at offset {offset:#x} \
                 (the UART accepts 1-, 2- and 4-byte accesses)"
            ),
            Vpl011Error::Misaligned { offset, size } => write!(
                f,
                "vpl011: {size}-byte access at offset {offset:#x} does not start at a \
                 register (registers are 4-byte aligned)"
            ),
            Vpl011Error::OutsideWindow { offset } => write!(
                f,
                "vpl011: offset {offset:#x} is outside the UART's {:#x}-byte window",
                GUEST_PL011.size()
            ),
        }
    }
}

/// A ring of received bytes waiting for the guest.
#[derive(Clone, Debug)]
struct RxFifo {
    bytes: [u8; RX_FIFO_DEPTH],
    head: usize,
    len: usize,
}

impl RxFifo {
    const fn new() -> Self {
        Self {
            bytes: [0; RX_FIFO_DEPTH],
            head: 0,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len == RX_FIFO_DEPTH
    }

    fn push(&mut self, byte: u8) -> bool {
        if self.is_full() {
            return false;
        }
        match self.bytes.get_mut((self.head + self.len) % RX_FIFO_DEPTH) {
            Some(slot) => *slot = byte,
            None => return false,
        }
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u8> {
        if self.is_empty() {
            return None;
        }
        let byte = self.bytes.get(self.head).copied()?;
        self.head = (self.head + 1) % RX_FIFO_DEPTH;
        self.len -= 1;
        Some(byte)
    }
}

/// One domain's virtual SBSA UART.
///
/// After every [`mmio`](Self::mmio) and [`receive`](Self::receive) the
/// caller samples [`irq_level`](Self::irq_level) and hands it to the vGIC
/// (SPI 32, level-high).
#[derive(Clone, Debug)]
pub struct Vpl011 {
    rx: RxFifo,
    imsc: u32,
    /// The latched transmit interrupt. The FIFO empties the moment a byte is
    /// written, so a write raises it; ICR clears it, but never while TX is
    /// unmasked, so an interrupt-driven driver always gets its next TX
    /// interrupt (it masks TX itself when it has nothing more to send).
    tx_ris: bool,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    dmacr: u32,
}

impl Default for Vpl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Vpl011 {
    /// A UART in its reset state: empty FIFO, every interrupt masked.
    pub const fn new() -> Self {
        Self {
            rx: RxFifo::new(),
            imsc: 0,
            tx_ris: false,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            // TXE and RXE set, UARTEN clear, as a PL011 resets.
            cr: 0x300,
            // Both FIFO triggers at half full.
            ifls: 0x12,
            dmacr: 0,
        }
    }

    /// A guest access at `offset` inside the 4 KiB window. Err for misaligned
    /// or wrong-size accesses (caller injects an abort).
    ///
    /// Accesses of 1, 2 or 4 bytes are accepted at a register's offset: a
    /// narrower read returns the register's low bytes and a narrower write is
    /// zero-extended (no PL011 register is wider than 16 bits, so a 2-byte
    /// write sets a whole register; Linux uses 1-byte accesses only for the
    /// data register). Each byte the guest transmits is
    /// passed to `out` at once. Unassigned offsets read as zero and ignore
    /// writes. Returns the value read (0 for a write).
    pub fn mmio(
        &mut self,
        offset: u64,
        access: Access,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<u32, Vpl011Error> {
        let size = access.size();
        if offset >= GUEST_PL011.size() {
            return Err(Vpl011Error::OutsideWindow { offset });
        }
        if !matches!(size, 1 | 2 | 4) {
            return Err(Vpl011Error::BadSize { offset, size });
        }
        if !offset.is_multiple_of(4) {
            return Err(Vpl011Error::Misaligned { offset, size });
        }
        let mask = if size == 4 {
            u32::MAX
        } else {
            (1u32 << (8 * u32::from(size))) - 1
        };
        match access {
            Access::Read { .. } => Ok(self.read(offset) & mask),
            Access::Write { value, .. } => {
                self.write(offset, value & mask, out);
                Ok(0)
            }
        }
    }

    /// Bytes typed on the physical console for this domain; returns how many fit.
    ///
    /// Nothing is dropped: bytes beyond the free space stay with the caller,
    /// to be offered again once the guest has read some.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        bytes.iter().take_while(|&&b| self.rx.push(b)).count()
    }

    /// How many more bytes [`receive`](Self::receive) would take now.
    pub fn rx_free(&self) -> usize {
        RX_FIFO_DEPTH - self.rx.len
    }

    /// The level of the interrupt line (RIS & IMSC != 0), for the vGIC.
    pub fn irq_level(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    /// The raw interrupt status. RX and RT follow the FIFO: real hardware
    /// raises RX at the trigger level and RT once data has waited, but a
    /// driver answers both by reading until the FIFO is empty, so raising
    /// both while any data waits only makes input arrive sooner.
    fn ris(&self) -> u32 {
        let mut ris = 0;
        if !self.rx.is_empty() {
            ris |= int::RX | int::RT;
        }
        if self.tx_ris {
            ris |= int::TX;
        }
        ris
    }

    /// TXFF and BUSY are never set: transmission is instantaneous.
    fn flags(&self) -> u32 {
        let mut flags = fr::TXFE;
        if self.rx.is_empty() {
            flags |= fr::RXFE;
        }
        if self.rx.is_full() {
            flags |= fr::RXFF;
        }
        flags
    }

    fn read(&mut self, offset: u64) -> u32 {
        match offset {
            // An empty FIFO reads as 0; the error bits (11:8) are never set.
            reg::DR => self.rx.pop().map_or(0, u32::from),
            reg::RSR_ECR => 0,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            reg::DMACR => self.dmacr,
            reg::PERIPH_ID0..=reg::PCELL_ID3 => ID_REGS
                .get(((offset - reg::PERIPH_ID0) / 4) as usize)
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// An ICR write. RX and RT are recomputed from the FIFO, so clearing
    /// them only sticks once the FIFO is empty; TX stays raised while
    /// unmasked.
    fn clear_interrupts(&mut self, value: u32) {
        if value & int::TX != 0 && self.imsc & int::TX == 0 {
            self.tx_ris = false;
        }
    }

    fn write(&mut self, offset: u64, value: u32, out: &mut dyn FnMut(&[u8])) {
        match offset {
            reg::DR => {
                out(&[value as u8]);
                self.tx_ris = true;
            }
            reg::ILPR => self.ilpr = value & 0xff,
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            reg::LCR_H => self.lcr_h = value & 0xff,
            reg::CR => self.cr = value & 0xffff,
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => {
                self.imsc = value & int::ALL;
                if self.imsc & int::TX != 0 {
                    self.tx_ris = true;
                }
            }
            reg::ICR => self.clear_interrupts(value),
            reg::DMACR => self.dmacr = value & 0x7,
            // ECR clears receive errors, of which there are none; FR, RIS,
            // MIS and the ID registers are read-only.
            _ => {}
        }
    }
}

/// The longest line [`LineBuffer`] holds by default before it flushes.
pub const DEFAULT_LINE_CAP: usize = 128;

/// Turns a guest's output byte stream into complete lines for a prefixed
/// console (`(d1) ...`, `DOM1: ...`).
///
/// A line ends at `\n`, or when `CAP` bytes have gathered (the rest
/// continues on the next line). `\r` is dropped, as are the other control
/// characters except tab, so a guest cannot move the cursor or send escape
/// sequences to the operator's terminal (Xen strips non-printables the same
/// way). Unlike Xen, which works on single bytes, well-formed UTF-8 sequences
/// of printable characters are kept whole (so are never split across lines)
/// and malformed ones and C1 controls are dropped: every line handed out is
/// valid UTF-8.
#[derive(Clone, Debug)]
pub struct LineBuffer<const CAP: usize = DEFAULT_LINE_CAP> {
    buf: [u8; CAP],
    len: usize,
    /// Where the UTF-8 sequence being gathered starts, and how many
    /// continuation bytes it still needs (0: none in progress).
    seq_start: usize,
    seq_need: usize,
}

impl<const CAP: usize> Default for LineBuffer<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> LineBuffer<CAP> {
    /// An empty buffer.
    pub const fn new() -> Self {
        const { assert!(CAP >= 4, "a line must hold the longest UTF-8 character") };
        Self {
            buf: [0; CAP],
            len: 0,
            seq_start: 0,
            seq_need: 0,
        }
    }

    /// Adds `bytes`, calling `line` with each line they complete (without
    /// its line ending).
    pub fn push(&mut self, bytes: &[u8], line: &mut dyn FnMut(&[u8])) {
        for &byte in bytes {
            self.push_byte(byte, line);
        }
    }

    /// The start of a line not yet ended.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.seq_start_or_len()]
    }

    /// Hands out the unfinished line, if there is one (e.g. before the domain
    /// is destroyed). An incomplete UTF-8 sequence at its end is dropped.
    pub fn flush(&mut self, line: &mut dyn FnMut(&[u8])) {
        self.len = self.seq_start_or_len();
        self.seq_need = 0;
        if self.len > 0 {
            self.emit(line);
        }
    }

    fn seq_start_or_len(&self) -> usize {
        if self.seq_need > 0 {
            self.seq_start
        } else {
            self.len
        }
    }

    fn push_byte(&mut self, byte: u8, line: &mut dyn FnMut(&[u8])) {
        if self.seq_need > 0 {
            if byte & 0xc0 == 0x80 {
                self.put(byte);
                self.seq_need -= 1;
                if self.seq_need == 0 {
                    self.finish_sequence(line);
                }
                return;
            }
            // A sequence cut short: drop it and take the byte on its own.
            self.len = self.seq_start;
            self.seq_need = 0;
        }
        match byte {
            b'\n' => self.emit(line),
            b'\t' | 0x20..=0x7e => {
                self.put(byte);
                if self.len == CAP {
                    self.emit(line);
                }
            }
            0xc2..=0xf4 => {
                let need = byte.leading_ones() as usize - 1;
                if self.len + need + 1 > CAP {
                    self.emit(line);
                }
                self.seq_start = self.len;
                self.seq_need = need;
                self.put(byte);
            }
            // Other controls, DEL, stray continuation bytes and bytes that
            // never start a valid sequence.
            _ => {}
        }
    }

    fn finish_sequence(&mut self, line: &mut dyn FnMut(&[u8])) {
        let keep = self
            .buf
            .get(self.seq_start..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .and_then(|s| s.chars().next())
            .is_some_and(|c| !c.is_control());
        if !keep {
            self.len = self.seq_start;
        } else if self.len == CAP {
            self.emit(line);
        }
    }

    /// Appends a byte. There is always room: a full line is emitted as it
    /// fills, and a sequence starts only where it fits.
    fn put(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn emit(&mut self, line: &mut dyn FnMut(&[u8])) {
        line(self.buf.get(..self.len).unwrap_or(&[]));
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn read32(u: &mut Vpl011, offset: u64) -> u32 {
        u.mmio(offset, Access::Read { size: 4 }, &mut |_| {})
            .unwrap()
    }

    fn write32(u: &mut Vpl011, offset: u64, value: u32) {
        u.mmio(offset, Access::Write { size: 4, value }, &mut |_| {})
            .unwrap();
    }

    fn lines<const CAP: usize>(buf: &mut LineBuffer<CAP>, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        buf.push(bytes, &mut |l| {
            lines.push(String::from(core::str::from_utf8(l).unwrap()))
        });
        lines
    }

    #[test]
    fn bytes_written_to_dr_reach_out_in_order() {
        let mut u = Vpl011::new();
        let mut sent = Vec::new();

        for &b in b"hi\n" {
            u.mmio(
                reg::DR,
                Access::Write {
                    size: 4,
                    value: u32::from(b),
                },
                &mut |bytes| sent.extend_from_slice(bytes),
            )
            .unwrap();
        }

        assert_eq!(sent, b"hi\n");
    }

    #[test]
    fn dr_accepts_byte_halfword_and_word_writes_and_sends_the_low_byte() {
        let mut u = Vpl011::new();
        let mut sent = Vec::new();

        for (size, value) in [(1, 0x41), (2, 0x0142), (4, 0xdead_ff43)] {
            u.mmio(reg::DR, Access::Write { size, value }, &mut |bytes| {
                sent.extend_from_slice(bytes)
            })
            .unwrap();
        }

        assert_eq!(sent, b"ABC");
    }

    #[test]
    fn dr_reads_of_every_width_pop_the_fifo() {
        let mut u = Vpl011::new();
        u.receive(b"xyz");

        let got: Vec<u32> = [1, 2, 4]
            .into_iter()
            .map(|size| u.mmio(reg::DR, Access::Read { size }, &mut |_| {}).unwrap())
            .collect();

        assert_eq!(got, [u32::from(b'x'), u32::from(b'y'), u32::from(b'z')]);
    }

    #[test]
    fn flags_show_transmit_always_empty_and_never_busy() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::DR, u32::from(b'a'));

        let flags = read32(&mut u, reg::FR);

        assert_eq!(flags & fr::TXFE, fr::TXFE);
        assert_eq!(flags & (fr::TXFF | fr::BUSY), 0);
    }

    #[test]
    fn flags_track_the_receive_fifo_from_empty_to_full() {
        let mut u = Vpl011::new();
        let empty = read32(&mut u, reg::FR);
        u.receive(b"a");
        let some = read32(&mut u, reg::FR);
        u.receive(&[b'b'; RX_FIFO_DEPTH]);
        let full = read32(&mut u, reg::FR);

        assert_eq!(empty & (fr::RXFE | fr::RXFF), fr::RXFE);
        assert_eq!(some & (fr::RXFE | fr::RXFF), 0);
        assert_eq!(full & (fr::RXFE | fr::RXFF), fr::RXFF);
    }

    #[test]
    fn received_bytes_are_read_back_in_order_then_reads_give_zero() {
        let mut u = Vpl011::new();
        u.receive(b"ab");
        u.receive(b"c");

        let got: Vec<u32> = (0..4).map(|_| read32(&mut u, reg::DR)).collect();

        assert_eq!(got, [0x61, 0x62, 0x63, 0]);
    }

    #[test]
    fn receive_takes_only_what_fits_and_keeps_order_across_the_ring_edge() {
        let mut u = Vpl011::new();
        // Move the ring's head off zero so the FIFO wraps.
        u.receive(b"0123");
        for _ in 0..4 {
            read32(&mut u, reg::DR);
        }
        let input: Vec<u8> = (0..40).collect();

        let taken = u.receive(&input);
        let got: Vec<u8> = (0..taken).map(|_| read32(&mut u, reg::DR) as u8).collect();

        assert_eq!(taken, RX_FIFO_DEPTH);
        assert_eq!(got, input[..RX_FIFO_DEPTH]);
        assert_eq!(u.rx_free(), RX_FIFO_DEPTH);
    }

    #[test]
    fn receive_into_a_full_fifo_takes_nothing() {
        let mut u = Vpl011::new();
        u.receive(&[0; RX_FIFO_DEPTH]);

        assert_eq!(u.receive(b"more"), 0);
        assert_eq!(u.rx_free(), 0);
    }

    #[test]
    fn rx_interrupt_follows_data_and_the_mask() {
        let mut u = Vpl011::new();
        u.receive(b"k");
        let masked = u.irq_level();
        write32(&mut u, reg::IMSC, int::RX | int::RT);
        let unmasked = u.irq_level();
        read32(&mut u, reg::DR);
        let drained = u.irq_level();

        assert!(!masked);
        assert!(unmasked);
        assert!(!drained);
    }

    #[test]
    fn ris_shows_rx_and_rt_while_masked_but_mis_does_not() {
        let mut u = Vpl011::new();
        u.receive(b"k");

        assert_eq!(
            read32(&mut u, reg::RIS) & (int::RX | int::RT),
            int::RX | int::RT
        );
        assert_eq!(read32(&mut u, reg::MIS), 0);
    }

    #[test]
    fn icr_cannot_clear_rx_while_data_remains() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::IMSC, int::RX | int::RT);
        u.receive(b"k");

        write32(&mut u, reg::ICR, int::ALL);

        assert_eq!(read32(&mut u, reg::MIS), int::RX | int::RT);
        assert!(u.irq_level());
    }

    #[test]
    fn tx_interrupt_is_raised_as_soon_as_tx_is_unmasked() {
        let mut u = Vpl011::new();
        let before = u.irq_level();

        write32(&mut u, reg::IMSC, int::TX);

        assert!(!before);
        assert!(u.irq_level());
        assert_eq!(read32(&mut u, reg::MIS), int::TX);
    }

    #[test]
    fn icr_does_not_clear_tx_while_tx_is_unmasked() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::IMSC, int::TX);

        write32(&mut u, reg::ICR, int::TX);

        assert!(u.irq_level());
    }

    #[test]
    fn icr_clears_tx_while_masked_until_the_next_byte_is_sent() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::DR, u32::from(b'a'));
        let after_send = read32(&mut u, reg::RIS) & int::TX;
        write32(&mut u, reg::ICR, int::TX);
        let after_clear = read32(&mut u, reg::RIS) & int::TX;
        write32(&mut u, reg::DR, u32::from(b'b'));
        let after_next = read32(&mut u, reg::RIS) & int::TX;

        assert_eq!(after_send, int::TX);
        assert_eq!(after_clear, 0);
        assert_eq!(after_next, int::TX);
        assert!(!u.irq_level());
    }

    #[test]
    fn masking_tx_lowers_the_line() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::IMSC, int::TX | int::RX);

        write32(&mut u, reg::IMSC, int::RX);

        assert!(!u.irq_level());
    }

    #[test]
    fn imsc_reads_back_only_defined_bits() {
        let mut u = Vpl011::new();

        write32(&mut u, reg::IMSC, 0xffff_ffff);

        assert_eq!(read32(&mut u, reg::IMSC), int::ALL);
    }

    #[test]
    fn pl011_only_registers_store_and_read_back() {
        let mut u = Vpl011::new();
        let regs = [
            (reg::ILPR, 0x12),
            (reg::IBRD, 0x1234),
            (reg::FBRD, 0x2a),
            (reg::LCR_H, 0x70),
            (reg::CR, 0x0301),
            (reg::IFLS, 0x09),
            (reg::DMACR, 0x5),
        ];

        for (offset, value) in regs {
            write32(&mut u, offset, value);
        }

        for (offset, value) in regs {
            assert_eq!(read32(&mut u, offset), value, "offset {offset:#x}");
        }
    }

    #[test]
    fn cr_and_ifls_read_their_reset_values() {
        let mut u = Vpl011::new();

        assert_eq!(read32(&mut u, reg::CR), 0x300);
        assert_eq!(read32(&mut u, reg::IFLS), 0x12);
    }

    #[test]
    fn id_registers_read_as_a_pl011_r1p5() {
        let mut u = Vpl011::new();

        let ids: Vec<u32> = (0..8).map(|i| read32(&mut u, 0xfe0 + 4 * i)).collect();
        write32(&mut u, 0xfe0, 0);

        assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(read32(&mut u, 0xfe0), 0x11);
    }

    #[test]
    fn unassigned_offsets_read_as_zero_and_ignore_writes() {
        let mut u = Vpl011::new();

        write32(&mut u, 0x08, 0xffff);
        write32(&mut u, 0x800, 0xffff);

        assert_eq!(read32(&mut u, 0x08), 0);
        assert_eq!(read32(&mut u, 0x800), 0);
    }

    #[test]
    fn narrow_reads_return_the_low_bytes() {
        let mut u = Vpl011::new();
        write32(&mut u, reg::CR, 0x0301);

        let byte = u.mmio(reg::CR, Access::Read { size: 1 }, &mut |_| {});
        let half = u.mmio(reg::CR, Access::Read { size: 2 }, &mut |_| {});

        assert_eq!(byte, Ok(0x01));
        assert_eq!(half, Ok(0x0301));
    }

    #[test]
    fn access_not_at_a_register_start_is_refused() {
        let mut u = Vpl011::new();

        let byte = u.mmio(0x19, Access::Read { size: 1 }, &mut |_| {});
        let half = u.mmio(0x02, Access::Write { size: 2, value: 0 }, &mut |_| {});

        assert_eq!(
            byte,
            Err(Vpl011Error::Misaligned {
                offset: 0x19,
                size: 1
            })
        );
        assert_eq!(
            half,
            Err(Vpl011Error::Misaligned {
                offset: 0x02,
                size: 2
            })
        );
    }

    #[test]
    fn doubleword_and_odd_sized_accesses_are_refused_without_side_effects() {
        let mut u = Vpl011::new();
        u.receive(b"k");
        let mut sent = Vec::new();

        let read = u.mmio(reg::DR, Access::Read { size: 8 }, &mut |_| {});
        let write = u.mmio(
            reg::DR,
            Access::Write {
                size: 3,
                value: 0x41,
            },
            &mut |b| sent.extend_from_slice(b),
        );

        assert_eq!(read, Err(Vpl011Error::BadSize { offset: 0, size: 8 }));
        assert_eq!(write, Err(Vpl011Error::BadSize { offset: 0, size: 3 }));
        assert!(sent.is_empty());
        assert_eq!(u.rx_free(), RX_FIFO_DEPTH - 1);
    }

    #[test]
    fn offsets_beyond_the_window_are_refused() {
        let mut u = Vpl011::new();

        let r = u.mmio(0x1000, Access::Read { size: 4 }, &mut |_| {});

        assert_eq!(r, Err(Vpl011Error::OutsideWindow { offset: 0x1000 }));
    }

    #[test]
    fn error_messages_name_the_offset_and_what_is_accepted() {
        let bad = Vpl011Error::BadSize {
            offset: 0x18,
            size: 8,
        }
        .to_string();
        let mis = Vpl011Error::Misaligned {
            offset: 0x19,
            size: 1,
        }
        .to_string();

        assert!(
            bad.contains("0x18") && bad.contains("1-, 2- and 4-byte"),
            "{bad}"
        );
        assert!(
            mis.contains("0x19") && mis.contains("4-byte aligned"),
            "{mis}"
        );
    }

    #[test]
    fn line_buffer_hands_out_complete_lines_without_endings() {
        let mut buf: LineBuffer = LineBuffer::new();

        let first = lines(&mut buf, b"hello\r\nwor");
        let second = lines(&mut buf, b"ld\r\n\r\n");

        assert_eq!(first, ["hello"]);
        assert_eq!(second, ["world", ""]);
        assert!(buf.pending().is_empty());
    }

    #[test]
    fn line_buffer_drops_control_bytes_but_keeps_tab() {
        let mut buf: LineBuffer = LineBuffer::new();

        let got = lines(&mut buf, b"\x1b[1;32mok\x07\x7f\tdone\x08\n");

        assert_eq!(got, ["[1;32mok\tdone"]);
    }

    #[test]
    fn line_buffer_flushes_a_full_line_and_continues_on_the_next() {
        let mut buf = LineBuffer::<8>::new();

        let got = lines(&mut buf, b"0123456789ab\n");

        assert_eq!(got, ["01234567", "89ab"]);
    }

    #[test]
    fn a_console_that_never_ends_its_line_holds_one_line_and_leaves_another_alone() {
        // A guest writing without newlines costs its own CAP bytes, never
        // more: full lines go out as they fill.
        let (mut a, mut b) = (LineBuffer::<8>::new(), LineBuffer::<8>::new());
        let mut out = 0;
        a.push(&[b'x'; 10_000], &mut |l| {
            assert_eq!(l.len(), 8);
            out += 1;
        });
        assert_eq!(out, 1250);
        assert_eq!(lines(&mut b, b"ok\n"), ["ok"]);
    }

    #[test]
    fn a_full_receive_fifo_drops_input_for_that_uart_only() {
        let (mut a, mut b) = (Vpl011::new(), Vpl011::new());
        a.receive(&[0; RX_FIFO_DEPTH]);
        assert_eq!(a.receive(b"more"), 0);
        assert_eq!(b.receive(b"more"), 4);
    }

    #[test]
    fn line_buffer_keeps_printable_utf8_whole() {
        let mut buf: LineBuffer = LineBuffer::new();

        let got = lines(&mut buf, "● naïve 🦀\n".as_bytes());

        assert_eq!(got, ["● naïve 🦀"]);
    }

    #[test]
    fn line_buffer_never_splits_a_character_at_the_cap() {
        let mut buf = LineBuffer::<8>::new();

        let got = lines(&mut buf, "abcdef€g\n".as_bytes());

        assert_eq!(got, ["abcdef", "€g"]);
    }

    #[test]
    fn line_buffer_drops_malformed_utf8_and_c1_controls() {
        let mut buf: LineBuffer = LineBuffer::new();
        // A stray continuation byte, a sequence cut short by ASCII, an
        // overlong encoding, a byte that never starts a sequence and the
        // C1 control CSI (U+009B).
        let input = b"a\x80b\xe2\x82c\xe0\x80\xafd\xffe\xc2\x9bf\n";

        let got = lines(&mut buf, input);

        assert_eq!(got, ["abcdef"]);
    }

    #[test]
    fn line_buffer_flush_hands_out_the_unfinished_line_once() {
        let mut buf: LineBuffer = LineBuffer::new();
        lines(&mut buf, b"no newline\xe2\x82");
        let mut flushed = Vec::new();

        buf.flush(&mut |l| flushed.push(l.to_vec()));
        buf.flush(&mut |l| flushed.push(l.to_vec()));

        assert_eq!(flushed, [b"no newline".to_vec()]);
    }
}
