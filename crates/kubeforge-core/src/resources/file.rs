//! A file with this content, mode and owner, written atomically and validated before it
//! replaces the old one.

use crate::facts::{FactQuery, HostFacts, Read};
use crate::mask::mask_line_values;
use crate::shell::quote;

use super::{Change, Notify, Pending, unified_diff};
use crate::hash::sha256_hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// How much of the current file the host may return: [`Read::Masked`] for files with a
    /// secret value (diffs show it masked), [`Read::Hash`] for keys and kubeconfigs (no diff).
    pub read: Read,
    /// A command that checks the new file before it is put in place; `{}` stands for the
    /// temporary file's path (`haproxy -c -f {}`). A file that fails it is never put in place.
    pub validate: Option<String>,
    /// Units that read this file, and how they pick up a change.
    pub notify: Vec<(String, Notify)>,
}

impl File {
    /// A plain root-owned file.
    pub fn new(path: &str, content: impl Into<String>, mode: u32) -> Self {
        File {
            path: path.to_string(),
            content: content.into(),
            mode,
            owner: "root".into(),
            group: "root".into(),
            read: Read::Content,
            validate: None,
            notify: Vec::new(),
        }
    }

    pub fn read(mut self, read: Read) -> Self {
        self.read = read;
        self
    }

    pub fn validate(mut self, command: &str) -> Self {
        self.validate = Some(command.to_string());
        self
    }

    pub fn notify(mut self, unit: &str, how: Notify) -> Self {
        self.notify.push((unit.to_string(), how));
        self
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.file(&self.path, self.read);
        q.units.extend(
            self.notify
                .iter()
                .filter(|(unit, _)| !unit.is_empty())
                .map(|(unit, _)| unit.clone()),
        );
        q
    }

    /// The diff shown for a content change, at the level of detail `read` allows.
    fn diff(&self, current: Option<&crate::facts::FileFact>) -> Option<String> {
        match self.read {
            Read::Hash => None,
            Read::Content | Read::Masked => {
                let new = match self.read {
                    Read::Masked => mask_line_values(&self.content),
                    _ => self.content.clone(),
                };
                let old = current
                    .and_then(|f| f.content.as_deref())
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                // An existing file whose content the host did not return (over 1 MiB).
                if current.is_some() && old.is_none() {
                    return None;
                }
                Some(unified_diff(&self.path, old.as_deref(), &new))
            }
        }
    }

    pub(super) fn changes(
        &self,
        step: &str,
        facts: &HostFacts,
        pending: &mut Pending,
    ) -> Vec<Change> {
        let current = facts.file(&self.path);
        let same_content = current.is_some_and(|f| f.sha256 == sha256_hex(self.content.as_bytes()));
        let same_meta = current
            .is_some_and(|f| f.mode == self.mode && f.owner == self.owner && f.group == self.group);
        let mut out = Vec::new();
        if !same_content {
            let verb = if current.is_some() {
                "update"
            } else {
                "create"
            };
            let sealed = if self.read == Read::Hash {
                " (sealed: its content is not shown)"
            } else {
                ""
            };
            out.push(Change {
                diff: self.diff(current),
                payload: self.content.as_bytes().to_vec(),
                ..Change::command(
                    step,
                    format!("{verb} {}{sealed}", self.path),
                    self.write_script(),
                )
            });
            for (unit, how) in &self.notify {
                pending.notify(unit, *how, format!("{} changed", self.path));
            }
        } else {
            if !same_meta {
                out.push(Change::command(
                    step,
                    format!(
                        "set {} to mode {:o}, owner {}:{}",
                        self.path, self.mode, self.owner, self.group
                    ),
                    format!(
                        "chmod {:o} {p} && chown {o}:{g} {p}",
                        self.mode,
                        p = quote(&self.path),
                        o = quote(&self.owner),
                        g = quote(&self.group)
                    ),
                ));
            }
            // Written after its unit last read it (a run stopped between writing the file and
            // reloading the unit): the unit still runs the old configuration.
            let mtime = current.map(|f| f.mtime).unwrap_or(0);
            for (unit, how) in &self.notify {
                if let Some(loaded) = facts.unit_loaded_at(unit)
                    && mtime > loaded
                {
                    pending.notify(
                        unit,
                        *how,
                        format!("{} changed after {unit} last read it", self.path),
                    );
                }
            }
        }
        out
    }

    /// Writes the file atomically: a temporary file in the same directory filled from stdin,
    /// its size checked, validated, mode and owner set, flushed to disk, then renamed over the
    /// old one. The temporary file is removed whatever happens.
    fn write_script(&self) -> String {
        let p = quote(&self.path);
        let len = self.content.len();
        let validate = self
            .validate
            .as_ref()
            .map(|v| format!("{} </dev/null >&2\n", v.replace("{}", "\"$t\"")))
            .unwrap_or_default();
        format!(
            "(\nset -e\nd=$(dirname {p}); mkdir -p \"$d\"\nt=$(mktemp \"$d/.kubeforge.XXXXXX\")\ntrap 'rm -f \"$t\"' EXIT\nhead -c {len} > \"$t\"\nn=$(stat -c %s \"$t\"); [ \"$n\" -eq {len} ] || {{ echo \"{path}: received $n of {len} bytes\" >&2; exit 1; }}\n{validate}chmod {mode:o} \"$t\"; chown {o}:{g} \"$t\"; sync \"$t\"\nmv -f \"$t\" {p}\n)",
            path = self.path.replace(['"', '\\', '$', '`'], "_"),
            mode = self.mode,
            o = quote(&self.owner),
            g = quote(&self.group),
        )
    }
}
