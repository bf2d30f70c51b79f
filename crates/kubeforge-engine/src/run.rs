//! Plan and apply across hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use kubeforge_core::facts::{self, FactQuery, HostFacts};
use kubeforge_core::model::Cluster;
use kubeforge_core::resources::{Change, changes, redact};
use kubeforge_core::steps::{self, ClusterInputs, PhaseDef};
use serde::Serialize;

use crate::log::HostLog;
use crate::transport::{Transport, TransportError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Gather facts and compute changes; change nothing.
    Plan,
    /// Make the changes, then gather facts again and check that nothing is left to change.
    Apply,
}

pub struct Options {
    pub mode: Mode,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// Where per-host logs go (`<dir>/<host>.log`); `None`: no logs.
    pub log_dir: Option<PathBuf>,
    /// The VIP, and every node's address (from the inventory or DNS).
    pub vip: Ipv4Addr,
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

/// Progress, as it happens. The CLI draws it; tests record it.
pub trait Reporter: Send + Sync {
    fn phase_started(&self, _index: usize, _total: usize, _phase: &PhaseDef) {}
    fn host_progress(&self, _host: &str, _message: &str) {}
    fn host_finished(&self, _host: &str, _changes: usize, _error: Option<&HostError>) {}
    fn phase_finished(&self, _phase: &PhaseDef) {}
}

/// A reporter that says nothing.
pub struct Silent;
impl Reporter for Silent {}

/// Why a host failed. Each names the host and what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum HostError {
    #[error("{host}: {message}")]
    Transport { host: String, message: String },
    #[error("{host}: gathering facts failed: {message}")]
    Facts { host: String, message: String },
    #[error("{host}: step {step} failed: `{command}` exited with {status}\n{stderr}")]
    Step {
        host: String,
        step: String,
        command: String,
        status: String,
        /// The last lines of its stderr, secrets redacted.
        stderr: String,
    },
    #[error("{host}: after apply, phase {phase} still has changes to make: {remaining}")]
    Verify {
        host: String,
        phase: String,
        remaining: String,
    },
    #[error("{host}: {message}")]
    Steps { host: String, message: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPhase {
    pub host: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub name: &'static str,
    pub title: &'static str,
    pub hosts: Vec<HostPhase>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub phases: Vec<PhaseReport>,
    pub errors: Vec<HostError>,
    /// The phase after which the run stopped because a host failed.
    pub stopped_after: Option<String>,
    /// Scripts run per host (each one SSH round trip).
    pub round_trips: BTreeMap<String, usize>,
    pub logs: BTreeMap<String, PathBuf>,
}

impl Report {
    pub fn change_count(&self) -> usize {
        self.phases
            .iter()
            .flat_map(|p| &p.hosts)
            .map(|h| h.changes.len())
            .sum()
    }
}

/// A host's changes in a phase, and its facts afterwards when it changed.
type HostOutcome = Result<(Vec<Change>, Option<HostFacts>), HostError>;

/// One host: its transport, log, and round-trip counter.
struct Host<'a, T> {
    name: String,
    transport: &'a T,
    log: HostLog,
    trips: AtomicUsize,
}

impl<T: Transport> Host<'_, T> {
    async fn exec(
        &self,
        script: &str,
        stdin: &[u8],
        secrets: &[String],
    ) -> Result<crate::transport::ExecOutput, TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.log
            .write(secrets, &format!("$ sh -c <<'SCRIPT'\n{script}\nSCRIPT"));
        let result = self.transport.exec(script, stdin).await;
        match &result {
            Ok(out) => self.log.write(
                secrets,
                &format!(
                    "-- exit {}\n-- stdout\n{}-- stderr\n{}",
                    out.code.map_or("(signal)".to_string(), |c| c.to_string()),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Err(e) => self.log.write(secrets, &format!("-- failed: {e}")),
        }
        result
    }

    async fn facts(&self, query: &FactQuery, secrets: &[String]) -> Result<HostFacts, HostError> {
        let out = self
            .exec(&facts::script(query), &[], secrets)
            .await
            .map_err(|e| HostError::Transport {
                host: self.name.clone(),
                message: e.to_string(),
            })?;
        if !out.success() {
            return Err(HostError::Facts {
                host: self.name.clone(),
                message: format!(
                    "exit {:?}: {}",
                    out.code,
                    tail(&String::from_utf8_lossy(&out.stderr), secrets)
                ),
            });
        }
        facts::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| HostError::Facts {
            host: self.name.clone(),
            message: e.to_string(),
        })
    }
}

/// The last lines of a command's stderr, secrets redacted.
fn tail(text: &str, secrets: &[String]) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("@@change "))
        .collect();
    let start = lines.len().saturating_sub(15);
    redact(&lines[start..].join("\n"), secrets)
}

/// A new VRRP password: 8 letters and digits (keepalived's limit for PASS authentication).
fn new_vrrp_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness at all is not a state to build a cluster in; fall back to the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t as u64).to_le_bytes();
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Runs every phase on the cluster's hosts: plans or applies, as `options.mode` says.
pub async fn run<T: Transport>(
    cluster: &Cluster,
    transports: &BTreeMap<String, T>,
    options: &Options,
    reporter: &dyn Reporter,
) -> Report {
    let phases = steps::phases(cluster);
    let hosts: BTreeMap<String, Host<'_, T>> = transports
        .iter()
        .map(|(name, transport)| {
            (
                name.clone(),
                Host {
                    name: name.clone(),
                    transport,
                    log: HostLog::open(options.log_dir.as_deref(), name),
                    trips: AtomicUsize::new(0),
                },
            )
        })
        .collect();
    let mut report = Report {
        mode: match options.mode {
            Mode::Plan => "plan",
            Mode::Apply => "apply",
        },
        phases: Vec::new(),
        errors: Vec::new(),
        stopped_after: None,
        round_trips: BTreeMap::new(),
        logs: hosts
            .iter()
            .filter_map(|(n, h)| h.log.path.clone().map(|p| (n.clone(), p)))
            .collect(),
    };
    // Every node needs a way in; the phases below index hosts by node name.
    for node in &cluster.nodes {
        if !hosts.contains_key(&node.node_name) {
            report.errors.push(HostError::Transport {
                host: node.node_name.clone(),
                message: "no connection to this host was given".into(),
            });
        }
    }
    if !report.errors.is_empty() {
        report.stopped_after = Some("connect".into());
        return report;
    }
    let mut inputs = ClusterInputs {
        vip: options.vip,
        vrrp_secret: String::new(),
        addresses: options.addresses.clone(),
    };
    // One query per host covering every phase it takes part in: one round trip gathers it all.
    let queries: BTreeMap<String, FactQuery> = cluster
        .nodes
        .iter()
        .map(|node| {
            let mut q = FactQuery::default();
            for phase in phases.iter().filter(|p| p.hosts.contains(&node.node_name)) {
                q.merge(&steps::query(cluster, &inputs, phase.name, node));
            }
            (node.node_name.clone(), q)
        })
        .collect();

    // Facts of every host first: nothing changes before every host has answered.
    let gathered: Vec<(String, Result<HostFacts, HostError>)> = stream::iter(hosts.values())
        .map(|host| async {
            reporter.host_progress(&host.name, "gathering facts");
            (
                host.name.clone(),
                host.facts(&queries[&host.name], &[]).await,
            )
        })
        .buffer_unordered(options.parallel.max(1))
        .collect()
        .await;
    let mut facts: BTreeMap<String, HostFacts> = BTreeMap::new();
    for (name, result) in gathered {
        match result {
            Ok(f) => {
                facts.insert(name, f);
            }
            Err(e) => report.errors.push(e),
        }
    }
    if !report.errors.is_empty() {
        report.errors.sort_by_key(|e| e.to_string());
        report.stopped_after = Some("facts".into());
        report.round_trips = hosts
            .iter()
            .map(|(n, h)| (n.clone(), h.trips.load(Ordering::Relaxed)))
            .collect();
        return report;
    }
    // The VRRP password: the one already on a control-plane node, else a new one.
    inputs.vrrp_secret = cluster
        .control_planes()
        .find_map(|n| facts.get(&n.node_name).and_then(steps::vrrp_secret_in))
        .unwrap_or_else(new_vrrp_secret);
    let secrets = vec![inputs.vrrp_secret.clone()];

    for (index, phase) in phases.iter().enumerate() {
        reporter.phase_started(index, phases.len(), phase);
        let nodes: Vec<_> = cluster
            .nodes
            .iter()
            .filter(|n| phase.hosts.contains(&n.node_name))
            .collect();
        let results: Vec<(String, HostOutcome)> = stream::iter(nodes)
            .map(|node| {
                let host = &hosts[&node.node_name];
                let host_facts = &facts[&node.node_name];
                let (inputs, secrets, query) = (&inputs, &secrets, &queries[&node.node_name]);
                async move {
                    let result = run_host(
                        cluster,
                        inputs,
                        phase,
                        node,
                        host,
                        host_facts,
                        query,
                        secrets,
                        options.mode,
                        reporter,
                    )
                    .await;
                    match &result {
                        Ok((c, _)) => reporter.host_finished(&host.name, c.len(), None),
                        Err(e) => reporter.host_finished(&host.name, 0, Some(e)),
                    }
                    (host.name.clone(), result)
                }
            })
            .buffer_unordered(options.parallel.max(1))
            .collect()
            .await;
        let mut phase_report = PhaseReport {
            name: phase.name,
            title: phase.title,
            hosts: Vec::new(),
        };
        for (name, result) in results {
            match result {
                Ok((changes, new_facts)) => {
                    if let Some(f) = new_facts {
                        facts.insert(name.clone(), f);
                    }
                    phase_report.hosts.push(HostPhase {
                        host: name,
                        changes,
                    });
                }
                Err(e) => report.errors.push(e),
            }
        }
        phase_report
            .hosts
            .sort_by_key(|h| cluster.nodes.iter().position(|n| n.node_name == h.host));
        report.phases.push(phase_report);
        reporter.phase_finished(phase);
        if !report.errors.is_empty() {
            report.errors.sort_by_key(|e| e.to_string());
            report.stopped_after = Some(phase.name.to_string());
            break;
        }
    }
    report.round_trips = hosts
        .iter()
        .map(|(n, h)| (n.clone(), h.trips.load(Ordering::Relaxed)))
        .collect();
    report
}

#[allow(clippy::too_many_arguments)]
async fn run_host<T: Transport>(
    cluster: &Cluster,
    inputs: &ClusterInputs,
    phase: &PhaseDef,
    node: &kubeforge_core::model::Node,
    host: &Host<'_, T>,
    facts: &HostFacts,
    query: &FactQuery,
    secrets: &[String],
    mode: Mode,
    reporter: &dyn Reporter,
) -> HostOutcome {
    let steps_error = |e: steps::StepError| HostError::Steps {
        host: host.name.clone(),
        message: e.to_string(),
    };
    let host_steps =
        steps::host_steps(cluster, inputs, phase.name, node, facts).map_err(steps_error)?;
    let planned: Vec<Change> = host_steps
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, facts))
        .collect();
    if mode == Mode::Plan || planned.is_empty() {
        return Ok((planned, None));
    }
    // Apply step by step, each in one round trip; the facts a step sees are those gathered
    // before it, refreshed after any step that changed something.
    let mut current = facts.clone();
    let mut applied = Vec::new();
    for step in &host_steps {
        let step_changes = changes(step.id, &step.resources, &current);
        if step_changes.is_empty() {
            continue;
        }
        reporter.host_progress(
            &host.name,
            &format!(
                "{}: {}",
                step.id,
                step_changes
                    .iter()
                    .map(|c| c.summary.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let mut script = String::from("set -e\n");
        let mut payload = Vec::new();
        for (i, change) in step_changes.iter().enumerate() {
            script.push_str(&format!("echo '@@change {i}' >&2\n{}\n", change.script));
            payload.extend_from_slice(&change.payload);
        }
        let out =
            host.exec(&script, &payload, secrets)
                .await
                .map_err(|e| HostError::Transport {
                    host: host.name.clone(),
                    message: format!("step {}: {e}", step.id),
                })?;
        if !out.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let failed = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("@@change "))
                .filter_map(|n| n.trim().parse::<usize>().ok())
                .next_back()
                .unwrap_or(0);
            let command = step_changes
                .get(failed)
                .map_or(String::new(), |c| c.script.clone());
            return Err(HostError::Step {
                host: host.name.clone(),
                step: step.id.to_string(),
                command: redact(&command, secrets),
                status: out.code.map_or("a signal".to_string(), |c| c.to_string()),
                stderr: tail(&stderr, secrets),
            });
        }
        applied.extend(step_changes);
        current = host.facts(query, secrets).await?;
    }
    // Verify: planning again against fresh facts must give nothing.
    let remaining: Vec<Change> = steps::host_steps(cluster, inputs, phase.name, node, &current)
        .map_err(steps_error)?
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, &current))
        .collect();
    if !remaining.is_empty() {
        return Err(HostError::Verify {
            host: host.name.clone(),
            phase: phase.name.to_string(),
            remaining: remaining
                .iter()
                .map(|c| format!("{}: {}", c.step, c.summary))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok((applied, Some(current)))
}

/// The hosts a report names, for summaries.
pub fn changed_hosts(report: &Report) -> BTreeSet<&str> {
    report
        .phases
        .iter()
        .flat_map(|p| &p.hosts)
        .filter(|h| !h.changes.is_empty())
        .map(|h| h.host.as_str())
        .collect()
}
