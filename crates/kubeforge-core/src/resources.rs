//! Resources: what a host should have (packages, files, sysctls, services), compared with its
//! facts to give the changes that would make it so. A change is data: a description, a diff
//! for files, and the exact shell script (plus stdin payload) that applies it.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

/// What a host should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// Debian packages installed (from whatever apt sources the host has), optionally held.
    Packages { names: Vec<String>, hold: bool },
    /// A file with this content, mode and owner. `restart` names units restarted when it changes.
    File {
        path: String,
        content: String,
        mode: u32,
        owner: String,
        group: String,
        /// Values in the content that must never be shown (redacted in diffs and logs).
        secrets: Vec<String>,
        restart: Vec<String>,
    },
    /// A kernel parameter's running value (its persistent file is a separate `File`).
    Sysctl { key: String, value: String },
    /// A systemd unit enabled at boot and running now.
    Service { unit: String },
    /// No active swap, now and at boot.
    SwapOff,
}

impl Resource {
    pub fn file(path: &str, content: String, mode: u32) -> Self {
        Resource::File {
            path: path.to_string(),
            content,
            mode,
            owner: "root".into(),
            group: "root".into(),
            secrets: Vec::new(),
            restart: Vec::new(),
        }
    }

    /// The facts this resource is compared against.
    pub fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        match self {
            Resource::Packages { names, .. } => q.packages.extend(names.iter().cloned()),
            Resource::File { path, restart, .. } => {
                q.files.insert(path.clone());
                q.units.extend(restart.iter().cloned());
            }
            Resource::Sysctl { key, .. } => {
                q.sysctls.insert(key.clone());
            }
            Resource::Service { unit } => {
                q.units.insert(unit.clone());
            }
            Resource::SwapOff => {}
        }
        q
    }
}

/// One change on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The step it belongs to (`kernel`, `haproxy`, ...).
    pub step: String,
    /// What changes, in a few words.
    pub summary: String,
    /// For files: a unified diff of the current content against the new one, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The shell script that makes the change (run as root with `sh -c`).
    pub script: String,
    /// Bytes the script reads on stdin (file contents; may hold secrets, never shown).
    #[serde(skip)]
    pub payload: Vec<u8>,
    #[serde(skip)]
    pub secrets: Vec<String>,
}

impl Change {
    /// A change that is just a command: no diff, nothing on stdin, no secrets.
    fn command(step: &str, summary: impl Into<String>, script: impl Into<String>) -> Self {
        Change {
            step: step.to_string(),
            summary: summary.into(),
            diff: None,
            script: script.into(),
            payload: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// Waits (up to 5 minutes) while another apt or dpkg runs: one left running by a run that was
/// killed, or the host's own unattended upgrades. dpkg itself cannot wait for its lock.
pub const WAIT_FOR_PACKAGE_MANAGERS: &str = "i=0; while pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done";

/// Replaces every secret in `text` with a fixed mask.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "********");
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A unified diff from `old` to `new` with the file's path in the headers.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let old_text = old.unwrap_or("");
    let diff = similar::TextDiff::from_lines(old_text, new);
    let old_name = if old.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    diff.unified_diff()
        .context_radius(3)
        .header(&old_name, &format!("b{path}"))
        .to_string()
}

/// The script that writes a file atomically: a temporary file in the same directory filled
/// from stdin, mode and owner set, flushed to disk, then renamed over the old one.
fn write_file_script(path: &str, len: usize, mode: u32, owner: &str, group: &str) -> String {
    let p = quote(path);
    format!(
        "d=$(dirname {p}); mkdir -p \"$d\"; t=$(mktemp \"$d/.kubeforge.XXXXXX\"); \
         head -c {len} > \"$t\"; chmod {mode:o} \"$t\"; chown {o}:{g} \"$t\"; sync \"$t\"; mv -f \"$t\" {p}",
        o = quote(owner),
        g = quote(group),
    )
}

/// The changes that bring a host from its facts to the resources. Empty when it is there.
pub fn changes(step: &str, resources: &[Resource], facts: &HostFacts) -> Vec<Change> {
    let mut out = Vec::new();
    let mut restarts: Vec<String> = Vec::new();
    for resource in resources {
        match resource {
            Resource::Packages { names, hold } => {
                let missing: Vec<&String> = names
                    .iter()
                    .filter(|n| !facts.packages.contains_key(*n))
                    .collect();
                if facts.dpkg_interrupted {
                    out.push(Change::command(
                        step,
                        "finish an interrupted dpkg run",
                        format!("{WAIT_FOR_PACKAGE_MANAGERS}; DEBIAN_FRONTEND=noninteractive dpkg --configure -a"),
                    ));
                }
                if !missing.is_empty() {
                    let list: Vec<String> = missing.iter().map(|n| quote(n)).collect();
                    out.push(Change::command(step, format!("install {}", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")), format!(
                            "{WAIT_FOR_PACKAGE_MANAGERS}; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold {}",
                            list.join(" ")
                        )));
                }
                if *hold {
                    let unheld: Vec<&String> =
                        names.iter().filter(|n| !facts.holds.contains(*n)).collect();
                    if !unheld.is_empty() {
                        let list: Vec<String> = unheld.iter().map(|n| quote(n)).collect();
                        out.push(Change::command(
                            step,
                            format!(
                                "hold {}",
                                unheld
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ),
                            format!("apt-mark hold {} >/dev/null", list.join(" ")),
                        ));
                    }
                }
            }
            Resource::File {
                path,
                content,
                mode,
                owner,
                group,
                secrets,
                restart,
            } => {
                let current = facts.file(path);
                let same_content =
                    current.is_some_and(|f| f.sha256 == sha256_hex(content.as_bytes()));
                let same_meta = current
                    .is_some_and(|f| f.mode == *mode && &f.owner == owner && &f.group == group);
                if same_content && same_meta {
                    continue;
                }
                let (summary, diff, script, payload) = if same_content {
                    (
                        format!("set {path} to mode {mode:o}, owner {owner}:{group}"),
                        None,
                        format!(
                            "chmod {mode:o} {p}; chown {o}:{g} {p}",
                            p = quote(path),
                            o = quote(owner),
                            g = quote(group)
                        ),
                        Vec::new(),
                    )
                } else {
                    let old = current
                        .and_then(|f| f.content.as_deref())
                        .map(String::from_utf8_lossy);
                    let diff = unified_diff(path, old.as_deref(), content);
                    let verb = if current.is_some() {
                        "update"
                    } else {
                        "create"
                    };
                    (
                        format!("{verb} {path}"),
                        Some(redact(&diff, secrets)),
                        write_file_script(path, content.len(), *mode, owner, group),
                        content.as_bytes().to_vec(),
                    )
                };
                out.push(Change {
                    step: step.to_string(),
                    summary,
                    diff,
                    script,
                    payload,
                    secrets: secrets.clone(),
                });
                if !same_content {
                    restarts.extend(restart.iter().cloned());
                }
            }
            Resource::Sysctl { key, value } => {
                let current = facts.sysctls.get(key).cloned().flatten();
                if current.as_deref() != Some(value.as_str()) {
                    out.push(Change::command(
                        step,
                        format!(
                            "set {key} = {value} (now {})",
                            current.as_deref().unwrap_or("unset")
                        ),
                        format!("sysctl -q -w {}", quote(&format!("{key}={value}"))),
                    ));
                }
            }
            Resource::Service { unit } => {
                let fact = facts.unit(unit);
                let restart_now = restarts.iter().any(|u| u == unit);
                if !fact.is_some_and(|f| f.is_enabled()) {
                    out.push(Change::command(
                        step,
                        format!("enable {unit}"),
                        format!("systemctl enable -q {}", quote(unit)),
                    ));
                }
                let running = fact.is_some_and(|f| f.is_active());
                if restart_now || !running {
                    let (verb, why) = if running || restart_now {
                        ("restart", " (its configuration changed)")
                    } else {
                        ("start", "")
                    };
                    out.push(Change::command(
                        step,
                        format!("{verb} {unit}{why}"),
                        format!("systemctl {verb} {}", quote(unit)),
                    ));
                }
                restarts.retain(|u| u != unit);
            }
            Resource::SwapOff => {
                if facts.swap_active {
                    out.push(Change::command(step, "turn swap off now and at boot", "swapoff -a && sed -i.kubeforge -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1@' /etc/fstab"));
                }
            }
        }
    }
    // Units restarted for a changed file that has no Service resource of its own.
    for unit in restarts {
        if facts.unit(&unit).is_some_and(|f| f.is_active()) {
            out.push(Change::command(
                step,
                format!("restart {unit} (its configuration changed)"),
                format!("systemctl restart {}", quote(&unit)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
