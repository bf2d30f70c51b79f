//! `kubeforge certs renew` on the cluster the stand-ins simulate: refused with a foreign etcd
//! member (the arithmetic shown, nothing changed); then every certificate kubeadm manages on
//! each control-plane node renewed (the CAs kept), the static pods restarted on them, the
//! admin kubeconfig copies refreshed, the cluster healthy, and an apply after it changes
//! nothing.

use std::collections::BTreeMap;

use libtest_mimic::Trial;

use crate::cluster::change_count;
use crate::fixture::{CLUSTER, TestResult, ensure, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "certs::renew_is_refused_without_quorum_to_spare_then_renews_every_node_in_turn",
        renew,
    )]
}

const CPS: [&str; 3] = ["k8scp01", "k8scp02", "k8scp03"];

fn run(args: &[&str]) -> Result<crate::cluster::Run, libtest_mimic::Failed> {
    crate::cluster::run_on(CLUSTER, args)
}

/// Every certificate's `notAfter` on every control-plane node (path → date), and the
/// sha256 of root's kubeconfig and of admin.conf.
fn expiries() -> Result<BTreeMap<String, String>, libtest_mimic::Failed> {
    let f = lab()?;
    let mut out = BTreeMap::new();
    for cp in CPS {
        let text = f.ssh(
            cp,
            "for c in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt; do echo \"$c $(openssl x509 -noout -enddate -in $c)\"; done; echo \"kubeconfig $(sha256sum < /root/.kube/config) $(sha256sum < /etc/kubernetes/admin.conf)\"",
        )?;
        for line in text.lines() {
            if let Some((path, date)) = line.split_once(' ') {
                out.insert(format!("{cp}:{path}"), date.to_string());
            }
        }
    }
    Ok(out)
}

fn is_ca(key: &str) -> bool {
    key.ends_with("/ca.crt") || key.ends_with("/front-proxy-ca.crt")
}

fn renew() -> TestResult {
    let f = lab()?;
    let before = expiries()?;
    ensure(before.len() > 20, || {
        format!("certificates read: {before:#?}")
    })?;

    let plan = run(&["certs", "renew", "--plan"])?;
    for expected in [
        "take k8scp02's kube-apiserver out of HAProxy here (maintenance)",
        "renew: kubeadm certs renew all",
        "restart etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the renewed certificates",
        "k8scp03's static pods run on the renewed certificates, ready",
    ] {
        ensure(plan.code == 0 && plan.stdout.contains(expected), || {
            format!("certs renew --plan lacks {expected:?}:\n{}", plan.text())
        })?;
    }

    // A member that never started: etcd has no member to spare.
    let (refused, unchanged) = f.with_foreign_member("10.213.0.98", || {
        Ok((run(&["certs", "renew"])?, expiries()?))
    })?;
    ensure(
        refused.code == 1
            && refused.stderr.contains("the renewal is refused, nothing was changed")
            && refused.stderr.contains(
                "etcd has 3 of 4 members healthy: restarting one more would leave 2 of the 3 needed",
            ),
        || format!("certs renew with a foreign member:\n{}", refused.text()),
    )?;
    ensure(unchanged == before, || {
        "a refused renewal changed a certificate".into()
    })?;

    let renewed = run(&["certs", "renew"])?;
    ensure(renewed.code == 0, || {
        format!("certs renew:\n{}", renewed.text())
    })?;
    note(&format!(
        "certs renew of 3 control-plane nodes (stand-ins): {:.1} s",
        renewed.seconds
    ));
    // etcd's leader hands off before its node's etcd restarts (some node leads).
    ensure(
        renewed
            .stdout
            .contains("etcd-leader: move etcd's leadership from k8scp"),
        || format!("no leadership moved:\n{}", renewed.text()),
    )?;
    let after = expiries()?;
    let mut wrong = Vec::new();
    for (key, was) in &before {
        let now = after.get(key).cloned().unwrap_or_default();
        let kubeconfig = key.ends_with(":kubeconfig");
        if kubeconfig {
            let sums: Vec<&str> = now.split_whitespace().filter(|w| *w != "-").collect();
            if sums.len() != 2 || sums[0] != sums[1] || now == *was {
                wrong.push(format!("{key}: root's kubeconfig {now} (was {was})"));
            }
        } else if is_ca(key) != (now == *was) {
            wrong.push(format!("{key}: {was} -> {now}"));
        }
    }
    ensure(wrong.is_empty(), || {
        format!(
            "after certs renew (CAs kept, everything else renewed):\n{}\n{}",
            wrong.join("\n"),
            renewed.text()
        )
    })?;
    let status = run(&["status"])?;
    ensure(status.code == 0, || {
        format!("status after certs renew:\n{}", status.text())
    })?;
    let apply = run(&["apply", "-o", "json"])?;
    ensure(apply.code == 0 && change_count(&apply.stdout)? == 0, || {
        format!("apply after certs renew changed things:\n{}", apply.text())
    })
}
