//! End-to-end scenarios against one shared lab (see kubeforge-lab).
//!
//! One lab (4 control-plane hosts, 2 workers; the cluster starts on 3 and 1) is brought up through the real `kubeforge`
//! binary on first use, every scenario runs against it in order, and `lab down` at the end
//! must leave nothing behind. Needs root on Linux. More scenario groups (for example `apply`
//! against the lab) are added as modules whose `trials()` are listed in `main`.
//!
//! The test lab has a directory of its own (`$KUBEFORGE_TEST_LAB_DIR`, default
//! `/var/lib/kubeforge/test-lab`), so a lab the user has up (the demo's, in the default
//! directory) stays as it is; a small "bystander" lab of another directory, up through every
//! scenario, shows that. A lab already up in the test directory is an error (the test does not
//! take over someone's lab), a stale one (its state left behind, no host of it running, as
//! after a restart of the machine) is taken down first.

mod apply;
mod backup;
mod certs;
mod cluster;
mod demo;
mod dns;
mod faults;
mod fixture;
mod hosts;
mod packages;
mod remove;
mod restore;
mod runtime;
mod ssh;
mod status;
mod teardown;
mod upgrade;

use std::io::Write;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let mut args = Arguments::from_args();
    // Scenarios share one lab and change it (kill, cut): run them one after another.
    args.test_threads = Some(1);

    let mut trials: Vec<Trial> = Vec::new();
    trials.extend(ssh::trials());
    trials.extend(hosts::trials());
    trials.extend(dns::trials());
    trials.extend(packages::trials());
    trials.extend(faults::trials());
    trials.extend(apply::trials());
    trials.extend(runtime::trials());
    trials.extend(cluster::trials());
    trials.extend(demo::trials());
    // Last: `lab down` and the check that nothing is left.
    trials.extend(teardown::trials());

    if !args.list && !kubeforge_lab::sys::is_root() {
        let _ = writeln!(
            std::io::stderr(),
            "error: the lab tests need root (they create a bridge, mounts, cgroups and \
             containers); run them as root, e.g. `sudo -E cargo test -p kubeforge --test lab`"
        );
        std::process::exit(1);
    }

    let conclusion = libtest_mimic::run(&args, trials);
    // If the teardown trial was filtered out, still take the lab down.
    fixture::down_if_still_up();
    conclusion.exit();
}
