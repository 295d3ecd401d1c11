//! A xenstore client on the shared ring page (`xenstore_domain_interface`,
//! spec xen-dom0less.md §4.2–4.3): requests go into `req`, replies and
//! watch events come out of `rsp`, both free-running byte rings of 1024
//! bytes, and every step is signalled on the store event channel.
//!
//! The MMU is off, so the page is Device memory to the guest: it is only
//! touched with single aligned 32-bit or byte accesses ([`Shared`]).
//! Every wait sleeps in WFI for the store port's event with the virtual
//! timer armed ([`xen::wait_event`]), so a lost event is a reported
//! timeout, never a hang; data that arrives without its event is reported
//! as such.

use core::fmt;
use core::sync::atomic::{Ordering, fence};

use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch::{self, ms};
use crate::xen::{self, Shared};

/// Where every domain with `xen,enhanced = "enabled"` finds its page.
pub const RING_PFN: u64 = 0x39001;
pub const RING_GPA: usize = 0x3900_1000;

/// The page's layout.
pub const REQ: usize = 0;
pub const RSP: usize = 1024;
pub const REQ_CONS: usize = 2048;
pub const REQ_PROD: usize = 2052;
pub const RSP_CONS: usize = 2056;
pub const RSP_PROD: usize = 2060;
pub const SERVER_FEATURES: usize = 2064;
pub const CONNECTION: usize = 2068;
pub const ERROR: usize = 2072;
const RING_SIZE: u32 = 1024;

/// The largest payload either way.
pub const PAYLOAD_MAX: usize = 4096;

/// Message types (`xsd_sockmsg_type`).
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
}

/// Longest wait for a reply.
pub const WAIT_MS: u64 = 3000;

/// Bytes built in place, for paths and payloads: the guest has no heap.
pub struct Bytes<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Bytes<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn push(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for Bytes<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// A path or value from format arguments: `bytes!("data/{i}")`.
#[macro_export]
macro_rules! bytes {
    ($($arg:tt)*) => {{
        let mut b = $crate::xs::Bytes::<256>::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        b
    }};
}

/// Bytes for a failure message: printable ASCII as is, NUL as `\0`,
/// the rest as `\xNN`, cut after 60 bytes.
pub fn show(b: &[u8]) -> Msg {
    let mut m = Msg::new();
    for (i, &c) in b.iter().enumerate() {
        if i == 60 {
            let _ = fmt::Write::write_fmt(&mut m, format_args!("…(+{})", b.len() - 60));
            break;
        }
        let _ = match c {
            0 => fmt::Write::write_str(&mut m, "\\0"),
            0x20..=0x7e => fmt::Write::write_char(&mut m, c as char),
            _ => fmt::Write::write_fmt(&mut m, format_args!("\\x{c:02x}")),
        };
    }
    m
}

/// The NUL-terminated strings of a payload (a final unterminated piece
/// counts as one too); `None` past the last.
pub fn strings(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let b = b.strip_suffix(b"\0").unwrap_or(b);
    let mut rest = Some(b);
    core::iter::from_fn(move || {
        let r = rest?;
        match r.iter().position(|&c| c == 0) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
    .filter(move |_| !b.is_empty())
}

/// How much of a reply's payload is kept.
const BODY_CAP: usize = 512;

/// One message from the server.
pub struct Reply {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    /// The payload's length as the header says.
    pub len: usize,
    buf: [u8; BODY_CAP],
}

impl Reply {
    /// The payload (its first [`BODY_CAP`] bytes).
    pub fn body(&self) -> &[u8] {
        &self.buf[..self.len.min(BODY_CAP)]
    }

    pub fn truncated(&self) -> bool {
        self.len > BODY_CAP
    }

    /// The error name of an `XS_ERROR` reply.
    pub fn error(&self) -> Option<&[u8]> {
        (self.ty == ty::ERROR).then(|| self.body().strip_suffix(b"\0").unwrap_or(self.body()))
    }

    /// What the reply was, for a failure message.
    pub fn describe(&self) -> Msg {
        match self.error() {
            Some(e) => msg!("error {}", show(e)),
            None => msg!("type {} \"{}\"", self.ty, show(self.body())),
        }
    }

    /// `OK\0`.
    pub fn ok(&self, what: impl fmt::Display) -> Result<(), Msg> {
        if self.error().is_none() && self.body() == b"OK\0" {
            return Ok(());
        }
        Err(msg!("{what}: {}, expected OK", self.describe()))
    }

    /// An `XS_ERROR` reply naming `name`.
    pub fn err(&self, name: &str, what: impl fmt::Display) -> Result<(), Msg> {
        if self.error() == Some(name.as_bytes()) {
            return Ok(());
        }
        Err(msg!("{what}: {}, expected {name}", self.describe()))
    }

    /// The payload of a reply that is not an error.
    pub fn value(&self, what: impl fmt::Display) -> Result<&[u8], Msg> {
        match self.error() {
            Some(e) => Err(msg!("{what}: error {}", show(e))),
            None => Ok(self.body()),
        }
    }

    /// A reply that is not an error and carries exactly `want`.
    pub fn is(&self, want: &[u8], what: impl fmt::Display) -> Result<(), Msg> {
        let v = self.value(&what)?;
        if v == want {
            return Ok(());
        }
        Err(msg!("{what}: \"{}\", expected \"{}\"", show(v), show(want)))
    }
}

/// A watch event as it came: exactly `path\0token\0` is checked by
/// [`Event::parts`].
pub struct Event {
    raw: Bytes<200>,
    req_id: u32,
    tx_id: u32,
}

impl Event {
    pub fn raw(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// `(path, token)` when the payload is exactly two NUL-terminated
    /// strings and the header's IDs are 0.
    pub fn parts(&self) -> Result<(&[u8], &[u8]), Msg> {
        let b = self.raw();
        if self.req_id != 0 || self.tx_id != 0 {
            return Err(msg!(
                "watch event \"{}\" has req_id {} tx_id {}, expected 0 and 0",
                show(b),
                self.req_id,
                self.tx_id
            ));
        }
        let nuls = b.iter().filter(|&&c| c == 0).count();
        if nuls != 2 || b.last() != Some(&0) {
            return Err(msg!(
                "watch event payload \"{}\" is not exactly path\\0token\\0",
                show(b)
            ));
        }
        let mut it = strings(b);
        Ok((it.next().unwrap_or(&[]), it.next().unwrap_or(&[])))
    }

    /// Fails unless this is `path` with `token`.
    pub fn is(&self, path: &[u8], token: &[u8], what: impl fmt::Display) -> Result<(), Msg> {
        let (p, t) = self.parts()?;
        if p == path && t == token {
            return Ok(());
        }
        Err(msg!(
            "{what}: event \"{}\", expected \"{}\\0{}\\0\"",
            show(self.raw()),
            show(path),
            show(token)
        ))
    }
}

const EVENTS: usize = 8;

/// The client: the page, the store port, the next request ID, and the
/// watch events that arrived while a reply was awaited.
pub struct Xs {
    pub page: Shared,
    pub port: u32,
    next_id: u32,
    events: [Option<Event>; EVENTS],
    /// Events dropped because the queue was full.
    pub dropped: u32,
}

/// How a wait ended badly.
fn waited(what: &str, port: u32, arrived: bool, timeout: u64) -> Msg {
    if arrived {
        msg!("{what}: it is on the ring but store port {port} was never signalled")
    } else {
        msg!(
            "{what}: nothing within {} ms (store port {port}: {})",
            timeout / ms(1).max(1),
            xen::describe(port)
        )
    }
}

impl Xs {
    pub fn new(port: u32) -> Self {
        Self {
            page: Shared(RING_GPA),
            port,
            next_id: 1,
            events: [const { None }; EVENTS],
            dropped: 0,
        }
    }

    /// Signals the server.
    pub fn notify(&self) -> Result<(), Msg> {
        match xen::send(self.port) {
            0 => Ok(()),
            r => Err(msg!("EVTCHNOP_send(store port {}) returned {r}", self.port)),
        }
    }

    /// Sleeps on the store port until `cond` holds, `timeout` ticks at
    /// most. Data that is there without its event fails too.
    pub fn wait(
        &self,
        timeout: u64,
        what: &str,
        mut cond: impl FnMut(Shared) -> bool,
    ) -> Result<(), Msg> {
        let start = arch::ticks();
        loop {
            fence(Ordering::SeqCst);
            if cond(self.page) {
                return Ok(());
            }
            let spent = arch::ticks().wrapping_sub(start);
            if spent >= timeout || !xen::wait_event(self.port, timeout - spent) {
                fence(Ordering::SeqCst);
                return Err(waited(what, self.port, cond(self.page), timeout));
            }
        }
    }

    /// Like [`Xs::wait`] but a timeout is the expected outcome: whether
    /// `cond` came true within `timeout` ticks.
    pub fn came(&self, timeout: u64, mut cond: impl FnMut(Shared) -> bool) -> bool {
        let start = arch::ticks();
        loop {
            fence(Ordering::SeqCst);
            if cond(self.page) {
                return true;
            }
            let spent = arch::ticks().wrapping_sub(start);
            if spent >= timeout || !xen::wait_event(self.port, timeout - spent) {
                fence(Ordering::SeqCst);
                return cond(self.page);
            }
        }
    }

    /// Copies `bytes` into the request ring from `prod`, publishing and
    /// signalling whenever the ring is full.
    fn put(&self, prod: &mut u32, bytes: &[u8]) -> Result<(), Msg> {
        for &b in bytes {
            let cons = self.page.r32(REQ_CONS);
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(msg!(
                    "req_cons {cons:#x} is more than a ring behind req_prod {prod:#x}"
                ));
            }
            if used == RING_SIZE {
                self.publish(*prod)?;
                let p = *prod;
                self.wait(ms(WAIT_MS), "room in the request ring", |pg| {
                    p.wrapping_sub(pg.r32(REQ_CONS)) < RING_SIZE
                })?;
            }
            self.page.w8(REQ + (*prod % RING_SIZE) as usize, b);
            *prod = prod.wrapping_add(1);
        }
        Ok(())
    }

    fn publish(&self, prod: u32) -> Result<(), Msg> {
        fence(Ordering::SeqCst);
        self.page.w32(REQ_PROD, prod);
        fence(Ordering::SeqCst);
        self.notify()
    }

    /// Puts raw bytes on the request ring, publishes them and signals.
    pub fn raw(&self, bytes: &[u8]) -> Result<(), Msg> {
        let mut prod = self.page.r32(REQ_PROD);
        self.put(&mut prod, bytes)?;
        self.publish(prod)
    }

    /// A header for a request.
    pub fn header(ty: u32, req_id: u32, tx: u32, len: usize) -> [u8; 16] {
        let mut h = [0u8; 16];
        for (i, v) in [ty, req_id, tx, len as u32].into_iter().enumerate() {
            h[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    /// A fresh request ID.
    pub fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends one request made of `parts` (the payload's pieces, in order)
    /// without waiting; its request ID.
    pub fn send(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<u32, Msg> {
        let mut prod = self.page.r32(REQ_PROD);
        let id = self.stage(&mut prod, ty, tx, parts)?;
        self.publish(prod)?;
        Ok(id)
    }

    /// Writes one request at `prod` without publishing it (unless the
    /// ring fills); its request ID. [`Xs::publish_all`] sends what was
    /// staged.
    pub fn stage(&mut self, prod: &mut u32, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<u32, Msg> {
        let id = self.id();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.put(prod, &Self::header(ty, id, tx, len))?;
        for p in parts {
            self.put(prod, p)?;
        }
        Ok(id)
    }

    /// Publishes everything staged up to `prod` and signals once.
    pub fn publish_all(&self, prod: u32) -> Result<(), Msg> {
        self.publish(prod)
    }

    /// Takes `n` bytes off the response ring, giving each to `f`.
    fn take(
        &self,
        n: usize,
        timeout: u64,
        what: &str,
        mut f: impl FnMut(usize, u8),
    ) -> Result<(), Msg> {
        let mut got = 0;
        while got < n {
            self.wait(timeout, what, |p| p.r32(RSP_PROD) != p.r32(RSP_CONS))?;
            let (prod, cons) = (self.page.r32(RSP_PROD), self.page.r32(RSP_CONS));
            let avail = prod.wrapping_sub(cons);
            if avail > RING_SIZE {
                return Err(msg!(
                    "rsp_prod {prod:#x} is more than a ring ahead of rsp_cons {cons:#x}"
                ));
            }
            let k = (avail as usize).min(n - got);
            for i in 0..k {
                let at = RSP + (cons.wrapping_add(i as u32) % RING_SIZE) as usize;
                f(got + i, self.page.r8(at));
            }
            fence(Ordering::SeqCst);
            self.page.w32(RSP_CONS, cons.wrapping_add(k as u32));
            fence(Ordering::SeqCst);
            got += k;
            // As Linux does: the server is told only when it may be
            // waiting for room.
            if avail == RING_SIZE {
                self.notify()?;
            }
        }
        Ok(())
    }

    /// The next message, whatever it is.
    pub fn recv(&self, timeout: u64) -> Result<Reply, Msg> {
        let mut h = [0u8; 16];
        self.take(16, timeout, "a message header", |i, b| h[i] = b)?;
        let word =
            |i: usize| u32::from_le_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]]);
        let len = word(3) as usize;
        if len > PAYLOAD_MAX {
            return Err(msg!(
                "the server sent a header (type {}, req_id {}) with len {len} > 4096",
                word(0),
                word(1)
            ));
        }
        let mut r = Reply {
            ty: word(0),
            req_id: word(1),
            tx_id: word(2),
            len,
            buf: [0; BODY_CAP],
        };
        self.take(len, timeout, "a message body", |i, b| {
            if i < BODY_CAP {
                r.buf[i] = b;
            }
        })?;
        Ok(r)
    }

    fn queue(&mut self, r: &Reply) {
        let mut raw = Bytes::<200>::new();
        raw.push(r.body());
        let e = Event {
            raw,
            req_id: r.req_id,
            tx_id: r.tx_id,
        };
        match self.events.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(e),
            None => {
                self.events.rotate_left(1);
                self.events[EVENTS - 1] = Some(e);
                self.dropped += 1;
            }
        }
    }

    /// Waits for the reply to request `id` of type `ty`, queueing the
    /// watch events that come first.
    pub fn reply(&mut self, ty: u32, id: u32, tx: u32) -> Result<Reply, Msg> {
        loop {
            let r = self.recv(ms(WAIT_MS))?;
            if r.ty == ty::WATCH_EVENT {
                self.queue(&r);
                continue;
            }
            if r.req_id != id {
                return Err(msg!(
                    "a reply ({}) for req_id {} while waiting for {id}",
                    r.describe(),
                    r.req_id
                ));
            }
            if r.ty != ty && r.ty != ty::ERROR {
                return Err(msg!("a reply of type {} to a request of type {ty}", r.ty));
            }
            if r.tx_id != tx {
                return Err(msg!("a reply with tx_id {}, expected {tx}", r.tx_id));
            }
            return Ok(r);
        }
    }

    /// One request and its reply.
    pub fn request(&mut self, ty: u32, tx: u32, parts: &[&[u8]]) -> Result<Reply, Msg> {
        let id = self.send(ty, tx, parts)?;
        self.reply(ty, id, tx)
    }

    pub fn read(&mut self, tx: u32, path: &[u8]) -> Result<Reply, Msg> {
        self.request(ty::READ, tx, &[path, b"\0"])
    }

    pub fn write(&mut self, tx: u32, path: &[u8], value: &[u8]) -> Result<Reply, Msg> {
        self.request(ty::WRITE, tx, &[path, b"\0", value])
    }

    /// One path argument (`MKDIR`, `RM`, `DIRECTORY`, `GET_PERMS`).
    pub fn one(&mut self, ty: u32, tx: u32, path: &[u8]) -> Result<Reply, Msg> {
        self.request(ty, tx, &[path, b"\0"])
    }

    /// `SET_PERMS path\0` + `perms` (already NUL-separated).
    pub fn set_perms(&mut self, tx: u32, path: &[u8], perms: &[u8]) -> Result<Reply, Msg> {
        self.request(ty::SET_PERMS, tx, &[path, b"\0", perms])
    }

    pub fn watch(&mut self, path: &[u8], token: &[u8]) -> Result<Reply, Msg> {
        self.request(ty::WATCH, 0, &[path, b"\0", token, b"\0"])
    }

    pub fn unwatch(&mut self, path: &[u8], token: &[u8]) -> Result<Reply, Msg> {
        self.request(ty::UNWATCH, 0, &[path, b"\0", token, b"\0"])
    }

    /// `WRITE` that must answer `OK`.
    pub fn put_ok(&mut self, path: &[u8], value: &[u8]) -> Result<(), Msg> {
        let r = self.write(0, path, value)?;
        r.ok(&msg!("WRITE {}", show(path)))
    }

    /// `RM` that must answer `OK`.
    pub fn rm_ok(&mut self, path: &[u8]) -> Result<(), Msg> {
        let r = self.one(ty::RM, 0, path)?;
        r.ok(&msg!("RM {}", show(path)))
    }

    /// `TRANSACTION_START`: the new ID.
    pub fn start(&mut self) -> Result<u32, Msg> {
        let r = self.request(ty::TRANSACTION_START, 0, &[b"\0"])?;
        let v = r.value("TRANSACTION_START")?;
        let digits = v.strip_suffix(b"\0").unwrap_or(&[]);
        let id = core::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|&i| i != 0);
        id.ok_or_else(|| {
            msg!(
                "TRANSACTION_START answered \"{}\", expected a decimal ID other than 0, NUL-terminated",
                show(v)
            )
        })
    }

    /// `TRANSACTION_END` with `T` (commit) or `F`.
    pub fn end(&mut self, tx: u32, commit: bool) -> Result<Reply, Msg> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(ty::TRANSACTION_END, tx, &[arg])
    }

    /// The next watch event: queued, or off the ring within `timeout`.
    pub fn event(&mut self, timeout: u64) -> Result<Event, Msg> {
        if let Some(e) = self.events[0].take() {
            self.events.rotate_left(1);
            return Ok(e);
        }
        let r = self.recv(timeout)?;
        if r.ty != ty::WATCH_EVENT {
            return Err(msg!(
                "waiting for a watch event, got {} (req_id {})",
                r.describe(),
                r.req_id
            ));
        }
        self.queue(&r);
        self.event(0)
    }

    /// Whether an event comes within `timeout`; `Some` with it.
    pub fn maybe_event(&mut self, timeout: u64) -> Result<Option<Event>, Msg> {
        if self.events[0].is_some() {
            return self.event(0).map(Some);
        }
        if !self.came(timeout, |p| p.r32(RSP_PROD) != p.r32(RSP_CONS)) {
            return Ok(None);
        }
        self.event(ms(WAIT_MS)).map(Some)
    }

    /// Forgets queued events and takes every event the server sends within
    /// `quiet` ticks of the last; how many.
    pub fn drain(&mut self, quiet: u64) -> Result<u32, Msg> {
        let mut n = 0;
        for e in self.events.iter_mut() {
            if e.take().is_some() {
                n += 1;
            }
        }
        while self.maybe_event(quiet)?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}
