//! DNS answers in, diagnostics and filled-in addresses out; and the offline plan's shape.

use std::collections::BTreeMap;

use kubeforge_core::diag::Kind;
use kubeforge_core::dns::{self, Lookup};
use kubeforge_core::model::{self, Cluster, HostAddress};
use kubeforge_core::plan;
use kubeforge_core::steps::Order;

fn cluster(source: &str) -> Cluster {
    let v = model::load(source);
    v.cluster.unwrap_or_else(|| panic!("{:#?}", v.diagnostics))
}

fn found(ips: &[&str]) -> Lookup {
    Lookup::Found(ips.iter().map(|i| i.parse().unwrap()).collect())
}

const FQDN: &str =
    "hosts:\n  - k8scp01\n  - k8scp02\n  - k8scp03\n  - k8s01\ndns:\n  domain: local.net\n";

fn answers(pairs: &[(&str, Lookup)]) -> BTreeMap<String, Lookup> {
    pairs
        .iter()
        .map(|(n, l)| (n.to_string(), l.clone()))
        .collect()
}

#[test]
fn queries_name_control_planes_addressless_workers_and_the_vip() {
    let c = cluster(FQDN);
    let names: Vec<String> = dns::queries(&c).into_iter().map(|q| q.name).collect();
    assert_eq!(
        names,
        [
            "k8scp01.local.net",
            "k8scp02.local.net",
            "k8scp03.local.net",
            "k8s01.local.net",
            "k8scp.local.net"
        ]
    );
    let with_address = cluster("hosts:\n  - k8scp01\n  - name: k8s01\n    address: 10.0.0.21\n");
    let names: Vec<String> = dns::queries(&with_address)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["k8scp01", "k8scp"]);
}

/// Every record of the FQDN cluster, as a complete zone has them.
fn complete_zone() -> BTreeMap<String, Lookup> {
    answers(&[
        ("k8scp01.local.net", found(&["10.0.0.11"])),
        ("k8scp02.local.net", found(&["10.0.0.12"])),
        ("k8scp03.local.net", found(&["10.0.0.13"])),
        ("k8s01.local.net", found(&["10.0.0.21"])),
        ("k8scp.local.net", found(&["10.0.0.10"])),
    ])
}

#[test]
fn a_complete_zone_fills_in_addresses_and_the_vip() {
    let mut c = cluster(FQDN);
    let a = complete_zone();
    let (records, diagnostics) = dns::evaluate(&mut c, &a);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert_eq!(records.len(), 5);
    assert_eq!(c.vip.unwrap().value.to_string(), "10.0.0.10");
    assert_eq!(c.nodes[1].ip().unwrap().to_string(), "10.0.0.12");
    assert!(c.network_checks().is_empty());
}

/// The node named `node_name`.
fn node<'a>(c: &'a Cluster, node_name: &str) -> &'a model::Node {
    c.nodes.iter().find(|n| n.node_name == node_name).unwrap()
}

#[test]
fn a_node_without_an_address_is_reached_by_its_name_and_configured_with_its_ip() {
    let mut c = cluster(FQDN);
    let a = complete_zone();
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let w = node(&c, "k8s01");
    // ssh goes to the name, so that `Host k8s01` in an ssh_config applies to it.
    assert_eq!(w.destination(), "k8s01");
    assert_eq!(w.address, None);
    assert_eq!(w.ip().unwrap().to_string(), "10.0.0.21");
}

const ADDRESS_NAME: &str = "hosts:\n  - name: k8scp01\n    address: db1\n  - k8scp02\n  - k8scp03\n  - name: k8s01\n    address: 10.0.0.21\ndns:\n  domain: local.net\n";

#[test]
fn a_node_whose_address_is_a_name_is_reached_by_it_and_configured_with_its_ip() {
    let mut c = cluster(ADDRESS_NAME);
    let names: Vec<String> = dns::queries(&c).into_iter().map(|q| q.name).collect();
    assert_eq!(
        names,
        [
            "k8scp01.local.net",
            "db1.local.net",
            "k8scp02.local.net",
            "k8scp03.local.net",
            "k8scp.local.net"
        ]
    );
    let a = answers(&[
        ("k8scp01.local.net", found(&["10.0.0.11"])),
        ("db1.local.net", found(&["10.0.0.11"])),
        ("k8scp02.local.net", found(&["10.0.0.12"])),
        ("k8scp03.local.net", found(&["10.0.0.13"])),
        ("k8scp.local.net", found(&["10.0.0.10"])),
    ]);
    let (records, diagnostics) = dns::evaluate(&mut c, &a);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert_eq!(records.len(), 5);
    let cp = node(&c, "k8scp01");
    assert_eq!(cp.destination(), "db1");
    assert_eq!(cp.address, Some(HostAddress::Name("db1".into())));
    assert_eq!(cp.ip().unwrap().to_string(), "10.0.0.11");
    // A written address is both what ssh connects to and what configs use.
    let w = node(&c, "k8s01");
    assert_eq!(w.destination(), "10.0.0.21");
    assert_eq!(w.ip().unwrap().to_string(), "10.0.0.21");
    assert!(c.network_checks().is_empty());
}

#[test]
fn an_address_name_must_resolve_and_agree_with_the_nodes_own_record() {
    let mut c = cluster(ADDRESS_NAME);
    let mut a = answers(&[
        ("k8scp01.local.net", found(&["10.0.0.11"])),
        ("db1.local.net", Lookup::NotFound),
        ("k8scp02.local.net", found(&["10.0.0.12"])),
        ("k8scp03.local.net", found(&["10.0.0.13"])),
        ("k8scp.local.net", found(&["10.0.0.10"])),
    ]);
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].kind, Kind::DnsMissing);
    assert!(
        diagnostics[0]
            .message
            .starts_with("db1.local.net does not resolve"),
        "{}",
        diagnostics[0].message
    );

    let mut c = cluster(ADDRESS_NAME);
    a.insert("db1.local.net".into(), found(&["10.0.0.99"]));
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].kind, Kind::DnsMismatch);
    assert_eq!(
        diagnostics[0].message,
        "k8scp01.local.net resolves to 10.0.0.11, but its address db1.local.net resolves to 10.0.0.99"
    );
}

#[test]
fn missing_records_are_named_with_the_record_to_add() {
    let mut c = cluster(FQDN);
    let a = answers(&[
        ("k8scp01.local.net", found(&["10.0.0.11"])),
        ("k8scp02.local.net", Lookup::NotFound),
        ("k8scp03.local.net", found(&["10.0.0.13"])),
        ("k8s01.local.net", found(&["10.0.0.21"])),
        ("k8scp.local.net", Lookup::NotFound),
    ]);
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    let kinds: Vec<Kind> = diagnostics.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::DnsMissing, Kind::DnsMissing]);
    assert_eq!(
        diagnostics[0].hint.as_deref(),
        Some("add the A record `k8scp02.local.net. IN A <its address>` to your DNS")
    );
    assert!(
        diagnostics[1]
            .message
            .starts_with("k8scp.local.net does not resolve")
    );
}

#[test]
fn inconsistent_records_are_errors() {
    let mut c = cluster("hosts:\n  - name: k8scp01\n    address: 10.0.0.11\nvip: 10.0.0.10\n");
    let a = answers(&[
        ("k8scp01", found(&["10.0.0.99"])),
        ("k8scp", found(&["10.0.0.10", "10.0.0.9"])),
    ]);
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    let kinds: Vec<Kind> = diagnostics.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::DnsMismatch, Kind::DnsAmbiguous]);

    let mut c = cluster("hosts:\n  - k8scp01\nvip: 10.0.0.10\n");
    let a = answers(&[
        ("k8scp01", found(&["10.0.0.11"])),
        ("k8scp", found(&["10.0.0.50"])),
    ]);
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    assert_eq!(diagnostics[0].kind, Kind::DnsMismatch);
    assert_eq!(
        diagnostics[0].span.map(|s| (s.line, s.column)),
        Some((3, 6))
    );
}

#[test]
fn a_vip_from_dns_that_is_a_host_address_is_caught_after_lookup() {
    let mut c = cluster("hosts:\n  - k8scp01\n");
    let a = answers(&[
        ("k8scp01", found(&["10.0.0.11"])),
        ("k8scp", found(&["10.0.0.11"])),
    ]);
    let (_, diagnostics) = dns::evaluate(&mut c, &a);
    assert!(diagnostics.is_empty());
    let checks = c.network_checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].kind, Kind::VipIsHostAddress);
    assert!(checks[0].message.contains("(from DNS)"));
}

#[test]
fn plan_lists_every_phase_as_apply_runs_them() {
    let c = cluster(FQDN);
    let p = plan::plan(&c);
    let names: Vec<&str> = p.phases.iter().map(|ph| ph.name).collect();
    assert_eq!(
        names,
        [
            "prepare",
            "load-balancer",
            "runtime",
            "init",
            "cni",
            "join-credentials",
            "join-control-planes",
            "join-workers",
            "node-roles",
            "revoke",
            "kubeconfigs"
        ]
    );
    let hosts = |i: usize| {
        p.phases[i]
            .hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(hosts(0), ["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    assert_eq!(hosts(1), ["k8scp01", "k8scp02", "k8scp03"]);
    assert_eq!(hosts(3), ["k8scp01", "k8scp02", "k8scp03"]);
    assert_eq!(hosts(6), ["k8scp01", "k8scp02", "k8scp03"]);
    assert_eq!(hosts(7), ["k8s01"]);
    // Init, the network and the credentials happen on the first node alone.
    for i in [3, 4, 5] {
        assert!(p.phases[i].hosts[1..].iter().all(|h| h.changes.is_empty()));
        assert!(!p.phases[i].hosts[0].changes.is_empty());
    }
    assert_eq!(p.summary.control_plane_endpoint, "k8scp.local.net:8443");
    assert_eq!(p.summary.kubeadm_api, "kubeadm.k8s.io/v1beta4");
}

#[test]
fn the_offline_plan_is_rendered_from_the_steps_apply_runs() {
    let c = cluster(FQDN);
    let p = plan::plan(&c);
    let prepare = &p.phases[0];
    let first: Vec<(&str, &str)> = prepare.hosts[0]
        .changes
        .iter()
        .map(|c| (c.step.as_str(), c.summary.as_str()))
        .collect();
    for expected in [
        (
            "base-packages",
            "install ca-certificates curl gnupg kmod procps iptables conntrack socat ebtables ethtool",
        ),
        ("kernel-modules", "load kernel module br_netfilter"),
        ("sysctls", "set net.ipv4.ip_forward = 1 (not present yet)"),
    ] {
        assert!(first.contains(&expected), "{expected:?} not in {first:#?}");
    }
    let lb = &p.phases[1];
    assert_eq!(lb.order, Order::Parallel);
    let summaries: Vec<&str> = lb.hosts[0]
        .changes
        .iter()
        .map(|c| c.summary.as_str())
        .collect();
    assert!(
        summaries.contains(&"create /etc/keepalived/keepalived.conf"),
        "{summaries:?}"
    );
    assert!(summaries.contains(&"start haproxy.service"));
    let init: Vec<&str> = p.phases[3].hosts[0]
        .changes
        .iter()
        .map(|c| c.summary.as_str())
        .collect();
    assert_eq!(
        init,
        [
            "create /etc/kubeforge/kubeadm-init.yaml",
            "kubeadm init: create the cluster, its endpoint k8scp.local.net:8443",
            "wait until k8scp01 is in the cluster and healthy"
        ]
    );
    // Every other node joins, with a token (and a certificate key) made for them.
    let credentials: Vec<&str> = p.phases[5].hosts[0]
        .changes
        .iter()
        .map(|c| c.summary.as_str())
        .collect();
    assert_eq!(credentials.len(), 2, "{credentials:?}");
}

#[test]
fn plan_is_deterministic_whatever_the_inventory_order() {
    let a = cluster("hosts:\n  - k8s02\n  - k8scp03\n  - k8scp01\n  - k8s01\n  - k8scp02\n");
    let b = cluster("hosts:\n  - k8scp01\n  - k8scp02\n  - k8scp03\n  - k8s01\n  - k8s02\n");
    assert_eq!(
        serde_json::to_string(&plan::plan(&a)).unwrap(),
        serde_json::to_string(&plan::plan(&b)).unwrap()
    );
}

#[test]
fn single_node_cluster_has_no_join_phases() {
    let c = cluster("hosts: [k8scp01]\ncontrol_plane_workloads: true\n");
    let p = plan::plan(&c);
    let names: Vec<&str> = p.phases.iter().map(|ph| ph.name).collect();
    assert_eq!(
        names,
        [
            "prepare",
            "load-balancer",
            "runtime",
            "init",
            "cni",
            "join-credentials",
            "join-control-planes",
            "node-roles",
            "revoke",
            "kubeconfigs"
        ]
    );
}

#[test]
fn older_minors_use_kubeadm_v1beta3() {
    let c = cluster("hosts: [k8scp01]\nkubernetes_version: \"1.30\"\n");
    assert_eq!(plan::plan(&c).summary.kubeadm_api, "kubeadm.k8s.io/v1beta3");
}

/// A phase one host acts in says which: the host with changes, not "in parallel".
#[test]
fn a_phase_one_host_acts_in_names_it() {
    use kubeforge_core::plan::one_acts;
    assert_eq!(
        one_acts([("k8scp01", false), ("k8scp02", true), ("k8scp03", false)].into_iter()),
        ", on k8scp02"
    );
    assert_eq!(
        one_acts([("k8scp01", false), ("k8scp02", false)].into_iter()),
        ""
    );
    let c = cluster(FQDN);
    let p = plan::plan(&c);
    let init = p.phases.iter().find(|p| p.name == "init").unwrap();
    assert_eq!(init.order, kubeforge_core::steps::Order::One);
}
