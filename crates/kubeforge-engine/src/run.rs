//! Plan and apply across hosts: the phases of a command's [`Job`], in order.
//!
//! Every host's facts first (one round trip each), while apply takes every host's run lock;
//! then each phase: its values settled from the facts, its hosts in parallel or one at a time,
//! each host's steps compared with its facts. Plan stops there. Apply runs each step's changes
//! in one round trip (waits in between), gathers the host's facts again, and after the last step
//! checks that planning again gives nothing. A host's failure lets the phase finish (or, one at
//! a time, stops it) and ends the run after that phase.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::stream::{self, StreamExt};
use kubeforge_core::facts::{self, FactQuery, HostFacts};
use kubeforge_core::mask::Mask;
use kubeforge_core::model::{Cluster, Node};
use kubeforge_core::preflight::{self, Status, Verdict};
use kubeforge_core::resources::{self, Action, Change, Wait};
use kubeforge_core::steps::{Ctx, Job, Order, Phase, Step};
use kubeforge_core::values::Values;
use serde::Serialize;

use crate::log::HostLog;
use crate::transport::{
    ExecOutput, FACTS_DEADLINE, Holder, Input, LOCK_LOST, LockGuard, Part, Transport,
    TransportError, lock_guard,
};
use crate::upload::Compressor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Gather facts and judge them (preflight) only.
    Check,
    /// Gather facts and compute changes; change nothing.
    Plan,
    /// Take the run lock, make the changes, then check that nothing is left to change.
    Apply,
}

pub struct Options {
    pub mode: Mode,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// Where per-host logs go (`<dir>/<host>.log`, appended); `None`: no logs.
    pub log_dir: Option<PathBuf>,
    /// Who runs: written into each host's run lock, shown to a run that finds it held.
    pub holder: String,
    /// The offline bundle packages come from (`packages.source: bundle`), checked.
    pub bundle: Option<kubeforge_core::bundle::Bundle>,
    /// The last phase to run (`None`: all).
    pub until: Option<&'static str>,
    /// What the command has the engine do: its phases ([`kubeforge_core::steps::Build`] for
    /// apply and plan).
    pub job: Box<dyn Job>,
}

impl Options {
    /// The phases this run goes through: the job's, up to `until`. Only these phases' facts
    /// are gathered.
    pub fn phases(&self) -> Vec<&dyn Phase> {
        let mut phases = self.job.phases();
        if let Some(last) = self.until
            && let Some(at) = phases.iter().position(|p| p.name() == last)
        {
            phases.truncate(at + 1);
        }
        phases
    }
}

/// A phase as the reporter sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseInfo {
    pub name: &'static str,
    pub title: &'static str,
    pub order: Order,
    pub hosts: Vec<String>,
}

/// Progress, as it happens. The CLI draws it; tests record it.
pub trait Reporter: Send + Sync {
    fn phase_started(&self, _index: usize, _total: usize, _phase: &PhaseInfo) {}
    /// A phase that is not built yet (apply skips it).
    fn host_progress(&self, _host: &str, _message: &str) {}
    /// A script about to run on a host, secrets masked (shown with -v).
    fn host_command(&self, _host: &str, _step: &str, _script: &str) {}
    fn host_finished(&self, _host: &str, _changes: usize, _error: Option<&HostError>) {}
    fn phase_finished(&self, _phase: &PhaseInfo) {}
}

/// A reporter that says nothing.
pub struct Silent;
impl Reporter for Silent {}

/// Why a host failed. Each names the host and what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum HostError {
    #[error("{host}: {message}")]
    Transport { host: String, message: String },
    #[error(
        "{host}: another kubeforge run holds the lock on this host ({by}); wait for it to finish"
    )]
    Locked { host: String, by: String },
    #[error(
        "{host}: step {step}: the run lock on this host is now held by {by}: this run stops before it changes anything more"
    )]
    LockLost {
        host: String,
        step: String,
        by: String,
    },
    #[error("{host}: gathering facts failed: {message}")]
    Facts { host: String, message: String },
    #[error("{host}: step {step} failed: `{command}` exited with {status}\n{stderr}")]
    Step {
        host: String,
        step: String,
        command: String,
        status: String,
        /// The last lines of its stderr, secrets masked.
        stderr: String,
    },
    #[error(
        "{host}: step {step}: no answer within {seconds} s; the command may still run on the host\n{command}"
    )]
    Timeout {
        host: String,
        step: String,
        seconds: u64,
        command: String,
    },
    #[error("{host}: step {step}: waited {seconds} s until {what}, in vain: {missing}")]
    Wait {
        host: String,
        step: String,
        what: String,
        seconds: u64,
        missing: String,
    },
    #[error("{host}: after apply, phase {phase} still has changes to make: {remaining}")]
    Verify {
        host: String,
        phase: String,
        remaining: String,
    },
    #[error("{host}: {message}")]
    Steps { host: String, message: String },
    #[error("{host}: preflight {check}: {found}; fix: {fix}")]
    Preflight {
        host: String,
        check: String,
        found: String,
        fix: String,
    },
    #[error("phase {phase}: waited {seconds} s until {what}, in vain: {missing}")]
    Settle {
        phase: String,
        what: String,
        seconds: u64,
        missing: String,
    },
}

impl HostError {
    /// The same error with `mask` applied to every text in it.
    fn masked(self, mask: &Mask) -> HostError {
        let m = |s: String| mask.apply(&s);
        match self {
            HostError::Transport { host, message } => HostError::Transport {
                host,
                message: m(message),
            },
            HostError::Facts { host, message } => HostError::Facts {
                host,
                message: m(message),
            },
            HostError::Step {
                host,
                step,
                command,
                status,
                stderr,
            } => HostError::Step {
                host,
                step,
                command: m(command),
                status,
                stderr: m(stderr),
            },
            HostError::Timeout {
                host,
                step,
                seconds,
                command,
            } => HostError::Timeout {
                host,
                step,
                seconds,
                command: m(command),
            },
            HostError::Wait {
                host,
                step,
                what,
                seconds,
                missing,
            } => HostError::Wait {
                host,
                step,
                what: m(what),
                seconds,
                missing: m(missing),
            },
            HostError::Verify {
                host,
                phase,
                remaining,
            } => HostError::Verify {
                host,
                phase,
                remaining: m(remaining),
            },
            HostError::Steps { host, message } => HostError::Steps {
                host,
                message: m(message),
            },
            e @ (HostError::Preflight { .. }
            | HostError::Locked { .. }
            | HostError::LockLost { .. }) => e,
            HostError::Settle {
                phase,
                what,
                seconds,
                missing,
            } => HostError::Settle {
                phase,
                what,
                seconds,
                missing: m(missing),
            },
        }
    }
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
    pub order: Order,
    pub hosts: Vec<HostPhase>,
    /// What must settle across the phase's hosts and did not yet (plan), or was waited for
    /// (apply).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<String>,
    /// How long the phase took (its settling wait included).
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    /// Preflight's verdicts on every host, before any change.
    pub preflight: Vec<Verdict>,
    pub phases: Vec<PhaseReport>,
    pub errors: Vec<HostError>,
    /// What the run stopped after because a host failed (`facts`, a phase's name, ...).
    pub stopped_after: Option<String>,
    /// Scripts run per host (each one SSH round trip).
    pub round_trips: BTreeMap<String, usize>,
    pub logs: BTreeMap<String, PathBuf>,
    /// Each host's facts as the run last read them (for a command that reports on them).
    #[serde(skip)]
    pub facts: BTreeMap<String, HostFacts>,
}

impl Report {
    /// This report followed by `next`'s (a command that runs the engine twice, as `upgrade`
    /// does): one report of both runs.
    pub fn then(mut self, next: Report) -> Report {
        self.phases.extend(next.phases);
        self.errors = next.errors;
        self.stopped_after = next.stopped_after;
        for (host, trips) in next.round_trips {
            *self.round_trips.entry(host).or_default() += trips;
        }
        self.logs.extend(next.logs);
        self.facts = next.facts;
        self
    }

    /// Changes, and waits for what did not settle.
    pub fn change_count(&self) -> usize {
        self.phases
            .iter()
            .map(|p| p.waits.len() + p.hosts.iter().map(|h| h.changes.len()).sum::<usize>())
            .sum()
    }
}

/// What a host's part of a phase gave: its changes, its facts afterwards (when it changed) and
/// the values its commands printed.
struct HostOutcome {
    changes: Vec<Change>,
    facts: Option<HostFacts>,
    values: Values,
}

/// The run stopped after this (a phase's name, or `connect`, `lock`, `facts`).
struct Stop(String);

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
        step: &str,
        script: &str,
        stdin: &Input<'_>,
        mask: &Mask,
    ) -> Result<ExecOutput, TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.log.write(mask, &format!("$ {step}\n{script}"));
        let started = Instant::now();
        let result = self.transport.exec(script, stdin).await;
        self.log_result(&result, started, mask);
        result
    }

    fn log_result(
        &self,
        result: &Result<ExecOutput, TransportError>,
        started: Instant,
        mask: &Mask,
    ) {
        let took = format!("{:.1} s", started.elapsed().as_secs_f64());
        match &result {
            Ok(out) => self.log.write(
                mask,
                &format!(
                    "-- exit {} after {took}{}",
                    out.code.map_or("(signal)".to_string(), |c| c.to_string()),
                    match tail(&String::from_utf8_lossy(&out.stderr)) {
                        t if t.is_empty() => String::new(),
                        t => format!("\n-- stderr (end)\n{t}"),
                    }
                ),
            ),
            Err(e) => self
                .log
                .write(mask, &format!("-- failed after {took}: {e}")),
        }
    }

    async fn facts(&self, query: &FactQuery, mask: &Mask) -> Result<HostFacts, HostError> {
        self.facts_timed(query, mask).await.map(|(f, _)| f)
    }

    /// The facts, and the host's clock minus this machine's (milliseconds) when it was read.
    async fn facts_timed(
        &self,
        query: &FactQuery,
        mask: &Mask,
    ) -> Result<(HostFacts, Option<i64>), HostError> {
        let sent = now_ms();
        let out = tokio::time::timeout(
            FACTS_DEADLINE,
            self.exec("facts", &facts::script(query), &Input::default(), mask),
        )
        .await
        .unwrap_or_else(|_| {
            Err(TransportError::Timeout {
                what: "gathering facts".into(),
                seconds: FACTS_DEADLINE.as_secs(),
            })
        });
        self.parse_facts(out, sent, mask)
    }

    /// The run lock and the facts, in one round trip where the transport can
    /// ([`Transport::lock_then`]).
    async fn lock_and_facts(
        &self,
        holder: &Holder,
        query: &FactQuery,
        mask: &Mask,
    ) -> (
        Result<Box<dyn LockGuard>, TransportError>,
        Result<(HostFacts, Option<i64>), HostError>,
    ) {
        let script = facts::script(query);
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.log
            .write(mask, &format!("$ facts, with the run lock\n{script}"));
        let (sent, started) = (now_ms(), Instant::now());
        // The lock bounds its own waits; the facts that follow a refused lock are bounded here.
        let (lock, out) = self.transport.lock_then(holder, &script).await;
        self.log_result(&out, started, mask);
        (lock, self.parse_facts(out, sent, mask))
    }

    fn parse_facts(
        &self,
        out: Result<ExecOutput, TransportError>,
        sent: i64,
        mask: &Mask,
    ) -> Result<(HostFacts, Option<i64>), HostError> {
        let out = out.map_err(|e| HostError::Transport {
            host: self.name.clone(),
            message: e.to_string(),
        })?;
        if !out.success() {
            return Err(HostError::Facts {
                host: self.name.clone(),
                message: format!(
                    "exit {:?}: {}",
                    out.code,
                    tail(&String::from_utf8_lossy(&out.stderr))
                ),
            });
        }
        let parsed =
            facts::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| HostError::Facts {
                host: self.name.clone(),
                message: e.to_string(),
            })?;
        self.log.write(
            mask,
            &format!(
                "-- facts\n{}",
                serde_json::to_string(&parsed)
                    .unwrap_or_else(|e| format!("(cannot be written: {e})"))
            ),
        );
        let offset = parsed
            .system
            .clock_ms
            .map(|host| clock_offset(host, sent, now_ms()));
        Ok((parsed, offset))
    }
}

/// A host's clock minus this machine's, from the host's reading taken somewhere between
/// `sent` and `received` (this machine's clock, milliseconds): 0 inside that window, else the
/// distance to it. The facts may start long after they were sent (a killed run's batch holds
/// the run lock until it ends) or answer long after they started: neither is the clock's fault.
pub fn clock_offset(host: i64, sent: i64, received: i64) -> i64 {
    if host < sent {
        host - sent
    } else if host > received {
        host - received
    } else {
        0
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The last lines of a script's stderr, without kubeforge's own markers.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("@@change "))
        .collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}

/// Fills `bytes` with randomness for the values phases make.
fn random(bytes: &mut [u8]) {
    if getrandom::fill(bytes).is_err() {
        // No randomness at all is not a state to build a cluster in; mix in the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8;
        }
    }
}

/// One script for a batch of changes: each in a shell of its own under `timeout` (its time
/// limit holds on the host too: nothing of it outlives the limit, whatever happens to this
/// machine), stdin only for those that read a payload, stdout kept only for those whose values
/// are read; markers on stderr say which change ran last.
fn batch_script(batch: &[Change]) -> (String, Duration) {
    let mut script = String::from("set -e\nexport LC_ALL=C\n");
    let mut limit = Duration::ZERO;
    for (k, change) in batch.iter().enumerate() {
        let (timeout, captures) = match &change.action {
            Action::Script { timeout, captures } => (*timeout, !captures.is_empty()),
            Action::Wait(_) => (Duration::ZERO, false),
        };
        let stdin = if change.payload.is_empty() && change.upload.is_none() {
            " </dev/null"
        } else {
            ""
        };
        let secs = timeout.as_secs().max(1);
        let run = kubeforge_core::shell::under_timeout(secs, &format!("set -e\n{}", change.script));
        let stopped = format!(
            "|| {{ c=$?; [ $c -ne 124 ] || echo 'kubeforge: stopped on the host after {secs} s, its time limit' >&2; exit $c; }}"
        );
        script.push_str(&format!("echo '@@change {k}' >&2\n"));
        if captures {
            script.push_str(&format!(
                "echo '@@capture {k}'\n{run}{stdin} {stopped}\necho '@@capture-end {k}'\n"
            ));
        } else {
            script.push_str(&format!("{run}{stdin} >&2 {stopped}\n"));
        }
        limit += timeout;
    }
    (script, limit)
}

/// The lines a batch's change `k` printed between its capture markers.
fn captured(stdout: &str, k: usize) -> String {
    let begin = format!("@@capture {k}");
    let end = format!("@@capture-end {k}");
    stdout
        .lines()
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .collect::<Vec<_>>()
        .join("\n")
}

struct Run<'a, T> {
    cluster: &'a Cluster,
    /// Who this run is, for the hosts' run locks, with the token its batches check.
    holder: Holder,
    compressor: Compressor,
    options: &'a Options,
    reporter: &'a dyn Reporter,
    hosts: BTreeMap<String, Host<'a, T>>,
    queries: BTreeMap<String, FactQuery>,
    facts: BTreeMap<String, HostFacts>,
    /// Each host's clock minus this machine's, in milliseconds.
    clock_offsets: BTreeMap<String, i64>,
    values: Values,
    report: Report,
}

/// Runs every phase on the cluster's hosts: plans or applies, as `options.mode` says.
pub async fn run<T: Transport>(
    cluster: &Cluster,
    transports: &BTreeMap<String, T>,
    options: &Options,
    reporter: &dyn Reporter,
) -> Report {
    let mut run = Run::new(cluster, transports, options, reporter);
    let outcome = run.all().await;
    run.finish(outcome)
}

/// Only the facts of the hosts `transports` reaches (a look at a cluster some of whose hosts
/// may not answer): no lock, no preflight, no phase run. The facts are in [`Report::facts`],
/// the hosts whose facts failed in its errors.
pub async fn gather<T: Transport>(
    cluster: &Cluster,
    transports: &BTreeMap<String, T>,
    options: &Options,
    reporter: &dyn Reporter,
) -> Report {
    let mut run = Run::new(cluster, transports, options, reporter);
    let outcome = if options.mode == Mode::Apply {
        Err(Stop("gather (it takes no lock: plan or check only)".into()))
    } else {
        run.lock_and_gather().await.map(drop)
    };
    run.finish(outcome)
}

/// The control-plane node whose view of the cluster was asked for, and the nodes whose first
/// query left theirs out ([`Run::defer_cluster_views`]).
type Deferred = (String, Vec<String>);

impl<'a, T: Transport> Run<'a, T> {
    async fn all(&mut self) -> Result<(), Stop> {
        self.check_transports()?;
        let _locks = self.lock_and_gather().await?;
        self.preflight()?;
        for node in &self.cluster.nodes {
            if self.options.job.skips(&node.node_name) {
                let skipped = HostFacts {
                    skipped: true,
                    ..HostFacts::default()
                };
                self.facts.insert(node.node_name.clone(), skipped);
            }
        }
        let options = self.options;
        for (index, phase) in options.phases().into_iter().enumerate() {
            self.phase(index, phase).await?;
        }
        Ok(())
    }

    fn new(
        cluster: &'a Cluster,
        transports: &'a BTreeMap<String, T>,
        options: &'a Options,
        reporter: &'a dyn Reporter,
    ) -> Self {
        let mode = match options.mode {
            Mode::Check => "check",
            Mode::Plan => "plan",
            Mode::Apply => "apply",
        };
        let header = format!("kubeforge {mode}, {}", options.holder);
        let hosts: BTreeMap<String, Host<'a, T>> = transports
            .iter()
            .map(|(name, transport)| {
                (
                    name.clone(),
                    Host {
                        name: name.clone(),
                        transport,
                        log: HostLog::open(options.log_dir.as_deref(), name, &header),
                        trips: AtomicUsize::new(0),
                    },
                )
            })
            .collect();
        let report = Report {
            mode,
            preflight: Vec::new(),
            phases: Vec::new(),
            errors: Vec::new(),
            stopped_after: None,
            round_trips: BTreeMap::new(),
            facts: BTreeMap::new(),
            logs: hosts
                .iter()
                .filter_map(|(n, h)| h.log.path.clone().map(|p| (n.clone(), p)))
                .collect(),
        };
        let mut token = [0u8; 16];
        random(&mut token);
        Run {
            cluster,
            holder: Holder {
                who: options.holder.clone(),
                token: token.iter().map(|b| format!("{b:02x}")).collect(),
            },
            compressor: Compressor::new(),
            options,
            reporter,
            hosts,
            queries: BTreeMap::new(),
            facts: BTreeMap::new(),
            clock_offsets: BTreeMap::new(),
            values: {
                let mut values = Values::default();
                options.job.preset(&mut values);
                values
            },
            report,
        }
    }

    fn ctx<'v>(&'v self, values: &'v Values) -> Ctx<'v> {
        Ctx {
            cluster: self.cluster,
            values,
            offline: false,
            bundle: self.options.bundle.as_ref(),
            facts: Some(&self.facts),
            state: None,
        }
    }

    /// What a batch of changes reads on stdin: their payloads, and the files they upload
    /// (compressed, each after a line with its compressed length).
    async fn batch_input(
        &self,
        host: &Host<'_, T>,
        step: &str,
        batch: &[Change],
    ) -> Result<Input<'a>, HostError> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        for change in batch {
            if !change.payload.is_empty() {
                parts.push(Part::Bytes(change.payload.clone()));
            }
            if let Some(upload) = &change.upload {
                let gz = self
                    .compressor
                    .compressed(&upload.local, &upload.sha256)
                    .await
                    .map_err(|message| HostError::Transport {
                        host: host.name.clone(),
                        message: format!("step {step}: {message}"),
                    })?;
                let len = std::fs::metadata(&gz).map(|m| m.len()).unwrap_or(0);
                total += len;
                parts.push(Part::Bytes(format!("{len}\n").into_bytes()));
                parts.push(Part::File(gz));
            }
        }
        let progress: Option<Box<dyn Fn(u64) + Send + Sync + 'a>> = if total > 0 {
            let (reporter, name, step) = (self.reporter, host.name.clone(), step.to_string());
            let last = std::sync::Mutex::new(0u64);
            Some(Box::new(move |sent: u64| {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                // Every 8 MB, and at the end.
                if sent >= *last + (8 << 20) || sent >= total {
                    *last = sent;
                    reporter.host_progress(
                        &name,
                        &format!(
                            "{step}: sent {} of {} (compressed)",
                            kubeforge_core::resources::megabytes(sent.min(total)),
                            kubeforge_core::resources::megabytes(total)
                        ),
                    );
                }
            }))
        } else {
            None
        };
        Ok(Input { parts, progress })
    }

    /// Every node needs a way in; the phases below index hosts by node name.
    fn check_transports(&mut self) -> Result<(), Stop> {
        for node in &self.cluster.nodes {
            if !self.hosts.contains_key(&node.node_name)
                && !self.options.job.can_do_without(&node.node_name)
            {
                self.report.errors.push(HostError::Transport {
                    host: node.node_name.clone(),
                    message: "no connection to this host was given".into(),
                });
            }
        }
        self.stop_if_failed("connect")
    }

    fn stop_if_failed(&mut self, after: &str) -> Result<(), Stop> {
        if self.report.errors.is_empty() {
            Ok(())
        } else {
            Err(Stop(after.to_string()))
        }
    }

    /// Every host's facts (one query covering every phase it takes part in: one round trip)
    /// and, in apply, every host's run lock, all hosts at once. Nothing changes before every
    /// host has answered.
    async fn lock_and_gather(&mut self) -> Result<Vec<Box<dyn LockGuard>>, Stop> {
        let values = Values::default();
        let ctx = self.ctx(&values);
        self.queries = self
            .cluster
            .nodes
            .iter()
            .map(|node| {
                let mut q = if self.options.job.preflight() {
                    preflight::query(self.cluster, node)
                } else {
                    FactQuery::default()
                };
                for phase in self.options.phases().into_iter().filter(|p| {
                    p.hosts(self.cluster)
                        .iter()
                        .any(|n| n.node_name == node.node_name)
                }) {
                    q.merge(&phase.query(&ctx, node));
                    if let Some(settle) = phase.settled(&ctx) {
                        q.merge(&settle.condition.query(&node.node_name));
                    }
                }
                (node.node_name.clone(), q)
            })
            .collect();
        let (queries, deferred) = self.defer_cluster_views();
        let apply = self.options.mode == Mode::Apply;
        let (reporter, queries, holder) = (self.reporter, &queries, &self.holder);
        let gathered: Vec<_> = stream::iter(self.hosts.values())
            .map(|host| async move {
                reporter.host_progress(&host.name, "gathering facts");
                let (mask, query) = (Mask::default(), &queries[&host.name]);
                let (lock, facts) = if apply {
                    let (lock, facts) = host.lock_and_facts(holder, query, &mask).await;
                    (Some(lock), facts)
                } else {
                    (None, host.facts_timed(query, &mask).await)
                };
                (host.name.clone(), lock, facts)
            })
            .buffer_unordered(self.options.parallel.max(1))
            .collect()
            .await;
        let mut locks = Vec::new();
        for (name, lock, facts) in gathered {
            match lock {
                Some(Ok(guard)) => locks.push(guard),
                Some(Err(TransportError::Locked(by))) => {
                    self.report.errors.push(HostError::Locked {
                        host: name.clone(),
                        by,
                    })
                }
                Some(Err(e)) => self.report.errors.push(HostError::Transport {
                    host: name.clone(),
                    message: format!("the run lock: {e}"),
                }),
                None => {}
            }
            match facts {
                Ok((f, offset)) => {
                    if let Some(offset) = offset {
                        self.clock_offsets.insert(name.clone(), offset);
                    }
                    self.facts.insert(name, f);
                }
                Err(e) => self.report.errors.push(e),
            }
        }
        self.report.errors.sort_by_key(|e| e.to_string());
        let after = if self
            .report
            .errors
            .iter()
            .any(|e| matches!(e, HostError::Locked { .. }))
        {
            "lock"
        } else {
            "facts"
        };
        self.stop_if_failed(after)?;
        if let Some((first, deferred)) = deferred {
            self.gather_deferred_views(&first, deferred).await;
            self.stop_if_failed("facts")?;
        }
        Ok(locks)
    }

    /// The queries of the first round trip. One control-plane node's view of the cluster
    /// serves every query that says so ([`FactQuery::cluster_once`]): it is asked of the first
    /// control-plane node (inventory order) this run reaches, and left out of the other nodes'
    /// first queries. Returns them, and that node and the nodes left out, if any were. (A
    /// host's facts gathered again after a change are gathered whole: its own view then
    /// tells, say, that it joined.)
    fn defer_cluster_views(&self) -> (BTreeMap<String, FactQuery>, Option<Deferred>) {
        let mut queries = self.queries.clone();
        let first = self
            .cluster
            .control_planes()
            .map(|n| n.node_name.clone())
            .find(|n| self.hosts.contains_key(n));
        let Some(first) = first.filter(|f| queries.get(f).is_some_and(|q| q.cluster)) else {
            return (queries, None);
        };
        let mut deferred = Vec::new();
        for (name, q) in queries.iter_mut() {
            if *name != first && q.cluster && q.cluster_once {
                q.cluster = false;
                deferred.push(name.clone());
            }
        }
        let deferred = (!deferred.is_empty()).then_some((first, deferred));
        (queries, deferred)
    }

    /// When the first control-plane node's view is not of a live, ready cluster it belongs
    /// to (none yet, the node not in it, its API not answering), the others are asked for
    /// theirs after all, in a second round trip.
    async fn gather_deferred_views(&mut self, first: &str, deferred: Vec<String>) {
        let live = self.facts.get(first).is_some_and(|f| {
            kubeforge_core::bootstrap::reads_live_cluster(first, f)
                && f.cluster.as_ref().is_some_and(|c| c.api_ready())
        });
        if live {
            return;
        }
        let (reporter, hosts) = (self.reporter, &self.hosts);
        let queries = &self.queries;
        let asked: Vec<(String, &FactQuery)> = deferred
            .into_iter()
            .filter(|n| self.facts.contains_key(n))
            .map(|n| {
                let q = &queries[&n];
                (n, q)
            })
            .collect();
        let gathered: Vec<_> = stream::iter(asked.iter())
            .map(|(name, q)| async move {
                reporter.host_progress(name, "reading the cluster");
                let cluster_only = FactQuery {
                    cluster: true,
                    cluster_once: true,
                    all_pods: q.all_pods,
                    etcd_leader: q.etcd_leader,
                    ..FactQuery::default()
                };
                (
                    name.clone(),
                    hosts[name].facts(&cluster_only, &Mask::default()).await,
                )
            })
            .buffer_unordered(self.options.parallel.max(1))
            .collect()
            .await;
        for (name, facts) in gathered {
            match facts {
                Ok(f) => {
                    if let Some(known) = self.facts.get_mut(&name) {
                        known.cluster = f.cluster;
                    }
                }
                Err(e) => self.report.errors.push(e),
            }
        }
        self.report.errors.sort_by_key(|e| e.to_string());
    }

    /// Judges every host's facts before any change. A check run stops here; apply stops on a
    /// failure it cannot fix itself.
    fn preflight(&mut self) -> Result<(), Stop> {
        if !self.options.job.preflight() {
            return Ok(());
        }
        let kubernetes = self
            .options
            .phases()
            .iter()
            .any(|p| p.installs_kubernetes());
        self.report.preflight =
            preflight::verdicts(self.cluster, &self.facts, &self.clock_offsets, kubernetes);
        match self.options.mode {
            Mode::Check => Err(Stop("preflight".into())),
            Mode::Plan => Ok(()),
            Mode::Apply => {
                for v in &self.report.preflight {
                    if v.status == Status::Fail && !v.apply_fixes {
                        self.report.errors.push(HostError::Preflight {
                            host: v.host.clone(),
                            check: v.check.to_string(),
                            found: v.found.clone(),
                            fix: v.fix.clone().unwrap_or_default(),
                        });
                    }
                }
                self.stop_if_failed("preflight")
            }
        }
    }

    async fn phase(&mut self, index: usize, phase: &dyn Phase) -> Result<(), Stop> {
        // A host left out of the run (one being removed that does not answer) takes no part.
        let nodes: Vec<&Node> = phase
            .hosts(self.cluster)
            .into_iter()
            .filter(|n| self.hosts.contains_key(&n.node_name))
            .collect();
        if nodes.is_empty() {
            return Ok(());
        }
        let total = self.options.phases().len();
        let phase_facts: BTreeMap<String, HostFacts> = nodes
            .iter()
            .filter_map(|n| {
                self.facts
                    .get(&n.node_name)
                    .map(|f| (n.node_name.clone(), f.clone()))
            })
            .collect();
        let info = PhaseInfo {
            name: phase.name(),
            title: phase.title(),
            order: phase.order(&self.ctx(&self.values), &phase_facts),
            hosts: nodes.iter().map(|n| n.node_name.clone()).collect(),
        };
        let mut phase_report = PhaseReport {
            name: info.name,
            title: info.title,
            order: info.order,
            hosts: Vec::new(),
            waits: Vec::new(),
            seconds: 0.0,
        };
        let started = Instant::now();
        let mut values = self.values.clone();
        let settled = phase.settle(
            &self.ctx(&self.values),
            &self.facts,
            &mut values,
            &mut random,
        );
        if let Err(e) = settled {
            self.report.errors.push(HostError::Steps {
                host: self.cluster.first_control_plane().node_name.clone(),
                message: format!("phase {}: {e}", phase.name()),
            });
            return Err(Stop(phase.name().to_string()));
        }
        self.values = values;
        self.reporter.phase_started(index, total, &info);
        let outcomes: Vec<(String, Result<HostOutcome, HostError>)> = match info.order {
            Order::Parallel | Order::One => self.hosts_at_once(phase, &nodes).await,
            Order::FirstThenRest => {
                // What the first host finds out (its facts, the values it printed) is there
                // for the others.
                let first = self.host(phase, nodes[0]).await;
                self.take_in(&first);
                let mut done = vec![first];
                if done[0].1.is_ok() {
                    done.extend(self.hosts_at_once(phase, &nodes[1..]).await);
                }
                done
            }
            Order::OneAtATime => {
                let mut done = Vec::new();
                for node in &nodes {
                    let outcome = self.host(phase, node).await;
                    // The next host's steps see what this one did.
                    self.take_in(&outcome);
                    let failed = outcome.1.is_err();
                    done.push(outcome);
                    if failed {
                        break;
                    }
                }
                done
            }
        };
        for (name, outcome) in outcomes {
            match outcome {
                Ok(outcome) => {
                    if let Some(f) = outcome.facts {
                        self.facts.insert(name.clone(), f);
                    }
                    self.values.absorb(outcome.values);
                    phase_report.hosts.push(HostPhase {
                        host: name,
                        changes: outcome.changes,
                    });
                }
                Err(e) => self.report.errors.push(e),
            }
        }
        phase_report.hosts.sort_by_key(|h| {
            self.cluster
                .nodes
                .iter()
                .position(|n| n.node_name == h.host)
        });
        if self.report.errors.is_empty() {
            self.settle(phase, &nodes, &mut phase_report).await;
        }
        phase_report.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        self.report.phases.push(phase_report);
        self.reporter.phase_finished(&info);
        self.report.errors.sort_by_key(|e| e.to_string());
        self.stop_if_failed(phase.name())
    }

    /// A host's fresh facts and the values it made, for the hosts after it.
    fn take_in(&mut self, outcome: &(String, Result<HostOutcome, HostError>)) {
        if let (name, Ok(o)) = outcome {
            if let Some(f) = &o.facts {
                self.facts.insert(name.clone(), f.clone());
            }
            self.values.absorb(o.values.clone());
        }
    }

    /// Checks what must hold across the phase's hosts once it is done; apply waits for it.
    async fn settle(&mut self, phase: &dyn Phase, nodes: &[&Node], report: &mut PhaseReport) {
        let Some(settle) = phase.settled(&self.ctx(&self.values)) else {
            return;
        };
        let current = |facts: &BTreeMap<String, HostFacts>| -> BTreeMap<String, HostFacts> {
            nodes
                .iter()
                .filter_map(|n| {
                    facts
                        .get(&n.node_name)
                        .map(|f| (n.node_name.clone(), f.clone()))
                })
                .collect()
        };
        let mut missing = settle.condition.missing(&current(&self.facts));
        if missing.is_empty() {
            return;
        }
        if self.options.mode == Mode::Plan {
            report.waits.push(format!("wait until {}", settle.what));
            return;
        }
        let started = Instant::now();
        let queries: BTreeMap<&str, FactQuery> = nodes
            .iter()
            .map(|n| (n.node_name.as_str(), settle.condition.query(&n.node_name)))
            .collect();
        let mask = self.values.mask().clone();
        loop {
            let gathered: Vec<(String, Result<HostFacts, HostError>)> = stream::iter(nodes)
                .map(|n| {
                    let host = &self.hosts[&n.node_name];
                    let (query, mask) = (&queries[n.node_name.as_str()], &mask);
                    async move { (host.name.clone(), host.facts(query, mask).await) }
                })
                .buffer_unordered(self.options.parallel.max(1))
                .collect()
                .await;
            let mut facts = BTreeMap::new();
            for (name, result) in gathered {
                match result {
                    Ok(f) => {
                        facts.insert(name, f);
                    }
                    Err(e) => {
                        self.report.errors.push(e);
                        return;
                    }
                }
            }
            missing = settle.condition.missing(&facts);
            let waited = started.elapsed();
            if missing.is_empty() {
                report.waits.push(format!(
                    "waited {} s until {}",
                    waited.as_secs(),
                    settle.what
                ));
                return;
            }
            if waited >= settle.deadline {
                self.report.errors.push(HostError::Settle {
                    phase: phase.name().to_string(),
                    what: settle.what.clone(),
                    seconds: waited.as_secs(),
                    missing: missing.join("; "),
                });
                return;
            }
            for n in nodes {
                self.reporter.host_progress(
                    &n.node_name,
                    &format!(
                        "waiting until {} ({} s of {} s): {}",
                        settle.what,
                        waited.as_secs(),
                        settle.deadline.as_secs(),
                        missing.join("; ")
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn hosts_at_once(
        &self,
        phase: &dyn Phase,
        nodes: &[&Node],
    ) -> Vec<(String, Result<HostOutcome, HostError>)> {
        stream::iter(nodes)
            .map(|node| self.host(phase, node))
            .buffer_unordered(self.options.parallel.max(1))
            .collect()
            .await
    }

    async fn host(
        &self,
        phase: &dyn Phase,
        node: &Node,
    ) -> (String, Result<HostOutcome, HostError>) {
        let host = &self.hosts[&node.node_name];
        let result = self.host_phase(phase, node, host).await;
        let mask = self.values.mask();
        match &result {
            Ok(o) => self
                .reporter
                .host_finished(&host.name, o.changes.len(), None),
            Err(e) => {
                self.reporter
                    .host_finished(&host.name, 0, Some(&e.clone().masked(mask)));
            }
        }
        (host.name.clone(), result)
    }

    /// A host's part of a phase: plan its changes; in apply, make them step by step (the steps
    /// are computed again after each, against fresh facts and the values so far), then verify.
    async fn host_phase(
        &self,
        phase: &dyn Phase,
        node: &Node,
        host: &Host<'_, T>,
    ) -> Result<HostOutcome, HostError> {
        let steps_error = |e: kubeforge_core::steps::StepError| HostError::Steps {
            host: host.name.clone(),
            message: e.to_string(),
        };
        let mut values = self.values.clone();
        let mut current = self.facts[&node.node_name].clone();
        let steps_of = |values: &Values, facts: &HostFacts| -> Result<Vec<Step>, HostError> {
            phase
                .steps(&self.ctx(values), node, facts)
                .map_err(steps_error)
        };
        let all_changes = |steps: &[Step], facts: &HostFacts| -> Vec<Change> {
            steps
                .iter()
                .flat_map(|s| resources::changes(s.id, &s.resources, facts))
                .collect()
        };
        let planned = all_changes(&steps_of(&values, &current)?, &current);
        if self.options.mode == Mode::Plan || planned.is_empty() {
            return Ok(HostOutcome {
                changes: planned,
                facts: None,
                values: Values::default(),
            });
        }
        let mut applied = Vec::new();
        let mut produced = Values::default();
        let mut index = 0;
        loop {
            let steps = steps_of(&values, &current)?;
            let Some(step) = steps.get(index) else { break };
            index += 1;
            let step_changes = resources::changes(step.id, &step.resources, &current);
            if step_changes.is_empty() {
                continue;
            }
            self.reporter.host_progress(
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
            self.apply_step(host, step.id, &step_changes, &mut values, &mut produced)
                .await?;
            applied.extend(step_changes);
            current = host
                .facts(&self.queries[&node.node_name], values.mask())
                .await?;
        }
        // Verify: planning again against fresh facts must give nothing. What was waited for
        // may have wavered since (a static pod restarting once more): waited for again, once.
        let mut remaining = all_changes(&steps_of(&values, &current)?, &current);
        if !remaining.is_empty() && remaining.iter().all(Change::is_wait) {
            for change in &remaining {
                if let Action::Wait(wait) = &change.action {
                    self.wait(host, &change.step, wait, values.mask()).await?;
                }
            }
            current = host
                .facts(&self.queries[&node.node_name], values.mask())
                .await?;
            remaining = all_changes(&steps_of(&values, &current)?, &current);
        }
        if !remaining.is_empty() {
            return Err(HostError::Verify {
                host: host.name.clone(),
                phase: phase.name().to_string(),
                remaining: remaining
                    .iter()
                    .map(|c| format!("{}: {}", c.step, c.summary))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
            .masked(values.mask()));
        }
        Ok(HostOutcome {
            changes: applied,
            facts: Some(current),
            values: produced,
        })
    }

    /// Runs one step's changes: consecutive scripts in one round trip, waits in between.
    /// Values the scripts print go into `values` (and `produced`, for the hosts after).
    async fn apply_step(
        &self,
        host: &Host<'_, T>,
        step: &str,
        changes: &[Change],
        values: &mut Values,
        produced: &mut Values,
    ) -> Result<(), HostError> {
        let mut i = 0;
        while i < changes.len() {
            if let Action::Wait(wait) = &changes[i].action {
                self.wait(host, step, wait, values.mask()).await?;
                i += 1;
                continue;
            }
            let end = changes[i..]
                .iter()
                .position(Change::is_wait)
                .map_or(changes.len(), |p| i + p);
            let batch = &changes[i..end];
            let (script, limit) = batch_script(batch);
            let script = format!("{}{script}", lock_guard(&self.holder.token));
            let input = self.batch_input(host, step, batch).await?;
            self.reporter
                .host_command(&host.name, step, &values.mask().apply(&script));
            let out = tokio::time::timeout(limit, host.exec(step, &script, &input, values.mask()))
                .await
                .map_err(|_| {
                    HostError::Timeout {
                        host: host.name.clone(),
                        step: step.to_string(),
                        seconds: limit.as_secs(),
                        command: batch
                            .iter()
                            .map(|c| c.summary.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                    }
                    .masked(values.mask())
                })?
                .map_err(|e| HostError::Transport {
                    host: host.name.clone(),
                    message: format!("step {step}: {e}"),
                })?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if let Some(by) = stderr.lines().find_map(|l| l.strip_prefix(LOCK_LOST)) {
                let by = match by.trim() {
                    "" => "no run (the host lost it: did it restart?)".to_string(),
                    by => by.to_string(),
                };
                return Err(HostError::LockLost {
                    host: host.name.clone(),
                    step: step.to_string(),
                    by,
                });
            }
            if !out.success() {
                let failed = stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("@@change "))
                    .filter_map(|n| n.trim().parse::<usize>().ok())
                    .next_back()
                    .unwrap_or(0);
                return Err(HostError::Step {
                    host: host.name.clone(),
                    step: step.to_string(),
                    command: batch
                        .get(failed)
                        .map_or(String::new(), |c| c.script.clone()),
                    status: out.code.map_or("a signal".to_string(), |c| c.to_string()),
                    stderr: tail(&stderr),
                }
                .masked(values.mask()));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            for (k, change) in batch.iter().enumerate() {
                let Action::Script { captures, .. } = &change.action else {
                    continue;
                };
                let text = captured(&stdout, k);
                for capture in captures {
                    let Some(value) = capture.parse.read(&text) else {
                        return Err(HostError::Step {
                            host: host.name.clone(),
                            step: step.to_string(),
                            command: change.script.clone(),
                            status: "0".into(),
                            stderr: format!(
                                "its output did not give {} (the output is not shown: it may hold secrets)",
                                capture.value
                            ),
                        });
                    };
                    values.set(capture.value, value.clone(), capture.secret);
                    produced.set(capture.value, value, capture.secret);
                }
            }
            i = end;
        }
        Ok(())
    }

    /// Gathers the wait's facts until its condition holds or its deadline passes.
    async fn wait(
        &self,
        host: &Host<'_, T>,
        step: &str,
        wait: &Wait,
        mask: &Mask,
    ) -> Result<(), HostError> {
        let started = Instant::now();
        let query = wait.condition.query();
        loop {
            let facts = host.facts(&query, mask).await?;
            let missing = wait.condition.missing(&facts);
            if missing.is_empty() {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= wait.deadline {
                return Err(HostError::Wait {
                    host: host.name.clone(),
                    step: step.to_string(),
                    what: wait.what.clone(),
                    seconds: waited.as_secs(),
                    missing: missing.join("; "),
                }
                .masked(mask));
            }
            self.reporter.host_progress(
                &host.name,
                &mask.apply(&format!(
                    "{step}: waiting until {} ({} s of {} s): {}",
                    wait.what,
                    waited.as_secs(),
                    wait.deadline.as_secs(),
                    missing.join("; ")
                )),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The report, with the final mask applied to everything in it.
    fn finish(mut self, outcome: Result<(), Stop>) -> Report {
        if let Err(Stop(after)) = outcome
            && !(self.options.mode == Mode::Check && after == "preflight")
        {
            self.report.stopped_after = Some(after);
        }
        let mask = self.values.mask().clone();
        for phase in &mut self.report.phases {
            for host in &mut phase.hosts {
                for change in &mut host.changes {
                    change.summary = mask.apply(&change.summary);
                    change.script = mask.apply(&change.script);
                    change.diff = change.diff.as_deref().map(|d| mask.apply(d));
                }
            }
        }
        self.report.errors = std::mem::take(&mut self.report.errors)
            .into_iter()
            .map(|e| e.masked(&mask))
            .collect();
        self.report.round_trips = self
            .hosts
            .iter()
            .map(|(n, h)| (n.clone(), h.trips.load(Ordering::Relaxed)))
            .collect();
        self.report.facts = std::mem::take(&mut self.facts);
        self.report
    }
}

/// The hosts a report names with changes, for summaries.
pub fn changed_hosts(report: &Report) -> std::collections::BTreeSet<&str> {
    report
        .phases
        .iter()
        .flat_map(|p| &p.hosts)
        .filter(|h| !h.changes.is_empty())
        .map(|h| h.host.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeforge_core::resources::{Command, File, Parse, Resource};

    fn run_sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn commands_in_a_batch_cannot_eat_the_payload_of_the_next_change() {
        let dir = std::env::temp_dir().join(format!("kubeforge-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f").display().to_string();
        let owner = |flag: &str| {
            String::from_utf8_lossy(
                &std::process::Command::new("id")
                    .arg(flag)
                    .output()
                    .unwrap()
                    .stdout,
            )
            .trim()
            .to_string()
        };
        let mut file = File::new(&path, "payload\n", 0o600);
        file.owner = owner("-un");
        file.group = owner("-gn");
        let resources = [
            // A command that reads its standard input, as apt's maintainer scripts may.
            Resource::Command(Command::new("greedy", "cat > /dev/null")),
            Resource::File(file),
            Resource::Command(
                Command::new("answer", "echo 'Using certificate key:'; echo 0123abcd").capture(
                    "key",
                    true,
                    Parse::CertificateKey,
                ),
            ),
        ];
        let changes = resources::changes("t", &resources, &HostFacts::default());
        let (script, _) = batch_script(&changes);
        let payload: Vec<u8> = changes.iter().flat_map(|c| c.payload.clone()).collect();
        let out = run_sh(&script, &payload);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "payload\n");
        assert_eq!(
            Parse::CertificateKey.read(&captured(&String::from_utf8_lossy(&out.stdout), 2)),
            Some("0123abcd".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_change_past_its_time_limit_is_stopped_on_the_host_too() {
        let dir = std::env::temp_dir().join(format!("kubeforge-limit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mark = dir.join("still-running");
        let mut slow = Change::command("t", "slow", format!("sleep 3; touch {}", mark.display()));
        slow.action = Action::Script {
            timeout: Duration::from_secs(1),
            captures: Vec::new(),
        };
        let (script, limit) = batch_script(&[slow, Change::command("t", "after", "true")]);
        assert_eq!(limit, Duration::from_secs(1) + resources::DEFAULT_TIMEOUT);
        let started = std::time::Instant::now();
        let out = run_sh(&script, b"");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(out.status.code(), Some(124));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.ends_with(
                "@@change 0\nkubeforge: stopped on the host after 1 s, its time limit\n"
            ),
            "{stderr}"
        );
        std::thread::sleep(Duration::from_secs(3));
        assert!(!mark.exists(), "the change went on after its limit");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_change_is_named_by_its_marker() {
        let changes = vec![
            Change::command("t", "first", "true"),
            Change::command("t", "second", "echo broken >&2; false"),
            Change::command("t", "third", "true"),
        ];
        let (script, limit) = batch_script(&changes);
        assert_eq!(limit, resources::DEFAULT_TIMEOUT * 3);
        let out = run_sh(&script, b"");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.ends_with("@@change 1\nbroken\n"), "{stderr}");
        assert_eq!(tail(&stderr), "broken");
    }
}
