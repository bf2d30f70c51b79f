//! The `kubeadm` stand-in: `version`, `config images list`, `init` (and its `preflight` and
//! `upload-certs` phases), `token create`, `join` and `reset`, acting on the host's files and
//! the shared cluster state.

use crate::api::{self, ConfigFile};
use crate::env::Env;
use crate::flags::{self, Flag, Parsed, b, v};
use crate::net::{self, Verify};
use crate::pki;
use crate::preflight;
use crate::state::{self, BootstrapToken, EtcdMember, Store, Taint, UploadedCerts};
use crate::util;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const STACK_HINT: &str = "To see the stack trace of this error execute with --v=5 or higher";
const KUBERNETES_DIR: &str = "/etc/kubernetes";
pub(crate) const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub(crate) const CP_LABEL: &str = "node-role.kubernetes.io/control-plane";
const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const FAULT_HOOK: &str = "/etc/kubeforge-standin/fail-join-after-certs";

/// An error and where it happened: `phase` is printed as `error execution phase PHASE: `.
pub(crate) struct Fail {
    phase: Option<String>,
    msg: String,
}

pub(crate) fn phase_err(phase: &str, msg: impl Into<String>) -> Fail {
    Fail {
        phase: Some(phase.into()),
        msg: msg.into(),
    }
}

pub(crate) fn plain(msg: impl Into<String>) -> Fail {
    Fail {
        phase: None,
        msg: msg.into(),
    }
}

pub(crate) type R<T> = Result<T, Fail>;

const GLOBAL: &[Flag] = &[
    v("v").short('v'),
    v("rootfs"),
    b("help").short('h'),
    b("add-dir-header"),
    v("log-file"),
    b("skip-headers"),
];

fn with_global(local: &[Flag]) -> Vec<Flag> {
    let mut f = local.to_vec();
    f.extend_from_slice(GLOBAL);
    f
}

pub(crate) fn help(cmd: &str) -> i32 {
    println!(
        "{}: kubeadm (simulates kubeadm {} for kubeforge's tests; proves nothing about the real kubeadm)",
        crate::HELP_FIRST_LINE,
        crate::built_version()
    );
    println!();
    println!("Usage:\n  {cmd} [flags]");
    0
}

/// Runs `kubeadm ARGS...`; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let env = Env::from_env();
    let store = Store::new(&env);
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    store.log_command(&env, "kubeadm", &argv);
    let k = Kubeadm { env, store };
    let result = k.dispatch(&args);
    match result {
        Ok(code) => code,
        Err(f) => {
            match f.phase {
                Some(p) => eprintln!("error execution phase {p}: {}", f.msg),
                None => eprintln!("{}", f.msg),
            }
            eprintln!("{STACK_HINT}");
            1
        }
    }
}

pub(crate) struct Kubeadm {
    pub(crate) env: Env,
    pub(crate) store: Store,
}

/// Splits leading sub-command words from flags and arguments.
fn words(args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut w = Vec::new();
    let mut i = 0;
    while i < args.len() && !args[i].starts_with('-') {
        w.push(args[i].clone());
        i += 1;
    }
    (w, args[i..].to_vec())
}

pub(crate) fn parse(rest: &[String], local: &[Flag]) -> R<Parsed> {
    flags::parse(rest, &with_global(local)).map_err(plain)
}

pub(crate) fn unknown(word: &str, parent: &str) -> Fail {
    plain(format!("unknown command \"{word}\" for \"{parent}\""))
}

/// `can not mix '--config' with arguments [...]`, as kubeadm's ValidateMixedArguments.
fn mixed(p: &Parsed) -> R<()> {
    if !p.has("config") {
        return Ok(());
    }
    const ALLOWED: &[&str] = &[
        "config",
        "ignore-preflight-errors",
        "dry-run",
        "kubeconfig",
        "node-name",
        "kubeconfig-dir",
        "upload-certs",
        "print-manifest",
        "feature-gates",
        "print-join-command",
        "rootfs",
        "v",
        "log-file",
        "yes",
    ];
    let mut bad: Vec<&str> = p
        .values
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !ALLOWED.contains(k) && !k.starts_with("skip-"))
        .collect();
    bad.sort();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(plain(format!(
            "can not mix '--config' with arguments [{}]",
            bad.join(" ")
        )))
    }
}

fn read_config(env: &Env, p: &Parsed, wanted: &[&str]) -> R<ConfigFile> {
    let Some(path) = p.get("config") else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(env.path(path)).map_err(|e| {
        plain(format!(
            "unable to read config from \"{path}\" : open {path}: {}",
            crate::util_io_text(&e)
        ))
    })?;
    let f = api::load(env, &text, wanted).map_err(plain)?;
    for w in &f.warnings {
        eprintln!("{w}");
    }
    Ok(f)
}

impl Kubeadm {
    fn dispatch(&self, args: &[String]) -> R<i32> {
        let (w, rest) = words(args);
        let w: Vec<&str> = w.iter().map(|s| s.as_str()).collect();
        if rest.iter().any(|a| a == "-h" || a == "--help") || w.first() == Some(&"help") {
            return Ok(help(&format!("kubeadm {}", w.join(" "))));
        }
        match w.as_slice() {
            [] => {
                if rest.is_empty() {
                    return Ok(help("kubeadm"));
                }
                parse(&rest, &[])?;
                Ok(help("kubeadm"))
            }
            ["version", extra @ ..] => {
                let p = parse(&rest, &[v("output").short('o')])?;
                if let Some(a) = extra.first() {
                    return Err(unknown(a, "kubeadm version"));
                }
                self.version(&p)
            }
            ["config", "images", "list", extra @ ..] => {
                if let Some(a) = extra.first() {
                    return Err(unknown(a, "kubeadm config images list"));
                }
                let p = parse(
                    &rest,
                    &[
                        v("config"),
                        v("kubernetes-version"),
                        v("image-repository"),
                        v("feature-gates"),
                        v("output").short('o'),
                        b("allow-missing-template-keys"),
                        b("show-managed-fields"),
                    ],
                )?;
                self.images_list(&p)
            }
            ["config", "images"] | ["config"] => Ok(help("kubeadm config")),
            ["config", "images", x, ..] => Err(unknown(x, "kubeadm config images")),
            ["config", x, ..] => Err(unknown(x, "kubeadm config")),
            ["init", "phase", "upload-certs", extra @ ..] => {
                if let Some(a) = extra.first() {
                    return Err(unknown(a, "kubeadm init phase upload-certs"));
                }
                let p = parse(
                    &rest,
                    &[
                        b("upload-certs"),
                        v("certificate-key"),
                        v("config"),
                        v("kubeconfig"),
                        b("skip-certificate-key-print"),
                        b("dry-run"),
                    ],
                )?;
                self.phase_upload_certs(&p)
            }
            ["init", "phase", "preflight", extra @ ..] => {
                if let Some(a) = extra.first() {
                    return Err(unknown(a, "kubeadm init phase preflight"));
                }
                let p = parse(
                    &rest,
                    &[
                        v("config"),
                        v("ignore-preflight-errors"),
                        b("dry-run"),
                        v("cri-socket"),
                    ],
                )?;
                mixed(&p)?;
                let mut f = read_config(
                    &self.env,
                    &p,
                    &["InitConfiguration", "ClusterConfiguration"],
                )?;
                let mut warnings = std::mem::take(&mut f.warnings);
                let init = api::init(&self.env, &f, &mut warnings).map_err(plain)?;
                for w in warnings {
                    eprintln!("{w}");
                }
                println!("[preflight] Running pre-flight checks");
                self.init_preflight(&init, &p)
                    .map_err(|e| phase_err("preflight", e))?;
                Ok(0)
            }
            ["init", "phase", x, ..] => Err(unknown(x, "kubeadm init phase")),
            ["init", "phase"] => Ok(help("kubeadm init phase")),
            ["init", extra @ ..] => {
                let p = parse(&rest, INIT_FLAGS)?;
                if let Some(a) = extra
                    .first()
                    .copied()
                    .or(p.args.first().map(|s| s.as_str()))
                {
                    return Err(unknown(a, "kubeadm init"));
                }
                self.init(&p)
            }
            ["join", extra @ ..] => {
                let p = parse(&rest, JOIN_FLAGS)?;
                if let Some(a) = extra
                    .first()
                    .copied()
                    .or(p.args.first().map(|s| s.as_str()))
                {
                    return Err(plain(format!(
                        "join does not accept the API server endpoint {a:?} as an argument with --config in this stand-in"
                    )));
                }
                self.join(&p)
            }
            ["token", "create", extra @ ..] => {
                let p = parse(
                    &rest,
                    &[
                        b("print-join-command"),
                        v("ttl"),
                        v("kubeconfig"),
                        v("config"),
                        v("certificate-key"),
                        v("description"),
                        v("groups"),
                        v("usages"),
                        b("dry-run"),
                    ],
                )?;
                let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
                args.extend(p.args.iter().cloned());
                self.token_create(&p, args.first().map(|s| s.as_str()))
            }
            ["upgrade", cmd @ ("plan" | "apply" | "node"), extra @ ..] => {
                crate::upgrade::run(self, cmd, extra, &rest)
            }
            ["upgrade"] => Ok(help("kubeadm upgrade")),
            ["upgrade", x, ..] => Err(unknown(x, "kubeadm upgrade")),
            ["certs", extra @ ..] => crate::certs::run(self, extra, &rest),
            ["token"] => Ok(help("kubeadm token")),
            ["token", x, ..] => Err(unknown(x, "kubeadm token")),
            ["reset", extra @ ..] => {
                let p = parse(
                    &rest,
                    &[
                        b("force").short('f'),
                        v("cri-socket"),
                        b("cleanup-tmp-dir"),
                        v("config"),
                        v("ignore-preflight-errors"),
                        v("cert-dir"),
                        v("kubeconfig"),
                        v("skip-phases"),
                        b("dry-run"),
                    ],
                )?;
                if let Some(a) = extra
                    .first()
                    .copied()
                    .or(p.args.first().map(|s| s.as_str()))
                {
                    return Err(unknown(a, "kubeadm reset"));
                }
                self.reset(&p)
            }
            [x, ..] => Err(unknown(x, "kubeadm")),
        }
    }

    fn version(&self, p: &Parsed) -> R<i32> {
        let ver = self.env.version;
        match p.get("output").unwrap_or("") {
            "short" => println!("{ver}"),
            "json" => println!(
                "{}",
                serde_json::to_string_pretty(&json!({"clientVersion": version_info(&self.env)}))
                    .unwrap_or_default()
            ),
            "yaml" => print!(
                "{}",
                pki::to_yaml(&json!({"clientVersion": version_info(&self.env)}))
            ),
            "" => println!(
                "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", EmulationMajor:\"\", EmulationMinor:\"\", MinCompatibilityMajor:\"\", MinCompatibilityMinor:\"\", GitVersion:\"{ver}\", GitCommit:\"0000000000000000000000000000000000000000\", GitTreeState:\"clean\", BuildDate:\"1970-01-01T00:00:00Z\", GoVersion:\"go1.24.9\", Compiler:\"gc\", Platform:\"linux/amd64\"}}",
                ver.major, ver.minor
            ),
            o => return Err(plain(format!("invalid output format: {o}"))),
        }
        Ok(0)
    }

    fn images_list(&self, p: &Parsed) -> R<i32> {
        let f = read_config(&self.env, p, &["InitConfiguration", "ClusterConfiguration"])?;
        if p.has("config") && (p.has("kubernetes-version") || p.has("image-repository")) {
            mixed(p)?;
        }
        let mut doc = f.cluster.clone().unwrap_or_else(|| json!({}));
        if let Some(kv) = p.get("kubernetes-version") {
            doc["kubernetesVersion"] = json!(kv);
        } else if doc.get("kubernetesVersion").is_none() {
            doc["kubernetesVersion"] = json!(self.env.version.to_string());
        }
        if let Some(r) = p.get("image-repository") {
            doc["imageRepository"] = json!(r);
        }
        let c = api::Cluster::from(&self.env, Some(&doc), &mut vec![]);
        for i in c.images() {
            println!("{i}");
        }
        Ok(0)
    }

    /// The init checks of a first control plane.
    fn init_preflight(&self, init: &api::Init, p: &Parsed) -> Result<(), String> {
        let env = &self.env;
        let mut ignore = init.node.ignore_preflight_errors.clone();
        ignore.extend(p.list("ignore-preflight-errors"));
        preflight::run(vec![preflight::is_privileged()], &ignore)?;
        let mut checks = vec![
            preflight::num_cpu(2),
            preflight::mem(1700),
            preflight::kubernetes_version(&init.cluster.kubernetes_version, env.version),
            preflight::port(env, init.bind_port),
            preflight::port(env, 10259),
            preflight::port(env, 10257),
        ];
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ] {
            checks.push(preflight::file_available(
                env,
                &format!("{MANIFESTS}/{c}.yaml"),
            ));
        }
        checks.push(preflight::cri(env, &init.node.cri_socket));
        checks.push(preflight::swap(env));
        checks.extend(preflight::exec_checks(Some(
            &init.cluster.kubernetes_version,
        )));
        checks.push(preflight::hostname(&init.node.name));
        checks.push(preflight::kubelet_version(Some(
            &init.cluster.kubernetes_version,
        )));
        checks.push(preflight::service_kubelet(env));
        checks.push(preflight::port(env, 10250));
        if init
            .advertise_address
            .parse::<IpAddr>()
            .is_ok_and(|i| i.is_ipv4())
            || !init.cluster.pod_subnet.contains(':')
        {
            checks.extend(preflight::ipv4_checks(env));
        }
        checks.push(preflight::port(env, 2379));
        checks.push(preflight::port(env, 2380));
        checks.push(preflight::dir_available(env, &init.cluster.etcd_data_dir));
        preflight::run(checks, &ignore)?;
        println!("[preflight] Pulling images required for setting up a Kubernetes cluster");
        println!(
            "[preflight] This might take a minute or two, depending on the speed of your internet connection"
        );
        println!(
            "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
        );
        preflight::run(
            vec![preflight::image_pull(
                env,
                &init.node.cri_socket,
                &init.cluster.images(),
                &init.node.image_pull_policy,
            )],
            &ignore,
        )
    }

    fn init(&self, p: &Parsed) -> R<i32> {
        mixed(p)?;
        let env = &self.env;
        let mut f = read_config(env, p, &["InitConfiguration", "ClusterConfiguration"])?;
        flags_into_config(p, &mut f);
        let mut warnings = std::mem::take(&mut f.warnings);
        let mut init = api::init(env, &f, &mut warnings).map_err(plain)?;
        if let Some(n) = p.get("node-name") {
            init.node.name = n.to_string();
        }
        for w in warnings {
            eprintln!("{w}");
        }
        let skip_token_print = p.flag("skip-token-print");
        let skip_key_print = p.flag("skip-certificate-key-print");
        let mut skip = init.skip_phases.clone();
        skip.extend(p.list("skip-phases"));
        let skipped = |ph: &str| {
            skip.iter().any(|s| {
                s == ph
                    || ph.starts_with(&format!("{s}/"))
                    || (s == "addon" && ph.starts_with("addon"))
            })
        };
        let advertise: IpAddr = match init.advertise_address.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return Err(plain(no_advertise_address()));
            }
        };
        println!(
            "[init] Using Kubernetes version: {}",
            init.cluster.kubernetes_version
        );
        if !skipped("preflight") {
            println!("[preflight] Running pre-flight checks");
            self.init_preflight(&init, p)
                .map_err(|e| phase_err("preflight", e))?;
        }
        let cluster = &init.cluster;
        let cert_dir = env.path(&cluster.certificates_dir);
        let endpoint = if cluster.control_plane_endpoint.is_empty() {
            format!("{advertise}:{}", init.bind_port)
        } else {
            let (h, port) = api::split_host_port(&cluster.control_plane_endpoint);
            format!("{h}:{port}")
        };
        // certs
        println!(
            "[certs] Using certificateDir folder \"{}\"",
            cluster.certificates_dir
        );
        let mut lines = Vec::new();
        // As kubeadm: a CA (or the service-account key) whose files are in place already is
        // used, not made again (a restore, or certificates made elsewhere).
        let existing: std::collections::BTreeMap<String, String> = pki::SHARED_FILES
            .iter()
            .filter_map(|f| {
                Some((
                    f.to_string(),
                    std::fs::read_to_string(cert_dir.join(f)).ok()?,
                ))
            })
            .collect();
        let ca = pki::write_control_plane_pki(
            &cert_dir,
            Some(&existing),
            &pki::NodeCerts {
                node_name: &init.node.name,
                advertise,
                endpoint_host: cluster.endpoint_host(),
                service_ip: cluster.service_ip(),
                dns_domain: &cluster.dns_domain,
                cert_sans: &cluster.cert_sans,
            },
            &mut lines,
        )
        .map_err(|e| phase_err("certs", e))?;
        for l in lines {
            println!("{l}");
        }
        let ca_hash = pki::ca_hash(&ca.cert).map_err(|e| phase_err("certs", e))?;
        // kubeconfig
        println!("[kubeconfig] Using kubeconfig folder \"{KUBERNETES_DIR}\"");
        let local = format!("https://{}", host_port(advertise, init.bind_port));
        let server = format!("https://{endpoint}");
        for (file, user, orgs, srv) in [
            (
                "admin.conf",
                "kubernetes-admin".to_string(),
                vec!["kubeadm:cluster-admins"],
                &server,
            ),
            (
                "super-admin.conf",
                "kubernetes-super-admin".to_string(),
                vec!["system:masters"],
                &server,
            ),
            (
                "kubelet.conf",
                format!("system:node:{}", init.node.name),
                vec!["system:nodes"],
                &server,
            ),
            (
                "controller-manager.conf",
                "system:kube-controller-manager".to_string(),
                vec![],
                &local,
            ),
            (
                "scheduler.conf",
                "system:kube-scheduler".to_string(),
                vec![],
                &local,
            ),
        ] {
            println!("[kubeconfig] Writing \"{file}\" kubeconfig file");
            self.write_kubeconfig(file, srv, &ca, &user, &orgs)
                .map_err(|e| phase_err("kubeconfig", e))?;
        }
        // etcd: the first member; this creates the cluster's "etcd", i.e. the cluster.
        println!("[etcd] Creating static Pod manifest for local etcd in \"{MANIFESTS}\"");
        let member = EtcdMember {
            id: member_id(),
            name: init.node.name.clone(),
            peer_urls: vec![format!("https://{}", host_port(advertise, 2380))],
            client_urls: vec![format!("https://{}", host_port(advertise, 2379))],
        };
        // A data directory `etcdctl snapshot restore` made: etcd starts as its one member,
        // with the snapshot's objects (it must be this node's member, as etcd checks).
        let restored = match crate::etcdctl::restored(env, &cluster.etcd_data_dir) {
            None => None,
            Some(Err(e)) => return Err(phase_err("etcd", e)),
            Some(Ok(r)) => {
                let theirs = r.etcd_members.first();
                if theirs.map(|m| (&m.name, &m.peer_urls))
                    != Some((&member.name, &member.peer_urls))
                {
                    return Err(phase_err(
                        "wait-control-plane",
                        format!(
                            "etcd does not start: {} holds member {:?} at {:?}, and this node is {} at {:?}",
                            cluster.etcd_data_dir,
                            theirs.map(|m| m.name.as_str()).unwrap_or_default(),
                            theirs.map(|m| m.peer_urls.clone()).unwrap_or_default(),
                            member.name,
                            member.peer_urls
                        ),
                    ));
                }
                Some(r)
            }
        };
        let cluster_doc = cluster.doc.clone();
        let kubelet_cfg = api::kubelet_config(cluster, init.kubelet.as_ref());
        let host = env.host_label();
        let cpe = endpoint.clone();
        let kv = cluster.kubernetes_version.clone();
        let (ca_cert, ca_key) = (ca.cert.clone(), ca.key.clone());
        let m2 = member.clone();
        self.store
            .update(move |s| {
                s.clusters.retain(|c| c.ca_hash != ca_hash);
                let base = restored.unwrap_or_else(|| state::Cluster {
                    created: util::now(),
                    cluster_configuration: Value::Null,
                    kubelet_configuration: Value::Null,
                    ..Default::default()
                });
                s.clusters.push(state::Cluster {
                    ca_hash: ca_hash.clone(),
                    ca_cert,
                    ca_key,
                    init_host: host,
                    control_plane_endpoint: cpe,
                    kubernetes_version: kv,
                    etcd_members: vec![m2],
                    ..base
                });
            })
            .map_err(|e| phase_err("etcd", e.to_string()))?;
        let initial_cluster = format!("{}={}", member.name, member.peer_urls[0]);
        self.write_manifests(
            &init.node.name,
            advertise,
            init.bind_port,
            cluster,
            Some((&initial_cluster, "new")),
        )
        .map_err(|e| phase_err("control-plane", e))?;
        std::fs::create_dir_all(env.path(&cluster.etcd_data_dir).join("member"))
            .map_err(|e| phase_err("etcd", e.to_string()))?;
        // kubelet-start
        self.kubelet_start(&init.node, &kubelet_cfg)
            .map_err(|e| phase_err("kubelet-start", e))?;
        // wait-control-plane
        if !skipped("wait-control-plane") {
            self.wait_kubelet(init.kubelet_timeout)
                .map_err(|e| phase_err("wait-control-plane", e))?;
            self.wait_control_plane(advertise, init.bind_port, &ca.cert, init.cp_timeout)
                .map_err(|e| phase_err("wait-control-plane", e))?;
        }
        let hash = pki::ca_hash(&ca.cert).map_err(plain)?;
        // upload-config
        println!(
            "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace"
        );
        println!(
            "[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster"
        );
        let (cd, kc) = (cluster_doc.clone(), kubelet_cfg.clone());
        let h2 = hash.clone();
        self.store
            .update(move |s| {
                if let Some(c) = s.cluster_mut(&h2) {
                    c.cluster_configuration = cd;
                    c.kubelet_configuration = kc;
                }
            })
            .map_err(|e| phase_err("upload-config", e.to_string()))?;
        // upload-certs
        let mut cert_key = None;
        if p.flag("upload-certs") && !skipped("upload-certs") {
            let key = init
                .certificate_key
                .clone()
                .unwrap_or_else(|| util::hex(&util::random_bytes(32)));
            self.upload_certs(&hash, &cert_dir, &key)
                .map_err(|e| phase_err("upload-certs", e))?;
            if !skip_key_print {
                println!("[upload-certs] Using certificate key:\n{key}");
            }
            cert_key = Some(key);
        } else {
            println!("[upload-certs] Skipping phase. Please see --upload-certs");
        }
        // mark-control-plane
        let taints = init.node.taints.clone().unwrap_or_else(|| {
            vec![Taint {
                key: CP_LABEL.into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            }]
        });
        self.mark_control_plane(&hash, &init.node.name, &taints, init.cp_timeout)
            .map_err(|e| phase_err("mark-control-plane", e))?;
        // bootstrap-token
        let mut first_token = String::new();
        let mut new_tokens = Vec::new();
        for t in &init.tokens {
            let tok = t.token.clone().unwrap_or_else(generate_token);
            if first_token.is_empty() {
                first_token = tok.clone();
            }
            let (id, secret) = tok.split_once('.').unwrap_or_default();
            new_tokens.push(BootstrapToken {
                id: id.into(),
                secret: secret.into(),
                expires: if t.ttl.is_zero() {
                    None
                } else {
                    Some(util::now() + t.ttl.as_secs() as i64)
                },
                usages: t.usages.clone(),
                groups: t.groups.clone(),
                description: t.description.clone(),
                deleted: false,
            });
        }
        if !skip_token_print {
            println!("[bootstrap-token] Using token: {first_token}");
        }
        println!(
            "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles"
        );
        println!(
            "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes"
        );
        println!(
            "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials"
        );
        println!(
            "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token"
        );
        println!(
            "[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster"
        );
        println!(
            "[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace"
        );
        let h3 = hash.clone();
        self.store
            .update(move |s| {
                if let Some(c) = s.cluster_mut(&h3) {
                    for t in new_tokens {
                        c.bootstrap_tokens.retain(|x| x.id != t.id);
                        c.bootstrap_tokens.push(t);
                    }
                }
            })
            .map_err(|e| phase_err("bootstrap-token", e.to_string()))?;
        // kubelet-finalize
        println!(
            "[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key"
        );
        self.kubelet_finalize(&server, &ca, &init.node.name)
            .map_err(|e| phase_err("kubelet-finalize", e))?;
        // addons
        let mut addons = Vec::new();
        if !skipped("addon/coredns") && !cluster.dns_disabled {
            println!("[addons] Applied essential addon: CoreDNS");
            addons.push("coredns");
        }
        if !skipped("addon/kube-proxy") && !cluster.proxy_disabled {
            println!("[addons] Applied essential addon: kube-proxy");
            addons.push("kube-proxy");
        }
        let h4 = hash.clone();
        let images = crate::upgrade::addon_images(cluster);
        self.store
            .update(move |s| {
                if let Some(c) = s.cluster_mut(&h4) {
                    for a in addons {
                        c.addons.push(a.to_string());
                        let (kind, image) = if a == "coredns" {
                            ("Deployment", &images.0)
                        } else {
                            ("DaemonSet", &images.1)
                        };
                        c.manifests.push(state::ManifestRecord {
                            api_version: "apps/v1".into(),
                            kind: kind.into(),
                            name: a.into(),
                            namespace: "kube-system".into(),
                            digest: String::new(),
                            object: crate::upgrade::addon_object(kind, a, image),
                            managers: Vec::new(),
                        });
                    }
                }
            })
            .map_err(|e| phase_err("addon", e.to_string()))?;
        if skipped("show-join-command") {
            return Ok(0);
        }
        // As kubeadm's join command template: a skipped value is withheld, not left out.
        let shown_token = if skip_token_print {
            WITHHELD
        } else {
            first_token.as_str()
        };
        let join = format!(
            "kubeadm join {endpoint} --token {shown_token} \\\n\t--discovery-token-ca-cert-hash {hash}"
        );
        println!("\nYour Kubernetes control-plane has initialized successfully!\n");
        println!("To start using your cluster, you need to run the following as a regular user:\n");
        println!("  mkdir -p $HOME/.kube");
        println!("  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config");
        println!("  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n");
        println!("Alternatively, if you are the root user, you can run:\n");
        println!("  export KUBECONFIG=/etc/kubernetes/admin.conf\n");
        println!("You should now deploy a pod network to the cluster.");
        println!("Run \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:");
        println!("  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n");
        if let Some(key) = &cert_key {
            let key = if skip_key_print {
                WITHHELD
            } else {
                key.as_str()
            };
            println!(
                "You can now join any number of control-plane nodes running the following command on each as root:\n"
            );
            println!("  {} \\\n\t--control-plane --certificate-key {key}\n", join);
            println!(
                "Please note that the certificate-key gives access to cluster sensitive data, keep it secret!"
            );
            println!(
                "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use"
            );
            println!(
                "\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n"
            );
        } else {
            println!(
                "You can now join any number of control-plane nodes by copying certificate authorities"
            );
            println!(
                "and service account keys on each node and then running the following as root:\n"
            );
            println!("  {join} \\\n\t--control-plane\n");
        }
        println!(
            "Then you can join any number of worker nodes by running the following on each as root:\n"
        );
        println!("{join}");
        Ok(0)
    }

    fn write_kubeconfig(
        &self,
        file: &str,
        server: &str,
        ca: &pki::Pair,
        user: &str,
        orgs: &[&str],
    ) -> Result<(), String> {
        let client = pki::issue(
            ca,
            &pki::Leaf {
                cn: user,
                orgs,
                server: false,
                client: true,
                dns: vec![],
                ips: vec![],
            },
        )?;
        let text = pki::kubeconfig(server, &ca.cert, user, Some(&client));
        util::write_atomic(
            &self.env.path(format!("{KUBERNETES_DIR}/{file}")),
            text.as_bytes(),
            0o600,
        )
        .map_err(|e| e.to_string())
    }

    /// Static pod manifests: etcd when `etcd` is given (initial cluster, state), and the three
    /// control-plane components.
    fn write_manifests(
        &self,
        node: &str,
        advertise: IpAddr,
        port: u16,
        c: &api::Cluster,
        etcd: Option<(&str, &str)>,
    ) -> Result<(), String> {
        let dir = self.env.path(MANIFESTS);
        let pki_dir = &c.certificates_dir;
        let img = |n: &str| format!("{}/{n}:{}", c.image_repository, c.kubernetes_version);
        let extra = |ptr: &str| -> Vec<String> {
            api::args_of(&c.doc, ptr)
                .into_iter()
                .map(|a| format!("--{}={}", a.name, a.value))
                .collect()
        };
        if let Some((initial, st)) = etcd {
            let mut cmd = vec![
                "etcd".to_string(),
                format!(
                    "--advertise-client-urls=https://{}",
                    host_port(advertise, 2379)
                ),
                format!("--cert-file={pki_dir}/etcd/server.crt"),
                "--client-cert-auth=true".into(),
                format!("--data-dir={}", c.etcd_data_dir),
                format!(
                    "--initial-advertise-peer-urls=https://{}",
                    host_port(advertise, 2380)
                ),
                format!("--initial-cluster={initial}"),
                format!("--initial-cluster-state={st}"),
                format!("--key-file={pki_dir}/etcd/server.key"),
                format!(
                    "--listen-client-urls=https://127.0.0.1:2379,https://{}",
                    host_port(advertise, 2379)
                ),
                format!("--listen-peer-urls=https://{}", host_port(advertise, 2380)),
                format!("--name={node}"),
                format!("--peer-cert-file={pki_dir}/etcd/peer.crt"),
                format!("--peer-key-file={pki_dir}/etcd/peer.key"),
                format!("--peer-trusted-ca-file={pki_dir}/etcd/ca.crt"),
                format!("--trusted-ca-file={pki_dir}/etcd/ca.crt"),
            ];
            cmd.extend(extra("/etcd/local/extraArgs"));
            let er = crate::yaml::s(&c.doc, "/etcd/local/imageRepository")
                .unwrap_or(&c.image_repository);
            write_pod(
                &dir,
                "etcd",
                &format!("{er}/etcd:{}", c.etcd_image_tag),
                cmd,
            )?;
        }
        println!("[control-plane] Using manifest folder \"{MANIFESTS}\"");
        let mut api_cmd = vec![
            "kube-apiserver".to_string(),
            format!("--advertise-address={advertise}"),
            "--allow-privileged=true".into(),
            "--authorization-mode=Node,RBAC".into(),
            format!("--client-ca-file={pki_dir}/ca.crt"),
            "--enable-bootstrap-token-auth=true".into(),
            format!("--etcd-cafile={pki_dir}/etcd/ca.crt"),
            format!("--etcd-certfile={pki_dir}/apiserver-etcd-client.crt"),
            format!("--etcd-keyfile={pki_dir}/apiserver-etcd-client.key"),
            "--etcd-servers=https://127.0.0.1:2379".into(),
            format!("--kubelet-client-certificate={pki_dir}/apiserver-kubelet-client.crt"),
            format!("--kubelet-client-key={pki_dir}/apiserver-kubelet-client.key"),
            format!("--secure-port={port}"),
            format!("--service-account-key-file={pki_dir}/sa.pub"),
            format!("--service-account-signing-key-file={pki_dir}/sa.key"),
            format!("--service-cluster-ip-range={}", c.service_subnet),
            format!("--tls-cert-file={pki_dir}/apiserver.crt"),
            format!("--tls-private-key-file={pki_dir}/apiserver.key"),
        ];
        api_cmd.extend(extra("/apiServer/extraArgs"));
        println!("[control-plane] Creating static Pod manifest for \"kube-apiserver\"");
        write_pod(&dir, "kube-apiserver", &img("kube-apiserver"), api_cmd)?;
        let mut cm = vec![
            "kube-controller-manager".to_string(),
            "--bind-address=127.0.0.1".into(),
            format!("--cluster-signing-cert-file={pki_dir}/ca.crt"),
            format!("--cluster-signing-key-file={pki_dir}/ca.key"),
            "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
            format!("--root-ca-file={pki_dir}/ca.crt"),
            format!("--service-account-private-key-file={pki_dir}/sa.key"),
            "--use-service-account-credentials=true".into(),
        ];
        if !c.pod_subnet.is_empty() {
            cm.push("--allocate-node-cidrs=true".into());
            cm.push(format!("--cluster-cidr={}", c.pod_subnet));
        }
        cm.extend(extra("/controllerManager/extraArgs"));
        println!("[control-plane] Creating static Pod manifest for \"kube-controller-manager\"");
        write_pod(
            &dir,
            "kube-controller-manager",
            &img("kube-controller-manager"),
            cm,
        )?;
        let mut sch = vec![
            "kube-scheduler".to_string(),
            "--bind-address=127.0.0.1".into(),
            "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
            "--leader-elect=true".into(),
        ];
        sch.extend(extra("/scheduler/extraArgs"));
        println!("[control-plane] Creating static Pod manifest for \"kube-scheduler\"");
        write_pod(&dir, "kube-scheduler", &img("kube-scheduler"), sch)
    }

    fn kubelet_start(&self, node: &api::NodeRegistration, cfg: &Value) -> Result<(), String> {
        let env = &self.env;
        println!(
            "[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\""
        );
        let mut flags = vec![format!("--container-runtime-endpoint={}", node.cri_socket)];
        if node.name != env.hostname.to_lowercase() {
            flags.push(format!("--hostname-override={}", node.name));
        }
        for a in &node.kubelet_extra_args {
            flags.retain(|f| !f.starts_with(&format!("--{}=", a.name)));
            flags.push(format!("--{}={}", a.name, a.value));
        }
        let text = format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" "));
        util::write_atomic(
            &env.path("/var/lib/kubelet/kubeadm-flags.env"),
            text.as_bytes(),
            0o644,
        )
        .map_err(|e| e.to_string())?;
        println!(
            "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\""
        );
        util::write_atomic(
            &env.path("/var/lib/kubelet/config.yaml"),
            pki::to_yaml(cfg).as_bytes(),
            0o644,
        )
        .map_err(|e| e.to_string())?;
        println!("[kubelet-start] Starting the kubelet");
        if !env.no_systemd {
            let st = std::process::Command::new("systemctl")
                .args(["restart", "kubelet"])
                .status()
                .map_err(|e| format!("failed to restart the kubelet: {e}"))?;
            if !st.success() {
                return Err(format!(
                    "failed to restart the kubelet: systemctl restart kubelet: {st}"
                ));
            }
        }
        Ok(())
    }

    fn wait_kubelet(&self, timeout: Duration) -> Result<(), String> {
        let addr = SocketAddr::new(self.env.local_ip(), 10248);
        println!(
            "[kubelet-check] Waiting for a healthy kubelet at http://{addr}/healthz. This can take up to {}",
            util::format_duration(timeout)
        );
        let start = Instant::now();
        loop {
            if let Some((200, _)) = net::http_get(addr, "/healthz", Duration::from_secs(2)) {
                println!(
                    "[kubelet-check] The kubelet is healthy after {}",
                    util::format_duration(
                        Duration::from_millis(start.elapsed().as_millis() as u64)
                    )
                );
                return Ok(());
            }
            if start.elapsed() > timeout {
                println!(
                    "[kubelet-check] The kubelet is not healthy after {}",
                    util::format_duration(timeout)
                );
                println!(
                    "\nUnfortunately, an error has occurred, likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\nIf you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'\n"
                );
                return Err(format!(
                    "The HTTP call equal to 'curl -sSL http://{addr}/healthz' returned error: Get \"http://{addr}/healthz\": dial tcp {addr}: connect: connection refused"
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn wait_control_plane(
        &self,
        advertise: IpAddr,
        port: u16,
        ca: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        println!(
            "[control-plane-check] Waiting for healthy control plane components. This can take up to {}",
            util::format_duration(timeout)
        );
        let api = format!("https://{}", host_port(advertise, port));
        let local = self.env.local_ip();
        println!("[control-plane-check] Checking kube-apiserver at {api}/livez");
        println!(
            "[control-plane-check] Checking kube-controller-manager at https://{}/healthz",
            host_port(local, 10257)
        );
        println!(
            "[control-plane-check] Checking kube-scheduler at https://{}/livez",
            host_port(local, 10259)
        );
        let start = Instant::now();
        let mut pending = vec![
            "kube-controller-manager",
            "kube-scheduler",
            "kube-apiserver",
        ];
        let mut last = String::new();
        while !pending.is_empty() {
            pending.retain(|c| {
                let healthy = match *c {
                    "kube-apiserver" => match net::https_get(&api, "/livez", Verify::Ca(ca), Duration::from_secs(2)) {
                        Ok((200, _, _)) => true,
                        Ok((s, b, _)) => {
                            last = format!("kube-apiserver check failed at {api}/livez: {s} {b}");
                            false
                        }
                        Err(e) => {
                            last = format!("kube-apiserver check failed at {api}/livez: Get \"{api}/livez?timeout=10s\": {e}");
                            false
                        }
                    },
                    other => {
                        let p = if other == "kube-scheduler" { 10259 } else { 10257 };
                        std::net::TcpStream::connect_timeout(&SocketAddr::new(local, p), Duration::from_secs(1)).is_ok()
                    }
                };
                if healthy {
                    println!(
                        "[control-plane-check] {c} is healthy after {}",
                        util::format_duration(Duration::from_millis(start.elapsed().as_millis() as u64))
                    );
                }
                !healthy
            });
            if pending.is_empty() {
                break;
            }
            if start.elapsed() > timeout {
                println!(
                    "\nA control plane component may have crashed or exited when started by the container runtime."
                );
                return Err(format!(
                    "failed while waiting for the control plane to start: {}",
                    if last.is_empty() {
                        format!(
                            "{} check failed: context deadline exceeded",
                            pending.join(", ")
                        )
                    } else {
                        last
                    }
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    fn upload_certs(
        &self,
        hash: &str,
        cert_dir: &std::path::Path,
        key: &str,
    ) -> Result<(), String> {
        let bytes = decode_key(key)?;
        let files = pki::read_shared(cert_dir)?;
        println!(
            "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
        );
        let key_sha = util::sha256_hex(&bytes);
        let h = hash.to_string();
        let found = self
            .store
            .update(move |s| match s.cluster_mut(&h) {
                Some(c) => {
                    c.uploaded_certs = Some(UploadedCerts {
                        key_sha256: key_sha,
                        expires: util::now() + 2 * 3600,
                        files,
                        deleted: false,
                    });
                    true
                }
                None => false,
            })
            .map_err(|e| e.to_string())?;
        if !found {
            return Err("error uploading certs: the cluster of this control plane is not in the shared state".into());
        }
        Ok(())
    }

    fn mark_control_plane(
        &self,
        hash: &str,
        node: &str,
        taints: &[Taint],
        timeout: Duration,
    ) -> Result<(), String> {
        println!(
            "[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [{CP_LABEL} {EXCLUDE_LB_LABEL}]"
        );
        if !taints.is_empty() {
            let t: Vec<String> = taints
                .iter()
                .map(|t| {
                    if t.value.is_empty() {
                        format!("{}:{}", t.key, t.effect)
                    } else {
                        format!("{}={}:{}", t.key, t.value, t.effect)
                    }
                })
                .collect();
            println!(
                "[mark-control-plane] Marking the node {node} as control-plane by adding the taints [{}]",
                t.join(" ")
            );
        }
        let start = Instant::now();
        loop {
            let (h, n, ts) = (hash.to_string(), node.to_string(), taints.to_vec());
            let done = self
                .store
                .update(move |s| {
                    let Some(c) = s.cluster_mut(&h) else {
                        return false;
                    };
                    let Some(nd) = c.node_mut(&n) else {
                        return false;
                    };
                    nd.labels.insert(CP_LABEL.into(), String::new());
                    nd.labels.insert(EXCLUDE_LB_LABEL.into(), String::new());
                    for t in ts {
                        if !nd.taints.contains(&t) {
                            nd.taints.push(t);
                        }
                    }
                    true
                })
                .map_err(|e| e.to_string())?;
            if done {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "error patching Node \"{node}\": timed out waiting for the condition: nodes \"{node}\" not found"
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn kubelet_finalize(&self, server: &str, ca: &pki::Pair, node: &str) -> Result<(), String> {
        let user = format!("system:node:{node}");
        let client = pki::issue(
            ca,
            &pki::Leaf {
                cn: &user,
                orgs: &["system:nodes"],
                server: false,
                client: true,
                dns: vec![],
                ips: vec![],
            },
        )?;
        write_kubelet_conf(&self.env, server, &ca.cert, &client)
    }

    fn phase_upload_certs(&self, p: &Parsed) -> R<i32> {
        mixed(p)?;
        let f = read_config(&self.env, p, &["InitConfiguration", "ClusterConfiguration"])?;
        let mut warnings = vec![];
        let init = api::init(&self.env, &f, &mut warnings).map_err(plain)?;
        // As every `init` phase, it defaults and validates an InitConfiguration: without an
        // advertise address (no --config) that is the default route's, and a host without one
        // gets 0.0.0.0, which validation refuses.
        if init.advertise_address.parse::<IpAddr>().is_err() {
            let _ = no_advertise_address();
            return Err(plain(
                "cannot use \"0.0.0.0\" as the bind address for the API Server".to_string(),
            ));
        }
        if !p.flag("upload-certs") {
            println!("[upload-certs] Skipping phase. Please see --upload-certs");
            return Ok(0);
        }
        let kc = p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf");
        let hash = self
            .connect_admin(kc)
            .map_err(|e| phase_err("upload-certs", e))?;
        let key = p
            .get("certificate-key")
            .map(String::from)
            .or(init.certificate_key.clone())
            .unwrap_or_else(|| util::hex(&util::random_bytes(32)));
        let cert_dir = self.env.path(&init.cluster.certificates_dir);
        self.upload_certs(&hash, &cert_dir, &key)
            .map_err(|e| phase_err("upload-certs", e))?;
        if !p.flag("skip-certificate-key-print") {
            println!("[upload-certs] Using certificate key:\n{key}");
        }
        Ok(0)
    }

    /// Reads an admin kubeconfig, connects to its server as client-go would, and returns the
    /// cluster's CA hash.
    pub(crate) fn connect_admin(&self, kubeconfig: &str) -> Result<String, String> {
        let kc = pki::read_kubeconfig(&self.env, &self.env.path(kubeconfig))?;
        // Writes need etcd: the API server's readiness says whether it has quorum.
        let (status, _, _) = net::https_get(
            &kc.server,
            "/readyz",
            Verify::Ca(&kc.ca_pem),
            Duration::from_secs(10),
        )
        .map_err(|e| format!("Get \"{}/version?timeout=10s\": {e}", kc.server))?;
        if status != 200 {
            return Err("etcdserver: request timed out".into());
        }
        let hash = pki::ca_hash(&kc.ca_pem)?;
        let st = self.store.read().map_err(|e| e.to_string())?;
        if st.cluster(&hash).is_none() {
            return Err(format!(
                "the server at {} has no cluster with this CA in the shared state",
                kc.server
            ));
        }
        Ok(hash)
    }

    fn token_create(&self, p: &Parsed, given: Option<&str>) -> R<i32> {
        let f = read_config(&self.env, p, &["InitConfiguration", "ClusterConfiguration"])?;
        let _ = f;
        let kc = p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf");
        let kc_info = pki::read_kubeconfig(&self.env, &self.env.path(kc)).map_err(plain)?;
        let tok = match given {
            Some(t) => {
                if !api::valid_token(t) {
                    return Err(plain(format!(
                        "the bootstrap token \"{t}\" was not of the form \"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$\""
                    )));
                }
                t.to_string()
            }
            None => generate_token(),
        };
        let ttl = match p.get("ttl") {
            Some(t) => util::parse_duration(t).ok_or_else(|| {
                plain(format!(
                    "invalid argument \"{t}\" for \"--ttl\" flag: time: invalid duration \"{t}\""
                ))
            })?,
            None => Duration::from_secs(86_400),
        };
        let (id, secret) = tok.split_once('.').unwrap_or_default();
        let hash = self.connect_admin(kc).map_err(|e| {
            plain(format!(
                "failed to create or update bootstrap token with name bootstrap-token-{id}: unable to create Secret: {e}"
            ))
        })?;
        let usages = {
            let u = p.list("usages");
            if u.is_empty() {
                vec!["signing".into(), "authentication".into()]
            } else {
                u
            }
        };
        let groups = {
            let g = p.list("groups");
            if g.is_empty() {
                vec!["system:bootstrappers:kubeadm:default-node-token".into()]
            } else {
                g
            }
        };
        let t = BootstrapToken {
            id: id.into(),
            secret: secret.into(),
            expires: if ttl.is_zero() {
                None
            } else {
                Some(util::now() + ttl.as_secs() as i64)
            },
            usages,
            groups,
            description: p.get("description").unwrap_or_default().into(),
            deleted: false,
        };
        let h = hash.clone();
        self.store
            .update(move |s| {
                if let Some(c) = s.cluster_mut(&h) {
                    c.bootstrap_tokens.retain(|x| x.id != t.id);
                    c.bootstrap_tokens.push(t);
                }
            })
            .map_err(|e| plain(e.to_string()))?;
        if p.flag("print-join-command") {
            let endpoint = kc_info
                .server
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            let mut line = format!(
                "kubeadm join {endpoint} --token {tok} --discovery-token-ca-cert-hash {hash} "
            );
            if let Some(k) = p.get("certificate-key") {
                line.push_str(&format!("--control-plane --certificate-key {k}"));
            }
            println!("{line}");
        } else {
            println!("{tok}");
        }
        Ok(0)
    }

    fn join(&self, p: &Parsed) -> R<i32> {
        mixed(p)?;
        let env = &self.env;
        if !p.has("config") {
            return Err(plain(
                "the stand-in kubeadm join needs --config (a JoinConfiguration)",
            ));
        }
        let mut f = read_config(env, p, &["JoinConfiguration"])?;
        let mut warnings = std::mem::take(&mut f.warnings);
        let mut j = api::join(env, &f, &mut warnings).map_err(plain)?;
        if let Some(n) = p.get("node-name") {
            j.node.name = n.to_string();
        }
        for w in warnings {
            eprintln!("{w}");
        }
        let mut ignore = j.node.ignore_preflight_errors.clone();
        ignore.extend(p.list("ignore-preflight-errors"));
        let mut skip = j.skip_phases.clone();
        skip.extend(p.list("skip-phases"));
        // preflight
        println!("[preflight] Running pre-flight checks");
        preflight::run(vec![preflight::is_privileged()], &ignore)
            .map_err(|e| phase_err("preflight", e))?;
        let mut checks = vec![
            preflight::file_available(env, "/etc/kubernetes/kubelet.conf"),
            preflight::file_available(env, "/etc/kubernetes/bootstrap-kubelet.conf"),
            preflight::cri(env, &j.node.cri_socket),
            preflight::swap(env),
        ];
        checks.extend(preflight::exec_checks(None));
        checks.push(preflight::hostname(&j.node.name));
        checks.push(preflight::kubelet_version(None));
        checks.push(preflight::service_kubelet(env));
        checks.push(preflight::port(env, 10250));
        if j.control_plane.is_none() {
            checks.push(preflight::file_available(env, &j.ca_cert_path));
        }
        let (ep_host, _) = api::split_host_port(&j.endpoint);
        if ep_host.parse::<IpAddr>().is_ok_and(|i| i.is_ipv4()) {
            checks.extend(preflight::ipv4_checks(env));
        }
        preflight::run(checks, &ignore).map_err(|e| phase_err("preflight", e))?;
        // discovery
        let (hash, cluster_ca, server) =
            self.discover(&j).map_err(|e| phase_err("preflight", e))?;
        println!(
            "[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
        );
        println!(
            "[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it."
        );
        let st = self.store.read().map_err(|e| plain(e.to_string()))?;
        let sc = st
            .cluster(&hash)
            .ok_or_else(|| phase_err("preflight", "unable to fetch the kubeadm-config ConfigMap: configmaps \"kubeadm-config\" not found"))?
            .clone();
        let cluster = api::Cluster::from(env, Some(&sc.cluster_configuration), &mut vec![]);
        let cp = j.control_plane.clone();
        let mut advertise: Option<IpAddr> = None;
        if let Some(cp) = &cp {
            if cluster.control_plane_endpoint.is_empty() {
                return Err(phase_err(
                    "preflight",
                    "\nOne or more conditions for hosting a new control plane instance is not satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n",
                ));
            }
            let ip: IpAddr = cp
                .advertise_address
                .parse()
                .map_err(|_| phase_err("preflight", no_advertise_address()))?;
            advertise = Some(ip);
            println!(
                "[preflight] Running pre-flight checks before initializing the new control plane instance"
            );
            let mut checks = vec![
                preflight::num_cpu(2),
                preflight::mem(1700),
                preflight::kubernetes_version(&cluster.kubernetes_version, env.version),
                preflight::port(env, cp.bind_port),
                preflight::port(env, 10259),
                preflight::port(env, 10257),
            ];
            for c in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "etcd",
            ] {
                checks.push(preflight::file_available(
                    env,
                    &format!("{MANIFESTS}/{c}.yaml"),
                ));
            }
            checks.push(preflight::port(env, 2379));
            checks.push(preflight::port(env, 2380));
            checks.push(preflight::dir_available(env, &cluster.etcd_data_dir));
            preflight::run(checks, &ignore).map_err(|e| phase_err("preflight", e))?;
            println!("[preflight] Pulling images required for setting up a Kubernetes cluster");
            println!(
                "[preflight] This might take a minute or two, depending on the speed of your internet connection"
            );
            println!(
                "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
            );
            preflight::run(
                vec![preflight::image_pull(
                    env,
                    &j.node.cri_socket,
                    &cluster.images(),
                    &j.node.image_pull_policy,
                )],
                &ignore,
            )
            .map_err(|e| phase_err("preflight", e))?;
            // control-plane-prepare
            println!(
                "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
            );
            let files = download_certs(&sc, &cp.certificate_key)
                .map_err(|e| phase_err("control-plane-prepare/download-certs", e))?;
            println!(
                "[download-certs] Saving the certificates to the folder: \"{}\"",
                cluster.certificates_dir
            );
            println!(
                "[certs] Using certificateDir folder \"{}\"",
                cluster.certificates_dir
            );
            let mut lines = vec![];
            let ca = pki::write_control_plane_pki(
                &env.path(&cluster.certificates_dir),
                Some(&files),
                &pki::NodeCerts {
                    node_name: &j.node.name,
                    advertise: ip,
                    endpoint_host: cluster.endpoint_host(),
                    service_ip: cluster.service_ip(),
                    dns_domain: &cluster.dns_domain,
                    cert_sans: &cluster.cert_sans,
                },
                &mut lines,
            )
            .map_err(|e| phase_err("control-plane-prepare/certs", e))?;
            for l in lines {
                println!("{l}");
            }
            println!(
                "[certs] Valid certificates and keys now exist in \"{}\"",
                cluster.certificates_dir
            );
            println!("[kubeconfig] Generating kubeconfig files");
            println!("[kubeconfig] Using kubeconfig folder \"{KUBERNETES_DIR}\"");
            let local = format!("https://{}", host_port(ip, cp.bind_port));
            for (file, user, orgs, srv) in [
                (
                    "admin.conf",
                    "kubernetes-admin",
                    vec!["kubeadm:cluster-admins"],
                    &server,
                ),
                (
                    "controller-manager.conf",
                    "system:kube-controller-manager",
                    vec![],
                    &local,
                ),
                ("scheduler.conf", "system:kube-scheduler", vec![], &local),
            ] {
                println!("[kubeconfig] Writing \"{file}\" kubeconfig file");
                self.write_kubeconfig(file, srv, &ca, user, &orgs)
                    .map_err(|e| phase_err("control-plane-prepare/kubeconfig", e))?;
            }
            self.write_manifests(&j.node.name, ip, cp.bind_port, &cluster, None)
                .map_err(|e| phase_err("control-plane-prepare/control-plane", e))?;
        }
        // kubelet-start
        let bootstrap = pki::kubeconfig(&server, &cluster_ca, "tls-bootstrap-token-user", None);
        let mut bv: Value = serde_saphyr::from_str(&bootstrap).map_err(|e| plain(e.to_string()))?;
        bv["users"][0]["user"] = json!({"token": j.tls_bootstrap_token});
        util::write_atomic(
            &env.path("/etc/kubernetes/bootstrap-kubelet.conf"),
            pki::to_yaml(&bv).as_bytes(),
            0o600,
        )
        .map_err(|e| phase_err("kubelet-start", e.to_string()))?;
        if cp.is_none() {
            util::write_atomic(&env.path(&j.ca_cert_path), cluster_ca.as_bytes(), 0o644)
                .map_err(|e| phase_err("kubelet-start", e.to_string()))?;
        }
        let kcfg = if sc.kubelet_configuration.is_null() {
            api::kubelet_config(&cluster, None)
        } else {
            sc.kubelet_configuration.clone()
        };
        if preflight::exists(env, FAULT_HOOK) {
            let _ = self.kubelet_start(&j.node, &kcfg);
            return Err(phase_err(
                "kubelet-start",
                "timed out waiting for the condition",
            ));
        }
        self.kubelet_start(&j.node, &kcfg)
            .map_err(|e| phase_err("kubelet-start", e))?;
        self.wait_kubelet(j.kubelet_timeout)
            .map_err(|e| phase_err("kubelet-start", e))?;
        println!("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
        let start = Instant::now();
        let kubelet_conf = env.path("/etc/kubernetes/kubelet.conf");
        while !kubelet_conf.exists() {
            if start.elapsed() > j.tls_bootstrap_timeout {
                return Err(phase_err(
                    "kubelet-start",
                    "failed while waiting for the kubelet to start the TLS Bootstrap: timed out waiting for the condition",
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = std::fs::remove_file(env.path("/etc/kubernetes/bootstrap-kubelet.conf"));
        // the node object
        loop {
            let st = self.store.read().map_err(|e| plain(e.to_string()))?;
            if st
                .cluster(&hash)
                .and_then(|c| c.node(&j.node.name))
                .is_some()
            {
                break;
            }
            if start.elapsed() > j.tls_bootstrap_timeout {
                return Err(phase_err(
                    "kubelet-start",
                    format!(
                        "error uploading crisocket: nodes \"{}\" not found",
                        j.node.name
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        if let (Some(cp), Some(ip)) = (&cp, advertise) {
            // control-plane-join: etcd member, then the etcd manifest
            println!(
                "[control-plane-join] Adding etcd member: https://{}",
                host_port(ip, 2380)
            );
            let member = EtcdMember {
                id: member_id(),
                name: j.node.name.clone(),
                peer_urls: vec![format!("https://{}", host_port(ip, 2380))],
                client_urls: vec![format!("https://{}", host_port(ip, 2379))],
            };
            let h = hash.clone();
            let m2 = member.clone();
            let initial = self
                .store
                .update(move |s| {
                    let c = s.cluster_mut(&h)?;
                    c.etcd_members.retain(|m| m.name != m2.name);
                    c.etcd_members.push(m2);
                    Some(
                        c.etcd_members
                            .iter()
                            .map(|m| {
                                format!(
                                    "{}={}",
                                    m.name,
                                    m.peer_urls.first().cloned().unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(","),
                    )
                })
                .map_err(|e| phase_err("control-plane-join/etcd", e.to_string()))?
                .ok_or_else(|| phase_err("control-plane-join/etcd", "the cluster disappeared"))?;
            let dir = env.path(MANIFESTS);
            let pki_dir = &cluster.certificates_dir;
            let er = crate::yaml::s(&cluster.doc, "/etcd/local/imageRepository")
                .unwrap_or(&cluster.image_repository);
            let cmd = vec![
                "etcd".to_string(),
                format!("--advertise-client-urls=https://{}", host_port(ip, 2379)),
                format!("--cert-file={pki_dir}/etcd/server.crt"),
                "--client-cert-auth=true".into(),
                format!("--data-dir={}", cluster.etcd_data_dir),
                format!(
                    "--initial-advertise-peer-urls=https://{}",
                    host_port(ip, 2380)
                ),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-state=existing".into(),
                format!("--key-file={pki_dir}/etcd/server.key"),
                format!(
                    "--listen-client-urls=https://127.0.0.1:2379,https://{}",
                    host_port(ip, 2379)
                ),
                format!("--listen-peer-urls=https://{}", host_port(ip, 2380)),
                format!("--name={}", j.node.name),
                format!("--peer-cert-file={pki_dir}/etcd/peer.crt"),
                format!("--peer-key-file={pki_dir}/etcd/peer.key"),
                format!("--peer-trusted-ca-file={pki_dir}/etcd/ca.crt"),
                format!("--trusted-ca-file={pki_dir}/etcd/ca.crt"),
            ];
            println!("[etcd] Creating static Pod manifest for \"etcd\"");
            write_pod(
                &dir,
                "etcd",
                &format!("{er}/etcd:{}", cluster.etcd_image_tag),
                cmd,
            )
            .map_err(|e| phase_err("control-plane-join/etcd", e))?;
            std::fs::create_dir_all(env.path(&cluster.etcd_data_dir).join("member"))
                .map_err(|e| phase_err("control-plane-join/etcd", e.to_string()))?;
            println!(
                "[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s"
            );
            let start = Instant::now();
            loop {
                let st = self.store.read().map_err(|e| plain(e.to_string()))?;
                let healthy = st.cluster(&hash).is_some_and(|c| {
                    c.etcd_members
                        .iter()
                        .any(|m| m.name == j.node.name && c.member_healthy(m, util::now()))
                });
                if healthy {
                    break;
                }
                if start.elapsed() > Duration::from_secs(40) {
                    return Err(phase_err(
                        "control-plane-join/etcd",
                        "error creating local etcd static pod manifest file: timeout waiting for etcd cluster to be available",
                    ));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            let taints = j.node.taints.clone().unwrap_or_else(|| {
                vec![Taint {
                    key: CP_LABEL.into(),
                    value: String::new(),
                    effect: "NoSchedule".into(),
                }]
            });
            self.mark_control_plane(&hash, &j.node.name, &taints, j.cp_timeout)
                .map_err(|e| phase_err("control-plane-join/mark-control-plane", e))?;
            if !skip.iter().any(|s| s == "wait-control-plane") {
                self.wait_control_plane(ip, cp.bind_port, &cluster_ca, j.cp_timeout)
                    .map_err(|e| phase_err("wait-control-plane", e))?;
            }
            println!(
                "\nThis node has joined the cluster and a new control plane instance was created:\n"
            );
            println!(
                "* Certificate signing request was sent to apiserver and approval was received."
            );
            println!("* The Kubelet was informed of the new secure connection details.");
            println!("* Control plane label and taint were applied to the new node.");
            println!("* The Kubernetes control plane instances scaled up.");
            println!("* A new etcd member was added to the local/stacked etcd cluster.\n");
            println!(
                "To start administering your cluster from this node, you need to run the following as a regular user:\n"
            );
            println!("\tmkdir -p $HOME/.kube");
            println!("\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config");
            println!("\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n");
            println!("Run 'kubectl get nodes' to see this node join the cluster.\n");
        } else {
            println!("\nThis node has joined the cluster:");
            println!(
                "* Certificate signing request was sent to apiserver and a response was received."
            );
            println!("* The Kubelet was informed of the new secure connection details.\n");
            println!(
                "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n"
            );
        }
        Ok(0)
    }

    /// Token discovery: cluster-info from the endpoint without trusting it, the token's
    /// signature, the CA pin, then the same request trusting the CA, which must give the same
    /// kubeconfig. Each request is retried until the discovery timeout, as kubeadm polls:
    /// failed requests and a ConfigMap without the token's signature yet. Returns the CA hash,
    /// the CA and the server of the cluster-info kubeconfig.
    fn discover(&self, j: &api::Join) -> Result<(String, String, String), String> {
        let url = format!("https://{}", j.endpoint);
        let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
        let (id, secret) = j.token.split_once('.').unwrap_or_default();
        let wrap = |e: String| format!("couldn't validate the identity of the API Server: {e}");
        println!(
            "[preflight] Discovering the cluster using the bootstrap token for endpoint {:?}",
            j.endpoint
        );
        // The cluster-info kubeconfig and its signature for the token, polled.
        let cluster_info = |verify: Verify| -> Result<(String, String), String> {
            let start = Instant::now();
            loop {
                let attempt = (|| -> Result<(String, String), String> {
                    let (status, body, _) = net::https_get(&url, path, verify, Duration::from_secs(10))
                        .map_err(|e| format!("failed to request the cluster-info ConfigMap: Get \"{url}{path}?timeout=10s\": {e}"))?;
                    if status != 200 {
                        return Err(format!(
                            "failed to request the cluster-info ConfigMap: the server returned {status}"
                        ));
                    }
                    let cm: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                    let kubeconfig = cm["data"]["kubeconfig"].as_str().unwrap_or_default();
                    let Some(sig) = cm["data"][format!("jws-kubeconfig-{id}")].as_str() else {
                        return Err(format!(
                            "token id \"{id}\" is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token"
                        ));
                    };
                    Ok((kubeconfig.to_string(), sig.to_string()))
                })();
                match attempt {
                    Ok(x) => return Ok(x),
                    Err(e) if start.elapsed() >= j.discovery_timeout => return Err(e),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(500).min(j.discovery_timeout))
                    }
                }
            }
        };
        let discovered = (|| -> Result<(String, String, String), String> {
            let (kubeconfig, sig) = cluster_info(Verify::Insecure)?;
            if sig != state::jws_signature(&kubeconfig, id, secret) {
                return Err("failed to verify JWS signature of received cluster info object, can't trust this API Server".into());
            }
            let kc: Value = serde_saphyr::from_str(&kubeconfig).map_err(|e| e.to_string())?;
            use base64::Engine as _;
            let ca = base64::engine::general_purpose::STANDARD
                .decode(
                    kc["clusters"][0]["cluster"]["certificate-authority-data"]
                        .as_str()
                        .unwrap_or_default(),
                )
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let server = kc["clusters"][0]["cluster"]["server"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let hash = pki::ca_hash(&ca)?;
            if !j.unsafe_skip_ca_verification && !j.ca_cert_hashes.iter().any(|h| h == &hash) {
                return Err(format!(
                    "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{hash}\" are pinned"
                ));
            }
            let (secure, _) = cluster_info(Verify::Ca(&ca))?;
            if secure != kubeconfig {
                return Err("the second kubeconfig from the cluster-info ConfigMap (using validated TLS) was different from the first".into());
            }
            Ok((hash, ca, server))
        })();
        match discovered {
            Ok(x) => {
                println!("[preflight] Cluster info discovery succeeded with the pinned CA");
                Ok(x)
            }
            Err(e) => Err(wrap(e)),
        }
    }

    fn reset(&self, p: &Parsed) -> R<i32> {
        let env = &self.env;
        mixed(p)?;
        let f = read_config(env, p, &["ResetConfiguration"])?;
        let cfg = f.reset.unwrap_or(Value::Null);
        let force = p.flag("force") || cfg["force"].as_bool() == Some(true);
        let cleanup_tmp = p.flag("cleanup-tmp-dir") || cfg["cleanupTmpDir"].as_bool() == Some(true);
        if !force {
            use std::io::BufRead;
            println!(
                "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted."
            );
            print!("[reset] Are you sure you want to proceed? [y/N]: ");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            if line.trim().to_lowercase() != "y" {
                return Err(phase_err("preflight", "aborted reset operation"));
            }
        }
        println!("[preflight] Running pre-flight checks");
        // remove-etcd-member: when this host runs a stacked etcd member and the cluster answers
        let etcd_manifest = env.path(format!("{MANIFESTS}/etcd.yaml"));
        let ca_path = env.path("/etc/kubernetes/pki/ca.crt");
        let node_name = kubelet_node_name(env);
        // As the real kubeadm: skipping remove-etcd-member leaves the member in the cluster
        // and the data directory on the host.
        let remove_member = !p
            .list("skip-phases")
            .iter()
            .any(|s| s == "remove-etcd-member");
        if !remove_member {
            println!("[reset] Skipping phase remove-etcd-member");
        } else if etcd_manifest.exists() {
            let admin = "/etc/kubernetes/admin.conf";
            let removed = self.connect_admin(admin).and_then(|hash| {
                let n = node_name.clone();
                self.store
                    .update(move |s| {
                        if let Some(c) = s.cluster_mut(&hash) {
                            c.etcd_members.retain(|m| m.name != n);
                        }
                    })
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = removed {
                eprintln!(
                    "{}[reset] Failed to remove etcd member: {e}\n.Please manually remove this etcd member using etcdctl",
                    util::klog('W', "removeetcdmember.go:106")
                );
            }
        } else if let Ok(ca) = std::fs::read_to_string(&ca_path) {
            let _ = ca;
        }
        let data_dir = "/var/lib/etcd";
        if remove_member && env.path(data_dir).exists() {
            clear_dir(&env.path(data_dir));
            println!("[reset] Deleted contents of the etcd data directory: {data_dir}");
        }
        println!("[reset] Stopping the kubelet service");
        if !env.no_systemd {
            let _ = std::process::Command::new("systemctl")
                .args(["stop", "kubelet"])
                .status();
        }
        println!("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"");
        let dirs = [
            "/etc/kubernetes/manifests",
            "/var/lib/kubelet",
            "/etc/kubernetes/pki",
        ];
        println!(
            "[reset] Deleting contents of directories: [{}]",
            dirs.join(" ")
        );
        for d in dirs {
            clear_dir(&env.path(d));
        }
        let files = [
            "/etc/kubernetes/admin.conf",
            "/etc/kubernetes/super-admin.conf",
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/bootstrap-kubelet.conf",
            "/etc/kubernetes/controller-manager.conf",
            "/etc/kubernetes/scheduler.conf",
        ];
        println!("[reset] Deleting files: [{}]", files.join(" "));
        for f in files {
            let _ = std::fs::remove_file(env.path(f));
        }
        if cleanup_tmp {
            clear_dir(&env.path("/etc/kubernetes/tmp"));
        }
        println!("\nThe reset process does not perform cleanup of CNI plugin configuration,");
        println!("network filtering rules and kubeconfig files.\n");
        println!("For information on how to perform this cleanup manually, please see:");
        println!("    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n");
        Ok(0)
    }
}

/// What kubeadm prints in place of a token or certificate key it was told not to print.
const WITHHELD: &str = "<value withheld>";

const INIT_FLAGS: &[Flag] = &[
    v("apiserver-advertise-address"),
    v("apiserver-bind-port"),
    v("apiserver-cert-extra-sans"),
    v("cert-dir"),
    v("certificate-key"),
    v("config"),
    v("control-plane-endpoint"),
    v("cri-socket"),
    b("dry-run"),
    v("feature-gates"),
    v("ignore-preflight-errors"),
    v("image-repository"),
    v("kubernetes-version"),
    v("node-name"),
    v("patches"),
    v("pod-network-cidr"),
    v("service-cidr"),
    v("service-dns-domain"),
    b("skip-certificate-key-print"),
    v("skip-phases"),
    b("skip-token-print"),
    v("token"),
    v("token-ttl"),
    b("upload-certs"),
];

const JOIN_FLAGS: &[Flag] = &[
    v("apiserver-advertise-address"),
    v("apiserver-bind-port"),
    v("certificate-key"),
    v("config"),
    b("control-plane"),
    v("cri-socket"),
    v("discovery-file"),
    v("discovery-token"),
    v("discovery-token-ca-cert-hash"),
    b("discovery-token-unsafe-skip-ca-verification"),
    b("dry-run"),
    v("ignore-preflight-errors"),
    v("node-name"),
    v("patches"),
    v("skip-phases"),
    v("tls-bootstrap-token"),
    v("token"),
];

/// Without `--config`, init's flags say what the documents would.
fn flags_into_config(p: &Parsed, f: &mut ConfigFile) {
    if p.has("config") {
        return;
    }
    let mut init = json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration"});
    let mut cluster =
        json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"});
    if let Some(a) = p.get("apiserver-advertise-address") {
        init["localAPIEndpoint"]["advertiseAddress"] = json!(a);
    }
    if let Some(k) = p.get("certificate-key") {
        init["certificateKey"] = json!(k);
    }
    if let Some(c) = p.get("cri-socket") {
        init["nodeRegistration"]["criSocket"] = json!(c);
    }
    if let Some(t) = p.get("token") {
        init["bootstrapTokens"] = json!([{"token": t}]);
    }
    if let Some(e) = p.get("control-plane-endpoint") {
        cluster["controlPlaneEndpoint"] = json!(e);
    }
    if let Some(c) = p.get("pod-network-cidr") {
        cluster["networking"]["podSubnet"] = json!(c);
    }
    if let Some(c) = p.get("service-cidr") {
        cluster["networking"]["serviceSubnet"] = json!(c);
    }
    if let Some(k) = p.get("kubernetes-version") {
        cluster["kubernetesVersion"] = json!(k);
    }
    if let Some(r) = p.get("image-repository") {
        cluster["imageRepository"] = json!(r);
    }
    let sans = p.list("apiserver-cert-extra-sans");
    if !sans.is_empty() {
        cluster["apiServer"]["certSANs"] = json!(sans);
    }
    f.init = Some(init);
    f.cluster = Some(cluster);
}

fn version_info(env: &Env) -> Value {
    json!({
        "major": env.version.major.to_string(),
        "minor": env.version.minor.to_string(),
        "gitVersion": env.version.to_string(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "go1.24.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Without an advertise address kubeadm takes the default route's; lab hosts have none, and
/// kubeadm would then warn and advertise 0.0.0.0, which the stand-in refuses outright.
fn no_advertise_address() -> String {
    eprintln!(
        "{}WARNING: could not obtain a bind address for the API Server: no default routes found in \"/proc/net/route\" or \"/proc/net/ipv6_route\"; using: 0.0.0.0",
        util::klog('W', "configset.go:78")
    );
    "the stand-in needs an advertise address (localAPIEndpoint.advertiseAddress): without a default route kubeadm would advertise 0.0.0.0, which other nodes cannot reach".into()
}

pub fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

fn member_id() -> u64 {
    let b = util::random_bytes(8);
    u64::from_be_bytes(b.try_into().unwrap_or([1; 8])) >> 1
}

pub fn generate_token() -> String {
    format!(
        "{}.{}",
        util::random_token_chars(6),
        util::random_token_chars(16)
    )
}

fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    if !key.len().is_multiple_of(2) {
        return Err("error decoding certificate key: encoding/hex: odd length hex string".into());
    }
    let mut out = Vec::new();
    for (i, ch) in key.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(ch).unwrap_or("zz");
        match u8::from_str_radix(s, 16) {
            Ok(b) => out.push(b),
            Err(_) => {
                return Err(format!(
                    "error decoding certificate key: encoding/hex: invalid byte: U+{:04X} {:?}",
                    ch[0], ch[0] as char
                )
                .replace(&format!("{i}"), &format!("{i}")));
            }
        }
    }
    if out.len() != 32 {
        return Err(format!(
            "error decoding certificate key: crypto/aes: invalid key size {}",
            out.len()
        ));
    }
    Ok(out)
}

/// `kubeadm-certs`: present, not expired, and decrypted by the key.
fn download_certs(
    c: &state::Cluster,
    key: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let missing = "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one";
    let Some(up) = &c.uploaded_certs else {
        return Err(missing.into());
    };
    if up.deleted || up.expires <= util::now() {
        return Err(missing.into());
    }
    let bytes = decode_key(key).map_err(|e| format!("error downloading certs: {e}"))?;
    if util::sha256_hex(&bytes) != up.key_sha256 {
        return Err("error downloading certs: error decoding secret data with provided key: cipher: message authentication failed".into());
    }
    Ok(up.files.clone())
}

fn write_pod(
    dir: &std::path::Path,
    name: &str,
    image: &str,
    command: Vec<String>,
) -> Result<(), String> {
    // kubeadm's annotations: where etcd and the API server are reached.
    let flag = |f: &str| {
        command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{f}=")))
            .unwrap_or_default()
            .to_string()
    };
    let annotations = match name {
        "etcd" => {
            json!({"kubeadm.kubernetes.io/etcd.advertise-client-urls": flag("advertise-client-urls")})
        }
        "kube-apiserver" => json!({
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                format!("{}:{}", flag("advertise-address"), flag("secure-port"))
        }),
        _ => json!({}),
    };
    let mut metadata = json!({
        "labels": {"component": name, "tier": "control-plane"},
        "name": name,
        "namespace": "kube-system",
    });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        metadata["annotations"] = annotations;
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [{
                "command": command,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "name": name,
            }],
            "hostNetwork": true,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
        },
        "status": {},
    });
    util::write_atomic(
        &dir.join(format!("{name}.yaml")),
        pki::to_yaml(&pod).as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())
}

/// kubelet.conf pointing at the rotatable client certificate (what kubelet-finalize and the
/// TLS bootstrap leave).
pub fn write_kubelet_conf(
    env: &Env,
    server: &str,
    ca_pem: &str,
    client: &pki::Pair,
) -> Result<(), String> {
    let pem = format!("{}{}", client.cert, client.key);
    util::write_atomic(
        &env.path("/var/lib/kubelet/pki/kubelet-client-current.pem"),
        pem.as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())?;
    let text = pki::kubeconfig(server, ca_pem, "default-auth", None);
    let mut v: Value = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
    v["users"][0]["user"] = json!({
        "client-certificate": "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "client-key": "/var/lib/kubelet/pki/kubelet-client-current.pem",
    });
    util::write_atomic(
        &env.path("/etc/kubernetes/kubelet.conf"),
        pki::to_yaml(&v).as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())
}

/// The node name this host's kubelet uses: `--hostname-override` in kubeadm-flags.env, else
/// the host name.
pub fn kubelet_node_name(env: &Env) -> String {
    std::fs::read_to_string(env.path("/var/lib/kubelet/kubeadm-flags.env"))
        .ok()
        .and_then(|s| {
            s.split(['"', ' '])
                .find_map(|w| w.strip_prefix("--hostname-override=").map(String::from))
        })
        .unwrap_or_else(|| env.hostname.to_lowercase())
}

fn clear_dir(p: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path: PathBuf = e.path();
            if path.is_dir() && !path.is_symlink() {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
