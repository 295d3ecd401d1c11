//! `event_channel_op` (hypercall 32) from bytes: decodes each sub-op's
//! argument struct, runs the sub-op and writes its results back.

use oxen_core::xen::DomId;
use oxen_core::xen::errno::{EFAULT, ENOSYS, EOPNOTSUPP, Errno};

use crate::abi::{arg_size, cmd, get_u16, get_u32, get_u64, off, put_u8, put_u16, put_u32, stat};
use crate::channels::{EventChannels, Status};
use crate::env::{Env, SharedPage};

impl<P: SharedPage> EventChannels<P> {
    /// `event_channel_op(cmd, arg)` from domain `caller`. `arg` is the
    /// argument struct as the guest laid it out, exactly
    /// [`arg_size`]`(cmd)` bytes (the caller copies it in from guest memory,
    /// and back out when this returns 0 and [`crate::has_output`]`(cmd)`:
    /// on failure `arg` is left as it was). Returns 0 or a negated Xen
    /// errno; an unknown `cmd` is `-ENOSYS`, and `arg` of the wrong size
    /// `-EFAULT`.
    pub fn event_channel_op<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        cmd: u32,
        arg: &mut [u8],
    ) -> i64 {
        let Some(size) = arg_size(cmd) else {
            return ENOSYS.ret();
        };
        if arg.len() != size {
            return EFAULT.ret();
        }
        match self.dispatch(env, caller, cmd, arg) {
            Ok(()) => 0,
            Err(e) => e.ret(),
        }
    }

    fn dispatch<E: Env<Page = P>>(
        &mut self,
        env: &E,
        caller: DomId,
        op: u32,
        arg: &mut [u8],
    ) -> Result<(), Errno> {
        match op {
            cmd::BIND_INTERDOMAIN => {
                let port = self.bind_interdomain(
                    env,
                    caller,
                    get_u16(arg, off::BI_REMOTE_DOM),
                    get_u32(arg, off::BI_REMOTE_PORT),
                )?;
                put_u32(arg, off::BI_LOCAL_PORT, port);
            }
            cmd::BIND_VIRQ => {
                let port = self.bind_virq(
                    caller,
                    get_u32(arg, off::BV_VIRQ),
                    get_u32(arg, off::BV_VCPU),
                )?;
                put_u32(arg, off::BV_PORT, port);
            }
            // Arm has no physical IRQs routed as event channels.
            cmd::BIND_PIRQ => return Err(EOPNOTSUPP),
            cmd::CLOSE => self.close(caller, get_u32(arg, off::PORT))?,
            cmd::SEND => self.send(env, caller, get_u32(arg, off::PORT))?,
            cmd::STATUS => {
                let s = self.status(
                    caller,
                    get_u16(arg, off::ST_DOM),
                    get_u32(arg, off::ST_PORT),
                )?;
                // Like Xen, only the union member the status uses is written.
                let code = match s.status {
                    Status::Closed => stat::CLOSED,
                    Status::Unbound { remote } => {
                        put_u16(arg, off::ST_U_DOM, remote);
                        stat::UNBOUND
                    }
                    Status::Interdomain { remote, port } => {
                        put_u16(arg, off::ST_U_DOM, remote);
                        put_u32(arg, off::ST_U_PORT, port);
                        stat::INTERDOMAIN
                    }
                    Status::Virq(v) => {
                        put_u32(arg, off::ST_U_VIRQ, v);
                        stat::VIRQ
                    }
                    Status::Ipi => stat::IPI,
                };
                put_u32(arg, off::ST_STATUS, code);
                put_u32(arg, off::ST_VCPU, s.vcpu);
            }
            cmd::ALLOC_UNBOUND => {
                let port = self.alloc_unbound(
                    caller,
                    get_u16(arg, off::AU_DOM),
                    get_u16(arg, off::AU_REMOTE_DOM),
                )?;
                put_u32(arg, off::AU_PORT, port);
            }
            cmd::BIND_IPI => {
                let port = self.bind_ipi(caller, get_u32(arg, off::BIPI_VCPU))?;
                put_u32(arg, off::BIPI_PORT, port);
            }
            cmd::BIND_VCPU => self.bind_vcpu(
                caller,
                get_u32(arg, off::BVC_PORT),
                get_u32(arg, off::BVC_VCPU),
            )?,
            cmd::UNMASK => self.unmask(env, caller, get_u32(arg, off::PORT))?,
            cmd::RESET | cmd::RESET_CONT => self.reset(caller, get_u16(arg, off::RS_DOM))?,
            cmd::INIT_CONTROL => {
                let bits = self.init_control(
                    env,
                    caller,
                    get_u64(arg, off::IC_GFN),
                    get_u32(arg, off::IC_OFFSET),
                    get_u32(arg, off::IC_VCPU),
                )?;
                put_u8(arg, off::IC_LINK_BITS, bits);
            }
            cmd::EXPAND_ARRAY => self.expand_array(env, caller, get_u64(arg, off::EA_GFN))?,
            cmd::SET_PRIORITY => self.set_priority(
                caller,
                get_u32(arg, off::SP_PORT),
                get_u32(arg, off::SP_PRIORITY),
            )?,
            _ => return Err(ENOSYS),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use oxen_core::xen::DOMID_SELF;

    use crate::abi::{arg_size, cmd, has_output};
    use crate::fake::Sys;
    use crate::{Policy, Port, Status};

    fn le16(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }

    fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }

    /// An argument of `size` bytes with `fields` (offset, little-endian
    /// bytes) filled in and every other byte 0xee, so that stray writes and
    /// misplaced reads show.
    fn arg(size: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut a = vec![0xee; size];
        for (off, bytes) in fields {
            a[*off..*off + bytes.len()].copy_from_slice(bytes);
        }
        a
    }

    fn op(s: &mut Sys, caller: u16, c: u32, a: &mut [u8]) -> i64 {
        s.ev.event_channel_op(&s.env, caller, c, a)
    }

    #[test]
    fn argument_sizes_are_xens() {
        let sizes: Vec<_> = (0..16).map(arg_size).collect();
        let expected = [
            Some(12),
            Some(12),
            Some(12),
            Some(4),
            Some(4),
            Some(24),
            Some(8),
            Some(8),
            Some(8),
            Some(4),
            Some(2),
            Some(24),
            Some(8),
            Some(8),
            Some(2),
            None,
        ];
        assert_eq!(sizes, expected);
    }

    #[test]
    fn an_unknown_sub_op_returns_enosys() {
        let mut s = Sys::two();
        assert_eq!(op(&mut s, 1, 99, &mut []), -38);
        assert_eq!(arg_size(99), None);
    }

    #[test]
    fn an_argument_of_the_wrong_size_returns_efault() {
        let mut s = Sys::two();
        assert_eq!(op(&mut s, 1, cmd::SEND, &mut [0; 8]), -14);
    }

    #[test]
    fn bind_pirq_returns_eopnotsupp() {
        let mut s = Sys::two();
        let mut a = arg(12, &[]);
        assert_eq!(op(&mut s, 1, cmd::BIND_PIRQ, &mut a), -95);
    }

    #[test]
    fn alloc_unbound_reads_dom_at_0_remote_at_2_and_writes_the_port_at_4() {
        let mut s = Sys::new(Policy::Open, false, &[(1, 1), (2, 1)]);
        let mut a = arg(
            8,
            &[(0, &DOMID_SELF.to_le_bytes()), (2, &2u16.to_le_bytes())],
        );
        assert_eq!(op(&mut s, 1, cmd::ALLOC_UNBOUND, &mut a), 0);
        assert_eq!(le32(&a, 4), 1);
        assert_eq!(
            s.ev.status(1, DOMID_SELF, 1).unwrap().status,
            Status::Unbound { remote: 2 }
        );
    }

    #[test]
    fn bind_interdomain_reads_remote_dom_at_0_port_at_4_and_writes_local_port_at_8() {
        let mut s = Sys::two();
        s.ev.bind_ipi(2, 0).unwrap();
        let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let mut a = arg(12, &[(0, &1u16.to_le_bytes()), (4, &p1.to_le_bytes())]);
        assert_eq!(op(&mut s, 2, cmd::BIND_INTERDOMAIN, &mut a), 0);
        assert_eq!(le32(&a, 8), 2);
        assert_eq!(a[2..4], [0xee, 0xee], "padding untouched");
    }

    #[test]
    fn bind_virq_reads_virq_at_0_vcpu_at_4_and_writes_the_port_at_8() {
        let mut s = Sys::two();
        let mut a = arg(12, &[(0, &1u32.to_le_bytes()), (4, &1u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::BIND_VIRQ, &mut a), 0);
        let port = le32(&a, 8);
        let st = s.ev.status(1, DOMID_SELF, port).unwrap();
        assert_eq!((st.status, st.vcpu), (Status::Virq(1), 1));
    }

    #[test]
    fn bind_ipi_reads_vcpu_at_0_and_writes_the_port_at_4() {
        let mut s = Sys::two();
        let mut a = arg(8, &[(0, &1u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::BIND_IPI, &mut a), 0);
        assert_eq!(le32(&a, 4), 1);
        assert_eq!(s.ev.status(1, DOMID_SELF, 1).unwrap().vcpu, 1);
    }

    #[test]
    fn bind_vcpu_reads_port_at_0_and_vcpu_at_4() {
        let mut s = Sys::two();
        let p = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let mut a = arg(8, &[(0, &p.to_le_bytes()), (4, &1u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::BIND_VCPU, &mut a), 0);
        assert_eq!(s.ev.status(1, DOMID_SELF, p).unwrap().vcpu, 1);
    }

    #[test]
    fn close_send_and_unmask_read_the_port_at_0() {
        let mut s = Sys::two();
        let p: Port = s.ev.bind_ipi(1, 0).unwrap();
        let mut a = p.to_le_bytes();
        s.set_l2_mask(1, p, true);
        assert_eq!(op(&mut s, 1, cmd::SEND, &mut a), 0);
        assert!(s.l2_pending(1, p));
        assert_eq!(s.sel0(1), 0);
        assert_eq!(op(&mut s, 1, cmd::UNMASK, &mut a), 0);
        assert_eq!(s.sel0(1), 1);
        assert_eq!(op(&mut s, 1, cmd::CLOSE, &mut a), 0);
        assert_eq!(op(&mut s, 1, cmd::CLOSE, &mut a), -22);
    }

    #[test]
    fn status_reads_dom_at_0_port_at_4_and_writes_status_vcpu_and_unbound_dom() {
        let mut s = Sys::two();
        let p = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let mut a = arg(24, &[(0, &DOMID_SELF.to_le_bytes()), (4, &p.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::STATUS, &mut a), 0);
        assert_eq!(le32(&a, 8), 1, "EVTCHNSTAT_unbound");
        assert_eq!(le32(&a, 12), 0);
        assert_eq!(le16(&a, 16), 2);
        assert_eq!(a[18..24], [0xee; 6], "the rest of the union is left alone");
    }

    #[test]
    fn status_of_an_interdomain_port_writes_dom_at_16_and_port_at_20() {
        let mut s = Sys::two();
        let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let p2 = s.ev.bind_interdomain(&s.env, 2, 1, p1).unwrap();
        let mut a = arg(24, &[(0, &2u16.to_le_bytes()), (4, &p2.to_le_bytes())]);
        assert_eq!(op(&mut s, 2, cmd::STATUS, &mut a), 0);
        assert_eq!(le32(&a, 8), 2, "EVTCHNSTAT_interdomain");
        assert_eq!(le16(&a, 16), 1);
        assert_eq!(le32(&a, 20), p1);
    }

    #[test]
    fn status_of_a_virq_port_writes_the_virq_at_16_and_of_port_0_closed() {
        let mut s = Sys::two();
        let p = s.ev.bind_virq(1, 0, 1).unwrap();
        let mut a = arg(24, &[(0, &DOMID_SELF.to_le_bytes()), (4, &p.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::STATUS, &mut a), 0);
        assert_eq!((le32(&a, 8), le32(&a, 12), le32(&a, 16)), (4, 1, 0));
        let mut a = arg(
            24,
            &[(0, &DOMID_SELF.to_le_bytes()), (4, &0u32.to_le_bytes())],
        );
        assert_eq!(op(&mut s, 1, cmd::STATUS, &mut a), 0);
        assert_eq!(le32(&a, 8), 0, "EVTCHNSTAT_closed");
    }

    #[test]
    fn a_failed_sub_op_leaves_its_argument_untouched() {
        let mut s = Sys::two();
        let mut a = arg(
            24,
            &[(0, &DOMID_SELF.to_le_bytes()), (4, &5000u32.to_le_bytes())],
        );
        let before = a.clone();
        assert_eq!(op(&mut s, 1, cmd::STATUS, &mut a), -22);
        assert_eq!(a, before);
    }

    #[test]
    fn reset_reads_dom_at_0() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(2, 0).unwrap();
        assert_eq!(op(&mut s, 1, cmd::RESET, &mut 2u16.to_le_bytes()), -1);
        assert_eq!(op(&mut s, 2, cmd::RESET, &mut DOMID_SELF.to_le_bytes()), 0);
        assert_eq!(
            s.ev.status(2, DOMID_SELF, p).unwrap().status,
            Status::Closed
        );
    }

    #[test]
    fn init_control_reads_gfn_at_0_offset_at_8_vcpu_at_12_and_writes_link_bits_at_16() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 2)]);
        s.env.ram(1, 0x12_3456_789a);
        let mut a = arg(
            24,
            &[
                (0, &0x12_3456_789au64.to_le_bytes()),
                (8, &64u32.to_le_bytes()),
                (12, &1u32.to_le_bytes()),
            ],
        );
        assert_eq!(op(&mut s, 1, cmd::INIT_CONTROL, &mut a), 0);
        assert_eq!(a[16], 17);
        assert_eq!(a[17..24], [0xee; 7]);
        assert!(s.ev.uses_fifo(1));
    }

    #[test]
    fn init_control_without_fifo_returns_eopnotsupp() {
        let mut s = Sys::two();
        let mut a = arg(24, &[(0, &0u64.to_le_bytes()), (8, &0u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::INIT_CONTROL, &mut a), -95);
    }

    #[test]
    fn expand_array_reads_the_gfn_at_0_and_set_priority_port_at_0_priority_at_4() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1)]);
        s.env.ram(1, 0x40000);
        s.env.ram(1, 0x40001);
        s.ev.init_control(&s.env, 1, 0x40000, 0, 0).unwrap();
        assert_eq!(
            op(&mut s, 1, cmd::EXPAND_ARRAY, &mut 0x40002u64.to_le_bytes()),
            -22
        );
        assert_eq!(
            op(&mut s, 1, cmd::EXPAND_ARRAY, &mut 0x40001u64.to_le_bytes()),
            0
        );
        let p = s.ev.bind_ipi(1, 0).unwrap();
        let mut a = arg(8, &[(0, &p.to_le_bytes()), (4, &16u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::SET_PRIORITY, &mut a), -22);
        let mut a = arg(8, &[(0, &p.to_le_bytes()), (4, &15u32.to_le_bytes())]);
        assert_eq!(op(&mut s, 1, cmd::SET_PRIORITY, &mut a), 0);
    }

    #[test]
    fn the_sub_ops_with_results_are_the_ones_that_write_them() {
        let with: Vec<u32> = (0..15).filter(|&c| has_output(c)).collect();
        assert_eq!(with, [0, 1, 2, 5, 6, 7, 11]);
    }
}
