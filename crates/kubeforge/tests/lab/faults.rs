//! Fault controls: kill and start a host, cut it off and restore it, stop it cleanly.

use std::time::Duration;

use kubeforge_lab::net::ssh_answers;
use kubeforge_lab::sys::wait_until;
use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, kubeforge_lab, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "faults::killed_host_is_unreachable_and_comes_back",
            kill_and_start,
        ),
        Trial::test(
            "faults::cut_host_is_unreachable_until_restored",
            cut_and_restore,
        ),
        Trial::test("faults::stopped_host_starts_again", stop_and_start),
        Trial::test("faults::status_reports_every_host_and_service", status),
    ]
}

fn host_key(name: &str) -> Result<String, libtest_mimic::Failed> {
    let f = lab()?;
    let path = f
        .lab
        .paths()
        .host_upper(name)
        .join("etc/ssh/ssh_host_ed25519_key.pub");
    Ok(std::fs::read_to_string(path)?)
}

fn kill_and_start() -> TestResult {
    let f = lab()?;
    let addr = f.plan.host("k8s01").ok_or("no k8s01")?.address;
    let key_before = host_key("k8s01")?;
    f.ssh("k8s01", "true")?;

    kubeforge_lab(&["kill", "k8s01"])?;
    ensure(!ssh_answers(addr, Duration::from_secs(2)), || {
        "k8s01 still answers SSH after kill".into()
    })?;
    ensure(f.ssh("k8s01", "true").is_err(), || {
        "ssh to a killed host succeeded".into()
    })?;
    let status = f.lab.status()?;
    let state = &status
        .hosts
        .iter()
        .find(|h| h.name == "k8s01")
        .ok_or("no k8s01")?
        .state;
    ensure(state == "stopped", || {
        format!("k8s01 is {state} after kill")
    })?;

    f.lab.start("k8s01")?;
    let name = f.ssh("k8s01", "hostname")?;
    ensure(name.trim() == "k8s01", || {
        format!("k8s01 says it is {name:?}")
    })?;
    ensure(host_key("k8s01")? == key_before, || {
        "k8s01's host key changed across kill and start".into()
    })
}

fn cut_and_restore() -> TestResult {
    let f = lab()?;
    let addr = f.plan.host("k8scp02").ok_or("no k8scp02")?.address;
    f.lab.cut("k8scp02")?;
    let unreachable = !ssh_answers(addr, Duration::from_secs(2));
    let link = f
        .lab
        .status()?
        .hosts
        .iter()
        .find(|h| h.name == "k8scp02")
        .map(|h| h.link.clone());
    kubeforge_lab(&["restore", "k8scp02"])?;
    ensure(unreachable, || "k8scp02 answered while cut off".into())?;
    ensure(link.as_deref() == Some("cut"), || {
        format!("status said link {link:?} while cut")
    })?;
    ensure(
        wait_until(Duration::from_secs(15), || {
            ssh_answers(addr, Duration::from_secs(1))
        }),
        || "k8scp02 does not answer after restore".into(),
    )?;
    f.ssh("k8scp02", "true").map(|_| ()).map_err(Into::into)
}

fn stop_and_start() -> TestResult {
    let f = lab()?;
    let addr = f.plan.host("k8scp03").ok_or("no k8scp03")?.address;
    // A file written before a clean stop is still there after start (the disk is kept).
    f.ssh("k8scp03", "echo kept > /root/marker && sync")?;
    kubeforge_lab(&["stop", "k8scp03"])?;
    ensure(!ssh_answers(addr, Duration::from_secs(2)), || {
        "k8scp03 answers after stop".into()
    })?;
    kubeforge_lab(&["start", "k8scp03"])?;
    let marker = f.ssh("k8scp03", "cat /root/marker")?;
    ensure(marker.trim() == "kept", || {
        format!("marker after restart: {marker:?}")
    })
}

fn status() -> TestResult {
    let f = lab()?;
    let output = kubeforge_lab(&["status", "--output", "json"])?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let hosts = json["hosts"].as_array().ok_or("no hosts in status")?;
    ensure(hosts.len() == f.plan.hosts.len(), || {
        format!("status: {json}")
    })?;
    for h in hosts {
        ensure(h["state"] == "running" && h["ssh"] == true, || {
            format!("host not running with SSH: {h}")
        })?;
    }
    for s in json["services"].as_array().ok_or("no services in status")? {
        ensure(s["running"] == true && s["answers"] == true, || {
            format!("service not answering: {s}")
        })?;
    }
    let text = kubeforge_lab(&["status"])?;
    let text = String::from_utf8_lossy(&text.stdout);
    ensure(text.contains("k8scp01") && text.contains("answers"), || {
        text.to_string()
    })
}
