//! Phase `cni`: the pod network ([`crate::cni`]: Calico through the Tigera operator, or
//! flannel), applied with `kubectl apply --server-side` on the node the cluster lives on, right
//! after init so that nodes become Ready as they join. Each manifest is put on the node (from
//! the bundle, downloaded with its sha256 checked, or written from kubeforge's own text), and
//! applied only when what was last applied from that file differs (a record per file).

use crate::cni::{self, Source};
use crate::facts::{FactQuery, HostFacts, Read};
use crate::hash::sha256_hex;
use crate::model::{Cluster, Node};
use crate::resources::{Command, File, Guard, Resource, Upload};
use crate::shell::quote;

use super::{Ctx, HostSet, KUBECTL, Order, Phase, Step, StepError, cluster_query};

/// Where the manifests go on the node.
pub const MANIFEST_DIR: &str = "/var/lib/kubeforge/manifests";
/// The sha256 of what was last applied from each manifest, one file each.
pub const APPLIED_DIR: &str = "/var/lib/kubeforge/applied";
/// The cluster's CA: made by `kubeadm init` (a new cluster, a new CA), kept by upgrades and
/// certificate renewals (which rewrite the kubeconfigs).
const CLUSTER_CA: &str = "/etc/kubernetes/pki/ca.crt";

pub struct Network;

fn manifests(ctx: &Ctx) -> Result<Vec<cni::Manifest>, StepError> {
    let vip = match ctx.cluster.vip {
        Some(v) => v.value,
        None if ctx.offline => std::net::Ipv4Addr::UNSPECIFIED,
        None => return Err(StepError::NoVip),
    };
    Ok(cni::manifests(ctx.cluster, vip, ctx.bundle)?)
}

impl Phase for Network {
    fn name(&self) -> &'static str {
        "cni"
    }
    fn title(&self) -> &'static str {
        "the pod network, applied where the cluster lives"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        if cluster.cni == crate::model::Cni::None {
            return Vec::new();
        }
        HostSet::ControlPlanes.select(cluster)
    }
    fn order(&self, _ctx: &Ctx, _facts: &std::collections::BTreeMap<String, HostFacts>) -> Order {
        Order::One
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = cluster_query(node);
        q.file(CLUSTER_CA, Read::Hash);
        for m in manifests(ctx).unwrap_or_default() {
            let path = format!("{MANIFEST_DIR}/{}", m.name);
            match m.source {
                Source::Inline(_) => {
                    q.file(&path, Read::Content);
                }
                _ => {
                    q.digests.insert(path);
                }
            }
            q.file(&format!("{APPLIED_DIR}/{}", m.name), Read::Content);
        }
        q
    }

    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let state = ctx.state(node, facts)?;
        if state.home() != Some(node.node_name.as_str()) {
            return Ok(Vec::new());
        }
        let mut steps = Vec::new();
        for m in manifests(ctx)? {
            let path = format!("{MANIFEST_DIR}/{}", m.name);
            let mut resources = Vec::new();
            let sha = match &m.source {
                Source::Bundle { path: rel, sha256 } => {
                    let bundle = ctx.bundle.expect("bundle sources come from a bundle");
                    let size = bundle.files.get(rel).map_or(0, |f| f.size);
                    resources.push(Resource::Upload(Upload {
                        local: bundle.dir.join(rel),
                        sha256: sha256.clone(),
                        size,
                        dest: path.clone(),
                        mode: 0o644,
                        notify: Vec::new(),
                    }));
                    sha256.clone()
                }
                Source::Url { url, sha256 } => {
                    let have = facts.digests.get(&path).cloned().flatten();
                    resources.push(Resource::Command(
                        Command::new(
                            format!("download {} ({url})", m.what),
                            download_script(url, sha256, &path),
                        )
                        .unless(Guard::Done(have.as_deref() == Some(*sha256))),
                    ));
                    sha256.to_string()
                }
                Source::Inline(text) => {
                    resources.push(Resource::File(File::new(&path, text.clone(), 0o644)));
                    sha256_hex(text.as_bytes())
                }
            };
            // A record older than the cluster's CA is of an earlier cluster.
            let record = format!("{APPLIED_DIR}/{}", m.name);
            let created = facts.file(CLUSTER_CA).map_or(i64::MAX, |f| f.mtime);
            let applied = facts
                .file(&record)
                .filter(|f| f.mtime >= created)
                .and_then(|f| f.content.as_deref())
                .map(|c| String::from_utf8_lossy(c).trim().to_string());
            let mut script = String::new();
            if let Some(wait) = m.wait_args() {
                script.push_str(&format!("{KUBECTL} {}\n", words(&wait)));
            }
            script.push_str(&format!(
                "{KUBECTL} {}\nmkdir -p {APPLIED_DIR}\necho {sha} > {}",
                words(&m.apply_args(&path)),
                quote(&record)
            ));
            resources.push(Resource::Command(
                Command::new(format!("apply {}", m.what), script)
                    .unless(Guard::Done(applied.as_deref() == Some(sha.as_str()))),
            ));
            steps.push(Step::new(m.name, resources));
        }
        Ok(steps)
    }
}

fn words(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Downloads `url` to `dest` through a temporary file, which replaces `dest` only when its
/// sha256 is `sha256`.
fn download_script(url: &str, sha256: &str, dest: &str) -> String {
    let d = quote(dest);
    format!(
        "d=$(dirname {d}); mkdir -p \"$d\"\nt=$(mktemp \"$d/.kubeforge.XXXXXX\")\ntrap 'rm -f \"$t\"' EXIT\ncurl -fsSL --retry 3 --connect-timeout 20 -o \"$t\" {u}\ns=$(sha256sum < \"$t\" | cut -d' ' -f1)\n[ \"$s\" = {sha256} ] || {{ echo \"{url}: sha256 $s, expected {sha256}\" >&2; exit 1; }}\nchmod 644 \"$t\"; mv -f \"$t\" {d}",
        u = quote(url)
    )
}
