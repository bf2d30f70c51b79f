//! `kubeforge certs renew`: every certificate kubeadm manages renewed on each control-plane
//! node in turn ([`kubeforge_core::steps::certs`]), stamped with this run's start.

use std::path::PathBuf;

use kubeforge_core::steps::certs::RenewJob;
use kubeforge_engine::Mode;

use crate::args::{DEFAULT_PARALLEL, InventoryArgs};
use crate::converge::{self, ConvergeError, Settings};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Renew every certificate kubeadm manages (`kubeadm certs renew all`) on each
    /// control-plane node, one node at a time: its kube-apiserver out of every HAProxy, the
    /// certificates renewed, its etcd, kube-apiserver, controller-manager and scheduler
    /// restarted on them and waited for, back in HAProxy; the admin kubeconfigs kubeforge
    /// copied (root, the login user) refreshed. The API answers through the VIP throughout.
    /// Refused, changing nothing, unless every control-plane node is Ready and etcd whole.
    /// `kubeforge status` shows the expiry; an upgrade renews them too.
    Renew(RenewArgs),
}

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Show the renewal's checks and steps, node by node; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// How many hosts to ask at once (facts).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Directory for per-host logs (see `kubeforge apply --help`).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

pub fn run(printer: &Printer, args: &CertsArgs) -> Result<u8, ConvergeError> {
    let CertsCommand::Renew(args) = &args.command;
    let mut cluster = match converge::load_cluster(printer, &args.inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    let bundle = converge::offline_bundle(printer, &mut cluster)?;
    let stamp = kubeforge_engine::log::utc_now();
    let mode = if args.plan { Mode::Plan } else { Mode::Apply };
    let settings = Settings {
        mode,
        parallel: args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
        log_dir: args.log_dir.clone().or_else(converge::default_log_dir),
        bundle,
        until: None,
        job: Box::new(RenewJob::new(&cluster, &stamp)),
    };
    let code = converge::run_engine(printer, &cluster, settings, args.inventory.format())?;
    if mode == Mode::Apply && code == crate::args::exit::OK {
        printer.note(
            "the admin kubeconfigs on the control-plane nodes were refreshed; a kubeconfig fetched earlier keeps working until its own certificate expires: fetch a new one with `kubeforge kubeconfig`",
        );
    }
    Ok(code)
}
