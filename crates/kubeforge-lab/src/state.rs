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
    /// The cache (Debian tree, package repository) when it lives elsewhere than `dir/cache`:
    /// labs of other directories can share one.
    pub cache: Option<PathBuf>,
}

impl Paths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Paths {
            dir: dir.into(),
            cache: None,
        }
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
    /// What the command line of each process of this lab names, and no other lab's: its
    /// hosts' disks (systemd-nspawn) or its run directory (dnsmasq's and httpd's
    /// configuration). Not the cache, which labs of other directories may share.
    pub fn process_marks(&self) -> [String; 2] {
        [
            format!("{}/", self.hosts_dir().display()),
            format!("{}/", self.run_dir().display()),
        ]
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
        self.cache.clone().unwrap_or_else(|| self.dir.join("cache"))
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
    /// Every process stopped by `lab freeze`.
    #[serde(default)]
    pub frozen: bool,
}

/// Everything a later command needs to know about a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub plan: AddressPlan,
    /// Which of the machine's lab slots this lab holds: its bridge, cgroups and the names of
    /// its hosts' containers are the slot's own, so labs of other directories run side by
    /// side ([`Slot`]).
    #[serde(default)]
    pub slot: Slot,
    pub bridge: String,
    /// The cache it was built from, when not its own directory's.
    #[serde(default)]
    pub cache: Option<PathBuf>,
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

/// One of the machine's lab slots. Slot 0 is the first lab's (bridge `kfbr0`, cgroup
/// `kubeforge-lab`, containers named as their hosts); slot N (1 to 9) gives a lab of another
/// directory names of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(pub u8);

impl Slot {
    /// Slots a machine has.
    pub const COUNT: u8 = 10;

    /// The lab's bridge.
    pub fn bridge(self) -> String {
        format!("kfbr{}", self.0)
    }

    /// Parent cgroup of the lab's hosts, in each hierarchy.
    pub fn cgroup_parent(self) -> PathBuf {
        match self.0 {
            0 => PathBuf::from("kubeforge-lab"),
            n => PathBuf::from(format!("kubeforge-lab{n}")),
        }
    }

    /// A host's cgroup (below [`Slot::cgroup_parent`]).
    pub fn cgroup_of(self, host: &str) -> PathBuf {
        self.cgroup_parent().join(host)
    }

    /// The name of a host's container (systemd-nspawn's machine name, which names its veth
    /// link and its directory under /run/systemd/nspawn); the host's own name is set apart.
    pub fn machine(self, host: &str) -> String {
        match self.0 {
            0 => host.to_owned(),
            n => format!("kf{n}-{host}"),
        }
    }

    /// The machine side of a host's veth link.
    pub fn veth(self, host: &str) -> String {
        crate::net::veth_name(&self.machine(host))
    }

    /// The subnet `lab up` takes when none is given: `10.213.N.0/24`.
    pub fn default_subnet(self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, self.0, 0), 24)
            .expect("a /24 is a valid prefix")
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
            slot: Slot(0),
            bridge: "kfbr0".into(),
            cache: None,
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
        // Written before labs had slots: the first lab's names.
        obj.remove("slot");
        obj.remove("cache");
        let state = State::parse(&json.to_string()).unwrap();
        assert_eq!(state.dnsmasq, None);
        assert!(state.hosts.is_empty());
        assert_eq!(state.slot, Slot(0));
        assert_eq!(state.cache, None);
    }

    #[test]
    fn slots_name_everything_a_lab_makes_on_the_machine_apart() {
        let first = Slot(0);
        assert_eq!(first.bridge(), "kfbr0");
        assert_eq!(first.cgroup_of("k8s01"), Path::new("kubeforge-lab/k8s01"));
        assert_eq!(first.veth("k8scp01"), "vb-k8scp01");
        assert_eq!(first.default_subnet().to_string(), "10.213.0.0/24");
        let other = Slot(3);
        assert_eq!(other.bridge(), "kfbr3");
        assert_eq!(other.cgroup_of("k8s01"), Path::new("kubeforge-lab3/k8s01"));
        assert_eq!(other.machine("k8scp01"), "kf3-k8scp01");
        assert_eq!(other.default_subnet().to_string(), "10.213.3.0/24");
        // Whole names, never cut to the kernel's 15 bytes (which could make two equal).
        for n in 1..=99 {
            let veth = Slot(Slot::COUNT - 1).veth(&format!("k8scp{n:02}"));
            assert!(
                veth.len() <= 15 && veth.starts_with("vb-kf9-k8scp"),
                "{veth}"
            );
        }
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
