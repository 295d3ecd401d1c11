//! The Arm PL011 UART, as the hypervisor console (transmit only here; the
//! firmware or QEMU has already set its line parameters).

use core::ptr::{read_volatile, write_volatile};

use super::Uart;
use crate::console::Sink;
use crate::hostdt::Uart as UartNode;

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

/// A PL011 at a fixed, identity-mapped MMIO address.
#[derive(Clone, Copy)]
struct Pl011 {
    base: usize,
}

/// The board's early UART and the console the device tree names.
static SLOTS: super::UartSlots<Pl011> = super::UartSlots::new();

super::register! {
    super::UARTS,
    PL011: super::UartDriver = super::UartDriver {
        name: "PL011",
        compatible: &["arm,pl011", "arm,sbsa-uart"],
        early,
        console,
    };
}

/// Starts the board's early UART, the PL011 at `base` (a board fact, from
/// its `Board`); with the MMU off. Only the first call counts.
fn early(base: usize) -> Option<&'static dyn Uart> {
    // SAFETY: the board declares a PL011 at `base`, and with the MMU off
    // (and then through the identity map's Device mapping of everything
    // that is not RAM) its registers are reachable there; nothing else
    // drives it.
    let uart = unsafe { Pl011::new(base) };
    SLOTS.early(uart).map(|(u, _)| u as &dyn Uart)
}

/// The console UART the (validated) device tree names: its registers are
/// where the tree's node says, which the hypervisor's identity map maps as
/// Device memory (they are not RAM: checked). `None` if the address is RAM.
/// The first call decides; the early UART is reused when it is the same.
fn console(uart: &UartNode) -> Option<&'static dyn Uart> {
    SLOTS
        .console(uart.base, || {
            // SAFETY: a PL011's register block per the device tree,
            // outside RAM (checked by `console`), mapped as Device memory;
            // only this driver touches it.
            unsafe { Pl011::new(uart.base as usize) }
        })
        .map(|u| u as &dyn Uart)
}

impl Pl011 {
    /// # Safety
    ///
    /// `base` must be the address of a PL011's registers, mapped as Device
    /// memory (or with the MMU off), and not driven by anything else.
    const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read(&self, off: usize) -> u32 {
        // SAFETY: `new`'s contract: a PL011 register block lives at `base`.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write(&self, off: usize, v: u32) {
        // SAFETY: `new`'s contract: a PL011 register block lives at `base`.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }

    fn put(&self, b: u8) {
        while self.read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write(DR, u32::from(b));
    }
}

impl Uart for Pl011 {
    fn name(&self) -> &'static str {
        "PL011"
    }

    fn base(&self) -> usize {
        self.base
    }

    fn try_get(&self) -> Option<u8> {
        if self.read(FR) & FR_RXFE != 0 {
            self.write(ICR, INT_RX | INT_RT);
            return None;
        }
        Some(self.read(DR) as u8)
    }

    fn enable_rx_interrupt(&self) {
        self.write(ICR, INT_RX | INT_RT);
        self.write(IMSC, self.read(IMSC) | INT_RX | INT_RT);
    }

    fn flush(&self) {
        while self.read(FR) & FR_BUSY != 0 {
            core::hint::spin_loop();
        }
    }
}

impl Sink for Pl011 {
    fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}
