//! The wire format: message types, the 16-byte header, ring page offsets.

use alloc::vec::Vec;

/// `XS_*` message types.
pub mod ty {
    pub const CONTROL: u32 = 0;
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const GET_PERMS: u32 = 3;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const INTRODUCE: u32 = 8;
    pub const RELEASE: u32 = 9;
    pub const GET_DOMAIN_PATH: u32 = 10;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
    pub const IS_DOMAIN_INTRODUCED: u32 = 17;
    pub const RESUME: u32 = 18;
    pub const SET_TARGET: u32 = 19;
    pub const RESET_WATCHES: u32 = 21;
    pub const DIRECTORY_PART: u32 = 22;
    pub const GET_FEATURE: u32 = 23;
    pub const SET_FEATURE: u32 = 24;
    pub const GET_QUOTA: u32 = 25;
    pub const SET_QUOTA: u32 = 26;
}

/// Header size (`struct xsd_sockmsg`).
pub const HEADER_LEN: usize = 16;
/// Largest payload either way (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;

/// Offsets in the ring page (`struct xenstore_domain_interface`).
pub mod ring {
    pub const REQ: usize = 0;
    pub const RSP: usize = 1024;
    pub const SIZE: u32 = 1024;
    pub const REQ_CONS: usize = 2048;
    pub const REQ_PROD: usize = 2052;
    pub const RSP_CONS: usize = 2056;
    pub const RSP_PROD: usize = 2060;
    pub const SERVER_FEATURES: usize = 2064;
    pub const CONNECTION: usize = 2068;
    pub const ERROR: usize = 2072;
    pub const EVTCHN_PORT: usize = 2076;

    /// `connection` values.
    pub const CONNECTED: u32 = 0;
    pub const RECONNECT: u32 = 1;

    /// `server_features` bits.
    pub const FEATURE_RECONNECTION: u32 = 1;
    pub const FEATURE_ERROR: u32 = 2;

    /// `error` values.
    pub const ERROR_NONE: u32 = 0;
    pub const ERROR_RINGIDX: u32 = 2;
    pub const ERROR_PROTO: u32 = 3;
}

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    /// Reads a header from the first 16 bytes (little-endian, as on arm64).
    pub fn parse(b: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let s = b.get(i * 4..i * 4 + 4)?;
            Some(u32::from_le_bytes(<[u8; 4]>::try_from(s).ok()?))
        };
        Some(Header {
            ty: word(0)?,
            req_id: word(1)?,
            tx_id: word(2)?,
            len: word(3)?,
        })
    }

    /// The header followed by `payload` (its length is taken from it).
    pub fn message(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(HEADER_LEN + payload.len());
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        for w in [ty, req_id, tx_id, len] {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(payload);
        m
    }
}

/// Splits a payload into its NUL-terminated strings; `None` if the last
/// byte is not a NUL (a trailing unterminated string).
pub fn strings(payload: &[u8]) -> Option<Vec<&[u8]>> {
    let body = payload.strip_suffix(&[0])?;
    Some(body.split(|&b| b == 0).collect())
}

/// The single string of a one-argument request (`onearg`): the payload's
/// only NUL must be its last byte.
pub fn one_arg(payload: &[u8]) -> Option<&[u8]> {
    let body = payload.strip_suffix(&[0])?;
    if body.contains(&0) { None } else { Some(body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let m = Header::message(2, 7, 3, b"abc");
        assert_eq!(&m[..4], &[2, 0, 0, 0]);
        assert_eq!(
            Header::parse(&m),
            Some(Header {
                ty: 2,
                req_id: 7,
                tx_id: 3,
                len: 3
            })
        );
        assert_eq!(Header::parse(&m[..15]), None);
    }

    #[test]
    fn one_arg_wants_exactly_one_terminated_string() {
        assert_eq!(one_arg(b"a\0"), Some(&b"a"[..]));
        assert_eq!(one_arg(b"a"), None);
        assert_eq!(one_arg(b"a\0b\0"), None);
        assert_eq!(one_arg(b""), None);
    }

    #[test]
    fn strings_split_terminated_lists() {
        assert_eq!(strings(b"a\0bc\0").unwrap(), [&b"a"[..], &b"bc"[..]]);
        assert_eq!(strings(b"\0").unwrap(), [&b""[..]]);
        assert!(strings(b"a\0b").is_none());
        assert!(strings(b"").is_none());
    }
}
