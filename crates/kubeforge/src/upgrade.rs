//! `kubeforge upgrade`: the cluster moved to another Kubernetes version, one node at a time
//! (`kubeforge_core::steps::upgrade`). Checks and the etcd snapshot first; the snapshot is
//! copied to this machine before any node is touched; then the nodes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kubeforge_core::model::PackageSource;
use kubeforge_core::steps::upgrade::{UpgradeJob, snapshot_path};
use kubeforge_core::version::KubeVersion;
use kubeforge_engine::{Mode, Report};

use crate::args::{DEFAULT_PARALLEL, InventoryArgs, exit};
use crate::converge::{self, ConvergeError, Settings};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// The version to upgrade to (`1.36`, `1.36.2`). Default: the inventory's
    /// kubernetes_version, or its bundle's. One minor at a time; never a downgrade.
    #[arg(long, value_name = "VERSION", value_parser = version)]
    pub to: Option<KubeVersion>,
    /// The offline bundle of the new version (instead of the inventory's `packages.bundle`).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// How many workers are drained and upgraded at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_unavailable: usize,
    /// Show the upgrade's checks and steps, node by node; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Where the etcd snapshot taken before the upgrade is copied on this machine. Default:
    /// $XDG_STATE_HOME/kubeforge/backups, else ~/.local/state/kubeforge/backups.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How many hosts to work on at once (facts, images).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Directory for per-host logs (see `kubeforge apply --help`).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

fn version(text: &str) -> Result<KubeVersion, String> {
    KubeVersion::parse(text).map_err(|e| match e {
        kubeforge_core::version::VersionError::Unsupported(minor) => {
            format!("Kubernetes 1.{minor} is not one kubeforge installs (see `kubeforge version`)")
        }
        kubeforge_core::version::VersionError::Malformed => {
            "expected a version like 1.36 or 1.36.2".to_string()
        }
    })
}

pub fn run(printer: &Printer, args: &UpgradeArgs) -> Result<u8, ConvergeError> {
    let mut cluster = match converge::load_cluster(printer, &args.inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    if let Some(dir) = &args.bundle {
        cluster.packages = PackageSource::Bundle { path: dir.clone() };
    }
    let bundle = converge::offline_bundle(printer, &mut cluster)?;
    match (&bundle, args.to) {
        (Some(b), Some(to))
            if to.minor != b.version.minor
                || to.patch.is_some_and(|p| Some(p) != b.version.patch) =>
        {
            printer.error_line(&format!(
                "upgrade --to {to}: the bundle holds Kubernetes {}; give the bundle of {to} (--bundle DIR)",
                b.version
            ));
            return Ok(exit::PROBLEMS);
        }
        (None, Some(to)) => cluster.kubernetes = to,
        (None, None) if !cluster.kubernetes_set => {
            printer.error_line(
                "upgrade: say which version to upgrade to: --to VERSION, or kubernetes_version in the inventory",
            );
            return Ok(exit::USAGE);
        }
        _ => {}
    }
    let target = cluster.kubernetes;
    printer.note(&format!(
        "upgrade to Kubernetes {target}{}",
        bundle
            .as_ref()
            .map(|b| format!(" from the bundle {}", b.dir.display()))
            .unwrap_or_default()
    ));
    let settings = |job: UpgradeJob, mode: Mode| Settings {
        mode,
        parallel: args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
        log_dir: args.log_dir.clone().or_else(converge::default_log_dir),
        bundle: bundle.clone(),
        until: None,
        job: Box::new(job),
    };
    let job = || UpgradeJob::new(&cluster, args.max_unavailable);
    let format = args.inventory.format();
    if args.plan {
        return converge::run_engine(printer, &cluster, settings(job(), Mode::Plan), format);
    }
    // Two runs of the engine, one report: the checks and the snapshot, the snapshot copied
    // here, then the nodes.
    let started = Instant::now();
    let log_dir = args.log_dir.clone().or_else(converge::default_log_dir);
    let print = |report: &Report| {
        converge::print_report(
            printer,
            report,
            Mode::Apply,
            format,
            log_dir.clone(),
            started,
        )
    };
    let first = match converge::execute_or_say(
        printer,
        &cluster,
        settings(job().snapshot_only(), Mode::Apply),
    )? {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    if !first.errors.is_empty() {
        return Ok(print(&first));
    }
    if let Err(problem) = copy_snapshot(printer, &cluster, &format!("v{target}"), args) {
        printer.error_line(&format!("the etcd snapshot: {problem}"));
        printer.note("stopped before any node was upgraded: nothing else changed");
        return Ok(exit::PROBLEMS);
    }
    let rest = match converge::execute_or_say(
        printer,
        &cluster,
        settings(job().without_snapshot(), Mode::Apply),
    )? {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    Ok(print(&first.then(rest)))
}

/// Copies the snapshot taken before the upgrade from the first control-plane node to this
/// machine (mode 0600), unless it is here already; nothing when no snapshot was needed.
fn copy_snapshot(
    printer: &Printer,
    cluster: &kubeforge_core::model::Cluster,
    target: &str,
    args: &UpgradeArgs,
) -> Result<(), String> {
    let remote = snapshot_path(target);
    let dir = args
        .backup_dir
        .clone()
        .or_else(|| converge::state_dir().map(|d| d.join("backups")))
        .ok_or("neither XDG_STATE_HOME nor HOME is set: use --backup-dir DIR")?
        .join(cluster.vip_name());
    let name = remote.rsplit('/').next().unwrap_or("etcd.db");
    let local = dir.join(name);
    if local.exists() {
        return Ok(());
    }
    let first = cluster.first_control_plane();
    let out = crate::remote::run(
        cluster,
        first,
        &format!(
            "if [ -f {0} ]; then cat {0}; else exit 3; fi",
            kubeforge_core::shell::quote(&remote)
        ),
        &format!("reading {remote} on {}", first.node_name),
        Duration::from_secs(300),
    )?;
    match out.code {
        Some(0) => {}
        // No snapshot: no node needed upgrading.
        Some(3) => return Ok(()),
        _ => {
            return Err(format!(
                "reading {remote} on {}: {}",
                first.node_name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::files::write_private(&local, &out.stdout)
        .map_err(|e| format!("{}: {e}", local.display()))?;
    printer.note(&format!(
        "etcd snapshot copied to {} (mode 0600, {} bytes, sha256 {}); on {}: {remote}",
        local.display(),
        out.stdout.len(),
        kubeforge_core::hash::sha256_hex(&out.stdout),
        first.node_name
    ));
    Ok(())
}
