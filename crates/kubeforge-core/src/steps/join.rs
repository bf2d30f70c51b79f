//! Phases `join-credentials`, `join-control-planes` and `join-workers`.
//!
//! On the node the cluster lives on: stale records of nodes that join again are removed, then a
//! fresh bootstrap token and, when a control-plane node joins, a fresh certificate key from
//! `kubeadm init phase upload-certs` are made (secrets: read from the commands' output into
//! masked values). Each joining node gets kubeadm's join configuration on standard input,
//! into a file of mode 0600 that is removed when `kubeadm join` ends: no secret on a command
//! line. Control-plane nodes join one at a time, each waiting until its etcd member is healthy
//! and its kube-apiserver answers; workers join in parallel. A node whose earlier join failed
//! half-way is reset first (kubeadm's preflight would refuse it).

use crate::bootstrap::Action;
use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node, Role};
use crate::resources::{Command, Condition, Guard, Parse, Resource, Wait};
use crate::shell::quote;
use crate::steps::kubeadm::{self, JoinSecrets};

use super::init::{KUBEADM_TIMEOUT, MEMBER_DEADLINE};
use super::reset::{CONFIG_DIR, reset_step};
use super::{Ctx, ETCDCTL, HostSet, KUBECTL, Order, Phase, Step, StepError, cluster_query};

/// A bootstrap token for this run's joins (secret).
pub const JOIN_TOKEN: &str = "join-token";
/// The hash of the cluster CA's public key that joining nodes pin.
pub const CA_CERT_HASH: &str = "ca-cert-hash";
/// The key the control-plane certificates were uploaded with (secret).
pub const CERTIFICATE_KEY: &str = "certificate-key";

/// Phase `join-credentials`.
pub struct JoinCredentials;

impl Phase for JoinCredentials {
    fn name(&self) -> &'static str {
        "join-credentials"
    }
    fn title(&self) -> &'static str {
        "a fresh bootstrap token and certificate key for the nodes that join, made where the cluster lives"
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
        let me = quote(&format!("etcd-{}", node.node_name));
        let forget = state
            .cleanups
            .iter()
            .map(|c| {
                let mut what = Vec::new();
                let mut script = Vec::new();
                if c.delete_node {
                    what.push("its Node");
                    script.push(format!(
                        "{KUBECTL} delete node {} --ignore-not-found",
                        quote(&c.node)
                    ));
                }
                if let Some(m) = &c.etcd_member {
                    what.push("its etcd member");
                    script.push(format!(
                        "{KUBECTL} -n kube-system exec {me} -- {ETCDCTL} member remove {}",
                        quote(&m.id)
                    ));
                }
                Resource::Command(Command::new(
                    format!(
                        "forget {} of {}, which joins again",
                        what.join(" and "),
                        c.node
                    ),
                    script.join("\n"),
                ))
            })
            .collect();
        let joins: Vec<&str> = state.joins().collect();
        let control_planes_join = joins.iter().any(|j| {
            ctx.cluster
                .nodes
                .iter()
                .any(|n| n.node_name == *j && n.role == Role::ControlPlane)
        });
        let mut credentials = Vec::new();
        if !joins.is_empty() {
            credentials.push(Resource::Command(
                Command::new(
                    format!("make a bootstrap token for {} (valid 2 h)", joins.join(", ")),
                    "kubeadm token create --kubeconfig=/etc/kubernetes/admin.conf --ttl 2h --description 'kubeforge join' --print-join-command",
                )
                .capture(JOIN_TOKEN, true, Parse::JoinToken)
                .capture(CA_CERT_HASH, false, Parse::CaCertHash)
                .unless(Guard::Done(ctx.values.contains(JOIN_TOKEN))),
            ));
        }
        if control_planes_join {
            // With this node's own configuration: without one, kubeadm takes the advertise
            // address from the default route, and a host without one makes it refuse (0.0.0.0).
            let config = kubeadm::init_config(&kubeadm::node_config(ctx, node, facts)?)?;
            credentials.push(Resource::Command(
                Command::new(
                    "upload the control-plane certificates for the joining control-plane nodes, with a fresh key (valid 2 h)",
                    with_config_on_stdin(
                        "upload-certs",
                        config.len(),
                        "kubeadm init phase upload-certs --upload-certs --config \"$f\" --kubeconfig=/etc/kubernetes/admin.conf",
                    ),
                )
                .stdin(config.into_bytes())
                .capture(CERTIFICATE_KEY, true, Parse::CertificateKey)
                .unless(Guard::Done(ctx.values.contains(CERTIFICATE_KEY))),
            ));
        }
        Ok(vec![
            Step::new("forget-stale", forget),
            Step::new("credentials", credentials),
        ])
    }
}

/// A script that reads `len` bytes of kubeadm configuration from stdin into a file of mode
/// 0600, removed when the script ends, and runs `command` with the file as `$f`.
fn with_config_on_stdin(what: &str, len: usize, command: &str) -> String {
    format!(
        "umask 077\nmkdir -p {CONFIG_DIR}\nf=$(mktemp {CONFIG_DIR}/.{what}.XXXXXX)\ntrap 'rm -f \"$f\"' EXIT\nhead -c {len} > \"$f\"\nn=$(stat -c %s \"$f\"); [ \"$n\" -eq {len} ] || {{ echo \"{what} configuration: received $n of {len} bytes\" >&2; exit 1; }}\n{command}"
    )
}

/// The steps that join `node` when the cluster state says so: a reset of what an earlier
/// attempt left, then `kubeadm join`, then a wait until the cluster has it.
fn join_steps(ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
    let state = ctx.state(node, facts)?;
    let (join, reset) = match state.action(&node.node_name) {
        Action::Join { reset } => (true, reset.clone()),
        _ => (false, Vec::new()),
    };
    let control_plane = node.role == Role::ControlPlane;
    let mut steps = vec![reset_step(
        "reset-failed-join",
        "an earlier join or cluster",
        &reset,
    )];
    let mut resources = Vec::new();
    if join {
        let secrets = JoinSecrets {
            token: ctx.values.or_placeholder(JOIN_TOKEN),
            ca_cert_hash: ctx.values.or_placeholder(CA_CERT_HASH),
            certificate_key: control_plane.then(|| ctx.values.or_placeholder(CERTIFICATE_KEY)),
        };
        let config = kubeadm::join_config(&kubeadm::node_config(ctx, node, facts)?, &secrets)?;
        let script = with_config_on_stdin("join", config.len(), "kubeadm join --config \"$f\"");
        resources.push(Resource::Command(
            Command::new(
                format!(
                    "kubeadm join as a {} through {}",
                    if control_plane {
                        "control-plane node"
                    } else {
                        "worker"
                    },
                    ctx.cluster.control_plane_endpoint()
                ),
                script,
            )
            .stdin(config.into_bytes())
            .timeout(KUBEADM_TIMEOUT),
        ));
    }
    steps.push(Step::new("join", resources));
    let wait = if control_plane {
        Wait::new(
            format!(
                "{}'s etcd member is healthy and its kube-apiserver answers",
                node.node_name
            ),
            Condition::ControlPlaneUp {
                node: node.node_name.clone(),
                address: ctx.ip(node)?,
            },
            MEMBER_DEADLINE,
        )
    } else {
        Wait::new(
            format!("the API knows {}", node.node_name),
            Condition::Registered(node.node_name.clone()),
            MEMBER_DEADLINE,
        )
    };
    // A member whose own view was not read (the first control-plane node's serves:
    // `FactQuery::cluster_once`) is judged by that view; waited for when it misses anything.
    let seen_whole = !join
        && facts.cluster.is_none()
        && state
            .leader
            .as_deref()
            .and_then(|leader| ctx.facts?.get(leader)?.cluster.clone())
            .is_some_and(|view| {
                let seen = HostFacts {
                    cluster: Some(view),
                    ..facts.clone()
                };
                wait.condition.missing(&seen).is_empty()
            });
    let waits = if seen_whole {
        Vec::new()
    } else {
        vec![Resource::Wait(wait)]
    };
    steps.push(Step::new("joined", waits));
    Ok(steps)
}

fn join_query(ctx: &Ctx, node: &Node) -> FactQuery {
    let mut q = cluster_query(node);
    if node.role == Role::ControlPlane
        && let Ok(address) = ctx.ip(node)
    {
        q.probes.insert((address, 6443));
    }
    q
}

/// Phase `join-control-planes`.
pub struct JoinControlPlanes;

impl Phase for JoinControlPlanes {
    fn name(&self) -> &'static str {
        "join-control-planes"
    }
    fn title(&self) -> &'static str {
        "the other control-plane nodes join the cluster"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }
    fn order(&self, _ctx: &Ctx, _facts: &std::collections::BTreeMap<String, HostFacts>) -> Order {
        Order::OneAtATime
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        join_query(ctx, node)
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        join_steps(ctx, node, facts)
    }
}

/// Phase `join-workers`.
pub struct JoinWorkers;

impl Phase for JoinWorkers {
    fn name(&self) -> &'static str {
        "join-workers"
    }
    fn title(&self) -> &'static str {
        "the workers join the cluster"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::Workers.select(cluster)
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        join_query(ctx, node)
    }
    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        join_steps(ctx, node, facts)
    }
}
