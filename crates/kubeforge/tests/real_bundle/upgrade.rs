//! A real upgrade, with `KUBEFORGE_BUNDLE_NEXT=DIR` (the same tree stamped one patch later):
//! the cluster built from `KUBEFORGE_BUNDLE` runs a Deployment of 2 pause pods with a
//! PodDisruptionBudget `minAvailable: 1` while a client polls `https://VIP:8443/healthz`
//! every 0.1 s and another samples the Deployment's ready pods; `kubeforge upgrade` to the next
//! bundle; then every kubelet and static pod on the new version, etcd whole, no failed
//! request, at least one pod ready at every sample, and a second upgrade and an apply with no
//! change. Once more from the old version, kubeforge killed while the second control-plane
//! node is being upgraded, then run again: it completes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubeforge_lab::Lab;

use super::{
    CLUSTER, KUBECTL, Result, changes, ensure, inventory, inventory_named, kubeforge, kubelets_run,
    note, ssh, whole,
};

const WORKLOAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: pauses, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: pauses}}
  template:
    metadata: {labels: {app: pauses}}
    spec:
      tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
      containers: [{name: pause, image: registry.k8s.io/pause:3.9, imagePullPolicy: Never}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pauses, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: pauses}}
";

/// A shell loop in the background, its lines in `out`; killed when dropped.
pub(crate) struct Sampler {
    child: Child,
    out: std::path::PathBuf,
}

impl Sampler {
    pub(crate) fn start(out: std::path::PathBuf, body: &str) -> Result<Sampler> {
        let file = std::fs::File::create(&out).map_err(|e| e.to_string())?;
        let child = Command::new("bash")
            .args(["-c", &format!("while :; do {body}; done")])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(Sampler { child, out })
    }

    /// `https://VIP:8443/healthz` asked every 0.1 s from this machine, each answer's HTTP
    /// code a line of `lab`'s file `name`.
    pub(crate) fn vip_poller(lab: &Lab, name: &str) -> Result<Sampler> {
        let vip = lab.state().map_err(|e| e.to_string())?.plan.vip;
        Sampler::start(
            lab.dir().join(name),
            &format!(
                "echo \"$(curl -sk --max-time 2 -o /dev/null -w '%{{http_code}}' https://{vip}:8443/healthz)\"; sleep 0.1"
            ),
        )
    }

    /// Stops it; its lines.
    pub(crate) fn lines(mut self) -> Result<Vec<String>> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(std::fs::read_to_string(&self.out)
            .map_err(|e| e.to_string())?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn all(
    dir: &Path,
    lab: &Lab,
    bundle: &Path,
    next: &Path,
    timings: &mut Vec<String>,
) -> Result<()> {
    let old = inventory(lab, bundle, CLUSTER)?
        .to_string_lossy()
        .into_owned();
    let new = inventory_named(lab, next, CLUSTER, "real-next.yaml")?
        .to_string_lossy()
        .into_owned();
    let version = bundle_version(dir, next)?;

    // Refused with zero changes: a bundle that is not the target's.
    let wrong = kubeforge(dir, &["upgrade", "-i", &new, "--to", "1.28.99"]);
    ensure(
        wrong
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("the bundle holds Kubernetes 1.28.8")),
        || {
            format!(
                "upgrade --to a version the bundle lacks: {wrong:?}",
                wrong = wrong.err()
            )
        },
    )?;

    ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} apply -f - <<'EOF'\n{WORKLOAD}EOF\n{KUBECTL} rollout status deploy/pauses --timeout=120s"
        ),
    )?;
    let poll = Sampler::vip_poller(lab, "upgrade-poll.txt")?;
    let ready = Sampler::start(
        lab.dir().join("upgrade-ready.txt"),
        &format!(
            "echo \"r$(ssh -F {} k8scp01 \"{KUBECTL} get deploy pauses -o jsonpath='{{.status.readyReplicas}}'\" 2>/dev/null)\"; sleep 0.5",
            lab.dir().join("ssh/config").display()
        ),
    )?;
    let before = certificates(dir, &old)?;
    let upgraded = kubeforge(dir, &["upgrade", "-i", &new]);
    let (polls, samples) = (poll.lines()?, ready.lines()?);
    let upgraded = upgraded?;
    renewed(&before, &certificates(dir, &new)?)?;
    timings.push(format!(
        "upgrade of 3+1 to {version}: {:.1} s ({})",
        upgraded.seconds,
        super::phases(&upgraded)
    ));
    let failed: Vec<&String> = polls.iter().filter(|l| l.trim() != "200").collect();
    ensure(failed.is_empty() && polls.len() > 100, || {
        format!(
            "{} of {} requests through the VIP failed during the upgrade: {failed:?}",
            failed.len(),
            polls.len()
        )
    })?;
    let none_ready = samples
        .iter()
        .filter(|l| l.trim_start_matches('r').parse::<u32>().unwrap_or(0) < 1)
        .count();
    ensure(none_ready == 0 && samples.len() > 20, || {
        format!(
            "{none_ready} of {} samples saw no ready pod of the Deployment",
            samples.len()
        )
    })?;
    note(&format!(
        "real_bundle: upgrade: {} requests through the VIP, none failed; {} samples, each with a ready pod",
        polls.len(),
        samples.len()
    ));
    on_version(lab, &version)?;
    let again = kubeforge(dir, &["upgrade", "-o", "json", "-i", &new])?;
    ensure(changes(&again)? == 0, || {
        format!("a second upgrade changed things:\n{}", again.stdout)
    })?;
    let apply = kubeforge(dir, &["apply", "-o", "json", "-i", &new])?;
    ensure(changes(&apply)? == 0, || {
        format!("apply after the upgrade changed things:\n{}", apply.stdout)
    })?;
    timings.push(format!(
        "second upgrade (no change): {:.1} s; apply after it (no change): {:.1} s",
        again.seconds, apply.seconds
    ));

    // Again from the old version, interrupted on the second control-plane node.
    kubeforge(dir, &["reset", "--all", "--yes", "-i", &new])?;
    kubeforge(dir, &["apply", "-i", &old])?;
    interrupted(dir, &new)?;
    let resumed = kubeforge(dir, &["upgrade", "-i", &new])?;
    on_version(lab, &version)?;
    let last = kubeforge(dir, &["upgrade", "-o", "json", "-i", &new])?;
    ensure(changes(&last)? == 0, || {
        format!(
            "an upgrade after the resumed one changed things:\n{}",
            last.stdout
        )
    })?;
    timings.push(format!(
        "upgrade killed on k8scp02, run again: {:.1} s ({})",
        resumed.seconds,
        super::phases(&resumed)
    ));
    Ok(())
}

/// Each control-plane node's certificates and their `notAfter`, as `kubeforge status` reads
/// them (it must find the cluster healthy).
pub(crate) fn certificates(dir: &Path, inventory: &str) -> Result<BTreeMap<(String, String), i64>> {
    let status = kubeforge(dir, &["status", "-o", "json", "-i", inventory])?;
    let s: serde_json::Value = serde_json::from_str(&status.stdout).map_err(|e| e.to_string())?;
    Ok(s["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                (
                    c["host"].as_str()?.to_string(),
                    c["path"].as_str()?.to_string(),
                ),
                c["not_after"].as_i64()?,
            ))
        })
        .collect())
}

/// An upgrade renews certificates (kubeadm's `--certificate-renewal`, on by default): none
/// expires earlier than before, and each control-plane node's kube-apiserver serving
/// certificate later.
fn renewed(
    before: &BTreeMap<(String, String), i64>,
    after: &BTreeMap<(String, String), i64>,
) -> Result<()> {
    let earlier: Vec<_> = before
        .iter()
        .filter(|(k, t)| after.get(*k).is_none_or(|a| a < t))
        .collect();
    ensure(earlier.is_empty() && !before.is_empty(), || {
        format!("certificates that expire earlier (or are gone) after the upgrade: {earlier:?}")
    })?;
    let moved: Vec<String> = after
        .iter()
        .filter(|(k, t)| before.get(*k).is_some_and(|b| b < *t))
        .map(|((host, path), _)| format!("{host}:{}", path.rsplit('/').next().unwrap_or(path)))
        .collect();
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        ensure(moved.contains(&format!("{host}:apiserver.crt")), || {
            format!("{host}'s apiserver.crt was not renewed by the upgrade; renewed: {moved:?}")
        })?;
    }
    note(&format!(
        "real_bundle: the upgrade renewed {} of {} certificates: {}",
        moved.len(),
        after.len(),
        moved.join(" ")
    ));
    Ok(())
}

/// The version of a bundle's kubeadm (`v1.28.8`).
fn bundle_version(dir: &Path, bundle: &Path) -> Result<String> {
    let check = kubeforge(
        dir,
        &["bundle", "check", "-o", "json", &bundle.to_string_lossy()],
    )?;
    let report: serde_json::Value =
        serde_json::from_str(&check.stdout).map_err(|e| e.to_string())?;
    let v = report["kubernetes_version"]
        .as_str()
        .ok_or("bundle check names no Kubernetes version")?;
    Ok(format!("v{}", v.trim_start_matches('v')))
}

/// Every kubelet and every versioned static pod on `version`, every node Ready and
/// schedulable, etcd whole, no kube-apiserver left out of an HAProxy.
fn on_version(lab: &Lab, version: &str) -> Result<()> {
    kubelets_run(lab, CLUSTER, version)?;
    whole(lab, CLUSTER)?;
    let images = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} -n kube-system get pods -l tier=control-plane -o jsonpath='{{range .items[*]}}{{.metadata.name}} {{.spec.containers[0].image}}{{\"\\n\"}}{{end}}'"
        ),
    )?;
    for line in images.lines().filter(|l| !l.starts_with("etcd-")) {
        ensure(line.ends_with(&format!(":{version}")), || {
            format!("a static pod is not on {version}: {line}\n{images}")
        })?;
    }
    ensure(
        images.lines().filter(|l| !l.starts_with("etcd-")).count() == 9,
        || format!("expected 9 versioned static pods:\n{images}"),
    )?;
    let cordoned = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} get nodes -o jsonpath='{{range .items[*]}}{{.metadata.name}}={{.spec.unschedulable}} {{end}}'"
        ),
    )?;
    ensure(!cordoned.contains("=true"), || {
        format!("a node is left cordoned: {cordoned}")
    })?;
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        let state = ssh(
            lab,
            host,
            &format!(
                "echo 'show servers state kube-apiserver' | socat stdio /run/haproxy/admin.sock | awk 'NR > 2 && NF && $4 !~ /{}$/ {{print $4, $7}}'",
                kubeforge_core::facts::HAPROXY_FALLBACK
            ),
        )?;
        ensure(
            state.lines().count() == 3 && state.lines().all(|l| l.ends_with(" 0")),
            || format!("{host}'s HAProxy has a kube-apiserver out of service:\n{state}"),
        )?;
    }
    Ok(())
}

/// `kubeforge upgrade`, killed once the second control-plane node's kubeadm upgrade started.
fn interrupted(dir: &Path, inventory: &str) -> Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeforge"))
        .env("KUBEFORGE_LAB_DIR", dir)
        .args(["upgrade", "-i", inventory])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| e.to_string())?;
        seen.push(line.clone());
        if line.trim_start().starts_with("k8scp02: upgrade:") {
            // Inside `kubeadm upgrade node`: let it get going, then kill.
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            note("real_bundle: kubeforge upgrade killed during k8scp02's kubeadm upgrade node");
            return Ok(());
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "the upgrade never reached k8scp02's kubeadm upgrade:\n{}",
        seen.join("\n")
    ))
}
