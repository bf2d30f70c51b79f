//! `kubeforge plan --offline`: what a whole build does, phase by phase and host by host.

use kubeforge_core::diag::Report;
use kubeforge_core::model::PackageSource;
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
    let Some(mut cluster) = loaded.validated.cluster else {
        printer.note(&format!(
            "no plan: the inventory {} has errors (see above)",
            loaded.path
        ));
        return Ok(exit::PROBLEMS);
    };
    let mut plan = plan::plan(&cluster);
    // A bundle's version is what apply installs unless the inventory names one: read from its
    // image list (nothing of the bundle runs here; apply checks it whole).
    if let PackageSource::Bundle { path } = &cluster.packages
        && !cluster.kubernetes_set
    {
        let images = path.join("etc/images.txt");
        match std::fs::read_to_string(&images)
            .ok()
            .and_then(|t| kubeforge_core::bundle::version_from_images_txt(&t))
        {
            Some(version) => {
                cluster.kubernetes = version;
                plan = plan::plan(&cluster);
                plan.summary.kubernetes_source = "bundle".into();
            }
            None => printer.note(&format!(
                "the bundle's Kubernetes version is not known offline ({} names no kube-apiserver image): the plan shows the default {}; `kubeforge bundle check {}` tells",
                images.display(),
                cluster.kubernetes,
                path.display()
            )),
        }
    }
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
