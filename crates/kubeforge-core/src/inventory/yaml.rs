//! `cluster.yaml`: read into a tree that keeps every node's position, then walked against the
//! settings table so that every unknown key and wrong type is reported, not just the first.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned as YSpanned};

use super::settings::{self, HOST_KEYS};

/// The `cluster.yaml` format this kubeforge reads (`apiVersion:`, optional).
pub const API_VERSION: &str = "kubeforge/v1";
use super::{Format, RawHost, RawInventory, span_at};
use crate::diag::{Diagnostic, Kind, Span, Spanned, did_you_mean};

/// A YAML node with its children's positions. Scalars other than strings keep no value: their
/// text is taken from the source, so that `1.30` stays `1.30` and does not become `1.3`.
#[derive(Debug)]
enum Node {
    Map(Vec<(YSpanned<String>, YSpanned<Node>)>),
    Seq(Vec<YSpanned<Node>>),
    Str(String),
    /// A number or boolean: its text is read from the source.
    Plain,
    Null,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Plain)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<YSpanned<String>>()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

impl Node {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Map(_) => "a mapping",
            Node::Seq(_) => "a list",
            Node::Str(_) | Node::Plain => "a single value",
            Node::Null => "nothing",
        }
    }
}

struct Walker<'s> {
    source: &'s str,
    out: RawInventory,
    diagnostics: Vec<Diagnostic>,
}

fn span_of(location: &Location) -> Span {
    span_at(
        location.line() as usize,
        location.column() as usize,
        location.span().len() as usize,
    )
}

pub(super) fn parse(source: &str) -> (RawInventory, Vec<Diagnostic>) {
    let mut walker = Walker {
        source,
        out: RawInventory::empty(Format::Yaml),
        diagnostics: Vec::new(),
    };
    match serde_saphyr::from_str::<YSpanned<Node>>(source) {
        Ok(root) => walker.root(&root),
        Err(error) => walker.diagnostics.push(syntax_error(&error)),
    }
    (walker.out, walker.diagnostics)
}

fn syntax_error(error: &serde_saphyr::Error) -> Diagnostic {
    let span = error
        .location()
        .map(|l| span_at(l.line() as usize, l.column() as usize, 1))
        .unwrap_or(Span::START);
    let text = error.without_snippet().to_string();
    // The position is printed by our own report; drop the parser's copy of it.
    let message = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let message = message
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(&message)
        .to_string();
    if message.starts_with("duplicate mapping key") {
        Diagnostic::error(Kind::DuplicateKey, span, message)
            .hint("each key may appear once in a mapping; remove or merge the repeated one")
    } else {
        Diagnostic::error(Kind::Syntax, span, format!("YAML syntax: {message}"))
            .hint("check indentation and brackets around this place")
    }
}

impl Walker<'_> {
    fn root(&mut self, root: &YSpanned<Node>) {
        match &root.value {
            Node::Map(entries) => {
                let mut saw_hosts = false;
                for (key, value) in entries {
                    if key.value == "hosts" {
                        saw_hosts = true;
                        self.out.hosts_span = span_of(&key.referenced);
                        self.hosts(value);
                    } else if key.value == "apiVersion" {
                        self.api_version(value);
                    } else {
                        self.setting("", key, value);
                    }
                }
                if !saw_hosts {
                    self.missing_hosts();
                }
            }
            Node::Null => self.missing_hosts(),
            other => self.diagnostics.push(
                Diagnostic::error(
                    Kind::WrongType,
                    span_of(&root.referenced),
                    "the inventory must be a mapping of settings",
                )
                .found(other.type_name())
                .expected("a mapping with at least `hosts:`")
                .hint("start with `hosts:` followed by a list of host names"),
            ),
        }
    }

    fn missing_hosts(&mut self) {
        self.diagnostics.push(
            Diagnostic::error(
                Kind::MissingKey,
                Span::START,
                "the inventory has no `hosts` key",
            )
            .expected("`hosts:` with a list of host names")
            .hint("add `hosts:` followed by lines such as `  - k8scp01`"),
        );
    }

    fn hosts(&mut self, value: &YSpanned<Node>) {
        let Node::Seq(items) = &value.value else {
            self.wrong_type(
                value,
                "a list of hosts",
                "write each host on its own line as `  - k8scp01`",
            );
            return;
        };
        for item in items {
            match &item.value {
                Node::Str(_) | Node::Plain => {
                    let name = self.scalar_text(item);
                    self.out.hosts.push(RawHost::named(name));
                }
                Node::Map(entries) => self.host_map(item, entries),
                _ => self.wrong_type(
                    item,
                    "a host name or a mapping with `name:`",
                    "write `- k8scp01` or `- name: k8scp01`",
                ),
            }
        }
    }

    fn host_map(&mut self, item: &YSpanned<Node>, entries: &[(YSpanned<String>, YSpanned<Node>)]) {
        let mut name = None;
        let mut host_fields = Vec::new();
        for (key, value) in entries {
            if !HOST_KEYS.contains(&key.value.as_str()) {
                self.unknown_key(key, "a host", HOST_KEYS);
                continue;
            }
            let Some(text) = self.leaf(value) else {
                continue;
            };
            if key.value == "name" {
                name = Some(text);
            } else {
                host_fields.push((key.value.as_str(), text));
            }
        }
        match name {
            Some(name) => {
                let mut host = RawHost::named(name);
                for (key, text) in host_fields {
                    host.set(key, text);
                }
                self.out.hosts.push(host);
            }
            None => self.diagnostics.push(
                Diagnostic::error(
                    Kind::MissingKey,
                    span_of(&item.referenced),
                    "this host has no `name`",
                )
                .expected("`name:` with the host's name")
                .hint("add `name: k8scpNN` (control plane) or `name: k8sNN` (worker)"),
            ),
        }
    }

    /// `apiVersion:`, optional: the format's version, so that it can evolve. One is known.
    fn api_version(&mut self, value: &YSpanned<Node>) {
        let Some(text) = self.leaf(value) else { return };
        if text.value.trim() != API_VERSION {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::InvalidValue,
                    text.span,
                    format!("`{}` is not an apiVersion this kubeforge reads", text.value),
                )
                .found(format!("`{}`", text.value))
                .expected(format!("`{API_VERSION}`"))
                .hint(format!(
                    "write `apiVersion: {API_VERSION}`, or leave it out; a newer format needs a newer kubeforge"
                )),
            );
        }
    }

    /// A key under `prefix` (empty at the top level): a section or a setting.
    fn setting(&mut self, prefix: &str, key: &YSpanned<String>, value: &YSpanned<Node>) {
        let path = if prefix.is_empty() {
            key.value.clone()
        } else {
            format!("{prefix}.{}", key.value)
        };
        if let Some(def) = settings::setting(&path) {
            if let Some(text) = self.leaf(value) {
                self.out.settings.insert(def.key, text);
            }
            return;
        }
        let children = settings::children_of(&path);
        if !children.is_empty() {
            match &value.value {
                Node::Map(entries) => {
                    for (k, v) in entries {
                        self.setting(&path, k, v);
                    }
                }
                Node::Null => {}
                _ => self.wrong_type(
                    value,
                    &format!("a mapping of `{path}` settings"),
                    &format!(
                        "put the settings indented under `{}:`, such as `  {}: ...`",
                        key.value, children[0]
                    ),
                ),
            }
            return;
        }
        let place = if prefix.is_empty() {
            "the inventory".to_string()
        } else {
            format!("`{prefix}`")
        };
        self.unknown_key(key, &place, &settings::children_of(prefix));
    }

    /// A scalar value; `None` (with a diagnostic for non-scalars) otherwise.
    fn leaf(&mut self, value: &YSpanned<Node>) -> Option<Spanned<String>> {
        match &value.value {
            Node::Str(_) | Node::Plain => Some(self.scalar_text(value)),
            Node::Null => None,
            _ => {
                self.wrong_type(
                    value,
                    "a single value",
                    "write the value on the same line as its key",
                );
                None
            }
        }
    }

    fn scalar_text(&self, node: &YSpanned<Node>) -> Spanned<String> {
        let span = span_of(&node.referenced);
        let text = match &node.value {
            Node::Str(s) => s.clone(),
            _ => {
                let location = node.referenced.span();
                self.source
                    .chars()
                    .skip(location.offset() as usize)
                    .take(location.len() as usize)
                    .collect()
            }
        };
        Spanned::new(text, span)
    }

    fn unknown_key(&mut self, key: &YSpanned<String>, place: &str, known: &[&str]) {
        let mut d = Diagnostic::error(
            Kind::UnknownKey,
            span_of(&key.referenced),
            format!("unknown key `{}` in {place}", key.value),
        )
        .found(format!("`{}`", key.value))
        .expected(format!("one of {}", known.join(", ")));
        if let Some(near) = did_you_mean(&key.value, known.iter().copied()) {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        self.diagnostics.push(d);
    }

    fn wrong_type(&mut self, value: &YSpanned<Node>, expected: &str, hint: &str) {
        self.diagnostics.push(
            Diagnostic::error(
                Kind::WrongType,
                span_of(&value.referenced),
                format!("expected {expected}"),
            )
            .found(value.value.type_name())
            .expected(expected)
            .hint(hint),
        );
    }
}
