//! `kubeforge status`'s job: the build's phases, only planned (what `plan` would change),
//! and a last phase that changes nothing and asks each control-plane node what the status
//! shows (the cluster with etcd's leader, HAProxy's servers, certificates' expiry), so that
//! every host answers in one round trip. Without the plan (some host did not answer), the
//! last phase alone.

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node, Role};

use super::{Ctx, HostSet, Job, PHASES, Phase, Step, StepError};

/// The job: with `plan`, the build's phases first.
pub struct Status {
    pub plan: bool,
}

impl Job for Status {
    fn phases(&self) -> Vec<&dyn Phase> {
        let mut phases: Vec<&dyn Phase> = if self.plan {
            PHASES.to_vec()
        } else {
            Vec::new()
        };
        phases.push(&Observe);
        phases
    }
    fn preflight(&self) -> bool {
        self.plan
    }
}

/// The facts the status reads, and no step.
pub struct Observe;

impl Phase for Observe {
    fn name(&self) -> &'static str {
        "status"
    }
    fn title(&self) -> &'static str {
        "the cluster, etcd, the VIP, HAProxy and the certificates, read"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::All.select(cluster)
    }
    fn query(&self, _ctx: &Ctx, node: &Node) -> FactQuery {
        let control_plane = node.role == Role::ControlPlane;
        FactQuery {
            cluster: control_plane,
            cluster_once: true,
            etcd_leader: control_plane,
            haproxy: control_plane,
            certs: control_plane,
            ..FactQuery::default()
        }
    }
    fn steps(&self, _ctx: &Ctx, _node: &Node, _facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        Ok(Vec::new())
    }
}
