//! One domain's event-channel state: its port table, where each vCPU's
//! `vcpu_info` lives, and the operations both delivery ABIs share.

use alloc::vec::Vec;

use oxen_core::xen::DomId;
use oxen_core::xen::errno::{EBUSY, ENOSPC, Errno};

use crate::Port;
use crate::abi::{NR_2L_CHANNELS, fifo, shared, virq};
use crate::env::{Env, SharedPage};

/// What a port is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    /// Port 0, in every domain.
    Reserved,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        port: Port,
    },
    Virq(u32),
    Ipi,
    /// The other end is inside the hypervisor, which learns about sends
    /// through `callback`; `peer` is the domain `status` names as the other
    /// end.
    Hypervisor {
        callback: u32,
        peer: DomId,
    },
}

/// One port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub state: State,
    /// The vCPU whose `vcpu_info` (2-level) or queue (FIFO) hears of events.
    pub notify_vcpu: usize,
    /// FIFO priority, 0 (highest) to 15.
    pub priority: u8,
    /// FIFO: the port became pending while it had no event word; raised when
    /// the array grows to cover it.
    pub deferred: bool,
    /// FIFO: the (vCPU, priority) queue the event was last linked on. Kept
    /// across close and re-bind: that queue's tail may still name the port.
    pub last_queue: (usize, u8),
}

impl Channel {
    const FREE: Channel = Channel {
        state: State::Free,
        notify_vcpu: 0,
        priority: fifo::PRIORITY_DEFAULT,
        deferred: false,
        last_queue: (0, 0),
    };
}

/// Where a vCPU's `vcpu_info` is.
pub(crate) enum VcpuInfo<P> {
    /// `shared_info.vcpu_info[0]`: vCPU 0 before it registers its own (Arm
    /// has one legacy slot).
    SharedInfo,
    /// The other vCPUs before they register: hypervisor memory the guest
    /// cannot see (Xen's `dummy_vcpu_info`, but one per vCPU).
    Dummy { word0: u64, pending_sel: u64 },
    /// Registered with `VCPUOP_register_vcpu_info`.
    Registered { page: P, offset: usize },
}

/// One vCPU's event state.
pub(crate) struct Vcpu<P> {
    pub info: VcpuInfo<P>,
    /// Port bound to each VIRQ (0: none). Per-domain and global VIRQs live in
    /// vCPU 0's table.
    pub virqs: [Port; virq::NR as usize],
    /// FIFO control block: page and offset.
    pub control: Option<(P, usize)>,
    /// FIFO: last port linked on each priority queue (0: none).
    pub tails: [Port; fifo::QUEUES],
}

/// One domain's event channels.
pub(crate) struct Domain<P> {
    pub id: DomId,
    /// Highest port the configuration allows.
    pub max_port: Port,
    /// Ports from 0, grown on demand; ports past the end are free.
    pub ports: Vec<Channel>,
    pub shared_info: P,
    pub shared_info_gfn: Option<u64>,
    pub vcpus: Vec<Vcpu<P>>,
    /// Event-array pages, when the domain uses the FIFO ABI.
    pub fifo: Option<Vec<P>>,
}

impl<P: SharedPage> Domain<P> {
    pub fn new(id: DomId, nr_vcpus: usize, max_port: Port, shared_info: P) -> Self {
        let vcpus = (0..nr_vcpus)
            .map(|i| Vcpu {
                info: if i == 0 {
                    VcpuInfo::SharedInfo
                } else {
                    VcpuInfo::Dummy {
                        word0: 0,
                        pending_sel: 0,
                    }
                },
                virqs: [0; virq::NR as usize],
                control: None,
                tails: [0; fifo::QUEUES],
            })
            .collect();
        let mut reserved = Channel::FREE;
        reserved.state = State::Reserved;
        Self {
            id,
            max_port,
            ports: alloc::vec![reserved],
            shared_info,
            shared_info_gfn: None,
            vcpus,
            fifo: None,
        }
    }

    /// Highest usable port: the configured limit, within what the ABI in
    /// use can address.
    pub fn limit(&self) -> Port {
        let abi = if self.fifo.is_some() {
            fifo::NR_CHANNELS
        } else {
            NR_2L_CHANNELS
        };
        self.max_port.min(abi - 1)
    }

    pub fn valid(&self, port: Port) -> bool {
        port <= self.limit()
    }

    pub fn channel(&self, port: Port) -> Channel {
        self.ports
            .get(port as usize)
            .copied()
            .unwrap_or(Channel::FREE)
    }

    pub fn channel_mut(&mut self, port: Port) -> &mut Channel {
        let i = port as usize;
        if i >= self.ports.len() {
            self.ports.resize(i + 1, Channel::FREE);
        }
        match self.ports.get_mut(i) {
            Some(c) => c,
            // Cannot happen: the table was just grown past `i`.
            None => unreachable!("port table grown to {i}"),
        }
    }

    /// The port bound to `virq` on `vcpu`, to read or set; `None` for a
    /// vCPU or VIRQ that does not exist.
    pub fn virq_slot(&mut self, vcpu: usize, virq: u32) -> Option<&mut Port> {
        self.vcpus.get_mut(vcpu)?.virqs.get_mut(virq as usize)
    }

    /// A free port can still be on a FIFO queue the guest has not drained;
    /// reusing it then would corrupt that queue.
    fn usable(&self, port: Port) -> bool {
        self.channel(port).state == State::Free && !self.fifo_is_busy(port)
    }

    /// The lowest free port (not yet taken).
    pub fn find_free_port(&self) -> Result<Port, Errno> {
        (0..=self.limit()).find(|&p| self.usable(p)).ok_or(ENOSPC)
    }

    /// Checks that `port` can be taken.
    pub fn check_port(&self, port: Port) -> Result<Port, Errno> {
        if !self.valid(port) {
            return Err(ENOSPC);
        }
        if !self.usable(port) {
            return Err(EBUSY);
        }
        Ok(port)
    }

    /// Binds a free port: Xen's `evtchn_port_init` resets the priority.
    pub fn bind(&mut self, port: Port, state: State, notify_vcpu: usize) {
        let c = self.channel_mut(port);
        c.state = state;
        c.notify_vcpu = notify_vcpu;
        c.priority = fifo::PRIORITY_DEFAULT;
    }

    /// Frees a port: its pending event goes, so a later binding starts clean.
    pub fn free(&mut self, port: Port) {
        self.clear_pending(port);
        let c = self.channel_mut(port);
        c.state = State::Free;
        c.notify_vcpu = 0;
        c.deferred = false;
    }

    pub fn set_pending<E: Env>(&mut self, env: &E, vcpu: usize, port: Port) {
        if self.fifo.is_some() {
            self.fifo_set_pending(env, vcpu, port);
        } else {
            self.l2_set_pending(env, vcpu, port);
        }
    }

    pub fn clear_pending(&mut self, port: Port) {
        if self.fifo.is_some() {
            self.fifo_clear_pending(port);
        } else {
            self.l2_clear_pending(port);
        }
    }

    pub fn unmask<E: Env>(&mut self, env: &E, port: Port) {
        if self.fifo.is_some() {
            self.fifo_unmask(env, port);
        } else {
            self.l2_unmask(env, port);
        }
    }

    pub fn is_pending(&self, port: Port) -> bool {
        if self.fifo.is_some() {
            self.fifo_is_pending(port)
        } else {
            self.l2_is_pending(port)
        }
    }

    /// The page and offset of the vCPU's `vcpu_info`, or `None` while it is
    /// in hypervisor memory.
    fn info_location(&self, vcpu: usize) -> Option<(&P, usize)> {
        match &self.vcpus.get(vcpu)?.info {
            VcpuInfo::SharedInfo => Some((&self.shared_info, shared::VCPU_INFO)),
            VcpuInfo::Dummy { .. } => None,
            VcpuInfo::Registered { page, offset } => Some((page, *offset)),
        }
    }

    /// Sets bit `word` of the vCPU's `evtchn_pending_sel`; returns whether it
    /// was already set.
    pub fn test_and_set_sel(&mut self, vcpu: usize, word: u32) -> bool {
        let bit = 1u64 << word;
        if let Some((page, off)) = self.info_location(vcpu) {
            return page.fetch_or_u64(off + shared::PENDING_SEL, bit) & bit != 0;
        }
        match self.vcpus.get_mut(vcpu).map(|v| &mut v.info) {
            Some(VcpuInfo::Dummy { pending_sel, .. }) => {
                let old = *pending_sel;
                *pending_sel |= bit;
                old & bit != 0
            }
            // In guest memory (handled above), or no such vCPU.
            _ => true,
        }
    }

    /// Xen's `vcpu_mark_events_pending`: sets `evtchn_upcall_pending` and
    /// raises the upcall if it was clear.
    pub fn mark_events_pending<E: Env>(&mut self, env: &E, vcpu: usize) {
        let was = if let Some((page, off)) = self.info_location(vcpu) {
            page.fetch_or_u64(off + shared::UPCALL_PENDING, 1)
        } else {
            match self.vcpus.get_mut(vcpu).map(|v| &mut v.info) {
                Some(VcpuInfo::Dummy { word0, .. }) => {
                    let old = *word0;
                    *word0 |= 1;
                    old
                }
                // In guest memory (handled above), or no such vCPU: no upcall.
                _ => 1,
            }
        };
        if was & 1 == 0 {
            env.upcall(self.id, vcpu);
        }
    }

    /// Whether the vCPU's `evtchn_upcall_pending` is set.
    pub fn upcall_pending(&self, vcpu: usize) -> bool {
        match self.info_location(vcpu) {
            Some((page, off)) => page.load_u64(off + shared::UPCALL_PENDING) & 0xff != 0,
            None => match self.vcpus.get(vcpu).map(|v| &v.info) {
                Some(VcpuInfo::Dummy { word0, .. }) => word0 & 0xff != 0,
                _ => false,
            },
        }
    }

    /// The 48 bytes of the vCPU's current `vcpu_info`, as 64-bit words.
    pub fn read_vcpu_info(&self, vcpu: usize) -> Option<[u64; 6]> {
        let (page, off) = self.info_location(vcpu)?;
        Some(core::array::from_fn(|i| page.load_u64(off + 8 * i)))
    }
}
