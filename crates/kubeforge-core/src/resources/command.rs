//! A one-shot command: guarded by a fact (`kubeadm init` only where no cluster exists), with
//! secrets on stdin (never on its command line: sudo logs argv and `ps` shows it), and values
//! read from its output for later steps on other hosts.

use std::time::Duration;

use crate::facts::{FactQuery, HostFacts, Read};

use super::{Action, Change};

/// When the command is not needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// This file exists (`/etc/kubernetes/admin.conf`).
    FileExists(String),
    /// Decided from facts by the step (e.g. the node is already a member): `true` = skip.
    Done(bool),
}

/// How a value is read from a command's standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The `--token` of a `kubeadm join` command line.
    JoinToken,
    /// The `--discovery-token-ca-cert-hash` of a `kubeadm join` command line.
    CaCertHash,
    /// The line after kubeadm's `Using certificate key:`.
    CertificateKey,
    /// The last non-empty line.
    LastLine,
}

impl Parse {
    pub fn read(self, stdout: &str) -> Option<String> {
        let flag = |name: &str| {
            let mut words = stdout.split_whitespace();
            while let Some(w) = words.next() {
                if w == name {
                    return words.next().map(str::to_string);
                }
                if let Some(v) = w.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                    return Some(v.to_string());
                }
            }
            None
        };
        match self {
            Parse::JoinToken => flag("--token"),
            Parse::CaCertHash => flag("--discovery-token-ca-cert-hash"),
            Parse::CertificateKey => {
                let mut lines = stdout.lines().map(str::trim);
                lines.find(|l| l.to_ascii_lowercase().ends_with("certificate key:"))?;
                lines.find(|l| !l.is_empty()).map(str::to_string)
            }
            Parse::LastLine => stdout
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string),
        }
        .filter(|v| !v.is_empty())
    }
}

/// A value a command's output gives, stored under `value` for later steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub value: &'static str,
    pub secret: bool,
    pub parse: Parse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub summary: String,
    /// Never holds a secret; reads `stdin` (with `head -c`) when it has one.
    pub script: String,
    pub stdin: Vec<u8>,
    pub unless: Option<Guard>,
    pub captures: Vec<Capture>,
    pub timeout: Duration,
}

impl Command {
    pub fn new(summary: impl Into<String>, script: impl Into<String>) -> Self {
        Command {
            summary: summary.into(),
            script: script.into(),
            stdin: Vec::new(),
            unless: None,
            captures: Vec::new(),
            timeout: super::DEFAULT_TIMEOUT,
        }
    }

    pub fn unless(mut self, guard: Guard) -> Self {
        self.unless = Some(guard);
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = bytes;
        self
    }

    pub fn capture(mut self, value: &'static str, secret: bool, parse: Parse) -> Self {
        self.captures.push(Capture {
            value,
            secret,
            parse,
        });
        self
    }

    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        if let Some(Guard::FileExists(path)) = &self.unless {
            q.file(path, Read::Hash);
        }
        q
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        let done = match &self.unless {
            None => false,
            Some(Guard::FileExists(path)) => facts.file(path).is_some(),
            Some(Guard::Done(done)) => *done,
        };
        if done {
            return Vec::new();
        }
        vec![Change {
            payload: self.stdin.clone(),
            action: Action::Script {
                timeout: self.timeout,
                captures: self.captures.clone(),
            },
            ..Change::command(step, self.summary.clone(), self.script.clone())
        }]
    }
}
