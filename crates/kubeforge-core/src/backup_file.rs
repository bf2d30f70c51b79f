//! The file `kubeforge backup` writes and `apply --restore-from` reads: a tar whose first
//! entry is a manifest of every other file's SHA-256 ([`Manifest`]), then an etcd snapshot,
//! kubeadm's ClusterConfiguration, the VRRP password, the CAs and service-account keys and the
//! inventory. Pure: bytes in, bytes out.

use std::collections::BTreeMap;

use crate::hash::sha256_hex;
use crate::steps::backup::{KUBEADM_CONFIG, PKI, SNAPSHOT, VRRP_PASSWORD};

/// The snapshot, in the file.
pub const SNAPSHOT_FILE: &str = "etcd/snapshot.db";
/// kubeadm's ClusterConfiguration, in the file.
pub const CLUSTER_CONFIGURATION: &str = "kubeadm/ClusterConfiguration.yaml";
/// The VRRP password, in the file.
pub const VRRP_PASSWORD_FILE: &str = "keepalived/vrrp-password";

/// The manifest at the head of the archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    let mut got = entries(sent)?;
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
        (SNAPSHOT_FILE.into(), snapshot),
        (
            CLUSTER_CONFIGURATION.into(),
            cluster_configuration.into_bytes(),
        ),
        (VRRP_PASSWORD_FILE.into(), take(VRRP_PASSWORD)?),
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

/// A backup file, read and verified.
pub struct Backup {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The backup in `bytes`: its manifest, and every file it lists, each matching its SHA-256;
/// the files a restore needs all there; the snapshot passing its trailer.
pub fn read(bytes: &[u8]) -> Result<Backup, String> {
    let mut files = entries(bytes)?;
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
    for name in [SNAPSHOT_FILE, CLUSTER_CONFIGURATION, VRRP_PASSWORD_FILE]
        .into_iter()
        .chain(PKI)
    {
        if !manifest.files.contains_key(name) {
            return Err(format!("{name} is missing"));
        }
    }
    verify_snapshot(&files[SNAPSHOT_FILE])?;
    Ok(Backup { manifest, files })
}

/// What the first control-plane node receives: the snapshot and the PKI files, in a tar.
pub fn payload(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for name in std::iter::once(SNAPSHOT_FILE).chain(PKI) {
        let data = &files[name];
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice())?;
    }
    builder.into_inner()
}

/// Every file of the tar in `bytes`, by name.
fn entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
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
    Ok(files)
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
            (VRRP_PASSWORD.into(), b"s3cr3tpw\n".to_vec()),
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
        assert_eq!(read.files[VRRP_PASSWORD_FILE], b"s3cr3tpw\n");
        let payload = payload(&read.files).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(payload.as_slice()).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        let mut wanted = vec![SNAPSHOT_FILE.to_string()];
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
