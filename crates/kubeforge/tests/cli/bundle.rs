//! `kubeforge bundle check` on bundles built here: a good one, then one fault at a time. The
//! programs are small shell scripts that print what the real ones print; the image archives
//! are docker-archive tarballs written with the `tar` crate.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{kubeforge, run, tempdir::TempDir};

const K: &str = "registry.k8s.io";

/// How the test bundle deviates from a good one.
#[derive(Default, Clone, Copy)]
struct Faults {
    /// bin/kubectl is not there (after SHA256SUMS was written).
    no_kubectl: bool,
    /// bin/kubelet changes after SHA256SUMS was written.
    changed_kubelet: bool,
    /// bin/kubelet is another release.
    kubelet_version: Option<&'static str>,
    /// No etcd image at all.
    no_etcd_image: bool,
    /// bin/kubeadm is not a program this machine can run.
    foreign_kubeadm: bool,
    /// bin/kubeadm is replaced after SHA256SUMS was written, by a script that leaves a mark.
    replaced_kubeadm: bool,
    /// No SHA256SUMS.
    no_sums: bool,
    /// bin/kubectl prints without end (`yes`).
    endless_kubectl: bool,
    /// bin/kubelet leaves a process running in the background.
    lingering_kubelet: bool,
    /// Symlinks: one out of the bundle, one to its own directory (a loop).
    links: bool,
    /// An image archive with a member named `../escaped`.
    escaping_archive: bool,
    /// Each program notes that it ran, in `runs` beside the bundle.
    counted: bool,
}

/// What the replaced kubeadm writes, should it ever run.
const MARK: &str = "kubeadm-ran";

/// The background process the lingering kubelet starts (a distinctive sleep).
const LINGER: &str = "299.123";

fn write(dir: &Path, path: &str, contents: &[u8], mode: u32) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A docker-archive tarball that names `reference` (a manifest.json, a config, no layers).
fn image_archive(dir: &Path, path: &str, reference: &str) {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest =
        format!(r#"[{{"Config":"config.json","RepoTags":["{reference}"],"Layers":[]}}]"#);
    for (name, data) in [
        (
            "config.json",
            br#"{"architecture":"amd64","os":"linux"}"#.as_slice(),
        ),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }
    write(dir, path, &builder.into_inner().unwrap(), 0o644);
}

/// A file's SHA-256, as SHA256SUMS lists it.
fn sha256_of(path: &Path) -> String {
    let hash = Sha256::digest(std::fs::read(path).unwrap());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn script(text: &str) -> Vec<u8> {
    format!("#!/bin/sh\n{text}\n").into_bytes()
}

/// Writes a bundle of Kubernetes v1.28.7 shaped like the real one (no CoreDNS image, etcd
/// 3.5.16-0 named in etc/kubeadm-etcd-tag.txt, flannel, containerd in debs/), with `faults`.
fn build(dir: &Path, faults: Faults) {
    let script = |text: &str| {
        if faults.counted {
            script(&format!("echo \"${{0##*/}} $*\" >> ../runs\n{text}"))
        } else {
            script(text)
        }
    };
    // As kubeadm v1.28.7 prints it.
    let kubeadm_images = [
        format!("{K}/kube-apiserver:v1.28.7"),
        format!("{K}/kube-controller-manager:v1.28.7"),
        format!("{K}/kube-scheduler:v1.28.7"),
        format!("{K}/kube-proxy:v1.28.7"),
        format!("{K}/pause:3.9"),
        format!("{K}/etcd:3.5.10-0"),
        format!("{K}/coredns/coredns:v1.10.1"),
    ];
    if faults.foreign_kubeadm {
        // An ELF header of another machine: the kernel refuses to run it.
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0".to_vec();
        elf.resize(256, 0);
        write(dir, "bin/kubeadm", &elf, 0o755);
    } else {
        let list = kubeadm_images.join("\\n");
        write(
            dir,
            "bin/kubeadm",
            &script(&format!(
                "case \"$1 $2 $3\" in\n  'version -o short') echo v1.28.7 ;;\n  'config images list') printf '{list}\\n' ;;\n  *) echo \"unexpected: $*\" >&2; exit 1 ;;\nesac"
            )),
            0o755,
        );
    }
    let kubelet = faults.kubelet_version.unwrap_or("v1.28.7");
    let linger = if faults.lingering_kubelet {
        format!("sleep {LINGER} >/dev/null 2>&1 &\n")
    } else {
        String::new()
    };
    write(
        dir,
        "bin/kubelet",
        &script(&format!("{linger}echo 'Kubernetes {kubelet}'")),
        0o755,
    );
    write(
        dir,
        "bin/kubectl",
        &script(if faults.endless_kubectl {
            "exec yes 'Client Version: v1.28.7'"
        } else {
            "echo 'Client Version: v1.28.7'\necho 'Kustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3'"
        }),
        0o755,
    );
    write(
        dir,
        "bin/crictl",
        &script("echo 'crictl version v1.28.0'"),
        0o755,
    );
    let mut images = vec![
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
        (
            "images/flannel.tar",
            "docker.io/flannel/flannel:v0.20.2".to_string(),
        ),
    ];
    if !faults.no_etcd_image {
        images.push(("images/etcd.tar", format!("{K}/etcd:3.5.16-0")));
    }
    for (path, reference) in &images {
        image_archive(dir, path, reference);
    }
    if faults.escaping_archive {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        // The tar crate refuses to write `..`: the name goes into the header as bytes.
        header.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"../escaped");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        write(
            dir,
            "images/pause.tar",
            &builder.into_inner().unwrap(),
            0o644,
        );
    }
    let list: String = images.iter().map(|(_, r)| format!("{r}\n")).collect();
    write(dir, "etc/images.txt", list.as_bytes(), 0o644);
    if !faults.no_etcd_image {
        write(
            dir,
            "etc/kubeadm-etcd-tag.txt",
            b"etcd.local.imageTag: 3.5.16-0\n",
            0o644,
        );
    }
    write(
        dir,
        "etc/kubelet.service",
        b"[Service]\nExecStart=/usr/local/bin/kubelet\n",
        0o644,
    );
    write(
        dir,
        "etc/10-kubeadm.conf",
        b"[Service]\nExecStart=\n",
        0o644,
    );
    write(
        dir,
        "debs/containerd_1.6.20~ds1-1+b1_amd64.deb",
        b"!<arch>\n",
        0o644,
    );
    write(
        dir,
        "debs/Packages",
        b"Package: containerd\nVersion: 1.6.20~ds1-1+b1\nArchitecture: amd64\nFilename: ./containerd_1.6.20~ds1-1+b1_amd64.deb\n",
        0o644,
    );
    write(
        dir,
        "manifests/kube-flannel.yml",
        b"spec:\n  containers:\n  - name: kube-flannel\n    image: docker.io/flannel/flannel:v0.20.2  # bundle: image\n",
        0o644,
    );
    write(dir, "VERSIONS", b"a test bundle\n", 0o644);
    // SHA256SUMS over every file, as `find ... | sort | xargs sha256sum` writes it.
    let mut files = Vec::new();
    for sub in ["bin", "debs", "etc", "images", "manifests"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            files.push(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    let sums: String = files
        .iter()
        .map(|f| {
            let hex = sha256_of(&dir.join(f));
            format!("{hex}  {f}\n")
        })
        .collect();
    write(dir, "SHA256SUMS", sums.as_bytes(), 0o644);
    if faults.no_kubectl {
        std::fs::remove_file(dir.join("bin/kubectl")).unwrap();
    }
    if faults.replaced_kubeadm {
        write(
            dir,
            "bin/kubeadm",
            &script(&format!("touch ../{MARK}\necho v1.31.4")),
            0o755,
        );
    }
    if faults.no_sums {
        std::fs::remove_file(dir.join("SHA256SUMS")).unwrap();
    }
    if faults.links {
        std::os::unix::fs::symlink("/etc/passwd", dir.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(".", dir.join("manifests/again")).unwrap();
    }
    if faults.changed_kubelet {
        write(
            dir,
            "bin/kubelet",
            &script("echo 'Kubernetes v1.28.7' # patched"),
            0o755,
        );
    }
}

/// Builds a bundle with `faults`, runs `kubeforge bundle check` on it, and returns the exit
/// code and stdout with the bundle's path replaced by `BUNDLE`.
fn check(faults: Faults, extra: &[&str]) -> (i32, String, String) {
    let dir = TempDir::new();
    let bundle = dir.path().join("offline-bundle");
    build(&bundle, faults);
    let mut args = vec!["bundle", "check", "offline-bundle"];
    args.extend(extra);
    let r = run(kubeforge().args(&args), dir.path());
    (r.code, r.stdout, r.stderr)
}

#[test]
fn a_good_bundle_is_usable() {
    let (code, stdout, stderr) = check(Faults::default(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stderr, "verifying 18 checksums in offline-bundle\n");
    insta::assert_snapshot!("bundle_check_good", stdout);
}

#[test]
fn a_good_bundle_as_json() {
    let (code, stdout, _) = check(Faults::default(), &["-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["usable"], true);
    assert_eq!(v["kubernetes_version"], "1.28.7");
    assert_eq!(v["files_verified"], 18);
    assert_eq!(v["etcd_image_tag"], "3.5.16-0");
    assert_eq!(v["images"].as_array().unwrap().len(), 7);
    let problems: Vec<(&str, bool)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap(),
                p["tolerated"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [("past-end-of-life", true), ("missing-image", true)]
    );
    assert_eq!(
        v["needed_from"],
        "bin/kubeadm config images list --kubernetes-version v1.28.7, etcd tag from etc/kubeadm-etcd-tag.txt"
    );
}

#[test]
fn a_missing_file() {
    let (code, stdout, _) = check(
        Faults {
            no_kubectl: true,
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    insta::assert_snapshot!("bundle_check_missing_file", stdout);
}

#[test]
fn a_wrong_checksum() {
    let (code, stdout, _) = check(
        Faults {
            changed_kubelet: true,
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    insta::assert_snapshot!("bundle_check_wrong_checksum", stdout);
}

#[test]
fn a_version_mismatch() {
    let (code, stdout, _) = check(
        Faults {
            kubelet_version: Some("v1.28.6"),
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    insta::assert_snapshot!("bundle_check_version_mismatch", stdout);
}

#[test]
fn a_missing_image() {
    let (code, stdout, _) = check(
        Faults {
            no_etcd_image: true,
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    insta::assert_snapshot!("bundle_check_missing_image", stdout);
}

#[test]
fn a_kubeadm_that_cannot_run_here() {
    let (code, stdout, _) = check(
        Faults {
            foreign_kubeadm: true,
            ..Faults::default()
        },
        &["-o", "json"],
    );
    assert_eq!(code, 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "program-failed");
    assert_eq!(p["path"], "bin/kubeadm");
    assert_eq!(p["message"], "bin/kubeadm cannot run on this machine");
    let found = p["found"].as_str().unwrap();
    assert!(
        found.contains("Exec format error") && found.contains("built for another architecture"),
        "{found}"
    );
    // kubelet and kubectl still tell the version.
    assert_eq!(v["kubernetes_version"], "1.28.7");
}

#[test]
fn not_a_bundle_directory_is_a_usage_error() {
    let dir = TempDir::new();
    let r = run(kubeforge().args(["bundle", "check", "nope"]), dir.path());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: nope: cannot read the bundle directory\n  caused by: "),
        "{}",
        r.stderr
    );
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let r = run(kubeforge().args(["bundle", "check", "file"]), dir.path());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("file is not a directory"), "{}", r.stderr);
}

/// `dir/cluster.yaml`: k8scp01 and k8s01 (and the VIP) at `net`.11, .21 (and .10), from a
/// fake DNS server that runs until the tests end, the packages from `dir/offline-bundle`,
/// and `extra` settings.
fn bundle_inventory(dir: &Path, net: &str, extra: &str) {
    let (cp, worker, vip) = (
        format!("{net}.11"),
        format!("{net}.21"),
        format!("{net}.10"),
    );
    let dns = crate::fake_dns::start(&[
        ("k8scp01.local.net", &[cp.as_str()]),
        ("k8s01.local.net", &[worker.as_str()]),
        ("k8scp.local.net", &[vip.as_str()]),
    ]);
    std::fs::write(
        dir.join("cluster.yaml"),
        format!(
            "hosts:\n  - k8scp01\n  - k8s01\ndns:\n  domain: local.net\n  server: {dns}\n{extra}packages:\n  source: bundle\n  bundle: offline-bundle\n"
        ),
    )
    .unwrap();
}

#[test]
fn apply_names_why_the_bundle_does_not_fit_the_inventory() {
    // The bundle holds 1.28.7; the inventory asks for 1.30. apply stops before connecting to
    // any host, and says why itself: `bundle check` alone cannot know the inventory's version.
    let dir = TempDir::new();
    build(&dir.path().join("offline-bundle"), Faults::default());
    bundle_inventory(dir.path(), "10.0.0", "kubernetes_version: \"1.30\"\n");
    let r = run(
        kubeforge().args(["apply", "-i", "cluster.yaml"]),
        dir.path(),
    );
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("error: the bundle offline-bundle is not usable:\n  "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("found: ") && r.stderr.contains("1.28.7"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("expected: ") && r.stderr.contains("1.30"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("connecting"), "{}", r.stderr);
}

/// Nothing of a bundle runs before every checksum holds: a kubeadm replaced after SHA256SUMS
/// was written, or a bundle without SHA256SUMS, is reported and never run.
#[test]
fn nothing_of_a_bundle_runs_unverified() {
    for faults in [
        Faults {
            replaced_kubeadm: true,
            ..Faults::default()
        },
        Faults {
            replaced_kubeadm: true,
            no_sums: true,
            ..Faults::default()
        },
    ] {
        let dir = TempDir::new();
        build(&dir.path().join("offline-bundle"), faults);
        // The bundle's programs run in the bundle's directory: the mark would land beside it.
        let r = run(
            kubeforge().args(["bundle", "check", "offline-bundle"]),
            dir.path(),
        );
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(!dir.path().join(MARK).exists(), "the replaced kubeadm ran");
        assert!(
            r.stdout
                .contains("error[program-failed]: bin/: the bundle's programs were not run: "),
            "{}",
            r.stdout
        );
    }
}

/// A program of the bundle gets an output cap and its own process group: one that prints
/// without end is stopped and named, one that leaves a process behind has it killed.
#[test]
fn a_bundles_programs_are_kept_in_bounds() {
    let (code, stdout, _) = check(
        Faults {
            endless_kubectl: true,
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("printed more than 1 MiB"), "{stdout}");
    let (code, stdout, _) = check(
        Faults {
            lingering_kubelet: true,
            ..Faults::default()
        },
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
    let lingering: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&format!("sleep {LINGER}")))
        .collect();
    assert!(lingering.is_empty(), "left running: {lingering:?}");
}

/// The walk follows no symlink into a directory (a loop ends), and a symlink out of the
/// bundle or an archive member that would land outside it makes the bundle unusable.
#[test]
fn links_and_members_that_leave_the_bundle_are_refused() {
    let (code, stdout, _) = check(
        Faults {
            links: true,
            escaping_archive: true,
            ..Faults::default()
        },
        &["-o", "json"],
    );
    assert_eq!(code, 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let unsafe_paths: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "unsafe-path")
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "etc/passwd: a symlink out of the bundle, to /etc/passwd",
        "manifests/again: a symlink to a directory (not followed)",
        "images/pause.tar: an archive member with an absolute path or `..`: ../escaped",
    ] {
        assert!(
            unsafe_paths.iter().any(|m| m == expected),
            "{expected:?} not in {unsafe_paths:?}"
        );
    }
}

/// A command that reads the bundle to apply it runs the bundle's programs once: later runs
/// take what they printed from the record in the cache, for as long as each program's
/// checksum is the same. A program replaced (with its checksum) is run again.
#[test]
fn the_bundles_programs_run_once_while_they_are_the_same() {
    let dir = TempDir::new();
    let bundle = dir.path().join("offline-bundle");
    build(
        &bundle,
        Faults {
            counted: true,
            ..Faults::default()
        },
    );
    bundle_inventory(dir.path(), "127.0.0", "");
    let plan = || {
        let r = run(
            kubeforge()
                .env("XDG_CACHE_HOME", dir.path().join("cache"))
                .args(["plan", "-i", "cluster.yaml"]),
            dir.path(),
        );
        let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap_or_default();
        (r, runs.lines().count())
    };
    // The bundle is read, then no host is reached.
    let (r, first) = plan();
    assert!(
        r.stderr.contains("cannot connect"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(
        first, 4,
        "kubeadm twice, kubelet, kubectl: {}{}",
        r.stdout, r.stderr
    );
    let (r, second) = plan();
    assert!(
        r.stderr.contains("cannot connect"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(second, first, "a program ran again though it is the same");

    // Another kubelet, and SHA256SUMS saying so: it runs again, and what it prints counts.
    write(
        &bundle,
        "bin/kubelet",
        &script("echo \"kubelet $*\" >> ../runs\necho 'Kubernetes v1.28.6'"),
        0o755,
    );
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    let hex = sha256_of(&bundle.join("bin/kubelet"));
    let sums: String = sums
        .lines()
        .map(|l| {
            if l.ends_with("  bin/kubelet") {
                format!("{hex}  bin/kubelet\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    write(&bundle, "SHA256SUMS", sums.as_bytes(), 0o644);
    let (r, third) = plan();
    assert_eq!(third, first + 1, "only the new kubelet runs");
    assert!(r.stderr.contains("v1.28.6"), "{}", r.stderr);
    assert!(!r.stderr.contains("cannot connect"), "{}", r.stderr);
}
