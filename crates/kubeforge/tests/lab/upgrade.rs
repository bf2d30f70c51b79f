//! `kubeforge upgrade` on the lab, with the test stand-ins (they prove nothing about the real
//! `kubeadm upgrade`; the opt-in real-bundle test does): the 3+1 cluster of the test bundle
//! (v1.34.2) moved to a bundle of the stand-ins stamped v1.34.3. The plan; a version the bundle
//! does not hold refused; the upgrade killed during the second control-plane node's turn and
//! run again; then every kubelet and static pod on v1.34.3, no node cordoned, every
//! kube-apiserver back in every HAProxy, the etcd snapshot here (mode 0600, its SHA-256
//! trailer whole); a second upgrade and an apply change nothing; going back down is refused,
//! and so is an apply of the old version (it says to run `kubeforge upgrade`).
//! At the end the hosts are reset with `--all`, so later scenarios install v1.34.2 again.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use libtest_mimic::Trial;

use crate::cluster::{Run, change_count, record, state, whole};
use crate::fixture::{CLUSTER, TestResult, ensure, kubeforge, lab, note};

const TARGET: &str = "v1.34.3";

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "upgrade::a_killed_upgrade_completes_when_run_again_and_then_nothing_changes",
        upgrade,
    )]
}

/// `kubeforge ARGS -i inventory`.
fn run(inventory: &std::path::Path, args: &[&str]) -> Result<Run, libtest_mimic::Failed> {
    let started = Instant::now();
    let output = kubeforge().args(args).arg("-i").arg(inventory).output()?;
    Ok(record(output, started))
}

fn upgrade() -> TestResult {
    let f = lab()?;
    let old = f.inventory_of(CLUSTER)?;
    let bundle = f.dir.join("test-bundle-next");
    let _ = std::fs::remove_dir_all(&bundle);
    let made = Command::new(crate::fixture::standin_bundle()?)
        .arg(&bundle)
        .args(["--stamp", TARGET])
        .output()?;
    ensure(made.status.success(), || {
        format!(
            "standin-bundle --stamp: {}",
            String::from_utf8_lossy(&made.stderr)
        )
    })?;
    let new = f.dir.join("test-cluster-next.yaml");
    let text = std::fs::read_to_string(&old)?.replace(
        &format!("bundle: {}\n", f.bundle.display()),
        &format!("bundle: {}\n", bundle.display()),
    );
    std::fs::write(&new, text)?;
    let backups = f.dir.join("upgrade-backups");
    let _ = std::fs::remove_dir_all(&backups);
    let b = backups.display().to_string();

    let plan = run(&new, &["upgrade", "--plan"])?;
    ensure(plan.code == 0, || {
        format!("upgrade --plan:\n{}", plan.text())
    })?;
    for expected in [
        "etcd snapshot before the upgrade, verified",
        "take k8scp01's kube-apiserver out of HAProxy here (maintenance)",
        "kubeadm upgrade plan, then kubeadm upgrade apply v1.34.3",
        "upgrade: kubeadm upgrade node",
        "cordon and drain k8s01",
    ] {
        ensure(plan.stdout.contains(expected), || {
            format!("upgrade --plan lacks {expected:?}:\n{}", plan.stdout)
        })?;
    }
    let wrong = run(&new, &["upgrade", "--to", "1.34.9"])?;
    ensure(
        wrong.code == 1 && wrong.stderr.contains("the bundle holds Kubernetes 1.34.3"),
        || format!("upgrade --to a version the bundle lacks:\n{}", wrong.text()),
    )?;
    ensure(current_versions()?.iter().all(|v| v == "v1.34.2"), || {
        "a refused upgrade changed a version".into()
    })?;

    killed_on_the_second_control_plane(&new, &b)?;
    let resumed = run(&new, &["upgrade", "--backup-dir", &b])?;
    ensure(resumed.code == 0, || {
        format!("the upgrade run again:\n{}", resumed.text())
    })?;
    note(&format!(
        "upgrade run again after a kill: {:.1} s",
        resumed.seconds
    ));
    on_target()?;
    snapshot_here(&backups)?;

    let again = run(&new, &["upgrade", "-o", "json", "--backup-dir", &b])?;
    ensure(again.code == 0 && change_count(&again.stdout)? == 0, || {
        format!("a second upgrade changed things:\n{}", again.text())
    })?;
    let apply = run(&new, &["apply", "-o", "json"])?;
    ensure(apply.code == 0 && change_count(&apply.stdout)? == 0, || {
        format!("apply after the upgrade changed things:\n{}", apply.text())
    })?;
    let down = run(&old, &["upgrade"])?;
    ensure(
        down.code == 1
            && down
                .stderr
                .contains("newer than the target 1.34.2: kubeforge never downgrades")
            && down.stderr.contains("nothing was changed"),
        || format!("an upgrade back down:\n{}", down.text()),
    )?;
    let back = run(&old, &["apply"])?;
    ensure(
        back.code == 1
            && back
                .stderr
                .contains("apply never changes the version of a node")
            && back.stderr.contains("run `kubeforge upgrade`"),
        || format!("apply with the old version:\n{}", back.text()),
    )?;
    on_target()?;
    let reset = run(&new, &["reset", "--all", "--yes"])?;
    ensure(reset.code == 0, || {
        format!("reset --all:\n{}", reset.text())
    })
}

/// The kubelet version of every node of the stand-ins' newest cluster.
fn current_versions() -> Result<Vec<String>, libtest_mimic::Failed> {
    let state = state()?;
    let cluster = state.clusters.last().ok_or("no cluster")?;
    Ok(cluster
        .nodes
        .iter()
        .map(|n| n.kubelet_version.clone())
        .collect())
}

/// Starts `kubeforge upgrade` and kills it once the second control-plane node's kubeadm
/// upgrade has begun.
fn killed_on_the_second_control_plane(inventory: &std::path::Path, backups: &str) -> TestResult {
    let mut child = kubeforge()
        .args(["upgrade", "--backup-dir", backups, "-i"])
        .arg(inventory)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        seen.push_str(&line);
        seen.push('\n');
        if line.trim_start().starts_with("k8scp02: upgrade:") {
            child.kill()?;
            child.wait()?;
            let versions = current_versions()?;
            ensure(versions.iter().any(|v| v == "v1.34.2"), || {
                format!("killed too late: every node was upgraded ({versions:?})")
            })?;
            return Ok(());
        }
    }
    let status = child.wait()?;
    Err(format!("the upgrade ({status}) never reached k8scp02's kubeadm upgrade:\n{seen}").into())
}

/// Every node on the target, Ready and schedulable, every static pod of the new version's
/// image, every kube-apiserver in service in every HAProxy.
fn on_target() -> TestResult {
    let f = lab()?;
    whole(CLUSTER)?;
    let state = state()?;
    let cluster = state.clusters.last().ok_or("no cluster")?;
    for n in &cluster.nodes {
        ensure(n.kubelet_version == TARGET && !n.unschedulable, || {
            format!(
                "{} runs {} (cordoned: {})",
                n.name, n.kubelet_version, n.unschedulable
            )
        })?;
        ensure(
            !n.annotations.contains_key("kubeforge.io/cordoned-for"),
            || format!("{} still bears kubeforge's cordon mark", n.name),
        )?;
    }
    for p in cluster.static_pods.iter().filter(|p| p.component != "etcd") {
        ensure(p.image.ends_with(&format!(":{TARGET}")), || {
            format!("{} on {} runs {}", p.component, p.node, p.image)
        })?;
    }
    ensure(cluster.kubernetes_version == TARGET, || {
        format!("the cluster's version is {}", cluster.kubernetes_version)
    })?;
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        let servers = f.ssh(
            host,
            &format!(
                "echo 'show servers state kube-apiserver' | socat stdio /run/haproxy/admin.sock | awk 'NR > 2 && NF && $4 !~ /{}$/ {{print $4, $7}}'",
                kubeforge_core::facts::HAPROXY_FALLBACK
            ),
        )?;
        ensure(
            servers.lines().count() == 3 && servers.lines().all(|l| l.ends_with(" 0")),
            || format!("{host}'s HAProxy has a kube-apiserver out of service:\n{servers}"),
        )?;
    }
    Ok(())
}

/// The snapshot taken before the upgrade, copied here: mode 0600, its SHA-256 trailer whole.
fn snapshot_here(backups: &std::path::Path) -> TestResult {
    let files: Vec<_> = walk(backups)?;
    let [file] = files.as_slice() else {
        return Err(format!(
            "expected one snapshot under {}: {files:?}",
            backups.display()
        )
        .into());
    };
    ensure(file.ends_with("etcd-before-v1.34.3.db"), || {
        format!("{}", file.display())
    })?;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
    ensure(mode == 0o600, || {
        format!("{} has mode {mode:o}", file.display())
    })?;
    let bytes = std::fs::read(file)?;
    let (body, trailer) = bytes.split_at(bytes.len().saturating_sub(32));
    ensure(
        bytes.len() % 512 == 32
            && kubeforge_core::hash::sha256_hex(body) == kubeforge_core::hash::hex(trailer),
        || format!("{} is not a whole etcd snapshot", file.display()),
    )
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, libtest_mimic::Failed> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
