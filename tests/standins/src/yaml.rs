//! Multi-document YAML and strict decoding against a schema, with the errors of Kubernetes'
//! strict serializer (`strict decoding error: unknown field "..."`,
//! `json: cannot unmarshal object into Go struct field ... of type ...`).

use serde_json::Value;

/// Splits a multi-document YAML text on `---` lines and parses each non-empty document.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut push = |cur: &mut String| -> Result<(), String> {
        let meaningful = cur
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if meaningful {
            let v: Value = serde_saphyr::from_str(cur)
                .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        cur.clear();
        Ok(())
    };
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            push(&mut cur)?;
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    push(&mut cur)?;
    Ok(docs)
}

/// The Go type of a field, as far as decoding cares.
#[derive(Clone, Debug)]
pub enum Ty {
    Str,
    Bool,
    Int,
    /// `metav1.Duration`: a string Go's `time.ParseDuration` accepts.
    Duration,
    /// A list of something (`go` names the Go element type for messages, e.g. `v1beta4.Arg`).
    List(&'static str, Box<Ty>),
    /// `map[string]string`.
    MapStr,
    /// `map[string]bool`.
    MapBool,
    /// A struct: its Go name and fields.
    Obj(&'static str, Vec<(&'static str, Ty)>),
    /// A struct whose fields are listed but whose values are not checked.
    Keys(&'static str, Vec<&'static str>),
    /// Anything.
    Any,
}

impl Ty {
    fn go_name(&self) -> String {
        match self {
            Ty::Str => "string".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int32".into(),
            Ty::Duration => "string".into(),
            Ty::List(g, _) => format!("[]{g}"),
            Ty::MapStr => "map[string]string".into(),
            Ty::MapBool => "map[string]bool".into(),
            Ty::Obj(g, _) | Ty::Keys(g, _) => g.to_string(),
            Ty::Any => "interface {}".into(),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What strict decoding found wrong.
#[derive(Debug, Default)]
pub struct Problems {
    /// The first type error (decoding stops there, as Go's does).
    pub type_error: Option<String>,
    pub unknown: Vec<String>,
    pub duplicate: Vec<String>,
}

/// Checks `v` against `ty`. `owner` is the Go struct name the value sits in (for messages).
pub fn check(v: &Value, ty: &Ty, path: &str, owner: &str, out: &mut Problems) {
    if v.is_null() {
        return; // null leaves the Go zero value
    }
    let mismatch = |out: &mut Problems| {
        if out.type_error.is_none() {
            out.type_error = Some(format!(
                "json: cannot unmarshal {} into Go struct field {owner}.{path} of type {}",
                json_kind(v),
                ty.go_name()
            ));
        }
    };
    match ty {
        Ty::Any => {}
        Ty::Str => {
            if !v.is_string() {
                mismatch(out)
            }
        }
        Ty::Bool => {
            if !v.is_boolean() {
                mismatch(out)
            }
        }
        Ty::Int => {
            if !v.is_i64() && !v.is_u64() {
                mismatch(out)
            }
        }
        Ty::Duration => match v.as_str() {
            None => mismatch(out),
            Some(s) => {
                if crate::util::parse_duration(s).is_none() && out.type_error.is_none() {
                    out.type_error = Some(format!("time: invalid duration \"{s}\""));
                }
            }
        },
        Ty::MapStr | Ty::MapBool => match v.as_object() {
            None => mismatch(out),
            Some(m) => {
                for (k, x) in m {
                    let ok = if matches!(ty, Ty::MapStr) {
                        x.is_string()
                    } else {
                        x.is_boolean()
                    };
                    if !ok && !x.is_null() && out.type_error.is_none() {
                        let want = if matches!(ty, Ty::MapStr) {
                            "string"
                        } else {
                            "bool"
                        };
                        out.type_error = Some(format!(
                            "json: cannot unmarshal {} into Go struct field {owner}.{path}.{k} of type {want}",
                            json_kind(x)
                        ));
                    }
                }
            }
        },
        Ty::List(_, inner) => match v.as_array() {
            None => mismatch(out),
            Some(items) => {
                for (i, x) in items.iter().enumerate() {
                    check(x, inner, &format!("{path}[{i}]"), owner, out);
                }
            }
        },
        Ty::Obj(go, fields) => match v.as_object() {
            None => mismatch(out),
            Some(m) => {
                for (k, x) in m {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match fields.iter().find(|(n, _)| n == k) {
                        Some((_, t)) => {
                            check(x, t, &child, go.rsplit('.').next().unwrap_or(go), out)
                        }
                        None => out.unknown.push(child),
                    }
                }
            }
        },
        Ty::Keys(_, names) => match v.as_object() {
            None => mismatch(out),
            Some(m) => {
                for k in m.keys() {
                    if !names.contains(&k.as_str()) {
                        out.unknown.push(if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        });
                    }
                }
            }
        },
    }
}

/// Strictly decodes one document: `Err` carries the serializer's message (without the
/// caller's `error unmarshaling configuration ...` wrapper).
pub fn strict(v: &Value, ty: &Ty) -> Result<(), String> {
    let mut p = Problems::default();
    let owner = match ty {
        Ty::Obj(g, _) | Ty::Keys(g, _) => g.rsplit('.').next().unwrap_or(g),
        _ => "",
    };
    check(v, ty, "", owner, &mut p);
    if let Some(e) = p.type_error {
        return Err(e);
    }
    if !p.unknown.is_empty() {
        let list: Vec<String> = p
            .unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect();
        return Err(format!("strict decoding error: {}", list.join(", ")));
    }
    Ok(())
}

/// A string at a JSON pointer, if it is one.
pub fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(|x| x.as_str())
        .filter(|x| !x.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents() {
        let d = documents("# c\n---\na: 1\n---\n\n---\nb: x\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1]["b"], "x");
    }

    #[test]
    fn unknown_and_types() {
        let ty = Ty::Obj(
            "v1beta4.X",
            vec![
                ("a", Ty::Str),
                (
                    "l",
                    Ty::List(
                        "v1beta4.Arg",
                        Box::new(Ty::Obj("v1beta4.Arg", vec![("name", Ty::Str)])),
                    ),
                ),
            ],
        );
        let v: Value = serde_json::json!({"a": "x", "zz": 1});
        assert_eq!(
            strict(&v, &ty).unwrap_err(),
            "strict decoding error: unknown field \"zz\""
        );
        let v: Value = serde_json::json!({"l": {"k": "v"}});
        assert_eq!(
            strict(&v, &ty).unwrap_err(),
            "json: cannot unmarshal object into Go struct field X.l of type []v1beta4.Arg"
        );
        let v: Value = serde_json::json!({"l": [{"name": "a", "val": "b"}]});
        assert_eq!(
            strict(&v, &ty).unwrap_err(),
            "strict decoding error: unknown field \"l[0].val\""
        );
    }
}
