//! `kubeforge reset`: the cluster taken apart, node by node, so that the next apply builds it
//! again. Its own list of phases, run by the same engine as a build:
//!
//! 1. `backend-out` (removing control-plane nodes): refused when etcd would lose its quorum
//!    ([`removal_check`]); their kube-apiservers in maintenance in every other HAProxy.
//! 2. `drain` (removing some nodes only): on the node the cluster lives on (another one when
//!    that one is being removed), each node is cordoned and its pods evicted, unless its
//!    kubelet stopped reporting.
//! 3. `reset`: `kubeadm reset`, then what kubeadm leaves: the pod network's configuration,
//!    interfaces and packet filter rules, kube-proxy's rules, the kubeconfigs kubeforge copied;
//!    a control-plane node leaving first stops its keepalived and HAProxy.
//! 4. `forget` (removing some nodes only): their Nodes deleted, once their kubelets are
//!    stopped (a kubelet restarted meanwhile registers its Node again); the etcd members of
//!    control-plane nodes removed.
//! 5. `remove` (`--all`): keepalived, HAProxy, containerd and the Kubernetes packages, their
//!    configuration and kubeforge's apt sources, programs and records.
//!
//! A node being removed may be dead: the job does without it (it takes part in no phase).
//! After control-plane nodes are removed, [`LoadBalancerOnly`] rewrites the others' HAProxy
//! and keepalived from the inventory without them.
//!
//! Each step is guarded by the facts it cleans: a reset of clean hosts changes nothing.

use std::collections::BTreeSet;

use crate::facts::{
    FactQuery, HostFacts, INIT_MARKER, LOGIN_USER, POD_NETWORK_LINKS, POD_NETWORK_RULES,
};
use crate::model::{Cluster, Node, Role};
use crate::resources::{Command, Guard, Resource};
use crate::shell::quote;

use super::{Ctx, ETCDCTL, HostSet, KUBECTL, Phase, Step, StepError};

/// containerd's socket, for kubeadm.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// Where kubeforge keeps kubeadm's configuration files on a host.
pub const CONFIG_DIR: &str = "/etc/kubeforge";

/// `kubeadm reset` where kubeadm left files (a failed init or join; a node being reset).
///
/// Without kubeadm's `remove-etcd-member` phase, and etcd's data removed here instead: that
/// phase asks the cluster to drop this node's member, and when every control-plane node is
/// reset at once etcd soon has no quorum, so kubeadm retries for about five minutes on each
/// node (seen with kubeadm 1.28). A whole cluster being reset needs no member removed; a
/// half-joined node's stale member is removed from the node the cluster lives on before it
/// joins again (`join-credentials`), and a removed worker has none.
///
/// Without the cluster's configuration either (`--kubeconfig /dev/null`): kubeadm would read
/// it through the API, including this node's address from its kube-apiserver pod, listed up
/// to 30 times while the API does not list that pod yet (a node that joined a minute ago), each
/// list retried by the client as the other nodes' resets take the API away: kubeadm 1.28 was
/// seen to hang there for over four minutes. kubeforge sets nothing that needs it: the CRI
/// socket is given, the directories are kubeadm's defaults.
pub fn kubeadm_reset_script() -> String {
    format!(
        "if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f --cri-socket {CRI_SOCKET} --skip-phases=remove-etcd-member --kubeconfig /dev/null\nelse\n  systemctl stop kubelet.service 2>/dev/null || true\n  rm -rf /etc/kubernetes/manifests/* /etc/kubernetes/pki /etc/kubernetes/*.conf /var/lib/kubelet/config.yaml\nfi\nrm -rf /var/lib/etcd/member\nrm -f {INIT_MARKER} {CONFIG_DIR}/kubeadm-init.yaml"
    )
}

/// A step that resets a node before kubeadm runs on it again, when `leftovers` lists what an
/// earlier attempt left (`what`: whose leftovers, for the summary); no change otherwise.
pub fn reset_step(id: &'static str, what: &str, leftovers: &[String]) -> Step {
    Step::new(
        id,
        vec![Resource::Command(
            Command::new(
                format!("reset what {what} left ({})", leftovers.join(", ")),
                kubeadm_reset_script(),
            )
            .unless(Guard::Done(leftovers.is_empty())),
        )],
    )
}

/// Everything `kubeadm reset` leaves behind, on purpose: kubeconfigs copied for users (when
/// they point at this cluster), CNI configuration and state, pod network interfaces, and the
/// packet filter rules of kube-proxy and the pod networks (other rules stay).
fn leftovers_script(server: &str) -> String {
    format!(
        r#"for h in /root $(getent passwd "${{SUDO_USER:-root}}" | cut -d: -f6); do
  f="$h/.kube/config"
  if [ -f "$f" ] && grep -qxE "[[:space:]]*server:[[:space:]]*{server}" "$f"; then rm -f "$f"; fi
done
rm -rf /etc/cni/net.d/* /var/lib/cni /run/flannel /var/lib/calico /var/run/calico /var/lib/kubeforge/applied /var/lib/kubeforge/manifests
for l in /sys/class/net/*; do n=${{l##*/}}; case $n in {POD_NETWORK_LINKS}) ip link delete "$n" 2>/dev/null || true;; esac; done
for t in iptables ip6tables; do
  if command -v $t-save >/dev/null 2>&1; then $t-save | grep -vE {rules} | $t-restore; fi
done
if command -v nft >/dev/null 2>&1; then
  nft list tables 2>/dev/null | while read -r _ family name; do case $name in kube-proxy|calico*) nft delete table "$family" "$name";; esac; done
fi"#,
        server = regex_escape(server),
        rules = quote(POD_NETWORK_RULES),
    )
}

/// `text` as a literal in an extended regular expression.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.^$|?*+()[]{}".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// The API server URL kubeconfigs for this cluster name.
pub fn server_url(cluster: &Cluster) -> String {
    format!("https://{}", cluster.control_plane_endpoint())
}

/// What a reset finds still to clean on a node.
fn dirt(cluster: &Cluster, facts: &HostFacts) -> Vec<String> {
    let mut out = facts.kubeadm.traces();
    let server = server_url(cluster);
    for ((user, _), file) in &facts.home_files {
        if let Some(f) = file
            && f.server == server
        {
            let who = if user == LOGIN_USER {
                &facts.login
            } else {
                user
            };
            out.push(format!("{who}'s {}", f.path));
        }
    }
    let l = &facts.leftovers;
    out.extend(l.cni_configs.iter().map(|c| format!("/etc/cni/net.d/{c}")));
    out.extend(l.links.iter().map(|n| format!("interface {n}")));
    if l.rules > 0 {
        out.push(format!("{} packet filter rules", l.rules));
    }
    out.extend(l.nft_tables.iter().map(|t| format!("nftables table {t}")));
    out
}

/// Which nodes a reset takes, and how far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetJob {
    backend_out: BackendOut,
    drain: RemoveWorkers,
    reset: ResetNodes,
    forget: RemoveWorkers,
    remove: Option<Remove>,
}

impl ResetJob {
    /// `only`: these workers (drained and deleted first), else every node; `all`: remove the
    /// load balancer and the packages too.
    pub fn new(only: Option<BTreeSet<String>>, all: bool) -> Self {
        ResetJob {
            backend_out: BackendOut {
                only: BTreeSet::new(),
            },
            drain: RemoveWorkers {
                only: only.clone().unwrap_or_default(),
                stage: Stage::Drain,
            },
            reset: ResetNodes { only: only.clone() },
            forget: RemoveWorkers {
                only: only.clone().unwrap_or_default(),
                stage: Stage::Forget,
            },
            remove: all.then_some(Remove { only }),
        }
    }

    /// Nodes that `only` names that are not in the inventory, or every control-plane node
    /// (that is the whole cluster: a reset without `--hosts`).
    pub fn check(&self, cluster: &Cluster) -> Result<(), String> {
        let Some(only) = &self.reset.only else {
            return Ok(());
        };
        for name in only {
            if !cluster.nodes.iter().any(|n| n.node_name == *name) {
                return Err(format!("{name} is not in the inventory"));
            }
        }
        if cluster
            .control_planes()
            .all(|n| only.contains(&n.node_name))
        {
            return Err(
                "that is every control-plane node: the cluster would be gone; reset it whole (without --hosts)"
                    .into(),
            );
        }
        Ok(())
    }

    /// With the control-plane nodes among those it removes known (from `cluster`): their
    /// kube-apiservers out of the other HAProxies first, once etcd is found to keep its quorum
    /// without them; their etcd members removed after their reset.
    pub fn with_roles(mut self, cluster: &Cluster) -> Self {
        if let Some(only) = &self.reset.only {
            self.backend_out.only = cluster
                .control_planes()
                .filter(|n| only.contains(&n.node_name))
                .map(|n| n.node_name.clone())
                .collect();
        }
        self
    }

    /// The control-plane nodes it removes (known once [`ResetJob::with_roles`] was called).
    pub fn removed_control_planes(&self) -> &BTreeSet<String> {
        &self.backend_out.only
    }
}

impl super::Job for ResetJob {
    fn phases(&self) -> Vec<&dyn Phase> {
        let mut out: Vec<&dyn Phase> = Vec::new();
        if !self.backend_out.only.is_empty() {
            out.push(&self.backend_out);
        }
        if !self.drain.only.is_empty() {
            out.push(&self.drain);
        }
        out.push(&self.reset);
        if !self.forget.only.is_empty() {
            out.push(&self.forget);
        }
        if let Some(remove) = &self.remove {
            out.push(remove);
        }
        out
    }

    /// A reset takes hosts apart as they are: nothing to judge first.
    fn preflight(&self) -> bool {
        false
    }

    /// A node being removed from a cluster that stays may be dead: it is drained (unless its
    /// kubelet stopped reporting), forgotten and taken out of etcd through the others.
    fn can_do_without(&self, node: &str) -> bool {
        self.drain.only.contains(node)
    }
}

fn select<'c>(cluster: &'c Cluster, only: &Option<BTreeSet<String>>) -> Vec<&'c Node> {
    cluster
        .nodes
        .iter()
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(&n.node_name)))
        .collect()
}

/// Removing nodes (`reset --hosts`), on the node the cluster lives on: first `drain` (cordon,
/// evict their pods), and after they are reset `forget` (delete their Nodes, and the etcd
/// members of control-plane nodes), as kubeadm's documentation orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoveWorkers {
    only: BTreeSet<String>,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Drain,
    Forget,
}

impl Phase for RemoveWorkers {
    fn name(&self) -> &'static str {
        match self.stage {
            Stage::Drain => "drain",
            Stage::Forget => "forget",
        }
    }
    fn title(&self) -> &'static str {
        match self.stage {
            Stage::Drain => {
                "cordon the workers to remove and evict their pods, on the node the cluster lives on"
            }
            Stage::Forget => "delete the removed workers' Nodes, on the node the cluster lives on",
        }
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        // Each node's own view: a node being removed is judged by what it reads itself.
        FactQuery {
            cluster_once: false,
            ..super::cluster_query(node)
        }
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let leader = if ctx.offline {
            Some(ctx.cluster.first_control_plane().node_name.clone())
        } else {
            crate::bootstrap::decide(ctx.cluster, |name| ctx.facts_of(name, node, facts))
                .ok()
                .and_then(|state| state.leader)
        };
        if leader.is_none() && node.node_name == ctx.cluster.first_control_plane().node_name {
            // kubeadm's traces on a control-plane node, and no cluster answers: the workers
            // can be neither drained nor forgotten (said once, for the first node).
            let traces: Vec<String> = ctx
                .cluster
                .control_planes()
                .filter(|n| {
                    ctx.facts_of(&n.node_name, node, facts)
                        .is_some_and(crate::bootstrap::control_plane_traces)
                })
                .map(|n| n.node_name.clone())
                .collect();
            if !traces.is_empty() {
                return Err(StepError::Cluster(format!(
                    "no cluster API answers through {} (kubeadm has been at work on {}), so kubeforge cannot {} {}. Bring the control plane back (is the VIP held? do the kube-apiservers run?) and run this again, or, if that cluster is gone for good, reset every node with `kubeforge reset`",
                    ctx.cluster.control_plane_endpoint(),
                    traces.join(", "),
                    match self.stage {
                        Stage::Drain => "drain",
                        Stage::Forget => "delete the Node of",
                    },
                    self.only.iter().cloned().collect::<Vec<_>>().join(", "),
                )));
            }
        }
        // The node the cluster lives on, unless it is being removed: then the first other
        // control-plane node whose API answers.
        let acting = match leader {
            Some(l) if !self.only.contains(&l) => Some(l),
            _ => ctx
                .cluster
                .control_planes()
                .filter(|n| !self.only.contains(&n.node_name))
                .find(|n| {
                    ctx.facts_of(&n.node_name, node, facts)
                        .and_then(|f| f.cluster.as_ref())
                        .is_some_and(|c| c.api_ready())
                })
                .map(|n| n.node_name.clone()),
        };
        if acting.as_deref() != Some(node.node_name.as_str()) {
            return Ok(Vec::new());
        }
        let mut resources: Vec<Resource> = self
            .only
            .iter()
            .map(|name| {
                let listed = facts.cluster.as_ref().and_then(|c| c.node(name));
                let n = quote(name);
                let (summary, script, done) = match self.stage {
                    // Done once cordoned (a drain that evicted only some pods is finished by
                    // the reset that follows), or when the cluster no longer knows it. A node
                    // whose kubelet stopped reporting (a dead host) is not drained: its pods
                    // cannot stop; they go with its Node.
                    Stage::Drain => (
                        format!("drain {name}"),
                        format!(
                            "{KUBECTL} drain {n} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s"
                        ),
                        listed.is_none_or(|s| s.unschedulable || s.ready != Some(true)),
                    ),
                    Stage::Forget => (
                        format!("delete the Node {name}"),
                        format!("{KUBECTL} delete node {n} --ignore-not-found"),
                        listed.is_none(),
                    ),
                };
                Resource::Command(
                    Command::new(summary, script).unless(Guard::Done(!ctx.offline && done)),
                )
            })
            .collect();
        if self.stage == Stage::Forget {
            resources.extend(self.members_removed(ctx, node, facts));
        }
        Ok(vec![Step::new(self.name(), resources)])
    }
}

impl RemoveWorkers {
    /// The etcd members of the removed control-plane nodes (matched by name or peer URL),
    /// removed through this node's own etcd member.
    fn members_removed(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Vec<Resource> {
        let view = facts.cluster.as_ref();
        ctx.cluster
            .control_planes()
            .filter(|n| self.only.contains(&n.node_name))
            .map(|removed| {
                let peer = removed.ip().map(|ip| format!("https://{ip}:2380"));
                let member = view.and_then(|c| {
                    c.members.iter().find(|m| {
                        m.name == removed.node_name
                            || peer.as_ref().is_some_and(|p| m.peer_urls.contains(p))
                    })
                });
                let id = member.map_or_else(|| "ID".to_string(), |m| m.id.clone());
                Resource::Command(
                    Command::new(
                        format!("remove {}'s etcd member", removed.node_name),
                        format!(
                            "{KUBECTL} -n kube-system exec {} -- {ETCDCTL} member remove {}",
                            quote(&format!("etcd-{}", node.node_name)),
                            quote(&id)
                        ),
                    )
                    .unless(Guard::Done(!ctx.offline && member.is_none())),
                )
            })
            .collect()
    }
}

/// Removing control-plane nodes, first: on each other control-plane node, their
/// kube-apiservers put in maintenance in HAProxy (no new request reaches them), once the
/// removal is judged safe for etcd (its `settle`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackendOut {
    only: BTreeSet<String>,
}

impl Phase for BackendOut {
    fn name(&self) -> &'static str {
        "backend-out"
    }
    fn title(&self) -> &'static str {
        "check that etcd keeps its quorum; the removed control-plane nodes' kube-apiservers out of every other HAProxy"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        cluster
            .control_planes()
            .filter(|n| !self.only.contains(&n.node_name))
            .collect()
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = super::cluster_query(node);
        q.cluster_once = false;
        q.haproxy = true;
        q
    }
    fn settle(
        &self,
        ctx: &Ctx,
        facts: &std::collections::BTreeMap<String, HostFacts>,
        _values: &mut crate::values::Values,
        _random: super::Random,
    ) -> Result<(), StepError> {
        removal_check(ctx.cluster, facts, &self.only).map_err(StepError::Cluster)
    }
    fn steps(&self, ctx: &Ctx, _node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(ctx
            .cluster
            .control_planes()
            .filter(|n| self.only.contains(&n.node_name))
            .map(|removed| {
                // Gone from this HAProxy (removed before), or no HAProxy to ask: nothing.
                let listed = facts
                    .haproxy
                    .as_ref()
                    .is_some_and(|b| b.contains_key(&removed.node_name));
                super::upgrade::backend_step(
                    ctx.cluster,
                    &removed.node_name,
                    facts,
                    true,
                    !ctx.offline && !listed,
                )
            })
            .collect())
    }
}

/// Whether removing the control-plane nodes `only` names keeps etcd's quorum, from the facts
/// of the other control-plane nodes; why not, with the arithmetic.
pub fn removal_check(
    cluster: &Cluster,
    facts: &std::collections::BTreeMap<String, HostFacts>,
    only: &BTreeSet<String>,
) -> Result<(), String> {
    let removed: Vec<&Node> = cluster
        .control_planes()
        .filter(|n| only.contains(&n.node_name))
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    let Some(api) = cluster
        .control_planes()
        .filter(|n| !only.contains(&n.node_name))
        .filter_map(|n| facts.get(&n.node_name)?.cluster.as_ref())
        .find(|c| c.api_ready())
    else {
        return Err(format!(
            "no other control-plane node reaches the cluster's API: {} cannot be removed from etcd; nothing was changed",
            removed
                .iter()
                .map(|n| n.node_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let (healthy, voters) = api.quorum();
    let mut leaving = 0;
    let mut leaving_healthy = 0;
    for n in &removed {
        if let Some(m) = api.member(&n.node_name) {
            leaving += 1;
            if api.member_healthy(m) {
                leaving_healthy += 1;
            }
        }
    }
    let (left, left_healthy) = (voters - leaving, healthy - leaving_healthy);
    let needed = left / 2 + 1;
    if left == 0 || left_healthy < needed {
        return Err(format!(
            "removing {} would leave etcd without quorum: {voters} members, {healthy} healthy; after it {left} members, {left_healthy} healthy, {needed} needed. Nothing was changed",
            removed
                .iter()
                .map(|n| n.node_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// After control-plane nodes are removed: the load balancer of the others, from an inventory
/// without them (HAProxy's servers, keepalived's peers), one node at a time.
pub struct LoadBalancerOnly;

impl super::Job for LoadBalancerOnly {
    fn phases(&self) -> Vec<&dyn Phase> {
        vec![&super::load_balancer::LoadBalancer]
    }
    fn preflight(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ResetNodes {
    only: Option<BTreeSet<String>>,
}

/// The facts a reset step is guarded by.
fn reset_query() -> FactQuery {
    let mut q = FactQuery {
        leftovers: true,
        ..FactQuery::default()
    };
    q.home_files.insert(("root".into(), ".kube/config".into()));
    q.home_files
        .insert((LOGIN_USER.into(), ".kube/config".into()));
    q
}

impl Phase for ResetNodes {
    fn name(&self) -> &'static str {
        "reset"
    }
    fn title(&self) -> &'static str {
        "kubeadm reset, and the pod network's files, interfaces and rules and the kubeconfigs removed"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        select(cluster, &self.only)
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = reset_query();
        if self.removes(node) {
            q.units.extend(LOAD_BALANCER.map(String::from));
        }
        q
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let mut dirt = dirt(ctx.cluster, facts);
        // A control-plane node leaving the cluster stops serving the VIP and the API first.
        let stop = if self.removes(node) {
            dirt.extend(
                LOAD_BALANCER
                    .into_iter()
                    .filter(|u| facts.unit(u).is_some_and(|f| f.is_running()))
                    .map(|u| format!("{u} running")),
            );
            format!(
                "systemctl disable --now {} 2>/dev/null || true\n",
                LOAD_BALANCER.join(" ")
            )
        } else {
            String::new()
        };
        let summary = if dirt.is_empty() || ctx.offline {
            "kubeadm reset; remove the pod network's configuration, interfaces and rules, and the kubeconfigs".to_string()
        } else {
            let shown: Vec<&str> = dirt.iter().take(4).map(String::as_str).collect();
            let more = dirt.len().saturating_sub(4);
            format!(
                "kubeadm reset and clean up ({}{})",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        let script = format!(
            "{stop}{}\n{}",
            kubeadm_reset_script(),
            leftovers_script(&server_url(ctx.cluster))
        );
        Ok(vec![Step::new(
            "reset",
            vec![Resource::Command(
                Command::new(summary, script).unless(Guard::Done(!ctx.offline && dirt.is_empty())),
            )],
        )])
    }
}

impl ResetNodes {
    /// `node` is a control-plane node leaving a cluster that stays.
    fn removes(&self, node: &Node) -> bool {
        node.role == Role::ControlPlane && self.only.is_some()
    }
}

/// The load balancer's units, stopped on a control-plane node that leaves.
const LOAD_BALANCER: [&str; 2] = ["keepalived.service", "haproxy.service"];

/// What `--all` removes: packages, and files kubeforge wrote that they do not own.
const PACKAGES: [&str; 9] = [
    "keepalived",
    "haproxy",
    "kubelet",
    "kubeadm",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd.io",
    "containerd",
];
const FILES: [&str; 16] = [
    "/etc/keepalived/keepalived.conf",
    "/etc/haproxy/haproxy.cfg",
    "/etc/containerd/config.toml",
    "/etc/crictl.yaml",
    "/etc/apt/sources.list.d/docker.list",
    "/etc/apt/sources.list.d/kubernetes.list",
    "/etc/apt/sources.list.d/kubeforge-bundle.list",
    "/etc/apt/keyrings/docker.gpg",
    "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
    "/usr/local/bin/kubeadm",
    "/usr/local/bin/kubelet",
    "/usr/local/bin/kubectl",
    "/usr/local/bin/crictl",
    "/etc/systemd/system/kubelet.service",
    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/var/lib/kubeforge/digests",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Remove {
    only: Option<BTreeSet<String>>,
}

impl Phase for Remove {
    fn name(&self) -> &'static str {
        "remove"
    }
    fn title(&self) -> &'static str {
        "keepalived, HAProxy, containerd and the Kubernetes packages removed, with their configuration"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        select(cluster, &self.only)
    }
    fn query(&self, _ctx: &Ctx, _node: &Node) -> FactQuery {
        let mut q = FactQuery::default();
        q.packages.extend(PACKAGES.map(String::from));
        for f in FILES {
            q.file(f, crate::facts::Read::Hash);
        }
        q
    }
    fn steps(&self, ctx: &Ctx, _node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let installed: Vec<&str> = PACKAGES
            .into_iter()
            .filter(|p| facts.packages.contains_key(*p))
            .collect();
        let present: Vec<&str> = FILES
            .into_iter()
            .filter(|f| facts.file(f).is_some())
            .collect();
        let packages = if ctx.offline {
            PACKAGES.to_vec()
        } else {
            installed.clone()
        };
        let mut script = String::from(
            "systemctl disable --now keepalived.service haproxy.service kubelet.service containerd.service 2>/dev/null || true\n",
        );
        if !packages.is_empty() {
            let names = packages.join(" ");
            script.push_str(&format!(
                "{}\napt-mark unhold {names} >/dev/null\nDEBIAN_FRONTEND=noninteractive apt-get purge -y -q {names}\n",
                crate::resources::WAIT_FOR_PACKAGE_MANAGERS
            ));
        }
        script.push_str(&format!(
            "rm -rf {} /etc/systemd/system/kubelet.service.d /var/lib/kubeforge/bundle {CONFIG_DIR}\nsystemctl daemon-reload",
            FILES.join(" ")
        ));
        let summary = if packages.is_empty() {
            "remove kubeforge's configuration files".to_string()
        } else {
            format!(
                "remove {} and kubeforge's configuration files",
                packages.join(", ")
            )
        };
        let clean = installed.is_empty() && present.is_empty();
        Ok(vec![Step::new(
            "remove",
            vec![Resource::Command(
                Command::new(summary, script).unless(Guard::Done(!ctx.offline && clean)),
            )],
        )])
    }
}
