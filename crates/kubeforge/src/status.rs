//! `kubeforge status`: read-only, one round trip per host. Every host that answers is asked
//! what `plan` needs and what the status shows ([`kubeforge_core::steps::status`]); the
//! judgement is [`kubeforge_core::status::assess`]. Exit 0 when healthy, 1 when anything is
//! wrong, so that cron or a monitor can run it.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use kubeforge_core::status::{Status, assess};
use kubeforge_core::steps::status::Status as StatusJob;
use kubeforge_engine::HostError;

use crate::args::{DEFAULT_PARALLEL, InventoryArgs, exit};
use crate::converge::{self, ConvergeError};
use crate::output::{Format, Printer};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// How many hosts to ask at once.
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
}

pub fn run(printer: &Printer, args: &StatusArgs) -> Result<u8, ConvergeError> {
    let mut cluster = match converge::load_cluster(printer, &args.inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    let bundle = converge::offline_bundle(printer, &mut cluster)?;
    let parallel = args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1);
    let (report, mut unreachable) = converge::observe(&cluster, bundle, parallel, true, |whole| {
        Box::new(StatusJob { plan: whole })
    })?;
    // A host whose facts could not be read is named as not answering; any other error is a
    // problem as it reads.
    let mut errors = Vec::new();
    for error in &report.errors {
        match error {
            HostError::Transport { host, message } | HostError::Facts { host, message }
                if !report.facts.contains_key(host) =>
            {
                unreachable.insert(host.clone(), message.clone());
            }
            other => errors.push(other.to_string()),
        }
    }
    let plan_changes =
        (unreachable.is_empty() && report.errors.is_empty()).then(|| report.change_count());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut status = assess(&cluster, &report.facts, &unreachable, plan_changes, now);
    status.problems.extend(errors);
    status.healthy = status.problems.is_empty();
    match args.inventory.format() {
        Format::Json => printer.json(&status),
        Format::Text => printer.raw(&text(&status)),
    }
    Ok(if status.healthy {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

/// The status as a person reads it: nodes, etcd, the VIP, HAProxy, certificates, the plan,
/// then the verdict and every problem.
pub fn text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nodes");
    for n in &status.nodes {
        let state = match (n.reachable, n.registered, n.ready) {
            (_, true, Some(true)) => "Ready",
            (_, true, _) => "NotReady",
            (false, false, _) => "unreachable",
            (true, false, _) => "not in the cluster",
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<14} {:<10} {state}{}{}",
            n.name,
            n.role,
            if n.kubelet_version.is_empty() {
                "-"
            } else {
                &n.kubelet_version
            },
            if n.cordoned { ", cordoned" } else { "" },
            if n.reachable || !n.registered {
                ""
            } else {
                ", its host does not answer"
            },
        );
    }
    let _ = writeln!(
        out,
        "etcd{}",
        status
            .seen_from
            .as_ref()
            .map(|n| format!(" (as {n} sees it)"))
            .unwrap_or_default()
    );
    if status.etcd.is_empty() {
        let _ = writeln!(out, "  (not read)");
    }
    for m in &status.etcd {
        let mut notes = vec![if m.healthy { "healthy" } else { "unhealthy" }];
        if m.leader {
            notes.push("leader");
        }
        if m.learner {
            notes.push("learner");
        }
        if !m.in_inventory {
            notes.push("not in the inventory");
        }
        let _ = writeln!(
            out,
            "  {:<16} {:<17} {}",
            if m.name.is_empty() {
                "(unstarted)"
            } else {
                &m.name
            },
            m.id,
            notes.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "VIP {}: {}",
        status.vip.address,
        if status.vip.holders.is_empty() {
            "held by no node".to_string()
        } else {
            format!("on {}", status.vip.holders.join(", "))
        }
    );
    let _ = writeln!(out, "HAProxy (kube-apiserver servers up)");
    for h in &status.haproxy {
        let seen = match &h.servers {
            None => "admin socket does not answer".to_string(),
            Some(servers) => {
                let up = servers.values().filter(|s| **s == "up").count();
                let others: Vec<String> = servers
                    .iter()
                    .filter(|(_, s)| **s != "up")
                    .map(|(n, s)| format!("{n} {s}"))
                    .collect();
                format!(
                    "{up} of {}{}",
                    servers.len(),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", others.join(", "))
                    }
                )
            }
        };
        let _ = writeln!(out, "  {:<16} {seen}", h.host);
    }
    let _ = writeln!(out, "certificates (the first to expire on each node)");
    let mut hosts: Vec<&str> = status
        .certificates
        .iter()
        .map(|c| c.host.as_str())
        .collect();
    hosts.dedup();
    for host in hosts {
        let first = status
            .certificates
            .iter()
            .filter(|c| c.host == host)
            .min_by_key(|c| c.days_left.unwrap_or(i64::MIN));
        if let Some(c) = first {
            let _ = writeln!(
                out,
                "  {:<16} {} ({} days): {}",
                host,
                c.expires.as_deref().unwrap_or("unreadable"),
                c.days_left.map_or("?".to_string(), |d| d.to_string()),
                c.path
            );
        }
    }
    let _ = writeln!(
        out,
        "plan: {}",
        match status.plan_changes {
            Some(0) => "nothing to change".to_string(),
            Some(n) => format!("{n} changes"),
            None if status.nodes.iter().all(|n| n.reachable) => {
                "not computed (it stopped: see the problems below)".to_string()
            }
            None => "unknown (not every host answered)".to_string(),
        }
    );
    if status.healthy {
        let _ = writeln!(out, "healthy");
    } else {
        let _ = writeln!(
            out,
            "{} problem{}:",
            status.problems.len(),
            if status.problems.len() == 1 { "" } else { "s" }
        );
        for p in &status.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}
