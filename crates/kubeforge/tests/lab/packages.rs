//! The lab's offline package repository, used by a host with apt-get: what a host needs
//! to run a real cluster is there.

use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "packages::host_installs_socat_and_the_cni_plugins_from_the_lab_repository",
        install_packages,
    )]
}

fn install_packages() -> TestResult {
    let f = lab()?;
    let host = "k8scp01";
    let sources = f.ssh(
        host,
        "cat /etc/apt/sources.list; ls /etc/apt/sources.list.d; ip route",
    )?;
    let only_source = format!("deb [trusted=yes] http://{}:", f.plan.bridge_ip);
    ensure(
        sources.lines().filter(|l| l.starts_with("deb")).count() == 1
            && sources.contains(&only_source),
        || format!("apt sources in k8scp01:\n{sources}"),
    )?;
    ensure(!sources.contains("default"), || {
        format!("a host has a default route:\n{sources}")
    })?;
    f.ssh(
        host,
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q socat \
         containernetworking-plugins",
    )?;
    let version = f.ssh(host, "socat -V")?;
    ensure(version.contains("socat version"), || {
        format!("socat -V said {version:?}")
    })?;
    let plugins = f.ssh(host, "ls /usr/lib/cni")?;
    ensure(
        ["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .all(|p| plugins.lines().any(|l| l == *p)),
        || format!("/usr/lib/cni in k8scp01:\n{plugins}"),
    )
}
