//! The engine end to end on the lab's hosts: plan shows diffs, apply converges, a second
//! apply changes nothing, a host killed mid-apply gives a clear error and a re-run converges,
//! a wrong host key is refused, and the VRRP secret appears in no output and no log.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kubeforge_core::mask::find_leak;
use kubeforge_lab::net::ssh_answers;
use kubeforge_lab::sys::wait_until;
use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, kubeforge, kubeforge_lab, lab, note, ssh_masters};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "apply::check_accepts_the_lab_inventory",
            check_accepts_the_lab_inventory,
        ),
        Trial::test(
            "apply::plan_shows_every_change_with_diffs",
            plan_shows_diffs,
        ),
        Trial::test(
            "apply::apply_converges_and_the_vip_answers",
            apply_converges,
        ),
        Trial::test(
            "apply::second_apply_changes_nothing",
            second_apply_changes_nothing,
        ),
        Trial::test(
            "apply::wrong_host_key_is_refused",
            wrong_host_key_is_refused,
        ),
        Trial::test(
            "apply::host_killed_mid_apply_then_rerun_converges",
            host_killed_mid_apply,
        ),
        Trial::test(
            "apply::kubeforge_killed_mid_apply_then_rerun_converges",
            kubeforge_killed_mid_apply,
        ),
        Trial::test(
            "apply::a_host_that_stalls_ends_apply_within_its_deadline_naming_it",
            stalled_host,
        ),
        Trial::test(
            "apply::two_applies_at_once_one_goes_on_the_other_says_who_holds_the_lock",
            two_at_once,
        ),
        Trial::test(
            "apply::a_user_whose_sudo_wants_a_password_gets_a_clear_error",
            sudo_needs_password,
        ),
        Trial::test(
            "apply::verbose_shows_what_runs_on_each_host",
            verbose_shows_what_runs,
        ),
        Trial::test(
            "apply::secret_is_absent_from_all_output_and_logs",
            secret_is_absent,
        ),
    ]
}

/// Everything kubeforge printed in these trials, to search for secrets at the end.
static OUTPUT: Mutex<String> = Mutex::new(String::new());

fn log_dir() -> PathBuf {
    crate::fixture::lab_dir().join("test-logs")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn record(output: Output) -> Run {
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let mut all = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
    all.push_str(&run.stdout);
    all.push_str(&run.stderr);
    run
}

/// These trials are about the engine and the node phases: the cluster's phases are
/// `cluster.rs`'s.
const UNTIL: [&str; 2] = ["--until", "runtime"];

fn kubeforge_on_lab(args: &[&str]) -> Result<Run, libtest_mimic::Failed> {
    let f = lab()?;
    let inventory = f.inventory();
    let output = kubeforge()
        .args(args)
        .args(UNTIL)
        .arg("-i")
        .arg(&inventory)
        .arg("--log-dir")
        .arg(log_dir())
        .output()?;
    Ok(record(output))
}

fn check_accepts_the_lab_inventory() -> TestResult {
    let f = lab()?;
    let output = kubeforge()
        .arg("check")
        .arg("-i")
        .arg(f.inventory())
        .output()?;
    let run = record(output);
    ensure(run.code == 0, || {
        format!("check failed:\n{}{}", run.stdout, run.stderr)
    })?;
    for expected in [
        "DNS (DNS server 10.213.0.1:53):",
        "  k8scp02.kubeforge.internal  10.213.0.12",
        "  k8scp.kubeforge.internal    10.213.0.10  (VIP)",
        "control-plane endpoint k8scp.kubeforge.internal:8443 -> VIP 10.213.0.10",
        "ok: 0 errors, ",
    ]
    .map(|e| f.in_subnet(e))
    {
        ensure(run.stdout.contains(&expected), || {
            format!("check lacks {expected:?}:\n{}", run.stdout)
        })?;
    }
    Ok(())
}

fn plan_shows_diffs() -> TestResult {
    let f = lab()?;
    let run = kubeforge_on_lab(&["plan"])?;
    ensure(run.code == 0, || {
        format!("plan failed:\n{}{}", run.stdout, run.stderr)
    })?;
    for expected in [
        "phase 1/3 prepare: prepare every node",
        "phase 2/3 load-balancer: keepalived and HAProxy on every control-plane node",
        "phase 3/3 runtime: ",
        "    sysctls: create /etc/sysctl.d/90-kubernetes.conf",
        "      +++ b/etc/sysctl.d/90-kubernetes.conf",
        "      +net.ipv4.ip_forward = 1",
        "    haproxy: install haproxy",
        "      +    server k8scp03 10.213.0.13:6443",
        "      +        auth_pass ********",
        "  then: wait until exactly one control-plane node holds the VIP 10.213.0.10 and 10.213.0.10:8443 answers",
    ]
    .map(|e| f.in_subnet(e))
    {
        ensure(run.stdout.contains(&expected), || {
            format!("plan lacks {expected:?}:\n{}", run.stdout)
        })?;
    }
    // Hosts with the same changes are listed together, their diffs once: the hosts need the
    // same sysctl file.
    ensure(
        run.stdout
            .lines()
            .any(|l| l.ends_with(" changes each") && l.contains(", "))
            && run
                .stdout
                .matches("+++ b/etc/sysctl.d/90-kubernetes.conf")
                .count()
                < 4,
        || {
            format!(
                "hosts with the same changes are not grouped:\n{}",
                run.stdout
            )
        },
    )?;
    // Preflight judged every host; nothing in the lab fails it.
    ensure(
        run.stdout.starts_with("preflight") && !run.stdout.contains("[FAIL]"),
        || format!("preflight failed:\n{}", run.stdout),
    )?;
    // Plan changed nothing.
    let f = lab()?;
    ensure(
        f.ssh("k8scp01", "test ! -e /etc/haproxy/haproxy.cfg")
            .is_ok(),
        || "plan wrote a file".into(),
    )
}

fn apply_converges() -> TestResult {
    let f = lab()?;
    let started = Instant::now();
    let run = kubeforge_on_lab(&["apply"])?;
    note(&format!(
        "first apply on the lab: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    ensure(run.code == 0, || {
        format!("apply failed:\n{}{}", run.stdout, run.stderr)
    })?;
    ensure(
        run.stdout.contains("k8scp01: ") && run.stdout.contains("applied "),
        || run.stdout.clone(),
    )?;
    for host in ["k8scp01", "k8scp02", "k8scp03"] {
        let state = f.ssh(host, "systemctl is-active haproxy keepalived; stat -c %a /etc/keepalived/keepalived.conf; sysctl -n net.ipv4.ip_forward")?;
        ensure(
            state.split_whitespace().collect::<Vec<_>>() == ["active", "active", "600", "1"],
            || format!("{host}: {state}"),
        )?;
    }
    // keepalived holds the VIP (on the first control-plane node) and HAProxy answers on it.
    // VRRP elects after a few advertisements.
    let holds_vip = || {
        f.ssh(
            "k8scp01",
            &f.in_subnet("ip -o -4 addr show | grep -c ' 10.213.0.10/' || true"),
        )
        .is_ok_and(|n| n.trim() == "1")
    };
    ensure(wait_until(Duration::from_secs(15), holds_vip), || {
        "k8scp01 (highest priority) does not hold the VIP".into()
    })?;
    ensure(
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(
                &f.in_subnet("10.213.0.10:8443").parse().unwrap(),
                Duration::from_secs(1),
            )
            .is_ok()
        }),
        || f.in_subnet("nothing answers on the VIP at 10.213.0.10:8443"),
    )
}

/// A host that accepts connections and then answers nothing (every process frozen), with a
/// kept ssh connection to it and without: apply ends within its deadlines with an error that
/// names the host, and converges once the host is back.
fn stalled_host() -> TestResult {
    lab()?;
    let mut outcomes = Vec::new();
    for kept in [true, false] {
        if kept {
            // A connection kept from this run, as a re-run within a minute finds it.
            kubeforge_on_lab(&["plan"])?;
        } else {
            wait_until(Duration::from_secs(20), || ssh_masters().is_empty());
        }
        kubeforge_lab(&["freeze", "k8s01"])?;
        let started = Instant::now();
        let run = kubeforge_on_lab(&["apply"]);
        let seconds = started.elapsed().as_secs();
        kubeforge_lab(&["thaw", "k8s01"])?;
        outcomes.push((kept, run?, seconds));
    }
    for (kept, run, seconds) in outcomes {
        let what = if kept { "with" } else { "without" };
        ensure(run.code == 1 && seconds < 150, || {
            format!(
                "apply on a stalled host ({what} a kept connection) exited {} after {seconds} s:\n{}{}",
                run.code, run.stdout, run.stderr
            )
        })?;
        ensure(
            run.stderr.lines().any(|l| l.starts_with("error: k8s01: ")),
            || {
                format!(
                    "apply on a stalled host ({what} a kept connection) does not name it:\n{}",
                    run.stderr
                )
            },
        )?;
        note(&format!(
            "a stalled host ({what} a kept connection): apply ended after {seconds} s: {}",
            run.stderr
                .lines()
                .find(|l| l.starts_with("error: k8s01: "))
                .unwrap_or_default()
        ));
    }
    let again = kubeforge_on_lab(&["apply"])?;
    ensure(again.code == 0, || {
        format!(
            "apply once k8s01 is back failed:\n{}{}",
            again.stdout, again.stderr
        )
    })
}

/// Two applies at once: the one that took a host's run lock goes on, the other stops before
/// any change and says who holds it. The lock's directory is root's alone, and another user on
/// the host can neither read it nor put anything in it.
fn two_at_once() -> TestResult {
    let f = lab()?;
    // Something slow for the first apply to do: socat (a base package) to install again.
    f.ssh(
        "k8s01",
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq socat >/dev/null",
    )?;
    let log = log_dir().join("k8s01.log");
    let _ = std::fs::remove_file(&log);
    let first = spawn_apply()?;
    let installing = wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("apt-get install"))
    });
    let second = kubeforge_on_lab(&["apply"])?;
    let first = record(first.wait_with_output()?);
    ensure(installing, || {
        "the first apply never installed socat".into()
    })?;
    ensure(first.code == 0, || {
        format!("the first apply failed:\n{}{}", first.stdout, first.stderr)
    })?;
    ensure(second.code == 1, || {
        format!(
            "the second apply exited {}:\n{}",
            second.code, second.stderr
        )
    })?;
    ensure(
        second.stderr.contains(
            "error: k8s01: another kubeforge run holds the lock on this host (held by kubeforge run by ",
        ) && second.stderr.contains("stopped after lock"),
        || format!("the second apply does not say who holds the lock:\n{}", second.stderr),
    )?;
    let dir = f.ssh(
        "k8s01",
        "stat -c '%a %U %F' /run/kubeforge; su nobody -s /bin/sh -c 'ls /run/kubeforge; touch /run/kubeforge/x' 2>&1; true",
    )?;
    ensure(
        dir.starts_with("700 root directory\n") && dir.contains("Permission denied"),
        || format!("/run/kubeforge on k8s01: {dir}"),
    )
}

fn second_apply_changes_nothing() -> TestResult {
    let started = Instant::now();
    let run = kubeforge_on_lab(&["apply", "-o", "json"])?;
    note(&format!(
        "no-op apply on the lab: {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    ensure(run.code == 0, || {
        format!("apply failed:\n{}{}", run.stdout, run.stderr)
    })?;
    let report: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let changes: usize = report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["hosts"].as_array().cloned().unwrap_or_default())
        .map(|h| h["changes"].as_array().map_or(0, |c| c.len()))
        .sum();
    ensure(changes == 0, || {
        format!("a second apply changed {changes} things:\n{}", run.stdout)
    })?;
    let trips: Vec<u64> = report["round_trips"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_u64())
        .collect();
    ensure(trips == [1, 1, 1, 1], || {
        format!("round trips per host: {trips:?}")
    })?;
    let text = kubeforge_on_lab(&["plan"])?;
    ensure(
        text.stdout
            .ends_with("no changes: every host is as it should be\n"),
        || text.stdout.clone(),
    )
}

fn wrong_host_key_is_refused() -> TestResult {
    let f = lab()?;
    let dir = crate::fixture::lab_dir().join("test-wrong-key");
    std::fs::create_dir_all(&dir)?;
    // A known_hosts whose entry for k8scp02 is some other host's key.
    let other = dir.join("other");
    let _ = std::fs::remove_file(&other);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()?;
    ensure(status.success(), || "ssh-keygen failed".into())?;
    let other_key = std::fs::read_to_string(other.with_extension("pub"))?;
    let key_text = other_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let original = std::fs::read_to_string(f.lab.known_hosts())?;
    let tampered: String = original
        .lines()
        .map(|l| {
            if l.split_whitespace().next().is_some_and(|names| {
                names
                    .split(',')
                    .any(|n| n == f.address("k8scp02") || n == "k8scp02")
            }) {
                format!("{} {key_text}\n", l.split_whitespace().next().unwrap_or(""))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, tampered)?;
    // ssh.known_hosts goes to ssh on its command line, before the ssh_config's blocks.
    let inventory = std::fs::read_to_string(f.inventory())?.replace(
        "\nssh:\n",
        &format!("\nssh:\n  known_hosts: {}\n", known_hosts.display()),
    );
    ensure(inventory.contains("  known_hosts: "), || inventory.clone())?;
    let inventory_path = dir.join("cluster.yaml");
    std::fs::write(&inventory_path, inventory)?;
    let run = record(
        kubeforge()
            .arg("apply")
            .args(UNTIL)
            .arg("-i")
            .arg(&inventory_path)
            .output()?,
    );
    let _ = std::fs::remove_dir_all(&dir);
    ensure(run.code == 1, || {
        format!(
            "apply with a wrong host key exited {}:\n{}{}",
            run.code, run.stdout, run.stderr
        )
    })?;
    ensure(
        run.stderr.contains("error: k8scp02: cannot connect"),
        || run.stderr.clone(),
    )?;
    ensure(
        run.stderr.contains("Host key verification failed")
            || run.stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        || run.stderr.clone(),
    )?;
    ensure(run.stderr.contains("stopped before any change"), || {
        run.stderr.clone()
    })
}

fn host_killed_mid_apply() -> TestResult {
    let f = lab()?;
    let addr = f.address("k8scp03");
    // Give k8scp03 something slow to do: remove what apply installed there.
    f.ssh("k8scp03", "systemctl stop keepalived haproxy; DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq haproxy keepalived socat >/dev/null")?;
    let log = log_dir().join("k8scp03.log");
    let child = spawn_apply()?;
    // Kill the host once apply is installing packages on it.
    let started = wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("apt-get install"))
    });
    kubeforge_lab(&["kill", "k8scp03"])?;
    let run = record(child.wait_with_output()?);
    ensure(started, || {
        "apply never reached apt-get install on k8scp03".into()
    })?;
    ensure(run.code == 1, || {
        format!(
            "apply exited {} with a host killed under it:\n{}{}",
            run.code, run.stdout, run.stderr
        )
    })?;
    ensure(run.stderr.contains("error: k8scp03: "), || {
        format!("the error does not name k8scp03:\n{}", run.stderr)
    })?;

    kubeforge_lab(&["start", "k8scp03"])?;
    ensure(
        wait_until(Duration::from_secs(30), || {
            ssh_answers(addr.parse().unwrap(), Duration::from_secs(1))
        }),
        || "k8scp03 did not come back".into(),
    )?;
    rerun_converges()
}

/// `kubeforge apply` on the lab in the background, logging to the test log directory.
fn spawn_apply() -> std::io::Result<std::process::Child> {
    let f = lab().map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    kubeforge()
        .arg("apply")
        .args(UNTIL)
        .arg("-i")
        .arg(f.inventory())
        .arg("--log-dir")
        .arg(log_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
}

/// After a failure: one apply converges, and the next one finds nothing to change.
fn rerun_converges() -> TestResult {
    let rerun = kubeforge_on_lab(&["apply"])?;
    ensure(rerun.code == 0, || {
        format!(
            "the re-run did not converge:\n{}{}",
            rerun.stdout, rerun.stderr
        )
    })?;
    let again = kubeforge_on_lab(&["apply"])?;
    ensure(
        again.code == 0 && again.stdout.ends_with("no changes\n"),
        || {
            format!(
                "not converged after the re-run:\n{}{}",
                again.stdout, again.stderr
            )
        },
    )
}

/// SIGKILL to kubeforge itself while it installs packages: the next run converges.
fn kubeforge_killed_mid_apply() -> TestResult {
    let f = lab()?;
    f.ssh(
        "k8scp02",
        "systemctl stop keepalived haproxy; DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq haproxy keepalived >/dev/null; rm -f /etc/sysctl.d/90-kubernetes.conf",
    )?;
    let log = log_dir().join("k8scp02.log");
    let _ = std::fs::remove_file(&log);
    let mut child = spawn_apply()?;
    let reached = wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("apt-get install"))
    });
    child.kill()?;
    child.wait()?;
    ensure(reached, || {
        "apply never reached apt-get install on k8scp02".into()
    })?;
    rerun_converges()?;
    // The killed run's ssh master connections exit once idle.
    ensure(
        wait_until(
            Duration::from_secs(crate::fixture::SSH_PERSIST_SECS + 15),
            || ssh_masters().is_empty(),
        ),
        || format!("ssh masters left behind: {:?}", ssh_masters()),
    )
}

/// A login user that is not root: sudo with a password is refused clearly; passwordless sudo works.
fn sudo_needs_password() -> TestResult {
    let f = lab()?;
    f.ssh(
        "k8s01",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null && \
         (id ops >/dev/null 2>&1 || useradd -m -s /bin/sh ops) && \
         install -d -o ops -m 700 /home/ops/.ssh && \
         install -o ops -m 600 /root/.ssh/authorized_keys /home/ops/.ssh/authorized_keys && \
         echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops",
    )?;
    let dir = crate::fixture::lab_dir().join("test-sudo");
    std::fs::create_dir_all(&dir)?;
    let inventory = std::fs::read_to_string(f.inventory())?
        .replace("  - k8s01\n", "  - name: k8s01\n    user: ops\n");
    ensure(inventory.contains("user: ops"), || inventory.clone())?;
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, inventory)?;
    let plan = || -> std::io::Result<Run> {
        Ok(record(
            kubeforge()
                .arg("plan")
                .args(UNTIL)
                .arg("-i")
                .arg(&path)
                .output()?,
        ))
    };
    let refused = plan()?;
    f.ssh(
        "k8s01",
        "echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops",
    )?;
    let allowed = plan()?;
    f.ssh("k8s01", "rm -f /etc/sudoers.d/ops")?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure(refused.code == 1, || {
        format!(
            "plan as ops exited {}:\n{}{}",
            refused.code, refused.stdout, refused.stderr
        )
    })?;
    ensure(
        refused
            .stderr
            .contains("error: k8s01: sudo needs a password"),
        || refused.stderr.clone(),
    )?;
    ensure(allowed.code == 0, || {
        format!(
            "plan with passwordless sudo failed:\n{}{}",
            allowed.stdout, allowed.stderr
        )
    })?;
    ensure(
        allowed
            .stdout
            .ends_with("no changes: every host is as it should be\n"),
        || allowed.stdout.clone(),
    )
}

/// `-v` shows each script as it runs on its host; a keepalived.conf edited by hand is put
/// back, and keepalived reloaded, not restarted.
fn verbose_shows_what_runs() -> TestResult {
    let f = lab()?;
    f.ssh(
        "k8scp02",
        "sed -i 's/priority 248/priority 1/' /etc/keepalived/keepalived.conf",
    )?;
    let run = kubeforge_on_lab(&["apply", "-v"])?;
    ensure(run.code == 0, || {
        format!("apply -v failed:\n{}{}", run.stdout, run.stderr)
    })?;
    for expected in [
        "  k8scp02: keepalived: running:",
        "    | mv -f \"$t\" /etc/keepalived/keepalived.conf",
        "    | systemctl reload keepalived.service",
    ] {
        ensure(run.stderr.contains(expected), || {
            format!("-v lacks {expected:?}:\n{}", run.stderr)
        })?;
    }
    ensure(
        run.stdout.contains("k8scp02: 2 changes")
            && run.stdout.contains("keepalived: reload keepalived.service"),
        || run.stdout.clone(),
    )
}

fn secret_is_absent() -> TestResult {
    let f = lab()?;
    let conf = f.ssh("k8scp01", "cat /etc/keepalived/keepalived.conf")?;
    let secret = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("auth_pass "))
        .ok_or("keepalived.conf has no auth_pass")?
        .trim()
        .to_string();
    ensure(secret.len() == 8, || "unexpected secret length".into())?;
    let all = OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    ensure(
        !all.is_empty() && all.contains("auth_pass ********"),
        || "no masked secret in the recorded output".into(),
    )?;
    ensure(find_leak(&all, &secret).is_none(), || {
        format!(
            "the VRRP secret appears in kubeforge's output ({:?})",
            find_leak(&all, &secret)
        )
    })?;
    for entry in std::fs::read_dir(log_dir())? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        ensure(find_leak(&text, &secret).is_none(), || {
            format!("the VRRP secret appears in {}", path.display())
        })?;
    }
    let _ = std::fs::remove_dir_all(log_dir());
    Ok(())
}
