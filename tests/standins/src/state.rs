//! The shared cluster state: what etcd and the API server would hold, for every simulated
//! cluster, reachable from every host. One JSON file, read without a lock (it is replaced
//! atomically) and changed under an exclusive `flock` on `state.lock` (every lab host runs on
//! the same kernel, so the lock holds across hosts).

use crate::env::Env;
use crate::util;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A node's heartbeat older than this makes it `Unknown` (the node-monitor grace period).
pub const HEARTBEAT_GRACE_SECS: i64 = 40;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Format version of this file.
    pub format: u32,
    pub clusters: Vec<Cluster>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// `sha256:<hex>` of the CA certificate's public key (what `caCertHashes` pins).
    pub ca_hash: String,
    /// The CA certificate (PEM), as cluster-info publishes it.
    pub ca_cert: String,
    /// The CA key, with which the simulated controller-manager signs kubelet client
    /// certificates (TLS bootstrap).
    pub ca_key: String,
    pub created: i64,
    /// The host that ran `kubeadm init`.
    pub init_host: String,
    pub control_plane_endpoint: String,
    pub kubernetes_version: String,
    /// The uploaded ClusterConfiguration (kube-system/kubeadm-config), normalised to JSON.
    pub cluster_configuration: serde_json::Value,
    /// The uploaded KubeletConfiguration (kube-system/kubelet-config).
    pub kubelet_configuration: serde_json::Value,
    pub etcd_members: Vec<EtcdMember>,
    /// The member leadership was moved to (`etcdctl move-leader`); see [`Cluster::etcd_leader`].
    #[serde(default)]
    pub etcd_leader: Option<u64>,
    pub nodes: Vec<Node>,
    pub static_pods: Vec<StaticPod>,
    pub bootstrap_tokens: Vec<BootstrapToken>,
    /// kube-system/kubeadm-certs, when uploaded.
    pub uploaded_certs: Option<UploadedCerts>,
    /// Objects created by `kubectl apply` and the addons.
    pub manifests: Vec<ManifestRecord>,
    /// `flannel` or `calico` once a pod network was applied.
    pub pod_network: Option<String>,
    /// Addons installed by init (`coredns`, `kube-proxy`).
    pub addons: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EtcdMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// The host whose kubelet registered it.
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub internal_ip: String,
    pub created: i64,
    /// Last kubelet heartbeat (unix seconds).
    pub heartbeat: i64,
    /// Whether the kubelet found a CNI configuration at its last heartbeat.
    pub cni_ready: bool,
    /// Since when (unix seconds) it has found one, without a break.
    #[serde(default)]
    pub cni_ready_since: Option<i64>,
    pub kubelet_version: String,
}

impl Node {
    /// The Ready condition: `True`, `False` (no CNI) or `Unknown` (stale heartbeat).
    pub fn ready(&self, now: i64) -> &'static str {
        if now - self.heartbeat > HEARTBEAT_GRACE_SECS {
            "Unknown"
        } else if self.cni_ready {
            "True"
        } else {
            "False"
        }
    }

    pub fn is_control_plane(&self) -> bool {
        self.labels
            .contains_key("node-role.kubernetes.io/control-plane")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StaticPod {
    pub node: String,
    /// `etcd`, `kube-apiserver`, `kube-controller-manager` or `kube-scheduler`.
    pub component: String,
    pub phase: String,
    /// When the kubelet (re)started it: it restarts a pod whose manifest changed.
    pub started: i64,
    /// Last time the kubelet saw the manifest.
    pub seen: i64,
    /// The image of its manifest when the kubelet last started it (the mirror pod's image).
    #[serde(default)]
    pub image: String,
    /// Its manifest's annotations (the mirror pod carries them).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
    /// Expiry (unix seconds); `None` never expires (ttl 0).
    pub expires: Option<i64>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
    pub description: String,
    /// Its Secret was deleted: no longer valid (kept so that tests know every token made).
    #[serde(default)]
    pub deleted: bool,
}

impl BootstrapToken {
    pub fn valid(&self, now: i64) -> bool {
        !self.deleted && self.expires.is_none_or(|e| e > now)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UploadedCerts {
    /// SHA-256 of the certificate key: a download with another key fails to decrypt.
    pub key_sha256: String,
    pub expires: i64,
    /// File name under the certificates directory → PEM.
    pub files: BTreeMap<String, String>,
    /// The Secret was deleted: nothing to download (kept so that tests know every key made).
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ManifestRecord {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// SHA-256 of the object (`unchanged` when an apply changes nothing).
    #[serde(default)]
    pub digest: String,
    /// The object as every apply left it, merged as server-side apply merges partial objects
    /// (maps field by field, lists of named items by name, other lists whole). A
    /// CustomResourceDefinition keeps only what serving its kind needs (`spec.group`,
    /// `spec.names`, `spec.scope`, the versions' names): Calico's would make the state large.
    /// For the addons kubeadm installs, a stand-in object that carries their image
    /// (`spec.template.spec.containers[0].image`).
    #[serde(default)]
    pub object: serde_json::Value,
    /// The field managers that applied it, in order of their first apply (`kubectl` for
    /// `--server-side`, `kubectl-client-side-apply` without, or `--field-manager`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CommandRecord {
    pub time_ms: i64,
    pub host: String,
    pub program: String,
    pub argv: Vec<String>,
}

impl State {
    pub fn cluster(&self, ca_hash: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.ca_hash == ca_hash)
    }
    pub fn cluster_mut(&mut self, ca_hash: &str) -> Option<&mut Cluster> {
        self.clusters.iter_mut().find(|c| c.ca_hash == ca_hash)
    }
}

impl Cluster {
    /// The cluster-info ConfigMap (kube-public): the kubeconfig with the CA and endpoint, and
    /// one signature per valid bootstrap token (`jws-kubeconfig-<id>`).
    pub fn cluster_info(&self, now: i64) -> serde_json::Value {
        let kubeconfig = cluster_info_kubeconfig(&self.control_plane_endpoint, &self.ca_cert);
        let mut data = serde_json::Map::new();
        for t in self
            .bootstrap_tokens
            .iter()
            .filter(|t| t.valid(now) && t.usages.iter().any(|u| u == "signing"))
        {
            data.insert(
                format!("jws-kubeconfig-{}", t.id),
                serde_json::Value::String(jws_signature(&kubeconfig, &t.id, &t.secret)),
            );
        }
        data.insert("kubeconfig".into(), serde_json::Value::String(kubeconfig));
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": data,
        })
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
    /// Whether a member's etcd runs: the kubelet of its node ran the etcd static pod lately
    /// (the kubelet records its static pods at every sync, API server or not).
    pub fn member_healthy(&self, m: &EtcdMember, now: i64) -> bool {
        self.static_pods.iter().any(|p| {
            p.node == m.name && p.component == "etcd" && now - p.seen <= HEARTBEAT_GRACE_SECS
        })
    }
    /// The leading member: the one leadership was moved to while it is healthy, else (it never
    /// moved, or that member went down and the others elected another) the first healthy one.
    pub fn etcd_leader(&self, now: i64) -> Option<u64> {
        let healthy = |id: u64| {
            self.etcd_members
                .iter()
                .any(|m| m.id == id && self.member_healthy(m, now))
        };
        self.etcd_leader.filter(|id| healthy(*id)).or_else(|| {
            self.etcd_members
                .iter()
                .find(|m| self.member_healthy(m, now))
                .map(|m| m.id)
        })
    }
    /// Whether etcd has quorum.
    pub fn etcd_quorum(&self, now: i64) -> bool {
        let n = self.etcd_members.len();
        let healthy = self
            .etcd_members
            .iter()
            .filter(|m| self.member_healthy(m, now))
            .count();
        n > 0 && healthy > n / 2
    }
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("shared state {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shared state {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The shared state directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(env: &Env) -> Store {
        Store {
            dir: env.state_dir.clone(),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Reads the state without locking (writers replace the file atomically).
    pub fn read(&self) -> Result<State, StateError> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| StateError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                format: 1,
                ..State::default()
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Changes the state under the exclusive lock and writes it back atomically.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let lock_path = self.dir.join("state.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let mut state = self.read()?;
        state.format = 1;
        let out = f(&mut state);
        let path = self.file();
        let bytes = serde_json::to_vec_pretty(&state).expect("state serialises");
        util::write_atomic(&path, &bytes, 0o644).map_err(io_err(&path))?;
        drop(lock);
        Ok(out)
    }

    /// The command log: every stand-in command run on any host, argv exactly as given, one
    /// JSON object a line in `commands.jsonl` (kept apart so that the state stays small).
    pub fn commands_file(&self) -> PathBuf {
        self.dir.join("commands.jsonl")
    }

    /// Appends a command to the log (one `write` of one line, under the lock).
    pub fn log_command(&self, env: &Env, program: &str, argv: &[String]) {
        use std::io::Write;
        let rec = CommandRecord {
            time_ms: util::now_ms(),
            host: env.host_label(),
            program: program.to_string(),
            argv: argv.to_vec(),
        };
        let Ok(mut line) = serde_json::to_string(&rec) else {
            return;
        };
        line.push('\n');
        let _ = std::fs::create_dir_all(&self.dir);
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("state.lock"))
        else {
            return;
        };
        if lock.lock().is_err() {
            return;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.commands_file())
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Every command logged so far.
    pub fn commands(&self) -> Vec<CommandRecord> {
        std::fs::read_to_string(self.commands_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The kubeconfig published in cluster-info.
pub fn cluster_info_kubeconfig(endpoint: &str, ca_pem: &str) -> String {
    crate::pki::kubeconfig(&format!("https://{endpoint}"), ca_pem, "", None)
}

/// The detached signature of cluster-info for one token (a stand-in for the JWS HS256 one:
/// only the token's secret produces it).
pub fn jws_signature(kubeconfig: &str, id: &str, secret: &str) -> String {
    util::sha256_hex(format!("{id}.{secret}\n{kubeconfig}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_updates_are_not_lost() {
        let dir = std::env::temp_dir().join(format!("standin-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let store = Store::at(&dir);
                    for i in 0..20 {
                        store
                            .update(|s| {
                                if s.clusters.is_empty() {
                                    s.clusters.push(Cluster::default());
                                }
                                s.clusters[0].nodes.push(Node {
                                    name: format!("n{t}-{i}"),
                                    ..Node::default()
                                });
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = Store::at(&dir).read().unwrap();
        assert_eq!(s.clusters.len(), 1);
        assert_eq!(s.clusters[0].nodes.len(), 160);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
