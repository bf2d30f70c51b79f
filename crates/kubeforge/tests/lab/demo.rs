//! `./scripts/demo`, the README's first command, on the test lab (which is up, so the demo
//! uses it as it is): without a bundle it prepares the nodes and brings up the VIP; with the
//! test bundle it builds the whole cluster and shows its nodes through the VIP, the cluster's
//! version being the bundle's (the lab's inventory names none).

use std::path::Path;
use std::process::Command;

use libtest_mimic::Trial;

use crate::fixture::{Fixture, TestResult, ensure, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "demo::without_a_bundle_prepares_the_nodes_and_the_vip",
            without_bundle,
        ),
        Trial::test(
            "demo::with_a_bundle_builds_the_cluster_and_shows_its_nodes",
            with_bundle,
        ),
    ]
}

/// `./scripts/demo` with `KUBEFORGE_BUNDLE` set to `bundle`: its exit code and output.
fn demo(f: &Fixture, bundle: &str) -> Result<(i32, String), libtest_mimic::Failed> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo");
    let started = std::time::Instant::now();
    let output = Command::new(script)
        .env("KUBEFORGE_BIN", env!("CARGO_BIN_EXE_kubeforge"))
        .env("KUBEFORGE_LAB_DIR", &f.dir)
        .env("KUBEFORGE_BUNDLE", bundle)
        .env(
            "KUBEFORGE_SSH_PERSIST",
            crate::fixture::SSH_PERSIST_SECS.to_string(),
        )
        // The kubectl stand-in on this machine reads the simulated cluster from the lab.
        .env(
            "KUBEFORGE_STANDIN_STATE",
            f.lab.paths().shared().join("standin"),
        )
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    note(&format!(
        "./scripts/demo (KUBEFORGE_BUNDLE={bundle:?}): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok((output.status.code().unwrap_or(-1), text))
}

fn without_bundle() -> TestResult {
    let f = lab()?;
    let (code, text) = demo(f, "")?;
    ensure(code == 0, || format!("the demo exited {code}:\n{text}"))?;
    for expected in [
        "is up already: using it",
        "==> kubeforge apply --until load-balancer",
        "Nodes prepared and the VIP up in ",
    ] {
        ensure(text.contains(expected), || {
            format!("the demo's output lacks {expected:?}:\n{text}")
        })?;
    }
    Ok(())
}

fn with_bundle() -> TestResult {
    let f = lab()?;
    let (code, text) = demo(f, &f.bundle.display().to_string())?;
    ensure(code == 0, || format!("the demo exited {code}:\n{text}"))?;
    for expected in [
        "==> kubeforge apply -i ",
        "Kubernetes 1.34.2, pod network flannel from the bundle's manifests/kube-flannel.yml",
        "  kubernetes    1.34.2 (kubeadm API kubeadm.k8s.io/v1beta4, the bundle's)",
        "==> kubectl get nodes, from this machine through the VIP",
        "==> kubeforge status -i ",
        "\nplan: nothing to change\nhealthy\n",
        "A highly-available cluster in ",
    ] {
        ensure(text.contains(expected), || {
            format!("the demo's output lacks {expected:?}:\n{text}")
        })?;
    }
    // `kubectl get nodes -o wide` through the VIP: every host of the lab, Ready, on the
    // bundle's version.
    for host in &f.plan.hosts {
        ensure(
            text.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&host.name.as_str())
                    && w.get(1) == Some(&"Ready")
                    && w.get(4) == Some(&"v1.34.2")
            }),
            || format!("{} is not listed Ready on v1.34.2:\n{text}", host.name),
        )?;
    }
    Ok(())
}
