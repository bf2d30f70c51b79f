//! The structure every crate of the workspace keeps: no cycle between its modules, and no
//! function longer than a screenful or three. A module may use its parent and its siblings'
//! parents (what it is part of), and its siblings, but two modules never use each other,
//! directly or around a loop: what both need lives below both. Test code (`tests.rs`,
//! `#[cfg(test)]` modules) and comments are left out.

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
                .map(|l| {
                    if l.trim_start().starts_with("//") {
                        "\n".to_string()
                    } else {
                        format!("{l}\n")
                    }
                })
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

/// Each crate's `src` directory, with the crate's path for messages.
fn crates() -> Vec<(&'static str, PathBuf)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        "crates/kubeforge-core",
        "crates/kubeforge-engine",
        "crates/kubeforge-lab",
        "crates/kubeforge",
    ]
    .into_iter()
    .map(|krate| (krate, workspace.join(krate).join("src")))
    .collect()
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for (krate, src) in crates() {
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

/// The longest a function outside tests may be, in lines.
const MAX_FUNCTION_LINES: usize = 150;

/// `code` with comments, string and character literals blanked (newlines kept), so that the
/// braces left are the code's own.
fn code_only(code: &str) -> String {
    let b: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                out.push(blank(b[i]));
                i += 1;
            }
            out.push_str("  ");
            i += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(b[i..j.min(b.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('{', '\'', '\u{7f}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len()).find(|&k| b[k] == '\'').map(|k| k + 1)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..end {
                        out.push(' ');
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Each function with a body in `code`: its name, first line and number of lines.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let clean = code_only(code);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(clean.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |at: usize| starts.partition_point(|&s| s <= at);
    let bytes = clean.as_bytes();
    let mut out = Vec::new();
    for (at, _) in clean.match_indices("fn ") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let name: String = clean[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body: the first `{` before any `;` (a declaration has none).
        let rest = &clean[at..];
        let Some(open) = rest.find(['{', ';']) else {
            continue;
        };
        if rest.as_bytes()[open] == b';' {
            continue;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (k, ch) in rest[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(at + open + k);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        let (first, last) = (line_of(at), line_of(close));
        out.push((name, first, last - first + 1));
    }
    out
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let mut long = Vec::new();
    for (krate, src) in crates() {
        for (module, code) in modules(&src) {
            for (name, line, length) in functions(&code) {
                if length > MAX_FUNCTION_LINES {
                    long.push(format!(
                        "{krate}: {}::{name} (line {line}): {length} lines",
                        name_of(&module)
                    ));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them at their seams):\n{}",
        long.join("\n")
    );
}

fn name_of(m: &ModPath) -> String {
    name(m)
}

/// The measure itself: braces in strings, characters and comments do not count, lifetimes
/// are not characters, a declaration without a body is no function.
#[test]
fn functions_are_measured_by_their_own_braces() {
    let code = "fn a<'x>(s: &'x str) -> char {\n    let _ = \"}}\";\n    // }\n    let _ = r#\"}\"#;\n    '}'\n}\ntrait T { fn d(&self); fn e(&self) {} }\n";
    let found = functions(code);
    assert_eq!(
        found,
        [
            ("a".to_string(), 1, 6),
            ("d".to_string(), 7, 1),
            ("e".to_string(), 7, 1)
        ]
        .into_iter()
        .filter(|f| f.0 != "d")
        .collect::<Vec<_>>()
    );
}

/// The third-party crates the binary is built from, as `cargo tree -e normal -p kubeforge`
/// lists them (each name and version once; the workspace's own crates left out).
fn binary_dependencies() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-e",
            "normal",
            "-p",
            "kubeforge",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{out:?}");
    let mut crates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("kubeforge"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

/// Few dependencies, each in one version: under 100 third-party crates in the binary, and no
/// crate twice.
#[test]
fn the_binary_has_under_100_third_party_crates_each_once() {
    let crates = binary_dependencies();
    assert!(
        crates.len() < 100,
        "{} crates:\n{}",
        crates.len(),
        crates.join("\n")
    );
    let mut names: Vec<&str> = crates.iter().filter_map(|c| c.split(' ').next()).collect();
    let all = names.len();
    names.dedup();
    assert_eq!(
        names.len(),
        all,
        "a crate in two versions:\n{}",
        crates.join("\n")
    );
}
