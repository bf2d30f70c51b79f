//! Phase `init`: `kubeadm init` on the first control-plane node, only when no cluster exists
//! anywhere ([`crate::bootstrap`] decides from the facts of every node). A marker file on the
//! node brackets the run, so that a failed or interrupted init is told apart from a cluster:
//! the next apply resets it and tries again.

use std::time::Duration;

use crate::bootstrap::Action;
use crate::facts::{FactQuery, HostFacts, INIT_MARKER, Read};
use crate::model::{Cluster, Node};
use crate::resources::{Command, Condition, File, Guard, Resource, Wait};

use super::reset::{CONFIG_DIR, reset_step};
use super::restore::{IGNORED_PREFLIGHT, Restore};
use super::{Ctx, HostSet, Order, Phase, Step, StepError, cluster_query};

/// kubeadm's configuration for init, kept on the node (it holds no secret).
pub const INIT_CONFIG: &str = "/etc/kubeforge/kubeadm-init.yaml";
/// How long kubeadm init and join may take (image pulls, a slow etcd).
pub const KUBEADM_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a new control-plane node may take to show up healthy in the API and etcd.
pub const MEMBER_DEADLINE: Duration = Duration::from_secs(240);

/// The phase; `restore`: the cluster starts from a backup ([`super::restore`]).
pub struct Init {
    pub restore: Option<Restore>,
}

impl Init {
    /// `kubeadm init` of a new cluster.
    pub const BUILD: Init = Init { restore: None };
}

impl Phase for Init {
    fn name(&self) -> &'static str {
        "init"
    }
    fn title(&self) -> &'static str {
        "kubeadm init on the first control-plane node, unless a cluster exists"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn order(&self, _ctx: &Ctx, _facts: &std::collections::BTreeMap<String, HostFacts>) -> Order {
        Order::One
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = cluster_query(node);
        if let Ok(address) = ctx.ip(node) {
            q.probes.insert((address, 6443));
        }
        q.file(INIT_CONFIG, Read::Content);
        q
    }

    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let state = ctx.state(node, facts)?;
        // The node the cluster is made on, or lives on (where a stale marker is cleared).
        if state.home() != Some(node.node_name.as_str()) {
            return Ok(Vec::new());
        }
        let action = state.action(&node.node_name);
        let (init, reset) = match action {
            Action::Init { reset } => (true, reset.clone()),
            _ => (false, Vec::new()),
        };
        let mut steps = Vec::new();
        steps.push(reset_step(
            "reset-failed-init",
            "a failed kubeadm init",
            &reset,
        ));
        let mut resources = Vec::new();
        if init {
            let config = super::kubeadm::node_config(ctx, node, facts)?;
            resources.push(Resource::File(File::new(
                INIT_CONFIG,
                crate::steps::kubeadm::init_config(&config)?,
                0o600,
            )));
        }
        let restore = self.restore.as_ref().filter(|_| init);
        if let Some(restore) = restore {
            resources.push(Resource::Command(
                Command::new(
                    format!(
                        "restore the backup taken {}: the CAs and service-account keys into /etc/kubernetes/pki, etcd's data from its snapshot (a new etcd of one member, {})",
                        restore.taken, node.node_name
                    ),
                    super::restore::script(node, &ctx.ip(node)?, restore.payload.len(), INIT_CONFIG),
                )
                .stdin(restore.payload.clone())
                .timeout(KUBEADM_TIMEOUT),
            ));
        }
        let ignore = if restore.is_some() {
            format!(" --ignore-preflight-errors={IGNORED_PREFLIGHT}")
        } else {
            String::new()
        };
        resources.push(Resource::Command(
            Command::new(
                format!(
                    "kubeadm init: {} the cluster, its endpoint {}",
                    if restore.is_some() {
                        "start"
                    } else {
                        "create"
                    },
                    ctx.cluster.control_plane_endpoint()
                ),
                format!(
                    "mkdir -p /var/lib/kubeforge {CONFIG_DIR}\ntouch {INIT_MARKER}\nkubeadm init --config {INIT_CONFIG} --skip-token-print --skip-certificate-key-print{ignore}"
                ),
            )
            .unless(Guard::Done(!init))
            .timeout(KUBEADM_TIMEOUT),
        ));
        steps.push(Step::new("init", resources));
        steps.push(Step::new(
            "control-plane-up",
            vec![Resource::Wait(Wait::new(
                format!("{} is in the cluster and healthy", node.node_name),
                Condition::ControlPlaneUp {
                    node: node.node_name.clone(),
                    address: ctx.ip(node)?,
                },
                MEMBER_DEADLINE,
            ))],
        ));
        // Init succeeded: the marker goes (only now, so that an init killed before its cluster
        // answered is still known as a failed one).
        steps.push(Step::new(
            "init-done",
            vec![Resource::Command(
                Command::new(
                    "note that kubeadm init finished",
                    format!("rm -f {INIT_MARKER}"),
                )
                .unless(Guard::Done(init || !facts.kubeadm.init_started)),
            )],
        ));
        Ok(steps)
    }
}
