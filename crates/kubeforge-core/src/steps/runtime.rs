//! Phase `runtime`: what every node needs before `kubeadm init` or `join`. containerd (from
//! Docker's repository, or an offline bundle's packages) with the configuration kubeadm expects,
//! crictl pointed at it, and kubeadm, kubelet and kubectl at one exact version on every node
//! (from pkgs.k8s.io, held; or the bundle's programs and the kubelet's unit), and a bundle's
//! images imported into containerd.
//!
//! The version: an inventory patch, else what the nodes already run, else the newest patch of
//! the minor, which the first control-plane node finds (it goes first) and every other node then
//! installs. A node on another version is an upgrade, which is `kubeforge upgrade`'s
//! (`steps/upgrade.rs`): apply refuses it.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::context;

use crate::bundle::Bundle;
use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node, Role};
use crate::resources::{
    AptRepository, Command, File, Guard, Keyring, Notify, Package, Packages, Parse, Resource,
    Service, Upload,
};
use crate::shell::quote;
use crate::values::Values;
use crate::version::{DEFAULT_IMAGE_REPOSITORY, KubeVersion};

use super::{Ctx, HostSet, Order, Phase, Random, Step, StepError, render};

/// The Debian version of kubeadm, kubelet and kubectl every node installs (`1.37.1-1.1`,
/// or a pattern `1.37.1-*` when the inventory names the patch).
pub const KUBERNETES_PACKAGE_VERSION: &str = "kubernetes-package-version";
pub const CONTAINERD_CONF: &str = "/etc/containerd/config.toml";
/// Where a bundle's files go on a host.
pub const BUNDLE_DIR: &str = "/var/lib/kubeforge/bundle";
const KUBELET: &str = "kubelet.service";
const CONTAINERD: &str = "containerd.service";

const DOCKER_KEY: &str = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";
const KUBERNETES_KEY: &str = "DE15B14486CD377B9E876E1A234654DA9A296436";

pub struct Runtime;

impl Phase for Runtime {
    fn name(&self) -> &'static str {
        "runtime"
    }
    fn title(&self) -> &'static str {
        "containerd and the Kubernetes packages on every node"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::All.select(cluster)
    }
    fn installs_kubernetes(&self) -> bool {
        true
    }

    /// The first control-plane node goes first when it must find the version for the others.
    fn order(&self, ctx: &Ctx, facts: &BTreeMap<String, HostFacts>) -> Order {
        let settled = ctx.bundle.is_some()
            || ctx.cluster.kubernetes.patch.is_some()
            || facts.values().any(|f| f.packages.contains_key("kubeadm"));
        if settled {
            Order::Parallel
        } else {
            Order::FirstThenRest
        }
    }

    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = super::steps_query(self, ctx, node);
        q.kubeadm = true;
        q.images |= ctx.bundle.is_some();
        q.system = true;
        q.packages.extend(
            [
                "containerd",
                "containerd.io",
                "containernetworking-plugins",
                "kubeadm",
            ]
            .map(String::from),
        );
        q
    }

    fn settle(
        &self,
        ctx: &Ctx,
        facts: &BTreeMap<String, HostFacts>,
        values: &mut Values,
        _random: Random,
    ) -> Result<(), StepError> {
        let wanted = target_version(ctx);
        // A node already on another version: an upgrade, which is its own procedure.
        for node in &ctx.cluster.nodes {
            let Some(installed) = facts
                .get(&node.node_name)
                .and_then(|f| f.kubeadm_version.as_deref())
                .and_then(|v| KubeVersion::parse_any(v).ok())
            else {
                continue;
            };
            let same = installed.minor == wanted.minor
                && wanted.patch.is_none_or(|p| installed.patch == Some(p));
            if !same {
                return Err(StepError::VersionChange {
                    node: node.node_name.clone(),
                    installed: installed.to_string(),
                    wanted: wanted.to_string(),
                });
            }
        }
        if ctx.bundle.is_some() {
            return Ok(());
        }
        if let Some(version) = package_version(ctx, facts) {
            values.set(KUBERNETES_PACKAGE_VERSION, version, false);
        }
        Ok(())
    }

    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let mut steps = vec![
            Step::new("containerd", containerd(ctx, facts)?),
            Step::new("kubernetes-packages", kubernetes(ctx, facts)),
        ];
        if let Some(bundle) = ctx.bundle {
            steps.push(Step::new("images", images(bundle, node, facts)));
        }
        Ok(steps)
    }
}

/// The Debian version of kubeadm, kubelet and kubectl every node installs from pkgs.k8s.io: the
/// inventory's patch (`1.37.1-*`), else what a node already runs of the minor, the first
/// control-plane node's first; `None`: the first control-plane node finds it (the newest).
pub(super) fn package_version(ctx: &Ctx, facts: &BTreeMap<String, HostFacts>) -> Option<String> {
    let wanted = target_version(ctx);
    if let Some(patch) = wanted.patch {
        return Some(format!("1.{}.{patch}-*", wanted.minor));
    }
    let first = ctx.cluster.first_control_plane();
    facts
        .get(&first.node_name)
        .into_iter()
        .chain(facts.values())
        .filter_map(|f| f.packages.get("kubeadm"))
        .find(|v| v.starts_with(&format!("1.{}.", wanted.minor)))
        .cloned()
}

/// The version every node gets: the bundle's, else the inventory's (minor, maybe patch).
pub(super) fn target_version(ctx: &Ctx) -> KubeVersion {
    ctx.bundle
        .map(|b| b.version)
        .unwrap_or(ctx.cluster.kubernetes)
}

/// `(major, minor)` of a Debian package version (`1.6.20~ds1-1+deb12u3`, `2.2.1-1~debian.12`).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let upstream = version.split_once(':').map_or(version, |(_, v)| v);
    let mut parts = upstream.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The file of a bundle on this machine and on the host.
pub(super) fn upload(bundle: &Bundle, rel: &str, dest: &str, mode: u32) -> Option<Resource> {
    let file = bundle.files.get(rel)?;
    Some(Resource::Upload(Upload {
        local: bundle.dir.join(rel),
        sha256: file.sha256.clone(),
        size: file.size,
        dest: dest.to_string(),
        mode,
        notify: Vec::new(),
    }))
}

fn containerd(ctx: &Ctx, facts: &HostFacts) -> Result<Vec<Resource>, StepError> {
    let mut out = Vec::new();
    // Where containerd comes from, and the version expected before it is installed.
    let expected = match ctx.bundle {
        None => {
            let codename = facts
                .os
                .get("VERSION_CODENAME")
                .cloned()
                .unwrap_or_else(|| "<codename>".into());
            let arch = non_empty(&facts.system.arch, "<arch>");
            out.push(Resource::AptRepository(AptRepository {
                name: "Docker".into(),
                keyring: Some(Keyring {
                    path: "/etc/apt/keyrings/docker.gpg".into(),
                    url: "https://download.docker.com/linux/debian/gpg".into(),
                    fingerprint: DOCKER_KEY.into(),
                }),
                source_path: "/etc/apt/sources.list.d/docker.list".into(),
                source: format!(
                    "deb [arch={arch} signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian {codename} stable"
                ),
            }));
            out.push(Resource::Packages(Packages {
                packages: vec![Package::at("containerd.io", "2.*")],
                hold: true,
            }));
            "2.2".to_string()
        }
        Some(bundle) => {
            let debs: Vec<(&String, &crate::bundle::BundleFile)> =
                bundle.files_under("debs/").collect();
            for (rel, _) in &debs {
                let dest = format!("{BUNDLE_DIR}/{rel}");
                out.extend(upload(bundle, rel, &dest, 0o644));
            }
            if !debs.is_empty() {
                out.push(Resource::AptRepository(AptRepository {
                    name: "the bundle's packages".into(),
                    keyring: None,
                    source_path: "/etc/apt/sources.list.d/kubeforge-bundle.list".into(),
                    source: format!("deb [trusted=yes] file:{BUNDLE_DIR}/debs ./"),
                }));
            }
            // Held, as online: an upgrade of the runtime is a decision, not a side effect.
            let packages = bundle.runtime_packages();
            out.push(Resource::Packages(Packages {
                packages: packages.iter().map(|p| Package::any(p)).collect(),
                hold: true,
            }));
            bundle.containerd_version().unwrap_or("1.6").to_string()
        }
    };
    let installed = ["containerd.io", "containerd"]
        .iter()
        .find_map(|p| facts.packages.get(*p))
        .cloned()
        .unwrap_or(expected);
    let (major, minor) = major_minor(&installed).unwrap_or((2, 2));
    let debian_plugins = facts.packages.contains_key("containernetworking-plugins")
        || ctx.bundle.is_some_and(|b| {
            b.runtime_packages()
                .iter()
                .any(|p| p == "containernetworking-plugins")
        });
    let cni_bin_dirs: Vec<&str> = if debian_plugins {
        vec!["/usr/lib/cni", "/opt/cni/bin"]
    } else {
        vec!["/opt/cni/bin"]
    };
    let sandbox = facts
        .kubeadm_images
        .iter()
        .find(|i| i.contains("/pause:"))
        .cloned()
        .unwrap_or_else(|| {
            target_version(ctx)
                .facts()
                .sandbox_image(DEFAULT_IMAGE_REPOSITORY)
        });
    let restrict_oom = !matches!(facts.system.container.as_str(), "" | "none");
    let (name, template) = if major >= 2 {
        (
            "containerd-v3.toml",
            include_str!("../../templates/containerd-v3.toml"),
        )
    } else {
        (
            "containerd-v2.toml",
            include_str!("../../templates/containerd-v2.toml"),
        )
    };
    let config = render(
        name,
        template,
        context! {
            version => format!("{major}.{minor}"),
            sandbox => sandbox,
            restrict_oom => restrict_oom,
            bin_dirs => (major, minor) >= (2, 1),
            cni_bin_dirs => cni_bin_dirs,
        },
    )?;
    out.push(Resource::File(
        File::new(CONTAINERD_CONF, config, 0o644)
            .validate("containerd --config {} config dump >/dev/null")
            .notify(CONTAINERD, Notify::Restart),
    ));
    out.push(Resource::Service(Service::running(CONTAINERD)));
    out.push(Resource::File(File::new(
        "/etc/crictl.yaml",
        include_str!("../../templates/crictl.yaml"),
        0o644,
    )));
    Ok(out)
}

fn kubernetes(ctx: &Ctx, facts: &HostFacts) -> Vec<Resource> {
    let mut out = Vec::new();
    match ctx.bundle {
        None => {
            let version = target_version(ctx);
            let minor = version.minor;
            out.push(kubernetes_repository(version));
            let spec = ctx
                .values
                .get(KUBERNETES_PACKAGE_VERSION)
                .map(str::to_string)
                .unwrap_or_else(|| format!("1.{minor}.*"));
            out.push(Resource::Packages(Packages {
                packages: vec![
                    Package::at("kubelet", &spec),
                    Package::at("kubeadm", &spec),
                    Package::at("kubectl", &spec),
                    Package::any("cri-tools"),
                    Package::any("kubernetes-cni"),
                ],
                hold: true,
            }));
            out.push(Resource::Command(
                Command::new(
                    format!("note the kubeadm version installed here, for every other node (the newest 1.{minor} patch)"),
                    "dpkg-query -W -f='${Version}\\n' kubeadm",
                )
                .capture(KUBERNETES_PACKAGE_VERSION, false, Parse::LastLine)
                .unless(Guard::Done(ctx.values.contains(KUBERNETES_PACKAGE_VERSION))),
            ));
        }
        Some(bundle) => {
            for name in Bundle::BINARIES {
                out.extend(upload(
                    bundle,
                    &format!("bin/{name}"),
                    &format!("/usr/local/bin/{name}"),
                    0o755,
                ));
            }
            out.push(Resource::File(
                File::new(
                    "/etc/systemd/system/kubelet.service",
                    bundle.kubelet_service.clone(),
                    0o644,
                )
                .notify("", Notify::DaemonReload),
            ));
            out.push(Resource::File(
                File::new(
                    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
                    bundle.kubeadm_dropin.clone(),
                    0o644,
                )
                .notify("", Notify::DaemonReload),
            ));
        }
    }
    // kubeadm starts the kubelet once it has a configuration; until then it would only
    // crash-loop.
    out.push(Resource::Service(Service::enabled(KUBELET)));
    let _ = facts;
    out
}

/// pkgs.k8s.io's repository of `version`'s minor (one repository per minor), its key checked.
pub(super) fn kubernetes_repository(version: KubeVersion) -> Resource {
    let minor = version.minor;
    Resource::AptRepository(AptRepository {
        name: format!("Kubernetes 1.{minor}"),
        keyring: Some(Keyring {
            path: "/etc/apt/keyrings/kubernetes-apt-keyring.gpg".into(),
            // One key signs every minor's repository; older repositories may still
            // serve an expired copy, so it comes from a current one.
            url: format!(
                "https://pkgs.k8s.io/core:/stable:/v1.{}/deb/Release.key",
                minor.max(31)
            ),
            fingerprint: KUBERNETES_KEY.into(),
        }),
        source_path: "/etc/apt/sources.list.d/kubernetes.list".into(),
        source: format!(
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {} /",
            version.apt_repository()
        ),
    })
}

/// The bundle's images this node runs, uploaded and imported into containerd's `k8s.io`
/// namespace when missing there.
pub(super) fn images(bundle: &Bundle, node: &Node, facts: &HostFacts) -> Vec<Resource> {
    let mut out = Vec::new();
    for image in &bundle.images {
        let control_plane_only = [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ]
        .iter()
        .any(|c| image.reference.contains(&format!("/{c}:")));
        if control_plane_only && node.role != Role::ControlPlane {
            continue;
        }
        let dest = format!("{BUNDLE_DIR}/{}", image.archive);
        out.extend(upload(bundle, &image.archive, &dest, 0o644));
        let present = facts.images.contains(&image.reference);
        out.push(Resource::Command(
            Command::new(
                format!("import {} into containerd", image.reference),
                format!("ctr -n k8s.io images import {} >/dev/null", quote(&dest)),
            )
            .unless(Guard::Done(present))
            .timeout(Duration::from_secs(600)),
        ));
    }
    out
}

fn non_empty(value: &str, placeholder: &str) -> String {
    if value.is_empty() {
        placeholder.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_versions_from_debian_package_versions() {
        assert_eq!(major_minor("1.6.20~ds1-1+deb12u3"), Some((1, 6)));
        assert_eq!(major_minor("2.2.1-1~debian.12~bookworm"), Some((2, 2)));
        assert_eq!(major_minor("1:2.3.4-1"), Some((2, 3)));
        assert_eq!(major_minor("nonsense"), None);
    }
}
