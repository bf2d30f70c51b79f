//! `kubeforge certs renew`: every certificate kubeadm manages renewed on each control-plane
//! node, one node at a time, with the API answering through the VIP throughout:
//!
//! 1. `check` (the first control-plane node): refused, with nothing changed, unless every
//!    control-plane node is Ready and its etcd member healthy (restarting one member of a
//!    cluster already missing one would lose quorum).
//! 2. each control-plane node in turn: `backend-out` (its kube-apiserver out of every HAProxy,
//!    in maintenance), `renew` (`kubeadm certs renew all`; its four static pods restarted by
//!    marking their manifests with the run's stamp, [`RENEWED`], which the kubelet sees as a
//!    changed pod; waited for until each runs from the marked manifest and is ready, its etcd
//!    member healthy and the API answering; the admin kubeconfigs copied again), `backend-in`.
//!
//! The stamp is the run's: a node whose static pods carry it is done (what the run checks
//! after each node). Every run renews every control-plane node again, as `kubeadm certs
//! renew` does.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node};
use crate::resources::{CERTIFICATE_PODS, Command, Condition, Guard, RENEWED, Resource, Wait};
use crate::shell::quote;
use crate::values::Values;

use super::upgrade::backend_step;
use super::{Ctx, HostSet, Job, Phase, Random, Step, StepError};

const MANIFESTS: &str = "/etc/kubernetes/manifests";
const RESTART_DEADLINE: Duration = Duration::from_secs(300);

/// The phases of a renewal stamped `stamp` (any text unique to the run: its start time).
pub struct RenewJob {
    turns: Vec<Turn>,
}

impl RenewJob {
    pub fn new(cluster: &Cluster, stamp: &str) -> Self {
        let mut nodes = HostSet::First.select(cluster);
        nodes.extend(HostSet::OtherControlPlanes.select(cluster));
        let turns = nodes
            .iter()
            .flat_map(|n| {
                [Stage::BackendOut, Stage::Renew, Stage::BackendIn].map(|stage| Turn {
                    node: n.node_name.clone(),
                    stamp: stamp.to_string(),
                    stage,
                })
            })
            .collect();
        RenewJob { turns }
    }
}

impl Job for RenewJob {
    fn phases(&self) -> Vec<&dyn Phase> {
        let mut out: Vec<&dyn Phase> = vec![&Check];
        out.extend(self.turns.iter().map(|t| t as &dyn Phase));
        out
    }
}

/// Whether `node`'s static pods all carry `stamp`, as the API shows on a control-plane node.
fn restarted(facts: &HostFacts, node: &str, stamp: &str) -> bool {
    let Some(api) = facts.cluster.as_ref() else {
        return false;
    };
    CERTIFICATE_PODS.iter().all(|component| {
        let name = format!("{component}-{node}");
        api.pods
            .iter()
            .find(|p| p.name == name)
            .is_some_and(|p| p.marks.get(RENEWED).map(String::as_str) == Some(stamp))
    })
}

fn query(node: &Node) -> FactQuery {
    let mut q = super::cluster_query(node);
    // Each node's own view: its steps judge its static pods from it.
    q.cluster_once = false;
    q.haproxy = true;
    q
}

/// Phase `check`: every control-plane node Ready and its etcd member healthy.
struct Check;

impl Phase for Check {
    fn name(&self) -> &'static str {
        "check"
    }
    fn title(&self) -> &'static str {
        "check that every control-plane node is Ready and its etcd member healthy"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::First.select(cluster)
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        query(node)
    }
    fn settle(
        &self,
        ctx: &Ctx,
        facts: &BTreeMap<String, HostFacts>,
        _values: &mut Values,
        _random: Random,
    ) -> Result<(), StepError> {
        check(ctx.cluster, facts).map_err(StepError::Cluster)
    }
    fn steps(&self, _ctx: &Ctx, _node: &Node, _facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(Vec::new())
    }
}

/// Whether the certificates may be renewed now, from the first control-plane node's facts;
/// why not.
pub fn check(cluster: &Cluster, facts: &BTreeMap<String, HostFacts>) -> Result<(), String> {
    let first = cluster.first_control_plane();
    let theirs = facts.get(&first.node_name);
    let api = theirs.and_then(|f| f.cluster.as_ref()).ok_or_else(|| {
        format!(
            "{} has no cluster (no admin kubeconfig): build it with `kubeforge apply` first",
            first.node_name
        )
    })?;
    if !api.api_ready() {
        return Err(format!(
            "the API does not answer through the endpoint ({}): renewing restarts each control-plane node in turn and needs a healthy cluster",
            api.readyz
        ));
    }
    let mut problems = Vec::new();
    for cp in cluster.control_planes() {
        let name = &cp.node_name;
        match api.node(name) {
            None => problems.push(format!("{name} is not in the cluster")),
            Some(s) if s.ready != Some(true) => problems.push(format!("{name} is not Ready")),
            Some(_) => {}
        }
        problems.extend(api.member_problem(name).map(|p| p.text()));
    }
    let (healthy, voters) = api.quorum();
    if healthy < voters {
        problems.push(format!(
            "etcd has {healthy} of {voters} members healthy: restarting one more would leave {} of the {} needed",
            healthy.saturating_sub(1),
            voters / 2 + 1
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the renewal is refused, nothing was changed:\n  - {}",
            problems.join("\n  - ")
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    BackendOut,
    Renew,
    BackendIn,
}

/// One stage of a control-plane node's turn.
struct Turn {
    node: String,
    stamp: String,
    stage: Stage,
}

impl Phase for Turn {
    fn name(&self) -> &'static str {
        match self.stage {
            Stage::BackendOut => "backend-out",
            Stage::Renew => "renew",
            Stage::BackendIn => "backend-in",
        }
    }
    fn title(&self) -> &'static str {
        match self.stage {
            Stage::BackendOut => {
                "the next node's kube-apiserver out of every HAProxy (maintenance)"
            }
            Stage::Renew => {
                "kubeadm certs renew all, the static pods restarted on them, the kubeconfigs copied"
            }
            Stage::BackendIn => "its kube-apiserver back in every HAProxy",
        }
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        match self.stage {
            Stage::Renew => cluster
                .nodes
                .iter()
                .filter(|n| n.node_name == self.node)
                .collect(),
            Stage::BackendOut | Stage::BackendIn => HostSet::ControlPlanes.select(cluster),
        }
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = query(node);
        q.merge(&super::steps_query(self, ctx, node));
        if self.stage == Stage::Renew {
            q.merge(&super::kubeconfigs::Kubeconfigs.query(ctx, node));
        }
        q
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let done = restarted(facts, &self.node, &self.stamp);
        if self.stage != Stage::Renew {
            let out = self.stage == Stage::BackendOut;
            return Ok(vec![backend_step(
                ctx.cluster,
                &self.node,
                facts,
                out,
                done,
            )]);
        }
        let mut steps = vec![
            Step::new(
                "renew",
                vec![Resource::Command(
                    Command::new(
                        "kubeadm certs renew all",
                        "kubeadm certs renew all",
                    )
                    .unless(Guard::Done(done))
                    .timeout(Duration::from_secs(120)),
                )],
            ),
            Step::new(
                "restart",
                vec![Resource::Command(
                    Command::new(
                        format!(
                            "restart etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the renewed certificates (their manifests marked {RENEWED}: {})",
                            self.stamp
                        ),
                        mark_script(&self.stamp),
                    )
                    .unless(Guard::Done(done)),
                )],
            ),
            Step::new(
                "wait",
                vec![Resource::Wait(Wait::new(
                    format!(
                        "{}'s static pods run on the renewed certificates, ready",
                        node.node_name
                    ),
                    Condition::Restarted {
                        node: node.node_name.clone(),
                        stamp: self.stamp.clone(),
                    },
                    RESTART_DEADLINE,
                ))],
            ),
        ];
        // The admin kubeconfig's client certificate was renewed: the copies follow.
        steps.extend(super::kubeconfigs::Kubeconfigs.steps(ctx, node, facts)?);
        Ok(steps)
    }
}

/// Marks each of [`CERTIFICATE_PODS`]' manifests with `stamp` (the annotation [`RENEWED`],
/// any earlier one replaced), checked, then renamed into place: the kubelet restarts a static
/// pod whose manifest changed, and its mirror pod shows the stamp.
pub fn mark_script(stamp: &str) -> String {
    let line = quote(&format!("    {RENEWED}: \"{stamp}\""));
    let key = quote(&format!("^    {RENEWED}:"));
    let pods = CERTIFICATE_PODS.join(" ");
    format!(
        r#"line={line}
key={key}
install -d -m 0700 /etc/kubernetes/tmp
for c in {pods}; do
  m={MANIFESTS}/$c.yaml
  t=/etc/kubernetes/tmp/kubeforge-$c.yaml
  [ -f "$m" ] || {{ echo "$m is missing" >&2; exit 1; }}
  awk -v line="$line" -v key="$key" '
    $0 ~ key {{ next }}
    meta == 1 {{ meta = 0; if ($0 == "  annotations:") {{ print; print line; next }} print "  annotations:"; print line }}
    $0 == "metadata:" {{ meta = 1 }}
    {{ print }}' "$m" > "$t"
  if [ "$(grep -c -- "$key" "$t")" != 1 ] || [ "$(grep -c -v -- "$key" "$t")" -lt "$(grep -c -v -- "$key" "$m")" ]; then
    rm -f "$t"; echo "$m: its metadata could not be marked" >&2; exit 1
  fi
  chmod 0600 "$t"
  if cmp -s "$t" "$m"; then rm -f "$t"; else mv -f "$t" "$m"; fi
done"#
    )
}
