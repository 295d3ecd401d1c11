//! The subsystem registry: optional Xen interfaces register themselves here
//! through a `linkme` distributed slice, and core iterates them without ever
//! naming one.

use alloc::vec::Vec;
use core::fmt;

use crate::bootargs::BootArgs;
use crate::config::Enhanced;
use crate::memmap::Range;
use crate::xen::DomId;

/// The Xen interfaces a domain can be given. They are Xen's guest ABI, so
/// core knows them; which *subsystem* provides one is up to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    GrantTable,
    EventChannel,
    Xenstore,
    ExtendedRegions,
}

impl Interface {
    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::GrantTable => "grant tables",
            Self::EventChannel => "event channels",
            Self::Xenstore => "xenstore",
            Self::ExtendedRegions => "extended regions",
        }
    }

    /// The board cargo feature that links the subsystem providing it.
    pub fn cargo_feature(self) -> &'static str {
        match self {
            Self::GrantTable => "gnttab",
            Self::EventChannel => "evtchn",
            Self::Xenstore => "xenstore",
            Self::ExtendedRegions => "extended-regions",
        }
    }
}

/// What a subsystem learns about a domain being built.
#[derive(Debug, Clone)]
pub struct DomainSetup<'a> {
    pub domid: DomId,
    /// The `xen,domain` node's path, for messages.
    pub path: &'a str,
    pub enhanced: Enhanced,
    pub vcpus: u32,
    /// Guest RAM banks (guest-physical).
    pub ram: &'a [Range],
    /// Bytes of RAM in each of Xen's two guest banks.
    pub ram_split: [u64; 2],
    /// The stage-2 input-address size.
    pub ipa_bits: u32,
    /// Whether the domain is given each interface.
    pub granted: &'a [Interface],
    /// Grant-table limits from the configuration.
    pub max_grant_frames: u32,
    pub max_maptrack_frames: u32,
    /// Highest event-channel port.
    pub max_evtchn_port: u32,
}

impl DomainSetup<'_> {
    pub fn has(&self, i: Interface) -> bool {
        self.granted.contains(&i)
    }
}

/// The contributions to a domain's `/hypervisor` node, collected from the
/// subsystems in declared order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HypervisorParts {
    /// `reg` entries, appended in subsystem order (the grant window first).
    pub reg: Vec<Range>,
    /// The event-channel upcall PPI, if a subsystem provides one.
    pub interrupt_ppi: Option<u32>,
}

/// One optional interface (event channels, grant tables, …) living in its own
/// crate under `features/`.
///
/// An implementation registers itself with
/// `#[distributed_slice(oxen_core::subsystem::SUBSYSTEMS)]`; the board binary
/// decides whether the crate is linked at all.
pub trait Subsystem: Sync {
    /// Short, stable name, e.g. `"evtchn"`. Shown in the boot log and used to
    /// check that an image registers exactly the features it was built with.
    fn name(&self) -> &'static str;

    /// Explicit position among subsystems; lower runs first and contributes
    /// first (the grant table's `reg[0]` depends on this, never on link order).
    fn order(&self) -> u32;

    /// Xen command-line options (from `/chosen/xen,xen-bootargs`) this
    /// subsystem implements. Options no one claims are reported as ignored.
    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called once on the boot CPU, in order, before any domain is built.
    fn init(&self, _ctx: &InitContext<'_>) -> Result<(), InitError> {
        Ok(())
    }

    /// The Xen interface this subsystem implements, if any.
    fn provides(&self) -> Option<Interface> {
        None
    }

    /// Whether a domain with this `xen,enhanced` value gets the interface:
    /// each subsystem decides for itself what the value means to it.
    fn grants(&self, _enhanced: Enhanced) -> bool {
        false
    }

    /// A domain is being built (or rebuilt); called for every subsystem,
    /// granted or not, in declared order.
    fn domain_created(&self, _dom: &DomainSetup<'_>) -> Result<(), InitError> {
        Ok(())
    }

    /// The domain built by [`Subsystem::domain_created`] now exists for the
    /// hypervisor's services (its stage-2 can be changed, its HVM parameters
    /// set, its event-channel ports bound) and none of its vCPUs has run.
    /// Called for every subsystem in declared order, on every (re)build.
    fn domain_ready(&self, _dom: &DomainSetup<'_>) -> Result<(), InitError> {
        Ok(())
    }

    /// The configuration connects domains `a` and `b` (a static event
    /// channel, a PV device): each subsystem with a connection policy of its
    /// own opens it for the pair. Called by `Services::connect`.
    fn domains_connected(&self, _a: DomId, _b: DomId) {}

    /// A domain is gone (powered off, crashed, or about to be rebuilt).
    fn domain_destroyed(&self, _domid: DomId) {}

    /// Every domain has been built and none runs yet: the moment to read
    /// what the host device tree says about connections between domains
    /// (e.g. static event channels). `domains` maps each `xen,domain`
    /// node to its domain ID. Errors stop the boot.
    fn domains_built(
        &self,
        _fdt: &crate::hostdt::Fdt<'_>,
        _domains: &[(crate::hostdt::NodeId, DomId)],
    ) -> Result<(), Vec<crate::hostdt::DtError>> {
        Ok(())
    }

    /// Adds this subsystem's part of the domain's `/hypervisor` node
    /// (called only for domains that have the node, in declared order).
    fn hypervisor_node(&self, _dom: &DomainSetup<'_>, _node: &mut HypervisorParts) {}

    /// The hypervisor-port listeners (`oxen_core::ports`) this subsystem
    /// binds a port for when a domain given `granted` is built, each taking
    /// the domain's lowest free port: what [`Subsystem::check_domains`]
    /// needs to know which ports are taken before any domain exists.
    fn hypervisor_ports(&self, _granted: &[Interface]) -> &'static [u32] {
        &[]
    }

    /// Validates, before anything is built, what the host device tree says
    /// about connections between domains (static event channels, PV
    /// devices): every error that [`Subsystem::domains_built`] would meet,
    /// from the configuration alone. Pure, so the host tool `oxen-check`
    /// runs the same code. On success, what the tree connects, for people.
    fn check_domains(
        &self,
        _fdt: &crate::hostdt::Fdt<'_>,
        _domains: &[DomainCheck<'_>],
    ) -> Result<Vec<Connection>, Vec<crate::hostdt::DtError>> {
        Ok(Vec::new())
    }

    /// The most hypervisor heap, in bytes, that the domain can make this
    /// subsystem hold when it reaches every one of its bounds
    /// (docs/bounds.md), allocator overhead and growth included. The boot
    /// reserves the sum over domains and subsystems, so that no domain's
    /// allocations can exhaust the heap another domain needs.
    fn heap_budget(&self, _dom: &BudgetInput<'_>) -> u64 {
        0
    }
}

/// What [`Subsystem::heap_budget`] knows of a domain: its configuration.
#[derive(Debug, Clone)]
pub struct BudgetInput<'a> {
    pub vcpus: u32,
    pub memory_kib: u64,
    /// The interfaces the domain is given under this image.
    pub granted: &'a [Interface],
    pub max_grant_frames: u32,
    pub max_maptrack_frames: u32,
    pub max_evtchn_port: u32,
}

impl BudgetInput<'_> {
    pub fn has(&self, i: Interface) -> bool {
        self.granted.contains(&i)
    }
}

/// A domain as [`Subsystem::check_domains`] sees it: configured and
/// validated, not yet built.
#[derive(Debug, Clone)]
pub struct DomainCheck<'a> {
    /// The `xen,domain` node.
    pub node: crate::hostdt::NodeId,
    pub domid: DomId,
    /// The node's path, for messages.
    pub path: &'a str,
    pub vcpus: u32,
    /// The interfaces the domain is given under this image.
    pub granted: &'a [Interface],
    /// Highest event-channel port.
    pub max_evtchn_port: u32,
    /// The hypervisor-port listeners bound for it at build, in order
    /// (from [`Subsystem::hypervisor_ports`] of every subsystem).
    pub hypervisor_ports: &'a [u32],
}

impl DomainCheck<'_> {
    pub fn has(&self, i: Interface) -> bool {
        self.granted.contains(&i)
    }
}

/// Something the host tree connects between domains, as a check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// What it is, e.g. `"static event channel"`.
    pub kind: &'static str,
    /// The node that declares it.
    pub path: alloc::string::String,
    /// The rest in words, e.g. `d1 port 10 <-> d2 port 12`.
    pub detail: alloc::string::String,
}

/// Every subsystem linked into the image, in link order (unsorted).
#[linkme::distributed_slice]
pub static SUBSYSTEMS: [&'static dyn Subsystem];

/// What core hands a subsystem at initialisation.
pub struct InitContext<'a> {
    /// The hypervisor command line (`/chosen/xen,xen-bootargs`).
    pub bootargs: &'a BootArgs<'a>,
}

/// A subsystem refused to initialise; boot stops with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    /// Human-readable reason, naming the option or value at fault.
    pub message: alloc::string::String,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A registry defect that would make the image behave unpredictably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Two linked subsystems share a name.
    DuplicateName(&'static str),
    /// Two linked subsystems share an order value, so their relative order
    /// (and with it the layout of shared device-tree properties) is undefined.
    DuplicateOrder {
        order: u32,
        first: &'static str,
        second: &'static str,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(name) => {
                write!(f, "subsystem \"{name}\" is registered twice")
            }
            Self::DuplicateOrder {
                order,
                first,
                second,
            } => write!(
                f,
                "subsystems \"{first}\" and \"{second}\" both declare order {order}; \
                 orders must be unique"
            ),
        }
    }
}

/// The registered subsystems, sorted by their declared order.
pub struct Registry {
    sorted: Vec<&'static dyn Subsystem>,
}

impl Registry {
    /// Sorts `slice` by order and rejects duplicate names or orders.
    pub fn from_slice(slice: &[&'static dyn Subsystem]) -> Result<Self, RegistryError> {
        let mut sorted: Vec<&'static dyn Subsystem> = slice.to_vec();
        crate::small_sort::sort_by_key(&mut sorted, |s| (s.order(), s.name()));
        for pair in sorted.windows(2) {
            if pair[0].order() == pair[1].order() {
                if pair[0].name() == pair[1].name() {
                    return Err(RegistryError::DuplicateName(pair[0].name()));
                }
                return Err(RegistryError::DuplicateOrder {
                    order: pair[0].order(),
                    first: pair[0].name(),
                    second: pair[1].name(),
                });
            }
        }
        for (i, a) in sorted.iter().enumerate() {
            if sorted[i + 1..].iter().any(|b| b.name() == a.name()) {
                return Err(RegistryError::DuplicateName(a.name()));
            }
        }
        Ok(Self { sorted })
    }

    /// The registry of everything linked into this image.
    pub fn linked() -> Result<Self, RegistryError> {
        Self::from_slice(&SUBSYSTEMS)
    }

    /// The registry of the linked subsystems whose name `keep` accepts: a
    /// host tool that links every feature crate stands for an image built
    /// with some of them.
    pub fn linked_filtered(keep: impl Fn(&str) -> bool) -> Result<Self, RegistryError> {
        let chosen: Vec<&'static dyn Subsystem> = SUBSYSTEMS
            .iter()
            .copied()
            .filter(|s| keep(s.name()))
            .collect();
        Self::from_slice(&chosen)
    }

    /// Subsystems in declared order.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn Subsystem> + '_ {
        self.sorted.iter().copied()
    }

    /// Names in declared order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|s| s.name()).collect()
    }

    /// Whether a subsystem of that name is linked.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|s| s.name() == name)
    }

    /// Every command-line option some subsystem implements.
    pub fn options(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.iter().flat_map(|s| s.options().iter().copied())
    }

    /// Initialises every subsystem in order, collecting all failures.
    pub fn init_all(&self, ctx: &InitContext<'_>) -> Vec<(&'static str, InitError)> {
        self.iter()
            .filter_map(|s| s.init(ctx).err().map(|e| (s.name(), e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str, u32);
    impl Subsystem for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn order(&self) -> u32 {
            self.1
        }
    }

    static B: Fake = Fake("b", 20);
    static A: Fake = Fake("a", 10);
    static C: Fake = Fake("c", 30);
    static A_AGAIN: Fake = Fake("a", 40);
    static CLASH: Fake = Fake("clash", 10);

    #[test]
    fn registry_sorts_by_declared_order_not_slice_order() {
        let reg = Registry::from_slice(&[&C, &A, &B]).unwrap();
        assert_eq!(reg.names(), ["a", "b", "c"]);
    }

    #[test]
    fn duplicate_name_is_rejected() {
        let err = Registry::from_slice(&[&A, &A_AGAIN]).err().unwrap();
        assert_eq!(err, RegistryError::DuplicateName("a"));
    }

    #[test]
    fn duplicate_order_is_rejected_naming_both() {
        let err = Registry::from_slice(&[&A, &CLASH]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "subsystems \"a\" and \"clash\" both declare order 10; orders must be unique"
        );
    }

    #[test]
    fn a_filtered_registry_of_core_alone_is_empty() {
        assert!(
            Registry::linked_filtered(|_| true)
                .unwrap()
                .names()
                .is_empty()
        );
    }

    #[test]
    fn core_alone_links_no_subsystem() {
        // oxen-core never registers a subsystem itself; features do.
        assert!(Registry::linked().unwrap().names().is_empty());
    }
}
