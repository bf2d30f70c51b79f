//! The system `ssh`, one master connection per host (so ~/.ssh/config, `-F FILE`, the agent,
//! ProxyJump and known_hosts apply as for ssh itself), kept for reuse: a master outlives the
//! run by a short idle time, so a re-run soon after skips key exchange and authentication.
//!
//! Control sockets live in a private directory ([`control_dir`]): `$XDG_RUNTIME_DIR/kubeforge`,
//! else `~/.cache/kubeforge/ssh`, refused unless owned by the user, mode 0700 and not a symlink.
//! A socket's name is a hash of everything that shapes the connection (destination, user, port,
//! key, known_hosts, strictness, config file), so runs with other settings never share one.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::transport::{
    BECOME_ROOT, ExecOutput, FACTS_DEADLINE, Holder, Input, LockGuard, Transport, TransportError,
    become_result, communicate, hold_lock,
};
use kubeforge_core::shell::quote;

/// Where and how to reach a host over SSH; `None` fields are left to ssh (its config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshTarget {
    /// The name or address as the inventory writes it (never a DNS answer: ssh resolves it,
    /// and `Host` blocks of the ssh config match it).
    pub destination: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// An ssh_config file (`ssh -F`).
    pub config: Option<PathBuf>,
    /// `false`: accept and record a host seen for the first time (accept-new).
    pub strict: bool,
}

impl SshTarget {
    fn socket_name(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.destination.clone(),
            self.user.clone().unwrap_or_default(),
            self.port.map(|p| p.to_string()).unwrap_or_default(),
            path_text(&self.identity_file),
            path_text(&self.known_hosts),
            path_text(&self.config),
            self.strict.to_string(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        kubeforge_core::hash::hex(&h.finalize()[..8])
    }

    /// Options every ssh invocation for this target takes.
    fn options(&self, cmd: &mut tokio::process::Command) {
        if let Some(config) = &self.config {
            cmd.arg("-F").arg(config);
        }
        cmd.args(["-o", "BatchMode=yes"]);
        cmd.arg("-o").arg(if self.strict {
            "StrictHostKeyChecking=yes"
        } else {
            "StrictHostKeyChecking=accept-new"
        });
        if let Some(known_hosts) = &self.known_hosts {
            cmd.arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
        }
        if let Some(user) = &self.user {
            cmd.arg("-l").arg(user);
        }
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        if let Some(key) = &self.identity_file {
            cmd.arg("-i").arg(key);
        }
    }
}

/// ssh's own time limits, for the master and every command: the TCP connection and the
/// banner within 10 s, and a connection whose other end stops answering is dropped after
/// 15 s (three keep-alives of 5 s unanswered).
const TIME_LIMITS: [&str; 6] = [
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=3",
];

/// How long opening a master connection may take, handshake and authentication included.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

fn path_text(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// How long an idle master connection stays for the next run (`KUBEFORGE_SSH_PERSIST`
/// seconds, default 60).
pub fn persist_from_env() -> Duration {
    std::env::var("KUBEFORGE_SSH_PERSIST")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// The private directory for control sockets, created if needed and checked.
pub fn control_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() && runtime.is_dir() => runtime.join("kubeforge"),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .ok_or("neither XDG_RUNTIME_DIR nor HOME is set: no private place for ssh's control sockets")?
            .join(".cache/kubeforge/ssh"),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    check_private(&dir)?;
    Ok(dir)
}

/// Refuses a directory that is a symlink, not ours, or open to others.
pub fn check_private(dir: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell this process's user: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink; ssh's control sockets need a private directory: remove it",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory: remove it", dir.display()));
    }
    if meta.uid() != uid {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {uid}): remove it",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:o}; it must be private: chmod 700 {}",
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

pub struct SshTransport {
    target: SshTarget,
    socket: PathBuf,
}

impl SshTransport {
    /// Reuses a live master connection for this target, or opens one.
    pub async fn connect(
        target: &SshTarget,
        control_dir: &Path,
        persist: Duration,
    ) -> Result<Self, TransportError> {
        let socket = control_dir.join(target.socket_name());
        let transport = SshTransport {
            target: target.clone(),
            socket,
        };
        if transport.master_alive().await {
            return Ok(transport);
        }
        // A socket left by a master that died is in the way of a new one.
        let _ = std::fs::remove_file(&transport.socket);
        let log = transport.socket.with_extension("log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(["-M", "-N", "-f", "-S"])
            .arg(&transport.socket)
            .arg("-E")
            .arg(&log)
            .arg("-o")
            .arg(format!("ControlPersist={}", persist.as_secs().max(1)))
            .args(TIME_LIMITS);
        target.options(&mut cmd);
        cmd.arg("--")
            .arg(&target.destination)
            .stdin(Stdio::null())
            // The master keeps every descriptor it inherits for its whole life (`-f` does
            // not close them): nothing here may be a pipe we wait on. Its messages go to
            // the log (`-E`).
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // A host that accepts the connection and then says nothing (a frozen sshd) is given
        // up on: ssh's own limits cover the TCP connection, this the whole handshake.
        let status = tokio::time::timeout(CONNECT_DEADLINE, cmd.status())
            .await
            .map_err(|_| {
                TransportError::Connect(format!(
                    "no answer within {} s (the host accepts connections but its SSH server does not finish the handshake)",
                    CONNECT_DEADLINE.as_secs()
                ))
            })?
            .map_err(|e| TransportError::Connect(format!("cannot run ssh: {e}")))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            return Err(TransportError::Connect(if lines.is_empty() {
                format!("ssh exited with {status}")
            } else {
                lines.join("; ")
            }));
        }
        Ok(transport)
    }

    /// ssh through the master connection. When the master is gone, ssh connects on its own:
    /// with every setting of the target (user, port, key, known_hosts, strictness, config)
    /// and the same time limits, never without them.
    fn through_master(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-S")
            .arg(&self.socket)
            .args(["-o", "ControlMaster=no", "-T"])
            .args(TIME_LIMITS);
        self.target.options(&mut cmd);
        cmd.arg("--").arg(&self.target.destination);
        cmd
    }

    /// Whether a master listens on the socket: a connection to it is accepted (a master that
    /// died leaves a socket that refuses). Cheaper than `ssh -O check`, which starts a client.
    async fn master_alive(&self) -> bool {
        // (a local connect does not block: it is accepted or refused at once)
        std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
    }

    /// The remote command: `sh -c BECOME_ROOT kubeforge SCRIPT`, every word quoted (ssh joins
    /// them with spaces for the remote shell).
    fn remote(&self, script: &str) -> tokio::process::Command {
        let mut cmd = self.through_master();
        cmd.arg(format!(
            "sh -c {} kubeforge {}",
            quote(BECOME_ROOT),
            quote(script)
        ));
        cmd
    }

    /// Asks the master to exit now (it would exit by itself once idle).
    pub async fn close(&self) {
        let _ = tokio::process::Command::new("ssh")
            .arg("-S")
            .arg(&self.socket)
            .args(["-O", "exit"])
            .arg("--")
            .arg(&self.target.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

impl Transport for SshTransport {
    async fn exec(&self, script: &str, stdin: &Input<'_>) -> Result<ExecOutput, TransportError> {
        let child = self
            .remote(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Lost(format!("cannot run ssh: {e}")))?;
        let out = communicate(child, stdin)
            .await
            .map_err(|e| TransportError::Lost(e.to_string()))?;
        // ssh itself exits with 255 when the connection breaks.
        if out.status.code() == Some(255) && out.stdout.is_empty() {
            return Err(TransportError::Lost(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        become_result(ExecOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn lock(&self, holder: &Holder) -> Result<Box<dyn LockGuard>, TransportError> {
        hold_lock(|s| self.remote(s), holder, None)
            .await
            .map(|(guard, _)| guard)
    }

    /// The script runs in the lock's session once the lock is held: one ssh session per host
    /// instead of two. When the lock is not taken, or the script fails (its stderr is not kept
    /// there), the script runs again on its own, for its output or its error.
    async fn lock_then(
        &self,
        holder: &Holder,
        script: &str,
    ) -> (
        Result<Box<dyn LockGuard>, TransportError>,
        Result<ExecOutput, TransportError>,
    ) {
        let alone = async {
            tokio::time::timeout(FACTS_DEADLINE, self.exec(script, &Input::default()))
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Timeout {
                        what: "gathering facts".into(),
                        seconds: FACTS_DEADLINE.as_secs(),
                    })
                })
        };
        match hold_lock(|s| self.remote(s), holder, Some(script)).await {
            Ok((guard, Some(out))) if out.success() => (Ok(guard), Ok(out)),
            Ok((guard, _)) => (Ok(guard), alone.await),
            Err(e) => (Err(e), alone.await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_differ_with_every_setting_and_are_short() {
        let a = SshTarget {
            destination: "k8scp01".into(),
            strict: true,
            ..SshTarget::default()
        };
        let mut b = a.clone();
        b.user = Some("admin".into());
        let mut c = a.clone();
        c.config = Some("/tmp/ssh_config".into());
        let names = [a.socket_name(), b.socket_name(), c.socket_name()];
        assert_eq!(names[0].len(), 16);
        assert!(names[0] != names[1] && names[0] != names[2] && names[1] != names[2]);
        assert_eq!(a.socket_name(), a.clone().socket_name());
    }

    /// Should the master be gone, ssh connects on its own with exactly these arguments: they
    /// must carry every setting of the target and ssh's time limits.
    #[test]
    fn commands_carry_every_setting_should_the_master_be_gone() {
        let target = SshTarget {
            destination: "k8scp01".into(),
            user: Some("admin".into()),
            port: Some(2222),
            identity_file: Some("/keys/id".into()),
            known_hosts: Some("/keys/known_hosts".into()),
            config: Some("/keys/ssh_config".into()),
            strict: true,
        };
        let t = SshTransport {
            target,
            socket: "/nonexistent/socket".into(),
        };
        let args: Vec<String> = t
            .through_master()
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for expected in [
            "-S /nonexistent/socket",
            "-F /keys/ssh_config",
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o UserKnownHostsFile=/keys/known_hosts",
            "-l admin",
            "-p 2222",
            "-i /keys/id",
            "-o ConnectTimeout=10",
            "-o ServerAliveInterval=5",
            "-o ServerAliveCountMax=3",
            "-- k8scp01",
        ] {
            assert!(line.contains(expected), "{expected:?} not in {line}");
        }
    }

    #[test]
    fn a_control_directory_open_to_others_or_a_symlink_is_refused() {
        let base = std::env::temp_dir().join(format!("kubeforge-ssh-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private(&open).unwrap_err();
        assert!(
            err.contains("mode 755") && err.contains("chmod 700"),
            "{err}"
        );
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_private(&open), Ok(()));
        let link = base.join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(check_private(&link).unwrap_err().contains("symlink"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
