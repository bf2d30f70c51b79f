//! The offline bundle (`packages.source: bundle`): its layout, the parsers of its index files
//! and the check that says whether a bundle is usable, with every problem, where it is and how
//! to fix it.
//!
//! Pure: the binary lists the bundle's files, hashes them, runs its programs and reads its
//! image archives, and hands what it found to [`check`] as an [`Observed`].
//!
//! ```text
//! bin/kubeadm, bin/kubelet, bin/kubectl     required; crictl, etcdctl, flanneld, flannel (the
//!                                           CNI plugin) and the control-plane programs optional
//! images/*.tar                              docker-archive image tarballs (manifest.json)
//! debs/*.deb, debs/Packages[.gz]            a flat apt repository (`deb [trusted=yes] file:DIR ./`)
//! etc/kubelet.service, etc/10-kubeadm.conf  the kubelet unit and kubeadm's drop-in
//! etc/images.txt                            every image in images/, one reference a line
//! etc/kubeadm-etcd-tag.txt                  optional: `etcd.local.imageTag: 3.5.16-0`
//! etc/packages.txt                          optional: Debian packages the hosts' own apt sources
//!                                           must provide (e.g. `containerd runc`)
//! manifests/*.yml                           optional: pod network manifests
//! VERSIONS                                  optional: what was built, for people
//! SHA256SUMS                                `sha256sum` of every other file
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::version::{self, DEFAULT_IMAGE_REPOSITORY, Date, KubeVersion};

pub const SUMS: &str = "SHA256SUMS";
pub const VERSIONS: &str = "VERSIONS";
pub const IMAGES_TXT: &str = "etc/images.txt";
pub const ETCD_TAG_TXT: &str = "etc/kubeadm-etcd-tag.txt";
pub const PACKAGES_TXT: &str = "etc/packages.txt";
pub const DEBS_PACKAGES: &str = "debs/Packages";

/// The programs whose versions must agree: (file, what it is).
pub const PROGRAMS: [&str; 3] = ["bin/kubeadm", "bin/kubelet", "bin/kubectl"];

/// Files every bundle has, and what each is for.
pub const REQUIRED_FILES: &[(&str, &str)] = &[
    ("bin/kubeadm", "kubeadm, which bootstraps the cluster"),
    (
        "bin/kubelet",
        "the kubelet, which runs the pods of every node",
    ),
    ("bin/kubectl", "kubectl, which applies the pod network"),
    ("etc/kubelet.service", "the kubelet's systemd unit"),
    (
        "etc/10-kubeadm.conf",
        "kubeadm's drop-in for the kubelet unit",
    ),
    (IMAGES_TXT, "the list of the images in images/"),
    (SUMS, "the checksums of every file"),
];

/// Programs a bundle may carry besides the three required ones.
pub const OPTIONAL_PROGRAMS: &[&str] = &[
    "crictl",
    "etcdctl",
    "flanneld",
    "flannel",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// An error in one of the bundle's index files, at its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub file: String,
    pub line: u32,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

fn line_error(file: &str, line: usize, message: String, fix: impl Into<String>) -> LineError {
    LineError {
        file: file.to_string(),
        line: line as u32,
        message,
        fix: fix.into(),
    }
}

/// One line of SHA256SUMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SumEntry {
    /// Relative to the bundle, `/`-separated, without a leading `./`.
    pub path: String,
    /// 64 lower-case hexadecimal digits.
    pub sha256: String,
    pub line: u32,
}

/// Reads SHA256SUMS as `sha256sum` writes it: `<64 hex digits>  <path>` (or ` *<path>` in
/// binary mode), one file a line. Every bad line is reported, the good ones are kept.
pub fn parse_sums(text: &str) -> (Vec<SumEntry>, Vec<LineError>) {
    let mut entries: Vec<SumEntry> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let form = "expected `<64 hexadecimal digits>  <path>`, as sha256sum writes";
        let regenerate = "regenerate it: cd into the bundle and run `find bin images etc debs manifests -type f | sort | xargs sha256sum > SHA256SUMS`";
        if line.starts_with('\\') {
            errors.push(line_error(
                SUMS,
                n,
                "an escaped file name (a backslash or newline in it) is not supported".into(),
                "rename the file to a plain name, then regenerate SHA256SUMS",
            ));
            continue;
        }
        let (hash, rest) = line.split_at(line.len().min(64));
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(line_error(
                SUMS,
                n,
                format!(
                    "`{}` does not start with a SHA-256 checksum: {form}",
                    shorten(line)
                ),
                regenerate,
            ));
            continue;
        }
        let path = match rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *")) {
            Some(p) => p,
            None => {
                errors.push(line_error(
                    SUMS,
                    n,
                    format!("no path after the checksum: {form}"),
                    regenerate,
                ));
                continue;
            }
        };
        let path = path.strip_prefix("./").unwrap_or(path);
        if let Err(why) = check_relative_path(path) {
            errors.push(line_error(
                SUMS,
                n,
                format!("`{path}` {why}"),
                "list files by their path inside the bundle, such as bin/kubeadm",
            ));
            continue;
        }
        if let Some(first) = seen.get(path) {
            errors.push(line_error(
                SUMS,
                n,
                format!("`{path}` is listed twice (first on line {first})"),
                "remove one of the two lines",
            ));
            continue;
        }
        seen.insert(path.to_string(), n as u32);
        entries.push(SumEntry {
            path: path.to_string(),
            sha256: hash.to_ascii_lowercase(),
            line: n as u32,
        });
    }
    (entries, errors)
}

fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.starts_with('/') {
        return Err("is absolute");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("is not a plain relative path (empty, `.` or `..` parts)");
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Lines that matter in a small list file: not blank, not a `#` comment; comments after `#`
/// are dropped. Yields (line number, trimmed text).
fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then_some((i + 1, line))
    })
}

/// An image reference such as `registry.k8s.io/pause:3.9` or `name@sha256:…`.
pub fn is_image_reference(text: &str) -> bool {
    let ok_chars = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    let last = text.rsplit('/').next().unwrap_or(text);
    ok_chars
        && !text.starts_with('/')
        && !text.ends_with('/')
        && (last.contains(':') || text.contains("@sha256:"))
}

/// The same image however it is written: Docker Hub's implicit registry and `library/`
/// spelled out.
pub fn normalize_image(reference: &str) -> String {
    let first = reference.split('/').next().unwrap_or("");
    let has_registry = reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    }
}

/// Reads etc/images.txt: one image reference a line; blank lines and `#` comments are
/// allowed.
pub fn parse_images_txt(text: &str) -> (Vec<(u32, String)>, Vec<LineError>) {
    let mut images = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in meaningful_lines(text) {
        if is_image_reference(line) {
            images.push((n as u32, line.to_string()));
        } else {
            errors.push(line_error(
                IMAGES_TXT,
                n,
                format!(
                    "`{}` is not an image reference such as registry.k8s.io/pause:3.9",
                    shorten(line)
                ),
                "write one image reference (with its tag) a line, as the archive's manifest.json names it",
            ));
        }
    }
    (images, errors)
}

/// The Kubernetes version a bundle's `etc/images.txt` names (its kube-apiserver image's tag):
/// what the bundle installs, read without running any of its programs (the offline plan).
pub fn version_from_images_txt(text: &str) -> Option<KubeVersion> {
    parse_images_txt(text)
        .0
        .iter()
        .filter_map(|(_, reference)| {
            let (image, tag) = reference.rsplit_once(':')?;
            image.ends_with("/kube-apiserver").then_some(tag)
        })
        .find_map(|tag| KubeVersion::parse_any(tag).ok())
}

/// Reads etc/kubeadm-etcd-tag.txt: `etcd.local.imageTag: <tag>`, the etcd image tag the
/// bundle carries when it is not kubeadm's default. `Ok(None)`: the file sets nothing.
pub fn parse_etcd_tag(text: &str) -> Result<Option<(u32, String)>, Vec<LineError>> {
    const KEY: &str = "etcd.local.imageTag";
    let mut found: Option<(u32, String)> = None;
    let mut errors = Vec::new();
    for (n, line) in meaningful_lines(text) {
        let Some((key, value)) = line.split_once(':') else {
            errors.push(line_error(
                ETCD_TAG_TXT,
                n,
                format!("`{}` is not `{KEY}: <tag>`", shorten(line)),
                format!("write one line: `{KEY}: 3.5.16-0`"),
            ));
            continue;
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        if key != KEY {
            errors.push(line_error(
                ETCD_TAG_TXT,
                n,
                format!("unknown key `{key}`"),
                format!("the file has one key, `{KEY}`"),
            ));
            continue;
        }
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !value.starts_with(['.', '-']);
        if !valid {
            errors.push(line_error(
                ETCD_TAG_TXT,
                n,
                format!("`{value}` is not an image tag"),
                "write the tag of the bundle's etcd image, such as 3.5.16-0",
            ));
            continue;
        }
        if let Some((first, _)) = &found {
            errors.push(line_error(
                ETCD_TAG_TXT,
                n,
                format!("`{KEY}` is set twice (first on line {first})"),
                "keep one line",
            ));
            continue;
        }
        found = Some((n as u32, value.to_string()));
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// Reads etc/packages.txt: Debian package names, separated by blanks or lines; `#` comments
/// are allowed.
pub fn parse_packages_txt(text: &str) -> (Vec<String>, Vec<LineError>) {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in meaningful_lines(text) {
        for word in line.split_whitespace() {
            if is_debian_package_name(word) {
                names.push(word.to_string());
            } else {
                errors.push(line_error(
                    PACKAGES_TXT,
                    n,
                    format!("`{}` is not a Debian package name", shorten(word)),
                    "list package names only (lower case, such as containerd runc), without versions",
                ));
            }
        }
    }
    (names, errors)
}

/// Debian policy 5.6.1: lower-case letters, digits, `+`, `-`, `.`; at least two characters,
/// starting with a letter or digit.
pub fn is_debian_package_name(word: &str) -> bool {
    word.len() >= 2
        && word.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && word
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// One package of debs/Packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    /// The .deb relative to the bundle (`debs/…`).
    pub file: String,
    #[serde(skip)]
    pub line: u32,
}

/// Reads an apt `Packages` index (as `dpkg-scanpackages` writes it): the fields kubeforge
/// needs of each stanza.
pub fn parse_deb_packages(text: &str) -> (Vec<DebPackage>, Vec<LineError>) {
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    let mut stanza: BTreeMap<&str, &str> = BTreeMap::new();
    let mut start = 0usize;
    let mut finish = |stanza: &mut BTreeMap<&str, &str>, start: usize| {
        if stanza.is_empty() {
            return;
        }
        match (
            stanza.get("Package"),
            stanza.get("Version"),
            stanza.get("Filename"),
        ) {
            (Some(name), Some(version), Some(file)) => {
                let file = file.strip_prefix("./").unwrap_or(file);
                packages.push(DebPackage {
                    name: name.to_string(),
                    version: version.to_string(),
                    file: format!("debs/{file}"),
                    line: start as u32,
                });
            }
            _ => errors.push(line_error(
                DEBS_PACKAGES,
                start,
                "a package without Package, Version or Filename".into(),
                "regenerate the index: cd debs && dpkg-scanpackages -m . /dev/null > Packages && gzip -9nkf Packages",
            )),
        }
        stanza.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(&mut stanza, start);
            continue;
        }
        if stanza.is_empty() {
            start = i + 1;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            stanza.insert(key.trim(), value.trim());
        }
    }
    finish(&mut stanza, start);
    (packages, errors)
}

/// Reads the version a Kubernetes program reports: `v1.28.7` (`kubeadm version -o short`),
/// `Kubernetes v1.28.7` (`kubelet --version`), `Client Version: v1.28.7` or the older
/// `Client Version: version.Info{… GitVersion:"v1.28.7" …}` (`kubectl version --client`).
pub fn parse_program_version(output: &str) -> Result<KubeVersion, String> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Client Version:"))
        .or_else(|| output.lines().map(str::trim).find(|l| !l.is_empty()))
        .ok_or_else(|| "it printed nothing".to_string())?;
    let candidate = line
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '{' || c == '}')
        .find(|word| {
            word.strip_prefix('v')
                .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        })
        .ok_or_else(|| format!("no version such as v1.28.7 in `{}`", shorten(line)))?;
    // Build metadata and pre-release suffixes (`+k3s1`, `-rc.1`) are not a release.
    if candidate.contains(['-', '+']) {
        return Err(format!(
            "`{candidate}` is not a Kubernetes release (a pre-release or a distribution's build)"
        ));
    }
    match KubeVersion::parse_any(candidate) {
        Ok(v) if v.patch.is_some() => Ok(v),
        _ => Err(format!("`{candidate}` is not a version such as v1.28.7")),
    }
}

/// The image references of a pod manifest (`image:` lines), with their line numbers.
pub fn manifest_images(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        let Some(value) = t.strip_prefix("image:") else {
            continue;
        };
        let value = value.split(" #").next().unwrap_or("").trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        if !value.is_empty() && !value.contains("{{") && !value.contains('$') {
            out.push(((i + 1) as u32, value.to_string()));
        }
    }
    out
}

/// One image archive of images/ and the references its manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub path: String,
    /// The manifest's `RepoTags`, or why they could not be read.
    pub tags: Result<Vec<String>, String>,
}

/// What a program printed, or why it could not run. `None`: not run (the file is missing).
pub type Ran = Option<Result<String, String>>;

/// Everything the binary found in a bundle directory.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The bundle directory, as shown in fixes.
    pub dir: String,
    /// Every regular file, relative to the bundle, `/`-separated.
    pub files: BTreeSet<String>,
    /// The SHA-256 of each file that SHA256SUMS lists and that exists, or why it could not be
    /// read.
    pub hashes: BTreeMap<String, Result<String, String>>,
    /// The text of these files where present: SHA256SUMS, etc/images.txt,
    /// etc/kubeadm-etcd-tag.txt, etc/packages.txt, debs/Packages and manifests/*.
    pub texts: BTreeMap<String, String>,
    /// What `bin/kubeadm version -o short`, `bin/kubelet --version` and
    /// `bin/kubectl version --client` printed, in [`PROGRAMS`] order.
    pub programs: [Ran; 3],
    /// What `bin/kubeadm config images list --kubernetes-version vX` printed.
    pub kubeadm_images: Ran,
    pub archives: Vec<ImageArchive>,
    /// The inventory's `kubernetes_version`, when checking a bundle for an inventory.
    pub inventory: Option<KubeVersion>,
    /// For the end-of-life note.
    pub today: Option<Date>,
    /// Entries the bundle must not have, and why: symlinks leaving it or to a directory, image
    /// archive members with absolute paths or `..`.
    pub unsafe_paths: Vec<(String, String)>,
}

/// How a program that was not run (see [`may_run_programs`]) is recorded in [`Observed`].
pub const NOT_RUN: &str = "not run: ";

/// Whether the bundle's programs may run on this machine: only once every file SHA256SUMS
/// lists (the programs among them) has its checksum, and nothing in the bundle reaches out of
/// it. `Err`: why not, for the report.
pub fn may_run_programs(o: &Observed) -> Result<(), String> {
    let Some(text) = o.texts.get(SUMS) else {
        return Err(format!(
            "the bundle has no {SUMS}: nothing of it runs unverified"
        ));
    };
    if !o.unsafe_paths.is_empty() {
        return Err("the bundle has entries that reach out of it (see above)".into());
    }
    let (entries, errors) = parse_sums(text);
    if !errors.is_empty() {
        return Err(format!("{SUMS} has lines that cannot be read (see above)"));
    }
    for program in PROGRAMS {
        if !entries.iter().any(|e| e.path == program) {
            return Err(format!("{SUMS} does not list {program}"));
        }
    }
    for e in &entries {
        match o.hashes.get(&e.path) {
            Some(Ok(hash)) if *hash == e.sha256 => {}
            None if !o.files.contains(&e.path) => {}
            _ => {
                return Err(format!(
                    "the checksum of {} is not the one {SUMS} lists (see above)",
                    e.path
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    MissingFile,
    UnlistedFile,
    ChecksumMismatch,
    UnreadableFile,
    BadIndex,
    ProgramFailed,
    VersionMismatch,
    UnsupportedVersion,
    PastEndOfLife,
    MissingImage,
    ImageListMismatch,
    BadImageArchive,
    NoContainerdSource,
    ContainerdTooOld,
    UnsafePath,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MissingFile => "missing-file",
            ProblemKind::UnlistedFile => "unlisted-file",
            ProblemKind::ChecksumMismatch => "checksum-mismatch",
            ProblemKind::UnreadableFile => "unreadable-file",
            ProblemKind::BadIndex => "bad-index",
            ProblemKind::ProgramFailed => "program-failed",
            ProblemKind::VersionMismatch => "version-mismatch",
            ProblemKind::UnsupportedVersion => "unsupported-version",
            ProblemKind::PastEndOfLife => "past-end-of-life",
            ProblemKind::MissingImage => "missing-image",
            ProblemKind::ImageListMismatch => "image-list-mismatch",
            ProblemKind::BadImageArchive => "bad-image-archive",
            ProblemKind::NoContainerdSource => "no-containerd-source",
            ProblemKind::ContainerdTooOld => "containerd-too-old",
            ProblemKind::UnsafePath => "unsafe-path",
        }
    }
}

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The file, with `:line` where a line is at fault.
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    pub fix: String,
    /// The bundle is usable all the same (a note, not an error).
    pub tolerated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Problem {
    fn new(
        kind: ProblemKind,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            path: path.into(),
            message: message.into(),
            found: None,
            expected: None,
            fix: fix.into(),
            tolerated: false,
            note: None,
        }
    }

    fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    fn tolerated(mut self, note: impl Into<String>) -> Self {
        self.tolerated = true;
        self.note = Some(note.into());
        self
    }

    fn from_line(kind: ProblemKind, e: LineError) -> Self {
        Problem::new(kind, format!("{}:{}", e.file, e.line), e.message, e.fix)
    }
}

/// A program of the bundle and the version it reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramVersion {
    pub path: String,
    pub version: Option<String>,
}

/// An image the bundle holds, and the archive it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleImage {
    pub reference: String,
    pub archive: String,
}

/// An image kubeadm needs, and whether the bundle holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeededImage {
    pub reference: String,
    pub present: bool,
}

/// The outcome of [`check`]: what the bundle holds, and every problem. Also what apply uses
/// of a usable bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub dir: String,
    pub usable: bool,
    /// The Kubernetes version of bin/kubeadm (the other programs must agree).
    pub kubernetes_version: Option<String>,
    pub programs: Vec<ProgramVersion>,
    pub images: Vec<BundleImage>,
    pub needed_images: Vec<NeededImage>,
    /// Where the needed images come from: kubeadm's own list, or kubeforge's table.
    pub needed_from: String,
    pub etcd_image_tag: Option<String>,
    pub debs: Vec<DebPackage>,
    /// Packages the hosts' own apt sources must provide (etc/packages.txt).
    pub host_packages: Vec<String>,
    pub manifests: Vec<String>,
    /// Files whose checksum matched SHA256SUMS.
    pub files_verified: usize,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn version(&self) -> Option<KubeVersion> {
        self.kubernetes_version
            .as_deref()
            .and_then(|v| KubeVersion::parse(v).ok())
    }

    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| !p.tolerated).count()
    }

    pub fn notes(&self) -> usize {
        self.problems.iter().filter(|p| p.tolerated).count()
    }
}

/// Is this CoreDNS's image (`…/coredns:TAG` or `…/coredns/coredns:TAG`)?
pub fn is_coredns(reference: &str) -> bool {
    let repo = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
    repo.ends_with("/coredns") || repo.ends_with("/coredns/coredns")
}

fn is_etcd(reference: &str) -> bool {
    let repo = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
    repo.ends_with("/etcd")
}

/// Decides whether a bundle is usable: every checksum, the programs' versions (against each
/// other, the supported range and the inventory), the images kubeadm needs and those the
/// manifests name, and a source for containerd.
pub fn check(o: &Observed) -> Report {
    let mut problems = Vec::new();
    let (entries, sums_errors) = match o.texts.get(SUMS) {
        Some(text) => parse_sums(text),
        None => (Vec::new(), Vec::new()),
    };
    check_layout(o, &entries, &mut problems);
    let files_verified = if o.texts.contains_key(SUMS) {
        check_sums(o, &entries, sums_errors, &mut problems)
    } else {
        0
    };
    let (programs, version) = check_programs(o, &mut problems);
    let (images, present) = check_archives(o, &mut problems);
    let etcd_tag = etcd_tag(o, &mut problems);
    let (needed_images, needed_from) =
        check_needed_images(o, version, &present, etcd_tag.as_deref(), &mut problems);
    let manifests = check_manifests(o, &present, &mut problems);
    let (debs, host_packages) = check_packages(o, version, &mut problems);
    // Errors first, then notes; each in the order found.
    problems.sort_by_key(|p| p.tolerated);
    Report {
        dir: o.dir.clone(),
        usable: !problems.iter().any(|p| !p.tolerated),
        kubernetes_version: version.map(|(_, v)| v.to_string()),
        programs,
        images,
        needed_images,
        needed_from,
        etcd_image_tag: etcd_tag,
        debs,
        host_packages,
        manifests,
        files_verified,
        problems,
    }
}

/// What the bundle is made of: nothing reaching out of it, the required files, image archives,
/// and an index for its packages.
fn check_layout(o: &Observed, entries: &[SumEntry], problems: &mut Vec<Problem>) {
    let dir = &o.dir;
    let listed_on = |path: &str| entries.iter().find(|e| e.path == path).map(|e| e.line);
    for (path, why) in &o.unsafe_paths {
        problems.push(
            Problem::new(
                ProblemKind::UnsafePath,
                path.clone(),
                format!("{path}: {why}"),
                "put the file itself in the bundle (a copy, not a link), and rebuild the archive with relative member names",
            )
            .found(why.clone())
            .expected("regular files and directories inside the bundle"),
        );
    }

    // Required files.
    for (path, what) in REQUIRED_FILES {
        if !o.files.contains(*path) {
            let listed = listed_on(path)
                .map(|line| format!(" (SHA256SUMS lists it on line {line}: a file was lost)"))
                .unwrap_or_default();
            let fix = if listed_on(path).is_some() {
                format!("copy the bundle again, or put {path} back")
            } else if *path == SUMS {
                format!(
                    "create it: cd {dir} && find bin images etc debs manifests -type f | sort | xargs sha256sum > SHA256SUMS"
                )
            } else {
                format!("add {path} ({what}) to the bundle, then add its line to SHA256SUMS")
            };
            problems.push(
                Problem::new(
                    ProblemKind::MissingFile,
                    *path,
                    format!("{path} is missing: {what}{listed}"),
                    fix,
                )
                .found("no such file")
                .expected(format!("{path} in the bundle")),
            );
        }
    }
    let archives_on_disk = o
        .files
        .iter()
        .filter(|f| f.starts_with("images/") && f.ends_with(".tar"))
        .count();
    if archives_on_disk == 0 {
        problems.push(
            Problem::new(
                ProblemKind::MissingFile,
                "images/",
                "the bundle holds no image archive",
                "add the control-plane images as docker-archive tarballs (`docker save REF -o images/NAME.tar`)",
            )
            .found("no images/*.tar")
            .expected("an archive for each image kubeadm needs"),
        );
    }
    let debs_on_disk = o
        .files
        .iter()
        .filter(|f| f.starts_with("debs/") && f.ends_with(".deb"))
        .count();
    if debs_on_disk > 0 && !o.files.contains(DEBS_PACKAGES) {
        problems.push(
            Problem::new(
                ProblemKind::MissingFile,
                DEBS_PACKAGES,
                format!("debs/ holds {debs_on_disk} packages but no Packages index, so apt cannot use it"),
                format!("cd {dir}/debs && dpkg-scanpackages -m . /dev/null > Packages && gzip -9nkf Packages, then update SHA256SUMS"),
            )
            .found("no debs/Packages")
            .expected("a flat apt repository: the .deb files and their Packages index"),
        );
    }
}

/// Every file against SHA256SUMS, and every file listed there; returns how many held.
fn check_sums(
    o: &Observed,
    entries: &[SumEntry],
    sums_errors: Vec<LineError>,
    problems: &mut Vec<Problem>,
) -> usize {
    let dir = &o.dir;
    let mut files_verified = 0;
    problems.extend(
        sums_errors
            .into_iter()
            .map(|e| Problem::from_line(ProblemKind::BadIndex, e)),
    );
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for e in entries {
        let at = format!("{SUMS}:{}", e.line);
        let required = REQUIRED_FILES.iter().any(|(p, _)| *p == e.path);
        if !o.files.contains(&e.path) && required {
            continue; // Said above, with its line.
        }
        if !o.files.contains(&e.path) {
            problems.push(
                    Problem::new(
                        ProblemKind::MissingFile,
                        &e.path,
                        format!("{} is listed on {at} but is not in the bundle", e.path),
                        format!("copy the bundle again (a file was lost), or remove line {} from SHA256SUMS if the file is not needed", e.line),
                    )
                    .found("no such file")
                    .expected(format!("the file listed on {at}")),
                );
            continue;
        }
        match o.hashes.get(&e.path) {
                Some(Ok(hash)) if hash.eq_ignore_ascii_case(&e.sha256) => files_verified += 1,
                Some(Ok(hash)) => problems.push(
                    Problem::new(
                        ProblemKind::ChecksumMismatch,
                        &e.path,
                        format!("{}'s checksum does not match {at}", e.path),
                        format!("the file changed or was damaged after SHA256SUMS was written: copy the bundle again; if the change is intended, replace line {} with the output of `sha256sum {}`", e.line, e.path),
                    )
                    .found(format!("sha256 {hash}"))
                    .expected(format!("sha256 {}", e.sha256)),
                ),
                Some(Err(why)) => problems.push(
                    Problem::new(
                        ProblemKind::UnreadableFile,
                        &e.path,
                        format!("{} cannot be read", e.path),
                        "make the file readable by the user running kubeforge",
                    )
                    .found(why.clone()),
                ),
                None => problems.push(Problem::new(
                    ProblemKind::UnreadableFile,
                    &e.path,
                    format!("{} was not hashed", e.path),
                    "run the check again",
                )),
            }
    }
    for f in &o.files {
        if f == SUMS || f == VERSIONS || listed.contains(f.as_str()) {
            continue;
        }
        problems.push(
                Problem::new(
                    ProblemKind::UnlistedFile,
                    f,
                    format!("{f} is not listed in SHA256SUMS, so it cannot be verified"),
                    format!("if the file belongs to the bundle: cd {dir} && sha256sum {f} >> SHA256SUMS; otherwise remove it"),
                )
                .found("a file without a checksum")
                .expected("every file except SHA256SUMS and VERSIONS listed in SHA256SUMS"),
            );
    }
    files_verified
}

/// The programs' versions: against each other, the supported minors, the date and the
/// inventory. Returns each program's version and the bundle's (kubeadm's, with its path).
fn check_programs(
    o: &Observed,
    problems: &mut Vec<Problem>,
) -> (Vec<ProgramVersion>, Option<(&'static str, KubeVersion)>) {
    let mut programs = Vec::new();
    let mut versions: Vec<(&str, KubeVersion)> = Vec::new();
    let not_run = o
        .programs
        .iter()
        .any(|r| matches!(r, Some(Err(why)) if why.starts_with(NOT_RUN)));
    if let (true, Err(why)) = (not_run, may_run_programs(o)) {
        problems.push(
            Problem::new(
                ProblemKind::ProgramFailed,
                "bin/",
                format!("the bundle's programs were not run: {why}"),
                "fix what is said above, then check the bundle again: nothing of a bundle runs before every checksum holds",
            )
            .found("programs not verified")
            .expected(format!("every file {SUMS} lists, with its checksum")),
        );
    }
    for (path, ran) in PROGRAMS.iter().zip(&o.programs) {
        let mut reported = None;
        match ran {
            None => {}
            Some(Err(why)) if why.starts_with(NOT_RUN) => {}
            Some(Err(why)) => problems.push(
                Problem::new(
                    ProblemKind::ProgramFailed,
                    *path,
                    format!("{path} cannot run on this machine"),
                    "run the check on a machine of the hosts' architecture, or use a bundle built for this one",
                )
                .found(why.clone()),
            ),
            Some(Ok(output)) => match parse_program_version(output) {
                Ok(v) => {
                    reported = Some(format!("v{v}"));
                    versions.push((path, v));
                }
                Err(why) => problems.push(
                    Problem::new(
                        ProblemKind::ProgramFailed,
                        *path,
                        format!("{path} did not report a Kubernetes version: {why}"),
                        format!("{path} must be the Kubernetes program of that name; replace it"),
                    )
                    .found(shorten(output.trim())),
                ),
            },
        }
        programs.push(ProgramVersion {
            path: path.to_string(),
            version: reported,
        });
    }
    let version = versions.first().map(|(p, v)| (*p, *v));
    if let Some((reference_path, reference)) = version {
        for (path, v) in versions.iter().skip(1) {
            if *v != reference {
                problems.push(
                    Problem::new(
                        ProblemKind::VersionMismatch,
                        *path,
                        format!("{path} is v{v}, but {reference_path} is v{reference}"),
                        format!("kubeadm, kubelet and kubectl must come from one Kubernetes release: replace {path} with v{reference}'s"),
                    )
                    .found(format!("v{v}"))
                    .expected(format!("v{reference}, as {reference_path} reports")),
                );
            }
        }
        if version::minor_facts(reference.minor).is_none() {
            problems.push(
                Problem::new(
                    ProblemKind::UnsupportedVersion,
                    reference_path,
                    format!("Kubernetes v{reference} is not supported by this kubeforge"),
                    format!(
                        "use a bundle of Kubernetes 1.{} to 1.{}",
                        version::OLDEST_MINOR,
                        version::NEWEST_MINOR
                    ),
                )
                .found(format!("v{reference}"))
                .expected(format!(
                    "a version from 1.{} to 1.{}",
                    version::OLDEST_MINOR,
                    version::NEWEST_MINOR
                )),
            );
        } else if let Some(today) = o.today
            && reference.is_past_end_of_life(today)
        {
            problems.push(
                Problem::new(
                    ProblemKind::PastEndOfLife,
                    reference_path,
                    format!(
                        "Kubernetes 1.{} reached its upstream end of life on {}",
                        reference.minor,
                        reference.end_of_life()
                    ),
                    format!(
                        "build a bundle of Kubernetes 1.{}, the newest supported minor",
                        version::NEWEST_MINOR
                    ),
                )
                .found(format!("v{reference}, today is {today}"))
                .tolerated("it installs, but gets no security fixes"),
            );
        }
        if let Some(wanted) = o.inventory
            && (wanted.minor != reference.minor
                || wanted.patch.is_some_and(|p| Some(p) != reference.patch))
        {
            problems.push(
                Problem::new(
                    ProblemKind::VersionMismatch,
                    reference_path,
                    format!("the bundle holds Kubernetes v{reference}, but the inventory asks for {wanted}"),
                    format!("use a bundle of Kubernetes {wanted}, or set kubernetes_version: \"{reference}\" in the inventory"),
                )
                .found(format!("v{reference} in the bundle"))
                .expected(format!("{wanted} (kubernetes_version in the inventory)")),
            );
        }
    }

    (programs, version)
}

/// The images the archives hold, against etc/images.txt. Returns them, and the set of their
/// normalised references.
fn check_archives(
    o: &Observed,
    problems: &mut Vec<Problem>,
) -> (Vec<BundleImage>, BTreeSet<String>) {
    let mut images = Vec::new();
    for archive in &o.archives {
        match &archive.tags {
            Ok(tags) if !tags.is_empty() => images.extend(tags.iter().map(|t| BundleImage {
                reference: t.clone(),
                archive: archive.path.clone(),
            })),
            Ok(_) => problems.push(
                Problem::new(
                    ProblemKind::BadImageArchive,
                    &archive.path,
                    format!("{} names no image (its manifest.json has no RepoTags)", archive.path),
                    "export the image with its name: `docker save REF -o ARCHIVE` or `ctr -n k8s.io images export ARCHIVE REF`",
                ),
            ),
            Err(why) => problems.push(
                Problem::new(
                    ProblemKind::BadImageArchive,
                    &archive.path,
                    format!("{} is not a readable image archive", archive.path),
                    "replace it with a docker-archive tarball (`docker save REF -o ARCHIVE`)",
                )
                .found(why.clone())
                .expected("a tar file with manifest.json naming the image"),
            ),
        }
    }
    images.sort_by(|a, b| {
        a.reference
            .cmp(&b.reference)
            .then(a.archive.cmp(&b.archive))
    });
    let present: BTreeSet<String> = images
        .iter()
        .map(|i| normalize_image(&i.reference))
        .collect();
    let mut listed = BTreeSet::new();
    if let Some(text) = o.texts.get(IMAGES_TXT) {
        let (entries, errors) = parse_images_txt(text);
        problems.extend(
            errors
                .into_iter()
                .map(|e| Problem::from_line(ProblemKind::BadIndex, e)),
        );
        for (line, reference) in entries {
            let normal = normalize_image(&reference);
            if !present.contains(&normal) {
                problems.push(
                    Problem::new(
                        ProblemKind::ImageListMismatch,
                        format!("{IMAGES_TXT}:{line}"),
                        format!("{reference} is listed, but no archive in images/ holds it"),
                        "add its archive to images/ (and SHA256SUMS), or remove the line",
                    )
                    .found("no archive names it in its manifest.json")
                    .expected("an archive in images/ for every line"),
                );
            }
            listed.insert(normal);
        }
        for image in &images {
            if !listed.contains(&normalize_image(&image.reference)) {
                problems.push(
                    Problem::new(
                        ProblemKind::ImageListMismatch,
                        &image.archive,
                        format!(
                            "{} holds {}, which etc/images.txt does not list",
                            image.archive, image.reference
                        ),
                        format!(
                            "add `{}` to etc/images.txt (and update its line in SHA256SUMS)",
                            image.reference
                        ),
                    )
                    .tolerated("kubeforge imports every archive in images/ all the same"),
                );
            }
        }
    }

    (images, present)
}

/// etc/kubeadm-etcd-tag.txt's etcd tag, if the bundle names one.
fn etcd_tag(o: &Observed, problems: &mut Vec<Problem>) -> Option<String> {
    match o.texts.get(ETCD_TAG_TXT).map(|t| parse_etcd_tag(t)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some((_, tag)))) => Some(tag),
        Some(Err(errors)) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| Problem::from_line(ProblemKind::BadIndex, e)),
            );
            None
        }
    }
}

/// The images kubeadm needs for the bundle's version, each present or not. Returns them and
/// where the list came from.
fn check_needed_images(
    o: &Observed,
    version: Option<(&'static str, KubeVersion)>,
    present: &BTreeSet<String>,
    etcd_tag: Option<&str>,
    problems: &mut Vec<Problem>,
) -> (Vec<NeededImage>, String) {
    let mut needed_images = Vec::new();
    let mut needed_from = String::from("unknown: no Kubernetes version");
    if let Some((kubeadm_path, v)) = version
        && let Some(facts) = version::minor_facts(v.minor)
    {
        let from_kubeadm: Option<Vec<String>> = match &o.kubeadm_images {
            Some(Ok(out)) => {
                let list: Vec<String> = out
                    .lines()
                    .map(str::trim)
                    .filter(|l| is_image_reference(l))
                    .map(String::from)
                    .collect();
                (!list.is_empty()).then_some(list)
            }
            _ => None,
        };
        let mut needed = match from_kubeadm {
            Some(list) => {
                needed_from =
                    format!("{kubeadm_path} config images list --kubernetes-version v{v}");
                list
            }
            None => {
                needed_from = format!("kubeforge's table for Kubernetes 1.{}", v.minor);
                facts.images(v.patch.unwrap_or(0), DEFAULT_IMAGE_REPOSITORY)
            }
        };
        if let Some(tag) = &etcd_tag {
            for image in needed.iter_mut().filter(|i| is_etcd(i)) {
                let repo = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
                *image = format!("{repo}:{tag}");
            }
            needed_from.push_str(&format!(", etcd tag from {ETCD_TAG_TXT}"));
        }
        for reference in needed {
            let is_present = present.contains(&normalize_image(&reference));
            if !is_present {
                let mut p = Problem::new(
                    ProblemKind::MissingImage,
                    "images/",
                    format!("no archive in images/ holds {reference}, which kubeadm v{v} needs"),
                    format!("add its archive (`docker save {reference} -o images/NAME.tar`), list it in etc/images.txt and SHA256SUMS"),
                )
                .found("not in any image archive")
                .expected(reference.clone());
                if is_coredns(&reference) {
                    p = p.tolerated("kubeadm's ImagePull preflight lists CoreDNS even when its addon is skipped; kubeforge then skips the CoreDNS addon, so the cluster has no DNS until one is installed");
                } else if is_etcd(&reference) && etcd_tag.is_none() {
                    p.fix.push_str(&format!(
                        "; or, if the bundle carries another etcd tag, name it in {ETCD_TAG_TXT} (`etcd.local.imageTag: TAG`)"
                    ));
                }
                problems.push(p);
            }
            needed_images.push(NeededImage {
                reference,
                present: is_present,
            });
        }
    }

    (needed_images, needed_from)
}

/// The manifests, and the images their pods run present. Returns the manifests' paths.
fn check_manifests(
    o: &Observed,
    present: &BTreeSet<String>,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let manifests: Vec<String> = o
        .files
        .iter()
        .filter(|f| f.starts_with("manifests/") && (f.ends_with(".yml") || f.ends_with(".yaml")))
        .cloned()
        .collect();
    for path in &manifests {
        let Some(text) = o.texts.get(path) else {
            continue;
        };
        for (line, reference) in manifest_images(text) {
            if !present.contains(&normalize_image(&reference)) {
                problems.push(
                    Problem::new(
                        ProblemKind::MissingImage,
                        format!("{path}:{line}"),
                        format!("the manifest runs {reference}, which no archive in images/ holds"),
                        "add its archive to images/ (the hosts cannot pull it), or change the manifest's image",
                    )
                    .found("not in any image archive")
                    .expected(reference),
                );
            }
        }
    }

    manifests
}

/// The bundle's Debian packages and those the hosts' apt provides, and a containerd new
/// enough from one of them. Returns both.
fn check_packages(
    o: &Observed,
    version: Option<(&'static str, KubeVersion)>,
    problems: &mut Vec<Problem>,
) -> (Vec<DebPackage>, Vec<String>) {
    let dir = &o.dir;
    let mut debs = Vec::new();
    if let Some(text) = o.texts.get(DEBS_PACKAGES) {
        let (packages, errors) = parse_deb_packages(text);
        problems.extend(
            errors
                .into_iter()
                .map(|e| Problem::from_line(ProblemKind::BadIndex, e)),
        );
        for p in &packages {
            if !o.files.contains(&p.file) {
                problems.push(
                    Problem::new(
                        ProblemKind::MissingFile,
                        &p.file,
                        format!("{} ({} {}) is named on {DEBS_PACKAGES}:{} but is not in the bundle", p.file, p.name, p.version, p.line),
                        format!("copy the bundle again, or regenerate the index: cd {dir}/debs && dpkg-scanpackages -m . /dev/null > Packages && gzip -9nkf Packages"),
                    )
                    .found("no such file"),
                );
            }
        }
        debs = packages;
    }
    let mut host_packages = Vec::new();
    if let Some(text) = o.texts.get(PACKAGES_TXT) {
        let (names, errors) = parse_packages_txt(text);
        problems.extend(
            errors
                .into_iter()
                .map(|e| Problem::from_line(ProblemKind::BadIndex, e)),
        );
        host_packages = names;
    }
    let is_containerd = |name: &str| name == "containerd" || name == "containerd.io";
    let bundled = debs.iter().find(|p| is_containerd(&p.name));
    if bundled.is_none() && !host_packages.iter().any(|n| is_containerd(n)) {
        problems.push(
            Problem::new(
                ProblemKind::NoContainerdSource,
                if o.files.contains(DEBS_PACKAGES) { DEBS_PACKAGES } else { PACKAGES_TXT },
                "nothing provides containerd: debs/ has no containerd package and etc/packages.txt does not name one",
                "add containerd's .deb (with runc) to debs/ and regenerate debs/Packages, or list `containerd` in etc/packages.txt so that the hosts' own apt sources provide it",
            )
            .expected("a containerd or containerd.io package in debs/, or named in etc/packages.txt"),
        );
    }
    if let (Some(p), Some((_, v))) = (bundled, version)
        && let Some(facts) = version::minor_facts(v.minor)
    {
        let upstream = p
            .version
            .split_once(':')
            .map_or(p.version.as_str(), |(_, u)| u);
        let major: Option<u32> = upstream.split('.').next().and_then(|m| m.parse().ok());
        if major.is_some_and(|m| m < facts.oldest_containerd_major) {
            problems.push(
                Problem::new(
                    ProblemKind::ContainerdTooOld,
                    format!("{DEBS_PACKAGES}:{}", p.line),
                    format!(
                        "the bundle's {} {} is too old for Kubernetes 1.{}",
                        p.name, p.version, v.minor
                    ),
                    format!(
                        "bundle containerd {}.x or newer (Docker's containerd.io)",
                        facts.oldest_containerd_major
                    ),
                )
                .found(format!("{} {}", p.name, p.version))
                .expected(format!(
                    "containerd {}.x or newer",
                    facts.oldest_containerd_major
                )),
            );
        }
    }

    (debs, host_packages)
}

/// The report as text: the version, the images, every problem with its fix, and a verdict.
pub struct ReportText<'a>(pub &'a Report);

impl fmt::Display for ReportText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(f, "bundle {}", r.dir)?;
        match &r.kubernetes_version {
            Some(v) => writeln!(f, "  kubernetes   v{v}")?,
            None => writeln!(f, "  kubernetes   unknown")?,
        }
        for p in &r.programs {
            writeln!(
                f,
                "    {:<13}{}",
                p.path,
                p.version.as_deref().unwrap_or("-")
            )?;
        }
        if let Some(tag) = &r.etcd_image_tag {
            writeln!(f, "  etcd tag     {tag} (from {ETCD_TAG_TXT})")?;
        }
        writeln!(f, "  images       {} in images/", r.images.len())?;
        let width = r
            .images
            .iter()
            .map(|i| i.reference.len())
            .max()
            .unwrap_or(0);
        for image in &r.images {
            writeln!(f, "    {:<width$}  {}", image.reference, image.archive)?;
        }
        if !r.needed_images.is_empty() {
            writeln!(f, "  kubeadm needs (from {}):", r.needed_from)?;
            let width = r
                .needed_images
                .iter()
                .map(|i| i.reference.len())
                .max()
                .unwrap_or(0);
            for image in &r.needed_images {
                let state = if image.present {
                    "present".to_string()
                } else if r
                    .problems
                    .iter()
                    .any(|p| p.tolerated && p.expected.as_deref() == Some(&image.reference))
                {
                    "missing (tolerated)".to_string()
                } else {
                    "MISSING".to_string()
                };
                writeln!(f, "    {:<width$}  {state}", image.reference)?;
            }
        }
        if !r.debs.is_empty() {
            let containerd = r
                .debs
                .iter()
                .find(|p| p.name == "containerd" || p.name == "containerd.io")
                .map(|p| format!(", {} {}", p.name, p.version))
                .unwrap_or_default();
            let plural = if r.debs.len() == 1 { "" } else { "s" };
            writeln!(
                f,
                "  debs         {} package{plural}{containerd}",
                r.debs.len()
            )?;
        }
        if !r.host_packages.is_empty() {
            writeln!(
                f,
                "  from hosts   {} (etc/packages.txt)",
                r.host_packages.join(" ")
            )?;
        }
        if !r.manifests.is_empty() {
            writeln!(f, "  manifests    {}", r.manifests.join(", "))?;
        }
        for p in &r.problems {
            let severity = if p.tolerated { "note" } else { "error" };
            writeln!(
                f,
                "{severity}[{}]: {}: {}",
                p.kind.as_str(),
                p.path,
                p.message
            )?;
            if let Some(found) = &p.found {
                writeln!(f, "  found: {found}")?;
            }
            if let Some(expected) = &p.expected {
                writeln!(f, "  expected: {expected}")?;
            }
            if let Some(note) = &p.note {
                writeln!(f, "  note: {note}")?;
            }
            writeln!(f, "  fix: {}", p.fix)?;
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let mut verdict = String::new();
        let _ = write!(
            verdict,
            "{}: {}, {}, {} verified",
            if r.usable { "usable" } else { "not usable" },
            plural(r.errors(), "error"),
            plural(r.notes(), "note"),
            plural(r.files_verified, "file"),
        );
        writeln!(f, "{verdict}")
    }
}

#[cfg(test)]
mod tests;

/// A checked, usable bundle as apply installs it: where it is on this machine and what each
/// file is (sha256 and size, for uploads that only send what differs), with the few texts the
/// steps render from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub dir: std::path::PathBuf,
    /// The exact Kubernetes version of its kubeadm.
    pub version: KubeVersion,
    /// Every file, relative to `dir`.
    pub files: BTreeMap<String, BundleFile>,
    pub images: Vec<BundleImage>,
    /// Images kubeadm needs that the bundle lacks, tolerated (CoreDNS).
    pub missing_images: Vec<String>,
    /// The packages of `debs/`.
    pub debs: Vec<DebPackage>,
    /// Debian packages the hosts' own apt sources must provide (etc/packages.txt).
    pub host_packages: Vec<String>,
    /// etc/kubelet.service and etc/10-kubeadm.conf.
    pub kubelet_service: String,
    pub kubeadm_dropin: String,
    /// The pod network manifests (`manifests/…`) and their text.
    pub manifests: BTreeMap<String, String>,
    /// `etcd.local.imageTag` for kubeadm when the bundle's etcd is not kubeadm's default.
    pub etcd_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub sha256: String,
    pub size: u64,
}

impl Bundle {
    /// The bundle's programs that go to /usr/local/bin when it has them.
    pub const BINARIES: &[&str] = &["kubeadm", "kubelet", "kubectl", "crictl"];

    /// The runtime packages to install: containerd from `debs/` (Docker's containerd.io or
    /// Debian's containerd), the CNI plugins when `debs/` has them, and etc/packages.txt.
    pub fn runtime_packages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in ["containerd.io", "containerd", "containernetworking-plugins"] {
            if self.debs.iter().any(|d| d.name == name)
                && !(name == "containerd" && out.iter().any(|p| p == "containerd.io"))
            {
                out.push(name.to_string());
            }
        }
        for p in &self.host_packages {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The Debian version of the containerd the bundle brings, if it brings one.
    pub fn containerd_version(&self) -> Option<&str> {
        self.debs
            .iter()
            .find(|d| d.name == "containerd.io" || d.name == "containerd")
            .map(|d| d.version.as_str())
    }

    /// Files under `prefix` (`debs/`, `images/`).
    pub fn files_under<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a BundleFile)> {
        self.files
            .iter()
            .filter(move |(p, _)| p.starts_with(prefix))
    }
}
