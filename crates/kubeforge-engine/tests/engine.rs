//! The engine against simulated hosts: ordering, convergence, failure handling, secrets.
//!
//! A simulated host keeps files, packages, units, modules and sysctls in memory, answers the
//! facts script from them, and carries out the engine's own change scripts on them, as a stock
//! Debian host would: `net.bridge.*` does not exist until br_netfilter is loaded, a missing
//! sysctl is reported missing (not "0"), and writing one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubeforge_core::mask::find_leak;
use kubeforge_core::model;
use kubeforge_engine::fake::{FakeTransport, ok};
use kubeforge_engine::run::{HostError, Mode, Options, Silent, run};
use kubeforge_engine::transport::{ExecOutput, TransportError};

#[derive(Clone)]
struct Unit {
    enabled: bool,
    active: &'static str,
    sub: &'static str,
    since: i64,
}

#[derive(Default, Clone)]
struct Sim {
    name: String,
    address: String,
    /// Seconds since the epoch on this host; every change advances it.
    clock: i64,
    files: BTreeMap<String, (Vec<u8>, String, i64)>,
    /// Installed packages and their versions.
    packages: BTreeMap<String, String>,
    /// Key fingerprints in keyring files.
    keyrings: BTreeMap<String, String>,
    holds: BTreeSet<String>,
    units: BTreeMap<String, Unit>,
    stamps: BTreeMap<String, i64>,
    sysctls: BTreeMap<String, String>,
    modules: BTreeSet<String>,
    swap: Vec<String>,
    fstab_swap: Vec<String>,
    swap_units: BTreeSet<String>,
    /// Every systemctl action run, in order (`reload haproxy.service`).
    actions: Vec<String>,
    /// Scripts containing this text fail with the given stderr.
    fail_on: Option<(String, String)>,
    /// Validators reject every new file.
    reject_configs: bool,
    /// Sysctl writes are ignored (a kernel that refuses them).
    stubborn_sysctls: bool,
    /// This host takes the VIP once keepalived has run for this many fact queries.
    vip_after: Option<u32>,
    queries: u32,
}

fn sha256(bytes: &[u8]) -> String {
    kubeforge_core::hash::sha256_hex(bytes)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The files a facts line loops over: `for f in 'a' b; do`.
fn listed(line: &str) -> Vec<&str> {
    line.split("for f in ")
        .nth(1)
        .and_then(|r| r.split("; do").next())
        .map(|l| l.split_whitespace().map(|w| w.trim_matches('\'')).collect())
        .unwrap_or_default()
}

/// The word after `prefix` in `line`, unquoted.
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.split(prefix).nth(1)?;
    Some(
        rest.split([';', ' '])
            .next()
            .unwrap_or("")
            .trim_matches('\''),
    )
}

impl Sim {
    fn fresh(name: &str, address: &str) -> Self {
        Sim {
            name: name.to_string(),
            address: address.to_string(),
            clock: 1_000,
            sysctls: [("net.ipv4.ip_forward".to_string(), "0".to_string())].into(),
            ..Sim::default()
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn holds_vip(&self) -> bool {
        self.vip_after.is_some_and(|n| {
            self.queries >= n
                && self
                    .units
                    .get("keepalived.service")
                    .is_some_and(|u| u.active == "active")
        })
    }

    fn facts(&mut self, script: &str) -> String {
        self.queries += 1;
        let mut out = String::from(
            "@@kubeforge-facts 2\n@@os\nID=debian\nVERSION_ID=\"12\"\n@@uid\n0\n@@dpkg\nclean\n@@packages\n",
        );
        for (p, v) in &self.packages {
            let status = if self.holds.contains(p) { "hi" } else { "ii" };
            out.push_str(&format!("{p}\t{v}\t{status} \n"));
        }
        out.push_str("@@swap\n");
        for s in &self.swap {
            out.push_str(&format!("{s}\n"));
        }
        out.push_str("@@addresses\n");
        out.push_str(&format!(
            "2: eth0    inet {}/24 brd x scope global eth0\n",
            self.address
        ));
        if self.holds_vip() {
            out.push_str("2: eth0    inet 10.0.0.10/24 scope global secondary eth0\n");
        }
        for line in script.lines() {
            let header = line.split(';').next().unwrap_or("");
            let words: Vec<&str> = header.split_whitespace().collect();
            match words.as_slice() {
                ["echo", "@@swap-fstab"] => {
                    out.push_str("@@swap-fstab\n");
                    for s in &self.fstab_swap {
                        out.push_str(&format!("{s}\n"));
                    }
                }
                ["echo", "@@swap-units"] => {
                    out.push_str("@@swap-units\n");
                    for u in &self.swap_units {
                        out.push_str(&format!("{u} active\n"));
                    }
                }
                ["echo", "@@listening"] => {
                    out.push_str("@@listening\n");
                    if self
                        .units
                        .get("haproxy.service")
                        .is_some_and(|u| u.active == "active")
                    {
                        out.push_str("0.0.0.0:8443 users:((\"haproxy\",pid=80,fd=7))\n");
                    }
                }
                ["echo", "@@system"] => {
                    let n = self.address.rsplit('.').next().unwrap_or("0");
                    out.push_str(&format!(
                        "@@system\nclock {}.000000000\narch amd64\ncpu_list 0-1\nmemory_kb 4000000\ncgroupfs cgroup2fs\ncontainer none\nhostname {}\nproduct_uuid\nmachine_id 00000000000000000000000000000{n}\nmac eth0 52:54:00:00:00:{n}\n",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs(),
                        self.name
                    ));
                }
                ["echo", "@@resolve", name] => {
                    let ip = match *name {
                        "k8scp" => "10.0.0.10",
                        "k8scp01" => "10.0.0.11",
                        "k8scp02" => "10.0.0.12",
                        "k8scp03" => "10.0.0.13",
                        _ => "",
                    };
                    out.push_str(&format!("@@resolve {name}\n{ip}\n"));
                }
                ["echo", "@@keyring", path] => {
                    out.push_str(&format!("@@keyring {path}\n"));
                    if let Some(fpr) = self.keyrings.get(*path) {
                        out.push_str(&format!("{fpr}\n"));
                    }
                }
                ["echo", "@@kubeadm-images"] => {
                    out.push_str("@@kubeadm-images\n");
                    if let Some(v) = self.packages.get("kubeadm") {
                        let v = v.split('-').next().unwrap_or("");
                        out.push_str(&format!(
                            "version v{v}\nimage registry.k8s.io/kube-apiserver:v{v}\nimage registry.k8s.io/pause:3.10.2\n"
                        ));
                    }
                }
                ["echo", "@@probes", targets @ ..] => {
                    out.push_str(&format!("@@probes {}\n", targets.join(" ")));
                    for target in targets {
                        if *target == "10.0.0.10:8443" && self.holds_vip() {
                            out.push_str(&format!("{target}\n"));
                        }
                    }
                }
                ["echo", "@@sysctl", key] => {
                    let value = match self.sysctls.get(*key) {
                        Some(v) => format!("value {v}"),
                        None => "missing".into(),
                    };
                    out.push_str(&format!("@@sysctl {key}\n{value}\n"));
                }
                ["echo", "@@module", name] => {
                    let state = if self.modules.contains(*name) {
                        "loaded"
                    } else {
                        "missing"
                    };
                    out.push_str(&format!("@@module {name}\n{state}\n"));
                }
                ["echo", "@@files", paths @ ..] => {
                    out.push_str(&format!("@@files {}\n", paths.join(" ")));
                    for path in paths {
                        if let Some((content, mode, mtime)) = self.files.get(*path) {
                            out.push_str(&format!(
                                "{mode} root root {} {mtime} {path}\n",
                                content.len()
                            ));
                        }
                    }
                }
                ["echo", "@@contents"] => {
                    let present: Vec<&str> = listed(line)
                        .into_iter()
                        .filter(|p| self.files.contains_key(*p))
                        .collect();
                    let all: Vec<u8> = present
                        .iter()
                        .flat_map(|p| self.files[*p].0.clone())
                        .collect();
                    out.push_str(&format!(
                        "@@contents\n{}\n{}\n",
                        present.join(" "),
                        b64(&all)
                    ));
                }
                ["echo", "@@sums"] => {
                    out.push_str("@@sums\n");
                    for path in listed(line) {
                        if let Some((content, _, _)) = self.files.get(path) {
                            out.push_str(&format!("{}  {path}\n", sha256(content)));
                        }
                    }
                }
                ["echo", "@@masked", path] => {
                    out.push_str(&format!("@@masked {path}\n"));
                    if let Some((content, _, _)) = self.files.get(*path) {
                        let masked = kubeforge_core::mask::mask_line_values(
                            &String::from_utf8_lossy(content),
                        );
                        out.push_str(&b64(masked.as_bytes()));
                    }
                    out.push('\n');
                }
                ["echo", "@@extract", path, key] => {
                    out.push_str(&format!("@@extract {path} {key}\n"));
                    if let Some((content, _, _)) = self.files.get(*path) {
                        let text = String::from_utf8_lossy(content);
                        if let Some(v) = text
                            .lines()
                            .find_map(|l| l.trim().strip_prefix(&format!("{key} ")))
                        {
                            out.push_str(&format!("{}\n", v.trim()));
                        }
                    }
                }
                ["echo", "@@units", units @ ..] => {
                    // Units without a unit file are left out of systemctl's answer; the
                    // fake host runs systemd-timesyncd.
                    let timesyncd = Unit {
                        active: "active",
                        sub: "running",
                        enabled: true,
                        since: 1,
                    };
                    let found: Vec<(&str, &Unit)> = units
                        .iter()
                        .filter_map(|u| match *u {
                            "systemd-timesyncd.service" => Some((*u, &timesyncd)),
                            _ => self.units.get(*u).map(|state| (*u, state)),
                        })
                        .collect();
                    out.push_str(&format!("@@units {}\n", units.join(" ")));
                    let names: Vec<&str> = found.iter().map(|(u, _)| *u).collect();
                    out.push_str(&format!("{}\n", names.join(" ")));
                    for (_, u) in found {
                        out.push_str(&format!(
                            "LoadState=loaded\nActiveState={}\nSubState={}\nUnitFileState={}\nActiveEnterTimestamp=@{}\n\n",
                            u.active,
                            u.sub,
                            if u.enabled { "enabled" } else { "disabled" },
                            u.since
                        ));
                    }
                }
                ["echo", "@@stamps"] => {
                    out.push_str("@@stamps\n");
                    for (unit, t) in &self.stamps {
                        out.push_str(&format!("{unit} {t}\n"));
                    }
                }
                _ => {}
            }
        }
        out.push_str("@@end\n");
        out
    }

    fn fail(script: &str, upto: &str, stderr: &str) -> Result<ExecOutput, TransportError> {
        // Fail in the change that contains `upto`, as `set -e` would, with the markers before.
        let mut err = String::new();
        for line in script.lines() {
            if line.starts_with("echo '@@change") {
                err.push_str(&format!(
                    "{}\n",
                    line.trim_start_matches("echo '").trim_end_matches("' >&2")
                ));
            }
            if line.contains(upto) {
                break;
            }
        }
        err.push_str(stderr);
        Ok(ExecOutput {
            code: Some(1),
            stdout: Vec::new(),
            stderr: err.into_bytes(),
        })
    }

    fn apply(&mut self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        // Each change runs as `timeout N sh -c '<its script>'`: its lines as they are, but for
        // the quotes in them.
        let script = &script.replace("'\\''", "'");
        if let Some((needle, stderr)) = &self.fail_on
            && script.contains(needle.as_str())
        {
            return Self::fail(script, needle, stderr);
        }
        let mut offset = 0;
        // A file being written: (length, mode).
        let mut pending: Option<(usize, String)> = None;
        for line in script.lines() {
            let line = line.trim();
            if let Some(n) = after(line, "head -c ") {
                pending = Some((n.parse().unwrap(), String::new()));
            } else if line.contains("\"$t\"") && line.contains(" -f \"$t\"") && self.reject_configs
            {
                return Self::fail(script, line, "[ALERT] config: parsing error");
            } else if let Some(mode) = line
                .strip_prefix("chmod ")
                .filter(|_| line.contains("\"$t\""))
            {
                if let Some(p) = pending.as_mut() {
                    p.1 = mode.split_whitespace().next().unwrap().to_string();
                }
            } else if let Some(path) = line.strip_prefix("mv -f \"$t\" ") {
                let (len, mode) = pending.take().unwrap();
                let now = self.tick();
                self.files.insert(
                    path.trim_matches('\'').to_string(),
                    (stdin[offset..offset + len].to_vec(), mode, now),
                );
                offset += len;
            } else if line.contains("apt-get install") {
                let names = line.rsplit("--force-confold ").next().unwrap();
                for spec in names.split_whitespace() {
                    let spec = spec.trim_matches('\'');
                    let (name, version) = spec.split_once('=').unwrap_or((spec, "1.0"));
                    // The newest version a pattern matches, as apt picks it.
                    let version = match version {
                        "2.*" => "2.2.1-1~debian.12~bookworm".to_string(),
                        v if v.ends_with(".*") => format!("{}.1-1.1", v.trim_end_matches(".*")),
                        v if v.ends_with("-*") => format!("{}1.1", v.trim_end_matches('*')),
                        v => v.to_string(),
                    };
                    self.packages.insert(name.to_string(), version);
                }
            } else if let Some(path) = line.strip_prefix("install -D -m 644 \"$t/key.gpg\" ") {
                let fpr = script
                    .split("grep -qix ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                self.keyrings
                    .insert(path.trim_matches('\'').to_string(), fpr);
            } else if let Some(rest) = line.strip_prefix("apt-mark hold ") {
                self.holds.extend(
                    rest.split_whitespace()
                        .filter(|w| !w.starts_with('>'))
                        .map(String::from),
                );
            } else if let Some(unit) = after(line, "systemctl enable -q ") {
                let since = self.clock;
                self.units
                    .entry(unit.to_string())
                    .or_insert(Unit {
                        enabled: false,
                        active: "inactive",
                        sub: "dead",
                        since,
                    })
                    .enabled = true;
            } else if let Some(rest) = line.strip_prefix("systemctl ") {
                let mut words = rest.split_whitespace();
                let (verb, unit) = (words.next().unwrap(), words.next().unwrap_or(""));
                let now = self.tick();
                match verb {
                    "start" | "restart" => {
                        let u = self.units.entry(unit.to_string()).or_insert(Unit {
                            enabled: false,
                            active: "inactive",
                            sub: "dead",
                            since: now,
                        });
                        u.active = "active";
                        u.sub = "running";
                        u.since = now;
                    }
                    "mask" => {
                        for u in rest.split_whitespace().skip(2) {
                            self.swap_units.remove(u);
                        }
                    }
                    _ => {}
                }
                self.actions.push(format!("{verb} {unit}"));
                if let Some(stamp) = after(line, "touch /var/lib/kubeforge/stamps/") {
                    self.stamps.insert(stamp.to_string(), now);
                }
            } else if let Some(kv) = line.strip_prefix("sysctl -q -w ") {
                let (k, v) = kv.trim_matches('\'').split_once('=').unwrap();
                if !self.sysctls.contains_key(k) {
                    let path = format!("/proc/sys/{}", k.replace('.', "/"));
                    return Self::fail(
                        script,
                        line,
                        &format!("sysctl: cannot stat {path}: No such file or directory"),
                    );
                }
                if !self.stubborn_sysctls {
                    self.sysctls.insert(k.to_string(), v.to_string());
                }
            } else if let Some(module) = line.strip_prefix("modprobe ") {
                self.modules.insert(module.to_string());
                if module == "br_netfilter" {
                    for k in [
                        "net.bridge.bridge-nf-call-iptables",
                        "net.bridge.bridge-nf-call-ip6tables",
                    ] {
                        self.sysctls.entry(k.to_string()).or_insert("0".into());
                    }
                }
            } else if line == "swapoff -a" {
                self.swap.clear();
            } else if line.starts_with("sed -i.kubeforge") && line.contains("/etc/fstab") {
                self.fstab_swap.clear();
            }
        }
        // What captured commands print, between the markers the engine reads.
        let mut stdout = String::new();
        let lines: Vec<&str> = script.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(k) = line
                .strip_prefix("echo '@@capture ")
                .and_then(|r| r.strip_suffix('\''))
            {
                stdout.push_str(&format!("@@capture {k}\n"));
                if lines[i..]
                    .iter()
                    .take(4)
                    .any(|l| l.contains("dpkg-query -W -f='${Version}"))
                {
                    let v = self.packages.get("kubeadm").cloned().unwrap_or_default();
                    stdout.push_str(&format!("{v}\n"));
                }
                stdout.push_str(&format!("@@capture-end {k}\n"));
            }
        }
        ok(&stdout)
    }
}

const INVENTORY: &str = "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\n";

/// Runs `work` with time paused: timers fire as soon as nothing else can run.
fn paused<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(work)
}

struct Lab {
    cluster: model::Cluster,
    sims: BTreeMap<String, Arc<Mutex<Sim>>>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl Lab {
    fn new() -> Self {
        let cluster = model::load(INVENTORY).cluster.unwrap();
        let sims = cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    n.node_name.clone(),
                    Arc::new(Mutex::new(Sim {
                        // keepalived elects k8scp01, a moment after it starts.
                        vip_after: (n.node_name == "k8scp01").then_some(0),
                        ..Sim::fresh(&n.node_name, &n.ip().unwrap().to_string())
                    })),
                )
            })
            .collect();
        Self {
            cluster,
            sims,
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn sim(&self, host: &str) -> std::sync::MutexGuard<'_, Sim> {
        self.sims[host].lock().unwrap()
    }

    fn transports(&self) -> BTreeMap<String, FakeTransport> {
        self.sims
            .iter()
            .map(|(name, sim)| {
                let sim = sim.clone();
                let t = FakeTransport::new(name, self.calls.clone(), move |script, stdin| {
                    let mut sim = sim.lock().unwrap();
                    if script.contains("@@kubeforge-facts") {
                        ok(&sim.facts(script))
                    } else {
                        sim.apply(script, stdin)
                    }
                });
                (name.clone(), t)
            })
            .collect()
    }

    fn options(&self, mode: Mode, log_dir: Option<std::path::PathBuf>) -> Options {
        Options {
            mode,
            parallel: 8,
            log_dir,
            holder: "test run".into(),
            bundle: None,
            // The simulated hosts run no kubeadm: the cluster's phases are the lab's to test.
            until: Some("runtime"),
            job: Box::new(kubeforge_core::steps::Build),
        }
    }

    /// Runs the engine with these transports (time paused: timers fire as soon as nothing
    /// else can run).
    fn run_with(
        &self,
        transports: &BTreeMap<String, FakeTransport>,
        options: &Options,
    ) -> kubeforge_engine::Report {
        paused(run(&self.cluster, transports, options, &Silent))
    }

    /// Gathers the facts only ([`kubeforge_engine::gather`]), time paused.
    fn gather_with(
        &self,
        transports: &BTreeMap<String, FakeTransport>,
        options: &Options,
    ) -> kubeforge_engine::Report {
        paused(kubeforge_engine::gather(
            &self.cluster,
            transports,
            options,
            &Silent,
        ))
    }

    fn run(&self, mode: Mode, log_dir: Option<std::path::PathBuf>) -> kubeforge_engine::Report {
        self.calls.lock().unwrap().clear();
        let transports = self.transports();
        self.run_with(&transports, &self.options(mode, log_dir))
    }

    fn change_scripts(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| !s.contains("@@kubeforge-facts"))
            .cloned()
            .collect()
    }

    fn converge(&self) {
        let report = self.run(Mode::Apply, None);
        assert!(report.errors.is_empty(), "{:#?}", report.errors);
    }
}

#[test]
fn plan_changes_nothing_and_lists_every_change() {
    let lab = Lab::new();
    let report = lab.run(Mode::Plan, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(lab.change_scripts().is_empty(), "plan ran a change");
    assert_eq!(
        report.phases.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["prepare", "load-balancer", "runtime"]
    );
    let cp1 = &report.phases[1].hosts[0];
    assert_eq!(cp1.host, "k8scp01");
    let summaries: Vec<&str> = cp1.changes.iter().map(|c| c.summary.as_str()).collect();
    assert!(
        summaries.contains(&"create /etc/haproxy/haproxy.cfg"),
        "{summaries:?}"
    );
    assert!(summaries.contains(&"install keepalived"));
    assert_eq!(
        report.round_trips.values().copied().collect::<Vec<_>>(),
        [1, 1, 1, 1]
    );
}

#[test]
fn apply_converges_and_a_second_apply_changes_nothing_in_one_round_trip_per_host() {
    let lab = Lab::new();
    let first = lab.run(Mode::Apply, None);
    assert!(first.errors.is_empty(), "{:#?}", first.errors);
    assert!(first.change_count() > 0);
    assert_eq!(
        lab.sim("k8scp02").units["keepalived.service"].active,
        "active"
    );
    assert_eq!(lab.sim("k8s01").sysctls["net.ipv4.ip_forward"], "1");
    assert!(
        !lab.sim("k8s01").packages.contains_key("haproxy"),
        "workers get no load balancer"
    );

    let second = lab.run(Mode::Apply, None);
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.change_count(), 0);
    assert_eq!(
        second.round_trips.values().copied().collect::<Vec<_>>(),
        [1, 1, 1, 1]
    );
    assert!(lab.change_scripts().is_empty());
}

/// On stock Debian br_netfilter is a module: `net.bridge.*` appears only once it is loaded,
/// so writing those sysctls first fails.
#[test]
fn br_netfilter_is_loaded_before_the_bridge_sysctls_are_set() {
    let lab = Lab::new();
    assert!(
        !lab.sim("k8s01")
            .sysctls
            .contains_key("net.bridge.bridge-nf-call-iptables")
    );
    lab.converge();
    let sim = lab.sim("k8s01");
    assert!(sim.modules.contains("br_netfilter"));
    assert_eq!(sim.sysctls["net.bridge.bridge-nf-call-iptables"], "1");
}

#[test]
fn the_load_balancer_phase_ends_once_exactly_one_node_holds_the_vip() {
    let lab = Lab::new();
    // keepalived elects only after a few more queries of its facts.
    lab.sim("k8scp01").vip_after = Some(40);
    let report = lab.run(Mode::Apply, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let waits = &report.phases[1].waits;
    assert!(
        waits.len() == 1 && waits[0].contains("until exactly one control-plane node holds the VIP 10.0.0.10 and 10.0.0.10:8443 answers"),
        "{waits:?}"
    );
    assert!(lab.sim("k8scp01").holds_vip());
    // Settled: the next run checks it in its one round trip and waits for nothing.
    let again = lab.run(Mode::Apply, None);
    assert_eq!(again.change_count(), 0, "{:?}", again.phases[1].waits);

    // Two holders (split brain) never settle: apply says so after its deadline.
    lab.sim("k8scp02").vip_after = Some(0);
    let split = lab.run(Mode::Apply, None);
    let text = split.errors[0].to_string();
    assert!(
        text.starts_with(
            "phase load-balancer: waited 60 s until exactly one control-plane node holds the VIP"
        ) && text.contains("k8scp01 and k8scp02 hold the VIP 10.0.0.10 at once"),
        "{text}"
    );
    let plan = lab.run(Mode::Plan, None);
    assert_eq!(
        plan.phases[1].waits,
        [
            "wait until exactly one control-plane node holds the VIP 10.0.0.10 and 10.0.0.10:8443 answers"
        ]
    );
}

#[test]
fn preflight_judges_every_host_before_any_change() {
    let lab = Lab::new();
    lab.sim("k8s01").name = "debian".into();
    lab.sim("k8scp02").swap = vec!["/swapfile".into()];
    let report = lab.run(Mode::Apply, None);
    assert_eq!(report.stopped_after.as_deref(), Some("preflight"));
    assert!(lab.change_scripts().is_empty(), "nothing changed");
    let text: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        text,
        [
            "k8s01: preflight hostname: the host calls itself \"debian\", the inventory \"k8s01\"; fix: run `hostnamectl set-hostname k8s01` on it, or correct the inventory"
        ],
        "swap is not in the way: apply turns it off"
    );
    // Plan shows the verdicts and plans on.
    let plan = lab.run(Mode::Plan, None);
    assert!(plan.errors.is_empty());
    assert!(
        plan.preflight
            .iter()
            .any(|v| v.host == "k8scp02" && v.check == "swap" && v.apply_fixes)
    );
    lab.sim("k8s01").name = "k8s01".into();
    lab.converge();
    assert!(lab.sim("k8scp02").swap.is_empty());
}

/// The first control-plane node finds the newest patch of the minor; every other node then
/// installs exactly that version, which a value carries from one host to the others.
#[test]
fn the_kubernetes_version_found_on_the_first_node_is_installed_everywhere() {
    let lab = Lab::new();
    lab.converge();
    for host in ["k8scp01", "k8scp02", "k8scp03", "k8s01"] {
        let sim = lab.sim(host);
        assert_eq!(sim.packages["kubeadm"], "1.37.1-1.1", "{host}");
        assert!(sim.holds.contains("kubelet"), "{host}");
        assert_eq!(sim.units["containerd.service"].active, "active");
        assert!(
            sim.units["kubelet.service"].enabled && sim.units["kubelet.service"].active != "active"
        );
    }
    // The first node alone asked apt for the newest patch; the others got it exactly.
    let installs: Vec<(String, String)> = lab
        .change_scripts()
        .into_iter()
        .filter(|(_, s)| s.contains("install -y") && s.contains("kubeadm"))
        .collect();
    assert_eq!(installs[0].0, "k8scp01");
    assert!(
        installs[0].1.contains("'kubeadm=1.37.*'"),
        "{}",
        installs[0].1
    );
    assert!(
        installs[1..]
            .iter()
            .all(|(_, s)| s.contains("'kubeadm=1.37.1-1.1'"))
    );
    assert_eq!(installs.len(), 4);
    // Settled: the next run finds the version on the nodes and changes nothing.
    assert_eq!(lab.run(Mode::Apply, None).change_count(), 0);
}

#[test]
fn a_phase_waits_for_the_one_before() {
    let lab = Lab::new();
    lab.converge();
    let scripts = lab.change_scripts();
    let last_prepare = scripts
        .iter()
        .rposition(|(_, s)| s.contains("sysctl -q -w") || s.contains("ebtables"))
        .unwrap();
    let first_lb = scripts
        .iter()
        .position(|(_, s)| s.contains("haproxy"))
        .unwrap();
    assert!(
        last_prepare < first_lb,
        "prepare must finish on every host before the load balancer starts"
    );
}

#[test]
fn a_failing_step_names_host_step_command_and_stderr_and_stops_after_the_phase() {
    let lab = Lab::new();
    lab.sim("k8s01").fail_on = Some((
        "apt-get install".into(),
        "E: Unable to locate package ebtables".into(),
    ));
    let report = lab.run(Mode::Apply, None);
    assert_eq!(report.errors.len(), 1);
    let HostError::Step {
        host,
        step,
        command,
        status,
        stderr,
    } = &report.errors[0]
    else {
        panic!("{:?}", report.errors)
    };
    assert_eq!(
        (host.as_str(), step.as_str(), status.as_str()),
        ("k8s01", "base-packages", "1")
    );
    assert!(command.contains("apt-get install"), "{command}");
    assert_eq!(stderr, "E: Unable to locate package ebtables");
    // The other hosts finished the phase...
    assert!(lab.sim("k8scp03").packages.contains_key("ebtables"));
    // ...and the next phase did not start.
    assert_eq!(report.stopped_after.as_deref(), Some("prepare"));
    assert!(!lab.sim("k8scp01").packages.contains_key("haproxy"));

    // Once the problem is gone, a re-run converges.
    lab.sim("k8s01").fail_on = None;
    lab.converge();
    assert_eq!(lab.run(Mode::Apply, None).change_count(), 0);
}

#[test]
fn apply_fails_loudly_when_a_change_does_not_stick() {
    let lab = Lab::new();
    lab.sim("k8scp02").stubborn_sysctls = true;
    let report = lab.run(Mode::Apply, None);
    assert_eq!(report.errors.len(), 1);
    let text = report.errors[0].to_string();
    assert!(text.starts_with("k8scp02: after apply, phase prepare still has changes to make: sysctls: set net.ipv4.ip_forward = 1"), "{text}");
}

#[test]
fn an_invalid_configuration_is_never_put_in_place() {
    let lab = Lab::new();
    lab.converge();
    let before = lab.sim("k8scp02").files["/etc/haproxy/haproxy.cfg"].clone();
    // The next run wants another haproxy.cfg (here: the file was edited by hand), and the
    // validator refuses it.
    {
        let mut sim = lab.sim("k8scp02");
        sim.files.get_mut("/etc/haproxy/haproxy.cfg").unwrap().0 = b"edited\n".to_vec();
        sim.reject_configs = true;
    }
    let report = lab.run(Mode::Apply, None);
    let text = report.errors[0].to_string();
    assert!(text.starts_with("k8scp02: step haproxy failed"), "{text}");
    assert!(text.contains("[ALERT] config: parsing error"), "{text}");
    assert_eq!(
        lab.sim("k8scp02").files["/etc/haproxy/haproxy.cfg"].0,
        b"edited\n"
    );
    assert!(
        !lab.sim("k8scp02")
            .actions
            .iter()
            .any(|a| a.contains("reload haproxy"))
    );
    lab.sim("k8scp02").reject_configs = false;
    lab.converge();
    assert_eq!(
        lab.sim("k8scp02").files["/etc/haproxy/haproxy.cfg"].0,
        before.0
    );
}

#[test]
fn running_load_balancers_are_reloaded_one_node_at_a_time() {
    let lab = Lab::new();
    lab.converge();
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        let mut sim = lab.sim(host);
        sim.actions.clear();
        sim.files.get_mut("/etc/haproxy/haproxy.cfg").unwrap().0 = b"old\n".to_vec();
    }
    lab.converge();
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        assert_eq!(lab.sim(host).actions, ["reload haproxy.service"], "{host}");
    }
    // Each node's step and the facts gathered after it, before the next node starts: the
    // hosts' calls from the first reload on come in one block per host.
    let calls = lab.calls.lock().unwrap().clone();
    let start = calls
        .iter()
        .position(|(_, s)| s.contains("systemctl reload haproxy"))
        .unwrap();
    let mut blocks: Vec<&str> = calls[start..].iter().map(|(h, _)| h.as_str()).collect();
    blocks.dedup();
    assert_eq!(blocks, ["k8scp01", "k8scp02", "k8scp03"]);
}

#[test]
fn a_daemon_still_on_an_old_configuration_is_reloaded() {
    let lab = Lab::new();
    lab.converge();
    // A run killed after writing keepalived.conf and before reloading keepalived: the file
    // is right, but newer than the daemon's last (re)load.
    {
        let mut sim = lab.sim("k8scp03");
        let later = sim.tick();
        sim.files
            .get_mut("/etc/keepalived/keepalived.conf")
            .unwrap()
            .2 = later;
        sim.actions.clear();
    }
    let report = lab.run(Mode::Apply, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(lab.sim("k8scp03").actions, ["reload keepalived.service"]);
    assert_eq!(lab.run(Mode::Apply, None).change_count(), 0);
}

#[test]
fn a_crash_looping_service_is_not_taken_for_running() {
    let lab = Lab::new();
    lab.converge();
    {
        let mut sim = lab.sim("k8scp01");
        let unit = sim.units.get_mut("haproxy.service").unwrap();
        unit.active = "activating";
        unit.sub = "auto-restart";
    }
    let report = lab.run(Mode::Apply, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let summaries: Vec<&str> = report.phases[1].hosts[0]
        .changes
        .iter()
        .map(|c| c.summary.as_str())
        .collect();
    assert!(
        summaries.contains(&"restart haproxy.service (it is activating (auto-restart))"),
        "{summaries:?}"
    );
}

#[test]
fn swap_that_would_come_back_at_boot_is_disabled_too() {
    let lab = Lab::new();
    {
        let mut sim = lab.sim("k8s01");
        sim.swap = vec!["/dev/vda3".into()];
        sim.fstab_swap = vec!["UUID=9c1e".into()];
        sim.swap_units.insert("dev-vda3.swap".into());
    }
    lab.converge();
    let sim = lab.sim("k8s01");
    assert!(sim.swap.is_empty() && sim.fstab_swap.is_empty() && sim.swap_units.is_empty());
}

#[test]
fn a_step_that_hangs_times_out_with_its_host_and_step() {
    let lab = Lab::new();
    let calls = lab.calls.clone();
    let mut transports = lab.transports();
    let sim = lab.sims["k8s01"].clone();
    let hang = FakeTransport::new("k8s01", calls, move |script, stdin| {
        let mut sim = sim.lock().unwrap();
        if script.contains("@@kubeforge-facts") {
            ok(&sim.facts(script))
        } else {
            sim.apply(script, stdin)
        }
    })
    .delay_when("apt-get install", Duration::from_secs(100_000));
    transports.insert("k8s01".into(), hang);
    let report = lab.run_with(&transports, &lab.options(Mode::Apply, None));
    let text = report.errors[0].to_string();
    assert!(
        text.starts_with("k8s01: step base-packages: no answer within 900 s"),
        "{text}"
    );
}

#[test]
fn a_held_run_lock_stops_apply_before_anything_but_not_plan() {
    let lab = Lab::new();
    let transports = lab.transports();
    *transports["k8scp02"].locked_by.lock().unwrap() = Some("kubeforge run by ops@laptop".into());
    let report = lab.run_with(&transports, &lab.options(Mode::Apply, None));
    assert_eq!(report.stopped_after.as_deref(), Some("lock"));
    assert!(
        report.errors[0]
            .to_string()
            .contains("k8scp02: another kubeforge run holds the lock on this host (held by kubeforge run by ops@laptop)"),
        "{:?}",
        report.errors
    );
    assert!(lab.change_scripts().is_empty());
    let plan = lab.run_with(&transports, &lab.options(Mode::Plan, None));
    assert!(plan.errors.is_empty());
}

#[test]
fn the_vrrp_secret_stays_out_of_errors_and_logs_even_encoded_and_is_kept_across_runs() {
    let lab = Lab::new();
    let dir = std::env::temp_dir().join(format!("kubeforge-engine-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    lab.run(Mode::Apply, Some(dir.clone()));
    let conf = |host: &str| {
        String::from_utf8(
            lab.sim(host).files["/etc/keepalived/keepalived.conf"]
                .0
                .clone(),
        )
        .unwrap()
    };
    let secret = conf("k8scp01")
        .lines()
        .find_map(|l| l.trim().strip_prefix("auth_pass ").map(str::to_string))
        .unwrap();
    assert_eq!(secret.len(), 8);
    assert!(
        conf("k8scp02").contains(&format!("auth_pass {secret}")),
        "every control-plane node shares it"
    );
    assert_eq!(
        lab.sim("k8scp01").files["/etc/keepalived/keepalived.conf"].1,
        "600"
    );

    // A failing reload whose stderr quotes the secret, plain and base64-encoded: the error
    // shows neither.
    {
        let mut sim = lab.sim("k8scp03");
        sim.files.get_mut("/etc/haproxy/haproxy.cfg").unwrap().0 = b"old\n".to_vec();
        sim.fail_on = Some((
            "systemctl reload haproxy".into(),
            format!(
                "bad config near auth_pass {secret}\ndump: {}",
                b64(format!("x{secret}y").as_bytes())
            ),
        ));
    }
    let report = lab.run(Mode::Apply, Some(dir.clone()));
    assert!(!report.errors.is_empty());
    let text = format!(
        "{:?} {}",
        report.errors,
        serde_json::to_string(&report).unwrap()
    );
    assert_eq!(find_leak(&text, &secret), None, "{text}");
    assert!(text.contains("auth_pass ********"));
    let mut runs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let log = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert_eq!(find_leak(&log, &secret), None, "{log}");
        runs = runs.max(log.matches("==== kubeforge apply").count());
        // The facts as parsed, a JSON line after each gathering.
        let facts: Vec<&str> = log
            .split("-- facts\n")
            .skip(1)
            .filter_map(|rest| rest.lines().next())
            .collect();
        assert!(!facts.is_empty(), "{log}");
        for line in facts {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("facts in the log are not JSON ({e}): {line}"));
            assert!(value["units"].is_object(), "{line}");
        }
    }
    assert_eq!(runs, 2, "logs are appended to, run after run");
    let _ = std::fs::remove_dir_all(&dir);
    // A later run keeps the password it finds on the hosts.
    lab.sim("k8scp03").fail_on = None;
    lab.converge();
    assert!(conf("k8scp03").contains(&format!("auth_pass {secret}")));
}

#[test]
fn an_unreachable_host_stops_the_run_before_any_change() {
    let lab = Lab::new();
    let calls = lab.calls.clone();
    let mut transports = lab.transports();
    transports.insert(
        "k8scp03".into(),
        FakeTransport::new("k8scp03", calls, |_, _| {
            Err(TransportError::Connect(
                "ssh: connect to host 10.0.0.13 port 22: No route to host".into(),
            ))
        }),
    );
    let report = lab.run_with(&transports, &lab.options(Mode::Apply, None));
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        report.errors[0].to_string(),
        "k8scp03: cannot connect: ssh: connect to host 10.0.0.13 port 22: No route to host"
    );
    assert_eq!(report.stopped_after.as_deref(), Some("facts"));
    assert!(lab.change_scripts().is_empty());
}

#[test]
fn a_host_without_a_transport_is_reported_not_a_panic() {
    let lab = Lab::new();
    let mut transports = lab.transports();
    transports.remove("k8s01");
    let report = lab.run_with(&transports, &lab.options(Mode::Plan, None));
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        report.errors[0].to_string(),
        "k8s01: no connection to this host was given"
    );
    assert!(
        lab.calls.lock().unwrap().is_empty(),
        "nothing runs when a host is missing"
    );
}

/// A read-only look at hosts some of which do not answer: only the hosts given are asked, in
/// one round trip each, no lock is taken and nothing changes; their facts come back in the
/// report (as they do from every run).
#[test]
fn gather_reads_only_the_hosts_given_and_keeps_their_facts() {
    let lab = Lab::new();
    let mut transports = lab.transports();
    transports.remove("k8s01");
    let options = lab.options(Mode::Plan, None);
    let report = lab.gather_with(&transports, &options);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.phases.is_empty() && report.preflight.is_empty());
    assert_eq!(
        report.facts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["k8scp01", "k8scp02", "k8scp03"]
    );
    assert_eq!(
        report.round_trips.values().copied().collect::<Vec<_>>(),
        [1, 1, 1]
    );
    let calls = lab.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|(_, s)| s.contains("@@kubeforge-facts") && !s.contains("flock")),
        "{calls:?}"
    );
    // Apply's run gives its facts too, and gather refuses to stand in for it.
    let applied = lab.run(Mode::Plan, None);
    assert_eq!(applied.facts.len(), 4);
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(kubeforge_engine::gather(
            &lab.cluster,
            &transports,
            &lab.options(Mode::Apply, None),
            &Silent,
        ));
    assert!(refused.facts.is_empty() && refused.stopped_after.is_some());
}

/// A host's clock is judged against the whole time its facts took: a script that started 52 s
/// after it was sent (it waited for the run lock a killed run's batch held) read a right clock.
#[test]
fn a_clock_is_wrong_only_outside_the_time_its_facts_took() {
    use kubeforge_engine::run::clock_offset;
    let (sent, received) = (1_000_000, 1_060_000);
    assert_eq!(clock_offset(sent + 52_600, sent, received), 0);
    assert_eq!(clock_offset(sent, sent, received), 0);
    assert_eq!(clock_offset(received, sent, received), 0);
    assert_eq!(clock_offset(received + 30_000, sent, received), 30_000);
    assert_eq!(clock_offset(sent - 45_000, sent, received), -45_000);
}

/// The cluster's facts, as a control-plane node that reads a live cluster (`live`) answers
/// them, added to what a simulated host answers.
fn with_cluster(answer: String, node: &str, live: bool) -> String {
    let b64 = |v: serde_json::Value| b64(v.to_string().as_bytes());
    let objects = b64(
        serde_json::json!({"items": [{"kind": "Node", "metadata": {"name": node},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}),
    );
    let members = b64(serde_json::json!({"members": [{"ID": 1, "name": node,
        "peerURLs": ["https://10.0.0.11:2380"]}]}));
    let section = if live {
        format!(
            "@@kubeadm\nfile /etc/kubernetes/admin.conf\nfile /etc/kubernetes/pki/ca.crt\netcd-data\n@@cluster\nreadyz ok\nobjects {objects}\nmembers {members}\n"
        )
    } else {
        "@@cluster\nnone\n".to_string()
    };
    answer.replace("@@end", &format!("{section}@@end"))
}

/// One control-plane node's view of the cluster serves every node's query that takes any
/// view (here `backup`'s look): the first control-plane node is asked, the others only when it
/// does not read a live cluster, in a second round trip.
#[test]
fn the_cluster_is_read_on_the_first_control_plane_node_and_elsewhere_only_when_it_cannot() {
    for live in [true, false] {
        let lab = Lab::new();
        let transports: BTreeMap<String, FakeTransport> = lab
            .sims
            .iter()
            .map(|(name, sim)| {
                let (sim, host) = (sim.clone(), name.clone());
                let t = FakeTransport::new(name, lab.calls.clone(), move |script, _| {
                    let facts = sim.lock().unwrap().facts(script);
                    ok(&if host == "k8scp01" && script.contains("echo @@cluster") {
                        with_cluster(facts, &host, live)
                    } else {
                        facts
                    })
                });
                (name.clone(), t)
            })
            .collect();
        let options = Options {
            job: Box::new(kubeforge_core::steps::backup::BACKUP_JOB),
            until: None,
            ..lab.options(Mode::Plan, None)
        };
        let report = lab.gather_with(&transports, &options);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let calls = lab.calls.lock().unwrap().clone();
        let asked = |host: &str| -> Vec<bool> {
            calls
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, s)| s.contains("echo @@cluster"))
                .collect()
        };
        assert_eq!(asked("k8scp01"), [true], "live: {live}");
        let others: &[bool] = if live { &[false] } else { &[false, true] };
        assert_eq!(asked("k8scp02"), others, "live: {live}");
        assert_eq!(asked("k8scp03"), others, "live: {live}");
        assert!(report.facts["k8scp01"].cluster.is_some() == live);
    }
}
