//! Phase `node-roles`: every node's role as the API shows it, set again where it drifted. A
//! control-plane node carries the `node-role.kubernetes.io/control-plane` label, and its taint
//! (`NoSchedule`) unless `control_plane_workloads` lets pods run there; a worker carries
//! neither. kubeadm sets them when a node joins; this keeps them when the setting changes or
//! someone retaints a node, and finishes a control-plane join killed before kubeadm marked the
//! node.

use crate::facts::{FactQuery, HostFacts, NodeStatus};
use crate::model::{Cluster, Node, Role};
use crate::resources::{Command, Resource};
use crate::shell::quote;

use super::{Ctx, HostSet, KUBECTL, Order, Phase, Step, StepError, cluster_query};

/// The control-plane role's label and taint key.
pub const CONTROL_PLANE_ROLE: &str = "node-role.kubernetes.io/control-plane";

pub struct Roles;

impl Phase for Roles {
    fn name(&self) -> &'static str {
        "node-roles"
    }
    fn title(&self) -> &'static str {
        "each node's role label and control-plane taint as the inventory says, set where the cluster lives"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn order(&self, _ctx: &Ctx, _facts: &std::collections::BTreeMap<String, HostFacts>) -> Order {
        Order::One
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        cluster_query(node)
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let state = ctx.state(node, facts)?;
        if state.home() != Some(node.node_name.as_str()) {
            return Ok(Vec::new());
        }
        // The API's view, here or on the node the state was decided from.
        let view = facts.cluster.as_ref().or_else(|| {
            ctx.facts
                .and_then(|f| f.values().find_map(|h| h.cluster.as_ref()))
        });
        let mut resources = Vec::new();
        for n in &ctx.cluster.nodes {
            let Some(status) = view.and_then(|v| v.node(&n.node_name)) else {
                continue;
            };
            resources.extend(role_fixes(ctx.cluster, n, status));
        }
        Ok(vec![Step::new("roles", resources)])
    }
}

/// What makes `status` carry `node`'s role: a label and a taint to add or remove.
fn role_fixes(cluster: &Cluster, node: &Node, status: &NodeStatus) -> Vec<Resource> {
    let control_plane = node.role == Role::ControlPlane;
    let taint = format!("{CONTROL_PLANE_ROLE}:NoSchedule");
    let labelled = status.role_labels.iter().any(|l| l == CONTROL_PLANE_ROLE);
    let tainted = status.taints.contains(&taint);
    let want_taint = control_plane && !cluster.control_plane_workloads;
    let name = quote(&node.node_name);
    let mut out = Vec::new();
    if control_plane != labelled {
        let (what, arg) = if control_plane {
            ("label", format!("{CONTROL_PLANE_ROLE}="))
        } else {
            ("remove the label", format!("{CONTROL_PLANE_ROLE}-"))
        };
        out.push(Resource::Command(Command::new(
            format!("{what} {CONTROL_PLANE_ROLE} on {}", node.node_name),
            format!("{KUBECTL} label node {name} {} --overwrite", quote(&arg)),
        )));
    }
    if want_taint != tainted {
        let (what, arg, why) = if want_taint {
            ("taint", taint.clone(), "control_plane_workloads is false")
        } else if control_plane {
            (
                "remove the taint",
                format!("{taint}-"),
                "control_plane_workloads is true",
            )
        } else {
            ("remove the taint", format!("{taint}-"), "it is a worker")
        };
        out.push(Resource::Command(Command::new(
            format!("{what} {taint} on {} ({why})", node.node_name),
            format!("{KUBECTL} taint node {name} {}", quote(&arg)),
        )));
    }
    out
}
