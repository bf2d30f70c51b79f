//! Finding and reading the inventory.

use std::path::{Path, PathBuf};

use kubeforge_core::model::{self, Validated};
use kubeforge_core::version::Date;

use crate::args::InventoryArgs;
use crate::output::Printer;

/// Where `kubeforge lab up` writes its inventory (its directory follows KUBEFORGE_LAB_DIR).
fn lab_inventory() -> PathBuf {
    std::env::var_os("KUBEFORGE_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(kubeforge_lab::lab::DEFAULT_DIR))
        .join("cluster.yaml")
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the inventory {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no inventory given, and none of ./cluster.yaml, ./hosts or {} exists; pass one with -i FILE",
        .0.display()
    )]
    NotFound(PathBuf),
    #[error(
        "the inventory {} is larger than {} MiB, more than any inventory needs: is it the right file?",
        .0.display(),
        model::MAX_INVENTORY_BYTES >> 20
    )]
    TooLarge(PathBuf),
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
            let lab = lab_inventory();
            let found = [
                PathBuf::from("cluster.yaml"),
                PathBuf::from("hosts"),
                lab.clone(),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or(LoadError::NotFound(lab))?;
            printer.note(&format!("using inventory {}", found.display()));
            found
        }
    };
    let stdin = path.as_os_str() == "-";
    let source = if stdin {
        read_capped(std::io::stdin().lock(), &path)?
    } else {
        read(&path)?
    };
    let validated = model::load_on(&source, Some(today()));
    Ok(Loaded {
        path: if stdin {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        },
        source,
        validated,
    })
}

/// The inventory's text, at most [`model::MAX_INVENTORY_BYTES`] of it (`/dev/zero` or a
/// log given by mistake is refused, not read until memory runs out).
fn read(path: &Path) -> Result<String, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    read_capped(file, path)
}

/// At most [`model::MAX_INVENTORY_BYTES`] of `input` (a file, or standard input for `-i -`),
/// as UTF-8.
fn read_capped(input: impl std::io::Read, path: &Path) -> Result<String, LoadError> {
    use std::io::Read as _;
    let error = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    input
        .take(model::MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > model::MAX_INVENTORY_BYTES {
        return Err(LoadError::TooLarge(path.to_path_buf()));
    }
    String::from_utf8(bytes)
        .map_err(|e| error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Today's date (UTC), for end-of-life warnings. `KUBEFORGE_TODAY=YYYY-MM-DD` fixes it, so
/// that output that depends on the date can be reproduced.
pub fn today() -> Date {
    if let Some(date) = std::env::var("KUBEFORGE_TODAY")
        .ok()
        .as_deref()
        .and_then(Date::parse)
    {
        return date;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Date::from_unix_days((secs / 86_400) as i64)
}
