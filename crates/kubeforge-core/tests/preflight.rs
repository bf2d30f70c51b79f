//! Preflight verdicts from facts: one test per check, failing and passing.

use std::collections::BTreeMap;

use kubeforge_core::facts::{self, HostFacts, SystemFacts};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::preflight::{Status, Verdict, blocks_apply, verdicts};

fn cluster(version: &str) -> Cluster {
    model::load(&format!(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\ndns:\n  domain: lab.net\nkubernetes_version: \"{version}\"\n"
    ))
    .cluster
    .unwrap()
}

/// A host that passes every check.
fn healthy(name: &str, n: u8) -> HostFacts {
    let mut f = HostFacts {
        os: [
            ("ID".to_string(), "debian".to_string()),
            ("VERSION_ID".to_string(), "12".to_string()),
            (
                "PRETTY_NAME".to_string(),
                "Debian GNU/Linux 12 (bookworm)".to_string(),
            ),
        ]
        .into(),
        system: SystemFacts {
            arch: "amd64".into(),
            cpus: 2,
            memory_mb: 3900,
            cgroup_v2: true,
            container: "none".into(),
            hostname: name.into(),
            product_uuid: format!("4c4c4544-0000-1000-8000-00000000000{n}"),
            machine_id: format!("0000000000000000000000000000000{n}"),
            macs: vec![format!("52:54:00:00:00:0{n}")],
            time_sync: vec!["systemd-timesyncd".into()],
            clock_ms: Some(1_764_000_000_000),
            disk: facts::Disk {
                mount: "/".into(),
                size_mb: 30_000,
                available_mb: 20_000,
            },
        },
        ..HostFacts::default()
    };
    for (name, ip) in [
        ("k8scp01.lab.net", "10.0.0.11"),
        ("k8scp02.lab.net", "10.0.0.12"),
        ("k8scp.lab.net", "10.0.0.10"),
    ] {
        f.resolved.insert(name.into(), vec![ip.parse().unwrap()]);
    }
    f
}

fn all_healthy() -> BTreeMap<String, HostFacts> {
    [("k8scp01", 1), ("k8scp02", 2), ("k8s01", 3)]
        .into_iter()
        .map(|(h, n)| (h.to_string(), healthy(h, n)))
        .collect()
}

fn judge(
    version: &str,
    facts: &BTreeMap<String, HostFacts>,
    offsets: &[(&str, i64)],
) -> Vec<Verdict> {
    let offsets = offsets.iter().map(|(h, o)| (h.to_string(), *o)).collect();
    verdicts(&cluster(version), facts, &offsets, true)
}

/// The verdicts of `check` on `host` that are not Ok.
fn problems<'a>(all: &'a [Verdict], host: &str, check: &str) -> Vec<&'a Verdict> {
    all.iter()
        .filter(|v| v.host == host && v.check == check && v.status != Status::Ok)
        .collect()
}

#[test]
fn healthy_hosts_pass_every_check() {
    let all = judge("1.37", &all_healthy(), &[("k8scp01", 120)]);
    let bad: Vec<_> = all.iter().filter(|v| v.status != Status::Ok).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for check in [
        "os",
        "architecture",
        "resources",
        "swap",
        "cgroup",
        "time-sync",
        "ports",
        "hostname",
        "dns",
        "identity",
    ] {
        assert!(
            all.iter().any(|v| v.host == "k8s01" && v.check == check),
            "no {check} verdict"
        );
    }
    assert!(!blocks_apply(&all));
}

#[test]
fn another_system_is_refused() {
    let mut f = all_healthy();
    let h = f.get_mut("k8s01").unwrap();
    h.os.insert("ID".into(), "ubuntu".into());
    h.os.insert("PRETTY_NAME".into(), "Ubuntu 24.04 LTS".into());
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8s01", "os");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].found, "Ubuntu 24.04 LTS");
    assert!(
        p[0].fix
            .as_deref()
            .unwrap()
            .contains("Debian 12 (bookworm) or 13")
    );
    assert!(blocks_apply(&all));
    f.get_mut("k8s01").unwrap().os = healthy("k8s01", 3).os;
    f.get_mut("k8s01").unwrap().system.arch = "armhf".into();
    assert_eq!(
        problems(&judge("1.37", &f, &[]), "k8s01", "architecture").len(),
        1
    );
}

#[test]
fn control_planes_need_kubeadms_minimums_workers_do_not() {
    let mut f = all_healthy();
    f.get_mut("k8scp02").unwrap().system.cpus = 1;
    f.get_mut("k8scp02").unwrap().system.memory_mb = 1024;
    f.get_mut("k8s01").unwrap().system.cpus = 1;
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8scp02", "resources");
    assert_eq!(p[0].found, "1 CPUs, 1024 MB of memory");
    assert!(
        p[0].fix
            .as_deref()
            .unwrap()
            .contains("at least 2 CPUs and at least 1700 MB of memory")
    );
    assert!(problems(&all, "k8s01", "resources").is_empty());
}

#[test]
fn a_nearly_full_disk_is_a_warning_with_what_the_kubelet_will_do() {
    let mut f = all_healthy();
    let all = judge("1.37", &f, &[]);
    assert!(problems(&all, "k8s01", "disk").is_empty());
    // 17 GB free of 252 GB (7%): the kubelet's image file system threshold is 15%.
    f.get_mut("k8s01").unwrap().system.disk = facts::Disk {
        mount: "/var/lib/containerd".into(),
        size_mb: 252_000,
        available_mb: 17_000,
    };
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8s01", "disk");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].status, Status::Warn);
    assert_eq!(
        p[0].found,
        "17000 MB of 252000 MB free (6%) on /var/lib/containerd"
    );
    assert!(p[0].fix.as_deref().unwrap().contains("DiskPressure"));
    assert!(!blocks_apply(&all));
}

#[test]
fn swap_fails_but_apply_turns_it_off_itself() {
    let mut f = all_healthy();
    f.get_mut("k8s01").unwrap().swap.active = vec!["/dev/vda3".into()];
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8s01", "swap");
    assert_eq!(p[0].status, Status::Fail);
    assert_eq!(p[0].found, "swap is on (/dev/vda3)");
    assert!(p[0].apply_fixes);
    assert!(
        !blocks_apply(&all),
        "apply turns swap off before the kubelet runs"
    );
}

#[test]
fn cgroup_v1_fails_from_1_35_and_says_which_version_works() {
    let mut f = all_healthy();
    f.get_mut("k8scp01").unwrap().system.cgroup_v2 = false;
    let all = judge("1.35", &f, &[]);
    let p = problems(&all, "k8scp01", "cgroup");
    assert_eq!(p[0].status, Status::Fail);
    assert!(
        p[0].found
            .contains("Kubernetes 1.35 refuses to start on cgroup v1")
    );
    assert!(
        p[0].fix
            .as_deref()
            .unwrap()
            .contains("Kubernetes 1.34 or older")
    );
    let older = judge("1.34", &f, &[]);
    assert_eq!(
        problems(&older, "k8scp01", "cgroup")[0].status,
        Status::Warn
    );
    // A run that stops before Kubernetes is installed (`apply --until load-balancer`) is
    // warned, not stopped.
    let before = verdicts(&cluster("1.35"), &f, &BTreeMap::new(), false);
    let p = problems(&before, "k8scp01", "cgroup");
    assert_eq!(p[0].status, Status::Warn);
    assert!(
        p[0].found
            .contains("(this run stops before Kubernetes is installed)"),
        "{}",
        p[0].found
    );
}

#[test]
fn clocks_are_compared_with_this_machines() {
    let f = all_healthy();
    let all = judge(
        "1.37",
        &f,
        &[("k8scp01", 800), ("k8scp02", -7_200), ("k8s01", 40)],
    );
    let warn = problems(&all, "k8scp01", "clock");
    assert_eq!(warn[0].status, Status::Warn);
    assert_eq!(
        warn[0].found,
        "its clock is 0.8 s ahead of the machine kubeforge runs on"
    );
    let fail = problems(&all, "k8scp02", "clock");
    assert_eq!(fail[0].status, Status::Fail);
    assert_eq!(
        fail[0].found,
        "its clock is 7.2 s behind the machine kubeforge runs on"
    );
    assert!(problems(&all, "k8s01", "clock").is_empty());
}

#[test]
fn no_time_sync_is_a_warning_except_in_a_container() {
    let mut f = all_healthy();
    f.get_mut("k8s01").unwrap().system.time_sync.clear();
    f.get_mut("k8scp02").unwrap().system.time_sync.clear();
    f.get_mut("k8scp02").unwrap().system.container = "systemd-nspawn".into();
    let all = judge("1.37", &f, &[]);
    assert_eq!(problems(&all, "k8s01", "time-sync")[0].status, Status::Warn);
    assert!(problems(&all, "k8scp02", "time-sync").is_empty());
}

#[test]
fn ports_must_be_free_or_held_by_what_kubeforge_runs() {
    let mut f = all_healthy();
    let cp = f.get_mut("k8scp01").unwrap();
    cp.listening.insert(6443, "kube-apiserver".into());
    cp.listening.insert(8443, "haproxy".into());
    cp.listening.insert(2379, "etcd".into());
    cp.listening.insert(10259, "nginx".into());
    f.get_mut("k8s01")
        .unwrap()
        .listening
        .insert(10250, "socat".into());
    let all = judge("1.37", &f, &[]);
    assert_eq!(
        problems(&all, "k8scp01", "ports")[0].found,
        "port 10259 (for kube-scheduler) is held by nginx"
    );
    assert_eq!(
        problems(&all, "k8s01", "ports")[0].found,
        "port 10250 (for the kubelet) is held by socat"
    );
    // Workers need no control-plane ports.
    f.get_mut("k8s01").unwrap().listening = [(6443, "nc".to_string())].into();
    assert!(problems(&judge("1.37", &f, &[]), "k8s01", "ports").is_empty());
}

#[test]
fn the_host_name_must_be_the_inventory_name() {
    let mut f = all_healthy();
    f.get_mut("k8scp02").unwrap().system.hostname = "debian".into();
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8scp02", "hostname");
    assert_eq!(
        p[0].found,
        "the host calls itself \"debian\", the inventory \"k8scp02\""
    );
    assert!(
        p[0].fix
            .as_deref()
            .unwrap()
            .contains("hostnamectl set-hostname k8scp02")
    );
    f.get_mut("k8scp02").unwrap().system.hostname = "k8scp02.lab.net".into();
    assert!(problems(&judge("1.37", &f, &[]), "k8scp02", "hostname").is_empty());
}

#[test]
fn product_uuids_machine_ids_and_macs_must_be_unique() {
    let mut f = all_healthy();
    let uuid = f["k8scp01"].system.product_uuid.clone();
    f.get_mut("k8s01").unwrap().system.product_uuid = uuid;
    let mac = f["k8scp01"].system.macs[0].clone();
    f.get_mut("k8scp02").unwrap().system.macs.push(mac);
    let all = judge("1.37", &f, &[]);
    let p = problems(&all, "k8s01", "identity");
    assert!(
        p[0].found.contains("is also that of k8scp01"),
        "{}",
        p[0].found
    );
    assert_eq!(problems(&all, "k8scp01", "identity").len(), 1);
    assert!(
        problems(&all, "k8scp02", "mac")[0]
            .found
            .contains("also that of k8scp01")
    );
    // Without DMI (containers, some VMs) the machine id stands in.
    let mut f = all_healthy();
    for h in f.values_mut() {
        h.system.product_uuid.clear();
    }
    let id = f["k8scp01"].system.machine_id.clone();
    f.get_mut("k8scp02").unwrap().system.machine_id = id;
    let p = judge("1.37", &f, &[]);
    assert!(
        problems(&p, "k8scp02", "identity")[0]
            .found
            .starts_with("machine-id ")
    );
}

#[test]
fn every_host_resolves_the_control_plane_and_the_vip_as_this_machine_does() {
    let mut f = all_healthy();
    let h = f.get_mut("k8s01").unwrap();
    h.resolved.insert("k8scp.lab.net".into(), vec![]);
    h.resolved
        .insert("k8scp02.lab.net".into(), vec!["10.9.9.9".parse().unwrap()]);
    let all = judge("1.37", &f, &[]);
    assert_eq!(
        problems(&all, "k8s01", "dns")[0].found,
        "k8scp02.lab.net resolves to 10.9.9.9 (kubeforge sees 10.0.0.12); k8scp.lab.net does not resolve"
    );
}

#[test]
fn the_facts_script_gathers_the_system_facts_on_this_machine() {
    let c = cluster("1.37");
    let q = kubeforge_core::preflight::query(&c, &c.nodes[0]);
    assert!(q.system && q.listening);
    assert!(q.resolve.contains("k8scp.lab.net"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(facts::script(&q))
        .output()
        .unwrap();
    let f = facts::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert!(
        f.system.cpus >= 1 && f.system.memory_mb > 100,
        "{:?}",
        f.system
    );
    assert!(!f.system.arch.is_empty() && !f.system.hostname.is_empty());
    assert!(f.system.clock_ms.unwrap() > 1_700_000_000_000);
    let d = &f.system.disk;
    assert!(
        d.size_mb > 0 && d.available_mb <= d.size_mb && d.mount.starts_with('/'),
        "{d:?}"
    );
}
