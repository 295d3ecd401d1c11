//! A fake calling vCPU for host tests: guest memory is a flat byte array
//! at guest-virtual addresses `[BASE, BASE + len)`.

use alloc::vec;
use alloc::vec::Vec;

use super::{Caller, Request};
use crate::subsystem::Interface;
use crate::xen::DomId;
use crate::xen::errno::{EFAULT, Errno};

pub const BASE: u64 = 0x1000;

pub struct FakeCaller {
    pub domid: DomId,
    pub vcpu: usize,
    pub nr_vcpus: usize,
    pub granted: Vec<Interface>,
    pub mem: Vec<u8>,
    pub params: Vec<(u32, u64)>,
    pub requests: Vec<Request>,
    pub console: Vec<u8>,
    pub input: Vec<u8>,
    pub runstate: Vec<(usize, u64)>,
}

impl FakeCaller {
    pub fn new() -> Self {
        Self {
            domid: 1,
            vcpu: 0,
            nr_vcpus: 2,
            granted: Vec::new(),
            mem: vec![0; 0x3000],
            params: Vec::new(),
            requests: Vec::new(),
            console: Vec::new(),
            input: Vec::new(),
            runstate: Vec::new(),
        }
    }

    fn range(&self, gva: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = gva.checked_sub(BASE)? as usize;
        let end = start.checked_add(len)?;
        (end <= self.mem.len()).then_some(start..end)
    }

    pub fn bytes(&self, gva: u64, len: usize) -> &[u8] {
        &self.mem[self.range(gva, len).unwrap()]
    }

    pub fn put(&mut self, gva: u64, data: &[u8]) {
        let r = self.range(gva, data.len()).unwrap();
        self.mem[r].copy_from_slice(data);
    }
}

impl Caller for FakeCaller {
    fn domid(&self) -> DomId {
        self.domid
    }
    fn vcpu(&self) -> usize {
        self.vcpu
    }
    fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }
    fn domain_exists(&self, domid: DomId) -> bool {
        domid == self.domid || domid == 2
    }
    fn granted(&self, i: Interface) -> bool {
        self.granted.contains(&i)
    }
    fn read(&mut self, gva: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let r = self.range(gva, buf.len()).ok_or(EFAULT)?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }
    fn write(&mut self, gva: u64, data: &[u8]) -> Result<(), Errno> {
        let r = self.range(gva, data.len()).ok_or(EFAULT)?;
        self.mem[r].copy_from_slice(data);
        Ok(())
    }
    fn hvm_param(&self, index: u32) -> u64 {
        self.params
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(0, |(_, v)| *v)
    }
    fn request(&mut self, r: Request) {
        self.requests.push(r);
    }
    fn console_write(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn console_read(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.input.len());
        self.input.drain(..n).collect()
    }
    fn set_runstate_area(&mut self, vcpu: usize, gva: u64) {
        self.runstate.push((vcpu, gva));
    }
}
