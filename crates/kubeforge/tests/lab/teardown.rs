//! `lab down` leaves nothing behind, and restores machine sysctls that hosts changed.

use std::path::Path;
use std::sync::Mutex;

use kubeforge_lab::state::Slot;
use kubeforge_lab::sys::ProcId;
use kubeforge_lab::{net, sys};
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
        Trial::test(
            "teardown::a_lab_of_another_directory_is_left_as_it_was",
            bystander_untouched,
        ),
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
    f.ssh(host, &format!("sysctl -q -w {name}={leaked}"))?;
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

/// Processes of the lab, zombies included: those in the lab's cgroups and those started
/// from its directory.
fn lab_processes(dir: &Path, slot: Slot) -> Vec<ProcId> {
    // Its hosts' disks and its run directory: not its cache, which the bystander shares.
    let needles = [
        format!("{}/hosts/", dir.display()),
        format!("{}/run/", dir.display()),
    ];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let ours = sys::own_ancestry();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !ours.contains(pid))
        .filter(|pid| {
            let cgroups =
                std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cgroups.contains(&format!("/{}/", slot.cgroup_parent().display()))
                || needles
                    .iter()
                    .any(|n| String::from_utf8_lossy(&cmdline).contains(n))
        })
        .filter_map(ProcId::of)
        .collect()
}

fn describe(procs: &[ProcId]) -> String {
    procs
        .iter()
        .map(ProcId::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `lab down` kills everything and waits for it: right after it returns, no process of the
/// lab is left, not even one waiting to be reaped. A directory it cannot remove is named
/// (path and error), the rest is still undone, and a second `lab down` finishes the job.
fn down_leaves_nothing() -> TestResult {
    let f = lab()?;
    // kubeforge's ssh masters outlive its runs by a few idle seconds (kept for the next run):
    // they are not the lab's, so let them go first.
    kubeforge_lab::sys::wait_until(
        std::time::Duration::from_secs(crate::fixture::SSH_PERSIST_SECS + 10),
        || crate::fixture::ssh_masters().is_empty(),
    );
    let before = lab_processes(&f.dir, f.slot);
    ensure(before.len() > 4 * f.plan.hosts.len(), || {
        format!(
            "too few lab processes found before `lab down`: {}",
            describe(&before)
        )
    })?;
    // Directories made for a host, not empty: systemd-nspawn's, and one with a file that
    // cannot be removed until its immutable flag is cleared.
    let propagate = Path::new("/run/systemd/nspawn/propagate").join(f.slot.machine("k8scp01"));
    std::fs::write(propagate.join("kubeforge-test"), "x")?;
    let stuck = f
        .lab
        .paths()
        .host_upper("k8s01")
        .join("kubeforge-test-immutable");
    std::fs::write(&stuck, "x")?;
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&stuck)
            .status()
            .map(|s| s.success())
    };
    ensure(chattr("+i")?, || {
        format!("chattr +i {} failed", stuck.display())
    })?;

    let first = crate::fixture::kubeforge().args(["lab", "down"]).output();
    let left = lab_processes(&f.dir, f.slot);
    let cleared = chattr("-i");
    let second = kubeforge_lab(&["down"]);
    mark_torn_down();
    let swap_back = sys::machine_swaps()
        .iter()
        .any(|s| Path::new(&s.filename) == f.machine_swap);
    remove_machine_swap();
    let first = first?;
    ensure(left.is_empty(), || {
        format!(
            "right after `lab down` returned, processes of the lab are left: {}",
            describe(&left)
        )
    })?;
    let stderr = String::from_utf8_lossy(&first.stderr);
    ensure(first.status.code() == Some(1), || {
        format!("the first `lab down` exited {}: {stderr}", first.status)
    })?;
    ensure(
        stderr.contains(&format!(
            "removing {}: Operation not permitted",
            stuck.display()
        )),
        || {
            format!(
                "the first `lab down` does not name {}:\n{stderr}",
                stuck.display()
            )
        },
    )?;
    ensure(cleared?, || format!("chattr -i {} failed", stuck.display()))?;
    second?;
    ensure(!propagate.exists(), || {
        format!("{} is left", propagate.display())
    })?;
    ensure(swap_back, || {
        format!(
            "the machine's swap {} is still off after `lab down`",
            f.machine_swap.display()
        )
    })?;
    let bridge = f.slot.bridge();
    ensure(!net::link_exists(&bridge), || {
        format!("bridge {bridge} is left")
    })?;
    for h in &f.plan.hosts {
        let veth = f.slot.veth(&h.name);
        ensure(!net::link_exists(&veth), || format!("link {veth} is left"))?;
    }
    let mounts = sys::mounts_under(&f.dir);
    ensure(mounts.is_empty(), || format!("mounts left: {mounts:?}"))?;
    let overlays: Vec<_> = sys::mounts()
        .into_iter()
        .filter(|m| {
            m.fs_type == "overlay"
                && (m.mount_point.starts_with(&f.dir)
                    || m.super_options
                        .iter()
                        .any(|o| o.contains(&format!("{}/", f.dir.display()))))
                && !m.mount_point.starts_with(&f.bystander.dir)
        })
        .collect();
    ensure(overlays.is_empty(), || {
        format!("overlay mounts left: {overlays:?}")
    })?;
    let cgroups = sys::existing_cgroups(
        &sys::cgroup_hierarchies(&sys::mounts()),
        &f.slot.cgroup_parent(),
    );
    ensure(cgroups.is_empty(), || format!("cgroups left: {cgroups:?}"))?;
    for (name, before) in LEAKED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let now = sys::read_sysctl(name).unwrap_or_default();
        ensure(&now == before, || {
            format!("{name} is {now} on the machine after `lab down`; it was {before}")
        })?;
    }
    // The bystander, still up, raised the inotify limits before the test lab came up: they
    // are back to the originals once it is down too (below).
    let inotify: Vec<&str> = sys::INOTIFY_LIMITS.iter().map(|(n, _)| *n).collect();
    let differ = sysctls_changed(&f.sysctls_before, &inotify);
    ensure(differ.is_empty(), || {
        format!("machine sysctls changed by the lab: {differ:?}")
    })?;
    ensure(!f.lab.paths().state().exists(), || {
        "state file is left".into()
    })?;
    ensure(!f.lab.paths().hosts_dir().exists(), || {
        "hosts' disks are left".into()
    })?;
    ensure(!f.lab.paths().shared().exists(), || {
        format!("{} is left", f.lab.paths().shared().display())
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

/// The bystander (a lab of another directory, up before the test lab: what `./scripts/demo`
/// leaves up) went through every scenario and the test lab's `lab down` as it was: its hosts
/// running and answering SSH by name, its DNS and package repository answering, its bridge,
/// cgroups and overlays in place. Then it goes down too, leaving nothing of it behind.
fn bystander_untouched() -> TestResult {
    let f = lab()?;
    let b = &f.bystander;
    let trouble = b.trouble();
    let bridge_there = net::link_exists(&b.slot.bridge());
    let cgroups = sys::existing_cgroups(
        &sys::cgroup_hierarchies(&sys::mounts()),
        &b.slot.cgroup_parent(),
    );
    let down = b.kubeforge_lab(&["down"]);
    ensure(trouble.is_none(), || trouble.unwrap_or_default())?;
    ensure(bridge_there, || {
        format!("the bystander's bridge {} is gone", b.slot.bridge())
    })?;
    ensure(!cgroups.is_empty(), || {
        format!(
            "the bystander's cgroups ({}) are gone",
            b.slot.cgroup_parent().display()
        )
    })?;
    ensure(b.slot != f.slot, || {
        format!("both labs took slot {:?}", f.slot)
    })?;
    down?;
    let differ = sysctls_changed(&f.sysctls_before, &[]);
    ensure(differ.is_empty(), || {
        format!("machine sysctls changed by the labs: {differ:?}")
    })?;
    ensure(!b.lab.paths().state().exists(), || {
        "the bystander's state file is left".into()
    })?;
    ensure(!net::link_exists(&b.slot.bridge()), || {
        format!("bridge {} is left", b.slot.bridge())
    })?;
    let mounts = sys::mounts_under(&b.dir);
    ensure(mounts.is_empty(), || format!("mounts left: {mounts:?}"))
}

/// Machine sysctls (but `except`) that differ from `before`: `name: before -> now`.
fn sysctls_changed(
    before: &std::collections::BTreeMap<String, String>,
    except: &[&str],
) -> Vec<String> {
    let now = sys::machine_sysctls();
    before
        .iter()
        .filter(|(name, _)| !except.contains(&name.as_str()))
        .filter_map(|(name, was)| {
            let is = now.get(name).map(String::as_str).unwrap_or("(gone)");
            (is != was).then(|| format!("{name}: {was} -> {is}"))
        })
        .chain(
            now.keys()
                .filter(|n| !before.contains_key(*n) && !except.contains(&n.as_str()))
                .map(|n| format!("{n}: (none) -> {}", now[n])),
        )
        .collect()
}
