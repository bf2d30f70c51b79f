//! `kubeforge apply --restore-from` on the cluster the stand-ins simulate: a ConfigMap made
//! before a backup, another after; the restore refused while the cluster answers (nothing
//! changed); after `reset`, the restore brings back the first ConfigMap and not the second,
//! an admin kubeconfig copied before the backup still works, etcd has 3 members, every node
//! is Ready, and an apply afterwards changes nothing. The restore that succeeds is the
//! re-run of one killed while it put the backup in place (or, when the killed run's work went
//! on to start the cluster, the `apply` the re-run says to run).

use std::process::Stdio;
use std::time::Duration;

use kubeforge_lab::sys::wait_until;
use libtest_mimic::Trial;

use crate::cluster::{change_count, commands_since, now_ms, run_on as run, whole};
use crate::fixture::{CLUSTER, TestResult, ensure, kubeforge, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "restore::refused_on_a_live_cluster_then_after_reset_and_a_killed_run_brings_back_what_the_backup_held",
        restore,
    )]
}

const KUBECTL: &str = "kubectl --kubeconfig=/etc/kubernetes/admin.conf";

/// Makes the ConfigMap `name` in `default`, through k8scp01.
fn config_map(name: &str) -> Result<String, String> {
    lab()
        .map_err(|e| format!("{e:?}"))?
        .ssh(
            "k8scp01",
            &format!(
                "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: {name}\\n  namespace: default\\ndata:\\n  made: {name}\\n' | {KUBECTL} apply -f -"
            ),
        )
}

/// Whether the ConfigMap `name` exists, asked with `kubeconfig` on k8scp01 (`Err`: what
/// kubectl said otherwise).
fn has_config_map(kubeconfig: &str, name: &str) -> Result<Result<bool, String>, String> {
    let out = lab().map_err(|e| format!("{e:?}"))?.ssh(
        "k8scp01",
        &format!(
            "kubectl --kubeconfig={kubeconfig} -n default get configmap {name} -o json 2>&1 >/dev/null && echo yes; true"
        ),
    )?;
    Ok(match out.trim() {
        "yes" => Ok(true),
        e if e.contains("NotFound") => Ok(false),
        e => Err(e.to_string()),
    })
}

fn restore() -> TestResult {
    let f = lab()?;
    let dir = f.dir.join("restore-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("cluster.tar");
    let file_arg = file.to_str().unwrap_or_default();

    config_map("kf-before-backup")?;
    // An admin kubeconfig of before the backup, kept where reset does not look.
    f.ssh(
        "k8scp01",
        "install -m 0600 /etc/kubernetes/admin.conf /root/kf-admin-before-backup.conf",
    )?;
    let ca_before = f.ssh("k8scp01", "sha256sum /etc/kubernetes/pki/ca.crt")?;
    let backup = run(CLUSTER, &["backup", "--file", file_arg])?;
    ensure(backup.code == 0, || format!("backup:\n{}", backup.text()))?;
    config_map("kf-after-backup")?;

    // A cluster answers: refused, nothing changed.
    let admin = "sha256sum /etc/kubernetes/admin.conf";
    let before = f.ssh("k8scp01", admin)?;
    let refused = run(CLUSTER, &["apply", "--restore-from", file_arg])?;
    ensure(
        refused.code == 1
            && refused.stderr.contains(
                "the restore is refused, nothing was changed: a cluster answers on k8scp01",
            )
            && f.ssh("k8scp01", admin)? == before
            && has_config_map("/etc/kubernetes/admin.conf", "kf-after-backup")? == Ok(true),
        || format!("restore onto the live cluster:\n{}", refused.text()),
    )?;

    // A damaged backup: refused before any host is asked.
    let mut damaged = std::fs::read(&file)?;
    let at = damaged.len() / 2;
    damaged[at] ^= 0x55;
    let damaged_file = dir.join("damaged.tar");
    std::fs::write(&damaged_file, &damaged)?;
    let bad = run(
        CLUSTER,
        &[
            "apply",
            "--restore-from",
            damaged_file.to_str().unwrap_or_default(),
        ],
    )?;
    ensure(
        bad.code == 1 && bad.stderr.contains("not a usable kubeforge backup"),
        || format!("restore of a damaged backup:\n{}", bad.text()),
    )?;

    let reset = run(CLUSTER, &["reset", "--yes"])?;
    ensure(reset.code == 0, || format!("reset:\n{}", reset.text()))?;
    killed_mid_restore(file_arg)?;
    // The killed run's batch on k8scp01 goes on without it, up to kubeadm init: the re-run
    // then finds the restored cluster answering and says to finish it with `apply` (were the
    // batch stopped, the re-run would restore again).
    let mut restored = run(CLUSTER, &["apply", "--restore-from", file_arg])?;
    if restored.code == 1
        && restored
            .stderr
            .contains("`kubeforge apply` without --restore-from finishes it")
    {
        note("the re-run of apply --restore-from found the restored cluster: apply finishes it");
        restored = run(CLUSTER, &["apply"])?;
    }
    ensure(restored.code == 0, || {
        format!("apply --restore-from:\n{}", restored.text())
    })?;
    note(&format!(
        "a cluster restored from its backup (stand-ins): {:.1} s",
        restored.seconds
    ));
    whole(CLUSTER)?;
    let before_kept = has_config_map("/etc/kubernetes/admin.conf", "kf-before-backup")?;
    let after_gone = has_config_map("/etc/kubernetes/admin.conf", "kf-after-backup")?;
    let old_kubeconfig = has_config_map("/root/kf-admin-before-backup.conf", "kf-before-backup")?;
    let ca = f.ssh("k8scp01", "sha256sum /etc/kubernetes/pki/ca.crt")?;
    ensure(ca == ca_before, || {
        format!("the CA after the restore: {ca}, before: {ca_before}")
    })?;
    ensure(
        before_kept == Ok(true) && after_gone == Ok(false) && old_kubeconfig == Ok(true),
        || {
            format!(
                "after the restore: made before the backup there {before_kept:?}, made after there {after_gone:?}, asked with the kubeconfig of before {old_kubeconfig:?}"
            )
        },
    )?;
    let status = run(CLUSTER, &["status", "-o", "json"])?;
    let s: serde_json::Value = serde_json::from_str(&status.stdout)?;
    let members = s["etcd"].as_array().map_or(0, Vec::len);
    ensure(status.code == 0 && members == 3, || {
        format!(
            "status after the restore ({members} etcd members):\n{}",
            status.text()
        )
    })?;
    // Nothing of the backup is printed, nothing stays on the host.
    let key = f.ssh("k8scp01", "sed -n 2p /etc/kubernetes/pki/ca.key")?;
    let left = f.ssh(
        "k8scp01",
        "ls -d /var/lib/kubeforge/.restore.* /var/lib/etcd.kubeforge-restore 2>/dev/null; true",
    )?;
    ensure(
        !key.trim().is_empty() && !restored.text().contains(key.trim()) && left.trim().is_empty(),
        || format!("after the restore: a secret printed, or left on the host: {left}"),
    )?;
    let again = run(CLUSTER, &["apply", "-o", "json"])?;
    ensure(again.code == 0 && change_count(&again.stdout)? == 0, || {
        format!(
            "apply after the restore changed something:\n{}",
            again.text()
        )
    })?;
    f.ssh("k8scp01", "rm -f /root/kf-admin-before-backup.conf")?;
    Ok(())
}

/// Starts `apply --restore-from FILE` and kills it while the backup is being put in place on
/// k8scp01 (its script asks kubeadm for the etcd image, after making the init marker). What
/// it had sent goes on there without it: whether a cluster starts is not for the kill to say.
fn killed_mid_restore(file: &str) -> TestResult {
    let f = lab()?;
    let since = now_ms();
    let mut child = kubeforge()
        .args(["apply", "--restore-from", file, "-i"])
        .arg(f.inventory_of(CLUSTER)?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mid = wait_until(Duration::from_secs(300), || {
        commands_since(since).is_ok_and(|c| {
            c.iter().any(|c| {
                c.program == "kubeadm"
                    && ["images", "list", "--config"]
                        .iter()
                        .all(|w| c.argv.iter().any(|a| a == w))
            })
        })
    });
    child.kill()?;
    child.wait()?;
    ensure(mid, || {
        "apply --restore-from never began to put the backup in place".into()
    })?;
    let marker = f.ssh(
        "k8scp01",
        &format!(
            "test -f {} && echo yes; true",
            kubeforge_core::facts::INIT_MARKER
        ),
    )?;
    ensure(marker.trim() == "yes", || {
        "killed, and k8scp01 has no init marker".into()
    })?;
    note("apply --restore-from killed while it put the backup in place");
    Ok(())
}
