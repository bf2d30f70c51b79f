use super::*;

/// Output of the facts script captured on a Debian 12 machine (not booted with systemd, so
/// unit states are empty), for the query in `machine_query`.
const MACHINE: &str = include_str!("../../tests/fixtures/facts-debian12-machine.txt");

pub(crate) fn machine_query() -> FactQuery {
    let mut q = FactQuery::default();
    q.packages
        .extend(["curl", "haproxy", "dpkg", "openssh-client"].map(String::from));
    q.file("/etc/hostname", Read::Content)
        .file("/etc/nonexistent", Read::Content)
        .file("/etc/passwd", Read::Hash);
    q.units
        .extend(["ssh.service", "nothing.service"].map(String::from));
    q.sysctls.extend(
        [
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
            "kernel.nope",
        ]
        .map(String::from),
    );
    q.modules.insert(
        "overlay".into(),
        Some(crate::resources::Probe::Filesystem("overlay".into())),
    );
    q.modules.insert("nonexistent_mod".into(), None);
    q.swap_config = true;
    q
}

#[test]
fn the_script_asks_for_everything_in_the_query_quoted() {
    let mut q = machine_query();
    q.file("/etc/it's", Read::Content);
    let s = script(&q);
    // All of it runs under one time limit, its text one single-quoted word.
    assert!(s.starts_with("exec timeout -k 5 110 sh -c '\n"), "{s}");
    assert!(s.ends_with("echo @@end\n\n'\n"), "{s}");
    let s = s.replace("'\\''", "'");
    assert!(s.contains("dpkg-query -W"));
    assert!(
        s.contains("echo @@sysctl net.ipv4.ip_forward; if [ -r /proc/sys/net/ipv4/ip_forward ]")
    );
    assert!(
        s.contains(&format!(
            "for f in /etc/hostname {} /etc/nonexistent;",
            crate::shell::quote("/etc/it's")
        )),
        "{s}"
    );
    assert!(s.contains("echo @@swap-fstab"));
}

#[test]
fn the_fixture_is_what_the_script_prints_here() {
    // The fixture was captured with this very query; sections must line up with the script.
    let live = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&machine_query()))
        .output()
        .unwrap();
    let live_text = String::from_utf8_lossy(&live.stdout).into_owned();
    if std::env::var_os("KUBEFORGE_UPDATE_FIXTURES").is_some() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/facts-debian12-machine.txt"
            ),
            &live_text,
        )
        .unwrap();
    }
    let live = parse(&live_text).unwrap();
    let captured = parse(MACHINE).unwrap();
    let sections = |f: &HostFacts| {
        (
            f.files.keys().cloned().collect::<Vec<_>>(),
            f.units.keys().cloned().collect::<Vec<_>>(),
            f.sysctls.keys().cloned().collect::<Vec<_>>(),
            f.modules.keys().cloned().collect::<Vec<_>>(),
        )
    };
    assert_eq!(sections(&live), sections(&captured));
}

#[test]
fn parses_captured_output() {
    let f = parse(MACHINE).unwrap();
    assert_eq!(f.os["ID"], "debian");
    assert_eq!(f.os["VERSION_ID"], "12");
    assert_eq!(f.uid, 0);
    assert!(!f.dpkg_interrupted);
    assert_eq!(f.packages["curl"], "7.88.1-10+deb12u15");
    assert!(!f.packages.contains_key("haproxy"));
    assert!(!f.swap.is_active());
    assert_eq!(f.sysctls["net.ipv4.ip_forward"].as_deref(), Some("0"));
    assert_eq!(f.sysctls["kernel.nope"], None);
    let hostname = f.file("/etc/hostname").unwrap();
    assert_eq!(hostname.owner, "root");
    assert!(hostname.mtime > 1_600_000_000);
    assert!(hostname.content.is_some());
    let passwd = f.file("/etc/passwd").unwrap();
    assert!(
        passwd.content.is_none() && passwd.sha256.len() == 64,
        "a hash-only file's content never leaves the host"
    );
    assert_eq!(f.files["/etc/nonexistent"], None);
    assert!(!f.unit("ssh.service").unwrap().is_running());
    assert!(f.modules["overlay"]);
    assert!(!f.modules["nonexistent_mod"]);
    assert!(f.interface_of("127.0.0.1".parse().unwrap()).is_some());
}

#[test]
fn parses_a_systemd_host() {
    let out = "motd banner\n@@kubeforge-facts 2\n@@uid\n0\n@@dpkg\ninterrupted\n@@packages\nhaproxy\t2.6.12-1+deb12u1\thi \nkeepalived\t1:2.2.7-1\trc \n@@swap\n/dev/vda2\n@@swap-fstab\nUUID=1234\n@@swap-units\ndev-vda2.swap active\n@@units chrony.service haproxy.service keepalived.service nope.service ntp.service\nchrony.service haproxy.service keepalived.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nActiveEnterTimestamp=@1732600000\n\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nActiveEnterTimestamp=@1732700000\n\nLoadState=loaded\nActiveState=activating\nSubState=auto-restart\nUnitFileState=disabled\nActiveEnterTimestamp=\n\n@@stamps\nhaproxy.service 1732700100\n@@end\n";
    let f = parse(out).unwrap();
    assert!(f.dpkg_interrupted);
    assert!(f.packages.contains_key("haproxy"));
    assert!(
        !f.packages.contains_key("keepalived"),
        "removed, config left is not installed"
    );
    assert!(f.holds.contains("haproxy"));
    assert!(f.swap.is_active());
    assert_eq!(f.swap.fstab, ["UUID=1234"]);
    assert_eq!(f.swap.units["dev-vda2.swap"], "active");
    let h = f.unit("haproxy.service").unwrap();
    assert!(h.is_enabled() && h.is_running());
    assert_eq!(h.active_since, Some(1732700000));
    assert_eq!(f.unit_loaded_at("haproxy.service"), Some(1732700100));
    let k = f.unit("keepalived.service").unwrap();
    assert!(k.exists() && !k.is_enabled());
    assert!(
        !k.is_running() && k.is_crash_looping(),
        "activating under Restart= is not running"
    );
    assert_eq!(k.state(), "activating (auto-restart)");
    let nope = f.unit("nope.service").unwrap();
    assert!(!nope.exists() && !nope.is_running() && !nope.is_enabled());
    assert_eq!(
        f.system.time_sync,
        ["chrony"],
        "the time services running, from their units"
    );
}

#[test]
fn cpus_are_counted_from_the_affinity_list() {
    assert_eq!(cpu_count("0-3"), 4);
    assert_eq!(cpu_count("0"), 1);
    assert_eq!(cpu_count("0-1,4,6-7"), 5);
    assert_eq!(cpu_count(""), 0);
}

#[test]
fn probes_report_the_targets_that_answered() {
    let out =
        "@@kubeforge-facts 2\n@@probes 10.0.0.10:8443 10.0.0.11:6443\n10.0.0.11:6443\n@@end\n";
    let f = parse(out).unwrap();
    assert!(!f.probes[&("10.0.0.10".to_string(), 8443)]);
    assert!(f.probes[&("10.0.0.11".to_string(), 6443)]);
}

#[test]
fn sealed_files_give_their_hash_masked_content_and_asked_values() {
    let dir = std::env::temp_dir().join(format!("kubeforge-facts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, "vrrp {\n    auth_pass S3cretPw\n}\n").unwrap();
    let path = conf.display().to_string();
    let mut q = FactQuery::default();
    q.file(&path, Read::Masked);
    q.extract
        .entry(path.clone())
        .or_default()
        .insert("auth_pass".into());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&q))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let f = parse(&stdout).unwrap();
    let file = f.file(&path).unwrap();
    assert_eq!(
        String::from_utf8_lossy(file.content.as_deref().unwrap()),
        "vrrp {\n    auth_pass ********\n}\n"
    );
    assert_eq!(file.extracted["auth_pass"], "S3cretPw");
    assert_eq!(
        file.sha256,
        crate::hash::sha256_hex(b"vrrp {\n    auth_pass S3cretPw\n}\n")
    );
    // The content travels masked; only the asked value carries the secret.
    assert_eq!(
        stdout.matches("S3cretPw").count(),
        1,
        "the secret leaves the host once, as the extracted value"
    );
    assert!(crate::mask::find_leak(&serde_json::to_string(&f).unwrap(), "S3cretPw").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_contents_come_back_in_one_piece_and_are_split_by_size() {
    let dir = std::env::temp_dir().join(format!("kubeforge-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    std::fs::write(&a, "first\n").unwrap();
    std::fs::write(&b, "").unwrap();
    std::fs::write(&c, "third file\n").unwrap();
    let mut q = FactQuery::default();
    for p in [&a, &b, &c] {
        q.file(&p.display().to_string(), Read::Content);
    }
    q.file(&dir.join("missing").display().to_string(), Read::Content);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&q))
        .output()
        .unwrap();
    let f = parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let content = |p: &std::path::Path| {
        f.file(&p.display().to_string())
            .and_then(|f| f.content.clone())
    };
    assert_eq!(content(&a).as_deref(), Some(&b"first\n"[..]));
    assert_eq!(content(&b).as_deref(), Some(&b""[..]));
    assert_eq!(content(&c).as_deref(), Some(&b"third file\n"[..]));
    assert_eq!(
        f.file(&c.display().to_string()).unwrap().sha256,
        crate::hash::sha256_hex(b"third file\n")
    );
    assert_eq!(f.files[&dir.join("missing").display().to_string()], None);
    // Sizes that do not add up (a file changed in between): no content, no digest.
    let mut g = HostFacts::default();
    g.files.insert(
        "/x".into(),
        parse_stat("644 root root 3 1 /x").map(|(_, f)| f),
    );
    split_contents(&mut g, &["/x"], b"toolong");
    assert!(g.file("/x").unwrap().content.is_none() && g.file("/x").unwrap().sha256.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_what_kubeadm_has_done() {
    let out = "@@kubeforge-facts 2\n@@kubeadm\nfile /etc/kubernetes/admin.conf\nfile /etc/kubernetes/kubelet.conf\nmanifest etcd.yaml\nmanifest kube-apiserver.yaml\netcd-data\n@@end\n";
    let k = parse(out).unwrap().kubeadm;
    assert!(k.admin_conf && k.kubelet_conf && k.etcd_data);
    assert_eq!(k.manifests, ["etcd.yaml", "kube-apiserver.yaml"]);
    let fresh = parse("@@kubeforge-facts 2\n@@kubeadm\n@@end\n")
        .unwrap()
        .kubeadm;
    assert_eq!(fresh, KubeadmFacts::default());
}

#[test]
fn reads_the_cluster_as_its_api_and_etcd_see_it() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let nodes = r#"{"items":[{"kind":"Node","metadata":{"name":"k8scp01"},"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]},"status":{"conditions":[{"type":"DiskPressure","status":"True"},{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"False","message":"container runtime network not ready: NetworkPluginNotReady"}]}},{"kind":"Node","metadata":{"name":"k8s01"},"spec":{"unschedulable":true},"status":{"conditions":[{"type":"Ready","status":"True","message":"kubelet is posting ready status"}]}}]}"#;
    let pods = r#"{"items":[{"metadata":{"name":"etcd-k8scp01"},"spec":{"nodeName":"k8scp01"},"status":{"phase":"Running"}}]}"#;
    // etcd's IDs are 64-bit numbers in JSON; `member remove` takes them in hex.
    let members = r#"{"header":{},"members":[{"ID":11259375,"name":"k8scp01","peerURLs":["https://10.0.0.11:2380"]},{"ID":18446744073709551615,"name":"","peerURLs":["https://10.0.0.12:2380"]}]}"#;
    let health = r#"[{"endpoint":"https://10.0.0.11:2379","health":true},{"endpoint":"https://10.0.0.12:2379","health":false,"error":"context deadline exceeded"}]"#;
    let out = format!(
        "@@kubeforge-facts 2\n@@cluster\nreadyz ok\nobjects {}\npods {}\nmembers {}\nhealth {}\n@@registered\nyes\n@@home kube .kube/config\n600 kube kube /home/kube/.kube/config\n{}\n@@home root .kube/config\n@@end\n",
        b64(nodes),
        b64(pods),
        b64(members),
        b64(health),
        "ab".repeat(32)
    );
    let f = parse(&out).unwrap();
    let c = f.cluster.unwrap();
    assert!(c.api_ready());
    assert_eq!(c.node("k8scp01").unwrap().ready, Some(false));
    assert!(
        c.node("k8scp01")
            .unwrap()
            .message
            .contains("NetworkPluginNotReady")
    );
    assert_eq!(
        c.node("k8scp01").unwrap().taints,
        ["node-role.kubernetes.io/control-plane:NoSchedule"]
    );
    assert_eq!(c.node("k8scp01").unwrap().pressure, ["DiskPressure"]);
    assert_eq!(c.node("k8s01").unwrap().ready, Some(true));
    assert!(c.node("k8s01").unwrap().pressure.is_empty());
    assert!(c.node("k8s01").unwrap().unschedulable);
    assert!(!c.node("k8scp01").unwrap().unschedulable);
    assert_eq!(c.pods[0].node, "k8scp01");
    assert_eq!(c.members[0].id, "abcdef");
    assert_eq!(c.members[1].id, "ffffffffffffffff");
    assert!(c.member_healthy(&c.members[0]));
    assert!(!c.member_healthy(&c.members[1]));
    assert_eq!(f.registered, Some(true));
    let home = f.home_files[&("kube".to_string(), ".kube/config".to_string())]
        .as_ref()
        .unwrap();
    assert_eq!((home.mode, home.owner.as_str()), (0o600, "kube"));
    assert_eq!(home.path, "/home/kube/.kube/config");
    assert_eq!(
        f.home_files[&("root".to_string(), ".kube/config".to_string())],
        None
    );
    // No admin kubeconfig on the node: no cluster facts at all.
    let none =
        parse("@@kubeforge-facts 2\n@@cluster\nnone\n@@registered\nunknown\n@@end\n").unwrap();
    assert_eq!((none.cluster, none.registered), (None, None));
}

#[test]
fn lists_every_trace_kubeadm_leaves() {
    let out = "@@kubeforge-facts 2\n@@kubeadm\nfile /etc/kubernetes/pki/ca.crt\nfile /etc/kubernetes/bootstrap-kubelet.conf\nfile /var/lib/kubelet/config.yaml\nmanifest etcd.yaml\n@@end\n";
    let k = parse(out).unwrap().kubeadm;
    assert_eq!(
        k.traces(),
        [
            "/etc/kubernetes/bootstrap-kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
            "/var/lib/kubelet/config.yaml",
            "/etc/kubernetes/manifests/etcd.yaml"
        ]
    );
}

#[test]
fn rejects_truncated_or_foreign_output() {
    assert_eq!(parse("hello"), Err(FactError::NoHeader));
    assert_eq!(
        parse("@@kubeforge-facts 2\n@@uid\n0\n"),
        Err(FactError::Truncated)
    );
    assert!(matches!(
        parse("@@kubeforge-facts 2\n@@uid\nroot\n@@end\n"),
        Err(FactError::Malformed { .. })
    ));
    assert!(matches!(
        parse("@@kubeforge-facts 2\n@@files /x\n644 root\n@@end\n"),
        Err(FactError::Malformed { .. })
    ));
}

#[test]
fn facts_are_written_as_json_for_the_host_logs() {
    // Maps keyed by pairs are written with text keys: JSON has no other kind.
    let mut f = parse(MACHINE).unwrap();
    f.probes.insert(("10.0.0.10".into(), 8443), true);
    f.home_files
        .insert((LOGIN_USER.into(), ".kube/config".into()), None);
    f.home_files
        .insert(("root".into(), ".kube/config".into()), None);
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(json["probes"]["10.0.0.10:8443"], true);
    assert!(json["home_files"]["~/.kube/config"].is_null());
    assert!(
        json["home_files"]
            .as_object()
            .unwrap()
            .contains_key("~root/.kube/config")
    );
}

#[test]
fn etcd_is_asked_in_another_etcd_pod_until_this_nodes_is_listed() {
    // The script run against a stand-in kubectl that records what it is asked.
    let kubectl = crate::fake_kubectl::FakeKubectl::new(
        "etcd-pod",
        "echo \"$*\" >> \"$D/calls\"\ncase \"$*\" in\n  *'get pods -n kube-system -o json'*) cat \"$D/pods.json\";;\n  *'get pods -o name'*) printf 'pod/kube-apiserver-other\\npod/etcd-other\\n';;\nesac\n",
    );
    let dir = kubectl.dir.clone();
    let admin = dir.join("admin.conf");
    std::fs::write(&admin, "").unwrap();
    let script = cluster::script(false, false)
        .replace("/etc/kubernetes/admin.conf", &admin.display().to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let run = |pods: &str| -> String {
        std::fs::write(dir.join("pods.json"), pods).unwrap();
        let _ = std::fs::remove_file(dir.join("calls"));
        let out = kubectl.run(&script, &[]);
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(dir.join("calls")).unwrap()
    };
    // This node's etcd pod is listed: etcdctl runs there, and nothing more is asked.
    let calls = run(&format!(
        r#"{{"items":[{{"metadata":{{"name":"etcd-{host}"}}}},{{"metadata":{{"name":"etcd-other"}}}}]}}"#
    ));
    assert!(
        calls.contains(&format!("exec etcd-{host} -- etcdctl")),
        "{calls}"
    );
    assert!(!calls.contains("-o name"), "{calls}");
    // Not yet (a node that just joined): in another node's etcd pod.
    let calls = run(r#"{"items":[{"metadata":{"name":"etcd-other"}}]}"#);
    assert_eq!(
        calls.matches("exec etcd-other -- etcdctl").count(),
        2,
        "{calls}"
    );
}

#[test]
fn static_pods_are_the_running_kube_system_containers() {
    use base64::Engine as _;
    let ps = r#"{"containers":[
        {"metadata":{"name":"etcd"},"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.namespace":"kube-system"}},
        {"metadata":{"name":"kube-apiserver"},"state":"CONTAINER_EXITED","labels":{"io.kubernetes.pod.namespace":"kube-system"}},
        {"metadata":{"name":"web"},"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.namespace":"default"}}]}"#;
    let out = format!(
        "@@kubeforge-facts 2\n@@static-pods\n{}\n@@end\n",
        base64::engine::general_purpose::STANDARD.encode(ps)
    );
    let f = parse(&out).unwrap();
    assert_eq!(
        f.static_pods,
        Some(["etcd".to_string()].into()),
        "running, in kube-system"
    );
    // No crictl, or no answer: unknown.
    let f = parse("@@kubeforge-facts 2\n@@static-pods\n\n@@end\n").unwrap();
    assert_eq!(f.static_pods, None);
    let q = FactQuery {
        static_pods: true,
        ..FactQuery::default()
    };
    assert!(script(&q).contains("crictl ps --state running -o json"));
}

/// One list holds the nodes and the DaemonSets (`kubectl get nodes,daemonsets -A`): each is
/// read by its kind, and a DaemonSet's rollout by its status.
#[test]
fn nodes_and_daemonsets_come_in_one_list() {
    use base64::Engine as _;
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"kind":"Node","metadata":{"name":"k8scp01"},"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]},
         "status":{"conditions":[{"type":"Ready","status":"True"}]}},
        {"kind":"DaemonSet","metadata":{"namespace":"kube-flannel","name":"kube-flannel-ds","generation":2},
         "status":{"desiredNumberScheduled":4,"updatedNumberScheduled":4,"numberReady":3,"observedGeneration":2}},
        {"kind":"DaemonSet","metadata":{"namespace":"kube-system","name":"kube-proxy","generation":3},
         "status":{"desiredNumberScheduled":4,"updatedNumberScheduled":2,"numberReady":4,"observedGeneration":2}}]}"#;
    let out = format!(
        "@@kubeforge-facts 2\n@@cluster\nreadyz ok\nobjects {}\n@@end\n",
        base64::engine::general_purpose::STANDARD.encode(list)
    );
    let c = parse(&out).unwrap().cluster.unwrap();
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.nodes[0].ready, Some(true));
    assert_eq!(
        c.daemonset("kube-flannel", "kube-flannel-ds"),
        Some(&crate::facts::DaemonSetStatus {
            namespace: "kube-flannel".into(),
            name: "kube-flannel-ds".into(),
            desired: 4,
            updated: 4,
            ready: 3,
            observed: true,
        })
    );
    let proxy = c.daemonset("kube-system", "kube-proxy").unwrap();
    assert!(!proxy.observed, "generation 3 not observed yet");
    assert_eq!(proxy.updated, 2);
    assert!(cluster::script(false, false).contains("get nodes,daemonsets -A -o json"));
}

/// A command of the facts script that hangs on the host (here `getent`, for a broken
/// resolver) is stopped there with the rest of the script once its time limit passes (110 s;
/// 1 s here), instead of running on after kubeforge gave up.
#[test]
fn a_hung_fact_is_stopped_on_the_host() {
    let dir = std::env::temp_dir().join(format!("kubeforge-hung-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let getent = dir.join("getent");
    std::fs::write(&getent, "#!/bin/sh\nexec sleep 300\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut q = FactQuery::default();
    q.resolve.insert("k8scp.example.test".into());
    let script = script(&q).replacen("timeout -k 5 110 ", "timeout -k 1 1 ", 1);
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = std::time::Instant::now();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_what_an_upgrade_decides_from() {
    use base64::Engine as _;
    let b64 =
        |v: serde_json::Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let node = serde_json::json!({
        "kind": "Node",
        "metadata": {"name": "k8s01", "annotations": {"kubeforge.io/cordoned-for": "upgrade", "other.io/x": "y"}},
        "spec": {"unschedulable": true},
        "status": {"nodeInfo": {"kubeletVersion": "v1.28.8"}, "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let out = format!(
        "@@kubeforge-facts 2\n@@uid\n0\n@@kubeadm\nfile /etc/kubernetes/admin.conf\nmanifest etcd.yaml registry.k8s.io/etcd:3.5.16-0\nmanifest kube-apiserver.yaml registry.k8s.io/kube-apiserver:v1.28.8\nmanifest extra.yaml\n@@repository\nversion 1.37.0-1.1\nversion 1.37.1-1.1\n@@haproxy\n1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n3 kube-apiserver 1 k8scp01 10.0.0.11 2 1 1 1\n3 kube-apiserver 2 k8scp02 10.0.0.12 0 0 1 1\n3 kube-apiserver 4 k8scp02_fallback 10.0.0.12 2 0 1 1\n\n@@registered\nyes {}\n@@end\n",
        b64(node)
    );
    let f = parse(&out).unwrap();
    assert_eq!(
        f.kubeadm.manifest_images["kube-apiserver.yaml"],
        "registry.k8s.io/kube-apiserver:v1.28.8"
    );
    assert_eq!(f.kubeadm.manifests.len(), 3);
    assert!(!f.kubeadm.manifest_images.contains_key("extra.yaml"));
    assert_eq!(
        f.repository,
        Some(Ok(vec!["1.37.0-1.1".to_string(), "1.37.1-1.1".to_string()]))
    );
    let h = f.haproxy.unwrap();
    // The unchecked fallback servers are not kube-apiservers of their own.
    assert_eq!(h.keys().collect::<Vec<_>>(), ["k8scp01", "k8scp02"]);
    assert_eq!(
        h["k8scp01"],
        Backend {
            up: true,
            maint: true
        }
    );
    assert_eq!(
        h["k8scp02"],
        Backend {
            up: false,
            maint: false
        }
    );
    assert_eq!(f.registered, Some(true));
    let own = f.own_node.unwrap();
    assert_eq!(
        (own.kubelet_version.as_str(), own.unschedulable),
        ("v1.28.8", true)
    );
    assert_eq!(
        own.annotations.len(),
        1,
        "only kubeforge.io/ annotations: {own:?}"
    );
    let failed = parse("@@kubeforge-facts 2\n@@uid\n0\n@@repository\nerror curl: (6) Could not resolve host: pkgs.k8s.io\n@@end\n").unwrap();
    assert_eq!(
        failed.repository,
        Some(Err("curl: (6) Could not resolve host: pkgs.k8s.io".into()))
    );
    let script = body(&FactQuery {
        repository: Some("https://pkgs.k8s.io/core:/stable:/v1.37/deb/".into()),
        haproxy: true,
        all_pods: true,
        cluster: true,
        ..FactQuery::default()
    });
    assert!(
        script.contains(
            "curl -fsSL --max-time 20 https://pkgs.k8s.io/core:/stable:/v1.37/deb/Packages 2>&1"
        ),
        "{script}"
    );
    assert!(script.contains("kubeforge_pods='-A'"));
    assert!(script.contains("show servers state kube-apiserver"));
}

#[test]
fn certificate_expiry_is_read_and_no_key_leaves_a_file_or_a_kubeconfig() {
    // Real certificates made here by openssl: one file, one embedded in a kubeconfig beside its
    // key, one after a key, one file that is not a certificate; the section's script run by sh
    // (no program of the host reads them: the PEM is parsed here).
    let dir = std::env::temp_dir().join(format!("kubeforge-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{out:?}");
    };
    // 9000 days is past 2049: a GeneralizedTime rather than a UTCTime.
    for (name, days) in [
        ("pki/apiserver", "10"),
        ("client", "200"),
        ("pki/ca", "9000"),
    ] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=t",
            "-days",
            days,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }
    std::fs::write(dir.join("pki/not-a.crt"), "garbage\n").unwrap();
    // A file with a key before its certificate: only the certificate leaves the host.
    let combined = [
        std::fs::read_to_string(dir.join("client.key")).unwrap(),
        std::fs::read_to_string(dir.join("client.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("pki/combined.crt"), combined).unwrap();
    let b64 = |p: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(p)).unwrap())
    };
    let key = b64("client.key");
    std::fs::write(
        dir.join("admin.conf"),
        format!(
            "users:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {key}\n",
            b64("client.crt")
        ),
    )
    .unwrap();
    let pki = format!("{}/pki/*.crt", dir.display());
    let conf = format!("{}/admin.conf", dir.display());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(certs_script(
            &[&pki],
            &[&conf, "/nonexistent/scheduler.conf"],
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&key) && !text.contains("PRIVATE"), "{text}");
    let key_lines = std::fs::read_to_string(dir.join("client.key")).unwrap();
    for line in key_lines.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "a line of the key left: {text}");
    }
    let f = parse(&format!("@@kubeforge-facts 2\n@@uid\n0\n{text}@@end\n")).unwrap();
    let certs = f.certs.unwrap().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = |suffix: &str| {
        let c = certs.iter().find(|c| c.path.ends_with(suffix)).unwrap();
        c.not_after.map(|t| (t - now) / 86_400)
    };
    assert_eq!(certs.len(), 5, "{certs:?}");
    // openssl's notAfter is `-days` from when it ran, to the second.
    assert!(
        matches!(days("pki/apiserver.crt"), Some(9..=10)),
        "{certs:?}"
    );
    assert!(matches!(days("admin.conf"), Some(199..=200)), "{certs:?}");
    assert!(
        matches!(days("pki/combined.crt"), Some(199..=200)),
        "{certs:?}"
    );
    assert!(matches!(days("pki/ca.crt"), Some(8999..=9000)), "{certs:?}");
    assert_eq!(days("pki/not-a.crt"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_etcd_leader_is_read_from_endpoint_status() {
    // etcdctl 3.5 `endpoint status --cluster -w json` (IDs beyond 2^53 stay exact).
    let status = serde_json::json!([
        {"Endpoint": "https://10.0.0.11:2379", "Status": {"header": {"cluster_id": 14841639068965178418u64, "member_id": 10276657743932975437u64, "revision": 1234, "raft_term": 2}, "version": "3.5.16", "dbSize": 2527232, "leader": 10276657743932975437u64, "raftIndex": 1500, "raftTerm": 2, "raftAppliedIndex": 1500, "dbSizeInUse": 2502656}},
        {"Endpoint": "https://10.0.0.12:2379", "Status": {"header": {"cluster_id": 14841639068965178418u64, "member_id": 3u64, "revision": 1234, "raft_term": 2}, "version": "3.5.16", "dbSize": 2527232, "leader": 10276657743932975437u64, "raftIndex": 1500, "raftTerm": 2, "raftAppliedIndex": 1500, "dbSizeInUse": 2502656}}
    ]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(status.to_string());
    let facts = cluster::parse(&["readyz ok", &format!("status {encoded}")]).unwrap();
    assert_eq!(facts.leader.as_deref(), Some("8e9e05c52164694d"));
    assert!(cluster::script(false, true).contains("endpoint status --cluster -w json"));
    assert!(
        cluster::parse(&["readyz ok", "status "])
            .unwrap()
            .leader
            .is_none()
    );
}

/// A merged query takes any node's view of the cluster only when every query that asks for
/// the cluster does; a query that does not ask for it changes nothing.
#[test]
fn cluster_once_survives_a_merge_only_when_every_asker_says_so() {
    let once = FactQuery {
        cluster: true,
        cluster_once: true,
        ..FactQuery::default()
    };
    let own = FactQuery {
        cluster: true,
        ..FactQuery::default()
    };
    let other = FactQuery {
        haproxy: true,
        ..FactQuery::default()
    };
    let merged = |a: &FactQuery, b: &FactQuery| {
        let mut q = a.clone();
        q.merge(b);
        (q.cluster, q.cluster_once)
    };
    assert_eq!(merged(&once, &once), (true, true));
    assert_eq!(merged(&once, &own), (true, false));
    assert_eq!(merged(&own, &once), (true, false));
    assert_eq!(merged(&once, &other), (true, true));
    assert_eq!(merged(&other, &once), (true, true));
    assert_eq!(merged(&other, &other), (false, false));
}

proptest::proptest! {
    /// Whatever a host sends as a certificate, reading it never panics: a certificate block
    /// of random bytes, or a real certificate cut short or with bytes changed.
    #[test]
    fn any_certificate_block_is_read_without_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        cut in 0usize..600,
        flip in 0usize..600,
    ) {
        use base64::Engine as _;
        let wrap = |der: &[u8]| format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        let _ = pem_not_after(wrap(&bytes).as_bytes());
        let _ = pem_not_after(&bytes);
        // A certificate's prefix, then one byte changed.
        let mut der = vec![0x30, 0x82, 0x01, 0x00, 0x30, 0x81, 0xf0, 0xa0, 0x03, 0x02, 0x01, 0x02,
            0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x1e, 0x17, 0x0d];
        der.extend_from_slice(b"260101000000Z\x18\x0f20510101000000Z");
        der.extend_from_slice(&bytes);
        der.truncate(cut.max(1));
        if let Some(b) = der.get_mut(flip % 40) {
            *b ^= 0x5a;
        }
        let _ = pem_not_after(wrap(&der).as_bytes());
    }
}

/// Each file's SHA-256 in one pass: an unchanged file's from the record (by path, size and
/// modification time; a record that lies shows it was used), a changed or unrecorded one
/// hashed, a missing path or a directory `missing`, a path with a space as it is.
#[test]
fn digests_come_from_the_record_while_a_file_is_unchanged() {
    let dir = std::env::temp_dir().join(format!("kubeforge-digests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub dir")).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    for (name, text) in [
        ("kept", "a"),
        ("changed", "bb"),
        ("new", "c"),
        ("sub dir/spaced", "d"),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let stat = |name: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir.join(name)).unwrap();
        (m.size(), m.mtime())
    };
    let lie = "f".repeat(64);
    let (size, mtime) = stat("kept");
    let (_, changed_mtime) = stat("changed");
    let record = format!(
        "{lie} {size} {mtime} {}\n{lie} 1 {changed_mtime} {}\n",
        path("kept"),
        path("changed")
    );
    std::fs::write(dir.join("record"), record).unwrap();
    let names = [
        "kept",
        "changed",
        "new",
        "sub dir/spaced",
        "gone",
        "sub dir",
    ];
    let paths: BTreeSet<String> = names.iter().map(|n| path(n)).collect();
    let script = digests_script(&paths).replace(DIGESTS, &path("record"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let f = parse(&format!("@@kubeforge-facts 2\n@@uid\n0\n{text}@@end\n")).unwrap();
    let sha = |t: &str| Some(crate::hash::sha256_hex(t.as_bytes()));
    assert_eq!(f.digests[&path("kept")], Some(lie.clone()), "{text}");
    assert_eq!(f.digests[&path("changed")], sha("bb"), "{text}");
    assert_eq!(f.digests[&path("new")], sha("c"), "{text}");
    assert_eq!(f.digests[&path("sub dir/spaced")], sha("d"), "{text}");
    assert_eq!(f.digests[&path("gone")], None, "{text}");
    assert_eq!(f.digests[&path("sub dir")], None, "{text}");
    assert_eq!(f.digests.len(), names.len(), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
