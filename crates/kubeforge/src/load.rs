//! Finding and reading the inventory.

use std::path::{Path, PathBuf};

use kubeforge_core::model::{self, Validated};

use crate::cli::InventoryArgs;
use crate::output::Printer;

/// The lab writes its inventory here (see `kubeforge lab up`).
pub const LAB_INVENTORY: &str = "/var/lib/kubeforge/lab/cluster.yaml";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the inventory {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no inventory given, and none of ./cluster.yaml, ./hosts or {LAB_INVENTORY} exists; pass one with -i FILE"
    )]
    NotFound,
}

pub struct Loaded {
    /// The path as shown in diagnostics.
    pub path: String,
    pub source: String,
    pub validated: Validated,
}

pub fn load(printer: &Printer, args: &InventoryArgs) -> Result<Loaded, LoadError> {
    let path = match &args.inventory {
        Some(path) => path.clone(),
        None => {
            let found = ["cluster.yaml", "hosts", LAB_INVENTORY]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or(LoadError::NotFound)?;
            printer.note(&format!("using inventory {}", found.display()));
            found
        }
    };
    let source = read(&path)?;
    let validated = model::load(&source);
    Ok(Loaded {
        path: path.display().to_string(),
        source,
        validated,
    })
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}
