//! Node names: checking a guest's path and making it absolute.

use alloc::format;
use alloc::string::String;

use crate::{DomId, Error};

/// A checked, absolute node name, and whether the guest gave it relative to
/// its home (watch events then report relative paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Canonical {
    pub path: String,
    pub relative: bool,
}

/// `/local/domain/<id>`, a domain's home.
pub(crate) fn home(dom: DomId) -> String {
    format!("/local/domain/{dom}")
}

/// Checks `raw` and makes it absolute for `caller` (`None`: the hypervisor,
/// which has no home and no length limit). `special`: whether `@` names are
/// allowed (WATCH, UNWATCH, GET_PERMS, SET_PERMS).
pub(crate) fn canonicalize(
    raw: &[u8],
    caller: Option<DomId>,
    special: bool,
    path_max: usize,
) -> Result<Canonical, Error> {
    let s = core::str::from_utf8(raw).map_err(|_| Error::EINVAL)?;
    if s.is_empty() || !s.bytes().all(valid_char) {
        return Err(Error::EINVAL);
    }
    let (path, relative) = if s.starts_with('/') || s.starts_with('@') {
        (String::from(s), false)
    } else {
        let dom = caller.ok_or(Error::EINVAL)?;
        (format!("{}/{s}", home(dom)), true)
    };
    if path.starts_with('@') && !special {
        return Err(Error::EINVAL);
    }
    if (path.ends_with('/') && path != "/") || path.contains("//") {
        return Err(Error::EINVAL);
    }
    if caller.is_some() && counted_len(&path) > path_max {
        return Err(Error::EINVAL);
    }
    Ok(Canonical { path, relative })
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// The length the path quota counts: below `/local/domain/<n>/` only the
/// part after it.
fn counted_len(path: &str) -> usize {
    if let Some(rest) = path.strip_prefix("/local/domain/")
        && let Some(slash) = rest.find('/')
        && (1..=5).contains(&slash)
        && rest.bytes().take(slash).all(|c| c.is_ascii_digit())
    {
        return rest.len() - slash - 1;
    }
    path.len()
}

/// The parent of an absolute node name (`None` for `/` and `@` names).
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of an absolute node name.
pub(crate) fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `parent` joined with child name `name`.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `path` is `dir` or below it.
pub(crate) fn is_at_or_below(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path.starts_with('/');
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<Canonical, Error> {
        canonicalize(raw.as_bytes(), Some(1), false, 2048)
    }

    #[test]
    fn relative_paths_go_below_the_callers_home() {
        let c = canon("control/shutdown").unwrap();
        assert_eq!(c.path, "/local/domain/1/control/shutdown");
        assert!(c.relative);
        assert!(!canon("/local").unwrap().relative);
    }

    #[test]
    fn bad_shapes_and_characters_are_einval() {
        for bad in [
            "", "a/", "/a/", "//", "/a//b", "a b", "a.b", "a\u{e9}", "@x",
        ] {
            assert_eq!(canon(bad), Err(Error::EINVAL), "{bad:?}");
        }
        assert_eq!(
            canonicalize(b"\xff", Some(1), false, 2048),
            Err(Error::EINVAL)
        );
        assert_eq!(canon("/").unwrap().path, "/");
        assert_eq!(canon("/a@b").unwrap().path, "/a@b");
    }

    #[test]
    fn special_names_only_where_allowed() {
        let c = canonicalize(b"@releaseDomain", Some(1), true, 2048).unwrap();
        assert_eq!(c.path, "@releaseDomain");
        assert!(!c.relative);
    }

    #[test]
    fn length_limit_counts_only_below_the_home() {
        let long = "a".repeat(2048);
        assert!(canon(&long).is_ok());
        assert_eq!(canon(&"a".repeat(2049)), Err(Error::EINVAL));
        let abs = format!("/local/domain/7/{long}");
        assert!(canon(&abs).is_ok());
        let outside = format!("/x{}", "a".repeat(2047));
        assert_eq!(canon(&outside), Err(Error::EINVAL));
        assert!(canonicalize(outside.as_bytes(), None, false, 2048).is_ok());
    }

    #[test]
    fn hypervisor_has_no_home() {
        assert_eq!(canonicalize(b"x", None, false, 2048), Err(Error::EINVAL));
    }

    #[test]
    fn parents_and_prefixes() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("@x"), None);
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/ab", "/"));
        assert!(!is_at_or_below("@x", "/"));
    }
}
