//! `kubeforge apply` and `kubeforge plan` against live hosts: inventory, DNS, SSH, then the
//! engine's phases.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use kubeforge_core::diag::{self, Report as DiagReport};
use kubeforge_core::model::{Cluster, HostKeyChecking, Node};
use kubeforge_core::plan::{group_hosts, one_acts};
use kubeforge_core::preflight::Status;
use kubeforge_core::resources::Change;
use kubeforge_core::steps::Order;
use kubeforge_engine::run::{Mode, Options, Report};
use kubeforge_engine::{SshTarget, SshTransport, ssh};

use crate::args::{ConvergeArgs, DEFAULT_PARALLEL, exit};
use crate::load;
use crate::output::{Format, Printer};
use crate::progress::Progress;
use crate::resolve;

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    ControlDir(String),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
}

/// kubeforge's state on this machine: $XDG_STATE_HOME/kubeforge, else
/// ~/.local/state/kubeforge.
pub fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("kubeforge"))
}

pub fn default_log_dir() -> Option<PathBuf> {
    state_dir().map(|d| d.join("logs"))
}

/// How ssh reaches a node: by the name or address the inventory writes (never the address
/// DNS gave), so that an ssh_config's `Host` blocks and known_hosts entries by name apply.
pub fn target(cluster: &Cluster, node: &Node) -> SshTarget {
    SshTarget {
        destination: node.destination(),
        user: node.ssh.user.clone().or_else(|| cluster.ssh.user.clone()),
        port: node.ssh.port.or(cluster.ssh.port),
        identity_file: node
            .ssh
            .identity_file
            .clone()
            .or_else(|| cluster.ssh.identity_file.clone()),
        known_hosts: cluster.known_hosts.clone(),
        config: cluster.ssh_config.clone(),
        strict: cluster.host_key_checking == HostKeyChecking::Strict,
    }
}

/// Who runs, for the hosts' run locks: `user@machine (pid N)`.
pub fn holder() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "?".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!(
        "kubeforge run by {user}@{machine} (pid {})",
        std::process::id()
    )
}

/// A job other than the build, made once the cluster is loaded (`apply --restore-from`'s);
/// `Err` inside: the exit code, after saying why.
pub type JobMaker<'a> =
    &'a dyn Fn(
        &Cluster,
        usize,
    ) -> Result<Result<Box<dyn kubeforge_core::steps::Job>, u8>, ConvergeError>;

pub fn run(
    printer: &Printer,
    args: &ConvergeArgs,
    mode: Mode,
    other_job: Option<JobMaker>,
) -> Result<u8, ConvergeError> {
    let mut cluster = match load_cluster(printer, &args.inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    let bundle = offline_bundle(printer, &mut cluster)?;
    printer.note(&format!(
        "Kubernetes {}, pod network {}",
        cluster.kubernetes,
        kubeforge_core::cni::describe(&cluster, bundle.as_ref())
    ));
    let parallel = args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1);
    let job: Box<dyn kubeforge_core::steps::Job> = match other_job {
        None if !args.skip.is_empty() => {
            let known: Vec<&str> = cluster.nodes.iter().map(|n| n.node_name.as_str()).collect();
            if let Some(unknown) = args.skip.iter().find(|h| !known.contains(&h.as_str())) {
                printer.error_line(&format!(
                    "--skip {unknown}: no such host in the inventory (its hosts: {})",
                    known.join(", ")
                ));
                return Ok(exit::USAGE);
            }
            Box::new(kubeforge_core::steps::BuildSkipping {
                skip: args.skip.iter().cloned().collect(),
            })
        }
        None => Box::new(kubeforge_core::steps::Build),
        Some(make) => match make(&cluster, parallel)? {
            Ok(job) => job,
            Err(code) => return Ok(code),
        },
    };
    let settings = Settings {
        mode,
        parallel,
        log_dir: args.log_dir.clone().or_else(default_log_dir),
        bundle,
        until: args.until,
        job,
    };
    run_engine(printer, &cluster, settings, args.inventory.format())
}

/// The inventory, validated, with DNS's answers; `Err`: the exit code after the problems
/// were printed.
pub fn load_cluster(
    printer: &Printer,
    inventory: &crate::args::InventoryArgs,
) -> Result<Result<Cluster, u8>, ConvergeError> {
    Ok(load_cluster_and_source(printer, inventory)?.map(|(cluster, _)| cluster))
}

/// [`load_cluster`], with the inventory as it was read (its path as shown, and its text).
pub fn load_cluster_and_source(
    printer: &Printer,
    inventory: &crate::args::InventoryArgs,
) -> Result<Result<(Cluster, load::Loaded), u8>, ConvergeError> {
    let loaded = load::load(printer, inventory)?;
    let print_problems = |diagnostics: &[diag::Diagnostic]| {
        if !diagnostics.is_empty() {
            printer.note(
                DiagReport {
                    path: &loaded.path,
                    source: &loaded.source,
                    diagnostics,
                }
                .to_string()
                .trim_end(),
            );
        }
    };
    print_problems(&loaded.validated.diagnostics);
    let Some(mut cluster) = loaded.validated.cluster.clone() else {
        printer.note(&format!(
            "stopped: the inventory {} has errors (see above)",
            loaded.path
        ));
        return Ok(Err(exit::PROBLEMS));
    };
    let (_, _, mut found) = resolve::cluster(printer, &mut cluster);
    diag::sort(&mut found);
    found.retain(|d| !loaded.validated.diagnostics.contains(d));
    print_problems(&found);
    if cluster.vip.is_none() || found.iter().any(|d| d.is_error()) {
        printer.note("stopped: DNS or the network settings have errors (see above); `kubeforge check` shows them all");
        return Ok(Err(exit::PROBLEMS));
    }
    Ok(Ok((cluster, loaded)))
}

/// Runs the engine and prints its report; the exit code.
pub fn run_engine(
    printer: &Printer,
    cluster: &Cluster,
    settings: Settings,
    format: Format,
) -> Result<u8, ConvergeError> {
    let started = Instant::now();
    let (mode, log_dir) = (settings.mode, settings.log_dir.clone());
    match execute_or_say(printer, cluster, settings)? {
        Ok(report) => Ok(print_report(
            printer, &report, mode, format, log_dir, started,
        )),
        Err(code) => Ok(code),
    }
}

/// [`execute`], saying which hosts could not be reached (`Err`: the exit code).
pub fn execute_or_say(
    printer: &Printer,
    cluster: &Cluster,
    settings: Settings,
) -> Result<Result<Report, u8>, ConvergeError> {
    Ok(match execute(printer, cluster, settings)? {
        Ok(report) => Ok(report),
        Err(connect_errors) => {
            for e in &connect_errors {
                printer.error_line(e);
            }
            printer.note("stopped before any change: every host must be reachable");
            Err(exit::PROBLEMS)
        }
    })
}

/// Prints a run's report as `format` says; the exit code.
pub fn print_report(
    printer: &Printer,
    report: &Report,
    mode: Mode,
    format: Format,
    log_dir: Option<PathBuf>,
    started: Instant,
) -> u8 {
    match format {
        Format::Json => printer.json(report),
        Format::Text => {
            printer.raw(&preflight_text(report));
            printer.raw(&match mode {
                Mode::Check => String::new(),
                Mode::Plan => plan_text(report),
                Mode::Apply => apply_text(report),
            })
        }
    }
    for error in &report.errors {
        printer.error_line(&error.to_string());
    }
    // A plan that apply would refuse at preflight says so in its exit code, as `check --preflight`
    // does: after everything was printed.
    let mut refused: Vec<&str> = Vec::new();
    for v in &report.preflight {
        if v.status == Status::Fail && !v.apply_fixes && !refused.contains(&v.host.as_str()) {
            refused.push(&v.host);
        }
    }
    if mode == Mode::Plan && report.errors.is_empty() && !refused.is_empty() {
        printer.note(&format!(
            "preflight failed on {}: apply would stop before any change; fix what is marked FAIL above",
            refused.join(", ")
        ));
        return exit::PROBLEMS;
    }
    if !report.errors.is_empty() {
        if let Some(phase) = &report.stopped_after {
            printer.note(&format!("stopped after {phase}: fix the problem and run again; hosts converge from wherever they are"));
        }
        if let Some(dir) = &log_dir {
            printer.note(&format!("logs: {}", dir.display()));
        }
        return exit::PROBLEMS;
    }
    if mode == Mode::Apply {
        printer.note(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    }
    exit::OK
}

/// With `packages.source: bundle`: the bundle, checked; the cluster's version becomes its.
pub fn offline_bundle(
    printer: &Printer,
    cluster: &mut Cluster,
) -> Result<Option<kubeforge_core::bundle::Bundle>, ConvergeError> {
    let kubeforge_core::model::PackageSource::Bundle { path } = &cluster.packages else {
        return Ok(None);
    };
    let asked = cluster.kubernetes_set.then_some(cluster.kubernetes);
    let bundle = crate::bundle::load(printer, path, asked)?;
    cluster.kubernetes = bundle.version;
    for image in &bundle.missing_images {
        printer.note(&format!(
            "note: the bundle has no {image}; kubeforge lets kubeadm through without it (its ImagePull preflight check) and skips what needs it"
        ));
    }
    Ok(Some(bundle))
}

/// How to run the engine, beyond the cluster.
pub struct Settings {
    pub mode: Mode,
    pub parallel: usize,
    pub log_dir: Option<PathBuf>,
    pub bundle: Option<kubeforge_core::bundle::Bundle>,
    pub until: Option<&'static str>,
    /// What the command has the engine do.
    pub job: Box<dyn kubeforge_core::steps::Job>,
}

/// The directory of ssh's kept connections, and the async runtime the engine runs on.
fn ssh_runtime() -> Result<(PathBuf, tokio::runtime::Runtime), ConvergeError> {
    let control_dir = ssh::control_dir().map_err(ConvergeError::ControlDir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ConvergeError::Runtime)?;
    Ok((control_dir, runtime))
}

/// Connects to every node (ssh) and runs the engine. `Err` inside: the hosts that could not
/// be reached, with why.
pub fn execute(
    printer: &Printer,
    cluster: &Cluster,
    settings: Settings,
) -> Result<Result<Report, Vec<String>>, ConvergeError> {
    let parallel = settings.parallel;
    let mode = settings.mode;
    let options = Options {
        mode,
        parallel,
        log_dir: settings.log_dir,
        holder: holder(),
        bundle: settings.bundle,
        until: settings.until,
        job: settings.job,
    };
    let (control_dir, runtime) = ssh_runtime()?;
    let persist = ssh::persist_from_env();
    Ok(runtime.block_on(async {
        let skipped: Vec<&str> = cluster
            .nodes
            .iter()
            .map(|n| n.node_name.as_str())
            .filter(|n| options.job.skips(n))
            .collect();
        let asked = cluster.nodes.len() - skipped.len();
        if skipped.is_empty() {
            printer.note(&format!("connecting to {asked} hosts"));
        } else {
            printer.note(&format!(
                "connecting to {asked} hosts; skipped, not contacted and left as they are (their Node, etcd member, keepalived peer and HAProxy backend kept): {}",
                skipped.join(", ")
            ));
        }
        let (transports, unreachable) = connect(
            cluster,
            &|n: &str| !options.job.skips(n),
            &control_dir,
            persist,
            parallel,
        )
        .await;
        // A job may do without some hosts (a node being removed): the others must answer.
        if unreachable.keys().any(|n| !options.job.can_do_without(n)) {
            return Err(unreachable
                .into_iter()
                .map(|(name, e)| format!("{name}: {e}"))
                .collect());
        }
        for (name, e) in &unreachable {
            printer.note(&format!(
                "{name} does not answer ({e}): it is removed from the cluster without being reset itself"
            ));
        }
        let progress = Progress::new(printer.is_quiet(), printer.is_verbose());
        Ok(kubeforge_engine::run(cluster, &transports, &options, &progress).await)
    }))
}

/// Read-only: connects to every node, then, when every host answered and `whole_run`, runs
/// the job in plan mode (facts under the run lock, preflight if the job wants it); otherwise
/// gathers the facts of the hosts that answered ([`kubeforge_engine::gather`]). `job` is told
/// whether every host answered. The report, and the hosts that did not answer, with why.
pub fn observe(
    cluster: &Cluster,
    bundle: Option<kubeforge_core::bundle::Bundle>,
    parallel: usize,
    whole_run: bool,
    job: impl FnOnce(bool) -> Box<dyn kubeforge_core::steps::Job>,
) -> Result<(Report, BTreeMap<String, String>), ConvergeError> {
    let (control_dir, runtime) = ssh_runtime()?;
    Ok(runtime.block_on(async {
        let (transports, unreachable) = connect(
            cluster,
            &|_: &str| true,
            &control_dir,
            ssh::persist_from_env(),
            parallel,
        )
        .await;
        let whole = unreachable.is_empty();
        let options = Options {
            mode: Mode::Plan,
            parallel,
            log_dir: None,
            holder: holder(),
            bundle,
            until: None,
            job: job(whole),
        };
        let silent = kubeforge_engine::run::Silent;
        let report = if whole && whole_run {
            kubeforge_engine::run(cluster, &transports, &options, &silent).await
        } else {
            kubeforge_engine::gather(cluster, &transports, &options, &silent).await
        };
        (report, unreachable)
    }))
}

/// An ssh connection to every node that `wanted` names, `parallel` at a time: those made, and
/// the hosts that could not be reached with why.
pub async fn connect(
    cluster: &Cluster,
    wanted: &dyn Fn(&str) -> bool,
    control_dir: &std::path::Path,
    persist: std::time::Duration,
    parallel: usize,
) -> (BTreeMap<String, SshTransport>, BTreeMap<String, String>) {
    let connected: Vec<_> = stream::iter(cluster.nodes.iter().filter(|n| wanted(&n.node_name)))
        .map(|node| async move {
            let target = target(cluster, node);
            (
                node.node_name.clone(),
                SshTransport::connect(&target, control_dir, persist).await,
            )
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut transports = BTreeMap::new();
    let mut unreachable = BTreeMap::new();
    for (name, result) in connected {
        match result {
            Ok(t) => {
                transports.insert(name, t);
            }
            Err(e) => {
                unreachable.insert(name, e.to_string());
            }
        }
    }
    (transports, unreachable)
}

/// Preflight's problems, host by host; one line when every check passed.
pub fn preflight_text(report: &Report) -> String {
    let mut out = String::new();
    if report.preflight.is_empty() {
        return out;
    }
    let problems: Vec<_> = report
        .preflight
        .iter()
        .filter(|v| v.status != Status::Ok)
        .collect();
    let hosts: std::collections::BTreeSet<&str> =
        report.preflight.iter().map(|v| v.host.as_str()).collect();
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "preflight: every check passed on {}",
            plural(hosts.len(), "host")
        );
        return out;
    }
    let _ = writeln!(out, "preflight:");
    for v in problems {
        let status = match v.status {
            Status::Fail if v.apply_fixes => "fixed by apply",
            Status::Fail => "FAIL",
            _ => "warn",
        };
        let _ = writeln!(out, "  {} {}: {} [{status}]", v.host, v.check, v.found);
        if let Some(fix) = &v.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Every change per phase, with the diffs of files; hosts with the same changes together.
pub fn plan_text(report: &Report) -> String {
    let mut out = String::new();
    for (i, phase) in report.phases.iter().enumerate() {
        let on = match phase.order {
            Order::One => one_acts(
                phase
                    .hosts
                    .iter()
                    .map(|h| (h.host.as_str(), !h.changes.is_empty())),
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "phase {}/{} {}: {}{on}",
            i + 1,
            report.phases.len(),
            phase.name,
            phase.title,
        );
        let hosts: Vec<(&str, &Vec<Change>)> = phase
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), &h.changes))
            .collect();
        for (names, changes) in group_hosts(&hosts) {
            let names = names.join(", ");
            if changes.is_empty() {
                let _ = writeln!(out, "  {names}: no changes");
                continue;
            }
            let _ = writeln!(
                out,
                "  {names}: {}{}",
                plural(changes.len(), "change"),
                if names.contains(',') { " each" } else { "" }
            );
            for change in changes.iter() {
                let _ = writeln!(out, "    {}: {}", change.step, change.summary);
                if let Some(diff) = &change.diff {
                    for line in diff.lines() {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
        }
        for wait in &phase.waits {
            let _ = writeln!(out, "  then: {wait}");
        }
    }
    let hosts = kubeforge_engine::run::changed_hosts(report);
    let _ = writeln!(
        out,
        "{}",
        if report.change_count() == 0 {
            "no changes: every host is as it should be".to_string()
        } else {
            format!(
                "plan: {} on {}",
                plural(report.change_count(), "change"),
                plural(hosts.len(), "host")
            )
        }
    );
    out
}

/// What apply changed where.
pub fn apply_text(report: &Report) -> String {
    // Hosts in the cluster's order (control-plane nodes first), as the phases list them.
    let mut per_host: Vec<(&str, Vec<String>)> = Vec::new();
    for phase in &report.phases {
        for host in &phase.hosts {
            let index = match per_host.iter().position(|(h, _)| *h == host.host) {
                Some(i) => i,
                None => {
                    per_host.push((&host.host, Vec::new()));
                    per_host.len() - 1
                }
            };
            per_host[index].1.extend(
                host.changes
                    .iter()
                    .map(|c| format!("{}: {}", c.step, c.summary)),
            );
        }
    }
    let mut out = String::new();
    for (host, changes) in &per_host {
        if changes.is_empty() {
            let _ = writeln!(out, "{host}: no changes");
        } else {
            let _ = writeln!(out, "{host}: {}", plural(changes.len(), "change"));
            for c in changes {
                let _ = writeln!(out, "  {c}");
            }
        }
    }
    for phase in &report.phases {
        for wait in &phase.waits {
            let _ = writeln!(out, "{}: {wait}", phase.name);
        }
    }
    let timed: Vec<String> = report
        .phases
        .iter()
        .filter(|p| p.seconds >= 0.1)
        .map(|p| {
            // A phase the job runs once per node or batch (an upgrade's) names its hosts.
            let repeated = report.phases.iter().filter(|q| q.name == p.name).count() > 1;
            if repeated {
                let hosts: Vec<&str> = p.hosts.iter().map(|h| h.host.as_str()).collect();
                format!("{} ({}) {:.1} s", p.name, hosts.join(", "), p.seconds)
            } else {
                format!("{} {:.1} s", p.name, p.seconds)
            }
        })
        .collect();
    if report.change_count() > 0 && !timed.is_empty() {
        let _ = writeln!(out, "phases: {}", timed.join(", "));
    }
    let total = report.change_count();
    let _ = writeln!(
        out,
        "{}",
        if total == 0 && report.errors.is_empty() {
            "no changes".to_string()
        } else {
            format!(
                "applied {} on {}",
                plural(total, "change"),
                plural(
                    per_host.iter().filter(|(_, c)| !c.is_empty()).count(),
                    "host"
                )
            )
        }
    );
    out
}
