//! The stand-ins driven as kubeforge drives them, on simulated hosts sharing one state.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn init_token_join_apply_reset_across_hosts() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let cp2 = lab.host("cp2", 2);
    let w1 = lab.host("w1", 3);
    let endpoint = format!("{}:6443", cp1.ip);
    let (token, hash, key) = init(&cp1, &endpoint);
    assert_eq!(token.len(), 23, "{token}");
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    assert_eq!(key.len(), 64, "{key}");

    // The files init leaves, as kubeadm lays them out.
    for f in [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/pki/apiserver.crt",
        "/etc/kubernetes/pki/etcd/peer.key",
        "/etc/kubernetes/pki/sa.pub",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/super-admin.conf",
        "/etc/kubernetes/scheduler.conf",
        "/etc/kubernetes/manifests/etcd.yaml",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/etcd/member",
    ] {
        assert!(cp1.path(f).exists(), "{f} missing");
    }
    let flags = std::fs::read_to_string(cp1.path("/var/lib/kubelet/kubeadm-flags.env")).unwrap();
    assert!(flags.contains(&format!("--node-ip={}", cp1.ip)), "{flags}");
    assert!(
        flags.contains("--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"),
        "{flags}"
    );
    let admin = std::fs::read_to_string(cp1.path("/etc/kubernetes/admin.conf")).unwrap();
    assert!(
        admin.contains(&format!("server: https://{endpoint}")),
        "{admin}"
    );
    assert!(admin.contains("client-key-data:"), "{admin}");
    let sans = kubeforge_standins::pki::sans(
        &std::fs::read_to_string(cp1.path("/etc/kubernetes/pki/apiserver.crt")).unwrap(),
    );
    for s in [
        "k8scp.kubeforge.internal",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
        &cp1.ip.to_string(),
    ] {
        assert!(sans.iter().any(|x| x == s), "{s} not in {sans:?}");
    }

    // One cluster, its first member, the control-plane node marked.
    let st = lab.read();
    assert_eq!(st.clusters.len(), 1);
    let c = &st.clusters[0];
    assert_eq!(c.ca_hash, hash);
    assert_eq!(c.etcd_members.len(), 1);
    let n = c.node("cp1").expect("node cp1 registered");
    assert!(
        n.labels
            .contains_key("node-role.kubernetes.io/control-plane")
    );
    assert_eq!(n.taints.len(), 1);
    assert_eq!(n.taints[0].effect, "NoSchedule");
    assert!(c.uploaded_certs.is_some());

    // kubectl: the node is NotReady until a pod network exists.
    let o = cp1.kubectl(&["get", "nodes", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let node = &v["items"][0];
    assert_eq!(node["metadata"]["name"], "cp1");
    assert_eq!(
        node["spec"]["taints"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("NetworkPluginNotReady")
    );
    let ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap();
    assert_eq!(ip["address"], cp1.ip.to_string());
    let o = cp1.kubectl(&["get", "--raw", "/readyz"]);
    assert_eq!(stdout(&o), "ok", "{}", text(&o));

    // A new token through the API, as kubeforge asks for one.
    let o = cp1.kubeadm(&["token", "create", "--print-join-command", "--ttl", "1h"]);
    assert!(o.status.success(), "{}", text(&o));
    let line = stdout(&o);
    assert!(
        line.starts_with(&format!("kubeadm join {endpoint} --token ")),
        "{line}"
    );
    assert!(
        line.contains(&format!("--discovery-token-ca-cert-hash {hash}")),
        "{line}"
    );
    let token2 = word_after(&line, "--token");

    // A worker joins with it; a control plane joins with the certificate key.
    w1.start_kubelet();
    w1.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&w1, &endpoint, &token2, &hash, None),
    );
    let o = w1.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert!(
        o.status.success(),
        "worker join: {}\nkubelet:\n{}",
        text(&o),
        w1.kubelet_log()
    );
    assert!(w1.path("/etc/kubernetes/kubelet.conf").exists());
    assert!(!w1.path("/etc/kubernetes/bootstrap-kubelet.conf").exists());
    cp2.start_kubelet();
    cp2.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&cp2, &endpoint, &token, &hash, Some(&key)),
    );
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert!(
        o.status.success(),
        "control-plane join: {}\nkubelet:\n{}",
        text(&o),
        cp2.kubelet_log()
    );
    let st = lab.read();
    let c = &st.clusters[0];
    assert_eq!(st.clusters.len(), 1, "a join never makes a cluster");
    assert_eq!(c.etcd_members.len(), 2);
    assert!(c.node("cp2").unwrap().is_control_plane());
    assert!(!c.node("w1").unwrap().is_control_plane());
    // cp2 has the cluster's CA, its own serving certificate.
    assert_eq!(
        std::fs::read_to_string(cp2.path("/etc/kubernetes/pki/ca.crt")).unwrap(),
        std::fs::read_to_string(cp1.path("/etc/kubernetes/pki/ca.crt")).unwrap()
    );

    // etcdctl through kubectl exec, in etcdctl's JSON.
    let etcd = |args: &[&str]| {
        let mut a = vec![
            "-n",
            "kube-system",
            "exec",
            "etcd-cp1",
            "--",
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/server.crt",
            "--key=/etc/kubernetes/pki/etcd/server.key",
        ];
        a.extend_from_slice(args);
        cp1.kubectl(&a)
    };
    let o = etcd(&["member", "list", "-w", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["cp1", "cp2"]);
    assert_eq!(
        v["members"][1]["peerURLs"][0],
        format!("https://{}:2380", cp2.ip)
    );
    wait_for(20, "both etcd members healthy", || {
        let o = etcd(&["endpoint", "health", "--cluster", "-w", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        o.status.success()
            && v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|e| e["health"] == true))
    });

    // A pod network: every kubelet writes its CNI configuration and the nodes become Ready.
    let dir = lab.dir.path().join("bundle");
    let o = cp1.run(BUNDLE, &[dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    cp1.write(
        "/root/kube-flannel.yml",
        &std::fs::read_to_string(dir.join("manifests/kube-flannel.yml")).unwrap(),
    );
    let o = cp1.kubectl(&["apply", "-f", "/root/kube-flannel.yml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("daemonset.apps/kube-flannel-ds created"),
        "{}",
        text(&o)
    );
    let o = cp1.kubectl(&["apply", "-f", "/root/kube-flannel.yml"]);
    assert!(
        stdout(&o).contains("daemonset.apps/kube-flannel-ds unchanged"),
        "{}",
        text(&o)
    );
    let st = lab.read();
    let cm = st.clusters[0]
        .manifests
        .iter()
        .find(|m| m.kind == "ConfigMap" && m.name == "kube-flannel-cfg")
        .unwrap();
    assert!(
        cm.object["data"]["net-conf.json"]
            .as_str()
            .unwrap()
            .contains("\"Network\": \"10.244.0.0/16\"")
    );
    assert_eq!(st.clusters[0].pod_network.as_deref(), Some("flannel"));
    wait_for(30, "all nodes Ready", || {
        let o = cp1.kubectl(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["items"].as_array().is_some_and(|a| {
            a.len() == 3
                && a.iter().all(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    });
    assert!(w1.path("/etc/cni/net.d/10-flannel.conflist").exists());
    let o = cp1.kubectl(&["get", "pods", "-n", "kube-system", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pods: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    for p in ["kube-apiserver-cp1", "etcd-cp2", "kube-scheduler-cp2"] {
        assert!(pods.contains(&p), "{p} not in {pods:?}");
    }

    // Taint removal: once, then the real error.
    let o = cp1.kubectl(&[
        "taint",
        "nodes",
        "cp2",
        "node-role.kubernetes.io/control-plane:NoSchedule-",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "node/cp2 untainted");
    let o = cp1.kubectl(&[
        "taint",
        "nodes",
        "cp2",
        "node-role.kubernetes.io/control-plane:NoSchedule-",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "error: taint \"node-role.kubernetes.io/control-plane:NoSchedule\" not found"
        ),
        "{}",
        text(&o)
    );

    // Reset of the second control plane: its member goes, its files go, its Node stays.
    let o = cp2.kubeadm(&["reset", "-f"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("does not perform cleanup of CNI plugin configuration"),
        "{}",
        text(&o)
    );
    cp2.stop_kubelet();
    for f in [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/manifests/etcd.yaml",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/etcd/member",
    ] {
        assert!(!cp2.path(f).exists(), "{f} left after reset");
    }
    assert!(
        cp2.path("/etc/cni/net.d/10-flannel.conflist").exists(),
        "reset does not clean CNI"
    );
    let st = lab.read();
    assert_eq!(st.clusters[0].etcd_members.len(), 1);
    assert!(
        st.clusters[0].node("cp2").is_some(),
        "reset does not delete the Node"
    );
    let o = cp1.kubectl(&["delete", "node", "cp2"]);
    assert_eq!(stdout(&o).trim(), "node \"cp2\" deleted", "{}", text(&o));

    // No secret ever reached a command line: the configuration files carried them.
    for c in &lab.store().commands() {
        let line = c.argv.join(" ");
        assert!(
            !line.contains(&token) && !line.contains(&key),
            "secret on a command line: {line}"
        );
    }
    assert!(
        lab.store()
            .commands()
            .iter()
            .any(|c| c.program == "kubeadm" && c.argv.iter().any(|a| a == "init"))
    );
}

#[test]
fn a_second_init_elsewhere_makes_a_second_cluster() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let cp2 = lab.host("cp2", 2);
    let (_, hash1, _) = init(&cp1, &format!("{}:6443", cp1.ip));
    let (_, hash2, _) = init(&cp2, &format!("{}:6443", cp2.ip));
    assert_ne!(hash1, hash2);
    let st = lab.read();
    assert_eq!(st.clusters.len(), 2, "each init makes its own cluster");
    assert_eq!(st.clusters[1].init_host, "cp2");
}

/// `--skip-token-print` and `--skip-certificate-key-print`, as kubeforge runs init: the token
/// and the key are made and used, and only `<value withheld>` is printed in their place.
#[test]
fn init_withholds_the_token_and_certificate_key_when_told() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let endpoint = format!("{}:6443", cp1.ip);
    cp1.write(
        "/etc/kubeforge/init.yaml",
        &init_config(&cp1, &endpoint, ""),
    );
    cp1.start_kubelet();
    let o = cp1.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--upload-certs",
        "--skip-token-print",
        "--skip-certificate-key-print",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp1.kubelet_log());
    let all = text(&o);
    let st = lab.read();
    let c = &st.clusters[0];
    assert!(c.uploaded_certs.is_some(), "the certificates are uploaded");
    let token = &c.bootstrap_tokens[0];
    assert!(!all.contains(&token.secret), "{all}");
    assert!(!all.contains("Using token"), "{all}");
    assert!(!all.contains("Using certificate key"), "{all}");
    let out = stdout(&o);
    assert!(out.contains("--token <value withheld>"), "{out}");
    assert!(
        out.contains("--control-plane --certificate-key <value withheld>"),
        "{out}"
    );
    let hex64 = |w: &str| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(!out.split_whitespace().any(hex64), "a key in: {out}");
    assert!(
        out.contains(&format!("--discovery-token-ca-cert-hash {}", c.ca_hash)),
        "{out}"
    );

    // Uploading again without the node's configuration: as the real kubeadm on a host without
    // a default route, it finds no advertise address and refuses 0.0.0.0.
    let key = "0123456789abcdef".repeat(4);
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--certificate-key",
        &key,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("cannot use \"0.0.0.0\" as the bind address for the API Server"),
        "{}",
        text(&o)
    );
    // With it (the key in it: --certificate-key cannot be mixed with --config), without
    // printing the key, then printing it.
    cp1.write(
        "/etc/kubeforge/upload.yaml",
        &upload_config(&cp1, &endpoint, &key),
    );
    let upload = [
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        "/etc/kubeforge/upload.yaml",
    ];
    let o = cp1.kubeadm(&[&upload[..], &["--skip-certificate-key-print"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Using certificate key"), "{}", text(&o));
    let o = cp1.kubeadm(&upload);
    assert!(
        stdout(&o).contains(&format!("[upload-certs] Using certificate key:\n{key}\n")),
        "{}",
        text(&o)
    );

    // Each flag withholds its own value only.
    let cp2 = lab.host("cp2", 2);
    let endpoint2 = format!("{}:6443", cp2.ip);
    cp2.write(
        "/etc/kubeforge/init.yaml",
        &init_config(&cp2, &endpoint2, ""),
    );
    cp2.start_kubelet();
    let o = cp2.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--upload-certs",
        "--skip-token-print",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp2.kubelet_log());
    let out = stdout(&o);
    assert!(out.contains("--token <value withheld>"), "{out}");
    assert!(!out.contains("Using token"), "{out}");
    let key = word_after(&out, "--certificate-key");
    assert!(hex64(&key), "{out}");
    assert!(
        out.contains(&format!("[upload-certs] Using certificate key:\n{key}\n")),
        "{out}"
    );
}

/// The node's init configuration with `key` as its certificate key, for `upload-certs`.
fn upload_config(cp: &Host, endpoint: &str, key: &str) -> String {
    init_config(cp, endpoint, "").replacen(
        "kind: InitConfiguration\n",
        &format!("kind: InitConfiguration\ncertificateKey: \"{key}\"\n"),
        1,
    )
}

#[test]
fn expired_token_and_certificate_key_are_refused() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let cp2 = lab.host("cp2", 2);
    let w1 = lab.host("w1", 3);
    let endpoint = format!("{}:6443", cp1.ip);
    let (token, hash, key) = init(&cp1, &endpoint);

    // The certificate key: wrong, then expired.
    let wrong = "0".repeat(64);
    cp2.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&cp2, &endpoint, &token, &hash, Some(&wrong)),
    );
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "error decoding secret data with provided key: cipher: message authentication failed"
        ),
        "{}",
        text(&o)
    );
    lab.store()
        .update(|s| {
            s.clusters[0].uploaded_certs.as_mut().unwrap().expires =
                kubeforge_standins::util::now() - 1
        })
        .unwrap();
    cp2.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&cp2, &endpoint, &token, &hash, Some(&key)),
    );
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired."),
        "{}",
        text(&o)
    );
    // Uploading again (as kubeforge does before a late control-plane join) makes it work.
    cp1.write(
        "/etc/kubeforge/upload.yaml",
        &upload_config(&cp1, &endpoint, &key),
    );
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        "/etc/kubeforge/upload.yaml",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // The token: expired, then a wrong CA pin.
    lab.store()
        .update(|s| {
            for t in &mut s.clusters[0].bootstrap_tokens {
                t.expires = Some(kubeforge_standins::util::now() - 1);
            }
        })
        .unwrap();
    w1.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&w1, &endpoint, &token, &hash, None),
    );
    let o = w1.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let id = token.split('.').next().unwrap();
    assert!(
        stderr(&o).contains(&format!("couldn't validate the identity of the API Server: token id \"{id}\" is invalid for this cluster or it has expired")),
        "{}",
        text(&o)
    );
    let o = cp1.kubeadm(&["token", "create"]);
    let fresh = stdout(&o).trim().to_string();
    let other_pin = format!("sha256:{}", "a".repeat(64));
    w1.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&w1, &endpoint, &fresh, &other_pin, None),
    );
    let o = w1.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("none of the public keys"),
        "{}",
        text(&o)
    );
    // Nothing was written by the refused joins.
    assert!(!w1.path("/etc/kubernetes/pki/ca.crt").exists());
    assert!(
        !cp2.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .exists()
    );
}

#[test]
fn a_join_failing_half_way_is_refused_by_preflight_on_retry() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let cp2 = lab.host("cp2", 2);
    let endpoint = format!("{}:6443", cp1.ip);
    let (token, hash, key) = init(&cp1, &endpoint);
    cp2.write("/etc/kubeforge-standin/fail-join-after-certs", "");
    cp2.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&cp2, &endpoint, &token, &hash, Some(&key)),
    );
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o)
            .contains("error execution phase kubelet-start: timed out waiting for the condition"),
        "{}",
        text(&o)
    );
    assert!(cp2.path("/etc/kubernetes/pki/ca.crt").exists());
    assert!(
        cp2.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .exists()
    );
    std::fs::remove_file(cp2.path("/etc/kubeforge-standin/fail-join-after-certs")).unwrap();
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("[ERROR FileAvailable--etc-kubernetes-bootstrap-kubelet.conf]: /etc/kubernetes/bootstrap-kubelet.conf already exists"), "{e}");
    // kubeadm stops at the first group of checks that fails: the node checks come first.
    assert!(!e.contains("kube-apiserver.yaml"), "{e}");
    assert!(
        e.contains("error execution phase preflight: preflight checks failed"),
        "{e}"
    );
    // After a reset the same join works.
    let o = cp2.kubeadm(&["reset", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    cp2.start_kubelet();
    let o = cp2.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp2.kubelet_log());
}

#[test]
fn preflight_names_checks_as_kubeadm_and_honours_ignores() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    // A bundle without CoreDNS: the ImagePull check lists it even when its addon is skipped.
    let images: Vec<String> = cp1
        .default_images()
        .into_iter()
        .filter(|i| !i.contains("coredns"))
        .collect();
    cp1.set_images(&images);
    std::fs::write(cp1.path("/proc/sys/net/ipv4/ip_forward"), "0\n").unwrap();
    std::fs::write(
        cp1.path("/proc/swaps"),
        "Filename Type Size Used Priority\n/swap file 1024 0 -2\n",
    )
    .unwrap();
    cp1.write("/var/lib/etcd/leftover", "x");
    cp1.write(
        "/etc/kubeforge/init.yaml",
        &init_config(&cp1, &format!("{}:6443", cp1.ip), ""),
    );
    let o = cp1.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--skip-phases=addon/coredns",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"), "{e}");
    assert!(
        e.contains("[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty"),
        "{e}"
    );
    assert!(e.contains("[WARNING Swap]"), "{e}");
    assert!(
        !e.contains("bridge-nf-call-iptables"),
        "kubeadm 1.30 dropped that check: {e}"
    );
    // kubeadm before 1.30 (the real bundle's 1.28) also wants bridge-nf-call-iptables.
    let o = cp1
        .cmd(KUBEADM)
        .env("KUBEFORGE_STANDIN_VERSION", "v1.28.7")
        .args([
            "init",
            "phase",
            "preflight",
            "--config",
            "/etc/kubeforge/init.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("[ERROR FileContent--proc-sys-net-bridge-bridge-nf-call-iptables]: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist"),
        "{}",
        text(&o)
    );
    assert!(e.contains("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"), "{e}");
    std::fs::write(cp1.path("/proc/sys/net/ipv4/ip_forward"), "1\n").unwrap();
    std::fs::remove_file(cp1.path("/var/lib/etcd/leftover")).unwrap();
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "preflight",
        "--config",
        "/etc/kubeforge/init.yaml",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "[ERROR ImagePull]: failed to pull image registry.k8s.io/coredns/coredns:v1.12.1"
        ),
        "{}",
        text(&o)
    );
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "preflight",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--ignore-preflight-errors=imagepull",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("[WARNING ImagePull]"), "{}", text(&o));
    // No container runtime.
    std::fs::remove_file(cp1.path("/run/containerd/containerd.sock")).unwrap();
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "preflight",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--ignore-preflight-errors=ImagePull",
    ]);
    assert!(
        stderr(&o).contains("[ERROR CRI]: could not connect to the container runtime"),
        "{}",
        text(&o)
    );
    // A port in use.
    let _l = std::net::TcpListener::bind((cp1.ip, 6443)).unwrap();
    let o = cp1.kubeadm(&[
        "init",
        "phase",
        "preflight",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--ignore-preflight-errors=ImagePull,CRI",
    ]);
    assert!(
        stderr(&o).contains("[ERROR Port-6443]: Port 6443 is in use"),
        "{}",
        text(&o)
    );
}

#[test]
fn kubectl_refuses_when_the_server_does_not_answer() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let (_, _, _) = init(&cp1, &format!("{}:6443", cp1.ip));
    // What HAProxy's and keepalived's checks do: HTTPS without verification, HTTP/1.0 and 1.1,
    // while another client holds a connection open and sends nothing.
    let _silent = std::net::TcpStream::connect((cp1.ip, 6443)).unwrap();
    let url = format!("https://{}:6443/healthz", cp1.ip);
    for http in ["--http1.0", "--http1.1"] {
        let o = std::process::Command::new("curl")
            .args([
                "-sk",
                http,
                "--max-time",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "200", "{http}: {}", text(&o));
    }
    cp1.stop_kubelet();
    let o = cp1.kubectl(&["get", "nodes"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "The connection to the server {}:6443 was refused - did you specify the right host or port?",
            cp1.ip
        )
    );
    let o = cp1.kubeadm(&["token", "create"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("connection refused"), "{}", text(&o));
    // Without a kubeconfig kubectl tries localhost:8080, as the real one.
    let o = cp1.run(KUBECTL, &["get", "nodes"]);
    assert!(
        stderr(&o).contains("The connection to the server localhost:8080 was refused"),
        "{}",
        text(&o)
    );
}

/// A TCP proxy on `bind` (port chosen) to `to` that closes its `drop`-th connection (counted
/// from 1) at once, as a load balancer with no server up does, and forwards every other one.
fn flaky_proxy(
    bind: std::net::IpAddr,
    to: std::net::SocketAddr,
    drop: usize,
) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind((bind, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            if n + 1 == drop {
                continue;
            }
            let Ok(server) = std::net::TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    addr
}

#[test]
fn discovery_retries_each_request_as_kubeadm_polls() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let w1 = lab.host("w1", 2);
    let endpoint = format!("{}:6443", cp1.ip);
    let (token, hash, _) = init(&cp1, &endpoint);
    // The first request (not trusting the server) gets through; the second (trusting the
    // pinned CA) meets a closed connection once, then gets through.
    let proxy = flaky_proxy(cp1.ip, endpoint.parse().unwrap(), 2);
    w1.write(
        "/etc/kubeforge/join.yaml",
        &join_config(&w1, &proxy.to_string(), &token, &hash, None),
    );
    w1.start_kubelet();
    let o = w1.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
    assert!(o.status.success(), "{}\n{}", text(&o), w1.kubelet_log());
    assert!(
        stdout(&o).contains("Cluster info discovery succeeded with the pinned CA"),
        "{}",
        text(&o)
    );
}
