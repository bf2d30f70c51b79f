//! SSH into every host with the system `ssh`, strict host key checking, the lab's keys.

use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "ssh::every_host_by_address_with_strict_host_keys",
            every_host,
        ),
        Trial::test("ssh::wrong_known_hosts_entry_is_refused", wrong_key_refused),
        Trial::test("ssh::inventory_lists_every_host", inventory),
    ]
}

fn every_host() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        let name = f.ssh(&host.address.to_string(), "hostname")?;
        ensure(name.trim() == host.name, || {
            format!("{} says it is {:?}", host.address, name.trim())
        })?;
    }
    Ok(())
}

fn wrong_key_refused() -> TestResult {
    let f = lab()?;
    // Pretend k8scp01's address has k8scp02's key: ssh must refuse, not ask or learn.
    let known = std::fs::read_to_string(f.lab.known_hosts())?;
    let other_key = known
        .lines()
        .find(|l| l.contains(",k8scp02,"))
        .and_then(|l| l.split_once(' ').map(|(_, key)| key.to_owned()))
        .ok_or("no k8scp02 line in known_hosts")?;
    let wrong = std::env::temp_dir().join(format!("kubeforge-lab-wrong-{}", std::process::id()));
    std::fs::write(&wrong, format!("{} {other_key}\n", f.address("k8scp01")))?;
    let output = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", wrong.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-i")
        .arg(f.lab.identity_file())
        .arg(format!("root@{}", f.address("k8scp01")))
        .arg("true")
        .output()?;
    let _ = std::fs::remove_file(&wrong);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure(!output.status.success(), || {
        "ssh accepted a wrong host key".into()
    })?;
    ensure(stderr.contains("HOST IDENTIFICATION HAS CHANGED"), || {
        format!("ssh failed for another reason than the host key: {stderr}")
    })
}

fn inventory() -> TestResult {
    let f = lab()?;
    let yaml = std::fs::read_to_string(f.lab.inventory())?;
    for host in &f.plan.hosts {
        let entry = format!("  - name: {}\n    address: {}\n", host.name, host.address);
        ensure(yaml.contains(&entry), || {
            format!("inventory lacks {entry:?}:\n{yaml}")
        })?;
    }
    let identity = format!("  identity_file: {}\n", f.lab.identity_file().display());
    ensure(yaml.contains(&identity), || {
        format!("inventory lacks {identity:?}")
    })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(f.lab.identity_file())?.permissions(),
    );
    ensure(mode & 0o777 == 0o600, || {
        format!("operator key has mode {:o}", mode & 0o777)
    })
}
