//! What the bare-metal test guests under `tests/guests/` share: the entry
//! code behind the arm64 Image header, the device-tree reader, the console,
//! fixed-buffer messages, the instructions they need, and the PSCI and Xen
//! numbers, and the `TEST … PASS|FAIL` report. Each guest keeps what only
//! it does: its vectors, its cases or measurements, and how it powers off.
//!
//! A guest that links this crate must define `guest_main` and
//! `guest_vectors` (see [`boot`]).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Without a heap, a failure's text travels by value in a fixed buffer.
#![expect(clippy::result_large_err)]

pub mod arch;
pub mod boot;
pub mod console;
pub mod dt;
pub mod msg;
pub mod psci;
pub mod report;
pub mod xen;
