//! The lab's layout on disk and its state file (`state.json`), so that every command, from
//! any process, knows the hosts, the pids and the machine settings to restore.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LabError, Result};
use crate::plan::AddressPlan;
use crate::sys::{ProcId, Swap};

/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;

/// Where everything of one lab lives, under the directory it owns.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Paths { dir: dir.into() }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("cluster.yaml")
    }
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }
    pub fn identity_file(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }
    /// The ssh_config that reaches every host by its name.
    pub fn ssh_config(&self) -> PathBuf {
        self.ssh_dir().join("config")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.hosts_dir().join(name)
    }
    /// The host's root as it sees it: an overlay of its upper layer over the shared tree.
    pub fn host_root(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("root")
    }
    pub fn host_upper(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("upper")
    }
    pub fn host_work(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("work")
    }
    pub fn host_console_log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("console.log")
    }
    /// A plain directory of the machine that the host has at /var/lib/containerd (its root
    /// is an overlay, on which containerd's overlayfs snapshotter cannot work).
    pub fn host_containerd(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("containerd")
    }
    /// Files the lab shows a host in place of the machine's under /proc (`swaps`).
    pub fn host_proc(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("proc")
    }
    /// The directory every host has at /var/lib/kubeforge-lab/shared (read-write).
    pub fn shared(&self) -> PathBuf {
        self.dir.join("shared")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }
    /// The shared, read-only Debian tree (the overlays' lower layer).
    pub fn tree(&self) -> PathBuf {
        self.cache_dir().join("tree")
    }
    pub fn tree_stamp(&self) -> PathBuf {
        self.cache_dir().join("tree.json")
    }
    /// The repository served to the hosts (.deb files and their `Packages` index).
    pub fn repo(&self) -> PathBuf {
        self.cache_dir().join("repo")
    }
}

/// One host's runtime state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The host's systemd-nspawn process while it runs.
    #[serde(default)]
    pub nspawn: Option<ProcId>,
    /// Cut off from the bridge by `lab cut`.
    #[serde(default)]
    pub cut: bool,
}

/// Everything a later command needs to know about a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub plan: AddressPlan,
    pub bridge: String,
    pub http_port: u16,
    /// Machine sysctls as they were before the lab came up (restored by `down`).
    pub sysctls: BTreeMap<String, String>,
    /// The machine's active swap areas before the lab came up (turned back on by `down`).
    #[serde(default)]
    pub swaps: Vec<Swap>,
    #[serde(default)]
    pub dnsmasq: Option<ProcId>,
    #[serde(default)]
    pub httpd: Option<ProcId>,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostState>,
}

impl State {
    pub fn parse(text: &str) -> Result<State> {
        let state: State = serde_json::from_str(text)
            .map_err(|e| LabError::Invalid(format!("lab state file is unreadable: {e}")))?;
        if state.version != STATE_VERSION {
            return Err(LabError::Invalid(format!(
                "lab state file has version {} (this kubeforge reads {STATE_VERSION}); run \
                 `kubeforge lab down` with the kubeforge that brought the lab up",
                state.version
            )));
        }
        Ok(state)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn load(paths: &Paths) -> Result<Option<State>> {
        match fs::read_to_string(paths.state()) {
            Ok(text) => State::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::io(
                format!("reading {}", paths.state().display()),
                e,
            )),
        }
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        write_atomic(&paths.state(), self.to_json().as_bytes(), 0o600)
    }

    pub fn host(&mut self, name: &str) -> &mut HostState {
        self.hosts.entry(name.to_owned()).or_default()
    }
}

/// Writes a file by writing a temporary file beside it and renaming it over the target.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DEFAULT_SUBNET;

    fn sample() -> State {
        let plan = AddressPlan::new(DEFAULT_SUBNET.parse().unwrap(), 3, 1).unwrap();
        let mut state = State {
            version: STATE_VERSION,
            plan,
            bridge: "kfbr0".into(),
            http_port: 8080,
            sysctls: [("kernel.panic".to_owned(), "1".to_owned())].into(),
            swaps: vec![Swap {
                filename: "/swapfile".into(),
                kind: "file".into(),
                priority: -2,
            }],
            dnsmasq: Some(ProcId {
                pid: 42,
                start_time: 1000,
            }),
            httpd: None,
            hosts: BTreeMap::new(),
        };
        state.host("k8scp01").nspawn = Some(ProcId {
            pid: 77,
            start_time: 2000,
        });
        state.host("k8s01").cut = true;
        state
    }

    #[test]
    fn state_round_trips() {
        let state = sample();
        assert_eq!(State::parse(&state.to_json()).unwrap(), state);
    }

    #[test]
    fn state_file_is_plain_json() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(json["plan"]["subnet"], "10.213.0.0/24");
        assert_eq!(json["plan"]["vip"], "10.213.0.10");
        assert_eq!(json["plan"]["hosts"][3]["name"], "k8s01");
        assert_eq!(json["plan"]["hosts"][3]["role"], "worker");
        assert_eq!(json["hosts"]["k8scp01"]["nspawn"]["pid"], 77);
        assert_eq!(json["sysctls"]["kernel.panic"], "1");
        assert_eq!(json["swaps"][0]["filename"], "/swapfile");
    }

    #[test]
    fn missing_optional_fields_default() {
        let mut json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.remove("dnsmasq");
        obj.remove("hosts");
        let state = State::parse(&json.to_string()).unwrap();
        assert_eq!(state.dnsmasq, None);
        assert!(state.hosts.is_empty());
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let mut state = sample();
        state.version = 99;
        let err = State::parse(&state.to_json()).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        assert!(State::parse("{not json").is_err());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("kubeforge-lab-test-{}", std::process::id()));
        let path = dir.join("sub/file.txt");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
