//! The lab as a whole: `up`, `down`, `status` and the fault controls, for the CLI and for
//! tests (every operation works from a new process: it reads the state file).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use kubeforge_core::model::Role;
use serde::Serialize;

use crate::dns;
use crate::error::{IoContext, LabError, Result};
use crate::exec;
use crate::host;
use crate::image;
use crate::net;
use crate::plan::{AddressPlan, DOMAIN, ENDPOINT_NAME};
use crate::render;
use crate::state::{HostState, Paths, STATE_VERSION, Slot, State, write_atomic};
use crate::sys::{self, ProcId};

/// Default directory a lab owns.
pub const DEFAULT_DIR: &str = "/var/lib/kubeforge/lab";
/// Port of the lab's package repository on the bridge address.
pub const HTTP_PORT: u16 = 8080;

/// Programs the lab runs, with the Debian package that provides each.
pub const REQUIRED_PROGRAMS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("dpkg-scanpackages", "dpkg-dev"),
    ("dnsmasq", "dnsmasq-base"),
    ("busybox", "busybox"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("apt-get", "apt"),
    ("systemctl", "systemd"),
    ("mount", "mount"),
];

/// What `lab up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub control_planes: u32,
    pub workers: u32,
    /// `None`: the lab's slot's own ([`Slot::default_subnet`]: `10.213.0.0/24` for the
    /// first lab on the machine).
    pub subnet: Option<Ipv4Net>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            control_planes: 3,
            workers: 1,
            subnet: None,
        }
    }
}

/// A lab in a directory it owns.
#[derive(Debug, Clone)]
pub struct Lab {
    paths: Paths,
}

/// Holds the lab's lock file (one mutating command at a time), or its cache's (one build
/// of a cache at a time, whichever labs share it).
struct Lock(#[allow(dead_code)] fs::File);

/// Takes the lock of `path` (made with its directory when missing), waiting for its holder.
fn lock_file(path: &Path) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .context(|| format!("opening {}", path.display()))?;
    file.lock()
        .context(|| format!("locking {}", path.display()))?;
    Ok(Lock(file))
}

impl Lab {
    /// A lab in `dir` (made absolute; it must not contain `,` or `:`, which overlayfs
    /// options cannot carry).
    pub fn new(dir: impl AsRef<Path>) -> Result<Lab> {
        Ok(Lab {
            paths: Paths::new(overlay_path(dir.as_ref(), "lab directory", "--dir")?),
        })
    }

    /// A lab in `dir` whose cache (the Debian tree and the package repository) is `cache`,
    /// which labs of other directories may share; `None`: `dir/cache`. A lab that is up
    /// keeps the cache it was built from.
    pub fn with_cache(dir: impl AsRef<Path>, cache: Option<&Path>) -> Result<Lab> {
        let mut lab = Lab::new(dir)?;
        lab.paths.cache = match cache {
            Some(c) => Some(overlay_path(c, "cache directory", "--cache")?),
            None => None,
        };
        if let Ok(Some(state)) = State::load(&lab.paths) {
            lab.paths.cache = state.cache;
        }
        Ok(lab)
    }

    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }
    pub fn paths(&self) -> &Paths {
        &self.paths
    }
    /// The inventory `up` writes.
    pub fn inventory(&self) -> PathBuf {
        self.paths.inventory()
    }
    /// The operator's SSH private key.
    pub fn identity_file(&self) -> PathBuf {
        self.paths.identity_file()
    }
    /// The hosts' SSH host keys, under the hosts' names.
    pub fn known_hosts(&self) -> PathBuf {
        self.paths.known_hosts()
    }
    /// The ssh_config that reaches every host by its name (`ssh -F FILE k8scp01`).
    pub fn ssh_config(&self) -> PathBuf {
        self.paths.ssh_config()
    }

    /// The lab's state, or an error if no lab is up.
    pub fn state(&self) -> Result<State> {
        State::load(&self.paths)?.ok_or_else(|| LabError::NotUp {
            dir: self.paths.dir.clone(),
        })
    }

    /// `ssh` to a host by its name (or fully-qualified name), through the lab's ssh_config:
    /// as root, with strict host key checking against the lab's known_hosts; append the
    /// remote command.
    pub fn ssh(&self, host: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
            .arg(host);
        cmd
    }

    fn lock(&self) -> Result<Lock> {
        lock_file(&self.paths.lock())
    }

    // -----------------------------------------------------------------------------------
    // up

    /// Brings the lab up, or converges a lab that is (partly) up. Reports progress lines.
    pub fn up(&self, options: &UpOptions, progress: &mut dyn FnMut(&str)) -> Result<()> {
        preflight()?;
        let _lock = self.lock()?;
        let started = Instant::now();
        let (mut state, plan) = self.state_for(options, progress)?;

        {
            let _cache = lock_file(&self.paths.cache_dir().join("lock"))?;
            if !image::tree_is_cached(&self.paths) && sys::overlay_lower_in_use(&self.paths.tree())
            {
                return Err(LabError::Invalid(format!(
                    "the cached Debian tree {} is out of date but running hosts use it (this \
                     lab's or another's that shares its cache); take those labs down \
                     (`kubeforge lab down`) first, or give this lab a cache of its own (--cache)",
                    self.paths.tree().display()
                )));
            }
            image::ensure_tree(&self.paths, progress)?;
            image::ensure_repo(&self.paths, progress)?;
        }
        let operator_key = self.ensure_operator_key(progress)?;
        // From here on the machine changes: record it first so `down` can undo it.
        state.save(&self.paths)?;

        net::ensure_bridge(&state.bridge, plan.bridge_ip, plan.subnet)?;
        progress(&format!(
            "bridge {}: {}/{} (no route out, no NAT)",
            state.bridge,
            plan.bridge_ip,
            plan.subnet.prefix_len()
        ));
        self.ensure_dns(&mut state)?;
        state.save(&self.paths)?;
        progress(&format!(
            "DNS: dnsmasq on {}:53, {DOMAIN} ({ENDPOINT_NAME} -> {})",
            plan.bridge_ip, plan.vip
        ));
        self.ensure_http(&mut state)?;
        state.save(&self.paths)?;
        progress(&format!(
            "package repository: http://{}:{}/",
            plan.bridge_ip, state.http_port
        ));

        self.start_hosts(&plan, &mut state, &operator_key, progress)?;
        self.write_client_files(&plan)?;

        self.wait_for_ssh(&state, Duration::from_secs(90))?;
        for h in &plan.hosts {
            exec::run(self.ssh(&h.name).arg("true"))?;
        }
        progress(&format!(
            "all {} hosts answer SSH by name (strict host keys; ssh -F {} {}); inventory: {}",
            plan.hosts.len(),
            self.ssh_config().display(),
            plan.hosts.first().map_or("", |h| h.name.as_str()),
            self.paths.inventory().display()
        ));
        progress(&format!(
            "lab up in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// The lab's state: the one recorded (it must be the lab asked for), or a new one, with
    /// the machine's sysctls and swaps recorded before anything changes them.
    fn state_for(
        &self,
        options: &UpOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(State, AddressPlan)> {
        let existing = State::load(&self.paths)?;
        let slot = match &existing {
            Some(state) => state.slot,
            None => free_slot()?,
        };
        let subnet = options
            .subnet
            .or(existing.as_ref().map(|s| s.plan.subnet))
            .unwrap_or_else(|| slot.default_subnet());
        let plan = AddressPlan::new(subnet, options.control_planes, options.workers)?;
        let state = match existing {
            Some(state) => {
                if state.plan != plan {
                    return Err(LabError::Invalid(format!(
                        "a lab with {} control-plane hosts and {} workers on {} is already up \
                         in {}; use `kubeforge lab status`, or `kubeforge lab down` first to \
                         build a different one",
                        state.plan.control_planes(),
                        state.plan.workers(),
                        state.plan.subnet,
                        self.paths.dir.display()
                    )));
                }
                progress(&format!(
                    "lab in {} is already up: checking every part",
                    self.paths.dir.display()
                ));
                state
            }
            None => {
                net::check_subnet_free(subnet, &slot.bridge())?;
                check_ip_forward(progress);
                // Recorded before the first change to the machine, so that `down` restores
                // the originals: every global sysctl, and the swap areas.
                let sysctls = sys::machine_sysctls();
                let swaps = sys::machine_swaps();
                let raised = sys::raise_inotify_limits()?;
                if !raised.is_empty() {
                    progress(&format!(
                        "machine inotify limits raised for the hosts: {} (restored by `lab down`)",
                        raised.join(" ")
                    ));
                }
                State {
                    version: STATE_VERSION,
                    plan: plan.clone(),
                    slot,
                    bridge: slot.bridge(),
                    cache: self.paths.cache.clone(),
                    http_port: HTTP_PORT,
                    sysctls,
                    swaps,
                    dnsmasq: None,
                    httpd: None,
                    hosts: plan
                        .hosts
                        .iter()
                        .map(|h| (h.name.clone(), HostState::default()))
                        .collect(),
                }
            }
        };
        Ok((state, plan))
    }

    /// Starts every host that is not running (its root, its files, the container).
    fn start_hosts(
        &self,
        plan: &AddressPlan,
        state: &mut State,
        operator_key: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let hierarchies = sys::cgroup_hierarchies(&sys::mounts());
        for h in &plan.hosts {
            if host::is_running(state, &h.name) {
                if state.hosts.get(&h.name).is_some_and(|s| s.cut) {
                    progress(&format!(
                        "{}: running (cut off; `lab restore {}`)",
                        h.name, h.name
                    ));
                } else {
                    progress(&format!("{}: running", h.name));
                }
                continue;
            }
            host::mount_root(&self.paths, &h.name)?;
            host::write_host_files(&self.paths, plan, h, state.http_port, operator_key)?;
            let result = host::start(&self.paths, state, &hierarchies, &h.name);
            state.save(&self.paths)?;
            result?;
            progress(&format!(
                "{}: starting at {} ({})",
                h.name, h.address, h.role
            ));
        }
        Ok(())
    }

    /// What this machine's ssh and kubeforge use to reach the hosts: known_hosts, an
    /// ssh_config, and the inventory.
    fn write_client_files(&self, plan: &AddressPlan) -> Result<()> {
        self.write_known_hosts(plan)?;
        write_atomic(
            &self.ssh_config(),
            render::ssh_config(
                plan,
                &self.ssh_config(),
                &self.identity_file(),
                &self.known_hosts(),
            )
            .as_bytes(),
            0o644,
        )?;
        write_atomic(
            &self.paths.inventory(),
            render::cluster_yaml(plan, &self.ssh_config(), sys::cgroup_v1()).as_bytes(),
            0o644,
        )?;

        Ok(())
    }

    fn ensure_operator_key(&self, progress: &mut dyn FnMut(&str)) -> Result<String> {
        let key = self.identity_file();
        let ssh_dir = self.paths.ssh_dir();
        fs::create_dir_all(&ssh_dir).context(|| format!("creating {}", ssh_dir.display()))?;
        if !key.exists() {
            let _ = fs::remove_file(key.with_extension("pub"));
            exec::run(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "kubeforge-lab"])
                    .arg("-f")
                    .arg(&key),
            )?;
            progress(&format!("operator SSH key: {}", key.display()));
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .context(|| format!("setting mode of {}", key.display()))?;
        let public = key.with_extension("pub");
        fs::read_to_string(&public).context(|| format!("reading {}", public.display()))
    }

    fn write_known_hosts(&self, plan: &AddressPlan) -> Result<()> {
        let mut text = String::new();
        for h in &plan.hosts {
            text.push_str(&render::known_hosts_line(
                h,
                &host::host_public_key(&self.paths, &h.name)?,
            ));
        }
        write_atomic(&self.known_hosts(), text.as_bytes(), 0o644)
    }

    fn ensure_dns(&self, state: &mut State) -> Result<()> {
        let plan = &state.plan;
        let conf = self.paths.run_dir().join("dnsmasq.conf");
        let wanted = render::dnsmasq_conf(plan);
        let changed = fs::read_to_string(&conf).ok().as_deref() != Some(wanted.as_str());
        if changed {
            write_atomic(&conf, wanted.as_bytes(), 0o644)?;
        }
        match state.dnsmasq {
            Some(p) if p.alive() && !changed => return Ok(()),
            Some(p) => sys::terminate(p, Duration::from_secs(5))?,
            None => {}
        }
        let pid = exec::spawn_daemon(
            Command::new("dnsmasq")
                .arg("--keep-in-foreground")
                .arg(format!("--conf-file={}", conf.display())),
            &self.paths.run_dir().join("dnsmasq.log"),
        )?;
        state.dnsmasq = ProcId::of(pid);
        let (server, name) = (plan.bridge_ip, format!("{ENDPOINT_NAME}.{DOMAIN}"));
        let answers = sys::wait_until(Duration::from_secs(10), || {
            dns::query_a(server, &name, Duration::from_millis(300))
                .is_ok_and(|a| a.addresses == [plan.vip])
        });
        if !answers {
            return Err(LabError::Invalid(format!(
                "dnsmasq does not answer on {server}:53; see {}",
                self.paths.run_dir().join("dnsmasq.log").display()
            )));
        }
        Ok(())
    }

    fn ensure_http(&self, state: &mut State) -> Result<()> {
        if state.httpd.is_some_and(|p| p.alive()) {
            return Ok(());
        }
        let (addr, port) = (state.plan.bridge_ip, state.http_port);
        // Its configuration is the lab's own file, which names it as this lab's: the
        // repository it serves may be another lab's cache.
        let conf = self.paths.run_dir().join("httpd.conf");
        write_atomic(
            &conf,
            b"# kubeforge lab package repository: no settings\n",
            0o644,
        )?;
        let pid = exec::spawn_daemon(
            Command::new("busybox")
                .args(["httpd", "-f", "-v", "-p"])
                .arg(format!("{addr}:{port}"))
                .arg("-c")
                .arg(&conf)
                .arg("-h")
                .arg(self.paths.repo()),
            &self.paths.run_dir().join("httpd.log"),
        )?;
        state.httpd = ProcId::of(pid);
        if !sys::wait_until(Duration::from_secs(10), || {
            net::http_answers(addr, port, Duration::from_millis(500))
        }) {
            return Err(LabError::Invalid(format!(
                "the package repository does not answer on http://{addr}:{port}/; see {}",
                self.paths.run_dir().join("httpd.log").display()
            )));
        }
        Ok(())
    }

    fn wait_for_ssh(&self, state: &State, timeout: Duration) -> Result<()> {
        let hosts = state.plan.hosts.clone();
        let ok = sys::wait_until(timeout, || {
            hosts
                .iter()
                .all(|h| net::ssh_answers(h.address, Duration::from_millis(500)))
        });
        if ok {
            return Ok(());
        }
        let silent: Vec<String> = hosts
            .iter()
            .filter(|h| !net::ssh_answers(h.address, Duration::from_millis(500)))
            .map(|h| {
                format!(
                    "{} ({})",
                    h.name,
                    self.paths.host_console_log(&h.name).display()
                )
            })
            .collect();
        Err(LabError::Timeout(format!(
            "SSH does not answer on: {}; see the console logs",
            silent.join(", ")
        )))
    }

    // -----------------------------------------------------------------------------------
    // down

    /// Tears everything down: processes, mounts, links, cgroups, machine sysctls and swap;
    /// removes the hosts' disks. Keeps the cache (tree, packages) unless `purge`. Best effort:
    /// a step that fails does not stop the others; every failure is reported at the end, and
    /// the state file is kept so that `down` can run again.
    pub fn down(&self, purge: bool, progress: &mut dyn FnMut(&str)) -> Result<()> {
        preflight_root()?;
        if !self.paths.dir.exists() {
            progress(&format!("no lab in {}", self.paths.dir.display()));
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut state = State::load(&self.paths)?;
        let mut failed = Failures::default();
        let mut names: Vec<String> = state
            .as_ref()
            .map(|s| s.plan.hosts.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default();
        if let Ok(entries) = fs::read_dir(self.paths.hosts_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }

        // Every process of the lab, to wait for after the kills: whatever is in the hosts'
        // cgroups, the hosts' systemd-nspawn, and the servers.
        // A lab without a state file (a crash before the first save) had no other slot.
        let slot = state.as_ref().map_or(Slot::default(), |s| s.slot);
        let hierarchies = sys::cgroup_hierarchies(&sys::mounts());
        let mut tracked = sys::cgroup_processes(&hierarchies, &slot.cgroup_parent());
        tracked.extend(
            self.processes()
                .iter()
                .filter_map(|(pid, _)| ProcId::of(*pid)),
        );
        if let Some(state) = &state {
            tracked.extend(state.hosts.values().filter_map(|h| h.nspawn));
            tracked.extend(state.dnsmasq.into_iter().chain(state.httpd));
        }

        // Hosts: crash them (they are thrown away), then whatever else runs from this lab.
        if let Some(state) = state.as_mut() {
            for name in &names {
                if host::is_running(state, name) && failed.check(host::kill(state, name)) {
                    progress(&format!("{name}: stopped"));
                }
            }
            for service in [state.dnsmasq.take(), state.httpd.take()]
                .into_iter()
                .flatten()
            {
                failed.check(sys::terminate(service, Duration::from_secs(5)));
            }
        }
        if let Some(stray) = failed.value(self.sweep_processes())
            && stray > 0
        {
            progress(&format!("stopped {stray} leftover lab processes"));
        }
        if state.is_some() {
            progress("DNS and package repository: stopped");
        }
        failed.check(wait_for_exit(
            &hierarchies,
            &slot.cgroup_parent(),
            &tracked,
            EXIT_TIMEOUT,
        ));

        let left = self.unmount_all(&mut failed);
        for name in &names {
            failed.check(net::delete_link(&slot.veth(name)));
            // systemd-nspawn's directory for the host, which it leaves behind.
            failed.check(sys::remove_tree(
                &Path::new(NSPAWN_PROPAGATE).join(slot.machine(name)),
            ));
        }
        let bridge = slot.bridge();
        if net::link_exists(&bridge) && failed.check(net::delete_link(&bridge)) {
            progress(&format!("bridge {bridge}: removed"));
        }
        failed.check(sys::remove_cgroup(&hierarchies, &slot.cgroup_parent()));

        if let Some(state) = &state {
            restore_machine(state, &mut failed, progress);
        }
        if left.is_empty() {
            self.remove_files(purge, state.is_some(), &mut failed, progress);
        }
        failed.into_result()
    }

    /// Unmounts everything mounted below the lab's directory (lazily when it is busy);
    /// returns what is still mounted.
    fn unmount_all(&self, failed: &mut Failures) -> Vec<PathBuf> {
        for mount in sys::mounts_under(&self.paths.dir) {
            if exec::run(Command::new("umount").arg(&mount)).is_err() {
                failed.check(exec::run(Command::new("umount").arg("-l").arg(&mount)));
            }
        }
        let left = sys::mounts_under(&self.paths.dir);
        if !left.is_empty() {
            failed.push(format!(
                "still mounted (unmount by hand; nothing below them was removed): {}",
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        left
    }

    /// Removes the lab's files (with --purge, its directory and cache), unless something
    /// failed before that must be looked at first.
    fn remove_files(
        &self,
        purge: bool,
        had_state: bool,
        failed: &mut Failures,
        progress: &mut dyn FnMut(&str),
    ) {
        if purge {
            let cache = self.paths.cache_dir();
            if sys::overlay_lower_in_use(&self.paths.tree()) {
                failed.push(format!(
                    "not purged: another lab's hosts run on the cache {}; `lab down --purge` \
                     again once that lab is down",
                    cache.display()
                ));
            } else if failed.check(sys::remove_tree(&self.paths.dir))
                && (cache.starts_with(&self.paths.dir) || failed.check(sys::remove_tree(&cache)))
            {
                progress(&format!(
                    "removed {} and its cache {}",
                    self.paths.dir.display(),
                    cache.display()
                ));
            }
        } else {
            for dir in [
                self.paths.hosts_dir(),
                self.paths.shared(),
                self.paths.run_dir(),
                self.paths.ssh_dir(),
            ] {
                failed.check(sys::remove_tree(&dir));
            }
            let mut files = vec![self.paths.inventory()];
            if failed.is_empty() {
                files.push(self.paths.state());
            }
            for file in files {
                if file.exists() {
                    failed.check(
                        fs::remove_file(&file).context(|| format!("removing {}", file.display())),
                    );
                }
            }
            if failed.is_empty() {
                progress(&format!(
                    "{}; cache kept in {} (`lab down --purge` removes it)",
                    if had_state {
                        "lab down"
                    } else {
                        "no lab was up"
                    },
                    self.paths.cache_dir().display()
                ));
            }
        }
    }

    /// Live processes started from this lab's directory (nspawn, dnsmasq, httpd), whatever
    /// the state file says; never this process or its parents.
    pub fn processes(&self) -> Vec<(u32, String)> {
        let needles = self.paths.process_marks();
        let ours = sys::own_ancestry();
        sys::processes()
            .into_iter()
            .filter(|(pid, _, cmdline)| {
                !ours.contains(pid) && needles.iter().any(|n| cmdline.contains(n))
            })
            .filter(|(_, _, cmdline)| {
                ["systemd-nspawn", "dnsmasq", "busybox"]
                    .iter()
                    .any(|p| cmdline.split(' ').next().is_some_and(|c| c.ends_with(p)))
            })
            .map(|(pid, _, cmdline)| (pid, cmdline))
            .collect()
    }

    fn sweep_processes(&self) -> Result<usize> {
        let found = self.processes();
        for (pid, cmdline) in &found {
            let Some(proc) = ProcId::of(*pid) else {
                continue;
            };
            if cmdline.contains("systemd-nspawn")
                && let Some(init) = host::container_init(proc)
            {
                let _ = sys::signal(init, "KILL");
                sys::wait_until(Duration::from_secs(10), || !proc.alive());
            }
            sys::terminate(proc, Duration::from_secs(5))?;
        }
        Ok(found.len())
    }

    // -----------------------------------------------------------------------------------
    // Fault controls

    fn with_host<T>(&self, name: &str, f: impl FnOnce(&Lab, &mut State) -> Result<T>) -> Result<T> {
        preflight_root()?;
        let _lock = self.lock()?;
        let mut state = self.state()?;
        if state.plan.host(name).is_none() {
            return Err(LabError::UnknownHost {
                name: name.into(),
                known: state
                    .plan
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let result = f(self, &mut state);
        state.save(&self.paths)?;
        result
    }

    /// Shuts a host down cleanly (its disk is kept).
    pub fn stop(&self, name: &str) -> Result<()> {
        self.with_host(name, |lab, state| {
            host::stop(&lab.paths, state, name, Duration::from_secs(60))
        })
    }

    /// Gives a host a blank disk under the same name and address, as a replacement machine
    /// would have: stopped (killed if it does not stop), its own layer and containerd state
    /// deleted, then booted with a new SSH host key (known_hosts follows) and machine id, and
    /// waited for until SSH answers.
    pub fn wipe(&self, name: &str) -> Result<()> {
        self.with_host(name, |lab, state| {
            host::stop(&lab.paths, state, name, Duration::from_secs(30))?;
            for dir in [
                lab.paths.host_upper(name),
                lab.paths.host_work(name),
                lab.paths.host_containerd(name),
            ] {
                if dir.exists() {
                    fs::remove_dir_all(&dir).context(|| format!("removing {}", dir.display()))?;
                }
            }
            let plan = state.plan.clone();
            let h = plan
                .host(name)
                .ok_or_else(|| LabError::Invalid(format!("{name} is not in the lab's plan")))?;
            host::mount_root(&lab.paths, name)?;
            let operator_key = lab.ensure_operator_key(&mut |_| {})?;
            host::write_host_files(&lab.paths, &plan, h, state.http_port, &operator_key)?;
            lab.write_known_hosts(&plan)?;
            Ok(())
        })?;
        self.start(name)
    }

    /// Crashes a host: SIGKILL to its PID 1.
    pub fn kill(&self, name: &str) -> Result<()> {
        self.with_host(name, |_, state| host::kill(state, name))
    }

    /// Boots a stopped or crashed host with its disk (and host key) as it was, and waits
    /// until SSH answers.
    pub fn start(&self, name: &str) -> Result<()> {
        self.with_host(name, |lab, state| {
            let hierarchies = sys::cgroup_hierarchies(&sys::mounts());
            host::start(&lab.paths, state, &hierarchies, name)?;
            let address = state.plan.host(name).map(|h| h.address);
            if let Some(address) = address
                && !sys::wait_until(Duration::from_secs(60), || {
                    net::ssh_answers(address, Duration::from_millis(500))
                })
            {
                return Err(LabError::Timeout(format!(
                    "{name} started but SSH does not answer; see {}",
                    lab.paths.host_console_log(name).display()
                )));
            }
            Ok(())
        })
    }

    /// Freezes every process of a running host: connections to it are accepted, then
    /// nothing answers (a host that stalls).
    pub fn freeze(&self, name: &str) -> Result<()> {
        self.set_frozen(name, true)
    }

    /// Thaws a host frozen by [`Lab::freeze`].
    pub fn thaw(&self, name: &str) -> Result<()> {
        self.set_frozen(name, false)
    }

    fn set_frozen(&self, name: &str, frozen: bool) -> Result<()> {
        self.with_host(name, |_, state| {
            if !host::is_running(state, name) {
                return Err(LabError::Invalid(format!(
                    "{name} is not running; `kubeforge lab start {name}` first"
                )));
            }
            host::freeze(
                state,
                &sys::cgroup_hierarchies(&sys::mounts()),
                name,
                frozen,
            )
        })
    }

    /// Cuts a running host off the network (its link on the bridge goes down).
    pub fn cut(&self, name: &str) -> Result<()> {
        self.set_cut(name, true)
    }

    /// Reconnects a host cut off by [`Lab::cut`].
    pub fn restore(&self, name: &str) -> Result<()> {
        self.set_cut(name, false)
    }

    /// Gives a host a fake active swap area in its own /proc/swaps (`active`), or takes it
    /// away: how a test shows a host with swap on without touching the machine's swap.
    pub fn set_swap(&self, name: &str, active: bool) -> Result<()> {
        self.with_host(name, |lab, _| host::write_swaps(&lab.paths, name, active))
    }

    fn set_cut(&self, name: &str, cut: bool) -> Result<()> {
        self.with_host(name, |_, state| {
            if !host::is_running(state, name) {
                return Err(LabError::Invalid(format!(
                    "{name} is not running; `kubeforge lab start {name}` first"
                )));
            }
            net::set_link(&state.slot.veth(name), !cut)?;
            state.host(name).cut = cut;
            Ok(())
        })
    }

    // -----------------------------------------------------------------------------------
    // status

    /// What runs and what answers.
    pub fn status(&self) -> Result<Status> {
        let state = self.state()?;
        let plan = &state.plan;
        let timeout = Duration::from_millis(700);
        let hosts = plan
            .hosts
            .iter()
            .map(|h| {
                let running = host::is_running(&state, &h.name);
                let veth = state.slot.veth(&h.name);
                HostStatus {
                    name: h.name.clone(),
                    fqdn: h.fqdn(),
                    role: h.role,
                    address: h.address.to_string(),
                    state: match (running, state.hosts.get(&h.name).is_some_and(|s| s.frozen)) {
                        (true, true) => "frozen",
                        (true, false) => "running",
                        (false, _) => "stopped",
                    }
                    .into(),
                    link: if !running {
                        "none"
                    } else if net::link_is_up(&veth) {
                        "up"
                    } else {
                        "cut"
                    }
                    .into(),
                    ssh: running && net::ssh_answers(h.address, timeout),
                    pid: state
                        .hosts
                        .get(&h.name)
                        .and_then(|s| s.nspawn)
                        .filter(|p| p.alive())
                        .map(|p| p.pid),
                }
            })
            .collect();
        let dns_name = format!("{ENDPOINT_NAME}.{DOMAIN}");
        let dns = ServiceStatus {
            name: "dns".into(),
            address: format!("{}:53", plan.bridge_ip),
            running: state.dnsmasq.is_some_and(|p| p.alive()),
            pid: state.dnsmasq.filter(|p| p.alive()).map(|p| p.pid),
            answers: dns::query_a(plan.bridge_ip, &dns_name, timeout)
                .is_ok_and(|a| a.addresses == [plan.vip]),
        };
        let http = ServiceStatus {
            name: "http".into(),
            address: format!("{}:{}", plan.bridge_ip, state.http_port),
            running: state.httpd.is_some_and(|p| p.alive()),
            pid: state.httpd.filter(|p| p.alive()).map(|p| p.pid),
            answers: net::http_answers(plan.bridge_ip, state.http_port, timeout),
        };
        Ok(Status {
            dir: self.paths.dir.display().to_string(),
            subnet: plan.subnet.to_string(),
            bridge: state.bridge.clone(),
            bridge_address: plan.bridge_ip.to_string(),
            vip: plan.vip.to_string(),
            domain: DOMAIN.into(),
            inventory: self.inventory().display().to_string(),
            hosts,
            services: vec![dns, http],
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub dir: String,
    pub subnet: String,
    pub bridge: String,
    pub bridge_address: String,
    pub vip: String,
    pub domain: String,
    pub inventory: String,
    pub hosts: Vec<HostStatus>,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub fqdn: String,
    pub role: Role,
    pub address: String,
    /// `running` or `stopped`.
    pub state: String,
    /// The host's link on the bridge: `up`, `cut` or `none` (not running).
    pub link: String,
    /// Whether its SSH server answers.
    pub ssh: bool,
    /// systemd-nspawn's pid.
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub address: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub answers: bool,
}

/// Where systemd-nspawn keeps a directory per host (for mounts into the running host).
const NSPAWN_PROPAGATE: &str = "/run/systemd/nspawn/propagate";

/// How long `lab down` waits for every process of the lab to be gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until every `tracked` process has left the process table (exited and reaped) and
/// the lab's cgroups hold no process; kills whatever is still running in those cgroups (a
/// host whose systemd-nspawn died before it). An error names each process left.
fn wait_for_exit(
    hierarchies: &[sys::Hierarchy],
    parent: &Path,
    tracked: &[ProcId],
    timeout: Duration,
) -> Result<()> {
    let mut left = Vec::new();
    let gone = sys::wait_until(timeout, || {
        let running = sys::cgroup_processes(hierarchies, parent);
        for proc in &running {
            let _ = sys::signal(proc.pid, "KILL");
        }
        left = tracked.iter().copied().filter(ProcId::exists).collect();
        for proc in running {
            if !left.contains(&proc) {
                left.push(proc);
            }
        }
        left.is_empty()
    });
    if gone {
        return Ok(());
    }
    Err(LabError::Timeout(format!(
        "processes of the lab are still there {} s after they were killed: {}",
        timeout.as_secs(),
        left.iter()
            .map(ProcId::describe)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// What went wrong in a best-effort sequence of steps (`lab down`).
#[derive(Debug, Default)]
struct Failures(Vec<String>);

impl Failures {
    /// Records the error, if any; returns whether the step succeeded.
    fn check<T>(&mut self, result: Result<T>) -> bool {
        self.value(result).is_some()
    }

    fn value<T>(&mut self, result: Result<T>) -> Option<T> {
        result.map_err(|e| self.0.push(e.to_string())).ok()
    }

    fn push(&mut self, failure: String) {
        self.0.push(failure);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown(self.0))
        }
    }
}

/// A directory for the lab as an absolute path that overlay mounts can carry (no `,`, `:`
/// or newline); `what` and `flag` name it in the error.
fn overlay_path(dir: &Path, what: &str, flag: &str) -> Result<PathBuf> {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .context(|| "reading the current directory".into())?
            .join(dir)
    };
    let text = dir.to_string_lossy();
    if text.contains([',', ':', '\n']) {
        return Err(LabError::Invalid(format!(
            "{what} {text:?} contains `,`, `:` or a newline, which overlay mounts cannot use; \
             choose another with {flag}"
        )));
    }
    Ok(dir)
}

/// The first slot whose bridge no lab of this machine uses (labs of other directories hold
/// the others).
fn free_slot() -> Result<Slot> {
    (0..Slot::COUNT)
        .map(Slot)
        .find(|slot| !net::link_exists(&slot.bridge()))
        .ok_or_else(|| {
            LabError::Invalid(format!(
                "{} labs are up on this machine already (bridges kfbr0 to kfbr{}); take one \
                 down first (`kubeforge lab down --dir DIR`)",
                Slot::COUNT,
                Slot::COUNT - 1
            ))
        })
}

fn preflight_root() -> Result<()> {
    if !cfg!(target_os = "linux") {
        return Err(LabError::NotLinux);
    }
    if !sys::is_root() {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

fn preflight() -> Result<()> {
    preflight_root()?;
    sys::require_programs(REQUIRED_PROGRAMS)?;
    if !fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay")
    {
        return Err(LabError::Invalid(
            "this kernel has no overlayfs (not in /proc/filesystems); the lab needs it".into(),
        ));
    }
    Ok(())
}

fn check_ip_forward(progress: &mut dyn FnMut(&str)) {
    if sys::read_sysctl("net.ipv4.ip_forward").as_deref() == Some("1") {
        progress(
            "note: this machine forwards IPv4 (net.ipv4.ip_forward=1); lab hosts still have \
             no route out (no gateway, no NAT)",
        );
    }
}

/// Puts the machine's sysctls and swap areas back as the lab found them.
fn restore_machine(state: &State, failed: &mut Failures, progress: &mut dyn FnMut(&str)) {
    let (restored, errors) = sys::restore_sysctls(&state.sysctls);
    if !restored.is_empty() {
        progress(&format!("machine sysctls restored: {}", restored.join(" ")));
    }
    errors.into_iter().for_each(|e| failed.push(e.to_string()));
    let (restored, errors) = sys::restore_swaps(&state.swaps);
    if !restored.is_empty() {
        progress(&format!(
            "machine swap turned back on: {}",
            restored.join(" ")
        ));
    }
    errors.into_iter().for_each(|e| failed.push(e.to_string()));
}
