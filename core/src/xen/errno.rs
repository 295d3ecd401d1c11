//! Xen's error numbers (`xen/include/public/errno.h`). Hypercalls return
//! them negated in x0; use [`Errno::ret`].

/// A Xen error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// The value a hypercall returns for this error: `-errno`.
    pub const fn ret(self) -> i64 {
        -(self.0 as i64)
    }

    /// Xen's name for it, e.g. `"EINVAL"`.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(e, _)| *e == self)
            .map_or("E?", |(_, n)| n)
    }
}

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => {
        $(pub const $name: Errno = Errno($v);)*
        const ALL: &[(Errno, &str)] = &[$(($name, stringify!($name))),*];
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7,
    ENOEXEC = 8, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
    EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20,
    EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOSPC = 28, EROFS = 30,
    EMLINK = 31, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36,
    ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39, ENODATA = 61, ETIME = 62,
    EBADMSG = 74, EOVERFLOW = 75, EILSEQ = 84, ERESTART = 85, ENOTSOCK = 88,
    EMSGSIZE = 90, EOPNOTSUPP = 95, EADDRINUSE = 98, EADDRNOTAVAIL = 99,
    ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110,
    ECONNREFUSED = 111,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercalls_return_the_negated_number() {
        assert_eq!(ENOSYS.ret(), -38);
        assert_eq!(EINVAL.ret(), -22);
    }

    #[test]
    fn names_are_xens() {
        assert_eq!(EOPNOTSUPP.name(), "EOPNOTSUPP");
        assert_eq!(Errno(1000).name(), "E?");
    }
}
