//! The xenstore cases: a domain with `xen,enhanced = "enabled"` talks to
//! the store through its ring page (`crate::xs`), and the server must
//! answer as C xenstored 4.20 does with no privileged domain
//! (shared/spec/xenstore.md §3). Which cases run comes from the bootargs:
//!
//! - `expect.xenstore=absent`: the store parameters read 0 and nothing is
//!   mapped at the ring page's address;
//! - `expect.xenstore=present`: the parameters, the page's initial state,
//!   the nodes written before the domain ran (`expect.name=` is its device
//!   tree node name, `expect.memory=` its RAM), then every single-domain
//!   case — unless `xs.peer=1|2` asks for the two-domain cases instead,
//!   this domain playing domain 1 (the owner) or 2 (the visitor).
//!
//! Nodes the cases create live under `data/` (the domain's own) and are
//! removed by the case that made them.

use oxen_guest_common::dt;
use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch::{self, ms};
use crate::bytes;
use crate::cases::Ctx;
use crate::ensure;
use crate::gic;
use crate::report::{self, Verdict};
use crate::trap;
use crate::xen::{self, Arg, DOMID_SELF, nr};
use crate::xs::{self, Bytes, Xs, show, strings, ty};

/// Longest wait for the other domain at the first meeting: it runs its
/// own cases first, and may share a pCPU with us.
const MEET_MS: u64 = 60_000;
/// Longest wait for the other domain once both are in step.
const STEP_MS: u64 = 20_000;
/// How long "nothing comes" is watched for.
const QUIET_MS: u64 = 50;

/// What a case's closure may return: a verdict, or `()` for a plain pass.
trait Outcome {
    fn verdict(self) -> Verdict;
}

impl Outcome for Verdict {
    fn verdict(self) -> Verdict {
        self
    }
}

impl Outcome for Result<(), Msg> {
    fn verdict(self) -> Verdict {
        self.map(|()| Msg::new())
    }
}

/// [`report::case`] for closures that end in `Result<(), Msg>` too. Never
/// inlined, so that each case's buffers take stack only while it runs
/// (the stack is 32 KiB).
#[inline(never)]
fn case<R: Outcome>(name: &'static str, f: impl FnOnce() -> R) {
    report::case(name, || f().verdict());
}

/// Bytes to build large values from.
static FILL: [u8; 4200] = [b'v'; 4200];

fn hvm_param(index: u32) -> Result<u64, Msg> {
    let mut a = Arg::<16>::new();
    a.set16(0, DOMID_SELF).set32(4, index).set64(8, 0xdead);
    match xen::call(nr::HVM_OP, 1, &mut a) {
        0 => Ok(a.get64(8)),
        r => Err(msg!("HVMOP_get_param({index}) returned {r}")),
    }
}

/// Runs the cases the bootargs ask for.
pub fn run(ctx: &Ctx) {
    match dt::bootarg(ctx.bootargs, "expect.xenstore") {
        Some("absent") => case("xs.absent", absent),
        Some("present") => present(ctx),
        _ => {}
    }
}

fn absent() -> Verdict {
    let pfn = hvm_param(1)?;
    let port = hvm_param(2)?;
    ensure!(
        pfn == 0 && port == 0,
        "HVM_PARAM_STORE_PFN is {pfn:#x} and STORE_EVTCHN {port}, expected 0 and 0 (no xenstore)"
    );
    match trap::probe_load(xs::RING_GPA) {
        Ok(v) => Err(msg!(
            "a load from the ring page's address {:#x} read {v:#x} instead of aborting",
            xs::RING_GPA
        )),
        Err(f) => {
            ensure!(
                f.class() == 0x25,
                "the load from {:#x} took exception class {:#x}, expected 0x25 (data abort)",
                xs::RING_GPA,
                f.class()
            );
            Ok(Msg::new())
        }
    }
}

/// The store port's events need `shared_info` and the upcall.
fn events_on() {
    if xen::vcpu_info().is_none() {
        let r = xen::add_to_physmap(xen::XENMAPSPACE_SHARED_INFO, 0, xen::SHARED_INFO.gfn());
        if r == 0 {
            xen::shared_info_mapped();
        }
        let _ = gic::enable_ppi(gic::EVTCHN_PPI);
    }
}

/// What a domain knows about itself.
struct Me {
    id: u16,
    /// `/local/domain/<id>`.
    home: Bytes<256>,
}

impl Me {
    /// An absolute path under the home.
    fn abs(&self, rel: &str) -> Bytes<256> {
        bytes!("{}/{rel}", show(self.home.as_bytes()))
    }
}

fn present(ctx: &Ctx) {
    events_on();
    let mut port = 0;
    case("xs.hvm_params", || {
        let pfn = hvm_param(1)?;
        port = hvm_param(2)? as u32;
        ensure!(
            pfn == xs::RING_PFN,
            "HVM_PARAM_STORE_PFN is {pfn:#x}, expected {:#x}",
            xs::RING_PFN
        );
        ensure!(
            port == 1,
            "HVM_PARAM_STORE_EVTCHN is {port}, expected 1 (the lowest free port at creation)"
        );
        ensure!(
            xen::vcpu_info().is_some(),
            "shared_info could not be mapped"
        );
        Ok(Msg::new())
    });
    if port == 0 {
        return;
    }
    let mut xs = Xs::new(port);
    let id = crate::xencases::self_domid();
    let me = Me {
        id,
        home: bytes!("/local/domain/{id}"),
    };
    case("xs.ring_initial", || ring_initial(&xs));
    case("xs.reply_signalled", || reply_signalled(&mut xs, &me));
    case("xs.toolstack_nodes", || toolstack_nodes(&mut xs, ctx, &me));
    case("xs.toolstack_perms", || toolstack_perms(&mut xs, &me));
    match dt::bootarg(ctx.bootargs, "xs.peer") {
        Some("1") => peer_owner(&mut xs),
        Some("2") => peer_visitor(&mut xs),
        Some(other) => case("xs.peer", || -> Verdict {
            Err(msg!("xs.peer={other} (expected 1 or 2)"))
        }),
        None => single(&mut xs, &me),
    }
}

fn ring_initial(xs: &Xs) -> Verdict {
    let p = xs.page;
    let (rc, rp, sc, sp) = (
        p.r32(xs::REQ_CONS),
        p.r32(xs::REQ_PROD),
        p.r32(xs::RSP_CONS),
        p.r32(xs::RSP_PROD),
    );
    ensure!(
        rc == rp && sc == sp,
        "the rings are not quiescent: req_cons {rc:#x} req_prod {rp:#x} rsp_cons {sc:#x} rsp_prod {sp:#x}"
    );
    let (f, c, e) = (
        p.r32(xs::SERVER_FEATURES),
        p.r32(xs::CONNECTION),
        p.r32(xs::ERROR),
    );
    // RECONNECTION (bit 0) and ERROR (bit 1, the server writes `error`;
    // xs.ring_reset_after_oversized sees it), not WATCHDEPTH or DOMID_ANY
    // (a WATCH with a depth is EINVAL, xs.malformed_einval).
    ensure!(
        f == 3,
        "server_features is {f:#x}, expected 3 (RECONNECTION | ERROR)"
    );
    ensure!(c == 0, "connection is {c}, expected 0 (connected)");
    ensure!(e == 0, "error is {e}, expected 0");
    Ok(msg!("indices={rc:#x}/{sc:#x}"))
}

/// READ `domid`: the decimal ID, no NUL, header echoed, and the port
/// signalled for the reply.
fn reply_signalled(xs: &mut Xs, me: &Me) -> Verdict {
    xen::consume(xs.port);
    let id = xs.send(ty::READ, 0, &[b"domid\0"])?;
    let p = xs.page;
    let start = p.r32(xs::RSP_CONS);
    ensure!(
        arch::wait_for(ms(xs::WAIT_MS), || p.r32(xs::RSP_PROD) != start),
        "no reply to READ domid within {} ms",
        xs::WAIT_MS
    );
    ensure!(
        xen::wait_event(xs.port, ms(xs::WAIT_MS)),
        "the reply to READ domid is on the ring but store port {} was not signalled",
        xs.port
    );
    let r = xs.reply(ty::READ, id, 0)?;
    ensure!(r.ty == ty::READ, "READ domid: {}", r.describe());
    r.is(bytes!("{}", me.id).as_bytes(), "READ domid")?;
    let r = xs.read(0, me.abs("domid").as_bytes())?;
    r.is(bytes!("{}", me.id).as_bytes(), "READ of the absolute path")?;
    Ok(Msg::new())
}

fn toolstack_nodes(xs: &mut Xs, ctx: &Ctx, me: &Me) -> Verdict {
    let name = dt::bootarg(ctx.bootargs, "expect.name").unwrap_or("domU1");
    let kib = dt::bootarg(ctx.bootargs, "expect.memory")
        .and_then(|m| m.strip_suffix('M'))
        .and_then(|m| m.parse::<u64>().ok())
        .map_or(0, |m| m * 1024);
    let kib = bytes!("{kib}");
    let id = bytes!("{}", me.id);
    let valued: [(&str, &[u8]); 13] = [
        ("name", name.as_bytes()),
        ("domid", id.as_bytes()),
        ("memory/static-max", kib.as_bytes()),
        ("memory/target", kib.as_bytes()),
        ("memory/videoram", b"-1"),
        ("control/shutdown", b""),
        ("control/sysrq", b""),
        ("control/feature-poweroff", b"1"),
        ("control/feature-reboot", b"1"),
        ("control/platform-feature-multiprocessor-suspend", b"1"),
        ("control/platform-feature-xs_reset_watches", b"1"),
        ("store/port", b"1"),
        ("store/ring-ref", b"233473"),
    ];
    for (path, want) in valued {
        let r = xs.read(0, path.as_bytes())?;
        r.is(want, &msg!("READ {path}"))?;
    }
    // Every vCPU online, and no node for one past the last.
    for cpu in 0..ctx.vcpus {
        let path = bytes!("cpu/{cpu}/availability");
        xs.read(0, path.as_bytes())?
            .is(b"online", msg!("READ {}", show(path.as_bytes())))?;
    }
    let past = bytes!("cpu/{}", ctx.vcpus);
    xs.read(0, past.as_bytes())?
        .err("ENOENT", msg!("READ {}", show(past.as_bytes())))?;
    for path in [
        "vm",
        "device/suspend/event-channel",
        "control/feature-suspend",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
    ] {
        let r = xs.read(0, path.as_bytes())?;
        r.value(&msg!("READ {path}"))?;
    }
    Ok(Msg::new())
}

fn toolstack_perms(xs: &mut Xs, me: &Me) -> Verdict {
    let own = bytes!("n{}\0", me.id);
    for path in [
        me.home.as_bytes(),
        me.abs("name").as_bytes(),
        b"control/shutdown",
    ] {
        let r = xs.one(ty::GET_PERMS, 0, path)?;
        r.is(own.as_bytes(), &msg!("GET_PERMS {}", show(path)))?;
    }
    // The hypervisor's own nodes (owner 0, "n0") are closed to a domain.
    for (t, what) in [
        (ty::GET_PERMS, "GET_PERMS"),
        (ty::READ, "READ"),
        (ty::DIRECTORY, "DIRECTORY"),
    ] {
        xs.one(t, 0, b"/local/domain")?
            .err("EACCES", msg!("{what} /local/domain"))?;
    }
    Ok(Msg::new())
}

// ---- one domain ----

fn single(xs: &mut Xs, me: &Me) {
    case("xs.read_enoent", || {
        xs.read(0, b"data/none")?.err("ENOENT", "READ data/none")?;
        xs.read(0, b"data/none/deeper")?
            .err("ENOENT", "READ data/none/deeper")
    });
    case("xs.write_read", || write_read(xs));
    case("xs.write_creates_parents", || {
        xs.put_ok(b"data/wp/a/b", b"leaf")?;
        xs.read(0, b"data/wp/a")?
            .is(b"", "READ of the implied parent data/wp/a")?;
        xs.read(0, b"data/wp/a/b")?
            .is(b"leaf", "READ data/wp/a/b")?;
        xs.rm_ok(b"data/wp")
    });
    case("xs.mkdir", || {
        xs.one(ty::MKDIR, 0, b"data/mk")?.ok("MKDIR data/mk")?;
        xs.read(0, b"data/mk")?.is(b"", "READ data/mk")?;
        xs.put_ok(b"data/mk", b"kept")?;
        xs.one(ty::MKDIR, 0, b"data/mk")?
            .ok("MKDIR of an existing node")?;
        xs.read(0, b"data/mk")?
            .is(b"kept", "READ after a second MKDIR")?;
        xs.rm_ok(b"data/mk")
    });
    case("xs.directory", || directory(xs));
    case("xs.directory_part", || directory_part(xs));
    case("xs.rm", || rm(xs));
    case("xs.get_perms_inherited", || {
        xs.put_ok(b"data/gp", b"")?;
        let own = bytes!("n{}\0", me.id);
        xs.one(ty::GET_PERMS, 0, b"data/gp")?
            .is(own.as_bytes(), "GET_PERMS of a new node")?;
        xs.one(ty::GET_PERMS, 0, b"data/none")?
            .err("ENOENT", "GET_PERMS data/none")?;
        xs.rm_ok(b"data/gp")
    });
    case("xs.set_perms", || set_perms(xs, me));
    case("xs.watch_immediate_event", || {
        xs.drain(0)?;
        xs.watch(b"data/wi", b"tok-wi")?.ok("WATCH data/wi")?;
        let e = xs.event(ms(xs::WAIT_MS))?;
        e.is(
            b"data/wi",
            b"tok-wi",
            "the immediate event of a relative watch on a missing node",
        )?;
        xs.unwatch(b"data/wi", b"tok-wi")?.ok("UNWATCH")
    });
    case("xs.watch_relative_event", || {
        xs.drain(0)?;
        xs.watch(b"data/wr", b"tok-wr")?.ok("WATCH data/wr")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wr", b"tok-wr", "immediate event")?;
        xs.put_ok(b"data/wr/child", b"x")?;
        xs.event(ms(xs::WAIT_MS))?.is(
            b"data/wr/child",
            b"tok-wr",
            "WRITE below a relative watch",
        )?;
        xs.unwatch(b"data/wr", b"tok-wr")?.ok("UNWATCH")?;
        xs.rm_ok(b"data/wr")
    });
    case("xs.watch_absolute_event", || {
        xs.drain(0)?;
        let path = me.abs("data/wa");
        let child = me.abs("data/wa/child");
        xs.watch(path.as_bytes(), b"tok-wa")?
            .ok("WATCH (absolute)")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(path.as_bytes(), b"tok-wa", "immediate event")?;
        xs.put_ok(b"data/wa/child", b"x")?;
        xs.event(ms(xs::WAIT_MS))?.is(
            child.as_bytes(),
            b"tok-wa",
            "a relative WRITE below an absolute watch",
        )?;
        xs.unwatch(path.as_bytes(), b"tok-wa")?.ok("UNWATCH")?;
        xs.rm_ok(b"data/wa")
    });
    case("xs.watch_duplicate_eexist", || {
        xs.drain(0)?;
        xs.watch(b"data/wd", b"tok")?.ok("WATCH data/wd")?;
        xs.event(ms(xs::WAIT_MS))?;
        xs.watch(b"data/wd", b"tok")?
            .err("EEXIST", "the same WATCH again")?;
        xs.watch(b"data/wd", b"tok2")?
            .ok("WATCH with another token")?;
        xs.event(ms(xs::WAIT_MS))?;
        xs.unwatch(b"data/wd", b"tok")?.ok("UNWATCH")?;
        xs.unwatch(b"data/wd", b"tok2")?.ok("UNWATCH")
    });
    case("xs.watch_rm_fires", || {
        xs.drain(0)?;
        xs.put_ok(b"data/wx/a", b"1")?;
        xs.watch(b"data/wx", b"tok-wx")?.ok("WATCH data/wx")?;
        xs.event(ms(xs::WAIT_MS))?;
        xs.rm_ok(b"data/wx")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wx", b"tok-wx", "RM of the watched node")?;
        xs.unwatch(b"data/wx", b"tok-wx")?.ok("UNWATCH")
    });
    case("xs.unwatch", || {
        xs.drain(0)?;
        xs.watch(b"data/wu", b"tok-wu")?.ok("WATCH data/wu")?;
        xs.event(ms(xs::WAIT_MS))?;
        xs.unwatch(b"data/wu", b"tok-wu")?.ok("UNWATCH data/wu")?;
        xs.put_ok(b"data/wu", b"after")?;
        if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
            return Err(msg!("an event after UNWATCH: \"{}\"", show(e.raw())));
        }
        xs.unwatch(b"data/wu", b"tok-wu")?
            .err("ENOENT", "UNWATCH of a removed watch")?;
        xs.unwatch(b"data/never", b"t")?
            .err("ENOENT", "UNWATCH of an unknown watch")?;
        xs.rm_ok(b"data/wu")
    });
    case("xs.watch_ignores_tx_id", || {
        // WATCH and UNWATCH take no transaction: an unknown tx_id is
        // ignored (and echoed), where other requests get ENOENT.
        xs.drain(0)?;
        xs.request(ty::WATCH, 9999, &[b"data/wt\0tok-wt\0"])?
            .ok("WATCH with tx_id 9999")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wt", b"tok-wt", "immediate event")?;
        xs.request(ty::UNWATCH, 9999, &[b"data/wt\0tok-wt\0"])?
            .ok("UNWATCH with tx_id 9999")?;
        xs.request(ty::RESET_WATCHES, 9999, &[b"\0"])?
            .err("ENOENT", "RESET_WATCHES with tx_id 9999")
    });
    case("xs.watch_rm_subtree_exact", || {
        xs.put_ok(b"data/rs/a/b", b"1")?;
        xs.drain(0)?;
        for (path, tok) in [
            (&b"data/rs/a"[..], &b"tok-a"[..]),
            (b"data/rs/a/missing", b"tok-m"),
        ] {
            xs.watch(path, tok)?.ok(msg!("WATCH {}", show(path)))?;
            xs.event(ms(xs::WAIT_MS))?
                .is(path, tok, "immediate event")?;
        }
        xs.rm_ok(b"data/rs")?;
        // The watch on a removed node below the removed root fires with
        // that node's path; one on a node that never existed does not.
        xs.event(ms(xs::WAIT_MS))?.is(
            b"data/rs/a",
            b"tok-a",
            "RM of data/rs, for the watch on data/rs/a",
        )?;
        if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
            return Err(msg!("a second event for RM data/rs: \"{}\"", show(e.raw())));
        }
        xs.unwatch(b"data/rs/a", b"tok-a")?.ok("UNWATCH")?;
        xs.unwatch(b"data/rs/a/missing", b"tok-m")?.ok("UNWATCH")
    });
    case("xs.watch_write_mkdir_set_perms", || {
        xs.put_ok(b"data/wm", b"same")?;
        xs.drain(0)?;
        xs.watch(b"data/wm", b"tok-wm")?.ok("WATCH data/wm")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wm", b"tok-wm", "immediate event")?;
        xs.put_ok(b"data/wm", b"same")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wm", b"tok-wm", "a WRITE of the unchanged value")?;
        xs.one(ty::MKDIR, 0, b"data/wm")?
            .ok("MKDIR of the existing node")?;
        if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
            return Err(msg!(
                "an event for MKDIR of an existing node: \"{}\"",
                show(e.raw())
            ));
        }
        xs.one(ty::MKDIR, 0, b"data/wm/new")?
            .ok("MKDIR data/wm/new")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wm/new", b"tok-wm", "MKDIR of a new node")?;
        let perms = bytes!("n{0}\0r{0}\0", me.id);
        xs.set_perms(0, b"data/wm", perms.as_bytes())?
            .ok("SET_PERMS data/wm")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/wm", b"tok-wm", "SET_PERMS of the watched node")?;
        xs.unwatch(b"data/wm", b"tok-wm")?.ok("UNWATCH")?;
        xs.rm_ok(b"data/wm")
    });
    case("xs.watch_root", || {
        xs.drain(0)?;
        xs.watch(b"/", b"tok-root")?.ok("WATCH /")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"/", b"tok-root", "immediate event")?;
        xs.put_ok(b"data/wroot", b"")?;
        let abs = me.abs("data/wroot");
        xs.event(ms(xs::WAIT_MS))?.is(
            abs.as_bytes(),
            b"tok-root",
            "a WRITE in the domain's home, for a watch on /",
        )?;
        xs.unwatch(b"/", b"tok-root")?.ok("UNWATCH /")?;
        xs.rm_ok(b"data/wroot")
    });
    case("xs.transaction_isolation", || transaction_isolation(xs));
    case("xs.transaction_abort", || {
        let t = xs.start()?;
        xs.write(t, b"data/ta", b"gone")?
            .ok("WRITE in the transaction")?;
        xs.end(t, false)?.ok("TRANSACTION_END F")?;
        xs.read(0, b"data/ta")?
            .err("ENOENT", "READ after the abort")?;
        xs.end(t, false)?
            .err("ENOENT", "TRANSACTION_END of the ended transaction")
    });
    case("xs.transaction_conflict_eagain", || {
        xs.put_ok(b"data/tc", b"0")?;
        let t = xs.start()?;
        xs.read(t, b"data/tc")?
            .is(b"0", "READ in the transaction")?;
        xs.put_ok(b"data/tc", b"1")?;
        xs.write(t, b"data/tc", b"2")?
            .ok("WRITE in the transaction")?;
        xs.end(t, true)?
            .err("EAGAIN", "TRANSACTION_END T after a conflicting write")?;
        xs.read(0, b"data/tc")?
            .is(b"1", "READ after the failed commit")?;
        xs.end(t, true)?
            .err("ENOENT", "TRANSACTION_END of the failed transaction")?;
        xs.rm_ok(b"data/tc")
    });
    case("xs.transaction_directory_conflict", || {
        xs.put_ok(b"data/td/x", b"")?;
        let t = xs.start()?;
        xs.one(ty::DIRECTORY, t, b"data/td")?
            .is(b"x\0", "DIRECTORY in the transaction")?;
        xs.put_ok(b"data/td/y", b"")?;
        xs.write(t, b"data/tdw", b"1")?
            .ok("WRITE in the transaction")?;
        xs.end(t, true)?.err(
            "EAGAIN",
            "TRANSACTION_END T after a child was added to a directory it listed",
        )?;
        xs.read(0, b"data/tdw")?
            .err("ENOENT", "READ of the failed transaction's node")?;
        xs.rm_ok(b"data/td")
    });
    case("xs.transaction_absent_read_conflict", || {
        let t = xs.start()?;
        xs.read(t, b"data/tn")?
            .err("ENOENT", "READ in the transaction")?;
        xs.put_ok(b"data/tn", b"now")?;
        xs.read(t, b"data/tn2")?
            .err("ENOENT", "READ of another node")?;
        xs.write(t, b"data/tnw", b"1")?
            .ok("WRITE in the transaction")?;
        xs.end(t, true)?.err(
            "EAGAIN",
            "TRANSACTION_END T after a node it read as missing was created",
        )?;
        // A transaction that only read what nobody changed commits.
        let t = xs.start()?;
        xs.read(t, b"data/tn")?
            .is(b"now", "READ in a second transaction")?;
        xs.write(t, b"data/tnw", b"2")?.ok("WRITE in it")?;
        xs.end(t, true)?.ok("TRANSACTION_END T with no conflict")?;
        xs.read(0, b"data/tnw")?.is(b"2", "READ after the commit")?;
        xs.rm_ok(b"data/tn")?;
        xs.rm_ok(b"data/tnw")
    });
    case("xs.transaction_unknown_enoent", || {
        xs.read(9999, b"domid")?
            .err("ENOENT", "READ in transaction 9999")?;
        xs.write(9999, b"data/tu", b"x")?
            .err("ENOENT", "WRITE in transaction 9999")?;
        xs.end(9999, true)?.err("ENOENT", "TRANSACTION_END 9999")?;
        xs.read(0, b"data/tu")?.err("ENOENT", "READ data/tu")
    });
    case("xs.transaction_nested_ebusy", || {
        let t = xs.start()?;
        let r = xs.request(ty::TRANSACTION_START, t, &[b"\0"])?;
        let end = xs.end(t, false)?;
        r.err("EBUSY", "TRANSACTION_START inside a transaction")?;
        end.ok("TRANSACTION_END F")
    });
    case("xs.transaction_end_bad_arg_einval", || {
        let t = xs.start()?;
        let r = xs.request(ty::TRANSACTION_END, t, &[b"X\0"])?;
        let _ = xs.end(t, false)?;
        r.err("EINVAL", "TRANSACTION_END X")
    });
    case("xs.get_domain_path", || {
        let want = bytes!("{}\0", show(me.home.as_bytes()));
        let id = bytes!("{}\0", me.id);
        xs.request(ty::GET_DOMAIN_PATH, 0, &[id.as_bytes()])?
            .is(want.as_bytes(), "GET_DOMAIN_PATH of this domain")?;
        xs.request(ty::GET_DOMAIN_PATH, 0, &[b"7\0"])?
            .is(b"/local/domain/7\0", "GET_DOMAIN_PATH 7 (no such domain)")
    });
    case("xs.reset_watches", || {
        xs.watch(b"data/rw", b"tok-rw")?.ok("WATCH data/rw")?;
        xs.event(ms(xs::WAIT_MS))?;
        let t = xs.start()?;
        xs.request(ty::RESET_WATCHES, 0, &[b"\0"])?
            .ok("RESET_WATCHES")?;
        xs.put_ok(b"data/rw", b"x")?;
        if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
            return Err(msg!("an event after RESET_WATCHES: \"{}\"", show(e.raw())));
        }
        xs.end(t, false)?.err(
            "ENOENT",
            "TRANSACTION_END of a transaction RESET_WATCHES ended",
        )?;
        xs.rm_ok(b"data/rw")
    });
    case("xs.privileged_eacces", || {
        let calls: [(u32, &str, &[u8]); 6] = [
            (ty::INTRODUCE, "INTRODUCE", b"5\x00233473\x001\x00"),
            (ty::RELEASE, "RELEASE", b"5\0"),
            (ty::IS_DOMAIN_INTRODUCED, "IS_DOMAIN_INTRODUCED", b"0\0"),
            (ty::RESUME, "RESUME", b"5\0"),
            (ty::SET_TARGET, "SET_TARGET", b"5\x006\x00"),
            (ty::CONTROL, "CONTROL", b"print\x00hello\x00"),
        ];
        for (t, name, arg) in calls {
            xs.request(t, 0, &[arg])?.err("EACCES", name)?;
        }
        Ok(Msg::new())
    });
    case("xs.unknown_type_enosys", || {
        for t in [20, 15, 16, 99, 0xffff] {
            xs.request(t, 0, &[b"data\0"])?
                .err("ENOSYS", &msg!("message type {t}"))?;
        }
        Ok(Msg::new())
    });
    case("xs.bad_path_einval", || {
        let bad: [&[u8]; 7] = [
            b"data/x/",
            b"data//x",
            b"",
            b"data/a b",
            b"data/a*b",
            b"data/\xc3\xa9",
            b"@other",
        ];
        for p in bad {
            xs.read(0, p)?
                .err("EINVAL", &msg!("READ \"{}\"", show(p)))?;
            xs.write(0, p, b"v")?
                .err("EINVAL", &msg!("WRITE \"{}\"", show(p)))?;
        }
        xs.put_ok(b"data/ok-_@9Z", b"")?;
        xs.rm_ok(b"data/ok-_@9Z")
    });
    case("xs.path_too_long_einval", || path_too_long(xs));
    case("xs.malformed_einval", || malformed(xs));
    case("xs.quota_watches", || quota_watches(xs));
    case("xs.quota_transactions", || quota_transactions(xs));
    case("xs.quota_node_size", || {
        xs.write(0, b"data/big", &FILL[..1800])?
            .ok("WRITE of 1800 bytes")?;
        xs.write(0, b"data/big", &FILL[..2100])?
            .err("ENOSPC", "WRITE of 2100 bytes")?;
        let r = xs.read(0, b"data/big")?;
        ensure!(
            r.len == 1800,
            "data/big holds {} bytes after the refused write, expected 1800",
            r.len
        );
        xs.write(0, b"data/big2", &FILL[..4096 - 10])?
            .err("ENOSPC", "WRITE with a 4096-byte payload")?;
        xs.rm_ok(b"data/big")
    });
    case("xs.quota_nodes", || quota_nodes(xs, me));
    case("xs.split_request", || split_request(xs, me));
    case("xs.pipelined_requests", || {
        // 40 requests (880 bytes) published with one signal; 40 replies
        // (680 bytes) in order, more than the 20 C xenstored lets be
        // outstanding before it stops reading (it reads on as replies
        // leave).
        let mut prod = xs.page.r32(xs::REQ_PROD);
        let mut ids = [0u32; 40];
        for (i, id) in ids.iter_mut().enumerate() {
            let path: &[u8] = if i % 2 == 0 { b"domid\0" } else { b"data/z\0" };
            *id = xs.stage(&mut prod, ty::READ, 0, &[path])?;
        }
        xs.publish_all(prod)?;
        let domid = bytes!("{}", me.id);
        for (i, &id) in ids.iter().enumerate() {
            let r = xs
                .reply(ty::READ, id, 0)
                .map_err(|e| msg!("reply {i} of 40: {e}"))?;
            if i % 2 == 0 {
                r.is(domid.as_bytes(), msg!("READ {i} (domid)"))?;
            } else {
                r.err("ENOENT", msg!("READ {i} (data/z)"))?;
            }
        }
        Ok(())
    });
    case("xs.ring_index_jump", || ring_index_jump(xs, me));
    case("xs.ring_reset_after_oversized", || ring_reset(xs, me));
}

fn write_read(xs: &mut Xs) -> Result<(), Msg> {
    xs.put_ok(b"data/wr1", b"hello")?;
    xs.read(0, b"data/wr1")?.is(b"hello", "READ data/wr1")?;
    xs.put_ok(b"data/wr1", b"")?;
    xs.read(0, b"data/wr1")?
        .is(b"", "READ after writing an empty value")?;
    let binary = b"a\0b\xff\0";
    xs.put_ok(b"data/wr1", binary)?;
    xs.read(0, b"data/wr1")?
        .is(binary, "READ of a binary value")?;
    // The path ends at the first NUL; the value needs no terminator.
    xs.request(ty::WRITE, 0, &[b"data/wr1\0two\0words"])?
        .ok("WRITE with NULs in the value")?;
    xs.read(0, b"data/wr1")?.is(b"two\0words", "READ")?;
    xs.rm_ok(b"data/wr1")
}

/// The children of a `DIRECTORY` reply, compared as a set.
fn same_children(got: &[u8], want: &[&[u8]]) -> bool {
    strings(got).count() == want.len()
        && want.iter().all(|w| strings(got).any(|g| g == *w))
        && got.last() == Some(&0)
}

fn directory(xs: &mut Xs) -> Result<(), Msg> {
    xs.put_ok(b"data/dir/x", b"1")?;
    xs.put_ok(b"data/dir/yy", b"2")?;
    xs.put_ok(b"data/dir/yy/deep", b"3")?;
    let r = xs.one(ty::DIRECTORY, 0, b"data/dir")?;
    let v = r.value("DIRECTORY data/dir")?;
    ensure!(
        same_children(v, &[b"x", b"yy"]),
        "DIRECTORY data/dir answered \"{}\", expected x and yy, each NUL-terminated",
        show(v)
    );
    let r = xs.one(ty::DIRECTORY, 0, b"data/dir/x")?;
    r.is(b"", "DIRECTORY of a leaf")?;
    xs.one(ty::DIRECTORY, 0, b"data/none")?
        .err("ENOENT", "DIRECTORY data/none")?;
    xs.rm_ok(b"data/dir")
}

/// `gen\0` + children from byte `offset` + a final `\0` at the end.
fn directory_part(xs: &mut Xs) -> Result<(), Msg> {
    xs.put_ok(b"data/dp/only", b"")?;
    let r = xs.request(ty::DIRECTORY_PART, 0, &[b"data/dp\0", b"0\0"])?;
    let v = r.value("DIRECTORY_PART data/dp 0")?;
    let mut it = strings(v);
    let gen1 = it.next().unwrap_or(&[]);
    ensure!(
        !gen1.is_empty() && gen1.iter().all(u8::is_ascii_digit) && v.ends_with(b"\0only\0\0"),
        "DIRECTORY_PART data/dp 0 answered \"{}\", expected <generation>\\0only\\0\\0",
        show(v)
    );
    let mut g1 = Bytes::<32>::new();
    g1.push(gen1);
    let r = xs.request(ty::DIRECTORY_PART, 0, &[b"data/dp\0", b"5\0"])?;
    let v = r.value("DIRECTORY_PART data/dp 5")?;
    let mut want = Bytes::<40>::new();
    want.push(g1.as_bytes()).push(b"\0\0");
    ensure!(
        v == want.as_bytes(),
        "DIRECTORY_PART at the end of the list answered \"{}\", expected \"{}\"",
        show(v),
        show(want.as_bytes())
    );
    xs.put_ok(b"data/dp/two", b"")?;
    let r = xs.request(ty::DIRECTORY_PART, 0, &[b"data/dp\0", b"0\0"])?;
    let v = r.value("DIRECTORY_PART after adding a child")?;
    let gen2 = strings(v).next().unwrap_or(&[]);
    ensure!(
        v.len() >= gen2.len() + 2
            && gen2 != g1.as_bytes()
            && same_children(&v[gen2.len() + 1..v.len() - 1], &[b"only", b"two"]),
        "DIRECTORY_PART after adding a child answered \"{}\" (generation was {}), expected a new generation and only, two",
        show(v),
        show(g1.as_bytes())
    );
    xs.request(ty::DIRECTORY_PART, 0, &[b"data/none\0", b"0\0"])?
        .err("ENOENT", "DIRECTORY_PART data/none")?;
    xs.rm_ok(b"data/dp")
}

fn rm(xs: &mut Xs) -> Result<(), Msg> {
    xs.put_ok(b"data/rmt/a/b", b"1")?;
    xs.put_ok(b"data/rmt/c", b"2")?;
    xs.rm_ok(b"data/rmt")?;
    xs.read(0, b"data/rmt/a/b")?
        .err("ENOENT", "READ below a removed node")?;
    xs.read(0, b"data/rmt")?
        .err("ENOENT", "READ of a removed node")?;
    xs.one(ty::RM, 0, b"data/rmt")?
        .ok("RM of a missing node whose parent exists")?;
    xs.one(ty::RM, 0, b"data/rmt/x")?
        .err("ENOENT", "RM of a node whose parent is missing")
}

fn set_perms(xs: &mut Xs, me: &Me) -> Result<(), Msg> {
    xs.put_ok(b"data/sp", b"")?;
    // Entries name this domain only: entries for domains that do not
    // exist are kept but not shown.
    let list = bytes!("n{0}\0r{0}\0w{0}\0b{0}\0n{0}\0", me.id);
    xs.set_perms(0, b"data/sp", list.as_bytes())?
        .ok("SET_PERMS with 5 entries")?;
    xs.one(ty::GET_PERMS, 0, b"data/sp")?
        .is(list.as_bytes(), "GET_PERMS after SET_PERMS")?;
    let six = bytes!("n{0}\0r{0}\0w{0}\0b{0}\0n{0}\0r{0}\0", me.id);
    xs.set_perms(0, b"data/sp", six.as_bytes())?
        .err("ENOSPC", "SET_PERMS with 6 entries")?;
    let bad = bytes!("n{0}\0x{0}\0", me.id);
    xs.set_perms(0, b"data/sp", bad.as_bytes())?
        .err("EINVAL", "SET_PERMS with an entry x<id>")?;
    xs.set_perms(0, b"data/sp", b"")?
        .err("EINVAL", "SET_PERMS with no entry")?;
    // An owner that does not exist is refused before the owner change
    // (EPERM, which xs2.owner_change_eperm checks with a domain that does).
    xs.set_perms(0, b"data/sp", b"n7\0")?
        .err("ENOENT", "SET_PERMS naming domain 7 (none) the owner")?;
    xs.one(ty::GET_PERMS, 0, b"data/sp")?
        .is(list.as_bytes(), "GET_PERMS after the refused changes")?;
    xs.set_perms(0, b"data/none", bytes!("n{}\0", me.id).as_bytes())?
        .err("ENOENT", "SET_PERMS data/none")?;
    // Children inherit the list, the creator owning them.
    xs.put_ok(b"data/sp/kid", b"")?;
    xs.one(ty::GET_PERMS, 0, b"data/sp/kid")?
        .is(list.as_bytes(), "GET_PERMS of a child")?;
    xs.rm_ok(b"data/sp")
}

fn transaction_isolation(xs: &mut Xs) -> Result<(), Msg> {
    xs.put_ok(b"data/ti", b"")?;
    xs.drain(0)?;
    xs.watch(b"data/ti", b"tok-ti")?.ok("WATCH data/ti")?;
    xs.event(ms(xs::WAIT_MS))?;
    let t = xs.start()?;
    xs.write(t, b"data/ti/x", b"in")?
        .ok("WRITE in the transaction")?;
    xs.read(t, b"data/ti/x")?
        .is(b"in", "READ in the transaction")?;
    xs.read(0, b"data/ti/x")?
        .err("ENOENT", "READ outside the transaction before the commit")?;
    if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
        return Err(msg!("an event before the commit: \"{}\"", show(e.raw())));
    }
    xs.end(t, true)?.ok("TRANSACTION_END T")?;
    xs.read(0, b"data/ti/x")?
        .is(b"in", "READ after the commit")?;
    xs.event(ms(xs::WAIT_MS))?
        .is(b"data/ti/x", b"tok-ti", "the event of the committed WRITE")?;
    xs.unwatch(b"data/ti", b"tok-ti")?.ok("UNWATCH")?;
    xs.rm_ok(b"data/ti")
}

/// One path component of 99 characters and its `/`.
static SEGMENT: [u8; 100] = {
    let mut s = [b'p'; 100];
    s[0] = b'/';
    s
};

fn path_too_long(xs: &mut Xs) -> Result<(), Msg> {
    // data/pl and 20 components of 99 characters: 2007 bytes below the
    // home, under the limit of 2048; 23 of them: 2307, over it.
    let mut parts: [&[u8]; 26] = [&SEGMENT; 26];
    parts[0] = b"data/pl";
    for (n, what) in [(20, "2007"), (23, "2307")] {
        let path = &mut parts[..n + 3];
        path[n + 1] = b"\0";
        path[n + 2] = b"deep";
        let w = xs.request(ty::WRITE, 0, path)?;
        let r = xs.request(ty::READ, 0, &path[..n + 2])?;
        path[n + 1] = &SEGMENT;
        path[n + 2] = &SEGMENT;
        if n == 20 {
            w.ok(msg!("WRITE of a {what}-byte relative path"))?;
            r.is(b"deep", msg!("READ of a {what}-byte relative path"))?;
        } else {
            w.err("EINVAL", msg!("WRITE of a {what}-byte relative path"))?;
            r.err("EINVAL", msg!("READ of a {what}-byte relative path"))?;
        }
    }
    xs.rm_ok(b"data/pl")
}

fn malformed(xs: &mut Xs) -> Verdict {
    let cases: [(u32, &str, &[u8]); 7] = [
        (ty::READ, "READ without its NUL", b"domid"),
        (ty::READ, "READ with two strings", b"domid\0x\0"),
        (ty::READ, "READ with an empty payload", b""),
        (ty::WRITE, "WRITE without a NUL", b"data/mf"),
        (ty::WATCH, "WATCH with one string", b"data/mf\0"),
        (ty::WATCH, "WATCH with three strings", b"data/mf\0t\x001\0"),
        (ty::GET_PERMS, "GET_PERMS without its NUL", b"data"),
    ];
    for (t, what, payload) in cases {
        xs.request(t, 0, &[payload])?.err("EINVAL", what)?;
    }
    // Still serving, nothing created.
    xs.read(0, b"data/mf")?.err("ENOENT", "READ data/mf")?;
    xs.drain(ms(QUIET_MS))?;
    Ok(Msg::new())
}

/// 11 transactions fit (C xenstored tests `> 10`), the 12th is ENOSPC.
fn quota_transactions(xs: &mut Xs) -> Verdict {
    let mut ids = [0u32; 11];
    let mut open = 0;
    let mut r = Ok(Msg::new());
    for slot in ids.iter_mut() {
        match xs.start() {
            Ok(t) => {
                *slot = t;
                open += 1;
            }
            Err(e) => {
                r = Err(msg!("transaction {} of 11: {e}", open + 1));
                break;
            }
        }
    }
    if r.is_ok() {
        let twelfth = xs.request(ty::TRANSACTION_START, 0, &[b"\0"])?;
        let leaked = core::str::from_utf8(twelfth.body().strip_suffix(b"\0").unwrap_or(&[]))
            .ok()
            .and_then(|d| d.parse::<u32>().ok());
        if let (None, Some(t)) = (twelfth.error(), leaked) {
            xs.end(t, false)?;
        }
        r = twelfth
            .err("ENOSPC", "a 12th TRANSACTION_START")
            .map(|()| Msg::new());
    }
    for &t in &ids[..open] {
        xs.end(t, false)?.ok("TRANSACTION_END F")?;
    }
    r
}

fn quota_watches(xs: &mut Xs) -> Verdict {
    xs.request(ty::RESET_WATCHES, 0, &[b"\0"])?
        .ok("RESET_WATCHES")?;
    xs.drain(0)?;
    let mut fitted = 0;
    let mut last = None;
    for i in 0..140 {
        let tok = bytes!("q{i}");
        let r = xs.watch(b"data/qw", tok.as_bytes())?;
        if r.error().is_some() {
            last = Some(r);
            break;
        }
        fitted += 1;
    }
    let dropped = xs.drain(ms(QUIET_MS))?;
    let reset = xs.request(ty::RESET_WATCHES, 0, &[b"\0"])?;
    ensure!(
        fitted == 129,
        "{fitted} watches fitted, expected 129 (C xenstored's quota 128, tested before adding)"
    );
    match last {
        Some(r) => r.err("E2BIG", "the 130th WATCH")?,
        None => return Err(msg!("140 watches fitted")),
    }
    reset.ok("RESET_WATCHES")?;
    Ok(msg!("events={}", dropped + xs.dropped))
}

/// Counts the nodes at and below the home whose owner is this domain,
/// breadth first, the paths still to visit kept NUL-separated in one
/// buffer (no heap, and no recursion on a 32 KiB stack).
fn count_owned(xs: &mut Xs, me: &Me) -> Result<u32, Msg> {
    // Paths relative to the home: "" is the home, then "/name" and so on.
    let mut todo = Bytes::<1024>::new();
    todo.push(b"\0");
    let own = bytes!("{}", me.id);
    let (mut at, mut n) = (0, 0);
    while at < todo.as_bytes().len() {
        let end = todo.as_bytes()[at..]
            .iter()
            .position(|&c| c == 0)
            .map_or(todo.as_bytes().len(), |e| at + e);
        let mut path = Bytes::<256>::new();
        path.push(me.home.as_bytes())
            .push(&todo.as_bytes()[at..end]);
        let rel_start = at;
        at = end + 1;
        let perms = xs.one(ty::GET_PERMS, 0, path.as_bytes())?;
        let first = strings(perms.value(msg!("GET_PERMS {}", show(path.as_bytes())))?)
            .next()
            .unwrap_or(&[]);
        if first.len() > 1 && first[1..] == *own.as_bytes() {
            n += 1;
        }
        let r = xs.one(ty::DIRECTORY, 0, path.as_bytes())?;
        let kids = r.value(msg!("DIRECTORY {}", show(path.as_bytes())))?;
        ensure!(
            !r.truncated(),
            "DIRECTORY {} is too long to walk",
            show(path.as_bytes())
        );
        let rel_len = end - rel_start;
        for kid in strings(kids) {
            let room = todo.as_bytes().len() + rel_len + kid.len() + 2;
            ensure!(
                room <= 1024,
                "the home has more nodes than the walk can hold"
            );
            let mut entry = Bytes::<256>::new();
            entry.push(&path.as_bytes()[me.home.as_bytes().len()..]);
            todo.push(entry.as_bytes()).push(b"/").push(kid).push(b"\0");
        }
    }
    Ok(n)
}

fn quota_nodes(xs: &mut Xs, me: &Me) -> Verdict {
    let before = count_owned(xs, me)?;
    // data/q, then groups of 50 (data/q/<g>, MKDIR) each with 50 leaves
    // (data/q/<g>/<i>): every request creates exactly one node, and no
    // node's child list comes near the node-size quota.
    let mut created = 0u32;
    let mut refused = None;
    for i in 0..1100u32 {
        let r = if i == 0 {
            xs.one(ty::MKDIR, 0, b"data/q")?
        } else if (i - 1) % 51 == 0 {
            xs.one(ty::MKDIR, 0, bytes!("data/q/{}", (i - 1) / 51).as_bytes())?
        } else {
            let path = bytes!("data/q/{}/{}", (i - 1) / 51, (i - 1) % 51);
            xs.write(0, path.as_bytes(), b"")?
        };
        if r.error().is_some() {
            refused = Some(r);
            break;
        }
        created += 1;
    }
    xs.rm_ok(b"data/q")?;
    xs.put_ok(b"data/q-after", b"")?;
    xs.rm_ok(b"data/q-after")?;
    let refused = refused.ok_or_else(|| msg!("1100 new nodes were all accepted"))?;
    refused.err("ENOSPC", "the write past the quota")?;
    ensure!(
        before + created == 1000,
        "ENOSPC came when the domain owned {} nodes ({before} before the case, {created} created), expected 1000",
        before + created
    );
    Ok(msg!("owned-before={before}"))
}

/// A READ whose header and payload come in four pieces, each published
/// and signalled on its own.
fn split_request(xs: &mut Xs, me: &Me) -> Verdict {
    let id = xs.id();
    let h = Xs::header(ty::READ, id, 0, 6);
    let pieces: [&[u8]; 4] = [&h[..7], &h[7..], b"dom", b"id\0"];
    let start = xs.page.r32(xs::RSP_PROD);
    for (i, piece) in pieces.iter().enumerate() {
        xs.raw(piece)?;
        if i < 3 {
            ensure!(
                !xs.came(ms(QUIET_MS), |p| p.r32(xs::RSP_PROD) != start),
                "the server answered after piece {} of 4",
                i + 1
            );
        }
    }
    xs.reply(ty::READ, id, 0)?.is(
        bytes!("{}", me.id).as_bytes(),
        "READ domid sent in four pieces",
    )?;
    Ok(Msg::new())
}

/// The guest asks for a ring reset (`connection` = 1, signal) and waits
/// for the server's answer (`connection` = 0 and a signal), both rings
/// empty after it.
fn reset_ring(xs: &mut Xs) -> Result<(), Msg> {
    let p = xs.page;
    xen::consume(xs.port);
    p.w32(xs::CONNECTION, 1);
    xs.notify()?;
    xs.wait(
        ms(xs::WAIT_MS),
        "connection back to 0 after the reset",
        |pg| pg.r32(xs::CONNECTION) == 0,
    )?;
    let (rc, rp, sc, sp) = (
        p.r32(xs::REQ_CONS),
        p.r32(xs::REQ_PROD),
        p.r32(xs::RSP_CONS),
        p.r32(xs::RSP_PROD),
    );
    ensure!(
        rc == rp && sc == sp,
        "after the reset req_cons {rc:#x} req_prod {rp:#x} rsp_cons {sc:#x} rsp_prod {sp:#x}, expected both rings empty"
    );
    xs.drain(0)?;
    Ok(())
}

/// An index more than a ring ahead (the guest's `req_prod`, then its
/// `rsp_cons`): `error` 2 (RINGIDX), nothing served, and a reset recovers.
fn ring_index_jump(xs: &mut Xs, me: &Me) -> Verdict {
    let p = xs.page;
    for (field, name) in [(xs::REQ_PROD, "req_prod"), (xs::RSP_CONS, "rsp_cons")] {
        let base = if field == xs::REQ_PROD {
            p.r32(xs::REQ_CONS)
        } else {
            p.r32(xs::RSP_PROD)
        };
        p.w32(field, base.wrapping_add(2000));
        if field == xs::RSP_CONS {
            // The server finds it when it next writes a reply.
            let id = xs.id();
            let mut prod = p.r32(xs::REQ_PROD);
            for &b in Xs::header(ty::READ, id, 0, 6).iter().chain(b"domid\0") {
                p.w8(xs::REQ + (prod % 1024) as usize, b);
                prod = prod.wrapping_add(1);
            }
            p.w32(xs::REQ_PROD, prod);
        }
        xs.notify()?;
        ensure!(
            arch::wait_for(ms(xs::WAIT_MS), || p.r32(xs::ERROR) != 0),
            "error stayed 0 after {name} jumped 2000 bytes ahead"
        );
        let e = p.r32(xs::ERROR);
        ensure!(
            e == 2,
            "error is {e} after {name} jumped ahead, expected 2 (RINGIDX)"
        );
        reset_ring(xs).map_err(|e| msg!("after the {name} jump: {e}"))?;
        xs.read(0, b"domid")?.is(
            bytes!("{}", me.id).as_bytes(),
            msg!("READ domid after the {name} jump and the reset"),
        )?;
    }
    Ok(Msg::new())
}

fn ring_reset(xs: &mut Xs, me: &Me) -> Verdict {
    xs.drain(0)?;
    xs.watch(b"data/rr", b"tok-rr")?.ok("WATCH data/rr")?;
    xs.event(ms(xs::WAIT_MS))?;
    let t = xs.start()?;
    let p = xs.page;
    let id = xs.id();
    xs.raw(&Xs::header(ty::READ, id, 0, 4097))?;
    ensure!(
        arch::wait_for(ms(xs::WAIT_MS), || p.r32(xs::ERROR) != 0),
        "error stayed 0 after a header with len 4097"
    );
    let e = p.r32(xs::ERROR);
    ensure!(
        e == 3,
        "error is {e} after a header with len 4097, expected 3 (PROTO)"
    );
    let rsp = p.r32(xs::RSP_PROD);
    let id = xs.id();
    xs.raw(&Xs::header(ty::READ, id, 0, 6))?;
    xs.raw(b"domid\0")?;
    ensure!(
        !xs.came(ms(QUIET_MS * 4), |pg| pg.r32(xs::RSP_PROD) != rsp),
        "the server still answered after the oversized header"
    );
    // The guest asks for a reset and waits for the server.
    reset_ring(xs)?;
    let err = p.r32(xs::ERROR);
    xs.read(0, b"domid")?
        .is(bytes!("{}", me.id).as_bytes(), "READ domid after the reset")?;
    xs.unwatch(b"data/rr", b"tok-rr")?
        .err("ENOENT", "UNWATCH of a watch set before the reset")?;
    xs.end(t, false)?.err(
        "ENOENT",
        "TRANSACTION_END of a transaction opened before the reset",
    )?;
    Ok(msg!("error-after-reset={err}"))
}

// ---- two domains ----

/// Domain 1's meeting point, readable and writable by domain 2.
const SYNC: &[u8] = b"data/sync";
const SYNC_ABS: &[u8] = b"/local/domain/1/data/sync";

/// Polls `path` until it reads `want` (other errors and values mean "not
/// yet"), `timeout` ms at most.
fn await_value(xs: &mut Xs, path: &[u8], want: &[u8], timeout: u64) -> Result<(), Msg> {
    let start = arch::ticks();
    let mut last = Msg::new();
    while arch::ticks().wrapping_sub(start) < ms(timeout) {
        let r = xs.read(0, path)?;
        if r.error().is_none() && r.body() == want {
            return Ok(());
        }
        last = r.describe();
        arch::wait_for(ms(5), || false);
    }
    Err(msg!(
        "{} did not read \"{}\" within {timeout} ms (last: {last})",
        show(path),
        show(want)
    ))
}

/// Domain 1: owns the meeting point, grants, watches, runs normal
/// traffic while domain 2 floods.
fn peer_owner(xs: &mut Xs) {
    case("xs2.setup", || {
        // Domain 2 watches data/private first, then says so.
        await_value(xs, b"/local/domain/2/data/ready", b"1", MEET_MS)?;
        xs.put_ok(b"data/private", b"secret")?;
        xs.put_ok(b"data/shared", b"hello")?;
        xs.set_perms(0, b"data/shared", b"n1\0r2\0")?
            .ok("SET_PERMS data/shared n1 r2")?;
        xs.put_ok(b"data/rv", b"")?;
        xs.set_perms(0, b"data/rv", b"n1\0b2\0")?
            .ok("SET_PERMS data/rv n1 b2")?;
        xs.drain(0)?;
        xs.watch(b"data/rv", b"tok-rv")?.ok("WATCH data/rv")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(b"data/rv", b"tok-rv", "immediate event")?;
        xs.put_ok(SYNC, b"")?;
        xs.set_perms(0, SYNC, b"n1\0b2\0")?
            .ok("SET_PERMS data/sync n1 b2")?;
        xs.put_ok(SYNC, b"1")?;
        Ok(Msg::new())
    });
    case("xs2.peer_write_fires_watch", || {
        let e = xs.event(ms(MEET_MS))?;
        e.is(
            b"data/rv",
            b"tok-rv",
            "domain 2's WRITE of /local/domain/1/data/rv",
        )?;
        xs.read(0, b"data/rv")?.is(b"from2", "READ data/rv")?;
        Ok(Msg::new())
    });
    case("xs2.peer_created_node_owned_by_peer", || {
        await_value(xs, SYNC, b"2", STEP_MS)?;
        xs.event(ms(xs::WAIT_MS))?.is(
            b"data/rv/sub",
            b"tok-rv",
            "domain 2 creating data/rv/sub",
        )?;
        xs.one(ty::GET_PERMS, 0, b"data/rv/sub")?
            .err("EACCES", "GET_PERMS of the node domain 2 owns (n2 b2)")?;
        xs.read(0, b"data/rv/sub")?
            .err("EACCES", "READ of the node domain 2 owns")?;
        xs.unwatch(b"data/rv", b"tok-rv")?.ok("UNWATCH")?;
        Ok(Msg::new())
    });
    case("xs2.owner_change_eperm", || {
        xs.set_perms(0, b"data/shared", b"n2\0")?
            .err("EPERM", "SET_PERMS data/shared n2 (giving it away)")?;
        xs.one(ty::GET_PERMS, 0, b"data/shared")?
            .is(b"n1\0r2\0", "GET_PERMS data/shared")?;
        // Domain 2 watches it: this write must reach it.
        xs.put_ok(b"data/shared", b"changed")?;
        Ok(Msg::new())
    });
    case("xs2.traffic_during_flood", || {
        xs.put_ok(SYNC, b"3")?;
        await_value(xs, SYNC, b"f", STEP_MS)?;
        // Ordinary traffic for as long as domain 2 floods (it says "d"
        // when done), 200 rounds at least.
        let start = arch::ticks();
        let mut worst = 0;
        let mut rounds = 0u32;
        loop {
            let t0 = arch::ticks();
            let path = bytes!("data/n/{}", rounds % 10);
            let val = bytes!("{rounds}");
            xs.put_ok(path.as_bytes(), val.as_bytes())
                .map_err(|e| msg!("round {rounds}: {e}"))?;
            xs.read(0, path.as_bytes())?
                .is(val.as_bytes(), msg!("round {rounds}: READ"))?;
            worst = worst.max(arch::ticks() - t0);
            rounds += 1;
            if rounds.is_multiple_of(10) && rounds >= 200 && xs.read(0, SYNC)?.body() == b"d" {
                break;
            }
            ensure!(
                arch::ticks().wrapping_sub(start) < ms(MEET_MS),
                "domain 2 did not finish flooding within {MEET_MS} ms"
            );
        }
        let total = arch::ticks() - start;
        xs.rm_ok(b"data/n")?;
        let tpms = (arch::ticks_per_second() / 1000).max(1);
        Ok(msg!(
            "{rounds} rounds in {} ms, worst {} ms",
            total / tpms,
            worst / tpms
        ))
    });
    case("xs2.peer_done", || {
        xs.rm_ok(b"data/private")?;
        xs.rm_ok(b"data/rv")?;
        xs.rm_ok(b"data/shared")?;
        xs.rm_ok(SYNC)
    });
}

/// Domain 2: a visitor in domain 1's tree, then the flood.
fn peer_visitor(xs: &mut Xs) {
    case("xs2.foreign_name_eacces", || {
        xs.read(0, b"/local/domain/1/name")?
            .err("EACCES", "READ /local/domain/1/name")?;
        xs.one(ty::DIRECTORY, 0, b"/local/domain/1")?
            .err("EACCES", "DIRECTORY /local/domain/1")?;
        xs.read(0, b"/local/domain/1/data/nothing")?
            .err("EACCES", "READ of a missing node in domain 1's tree")?;
        xs.write(0, b"/local/domain/1/data/x", b"no")?
            .err("EACCES", "WRITE into domain 1's data")
    });
    case("xs2.watch_unreadable_filtered", || {
        // The immediate event comes whatever the permissions; domain 1's
        // write of the node (n1, unreadable here) must not.
        let path = b"/local/domain/1/data/private";
        xs.drain(0)?;
        xs.watch(path, b"tok-p")?
            .ok("WATCH of domain 1's data/private")?;
        xs.event(ms(xs::WAIT_MS))?
            .is(path, b"tok-p", "the immediate event")?;
        xs.put_ok(b"data/ready", b"1")?;
        xs.set_perms(0, b"data/ready", b"n2\0r1\0")?
            .ok("SET_PERMS data/ready n2 r1")?;
        await_value(xs, SYNC_ABS, b"1", MEET_MS)?;
        if let Some(e) = xs.maybe_event(ms(QUIET_MS))? {
            return Err(msg!(
                "an event for a node this domain cannot read: \"{}\"",
                show(e.raw())
            ));
        }
        xs.unwatch(path, b"tok-p")?.ok("UNWATCH")?;
        xs.rm_ok(b"data/ready")
    });
    case("xs2.granted_read", || {
        await_value(xs, SYNC_ABS, b"1", MEET_MS)?;
        xs.read(0, b"/local/domain/1/data/shared")?
            .is(b"hello", "READ of the node domain 1 granted r2")?;
        xs.write(0, b"/local/domain/1/data/shared", b"no")?
            .err("EACCES", "WRITE of a read-only grant")?;
        xs.one(ty::GET_PERMS, 0, b"/local/domain/1/data/shared")?
            .is(b"n1\0r2\0", "GET_PERMS")?;
        // Watched here; domain 1 changes it later (xs2.granted_watch_fires).
        xs.drain(0)?;
        xs.watch(b"/local/domain/1/data/shared", b"tok-s")?
            .ok("WATCH of the granted node")?;
        xs.event(ms(xs::WAIT_MS))?.is(
            b"/local/domain/1/data/shared",
            b"tok-s",
            "the immediate event",
        )?;
        Ok(Msg::new())
    });
    case("xs2.set_perms_not_owner_eacces", || {
        xs.set_perms(0, b"/local/domain/1/data/rv", b"n2\0")?
            .err("EACCES", "SET_PERMS on domain 1's node (b2, not the owner)")?;
        xs.set_perms(0, b"/local/domain/1/data/rv", b"n1\0b2\0")?
            .err(
                "EACCES",
                "SET_PERMS with its own list unchanged, not the owner",
            )
    });
    case("xs2.owner_change_eperm", || {
        xs.put_ok(b"data/mine", b"")?;
        xs.set_perms(0, b"data/mine", b"n1\0")?
            .err("EPERM", "SET_PERMS data/mine n1 (changing the owner)")?;
        xs.rm_ok(b"data/mine")
    });
    case("xs2.write_fires_peer_watch", || {
        xs.put_ok(b"/local/domain/1/data/rv", b"from2")?;
        xs.put_ok(b"/local/domain/1/data/rv/sub", b"mine")?;
        xs.one(ty::GET_PERMS, 0, b"/local/domain/1/data/rv/sub")?
            .is(
                b"n2\0b2\0",
                "GET_PERMS of the node it created (owner replaced)",
            )?;
        xs.put_ok(SYNC_ABS, b"2")
    });
    case("xs2.granted_watch_fires", || {
        // Domain 1 writes data/shared before it says 3.
        await_value(xs, SYNC_ABS, b"3", STEP_MS)?;
        xs.event(ms(xs::WAIT_MS))?.is(
            b"/local/domain/1/data/shared",
            b"tok-s",
            "domain 1's write of the node granted r2",
        )?;
        xs.read(0, b"/local/domain/1/data/shared")?
            .is(b"changed", "READ of it")?;
        xs.unwatch(b"/local/domain/1/data/shared", b"tok-s")?
            .ok("UNWATCH")
    });
    case("xs2.flood", || {
        await_value(xs, SYNC_ABS, b"3", STEP_MS)?;
        xs.put_ok(SYNC_ABS, b"f")?;
        for round in 0..FLOOD_ROUNDS {
            flood_round(xs, round).map_err(|e| msg!("round {round}: {e}"))?;
        }
        xs.put_ok(SYNC_ABS, b"d")?;
        Ok(msg!("rounds={FLOOD_ROUNDS}"))
    });
}

/// Rounds of abuse domain 2 sends while domain 1 works.
const FLOOD_ROUNDS: u32 = 20;

/// One round of abuse from domain 2; each answer still checked.
fn flood_round(xs: &mut Xs, round: u32) -> Result<(), Msg> {
    for (t, payload) in [
        (ty::READ, &b"domid"[..]),
        (ty::READ, b"data/a b\0"),
        (ty::WRITE, b"data/flood"),
        (99, b"x\0"),
    ] {
        let r = xs.request(t, 0, &[payload])?;
        ensure!(
            r.error().is_some(),
            "malformed type {t} answered {}",
            r.describe()
        );
    }
    if round == 0 {
        // The quotas, once: watches, transactions, node size.
        let mut w = 0;
        loop {
            let r = xs.watch(b"data/fw", bytes!("f{w}").as_bytes())?;
            if r.error().is_some() {
                r.err("E2BIG", "a watch past the quota")?;
                break;
            }
            w += 1;
            ensure!(w < 200, "200 watches accepted");
        }
        xs.request(ty::RESET_WATCHES, 0, &[b"\0"])?
            .ok("RESET_WATCHES")?;
        xs.drain(ms(QUIET_MS))?;
        let mut ids = [0u32; 11];
        for slot in ids.iter_mut() {
            *slot = xs.start()?;
        }
        xs.request(ty::TRANSACTION_START, 0, &[b"\0"])?
            .err("ENOSPC", "a 12th transaction")?;
        for t in ids {
            xs.end(t, false)?.ok("TRANSACTION_END F")?;
        }
        xs.write(0, b"data/fbig", &FILL[..2100])?
            .err("ENOSPC", "an oversized node")?;
        // Nodes until the domain owns 1000, in groups of 50.
        let mut made = 0u32;
        loop {
            let r = if made.is_multiple_of(51) {
                xs.one(ty::MKDIR, 0, bytes!("data/fq/{}", made / 51).as_bytes())?
            } else {
                let leaf = bytes!("data/fq/{}/{}", made / 51, made % 51);
                xs.write(0, leaf.as_bytes(), b"")?
            };
            if r.error().is_some() {
                r.err("ENOSPC", "a node past the quota")?;
                break;
            }
            made += 1;
            ensure!(made < 1100, "1100 nodes accepted");
        }
        xs.rm_ok(b"data/fq")?;
    }
    // A header with len > 4096, then the reset.
    let p = xs.page;
    let id = xs.id();
    xs.raw(&Xs::header(ty::WRITE, id, 0, 5000))?;
    ensure!(
        arch::wait_for(ms(xs::WAIT_MS), || p.r32(xs::ERROR) != 0),
        "error stayed 0 after a header with len 5000"
    );
    reset_ring(xs)
}
