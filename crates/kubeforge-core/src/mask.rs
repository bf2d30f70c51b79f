//! Keeping secrets out of everything kubeforge shows or writes: output, diffs, errors, logs.
//!
//! Two layers. The secrets kubeforge knows (the VRRP password, bootstrap tokens, certificate
//! keys) are replaced wherever they appear, also base64-encoded at any alignment. Patterns then
//! catch secrets kubeforge did not make itself: the value after `auth_pass`, `token:`,
//! `certificateKey:`, `client-key-data:` and the like at the start of a line, `--token` and
//! `--certificate-key` flags, anything shaped like a bootstrap token, the line after kubeadm's
//! `Using certificate key:`, and the body of PEM private keys.
//!
//! [`mask_line_values`] is also what a host runs (as `sed`, see [`SED_MASK`]) before a sealed
//! file's content leaves it, so both sides mask a file the same way.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

/// What replaces a secret.
pub const MASK: &str = "********";

/// Keys whose value is a secret when a line starts with them (after a diff's `+`/`-`,
/// indentation and an optional YAML list dash), followed by `:`, `=` or just a space.
pub const SECRET_KEYS: &[&str] = &[
    "auth_pass",
    "password",
    "secret",
    "token",
    "tlsBootstrapToken",
    "certificateKey",
    "certificate-key",
    "client-key-data",
];

static LINE_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^([+-]?[[:space:]]*(?:-[[:space:]]+)?(?:{})(?:[[:space:]]*[:=])?[[:space:]]+)[^[:space:]].*$",
        SECRET_KEYS.join("|")
    ))
    .expect("valid regex")
});

static FLAG_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(--(?:token|certificate-key|tls-bootstrap-token|discovery-token)[ =])[^[:space:]]+",
    )
    .expect("valid regex")
});

static BOOTSTRAP_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b").expect("valid regex"));

/// The same masking of line values as [`mask_line_values`], as a `sed -E` program a host runs
/// on a sealed file.
pub static SED_MASK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "s/^([+-]?[[:space:]]*(-[[:space:]]+)?({})([[:space:]]*[:=])?[[:space:]]+)[^[:space:]].*$/\\1{MASK}/",
        SECRET_KEYS.join("|")
    )
});

/// Masks the value of every line that starts with a secret key.
pub fn mask_line_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(&LINE_VALUE.replace(body, format!("${{1}}{MASK}")));
        out.push_str(end);
    }
    out
}

/// Masks everything that looks like a secret (see the module comment).
pub fn mask_patterns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_private_key = false;
    let mut key_follows = false;
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let trimmed = body.trim();
        if in_private_key {
            if trimmed.starts_with("-----END") {
                in_private_key = false;
                out.push_str(body);
            } else if !trimmed.is_empty() {
                out.push_str(MASK);
            }
            out.push_str(end);
            continue;
        }
        if trimmed.starts_with("-----BEGIN") && trimmed.contains("PRIVATE KEY") {
            in_private_key = true;
            out.push_str(body);
            out.push_str(end);
            continue;
        }
        if key_follows && !trimmed.is_empty() {
            key_follows = false;
            out.push_str(MASK);
            out.push_str(end);
            continue;
        }
        key_follows = trimmed.to_ascii_lowercase().ends_with("certificate key:");
        let masked = LINE_VALUE.replace(body, format!("${{1}}{MASK}"));
        let masked = FLAG_VALUE.replace_all(&masked, format!("${{1}}{MASK}"));
        let masked = BOOTSTRAP_TOKEN.replace_all(&masked, MASK);
        out.push_str(&masked);
        out.push_str(end);
    }
    out
}

/// The secrets of a run, and the patterns: applied to everything shown or written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask {
    /// Each secret and its base64 forms, longest first.
    needles: Vec<String>,
}

impl Mask {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut mask = Mask::default();
        for s in secrets {
            mask.add(s.as_ref());
        }
        mask
    }

    /// Adds a secret (empty strings and very short ones are ignored: they would mask
    /// ordinary text and no secret kubeforge makes is that short).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < 6 || self.needles.iter().any(|n| n == secret) {
            return;
        }
        self.needles.push(secret.to_string());
        for encoded in base64_forms(secret.as_bytes()) {
            if !self.needles.contains(&encoded) {
                self.needles.push(encoded);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn merge(&mut self, other: &Mask) {
        for n in &other.needles {
            if !self.needles.contains(n) {
                self.needles.push(n.clone());
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// The text with every known secret and every secret-looking value masked.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        mask_patterns(&out)
    }
}

/// The stretches of base64 text that `bytes` always produces when encoded inside a longer
/// buffer, at each of the three byte alignments and in both alphabets (at least 8 characters,
/// so that they only ever match the secret).
pub fn base64_forms(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3usize {
            let mut buffer = vec![0u8; offset];
            buffer.extend_from_slice(bytes);
            let encoded = engine.encode(&buffer);
            // Characters mixing the filler bytes with the secret's first byte, and the last
            // one when it mixes the secret with whatever follows, depend on the neighbours.
            let skip = match offset {
                0 => 0,
                1 => 2,
                _ => 3,
            };
            let total_bits = 8 * buffer.len();
            let whole = total_bits / 6;
            let end = whole.min(encoded.len());
            if end > skip && end - skip >= 8 {
                out.push(encoded[skip..end].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where `secret` shows in `haystack`: as it is, hex-encoded, or base64-encoded at any
/// alignment (also by decoding every base64-looking run). For tests that look for leaks.
pub fn find_leak(haystack: &str, secret: &str) -> Option<String> {
    if secret.is_empty() {
        return None;
    }
    if haystack.contains(secret) {
        return Some("as it is".into());
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    if haystack.to_ascii_lowercase().contains(&hex) {
        return Some("hex-encoded".into());
    }
    if let Some(form) = base64_forms(secret.as_bytes())
        .into_iter()
        .find(|f| haystack.contains(f.as_str()))
    {
        return Some(format!("base64-encoded (as {form})"));
    }
    // Decode every run of base64 characters, at each starting alignment.
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || "+/-_=".contains(c);
    for run in haystack
        .split(|c: char| !is_b64(c))
        .filter(|r| r.len() >= 8)
    {
        let run = run.trim_end_matches('=');
        for start in 0..4.min(run.len()) {
            let piece = &run[start..];
            let piece = &piece[..piece.len() - piece.len() % 4];
            for engine in [
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                if let Ok(decoded) = engine.decode(piece)
                    && decoded
                        .windows(secret.len())
                        .any(|w| w == secret.as_bytes())
                {
                    return Some("in decoded base64".into());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_are_masked_also_when_base64_encoded() {
        let mask = Mask::new(["Zq7Pw2Lm"]);
        assert_eq!(mask.apply("pass Zq7Pw2Lm here"), "pass ******** here");
        for prefix in ["", "a", "ab", "abc"] {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{prefix}Zq7Pw2Lm and more").as_bytes());
            let shown = mask.apply(&format!("data: {encoded}"));
            assert!(
                find_leak(&shown, "Zq7Pw2Lm").is_none(),
                "{prefix:?}: {shown}"
            );
        }
    }

    #[test]
    fn patterns_catch_secrets_kubeforge_did_not_make() {
        let text = "\
-        auth_pass OldPass1
+        auth_pass NewPass2
  token: abcdef.0123456789abcdef
    certificateKey: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t
kubeadm join k8scp:8443 --token abcdef.0123456789abcdef --certificate-key 00ff
[upload-certs] Using certificate key:
9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBhc
-----END EC PRIVATE KEY-----
kubeadm token create prints a token
";
        let masked = mask_patterns(text);
        for secret in [
            "OldPass1",
            "NewPass2",
            "abcdef.0123456789abcdef",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t",
            "00ff",
            "MHcCAQEEIBhc",
        ] {
            assert!(!masked.contains(secret), "{secret} in\n{masked}");
        }
        assert!(masked.contains("-        auth_pass ********\n+        auth_pass ********\n"));
        assert!(masked.contains("--token ******** --certificate-key ********"));
        assert!(masked.contains("kubeadm token create prints a token\n"));
        assert!(masked.contains("-----END EC PRIVATE KEY-----\n"));
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "kubeadm token create --print-join-command",
            "create a fresh bootstrap token (24 h)",
            "discovery-token-ca-cert-hash sha256:0123",
            "    bootstrapToken:",
        ] {
            assert_eq!(mask_patterns(text), text);
        }
        assert_eq!(
            Mask::new(["ab"]).apply("ab cd"),
            "ab cd",
            "too short to mask"
        );
    }

    #[test]
    fn the_sed_program_masks_as_the_rust_code_does() {
        let text = "global_defs {\n    auth_pass Zq7Pw2Lm\n  - token: abc\ntokenTTL: 1\n";
        let expected = mask_line_values(text);
        assert_eq!(
            expected,
            "global_defs {\n    auth_pass ********\n  - token: ********\ntokenTTL: 1\n"
        );
        let out = std::process::Command::new("sed")
            .arg("-E")
            .arg(SED_MASK.as_str())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(text.as_bytes())?;
                child.wait_with_output()
            })
            .expect("sed runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    #[test]
    fn the_leak_finder_finds_every_encoding() {
        let secret = "Zq7Pw2Lm";
        assert!(find_leak("nothing here", secret).is_none());
        assert!(find_leak("x Zq7Pw2Lm y", secret).is_some());
        assert!(find_leak("5a7137507732", "Zq7Pw2").is_some());
        for prefix in ["", "a", "ab"] {
            let e = base64::engine::general_purpose::STANDARD
                .encode(format!("{prefix}{secret}!").as_bytes());
            assert!(find_leak(&format!("blob {e} end"), secret).is_some(), "{e}");
            let u = base64::engine::general_purpose::URL_SAFE
                .encode(format!("{prefix}{secret}?").as_bytes());
            assert!(find_leak(&u, secret).is_some(), "{u}");
        }
    }
}
