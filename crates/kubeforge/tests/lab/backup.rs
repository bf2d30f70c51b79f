//! `kubeforge backup` on the cluster the stand-ins simulate: refused with a foreign etcd
//! member (nothing written); then one file of mode 0600 whose SHA-256 is the one printed, with
//! the manifest, the verified snapshot, the CAs and service-account keys, ClusterConfiguration,
//! the VRRP password and the inventory; no secret in what it printed.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use libtest_mimic::Trial;

use crate::cluster::record;
use crate::fixture::{CLUSTER, TestResult, ensure, kubeforge, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "backup::refused_with_a_foreign_member_then_one_private_file_with_what_a_restore_needs",
        backup,
    )]
}

fn run(file: &std::path::Path) -> Result<crate::cluster::Run, libtest_mimic::Failed> {
    let f = lab()?;
    let started = Instant::now();
    let out = kubeforge()
        .arg("backup")
        .arg("--file")
        .arg(file)
        .arg("-i")
        .arg(f.inventory_of(CLUSTER)?)
        .output()?;
    Ok(record(out, started))
}

fn backup() -> TestResult {
    let f = lab()?;
    let file = f.dir.join("backup-test/cluster.tar");
    let _ = std::fs::remove_dir_all(f.dir.join("backup-test"));

    let refused = f.with_foreign_member("10.213.0.97", || run(&file))?;
    ensure(
        refused.code == 1
            && refused.stderr.contains(
                "the backup is refused, nothing was written: etcd has 3 of 4 members healthy",
            )
            && !file.exists(),
        || format!("backup with a foreign member:\n{}", refused.text()),
    )?;

    let made = run(&file)?;
    ensure(made.code == 0, || format!("backup:\n{}", made.text()))?;
    note(&format!("backup (stand-ins): {:.1} s", made.seconds));
    let bytes = std::fs::read(&file)?;
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    let digest = kubeforge_core::hash::sha256_hex(&bytes);
    ensure(mode == 0o600 && made.stdout.contains(&digest), || {
        format!(
            "backup file mode {mode:o}, sha256 {digest}:\n{}",
            made.text()
        )
    })?;
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(bytes.as_slice());
    for entry in archive.entries()? {
        names.push(entry?.path()?.to_string_lossy().into_owned());
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
        "inventory/test-cluster.yaml",
    ] {
        ensure(names.iter().any(|n| n == expected), || {
            format!("the backup lacks {expected}: {names:?}")
        })?;
    }
    // No secret in what it printed.
    let vrrp = f.ssh(
        "k8scp01",
        "sed -n 's/^[[:space:]]*auth_pass[[:space:]]*//p' /etc/keepalived/keepalived.conf",
    )?;
    let key = f.ssh("k8scp01", "sed -n 2p /etc/kubernetes/pki/ca.key")?;
    ensure(
        !vrrp.trim().is_empty()
            && !made.text().contains(vrrp.trim())
            && !made.text().contains(key.trim()),
        || "backup printed a secret".into(),
    )
}
