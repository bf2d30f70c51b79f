//! The `kubeforge` binary as a user runs it: output snapshots, exit codes, DNS through a
//! small DNS server on loopback.

mod bundle;
mod fake_dns;

use std::path::PathBuf;

use assert_cmd::Command;

fn kubeforge() -> Command {
    let mut cmd = Command::cargo_bin("kubeforge").expect("binary built");
    cmd.env_remove("KUBEFORGE_INVENTORY");
    // End-of-life warnings depend on the date: the snapshots are taken on this one.
    cmd.env("KUBEFORGE_TODAY", "2026-11-27");
    cmd
}

/// Writes an inventory into a fresh directory and returns its path.
fn inventory(name: &str, text: &str) -> (tempdir::TempDir, PathBuf) {
    let dir = tempdir::TempDir::new();
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write inventory");
    (dir, path)
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory under the target dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "kubeforge-cli-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command, dir: &std::path::Path) -> Run {
    let out = cmd.current_dir(dir).output().expect("run kubeforge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const ARTICLE_HOSTS: &str = "[k8sControlPlane]\nk8scp01\nk8scp02\nk8scp03\n[k8sNode]\nk8s01\n";

const BAD_YAML: &str = "\
hosts:
  - name: k8scp01
    adress: 10.0.0.1
  - k8s_01
  - name: k8scp02
    address: 10.0.0.12
  - name: k8scp03
    address: 10.0.0.12
vip: 10.0.1.5
pod_cidr: 10.96.0.0/16
ssh:
  port: 99999
kubernetes_version: \"1.x\"
calico:
  encapsulation: ipip-crosssubnet
";

#[test]
fn check_reports_every_problem_with_its_place() {
    let (dir, _) = inventory("cluster.yaml", BAD_YAML);
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "cluster.yaml"]),
        dir.path(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    insta::assert_snapshot!("check_bad_yaml", r.stdout);
}

#[test]
fn check_json_lists_diagnostics() {
    let (dir, _) = inventory("cluster.yaml", BAD_YAML);
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "cluster.yaml", "-o", "json"]),
        dir.path(),
    );
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("valid JSON");
    assert_eq!(v["ok"], false);
    let kinds: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    insta::assert_debug_snapshot!("check_bad_yaml_kinds", kinds);
    assert_eq!(v["diagnostics"][1]["span"]["line"], 3);
    assert_eq!(v["diagnostics"][1]["span"]["column"], 5);
}

#[test]
fn check_resolves_names_and_the_vip_through_the_inventorys_dns_server() {
    let server = fake_dns::start(&[
        ("k8scp01.local.net", &["10.0.0.11"]),
        ("k8scp02.local.net", &["10.0.0.12"]),
        ("k8scp03.local.net", &["10.0.0.13"]),
        ("k8s01.local.net", &["10.0.0.21"]),
        ("k8scp.local.net", &["10.0.0.10"]),
    ]);
    let text = format!(
        "{ARTICLE_HOSTS}[all:vars]\nkubeforge_domain=local.net\nkubeforge_dns_server={server}\n"
    );
    let (dir, _) = inventory("hosts", &text);
    let r = run(kubeforge().args(["check", "-i", "hosts"]), dir.path());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    insta::with_settings!({filters => vec![(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT")]}, {
        insta::assert_snapshot!("check_article_hosts_dns_ok", r.stdout);
    });
}

#[test]
fn check_names_each_missing_or_inconsistent_record() {
    let server = fake_dns::start(&[
        ("k8scp01.local.net", &["10.0.0.11"]),
        ("k8scp03.local.net", &["10.0.0.99"]),
        ("k8scp.local.net", &["10.0.0.10", "10.0.0.9"]),
    ]);
    let text = format!(
        "[k8sControlPlane]\nk8scp01\nk8scp02\nk8scp03 ansible_host=10.0.0.13\n[all:vars]\nkubeforge_domain=local.net\nkubeforge_dns_server={server}\n"
    );
    let (dir, _) = inventory("hosts", &text);
    let r = run(kubeforge().args(["check", "-i", "hosts"]), dir.path());
    assert_eq!(r.code, 1);
    insta::with_settings!({filters => vec![(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT")]}, {
        insta::assert_snapshot!("check_dns_problems", r.stdout);
    });
}

#[test]
fn check_reports_an_unreachable_dns_server() {
    // A port on loopback where nothing answers.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let text = format!("hosts: [k8scp01]\ndns:\n  server: 127.0.0.1:{port}\n");
    let (dir, _) = inventory("cluster.yaml", &text);
    let r = run(
        kubeforge().args(["check", "-i", "cluster.yaml", "-o", "json"]),
        dir.path(),
    );
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["dns"]["records"][0]["result"], "failed");
}

#[test]
fn plan_offline_text() {
    let (dir, _) = inventory("hosts", ARTICLE_HOSTS);
    let r = run(
        kubeforge().args(["plan", "--offline", "-i", "hosts"]),
        dir.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("plan_article_hosts", r.stdout);
}

/// kubespray's sample layout (`node1`..`node6`, `ip=`, `etcd_member_name=`, `[etcd:children]`)
/// is read as it is: the first control-plane host listed is the first node, and each node's
/// `ip` is the address the cluster uses while ssh connects to `ansible_host`.
#[test]
fn a_kubespray_inventory_checks_and_plans_with_node1_first() {
    let (dir, _) = inventory("inventory.ini", include_str!("kubespray-inventory.ini"));
    let check = run(
        kubeforge().args(["check", "--no-dns", "-i", "inventory.ini"]),
        dir.path(),
    );
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    // Only etcd_member_name is not read, and it says why.
    assert_eq!(
        check.stdout.matches("warning[ignored-variable]").count(),
        3,
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("names each etcd member after its node")
    );
    let plan = run(
        kubeforge().args(["plan", "--offline", "-o", "json", "-i", "inventory.ini"]),
        dir.path(),
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["summary"]["first_control_plane"], "node1");
    let init = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "init")
        .unwrap();
    let acting: Vec<&str> = init["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| !h["changes"].as_array().unwrap().is_empty())
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(acting, ["node1"]);
    let text = run(
        kubeforge().args(["plan", "--offline", "-i", "inventory.ini"]),
        dir.path(),
    );
    assert_eq!(text.code, 0, "{}", text.stderr);
    // Each node with where ssh reaches it and the address the cluster uses (its configs: the
    // core's steps tests).
    assert!(
        text.stdout.contains(
            "    node1       198.51.100.11 (ip 10.3.0.1)  control-plane (first: kubeadm init)\n"
        ),
        "{}",
        text.stdout
    );
}

#[test]
fn plan_offline_json_is_deterministic() {
    let text = "hosts:\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\nssh:\n  user: admin\ncalico:\n  encapsulation: ipip\n";
    let (dir, _) = inventory("cluster.yaml", text);
    let first = run(
        kubeforge().args(["plan", "--offline", "-o", "json"]),
        dir.path(),
    );
    let second = run(
        kubeforge().args(["plan", "--offline", "-o", "json"]),
        dir.path(),
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, second.stdout);
    insta::assert_snapshot!("plan_cluster_yaml_json", first.stdout);
}

#[test]
fn plan_refuses_an_invalid_inventory() {
    let (dir, _) = inventory("cluster.yaml", BAD_YAML);
    let r = run(kubeforge().args(["plan", "--offline"]), dir.path());
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("error[unknown-key]: cluster.yaml:3:5"),
        "{}",
        r.stderr
    );
}

#[test]
fn plan_offline_refuses_the_flags_it_would_ignore() {
    let (dir, _) = inventory("hosts", ARTICLE_HOSTS);
    for flag in [&["--parallel", "4"][..], &["--log-dir", "/tmp/x"][..]] {
        let r = run(
            kubeforge()
                .args(["plan", "--offline", "-i", "hosts"])
                .args(flag),
            dir.path(),
        );
        assert_eq!(r.code, 2, "{flag:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("cannot be used with") && r.stderr.contains(flag[0]),
            "{}",
            r.stderr
        );
    }
}

/// A DNS server that knows none of the hosts (asked directly, as the inventory names it: the
/// machine's own resolver could as well time out as answer).
#[test]
fn plan_against_hosts_stops_at_dns_problems_before_connecting() {
    let dns = fake_dns::start(&[]);
    let (dir, _) = inventory(
        "cluster.yaml",
        &format!(
            "hosts:\n  - k8scp01\n  - k8scp02\n  - k8scp03\n  - k8s01\ndns:\n  domain: local.net\n  server: {dns}\n"
        ),
    );
    let r = run(kubeforge().args(["plan", "-i", "cluster.yaml"]), dir.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("k8scp01.local.net does not resolve"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("stopped: DNS or the network settings have errors"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("connecting"), "{}", r.stderr);
}

#[test]
fn a_missing_inventory_is_a_usage_error() {
    let dir = tempdir::TempDir::new();
    let r = run(kubeforge().args(["check", "-i", "nope.yaml"]), dir.path());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: cannot read the inventory nope.yaml\n  caused by: "),
        "{}",
        r.stderr
    );
    let r = run(kubeforge().args(["check", "--bogus"]), dir.path());
    assert_eq!(r.code, 2);
}

#[test]
fn the_inventory_is_found_in_the_current_directory() {
    let (dir, _) = inventory("hosts", ARTICLE_HOSTS);
    let r = run(kubeforge().args(["check", "--no-dns"]), dir.path());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("using inventory hosts"));
}

#[test]
fn no_inventory_anywhere_names_where_it_looked() {
    let dir = tempdir::TempDir::new();
    let r = run(
        kubeforge()
            .env("KUBEFORGE_LAB_DIR", "/nonexistent-lab")
            .args(["check"]),
        dir.path(),
    );
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: no inventory given, and none of ./cluster.yaml, ./hosts or /nonexistent-lab/cluster.yaml exists; pass one with -i FILE\n"
    );
}

#[test]
fn the_lab_refuses_to_run_without_root() {
    let dir = tempdir::TempDir::new();
    let binary = assert_cmd::cargo::cargo_bin("kubeforge");
    // As root (CI), drop to an unprivileged user; otherwise this process is unprivileged already.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(&binary);
        c
    } else {
        Command::new(&binary)
    };
    let r = run(
        cmd.args(["lab", "up", "--dir", "/nonexistent-lab"]),
        dir.path(),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("`kubeforge lab` must run as root") && r.stderr.contains("sudo"),
        "{}",
        r.stderr
    );
}

#[test]
fn completions_are_generated() {
    let dir = tempdir::TempDir::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = run(kubeforge().args(["completions", shell]), dir.path());
        assert_eq!(r.code, 0);
        assert!(
            r.stdout.contains("kubeforge") && r.stdout.contains("check"),
            "{shell}"
        );
    }
}

#[test]
fn help_lists_the_commands() {
    let dir = tempdir::TempDir::new();
    let r = run(kubeforge().arg("--help"), dir.path());
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("help", r.stdout);
}

#[test]
fn check_warns_about_a_minor_past_its_end_of_life_on_the_given_day() {
    let text = "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\nkubernetes_version: \"1.34\"\n";
    let (dir, _) = inventory("cluster.yaml", text);
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "cluster.yaml"]),
        dir.path(),
    );
    assert_eq!(r.code, 0, "a warning only: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with(
            "warning[past-end-of-life]: cluster.yaml:2:21: Kubernetes 1.34 reached its upstream end of life on 2026-10-27: it gets no security fixes\n"
        ),
        "{}",
        r.stdout
    );
    // On its last day of support, the same inventory is clean.
    let r = run(
        kubeforge().env("KUBEFORGE_TODAY", "2026-10-27").args([
            "check",
            "--no-dns",
            "-i",
            "cluster.yaml",
        ]),
        dir.path(),
    );
    assert!(!r.stdout.contains("past-end-of-life"), "{}", r.stdout);
}

/// `-i -`: the inventory from standard input, named `<stdin>` in diagnostics.
#[test]
fn the_inventory_can_come_from_stdin() {
    let dir = tempdir::TempDir::new();
    let ok = kubeforge()
        .current_dir(dir.path())
        .args(["check", "--no-dns", "-i", "-"])
        .write_stdin(ARTICLE_HOSTS)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let bad = kubeforge()
        .current_dir(dir.path())
        .args(["check", "--no-dns", "-i", "-"])
        .write_stdin(BAD_YAML)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("error[unknown-key]: <stdin>:3:5"), "{out}");
    // Past the cap: refused, as a file is.
    let huge = "#".repeat(5 << 20);
    let refused = kubeforge()
        .current_dir(dir.path())
        .args(["check", "--no-dns", "-i", "-"])
        .write_stdin(huge)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

/// `version`: kubeforge's, and what it installs, as text or JSON.
#[test]
fn version_names_what_kubeforge_installs() {
    let dir = tempdir::TempDir::new();
    let text = run(kubeforge().args(["version"]), dir.path());
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .starts_with(&format!("kubeforge {}\n", env!("CARGO_PKG_VERSION"))),
        "{}",
        text.stdout
    );
    let json = run(kubeforge().args(["version", "-o", "json"]), dir.path());
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["kubeforge"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["kubernetes"]["default"], "1.37");
    assert_eq!(v["calico"], "v3.32.1");
    assert!(text.stdout.contains("Calico v3.32.1"), "{}", text.stdout);
}

/// The README's exit codes, for every command: 0 in order, 1 problems found (an invalid
/// inventory, a DNS record missing), 2 wrong usage or an input that could not be read. (That
/// `plan` against hosts exits 1 when a host fails preflight is pinned by the lab tests.)
#[test]
fn every_command_keeps_the_documented_exit_codes() {
    let (dir, _) = inventory("bad.yaml", BAD_YAML);
    std::fs::write(dir.path().join("hosts"), ARTICLE_HOSTS).unwrap();
    let bundle_dir = dir.path().join("not-a-bundle");
    std::fs::create_dir_all(&bundle_dir).unwrap();
    let cases: &[(&[&str], i32)] = &[
        // In order.
        (&["check", "--no-dns", "-i", "hosts"], 0),
        (&["plan", "--offline", "-i", "hosts"], 0),
        (&["completions", "bash"], 0),
        (&["version"], 0),
        (&["version", "-o", "json"], 0),
        (&["--help"], 0),
        // Problems found.
        (&["check", "--no-dns", "-i", "bad.yaml"], 1),
        (&["check", "-i", "hosts"], 1),
        (&["plan", "--offline", "-i", "bad.yaml"], 1),
        (&["plan", "-i", "bad.yaml"], 1),
        (&["plan", "-i", "hosts"], 1),
        (&["apply", "-i", "bad.yaml"], 1),
        (&["apply", "-i", "hosts"], 1),
        (&["reset", "--yes", "-i", "bad.yaml"], 1),
        (&["reset", "--yes", "-i", "hosts"], 1),
        (&["kubeconfig", "-i", "bad.yaml"], 1),
        (&["kubeconfig", "-i", "hosts"], 1),
        (&["upgrade", "-i", "bad.yaml"], 1),
        (&["upgrade", "--to", "1.36", "-i", "hosts"], 1),
        (&["upgrade", "--plan", "--to", "1.36", "-i", "hosts"], 1),
        (&["status", "-i", "bad.yaml"], 1),
        (&["status", "-i", "hosts"], 1),
        (&["certs", "renew", "-i", "bad.yaml"], 1),
        (&["certs", "renew", "-i", "hosts"], 1),
        (&["certs", "renew", "--plan", "-i", "hosts"], 1),
        (&["backup", "-i", "bad.yaml"], 1),
        (&["backup", "--file", "b.tar", "-i", "hosts"], 1),
        (&["bundle", "check", "not-a-bundle"], 1),
        // Wrong usage.
        (&["check", "--bogus"], 2),
        (&["plan", "--bogus"], 2),
        (&["apply", "--until", "no-such-phase", "-i", "hosts"], 2),
        (&["reset", "--bogus"], 2),
        (&["kubeconfig", "--bogus"], 2),
        (&["upgrade", "--bogus"], 2),
        (&["status", "--bogus"], 2),
        (&["status", "-o", "yaml"], 2),
        (&["certs", "renew", "--bogus"], 2),
        (&["certs", "bogus"], 2),
        (&["certs"], 2),
        (&["backup", "--bogus"], 2),
        (&["backup", "-o", "b.tar", "-i", "hosts"], 2),
        (&["upgrade", "--to", "1.99", "-i", "hosts"], 2),
        (&["upgrade", "--to", "latest", "-i", "hosts"], 2),
        // Apply never changes versions: the switch that let it is gone.
        (&["apply", "--allow-version-change", "-i", "hosts"], 2),
        // `-o` is an output format wherever it is taken; kubeconfig's file is --file.
        (&["kubeconfig", "-o", "admin.conf", "-i", "hosts"], 2),
        (&["check", "--hosts", "-i", "hosts"], 2),
        (&["version", "-o", "yaml"], 2),
        (&["bundle", "check"], 2),
        (&["lab", "up", "--workers", "many"], 2),
        (&["completions", "tcsh"], 2),
        (&["no-such-command"], 2),
        // An input that could not be read.
        (&["check", "-i", "nope.yaml"], 2),
        (&["plan", "-i", "nope.yaml"], 2),
        (&["plan", "--offline", "-i", "nope.yaml"], 2),
        (&["apply", "-i", "nope.yaml"], 2),
        (&["reset", "--yes", "-i", "nope.yaml"], 2),
        (&["kubeconfig", "-i", "nope.yaml"], 2),
        (&["upgrade", "-i", "nope.yaml"], 2),
        (&["status", "-i", "nope.yaml"], 2),
        (&["certs", "renew", "-i", "nope.yaml"], 2),
        (&["backup", "-i", "nope.yaml"], 2),
        (&["bundle", "check", "no-such-dir"], 2),
    ];
    let mut wrong = Vec::new();
    for (args, code) in cases {
        let r = run(kubeforge().args(*args), dir.path());
        if r.code != *code {
            wrong.push(format!(
                "`kubeforge {}` exited {}, not {code}: {}",
                args.join(" "),
                r.code,
                r.stderr.lines().last().unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The offline plan names the pod network apply installs (the one configured, at the version
/// kubeforge pins or from the bundle) and, for a bundle, the bundle's Kubernetes version,
/// read from its image list without running anything of it.
#[test]
fn plan_offline_names_the_configured_pod_network_and_the_bundles_version() {
    let dir = tempdir::TempDir::new();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(bundle.join("etc")).unwrap();
    std::fs::write(
        bundle.join("etc/images.txt"),
        "registry.k8s.io/pause:3.9\nregistry.k8s.io/kube-apiserver:v1.28.7\n",
    )
    .unwrap();
    let hosts = "hosts: [k8scp01, k8s01]\nvip: 10.0.0.10\n";
    let cases = [
        (
            format!(
                "{hosts}cni: flannel\npackages:\n  source: bundle\n  bundle: {}\n",
                bundle.display()
            ),
            [
                "  kubernetes    1.28.7 (kubeadm API kubeadm.k8s.io/v1beta3, the bundle's)",
                "  pod network   192.168.0.0/16: flannel from the bundle's manifests/kube-flannel.yml, VXLAN",
            ],
        ),
        (
            format!("{hosts}cni: flannel\nkubernetes_version: \"1.36\"\n"),
            [
                "  kubernetes    1.36 (kubeadm API kubeadm.k8s.io/v1beta4)",
                "  pod network   192.168.0.0/16: flannel v0.28.9, VXLAN",
            ],
        ),
        (
            format!("{hosts}cni: none\n"),
            [
                "  kubernetes    1.37 (kubeadm API kubeadm.k8s.io/v1beta4, the default)",
                "  pod network   192.168.0.0/16: none: install your own (nodes stay NotReady until it runs)",
            ],
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("cluster.yaml"), &text).unwrap();
        let r = run(
            kubeforge().args(["plan", "--offline", "-i", "cluster.yaml"]),
            dir.path(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        for line in expected {
            assert!(
                r.stdout.lines().any(|l| l == line),
                "{line:?} not in the plan of\n{text}\n{}",
                r.stdout
            );
        }
        assert!(!r.stdout.contains("Calico"), "{}", r.stdout);
    }
}

/// Inputs that would cost too much are refused with a clear error: an endless file, and more
/// hosts than a cluster is made for (100 range lines of 1000 hosts).
#[test]
fn inventories_that_cost_too_much_are_refused() {
    let dir = tempdir::TempDir::new();
    let r = run(kubeforge().args(["check", "-i", "/dev/zero"]), dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("error: the inventory /dev/zero is larger than 4 MiB"),
        "{}",
        r.stderr
    );
    let mut hosts = String::from("[k8sControlPlane]\nk8scp[01:03]\n[k8sNode]\n");
    for i in 0..100 {
        hosts.push_str(&format!("k8s{i:03}x[000:999]\n"));
    }
    std::fs::write(dir.path().join("hosts"), hosts).unwrap();
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "hosts"]),
        dir.path(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("error[too-many-hosts]: hosts:"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("expected: at most 5000 hosts"),
        "{}",
        r.stdout
    );
}

/// A line quoted under a diagnostic never shows the value of a key that names a secret, and a
/// sudo password gets the advice kubeforge can give (passwordless sudo), not "did you mean".
#[test]
fn quoted_lines_mask_the_values_of_secret_keys() {
    let (dir, _) = inventory(
        "hosts",
        "[k8sControlPlane]\nk8scp01 ansible_become_password=hunter2secret\n",
    );
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "hosts"]),
        dir.path(),
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(
        all.contains("k8scp01 ansible_become_password=********"),
        "{all}"
    );
    assert!(all.contains("passwordless sudo"), "{all}");
    assert!(!all.contains("did you mean"), "{all}");
    std::fs::write(
        dir.path().join("cluster.yaml"),
        "hosts:\n  - name: k8scp01\n    password: hunter2yaml\n",
    )
    .unwrap();
    let r = run(
        kubeforge().args(["check", "--no-dns", "-i", "cluster.yaml"]),
        dir.path(),
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 1, "{all}");
    assert!(!all.contains("hunter2yaml"), "{all}");
    assert!(all.contains("    password: ********"), "{all}");
}
