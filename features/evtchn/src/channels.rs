//! Every domain's event channels and the `event_channel_op` sub-ops, each
//! taking decoded arguments and answering with Xen's errno; plus what the
//! hypervisor itself does with them (domains coming and going, `vcpu_info`
//! registration, ports served inside Oxen, VIRQs).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use oxen_core::xen::errno::{
    EBUSY, EEXIST, EINVAL, ENOENT, ENOSYS, ENXIO, EOPNOTSUPP, EPERM, ESRCH, Errno,
};
use oxen_core::xen::{DOMID_FIRST_RESERVED, DOMID_SELF, DomId};

use crate::Port;
use crate::abi::{fifo, shared, virq};
use crate::domain::{Domain, State, VcpuInfo};
use crate::env::{Env, SharedPage};

/// Which domains may connect interdomain channels to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Like Xen's XSM SILO mode (the default on Arm): a domain may bind
    /// interdomain channels only with itself and with the domains the
    /// configuration connects it to — through a static event channel, or
    /// through [`EventChannels::allow`] (a device declared through xenstore).
    #[default]
    Silo,
    /// Any domain may connect to any other, as with Xen's dummy XSM policy.
    Open,
}

/// What `EVTCHNOP_status` reports about a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Free, or port 0 (`EVTCHNSTAT_closed`).
    Closed,
    /// Waiting for `remote` to bind (`EVTCHNSTAT_unbound`).
    Unbound { remote: DomId },
    /// Connected to `port` of `remote` (`EVTCHNSTAT_interdomain`). A port
    /// served inside the hypervisor shows the peer it was bound with, and
    /// port 0.
    Interdomain { remote: DomId, port: Port },
    /// Bound to a VIRQ (`EVTCHNSTAT_virq`).
    Virq(u32),
    /// An IPI port (`EVTCHNSTAT_ipi`).
    Ipi,
}

/// A port's status and its notify vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStatus {
    pub status: Status,
    /// The vCPU events on the port are delivered to.
    pub vcpu: u32,
}

/// How Xen treats a VIRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VirqKind {
    /// Bound separately on each vCPU.
    PerVcpu,
    /// One per domain, bound on vCPU 0.
    PerDomain,
    /// Delivered to one handling domain (the hardware domain unless set).
    Global,
}

fn virq_kind(v: u32) -> VirqKind {
    match v {
        virq::TIMER | virq::DEBUG | virq::XENOPROF | virq::XENPMU => VirqKind::PerVcpu,
        virq::ARGO => VirqKind::PerDomain,
        _ => VirqKind::Global,
    }
}

/// The event channels of every domain.
///
/// Not internally locked: every operation takes `&mut self`, and the
/// hypervisor serialises them (one `spin::Mutex` around the whole is
/// enough — an operation touches at most two domains and never blocks).
pub struct EventChannels<P> {
    pub(crate) domains: BTreeMap<DomId, Domain<P>>,
    policy: Policy,
    fifo: bool,
    /// Pairs of domains the configuration connects, for [`Policy::Silo`].
    connections: Vec<(DomId, DomId)>,
}

impl<P: SharedPage> EventChannels<P> {
    /// No domains yet. `fifo` offers the FIFO ABI (`EVTCHNOP_init_control`);
    /// without it guests use the 2-level ABI.
    pub const fn new(policy: Policy, fifo: bool) -> Self {
        Self {
            domains: BTreeMap::new(),
            policy,
            fifo,
            connections: Vec::new(),
        }
    }

    /// The connection policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether the FIFO ABI is offered.
    pub fn fifo_offered(&self) -> bool {
        self.fifo
    }

    /// Lets `a` and `b` connect interdomain channels under
    /// [`Policy::Silo`] (the order does not matter).
    pub fn allow(&mut self, a: DomId, b: DomId) {
        if !self.connected(a, b) {
            self.connections.push((a, b));
        }
    }

    /// Whether the policy lets `a` and `b` connect.
    pub fn connected(&self, a: DomId, b: DomId) -> bool {
        self.policy == Policy::Open
            || a == b
            || self
                .connections
                .iter()
                .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    /// A domain exists: `nr_vcpus` vCPUs, ports up to `max_port` (Xen's
    /// default for dom0less domUs is 1023, `config::MAX_EVTCHN_PORT`), and
    /// `shared_info`, a zeroed page the hypervisor allocated for it. Port 0
    /// is reserved; vCPU 0's `vcpu_info` is the one inside `shared_info`.
    pub fn domain_created(
        &mut self,
        dom: DomId,
        nr_vcpus: usize,
        max_port: Port,
        shared_info: P,
    ) -> Result<(), Errno> {
        if dom >= DOMID_FIRST_RESERVED || nr_vcpus == 0 {
            return Err(EINVAL);
        }
        if self.domains.contains_key(&dom) {
            return Err(EEXIST);
        }
        self.domains
            .insert(dom, Domain::new(dom, nr_vcpus, max_port, shared_info));
        Ok(())
    }

    /// A domain is gone: its ports close as `EVTCHNOP_close` would close
    /// them, so its peers' interdomain ports become unbound (towards `dom`),
    /// and every page it shared is let go.
    pub fn domain_destroyed(&mut self, dom: DomId) {
        let Some(d) = self.domains.remove(&dom) else {
            return;
        };
        for c in &d.ports {
            if let State::Interdomain { remote, port } = c.state
                && remote != dom
                && let Some(rd) = self.domains.get_mut(&remote)
            {
                rd.channel_mut(port).state = State::Unbound { remote: dom };
            }
        }
    }

    /// Whether `dom` exists.
    pub fn has_domain(&self, dom: DomId) -> bool {
        self.domains.contains_key(&dom)
    }

    /// The domain's `shared_info` page.
    pub fn shared_info(&self, dom: DomId) -> Option<&P> {
        self.domains.get(&dom).map(|d| &d.shared_info)
    }

    /// `XENMEM_add_to_physmap(XENMAPSPACE_shared_info, idx, gfn)`: checks the
    /// request and records where the page is mapped; the caller maps it.
    /// There is one `shared_info` frame (`idx` 0, else `-EINVAL`), and it can
    /// be at one guest frame at a time (`-EBUSY` for a second one).
    pub fn map_shared_info(&mut self, dom: DomId, idx: u64, gfn: u64) -> Result<(), Errno> {
        let d = self.domains.get_mut(&dom).ok_or(ESRCH)?;
        if idx != 0 {
            return Err(EINVAL);
        }
        match d.shared_info_gfn {
            Some(g) if g != gfn => Err(EBUSY),
            _ => {
                d.shared_info_gfn = Some(gfn);
                Ok(())
            }
        }
    }

    /// The `shared_info` page was removed from the guest's physmap.
    pub fn unmap_shared_info(&mut self, dom: DomId) {
        if let Some(d) = self.domains.get_mut(&dom) {
            d.shared_info_gfn = None;
        }
    }

    /// Where the guest mapped its `shared_info`, if it did.
    pub fn shared_info_gfn(&self, dom: DomId) -> Option<u64> {
        self.domains.get(&dom).and_then(|d| d.shared_info_gfn)
    }

    /// `VCPUOP_register_vcpu_info`: moves `vcpu`'s `vcpu_info` to guest
    /// frame `gfn` at byte `offset`.
    ///
    /// Errors as Xen's: no such vCPU `-ENOENT`; an address that overflows or
    /// an offset past the frame `-EINVAL`; already registered `-EBUSY`; the
    /// 48 bytes crossing a page, or not 8-byte aligned, `-ENXIO`; not
    /// writable RAM of the domain `-EINVAL`. On success the old contents are
    /// copied over (vCPU 0's from `shared_info`; other vCPUs start from
    /// zero), `evtchn_pending_sel` becomes all ones and an upcall is raised,
    /// so nothing pending is lost (the guest sees one spurious upcall).
    pub fn register_vcpu_info<E: Env<Page = P>>(
        &mut self,
        env: &E,
        dom: DomId,
        vcpu: usize,
        gfn: u64,
        offset: u32,
    ) -> Result<(), Errno> {
        let d = self.domains.get_mut(&dom).ok_or(ESRCH)?;
        let Some(v) = d.vcpus.get(vcpu) else {
            return Err(ENOENT);
        };
        let gaddr = (gfn << 12).wrapping_add(u64::from(offset));
        if gaddr == u64::MAX || gaddr >> 12 != gfn {
            return Err(EINVAL);
        }
        if matches!(v.info, VcpuInfo::Registered { .. }) {
            return Err(EBUSY);
        }
        let last = gaddr.wrapping_add(shared::VCPU_INFO_SIZE as u64 - 1);
        if last >> 12 != gfn || !gaddr.is_multiple_of(8) {
            return Err(ENXIO);
        }
        let page = env.guest_page(dom, gfn).ok_or(EINVAL)?;
        let off = (gaddr & 0xfff) as usize;
        let old = d.read_vcpu_info(vcpu).unwrap_or([0; 6]);
        for (i, w) in old.iter().enumerate() {
            page.store_u64(off + 8 * i, *w);
        }
        page.store_u64(off + shared::PENDING_SEL, u64::MAX);
        if let Some(v) = d.vcpus.get_mut(vcpu) {
            v.info = VcpuInfo::Registered { page, offset: off };
        }
        d.mark_events_pending(env, vcpu);
        Ok(())
    }

    /// Whether `vcpu` of `dom` has `evtchn_upcall_pending` set (the guest
    /// clears it as it scans).
    pub fn upcall_pending(&self, dom: DomId, vcpu: usize) -> bool {
        self.domains
            .get(&dom)
            .is_some_and(|d| vcpu < d.vcpus.len() && d.upcall_pending(vcpu))
    }

    /// Whether `port` of `dom` is pending (for `SCHEDOP_poll`); `None` for
    /// no such domain or port.
    pub fn is_pending(&self, dom: DomId, port: Port) -> Option<bool> {
        let d = self.domains.get(&dom)?;
        d.valid(port).then(|| d.is_pending(port))
    }

    /// Whether `dom` has switched to the FIFO ABI.
    pub fn uses_fifo(&self, dom: DomId) -> bool {
        self.domains.get(&dom).is_some_and(|d| d.fifo.is_some())
    }

    fn domain(&self, dom: DomId) -> Result<&Domain<P>, Errno> {
        self.domains.get(&dom).ok_or(ESRCH)
    }

    fn domain_mut(&mut self, dom: DomId) -> Result<&mut Domain<P>, Errno> {
        self.domains.get_mut(&dom).ok_or(ESRCH)
    }

    /// `EVTCHNOP_alloc_unbound`: a port in `dom` (which must be the caller,
    /// `-EPERM` otherwise) that `remote_dom` may bind to.
    ///
    /// Errors in Xen's order: no such `dom` `-ESRCH`; no free port
    /// `-ENOSPC`; under [`Policy::Silo`], no such remote `-ESRCH`; not the
    /// caller's own domain, or not a domain the policy connects it to,
    /// `-EPERM`.
    pub fn alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote_dom: DomId,
    ) -> Result<Port, Errno> {
        let dom = self_or(caller, dom);
        let remote = self_or(caller, remote_dom);
        let port = self.domain(dom)?.find_free_port()?;
        let silo = self.policy == Policy::Silo;
        if silo && !self.domains.contains_key(&remote) {
            return Err(ESRCH);
        }
        if dom != caller || !self.connected(dom, remote) {
            return Err(EPERM);
        }
        self.domain_mut(dom)?
            .bind(port, State::Unbound { remote }, 0);
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects the caller's lowest free port
    /// to `remote_port` of `remote_dom`, which must be unbound towards the
    /// caller. The new local port is set pending, as events sent to the
    /// unbound port were lost.
    ///
    /// Errors: no such domain `-ESRCH`; no free local port `-ENOSPC`; remote
    /// port out of range, or not unbound towards the caller, `-EINVAL`; not a
    /// domain the policy connects the caller to `-EPERM`.
    pub fn bind_interdomain<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        remote_dom: DomId,
        remote_port: Port,
    ) -> Result<Port, Errno> {
        let rdom = self_or(caller, remote_dom);
        let rd = self.domain(rdom)?;
        let lport = self.domain(caller)?.find_free_port()?;
        if !rd.valid(remote_port) {
            return Err(EINVAL);
        }
        match rd.channel(remote_port).state {
            State::Unbound { remote } if remote == caller => {}
            _ => return Err(EINVAL),
        }
        if !self.connected(caller, rdom) {
            return Err(EPERM);
        }
        self.connect(env, (caller, lport), (rdom, remote_port));
        Ok(lport)
    }

    /// Binds free `local` to `remote`, which is unbound towards it; `local`
    /// is set pending.
    pub(crate) fn connect<E: Env>(&mut self, env: &E, local: (DomId, Port), remote: (DomId, Port)) {
        if let Some(rd) = self.domains.get_mut(&remote.0) {
            rd.channel_mut(remote.1).state = State::Interdomain {
                remote: local.0,
                port: local.1,
            };
        }
        if let Some(ld) = self.domains.get_mut(&local.0) {
            ld.bind(
                local.1,
                State::Interdomain {
                    remote: remote.0,
                    port: remote.1,
                },
                0,
            );
            ld.set_pending(env, 0, local.1);
        }
    }

    /// `EVTCHNOP_bind_virq`: a port for VIRQ `virq` on `vcpu`.
    ///
    /// Errors: `virq` ≥ 24, or a VIRQ that is not per-vCPU with `vcpu` ≠ 0,
    /// `-EINVAL`; no such vCPU `-ENOENT`; a global VIRQ `-EBUSY` (only its
    /// handling domain may bind it, and Oxen has none); already bound on that
    /// vCPU `-EEXIST`; no free port `-ENOSPC`.
    pub fn bind_virq(&mut self, caller: DomId, virq: u32, vcpu: u32) -> Result<Port, Errno> {
        if virq >= virq::NR {
            return Err(EINVAL);
        }
        let kind = virq_kind(virq);
        if kind != VirqKind::PerVcpu && vcpu != 0 {
            return Err(EINVAL);
        }
        let d = self.domain_mut(caller)?;
        let v = vcpu as usize;
        let Some(vc) = d.vcpus.get(v) else {
            return Err(ENOENT);
        };
        if kind == VirqKind::Global {
            return Err(EBUSY);
        }
        // `virq` < `virq::NR`, the length of `virqs`: checked above.
        if vc.virqs.get(virq as usize).copied().unwrap_or(0) != 0 {
            return Err(EEXIST);
        }
        let port = d.find_free_port()?;
        d.bind(port, State::Virq(virq), v);
        if let Some(slot) = d.virq_slot(v, virq) {
            *slot = port;
        }
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a port that notifies `vcpu` of the caller's own
    /// domain. Errors: no such vCPU `-ENOENT`; no free port `-ENOSPC`.
    pub fn bind_ipi(&mut self, caller: DomId, vcpu: u32) -> Result<Port, Errno> {
        let d = self.domain_mut(caller)?;
        let v = vcpu as usize;
        if v >= d.vcpus.len() {
            return Err(ENOENT);
        }
        let port = d.find_free_port()?;
        d.bind(port, State::Ipi, v);
        Ok(port)
    }

    /// `EVTCHNOP_bind_vcpu`: events on `port` go to `vcpu` from now on.
    /// Errors: no such vCPU `-ENOENT`; port out of range `-EINVAL`; a port
    /// that is not unbound, interdomain or a per-domain/global VIRQ (an IPI,
    /// a per-vCPU VIRQ, a free port) `-EINVAL`.
    pub fn bind_vcpu(&mut self, caller: DomId, port: Port, vcpu: u32) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        let v = vcpu as usize;
        if v >= d.vcpus.len() {
            return Err(ENOENT);
        }
        if !d.valid(port) {
            return Err(EINVAL);
        }
        match d.channel(port).state {
            State::Virq(n) if virq_kind(n) != VirqKind::PerVcpu => {}
            State::Unbound { .. } | State::Interdomain { .. } | State::Hypervisor { .. } => {}
            _ => return Err(EINVAL),
        }
        d.channel_mut(port).notify_vcpu = v;
        Ok(())
    }

    /// `EVTCHNOP_close`. Closing one end of an interdomain channel leaves the
    /// other end unbound towards the closer. Errors: port out of range,
    /// free, port 0, or served inside the hypervisor `-EINVAL`.
    pub fn close(&mut self, caller: DomId, port: Port) -> Result<(), Errno> {
        self.close_port(caller, port, true)
    }

    fn close_port(&mut self, dom: DomId, port: Port, guest: bool) -> Result<(), Errno> {
        let d = self.domain_mut(dom)?;
        if !d.valid(port) {
            return Err(EINVAL);
        }
        let c = d.channel(port);
        match c.state {
            State::Free | State::Reserved => return Err(EINVAL),
            State::Hypervisor { .. } if guest => return Err(EINVAL),
            State::Hypervisor { .. } | State::Unbound { .. } | State::Ipi => {}
            State::Virq(n) => {
                let v = if virq_kind(n) == VirqKind::PerVcpu {
                    c.notify_vcpu
                } else {
                    0
                };
                if let Some(slot) = d.virq_slot(v, n)
                    && *slot == port
                {
                    *slot = 0;
                }
            }
            State::Interdomain {
                remote,
                port: rport,
            } => {
                if remote == dom {
                    d.channel_mut(rport).state = State::Unbound { remote: dom };
                } else if let Some(rd) = self.domains.get_mut(&remote) {
                    rd.channel_mut(rport).state = State::Unbound { remote: dom };
                }
            }
        }
        if let Some(d) = self.domains.get_mut(&dom) {
            d.free(port);
        }
        Ok(())
    }

    /// `EVTCHNOP_send`: an interdomain port makes the peer's port pending, an
    /// IPI port its own, a port served inside the hypervisor calls
    /// [`Env::notify_hypervisor`]; on an unbound port the event is dropped.
    /// Errors: port out of range, free, port 0, or a VIRQ `-EINVAL`.
    pub fn send<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        port: Port,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if !d.valid(port) {
            return Err(EINVAL);
        }
        let c = d.channel(port);
        match c.state {
            State::Ipi => d.set_pending(env, c.notify_vcpu, port),
            State::Unbound { .. } => {}
            State::Hypervisor { callback, .. } => env.notify_hypervisor(callback, caller, port),
            State::Interdomain {
                remote,
                port: rport,
            } => {
                if let Some(rd) = self.domains.get_mut(&remote) {
                    let vcpu = rd.channel(rport).notify_vcpu;
                    rd.set_pending(env, vcpu, rport);
                }
            }
            State::Free | State::Reserved | State::Virq(_) => return Err(EINVAL),
        }
        Ok(())
    }

    /// `EVTCHNOP_status` of `port` in `dom` (`DOMID_SELF` or the caller's own
    /// ID). Errors: no such domain `-ESRCH`; port out of range `-EINVAL`;
    /// another domain `-EPERM`.
    pub fn status(&self, caller: DomId, dom: DomId, port: Port) -> Result<PortStatus, Errno> {
        let dom = self_or(caller, dom);
        let d = self.domain(dom)?;
        if !d.valid(port) {
            return Err(EINVAL);
        }
        if dom != caller {
            return Err(EPERM);
        }
        let c = d.channel(port);
        let status = match c.state {
            State::Free | State::Reserved => Status::Closed,
            State::Unbound { remote } => Status::Unbound { remote },
            State::Interdomain { remote, port } => Status::Interdomain { remote, port },
            State::Hypervisor { peer, .. } => Status::Interdomain {
                remote: peer,
                port: 0,
            },
            State::Virq(n) => Status::Virq(n),
            State::Ipi => Status::Ipi,
        };
        Ok(PortStatus {
            status,
            vcpu: c.notify_vcpu as u32,
        })
    }

    /// `EVTCHNOP_unmask`: clears the port's mask and announces an event that
    /// arrived while it was masked. Errors: port out of range `-EINVAL`.
    pub fn unmask<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        port: Port,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if !d.valid(port) {
            return Err(EINVAL);
        }
        d.unmask(env, port);
        Ok(())
    }

    /// `EVTCHNOP_reset` of `dom` (`DOMID_SELF` or the caller): closes every
    /// port but those served inside the hypervisor, and returns a FIFO
    /// domain to the 2-level ABI. Errors: no such domain `-ESRCH`; another
    /// domain `-EPERM`.
    pub fn reset(&mut self, caller: DomId, dom: DomId) -> Result<(), Errno> {
        let dom = self_or(caller, dom);
        let nr = self.domain(dom)?.ports.len() as Port;
        if dom != caller {
            return Err(EPERM);
        }
        for port in 1..nr {
            // Free ports and hypervisor-served ones refuse; that is the point.
            let _ = self.close_port(dom, port, true);
        }
        let d = self.domain_mut(dom)?;
        if d.fifo.is_some() {
            d.fifo_stop();
        }
        Ok(())
    }

    /// `EVTCHNOP_init_control`: registers `vcpu`'s FIFO control block at
    /// `offset` in guest frame `gfn`; the domain's first one switches it to
    /// the FIFO ABI. Returns the link bits (17).
    ///
    /// Errors: FIFO not offered `-EOPNOTSUPP` (Linux then uses the 2-level
    /// ABI); no such vCPU `-ENOENT`; the 72-byte block not fitting in the
    /// page, or not 8-byte aligned, `-EINVAL`; the vCPU already has one
    /// `-EINVAL`; not writable RAM `-EINVAL`.
    pub fn init_control<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        gfn: u64,
        offset: u32,
        vcpu: u32,
    ) -> Result<u8, Errno> {
        if !self.fifo {
            return Err(EOPNOTSUPP);
        }
        let d = self.domain_mut(caller)?;
        let v = vcpu as usize;
        let Some(vc) = d.vcpus.get(v) else {
            return Err(ENOENT);
        };
        let offset = offset as usize;
        if offset > 4096 - fifo::CONTROL_BLOCK_SIZE || !offset.is_multiple_of(8) {
            return Err(EINVAL);
        }
        if vc.control.is_some() {
            return Err(EINVAL);
        }
        let page = env.guest_page(caller, gfn).ok_or(EINVAL)?;
        if d.fifo.is_none() {
            d.fifo_start();
        }
        if let Some(vc) = d.vcpus.get_mut(v) {
            vc.control = Some((page, offset));
        }
        Ok(fifo::LINK_BITS)
    }

    /// `EVTCHNOP_expand_array`: adds the guest frame `gfn` as the next page
    /// of the FIFO event array (1024 more ports). Errors: the domain does
    /// not use FIFO `-EOPNOTSUPP`; the array is full (128 pages) `-ENOSPC`;
    /// not writable RAM `-EINVAL`.
    pub fn expand_array<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        gfn: u64,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if d.fifo.is_none() {
            return Err(EOPNOTSUPP);
        }
        if d.fifo_pages() >= fifo::MAX_PAGES {
            return Err(oxen_core::xen::errno::ENOSPC);
        }
        let page = env.guest_page(caller, gfn).ok_or(EINVAL)?;
        d.fifo_add_page(env, page);
        Ok(())
    }

    /// `EVTCHNOP_set_priority`: the FIFO queue future events on `port` go
    /// to. Errors: port out of range `-EINVAL`; the domain uses the 2-level
    /// ABI `-ENOSYS`; priority above 15 `-EINVAL`.
    pub fn set_priority(&mut self, caller: DomId, port: Port, priority: u32) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if !d.valid(port) {
            return Err(EINVAL);
        }
        if d.fifo.is_none() {
            return Err(ENOSYS);
        }
        if priority > fifo::PRIORITY_MIN {
            return Err(EINVAL);
        }
        d.channel_mut(port).priority = priority as u8;
        Ok(())
    }

    /// A port of `dom` whose other end is inside the hypervisor (the
    /// xenstore ring's, for one): the guest's sends reach
    /// [`Env::notify_hypervisor`] with `callback`, [`Self::notify`] raises
    /// events on it, and `status` shows it connected to `peer`. `port` 0
    /// takes the lowest free port. The guest can move it to another vCPU but
    /// not close it (`-EINVAL`), and `EVTCHNOP_reset` leaves it, as Xen does
    /// with its own hypervisor-attached ports.
    ///
    /// Errors: no such domain `-ESRCH`; `port` above the domain's limit or
    /// no free port `-ENOSPC`; `port` in use `-EBUSY`.
    pub fn bind_hypervisor(
        &mut self,
        dom: DomId,
        port: Port,
        callback: u32,
        peer: DomId,
    ) -> Result<Port, Errno> {
        let d = self.domain_mut(dom)?;
        let port = if port == 0 {
            d.find_free_port()?
        } else {
            d.check_port(port)?
        };
        d.bind(port, State::Hypervisor { callback, peer }, 0);
        Ok(port)
    }

    /// Raises an event on a port bound with [`Self::bind_hypervisor`].
    /// Errors: no such domain `-ESRCH`; not such a port `-EINVAL`.
    pub fn notify<E: Env<Page = P>>(
        &mut self,
        env: &E,
        dom: DomId,
        port: Port,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(dom)?;
        let c = d.channel(port);
        if !d.valid(port) || !matches!(c.state, State::Hypervisor { .. }) {
            return Err(EINVAL);
        }
        d.set_pending(env, c.notify_vcpu, port);
        Ok(())
    }

    /// Frees a port bound with [`Self::bind_hypervisor`]. Errors: no such
    /// domain `-ESRCH`; not such a port `-EINVAL`.
    pub fn unbind_hypervisor(&mut self, dom: DomId, port: Port) -> Result<(), Errno> {
        let d = self.domain(dom)?;
        if !d.valid(port) || !matches!(d.channel(port).state, State::Hypervisor { .. }) {
            return Err(EINVAL);
        }
        self.close_port(dom, port, false)
    }

    /// Sends VIRQ `virq` to `vcpu` of `dom` (per-domain and global VIRQs go
    /// to the port bound on vCPU 0, and on to its notify vCPU). Nothing
    /// happens if the guest has not bound it. Errors: no such domain
    /// `-ESRCH`; `virq` ≥ 24 `-EINVAL`; no such vCPU `-ENOENT`.
    pub fn raise_virq<E: Env<Page = P>>(
        &mut self,
        env: &E,
        dom: DomId,
        vcpu: usize,
        virq: u32,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(dom)?;
        if virq >= virq::NR {
            return Err(EINVAL);
        }
        if vcpu >= d.vcpus.len() {
            return Err(ENOENT);
        }
        let per_vcpu = virq_kind(virq) == VirqKind::PerVcpu;
        let holder = if per_vcpu { vcpu } else { 0 };
        let port = d.virq_slot(holder, virq).map_or(0, |p| *p);
        if port != 0 {
            let target = if per_vcpu {
                vcpu
            } else {
                d.channel(port).notify_vcpu
            };
            d.set_pending(env, target, port);
        }
        Ok(())
    }
}

/// `DOMID_SELF` means the caller.
fn self_or(caller: DomId, dom: DomId) -> DomId {
    if dom == DOMID_SELF { caller } else { dom }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakePage, Sys};
    use oxen_core::xen::errno::ENOSPC;

    fn status(s: &Sys, dom: DomId, port: Port) -> Status {
        s.ev.status(dom, DOMID_SELF, port).unwrap().status
    }

    /// Domain 1's port unbound towards 2, and 2's port bound to it.
    fn pair(s: &mut Sys) -> (Port, Port) {
        let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let p2 = s.ev.bind_interdomain(&s.env, 2, 1, p1).unwrap();
        (p1, p2)
    }

    #[test]
    fn alloc_unbound_on_a_fresh_domain_returns_port_1() {
        let mut s = Sys::two();
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, DOMID_SELF), Ok(1));
        assert_eq!(status(&s, 1, 1), Status::Unbound { remote: 1 });
    }

    #[test]
    fn alloc_unbound_exhausts_at_1023_then_enospc() {
        let mut s = Sys::two();
        for expected in 1..=1023 {
            assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, 2), Ok(expected));
        }
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, 2), Err(ENOSPC));
        assert_eq!(s.ev.bind_ipi(1, 0), Err(ENOSPC));
        // Domain 2's ports are its own, and it can still reach domain 1's.
        assert_eq!(s.ev.alloc_unbound(2, DOMID_SELF, 1), Ok(1));
        let local = s.ev.bind_interdomain(&s.env, 2, 1, 5).unwrap();
        assert_eq!(s.ev.send(&s.env, 2, local), Ok(()));
    }

    #[test]
    fn the_configured_port_limit_bounds_allocation() {
        let mut s = Sys::new(Policy::Open, false, &[]);
        s.ev.domain_created(5, 1, 3, FakePage::new()).unwrap();
        assert_eq!(s.ev.bind_ipi(5, 0), Ok(1));
        assert_eq!(s.ev.bind_ipi(5, 0), Ok(2));
        assert_eq!(s.ev.bind_ipi(5, 0), Ok(3));
        assert_eq!(s.ev.bind_ipi(5, 0), Err(ENOSPC));
        assert_eq!(s.ev.send(&s.env, 5, 4), Err(EINVAL));
    }

    #[test]
    fn a_port_limit_beyond_the_2_level_abi_stops_at_4095() {
        let mut s = Sys::new(Policy::Open, false, &[]);
        s.ev.domain_created(5, 1, 100_000, FakePage::new()).unwrap();
        assert_eq!(
            s.ev.status(5, DOMID_SELF, 4095).map(|p| p.status),
            Ok(Status::Closed)
        );
        assert_eq!(s.ev.status(5, DOMID_SELF, 4096), Err(EINVAL));
    }

    #[test]
    fn alloc_unbound_in_another_domain_returns_eperm() {
        let mut s = Sys::two();
        assert_eq!(s.ev.alloc_unbound(1, 2, 1), Err(EPERM));
        assert_eq!(status(&s, 2, 1), Status::Closed);
    }

    #[test]
    fn alloc_unbound_in_a_missing_domain_returns_esrch() {
        let mut s = Sys::two();
        assert_eq!(s.ev.alloc_unbound(1, 9, 1), Err(ESRCH));
    }

    #[test]
    fn open_policy_lets_alloc_unbound_name_a_domain_that_does_not_exist() {
        let mut s = Sys::two();
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, 9), Ok(1));
        assert_eq!(status(&s, 1, 1), Status::Unbound { remote: 9 });
    }

    #[test]
    fn silo_refuses_alloc_unbound_towards_an_unconnected_domain() {
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, 2), Err(EPERM));
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, 9), Err(ESRCH));
        assert_eq!(s.ev.alloc_unbound(1, DOMID_SELF, DOMID_SELF), Ok(1));
    }

    #[test]
    fn silo_lets_allowed_domains_connect_either_way_round() {
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1), (3, 1)]);
        s.ev.allow(2, 1);
        let (p1, p2) = pair(&mut s);
        assert_eq!(
            status(&s, 1, p1),
            Status::Interdomain {
                remote: 2,
                port: p2
            }
        );
        assert_eq!(s.ev.alloc_unbound(3, DOMID_SELF, 1), Err(EPERM));
    }

    #[test]
    fn bind_interdomain_connects_both_ends_and_leaves_the_binder_pending() {
        let mut s = Sys::two();
        let (p1, p2) = pair(&mut s);
        assert_eq!(
            status(&s, 1, p1),
            Status::Interdomain {
                remote: 2,
                port: p2
            }
        );
        assert_eq!(
            status(&s, 2, p2),
            Status::Interdomain {
                remote: 1,
                port: p1
            }
        );
        assert!(s.l2_pending(2, p2));
        assert!(!s.l2_pending(1, p1));
    }

    #[test]
    fn bind_interdomain_to_port_unbound_for_another_domain_returns_einval() {
        let mut s = Sys::new(Policy::Open, false, &[(1, 1), (2, 1), (3, 1)]);
        let p = s.ev.alloc_unbound(1, DOMID_SELF, 3).unwrap();
        assert_eq!(s.ev.bind_interdomain(&s.env, 2, 1, p), Err(EINVAL));
        assert_eq!(status(&s, 1, p), Status::Unbound { remote: 3 });
    }

    #[test]
    fn bind_interdomain_to_a_missing_domain_returns_esrch() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_interdomain(&s.env, 1, 999, 1), Err(ESRCH));
    }

    #[test]
    fn bind_interdomain_to_a_free_or_out_of_range_port_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_interdomain(&s.env, 1, 2, 5), Err(EINVAL));
        assert_eq!(s.ev.bind_interdomain(&s.env, 1, 2, 5000), Err(EINVAL));
        assert_eq!(s.ev.bind_interdomain(&s.env, 1, 2, 0), Err(EINVAL));
    }

    #[test]
    fn bind_interdomain_to_an_already_connected_port_returns_einval() {
        let mut s = Sys::two();
        let (p1, _) = pair(&mut s);
        assert_eq!(s.ev.bind_interdomain(&s.env, 2, 1, p1), Err(EINVAL));
    }

    #[test]
    fn bind_interdomain_without_a_free_local_port_returns_enospc() {
        let mut s = Sys::two();
        let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        while s.ev.bind_ipi(2, 0).is_ok() {}
        assert_eq!(s.ev.bind_interdomain(&s.env, 2, 1, p1), Err(ENOSPC));
    }

    #[test]
    fn a_domain_can_connect_two_of_its_own_ports_under_silo() {
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1)]);
        let a = s.ev.alloc_unbound(1, DOMID_SELF, DOMID_SELF).unwrap();
        let b = s.ev.bind_interdomain(&s.env, 1, DOMID_SELF, a).unwrap();
        assert_eq!((a, b), (1, 2));
        s.ev.send(&s.env, 1, b).unwrap();
        assert!(s.l2_pending(1, a));
        s.ev.close(1, a).unwrap();
        assert_eq!(status(&s, 1, b), Status::Unbound { remote: 1 });
    }

    #[test]
    fn close_on_one_end_leaves_the_peer_unbound_towards_the_closer() {
        let mut s = Sys::two();
        let (p1, p2) = pair(&mut s);
        s.ev.close(1, p1).unwrap();
        assert_eq!(status(&s, 1, p1), Status::Closed);
        assert_eq!(status(&s, 2, p2), Status::Unbound { remote: 1 });
    }

    #[test]
    fn the_closer_can_bind_again_to_the_peers_port() {
        let mut s = Sys::two();
        let (p1, p2) = pair(&mut s);
        s.ev.close(2, p2).unwrap();
        let again = s.ev.bind_interdomain(&s.env, 2, 1, p1).unwrap();
        assert_eq!(
            status(&s, 1, p1),
            Status::Interdomain {
                remote: 2,
                port: again
            }
        );
    }

    #[test]
    fn close_of_a_free_port_port_0_or_out_of_range_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.close(1, 7), Err(EINVAL));
        assert_eq!(s.ev.close(1, 0), Err(EINVAL));
        assert_eq!(s.ev.close(1, 1024), Err(EINVAL));
    }

    #[test]
    fn close_clears_the_pending_bit_so_a_new_binding_starts_clean() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        assert!(s.l2_pending(1, p));
        s.ev.close(1, p).unwrap();
        assert!(!s.l2_pending(1, p));
    }

    #[test]
    fn send_on_unbound_port_is_silently_dropped() {
        let mut s = Sys::two();
        let p = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        assert_eq!(s.ev.send(&s.env, 1, p), Ok(()));
        assert!(!s.l2_pending(1, p));
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn send_on_port_0_a_free_port_or_out_of_range_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.send(&s.env, 1, 0), Err(EINVAL));
        assert_eq!(s.ev.send(&s.env, 1, 5), Err(EINVAL));
        assert_eq!(s.ev.send(&s.env, 1, 5000), Err(EINVAL));
    }

    #[test]
    fn send_on_a_virq_port_returns_einval() {
        let mut s = Sys::two();
        let p = s.ev.bind_virq(1, virq::TIMER, 0).unwrap();
        assert_eq!(s.ev.send(&s.env, 1, p), Err(EINVAL));
    }

    #[test]
    fn send_on_interdomain_port_makes_the_peer_pending() {
        let mut s = Sys::two();
        let (p1, p2) = pair(&mut s);
        s.env.take_upcalls();
        s.ev.send(&s.env, 2, p2).unwrap();
        assert!(s.l2_pending(1, p1));
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn bind_ipi_then_send_delivers_to_vcpu0() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.send(&s.env, 1, p), Ok(()));
        assert!(s.l2_pending(1, p));
        assert_eq!(s.sel0(1), 1 << (p / 64));
        assert_eq!(s.upcall0(1), 1);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn bind_ipi_to_a_missing_vcpu_returns_enoent() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_ipi(1, 2), Err(ENOENT));
    }

    #[test]
    fn bind_virq_timer_twice_returns_eexist() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_virq(1, virq::TIMER, 0), Ok(1));
        assert_eq!(s.ev.bind_virq(1, virq::TIMER, 0), Err(EEXIST));
    }

    #[test]
    fn per_vcpu_virqs_bind_once_on_each_vcpu() {
        let mut s = Sys::two();
        let a = s.ev.bind_virq(1, virq::TIMER, 0).unwrap();
        let b = s.ev.bind_virq(1, virq::TIMER, 1).unwrap();
        assert_ne!(a, b);
        let st = s.ev.status(1, DOMID_SELF, b).unwrap();
        assert_eq!(
            st,
            PortStatus {
                status: Status::Virq(virq::TIMER),
                vcpu: 1
            }
        );
    }

    #[test]
    fn bind_virq_24_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_virq(1, 24, 0), Err(EINVAL));
    }

    #[test]
    fn bind_virq_of_a_global_virq_returns_ebusy() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_virq(1, virq::CONSOLE, 0), Err(EBUSY));
        assert_eq!(s.ev.bind_virq(1, virq::DOM_EXC, 0), Err(EBUSY));
    }

    #[test]
    fn bind_virq_of_a_non_per_vcpu_virq_on_vcpu_1_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_virq(1, virq::CONSOLE, 1), Err(EINVAL));
        assert_eq!(s.ev.bind_virq(1, virq::ARGO, 1), Err(EINVAL));
        assert_eq!(s.ev.bind_virq(1, virq::ARGO, 0), Ok(1));
    }

    #[test]
    fn bind_virq_on_a_missing_vcpu_returns_enoent() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_virq(1, virq::TIMER, 2), Err(ENOENT));
    }

    #[test]
    fn closing_a_virq_port_lets_the_virq_be_bound_again() {
        let mut s = Sys::two();
        let p = s.ev.bind_virq(1, virq::DEBUG, 1).unwrap();
        s.ev.close(1, p).unwrap();
        assert_eq!(s.ev.bind_virq(1, virq::DEBUG, 1), Ok(p));
    }

    #[test]
    fn raise_virq_delivers_to_the_bound_vcpu_and_ignores_unbound_virqs() {
        let mut s = Sys::two();
        assert_eq!(s.ev.raise_virq(&s.env, 1, 0, virq::TIMER), Ok(()));
        assert!(s.env.take_upcalls().is_empty());
        let p = s.ev.bind_virq(1, virq::TIMER, 0).unwrap();
        s.ev.raise_virq(&s.env, 1, 0, virq::TIMER).unwrap();
        assert!(s.l2_pending(1, p));
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
        assert_eq!(s.ev.raise_virq(&s.env, 1, 2, virq::TIMER), Err(ENOENT));
        assert_eq!(s.ev.raise_virq(&s.env, 1, 0, 24), Err(EINVAL));
    }

    #[test]
    fn bind_vcpu_refuses_ipi_and_per_vcpu_virq_ports() {
        let mut s = Sys::two();
        let ipi = s.ev.bind_ipi(1, 0).unwrap();
        let timer = s.ev.bind_virq(1, virq::TIMER, 0).unwrap();
        assert_eq!(s.ev.bind_vcpu(1, ipi, 1), Err(EINVAL));
        assert_eq!(s.ev.bind_vcpu(1, timer, 1), Err(EINVAL));
        assert_eq!(s.ev.bind_vcpu(1, 9, 1), Err(EINVAL));
    }

    #[test]
    fn bind_vcpu_accepts_unbound_interdomain_and_per_domain_virq_ports() {
        let mut s = Sys::two();
        let (p1, _) = pair(&mut s);
        let u = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let argo = s.ev.bind_virq(1, virq::ARGO, 0).unwrap();
        for p in [p1, u, argo] {
            assert_eq!(s.ev.bind_vcpu(1, p, 1), Ok(()));
            assert_eq!(s.ev.status(1, DOMID_SELF, p).unwrap().vcpu, 1);
        }
    }

    #[test]
    fn bind_vcpu_to_a_missing_vcpu_returns_enoent_before_the_port_is_looked_at() {
        let mut s = Sys::two();
        assert_eq!(s.ev.bind_vcpu(1, 5000, 2), Err(ENOENT));
    }

    #[test]
    fn status_of_port_0_is_closed() {
        let s = Sys::two();
        let st = s.ev.status(1, DOMID_SELF, 0).unwrap();
        assert_eq!(
            st,
            PortStatus {
                status: Status::Closed,
                vcpu: 0
            }
        );
    }

    #[test]
    fn status_errors_are_esrch_einval_then_eperm() {
        let s = Sys::two();
        assert_eq!(s.ev.status(1, 9, 1), Err(ESRCH));
        assert_eq!(s.ev.status(1, 2, 5000), Err(EINVAL));
        assert_eq!(s.ev.status(1, 2, 1), Err(EPERM));
        assert_eq!(s.ev.status(1, 1, 1).map(|p| p.status), Ok(Status::Closed));
    }

    #[test]
    fn status_names_ipi_ports_and_their_vcpu() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 1).unwrap();
        let st = s.ev.status(1, DOMID_SELF, p).unwrap();
        assert_eq!(
            st,
            PortStatus {
                status: Status::Ipi,
                vcpu: 1
            }
        );
    }

    #[test]
    fn reset_closes_every_port_and_peers_become_unbound() {
        let mut s = Sys::two();
        let (p1, p2) = pair(&mut s);
        let ipi = s.ev.bind_ipi(2, 0).unwrap();
        s.ev.reset(2, DOMID_SELF).unwrap();
        assert_eq!(status(&s, 2, p2), Status::Closed);
        assert_eq!(status(&s, 2, ipi), Status::Closed);
        assert_eq!(status(&s, 1, p1), Status::Unbound { remote: 2 });
        assert_eq!(s.ev.bind_ipi(2, 0), Ok(1));
    }

    #[test]
    fn reset_of_another_domain_returns_eperm_and_of_a_missing_one_esrch() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(2, 0).unwrap();
        assert_eq!(s.ev.reset(1, 2), Err(EPERM));
        assert_eq!(s.ev.reset(1, 9), Err(ESRCH));
        assert_eq!(status(&s, 2, p), Status::Ipi);
    }

    #[test]
    fn a_guest_send_on_a_hypervisor_port_reaches_its_callback() {
        let mut s = Sys::two();
        let p = s.ev.bind_hypervisor(1, 0, 77, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(*s.env.kicks.borrow(), [(77, 1, p)]);
        assert!(!s.l2_pending(1, p));
    }

    #[test]
    fn notify_raises_an_event_on_a_hypervisor_port() {
        let mut s = Sys::two();
        let p = s.ev.bind_hypervisor(1, 1, 77, 0).unwrap();
        s.ev.notify(&s.env, 1, p).unwrap();
        assert!(s.l2_pending(1, p));
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn notify_on_a_port_not_bound_by_the_hypervisor_returns_einval() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.notify(&s.env, 1, p), Err(EINVAL));
        assert_eq!(s.ev.notify(&s.env, 1, 5000), Err(EINVAL));
        assert_eq!(s.ev.notify(&s.env, 9, 1), Err(ESRCH));
    }

    #[test]
    fn a_guest_cannot_close_a_hypervisor_port_and_reset_keeps_it() {
        let mut s = Sys::two();
        let p = s.ev.bind_hypervisor(1, 0, 77, 0).unwrap();
        assert_eq!(s.ev.close(1, p), Err(EINVAL));
        s.ev.reset(1, DOMID_SELF).unwrap();
        assert_eq!(status(&s, 1, p), Status::Interdomain { remote: 0, port: 0 });
        assert_eq!(s.ev.bind_vcpu(1, p, 1), Ok(()));
    }

    #[test]
    fn bind_hypervisor_at_a_taken_port_returns_ebusy_and_beyond_the_limit_enospc() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.bind_hypervisor(1, p, 77, 0), Err(EBUSY));
        assert_eq!(s.ev.bind_hypervisor(1, 1024, 77, 0), Err(ENOSPC));
        assert_eq!(s.ev.bind_hypervisor(9, 0, 77, 0), Err(ESRCH));
    }

    #[test]
    fn unbind_hypervisor_frees_the_port() {
        let mut s = Sys::two();
        let p = s.ev.bind_hypervisor(1, 0, 77, 0).unwrap();
        assert_eq!(s.ev.unbind_hypervisor(1, 2), Err(EINVAL));
        s.ev.unbind_hypervisor(1, p).unwrap();
        assert_eq!(status(&s, 1, p), Status::Closed);
    }

    #[test]
    fn a_destroyed_domains_peers_become_unbound_towards_it() {
        let mut s = Sys::two();
        let (p1, _) = pair(&mut s);
        s.ev.domain_destroyed(2);
        assert!(!s.ev.has_domain(2));
        assert_eq!(status(&s, 1, p1), Status::Unbound { remote: 2 });
        assert_eq!(s.ev.send(&s.env, 1, p1), Ok(()));
    }

    #[test]
    fn domain_created_twice_returns_eexist_and_zero_vcpus_einval() {
        let mut s = Sys::two();
        assert_eq!(
            s.ev.domain_created(1, 1, 1023, FakePage::new()),
            Err(EEXIST)
        );
        assert_eq!(
            s.ev.domain_created(3, 0, 1023, FakePage::new()),
            Err(EINVAL)
        );
        assert_eq!(
            s.ev.domain_created(DOMID_SELF, 1, 1023, FakePage::new()),
            Err(EINVAL)
        );
    }

    #[test]
    fn shared_info_maps_at_one_frame_with_index_0() {
        let mut s = Sys::two();
        assert_eq!(s.ev.map_shared_info(1, 1, 0x40000), Err(EINVAL));
        assert_eq!(s.ev.map_shared_info(1, 0, 0x40000), Ok(()));
        assert_eq!(s.ev.map_shared_info(1, 0, 0x40000), Ok(()));
        assert_eq!(s.ev.map_shared_info(1, 0, 0x40001), Err(EBUSY));
        assert_eq!(s.ev.shared_info_gfn(1), Some(0x40000));
        s.ev.unmap_shared_info(1);
        assert_eq!(s.ev.map_shared_info(1, 0, 0x40001), Ok(()));
        assert_eq!(s.ev.map_shared_info(9, 0, 0x40001), Err(ESRCH));
    }

    #[test]
    fn register_vcpu_info_twice_returns_ebusy() {
        let mut s = Sys::two();
        s.env.ram(1, 0x40010);
        assert_eq!(s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 0), Ok(()));
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 64),
            Err(EBUSY)
        );
    }

    #[test]
    fn register_vcpu_info_crossing_a_page_or_misaligned_returns_enxio() {
        let mut s = Sys::two();
        s.env.ram(1, 0x40010);
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 4056),
            Err(ENXIO)
        );
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 4),
            Err(ENXIO)
        );
        assert_eq!(s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 4048), Ok(()));
    }

    #[test]
    fn register_vcpu_info_with_an_offset_past_the_frame_or_overflowing_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 4096),
            Err(EINVAL)
        );
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 1 << 52, 0),
            Err(EINVAL)
        );
    }

    #[test]
    fn register_vcpu_info_outside_guest_ram_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 0, 0x9999, 0),
            Err(EINVAL)
        );
    }

    #[test]
    fn register_vcpu_info_for_a_missing_vcpu_returns_enoent() {
        let mut s = Sys::two();
        s.env.ram(1, 0x40010);
        assert_eq!(
            s.ev.register_vcpu_info(&s.env, 1, 2, 0x40010, 0),
            Err(ENOENT)
        );
    }

    #[test]
    fn register_vcpu_info_copies_vcpu0s_old_contents_sets_every_selector_bit_and_raises_an_upcall()
    {
        let mut s = Sys::two();
        // Time fields the old vcpu_info holds must survive the move.
        s.si(1).store_u64(16, 0x1122_3344_5566_7788);
        let page = s.env.ram(1, 0x40010);
        s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 64).unwrap();
        assert_eq!(page.load_u64(64 + 16), 0x1122_3344_5566_7788);
        assert_eq!(page.load_u64(64 + shared::PENDING_SEL), u64::MAX);
        assert_eq!(page.byte(64 + shared::UPCALL_PENDING), 1);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
        assert!(s.ev.upcall_pending(1, 0));
    }

    #[test]
    fn register_vcpu_info_for_a_secondary_vcpu_starts_from_zero() {
        let mut s = Sys::two();
        let page = s.env.ram(1, 0x40010);
        page.store_u64(16, 0xdead);
        s.ev.register_vcpu_info(&s.env, 1, 1, 0x40010, 0).unwrap();
        assert_eq!(page.load_u64(16), 0);
        assert_eq!(page.load_u64(shared::PENDING_SEL), u64::MAX);
        assert_eq!(s.env.take_upcalls(), [(1, 1)]);
    }

    #[test]
    fn register_vcpu_info_does_not_raise_a_second_upcall_if_one_is_pending() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        s.env.take_upcalls();
        s.env.ram(1, 0x40010);
        s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 0).unwrap();
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn events_after_registration_go_to_the_new_vcpu_info() {
        let mut s = Sys::two();
        let page = s.env.ram(1, 0x40010);
        s.ev.register_vcpu_info(&s.env, 1, 0, 0x40010, 0).unwrap();
        page.store_u64(shared::PENDING_SEL, 0);
        page.set_byte(shared::UPCALL_PENDING, 0);
        s.env.take_upcalls();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(page.load_u64(shared::PENDING_SEL), 1);
        assert_eq!(page.byte(shared::UPCALL_PENDING), 1);
        assert_eq!(s.sel0(1), 0);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn events_for_an_unregistered_secondary_vcpu_still_raise_its_upcall_once() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 1).unwrap();
        let q = s.ev.bind_ipi(1, 1).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        s.ev.send(&s.env, 1, q).unwrap();
        assert_eq!(s.env.take_upcalls(), [(1, 1)]);
        assert!(s.ev.upcall_pending(1, 1));
        assert_eq!(s.sel0(1), 0);
    }

    #[test]
    fn is_pending_reports_ports_for_polling() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.is_pending(1, p), Some(false));
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(s.ev.is_pending(1, p), Some(true));
        assert_eq!(*s.env.pending.borrow(), [(1, p)]);
        assert_eq!(s.ev.is_pending(1, 5000), None);
        assert_eq!(s.ev.is_pending(9, 1), None);
    }
}
