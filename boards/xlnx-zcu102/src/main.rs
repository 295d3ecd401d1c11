//! Oxen for the Xilinx ZCU102 (ZynqMP; QEMU `-M xlnx-zcu102,virtualization=on`):
//! four Cortex-A53s, a GIC-400 (GICv2) and Cadence UARTs, RAM from
//! physical address 0.
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

/// ZCU102: UART0, a Cadence UART at 0xff00_0000, is the console (QEMU's
/// `serial0`, the board's USB-UART).
static BOARD: Board = Board {
    name: "xlnx-zcu102",
    early_uart: Some(EarlyUart {
        compatible: "cdns,uart-r1p12",
        base: 0xff00_0000,
    }),
};

oxen_core::board!(BOARD);
