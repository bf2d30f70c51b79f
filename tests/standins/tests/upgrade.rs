//! A patch upgrade driven as kubeforge drives it: a bundle stamped with the new version, the
//! kubeadm upgrade commands on each node, the kubelets restarted from the new bundle, and the
//! kubectl commands around them (annotate, drain, uncordon, an etcd snapshot).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const NEW: &str = "v1.34.3";

/// `standin-bundle DIR --stamp v1.34.3` in the lab's directory.
fn stamped_bundle(lab: &Lab, h: &Host) -> PathBuf {
    let dir = lab.dir.path().join("bundle-new");
    let o = h.run(BUNDLE, &[dir.to_str().unwrap(), "--stamp", NEW]);
    assert!(o.status.success(), "{}", text(&o));
    dir
}

/// The images a bundle lists.
fn bundle_images(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("etc/images.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Applies the bundle's flannel manifest and waits until every node is Ready.
fn pod_network(cp: &Host, bundle: &Path, nodes: usize) {
    cp.write(
        "/root/kube-flannel.yml",
        &std::fs::read_to_string(bundle.join("manifests/kube-flannel.yml")).unwrap(),
    );
    let o = cp.kubectl(&["apply", "-f", "/root/kube-flannel.yml"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for(40, "all nodes Ready", || {
        let o = cp.kubectl(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["items"].as_array().is_some_and(|a| {
            a.len() == nodes
                && a.iter().all(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    });
}

/// Waits for the API server `h`'s admin.conf reaches (after a kubelet restart, say).
fn api_up(h: &Host) {
    wait_for(30, "the API server", || {
        stdout(&h.kubectl(&["get", "--raw", "/readyz"])) == "ok"
    });
}

/// `program ARGS...` on `h` (a bundle's kubeadm, say).
fn on(h: &Host, program: &Path, args: &[&str]) -> std::process::Output {
    h.run(program.to_str().unwrap(), args)
}

fn image_of(pods: &Value, name: &str) -> String {
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no pod {name} in {pods}"))["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_stamped_bundle_is_that_version_without_any_environment() {
    let lab = Lab::new();
    let h = lab.host("n1", 1);
    let dir = stamped_bundle(&lab, &h);
    let run = |bin: &str, args: &[&str]| {
        let o = std::process::Command::new(dir.join("bin").join(bin))
            .args(args)
            .env_remove("KUBEFORGE_STANDIN_VERSION")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };
    assert_eq!(run("kubeadm", &["version", "-o", "short"]), "v1.34.3\n");
    assert_eq!(run("kubelet", &["--version"]), "Kubernetes v1.34.3\n");
    assert!(run("kubectl", &["version", "--client"]).starts_with("Client Version: v1.34.3\n"));
    let images = bundle_images(&dir);
    for i in [
        "registry.k8s.io/kube-apiserver:v1.34.3",
        "registry.k8s.io/kube-proxy:v1.34.3",
        "registry.k8s.io/etcd:3.6.4-0",
        "registry.k8s.io/pause:3.10.1",
    ] {
        assert!(images.iter().any(|x| x == i), "{i} not in {images:?}");
    }
    assert!(dir.join("images/kube-apiserver.tar").exists());
    let versions = std::fs::read_to_string(dir.join("VERSIONS")).unwrap();
    assert!(versions.contains("bin/kubelet: v1.34.3"), "{versions}");
    let o = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // The variable still wins; the unstamped binaries are what they were built as.
    let o = std::process::Command::new(dir.join("bin/kubeadm"))
        .args(["version", "-o", "short"])
        .env("KUBEFORGE_STANDIN_VERSION", "v1.30.1")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "v1.30.1\n");
    let o = h.run(KUBEADM, &["version", "-o", "short"]);
    assert_eq!(stdout(&o), "v1.34.2\n");
    let never = lab.dir.path().join("never");
    let o = h.run(BUNDLE, &[never.to_str().unwrap(), "--stamp", "1.34"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!never.exists());
}

#[test]
fn upgrade_apply_refuses_as_kubeadm_does() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let endpoint = format!("{}:6443", cp1.ip);
    // As kubeforge's clusters: no CoreDNS.
    cp1.write(
        "/etc/kubeforge/init.yaml",
        &init_config(&cp1, &endpoint, ""),
    );
    cp1.start_kubelet();
    let o = cp1.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--skip-phases=addon/coredns",
    ]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp1.kubelet_log());
    let bundle = stamped_bundle(&lab, &cp1);
    pod_network(&cp1, &bundle, 1);
    let new_kubeadm = bundle.join("bin/kubeadm");
    let manifest = || {
        std::fs::read_to_string(cp1.path("/etc/kubernetes/manifests/kube-apiserver.yaml")).unwrap()
    };
    let before = manifest();
    let dns = "--ignore-preflight-errors=CoreDNSUnsupportedPlugins,CoreDNSMigration";

    // Without CoreDNS there is nothing to migrate from: kubeadm's migration check fails.
    let o = on(&cp1, &new_kubeadm, &["upgrade", "apply", NEW, "-y"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("\t[ERROR CoreDNSMigration]: CoreDNS will not be upgraded: start version '' not supported\n"),
        "{e}"
    );
    assert!(!e.contains("[ERROR CoreDNSUnsupportedPlugins]"), "{e}");
    assert!(
        e.contains("error execution phase preflight: preflight checks failed"),
        "{e}"
    );

    // The kubeadm of the cluster's version cannot upgrade to a newer patch without --force.
    let o = cp1.kubeadm(&["upgrade", "apply", NEW, "-y", dns]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("[WARNING CoreDNSMigration]"), "{e}");
    assert!(e.contains("error execution phase preflight: the version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to \"v1.34.3\" is higher than the kubeadm version \"v1.34.2\". Upgrade kubeadm first using the tool you used to install kubeadm\n\nCan be bypassed if you pass the --force flag\n"), "{e}");
    assert!(stdout(&o).contains("[upgrade/versions] Cluster version: v1.34.2\n[upgrade/versions] kubeadm version: v1.34.2\n"), "{}", text(&o));

    // Two minors at once, and past kubeadm's own minor: fatal, --force or not.
    let o = on(
        &cp1,
        &new_kubeadm,
        &["upgrade", "apply", "v1.36.0", "-f", dns],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("the version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to \"v1.36.0\" is too high; kubeadm can upgrade only 1 minor version at a time\n\t- Specified version to upgrade to \"v1.36.0\" is at least one minor release higher than the kubeadm minor release (36 > 34). Such an upgrade is not supported\n\nPlease fix the misalignments highlighted above and try upgrading again"), "{e}");
    let o = on(
        &cp1,
        &new_kubeadm,
        &["upgrade", "apply", "v1.35.0", "-y", dns],
    );
    assert!(
        stderr(&o).contains("(35 > 34). Such an upgrade is not supported"),
        "{}",
        text(&o)
    );
    let o = on(&cp1, &new_kubeadm, &["upgrade", "apply", "1.34", "-y", dns]);
    assert!(
        stderr(&o).contains(
            "version \"1.34\" doesn't match patterns for neither semantic version nor labels"
        ),
        "{}",
        text(&o)
    );
    let o = on(&cp1, &new_kubeadm, &["upgrade", "apply", "-y"]);
    assert!(
        stderr(&o)
            .contains("missing one or more required arguments. Required arguments: [version]"),
        "{}",
        text(&o)
    );
    let o = on(
        &cp1,
        &new_kubeadm,
        &["upgrade", "apply", NEW, "--yes=maybe"],
    );
    assert!(
        stderr(&o).contains("invalid argument \"maybe\" for \"--yes\" flag"),
        "{}",
        text(&o)
    );

    // Without --yes it asks, and without an answer it stops before changing anything.
    let o = on(&cp1, &new_kubeadm, &["upgrade", "apply", NEW, dns]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).ends_with("[upgrade] Are you sure you want to proceed? [y/N]: "),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue"),
        "{}",
        text(&o)
    );

    // The new version's images must be in containerd.
    let o = on(&cp1, &new_kubeadm, &["upgrade", "apply", NEW, "-y", dns]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "[ERROR ImagePull]: failed to pull image registry.k8s.io/kube-apiserver:v1.34.3"
        ),
        "{}",
        text(&o)
    );

    // plan is read-only, and says what apply would do.
    let o = on(&cp1, &new_kubeadm, &["upgrade", "plan", NEW, dns]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Upgrade to the latest version in the v1.34 series:"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["kube-apiserver", "cp1", "v1.34.2", "v1.34.3"]),
        "{out}"
    );
    assert!(out.contains("\tkubeadm upgrade apply v1.34.3\n"), "{out}");
    let o = cp1.kubeadm(&["upgrade", "plan", NEW, dns]);
    assert!(
        stdout(&o).contains(
            "Note: Before you can perform this upgrade, you have to update kubeadm to v1.34.3."
        ),
        "{}",
        text(&o)
    );
    let o = on(&cp1, &new_kubeadm, &["upgrade", "plan", "v1.36.0"]);
    assert!(
        stderr(&o).contains("[ERROR CoreDNSMigration]"),
        "{}",
        text(&o)
    );

    // Nothing changed.
    assert_eq!(manifest(), before);
    let st = lab.read();
    assert_eq!(st.clusters[0].kubernetes_version, "v1.34.2");
    // A host without admin.conf is not a control plane kubeadm can upgrade from.
    let w = lab.host("w1", 2);
    let o = on(&w, &new_kubeadm, &["upgrade", "apply", NEW, "-y"]);
    assert_eq!(
        stderr(&o).lines().next().unwrap_or_default(),
        "couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory",
        "{}",
        text(&o)
    );
}

#[test]
fn a_patch_upgrade_of_an_ha_cluster() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    let cp2 = lab.host("cp2", 2);
    let w1 = lab.host("w1", 3);
    let endpoint = format!("{}:6443", cp1.ip);
    let (token, hash, key) = init(&cp1, &endpoint);
    for (h, cp) in [(&cp2, Some(key.as_str())), (&w1, None)] {
        h.start_kubelet();
        h.write(
            "/etc/kubeforge/join.yaml",
            &join_config(h, &endpoint, &token, &hash, cp),
        );
        let o = h.kubeadm(&["join", "--config", "/etc/kubeforge/join.yaml"]);
        assert!(o.status.success(), "{}\n{}", text(&o), h.kubelet_log());
    }
    let bundle = stamped_bundle(&lab, &cp1);
    pod_network(&cp1, &bundle, 3);
    let mut images = cp1.default_images();
    images.extend(bundle_images(&bundle));
    for h in [&cp1, &cp2, &w1] {
        h.set_images(&images);
    }
    let (kubeadm, kubelet) = (bundle.join("bin/kubeadm"), bundle.join("bin/kubelet"));

    // The nodes say which version they were upgraded to, as kubeforge marks them.
    let o = cp1.kubectl(&[
        "annotate",
        "node",
        "cp1",
        "kubeforge.io/upgraded-to=v1.34.3",
    ]);
    assert_eq!(stdout(&o), "node/cp1 annotated\n", "{}", text(&o));
    let o = cp1.kubectl(&[
        "annotate",
        "nodes",
        "cp1",
        "kubeforge.io/upgraded-to=v1.34.4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: --overwrite is false but found the following declared annotation(s): 'kubeforge.io/upgraded-to' already has a value (v1.34.3)\n"
    );
    let o = cp1.kubectl(&[
        "annotate",
        "node/cp1",
        "kubeforge.io/upgraded-to=v1.34.4",
        "--overwrite",
    ]);
    assert_eq!(stdout(&o), "node/cp1 annotated\n", "{}", text(&o));
    let node = json(&cp1.kubectl(&["get", "nodes", "cp1", "-o", "json"]));
    assert_eq!(
        node["metadata"]["annotations"]["kubeforge.io/upgraded-to"],
        "v1.34.4"
    );
    let o = cp1.kubectl(&["annotate", "node", "cp1", "kubeforge.io/upgraded-to-"]);
    assert_eq!(stdout(&o), "node/cp1 annotated\n", "{}", text(&o));
    let node = json(&cp1.kubectl(&["get", "nodes", "cp1", "-o", "json"]));
    assert!(
        node["metadata"]["annotations"]
            .get("kubeforge.io/upgraded-to")
            .is_none()
    );
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.34.2");

    // A snapshot of etcd first, in the data directory the etcd pod mounts.
    let etcdctl = |args: &[&str]| {
        let mut a = vec![
            "-n",
            "kube-system",
            "exec",
            "etcd-cp1",
            "--",
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        ];
        a.extend_from_slice(args);
        cp1.kubectl(&a)
    };
    let o = etcdctl(&["snapshot", "save", "/var/lib/etcd/pre-upgrade.db"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("Snapshot saved at /var/lib/etcd/pre-upgrade.db")
    );
    let snap = std::fs::read(cp1.path("/var/lib/etcd/pre-upgrade.db")).unwrap();
    assert_eq!(snap.len() % 512, 32);
    let (body, trailer) = snap.split_at(snap.len() - 32);
    assert_eq!(Sha256::digest(body).as_slice(), trailer);
    assert!(String::from_utf8_lossy(body).contains(&hash));
    let o = etcdctl(&["snapshot", "save", "/root/pre-upgrade.db"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Error: could not open /root/pre-upgrade.db.part (open /root/pre-upgrade.db.part: no such file or directory)"),
        "{}",
        text(&o)
    );

    // The first control plane: drained, upgraded; the addons wait for cp2.
    let o = cp1.kubectl(&[
        "drain",
        "cp1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("node/cp1 cordoned\n") && out.ends_with("node/cp1 drained\n"),
        "{out}"
    );
    let started = |h: &str, comp: &str| {
        lab.read().clusters[0]
            .static_pods
            .iter()
            .find(|p| p.node == h && p.component == comp)
            .map(|p| (p.started, p.image.clone()))
            .unwrap()
    };
    let (apiserver_started, image) = started("cp1", "kube-apiserver");
    assert_eq!(image, "registry.k8s.io/kube-apiserver:v1.34.2");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = on(&cp1, &kubeadm, &["upgrade", "apply", NEW, "--yes"]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp1.kubelet_log());
    let out = stdout(&o);
    for l in [
        "[upgrade/preflight] You have chosen to upgrade the cluster version to \"v1.34.3\"",
        "[upgrade/staticpods] Current and new manifests of etcd are equal, skipping upgrade",
        "[upgrade/staticpods] Renewing apiserver certificate",
        "[upgrade/staticpods] Component \"kube-apiserver\" upgraded successfully!",
        "[upgrade/staticpods] Component \"kube-scheduler\" upgraded successfully!",
        "[upgrade/addon] Skipping upgrade of addons because control plane instances [cp2] have not been upgraded",
        "[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"v1.34.3\".",
    ] {
        assert!(out.contains(&format!("{l}\n")), "{l} not in:\n{out}");
    }
    assert!(out.ends_with("[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.\n"), "{out}");
    let manifest = |h: &Host, c: &str| {
        std::fs::read_to_string(h.path(&format!("/etc/kubernetes/manifests/{c}.yaml"))).unwrap()
    };
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(manifest(&cp1, c).contains(&format!("image: registry.k8s.io/{c}:v1.34.3\n")));
        assert!(manifest(&cp2, c).contains(&format!("image: registry.k8s.io/{c}:v1.34.2\n")));
    }
    assert!(manifest(&cp1, "etcd").contains("image: registry.k8s.io/etcd:3.6.4-0\n"));
    let backups: Vec<_> = std::fs::read_dir(cp1.path("/etc/kubernetes/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        backups
            .iter()
            .any(|b| b.starts_with("kubeadm-backup-manifests-")),
        "{backups:?}"
    );
    let (restarted, image) = started("cp1", "kube-apiserver");
    assert!(
        restarted > apiserver_started,
        "the kubelet restarted the API server"
    );
    assert_eq!(image, "registry.k8s.io/kube-apiserver:v1.34.3");
    let st = lab.read();
    assert_eq!(st.clusters[0].kubernetes_version, NEW);
    assert_eq!(
        st.clusters[0].cluster_configuration["kubernetesVersion"],
        NEW
    );
    let pods = json(&cp1.kubectl(&["get", "pods", "-n", "kube-system", "-o", "json"]));
    assert_eq!(
        image_of(&pods, "kube-apiserver-cp1"),
        "registry.k8s.io/kube-apiserver:v1.34.3"
    );
    assert_eq!(
        image_of(&pods, "kube-apiserver-cp2"),
        "registry.k8s.io/kube-apiserver:v1.34.2"
    );
    assert_eq!(
        image_of(&pods, "kube-proxy-"),
        "registry.k8s.io/kube-proxy:v1.34.2"
    );
    // kubeadm allows applying the version the cluster has: nothing to change.
    let o = on(&cp1, &kubeadm, &["upgrade", "apply", NEW, "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("[upgrade/staticpods] Current and new manifests of kube-apiserver are equal, skipping upgrade\n"),
        "{}",
        text(&o)
    );
    // The kubelet of the new version, then back to work.
    cp1.stop_kubelet();
    cp1.start_kubelet_from(&kubelet);
    api_up(&cp1);
    let o = cp1.kubectl(&["uncordon", "cp1"]);
    assert_eq!(stdout(&o), "node/cp1 uncordoned\n", "{}", text(&o));

    // The other control plane: its manifests follow the cluster, then the addons.
    let o = on(&cp2, &kubeadm, &["upgrade", "node"]);
    assert!(o.status.success(), "{}\n{}", text(&o), cp2.kubelet_log());
    let out = stdout(&o);
    for l in [
        "[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version \"v1.34.3\"...",
        "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!",
        "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
        "[addons] Applied essential addon: CoreDNS",
        "[addons] Applied essential addon: kube-proxy",
    ] {
        assert!(out.contains(&format!("{l}\n")), "{l} not in:\n{out}");
    }
    assert!(
        manifest(&cp2, "kube-apiserver")
            .contains("image: registry.k8s.io/kube-apiserver:v1.34.3\n")
    );
    let pods = json(&cp1.kubectl(&["get", "pods", "-n", "kube-system", "-o", "json"]));
    assert_eq!(
        image_of(&pods, "kube-apiserver-cp2"),
        "registry.k8s.io/kube-apiserver:v1.34.3"
    );
    assert_eq!(
        image_of(&pods, "kube-proxy-"),
        "registry.k8s.io/kube-proxy:v1.34.3"
    );
    cp2.stop_kubelet();
    cp2.start_kubelet_from(&kubelet);

    // The worker: CoreDNS runs there, so draining evicts it.
    let o = cp1.kubectl(&[
        "drain",
        "w1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("evicting pod kube-system/coredns-"), "{out}");
    assert!(out.ends_with("node/w1 drained\n"), "{out}");
    assert!(
        stderr(&o).starts_with("Warning: ignoring DaemonSet-managed Pods: kube-system/kube-proxy-"),
        "{}",
        text(&o)
    );
    let config_before = std::fs::read_to_string(w1.path("/var/lib/kubelet/config.yaml")).unwrap();
    let o = on(&w1, &kubeadm, &["upgrade", "node"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    for l in [
        "[upgrade/preflight] Skipping prepull. Not a control plane node.",
        "[upgrade/control-plane] Skipping phase. Not a control plane node.",
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"",
        "[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.",
    ] {
        assert!(out.contains(&format!("{l}\n")), "{l} not in:\n{out}");
    }
    let backup = out
        .lines()
        .find_map(|l| l.strip_prefix("[upgrade] Backing up kubelet config file to "))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(w1.path(backup)).unwrap(),
        config_before
    );
    w1.stop_kubelet();
    w1.start_kubelet_from(&kubelet);
    let o = cp1.kubectl(&["uncordon", "w1"]);
    assert_eq!(stdout(&o), "node/w1 uncordoned\n", "{}", text(&o));

    // Every kubelet reports the new version once it has run.
    wait_for(30, "every kubelet at v1.34.3", || {
        let v: Value = serde_json::from_slice(
            &cp1.kubectl(&["get", "nodes,daemonsets", "-A", "-o", "json"])
                .stdout,
        )
        .unwrap_or(Value::Null);
        v["items"].as_array().is_some_and(|a| {
            a.iter()
                .filter(|x| x["kind"] == "Node")
                .all(|n| n["status"]["nodeInfo"]["kubeletVersion"] == NEW)
        })
    });
    let o = on(&cp1, &kubeadm, &["upgrade", "plan"]);
    assert!(
        stdout(&o).contains("Awesome, you're up-to-date! Enjoy!"),
        "{}",
        text(&o)
    );
}
