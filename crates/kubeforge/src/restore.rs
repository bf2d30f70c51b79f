//! `kubeforge apply --restore-from BACKUP`: reads and verifies a `kubeforge backup` file
//! (every file against the manifest's SHA-256, the snapshot against its trailer), checks that
//! it fits this inventory and that no host holds a cluster, and gives the engine the build
//! that starts the cluster from it ([`kubeforge_core::steps::restore`]). Nothing of the backup
//! is printed; it reaches the first control-plane node on standard input only.

use std::collections::BTreeMap;
use std::path::Path;

use kubeforge_core::hash::sha256_hex;
use kubeforge_core::model::Cluster;
use kubeforge_core::steps::backup::PKI;
use kubeforge_core::steps::restore::{self, Restore, RestoreBuild, Survey};

use crate::args::exit;
use crate::backup::{MANIFEST, Manifest, verify_snapshot};
use crate::converge::{self, ConvergeError};
use crate::output::Printer;

const CLUSTER_CONFIGURATION: &str = "kubeadm/ClusterConfiguration.yaml";
const VRRP_PASSWORD: &str = "keepalived/vrrp-password";

/// The build that restores `path` onto the hosts of `cluster`, once the backup was read and
/// verified and every host was found without a cluster; `Err`: the exit code, after saying why.
pub fn job(
    printer: &Printer,
    cluster: &Cluster,
    parallel: usize,
    path: &Path,
) -> Result<Result<RestoreBuild, u8>, ConvergeError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::USAGE));
        }
    };
    let backup = match read(&bytes) {
        Ok(b) => b,
        Err(e) => {
            printer.error_line(&format!(
                "{}: not a usable kubeforge backup: {e}",
                path.display()
            ));
            return Ok(Err(exit::PROBLEMS));
        }
    };
    let config = String::from_utf8_lossy(&backup.files[CLUSTER_CONFIGURATION]).into_owned();
    match restore::mismatches(cluster, &config) {
        Ok(found) if found.is_empty() => {}
        Ok(found) => {
            printer.error_line(&format!(
                "{}: the restore is refused, nothing was changed: the backup does not fit this inventory: {}",
                path.display(),
                found.join("; ")
            ));
            return Ok(Err(exit::PROBLEMS));
        }
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::PROBLEMS));
        }
    }
    let (report, unreachable) =
        converge::observe(cluster, None, parallel, false, |_| Box::new(Survey))?;
    if !unreachable.is_empty() {
        for (host, why) in &unreachable {
            printer.error_line(&format!("{host}: {why}"));
        }
        printer.note("the restore is refused, nothing was changed: every host must answer");
        return Ok(Err(exit::PROBLEMS));
    }
    if let Err(why) = restore::check(cluster, &report.facts) {
        printer.error_line(&why);
        return Ok(Err(exit::PROBLEMS));
    }
    let m = &backup.manifest;
    printer.note(&format!(
        "restoring {}: the etcd snapshot of {} taken on {} at {}, with its CAs and service-account keys",
        path.display(),
        m.cluster,
        m.node,
        m.created
    ));
    let payload = match payload(&backup.files) {
        Ok(p) => p,
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::PROBLEMS));
        }
    };
    Ok(Ok(RestoreBuild::new(Restore {
        payload,
        taken: format!("on {} at {}", m.node, m.created),
        vrrp_secret: String::from_utf8_lossy(&backup.files[VRRP_PASSWORD])
            .trim()
            .to_string(),
    })))
}

/// A backup file, read and verified.
pub struct Backup {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The backup in `bytes`: its manifest, and every file it lists, each matching its SHA-256;
/// the files a restore needs all there; the snapshot passing its trailer.
pub fn read(bytes: &[u8]) -> Result<Backup, String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(|e| format!("not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("not a tar: {e}"))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| format!("{name}: {e}"))?;
        files.insert(name, data);
    }
    let manifest: Manifest = serde_json::from_slice(
        &files
            .remove(MANIFEST)
            .ok_or_else(|| format!("it has no {MANIFEST}"))?,
    )
    .map_err(|e| format!("{MANIFEST}: {e}"))?;
    if manifest.format != 1 {
        return Err(format!(
            "{MANIFEST}: format {} (this kubeforge reads format 1)",
            manifest.format
        ));
    }
    for (name, digest) in &manifest.files {
        let data = files
            .get(name)
            .ok_or_else(|| format!("{name} is listed in {MANIFEST} but missing"))?;
        if &sha256_hex(data) != digest {
            return Err(format!(
                "{name} does not match its SHA-256 in {MANIFEST}: the file is damaged"
            ));
        }
    }
    for name in [restore::SNAPSHOT, CLUSTER_CONFIGURATION, VRRP_PASSWORD]
        .into_iter()
        .chain(PKI)
    {
        if !manifest.files.contains_key(name) {
            return Err(format!("{name} is missing"));
        }
    }
    verify_snapshot(&files[restore::SNAPSHOT])?;
    Ok(Backup { manifest, files })
}

/// What the first control-plane node receives: the snapshot and the PKI files, in a tar.
fn payload(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for name in std::iter::once(restore::SNAPSHOT).chain(PKI) {
        let data = &files[name];
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{Meta, assemble};
    use kubeforge_core::steps::backup::{KUBEADM_CONFIG, SNAPSHOT, VRRP_PASSWORD as SENT_VRRP};

    fn backup() -> Vec<u8> {
        use sha2::Digest as _;
        let body = vec![7u8; 1024];
        let mut snapshot = body.clone();
        snapshot.extend_from_slice(&sha2::Sha256::digest(&body));
        let mut b = tar::Builder::new(Vec::new());
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (SNAPSHOT.into(), snapshot),
            (
                KUBEADM_CONFIG.into(),
                br#"{"data":{"ClusterConfiguration":"kind: ClusterConfiguration\n"}}"#.to_vec(),
            ),
            (SENT_VRRP.into(), b"s3cr3tpw\n".to_vec()),
        ];
        for p in PKI {
            files.push((p.to_string(), format!("-----BEGIN {p}-----\n").into_bytes()));
        }
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, &name, bytes.as_slice()).unwrap();
        }
        let meta = Meta {
            cluster: "k8scp.lab.test".into(),
            created: "2026-12-07T15:00:00Z",
            node: "k8scp01",
            inventory: ("cluster.yaml", "hosts: []\n"),
        };
        assemble(&b.into_inner().unwrap(), &meta).unwrap()
    }

    #[test]
    fn a_backup_is_read_whole_and_its_payload_holds_the_snapshot_and_the_pki() {
        let read = read(&backup()).unwrap();
        assert_eq!(read.manifest.node, "k8scp01");
        assert_eq!(read.files[VRRP_PASSWORD], b"s3cr3tpw\n");
        let payload = payload(&read.files).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(payload.as_slice()).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        let mut wanted = vec![restore::SNAPSHOT.to_string()];
        wanted.extend(PKI.iter().map(|p| p.to_string()));
        assert_eq!(names, wanted);
    }

    #[test]
    fn a_damaged_or_partial_backup_is_refused() {
        let good = backup();
        // A byte of a file changed: its digest no longer matches.
        let mut bad = good.clone();
        let at = bad.windows(13).position(|w| w == b"-----BEGIN pk").unwrap();
        bad[at] ^= 1;
        let e = read(&bad).err().unwrap();
        assert!(
            e.contains("does not match its SHA-256 in kubeforge-backup.json"),
            "{e}"
        );
        // Not a tar, or no manifest.
        assert!(read(b"hello").is_err());
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "x", &b"x"[..]).unwrap();
        let e = read(&b.into_inner().unwrap()).err().unwrap();
        assert!(e.contains("it has no kubeforge-backup.json"), "{e}");
    }
}
