//! Phase `prepare`: what every node needs before anything Kubernetes-specific. Swap off for
//! good, the base packages, the kernel modules (loaded before the sysctls they provide:
//! `net.bridge.*` exists only once br_netfilter is loaded), and the sysctls.

use minijinja::context;

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node};
use crate::resources::{Command, File, Guard, Module, Packages, Probe, Resource, SwapOff, Sysctl};
use crate::shell::quote;

use super::{Ctx, HostSet, Phase, Step, StepError, render, steps_query};

/// Packages every node needs before anything Kubernetes-specific.
pub const BASE_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "gnupg",
    "kmod",
    "procps",
    "iptables",
    "conntrack",
    "socat",
    "ebtables",
    "ethtool",
];

/// Kernel modules containerd and Kubernetes networking need.
pub const MODULES: &[&str] = &["overlay", "br_netfilter"];

/// What shows a module's feature is there, also when it is built into the kernel.
fn probe(module: &str) -> Option<Probe> {
    match module {
        "overlay" => Some(Probe::Filesystem("overlay".into())),
        "br_netfilter" => Some(Probe::Path(
            "/proc/sys/net/bridge/bridge-nf-call-iptables".into(),
        )),
        _ => None,
    }
}

/// Kernel parameters Kubernetes networking needs.
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
];

pub struct Prepare;

impl Phase for Prepare {
    fn name(&self) -> &'static str {
        "prepare"
    }
    fn title(&self) -> &'static str {
        "prepare every node"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::All.select(cluster)
    }
    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = steps_query(self, ctx, node);
        q.join_files = true;
        q
    }
    fn steps(&self, _: &Ctx, _: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let modules_file = render(
            "modules-kubernetes.conf",
            include_str!("../../templates/modules-kubernetes.conf"),
            context! { modules => MODULES },
        )?;
        let sysctl_file = render(
            "sysctl-kubernetes.conf",
            include_str!("../../templates/sysctl-kubernetes.conf"),
            context! { sysctls => SYSCTLS.iter().map(|(k, v)| context! { key => k, value => v }).collect::<Vec<_>>() },
        )?;
        let mut modules = vec![Resource::File(File::new(
            "/etc/modules-load.d/kubernetes.conf",
            modules_file,
            0o644,
        ))];
        modules.extend(
            MODULES
                .iter()
                .map(|m| Resource::Module(Module::new(m, probe(m)))),
        );
        let mut sysctls = vec![Resource::File(File::new(
            "/etc/sysctl.d/90-kubernetes.conf",
            sysctl_file,
            0o644,
        ))];
        sysctls.extend(
            SYSCTLS
                .iter()
                .map(|(k, v)| Resource::Sysctl(Sysctl::new(k, v))),
        );
        // A join killed (or its host rebooted) before kubeadm ended leaves its configuration,
        // with a bootstrap token or a certificate key in it.
        let files: Vec<String> = facts.join_files.iter().map(|f| quote(f)).collect();
        let join_files = Resource::Command(
            Command::new(
                format!(
                    "remove {} join configuration(s) a killed run left (they hold a token or a key)",
                    files.len()
                ),
                format!("rm -f -- {}", files.join(" ")),
            )
            .unless(Guard::Done(files.is_empty())),
        );
        Ok(vec![
            Step::new("join-files", vec![join_files]),
            Step::new("swap", vec![Resource::SwapOff(SwapOff)]),
            Step::new(
                "base-packages",
                vec![Resource::Packages(Packages::new(BASE_PACKAGES))],
            ),
            Step::new("kernel-modules", modules),
            Step::new("sysctls", sysctls),
        ])
    }
}
