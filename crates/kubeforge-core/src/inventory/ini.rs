//! The Ansible INI inventory the article's users already have: host names one per line, in
//! `[groups]`, with optional `key=value` host variables, `[group:vars]` sections and
//! `name[01:03]` ranges.

use super::settings::{self, INI_HOST_VARS};
use super::{Format, RawHost, RawInventory, span_at};
use crate::diag::{Diagnostic, Kind, Span, Spanned, did_you_mean};

/// Group names that give their hosts a role, compared without case, `-` or `_`.
const CONTROL_PLANE_GROUPS: &[&str] = &[
    "k8scontrolplane",
    "kubecontrolplane",
    "controlplane",
    "masters",
    "master",
];
const WORKER_GROUPS: &[&str] = &[
    "k8snode", "k8snodes", "kubenode", "nodes", "node", "workers", "worker",
];

fn group_role(group: &str) -> Option<&'static str> {
    let folded: String = group
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    if CONTROL_PLANE_GROUPS.contains(&folded.as_str()) {
        Some("control-plane")
    } else if WORKER_GROUPS.contains(&folded.as_str()) {
        Some("worker")
    } else {
        None
    }
}

enum Section {
    Hosts { group: Spanned<String> },
    Vars { group: String },
    Children,
}

/// A word of a line with its 1-based column and length in characters.
struct Token<'a> {
    text: &'a str,
    column: usize,
    len: usize,
}

/// Splits a line into whitespace-separated words, keeping quoted values together and stopping
/// at a `#` or `;` comment that starts a word.
fn tokens(line: &str) -> Result<Vec<Token<'_>>, usize> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' || c == ';' {
            break;
        }
        let mut quote = None;
        let mut end = line.len();
        while let Some(&(i, c)) = chars.peek() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None => {}
            }
            chars.next();
        }
        if quote.is_some() {
            return Err(line[..start].chars().count() + 1);
        }
        let text = &line[start..end];
        out.push(Token {
            text,
            column: line[..start].chars().count() + 1,
            len: text.chars().count(),
        });
    }
    Ok(out)
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Expands `k8scp[01:03]` into `k8scp01`, `k8scp02`, `k8scp03`, keeping the zero padding.
fn expand_range(name: &str) -> Option<Result<Vec<String>, String>> {
    let open = name.find('[')?;
    let Some(close) = name[open..].find(']').map(|c| c + open) else {
        return Some(Err("a range opened with `[` is not closed with `]`".into()));
    };
    let (head, inner, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let Some((from, to)) = inner.split_once(':') else {
        return Some(Err("a range is written `[01:03]`".into()));
    };
    let (Ok(a), Ok(b)) = (from.parse::<u32>(), to.parse::<u32>()) else {
        return Some(Err(
            "a range is written with numbers, such as `[01:03]`".into()
        ));
    };
    if a > b || b - a > 999 {
        return Some(Err(format!(
            "the range [{from}:{to}] is empty or too large"
        )));
    }
    let width = from.len();
    Some(Ok((a..=b)
        .map(|n| format!("{head}{n:0width$}{tail}"))
        .collect()))
}

pub(super) fn parse(source: &str) -> (RawInventory, Vec<Diagnostic>) {
    let mut p = Parser {
        out: RawInventory::empty(Format::Ini),
        diagnostics: Vec::new(),
        listed: Vec::new(),
        by_name: std::collections::HashMap::new(),
        group_vars: Vec::new(),
        first_host: true,
    };
    let mut section = Section::Hosts {
        group: Spanned::new("ungrouped".to_string(), Span::START),
    };
    for (index, raw_line) in source.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indent = line.chars().count() - trimmed.chars().count();
        if trimmed.starts_with('[') {
            if let Some(next) = p.header(line_no, indent, trimmed) {
                section = next;
            }
            continue;
        }
        let words = match tokens(line) {
            Ok(words) => words,
            Err(column) => {
                p.diagnostics.push(
                    Diagnostic::error(
                        Kind::Syntax,
                        span_at(line_no, column, 1),
                        "a quoted value is not closed",
                    )
                    .hint("close the quote on the same line"),
                );
                continue;
            }
        };
        match &section {
            Section::Children => {}
            Section::Vars { group } => p.vars_line(line_no, indent, trimmed, group),
            Section::Hosts { group } => p.host_line(line_no, &words, group),
        }
    }
    p.apply_group_vars();
    (p.out, p.diagnostics)
}

/// What parsing has found so far.
struct Parser {
    out: RawInventory,
    diagnostics: Vec<Diagnostic>,
    /// Host index -> groups it was listed in, to tell a repeat within one group from
    /// membership of several groups (which Ansible allows).
    listed: Vec<Vec<String>>,
    /// Host name -> its index in `out.hosts` (inventories of thousands of hosts stay linear).
    by_name: std::collections::HashMap<String, usize>,
    /// Group vars that set host fields, applied once every host is known.
    group_vars: Vec<(String, &'static str, Spanned<String>)>,
    first_host: bool,
}

impl Parser {
    /// A `[group]`, `[group:vars]` or `[group:children]` line: the section it starts (`None`
    /// when the header is not closed).
    fn header(&mut self, line_no: usize, indent: usize, trimmed: &str) -> Option<Section> {
        let Some(close) = trimmed.find(']') else {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::Syntax,
                    span_at(line_no, indent + 1, trimmed.chars().count()),
                    "section header is not closed",
                )
                .found(trimmed.to_string())
                .expected("`[group]`, `[group:vars]` or `[group:children]`")
                .hint("add the closing `]`"),
            );
            return None;
        };
        let name = trimmed[1..close].trim();
        let span = span_at(line_no, indent + 2, name.chars().count());
        let (group, kind) = name.split_once(':').unwrap_or((name, ""));
        if group.is_empty()
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.diagnostics.push(
                Diagnostic::error(Kind::Syntax, span, format!("`{name}` is not a group name"))
                    .expected("letters, digits, `_` or `-`")
                    .hint("name groups like the article: [k8sControlPlane] and [k8sNode]"),
            );
        }
        Some(match kind {
            "" => Section::Hosts {
                group: Spanned::new(group.to_string(), span),
            },
            "vars" => Section::Vars {
                group: group.to_string(),
            },
            "children" => Section::Children,
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Kind::Syntax,
                        span,
                        format!("unknown section kind `:{other}`"),
                    )
                    .expected("`[group]`, `[group:vars]` or `[group:children]`"),
                );
                Section::Children
            }
        })
    }

    /// A `key=value` line of `[group:vars]`.
    fn vars_line(&mut self, line_no: usize, indent: usize, trimmed: &str, group: &str) {
        // `key=value` or `key = value`.
        let text = trimmed;
        let Some((key, value)) = text.split_once('=') else {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::Syntax,
                    span_at(line_no, indent + 1, text.chars().count()),
                    "expected a `key=value` line",
                )
                .found(text.to_string())
                .expected("key=value"),
            );
            return;
        };
        let key_trim = key.trim();
        let key_span = span_at(line_no, indent + 1, key_trim.chars().count());
        let value_start = key.chars().count() + 1;
        let value_text = value.trim();
        let value_col =
            indent + value_start + (value.chars().count() - value.trim_start().chars().count()) + 1;
        let value = Spanned::new(
            unquote(value_text.split(" #").next().unwrap_or(value_text).trim()).to_string(),
            span_at(line_no, value_col, value_text.chars().count()),
        );
        var(
            &mut self.out,
            &mut self.diagnostics,
            &mut self.group_vars,
            group,
            key_trim,
            key_span,
            value,
        );
    }

    /// A host line of `[group]`: the host (or range), its variables, and the group's role.
    fn host_line(&mut self, line_no: usize, words: &[Token<'_>], group: &Spanned<String>) {
        let Some((first, rest)) = words.split_first() else {
            return;
        };
        let span = span_at(line_no, first.column, first.len);
        if self.first_host {
            self.out.hosts_span = span;
            self.first_host = false;
        }
        let names = match expand_range(first.text) {
            None => vec![first.text.to_string()],
            Some(Ok(names)) => names,
            Some(Err(problem)) => {
                self.diagnostics.push(
                    Diagnostic::error(Kind::Syntax, span, problem).found(first.text.to_string()),
                );
                return;
            }
        };
        let mut fields = Vec::new();
        for word in rest {
            let Some((key, value)) = word.text.split_once('=') else {
                self.diagnostics.push(
                    Diagnostic::error(
                        Kind::Syntax,
                        span_at(line_no, word.column, word.len),
                        format!("`{}` is not a host variable", word.text),
                    )
                    .expected("key=value after the host name")
                    .hint("one host per line; variables are written ansible_host=192.0.2.11"),
                );
                continue;
            };
            let key_span = span_at(line_no, word.column, key.chars().count());
            let value_span = span_at(
                line_no,
                word.column + key.chars().count() + 1,
                value.chars().count(),
            );
            match INI_HOST_VARS.iter().find(|(v, _)| *v == key) {
                Some((_, field)) => {
                    fields.push((*field, Spanned::new(unquote(value).to_string(), value_span)))
                }
                None => self.diagnostics.push(unknown_var(key, key_span, true)),
            }
        }
        for name in names {
            if self.out.hosts.len() > super::MAX_HOSTS && !self.by_name.contains_key(&name) {
                // Validation says so once; hosts past the limit are not kept.
                continue;
            }
            let found = self.by_name.get(&name).copied();
            let index = match found {
                Some(i) if self.listed[i].contains(&group.value) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Kind::DuplicateHost,
                            span,
                            format!("host `{name}` is listed twice in [{}]", group.value),
                        )
                        .found(format!(
                            "a second `{name}`; the first is on line {}",
                            self.out.hosts[i].name.span.line
                        ))
                        .expected("each host once per group")
                        .hint("remove one of the two lines"),
                    );
                    continue;
                }
                Some(i) => i,
                None => {
                    self.by_name.insert(name.clone(), self.out.hosts.len());
                    self.out
                        .hosts
                        .push(RawHost::named(Spanned::new(name, span)));
                    self.listed.push(Vec::new());
                    self.out.hosts.len() - 1
                }
            };
            self.listed[index].push(group.value.clone());
            let host = &mut self.out.hosts[index];
            if let Some(role) = group_role(&group.value) {
                match &host.role {
                    Some(existing) if existing.value != role => self.diagnostics.push(
                        Diagnostic::error(
                            Kind::RoleMismatch,
                            group.span,
                            format!(
                                "host `{}` is in both a control-plane group and a worker group",
                                host.name.value
                            ),
                        )
                        .found(format!(
                            "[{}] here, and a {} group on line {}",
                            group.value, existing.value, existing.span.line
                        ))
                        .hint("list the host in one of the two groups"),
                    ),
                    Some(_) => {}
                    None => host.role = Some(Spanned::new(role.to_string(), group.span)),
                }
            }
            for (field, value) in &fields {
                host.set(field, value.clone());
            }
        }
    }

    /// Group variables fill in what a host did not set itself.
    fn apply_group_vars(&mut self) {
        for (group, field, value) in std::mem::take(&mut self.group_vars) {
            for (host, groups) in self.out.hosts.iter_mut().zip(&self.listed) {
                if groups.contains(&group) {
                    let slot = match field {
                        "address" => &mut host.address,
                        "user" => &mut host.user,
                        "port" => &mut host.port,
                        "identity_file" => &mut host.identity_file,
                        "role" => &mut host.role,
                        _ => continue,
                    };
                    if slot.is_none() {
                        *slot = Some(value.clone());
                    }
                }
            }
        }
    }
}

/// A `key=value` line of a `[group:vars]` section.
fn var(
    out: &mut RawInventory,
    diagnostics: &mut Vec<Diagnostic>,
    group_vars: &mut Vec<(String, &'static str, Spanned<String>)>,
    group: &str,
    key: &str,
    key_span: Span,
    value: Spanned<String>,
) {
    let all = group == "all";
    if all && let Some(def) = settings::setting_for_ini(key) {
        out.settings.insert(def.key, value);
        return;
    }
    // A host's own addresses are never a group's.
    if let Some((_, field)) = INI_HOST_VARS.iter().find(|(v, _)| *v == key)
        && (!all || *field != "address")
        && !matches!(*field, "ip" | "access_ip")
    {
        group_vars.push((group.to_string(), field, value));
        return;
    }
    if matches!(key, "ip" | "access_ip") {
        diagnostics.push(
            Diagnostic::warning(
                Kind::IgnoredVariable,
                key_span,
                format!("`{key}` is one host's address, but it is in [{group}:vars]: ignored"),
            )
            .hint(format!("write `{key}=` on each host's line")),
        );
        return;
    }
    if !all && settings::setting_for_ini(key).is_some() {
        diagnostics.push(
            Diagnostic::error(
                Kind::UnknownKey,
                key_span,
                format!("`{key}` is a cluster setting, but it is in [{group}:vars]"),
            )
            .expected("cluster settings in [all:vars]")
            .hint("move this line under [all:vars]"),
        );
        return;
    }
    diagnostics.push(unknown_var(key, key_span, false));
}

/// A variable kubeforge does not read: an error if it looks like one of ours, else a warning
/// (Ansible inventories carry variables for other playbooks). Values are never echoed: they may
/// be secrets such as `ansible_become_password`.
fn unknown_var(key: &str, span: Span, host: bool) -> Diagnostic {
    let mut known: Vec<&str> = INI_HOST_VARS.iter().map(|(v, _)| *v).collect();
    if !host {
        known.extend(
            settings::SETTINGS
                .iter()
                .flat_map(|s| s.ini.iter().copied()),
        );
    }
    if key.starts_with("kubeforge_") {
        let mut d = Diagnostic::error(Kind::UnknownKey, span, format!("unknown variable `{key}`"))
            .found(format!("`{key}`"))
            .expected(format!("one of {}", known.join(", ")));
        if let Some(near) = did_you_mean(key, known.iter().copied()) {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        return d;
    }
    let mut d = Diagnostic::warning(
        Kind::IgnoredVariable,
        span,
        format!("variable `{key}` is not used by kubeforge and is ignored"),
    );
    if BECOME_PASSWORDS.contains(&key) {
        d = d.hint(
            "kubeforge never sends a sudo password: it logs in as root, or as a user with passwordless sudo (a line `USER ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/USER on each host); remove the password from the inventory",
        );
    } else if key == "etcd_member_name" {
        d = d.hint("kubeforge names each etcd member after its node, as kubeadm does");
    } else if let Some(near) = did_you_mean(key, known.iter().copied()) {
        d = d.hint(format!("did you mean `{near}`?"));
    }
    d
}

/// Ansible's variables for a sudo password, which kubeforge never uses.
const BECOME_PASSWORDS: &[&str] = &[
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_sudo_password",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_zero_padding() {
        assert_eq!(
            expand_range("k8scp[01:03]").unwrap().unwrap(),
            ["k8scp01", "k8scp02", "k8scp03"]
        );
        assert_eq!(
            expand_range("k8s[8:10].lan").unwrap().unwrap(),
            ["k8s8.lan", "k8s9.lan", "k8s10.lan"]
        );
        assert!(expand_range("k8scp01").is_none());
        assert!(expand_range("k8s[3:1]").unwrap().is_err());
    }

    #[test]
    fn tokens_keep_quoted_values_and_stop_at_comments() {
        let words = tokens("k8s01 ansible_user='a b' # comment").unwrap();
        let texts: Vec<_> = words.iter().map(|w| (w.text, w.column)).collect();
        assert_eq!(texts, [("k8s01", 1), ("ansible_user='a b'", 7)]);
        assert!(tokens("k8s01 ansible_user='a").is_err());
    }

    #[test]
    fn groups_name_roles() {
        assert_eq!(group_role("k8sControlPlane"), Some("control-plane"));
        assert_eq!(group_role("kube_control_plane"), Some("control-plane"));
        assert_eq!(group_role("k8sNode"), Some("worker"));
        assert_eq!(group_role("monitoring"), None);
    }
}
