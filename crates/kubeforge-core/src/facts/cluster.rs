//! The cluster as its API sees it, read on a control-plane node with the admin kubeconfig:
//! the API's readiness through the control-plane endpoint (the VIP), the nodes and the
//! DaemonSets (one list), the static pods, and etcd's members and their health (etcdctl in the
//! node's etcd pod).

use base64::Engine as _;
use serde::Serialize;

/// The script section for the cluster facts, the pods of kube-system only, or of every
/// namespace with `all_pods` (what a drain leaves); with `leader`, which etcd member leads.
pub fn script(all_pods: bool, leader: bool) -> String {
    let pods = if all_pods { "-A" } else { "-n kube-system" };
    let leader = if leader { "1" } else { "" };
    format!("kubeforge_pods='{pods}'; kubeforge_leader='{leader}'; {SCRIPT}")
}

/// The script section for the cluster facts (with `$kubeforge_pods` set: [`script`]). etcdctl runs in this node's etcd pod
/// (`etcd-<host name>`), or, while the API does not list that pod yet, in another etcd pod:
/// a kubelet that joined creates its static pods' mirror pods only when it has seen its own
/// Node, up to a minute or two later, and etcd's view is the same from every member. The
/// requests run at once (into a private temporary directory): the three reads of the API,
/// and etcdctl's two or three in this node's pod, asked again in another when it is not
/// listed. Each JSON document travels base64-encoded on one line.
pub const SCRIPT: &str = concat!(
    "echo @@cluster; if [ -f /etc/kubernetes/admin.conf ] && command -v kubectl >/dev/null 2>&1 && t=$(mktemp -d /tmp/kubeforge-cluster.XXXXXX); then ",
    "k='timeout 15 kubectl --kubeconfig=/etc/kubernetes/admin.conf --request-timeout=5s'; ",
    "kubeforge_etcd() { e=\"$k -n kube-system exec $1 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key\"; ",
    "$e member list -w json > \"$t/m\" 2>/dev/null </dev/null & a=$!; ",
    "$e endpoint health --cluster -w json > \"$t/h\" 2>/dev/null </dev/null & b=$!; ",
    "c=; if [ -n \"$kubeforge_leader\" ]; then $e endpoint status --cluster -w json > \"$t/s\" 2>/dev/null </dev/null & c=$!; fi; ",
    "wait $a $b $c; }; ",
    "$k get --raw /readyz > \"$t/r\" 2>&1 </dev/null & r=$!; ",
    "$k get nodes,daemonsets -A -o json > \"$t/o\" 2>/dev/null </dev/null & o=$!; ",
    "$k get pods $kubeforge_pods -o json > \"$t/p\" 2>/dev/null </dev/null & q=$!; ",
    "h=; read -r h < /proc/sys/kernel/hostname; kubeforge_etcd \"etcd-$h\"; wait $r $o $q; ",
    "if ! grep -qF \"\\\"etcd-$h\\\"\" \"$t/p\"; then n=$($k -n kube-system get pods -o name 2>/dev/null </dev/null | sed -n 's|^pod/\\(etcd-.*\\)|\\1|p' | head -n 1); [ -n \"$n\" ] && kubeforge_etcd \"$n\"; fi; ",
    "echo \"readyz $(head -c 300 \"$t/r\" | tr '\\n' ' ')\"; ",
    "echo \"objects $(base64 -w0 < \"$t/o\")\"; ",
    "echo \"pods $(base64 -w0 < \"$t/p\")\"; ",
    "echo \"members $(base64 -w0 < \"$t/m\")\"; ",
    "echo \"health $(base64 -w0 < \"$t/h\")\"; ",
    "if [ -n \"$kubeforge_leader\" ]; then echo \"status $(base64 -w0 < \"$t/s\")\"; fi; ",
    "rm -rf \"$t\"; ",
    "else echo none; fi\n"
);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterFacts {
    /// What `/readyz` answered through the control-plane endpoint (`ok` when ready).
    pub readyz: String,
    pub nodes: Vec<NodeStatus>,
    /// Every DaemonSet, with how many of its pods are scheduled, up to date and ready.
    pub daemonsets: Vec<DaemonSetStatus>,
    pub pods: Vec<PodStatus>,
    /// etcd's members.
    pub members: Vec<EtcdMember>,
    /// etcd endpoints and whether each is healthy.
    pub health: Vec<(String, bool)>,
    /// The leading member's ID (hex, as in `members`), when asked and known.
    pub leader: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    /// The Ready condition: `Some(true)`, `Some(false)`, or `None` when unknown.
    pub ready: Option<bool>,
    /// Why it is not ready, as the kubelet says.
    pub message: String,
    pub taints: Vec<String>,
    /// Its role labels (`node-role.kubernetes.io/control-plane`, ...), by key.
    pub role_labels: Vec<String>,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// The kubelet's pressure conditions that hold (`DiskPressure`, `MemoryPressure`,
    /// `PIDPressure`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pressure: Vec<String>,
    /// The version of its kubelet (`v1.28.7`), as the kubelet last reported it.
    pub kubelet_version: String,
    /// Its annotations under `kubeforge.io/` (what kubeforge marked on it).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A DaemonSet's rollout, as its status tells (what `kubectl rollout status` reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaemonSetStatus {
    pub namespace: String,
    pub name: String,
    /// Nodes that should run its pod.
    pub desired: u64,
    /// Nodes whose pod runs the current template.
    pub updated: u64,
    /// Nodes whose pod is Ready.
    pub ready: u64,
    /// Whether the controller has seen the latest spec (`observedGeneration` is current).
    pub observed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EtcdMember {
    /// The member ID in hex, as `etcdctl member remove` takes it.
    pub id: String,
    /// Empty for a member added but not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Added as a learner and not promoted yet: a join that did not finish.
    pub learner: bool,
}

/// [`ClusterFacts::member_problem`]: which, and its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberProblem {
    Missing(String),
    Unhealthy(String),
}

impl MemberProblem {
    pub fn text(self) -> String {
        match self {
            MemberProblem::Missing(t) | MemberProblem::Unhealthy(t) => t,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub phase: String,
    /// Its Ready condition is True (its containers pass their readiness probes).
    pub ready: bool,
    /// Its containers' images.
    pub images: Vec<String>,
    /// A DaemonSet's pod, or a static pod's mirror: what a drain leaves on its node.
    pub stays: bool,
    /// Its annotations of kubeforge's own (`kubeforge.io/…`): a static pod's mirror carries
    /// those of its manifest.
    pub marks: std::collections::BTreeMap<String, String>,
}

impl ClusterFacts {
    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn daemonset(&self, namespace: &str, name: &str) -> Option<&DaemonSetStatus> {
        self.daemonsets
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
    }
    /// The voting etcd member of `name` (a learner has not finished joining).
    pub fn member(&self, name: &str) -> Option<&EtcdMember> {
        self.members.iter().find(|m| m.name == name && !m.learner)
    }
    /// The pods on `node` that a drain evicts (with every namespace's pods asked for).
    pub fn evictable_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodStatus> {
        self.pods.iter().filter(move |p| p.node == node && !p.stays)
    }
    /// The API answered `/readyz` with ok.
    pub fn api_ready(&self) -> bool {
        self.readyz == "ok"
    }
    /// etcd's voting members, and how many of them are healthy: `(healthy, voters)`; quorum
    /// holds while `healthy > voters / 2`.
    pub fn quorum(&self) -> (usize, usize) {
        let voters = self.members.iter().filter(|m| !m.learner);
        let healthy = voters.clone().filter(|m| self.member_healthy(m)).count();
        (healthy, voters.count())
    }
    /// What is wrong with `name`'s etcd member: none (`etcd has no member NAME`), or not
    /// healthy (`etcd member NAME is not healthy`); `None` when it is a healthy voter.
    pub fn member_problem(&self, name: &str) -> Option<MemberProblem> {
        match self.member(name) {
            None => Some(MemberProblem::Missing(format!("etcd has no member {name}"))),
            Some(m) if !self.member_healthy(m) => Some(MemberProblem::Unhealthy(format!(
                "etcd member {name} is not healthy"
            ))),
            Some(_) => None,
        }
    }
    /// Whether the etcd endpoint of a member (by its peer URL's host) answered healthy.
    pub fn member_healthy(&self, member: &EtcdMember) -> bool {
        let host = |url: &str| {
            url.split("://")
                .nth(1)
                .unwrap_or(url)
                .rsplit_once(':')
                .map_or(String::new(), |(h, _)| h.to_string())
        };
        member.peer_urls.iter().any(|p| {
            let h = host(p);
            self.health
                .iter()
                .any(|(endpoint, healthy)| *healthy && host(endpoint) == h)
        })
    }
}

/// An object's annotations of kubeforge's own (`kubeforge.io/…`).
fn kubeforge_annotations(item: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    item["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("kubeforge.io/"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn decode(b64: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn text(v: &serde_json::Value, path: &[&str]) -> String {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or_default().to_string()
}

/// A Node object as [`NodeStatus`].
fn node_status(item: &serde_json::Value) -> NodeStatus {
    let ready = item["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    NodeStatus {
        name: text(item, &["metadata", "name"]),
        ready: ready.and_then(|c| match c["status"].as_str() {
            Some("True") => Some(true),
            Some("False") => Some(false),
            _ => None,
        }),
        message: ready.map(|c| text(c, &["message"])).unwrap_or_default(),
        taints: item["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| format!("{}:{}", text(t, &["key"]), text(t, &["effect"])))
            .collect(),
        role_labels: item["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|k| k.starts_with("node-role.kubernetes.io/"))
            .collect(),
        unschedulable: item["spec"]["unschedulable"] == true,
        kubelet_version: text(item, &["status", "nodeInfo", "kubeletVersion"]),
        annotations: kubeforge_annotations(item),
        pressure: item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "True")
            .map(|c| text(c, &["type"]))
            .filter(|t| t.ends_with("Pressure"))
            .collect(),
    }
}

/// A Node object's JSON, base64-encoded, as [`NodeStatus`] (`None`: empty or not a Node).
pub fn parse_node_b64(b64: &str) -> Option<NodeStatus> {
    let item = decode(b64)?;
    (item["kind"] == "Node").then(|| node_status(&item))
}

/// Parses the section's body; `None` when the node holds no admin kubeconfig.
pub fn parse(body: &[&str]) -> Option<ClusterFacts> {
    if body.first().map(|l| l.trim()) == Some("none") {
        return None;
    }
    let mut facts = ClusterFacts::default();
    for line in body {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "readyz" => facts.readyz = value.trim().to_string(),
            "objects" => {
                let items = decode(value)
                    .map(|v| v["items"].clone())
                    .unwrap_or_default();
                let of_kind = |kind: &'static str| {
                    items
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(move |i| i["kind"] == kind)
                };
                for item in of_kind("DaemonSet") {
                    let count = |field: &str| item["status"][field].as_u64().unwrap_or(0);
                    facts.daemonsets.push(DaemonSetStatus {
                        namespace: text(item, &["metadata", "namespace"]),
                        name: text(item, &["metadata", "name"]),
                        desired: count("desiredNumberScheduled"),
                        updated: count("updatedNumberScheduled"),
                        ready: count("numberReady"),
                        observed: count("observedGeneration")
                            >= item["metadata"]["generation"].as_u64().unwrap_or(0),
                    });
                }
                for item in of_kind("Node") {
                    facts.nodes.push(node_status(item));
                }
            }
            "pods" => {
                let items = decode(value)
                    .map(|v| v["items"].clone())
                    .unwrap_or_default();
                for item in items.as_array().into_iter().flatten() {
                    let daemon = item["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|o| o["kind"] == "DaemonSet");
                    let mirror =
                        item["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
                    facts.pods.push(PodStatus {
                        namespace: text(item, &["metadata", "namespace"]),
                        name: text(item, &["metadata", "name"]),
                        node: text(item, &["spec", "nodeName"]),
                        phase: text(item, &["status", "phase"]),
                        ready: item["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
                        images: item["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| text(c, &["image"]))
                            .collect(),
                        stays: daemon || mirror,
                        marks: kubeforge_annotations(item),
                    });
                }
            }
            "members" => {
                let members = decode(value)
                    .map(|v| v["members"].clone())
                    .unwrap_or_default();
                facts.members = members
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| EtcdMember {
                        id: m["ID"]
                            .as_u64()
                            .map(|id| format!("{id:x}"))
                            .unwrap_or_default(),
                        name: text(m, &["name"]),
                        peer_urls: m["peerURLs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|u| u.as_str().map(String::from))
                            .collect(),
                        learner: m["isLearner"] == true,
                    })
                    .collect();
            }
            "health" => {
                let list = decode(value).unwrap_or_default();
                facts.health = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| {
                        (
                            text(h, &["endpoint"]),
                            h["health"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect();
            }
            "status" => {
                facts.leader = decode(value)
                    .unwrap_or_default()
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|s| s["Status"]["leader"].as_u64())
                    .filter(|id| *id != 0)
                    .map(|id| format!("{id:x}"));
            }
            _ => {}
        }
    }
    Some(facts)
}

/// The names of the running kube-system containers in `crictl ps -o json`.
pub fn parse_containers(json: &[u8]) -> Result<std::collections::BTreeSet<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("crictl ps: not JSON: {e}"))?;
    let containers = v["containers"]
        .as_array()
        .ok_or("crictl ps: no containers list")?;
    Ok(containers
        .iter()
        .filter(|c| c["state"] == "CONTAINER_RUNNING")
        .filter(|c| c["labels"]["io.kubernetes.pod.namespace"] == "kube-system")
        .filter_map(|c| c["metadata"]["name"].as_str().map(String::from))
        .collect())
}
