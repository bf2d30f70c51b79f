//! A dead control-plane node removed from the real cluster: `lab kill k8scp02`, then, while a
//! client polls `https://VIP:8443/healthz` every 0.1 s, `kubeforge reset --hosts k8scp02`: no
//! request fails, etcd has 2 healthy members, each remaining HAProxy 2 servers up, every node
//! Ready. Then a blank host under that name (`lab wipe`) joins as a new member: 3 again.

use std::path::Path;
use std::time::Duration;

use kubeforge_lab::Lab;

use super::upgrade::Sampler;
use super::{CLUSTER, Result, ensure, inventory_named, kubeforge, note, whole};

const LEFT: &[&str] = &["k8scp01", "k8scp03", "k8s01"];

pub fn dead_control_plane(
    dir: &Path,
    lab: &Lab,
    bundle: &Path,
    inv: &str,
    timings: &mut Vec<String>,
) -> Result<()> {
    let left = inventory_named(lab, bundle, LEFT, "real-without-k8scp02.yaml")?
        .to_string_lossy()
        .into_owned();
    lab.kill("k8scp02").map_err(|e| e.to_string())?;
    // HAProxy's health checks find it down.
    std::thread::sleep(Duration::from_secs(15));
    let poll = Sampler::vip_poller(lab, "remove-poll.txt")?;
    let removed = kubeforge(dir, &["reset", "--yes", "--hosts", "k8scp02", "-i", inv]);
    let polls = poll.lines()?;
    let removed = removed?;
    let failed: Vec<&String> = polls.iter().filter(|l| l.trim() != "200").collect();
    ensure(failed.is_empty() && polls.len() > 20, || {
        format!(
            "{} of {} requests through the VIP failed while k8scp02 was removed: {failed:?}",
            failed.len(),
            polls.len()
        )
    })?;
    whole(lab, LEFT)?;
    // The pods the dead node's DaemonSets ran go with its Node (the pod garbage collector):
    // until then, the cluster is not Ready as apply waits for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        match kubeforge(dir, &["status", "-o", "json", "-i", &left]) {
            Ok(status) => break status,
            Err(e) if std::time::Instant::now() > deadline => {
                let plan = kubeforge(dir, &["plan", "-i", &left]).map_or_else(|e| e, |p| p.stdout);
                return Err(format!("{e}\nplan:\n{plan}"));
            }
            Err(_) => std::thread::sleep(Duration::from_secs(5)),
        }
    };
    let s: serde_json::Value = serde_json::from_str(&status.stdout).map_err(|e| e.to_string())?;
    let servers: Vec<usize> = s["haproxy"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            h["servers"]
                .as_object()
                .map_or(0, |s| s.values().filter(|v| *v == "up").count())
        })
        .collect();
    ensure(
        s["healthy"] == true && s["etcd"].as_array().map(Vec::len) == Some(2) && servers == [2, 2],
        || format!("status without k8scp02:\n{}", status.stdout),
    )?;
    note(&format!(
        "real_bundle: k8scp02 killed and removed: {} requests through the VIP, none failed; etcd 2 members, HAProxy 2 servers on each",
        polls.len()
    ));
    timings.push(format!(
        "a killed control-plane node removed: {:.1} s ({})",
        removed.seconds,
        super::phases(&removed)
    ));

    // Replaced: a blank host under the same name and address (`lab wipe`) joins as a new
    // member.
    lab.wipe("k8scp02").map_err(|e| e.to_string())?;
    let back = kubeforge(dir, &["apply", "-i", inv])?;
    whole(lab, CLUSTER)?;
    let members = super::ssh(
        lab,
        "k8scp01",
        &format!(
            "{} -n kube-system exec etcd-k8scp01 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list",
            super::KUBECTL
        ),
    )?;
    ensure(
        members
            .lines()
            .filter(|l| l.contains(", started, "))
            .count()
            == 3,
        || format!("etcd after the blank k8scp02 joined: {members}"),
    )?;
    timings.push(format!(
        "a blank host in the removed node's place, joined: {:.1} s ({})",
        back.seconds,
        super::phases(&back)
    ));
    Ok(())
}
