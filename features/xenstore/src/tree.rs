//! The committed store: nodes by absolute name, their generations, and how
//! many nodes each domain owns.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{DomId, Perm};

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    /// Never empty: entry 0 is the owner.
    pub perms: Vec<Perm>,
    /// Child names in creation order (as C xenstored lists them).
    pub children: Vec<String>,
    /// Store generation of the last change; `u64::MAX` for a node changed
    /// inside a transaction and not yet committed.
    pub generation: u64,
}

impl Node {
    pub fn new(value: Vec<u8>, perms: Vec<Perm>) -> Node {
        Node {
            value,
            perms,
            children: Vec::new(),
            generation: u64::MAX,
        }
    }

    pub fn owner(&self) -> DomId {
        self.perms.first().map_or(0, |p| p.dom)
    }

    /// The size C xenstored's node-size quota measures.
    pub fn size(&self) -> usize {
        16 + 8 * self.perms.len()
            + self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
    }

    /// Children as the wire lists them: each name followed by a NUL.
    pub fn child_list(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }
}

/// The committed nodes. `/` always exists.
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
    owned: BTreeMap<DomId, usize>,
    next_gen: u64,
}

impl Tree {
    pub fn new(root_perms: Vec<Perm>) -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            owned: BTreeMap::new(),
            next_gen: 1,
        };
        t.put("/", Node::new(Vec::new(), root_perms));
        t
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The generation the next change will get.
    pub fn generation(&self) -> u64 {
        self.next_gen
    }

    /// Stores `node` at `path` with a fresh generation.
    pub fn put(&mut self, path: &str, mut node: Node) {
        node.generation = self.next_gen;
        self.next_gen += 1;
        self.count(node.owner(), 1);
        if let Some(old) = self.nodes.insert(String::from(path), node) {
            self.count(old.owner(), -1);
        }
    }

    /// Removes the node at `path` (not its children: callers remove those).
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.count(old.owner(), -1);
        Some(old)
    }

    fn count(&mut self, dom: DomId, delta: isize) {
        let n = self.owned.entry(dom).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.owned.remove(&dom);
        }
    }

    /// Nodes owned by `dom`.
    pub fn owned_by(&self, dom: DomId) -> usize {
        self.owned.get(&dom).copied().unwrap_or(0)
    }

    /// Names of every node owned by `dom`.
    pub fn paths_owned_by(&self, dom: DomId) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.owner() == dom)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

#[cfg(test)]
impl Tree {
    /// Panics unless every node is listed by its parent, every child listed
    /// exists, and the ownership counts match the nodes.
    pub fn assert_consistent(&self) {
        let mut owned: BTreeMap<DomId, usize> = BTreeMap::new();
        for (path, node) in &self.nodes {
            *owned.entry(node.owner()).or_insert(0) += 1;
            assert!(!node.perms.is_empty(), "{path} has no perms");
            if let Some(parent) = crate::path::parent(path) {
                let p = self
                    .nodes
                    .get(parent)
                    .unwrap_or_else(|| panic!("{path}: no parent"));
                let name = crate::path::basename(path);
                assert_eq!(
                    p.children.iter().filter(|c| *c == name).count(),
                    1,
                    "{path} listed in {parent}: {:?}",
                    p.children
                );
            }
            for c in &node.children {
                let cp = crate::path::join(path, c);
                assert!(self.nodes.contains_key(&cp), "{cp} listed but missing");
            }
        }
        assert_eq!(owned, self.owned, "ownership counts");
    }
}
