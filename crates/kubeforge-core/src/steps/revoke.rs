//! Phase `revoke`: once every node has joined, the join credentials go, as kubeadm's own
//! documentation advises: every bootstrap token (the one this run made, and the 24-hour one
//! `kubeadm init` makes and prints) and the `kubeadm-certs` Secret with the control-plane
//! certificates uploaded for the joins. A later run that joins nodes makes fresh ones.

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node};
use crate::resources::{Command, Guard, Resource};
use crate::shell::quote;

use super::{Ctx, HostSet, KUBECTL, Order, Phase, Step, StepError, cluster_query};

pub struct Revoke;

impl Phase for Revoke {
    fn name(&self) -> &'static str {
        "revoke"
    }
    fn title(&self) -> &'static str {
        "the join credentials (bootstrap tokens, the uploaded certificates) deleted on the first control-plane node once every node has joined"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn order(&self, _ctx: &Ctx, _facts: &std::collections::BTreeMap<String, HostFacts>) -> Order {
        Order::One
    }
    /// The credentials are the cluster's, the same seen from any node: the first control-plane
    /// node, a member once every node has joined, asks for them and deletes them (one kubectl
    /// a run, not one per control-plane node).
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = cluster_query(node);
        q.credentials = std::ptr::eq(node, ctx.cluster.first_control_plane());
        q
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        if !std::ptr::eq(node, ctx.cluster.first_control_plane()) {
            return Ok(Vec::new());
        }
        let (names, what) = match &facts.credentials {
            // Offline: what a build from bare hosts leaves, init's token and this run's.
            None if ctx.offline => (
                vec![
                    "<bootstrap-token-...>".to_string(),
                    "kubeadm-certs".to_string(),
                ],
                "the bootstrap tokens and the uploaded control-plane certificates (kubeadm-certs)"
                    .to_string(),
            ),
            None => (Vec::new(), String::new()),
            Some(names) => {
                let tokens = names
                    .iter()
                    .filter(|n| n.starts_with("bootstrap-token-"))
                    .count();
                let certs = names.iter().any(|n| n == "kubeadm-certs");
                let what = match (tokens, certs) {
                    (0, _) => "the uploaded control-plane certificates (kubeadm-certs)".to_string(),
                    (n, false) => format!("{n} bootstrap token(s)"),
                    (n, true) => format!(
                        "{n} bootstrap token(s) and the uploaded control-plane certificates (kubeadm-certs)"
                    ),
                };
                (names.clone(), what)
            }
        };
        let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
        Ok(vec![Step::new(
            "credentials",
            vec![Resource::Command(
                Command::new(
                    format!("delete {what}: every node has joined"),
                    format!(
                        "{KUBECTL} -n kube-system delete secret --ignore-not-found {}",
                        quoted.join(" ")
                    ),
                )
                .unless(Guard::Done(names.is_empty())),
            )],
        )])
    }
}
