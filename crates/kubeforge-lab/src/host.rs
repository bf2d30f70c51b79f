//! One lab host: its overlay root, its own files (host key, address, DNS, apt source), the
//! machine directories bound into it, its cgroups and its systemd-nspawn process.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::error::{IoContext, LabError, Result};
use crate::exec;
use crate::net;
use crate::plan::{AddressPlan, HostPlan};
use crate::render;
use crate::state::{Paths, State, write_atomic};
use crate::sys::{self, Hierarchy, ProcId};

/// Where a host sees its [`Paths::host_proc`] directory (read-only).
pub const PROC_DIR_IN_HOST: &str = "/var/lib/kubeforge-lab/proc";

/// Where every host sees the lab's [`Paths::shared`] directory (read-write).
pub const SHARED_DIR_IN_HOST: &str = "/var/lib/kubeforge-lab/shared";

/// Machine-wide sysctls that a host's systemd raises as it boots (PID 1 sets `fs.file-max`
/// and `fs.nr_open` to their maxima): read-only in every host, so booting a host leaves the
/// machine as it was. Other sysctls stay writable: a kubelet sets its own kernel tunables
/// (`kernel.panic`, `kernel.panic_on_oops`, `vm.overcommit_memory`), which `lab down` restores.
pub const READ_ONLY_SYSCTLS: &[&str] = &["fs/file-max", "fs/nr_open"];

/// Where a host sees its [`Paths::host_containerd`] directory (read-write).
pub const CONTAINERD_DIR_IN_HOST: &str = "/var/lib/containerd";

/// Writes the host's own /proc/swaps in place (never by rename: the host's bind mount holds
/// the file itself, and would go on showing a replaced one).
pub fn write_swaps(paths: &Paths, name: &str, active: bool) -> Result<()> {
    let dir = paths.host_proc(name);
    fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("swaps");
    fs::write(&file, render::proc_swaps(active)).context(|| format!("writing {}", file.display()))
}

/// Mounts the host's overlay (its upper layer over the shared tree) unless mounted.
pub fn mount_root(paths: &Paths, name: &str) -> Result<()> {
    let root = paths.host_root(name);
    if sys::is_mount_point(&root) {
        return Ok(());
    }
    for dir in [paths.host_upper(name), paths.host_work(name), root.clone()] {
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        paths.tree().display(),
        paths.host_upper(name).display(),
        paths.host_work(name).display()
    );
    exec::run(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&root),
    )?;
    Ok(())
}

pub fn unmount_root(paths: &Paths, name: &str) -> Result<()> {
    let root = paths.host_root(name);
    if sys::is_mount_point(&root) {
        exec::run(Command::new("umount").arg(&root))?;
    }
    Ok(())
}

/// The host's SSH host public key (`type base64 comment`), from its upper layer.
pub fn host_public_key(paths: &Paths, name: &str) -> Result<String> {
    let path = paths
        .host_upper(name)
        .join("etc/ssh/ssh_host_ed25519_key.pub");
    fs::read_to_string(&path).context(|| format!("reading host key {}", path.display()))
}

/// Writes the host's own files into its (mounted) root, so they land in its upper layer.
/// The SSH host key is made once and kept for the host's life.
pub fn write_host_files(
    paths: &Paths,
    plan: &AddressPlan,
    host: &HostPlan,
    http_port: u16,
    operator_public_key: &str,
) -> Result<()> {
    let root = paths.host_root(&host.name);
    let put = |relative: &str, contents: &str, mode: u32| {
        write_atomic(&root.join(relative), contents.as_bytes(), mode)
    };
    put("etc/hostname", &format!("{}\n", host.name), 0o644)?;
    put("etc/hosts", &render::etc_hosts(host), 0o644)?;
    put("etc/resolv.conf", &render::resolv_conf(plan), 0o644)?;
    put(
        "etc/apt/sources.list",
        &render::sources_list(plan.bridge_ip, http_port),
        0o644,
    )?;
    put(
        "etc/systemd/network/10-host0.network",
        &render::host0_network(plan, host),
        0o644,
    )?;
    let machine_id = root.join("etc/machine-id");
    if fs::read_to_string(&machine_id)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid")
            .context(|| "reading /proc/sys/kernel/random/uuid".into())?;
        put(
            "etc/machine-id",
            &format!("{}\n", uuid.trim().replace('-', "")),
            0o444,
        )?;
    }
    let ssh_dir = root.join("root/.ssh");
    fs::create_dir_all(&ssh_dir).context(|| format!("creating {}", ssh_dir.display()))?;
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))
        .context(|| format!("setting mode of {}", ssh_dir.display()))?;
    put("root/.ssh/authorized_keys", operator_public_key, 0o600)?;
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    if !key.exists() {
        exec::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-C")
                .arg(format!("root@{}", host.name))
                .arg("-f")
                .arg(&key),
        )?;
    }
    Ok(())
}

/// The running host's PID 1 (systemd): the child of systemd-nspawn that is PID 1 in its
/// own PID namespace.
pub fn container_init(nspawn: ProcId) -> Option<u32> {
    if !nspawn.alive() {
        return None;
    }
    sys::processes()
        .into_iter()
        .filter(|(_, ppid, _)| *ppid == nspawn.pid)
        .map(|(pid, _, _)| pid)
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("NSpid:"))
                        .map(|l| l.split_whitespace().last() == Some("1"))
                })
                .unwrap_or(false)
        })
}

/// Whether the host runs (its systemd-nspawn is alive).
pub fn is_running(state: &State, name: &str) -> bool {
    state
        .hosts
        .get(name)
        .and_then(|h| h.nspawn)
        .is_some_and(|p| p.alive())
}

/// Boots the host: overlay, fresh cgroups in every hierarchy, systemd-nspawn inside them,
/// then its veth link up. Records the nspawn process in `state` (not saved here).
pub fn start(
    paths: &Paths,
    state: &mut State,
    hierarchies: &[Hierarchy],
    name: &str,
) -> Result<()> {
    if is_running(state, name) {
        return Ok(());
    }
    mount_root(paths, name)?;
    if !paths.host_proc(name).join("swaps").exists() {
        write_swaps(paths, name, false)?;
    }
    for dir in [paths.host_containerd(name), paths.shared()] {
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    }
    let cgroup = state.slot.cgroup_of(name);
    // Leftovers of a crashed boot (the host's own sub-cgroups) would confuse the new one.
    sys::remove_cgroup(hierarchies, &cgroup)?;
    sys::create_cgroup(hierarchies, &cgroup)?;
    let mut cmd = Command::new("systemd-nspawn");
    cmd.env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1")
        .env("SYSTEMD_SECCOMP", "0")
        .args(["--register=no", "--keep-unit", "-b", "--quiet"])
        .arg("-D")
        .arg(paths.host_root(name))
        .arg(format!("--machine={}", state.slot.machine(name)))
        .arg(format!("--hostname={name}"))
        .arg("--capability=all")
        .arg(format!("--network-bridge={}", state.bridge))
        // The host's own /proc/swaps. nspawn makes binds below /proc inside the host, after
        // entering its root, so the source is a path in the host: its bound proc directory.
        .arg(format!(
            "--bind-ro={}:{PROC_DIR_IN_HOST}",
            paths.host_proc(name).display()
        ))
        .arg(format!("--bind-ro={PROC_DIR_IN_HOST}/swaps:/proc/swaps"))
        .args(
            READ_ONLY_SYSCTLS
                .iter()
                .map(|s| format!("--bind-ro=/proc/sys/{s}:/proc/sys/{s}")),
        )
        .arg(format!(
            "--bind={}:{CONTAINERD_DIR_IN_HOST}",
            paths.host_containerd(name).display()
        ))
        .arg(format!(
            "--bind={}:{SHARED_DIR_IN_HOST}",
            paths.shared().display()
        ))
        .args([
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--console=read-only",
        ]);
    // Children inherit the cgroups of the process that starts them: step into the host's
    // cgroups, start nspawn, step back.
    let previous = sys::enter_cgroup(hierarchies, &cgroup)?;
    let spawned = exec::spawn_daemon(&mut cmd, &paths.host_console_log(name));
    let back = sys::enter_cgroups(&previous);
    let pid = spawned?;
    back?;
    let nspawn = ProcId::of(pid).ok_or_else(|| {
        LabError::Invalid(format!(
            "systemd-nspawn for {name} exited at once; see {}",
            paths.host_console_log(name).display()
        ))
    })?;
    state.host(name).nspawn = Some(nspawn);
    state.host(name).cut = false;
    state.host(name).frozen = false;
    // nspawn adds the machine side of the host's veth to the bridge but leaves it down.
    let veth = state.slot.veth(name);
    if !sys::wait_until(Duration::from_secs(15), || {
        net::link_exists(&veth) || !nspawn.alive()
    }) || !nspawn.alive()
    {
        return Err(LabError::Invalid(format!(
            "host {name} did not start (no link {veth}); see {}",
            paths.host_console_log(name).display()
        )));
    }
    net::set_link(&veth, true)?;
    Ok(())
}

/// Freezes or thaws every process of the host (it stalls: a TCP connection to it is accepted,
/// then nothing answers).
pub fn freeze(
    state: &mut State,
    hierarchies: &[Hierarchy],
    name: &str,
    frozen: bool,
) -> Result<()> {
    sys::freeze_cgroup(hierarchies, &state.slot.cgroup_of(name), frozen)?;
    state.host(name).frozen = frozen;
    Ok(())
}

/// Crashes the host: SIGKILL to its PID 1 (killing nspawn would leave the host running).
pub fn kill(state: &mut State, name: &str) -> Result<()> {
    let Some(nspawn) = state.hosts.get(name).and_then(|h| h.nspawn) else {
        return Ok(());
    };
    // A frozen process takes its SIGKILL only once thawed.
    if state.hosts.get(name).is_some_and(|h| h.frozen) {
        let hierarchies = sys::cgroup_hierarchies(&sys::mounts());
        freeze(state, &hierarchies, name, false)?;
    }
    if let Some(init) = container_init(nspawn) {
        sys::signal(init, "KILL")?;
    }
    if !sys::wait_until(Duration::from_secs(15), || !nspawn.alive()) {
        // nspawn without its container has nothing left to run.
        sys::terminate(nspawn, Duration::from_secs(2))?;
    }
    state.host(name).nspawn = None;
    Ok(())
}

/// Shuts the host down cleanly (nspawn turns SIGTERM into a poweroff of the host), falling
/// back to [`kill`] after `grace`.
pub fn stop(paths: &Paths, state: &mut State, name: &str, grace: Duration) -> Result<()> {
    if let Some(nspawn) = state.hosts.get(name).and_then(|h| h.nspawn)
        && nspawn.alive()
    {
        sys::signal(nspawn.pid, "TERM")?;
        if !sys::wait_until(grace, || !nspawn.alive()) {
            kill(state, name)?;
        }
    }
    state.host(name).nspawn = None;
    unmount_root(paths, name)
}
