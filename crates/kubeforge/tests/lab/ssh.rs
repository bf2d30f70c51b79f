//! SSH into every host with the system `ssh` by its name, as an operator does: through the
//! lab's ssh_config, with strict host key checking against a known_hosts that names the
//! hosts only by name.

use libtest_mimic::Trial;

use crate::fixture::{TestResult, ensure, lab};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "ssh::every_host_by_name_through_the_lab_ssh_config",
            every_host,
        ),
        Trial::test(
            "ssh::known_hosts_names_hosts_by_name_only",
            known_hosts_by_name,
        ),
        Trial::test("ssh::wrong_known_hosts_entry_is_refused", wrong_key_refused),
        Trial::test("ssh::inventory_lists_every_host_by_name", inventory),
    ]
}

fn every_host() -> TestResult {
    let f = lab()?;
    for host in &f.plan.hosts {
        for name in [host.name.clone(), host.fqdn()] {
            let said = f.ssh(&name, "hostname")?;
            ensure(said.trim() == host.name, || {
                format!("{name} says it is {:?}", said.trim())
            })?;
        }
    }
    Ok(())
}

fn known_hosts_by_name() -> TestResult {
    let f = lab()?;
    let known = std::fs::read_to_string(f.lab.known_hosts())?;
    for host in &f.plan.hosts {
        let names = format!("{},{} ", host.name, host.fqdn());
        ensure(
            known.lines().filter(|l| l.starts_with(&names)).count() == 1,
            || format!("known_hosts has no single line for {names:?}:\n{known}"),
        )?;
        ensure(!known.contains(&host.address.to_string()), || {
            format!("known_hosts names {}:\n{known}", host.address)
        })?;
    }
    Ok(())
}

fn wrong_key_refused() -> TestResult {
    let f = lab()?;
    // Pretend k8scp01 has k8scp02's key: ssh must refuse, not ask or learn.
    let known = std::fs::read_to_string(f.lab.known_hosts())?;
    let other_key = known
        .lines()
        .find(|l| l.starts_with("k8scp02,"))
        .and_then(|l| l.split_once(' ').map(|(_, key)| key.to_owned()))
        .ok_or("no k8scp02 line in known_hosts")?;
    let wrong = std::env::temp_dir().join(format!("kubeforge-lab-wrong-{}", std::process::id()));
    std::fs::write(&wrong, format!("k8scp01 {other_key}\n"))?;
    let output = f
        .lab
        .ssh("k8scp01")
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", wrong.display()))
        .arg("true")
        .output();
    let _ = std::fs::remove_file(&wrong);
    // Options on the command line come before the host's block: the wrong file is used.
    let output = output?;
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
        let entry = format!("  - {}\n", host.name);
        ensure(yaml.contains(&entry), || {
            format!("inventory lacks {entry:?}:\n{yaml}")
        })?;
    }
    ensure(!yaml.contains("address"), || {
        format!("inventory gives addresses:\n{yaml}")
    })?;
    let config = format!("  config: {}\n", f.lab.ssh_config().display());
    ensure(yaml.contains(&config), || {
        format!("inventory lacks {config:?}:\n{yaml}")
    })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(f.lab.identity_file())?.permissions(),
    );
    ensure(mode & 0o777 == 0o600, || {
        format!("operator key has mode {:o}", mode & 0o777)
    })
}
