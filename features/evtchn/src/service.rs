//! Event channels in the running hypervisor: the subsystem, every domain's
//! ports behind one lock, the [`Env`] over core's services, and the
//! hypercall, shared_info and vcpu_info glue.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use linkme::distributed_slice;
use oxen_core::config::Enhanced;
use oxen_core::guest_layout::GUEST_EVTCHN_PPI;
use oxen_core::hostdt::{DtError, Fdt, NodeId};
use oxen_core::hypercall::memory::XENMAPSPACE_SHARED_INFO;
use oxen_core::hypercall::vcpu::VCPUOP_REGISTER_VCPU_INFO;
use oxen_core::hypercall::{
    Caller, HYPERCALLS, Hypercall, PHYSMAP_SPACES, PhysmapSpace, VCPU_OPS, VcpuOp,
};
use oxen_core::ports::HvPorts;
use oxen_core::services::services;
use oxen_core::shared::SharedPage;
use oxen_core::subsystem::{
    Connection, DomainCheck, DomainSetup, HypervisorParts, InitContext, InitError, Interface,
    SUBSYSTEMS, Subsystem,
};
use oxen_core::xen::errno::{ENOMEM, ENOSYS, ESRCH, Errno};
use oxen_core::xen::{DOMID_XEN, DomId, nr};

use crate::{Env, EventChannels, Policy, Port, StaticChannel, arg_size, has_output};

type Channels = EventChannels<SharedPage>;

static EVENTS: spin::Once<spin::Mutex<Channels>> = spin::Once::new();
/// The static channels read at boot, bound again when a domain is rebuilt.
static STATIC: spin::Mutex<Vec<StaticChannel>> = spin::Mutex::new(Vec::new());

fn events() -> &'static spin::Mutex<Channels> {
    EVENTS.call_once(|| spin::Mutex::new(EventChannels::new(Policy::Silo, true)))
}

/// The hypervisor as event channels see it. Events for ports served inside
/// the hypervisor are collected while the port tables are locked and
/// handed to their listeners by [`HvEnv::deliver`] once the lock is gone,
/// so a listener can answer with [`HvPorts::notify`].
#[derive(Default)]
struct HvEnv {
    to_listeners: RefCell<Vec<(u32, DomId, Port)>>,
}

impl HvEnv {
    /// Hands the collected hypervisor-port events to their listeners; call
    /// with the event-channel lock released.
    fn deliver(self) {
        let events = self.to_listeners.into_inner();
        if events.capacity() == 0 {
            // The common case, nothing collected and nothing allocated:
            // skip the vector's drop, which the size-optimised build
            // calls out of line on every event-channel hypercall.
            core::mem::forget(events);
            return;
        }
        for (listener, dom, port) in events {
            oxen_core::ports::deliver(listener, dom, port);
        }
    }
}

impl Env for HvEnv {
    type Page = SharedPage;

    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<SharedPage> {
        services().guest_page(dom, gfn)
    }

    fn upcall(&self, dom: DomId, vcpu: usize) {
        services().upcall(dom, vcpu);
    }

    fn notify_hypervisor(&self, callback: u32, dom: DomId, port: Port) {
        self.to_listeners.borrow_mut().push((callback, dom, port));
    }
}

/// Hypervisor-served ports for other subsystems (`oxen_core::ports`).
struct Ports;

impl HvPorts for Ports {
    fn bind(&self, dom: DomId, port: u32, listener: u32) -> Result<u32, Errno> {
        events()
            .lock()
            .bind_hypervisor(dom, port, listener, DOMID_XEN)
    }

    fn notify(&self, dom: DomId, port: u32) -> Result<(), Errno> {
        let env = HvEnv::default();
        let r = events().lock().notify(&env, dom, port);
        env.deliver();
        r
    }

    fn unbind(&self, dom: DomId, port: u32) {
        let _ = events().lock().unbind_hypervisor(dom, port);
    }
}

static PORTS: Ports = Ports;

/// Bytes of the largest argument [`arg_size`] gives (`EVTCHNOP_status`).
const MAX_ARG: usize = 24;

fn event_channel_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, arg) = (a[0] as u32, a[1]);
    let Some(size) = arg_size(cmd) else {
        return ENOSYS.ret();
    };
    // Every argument is a few bytes: no allocation on this hot path.
    let mut storage = [0u8; MAX_ARG];
    let Some(buf) = storage.get_mut(..size) else {
        return ENOSYS.ret();
    };
    if let Err(e) = c.read(arg, buf) {
        return e.ret();
    }
    let env = HvEnv::default();
    let r = events().lock().event_channel_op(&env, c.domid(), cmd, buf);
    env.deliver();
    if r == 0
        && has_output(cmd)
        && let Err(e) = c.write(arg, buf)
    {
        return e.ret();
    }
    r
}

#[distributed_slice(HYPERCALLS)]
static EVENT_CHANNEL_OP: Hypercall = Hypercall {
    nr: nr::EVENT_CHANNEL_OP,
    name: "event_channel_op",
    interface: Some(Interface::EventChannel),
    handler: event_channel_op,
};

/// `XENMEM_add_to_physmap(XENMAPSPACE_shared_info, 0, gpfn)`.
fn map_shared_info(c: &mut dyn Caller, idx: u64, gpfn: u64) -> Result<(), Errno> {
    let dom = c.domid();
    let page = {
        let mut ev = events().lock();
        ev.map_shared_info(dom, idx, gpfn)?;
        *ev.shared_info(dom).ok_or(ESRCH)?
    };
    services().map(dom, gpfn, page, true)
}

#[distributed_slice(PHYSMAP_SPACES)]
static SHARED_INFO_SPACE: PhysmapSpace = PhysmapSpace {
    space: XENMAPSPACE_SHARED_INFO,
    interface: Interface::EventChannel,
    handler: map_shared_info,
};

/// `VCPUOP_register_vcpu_info(vcpu, {mfn, offset})`.
fn register_vcpu_info(c: &mut dyn Caller, vcpu: usize, arg: u64) -> i64 {
    let mut b = [0u8; 16];
    if let Err(e) = c.read(arg, &mut b) {
        return e.ret();
    }
    let gfn = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let offset = u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4]));
    match events()
        .lock()
        .register_vcpu_info(&HvEnv::default(), c.domid(), vcpu, gfn, offset)
    {
        Ok(()) => 0,
        Err(e) => e.ret(),
    }
}

#[distributed_slice(VCPU_OPS)]
static REGISTER_VCPU_INFO: VcpuOp = VcpuOp {
    cmd: VCPUOP_REGISTER_VCPU_INFO,
    interface: Interface::EventChannel,
    handler: register_vcpu_info,
};

struct EventChannelSubsystem;

impl Subsystem for EventChannelSubsystem {
    fn name(&self) -> &'static str {
        "evtchn"
    }

    /// After the grant table (`reg[0]`), before extended regions.
    fn order(&self) -> u32 {
        20
    }

    fn options(&self) -> &'static [&'static str] {
        &["evtchn_fifo"]
    }

    fn init(&self, ctx: &InitContext<'_>) -> Result<(), InitError> {
        let fifo = match ctx.bootargs.boolean("evtchn_fifo") {
            None => true,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(InitError {
                    message: alloc::format!("{e}"),
                });
            }
        };
        // Xen's XSM choice is the connection policy (core validates it).
        let policy = match ctx.bootargs.get("xsm").and_then(|a| a.value) {
            Some("dummy") => Policy::Open,
            _ => Policy::Silo,
        };
        EVENTS.call_once(|| spin::Mutex::new(EventChannels::new(policy, fifo)));
        oxen_core::ports::install(&PORTS);
        Ok(())
    }

    fn provides(&self) -> Option<Interface> {
        Some(Interface::EventChannel)
    }

    /// Domains with a `/hypervisor` node (Xen gives every domU event
    /// channels, advertised or not; Oxen closes them otherwise).
    fn grants(&self, enhanced: Enhanced) -> bool {
        matches!(enhanced, Enhanced::NoXenstore | Enhanced::Enabled)
    }

    fn heap_budget(&self, dom: &oxen_core::subsystem::BudgetInput<'_>) -> u64 {
        if !dom.has(Interface::EventChannel) {
            return 0;
        }
        crate::heap_budget(dom.max_evtchn_port, dom.vcpus)
    }

    fn domain_created(&self, dom: &DomainSetup<'_>) -> Result<(), InitError> {
        if !dom.has(Interface::EventChannel) {
            return Ok(());
        }
        let fail = |what: String| InitError { message: what };
        let page = services().alloc_page().ok_or_else(|| {
            fail(alloc::format!(
                "no memory for the shared_info page ({})",
                ENOMEM.name()
            ))
        })?;
        events()
            .lock()
            .domain_created(dom.domid, dom.vcpus as usize, dom.max_evtchn_port, page)
            .map_err(|e| {
                fail(alloc::format!(
                    "cannot set up event channels ({})",
                    e.name()
                ))
            })?;
        // A rebuilt domain gets its static channels back.
        let channels: Vec<StaticChannel> = STATIC
            .lock()
            .iter()
            .filter(|c| c.local.dom == dom.domid || c.remote.dom == dom.domid)
            .cloned()
            .collect();
        if !channels.is_empty() {
            events()
                .lock()
                .bind_static(&HvEnv::default(), &channels)
                .map_err(|e| fail(alloc::format!("static event channels: {}", e.len())))?;
        }
        Ok(())
    }

    fn domains_connected(&self, a: DomId, b: DomId) {
        events().lock().allow(a, b);
    }

    fn domain_destroyed(&self, domid: DomId) {
        let mut ev = events().lock();
        if ev.has_domain(domid) {
            let page = ev.shared_info(domid).copied();
            ev.domain_destroyed(domid);
            drop(ev);
            if let Some(p) = page {
                services().free_page(p);
            }
        }
    }

    fn domains_built(
        &self,
        fdt: &Fdt<'_>,
        domains: &[(NodeId, DomId)],
    ) -> Result<(), Vec<DtError>> {
        let channels = crate::read_static_channels(fdt, domains)?;
        if channels.is_empty() {
            return Ok(());
        }
        events().lock().bind_static(&HvEnv::default(), &channels)?;
        for c in &channels {
            services().connect(c.local.dom, c.remote.dom);
        }
        *STATIC.lock() = channels;
        Ok(())
    }

    fn check_domains(
        &self,
        fdt: &Fdt<'_>,
        domains: &[DomainCheck<'_>],
    ) -> Result<Vec<Connection>, Vec<DtError>> {
        crate::check_static_channels(fdt, domains).map(|c| crate::describe_static_channels(&c))
    }

    fn hypervisor_node(&self, dom: &DomainSetup<'_>, node: &mut HypervisorParts) {
        if dom.has(Interface::EventChannel) {
            node.interrupt_ppi = Some(GUEST_EVTCHN_PPI);
        }
    }
}

#[distributed_slice(SUBSYSTEMS)]
static EVENT_CHANNELS: &dyn Subsystem = &EventChannelSubsystem;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_fits_the_stack_buffer() {
        for cmd in 0..64 {
            assert!(arg_size(cmd).unwrap_or(0) <= MAX_ARG, "EVTCHNOP {cmd}");
        }
    }
}
