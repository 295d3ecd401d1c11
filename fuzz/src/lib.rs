//! The harnesses behind Oxen's fuzz targets (`cargo xtask fuzz`): each
//! takes the bytes libFuzzer made and drives one piece of Oxen's pure logic
//! with them, as the hypervisor would on untrusted input. A panic anywhere
//! below is a finding.

pub mod dtb;
pub mod evtchn;
pub mod gnttab;
pub mod host;
pub mod input;
pub mod xenstore;
