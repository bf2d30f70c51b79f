//! The lab's DNS server: every host name and `k8scp`, from the machine and from a host.

use std::time::Duration;

use kubeforge_lab::dns::query_a;
use kubeforge_lab::plan::DOMAIN;
use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "dns::machine_resolves_every_name_through_the_lab_server",
            from_machine,
        ),
        Trial::test("dns::hosts_resolve_short_names_with_getent", from_host),
    ]
}

fn from_machine() -> TestResult {
    let f = lab()?;
    let server = f.plan.bridge_ip;
    let timeout = Duration::from_secs(2);
    for host in &f.plan.hosts {
        let answer = query_a(server, &host.fqdn(), timeout)?;
        ensure(answer.addresses == [host.address], || {
            format!("{} -> {:?}, want {}", host.fqdn(), answer, host.address)
        })?;
        ensure(answer.authoritative, || {
            format!("{}: answer not authoritative", host.fqdn())
        })?;
    }
    let endpoint = query_a(server, &format!("k8scp.{DOMAIN}"), timeout)?;
    ensure(endpoint.addresses == [f.plan.vip], || {
        format!("k8scp -> {endpoint:?}, want the VIP {}", f.plan.vip)
    })?;
    let missing = query_a(server, &format!("nosuchhost.{DOMAIN}"), timeout)?;
    ensure(missing.rcode == 3 && missing.addresses.is_empty(), || {
        format!("a name that does not exist: {missing:?}, want NXDOMAIN")
    })
}

fn from_host() -> TestResult {
    let f = lab()?;
    let worker = "k8s01";
    let resolv = f.ssh(worker, "cat /etc/resolv.conf")?;
    ensure(
        resolv.contains(&format!("nameserver {}\n", f.plan.bridge_ip))
            && resolv.contains(&format!("search {DOMAIN}\n"))
            && !resolv.contains("127.0.0."),
        || format!("resolv.conf in k8s01:\n{resolv}"),
    )?;
    let mut names: Vec<String> = f.plan.hosts.iter().map(|h| h.name.clone()).collect();
    names.push("k8scp".into());
    let out = f.ssh(worker, &format!("getent hosts {}", names.join(" ")))?;
    for host in &f.plan.hosts {
        let line = format!("{}", host.address);
        ensure(
            out.lines()
                .any(|l| l.starts_with(&line) && l.contains(&host.fqdn())),
            || format!("getent in k8s01 did not resolve {}:\n{out}", host.name),
        )?;
    }
    ensure(
        out.lines()
            .any(|l| l.starts_with(&f.plan.vip.to_string()) && l.contains("k8scp.")),
        || format!("getent hosts k8scp in k8s01 did not give the VIP:\n{out}"),
    )
}
