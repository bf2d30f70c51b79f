//! Per-host log files: every script run and its output, secrets redacted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kubeforge_core::resources::redact;

pub struct HostLog {
    file: Option<Mutex<std::fs::File>>,
    pub path: Option<PathBuf>,
}

impl HostLog {
    /// Opens `<dir>/<host>.log` (replacing an older one, mode 0600), or a log that writes nothing.
    pub fn open(dir: Option<&Path>, host: &str) -> Self {
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
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
        });
        match file {
            Ok(file) => Self {
                file: Some(Mutex::new(file)),
                path: Some(path),
            },
            Err(_) => Self {
                file: None,
                path: None,
            },
        }
    }

    pub fn write(&self, secrets: &[String], text: &str) {
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            let _ = writeln!(file, "{}", redact(text, secrets));
        }
    }
}
