//! For host tests, here and in the feature crates (cargo feature
//! `test-dtc`): DTS text compiled with `dtc` into an aligned blob that
//! [`crate::hostdt::Fdt::parse`] reads.

extern crate std;

use alloc::string::String;
use alloc::vec::Vec;
use std::io::Write;
use std::process::{Command, Stdio};

/// Compiles DTS text into an aligned blob.
pub fn dtb(dts: &str) -> Blob {
    dtb_with(&[], dts)
}

/// Compiles DTS text with extra dtc arguments (`-f` writes a tree dtc's
/// checks refuse, such as two nodes with one name).
pub fn dtb_with(extra: &[&str], dts: &str) -> Blob {
    let mut child = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o", "-"])
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run dtc ({e}); install it with `apt-get install device-tree-compiler`")
        });
    // dtc reads all of its input before it writes, so this cannot deadlock.
    child
        .stdin
        .take()
        .expect("dtc's stdin")
        .write_all(dts.as_bytes())
        .expect("writing to dtc");
    let out = child.wait_with_output().expect("waiting for dtc");
    assert!(
        out.status.success(),
        "dtc rejected the test tree:\n{}\n{dts}",
        String::from_utf8_lossy(&out.stderr)
    );
    Blob::new(&out.stdout)
}

/// An 8-byte-aligned copy of a blob, as the parser requires: the bytes sit
/// at the first aligned offset of a slightly larger buffer.
pub struct Blob(Vec<u8>, usize, usize);

impl Blob {
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = alloc::vec![0u8; bytes.len() + 8];
        let start = buf.as_ptr().align_offset(8);
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        Self(buf, start, bytes.len())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0[self.1..self.1 + self.2]
    }
}
