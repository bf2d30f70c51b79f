//! Strict decoding and flag errors of the kubeadm stand-in, and the kubelet's start-up failures.

mod common;

use common::*;

fn images_list(h: &Host, config: &str, version: Option<&str>) -> std::process::Output {
    h.write("/etc/kubeforge/c.yaml", config);
    let mut c = h.cmd(KUBEADM);
    c.args([
        "config",
        "images",
        "list",
        "--config",
        "/etc/kubeforge/c.yaml",
    ]);
    if let Some(v) = version {
        c.env("KUBEFORGE_STANDIN_VERSION", v);
    }
    c.output().unwrap()
}

#[test]
fn unknown_fields_and_wrong_shapes_are_refused() {
    let lab = Lab::new();
    let h = lab.host("cp1", 1);
    let o = images_list(
        &h,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  nmae: x\n",
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("strict decoding error: unknown field \"nodeRegistration.nmae\""),
        "{}",
        text(&o)
    );
    // v1beta3's map of extra arguments in a v1beta4 document.
    let o = images_list(
        &h,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    audit-log-path: /x\n",
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("json: cannot unmarshal object into Go struct field APIServer.apiServer.extraArgs of type []v1beta4.Arg"), "{}", text(&o));
    // A wrong type and an unknown version.
    let o = images_list(
        &h,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: \"6443\"\n",
        None,
    );
    assert!(stderr(&o).contains("cannot unmarshal string into Go struct field APIEndpoint.localAPIEndpoint.bindPort of type int32"), "{}", text(&o));
    let o = images_list(
        &h,
        "apiVersion: kubeadm.k8s.io/v1beta9\nkind: InitConfiguration\n",
        None,
    );
    assert!(
        stderr(&o).contains(
            "no kind \"InitConfiguration\" is registered for version \"kubeadm.k8s.io/v1beta9\""
        ),
        "{}",
        text(&o)
    );
    // Unknown fields of the kubelet's configuration too.
    let o = images_list(
        &h,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDrivr: systemd\n",
        None,
    );
    assert!(
        stderr(&o).contains("unknown field \"cgroupDrivr\""),
        "{}",
        text(&o)
    );
    // A valid document passes.
    let o = images_list(
        &h,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\napiServer:\n  extraArgs:\n  - name: audit-log-path\n    value: /x\n",
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn v1beta3_is_deprecated_in_1_34_and_gone_in_1_37() {
    let lab = Lab::new();
    let h = lab.host("cp1", 1);
    let doc = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\napiServer:\n  extraArgs:\n    audit-log-path: /x\n";
    let o = images_list(&h, doc, None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "your configuration file uses a deprecated API spec: \"kubeadm.k8s.io/v1beta3\""
        ),
        "{}",
        text(&o)
    );
    let o = images_list(&h, doc, Some("v1.37.0"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta3\""),
        "{}",
        text(&o)
    );
}

#[test]
fn feature_gates_and_validation() {
    let lab = Lab::new();
    let h = lab.host("cp1", 1);
    let cfg = init_config(
        &h,
        &format!("{}:6443", h.ip),
        "featureGates:\n  NoSuchGate: true\n",
    );
    h.write("/etc/kubeforge/init.yaml", &cfg);
    let o = h.kubeadm(&["init", "--config", "/etc/kubeforge/init.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("NoSuchGate is not a valid feature name."),
        "{}",
        text(&o)
    );
    let cfg = init_config(
        &h,
        &format!("{}:6443", h.ip),
        "featureGates:\n  ControlPlaneKubeletLocalMode: true\n",
    )
    .replace("  advertiseAddress: ", "  advertiseAddress: not-an-ip-");
    h.write("/etc/kubeforge/init.yaml", &cfg);
    let o = h.kubeadm(&["init", "--config", "/etc/kubeforge/init.yaml"]);
    assert!(
        stderr(&o).contains("localAPIEndpoint.advertiseAddress: Invalid value"),
        "{}",
        text(&o)
    );
}

#[test]
fn flags_are_checked_as_cobra_does() {
    let lab = Lab::new();
    let h = lab.host("cp1", 1);
    h.write("/etc/kubeforge/init.yaml", &init_config(&h, "a:6443", ""));
    let o = h.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--control-plane-endpoint",
        "x:1",
        "--certificate-key",
        "k",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(
            "can not mix '--config' with arguments [certificate-key control-plane-endpoint]"
        ),
        "{}",
        text(&o)
    );
    let o = h.kubeadm(&["init", "--confg", "x"]);
    assert_eq!(stderr(&o).lines().next(), Some("unknown flag: --confg"));
    let o = h.kubeadm(&["inti"]);
    assert_eq!(
        stderr(&o).lines().next(),
        Some("unknown command \"inti\" for \"kubeadm\"")
    );
    let o = h.kubeadm(&["token", "list"]);
    assert_eq!(
        stderr(&o).lines().next(),
        Some("unknown command \"list\" for \"kubeadm token\"")
    );
    let o = h.kubeadm(&["reset"]);
    assert_eq!(o.status.code(), Some(1), "reset without -f and no terminal");
    assert!(
        stderr(&o).contains("aborted reset operation"),
        "{}",
        text(&o)
    );
    // A ResetConfiguration says force as well; an unknown field in it is refused.
    h.write(
        "/etc/kubeforge/reset.yaml",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\n",
    );
    let o = h.kubeadm(&["reset", "--config", "/etc/kubeforge/reset.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    h.write(
        "/etc/kubeforge/reset.yaml",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforced: true\n",
    );
    let o = h.kubeadm(&["reset", "--config", "/etc/kubeforge/reset.yaml"]);
    assert!(
        stderr(&o).contains("strict decoding error: unknown field \"forced\""),
        "{}",
        text(&o)
    );
    let o = h.kubeadm(&[
        "reset",
        "--config",
        "/etc/kubeforge/reset.yaml",
        "--cri-socket",
        "unix:///x",
    ]);
    assert!(
        stderr(&o).starts_with("can not mix '--config' with arguments [cri-socket]"),
        "{}",
        text(&o)
    );
    let o = h.kubeadm(&["version", "-o", "short"]);
    assert_eq!(stdout(&o), "v1.34.2\n");
    for p in [KUBEADM, KUBELET, KUBECTL, BUNDLE, ETCDCTL] {
        let o = h.run(p, &["--help"]);
        assert!(
            stdout(&o).starts_with("kubeforge test stand-in"),
            "{p}: {}",
            text(&o)
        );
    }
    let o = h.run(KUBECTL, &["get", "nodes", "--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown flag: --bogus"));
}

#[test]
fn the_kubelet_fails_at_start_as_the_real_one() {
    let lab = Lab::new();
    let h = lab.host("n1", 1);
    let unit = [
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
    ];
    let run = || h.run(KUBELET, &unit);
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("failed to load kubelet config file, path: /var/lib/kubelet/config.yaml"),
        "{}",
        text(&o)
    );
    h.write("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n");
    std::fs::remove_file(h.path("/dev/kmsg")).unwrap();
    let o = run();
    assert!(
        stderr(&o).contains("open /dev/kmsg: no such file or directory"),
        "{}",
        text(&o)
    );
    h.write("/dev/kmsg", "");
    std::fs::write(
        h.path("/proc/swaps"),
        "Filename Type Size Used Priority\n/swap file 1024 0 -2\n",
    )
    .unwrap();
    let o = run();
    assert!(
        stderr(&o).contains("running with swap on is not supported"),
        "{}",
        text(&o)
    );
    std::fs::write(h.path("/proc/swaps"), "Filename Type Size Used Priority\n").unwrap();
    h.write("/etc/containerd/config.toml", "version = 2\n");
    let o = run();
    assert!(stderr(&o).contains(r#"kubelet cgroup driver: \"systemd\" is different from the container runtime's cgroup driver: \"cgroupfs\""#), "{}", text(&o));
    h.write("/etc/containerd/config.toml", "SystemdCgroup = true\n");
    let o = h.run(
        KUBELET,
        &[
            &unit[..],
            &["--container-runtime-endpoint=unix:///run/containerd/nope.sock"],
        ]
        .concat(),
    );
    assert!(
        stderr(&o)
            .contains("dial unix /run/containerd/nope.sock: connect: no such file or directory"),
        "{}",
        text(&o)
    );
    let o = h.run(KUBELET, &["--bogus-flag=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("failed to parse kubelet flag: unknown flag: --bogus-flag"),
        "{}",
        text(&o)
    );
    let o = h.run(KUBELET, &["--version"]);
    assert_eq!(stdout(&o), "Kubernetes v1.34.2\n");
    // Healthy: it serves its healthz and stops cleanly on SIGTERM.
    let mut child = h
        .cmd(KUBELET)
        .args(unit)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::new(h.ip, 10248);
    wait_for(10, "kubelet healthz", || {
        kubeforge_standins::net::http_get(addr, "/healthz", std::time::Duration::from_secs(1))
            .is_some_and(|(s, b)| s == 200 && b == "ok")
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
}

#[test]
fn the_bundle_has_the_real_layout_and_checks_out() {
    let lab = Lab::new();
    let h = lab.host("n1", 1);
    let out = lab.dir.path().join("bundle");
    let o = h.run(BUNDLE, &[out.to_str().unwrap(), "--without", "coredns"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for f in [
        "bin/kubeadm",
        "bin/kubelet",
        "bin/kubectl",
        "images/pause.tar",
        "images/flannel.tar",
        "etc/kubelet.service",
        "etc/10-kubeadm.conf",
        "etc/images.txt",
        "etc/kubeadm-etcd-tag.txt",
        "etc/packages.txt",
        "manifests/kube-flannel.yml",
    ] {
        assert!(sums.contains(&format!("  {f}\n")), "{f} not in SHA256SUMS");
    }
    assert!(!out.join("images/coredns.tar").exists());
    assert!(!out.join("debs").exists());
    let images = std::fs::read_to_string(out.join("etc/images.txt")).unwrap();
    assert!(
        images.contains("registry.k8s.io/pause:3.10.1\n")
            && images.contains("docker.io/flannel/flannel:v0.20.2\n"),
        "{images}"
    );
    assert!(!images.contains("coredns"));
    assert_eq!(
        std::fs::read_to_string(out.join("etc/packages.txt")).unwrap(),
        "containerd runc containernetworking-plugins\n"
    );
    let dropin = std::fs::read_to_string(out.join("etc/10-kubeadm.conf")).unwrap();
    assert!(dropin.contains("ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS"));
    // A docker-archive: manifest.json names the image, the layer is where it says.
    let o = std::process::Command::new("tar")
        .args(["-xOf", "images/etcd.tar", "manifest.json"])
        .current_dir(&out)
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m[0]["RepoTags"][0], "registry.k8s.io/etcd:3.6.4-0");
    let layer = m[0]["Layers"][0].as_str().unwrap();
    let o = std::process::Command::new("tar")
        .args(["-tf", "images/etcd.tar", layer])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // The bundled binaries are the stand-ins.
    let o = std::process::Command::new(out.join("bin/kubeadm"))
        .args(["version", "-o", "short"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "v1.34.2\n");
}
