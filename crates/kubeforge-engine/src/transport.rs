//! How commands reach a host. Every remote action is one POSIX `sh -c` script run as root, with
//! optional bytes on stdin (file contents travel there, never in a command line).

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// The result of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` when the script was killed by a signal or the connection dropped.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the connection failed: {0}")]
    Lost(String),
    #[error(
        "sudo needs a password: kubeforge needs root, directly or through passwordless sudo (NOPASSWD) for this user"
    )]
    SudoPassword,
}

/// A way to run scripts on one host.
pub trait Transport: Send + Sync {
    /// Runs `script` with `sh -c` as root, feeding `stdin` to it.
    fn exec(
        &self,
        script: &str,
        stdin: &[u8],
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send;
}

/// Runs the script directly when the login user is root and through `sudo -n` otherwise, in
/// one round trip. The script is the positional parameter `$1`, so it is never re-parsed.
pub const BECOME_ROOT: &str =
    "if [ \"$(id -u)\" -eq 0 ]; then exec sh -c \"$1\"; else exec sudo -n sh -c \"$1\"; fi";

fn sudo_refused(output: &ExecOutput) -> bool {
    output.code == Some(1)
        && String::from_utf8_lossy(&output.stderr).contains("sudo: a password is required")
}

/// Checks the outcome of a `BECOME_ROOT` run.
pub fn become_result(output: ExecOutput) -> Result<ExecOutput, TransportError> {
    if sudo_refused(&output) {
        Err(TransportError::SudoPassword)
    } else {
        Ok(output)
    }
}

/// Runs scripts on the machine kubeforge runs on.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    async fn exec(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(BECOME_ROOT)
            .arg("kubeforge")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Connect(format!("cannot start sh: {e}")))?;
        if let Some(mut input) = child.stdin.take() {
            // A script that does not read its stdin closes it early: that is not an error.
            let _ = input.write_all(stdin).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TransportError::Lost(e.to_string()))?;
        become_result(ExecOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// Where and how to reach a host over SSH; `None` fields are left to ssh (~/.ssh/config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshTarget {
    /// Address or name to connect to.
    pub destination: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<std::path::PathBuf>,
    pub known_hosts: Option<std::path::PathBuf>,
    /// An ssh_config file in place of `~/.ssh/config` (`ssh -F`).
    pub config: Option<std::path::PathBuf>,
    /// `false`: accept and record a host seen for the first time (accept-new).
    pub strict: bool,
}

/// The system `ssh` with one multiplexed master connection per host (so ~/.ssh/config, the
/// agent, ProxyJump and known_hosts all apply as for ssh itself).
pub struct SshTransport {
    session: openssh::Session,
}

impl SshTransport {
    pub async fn connect(
        target: &SshTarget,
        control_dir: &std::path::Path,
    ) -> Result<Self, TransportError> {
        let mut builder = openssh::SessionBuilder::default();
        builder
            .known_hosts_check(if target.strict {
                openssh::KnownHosts::Strict
            } else {
                openssh::KnownHosts::Add
            })
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(5))
            // A master left behind by a run that was killed exits once idle. (The builder's
            // clean-up of old socket directories is not used: it would remove those of the
            // other hosts' connections being opened at the same time.)
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(30).unwrap_or(std::num::NonZeroUsize::MIN),
            ))
            .control_directory(control_dir);
        if let Some(user) = &target.user {
            builder.user(user.clone());
        }
        if let Some(port) = target.port {
            builder.port(port);
        }
        if let Some(key) = &target.identity_file {
            builder.keyfile(key);
        }
        if let Some(known_hosts) = &target.known_hosts {
            builder.user_known_hosts_file(known_hosts);
        }
        if let Some(config) = &target.config {
            builder.config_file(config);
        }
        let session = builder
            .connect(&target.destination)
            .await
            .map_err(|e| TransportError::Connect(error_text(&e)))?;
        Ok(Self { session })
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// An openssh error with its causes, which carry ssh's own message.
fn error_text(error: &openssh::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(more.trim());
        }
        source = cause.source();
    }
    text
}

impl Transport for SshTransport {
    async fn exec(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let mut child = self
            .session
            .command("sh")
            .arg("-c")
            .arg(BECOME_ROOT)
            .arg("kubeforge")
            .arg(script)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| TransportError::Lost(error_text(&e)))?;
        if let Some(mut input) = child.stdin().take() {
            let _ = input.write_all(stdin).await;
            let _ = input.shutdown().await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TransportError::Lost(error_text(&e)))?;
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
}
