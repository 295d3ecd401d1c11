//! Xenstore round trips over the domain's ring, polled: the port is kept
//! masked (2-level ABI) so no upcall interrupts the loop, and Oxen answers
//! inside the `EVTCHNOP_send` that signals the request, so each round trip
//! is one request written, one hypercall and one reply read.

use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;
use oxen_guest_common::xen::Shared;

use crate::evtchn::{Abi, Port};
use crate::{arch, xen};

const HVM_PARAM_STORE_PFN: u32 = 1;
const HVM_PARAM_STORE_EVTCHN: u32 = 2;

/// `struct xenstore_domain_interface`.
const REQ: usize = 0;
const RSP: usize = 1024;
const RING: u32 = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

/// Message types.
pub const XS_READ: u32 = 2;
pub const XS_WRITE: u32 = 11;
const XS_ERROR: u32 = 16;

/// How long one reply may take (in counter ticks at 62.5 MHz: 1 s).
const REPLY_TICKS: u64 = 62_500_000;

/// The domain's xenstore ring and port.
pub struct Ring {
    page: Shared,
    port: u32,
}

impl Ring {
    pub fn connect() -> Result<Self, Msg> {
        let pfn = xen::hvm_get_param(HVM_PARAM_STORE_PFN)
            .map_err(|e| msg!("HVM_PARAM_STORE_PFN: {e}"))?;
        let port = xen::hvm_get_param(HVM_PARAM_STORE_EVTCHN)
            .map_err(|e| msg!("HVM_PARAM_STORE_EVTCHN: {e}"))? as u32;
        if pfn == 0 || port == 0 {
            return Err(msg!(
                "no xenstore (STORE_PFN {pfn:#x}, STORE_EVTCHN {port})"
            ));
        }
        Port::setup(Abi::TwoLevel, port)?;
        Ok(Self {
            page: Shared(pfn as usize * 4096),
            port,
        })
    }

    fn put(&self, at: u32, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            self.page
                .w8(REQ + (at.wrapping_add(i as u32) % RING) as usize, *b);
        }
    }

    fn get(&self, at: u32, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self
                .page
                .r8(RSP + (at.wrapping_add(i as u32) % RING) as usize);
        }
    }

    /// Sends one request and waits for its reply; the reply's type.
    pub fn call(&self, ty: u32, req_id: u32, payload: &[u8]) -> Result<u32, Msg> {
        let prod = self.page.r32(REQ_PROD);
        let cons = self.page.r32(REQ_CONS);
        let len = 16 + payload.len() as u32;
        if RING - prod.wrapping_sub(cons) < len {
            return Err(msg!("request ring full"));
        }
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&ty.to_le_bytes());
        h[4..8].copy_from_slice(&req_id.to_le_bytes());
        h[12..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.put(prod, &h);
        self.put(prod.wrapping_add(16), payload);
        arch::barrier();
        self.page.w32(REQ_PROD, prod.wrapping_add(len));
        xen::evtchn_send(self.port).map_err(|e| msg!("EVTCHNOP_send: {e}"))?;
        let start = arch::ticks();
        let cons = self.page.r32(RSP_CONS);
        while self.page.r32(RSP_PROD).wrapping_sub(cons) < 16 {
            if arch::ticks() - start > REPLY_TICKS {
                return Err(msg!("no reply to type {ty} within 1 s"));
            }
        }
        arch::barrier();
        let mut h = [0u8; 16];
        self.get(cons, &mut h);
        let rty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let rid = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let rlen = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        while self.page.r32(RSP_PROD).wrapping_sub(cons) < 16 + rlen {
            if arch::ticks() - start > REPLY_TICKS {
                return Err(msg!("reply to type {ty} cut short"));
            }
        }
        arch::barrier();
        self.page.w32(RSP_CONS, cons.wrapping_add(16 + rlen));
        if rid != req_id {
            return Err(msg!("reply for request {rid}, expected {req_id}"));
        }
        if rty == XS_ERROR {
            return Err(msg!("type {ty} answered with an error"));
        }
        Ok(rty)
    }
}
