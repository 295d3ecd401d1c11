//! Watches and the events that changes fire at them.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::Perm;
use crate::path::is_at_or_below;

/// A registered watch. `path` is absolute; `relative` says the guest gave
/// it relative to its home, so events report paths relative to it too.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    pub path: String,
    pub token: Vec<u8>,
    pub relative: bool,
}

/// A change, waiting to be matched against every watch.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub path: String,
    /// Fires watches on the path and on its ancestors; else (a node removed
    /// below the removal's root) only watches exactly on the path.
    pub recurse: bool,
    /// A watcher must be able to read the node under one of these lists
    /// (or read its parent) to be told.
    pub perms: Vec<Vec<Perm>>,
    /// The generation those lists are judged at.
    pub generation: u64,
}

impl Event {
    /// A node written or created.
    pub fn changed(path: &str, perms: Vec<Perm>) -> Event {
        Event {
            path: String::from(path),
            recurse: true,
            perms: vec![perms],
            generation: u64::MAX,
        }
    }

    /// A node removed: the root of the removal (`recurse`) or one below it.
    pub fn removed(path: &str, perms: Vec<Perm>, generation: u64, recurse: bool) -> Event {
        Event {
            path: String::from(path),
            recurse,
            perms: vec![perms],
            generation,
        }
    }

    /// `@introduceDomain` or `@releaseDomain` fired: watchers that may read
    /// the special node.
    pub fn special(name: &str, perms: Vec<Perm>, generation: u64) -> Event {
        Event {
            path: String::from(name),
            recurse: true,
            perms: vec![perms],
            generation,
        }
    }

    /// A permission change: watchers that could read before or after.
    pub fn perms_changed(path: &str, new: Vec<Perm>, old: Vec<Perm>) -> Event {
        Event {
            path: String::from(path),
            recurse: true,
            perms: vec![new, old],
            generation: u64::MAX,
        }
    }
}

impl Watch {
    /// Whether `event` fires this watch. `@` names match only exactly.
    pub fn matches(&self, event: &Event) -> bool {
        if !event.recurse || self.path.starts_with('@') || event.path.starts_with('@') {
            return self.path == event.path;
        }
        is_at_or_below(&event.path, &self.path)
    }

    /// The path an event on `path` reports to this watch, given the
    /// watcher's home: relative watches get the home stripped.
    pub fn report<'p>(&self, path: &'p str, home: &str) -> &'p str {
        if self.relative
            && let Some(rest) = path.strip_prefix(home).and_then(|r| r.strip_prefix('/'))
        {
            return rest;
        }
        path
    }
}

/// `path\0token\0`, the payload of a WATCH_EVENT.
pub(crate) fn event_payload(path: &str, token: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + token.len() + 2);
    p.extend_from_slice(path.as_bytes());
    p.push(0);
    p.extend_from_slice(token);
    p.push(0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(path: &str, relative: bool) -> Watch {
        Watch {
            path: String::from(path),
            token: Vec::from(&b"t"[..]),
            relative,
        }
    }

    #[test]
    fn watch_fires_for_its_node_and_below_only() {
        let w = watch("/a/b", false);
        assert!(w.matches(&Event::changed("/a/b", vec![])));
        assert!(w.matches(&Event::changed("/a/b/c", vec![])));
        assert!(!w.matches(&Event::changed("/a/bc", vec![])));
        assert!(!w.matches(&Event::changed("/a", vec![])));
        assert!(watch("/", false).matches(&Event::changed("/x", vec![])));
    }

    #[test]
    fn removal_below_the_root_fires_only_exact_watches() {
        let e = Event::removed("/a/b/c", vec![], 0, false);
        assert!(watch("/a/b/c", false).matches(&e));
        assert!(!watch("/a/b", false).matches(&e));
    }

    #[test]
    fn special_names_match_exactly() {
        let e = Event::changed("@releaseDomain", vec![]);
        assert!(watch("@releaseDomain", false).matches(&e));
        assert!(!watch("/", false).matches(&e));
        assert!(!watch("@release", false).matches(&e));
    }

    #[test]
    fn relative_watch_reports_relative_path() {
        let w = watch("/local/domain/1/device", true);
        assert_eq!(
            w.report("/local/domain/1/device/vif/0", "/local/domain/1"),
            "device/vif/0"
        );
        let w = watch("/local/domain/1/device", false);
        assert_eq!(
            w.report("/local/domain/1/device/vif/0", "/local/domain/1"),
            "/local/domain/1/device/vif/0"
        );
    }
}
