use super::*;
use crate::facts::{FileFact, UnitFact};

fn facts() -> HostFacts {
    HostFacts::default()
}

fn file_fact(content: &str, mode: u32) -> Option<FileFact> {
    Some(FileFact {
        mode,
        owner: "root".into(),
        group: "root".into(),
        sha256: sha256_hex(content.as_bytes()),
        content: Some(content.as_bytes().to_vec()),
    })
}

fn conf(content: &str) -> Resource {
    Resource::File {
        path: "/etc/demo.conf".into(),
        content: content.into(),
        mode: 0o600,
        owner: "root".into(),
        group: "root".into(),
        secrets: vec!["s3cr3t".into()],
        restart: vec!["demo.service".into()],
    }
}

#[test]
fn a_missing_file_is_created_with_a_diff_from_nothing() {
    let c = changes("demo", &[conf("a\npass s3cr3t\n")], &facts());
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].summary, "create /etc/demo.conf");
    let diff = c[0].diff.as_deref().unwrap();
    assert!(
        diff.starts_with("--- /dev/null\n+++ b/etc/demo.conf\n"),
        "{diff}"
    );
    assert!(diff.contains("+pass ********\n"));
    assert!(!diff.contains("s3cr3t"));
    assert!(
        !c[0].script.contains("s3cr3t"),
        "secrets travel on stdin only"
    );
    assert_eq!(c[0].payload, b"a\npass s3cr3t\n");
    assert!(c[0].script.contains("head -c 14 > \"$t\"; chmod 600 \"$t\"; chown root:root \"$t\"; sync \"$t\"; mv -f \"$t\" /etc/demo.conf"));
}

#[test]
fn a_changed_file_shows_a_diff_and_restarts_its_running_service() {
    let mut f = facts();
    f.files
        .insert("/etc/demo.conf".into(), file_fact("a\nb\n", 0o600));
    f.units.insert(
        "demo.service".into(),
        UnitFact {
            enabled: "enabled".into(),
            active: "active".into(),
        },
    );
    let c = changes("demo", &[conf("a\nc\n")], &f);
    let summaries: Vec<&str> = c.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "update /etc/demo.conf",
            "restart demo.service (its configuration changed)"
        ]
    );
    assert_eq!(
        c[0].diff.as_deref().unwrap(),
        "--- a/etc/demo.conf\n+++ b/etc/demo.conf\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    );
}

#[test]
fn a_file_in_place_gives_no_change_and_a_wrong_mode_only_a_chmod() {
    let mut f = facts();
    f.files
        .insert("/etc/demo.conf".into(), file_fact("x\n", 0o600));
    assert!(changes("demo", &[conf("x\n")], &f).is_empty());
    f.files
        .insert("/etc/demo.conf".into(), file_fact("x\n", 0o644));
    let c = changes("demo", &[conf("x\n")], &f);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].summary,
        "set /etc/demo.conf to mode 600, owner root:root"
    );
    assert!(c[0].payload.is_empty());
}

#[test]
fn packages_install_only_what_is_missing_and_hold() {
    let mut f = facts();
    f.packages.insert("curl".into(), "7.88".into());
    let r = Resource::Packages {
        names: vec!["curl".into(), "socat".into()],
        hold: true,
    };
    let c = changes("pkgs", std::slice::from_ref(&r), &f);
    assert_eq!(
        c.iter().map(|c| c.summary.as_str()).collect::<Vec<_>>(),
        ["install socat", "hold curl socat"]
    );
    f.packages.insert("socat".into(), "1.7".into());
    f.holds.extend(["curl".to_string(), "socat".to_string()]);
    assert!(changes("pkgs", std::slice::from_ref(&r), &f).is_empty());
    f.dpkg_interrupted = true;
    assert_eq!(
        changes("pkgs", &[r], &f)[0].script,
        format!("{WAIT_FOR_PACKAGE_MANAGERS}; DEBIAN_FRONTEND=noninteractive dpkg --configure -a")
    );
}

#[test]
fn sysctls_and_services_converge() {
    let mut f = facts();
    f.sysctls
        .insert("net.ipv4.ip_forward".into(), Some("0".into()));
    let rs = [
        Resource::Sysctl {
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
        },
        Resource::Service {
            unit: "demo.service".into(),
        },
    ];
    let c = changes("s", &rs, &f);
    assert_eq!(
        c.iter().map(|c| c.script.as_str()).collect::<Vec<_>>(),
        [
            "sysctl -q -w 'net.ipv4.ip_forward=1'",
            "systemctl enable -q demo.service",
            "systemctl start demo.service"
        ]
    );
    f.sysctls
        .insert("net.ipv4.ip_forward".into(), Some("1".into()));
    f.units.insert(
        "demo.service".into(),
        UnitFact {
            enabled: "enabled".into(),
            active: "active".into(),
        },
    );
    assert!(changes("s", &rs, &f).is_empty());
}

#[test]
fn swap_is_turned_off_only_when_on() {
    let mut f = facts();
    assert!(changes("swap", &[Resource::SwapOff], &f).is_empty());
    f.swap_active = true;
    assert!(
        changes("swap", &[Resource::SwapOff], &f)[0]
            .script
            .starts_with("swapoff -a")
    );
}

#[test]
fn redaction_masks_every_secret() {
    assert_eq!(
        redact("a=x1 b=x1 c=y2", &["x1".into(), "y2".into(), String::new()]),
        "a=******** b=******** c=********"
    );
}
