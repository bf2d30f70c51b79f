//! The cached parts of a lab: the shared Debian tree (debootstrap) and the offline package
//! repository served to the hosts. Both are built once and reused until their inputs change.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::exec;
use crate::render;
use crate::state::{Paths, write_atomic};

pub const SUITE: &str = "bookworm";
/// The Debian mirror, as the machine's own apt uses it.
pub const MIRROR: &str = "http://deb.debian.org/debian";
pub const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Packages of the shared tree (on top of debootstrap's minbase).
pub const TREE_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "procps",
];

/// Packages the repository offers the hosts (with whatever they depend on).
pub const REPO_PACKAGES: &[&str] = &[
    "keepalived",
    "haproxy",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "curl",
    "ca-certificates",
    "iptables",
    "conntrack",
    "socat",
    "ebtables",
    "ethtool",
    "gnupg",
    "apt-transport-https",
    "kmod",
    "sudo",
];

/// Bumped whenever the customisation of the tree changes, so cached trees are rebuilt.
const TREE_LAYOUT: u32 = 3;

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TreeStamp {
    suite: String,
    mirror: String,
    packages: Vec<String>,
    layout: u32,
}

fn tree_stamp() -> TreeStamp {
    TreeStamp {
        suite: SUITE.into(),
        mirror: MIRROR.into(),
        packages: TREE_PACKAGES.iter().map(|s| (*s).to_owned()).collect(),
        layout: TREE_LAYOUT,
    }
}

fn read_stamp<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

/// Whether the cached tree is current.
pub fn tree_is_cached(paths: &Paths) -> bool {
    paths.tree().join("etc/os-release").exists()
        && read_stamp::<TreeStamp>(&paths.tree_stamp()) == Some(tree_stamp())
}

/// Builds the shared tree with debootstrap unless a current one is cached.
/// Must not run while hosts use the tree.
pub fn ensure_tree(paths: &Paths, progress: &mut dyn FnMut(&str)) -> Result<()> {
    if tree_is_cached(paths) {
        progress(&format!(
            "Debian {SUITE} tree: cached in {}",
            paths.tree().display()
        ));
        return Ok(());
    }
    let cache = paths.cache_dir();
    let debs = cache.join("debootstrap");
    fs::create_dir_all(&debs).context(|| format!("creating {}", debs.display()))?;
    let partial = cache.join("tree.partial");
    remove_tree(&partial)?;
    progress(&format!(
        "Debian {SUITE} tree: debootstrap from {MIRROR} (about a minute; log in {})",
        cache.join("debootstrap.log").display()
    ));
    exec::run_logged(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", TREE_PACKAGES.join(",")))
            .arg(format!("--cache-dir={}", debs.display()))
            .arg(SUITE)
            .arg(&partial)
            .arg(MIRROR),
        &cache.join("debootstrap.log"),
    )?;
    customize_tree(&partial)?;
    remove_tree(&paths.tree())?;
    fs::rename(&partial, paths.tree()).context(|| {
        format!(
            "renaming {} to {}",
            partial.display(),
            paths.tree().display()
        )
    })?;
    let stamp = serde_json::to_string_pretty(&tree_stamp()).unwrap_or_default();
    write_atomic(&paths.tree_stamp(), stamp.as_bytes(), 0o644)?;
    // The repository index was made against the old tree's packages.
    let _ = fs::remove_file(paths.repo().join(REPO_STAMP));
    progress("Debian tree: ready");
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

fn install(root: &Path, relative: &str, contents: &str, mode: u32) -> Result<()> {
    write_atomic(&root.join(relative), contents.as_bytes(), mode)
}

/// What every host shares: no host keys, machine id or host name (each host gets its own in
/// its upper layer), the cgroup unit, networkd enabled, no timers that reach for the network,
/// sysctls applied at boot only for the host's own network namespace, and /dev/kmsg (the
/// kubelet reads it; nspawn does not make it).
fn customize_tree(tree: &Path) -> Result<()> {
    for entry in fs::read_dir(tree.join("etc/ssh")).context(|| "reading etc/ssh".into())? {
        let entry = entry.context(|| "reading etc/ssh".into())?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    for file in ["var/lib/dbus/machine-id", "etc/hostname", "etc/resolv.conf"] {
        let path = tree.join(file);
        if path.symlink_metadata().is_ok() {
            fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        }
    }
    install(tree, "etc/machine-id", "", 0o444)?;
    install(
        tree,
        "etc/apt/sources.list",
        "# kubeforge lab: each host has the lab repository here\n",
        0o644,
    )?;
    install(
        tree,
        "etc/systemd/system/kubeforge-cgroup-rw.service",
        render::CGROUP_RW_UNIT,
        0o644,
    )?;
    install(
        tree,
        "usr/local/sbin/kubeforge-cgroup-rw",
        render::CGROUP_RW_SCRIPT,
        0o755,
    )?;
    install(
        tree,
        "etc/ssh/sshd_config.d/kubeforge-lab.conf",
        render::SSHD_CONF,
        0o644,
    )?;
    install(
        tree,
        "etc/systemd/system/systemd-networkd.service.d/kubeforge-lab.conf",
        render::NETWORKD_READONLY_SYS,
        0o644,
    )?;
    install(
        tree,
        "etc/systemd/system/systemd-sysctl.service.d/kubeforge-lab.conf",
        render::SYSCTL_NET_ONLY,
        0o644,
    )?;
    install(
        tree,
        "etc/tmpfiles.d/kubeforge-lab-kmsg.conf",
        render::KMSG_TMPFILES,
        0o644,
    )?;
    let root = format!("--root={}", tree.display());
    exec::run(Command::new("systemctl").args([
        root.as_str(),
        "enable",
        "systemd-networkd.service",
        "kubeforge-cgroup-rw.service",
    ]))?;
    exec::run(Command::new("systemctl").args([
        root.as_str(),
        "mask",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "systemd-networkd-wait-online.service",
    ]))?;
    let archives = tree.join("var/cache/apt/archives");
    if let Ok(entries) = fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "deb") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755))
        .context(|| format!("setting mode of {}", tree.display()))?;
    Ok(())
}

/// Bumped whenever the repository layout changes, so cached repositories are re-indexed.
const REPO_LAYOUT: u32 = 2;

const REPO_STAMP: &str = ".kubeforge-packages.json";

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RepoStamp {
    packages: Vec<String>,
    #[serde(default)]
    layout: u32,
    tree: TreeStamp,
}

fn repo_stamp() -> RepoStamp {
    RepoStamp {
        packages: REPO_PACKAGES.iter().map(|s| (*s).to_owned()).collect(),
        layout: REPO_LAYOUT,
        tree: tree_stamp(),
    }
}

/// Downloads (against the tree's installed packages) and indexes the repository's packages,
/// unless a current repository is cached.
pub fn ensure_repo(paths: &Paths, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let repo = paths.repo();
    if repo.join("Packages").exists()
        && read_stamp::<RepoStamp>(&repo.join(REPO_STAMP)) == Some(repo_stamp())
    {
        progress(&format!("package repository: cached in {}", repo.display()));
        return Ok(());
    }
    progress(&format!(
        "package repository: downloading {} and their dependencies",
        REPO_PACKAGES.join(" ")
    ));
    let apt = paths.cache_dir().join("apt");
    let archives = apt.join("archives");
    for dir in [
        apt.join("lists/partial"),
        apt.join("cache"),
        apt.join("parts"),
        archives.join("partial"),
        repo.clone(),
    ] {
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    }
    let sources = apt.join("sources.list");
    write_atomic(
        &sources,
        format!(
            "deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n\
             deb [signed-by={KEYRING}] {MIRROR} {SUITE}-updates main\n\
             deb [signed-by={KEYRING}] {SECURITY_MIRROR} {SUITE}-security main\n"
        )
        .as_bytes(),
        0o644,
    )?;
    let options = [
        format!(
            "Dir::State::status={}",
            paths.tree().join("var/lib/dpkg/status").display()
        ),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!("Dir::Cache={}", apt.join("cache").display()),
        format!("Dir::Cache::archives={}", archives.display()),
        format!("Dir::Etc::SourceList={}", sources.display()),
        format!("Dir::Etc::SourceParts={}", apt.join("parts").display()),
        format!("Dir::Etc::PreferencesParts={}", apt.join("parts").display()),
        "Dir::Etc::Preferences=/dev/null".to_owned(),
        "APT::Sandbox::User=root".to_owned(),
        "Debug::NoLocking=true".to_owned(),
    ];
    let apt_get = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").arg("-q");
        for option in &options {
            cmd.arg("-o").arg(option);
        }
        cmd.args(args);
        cmd
    };
    exec::run(&mut apt_get(&["update"]))?;
    let mut install = apt_get(&[
        "install",
        "-y",
        "--download-only",
        "--no-install-recommends",
    ]);
    install.args(REPO_PACKAGES);
    exec::run(&mut install)?;

    let mut count = 0;
    for entry in fs::read_dir(&archives).context(|| format!("reading {}", archives.display()))? {
        let entry = entry.context(|| format!("reading {}", archives.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "deb") {
            let target = repo.join(entry.file_name());
            if !target.exists() {
                fs::hard_link(&path, &target)
                    .or_else(|_| fs::copy(&path, &target).map(|_| ()))
                    .context(|| format!("copying {} to {}", path.display(), repo.display()))?;
            }
            count += 1;
        }
    }
    let index = exec::stdout(
        Command::new("dpkg-scanpackages")
            .args(["--multiversion", ".", "/dev/null"])
            .current_dir(&repo),
    )?;
    write_atomic(&repo.join("Packages"), index.as_bytes(), 0o644)?;
    write_atomic(
        &repo.join("Release"),
        release_file(&repo, index.len())?.as_bytes(),
        0o644,
    )?;
    let stamp = serde_json::to_string_pretty(&repo_stamp()).unwrap_or_default();
    write_atomic(&repo.join(REPO_STAMP), stamp.as_bytes(), 0o644)?;
    progress(&format!("package repository: {count} packages indexed"));
    Ok(())
}

/// A minimal `Release` for the flat repository, so apt fetches exactly `Packages` (hosts
/// trust the repository with `[trusted=yes]`; nothing is signed).
fn release_file(repo: &Path, packages_size: usize) -> Result<String> {
    let sum = exec::stdout(Command::new("sha256sum").arg("Packages").current_dir(repo))?;
    let sha256 = sum.split_whitespace().next().unwrap_or_default();
    let date = exec::stdout(Command::new("date").args(["-u", "-R"]).env("LC_ALL", "C"))?;
    Ok(format!(
        "Origin: kubeforge lab\nLabel: kubeforge lab\nDate: {}\nSHA256:\n {sha256} \
         {packages_size} Packages\n",
        date.trim()
    ))
}
