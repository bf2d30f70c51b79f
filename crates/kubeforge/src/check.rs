//! `kubeforge check`: the inventory, then DNS, with every problem reported at once.

use kubeforge_core::diag::{self, Diagnostic, Report};
use kubeforge_core::dns::{Lookup, Purpose, Record};
use serde::Serialize;

use crate::args::{InventoryArgs, exit};
use crate::load::{self, LoadError};
use crate::output::{Format, Printer};
use crate::resolve;

#[derive(Serialize)]
struct CheckJson<'a> {
    inventory: &'a str,
    format: Option<kubeforge_core::inventory::Format>,
    ok: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preflight: Option<&'a [kubeforge_core::preflight::Verdict]>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    host_errors: &'a [String],
}

#[derive(Serialize)]
struct DnsJson<'a> {
    resolver: String,
    records: &'a [Record],
    vip: Option<String>,
    control_plane_endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Hosts(#[from] crate::converge::ConvergeError),
}

pub fn run(
    printer: &Printer,
    args: &InventoryArgs,
    use_dns: bool,
    hosts: bool,
) -> Result<u8, CheckError> {
    let loaded = load::load(printer, args)?;
    let mut diagnostics = loaded.validated.diagnostics.clone();
    let mut dns_result = None;
    let mut format = None;
    if let Some(mut cluster) = loaded.validated.cluster {
        format = Some(cluster.format);
        if use_dns {
            let (resolver, records, found) = resolve::cluster(printer, &mut cluster);
            for d in found {
                if !diagnostics.contains(&d) {
                    diagnostics.push(d);
                }
            }
            dns_result = Some((resolver, records, cluster));
        }
    }
    diag::sort(&mut diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    // Preflight on the hosts, once the inventory and DNS are in order.
    let mut preflight = None;
    let mut host_errors = Vec::new();
    if hosts
        && errors == 0
        && let Some((_, _, cluster)) = &dns_result
    {
        let mut cluster = cluster.clone();
        let bundle = crate::converge::offline_bundle(printer, &mut cluster)?;
        let settings = crate::converge::Settings {
            mode: kubeforge_engine::Mode::Check,
            parallel: crate::args::DEFAULT_PARALLEL,
            log_dir: None,
            bundle,
            until: None,
            job: Box::new(kubeforge_core::steps::Build),
        };
        match crate::converge::execute(printer, &cluster, settings)? {
            Ok(report) => {
                host_errors.extend(report.errors.iter().map(|e| e.to_string()));
                preflight = Some(report);
            }
            Err(unreachable) => host_errors = unreachable,
        }
    }
    let failed_verdicts = preflight.as_ref().map_or(0, |r| {
        r.preflight
            .iter()
            .filter(|v| v.status == kubeforge_core::preflight::Status::Fail)
            .count()
    });
    match args.format() {
        Format::Json => printer.json(&CheckJson {
            inventory: &loaded.path,
            format,
            ok: errors == 0,
            errors,
            warnings,
            diagnostics: &diagnostics,
            dns: dns_result
                .as_ref()
                .map(|(resolver, records, cluster)| DnsJson {
                    resolver: resolver.clone(),
                    records,
                    vip: cluster.vip.map(|v| v.value.to_string()),
                    control_plane_endpoint: cluster.control_plane_endpoint(),
                }),
            preflight: preflight.as_ref().map(|r| r.preflight.as_slice()),
            host_errors: &host_errors,
        }),
        Format::Text => {
            let mut text = Report {
                path: &loaded.path,
                source: &loaded.source,
                diagnostics: &diagnostics,
            }
            .to_string();
            if let Some((resolver, records, cluster)) = &dns_result {
                text.push_str(&format!("DNS ({resolver}):\n"));
                let width = records.iter().map(|r| r.name.len()).max().unwrap_or(0);
                for record in records {
                    let answer = match &record.lookup {
                        Lookup::Found(ips) => ips
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        Lookup::NotFound => "does not resolve".to_string(),
                        Lookup::Failed(why) => format!("lookup failed: {why}"),
                    };
                    let what = match &record.purpose {
                        Purpose::Vip => "  (VIP)",
                        Purpose::Node(_) | Purpose::Address(_) => "",
                    };
                    text.push_str(&format!("  {:<width$}  {answer}{what}\n", record.name));
                }
                if errors == 0 {
                    text.push_str(&format!(
                        "control-plane endpoint {} -> VIP {}\n",
                        cluster.control_plane_endpoint(),
                        cluster.vip.map(|v| v.value.to_string()).unwrap_or_default()
                    ));
                }
            }
            if let Some(report) = &preflight {
                text.push_str(&crate::converge::preflight_text(report));
            }
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            text.push_str(&format!(
                "{}: {}, {} in {}\n",
                if errors == 0 { "ok" } else { "problems found" },
                plural(errors, "error"),
                plural(warnings, "warning"),
                loaded.path
            ));
            printer.raw(&text);
        }
    }
    for e in &host_errors {
        printer.error_line(e);
    }
    let errors = errors + failed_verdicts + host_errors.len();
    Ok(if errors == 0 {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}
