use std::collections::BTreeMap;

use super::*;
use crate::facts::{FileFact, Read, SwapFacts, UnitFact};
use crate::hash::sha256_hex;

fn facts() -> HostFacts {
    HostFacts::default()
}

fn file_fact(content: &str, mode: u32, mtime: i64) -> Option<FileFact> {
    Some(FileFact {
        mode,
        owner: "root".into(),
        group: "root".into(),
        size: content.len() as u64,
        mtime,
        sha256: sha256_hex(content.as_bytes()),
        content: Some(content.as_bytes().to_vec()),
        extracted: BTreeMap::new(),
    })
}

fn running(since: i64) -> UnitFact {
    UnitFact {
        load: "loaded".into(),
        active: "active".into(),
        sub: "running".into(),
        file_state: "enabled".into(),
        active_since: Some(since),
    }
}

fn conf(content: &str) -> Resource {
    Resource::File(
        File::new("/etc/demo.conf", content, 0o600)
            .validate("demo -t {}")
            .notify("demo.service", Notify::Reload),
    )
}

fn summaries(c: &[Change]) -> Vec<&str> {
    c.iter().map(|c| c.summary.as_str()).collect()
}

#[test]
fn a_missing_file_is_created_validated_and_renamed_into_place() {
    let c = changes("demo", &[conf("a\nb\n")], &facts());
    assert_eq!(summaries(&c), ["create /etc/demo.conf"]);
    let diff = c[0].diff.as_deref().unwrap();
    assert!(
        diff.starts_with("--- /dev/null\n+++ b/etc/demo.conf\n"),
        "{diff}"
    );
    assert_eq!(c[0].payload, b"a\nb\n");
    let s = &c[0].script;
    for part in [
        "t=$(mktemp \"$d/.kubeforge.XXXXXX\")",
        "trap 'rm -f \"$t\"' EXIT",
        "head -c 4 > \"$t\"",
        "[ \"$n\" -eq 4 ] ||",
        "demo -t \"$t\" </dev/null >&2",
        "chmod 600 \"$t\"; chown root:root \"$t\"; sync \"$t\"",
        "mv -f \"$t\" /etc/demo.conf",
    ] {
        assert!(s.contains(part), "{part} missing from\n{s}");
    }
    // Validation comes before the rename.
    assert!(s.find("demo -t").unwrap() < s.find("mv -f").unwrap());
}

#[test]
fn the_write_script_refuses_a_short_or_invalid_file_and_leaves_nothing() {
    let dir = std::env::temp_dir().join(format!("kubeforge-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.conf").display().to_string();
    let whoami = |flag: &str| {
        String::from_utf8_lossy(
            &std::process::Command::new("id")
                .arg(flag)
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string()
    };
    let run = |validate: &str, payload: &[u8]| {
        let mut f = File::new(&path, "hello\n", 0o640).validate(validate);
        f.owner = whoami("-un");
        f.group = whoami("-gn");
        let c = &changes("t", &[Resource::File(f)], &HostFacts::default())[0];
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&c.script)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(payload).unwrap();
        child.wait_with_output().unwrap()
    };
    let leftovers = || std::fs::read_dir(&dir).unwrap().count();
    let short = run("true", b"hel");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("received 3 of 6 bytes"));
    assert_eq!(leftovers(), 0, "no temporary file and no target left");
    let invalid = run("false", b"hello\n");
    assert!(!invalid.status.success());
    assert_eq!(leftovers(), 0, "an invalid file is never put in place");
    let good = run("grep -q hello {}", b"hello\n");
    assert!(good.status.success(), "{:?}", good);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    assert_eq!(leftovers(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_file_shows_a_diff_and_reloads_its_running_service_once() {
    let mut f = facts();
    f.files
        .insert("/etc/demo.conf".into(), file_fact("a\nb\n", 0o600, 100));
    f.units.insert("demo.service".into(), running(200));
    let c = changes(
        "demo",
        &[
            conf("a\nc\n"),
            Resource::Service(Service::running("demo.service")),
        ],
        &f,
    );
    assert_eq!(
        summaries(&c),
        [
            "update /etc/demo.conf",
            "reload demo.service (/etc/demo.conf changed)"
        ]
    );
    assert_eq!(
        c[0].diff.as_deref().unwrap(),
        "--- a/etc/demo.conf\n+++ b/etc/demo.conf\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    );
    assert!(c[1].script.contains("systemctl reload demo.service && mkdir -p /var/lib/kubeforge/stamps && touch /var/lib/kubeforge/stamps/demo.service"));
}

#[test]
fn a_file_written_after_its_service_last_read_it_is_picked_up() {
    // A run was stopped between writing the file (t=300) and reloading the unit (running
    // since t=200): the content is right, but the daemon runs the old one.
    let mut f = facts();
    f.files
        .insert("/etc/demo.conf".into(), file_fact("x\n", 0o600, 300));
    f.units.insert("demo.service".into(), running(200));
    let rs = [
        conf("x\n"),
        Resource::Service(Service::running("demo.service")),
    ];
    assert_eq!(
        summaries(&changes("demo", &rs, &f)),
        ["reload demo.service (/etc/demo.conf changed after demo.service last read it)"]
    );
    // Reloaded by kubeforge at t=300 (same second): nothing left to do.
    f.stamps.insert("demo.service".into(), 300);
    assert!(changes("demo", &rs, &f).is_empty());
}

#[test]
fn a_file_in_place_gives_no_change_and_a_wrong_mode_only_a_chmod() {
    let mut f = facts();
    f.files
        .insert("/etc/demo.conf".into(), file_fact("x\n", 0o600, 1));
    assert!(changes("demo", &[conf("x\n")], &f).is_empty());
    f.files
        .insert("/etc/demo.conf".into(), file_fact("x\n", 0o644, 1));
    let c = changes("demo", &[conf("x\n")], &f);
    assert_eq!(
        summaries(&c),
        ["set /etc/demo.conf to mode 600, owner root:root"]
    );
    assert!(c[0].payload.is_empty());
}

#[test]
fn sealed_files_show_masked_diffs_or_none() {
    let mut f = facts();
    // What the host returns for a masked file: its masked content, the real hash.
    let mut old = file_fact("auth_pass ********\nport 1\n", 0o600, 1).unwrap();
    old.sha256 = sha256_hex(b"auth_pass OldSecret\nport 1\n");
    f.files.insert("/etc/masked.conf".into(), Some(old));
    let masked =
        File::new("/etc/masked.conf", "auth_pass NewSecret\nport 2\n", 0o600).read(Read::Masked);
    let c = changes("s", &[Resource::File(masked)], &f);
    let diff = c[0].diff.as_deref().unwrap();
    assert!(diff.contains("-port 1\n+port 2\n"), "{diff}");
    assert!(!diff.contains("Secret"), "{diff}");
    assert_eq!(c[0].payload, b"auth_pass NewSecret\nport 2\n");
    assert!(
        !c[0].script.contains("Secret"),
        "secrets travel on stdin only"
    );
    let sealed = File::new(
        "/etc/kubernetes/admin.conf",
        "client-key-data: abc\n",
        0o600,
    )
    .read(Read::Hash);
    let c = changes("s", &[Resource::File(sealed)], &facts());
    assert_eq!(
        summaries(&c),
        ["create /etc/kubernetes/admin.conf (sealed: its content is not shown)"]
    );
    assert_eq!(c[0].diff, None);
}

#[test]
fn packages_install_what_is_missing_change_versions_and_hold() {
    let mut f = facts();
    f.packages.insert("curl".into(), "7.88".into());
    f.packages.insert("kubelet".into(), "1.36.4-1.1".into());
    let r = Resource::Packages(Packages {
        packages: vec![
            Package::any("curl"),
            Package::any("socat"),
            Package::at("kubelet", "1.37.1-*"),
        ],
        hold: true,
    });
    let c = changes("pkgs", std::slice::from_ref(&r), &f);
    assert_eq!(
        summaries(&c),
        [
            "install socat, change kubelet from 1.36.4-1.1 to 1.37.1-*",
            "hold curl socat kubelet"
        ]
    );
    assert!(c[0].script.contains("apt-get install"));
    assert!(
        c[0].script.ends_with(" socat 'kubelet=1.37.1-*'"),
        "{}",
        c[0].script
    );
    f.packages.insert("socat".into(), "1.7".into());
    f.packages.insert("kubelet".into(), "1.37.1-1.1".into());
    f.holds
        .extend(["curl", "socat", "kubelet"].map(String::from));
    assert!(changes("pkgs", std::slice::from_ref(&r), &f).is_empty());
    f.dpkg_interrupted = true;
    assert_eq!(
        changes("pkgs", &[r], &f)[0].script,
        format!("{WAIT_FOR_PACKAGE_MANAGERS}; DEBIAN_FRONTEND=noninteractive dpkg --configure -a")
    );
}

#[test]
fn sysctls_modules_and_services_converge() {
    let mut f = facts();
    f.sysctls
        .insert("net.ipv4.ip_forward".into(), Some("0".into()));
    f.sysctls
        .insert("net.bridge.bridge-nf-call-iptables".into(), None);
    f.modules.insert("br_netfilter".into(), false);
    let rs = [
        Resource::Module(Module::new(
            "br_netfilter",
            Some(Probe::Path("/proc/sys/net/bridge".into())),
        )),
        Resource::Sysctl(Sysctl::new("net.ipv4.ip_forward", "1")),
        Resource::Sysctl(Sysctl::new("net.bridge.bridge-nf-call-iptables", "1")),
        Resource::Service(Service::running("demo.service")),
        Resource::Service(Service::enabled("kubelet.service")),
    ];
    let c = changes("s", &rs, &f);
    assert_eq!(
        summaries(&c),
        [
            "load kernel module br_netfilter",
            "set net.ipv4.ip_forward = 1 (now 0)",
            "set net.bridge.bridge-nf-call-iptables = 1 (not present yet)",
            "enable demo.service",
            "start demo.service",
            "enable kubelet.service",
        ]
    );
    assert_eq!(c[0].script, "modprobe br_netfilter");
    f.sysctls
        .insert("net.ipv4.ip_forward".into(), Some("1".into()));
    f.sysctls.insert(
        "net.bridge.bridge-nf-call-iptables".into(),
        Some("1".into()),
    );
    f.modules.insert("br_netfilter".into(), true);
    f.units.insert("demo.service".into(), running(1));
    let mut crash_looping = running(1);
    crash_looping.active = "activating".into();
    crash_looping.sub = "auto-restart".into();
    f.units
        .insert("kubelet.service".into(), crash_looping.clone());
    assert!(
        changes("s", &rs, &f).is_empty(),
        "a kubelet waiting for kubeadm only needs to be enabled"
    );
    f.units.insert("demo.service".into(), crash_looping);
    assert_eq!(
        summaries(&changes("s", &rs, &f)),
        ["restart demo.service (it is activating (auto-restart))"],
        "activating is not running"
    );
}

#[test]
fn swap_is_turned_off_now_and_for_good() {
    let mut f = facts();
    assert!(changes("swap", &[Resource::SwapOff(SwapOff)], &f).is_empty());
    f.swap = SwapFacts {
        active: vec!["/dev/vda3".into()],
        fstab: vec!["UUID=9c1e".into()],
        units: [("dev-vda3.swap".to_string(), "active".to_string())].into(),
    };
    let c = changes("swap", &[Resource::SwapOff(SwapOff)], &f);
    assert_eq!(
        c.iter().map(|c| c.script.as_str()).collect::<Vec<_>>(),
        [
            "swapoff -a",
            "sed -i.kubeforge -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1@' /etc/fstab",
            "systemctl mask -q dev-vda3.swap"
        ]
    );
    // Off now, but an fstab line would bring it back at boot.
    f.swap.active.clear();
    f.swap.units.clear();
    assert_eq!(changes("swap", &[Resource::SwapOff(SwapOff)], &f).len(), 1);
}

#[test]
fn apt_repositories_refresh_lists_only_when_they_change() {
    let repo = AptRepository {
        name: "Kubernetes".into(),
        keyring: Some(Keyring {
            path: "/etc/apt/keyrings/k.gpg".into(),
            url: "https://example.invalid/Release.key".into(),
            fingerprint: "ABCD".into(),
        }),
        source_path: "/etc/apt/sources.list.d/k.list".into(),
        source: "deb [signed-by=/etc/apt/keyrings/k.gpg] https://example.invalid/ /".into(),
    };
    let r = [Resource::AptRepository(repo)];
    let c = changes("repo", &r, &facts());
    assert_eq!(
        summaries(&c),
        [
            "install the Kubernetes signing key ABCD in /etc/apt/keyrings/k.gpg (now missing)",
            "create /etc/apt/sources.list.d/k.list",
            "refresh the package lists (Kubernetes changed)"
        ]
    );
    assert!(c[0].script.contains("grep -qix ABCD"));
    let mut f = facts();
    f.keyrings
        .insert("/etc/apt/keyrings/k.gpg".into(), vec!["abcd".into()]);
    f.files.insert(
        "/etc/apt/sources.list.d/k.list".into(),
        file_fact(
            "# Managed by kubeforge\ndeb [signed-by=/etc/apt/keyrings/k.gpg] https://example.invalid/ /\n",
            0o644,
            1,
        ),
    );
    assert!(changes("repo", &r, &f).is_empty());
}

#[test]
fn commands_run_unless_their_guard_holds_and_read_values_from_output() {
    let init = Command::new("create the cluster", "kubeadm init --config \"$f\"")
        .unless(Guard::FileExists("/etc/kubernetes/admin.conf".into()))
        .stdin(b"secret config".to_vec());
    let r = [Resource::Command(init)];
    let c = changes("init", &r, &facts());
    assert_eq!(summaries(&c), ["create the cluster"]);
    assert_eq!(c[0].payload, b"secret config");
    let mut f = facts();
    f.files.insert(
        "/etc/kubernetes/admin.conf".into(),
        file_fact("x", 0o600, 1),
    );
    assert!(changes("init", &r, &f).is_empty());
    assert!(
        changes(
            "x",
            &[Resource::Command(
                Command::new("s", "true").unless(Guard::Done(true))
            )],
            &f
        )
        .is_empty()
    );
    let join = "kubeadm join k8scp:8443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00ff \n";
    assert_eq!(
        Parse::JoinToken.read(join).as_deref(),
        Some("abcdef.0123456789abcdef")
    );
    assert_eq!(Parse::CaCertHash.read(join).as_deref(), Some("sha256:00ff"));
    let certs = "[upload-certs] Storing the certificates in Secret\n[upload-certs] Using certificate key:\n9f86d0818\n";
    assert_eq!(
        Parse::CertificateKey.read(certs).as_deref(),
        Some("9f86d0818")
    );
    assert_eq!(Parse::CertificateKey.read("nothing"), None);
}

#[test]
fn waits_are_changes_only_while_their_condition_does_not_hold() {
    let w = [Resource::Wait(Wait::new(
        "HAProxy listens on port 8443",
        Condition::PortListening(8443),
        std::time::Duration::from_secs(30),
    ))];
    let c = changes("lb", &w, &facts());
    assert_eq!(summaries(&c), ["wait until HAProxy listens on port 8443"]);
    assert!(c[0].is_wait());
    let mut f = facts();
    f.listening.insert(8443, "haproxy".into());
    assert!(changes("lb", &w, &f).is_empty());
}
