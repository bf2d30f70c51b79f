//! `kubeforge backup` of the real cluster: one file of mode 0600 whose SHA-256 is the one
//! printed, with a real etcd snapshot (verified by kubeforge against its SHA-256 trailer), the
//! CAs and service-account keys, ClusterConfiguration, the VRRP password and the inventory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kubeforge_lab::Lab;

use super::{Result, ensure, kubeforge, note};

/// The backup's path.
pub fn taken(dir: &Path, lab: &Lab, inv: &str, timings: &mut Vec<String>) -> Result<PathBuf> {
    let file = lab.dir().join("backup/cluster.tar");
    let _ = std::fs::remove_file(&file);
    let out = kubeforge(
        dir,
        &["backup", "--file", &file.to_string_lossy(), "-i", inv],
    )?;
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mode = std::fs::metadata(&file)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o777;
    let digest = kubeforge_core::hash::sha256_hex(&bytes);
    ensure(mode == 0o600 && out.stdout.contains(&digest), || {
        format!("backup: mode {mode:o}, sha256 {digest}:\n{}", out.stdout)
    })?;
    let mut sizes = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(bytes.as_slice());
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        sizes.insert(name, entry.size());
    }
    for expected in [
        "kubeforge-backup.json",
        "etcd/snapshot.db",
        "kubeadm/ClusterConfiguration.yaml",
        "keepalived/vrrp-password",
        "pki/ca.key",
        "pki/sa.key",
        "pki/etcd/ca.key",
        "pki/front-proxy-ca.key",
    ] {
        ensure(sizes.get(expected).is_some_and(|s| *s > 0), || {
            format!("the backup lacks {expected}: {sizes:?}")
        })?;
    }
    note(&format!(
        "real_bundle: backup: {} bytes, an etcd snapshot of {} bytes",
        bytes.len(),
        sizes["etcd/snapshot.db"]
    ));
    timings.push(format!("backup: {:.1} s", out.seconds));
    Ok(file)
}
