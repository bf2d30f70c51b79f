//! A flag parser that accepts and rejects what cobra/pflag do, with their messages.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--force`, `--force=true`.
    Bool,
    /// `--config F`, `--config=F`.
    Value,
}

#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

pub const fn b(name: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        kind: Kind::Bool,
    }
}

pub const fn v(name: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        kind: Kind::Value,
    }
}

impl Flag {
    pub const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }
}

/// Flags and positional arguments as given.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Flag name → every value given (booleans as "true"/"false"), in order.
    pub values: BTreeMap<String, Vec<String>>,
    pub args: Vec<String>,
    /// Flag names in the order given.
    pub order: Vec<String>,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|s| s.as_str())
    }
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "true")
    }
    /// A string-slice flag: every value, split on commas (pflag's `StringSlice`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| v.split(','))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses `argv` (without the program and sub-command words) against `flags`.
/// Errors carry pflag's text (`unknown flag: --x`).
pub fn parse(argv: &[String], flags: &[Flag]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    let find_long = |n: &str| flags.iter().find(|f| f.name == n);
    let find_short = |c: char| flags.iter().find(|f| f.short == Some(c));
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            out.args.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(f) = find_long(name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            let value = match (f.kind, inline) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.as_str() {
                    "true" | "1" | "t" | "T" | "TRUE" | "True" => "true".into(),
                    "false" | "0" | "f" | "F" | "FALSE" | "False" => "false".into(),
                    _ => {
                        return Err(format!(
                            "invalid argument \"{v}\" for \"--{name}\" flag: strconv.ParseBool: parsing \"{v}\": invalid syntax"
                        ));
                    }
                },
                (Kind::Value, Some(v)) => v,
                (Kind::Value, None) => {
                    if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("flag needs an argument: --{name}"));
                    }
                }
            };
            out.values
                .entry(f.name.to_string())
                .or_default()
                .push(value);
            out.order.push(f.name.to_string());
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let Some(f) = find_short(c) else {
                    return Err(format!("unknown shorthand flag: '{c}' in {a}"));
                };
                j += 1;
                let value = match f.kind {
                    Kind::Bool => {
                        if j < chars.len() && chars[j] == '=' {
                            let v: String = chars[j + 1..].iter().collect();
                            j = chars.len();
                            if v == "false" {
                                "false".into()
                            } else {
                                "true".into()
                            }
                        } else {
                            "true".into()
                        }
                    }
                    Kind::Value => {
                        if j < chars.len() {
                            let mut v: String = chars[j..].iter().collect();
                            if let Some(s) = v.strip_prefix('=') {
                                v = s.to_string();
                            }
                            j = chars.len();
                            v
                        } else if i < argv.len() {
                            i += 1;
                            argv[i - 1].clone()
                        } else {
                            return Err(format!("flag needs an argument: '{c}' in {a}"));
                        }
                    }
                };
                out.values
                    .entry(f.name.to_string())
                    .or_default()
                    .push(value);
                out.order.push(f.name.to_string());
            }
        } else {
            out.args.push(a.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const F: &[Flag] = &[v("config"), b("force").short('f'), v("v").short('v')];

    #[test]
    fn forms() {
        let p = parse(&s(&["--config=a", "-f", "-v5", "x"]), F).unwrap();
        assert_eq!(p.get("config"), Some("a"));
        assert!(p.flag("force"));
        assert_eq!(p.get("v"), Some("5"));
        assert_eq!(p.args, s(&["x"]));
        let p = parse(&s(&["--config", "b", "--v=2"]), F).unwrap();
        assert_eq!(p.get("config"), Some("b"));
        assert_eq!(p.get("v"), Some("2"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(&s(&["--nope"]), F).unwrap_err(),
            "unknown flag: --nope"
        );
        assert_eq!(
            parse(&s(&["-x"]), F).unwrap_err(),
            "unknown shorthand flag: 'x' in -x"
        );
        assert_eq!(
            parse(&s(&["--config"]), F).unwrap_err(),
            "flag needs an argument: --config"
        );
    }
}
