//! The kubeadm configuration API (`kubeadm.k8s.io/v1beta4`, and `v1beta3` while the version
//! accepts it), the component configs kubeadm takes alongside, strict decoding and validation.
//! Decoded documents are normalised to the v1beta4 shape.

use crate::env::{Env, Version};
use crate::util::{self, parse_duration};
use crate::yaml::{self, Ty};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

pub const KUBEADM_GROUP: &str = "kubeadm.k8s.io";
pub const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
pub const KUBEPROXY_API: &str = "kubeproxy.config.k8s.io/v1alpha1";
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
/// kubeadm 1.34's pinned versions of the images it does not build itself.
pub const ETCD_TAG: &str = "3.6.4-0";
pub const COREDNS_TAG: &str = "v1.12.1";
pub const PAUSE_TAG: &str = "3.10.1";

/// kubeadm 1.34's feature gates (kubeadm's own, not the components').
pub const FEATURE_GATES: &[&str] = &[
    "ControlPlaneKubeletLocalMode",
    "EtcdLearnerMode",
    "NodeLocalCRISocket",
    "RootlessControlPlane",
    "WaitForAllControlPlaneComponents",
];

fn list(go: &'static str, t: Ty) -> Ty {
    Ty::List(go, Box::new(t))
}
fn strs() -> Ty {
    list("string", Ty::Str)
}
fn arg() -> Ty {
    Ty::Obj("v1beta4.Arg", vec![("name", Ty::Str), ("value", Ty::Str)])
}
/// `extraArgs`: a list of name/value in v1beta4, a map in v1beta3.
fn args(v4: bool) -> Ty {
    if v4 {
        list("v1beta4.Arg", arg())
    } else {
        Ty::MapStr
    }
}
fn taint() -> Ty {
    Ty::Obj(
        "v1.Taint",
        vec![
            ("key", Ty::Str),
            ("value", Ty::Str),
            ("effect", Ty::Str),
            ("timeAdded", Ty::Str),
        ],
    )
}
fn node_registration(v4: bool) -> Ty {
    let mut f = vec![
        ("name", Ty::Str),
        ("criSocket", Ty::Str),
        ("taints", list("v1.Taint", taint())),
        ("kubeletExtraArgs", args(v4)),
        ("ignorePreflightErrors", strs()),
        ("imagePullPolicy", Ty::Str),
    ];
    if v4 {
        f.push(("imagePullSerial", Ty::Bool));
    }
    Ty::Obj("NodeRegistrationOptions", f)
}
fn api_endpoint() -> Ty {
    Ty::Obj(
        "APIEndpoint",
        vec![("advertiseAddress", Ty::Str), ("bindPort", Ty::Int)],
    )
}
fn patches() -> Ty {
    Ty::Obj("Patches", vec![("directory", Ty::Str)])
}
fn timeouts() -> Ty {
    Ty::Obj(
        "Timeouts",
        [
            "controlPlaneComponentHealthCheck",
            "kubeletHealthCheck",
            "kubernetesAPICall",
            "etcdAPICall",
            "tlsBootstrap",
            "discovery",
            "upgradeManifests",
        ]
        .into_iter()
        .map(|n| (n, Ty::Duration))
        .collect(),
    )
}
fn bootstrap_token() -> Ty {
    Ty::Obj(
        "BootstrapToken",
        vec![
            ("token", Ty::Str),
            ("description", Ty::Str),
            ("ttl", Ty::Duration),
            ("expires", Ty::Str),
            ("usages", strs()),
            ("groups", strs()),
        ],
    )
}
fn meta(mut f: Vec<(&'static str, Ty)>) -> Vec<(&'static str, Ty)> {
    f.insert(0, ("kind", Ty::Str));
    f.insert(0, ("apiVersion", Ty::Str));
    f
}

fn init_configuration(v4: bool) -> Ty {
    let mut f = vec![
        (
            "bootstrapTokens",
            list("v1beta4.BootstrapToken", bootstrap_token()),
        ),
        ("nodeRegistration", node_registration(v4)),
        ("localAPIEndpoint", api_endpoint()),
        ("certificateKey", Ty::Str),
        ("skipPhases", strs()),
        ("patches", patches()),
    ];
    if v4 {
        f.push(("dryRun", Ty::Bool));
        f.push(("timeouts", timeouts()));
    }
    Ty::Obj("InitConfiguration", meta(f))
}

fn volume() -> Ty {
    Ty::Obj(
        "HostPathMount",
        vec![
            ("name", Ty::Str),
            ("hostPath", Ty::Str),
            ("mountPath", Ty::Str),
            ("readOnly", Ty::Bool),
            ("pathType", Ty::Str),
        ],
    )
}
fn env_var() -> Ty {
    Ty::Obj(
        "EnvVar",
        vec![
            ("name", Ty::Str),
            ("value", Ty::Str),
            ("valueFrom", Ty::Any),
        ],
    )
}
fn component(v4: bool, name: &'static str, apiserver: bool) -> Ty {
    let mut f = vec![
        ("extraArgs", args(v4)),
        ("extraVolumes", list("v1beta4.HostPathMount", volume())),
    ];
    if v4 {
        f.push(("extraEnvs", list("v1beta4.EnvVar", env_var())));
    }
    if apiserver {
        f.push(("certSANs", strs()));
        if !v4 {
            f.push(("timeoutForControlPlane", Ty::Duration));
        }
    }
    Ty::Obj(name, f)
}

fn cluster_configuration(v4: bool) -> Ty {
    let mut local = vec![
        ("imageRepository", Ty::Str),
        ("imageTag", Ty::Str),
        ("dataDir", Ty::Str),
        ("extraArgs", args(v4)),
        ("serverCertSANs", strs()),
        ("peerCertSANs", strs()),
    ];
    if v4 {
        local.push(("extraEnvs", list("v1beta4.EnvVar", env_var())));
    }
    let etcd = Ty::Obj(
        "Etcd",
        vec![
            ("local", Ty::Obj("LocalEtcd", local)),
            (
                "external",
                Ty::Obj(
                    "ExternalEtcd",
                    vec![
                        ("endpoints", strs()),
                        ("caFile", Ty::Str),
                        ("certFile", Ty::Str),
                        ("keyFile", Ty::Str),
                    ],
                ),
            ),
        ],
    );
    let mut dns = vec![("imageRepository", Ty::Str), ("imageTag", Ty::Str)];
    if v4 {
        dns.push(("disabled", Ty::Bool));
    }
    let mut f = vec![
        ("etcd", etcd),
        (
            "networking",
            Ty::Obj(
                "Networking",
                vec![
                    ("serviceSubnet", Ty::Str),
                    ("podSubnet", Ty::Str),
                    ("dnsDomain", Ty::Str),
                ],
            ),
        ),
        ("kubernetesVersion", Ty::Str),
        ("controlPlaneEndpoint", Ty::Str),
        ("apiServer", component(v4, "APIServer", true)),
        (
            "controllerManager",
            component(v4, "ControlPlaneComponent", false),
        ),
        ("scheduler", component(v4, "ControlPlaneComponent", false)),
        ("dns", Ty::Obj("DNS", dns)),
        ("certificatesDir", Ty::Str),
        ("imageRepository", Ty::Str),
        ("featureGates", Ty::MapBool),
        ("clusterName", Ty::Str),
    ];
    if v4 {
        f.push(("proxy", Ty::Obj("Proxy", vec![("disabled", Ty::Bool)])));
        f.push(("encryptionAlgorithm", Ty::Str));
        f.push(("certificateValidityPeriod", Ty::Duration));
        f.push(("caCertificateValidityPeriod", Ty::Duration));
    }
    Ty::Obj("ClusterConfiguration", meta(f))
}

fn join_configuration(v4: bool) -> Ty {
    let mut discovery = vec![
        (
            "bootstrapToken",
            Ty::Obj(
                "BootstrapTokenDiscovery",
                vec![
                    ("token", Ty::Str),
                    ("apiServerEndpoint", Ty::Str),
                    ("caCertHashes", strs()),
                    ("unsafeSkipCAVerification", Ty::Bool),
                ],
            ),
        ),
        (
            "file",
            Ty::Obj("FileDiscovery", vec![("kubeConfigPath", Ty::Str)]),
        ),
        ("tlsBootstrapToken", Ty::Str),
    ];
    if !v4 {
        discovery.push(("timeout", Ty::Duration));
    }
    let mut f = vec![
        ("nodeRegistration", node_registration(v4)),
        ("caCertPath", Ty::Str),
        ("discovery", Ty::Obj("Discovery", discovery)),
        (
            "controlPlane",
            Ty::Obj(
                "JoinControlPlane",
                vec![
                    ("localAPIEndpoint", api_endpoint()),
                    ("certificateKey", Ty::Str),
                ],
            ),
        ),
        ("skipPhases", strs()),
        ("patches", patches()),
    ];
    if v4 {
        f.push(("dryRun", Ty::Bool));
        f.push(("timeouts", timeouts()));
    }
    Ty::Obj("JoinConfiguration", meta(f))
}

fn reset_configuration() -> Ty {
    Ty::Obj(
        "ResetConfiguration",
        meta(vec![
            ("cleanupTmpDir", Ty::Bool),
            ("certificatesDir", Ty::Str),
            ("criSocket", Ty::Str),
            ("dryRun", Ty::Bool),
            ("force", Ty::Bool),
            ("ignorePreflightErrors", strs()),
            ("skipPhases", strs()),
            ("unmountFlags", strs()),
        ]),
    )
}

/// KubeletConfiguration (kubelet.config.k8s.io/v1beta1): its top-level fields; a few typed.
fn kubelet_configuration() -> Ty {
    const FIELDS: &[&str] = &[
        "enableServer",
        "staticPodPath",
        "podLogsDir",
        "syncFrequency",
        "fileCheckFrequency",
        "httpCheckFrequency",
        "staticPodURL",
        "staticPodURLHeader",
        "address",
        "port",
        "readOnlyPort",
        "tlsCertFile",
        "tlsPrivateKeyFile",
        "tlsCipherSuites",
        "tlsMinVersion",
        "rotateCertificates",
        "serverTLSBootstrap",
        "authentication",
        "authorization",
        "registryPullQPS",
        "registryBurst",
        "imagePullCredentialsVerificationPolicy",
        "preloadedImagesVerificationAllowlist",
        "eventRecordQPS",
        "eventBurst",
        "enableDebuggingHandlers",
        "enableContentionProfiling",
        "healthzPort",
        "healthzBindAddress",
        "oomScoreAdj",
        "clusterDomain",
        "clusterDNS",
        "streamingConnectionIdleTimeout",
        "nodeStatusUpdateFrequency",
        "nodeStatusReportFrequency",
        "nodeLeaseDurationSeconds",
        "imageMinimumGCAge",
        "imageMaximumGCAge",
        "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent",
        "volumeStatsAggPeriod",
        "kubeletCgroups",
        "systemCgroups",
        "cgroupRoot",
        "cgroupsPerQOS",
        "cgroupDriver",
        "cpuManagerPolicy",
        "singleProcessOOMKill",
        "cpuManagerPolicyOptions",
        "cpuManagerReconcilePeriod",
        "memoryManagerPolicy",
        "topologyManagerPolicy",
        "topologyManagerScope",
        "topologyManagerPolicyOptions",
        "qosReserved",
        "runtimeRequestTimeout",
        "hairpinMode",
        "maxPods",
        "podCIDR",
        "podPidsLimit",
        "resolvConf",
        "runOnce",
        "cpuCFSQuota",
        "cpuCFSQuotaPeriod",
        "nodeStatusMaxImages",
        "maxOpenFiles",
        "contentType",
        "kubeAPIQPS",
        "kubeAPIBurst",
        "serializeImagePulls",
        "maxParallelImagePulls",
        "evictionHard",
        "evictionSoft",
        "evictionSoftGracePeriod",
        "evictionPressureTransitionPeriod",
        "evictionMaxPodGracePeriod",
        "evictionMinimumReclaim",
        "mergeDefaultEvictionSettings",
        "podsPerCore",
        "enableControllerAttachDetach",
        "protectKernelDefaults",
        "makeIPTablesUtilChains",
        "iptablesMasqueradeBit",
        "iptablesDropBit",
        "featureGates",
        "failSwapOn",
        "memorySwap",
        "containerLogMaxSize",
        "containerLogMaxFiles",
        "containerLogMaxWorkers",
        "containerLogMonitorInterval",
        "configMapAndSecretChangeDetectionStrategy",
        "systemReserved",
        "kubeReserved",
        "reservedSystemCPUs",
        "showHiddenMetricsForVersion",
        "systemReservedCgroup",
        "kubeReservedCgroup",
        "enforceNodeAllocatable",
        "allowedUnsafeSysctls",
        "volumePluginDir",
        "providerID",
        "kernelMemcgNotification",
        "logging",
        "enableSystemLogHandler",
        "enableSystemLogQuery",
        "shutdownGracePeriod",
        "shutdownGracePeriodCriticalPods",
        "shutdownGracePeriodByPodPriority",
        "crashLoopBackOff",
        "reservedMemory",
        "enableProfilingHandler",
        "enableDebugFlagsHandler",
        "seccompDefault",
        "memoryThrottlingFactor",
        "registerWithTaints",
        "registerNode",
        "tracing",
        "localStorageCapacityIsolation",
        "containerRuntimeEndpoint",
        "imageServiceEndpoint",
        "failCgroupV1",
        "userNamespaces",
    ];
    let mut f: Vec<(&'static str, Ty)> = FIELDS.iter().map(|n| (*n, Ty::Any)).collect();
    for (n, t) in [
        ("cgroupDriver", Ty::Str),
        ("failSwapOn", Ty::Bool),
        ("staticPodPath", Ty::Str),
        ("clusterDNS", strs()),
        ("clusterDomain", Ty::Str),
        ("containerRuntimeEndpoint", Ty::Str),
        ("maxPods", Ty::Int),
        ("featureGates", Ty::MapBool),
        ("rotateCertificates", Ty::Bool),
        ("serverTLSBootstrap", Ty::Bool),
    ] {
        if let Some(slot) = f.iter_mut().find(|(k, _)| *k == n) {
            slot.1 = t;
        }
    }
    Ty::Obj("KubeletConfiguration", meta(f))
}

fn kube_proxy_configuration() -> Ty {
    const FIELDS: &[&str] = &[
        "featureGates",
        "clientConnection",
        "hostnameOverride",
        "bindAddress",
        "healthzBindAddress",
        "metricsBindAddress",
        "bindAddressHardFail",
        "enableProfiling",
        "showHiddenMetricsForVersion",
        "mode",
        "iptables",
        "ipvs",
        "nftables",
        "winkernel",
        "detectLocalMode",
        "detectLocal",
        "clusterCIDR",
        "nodePortAddresses",
        "oomScoreAdj",
        "conntrack",
        "configSyncPeriod",
        "portRange",
        "logging",
        "windowsRunAsService",
    ];
    let mut f: Vec<(&'static str, Ty)> = FIELDS.iter().map(|n| (*n, Ty::Any)).collect();
    for (n, t) in [("mode", Ty::Str), ("clusterCIDR", Ty::Str)] {
        if let Some(slot) = f.iter_mut().find(|(k, _)| *k == n) {
            slot.1 = t;
        }
    }
    Ty::Obj("KubeProxyConfiguration", meta(f))
}

/// A decoded configuration file: the documents by kind, normalised to v1beta4.
#[derive(Clone, Debug, Default)]
pub struct ConfigFile {
    pub init: Option<Value>,
    pub cluster: Option<Value>,
    pub join: Option<Value>,
    pub reset: Option<Value>,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,
    /// Lines printed as warnings while loading.
    pub warnings: Vec<String>,
}

fn gvk_go(group: &str, version: &str, kind: &str) -> String {
    format!("schema.GroupVersionKind{{Group:\"{group}\", Version:\"{version}\", Kind:\"{kind}\"}}")
}

/// Decodes a kubeadm configuration file as kubeadm does: every document strictly.
/// `wanted` names the kubeadm kinds this command reads; other kubeadm kinds are ignored
/// with kubeadm's warning.
pub fn load(env: &Env, text: &str, wanted: &[&str]) -> Result<ConfigFile, String> {
    let docs = yaml::documents(text)?;
    let mut out = ConfigFile::default();
    for doc in docs {
        let api_version = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let kind = doc
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let (api_version, kind) = (api_version.as_str(), kind.as_str());
        if api_version.is_empty() || kind.is_empty() {
            let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
            return Err(format!(
                "invalid configuration for GroupVersionKind {g}/{v}, Kind={kind}: kind and apiVersion is mandatory information that must be specified"
            ));
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let not_registered = || {
            format!(
                "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
            )
        };
        let schema = match group {
            KUBEADM_GROUP => {
                match version {
                    "v1alpha1" | "v1alpha2" | "v1alpha3" | "v1beta1" | "v1beta2" => {
                        let use_version = match version {
                            "v1alpha1" => "v1.11",
                            "v1alpha2" => "v1.12",
                            "v1alpha3" => "v1.14",
                            "v1beta1" => "v1.14",
                            _ => "v1.22",
                        };
                        return Err(old_api(api_version, kind, use_version));
                    }
                    "v1beta3" => {
                        if !env.accepts_v1beta3() {
                            return Err(old_api(api_version, kind, "v1.36"));
                        }
                        out.warnings.push(format!(
                            "{}your configuration file uses a deprecated API spec: \"{api_version}\" (kind: \"{kind}\"). Please use 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.",
                            util::klog('W', "common.go:101")
                        ));
                    }
                    "v1beta4" => {}
                    _ => return Err(not_registered()),
                }
                let v4 = version == "v1beta4";
                let ty = match kind {
                    "InitConfiguration" => init_configuration(v4),
                    "ClusterConfiguration" => cluster_configuration(v4),
                    "JoinConfiguration" => join_configuration(v4),
                    "ResetConfiguration" if v4 => reset_configuration(),
                    "UpgradeConfiguration" if v4 => Ty::Any,
                    _ => return Err(not_registered()),
                };
                if !wanted.contains(&kind) {
                    out.warnings.push(format!(
                        "[config] WARNING: Ignored configuration document with GroupVersionKind {group}/{version}, Kind={kind}"
                    ));
                    continue;
                }
                ty
            }
            "kubelet.config.k8s.io" if kind == "KubeletConfiguration" => {
                if version != "v1beta1" {
                    return Err(not_registered());
                }
                kubelet_configuration()
            }
            "kubeproxy.config.k8s.io" if kind == "KubeProxyConfiguration" => {
                if version != "v1alpha1" {
                    return Err(not_registered());
                }
                kube_proxy_configuration()
            }
            _ => {
                out.warnings.push(format!(
                    "[config] WARNING: Ignored configuration document with GroupVersionKind {group}/{version}, Kind={kind}"
                ));
                continue;
            }
        };
        yaml::strict(&doc, &schema).map_err(|e| {
            format!(
                "error unmarshaling configuration {}: {e}",
                gvk_go(group, version, kind)
            )
        })?;
        let doc = if version == "v1beta3" {
            upgrade_v1beta3(doc)
        } else {
            doc
        };
        let kind = kind.to_string();
        let slot = match kind.as_str() {
            "InitConfiguration" => &mut out.init,
            "ClusterConfiguration" => &mut out.cluster,
            "JoinConfiguration" => &mut out.join,
            "ResetConfiguration" => &mut out.reset,
            "KubeletConfiguration" => &mut out.kubelet,
            "KubeProxyConfiguration" => &mut out.kube_proxy,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("found multiple {kind} documents"));
        }
        *slot = Some(doc);
    }
    Ok(out)
}

fn old_api(api_version: &str, kind: &str, use_version: &str) -> String {
    format!(
        "your configuration file uses an old API spec: \"{api_version}\" (kind: \"{kind}\"). Please use kubeadm {use_version} instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version."
    )
}

/// A v1beta3 map of extra arguments as the v1beta4 list (sorted by name, as the conversion does).
fn map_to_args(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Array(
            m.iter()
                .map(|(k, x)| json!({"name": k, "value": x.as_str().unwrap_or_default()}))
                .collect(),
        ),
        None => v.clone(),
    }
}

/// Converts a v1beta3 document to the v1beta4 shape (what `kubeadm config migrate` does).
fn upgrade_v1beta3(mut doc: Value) -> Value {
    for ptr in [
        "/nodeRegistration/kubeletExtraArgs",
        "/apiServer/extraArgs",
        "/controllerManager/extraArgs",
        "/scheduler/extraArgs",
        "/etcd/local/extraArgs",
    ] {
        if let Some(x) = doc.pointer_mut(ptr) {
            *x = map_to_args(x);
        }
    }
    if let Some(t) = doc.pointer("/apiServer/timeoutForControlPlane").cloned()
        && let Some(api) = doc.get_mut("apiServer").and_then(|a| a.as_object_mut())
    {
        api.remove("timeoutForControlPlane");
        doc["timeouts"] = json!({"controlPlaneComponentHealthCheck": t});
    }
    if let Some(t) = doc.pointer("/discovery/timeout").cloned()
        && let Some(d) = doc.get_mut("discovery").and_then(|a| a.as_object_mut())
    {
        d.remove("timeout");
        doc["timeouts"] = json!({"discovery": t});
    }
    if let Some(o) = doc.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            Value::String(format!("{KUBEADM_GROUP}/v1beta4")),
        );
    }
    doc
}

/// One name/value argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

pub fn args_of(v: &Value, ptr: &str) -> Vec<Arg> {
    v.pointer(ptr)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .map(|x| Arg {
                    name: x["name"].as_str().unwrap_or_default().to_string(),
                    value: x["value"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strs_of(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn dur_of(v: &Value, ptr: &str, default: Duration) -> Duration {
    yaml::s(v, ptr).and_then(parse_duration).unwrap_or(default)
}

/// `nodeRegistration`.
#[derive(Clone, Debug, Default)]
pub struct NodeRegistration {
    pub name: String,
    pub cri_socket: String,
    /// `None`: not given (kubeadm's default applies); `Some(empty)`: no taints.
    pub taints: Option<Vec<crate::state::Taint>>,
    pub kubelet_extra_args: Vec<Arg>,
    pub ignore_preflight_errors: Vec<String>,
    pub image_pull_policy: String,
}

impl NodeRegistration {
    fn from(env: &Env, v: &Value, warnings: &mut Vec<String>) -> NodeRegistration {
        let mut cri = yaml::s(v, "/nodeRegistration/criSocket")
            .unwrap_or(DEFAULT_CRI_SOCKET)
            .to_string();
        if !cri.contains("://") {
            warnings.push(format!(
                "{}Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet errors in the future. Automatically prepending scheme \"unix\" to the \"criSocket\" with value \"{cri}\". Please update your configuration!",
                util::klog('W', "initconfiguration.go:125")
            ));
            cri = format!("unix://{cri}");
        }
        let taints = match v.pointer("/nodeRegistration/taints") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|t| crate::state::Taint {
                        key: t["key"].as_str().unwrap_or_default().into(),
                        value: t["value"].as_str().unwrap_or_default().into(),
                        effect: t["effect"].as_str().unwrap_or_default().into(),
                    })
                    .collect(),
            ),
            Some(_) => None,
        };
        NodeRegistration {
            name: yaml::s(v, "/nodeRegistration/name")
                .map(|s| s.to_string())
                .unwrap_or_else(|| env.hostname.to_lowercase()),
            cri_socket: cri,
            taints,
            kubelet_extra_args: args_of(v, "/nodeRegistration/kubeletExtraArgs"),
            ignore_preflight_errors: strs_of(v, "/nodeRegistration/ignorePreflightErrors"),
            image_pull_policy: yaml::s(v, "/nodeRegistration/imagePullPolicy")
                .unwrap_or("IfNotPresent")
                .to_string(),
        }
    }

    /// The socket's file-system path (`unix:///run/x.sock` → `/run/x.sock`).
    pub fn socket_path(&self) -> String {
        self.cri_socket
            .strip_prefix("unix://")
            .unwrap_or(&self.cri_socket)
            .to_string()
    }

    pub fn extra_arg(&self, name: &str) -> Option<&str> {
        self.kubelet_extra_args
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// What kubeadm init and a control-plane join need from a ClusterConfiguration.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The document, normalised to v1beta4 with kubeadm's defaults filled in.
    pub doc: Value,
    pub kubernetes_version: String,
    pub control_plane_endpoint: String,
    pub image_repository: String,
    pub etcd_image_tag: String,
    pub etcd_data_dir: String,
    pub dns_image_tag: String,
    pub dns_image_repository: String,
    pub dns_disabled: bool,
    pub proxy_disabled: bool,
    pub pod_subnet: String,
    pub service_subnet: String,
    pub dns_domain: String,
    pub cert_sans: Vec<String>,
    pub certificates_dir: String,
    pub cluster_name: String,
}

impl Cluster {
    pub fn from(env: &Env, doc: Option<&Value>, warnings: &mut Vec<String>) -> Cluster {
        let empty = json!({});
        let v = doc.unwrap_or(&empty);
        let kubernetes_version = match yaml::s(v, "/kubernetesVersion") {
            Some(k) if k.starts_with('v') || Version::parse(k).is_some() => {
                if k.starts_with('v') {
                    k.to_string()
                } else {
                    format!("v{k}")
                }
            }
            _ => {
                warnings.push(format!(
                    "{}could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable-1.txt\": Get \"https://dl.k8s.io/release/stable-1.txt\": dial tcp: lookup dl.k8s.io on 127.0.0.53:53: no such host",
                    util::klog('W', "version.go:109")
                ));
                warnings.push(format!(
                    "{}falling back to the local client version: {}",
                    util::klog('W', "version.go:110"),
                    env.version
                ));
                env.version.to_string()
            }
        };
        let image_repository = yaml::s(v, "/imageRepository")
            .unwrap_or(DEFAULT_IMAGE_REPOSITORY)
            .to_string();
        let dns_domain = yaml::s(v, "/networking/dnsDomain")
            .unwrap_or("cluster.local")
            .to_string();
        let mut c = Cluster {
            doc: v.clone(),
            kubernetes_version,
            control_plane_endpoint: yaml::s(v, "/controlPlaneEndpoint")
                .unwrap_or_default()
                .to_string(),
            etcd_image_tag: yaml::s(v, "/etcd/local/imageTag")
                .unwrap_or(ETCD_TAG)
                .to_string(),
            etcd_data_dir: yaml::s(v, "/etcd/local/dataDir")
                .unwrap_or("/var/lib/etcd")
                .to_string(),
            dns_image_tag: yaml::s(v, "/dns/imageTag")
                .unwrap_or(COREDNS_TAG)
                .to_string(),
            dns_image_repository: yaml::s(v, "/dns/imageRepository")
                .map(String::from)
                .unwrap_or_else(|| format!("{image_repository}/coredns")),
            dns_disabled: v.pointer("/dns/disabled").and_then(|x| x.as_bool()) == Some(true),
            proxy_disabled: v.pointer("/proxy/disabled").and_then(|x| x.as_bool()) == Some(true),
            pod_subnet: yaml::s(v, "/networking/podSubnet")
                .unwrap_or_default()
                .to_string(),
            service_subnet: yaml::s(v, "/networking/serviceSubnet")
                .unwrap_or("10.96.0.0/12")
                .to_string(),
            dns_domain,
            cert_sans: strs_of(v, "/apiServer/certSANs"),
            certificates_dir: yaml::s(v, "/certificatesDir")
                .unwrap_or("/etc/kubernetes/pki")
                .to_string(),
            cluster_name: yaml::s(v, "/clusterName")
                .unwrap_or("kubernetes")
                .to_string(),
            image_repository,
        };
        let mut doc = c.doc.clone();
        if !doc.is_object() {
            doc = json!({});
        }
        doc["apiVersion"] = json!(format!("{KUBEADM_GROUP}/v1beta4"));
        doc["kind"] = json!("ClusterConfiguration");
        doc["kubernetesVersion"] = json!(c.kubernetes_version);
        doc["imageRepository"] = json!(c.image_repository);
        doc["certificatesDir"] = json!(c.certificates_dir);
        doc["clusterName"] = json!(c.cluster_name);
        if !doc["networking"].is_object() {
            doc["networking"] = json!({});
        }
        doc["networking"]["serviceSubnet"] = json!(c.service_subnet);
        doc["networking"]["dnsDomain"] = json!(c.dns_domain);
        if !c.pod_subnet.is_empty() {
            doc["networking"]["podSubnet"] = json!(c.pod_subnet);
        }
        if doc.pointer("/etcd/external").is_none() {
            if !doc["etcd"].is_object() {
                doc["etcd"] = json!({});
            }
            if !doc["etcd"]["local"].is_object() {
                doc["etcd"]["local"] = json!({});
            }
            doc["etcd"]["local"]["dataDir"] = json!(c.etcd_data_dir);
        }
        c.doc = doc;
        c
    }

    /// The images `kubeadm config images list` prints for this configuration.
    pub fn images(&self) -> Vec<String> {
        let r = &self.image_repository;
        let v = &self.kubernetes_version;
        let mut out = vec![
            format!("{r}/kube-apiserver:{v}"),
            format!("{r}/kube-controller-manager:{v}"),
            format!("{r}/kube-scheduler:{v}"),
        ];
        if !self.proxy_disabled {
            out.push(format!("{r}/kube-proxy:{v}"));
        }
        if !self.dns_disabled {
            out.push(format!(
                "{}/coredns:{}",
                self.dns_image_repository, self.dns_image_tag
            ));
        }
        out.push(self.pause_image());
        if self.doc.pointer("/etcd/external").is_none() {
            let er = yaml::s(&self.doc, "/etcd/local/imageRepository").unwrap_or(r);
            out.push(format!("{er}/etcd:{}", self.etcd_image_tag));
        }
        out
    }

    pub fn pause_image(&self) -> String {
        format!("{}/pause:{PAUSE_TAG}", self.image_repository)
    }

    /// The host of `controlPlaneEndpoint` (without the port).
    pub fn endpoint_host(&self) -> Option<String> {
        if self.control_plane_endpoint.is_empty() {
            return None;
        }
        Some(split_host_port(&self.control_plane_endpoint).0)
    }

    /// The first address of the service subnet (the `kubernetes` service).
    pub fn service_ip(&self) -> Option<IpAddr> {
        let (net, _) = self.service_subnet.split(',').next()?.split_once('/')?;
        let ip: std::net::Ipv4Addr = net.parse().ok()?;
        Some(IpAddr::V4(std::net::Ipv4Addr::from(u32::from(ip) + 1)))
    }

    pub fn feature_gates(&self) -> Vec<(String, bool)> {
        self.doc
            .get("featureGates")
            .and_then(|f| f.as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `host:port` → (host, port); the port defaults to 6443 as kubeadm's does for the endpoint.
pub fn split_host_port(s: &str) -> (String, u16) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((h, p)) = rest.split_once(']')
    {
        return (
            h.to_string(),
            p.trim_start_matches(':').parse().unwrap_or(6443),
        );
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(6443)),
        _ => (s.to_string(), 6443),
    }
}

/// A bootstrap token of the InitConfiguration.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub token: Option<String>,
    pub ttl: Duration,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
    pub description: String,
}

/// The effective InitConfiguration (with its ClusterConfiguration).
#[derive(Clone, Debug)]
pub struct Init {
    pub node: NodeRegistration,
    pub advertise_address: String,
    pub bind_port: u16,
    pub certificate_key: Option<String>,
    pub skip_phases: Vec<String>,
    pub tokens: Vec<TokenSpec>,
    pub cp_timeout: Duration,
    pub kubelet_timeout: Duration,
    pub cluster: Cluster,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,
}

pub const TOKEN_RE_HELP: &str = "the bootstrap token is invalid";

pub fn valid_token(t: &str) -> bool {
    let Some((id, secret)) = t.split_once('.') else {
        return false;
    };
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    ok(id, 6) && ok(secret, 16)
}

fn valid_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn valid_cidr(s: &str) -> bool {
    s.split(',').all(|c| {
        c.split_once('/').is_some_and(|(ip, len)| {
            ip.parse::<IpAddr>().is_ok()
                && len
                    .parse::<u8>()
                    .is_ok_and(|l| l <= if ip.contains(':') { 128 } else { 32 })
        })
    })
}

/// The validation of `ValidateClusterConfiguration` and friends that kubeforge can trip over.
fn validate_cluster(env: &Env, c: &Cluster, errs: &mut Vec<String>) {
    for (i, san) in c.cert_sans.iter().enumerate() {
        if san.parse::<IpAddr>().is_err() && !valid_dns_name(san) {
            errs.push(format!(
                "apiServer.certSANs[{i}]: Invalid value: \"{san}\": altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards"
            ));
        }
    }
    if !c.pod_subnet.is_empty() && !valid_cidr(&c.pod_subnet) {
        errs.push(format!(
            "networking.podSubnet: Invalid value: \"{}\": couldn't parse subnet",
            c.pod_subnet
        ));
    }
    if !valid_cidr(&c.service_subnet) {
        errs.push(format!(
            "networking.serviceSubnet: Invalid value: \"{}\": couldn't parse subnet",
            c.service_subnet
        ));
    }
    if !c.control_plane_endpoint.is_empty() {
        let (h, _) = split_host_port(&c.control_plane_endpoint);
        if h.parse::<IpAddr>().is_err() && !valid_dns_name(&h) {
            errs.push(format!(
                "controlPlaneEndpoint: Invalid value: \"{}\": Invalid host",
                c.control_plane_endpoint
            ));
        }
    }
    let gates = c.feature_gates();
    for (k, _) in &gates {
        if !FEATURE_GATES.contains(&k.as_str()) {
            let shown: Vec<String> = gates.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            errs.push(format!(
                "featureGates: Invalid value: map[string]bool{{{}}}: {k} is not a valid feature name.",
                shown.join(", ")
            ));
        }
    }
    if let Some(k) = Version::parse(&c.kubernetes_version) {
        let min = Version {
            major: env.version.major,
            minor: env.version.minor.saturating_sub(1),
            patch: 0,
        };
        if k < min {
            errs.push(format!(
                "this version of kubeadm only supports deploying clusters with the control plane version >= {}.{}.0. Current version: {}",
                min.major, min.minor, c.kubernetes_version
            ));
        }
    } else {
        errs.push(format!(
            "couldn't parse Kubernetes version \"{}\"",
            c.kubernetes_version
        ));
    }
}

fn validate_node(n: &NodeRegistration, errs: &mut Vec<String>) {
    if !["Always", "IfNotPresent", "Never"].contains(&n.image_pull_policy.as_str()) {
        errs.push(format!(
            "nodeRegistration.imagePullPolicy: Unsupported value: \"{}\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            n.image_pull_policy
        ));
    }
    for (i, t) in n.taints.iter().flatten().enumerate() {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
            errs.push(format!(
                "nodeRegistration.taints[{i}].effect: Unsupported value: \"{}\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                t.effect
            ));
        }
    }
}

fn validate_endpoint(prefix: &str, addr: &str, port: i64, errs: &mut Vec<String>) {
    if !addr.is_empty() && addr.parse::<IpAddr>().is_err() {
        errs.push(format!(
            "{prefix}.advertiseAddress: Invalid value: \"{addr}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        ));
    }
    if !(1..=65535).contains(&port) {
        errs.push(format!(
            "{prefix}.bindPort: Invalid value: {port}: must be between 1 and 65535, inclusive"
        ));
    }
}

fn errors(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// Builds and validates the InitConfiguration of a decoded file.
pub fn init(env: &Env, f: &ConfigFile, warnings: &mut Vec<String>) -> Result<Init, String> {
    let empty = json!({});
    let v = f.init.as_ref().unwrap_or(&empty);
    let node = NodeRegistration::from(env, v, warnings);
    let cluster = Cluster::from(env, f.cluster.as_ref(), warnings);
    let mut errs = Vec::new();
    validate_cluster(env, &cluster, &mut errs);
    validate_node(&node, &mut errs);
    let advertise = yaml::s(v, "/localAPIEndpoint/advertiseAddress")
        .unwrap_or_default()
        .to_string();
    let port = v
        .pointer("/localAPIEndpoint/bindPort")
        .and_then(|p| p.as_i64())
        .unwrap_or(6443);
    validate_endpoint("localAPIEndpoint", &advertise, port, &mut errs);
    let mut tokens = Vec::new();
    for (i, t) in v
        .get("bootstrapTokens")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let token = t.get("token").and_then(|x| x.as_str()).map(String::from);
        if let Some(tok) = &token
            && !valid_token(tok)
        {
            errs.push(format!(
                "bootstrapTokens[{i}].token: Invalid value: \"{tok}\": {TOKEN_RE_HELP}"
            ));
        }
        tokens.push(TokenSpec {
            token,
            ttl: dur_of(t, "/ttl", Duration::from_secs(86_400)),
            usages: {
                let u = strs_of(t, "/usages");
                if u.is_empty() {
                    vec!["signing".into(), "authentication".into()]
                } else {
                    u
                }
            },
            groups: {
                let g = strs_of(t, "/groups");
                if g.is_empty() {
                    vec!["system:bootstrappers:kubeadm:default-node-token".into()]
                } else {
                    g
                }
            },
            description: t
                .get("description")
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .into(),
        });
    }
    if tokens.is_empty() {
        tokens.push(TokenSpec {
            token: None,
            ttl: Duration::from_secs(86_400),
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
            description: String::new(),
        });
    }
    errors(errs)?;
    Ok(Init {
        node,
        advertise_address: advertise,
        bind_port: port as u16,
        certificate_key: yaml::s(v, "/certificateKey").map(String::from),
        skip_phases: strs_of(v, "/skipPhases"),
        tokens,
        cp_timeout: dur_of(
            v,
            "/timeouts/controlPlaneComponentHealthCheck",
            Duration::from_secs(240),
        ),
        kubelet_timeout: dur_of(v, "/timeouts/kubeletHealthCheck", Duration::from_secs(240)),
        cluster,
        kubelet: f.kubelet.clone(),
        kube_proxy: f.kube_proxy.clone(),
    })
}

/// The effective JoinConfiguration.
#[derive(Clone, Debug)]
pub struct Join {
    pub node: NodeRegistration,
    pub ca_cert_path: String,
    pub endpoint: String,
    pub token: String,
    pub tls_bootstrap_token: String,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
    /// Set for a control-plane join.
    pub control_plane: Option<JoinControlPlane>,
    pub skip_phases: Vec<String>,
    pub discovery_timeout: Duration,
    pub tls_bootstrap_timeout: Duration,
    pub cp_timeout: Duration,
    pub kubelet_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct JoinControlPlane {
    pub advertise_address: String,
    pub bind_port: u16,
    pub certificate_key: String,
}

pub fn join(env: &Env, f: &ConfigFile, warnings: &mut Vec<String>) -> Result<Join, String> {
    let Some(v) = f.join.as_ref() else {
        return Err("no JoinConfiguration found in the configuration file".into());
    };
    let node = NodeRegistration::from(env, v, warnings);
    let mut errs = Vec::new();
    validate_node(&node, &mut errs);
    let token = yaml::s(v, "/discovery/bootstrapToken/token")
        .unwrap_or_default()
        .to_string();
    let endpoint = yaml::s(v, "/discovery/bootstrapToken/apiServerEndpoint")
        .unwrap_or_default()
        .to_string();
    let file = yaml::s(v, "/discovery/file/kubeConfigPath");
    let unsafe_skip = v
        .pointer("/discovery/bootstrapToken/unsafeSkipCAVerification")
        .and_then(|x| x.as_bool())
        == Some(true);
    let hashes = strs_of(v, "/discovery/bootstrapToken/caCertHashes");
    if file.is_none() && v.pointer("/discovery/bootstrapToken").is_none() {
        errs.push("discovery: Invalid value: \"\": bootstrapToken or file must be set".into());
    }
    if file.is_some() {
        errs.push("discovery.file: the stand-in supports bootstrap token discovery only".into());
    }
    if v.pointer("/discovery/bootstrapToken").is_some() {
        if !valid_token(&token) {
            errs.push(format!(
                "discovery.bootstrapToken.token: Invalid value: \"{token}\": {TOKEN_RE_HELP}"
            ));
        }
        if endpoint.is_empty() {
            errs.push(
                "discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": the apiServerEndpoint should be set"
                    .into(),
            );
        }
        if hashes.is_empty() && !unsafe_skip {
            errs.push("discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into());
        }
        for h in &hashes {
            if !h.starts_with("sha256:") || h.len() != 71 {
                errs.push(format!(
                    "discovery.bootstrapToken.caCertHashes: Invalid value: \"{h}\": invalid hash \"{h}\", expected a \"sha256:\" prefix and 64 hex characters"
                ));
            }
        }
    }
    let tls_token = yaml::s(v, "/discovery/tlsBootstrapToken")
        .unwrap_or(&token)
        .to_string();
    let control_plane = match v.get("controlPlane") {
        Some(cp) if cp.is_object() => {
            let addr = yaml::s(cp, "/localAPIEndpoint/advertiseAddress")
                .unwrap_or_default()
                .to_string();
            let port = cp
                .pointer("/localAPIEndpoint/bindPort")
                .and_then(|p| p.as_i64())
                .unwrap_or(6443);
            validate_endpoint("controlPlane.localAPIEndpoint", &addr, port, &mut errs);
            Some(JoinControlPlane {
                advertise_address: addr,
                bind_port: port as u16,
                certificate_key: yaml::s(cp, "/certificateKey")
                    .unwrap_or_default()
                    .to_string(),
            })
        }
        _ => None,
    };
    errors(errs)?;
    Ok(Join {
        node,
        ca_cert_path: yaml::s(v, "/caCertPath")
            .unwrap_or("/etc/kubernetes/pki/ca.crt")
            .to_string(),
        endpoint,
        token,
        tls_bootstrap_token: tls_token,
        ca_cert_hashes: hashes,
        unsafe_skip_ca_verification: unsafe_skip,
        control_plane,
        skip_phases: strs_of(v, "/skipPhases"),
        discovery_timeout: dur_of(v, "/timeouts/discovery", Duration::from_secs(300)),
        tls_bootstrap_timeout: dur_of(v, "/timeouts/tlsBootstrap", Duration::from_secs(300)),
        cp_timeout: dur_of(
            v,
            "/timeouts/controlPlaneComponentHealthCheck",
            Duration::from_secs(240),
        ),
        kubelet_timeout: dur_of(v, "/timeouts/kubeletHealthCheck", Duration::from_secs(240)),
    })
}

/// The KubeletConfiguration kubeadm writes to /var/lib/kubelet/config.yaml: its defaults with
/// the user's document over them.
pub fn kubelet_config(cluster: &Cluster, user: Option<&Value>) -> Value {
    let dns = cluster
        .service_ip()
        .map(|ip| match ip {
            IpAddr::V4(v4) => std::net::Ipv4Addr::from(u32::from(v4) + 9).to_string(),
            IpAddr::V6(v6) => v6.to_string(),
        })
        .unwrap_or_else(|| "10.96.0.10".into());
    let mut base = json!({
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"cacheTTL": "0s", "enabled": true},
            "x509": {"clientCAFile": format!("{}/ca.crt", cluster.certificates_dir)}
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd",
        "clusterDNS": [dns],
        "clusterDomain": cluster.dns_domain,
        "containerRuntimeEndpoint": "",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": true,
        "staticPodPath": "/etc/kubernetes/manifests",
    });
    if let (Some(o), Some(u)) = (base.as_object_mut(), user.and_then(|u| u.as_object())) {
        for (k, v) in u {
            o.insert(k.clone(), v.clone());
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        let mut e = Env::from_env();
        e.version = Version::parse("v1.34.2").unwrap();
        e
    }

    #[test]
    fn images_follow_repository_and_tags() {
        let f = load(
            &env(),
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\nimageRepository: reg.local\netcd:\n  local:\n    imageTag: 3.5.16-0\n",
            &["ClusterConfiguration"],
        )
        .unwrap();
        let c = Cluster::from(&env(), f.cluster.as_ref(), &mut vec![]);
        assert_eq!(
            c.images(),
            vec![
                "reg.local/kube-apiserver:v1.34.2",
                "reg.local/kube-controller-manager:v1.34.2",
                "reg.local/kube-scheduler:v1.34.2",
                "reg.local/kube-proxy:v1.34.2",
                "reg.local/coredns/coredns:v1.12.1",
                "reg.local/pause:3.10.1",
                "reg.local/etcd:3.5.16-0",
            ]
        );
    }

    #[test]
    fn v1beta3_maps_become_lists() {
        let f = load(
            &env(),
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 10.0.0.1\n",
            &["InitConfiguration"],
        )
        .unwrap();
        assert_eq!(
            args_of(
                f.init.as_ref().unwrap(),
                "/nodeRegistration/kubeletExtraArgs"
            ),
            vec![Arg {
                name: "node-ip".into(),
                value: "10.0.0.1".into()
            }]
        );
        assert!(f.warnings[0].contains("deprecated API spec"));
    }
}
