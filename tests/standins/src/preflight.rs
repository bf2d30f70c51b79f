//! kubeadm's preflight checks, named and worded as kubeadm names and words them.

use crate::env::{Env, Version};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

/// One check: its name (what `--ignore-preflight-errors` takes) and its outcome.
pub struct Outcome {
    pub name: String,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

fn ok(name: impl Into<String>) -> Outcome {
    Outcome {
        name: name.into(),
        warnings: vec![],
        errors: vec![],
    }
}

fn err(name: impl Into<String>, e: impl Into<String>) -> Outcome {
    Outcome {
        name: name.into(),
        warnings: vec![],
        errors: vec![e.into()],
    }
}

fn warn(name: impl Into<String>, w: impl Into<String>) -> Outcome {
    Outcome {
        name: name.into(),
        warnings: vec![w.into()],
        errors: vec![],
    }
}

/// Prints warnings; on errors prints kubeadm's block and returns `Err("preflight checks failed")`.
pub fn run(checks: Vec<Outcome>, ignore: &[String]) -> Result<(), String> {
    let ignore: Vec<String> = ignore.iter().map(|s| s.to_lowercase()).collect();
    let all = ignore.iter().any(|s| s == "all");
    let mut errors = String::new();
    for mut c in checks {
        if all || ignore.contains(&c.name.to_lowercase()) {
            c.warnings.append(&mut c.errors);
        }
        for w in &c.warnings {
            eprintln!("\t[WARNING {}]: {w}", c.name);
        }
        for e in &c.errors {
            errors.push_str(&format!("\t[ERROR {}]: {e}\n", c.name));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    eprint!(
        "[preflight] Some fatal errors occurred:\n{errors}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n"
    );
    Err("preflight checks failed".into())
}

fn dashed(path: &str) -> String {
    path.replace('/', "-")
}

pub fn is_privileged() -> Outcome {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(String::from))
        })
        .unwrap_or_default();
    if uid == "0" {
        ok("IsPrivilegedUser")
    } else {
        err("IsPrivilegedUser", "user is not running as root")
    }
}

pub fn num_cpu(min: usize) -> Outcome {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n < min {
        err(
            "NumCPU",
            format!("the number of available CPUs {n} is less than the required {min}"),
        )
    } else {
        ok("NumCPU")
    }
}

pub fn mem(min_mb: u64) -> Outcome {
    let kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .unwrap_or(0);
    let mb = kb / 1024;
    if mb < min_mb {
        err(
            "Mem",
            format!("the system RAM ({mb} MB) is less than the minimum {min_mb} MB"),
        )
    } else {
        ok("Mem")
    }
}

pub fn kubernetes_version(k8s: &str, kubeadm: Version) -> Outcome {
    match Version::parse(k8s) {
        Some(v) if v.major == kubeadm.major && v.minor > kubeadm.minor => warn(
            "KubernetesVersion",
            format!(
                "Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {}. Kubeadm version: {}.{}.x",
                k8s.trim_start_matches('v'),
                kubeadm.major,
                kubeadm.minor
            ),
        ),
        _ => ok("KubernetesVersion"),
    }
}

pub fn port(env: &Env, port: u16) -> Outcome {
    let name = format!("Port-{port}");
    match TcpListener::bind(SocketAddr::new(env.bind_ip(), port)) {
        Ok(_) => ok(name),
        Err(_) => err(name, format!("Port {port} is in use")),
    }
}

pub fn file_available(env: &Env, path: &str) -> Outcome {
    let name = format!("FileAvailable-{}", dashed(path));
    if env.path(path).exists() {
        err(name, format!("{path} already exists"))
    } else {
        ok(name)
    }
}

pub fn dir_available(env: &Env, path: &str) -> Outcome {
    let name = format!("DirAvailable-{}", dashed(path));
    let p = env.path(path);
    match std::fs::read_dir(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ok(name),
        Err(e) => err(name, format!("unable to check if {path} is empty: {e}")),
        Ok(mut d) => {
            if d.next().is_some() {
                err(name, format!("{path} is not empty"))
            } else {
                ok(name)
            }
        }
    }
}

pub fn file_content(env: &Env, path: &str, content: &str) -> Outcome {
    let name = format!("FileContent-{}", dashed(path));
    match std::fs::read(env.path(path)) {
        Err(_) => err(name, format!("{path} does not exist")),
        Ok(b) => {
            if b.starts_with(content.as_bytes()) {
                ok(name)
            } else {
                err(name, format!("{path} contents are not set to {content}"))
            }
        }
    }
}

/// The container runtime answers on its socket.
pub fn cri(env: &Env, endpoint: &str) -> Outcome {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    match std::os::unix::net::UnixStream::connect(env.path(path)) {
        Ok(_) => ok("CRI"),
        Err(e) => err(
            "CRI",
            format!(
                "could not connect to the container runtime: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: {}\"",
                crate::util_io_text(&e)
            ),
        ),
    }
}

pub fn swap(env: &Env) -> Outcome {
    match std::fs::read_to_string(env.path("/proc/swaps")) {
        Ok(s) if s.lines().count() > 1 => warn(
            "Swap",
            "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node",
        ),
        _ => ok("Swap"),
    }
}

fn in_path(exe: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(exe);
            f.is_file()
        })
    })
}

/// The IPv4 checks: `ip_forward`, and before kubeadm 1.30 (kubernetes/kubernetes#123464)
/// `bridge-nf-call-iptables` too.
pub fn ipv4_checks(env: &Env) -> Vec<Outcome> {
    let mut out = Vec::new();
    if env.version.minor < 30 {
        out.push(file_content(
            env,
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
            "1",
        ));
    }
    out.push(file_content(env, "/proc/sys/net/ipv4/ip_forward", "1"));
    out
}

/// Programs kubeadm wants in PATH; `conntrack` only for a control-plane version older than
/// 1.32 (`k8s` is empty for joins, as in kubeadm).
pub fn exec_checks(k8s: Option<&str>) -> Vec<Outcome> {
    let mut out = Vec::new();
    if k8s
        .and_then(Version::parse)
        .is_some_and(|v| v.major == 1 && v.minor < 32)
    {
        out.push(if in_path("conntrack") {
            ok("FileExisting-conntrack")
        } else {
            err(
                "FileExisting-conntrack",
                "conntrack not found in system path",
            )
        });
    }
    for (exe, mandatory) in [
        ("ip", true),
        ("iptables", true),
        ("mount", true),
        ("nsenter", true),
        ("ebtables", false),
        ("ethtool", false),
        ("socat", false),
        ("tc", false),
        ("touch", false),
    ] {
        let name = format!("FileExisting-{exe}");
        out.push(if in_path(exe) {
            ok(name)
        } else if mandatory {
            err(name, format!("{exe} not found in system path"))
        } else {
            warn(name, format!("{exe} not found in system path"))
        });
    }
    out
}

pub fn hostname(name: &str) -> Outcome {
    use std::net::ToSocketAddrs;
    if (name, 0u16)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some())
    {
        ok("Hostname")
    } else {
        warn(
            "Hostname",
            format!("hostname \"{name}\" could not be reached"),
        )
    }
}

pub fn kubelet_version(k8s: Option<&str>) -> Outcome {
    let name = "KubeletVersion";
    let out = std::process::Command::new("kubelet")
        .arg("--version")
        .output();
    let text = match out {
        Err(_) => {
            return err(
                name,
                "couldn't get kubelet version: cannot execute 'kubelet --version': exec: \"kubelet\": executable file not found in $PATH",
            );
        }
        Ok(o) => String::from_utf8_lossy(&o.stdout).to_string(),
    };
    let Some(kv) = text.split_whitespace().nth(1).and_then(Version::parse) else {
        return err(
            name,
            format!(
                "couldn't get kubelet version: couldn't parse kubelet version \"{}\"",
                text.trim()
            ),
        );
    };
    if let Some(k) = k8s.and_then(Version::parse)
        && (kv.major > k.major || kv.minor > k.minor)
    {
        return err(
            name,
            format!(
                "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{}\" Control plane version: \"{}\"",
                kv.to_string().trim_start_matches('v'),
                k.to_string().trim_start_matches('v')
            ),
        );
    }
    ok(name)
}

pub fn service_kubelet(env: &Env) -> Outcome {
    let name = "Service-Kubelet";
    if env.no_systemd {
        return ok(name);
    }
    match std::process::Command::new("systemctl")
        .args(["is-enabled", "kubelet.service"])
        .output()
    {
        Ok(o) if o.status.success() => ok(name),
        Ok(_) => warn(
            name,
            "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
        ),
        Err(_) => warn(
            name,
            "no supported init system detected, skipping checking for services",
        ),
    }
}

/// Images present in containerd's `k8s.io` namespace, through `ctr`.
pub fn containerd_images(env: &Env, endpoint: &str) -> Result<Vec<String>, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    let sock = env.path(path);
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&sock)
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .map_err(|e| format!("cannot execute 'ctr': {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ctr images ls failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `ImagePull`: every image must be present (the lab has no registry, so a pull fails).
pub fn image_pull(env: &Env, endpoint: &str, images: &[String], policy: &str) -> Outcome {
    let name = "ImagePull";
    if policy == "Never" {
        return ok(name);
    }
    let have = match containerd_images(env, endpoint) {
        Ok(h) => h,
        Err(e) => return err(name, e),
    };
    let mut o = ok(name);
    for img in images {
        if policy == "Always" || !have.contains(img) {
            let (repo, tag) = img.rsplit_once(':').unwrap_or((img, "latest"));
            let (host, path) = repo.split_once('/').unwrap_or(("docker.io", repo));
            o.errors.push(format!(
                "failed to pull image {img}: failed to pull image {img}: rpc error: code = Unknown desc = failed to pull and unpack image \"{img}\": failed to resolve reference \"{img}\": failed to do request: Head \"https://{host}/v2/{path}/manifests/{tag}\": dial tcp: lookup {host}: no such host"
            ));
        }
    }
    o
}

/// Whether a path exists under the host root.
pub fn exists(env: &Env, p: &str) -> bool {
    env.path(Path::new(p)).exists()
}
