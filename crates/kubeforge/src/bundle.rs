//! `kubeforge bundle check DIR`: reads an offline bundle (lists its files, hashes them, runs its
//! kubeadm, kubelet and kubectl, reads its image archives) and lets the core decide whether it
//! is usable. [`load`] gives apply the checked bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubeforge_core::bundle::{
    self, Bundle, BundleFile, ImageArchive, Observed, Report, ReportText,
};
use kubeforge_core::version::KubeVersion;
use sha2::{Digest, Sha256};

use crate::args::{OutputArg, exit};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BundleCommand {
    /// Verify an offline bundle: every checksum in SHA256SUMS, the versions its kubeadm, kubelet
    /// and kubectl report, and the images kubeadm needs. Exit 0: usable (notes may have been
    /// printed); 1: not usable; 2: usage or I/O.
    Check {
        /// The bundle directory (bin/, images/, debs/, etc/, manifests/, SHA256SUMS).
        dir: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputArg::Text)]
        output: OutputArg,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {what}", .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a directory; give the bundle directory (it holds bin/, images/, etc/ and SHA256SUMS)", .0.display())]
    NotADirectory(PathBuf),
    #[error("the bundle {} is not usable:{}", .0.dir, unusable_reasons(.0))]
    Unusable(Box<Report>),
}

/// Every error of the report, one per line, each with what was found, expected and the fix.
fn unusable_reasons(report: &Report) -> String {
    let mut out = String::new();
    for p in report.problems.iter().filter(|p| !p.tolerated) {
        out.push_str(&format!("\n  {}: {}", p.path, p.message));
        if let Some(found) = &p.found {
            out.push_str(&format!("\n    found: {found}"));
        }
        if let Some(expected) = &p.expected {
            out.push_str(&format!("\n    expected: {expected}"));
        }
        out.push_str(&format!("\n    fix: {}", p.fix));
    }
    out
}

pub fn run(printer: &Printer, args: BundleArgs) -> Result<u8, BundleError> {
    let BundleCommand::Check { dir, output } = args.command;
    let observed = inspect(printer, &dir, None)?;
    let report = bundle::check(&observed);
    match output {
        OutputArg::Json => printer.json(&report),
        OutputArg::Text => printer.raw(&ReportText(&report).to_string()),
    }
    Ok(if report.usable {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

/// Reads and checks the bundle in `dir` for a cluster of `kubernetes` (the inventory's
/// version, when it names one): the bundle as apply installs it, or every reason it cannot
/// be used. Checksums of files unchanged since an earlier run (same size and modification
/// time) come from a record, not from hashing hundreds of megabytes again.
pub fn load(
    printer: &Printer,
    dir: &Path,
    kubernetes: Option<KubeVersion>,
) -> Result<Bundle, BundleError> {
    let observed = inspect_with(printer, dir, kubernetes, true)?;
    let report = bundle::check(&observed);
    if !report.usable {
        return Err(BundleError::Unusable(Box::new(report)));
    }
    installable(dir, &observed, &report)
}

/// The checked bundle as the steps use it.
fn installable(dir: &Path, o: &Observed, report: &Report) -> Result<Bundle, BundleError> {
    let version = report
        .version()
        .ok_or_else(|| BundleError::Unusable(Box::new(report.clone())))?;
    let (sums, _) = bundle::parse_sums(o.texts.get(bundle::SUMS).map_or("", String::as_str));
    let mut files = BTreeMap::new();
    for entry in sums {
        let path = dir.join(&entry.path);
        let size = std::fs::metadata(&path)
            .map_err(|source| BundleError::Io {
                path: path.clone(),
                what: "cannot read this file of the bundle",
                source,
            })?
            .len();
        files.insert(
            entry.path,
            BundleFile {
                sha256: entry.sha256,
                size,
            },
        );
    }
    let text = |rel: &str| -> Result<String, BundleError> {
        let path = dir.join(rel);
        std::fs::read_to_string(&path).map_err(|source| BundleError::Io {
            path,
            what: "cannot read this file of the bundle",
            source,
        })
    };
    let mut manifests = BTreeMap::new();
    for rel in &report.manifests {
        manifests.insert(rel.clone(), text(rel)?);
    }
    Ok(Bundle {
        dir: dir.to_path_buf(),
        version,
        files,
        images: report.images.clone(),
        missing_images: report
            .needed_images
            .iter()
            .filter(|i| !i.present)
            .map(|i| i.reference.clone())
            .collect(),
        debs: report.debs.clone(),
        host_packages: report.host_packages.clone(),
        kubelet_service: text("etc/kubelet.service")?,
        kubeadm_dropin: text("etc/10-kubeadm.conf")?,
        manifests,
        etcd_tag: report.etcd_image_tag.clone(),
    })
}

/// Everything `bundle::check` needs to know about the bundle in `dir`, every checksum computed.
pub fn inspect(
    printer: &Printer,
    dir: &Path,
    inventory: Option<KubeVersion>,
) -> Result<Observed, BundleError> {
    inspect_with(printer, dir, inventory, false)
}

/// [`inspect`]; with `recorded`, checksums of files unchanged since they were last computed
/// come from the record in `~/.cache/kubeforge/bundle-digests.json`, and what its programs
/// printed from `bundle-programs.json`.
fn inspect_with(
    printer: &Printer,
    dir: &Path,
    inventory: Option<KubeVersion>,
    recorded: bool,
) -> Result<Observed, BundleError> {
    let meta = std::fs::metadata(dir).map_err(|source| BundleError::Io {
        path: dir.to_path_buf(),
        what: "cannot read the bundle directory",
        source,
    })?;
    if !meta.is_dir() {
        return Err(BundleError::NotADirectory(dir.to_path_buf()));
    }
    let mut o = Observed {
        dir: dir.display().to_string(),
        inventory,
        today: Some(crate::load::today()),
        ..Observed::default()
    };
    let root = std::fs::canonicalize(dir).map_err(|source| BundleError::Io {
        path: dir.to_path_buf(),
        what: "cannot read the bundle directory",
        source,
    })?;
    list_files(&root, &root, &mut o.files, &mut o.unsafe_paths)?;

    let manifests = o
        .files
        .iter()
        .filter(|f| f.starts_with("manifests/"))
        .cloned();
    let texts: Vec<String> = [
        bundle::SUMS,
        bundle::IMAGES_TXT,
        bundle::ETCD_TAG_TXT,
        bundle::PACKAGES_TXT,
        bundle::DEBS_PACKAGES,
    ]
    .into_iter()
    .map(String::from)
    .chain(manifests)
    .collect();
    for name in texts {
        if o.files.contains(&name) {
            let path = dir.join(&name);
            let text = std::fs::read(&path).map_err(|source| BundleError::Io {
                path: path.clone(),
                what: "cannot read this file of the bundle",
                source,
            })?;
            o.texts
                .insert(name, String::from_utf8_lossy(&text).into_owned());
        }
    }

    // Checksums of every listed file that is there.
    if let Some(text) = o.texts.get(bundle::SUMS) {
        let (entries, _) = bundle::parse_sums(text);
        let present: Vec<_> = entries
            .iter()
            .filter(|e| o.files.contains(&e.path))
            .collect();
        let started = Instant::now();
        printer.note(&format!(
            "verifying {} checksums in {}",
            present.len(),
            o.dir
        ));
        let mut record = if recorded {
            Record::load(DIGESTS)
        } else {
            Record::default()
        };
        for e in present {
            let path = dir.join(&e.path);
            let key = Record::file_key(&path);
            let hash = match key.as_ref().and_then(|k| record.get(k)) {
                Some(hash) => Ok(hash),
                None => sha256_file(&path).inspect(|h| {
                    if let Some(k) = key {
                        record.put(k, h)
                    }
                }),
            };
            o.hashes
                .insert(e.path.clone(), hash.map_err(|e| e.to_string()));
        }
        if recorded {
            record.save();
        }
        printer.detail(&format!(
            "checksums took {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }

    // The image archives and the images they name (read, never unpacked here).
    for name in o
        .files
        .iter()
        .filter(|f| f.starts_with("images/") && f.ends_with(".tar"))
    {
        let tags = archive_tags(&dir.join(name));
        if let Err(why) = &tags
            && why.starts_with(UNSAFE_MEMBER)
        {
            o.unsafe_paths.push((name.clone(), why.clone()));
        }
        o.archives.push(ImageArchive {
            path: name.clone(),
            tags,
        });
    }

    run_programs(&mut o, &root, recorded);
    Ok(o)
}

/// The bundle's programs and the version they report, only once every checksum holds. With
/// `recorded`, what a program printed before is taken from the record when the program is
/// the same (its SHA-256, verified against the bundle's list) and so are its arguments: a
/// program's version does not change, and starting four Go programs is most of what reading
/// an unchanged bundle costs.
fn run_programs(o: &mut Observed, root: &Path, recorded: bool) {
    let runs: [(&str, &[&str]); 3] = [
        ("bin/kubeadm", &["version", "-o", "short"]),
        ("bin/kubelet", &["--version"]),
        ("bin/kubectl", &["version", "--client"]),
    ];
    let trusted = bundle::may_run_programs(o);
    let mut record = if recorded {
        Record::load(PROGRAMS)
    } else {
        Record::default()
    };
    let mut run = |name: &str, args: &[&str]| -> Result<String, String> {
        let key = o
            .hashes
            .get(name)
            .and_then(|h| h.as_ref().ok())
            .map(|h| format!("{h} {}", args.join(" ")));
        if let Some(out) = key.as_ref().and_then(|k| record.get(k)) {
            return Ok(out);
        }
        let out = run_program(root, name, args);
        if let (Ok(text), Some(key)) = (&out, key) {
            record.put(key, text);
        }
        out
    };
    for (i, (name, args)) in runs.iter().enumerate() {
        o.programs[i] = o.files.contains(*name).then(|| match &trusted {
            Ok(()) => run(name, args),
            Err(why) => Err(format!("{}{why}", bundle::NOT_RUN)),
        });
    }
    if let Some(Ok(out)) = &o.programs[0]
        && let Ok(v) = bundle::parse_program_version(out)
        && kubeforge_core::version::minor_facts(v.minor).is_some()
    {
        let version = format!("v{v}");
        o.kubeadm_images = Some(run(
            "bin/kubeadm",
            &["config", "images", "list", "--kubernetes-version", &version],
        ));
    }
    if recorded {
        record.save();
    }
}

/// Every regular file under `dir`, relative to `root` (canonical), `/`-separated. Symbolic
/// links are not followed as directories (no loop can make the walk endless): a link to a
/// file inside the bundle counts as that file; a link out of the bundle, to a directory or to
/// nothing goes to `unsafe_paths` with why.
fn list_files(
    root: &Path,
    dir: &Path,
    out: &mut BTreeSet<String>,
    unsafe_paths: &mut Vec<(String, String)>,
) -> Result<(), BundleError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BundleError::Io {
        path: dir.to_path_buf(),
        what: "cannot list this directory of the bundle",
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BundleError::Io {
            path: dir.to_path_buf(),
            what: "cannot list this directory of the bundle",
            source,
        })?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            match std::fs::canonicalize(&path) {
                Ok(target) if !target.starts_with(root) => unsafe_paths.push((
                    rel,
                    format!("a symlink out of the bundle, to {}", target.display()),
                )),
                Ok(target) if target.is_dir() => {
                    unsafe_paths.push((rel, "a symlink to a directory (not followed)".into()))
                }
                Ok(target) if target.is_file() => {
                    out.insert(rel);
                }
                Ok(_) => unsafe_paths.push((rel, "a symlink to something not a file".into())),
                Err(e) => unsafe_paths.push((rel, format!("a symlink that leads nowhere: {e}"))),
            }
        } else if meta.is_dir() {
            list_files(root, &path, out, unsafe_paths)?;
        } else if meta.is_file() {
            out.insert(rel);
        }
    }
    Ok(())
}

/// Values kept between runs in a file of `~/.cache/kubeforge` (a JSON object): the checksums
/// of bundle files by path, size and modification time ([`Record::file_key`]), and what the
/// bundle's programs printed by the program's verified SHA-256 and arguments.
#[derive(Default)]
struct Record {
    path: Option<PathBuf>,
    entries: BTreeMap<String, String>,
    changed: bool,
}

/// The record of checksums.
const DIGESTS: &str = "bundle-digests.json";
/// The record of what the bundle's programs printed.
const PROGRAMS: &str = "bundle-programs.json";

impl Record {
    /// A file's key: its size, modification time and path.
    fn file_key(path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(format!("{} {} {}", meta.len(), modified, path.display()))
    }

    /// The record `name`, empty when it is missing or unreadable.
    fn load(name: &str) -> Self {
        let path = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("kubeforge").join(name));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        Record {
            path,
            entries,
            changed: false,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: String, value: &str) {
        self.entries.insert(key, value.to_string());
        self.changed = true;
    }

    /// Written atomically; a record that cannot be written only costs the next run time.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.changed {
            return;
        }
        if let Ok(text) = serde_json::to_vec(&self.entries) {
            let _ = crate::files::write_private(path, &text);
        }
    }
}

/// SHA-256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(kubeforge_core::hash::hex(&hasher.finalize()))
}

/// How long a bundle's program may take to print its version.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(30);

/// How much a bundle's program may print on each of its outputs (a version, or a list of
/// images, is a few hundred bytes).
const PROGRAM_OUTPUT_CAP: u64 = 1 << 20;

/// Runs one of the bundle's programs (verified by then): its stdout, or why it could not run
/// here. It gets no more of this machine than it needs: an empty environment but for `PATH`,
/// its own process group (killed whole once it ends or at the deadline, so nothing it started
/// outlives it), and its output capped.
fn run_program(dir: &Path, name: &str, args: &[&str]) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let path = dir.join(name);
    let command_line = format!("{name} {}", args.join(" "));
    let mut child = Command::new(&path)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", "/nonexistent")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match (e.raw_os_error(), e.kind()) {
            (Some(8), _) => format!(
                "`{command_line}`: {e}: it is built for another architecture, or it is not a program"
            ),
            (_, io::ErrorKind::PermissionDenied) => {
                format!("`{command_line}`: {e}: it is not executable (chmod +x {name})")
            }
            (_, io::ErrorKind::NotFound) => format!(
                "`{command_line}`: {e}: its interpreter or loader is missing here (built for another system?)"
            ),
            _ => format!("`{command_line}`: {e}"),
        })?;
    let group = child.id();
    let capped = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(s) = stream {
                // One byte past the cap tells that it was passed; the pipe then closes.
                let _ = s.take(PROGRAM_OUTPUT_CAP + 1).read_to_end(&mut text);
            }
            text
        })
    };
    let out = capped(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = capped(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > PROGRAM_TIMEOUT => {
                kill_group(group);
                let _ = child.wait();
                break Err(format!(
                    "`{command_line}` did not finish within {} s",
                    PROGRAM_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("`{command_line}`: {e}")),
        }
    };
    // Whatever it left running goes with it (and lets go of the pipes).
    kill_group(group);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = status?;
    if stdout.len() as u64 > PROGRAM_OUTPUT_CAP || stderr.len() as u64 > PROGRAM_OUTPUT_CAP {
        return Err(format!(
            "`{command_line}` printed more than {} MiB: it is not the Kubernetes program it is named after",
            PROGRAM_OUTPUT_CAP >> 20
        ));
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    if status.success() {
        Ok(stdout)
    } else {
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "`{command_line}` failed ({status}){}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join(" / "))
            }
        ))
    }
}

/// Kills every process of the group `group` (a program of the bundle and what it started).
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How [`archive_tags`] says an archive has a member that would land outside where it is
/// unpacked.
const UNSAFE_MEMBER: &str = "an archive member";

/// The image references an image archive names: `RepoTags` of its manifest.json
/// (docker-archive), else the image names in index.json's annotations (OCI layout).
pub fn archive_tags(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut index = None;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    let mut manifest = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("not a tar archive: {e}"))?;
        // Every member is looked at: one that would land outside where it is unpacked refuses
        // the archive, wherever it is.
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "{UNSAFE_MEMBER} with an absolute path or `..`: {}",
                path.display()
            ));
        }
        let name = path.to_string_lossy().trim_start_matches("./").to_string();
        if name != "manifest.json" && name != "index.json" {
            continue;
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if name == "manifest.json" {
            manifest = Some(text);
        } else {
            index = Some(text);
        }
    }
    match (manifest, index) {
        (Some(text), _) => manifest_tags(&text),
        (None, Some(text)) => index_tags(&text),
        (None, None) => Err("no manifest.json (nor an OCI index.json) in the archive".into()),
    }
}

fn manifest_tags(text: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("manifest.json is not JSON: {e}"))?;
    let images = value
        .as_array()
        .ok_or("manifest.json is not a list of images")?;
    Ok(images
        .iter()
        .filter_map(|i| i.get("RepoTags").and_then(|t| t.as_array()))
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect())
}

fn index_tags(text: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("index.json is not JSON: {e}"))?;
    Ok(value
        .get("manifests")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let a = m.get("annotations")?;
            a.get("io.containerd.image.name")
                .or_else(|| a.get("org.opencontainers.image.ref.name"))
                .and_then(|n| n.as_str())
                .filter(|n| bundle::is_image_reference(n))
                .map(String::from)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("kubeforge-bundle-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn image_archive_names() {
        let dir = Dir::new("archives");
        let docker = dir.0.join("docker.tar");
        std::fs::write(
            &docker,
            tar_of(&[
                ("abc/layer.tar", "layer"),
                (
                    "manifest.json",
                    r#"[{"Config":"c.json","RepoTags":["registry.k8s.io/pause:3.9","registry.k8s.io/pause:latest"],"Layers":["abc/layer.tar"]}]"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            archive_tags(&docker),
            Ok(vec![
                "registry.k8s.io/pause:3.9".to_string(),
                "registry.k8s.io/pause:latest".to_string()
            ])
        );
        let oci = dir.0.join("oci.tar");
        std::fs::write(
            &oci,
            tar_of(&[
                ("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#),
                (
                    "./index.json",
                    r#"{"manifests":[{"annotations":{"io.containerd.image.name":"docker.io/flannel/flannel:v0.20.2","org.opencontainers.image.ref.name":"v0.20.2"}}]}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            archive_tags(&oci),
            Ok(vec!["docker.io/flannel/flannel:v0.20.2".to_string()])
        );
        let empty = dir.0.join("empty.tar");
        std::fs::write(&empty, tar_of(&[("hello", "x")])).unwrap();
        assert_eq!(
            archive_tags(&empty),
            Err("no manifest.json (nor an OCI index.json) in the archive".to_string())
        );
        let broken = dir.0.join("broken.tar");
        std::fs::write(&broken, tar_of(&[("manifest.json", "{not json")])).unwrap();
        assert!(
            archive_tags(&broken)
                .unwrap_err()
                .starts_with("manifest.json is not JSON: ")
        );
    }

    #[test]
    fn checksums_stream_the_file() {
        let dir = Dir::new("sums");
        let file = dir.0.join("f");
        // Over one read buffer, so that the blocks are joined right.
        let data: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let expected = kubeforge_core::hash::sha256_hex(&data);
        assert_eq!(sha256_file(&file).unwrap(), expected);
        assert_eq!(
            sha256_file(&dir.0.join("empty-does-not-exist"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn programs_that_fail_or_cannot_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Dir::new("programs");
        std::fs::create_dir_all(dir.0.join("bin")).unwrap();
        let write = |name: &str, text: &[u8], mode: u32| {
            let path = dir.0.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("bin/ok", b"#!/bin/sh\necho \"v1.28.7 $1\"\n", 0o755);
        write(
            "bin/fails",
            b"#!/bin/sh\necho one >&2\necho two >&2\nexit 3\n",
            0o755,
        );
        write("bin/plain", b"#!/bin/sh\necho hi\n", 0o644);
        assert_eq!(
            run_program(&dir.0, "bin/ok", &["x"]),
            Ok("v1.28.7 x\n".to_string())
        );
        assert_eq!(
            run_program(&dir.0, "bin/fails", &["version"]),
            Err("`bin/fails version` failed (exit status: 3): one / two".to_string())
        );
        let err = run_program(&dir.0, "bin/plain", &[]).unwrap_err();
        assert!(
            err.ends_with("it is not executable (chmod +x bin/plain)"),
            "{err}"
        );
    }
}
