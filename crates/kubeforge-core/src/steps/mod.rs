//! The phases of a build, one module each, behind the [`Phase`] trait, in the one ordered
//! list [`PHASES`] that `apply`, the live `plan` and the offline plan all read.
//!
//! A phase says which hosts take part and in what order, which facts it needs, which values it
//! settles from the facts of all hosts (the VRRP password), and, per host, its steps: resources
//! rendered from the templates in `templates/`. Pure: the cluster model, the values and a
//! host's facts in, steps out.
//!
//! To add a phase: write `steps/<name>.rs` with a type implementing [`Phase`], and put it in
//! [`PHASES`] where it runs.

use std::borrow::Cow;
use std::collections::BTreeMap;

use minijinja::Environment;
use serde::Serialize;

use crate::bootstrap::State;
use crate::bundle::Bundle;
use crate::facts::{FactQuery, HostFacts, Read};
use crate::model::{Cluster, Node};
use crate::resources::{self, Resource};
use crate::values::Values;

pub mod backup;
pub mod certs;
pub mod init;
pub mod join;
pub mod kubeadm;
pub mod kubeconfigs;
pub mod load_balancer;
pub mod network;
pub mod prepare;
pub mod reset;
pub mod restore;
pub mod revoke;
pub mod roles;
pub mod runtime;
pub mod status;
pub mod upgrade;

/// Every phase of a build, in the order apply runs them.
pub static PHASES: &[&dyn Phase] = &[
    &prepare::Prepare,
    &load_balancer::LoadBalancer,
    &runtime::Runtime,
    &init::Init::BUILD,
    &network::Network,
    &join::JoinCredentials,
    &join::JoinControlPlanes,
    &join::JoinWorkers,
    &roles::Roles,
    &revoke::Revoke,
    &kubeconfigs::Kubeconfigs,
];

/// What a command has the engine do: its phases, in order, and whether every host is judged
/// (preflight) before anything changes. The engine knows no command; each hands it its job.
pub trait Job: Send + Sync {
    fn phases(&self) -> Vec<&dyn Phase>;
    /// Judge every host before any change (a reset takes hosts apart as they are).
    fn preflight(&self) -> bool {
        true
    }
    /// Whether the run may go on without `node` when it does not answer (a node being
    /// removed, which the others then act for, or one it [`Job::skips`]); it then takes part
    /// in no phase.
    fn can_do_without(&self, node: &str) -> bool {
        self.skips(node)
    }
    /// Values the run starts with (a restore's VRRP password).
    fn preset(&self, _values: &mut Values) {}
    /// Whether `node` is left out on purpose (`apply --skip`): never contacted, in no phase,
    /// its facts [`HostFacts::skipped`], so that nothing is decided about it.
    fn skips(&self, _node: &str) -> bool {
        false
    }
}

/// `apply` and `plan`: the build, [`PHASES`].
pub struct Build;

impl Job for Build {
    fn phases(&self) -> Vec<&dyn Phase> {
        PHASES.to_vec()
    }
}

/// `apply --restore-from`: the build, with `init` restoring the backup ([`restore`]).
pub struct RestoreBuild {
    init: init::Init,
    vrrp_secret: String,
}

impl RestoreBuild {
    pub fn new(restore: restore::Restore) -> Self {
        RestoreBuild {
            vrrp_secret: restore.vrrp_secret.clone(),
            init: init::Init {
                restore: Some(restore),
            },
        }
    }
}

impl Job for RestoreBuild {
    fn phases(&self) -> Vec<&dyn Phase> {
        PHASES
            .iter()
            .map(|p| {
                if p.name() == self.init.name() {
                    &self.init as &dyn Phase
                } else {
                    *p
                }
            })
            .collect()
    }
    fn preset(&self, values: &mut Values) {
        values.set(load_balancer::VRRP_SECRET, self.vrrp_secret.clone(), true);
    }
}

/// A job that only looks: the cluster's facts ([`cluster_query`]) from `hosts`, no step, no
/// preflight (`backup`'s, and the check before a restore).
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub name: &'static str,
    pub title: &'static str,
    pub hosts: HostSet,
}

impl Job for Look {
    fn phases(&self) -> Vec<&dyn Phase> {
        vec![self]
    }
    fn preflight(&self) -> bool {
        false
    }
}

impl Phase for Look {
    fn name(&self) -> &'static str {
        self.name
    }
    fn title(&self) -> &'static str {
        self.title
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        self.hosts.select(cluster)
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        cluster_query(node)
    }
    fn steps(&self, _ctx: &Ctx, _node: &Node, _facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(Vec::new())
    }
}

/// `apply --skip`: the build without some hosts, which stay in the inventory and the cluster as
/// they are (their Node, etcd member, keepalived peer and HAProxy backend kept).
pub struct BuildSkipping {
    pub skip: std::collections::BTreeSet<String>,
}

impl Job for BuildSkipping {
    fn phases(&self) -> Vec<&dyn Phase> {
        PHASES.to_vec()
    }
    fn skips(&self, node: &str) -> bool {
        self.skip.contains(node)
    }
}

/// How the hosts of a phase are worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Every host at once.
    Parallel,
    /// One host after another, in cluster order; the next starts once the one before is done.
    OneAtATime,
    /// The first host alone (what it finds out, the others use), then the others at once.
    FirstThenRest,
    /// Every host is asked, and one acts: the node the cluster lives on, or the first
    /// control-plane node (the hosts are run as [`Order::Parallel`]).
    One,
}

/// What a phase knows when it computes steps.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub values: &'a Values,
    /// Planning from the inventory alone: addresses, interfaces and values that only hosts,
    /// DNS or earlier phases know become placeholders instead of errors.
    pub offline: bool,
    /// The offline bundle the packages come from (`packages.source: bundle`).
    pub bundle: Option<&'a Bundle>,
    /// The latest facts of every host (`None` offline: every host is taken as bare).
    pub facts: Option<&'a BTreeMap<String, HostFacts>>,
    /// Where the cluster stands, decided once for every host when no host's facts change it
    /// (the offline plan: every host bare); `None`: decided from the facts, host by host.
    pub state: Option<&'a State>,
}

impl<'a> Ctx<'a> {
    /// A node's IPv4 address as text (a placeholder offline when only DNS knows it).
    pub fn ip(&self, node: &Node) -> Result<String, StepError> {
        node_ip(node, self.offline)
    }

    /// Where the cluster stands ([`crate::bootstrap::decide`]), from the facts of every host,
    /// with `fresh` for `node` (facts gathered since the others were).
    pub fn state(&self, node: &Node, fresh: &HostFacts) -> Result<Cow<'a, State>, StepError> {
        if let Some(state) = self.state {
            return Ok(Cow::Borrowed(state));
        }
        crate::bootstrap::decide(self.cluster, |name| self.facts_of(name, node, fresh))
            .map(Cow::Owned)
            .map_err(StepError::from)
    }

    /// A host's facts: `fresh` for `node`, the latest gathered for the others.
    pub fn facts_of<'f>(
        &'f self,
        name: &str,
        node: &Node,
        fresh: &'f HostFacts,
    ) -> Option<&'f HostFacts> {
        if name == node.node_name {
            Some(fresh)
        } else {
            self.facts.and_then(|f| f.get(name))
        }
    }

    /// Where the cluster stands, from the facts of every host as they are.
    pub fn cluster_state(&self) -> Result<Cow<'a, State>, StepError> {
        if let Some(state) = self.state {
            return Ok(Cow::Borrowed(state));
        }
        crate::bootstrap::decide(self.cluster, |name| self.facts.and_then(|f| f.get(name)))
            .map(Cow::Owned)
            .map_err(StepError::from)
    }

    /// The VIP as text (a placeholder offline when only DNS knows it).
    pub fn vip(&self) -> Result<String, StepError> {
        vip(self.cluster, self.offline)
    }
}

/// A node's IPv4 address as text; `offline`: a placeholder when only DNS knows it.
pub fn node_ip(node: &Node, offline: bool) -> Result<String, StepError> {
    match node.ip() {
        Some(ip) => Ok(ip.to_string()),
        None if offline => Ok(format!("<address of {}>", node.node_name)),
        None => Err(StepError::NoAddress {
            node: node.node_name.clone(),
        }),
    }
}

/// The VIP as text; `offline`: a placeholder when only DNS knows it.
pub fn vip(cluster: &Cluster, offline: bool) -> Result<String, StepError> {
    match cluster.vip {
        Some(vip) => Ok(vip.value.to_string()),
        None if offline => Ok(format!("<address of {}>", cluster.vip_name())),
        None => Err(StepError::NoVip),
    }
}

/// kubectl with the cluster's admin kubeconfig, as the steps on a control-plane node run it.
pub(crate) const KUBECTL: &str = "kubectl --kubeconfig=/etc/kubernetes/admin.conf";

/// etcdctl inside a node's etcd pod (`KUBECTL -n kube-system exec etcd-NODE -- ETCDCTL ...`):
/// its own member, with the health-check client certificate.
pub(crate) const ETCDCTL: &str = "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";

/// The facts every cluster phase decides from: kubeadm's traces (always gathered), the
/// cluster as the API sees it from a control-plane node (one view is enough:
/// [`FactQuery::cluster_once`]), and workers' registration.
pub fn cluster_query(node: &Node) -> FactQuery {
    let mut q = FactQuery {
        kubeadm: true,
        ..FactQuery::default()
    };
    match node.role {
        crate::model::Role::ControlPlane => {
            q.cluster = true;
            q.cluster_once = true;
            q.file("/etc/kubernetes/admin.conf", Read::Hash);
        }
        crate::model::Role::Worker => q.registered = Some(node.node_name.clone()),
    }
    q
}

/// A named group of resources on one host, applied in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: &'static str,
    pub resources: Vec<Resource>,
}

impl Step {
    pub fn new(id: &'static str, resources: Vec<Resource>) -> Self {
        Step { id, resources }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("{node} has no network interface with its address {address}")]
    NoInterface { node: String, address: String },
    #[error("the address of {node} is not known (no address in the inventory, and DNS gave none)")]
    NoAddress { node: String },
    #[error("the VIP is not known (no `vip:` in the inventory, and DNS gave none)")]
    NoVip,
    /// Where the cluster stands cannot be told from the facts.
    #[error(transparent)]
    State(#[from] crate::bootstrap::StateError),
    /// The pod network's manifests cannot be made.
    #[error(transparent)]
    Cni(#[from] crate::cni::CniError),
    /// The cluster is in no state for this step, and why (for a person to read).
    #[error("{0}")]
    Cluster(String),
    #[error("template {name}: {message}")]
    Template { name: &'static str, message: String },
    #[error(
        "{node} runs Kubernetes {installed}, the inventory asks for {wanted}: apply never changes the version of a node; to move the cluster to {wanted}, run `kubeforge upgrade` (one minor at a time, one node at a time, drained; `kubeforge upgrade --plan` shows its steps)"
    )]
    VersionChange {
        node: String,
        installed: String,
        wanted: String,
    },
}

/// Fresh randomness for values a phase makes (filled by the engine).
pub type Random<'a> = &'a mut dyn FnMut(&mut [u8]);

/// One phase of a build.
pub trait Phase: Sync {
    fn name(&self) -> &'static str;
    fn title(&self) -> &'static str;
    /// The hosts taking part, in cluster order.
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node>;
    /// Whether it installs Kubernetes (a run without such a phase need not meet what only
    /// the kubelet needs).
    fn installs_kubernetes(&self) -> bool {
        false
    }
    /// Parallel unless the hosts' facts call for one host at a time.
    fn order(&self, _ctx: &Ctx, _facts: &BTreeMap<String, HostFacts>) -> Order {
        Order::Parallel
    }
    /// The facts the phase needs from `node`: by default those its steps' resources are
    /// compared against (known before the facts are: steps computed against no facts).
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        steps_query(self, ctx, node)
    }
    /// Settles the values the phase's steps use from the facts of every host.
    fn settle(
        &self,
        _ctx: &Ctx,
        _facts: &BTreeMap<String, HostFacts>,
        _values: &mut Values,
        _random: Random,
    ) -> Result<(), StepError> {
        Ok(())
    }
    /// The steps on `node`, given its facts.
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError>;
    /// What must hold across the phase's hosts once its steps are done (checked after the
    /// phase; apply waits for it).
    fn settled(&self, _ctx: &Ctx) -> Option<resources::Settle> {
        None
    }
}

/// The facts a phase's steps' resources are compared against (known before the facts are:
/// the steps computed against no facts).
pub fn steps_query<P: Phase + ?Sized>(phase: &P, ctx: &Ctx, node: &Node) -> FactQuery {
    let probe = Ctx {
        offline: true,
        ..*ctx
    };
    let mut q = FactQuery::default();
    for step in phase
        .steps(&probe, node, &HostFacts::default())
        .unwrap_or_default()
    {
        q.merge(&resources::query(&step.resources));
    }
    q
}

/// Groups of hosts a phase can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSet {
    All,
    ControlPlanes,
    First,
    OtherControlPlanes,
    Workers,
}

impl HostSet {
    pub fn select(self, cluster: &Cluster) -> Vec<&Node> {
        let first = cluster.first_control_plane();
        cluster
            .nodes
            .iter()
            .filter(|n| match self {
                HostSet::All => true,
                HostSet::ControlPlanes => n.role == crate::model::Role::ControlPlane,
                HostSet::First => std::ptr::eq(*n, first),
                HostSet::OtherControlPlanes => {
                    n.role == crate::model::Role::ControlPlane && !std::ptr::eq(*n, first)
                }
                HostSet::Workers => n.role == crate::model::Role::Worker,
            })
            .collect()
    }
}

/// Renders a template from `templates/` (strict: an unknown variable is an error).
pub fn render(
    name: &'static str,
    source: &'static str,
    ctx: minijinja::Value,
) -> Result<String, StepError> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx))
        .map_err(|e| StepError::Template {
            name,
            message: e.to_string(),
        })
}
