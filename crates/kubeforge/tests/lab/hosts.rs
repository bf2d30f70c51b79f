//! What a real cluster needs from the hosts: a clean boot, unique identities, and each
//! host's own writable cgroup subtree.

use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("hosts::boot_cleanly_with_no_failed_units", clean_boot),
        Trial::test(
            "hosts::have_unique_host_keys_and_machine_ids",
            unique_identities,
        ),
        Trial::test("hosts::own_a_writable_cgroup_subtree", writable_cgroups),
    ]
}

fn clean_boot() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        // `is-system-running` exits non-zero unless "running": ask for the word itself.
        let state = f.ssh(
            &host.address.to_string(),
            "systemctl is-system-running --wait || true; systemctl --failed --no-legend",
        )?;
        ensure(state.trim() == "running", || {
            format!("{} is not cleanly up:\n{state}", host.name)
        })?;
    }
    Ok(())
}

fn unique_identities() -> TestResult {
    let f = lab()?;
    let known = std::fs::read_to_string(f.lab.known_hosts())?;
    let mut keys: Vec<&str> = known
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, key)| key))
        .collect();
    ensure(keys.len() == f.plan.hosts.len(), || {
        format!("known_hosts:\n{known}")
    })?;
    keys.sort();
    keys.dedup();
    ensure(keys.len() == f.plan.hosts.len(), || {
        format!("hosts share host keys:\n{known}")
    })?;
    let shared = std::fs::read_dir(f.lab.paths().tree().join("etc/ssh"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ssh_host_"))
        .count();
    ensure(shared == 0, || "the shared tree has SSH host keys".into())?;
    let mut ids = Vec::new();
    for host in &f.plan.hosts {
        ids.push(f.ssh(&host.address.to_string(), "cat /etc/machine-id")?);
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    ensure(ids.len() == count, || {
        format!("hosts share machine ids: {ids:?}")
    })
}

fn writable_cgroups() -> TestResult {
    let f = lab()?;
    let out = f.ssh(
        &f.address("k8scp01"),
        "mkdir /sys/fs/cgroup/memory/kubeforge-test && rmdir /sys/fs/cgroup/memory/kubeforge-test \
         && mkdir /sys/fs/cgroup/cpu/kubeforge-test && ls -d /sys/fs/cgroup/cpu/kubeforge-test",
    )?;
    ensure(out.contains("kubeforge-test"), || out.clone())?;
    // The host's cgroup root is its own cgroup on the machine, not the machine's root.
    let on_machine =
        std::path::Path::new("/sys/fs/cgroup/cpu/kubeforge-lab/k8scp01/kubeforge-test");
    let seen = on_machine.is_dir();
    f.ssh(
        &f.address("k8scp01"),
        "rmdir /sys/fs/cgroup/cpu/kubeforge-test",
    )?;
    ensure(seen, || format!("{} is not there", on_machine.display()))
}
