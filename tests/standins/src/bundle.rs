//! `standin-bundle OUT_DIR`: an offline bundle in the layout of the real bundle (see
//! `shared/truth/README.md` of the steering repository), holding the stand-ins instead of the
//! real binaries and tiny images instead of the real ones.

use crate::api;
use crate::env::Version;
use crate::flags::{self, b, v};
use crate::util;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const FLANNEL_IMAGE: &str = "docker.io/flannel/flannel:v0.20.2";
const MTIME: u64 = 1_700_000_000;

pub const KUBELET_SERVICE: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

pub const KUBEADM_DROPIN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

/// The Debian packages the bundle expects the hosts' own apt sources to provide.
pub const PACKAGES: &str = "containerd runc containernetworking-plugins";

/// The images of the bundle: `kubeadm config images list` of `version`, and flannel.
pub fn images(version: Version) -> Vec<String> {
    let env = crate::env::Env::from_env();
    let c = api::Cluster::from(
        &env,
        Some(&serde_json::json!({"kubernetesVersion": version.to_string()})),
        &mut vec![],
    );
    let mut all = c.images();
    all.push(FLANNEL_IMAGE.into());
    all
}

/// The file name of an image's tarball (`registry.k8s.io/coredns/coredns:v1.12.1` → `coredns`).
pub fn short_name(image: &str) -> String {
    let repo = image.rsplit_once(':').map(|(r, _)| r).unwrap_or(image);
    repo.rsplit('/').next().unwrap_or(repo).to_string()
}

fn tar_bytes(entries: &[(String, Option<Vec<u8>>)]) -> std::io::Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                t.append_data(&mut h, name, std::io::empty())?;
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if name.starts_with("usr/local/bin/") {
                    0o755
                } else {
                    0o644
                });
                h.set_size(d.len() as u64);
                h.set_cksum();
                t.append_data(&mut h, name, d.as_slice())?;
            }
        }
    }
    t.into_inner()
}

/// A docker-archive tarball (manifest.json, config, one layer) holding one small file, the
/// format `ctr images import` reads.
/// `programs`: files of the image's `/usr/local/bin` (the etcd image's etcdctl).
pub fn image_tarball(image: &str, programs: &[(&str, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let short = short_name(image);
    let mut entries = vec![
        ("standin/".into(), None),
        (
            format!("standin/{short}"),
            Some(format!("kubeforge test stand-in image {image}\n").into_bytes()),
        ),
    ];
    if !programs.is_empty() {
        entries.extend(["usr/", "usr/local/", "usr/local/bin/"].map(|d| (d.to_string(), None)));
        entries.extend(
            programs
                .iter()
                .map(|(name, data)| (format!("usr/local/bin/{name}"), Some(data.clone()))),
        );
    }
    let layer = tar_bytes(&entries)?;
    let diff = util::hex(&Sha256::digest(&layer));
    let cfg = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": [format!("/standin/{short}")],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kubeforge standin-bundle"}],
    });
    let cfgb = serde_json::to_vec(&cfg).unwrap_or_default();
    let cfgd = util::hex(&Sha256::digest(&cfgb));
    let manifest = serde_json::json!([{
        "Config": format!("{cfgd}.json"),
        "RepoTags": [image],
        "Layers": [format!("{diff}/layer.tar")],
    }]);
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let repositories = serde_json::json!({repo: {tag: diff}});
    tar_bytes(&[
        (format!("{diff}/"), None),
        (format!("{cfgd}.json"), Some(cfgb)),
        (format!("{diff}/layer.tar"), Some(layer)),
        (
            "manifest.json".into(),
            Some(serde_json::to_vec(&manifest).unwrap_or_default()),
        ),
        (
            "repositories".into(),
            Some(serde_json::to_vec(&repositories).unwrap_or_default()),
        ),
    ])
}

/// A small flannel-like manifest: the pieces kubeforge edits and the DaemonSet the stand-in
/// kubelet takes as "pod network applied".
pub fn flannel_manifest() -> String {
    format!(
        r#"# A small flannel-like manifest of the kubeforge test bundle (stand-ins only; the real
# bundle has upstream's v0.20.2 manifest). Pod network 10.244.0.0/16 (kubeadm networking.podSubnet).
---
kind: Namespace
apiVersion: v1
metadata:
  name: kube-flannel
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
  labels:
    tier: node
    app: flannel
data:
  cni-conf.json: |
    {{
      "name": "cbr0",
      "cniVersion": "0.3.1",
      "plugins": [
        {{
          "type": "flannel",
          "delegate": {{
            "hairpinMode": true,
            "isDefaultGateway": true
          }}
        }},
        {{
          "type": "portmap",
          "capabilities": {{
            "portMappings": true
          }}
        }}
      ]
    }}
  net-conf.json: |
    {{
      "Network": "10.244.0.0/16",
      "Backend": {{
        "Type": "vxlan"
      }}
    }}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels:
    tier: node
    app: flannel
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        tier: node
        app: flannel
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      tolerations:
      - operator: Exists
        effect: NoSchedule
      serviceAccountName: flannel
      containers:
      - name: kube-flannel
        image: {FLANNEL_IMAGE}
        imagePullPolicy: Never
        command:
        - /opt/bin/flanneld
        args:
        - --ip-masq
        - --kube-subnet-mgr
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
"#
    )
}

fn write(out: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), String> {
    util::write_atomic(&out.join(rel), data, mode).map_err(|e| format!("{rel}: {e}"))
}

/// Writes the bundle; `without` leaves images out (by reference or short name); `stamp` makes
/// the copied binaries and the images those of another version.
pub fn write_bundle(
    out: &Path,
    bin_dir: &Path,
    without: &[String],
    stamp: Option<Version>,
) -> Result<(), String> {
    let version = stamp.unwrap_or_else(crate::built_version);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for b in ["kubeadm", "kubelet", "kubectl"] {
        let src = bin_dir.join(b);
        let mut data = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        if let Some(v) = stamp {
            crate::stamp(&mut data, v).map_err(|e| format!("{}: {e}", src.display()))?;
        }
        write(out, &format!("bin/{b}"), &data, 0o755)?;
    }
    let mut listed = Vec::new();
    for img in images(version) {
        let short = short_name(&img);
        if without.iter().any(|w| w == &img || w == &short) {
            continue;
        }
        let programs = if short == "etcd" {
            let src = bin_dir.join("etcdctl");
            vec![(
                "etcdctl",
                std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?,
            )]
        } else {
            Vec::new()
        };
        let data = image_tarball(&img, &programs).map_err(|e| e.to_string())?;
        write(out, &format!("images/{short}.tar"), &data, 0o644)?;
        listed.push((short, img));
    }
    listed.sort();
    let images_txt: String = listed.iter().map(|(_, i)| format!("{i}\n")).collect();
    write(out, "etc/images.txt", images_txt.as_bytes(), 0o644)?;
    write(
        out,
        "etc/kubelet.service",
        KUBELET_SERVICE.as_bytes(),
        0o644,
    )?;
    write(out, "etc/10-kubeadm.conf", KUBEADM_DROPIN.as_bytes(), 0o644)?;
    write(
        out,
        "etc/kubeadm-etcd-tag.txt",
        format!("etcd.local.imageTag: {}\n", api::ETCD_TAG).as_bytes(),
        0o644,
    )?;
    write(
        out,
        "etc/packages.txt",
        format!("{PACKAGES}\n").as_bytes(),
        0o644,
    )?;
    write(
        out,
        "manifests/kube-flannel.yml",
        flannel_manifest().as_bytes(),
        0o644,
    )?;
    let mut versions = format!(
        "kubeforge test stand-in bundle (not Kubernetes)\nkubernetes {version} (stand-ins)\n"
    );
    for b in ["kubeadm", "kubectl", "kubelet"] {
        versions.push_str(&format!("bin/{b}: {version} (stand-in)\n"));
    }
    versions.push_str("images:\n");
    versions.push_str(
        &listed
            .iter()
            .map(|(_, i)| format!("  {i}\n"))
            .collect::<String>(),
    );
    versions.push_str("manifests/kube-flannel.yml: flannel-like (vxlan, 10.244.0.0/16)\n");
    versions.push_str(&format!(
        "packages (from the hosts' apt sources): {PACKAGES}\n"
    ));
    write(out, "VERSIONS", versions.as_bytes(), 0o644)?;
    // SHA256SUMS over every file of the content directories, sorted, in sha256sum's format.
    let mut files = Vec::new();
    for d in ["bin", "images", "etc", "manifests"] {
        collect(&out.join(d), d, &mut files);
    }
    files.sort();
    let mut sums = String::new();
    for rel in files {
        let data = std::fs::read(out.join(&rel)).map_err(|e| format!("{rel}: {e}"))?;
        sums.push_str(&format!("{}  {rel}\n", util::hex(&Sha256::digest(&data))));
    }
    write(out, "SHA256SUMS", sums.as_bytes(), 0o644)
}

fn collect(dir: &Path, rel: &str, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let r = format!("{rel}/{name}");
            if e.path().is_dir() {
                collect(&e.path(), &r, out);
            } else {
                out.push(r);
            }
        }
    }
}

/// `standin-bundle OUT_DIR [--without IMAGE]... [--bin-dir DIR] [--stamp VERSION]`.
pub fn main(argv: Vec<String>) -> i32 {
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    let flags = [v("without"), v("bin-dir"), v("stamp"), b("help").short('h')];
    let p = match flags::parse(&args, &flags) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {e}");
            return 2;
        }
    };
    if p.flag("help") {
        println!(
            "{}: standin-bundle writes an offline bundle of the kubeadm, kubelet and kubectl stand-ins\n\nUsage:\n  standin-bundle OUT_DIR [--without IMAGE]... [--bin-dir DIR] [--stamp VERSION]",
            crate::HELP_FIRST_LINE
        );
        return 0;
    }
    let [out] = p.args.as_slice() else {
        eprintln!("Error: standin-bundle takes one argument, the output directory");
        return 2;
    };
    let bin_dir = match p.get("bin-dir") {
        Some(d) => PathBuf::from(d),
        None => match std::env::current_exe() {
            Ok(e) => e.parent().map(Path::to_path_buf).unwrap_or_default(),
            Err(e) => {
                eprintln!("Error: {e}");
                return 1;
            }
        },
    };
    let without = p.values.get("without").cloned().unwrap_or_default();
    let full = |s: &str| s.trim_start_matches('v').split('.').count() == 3;
    let stamp = match p
        .get("stamp")
        .map(|s| (s, Version::parse(s).filter(|_| full(s))))
    {
        None => None,
        Some((_, Some(v))) => Some(v),
        Some((s, None)) => {
            eprintln!("Error: --stamp {s:?} is not a version vMAJOR.MINOR.PATCH");
            return 2;
        }
    };
    match write_bundle(Path::new(out), &bin_dir, &without, stamp) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}
