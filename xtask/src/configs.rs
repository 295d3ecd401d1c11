//! Configs: a DTS fragment in Xen's dom0less bindings (`configs/*.dts`)
//! plus its expectations (`configs/*.expect`), turned into a QEMU machine
//! of one of the boards (`boards::BOARDS`) — the board's host device tree
//! with the config merged in, each boot module placed in its RAM with its
//! exact size, and a loader for each — that boots on Oxen or on Xen alike.
//! A config is written once, for `boards::HOME`; on another board its
//! modules go where that board's RAM is and Xen's `dtuart=` names that
//! board's console. The format is in docs/configs.md.

use std::path::{Path, PathBuf};

use crate::boards::{self, Board};
use crate::debian::{self, Guests};
use crate::dts::{self, Node, Source};
use crate::expect::{self, End, Expect, Peer, Want};
use crate::guests_build;
use crate::qemu::{self, Machine, Outcome};
use crate::root;

/// Module placement alignment.
pub const MODULE_ALIGN: u64 = 2 << 20;
/// The RAM a config gets unless it asks for more or needs more.
pub const DEFAULT_MEMORY_MIB: u64 = 2048;
/// Host CPUs unless the config or `--smp` says otherwise.
pub const DEFAULT_CPUS: u32 = 2;

/// The `xtask,*` properties a config may use; each is removed before the
/// DTB is compiled.
const FILE_PROP: &str = "xtask,file";
/// In a module node: load the file once for every node that says so with
/// the same `xtask,file`, all of them given one `reg` (Xen's shared module).
const SHARE_PROP: &str = "xtask,share";
const MEMORY_PROP: &str = "xtask,qemu-memory";
const CPUS_PROP: &str = "xtask,qemu-cpus";
const ICOUNT_PROP: &str = "xtask,qemu-icount";
/// The largest `-icount shift` QEMU takes.
const MAX_ICOUNT_SHIFT: u32 = 10;

/// The `configs/` directory.
pub fn dir() -> PathBuf {
    root().join("configs")
}

/// Every config, by name (`configs/<name>.dts`), sorted.
pub fn names() -> Result<Vec<String>, String> {
    let d = dir();
    let mut v: Vec<String> = std::fs::read_dir(&d)
        .map_err(|e| format!("{}: {e}", d.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".dts"))
                .map(String::from)
        })
        .collect();
    v.sort();
    Ok(v)
}

/// A domain of a config, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    /// `memory` in KiB, when readable.
    pub memory_kib: Option<u64>,
}

/// A boot module whose file the xtask supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// Child indices from the root to the module node.
    pub at: Vec<usize>,
    /// The node's path, for messages.
    pub path: String,
    /// The `xtask,file` value.
    pub file: String,
    /// `xtask,share`: one copy for every sharing node with this file.
    pub share: bool,
    pub address_cells: u32,
    pub size_cells: u32,
}

/// What the xtask reads from a config's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub domains: Vec<Domain>,
    pub modules: Vec<ModuleRef>,
    /// `xtask,qemu-memory`, in MiB.
    pub memory_mib: Option<u64>,
    /// `xtask,qemu-cpus`.
    pub cpus: Option<u32>,
    /// `xtask,qemu-icount`: run QEMU with `-icount shift=N,sleep=off`, so
    /// that the guests' clock counts instructions (2^N ns each) and a
    /// loaded host that deschedules QEMU cannot make a wake-up late.
    pub icount_shift: Option<u32>,
}

/// Reads the domains, the modules to supply and the machine settings,
/// collecting every error. Only what the xtask itself needs is checked; the
/// rest is the hypervisor's to accept or refuse, so configs can test that.
pub fn plan(src: &Source) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let root = &src.root;
    let memory_mib = root.prop(MEMORY_PROP).and_then(|p| {
        let v = p.strings().and_then(|s| s.first().cloned());
        match v.as_deref().and_then(parse_size_mib) {
            Some(m) => Some(m),
            None => {
                errors.push(format!(
                    "/: {MEMORY_PROP} = {} is not a size (expected e.g. \"3G\" or \"2560M\")",
                    p.value.as_deref().unwrap_or("(empty)")
                ));
                None
            }
        }
    });
    let cpus = match root.u32_prop(CPUS_PROP) {
        None => None,
        Some(Ok(0)) => {
            errors.push(format!("/: {CPUS_PROP} = <0> (expected at least 1)"));
            None
        }
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            errors.push(format!("/: {e} (expected e.g. <4>)"));
            None
        }
    };
    let icount_shift = match root.u32_prop(ICOUNT_PROP) {
        None => None,
        Some(Ok(n)) if n <= MAX_ICOUNT_SHIFT => Some(n),
        Some(Ok(n)) => {
            errors.push(format!(
                "/: {ICOUNT_PROP} = <{n}> (expected a shift of 0 to {MAX_ICOUNT_SHIFT})"
            ));
            None
        }
        Some(Err(e)) => {
            errors.push(format!("/: {e} (expected e.g. <3>)"));
            None
        }
    };
    for p in &root.props {
        if p.name.starts_with("xtask,")
            && ![MEMORY_PROP, CPUS_PROP, ICOUNT_PROP].contains(&p.name.as_str())
        {
            errors.push(format!(
                "/: {} is not an xtask property (expected {MEMORY_PROP}, {CPUS_PROP} or {ICOUNT_PROP} here, {FILE_PROP} in a module)",
                p.name
            ));
        }
    }
    let mut domains = Vec::new();
    if let Some(chosen) = root.child("chosen") {
        for d in chosen
            .children
            .iter()
            .filter(|c| c.is_compatible("xen,domain"))
        {
            let memory_kib = d.prop("memory").and_then(|p| match p.cells().as_deref() {
                Some([hi, lo]) => Some(u64::from(*hi) << 32 | u64::from(*lo)),
                Some([v]) => Some(u64::from(*v)),
                _ => None,
            });
            domains.push(Domain {
                name: d.name.clone(),
                memory_kib,
            });
        }
    }
    let mut modules = Vec::new();
    collect_modules(root, "", &mut Vec::new(), &mut modules, &mut errors);
    if errors.is_empty() {
        Ok(Plan {
            domains,
            modules,
            memory_mib,
            cpus,
            icount_shift,
        })
    } else {
        Err(errors)
    }
}

fn collect_modules(
    node: &Node,
    path: &str,
    at: &mut Vec<usize>,
    out: &mut Vec<ModuleRef>,
    errors: &mut Vec<String>,
) {
    for (i, child) in node.children.iter().enumerate() {
        let child_path = format!("{path}/{}", child.name);
        at.push(i);
        for p in &child.props {
            if p.name.starts_with("xtask,") && p.name != FILE_PROP && p.name != SHARE_PROP {
                errors.push(format!(
                    "{child_path}: {} is not an xtask property (expected {FILE_PROP} or {SHARE_PROP} in a module node; {MEMORY_PROP} and {CPUS_PROP} belong in /)",
                    p.name
                ));
            }
        }
        if child.prop(SHARE_PROP).is_some() && child.prop(FILE_PROP).is_none() {
            errors.push(format!(
                "{child_path}: {SHARE_PROP} without {FILE_PROP} (expected both: the file to load once for every sharing node)"
            ));
        }
        if let Some(p) = child.prop(FILE_PROP) {
            let file = p
                .strings()
                .filter(|s| s.len() == 1)
                .map(|mut s| s.remove(0));
            let cells = |name: &str| match node.u32_prop(name) {
                Some(Ok(v)) if (1..=2).contains(&v) => Ok(v),
                Some(Ok(v)) => Err(format!("{path}: {name} = <{v}> (expected 1 or 2)")),
                Some(Err(e)) => Err(format!("{path}: {e}")),
                None => Err(format!(
                    "{path}: no {name}, needed to write the reg of {child_path} (expected <1> or <2>)"
                )),
            };
            match (file, cells("#address-cells"), cells("#size-cells")) {
                (Some(file), Ok(ac), Ok(sc)) => out.push(ModuleRef {
                    at: at.clone(),
                    path: child_path.clone(),
                    file,
                    share: child.prop(SHARE_PROP).is_some(),
                    address_cells: ac,
                    size_cells: sc,
                }),
                (file, ac, sc) => {
                    if file.is_none() {
                        errors.push(format!(
                            "{child_path}: {FILE_PROP} = {} is not one string (expected \"linux\", \"linux61\", \"initramfs\", \"guest:NAME\" or a path relative to the repository)",
                            p.value.as_deref().unwrap_or("(empty)")
                        ));
                    }
                    errors.extend(ac.err());
                    errors.extend(sc.err());
                }
            }
        }
        collect_modules(child, &child_path, at, out, errors);
        at.pop();
    }
}

/// `"3G"`, `"2560M"` → MiB.
pub fn parse_size_mib(s: &str) -> Option<u64> {
    let (n, mult) = match s.trim() {
        t if t.ends_with(['G', 'g']) => (&t[..t.len() - 1], 1024),
        t if t.ends_with(['M', 'm']) => (&t[..t.len() - 1], 1),
        _ => return None,
    };
    n.parse::<u64>()
        .ok()
        .filter(|&v| v > 0)
        .and_then(|v| v.checked_mul(mult))
}

/// Places files of the given sizes one after the other from `base`, each
/// start aligned to `align` and each clear of the `avoid` ranges (start,
/// size); fails if the last one does not end by `limit`.
pub fn place(
    sizes: &[u64],
    base: u64,
    align: u64,
    limit: u64,
    avoid: &[(u64, u64)],
) -> Result<Vec<u64>, String> {
    let mut next = base;
    let mut out = Vec::new();
    for &size in sizes {
        let mut at = next.div_ceil(align) * align;
        while let Some(&(start, len)) = avoid
            .iter()
            .find(|&&(start, len)| at < start + len && start < at + size.max(1))
        {
            at = (start + len).div_ceil(align) * align;
        }
        next = at + size;
        out.push(at);
    }
    if next > limit {
        return Err(format!(
            "the boot modules end at {next:#x}, past the end of RAM at {limit:#x}: \
             give the config more with {MEMORY_PROP}"
        ));
    }
    Ok(out)
}

/// For each module, the index of the module whose copy it uses: its own,
/// or that of the first `xtask,share` module with the same `xtask,file`.
pub fn copies(modules: &[ModuleRef]) -> Vec<usize> {
    (0..modules.len())
        .map(|i| {
            let m = &modules[i];
            (0..i)
                .find(|&j| m.share && modules[j].share && modules[j].file == m.file)
                .unwrap_or(i)
        })
        .collect()
}

/// The RAM a config gets: what it asks for, else enough for its domains'
/// memory, its modules (up to `modules_end`, in RAM from `ram_base`) and the
/// hypervisor, in whole GiB, at least 2 GiB.
pub fn memory_mib(plan: &Plan, modules_end: u64, ram_base: u64) -> u64 {
    if let Some(m) = plan.memory_mib {
        return m;
    }
    let domains_mib: u64 = plan
        .domains
        .iter()
        .filter_map(|d| d.memory_kib)
        .sum::<u64>()
        / 1024;
    let modules_mib = (modules_end.saturating_sub(ram_base)) >> 20;
    // 512 MiB spare: the hypervisor, its heap, page tables, guest DTBs.
    let need = domains_mib + modules_mib + 512;
    need.div_ceil(1024).max(DEFAULT_MEMORY_MIB / 1024) * 1024
}

/// Puts `key=value` words into the `bootargs` of every test-guest module
/// (`xtask,file = "guest:…"`): a word replaces the word with its key
/// wherever a guest's bootargs have one; a key no guest has is appended to
/// every guest's. So `--guest-args "hostile.seed=7"` reseeds the hostile
/// guest, and the seed of a config that names none is still set.
pub fn set_guest_args(root: &mut Node, args: &[String]) -> Result<(), String> {
    fn is_guest(node: &Node) -> bool {
        node.strings(FILE_PROP)
            .first()
            .is_some_and(|f| guests_build::guest_name(f).is_some())
    }
    fn collect(node: &Node, out: &mut Vec<Vec<String>>) {
        if is_guest(node) {
            out.push(
                node.strings("bootargs")
                    .first()
                    .map(|b| b.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
            );
        }
        for c in &node.children {
            collect(c, out);
        }
    }
    fn store(node: &mut Node, new: &mut impl Iterator<Item = Vec<String>>) {
        if is_guest(node)
            && let Some(ws) = new.next()
        {
            node.set("bootargs", Some(format!("\"{}\"", ws.join(" "))));
        }
        for c in &mut node.children {
            store(c, new);
        }
    }
    fn key(w: &str) -> &str {
        w.split_once('=').map_or("", |(k, _)| k)
    }
    let words: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    if words.is_empty() {
        return Ok(());
    }
    if let Some(bad) = words
        .iter()
        .find(|w| key(w).is_empty() || w.contains('"') || w.contains('\\'))
    {
        return Err(format!(
            "--guest-args: \"{bad}\" is not a key=value word (e.g. hostile.seed=7)"
        ));
    }
    let mut bootargs = Vec::new();
    collect(root, &mut bootargs);
    if bootargs.is_empty() {
        return Err("--guest-args: the config loads no test guest".into());
    }
    for w in words {
        let has = |ws: &Vec<String>| ws.iter().any(|x| key(x) == key(w));
        let anywhere = bootargs.iter().any(has);
        for ws in &mut bootargs {
            if has(ws) {
                for x in ws.iter_mut().filter(|x| key(x) == key(w)) {
                    *x = w.to_string();
                }
            } else if !anywhere {
                ws.push(w.to_string());
            }
        }
    }
    store(root, &mut bootargs.into_iter());
    Ok(())
}

/// Puts `board`'s console into `/chosen`'s `xen,xen-bootargs` where the
/// config names the home board's (`dtuart=/pl011@9000000`).
pub fn set_console(root: &mut Node, board: &Board) {
    const PROP: &str = "xen,xen-bootargs";
    let Some(chosen) = root.children.iter_mut().find(|c| c.name == "chosen") else {
        return;
    };
    if let [args] = &chosen.strings(PROP)[..] {
        let new = board.bootargs(args);
        if new != *args {
            chosen.set(PROP, Some(format!("\"{new}\"")));
        }
    }
}

/// The modules that overlap a region of the host tree's `/reserved-memory`.
pub fn reserved_overlaps(host: &Source, placed: &[(ModuleRef, u64, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, start, size) in boards::reserved_memory(host) {
        for (m, at, len) in placed {
            if *at < start + size && start < at + len {
                out.push(format!(
                    "{} at {at:#x}-{:#x} overlaps {path} at {start:#x}-{:#x}",
                    m.path,
                    at + len,
                    start + size
                ));
            }
        }
    }
    out
}

/// Writes each placed module's `reg` (exact size, in its parent's cells),
/// gives it a unit address, and removes every `xtask,*` property.
pub fn apply(src: &mut Source, placed: &[(ModuleRef, u64, u64)]) -> Result<(), String> {
    for (m, addr, size) in placed {
        let mut node = &mut src.root;
        for &i in &m.at {
            node = &mut node.children[i];
        }
        let mut cells = dts::split_cells(*addr, m.address_cells)
            .ok_or(format!("{}: address {addr:#x} does not fit", m.path))?;
        cells.extend(dts::split_cells(*size, m.size_cells).ok_or(format!(
            "{}: {} is {size} bytes, too big for #size-cells = <{}>",
            m.path, m.file, m.size_cells
        ))?);
        node.set("reg", Some(dts::cells_value(&cells)));
        node.name = format!("{}@{addr:x}", node.base_name());
    }
    strip_xtask(&mut src.root);
    Ok(())
}

fn strip_xtask(node: &mut Node) {
    node.props.retain(|p| !p.name.starts_with("xtask,"));
    for c in &mut node.children {
        strip_xtask(c);
    }
}

/// QEMU's tree with the config's merged in: dtc merges a later root block
/// into the earlier tree, so the config's `/chosen` adds to QEMU's.
pub fn merge(host: &Source, config: &Source) -> String {
    let mut out = String::new();
    for h in host
        .header
        .iter()
        .chain(config.header.iter().filter(|h| !host.header.contains(h)))
    {
        out.push_str(h);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&host.write_root());
    out.push('\n');
    out.push_str("/* ---- merged from the config ---- */\n");
    out.push_str(&config.write_root());
    out
}

/// A config ready to boot.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub peer: Peer,
    pub machine: Machine,
    pub want: Want,
    /// The merged source the DTB was compiled from, for people.
    pub dts: PathBuf,
}

/// The files behind `xtask,file` names, fetched (or built) only when a
/// config needs them, and each only once.
struct Files {
    guests: Option<Guests>,
    /// Test guests already built: name and Image.
    built: Vec<(String, PathBuf)>,
}

impl Files {
    fn uboot() -> Result<PathBuf, String> {
        Ok(debian::fetch(false)?.uboot)
    }

    fn guests(&mut self) -> Result<&Guests, String> {
        if self.guests.is_none() {
            self.guests = Some(debian::fetch(false)?);
        }
        Ok(self.guests.as_ref().unwrap())
    }

    fn resolve(&mut self, name: &str, node: &str) -> Result<PathBuf, String> {
        match name {
            "linux" => Ok(self.guests()?.linux.clone()),
            "linux61" => Ok(self.guests()?.linux61.clone()),
            "initramfs" => {
                let g = self.guests()?.clone();
                crate::initramfs::build(&g)
            }
            file if guests_build::guest_name(file).is_some() => {
                let guest = guests_build::guest_name(file).unwrap_or_default();
                if let Some((_, img)) = self.built.iter().find(|(n, _)| n == guest) {
                    return Ok(img.clone());
                }
                let img = guests_build::build(guest)
                    .map_err(|e| format!("{node}: {FILE_PROP} = \"{file}\": {e}"))?;
                self.built.push((guest.to_string(), img.clone()));
                Ok(img)
            }
            path => {
                let p = root().join(path);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "{node}: {FILE_PROP} = \"{path}\": no such file {} (expected \"linux\", \"linux61\", \"initramfs\", \"guest:NAME\" or a path relative to the repository)",
                        p.display()
                    ))
                }
            }
        }
    }
}

/// Reads and parses `configs/NAME.expect`.
pub fn read_expect(name: &str) -> Result<Expect, String> {
    let path = dir().join(format!("{name}.expect"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (every config states its outcome there)",
            path.display()
        )
    })?;
    expect::parse(&text, &format!("configs/{name}.expect")).map_err(|e| e.join("\n"))
}

pub use crate::expect::Boot;

/// Prepares config `name` to boot on `peer` from the hypervisor `image`
/// on the home board: reads and checks the config and its expectations,
/// supplies and places its modules, and builds the DTB. `smp` overrides
/// the host CPUs.
pub fn prepare(name: &str, peer: Peer, image: &Path, smp: Option<u32>) -> Result<Prepared, String> {
    prepare_on(boards::HOME, name, peer, image, smp, Boot::Direct, &[])
}

/// As [`prepare`], on `board`'s machine, booting the way `boot` says, with
/// `guest_args` (`key=value` words, from `cargo xtask run --guest-args`)
/// put into the test guests' `bootargs` by [`set_guest_args`].
pub fn prepare_on(
    board: &'static Board,
    name: &str,
    peer: Peer,
    image: &Path,
    smp: Option<u32>,
    boot: Boot,
    guest_args: &[String],
) -> Result<Prepared, String> {
    let dts_path = dir().join(format!("{name}.dts"));
    if !dts_path.is_file() {
        return Err(format!(
            "no config {} (configs: {})",
            dts_path.display(),
            names().unwrap_or_default().join(", ")
        ));
    }
    let expect = read_expect(name)?;

    let work = debian::cache_dir()
        .join("run")
        .join(format!("{name}.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let result = prepare_in(
        board, name, peer, image, smp, boot, &expect, &work, guest_args,
    );
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[allow(clippy::too_many_arguments)]
fn prepare_in(
    board: &'static Board,
    name: &str,
    peer: Peer,
    image: &Path,
    smp: Option<u32>,
    boot: Boot,
    expect: &expect::Expect,
    work: &Path,
    guest_args: &[String],
) -> Result<Prepared, String> {
    let dts_path = dir().join(format!("{name}.dts"));
    // The config's source as the board gets it; its phandles are chosen
    // clear of `taken`, the host tree's (a vendor tree's start at 1, as
    // dtc gives a config's).
    let config_source = |taken: &[u32]| -> Result<dts::Source, String> {
        let mut config = dts::canonical_avoiding(&dts_path, &work.join("config.dts"), taken)?;
        set_guest_args(&mut config.root, guest_args)
            .map_err(|e| format!("configs/{name}.dts: {e}"))?;
        set_console(&mut config.root, board);
        Ok(config)
    };
    let config = config_source(&[])?;
    let plan = plan(&config).map_err(|e| {
        e.iter()
            .map(|e| format!("configs/{name}.dts: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let domain_names: Vec<String> = plan.domains.iter().map(|d| d.name.clone()).collect();
    let unknown = expect.unknown_domains(&domain_names);
    if !unknown.is_empty() {
        return Err(format!(
            "configs/{name}.expect names {} but configs/{name}.dts has the domains {}",
            unknown.join(", "),
            domain_names.join(", ")
        ));
    }

    let img = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let (text_offset, image_size) =
        crate::image::check_header(&img).map_err(|e| format!("{}: {e}", image.display()))?;
    if boot == Boot::UBoot && !board.uboot {
        return Err(format!(
            "{} does not boot through U-Boot here (Debian's u-boot-qemu is for {})",
            board.name,
            boards::HOME.name
        ));
    }
    if boot == Boot::UBoot && text_offset + image_size > crate::uboot::SLOT {
        return Err(format!(
            "{}: the image needs {:#x} bytes from its 2 MiB-aligned start, more than the 2 MiB \
             slot a boot script gives it",
            image.display(),
            text_offset + image_size
        ));
    }
    let image_at = boards::qemu_kernel_at(board.ram_base, text_offset, image_size);
    if boot == Boot::Direct && image_at + image_size > board.dtb_at() {
        return Err(format!(
            "{}: the image ends past {:#x}, so QEMU would move its DTB into the modules' place",
            image.display(),
            board.dtb_at()
        ));
    }

    let module_base = match boot {
        Boot::Direct => board.module_base(),
        Boot::UBoot => crate::uboot::MODULES_AT,
    };
    let Placement {
        paths,
        copy,
        loaded,
        placed,
        memory,
    } = placement(&plan, module_base, board)?;

    let smp = board
        .smp(smp.or(plan.cpus))
        .map_err(|e| format!("configs/{name}: {e}"))?;
    let mut machine = Machine::on(board, image, smp);
    machine.memory = format!("{memory}M");
    machine.icount_shift = plan.icount_shift;
    let host = host_tree(&machine, work)?;
    let overlaps = reserved_overlaps(&host, &placed);
    if !overlaps.is_empty() {
        return Err(format!(
            "configs/{name} on {}: {} (the board's `reserved` in xtask/src/boards.rs is not the tree's)",
            board.name,
            overlaps.join("; ")
        ));
    }

    let mut config = config_source(&dts::phandles(&host.root))?;
    apply(&mut config, &placed)?;
    // For U-Boot the script adds the module nodes, so the DTB on the disk
    // has none.
    let script_modules = match boot {
        Boot::Direct => Vec::new(),
        Boot::UBoot => {
            let paths: Vec<String> = placed
                .iter()
                .map(|(m, addr, _)| {
                    let (parent, node) = m.path.rsplit_once('/').unwrap_or(("", &m.path));
                    let base = node.split('@').next().unwrap_or(node);
                    format!("{parent}/{base}@{addr:x}")
                })
                .collect();
            crate::uboot::take_modules(&mut config, &paths)
        }
    };

    let out_dir = run_dir(board, name, smp);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let merged = work.join("host.dts");
    std::fs::write(&merged, merge(&host, &config)).map_err(|e| e.to_string())?;
    let dtb = work.join("host.dtb");
    dts::dtc(&["-I", "dts", "-O", "dtb"], &merged, &dtb)?;
    // Move into place whole, so a concurrent run never reads half a file.
    let (final_dts, final_dtb) = (out_dir.join("host.dts"), out_dir.join("host.dtb"));
    for (from, to) in [(&merged, &final_dts), (&dtb, &final_dtb)] {
        std::fs::rename(from, to).map_err(|e| format!("{}: {e}", to.display()))?;
    }

    let mut want = expect.for_peer(peer, &domain_names);
    match boot {
        Boot::Direct => {
            machine.dtb = Some(final_dtb);
            machine.loaders = loaded.iter().map(|&(i, a)| (paths[i].clone(), a)).collect();
        }
        Boot::UBoot => {
            let disk = out_dir.join(format!("uboot-{}", peer.name()));
            let _ = std::fs::remove_dir_all(&disk);
            std::fs::create_dir_all(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
            crate::uboot::place_file(image, &disk, "hypervisor")?;
            crate::uboot::place_file(&final_dtb, &disk, "host.dtb")?;
            let mut modules = Vec::new();
            for ((path, node), (i, file)) in script_modules.iter().zip(paths.iter().enumerate()) {
                let name = format!("m{i}");
                let first = copy[i] == i;
                if first {
                    crate::uboot::place_file(file, &disk, &name)?;
                }
                modules.push(crate::uboot::Module {
                    // A shared module is loaded once, by its first node.
                    file: format!("m{}", copy[i]),
                    addr: placed[i].1,
                    path: path.clone(),
                    props: node
                        .props
                        .iter()
                        .map(|p| (p.name.clone(), p.value.clone()))
                        .collect(),
                });
            }
            let text = crate::uboot::script(name, "host.dtb", &modules);
            std::fs::write(disk.join("boot.cmd"), &text).map_err(|e| e.to_string())?;
            std::fs::write(
                disk.join("boot.scr"),
                crate::uboot::script_image(&text, name),
            )
            .map_err(|e| e.to_string())?;
            machine.uboot = Some((Files::uboot()?, disk));
            // The script ran, and U-Boot started the hypervisor where the
            // script put it.
            want.lines
                .insert(0, (String::new(), "oxen-uboot: booti".into()));
            want.absent.push("Moving Image".into());
        }
    }
    Ok(Prepared {
        name: name.into(),
        peer,
        machine,
        want,
        dts: final_dts,
    })
}

/// Where a config's modules go in RAM.
struct Placement {
    /// Each module's file.
    paths: Vec<PathBuf>,
    /// For each module, the module whose copy it uses (itself unless it
    /// shares another's, `xtask,share`).
    copy: Vec<usize>,
    /// The modules that are loaded (their own copy), with their addresses.
    loaded: Vec<(usize, u64)>,
    /// Every module with its address and size, for [`apply`].
    placed: Vec<(ModuleRef, u64, u64)>,
    /// The machine's RAM, in MiB ([`memory_mib`]).
    memory: u64,
}

/// Where a run's host tree is kept for people to read:
/// `target/guests/run/NAME-smpN` on the home board, with the board's name
/// after NAME on another.
fn run_dir(board: &Board, name: &str, smp: u32) -> PathBuf {
    let board = if board == boards::HOME {
        String::new()
    } else {
        format!("-{}", board.name)
    };
    debian::cache_dir()
        .join("run")
        .join(format!("{name}{board}-smp{smp}"))
}

/// Finds each module's file (built or fetched) and places the loaded ones
/// from `base`, 2 MiB-aligned, clear of the board's reserved memory, within
/// the RAM the machine gets (at most what the board can have).
fn placement(plan: &Plan, base: u64, board: &Board) -> Result<Placement, String> {
    let mut files = Files {
        guests: None,
        built: Vec::new(),
    };
    let mut paths = Vec::new();
    let mut sizes = Vec::new();
    for m in &plan.modules {
        let path = files.resolve(&m.file, &m.path)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        paths.push(path);
        sizes.push(size);
    }
    let copy = copies(&plan.modules);
    let loaded: Vec<usize> = (0..sizes.len()).filter(|&i| copy[i] == i).collect();
    let loaded_sizes: Vec<u64> = loaded.iter().map(|&i| sizes[i]).collect();
    let unbounded = place(&loaded_sizes, base, MODULE_ALIGN, u64::MAX, board.reserved)?;
    let modules_end = unbounded
        .iter()
        .zip(&loaded_sizes)
        .map(|(a, s)| a + s)
        .max()
        .unwrap_or(base);
    let memory = memory_mib(plan, modules_end, board.ram_base);
    if let Some(max) = board.max_memory_mib.filter(|&max| memory > max) {
        return Err(format!(
            "the config needs {memory} MiB of RAM, more than {}'s {max} MiB",
            board.name
        ));
    }
    let at = place(
        &loaded_sizes,
        base,
        MODULE_ALIGN,
        board.ram_base + (memory << 20),
        board.reserved,
    )?;
    let addr_of = |i: usize| at[loaded.iter().position(|&l| l == copy[i]).unwrap_or(0)];
    let placed = plan
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), addr_of(i), sizes[i]))
        .collect();
    Ok(Placement {
        paths,
        copy,
        loaded: loaded.iter().copied().zip(at.iter().copied()).collect(),
        placed,
        memory,
    })
}

/// Config `name` as the fragment a direct boot merges onto QEMU's tree,
/// made without QEMU: its modules placed from their real files (built or
/// fetched as for a boot) with `reg`s written, and the machine's memory and
/// CPUs stated as `xtask,qemu-memory` and `xtask,qemu-cpus`. This is what
/// `oxen-check` reads for the xtask.
pub fn placed_fragment(name: &str) -> Result<String, String> {
    let dts_path = dir().join(format!("{name}.dts"));
    let work = debian::cache_dir()
        .join("run")
        .join(format!("{name}.check.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let config = dts::canonical(&dts_path, &work.join("config.dts"));
    let _ = std::fs::remove_dir_all(&work);
    let mut config = config?;
    let plan = plan(&config).map_err(|e| {
        e.iter()
            .map(|e| format!("configs/{name}.dts: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let home = boards::HOME;
    let Placement { placed, memory, .. } = placement(&plan, home.module_base(), home)?;
    apply(&mut config, &placed)?;
    let cpus = plan.cpus.unwrap_or(DEFAULT_CPUS);
    config.root.set(MEMORY_PROP, Some(format!("\"{memory}M\"")));
    config.root.set(CPUS_PROP, Some(format!("<{cpus}>")));
    Ok(config.write())
}

/// The machine's host tree, as canonical source: QEMU's own for these
/// machine options or the board's DTB from Debian, with the board's edits.
fn host_tree(m: &Machine, work: &Path) -> Result<Source, String> {
    let dtb = match m.board.tree {
        boards::Tree::Qemu => {
            let dtb = work.join("qemu.dtb");
            let mut cmd = std::process::Command::new("qemu-system-aarch64");
            cmd.args(
                m.board
                    .qemu_args(&format!(",dumpdtb={}", dtb.display()), m.smp, &m.memory),
            )
            .args(["-display", "none"]);
            let out = cmd
                .output()
                .map_err(|e| format!("cannot run qemu-system-aarch64: {e}"))?;
            if !dtb.is_file() {
                return Err(format!(
                    "`{}` wrote no DTB:\n{}",
                    crate::show(&cmd),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            dtb
        }
        boards::Tree::Debian(file) => {
            let dtb = debian::board_dtbs()?.join(file);
            if !dtb.is_file() {
                return Err(format!(
                    "{}: no such DTB in Debian's kernel package (the `dtbs` role)",
                    dtb.display()
                ));
            }
            dtb
        }
    };
    let text = work.join("host-tree.dts");
    dts::dtc(&["-I", "dtb", "-O", "dts"], &dtb, &text)?;
    let s = std::fs::read_to_string(&text).map_err(|e| e.to_string())?;
    let mut tree = Source::parse(&s).map_err(|e| format!("{}: {e}", dtb.display()))?;
    m.board.edit(&mut tree)?;
    Ok(tree)
}

/// `board`'s machine booting `image` with no domains: on QEMU's own tree
/// where the board's needs no edits, else on the board's host tree (kept
/// in `target/guests/run/none-BOARD-smpN/host.dtb`).
pub fn bare(board: &'static Board, image: &Path, smp: u32) -> Result<Machine, String> {
    let mut m = Machine::on(board, image, smp);
    if board.tree == boards::Tree::Qemu && board.edits.is_empty() {
        return Ok(m);
    }
    let dir = run_dir(board, "none", smp);
    let work = dir.join(format!("work.{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let tree = host_tree(&m, &work).and_then(|t| {
        let src = work.join("host.dts");
        std::fs::write(&src, t.write()).map_err(|e| e.to_string())?;
        let dtb = dir.join("host.dtb");
        dts::dtc(&["-I", "dts", "-O", "dtb"], &src, &dtb)?;
        Ok(dtb)
    });
    let _ = std::fs::remove_dir_all(&work);
    m.dtb = Some(tree?);
    Ok(m)
}

/// Boots a prepared config headless and collects its console: until QEMU
/// exits, or, for a run that does not end by power-off, until every
/// expected line appeared and every test guest printed its closing line;
/// or until the config's limit.
pub fn run(p: &Prepared) -> Result<Outcome, String> {
    match p.want.end {
        End::PowerOff => {
            qemu::run_captured_until(&p.machine, p.want.limit, &|_| false, &p.want.sends)
        }
        End::Running => qemu::run_captured_until(
            &p.machine,
            p.want.limit,
            &|log: &str| p.want.complete(log),
            &p.want.sends,
        ),
    }
}

/// The problems with a captured run of a prepared config; empty when it
/// went as expected.
pub fn check(p: &Prepared, out: &Outcome) -> Vec<String> {
    expect::check(out, &p.want)
}

/// Boots on `peer`'s image: Oxen's is built from `spec`, Xen's fetched.
pub fn image_for(peer: Peer, spec: &crate::BuildSpec) -> Result<PathBuf, String> {
    match peer {
        Peer::Oxen => crate::build(spec),
        Peer::Xen => Ok(debian::fetch(false)?.xen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::parse(text).unwrap()
    }

    const CONFIG: &str = "/dts-v1/;

/ {
\txtask,qemu-cpus = <0x04>;

\tchosen {
\t\txen,xen-bootargs = \"console=dtuart dtuart=/pl011@9000000 bootscrub=0\";

\t\tdomU1 {
\t\t\tcompatible = \"xen,domain\";
\t\t\t#address-cells = <0x02>;
\t\t\t#size-cells = <0x01>;
\t\t\tmemory = <0x00 0x40000>;
\t\t\tcpus = <0x01>;
\t\t\tvpl011;

\t\t\tkernel {
\t\t\t\tcompatible = \"multiboot,kernel\\0multiboot,module\";
\t\t\t\txtask,file = \"linux\";
\t\t\t\tbootargs = \"console=ttyAMA0 oxen.name=domU1\";
\t\t\t};

\t\t\tramdisk {
\t\t\t\tcompatible = \"multiboot,ramdisk\\0multiboot,module\";
\t\t\t\txtask,file = \"initramfs\";
\t\t\t};
\t\t};

\t\tdomU2 {
\t\t\tcompatible = \"xen,domain\";
\t\t\t#address-cells = <0x01>;
\t\t\t#size-cells = <0x01>;
\t\t\tmemory = <0x00 0x40000>;

\t\t\tkernel {
\t\t\t\tcompatible = \"multiboot,kernel\\0multiboot,module\";
\t\t\t\txtask,file = \"linux\";
\t\t\t};
\t\t};

\t\tnot-a-domain {
\t\t};
\t};
};
";

    fn guest_bootargs(s: &Source) -> Vec<String> {
        let chosen = s.root.child("chosen").unwrap();
        chosen
            .children
            .iter()
            .filter_map(|d| d.child("kernel"))
            .map(|k| k.strings("bootargs").first().cloned().unwrap_or_default())
            .collect()
    }

    #[test]
    fn guest_args_replace_a_key_where_it_is_and_append_one_nobody_has() {
        let text = CONFIG
            .replace(
                "xtask,file = \"linux\";\n\t\t\t\tbootargs",
                "xtask,file = \"guest:hostile\";\n\t\t\t\tbootargs",
            )
            .replace("oxen.name=domU1", "hostile.seed=1 hostile.mode=attack")
            .replace(
                "xtask,file = \"linux\";\n\t\t\t};",
                "xtask,file = \"guest:abi\";\n\t\t\t\tbootargs = \"test.xen=on\";\n\t\t\t};",
            );
        let mut s = src(&text);
        set_guest_args(&mut s.root, &["hostile.seed=0x2a hostile.count=5".into()]).unwrap();
        assert_eq!(
            guest_bootargs(&s),
            [
                "console=ttyAMA0 hostile.seed=0x2a hostile.mode=attack hostile.count=5",
                "test.xen=on hostile.count=5"
            ]
        );
    }

    #[test]
    fn guest_args_that_are_not_key_value_words_or_have_no_guest_are_refused() {
        let text = CONFIG.replace(
            "xtask,file = \"linux\";\n\t\t\t\tbootargs",
            "xtask,file = \"guest:abi\";\n\t\t\t\tbootargs",
        );
        let mut s = src(&text);
        let e = set_guest_args(&mut s.root, &["seed".into()]).unwrap_err();
        assert!(e.contains("\"seed\" is not a key=value word"), "{e}");
        let e = set_guest_args(&mut s.root, &["a=\"b".into()]).unwrap_err();
        assert!(e.contains("is not a key=value word"), "{e}");
        let mut linux = src(CONFIG);
        let e = set_guest_args(&mut linux.root, &["a=b".into()]).unwrap_err();
        assert!(e.contains("loads no test guest"), "{e}");
        // No words: nothing to do, even without a guest.
        assert!(set_guest_args(&mut linux.root, &[]).is_ok());
    }

    #[test]
    fn every_config_states_its_outcome_in_an_expect_that_parses() {
        let names = names().unwrap();
        assert!(names.contains(&"linux-xenstore".to_string()));
        for n in &names {
            if let Err(e) = read_expect(n) {
                panic!("{n}: {e}");
            }
        }
    }

    #[test]
    fn the_xenstore_configs_boot_only_oxen_images_with_xenstore() {
        let s = |v: &[&str]| v.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        for n in ["linux-xenstore", "linux-xenstore-bare", "linux61-xenstore"] {
            let e = read_expect(n).unwrap();
            assert!(e.skip_reason(Peer::Xen, &[]).is_some(), "{n}");
            assert!(
                e.skip_reason(Peer::Oxen, &s(&["evtchn", "gnttab"]))
                    .is_some(),
                "{n}"
            );
            let all = s(&["evtchn", "extended-regions", "gnttab", "xenstore"]);
            assert_eq!(e.skip_reason(Peer::Oxen, &all), None, "{n}");
        }
        let dts = std::fs::read_to_string(dir().join("linux61-xenstore.dts")).unwrap();
        assert!(dts.contains("xtask,file = \"linux61\";"));
    }

    #[test]
    fn a_config_plan_lists_domains_in_order_and_modules_with_their_cells() {
        let p = plan(&src(CONFIG)).unwrap();
        let names: Vec<&str> = p.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["domU1", "domU2"]);
        assert_eq!(p.domains[0].memory_kib, Some(256 * 1024));
        assert_eq!(p.cpus, Some(4));
        assert_eq!(p.memory_mib, None);
        let files: Vec<(&str, &str, u32, u32)> = p
            .modules
            .iter()
            .map(|m| {
                (
                    m.path.as_str(),
                    m.file.as_str(),
                    m.address_cells,
                    m.size_cells,
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                ("/chosen/domU1/kernel", "linux", 2, 1),
                ("/chosen/domU1/ramdisk", "initramfs", 2, 1),
                ("/chosen/domU2/kernel", "linux", 1, 1),
            ]
        );
    }

    #[test]
    fn modules_marked_shared_with_one_file_use_the_first_ones_copy() {
        let text = CONFIG
            .replace(
                "xtask,file = \"linux\";",
                "xtask,file = \"linux\";\n\t\t\t\txtask,share;",
            )
            .replace(
                "\t\t\t\txtask,file = \"linux\";\n\t\t\t};\n\t\t};\n\n\t\tnot-a-domain",
                "\t\t\t\txtask,file = \"linux\";\n\t\t\t\txtask,share;\n\t\t\t};\n\t\t};\n\n\t\tnot-a-domain",
            );
        let p = plan(&src(&text)).unwrap();

        let shared: Vec<bool> = p.modules.iter().map(|m| m.share).collect();
        assert_eq!(shared, [true, false, true], "{text}");
        assert_eq!(copies(&p.modules), [0, 1, 0]);
    }

    #[test]
    fn share_without_a_file_is_refused() {
        let text = CONFIG.replace("xtask,file = \"initramfs\";", "xtask,share;");

        let errs = plan(&src(&text)).unwrap_err();

        assert_eq!(
            errs,
            [
                "/chosen/domU1/ramdisk: xtask,share without xtask,file (expected both: the file to load once for every sharing node)"
            ]
        );
    }

    #[test]
    fn modules_with_one_file_get_a_copy_each_unless_shared() {
        let p = plan(&src(CONFIG)).unwrap();

        assert_eq!(copies(&p.modules), [0, 1, 2]);
    }

    #[test]
    fn a_module_under_a_node_without_cells_is_refused_with_the_path() {
        let text = CONFIG.replace(
            "\t\t\t#size-cells = <0x01>;\n\t\t\tmemory = <0x00 0x40000>;\n\n",
            "\t\t\tmemory = <0x00 0x40000>;\n\n",
        );
        let errs = plan(&src(&text)).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("/chosen/domU2: no #size-cells"),
            "{errs:?}"
        );
        assert!(errs[0].contains("/chosen/domU2/kernel"));
    }

    #[test]
    fn icount_shift_is_read_and_bounded() {
        let p = plan(&src(CONFIG)).unwrap();
        assert_eq!(p.icount_shift, None);
        let text = CONFIG.replace(
            "xtask,qemu-cpus = <0x04>;",
            "xtask,qemu-cpus = <0x04>;\n\txtask,qemu-icount = <0x03>;",
        );
        assert_eq!(plan(&src(&text)).unwrap().icount_shift, Some(3));
        let text = CONFIG.replace(
            "xtask,qemu-cpus = <0x04>;",
            "xtask,qemu-cpus = <0x04>;\n\txtask,qemu-icount = <0x0b>;",
        );
        let errs = plan(&src(&text)).unwrap_err();
        assert_eq!(
            errs,
            ["/: xtask,qemu-icount = <11> (expected a shift of 0 to 10)"]
        );
    }

    #[test]
    fn unknown_xtask_properties_and_bad_values_are_all_reported() {
        let text = CONFIG
            .replace("xtask,qemu-cpus = <0x04>;", "xtask,qemu-cpus = <0x00>;\n\txtask,memory = \"2G\";\n\txtask,qemu-memory = \"lots\";")
            .replace("xtask,file = \"initramfs\";", "xtask,file = <0x01>;\n\t\t\t\txtask,addr = <0x01>;");
        let errs = plan(&src(&text)).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("xtask,qemu-memory = \"lots\" is not a size"))
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("xtask,qemu-cpus = <0> (expected at least 1)"))
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/: xtask,memory is not an xtask property"))
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/chosen/domU1/ramdisk: xtask,addr"))
        );
        assert!(errs.iter().any(|e| {
            e.starts_with("/chosen/domU1/ramdisk: xtask,file = <0x01> is not one string")
        }));
    }

    const MODULE_BASE: u64 = 0x5000_0000;
    const RAM_BASE: u64 = 0x4000_0000;

    #[test]
    fn modules_are_placed_in_order_aligned_and_within_ram() {
        assert_eq!(boards::HOME.module_base(), MODULE_BASE);
        let mb = 1 << 20;
        let a = place(
            &[30 * mb + 5, 1, 3 * mb],
            MODULE_BASE,
            MODULE_ALIGN,
            u64::MAX,
            &[],
        )
        .unwrap();
        assert_eq!(
            a,
            [0x5000_0000, 0x5000_0000 + 32 * mb, 0x5000_0000 + 34 * mb]
        );
        let err = place(
            &[30 * mb],
            MODULE_BASE,
            MODULE_ALIGN,
            MODULE_BASE + 16 * mb,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("past the end of RAM"), "{err}");
        assert!(err.contains(MEMORY_PROP));
    }

    #[test]
    fn modules_skip_the_boards_reserved_memory() {
        let mb = 1 << 20;
        let zcu102 = boards::find("xlnx-zcu102").unwrap();
        assert_eq!(zcu102.module_base(), 0x1000_0000);
        // A module that would cross 0x3ed00000 goes after 0x3ef40000.
        let a = place(
            &[0x2ec0_0000, 4 * mb, mb],
            zcu102.module_base(),
            MODULE_ALIGN,
            0x8000_0000,
            zcu102.reserved,
        )
        .unwrap();
        assert_eq!(a, [0x1000_0000, 0x3f00_0000, 0x3f40_0000]);
    }

    #[test]
    fn memory_grows_in_whole_gib_with_the_domains_unless_the_config_says() {
        let mut p = plan(&src(CONFIG)).unwrap();
        // 2 x 256 MiB, 256 MiB below the modules and 300 MiB of them, and
        // 512 MiB spare fit in 2 GiB.
        assert_eq!(memory_mib(&p, MODULE_BASE + (300 << 20), RAM_BASE), 2048);
        // The same from RAM at 0.
        assert_eq!(memory_mib(&p, 0x1000_0000 + (300 << 20), 0), 2048);
        // 2 GiB + 256 MiB, 256 MiB below the modules, 512 MiB spare.
        p.domains[0].memory_kib = Some(2 << 20);
        assert_eq!(memory_mib(&p, MODULE_BASE, RAM_BASE), 3072);
        p.memory_mib = Some(1536);
        assert_eq!(memory_mib(&p, MODULE_BASE, RAM_BASE), 1536);
    }

    #[test]
    fn the_console_of_xen_bootargs_follows_the_board() {
        let mut s = src(CONFIG);
        set_console(&mut s.root, boards::find("xlnx-versal-virt").unwrap());
        let chosen = s.root.child("chosen").unwrap();
        assert_eq!(
            chosen.strings("xen,xen-bootargs"),
            ["console=dtuart dtuart=/uart@ff000000 bootscrub=0"]
        );
        let mut s = src(CONFIG);
        set_console(&mut s.root, boards::HOME);
        assert_eq!(s, src(CONFIG));
    }

    #[test]
    fn a_module_in_the_host_trees_reserved_memory_is_reported() {
        let host = src(
            "/dts-v1/;\n\n/ {\n\treserved-memory {\n\t\tmemory@3ed00000 {\n\t\t\treg = <0x00 0x3ed00000 0x00 0x40000>;\n\t\t};\n\t};\n};\n",
        );
        let p = plan(&src(CONFIG)).unwrap();
        let clear = [(p.modules[0].clone(), 0x1000_0000, 0x100_0000)];
        assert!(reserved_overlaps(&host, &clear).is_empty());
        let hit = [(p.modules[0].clone(), 0x3ec0_0000, 0x20_0000)];
        assert_eq!(
            reserved_overlaps(&host, &hit),
            [
                "/chosen/domU1/kernel at 0x3ec00000-0x3ee00000 overlaps /reserved-memory/memory@3ed00000 at 0x3ed00000-0x3ed40000"
            ]
        );
    }

    #[test]
    fn sizes_read_with_units() {
        assert_eq!(parse_size_mib("3G"), Some(3072));
        assert_eq!(parse_size_mib("2560M"), Some(2560));
        assert_eq!(parse_size_mib("2560"), None);
        assert_eq!(parse_size_mib("0G"), None);
    }

    #[test]
    fn applying_placements_writes_exact_regs_in_each_domains_cells_and_strips_xtask() {
        let mut s = src(CONFIG);
        let p = plan(&s).unwrap();
        let placed = vec![
            (p.modules[0].clone(), 0x5000_0000, 30_892_544),
            (p.modules[1].clone(), 0x5200_0000, 1_977_000),
            (p.modules[2].clone(), 0x5240_0000, 30_892_544),
        ];
        apply(&mut s, &placed).unwrap();
        let d1 = s.root.child("chosen").unwrap().child("domU1").unwrap();
        let k = d1.child("kernel@50000000").unwrap();
        assert_eq!(
            k.prop("reg").unwrap().cells(),
            Some(vec![0, 0x5000_0000, 30_892_544])
        );
        assert_eq!(k.prop("xtask,file"), None);
        assert_eq!(
            k.prop("bootargs").unwrap().strings(),
            Some(vec!["console=ttyAMA0 oxen.name=domU1".into()])
        );
        let r = d1.child("ramdisk@52000000").unwrap();
        assert_eq!(
            r.prop("reg").unwrap().cells(),
            Some(vec![0, 0x5200_0000, 1_977_000])
        );
        let d2 = s.root.child("chosen").unwrap().child("domU2").unwrap();
        let k2 = d2.child("kernel@52400000").unwrap();
        assert_eq!(
            k2.prop("reg").unwrap().cells(),
            Some(vec![0x5240_0000, 30_892_544])
        );
        assert!(!s.write().contains("xtask,"));
    }

    #[test]
    fn a_module_too_big_for_its_size_cells_is_refused() {
        let mut s = src(CONFIG);
        let p = plan(&s).unwrap();
        let err = apply(&mut s, &[(p.modules[0].clone(), 0x5000_0000, 5 << 30)]).unwrap_err();
        assert!(
            err.starts_with("/chosen/domU1/kernel: linux is 5368709120 bytes"),
            "{err}"
        );
    }

    #[test]
    fn the_merged_source_has_the_host_tree_then_the_config() {
        let host = src(
            "/dts-v1/;\n\n/ {\n\tmodel = \"linux,dummy-virt\";\n\n\tchosen {\n\t\tstdout-path = \"/pl011@9000000\";\n\t};\n};\n",
        );
        let mut config = src(CONFIG);
        strip_xtask(&mut config.root);
        let merged = merge(&host, &config);
        assert_eq!(merged.matches("/dts-v1/;").count(), 1);
        let host_at = merged.find("stdout-path").unwrap();
        let config_at = merged.find("xen,xen-bootargs").unwrap();
        assert!(host_at < config_at);
        assert_eq!(merged.matches("\n/ {").count(), 2);
    }

    #[test]
    fn a_configs_phandles_keep_clear_of_a_vendor_trees() {
        // A vendor tree decompiled by dtc holds phandles from 1, as dtc
        // gives a config's labels: merged as they are, dtc rejects the
        // duplicates; chosen clear of the host's, the tree compiles and
        // the references follow.
        let dir = std::env::temp_dir().join(format!("oxen-phandles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = src(
            "/dts-v1/;\n\n/ {\n\tinterrupt-parent = <0x01>;\n\n\tgic {\n\t\tphandle = <0x01>;\n\t};\n\n\tclk {\n\t\tphandle = <0x02>;\n\t};\n};\n",
        );
        let input = dir.join("config.dts");
        std::fs::write(
            &input,
            "/dts-v1/;\n/ { chosen { d1 { ping: evtchn { xen,evtchn = <10 &pong>; }; };\n\td2 { pong: evtchn { xen,evtchn = <12 &ping>; }; }; }; };\n",
        )
        .unwrap();
        let plain = dts::canonical(&input, &dir.join("plain.dts")).unwrap();
        let clear =
            dts::canonical_avoiding(&input, &dir.join("clear.dts"), &dts::phandles(&host.root));
        let merged = dir.join("merged.dts");
        std::fs::write(&merged, merge(&host, &plain)).unwrap();
        let clash = dts::dtc(&["-I", "dts", "-O", "dtb"], &merged, &dir.join("clash.dtb"));
        let clear = clear.unwrap();
        std::fs::write(&merged, merge(&host, &clear)).unwrap();
        let compiled = dts::dtc(&["-I", "dts", "-O", "dtb"], &merged, &dir.join("ok.dtb"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(clash.unwrap_err().contains("duplicated phandle"));
        compiled.unwrap();
        assert_eq!(dts::phandles(&plain.root), [1, 2]);
        assert_eq!(dts::phandles(&clear.root), [3, 4]);
        assert!(clear.root.child(dts::RESERVED_NODE).is_none());
        let chosen = clear.root.child("chosen").unwrap();
        let ping = chosen.child("d1").unwrap().child("evtchn").unwrap();
        let pong = chosen.child("d2").unwrap().child("evtchn").unwrap();
        let phandle = |n: &Node| n.u32_prop("phandle").unwrap().unwrap();
        assert_eq!(
            ping.prop("xen,evtchn").unwrap().cells().unwrap(),
            [10, phandle(pong)]
        );
        assert_eq!(
            pong.prop("xen,evtchn").unwrap().cells().unwrap(),
            [12, phandle(ping)]
        );
    }

    #[test]
    fn dtc_merges_the_config_into_qemus_chosen() {
        // The real tool, on the real merge: one /chosen with both halves.
        let dir = std::env::temp_dir().join(format!("oxen-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = src(
            "/dts-v1/;\n\n/ {\n\t#address-cells = <0x02>;\n\t#size-cells = <0x02>;\n\n\tchosen {\n\t\tstdout-path = \"/pl011@9000000\";\n\t};\n};\n",
        );
        let mut config = src(CONFIG);
        let p = plan(&config).unwrap();
        let placed: Vec<_> = p
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), 0x5000_0000 + ((i as u64) << 25), 100))
            .collect();
        apply(&mut config, &placed).unwrap();
        let input = dir.join("in.dts");
        std::fs::write(&input, merge(&host, &config)).unwrap();
        let result = dts::canonical(&input, &dir.join("out.dts"));
        std::fs::remove_dir_all(&dir).unwrap();
        let out = result.unwrap();
        let chosen = out.root.child("chosen").unwrap();
        assert!(chosen.prop("stdout-path").is_some());
        assert!(chosen.prop("xen,xen-bootargs").is_some());
        assert!(
            chosen
                .child("domU1")
                .unwrap()
                .child("ramdisk@52000000")
                .is_some()
        );
        assert_eq!(
            out.root
                .children
                .iter()
                .filter(|c| c.name == "chosen")
                .count(),
            1
        );
    }

    #[test]
    fn an_unknown_test_guest_is_refused_with_the_node_and_the_guests_there_are() {
        let mut files = Files {
            guests: None,
            built: Vec::new(),
        };
        let err = files
            .resolve("guest:no-such", "/chosen/domU1/kernel")
            .unwrap_err();
        assert!(
            err.starts_with(
                "/chosen/domU1/kernel: xtask,file = \"guest:no-such\": no test guest \"no-such\""
            ),
            "{err}"
        );
        assert!(err.contains("guests: abi"), "{err}");
    }
}
