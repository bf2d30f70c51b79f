//! Test stand-ins for `kubeadm`, `kubelet` and `kubectl`.
//!
//! They simulate a cluster across the hosts of the kubeforge lab: every host acts on its own
//! file system (prefixed with `KUBEFORGE_STANDIN_ROOT` in tests) and all hosts share one state
//! directory, the simulated etcd and API objects. They are strict about flags and configuration
//! fields and fail where the real programs fail, so that kubeforge's end-to-end tests can run
//! without downloading Kubernetes. They prove nothing about compatibility with the real programs.

// The stand-ins are command-line programs: like the real ones, they print to stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod api;
pub mod bundle;
pub mod certs;
pub mod env;
pub mod etcdctl;
pub mod flags;
pub mod kubeadm;
pub mod kubectl;
pub mod kubelet;
pub mod net;
pub mod pki;
pub mod preflight;
pub mod state;
pub mod upgrade;
pub mod util;
pub mod yaml;

/// The Kubernetes version the stand-ins are built as. What they report is the version in their
/// marker ([`built_version`]), which `standin-bundle --stamp` rewrites in its copies, unless
/// `KUBEFORGE_STANDIN_VERSION` says another.
pub const VERSION: &str = "v1.34.2";

/// How the version marker starts; the version follows, padded with NULs to [`MARKER_LEN`].
const MARKER_MAGIC: &[u8] = b"\0kubeforge-standin-version:";
/// The marker's size in the binaries.
pub const MARKER_LEN: usize = 64;

const fn marker() -> [u8; MARKER_LEN] {
    let mut m = [0u8; MARKER_LEN];
    let v = VERSION.as_bytes();
    let mut i = 0;
    while i < MARKER_MAGIC.len() {
        m[i] = MARKER_MAGIC[i];
        i += 1;
    }
    let mut j = 0;
    while j < v.len() {
        m[i + j] = v[j];
        j += 1;
    }
    m
}

/// The version marker: one fixed-size array in every binary's read-only data.
static VERSION_MARKER: [u8; MARKER_LEN] = marker();

/// The marker's bytes as this binary holds them (read at run time, never folded into the code:
/// a stamped copy reports its stamp).
fn marker_bytes() -> &'static [u8; MARKER_LEN] {
    std::hint::black_box(&VERSION_MARKER)
}

/// The version in this binary's marker (`v1.34.2`, or what `standin-bundle --stamp` wrote).
pub fn built_version() -> env::Version {
    let m = marker_bytes();
    let field = &m[MARKER_MAGIC.len()..];
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end])
        .ok()
        .and_then(env::Version::parse)
        .unwrap_or_else(|| env::Version::parse(VERSION).expect("valid constant"))
}

/// Rewrites the version marker in a copy of a stand-in binary: exactly one marker (the magic,
/// a version, NUL padding) must be there.
pub fn stamp(binary: &mut [u8], version: env::Version) -> Result<(), String> {
    let magic = &marker_bytes()[..MARKER_MAGIC.len()];
    let field_len = MARKER_LEN - magic.len();
    let is_marker = |at: usize| {
        let Some(field) = binary.get(at + magic.len()..at + MARKER_LEN) else {
            return false;
        };
        let end = field.iter().position(|b| *b == 0).unwrap_or(field_len);
        end > 0
            && field[end..].iter().all(|b| *b == 0)
            && std::str::from_utf8(&field[..end])
                .ok()
                .and_then(env::Version::parse)
                .is_some()
    };
    let mut found = Vec::new();
    let last = binary.len().saturating_sub(MARKER_LEN);
    let (b0, b1) = (magic[0], magic[1]);
    let mut at = 0;
    while at <= last {
        if binary[at] == b0
            && binary[at + 1] == b1
            && &binary[at..at + magic.len()] == magic
            && is_marker(at)
        {
            found.push(at);
        }
        at += 1;
    }
    let [at] = found.as_slice() else {
        return Err(format!(
            "expected one version marker, found {}",
            found.len()
        ));
    };
    let text = version.to_string();
    if text.len() > field_len {
        return Err(format!("version {text} does not fit the marker"));
    }
    let field = &mut binary[at + magic.len()..at + MARKER_LEN];
    field.fill(0);
    field[..text.len()].copy_from_slice(text.as_bytes());
    Ok(())
}
/// The first line of every stand-in's `--help`.
pub const HELP_FIRST_LINE: &str = "kubeforge test stand-in";

/// An I/O error as Go prints it (`no such file or directory`).
pub fn util_io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}
