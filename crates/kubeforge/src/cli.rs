//! Argument parsing and dispatch. Commands return an [`ExitCode`] through [`Exit`]; `main`
//! prints errors and maps them to the documented exit codes.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::{ConvergeArgs, InventoryArgs, OutputArg, exit};
use crate::output::Printer;
use crate::{check, converge, plan};

/// kubeforge turns a list of Debian hosts into a highly-available kubeadm Kubernetes cluster
/// over SSH: keepalived holding a virtual IP, HAProxy in front of the kube-apiservers on every
/// control-plane node, stacked etcd, containerd and Calico.
///
/// Start with `kubeforge check -i hosts`, where `hosts` is an Ansible INI hosts file or a
/// kubeforge cluster.yaml. See `kubeforge help <command>` for each command.
#[derive(Debug, Parser)]
#[command(name = "kubeforge", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Print only errors and results, no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more detail about what is being done.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the inventory and DNS (every control-plane name, and the k8scp record that gives
    /// the VIP) without changing anything. Exit 0: ready; 1: problems found; 2: usage or I/O.
    Check {
        #[command(flatten)]
        inventory: InventoryArgs,
        /// Validate the inventory only; do not look anything up in DNS.
        #[arg(long)]
        no_dns: bool,
        /// Also connect to every host and run preflight (system, resources, swap, cgroups,
        /// clocks, ports, host names, identities, DNS as each host sees it). Changes nothing.
        #[arg(long, conflicts_with = "no_dns")]
        preflight: bool,
    },
    /// Converge the hosts phase by phase (see `kubeforge plan --offline` for the phases); each
    /// phase waits for the one before. A second apply changes nothing.
    Apply(ConvergeArgs),
    /// Show what apply would change on each host, with unified diffs of every file. With
    /// --offline: the ordered phases and their changes, from the inventory alone.
    Plan {
        #[command(flatten)]
        converge: ConvergeArgs,
        /// Plan from the inventory alone, contacting no host and no DNS server: the changes
        /// apply makes on hosts where nothing is in place yet.
        #[arg(long, conflicts_with_all = ["parallel", "log_dir", "until", "restore_from"])]
        offline: bool,
    },
    /// Take the cluster apart so that the next apply builds it again: on every node `kubeadm
    /// reset`, the pod network's files, interfaces and rules, etcd's data and the kubeconfigs
    /// (--all: also keepalived, HAProxy and the packages). Asks first, unless --yes. With
    /// --hosts: only those nodes, each drained, reset, then its Node deleted; a control-plane
    /// node also leaves etcd (refused when etcd would lose its quorum) and the others'
    /// HAProxy and keepalived; a node that does not answer is removed through the others.
    Reset(crate::reset::ResetArgs),
    /// Upgrade the cluster to another Kubernetes version (one minor at a time, any patch):
    /// checks, an etcd snapshot copied here, then each control-plane node in turn and the
    /// workers in batches, each drained, `kubeadm upgrade`, new kubelet, uncordoned. Safe to
    /// interrupt and run again; --plan shows the steps.
    Upgrade(crate::upgrade::UpgradeArgs),
    /// The cluster's health, read-only, one round trip per host: each node's role, kubelet
    /// version, Ready and cordoned; etcd's members (foreign ones named) and leader; the VIP's
    /// holder; each HAProxy's kube-apiservers; certificates' expiry (under 30 days is a
    /// problem); what `plan` would change. Exit 0 when healthy, 1 naming every problem.
    Status(crate::status::StatusArgs),
    /// Certificates: `certs renew` renews every certificate kubeadm manages on each
    /// control-plane node, one node at a time, the API answering through the VIP throughout.
    Certs(crate::certs::CertsArgs),
    /// Back the cluster up into one file (mode 0600, its SHA-256 printed): an etcd snapshot
    /// taken on a healthy member and verified, the CAs and service-account keys, kubeadm's
    /// ClusterConfiguration, the VRRP password and the inventory. Refused unless every etcd
    /// member is healthy. Secrets go into the file only.
    Backup(crate::backup::BackupArgs),
    /// Write the cluster's admin kubeconfig here (server: the control-plane endpoint), to a
    /// file of mode 0600, or merge it into ~/.kube/config as a named context with --merge.
    Kubeconfig(crate::kubeconfig::KubeconfigArgs),
    /// Rehearse a cluster on throwaway local Debian hosts (Linux, root).
    Lab(kubeforge_lab::cli::LabArgs),
    /// Offline bundles (`packages.source: bundle`): `bundle check DIR` verifies one.
    Bundle(crate::bundle::BundleArgs),
    /// kubeforge's version, and what it installs: the Kubernetes minors, the pod networks.
    Version {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputArg::Text)]
        output: OutputArg,
    },
    /// Print a shell completion script, e.g. `kubeforge completions bash > /etc/bash_completion.d/kubeforge`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(if cli.quiet {
        crate::output::Verbosity::Quiet
    } else if cli.verbose > 0 {
        crate::output::Verbosity::Verbose
    } else {
        crate::output::Verbosity::Normal
    });
    let code: Result<u8, Box<dyn std::error::Error>> = match cli.command {
        Command::Check {
            inventory,
            no_dns,
            preflight,
        } => check::run(&printer, &inventory, !no_dns, preflight).map_err(Into::into),
        Command::Plan {
            converge,
            offline: true,
        } => plan::run(&printer, &converge.inventory).map_err(Into::into),
        Command::Plan {
            converge,
            offline: false,
        } => converge_run(&printer, &converge, kubeforge_engine::Mode::Plan),
        Command::Apply(args) => converge_run(&printer, &args, kubeforge_engine::Mode::Apply),
        Command::Reset(args) => crate::reset::run(&printer, &args).map_err(Into::into),
        Command::Upgrade(args) => crate::upgrade::run(&printer, &args).map_err(Into::into),
        Command::Status(args) => crate::status::run(&printer, &args).map_err(Into::into),
        Command::Certs(args) => crate::certs::run(&printer, &args).map_err(Into::into),
        Command::Backup(args) => crate::backup::run(&printer, &args).map_err(Into::into),
        Command::Kubeconfig(args) => crate::kubeconfig::run(&printer, &args).map_err(Into::into),
        Command::Lab(args) => return kubeforge_lab::cli::run(args),
        Command::Bundle(args) => crate::bundle::run(&printer, args).map_err(Into::into),
        Command::Version { output } => {
            version(&printer, output);
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "kubeforge", &mut out);
            printer.raw(&String::from_utf8_lossy(&out));
            Ok(exit::OK)
        }
    };
    match code {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            printer.error(error.as_ref());
            ExitCode::from(exit::USAGE)
        }
    }
}

/// What `kubeforge version` reports.
#[derive(serde::Serialize)]
struct Version {
    kubeforge: &'static str,
    kubernetes: Minors,
    calico: &'static str,
    flannel: &'static str,
}

#[derive(serde::Serialize)]
struct Minors {
    default: &'static str,
    oldest: String,
    newest: String,
}

fn version(printer: &Printer, output: OutputArg) {
    use kubeforge_core::{cni, version as v};
    let report = Version {
        kubeforge: env!("CARGO_PKG_VERSION"),
        kubernetes: Minors {
            default: v::DEFAULT_MINOR_STR,
            oldest: format!("1.{}", v::OLDEST_MINOR),
            newest: format!("1.{}", v::NEWEST_MINOR),
        },
        calico: cni::CALICO_VERSION,
        flannel: cni::FLANNEL_VERSION,
    };
    match output {
        OutputArg::Json => printer.json(&report),
        OutputArg::Text => printer.raw(&format!(
            "kubeforge {}\nKubernetes {} to {} (default {})\nCalico {}, flannel {}\n",
            report.kubeforge,
            report.kubernetes.oldest,
            report.kubernetes.newest,
            report.kubernetes.default,
            report.calico,
            report.flannel
        )),
    }
}

/// `plan` and `apply`: the build, or with `--restore-from` the restore's.
fn converge_run(
    printer: &Printer,
    args: &ConvergeArgs,
    mode: kubeforge_engine::Mode,
) -> Result<u8, Box<dyn std::error::Error>> {
    let restore = |cluster: &kubeforge_core::model::Cluster, parallel: usize| {
        let path = args
            .restore_from
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        crate::restore::job(printer, cluster, parallel, path)
    };
    let other: Option<converge::JobMaker> = args
        .restore_from
        .as_ref()
        .map(|_| &restore as converge::JobMaker);
    converge::run(printer, args, mode, other).map_err(Into::into)
}
