//! Steps rendered for a cluster: facts in, resources and changes out.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use kubeforge_core::facts::{Address, FileFact, HostFacts};
use kubeforge_core::model;
use kubeforge_core::resources::{Resource, changes};
use kubeforge_core::steps::{self, ClusterInputs, StepError};

fn setup() -> (model::Cluster, ClusterInputs) {
    let c = model::load("hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\ncontrol_plane_workloads: true\n")
        .cluster
        .unwrap();
    let addresses: BTreeMap<String, Ipv4Addr> = c
        .nodes
        .iter()
        .map(|n| (n.node_name.clone(), n.ip().unwrap()))
        .collect();
    let inputs = ClusterInputs {
        vip: "10.0.0.10".parse().unwrap(),
        vrrp_secret: "Zq7Pw2Lm".into(),
        addresses,
    };
    (c, inputs)
}

fn facts_with_address(ip: &str) -> HostFacts {
    HostFacts {
        addresses: vec![Address {
            interface: "ens18".into(),
            ip: ip.parse().unwrap(),
            prefix: 24,
        }],
        ..HostFacts::default()
    }
}

/// The load-balancer steps of `node`, whose facts show `ip` on an interface.
fn lb(
    c: &model::Cluster,
    inputs: &ClusterInputs,
    node: &model::Node,
    ip: &str,
) -> Result<Vec<steps::Step>, StepError> {
    steps::host_steps(c, inputs, "load-balancer", node, &facts_with_address(ip))
}

fn file<'a>(steps: &'a [steps::Step], path: &str) -> &'a Resource {
    steps
        .iter()
        .flat_map(|s| &s.resources)
        .find(|r| matches!(r, Resource::File { path: p, .. } if p == path))
        .unwrap_or_else(|| panic!("no {path}"))
}

fn content(r: &Resource) -> &str {
    match r {
        Resource::File { content, .. } => content,
        _ => unreachable!(),
    }
}

#[test]
fn phases_and_their_hosts() {
    let (c, _) = setup();
    let p = steps::phases(&c);
    assert_eq!(
        p.iter()
            .map(|p| (p.name, p.hosts.len()))
            .collect::<Vec<_>>(),
        [("prepare", 3), ("load-balancer", 2)]
    );
}

#[test]
fn load_balancer_renders_haproxy_and_keepalived_for_the_node() {
    let (c, inputs) = setup();
    let node = &c.nodes[1];
    let s = lb(&c, &inputs, node, "10.0.0.12").unwrap();
    assert_eq!(
        s.iter().map(|s| s.id).collect::<Vec<_>>(),
        ["haproxy", "keepalived"]
    );
    let haproxy = content(file(&s, "/etc/haproxy/haproxy.cfg"));
    assert!(haproxy.contains("    bind *:8443\n"));
    assert!(
        haproxy.contains("    server k8scp01 10.0.0.11:6443\n    server k8scp02 10.0.0.12:6443\n"),
        "{haproxy}"
    );
    let keepalived = file(&s, "/etc/keepalived/keepalived.conf");
    let text = content(keepalived);
    assert!(text.contains("    interface ens18\n"));
    assert!(text.contains("    priority 148\n"));
    assert!(text.contains("    virtual_router_id 10\n"));
    assert!(text.contains("        10.0.0.10/24\n"));
    assert!(
        text.contains(
            "    unicast_src_ip 10.0.0.12\n    unicast_peer {\n        10.0.0.11\n    }\n"
        ),
        "{text}"
    );
    assert!(text.contains("vrrp_garp_master_refresh"));
    let Resource::File { secrets, mode, .. } = keepalived else {
        unreachable!()
    };
    assert_eq!(secrets, &["Zq7Pw2Lm".to_string()]);
    assert_eq!(*mode, 0o600);
    let check = content(file(&s, "/etc/keepalived/check_apiserver.sh"));
    assert!(
        check.contains("https://127.0.0.1:8443/healthz") && check.contains("[ \"$code\" = 200 ]")
    );
}

#[test]
fn the_diff_of_keepalived_conf_never_shows_the_secret() {
    let (c, inputs) = setup();
    let s = lb(&c, &inputs, &c.nodes[0], "10.0.0.11").unwrap();
    let all: Vec<_> = s
        .iter()
        .flat_map(|st| changes(st.id, &st.resources, &HostFacts::default()))
        .collect();
    for change in &all {
        assert!(!change.diff.clone().unwrap_or_default().contains("Zq7Pw2Lm"));
        assert!(!change.script.contains("Zq7Pw2Lm"));
        assert!(!serde_json::to_string(change).unwrap().contains("Zq7Pw2Lm"));
    }
    assert!(all.iter().any(|c| {
        c.diff
            .as_deref()
            .is_some_and(|d| d.contains("auth_pass ********"))
    }));
}

#[test]
fn the_secret_is_read_back_from_a_written_keepalived_conf() {
    let (c, inputs) = setup();
    let s = lb(&c, &inputs, &c.nodes[0], "10.0.0.11").unwrap();
    let text = content(file(&s, "/etc/keepalived/keepalived.conf"));
    let mut f = HostFacts::default();
    f.files.insert(
        steps::KEEPALIVED_CONF.into(),
        Some(FileFact {
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            sha256: String::new(),
            content: Some(text.as_bytes().to_vec()),
        }),
    );
    assert_eq!(steps::vrrp_secret_in(&f).as_deref(), Some("Zq7Pw2Lm"));
}

#[test]
fn a_node_without_its_address_on_an_interface_is_an_error() {
    let (c, inputs) = setup();
    let err = lb(&c, &inputs, &c.nodes[0], "10.9.9.9").unwrap_err();
    assert_eq!(
        err,
        StepError::NoInterface {
            node: "k8scp01".into(),
            address: "10.0.0.11".parse().unwrap()
        }
    );
}

#[test]
fn workers_have_nothing_to_do_in_the_load_balancer_phase_and_queries_cover_the_steps() {
    let (c, inputs) = setup();
    let worker = c.nodes.iter().find(|n| n.node_name == "k8s01").unwrap();
    assert!(
        steps::host_steps(&c, &inputs, "load-balancer", worker, &HostFacts::default())
            .unwrap()
            .is_empty()
    );
    let q = steps::query(&c, &inputs, "load-balancer", &c.nodes[0]);
    assert!(
        q.files.contains("/etc/haproxy/haproxy.cfg")
            && q.packages.contains("keepalived")
            && q.units.contains("haproxy.service")
    );
    let q = steps::query(&c, &inputs, "prepare", &c.nodes[0]);
    assert!(q.sysctls.contains("net.ipv4.ip_forward") && q.packages.contains("socat"));
}

#[test]
fn prepare_writes_kernel_settings() {
    let (c, inputs) = setup();
    let s = steps::host_steps(&c, &inputs, "prepare", &c.nodes[0], &HostFacts::default()).unwrap();
    assert_eq!(
        s.iter().map(|s| s.id).collect::<Vec<_>>(),
        ["swap", "kernel", "base-packages"]
    );
    assert_eq!(
        content(file(&s, "/etc/sysctl.d/90-kubernetes.conf")),
        "# Managed by kubeforge: kernel settings Kubernetes networking needs.\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"
    );
}

/// Facts captured on a lab control-plane node after `kubeforge apply` (the VRRP password in
/// it replaced by `Fixture1`): planning again on them gives no change.
#[test]
fn captured_facts_of_a_converged_host_give_no_changes() {
    let facts =
        kubeforge_core::facts::parse(include_str!("fixtures/facts-lab-control-plane.txt")).unwrap();
    assert_eq!(facts.packages["haproxy"], "2.6.12-1+deb12u4");
    assert!(
        facts
            .unit("keepalived.service")
            .is_some_and(|u| u.is_enabled() && u.is_active())
    );
    assert_eq!(
        facts
            .file("/etc/keepalived/keepalived.conf")
            .map(|f| f.mode),
        Some(0o600)
    );
    assert_eq!(
        facts
            .interface_of("10.213.0.11".parse().unwrap())
            .map(|a| a.interface.as_str()),
        Some("host0")
    );
    assert_eq!(
        facts.kubeadm,
        kubeforge_core::facts::KubeadmFacts::default()
    );
    let cluster = model::load(
        "hosts:\n  - name: k8scp01\n    address: 10.213.0.11\n  - name: k8scp02\n    address: 10.213.0.12\n  - name: k8scp03\n    address: 10.213.0.13\n  - name: k8s01\n    address: 10.213.0.21\nvip: 10.213.0.10\n",
    )
    .cluster
    .unwrap();
    let inputs = ClusterInputs {
        vip: "10.213.0.10".parse().unwrap(),
        vrrp_secret: steps::vrrp_secret_in(&facts).unwrap(),
        addresses: cluster
            .nodes
            .iter()
            .map(|n| (n.node_name.clone(), n.ip().unwrap()))
            .collect(),
    };
    assert_eq!(inputs.vrrp_secret, "Fixture1");
    for phase in ["prepare", "load-balancer"] {
        let s = steps::host_steps(&cluster, &inputs, phase, &cluster.nodes[0], &facts).unwrap();
        let c: Vec<_> = s
            .iter()
            .flat_map(|st| changes(st.id, &st.resources, &facts))
            .collect();
        assert!(
            c.is_empty(),
            "{phase}: {:?}",
            c.iter().map(|c| &c.summary).collect::<Vec<_>>()
        );
    }
    // Another VRRP password would rewrite keepalived.conf and restart keepalived.
    let other = ClusterInputs {
        vrrp_secret: "Other123".into(),
        ..inputs
    };
    let s =
        steps::host_steps(&cluster, &other, "load-balancer", &cluster.nodes[0], &facts).unwrap();
    let c: Vec<String> = s
        .iter()
        .flat_map(|st| changes(st.id, &st.resources, &facts))
        .map(|c| c.summary)
        .collect();
    assert_eq!(
        c,
        [
            "update /etc/keepalived/keepalived.conf",
            "restart keepalived.service (its configuration changed)"
        ]
    );
}
