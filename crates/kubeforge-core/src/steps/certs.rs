//! `kubeforge certs renew`: every certificate kubeadm manages renewed on each control-plane
//! node, one node at a time, with the API answering through the VIP throughout:
//!
//! 1. `check` (the first control-plane node): refused, with nothing changed, unless every
//!    control-plane node is Ready and its etcd member healthy (restarting one member of a
//!    cluster already missing one would lose quorum).
//! 2. each control-plane node in turn: `backend-out` (its kube-apiserver out of every HAProxy,
//!    in maintenance), `renew` (`kubeadm certs renew all`; etcd's leadership moved to another
//!    member if this node's leads; its four static pods restarted by
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
use super::{Ctx, ETCDCTL, HostSet, Job, KUBECTL, Phase, Random, Step, StepError};

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
            q.etcd_leader = true;
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
            leader_step(&node.node_name, facts, done),
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

/// When `node`'s etcd member leads, leadership is moved to another healthy voting member
/// before the node's etcd restarts: the cluster then needs no election while it is down,
/// during which the other kube-apiservers' etcd would answer them with errors (and their
/// `/healthz` through the VIP with 500).
fn leader_step(node: &str, facts: &HostFacts, done: bool) -> Step {
    let handoff = facts.cluster.as_ref().and_then(|c| {
        let me = c.member(node)?;
        if c.leader.as_deref() != Some(me.id.as_str()) {
            return None;
        }
        let to = c
            .members
            .iter()
            .find(|m| m.name != node && !m.learner && c.member_healthy(m))?;
        Some((to.name.clone(), to.id.clone()))
    });
    let resources = match handoff {
        Some((name, id)) => vec![Resource::Command(
            Command::new(
                format!("move etcd's leadership from {node} to {name}"),
                // Leadership that moved on its own since the facts were read is as good.
                format!(
                    "out=$({KUBECTL} -n kube-system exec {} -- {ETCDCTL} move-leader {} 2>&1) || case $out in
  *'no leader endpoint given'*) ;;
  *) printf '%s\\n' \"$out\" >&2; exit 1 ;;
esac",
                    quote(&format!("etcd-{node}")),
                    quote(&id)
                ),
            )
            .unless(Guard::Done(done)),
        )],
        None => Vec::new(),
    };
    Step::new("etcd-leader", resources)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::cluster::{ClusterFacts, EtcdMember};

    fn facts(leader: &str, healthy: &[&str]) -> HostFacts {
        let member = |n: u8| EtcdMember {
            id: format!("{n:x}a"),
            name: format!("k8scp0{n}"),
            peer_urls: vec![format!("https://10.0.0.1{n}:2380")],
            learner: false,
        };
        HostFacts {
            cluster: Some(ClusterFacts {
                members: (1..=3).map(member).collect(),
                health: (1..=3)
                    .map(|n| {
                        let name = format!("k8scp0{n}");
                        (
                            format!("https://10.0.0.1{n}:2379"),
                            healthy.contains(&name.as_str()),
                        )
                    })
                    .collect(),
                leader: Some(leader.to_string()),
                ..ClusterFacts::default()
            }),
            ..HostFacts::default()
        }
    }

    fn scripts(step: &Step, facts: &HostFacts) -> Vec<String> {
        crate::resources::changes(step.id, &step.resources, facts)
            .into_iter()
            .map(|c| format!("{}: {}", c.summary, c.script))
            .collect()
    }

    /// The leader hands off to a healthy voting member before its etcd restarts; a node that
    /// does not lead, or whose restart is done, moves nothing.
    #[test]
    fn leadership_moves_off_a_node_before_its_etcd_restarts() {
        let all = ["k8scp01", "k8scp02", "k8scp03"];
        let f = facts("1a", &all);
        let moved = scripts(&leader_step("k8scp01", &f, false), &f);
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(
            moved[0].starts_with("move etcd's leadership from k8scp01 to k8scp02: ")
                && moved[0].contains("exec etcd-k8scp01 -- etcdctl ")
                && moved[0].contains(" move-leader 2a"),
            "{moved:?}"
        );
        // The next healthy member takes it when the first other one is down.
        let f2 = facts("1a", &["k8scp01", "k8scp03"]);
        let moved = scripts(&leader_step("k8scp01", &f2, false), &f2);
        assert!(moved[0].contains(" move-leader 3a"), "{moved:?}");
        assert!(scripts(&leader_step("k8scp02", &f, false), &f).is_empty());
        assert!(scripts(&leader_step("k8scp01", &f, true), &f).is_empty());
        let alone = facts("1a", &["k8scp01"]);
        assert!(scripts(&leader_step("k8scp01", &alone, false), &alone).is_empty());
    }

    /// The hand-off's script run by sh against a kubectl that answers as etcdctl does: a
    /// node that no longer leads is as good (exit 0), any other error stops the step with
    /// etcdctl's words on stderr.
    #[test]
    fn a_leadership_that_moved_meanwhile_is_as_good_and_other_errors_stop() {
        let kubectl = crate::fake_kubectl::FakeKubectl::new(
            "handoff",
            "echo \"$*\" >> \"$D/calls\"\necho \"$ANSWER\" >&2\nexit \"$CODE\"\n",
        );
        let f = facts("1a", &["k8scp01", "k8scp02", "k8scp03"]);
        let step = leader_step("k8scp01", &f, false);
        let changes = crate::resources::changes(step.id, &step.resources, &f);
        let run = |answer: &str, code: &str| {
            kubectl.run(&changes[0].script, &[("ANSWER", answer), ("CODE", code)])
        };
        let moved = run(
            "Error: no leader endpoint given at [https://127.0.0.1:2379]",
            "1",
        );
        assert!(moved.status.success(), "{moved:?}");
        let bad = run("Error: etcdserver: bad leader transferee", "1");
        assert!(!bad.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("bad leader transferee"),
            "{bad:?}"
        );
        let done = run("Leadership transferred from 1a to 2a", "0");
        assert!(done.status.success(), "{done:?}");
        let calls = std::fs::read_to_string(kubectl.dir.join("calls")).unwrap();
        assert!(
            calls.contains("exec etcd-k8scp01 -- etcdctl --endpoints=https://127.0.0.1:2379")
                && calls.contains(" move-leader 2a"),
            "{calls}"
        );
    }
}
