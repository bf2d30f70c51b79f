//! The structure every crate of the workspace keeps: no cycle between its modules. A module may
//! use its parent and its siblings' parents (what it is part of), and its siblings, but two
//! modules never use each other, directly or around a loop: what both need lives below both.
//! Test code (`tests.rs`, `#[cfg(test)]` modules) and comments are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path inside its crate: `[]` for the crate root, `["steps", "init"]`.
type ModPath = Vec<String>;

/// Every module file of the crate whose `src` directory is `src`, with its code (tests cut).
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "tests") {
                continue;
            }
            if parts
                .last()
                .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
            {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            // Comments name modules without using them (doc links).
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.insert(parts, code);
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path the code names that starts at `crate`, `super` or `self`, as written.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` trees, braces and all.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let tree: String = after[..end].split_whitespace().collect();
        if tree.starts_with("crate::") || tree.starts_with("super::") || tree.starts_with("self::")
        {
            out.extend(expand(&tree));
        }
        rest = &after[end.min(after.len())..];
    }
    // Paths written in the code.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].to_string());
        }
    }
    out
}

/// The module a path written in `from` leads to: the longest known module it names.
fn target(from: &ModPath, path: &str, known: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut at: ModPath = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    for segment in segments {
        if segment == "super" {
            at.pop();
            continue;
        }
        let mut next = at.clone();
        next.push(segment.to_string());
        if known.contains(&next) {
            at = next;
        } else {
            break;
        }
    }
    Some(at)
}

/// The crate's module graph: `a -> b` when `a` uses something of `b`, leaving out a module's
/// uses of its own descendants (declaring and re-exporting them is what a parent does).
fn graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules = modules(src);
    let known: BTreeSet<ModPath> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (from, code) in &modules {
        let out = edges.entry(from.clone()).or_default();
        for path in paths(code) {
            if let Some(to) = target(from, &path, &known)
                && !to.starts_with(from)
            {
                out.insert(to);
            }
        }
    }
    edges
}

/// A cycle through the graph, as module names, if there is one.
fn cycle(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<String>> {
    fn visit(
        node: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        done: &mut BTreeSet<ModPath>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut names: Vec<String> = stack[at..].iter().map(name).collect();
            names.push(name(node));
            return Some(names);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(found) = visit(node, edges, &mut done, &mut Vec::new()) {
            return Some(found);
        }
    }
    None
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for krate in [
        "crates/kubeforge-core",
        "crates/kubeforge-engine",
        "crates/kubeforge-lab",
        "crates/kubeforge",
    ] {
        let src = workspace().join(krate).join("src");
        if let Some(cycle) = cycle(&graph(&src)) {
            found.push(format!("{krate}: {}", cycle.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

/// The check itself finds a cycle, through `use` trees and written paths alike, and leaves a
/// parent's uses of its children alone.
#[test]
fn the_check_finds_a_cycle_and_only_a_cycle() {
    let dir = std::env::temp_dir().join(format!("kubeforge-arch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("steps")).unwrap();
    let write = |p: &str, t: &str| std::fs::write(dir.join(p), t).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod steps;\n");
    write("a.rs", "use crate::{steps::{Ctx, init::X}, b};\n");
    write("b.rs", "pub fn f() {}\n");
    write(
        "steps/mod.rs",
        "pub mod init;\npub struct Ctx;\nuse self::init::X;\n",
    );
    write("steps/init.rs", "use super::Ctx;\npub struct X;\n");
    assert_eq!(cycle(&graph(&dir)), None);
    write(
        "b.rs",
        "pub fn f() { crate::a::g(); }\n#[cfg(test)]\nmod t { use crate::steps::Ctx; }\n",
    );
    assert_eq!(
        cycle(&graph(&dir)),
        Some(vec!["a".to_string(), "b".to_string(), "a".to_string()])
    );
    write("b.rs", "pub fn f() {}\n");
    write("steps/init.rs", "use super::{Ctx, super::a::Y};\n");
    assert_eq!(
        cycle(&graph(&dir)),
        Some(vec![
            "a".to_string(),
            "steps::init".to_string(),
            "a".to_string()
        ])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
