//! `kubeforge backup`: one file (a tar, mode 0600) with what a restore needs: an etcd
//! snapshot taken on a healthy member and verified, the cluster's CAs and service-account
//! keys, kubeadm's ClusterConfiguration, the VRRP password and the inventory, with a manifest
//! of every file's SHA-256. Refused unless every etcd member is healthy
//! ([`kubeforge_core::steps::backup`]). Secrets go into the file and nowhere else.

use std::path::PathBuf;
use std::time::Duration;

use kubeforge_core::backup_file::{Meta, assemble};
use kubeforge_core::hash::sha256_hex;
use kubeforge_core::steps::backup::BACKUP_JOB;

use crate::args::{DEFAULT_PARALLEL, InventoryArgs, exit};
use crate::converge::{self, ConvergeError};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// The file to write (mode 0600; replaced atomically). Default:
    /// $XDG_STATE_HOME/kubeforge/backups/CLUSTER/kubeforge-backup-TIME.tar, else under
    /// ~/.local/state.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How many hosts to ask at once.
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
}

pub fn run(printer: &Printer, args: &BackupArgs) -> Result<u8, ConvergeError> {
    let (cluster, loaded) = match converge::load_cluster_and_source(printer, &args.inventory)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let parallel = args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1);
    let (report, unreachable) =
        converge::observe(&cluster, None, parallel, false, |_| Box::new(BACKUP_JOB))?;
    for (host, why) in &unreachable {
        printer.note(&format!("{host}: does not answer over SSH ({why})"));
    }
    let node = match kubeforge_core::steps::backup::source(&cluster, &report.facts) {
        Ok(node) => node,
        Err(why) => {
            printer.error_line(&why);
            return Ok(exit::PROBLEMS);
        }
    };
    let created = kubeforge_engine::log::utc_now();
    printer.note(&format!(
        "an etcd snapshot on {}, with the CAs, the service-account keys, ClusterConfiguration and the VRRP password",
        node.node_name
    ));
    let out = match crate::remote::run(
        &cluster,
        node,
        &kubeforge_core::steps::backup::script(node),
        &format!("the backup on {}", node.node_name),
        Duration::from_secs(600),
    ) {
        Ok(out) if out.code == Some(0) => out,
        Ok(out) => {
            printer.error_line(&format!(
                "{}: the backup failed (exit {}): {}",
                node.node_name,
                out.code.map_or("none".to_string(), |c| c.to_string()),
                tail(&String::from_utf8_lossy(&out.stderr))
            ));
            return Ok(exit::PROBLEMS);
        }
        Err(e) => {
            printer.error_line(&format!("{}: {e}", node.node_name));
            return Ok(exit::PROBLEMS);
        }
    };
    let inventory_name = PathBuf::from(&loaded.path)
        .file_name()
        .map_or("inventory".to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
    let meta = Meta {
        cluster: cluster.vip_name(),
        created: &created,
        node: &node.node_name,
        inventory: (&inventory_name, &loaded.source),
    };
    let archive = match assemble(&out.stdout, &meta) {
        Ok(a) => a,
        Err(e) => {
            printer.error_line(&format!("{}: the backup it sent: {e}", node.node_name));
            return Ok(exit::PROBLEMS);
        }
    };
    let path = match &args.file {
        Some(p) => p.clone(),
        None => match converge::state_dir() {
            Some(d) => d.join("backups").join(cluster.vip_name()).join(format!(
                "kubeforge-backup-{}.tar",
                created.replace([':', '-'], "")
            )),
            None => {
                printer.error_line(
                    "neither XDG_STATE_HOME nor HOME is set: say where with --file FILE",
                );
                return Ok(exit::USAGE);
            }
        },
    };
    let written = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::files::write_private(&path, &archive));
    if let Err(e) = written {
        printer.error_line(&format!("{}: {e}", path.display()));
        return Ok(exit::USAGE);
    }
    printer.raw(&format!(
        "backup written to {} (mode 0600, {} bytes, sha256 {}): an etcd snapshot of {} taken at {created}, verified; the CAs and service-account keys; ClusterConfiguration; the VRRP password; the inventory {}\n",
        path.display(),
        archive.len(),
        sha256_hex(&archive),
        node.node_name,
        loaded.path
    ));
    Ok(exit::OK)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
