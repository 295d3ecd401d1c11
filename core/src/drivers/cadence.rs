//! The Cadence UART of Xilinx's Zynq and ZynqMP (`cdns,uart-r1p12`,
//! `xlnx,zynqmp-uart`), as the hypervisor console. The line parameters
//! (baud rate, 8N1) are the boot firmware's; the driver only makes sure the
//! transmitter and receiver are enabled, which a UART fresh from reset is
//! not (QEMU's model resets with both disabled and drops what is written
//! until they are enabled).

use core::ptr::{read_volatile, write_volatile};

use super::Uart;
use crate::console::Sink;
use crate::hostdt::Uart as UartNode;

/// Control register: resets and enables of the receiver and transmitter.
const CR: usize = 0x00;
const CR_RXRST: u32 = 1 << 0;
const CR_TXRST: u32 = 1 << 1;
const CR_RXEN: u32 = 1 << 2;
const CR_RXDIS: u32 = 1 << 3;
const CR_TXEN: u32 = 1 << 4;
const CR_TXDIS: u32 = 1 << 5;
/// Interrupt enable / disable, and the status of raised interrupts
/// (write one to clear).
const IER: usize = 0x08;
const IDR: usize = 0x0c;
const ISR: usize = 0x14;
/// Receive FIFO trigger level.
const RXWM: usize = 0x20;
/// Channel status.
const SR: usize = 0x2c;
const SR_RTRIG: u32 = 1 << 0;
const SR_REMPTY: u32 = 1 << 1;
const SR_TEMPTY: u32 = 1 << 3;
const SR_TFUL: u32 = 1 << 4;
/// Transmit and receive FIFO.
const FIFO: usize = 0x30;

/// A Cadence UART at a fixed, identity-mapped MMIO address.
#[derive(Clone, Copy)]
struct Cadence {
    base: usize,
}

/// The board's early UART and the console the device tree names.
static SLOTS: super::UartSlots<Cadence> = super::UartSlots::new();

super::register! {
    super::UARTS,
    CADENCE: super::UartDriver = super::UartDriver {
        name: "Cadence UART",
        compatible: &["cdns,uart-r1p12", "xlnx,zynqmp-uart", "cdns,uart-r1p8", "xlnx,xuartps"],
        early,
        console,
    };
}

fn early(base: usize) -> Option<&'static dyn Uart> {
    // SAFETY: the board declares a Cadence UART at `base`, reachable with
    // the MMU off and then through the identity map's Device mapping of
    // everything that is not RAM; nothing else drives it.
    let uart = unsafe { Cadence::new(base) };
    let (uart, first) = SLOTS.early(uart)?;
    if first {
        uart.enable();
    }
    Some(uart)
}

fn console(node: &UartNode) -> Option<&'static dyn Uart> {
    SLOTS
        .console(node.base, || {
            // SAFETY: a Cadence UART's register block per the device tree,
            // outside RAM (checked by `console`), mapped as Device memory;
            // only this driver touches it.
            let u = unsafe { Cadence::new(node.base as usize) };
            u.enable();
            u
        })
        .map(|u| u as &dyn Uart)
}

impl Cadence {
    /// # Safety
    ///
    /// `base` must be the address of a Cadence UART's registers, mapped as
    /// Device memory (or with the MMU off), and not driven by anything else.
    const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read(&self, off: usize) -> u32 {
        // SAFETY: `new`'s contract: a Cadence UART register block lives at
        // `base`.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write(&self, off: usize, v: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }

    /// Enables the transmitter and receiver unless they already are (a
    /// reset of both FIFOs first only when they were off, so nothing a
    /// boot loader left in them is lost).
    fn enable(&self) {
        let cr = self.read(CR);
        let on = cr & (CR_TXEN | CR_RXEN) == (CR_TXEN | CR_RXEN) && cr & (CR_TXDIS | CR_RXDIS) == 0;
        if !on {
            self.write(CR, CR_RXRST | CR_TXRST | CR_RXEN | CR_TXEN);
        }
    }

    fn put(&self, b: u8) {
        while self.read(SR) & SR_TFUL != 0 {
            core::hint::spin_loop();
        }
        self.write(FIFO, u32::from(b));
    }
}

impl Uart for Cadence {
    fn name(&self) -> &'static str {
        "Cadence UART"
    }

    fn base(&self) -> usize {
        self.base
    }

    fn try_get(&self) -> Option<u8> {
        if self.read(SR) & SR_REMPTY != 0 {
            self.write(ISR, !0);
            return None;
        }
        Some(self.read(FIFO) as u8)
    }

    fn enable_rx_interrupt(&self) {
        self.write(RXWM, 1);
        self.write(IDR, !0);
        self.write(ISR, !0);
        self.write(IER, SR_RTRIG);
    }

    fn flush(&self) {
        while self.read(SR) & SR_TEMPTY == 0 {
            core::hint::spin_loop();
        }
    }
}

impl Sink for Cadence {
    fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}
