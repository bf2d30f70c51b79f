//! The engine against simulated hosts: ordering, convergence, failure handling, secrets.
//!
//! A simulated host keeps files, packages, units and sysctls in memory, answers the facts
//! script from them, and carries out the engine's own change scripts (file writes, apt-get
//! install, systemctl, sysctl) on them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kubeforge_core::model;
use kubeforge_engine::fake::{FakeTransport, ok};
use kubeforge_engine::run::{HostError, Mode, Options, Silent, run};
use kubeforge_engine::transport::{ExecOutput, TransportError};

#[derive(Default, Clone)]
struct Sim {
    address: String,
    files: BTreeMap<String, (Vec<u8>, String)>,
    packages: BTreeSet<String>,
    enabled: BTreeSet<String>,
    active: BTreeSet<String>,
    sysctls: BTreeMap<String, String>,
    /// Scripts containing this text fail with the given stderr.
    fail_on: Option<(String, String)>,
    /// Sysctl writes are ignored (a kernel that refuses them).
    stubborn_sysctls: bool,
}

fn sha256(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    let mut s = String::new();
    let _ = write!(
        s,
        "{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    );
    s
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Sim {
    fn facts(&self, script: &str) -> String {
        let mut out = String::from(
            "@@kubeforge-facts 1\n@@os\nID=debian\nVERSION_ID=\"12\"\n@@uid\n0\n@@dpkg\nclean\n@@packages\n",
        );
        for p in &self.packages {
            out.push_str(&format!("{p}\t1.0\tii \n"));
        }
        out.push_str("@@holds\n@@swap\n@@addresses\n");
        out.push_str(&format!(
            "2: eth0    inet {}/24 brd x scope global eth0\n",
            self.address
        ));
        for line in script.lines() {
            let words: Vec<&str> = line
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            match words.as_slice() {
                ["echo", "@@sysctl", key] => {
                    let v = self
                        .sysctls
                        .get(*key)
                        .cloned()
                        .unwrap_or_else(|| "0".into());
                    out.push_str(&format!("@@sysctl {key}\nvalue {v}\n"));
                }
                ["echo", "@@file", path] => {
                    out.push_str(&format!("@@file {path}\n"));
                    match self.files.get(*path) {
                        Some((content, mode)) => out.push_str(&format!(
                            "present {mode} root root {} {}\n{}\n",
                            content.len(),
                            sha256(content),
                            b64(content)
                        )),
                        None => out.push_str("missing\n"),
                    }
                }
                ["echo", "@@unit", unit] => {
                    let e = if self.enabled.contains(*unit) {
                        "enabled"
                    } else if self.packages.iter().any(|p| unit.starts_with(p.as_str())) {
                        "disabled"
                    } else {
                        ""
                    };
                    let a = if self.active.contains(*unit) {
                        "active"
                    } else {
                        "inactive"
                    };
                    out.push_str(&format!("@@unit {unit}\nenabled={e}\nactive={a}\n"));
                }
                _ => {}
            }
        }
        out.push_str("@@end\n");
        out
    }

    fn apply(&mut self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        if let Some((needle, stderr)) = &self.fail_on
            && script.contains(needle.as_str())
        {
            // Fail in the change that contains the needle, as `set -e` would.
            let mut err = String::new();
            for line in script.lines() {
                if line.starts_with("echo '@@change") {
                    err.push_str(&format!(
                        "{}\n",
                        line.trim_start_matches("echo '").trim_end_matches("' >&2")
                    ));
                }
                if line.contains(needle.as_str()) {
                    break;
                }
            }
            err.push_str(stderr);
            return Ok(ExecOutput {
                code: Some(1),
                stdout: Vec::new(),
                stderr: err.into_bytes(),
            });
        }
        let mut offset = 0;
        for line in script.lines() {
            if let Some(rest) = line.split("head -c ").nth(1) {
                let len: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
                let mode = line
                    .split("chmod ")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
                let path = line
                    .rsplit("mv -f \"$t\" ")
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches('\'')
                    .to_string();
                self.files
                    .insert(path, (stdin[offset..offset + len].to_vec(), mode));
                offset += len;
            } else if line.contains("apt-get install") {
                let names = line.rsplit("--force-confold ").next().unwrap();
                self.packages
                    .extend(names.split_whitespace().map(String::from));
            } else if let Some(unit) = line.strip_prefix("systemctl enable -q ") {
                self.enabled.insert(unit.to_string());
            } else if let Some(unit) = line
                .strip_prefix("systemctl start ")
                .or_else(|| line.strip_prefix("systemctl restart "))
            {
                self.active.insert(unit.to_string());
            } else if let Some(kv) = line.strip_prefix("sysctl -q -w ") {
                if !self.stubborn_sysctls {
                    let (k, v) = kv.trim_matches('\'').split_once('=').unwrap();
                    self.sysctls.insert(k.to_string(), v.to_string());
                }
            } else if line.starts_with("chmod ") {
                let mut w = line.split_whitespace();
                let mode = w.nth(1).unwrap().to_string();
                let path = w.next().unwrap().trim_end_matches(';').to_string();
                if let Some(f) = self.files.get_mut(&path) {
                    f.1 = mode;
                }
            }
        }
        ok("")
    }
}

const INVENTORY: &str = "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\n";

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
                        address: n.ip().unwrap().to_string(),
                        ..Sim::default()
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
            vip: "10.0.0.10".parse().unwrap(),
            addresses: self
                .cluster
                .nodes
                .iter()
                .map(|n| (n.node_name.clone(), n.ip().unwrap()))
                .collect(),
        }
    }

    /// Runs the engine with these transports.
    fn run_with(
        &self,
        transports: &BTreeMap<String, FakeTransport>,
        options: &Options,
    ) -> kubeforge_engine::Report {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&self.cluster, transports, options, &Silent))
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
}

#[test]
fn plan_changes_nothing_and_lists_every_change() {
    let lab = Lab::new();
    let report = lab.run(Mode::Plan, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(lab.change_scripts().is_empty(), "plan ran a change");
    assert_eq!(
        report.phases.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["prepare", "load-balancer"]
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
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.change_count() > 0);
    assert!(
        lab.sims["k8scp02"]
            .lock()
            .unwrap()
            .active
            .contains("keepalived.service")
    );
    assert_eq!(
        lab.sims["k8s01"].lock().unwrap().sysctls["net.ipv4.ip_forward"],
        "1"
    );
    assert!(
        !lab.sims["k8s01"]
            .lock()
            .unwrap()
            .packages
            .contains("haproxy"),
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

#[test]
fn a_phase_waits_for_the_one_before() {
    let lab = Lab::new();
    let report = lab.run(Mode::Apply, None);
    assert!(report.errors.is_empty());
    let scripts = lab.change_scripts();
    let last_prepare = scripts
        .iter()
        .rposition(|(_, s)| s.contains("sysctl") || s.contains("ebtables"))
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
    lab.sims["k8s01"].lock().unwrap().fail_on = Some((
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
    assert!(
        lab.sims["k8scp03"]
            .lock()
            .unwrap()
            .packages
            .contains("ebtables")
    );
    // ...and the next phase did not start.
    assert_eq!(report.stopped_after.as_deref(), Some("prepare"));
    assert!(
        !lab.sims["k8scp01"]
            .lock()
            .unwrap()
            .packages
            .contains("haproxy")
    );

    // Once the problem is gone, a re-run converges.
    lab.sims["k8s01"].lock().unwrap().fail_on = None;
    let again = lab.run(Mode::Apply, None);
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(lab.run(Mode::Apply, None).change_count(), 0);
}

#[test]
fn apply_fails_loudly_when_a_change_does_not_stick() {
    let lab = Lab::new();
    lab.sims["k8scp02"].lock().unwrap().stubborn_sysctls = true;
    let report = lab.run(Mode::Apply, None);
    assert_eq!(report.errors.len(), 1);
    let text = report.errors[0].to_string();
    assert!(text.starts_with("k8scp02: after apply, phase prepare still has changes to make: kernel: set net.ipv4.ip_forward = 1"), "{text}");
}

#[test]
fn the_vrrp_secret_stays_out_of_errors_and_logs_and_is_kept_across_runs() {
    let lab = Lab::new();
    let dir = std::env::temp_dir().join(format!("kubeforge-engine-test-{}", std::process::id()));
    let first = lab.run(Mode::Apply, Some(dir.clone()));
    assert!(first.errors.is_empty());
    let conf = |host: &str| {
        String::from_utf8(
            lab.sims[host].lock().unwrap().files["/etc/keepalived/keepalived.conf"]
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
        lab.sims["k8scp01"].lock().unwrap().files["/etc/keepalived/keepalived.conf"].1,
        "600"
    );

    // A failing restart whose stderr quotes the secret: the error shows it masked.
    lab.sims["k8scp03"]
        .lock()
        .unwrap()
        .files
        .remove("/etc/haproxy/haproxy.cfg");
    lab.sims["k8scp03"].lock().unwrap().fail_on = Some((
        "systemctl restart haproxy".into(),
        format!("bad config near auth_pass {secret}"),
    ));
    let report = lab.run(Mode::Apply, Some(dir.clone()));
    let text = format!(
        "{:?} {}",
        report.errors,
        serde_json::to_string(&report).unwrap()
    );
    assert!(!text.contains(&secret), "{text}");
    assert!(text.contains("auth_pass ********"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let log = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!log.contains(&secret));
    }
    let _ = std::fs::remove_dir_all(&dir);
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
