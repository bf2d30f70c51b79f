//! `kubeadm upgrade plan|apply|node` (see the crate's README): the version skew policy, the
//! preflight and cluster health checks, the static pod upgrade that waits for the kubelet to
//! restart each component, the uploaded configuration, the kubelet's configuration, and the
//! addons once every control plane runs the new version. Worded as kubeadm 1.32+ (phases);
//! before 1.32 the errors and the last lines are the older ones.

use crate::api;
use crate::env::{Env, Version};
use crate::flags::{Flag, Parsed, b, v};
use crate::kubeadm::{self, CP_LABEL, Fail, Kubeadm, MANIFESTS, R, phase_err, plain};
use crate::net::{self, Verify};
use crate::pki;
use crate::preflight::{self, Outcome};
use crate::state;
use crate::util;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// kubeadm's `timeouts.upgradeManifests`: how long the kubelet has to restart a component.
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(300);
const COMPONENTS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

const COMMON: &[Flag] = &[
    v("kubeconfig"),
    v("ignore-preflight-errors"),
    // kubeadm's flags the stand-in refuses (below).
    v("config"),
    b("dry-run"),
    v("patches"),
    v("skip-phases"),
];
const APPLY: &[Flag] = &[
    b("yes").short('y'),
    b("force").short('f'),
    b("certificate-renewal"),
    b("etcd-upgrade"),
    b("allow-experimental-upgrades"),
    b("allow-release-candidate-upgrades"),
    b("print-config"),
];
const PLAN: &[Flag] = &[
    b("allow-experimental-upgrades"),
    b("allow-release-candidate-upgrades"),
    b("print-config"),
    v("output").short('o'),
];
const NODE: &[Flag] = &[b("certificate-renewal"), b("etcd-upgrade")];
const NOT_SIMULATED: &[&str] = &[
    "config",
    "dry-run",
    "patches",
    "skip-phases",
    "print-config",
    "output",
];

/// Runs `kubeadm upgrade plan|apply|node`.
pub(crate) fn run(k: &Kubeadm, cmd: &str, extra: &[&str], rest: &[String]) -> R<i32> {
    let mut local = COMMON.to_vec();
    local.extend_from_slice(match cmd {
        "apply" => APPLY,
        "plan" => PLAN,
        _ => NODE,
    });
    let p = kubeadm::parse(rest, &local)?;
    if let Some(f) = NOT_SIMULATED.iter().find(|f| p.has(f)) {
        return Err(plain(format!(
            "the stand-in does not simulate kubeadm upgrade {cmd} --{f}"
        )));
    }
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(p.args.iter().cloned());
    args.retain(|a| !a.is_empty());
    let up = Upgrade {
        k,
        env: &k.env,
        p: &p,
        phased: k.env.version.minor >= 32,
    };
    if cmd == "node" {
        if let Some(a) = args.first() {
            return Err(kubeadm::unknown(a, "kubeadm upgrade node"));
        }
        return up.node();
    }
    // cmdutil.ValidateExactArgNumber's words.
    if args.len() > 1 {
        return Err(plain(
            "too many arguments. Required arguments: [version]".to_string(),
        ));
    }
    match (cmd, args.first()) {
        ("plan", a) => up.plan(a.map(|s| s.as_str())),
        (_, Some(a)) => up.apply(a),
        (_, None) => Err(plain(
            "missing one or more required arguments. Required arguments: [version]".to_string(),
        )),
    }
}

/// A version asked for: as given normalised (`v1.34.3`), parsed, and whether it is a
/// pre-release.
struct Target {
    text: String,
    version: Version,
    unstable: bool,
}

fn target(s: &str) -> Result<Target, String> {
    let body = s.trim().strip_prefix('v').unwrap_or(s.trim());
    let core = body.split(['-', '+']).next().unwrap_or_default();
    let semver = core.split('.').count() == 3
        && core
            .split('.')
            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
    match Version::parse(body) {
        Some(version) if semver => Ok(Target {
            text: format!("v{body}"),
            version,
            unstable: body.contains('-'),
        }),
        _ => Err(format!(
            "version {s:?} doesn't match patterns for neither semantic version nor labels (stable, latest, ...)"
        )),
    }
}

/// kubeadm's EnforceVersionPolicies: (mandatory, skippable) errors.
fn policy(
    t: &Target,
    cluster: Version,
    kubeadm: Version,
    kubelets: &[String],
    allow_unstable: bool,
) -> (Vec<String>, Vec<String>) {
    let (mut mandatory, mut skippable) = (Vec::new(), Vec::new());
    let (new, name) = (t.version, &t.text);
    let minimum = Version {
        major: kubeadm.major,
        minor: kubeadm.minor.saturating_sub(1),
        patch: 0,
    };
    if new < minimum {
        mandatory.push(format!(
            "Specified version to upgrade to {name:?} is equal to or lower than the minimum supported version \"{cluster}\". Please specify a higher version to upgrade to"
        ));
    }
    // Fatal for released versions; a pre-release may pass them with --force.
    let mut hard = Vec::new();
    if new.minor > cluster.minor + 1 {
        hard.push(format!(
            "Specified version to upgrade to {name:?} is too high; kubeadm can upgrade only 1 minor version at a time"
        ));
    }
    if new.minor + 1 < cluster.minor {
        hard.push(format!(
            "Specified version to downgrade to {name:?} is too low; kubeadm can downgrade only 1 minor version at a time"
        ));
    }
    if kubeadm < new && new.minor > kubeadm.minor {
        hard.push(format!(
            "Specified version to upgrade to {name:?} is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported",
            new.minor, kubeadm.minor
        ));
    }
    if t.unstable {
        skippable.append(&mut hard);
    } else {
        mandatory.append(&mut hard);
    }
    if kubeadm < new && new.minor <= kubeadm.minor {
        skippable.push(format!(
            "Specified version to upgrade to {name:?} is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"
        ));
    }
    if kubeadm.major > new.major || kubeadm.minor > new.minor {
        skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version {}.{}",
            kubeadm.major, kubeadm.minor
        ));
    }
    if t.unstable && !allow_unstable {
        skippable.push(format!(
            "Specified version to upgrade to {name:?} is an unstable version and such upgrades weren't allowed via setting the --allow-*-upgrades flags"
        ));
    }
    // Kubelets may be 3 minors older than the control plane (1.28+).
    let too_old: Vec<&str> = kubelets
        .iter()
        .filter(|k| Version::parse(k).is_some_and(|kv| new.minor > kv.minor + 3))
        .map(|s| s.as_str())
        .collect();
    if !too_old.is_empty() {
        skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            too_old.join(" ")
        ));
    }
    (mandatory, skippable)
}

fn error_list(errs: &[String]) -> String {
    errs.iter().map(|e| format!("\t- {e}\n")).collect()
}

/// The images of the addons kubeadm installs: (CoreDNS, kube-proxy).
pub fn addon_images(c: &api::Cluster) -> (String, String) {
    (
        format!("{}/coredns:{}", c.dns_image_repository, c.dns_image_tag),
        format!("{}/kube-proxy:{}", c.image_repository, c.kubernetes_version),
    )
}

/// The record of an addon in the state: just what its pods' image needs.
pub fn addon_object(kind: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}},
    })
}

/// `2026-11-27-07-30-22`, as kubeadm names its backup directories.
fn stamp_now() -> String {
    util::rfc3339(util::now())
        .trim_end_matches('Z')
        .replace(['T', ':'], "-")
}

/// The CRI socket of this host's kubelet (kubeadm-flags.env), else kubeadm's default.
fn cri_socket(env: &Env) -> String {
    std::fs::read_to_string(env.path("/var/lib/kubelet/kubeadm-flags.env"))
        .ok()
        .and_then(|s| {
            s.split(['"', ' ']).find_map(|w| {
                w.strip_prefix("--container-runtime-endpoint=")
                    .map(String::from)
            })
        })
        .unwrap_or_else(|| api::DEFAULT_CRI_SOCKET.into())
}

/// A manifest with its container's image replaced: (the manifest as it is, as it would be),
/// both rendered alike so that they compare.
fn with_image(text: &str, image: &str) -> Option<(String, String)> {
    let mut v: Value = serde_saphyr::from_str(text).ok()?;
    let current = pki::to_yaml(&v);
    *v.pointer_mut("/spec/containers/0/image")? = json!(image);
    Some((current, pki::to_yaml(&v)))
}

struct Upgrade<'a> {
    k: &'a Kubeadm,
    env: &'a Env,
    p: &'a Parsed,
    /// kubeadm 1.32+: `upgrade apply` and `upgrade node` run as phases and word their ends so.
    phased: bool,
}

impl Upgrade<'_> {
    fn fail(&self, phase: &str, e: impl Into<String>) -> Fail {
        if self.phased {
            phase_err(phase, e)
        } else {
            plain(e)
        }
    }

    fn ignored(&self) -> Vec<String> {
        self.p.list("ignore-preflight-errors")
    }

    fn on(&self, flag: &str) -> bool {
        self.p.get(flag) != Some("false")
    }

    /// Connects through a kubeconfig as kubeadm's client does; returns the cluster's CA hash,
    /// the cluster and the API server's version.
    fn connect(&self, kubeconfig: &str) -> R<(String, state::Cluster, Version)> {
        let client_err = |e: String| {
            plain(format!(
                "couldn't create a Kubernetes client from file {kubeconfig:?}: {e}"
            ))
        };
        if let Err(e) = std::fs::metadata(self.env.path(kubeconfig)) {
            return Err(client_err(format!(
                "failed to load admin kubeconfig: open {kubeconfig}: {}",
                crate::util_io_text(&e)
            )));
        }
        let kc = pki::read_kubeconfig(self.env, &self.env.path(kubeconfig)).map_err(client_err)?;
        let fetch = |e: String| plain(format!("unable to fetch the kubeadm-config ConfigMap: {e}"));
        let hash = self.k.connect_admin(kubeconfig).map_err(fetch)?;
        let (_, body, _) = net::https_get(
            &kc.server,
            "/version",
            Verify::Ca(&kc.ca_pem),
            Duration::from_secs(10),
        )
        .map_err(|e| fetch(format!("Get \"{}/version?timeout=10s\": {e}", kc.server)))?;
        let server = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["gitVersion"].as_str().and_then(Version::parse))
            .ok_or_else(|| {
                plain(format!(
                    "[upgrade/versions] FATAL: Unable to fetch cluster version: Couldn't fetch cluster version from the API Server: {body}"
                ))
            })?;
        let st = self.k.store.read().map_err(|e| plain(e.to_string()))?;
        let cl = st
            .cluster(&hash)
            .cloned()
            .ok_or_else(|| fetch("configmaps \"kubeadm-config\" not found".into()))?;
        println!(
            "[upgrade] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
        );
        println!(
            "[upgrade] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it."
        );
        Ok((hash, cl, server))
    }

    /// The root check, the CoreDNS migration checks and the cluster health checks of `apply`
    /// and `plan`.
    fn checks(&self, cl: &state::Cluster, ignore: &[String]) -> R<()> {
        let run = |checks| preflight::run(checks, ignore).map_err(|e| self.fail("preflight", e));
        println!("[upgrade/preflight] Running preflight checks");
        run(vec![preflight::is_privileged()])?;
        // Without the CoreDNS addon kubeadm finds no Corefile and no version: the migration
        // library refuses to migrate from "" (checking plugins from "" to "" passes).
        let mut dns = vec![outcome("CoreDNSUnsupportedPlugins", None)];
        let no_dns = !cl.addons.iter().any(|a| a == "coredns");
        dns.push(outcome(
            "CoreDNSMigration",
            no_dns.then(|| "CoreDNS will not be upgraded: start version '' not supported".into()),
        ));
        run(dns)?;
        println!("[upgrade] Running cluster health checks");
        let now = util::now();
        let mut not_ready: Vec<&str> = cl
            .nodes
            .iter()
            .filter(|n| n.labels.contains_key(CP_LABEL) && n.ready(now) != "True")
            .map(|n| n.name.as_str())
            .collect();
        not_ready.sort();
        let missing: Vec<String> = COMPONENTS
            .iter()
            .map(|c| format!("{MANIFESTS}/{c}.yaml"))
            .filter(|f| !self.env.path(f).exists())
            .collect();
        run(vec![
            outcome(
                "ControlPlaneNodesReady",
                (!not_ready.is_empty()).then(|| {
                    format!(
                        "there are NotReady control-planes in the cluster: [{}]",
                        not_ready.join(" ")
                    )
                }),
            ),
            outcome(
                "StaticPodManifest",
                (!missing.is_empty()).then(|| format!(
                    "The control plane seems to be Static Pod-hosted, but some of the manifests don't seem to exist on disk. This probably means you're running 'kubeadm upgrade' on a remote machine, which is not supported for a Static Pod-hosted cluster. Manifest files not found: [{}]",
                    missing.join(" ")
                )),
            ),
        ])
    }

    /// The cluster's configuration at `version`.
    fn configuration(&self, cl: &state::Cluster, version: &str) -> api::Cluster {
        let mut doc = cl.cluster_configuration.clone();
        if !doc.is_object() {
            doc = json!({});
        }
        doc["kubernetesVersion"] = json!(version);
        api::Cluster::from(self.env, Some(&doc), &mut vec![])
    }

    fn pull_images(&self, c: &api::Cluster, ignore: &[String]) -> R<()> {
        println!("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster");
        println!(
            "[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection"
        );
        println!(
            "[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
        );
        let check =
            preflight::image_pull(self.env, &cri_socket(self.env), &c.images(), "IfNotPresent");
        preflight::run(vec![check], ignore).map_err(|e| self.fail("preflight", e))
    }

    fn apply(&self, version: &str) -> R<i32> {
        let env = self.env;
        let kubeconfig = self.p.get("kubeconfig").unwrap_or(ADMIN_CONF);
        let (hash, cl, cluster_version) = self.connect(kubeconfig)?;
        let ignore = self.ignored();
        self.checks(&cl, &ignore)?;
        let t = target(version).map_err(|e| self.fail("preflight", e))?;
        let (chosen, prefix) = if self.phased {
            (
                "[upgrade/preflight] You have chosen to upgrade the cluster version to",
                "[upgrade/preflight]",
            )
        } else {
            (
                "[upgrade/version] You have chosen to change the cluster version to",
                "[upgrade/version]",
            )
        };
        println!("{chosen} \"{}\"", t.text);
        println!("[upgrade/versions] Cluster version: {cluster_version}");
        println!("[upgrade/versions] kubeadm version: {}", env.version);
        let kubelets: Vec<String> = cl.nodes.iter().map(|n| n.kubelet_version.clone()).collect();
        let allow = self.p.flag("allow-experimental-upgrades")
            || (self.p.flag("allow-release-candidate-upgrades") && t.text.contains("-rc"));
        let (mandatory, skippable) = policy(&t, cluster_version, env.version, &kubelets, allow);
        let (arg, wrap) = if self.phased {
            ("the version argument", "")
        } else {
            ("the --version argument", "[upgrade/version] FATAL: ")
        };
        if !mandatory.is_empty() {
            return Err(self.fail(
                "preflight",
                format!(
                    "{wrap}{arg} is invalid due to these fatal errors:\n\n{}\nPlease fix the misalignments highlighted above and try upgrading again",
                    error_list(&mandatory)
                ),
            ));
        }
        let force = self.p.flag("force");
        if !skippable.is_empty() {
            if !force {
                return Err(self.fail(
                    "preflight",
                    format!(
                        "{wrap}{arg} is invalid due to these errors:\n\n{}\nCan be bypassed if you pass the --force flag",
                        error_list(&skippable)
                    ),
                ));
            }
            print!(
                "{prefix} Found {} potential version compatibility errors but skipping since the --force flag is set: \n\n{}",
                skippable.len(),
                error_list(&skippable)
            );
        }
        if !(self.p.flag("yes") || force) {
            use std::io::{BufRead, Write};
            print!("[upgrade] Are you sure you want to proceed? [y/N]: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let answer = line.trim_end_matches(['\n', '\r']).to_lowercase();
            if answer != "y" && answer != "yes" {
                return Err(self.fail(
                    "preflight",
                    "won't proceed; the user didn't answer (Y|y) in order to continue",
                ));
            }
        }
        let c = self.configuration(&cl, &t.text);
        self.pull_images(&c, &ignore)?;
        let node = kubeadm::kubelet_node_name(env);
        println!(
            "[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version \"{}\" (timeout: {})...",
            t.text,
            util::format_duration(MANIFEST_TIMEOUT)
        );
        self.static_pods(&hash, &node, &c)
            .map_err(|e| self.fail("control-plane", e))?;
        println!(
            "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace"
        );
        println!(
            "[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster"
        );
        let (h, v) = (hash.clone(), t.text.clone());
        self.k
            .store
            .update(move |s| {
                if let Some(c) = s.cluster_mut(&h) {
                    c.kubernetes_version = v.clone();
                    c.cluster_configuration["kubernetesVersion"] = json!(v);
                }
            })
            .map_err(|e| self.fail("upload-config", e.to_string()))?;
        println!(
            "[upgrade/kubeconfig] The kubeconfig files for this node were successfully upgraded!"
        );
        self.kubelet_config(&cl, &c)
            .map_err(|e| self.fail("kubelet-config", e))?;
        println!(
            "[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules"
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
        self.addons(&hash, &node, &c)
            .map_err(|e| self.fail("addon", e))?;
        if self.phased {
            println!(
                "\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{}\".\n",
                t.text
            );
            println!(
                "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."
            );
        } else {
            println!(
                "\n[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{}\". Enjoy!\n",
                t.text
            );
            println!(
                "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so."
            );
        }
        Ok(0)
    }

    fn node(&self) -> R<i32> {
        let env = self.env;
        let control_plane = env
            .path(format!("{MANIFESTS}/kube-apiserver.yaml"))
            .exists();
        // Since 1.30 a control plane reads the cluster through admin.conf.
        let default = if control_plane && env.version.minor >= 30 {
            ADMIN_CONF
        } else {
            KUBELET_CONF
        };
        let kubeconfig = self.p.get("kubeconfig").unwrap_or(default);
        let (hash, cl, _) = self.connect(kubeconfig)?;
        let ignore = self.ignored();
        let c = self.configuration(&cl, &cl.kubernetes_version);
        println!("[upgrade/preflight] Running pre-flight checks");
        preflight::run(vec![preflight::is_privileged()], &ignore)
            .map_err(|e| self.fail("preflight", e))?;
        let not_cp = "Skipping phase. Not a control plane node.";
        let node = kubeadm::kubelet_node_name(env);
        if control_plane {
            self.pull_images(&c, &ignore)?;
            println!(
                "[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version \"{}\"...",
                c.kubernetes_version
            );
            self.static_pods(&hash, &node, &c).map_err(|e| {
                self.fail(
                    "control-plane",
                    format!("couldn't complete the static pod upgrade: {e}"),
                )
            })?;
            println!(
                "[upgrade/kubeconfig] The kubeconfig files for this node were successfully upgraded!"
            );
        } else {
            println!("[upgrade/preflight] Skipping prepull. Not a control plane node.");
            println!("[upgrade/control-plane] {not_cp}");
            println!("[upgrade/kubeconfig] {not_cp}");
        }
        self.kubelet_config(&cl, &c)
            .map_err(|e| self.fail("kubelet-config", e))?;
        if control_plane {
            self.addons(&hash, &node, &c)
                .map_err(|e| self.fail("addon", e))?;
        } else {
            println!("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.");
            println!(
                "[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node."
            );
        }
        if !self.phased {
            println!("[upgrade] The configuration for this node was successfully updated!");
            println!(
                "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."
            );
        }
        Ok(0)
    }

    fn plan(&self, version: Option<&str>) -> R<i32> {
        let env = self.env;
        let kubeconfig = self.p.get("kubeconfig").unwrap_or(ADMIN_CONF);
        let (_, cl, cluster_version) = self.connect(kubeconfig)?;
        let ignore = self.ignored();
        self.checks(&cl, &ignore)?;
        println!("[upgrade] Fetching available versions to upgrade to");
        let t = match version {
            Some(v) => target(v).map_err(|e| self.fail("preflight", e))?,
            None => {
                // Offline, kubeadm falls back to its own version.
                let mut warnings = Vec::new();
                api::Cluster::from(env, None, &mut warnings);
                for w in warnings {
                    eprintln!("{w}");
                }
                target(&env.version.to_string()).map_err(plain)?
            }
        };
        println!("[upgrade/versions] Cluster version: {cluster_version}");
        println!("[upgrade/versions] kubeadm version: {}", env.version);
        println!("[upgrade/versions] Target version: {}", t.text);
        println!(
            "[upgrade/versions] Latest version in the v{}.{} series: {}",
            cluster_version.major, cluster_version.minor, t.text
        );
        if t.version <= cluster_version {
            println!("\nAwesome, you're up-to-date! Enjoy!");
            return Ok(0);
        }
        let c = self.configuration(&cl, &t.text);
        let tag = |image: &str| {
            image
                .rsplit_once(':')
                .map(|(_, t)| t.to_string())
                .unwrap_or_default()
        };
        let mut kubelets = vec![row(["COMPONENT", "NODE", "CURRENT", "TARGET"])];
        for n in &cl.nodes {
            kubelets.push(row(["kubelet", &n.name, &n.kubelet_version, &t.text]));
        }
        println!(
            "\nComponents that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':"
        );
        crate::kubectl::table(&kubelets, false);
        let mut cps: Vec<&str> = cl
            .nodes
            .iter()
            .filter(|n| n.labels.contains_key(CP_LABEL))
            .map(|n| n.name.as_str())
            .collect();
        cps.sort();
        let current = |node: &str, comp: &str| {
            cl.static_pods
                .iter()
                .find(|p| p.node == node && p.component == comp)
                .map(|p| tag(&p.image))
        };
        let mut rows = vec![row(["COMPONENT", "NODE", "CURRENT", "TARGET"])];
        for comp in COMPONENTS {
            for n in &cps {
                if let Some(cur) = current(n, comp) {
                    rows.push(row([comp, n, &cur, &t.text]));
                }
            }
        }
        let addon = |name: &str| {
            cl.manifests
                .iter()
                .find(|m| m.name == name && m.namespace == "kube-system" && m.kind != "ConfigMap")
                .and_then(|m| m.object.pointer("/spec/template/spec/containers/0/image"))
                .and_then(Value::as_str)
                .map(tag)
                .unwrap_or_default()
        };
        let (dns_image, _) = addon_images(&c);
        rows.push(row([
            "kube-proxy",
            "",
            addon("kube-proxy").trim_start_matches('v'),
            &t.text,
        ]));
        rows.push(row(["CoreDNS", "", &addon("coredns"), &tag(&dns_image)]));
        for n in &cps {
            if let Some(cur) = current(n, "etcd") {
                rows.push(row(["etcd", n, &cur, &c.etcd_image_tag]));
            }
        }
        if t.version.minor == cluster_version.minor {
            println!(
                "\nUpgrade to the latest version in the v{}.{} series:\n",
                cluster_version.major, cluster_version.minor
            );
        } else {
            println!("\nUpgrade to the latest stable version:\n");
        }
        crate::kubectl::table(&rows, false);
        println!("\nYou can now apply the upgrade by executing the following command:\n");
        println!("\tkubeadm upgrade apply {}\n", t.text);
        if env.version < t.version {
            println!(
                "Note: Before you can perform this upgrade, you have to update kubeadm to {}.\n",
                t.text
            );
        }
        println!("_____________________________________________________________________\n");
        Ok(0)
    }

    /// kubeadm's static pod upgrade of this node: each component's manifest with the new
    /// image (etcd first, when `--etcd-upgrade` and its image changes), the old one backed up,
    /// then waiting for the kubelet to restart it; on a timeout every manifest changed so far
    /// is put back.
    fn static_pods(&self, hash: &str, node: &str, c: &api::Cluster) -> Result<(), String> {
        let env = self.env;
        let renew = self.on("certificate-renewal");
        let mut components: Vec<(&str, String)> = Vec::new();
        if self.on("etcd-upgrade") && env.path(format!("{MANIFESTS}/etcd.yaml")).exists() {
            let repo = crate::yaml::s(&c.doc, "/etcd/local/imageRepository")
                .unwrap_or(&c.image_repository);
            components.push(("etcd", format!("{repo}/etcd:{}", c.etcd_image_tag)));
        }
        for comp in COMPONENTS {
            components.push((
                comp,
                format!("{}/{comp}:{}", c.image_repository, c.kubernetes_version),
            ));
        }
        let stamp = stamp_now();
        let new_dir = format!(
            "/etc/kubernetes/tmp/kubeadm-upgraded-manifests{}",
            std::process::id()
        );
        let backup_dir = format!("/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}");
        println!("[upgrade/staticpods] Writing new Static Pod manifests to {new_dir:?}");
        let mut moved: Vec<(String, String)> = Vec::new();
        let timeout = util::format_duration(MANIFEST_TIMEOUT);
        for (comp, image) in components {
            let path = format!("{MANIFESTS}/{comp}.yaml");
            let text = std::fs::read_to_string(env.path(&path))
                .map_err(|e| format!("failed to read {path}: {}", crate::util_io_text(&e)))?;
            let (current, new) = with_image(&text, &image)
                .ok_or_else(|| format!("failed to decode the static Pod manifest {path}"))?;
            let write = |p: &str, t: &str| {
                util::write_atomic(&env.path(p), t.as_bytes(), 0o600)
                    .map_err(|e| format!("{p}: {e}"))
            };
            write(&format!("{new_dir}/{comp}.yaml"), &new)?;
            println!("[upgrade/staticpods] Preparing for {comp:?} upgrade");
            if current == new {
                println!(
                    "[upgrade/staticpods] Current and new manifests of {comp} are equal, skipping upgrade"
                );
                continue;
            }
            if renew {
                let certs: &[&str] = match comp {
                    "etcd" => &["etcd-server", "etcd-peer", "etcd-healthcheck-client"],
                    "kube-apiserver" => &[
                        "apiserver",
                        "apiserver-kubelet-client",
                        "front-proxy-client",
                        "apiserver-etcd-client",
                    ],
                    "kube-controller-manager" => &["controller-manager.conf"],
                    _ => &["scheduler.conf"],
                };
                for cert in certs {
                    println!("[upgrade/staticpods] Renewing {cert} certificate");
                }
            }
            let backup = format!("{backup_dir}/{comp}.yaml");
            write(&backup, &text)?;
            write(&path, &new)?;
            moved.push((path.clone(), text));
            println!(
                "[upgrade/staticpods] Moving new manifest to {path:?} and backing up old manifest to {backup:?}"
            );
            println!("[upgrade/staticpods] Waiting for the kubelet to restart the component");
            println!("[upgrade/staticpods] This can take up to {timeout}");
            let start = Instant::now();
            loop {
                let st = self.k.store.read().map_err(|e| e.to_string())?;
                let now = util::now();
                let restarted = st.cluster(hash).is_some_and(|c| {
                    c.static_pods.iter().any(|p| {
                        p.node == node
                            && p.component == comp
                            && p.image == image
                            && now - p.seen <= state::HEARTBEAT_GRACE_SECS
                    }) && (comp != "etcd" || c.etcd_quorum(now))
                });
                if restarted {
                    break;
                }
                if start.elapsed() > MANIFEST_TIMEOUT {
                    for (p, t) in &moved {
                        let _ = write(p, t);
                    }
                    return Err(format!(
                        "couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: static Pod hash for component {comp} on Node {node} did not change after {timeout}: timed out waiting for the condition"
                    ));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            println!("[apiclient] Found 1 Pods for label selector component={comp}");
            println!("[upgrade/staticpods] Component {comp:?} upgraded successfully!");
            if comp == "etcd" {
                println!("[upgrade/etcd] Waiting for etcd to become available");
            }
        }
        println!(
            "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!"
        );
        Ok(())
    }

    /// `/var/lib/kubelet/config.yaml` from the cluster's kubelet-config, the old one backed up.
    fn kubelet_config(&self, cl: &state::Cluster, c: &api::Cluster) -> Result<(), String> {
        let env = self.env;
        let cfg = if cl.kubelet_configuration.is_null() {
            api::kubelet_config(c, None)
        } else {
            cl.kubelet_configuration.clone()
        };
        let dir = format!("/etc/kubernetes/tmp/kubeadm-kubelet-config-{}", stamp_now());
        eprintln!(
            "{}Using temporary directory {dir} for kubelet config. To override it set the environment variable KUBEADM_UPGRADE_DRYRUN_DIR",
            util::klog('W', "postupgrade.go:105")
        );
        println!("[upgrade] Backing up kubelet config file to {dir}/config.yaml");
        if let Ok(old) = std::fs::read(env.path(KUBELET_CONFIG)) {
            util::write_atomic(&env.path(format!("{dir}/config.yaml")), &old, 0o644)
                .map_err(|e| e.to_string())?;
        }
        println!("[kubelet-start] Writing kubelet configuration to file \"{KUBELET_CONFIG}\"");
        util::write_atomic(
            &env.path(KUBELET_CONFIG),
            pki::to_yaml(&cfg).as_bytes(),
            0o644,
        )
        .map_err(|e| e.to_string())?;
        println!(
            "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!"
        );
        Ok(())
    }

    /// The addons, once every control plane's kube-apiserver runs this node's image (kubeadm
    /// compares the mirror pods' images).
    fn addons(&self, hash: &str, node: &str, c: &api::Cluster) -> Result<(), String> {
        let st = self.k.store.read().map_err(|e| e.to_string())?;
        let cl = st
            .cluster(hash)
            .ok_or("the cluster is not in the shared state")?;
        let apiservers = || {
            cl.static_pods
                .iter()
                .filter(|p| p.component == "kube-apiserver")
        };
        let mine = apiservers()
            .find(|p| p.node == node)
            .map(|p| p.image.clone())
            .ok_or_else(|| format!("failed to determine whether all the control plane instances have been upgraded: no image found for the kube-apiserver pod on node {node}"))?;
        let mut behind: Vec<String> = apiservers()
            .filter(|p| p.image != mine)
            .map(|p| p.node.clone())
            .collect();
        behind.sort();
        behind.dedup();
        if !behind.is_empty() {
            for _ in ["coredns", "kube-proxy"] {
                println!(
                    "[upgrade/addon] Skipping upgrade of addons because control plane instances [{}] have not been upgraded",
                    behind.join(" ")
                );
            }
            return Ok(());
        }
        let installed: Vec<String> = cl.addons.clone();
        let (dns, proxy) = addon_images(c);
        let h = hash.to_string();
        self.k
            .store
            .update(move |s| {
                if let Some(cl) = s.cluster_mut(&h) {
                    for m in cl
                        .manifests
                        .iter_mut()
                        .filter(|m| m.namespace == "kube-system")
                    {
                        match (m.kind.as_str(), m.name.as_str()) {
                            ("Deployment", "coredns") => {
                                m.object = addon_object("Deployment", "coredns", &dns)
                            }
                            ("DaemonSet", "kube-proxy") => {
                                m.object = addon_object("DaemonSet", "kube-proxy", &proxy)
                            }
                            _ => {}
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let has = |a: &str| installed.iter().any(|x| x == a);
        if has("coredns") {
            println!("[addons] Applied essential addon: CoreDNS");
        } else {
            eprintln!(
                "{}the ConfigMaps \"coredns\" in the namespace \"kube-system\" were not found. Assuming that a DNS server was not deployed for this cluster. Note that once 'kubeadm upgrade apply' supports phases you will have to skip the DNS upgrade manually",
                util::klog('W', "addons.go:110")
            );
        }
        if has("kube-proxy") {
            println!("[addons] Applied essential addon: kube-proxy");
        } else {
            eprintln!(
                "{}the ConfigMap \"kube-proxy\" in the namespace \"kube-system\" was not found. Assuming that kube-proxy was not deployed for this cluster. Note that once 'kubeadm upgrade apply' supports phases you will have to skip the kube-proxy upgrade manually",
                util::klog('W', "addons.go:145")
            );
        }
        Ok(())
    }
}

fn outcome(name: &str, error: Option<String>) -> Outcome {
    Outcome {
        name: name.into(),
        warnings: vec![],
        errors: error.into_iter().collect(),
    }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn version_policy_as_kubeadm() {
        let t = target("v1.36.0").unwrap();
        let (m, s) = policy(&t, v("v1.34.2"), v("v1.34.2"), &[], false);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("is too high; kubeadm can upgrade only 1 minor version at a time"));
        assert!(m[1].contains("(36 > 34). Such an upgrade is not supported"));
        assert!(s.is_empty(), "{s:?}");
        let t = target("1.34.3").unwrap();
        assert_eq!(t.text, "v1.34.3");
        let (m, s) = policy(&t, v("v1.34.2"), v("v1.34.2"), &[], false);
        assert!(m.is_empty());
        assert_eq!(
            s,
            vec![
                "Specified version to upgrade to \"v1.34.3\" is higher than the kubeadm version \"v1.34.2\". Upgrade kubeadm first using the tool you used to install kubeadm"
            ]
        );
        let (m, s) = policy(&t, v("v1.34.3"), v("v1.34.3"), &["v1.34.2".into()], false);
        assert!(m.is_empty() && s.is_empty(), "{m:?} {s:?}");
        let t = target("v1.33.5").unwrap();
        let (_, s) = policy(&t, v("v1.34.2"), v("v1.34.2"), &[], false);
        assert_eq!(
            s,
            vec!["Kubeadm version v1.34.2 can only be used to upgrade to Kubernetes version 1.34"]
        );
        assert!(target("latest-1.34").is_err());
        assert!(target("v1.34").is_err());
    }
}
