//! Xenstore in the running hypervisor: the subsystem that gives a domain
//! its ring page and port, the store behind one lock, the port listener
//! that serves a ring when its domain signals, and the console commands of
//! the hypervisor-as-toolstack (`xs`, `shutdown`, `reboot`).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use linkme::distributed_slice;
use oxen_core::config::Enhanced;
use oxen_core::console_cmd::{CONSOLE_COMMANDS, ConsoleCommand};
use oxen_core::guest_layout::GUEST_MAGIC;
use oxen_core::hypercall::hvm::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use oxen_core::ports::{PORT_LISTENERS, PortListener, ports};
use oxen_core::services::services;
use oxen_core::shared::SharedPage;
use oxen_core::subsystem::{
    Connection, DomainCheck, DomainSetup, InitError, Interface, SUBSYSTEMS, Subsystem,
};
use oxen_core::xen::DomId;

use oxen_core::hostdt::{DtError, Fdt, NodeId};

use crate::pvnet::{self, Vif};
use crate::{DomainInfo, Quotas, RingPage, Xenstore};

/// The ring's guest frame: Xen 4.21's place, one page into the magic
/// region (`GUEST_MAGIC_BASE + 0x1000`, gfn 0x39001).
pub const RING_GFN: u64 = (GUEST_MAGIC.start >> 12) + 1;

/// This subsystem's id among hypervisor-port listeners.
const LISTENER: u32 = 1;

/// A ring page as the store reads it.
pub struct Ring(SharedPage);

impl RingPage for Ring {
    fn load_u32(&self, off: usize) -> u32 {
        self.0.load_u32(off)
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.store_u32(off, v)
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.0.read(off, out)
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.write(off, data)
    }
}

/// What the hypervisor keeps of a domain with xenstore.
struct Connected {
    page: SharedPage,
    port: u32,
}

/// Learned at `domain_created`, used at `domain_ready`.
struct Pending {
    name: String,
    memory_kib: u64,
    vcpus: u32,
}

struct State {
    store: Xenstore<Ring>,
    pending: BTreeMap<DomId, Pending>,
    domains: BTreeMap<DomId, Connected>,
    /// The PV network devices the host tree declares (read once at boot).
    vifs: Option<Vec<Vif>>,
}

static STATE: spin::Once<spin::Mutex<State>> = spin::Once::new();

fn state() -> &'static spin::Mutex<State> {
    STATE.call_once(|| {
        spin::Mutex::new(State {
            store: Xenstore::new(Quotas::default()),
            pending: BTreeMap::new(),
            domains: BTreeMap::new(),
            vifs: None,
        })
    })
}

/// Runs `f` on the store, then signals every domain whose ring moved
/// (with the store unlocked: signalling takes the event-channel lock).
fn with_store<R>(f: impl FnOnce(&mut Xenstore<Ring>) -> R) -> R {
    let (r, signal) = {
        let mut st = state().lock();
        let r = f(&mut st.store);
        let doms = st.store.take_notifications();
        let signal: Vec<(DomId, u32)> = doms
            .into_iter()
            .filter_map(|d| st.domains.get(&d).map(|c| (d, c.port)))
            .collect();
        (r, signal)
    };
    if let Ok(p) = ports() {
        for (d, port) in signal {
            let _ = p.notify(d, port);
        }
    }
    r
}

/// Rounds of [`Xenstore::kick`] one signal may take (each handles at most
/// `REQUESTS_PER_KICK` requests, with the store unlocked in between so
/// other domains' signals get in). Linux never queues more than one ring's
/// worth (1 KiB) between signals, far below one round; a guest that keeps
/// refilling its ring from another vCPU is served again at its next signal.
const ROUNDS_PER_SIGNAL: usize = 4;

/// A guest signalled its xenstore port: serve its ring.
fn on_event(dom: DomId, _port: u32) {
    for _ in 0..ROUNDS_PER_SIGNAL {
        if !with_store(|s| {
            s.kick(dom);
            s.needs_kick(dom)
        }) {
            break;
        }
    }
}

#[distributed_slice(PORT_LISTENERS)]
static XENSTORE_PORT: PortListener = PortListener {
    id: LISTENER,
    name: "xenstore",
    event: on_event,
};

struct XenstoreSubsystem;

fn fail(what: &str, dom: DomId, e: impl core::fmt::Debug) -> InitError {
    InitError {
        message: alloc::format!("xenstore for domain {dom}: {what} ({e:?})"),
    }
}

impl Subsystem for XenstoreSubsystem {
    fn name(&self) -> &'static str {
        "xenstore"
    }

    /// After the interfaces it stands on (event channels at 20).
    fn order(&self) -> u32 {
        40
    }

    fn provides(&self) -> Option<Interface> {
        Some(Interface::Xenstore)
    }

    /// `"enabled"` and the bare property. `"legacy"` stays refused by core:
    /// it leaves the ring to a dom0 toolstack that never comes.
    fn grants(&self, enhanced: Enhanced) -> bool {
        enhanced == Enhanced::Enabled
    }

    fn heap_budget(&self, dom: &oxen_core::subsystem::BudgetInput<'_>) -> u64 {
        if !dom.has(Interface::Xenstore) {
            return 0;
        }
        crate::heap_budget(&Quotas::default())
    }

    /// The domain's xenstore port, bound when it is built.
    fn hypervisor_ports(&self, granted: &[Interface]) -> &'static [u32] {
        if granted.contains(&Interface::Xenstore) {
            &[LISTENER]
        } else {
            &[]
        }
    }

    /// The PV devices: every mistake `domains_built` would meet.
    fn check_domains(
        &self,
        fdt: &Fdt<'_>,
        domains: &[DomainCheck<'_>],
    ) -> Result<Vec<Connection>, Vec<DtError>> {
        let ids: Vec<(NodeId, DomId)> = domains.iter().map(|d| (d.node, d.domid)).collect();
        let has_xenstore = |id: DomId| {
            domains
                .iter()
                .any(|d| d.domid == id && d.has(Interface::Xenstore))
        };
        let vifs = pvnet::read_vifs(fdt, &ids, &has_xenstore)?;
        Ok(vifs.iter().map(pvnet::describe).collect())
    }

    fn domain_created(&self, dom: &DomainSetup<'_>) -> Result<(), InitError> {
        if !dom.has(Interface::Xenstore) {
            return Ok(());
        }
        let name = dom.path.rsplit('/').next().unwrap_or(dom.path);
        let memory_kib = dom.ram.iter().map(|r| r.size()).sum::<u64>() / 1024;
        state().lock().pending.insert(
            dom.domid,
            Pending {
                name: String::from(name),
                memory_kib,
                vcpus: dom.vcpus,
            },
        );
        Ok(())
    }

    fn domain_ready(&self, dom: &DomainSetup<'_>) -> Result<(), InitError> {
        let Some(p) = state().lock().pending.remove(&dom.domid) else {
            return Ok(());
        };
        let id = dom.domid;
        let page = services()
            .alloc_page()
            .ok_or_else(|| fail("no memory for the ring page", id, "ENOMEM"))?;
        let port = ports()
            .and_then(|ports| ports.bind(id, 0, LISTENER))
            .map_err(|e| fail("no event-channel port", id, e.name()))?;
        services()
            .map(id, RING_GFN, page, true)
            .map_err(|e| fail("cannot map the ring page", id, e.name()))?;
        services()
            .set_hvm_param(id, HVM_PARAM_STORE_PFN, RING_GFN)
            .and_then(|()| services().set_hvm_param(id, HVM_PARAM_STORE_EVTCHN, port.into()))
            .map_err(|e| fail("cannot set the HVM parameters", id, e.name()))?;
        let info = DomainInfo {
            domid: id,
            name: &p.name,
            memory_kib: p.memory_kib,
            vcpus: p.vcpus,
            port,
            ring_gfn: RING_GFN,
        };
        state().lock().domains.insert(id, Connected { page, port });
        with_store(|s| s.introduce_domain(&info, Ring(page)))
            .map_err(|e| fail("cannot write its nodes", id, e.name()))?;
        // A rebuilt domain gets its PV devices back (at first boot they are
        // written once every domain exists, in `domains_built`).
        let vifs = state().lock().vifs.clone().unwrap_or_default();
        for v in vifs.iter().filter(|v| v.frontend == id || v.backend == id) {
            write_vif(v).map_err(|e| fail("cannot write a PV device's nodes", id, e.name()))?;
        }
        Ok(())
    }

    fn domains_built(
        &self,
        fdt: &Fdt<'_>,
        domains: &[(NodeId, DomId)],
    ) -> Result<(), Vec<DtError>> {
        let has_xenstore = |d: DomId| state().lock().domains.contains_key(&d);
        let vifs = pvnet::read_vifs(fdt, domains, &has_xenstore)?;
        let mut errors = Vec::new();
        for v in &vifs {
            // The connection policy opens for exactly this pair: grant
            // maps and interdomain event channels between them.
            services().connect(v.frontend, v.backend);
            if let Err(e) = write_vif(v) {
                errors.push(DtError::node(
                    &v.path,
                    alloc::format!("cannot write the device's xenstore nodes ({})", e.name()),
                ));
            }
        }
        state().lock().vifs = Some(vifs);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn domain_destroyed(&self, domid: DomId) {
        let gone = {
            let mut st = state().lock();
            st.pending.remove(&domid);
            st.domains.remove(&domid)
        };
        if let Some(c) = gone {
            let vifs = state().lock().vifs.clone().unwrap_or_default();
            with_store(|s| {
                s.release_domain(domid);
                // The other end's half of each of its devices goes too, so
                // that end's driver closes the device (a toolstack removes
                // it); both halves are written again when the domain is back.
                for v in vifs.iter() {
                    let other = if v.frontend == domid {
                        pvnet::backend_dir(v)
                    } else if v.backend == domid {
                        pvnet::frontend_dir(v)
                    } else {
                        continue;
                    };
                    let _ = s.rm(&other);
                }
            });
            services().free_page(c.page);
        }
    }
}

#[distributed_slice(SUBSYSTEMS)]
static XENSTORE: &dyn Subsystem = &XenstoreSubsystem;

// --- The hypervisor as the toolstack, on the console --------------------

/// Lines printed for `xs ls` at most.
const LS_MAX: usize = 400;

fn xs_command(args: &str) {
    let (op, rest) = args.split_once(' ').unwrap_or((args, ""));
    let rest = rest.trim();
    let print_err = |e: crate::Error| oxen_core::println!("xs {op}: {}", e.name());
    match op {
        "ls" | "" => {
            let path = if rest.is_empty() { "/" } else { rest };
            for l in with_store(|s| s.ls(path, LS_MAX)) {
                oxen_core::println!("{l}");
            }
        }
        "read" => match with_store(|s| s.read(rest)) {
            Ok(v) => oxen_core::println!("{}", String::from_utf8_lossy(&v)),
            Err(e) => print_err(e),
        },
        "write" => {
            let (path, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Err(e) = with_store(|s| s.write(path, value.as_bytes())) {
                print_err(e);
            }
        }
        "rm" => {
            if let Err(e) = with_store(|s| s.rm(rest)) {
                print_err(e);
            }
        }
        _ => oxen_core::println!("xs: unknown operation \"{op}\" (ls, read, write, rm)"),
    }
}

#[distributed_slice(CONSOLE_COMMANDS)]
static XS: ConsoleCommand = ConsoleCommand {
    name: "xs",
    usage: "ls [PATH] | read PATH | write PATH VALUE | rm PATH",
    help: "read and change the xenstore as the toolstack",
    run: xs_command,
};

/// Asks a domain to stop through `control/shutdown`, as `xl shutdown` and
/// `xl reboot` do; the domain's own xenbus driver acts on it.
fn request(args: &str, what: &str) {
    let Ok(id) = args.trim().parse::<DomId>() else {
        oxen_core::println!("usage: {what} DOMID");
        return;
    };
    let path = alloc::format!("/local/domain/{id}/control/shutdown");
    let known = with_store(|s| s.is_introduced(id));
    if !known {
        oxen_core::println!("d{id} has no xenstore connection: nothing to ask");
        return;
    }
    match with_store(|s| s.write(&path, what.as_bytes())) {
        Ok(()) => oxen_core::println!("d{id}: asked to {what} ({path} = \"{what}\")"),
        Err(e) => oxen_core::println!("d{id}: cannot write {path}: {}", e.name()),
    }
}

#[distributed_slice(CONSOLE_COMMANDS)]
static SHUTDOWN: ConsoleCommand = ConsoleCommand {
    name: "shutdown",
    usage: "DOMID",
    help: "ask a domain to power off (writes control/shutdown, as xl shutdown)",
    run: |a| request(a, "poweroff"),
};

#[distributed_slice(CONSOLE_COMMANDS)]
static REBOOT: ConsoleCommand = ConsoleCommand {
    name: "reboot",
    usage: "DOMID",
    help: "ask a domain to reboot (writes control/shutdown, as xl reboot)",
    run: |a| request(a, "reboot"),
};

/// Writes both halves of a PV network device, as the toolstack, when both
/// its domains are connected to xenstore.
fn write_vif(v: &Vif) -> Result<(), crate::Error> {
    let both = {
        let st = state().lock();
        st.domains.contains_key(&v.frontend) && st.domains.contains_key(&v.backend)
    };
    if !both {
        return Ok(());
    }
    with_store(|s| {
        for (path, value, perms) in pvnet::device_nodes(v) {
            s.write_with_perms(&path, value.as_bytes(), &perms)?;
        }
        Ok(())
    })
}
