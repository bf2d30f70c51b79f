//! One command on one node over SSH, outside the engine, with a deadline: how `kubeconfig`
//! reads the admin kubeconfig and `upgrade` copies its etcd snapshot to this machine.

use std::time::Duration;

use kubeforge_core::model::{Cluster, Node};
use kubeforge_engine::transport::{ExecOutput, Input};
use kubeforge_engine::{SshTransport, Transport, ssh};

use crate::converge;

/// Runs `script` (as root) on `node`; `what` names it in the error past `deadline`.
pub fn run(
    cluster: &Cluster,
    node: &Node,
    script: &str,
    what: &str,
    deadline: Duration,
) -> Result<ExecOutput, String> {
    let control_dir = ssh::control_dir()?;
    let persist = ssh::persist_from_env();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let target = converge::target(cluster, node);
    runtime.block_on(async {
        let transport = SshTransport::connect(&target, &control_dir, persist)
            .await
            .map_err(|e| e.to_string())?;
        let input = Input::default();
        tokio::time::timeout(deadline, transport.exec(script, &input))
            .await
            .map_err(|_| format!("{what}: no answer within {} s", deadline.as_secs()))?
            .map_err(|e| e.to_string())
    })
}
