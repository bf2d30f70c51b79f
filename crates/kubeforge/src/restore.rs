//! `kubeforge apply --restore-from BACKUP`: reads and verifies a `kubeforge backup` file
//! (every file against the manifest's SHA-256, the snapshot against its trailer), checks that
//! it fits this inventory and that no host holds a cluster, and gives the engine the build
//! that starts the cluster from it ([`kubeforge_core::steps::restore`]). Nothing of the backup
//! is printed; it reaches the first control-plane node on standard input only.

use std::path::Path;

use kubeforge_core::backup_file::{CLUSTER_CONFIGURATION, VRRP_PASSWORD_FILE, payload, read};
use kubeforge_core::model::Cluster;
use kubeforge_core::steps::RestoreBuild;
use kubeforge_core::steps::restore::{self, Restore, SURVEY};

use crate::args::exit;
use crate::converge::{self, ConvergeError};
use crate::output::Printer;

/// The build that restores `path` onto the hosts of `cluster`, once the backup was read and
/// verified and every host was found without a cluster; `Err`: the exit code, after saying why.
pub fn job(
    printer: &Printer,
    cluster: &Cluster,
    parallel: usize,
    path: &Path,
) -> Result<Result<Box<dyn kubeforge_core::steps::Job>, u8>, ConvergeError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::USAGE));
        }
    };
    let backup = match read(&bytes) {
        Ok(b) => b,
        Err(e) => {
            printer.error_line(&format!(
                "{}: not a usable kubeforge backup: {e}",
                path.display()
            ));
            return Ok(Err(exit::PROBLEMS));
        }
    };
    let config = String::from_utf8_lossy(&backup.files[CLUSTER_CONFIGURATION]).into_owned();
    match restore::mismatches(cluster, &config) {
        Ok(found) if found.is_empty() => {}
        Ok(found) => {
            printer.error_line(&format!(
                "{}: the restore is refused, nothing was changed: the backup does not fit this inventory: {}",
                path.display(),
                found.join("; ")
            ));
            return Ok(Err(exit::PROBLEMS));
        }
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::PROBLEMS));
        }
    }
    let (report, unreachable) =
        converge::observe(cluster, None, parallel, false, |_| Box::new(SURVEY))?;
    // A host whose facts are not known might hold a cluster: every one must answer.
    if !unreachable.is_empty() || !report.errors.is_empty() {
        for (host, why) in &unreachable {
            printer.error_line(&format!("{host}: {why}"));
        }
        for e in &report.errors {
            printer.error_line(&e.to_string());
        }
        printer.note(
            "the restore is refused, nothing was changed: every host must answer with its facts",
        );
        return Ok(Err(exit::PROBLEMS));
    }
    if let Err(why) = restore::check(cluster, &report.facts) {
        printer.error_line(&why);
        return Ok(Err(exit::PROBLEMS));
    }
    let m = &backup.manifest;
    printer.note(&format!(
        "restoring {}: the etcd snapshot of {} taken on {} at {}, with its CAs and service-account keys",
        path.display(),
        m.cluster,
        m.node,
        m.created
    ));
    let payload = match payload(&backup.files) {
        Ok(p) => p,
        Err(e) => {
            printer.error_line(&format!("{}: {e}", path.display()));
            return Ok(Err(exit::PROBLEMS));
        }
    };
    Ok(Ok(Box::new(RestoreBuild::new(Restore {
        payload,
        taken: format!("on {} at {}", m.node, m.created),
        vrrp_secret: String::from_utf8_lossy(&backup.files[VRRP_PASSWORD_FILE])
            .trim()
            .to_string(),
    }))))
}
