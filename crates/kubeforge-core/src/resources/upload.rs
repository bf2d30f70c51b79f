//! A file of the machine kubeforge runs on (a bundle's binary, image or package), on the host:
//! sent only when the host's copy differs (sha256 as a fact), compressed, checked against its
//! sha256 on arrival, then renamed into place.

use std::path::PathBuf;

use crate::facts::{DIGESTS, FactQuery, HostFacts};
use crate::shell::quote;

use super::{Change, Notify, Pending};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file on this machine.
    pub local: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Where it goes on the host.
    pub dest: String,
    pub mode: u32,
    pub notify: Vec<(String, Notify)>,
}

/// What the engine streams for an upload change: the local file, compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    pub local: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Upload {
    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.digests.insert(self.dest.clone());
        q.units.extend(
            self.notify
                .iter()
                .filter(|(unit, _)| !unit.is_empty())
                .map(|(unit, _)| unit.clone()),
        );
        q
    }

    pub(super) fn changes(
        &self,
        step: &str,
        facts: &HostFacts,
        pending: &mut Pending,
    ) -> Vec<Change> {
        let current = facts.digests.get(&self.dest).cloned().flatten();
        if current.as_deref() == Some(self.sha256.as_str()) {
            return Vec::new();
        }
        for (unit, how) in &self.notify {
            pending.notify(unit, *how, format!("{} changed", self.dest));
        }
        let name = self
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let verb = if current.is_some() {
            "replace"
        } else {
            "upload"
        };
        let d = quote(&self.dest);
        let script = format!(
            "(\nset -e\nd=$(dirname {d}); mkdir -p \"$d\" {digests_dir}\nt=$(mktemp \"$d/.kubeforge.XXXXXX\")\ntrap 'rm -f \"$t\"' EXIT\nIFS= read -r n\nhead -c \"$n\" | gzip -dc > \"$t\"\ns=$(sha256sum < \"$t\" | cut -d' ' -f1)\n[ \"$s\" = {sha} ] || {{ echo \"{dest}: received a file with sha256 $s, expected {sha}\" >&2; exit 1; }}\nchmod {mode:o} \"$t\"; chown root:root \"$t\"; sync \"$t\"\nmv -f \"$t\" {d}\necho \"{sha} $(stat -c '%s %Y' {d}) {dest}\" >> {digests}\n)",
            digests_dir = quote(DIGESTS.rsplit_once('/').map_or("/", |(dir, _)| dir)),
            sha = self.sha256,
            dest = self.dest.replace(['"', '\\', '$', '`'], "_"),
            mode = self.mode,
            digests = quote(DIGESTS),
        );
        vec![Change {
            upload: Some(UploadSource {
                local: self.local.clone(),
                sha256: self.sha256.clone(),
                size: self.size,
            }),
            ..Change::command(
                step,
                format!("{verb} {name} ({}) to {}", megabytes(self.size), self.dest),
                script,
            )
            .with_timeout(std::time::Duration::from_secs(600))
        }]
    }
}

/// `12.3 MB`, `0.4 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}
