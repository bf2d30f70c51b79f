//! The `kubelet` stand-in: fails where the real kubelet fails at start-up, then runs the static
//! pods of its manifest directory (the kube-apiserver as an HTTPS endpoint, the others as
//! listening ports), performs the TLS bootstrap, registers and heartbeats its node in the shared
//! state, and writes the pod network's CNI configuration once one was applied.

use crate::env::Env;
use crate::flags::{self, Flag, Parsed, b, v};
use crate::net::{self, Response, Server, Verify};
use crate::pki;
use crate::state::{self, Node, StaticPod, Store};
use crate::util;
use crate::yaml;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const FLAGS: &[Flag] = &[
    v("bootstrap-kubeconfig"),
    v("kubeconfig"),
    v("config"),
    v("container-runtime-endpoint"),
    v("image-service-endpoint"),
    v("node-ip"),
    v("hostname-override"),
    v("node-labels"),
    v("register-with-taints"),
    v("cgroup-driver"),
    v("fail-swap-on"),
    v("pod-infra-container-image"),
    v("runtime-request-timeout"),
    v("root-dir"),
    v("cert-dir"),
    v("provider-id"),
    v("cloud-provider"),
    v("max-pods"),
    v("resolv-conf"),
    v("cluster-dns"),
    v("cluster-domain"),
    v("rotate-certificates"),
    v("address"),
    v("port"),
    v("healthz-port"),
    v("v").short('v'),
    b("version"),
    b("help").short('h'),
];

/// Sync period of the stand-in (the real node status update is 10 s; shorter keeps tests quick).
const SYNC: Duration = Duration::from_secs(2);

fn fatal(msg: &str) -> i32 {
    eprintln!(
        "{}\"command failed\" err=\"{}\"",
        util::klog('E', "run.go:72"),
        msg.replace('"', "\\\"")
    );
    1
}

/// Runs the kubelet until SIGTERM; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let env = Env::from_env();
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    // The unit's variables may arrive as one word each, or empty.
    let args: Vec<String> = args.into_iter().filter(|a| !a.is_empty()).collect();
    let p = match flags::parse(&args, FLAGS) {
        Ok(p) => p,
        Err(e) => return fatal(&format!("failed to parse kubelet flag: {e}")),
    };
    if p.flag("help") {
        println!(
            "{}: kubelet (simulates the kubelet {} for kubeforge's tests; proves nothing about the real kubelet)",
            crate::HELP_FIRST_LINE,
            crate::built_version()
        );
        return 0;
    }
    if p.flag("version") {
        println!("Kubernetes {}", env.version);
        return 0;
    }
    if let Some(a) = p.args.first() {
        return fatal(&format!("unknown command {a:?} for \"kubelet\""));
    }
    let store = Store::new(&env);
    store.log_command(&env, "kubelet", &argv);
    match Kubelet::start(env, store, p) {
        Ok(k) => k.run(),
        Err(e) => fatal(&e),
    }
}

struct Kubelet {
    env: Env,
    store: Store,
    node_name: String,
    node_ip: String,
    kubeconfig: String,
    bootstrap_kubeconfig: String,
    manifest_dir: String,
    labels: BTreeMap<String, String>,
    taints: Vec<state::Taint>,
    /// Registered with the API server: as the real kubelet, this process registers its Node
    /// once; a Node deleted afterwards stays deleted (its status updates fail) until the
    /// kubelet restarts.
    registered: bool,
    /// The static pods running: name → (the manifest they run, its image, the listeners).
    servers: BTreeMap<String, (String, String, Vec<Server>)>,
    _health: Server,
    _port: Option<Server>,
}

fn containerd_cgroup_driver(env: &Env) -> &'static str {
    let conf = std::fs::read_to_string(env.path("/etc/containerd/config.toml")).unwrap_or_default();
    let systemd = conf.lines().any(|l| {
        let l: String = l
            .split('#')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        l == "SystemdCgroup=true"
    });
    if systemd { "systemd" } else { "cgroupfs" }
}

impl Kubelet {
    fn start(env: Env, store: Store, p: Parsed) -> Result<Kubelet, String> {
        let mut config = json!({});
        if let Some(path) = p.get("config") {
            let text = std::fs::read_to_string(env.path(path)).map_err(|e| {
                format!(
                    "failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, error failed to read kubelet config file \"{path}\", error: open {path}: {}",
                    crate::util_io_text(&e)
                )
            })?;
            config = serde_saphyr::from_str(&text).map_err(|e| {
                format!(
                    "failed to load kubelet config file, path: {path}, error: failed to decode: {e}"
                )
            })?;
            if config["kind"] != "KubeletConfiguration" {
                return Err(format!(
                    "failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, error: decoding failed: Object 'Kind' is missing"
                ));
            }
        }
        if !env.path("/dev/kmsg").exists() {
            return Err("failed to run Kubelet: failed to create kubelet: open /dev/kmsg: no such file or directory".into());
        }
        let endpoint = p
            .get("container-runtime-endpoint")
            .map(String::from)
            .or_else(|| {
                config["containerRuntimeEndpoint"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            })
            .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
        let sock = endpoint
            .strip_prefix("unix://")
            .unwrap_or(&endpoint)
            .to_string();
        if let Err(e) = std::os::unix::net::UnixStream::connect(env.path(&sock)) {
            return Err(format!(
                "failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {sock}: connect: {}\"",
                crate::util_io_text(&e)
            ));
        }
        let fail_swap_on = match p.get("fail-swap-on") {
            Some(v) => v != "false",
            None => config["failSwapOn"].as_bool().unwrap_or(true),
        };
        let swaps = std::fs::read_to_string(env.path("/proc/swaps")).unwrap_or_default();
        if fail_swap_on && swaps.lines().count() > 1 {
            return Err("failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false".into());
        }
        let driver = p
            .get("cgroup-driver")
            .or(config["cgroupDriver"].as_str())
            .unwrap_or("cgroupfs")
            .to_string();
        let runtime_driver = containerd_cgroup_driver(&env);
        if driver != runtime_driver {
            return Err(format!(
                "failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"{driver}\" is different from the container runtime's cgroup driver: \"{runtime_driver}\" (SystemdCgroup in /etc/containerd/config.toml)"
            ));
        }
        let node_name = p
            .get("hostname-override")
            .map(String::from)
            .unwrap_or_else(|| env.hostname.to_lowercase());
        let node_ip = p
            .get("node-ip")
            .map(String::from)
            .unwrap_or_else(|| host_ip(&env, &node_name));
        let mut labels = BTreeMap::new();
        for (k, val) in [
            ("beta.kubernetes.io/arch", "amd64"),
            ("beta.kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/os", "linux"),
        ] {
            labels.insert(k.to_string(), val.to_string());
        }
        labels.insert("kubernetes.io/hostname".into(), node_name.clone());
        for kv in p.list("node-labels") {
            let (k, val) = kv.split_once('=').unwrap_or((&kv, ""));
            labels.insert(k.into(), val.into());
        }
        let mut taints = Vec::new();
        for t in p.list("register-with-taints") {
            let (kv, effect) = t.rsplit_once(':').unwrap_or((&t, "NoSchedule"));
            let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
            taints.push(state::Taint {
                key: k.into(),
                value: val.into(),
                effect: effect.into(),
            });
        }
        if let Some(ts) = config["registerWithTaints"].as_array() {
            for t in ts {
                taints.push(state::Taint {
                    key: t["key"].as_str().unwrap_or_default().into(),
                    value: t["value"].as_str().unwrap_or_default().into(),
                    effect: t["effect"].as_str().unwrap_or_default().into(),
                });
            }
        }
        let health_addr = SocketAddr::new(env.local_ip(), 10248);
        let health = net::serve_http(
            health_addr,
            Arc::new(|_, _| Response {
                status: 200,
                body: "ok".into(),
                content_type: "text/plain",
            }),
        )
        .map_err(|e| {
            format!(
                "failed to run Kubelet: listen tcp {health_addr}: bind: {}",
                crate::util_io_text(&e)
            )
        })?;
        let port = net::hold_port(SocketAddr::new(env.bind_ip(), 10250)).ok();
        let manifest_dir = config["staticPodPath"]
            .as_str()
            .unwrap_or("/etc/kubernetes/manifests")
            .to_string();
        Ok(Kubelet {
            node_name,
            node_ip,
            kubeconfig: p.get("kubeconfig").unwrap_or_default().to_string(),
            bootstrap_kubeconfig: p
                .get("bootstrap-kubeconfig")
                .unwrap_or_default()
                .to_string(),
            manifest_dir,
            labels,
            taints,
            registered: false,
            servers: BTreeMap::new(),
            _health: health,
            _port: port,
            env,
            store,
        })
    }

    fn run(mut self) -> i32 {
        let term = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let _ = signal_hook::flag::register(sig, term.clone());
        }
        eprintln!(
            "{}\"Started kubelet\" node=\"{}\"",
            util::klog('I', "server.go:1262"),
            self.node_name
        );
        while !term.load(Ordering::SeqCst) {
            self.sync();
            let mut slept = Duration::ZERO;
            while slept < SYNC && !term.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                slept += Duration::from_millis(100);
            }
        }
        self.servers.clear();
        eprintln!(
            "{}\"Shutting down the kubelet\"",
            util::klog('I', "server.go:1300")
        );
        0
    }

    fn sync(&mut self) {
        let pods = self.sync_static_pods();
        let cp_hash = std::fs::read_to_string(self.env.path("/etc/kubernetes/pki/ca.crt"))
            .ok()
            .and_then(|ca| pki::ca_hash(&ca).ok());
        // Record the static pods of this host (the processes run whether or not an API
        // server answers).
        if let Some(h) = &cp_hash {
            let (h, node, pods) = (h.clone(), self.node_name.clone(), pods.clone());
            let _ = self.store.update(move |s| {
                if let Some(c) = s.cluster_mut(&h) {
                    let now = util::now();
                    let old: Vec<StaticPod> = c
                        .static_pods
                        .iter()
                        .filter(|p| p.node == node)
                        .cloned()
                        .collect();
                    c.static_pods.retain(|p| p.node != node);
                    for (comp, image, restarted, annotations) in pods {
                        // A pod keeps running across kubelet restarts; a changed manifest
                        // restarts it.
                        let started = match old.iter().find(|p| p.component == comp) {
                            Some(p) if !restarted && p.image == image => p.started,
                            _ => now,
                        };
                        c.static_pods.push(StaticPod {
                            node: node.clone(),
                            component: comp,
                            phase: "Running".into(),
                            started,
                            seen: now,
                            image,
                            annotations,
                        });
                    }
                }
            });
        }
        if self.kubeconfig.is_empty() {
            return;
        }
        let kc_path = self.env.path(&self.kubeconfig);
        if !kc_path.exists() {
            if let Err(e) = self.tls_bootstrap() {
                eprintln!(
                    "{}\"Failed to run the TLS bootstrap\" err=\"{e}\"",
                    util::klog('E', "bootstrap.go:265")
                );
            }
            return;
        }
        if let Err(e) = self.heartbeat() {
            eprintln!(
                "{}\"Error updating node status, will retry\" err=\"error getting node \\\"{}\\\": {e}\"",
                util::klog('E', "kubelet_node_status.go:548"),
                self.node_name
            );
        }
    }

    /// Starts and stops what the manifests describe, restarting a pod whose manifest changed;
    /// returns the running components with their image, whether this sync restarted them,
    /// and their manifest's annotations.
    fn sync_static_pods(&mut self) -> Vec<(String, String, bool, BTreeMap<String, String>)> {
        let dir = self.env.path(&self.manifest_dir);
        let mut want: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.')
                    || !(name.ends_with(".yaml")
                        || name.ends_with(".yml")
                        || name.ends_with(".json"))
                {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(e.path())
                    && let Ok(v) = serde_saphyr::from_str::<Value>(&text)
                    && let Some(n) = v.pointer("/metadata/name").and_then(|x| x.as_str())
                {
                    let image = yaml::s(&v, "/spec/containers/0/image").unwrap_or_default();
                    want.insert(n.to_string(), (text.clone(), image.to_string()));
                }
            }
        }
        let mut restarted = Vec::new();
        self.servers.retain(|k, (text, _, _)| match want.get(k) {
            Some((t, _)) if t == text => true,
            Some(_) => {
                restarted.push(k.clone());
                false
            }
            None => false,
        });
        for (name, (text, image)) in &want {
            if self.servers.contains_key(name) {
                continue;
            }
            match self.start_pod(name, text, image) {
                Ok(s) => {
                    self.servers
                        .insert(name.clone(), (text.clone(), image.clone(), s));
                }
                Err(e) => eprintln!(
                    "{}\"Error syncing pod, skipping\" err=\"failed to start container \\\"{name}\\\": {e}\" pod=\"kube-system/{name}-{}\"",
                    util::klog('E', "pod_workers.go:1301"),
                    self.node_name
                ),
            }
        }
        self.servers
            .iter()
            .map(|(n, (text, image, _))| {
                let annotations = serde_saphyr::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| serde_json::from_value(v["metadata"]["annotations"].clone()).ok())
                    .unwrap_or_default();
                (n.clone(), image.clone(), restarted.contains(n), annotations)
            })
            .collect()
    }

    fn start_pod(&self, name: &str, text: &str, image: &str) -> Result<Vec<Server>, String> {
        let arg = |flag: &str| -> Option<String> {
            text.lines()
                .map(|l| l.trim().trim_start_matches("- ").trim_matches('"'))
                .find_map(|l| l.strip_prefix(&format!("--{flag}=")).map(String::from))
        };
        let bind = self.env.bind_ip();
        let hold = |port: u16| {
            net::hold_port(SocketAddr::new(bind, port)).map_err(|e| {
                format!(
                    "listen tcp {}: bind: {}",
                    SocketAddr::new(bind, port),
                    crate::util_io_text(&e)
                )
            })
        };
        match name {
            "kube-apiserver" => {
                let port: u16 = arg("secure-port")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(6443);
                let cert_file = arg("tls-cert-file").ok_or("no --tls-cert-file")?;
                let key_file = arg("tls-private-key-file").ok_or("no --tls-private-key-file")?;
                let ca_file = arg("client-ca-file").ok_or("no --client-ca-file")?;
                let rd = |f: &str| {
                    std::fs::read_to_string(self.env.path(f)).map_err(|e| format!("{f}: {e}"))
                };
                let (cert, key, ca) = (rd(&cert_file)?, rd(&key_file)?, rd(&ca_file)?);
                let hash = pki::ca_hash(&ca)?;
                let store = Store::new(&self.env);
                // The API server is the version of its image.
                let version = image
                    .rsplit_once(':')
                    .and_then(|(_, tag)| crate::env::Version::parse(tag))
                    .unwrap_or(self.env.version);
                let handler: net::Handler =
                    Arc::new(move |_m, path| apiserver(&store, &hash, version, path));
                Ok(vec![net::serve_https(
                    SocketAddr::new(bind, port),
                    &cert,
                    &key,
                    handler,
                )?])
            }
            "etcd" => Ok(vec![hold(2379)?, hold(2380)?]),
            "kube-controller-manager" => Ok(vec![hold(10257)?]),
            "kube-scheduler" => Ok(vec![hold(10259)?]),
            _ => Ok(vec![]),
        }
    }

    /// Exchanges the bootstrap token for a client certificate (the simulated controller-manager
    /// signs it with the cluster CA) and writes kubelet.conf.
    fn tls_bootstrap(&self) -> Result<(), String> {
        if self.bootstrap_kubeconfig.is_empty() {
            return Err("unable to load bootstrap kubeconfig: no --bootstrap-kubeconfig".into());
        }
        let path = self.env.path(&self.bootstrap_kubeconfig);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "unable to load bootstrap kubeconfig: stat {}: {}",
                self.bootstrap_kubeconfig,
                crate::util_io_text(&e)
            )
        })?;
        let info = pki::read_kubeconfig(&self.env, &path)?;
        let v: Value = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
        let token = v["users"][0]["user"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        net::https_get(
            &info.server,
            "/healthz",
            Verify::Ca(&info.ca_pem),
            Duration::from_secs(5),
        )
        .map_err(|e| {
            format!(
                "Post \"{}/apis/certificates.k8s.io/v1/certificatesigningrequests\": {e}",
                info.server
            )
        })?;
        let hash = pki::ca_hash(&info.ca_pem)?;
        let st = self.store.read().map_err(|e| e.to_string())?;
        let c = st.cluster(&hash).ok_or("Unauthorized")?;
        let (id, secret) = token.split_once('.').unwrap_or_default();
        let ok = c.bootstrap_tokens.iter().any(|t| {
            t.id == id
                && t.secret == secret
                && t.valid(util::now())
                && t.usages.iter().any(|u| u == "authentication")
        });
        if !ok {
            return Err("Unauthorized".into());
        }
        let ca = pki::Pair {
            cert: c.ca_cert.clone(),
            key: c.ca_key.clone(),
        };
        let user = format!("system:node:{}", self.node_name);
        let client = pki::issue(
            &ca,
            &pki::Leaf {
                cn: &user,
                orgs: &["system:nodes"],
                server: false,
                client: true,
                dns: vec![],
                ips: vec![],
            },
        )?;
        crate::kubeadm::write_kubelet_conf(&self.env, &info.server, &info.ca_pem, &client)
    }

    fn heartbeat(&mut self) -> Result<(), String> {
        let info = pki::read_kubeconfig(&self.env, &self.env.path(&self.kubeconfig))?;
        let (status, body, _) = net::https_get(
            &info.server,
            "/healthz",
            Verify::Ca(&info.ca_pem),
            Duration::from_secs(5),
        )
        .map_err(|e| {
            format!(
                "Get \"{}/api/v1/nodes/{}?timeout=10s\": {e}",
                info.server, self.node_name
            )
        })?;
        if status != 200 {
            return Err(format!(
                "the server is currently unable to handle the request ({status} {})",
                body.trim()
            ));
        }
        let hash = pki::ca_hash(&info.ca_pem)?;
        let cni_dir = self.env.path("/etc/cni/net.d");
        let network = self
            .store
            .read()
            .ok()
            .and_then(|s| s.cluster(&hash).and_then(|c| c.pod_network.clone()));
        if let Some(net) = &network {
            write_cni_conf(&cni_dir, net);
        }
        let cni_ready = std::fs::read_dir(&cni_dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json")
                })
            })
            .unwrap_or(false);
        let node = Node {
            name: self.node_name.clone(),
            host: self.env.host_label(),
            labels: self.labels.clone(),
            annotations: BTreeMap::from([(
                "kubeadm.alpha.kubernetes.io/cri-socket".to_string(),
                "unix:///var/run/containerd/containerd.sock".to_string(),
            )]),
            taints: self.taints.clone(),
            unschedulable: false,
            internal_ip: self.node_ip.clone(),
            created: util::now(),
            heartbeat: util::now(),
            cni_ready,
            cni_ready_since: cni_ready.then(util::now),
            kubelet_version: self.env.version.to_string(),
        };
        let registered = self.registered;
        let outcome = self
            .store
            .update(move |s| {
                let Some(c) = s.cluster_mut(&hash) else {
                    return Err("Unauthorized".to_string());
                };
                match c.node_mut(&node.name) {
                    Some(n) => {
                        n.heartbeat = node.heartbeat;
                        n.cni_ready_since = match (n.cni_ready, node.cni_ready) {
                            (true, true) => n.cni_ready_since.or(node.cni_ready_since),
                            _ => node.cni_ready_since,
                        };
                        n.cni_ready = node.cni_ready;
                        n.internal_ip = node.internal_ip;
                        n.host = node.host;
                        n.kubelet_version = node.kubelet_version;
                    }
                    None if registered => {
                        return Err(format!("nodes \"{}\" not found", node.name));
                    }
                    None => c.nodes.push(node),
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        outcome?;
        self.registered = true;
        Ok(())
    }
}

fn write_cni_conf(dir: &std::path::Path, network: &str) {
    let (file, conf) = if network == "calico" {
        (
            "10-calico.conflist",
            json!({"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}),
        )
    } else {
        (
            "10-flannel.conflist",
            json!({"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}),
        )
    };
    let path = dir.join(file);
    if !path.exists() {
        let _ = util::write_atomic(
            &path,
            serde_json::to_string_pretty(&conf)
                .unwrap_or_default()
                .as_bytes(),
            0o644,
        );
    }
}

/// What the simulated kube-apiserver answers.
fn apiserver(store: &Store, hash: &str, version: crate::env::Version, path: &str) -> Response {
    let text = |status: u16, body: &str| Response {
        status,
        body: body.to_string(),
        content_type: "text/plain; charset=utf-8",
    };
    let js = |status: u16, v: Value| Response {
        status,
        body: v.to_string(),
        content_type: "application/json",
    };
    let now = util::now();
    let st = store.read().ok();
    let cluster = st.as_ref().and_then(|s| s.cluster(hash));
    let quorum = cluster.is_some_and(|c| c.etcd_quorum(now));
    match path {
        "/livez" => text(200, "ok"),
        "/healthz" | "/readyz" => {
            if quorum {
                text(200, "ok")
            } else {
                text(500, "[-]etcd failed: reason withheld\nhealthz check failed")
            }
        }
        "/version" => js(
            200,
            json!({"major": version.major.to_string(), "minor": version.minor.to_string(), "gitVersion": version.to_string(), "platform": "linux/amd64"}),
        ),
        "/api/v1/namespaces/kube-public/configmaps/cluster-info" => match cluster {
            Some(c) if quorum => js(200, c.cluster_info(now)),
            _ => js(
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcdserver: request timed out", "code": 500}),
            ),
        },
        _ => js(
            403,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""), "reason": "Forbidden", "code": 403}),
        ),
    }
}

/// The node's address without `--node-ip`: what the host name resolves to (the real kubelet
/// also tries the default route's interface, which lab hosts do not have).
fn host_ip(env: &Env, name: &str) -> String {
    use std::net::ToSocketAddrs;
    (name, 0u16)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|s| s.ip().is_ipv4() && !s.ip().is_loopback()))
        .map(|s| s.ip().to_string())
        .unwrap_or_else(|| env.local_ip().to_string())
}
