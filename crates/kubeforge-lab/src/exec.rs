//! Running programs: argument vectors only (never a shell), failures reported with the
//! command line and the tail of its standard error.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubeforge_core::shell::quote;

use crate::error::{IoContext, LabError, Result};

/// Lines of standard error kept in an error message.
const STDERR_TAIL_LINES: usize = 15;

/// The command line as a user could paste it into a shell.
pub fn display(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    parts.push(quote(&cmd.get_program().to_string_lossy()));
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// The last lines of a program's output, indented for an error message.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..]
        .iter()
        .map(|l| format!("\n    {l}"))
        .collect()
}

/// Runs a command to completion, capturing its output; non-zero exit is an error.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if output.status.success() {
        Ok(output)
    } else {
        let mut stderr = tail(&output.stderr);
        if stderr.is_empty() {
            stderr = tail(&output.stdout);
        }
        Err(LabError::Command {
            command: display(cmd),
            status: output.status.to_string(),
            stderr,
        })
    }
}

/// Runs a command and returns its standard output as text.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let output = run(cmd)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command whose output goes to a log file (long-running steps such as debootstrap);
/// on failure the error quotes the log's tail.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let file = File::create(log).context(|| format!("creating {}", log.display()))?;
    let err = file
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| spawn_error(cmd, e))?;
    if status.success() {
        return Ok(());
    }
    let logged = std::fs::read(log).unwrap_or_default();
    Err(LabError::Command {
        command: display(cmd),
        status: status.to_string(),
        stderr: format!("{}\n    (full log: {})", tail(&logged), log.display()),
    })
}

/// Starts a long-running program detached from our terminal (its own process group), with
/// standard output and error appended to `log`. Returns its pid. While this process lives, a
/// thread waits for the program, so that it does not stay a zombie after it exits (a
/// long-lived caller, such as a test harness, would otherwise keep it in the process table
/// and `lab down` waiting for it); once this process has exited, its new parent reaps it.
pub fn spawn_daemon(cmd: &mut Command, log: &Path) -> Result<u32> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .context(|| format!("opening {}", log.display()))?;
    let err = file
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| spawn_error(cmd, e))?;
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

fn spawn_error(cmd: &Command, e: std::io::Error) -> LabError {
    LabError::io(format!("could not start `{}`", display(cmd)), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut cmd = Command::new("ip");
        cmd.args(["addr", "add", "10.0.0.1/24", "dev", "it's here"]);
        cmd.env("A", "b c");
        assert_eq!(
            display(&cmd),
            r#"A='b c' ip addr add 10.0.0.1/24 dev "it's here""#
        );
    }

    #[test]
    fn failure_names_the_command_and_stderr_tail() {
        let err =
            run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`sh -c 'echo one >&2; echo two >&2; exit 3'`"),
            "{msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with("\n    one\n    two"), "{msg}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=40).map(|n| format!("line {n}\n")).collect();
        let t = tail(text.as_bytes());
        assert!(t.starts_with("\n    line 26"));
        assert!(t.ends_with("line 40"));
    }
}
