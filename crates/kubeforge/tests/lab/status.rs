//! `kubeforge status` on the cluster the stand-ins simulate: healthy (exit 0), then each
//! problem named with exit 1 and gone once undone: a foreign etcd member, a certificate under
//! 30 days, every kube-apiserver down in one HAProxy (which still reaches them), a worker that
//! does not answer.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::fixture::{CLUSTER, ETCDCTL, TestResult, ensure, kubeforge, lab, note};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "status::healthy_then_a_foreign_member_an_expiring_certificate_haproxy_finding_no_apiserver_and_a_stopped_worker_named",
        status,
    )]
}

/// `kubeforge status -i <the cluster's inventory> [ARGS]`: its exit code, standard output,
/// everything it printed, and how long it took.
fn run_status(args: &[&str]) -> Result<(i32, String, String, f64), libtest_mimic::Failed> {
    let f = lab()?;
    let started = Instant::now();
    let out = kubeforge()
        .arg("status")
        .args(args)
        .arg("-i")
        .arg(f.inventory_of(CLUSTER)?)
        .output()?;
    let run = crate::cluster::record(out, started);
    Ok((run.code, run.stdout.clone(), run.text(), run.seconds))
}

fn healthy(when: &str) -> TestResult {
    let (code, _, text, _) = run_status(&[])?;
    ensure(code == 0 && text.contains("\nhealthy\n"), || {
        format!("status {when}: exit {code}\n{text}")
    })
}

fn named(problem: &str, expected: &str) -> TestResult {
    named_any(problem, &[expected])
}

/// One run of status exits 1 and names the problem in one of the `expected` wordings.
fn named_any(problem: &str, expected: &[&str]) -> TestResult {
    let (code, _, text, _) = run_status(&[])?;
    ensure(
        code == 1 && expected.iter().any(|e| text.contains(e)),
        || format!("status with {problem}: exit {code}, expected one of {expected:?}\n{text}"),
    )
}

fn status() -> TestResult {
    let f = lab()?;
    healthy("of the cluster just built")?;
    let (code, json, _, seconds) = run_status(&["-o", "json"])?;
    let s: serde_json::Value = serde_json::from_str(&json)?;
    let members = s["etcd"].as_array().cloned().unwrap_or_default();
    ensure(
        code == 0
            && s["healthy"] == true
            && s["plan_changes"] == 0
            && s["nodes"].as_array().map(Vec::len) == Some(4)
            && members.len() == 3
            && members.iter().filter(|m| m["leader"] == true).count() == 1
            && s["vip"]["holders"].as_array().map(Vec::len) == Some(1)
            && s["haproxy"].as_array().is_some_and(|h| {
                h.len() == 3
                    && h.iter().all(|r| {
                        r["servers"]
                            .as_object()
                            .is_some_and(|s| s.len() == 3 && s.values().all(|v| v == "up"))
                    })
            })
            && s["certificates"].as_array().is_some_and(|c| {
                c.len() > 10 && c.iter().all(|c| c["days_left"].as_i64() > Some(300))
            }),
        || format!("status -o json of a healthy cluster: exit {code}\n{json}"),
    )?;
    note(&format!("status of 3+1 (stand-ins): {seconds:.1} s"));

    // A member added to etcd that never started (what a failed or foreign join leaves).
    let ghost = f.in_subnet("10.213.0.99");
    f.ssh(
        "k8scp01",
        &format!("{ETCDCTL} member add ghost --peer-urls=https://{ghost}:2380"),
    )?;
    named(
        "a foreign etcd member",
        "matches no control-plane host of the inventory",
    )?;
    let (_, json, _, _) = run_status(&["-o", "json"])?;
    let s: serde_json::Value = serde_json::from_str(&json)?;
    let id = s["etcd"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["in_inventory"] == false)
        .and_then(|m| m["id"].as_str())
        .ok_or("status -o json names no foreign member")?
        .to_string();
    f.ssh("k8scp01", &format!("{ETCDCTL} member remove {id}"))?;
    healthy("once the foreign member was removed")?;

    // A certificate that expires in 10 days on k8scp03.
    let cert = "/etc/kubernetes/pki/front-proxy-client.crt";
    f.ssh(
        "k8scp03",
        &format!("cp -p {cert} {cert}.kept && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=front-proxy-client -days 10 -keyout /dev/null -out {cert} 2>/dev/null"),
    )?;
    // 9 days and some hours, or 10 when status reads its clock within the second the
    // certificate was made (a certificate's times are whole seconds): one run of status
    // must name it with either count.
    let expiring = named_any(
        "a certificate under 30 days",
        &[
            &format!("k8scp03: {cert} expires in 9 days (under 30)"),
            &format!("k8scp03: {cert} expires in 10 days (under 30)"),
        ],
    );
    f.ssh("k8scp03", &format!("mv {cert}.kept {cert}"))?;
    expiring?;
    healthy("once the certificate was put back")?;

    // HAProxy's checks on k8scp01 find every kube-apiserver down (forced there: checks off,
    // health down), as slow answers on a loaded node can: status names each, and a request
    // through that HAProxy still reaches a kube-apiserver (its unchecked fallbacks); without
    // them HAProxy closes every connection.
    let servers = "for s in k8scp01 k8scp02 k8scp03; do echo \"$1 kube-apiserver/$s$2\" | socat stdio /run/haproxy/admin.sock; done";
    let haproxy =
        |cmd: &str, rest: &str| f.ssh("k8scp01", &format!("sh -c '{servers}' sh '{cmd}' '{rest}'"));
    haproxy("disable health", "")?;
    haproxy("set server", " health down")?;
    let answered = f.ssh(
        "k8scp01",
        "curl -sk --max-time 5 https://127.0.0.1:8443/version 2>&1; echo \" exit $?\"",
    );
    let down = named(
        "every kube-apiserver down in k8scp01's HAProxy",
        "k8scp01: HAProxy sees kube-apiserver k8scp03 down",
    );
    haproxy("enable health", "")?;
    let answered = answered?;
    ensure(
        answered.contains("\"gitVersion\"") && answered.trim_end().ends_with(" exit 0"),
        || {
            format!(
                "a request through k8scp01's HAProxy with every kube-apiserver down there: {answered}"
            )
        },
    )?;
    down?;
    healthy_within("once HAProxy's checks were back", Duration::from_secs(60))?;

    // A worker that is stopped.
    f.lab.stop("k8s01")?;
    let stopped = named("a stopped worker", "k8s01: does not answer over SSH");
    f.lab.start("k8s01")?;
    stopped?;
    healthy_within("after k8s01 came back", Duration::from_secs(120))
}

/// Status says healthy within `limit`.
fn healthy_within(when: &str, limit: Duration) -> TestResult {
    let deadline = Instant::now() + limit;
    loop {
        let (code, _, text, _) = run_status(&[])?;
        if code == 0 {
            return Ok(());
        }
        ensure(Instant::now() < deadline, || {
            format!("status {when}, still not healthy:\n{text}")
        })?;
        std::thread::sleep(Duration::from_secs(2));
    }
}
