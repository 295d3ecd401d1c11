//! One event-channel port, polled: set up under the 2-level or the FIFO
//! ABI, kept **masked** so the hypervisor only marks it pending (no upcall,
//! no interrupt), and the ping-pong between two domains built on it.
//!
//! Polling a masked port keeps the loop free of interrupt handling, so it
//! times exactly `EVTCHNOP_send` and the pending bit reaching the other
//! domain's memory.

use core::cell::UnsafeCell;

use crate::msg::Msg;
use crate::{arch, msg, xen};

/// A guest page the hypervisor maps over or reads (shared_info, the FIFO
/// control block and event array).
#[repr(C, align(4096))]
struct Page(UnsafeCell<[u64; 512]>);

// SAFETY: only vCPU 0 runs; the hypervisor's concurrent writes are
// observed through volatile accesses only.
unsafe impl Sync for Page {}

impl Page {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; 512]))
    }

    fn addr(&self) -> usize {
        self.0.get() as usize
    }

    fn gfn(&self) -> u64 {
        self.addr() as u64 >> 12
    }
}

static SHARED_INFO: Page = Page::new();
static FIFO_CONTROL: Page = Page::new();
static FIFO_ARRAY: Page = Page::new();

/// `shared_info`: the `evtchn_pending` and `evtchn_mask` words.
const SI_PENDING: usize = 48;
const SI_MASK: usize = 560;
/// FIFO event word bits.
const FIFO_PENDING: u32 = 1 << 31;
const FIFO_MASKED: u32 = 1 << 30;

fn read64(addr: usize) -> u64 {
    // SAFETY: `addr` is an aligned word of one of the pages above, which
    // live for the whole run and which Rust code only accesses this way.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn write64(addr: usize, v: u64) {
    // SAFETY: as for `read64`.
    unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as for `read64`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write32(addr: usize, v: u32) {
    // SAFETY: as for `read64`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

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
                let mask = SHARED_INFO.addr() + SI_MASK;
                write64(mask, read64(mask) | 1 << port);
            }
            Abi::Fifo => {
                if port >= 1024 {
                    return Err(msg!("port {port}: only ports below 1024 are supported"));
                }
                // Every event word starts masked, as Linux hands its pages over.
                for i in 0..1024 {
                    write32(FIFO_ARRAY.addr() + 4 * i, FIFO_MASKED);
                }
                xen::fifo_init_control(FIFO_CONTROL.gfn())
                    .map_err(|e| msg!("EVTCHNOP_init_control failed: {e}"))?;
                xen::fifo_expand_array(FIFO_ARRAY.gfn())
                    .map_err(|e| msg!("EVTCHNOP_expand_array failed: {e}"))?;
            }
        }
        Ok(Self { abi, port })
    }

    fn word(&self) -> usize {
        match self.abi {
            Abi::TwoLevel => SHARED_INFO.addr() + SI_PENDING + 8 * (self.port as usize / 64),
            Abi::Fifo => FIFO_ARRAY.addr() + 4 * self.port as usize,
        }
    }

    pub fn pending(&self) -> bool {
        match self.abi {
            Abi::TwoLevel => read64(self.word()) & 1 << (self.port % 64) != 0,
            Abi::Fifo => read32(self.word()) & FIFO_PENDING != 0,
        }
    }

    /// Clears the pending bit. The peer only sends again after this side
    /// answered, so no event can arrive between the read and the write.
    pub fn clear(&self) {
        match self.abi {
            Abi::TwoLevel => {
                let w = self.word();
                write64(w, read64(w) & !(1 << (self.port % 64)));
            }
            Abi::Fifo => write32(self.word(), FIFO_MASKED),
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
