//! The store as one request sees it: the committed tree, or a transaction's
//! copy of the nodes it touched over it, with the request handlers' node
//! operations (lookup with permission checks, create, write, remove, set
//! permissions) written once for both.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::path::{basename, parent};
use crate::perm::{Access, Caller, allowed, is_owner};
use crate::tree::{Node, Tree};
use crate::watch::Event;
use crate::{DomId, Error, Perm, Quotas};

/// An open transaction: the nodes it changed (`None`: removed), the
/// generation of every committed node it looked at (`None`: absent), and
/// the events its changes will fire at commit.
pub(crate) struct Transaction {
    changes: BTreeMap<String, Option<Node>>,
    reads: BTreeMap<String, Option<u64>>,
    events: Vec<Event>,
    owned_delta: BTreeMap<DomId, isize>,
    /// What `reads` and `changes` hold, as `limit` counts it.
    bytes: usize,
    /// Most `bytes` may reach (`ENOSPC` beyond).
    limit: usize,
}

/// What a change entry costs a transaction.
fn change_cost(path: &str, node: Option<&Node>) -> usize {
    path.len() + node.map_or(0, Node::size)
}

impl Transaction {
    pub fn new(limit: usize) -> Self {
        Transaction {
            changes: BTreeMap::new(),
            reads: BTreeMap::new(),
            events: Vec::new(),
            owned_delta: BTreeMap::new(),
            bytes: 0,
            limit,
        }
    }

    fn touched(&self) -> usize {
        self.reads.len()
            + self
                .changes
                .keys()
                .filter(|k| !self.reads.contains_key(*k))
                .count()
    }

    /// Applies the transaction of domain `dom` to `tree` unless a node it
    /// looked at has changed since (`EAGAIN`) or `dom` would then own more
    /// than `max_nodes` (`ENOSPC`: its other transactions and requests may
    /// have created nodes meanwhile); returns the events to fire.
    pub fn commit(
        self,
        tree: &mut Tree,
        dom: DomId,
        max_nodes: usize,
    ) -> Result<Vec<Event>, Error> {
        for (path, seen) in &self.reads {
            if tree.get(path).map(|n| n.generation) != *seen {
                return Err(Error::EAGAIN);
            }
        }
        let delta = self.owned_delta.get(&dom).copied().unwrap_or(0);
        if delta > 0 && tree.owned_by(dom).saturating_add_signed(delta) > max_nodes {
            return Err(Error::ENOSPC);
        }
        for (path, change) in self.changes {
            match change {
                Some(node) => tree.put(&path, node),
                None => {
                    tree.remove(&path);
                }
            }
        }
        let mut events: Vec<Event> = Vec::with_capacity(self.events.len());
        for e in self.events {
            if !events
                .iter()
                .any(|x| x.path == e.path && x.recurse == e.recurse)
            {
                events.push(e);
            }
        }
        Ok(events)
    }
}

/// One request's view of the store.
pub(crate) struct View<'a> {
    tree: &'a mut Tree,
    tx: Option<&'a mut Transaction>,
    caller: Caller,
    quotas: &'a Quotas,
    /// Events of changes outside a transaction, fired after the reply.
    events: &'a mut Vec<Event>,
}

impl<'a> View<'a> {
    pub fn new(
        tree: &'a mut Tree,
        tx: Option<&'a mut Transaction>,
        caller: Caller,
        quotas: &'a Quotas,
        events: &'a mut Vec<Event>,
    ) -> Self {
        View {
            tree,
            tx,
            caller,
            quotas,
            events,
        }
    }

    fn guest(&self) -> Option<DomId> {
        match self.caller {
            Caller::Hypervisor => None,
            Caller::Domain { id, .. } => Some(id),
        }
    }

    // ---- raw access ------------------------------------------------------

    /// The node at `path` as this view sees it. In a transaction, records
    /// what was seen of the committed store (`ENOSPC` past the transaction's
    /// node quota).
    pub fn get(&mut self, path: &str) -> Result<Option<Node>, Error> {
        let Some(tx) = self.tx.as_deref_mut() else {
            return Ok(self.tree.get(path).cloned());
        };
        if let Some(change) = tx.changes.get(path) {
            return Ok(change.clone());
        }
        let node = self.tree.get(path);
        if !tx.reads.contains_key(path) {
            if tx.touched() >= self.quotas.nodes_per_transaction {
                return Err(Error::ENOSPC);
            }
            tx.reads
                .insert(String::from(path), node.map(|n| n.generation));
        }
        Ok(node.cloned())
    }

    /// Whether a transaction has room for changes to `paths` (those it has
    /// not touched yet count against its node quota) with a value of
    /// `value_len` bytes: an estimate against its byte quota, made before
    /// any change so that a request fails whole.
    fn reserve(&self, paths: &[&str], value_len: usize) -> Result<(), Error> {
        let Some(tx) = self.tx.as_deref() else {
            return Ok(());
        };
        let new = paths
            .iter()
            .filter(|p| !tx.reads.contains_key(**p) && !tx.changes.contains_key(**p))
            .count();
        if tx.touched() + new > self.quotas.nodes_per_transaction {
            return Err(Error::ENOSPC);
        }
        let estimate = paths.iter().map(|p| 2 * p.len() + 64).sum::<usize>() + value_len;
        if tx.bytes.saturating_add(estimate) > tx.limit {
            return Err(Error::ENOSPC);
        }
        Ok(())
    }

    /// Records a change in the transaction, keeping its byte count.
    fn change(tx: &mut Transaction, path: &str, node: Option<Node>) {
        let new = change_cost(path, node.as_ref());
        let old = tx.changes.insert(String::from(path), node);
        let old = old.map_or(0, |o| change_cost(path, o.as_ref()));
        tx.bytes = tx.bytes.saturating_sub(old).saturating_add(new);
    }

    /// Stores a node; `old_owner` is the owner of what it replaces.
    fn put(&mut self, path: &str, node: Node, old_owner: Option<DomId>) {
        match self.tx.as_deref_mut() {
            None => self.tree.put(path, node),
            Some(tx) => {
                bump(&mut tx.owned_delta, node.owner(), 1);
                if let Some(o) = old_owner {
                    bump(&mut tx.owned_delta, o, -1);
                }
                Self::change(tx, path, Some(node));
            }
        }
    }

    fn remove(&mut self, path: &str, owner: DomId) {
        match self.tx.as_deref_mut() {
            None => {
                self.tree.remove(path);
            }
            Some(tx) => {
                bump(&mut tx.owned_delta, owner, -1);
                Self::change(tx, path, None);
            }
        }
    }

    fn owned_by(&self, dom: DomId) -> usize {
        let base = self.tree.owned_by(dom);
        let delta = self
            .tx
            .as_deref()
            .and_then(|tx| tx.owned_delta.get(&dom).copied())
            .unwrap_or(0);
        base.saturating_add_signed(delta)
    }

    fn fire(&mut self, event: Event) {
        match self.tx.as_deref_mut() {
            Some(tx) => tx.events.push(event),
            None => self.events.push(event),
        }
    }

    // ---- checks ------------------------------------------------------------

    fn may(&self, node: &Node, need: Access) -> bool {
        allowed(&node.perms, node.generation, self.caller, need)
    }

    /// The error for a node that does not exist: `ENOENT` if the caller has
    /// `need` on the nearest existing ancestor, else `EACCES`, so that a
    /// guest learns nothing of what it may not see.
    fn missing(&mut self, path: &str, need: Access) -> Error {
        let mut at = parent(path);
        while let Some(p) = at {
            match self.get(p) {
                Err(e) => return e,
                Ok(Some(n)) => {
                    return if self.may(&n, need) {
                        Error::ENOENT
                    } else {
                        Error::EACCES
                    };
                }
                Ok(None) => at = parent(p),
            }
        }
        Error::ENOENT
    }

    /// The node at `path` if it exists and the caller has `need` on it.
    pub fn get_checked(&mut self, path: &str, need: Access) -> Result<Node, Error> {
        match self.get(path)? {
            Some(n) if self.may(&n, need) => Ok(n),
            Some(_) => Err(Error::EACCES),
            None => Err(self.missing(path, need)),
        }
    }

    fn check_size(&self, node: &Node) -> Result<(), Error> {
        if self.guest().is_some() && node.size() > self.quotas.node_size {
            return Err(Error::ENOSPC);
        }
        Ok(())
    }

    // ---- operations --------------------------------------------------------

    /// WRITE: sets the value, creating the node and missing parents.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        match self.get(path)? {
            Some(mut node) => {
                if !self.may(&node, Access::Write) {
                    return Err(Error::EACCES);
                }
                self.reserve(&[path], value.len())?;
                let owner = node.owner();
                node.value = Vec::from(value);
                self.check_size(&node)?;
                let perms = node.perms.clone();
                self.put(path, node, Some(owner));
                self.fire(Event::changed(path, perms));
            }
            None => self.create(path, value)?,
        }
        Ok(())
    }

    /// MKDIR: creates an empty node unless one exists.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        match self.get(path)? {
            Some(n) if self.may(&n, Access::Write) => Ok(()),
            Some(_) => Err(Error::EACCES),
            None => self.create(path, &[]),
        }
    }

    /// Creates `path` (absent) and its missing ancestors. Needs write on the
    /// nearest existing ancestor; new nodes copy their parent's list, with
    /// a guest creator as owner. All checks come before any change.
    fn create(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        let mut missing: Vec<&str> = vec![path];
        let mut at = parent(path);
        let (top_path, mut top) = loop {
            let p = at.ok_or(Error::ENOENT)?;
            match self.get(p)? {
                Some(n) => break (p, n),
                None => {
                    missing.push(p);
                    at = parent(p);
                }
            }
        };
        if !self.may(&top, Access::Write) {
            return Err(Error::EACCES);
        }
        let mut reserve = missing.clone();
        reserve.push(top_path);
        self.reserve(&reserve, value.len())?;
        let mut perms = top.perms.clone();
        if let (Some(id), Some(owner)) = (self.guest(), perms.first_mut()) {
            owner.dom = id;
        }
        let new_owner = perms.first().map_or(0, |p| p.dom);
        if self.guest().is_some()
            && self.owned_by(new_owner).saturating_add(missing.len()) > self.quotas.nodes_per_domain
        {
            return Err(Error::ENOSPC);
        }
        // Build top-down: each new node gets the next one's name as child.
        let top_owner = top.owner();
        let mut built: Vec<(&str, Node)> = Vec::with_capacity(missing.len());
        top.children.push(String::from(basename(
            missing.last().copied().unwrap_or(path),
        )));
        self.check_size(&top)?;
        for (i, p) in missing.iter().rev().enumerate() {
            let mut node = Node::new(Vec::new(), perms.clone());
            if i + 1 == missing.len() {
                node.value = Vec::from(value);
            } else if let Some(child) = missing.get(missing.len() - 2 - i) {
                node.children.push(String::from(basename(child)));
            }
            self.check_size(&node)?;
            built.push((p, node));
        }
        self.put(top_path, top, Some(top_owner));
        for (p, node) in built {
            self.put(p, node, None);
        }
        self.fire(Event::changed(path, perms));
        Ok(())
    }

    /// RM: removes the node and everything below it.
    pub fn rm(&mut self, path: &str) -> Result<(), Error> {
        let Some(parent_path) = parent(path) else {
            return Err(Error::EINVAL);
        };
        let node = match self.get(path)? {
            Some(n) if self.may(&n, Access::Write) => n,
            Some(_) => return Err(Error::EACCES),
            None => {
                return match self.missing(path, Access::Write) {
                    Error::ENOENT if self.get(parent_path)?.is_some() => Ok(()),
                    e => Err(e),
                };
            }
        };
        // Every node below, deepest first.
        let mut below: Vec<(String, Node)> = Vec::new();
        let mut stack: Vec<(String, Node, usize)> = vec![(String::from(path), node, 0)];
        while let Some((p, n, next)) = stack.pop() {
            if let Some(child) = n.children.get(next) {
                let cp = crate::path::join(&p, child);
                let cn = self.get(&cp)?;
                stack.push((p, n, next + 1));
                if let Some(cn) = cn {
                    stack.push((cp, cn, 0));
                }
            } else {
                below.push((p, n));
            }
        }
        let mut parent_node = self.get(parent_path)?.ok_or(Error::ENOENT)?;
        let mut paths: Vec<&str> = below.iter().map(|(p, _)| p.as_str()).collect();
        paths.push(parent_path);
        self.reserve(&paths, 0)?;
        let top = below.pop();
        for (p, n) in below {
            self.remove(&p, n.owner());
            self.fire(Event::removed(&p, n.perms, n.generation, false));
        }
        if let Some((p, n)) = top {
            self.remove(&p, n.owner());
            self.fire(Event::removed(&p, n.perms, n.generation, true));
        }
        let name = basename(path);
        let parent_owner = parent_node.owner();
        parent_node.children.retain(|c| c != name);
        self.put(parent_path, parent_node, Some(parent_owner));
        Ok(())
    }

    /// SET_PERMS: replaces the list. Needs ownership; a guest may not give
    /// the node away (`EPERM`) nor set more than the quota's entries.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let Some(new_owner) = perms.first() else {
            return Err(Error::EINVAL);
        };
        if self.guest().is_some() && perms.len() > self.quotas.perms_per_node {
            return Err(Error::ENOSPC);
        }
        let mut node = self.get_checked(path, Access::Write)?;
        if !is_owner(&node.perms, self.caller) {
            return Err(Error::EACCES);
        }
        if self.guest().is_some() && new_owner.dom != node.owner() {
            return Err(Error::EPERM);
        }
        self.reserve(&[path], 8 * perms.len())?;
        let old_owner = node.owner();
        let old = core::mem::replace(&mut node.perms, Vec::from(perms));
        self.check_size(&node)?;
        self.put(path, node, Some(old_owner));
        self.fire(Event::perms_changed(path, Vec::from(perms), old));
        Ok(())
    }
}

fn bump(map: &mut BTreeMap<DomId, isize>, dom: DomId, by: isize) {
    *map.entry(dom).or_insert(0) += by;
}
