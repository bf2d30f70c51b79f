//! `lab down` leaves nothing behind, and restores machine sysctls that hosts changed.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kubeforge_lab::{host, net, sys};
use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, kubeforge_lab, lab, mark_torn_down, remove_machine_swap};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "teardown::host_sysctl_change_reaches_the_machine",
            kernel_panic_leaks,
        ),
        Trial::test(
            "teardown::host_swappiness_change_reaches_the_machine",
            swappiness_leaks,
        ),
        Trial::test(
            "teardown::machine_swap_turned_off_during_the_lab",
            machine_swap_off,
        ),
        Trial::test("teardown::down_leaves_nothing_behind", down_leaves_nothing),
    ]
}

/// The machine's swap turned off while the lab is up (hosts cannot do it, so the machine
/// does): `lab down` turns it back on, as it was when the lab came up.
fn machine_swap_off() -> TestResult {
    let f = lab()?;
    let status = std::process::Command::new("swapoff")
        .arg(&f.machine_swap)
        .status()?;
    ensure(status.success(), || {
        format!("swapoff {} failed", f.machine_swap.display())
    })
}

/// Machine sysctls that a trial changed from a host, with their values before: `lab down`
/// must put each back.
static LEAKED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Sets `name` inside a host to a value other than the machine's, checks that the machine
/// sees it (it is not per namespace), and records it for the check after `lab down`.
fn leak_from_host(host: &str, name: &str, values: [&str; 2]) -> TestResult {
    let f = lab()?;
    let before = sys::read_sysctl(name).ok_or_else(|| format!("no sysctl {name}"))?;
    let leaked = if before == values[0] {
        values[1]
    } else {
        values[0]
    };
    LEAKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((name.to_owned(), before));
    f.ssh(&f.address(host), &format!("sysctl -q -w {name}={leaked}"))?;
    let now = sys::read_sysctl(name).unwrap_or_default();
    ensure(now == leaked, || {
        format!("{name} on the machine is {now} after {host} set {leaked}")
    })
}

/// A kubelet sets kernel.panic in its host; that is the machine's kernel.panic too.
fn kernel_panic_leaks() -> TestResult {
    leak_from_host("k8scp01", "kernel.panic", ["10", "11"])
}

/// Any writable global sysctl, not only those a kubelet is known to set.
fn swappiness_leaks() -> TestResult {
    leak_from_host("k8s01", "vm.swappiness", ["1", "2"])
}

fn down_leaves_nothing() -> TestResult {
    let f = lab()?;
    let output = kubeforge_lab(&["down"]);
    mark_torn_down();
    let swap_back = sys::machine_swaps()
        .iter()
        .any(|s| Path::new(&s.filename) == f.machine_swap);
    remove_machine_swap();
    output?;
    ensure(swap_back, || {
        format!(
            "the machine's swap {} is still off after `lab down`",
            f.machine_swap.display()
        )
    })?;

    // Processes: nothing started from the lab directory, nor any nspawn/dnsmasq/httpd.
    let mut left = Vec::new();
    let gone = sys::wait_until(Duration::from_secs(10), || {
        left = sys::processes()
            .into_iter()
            .filter(|(_, _, cmd)| {
                cmd.contains(&f.dir.display().to_string())
                    || cmd.starts_with("systemd-nspawn")
                    || cmd.starts_with("dnsmasq")
                    || cmd.starts_with("busybox httpd")
            })
            .map(|(pid, _, cmd)| format!("{pid} {cmd}"))
            .collect();
        left.is_empty()
    });
    ensure(gone, || format!("processes left: {left:?}"))?;
    ensure(!net::link_exists(net::BRIDGE), || {
        "bridge kfbr0 is left".into()
    })?;
    for h in &f.plan.hosts {
        let veth = net::veth_name(&h.name);
        ensure(!net::link_exists(&veth), || format!("link {veth} is left"))?;
    }
    let mounts = sys::mounts_under(&f.dir);
    ensure(mounts.is_empty(), || format!("mounts left: {mounts:?}"))?;
    let overlays: Vec<_> = sys::mounts()
        .into_iter()
        .filter(|m| m.fs_type == "overlay" && m.mount_point.to_string_lossy().contains("kubeforge"))
        .collect();
    ensure(overlays.is_empty(), || {
        format!("overlay mounts left: {overlays:?}")
    })?;
    let cgroups = sys::existing_cgroups(
        &sys::cgroup_hierarchies(&sys::mounts()),
        Path::new(host::CGROUP_PARENT),
    );
    ensure(cgroups.is_empty(), || format!("cgroups left: {cgroups:?}"))?;
    for (name, before) in LEAKED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let now = sys::read_sysctl(name).unwrap_or_default();
        ensure(&now == before, || {
            format!("{name} is {now} on the machine after `lab down`; it was {before}")
        })?;
    }
    let after = sys::machine_sysctls();
    ensure(after == f.sysctls_before, || {
        format!(
            "machine sysctls before {:?}, after {after:?}",
            f.sysctls_before
        )
    })?;
    ensure(!f.lab.paths().state().exists(), || {
        "state file is left".into()
    })?;
    ensure(!f.lab.paths().hosts_dir().exists(), || {
        "hosts' disks are left".into()
    })?;
    ensure(f.lab.paths().tree().join("etc/os-release").exists(), || {
        "the cached tree was removed without --purge".into()
    })?;
    let forward = sys::read_sysctl("net.ipv4.ip_forward");
    ensure(forward == f.ip_forward_before, || {
        format!(
            "net.ipv4.ip_forward was {:?}, is {forward:?}",
            f.ip_forward_before
        )
    })
}
