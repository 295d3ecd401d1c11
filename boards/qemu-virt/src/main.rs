//! Oxen for QEMU's arm64 `virt` machine, with either GIC
//! (`-M virt,virtualization=on,gic-version=3` or `gic-version=2`).
//!
//! A board port is this file (board facts and which feature crates are
//! linked) and its `Cargo.toml` (the features, and the drivers every image
//! of the board links); every board shares `boards/link.ld` and
//! `boards/build.rs`.
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

/// QEMU virt: PL011 at 0x0900_0000 is the console QEMU wires to stdio.
static BOARD: Board = Board {
    name: "qemu-virt",
    early_uart: Some(EarlyUart {
        compatible: "arm,pl011",
        base: 0x0900_0000,
    }),
};

oxen_core::board!(BOARD);
