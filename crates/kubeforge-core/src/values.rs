//! Values that a run settles or produces on one host and uses on others: the VRRP password
//! read back from the control-plane nodes, a bootstrap token minted on the first one. Values
//! marked secret join the run's [`Mask`] as soon as they are known.

use std::collections::BTreeMap;

use crate::mask::Mask;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub secret: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    values: BTreeMap<&'static str, Value>,
    mask: Mask,
}

impl Values {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.text.as_str())
    }

    pub fn set(&mut self, name: &'static str, text: impl Into<String>, secret: bool) {
        let text = text.into();
        if secret {
            self.mask.add(&text);
        }
        self.values.insert(name, Value { text, secret });
    }

    /// Takes every value of `other` (values produced on one host, for the hosts after).
    pub fn absorb(&mut self, other: Values) {
        for (name, value) in other.values {
            self.set(name, value.text, value.secret);
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Every secret value and the patterns, for whatever is shown or written.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The value or, when it is not known yet (a plan), a placeholder naming it.
    pub fn or_placeholder(&self, name: &str) -> String {
        self.get(name)
            .map(str::to_string)
            .unwrap_or_else(|| format!("<{name}>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_at_once() {
        let mut v = Values::default();
        v.set("join.token", "abcdef.0123456789abcdef", true);
        v.set("join.ca-hash", "sha256:00aa", false);
        assert_eq!(v.get("join.token"), Some("abcdef.0123456789abcdef"));
        assert_eq!(
            v.mask().apply("t=abcdef.0123456789abcdef h=sha256:00aa"),
            "t=******** h=sha256:00aa"
        );
        assert_eq!(
            v.or_placeholder("join.certificate-key"),
            "<join.certificate-key>"
        );
    }
}
