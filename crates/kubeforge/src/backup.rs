//! `kubeforge backup`: one file (a tar, mode 0600) with what a restore needs: an etcd
//! snapshot taken on a healthy member and verified, the cluster's CAs and service-account
//! keys, kubeadm's ClusterConfiguration, the VRRP password and the inventory, with a manifest
//! of every file's SHA-256. Refused unless every etcd member is healthy
//! ([`kubeforge_core::steps::backup`]). Secrets go into the file and nowhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kubeforge_core::hash::sha256_hex;
use kubeforge_core::steps::backup::{BackupJob, KUBEADM_CONFIG, PKI, SNAPSHOT, VRRP_PASSWORD};

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

/// The manifest at the head of the archive.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The cluster's endpoint name.
    pub cluster: String,
    /// When the snapshot was taken (UTC).
    pub created: String,
    /// The control-plane node whose etcd member it was taken on.
    pub node: String,
    /// Each file of the archive and its SHA-256.
    pub files: BTreeMap<String, String>,
}

pub const MANIFEST: &str = "kubeforge-backup.json";

pub fn run(printer: &Printer, args: &BackupArgs) -> Result<u8, ConvergeError> {
    let (cluster, loaded) = match converge::load_cluster_and_source(printer, &args.inventory)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let parallel = args.parallel.unwrap_or(DEFAULT_PARALLEL).max(1);
    let (report, unreachable) =
        converge::observe(&cluster, None, parallel, false, |_| Box::new(BackupJob))?;
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

/// What the archive says of itself.
pub struct Meta<'a> {
    pub cluster: String,
    pub created: &'a str,
    pub node: &'a str,
    /// The inventory's file name and text.
    pub inventory: (&'a str, &'a str),
}

/// The archive, from the tar the node printed: every file it must hold checked (the snapshot
/// against its SHA-256 trailer), ClusterConfiguration taken out of its ConfigMap, the
/// inventory added, and the manifest first.
pub fn assemble(sent: &[u8], meta: &Meta) -> Result<Vec<u8>, String> {
    let mut got: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut reader = tar::Archive::new(sent);
    for entry in reader.entries().map_err(|e| format!("not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| e.to_string())?;
        got.insert(name, bytes);
    }
    let mut take = |name: &str| -> Result<Vec<u8>, String> {
        got.remove(name)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("{name} is missing or empty"))
    };
    let snapshot = take(SNAPSHOT)?;
    verify_snapshot(&snapshot)?;
    let config: serde_json::Value = serde_json::from_slice(&take(KUBEADM_CONFIG)?)
        .map_err(|e| format!("{KUBEADM_CONFIG}: {e}"))?;
    let cluster_configuration = config["data"]["ClusterConfiguration"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or("the kubeadm-config ConfigMap holds no ClusterConfiguration")?
        .to_string();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("etcd/snapshot.db".into(), snapshot),
        (
            "kubeadm/ClusterConfiguration.yaml".into(),
            cluster_configuration.into_bytes(),
        ),
        ("keepalived/vrrp-password".into(), take(VRRP_PASSWORD)?),
    ];
    for name in PKI {
        files.push((name.to_string(), take(name)?));
    }
    files.push((
        format!("inventory/{}", meta.inventory.0),
        meta.inventory.1.as_bytes().to_vec(),
    ));
    let manifest = Manifest {
        format: 1,
        cluster: meta.cluster.clone(),
        created: meta.created.to_string(),
        node: meta.node.to_string(),
        files: files
            .iter()
            .map(|(n, b)| (n.clone(), sha256_hex(b)))
            .collect(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in std::iter::once((MANIFEST.to_string(), manifest)).chain(files) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .map_err(|e| e.to_string())?;
    }
    builder.into_inner().map_err(|e| e.to_string())
}

/// An etcd snapshot ends with the SHA-256 of everything before it (what `etcdutl snapshot
/// restore` checks).
pub fn verify_snapshot(snapshot: &[u8]) -> Result<(), String> {
    let n = snapshot.len();
    if n % 512 != 32 {
        return Err(format!(
            "the etcd snapshot ({n} bytes) has no SHA-256 trailer"
        ));
    }
    let (body, trailer) = snapshot.split_at(n - 32);
    use sha2::Digest as _;
    if sha2::Sha256::digest(body).as_slice() != trailer {
        return Err("the etcd snapshot does not match its SHA-256 trailer".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Vec<u8> {
        use sha2::Digest as _;
        let body = vec![7u8; 1024];
        let mut s = body.clone();
        s.extend_from_slice(&sha2::Sha256::digest(&body));
        s
    }

    fn sent(skip: &str, snapshot: Vec<u8>) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (SNAPSHOT.into(), snapshot),
            (
                KUBEADM_CONFIG.into(),
                br#"{"data":{"ClusterConfiguration":"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"}}"#.to_vec(),
            ),
            (VRRP_PASSWORD.into(), b"s3cr3tpw\n".to_vec()),
        ];
        for p in PKI {
            files.push((p.to_string(), format!("-----BEGIN {p}-----\n").into_bytes()));
        }
        for (name, bytes) in files.into_iter().filter(|(n, _)| n != skip) {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, &name, bytes.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn meta() -> Meta<'static> {
        Meta {
            cluster: "k8scp.lab.test".into(),
            created: "2026-12-07T15:00:00Z",
            node: "k8scp01",
            inventory: ("cluster.yaml", "hosts: []\n"),
        }
    }

    #[test]
    fn the_archive_holds_the_manifest_then_every_file_with_its_digest() {
        let archive = assemble(&sent("", snapshot()), &meta()).unwrap();
        let mut names = Vec::new();
        let mut manifest = None;
        let mut contents = BTreeMap::new();
        for e in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mode().unwrap(), 0o600);
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b).unwrap();
            if name == MANIFEST {
                manifest = Some(serde_json::from_slice::<Manifest>(&b).unwrap());
            } else {
                contents.insert(name.clone(), b);
            }
            names.push(name);
        }
        assert_eq!(names[0], MANIFEST);
        let manifest = manifest.unwrap();
        assert_eq!(manifest.node, "k8scp01");
        assert_eq!(manifest.files.len(), contents.len());
        for (name, digest) in &manifest.files {
            assert_eq!(&sha256_hex(&contents[name]), digest, "{name}");
        }
        assert_eq!(
            contents["kubeadm/ClusterConfiguration.yaml"],
            b"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
        );
        assert_eq!(contents["inventory/cluster.yaml"], b"hosts: []\n");
        for p in PKI {
            assert!(contents.contains_key(p), "{p}");
        }
    }

    #[test]
    fn a_missing_file_or_a_snapshot_that_fails_its_trailer_is_refused() {
        for skip in [
            SNAPSHOT,
            KUBEADM_CONFIG,
            VRRP_PASSWORD,
            "pki/sa.key",
            "pki/etcd/ca.key",
        ] {
            let e = assemble(&sent(skip, snapshot()), &meta()).unwrap_err();
            assert!(e.contains(skip), "{skip}: {e}");
        }
        let mut bad = snapshot();
        bad[10] ^= 1;
        let e = assemble(&sent("", bad), &meta()).unwrap_err();
        assert!(e.contains("does not match its SHA-256 trailer"), "{e}");
        let e = assemble(&sent("", vec![1; 100]), &meta()).unwrap_err();
        assert!(e.contains("has no SHA-256 trailer"), "{e}");
    }
}
