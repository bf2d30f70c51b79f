//! What a real cluster needs from the hosts: a clean boot that leaves the machine as it was,
//! unique identities, each host's own writable cgroup subtree and its own swap list.

use std::path::Path;

use kubeforge_lab::render::FAKE_SWAP;
use kubeforge_lab::sys;
use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "hosts::boot_without_changing_the_machines_sysctls",
            machine_sysctls_unchanged,
        ),
        Trial::test("hosts::boot_cleanly_with_no_failed_units", clean_boot),
        Trial::test(
            "hosts::have_unique_host_keys_and_machine_ids",
            unique_identities,
        ),
        Trial::test("hosts::own_a_writable_cgroup_subtree", writable_cgroups),
        Trial::test(
            "hosts::have_their_own_swap_list_and_never_turn_off_the_machines_swap",
            own_swap_list,
        ),
        Trial::test("hosts::have_dev_kmsg_for_the_kubelet", dev_kmsg),
        Trial::test(
            "hosts::keep_containerd_state_off_the_overlay",
            containerd_not_on_overlay,
        ),
        Trial::test(
            "hosts::share_one_directory_with_each_other_and_the_machine",
            shared_directory,
        ),
    ]
}

/// The kubelet exits without /dev/kmsg; it must be the kernel log, readable.
fn dev_kmsg() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        let out = f.ssh(
            &host.name,
            "stat -c '%F %t:%T %a' /dev/kmsg && \
             dd if=/dev/kmsg bs=16384 count=1 iflag=nonblock status=none | head -c 100 | wc -c",
        )?;
        let lines: Vec<&str> = out.lines().collect();
        ensure(
            lines.first() == Some(&"character special file 1:b 600")
                && lines.get(1).and_then(|n| n.trim().parse::<u32>().ok()) > Some(0),
            || format!("/dev/kmsg in {}:\n{out}", host.name),
        )?;
    }
    Ok(())
}

/// containerd's overlayfs snapshotter fails on an overlay (the hosts' root): each host has a
/// plain directory of the machine at /var/lib/containerd, its own.
fn containerd_not_on_overlay() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        let out = f.ssh(
            &host.name,
            &format!(
                "findmnt -n -o FSTYPE,OPTIONS --target /var/lib/containerd; \
                 echo {0} > /var/lib/containerd/kubeforge-test",
                host.name
            ),
        )?;
        ensure(!out.starts_with("overlay") && out.contains("rw"), || {
            format!("/var/lib/containerd in {}: {out}", host.name)
        })?;
        let on_machine = f
            .lab
            .paths()
            .host_containerd(&host.name)
            .join("kubeforge-test");
        let text = std::fs::read_to_string(&on_machine).unwrap_or_default();
        ensure(text.trim() == host.name, || {
            format!("{} has {text:?}", on_machine.display())
        })?;
    }
    Ok(())
}

/// One directory that every host and the machine see (where test stand-ins keep the state
/// of a simulated cluster).
fn shared_directory() -> TestResult {
    let f = lab()?;
    let path = "/var/lib/kubeforge-lab/shared/kubeforge-test";
    f.ssh("k8scp01", &format!("echo from-k8scp01 > {path}"))?;
    let seen = f.ssh("k8s01", &format!("cat {path}"))?;
    ensure(seen.trim() == "from-k8scp01", || {
        format!("k8s01 reads {seen:?} from the shared directory")
    })?;
    let on_machine = f.lab.paths().shared().join("kubeforge-test");
    let text = std::fs::read_to_string(&on_machine).unwrap_or_default();
    ensure(text.trim() == "from-k8scp01", || {
        format!("{} has {text:?}", on_machine.display())
    })
}

/// Booting hosts (systemd applies sysctl.d at boot) changes no machine sysctl; only the
/// inotify limits, which `lab up` raises on purpose.
fn machine_sysctls_unchanged() -> TestResult {
    let f = lab()?;
    let now = sys::machine_sysctls();
    let raised: Vec<&str> = sys::INOTIFY_LIMITS.iter().map(|(n, _)| *n).collect();
    let changed: Vec<String> = f
        .sysctls_before
        .iter()
        .filter(|(name, _)| !raised.contains(&name.as_str()))
        .filter_map(|(name, before)| {
            let after = now.get(name).map(String::as_str).unwrap_or("(gone)");
            (after != before).then(|| format!("{name}: {before} -> {after}"))
        })
        .collect();
    ensure(changed.is_empty(), || {
        format!("the hosts changed machine sysctls: {changed:?}")
    })
}

fn clean_boot() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        // `is-system-running` exits non-zero unless "running": ask for the word itself.
        let state = f.ssh(
            &host.name,
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
        ids.push(f.ssh(&host.name, "cat /etc/machine-id")?);
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
        "k8scp01",
        "mkdir /sys/fs/cgroup/memory/kubeforge-test && rmdir /sys/fs/cgroup/memory/kubeforge-test \
         && mkdir /sys/fs/cgroup/cpu/kubeforge-test && ls -d /sys/fs/cgroup/cpu/kubeforge-test",
    )?;
    ensure(out.contains("kubeforge-test"), || out.clone())?;
    // The host's cgroup root is its own cgroup on the machine, not the machine's root.
    let on_machine = std::path::Path::new("/sys/fs/cgroup/cpu")
        .join(f.slot.cgroup_of("k8scp01"))
        .join("kubeforge-test");
    let seen = on_machine.is_dir();
    f.ssh("k8scp01", "rmdir /sys/fs/cgroup/cpu/kubeforge-test")?;
    ensure(seen, || format!("{} is not there", on_machine.display()))
}

fn swap_lines(proc_swaps: &str) -> Vec<String> {
    proc_swaps.lines().skip(1).map(str::to_owned).collect()
}

fn machine_swap_is_on(file: &Path) -> bool {
    sys::machine_swaps()
        .iter()
        .any(|s| Path::new(&s.filename) == file)
}

/// A host lists no swap of the machine's; a fake swap area can be given to it and taken away;
/// `swapoff -a` in a host leaves the machine's swap on.
fn own_swap_list() -> TestResult {
    let f = lab()?;
    let host = "k8scp02";
    ensure(machine_swap_is_on(&f.machine_swap), || {
        format!(
            "the machine's test swap {} is off",
            f.machine_swap.display()
        )
    })?;
    let listed = f.ssh(host, "cat /proc/swaps")?;
    ensure(
        listed.starts_with("Filename") && swap_lines(&listed).is_empty(),
        || format!("k8scp02's /proc/swaps is not its own empty list:\n{listed}"),
    )?;

    f.lab.set_swap("k8scp02", true)?;
    let with_fake = f.ssh(host, "cat /proc/swaps")?;
    let fake = swap_lines(&with_fake);
    ensure(
        fake.len() == 1 && fake[0].starts_with(FAKE_SWAP) && fake[0].contains("file"),
        || format!("k8scp02's /proc/swaps with a fake swap area:\n{with_fake}"),
    )?;
    let others = f.ssh("k8scp03", "cat /proc/swaps")?;
    ensure(swap_lines(&others).is_empty(), || {
        format!("k8scp03 sees k8scp02's swap:\n{others}")
    })?;
    // Every host turning its swap off, as kubeforge's prepare step does.
    for h in &f.plan.hosts {
        f.ssh(&h.name, "swapoff -a || true")?;
    }
    let still_on = machine_swap_is_on(&f.machine_swap);
    f.lab.set_swap("k8scp02", false)?;
    ensure(still_on, || {
        "`swapoff -a` in the hosts turned off the machine's swap".into()
    })?;
    let after = f.ssh(host, "cat /proc/swaps")?;
    ensure(swap_lines(&after).is_empty(), || {
        format!("the fake swap area is still listed after it was taken away:\n{after}")
    })
}
