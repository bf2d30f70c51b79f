//! The bundle's parsers and the check, on hand-made observations: a good bundle, then one
//! fault at a time.

use super::*;

const K: &str = "registry.k8s.io";

/// A usable bundle of v1.28.7 as `check` sees it: every file listed and matching, the three
/// programs agreeing, every image kubeadm needs but CoreDNS, the etcd tag overridden, debs/
/// with containerd.
fn good() -> Observed {
    let mut o = Observed {
        dir: "/srv/bundle".into(),
        ..Observed::default()
    };
    let images = [
        (
            "images/kube-apiserver.tar",
            format!("{K}/kube-apiserver:v1.28.7"),
        ),
        (
            "images/kube-controller-manager.tar",
            format!("{K}/kube-controller-manager:v1.28.7"),
        ),
        (
            "images/kube-scheduler.tar",
            format!("{K}/kube-scheduler:v1.28.7"),
        ),
        ("images/kube-proxy.tar", format!("{K}/kube-proxy:v1.28.7")),
        ("images/pause.tar", format!("{K}/pause:3.9")),
        ("images/etcd.tar", format!("{K}/etcd:3.5.16-0")),
        (
            "images/flannel.tar",
            "docker.io/flannel/flannel:v0.20.2".to_string(),
        ),
    ];
    let mut texts: Vec<(&str, String)> = vec![
        (
            IMAGES_TXT,
            images.iter().map(|(_, r)| format!("{r}\n")).collect(),
        ),
        (ETCD_TAG_TXT, "etcd.local.imageTag: 3.5.16-0\n".into()),
        (
            DEBS_PACKAGES,
            "Package: containerd\nVersion: 1.6.20~ds1-1+b1\nFilename: ./containerd_1.6.20~ds1-1+b1_amd64.deb\n\nPackage: runc\nVersion: 1.1.5+ds1-1+deb12u1\nFilename: ./runc_1.1.5+ds1-1+deb12u1_amd64.deb\n".into(),
        ),
        (
            "manifests/kube-flannel.yml",
            "spec:\n  containers:\n  - name: kube-flannel\n    image: docker.io/flannel/flannel:v0.20.2  # bundle: image\n".into(),
        ),
    ];
    let plain = [
        "bin/kubeadm",
        "bin/kubelet",
        "bin/kubectl",
        "bin/crictl",
        "etc/kubelet.service",
        "etc/10-kubeadm.conf",
        "debs/containerd_1.6.20~ds1-1+b1_amd64.deb",
        "debs/runc_1.1.5+ds1-1+deb12u1_amd64.deb",
        "debs/Packages.gz",
    ];
    let mut files: Vec<String> = plain.iter().map(|s| s.to_string()).collect();
    files.extend(images.iter().map(|(p, _)| p.to_string()));
    files.extend(texts.iter().map(|(p, _)| p.to_string()));
    let mut sums = String::new();
    for (i, f) in files.iter().enumerate() {
        let hash = format!("{:064x}", i + 1);
        sums.push_str(&format!("{hash}  {f}\n"));
        o.hashes.insert(f.clone(), Ok(hash));
    }
    texts.push((SUMS, sums));
    files.push(SUMS.into());
    files.push(VERSIONS.into());
    o.files = files.into_iter().collect();
    o.texts = texts.into_iter().map(|(p, t)| (p.to_string(), t)).collect();
    o.programs = [
        Some(Ok("v1.28.7\n".into())),
        Some(Ok("Kubernetes v1.28.7\n".into())),
        Some(Ok(
            "Client Version: v1.28.7\nKustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\n"
                .into(),
        )),
    ];
    o.archives = images
        .iter()
        .map(|(p, r)| ImageArchive {
            path: p.to_string(),
            tags: Ok(vec![r.clone()]),
        })
        .collect();
    o
}

fn kinds(r: &Report) -> Vec<(ProblemKind, &str, bool)> {
    r.problems
        .iter()
        .map(|p| (p.kind, p.path.as_str(), p.tolerated))
        .collect()
}

/// The one problem that is not the good bundle's CoreDNS note.
fn the_problem(o: &Observed) -> Problem {
    let r = check(o);
    let found: Vec<&Problem> = r
        .problems
        .iter()
        .filter(|p| !(p.kind == ProblemKind::MissingImage && p.tolerated))
        .collect();
    assert_eq!(found.len(), 1, "{:#?}", r.problems);
    found[0].clone()
}

#[test]
fn a_good_bundle_is_usable_with_a_note_for_coredns() {
    let r = check(&good());
    assert!(r.usable, "{:#?}", r.problems);
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.28.7"));
    assert_eq!(r.files_verified, 20);
    assert_eq!(r.etcd_image_tag.as_deref(), Some("3.5.16-0"));
    assert_eq!(
        r.needed_from,
        "kubeforge's table for Kubernetes 1.28, etcd tag from etc/kubeadm-etcd-tag.txt"
    );
    let needed: Vec<(&str, bool)> = r
        .needed_images
        .iter()
        .map(|i| (i.reference.as_str(), i.present))
        .collect();
    assert_eq!(
        needed,
        [
            ("registry.k8s.io/kube-apiserver:v1.28.7", true),
            ("registry.k8s.io/kube-controller-manager:v1.28.7", true),
            ("registry.k8s.io/kube-scheduler:v1.28.7", true),
            ("registry.k8s.io/kube-proxy:v1.28.7", true),
            ("registry.k8s.io/pause:3.9", true),
            ("registry.k8s.io/etcd:3.5.16-0", true),
            ("registry.k8s.io/coredns/coredns:v1.10.1", false),
        ]
    );
    assert_eq!(kinds(&r), [(ProblemKind::MissingImage, "images/", true)]);
    let note = &r.problems[0];
    assert!(
        note.note
            .as_deref()
            .unwrap()
            .contains("ImagePull preflight")
    );
    assert_eq!(r.debs.len(), 2);
    assert_eq!(r.manifests, ["manifests/kube-flannel.yml"]);
}

#[test]
fn with_coredns_there_is_nothing_to_say() {
    let mut o = good();
    o.archives.push(ImageArchive {
        path: "images/coredns.tar".into(),
        tags: Ok(vec![format!("{K}/coredns/coredns:v1.10.1")]),
    });
    o.files.insert("images/coredns.tar".into());
    o.hashes
        .insert("images/coredns.tar".into(), Ok("0".repeat(64)));
    let sums = o.texts.get_mut(SUMS).unwrap();
    sums.push_str(&format!("{}  images/coredns.tar\n", "0".repeat(64)));
    o.texts
        .get_mut(IMAGES_TXT)
        .unwrap()
        .push_str("registry.k8s.io/coredns/coredns:v1.10.1\n");
    let r = check(&o);
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    assert!(r.usable);
}

#[test]
fn kubeadms_own_list_wins_over_the_table() {
    let mut o = good();
    // kubeadm 1.28.4 lists etcd 3.5.9-0 and the table says 3.5.10-0; the override wins over both.
    o.kubeadm_images = Some(Ok(format!(
        "{K}/kube-apiserver:v1.28.7\n{K}/kube-controller-manager:v1.28.7\n{K}/kube-scheduler:v1.28.7\n{K}/kube-proxy:v1.28.7\n{K}/pause:3.9\n{K}/etcd:3.5.9-0\n{K}/coredns/coredns:v1.10.1\n"
    )));
    let r = check(&o);
    assert_eq!(
        r.needed_from,
        "bin/kubeadm config images list --kubernetes-version v1.28.7, etcd tag from etc/kubeadm-etcd-tag.txt"
    );
    assert!(r.usable);
    assert_eq!(
        r.needed_images[5].reference,
        "registry.k8s.io/etcd:3.5.16-0"
    );
    // A pause image the table does not know is needed when kubeadm says so.
    o.kubeadm_images = Some(Ok(format!("{K}/pause:3.9.1\n")));
    let p = the_problem(&o);
    assert_eq!(p.kind, ProblemKind::MissingImage);
    assert_eq!(p.expected.as_deref(), Some("registry.k8s.io/pause:3.9.1"));
    // kubeadm that cannot list: the table.
    o.kubeadm_images = Some(Err("exit status 1".into()));
    assert!(check(&o).needed_from.starts_with("kubeforge's table"));
}

#[test]
fn missing_file() {
    let mut o = good();
    o.files.remove("bin/kubectl");
    o.programs[2] = None;
    let r = check(&o);
    assert!(!r.usable);
    let k = kinds(&r);
    assert!(
        k.contains(&(ProblemKind::MissingFile, "bin/kubectl", false)),
        "{k:?}"
    );
    let found: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.path == "bin/kubectl")
        .collect();
    assert_eq!(found.len(), 1, "said once: {found:#?}");
    assert_eq!(
        found[0].message,
        "bin/kubectl is missing: kubectl, which applies the pod network (SHA256SUMS lists it on line 3: a file was lost)"
    );
    // Any other listed file: the line.
    let mut o = good();
    o.files.remove("bin/crictl");
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::MissingFile, "bin/crictl")
    );
    assert_eq!(
        p.message,
        "bin/crictl is listed on SHA256SUMS:4 but is not in the bundle"
    );
}

#[test]
fn missing_sums_and_packages_index() {
    let mut o = good();
    o.files.remove(SUMS);
    o.texts.remove(SUMS);
    o.files.remove(DEBS_PACKAGES);
    o.texts.remove(DEBS_PACKAGES);
    let r = check(&o);
    let k = kinds(&r);
    assert!(
        k.contains(&(ProblemKind::MissingFile, SUMS, false)),
        "{k:?}"
    );
    assert!(
        k.contains(&(ProblemKind::MissingFile, DEBS_PACKAGES, false)),
        "{k:?}"
    );
    assert!(
        !k.iter()
            .any(|(kind, _, _)| *kind == ProblemKind::UnlistedFile),
        "one problem, not one per file"
    );
    assert_eq!(r.files_verified, 0);
}

#[test]
fn unlisted_file() {
    let mut o = good();
    o.files.insert("bin/extra".into());
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::UnlistedFile, "bin/extra")
    );
    assert_eq!(
        p.fix,
        "if the file belongs to the bundle: cd /srv/bundle && sha256sum bin/extra >> SHA256SUMS; otherwise remove it"
    );
}

#[test]
fn wrong_checksum() {
    let mut o = good();
    o.hashes.insert("bin/kubelet".into(), Ok("f".repeat(64)));
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::ChecksumMismatch, "bin/kubelet")
    );
    assert_eq!(
        p.message,
        "bin/kubelet's checksum does not match SHA256SUMS:2"
    );
    assert_eq!(p.found, Some(format!("sha256 {}", "f".repeat(64))));
    assert_eq!(p.expected, Some(format!("sha256 {:064x}", 2)));
}

#[test]
fn unreadable_file() {
    let mut o = good();
    o.hashes.insert(
        "bin/kubelet".into(),
        Err("Permission denied (os error 13)".into()),
    );
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::UnreadableFile, "bin/kubelet")
    );
}

#[test]
fn bad_sums_line() {
    let mut o = good();
    o.texts
        .get_mut(SUMS)
        .unwrap()
        .push_str("not-a-hash  bin/kubeadm\n");
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::BadIndex, "SHA256SUMS:21")
    );
}

#[test]
fn version_mismatch_between_programs() {
    let mut o = good();
    o.programs[1] = Some(Ok("Kubernetes v1.28.6\n".into()));
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::VersionMismatch, "bin/kubelet")
    );
    assert_eq!(
        p.message,
        "bin/kubelet is v1.28.6, but bin/kubeadm is v1.28.7"
    );
    assert_eq!(
        p.expected.as_deref(),
        Some("v1.28.7, as bin/kubeadm reports")
    );
}

#[test]
fn version_mismatch_with_the_inventory() {
    let mut o = good();
    o.inventory = Some(KubeVersion::parse("1.28").unwrap());
    assert!(check(&o).usable, "a minor matches its every patch");
    o.inventory = Some(KubeVersion::parse("1.28.7").unwrap());
    assert!(check(&o).usable);
    o.inventory = Some(KubeVersion::parse("1.29").unwrap());
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::VersionMismatch, "bin/kubeadm")
    );
    assert_eq!(
        p.message,
        "the bundle holds Kubernetes v1.28.7, but the inventory asks for 1.29"
    );
    assert_eq!(
        p.fix,
        "use a bundle of Kubernetes 1.29, or set kubernetes_version: \"1.28.7\" in the inventory"
    );
    o.inventory = Some(KubeVersion::parse("1.28.6").unwrap());
    assert_eq!(the_problem(&o).kind, ProblemKind::VersionMismatch);
}

#[test]
fn unsupported_version() {
    let mut o = good();
    o.programs = [
        Some(Ok("v1.27.9".into())),
        Some(Ok("Kubernetes v1.27.9".into())),
        Some(Ok("Client Version: v1.27.9".into())),
    ];
    let r = check(&o);
    assert!(!r.usable);
    assert_eq!(
        kinds(&r),
        [(ProblemKind::UnsupportedVersion, "bin/kubeadm", false)],
        "no image check without a table row"
    );
}

#[test]
fn program_that_cannot_run_or_says_something_else() {
    let mut o = good();
    o.programs[0] = Some(Err(
        "Exec format error (os error 8): built for another architecture?".into(),
    ));
    let r = check(&o);
    let p = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::ProgramFailed)
        .unwrap();
    assert_eq!(p.path, "bin/kubeadm");
    assert!(!r.usable);
    // The others still give the version.
    assert_eq!(r.kubernetes_version.as_deref(), Some("1.28.7"));
    o.programs[0] = Some(Ok("hello\n".into()));
    let p = the_problem(&o);
    assert_eq!(p.kind, ProblemKind::ProgramFailed);
    assert_eq!(
        p.message,
        "bin/kubeadm did not report a Kubernetes version: no version such as v1.28.7 in `hello`"
    );
}

#[test]
fn past_end_of_life_is_a_note() {
    let mut o = good();
    o.today = Some(Date::new(2026, 11, 27));
    let r = check(&o);
    assert!(r.usable);
    let p = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::PastEndOfLife)
        .unwrap();
    assert!(p.tolerated);
    assert_eq!(
        p.message,
        "Kubernetes 1.28 reached its upstream end of life on 2024-10-22"
    );
}

#[test]
fn missing_image() {
    let mut o = good();
    o.archives.retain(|a| a.path != "images/etcd.tar");
    o.texts.insert(ETCD_TAG_TXT.into(), String::new());
    let r = check(&o);
    assert!(!r.usable);
    let missing: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::MissingImage && !p.tolerated)
        .collect();
    assert_eq!(missing.len(), 1, "{:#?}", r.problems);
    assert_eq!(
        missing[0].expected.as_deref(),
        Some("registry.k8s.io/etcd:3.5.10-0")
    );
    assert!(
        missing[0]
            .fix
            .contains("name it in etc/kubeadm-etcd-tag.txt")
    );
    // images.txt still lists etcd: that is said too.
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::ImageListMismatch
                && p.path == "etc/images.txt:6"
                && !p.tolerated)
    );
}

#[test]
fn missing_image_of_a_manifest() {
    let mut o = good();
    o.texts.insert(
        "manifests/kube-flannel.yml".into(),
        "containers:\n- image: \"docker.io/flannel/flannel:v0.22.0\"\n".into(),
    );
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::MissingImage, "manifests/kube-flannel.yml:2")
    );
}

#[test]
fn images_txt_and_archives_disagree() {
    let mut o = good();
    o.texts.insert(
        IMAGES_TXT.into(),
        o.texts[IMAGES_TXT].replace("registry.k8s.io/pause:3.9\n", ""),
    );
    let r = check(&o);
    assert!(r.usable, "tolerated: every archive is imported");
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::ImageListMismatch
                && p.path == "images/pause.tar"
                && p.tolerated)
    );
}

#[test]
fn bad_image_archive() {
    let mut o = good();
    o.archives[0].tags = Err("no manifest.json in the archive".into());
    let r = check(&o);
    let p = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::BadImageArchive)
        .unwrap();
    assert_eq!(p.path, "images/kube-apiserver.tar");
    assert!(!r.usable);
}

#[test]
fn no_containerd_source() {
    let mut o = good();
    let packages =
        o.texts[DEBS_PACKAGES].replace("Package: containerd\n", "Package: containerd-tools\n");
    o.texts.insert(DEBS_PACKAGES.into(), packages);
    let p = the_problem(&o);
    assert_eq!(
        (p.kind, p.path.as_str()),
        (ProblemKind::NoContainerdSource, DEBS_PACKAGES)
    );
    // The hosts' own apt sources may provide it.
    o.texts.insert(
        PACKAGES_TXT.into(),
        "# from Debian\ncontainerd runc\n".into(),
    );
    o.files.insert(PACKAGES_TXT.into());
    o.hashes.insert(PACKAGES_TXT.into(), Ok("1".repeat(64)));
    o.texts
        .get_mut(SUMS)
        .unwrap()
        .push_str(&format!("{}  {PACKAGES_TXT}\n", "1".repeat(64)));
    let r = check(&o);
    assert!(r.usable, "{:#?}", r.problems);
    assert_eq!(r.host_packages, ["containerd", "runc"]);
}

#[test]
fn containerd_too_old_for_1_36() {
    let mut o = good();
    o.programs = [
        Some(Ok("v1.36.2".into())),
        Some(Ok("Kubernetes v1.36.2".into())),
        Some(Ok("Client Version: v1.36.2".into())),
    ];
    let r = check(&o);
    let p = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::ContainerdTooOld)
        .expect("containerd 1.6 with 1.36");
    assert_eq!(p.path, "debs/Packages:1");
    assert_eq!(p.expected.as_deref(), Some("containerd 2.x or newer"));
}

#[test]
fn deb_named_by_the_index_is_missing() {
    let mut o = good();
    o.files.remove("debs/runc_1.1.5+ds1-1+deb12u1_amd64.deb");
    let r = check(&o);
    assert!(
        r.problems.iter().any(|p| p.kind == ProblemKind::MissingFile
            && p.message.contains("is named on debs/Packages:5"))
    );
}

#[test]
fn report_text() {
    let text = ReportText(&check(&good())).to_string();
    assert!(
        text.starts_with("bundle /srv/bundle\n  kubernetes   v1.28.7\n"),
        "{text}"
    );
    assert!(
        text.contains("    registry.k8s.io/coredns/coredns:v1.10.1          missing (tolerated)\n"),
        "{text}"
    );
    assert!(text.contains("note[missing-image]: images/: no archive in images/ holds registry.k8s.io/coredns/coredns:v1.10.1, which kubeadm v1.28.7 needs\n"), "{text}");
    assert!(
        text.ends_with("usable: 0 errors, 1 note, 20 files verified\n"),
        "{text}"
    );
}

// Parsers.

#[test]
fn sums_lines() {
    let h = "a".repeat(64);
    let text = format!(
        "{h}  bin/kubeadm\n{H} *./images/x.tar\n\n{h} bin/one-space\nxyz  bin/kubelet\n{h}  /etc/passwd\n{h}  bin/../x\n{h}  bin/kubeadm\n\\{h}  bin/a\\nb\n",
        H = "B".repeat(64)
    );
    let (entries, errors) = parse_sums(&text);
    let paths: Vec<(&str, u32)> = entries.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(paths, [("bin/kubeadm", 1), ("images/x.tar", 2)]);
    assert_eq!(entries[1].sha256, "b".repeat(64), "lower case");
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "SHA256SUMS:4: no path after the checksum: expected `<64 hexadecimal digits>  <path>`, as sha256sum writes",
            "SHA256SUMS:5: `xyz  bin/kubelet` does not start with a SHA-256 checksum: expected `<64 hexadecimal digits>  <path>`, as sha256sum writes",
            "SHA256SUMS:6: `/etc/passwd` is absolute",
            "SHA256SUMS:7: `bin/../x` is not a plain relative path (empty, `.` or `..` parts)",
            "SHA256SUMS:8: `bin/kubeadm` is listed twice (first on line 1)",
            "SHA256SUMS:9: an escaped file name (a backslash or newline in it) is not supported",
        ]
    );
}

#[test]
fn images_txt_lines() {
    let (images, errors) = parse_images_txt(
        "# control plane\nregistry.k8s.io/pause:3.9\n\nflannel/flannel:v0.20.2 # pod network\nregistry.k8s.io/etcd\nhello world:1\n",
    );
    assert_eq!(
        images,
        [
            (2, "registry.k8s.io/pause:3.9".to_string()),
            (4, "flannel/flannel:v0.20.2".to_string())
        ]
    );
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "etc/images.txt:5: `registry.k8s.io/etcd` is not an image reference such as registry.k8s.io/pause:3.9",
            "etc/images.txt:6: `hello world:1` is not an image reference such as registry.k8s.io/pause:3.9",
        ]
    );
}

#[test]
fn etcd_tag_file() {
    assert_eq!(
        parse_etcd_tag("etcd.local.imageTag: 3.5.16-0\n"),
        Ok(Some((1, "3.5.16-0".to_string())))
    );
    assert_eq!(
        parse_etcd_tag("# kubeadm setting\n\netcd.local.imageTag: \"3.5.16-0\"\n"),
        Ok(Some((3, "3.5.16-0".to_string())))
    );
    assert_eq!(parse_etcd_tag("\n# nothing\n"), Ok(None));
    let errors = parse_etcd_tag("etcd.local.imageTag: 3.5.16-0\nimageTag: 3.5\netcd.local.imageTag: 3.5.9-0\n3.5.16-0\netcd.local.imageTag: a b\n")
        .unwrap_err();
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "etc/kubeadm-etcd-tag.txt:2: unknown key `imageTag`",
            "etc/kubeadm-etcd-tag.txt:3: `etcd.local.imageTag` is set twice (first on line 1)",
            "etc/kubeadm-etcd-tag.txt:4: `3.5.16-0` is not `etcd.local.imageTag: <tag>`",
            "etc/kubeadm-etcd-tag.txt:5: `a b` is not an image tag",
        ]
    );
}

#[test]
fn packages_txt() {
    let (names, errors) =
        parse_packages_txt("containerd runc\n# CNI\ncontainernetworking-plugins\nlibfoo=1.2 X\n");
    assert_eq!(names, ["containerd", "runc", "containernetworking-plugins"]);
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "etc/packages.txt:4: `libfoo=1.2` is not a Debian package name",
            "etc/packages.txt:4: `X` is not a Debian package name",
        ]
    );
}

#[test]
fn deb_packages_index() {
    let (packages, errors) = parse_deb_packages(
        "Package: containerd\nVersion: 1.6.20~ds1-1+b1\nDescription: daemon\n continued line: with colon\nFilename: ./containerd_1.6.20_amd64.deb\n\n\nPackage: broken\nVersion: 1\n",
    );
    assert_eq!(
        packages,
        [DebPackage {
            name: "containerd".into(),
            version: "1.6.20~ds1-1+b1".into(),
            file: "debs/containerd_1.6.20_amd64.deb".into(),
            line: 1,
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "debs/Packages:8: a package without Package, Version or Filename"
    );
}

#[test]
fn program_versions() {
    let v = |s: &str| parse_program_version(s).map(|v| v.to_string());
    assert_eq!(v("v1.28.7\n"), Ok("1.28.7".into()));
    assert_eq!(v("Kubernetes v1.28.7\n"), Ok("1.28.7".into()));
    assert_eq!(
        v("Client Version: v1.28.7\nKustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\n"),
        Ok("1.28.7".into())
    );
    assert_eq!(
        v(
            "WARNING: old\nClient Version: version.Info{Major:\"1\", Minor:\"26\", GitVersion:\"v1.26.3\", GitCommit:\"x\"}\n"
        ),
        Ok("1.26.3".into())
    );
    assert_eq!(v(""), Err("it printed nothing".into()));
    assert_eq!(
        v("v1.29.0-rc.1"),
        Err(
            "`v1.29.0-rc.1` is not a Kubernetes release (a pre-release or a distribution's build)"
                .into()
        )
    );
    assert_eq!(
        v("v1.29"),
        Err("`v1.29` is not a version such as v1.28.7".into())
    );
    assert_eq!(
        v("Kubernetes v2.0.0"),
        Err("`v2.0.0` is not a version such as v1.28.7".into())
    );
}

#[test]
fn images_of_manifests_and_references() {
    let text = "image: a/b:1\n  - image: 'c:2'\n    image: \"d/e:3\"  # pinned\n    image: {{ .Image }}\n    imagePullPolicy: Never\n";
    assert_eq!(
        manifest_images(text),
        [(1, "a/b:1".into()), (2, "c:2".into()), (3, "d/e:3".into())]
    );
    assert_eq!(
        normalize_image("flannel/flannel:v0.20.2"),
        "docker.io/flannel/flannel:v0.20.2"
    );
    assert_eq!(normalize_image("busybox:1"), "docker.io/library/busybox:1");
    assert_eq!(
        normalize_image("registry.k8s.io/pause:3.9"),
        "registry.k8s.io/pause:3.9"
    );
    assert_eq!(normalize_image("localhost:5000/x:1"), "localhost:5000/x:1");
    assert!(is_image_reference("registry.k8s.io/pause@sha256:0123"));
    assert!(!is_image_reference("registry.k8s.io:5000/pause"));
}

#[test]
fn the_version_of_a_bundle_is_read_from_its_image_list_without_running_it() {
    let text = "# images\nregistry.k8s.io/pause:3.9\nregistry.k8s.io/kube-apiserver:v1.28.7\n";
    assert_eq!(
        version_from_images_txt(text).map(|v| v.to_string()),
        Some("1.28.7".to_string())
    );
    assert_eq!(version_from_images_txt("registry.k8s.io/pause:3.9\n"), None);
}
