//! Diagnostics: every problem found in an inventory, with where it is and how to fix it.
//!
//! Validation never stops at the first problem: it collects [`Diagnostic`]s and the caller
//! renders them all at once, each naming `file:line:column`.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// A position in a source file: 1-based line and column (in characters), and how many
/// characters the offending text spans (at least 1, for the caret line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub line: u32,
    pub column: u32,
    #[serde(skip)]
    pub len: u32,
}

impl Span {
    pub const fn new(line: u32, column: u32, len: u32) -> Self {
        Self { line, column, len }
    }

    /// The start of the file, for problems that belong to no particular place.
    pub const START: Span = Span::new(1, 1, 1);
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// What kind of problem a diagnostic reports. The names are stable: they appear in JSON output
/// and in the rendered text (`error[unknown-key]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Syntax,
    UnknownKey,
    DuplicateKey,
    WrongType,
    MissingKey,
    InvalidValue,
    InvalidHostname,
    InvalidUser,
    DuplicateHost,
    DuplicateAddress,
    UnknownRole,
    RoleMismatch,
    NoFirstControlPlane,
    NoHosts,
    TooManyHosts,
    VipIsHostAddress,
    VipOutsideNetwork,
    HostOutsideNetwork,
    CidrOverlap,
    InvalidVersion,
    UnsupportedVersion,
    PastEndOfLife,
    ReservedPort,
    Quorum,
    NoWorkers,
    IgnoredVariable,
    DnsMissing,
    DnsMismatch,
    DnsAmbiguous,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Syntax => "syntax",
            Kind::UnknownKey => "unknown-key",
            Kind::DuplicateKey => "duplicate-key",
            Kind::WrongType => "wrong-type",
            Kind::MissingKey => "missing-key",
            Kind::InvalidValue => "invalid-value",
            Kind::InvalidHostname => "invalid-hostname",
            Kind::InvalidUser => "invalid-user",
            Kind::DuplicateHost => "duplicate-host",
            Kind::DuplicateAddress => "duplicate-address",
            Kind::UnknownRole => "unknown-role",
            Kind::RoleMismatch => "role-mismatch",
            Kind::NoFirstControlPlane => "no-first-control-plane",
            Kind::NoHosts => "no-hosts",
            Kind::TooManyHosts => "too-many-hosts",
            Kind::VipIsHostAddress => "vip-is-host-address",
            Kind::VipOutsideNetwork => "vip-outside-network",
            Kind::HostOutsideNetwork => "host-outside-network",
            Kind::CidrOverlap => "cidr-overlap",
            Kind::InvalidVersion => "invalid-version",
            Kind::UnsupportedVersion => "unsupported-version",
            Kind::PastEndOfLife => "past-end-of-life",
            Kind::ReservedPort => "reserved-port",
            Kind::Quorum => "quorum",
            Kind::NoWorkers => "no-workers",
            Kind::IgnoredVariable => "ignored-variable",
            Kind::DnsMissing => "dns-missing",
            Kind::DnsMismatch => "dns-mismatch",
            Kind::DnsAmbiguous => "dns-ambiguous",
        }
    }
}

/// One problem: what was found, what was expected, and a hint at the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: Kind,
    /// Where in the inventory; `None` for problems found outside it (DNS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(kind: Kind, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, kind, span.into(), message.into())
    }

    pub fn warning(kind: Kind, span: impl Into<Option<Span>>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, kind, span.into(), message.into())
    }

    fn new(severity: Severity, kind: Kind, span: Option<Span>, message: String) -> Self {
        Self {
            severity,
            kind,
            span,
            message,
            found: None,
            expected: None,
            hint: None,
        }
    }

    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics into reading order: by position, errors before warnings at one place.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.span.is_none(), a.span, a.severity, a.kind).cmp(&(
            b.span.is_none(),
            b.span,
            b.severity,
            b.kind,
        ))
    });
}

/// Renders diagnostics as text, each with the source line and a caret under the offending part.
pub struct Report<'a> {
    pub path: &'a str,
    pub source: &'a str,
    pub diagnostics: &'a [Diagnostic],
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for d in self.diagnostics {
            let severity = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            match d.span {
                Some(span) => writeln!(
                    f,
                    "{severity}[{}]: {}:{}:{}: {}",
                    d.kind.as_str(),
                    self.path,
                    span.line,
                    span.column,
                    d.message
                )?,
                None => writeln!(f, "{severity}[{}]: {}", d.kind.as_str(), d.message)?,
            }
            if let Some(span) = d.span
                && let Some(text) = (span.line as usize)
                    .checked_sub(1)
                    .and_then(|i| lines.get(i))
            {
                let number = span.line.to_string();
                let pad = " ".repeat(number.len());
                let mut caret = String::new();
                let _ = write!(
                    caret,
                    "{}{}",
                    " ".repeat(span.column.saturating_sub(1) as usize),
                    "^".repeat(span.len.max(1) as usize)
                );
                writeln!(f, " {pad} |")?;
                writeln!(f, " {number} | {}", mask_secret_values(text.trim_end()))?;
                writeln!(f, " {pad} | {caret}")?;
            }
            if let Some(found) = &d.found {
                writeln!(f, "  found: {found}")?;
            }
            if let Some(expected) = &d.expected {
                writeln!(f, "  expected: {expected}")?;
            }
            if let Some(hint) = &d.hint {
                writeln!(f, "  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

/// Whether an inventory key names a secret (`ansible_become_password`, `*token*`, ...): its
/// value is never shown.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
    ]
    .iter()
    .any(|w| key.contains(w))
        || key == "pass"
        || key.ends_with("_pass")
}

/// An inventory line as shown under a diagnostic: the values of keys that name secrets
/// (`key=value` in the INI format, `key: value` in YAML) replaced by `********`.
pub fn mask_secret_values(line: &str) -> String {
    const MASK: &str = "********";
    // YAML: `  key: value`, `- key: value`.
    let body = line.trim_start().trim_start_matches("- ").trim_start();
    if let Some((key, value)) = body.split_once(':')
        && !key.contains(char::is_whitespace)
        && is_secret_key(key.trim_matches(|c| c == '"' || c == '\''))
        && !value.trim().is_empty()
    {
        let start = line.len() - body.len() + key.len() + 1;
        let gap = value.len() - value.trim_start().len();
        return format!("{}{MASK}", &line[..start + gap]);
    }
    // INI: words `key=value` (a host, then its variables).
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        match word.split_once('=') {
            Some((key, _)) if is_secret_key(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(word),
        }
        let space_end = after.len() - after.trim_start().len();
        out.push_str(&after[..space_end]);
        rest = &after[space_end..];
    }
    out
}

/// Suggests the closest of `candidates` to a misspelt `word`, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["address", "name", "role"];
        assert_eq!(did_you_mean("adress", keys), Some("address"));
        assert_eq!(did_you_mean("nmae", keys), Some("name"));
        assert_eq!(did_you_mean("zzzz", keys), None);
    }

    #[test]
    fn values_of_secret_keys_are_masked_in_quoted_lines() {
        assert_eq!(
            mask_secret_values(
                "k8scp01 ansible_host=10.0.0.1 ansible_become_password=hunter2secret"
            ),
            "k8scp01 ansible_host=10.0.0.1 ansible_become_password=********"
        );
        assert_eq!(
            mask_secret_values("  password: \"hunter2\"  # mine"),
            "  password: ********"
        );
        assert_eq!(
            mask_secret_values("- api_token:  abc"),
            "- api_token:  ********"
        );
        assert_eq!(
            mask_secret_values("ansible_ssh_pass=x y=z"),
            "ansible_ssh_pass=******** y=z"
        );
        // Not secrets: keys, paths, names.
        for line in [
            "  adress: 10.0.0.1",
            "ansible_ssh_private_key_file=~/.ssh/id",
            "  passwords:",
            "[k8sNode]",
        ] {
            assert_eq!(mask_secret_values(line), line);
        }
    }

    #[test]
    fn report_points_at_the_column() {
        let d = [
            Diagnostic::error(Kind::UnknownKey, Span::new(2, 3, 6), "unknown key `adress`")
                .hint("did you mean `address`?"),
        ];
        let text = Report {
            path: "c.yaml",
            source: "hosts:\n  adress: x\n",
            diagnostics: &d,
        }
        .to_string();
        assert!(text.starts_with("error[unknown-key]: c.yaml:2:3: unknown key `adress`\n"));
        assert!(text.contains(" 2 |   adress: x\n   |   ^^^^^^\n"), "{text}");
        assert!(text.contains("hint: did you mean `address`?"));
    }
}
