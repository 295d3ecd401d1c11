//! A writer for the `newc` cpio format Linux unpacks as its initramfs.
//!
//! Each member is a 110-byte ASCII header (the magic `070701`, then
//! thirteen 8-digit hex fields), the NUL-terminated name padded to a
//! multiple of 4 bytes counting the header, then the data padded the same
//! way; the archive ends with a member named `TRAILER!!!`.

use std::collections::BTreeSet;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const TRAILER: &str = "TRAILER!!!";

/// A newc archive being built. Parent directories are added before their
/// first member, since the kernel's unpacker does not create them.
#[derive(Debug, Default)]
pub struct Archive {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    next_ino: u32,
}

/// One member's header fields that vary.
struct Member<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory (and its parents), mode `0755`.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return self;
        }
        self.parents(path);
        self.dirs.insert(path.to_string());
        self.member(Member {
            name: path,
            mode: S_IFDIR | 0o755,
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        });
        self
    }

    /// A regular file with permission bits `perm` (e.g. `0o755`).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> &mut Self {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.member(Member {
            name: path,
            mode: S_IFREG | (perm & 0o7777),
            nlink: 1,
            rdev: (0, 0),
            data,
        });
        self
    }

    /// A character device node, e.g. `dev/console` (5, 1).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.member(Member {
            name: path,
            mode: S_IFCHR | (perm & 0o7777),
            nlink: 1,
            rdev: (major, minor),
            data: &[],
        });
        self
    }

    /// Ends the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.member(Member {
            name: TRAILER,
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
            data: &[],
        });
        self.out
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn member(&mut self, m: Member) {
        let ino = if m.name == TRAILER {
            0
        } else {
            self.next_ino += 1;
            self.next_ino
        };
        let fields = [
            ino,
            m.mode,
            0, // uid: root
            0, // gid: root
            m.nlink,
            0, // mtime: fixed, so the same inputs give the same bytes
            m.data.len() as u32,
            0,
            0,
            m.rdev.0,
            m.rdev.1,
            m.name.len() as u32 + 1,
            0, // check: only used by the `crc` variant
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(m.name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(m.data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
pub mod read {
    //! Reads a newc archive back, for tests.

    /// A member as read back.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Entry {
        pub name: String,
        pub mode: u32,
        pub nlink: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    fn align4(n: usize) -> usize {
        n.div_ceil(4) * 4
    }

    /// Every member up to the trailer; an error for anything malformed.
    pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let head = bytes
                .get(at..at + 110)
                .ok_or(format!("truncated header at {at}"))?;
            if &head[..6] != b"070701" {
                return Err(format!("bad magic at {at}"));
            }
            let field = |i: usize| {
                let s = std::str::from_utf8(&head[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).map_err(|e| format!("field {i} at {at}: {e}"))
            };
            let (mode, nlink, size) = (field(1)?, field(4)?, field(6)? as usize);
            let rdev = (field(9)?, field(10)?);
            let namesize = field(11)? as usize;
            let name_bytes = bytes
                .get(at + 110..at + 110 + namesize)
                .ok_or("truncated name")?;
            if name_bytes.last() != Some(&0) {
                return Err(format!("name at {at} is not NUL-terminated"));
            }
            let name = String::from_utf8_lossy(&name_bytes[..namesize - 1]).into_owned();
            let data_at = align4(at + 110 + namesize);
            let data = bytes
                .get(data_at..data_at + size)
                .ok_or("truncated data")?
                .to_vec();
            at = align4(data_at + size);
            if name == "TRAILER!!!" {
                if at != bytes.len() {
                    return Err(format!("{} bytes after the trailer", bytes.len() - at));
                }
                return Ok(out);
            }
            out.push(Entry {
                name,
                mode,
                nlink,
                rdev,
                data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read::entries;
    use super::*;

    #[test]
    fn members_read_back_with_names_modes_and_data() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"#!/bin/sh\n")
            .char_device("dev/console", 0o600, 5, 1);
        let e = entries(&a.finish()).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["init", "dev", "dev/console"]);
        assert_eq!(e[0].mode, 0o100_755);
        assert_eq!(e[0].data, b"#!/bin/sh\n");
        assert_eq!(e[1].mode, 0o040_755);
        assert_eq!(e[2].mode, 0o020_600);
        assert_eq!(e[2].rdev, (5, 1));
    }

    #[test]
    fn parents_come_first_and_only_once() {
        let mut a = Archive::new();
        a.file("usr/bin/x", 0o644, b"x")
            .file("usr/bin/y", 0o644, b"y")
            .dir("usr");
        let e = entries(&a.finish()).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/x", "usr/bin/y"]);
    }

    #[test]
    fn every_member_and_the_end_are_four_byte_aligned() {
        // Names and data of every length modulo 4 exercise the padding.
        let mut a = Archive::new();
        for (i, name) in ["a", "bb", "ccc", "dddd"].iter().enumerate() {
            a.file(name, 0o644, &vec![b'z'; i + 1]);
        }
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        let e = entries(&bytes).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[3].data, b"zzzz");
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let build = || {
            let mut a = Archive::new();
            a.file("bin/busybox", 0o755, b"\x7fELF");
            a.finish()
        };
        assert_eq!(build(), build());
    }
}
