//! Static event channels checked before any domain exists: the channels
//! read from the tree and bound into a model of the port tables the boot
//! will have, so every error [`crate::EventChannels::bind_static`] would
//! meet at boot is found from the configuration alone (and on the host, by
//! `oxen-check`).

use alloc::format;
use alloc::vec::Vec;

use oxen_core::hostdt::{DtError, Fdt, NodeId};
use oxen_core::subsystem::{Connection, DomainCheck, Interface};
use oxen_core::xen::{DOMID_XEN, DomId};

use crate::{Env, EventChannels, Policy, Port, SharedPage, StaticChannel, read_static_channels};

/// A page nobody reads: the model's `shared_info`.
struct NoPage;

impl SharedPage for NoPage {
    fn load_u64(&self, _off: usize) -> u64 {
        0
    }
    fn store_u64(&self, _off: usize, _value: u64) {}
    fn fetch_or_u64(&self, _off: usize, _bits: u64) -> u64 {
        0
    }
    fn fetch_and_u64(&self, _off: usize, _bits: u64) -> u64 {
        0
    }
    fn load_u32(&self, _off: usize) -> u32 {
        0
    }
    fn store_u32(&self, _off: usize, _value: u32) {}
    fn fetch_or_u32(&self, _off: usize, _bits: u32) -> u32 {
        0
    }
    fn fetch_and_u32(&self, _off: usize, _bits: u32) -> u32 {
        0
    }
    fn compare_exchange_u32(&self, _off: usize, old: u32, _new: u32) -> Result<u32, u32> {
        Ok(old)
    }
}

/// No guest runs in the model.
struct NoGuests;

impl Env for NoGuests {
    type Page = NoPage;
    fn guest_page(&self, _dom: DomId, _gfn: u64) -> Option<NoPage> {
        None
    }
    fn upcall(&self, _dom: DomId, _vcpu: usize) {}
    fn notify_hypervisor(&self, _callback: u32, _dom: DomId, _port: Port) {}
}

/// Reads the static channels of the tree and binds them into the port
/// tables the domains will have when `domains_built` runs: each domain
/// given event channels, with the hypervisor's own ports (e.g. xenstore's)
/// already bound.
pub fn check_static_channels(
    fdt: &Fdt<'_>,
    domains: &[DomainCheck<'_>],
) -> Result<Vec<StaticChannel>, Vec<DtError>> {
    let ids: Vec<(NodeId, DomId)> = domains.iter().map(|d| (d.node, d.domid)).collect();
    let channels = read_static_channels(fdt, &ids)?;
    if channels.is_empty() {
        return Ok(channels);
    }
    let mut model: EventChannels<NoPage> = EventChannels::new(Policy::Silo, true);
    for d in domains.iter().filter(|d| d.has(Interface::EventChannel)) {
        // The boot creates the same table; a refusal would stop it there.
        if model
            .domain_created(d.domid, d.vcpus as usize, d.max_evtchn_port, NoPage)
            .is_ok()
        {
            for &listener in d.hypervisor_ports {
                let _ = model.bind_hypervisor(d.domid, 0, listener, DOMID_XEN);
            }
        }
    }
    model.bind_static(&NoGuests, &channels)?;
    Ok(channels)
}

/// The channels as `oxen-check` lists them.
pub fn describe(channels: &[StaticChannel]) -> Vec<Connection> {
    channels
        .iter()
        .map(|c| Connection {
            kind: "static event channel",
            path: c.local.path.clone(),
            detail: format!(
                "d{} port {} <-> d{} port {} ({})",
                c.local.dom, c.local.port, c.remote.dom, c.remote.port, c.remote.path
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::string::{String, ToString};

    use super::*;

    const TREE: &str = "/dts-v1/;\n/ {\n chosen {\n  \
        domU1 { compatible = \"xen,domain\"; a: evtchn { compatible = \"xen,evtchn-v1\"; xen,evtchn = <PORT &b>; }; };\n  \
        domU2 { compatible = \"xen,domain\"; b: evtchn { compatible = \"xen,evtchn-v1\"; xen,evtchn = <12 &a>; }; };\n \
        };\n};\n";

    fn check(port: u32, xenstore_on_1: bool) -> Result<Vec<Connection>, Vec<String>> {
        let blob = oxen_core::test_dtc::dtb(&TREE.replace("PORT", &port.to_string()));
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        let granted = [Interface::EventChannel, Interface::GrantTable];
        let ports: &[u32] = if xenstore_on_1 { &[7] } else { &[] };
        let dom = |path: &'static str, domid, hv: &'static [u32]| DomainCheck {
            node: fdt.find(path).unwrap(),
            domid,
            path,
            vcpus: 1,
            granted: &granted,
            max_evtchn_port: 1023,
            hypervisor_ports: hv,
        };
        let domains = [dom("/chosen/domU1", 1, ports), dom("/chosen/domU2", 2, &[])];
        check_static_channels(&fdt, &domains)
            .map(|c| describe(&c))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_good_channel_is_described_by_both_ends() {
        let c = check(10, true).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "/chosen/domU1/evtchn");
        assert_eq!(
            c[0].detail,
            "d1 port 10 <-> d2 port 12 (/chosen/domU2/evtchn)"
        );
    }

    #[test]
    fn a_port_the_hypervisor_binds_first_is_refused_before_boot() {
        let e = check(1, true).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("/chosen/domU1/evtchn: xen,evtchn names port 1 of domain 1"));
        assert!(check(1, false).is_ok());
    }

    #[test]
    fn a_port_past_the_domains_highest_is_refused() {
        let e = check(2000, false).unwrap_err();
        assert!(e[0].contains("has ports 1 to 1023"), "{e:?}");
    }
}
