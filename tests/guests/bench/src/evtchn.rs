//! One event-channel port, polled: set up under the 2-level or the FIFO
//! ABI, kept **masked** so the hypervisor only marks it pending (no upcall,
//! no interrupt), and the ping-pong between two domains built on it.
//!
//! Polling a masked port keeps the loop free of interrupt handling, so it
//! times exactly `EVTCHNOP_send` and the pending bit reaching the other
//! domain's memory.

use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;
use oxen_guest_common::xen::{FIFO_MASKED, FIFO_PENDING, Page, SI_MASK, SI_PENDING, Shared};

use crate::{arch, xen};

/// The guest pages the hypervisor maps over or reads.
static SHARED_INFO: Page = Page::new();
static FIFO_CONTROL: Page = Page::new();
static FIFO_ARRAY: Page = Page::new();

/// The event-channel ABI to set up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    TwoLevel,
    Fifo,
}

impl Abi {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "2l" => Some(Self::TwoLevel),
            "fifo" => Some(Self::Fifo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::TwoLevel => "2l",
            Self::Fifo => "fifo",
        }
    }
}

/// A masked port whose pending bit is polled.
pub struct Port {
    abi: Abi,
    port: u32,
}

impl Port {
    /// Sets up `abi` and masks `port` (below 64 for the 2-level ABI and
    /// below 1024 for FIFO, which has one page of event words).
    pub fn setup(abi: Abi, port: u32) -> Result<Self, Msg> {
        match abi {
            Abi::TwoLevel => {
                if port >= 64 {
                    return Err(msg!("port {port}: only ports below 64 are supported"));
                }
                xen::map_shared_info(SHARED_INFO.gfn())
                    .map_err(|e| msg!("add_to_physmap(shared_info) failed: {e}"))?;
                let si = Shared::of(&SHARED_INFO);
                si.w64(SI_MASK, si.r64(SI_MASK) | 1 << port);
            }
            Abi::Fifo => {
                if port >= 1024 {
                    return Err(msg!("port {port}: only ports below 1024 are supported"));
                }
                // Every event word starts masked, as Linux hands its pages over.
                let words = Shared::of(&FIFO_ARRAY);
                for i in 0..1024 {
                    words.w32(4 * i, FIFO_MASKED);
                }
                xen::fifo_init_control(FIFO_CONTROL.gfn())
                    .map_err(|e| msg!("EVTCHNOP_init_control failed: {e}"))?;
                xen::fifo_expand_array(FIFO_ARRAY.gfn())
                    .map_err(|e| msg!("EVTCHNOP_expand_array failed: {e}"))?;
            }
        }
        Ok(Self { abi, port })
    }

    /// The page and offset of the word that holds the port's pending bit.
    fn word(&self) -> (Shared, usize) {
        match self.abi {
            Abi::TwoLevel => (
                Shared::of(&SHARED_INFO),
                SI_PENDING + 8 * (self.port as usize / 64),
            ),
            Abi::Fifo => (Shared::of(&FIFO_ARRAY), 4 * self.port as usize),
        }
    }

    pub fn pending(&self) -> bool {
        let (page, at) = self.word();
        match self.abi {
            Abi::TwoLevel => page.r64(at) & 1 << (self.port % 64) != 0,
            Abi::Fifo => page.r32(at) & FIFO_PENDING != 0,
        }
    }

    /// Clears the pending bit. The peer only sends again after this side
    /// answered, so no event can arrive between the read and the write.
    pub fn clear(&self) {
        let (page, at) = self.word();
        match self.abi {
            Abi::TwoLevel => page.w64(at, page.r64(at) & !(1 << (self.port % 64))),
            Abi::Fifo => page.w32(at, FIFO_MASKED),
        }
    }

    pub fn send(&self) -> Result<(), Msg> {
        xen::evtchn_send(self.port)
            .map(|_| ())
            .map_err(|e| msg!("EVTCHNOP_send({}) failed: {e}", self.port))
    }

    /// Polls until the port is pending or `timeout` ticks pass; whether it
    /// became pending. Clears it when it did.
    pub fn wait(&self, timeout: u64) -> bool {
        let start = arch::ticks();
        while !self.pending() {
            if arch::ticks().wrapping_sub(start) > timeout {
                return false;
            }
            arch::yield_now();
        }
        self.clear();
        true
    }
}

/// How long the pinging side waits between hellos before the answering
/// side is known to be listening: far longer than a round trip, so at most
/// one hello is ever unanswered once the other side listens.
const HELLO_MS: u64 = 20;
/// How long the answering side goes on listening after the last event.
const IDLE_MS: u64 = 500;

/// The pinging side: finds the other side listening, then times `rounds`
/// round trips after `warmup` untimed ones. Returns the ticks they took.
pub fn ping(port: &Port, warmup: u32, rounds: u32) -> Result<u64, Msg> {
    // The other domain may still be booting: say hello until it answers.
    let mut hellos = 0;
    loop {
        port.send()?;
        hellos += 1;
        if port.wait(arch::ms(HELLO_MS)) {
            break;
        }
        if hellos > 500 {
            return Err(msg!("no answer to {hellos} hellos on port {}", port.port));
        }
    }
    // An answer to an earlier hello, delayed, would end a timed round
    // early: let any such answer arrive and drop it.
    port.wait(arch::ms(HELLO_MS));
    let timeout = arch::ms(1000);
    for _ in 0..warmup {
        port.send()?;
        if !port.wait(timeout) {
            return Err(msg!("a warm-up round trip on port {} timed out", port.port));
        }
    }
    let start = arch::ticks();
    for i in 0..rounds {
        port.send()?;
        if !port.wait(timeout) {
            return Err(msg!("round trip {i} on port {} timed out", port.port));
        }
    }
    Ok(arch::ticks() - start)
}

/// The answering side: clears what is pending from boot, then answers
/// every event until none came for [`IDLE_MS`]. Returns how many it
/// answered.
pub fn pong(port: &Port) -> Result<u32, Msg> {
    // The binding of a static channel leaves one side pending at boot.
    port.clear();
    let mut answered = 0u32;
    let first = u64::MAX / 2;
    loop {
        let limit = if answered == 0 {
            first
        } else {
            arch::ms(IDLE_MS)
        };
        if !port.wait(limit) {
            return Ok(answered);
        }
        port.send()?;
        answered += 1;
    }
}
