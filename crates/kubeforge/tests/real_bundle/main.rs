//! Opt-in: a real Kubernetes, built by `kubeforge apply` from a real offline bundle on the lab's
//! hosts. Runs once per bundle named: `KUBEFORGE_BUNDLE=DIR` (the bundle's containerd, 1.6 in
//! the one built here) and `KUBEFORGE_BUNDLE_CONTAINERD2=DIR` (a bundle with containerd 2.x,
//! which reads configuration version 3); see the README's "Offline bundle". With neither it
//! says so and passes. Needs root, about 5 minutes a bundle and 4 GiB of memory; uses a lab of
//! its own directory (`KUBEFORGE_REAL_LAB_DIR`, default `/var/lib/kubeforge/real-lab`), so a
//! lab the user has up stays as it is.
//!
//! From bare lab hosts: the runtime phases, then the containerd that runs and the
//! configuration version kubeforge wrote for it, the real `kubeadm init phase preflight` on a
//! prepared control-plane node (only the bundle's missing CoreDNS image may fail it), a pod
//! sandbox from the bundle's pause image on every host (`crictl runp`), then the cluster, with
//! the bundle's version (the inventory names none): right when apply returns every node Ready
//! and every pod of kube-system and the pod network running and ready, etcd with one member
//! per control-plane node, the API through the VIP from this machine, a pod on one node
//! reaching a pod on another (flannel), a second apply with no change, status, certs renew, a
//! backup, a dead control-plane node removed and joined again, a worker added, and reset then
//! the cluster restored from the backup. Timings go to standard error. With `KUBEFORGE_KEEP_LAB=1` a failure
//! leaves the lab up to look into.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use kubeforge_lab::Lab;

pub(crate) type Result<T> = std::result::Result<T, String>;

pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The bundles to build a cluster from: `(what, variable)`, and the containerd major each
/// must run (`None`: the bundle's, whichever).
const BUNDLES: &[(&str, &str, Option<u32>)] = &[
    ("bundle", "KUBEFORGE_BUNDLE", None),
    (
        "containerd 2 bundle",
        "KUBEFORGE_BUNDLE_CONTAINERD2",
        Some(2),
    ),
];

fn main() -> ExitCode {
    let bundles: Vec<(&str, PathBuf, Option<u32>)> = BUNDLES
        .iter()
        .filter_map(|(what, var, major)| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(|v| (*what, PathBuf::from(v), *major))
        })
        .collect();
    if bundles.is_empty() {
        let _ = writeln!(
            std::io::stdout(),
            "real_bundle: skipped: set KUBEFORGE_BUNDLE=DIR (and/or KUBEFORGE_BUNDLE_CONTAINERD2=DIR) to a real offline bundle to build a real cluster on the lab"
        );
        return ExitCode::SUCCESS;
    }
    if !kubeforge_lab::sys::is_root() {
        note("real_bundle: needs root (it brings up the lab)");
        return ExitCode::FAILURE;
    }
    for (what, bundle, containerd) in bundles {
        note(&format!("real_bundle: the {what} {}", bundle.display()));
        if one(&bundle, containerd) == ExitCode::FAILURE {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// A cluster from one bundle, on a lab brought up for it and taken down after.
fn one(bundle: &Path, containerd: Option<u32>) -> ExitCode {
    let dir = lab_dir();
    let started = Instant::now();
    let outcome = run(bundle, containerd, &dir);
    if outcome.is_err() && std::env::var_os("KUBEFORGE_KEEP_LAB").is_some() {
        note(&format!(
            "real_bundle: the lab stays up for a look (KUBEFORGE_KEEP_LAB): `kubeforge lab down --dir {}` when done; {}",
            dir.display(),
            outcome.as_ref().err().map_or("", String::as_str)
        ));
        return ExitCode::FAILURE;
    }
    let down = kubeforge(&dir, &["lab", "down"]);
    match (outcome, down) {
        (Ok(timings), Ok(_)) => {
            note(&format!(
                "real_bundle: ok in {:.0} s\n{}",
                started.elapsed().as_secs_f64(),
                timings.join("\n")
            ));
            ExitCode::SUCCESS
        }
        (Err(e), down) => {
            note(&format!("real_bundle: FAILED: {e}"));
            if let Err(d) = down {
                note(&format!("and lab down failed: {d}"));
            }
            ExitCode::FAILURE
        }
        (Ok(_), Err(d)) => {
            note(&format!("real_bundle: lab down failed: {d}"));
            ExitCode::FAILURE
        }
    }
}

fn lab_dir() -> PathBuf {
    std::env::var_os("KUBEFORGE_REAL_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kubeforge/real-lab"))
}

struct Out {
    stdout: String,
    seconds: f64,
}

/// `kubeforge ARGS` with the lab's directory; an error carries its output.
pub(crate) fn kubeforge(dir: &Path, args: &[&str]) -> Result<Out> {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kubeforge"))
        .env("KUBEFORGE_LAB_DIR", dir)
        .args(args)
        .output()
        .map_err(|e| format!("running kubeforge: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!(
            "`kubeforge {}` failed ({}):\n{stdout}{stderr}",
            args.join(" "),
            output.status
        ));
    }
    Ok(Out {
        stdout,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn ssh(lab: &Lab, host: &str, command: &str) -> Result<String> {
    let output = lab
        .ssh(host)
        .arg(command)
        .output()
        .map_err(|e| format!("ssh: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{host}: `{command}` failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

pub(crate) fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { Err(message()) }
}

/// The lab's inventory with `hosts`, the bundle and flannel: no Kubernetes version, so the
/// bundle's is the cluster's (as in `./scripts/demo`).
pub(crate) fn inventory(lab: &Lab, bundle: &Path, hosts: &[&str]) -> Result<PathBuf> {
    inventory_named(lab, bundle, hosts, &format!("real-{}.yaml", hosts.len()))
}

/// [`inventory`], written to `name` in the lab's directory.
pub(crate) fn inventory_named(
    lab: &Lab,
    bundle: &Path,
    hosts: &[&str],
    name: &str,
) -> Result<PathBuf> {
    let text = std::fs::read_to_string(lab.inventory()).map_err(|e| e.to_string())?;
    let mut out = String::from("hosts:\n");
    for h in hosts {
        out.push_str(&format!("  - {h}\n"));
    }
    out.extend(
        text.split_inclusive('\n')
            .skip_while(|l| !l.starts_with("ssh:"))
            .filter(|l| !l.starts_with('#')),
    );
    out.push_str(&format!(
        "packages:\n  source: bundle\n  bundle: {}\ncni: flannel\n",
        bundle.display()
    ));
    let path = lab.dir().join(name);
    std::fs::write(&path, out).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The phase timings apply printed (`phases: prepare 3.1 s, ...`).
pub(crate) fn phases(out: &Out) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("phases: "))
        .unwrap_or("")
        .to_string()
}

pub(crate) const KUBECTL: &str = "kubectl --kubeconfig=/etc/kubernetes/admin.conf";
pub(crate) const CLUSTER: &[&str] = &["k8scp01", "k8scp02", "k8scp03", "k8s01"];
const GROWN: &[&str] = &["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];

fn run(bundle: &Path, containerd: Option<u32>, dir: &Path) -> Result<Vec<String>> {
    let mut timings = Vec::new();
    let bundle = bundle
        .canonicalize()
        .map_err(|e| format!("{}: {e}", bundle.display()))?;
    let b = bundle.to_string_lossy().into_owned();
    let check = kubeforge(dir, &["bundle", "check", "-o", "json", &b])?;
    let report: serde_json::Value =
        serde_json::from_str(&check.stdout).map_err(|e| format!("bundle check -o json: {e}"))?;
    let version = report["kubernetes_version"]
        .as_str()
        .ok_or("bundle check names no Kubernetes version")?
        .to_string();
    let up = kubeforge(
        dir,
        &["lab", "up", "--control-planes", "3", "--workers", "2"],
    )?;
    timings.push(format!("lab up: {:.1} s", up.seconds));
    let lab = Lab::new(dir).map_err(|e| e.to_string())?;
    let inv = inventory(&lab, &bundle, CLUSTER)?;
    let inv = inv.to_string_lossy().into_owned();

    // The node runtime alone, then what the real kubeadm and containerd say of it.
    let runtime = kubeforge(dir, &["apply", "--until", "runtime", "-i", &inv])?;
    timings.push(format!(
        "apply up to the runtime on 3+1 bare hosts: {:.1} s ({})",
        runtime.seconds,
        phases(&runtime)
    ));
    runtime_as_written(&lab, containerd)?;
    preflight_reports_only_coredns(&lab)?;
    for host in CLUSTER {
        pod_sandbox(&lab, host)?;
    }
    note("real_bundle: preflight and pod sandboxes ok");

    let cluster = kubeforge(dir, &["apply", "-i", &inv])?;
    timings.push(format!(
        "apply of the cluster's phases: {:.1} s ({}); full apply from bare hosts: {:.1} s",
        cluster.seconds,
        phases(&cluster),
        runtime.seconds + cluster.seconds
    ));
    // Right when apply returns: nothing of the cluster still starting, and no join
    // credential left.
    every_pod_ready(&lab, CLUSTER)?;
    no_join_credentials(&lab)?;
    whole(&lab, CLUSTER)?;
    kubelets_run(
        &lab,
        CLUSTER,
        &format!("v{}", version.trim_start_matches('v')),
    )?;
    api_through_the_vip(dir, &lab, &inv, &bundle)?;
    pods_reach_each_other(&lab)?;
    note("real_bundle: cluster whole, API through the VIP, pod to pod ok");

    let again = kubeforge(dir, &["apply", "-o", "json", "-i", &inv])?;
    let changes = changes(&again)?;
    ensure(changes == 0, || {
        format!("the second apply made {changes} changes")
    })?;
    timings.push(format!("second apply (no change): {:.1} s", again.seconds));
    status_of_a_healthy_cluster(dir, &inv, &mut timings)?;
    certs::renewed(dir, &lab, &inv, &mut timings)?;
    let kubeconfig = restore::before_backup(dir, &lab, &inv)?;
    let backup = backup::taken(dir, &lab, &inv, &mut timings)?;
    restore::after_backup(dir, &lab, &inv, &backup)?;
    remove::dead_control_plane(dir, &lab, &bundle, &inv, &mut timings)?;

    let grown = inventory(&lab, &bundle, GROWN)?;
    let grown = grown.to_string_lossy().into_owned();
    let added = kubeforge(dir, &["apply", "-i", &grown])?;
    whole(&lab, GROWN)?;
    timings.push(format!(
        "a worker added: {:.1} s ({})",
        added.seconds,
        phases(&added)
    ));

    let reset = kubeforge(dir, &["reset", "--yes", "-i", &grown])?;
    timings.push(format!("reset: {:.1} s", reset.seconds));
    for host in GROWN {
        let left = ssh(
            &lab,
            host,
            "ls -d /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /etc/kubernetes/manifests/*.yaml /var/lib/etcd/member /etc/cni/net.d/* /root/.kube/config 2>/dev/null; ip -o link show | grep -E ' (cni0|flannel\\.1)[:@]' ; true",
        )?;
        ensure(left.trim().is_empty(), || {
            format!("{host} after reset: {left}")
        })?;
    }
    restore::restored(dir, &lab, &bundle, &inv, &backup, &kubeconfig, &mut timings)?;
    if let Some(next) = std::env::var_os("KUBEFORGE_BUNDLE_NEXT").filter(|_| containerd.is_none()) {
        let next = PathBuf::from(next)
            .canonicalize()
            .map_err(|e| format!("KUBEFORGE_BUNDLE_NEXT: {e}"))?;
        upgrade::all(dir, &lab, &bundle, &next, &mut timings)?;
    }
    Ok(timings)
}

mod backup;
mod certs;
mod remove;
mod restore;
mod upgrade;

/// `kubeforge status` of the cluster just built, read from the real programs: healthy, every
/// node Ready on the bundle's version, 3 etcd members with one leader, the VIP on one node,
/// every HAProxy with 3 servers up, kubeadm's 13 certificates per node (a year) read; timed twice, the
/// second with the connections the first kept.
fn status_of_a_healthy_cluster(dir: &Path, inv: &str, timings: &mut Vec<String>) -> Result<()> {
    let first = kubeforge(dir, &["status", "-o", "json", "-i", inv])?;
    let kept = kubeforge(dir, &["status", "-o", "json", "-i", inv])?;
    let s: serde_json::Value =
        serde_json::from_str(&kept.stdout).map_err(|e| format!("status -o json: {e}"))?;
    let members = s["etcd"].as_array().cloned().unwrap_or_default();
    let certs = s["certificates"].as_array().cloned().unwrap_or_default();
    ensure(
        s["healthy"] == true
            && s["plan_changes"] == 0
            && s["nodes"].as_array().map(Vec::len) == Some(CLUSTER.len())
            && members.len() == 3
            && members.iter().filter(|m| m["leader"] == true).count() == 1
            && s["vip"]["holders"].as_array().map(Vec::len) == Some(1)
            && s["haproxy"].as_array().is_some_and(|h| {
                h.len() == 3
                    && h.iter().all(|r| {
                        r["servers"]
                            .as_object()
                            .is_some_and(|s| s.len() == 3 && s.values().all(|v| v == "up"))
                    })
            })
            && certs.len() >= 3 * 13
            && certs
                .iter()
                .all(|c| c["days_left"].as_i64().is_some_and(|d| d >= 364)),
        || format!("status of the healthy real cluster:\n{}", kept.stdout),
    )?;
    timings.push(format!(
        "status of 3+1: {:.2} s, with the connections kept: {:.2} s ({} certificates read)",
        first.seconds,
        kept.seconds,
        certs.len()
    ));
    Ok(())
}

/// The changes a run's `-o json` report lists.
pub(crate) fn changes(out: &Out) -> Result<usize> {
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stdout))?;
    Ok(report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["hosts"].as_array().into_iter().flatten())
        .map(|h| h["changes"].as_array().map_or(0, Vec::len))
        .sum())
}

/// containerd runs on every host with the configuration kubeforge wrote: version 3 for
/// containerd 2.x (the CRI plugin under `io.containerd.cri.v1.*`), version 2 for 1.x;
/// `major`: the containerd major the bundle must have brought.
fn runtime_as_written(lab: &Lab, major: Option<u32>) -> Result<()> {
    for host in CLUSTER {
        let out = ssh(
            lab,
            host,
            "containerd --version | awk '{print $3}'; systemctl is-active containerd; sed -n 's/^version = //p' /etc/containerd/config.toml; grep -c \"io.containerd.cri.v1.runtime\" /etc/containerd/config.toml || true",
        )?;
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let running: Option<u32> = lines
            .first()
            .and_then(|v| v.trim_start_matches('v').split('.').next())
            .and_then(|m| m.parse().ok());
        let config_version = lines.get(2).copied().unwrap_or("");
        let wanted_config = match running {
            Some(m) if m >= 2 => "3",
            _ => "2",
        };
        ensure(
            lines.get(1) == Some(&"active")
                && config_version == wanted_config
                && (wanted_config == "2" || lines.get(3).is_some_and(|n| *n != "0"))
                && major.is_none_or(|m| running == Some(m)),
            || {
                format!(
                    "{host}: containerd {:?} (wanted major {major:?}), config version {config_version:?} (wanted {wanted_config}):\n{out}",
                    lines.first()
                )
            },
        )?;
    }
    let version = ssh(lab, "k8scp01", "containerd --version")?;
    note(&format!(
        "real_bundle: {} with the configuration kubeforge wrote, on every host",
        version.trim()
    ));
    Ok(())
}

/// Every pod of the cluster Running and ready (none in `Init`, `PodInitializing` or
/// `ContainerCreating`), and kube-proxy's and flannel's on every node of `hosts`.
fn every_pod_ready(lab: &Lab, hosts: &[&str]) -> Result<()> {
    let pods = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} get pods -A --no-headers -o 'custom-columns=NS:.metadata.namespace,N:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase,READY:.status.conditions[?(@.type==\"Ready\")].status'"
        ),
    )?;
    let shown = ssh(lab, "k8scp01", &format!("{KUBECTL} get pods -A -o wide"))?;
    let rows: Vec<Vec<&str>> = pods
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let not_ready: Vec<String> = rows
        .iter()
        .filter(|r| r.get(3) != Some(&"Running") || r.get(4) != Some(&"True"))
        .map(|r| r.join(" "))
        .collect();
    ensure(not_ready.is_empty(), || {
        format!("right after apply, pods not ready: {not_ready:?}\n{shown}")
    })?;
    for prefix in ["kube-proxy-", "kube-flannel-ds-"] {
        for host in hosts {
            ensure(
                rows.iter().any(|r| {
                    r.get(1).is_some_and(|n| n.starts_with(prefix)) && r.get(2) == Some(host)
                }),
                || format!("no {prefix}* pod on {host}:\n{shown}"),
            )?;
        }
    }
    note(&format!(
        "real_bundle: right after apply, {} pods, every one Running and ready",
        rows.len()
    ));
    Ok(())
}

/// No bootstrap token and no uploaded certificates (`kubeadm-certs`) outlive the joins.
fn no_join_credentials(lab: &Lab) -> Result<()> {
    let secrets = ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} -n kube-system get secrets -o name"),
    )?;
    let left: Vec<&str> = secrets
        .lines()
        .filter(|l| l.starts_with("secret/bootstrap-token-") || *l == "secret/kubeadm-certs")
        .collect();
    ensure(left.is_empty(), || {
        format!("join credentials left after apply: {left:?}")
    })
}

/// Every kubelet runs the bundle's version (`v1.28.7`).
pub(crate) fn kubelets_run(lab: &Lab, hosts: &[&str], version: &str) -> Result<()> {
    let nodes = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} get nodes --no-headers -o custom-columns=N:.metadata.name,V:.status.nodeInfo.kubeletVersion"
        ),
    )?;
    for host in hosts {
        ensure(
            nodes
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [*host, version]),
            || format!("{host} does not run the kubelet {version}:\n{nodes}"),
        )?;
    }
    Ok(())
}

/// `kubeadm init phase preflight` on a prepared, uninitialised control-plane node, with the
/// bundle's etcd: only the CoreDNS image may be missing.
fn preflight_reports_only_coredns(lab: &Lab) -> Result<()> {
    let ip = ssh(
        lab,
        "k8scp01",
        // The primary address only: the VIP may be there too, as a secondary one.
        "ip -o -4 addr show dev host0 primary | awk '{print $4}' | cut -d/ -f1",
    )?;
    let etcd_tag = ssh(
        lab,
        "k8scp01",
        "ctr -n k8s.io images ls -q | sed -n 's|^registry.k8s.io/etcd:||p' | head -n1",
    )?;
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: {}\nnodeRegistration:\n  criSocket: unix:///run/containerd/containerd.sock\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.28.7\netcd:\n  local:\n    imageTag: {}\n",
        ip.trim(),
        etcd_tag.trim()
    );
    let output = lab
        .ssh("k8scp01")
        .arg(format!(
            "cat > /tmp/kf-preflight.yaml <<'EOF'\n{config}EOF\nkubeadm init phase preflight --config /tmp/kf-preflight.yaml 2>&1; echo \"exit $?\"; rm -f /tmp/kf-preflight.yaml"
        ))
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("[ERROR")).collect();
    ensure(!errors.is_empty(), || {
        format!("preflight reported no missing CoreDNS image:\n{text}")
    })?;
    ensure(
        errors
            .iter()
            .all(|l| l.contains("[ERROR ImagePull]") && l.contains("coredns")),
        || format!("preflight found more than the missing CoreDNS image:\n{text}"),
    )?;
    note(&format!(
        "real_bundle: kubeadm init phase preflight on k8scp01: {}",
        errors.join(" | ")
    ));
    Ok(())
}

/// A pod sandbox from the bundle's pause image, started and removed with crictl: in the
/// host's network namespace, as the static pods' (no pod network exists yet), under a systemd
/// slice (containerd runs with the systemd cgroup driver).
fn pod_sandbox(lab: &Lab, host: &str) -> Result<()> {
    let out = ssh(
        lab,
        host,
        "cat > /tmp/kf-sandbox.json <<'EOF'\n{\"metadata\": {\"name\": \"kf-sandbox\", \"namespace\": \"default\", \"uid\": \"kf-sandbox-1\", \"attempt\": 1}, \"log_directory\": \"/tmp\", \"linux\": {\"cgroup_parent\": \"kfsandbox.slice\", \"security_context\": {\"namespace_options\": {\"network\": 2}}}}\nEOF\nid=$(crictl runp /tmp/kf-sandbox.json) && crictl inspectp \"$id\" | grep -o '\"state\": \"SANDBOX_READY\"' && crictl stopp \"$id\" >/dev/null && crictl rmp \"$id\" >/dev/null; rc=$?; rm -f /tmp/kf-sandbox.json; exit $rc",
    )?;
    ensure(out.contains("SANDBOX_READY"), || {
        format!("{host}: crictl runp: {out}")
    })
}

/// Every node Ready, one etcd member per control-plane node, all healthy.
pub(crate) fn whole(lab: &Lab, hosts: &[&str]) -> Result<()> {
    let nodes = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} get nodes --no-headers -o custom-columns=N:.metadata.name,R:.status.conditions[-1].type,S:.status.conditions[-1].status"
        ),
    )?;
    for host in hosts {
        ensure(
            nodes
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [*host, "Ready", "True"]),
            || format!("{host} is not Ready:\n{nodes}"),
        )?;
    }
    ensure(nodes.lines().count() == hosts.len(), || {
        format!("nodes beyond {hosts:?}:\n{nodes}")
    })?;
    let members = ssh(
        lab,
        "k8scp01",
        &format!(
            "{KUBECTL} -n kube-system exec etcd-k8scp01 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health --cluster -w table"
        ),
    )?;
    let control_planes = hosts.iter().filter(|h| h.starts_with("k8scp")).count();
    // Rows of the table: `| https://IP:2379 |   true | 17ms |  |`.
    let healthy = members
        .lines()
        .filter(|l| l.split('|').nth(2).is_some_and(|c| c.trim() == "true"))
        .count();
    ensure(healthy == control_planes, || {
        format!(
            "{healthy} healthy etcd members for {control_planes} control-plane nodes:\n{members}"
        )
    })
}

/// kubectl on this machine, with `kubeforge kubeconfig`'s file, through the VIP.
fn api_through_the_vip(dir: &Path, lab: &Lab, inv: &str, bundle: &Path) -> Result<()> {
    let file = lab.dir().join("real-admin.conf");
    let f = file.to_string_lossy().into_owned();
    kubeforge(dir, &["kubeconfig", "-i", inv, "--file", &f])?;
    let vip = lab.state().map_err(|e| e.to_string())?.plan.vip;
    let output = Command::new(bundle.join("bin/kubectl"))
        .args(["--kubeconfig", &f, "--server"])
        .arg(format!("https://{vip}:8443"))
        .args(["get", "--raw", "/readyz"])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout);
    ensure(output.status.success() && text.trim() == "ok", || {
        format!(
            "kubectl through the VIP: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A pod on k8s01 serves; a pod on k8scp02 fetches from it over the pod network.
fn pods_reach_each_other(lab: &Lab) -> Result<()> {
    let image = "docker.io/flannel/flannel:v0.20.2";
    let pod = |name: &str, node: &str, script: &str, restart: &str| {
        format!(
            "{KUBECTL} run {name} --image={image} --image-pull-policy=Never --restart={restart} --overrides='{{\"apiVersion\":\"v1\",\"spec\":{{\"nodeName\":\"{node}\",\"tolerations\":[{{\"operator\":\"Exists\"}}]}}}}' --command -- /bin/busybox sh -c '{script}'"
        )
    };
    ssh(
        lab,
        "k8scp01",
        &pod(
            "kf-server",
            "k8s01",
            "mkdir -p /www && echo kubeforge > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www",
            "Always",
        ),
    )?;
    ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} wait --for=condition=Ready pod/kf-server --timeout=120s"),
    )?;
    let ip = ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} get pod kf-server -o jsonpath='{{.status.podIP}}'"),
    )?;
    ssh(
        lab,
        "k8scp01",
        &pod(
            "kf-client",
            "k8scp02",
            // busybox's nc: the image's static busybox crashes in wget (its resolver).
            &format!(
                "printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | /bin/busybox nc -w 10 {} 8080 | /bin/busybox tail -n 1",
                ip.trim()
            ),
            "Never",
        ),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut phase = String::new();
    while Instant::now() < deadline {
        phase = ssh(
            lab,
            "k8scp01",
            &format!("{KUBECTL} get pod kf-client -o jsonpath='{{.status.phase}}'"),
        )?;
        if phase == "Succeeded" || phase == "Failed" {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let logs = ssh(lab, "k8scp01", &format!("{KUBECTL} logs kf-client"))?;
    ssh(
        lab,
        "k8scp01",
        &format!("{KUBECTL} delete pod kf-server kf-client --wait=false"),
    )?;
    ensure(phase == "Succeeded" && logs.trim() == "kubeforge", || {
        format!(
            "a pod on k8scp02 did not reach the pod on k8s01 ({}): phase {phase}, output {logs}",
            ip.trim()
        )
    })
}
