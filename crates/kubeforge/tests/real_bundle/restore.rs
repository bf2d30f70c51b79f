//! `kubeforge apply --restore-from` on the real cluster: a ConfigMap and a kubeconfig made
//! before the backup, another ConfigMap after it; the restore refused while the cluster
//! answers; after `reset`, the restore brings back the ConfigMap of before and not the one of
//! after, the kubeconfig of before still works through the VIP, etcd has 3 healthy members and
//! every node is Ready.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubeforge_lab::Lab;

use super::{CLUSTER, KUBECTL, Result, ensure, kubeforge, note, ssh, whole};

fn config_map(lab: &Lab, name: &str) -> Result<()> {
    ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} -n default create configmap {name} --from-literal=made={name}"),
    )
    .map(|_| ())
}

/// Before the backup: a ConfigMap, and an admin kubeconfig fetched to this machine (its path).
pub fn before_backup(dir: &Path, lab: &Lab, inv: &str) -> Result<PathBuf> {
    config_map(lab, "kf-before-backup")?;
    let file = lab.dir().join("admin-before-backup.conf");
    kubeforge(
        dir,
        &["kubeconfig", "-i", inv, "--file", &file.to_string_lossy()],
    )?;
    Ok(file)
}

/// After the backup: another ConfigMap; a restore now is refused and changes nothing.
pub fn after_backup(dir: &Path, lab: &Lab, inv: &str, backup: &Path) -> Result<()> {
    config_map(lab, "kf-after-backup")?;
    let refused = restore_from(dir, inv, backup);
    ensure(
        refused.as_ref().is_err_and(|e| {
            e.contains("the restore is refused, nothing was changed: a cluster answers on")
        }),
        || {
            format!(
                "a restore onto the live cluster: {:?}",
                refused.map(|o| o.stdout)
            )
        },
    )?;
    ensure(has(lab, "kf-after-backup")?, || {
        "the refused restore changed the cluster".into()
    })
}

/// `kubeforge apply --restore-from BACKUP -i INV`.
fn restore_from(dir: &Path, inv: &str, backup: &Path) -> Result<super::Out> {
    kubeforge(
        dir,
        &[
            "apply",
            "--restore-from",
            &backup.to_string_lossy(),
            "-i",
            inv,
        ],
    )
}

fn has(lab: &Lab, name: &str) -> Result<bool> {
    let out = ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} -n default get configmap {name} -o name 2>&1; true"),
    )?;
    if out.contains("NotFound") {
        Ok(false)
    } else if out.trim() == format!("configmap/{name}") {
        Ok(true)
    } else {
        Err(format!("kubectl get configmap {name}: {out}"))
    }
}

/// On the reset hosts: the restore, and what it must bring back.
pub fn restored(
    dir: &Path,
    lab: &Lab,
    bundle: &Path,
    inv: &str,
    backup: &Path,
    kubeconfig: &Path,
    timings: &mut Vec<String>,
) -> Result<()> {
    let out = restore_from(dir, inv, backup)?;
    whole(lab, CLUSTER)?;
    ensure(
        has(lab, "kf-before-backup")? && !has(lab, "kf-after-backup")?,
        || {
            "after the restore: the ConfigMap of before the backup is missing, or the one of after is there".into()
        },
    )?;
    let vip = lab.state().map_err(|e| e.to_string())?.plan.vip;
    let old = Command::new(bundle.join("bin/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--server")
        .arg(format!("https://{vip}:8443"))
        .args([
            "-n",
            "default",
            "get",
            "configmap",
            "kf-before-backup",
            "-o",
            "name",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    ensure(old.status.success(), || {
        format!(
            "the kubeconfig fetched before the backup, after the restore: {}",
            String::from_utf8_lossy(&old.stderr)
        )
    })?;
    let status = kubeforge(dir, &["status", "-o", "json", "-i", inv])?;
    let s: serde_json::Value =
        serde_json::from_str(&status.stdout).map_err(|e| format!("status -o json: {e}"))?;
    let members = s["etcd"].as_array().cloned().unwrap_or_default();
    ensure(s["healthy"] == true && members.len() == 3, || {
        format!("status after the restore:\n{}", status.stdout)
    })?;
    note(
        "real_bundle: restored: the ConfigMap of before back, the one of after gone, the old kubeconfig works, etcd 3 members",
    );
    timings.push(format!(
        "restore from the backup onto the reset hosts: {:.1} s ({})",
        out.seconds,
        super::phases(&out)
    ));
    Ok(())
}
