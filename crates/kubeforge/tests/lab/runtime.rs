//! The node runtime on the lab: preflight catches every problem of every host in one run, and
//! after apply containerd runs with kubeforge's configuration on every node, with the test
//! bundle's programs, unit and images in place and its packages held.

use libtest_mimic::Trial;

use crate::fixture::{CLUSTER, Fixture, TestResult, ensure, kubeforge, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "runtime::preflight_reports_every_problem_of_every_host_at_once",
            preflight_reports_every_problem,
        ),
        Trial::test(
            "runtime::containerd_and_the_kubernetes_programs_are_in_place_on_every_node",
            runtime_in_place,
        ),
    ]
}

/// A host with swap on, one with another host name, one with another's machine id and one
/// with the kubelet's port taken: `check --preflight` reports all four, then all is put back.
fn preflight_reports_every_problem() -> TestResult {
    let f = lab()?;
    let id = f.ssh("k8scp01", "cat /etc/machine-id")?;
    let broken =
        || -> Result<(std::process::Output, std::process::Output), libtest_mimic::Failed> {
            f.lab.set_swap("k8scp02", true)?;
            f.ssh("k8scp03", "hostname not-k8scp03")?;
            f.ssh(
            "k8s01",
            &format!(
                "cp /etc/machine-id /root/machine-id.kept && echo {} > /etc/machine-id && /usr/sbin/sshd -p 10250 -o PidFile=/run/kf-test-sshd.pid",
                id.trim()
            ),
        )?;
            let check = kubeforge()
                .args(["check", "--preflight", "-i"])
                .arg(f.inventory())
                .output()?;
            let plan = kubeforge()
                .args(["plan", "-i"])
                .arg(f.inventory())
                .output()?;
            Ok((check, plan))
        };
    let output = broken();
    // Put everything back before judging, whatever failed: later trials use these hosts.
    let restored = [
        f.lab.set_swap("k8scp02", false).map_err(|e| e.to_string()),
        f.ssh("k8scp03", "hostname k8scp03").map(drop),
        f.ssh(
            "k8s01",
            "if [ -e /root/machine-id.kept ]; then mv /root/machine-id.kept /etc/machine-id; fi; \
             if [ -e /run/kf-test-sshd.pid ]; then kill $(cat /run/kf-test-sshd.pid); fi",
        )
        .map(drop),
    ];
    let (output, plan) = output?;
    for r in restored {
        r?;
    }
    // plan prints everything, then says apply would refuse, and exits 1.
    let plan_out = String::from_utf8_lossy(&plan.stdout);
    let plan_err = String::from_utf8_lossy(&plan.stderr);
    ensure(plan.status.code() == Some(1), || {
        format!("plan exited {:?}:\n{plan_out}{plan_err}", plan.status)
    })?;
    for expected in [
        "  k8scp03 hostname: the host calls itself \"not-k8scp03\", the inventory \"k8scp03\" [FAIL]",
        "phase 1/11 prepare: ",
        "phase 11/11 kubeconfigs: ",
    ] {
        ensure(plan_out.contains(expected), || {
            format!("plan lacks {expected:?}:\n{plan_out}{plan_err}")
        })?;
    }
    ensure(
        plan_err.contains(
            "preflight failed on k8scp03, k8s01, k8scp01: apply would stop before any change",
        ),
        || format!("plan does not say apply would refuse:\n{plan_err}"),
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure(output.status.code() == Some(1), || {
        format!(
            "check --preflight exited {:?}:\n{stdout}{stderr}",
            output.status
        )
    })?;
    for expected in [
        "  k8scp02 swap: swap is on (",
        "  k8scp03 hostname: the host calls itself \"not-k8scp03\", the inventory \"k8scp03\" [FAIL]",
        "      fix: run `hostnamectl set-hostname k8scp03` on it, or correct the inventory",
        "  k8s01 identity: machine-id ",
        "is also that of k8scp01 [FAIL]",
        "  k8s01 ports: port 10250 (for the kubelet) is held by sshd [FAIL]",
    ] {
        ensure(stdout.contains(expected), || {
            format!("check --preflight lacks {expected:?}:\n{stdout}{stderr}")
        })?;
    }
    Ok(())
}

/// `kubeforge` on the test cluster's inventory; its exit code and output.
fn apply_runtime(f: &Fixture, json: bool) -> Result<(i32, String, String), libtest_mimic::Failed> {
    let mut cmd = kubeforge();
    cmd.args(["apply", "--until", "runtime", "-i"])
        .arg(f.inventory());
    if json {
        cmd.args(["-o", "json"]);
    }
    let output = cmd.output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Applied up to the runtime phase (a no-op when earlier trials converged the cluster):
/// containerd runs with kubeforge's configuration and its CRI plugin is up, the bundle's
/// programs, unit and images are in place, the Debian packages held; a second apply changes
/// nothing and takes one round trip per host.
fn runtime_in_place() -> TestResult {
    let f = lab()?;
    let (code, stdout, stderr) = apply_runtime(f, false)?;
    ensure(code == 0, || format!("apply failed:\n{stdout}{stderr}"))?;
    for host in CLUSTER {
        let state = f.ssh(
            host,
            "systemctl is-active containerd; systemctl is-enabled kubelet; \
             /usr/local/bin/kubeadm version -o short; \
             /usr/local/bin/kubelet --version | awk '{print $2}'; \
             /usr/local/bin/kubectl version --client -o json | grep -c '\"gitVersion\": \"v1.34.2\"'; \
             ctr --address /run/containerd/containerd.sock plugins ls | \
               awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" {print $4}'; \
             apt-mark showhold | sort | tr '\\n' ' '",
        )?;
        ensure(
            state.split_whitespace().collect::<Vec<_>>()
                == [
                    "active",
                    "enabled",
                    "v1.34.2",
                    "v1.34.2",
                    "1",
                    "ok",
                    "containerd",
                    "containernetworking-plugins",
                    "runc",
                ],
            || format!("{host}: {state}"),
        )?;
        let config = f.ssh(host, "cat /etc/containerd/config.toml /etc/crictl.yaml")?;
        for line in [
            "version = 2",
            "  SystemdCgroup = true",
            "  restrict_oom_score_adj = true",
            "  sandbox_image = \"registry.k8s.io/pause:3.10.1\"",
            "runtime-endpoint: unix:///run/containerd/containerd.sock",
        ] {
            ensure(config.lines().any(|l| l == line), || {
                format!("{host}: no {line:?} in\n{config}")
            })?;
        }
        // The running containerd started after its configuration was written.
        let fresh = f.ssh(
            host,
            "started=$(date -d \"$(systemctl show -p ActiveEnterTimestamp --value containerd)\" +%s); \
             written=$(stat -c %Y /etc/containerd/config.toml); \
             [ \"$started\" -ge \"$written\" ] && echo fresh || echo \"stale $started < $written\"",
        )?;
        ensure(fresh.trim() == "fresh", || {
            format!("{host}: containerd runs an older configuration: {fresh}")
        })?;
        let images = f.ssh(host, "ctr -n k8s.io images ls -q")?;
        ensure(
            images.lines().any(|l| l == "registry.k8s.io/pause:3.10.1")
                && images
                    .lines()
                    .any(|l| l == "registry.k8s.io/kube-proxy:v1.34.2"),
            || format!("{host}: images {images}"),
        )?;
        let control_plane = host.starts_with("k8scp");
        ensure(
            images.contains("registry.k8s.io/kube-apiserver:") == control_plane,
            || format!("{host}: control-plane images where they do not belong: {images}"),
        )?;
    }
    let (code, stdout, stderr) = apply_runtime(f, true)?;
    ensure(code == 0, || {
        format!("second apply failed:\n{stdout}{stderr}")
    })?;
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    ensure(phases.ends_with(&["runtime"]), || {
        format!("phases applied: {phases:?}")
    })?;
    let changes: Vec<String> = report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["hosts"].as_array().cloned().unwrap_or_default())
        .flat_map(|h| h["changes"].as_array().cloned().unwrap_or_default())
        .map(|c| c.to_string())
        .collect();
    ensure(changes.is_empty(), || {
        format!("a second apply changed: {changes:?}")
    })?;
    let trips: Vec<u64> = report["round_trips"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_u64())
        .collect();
    ensure(trips == [1, 1, 1, 1], || {
        format!("round trips per host of a no-op apply: {trips:?}")
    })
}
