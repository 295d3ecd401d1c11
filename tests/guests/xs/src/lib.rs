//! The pure part of `xs`, the guests' xenstore client: the command line,
//! the xenstore wire format (`struct xsd_sockmsg` and its payloads) and the
//! names of errors. No system calls here, so it is tested on the host
//! (`cargo test --lib`); `main.rs` does the I/O.
//!
//! Wire facts (docs/misc/xenstore.txt, as summarised in the project's
//! specs): a message is a 16-byte header `{u32 type, u32 req_id, u32 tx_id,
//! u32 len}` in the machine's byte order (little-endian on arm64) followed
//! by `len` payload bytes, at most 4096. Requests carry NUL-terminated
//! strings, except WRITE's value, which follows the path's NUL unterminated.
//! An error reply has type ERROR and an errno name (`ENOENT\0`); a watch
//! event has type WATCH_EVENT and the payload `path\0token\0`.

#![cfg_attr(not(test), no_std)]

/// The header's size.
pub const HEADER: usize = 16;
/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;

/// Message types used here.
pub mod ty {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const GET_PERMS: u32 = 3;
    pub const WATCH: u32 = 4;
    pub const WRITE: u32 = 11;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

/// The token `xs watch` registers its watch with.
pub const TOKEN: &[u8] = b"xs";

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn to_bytes(self) -> [u8; HEADER] {
        let mut b = [0; HEADER];
        for (i, v) in [self.ty, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; HEADER]) -> Self {
        let w = |i: usize| u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        Self {
            ty: w(0),
            req_id: w(1),
            tx_id: w(2),
            len: w(3),
        }
    }
}

/// One invocation of `xs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Read(&'a [u8]),
    Write(&'a [u8], &'a [u8]),
    Rm(&'a [u8]),
    Dir(&'a [u8]),
    Perms(&'a [u8]),
    /// The path and the permission strings, e.g. `n1`, `b2`.
    SetPerms(&'a [u8], &'a [&'a [u8]]),
    /// The path and how many events to wait for after the immediate one.
    Watch(&'a [u8], u32),
    /// Reads `domid` (relative to the domain's home).
    Domid,
}

/// The usage line printed on a bad command line.
pub const USAGE: &str = "usage: xs read PATH | write PATH VALUE | rm PATH | dir PATH | perms PATH | \
                         setperms PATH PERM... | watch PATH COUNT | domid";

impl<'a> Command<'a> {
    /// Parses the arguments after the program's name.
    pub fn parse(args: &'a [&'a [u8]]) -> Option<Self> {
        let (op, rest) = args.split_first()?;
        Some(match (*op, rest) {
            (b"read", [p]) => Self::Read(p),
            (b"write", [p, v]) => Self::Write(p, v),
            (b"rm", [p]) => Self::Rm(p),
            (b"dir", [p]) => Self::Dir(p),
            (b"perms", [p]) => Self::Perms(p),
            (b"setperms", [p, perms @ ..]) if !perms.is_empty() => Self::SetPerms(p, perms),
            (b"watch", [p, n]) => Self::Watch(p, parse_u32(n)?),
            (b"domid", []) => Self::Domid,
            _ => return None,
        })
    }

    /// The operation's name, for error messages (`domid` is a read of
    /// `domid`: `xs: read domid: ENOENT`).
    pub fn op(&self) -> &'static str {
        match self {
            Self::Read(_) | Self::Domid => "read",
            Self::Write(..) => "write",
            Self::Rm(_) => "rm",
            Self::Dir(_) => "dir",
            Self::Perms(_) => "perms",
            Self::SetPerms(..) => "setperms",
            Self::Watch(..) => "watch",
        }
    }

    /// The path the command works on, for error messages.
    pub fn path(&self) -> &'a [u8] {
        match *self {
            Self::Read(p)
            | Self::Write(p, _)
            | Self::Rm(p)
            | Self::Dir(p)
            | Self::Perms(p)
            | Self::SetPerms(p, _)
            | Self::Watch(p, _) => p,
            Self::Domid => b"domid",
        }
    }

    /// The request's type.
    pub fn ty(&self) -> u32 {
        match self {
            Self::Read(_) | Self::Domid => ty::READ,
            Self::Write(..) => ty::WRITE,
            Self::Rm(_) => ty::RM,
            Self::Dir(_) => ty::DIRECTORY,
            Self::Perms(_) => ty::GET_PERMS,
            Self::SetPerms(..) => ty::SET_PERMS,
            Self::Watch(..) => ty::WATCH,
        }
    }

    /// Writes the request (header and payload) into `buf` and returns its
    /// length, or `None` when it does not fit in one message.
    pub fn encode(&self, req_id: u32, buf: &mut [u8; HEADER + PAYLOAD_MAX]) -> Option<usize> {
        let mut w = Payload {
            buf: &mut buf[HEADER..],
            len: 0,
        };
        w.push(self.path())?;
        match *self {
            Self::Write(_, v) => w.raw(v)?,
            Self::SetPerms(_, perms) => {
                for p in perms {
                    w.push(p)?;
                }
            }
            Self::Watch(..) => w.push(TOKEN)?,
            _ => {}
        }
        let len = w.len;
        let h = Header {
            ty: self.ty(),
            req_id,
            tx_id: 0,
            len: len as u32,
        };
        buf[..HEADER].copy_from_slice(&h.to_bytes());
        Some(HEADER + len)
    }
}

/// A payload being written: NUL-terminated strings or raw bytes.
struct Payload<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Payload<'_> {
    fn raw(&mut self, b: &[u8]) -> Option<()> {
        let end = self.len.checked_add(b.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(b);
        self.len = end;
        Some(())
    }

    /// A string and its NUL; a string holding a NUL cannot be sent.
    fn push(&mut self, s: &[u8]) -> Option<()> {
        if s.contains(&0) {
            return None;
        }
        self.raw(s)?;
        self.raw(&[0])
    }
}

/// A decimal `u32` (digits only).
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(v)
}

/// The NUL-terminated strings of a reply (`DIRECTORY`'s children,
/// `GET_PERMS`'s entries): each string up to its NUL; trailing bytes
/// without a NUL count as a last string. An empty payload has none.
pub fn strings(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    // `split` gives one empty part for an empty body: no strings then.
    let n = if body.is_empty() { 0 } else { usize::MAX };
    body.split(|&c| c == 0).take(n)
}

/// The path and token of a WATCH_EVENT payload (`path\0token\0`).
pub fn watch_event(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut s = strings(payload);
    let path = s.next()?;
    let token = s.next()?;
    if s.next().is_some() || payload.last() != Some(&0) {
        return None;
    }
    Some((path, token))
}

/// The errno name of an ERROR reply (`ENOENT\0` → `ENOENT`).
pub fn error_name(payload: &[u8]) -> &[u8] {
    let end = payload
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(payload.len());
    &payload[..end]
}

/// The name of a Linux errno (a system call's negative return), for
/// failures that are not the server's.
pub fn errno_name(errno: isize) -> Option<&'static str> {
    Some(match -errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        21 => "EISDIR",
        22 => "EINVAL",
        28 => "ENOSPC",
        30 => "EROFS",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        106 => "EISCONN",
        _ => return None,
    })
}

/// Writes `n` in decimal into `buf` and returns the digits.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(args: &'a [&'a [u8]]) -> Option<Command<'a>> {
        Command::parse(args)
    }

    #[test]
    fn every_command_parses_with_its_arguments_and_nothing_else() {
        assert_eq!(parse(&[b"read", b"name"]), Some(Command::Read(b"name")));
        assert_eq!(
            parse(&[b"write", b"data/x", b"a b"]),
            Some(Command::Write(b"data/x", b"a b"))
        );
        assert_eq!(parse(&[b"rm", b"/a"]), Some(Command::Rm(b"/a")));
        assert_eq!(parse(&[b"dir", b"/"]), Some(Command::Dir(b"/")));
        assert_eq!(parse(&[b"perms", b"x"]), Some(Command::Perms(b"x")));
        let perms: &[&[u8]] = &[b"n1", b"b2"];
        assert_eq!(
            parse(&[b"setperms", b"x", b"n1", b"b2"]),
            Some(Command::SetPerms(b"x", perms))
        );
        assert_eq!(
            parse(&[b"watch", b"x", b"3"]),
            Some(Command::Watch(b"x", 3))
        );
        assert_eq!(parse(&[b"domid"]), Some(Command::Domid));
        for bad in [
            &[][..],
            &[&b"read"[..]],
            &[b"read", b"a", b"b"],
            &[b"write", b"a"],
            &[b"setperms", b"a"],
            &[b"watch", b"a"],
            &[b"watch", b"a", b"-1"],
            &[b"watch", b"a", b"x"],
            &[b"domid", b"1"],
            &[b"ls", b"/"],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn requests_are_header_then_nul_terminated_strings_and_write_values_raw() {
        let mut buf = [0; HEADER + PAYLOAD_MAX];
        let n = Command::Read(b"name").encode(7, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"\x02\0\0\0\x07\0\0\0\0\0\0\0\x05\0\0\0name\0".as_slice()
        );
        let n = Command::Write(b"data/k", b"v1")
            .encode(1, &mut buf)
            .unwrap();
        assert_eq!(Header::from_bytes(buf[..16].try_into().unwrap()).ty, 11);
        assert_eq!(&buf[HEADER..n], b"data/k\0v1");
        let perms: &[&[u8]] = &[b"n1", b"b2"];
        let n = Command::SetPerms(b"/p", perms).encode(1, &mut buf).unwrap();
        assert_eq!(&buf[HEADER..n], b"/p\0n1\0b2\0");
        let n = Command::Watch(b"/p", 1).encode(1, &mut buf).unwrap();
        assert_eq!(&buf[HEADER..n], b"/p\0xs\0");
        assert_eq!(Header::from_bytes(buf[..16].try_into().unwrap()).ty, 4);
        let n = Command::Domid.encode(1, &mut buf).unwrap();
        assert_eq!(&buf[HEADER..n], b"domid\0");
        assert_eq!(Header::from_bytes(buf[..16].try_into().unwrap()).len, 6);
    }

    #[test]
    fn a_request_too_long_or_holding_a_nul_is_refused() {
        let mut buf = [0; HEADER + PAYLOAD_MAX];
        let big = [b'a'; PAYLOAD_MAX];
        assert_eq!(Command::Read(&big).encode(1, &mut buf), None);
        assert_eq!(
            Command::Read(&big[..PAYLOAD_MAX - 1]).encode(1, &mut buf),
            Some(HEADER + PAYLOAD_MAX)
        );
        assert_eq!(Command::Read(b"a\0b").encode(1, &mut buf), None);
    }

    #[test]
    fn headers_read_back_what_was_written() {
        let h = Header {
            ty: 15,
            req_id: 0x0102_0304,
            tx_id: 0,
            len: 4096,
        };
        assert_eq!(Header::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn reply_strings_split_on_nul_and_an_empty_directory_has_none() {
        let v: Vec<&[u8]> = strings(b"a\0bc\0").collect();
        assert_eq!(v, [b"a".as_slice(), b"bc"]);
        assert_eq!(strings(b"").count(), 0);
        assert_eq!(strings(b"\0").count(), 0);
        let v: Vec<&[u8]> = strings(b"n1\0b2").collect();
        assert_eq!(v, [b"n1".as_slice(), b"b2"]);
    }

    #[test]
    fn a_watch_event_is_exactly_two_strings() {
        assert_eq!(
            watch_event(b"/local/domain/1/data/r\0xs\0"),
            Some((b"/local/domain/1/data/r".as_slice(), b"xs".as_slice()))
        );
        assert_eq!(watch_event(b"p\0"), None);
        assert_eq!(watch_event(b"p\0t"), None);
        assert_eq!(watch_event(b"p\0t\0x\0"), None);
    }

    #[test]
    fn error_names_stop_at_the_nul_and_errnos_have_names() {
        assert_eq!(error_name(b"ENOENT\0"), b"ENOENT");
        assert_eq!(error_name(b"EACCES"), b"EACCES");
        assert_eq!(errno_name(-2), Some("ENOENT"));
        assert_eq!(errno_name(-13), Some("EACCES"));
        assert_eq!(errno_name(-999), None);
    }

    #[test]
    fn numbers_parse_and_print_in_decimal() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1a"), None);
        let mut b = [0; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }
}
