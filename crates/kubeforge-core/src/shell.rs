//! Quoting for POSIX sh. Every word kubeforge puts into a remote command goes through here.

/// Quotes a word for sh (words without special characters stay as they are).
pub fn quote(word: &str) -> String {
    // try_quote refuses only NUL bytes, which no path, unit or package name contains.
    shlex::try_quote(word).map_or_else(|_| "''".to_string(), |q| q.into_owned())
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_what_the_shell_would_interpret() {
        assert_eq!(
            quote("/etc/haproxy/haproxy.cfg"),
            "/etc/haproxy/haproxy.cfg"
        );
        assert_eq!(quote(""), "''");
        for nasty in ["a b", "x; rm -rf /", "it's", "$(id)", "`id`", "a\nb"] {
            let q = quote(nasty);
            assert_ne!(q, nasty, "{nasty}");
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {q}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), nasty);
        }
    }
}
