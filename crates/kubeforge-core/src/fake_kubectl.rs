//! For unit tests: a script of kubeforge's run by `sh` against a `kubectl` of the test's own
//! (a shell script in a fresh directory put first on `PATH`; `$D` names that directory).

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct FakeKubectl {
    pub dir: PathBuf,
}

impl FakeKubectl {
    /// A fresh directory for the test `name`, holding `kubectl` with the body `text`.
    pub fn new(name: &str, text: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kubeforge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kubectl = dir.join("kubectl");
        std::fs::write(&kubectl, format!("#!/bin/sh\n{text}")).unwrap();
        std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeKubectl { dir }
    }

    /// Runs `script` with `sh -c`, this `kubectl` first on `PATH`, `$D` set, and `env`.
    pub fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .env("D", &self.dir)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

impl Drop for FakeKubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
