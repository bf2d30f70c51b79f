//! The `etcdctl` of the stand-in etcd image: `snapshot restore` only, which is what kubeforge
//! runs outside a pod (everything else runs in the etcd pod, through the kubectl stand-in).
//!
//! As etcd's: the snapshot must pass its SHA-256 trailer, `--initial-cluster` must give
//! `--name` the address `--initial-advertise-peer-urls` says, and the data directory must not
//! exist. The restored data directory holds the snapshot's cluster with one member, this one
//! (`member/snap/db`); `kubeadm init` starts from it when it finds it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::env::Env;
use crate::flags::{self, v};
use crate::state::{self, EtcdMember};
use crate::util;

/// Where a data directory keeps the restored cluster.
pub const DB: &str = "member/snap/db";

pub fn main(args: Vec<String>) -> i32 {
    if args.iter().skip(1).any(|a| a == "--help" || a == "-h") {
        println!(
            "{}: the etcdctl of the stand-in etcd image (not etcd)\n\nUsage:\n  etcdctl snapshot restore FILE --name NAME --initial-cluster NAME=URL --initial-advertise-peer-urls URL --data-dir DIR",
            crate::HELP_FIRST_LINE
        );
        return 0;
    }
    match run(&Env::from_env(), &args[1.min(args.len())..]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn run(env: &Env, args: &[String]) -> Result<(), String> {
    let p = flags::parse(
        args,
        &[
            v("name"),
            v("initial-cluster"),
            v("initial-advertise-peer-urls"),
            v("data-dir"),
            v("initial-cluster-token"),
        ],
    )?;
    let a: Vec<&str> = p.args.iter().map(String::as_str).collect();
    let ["snapshot", "restore", file] = a.as_slice() else {
        return Err(format!(
            "the stand-in etcdctl only restores snapshots (`snapshot restore FILE`), not {a:?}"
        ));
    };
    eprintln!("Deprecated: Use `etcdutl snapshot restore` instead.");
    let name = p.get("name").unwrap_or("default");
    let peer = p
        .get("initial-advertise-peer-urls")
        .unwrap_or("http://localhost:2380");
    let initial = p
        .get("initial-cluster")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}={peer}"));
    let listed = initial
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .any(|(n, u)| n == name && u == peer);
    if !listed {
        return Err(format!(
            "--initial-cluster has no {name}={peer} (it is {initial:?}): couldn't find local name {name:?} in the initial cluster configuration"
        ));
    }
    let data_dir = p
        .get("data-dir")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}.etcd"));
    let dir = env.path(&data_dir);
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "data-dir {data_dir:?} not empty or could not be read"
        ));
    }
    let bytes = std::fs::read(env.path(file)).map_err(|e| format!("open {file}: {e}"))?;
    let mut cluster = read_snapshot(&bytes)?;
    let host = peer
        .trim_start_matches("https://")
        .rsplit_once(':')
        .map_or(peer, |(h, _)| h);
    cluster.etcd_members = vec![EtcdMember {
        id: u64::from_be_bytes(util::random_bytes(8).try_into().unwrap_or([1; 8])) >> 1,
        name: name.to_string(),
        peer_urls: vec![peer.to_string()],
        client_urls: vec![format!("https://{host}:2379")],
    }];
    let data = serde_json::to_vec_pretty(&cluster).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("member/wal")).map_err(|e| e.to_string())?;
    util::write_atomic(&dir.join(DB), &data, 0o600).map_err(|e| e.to_string())?;
    eprintln!(
        "{{\"level\":\"info\",\"msg\":\"restored snapshot\",\"path\":{file:?},\"wal-dir\":\"{data_dir}/member/wal\",\"data-dir\":{data_dir:?},\"snap-dir\":\"{data_dir}/member/snap\"}}"
    );
    Ok(())
}

/// The cluster a snapshot of the stand-ins holds (see `kubectl`'s `snapshot save`).
fn read_snapshot(bytes: &[u8]) -> Result<state::Cluster, String> {
    let n = bytes.len();
    if n < 32 || n % 512 != 32 {
        return Err("snapshot file integrity check failed. 0 bytes of the trailer found".into());
    }
    let (body, trailer) = bytes.split_at(n - 32);
    if Sha256::digest(body).as_slice() != trailer {
        return Err("expected sha256 does not match snapshot file's hash".into());
    }
    let end = body.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    serde_json::from_slice(&body[..end]).map_err(|e| format!("not an etcd snapshot: {e}"))
}

/// The cluster a restored data directory holds, if it holds one.
pub fn restored(env: &Env, data_dir: &str) -> Option<Result<state::Cluster, String>> {
    let path = env.path(Path::new(data_dir).join(DB));
    let bytes = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&bytes).map_err(|e| format!("{data_dir}/{DB}: {e}")))
}
