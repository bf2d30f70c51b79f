//! The `kubeforge lab` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ipnet::Ipv4Net;

use crate::error::LabError;
use crate::lab::{DEFAULT_DIR, Lab, Status, UpOptions};

/// Rehearse a cluster on throwaway local Debian hosts (Linux, root).
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Directory the lab owns (state, hosts' disks, SSH keys, inventory, cache).
    #[arg(long, global = true, env = "KUBEFORGE_LAB_DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,

    /// Cache of the Debian tree and the package repository, which labs of other directories
    /// may share [default: DIR/cache]. A lab that is up keeps the cache it was built from.
    #[arg(long, global = true, env = "KUBEFORGE_LAB_CACHE")]
    pub cache: Option<PathBuf>,

    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build (once, then cached) and start the lab: hosts, DNS, package repository.
    Up {
        /// Control-plane hosts (k8scp01, k8scp02, ...).
        #[arg(long, default_value_t = 3)]
        control_planes: u32,
        /// Worker hosts (k8s01, k8s02, ...).
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Private IPv4 subnet of the lab bridge (bridge .1, VIP .10, hosts from .11)
        /// [default: 10.213.0.0/24 for the first lab on the machine, 10.213.N.0/24 for the
        /// lab on bridge kfbrN beside others].
        #[arg(long)]
        subnet: Option<Ipv4Net>,
    },
    /// Show the lab's hosts and services.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Stop and remove everything the lab runs; keeps the cache unless --purge.
    Down {
        /// Also remove the cached Debian tree and packages (the whole lab directory).
        #[arg(long)]
        purge: bool,
    },
    /// Shut a host down cleanly (its disk is kept).
    Stop { host: String },
    /// Boot a stopped or killed host.
    Start { host: String },
    /// Crash a host (SIGKILL to its PID 1).
    Kill { host: String },
    /// Give a host a blank disk (same name and address, new SSH host key) and boot it: a
    /// replacement machine.
    Wipe { host: String },
    /// Cut a host off the network (its link on the bridge goes down).
    Cut { host: String },
    /// Freeze every process of a host: connections to it are accepted, then nothing answers.
    Freeze { host: String },
    /// Thaw a frozen host.
    Thaw { host: String },
    /// Reconnect a host that was cut off.
    Restore { host: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Runs a lab command and returns the process exit code.
pub fn run(args: LabArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A fault control on one host, then a line saying where the host is now.
fn fault(
    lab: &Lab,
    host: &str,
    act: fn(&Lab, &str) -> Result<(), LabError>,
    done: &str,
) -> Result<(), LabError> {
    act(lab, host)?;
    line(&format!("==> {host}: {done}"));
    Ok(())
}

fn execute(args: LabArgs) -> Result<(), LabError> {
    let lab = Lab::with_cache(&args.dir, args.cache.as_deref())?;
    let mut progress = |text: &str| line(&format!("==> {text}"));
    match args.command {
        LabCommand::Up {
            control_planes,
            workers,
            subnet,
        } => lab.up(
            &UpOptions {
                control_planes,
                workers,
                subnet,
            },
            &mut progress,
        ),
        LabCommand::Down { purge } => lab.down(purge, &mut progress),
        LabCommand::Status { output } => {
            let status = lab.status()?;
            match output {
                Output::Json => line(&serde_json::to_string_pretty(&status).unwrap_or_default()),
                Output::Text => line(render_status(&status).trim_end()),
            }
            Ok(())
        }
        LabCommand::Stop { host } => fault(&lab, &host, Lab::stop, "stopped"),
        LabCommand::Start { host } => fault(&lab, &host, Lab::start, "running, SSH answers"),
        LabCommand::Kill { host } => fault(&lab, &host, Lab::kill, "killed"),
        LabCommand::Wipe { host } => fault(&lab, &host, Lab::wipe, "blank, running, SSH answers"),
        LabCommand::Cut { host } => fault(&lab, &host, Lab::cut, "cut off"),
        LabCommand::Freeze { host } => fault(&lab, &host, Lab::freeze, "frozen"),
        LabCommand::Thaw { host } => fault(&lab, &host, Lab::thaw, "thawed"),
        LabCommand::Restore { host } => fault(&lab, &host, Lab::restore, "reconnected"),
    }
}

/// The text form of `lab status`.
pub fn render_status(status: &Status) -> String {
    let mut out = format!(
        "lab {}: subnet {}, bridge {} {}, VIP {} ({}.{})\ninventory {}\n\n",
        status.dir,
        status.subnet,
        status.bridge,
        status.bridge_address,
        status.vip,
        crate::plan::ENDPOINT_NAME,
        status.domain,
        status.inventory
    );
    out.push_str(&format!(
        "{:<10} {:<14} {:<14} {:<8} {:<5} {}\n",
        "HOST", "ROLE", "ADDRESS", "STATE", "LINK", "SSH"
    ));
    for h in &status.hosts {
        out.push_str(&format!(
            "{:<10} {:<14} {:<14} {:<8} {:<5} {}\n",
            h.name,
            h.role.to_string(),
            h.address,
            h.state,
            h.link,
            if h.ssh { "answers" } else { "-" }
        ));
    }
    out.push('\n');
    for s in &status.services {
        out.push_str(&format!(
            "{:<5} {:<20} {:<8} {}\n",
            s.name,
            s.address,
            if s.running { "running" } else { "stopped" },
            if s.answers {
                "answers"
            } else {
                "does not answer"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{HostStatus, ServiceStatus};
    use kubeforge_core::model::Role;

    #[test]
    fn status_text_lists_hosts_and_services() {
        let status = Status {
            dir: "/var/lib/kubeforge/lab".into(),
            subnet: "10.213.0.0/24".into(),
            bridge: "kfbr0".into(),
            bridge_address: "10.213.0.1".into(),
            vip: "10.213.0.10".into(),
            domain: "kubeforge.internal".into(),
            inventory: "/var/lib/kubeforge/lab/cluster.yaml".into(),
            hosts: vec![
                HostStatus {
                    name: "k8scp01".into(),
                    fqdn: "k8scp01.kubeforge.internal".into(),
                    role: Role::ControlPlane,
                    address: "10.213.0.11".into(),
                    state: "running".into(),
                    link: "up".into(),
                    ssh: true,
                    pid: Some(100),
                },
                HostStatus {
                    name: "k8s01".into(),
                    fqdn: "k8s01.kubeforge.internal".into(),
                    role: Role::Worker,
                    address: "10.213.0.21".into(),
                    state: "stopped".into(),
                    link: "none".into(),
                    ssh: false,
                    pid: None,
                },
            ],
            services: vec![ServiceStatus {
                name: "dns".into(),
                address: "10.213.0.1:53".into(),
                running: true,
                pid: Some(7),
                answers: true,
            }],
        };
        let text = render_status(&status);
        assert!(text.starts_with(
            "lab /var/lib/kubeforge/lab: subnet 10.213.0.0/24, bridge kfbr0 10.213.0.1, VIP \
             10.213.0.10 (k8scp.kubeforge.internal)\n"
        ));
        assert!(text.contains("k8scp01    control-plane  10.213.0.11    running  up    answers\n"));
        assert!(text.contains("k8s01      worker         10.213.0.21    stopped  none  -\n"));
        assert!(text.contains("dns   10.213.0.1:53        running  answers\n"));
    }
}
