//! The guests' software from Debian's arm64 archive: Linux (trixie's 6.12
//! and bookworm's 6.1), busybox, the Xen peer, U-Boot and, for boards
//! whose host tree is the vendor's, the DTBs of Debian's generic arm64
//! kernel, downloaded once with the host's `apt-get` into a private apt
//! state under `target/guests/` (the machine's own apt state is never
//! touched) and unpacked there with `dpkg-deb`.
//!
//! `target/guests/packages.lock` records the package versions chosen; while
//! it and the unpacked trees exist, nothing is downloaded and apt is not
//! even run. `cargo xtask guests --refresh` chooses again.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run_cmd, show};

/// The archives the packages come from: Debian 13 "trixie" for everything
/// but the second kernel, Debian 12 "bookworm" for that one (its Linux 6.1).
/// Both are in one private apt state; where a name is in both, the newest
/// version wins, which is trixie's (see [`Role::pattern`]).
const SOURCES: [&str; 2] = [
    "deb http://deb.debian.org/debian trixie main",
    "deb http://deb.debian.org/debian bookworm main",
];

/// What the guests need, each as a file inside an unpacked package.
#[derive(Debug, Clone)]
pub struct Guests {
    /// Linux's arm64 `Image` (Debian names it `vmlinuz-*`; it is not
    /// compressed): trixie's 6.12.
    pub linux: PathBuf,
    /// Bookworm's Linux 6.1 `Image`, for configs naming `"linux61"`.
    pub linux61: PathBuf,
    /// A static arm64 busybox.
    pub busybox: PathBuf,
    /// Xen 4.20's arm64 `Image`.
    pub xen: PathBuf,
    /// U-Boot for QEMU's arm64 `virt` (`u-boot.bin`, started with `-bios`),
    /// for the boot flow real boards use (`cargo xtask run --uboot`).
    pub uboot: PathBuf,
    /// The packages they came from.
    pub packages: Vec<Package>,
}

/// A chosen package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub role: Role,
    pub name: String,
    pub version: String,
}

/// Why a package is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Linux,
    /// Debian 12's kernel, Linux 6.1.
    Linux61,
    Busybox,
    Xen,
    /// Debian's `u-boot-qemu` (an `all` package holding each QEMU board's
    /// U-Boot).
    UBoot,
    /// The generic arm64 kernel of trixie's 6.12, for the vendors' device
    /// trees it ships (`usr/lib/linux-image-*/VENDOR/*.dtb`; the cloud
    /// kernel has none). Only the DTBs are unpacked, and only when a board
    /// needs one ([`board_dtbs`]): the package is 93 MB.
    Dtbs,
}

impl Role {
    const ALL: [Role; 6] = [
        Role::Linux,
        Role::Linux61,
        Role::Busybox,
        Role::Xen,
        Role::UBoot,
        Role::Dtbs,
    ];

    /// The roles every guest run needs ([`fetch`]); the others are fetched
    /// when asked for.
    const GUESTS: [Role; 5] = [
        Role::Linux,
        Role::Linux61,
        Role::Busybox,
        Role::Xen,
        Role::UBoot,
    ];

    fn key(self) -> &'static str {
        match self {
            Role::Linux => "linux",
            Role::Linux61 => "linux61",
            Role::Busybox => "busybox",
            Role::Xen => "xen",
            Role::UBoot => "uboot",
            Role::Dtbs => "dtbs",
        }
    }

    fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == k)
    }

    /// The apt search pattern (a package name regex) for this role.
    fn pattern(self) -> &'static str {
        match self {
            // Kernel package names carry the ABI version; the newest wins.
            // Bookworm's 6.1 matches too but is older than trixie's 6.12.
            Role::Linux => "^linux-image-[0-9].*-cloud-arm64-unsigned$",
            // Only bookworm has 6.1 (`linux-image-6.1.0-NN-cloud-…`).
            Role::Linux61 => "^linux-image-6\\.1\\.[0-9].*-cloud-arm64-unsigned$",
            Role::Busybox => "^busybox-static$",
            Role::Xen => "^xen-hypervisor-4.20-arm64$",
            Role::UBoot => "^u-boot-qemu$",
            // Not the cloud kernel (`…+deb13-cloud-arm64-unsigned`).
            Role::Dtbs => "^linux-image-6\\.12\\..*\\+deb13-arm64-unsigned$",
        }
    }

    /// The members of the package that are unpacked, as tar patterns
    /// (`*` matching `/` too); `None`: all of it.
    fn members(self) -> Option<&'static [&'static str]> {
        match self {
            Role::Dtbs => Some(&["./usr/lib/linux-image-*.dtb"]),
            _ => None,
        }
    }

    /// The wanted file in the unpacked package.
    fn file_in(self, tree: &Path) -> Result<PathBuf, String> {
        let found = match self {
            Role::Linux | Role::Linux61 => first_match(&tree.join("boot"), "vmlinuz-"),
            // trixie has it in usr/bin, bookworm in bin.
            Role::Busybox => ["usr/bin/busybox", "bin/busybox"]
                .iter()
                .map(|p| tree.join(p))
                .find(|p| p.is_file()),
            Role::Xen => Some(tree.join("boot/xen-4.20-arm64")).filter(|p| p.is_file()),
            Role::UBoot => {
                Some(tree.join("usr/lib/u-boot/qemu_arm64/u-boot.bin")).filter(|p| p.is_file())
            }
            Role::Dtbs => first_match(&tree.join("usr/lib"), "linux-image-").filter(|p| p.is_dir()),
        };
        found.ok_or_else(|| {
            format!(
                "the {} package unpacked in {} does not hold the expected file",
                self.key(),
                tree.display()
            )
        })
    }
}

fn first_match(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".efi"))
        })
        .collect();
    v.sort();
    v.into_iter().next()
}

/// `target/guests`, where everything downloaded or built for guests lives.
pub fn cache_dir() -> PathBuf {
    root().join("target").join("guests")
}

fn lock_path() -> PathBuf {
    cache_dir().join("packages.lock")
}

/// A file-name-safe form of a package version (`1:1.37.0-6` has a colon).
fn safe(version: &str) -> String {
    version.replace(':', "%3a")
}

fn unpacked_dir(p: &Package) -> PathBuf {
    // A part of a package gets a directory of its own.
    let part = if p.role.members().is_some() {
        format!(".{}", p.role.key())
    } else {
        String::new()
    };
    cache_dir()
        .join("pkgs")
        .join(format!("{}_{}{part}", p.name, safe(&p.version)))
}

fn deb_path(p: &Package) -> PathBuf {
    cache_dir()
        .join("debs")
        .join(format!("{}_{}_arm64.deb", p.name, safe(&p.version)))
}

/// Returns the guests' files, downloading and unpacking only what is not
/// cached; `refresh` asks apt for the newest versions again. A lock that
/// lacks a role (one written before that role existed) keeps the versions
/// it names: apt chooses only the missing ones.
pub fn fetch(refresh: bool) -> Result<Guests, String> {
    let (packages, files) = fetch_roles(&Role::GUESTS, refresh)?;
    let file = |r: Role| {
        packages
            .iter()
            .zip(&files)
            .find(|(p, _)| p.role == r)
            .map(|(_, f)| f.clone())
            .ok_or(format!(
                "{} lock names no {} package",
                lock_path().display(),
                r.key()
            ))
    };
    Ok(Guests {
        linux: file(Role::Linux)?,
        linux61: file(Role::Linux61)?,
        busybox: file(Role::Busybox)?,
        xen: file(Role::Xen)?,
        uboot: file(Role::UBoot)?,
        packages,
    })
}

/// The directory of the device trees Debian's generic arm64 kernel ships
/// (`usr/lib/linux-image-VERSION/`, holding `VENDOR/BOARD.dtb`), fetched
/// the first time a board needs one and pinned in the lock like the rest.
pub fn board_dtbs() -> Result<PathBuf, String> {
    let (_, files) = fetch_roles(&[Role::Dtbs], false)?;
    files
        .into_iter()
        .next()
        .ok_or("no dtbs package".to_string())
}

/// The packages and files of `wanted` (in lock order), each chosen, downloaded
/// and unpacked unless the lock and the cache have it. The lock keeps every
/// other role it names; `refresh` chooses `wanted` again.
fn fetch_roles(wanted: &[Role], refresh: bool) -> Result<(Vec<Package>, Vec<PathBuf>), String> {
    let mut packages = std::fs::read_to_string(lock_path())
        .ok()
        .and_then(|t| parse_lock(&t).ok())
        .unwrap_or_default();
    if refresh {
        packages.retain(|p| !wanted.contains(&p.role));
    }
    let missing: Vec<Role> = missing_roles(&packages)
        .into_iter()
        .filter(|r| wanted.contains(r))
        .collect();
    if !missing.is_empty() {
        let apt = Apt::new()?;
        apt.update()?;
        let chosen = missing
            .into_iter()
            .map(|r| apt.choose(r))
            .collect::<Result<Vec<_>, _>>()?;
        for p in &chosen {
            if !deb_path(p).is_file() && !unpacked_dir(p).is_dir() {
                apt.download(p)?;
            }
        }
        packages.extend(chosen);
        packages.sort_by_key(|p| Role::ALL.iter().position(|r| *r == p.role));
        std::fs::write(lock_path(), write_lock(&packages))
            .map_err(|e| format!("{}: {e}", lock_path().display()))?;
    }
    packages.retain(|p| wanted.contains(&p.role));
    let mut files = Vec::new();
    for p in &packages {
        let tree = unpacked_dir(p);
        if !tree.is_dir() {
            if !deb_path(p).is_file() {
                // The lock survived but the download did not: fetch it again.
                Apt::new()?.download_locked(p)?;
            }
            unpack(&deb_path(p), &tree, p.role.members())?;
        }
        files.push(p.role.file_in(&tree)?);
    }
    Ok((packages, files))
}

/// The roles a lock's packages leave without a package, in [`Role::ALL`]
/// order.
fn missing_roles(packages: &[Package]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| !packages.iter().any(|p| p.role == *r))
        .collect()
}

/// Unpacks a package, or only its `members` (tar patterns).
fn unpack(deb: &Path, tree: &Path, members: Option<&[&str]>) -> Result<(), String> {
    // Unpack beside the final place and rename, so an interrupted run never
    // leaves a tree that looks complete.
    let mut partial = tree.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    match members {
        None => run_cmd(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?,
        Some(patterns) => {
            // dpkg-deb's data tar into tar, which takes patterns.
            let mut data = Command::new("dpkg-deb");
            data.arg("--fsys-tarfile")
                .arg(deb)
                .stdout(std::process::Stdio::piped());
            eprintln!("+ {} | tar -x {}", show(&data), patterns.join(" "));
            let mut child = data
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", show(&data)))?;
            let stdout = child.stdout.take().ok_or("dpkg-deb gave no output")?;
            let mut tar = Command::new("tar");
            tar.arg("-x")
                .arg("-C")
                .arg(&partial)
                .args(["--wildcards", "--wildcards-match-slash"])
                .args(patterns)
                .stdin(stdout);
            let untar = tar.status().map_err(|e| format!("cannot run tar: {e}"));
            let status = child.wait().map_err(|e| e.to_string())?;
            match untar {
                Ok(s) if s.success() && status.success() => {}
                Ok(s) => {
                    return Err(format!(
                        "unpacking {} from {} failed (dpkg-deb {status}, tar {s})",
                        patterns.join(" "),
                        deb.display()
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
    std::fs::rename(&partial, tree).map_err(|e| format!("{}: {e}", tree.display()))
}

/// The lock file: one `role name version` line per package.
pub fn write_lock(packages: &[Package]) -> String {
    let mut s = String::from(
        "# Debian packages chosen for the guests; `cargo xtask guests --refresh` chooses again.\n",
    );
    for p in packages {
        s.push_str(&format!("{} {} {}\n", p.role.key(), p.name, p.version));
    }
    s
}

/// Reads the lock file: at most one package per role (a role it does not
/// name is chosen again, see [`fetch`]).
pub fn parse_lock(text: &str) -> Result<Vec<Package>, String> {
    let mut out: Vec<Package> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [role, name, version] = w[..] else {
            return Err(format!("`{line}`: expected `role package version`"));
        };
        let role = Role::from_key(role).ok_or(format!("`{line}`: unknown role {role}"))?;
        if out.iter().any(|p| p.role == role) {
            return Err(format!("`{line}`: a second {} package", role.key()));
        }
        out.push(Package {
            role,
            name: name.into(),
            version: version.into(),
        });
    }
    Ok(out)
}

/// apt-get and apt-cache confined to a private state directory: arm64
/// only, one source, no part of `/etc/apt/sources.list.d`.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new() -> Result<Self, String> {
        let dir = cache_dir().join("apt");
        for d in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(dir.join("sources.list"), SOURCES.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let d = self.dir.display();
        c.args([
            "-q",
            "-oAPT::Architecture=arm64",
            "-oAPT::Architectures=arm64",
            &format!("-oDir::State::Lists={d}/lists"),
            &format!("-oDir::Cache={d}/cache"),
            &format!("-oDir::Etc::SourceList={d}/sources.list"),
            "-oDir::Etc::SourceParts=/dev/null",
        ]);
        if crate::setup::is_root() {
            // apt drops to its `_apt` user to download, which cannot write
            // into target/ (it warns and carries on as root anyway).
            c.arg("-oAPT::Sandbox::User=root");
        }
        c
    }

    fn update(&self) -> Result<(), String> {
        run_cmd(self.command("apt-get").arg("update"))
    }

    fn output(&self, cmd: &mut Command) -> Result<String, String> {
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed:\n{}",
                show(cmd),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The newest version of the newest package matching the role's pattern.
    fn choose(&self, role: Role) -> Result<Package, String> {
        let names = self.output(self.command("apt-cache").args([
            "search",
            "--names-only",
            role.pattern(),
        ]))?;
        let names: Vec<&str> = names
            .lines()
            .filter_map(|l| l.split(" - ").next())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(format!(
                "no package in `{}` matches {} (for {})",
                SOURCES.join("`, `"),
                role.pattern(),
                role.key()
            ));
        }
        let show = self.output(
            self.command("apt-cache")
                .args(["show", "--no-all-versions"])
                .args(&names),
        )?;
        newest(&show)
            .map(|(name, version)| Package {
                role,
                name,
                version,
            })
            .ok_or(format!("apt-cache show gave no versions for {names:?}"))
    }

    fn download(&self, p: &Package) -> Result<(), String> {
        // Download into an empty directory: apt names the file itself
        // (escaping an epoch's colon), and the one file there is ours.
        let tmp = cache_dir().join("debs").join("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        run_cmd(
            self.command("apt-get")
                .args(["download", &format!("{}={}", p.name, p.version)])
                .current_dir(&tmp),
        )?;
        let deb = std::fs::read_dir(&tmp)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or(format!("apt-get download left no .deb for {}", p.name))?;
        std::fs::rename(&deb, deb_path(p)).map_err(|e| format!("{}: {e}", deb.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
        Ok(())
    }

    /// Downloads a locked version, updating the lists only if apt does not
    /// know it.
    fn download_locked(&self, p: &Package) -> Result<(), String> {
        if self.download(p).is_ok() {
            return Ok(());
        }
        self.update()?;
        self.download(p).map_err(|e| {
            format!("{e}\n(the archive may have dropped it: run `cargo xtask guests --refresh`)")
        })
    }
}

/// The (package, version) with the highest version among `apt-cache show`
/// stanzas.
pub fn newest(show: &str) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for stanza in show.split("\n\n") {
        let field = |f: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(f))
                .map(|v| v.trim().to_string())
        };
        let (Some(name), Some(version)) = (field("Package:"), field("Version:")) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(_, v)| compare_versions(&version, v) == Ordering::Greater)
        {
            best = Some((name, version));
        }
    }
    best
}

/// Compares Debian package versions (`[epoch:]upstream[-revision]`) the
/// way dpkg does: epochs numerically, then upstream and revision part by
/// part, where non-digit runs compare character by character with `~`
/// before everything (even the end), letters before other characters, and
/// digit runs compare as numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, upstream, revision)
    }
    fn weight(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c) + 256,
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
        while !a.is_empty() || !b.is_empty() {
            while a.first().is_some_and(|c| !c.is_ascii_digit())
                || b.first().is_some_and(|c| !c.is_ascii_digit())
            {
                let (wa, wb) = (weight(a.first().copied()), weight(b.first().copied()));
                if wa != wb {
                    return wa.cmp(&wb);
                }
                a = &a[1.min(a.len())..];
                b = &b[1.min(b.len())..];
            }
            let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
            let (da, db) = (digits(a), digits(b));
            let num = |s: &[u8]| {
                let t = std::str::from_utf8(s)
                    .unwrap_or("0")
                    .trim_start_matches('0');
                (t.len(), t.to_string())
            };
            // Compare digit runs by length without leading zeros, then
            // lexically: numeric order with no overflow.
            let ord = num(&a[..da]).cmp(&num(&b[..db]));
            if ord != Ordering::Equal {
                return ord;
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn versions_compare_numerically_not_as_text() {
        assert_eq!(compare_versions("6.12.117-1", "6.12.107-1"), Greater);
        assert_eq!(compare_versions("6.12.9-1", "6.12.10-1"), Less);
        assert_eq!(compare_versions("1.0-1", "1.0-1"), Equal);
        assert_eq!(compare_versions("1.00-1", "1.0-1"), Equal);
    }

    #[test]
    fn epochs_revisions_and_tildes_order_as_dpkg_does() {
        assert_eq!(compare_versions("1:1.0", "9.9"), Greater);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
        assert_eq!(compare_versions("1.0", "1.0a"), Less);
        assert_eq!(compare_versions("1.0a", "1.0+"), Less);
        assert_eq!(compare_versions("1.0-2", "1.0-10"), Less);
        assert_eq!(
            compare_versions("4.20.4+63-g7abfd2bce2-0+deb13u1", "4.20.4+63-g7abfd2bce2-0"),
            Greater
        );
    }

    #[test]
    fn the_newest_kernel_is_chosen_whatever_the_listing_order() {
        let show = "Package: linux-image-6.12.117+deb13-cloud-arm64-unsigned\nVersion: 6.12.117-1\nSize: 1\n\n\
                    Package: linux-image-6.12.107+deb13-cloud-arm64-unsigned\nVersion: 6.12.107-1\n\n";
        assert_eq!(
            newest(show),
            Some((
                "linux-image-6.12.117+deb13-cloud-arm64-unsigned".into(),
                "6.12.117-1".into()
            ))
        );
        assert_eq!(newest("Description: nothing\n"), None);
    }

    #[test]
    fn the_lock_reads_back_what_was_written() {
        let pkgs = vec![
            Package {
                role: Role::Linux,
                name: "linux-image-x".into(),
                version: "6.12.117-1".into(),
            },
            Package {
                role: Role::Linux61,
                name: "linux-image-6.1.0-41-cloud-arm64-unsigned".into(),
                version: "6.1.158-1".into(),
            },
            Package {
                role: Role::Busybox,
                name: "busybox-static".into(),
                version: "1:1.37.0-6+b9".into(),
            },
            Package {
                role: Role::Xen,
                name: "xen-hypervisor-4.20-arm64".into(),
                version: "4.20.4-1".into(),
            },
        ];
        assert_eq!(parse_lock(&write_lock(&pkgs)), Ok(pkgs));
    }

    #[test]
    fn a_lock_missing_a_role_keeps_its_versions_and_chooses_only_that_role() {
        // A lock from before the linux61 and uboot roles: its three
        // packages stay.
        let old = parse_lock("linux a 1\nbusybox b 2\nxen c 3\n").unwrap();
        assert_eq!(old.len(), 3);
        assert_eq!(
            missing_roles(&old),
            vec![Role::Linux61, Role::UBoot, Role::Dtbs]
        );
        assert_eq!(missing_roles(&[]), Role::ALL.to_vec());
        let err = parse_lock("linux a 1\nlinux b 2\n").unwrap_err();
        assert!(err.contains("a second linux"), "{err}");
        let err = parse_lock("linux62 a 1\n").unwrap_err();
        assert!(err.contains("unknown role linux62"), "{err}");
    }

    #[test]
    fn the_second_kernel_is_bookworms_6_1_and_the_first_is_the_newest() {
        assert_eq!(Role::from_key("linux61"), Some(Role::Linux61));
        assert!(SOURCES.iter().any(|s| s.contains(" bookworm ")));
        assert!(SOURCES.iter().any(|s| s.contains(" trixie ")));
        // Both kernels match the first pattern: version order picks 6.12.
        let show = "Package: linux-image-6.1.0-41-cloud-arm64-unsigned\nVersion: 6.1.158-1\n\n\
                    Package: linux-image-6.12.117+deb13-cloud-arm64-unsigned\nVersion: 6.12.117-1\n\n";
        assert_eq!(newest(show).unwrap().1, "6.12.117-1");
        assert!(Role::Linux61.pattern().starts_with("^linux-image-6\\.1\\."));
    }

    #[test]
    fn the_dtbs_come_from_the_generic_kernel_not_the_cloud_one() {
        let p = Role::Dtbs.pattern();
        assert!(p.contains("\\+deb13-arm64-unsigned$"), "{p}");
        // Only the DTBs are unpacked, into a directory of their own.
        assert!(Role::Dtbs.members().is_some());
        assert!(Role::Xen.members().is_none());
        let pkg = Package {
            role: Role::Dtbs,
            name: "linux-image-6.12.117+deb13-arm64-unsigned".into(),
            version: "6.12.117-1".into(),
        };
        assert!(
            unpacked_dir(&pkg)
                .ends_with("linux-image-6.12.117+deb13-arm64-unsigned_6.12.117-1.dtbs")
        );
        assert!(!Role::GUESTS.contains(&Role::Dtbs));
    }

    #[test]
    fn versions_with_epochs_make_safe_file_names() {
        assert_eq!(safe("1:1.37.0-6+b9"), "1%3a1.37.0-6+b9");
    }

    #[test]
    fn unpacked_files_are_found_in_trixie_and_bookworm_layouts() {
        let tree = std::env::temp_dir().join(format!("oxen-debian-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::create_dir_all(tree.join("boot")).unwrap();
        std::fs::write(tree.join("bin/busybox"), b"").unwrap();
        std::fs::write(tree.join("boot/xen-4.20-arm64.efi"), b"").unwrap();
        std::fs::write(tree.join("boot/xen-4.20-arm64.config"), b"").unwrap();
        std::fs::write(tree.join("boot/xen-4.20-arm64"), b"").unwrap();
        let busybox = Role::Busybox.file_in(&tree);
        let xen = Role::Xen.file_in(&tree);
        let linux = Role::Linux.file_in(&tree);
        std::fs::remove_dir_all(&tree).unwrap();
        assert_eq!(busybox.unwrap(), tree.join("bin/busybox"));
        assert_eq!(xen.unwrap(), tree.join("boot/xen-4.20-arm64"));
        assert!(linux.unwrap_err().contains("linux package"));
    }
}
