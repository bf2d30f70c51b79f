//! The machine: processes, mounts, cgroups, sysctls and programs, read from /proc and /sys.
//! Parsers are pure functions over the files' text.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LabError, Result};

/// Whether we run with effective uid 0.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_uid(&s))
        == Some(0)
}

fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Finds a program in PATH (and the sbin directories, which a non-login root shell may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Checks that each `(program, debian package)` is installed.
pub fn require_programs(programs: &[(&str, &str)]) -> Result<()> {
    for (program, package) in programs {
        if find_program(program).is_none() {
            return Err(LabError::MissingProgram {
                program: (*program).into(),
                package: (*package).into(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Processes

/// A process identified by pid and start time (so a reused pid is not mistaken for ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    pub start_time: u64,
}

/// Fields of /proc/PID/stat that we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    pub start_time: u64,
}

/// Parses /proc/PID/stat (the command name may contain spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... starttime(22), i.e. indexes 0, 1 and 19 here.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl ProcId {
    pub fn of(pid: u32) -> Option<ProcId> {
        stat(pid).map(|s| ProcId {
            pid,
            start_time: s.start_time,
        })
    }

    /// Still running (not exited, not a zombie) and the same process as recorded.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start_time == self.start_time && s.state != 'Z')
    }

    /// Still in the process table: running, or exited and not yet reaped by its parent.
    pub fn exists(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start_time == self.start_time)
    }

    /// `PID (command)`, with what keeps a zombie in the table, for error messages.
    pub fn describe(&self) -> String {
        let name = fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
        match stat(self.pid) {
            Some(s) if s.state == 'Z' => format!(
                "{} ({}, exited; its parent {} has not reaped it)",
                self.pid,
                name.trim(),
                s.ppid
            ),
            _ => format!("{} ({})", self.pid, name.trim()),
        }
    }
}

/// Live (non-zombie) processes as (pid, ppid, command line with spaces between arguments).
pub fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(st) = stat(pid) else { continue };
        if st.state == 'Z' {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ");
        out.push((pid, st.ppid, cmdline));
    }
    out.sort();
    out
}

/// Sends a signal with the `kill` program (no unsafe code needed for a syscall).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    crate::exec::run(
        std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
    )
    .map(|_| ())
}

/// Waits until `done` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}

/// Stops a process: SIGTERM, then SIGKILL after `grace`. Waits until it is gone.
pub fn terminate(proc: ProcId, grace: Duration) -> Result<()> {
    if !proc.alive() {
        return Ok(());
    }
    let _ = signal(proc.pid, "TERM");
    if wait_until(grace, || !proc.alive()) {
        return Ok(());
    }
    let _ = signal(proc.pid, "KILL");
    if wait_until(Duration::from_secs(10), || !proc.alive()) {
        Ok(())
    } else {
        Err(LabError::Timeout(format!(
            "process {} did not exit after SIGKILL",
            proc.pid
        )))
    }
}

/// Ancestors of this process (so a sweep never signals the command that runs it).
pub fn own_ancestry() -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    let mut pid = std::process::id();
    while let Some(st) = stat(pid) {
        if st.ppid == 0 || pids.contains(&st.ppid) {
            break;
        }
        pids.push(st.ppid);
        pid = st.ppid;
    }
    pids
}

// ---------------------------------------------------------------------------------------
// Directories

/// Removes a directory and everything in it, naming the exact path that could not be
/// removed. Never follows a symbolic link, and never descends into another file system
/// (something mounted below `dir` is an error, not a thing to empty).
pub fn remove_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LabError::io(format!("removing {}", dir.display()), e)),
    };
    remove_entry(dir, &meta, meta.dev())
}

fn remove_entry(path: &Path, meta: &fs::Metadata, dev: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_dir() {
        return fs::remove_file(path).context(|| format!("removing {}", path.display()));
    }
    if meta.dev() != dev {
        return Err(LabError::Invalid(format!(
            "not removing {}: another file system is mounted there",
            path.display()
        )));
    }
    for entry in fs::read_dir(path).context(|| format!("reading {}", path.display()))? {
        let entry = entry.context(|| format!("reading {}", path.display()))?;
        let child = entry.path();
        let child_meta =
            fs::symlink_metadata(&child).context(|| format!("reading {}", child.display()))?;
        remove_entry(&child, &child_meta, dev)?;
    }
    fs::remove_dir(path).context(|| format!("removing {}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Mounts

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

fn unescape_mount(s: &str) -> String {
    // Spaces, tabs, newlines and backslashes are written as \ooo octal escapes.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape_mount(left.get(3)?),
                mount_point: PathBuf::from(unescape_mount(left.get(4)?)),
                fs_type: (*right.first()?).to_owned(),
                super_options: right
                    .get(2)
                    .map(|o| o.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

pub fn mounts() -> Vec<Mount> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

pub fn is_mount_point(path: &Path) -> bool {
    mounts().iter().any(|m| m.mount_point == path)
}

/// Mount points at or below `dir`, deepest first (the order to unmount them).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Whether a mounted overlay has `lower` as its lower layer (a lab host runs on it).
pub fn overlay_lower_in_use(lower: &Path) -> bool {
    overlay_uses(&mounts(), lower)
}

fn overlay_uses(mounts: &[Mount], lower: &Path) -> bool {
    let option = format!("lowerdir={}", lower.display());
    mounts
        .iter()
        .any(|m| m.fs_type == "overlay" && m.super_options.contains(&option))
}

// ---------------------------------------------------------------------------------------
// cgroups

/// A mounted cgroup hierarchy: v1 (one per controller set, or `name=systemd`) or v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// Controllers (v1), e.g. `["cpu"]` or `["name=systemd"]`; empty for cgroup2.
    pub controllers: Vec<String>,
    pub version: u8,
}

/// Cgroup hierarchies mounted on the machine (one mount per hierarchy).
pub fn cgroup_hierarchies(mounts: &[Mount]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        let hierarchy = match m.fs_type.as_str() {
            "cgroup" => Hierarchy {
                mount_point: m.mount_point.clone(),
                controllers: m
                    .super_options
                    .iter()
                    .filter(|o| !matches!(o.as_str(), "rw" | "ro") && !o.contains("release_agent"))
                    .filter(|o| {
                        !matches!(
                            o.as_str(),
                            "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"
                        )
                    })
                    .cloned()
                    .collect(),
                version: 1,
            },
            "cgroup2" => Hierarchy {
                mount_point: m.mount_point.clone(),
                controllers: Vec::new(),
                version: 2,
            },
            _ => continue,
        };
        if m.root == "/" && !out.iter().any(|h| h.controllers == hierarchy.controllers) {
            out.push(hierarchy);
        }
    }
    out
}

/// Whether this machine runs cgroup v1 (/sys/fs/cgroup is not the unified cgroup2 hierarchy).
pub fn cgroup_v1() -> bool {
    !mounts()
        .iter()
        .any(|m| m.mount_point == Path::new("/sys/fs/cgroup") && m.fs_type == "cgroup2")
}

/// Our own cgroup path in each hierarchy, from /proc/self/cgroup.
pub fn own_cgroup(proc_cgroup: &str, hierarchy: &Hierarchy) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let matches = if hierarchy.version == 2 {
            id == "0" && controllers.is_empty()
        } else {
            let mut a: Vec<&str> = controllers.split(',').collect();
            let mut b: Vec<&str> = hierarchy.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        };
        matches.then(|| path.to_owned())
    })
}

/// Freezes (or thaws) every process of the cgroup `relative`: the cgroup v1 freezer, else
/// cgroup v2's `cgroup.freeze`. A frozen process runs nothing, not even its signal handlers
/// (SIGKILL waits until it is thawed); its sockets still complete TCP handshakes in the kernel.
pub fn freeze_cgroup(hierarchies: &[Hierarchy], relative: &Path, frozen: bool) -> Result<()> {
    let v1 = hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "freezer"));
    let (file, value) = match v1 {
        Some(h) => (
            h.mount_point.join(relative).join("freezer.state"),
            if frozen { "FROZEN" } else { "THAWED" },
        ),
        None => {
            let h = hierarchies
                .iter()
                .find(|h| h.version == 2)
                .ok_or_else(|| LabError::Invalid("this machine has no cgroup freezer".into()))?;
            (
                h.mount_point.join(relative).join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            )
        }
    };
    fs::write(&file, value).context(|| format!("writing {value} to {}", file.display()))
}

/// Creates `relative` (e.g. `kubeforge-lab/k8scp01`) in every hierarchy. In the v1 cpuset
/// hierarchy a new cgroup starts with no CPUs and memory nodes: copy them from the parent.
pub fn create_cgroup(hierarchies: &[Hierarchy], relative: &Path) -> Result<()> {
    for h in hierarchies {
        let mut dir = h.mount_point.clone();
        for part in relative.components() {
            let parent = dir.clone();
            dir.push(part);
            if !dir.is_dir() {
                fs::create_dir(&dir).context(|| format!("creating cgroup {}", dir.display()))?;
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
                    if current.trim().is_empty() {
                        let from_parent = fs::read_to_string(parent.join(file))
                            .context(|| format!("reading {}", parent.join(file).display()))?;
                        fs::write(dir.join(file), from_parent.trim())
                            .context(|| format!("writing {}", dir.join(file).display()))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Moves this whole process into `relative` in every hierarchy (children started
/// afterwards inherit it). Returns where we were, to move back with [`enter_cgroups`].
pub fn enter_cgroup(hierarchies: &[Hierarchy], relative: &Path) -> Result<Vec<PathBuf>> {
    let own =
        fs::read_to_string("/proc/self/cgroup").context(|| "reading /proc/self/cgroup".into())?;
    let mut previous = Vec::new();
    for h in hierarchies {
        let was = own_cgroup(&own, h).unwrap_or_else(|| "/".into());
        previous.push(h.mount_point.join(was.trim_start_matches('/')));
    }
    let targets: Vec<PathBuf> = hierarchies
        .iter()
        .map(|h| h.mount_point.join(relative))
        .collect();
    enter_cgroups(&targets)?;
    Ok(previous)
}

/// Writes our pid into `cgroup.procs` of each directory.
pub fn enter_cgroups(dirs: &[PathBuf]) -> Result<()> {
    let pid = std::process::id().to_string();
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        fs::write(&procs, &pid).context(|| format!("writing {}", procs.display()))?;
    }
    Ok(())
}

/// Removes `relative` and everything below it in every hierarchy (deepest first; a
/// cgroup directory can be removed once it has no processes and no children).
pub fn remove_cgroup(hierarchies: &[Hierarchy], relative: &Path) -> Result<()> {
    for h in hierarchies {
        let top = h.mount_point.join(relative);
        if !top.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in dirs {
            let mut result = fs::remove_dir(&dir);
            // The kernel may take a moment to release a cgroup whose last process just exited.
            for _ in 0..50 {
                if result.is_ok() || !dir.exists() {
                    break;
                }
                sleep(Duration::from_millis(100));
                result = fs::remove_dir(&dir);
            }
            if dir.exists() {
                result.context(|| format!("removing cgroup {}", dir.display()))?;
            }
        }
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

/// Processes in `relative` and every cgroup below it, in every hierarchy.
pub fn cgroup_processes(hierarchies: &[Hierarchy], relative: &Path) -> Vec<ProcId> {
    let mut out: Vec<ProcId> = Vec::new();
    for h in hierarchies {
        let mut dirs = Vec::new();
        let top = h.mount_point.join(relative);
        if top.is_dir() {
            collect_dirs(&top, &mut dirs);
        }
        for dir in dirs {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for proc in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                if let Some(id) = ProcId::of(proc)
                    && !out.contains(&id)
                {
                    out.push(id);
                }
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// Cgroup directories that exist for `relative` (for leak checks).
pub fn existing_cgroups(hierarchies: &[Hierarchy], relative: &Path) -> Vec<PathBuf> {
    hierarchies
        .iter()
        .map(|h| h.mount_point.join(relative))
        .filter(|p| p.is_dir())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Sysctls

/// The trees of /proc/sys that are not per network namespace (and `net.core`, most of which
/// is not either): what a host sets there, it sets on the machine and in every other host.
/// `lab up` records every writable setting in them; `lab down` puts back each that differs.
pub const MACHINE_SYSCTL_TREES: &[&str] = &["kernel", "vm", "fs", "net/core"];

/// Writable files in those trees that are counters the kernel moves on its own, not settings.
const VOLATILE_SYSCTLS: &[&str] = &["kernel.ns_last_pid"];

/// Directories in those trees that hold no settings: registered binary formats
/// (a file system of its own).
const NOT_SETTINGS: &[&str] = &["fs/binfmt_misc"];

/// Every host's systemd (and later its kubelet) takes inotify instances from the machine's
/// one per-user budget; the default of 128 runs out at a few dozen hosts ("Too many open
/// files" at boot). Raised at `lab up`, restored at `lab down` with every other sysctl.
pub const INOTIFY_LIMITS: &[(&str, u64)] = &[
    ("fs.inotify.max_user_instances", 8192),
    ("fs.inotify.max_user_watches", 524_288),
];

/// Raises the inotify limits to at least [`INOTIFY_LIMITS`]; returns what it changed.
pub fn raise_inotify_limits() -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for (name, minimum) in INOTIFY_LIMITS {
        let current = read_sysctl(name).and_then(|v| v.parse::<u64>().ok());
        if current.is_some_and(|c| c < *minimum) {
            write_sysctl(name, &minimum.to_string())?;
            changed.push(format!("{name}={minimum}"));
        }
    }
    Ok(changed)
}

/// The file of a sysctl: dots separate directories, and a `/` in a name stands for a dot
/// within one (`net.ipv4.conf.eth0/1.forwarding`), as sysctl(8) writes them.
fn sysctl_path(name: &str) -> PathBuf {
    let mut path = PathBuf::from("/proc/sys");
    for part in name.split('.') {
        path.push(part.replace('/', "."));
    }
    path
}

/// The sysctl name of a path relative to /proc/sys (the inverse of [`sysctl_path`]).
fn sysctl_name(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().replace('.', "/"))
        .collect::<Vec<_>>()
        .join(".")
}

pub fn read_sysctl(name: &str) -> Option<String> {
    fs::read_to_string(sysctl_path(name))
        .ok()
        .map(|s| s.trim().to_owned())
}

pub fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let path = sysctl_path(name);
    fs::write(&path, value).context(|| format!("setting {name} (writing {})", path.display()))
}

/// Every writable, readable setting in [`MACHINE_SYSCTL_TREES`] with its current value.
/// Write-only files (`vm.drop_caches`), read-only ones and those that cannot be read are left
/// out: they are not settings that can be put back.
pub fn machine_sysctls() -> BTreeMap<String, String> {
    let root = Path::new("/proc/sys");
    let mut out = BTreeMap::new();
    for tree in MACHINE_SYSCTL_TREES {
        collect_sysctls(root, &root.join(tree), &mut out);
    }
    out
}

fn collect_sysctls(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if !NOT_SETTINGS.iter().any(|d| relative == Path::new(d)) {
                collect_sysctls(root, &path, out);
            }
            continue;
        }
        let mode = meta.permissions().mode();
        if !meta.is_file() || mode & 0o200 == 0 || mode & 0o400 == 0 {
            continue;
        }
        let name = sysctl_name(relative);
        if VOLATILE_SYSCTLS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(value) = fs::read_to_string(&path) {
            out.insert(name, value.trim().to_owned());
        }
    }
}

/// Writes back every recorded sysctl whose value differs now, whatever fails on the way.
/// Returns what it restored (`name=value`) and each failure (naming the sysctl and its file).
/// A sysctl that no longer exists (its module or device is gone) has nothing to restore.
pub fn restore_sysctls(recorded: &BTreeMap<String, String>) -> (Vec<String>, Vec<LabError>) {
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for (name, value) in recorded {
        match read_sysctl(name) {
            Some(now) if now != *value => match write_sysctl(name, value) {
                Ok(()) => restored.push(format!("{name}={value}")),
                Err(e) => failed.push(e),
            },
            _ => {}
        }
    }
    (restored, failed)
}

// ---------------------------------------------------------------------------------------
// Swap

/// One active swap area, as /proc/swaps lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    /// The device or file (spaces unescaped).
    pub filename: String,
    /// `partition` or `file`.
    pub kind: String,
    /// Negative priorities are the kernel's own choice (`swapon` without `-p`).
    pub priority: i32,
}

/// The header line of /proc/swaps.
pub const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

/// Parses /proc/swaps: the header line, then `filename type size used priority`.
pub fn parse_swaps(text: &str) -> Vec<Swap> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(Swap {
                filename: unescape_mount(fields.first()?),
                kind: (*fields.get(1)?).to_owned(),
                priority: fields.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// The machine's active swap areas.
pub fn machine_swaps() -> Vec<Swap> {
    parse_swaps(&fs::read_to_string("/proc/swaps").unwrap_or_default())
}

/// Turns back on every recorded swap area that is off now (a host that ran `swapoff` on the
/// machine's swap, before hosts had their own /proc/swaps). Areas turned on since are left
/// alone, and so are areas whose device or file is gone (nothing to turn on). Returns what it
/// turned on and each failure.
pub fn restore_swaps(recorded: &[Swap]) -> (Vec<String>, Vec<LabError>) {
    let active = machine_swaps();
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for swap in recorded {
        if active.iter().any(|a| a.filename == swap.filename) || !Path::new(&swap.filename).exists()
        {
            continue;
        }
        let mut cmd = std::process::Command::new("swapon");
        if swap.priority >= 0 {
            cmd.arg("--priority").arg(swap.priority.to_string());
        }
        cmd.arg(&swap.filename);
        match crate::exec::run(&mut cmd) {
            Ok(_) => restored.push(swap.filename.clone()),
            Err(e) => failed.push(e),
        }
    }
    (restored, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_package_to_install() {
        let err = require_programs(&[
            ("sh", "dash"),
            ("kubeforge-no-such-program", "kubeforge-pkg"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "program `kubeforge-no-such-program` was not found in PATH; install it with `apt-get install kubeforge-pkg`"
        );
        assert!(require_programs(&[("sh", "dash")]).is_ok());
    }

    #[test]
    fn stat_with_odd_command_names() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn uid_from_status() {
        assert_eq!(effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t0\t0\n"), Some(1000));
    }

    const MOUNTINFO: &str = "\
24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 24 0:39 / /var/lib/kubeforge/lab/hosts/k8scp01/root rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
41 24 0:40 / /tmp/with\\040space rw,relatime - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_and_hierarchies() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 8);
        assert_eq!(mounts[7].mount_point, PathBuf::from("/tmp/with space"));
        let h = cgroup_hierarchies(&mounts);
        let summary: Vec<(String, Vec<String>, u8)> = h
            .iter()
            .map(|h| {
                (
                    h.mount_point.display().to_string(),
                    h.controllers.clone(),
                    h.version,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/sys/fs/cgroup/cpu".into(), vec!["cpu".into()], 1),
                ("/sys/fs/cgroup/cpuset".into(), vec!["cpuset".into()], 1),
                (
                    "/sys/fs/cgroup/systemd".into(),
                    vec!["name=systemd".into()],
                    1
                ),
                ("/sys/fs/cgroup/unified".into(), vec![], 2),
            ]
        );
        let own = "4:cpuset:/\n3:name=systemd:/user.slice\n1:cpu:/x\n0::/init.scope\n";
        assert_eq!(own_cgroup(own, &h[0]).as_deref(), Some("/x"));
        assert_eq!(own_cgroup(own, &h[2]).as_deref(), Some("/user.slice"));
        assert_eq!(own_cgroup(own, &h[3]).as_deref(), Some("/init.scope"));
        assert!(overlay_uses(&mounts, Path::new("/a")));
        assert!(!overlay_uses(&mounts, Path::new("/b")));
        assert!(!overlay_uses(&mounts, Path::new("/a/b")));
    }

    #[test]
    fn sysctl_names_and_paths() {
        assert_eq!(
            sysctl_path("vm.swappiness"),
            PathBuf::from("/proc/sys/vm/swappiness")
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/1.forwarding"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
        assert_eq!(
            sysctl_name(Path::new("net/ipv4/conf/eth0.1/forwarding")),
            "net.ipv4.conf.eth0/1.forwarding"
        );
    }

    #[test]
    fn machine_sysctls_are_the_writable_settings() {
        let all = machine_sysctls();
        assert!(all.contains_key("vm.swappiness"), "{all:?}");
        assert!(all.contains_key("kernel.panic"));
        assert!(all.contains_key("fs.inotify.max_user_watches"));
        // Write-only, read-only, volatile.
        assert!(!all.contains_key("vm.drop_caches"));
        assert!(!all.contains_key("kernel.osrelease"));
        assert!(!all.contains_key("kernel.ns_last_pid"));
        assert!(all.keys().all(|k| {
            ["kernel.", "vm.", "fs.", "net.core."]
                .iter()
                .any(|p| k.starts_with(p))
        }));
        assert_eq!(
            all.get("vm.swappiness"),
            read_sysctl("vm.swappiness").as_ref()
        );
    }

    #[test]
    fn swaps_parse() {
        let text = format!(
            "{SWAPS_HEADER}/dev/vdb                                partition\t1048572\t\t0\t\t-2\n\
             /var/swap\\040file                       file\t\t16380\t\t0\t\t5\n"
        );
        assert_eq!(
            parse_swaps(&text),
            vec![
                Swap {
                    filename: "/dev/vdb".into(),
                    kind: "partition".into(),
                    priority: -2
                },
                Swap {
                    filename: "/var/swap file".into(),
                    kind: "file".into(),
                    priority: 5
                },
            ]
        );
        assert!(parse_swaps(SWAPS_HEADER).is_empty());
    }

    #[test]
    fn remove_tree_removes_everything_but_follows_no_link() {
        let base = std::env::temp_dir().join(format!("kubeforge-lab-tree-{}", std::process::id()));
        let outside = base.join("outside");
        let dir = base.join("dir");
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(dir.join("a/b/file"), "x").unwrap();
        fs::write(outside.join("kept"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("a/link")).unwrap();
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        assert!(outside.join("kept").exists(), "followed a link");
        remove_tree(&dir).unwrap();
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn own_process_is_alive_and_known() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.alive());
        let other = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !other.alive() && !other.exists(),
            "a different start time is a different process"
        );
        assert!(me.exists());
        assert!(own_ancestry().contains(&std::process::id()));
    }
}
