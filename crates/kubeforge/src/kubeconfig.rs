//! `kubeforge kubeconfig`: the cluster's admin kubeconfig on the machine kubeforge runs on,
//! read over SSH from the first control-plane node that has one, with the control-plane
//! endpoint as its server; written to a file of its own (mode 0600) or merged into
//! `~/.kube/config` as a named context.

use std::path::{Path, PathBuf};

use kubeforge_core::kubeconfig;

use crate::args::{InventoryArgs, exit};
use crate::converge::{self, ConvergeError};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    /// Inventory (see `kubeforge apply --help`).
    #[arg(short, long, value_name = "FILE", env = "KUBEFORGE_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Write the kubeconfig to this file (mode 0600; replaced if it exists); `-`: to standard
    /// output (it holds the admin's private key: mind where it goes).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "kubeconfig",
        conflicts_with = "merge"
    )]
    pub file: PathBuf,
    /// Merge into $KUBECONFIG's first file, else ~/.kube/config, as a named context; its other
    /// clusters, users and contexts stay, and its current context too (when it has one).
    #[arg(long)]
    pub merge: bool,
    /// The name of the context, cluster and (with `-admin`) user. Default: the endpoint's name.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigCmdError {
    #[error(transparent)]
    Converge(#[from] ConvergeError),
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub fn run(printer: &Printer, args: &KubeconfigArgs) -> Result<u8, KubeconfigCmdError> {
    let inventory = InventoryArgs {
        inventory: args.inventory.clone(),
        output: crate::args::OutputArg::Text,
    };
    let cluster = match converge::load_cluster(printer, &inventory)? {
        Ok(cluster) => cluster,
        Err(code) => return Ok(code),
    };
    let name = args
        .context
        .clone()
        .unwrap_or_else(|| kubeconfig::default_name(&cluster));
    let (host, admin) = fetch(printer, &cluster)?;
    let config = kubeconfig::admin(&admin, &cluster, &name)?;
    if args.merge {
        let path = merge_target().ok_or_else(|| {
            KubeconfigCmdError::Fetch("neither KUBECONFIG nor HOME is set: use --file FILE".into())
        })?;
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(io(&path, source)),
        };
        let text = kubeconfig::merge(existing.as_deref(), &config)?;
        write_private(&path, &text)?;
        printer.note(&format!(
            "merged context {name} (from {host}) into {}; use it: kubectl --context {name} get nodes",
            path.display()
        ));
    } else if args.file.as_os_str() == "-" {
        printer.raw(&kubeconfig::to_yaml(&config)?);
    } else {
        write_private(&args.file, &kubeconfig::to_yaml(&config)?)?;
        printer.note(&format!(
            "wrote {} (from {host}, mode 0600); use it: kubectl --kubeconfig {} get nodes",
            args.file.display(),
            args.file.display()
        ));
    }
    Ok(exit::OK)
}

/// The file `--merge` writes to: $KUBECONFIG's first entry, else ~/.kube/config.
fn merge_target() -> Option<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Some(first);
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
}

fn io(path: &Path, source: std::io::Error) -> KubeconfigCmdError {
    KubeconfigCmdError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// [`crate::files::write_private`], its error naming the file.
fn write_private(path: &Path, text: &str) -> Result<(), KubeconfigCmdError> {
    crate::files::write_private(path, text.as_bytes()).map_err(|e| io(path, e))
}

/// The admin kubeconfig of the first control-plane node that has one, and that node's name.
fn fetch(
    printer: &Printer,
    cluster: &kubeforge_core::model::Cluster,
) -> Result<(String, String), KubeconfigCmdError> {
    /// How long reading the file on one node may take (it is small).
    const FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
    let mut problems = Vec::new();
    for node in cluster.control_planes() {
        printer.note(&format!(
            "reading the admin kubeconfig on {}",
            node.node_name
        ));
        let outcome = crate::remote::run(
            cluster,
            node,
            "if [ -f /etc/kubernetes/admin.conf ]; then cat /etc/kubernetes/admin.conf; else echo 'no /etc/kubernetes/admin.conf (no cluster here yet: kubeforge apply)' >&2; exit 3; fi",
            "reading /etc/kubernetes/admin.conf",
            FETCH_DEADLINE,
        );
        match outcome {
            Ok(out) if out.success() => {
                let text = String::from_utf8(out.stdout).map_err(|_| {
                    KubeconfigCmdError::Fetch(format!(
                        "{}: the admin kubeconfig is not UTF-8",
                        node.node_name
                    ))
                })?;
                return Ok((node.node_name.clone(), text));
            }
            Ok(out) => problems.push(format!(
                "{}: {}",
                node.node_name,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => problems.push(format!("{}: {e}", node.node_name)),
        }
    }
    Err(KubeconfigCmdError::Fetch(format!(
        "no control-plane node gave its admin kubeconfig: {}",
        problems.join("; ")
    )))
}
