//! Phase `kubeconfigs`: kubectl ready for root and for the user kubeforge logs in as on every
//! control-plane node (a copy of the admin kubeconfig, mode 0600, owned by that user). Apply
//! ends here once the cluster is whole: every node Ready (with a pod network), kube-proxy and
//! the pod network running a ready pod on every node, the control plane's static pods running
//! on every control-plane node, one healthy etcd member per control-plane node, and the API
//! answering through the VIP.

use std::time::Duration;

use crate::facts::{FactQuery, HostFacts, LOGIN_USER, Read};
use crate::model::{Cluster, Node};
use crate::resources::{ClusterCondition, Command, Guard, Resource, Settle};
use crate::shell::quote;

use super::{Ctx, HostSet, Phase, Step, StepError};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const KUBECONFIG: &str = ".kube/config";
/// How long apply waits for the whole cluster to be Ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(300);

pub struct Kubeconfigs;

impl Phase for Kubeconfigs {
    fn name(&self) -> &'static str {
        "kubeconfigs"
    }
    fn title(&self) -> &'static str {
        "kubectl for root and the SSH user on every control-plane node (apply then waits until the whole cluster is Ready)"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn query(&self, _ctx: &Ctx, _node: &Node) -> FactQuery {
        let mut q = FactQuery::default();
        q.file(ADMIN_CONF, Read::Hash);
        q.home_files.insert(("root".into(), KUBECONFIG.into()));
        q.home_files.insert((LOGIN_USER.into(), KUBECONFIG.into()));
        q
    }

    fn steps(&self, ctx: &Ctx, _node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let admin = facts.file(ADMIN_CONF).map(|f| f.sha256.as_str());
        let mut resources = vec![copy(facts, admin, "root", "root")];
        let login = facts.login.as_str();
        if ctx.offline {
            resources.push(copy(facts, admin, LOGIN_USER, "the SSH user"));
        } else if !login.is_empty() && login != "root" {
            resources.push(copy(facts, admin, LOGIN_USER, login));
        }
        Ok(vec![Step::new("kubeconfigs", resources)])
    }

    fn settled(&self, ctx: &Ctx) -> Option<Settle> {
        let state = ctx.cluster_state().ok()?;
        let on = state.home()?.to_string();
        let (namespace, name) = crate::cni::KUBE_PROXY;
        let mut daemonsets = vec![(namespace.to_string(), name.to_string())];
        // A pod network kubeforge cannot name has failed its own phase already.
        daemonsets.extend(
            crate::cni::node_daemonset(ctx.cluster, ctx.bundle)
                .ok()
                .flatten(),
        );
        let skipped = |name: &str| {
            ctx.facts
                .and_then(|f| f.get(name))
                .is_some_and(|f| f.skipped)
        };
        let judged = |nodes: &mut dyn Iterator<Item = &crate::model::Node>| -> Vec<String> {
            nodes
                .filter(|n| !skipped(&n.node_name))
                .map(|n| n.node_name.clone())
                .collect()
        };
        Some(Settle {
            what: "the cluster is Ready".into(),
            condition: ClusterCondition::Ready {
                on,
                nodes: judged(&mut ctx.cluster.nodes.iter()),
                control_planes: judged(&mut ctx.cluster.control_planes()),
                network: ctx.cluster.cni != crate::model::Cni::None,
                daemonsets,
                skipped: ctx
                    .cluster
                    .nodes
                    .iter()
                    .filter(|n| skipped(&n.node_name))
                    .map(|n| n.node_name.clone())
                    .collect(),
            },
            deadline: READY_DEADLINE,
        })
    }
}

/// The admin kubeconfig copied to `user`'s `~/.kube/config` (`user` as the facts key it;
/// `name` as shown), atomically, mode 0600, owned by the user; done when the copy is there
/// with the admin kubeconfig's hash, mode and owner.
fn copy(facts: &HostFacts, admin: Option<&str>, user: &str, name: &str) -> Resource {
    let current = facts
        .home_files
        .get(&(user.to_string(), KUBECONFIG.to_string()))
        .and_then(Option::as_ref);
    let owner = if user == LOGIN_USER { name } else { user };
    let done = match (current, admin) {
        (Some(f), Some(sha)) => f.sha256 == sha && f.mode == 0o600 && f.owner == owner,
        _ => false,
    };
    let who = if user == LOGIN_USER {
        "\"${SUDO_USER:-$(id -un)}\"".to_string()
    } else {
        quote(user)
    };
    Resource::Command(
        Command::new(
            format!("copy the admin kubeconfig to {name}'s ~/{KUBECONFIG} (mode 0600)"),
            format!(
                "u={who}\nh=$(getent passwd \"$u\" | cut -d: -f6)\ng=$(id -gn \"$u\")\n[ -n \"$h\" ] || {{ echo \"no home directory for $u\" >&2; exit 1; }}\ninstall -d -m 0700 -o \"$u\" -g \"$g\" \"$h/.kube\"\nt=$(mktemp \"$h/.kube/.config.XXXXXX\")\ntrap 'rm -f \"$t\"' EXIT\ncat {ADMIN_CONF} > \"$t\"\nchmod 0600 \"$t\"; chown \"$u:$g\" \"$t\"\nmv -f \"$t\" \"$h/{KUBECONFIG}\""
            ),
        )
        .unless(Guard::Done(done)),
    )
}
