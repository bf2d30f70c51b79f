use super::*;

/// Output of the facts script captured on a Debian 12 machine (not booted with systemd, so
/// unit states are empty), for the query in `machine_query`.
const MACHINE: &str = include_str!("../../tests/fixtures/facts-debian12-machine.txt");

fn machine_query() -> FactQuery {
    let mut q = FactQuery::default();
    q.packages
        .extend(["curl", "haproxy", "dpkg", "openssh-client"].map(String::from));
    q.files
        .extend(["/etc/hostname", "/etc/nonexistent"].map(String::from));
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
    q
}

#[test]
fn the_script_asks_for_everything_in_the_query_quoted() {
    let mut q = machine_query();
    q.files.insert("/etc/it's here".to_string());
    let s = script(&q);
    assert!(s.contains("dpkg-query -W"));
    assert!(
        s.contains("echo @@sysctl net.ipv4.ip_forward; if [ -r /proc/sys/net/ipv4/ip_forward ]")
    );
    assert!(s.contains(&format!(
        "if [ -f {} ]",
        crate::shell::quote("/etc/it's here")
    )));
    assert!(s.ends_with("echo @@end\n"));
}

#[test]
fn parses_captured_output() {
    let f = parse(MACHINE).unwrap();
    assert_eq!(f.os["ID"], "debian");
    assert_eq!(f.os["VERSION_ID"], "12");
    assert_eq!(f.uid, 0);
    assert!(!f.dpkg_interrupted);
    assert_eq!(f.packages["curl"], "7.88.1-10+deb12u15");
    assert_eq!(f.packages["openssh-client"], "1:9.2p1-2+deb12u10");
    assert!(!f.packages.contains_key("haproxy"));
    assert!(!f.swap_active);
    assert_eq!(f.sysctls["net.ipv4.ip_forward"].as_deref(), Some("0"));
    assert_eq!(f.sysctls["kernel.nope"], None);
    let hostname = f.file("/etc/hostname").unwrap();
    assert_eq!(hostname.owner, "root");
    assert_eq!(hostname.content.as_deref(), Some(&b"vm\n"[..]));
    assert_eq!(f.files["/etc/nonexistent"], None);
    assert!(!f.unit("ssh.service").unwrap().exists());
    assert_eq!(
        f.interface_of("192.0.2.2".parse().unwrap())
            .map(|a| (a.interface.as_str(), a.prefix)),
        Some(("eth0", 24))
    );
}

#[test]
fn parses_a_systemd_host() {
    let out = "motd banner\n@@kubeforge-facts 1\n@@uid\n0\n@@dpkg\ninterrupted\n@@packages\nhaproxy\t2.6.12-1+deb12u1\tii \nkeepalived\t1:2.2.7-1\trc \n@@holds\nhaproxy\n@@swap\n/dev/vda2 partition 1000 0 -2\n@@unit haproxy.service\nenabled=enabled\nactive=active\n@@unit keepalived.service\nenabled=disabled\nactive=inactive\n@@end\n";
    let f = parse(out).unwrap();
    assert!(f.dpkg_interrupted);
    assert!(f.packages.contains_key("haproxy"));
    assert!(
        !f.packages.contains_key("keepalived"),
        "removed, config left is not installed"
    );
    assert!(f.holds.contains("haproxy"));
    assert!(f.swap_active);
    let h = f.unit("haproxy.service").unwrap();
    assert!(h.is_enabled() && h.is_active());
    let k = f.unit("keepalived.service").unwrap();
    assert!(k.exists() && !k.is_enabled() && !k.is_active());
}

#[test]
fn reads_what_kubeadm_has_done() {
    let out = "@@kubeforge-facts 1\n@@kubeadm\nfile /etc/kubernetes/admin.conf\nfile /etc/kubernetes/kubelet.conf\nmanifest etcd.yaml\nmanifest kube-apiserver.yaml\netcd-data\n@@end\n";
    let k = parse(out).unwrap().kubeadm;
    assert!(k.admin_conf && k.kubelet_conf && k.etcd_data);
    assert_eq!(k.manifests, ["etcd.yaml", "kube-apiserver.yaml"]);
    let fresh = parse("@@kubeforge-facts 1\n@@kubeadm\n@@end\n")
        .unwrap()
        .kubeadm;
    assert_eq!(fresh, KubeadmFacts::default());
    // The script runs on a machine without Kubernetes and reports nothing.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&FactQuery::default()))
        .output()
        .unwrap();
    assert_eq!(
        parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap()
            .kubeadm,
        KubeadmFacts::default()
    );
}

#[test]
fn rejects_truncated_or_foreign_output() {
    assert_eq!(parse("hello"), Err(FactError::NoHeader));
    assert_eq!(
        parse("@@kubeforge-facts 1\n@@uid\n0\n"),
        Err(FactError::Truncated)
    );
    assert!(matches!(
        parse("@@kubeforge-facts 1\n@@uid\nroot\n@@end\n"),
        Err(FactError::Malformed { .. })
    ));
    assert!(matches!(
        parse("@@kubeforge-facts 1\n@@file /x\npresent 644 root\n@@end\n"),
        Err(FactError::Malformed { .. })
    ));
}
