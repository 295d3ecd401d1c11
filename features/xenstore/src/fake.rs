//! Test doubles: a ring page in host memory and a guest-side client that
//! writes requests into it and reads replies and events out.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::wire::{HEADER_LEN, Header, ring, ty};
use crate::{DomId, DomainInfo, Error, Quotas, RingPage, Xenstore};

/// A 4 KiB ring page; clones share the memory, as the guest's and the
/// server's mappings do. The second field is the guest's reader buffer.
#[derive(Clone)]
pub struct FakePage(Rc<RefCell<[u8; 4096]>>, Rc<RefCell<Vec<u8>>>);

impl FakePage {
    pub fn new() -> Self {
        FakePage(
            Rc::new(RefCell::new([0; 4096])),
            Rc::new(RefCell::new(Vec::new())),
        )
    }
}

impl RingPage for FakePage {
    fn load_u32(&self, off: usize) -> u32 {
        let b = self.0.borrow();
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
}

/// A message as the guest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Msg {
    /// The payload as text (for asserts).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The error name of an `XS_ERROR` reply.
    pub fn error(&self) -> Option<String> {
        (self.ty == ty::ERROR).then(|| self.text().trim_end_matches('\0').into())
    }
}

/// The guest's side of one ring.
impl FakePage {
    /// Bytes the guest can still put in the request ring.
    pub fn req_space(&self) -> usize {
        let used = self
            .load_u32(ring::REQ_PROD)
            .wrapping_sub(self.load_u32(ring::REQ_CONS));
        1024 - used as usize
    }

    /// Appends raw bytes to the request ring (must fit).
    pub fn push_raw(&self, bytes: &[u8]) {
        assert!(bytes.len() <= self.req_space(), "request ring full");
        let mut prod = self.load_u32(ring::REQ_PROD);
        for &b in bytes {
            self.write(ring::REQ + (prod % 1024) as usize, &[b]);
            prod = prod.wrapping_add(1);
        }
        self.store_u32(ring::REQ_PROD, prod);
    }

    /// Appends one request.
    pub fn send(&self, t: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        self.push_raw(&Header::message(t, req_id, tx_id, payload));
    }

    /// Bytes waiting in the response ring.
    pub fn rsp_pending(&self) -> usize {
        self.load_u32(ring::RSP_PROD)
            .wrapping_sub(self.load_u32(ring::RSP_CONS)) as usize
    }

    /// Takes everything from the response ring, as Linux's reader does
    /// (messages longer than the ring arrive in pieces), and returns the
    /// messages now complete.
    pub fn recv(&self) -> Vec<Msg> {
        let cons = self.load_u32(ring::RSP_CONS);
        let avail = self.rsp_pending();
        let mut inbox = self.1.borrow_mut();
        for i in 0..avail {
            let mut b = [0];
            self.read(
                ring::RSP + (cons.wrapping_add(i as u32) % 1024) as usize,
                &mut b,
            );
            inbox.push(b[0]);
        }
        self.store_u32(ring::RSP_CONS, cons.wrapping_add(avail as u32));
        let mut out = Vec::new();
        while let Some(h) = Header::parse(&inbox) {
            let total = HEADER_LEN + h.len as usize;
            if inbox.len() < total {
                break;
            }
            let payload = inbox[HEADER_LEN..total].to_vec();
            inbox.drain(..total);
            out.push(Msg {
                ty: h.ty,
                req_id: h.req_id,
                tx_id: h.tx_id,
                payload,
            });
        }
        out
    }
}

/// A server with guests 1 and 2 introduced.
pub struct World {
    pub xs: Xenstore<FakePage>,
    pub pages: Vec<(DomId, FakePage)>,
    next_req: u32,
    stash: Vec<(DomId, (String, String))>,
}

pub fn info(domid: DomId) -> DomainInfo<'static> {
    let name = match domid {
        1 => "domU1",
        2 => "domU2",
        _ => "domU",
    };
    DomainInfo {
        domid,
        name,
        memory_kib: 262144,
        vcpus: 1,
        port: 1,
        ring_gfn: 0x39001,
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_quotas(Quotas::default())
    }

    pub fn with_quotas(q: Quotas) -> Self {
        let mut w = World {
            xs: Xenstore::new(q),
            pages: Vec::new(),
            next_req: 1,
            stash: Vec::new(),
        };
        w.introduce(1);
        w.introduce(2);
        w.xs.take_notifications();
        w
    }

    pub fn introduce(&mut self, dom: DomId) {
        let page = FakePage::new();
        self.xs.introduce_domain(&info(dom), page.clone()).unwrap();
        self.pages.retain(|(d, _)| *d != dom);
        self.pages.push((dom, page));
    }

    pub fn page(&self, dom: DomId) -> FakePage {
        self.pages
            .iter()
            .find(|(d, _)| *d == dom)
            .unwrap()
            .1
            .clone()
    }

    /// Sends one request (in pieces if it does not fit, kicking between
    /// them), kicks until its reply has arrived, and returns everything
    /// read from the domain's response ring. Events that arrive with the
    /// reply of anything but a WATCH are kept for [`World::events`].
    pub fn req(&mut self, dom: DomId, t: u32, tx: u32, payload: &[u8]) -> Vec<Msg> {
        let id = self.next_req;
        self.next_req += 1;
        let page = self.page(dom);
        let msg = Header::message(t, id, tx, payload);
        let mut msgs = Vec::new();
        let mut sent = 0;
        while sent < msg.len() {
            let n = page.req_space().min(msg.len() - sent);
            page.push_raw(&msg[sent..sent + n]);
            sent += n;
            self.xs.kick(dom);
            msgs.extend(page.recv());
        }
        for _ in 0..20 {
            if msgs
                .iter()
                .any(|m| m.req_id == id && m.ty != ty::WATCH_EVENT)
            {
                break;
            }
            self.xs.kick(dom);
            msgs.extend(page.recv());
        }
        assert!(
            msgs.iter()
                .any(|m| m.req_id == id && m.ty != ty::WATCH_EVENT),
            "no reply to {t}"
        );
        if t != ty::WATCH {
            self.stash.extend(
                msgs.iter()
                    .filter(|m| m.ty == ty::WATCH_EVENT)
                    .map(|m| (dom, event_of(m))),
            );
        }
        msgs
    }

    /// Registers a watch and drops its immediate event.
    pub fn watch(&mut self, dom: DomId, path: &str, token: &str) {
        let m = self.req(dom, ty::WATCH, 0, &zs(&[path, token]));
        assert_eq!(m[0].payload, b"OK\0", "watch {path}");
        for _ in 0..3 {
            self.xs.kick(dom);
            self.page(dom).recv();
        }
    }

    /// The reply alone (events dropped).
    pub fn call(&mut self, dom: DomId, t: u32, tx: u32, payload: &[u8]) -> Msg {
        self.req(dom, t, tx, payload)
            .into_iter()
            .find(|m| m.ty != ty::WATCH_EVENT)
            .unwrap()
    }

    /// A call that must succeed; returns the reply payload.
    pub fn ok(&mut self, dom: DomId, t: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
        let m = self.call(dom, t, tx, payload);
        assert_eq!(
            m.ty,
            t,
            "type {t} {:?} failed: {}",
            String::from_utf8_lossy(payload),
            m.text()
        );
        m.payload
    }

    /// A call that must fail with `e`.
    pub fn err(&mut self, dom: DomId, t: u32, tx: u32, payload: &[u8], e: Error) {
        let m = self.call(dom, t, tx, payload);
        assert_eq!(
            m.error().as_deref(),
            Some(e.name()),
            "type {t} {:?}",
            String::from_utf8_lossy(payload)
        );
    }

    pub fn read(&mut self, dom: DomId, path: &str) -> Result<String, String> {
        let m = self.call(dom, ty::READ, 0, &z(path));
        match m.error() {
            Some(e) => Err(e),
            None => Ok(m.text()),
        }
    }

    pub fn write(&mut self, dom: DomId, path: &str, value: &str) -> Result<(), String> {
        let m = self.call(dom, ty::WRITE, 0, &wv(path, value));
        m.error().map_or(Ok(()), Err)
    }

    /// Events for the domain seen with earlier replies, then those waiting
    /// in its ring, as (path, token).
    pub fn events(&mut self, dom: DomId) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .stash
            .iter()
            .filter(|(d, _)| *d == dom)
            .map(|(_, e)| e.clone())
            .collect();
        self.stash.retain(|(d, _)| *d != dom);
        // Long events arrive over several ring-fulls.
        for _ in 0..8 {
            self.xs.kick(dom);
            let got = self.page(dom).recv();
            out.extend(got.iter().filter(|m| m.ty == ty::WATCH_EVENT).map(event_of));
        }
        out
    }
}

fn event_of(m: &Msg) -> (String, String) {
    let t = m.text();
    let mut it = t.split('\0');
    (
        it.next().unwrap_or("").into(),
        it.next().unwrap_or("").into(),
    )
}

/// `s\0`.
pub fn z(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

/// `a\0b\0...`.
pub fn zs(parts: &[&str]) -> Vec<u8> {
    parts.iter().flat_map(|p| z(p)).collect()
}

/// WRITE's payload: `path\0value`.
pub fn wv(path: &str, value: &str) -> Vec<u8> {
    let mut v = z(path);
    v.extend_from_slice(value.as_bytes());
    v
}
