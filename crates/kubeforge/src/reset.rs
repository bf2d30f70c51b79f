//! `kubeforge reset`: takes the cluster apart (every node, or some workers), after a
//! confirmation, so that the next apply builds it again.

use std::collections::BTreeSet;

use kubeforge_core::steps::reset::ResetJob;
use kubeforge_engine::Mode;

use crate::args::{DEFAULT_PARALLEL, InventoryArgs, exit};
use crate::converge::{self, ConvergeError, Settings};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Do not ask for confirmation (needed when there is no terminal to ask on).
    #[arg(short, long)]
    pub yes: bool,
    /// Also remove keepalived, HAProxy, containerd and the Kubernetes packages, with their
    /// configuration.
    #[arg(long)]
    pub all: bool,
    /// Only these nodes (comma-separated or repeated): each is drained, the host reset, then
    /// its Node deleted; the rest of the cluster stays. A control-plane node is first taken
    /// out of the other nodes' HAProxy, and its etcd member removed after its reset (refused
    /// when etcd would lose its quorum); then the other control-plane nodes' HAProxy and
    /// keepalived are rewritten without it, one at a time.
    #[arg(long, value_name = "NODE", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// How many hosts to work on at once.
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Directory for per-host logs (see `kubeforge apply --help`).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<std::path::PathBuf>,
}

pub fn run(printer: &Printer, args: &ResetArgs) -> Result<u8, ConvergeError> {
    let cluster = match converge::load_cluster(printer, &args.inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    let only: Option<BTreeSet<String>> =
        (!args.hosts.is_empty()).then(|| args.hosts.iter().cloned().collect());
    let job = ResetJob::new(only.clone(), args.all).with_roles(&cluster);
    if let Err(problem) = job.check(&cluster) {
        printer.error_line(&format!("reset --hosts: {problem}"));
        return Ok(exit::USAGE);
    }
    let what = match &only {
        Some(only) => format!(
            "remove {} from the cluster at {} (drain, {}delete the Node, reset the host{})",
            only.iter().cloned().collect::<Vec<_>>().join(", "),
            cluster.control_plane_endpoint(),
            if job.removed_control_planes().is_empty() {
                ""
            } else {
                "its etcd member removed, the other control-plane nodes' HAProxy and keepalived without it, "
            },
            if args.all {
                ", remove its packages"
            } else {
                ""
            }
        ),
        None => format!(
            "destroy the cluster at {} on {} hosts: every workload, etcd's data and the certificates are gone for good{}",
            cluster.control_plane_endpoint(),
            cluster.nodes.len(),
            if args.all {
                "; keepalived, HAProxy, containerd and the Kubernetes packages are removed"
            } else {
                ""
            }
        ),
    };
    if !args.yes {
        let question = format!("This will {what}.\nType `yes` to go on:");
        match printer.ask(&question) {
            Some(answer) if answer == "yes" => {}
            Some(_) => {
                printer.note("nothing was changed");
                return Ok(exit::PROBLEMS);
            }
            None => {
                printer.error_line(&format!(
                    "reset would {what}; there is no terminal to confirm on: run with --yes"
                ));
                return Ok(exit::USAGE);
            }
        }
    }
    let removed = job.removed_control_planes().clone();
    let settings = |job: Box<dyn kubeforge_core::steps::Job>| Settings {
        mode: Mode::Apply,
        parallel: args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
        log_dir: args.log_dir.clone().or_else(converge::default_log_dir),
        bundle: None,
        until: None,
        job,
    };
    if removed.is_empty() {
        return converge::run_engine(
            printer,
            &cluster,
            settings(Box::new(job)),
            args.inventory.format(),
        );
    }
    // Control-plane nodes removed: then the others' load balancer from the inventory without
    // them, one node at a time.
    let started = std::time::Instant::now();
    let print = |report: &kubeforge_engine::Report| {
        converge::print_report(
            printer,
            report,
            Mode::Apply,
            args.inventory.format(),
            args.log_dir.clone().or_else(converge::default_log_dir),
            started,
        )
    };
    // A node being removed may be dead: it is removed through the others.
    let first = match converge::execute_or_say(printer, &cluster, settings(Box::new(job)))? {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    if !first.errors.is_empty() {
        return Ok(print(&first));
    }
    let mut rest = cluster.clone();
    rest.nodes.retain(|n| !removed.contains(&n.node_name));
    let second = match converge::execute_or_say(
        printer,
        &rest,
        settings(Box::new(kubeforge_core::steps::reset::LoadBalancerOnly)),
    )? {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    let code = print(&first.then(second));
    if code == exit::OK {
        printer.note(&format!(
            "now take {} out of the inventory: an apply that still lists it joins it again, as a new etcd member",
            removed.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(code)
}
