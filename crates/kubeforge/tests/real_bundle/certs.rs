//! `kubeforge certs renew` on the real cluster while a client polls `https://VIP:8443/healthz`
//! every 0.1 s: every certificate kubeadm manages on each control-plane node expires later
//! than before (the CAs are kept), no request fails, the cluster is whole, and an apply after
//! it changes nothing.

use std::path::Path;

use kubeforge_lab::Lab;

use super::upgrade::{Sampler, certificates};
use super::{CLUSTER, Result, changes, ensure, kubeforge, note, whole};

pub fn renewed(dir: &Path, lab: &Lab, inv: &str, timings: &mut Vec<String>) -> Result<()> {
    let before = certificates(dir, inv)?;
    let poll = Sampler::vip_poller(lab, "certs-poll.txt")?;
    let renewed = kubeforge(dir, &["certs", "renew", "-i", inv]);
    let polls = poll.lines()?;
    let renewed = renewed?;
    let after = certificates(dir, inv)?;
    let ca = |path: &str| path.ends_with("/ca.crt") || path.ends_with("/front-proxy-ca.crt");
    let mut wrong = Vec::new();
    for (key, was) in &before {
        match after.get(key) {
            None => wrong.push(format!("{}:{} is gone", key.0, key.1)),
            Some(now) if ca(&key.1) && now != was => {
                wrong.push(format!("{}:{} (a CA) changed", key.0, key.1))
            }
            Some(now) if !ca(&key.1) && now <= was => {
                wrong.push(format!("{}:{} not renewed", key.0, key.1))
            }
            Some(_) => {}
        }
    }
    ensure(wrong.is_empty() && before.len() >= 36, || {
        format!(
            "after certs renew, of {} certificates: {wrong:#?}\n{}",
            before.len(),
            renewed.stdout
        )
    })?;
    let failed: Vec<&String> = polls.iter().filter(|l| l.trim() != "200").collect();
    ensure(failed.is_empty() && polls.len() > 100, || {
        format!(
            "{} of {} requests through the VIP failed during certs renew: {failed:?}",
            failed.len(),
            polls.len()
        )
    })?;
    whole(lab, CLUSTER)?;
    let apply = kubeforge(dir, &["apply", "-o", "json", "-i", inv])?;
    ensure(changes(&apply)? == 0, || {
        format!("apply after certs renew changed things:\n{}", apply.stdout)
    })?;
    note(&format!(
        "real_bundle: certs renew: {} certificates renewed ({} CAs kept), {} requests through the VIP, none failed",
        before.keys().filter(|(_, p)| !ca(p)).count(),
        before.keys().filter(|(_, p)| ca(p)).count(),
        polls.len()
    ));
    timings.push(format!(
        "certs renew of 3 control-plane nodes: {:.1} s ({})",
        renewed.seconds,
        super::phases(&renewed)
    ));
    Ok(())
}
