//! Node permission lists: the `n5`/`r5`/`w5`/`b5` entries and who they let in.

use core::fmt;

use crate::{DomId, Error};

/// What an entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermKind {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both.
    Both,
}

impl PermKind {
    fn letter(self) -> char {
        match self {
            PermKind::None => 'n',
            PermKind::Read => 'r',
            PermKind::Write => 'w',
            PermKind::Both => 'b',
        }
    }

    fn from_letter(c: u8) -> Option<Self> {
        match c {
            b'n' => Some(PermKind::None),
            b'r' => Some(PermKind::Read),
            b'w' => Some(PermKind::Write),
            b'b' => Some(PermKind::Both),
            _ => None,
        }
    }

    /// Whether this grants everything `need` asks for.
    pub(crate) fn grants(self, need: Access) -> bool {
        match need {
            Access::Read => matches!(self, PermKind::Read | PermKind::Both),
            Access::Write => matches!(self, PermKind::Write | PermKind::Both),
        }
    }
}

/// One entry of a node's permission list. Entry 0 names the owner and
/// gives the flag for every domain not named later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub dom: DomId,
    pub kind: PermKind,
}

impl Perm {
    /// Parses `r3` and friends: one flag letter and a decimal domain ID.
    /// Stricter than C xenstored, which also takes an empty or hex ID.
    pub fn parse(s: &[u8]) -> Result<Perm, Error> {
        let (&letter, digits) = s.split_first().ok_or(Error::EINVAL)?;
        let kind = PermKind::from_letter(letter).ok_or(Error::EINVAL)?;
        let dom = parse_decimal_u16(digits).ok_or(Error::EINVAL)?;
        Ok(Perm { dom, kind })
    }
}

/// A decimal number of 1 to 5 digits that fits a `u16`.
pub(crate) fn parse_decimal_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        v = v * 10 + u32::from(d - b'0');
    }
    u16::try_from(v).ok()
}

impl core::str::FromStr for Perm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Perm, Error> {
        Perm::parse(s.as_bytes())
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.letter(), self.dom)
    }
}

/// The access a request needs on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The hypervisor acting as toolstack: every check passes.
    Hypervisor,
    /// A guest. `since` is the store generation at which the domain was
    /// introduced: entries naming it in a node last written before then were
    /// meant for an earlier domain with the same ID and are ignored.
    Domain { id: DomId, since: u64 },
}

/// What `caller` may do with a node whose list is `perms` and which was
/// last written at generation `node_gen`.
pub(crate) fn access_for(perms: &[Perm], node_gen: u64, caller: Caller) -> PermKind {
    let (id, since) = match caller {
        Caller::Hypervisor => return PermKind::Both,
        Caller::Domain { id, since } => (id, since),
    };
    let Some((owner, rest)) = perms.split_first() else {
        return PermKind::None;
    };
    if owner.dom == id {
        return PermKind::Both;
    }
    if node_gen >= since
        && let Some(entry) = rest.iter().find(|p| p.dom == id)
    {
        return entry.kind;
    }
    owner.kind
}

/// Whether `caller` has `need` on the node.
pub(crate) fn allowed(perms: &[Perm], node_gen: u64, caller: Caller, need: Access) -> bool {
    access_for(perms, node_gen, caller).grants(need)
}

/// Whether `caller` owns the node (the hypervisor owns everything).
pub(crate) fn is_owner(perms: &[Perm], caller: Caller) -> bool {
    match caller {
        Caller::Hypervisor => true,
        Caller::Domain { id, .. } => perms.first().is_some_and(|p| p.dom == id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const D1: Caller = Caller::Domain { id: 1, since: 0 };
    const D2: Caller = Caller::Domain { id: 2, since: 0 };
    const D3: Caller = Caller::Domain { id: 3, since: 0 };

    fn p(s: &str) -> Perm {
        Perm::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn perms_print_and_parse_as_letter_and_domid() {
        assert_eq!(
            p("r3"),
            Perm {
                dom: 3,
                kind: PermKind::Read
            }
        );
        assert_eq!(p("b65535").to_string(), "b65535");
        assert_eq!(p("n0").to_string(), "n0");
        assert_eq!(
            "w7".parse::<Perm>(),
            Ok(Perm {
                dom: 7,
                kind: PermKind::Write
            })
        );
        for bad in ["", "r", "x1", "r-1", "r1a", "r65536", "r123456", "R1"] {
            assert_eq!(Perm::parse(bad.as_bytes()), Err(Error::EINVAL), "{bad}");
        }
    }

    #[test]
    fn owner_has_full_access_whatever_its_flag() {
        assert_eq!(access_for(&[p("n1")], 0, D1), PermKind::Both);
    }

    #[test]
    fn first_later_entry_naming_the_caller_wins() {
        let perms = [p("n1"), p("r2"), p("w2")];
        assert_eq!(access_for(&perms, 0, D2), PermKind::Read);
    }

    #[test]
    fn others_get_entry_zeros_flag() {
        let perms = [p("r1"), p("w2")];
        assert_eq!(access_for(&perms, 0, D3), PermKind::Read);
        assert_eq!(access_for(&perms, 0, D2), PermKind::Write);
    }

    #[test]
    fn entries_older_than_the_domain_are_ignored() {
        let perms = [p("n1"), p("b2")];
        let reborn = Caller::Domain { id: 2, since: 10 };
        assert_eq!(access_for(&perms, 9, reborn), PermKind::None);
        assert_eq!(access_for(&perms, 10, reborn), PermKind::Both);
    }

    #[test]
    fn hypervisor_passes_every_check() {
        assert!(allowed(&[p("n1")], 0, Caller::Hypervisor, Access::Write));
        assert!(is_owner(&[p("n1")], Caller::Hypervisor));
        assert!(!is_owner(&[p("n1")], D2));
    }
}
