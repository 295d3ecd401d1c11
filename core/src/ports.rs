//! Event-channel ports whose other end is inside the hypervisor (the
//! xenstore ring's, for one): the subsystem that owns event channels
//! installs [`HvPorts`], and subsystems that serve a port register a
//! [`PortListener`], so neither names the other.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use crate::xen::DomId;
use crate::xen::errno::{ENOSYS, Errno};

/// Binding, signalling and freeing hypervisor-served ports.
pub trait HvPorts: Sync {
    /// Binds a port of `dom` whose events go to the listener `listener`
    /// (a [`PortListener::id`]); `port` 0 takes the lowest free port.
    /// Returns the port.
    fn bind(&self, dom: DomId, port: u32, listener: u32) -> Result<u32, Errno>;
    /// Raises an event on such a port of `dom`.
    fn notify(&self, dom: DomId, port: u32) -> Result<(), Errno>;
    /// Frees such a port.
    fn unbind(&self, dom: DomId, port: u32);
}

/// A subsystem that serves hypervisor-side ports.
pub struct PortListener {
    /// Unique among listeners; passed to [`HvPorts::bind`].
    pub id: u32,
    /// What it is, for messages ("xenstore").
    pub name: &'static str,
    /// A guest sent an event on `port` of `dom`. Called with no
    /// event-channel lock held, so it may call [`HvPorts::notify`].
    pub event: fn(dom: DomId, port: u32),
}

/// Every port listener linked into the image.
#[linkme::distributed_slice]
pub static PORT_LISTENERS: [PortListener];

static PORTS: spin::Once<&'static dyn HvPorts> = spin::Once::new();

/// Installs the implementation (once, by the event-channel subsystem).
pub fn install(p: &'static dyn HvPorts) {
    PORTS.call_once(|| p);
}

/// The implementation, or `ENOSYS` in an image without event channels.
pub fn ports() -> Result<&'static dyn HvPorts, Errno> {
    PORTS.get().copied().ok_or(ENOSYS)
}

/// The listener registered under `id`.
pub fn listener(id: u32) -> Option<&'static PortListener> {
    PORT_LISTENERS.iter().find(|l| l.id == id)
}

/// Hands a guest's event to the listener `id`; events for an unknown
/// listener are dropped.
pub fn deliver(id: u32, dom: DomId, port: u32) {
    if let Some(l) = listener(id) {
        (l.event)(dom, port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_alone_registers_no_listener_and_drops_events() {
        assert!(listener(1).is_none());
        deliver(1, 1, 1);
        assert!(ports().is_err());
    }
}
