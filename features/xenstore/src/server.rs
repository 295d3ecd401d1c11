//! The server: the store, the introduced domains' connections, request
//! dispatch, watch delivery, and the hypervisor's privileged access.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oxen_core::xen::DOMID_FIRST_RESERVED;

use crate::conn::{Conn, Input};
use crate::path::{canonicalize, home, join, parent};
use crate::perm::{Access, Caller, allowed, parse_decimal_u16};
use crate::quota::TRANSACTION_BYTES;
use crate::toolstack::{toolstack_nodes, vm_path};
use crate::tree::{Node, Tree};
use crate::view::{Transaction, View};
use crate::watch::{Event, Watch, event_payload};
use crate::wire::{HEADER_LEN, Header, PAYLOAD_MAX, one_arg, ring, strings, ty};
use crate::{DomId, DomainInfo, Error, Perm, PermKind, Quotas, RingPage};

/// `server_features` Oxen advertises: ring reconnection and the error
/// indicator, both implemented.
pub const SERVER_FEATURES: u32 = ring::FEATURE_RECONNECTION | ring::FEATURE_ERROR;

/// Requests handled per `kick` at most, so that a guest that keeps its
/// request ring full while consuming replies cannot hold the hypervisor;
/// what is left waits for its next signal.
pub const REQUESTS_PER_KICK: usize = 256;

const INTRODUCE_DOMAIN: &str = "@introduceDomain";
const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The xenstore server.
pub struct Xenstore<P: RingPage> {
    quotas: Quotas,
    tree: Tree,
    conns: BTreeMap<DomId, Conn<P>>,
    /// Store generation at each domain ID's last release: permission
    /// entries naming it in nodes written before then are ignored.
    released_at: BTreeMap<DomId, u64>,
    notify: BTreeSet<DomId>,
    transaction_bytes: usize,
}

/// What handling one request produced.
#[derive(Default)]
struct Outcome {
    reply: Vec<u8>,
    /// WATCH's immediate event, queued after the reply.
    own_event: Option<Vec<u8>>,
    events: Vec<Event>,
}

fn ok() -> Vec<u8> {
    Vec::from(&b"OK\0"[..])
}

fn error_reply(h: &Header, e: Error) -> Vec<u8> {
    let mut p = Vec::from(e.name().as_bytes());
    p.push(0);
    Header::message(ty::ERROR, h.req_id, h.tx_id, &p)
}

/// The generation from which permission entries naming `dom` count: its
/// last release (entries written before were for an earlier domain).
fn since(released_at: &BTreeMap<DomId, u64>, dom: DomId) -> u64 {
    released_at.get(&dom).copied().unwrap_or(0)
}

fn hypervisor_perms() -> Vec<Perm> {
    vec![Perm {
        dom: 0,
        kind: PermKind::None,
    }]
}

impl<P: RingPage> Xenstore<P> {
    /// A store holding `/`, `/tool`, `/tool/xenstored`, `/local`,
    /// `/local/domain`, `@introduceDomain` and `@releaseDomain`, all owned
    /// by the hypervisor (shown as domain 0, `n0`).
    pub fn new(quotas: Quotas) -> Self {
        let mut tree = Tree::new(hypervisor_perms());
        for special in [INTRODUCE_DOMAIN, RELEASE_DOMAIN] {
            tree.put(special, Node::new(Vec::new(), hypervisor_perms()));
        }
        let mut events = Vec::new();
        let mut view = View::new(&mut tree, None, Caller::Hypervisor, &quotas, &mut events);
        for p in ["/tool", "/tool/xenstored", "/local", "/local/domain"] {
            // Cannot fail: the hypervisor creating below an existing node.
            let _ = view.mkdir(p);
        }
        Xenstore {
            quotas,
            tree,
            conns: BTreeMap::new(),
            released_at: BTreeMap::new(),
            notify: BTreeSet::new(),
            transaction_bytes: TRANSACTION_BYTES,
        }
    }

    /// Sets the byte bound of transactions started from now on (default
    /// [`TRANSACTION_BYTES`]).
    pub fn set_transaction_bytes(&mut self, bytes: usize) {
        self.transaction_bytes = bytes;
    }

    // ---- domains -----------------------------------------------------------

    /// Writes the toolstack's nodes for the domain ([`toolstack_nodes`]),
    /// initialises the page (`server_features`, `error = 0`,
    /// `connection = 0`; indices left as they are), starts serving it,
    /// queues a signal to it (a guest waiting for `connection` to drop to 0
    /// needs one) and fires `@introduceDomain`. A domain introduced again
    /// (reboot) is released first. Domain 0 (the hypervisor's stand-in as
    /// owner of its nodes) and reserved IDs are `EINVAL`.
    ///
    /// Nodes the hypervisor wrote below `/local/domain/<id>` before this
    /// call stay, with the permissions they had (written by the hypervisor
    /// under the then hypervisor-owned home, that is `n0`: set them).
    /// Entries naming the domain in any node written since its ID was last
    /// released count from the start.
    pub fn introduce_domain(&mut self, info: &DomainInfo<'_>, page: P) -> Result<(), Error> {
        let dom = info.domid;
        if dom == 0 || dom >= DOMID_FIRST_RESERVED {
            return Err(Error::EINVAL);
        }
        if self.conns.contains_key(&dom) {
            self.release_domain(dom);
        }
        let nodes = toolstack_nodes(info);
        self.privileged(|v| {
            for n in &nodes {
                v.write(&n.path, n.value.as_bytes())?;
                if v.get_checked(&n.path, Access::Read)?.perms != n.perms {
                    v.set_perms(&n.path, &n.perms)?;
                }
            }
            Ok(())
        })?;
        page.store_u32(ring::SERVER_FEATURES, SERVER_FEATURES);
        page.store_u32(ring::ERROR, ring::ERROR_NONE);
        page.store_u32(ring::CONNECTION, ring::CONNECTED);
        self.conns
            .insert(dom, Conn::new(page, since(&self.released_at, dom)));
        self.notify.insert(dom);
        self.fire_special(INTRODUCE_DOMAIN);
        self.flush_all();
        Ok(())
    }

    /// The domain is gone: drops its connection, watches, transactions and
    /// queued output; removes `/local/domain/<id>`, its `/vm/<uuid>` and
    /// every node it owns; drops its entries from the special nodes'
    /// permissions; fires `@releaseDomain` (if it was introduced).
    pub fn release_domain(&mut self, domid: DomId) {
        if domid == 0 || domid >= DOMID_FIRST_RESERVED {
            return;
        }
        let was = self.conns.remove(&domid).is_some();
        self.notify.remove(&domid);
        let owned = self.tree.paths_owned_by(domid);
        let _ = self.privileged(|v| {
            for p in [home(domid), vm_path(domid)].iter().chain(owned.iter()) {
                if p.starts_with('/') && v.get(p)?.is_some() {
                    v.rm(p)?;
                }
            }
            for special in [INTRODUCE_DOMAIN, RELEASE_DOMAIN] {
                if let Some(n) = v.get(special)? {
                    let perms: Vec<Perm> = (n.perms.iter().enumerate())
                        .filter(|(i, p)| *i == 0 || p.dom != domid)
                        .map(|(_, p)| *p)
                        .collect();
                    if perms != n.perms {
                        v.set_perms(special, &perms)?;
                    }
                }
            }
            Ok(())
        });
        self.released_at.insert(domid, self.tree.generation());
        if was {
            self.fire_special(RELEASE_DOMAIN);
        }
        self.flush_all();
    }

    /// Whether the domain is being served.
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.conns.contains_key(&domid)
    }

    /// Watch events dropped for the domain because its queue was full.
    pub fn dropped_events(&self, domid: DomId) -> Option<u64> {
        self.conns.get(&domid).map(|c| c.dropped_events)
    }

    // ---- the ring ----------------------------------------------------------

    /// The domain signalled its xenstore port: honours a reset request
    /// (`connection == 1`), reads and handles every complete request
    /// available (not while the domain has `outstanding_requests` replies
    /// undelivered, and at most [`REQUESTS_PER_KICK`]), then flushes every
    /// connection's queued output into its ring as space allows.
    ///
    /// When it stops at [`REQUESTS_PER_KICK`] with input still waiting,
    /// [`Xenstore::needs_kick`] says so: the guest may not signal again
    /// (Linux signals only when it finds its earlier requests all
    /// consumed), so the caller should kick again later. A back-pressure
    /// stop needs nothing: the response ring is then full, and the guest
    /// signals once it has read from it.
    pub fn kick(&mut self, domid: DomId) {
        let Some(conn) = self.conns.get_mut(&domid) else {
            return;
        };
        if conn.reset_if_asked() {
            self.notify.insert(domid);
        }
        let mut handled = 0;
        while let Some(conn) = self.conns.get_mut(&domid) {
            if conn.broken {
                break;
            }
            let mut moved = false;
            conn.flush(&mut moved);
            let input = if conn.replies >= self.quotas.outstanding_requests
                || handled >= REQUESTS_PER_KICK
            {
                Input::Pending
            } else {
                conn.read_message(&mut moved)
            };
            if moved || conn.broken {
                self.notify.insert(domid);
            }
            match input {
                Input::Message(m) => {
                    handled += 1;
                    self.serve(domid, &m);
                }
                Input::Pending | Input::Broken => break,
            }
        }
        self.flush_all();
        if let Some(conn) = self.conns.get_mut(&domid) {
            conn.budget_spent = handled >= REQUESTS_PER_KICK && conn.input_waiting();
        }
    }

    /// Whether the domain's last `kick` stopped at [`REQUESTS_PER_KICK`]
    /// with requests still in its ring: kick it again (soon, not in a loop
    /// that a guest could keep busy forever).
    pub fn needs_kick(&self, domid: DomId) -> bool {
        self.conns.get(&domid).is_some_and(|c| c.budget_spent)
    }

    /// Domains whose rings moved (or were reset) since the last call, each
    /// once: the caller signals their ports.
    pub fn take_notifications(&mut self) -> Vec<DomId> {
        core::mem::take(&mut self.notify).into_iter().collect()
    }

    /// Handles one complete message (16-byte header and payload) from an
    /// introduced domain without going through its ring, and returns what
    /// is queued for that domain (the reply, then any events), taking it
    /// out of the queue. Events for other domains stay queued for their
    /// rings. For tests and fuzzing; `kick` uses the same path.
    pub fn handle_message(&mut self, domid: DomId, msg: &[u8]) -> Vec<Vec<u8>> {
        if !self.conns.contains_key(&domid) {
            return Vec::new();
        }
        self.serve(domid, msg);
        let out = self
            .conns
            .get_mut(&domid)
            .map(|c| c.drain_output())
            .unwrap_or_default();
        self.flush_all();
        out
    }

    fn serve(&mut self, dom: DomId, msg: &[u8]) {
        let out = self.process(dom, msg);
        let limit = self.quotas.queued_events;
        if let Some(conn) = self.conns.get_mut(&dom) {
            conn.queue_reply(out.reply);
            if let Some(ev) = out.own_event {
                conn.queue_event(ev, true, limit);
            }
        }
        self.deliver(&out.events);
    }

    fn flush_all(&mut self) {
        for (&dom, conn) in self.conns.iter_mut() {
            let was_broken = conn.broken;
            let mut moved = false;
            conn.flush(&mut moved);
            if moved || conn.broken != was_broken {
                self.notify.insert(dom);
            }
        }
    }

    /// Queues an event for every watch it fires whose domain may read the
    /// node (under one of the event's lists) or its parent.
    fn deliver(&mut self, events: &[Event]) {
        let limit = self.quotas.queued_events;
        for e in events {
            let parent_node = parent(&e.path).and_then(|p| self.tree.get(p));
            let released_at = &self.released_at;
            for (&dom, conn) in self.conns.iter_mut() {
                if conn.broken {
                    continue;
                }
                let caller = Caller::Domain {
                    id: dom,
                    since: since(released_at, dom),
                };
                let may_read = e
                    .perms
                    .iter()
                    .any(|p| allowed(p, e.generation, caller, Access::Read))
                    || parent_node
                        .is_some_and(|n| allowed(&n.perms, n.generation, caller, Access::Read));
                if !may_read {
                    continue;
                }
                let h = home(dom);
                let msgs: Vec<Vec<u8>> = conn
                    .watches
                    .iter()
                    .filter(|w| w.matches(e))
                    .map(|w| {
                        Header::message(
                            ty::WATCH_EVENT,
                            0,
                            0,
                            &event_payload(w.report(&e.path, &h), &w.token),
                        )
                    })
                    .collect();
                for m in msgs {
                    if m.len() > HEADER_LEN + PAYLOAD_MAX {
                        conn.dropped_events = conn.dropped_events.saturating_add(1);
                    } else {
                        conn.queue_event(m, !e.path.starts_with('@'), limit);
                    }
                }
            }
        }
    }

    fn fire_special(&mut self, name: &str) {
        let Some(n) = self.tree.get(name) else {
            return;
        };
        let event = Event::special(name, n.perms.clone(), n.generation);
        self.deliver(&[event]);
    }

    // ---- requests ------------------------------------------------------------

    fn process(&mut self, dom: DomId, msg: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let Some(h) = Header::parse(msg) else {
            let h = Header {
                ty: ty::ERROR,
                req_id: 0,
                tx_id: 0,
                len: 0,
            };
            out.reply = error_reply(&h, Error::EINVAL);
            return out;
        };
        let payload = msg.get(HEADER_LEN..).unwrap_or(&[]);
        let result = if payload.len() != h.len as usize {
            Err(Error::EINVAL)
        } else {
            self.dispatch(dom, &h, payload, &mut out)
        };
        out.reply = match result {
            Ok(p) if p.len() <= PAYLOAD_MAX => Header::message(h.ty, h.req_id, h.tx_id, &p),
            Ok(_) => error_reply(&h, Error::E2BIG),
            Err(e) => {
                out.own_event = None;
                error_reply(&h, e)
            }
        };
        out
    }

    fn dispatch(
        &mut self,
        dom: DomId,
        h: &Header,
        payload: &[u8],
        out: &mut Outcome,
    ) -> Result<Vec<u8>, Error> {
        match h.ty {
            ty::CONTROL
            | ty::INTRODUCE
            | ty::RELEASE
            | ty::IS_DOMAIN_INTRODUCED
            | ty::RESUME
            | ty::SET_TARGET => return Err(Error::EACCES),
            ty::DIRECTORY
            | ty::READ
            | ty::GET_PERMS
            | ty::WATCH
            | ty::UNWATCH
            | ty::TRANSACTION_START
            | ty::TRANSACTION_END
            | ty::GET_DOMAIN_PATH
            | ty::WRITE
            | ty::MKDIR
            | ty::RM
            | ty::SET_PERMS
            | ty::RESET_WATCHES
            | ty::DIRECTORY_PART => {}
            // WATCH_EVENT and ERROR from a client, GET/SET_FEATURE and
            // GET/SET_QUOTA (not in 4.20), and anything unknown.
            _ => return Err(Error::ENOSYS),
        }
        if h.ty == ty::SET_PERMS
            && let Some(owner) = set_perms_owner(payload)
            && owner != 0
            && !self.conns.contains_key(&owner)
        {
            // As C xenstored: a list whose owner is no domain is refused
            // before the node is looked at. Domain 0 is the hypervisor.
            return Err(Error::ENOENT);
        }
        let path_max = self.quotas.path_max;
        let conn = self.conns.get_mut(&dom).ok_or(Error::EIO)?;
        let uses_tx = !matches!(h.ty, ty::WATCH | ty::UNWATCH);
        if uses_tx && h.tx_id != 0 && !conn.transactions.contains_key(&h.tx_id) {
            return Err(Error::ENOENT);
        }
        match h.ty {
            ty::WATCH => {
                let (raw, token) = two_args(payload)?;
                let c = canonicalize(raw, Some(dom), true, path_max)?;
                if conn
                    .watches
                    .iter()
                    .any(|w| w.path == c.path && w.token == token)
                {
                    return Err(Error::EEXIST);
                }
                if conn.watches.len() > self.quotas.watches_per_domain {
                    return Err(Error::E2BIG);
                }
                // `raw` passed canonicalize, so it is UTF-8.
                let given = core::str::from_utf8(raw).unwrap_or("");
                out.own_event = Some(Header::message(
                    ty::WATCH_EVENT,
                    0,
                    0,
                    &event_payload(given, token),
                ));
                conn.watches.push(Watch {
                    path: c.path,
                    token: Vec::from(token),
                    relative: c.relative,
                });
                Ok(ok())
            }
            ty::UNWATCH => {
                let (raw, token) = two_args(payload)?;
                let c = canonicalize(raw, Some(dom), true, path_max)?;
                let i = conn
                    .watches
                    .iter()
                    .position(|w| w.path == c.path && w.token == token)
                    .ok_or(Error::ENOENT)?;
                conn.watches.remove(i);
                Ok(ok())
            }
            ty::RESET_WATCHES => {
                conn.watches.clear();
                conn.transactions.clear();
                Ok(ok())
            }
            ty::TRANSACTION_START => {
                if h.tx_id != 0 {
                    return Err(Error::EBUSY);
                }
                if conn.transactions.len() > self.quotas.transactions_per_domain {
                    return Err(Error::ENOSPC);
                }
                let id = conn.new_tx_id();
                conn.transactions
                    .insert(id, Transaction::new(self.transaction_bytes));
                Ok(format!("{id}\0").into_bytes())
            }
            ty::TRANSACTION_END => {
                let commit = match one_arg(payload) {
                    Some(b"T") => true,
                    Some(b"F") => false,
                    _ => return Err(Error::EINVAL),
                };
                let tx = conn.transactions.remove(&h.tx_id).ok_or(Error::ENOENT)?;
                if commit {
                    out.events = tx.commit(&mut self.tree, dom, self.quotas.nodes_per_domain)?;
                }
                Ok(ok())
            }
            ty::GET_DOMAIN_PATH => {
                let arg = one_arg(payload).ok_or(Error::EINVAL)?;
                let id = parse_decimal_u16(arg).ok_or(Error::EINVAL)?;
                Ok(format!("{}\0", home(id)).into_bytes())
            }
            _ => {
                let caller = Caller::Domain {
                    id: dom,
                    since: conn.since,
                };
                let mut tx = if h.tx_id != 0 {
                    conn.transactions.remove(&h.tx_id)
                } else {
                    None
                };
                let mut view = View::new(
                    &mut self.tree,
                    tx.as_mut(),
                    caller,
                    &self.quotas,
                    &mut out.events,
                );
                let r = node_request(&mut view, dom, h.ty, payload, path_max);
                if let Some(tx) = tx {
                    conn.transactions.insert(h.tx_id, tx);
                }
                r
            }
        }
    }

    // ---- privileged access ---------------------------------------------------

    /// Runs `f` as the hypervisor, then fires the events and flushes.
    fn privileged<R>(
        &mut self,
        f: impl FnOnce(&mut View<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut events = Vec::new();
        let r = {
            let mut view = View::new(
                &mut self.tree,
                None,
                Caller::Hypervisor,
                &self.quotas,
                &mut events,
            );
            f(&mut view)
        };
        self.deliver(&events);
        self.flush_all();
        r
    }

    /// Writes a node as the toolstack (absolute path, parents created; no
    /// quota or permission check; new nodes keep their parent's owner).
    /// Watches fire and output is flushed: call `take_notifications` after.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        let p = canonicalize(path.as_bytes(), None, false, 0)?.path;
        self.privileged(|v| v.write(&p, value))
    }

    /// Writes a node and sets its permission list, as a toolstack writes a
    /// device's nodes (`n<backend>, r<frontend>`). Watches fire for both.
    pub fn write_with_perms(
        &mut self,
        path: &str,
        value: &[u8],
        perms: &[Perm],
    ) -> Result<(), Error> {
        let p = canonicalize(path.as_bytes(), None, false, 0)?.path;
        self.privileged(|v| {
            v.write(&p, value)?;
            v.set_perms(&p, perms)
        })
    }

    /// Creates an empty node (and parents) unless it exists.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let p = canonicalize(path.as_bytes(), None, false, 0)?.path;
        self.privileged(|v| v.mkdir(&p))
    }

    /// A node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        Ok(self.node(path, false)?.value.clone())
    }

    /// A node's children, in creation order.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, Error> {
        Ok(self.node(path, false)?.children.clone())
    }

    /// A node's permission list (`@` names allowed).
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, Error> {
        Ok(self.node(path, true)?.perms.clone())
    }

    /// Replaces a node's permission list (any owner; `@` names allowed).
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let p = canonicalize(path.as_bytes(), None, true, 0)?.path;
        self.privileged(|v| v.set_perms(&p, perms))
    }

    /// Removes a node and its subtree (missing: `OK` if the parent exists).
    pub fn rm(&mut self, path: &str) -> Result<(), Error> {
        let p = canonicalize(path.as_bytes(), None, false, 0)?.path;
        self.privileged(|v| v.rm(&p))
    }

    fn node(&self, path: &str, special: bool) -> Result<&Node, Error> {
        let p = canonicalize(path.as_bytes(), None, special, 0)?.path;
        self.tree.get(&p).ok_or(Error::ENOENT)
    }

    /// `xenstore-ls -fp`-style lines for the node at `path` and its subtree
    /// (`/local/domain/1/name = "domU1"  (n1)`), depth first, children in
    /// creation order; at most `max` lines, then `... N more`.
    pub fn ls(&self, path: &str, max: usize) -> Vec<String> {
        let Ok(start) = canonicalize(path.as_bytes(), None, true, 0) else {
            return vec![format!("{path}: EINVAL")];
        };
        if self.tree.get(&start.path).is_none() {
            return vec![format!("{path}: ENOENT")];
        }
        let mut lines = Vec::new();
        let mut more = 0usize;
        let mut stack = vec![start.path];
        while let Some(p) = stack.pop() {
            let Some(n) = self.tree.get(&p) else {
                continue;
            };
            if lines.len() < max {
                let perms: Vec<String> = n.perms.iter().map(|x| format!("{x}")).collect();
                lines.push(format!(
                    "{p} = \"{}\"  ({})",
                    escape(&n.value),
                    perms.join(",")
                ));
            } else {
                more += 1;
            }
            for c in n.children.iter().rev() {
                stack.push(join(&p, c));
            }
        }
        if more > 0 {
            lines.push(format!("... {more} more"));
        }
        lines
    }
}

#[cfg(test)]
impl<P: RingPage> Xenstore<P> {
    /// See `Tree::assert_consistent`.
    pub(crate) fn assert_consistent(&self) {
        self.tree.assert_consistent();
    }
}

/// A value as `xenstore-ls` shows it: printable ASCII as is, `"` and `\`
/// escaped, other bytes as `\xNN`.
fn escape(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &b in v {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// WATCH/UNWATCH's arguments: exactly two strings (path, token).
fn two_args(payload: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    match strings(payload).as_deref() {
        Some([path, token]) => Ok((path, token)),
        _ => Err(Error::EINVAL),
    }
}

/// The requests that read or change nodes, in or out of a transaction.
/// The owner a well-formed SET_PERMS payload names (`path\0perm\0…`),
/// `None` when the arguments are malformed (the request's own checks
/// answer those).
fn set_perms_owner(payload: &[u8]) -> Option<DomId> {
    let args = strings(payload)?;
    Perm::parse(args.get(1)?).ok().map(|p| p.dom)
}

fn node_request(
    view: &mut View<'_>,
    dom: DomId,
    t: u32,
    payload: &[u8],
    path_max: usize,
) -> Result<Vec<u8>, Error> {
    let canon =
        |raw: &[u8], special: bool| canonicalize(raw, Some(dom), special, path_max).map(|c| c.path);
    let arg = || one_arg(payload).ok_or(Error::EINVAL);
    match t {
        ty::READ => Ok(view
            .get_checked(&canon(arg()?, false)?, Access::Read)?
            .value),
        ty::DIRECTORY => Ok(view
            .get_checked(&canon(arg()?, false)?, Access::Read)?
            .child_list()),
        ty::DIRECTORY_PART => {
            let Some([raw, off]) = strings(payload)
                .as_deref()
                .and_then(|s| <[&[u8]; 2]>::try_from(s).ok())
            else {
                return Err(Error::EINVAL);
            };
            let off = core::str::from_utf8(off)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(Error::EINVAL)?;
            let node = view.get_checked(&canon(raw, false)?, Access::Read)?;
            Ok(directory_part(&node, off))
        }
        ty::GET_PERMS => {
            let node = view.get_checked(&canon(arg()?, true)?, Access::Read)?;
            let mut out = Vec::new();
            for p in &node.perms {
                out.extend_from_slice(format!("{p}\0").as_bytes());
            }
            Ok(out)
        }
        ty::WRITE => {
            let nul = payload.iter().position(|&b| b == 0).ok_or(Error::EINVAL)?;
            let (raw, rest) = payload.split_at(nul);
            let value = rest.get(1..).unwrap_or(&[]);
            view.write(&canon(raw, false)?, value).map(|()| ok())
        }
        ty::MKDIR => view.mkdir(&canon(arg()?, false)?).map(|()| ok()),
        ty::RM => view.rm(&canon(arg()?, false)?).map(|()| ok()),
        ty::SET_PERMS => {
            let args = strings(payload).ok_or(Error::EINVAL)?;
            let Some((raw, perms)) = args.split_first() else {
                return Err(Error::EINVAL);
            };
            if perms.is_empty() {
                return Err(Error::EINVAL);
            }
            let perms = perms
                .iter()
                .map(|p| Perm::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            view.set_perms(&canon(raw, true)?, &perms).map(|()| ok())
        }
        _ => Err(Error::ENOSYS),
    }
}

/// DIRECTORY_PART's reply: the node's generation, then the children list
/// from byte `off`, as much as fits, and an extra NUL when it ends there.
fn directory_part(node: &Node, off: usize) -> Vec<u8> {
    let list = node.child_list();
    let mut out = format!("{}\0", node.generation).into_bytes();
    let Some(rest) = list.get(off..).filter(|r| !r.is_empty()) else {
        out.push(0);
        return out;
    };
    let mut len = 0;
    while let Some(tail) = rest.get(len..).filter(|t| !t.is_empty()) {
        let child = tail
            .iter()
            .position(|&b| b == 0)
            .map_or(tail.len(), |i| i + 1);
        if out.len() + len + child >= PAYLOAD_MAX {
            break;
        }
        len += child;
    }
    out.extend_from_slice(rest.get(..len).unwrap_or(&[]));
    if len == rest.len() {
        out.push(0);
    }
    out
}
