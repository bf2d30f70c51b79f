//! How commands reach a host. Every remote action is one POSIX `sh -c` script run as root, with
//! optional bytes on stdin (file contents and secrets travel there, never in a command line).

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// What a script reads on its stdin: bytes and files of this machine, one after another.
#[derive(Default)]
pub struct Input<'a> {
    pub parts: Vec<Part>,
    /// Told the number of bytes written so far, as they go.
    pub progress: Option<Box<dyn Fn(u64) + Send + Sync + 'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Bytes(Vec<u8>),
    /// Streamed from this machine's file.
    File(PathBuf),
}

impl Input<'_> {
    pub fn bytes(bytes: &[u8]) -> Self {
        Input {
            parts: vec![Part::Bytes(bytes.to_vec())],
            progress: None,
        }
    }

    /// Everything, read into memory (for scripted transports in tests).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File(path) => out.extend(std::fs::read(path)?),
            }
        }
        Ok(out)
    }
}

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
    #[error("another kubeforge run holds the lock on this host ({0}); wait for it to finish")]
    Locked(String),
}

/// Keeps a host's run lock while it lives; dropping it releases the lock.
pub trait LockGuard: Send {}

/// A way to run scripts on one host.
pub trait Transport: Send + Sync {
    /// Runs `script` with `sh -c` as root, feeding `stdin` to it.
    fn exec(
        &self,
        script: &str,
        stdin: &Input<'_>,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send;

    /// Takes the host's run lock for as long as the guard lives ([`lock_script`]): two
    /// kubeforge runs on the same hosts cannot interleave.
    fn lock(
        &self,
        holder: &str,
    ) -> impl Future<Output = Result<Box<dyn LockGuard>, TransportError>> + Send;

    /// Takes the run lock and runs the read-only `script` (the facts), at once: by default side
    /// by side; a transport may run the script in the lock's own session once the lock is
    /// held, saving a round trip on every host.
    fn lock_then(
        &self,
        holder: &str,
        script: &str,
    ) -> impl Future<
        Output = (
            Result<Box<dyn LockGuard>, TransportError>,
            Result<ExecOutput, TransportError>,
        ),
    > + Send {
        async move {
            let input = Input::default();
            futures::join!(self.lock(holder), self.exec(script, &input))
        }
    }
}

/// Runs the script directly when the login user is root and through `sudo -n` otherwise, in
/// one round trip, in the C locale (sudo's messages are matched). The script is the positional
/// parameter `$1`, so it is never re-parsed. The effective user comes from the shell's own
/// /proc/self/status (`id -u` where that cannot be read): every command pays this.
pub const BECOME_ROOT: &str = "LC_ALL=C; export LC_ALL; u=; while read -r k _ e _; do [ \"$k\" = Uid: ] && u=$e && break; done 2>/dev/null < /proc/self/status; [ -n \"$u\" ] || u=$(id -u); if [ \"$u\" -eq 0 ]; then exec sh -c \"$1\"; else exec sudo -n sh -c \"$1\"; fi";

/// Takes the host's run lock: an flock on /run/lock/kubeforge.lock, held by this script's shell
/// for as long as kubeforge keeps writing a line every few seconds to its stdin ([`LOCK_KEEP`]).
/// A holder that stopped writing for 30 s (a run whose connection died without the host
/// noticing) is stale: its shell is killed and the lock taken over. The first line kubeforge
/// writes names the holder and when it started.
const LOCK_TAKE: &str = r#"[ -d /run/lock ] || mkdir -p /run/lock
h=/run/lock/kubeforge.holder
exec 9>>/run/lock/kubeforge.lock
if ! flock -n 9; then
  age=$(( $(date +%s) - $(stat -c %Y "$h" 2>/dev/null || echo 0) ))
  if [ "$age" -gt 30 ]; then
    kill "$(sed -n 2p "$h")" 2>/dev/null
    sleep 1
  fi
  if ! flock -n 9; then echo "held $(head -n 1 "$h" 2>/dev/null)"; exit 0; fi
fi
IFS= read -r holder
printf '%s\n%s\n' "$holder" "$$" > "$h"
echo locked
"#;

/// Keeps the lock while kubeforge's heartbeat lines come.
const LOCK_KEEP: &str = "while IFS= read -r _; do touch \"$h\"; done\n";

/// The line that ends the output of the script run once the lock is held, with its exit code.
const THEN_END: &str = "@@kubeforge-then-exit";

/// The lock's script: take the lock ([`LOCK_TAKE`]), run `then` if given, keep the lock
/// ([`LOCK_KEEP`]). `then` runs with its stdin empty and its stderr dropped, and its output is
/// followed by [`THEN_END`] with its exit code. The holder file is touched meanwhile, as the
/// heartbeat would: a slow script does not make the lock stale. Neither holds the lock's
/// descriptor, so the lock goes with its shell.
pub fn lock_script(then: Option<&str>) -> String {
    let then = then.map_or(String::new(), |script| {
        format!(
            "(exec 9>&-; while sleep 5; do touch \"$h\"; done) </dev/null >/dev/null 2>&1 &\nt=$!\n(\nexec 9>&-\n{script}\n) </dev/null 2>/dev/null\nc=$?\nkill \"$t\" 2>/dev/null\necho \"{THEN_END} $c\"\n"
        )
    });
    format!("{LOCK_TAKE}{then}{LOCK_KEEP}")
}

/// How often the lock's holder shows it is alive.
const LOCK_HEARTBEAT: Duration = Duration::from_secs(5);

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

/// Runs a spawned child to completion, writing `stdin` while reading its output (a script that
/// prints much before it reads its input would otherwise block both sides).
pub async fn communicate(
    mut child: tokio::process::Child,
    stdin: &Input<'_>,
) -> Result<std::process::Output, std::io::Error> {
    let input = child.stdin.take();
    let write = async move {
        if let Some(mut input) = input {
            // A script that does not read its stdin closes it early: that is not an error.
            let _ = write_input(&mut input, stdin).await;
            let _ = input.shutdown().await;
        }
    };
    let (_, output) = tokio::join!(write, child.wait_with_output());
    output
}

async fn write_input(
    out: &mut tokio::process::ChildStdin,
    input: &Input<'_>,
) -> Result<(), std::io::Error> {
    let mut written = 0u64;
    let mut report = |n: usize| {
        written += n as u64;
        if let Some(progress) = &input.progress {
            progress(written);
        }
    };
    for part in &input.parts {
        match part {
            Part::Bytes(bytes) => {
                out.write_all(bytes).await?;
                report(bytes.len());
            }
            Part::File(path) => {
                let mut file = tokio::fs::File::open(path).await?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).await?;
                    report(n);
                }
            }
        }
    }
    Ok(())
}

/// A lock held through a child process (`sh` or `ssh`) running [`lock_script`].
struct ChildLock {
    _child: tokio::process::Child,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl LockGuard for ChildLock {}

impl Drop for ChildLock {
    fn drop(&mut self) {
        // Dropping the child (kill_on_drop) closes its stdin: the remote loop ends.
        self.heartbeat.abort();
    }
}

/// Starts [`lock_script`] with `then` through `command_for` (which runs `BECOME_ROOT` with the
/// script it is given), waits for its verdict and, with `then`, for that script's output.
pub async fn hold_lock(
    command_for: impl FnOnce(&str) -> tokio::process::Command,
    holder: &str,
    then: Option<&str>,
) -> Result<(Box<dyn LockGuard>, Option<ExecOutput>), TransportError> {
    let mut command = command_for(&lock_script(then));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TransportError::Lost(format!("cannot start the lock: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| TransportError::Lost("no stdin for the lock".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| TransportError::Lost("no stdout for the lock".into()))?;
    let line = format!(
        "{}, since {}\n",
        holder.replace('\n', " "),
        crate::log::utc_now()
    );
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| TransportError::Lost(format!("lock: {e}")))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let verdict = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| TransportError::Lost("no answer to the lock request in 30 s".into()))?
        .map_err(|e| TransportError::Lost(format!("lock: {e}")))?
        .unwrap_or_default();
    if let Some(other) = verdict.strip_prefix("held") {
        let other = other.trim();
        return Err(TransportError::Locked(if other.is_empty() {
            "holder unknown".to_string()
        } else {
            format!("held by {other}")
        }));
    }
    if verdict != "locked" {
        return Err(TransportError::Lost(format!(
            "unexpected answer to the lock request: {verdict:?}"
        )));
    }
    let mut output = None;
    if then.is_some() {
        let mut stdout = Vec::new();
        let mut code = None;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| TransportError::Lost(format!("lock: {e}")))?
        {
            if let Some(c) = line.strip_prefix(THEN_END) {
                code = c.trim().parse().ok();
                break;
            }
            stdout.extend_from_slice(line.as_bytes());
            stdout.push(b'\n');
        }
        let Some(code) = code else {
            return Err(TransportError::Lost(
                "the lock's session ended before its script did".into(),
            ));
        };
        output = Some(ExecOutput {
            code: Some(code),
            stdout,
            stderr: Vec::new(),
        });
    }
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(LOCK_HEARTBEAT).await;
            if stdin.write_all(b".\n").await.is_err() {
                break;
            }
        }
    });
    Ok((
        Box::new(ChildLock {
            _child: child,
            heartbeat,
        }),
        output,
    ))
}

/// Runs scripts on the machine kubeforge runs on.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport;

fn local_command(script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(BECOME_ROOT).arg("kubeforge").arg(script);
    cmd
}

impl Transport for LocalTransport {
    async fn exec(&self, script: &str, stdin: &Input<'_>) -> Result<ExecOutput, TransportError> {
        let child = local_command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Connect(format!("cannot start sh: {e}")))?;
        let out = communicate(child, stdin)
            .await
            .map_err(|e| TransportError::Lost(e.to_string()))?;
        become_result(ExecOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn lock(&self, holder: &str) -> Result<Box<dyn LockGuard>, TransportError> {
        hold_lock(local_command, holder, None)
            .await
            .map(|(guard, _)| guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_output_flow_at_once() {
        // A script that prints a megabyte before it reads a megabyte: writing all of stdin
        // first and reading afterwards would block both sides forever.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let input = vec![b'x'; 1 << 20];
        let out = runtime.block_on(async {
            let child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg("head -c 1048576 /dev/zero; wc -c")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            tokio::time::timeout(
                Duration::from_secs(20),
                communicate(child, &Input::bytes(&input)),
            )
            .await
            .expect("no deadlock")
            .unwrap()
        });
        assert_eq!(out.stdout.len(), (1 << 20) + "1048576\n".len());
        assert!(out.stdout.ends_with(b"1048576\n"));
    }

    #[test]
    fn the_lock_runs_a_script_once_held_and_a_second_holder_is_refused() {
        // The lock script as it is, in a private directory instead of /run/lock.
        let dir = std::env::temp_dir().join(format!("kubeforge-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let here = |script: &str| {
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c")
                .arg(script.replace("/run/lock", &dir.display().to_string()));
            cmd
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let then = Some("echo @@facts; echo \"$h\" | wc -c >/dev/null; echo two; exit 3");
            let (guard, out) = hold_lock(here, "run one", then).await.unwrap();
            let out = out.unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "@@facts\ntwo\n");
            assert_eq!(out.code, Some(3));
            let holder = std::fs::read_to_string(dir.join("kubeforge.holder")).unwrap();
            assert!(holder.starts_with("run one, since 20"), "{holder}");
            // Held: a second run is refused, and its script does not run.
            match hold_lock(here, "run two", then).await {
                Err(TransportError::Locked(by)) => {
                    assert!(by.starts_with("held by run one, since"), "{by}")
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("a second holder got the lock"),
            }
            // Released when the guard goes.
            drop(guard);
            let mut taken = None;
            for _ in 0..50 {
                if let Ok(t) = hold_lock(here, "run three", then).await {
                    taken = Some(t);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(taken.is_some(), "the lock was never released");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scripts_run_in_the_c_locale() {
        // As root the script runs directly; otherwise through this stand-in for `sudo -n`.
        let dir = std::env::temp_dir().join(format!("kubeforge-locale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sudo = dir.join("sudo");
        std::fs::write(&sudo, "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(BECOME_ROOT)
            .arg("kubeforge")
            .arg("echo \"$LC_ALL\"")
            .env("PATH", path)
            .env("LC_ALL", "de_DE.UTF-8")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "C\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
