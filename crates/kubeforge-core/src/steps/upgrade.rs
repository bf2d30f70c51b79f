//! `kubeforge upgrade`: the cluster moved to another Kubernetes version the way kubeadm's
//! documentation says, one node at a time, with its own list of phases run by the same engine
//! as a build:
//!
//! 1. `snapshot` (the first control-plane node): every check first, in its `settle`, so that a
//!    refused upgrade changes nothing (one minor at a time, never a downgrade, every node Ready,
//!    one healthy etcd member per control-plane node, the API answering, cgroup v2 where the
//!    target needs it, `kubeadm upgrade plan` agreeing, the target in pkgs.k8s.io's repository
//!    or the bundle); then an etcd snapshot, verified by its SHA-256 trailer.
//! 2. `images` (a bundle only, every node): the new bundle's images imported beforehand (the
//!    last control-plane node's upgrade rolls kube-proxy out to every node).
//! 3. each control-plane node in turn, the first first: `backend-out` (its kube-apiserver out of
//!    every control-plane node's HAProxy, in maintenance: no request reaches it while it
//!    restarts), `upgrade-control-plane` (drained, the new kubeadm, `kubeadm upgrade apply` on
//!    the first or `upgrade node`, the new kubelet and kubectl, the kubelet restarted, waited
//!    for: its static pods on the new version and ready, its etcd member healthy, the API
//!    answering through the VIP; uncordoned; the admin kubeconfigs copied again, as kubeadm
//!    renewed the certificates), `backend-in`. The VIP stays where it is: the node's HAProxy and
//!    keepalived keep serving throughout, and moving the VIP breaks the connections in flight.
//! 4. per batch of workers (`--max-unavailable`): `drain-workers` on the first control-plane
//!    node, `upgrade-workers` (kubeadm, `kubeadm upgrade node`, kubelet, waited for),
//!    `uncordon-workers`.
//!
//! Every step is guarded by the facts: a node whose kubelet and static pods run the target is
//! left alone, so an interrupted upgrade continues from where it stopped, and a second one
//! changes nothing. A node kubeforge cordons is marked ([`CORDONED`]); a node found cordoned is
//! drained all the same before it is touched, and uncordoned afterwards only if it bears the
//! mark (a node its operator cordoned stays cordoned).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::facts::cluster::{ClusterFacts, MemberProblem};
use crate::facts::{FactQuery, HostFacts, Read};
use crate::model::{Cluster, Node, Role};
use crate::resources::{
    Command, Condition, Guard, Notify, Package, Packages, Parse, Resource, Wait,
};
use crate::shell::quote;
use crate::values::Values;
use crate::version::KubeVersion;

use super::runtime::{self, KUBERNETES_PACKAGE_VERSION};
use super::{Ctx, ETCDCTL, HostSet, KUBECTL, Phase, Random, Step, StepError};

/// The annotation kubeforge puts on a node it cordons for an upgrade.
pub const CORDONED: &str = "kubeforge.io/cordoned-for";
/// Where the snapshot taken before an upgrade is kept on the first control-plane node.
pub const BACKUP_DIR: &str = "/var/lib/kubeforge/backups";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
const NODE_DEADLINE: Duration = Duration::from_secs(300);

/// The snapshot's path on the first control-plane node before an upgrade to `version`.
pub fn snapshot_path(version: &str) -> String {
    format!("{BACKUP_DIR}/etcd-before-{version}.db")
}

/// The phases of an upgrade, for the cluster's workers in batches of `max_unavailable`.
pub struct UpgradeJob {
    snapshot: bool,
    upgrade: bool,
    turns: Vec<Turn>,
}

impl UpgradeJob {
    /// The whole upgrade.
    pub fn new(cluster: &Cluster, max_unavailable: usize) -> Self {
        let mut turns = Vec::new();
        let mut control_planes = HostSet::First.select(cluster);
        control_planes.extend(HostSet::OtherControlPlanes.select(cluster));
        for node in control_planes {
            turns.extend(Turn::of(
                [node.node_name.clone()].into(),
                [Stage::BackendOut, Stage::ControlPlane, Stage::BackendIn],
            ));
        }
        let workers: Vec<String> = HostSet::Workers
            .select(cluster)
            .iter()
            .map(|n| n.node_name.clone())
            .collect();
        for batch in workers.chunks(max_unavailable.max(1)) {
            turns.extend(Turn::of(
                batch.iter().cloned().collect(),
                [Stage::DrainWorkers, Stage::Workers, Stage::UncordonWorkers],
            ));
        }
        UpgradeJob {
            snapshot: true,
            upgrade: true,
            turns,
        }
    }

    /// Only the checks and the snapshot (the CLI copies the snapshot to this machine before
    /// the first node is touched).
    pub fn snapshot_only(mut self) -> Self {
        self.upgrade = false;
        self
    }

    /// Everything after the snapshot.
    pub fn without_snapshot(mut self) -> Self {
        self.snapshot = false;
        self
    }
}

impl super::Job for UpgradeJob {
    fn phases(&self) -> Vec<&dyn Phase> {
        let mut out: Vec<&dyn Phase> = Vec::new();
        if self.snapshot {
            out.push(&Snapshot);
        }
        if self.upgrade {
            out.push(&Images);
            out.extend(self.turns.iter().map(|t| t as &dyn Phase));
        }
        out
    }
}

/// The exact target (`v1.28.8`): the bundle's, the inventory's patch, or the patch the first
/// control-plane node's apt found (a value), else unknown yet.
pub fn exact_target(ctx: &Ctx) -> Option<String> {
    let version = runtime::target_version(ctx);
    if let Some(patch) = version.patch {
        return Some(format!("v1.{}.{patch}", version.minor));
    }
    let debian = ctx.values.get(KUBERNETES_PACKAGE_VERSION)?;
    let upstream = debian.split('-').next()?;
    KubeVersion::parse_any(upstream)
        .ok()
        .filter(|v| v.patch.is_some() && v.minor == version.minor)
        .map(|v| format!("v{v}"))
}

/// The target as the snapshot's name and the CLI show it: `v1.28.8`, or `v1.29` when only the
/// minor is known.
pub fn shown_target(ctx: &Ctx) -> String {
    format!("v{}", runtime::target_version(ctx))
}

/// How far a node is with an upgrade to `target`, from its facts and the cluster's.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// kubeadm wrote the target's static pod manifests (control-plane nodes; workers: true).
    manifests: bool,
    /// Its kubelet reports the target.
    kubelet: bool,
}

impl Progress {
    fn of(node: &Node, facts: &HostFacts, status: Option<&str>, target: Option<&str>) -> Self {
        let Some(target) = target else {
            return Progress::default();
        };
        let manifests = node.role != Role::ControlPlane
            || crate::resources::VERSIONED_STATIC_PODS.iter().all(|c| {
                facts
                    .kubeadm
                    .manifest_images
                    .get(&format!("{c}.yaml"))
                    .is_some_and(|i| i.ends_with(&format!(":{target}")))
            });
        Progress {
            manifests,
            kubelet: status == Some(target),
        }
    }
    fn done(self) -> bool {
        self.manifests && self.kubelet
    }
}

/// The kubelet version of `name` as the API reports it, from the facts of any node that asked.
fn kubelet_version<'f>(ctx: &'f Ctx, name: &str, own: &'f HostFacts) -> Option<&'f str> {
    let from_cluster = |f: &'f HostFacts| {
        f.cluster
            .as_ref()
            .and_then(|c| c.node(name))
            .map(|n| n.kubelet_version.as_str())
    };
    from_cluster(own)
        .or_else(|| own.own_node.as_ref().map(|n| n.kubelet_version.as_str()))
        .or_else(|| {
            ctx.facts
                .into_iter()
                .flat_map(|f| f.values())
                .find_map(from_cluster)
        })
        .filter(|v| !v.is_empty())
}

/// The facts every upgrade phase decides from.
fn upgrade_query(ctx: &Ctx, node: &Node) -> FactQuery {
    let mut q = super::cluster_query(node);
    // Each node's own view: its steps judge its pods and its drain from it.
    q.cluster_once = false;
    q.kubeadm = true;
    q.system = true;
    q.packages
        .extend(["kubeadm", "kubelet", "kubectl"].map(String::from));
    match node.role {
        Role::Worker => q.registered = Some(node.node_name.clone()),
        Role::ControlPlane => {
            q.all_pods = true;
            q.haproxy = true;
            q.merge(&super::kubeconfigs::Kubeconfigs.query(ctx, node));
        }
    }
    q
}

/// Phase `snapshot`: the checks, then an etcd snapshot on the first control-plane node.
struct Snapshot;

impl Phase for Snapshot {
    fn name(&self) -> &'static str {
        "snapshot"
    }
    fn title(&self) -> &'static str {
        "check that the cluster can be upgraded, then an etcd snapshot, verified"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::First.select(cluster)
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = upgrade_query(ctx, node);
        q.file(&snapshot_path(&shown_target(ctx)), Read::Hash);
        // Without a patch, kubeadm looks up the newest itself.
        q.upgrade_plan = Some(exact_target(ctx).unwrap_or_default());
        if ctx.bundle.is_none() {
            q.repository = Some(runtime::target_version(ctx).apt_repository());
        }
        q
    }
    fn settle(
        &self,
        ctx: &Ctx,
        facts: &BTreeMap<String, HostFacts>,
        _values: &mut Values,
        _random: Random,
    ) -> Result<(), StepError> {
        check(ctx, facts).map_err(StepError::Cluster)
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let target = exact_target(ctx);
        let needed = ctx.cluster.nodes.iter().any(|n| {
            let f = ctx.facts_of(&n.node_name, node, facts);
            let status = f.and_then(|f| kubelet_version(ctx, &n.node_name, f));
            !Progress::of(n, f.unwrap_or(facts), status, target.as_deref()).done()
        });
        let path = snapshot_path(&shown_target(ctx));
        let taken = facts.files.get(&path).is_some_and(Option::is_some);
        let script = format!(
            "{}\ninstall -d -m 0700 {BACKUP_DIR}\nchmod 0600 \"$f\"\nmv -f \"$f\" {}",
            snapshot_script(node, "/var/lib/etcd/kubeforge-snapshot.db"),
            quote(&path),
        );
        Ok(vec![Step::new(
            "etcd-snapshot",
            vec![Resource::Command(
                Command::new(
                    format!("etcd snapshot before the upgrade, verified: {path}"),
                    script,
                )
                .unless(Guard::Done(!needed || taken))
                .timeout(Duration::from_secs(300)),
            )],
        )])
    }
}

/// An etcd snapshot of `node`'s member saved to `$f` (`file`, under /var/lib/etcd: the etcd
/// pod writes it there) and verified by its SHA-256 trailer.
pub(super) fn snapshot_script(node: &Node, file: &str) -> String {
    format!(
        r#"f={file}
rm -f "$f"
{KUBECTL} -n kube-system exec {pod} -- {ETCDCTL} snapshot save "$f" >/dev/null
s=$(stat -c %s "$f")
if [ $((s % 512)) -ne 32 ]; then echo "the snapshot ($s bytes) has no SHA-256 trailer" >&2; exit 1; fi
if [ "$(head -c $((s - 32)) "$f" | sha256sum | cut -d' ' -f1)" != "$(tail -c 32 "$f" | od -An -tx1 | tr -d ' \n')" ]; then echo "the snapshot does not match its SHA-256 trailer" >&2; exit 1; fi"#,
        file = quote(file),
        pod = quote(&format!("etcd-{}", node.node_name)),
    )
}

/// Whether the cluster may be upgraded to the target, from every host's facts; why not.
pub fn check(ctx: &Ctx, facts: &BTreeMap<String, HostFacts>) -> Result<(), String> {
    let target = runtime::target_version(ctx);
    let first = ctx.cluster.first_control_plane();
    let api = facts
        .get(&first.node_name)
        .and_then(|f| f.cluster.as_ref())
        .ok_or_else(|| {
            format!(
                "{} has no cluster to upgrade (no admin kubeconfig): build it with `kubeforge apply` first",
                first.node_name
            )
        })?;
    if !api.api_ready() {
        return Err(format!(
            "the API does not answer through the endpoint ({}): an upgrade needs a healthy cluster",
            api.readyz
        ));
    }
    let mut problems = Vec::new();
    let mut lowest: Option<(KubeVersion, String)> = None;
    // A node kubeforge cordoned for the upgrade and has not finished is in the middle of its
    // turn (a run was interrupted): it is finished, not judged. Its kubelet or etcd member may
    // be restarting; its turn waits for both.
    let mid_turn = |name: &str| {
        api.node(name)
            .is_some_and(|s| s.annotations.contains_key(CORDONED))
    };
    for node in &ctx.cluster.nodes {
        let name = &node.node_name;
        let Some(status) = api.node(name) else {
            problems.push(format!(
                "{name} is not in the cluster: run `kubeforge apply` to add it, then upgrade"
            ));
            continue;
        };
        if status.ready != Some(true) && !mid_turn(name) {
            problems.push(format!(
                "{name} is not Ready ({}): an upgrade drains nodes one by one and needs every node Ready; fix it, or remove it from the cluster",
                if status.message.is_empty() { "no reason given" } else { &status.message }
            ));
        }
        let mut versions = vec![("kubelet", status.kubelet_version.clone())];
        if node.role == Role::ControlPlane
            && let Some(image) = facts
                .get(name)
                .and_then(|f| f.kubeadm.manifest_images.get("kube-apiserver.yaml"))
        {
            versions.push((
                "kube-apiserver",
                image.rsplit_once(':').map_or("", |(_, t)| t).to_string(),
            ));
        }
        for (what, text) in versions {
            let Ok(v) = KubeVersion::parse_any(&text) else {
                problems.push(format!(
                    "{name}: its {what} version {text:?} cannot be read"
                ));
                continue;
            };
            if newer(v, target) {
                problems.push(format!(
                    "{name}'s {what} runs {v}, newer than the target {target}: kubeforge never downgrades"
                ));
            }
            if lowest.as_ref().is_none_or(|(l, _)| v < *l) {
                lowest = Some((v, format!("{name}'s {what}")));
            }
        }
        if target.requires_cgroup_v2() && facts.get(name).is_some_and(|f| !f.system.cgroup_v2) {
            problems.push(format!(
                "{name} runs cgroup v1, and the kubelet of Kubernetes 1.{} refuses it: boot it with cgroup v2 first",
                target.minor
            ));
        }
    }
    let theirs = facts.get(&first.node_name);
    problems.extend(kubeadm_disagrees(ctx, api, theirs));
    if ctx.bundle.is_none() {
        problems.extend(not_in_repository(target, first, theirs));
    }
    if let Some((low, who)) = &lowest
        && target.minor > low.minor + 1
    {
        problems.push(format!(
            "{who} runs {low}, and Kubernetes is upgraded one minor at a time: upgrade to 1.{} first (`kubeforge upgrade --to 1.{}`), then to 1.{}",
            low.minor + 1,
            low.minor + 1,
            target.minor
        ));
    }
    for cp in ctx.cluster.control_planes() {
        match api.member_problem(&cp.node_name) {
            Some(MemberProblem::Unhealthy(_)) if mid_turn(&cp.node_name) => {}
            Some(p) => problems.push(p.text()),
            None => {}
        }
    }
    let (healthy, voters) = api.quorum();
    if voters > 0 && healthy <= voters / 2 {
        problems.push(format!(
            "etcd has no quorum: {healthy} of {voters} members healthy, {} needed",
            voters / 2 + 1
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the upgrade to {target} is refused, nothing was changed:\n  - {}",
            problems.join("\n  - ")
        ))
    }
}

/// `kubeadm upgrade plan` on the first control-plane node refused, for a reason the cluster's
/// own state does not explain (no CoreDNS to migrate).
fn kubeadm_disagrees(ctx: &Ctx, api: &ClusterFacts, first: Option<&HostFacts>) -> Option<String> {
    let plan = first?.upgrade_plan.as_ref()?;
    let coredns = api.pods.iter().any(|p| p.name.starts_with("coredns-"));
    let explained = |e: &&str| !coredns && e.starts_with("CoreDNS");
    let errors = plan.errors();
    (plan.status != 0 && (errors.is_empty() || !errors.iter().all(explained))).then(|| {
        format!(
            "`kubeadm upgrade plan {}` on {} does not agree (exit {}):\n      {}",
            exact_target(ctx).unwrap_or_default(),
            ctx.cluster.first_control_plane().node_name,
            plan.status,
            plan.tail.join("\n      ")
        )
    })
}

/// pkgs.k8s.io, as the first control-plane node reads it, lacks the target.
fn not_in_repository(
    target: KubeVersion,
    first: &Node,
    facts: Option<&HostFacts>,
) -> Option<String> {
    match facts?.repository.as_ref()? {
        Ok(versions) => {
            let prefix = match target.patch {
                Some(p) => format!("1.{}.{p}-", target.minor),
                None => format!("1.{}.", target.minor),
            };
            (!versions.iter().any(|v| v.starts_with(&prefix))).then(|| {
                format!(
                    "{} has no kubeadm {target} (it offers {}): pick one it has with --to",
                    target.apt_repository(),
                    if versions.is_empty() {
                        "none".to_string()
                    } else {
                        versions.join(", ")
                    }
                )
            })
        }
        Err(why) => Some(format!(
            "{} cannot read {} ({why}): the new packages come from there",
            first.node_name,
            target.apt_repository()
        )),
    }
}

/// `a` is newer than `b` (a minor alone compares by its minor).
fn newer(a: KubeVersion, b: KubeVersion) -> bool {
    match (a.minor.cmp(&b.minor), a.patch, b.patch) {
        (std::cmp::Ordering::Greater, _, _) => true,
        (std::cmp::Ordering::Equal, Some(x), Some(y)) => x > y,
        _ => false,
    }
}

/// Phase `images`: a bundle's images, imported on every node before any node's turn.
struct Images;

impl Phase for Images {
    fn name(&self) -> &'static str {
        "images"
    }
    fn title(&self) -> &'static str {
        "the new bundle's images imported on every node (kube-proxy rolls out to all at once)"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::All.select(cluster)
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = super::steps_query(self, ctx, node);
        q.images = true;
        q
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(match ctx.bundle {
            Some(bundle) => vec![Step::new("images", runtime::images(bundle, node, facts))],
            None => Vec::new(),
        })
    }
}

/// The new programs `names` (`kubeadm`; `kubelet`, `kubectl`): pkgs.k8s.io's packages at the
/// target, held, or the bundle's files (with the kubelet's unit).
fn programs(ctx: &Ctx, names: &[&str], first: bool) -> Vec<Resource> {
    let mut out = Vec::new();
    match ctx.bundle {
        Some(bundle) => {
            for name in names {
                out.extend(runtime::upload(
                    bundle,
                    &format!("bin/{name}"),
                    &format!("/usr/local/bin/{name}"),
                    0o755,
                ));
            }
            if names.contains(&"kubelet") {
                for (path, text) in [
                    (
                        "/etc/systemd/system/kubelet.service",
                        &bundle.kubelet_service,
                    ),
                    (
                        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
                        &bundle.kubeadm_dropin,
                    ),
                ] {
                    out.push(Resource::File(
                        crate::resources::File::new(path, text.clone(), 0o644)
                            .notify("", Notify::DaemonReload),
                    ));
                }
            }
        }
        None => {
            let version = runtime::target_version(ctx);
            out.push(runtime::kubernetes_repository(version));
            let spec = ctx
                .values
                .get(KUBERNETES_PACKAGE_VERSION)
                .map(str::to_string)
                .unwrap_or_else(|| format!("1.{}.*", version.minor));
            out.push(Resource::Packages(Packages {
                packages: names.iter().map(|n| Package::at(n, &spec)).collect(),
                hold: true,
            }));
            if first {
                out.push(Resource::Command(
                    Command::new(
                        format!(
                            "note the kubeadm version installed here, for every other node (the newest 1.{} patch)",
                            version.minor
                        ),
                        "dpkg-query -W -f='${Version}\\n' kubeadm",
                    )
                    .capture(KUBERNETES_PACKAGE_VERSION, false, Parse::LastLine)
                    .unless(Guard::Done(ctx.values.contains(KUBERNETES_PACKAGE_VERSION))),
                ));
            }
        }
    }
    out
}

/// The preflight errors kubeadm's upgrade is told to ignore, each with what explains it.
fn ignored(ctx: &Ctx, facts: &HostFacts) -> (String, Vec<&'static str>) {
    let mut checks = Vec::new();
    let mut why = Vec::new();
    let coredns = facts
        .cluster
        .as_ref()
        .is_some_and(|c| c.pods.iter().any(|p| p.name.starts_with("coredns-")));
    if !coredns {
        checks.extend(["CoreDNSUnsupportedPlugins", "CoreDNSMigration"]);
        why.push("CoreDNS's checks: the cluster runs no CoreDNS");
    }
    if ctx.bundle.is_some() {
        checks.push("ImagePull");
        why.push("ImagePull: the images come from the bundle, imported beforehand");
    }
    let flag = if checks.is_empty() {
        String::new()
    } else {
        format!(" --ignore-preflight-errors={}", checks.join(","))
    };
    (flag, why)
}

/// The steps of one node's upgrade, after it is drained and before it is uncordoned.
fn node_steps(
    ctx: &Ctx,
    node: &Node,
    facts: &HostFacts,
    target: Option<&str>,
    progress: Progress,
) -> Vec<Step> {
    let first = std::ptr::eq(node, ctx.cluster.first_control_plane());
    let shown = target
        .map(str::to_string)
        .unwrap_or_else(|| format!("v{}", runtime::target_version(ctx)));
    let (flag, why) = ignored(ctx, facts);
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" (ignoring {})", why.join("; "))
    };
    let upgrade = if first {
        let t = quote(&shown);
        Command::new(
            format!("kubeadm upgrade plan, then kubeadm upgrade apply {shown}{why}"),
            format!("kubeadm upgrade plan {t}{flag} && kubeadm upgrade apply {t} --yes{flag}"),
        )
    } else {
        Command::new(
            format!("kubeadm upgrade node{why}"),
            format!("kubeadm upgrade node{flag}"),
        )
    };
    let mut kubelet = programs(ctx, &["kubelet", "kubectl"], false);
    kubelet.push(Resource::Command(
        Command::new(
            "restart the kubelet on its new version",
            "systemctl daemon-reload && systemctl restart kubelet.service",
        )
        .unless(Guard::Done(progress.kubelet)),
    ));
    vec![
        Step::new("kubeadm", programs(ctx, &["kubeadm"], first)),
        Step::new(
            "upgrade",
            vec![Resource::Command(
                upgrade
                    .unless(Guard::Done(
                        progress.manifests && (node.role == Role::ControlPlane || progress.kubelet),
                    ))
                    .timeout(Duration::from_secs(900)),
            )],
        ),
        Step::new("kubelet", kubelet),
        Step::new(
            "wait",
            vec![Resource::Wait(Wait::new(
                format!("{} runs {shown}", node.node_name),
                Condition::Upgraded {
                    node: node.node_name.clone(),
                    version: shown.clone(),
                    control_plane: node.role == Role::ControlPlane,
                },
                NODE_DEADLINE,
            ))],
        ),
    ]
}

/// Cordon (marked, unless already cordoned) and drain `name`, on a control-plane node, unless
/// it is `done` or found cordoned with nothing left to evict (asked of the API, every
/// namespace: a node found cordoned is never taken as drained).
fn drain(name: &str, api: Option<&ClusterFacts>, done: bool) -> Resource {
    let status = api.and_then(|c| c.node(name));
    let cordoned = status.is_some_and(|s| s.unschedulable);
    let drained = cordoned && api.is_some_and(|c| c.evictable_on(name).next().is_none());
    let n = quote(name);
    let mark = if cordoned {
        String::new()
    } else {
        format!("{KUBECTL} annotate --overwrite node {n} {CORDONED}=upgrade >/dev/null\n")
    };
    Resource::Command(
        Command::new(
            format!(
                "cordon and drain {name} (its pods evicted, PodDisruptionBudgets honoured; stops after {} s naming the pods that block it)",
                DRAIN_TIMEOUT.as_secs()
            ),
            format!(
                "{mark}{KUBECTL} drain {n} --ignore-daemonsets --delete-emptydir-data --timeout={}s",
                DRAIN_TIMEOUT.as_secs()
            ),
        )
        .unless(Guard::Done(done || drained))
        .timeout(DRAIN_TIMEOUT + Duration::from_secs(60)),
    )
}

/// Uncordon `name` if kubeforge cordoned it (`marked`), or is about to.
fn uncordon(name: &str, marked: bool) -> Resource {
    let n = quote(name);
    Resource::Command(
        Command::new(
            format!("uncordon {name}"),
            format!("{KUBECTL} uncordon {n} && {KUBECTL} annotate node {n} {CORDONED}- >/dev/null"),
        )
        .unless(Guard::Done(!marked)),
    )
}

/// On a control-plane node whose `facts` are given: `subject`'s kube-apiserver taken `out` of
/// its HAProxy (maintenance: no new request reaches it while it restarts), or put back, for
/// a turn that is `done` or not. Nothing with a single control-plane node (HAProxy has no
/// other server to send requests to).
pub(super) fn backend_step(
    cluster: &Cluster,
    subject: &str,
    facts: &HostFacts,
    out: bool,
    done: bool,
) -> Step {
    let alone = cluster.control_planes().count() < 2;
    let maint = facts
        .haproxy
        .as_ref()
        .and_then(|b| b.get(subject))
        .is_some_and(|b| b.maint);
    let (state, summary, skip) = if out {
        (
            "maint",
            format!("take {subject}'s kube-apiserver out of HAProxy here (maintenance)"),
            alone || done || maint,
        )
    } else {
        (
            "ready",
            format!("put {subject}'s kube-apiserver back in HAProxy here"),
            !(maint || (!alone && !done)),
        )
    };
    let command = quote(&format!(
        "set server kube-apiserver/{subject} state {state}"
    ));
    Step::new(
        "haproxy",
        vec![Resource::Command(
            Command::new(
                summary,
                format!("echo {command} | socat stdio /run/haproxy/admin.sock"),
            )
            .unless(Guard::Done(skip)),
        )],
    )
}

/// The stages of a node's (or a batch of workers') turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A control-plane node's kube-apiserver out of every HAProxy (maintenance): no request
    /// reaches it while it restarts.
    BackendOut,
    /// The control-plane node's own upgrade.
    ControlPlane,
    /// Its kube-apiserver back in every HAProxy.
    BackendIn,
    /// The batch of workers cordoned and drained, on the first control-plane node.
    DrainWorkers,
    /// Each worker of the batch upgraded.
    Workers,
    /// The batch uncordoned, on the first control-plane node.
    UncordonWorkers,
}

/// One stage of a turn: of a control-plane node (`nodes` holds it alone), or of a batch of
/// workers.
struct Turn {
    nodes: BTreeSet<String>,
    stage: Stage,
}

impl Turn {
    /// The turns' stages of `nodes`.
    fn of<const N: usize>(nodes: BTreeSet<String>, stages: [Stage; N]) -> [Turn; N] {
        stages.map(|stage| Turn {
            nodes: nodes.clone(),
            stage,
        })
    }

    /// The nodes whose turn it is, in cluster order.
    fn subjects<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        cluster
            .nodes
            .iter()
            .filter(|n| self.nodes.contains(&n.node_name))
            .collect()
    }

    /// On a control-plane node `here`: take the subject's kube-apiserver out of its HAProxy,
    /// or put it back.
    fn backend(&self, ctx: &Ctx, here: &Node, facts: &HostFacts) -> Vec<Step> {
        let target = exact_target(ctx);
        self.subjects(ctx.cluster)
            .into_iter()
            .map(|subject| {
                let theirs = ctx
                    .facts_of(&subject.node_name, here, facts)
                    .unwrap_or(facts);
                let status = kubelet_version(ctx, &subject.node_name, facts);
                let done = Progress::of(subject, theirs, status, target.as_deref()).done();
                backend_step(
                    ctx.cluster,
                    &subject.node_name,
                    facts,
                    self.stage == Stage::BackendOut,
                    done,
                )
            })
            .collect()
    }

    /// On the first control-plane node: drain the batch of workers, or uncordon it.
    fn workers_from_first(&self, ctx: &Ctx, facts: &HostFacts) -> Vec<Step> {
        let target = exact_target(ctx);
        let api = facts.cluster.as_ref();
        let mut resources = Vec::new();
        for worker in self.subjects(ctx.cluster) {
            let status = api.and_then(|c| c.node(&worker.node_name));
            let at = status.map(|s| s.kubelet_version.as_str());
            let done = target.is_some() && at == target.as_deref();
            resources.push(if self.stage == Stage::DrainWorkers {
                drain(&worker.node_name, api, done)
            } else {
                let cordoned = status.is_some_and(|s| s.unschedulable);
                let marked = status.is_some_and(|s| s.annotations.contains_key(CORDONED));
                uncordon(&worker.node_name, marked || (!done && !cordoned))
            });
        }
        vec![Step::new(self.name(), resources)]
    }
}

impl Phase for Turn {
    fn name(&self) -> &'static str {
        match self.stage {
            Stage::BackendOut => "backend-out",
            Stage::ControlPlane => "upgrade-control-plane",
            Stage::BackendIn => "backend-in",
            Stage::DrainWorkers => "drain-workers",
            Stage::Workers => "upgrade-workers",
            Stage::UncordonWorkers => "uncordon-workers",
        }
    }
    fn title(&self) -> &'static str {
        match self.stage {
            Stage::BackendOut => {
                "the next node's kube-apiserver out of every HAProxy (maintenance)"
            }
            Stage::ControlPlane => "the node: drained, kubeadm upgrade, kubelet, uncordoned",
            Stage::BackendIn => "its kube-apiserver back in every HAProxy",
            Stage::DrainWorkers => {
                "cordon and drain this batch of workers, on the first control-plane node"
            }
            Stage::Workers => {
                "kubeadm, kubeadm upgrade node and the kubelet on each worker of the batch"
            }
            Stage::UncordonWorkers => "uncordon the batch, on the first control-plane node",
        }
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        match self.stage {
            Stage::ControlPlane | Stage::Workers => self.subjects(cluster),
            Stage::BackendOut | Stage::BackendIn => HostSet::ControlPlanes.select(cluster),
            Stage::DrainWorkers | Stage::UncordonWorkers => HostSet::First.select(cluster),
        }
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = upgrade_query(ctx, node);
        q.merge(&super::steps_query(self, ctx, node));
        q
    }
    fn settle(
        &self,
        ctx: &Ctx,
        facts: &BTreeMap<String, HostFacts>,
        values: &mut Values,
        _random: Random,
    ) -> Result<(), StepError> {
        if ctx.bundle.is_none()
            && !values.contains(KUBERNETES_PACKAGE_VERSION)
            && let Some(version) = runtime::package_version(ctx, facts)
        {
            values.set(KUBERNETES_PACKAGE_VERSION, version, false);
        }
        Ok(())
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(match self.stage {
            Stage::ControlPlane => control_plane_steps(ctx, node, facts),
            Stage::BackendOut | Stage::BackendIn => self.backend(ctx, node, facts),
            Stage::DrainWorkers | Stage::UncordonWorkers => self.workers_from_first(ctx, facts),
            Stage::Workers => {
                let target = exact_target(ctx);
                let status = facts.own_node.as_ref().map(|s| s.kubelet_version.as_str());
                let progress = Progress::of(node, facts, status, target.as_deref());
                node_steps(ctx, node, facts, target.as_deref(), progress)
            }
        })
    }
}

/// A control-plane node's own upgrade.
fn control_plane_steps(ctx: &Ctx, node: &Node, facts: &HostFacts) -> Vec<Step> {
    let target = exact_target(ctx);
    let api = facts.cluster.as_ref();
    let status = api.and_then(|c| c.node(&node.node_name));
    let progress = Progress::of(
        node,
        facts,
        status.map(|s| s.kubelet_version.as_str()),
        target.as_deref(),
    );
    let done = progress.done();
    let mut steps = vec![Step::new("drain", vec![drain(&node.node_name, api, done)])];
    steps.extend(node_steps(ctx, node, facts, target.as_deref(), progress));
    let cordoned = status.is_some_and(|s| s.unschedulable);
    let marked = status.is_some_and(|s| s.annotations.contains_key(CORDONED));
    steps.push(Step::new(
        "uncordon",
        vec![uncordon(&node.node_name, marked || (!done && !cordoned))],
    ));
    // kubeadm renewed the certificates and rewrote admin.conf: the copies follow.
    steps.extend(
        super::kubeconfigs::Kubeconfigs
            .steps(ctx, node, facts)
            .unwrap_or_default(),
    );
    steps
}
