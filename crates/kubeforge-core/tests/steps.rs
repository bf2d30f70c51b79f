//! The phases' steps rendered for a cluster: facts in, resources and changes out.

use std::collections::BTreeMap;

use kubeforge_core::facts::{self, Address, FileFact, HostFacts, Read, UnitFact};
use kubeforge_core::model::{self, Cluster, Node};
use kubeforge_core::resources::{Change, File, Resource, changes};
use kubeforge_core::steps::load_balancer::{self, KEEPALIVED_CONF, LoadBalancer, VRRP_SECRET};
use kubeforge_core::steps::prepare::Prepare;
use kubeforge_core::steps::{Ctx, Order, PHASES, Phase, Step, StepError};
use kubeforge_core::values::Values;

fn setup() -> (Cluster, Values) {
    let c = model::load("hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\ncontrol_plane_workloads: true\n")
        .cluster
        .unwrap();
    let mut values = Values::default();
    values.set(VRRP_SECRET, "Zq7Pw2Lm", true);
    (c, values)
}

fn ctx<'a>(c: &'a Cluster, values: &'a Values) -> Ctx<'a> {
    Ctx {
        cluster: c,
        values,
        offline: false,
        bundle: None,
        facts: None,
        state: None,
    }
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
fn lb(c: &Cluster, values: &Values, node: &Node, ip: &str) -> Result<Vec<Step>, StepError> {
    LoadBalancer.steps(&ctx(c, values), node, &facts_with_address(ip))
}

fn file<'a>(steps: &'a [Step], path: &str) -> &'a File {
    steps
        .iter()
        .flat_map(|s| &s.resources)
        .find_map(|r| match r {
            Resource::File(f) if f.path == path => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {path}"))
}

fn all_changes(steps: &[Step], facts: &HostFacts) -> Vec<Change> {
    steps
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, facts))
        .collect()
}

#[test]
fn phases_in_order_and_their_hosts() {
    let (c, _) = setup();
    assert_eq!(
        PHASES.iter().map(|p| p.name()).collect::<Vec<_>>(),
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
    let hosts = |p: &dyn Phase| {
        p.hosts(&c)
            .iter()
            .map(|n| n.node_name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(hosts(&Prepare), "k8scp01 k8scp02 k8s01");
    assert_eq!(hosts(&LoadBalancer), "k8scp01 k8scp02");
}

#[test]
fn load_balancer_renders_haproxy_and_keepalived_for_the_node() {
    let (c, values) = setup();
    let node = &c.nodes[1];
    let s = lb(&c, &values, node, "10.0.0.12").unwrap();
    assert_eq!(
        s.iter().map(|s| s.id).collect::<Vec<_>>(),
        ["haproxy", "keepalived"]
    );
    let haproxy = file(&s, "/etc/haproxy/haproxy.cfg");
    assert!(haproxy.content.contains("    bind *:8443\n"));
    assert!(
        haproxy
            .content
            .contains("    server k8scp01 10.0.0.11:6443\n    server k8scp02 10.0.0.12:6443\n"),
        "{}",
        haproxy.content
    );
    // A kube-apiserver that died costs a new connection one short connect timeout, then the
    // connection goes to another server: a client's request still succeeds (scripts/failover).
    for line in [
        "    timeout connect 300ms\n",
        "    retries 3\n",
        "    option redispatch 1\n",
        "observe layer4 error-limit 1 on-error mark-down on-marked-down shutdown-sessions",
        // Every kube-apiserver again as an unchecked backup: used while checks find none up.
        "    option allbackups\n",
        "    server k8scp01_fallback 10.0.0.11:6443 backup no-check\n    server k8scp02_fallback 10.0.0.12:6443 backup no-check\n",
    ] {
        assert!(haproxy.content.contains(line), "{line}");
    }
    // Debian's own hardening stays: an unprivileged user in a chroot, and the stats socket.
    for line in [
        "    chroot /var/lib/haproxy\n",
        "    user haproxy\n",
        "    group haproxy\n",
        "    stats socket /run/haproxy/admin.sock mode 660 level admin\n",
    ] {
        assert!(haproxy.content.contains(line), "{line}");
    }
    assert_eq!(haproxy.validate.as_deref(), Some("haproxy -c -q -f {}"));
    let keepalived = file(&s, KEEPALIVED_CONF);
    let text = &keepalived.content;
    assert!(text.contains("    interface ens18\n"));
    assert!(text.contains("    priority 248\n"));
    assert!(text.contains("    virtual_router_id 10\n"));
    assert!(text.contains("        10.0.0.10/24\n"));
    assert!(text.contains("        auth_pass Zq7Pw2Lm\n"));
    assert!(
        text.contains(
            "    unicast_src_ip 10.0.0.12\n    unicast_peer {\n        10.0.0.11\n    }\n"
        ),
        "{text}"
    );
    assert!(text.contains("vrrp_garp_master_refresh"));
    assert_eq!(keepalived.mode, 0o600);
    assert_eq!(keepalived.read, Read::Masked);
    assert_eq!(keepalived.validate.as_deref(), Some("keepalived -t -f {}"));
    // The health check moves the VIP within about 2 s of HAProxy failing on the holder, and
    // a node starts without the VIP until its check passes.
    assert!(
        text.contains(
            "    interval 1\n    timeout 3\n    fall 2\n    rise 2\n    weight -20\n    init_fail\n"
        ),
        "{text}"
    );
    let check = &file(&s, "/etc/keepalived/check_apiserver.sh").content;
    // Only this node's HAProxy: the kube-apiservers behind it are the same for every node,
    // and a check on them moved the VIP back and forth while they came up.
    assert!(check.contains("exec timeout 2 bash -c ': </dev/tcp/127.0.0.1/8443'"));
    assert!(!check.contains("healthz"));
    // keepalived stops before HAProxy and starts after it.
    let dropin = file(&s, load_balancer::KEEPALIVED_DROPIN);
    assert!(dropin.content.contains("[Unit]\nAfter=haproxy.service\n"));
}

#[test]
fn the_diff_of_keepalived_conf_never_shows_the_secret() {
    let (c, values) = setup();
    let s = lb(&c, &values, &c.nodes[0], "10.0.0.11").unwrap();
    let all = all_changes(&s, &HostFacts::default());
    for change in &all {
        let shown = serde_json::to_string(change).unwrap();
        assert!(
            kubeforge_core::mask::find_leak(&shown, "Zq7Pw2Lm").is_none(),
            "{shown}"
        );
    }
    assert!(all.iter().any(|c| {
        c.diff
            .as_deref()
            .is_some_and(|d| d.contains("auth_pass ********"))
    }));
}

#[test]
fn the_vrrp_secret_is_read_back_from_the_host_or_made_anew() {
    let (c, _) = setup();
    let mut with_conf = HostFacts::default();
    let mut fact = FileFact {
        mode: 0o600,
        owner: "root".into(),
        group: "root".into(),
        size: 1,
        mtime: 1,
        sha256: String::new(),
        content: None,
        extracted: BTreeMap::new(),
    };
    fact.extracted.insert("auth_pass".into(), "Kept1234".into());
    with_conf.files.insert(KEEPALIVED_CONF.into(), Some(fact));
    let facts: BTreeMap<String, HostFacts> = [
        ("k8scp01".to_string(), HostFacts::default()),
        ("k8scp02".to_string(), with_conf),
    ]
    .into();
    let empty = Values::default();
    let mut values = Values::default();
    let mut never = |_: &mut [u8]| panic!("no new secret when one is in place");
    LoadBalancer
        .settle(&ctx(&c, &empty), &facts, &mut values, &mut never)
        .unwrap();
    assert_eq!(values.get(VRRP_SECRET), Some("Kept1234"));
    let mut values = Values::default();
    let mut zeros = |b: &mut [u8]| b.fill(0);
    LoadBalancer
        .settle(&ctx(&c, &empty), &BTreeMap::new(), &mut values, &mut zeros)
        .unwrap();
    assert_eq!(values.get(VRRP_SECRET), Some("AAAAAAAA"));
    assert_eq!(values.mask().apply("x AAAAAAAA"), "x ********");
}

#[test]
fn the_load_balancer_changes_one_node_at_a_time_once_its_services_run() {
    let fresh: BTreeMap<String, HostFacts> = [("k8scp01".to_string(), HostFacts::default())].into();
    let (c, values) = setup();
    assert_eq!(
        LoadBalancer.order(&ctx(&c, &values), &fresh),
        Order::Parallel
    );
    let mut running = HostFacts::default();
    running.units.insert(
        "haproxy.service".into(),
        UnitFact {
            load: "loaded".into(),
            active: "active".into(),
            sub: "running".into(),
            file_state: "enabled".into(),
            active_since: Some(1),
        },
    );
    let established: BTreeMap<String, HostFacts> = [
        ("k8scp01".to_string(), HostFacts::default()),
        ("k8scp02".to_string(), running),
    ]
    .into();
    assert_eq!(
        LoadBalancer.order(&ctx(&c, &values), &established),
        Order::OneAtATime
    );
}

#[test]
fn a_node_without_its_address_on_an_interface_is_an_error() {
    let (c, values) = setup();
    let err = lb(&c, &values, &c.nodes[0], "10.9.9.9").unwrap_err();
    assert_eq!(
        err,
        StepError::NoInterface {
            node: "k8scp01".into(),
            address: "10.0.0.11".into()
        }
    );
}

#[test]
fn queries_cover_every_resource_and_the_secret_to_keep() {
    let (c, values) = setup();
    let q = LoadBalancer.query(&ctx(&c, &values), &c.nodes[0]);
    assert_eq!(
        q.files.get("/etc/haproxy/haproxy.cfg"),
        Some(&Read::Content)
    );
    assert_eq!(q.files.get(KEEPALIVED_CONF), Some(&Read::Masked));
    assert!(q.extract[KEEPALIVED_CONF].contains("auth_pass"));
    assert!(q.packages.contains("keepalived") && q.units.contains("haproxy.service"));
    assert!(
        q.listening,
        "the wait for HAProxy's port reads listening ports"
    );
    let q = Prepare.query(&ctx(&c, &values), &c.nodes[0]);
    assert!(q.sysctls.contains("net.ipv4.ip_forward") && q.packages.contains("socat"));
    assert!(q.modules.contains_key("br_netfilter") && q.swap_config && q.join_files);
}

#[test]
fn prepare_loads_modules_before_the_sysctls_they_provide() {
    let (c, values) = setup();
    let s = Prepare
        .steps(&ctx(&c, &values), &c.nodes[0], &HostFacts::default())
        .unwrap();
    assert_eq!(
        s.iter().map(|s| s.id).collect::<Vec<_>>(),
        [
            "join-files",
            "swap",
            "base-packages",
            "kernel-modules",
            "sysctls"
        ]
    );
    assert_eq!(
        file(&s, "/etc/sysctl.d/90-kubernetes.conf").content,
        "# Managed by kubeforge: kernel settings Kubernetes networking needs.\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"
    );
    assert_eq!(
        file(&s, "/etc/modules-load.d/kubernetes.conf").content,
        "# Managed by kubeforge: kernel modules containerd and Kubernetes networking need at boot.\noverlay\nbr_netfilter\n"
    );
}

/// Facts of a fresh Debian 12 host as its installer leaves it (a swap partition in fstab and
/// active, overlay and br_netfilter not loaded, so no net.bridge sysctls): the lab's kernel has
/// br_netfilter built in and hides this.
#[test]
fn a_fresh_debian_host_gets_its_modules_loaded_before_the_bridge_sysctls() {
    let fresh = facts::parse(include_str!("fixtures/facts-debian12-fresh.txt")).unwrap();
    assert_eq!(fresh.sysctls["net.bridge.bridge-nf-call-iptables"], None);
    assert!(!fresh.modules["br_netfilter"]);
    let (c, values) = setup();
    let s = Prepare
        .steps(&ctx(&c, &values), &c.nodes[0], &fresh)
        .unwrap();
    let plan: Vec<(String, String)> = all_changes(&s, &fresh)
        .into_iter()
        .map(|c| (c.step, c.summary))
        .collect();
    let position = |needle: &str| {
        plan.iter()
            .position(|(_, s)| s.contains(needle))
            .unwrap_or_else(|| panic!("no change {needle:?} in {plan:#?}"))
    };
    assert!(
        position("load kernel module br_netfilter")
            < position("set net.bridge.bridge-nf-call-iptables = 1 (not present yet)")
    );
    assert!(position("turn swap off now") < position("install"));
    position("comment out the swap entries of /etc/fstab");
    position("mask swap units");
}

#[test]
fn offline_steps_have_placeholders_not_errors() {
    let c = model::load("hosts: [k8scp01, k8scp02, k8s01]\n")
        .cluster
        .unwrap();
    let values = Values::default();
    let offline = Ctx {
        offline: true,
        ..ctx(&c, &values)
    };
    let s = LoadBalancer
        .steps(&offline, &c.nodes[0], &HostFacts::default())
        .unwrap();
    let keepalived = &file(&s, KEEPALIVED_CONF).content;
    assert!(keepalived.contains("<address of k8scp>"), "{keepalived}");
    assert!(keepalived.contains("auth_pass <vrrp-secret>"));
    // Live, the same gaps are errors.
    assert_eq!(
        LoadBalancer.steps(&ctx(&c, &values), &c.nodes[0], &HostFacts::default()),
        Err(StepError::NoAddress {
            node: "k8scp01".into()
        })
    );
    let _ = load_balancer::priority(&c.nodes[0]);
}

/// Join configurations a killed run left (with a token or a key in them) go first thing;
/// without any, nothing is done.
#[test]
fn prepare_removes_join_files_a_killed_run_left() {
    let (c, values) = setup();
    let mut f = HostFacts {
        join_files: vec!["/etc/kubeforge/.join.Ab12Cd".into()],
        ..HostFacts::default()
    };
    let s = Prepare.steps(&ctx(&c, &values), &c.nodes[0], &f).unwrap();
    let planned = all_changes(&s[..1], &f);
    assert_eq!(
        planned
            .iter()
            .map(|c| c.summary.as_str())
            .collect::<Vec<_>>(),
        ["remove 1 join configuration(s) a killed run left (they hold a token or a key)"]
    );
    assert_eq!(planned[0].script, "rm -f -- /etc/kubeforge/.join.Ab12Cd");
    f.join_files.clear();
    let s = Prepare.steps(&ctx(&c, &values), &c.nodes[0], &f).unwrap();
    assert!(all_changes(&s[..1], &f).is_empty());
    // What the facts say is there, only of kubeforge's own names.
    let parsed = kubeforge_core::facts::parse(
        "@@kubeforge-facts 2\n@@join-files\n/etc/kubeforge/.join.Ab12Cd\n/etc/passwd\n/etc/kubeforge/.upload-certs.x y\n@@end\n",
    )
    .unwrap();
    assert_eq!(parsed.join_files, ["/etc/kubeforge/.join.Ab12Cd"]);
}

/// kubespray's `ip`: HAProxy's backends, keepalived's peers and kubeadm's advertise address
/// are the nodes' ip, never the address ssh connects to.
#[test]
fn a_nodes_ip_is_what_its_configs_use() {
    let c = model::load(
        "[kube_control_plane]\nnode1 ansible_host=198.51.100.11 ip=10.3.0.1\nnode2 ansible_host=198.51.100.12 ip=10.3.0.2\nnode3 ansible_host=198.51.100.13 ip=10.3.0.3\n[all:vars]\nkubeforge_vip=10.3.0.10\n",
    )
    .cluster
    .unwrap();
    let mut values = Values::default();
    values.set(VRRP_SECRET, "Zq7Pw2Lm", true);
    let s = lb(&c, &values, &c.nodes[1], "10.3.0.2").unwrap();
    let haproxy = &file(&s, "/etc/haproxy/haproxy.cfg").content;
    assert!(
        haproxy.contains("    server node1 10.3.0.1:6443\n    server node2 10.3.0.2:6443\n    server node3 10.3.0.3:6443\n"),
        "{haproxy}"
    );
    let keepalived = &file(&s, KEEPALIVED_CONF).content;
    assert!(
        keepalived.contains("10.3.0.1") && keepalived.contains("10.3.0.3"),
        "{keepalived}"
    );
    for text in [haproxy, keepalived] {
        assert!(!text.contains("198.51.100."), "{text}");
    }
}
