//! Arguments and exit codes shared by several commands. A leaf module: the commands import it,
//! it imports none of them.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::output::Format;

/// Exit codes, as documented in the README.
pub mod exit {
    /// Everything is in order (warnings may have been printed).
    pub const OK: u8 = 0;
    /// The command ran and found problems (invalid inventory, missing DNS records, a failed
    /// step).
    pub const PROBLEMS: u8 = 1;
    /// Wrong usage, or an input that could not be read.
    pub const USAGE: u8 = 2;
}

/// Where the inventory comes from and how results are printed: shared by commands that read
/// an inventory.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Inventory: an Ansible INI hosts file or a kubeforge cluster.yaml (format detected from
    /// the content); `-`: read from standard input. Default: ./cluster.yaml, else ./hosts, else
    /// the lab's inventory.
    #[arg(short, long, value_name = "FILE", env = "KUBEFORGE_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Text,
    Json,
}

impl InventoryArgs {
    pub fn format(&self) -> Format {
        match self.output {
            OutputArg::Text => Format::Text,
            OutputArg::Json => Format::Json,
        }
    }
}

/// What `apply` and the live `plan` take beyond the inventory.
#[derive(Debug, clap::Args)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// How many hosts to work on at once.
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Directory for per-host logs (HOST.log, appended to by every run). Default:
    /// $XDG_STATE_HOME/kubeforge/logs, else ~/.local/state/kubeforge/logs.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Stop after this phase (see `kubeforge plan --offline` for their names).
    #[arg(long, value_name = "PHASE", value_parser = phase_name)]
    pub until: Option<&'static str>,
    /// Start the cluster from a `kubeforge backup` file: its etcd snapshot, CAs and keys on
    /// the first control-plane node, then the others join. Only where no host holds a cluster
    /// (bare hosts, or after `kubeforge reset`); refused otherwise, with nothing changed.
    #[arg(long, value_name = "BACKUP", conflicts_with = "skip")]
    pub restore_from: Option<PathBuf>,
    /// Leave these hosts out (a host that is down): not contacted, nothing of them changed or
    /// decided. They stay in the cluster as they are: their Node, etcd member, keepalived peer
    /// and HAProxy backend are kept. A control-plane node can be skipped only while a cluster
    /// answers from another. To take a host out for good: `kubeforge reset --hosts HOST`.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub skip: Vec<String>,
}

/// A phase's name, as `--until` takes it.
fn phase_name(text: &str) -> Result<&'static str, String> {
    kubeforge_core::steps::PHASES
        .iter()
        .map(|p| p.name())
        .find(|name| *name == text)
        .ok_or_else(|| {
            format!(
                "no phase {text:?}; the phases are {}",
                kubeforge_core::steps::PHASES
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Hosts worked on at once unless `--parallel` says otherwise.
pub const DEFAULT_PARALLEL: usize = 32;
