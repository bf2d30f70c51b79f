//! `kubeforge plan --offline`: what a whole build does, phase by phase and host by host.

use kubeforge_core::diag::Report;
use kubeforge_core::plan::{self, PlanText};

use crate::args::{InventoryArgs, exit};
use crate::load::{self, LoadError};
use crate::output::{Format, Printer};

/// The offline plan: from the inventory alone, no host or DNS server contacted.
pub fn run(printer: &Printer, args: &InventoryArgs) -> Result<u8, LoadError> {
    let loaded = load::load(printer, args)?;
    let diagnostics = &loaded.validated.diagnostics;
    if !diagnostics.is_empty() {
        // Problems go to stderr so that the plan itself stays clean on stdout.
        printer.note(
            Report {
                path: &loaded.path,
                source: &loaded.source,
                diagnostics,
            }
            .to_string()
            .trim_end(),
        );
    }
    let Some(cluster) = loaded.validated.cluster else {
        printer.note(&format!(
            "no plan: the inventory {} has errors (see above)",
            loaded.path
        ));
        return Ok(exit::PROBLEMS);
    };
    let plan = plan::plan(&cluster);
    match args.format() {
        Format::Json => printer.json(&plan),
        Format::Text => printer.raw(
            &PlanText {
                plan: &plan,
                cluster: &cluster,
            }
            .to_string(),
        ),
    }
    Ok(exit::OK)
}
