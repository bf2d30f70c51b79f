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
    /// The host did not let the lock be taken (its lock directory is not what kubeforge made).
    #[error("the run lock cannot be taken: {0}")]
    LockRefused(String),
    #[error("no answer within {seconds} s: {what}")]
    Timeout { what: String, seconds: u64 },
}

/// Who takes a host's run lock: `who` is shown to a run that finds the lock held (controller,
/// user, start time); `token` names this run, and every batch of changes it runs checks that
/// the lock is still its own ([`lock_guard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub who: String,
    pub token: String,
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
        holder: &Holder,
    ) -> impl Future<Output = Result<Box<dyn LockGuard>, TransportError>> + Send;

    /// Takes the run lock and runs the read-only `script` (the facts), at once: by default side
    /// by side; a transport may run the script in the lock's own session once the lock is
    /// held, saving a round trip on every host.
    fn lock_then(
        &self,
        holder: &Holder,
        script: &str,
    ) -> impl Future<
        Output = (
            Result<Box<dyn LockGuard>, TransportError>,
            Result<ExecOutput, TransportError>,
        ),
    > + Send {
        async move {
            let input = Input::default();
            tokio::join!(self.lock(holder), self.exec(script, &input))
        }
    }
}

/// Runs the script directly when the login user is root and through `sudo -n` otherwise, in
/// one round trip, in the C locale (sudo's messages are matched). The script is the positional
/// parameter `$1`, so it is never re-parsed. The effective user comes from the shell's own
/// /proc/self/status (`id -u` where that cannot be read): every command pays this.
pub const BECOME_ROOT: &str = "LC_ALL=C; export LC_ALL; u=; while read -r k _ e _; do [ \"$k\" = Uid: ] && u=$e && break; done 2>/dev/null < /proc/self/status; [ -n \"$u\" ] || u=$(id -u); if [ \"$u\" -eq 0 ]; then exec sh -c \"$1\"; else exec sudo -n sh -c \"$1\"; fi";

/// Where a host's run lock lives: a directory only root may enter (/run is root's, so no
/// other user can have made it, nor a symlink in its place).
pub const LOCK_DIR: &str = "/run/kubeforge";

/// How long a holder whose heartbeat stopped keeps the lock: it gives it up by itself then.
pub const LOCK_STALE_SECS: u64 = 30;

/// Takes the host's run lock: an flock on `LOCK_DIR/lock`, held by this script's shell for as
/// long as kubeforge keeps writing a line every few seconds to its stdin ([`LOCK_KEEP`]); a
/// holder that hears nothing for [`LOCK_STALE_SECS`] (its run's connection died without the
/// host noticing) ends itself, and so gives the lock up. Staleness is the lock's alone: a run
/// that finds the lock held waits for a holder that stopped touching its file to give it up,
/// and kills nothing. The first two lines kubeforge writes name the holder and its token.
///
/// Batches of changes hold `LOCK_DIR/work` shared while they run ([`lock_guard`]): once the
/// lock is taken, the script waits until no batch of an earlier run still runs (a run killed
/// mid-batch leaves its commands running on the host) before anything is read or changed.
const LOCK_TAKE: &str = r#"umask 077
d=/run/kubeforge
if [ -L "$d" ] || { [ -e "$d" ] && { [ ! -d "$d" ] || [ ! -O "$d" ]; }; }; then echo "refused $d is not a directory of root's"; exit 0; fi
[ -d "$d" ] || mkdir -m 0700 "$d" || { echo "refused cannot make $d"; exit 0; }
h="$d/holder"
exec 9>>"$d/lock"
if ! flock -n 9; then
  s=$(stat -c %Y "$h" 2>/dev/null || echo 0)
  if [ $(( $(date +%s) - s )) -le 30 ] || ! flock -w 40 9; then echo "held $(head -n 1 "$h" 2>/dev/null)"; exit 0; fi
fi
IFS= read -r holder
IFS= read -r token
printf '%s
' "$holder" > "$h"
printf '%s
' "$token" > "$d/token"
exec 8>>"$d/work"
if ! flock -n 8; then
  echo waiting
  flock -w 600 8 || { echo "busy a batch of an earlier run still runs after 10 minutes"; exit 0; }
fi
exec 8>&-
echo locked
"#;

/// Keeps the lock while kubeforge's heartbeat lines come; [`LOCK_STALE_SECS`] without one end
/// the shell, and with it the lock.
const LOCK_KEEP: &str =
    "exec bash -c 'while IFS= read -r -t 30 _; do touch \"$1\"; done' kubeforge \"$h\"\n";

/// The line that ends the output of the script run once the lock is held, with its exit code.
const THEN_END: &str = "@@kubeforge-then-exit";

/// The lock's script: take the lock ([`LOCK_TAKE`]), run `then` if given, keep the lock
/// ([`LOCK_KEEP`]; bash, Debian's own, for a `read` with a time limit). `then` runs with its
/// stdin empty and its stderr dropped, without the lock's descriptor (the lock goes with the
/// holder's shell), and its output is followed by [`THEN_END`] with its exit code. It is
/// kubeforge's facts, bounded on the host: while it runs (seconds; at most 110 s) the holder's
/// file is not touched, and a run that finds the lock held then waits for it a little longer
/// before it says who holds it.
pub fn lock_script(then: Option<&str>) -> String {
    let then = then.map_or(String::new(), |script| {
        format!("(\nexec 9>&-\n{script}\n) </dev/null 2>/dev/null\necho \"{THEN_END} $?\"\n")
    });
    format!("{LOCK_TAKE}{then}{LOCK_KEEP}")
}

/// What a batch's stderr says when the run lock is no longer this run's.
pub const LOCK_LOST: &str = "@@kubeforge-lock-lost";

/// The start of every batch of changes: hold the work lock shared for as long as the batch
/// runs (its commands inherit it), and go on only while the run lock is this run's (`token`):
/// a run whose lock was taken over stops before it changes anything else, and the new holder
/// waits for the batch before it reads the host.
pub fn lock_guard(token: &str) -> String {
    format!(
        "exec 8>>{LOCK_DIR}/work && flock -s 8 && t= && read -r t < {LOCK_DIR}/token && [ \"$t\" = {} ] || {{ echo \"{LOCK_LOST} $(head -n 1 {LOCK_DIR}/holder 2>/dev/null)\" >&2; exit 75; }}\n",
        kubeforge_core::shell::quote(token)
    )
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
    holder: &Holder,
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
    let lines = format!(
        "{}, since {}\n{}\n",
        holder.who.replace('\n', " "),
        crate::log::utc_now(),
        holder.token.replace('\n', "")
    );
    // A script that refuses at once (its directory is not what it must be) has gone before
    // it reads these lines: its answer tells why, not the broken pipe.
    let written = stdin.write_all(lines.as_bytes()).await;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    // A stale holder gives the lock up within LOCK_STALE_SECS; batches of an earlier run may
    // take up to 10 minutes more.
    let mut verdict = next_line(&mut lines, LOCK_ANSWER, "the lock request").await?;
    if let (Err(e), "") = (&written, verdict.as_str()) {
        return Err(TransportError::Lost(format!("lock: {e}")));
    }
    if verdict == "waiting" {
        verdict = next_line(
            &mut lines,
            Duration::from_secs(630),
            "a batch of an earlier run that still runs on the host",
        )
        .await?;
    }
    if let Some(other) = verdict.strip_prefix("held") {
        let other = other.trim();
        return Err(TransportError::Locked(if other.is_empty() {
            "holder unknown".to_string()
        } else {
            format!("held by {other}")
        }));
    }
    if let Some(why) = verdict
        .strip_prefix("refused ")
        .or_else(|| verdict.strip_prefix("busy "))
    {
        return Err(TransportError::LockRefused(why.to_string()));
    }
    if verdict != "locked" {
        return Err(TransportError::Lost(format!(
            "unexpected answer to the lock request: {verdict:?}"
        )));
    }
    let mut output = None;
    if then.is_some() {
        let read = async {
            let mut stdout = Vec::new();
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(|e| TransportError::Lost(format!("lock: {e}")))?
            {
                if let Some(c) = line.strip_prefix(THEN_END) {
                    return Ok((c.trim().parse().ok(), stdout));
                }
                stdout.extend_from_slice(line.as_bytes());
                stdout.push(b'\n');
            }
            Err(TransportError::Lost(
                "the lock's session ended before its script did".into(),
            ))
        };
        let (code, stdout) = tokio::time::timeout(FACTS_DEADLINE, read)
            .await
            .map_err(|_| TransportError::Timeout {
                what: "the facts, gathered once the run lock was held".into(),
                seconds: FACTS_DEADLINE.as_secs(),
            })??;
        output = Some(ExecOutput {
            code,
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

/// How long the lock's first answer may take: a stale holder gives the lock up within
/// [`LOCK_STALE_SECS`], and the script waits up to 40 s for that.
const LOCK_ANSWER: Duration = Duration::from_secs(60);

/// How long the facts of one host may take, wherever they are gathered.
pub const FACTS_DEADLINE: Duration = Duration::from_secs(120);

/// The next line of the lock's output within `limit`; `what` names what was waited for.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    limit: Duration,
    what: &str,
) -> Result<String, TransportError> {
    Ok(tokio::time::timeout(limit, lines.next_line())
        .await
        .map_err(|_| TransportError::Timeout {
            what: what.to_string(),
            seconds: limit.as_secs(),
        })?
        .map_err(|e| TransportError::Lost(format!("lock: {e}")))?
        .unwrap_or_default())
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

    /// The lock script as it is, in a private directory instead of [`LOCK_DIR`], with its
    /// staleness shortened from 30 s to 2 s; and a runtime to run it in.
    struct LockLab {
        dir: PathBuf,
        runtime: tokio::runtime::Runtime,
        /// How long a silent holder keeps the lock (30 s in the real script).
        keep: u64,
        /// How old the holder's file must be for a run to wait for it (30 s too).
        stale: u64,
    }

    impl LockLab {
        fn new(name: &str) -> LockLab {
            let dir = std::env::temp_dir().join(format!("kubeforge-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            LockLab {
                dir: dir.join("run-kubeforge"),
                runtime: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
                keep: 2,
                stale: 2,
            }
        }

        fn script(&self, script: &str) -> String {
            script
                .replace(LOCK_DIR, &self.dir.display().to_string())
                .replace("read -r -t 30", &format!("read -r -t {}", self.keep))
                .replace("-le 30 ]", &format!("-le {} ]", self.stale))
        }

        fn command(&self, script: &str) -> tokio::process::Command {
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c").arg(self.script(script));
            cmd
        }

        fn take(
            &self,
            who: &str,
            then: Option<&str>,
        ) -> Result<(Box<dyn LockGuard>, Option<ExecOutput>), TransportError> {
            let holder = Holder {
                who: who.into(),
                token: format!("token-of-{}", who.replace(' ', "-")),
            };
            self.runtime
                .block_on(hold_lock(|s| self.command(s), &holder, then))
        }

        /// A batch of `who`'s run, guarded as the engine guards every batch.
        fn batch(&self, who: &str, script: &str) -> std::process::Output {
            let token = format!("token-of-{}", who.replace(' ', "-"));
            std::process::Command::new("sh")
                .arg("-c")
                .arg(self.script(&format!("{}{script}", lock_guard(&token))))
                .output()
                .unwrap()
        }
    }

    impl Drop for LockLab {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.dir.parent().unwrap());
        }
    }

    #[test]
    fn the_lock_runs_a_script_once_held_and_a_second_holder_is_refused() {
        let lab = LockLab::new("lock");
        let then = Some("echo @@facts; echo two; exit 3");
        let (guard, out) = lab.take("run one", then).unwrap();
        let out = out.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "@@facts\ntwo\n");
        assert_eq!(out.code, Some(3));
        let holder = std::fs::read_to_string(lab.dir.join("holder")).unwrap();
        assert!(holder.starts_with("run one, since 20"), "{holder}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&lab.dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the lock's directory is private");
        // Held: a second run is refused, told who holds it, and its script does not run.
        match lab.take("run two", then) {
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
            if let Ok(t) = lab.take("run three", then) {
                taken = Some(t);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(taken.is_some(), "the lock was never released");
    }

    /// No file an unprivileged user could have planted is followed or trusted: a symlink (or
    /// a file) where the lock's directory goes is refused, and nothing is killed.
    #[test]
    fn the_lock_refuses_a_directory_that_is_not_its_own() {
        let lab = LockLab::new("lock-symlink");
        let target = lab.dir.with_file_name("elsewhere");
        std::fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&target, &lab.dir).unwrap();
        match lab.take("run one", None) {
            Err(TransportError::LockRefused(why)) => {
                assert!(why.ends_with("is not a directory of root's"), "{why}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("the lock followed a symlink"),
        }
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        assert!(
            !lock_script(None).contains("kill"),
            "the lock kills nothing"
        );
    }

    /// A holder whose kubeforge went silent (its connection died unseen) gives the lock up by
    /// itself: a run that finds its file stale waits for that, and takes the lock.
    #[test]
    fn a_silent_holder_gives_the_lock_up_by_itself() {
        let mut lab = LockLab::new("lock-stale");
        (lab.keep, lab.stale) = (4, 1);
        // A holder that never sends a heartbeat (its stdin stays open, silent).
        let mut silent = std::process::Command::new("sh")
            .arg("-c")
            .arg(lab.script(&lock_script(None)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = silent.stdin.take().unwrap();
        use std::io::{BufRead, Write};
        stdin.write_all(b"silent run\nsilent-token\n").unwrap();
        let mut verdict = String::new();
        std::io::BufReader::new(silent.stdout.take().unwrap())
            .read_line(&mut verdict)
            .unwrap();
        assert_eq!(verdict, "locked\n");
        // Its file is stale after 1 s: the next run waits until the holder gives up (4 s).
        std::thread::sleep(Duration::from_secs(2));
        let started = std::time::Instant::now();
        let taken = lab.take("run two", None);
        assert!(taken.is_ok(), "{:?}", taken.err());
        assert!(
            started.elapsed() >= Duration::from_secs(1)
                && started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // The silent holder's shell ended by itself; nobody killed it.
        assert!(silent.wait().unwrap().success());
        drop(stdin);
    }

    /// A batch of a run whose lock was taken over stops before it changes anything; a batch
    /// still running holds the new holder back until it ends.
    #[test]
    fn batches_run_only_under_their_own_runs_lock_and_hold_the_next_one_back() {
        let lab = LockLab::new("lock-batch");
        let (first, _) = lab.take("run one", None).unwrap();
        let done = lab.dir.with_file_name("done");
        let ok = lab.batch("run one", &format!("touch {}", done.display()));
        assert!(ok.status.success(), "{ok:?}");
        assert!(done.exists());
        // A batch that still runs when its run lets the lock go.
        let slow = {
            let script = lab.script(&format!(
                "{}sleep 2; touch {}.slow",
                lock_guard("token-of-run-one"),
                done.display()
            ));
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .spawn()
                .unwrap()
        };
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        std::thread::sleep(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let (second, _) = lab.take("run two", None).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(1000),
            "run two took the lock while run one's batch still ran"
        );
        assert!(done.with_extension("slow").exists());
        let mut slow = slow;
        assert!(slow.wait().unwrap().success());
        // Run one goes on as if nothing happened: its next batch changes nothing.
        let lost = lab.batch("run one", &format!("touch {}.late", done.display()));
        assert_eq!(lost.status.code(), Some(75));
        let stderr = String::from_utf8_lossy(&lost.stderr);
        assert!(
            stderr.starts_with(&format!("{LOCK_LOST} run two, since ")),
            "{stderr}"
        );
        assert!(!done.with_extension("late").exists());
        drop(second);
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
