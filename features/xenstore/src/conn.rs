//! A domain's connection: its ring page, the partial request being read,
//! the queue of replies and events not yet in its ring, its watches and
//! transactions.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::view::Transaction;
use crate::watch::Watch;
use crate::wire::{HEADER_LEN, Header, PAYLOAD_MAX, ring};

/// The 4 KiB ring page shared with a guest (`struct
/// xenstore_domain_interface`): `req[1024]` @0, `rsp[1024]` @1024,
/// `req_cons` @2048, `req_prod` @2052, `rsp_cons` @2056, `rsp_prod` @2060,
/// `server_features` @2064, `connection` @2068, `error` @2072,
/// `evtchn_port` @2076. The guest changes it concurrently: the server reads
/// each index once per pass.
///
/// The barrier needed between reading an index and the data (and writing
/// data then the index) is the implementation's business; the server only
/// orders its calls: index, then data, then index.
pub trait RingPage {
    fn load_u32(&self, off: usize) -> u32;
    fn store_u32(&self, off: usize, v: u32);
    /// Copies `out.len()` bytes from offset `off`.
    fn read(&self, off: usize, out: &mut [u8]);
    /// Copies `data` to offset `off`.
    fn write(&self, off: usize, data: &[u8]);
}

/// What the server queued for the guest.
struct Outgoing {
    bytes: Vec<u8>,
    event: bool,
}

/// What reading the request ring gave.
pub(crate) enum Input {
    /// A complete message, header and payload.
    Message(Vec<u8>),
    /// Nothing complete yet.
    Pending,
    /// The guest broke the protocol; the connection is now dead.
    Broken,
}

pub(crate) struct Conn<P> {
    pub page: P,
    /// Store generation when the domain was introduced (see `Caller`).
    pub since: u64,
    input: Vec<u8>,
    output: VecDeque<Outgoing>,
    /// Bytes of the front of `output` already in the ring.
    written: usize,
    /// Replies in `output`.
    pub replies: usize,
    /// Events in `output`.
    events: usize,
    /// Events dropped because `events` had reached its bound.
    pub dropped_events: u64,
    pub watches: Vec<Watch>,
    pub transactions: BTreeMap<u32, Transaction>,
    next_tx: u32,
    /// Set when the guest broke the protocol: nothing is read or written
    /// until it asks for a reset.
    pub broken: bool,
    /// The last kick stopped at its budget with input waiting.
    pub budget_spent: bool,
}

impl<P: crate::RingPage> Conn<P> {
    pub fn new(page: P, since: u64) -> Self {
        Conn {
            page,
            since,
            input: Vec::new(),
            output: VecDeque::new(),
            written: 0,
            replies: 0,
            events: 0,
            dropped_events: 0,
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            next_tx: 1,
            broken: false,
            budget_spent: false,
        }
    }

    /// Drops everything the connection holds besides its page.
    fn discard(&mut self) {
        self.input.clear();
        self.output.clear();
        self.written = 0;
        self.replies = 0;
        self.events = 0;
        self.watches.clear();
        self.transactions.clear();
    }

    /// Stops serving: records `code` in the page's `error` field.
    fn break_with(&mut self, code: u32) {
        self.discard();
        self.broken = true;
        self.page.store_u32(ring::ERROR, code);
    }

    /// The guest's reset request (`connection == 1`): empties both rings
    /// and all state, clears `error`, and reports the ring connected again.
    /// Returns whether a reset was done.
    pub fn reset_if_asked(&mut self) -> bool {
        if self.page.load_u32(ring::CONNECTION) != ring::RECONNECT {
            return false;
        }
        self.discard();
        self.broken = false;
        for off in [
            ring::REQ_CONS,
            ring::REQ_PROD,
            ring::RSP_CONS,
            ring::RSP_PROD,
        ] {
            self.page.store_u32(off, 0);
        }
        self.page.store_u32(ring::ERROR, ring::ERROR_NONE);
        self.page.store_u32(ring::CONNECTION, ring::CONNECTED);
        true
    }

    /// Reads from the request ring until one message is complete or the
    /// ring is empty. Sets `moved` when `req_cons` advanced.
    pub fn read_message(&mut self, moved: &mut bool) -> Input {
        loop {
            let want = if self.input.len() < HEADER_LEN {
                HEADER_LEN
            } else {
                // Checked when the header completed: len <= PAYLOAD_MAX.
                let len = Header::parse(&self.input).map_or(0, |h| h.len as usize);
                HEADER_LEN + len
            };
            let need = want.saturating_sub(self.input.len());
            if need == 0 {
                return Input::Message(core::mem::take(&mut self.input));
            }
            let cons = self.page.load_u32(ring::REQ_CONS);
            let prod = self.page.load_u32(ring::REQ_PROD);
            let avail = prod.wrapping_sub(cons);
            if avail > ring::SIZE {
                self.break_with(ring::ERROR_RINGIDX);
                return Input::Broken;
            }
            if avail == 0 {
                return Input::Pending;
            }
            let at = (cons % ring::SIZE) as usize;
            let chunk = need.min(avail as usize).min(ring::SIZE as usize - at);
            let start = self.input.len();
            self.input.resize(start + chunk, 0);
            if let Some(dst) = self.input.get_mut(start..) {
                self.page.read(ring::REQ + at, dst);
            }
            // chunk <= 1024, so the cast is exact.
            self.page
                .store_u32(ring::REQ_CONS, cons.wrapping_add(chunk as u32));
            *moved = true;
            if start < HEADER_LEN && self.input.len() >= HEADER_LEN {
                let too_long =
                    Header::parse(&self.input).is_none_or(|h| h.len as usize > PAYLOAD_MAX);
                if too_long {
                    self.break_with(ring::ERROR_PROTO);
                    return Input::Broken;
                }
            }
        }
    }

    /// Queues a reply (always: replies are bounded by back-pressure).
    pub fn queue_reply(&mut self, msg: Vec<u8>) {
        self.replies += 1;
        self.output.push_back(Outgoing {
            bytes: msg,
            event: false,
        });
    }

    /// Queues a watch event unless an identical one is queued and not yet
    /// started (`dedup`), or `limit` events are already queued (then it is
    /// dropped and counted).
    pub fn queue_event(&mut self, msg: Vec<u8>, dedup: bool, limit: usize) {
        if self.broken {
            return;
        }
        if dedup {
            let skip = usize::from(self.written > 0);
            if self
                .output
                .iter()
                .skip(skip)
                .any(|o| o.event && o.bytes == msg)
            {
                return;
            }
        }
        if self.events >= limit {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        self.events += 1;
        self.output.push_back(Outgoing {
            bytes: msg,
            event: true,
        });
    }

    /// Copies queued output into the response ring as space allows. Sets
    /// `moved` when `rsp_prod` advanced.
    pub fn flush(&mut self, moved: &mut bool) {
        if self.broken {
            return;
        }
        while let Some(front) = self.output.front() {
            let cons = self.page.load_u32(ring::RSP_CONS);
            let prod = self.page.load_u32(ring::RSP_PROD);
            let used = prod.wrapping_sub(cons);
            if used > ring::SIZE {
                self.break_with(ring::ERROR_RINGIDX);
                return;
            }
            let space = (ring::SIZE - used) as usize;
            if space == 0 {
                return;
            }
            let at = (prod % ring::SIZE) as usize;
            let rest = front.bytes.get(self.written..).unwrap_or(&[]);
            let chunk = rest.len().min(space).min(ring::SIZE as usize - at);
            if let Some(data) = rest.get(..chunk) {
                self.page.write(ring::RSP + at, data);
            }
            self.page
                .store_u32(ring::RSP_PROD, prod.wrapping_add(chunk as u32));
            if chunk > 0 {
                *moved = true;
            }
            self.written += chunk;
            if self.written >= front.bytes.len() {
                let event = front.event;
                self.output.pop_front();
                self.written = 0;
                if event {
                    self.events = self.events.saturating_sub(1);
                } else {
                    self.replies = self.replies.saturating_sub(1);
                }
            }
        }
    }

    /// Takes everything queued, for callers that do not use the ring.
    pub fn drain_output(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.output.len());
        let skip = self.written;
        for (i, o) in self.output.drain(..).enumerate() {
            let bytes = if i == 0 && skip > 0 {
                o.bytes.get(skip..).unwrap_or(&[]).to_vec()
            } else {
                o.bytes
            };
            out.push(bytes);
        }
        self.written = 0;
        self.replies = 0;
        self.events = 0;
        out
    }

    /// Whether request bytes are waiting in the ring.
    pub fn input_waiting(&self) -> bool {
        let cons = self.page.load_u32(ring::REQ_CONS);
        let prod = self.page.load_u32(ring::REQ_PROD);
        !self.broken && prod != cons
    }

    /// A fresh transaction ID: never 0, never one that is open.
    pub fn new_tx_id(&mut self) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1);
            if id != 0 && !self.transactions.contains_key(&id) {
                return id;
            }
        }
    }
}
