//! Per-host log files, appended to by every run: the scripts run (masked), their exit codes and
//! the end of their stderr (masked), and the facts as parsed — never raw output, which may hold
//! secrets no pattern knows. A log that has grown past [`ROTATE_BYTES`] is moved to
//! `<host>.log.1` (replacing the one before) when a run opens it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kubeforge_core::mask::Mask;

/// The size past which a host's log is set aside for a fresh one.
pub const ROTATE_BYTES: u64 = 4 << 20;

pub struct HostLog {
    file: Option<Mutex<std::fs::File>>,
    pub path: Option<PathBuf>,
}

impl HostLog {
    /// Opens `<dir>/<host>.log` for appending (mode 0600) and writes a run header, or a log that
    /// writes nothing.
    pub fn open(dir: Option<&Path>, host: &str, header: &str) -> Self {
        let Some(dir) = dir else {
            return Self {
                file: None,
                path: None,
            };
        };
        let path = dir.join(format!("{host}.log"));
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
            let _ = std::fs::rename(&path, dir.join(format!("{host}.log.1")));
        }
        let file = std::fs::create_dir_all(dir).and_then(|_| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
        });
        match file {
            Ok(mut file) => {
                let _ = writeln!(file, "\n==== {header}, {}", utc_now());
                Self {
                    file: Some(Mutex::new(file)),
                    path: Some(path),
                }
            }
            Err(_) => Self {
                file: None,
                path: None,
            },
        }
    }

    /// Writes `text` with every secret the mask knows masked.
    pub fn write(&self, mask: &Mask, text: &str) {
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let _ = writeln!(file, "{}", mask.apply(text));
        }
    }
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let day = kubeforge_core::version::Date::from_unix_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{day}T{:02}:{:02}:{:02}Z", t / 3600, t % 3600 / 60, t % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_past_its_size_is_set_aside_and_a_fresh_one_started() {
        let dir = std::env::temp_dir().join(format!("kubeforge-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("h1.log");
        // Under the limit: appended to.
        std::fs::write(&log, "old run\n").unwrap();
        drop(HostLog::open(Some(&dir), "h1", "run 2"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with("old run\n") && text.contains(" run 2"),
            "{text}"
        );
        // Past it: moved to h1.log.1, and the new log holds this run only.
        std::fs::write(&log, vec![b'x'; ROTATE_BYTES as usize + 1]).unwrap();
        drop(HostLog::open(Some(&dir), "h1", "run 3"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains('x') && text.contains(" run 3"), "{text}");
        assert_eq!(
            std::fs::metadata(dir.join("h1.log.1")).unwrap().len(),
            ROTATE_BYTES + 1
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn now_is_written_in_utc() {
        let now = utc_now();
        assert_eq!(now.len(), "2026-11-27T13:14:21Z".len(), "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }
}
