//! Simulated hosts for the stand-ins' tests: each host is a directory used as the file-system
//! root (`KUBEFORGE_STANDIN_ROOT`) with its own loopback address; all share one state directory.
#![allow(dead_code)]

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubeforge_standins::state::{State, Store};

pub const KUBEADM: &str = env!("CARGO_BIN_EXE_kubeadm");
pub const KUBELET: &str = env!("CARGO_BIN_EXE_kubelet");
pub const KUBECTL: &str = env!("CARGO_BIN_EXE_kubectl");
pub const BUNDLE: &str = env!("CARGO_BIN_EXE_standin-bundle");
pub const ETCDCTL: &str = env!("CARGO_BIN_EXE_etcdctl");

static SUBNET: AtomicU8 = AtomicU8::new(0);

/// One test's machines: a state directory and a directory of fake programs.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub bin: PathBuf,
    pub subnet: u8,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // Programs kubeadm's preflight wants and this machine may lack, and containerd's `ctr`
        // reading the images a host "has" from a file beside its socket.
        for p in [
            "iptables",
            "ebtables",
            "ethtool",
            "socat",
            "tc",
            "conntrack",
        ] {
            script(&bin.join(p), "#!/bin/sh\nexit 0\n");
        }
        script(
            &bin.join("ctr"),
            "#!/bin/sh\naddr=\"\"\nwhile [ $# -gt 0 ]; do case \"$1\" in --address) addr=\"$2\"; shift 2;; *) shift;; esac; done\n[ -S \"$addr\" ] || { echo \"ctr: failed to dial \\\"$addr\\\": connection refused\" >&2; exit 1; }\ncat \"$(dirname \"$addr\")/images.txt\" 2>/dev/null\nexit 0\n",
        );
        std::os::unix::fs::symlink(KUBELET, bin.join("kubelet")).unwrap();
        let subnet = 10 + SUBNET.fetch_add(1, Ordering::SeqCst) + (std::process::id() % 100) as u8;
        Lab {
            dir,
            state,
            bin,
            subnet,
        }
    }

    pub fn store(&self) -> Store {
        Store::at(&self.state)
    }

    pub fn read(&self) -> State {
        self.store().read().unwrap()
    }

    /// A host named `name` at 127.77.<subnet>.<n>, prepared like a kubeforge-prepared node.
    pub fn host(&self, name: &str, n: u8) -> Host {
        let root = self.dir.path().join(name);
        let ip: IpAddr = format!("127.77.{}.{n}", self.subnet).parse().unwrap();
        for d in [
            "dev",
            "proc/sys/net/ipv4",
            "run/containerd",
            "var",
            "etc/containerd",
            "etc/cni/net.d",
            "etc/kubernetes/manifests",
            "var/lib/kubelet",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("../run", root.join("var/run")).unwrap();
        std::fs::write(root.join("dev/kmsg"), "").unwrap();
        std::fs::write(
            root.join("proc/swaps"),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        )
        .unwrap();
        std::fs::write(root.join("proc/sys/net/ipv4/ip_forward"), "1\n").unwrap();
        std::fs::write(root.join("etc/containerd/config.toml"), "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n").unwrap();
        let sock = root.join("run/containerd/containerd.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            for c in listener.incoming() {
                drop(c)
            }
        });
        let h = Host {
            name: name.to_string(),
            root,
            ip,
            state: self.state.clone(),
            bin: self.bin.clone(),
            kubelet: Mutex::new(None),
        };
        h.set_images(&h.default_images());
        h
    }
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A simulated host.
pub struct Host {
    pub name: String,
    pub root: PathBuf,
    pub ip: IpAddr,
    state: PathBuf,
    bin: PathBuf,
    kubelet: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl Host {
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("KUBEFORGE_STANDIN_ROOT", &self.root)
            .env("KUBEFORGE_STANDIN_STATE", &self.state)
            .env("KUBEFORGE_STANDIN_NO_SYSTEMD", "1")
            .env("KUBEFORGE_STANDIN_BIND_ADDRESS", self.ip.to_string())
            .env("KUBEFORGE_STANDIN_HOSTNAME", &self.name)
            .env_remove("KUBECONFIG")
            .env_remove("KUBEFORGE_STANDIN_VERSION")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program).args(args).output().expect("run stand-in")
    }

    pub fn kubeadm(&self, args: &[&str]) -> Output {
        self.run(KUBEADM, args)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut a = vec!["--kubeconfig", "/etc/kubernetes/admin.conf"];
        a.extend_from_slice(args);
        self.run(KUBECTL, &a)
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    pub fn write(&self, p: &str, text: &str) {
        let f = self.path(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }

    pub fn default_images(&self) -> Vec<String> {
        let o = self.kubeadm(&["config", "images", "list"]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    /// The images containerd's k8s.io namespace holds on this host (what the fake ctr lists).
    pub fn set_images(&self, images: &[String]) {
        std::fs::write(
            self.path("/run/containerd/images.txt"),
            images.join("\n") + "\n",
        )
        .unwrap();
    }

    /// Runs the kubelet as systemd would (the unit, the kubeadm drop-in, Restart=always).
    pub fn start_kubelet(&self) {
        self.start_kubelet_from(Path::new(KUBELET));
    }

    /// Runs `program` as the kubelet (a bundle's `bin/kubelet`, say), as systemd would.
    pub fn start_kubelet_from(&self, program: &Path) {
        let program = program.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, root, state, name, ip, bin) = (
            stop.clone(),
            self.root.clone(),
            self.state.clone(),
            self.name.clone(),
            self.ip,
            self.bin.clone(),
        );
        let t = std::thread::spawn(move || {
            let host = Host {
                name,
                root,
                ip,
                state,
                bin,
                kubelet: Mutex::new(None),
            };
            while !s2.load(Ordering::SeqCst) {
                let flags =
                    std::fs::read_to_string(host.path("/var/lib/kubelet/kubeadm-flags.env"))
                        .unwrap_or_default();
                let kubeadm_args: Vec<String> = flags
                    .trim()
                    .strip_prefix("KUBELET_KUBEADM_ARGS=")
                    .unwrap_or("")
                    .trim_matches('"')
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(host.path("/kubelet.log"))
                    .unwrap();
                let mut child: Child = host
                    .cmd(program.to_str().unwrap())
                    .args([
                        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                        "--kubeconfig=/etc/kubernetes/kubelet.conf",
                        "--config=/var/lib/kubelet/config.yaml",
                    ])
                    .args(&kubeadm_args)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if s2.load(Ordering::SeqCst) {
                        let _ = Command::new("kill")
                            .args(["-TERM", &child.id().to_string()])
                            .status();
                        let _ = child.wait();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        *self.kubelet.lock().unwrap() = Some((stop, t));
    }

    pub fn stop_kubelet(&self) {
        if let Some((stop, t)) = self.kubelet.lock().unwrap().take() {
            stop.store(true, Ordering::SeqCst);
            let _ = t.join();
        }
    }

    pub fn kubelet_log(&self) -> String {
        std::fs::read_to_string(self.path("/kubelet.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_kubelet();
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Waits up to `secs` for `f` to hold.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An init configuration for `cp` with the endpoint at `endpoint`.
pub fn init_config(cp: &Host, endpoint: &str, extra_cluster: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {ip}
  bindPort: 6443
nodeRegistration:
  name: {name}
  kubeletExtraArgs:
  - name: node-ip
    value: {ip}
timeouts:
  controlPlaneComponentHealthCheck: 40s
  kubeletHealthCheck: 40s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.2
controlPlaneEndpoint: {endpoint}
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  certSANs:
  - k8scp.kubeforge.internal
{extra_cluster}---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
",
        ip = cp.ip,
        name = cp.name
    )
}

/// A join configuration; `cp` adds the control-plane part with that certificate key.
pub fn join_config(h: &Host, endpoint: &str, token: &str, hash: &str, cp: Option<&str>) -> String {
    let mut s = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: {endpoint}
    token: {token}
    caCertHashes:
    - {hash}
timeouts:
  discovery: 3s
  tlsBootstrap: 40s
  controlPlaneComponentHealthCheck: 40s
  kubeletHealthCheck: 40s
nodeRegistration:
  name: {name}
  kubeletExtraArgs:
  - name: node-ip
    value: {ip}
",
        ip = h.ip,
        name = h.name
    );
    if let Some(key) = cp {
        s.push_str(&format!(
            "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: {}\n    bindPort: 6443\n  certificateKey: \"{key}\"\n",
            h.ip
        ));
    }
    s
}

/// `kubeadm init --upload-certs` on `cp` with its kubelet running; returns (token, hash, key).
pub fn init(cp: &Host, endpoint: &str) -> (String, String, String) {
    cp.write("/etc/kubeforge/init.yaml", &init_config(cp, endpoint, ""));
    cp.start_kubelet();
    let o = cp.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--upload-certs",
    ]);
    assert!(
        o.status.success(),
        "init failed: {}\nkubelet log:\n{}",
        text(&o),
        cp.kubelet_log()
    );
    let out = stdout(&o);
    let token = word_after(&out, "--token");
    let hash = word_after(&out, "--discovery-token-ca-cert-hash");
    let key = word_after(&out, "--certificate-key");
    (token, hash, key)
}

pub fn word_after(text: &str, flag: &str) -> String {
    let mut it = text.split_whitespace();
    while let Some(w) = it.next() {
        if w == flag {
            return it.next().unwrap_or_default().to_string();
        }
    }
    panic!("no {flag} in:\n{text}")
}
