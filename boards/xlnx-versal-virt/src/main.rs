//! Oxen for QEMU's Xilinx Versal machine (`-M xlnx-versal-virt`): two
//! Cortex-A72s, a GICv3 and PL011 UARTs at Versal's own addresses, RAM
//! from physical address 0.
//!
//! Everything else comes from the host device tree (boards/qemu-virt says
//! what a board port is).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// Each optional Xen interface is linked only when its cargo feature is on;
// linking it is what registers it. Forgetting a line here silently drops a
// subsystem, which `cargo xtask test` catches by comparing the boot log.
#[cfg(feature = "evtchn")]
use oxen_evtchn as _;
#[cfg(feature = "extended-regions")]
use oxen_extended_regions as _;
#[cfg(feature = "gnttab")]
use oxen_gnttab as _;
#[cfg(feature = "xenstore")]
use oxen_xenstore as _;

use oxen_core::boot::{Board, EarlyUart};

/// Versal: UART0, a PL011 at 0xff00_0000, is the console QEMU wires to stdio.
static BOARD: Board = Board {
    name: "xlnx-versal-virt",
    early_uart: Some(EarlyUart {
        compatible: "arm,pl011",
        base: 0xff00_0000,
    }),
};

oxen_core::board!(BOARD);
