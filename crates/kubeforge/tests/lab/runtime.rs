//! The node runtime on the lab: preflight catches every problem of every host in one run, and
//! after apply containerd runs with kubeforge's configuration on every node, with the test
//! bundle's programs, unit and images in place and its packages held.

use libtest_mimic::Trial;

use crate::fixture::{CLUSTER, TestResult, ensure, kubeforge, lab};

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
/// with the kubelet's port taken: `check --hosts` reports all four, then all is put back.
fn preflight_reports_every_problem() -> TestResult {
    let f = lab()?;
    let id = f.ssh("k8scp01", "cat /etc/machine-id")?;
    f.lab.set_swap("k8scp02", true)?;
    f.ssh("k8scp03", "hostname not-k8scp03")?;
    f.ssh(
        "k8s01",
        &format!(
            "cp /etc/machine-id /root/machine-id.kept && echo {} > /etc/machine-id && /usr/sbin/sshd -p 10250 -o PidFile=/run/kf-test-sshd.pid",
            id.trim()
        ),
    )?;
    let output = kubeforge()
        .args(["check", "--hosts", "-i"])
        .arg(f.inventory())
        .output()?;
    // Put everything back before judging.
    f.lab.set_swap("k8scp02", false)?;
    f.ssh("k8scp03", "hostname k8scp03")?;
    f.ssh(
        "k8s01",
        "mv /root/machine-id.kept /etc/machine-id && kill $(cat /run/kf-test-sshd.pid)",
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure(output.status.code() == Some(1), || {
        format!(
            "check --hosts exited {:?}:\n{stdout}{stderr}",
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
            format!("check --hosts lacks {expected:?}:\n{stdout}{stderr}")
        })?;
    }
    Ok(())
}

fn runtime_in_place() -> TestResult {
    let f = lab()?;
    for host in CLUSTER {
        let state = f.ssh(
            host,
            "systemctl is-active containerd; systemctl is-enabled kubelet; \
             /usr/local/bin/kubeadm version -o short; \
             ctr plugins ls | awk '$1 == \"io.containerd.grpc.v1\" && $2 == \"cri\" {print $4}'; \
             apt-mark showhold | grep -x containerd",
        )?;
        ensure(
            state.split_whitespace().collect::<Vec<_>>()
                == ["active", "enabled", "v1.34.2", "ok", "containerd"],
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
    Ok(())
}
