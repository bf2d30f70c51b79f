//! Where a stand-in acts: the host's root, the shared state, the version and test switches.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default shared state directory: the lab binds one machine directory there in every host.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kubeforge-lab/shared/standin";

/// A Kubernetes version `vMAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `v1.34.2` or `1.34.2` (a pre-release suffix is ignored).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let s = s.split(['-', '+']).next()?;
        let mut it = s.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next().unwrap_or("0").parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Everything a stand-in takes from its environment.
#[derive(Clone, Debug)]
pub struct Env {
    /// Prefix of every host path (`KUBEFORGE_STANDIN_ROOT`); empty on a real host.
    pub root: PathBuf,
    /// The shared cluster state (`KUBEFORGE_STANDIN_STATE`).
    pub state_dir: PathBuf,
    /// The version the stand-ins are (`KUBEFORGE_STANDIN_VERSION`, else the binary's marker:
    /// [`crate::VERSION`] unless `standin-bundle --stamp` rewrote it).
    pub version: Version,
    /// `KUBEFORGE_STANDIN_NO_SYSTEMD`: never call `systemctl` (tests run the kubelet themselves).
    pub no_systemd: bool,
    /// `KUBEFORGE_STANDIN_BIND_ADDRESS`: the address this host's listeners use instead of the
    /// wildcard (tests give every simulated host its own loopback address).
    pub bind: Option<IpAddr>,
    /// The host name (`KUBEFORGE_STANDIN_HOSTNAME`, else the kernel's).
    pub hostname: String,
}

impl Env {
    pub fn from_env() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let version = var("KUBEFORGE_STANDIN_VERSION")
            .and_then(|v| Version::parse(&v))
            .unwrap_or_else(crate::built_version);
        let hostname = var("KUBEFORGE_STANDIN_HOSTNAME").unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        });
        Env {
            root: var("KUBEFORGE_STANDIN_ROOT")
                .map(PathBuf::from)
                .unwrap_or_default(),
            state_dir: var("KUBEFORGE_STANDIN_STATE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            version,
            no_systemd: var("KUBEFORGE_STANDIN_NO_SYSTEMD").is_some(),
            bind: var("KUBEFORGE_STANDIN_BIND_ADDRESS").and_then(|v| v.parse().ok()),
            hostname,
        }
    }

    /// The real location of a host path such as `/etc/kubernetes/admin.conf`.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        if self.root.as_os_str().is_empty() {
            return p.to_path_buf();
        }
        match p.strip_prefix("/") {
            Ok(rel) => self.root.join(rel),
            Err(_) => p.to_path_buf(),
        }
    }

    /// The address listeners bind to: the test override, else the wildcard.
    pub fn bind_ip(&self) -> IpAddr {
        self.bind.unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// The address local health endpoints (kubelet :10248) use: the override, else loopback.
    pub fn local_ip(&self) -> IpAddr {
        self.bind.unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    /// Whether the version still accepts the `kubeadm.k8s.io/v1beta3` API (removed in 1.37... as
    /// announced: 1.34 to 1.36 accept it with a deprecation warning).
    pub fn accepts_v1beta3(&self) -> bool {
        self.version.minor < 37
    }

    /// A name for this host in the command log.
    pub fn host_label(&self) -> String {
        self.hostname.clone()
    }
}
