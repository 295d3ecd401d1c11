//! The error names a xenstore reply can carry (`XS_ERROR` payloads).

use core::fmt;

/// An error reply. The names are the wire strings; the order is that of
/// Xen's `xsd_errors[]` table. Linux knows the first fifteen; `EPERM` is
/// only sent when a domain tries to give a node away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl Error {
    /// The name sent in an `XS_ERROR` reply (without its NUL).
    pub fn name(self) -> &'static str {
        match self {
            Error::EINVAL => "EINVAL",
            Error::EACCES => "EACCES",
            Error::EEXIST => "EEXIST",
            Error::EISDIR => "EISDIR",
            Error::ENOENT => "ENOENT",
            Error::ENOMEM => "ENOMEM",
            Error::ENOSPC => "ENOSPC",
            Error::EIO => "EIO",
            Error::ENOTEMPTY => "ENOTEMPTY",
            Error::ENOSYS => "ENOSYS",
            Error::EROFS => "EROFS",
            Error::EBUSY => "EBUSY",
            Error::EAGAIN => "EAGAIN",
            Error::EISCONN => "EISCONN",
            Error::E2BIG => "E2BIG",
            Error::EPERM => "EPERM",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_strings() {
        assert_eq!(Error::ENOENT.name(), "ENOENT");
        assert_eq!(Error::E2BIG.name(), "E2BIG");
        assert_eq!(alloc::format!("{}", Error::EPERM), "EPERM");
    }
}
