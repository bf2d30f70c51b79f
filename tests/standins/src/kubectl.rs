//! The `kubectl` stand-in: the commands kubeforge runs, answered from the shared state after
//! connecting to the kubeconfig's server over TLS as kubectl would.

use crate::env::Env;
use crate::flags::{self, Flag, Parsed, b, v};
use crate::net::{self, ClientError, Verify};
use crate::pki;
use crate::state::{self, Cluster, ManifestRecord, Store, Taint};
use crate::util;
use crate::yaml;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

const FLAGS: &[Flag] = &[
    v("kubeconfig"),
    v("server").short('s'),
    v("namespace").short('n'),
    v("output").short('o'),
    b("all-namespaces").short('A'),
    v("request-timeout"),
    v("v").short('v'),
    b("help").short('h'),
    v("raw"),
    b("client"),
    v("filename").short('f'),
    b("server-side"),
    b("force-conflicts"),
    v("field-manager"),
    v("for"),
    b("ignore-daemonsets"),
    b("delete-emptydir-data"),
    b("force"),
    v("timeout"),
    v("grace-period"),
    b("overwrite"),
    b("wait"),
    v("selector").short('l'),
    b("no-headers"),
    b("ignore-not-found"),
    b("stdin").short('i'),
    b("tty").short('t'),
    v("container").short('c'),
];

struct Out {
    code: i32,
}

fn err(msg: impl AsRef<str>) -> Out {
    eprintln!("{}", msg.as_ref());
    Out { code: 1 }
}

fn ok() -> Out {
    Out { code: 0 }
}

/// Runs `kubectl ARGS...`; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let env = Env::from_env();
    let store = Store::new(&env);
    store.log_command(&env, "kubectl", &argv);
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    // `exec POD -- CMD...`: everything after `--` is the command.
    let (args, exec_cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, vec![]),
    };
    let p = match flags::parse(&args, FLAGS) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}\nSee 'kubectl --help' for usage.");
            return 1;
        }
    };
    if p.flag("help") || p.args.is_empty() {
        println!(
            "{}: kubectl (simulates kubectl {} for kubeforge's tests; proves nothing about the real kubectl)",
            crate::HELP_FIRST_LINE,
            crate::built_version()
        );
        return 0;
    }
    let k = Kubectl { env, store };
    k.run(&p, &exec_cmd).code
}

struct Kubectl {
    env: Env,
    store: Store,
}

/// The cluster a kubeconfig reaches.
struct Conn {
    server: String,
    ca: String,
    hash: String,
}

impl Kubectl {
    fn run(&self, p: &Parsed, exec_cmd: &[String]) -> Out {
        let a: Vec<&str> = p.args.iter().map(|s| s.as_str()).collect();
        if a[0] == "version" {
            return self.version(p);
        }
        let known = [
            "get", "apply", "wait", "taint", "label", "annotate", "drain", "cordon", "uncordon",
            "delete", "exec",
        ];
        if !known.contains(&a[0]) {
            return err(format!(
                "error: unknown command \"{}\" for \"kubectl\"\n\nDid you mean this?\n\tget\n",
                a[0]
            ));
        }
        let conn = match self.connect(p) {
            Ok(c) => c,
            Err(o) => return o,
        };
        match a.as_slice() {
            ["get", ..] if p.has("raw") => self.raw(&conn, p.get("raw").unwrap_or("/")),
            ["get", "nodes" | "node" | "no", rest @ ..] => {
                self.get_nodes(&conn, p, rest.first().copied())
            }
            ["get", "pods" | "pod" | "po", rest @ ..] => {
                self.get_pods(&conn, p, rest.first().copied())
            }
            ["get", kinds] if kinds.contains(',') || is_daemonsets(kinds) => {
                self.get_objects(&conn, p, kinds)
            }
            ["get", "secrets" | "secret"] => self.get_secrets(&conn, p),
            ["get", "configmaps" | "configmap" | "cm", name] => self.get_configmap(&conn, p, name),
            ["get", r, ..] => err(format!(
                "error: the server doesn't have a resource type \"{r}\""
            )),
            ["apply"] => self.apply(&conn, p),
            ["wait", ..] => self.wait(&conn, p),
            ["taint", "nodes" | "node" | "no", name, specs @ ..] => self.taint(&conn, name, specs),
            ["label", "nodes" | "node" | "no", name, specs @ ..] => {
                self.label(&conn, p, name, specs)
            }
            ["annotate", "nodes" | "node" | "no", name, specs @ ..] => {
                self.annotate(&conn, p, name, specs)
            }
            ["annotate", res, specs @ ..] if node_ref(res).is_some() => {
                self.annotate(&conn, p, node_ref(res).unwrap_or_default(), specs)
            }
            ["drain", name] => self.drain(&conn, p, name),
            ["cordon", name] => self.cordon(&conn, name, true),
            ["uncordon", name] => self.cordon(&conn, name, false),
            ["delete", "nodes" | "node" | "no", names @ ..] if !names.is_empty() => {
                self.delete_nodes(&conn, p, names)
            }
            ["delete", "secrets" | "secret", names @ ..] if !names.is_empty() => {
                self.delete_secrets(&conn, p, names)
            }
            ["exec", pod] => self.exec(&conn, p, pod, exec_cmd),
            _ => err(format!(
                "error: unsupported arguments for the stand-in: {}",
                a.join(" ")
            )),
        }
    }

    fn version(&self, p: &Parsed) -> Out {
        let ver = self.env.version;
        let info = json!({
            "clientVersion": {
                "major": ver.major.to_string(),
                "minor": ver.minor.to_string(),
                "gitVersion": ver.to_string(),
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "1970-01-01T00:00:00Z",
                "goVersion": "go1.24.9",
                "compiler": "gc",
                "platform": "linux/amd64"
            },
            "kustomizeVersion": "v5.7.1"
        });
        if !p.flag("client") {
            return err("error: the stand-in answers `kubectl version --client` only");
        }
        match p.get("output") {
            Some("json") => println!(
                "{}",
                serde_json::to_string_pretty(&info).unwrap_or_default()
            ),
            Some("yaml") => print!("{}", pki::to_yaml(&info)),
            Some(o) => {
                return err(format!(
                    "error: --output must be 'yaml' or 'json', got {o:?}"
                ));
            }
            None => {
                println!("Client Version: {ver}");
                println!("Kustomize Version: v5.7.1");
            }
        }
        ok()
    }

    fn connect(&self, p: &Parsed) -> Result<Conn, Out> {
        let path = p
            .get("kubeconfig")
            .map(String::from)
            .or_else(|| std::env::var("KUBECONFIG").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "/root/.kube/config".into());
        let refused = |hp: &str| {
            err(format!(
                "The connection to the server {hp} was refused - did you specify the right host or port?"
            ))
        };
        let file = self.env.path(&path);
        if !file.exists() {
            if p.has("kubeconfig") {
                return Err(err(format!(
                    "error: stat {path}: no such file or directory"
                )));
            }
            return Err(refused("localhost:8080"));
        }
        let mut kc =
            pki::read_kubeconfig(&self.env, &file).map_err(|e| err(format!("error: {e}")))?;
        if let Some(server) = p.get("server") {
            kc.server = server.to_string();
        }
        let hostport = kc
            .server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        match net::https_get(
            &kc.server,
            "/healthz",
            Verify::Ca(&kc.ca_pem),
            Duration::from_secs(10),
        ) {
            Ok((200, _, _)) => {}
            Ok((_, _body, _)) => {
                return Err(err("Error from server: etcdserver: request timed out"));
            }
            Err(ClientError::Connect(e)) if e.contains("connection refused") => {
                return Err(refused(&hostport));
            }
            Err(e) => return Err(err(format!("Unable to connect to the server: {e}"))),
        }
        let hash = pki::ca_hash(&kc.ca_pem).map_err(|e| err(format!("error: {e}")))?;
        Ok(Conn {
            server: kc.server,
            ca: kc.ca_pem,
            hash,
        })
    }

    fn cluster(&self, c: &Conn) -> Result<Cluster, Out> {
        let st = self.store.read().map_err(|e| err(format!("error: {e}")))?;
        st.cluster(&c.hash)
            .cloned()
            .ok_or_else(|| err("error: You must be logged in to the server (Unauthorized)"))
    }

    fn update<T>(&self, c: &Conn, f: impl FnOnce(&mut Cluster) -> T) -> Result<T, Out> {
        let hash = c.hash.clone();
        self.store
            .update(move |s| s.cluster_mut(&hash).map(f))
            .map_err(|e| err(format!("error: {e}")))?
            .ok_or_else(|| err("error: You must be logged in to the server (Unauthorized)"))
    }

    fn raw(&self, c: &Conn, path: &str) -> Out {
        match net::https_get(&c.server, path, Verify::Ca(&c.ca), Duration::from_secs(10)) {
            Ok((200, body, _)) => {
                print!("{body}");
                ok()
            }
            Ok((404, _, _)) => err(
                "Error from server (NotFound): the server could not find the requested resource",
            ),
            Ok((s, body, _)) => err(format!(
                "Error from server (InternalError): an error on the server (\"{}\") has prevented the request from succeeding (status {s})",
                body.replace('\n', "\\n")
            )),
            Err(e) => err(format!("Unable to connect to the server: {e}")),
        }
    }

    fn get_nodes(&self, c: &Conn, p: &Parsed, name: Option<&str>) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        let now = util::now();
        let nodes: Vec<&state::Node> = match name {
            Some(n) => match cl.node(n) {
                Some(x) => vec![x],
                None => {
                    return err(format!(
                        "Error from server (NotFound): nodes \"{n}\" not found"
                    ));
                }
            },
            None => cl.nodes.iter().collect(),
        };
        let objs: Vec<Value> = nodes.iter().map(|n| node_json(n, now)).collect();
        match p.get("output") {
            Some("json") => {
                let v = if name.is_some() {
                    objs[0].clone()
                } else {
                    list(objs)
                };
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Some("yaml") => {
                let v = if name.is_some() {
                    objs[0].clone()
                } else {
                    list(objs)
                };
                print!("{}", pki::to_yaml(&v));
            }
            Some("name") => {
                for n in nodes {
                    println!("node/{}", n.name);
                }
            }
            o @ (None | Some("wide")) => {
                let wide = o.is_some();
                if nodes.is_empty() {
                    eprintln!("No resources found");
                    return ok();
                }
                let mut rows = vec![];
                let mut head = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
                if wide {
                    head.extend([
                        "INTERNAL-IP",
                        "EXTERNAL-IP",
                        "OS-IMAGE",
                        "KERNEL-VERSION",
                        "CONTAINER-RUNTIME",
                    ]);
                }
                rows.push(head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
                for n in nodes {
                    let mut status = if n.ready(now) == "True" {
                        "Ready".to_string()
                    } else {
                        "NotReady".to_string()
                    };
                    if n.unschedulable {
                        status.push_str(",SchedulingDisabled");
                    }
                    let roles: Vec<&str> = n
                        .labels
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect();
                    let mut row = vec![
                        n.name.clone(),
                        status,
                        if roles.is_empty() {
                            "<none>".into()
                        } else {
                            roles.join(",")
                        },
                        age(now - n.created),
                        n.kubelet_version.clone(),
                    ];
                    if wide {
                        row.extend([
                            n.internal_ip.clone(),
                            "<none>".into(),
                            "Debian GNU/Linux 12 (bookworm)".into(),
                            kernel(),
                            "containerd://1.6.20".into(),
                        ]);
                    }
                    rows.push(row);
                }
                table(&rows, p.flag("no-headers"));
            }
            Some(o) => {
                return err(format!(
                    "error: unable to match a printer suitable for the output format \"{o}\""
                ));
            }
        }
        ok()
    }

    fn get_pods(&self, c: &Conn, p: &Parsed, name: Option<&str>) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        let now = util::now();
        let ns = p.get("namespace").unwrap_or("default");
        let all = p.flag("all-namespaces");
        let pods: Vec<Value> = pods_of(&cl, now)
            .into_iter()
            .filter(|x| all || x["metadata"]["namespace"] == ns)
            .filter(|x| name.is_none_or(|n| x["metadata"]["name"] == n))
            .collect();
        if let Some(n) = name
            && pods.is_empty()
        {
            return err(format!(
                "Error from server (NotFound): pods \"{n}\" not found"
            ));
        }
        match p.get("output") {
            Some("json") => {
                let v = if name.is_some() {
                    pods[0].clone()
                } else {
                    list(pods)
                };
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Some("name") => {
                for x in &pods {
                    println!("pod/{}", x["metadata"]["name"].as_str().unwrap_or_default());
                }
            }
            None | Some("wide") => {
                if pods.is_empty() {
                    eprintln!("No resources found in {ns} namespace.");
                    return ok();
                }
                let mut rows = vec![
                    ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                ];
                if all {
                    rows[0].insert(0, "NAMESPACE".into());
                }
                for x in &pods {
                    let ready = x["status"]["conditions"][0]["status"] == "True";
                    let mut row = vec![
                        x["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        if ready { "1/1".into() } else { "0/1".into() },
                        x["status"]["phase"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        "0".into(),
                        x["metadata"]["creationTimestamp"]
                            .as_str()
                            .and_then(parse_rfc3339)
                            .map(|t| age(util::now() - t))
                            .unwrap_or_else(|| "<unknown>".into()),
                    ];
                    if all {
                        row.insert(
                            0,
                            x["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                    rows.push(row);
                }
                table(&rows, p.flag("no-headers"));
            }
            Some(o) => {
                return err(format!(
                    "error: unable to match a printer suitable for the output format \"{o}\""
                ));
            }
        }
        ok()
    }

    /// `get KIND[,KIND...] -o json` of nodes, pods and DaemonSets: one `List` with every
    /// object of each kind, in the order asked, as kubectl prints several kinds.
    fn get_objects(&self, c: &Conn, p: &Parsed, kinds: &str) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        if p.get("output") != Some("json") {
            return err(
                "error: the stand-in lists several kinds, or DaemonSets, with -o json only",
            );
        }
        let now = util::now();
        let ns = p.get("namespace").unwrap_or("default");
        let in_namespace = |x: &Value| p.flag("all-namespaces") || x["metadata"]["namespace"] == ns;
        let mut items = Vec::new();
        for kind in kinds.split(',') {
            match kind {
                "nodes" | "node" | "no" => items.extend(cl.nodes.iter().map(|n| node_json(n, now))),
                "pods" | "pod" | "po" => {
                    items.extend(pods_of(&cl, now).into_iter().filter(|x| in_namespace(x)))
                }
                k if is_daemonsets(k) => items.extend(
                    daemonsets_of(&pods_of(&cl, now))
                        .into_iter()
                        .filter(|x| in_namespace(x)),
                ),
                other => {
                    return err(format!(
                        "error: the server doesn't have a resource type \"{other}\""
                    ));
                }
            }
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&list(items)).unwrap_or_default()
        );
        ok()
    }

    fn apply(&self, c: &Conn, p: &Parsed) -> Out {
        let files = p.values.get("filename").cloned().unwrap_or_default();
        if files.is_empty() {
            return err("error: must specify one of -f and -k");
        }
        let server_side = p.flag("server-side");
        if p.flag("force-conflicts") && !server_side {
            return err("error: --force-conflicts only works with --server-side");
        }
        let manager = match p.get("field-manager") {
            Some(m) => m.to_string(),
            None if server_side => "kubectl".into(),
            None => "kubectl-client-side-apply".into(),
        };
        let default_ns = p.get("namespace").unwrap_or("default").to_string();
        // Every document with the file it came from (kubectl's errors name it).
        let mut docs: Vec<(String, Value)> = Vec::new();
        for f in files {
            let text = if f == "-" {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
                s
            } else {
                match std::fs::read_to_string(self.env.path(&f)) {
                    Ok(s) => s,
                    Err(e) => {
                        return err(format!(
                            "error: the path \"{f}\" does not exist ({})",
                            crate::util_io_text(&e)
                        ));
                    }
                }
            };
            match crate::yaml::documents(&text) {
                Ok(d) => docs.extend(d.into_iter().map(|d| (f.clone(), d))),
                Err(e) => return err(format!("error: error parsing {f}: {e}")),
            }
        }
        for (_, d) in &docs {
            let kind = d["kind"].as_str().unwrap_or_default();
            let api = d["apiVersion"].as_str().unwrap_or_default();
            if kind.is_empty() || api.is_empty() {
                return err(
                    "error: error validating data: [apiVersion not set, kind not set]; if you choose to ignore these errors, turn validation off with --validate=false",
                );
            }
            if yaml::s(d, "/metadata/name").is_none() {
                return err(format!(
                    "error: error when retrieving current configuration of:\nResource: \"{kind}\"\nfrom server for: \"-\": resource name may not be empty"
                ));
            }
        }
        let outcome = self.update(c, move |cl| {
            // Kinds resolve against the CRDs there before this apply, as kubectl maps every
            // document before it applies the first.
            let crds: Vec<Value> = cl
                .manifests
                .iter()
                .filter(|m| m.kind == CRD_KIND)
                .map(|m| m.object.clone())
                .collect();
            let mut lines = Vec::new();
            let mut errors = Vec::new();
            for (file, d) in docs {
                let kind = d["kind"].as_str().unwrap_or_default().to_string();
                let api = d["apiVersion"].as_str().unwrap_or_default().to_string();
                let name = yaml::s(&d, "/metadata/name").unwrap_or_default().to_string();
                let doc_ns = yaml::s(&d, "/metadata/namespace").unwrap_or_default();
                let (group, version) = api.split_once('/').unwrap_or(("", &api));
                let namespaced = if BUILTIN_GROUPS.contains(&group) {
                    !cluster_scoped(&kind)
                } else {
                    match served_by(&crds, group, version, &kind) {
                        Some(namespaced) => namespaced,
                        None => {
                            errors.push(format!(
                                "error: resource mapping not found for name: {name:?} namespace: {doc_ns:?} from {file:?}: no matches for kind {kind:?} in version {api:?}\nensure CRDs are installed first"
                            ));
                            continue;
                        }
                    }
                };
                let ns = if !namespaced {
                    String::new()
                } else if doc_ns.is_empty() {
                    default_ns.clone()
                } else {
                    doc_ns.to_string()
                };
                let existing = cl
                    .manifests
                    .iter()
                    .position(|m| m.kind == kind && m.name == name && m.namespace == ns);
                let object = if kind == CRD_KIND {
                    crd_summary(&d)
                } else {
                    let mut o = existing
                        .map(|i| cl.manifests[i].object.clone())
                        .filter(|o| o.is_object())
                        .unwrap_or_else(|| json!({}));
                    merge(&mut o, &d);
                    o
                };
                if let Err(causes) = validate(&kind, &object) {
                    errors.push(invalid(&kind, &name, &causes));
                    continue;
                }
                let digest = util::sha256_hex(
                    if kind == CRD_KIND { &d } else { &object }
                        .to_string()
                        .as_bytes(),
                );
                let verb = match existing {
                    None => "created",
                    Some(i) if cl.manifests[i].digest == digest => "unchanged",
                    Some(_) => "configured",
                };
                if (kind == "DaemonSet" && name == "kube-flannel-ds")
                    || (kind == "Installation" && group == "operator.tigera.io")
                {
                    cl.pod_network = Some(if kind == "Installation" {
                        "calico".into()
                    } else {
                        "flannel".into()
                    });
                }
                let res = if group.is_empty() {
                    kind.to_lowercase()
                } else {
                    format!("{}.{group}", kind.to_lowercase())
                };
                lines.push(format!(
                    "{res}/{name} {}",
                    if server_side {
                        "serverside-applied"
                    } else {
                        verb
                    }
                ));
                let mut managers = existing
                    .map(|i| cl.manifests[i].managers.clone())
                    .unwrap_or_default();
                if !managers.contains(&manager) {
                    managers.push(manager.clone());
                }
                let record = ManifestRecord {
                    api_version: api.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                    namespace: ns,
                    digest,
                    object,
                    managers,
                };
                match existing {
                    Some(i) => cl.manifests[i] = record,
                    None => cl.manifests.push(record),
                }
            }
            (lines, errors)
        });
        match outcome {
            Ok((lines, errors)) => {
                for l in lines {
                    println!("{l}");
                }
                if errors.is_empty() {
                    return ok();
                }
                for e in &errors {
                    eprintln!("{e}");
                }
                Out { code: 1 }
            }
            Err(o) => o,
        }
    }

    /// `kubectl wait --for=condition=established [--timeout D] crd/NAME...`: the stand-in's
    /// CRDs are Established once applied (unless the fault hook says never). As kubectl 1.28
    /// does for named resources, a CRD that does not exist fails at once with NotFound.
    fn wait(&self, c: &Conn, p: &Parsed) -> Out {
        let cond = p.get("for").unwrap_or_default();
        let Some(name) = cond
            .strip_prefix("condition=")
            .map(|c| c.split('=').next().unwrap_or(c))
        else {
            if cond == "delete" || cond.starts_with("jsonpath=") {
                return err(format!(
                    "error: the stand-in waits only for conditions, not --for={cond}"
                ));
            }
            return err(format!("error: unrecognized condition: {cond:?}"));
        };
        if !name.eq_ignore_ascii_case("established") {
            return err(format!(
                "error: the stand-in waits only for condition=established of CRDs, not {name:?}"
            ));
        }
        let timeout = match p.get("timeout") {
            None => Duration::from_secs(30),
            Some(t) => match util::parse_duration(t) {
                Some(d) => d,
                None => {
                    return err(format!(
                        "error: invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\""
                    ));
                }
            },
        };
        let names = match crd_names(&p.args[1..]) {
            Ok(n) => n,
            Err(e) => return err(e),
        };
        let cl = match self.cluster(c) {
            Ok(cl) => cl,
            Err(o) => return o,
        };
        let never = crate::preflight::exists(&self.env, CRDS_NOT_ESTABLISHED);
        for n in names {
            let found = cl
                .manifests
                .iter()
                .any(|m| m.kind == CRD_KIND && m.name == n);
            if !found {
                return err(format!(
                    "Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io \"{n}\" not found"
                ));
            }
            if never {
                std::thread::sleep(timeout);
                return err(format!(
                    "error: timed out waiting for the condition on customresourcedefinitions/{n}"
                ));
            }
            println!("customresourcedefinition.apiextensions.k8s.io/{n} condition met");
        }
        ok()
    }

    fn taint(&self, c: &Conn, name: &str, specs: &[&str]) -> Out {
        if specs.is_empty() {
            return err("error: at least one taint update is required");
        }
        let (n, specs) = (
            name.to_string(),
            specs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        let r = self.update(c, move |cl| -> Result<String, String> {
            let node = cl.node_mut(&n).ok_or_else(|| format!("Error from server (NotFound): nodes \"{n}\" not found"))?;
            let mut changed = "tainted";
            for s in specs {
                if let Some(body) = s.strip_suffix('-') {
                    let (key, effect) = match body.split_once(':') {
                        Some((k, e)) => (k.to_string(), Some(e.to_string())),
                        None => (body.to_string(), None),
                    };
                    let key = key.split('=').next().unwrap_or_default().to_string();
                    let before = node.taints.len();
                    node.taints.retain(|t| !(t.key == key && effect.as_ref().is_none_or(|e| &t.effect == e)));
                    if node.taints.len() == before {
                        return Err(format!("error: taint \"{body}\" not found"));
                    }
                    changed = "untainted";
                } else {
                    let (kv, effect) = s.rsplit_once(':').ok_or_else(|| format!("error: invalid taint spec: {s}, unknown taint spec format"))?;
                    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                        return Err(format!("error: invalid taint effect: {effect}, unsupported taint effect"));
                    }
                    let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                    if node.taints.iter().any(|t| t.key == k && t.effect == effect) {
                        return Err(format!("error: node {n} already has {k} taint(s) with same effect(s) and --overwrite is false"));
                    }
                    node.taints.push(Taint { key: k.into(), value: val.into(), effect: effect.into() });
                }
            }
            Ok(format!("node/{n} {changed}"))
        });
        finish(r)
    }

    fn label(&self, c: &Conn, p: &Parsed, name: &str, specs: &[&str]) -> Out {
        let (n, specs, overwrite) = (
            name.to_string(),
            specs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            p.flag("overwrite"),
        );
        let r = self.update(c, move |cl| -> Result<String, String> {
            let node = cl
                .node_mut(&n)
                .ok_or_else(|| format!("Error from server (NotFound): nodes \"{n}\" not found"))?;
            let mut verb = "labeled";
            for s in specs {
                if let Some(k) = s.strip_suffix('-') {
                    node.labels.remove(k);
                    verb = "unlabeled";
                } else {
                    let (k, v) = s.split_once('=').ok_or_else(|| {
                        "error: at least one label update is required".to_string()
                    })?;
                    if let Some(old) = node.labels.get(k)
                        && old != v
                        && !overwrite
                    {
                        return Err(format!(
                            "error: '{k}' already has a value ({old}), and --overwrite is false"
                        ));
                    }
                    node.labels.insert(k.into(), v.into());
                }
            }
            Ok(format!("node/{n} {verb}"))
        });
        finish(r)
    }

    /// `annotate node NAME KEY=VALUE... KEY-... [--overwrite]`, as kubectl's annotate.go.
    fn annotate(&self, c: &Conn, p: &Parsed, name: &str, specs: &[&str]) -> Out {
        if specs.is_empty() {
            return err("error: at least one annotation update is required");
        }
        let (mut set, mut remove) = (Vec::new(), Vec::new());
        for s in specs {
            match (s.split_once('='), s.strip_suffix('-')) {
                (Some((k, v)), _) if !k.is_empty() => set.push((k.to_string(), v.to_string())),
                (None, Some(k)) if !k.is_empty() => remove.push(k.to_string()),
                _ => return err(format!("error: invalid annotation format: {s}")),
            }
        }
        let (n, overwrite) = (name.to_string(), p.flag("overwrite"));
        let r = self.update(c, move |cl| -> Result<String, String> {
            let node = cl
                .node_mut(&n)
                .ok_or_else(|| format!("Error from server (NotFound): nodes \"{n}\" not found"))?;
            if !overwrite {
                let taken: Vec<String> = set
                    .iter()
                    .filter_map(|(k, _)| {
                        node.annotations
                            .get(k)
                            .map(|old| format!("'{k}' already has a value ({old})"))
                    })
                    .collect();
                if !taken.is_empty() {
                    return Err(format!(
                        "error: --overwrite is false but found the following declared annotation(s): {}",
                        taken.join("; ")
                    ));
                }
            }
            for k in remove {
                node.annotations.remove(&k);
            }
            node.annotations.extend(set);
            Ok(format!("node/{n} annotated"))
        });
        finish(r)
    }

    fn cordon(&self, c: &Conn, name: &str, on: bool) -> Out {
        let n = name.to_string();
        let r = self.update(c, move |cl| -> Result<String, String> {
            let node = cl
                .node_mut(&n)
                .ok_or_else(|| format!("Error from server (NotFound): nodes \"{n}\" not found"))?;
            let was = node.unschedulable;
            node.unschedulable = on;
            Ok(format!(
                "node/{n} {}",
                match (on, was) {
                    (true, true) => "already cordoned",
                    (true, false) => "cordoned",
                    (false, false) => "already uncordoned",
                    (false, true) => "uncordoned",
                }
            ))
        });
        finish(r)
    }

    fn drain(&self, c: &Conn, p: &Parsed, name: &str) -> Out {
        if let Some(t) = p.get("timeout")
            && util::parse_duration(t).is_none()
        {
            return err(format!(
                "error: invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\""
            ));
        }
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        if cl.node(name).is_none() {
            return err(format!(
                "Error from server (NotFound): nodes \"{name}\" not found"
            ));
        }
        let on_node: Vec<Value> = pods_of(&cl, util::now())
            .into_iter()
            .filter(|x| x["spec"]["nodeName"] == name)
            .collect();
        let ds: Vec<String> = on_node
            .iter()
            .filter(|x| x["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet")
            .map(|x| {
                format!(
                    "{}/{}",
                    x["metadata"]["namespace"].as_str().unwrap_or_default(),
                    x["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let r = self.cordon(c, name, true);
        if r.code != 0 {
            return r;
        }
        if !ds.is_empty() && !p.flag("ignore-daemonsets") {
            return err(format!(
                "error: unable to drain node \"{name}\" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}, continuing command...\nThere are pending nodes to be drained:\n {name}\ncannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
                ds.join(", "),
                ds.join(", ")
            ));
        }
        if !ds.is_empty() {
            eprintln!(
                "Warning: ignoring DaemonSet-managed Pods: {}",
                ds.join(", ")
            );
        }
        // kubectl evicts them all at once: every "evicting" line, then every "evicted" one.
        let evicted: Vec<&Value> = on_node
            .iter()
            .filter(|x| x["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet")
            .collect();
        for x in &evicted {
            println!(
                "evicting pod {}/{}",
                x["metadata"]["namespace"].as_str().unwrap_or_default(),
                x["metadata"]["name"].as_str().unwrap_or_default()
            );
        }
        for x in &evicted {
            println!(
                "pod/{} evicted",
                x["metadata"]["name"].as_str().unwrap_or_default()
            );
        }
        println!("node/{name} drained");
        ok()
    }

    fn delete_nodes(&self, c: &Conn, p: &Parsed, names: &[&str]) -> Out {
        let (names, ignore) = (
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            p.flag("ignore-not-found"),
        );
        let r = self.update(c, move |cl| -> Result<String, String> {
            let mut lines = Vec::new();
            for n in names {
                if cl.node(&n).is_none() {
                    if ignore {
                        continue;
                    }
                    return Err(format!(
                        "Error from server (NotFound): nodes \"{n}\" not found"
                    ));
                }
                cl.nodes.retain(|x| x.name != n);
                cl.static_pods.retain(|x| x.node != n);
                lines.push(format!("node \"{n}\" deleted"));
            }
            Ok(lines.join("\n"))
        });
        finish(r)
    }

    /// `get secrets -n kube-system -o name`: the Secrets kubeadm makes for joins (bootstrap
    /// tokens, `kubeadm-certs`) and the ones every cluster has; names only.
    /// `get configmap kubeadm-config -n kube-system -o json`: the ClusterConfiguration
    /// kubeadm uploaded, as kubeadm stores it (YAML in `data.ClusterConfiguration`).
    fn get_configmap(&self, c: &Conn, p: &Parsed, name: &str) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        if p.get("output") != Some("json") {
            return err("error: the stand-in shows ConfigMaps with -o json only");
        }
        let ns = p.get("namespace").unwrap_or("default");
        if ns != "kube-system" || name != "kubeadm-config" {
            // One that `kubectl apply` made.
            return match cl
                .manifests
                .iter()
                .find(|m| m.kind == "ConfigMap" && m.name == name && m.namespace == ns)
            {
                Some(m) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&m.object).unwrap_or_default()
                    );
                    ok()
                }
                None => err(format!(
                    "Error from server (NotFound): configmaps \"{name}\" not found"
                )),
            };
        }
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "kube-system"},
            "data": {"ClusterConfiguration": pki::to_yaml(&cl.cluster_configuration)},
        });
        println!("{}", serde_json::to_string_pretty(&cm).unwrap_or_default());
        ok()
    }

    fn get_secrets(&self, c: &Conn, p: &Parsed) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        if p.get("output") != Some("name") {
            return err("error: the stand-in lists secrets with -o name only");
        }
        if p.get("namespace") == Some("kube-system") {
            for name in secrets_of(&cl, util::now()) {
                println!("secret/{name}");
            }
        }
        ok()
    }

    /// `delete secret NAME...` in kube-system: a bootstrap token, or `kubeadm-certs`.
    fn delete_secrets(&self, c: &Conn, p: &Parsed, names: &[&str]) -> Out {
        if p.get("namespace") != Some("kube-system") {
            return err("error: the stand-in deletes secrets in -n kube-system only");
        }
        let (names, ignore) = (
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            p.flag("ignore-not-found"),
        );
        let r = self.update(c, move |cl| -> Result<String, String> {
            let mut lines = Vec::new();
            let now = util::now();
            for n in names {
                if !secrets_of(cl, now).contains(&n) {
                    if ignore {
                        continue;
                    }
                    return Err(format!(
                        "Error from server (NotFound): secrets \"{n}\" not found"
                    ));
                }
                match n.strip_prefix("bootstrap-token-") {
                    Some(id) => cl
                        .bootstrap_tokens
                        .iter_mut()
                        .filter(|t| t.id == id)
                        .for_each(|t| t.deleted = true),
                    None if n == "kubeadm-certs" => {
                        if let Some(u) = cl.uploaded_certs.as_mut() {
                            u.deleted = true;
                        }
                    }
                    None => return Err(format!("error: the stand-in cannot delete secret {n}")),
                }
                lines.push(format!("secret \"{n}\" deleted"));
            }
            Ok(lines.join("\n"))
        });
        finish(r)
    }

    fn exec(&self, c: &Conn, p: &Parsed, pod: &str, cmd: &[String]) -> Out {
        let cl = match self.cluster(c) {
            Ok(c) => c,
            Err(o) => return o,
        };
        let ns = p.get("namespace").unwrap_or("default");
        let now = util::now();
        let exists = pods_of(&cl, now)
            .iter()
            .any(|x| x["metadata"]["name"] == pod && x["metadata"]["namespace"] == ns);
        if !exists {
            return err(format!(
                "Error from server (NotFound): pods \"{pod}\" not found"
            ));
        }
        let Some(node) = pod.strip_prefix("etcd-") else {
            return err("error: the stand-in runs only etcdctl in etcd pods");
        };
        let running = cl.static_pods.iter().any(|s| {
            s.node == node && s.component == "etcd" && now - s.seen <= state::HEARTBEAT_GRACE_SECS
        });
        if !running {
            return err("error: unable to upgrade connection: container not found (\"etcd\")");
        }
        if cmd.first().map(|s| s.as_str()) != Some("etcdctl") {
            return err(format!(
                "error: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown",
                cmd.first().map(|s| s.as_str()).unwrap_or_default()
            ));
        }
        self.etcdctl(&c.hash, &cl, node, &cmd[1..])
    }

    /// `etcdctl snapshot save PATH` in the etcd pod of `node`: the pod mounts the host's etcd
    /// data directory and `/etc/kubernetes/pki/etcd` at the same paths, and nothing else of the
    /// host. The snapshot is the cluster's state, padded to a multiple of 512 bytes and followed
    /// by its SHA-256 (the integrity trailer `etcdutl snapshot restore` checks).
    fn snapshot_save(&self, cl: &Cluster, node: &str, path: &str) -> Out {
        if crate::kubeadm::kubelet_node_name(&self.env) != node {
            return err(format!(
                "error: the stand-in saves snapshots only in the etcd pod of the host kubectl runs on, not etcd-{node}"
            ));
        }
        let data_dir = yaml::s(&cl.cluster_configuration, "/etcd/local/dataDir")
            .unwrap_or("/var/lib/etcd")
            .trim_end_matches('/')
            .to_string();
        let file = std::path::Path::new(path);
        let mounted = file.parent().is_some_and(|dir| {
            [data_dir.as_str(), "/etc/kubernetes/pki/etcd"]
                .iter()
                .any(|m| dir.starts_with(m))
                && self.env.path(dir).is_dir()
        });
        if !mounted || file.file_name().is_none() {
            return err(format!(
                "Error: could not open {path}.part (open {path}.part: no such file or directory)"
            ));
        }
        let mut data = serde_json::to_vec_pretty(cl).unwrap_or_default();
        data.resize(data.len().div_ceil(512) * 512, 0);
        let sum = Sha256::digest(&data);
        data.extend_from_slice(&sum);
        if let Err(e) = util::write_atomic(&self.env.path(path), &data, 0o600) {
            return err(format!("Error: could not open {path}.part ({e})"));
        }
        eprintln!(
            "{{\"level\":\"info\",\"ts\":\"{}\",\"caller\":\"snapshot/v3_snapshot.go:97\",\"msg\":\"saved\",\"path\":{path:?}}}",
            util::rfc3339(util::now())
        );
        println!("Snapshot saved at {path}");
        ok()
    }

    fn etcdctl(&self, hash: &str, cl: &Cluster, node: &str, args: &[String]) -> Out {
        let p = match flags::parse(
            args,
            &[
                v("endpoints"),
                v("cacert"),
                v("cert"),
                v("key"),
                v("write-out").short('w'),
                b("cluster"),
                v("peer-urls"),
                v("command-timeout"),
                v("dial-timeout"),
            ],
        ) {
            Ok(p) => p,
            Err(e) => return err(format!("Error: {e}")),
        };
        for f in ["cacert", "cert", "key"] {
            if !p.has(f) {
                return err(
                    "{\"level\":\"warn\",\"msg\":\"retrying of unary invoker failed\",\"error\":\"rpc error: code = DeadlineExceeded desc = latest balancer error: last connection error: connection error: desc = \\\"error reading server preface: EOF\\\"\"}\nError: context deadline exceeded",
                );
            }
        }
        let now = util::now();
        let json_out = p.get("write-out") == Some("json");
        let cluster_id =
            u64::from_str_radix(&hash.trim_start_matches("sha256:")[..15], 16).unwrap_or(1);
        let header = |m: u64| json!({"cluster_id": cluster_id, "member_id": m, "raft_term": 2, "revision": 1});
        let a: Vec<&str> = p.args.iter().map(|s| s.as_str()).collect();
        match a.as_slice() {
            ["member", "list"] => {
                let members: Vec<Value> = cl
                    .etcd_members
                    .iter()
                    .map(|m| json!({"ID": m.id, "name": m.name, "peerURLs": m.peer_urls, "clientURLs": m.client_urls}))
                    .collect();
                if json_out {
                    println!(
                        "{}",
                        json!({"header": header(cl.etcd_members.first().map(|m| m.id).unwrap_or(0)), "members": members})
                    );
                } else {
                    for m in &cl.etcd_members {
                        println!(
                            "{:x}, started, {}, {}, {}, false",
                            m.id,
                            m.name,
                            m.peer_urls.join(","),
                            m.client_urls.join(",")
                        );
                    }
                }
                ok()
            }
            ["member", "remove", id] => {
                let Ok(id) = u64::from_str_radix(id, 16) else {
                    return err(format!(
                        "Error: bad member ID arg (strconv.ParseUint: parsing \"{id}\": invalid syntax), expecting ID in Hex"
                    ));
                };
                let h = hash.to_string();
                let found = self
                    .store
                    .update(move |s| {
                        let c = s.cluster_mut(&h)?;
                        let before = c.etcd_members.len();
                        c.etcd_members.retain(|m| m.id != id);
                        Some(before != c.etcd_members.len())
                    })
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                if !found {
                    return err("Error: etcdserver: member not found");
                }
                println!("Member {id:16x} removed from cluster {cluster_id:16x}");
                ok()
            }
            ["member", "add", name] => {
                // etcd lists a member added but not started with an empty name and no client
                // URLs until it starts.
                let Some(peers) = p.get("peer-urls") else {
                    return err("Error: member peer urls not provided");
                };
                let peer_urls: Vec<String> = peers.split(',').map(str::to_string).collect();
                let id = u64::from_str_radix(
                    &util::sha256_hex(format!("{name} {peers}").as_bytes())[..15],
                    16,
                )
                .unwrap_or(7);
                let (h, urls) = (hash.to_string(), peer_urls.clone());
                let added = self
                    .store
                    .update(move |s| {
                        let c = s.cluster_mut(&h)?;
                        if c.etcd_members.iter().any(|m| m.peer_urls == urls) {
                            return Some(false);
                        }
                        c.etcd_members.push(state::EtcdMember {
                            id,
                            name: String::new(),
                            peer_urls: urls,
                            client_urls: Vec::new(),
                        });
                        Some(true)
                    })
                    .ok()
                    .flatten();
                match added {
                    Some(true) => {
                        println!("Member {id:16x} added to cluster {cluster_id:16x}");
                        ok()
                    }
                    Some(false) => err("Error: etcdserver: Peer URLs already exists"),
                    None => err("Error: context deadline exceeded"),
                }
            }
            ["move-leader", target] => {
                // Sent to this node's member, which must lead; the transferee must be a
                // started member.
                let Ok(target) = u64::from_str_radix(target, 16) else {
                    return err(format!(
                        "Error: failed to parse member ID: strconv.ParseUint: parsing \"{target}\": invalid syntax"
                    ));
                };
                let leader = cl.etcd_leader(now);
                let here = cl
                    .etcd_members
                    .iter()
                    .find(|m| m.name == node)
                    .map(|m| m.id);
                let Some(from) = leader.filter(|l| Some(*l) == here) else {
                    return err(format!(
                        "Error: no leader endpoint given at [{}]",
                        p.get("endpoints").unwrap_or_default()
                    ));
                };
                if !cl
                    .etcd_members
                    .iter()
                    .any(|m| m.id == target && m.id != from && cl.member_healthy(m, now))
                {
                    return err("Error: etcdserver: bad leader transferee");
                }
                let h = hash.to_string();
                let moved = self.store.update(move |s| {
                    s.cluster_mut(&h)?.etcd_leader = Some(target);
                    Some(())
                });
                if !matches!(moved, Ok(Some(()))) {
                    return err("Error: context deadline exceeded");
                }
                println!("Leadership transferred from {from:x} to {target:x}");
                ok()
            }
            ["endpoint", "status"] => {
                // Every member answers but those that are down; the leader is the one
                // leadership moved to, else the first healthy member.
                let members: Vec<&state::EtcdMember> = if p.flag("cluster") {
                    cl.etcd_members.iter().collect()
                } else {
                    cl.etcd_members.iter().take(1).collect()
                };
                let leader = cl.etcd_leader(now).unwrap_or(0);
                let mut rows = Vec::new();
                let mut failed = false;
                for m in members {
                    let ep = m.client_urls.first().cloned().unwrap_or_default();
                    if cl.member_healthy(m, now) && leader != 0 {
                        rows.push(json!({"Endpoint": ep, "Status": {"header": header(m.id), "version": "3.5.16", "dbSize": 20480, "leader": leader, "raftIndex": 1000, "raftTerm": 2, "raftAppliedIndex": 1000, "dbSizeInUse": 20480}}));
                    } else {
                        failed = true;
                        eprintln!(
                            "{{\"level\":\"warn\",\"msg\":\"failed to get the status of endpoint {ep} (context deadline exceeded)\"}}"
                        );
                    }
                }
                if json_out {
                    println!("{}", Value::Array(rows));
                }
                if failed { err("") } else { ok() }
            }
            ["endpoint", "health"] => {
                let members: Vec<&state::EtcdMember> = if p.flag("cluster") {
                    cl.etcd_members.iter().collect()
                } else {
                    cl.etcd_members.iter().take(1).collect()
                };
                let mut all_ok = true;
                let mut rows = Vec::new();
                for m in members {
                    let h = cl.member_healthy(m, now);
                    all_ok &= h;
                    let ep = m.client_urls.first().cloned().unwrap_or_default();
                    rows.push(if h {
                        json!({"endpoint": ep, "health": true, "took": "9.120ms"})
                    } else {
                        json!({"endpoint": ep, "health": false, "took": "5.001s", "error": "context deadline exceeded"})
                    });
                }
                if json_out {
                    println!("{}", Value::Array(rows));
                } else {
                    for r in &rows {
                        if r["health"] == true {
                            println!(
                                "{} is healthy: successfully committed proposal: took = {}",
                                r["endpoint"].as_str().unwrap_or_default(),
                                r["took"].as_str().unwrap_or_default()
                            );
                        } else {
                            eprintln!(
                                "{} is unhealthy: failed to commit proposal: context deadline exceeded",
                                r["endpoint"].as_str().unwrap_or_default()
                            );
                        }
                    }
                }
                if all_ok {
                    ok()
                } else {
                    err("Error: unhealthy cluster")
                }
            }
            ["snapshot", "save", path] => self.snapshot_save(cl, node, path),
            _ => err(format!(
                "Error: unknown command {:?} for \"etcdctl\"",
                a.join(" ")
            )),
        }
    }
}

/// The node of `node/NAME` (or `nodes/NAME`, `no/NAME`).
fn node_ref(res: &str) -> Option<&str> {
    match res.split_once('/') {
        Some(("node" | "nodes" | "no", name)) if !name.is_empty() => Some(name),
        _ => None,
    }
}

fn finish(r: Result<Result<String, String>, Out>) -> Out {
    match r {
        Err(o) => o,
        Ok(Err(e)) => err(e),
        Ok(Ok(line)) => {
            if !line.is_empty() {
                println!("{line}");
            }
            ok()
        }
    }
}

const CRD_KIND: &str = "CustomResourceDefinition";

/// Fault hook: with this file on the host, applied CRDs never become Established for
/// `kubectl wait`, which then fails after its timeout.
pub const CRDS_NOT_ESTABLISHED: &str = "/etc/kubeforge-standin/crds-not-established";

/// API groups the API server serves itself; a kind of any other group needs its CRD.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

/// Whether one of `crds` serves `kind` at `group/version`: `Some(namespaced)`.
fn served_by(crds: &[Value], group: &str, version: &str, kind: &str) -> Option<bool> {
    crds.iter()
        .find(|c| {
            c["spec"]["group"] == group
                && c["spec"]["names"]["kind"] == kind
                && c["spec"]["versions"]
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|v| v["name"] == version))
        })
        .map(|c| c["spec"]["scope"] != "Cluster")
}

/// What the state keeps of a CRD.
fn crd_summary(d: &Value) -> Value {
    let versions: Vec<Value> = d["spec"]["versions"]
        .as_array()
        .map(|vs| vs.iter().map(|v| json!({"name": v["name"]})).collect())
        .unwrap_or_default();
    json!({
        "apiVersion": d["apiVersion"],
        "kind": d["kind"],
        "metadata": {"name": d["metadata"]["name"]},
        "spec": {
            "group": d["spec"]["group"],
            "names": d["spec"]["names"],
            "scope": d["spec"]["scope"],
            "versions": versions,
        },
    })
}

/// Merges an applied object into the live one as server-side apply does for the fields it
/// names, roughly: maps field by field, lists whose items all have a `name` (containers, env,
/// volumes) item by item, other lists (args, command, tolerations) whole.
fn merge(live: &mut Value, applied: &Value) {
    let named = |items: &[Value]| items.iter().all(|x| x["name"].is_string());
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, v) in a {
                match l.get_mut(k) {
                    Some(x) => merge(x, v),
                    None => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) if named(l) && named(a) => {
            for item in a {
                match l.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(x) => merge(x, item),
                    None => l.push(item.clone()),
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// The API server's validation of the objects whose fields kubeforge's applies leave out:
/// a partial DaemonSet or Deployment is valid only over one that exists.
fn validate(kind: &str, o: &Value) -> Result<(), Vec<String>> {
    if !matches!(kind, "DaemonSet" | "Deployment") {
        return Ok(());
    }
    let mut causes = Vec::new();
    let template_labels = o.pointer("/spec/template/metadata/labels");
    match o.pointer("/spec/selector") {
        None => causes.push("spec.selector: Required value".to_string()),
        Some(sel) => {
            let matches = sel["matchLabels"].as_object().is_none_or(|want| {
                want.iter()
                    .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
            });
            if !matches {
                causes.push(format!(
                    "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                    go_string_map(template_labels)
                ));
            }
        }
    }
    match o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
    {
        None => causes.push("spec.template.spec.containers: Required value".to_string()),
        Some(cs) if cs.is_empty() => {
            causes.push("spec.template.spec.containers: Required value".to_string())
        }
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if yaml::s(c, "/image").is_none() {
                    causes.push(format!(
                        "spec.template.spec.containers[{i}].image: Required value"
                    ));
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// `map[string]string{"app":"flannel"}`, as Go's `%#v` prints labels.
fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// kubectl's message for an Invalid error with its causes.
fn invalid(kind: &str, name: &str, causes: &[String]) -> String {
    match causes {
        [one] => format!("The {kind} {name:?} is invalid: {one}"),
        _ => {
            let mut s = format!("The {kind} {name:?} is invalid: ");
            for c in causes {
                s.push_str(&format!("\n* {c}"));
            }
            s
        }
    }
}

/// The CRD names of `kubectl wait`'s arguments: `crd/NAME...` or `crd NAME...`.
fn crd_names(args: &[String]) -> Result<Vec<String>, String> {
    const TYPES: [&str; 5] = [
        "crd",
        "crds",
        "customresourcedefinition",
        "customresourcedefinitions",
        "customresourcedefinition.apiextensions.k8s.io",
    ];
    let is_crd =
        |t: &str| TYPES.contains(&t) || t == "customresourcedefinitions.apiextensions.k8s.io";
    let Some(first) = args.first() else {
        return Err("error: You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'".into());
    };
    if !first.contains('/') {
        if !is_crd(first) {
            return Err(format!(
                "error: the stand-in waits only for CRDs, not {first:?}"
            ));
        }
        if args.len() == 1 {
            return Err("error: resource(s) were provided, but no name was specified".into());
        }
        if args[1..].iter().any(|a| a.contains('/')) {
            return Err("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'".into());
        }
        return Ok(args[1..].to_vec());
    }
    args.iter()
        .map(|a| match a.split_once('/') {
            Some((t, n)) if is_crd(t) && !n.is_empty() => Ok(n.to_string()),
            Some((t, _)) if !is_crd(t) => Err(format!(
                "error: the stand-in waits only for CRDs, not {t:?}"
            )),
            _ => Err(
                "error: arguments in resource/name form must have a single resource and name"
                    .to_string(),
            ),
        })
        .collect()
}

fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "Node"
            | "PriorityClass"
            | "StorageClass"
            | "APIService"
            | "Installation"
            | "APIServer"
            | "PodSecurityPolicy"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
    )
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `2026-11-27T07:30:22Z` → unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let (y2, m2) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m2 - 3) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 2 * 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

pub(crate) fn table(rows: &[Vec<String>], no_headers: bool) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map(|c| c.len()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (ri, r) in rows.iter().enumerate() {
        if ri == 0 && no_headers {
            continue;
        }
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn uid(seed: &str) -> String {
    let h = util::sha256_hex(seed.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Node as the API returns it.
pub fn node_json(n: &state::Node, now: i64) -> Value {
    let ready = n.ready(now);
    let (reason, message) = match ready {
        "True" => ("KubeletReady", "kubelet is posting ready status"),
        "False" => (
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        ),
        _ => ("NodeStatusUnknown", "Kubelet stopped posting node status."),
    };
    let mut spec = serde_json::Map::new();
    if !n.taints.is_empty() {
        spec.insert(
            "taints".into(),
            Value::Array(
                n.taints
                    .iter()
                    .map(|t| {
                        let mut o = json!({"key": t.key, "effect": t.effect});
                        if !t.value.is_empty() {
                            o["value"] = json!(t.value);
                        }
                        o
                    })
                    .collect(),
            ),
        );
    }
    if n.unschedulable {
        spec.insert("unschedulable".into(), json!(true));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "uid": uid(&n.name),
            "creationTimestamp": util::rfc3339(n.created),
            "labels": n.labels,
            "annotations": n.annotations,
        },
        "spec": Value::Object(spec),
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.internal_ip},
                {"type": "Hostname", "address": n.name},
            ],
            "conditions": [{
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": util::rfc3339(n.heartbeat),
                "lastTransitionTime": util::rfc3339(n.created),
            }],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.6.20",
                "kernelVersion": kernel(),
                "kubeletVersion": n.kubelet_version,
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
            },
        },
    })
}

// The fields of a pod the tests and kubeforge read, one argument each.
#[allow(clippy::too_many_arguments)]
fn pod(
    name: &str,
    ns: &str,
    node: &str,
    labels: Value,
    owner: Option<(&str, &str)>,
    phase: &str,
    ready: bool,
    created: i64,
) -> Value {
    let mut meta = json!({"name": name, "namespace": ns, "labels": labels, "uid": uid(&format!("{ns}/{name}")), "creationTimestamp": util::rfc3339(created)});
    if let Some((kind, oname)) = owner {
        meta["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": oname, "controller": true}]);
    }
    let mut spec = json!({"containers": [{"name": name.split('-').next().unwrap_or(name)}]});
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    })
}

fn suffix(seed: &str) -> String {
    const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    util::sha256_hex(seed.as_bytes())
        .bytes()
        .take(5)
        .map(|b| A[b as usize % A.len()] as char)
        .collect()
}

/// The kube-system Secrets of the cluster: its bootstrap tokens that have not expired,
/// `kubeadm-certs` while uploaded certificates are there, and two every cluster has.
pub fn secrets_of(cl: &Cluster, now: i64) -> Vec<String> {
    let mut names: Vec<String> = cl
        .bootstrap_tokens
        .iter()
        .filter(|t| t.valid(now))
        .map(|t| format!("bootstrap-token-{}", t.id))
        .collect();
    if cl.uploaded_certs.as_ref().is_some_and(|u| !u.deleted) {
        names.push("kubeadm-certs".into());
    }
    names.extend(["kube-proxy-token".into(), "bootstrap-signer-token".into()]);
    names.sort();
    names
}

fn is_daemonsets(kind: &str) -> bool {
    matches!(kind, "daemonsets" | "daemonset" | "ds")
}

/// The DaemonSets whose pods `pods` are, with their rollout status: every pod runs the current
/// template; `numberReady` counts the ready ones.
pub fn daemonsets_of(pods: &[Value]) -> Vec<Value> {
    let mut sets: Vec<(String, String, u64, u64)> = Vec::new();
    for x in pods {
        let owner = &x["metadata"]["ownerReferences"][0];
        if owner["kind"] != "DaemonSet" {
            continue;
        }
        let ns = x["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = owner["name"].as_str().unwrap_or_default();
        let ready = u64::from(x["status"]["conditions"][0]["status"] == "True");
        match sets.iter_mut().find(|(n, m, _, _)| n == ns && m == name) {
            Some(set) => {
                set.2 += 1;
                set.3 += ready;
            }
            None => sets.push((ns.into(), name.into(), 1, ready)),
        }
    }
    sets.into_iter()
        .map(|(ns, name, desired, ready)| {
            json!({
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": name, "namespace": ns, "generation": 1, "uid": uid(&format!("ds/{ns}/{name}"))},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": desired,
                    "currentNumberScheduled": desired,
                    "updatedNumberScheduled": desired,
                    "numberReady": ready,
                    "numberAvailable": ready,
                },
            })
        })
        .collect()
}

/// How long the pod network's pod on a node takes to turn ready after its init container
/// copied the CNI configuration, which is when the node turns Ready (a real flanneld or
/// calico-node needs a few seconds to a minute more).
pub const POD_NETWORK_START_SECS: i64 = 4;

/// The pods the cluster has: static pods, kube-proxy and the pod network's DaemonSet pods
/// on every node (ready [`POD_NETWORK_START_SECS`] after the node found its CNI
/// configuration), and CoreDNS (Running once a node is Ready).
pub fn pods_of(cl: &Cluster, now: i64) -> Vec<Value> {
    let mut out = Vec::new();
    // The image of an applied or addon object's first container.
    let image_of = |name: &str| {
        cl.manifests
            .iter()
            .filter(|m| m.name == name && m.kind != "ConfigMap")
            .find_map(|m| yaml::s(&m.object, "/spec/template/spec/containers/0/image"))
            .unwrap_or_default()
    };
    let with_image = |mut p: Value, image: &str| {
        if !image.is_empty() {
            p["spec"]["containers"][0]["image"] = json!(image);
        }
        p
    };
    for s in &cl.static_pods {
        let fresh = now - s.seen <= state::HEARTBEAT_GRACE_SECS;
        let p = pod(
            &format!("{}-{}", s.component, s.node),
            "kube-system",
            &s.node,
            json!({"component": s.component, "tier": "control-plane"}),
            Some(("Node", &s.node)),
            &s.phase,
            fresh,
            s.started,
        );
        let mut p = with_image(p, &s.image);
        // A mirror pod: its manifest's annotations, and the kubelet's mark.
        let mut annotations = serde_json::Map::new();
        for (k, v) in &s.annotations {
            annotations.insert(k.clone(), json!(v));
        }
        annotations.insert(
            "kubernetes.io/config.mirror".into(),
            json!(
                util::sha256_hex(format!("{}/{}/{}", s.node, s.component, s.started).as_bytes())
                    [..32]
            ),
        );
        p["metadata"]["annotations"] = Value::Object(annotations);
        out.push(p);
    }
    let has = |name: &str| {
        cl.manifests
            .iter()
            .any(|m| m.name == name && m.kind != "ConfigMap")
    };
    for n in &cl.nodes {
        let alive = n.ready(now) != "Unknown";
        let network_up = alive
            && n.cni_ready_since
                .is_some_and(|t| now - t >= POD_NETWORK_START_SECS);
        if cl.addons.iter().any(|a| a == "kube-proxy") {
            let p = pod(
                &format!("kube-proxy-{}", suffix(&n.name)),
                "kube-system",
                &n.name,
                json!({"k8s-app": "kube-proxy"}),
                Some(("DaemonSet", "kube-proxy")),
                "Running",
                alive,
                n.created,
            );
            out.push(with_image(p, image_of("kube-proxy")));
        }
        match cl.pod_network.as_deref() {
            Some("flannel") if has("kube-flannel-ds") => {
                let ns = cl
                    .manifests
                    .iter()
                    .find(|m| m.name == "kube-flannel-ds")
                    .map(|m| m.namespace.clone())
                    .unwrap_or_else(|| "kube-flannel".into());
                let p = pod(
                    &format!("kube-flannel-ds-{}", suffix(&n.name)),
                    &ns,
                    &n.name,
                    json!({"app": "flannel"}),
                    Some(("DaemonSet", "kube-flannel-ds")),
                    "Running",
                    network_up,
                    n.created,
                );
                out.push(with_image(p, image_of("kube-flannel-ds")));
            }
            Some("calico") => {
                out.push(pod(
                    &format!("calico-node-{}", suffix(&n.name)),
                    "calico-system",
                    &n.name,
                    json!({"k8s-app": "calico-node"}),
                    Some(("DaemonSet", "calico-node")),
                    "Running",
                    network_up,
                    n.created,
                ));
            }
            _ => {}
        }
    }
    let dns_image = image_of("coredns");
    if cl.addons.iter().any(|a| a == "coredns") {
        let target = cl.nodes.iter().find(|n| {
            n.ready(now) == "True"
                && !n.unschedulable
                && !n.taints.iter().any(|t| t.effect == "NoSchedule")
        });
        for i in 0..2 {
            let name = format!("coredns-66bc5c9577-{}", suffix(&format!("coredns{i}")));
            let p = match target {
                Some(n) => pod(
                    &name,
                    "kube-system",
                    &n.name,
                    json!({"k8s-app": "kube-dns"}),
                    Some(("ReplicaSet", "coredns-66bc5c9577")),
                    "Running",
                    true,
                    cl.created,
                ),
                None => pod(
                    &name,
                    "kube-system",
                    "",
                    json!({"k8s-app": "kube-dns"}),
                    Some(("ReplicaSet", "coredns-66bc5c9577")),
                    "Pending",
                    false,
                    cl.created,
                ),
            };
            out.push(with_image(p, dns_image));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_round_trip() {
        for t in [0, 1_700_000_000, 1_790_000_123] {
            assert_eq!(super::parse_rfc3339(&crate::util::rfc3339(t)), Some(t));
        }
    }
}
