//! Quoting for POSIX sh. Every word kubeforge puts into a remote command goes through here.

/// Quotes a word for sh (words without special characters stay as they are).
pub fn quote(word: &str) -> String {
    // try_quote refuses only NUL bytes, which no path, unit or package name contains.
    shlex::try_quote(word).map_or_else(|_| "''".to_string(), |q| q.into_owned())
}

/// `script` run by its own shell under `timeout` on the host: stopped there, with everything
/// it started, `secs` seconds on (exit 124), killed 5 s later if it ignores that. The script
/// is one single-quoted word (each `'` as `'\''`), its lines as they are, the quotes on lines
/// of their own; stdin and the environment pass through.
pub fn under_timeout(secs: u64, script: &str) -> String {
    format!(
        "timeout -k 5 {secs} sh -c '\n{}\n'",
        script.replace('\'', "'\\''")
    )
}

#[cfg(test)]
mod tests {
    use super::{quote, under_timeout};

    #[test]
    fn a_script_under_timeout_runs_as_written() {
        let script = "set -e\necho 'it'\\''s'\nprintf '%s\\n' \"$(echo \"a b\")\"";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(under_timeout(10, script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's\na b\n");
    }

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
