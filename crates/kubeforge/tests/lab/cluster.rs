//! The cluster on the lab, with the test stand-ins for kubeadm, kubelet and kubectl (they
//! simulate a cluster across the hosts; they prove nothing about the real programs): apply
//! builds a Ready 3+1 cluster, a second apply changes nothing, nodes added later join with
//! fresh credentials, a join that failed half-way is reset and retried, kubeforge killed after
//! init never makes a second cluster, reset leaves the hosts clean and apply builds again, and
//! no token or certificate key shows anywhere.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kubeforge_lab::sys::wait_until;
use kubeforge_standins::state::{CommandRecord, State, Store};
use libtest_mimic::Trial;

use crate::fixture::{CLUSTER, TestResult, ensure, kubeforge, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "cluster::apply_builds_a_ready_cluster_and_a_second_changes_nothing",
            builds_a_ready_cluster,
        ),
        // Reads the cluster just built; each problem it makes, it undoes.
        crate::status::trials().remove(0),
        crate::certs::trials().remove(0),
        crate::backup::trials().remove(0),
        crate::restore::trials().remove(0),
        crate::remove::trials().remove(0),
        Trial::test(
            "cluster::roles_that_drifted_and_join_files_a_killed_run_left_are_set_right",
            drift_is_set_right,
        ),
        Trial::test(
            "cluster::kubeconfig_is_written_and_merged_on_this_machine",
            kubeconfig_here,
        ),
        Trial::test(
            "cluster::a_worker_added_later_joins_with_a_fresh_token",
            worker_added,
        ),
        Trial::test(
            "cluster::a_control_plane_node_added_later_joins_and_every_haproxy_lists_it",
            control_plane_added,
        ),
        Trial::test(
            "cluster::a_join_that_failed_half_way_is_reset_and_retried",
            half_joined,
        ),
        Trial::test(
            "cluster::reset_of_one_worker_drains_deletes_and_cleans_it",
            reset_one_worker,
        ),
        // Leaves the cluster without k8scp01; the next trial resets every host.
        crate::remove::trials().remove(1),
        Trial::test(
            "cluster::reset_leaves_the_hosts_clean_and_apply_builds_again",
            reset_and_rebuild,
        ),
        // Upgrades the rebuilt cluster, then resets the hosts with --all.
        crate::upgrade::trials().remove(0),
        Trial::test(
            "cluster::kubeforge_killed_after_init_never_makes_a_second_cluster",
            killed_after_init,
        ),
        Trial::test(
            "cluster::no_token_or_certificate_key_in_any_output_log_or_command_line",
            no_secrets,
        ),
    ]
}

/// The hosts with a worker added, then a control-plane node too.
const WITH_WORKER: &[&str] = &["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];
const ALL: &[&str] = &["k8scp01", "k8scp02", "k8scp03", "k8scp04", "k8s01", "k8s02"];

/// Everything kubeforge printed in these trials, searched for secrets at the end.
static OUTPUT: Mutex<String> = Mutex::new(String::new());

fn log_dir() -> PathBuf {
    crate::fixture::lab_dir().join("cluster-test-logs")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
}

impl Run {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `kubeforge ARGS -i <the inventory of hosts>`, recorded.
pub fn run_on(hosts: &[&str], args: &[&str]) -> Result<Run, libtest_mimic::Failed> {
    let f = lab()?;
    let started = Instant::now();
    let out = kubeforge()
        .args(args)
        .arg("-i")
        .arg(f.inventory_of(hosts)?)
        .output()?;
    Ok(record(out, started))
}

pub fn record(output: Output, started: Instant) -> Run {
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut all = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
    all.push_str(&run.stdout);
    all.push_str(&run.stderr);
    run
}

/// `kubeforge ARGS -i <inventory of hosts> --log-dir ...`.
fn kubeforge_on(hosts: &[&str], args: &[&str]) -> Result<Run, libtest_mimic::Failed> {
    let dir = log_dir();
    let mut all = args.to_vec();
    all.extend(["--log-dir", dir.to_str().unwrap_or_default()]);
    run_on(hosts, &all)
}

fn apply(hosts: &[&str]) -> Result<Run, libtest_mimic::Failed> {
    let run = kubeforge_on(hosts, &["apply"])?;
    ensure(run.code == 0, || {
        format!("apply on {hosts:?} failed:\n{}", run.text())
    })?;
    note(&format!(
        "apply on {} hosts: {:.1} s",
        hosts.len(),
        run.seconds
    ));
    Ok(run)
}

/// The changes a JSON report lists.
pub fn change_count(json: &str) -> Result<usize, libtest_mimic::Failed> {
    let report: serde_json::Value = serde_json::from_str(json)?;
    Ok(report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["hosts"].as_array().into_iter().flatten())
        .map(|h| h["changes"].as_array().map_or(0, Vec::len))
        .sum())
}

fn store() -> Result<Store, libtest_mimic::Failed> {
    Ok(Store::at(lab()?.lab.paths().shared().join("standin")))
}

pub fn state() -> Result<State, libtest_mimic::Failed> {
    Ok(store()?.read().map_err(|e| e.to_string())?)
}

/// The stand-ins' cluster kubeforge built (the newest).
fn current(state: &State) -> Result<&kubeforge_standins::state::Cluster, libtest_mimic::Failed> {
    Ok(state
        .clusters
        .last()
        .ok_or("the stand-ins hold no cluster")?)
}

pub fn commands_since(since_ms: i64) -> Result<Vec<CommandRecord>, libtest_mimic::Failed> {
    Ok(store()?
        .commands()
        .into_iter()
        .filter(|c| c.time_ms >= since_ms)
        .collect())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `kubeadm SUB...` invocations among `commands`.
fn ran<'c>(commands: &'c [CommandRecord], words: &[&str]) -> Vec<&'c CommandRecord> {
    commands
        .iter()
        .filter(|c| c.program == "kubeadm" && words.iter().all(|w| c.argv.iter().any(|a| a == w)))
        .collect()
}

/// Every node of `hosts` is in the cluster and Ready, every control-plane node has its
/// static pods and one healthy etcd member, as the API tells through the VIP.
pub fn whole(hosts: &[&str]) -> TestResult {
    let f = lab()?;
    let nodes = f.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes -o json",
    )?;
    let nodes: serde_json::Value = serde_json::from_str(&nodes)?;
    let ready: BTreeSet<String> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    let wanted: BTreeSet<String> = hosts.iter().map(|h| h.to_string()).collect();
    ensure(ready == wanted, || {
        format!("Ready nodes {ready:?}, wanted {wanted:?}")
    })?;
    // kube-proxy and the pod network: a ready pod on every node (a node is Ready before its
    // pod network's daemon is).
    let pods = f.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf get pods -A -o json",
    )?;
    let pods: serde_json::Value = serde_json::from_str(&pods)?;
    for daemonset in ["kube-proxy", "kube-flannel-ds"] {
        let on: BTreeSet<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == daemonset)
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
            .collect();
        ensure(on == wanted, || {
            format!("{daemonset} has a ready pod on {on:?}, wanted on {wanted:?}")
        })?;
    }
    // No join credential outlives the joins: no bootstrap token, no uploaded certificates.
    let secrets = f.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf -n kube-system get secrets -o name",
    )?;
    let left: Vec<&str> = secrets
        .lines()
        .filter(|l| l.starts_with("secret/bootstrap-token-") || *l == "secret/kubeadm-certs")
        .collect();
    ensure(left.is_empty(), || {
        format!("join credentials left after apply: {left:?}")
    })?;
    let s = state()?;
    let c = current(&s)?;
    let members: BTreeSet<&str> = c.etcd_members.iter().map(|m| m.name.as_str()).collect();
    let control_planes: BTreeSet<&str> = hosts
        .iter()
        .copied()
        .filter(|h| h.starts_with("k8scp"))
        .collect();
    ensure(members == control_planes, || {
        format!("etcd members {members:?}, control-plane nodes {control_planes:?}")
    })?;
    ensure(c.etcd_members.len() == control_planes.len(), || {
        format!("{} etcd members", c.etcd_members.len())
    })?;
    let readyz = f.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf get --raw /readyz",
    )?;
    ensure(readyz.trim() == "ok", || format!("/readyz: {readyz}"))?;
    let server = f.ssh("k8scp01", "grep -m1 'server:' /etc/kubernetes/admin.conf")?;
    ensure(
        server.contains("https://k8scp.kubeforge.internal:8443"),
        || format!("admin.conf's server is not the VIP's endpoint: {server}"),
    )
}

fn builds_a_ready_cluster() -> TestResult {
    let f = lab()?;
    let before = state()?.clusters.len();
    let run = apply(CLUSTER)?;
    for expected in [
        "init: kubeadm init: create the cluster",
        "join: kubeadm join as a control-plane node through k8scp.kubeforge.internal:8443",
        "join: kubeadm join as a worker through k8scp.kubeforge.internal:8443",
        "kubeconfigs: copy the admin kubeconfig to root's ~/.kube/config (mode 0600)",
    ] {
        ensure(run.stdout.contains(expected), || {
            format!("apply's report lacks {expected:?}:\n{}", run.text())
        })?;
    }
    whole(CLUSTER)?;
    ensure(state()?.clusters.len() == before + 1, || {
        "apply made more than one cluster".into()
    })?;
    // kubectl for root and the login user on every control-plane node, mode 0600.
    for host in &CLUSTER[..3] {
        let kubeconfig = f.ssh(host, "stat -c '%a %U' /root/.kube/config && cmp /root/.kube/config /etc/kubernetes/admin.conf && echo same")?;
        ensure(
            kubeconfig.split_whitespace().collect::<Vec<_>>() == ["600", "root", "same"],
            || format!("{host}: /root/.kube/config: {kubeconfig}"),
        )?;
    }
    let again = kubeforge_on(CLUSTER, &["apply", "-o", "json"])?;
    ensure(again.code == 0, || {
        format!("second apply failed:\n{}", again.stderr)
    })?;
    let changes = change_count(&again.stdout)?;
    ensure(changes == 0, || {
        format!(
            "the second apply changed {changes} things:\n{}",
            again.stdout
        )
    })?;
    note(&format!("second apply: {:.1} s", again.seconds));
    Ok(())
}

/// Someone retaints a worker and untaints a control-plane node, and a killed join left its
/// configuration (with a token in it) on a host: apply sets the roles right and removes the
/// file, and the next apply changes nothing.
fn drift_is_set_right() -> TestResult {
    let f = lab()?;
    let kubectl = "kubectl --kubeconfig=/etc/kubernetes/admin.conf";
    let taint = "node-role.kubernetes.io/control-plane:NoSchedule";
    f.ssh(
        "k8scp01",
        &format!("{kubectl} taint node k8s01 {taint} && {kubectl} taint node k8scp02 {taint}-"),
    )?;
    f.ssh(
        "k8s01",
        "mkdir -p /etc/kubeforge && printf 'token: abcdef.0123456789abcdef\n' > /etc/kubeforge/.join.Xy12ab",
    )?;
    let run = apply(CLUSTER)?;
    for expected in [
        "join-files: remove 1 join configuration(s) a killed run left (they hold a token or a key)",
        "roles: remove the taint node-role.kubernetes.io/control-plane:NoSchedule on k8s01 (it is a worker)",
        "roles: taint node-role.kubernetes.io/control-plane:NoSchedule on k8scp02 (control_plane_workloads is false)",
    ] {
        ensure(run.stdout.contains(expected), || {
            format!("apply's report lacks {expected:?}:\n{}", run.text())
        })?;
    }
    let left = f.ssh("k8s01", "ls -A /etc/kubeforge")?;
    ensure(!left.contains(".join."), || {
        format!("/etc/kubeforge on k8s01 still has: {left}")
    })?;
    let taints = f.ssh(
        "k8scp01",
        &format!("{kubectl} get nodes -o jsonpath='{{range .items[*]}}{{.metadata.name}}={{.spec.taints[*].key}} {{end}}'"),
    )
    .unwrap_or_default();
    let again = kubeforge_on(CLUSTER, &["apply", "-o", "json"])?;
    let changes = change_count(&again.stdout)?;
    ensure(changes == 0, || {
        format!(
            "the apply after it changed {changes} things ({taints}):\n{}",
            again.stdout
        )
    })
}

fn kubeconfig_here() -> TestResult {
    let f = lab()?;
    let dir = crate::fixture::lab_dir().join("kubeconfig-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("admin.conf");
    let started = Instant::now();
    let output = kubeforge()
        .args(["kubeconfig", "-i"])
        .arg(f.inventory())
        .arg("--file")
        .arg(&file)
        .output()?;
    let run = record(output, started);
    ensure(run.code == 0, || {
        format!("kubeconfig failed:\n{}", run.text())
    })?;
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    ensure(mode == 0o600, || {
        format!("{} has mode {mode:o}", file.display())
    })?;
    let text = std::fs::read_to_string(&file)?;
    ensure(
        text.contains("server: https://k8scp.kubeforge.internal:8443")
            && text.contains("current-context: k8scp.kubeforge.internal"),
        || "the kubeconfig does not name the endpoint and its context".into(),
    )?;
    // `--file -`: the same kubeconfig on standard output, and no file written.
    let output = kubeforge()
        .current_dir(&dir)
        .args(["kubeconfig", "--file", "-", "-i"])
        .arg(f.inventory())
        .output()?;
    ensure(output.status.success(), || {
        format!(
            "kubeconfig --file - failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    ensure(String::from_utf8_lossy(&output.stdout) == text, || {
        "kubeconfig --file - printed another kubeconfig than the file holds".into()
    })?;
    ensure(!dir.join("-").exists(), || {
        "--file - wrote a file named -".into()
    })?;
    // Merged into an existing kubeconfig: the other context stays current.
    let mine = dir.join("config");
    std::fs::write(
        &mine,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: home\n  cluster:\n    server: https://192.0.2.1:6443\ncontexts:\n- name: home\n  context:\n    cluster: home\n    user: me\nusers:\n- name: me\n  user:\n    token: not-a-real-token\ncurrent-context: home\n",
    )?;
    let started = Instant::now();
    let output = kubeforge()
        .args(["kubeconfig", "--merge", "-i"])
        .arg(f.inventory())
        .env("KUBECONFIG", &mine)
        .output()?;
    let run = record(output, started);
    ensure(run.code == 0, || {
        format!("kubeconfig --merge failed:\n{}", run.text())
    })?;
    let merged = std::fs::read_to_string(&mine)?;
    ensure(
        merged.contains("current-context: home")
            && merged.contains("not-a-real-token")
            && merged.contains("name: k8scp.kubeforge.internal-admin"),
        || "the merge lost or did not add a context".into(),
    )?;
    let mode = std::fs::metadata(&mine)?.permissions().mode() & 0o777;
    ensure(mode == 0o600, || format!("merged file mode {mode:o}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn worker_added() -> TestResult {
    let tokens_before = current(&state()?)?.bootstrap_tokens.len();
    let since = now_ms();
    apply(WITH_WORKER)?;
    whole(WITH_WORKER)?;
    let commands = commands_since(since)?;
    let created = ran(&commands, &["token", "create"]);
    ensure(created.len() == 1, || {
        format!("{} `kubeadm token create` in this run", created.len())
    })?;
    ensure(ran(&commands, &["upload-certs"]).is_empty(), || {
        "a certificate key was made with no control-plane node joining".into()
    })?;
    let joins = ran(&commands, &["join"]);
    ensure(joins.len() == 1 && joins[0].host == "k8s02", || {
        format!("joins this run: {joins:?}")
    })?;
    ensure(
        current(&state()?)?.bootstrap_tokens.len() == tokens_before + 1,
        || "no fresh bootstrap token".into(),
    )
}

fn control_plane_added() -> TestResult {
    let f = lab()?;
    let since = now_ms();
    apply(ALL)?;
    whole(ALL)?;
    let commands = commands_since(since)?;
    ensure(ran(&commands, &["upload-certs"]).len() == 1, || {
        "no fresh certificate key for the new control-plane node".into()
    })?;
    let joins = ran(&commands, &["join"]);
    ensure(joins.len() == 1 && joins[0].host == "k8scp04", || {
        format!("joins this run: {joins:?}")
    })?;
    let address = f.address("k8scp04");
    for host in ["k8scp01", "k8scp02", "k8scp03", "k8scp04"] {
        let cfg = f.ssh(host, "cat /etc/haproxy/haproxy.cfg")?;
        ensure(
            cfg.contains(&format!("server k8scp04 {address}:6443")),
            || format!("{host}'s HAProxy does not list k8scp04:\n{cfg}"),
        )?;
    }
    Ok(())
}

fn half_joined() -> TestResult {
    let f = lab()?;
    // k8s02 leaves (reset by hand) and its next join fails after writing its files.
    f.ssh(
        "k8s02",
        "kubeadm reset -f >/dev/null 2>&1; mkdir -p /etc/kubeforge-standin && touch /etc/kubeforge-standin/fail-join-after-certs",
    )?;
    f.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf delete node k8s02",
    )?;
    let failed = kubeforge_on(ALL, &["apply"])?;
    f.ssh(
        "k8s02",
        "rm -f /etc/kubeforge-standin/fail-join-after-certs",
    )?;
    ensure(failed.code == 1, || {
        format!("apply did not fail:\n{}", failed.text())
    })?;
    ensure(
        failed.stderr.contains("k8s02") && failed.stderr.contains("join"),
        || format!("the error does not name k8s02's join:\n{}", failed.stderr),
    )?;
    let leftovers = f.ssh("k8s02", "ls /etc/kubernetes")?;
    ensure(
        leftovers.contains("kubelet.conf") || leftovers.contains("pki"),
        || format!("the failed join left nothing to reset: {leftovers}"),
    )?;
    let plan = kubeforge_on(ALL, &["plan"])?;
    ensure(
        plan.stdout
            .contains("reset what an earlier join or cluster left"),
        || format!("plan does not show the reset:\n{}", plan.stdout),
    )?;
    apply(ALL)?;
    whole(ALL)
}

fn reset_one_worker() -> TestResult {
    let f = lab()?;
    let run = kubeforge_on(ALL, &["reset", "--yes", "--hosts", "k8s02"])?;
    ensure(run.code == 0, || {
        format!("reset --hosts failed:\n{}", run.text())
    })?;
    let s = state()?;
    ensure(current(&s)?.node("k8s02").is_none(), || {
        "the Node k8s02 is still there".into()
    })?;
    let left = f.ssh(
        "k8s02",
        "ls /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /etc/cni/net.d/* 2>/dev/null; true",
    )?;
    ensure(left.trim().is_empty(), || format!("k8s02 still has {left}"))?;
    // The others are untouched; the cluster without k8s02 is whole.
    let rest: Vec<&str> = ALL.iter().copied().filter(|h| *h != "k8s02").collect();
    whole(&rest)?;
    // Removing every control-plane node this way is refused (that is a whole reset).
    let refused = kubeforge_on(
        ALL,
        &[
            "reset",
            "--yes",
            "--hosts",
            "k8scp01,k8scp02,k8scp03,k8scp04",
        ],
    )?;
    ensure(
        refused.code == 2 && refused.stderr.contains("that is every control-plane node"),
        || {
            format!(
                "reset --hosts of every control-plane node:\n{}",
                refused.text()
            )
        },
    )?;
    whole(&rest)
}

/// What a reset must leave on no host.
const KUBEADM_FILES: &str = "ls -d /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt /etc/kubernetes/manifests/*.yaml /var/lib/etcd/member /var/lib/kubelet/config.yaml /etc/cni/net.d/* /root/.kube/config 2>/dev/null; true";

fn reset_and_rebuild() -> TestResult {
    let f = lab()?;
    // Without a terminal and without --yes: refused, nothing changed.
    let refused = kubeforge_on(ALL, &["reset"])?;
    ensure(
        refused.code == 2 && refused.stderr.contains("--yes"),
        || format!("reset without --yes:\n{}", refused.text()),
    )?;
    // (k8scp02: the trial before removed k8scp01.)
    ensure(
        f.ssh("k8scp02", "test -f /etc/kubernetes/admin.conf && echo yes")?
            .trim()
            == "yes",
        || "reset without --yes changed something".into(),
    )?;
    let run = kubeforge_on(ALL, &["reset", "--yes"])?;
    ensure(run.code == 0, || format!("reset failed:\n{}", run.text()))?;
    for host in ALL {
        let left = f.ssh(host, KUBEADM_FILES)?;
        ensure(left.trim().is_empty(), || {
            format!("{host} still has after reset:\n{left}")
        })?;
        let kubelet = f.ssh(host, "systemctl is-active kubelet; true")?;
        ensure(kubelet.trim() != "active", || {
            format!("{host}: kubelet still runs")
        })?;
    }
    let again = kubeforge_on(ALL, &["reset", "--yes", "-o", "json"])?;
    ensure(again.code == 0 && change_count(&again.stdout)? == 0, || {
        format!("a second reset changed something:\n{}", again.text())
    })?;
    let before = state()?.clusters.len();
    apply(CLUSTER)?;
    whole(CLUSTER)?;
    ensure(state()?.clusters.len() == before + 1, || {
        "the rebuild did not make exactly one cluster".into()
    })
}

fn killed_after_init() -> TestResult {
    let f = lab()?;
    let run = kubeforge_on(CLUSTER, &["reset", "--yes"])?;
    ensure(run.code == 0, || format!("reset failed:\n{}", run.text()))?;
    let before = state()?.clusters.len();
    let inventory = f.inventory_of(CLUSTER)?;
    let mut child = kubeforge()
        .arg("apply")
        .arg("-i")
        .arg(&inventory)
        .arg("--log-dir")
        .arg(log_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Once init is done (the pod network is being applied), kill kubeforge: before the joins.
    let since = now_ms();
    let after_init = wait_until(Duration::from_secs(300), || {
        commands_since(since).is_ok_and(|c| {
            c.iter()
                .any(|c| c.program == "kubectl" && c.argv.iter().any(|a| a == "apply"))
        })
    });
    child.kill()?;
    child.wait()?;
    ensure(after_init, || "apply never got past init".into())?;
    ensure(state()?.clusters.len() == before + 1, || {
        "init did not make exactly one cluster".into()
    })?;
    let s = state()?;
    let joined = current(&s)?.nodes.len();
    note(&format!("killed with {joined} node(s) in the new cluster"));
    apply(CLUSTER)?;
    whole(CLUSTER)?;
    ensure(state()?.clusters.len() == before + 1, || {
        "the re-run made a second cluster".into()
    })
}

/// Hex strings of 64 characters in `text` and in what its base64 runs decode to.
fn hex_keys(text: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut texts = vec![text.to_string()];
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    for run in text.split(|c: char| !is_b64(c)).filter(|r| r.len() >= 16) {
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ] {
            if let Ok(bytes) = engine.decode(run.trim_end_matches('=')) {
                texts.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let mut out = Vec::new();
    for t in texts {
        for word in t.split(|c: char| !c.is_ascii_hexdigit()) {
            if word.len() >= 64 {
                for start in 0..=word.len() - 64 {
                    out.push(word[start..start + 64].to_ascii_lowercase());
                }
            }
        }
    }
    out
}

fn sha256_of_hex(hex: &str) -> Option<String> {
    use sha2::Digest as _;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let digest = sha2::Sha256::digest(bytes?);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn no_secrets() -> TestResult {
    let s = state()?;
    let tokens: Vec<String> = s
        .clusters
        .iter()
        .flat_map(|c| &c.bootstrap_tokens)
        .map(|t| format!("{}.{}", t.id, t.secret))
        .collect();
    let key_hashes: Vec<String> = s
        .clusters
        .iter()
        .filter_map(|c| c.uploaded_certs.as_ref())
        .map(|u| u.key_sha256.clone())
        .collect();
    ensure(!tokens.is_empty() && !key_hashes.is_empty(), || {
        "no token or certificate key was made: nothing to look for".into()
    })?;
    let mut texts: Vec<(String, String)> = vec![(
        "kubeforge's output".into(),
        OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    )];
    for entry in std::fs::read_dir(log_dir())? {
        let path = entry?.path();
        texts.push((path.display().to_string(), std::fs::read_to_string(&path)?));
    }
    let argv: String = store()?
        .commands()
        .iter()
        .map(|c| c.argv.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    texts.push(("the stand-ins' command lines".into(), argv));
    for (name, text) in &texts {
        for token in &tokens {
            let secret = token.split('.').nth(1).unwrap_or(token);
            if let Some(form) = kubeforge_core::mask::find_leak(text, secret) {
                return Err(format!("a bootstrap token is in {name} ({form})").into());
            }
        }
        for candidate in hex_keys(text) {
            if sha256_of_hex(&candidate).is_some_and(|h| key_hashes.contains(&h)) {
                return Err(format!("a certificate key is in {name}").into());
            }
        }
    }
    let _ = std::fs::remove_dir_all(log_dir());
    Ok(())
}
