//! An apt repository: a signing key in a keyring file and one source file; `apt-get update`
//! runs only when either changed. The key is fetched on the host and accepted only when its
//! fingerprint is the pinned one.

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::{Change, File};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// `/etc/apt/keyrings/kubernetes-apt-keyring.gpg`
    pub path: String,
    /// Where the (ASCII-armoured) key is published.
    pub url: String,
    /// The key's fingerprint (40 hex digits, upper case).
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptRepository {
    pub name: String,
    pub keyring: Option<Keyring>,
    /// `/etc/apt/sources.list.d/kubernetes.list`
    pub source_path: String,
    /// `deb [signed-by=...] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /`
    pub source: String,
}

impl AptRepository {
    fn source_file(&self) -> File {
        File::new(
            &self.source_path,
            format!("# Managed by kubeforge\n{}\n", self.source),
            0o644,
        )
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = self.source_file().query();
        if let Some(k) = &self.keyring {
            q.keyrings.insert(k.path.clone());
        }
        q
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        let mut out = Vec::new();
        if let Some(k) = &self.keyring {
            let fingerprints = facts.keyrings.get(&k.path).cloned().unwrap_or_default();
            if !fingerprints
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&k.fingerprint))
            {
                let why = if fingerprints.is_empty() {
                    "missing".to_string()
                } else {
                    format!("has {}", fingerprints.join(", "))
                };
                out.push(Change::command(
                    step,
                    format!("install the {} signing key {} in {} (now {why})", self.name, k.fingerprint, k.path),
                    format!(
                        "(\nt=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT\ncurl -fsSL --retry 3 {url} -o \"$t/key\"\ngpg --dearmor < \"$t/key\" > \"$t/key.gpg\" 2>/dev/null || cp \"$t/key\" \"$t/key.gpg\"\nfp=$(gpg --show-keys --with-colons \"$t/key.gpg\" 2>/dev/null | awk -F: '$1 == \"fpr\" {{print $10}}')\necho \"$fp\" | grep -qix {fpr} || {{ echo \"the key at {url_text} has fingerprint(s) $fp, expected {fpr}\" >&2; exit 1; }}\ninstall -D -m 644 \"$t/key.gpg\" {path}\n)",
                        url = quote(&k.url),
                        url_text = k.url.replace(['"', '\\', '$', '`'], "_"),
                        fpr = quote(&k.fingerprint),
                        path = quote(&k.path),
                    ),
                ));
            }
        }
        let mut pending = super::Pending::default();
        out.extend(self.source_file().changes(step, facts, &mut pending));
        if !out.is_empty() {
            out.push(Change::command(
                step,
                format!("refresh the package lists ({} changed)", self.name),
                format!("{}; apt-get update -qq", super::WAIT_FOR_PACKAGE_MANAGERS),
            ));
        }
        out
    }
}
