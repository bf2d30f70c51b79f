//! One test per validation rule: each asserts the kind of problem and its exact line and column.

use kubeforge_core::diag::{Diagnostic, Kind, Severity};
use kubeforge_core::model::{self, Role};
use kubeforge_core::version::Date;

fn diagnostics(source: &str) -> Vec<Diagnostic> {
    model::load(source).diagnostics
}

/// The (line, column) of the only diagnostic of `kind`, failing if there is not exactly one.
fn at(source: &str, kind: Kind) -> (u32, u32) {
    let all = diagnostics(source);
    let found: Vec<_> = all.iter().filter(|d| d.kind == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind:?} in {all:#?}");
    let span = found[0].span.expect("diagnostic has a position");
    (span.line, span.column)
}

fn only(source: &str, kind: Kind) -> Diagnostic {
    let all = diagnostics(source);
    let found: Vec<_> = all.iter().filter(|d| d.kind == kind).cloned().collect();
    assert_eq!(found.len(), 1, "expected one {kind:?} in {all:#?}");
    found.into_iter().next().unwrap()
}

const OK3: &str = "hosts:\n  - k8scp01\n  - k8scp02\n  - k8scp03\n  - k8s01\n";

#[test]
fn the_articles_case_needs_no_settings() {
    let v = model::load(OK3);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let c = v.cluster.unwrap();
    assert_eq!(c.endpoint_port, 8443);
    assert_eq!(c.control_plane_endpoint(), "k8scp:8443");
    assert_eq!(c.pod_cidr().to_string(), "192.168.0.0/16");
    assert_eq!(c.first_control_plane().node_name, "k8scp01");
    assert_eq!(c.workers().count(), 1);
}

#[test]
fn ssh_users_must_be_login_names_wherever_they_are_written() {
    for bad in ["ops; rm -rf /", "a&&b", "$(id)", "-oProxyCommand=x", "x y"] {
        let yaml = format!("hosts:\n  - name: k8scp01\n    user: \"{bad}\"\n");
        assert_eq!(at(&yaml, Kind::InvalidUser), (3, 11), "{bad}");
        let global = format!("hosts: [k8scp01]\nssh:\n  user: \"{bad}\"\n");
        assert_eq!(at(&global, Kind::InvalidUser), (3, 9), "{bad}");
    }
    assert_eq!(
        at(
            "[k8sControlPlane]\nk8scp01 ansible_user=a;b\n",
            Kind::InvalidUser
        ),
        (2, 22)
    );
    assert_eq!(
        at(
            "[k8sControlPlane]\nk8scp01\n[all:vars]\nansible_user=$(reboot)\n",
            Kind::InvalidUser
        ),
        (4, 14)
    );
    let ok = model::load("hosts:\n  - name: k8scp01\n    user: deploy.bot_1\n");
    assert!(ok.diagnostics.iter().all(|d| d.kind != Kind::InvalidUser));
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(at("hosts: [k8scp01,\nvip: 1\n", Kind::Syntax), (1, 8));
}

#[test]
fn yaml_duplicate_key() {
    assert_eq!(
        at(
            "hosts:\n  - k8scp01\nvip: 10.0.0.5\nvip: 10.0.0.6\n",
            Kind::DuplicateKey
        ),
        (4, 1)
    );
}

#[test]
fn unknown_top_level_key_suggests_the_right_one() {
    let d = only(
        "hosts:\n  - k8scp01\nendpont_port: 8443\n",
        Kind::UnknownKey,
    );
    let span = d.span.unwrap();
    assert_eq!((span.line, span.column), (3, 1));
    assert_eq!(d.hint.as_deref(), Some("did you mean `endpoint_port`?"));
}

#[test]
fn unknown_host_key() {
    let src = "hosts:\n  - name: k8scp01\n    adress: 10.0.0.1\n";
    assert_eq!(at(src, Kind::UnknownKey), (3, 5));
    assert_eq!(
        only(src, Kind::UnknownKey).hint.as_deref(),
        Some("did you mean `address`?")
    );
}

#[test]
fn unknown_key_in_a_section() {
    assert_eq!(
        at("hosts: [k8scp01]\nssh:\n  usr: admin\n", Kind::UnknownKey),
        (3, 3)
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let src = "hosts:\n  - name: k8scp01\n    adress: 10.0.0.1\n  - bad_name\nvip: nope\nfoo: 1\n";
    let kinds: Vec<Kind> = diagnostics(src)
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::UnknownKey,
            Kind::InvalidHostname,
            Kind::InvalidValue,
            Kind::UnknownKey
        ]
    );
}

#[test]
fn wrong_type() {
    assert_eq!(at("hosts: k8scp01\n", Kind::WrongType), (1, 8));
    assert_eq!(at("hosts: [k8scp01]\nssh: root\n", Kind::WrongType), (2, 6));
}

#[test]
fn missing_hosts_and_missing_name() {
    assert_eq!(at("vip: 10.0.0.5\n", Kind::MissingKey), (1, 1));
    assert_eq!(
        at("hosts:\n  - address: 10.0.0.1\n", Kind::MissingKey),
        (2, 5)
    );
}

#[test]
fn empty_host_list() {
    assert_eq!(at("hosts: []\n", Kind::NoHosts), (1, 1));
}

#[test]
fn duplicate_host_name() {
    let d = only(
        "hosts:\n  - k8scp01\n  - k8s01\n  - k8scp01\n",
        Kind::DuplicateHost,
    );
    let span = d.span.unwrap();
    assert_eq!((span.line, span.column), (4, 5));
    assert!(d.found.unwrap().contains("line 2"));
}

#[test]
fn duplicate_address() {
    let src = "hosts:\n  - name: k8scp01\n    address: 10.0.0.1\n  - name: k8s01\n    address: 10.0.0.1\n";
    assert_eq!(at(src, Kind::DuplicateAddress), (5, 14));
}

#[test]
fn invalid_host_names() {
    assert_eq!(
        at("hosts:\n  - k8scp01\n  - k8s_01\n", Kind::InvalidHostname),
        (3, 5)
    );
    assert_eq!(
        at(
            "hosts:\n  - k8scp01\n  - \"k8s01; rm -rf /\"\n",
            Kind::InvalidHostname
        ),
        (3, 5)
    );
    assert_eq!(
        at("hosts:\n  - k8scp01\n  - K8S01\n", Kind::InvalidHostname),
        (3, 5)
    );
    assert_eq!(
        at("hosts:\n  - k8scp01\n  - -k8s01\n", Kind::InvalidHostname),
        (3, 5)
    );
}

#[test]
fn a_name_that_fits_no_role() {
    let src = "hosts:\n  - k8scp01\n  - db01\n";
    assert_eq!(at(src, Kind::UnknownRole), (3, 5));
    // An explicit role makes it fine.
    let v = model::load("hosts:\n  - k8scp01\n  - name: db01\n    role: worker\n");
    assert!(v.cluster.is_some(), "{:#?}", v.diagnostics);
}

#[test]
fn roles_need_two_digits() {
    assert_eq!(
        at("hosts:\n  - k8scp01\n  - k8s1\n", Kind::UnknownRole),
        (3, 5)
    );
}

#[test]
fn explicit_role_wins_with_a_warning() {
    let src = "hosts:\n  - k8scp01\n  - name: k8s01\n    role: control-plane\n";
    let d = only(src, Kind::RoleMismatch);
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (4, 11));
    let c = model::load(src).cluster.unwrap();
    assert_eq!(
        c.nodes
            .iter()
            .find(|n| n.node_name == "k8s01")
            .unwrap()
            .role,
        Role::ControlPlane
    );
}

#[test]
fn invalid_role() {
    let d = only(
        "hosts:\n  - name: k8scp01\n    role: workr\n",
        Kind::InvalidValue,
    );
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (3, 11));
    assert_eq!(d.hint.as_deref(), Some("did you mean `worker`?"));
}

#[test]
fn no_first_control_plane() {
    // No control-plane node at all: nowhere to make the cluster.
    assert_eq!(at("hosts:\n  - k8s01\n", Kind::NoFirstControlPlane), (1, 1));
    assert!(only("hosts:\n  - k8s01\n", Kind::NoFirstControlPlane).is_error());
    // None numbered 01 (it was removed): the lowest is the first, with a warning.
    let source = "hosts:\n  - k8scp03\n  - k8scp02\n  - k8s01\n";
    let d = only(source, Kind::NoFirstControlPlane);
    assert!(!d.is_error(), "{d:?}");
    assert!(
        d.message.contains("k8scp02, the lowest, is the first"),
        "{d:?}"
    );
    assert_eq!(
        model::load(source)
            .cluster
            .unwrap()
            .first_control_plane()
            .node_name,
        "k8scp02"
    );
}

#[test]
fn vip_equal_to_a_host_address() {
    let src = "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\nvip: 10.0.0.11\n";
    assert_eq!(at(src, Kind::VipIsHostAddress), (4, 6));
}

#[test]
fn vip_outside_the_hosts_subnet() {
    let src = "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\nvip: 10.0.1.10\n";
    assert_eq!(at(src, Kind::VipOutsideNetwork), (4, 6));
    let explicit =
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\nnetwork: 10.0.0.0/23\nvip: 10.0.1.10\n";
    assert!(model::load(explicit).cluster.is_some());
}

#[test]
fn host_outside_the_declared_network() {
    let src = "hosts:\n  - name: k8scp01\n    address: 10.0.5.11\nnetwork: 10.0.0.0/24\n";
    assert_eq!(at(src, Kind::HostOutsideNetwork), (3, 14));
}

#[test]
fn pod_and_service_cidrs_overlap() {
    let src = "hosts: [k8scp01]\npod_cidr: 10.96.0.0/16\n";
    assert_eq!(at(src, Kind::CidrOverlap), (2, 11));
}

#[test]
fn pod_cidr_overlaps_the_hosts() {
    let src = "hosts:\n  - name: k8scp01\n    address: 192.168.1.10\npod_cidr: 192.168.0.0/16\n";
    assert_eq!(at(src, Kind::CidrOverlap), (4, 11));
}

#[test]
fn service_cidr_overlaps_the_hosts() {
    let src = "hosts:\n  - name: k8scp01\n    address: 10.100.0.10\n";
    // The default service network 10.96.0.0/12 holds 10.100.0.10.
    let d = only(src, Kind::CidrOverlap);
    assert!(
        d.message.contains("service_cidr 10.96.0.0/12"),
        "{}",
        d.message
    );
}

#[test]
fn default_pod_cidr_avoids_the_hosts() {
    let src = "hosts:\n  - name: k8scp01\n    address: 192.168.1.10\n";
    let c = model::load(src).cluster.unwrap();
    assert_eq!(c.pod_cidr().to_string(), "10.244.0.0/16");
}

#[test]
fn malformed_and_unsupported_versions() {
    assert_eq!(
        at(
            "hosts: [k8scp01]\nkubernetes_version: \"1.x\"\n",
            Kind::InvalidVersion
        ),
        (2, 21)
    );
    assert_eq!(
        at(
            "hosts: [k8scp01]\nkubernetes_version: \"1.20\"\n",
            Kind::UnsupportedVersion
        ),
        (2, 21)
    );
    // An unquoted 1.30 keeps its text: it is not read as the number 1.3.
    let c = model::load("hosts: [k8scp01]\nkubernetes_version: 1.30\n")
        .cluster
        .unwrap();
    assert_eq!(c.kubernetes.to_string(), "1.30");
}

#[test]
fn versions_outside_1_28_to_1_37_are_unsupported() {
    for (text, ok) in [
        ("1.27", false),
        ("1.28", true),
        ("1.37", true),
        ("1.37.1", true),
        ("1.38", false),
    ] {
        let src = format!("hosts: [k8scp01]\nkubernetes_version: \"{text}\"\n");
        let found: Vec<_> = diagnostics(&src)
            .into_iter()
            .filter(|d| d.kind == Kind::UnsupportedVersion)
            .collect();
        assert_eq!(found.is_empty(), ok, "{text}: {found:#?}");
        if let Some(d) = found.first() {
            assert_eq!(d.expected.as_deref(), Some("a version from 1.28 to 1.37"));
            assert_eq!(
                d.hint.as_deref(),
                Some("use \"1.37\", the newest supported minor")
            );
        }
    }
    let c = model::load("hosts: [k8scp01]\n").cluster.unwrap();
    assert_eq!(c.kubernetes.to_string(), "1.37", "the default");
}

/// A minor past its upstream end of life installs, with a warning that names the date.
#[test]
fn past_end_of_life_is_a_warning_with_the_date() {
    let today = Some(Date::new(2026, 11, 27));
    let src = "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\nkubernetes_version: \"1.34\"\n";
    let v = model::load_on(src, today);
    assert!(v.cluster.is_some(), "a warning, not an error");
    let found: Vec<_> = v
        .diagnostics
        .iter()
        .filter(|d| d.kind == Kind::PastEndOfLife)
        .collect();
    assert_eq!(found.len(), 1, "{:#?}", v.diagnostics);
    let d = found[0];
    assert_eq!(d.severity, Severity::Warning);
    let span = d.span.unwrap();
    assert_eq!((span.line, span.column), (2, 21));
    assert_eq!(
        d.message,
        "Kubernetes 1.34 reached its upstream end of life on 2026-10-27: it gets no security fixes"
    );
    assert_eq!(d.found.as_deref(), Some("1.34, today is 2026-11-27"));
    assert_eq!(
        d.hint.as_deref(),
        Some(
            "upgrade to \"1.37\", the newest minor this kubeforge installs (supported upstream until 2027-10-28)"
        )
    );
    // The end-of-life day itself is still supported; without a date there is no such rule.
    let on_the_day = model::load_on(src, Some(Date::new(2026, 10, 27)));
    assert!(
        !on_the_day
            .diagnostics
            .iter()
            .any(|d| d.kind == Kind::PastEndOfLife)
    );
    assert!(
        !model::load(src)
            .diagnostics
            .iter()
            .any(|d| d.kind == Kind::PastEndOfLife)
    );
    // The default minor is supported today, and so are 1.35 and 1.36.
    for src in [
        "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\n",
        "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\nkubernetes_version: \"1.35\"\n",
        "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\nkubernetes_version: \"1.36.2\"\n",
    ] {
        let v = model::load_on(src, today);
        assert!(v.diagnostics.is_empty(), "{src}: {:#?}", v.diagnostics);
    }
}

/// The default itself past its end of life: no place to point at, and the hint says so.
#[test]
fn the_default_past_end_of_life() {
    let v = model::load_on(
        "hosts: [k8scp01, k8scp02, k8scp03, k8s01]\n",
        Some(Date::new(2027, 10, 29)),
    );
    let d = v
        .diagnostics
        .iter()
        .find(|d| d.kind == Kind::PastEndOfLife)
        .expect("a warning");
    assert_eq!(d.span, None);
    assert!(d.message.starts_with("the default Kubernetes 1.37 reached"));
    assert_eq!(
        d.hint.as_deref(),
        Some("a newer kubeforge installs a supported minor")
    );
}

#[test]
fn invalid_values() {
    assert_eq!(
        at("hosts: [k8scp01]\nvip: 10.0.0\n", Kind::InvalidValue),
        (2, 6)
    );
    assert_eq!(
        at(
            "hosts: [k8scp01]\nssh:\n  port: 70000\n",
            Kind::InvalidValue
        ),
        (3, 9)
    );
    assert_eq!(
        at(
            "hosts: [k8scp01]\npod_cidr: 10.0.0.0/33\n",
            Kind::InvalidValue
        ),
        (2, 11)
    );
    let d = only(
        "hosts: [k8scp01]\ncalico:\n  encapsulation: vxlna\n",
        Kind::InvalidValue,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `vxlan`?"));
}

#[test]
fn endpoint_port_must_be_free() {
    assert_eq!(
        at(
            "hosts: [k8scp01]\nendpoint_port: 6443\n",
            Kind::ReservedPort
        ),
        (2, 16)
    );
    assert_eq!(
        at(
            "hosts: [k8scp01]\nendpoint_port: 30080\n",
            Kind::ReservedPort
        ),
        (2, 16)
    );
}

#[test]
fn bundle_source_needs_a_directory() {
    assert_eq!(
        at(
            "hosts: [k8scp01]\npackages:\n  source: bundle\n",
            Kind::MissingKey
        ),
        (3, 11)
    );
}

fn quorum(count: usize) -> Option<String> {
    let mut src = String::from("hosts:\n");
    for i in 1..=count {
        src.push_str(&format!("  - k8scp{i:02}\n"));
    }
    src.push_str("  - k8s01\n");
    let all = diagnostics(&src);
    let q: Vec<_> = all.iter().filter(|d| d.kind == Kind::Quorum).collect();
    assert!(q.len() <= 1);
    q.first().map(|d| {
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.span.map(|s| (s.line, s.column)), Some((1, 1)));
        d.message.clone()
    })
}

#[test]
fn quorum_arithmetic() {
    assert!(
        quorum(1)
            .unwrap()
            .starts_with("1 control-plane node tolerates no failure")
    );
    assert!(
        quorum(2)
            .unwrap()
            .starts_with("2 control-plane nodes tolerate no failure")
    );
    assert_eq!(quorum(3), None);
    assert_eq!(
        quorum(4).unwrap(),
        "4 control-plane nodes tolerate 1 failure, as 3 do"
    );
    assert_eq!(quorum(5), None);
    assert_eq!(
        quorum(6).unwrap(),
        "6 control-plane nodes tolerate 2 failures, as 5 do"
    );
}

#[test]
fn no_workers_warns_unless_control_planes_take_workloads() {
    let src = "hosts: [k8scp01, k8scp02, k8scp03]\n";
    assert_eq!(only(src, Kind::NoWorkers).severity, Severity::Warning);
    let with = "hosts: [k8scp01, k8scp02, k8scp03]\ncontrol_plane_workloads: true\n";
    assert!(diagnostics(with).is_empty());
}

#[test]
fn fully_qualified_names_give_the_domain() {
    let c = model::load("hosts:\n  - k8scp01.local.net\n  - k8s01.local.net\n")
        .cluster
        .unwrap();
    assert_eq!(c.domain.as_deref(), Some("local.net"));
    assert_eq!(c.control_plane_endpoint(), "k8scp.local.net:8443");
    assert_eq!(c.nodes[0].node_name, "k8scp01");
}

// ---- The Ansible INI hosts file ----

const ARTICLE: &str = "[k8sControlPlane]\nk8scp01\nk8scp02\nk8scp03\n[k8sNode]\nk8s01\n";

#[test]
fn the_articles_hosts_file_is_accepted_unchanged() {
    let v = model::load(ARTICLE);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let c = v.cluster.unwrap();
    assert_eq!(c.control_planes().count(), 3);
    assert_eq!(c.workers().count(), 1);
}

#[test]
fn ini_host_variables_and_ranges() {
    let src = "[k8sControlPlane]\nk8scp[01:03] ansible_user=admin\n[k8sNode]\nk8s01 ansible_host=10.0.0.21 ansible_port=2222 ansible_ssh_private_key_file=~/.ssh/k8s\n[all:vars]\nkubeforge_vip=10.0.0.10\n";
    let v = model::load(src);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let c = v.cluster.unwrap();
    assert_eq!(
        c.control_planes()
            .map(|n| n.node_name.as_str())
            .collect::<Vec<_>>(),
        ["k8scp01", "k8scp02", "k8scp03"]
    );
    let w = c.workers().next().unwrap();
    assert_eq!(w.ssh.port, Some(2222));
    assert_eq!(w.ip().unwrap().to_string(), "10.0.0.21");
    assert_eq!(c.nodes[0].ssh.user.as_deref(), Some("admin"));
    assert_eq!(c.vip.unwrap().value.to_string(), "10.0.0.10");
}

#[test]
fn an_ssh_config_file_is_read_in_both_formats() {
    let yaml = "hosts:\n  - k8scp01\nssh:\n  config: /etc/kubeforge/ssh_config\n";
    let c = model::load(yaml).cluster.unwrap();
    assert_eq!(
        c.ssh_config.as_deref(),
        Some(std::path::Path::new("/etc/kubeforge/ssh_config"))
    );
    let ini = "[k8sControlPlane]\nk8scp[01:03]\n[k8sNode]\nk8s01\n[all:vars]\nkubeforge_ssh_config=/etc/kubeforge/ssh_config\n";
    let v = model::load(ini);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    assert_eq!(v.cluster.unwrap().ssh_config, c.ssh_config);
    assert_eq!(model::load(OK3).cluster.unwrap().ssh_config, None);
}

#[test]
fn ini_group_vars_apply_to_members() {
    let src = "[k8sControlPlane]\nk8scp01\n[k8sControlPlane:vars]\nansible_user=ops\n";
    let c = model::load(src).cluster.unwrap();
    assert_eq!(c.nodes[0].ssh.user.as_deref(), Some("ops"));
}

#[test]
fn ini_unclosed_section() {
    assert_eq!(at("[k8sControlPlane\nk8scp01\n", Kind::Syntax), (1, 1));
}

#[test]
fn ini_bad_group_name() {
    assert_eq!(at("[k8s control]\nk8scp01\n", Kind::Syntax), (1, 2));
}

#[test]
fn ini_word_that_is_not_a_variable() {
    assert_eq!(at("k8scp01 k8scp02\n", Kind::Syntax), (1, 9));
}

#[test]
fn ini_unclosed_quote() {
    assert_eq!(at("k8scp01 ansible_user='bob\n", Kind::Syntax), (1, 9));
}

#[test]
fn ini_bad_range() {
    assert_eq!(at("k8scp[01:\n", Kind::Syntax), (1, 1));
}

#[test]
fn ini_duplicate_in_one_group() {
    assert_eq!(
        at("[k8sControlPlane]\nk8scp01\nk8scp01\n", Kind::DuplicateHost),
        (3, 1)
    );
    // Listing a host in two groups is Ansible's way of giving it both; not a duplicate.
    assert!(
        model::load("[k8sControlPlane]\nk8scp01\n[cluster]\nk8scp01\n")
            .cluster
            .is_some()
    );
}

#[test]
fn ini_host_in_both_role_groups() {
    let all = diagnostics("[k8sControlPlane]\nk8scp01\nk8s01\n[k8sNode]\nk8s01\n");
    let errors: Vec<_> = all
        .iter()
        .filter(|d| d.kind == Kind::RoleMismatch && d.is_error())
        .collect();
    assert_eq!(errors.len(), 1, "{all:#?}");
    assert_eq!(errors[0].span.map(|s| (s.line, s.column)), Some((4, 2)));
}

#[test]
fn ini_unknown_kubeforge_variable() {
    let d = only(
        "k8scp01\n[all:vars]\nkubeforge_vpi=10.0.0.1\n",
        Kind::UnknownKey,
    );
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (3, 1));
    assert_eq!(d.hint.as_deref(), Some("did you mean `kubeforge_vip`?"));
}

#[test]
fn ini_other_variables_are_ignored_with_a_warning_that_never_shows_their_value() {
    let d = only(
        "k8scp01 ansible_become_password=hunter2\n",
        Kind::IgnoredVariable,
    );
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (1, 9));
    assert!(!format!("{d:?}").contains("hunter2"));
}

#[test]
fn ini_setting_in_the_wrong_group() {
    assert_eq!(
        at(
            "[k8sControlPlane]\nk8scp01\n[k8sControlPlane:vars]\nkubeforge_vip=10.0.0.5\n",
            Kind::UnknownKey
        ),
        (4, 1)
    );
}

#[test]
fn ini_invalid_value_points_at_the_value() {
    assert_eq!(
        at("k8scp01 ansible_host=10.0.0.300\n", Kind::InvalidValue),
        (1, 22)
    );
    assert_eq!(
        at(
            "k8scp01\n[all:vars]\nkubeforge_vip = 10.0.0\n",
            Kind::InvalidValue
        ),
        (3, 17)
    );
}

#[test]
fn unconventional_names_make_the_first_control_plane_host_listed_the_first() {
    let v = model::load(
        "[kube_control_plane]\nnode2\nnode1\nnode3\n[etcd:children]\nkube_control_plane\n[kube_node]\nnode4\n",
    );
    let c = v.cluster.unwrap_or_else(|| panic!("{:#?}", v.diagnostics));
    assert_eq!(c.first_control_plane().node_name, "node2");
    let order: Vec<_> = c.nodes.iter().map(|n| n.node_name.as_str()).collect();
    assert_eq!(order, ["node2", "node1", "node3", "node4"]);
    // With the naming convention in use, 01 is still the first, wherever it is listed.
    let v = model::load("hosts:\n  - k8scp02\n  - k8scp01\n  - k8s01\n");
    assert_eq!(
        v.cluster.unwrap().first_control_plane().node_name,
        "k8scp01"
    );
    // ... and without 01, the lowest number, wherever it is listed.
    let v = model::load("hosts:\n  - k8scp03\n  - k8scp02\n  - k8s01\n");
    assert_eq!(
        v.cluster.unwrap().first_control_plane().node_name,
        "k8scp02"
    );
}

#[test]
fn kubesprays_ip_is_the_nodes_address_for_the_cluster_and_access_ip_stands_in_for_it() {
    let v = model::load(
        "[kube_control_plane]\nnode1 ansible_host=198.51.100.11 ip=10.3.0.1\nnode2 ansible_host=198.51.100.12 access_ip=10.3.0.2\nnode3 ip=10.3.0.3 access_ip=10.3.0.3\n",
    );
    assert!(
        v.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        v.diagnostics
    );
    let c = v.cluster.unwrap();
    let ips: Vec<_> = c
        .nodes
        .iter()
        .map(|n| n.ip().unwrap().to_string())
        .collect();
    assert_eq!(ips, ["10.3.0.1", "10.3.0.2", "10.3.0.3"]);
    // ssh still connects where the inventory says.
    assert_eq!(c.nodes[0].destination(), "198.51.100.11");
    assert_eq!(c.nodes[2].destination(), "node3");
    // Two different addresses: ip wins, and the warning points at access_ip's value.
    let d = only(
        "[kube_control_plane]\nnode1 ip=10.3.0.1 access_ip=10.9.0.1\n",
        Kind::IgnoredVariable,
    );
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (2, 29));
    // Not an address: an error at the value.
    assert_eq!(
        at(
            "[kube_control_plane]\nnode1 ip=10.3.0.300\n",
            Kind::InvalidValue
        ),
        (2, 10)
    );
    // One host's address in a group's variables is ignored, with a warning.
    let d = only(
        "[kube_control_plane]\nnode1\n[kube_control_plane:vars]\nip=10.3.0.1\n",
        Kind::IgnoredVariable,
    );
    assert_eq!((d.span.unwrap().line, d.span.unwrap().column), (4, 1));
}

#[test]
fn cluster_yaml_takes_a_hosts_ip() {
    let v =
        model::load("hosts:\n  - name: k8scp01\n    address: 198.51.100.11\n    ip: 10.3.0.1\n");
    let c = v.cluster.unwrap_or_else(|| panic!("{:#?}", v.diagnostics));
    assert_eq!(c.nodes[0].ip().unwrap().to_string(), "10.3.0.1");
    assert_eq!(c.nodes[0].destination(), "198.51.100.11");
}

#[test]
fn api_version_is_optional_and_only_kubeforge_v1() {
    let v = model::load("apiVersion: kubeforge/v1\nhosts:\n  - k8scp01\n  - k8s01\n");
    assert!(
        v.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        v.diagnostics
    );
    assert_eq!(
        at(
            "apiVersion: kubeforge/v2\nhosts:\n  - k8scp01\n",
            Kind::InvalidValue
        ),
        (1, 13)
    );
    let d = only(
        "apiversion: kubeforge/v1\nhosts:\n  - k8scp01\n",
        Kind::UnknownKey,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `apiVersion`?"));
}

/// Every name `check` accepts for `cni` and `calico.encapsulation` is one the model knows.
#[test]
fn every_pod_network_and_encapsulation_name_has_its_kind() {
    use kubeforge_core::inventory::settings::{CNIS, ENCAPSULATIONS};
    use kubeforge_core::model::{Cni, Encapsulation};
    for name in CNIS {
        assert_eq!(Cni::parse(name).map(Cni::as_str), Some(*name));
    }
    for name in ENCAPSULATIONS {
        let e = Encapsulation::parse(name).unwrap();
        let c = model::load(&format!(
            "hosts:\n  - k8scp01\n  - k8s01\ncalico:\n  encapsulation: {name}\n"
        ))
        .cluster
        .unwrap();
        assert_eq!(c.encapsulation, e);
    }
    assert_eq!(Cni::parse("weave"), None);
}
