//! Removing a control-plane node from the cluster the stand-ins simulate, and adding it back:
//! `reset --hosts k8scp03` leaves etcd with 2 healthy members and each remaining HAProxy with
//! 2 servers, the cluster healthy by an inventory without it; removing another one while
//! etcd holds a member that never started is refused (the arithmetic shown, nothing
//! changed); the host, reset and listed again, joins as a new member. Then the same for
//! k8scp03 stopped (a dead host): removed through the others, then replaced by a blank host
//! under the same name (`lab wipe`), which joins as a new member. While it is down and still
//! listed, apply stops naming it, and `apply --skip k8scp03` converges the others and leaves
//! its etcd member as it is. Then (a trial of its own, before the whole cluster is reset) the
//! first control-plane node is removed: the cluster goes on from k8scp02, first in the
//! inventory without it.

use libtest_mimic::Trial;

use crate::cluster::change_count;
use crate::fixture::{CLUSTER, TestResult, ensure, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "remove::a_control_plane_node_removed_keeps_etcd_and_haproxy_whole_then_joins_again",
            remove,
        ),
        Trial::test(
            "remove::the_first_control_plane_node_removed_the_next_is_first",
            remove_first,
        ),
    ]
}

const LEFT: &[&str] = &["k8scp01", "k8scp02", "k8s01"];

use crate::cluster::run_on as run;

/// `status -o json` by the inventory of `hosts`: its exit code, etcd's members and each
/// HAProxy's number of servers up.
fn status(hosts: &[&str]) -> Result<(i32, usize, Vec<usize>, String), libtest_mimic::Failed> {
    let run = run(hosts, &["status", "-o", "json"])?;
    let s: serde_json::Value = serde_json::from_str(&run.stdout)
        .map_err(|e| format!("status -o json of {hosts:?}: {e}:\n{}", run.text()))?;
    let members = s["etcd"].as_array().map_or(0, Vec::len);
    let servers = s["haproxy"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            h["servers"]
                .as_object()
                .map_or(0, |s| s.values().filter(|v| *v == "up").count())
        })
        .collect();
    Ok((run.code, members, servers, run.text()))
}

fn remove() -> TestResult {
    let f = lab()?;
    let removed = run(CLUSTER, &["reset", "--yes", "--hosts", "k8scp03"])?;
    ensure(removed.code == 0, || {
        format!("reset --hosts k8scp03:\n{}", removed.text())
    })?;
    note(&format!(
        "a control-plane node removed (stand-ins): {:.1} s",
        removed.seconds
    ));
    let (code, members, servers, text) = status(LEFT)?;
    ensure(code == 0 && members == 2 && servers == [2, 2], || {
        format!(
            "status without k8scp03: exit {code}, {members} members, servers {servers:?}\n{text}"
        )
    })?;
    let units = f.ssh(
        "k8scp03",
        "systemctl is-active keepalived.service haproxy.service; true",
    )?;
    ensure(units.trim() == "inactive\ninactive", || {
        format!("k8scp03's keepalived and HAProxy after its removal: {units}")
    })?;
    ensure(
        removed
            .stderr
            .contains("now take k8scp03 out of the inventory"),
        || {
            format!(
                "reset --hosts k8scp03 says nothing of the inventory:\n{}",
                removed.text()
            )
        },
    )?;

    // A member that never started: removing k8scp02 would leave 1 healthy of 2.
    let refused = f.with_foreign_member("10.213.0.96", || {
        run(LEFT, &["reset", "--yes", "--hosts", "k8scp02"])
    })?;
    ensure(
        refused.code == 1
            && refused.stderr.contains(
                "removing k8scp02 would leave etcd without quorum: 3 members, 2 healthy; after it 2 members, 1 healthy, 2 needed. Nothing was changed",
            ),
        || format!("removing k8scp02 with a foreign member:\n{}", refused.text()),
    )?;
    let (code, members, _, text) = status(LEFT)?;
    ensure(code == 0 && members == 2, || {
        format!("status after the refused removal: exit {code}, {members} members\n{text}")
    })?;

    // Listed again: it joins as a new member, and every HAProxy lists 3 servers.
    let back = run(CLUSTER, &["apply"])?;
    ensure(back.code == 0, || {
        format!("apply with k8scp03 listed again:\n{}", back.text())
    })?;
    note(&format!(
        "the removed control-plane node joined again (stand-ins): {:.1} s",
        back.seconds
    ));
    let (code, members, servers, text) = status(CLUSTER)?;
    ensure(code == 0 && members == 3 && servers == [3, 3, 3], || {
        format!(
            "status with k8scp03 back: exit {code}, {members} members, servers {servers:?}\n{text}"
        )
    })?;

    // Dead: removed through the others, then back once it runs again.
    f.lab.stop("k8scp03")?;
    // Down and still listed: apply stops before any change, naming it; `--skip` converges the
    // others (root's kubeconfig on k8scp01, removed here) and leaves it as it is.
    let _ = f.ssh("k8scp01", "rm -f /root/.kube/config");
    let refused = run(CLUSTER, &["apply"]);
    let skipping = run(CLUSTER, &["apply", "--skip", "k8scp03", "-o", "json"]);
    let kubeconfig_back = f.ssh("k8scp01", "test -f /root/.kube/config && echo yes; true");
    let kept = status(CLUSTER);
    let dead = run(CLUSTER, &["reset", "--yes", "--hosts", "k8scp03"]);
    let after = status(LEFT);
    f.lab.start("k8scp03")?;
    let refused = refused?;
    ensure(
        refused.code == 1 && refused.stderr.contains("k8scp03:"),
        || format!("apply with k8scp03 stopped:\n{}", refused.text()),
    )?;
    let skipping = skipping?;
    ensure(
        skipping.code == 0
            && skipping
                .stderr
                .contains("skipped, not contacted and left as they are")
            && change_count(&skipping.stdout)? >= 1
            && kubeconfig_back?.trim() == "yes",
        || format!("apply --skip k8scp03:\n{}", skipping.text()),
    )?;
    let (code, members, _, text) = kept?;
    ensure(code == 1 && members == 3, || {
        format!("status after apply --skip k8scp03: exit {code}, {members} members\n{text}")
    })?;
    let unknown = run(CLUSTER, &["apply", "--skip", "k8scp09"])?;
    ensure(
        unknown.code == 2
            && unknown
                .stderr
                .contains("--skip k8scp09: no such host in the inventory"),
        || format!("apply --skip of an unknown host:\n{}", unknown.text()),
    )?;
    let dead = dead?;
    ensure(
        dead.code == 0
            && dead.stderr.contains("k8scp03 does not answer")
            && dead
                .stderr
                .contains("removed from the cluster without being reset itself"),
        || format!("reset --hosts of a stopped k8scp03:\n{}", dead.text()),
    )?;
    note(&format!(
        "a stopped control-plane node removed (stand-ins): {:.1} s",
        dead.seconds
    ));
    let (code, members, servers, text) = after?;
    ensure(code == 0 && members == 2 && servers == [2, 2], || {
        format!(
            "status without the stopped k8scp03: exit {code}, {members} members, servers {servers:?}\n{text}"
        )
    })?;
    // Replaced: a blank host under the same name and address joins as a new member.
    f.lab.wipe("k8scp03")?;
    let blank = f.ssh(
        "k8scp03",
        "ls /etc/kubernetes /var/lib/etcd /etc/keepalived 2>/dev/null; true",
    )?;
    ensure(blank.trim().is_empty(), || {
        format!("k8scp03 after lab wipe still has: {blank}")
    })?;
    let back = run(CLUSTER, &["apply"])?;
    ensure(back.code == 0, || {
        format!("apply with a blank k8scp03:\n{}", back.text())
    })?;
    note(&format!(
        "a blank host in a removed control-plane node's place joined (stand-ins): {:.1} s",
        back.seconds
    ));
    let (code, members, servers, text) = status(CLUSTER)?;
    ensure(code == 0 && members == 3 && servers == [3, 3, 3], || {
        format!(
            "status with k8scp03 back again: exit {code}, {members} members, servers {servers:?}\n{text}"
        )
    })
}

/// The first control-plane node, where the cluster was made: drained and forgotten through
/// k8scp02. By the inventory without it, k8scp02 is the first: apply makes it where the pod
/// network's manifests are applied from, then the cluster is healthy and a second apply
/// changes nothing. (Run before the whole cluster is reset and built again.)
fn remove_first() -> TestResult {
    // The nodes the cluster has now, whichever trials ran before.
    let nodes = lab()?.ssh(
        "k8scp01",
        "kubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes -o name",
    )?;
    let all: Vec<&str> = nodes
        .lines()
        .filter_map(|l| l.strip_prefix("node/"))
        .collect();
    let rest: Vec<&str> = all.iter().copied().filter(|n| *n != "k8scp01").collect();
    let left = rest.iter().filter(|n| n.starts_with("k8scp")).count();
    let first = run(&all, &["reset", "--yes", "--hosts", "k8scp01"])?;
    ensure(first.code == 0, || {
        format!("reset --hosts k8scp01 of {all:?}:\n{}", first.text())
    })?;
    let applied = run(&rest, &["apply"])?;
    ensure(applied.code == 0, || {
        format!("apply without k8scp01:\n{}", applied.text())
    })?;
    note(&format!(
        "apply by the inventory without k8scp01 (stand-ins): {:.1} s\n{}",
        applied.seconds,
        applied.stdout.trim()
    ));
    let (code, members, servers, text) = status(&rest)?;
    ensure(
        code == 0 && members == left && servers == vec![left; left],
        || {
            format!(
                "status without k8scp01: exit {code}, {members} members, servers {servers:?}\n{text}"
            )
        },
    )?;
    let again = run(&rest, &["apply", "-o", "json"])?;
    ensure(
        again.code == 0 && change_count(&again.stdout).is_ok_and(|n| n == 0),
        || format!("a second apply without k8scp01:\n{}", again.text()),
    )?;
    Ok(())
}
