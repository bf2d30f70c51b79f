//! `kubeforge apply` and `kubeforge plan` against live hosts: inventory, DNS, SSH, then the
//! engine's phases.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use kubeforge_core::diag::{self, Report as DiagReport};
use kubeforge_core::model::{Cluster, HostKeyChecking};
use kubeforge_engine::run::{Mode, Options, Report};
use kubeforge_engine::{SshTarget, SshTransport};

use crate::check;
use crate::cli::{InventoryArgs, exit};
use crate::load;
use crate::output::{Format, Printer};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// How many hosts to work on at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub parallel: usize,
    /// Directory for per-host logs (HOST.log). Default: $XDG_STATE_HOME/kubeforge/logs, else
    /// ~/.local/state/kubeforge/logs.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn default_log_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("kubeforge/logs"))
}

/// How ssh reaches a node: by the name or address the inventory writes (never the address
/// DNS gave), so that an ssh_config's `Host` blocks and known_hosts entries by name apply.
fn target(cluster: &Cluster, node: &kubeforge_core::model::Node) -> SshTarget {
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

pub fn run(printer: &Printer, args: &ConvergeArgs, mode: Mode) -> Result<u8, ConvergeError> {
    let loaded = load::load(printer, &args.inventory)?;
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
        return Ok(exit::PROBLEMS);
    };
    let (_, _, mut found) = check::resolve(printer, &mut cluster);
    diag::sort(&mut found);
    found.retain(|d| !loaded.validated.diagnostics.contains(d));
    print_problems(&found);
    let Some(vip) = cluster
        .vip
        .map(|v| v.value)
        .filter(|_| !found.iter().any(|d| d.is_error()))
    else {
        printer.note("stopped: DNS or the network settings have errors (see above); `kubeforge check` shows them all");
        return Ok(exit::PROBLEMS);
    };
    let addresses = cluster
        .nodes
        .iter()
        .filter_map(|n| n.ip().map(|ip| (n.node_name.clone(), ip)))
        .collect();
    let options = Options {
        mode,
        parallel: args.parallel.max(1),
        log_dir: args.log_dir.clone().or_else(default_log_dir),
        vip,
        addresses,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ConvergeError::Runtime)?;
    let started = Instant::now();
    // ssh's control sockets, in a directory only this user can enter.
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0)
    };
    let control_dir = std::env::temp_dir().join(format!("kubeforge-ssh-{uid}"));
    {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&control_dir);
    }
    let (report, connect_errors) = runtime.block_on(async {
        printer.note(&format!("connecting to {} hosts", cluster.nodes.len()));
        let connected: Vec<(
            String,
            Result<SshTransport, kubeforge_engine::TransportError>,
        )> = stream::iter(&cluster.nodes)
            .map(|node| {
                let target = target(&cluster, node);
                let control_dir = control_dir.clone();
                async move {
                    (
                        node.node_name.clone(),
                        SshTransport::connect(&target, &control_dir).await,
                    )
                }
            })
            .buffer_unordered(options.parallel)
            .collect()
            .await;
        let mut transports = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, result) in connected {
            match result {
                Ok(t) => {
                    transports.insert(name, t);
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        errors.sort();
        let report = if errors.is_empty() {
            let progress = Progress::new(printer.is_quiet());
            Some(kubeforge_engine::run(&cluster, &transports, &options, &progress).await)
        } else {
            None
        };
        for (_, t) in transports {
            t.close().await;
        }
        (report, errors)
    });
    let Some(report) = report else {
        for e in &connect_errors {
            printer.error_line(e);
        }
        printer.note("stopped before any change: every host must be reachable");
        return Ok(exit::PROBLEMS);
    };
    match args.inventory.format() {
        Format::Json => printer.json(&report),
        Format::Text => printer.raw(&match mode {
            Mode::Plan => plan_text(&report),
            Mode::Apply => apply_text(&report),
        }),
    }
    for error in &report.errors {
        printer.error_line(&error.to_string());
    }
    if !report.errors.is_empty() {
        if let Some(phase) = &report.stopped_after {
            printer.note(&format!("stopped after {phase}: fix the problem and run again; hosts converge from wherever they are"));
        }
        if let Some(dir) = &options.log_dir {
            printer.note(&format!("logs: {}", dir.display()));
        }
        return Ok(exit::PROBLEMS);
    }
    if mode == Mode::Apply {
        printer.note(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    }
    Ok(exit::OK)
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Every change per phase and host, with the diffs of files.
pub fn plan_text(report: &Report) -> String {
    let mut out = String::new();
    for (i, phase) in report.phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "phase {}/{} {}: {}",
            i + 1,
            report.phases.len(),
            phase.name,
            phase.title
        );
        for host in &phase.hosts {
            if host.changes.is_empty() {
                let _ = writeln!(out, "  {}: no changes", host.host);
                continue;
            }
            let _ = writeln!(
                out,
                "  {}: {}",
                host.host,
                plural(host.changes.len(), "change")
            );
            for change in &host.changes {
                let _ = writeln!(out, "    {}: {}", change.step, change.summary);
                if let Some(diff) = &change.diff {
                    for line in diff.lines() {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
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
