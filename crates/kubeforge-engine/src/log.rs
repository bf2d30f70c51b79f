//! Per-host log files, appended to by every run: the scripts run (masked), their exit codes and
//! the end of their stderr (masked), and the facts as parsed — never raw output, which may hold
//! secrets no pattern knows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kubeforge_core::mask::Mask;

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
                let _ = writeln!(file, "\n==== {header}");
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
