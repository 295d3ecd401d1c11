//! Oxen's own reader of the flattened-device-tree format (DT spec v0.4,
//! chapter 5): the header, checked field by field, and the structure block
//! as a stream of tokens. It allocates nothing, so the early memory scan
//! (MMU off, no heap) and the full parse share it, and it needs no `unsafe`.
//!
//! Every way a blob can be damaged is an [`FdtError`] that says what was
//! found and where, so a cut-short or edited blob is named rather than read
//! as "no memory". Node names are not limited in length beyond the
//! structure block itself (the spec allows 31 characters before the unit
//! address; Xen and Linux accept longer ones).

use core::fmt;

/// The magic at offset 0, big-endian.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// The header of version 17 (the one dtc writes) is 40 bytes.
pub const HEADER_LEN: usize = 40;
/// Oldest `last_comp_version` a reader of version 17 understands.
const COMPAT_VERSION: u32 = 16;
/// The version whose layout this reader knows.
const VERSION: u32 = 17;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A blob that is not a usable flattened device tree, with what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// The blob does not start 4-byte aligned.
    Misaligned(usize),
    /// Fewer bytes than the 40-byte header.
    ShorterThanHeader(usize),
    /// The first word is not [`FDT_MAGIC`].
    BadMagic(u32),
    /// `totalsize` is below the header or above what is there.
    TotalSize { totalsize: u32, available: usize },
    /// A version this reader does not understand.
    Version { version: u32, last_comp: u32 },
    /// A block (`"structure"`, `"strings"`, `"memory reservation"`) lies
    /// partly or wholly past `totalsize`, or is misaligned.
    Block {
        block: &'static str,
        offset: u32,
        size: u32,
        totalsize: u32,
    },
    /// The structure block is damaged at `offset` (from the blob's start).
    Structure { offset: usize, what: &'static str },
    /// The memory reservation block has no terminating (0, 0) entry.
    ReserveUnterminated,
    /// A memory reservation entry wraps the 64-bit address space.
    ReserveWraps { address: u64, size: u64 },
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned(addr) => write!(
                f,
                "is at {addr:#x}, which is not 4-byte aligned (the boot protocol puts it on an \
                 8-byte boundary)"
            ),
            Self::ShorterThanHeader(n) => write!(
                f,
                "is {n} bytes, shorter than the {HEADER_LEN}-byte header: the blob is cut short"
            ),
            Self::BadMagic(m) => write!(
                f,
                "starts with {m:#010x}, not the device-tree magic {FDT_MAGIC:#010x} (x0 must hold \
                 the address of a flattened device tree, as dtc writes it)"
            ),
            Self::TotalSize {
                totalsize,
                available,
            } => write!(
                f,
                "has totalsize {totalsize:#x} in its header, but a blob is at least \
                 {HEADER_LEN:#x} and at most {available:#x} bytes here: the header is damaged"
            ),
            Self::Version { version, last_comp } => write!(
                f,
                "is version {version} (compatible back to {last_comp}); Oxen reads version \
                 {COMPAT_VERSION} and {VERSION}, as dtc writes: the header is damaged"
            ),
            Self::Block {
                block,
                offset,
                size,
                totalsize,
            } => write!(
                f,
                "has its {block} block at {offset:#x} + {size:#x}, outside totalsize {totalsize:#x} \
                 or misaligned: the blob is cut short or its header damaged"
            ),
            Self::Structure { offset, what } => write!(
                f,
                "is damaged at offset {offset:#x} of its structure block: {what} (the blob is cut \
                 short or was overwritten)"
            ),
            Self::ReserveUnterminated => f.write_str(
                "has a memory reservation block without its terminating (0, 0) entry: the blob \
                 is cut short",
            ),
            Self::ReserveWraps { address, size } => write!(
                f,
                "has a memory reservation {address:#x} + {size:#x} that wraps the address space"
            ),
        }
    }
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(be32(buf, at)?) << 32 | u64::from(be32(buf, at + 4)?))
}

/// Reads the `totalsize` of the blob starting at `head` (at least its first
/// 8 bytes), checking the magic only: enough to know how much to map.
pub fn total_size(head: &[u8]) -> Result<usize, FdtError> {
    let magic = be32(head, 0).ok_or(FdtError::ShorterThanHeader(head.len()))?;
    if magic != FDT_MAGIC {
        return Err(FdtError::BadMagic(magic));
    }
    let size = be32(head, 4).ok_or(FdtError::ShorterThanHeader(head.len()))?;
    Ok(size as usize)
}

/// A checked view of a blob: every block lies inside `totalsize`.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'dt> {
    /// Exactly `totalsize` bytes.
    pub bytes: &'dt [u8],
    pub struct_off: usize,
    pub struct_end: usize,
    pub strings: &'dt [u8],
    pub rsvmap_off: usize,
    pub boot_cpuid: u32,
}

impl<'dt> Blob<'dt> {
    /// Checks the header of `buf` (which may be longer than the blob).
    pub fn new(buf: &'dt [u8]) -> Result<Self, FdtError> {
        if !(buf.as_ptr() as usize).is_multiple_of(4) {
            return Err(FdtError::Misaligned(buf.as_ptr() as usize));
        }
        if buf.len() < HEADER_LEN {
            // The magic is worth naming even on a short buffer.
            total_size(buf)?;
            return Err(FdtError::ShorterThanHeader(buf.len()));
        }
        let field = |i: usize| be32(buf, i * 4).unwrap_or(0);
        let totalsize = total_size(buf)?;
        if totalsize < HEADER_LEN || totalsize > buf.len() {
            return Err(FdtError::TotalSize {
                totalsize: field(1),
                available: buf.len(),
            });
        }
        let bytes = &buf[..totalsize];
        let (version, last_comp) = (field(5), field(6));
        if version < COMPAT_VERSION || last_comp > VERSION {
            return Err(FdtError::Version { version, last_comp });
        }
        let (off_struct, off_strings, off_rsvmap) = (field(2), field(3), field(4));
        let size_strings = field(8);
        // Version 16 headers have no size_dt_struct: the block runs to the
        // end of the blob.
        let size_struct = if version >= VERSION {
            field(9)
        } else {
            (totalsize as u32).saturating_sub(off_struct)
        };
        let block = |name: &'static str, off: u32, size: u32, align: u32| {
            let fits = u64::from(off) + u64::from(size) <= totalsize as u64
                && off as usize >= HEADER_LEN
                && off.is_multiple_of(align);
            if fits {
                Ok((off as usize, off as usize + size as usize))
            } else {
                Err(FdtError::Block {
                    block: name,
                    offset: off,
                    size,
                    totalsize: totalsize as u32,
                })
            }
        };
        let (struct_off, struct_end) = block("structure", off_struct, size_struct, 4)?;
        let (strings_off, strings_end) = block("strings", off_strings, size_strings, 1)?;
        // At least the terminating entry must fit.
        block("memory reservation", off_rsvmap, 16, 8)?;
        Ok(Self {
            bytes,
            struct_off,
            struct_end,
            strings: &bytes[strings_off..strings_end],
            rsvmap_off: off_rsvmap as usize,
            boot_cpuid: field(7),
        })
    }

    /// The structure block's tokens, from the root's begin to `FDT_END`.
    pub fn tokens(&self) -> Tokens<'dt> {
        Tokens {
            blob: *self,
            at: self.struct_off,
            depth: 0,
            roots: 0,
            done: false,
        }
    }

    /// A property name from the strings block.
    pub fn string(&self, offset: u32, at: usize) -> Result<&'dt str, FdtError> {
        let tail = self
            .strings
            .get(offset as usize..)
            .ok_or(FdtError::Structure {
                offset: at,
                what: "a property's name offset lies past the strings block",
            })?;
        let end = tail
            .iter()
            .position(|b| *b == 0)
            .ok_or(FdtError::Structure {
                offset: at,
                what: "a property's name runs off the end of the strings block",
            })?;
        core::str::from_utf8(&tail[..end]).map_err(|_| FdtError::Structure {
            offset: at,
            what: "a property's name is not UTF-8",
        })
    }

    /// The `/memreserve/` entries, each as (address, size).
    pub fn mem_reserve(&self) -> impl Iterator<Item = Result<(u64, u64), FdtError>> + 'dt {
        let bytes = self.bytes;
        let mut at = self.rsvmap_off;
        let mut done = false;
        core::iter::from_fn(move || {
            if done {
                return None;
            }
            let (Some(address), Some(size)) = (be64(bytes, at), be64(bytes, at + 8)) else {
                done = true;
                return Some(Err(FdtError::ReserveUnterminated));
            };
            at += 16;
            if address == 0 && size == 0 {
                done = true;
                return None;
            }
            if address.checked_add(size).is_none() {
                done = true;
                return Some(Err(FdtError::ReserveWraps { address, size }));
            }
            Some(Ok((address, size)))
        })
    }
}

/// One token of the structure block (`FDT_NOP` is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'dt> {
    /// A node begins; its name (with the unit address, empty for the root).
    Begin(&'dt str),
    End,
    /// A property: its name and raw value.
    Prop(&'dt str, &'dt [u8]),
}

/// The tokens of a structure block, checked as they are read: each lies
/// inside the block, nodes nest and close, one root, `FDT_END` last.
pub struct Tokens<'dt> {
    blob: Blob<'dt>,
    at: usize,
    depth: usize,
    roots: usize,
    done: bool,
}

impl<'dt> Tokens<'dt> {
    fn damaged(
        &mut self,
        offset: usize,
        what: &'static str,
    ) -> Option<Result<Token<'dt>, FdtError>> {
        self.done = true;
        Some(Err(FdtError::Structure {
            offset: offset - self.blob.struct_off,
            what,
        }))
    }
}

impl<'dt> Iterator for Tokens<'dt> {
    type Item = Result<Token<'dt>, FdtError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let block = &self.blob.bytes[..self.blob.struct_end];
        loop {
            let at = self.at;
            let Some(tok) = be32(block, at) else {
                return self.damaged(at, "it ends before the FDT_END token");
            };
            self.at += 4;
            match tok {
                FDT_NOP => continue,
                FDT_BEGIN_NODE => {
                    if self.depth == 0 && self.roots > 0 {
                        return self.damaged(at, "a second root node follows the first");
                    }
                    let rest = &block[self.at..];
                    let Some(len) = rest.iter().position(|b| *b == 0) else {
                        return self.damaged(at, "a node name runs off the end of the block");
                    };
                    let Ok(name) = core::str::from_utf8(&rest[..len]) else {
                        return self.damaged(at, "a node name is not UTF-8");
                    };
                    if self.depth > 0 && name.is_empty() {
                        return self.damaged(at, "a node other than the root has an empty name");
                    }
                    self.at += (len + 1).next_multiple_of(4);
                    self.depth += 1;
                    self.roots += usize::from(self.depth == 1);
                    return Some(Ok(Token::Begin(name)));
                }
                FDT_END_NODE => {
                    if self.depth == 0 {
                        return self.damaged(at, "a node ends that never began");
                    }
                    self.depth -= 1;
                    return Some(Ok(Token::End));
                }
                FDT_PROP => {
                    if self.depth == 0 {
                        return self.damaged(at, "a property lies outside every node");
                    }
                    let (Some(len), Some(nameoff)) =
                        (be32(block, self.at), be32(block, self.at + 4))
                    else {
                        return self.damaged(at, "a property header runs off the end of the block");
                    };
                    let start = self.at + 8;
                    let Some(value) = start
                        .checked_add(len as usize)
                        .and_then(|end| block.get(start..end))
                    else {
                        return self
                            .damaged(at, "a property's value runs off the end of the block");
                    };
                    let name = match self.blob.string(nameoff, at - self.blob.struct_off) {
                        Ok(n) => n,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    };
                    self.at = start + (len as usize).next_multiple_of(4);
                    return Some(Ok(Token::Prop(name, value)));
                }
                FDT_END => {
                    if self.depth != 0 {
                        return self.damaged(at, "FDT_END comes before every node has ended");
                    }
                    if self.roots == 0 {
                        return self.damaged(at, "there is no root node");
                    }
                    self.done = true;
                    return None;
                }
                _ => {
                    return self.damaged(
                        at,
                        "an unknown token (expected FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, \
                         FDT_NOP or FDT_END)",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec::Vec;

    use super::*;
    use crate::hostdt::Fdt;
    use crate::hostdt::testdt::{Blob as Aligned, Virt};

    /// QEMU virt's tree as bytes, for a test to damage.
    fn virt_bytes() -> Vec<u8> {
        Virt::default().build().bytes().to_vec()
    }

    fn set_word(bytes: &mut [u8], at: usize, v: u32) {
        bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn parse_err(bytes: &[u8]) -> FdtError {
        Fdt::parse(Aligned::new(bytes).bytes()).unwrap_err()
    }

    #[test]
    fn a_bad_magic_is_named_with_the_word_found() {
        let mut b = virt_bytes();
        set_word(&mut b, 0, 0x1234_5678);

        let e = parse_err(&b);

        assert_eq!(e, FdtError::BadMagic(0x1234_5678));
        assert!(
            e.to_string()
                .starts_with("starts with 0x12345678, not the device-tree magic 0xd00dfeed")
        );
    }

    #[test]
    fn a_blob_cut_short_is_named_by_its_totalsize() {
        let b = virt_bytes();
        let half = b.len() / 2;

        let e = parse_err(&b[..half]);

        assert_eq!(
            e,
            FdtError::TotalSize {
                totalsize: b.len() as u32,
                available: half
            }
        );
    }

    #[test]
    fn a_blob_cut_short_in_memory_is_named_where_the_structure_ends() {
        // In memory the missing tail reads as zeros: the header is intact.
        let mut b = virt_bytes();
        let struct_off = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        let cut = struct_off + 64;
        b[cut..].fill(0);

        let e = parse_err(&b);

        assert!(
            matches!(e, FdtError::Structure { .. } | FdtError::Block { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn a_totalsize_below_the_header_is_refused() {
        let mut b = virt_bytes();
        set_word(&mut b, 4, 8);

        let e = parse_err(&b);

        assert!(
            matches!(e, FdtError::TotalSize { totalsize: 8, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn a_totalsize_too_small_for_its_blocks_names_the_block() {
        let mut b = virt_bytes();
        let len = b.len() as u32;
        set_word(&mut b, 4, len / 2);

        let e = parse_err(&b);

        assert!(matches!(e, FdtError::Block { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(&alloc::format!("totalsize {:#x}", len / 2))
        );
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut b = virt_bytes();
        set_word(&mut b, 20, 3);

        assert_eq!(
            parse_err(&b),
            FdtError::Version {
                version: 3,
                last_comp: 16
            }
        );
    }

    #[test]
    fn a_short_buffer_with_the_magic_is_shorter_than_the_header() {
        let b = virt_bytes();

        assert_eq!(parse_err(&b[..16]), FdtError::ShorterThanHeader(16));
    }

    #[test]
    fn an_overwritten_token_names_its_offset() {
        let mut b = virt_bytes();
        let struct_off = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        // The root's FDT_BEGIN_NODE, then its empty name padded to 4 bytes.
        set_word(&mut b, struct_off + 8, 0x7);

        let e = parse_err(&b);

        assert_eq!(
            e,
            FdtError::Structure {
                offset: 8,
                what: "an unknown token (expected FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, \
                       FDT_NOP or FDT_END)"
            }
        );
    }

    #[test]
    fn a_31_character_node_name_is_read() {
        let name = "a-module-node-of-31-characters1";
        assert_eq!(name.len(), 31);
        let v = Virt {
            modules: alloc::vec![(
                name.to_string(),
                alloc::vec![
                    "multiboot,kernel".to_string(),
                    "multiboot,module".to_string()
                ],
                (0x5000_0000, 0x1000),
                None,
            )],
            ..Virt::default()
        };
        let blob = v.build();

        let fdt = Fdt::parse(blob.bytes()).unwrap();

        assert!(fdt.find(&alloc::format!("/chosen/{name}")).is_some());
    }
}

#[cfg(test)]
mod mutations {
    use alloc::vec::Vec;

    use crate::hostdt::testdt::{Blob as Aligned, Virt};
    use crate::hostdt::{Fdt, Platform, early};

    /// A small fixed-seed generator, so a failure reproduces.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    #[test]
    fn damaged_blobs_are_refused_or_read_but_never_panic() {
        let base = Virt::default().build().bytes().to_vec();
        let mut rng = Lcg(16);
        for round in 0..4000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = rng.next() as usize % b.len();
                match rng.next() % 4 {
                    0 => b[at] = rng.next() as u8,
                    1 => b[at] ^= 1 << (rng.next() % 8),
                    2 => b.truncate(at.max(1)),
                    _ => {
                        let w = at & !3;
                        if w + 4 <= b.len() {
                            let v = [0, 1, 2, 3, 4, 9, 0xffff_ffff][rng.next() as usize % 7];
                            b[w..w + 4].copy_from_slice(&u32::to_be_bytes(v));
                        }
                    }
                }
            }
            let blob = Aligned::new(&b);
            let _ = early::memory_banks(blob.bytes());
            if let Ok(fdt) = Fdt::parse(blob.bytes()) {
                let _ = Platform::read(&fdt);
                let _: Vec<_> = fdt.ids().map(|id| fdt.path(id)).collect();
            }
            let _ = round;
        }
    }
}
