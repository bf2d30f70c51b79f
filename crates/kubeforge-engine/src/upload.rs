//! Files of this machine sent to hosts (a bundle's binaries, images and packages): compressed
//! once into a cache keyed by their sha256 (`~/.cache/kubeforge/uploads`), then streamed to
//! every host that needs them, however many at once.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::Compression;
use flate2::write::GzEncoder;

pub struct Compressor {
    dir: PathBuf,
    /// One lock per file being compressed, so that hosts asking at once wait for one copy.
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Compressor {
    /// A cache in `~/.cache/kubeforge/uploads` (or `$XDG_CACHE_HOME/kubeforge/uploads`).
    pub fn new() -> Self {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        Self::in_dir(base.join("kubeforge/uploads"))
    }

    pub fn in_dir(dir: PathBuf) -> Self {
        Compressor {
            dir,
            busy: Mutex::new(HashMap::new()),
        }
    }

    /// The gzip-compressed copy of `path` (whose sha256 is `sha256`), made if missing.
    pub async fn compressed(&self, path: &Path, sha256: &str) -> Result<PathBuf, String> {
        let target = self.dir.join(format!("{sha256}.gz"));
        let lock = {
            let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            busy.entry(sha256.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if target.exists() {
            return Ok(target);
        }
        let (source, dir, out) = (path.to_path_buf(), self.dir.clone(), target.clone());
        tokio::task::spawn_blocking(move || compress(&source, &dir, &out))
            .await
            .map_err(|e| format!("compressing {}: {e}", path.display()))??;
        Ok(target)
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

fn compress(source: &Path, dir: &Path, target: &Path) -> Result<(), String> {
    let err = |what: &str, e: std::io::Error| format!("{what} {}: {e}", source.display());
    std::fs::create_dir_all(dir).map_err(|e| err("cannot make the cache for", e))?;
    let input = std::fs::File::open(source).map_err(|e| err("cannot read", e))?;
    let tmp = target.with_extension(format!("gz.{}", std::process::id()));
    let output = std::fs::File::create(&tmp).map_err(|e| err("cannot cache", e))?;
    // Level 1: most of the gain for a fraction of the time (binaries and image layers).
    let mut encoder = GzEncoder::new(std::io::BufWriter::new(output), Compression::fast());
    std::io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut encoder)
        .and_then(|_| encoder.finish())
        .and_then(|mut w| w.flush())
        .map_err(|e| err("cannot compress", e))?;
    std::fs::rename(&tmp, target).map_err(|e| err("cannot cache", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_compressed_once_and_decompress_to_themselves() {
        let dir = std::env::temp_dir().join(format!("kubeforge-upload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("file");
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        std::fs::write(&source, &data).unwrap();
        let c = Compressor::in_dir(dir.join("cache"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let gz = rt.block_on(c.compressed(&source, "abc")).unwrap();
        let first = std::fs::metadata(&gz).unwrap().modified().unwrap();
        assert!(std::fs::metadata(&gz).unwrap().len() < data.len() as u64 / 4);
        let again = rt.block_on(c.compressed(&source, "abc")).unwrap();
        assert_eq!(
            std::fs::metadata(&again).unwrap().modified().unwrap(),
            first
        );
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .output()
            .unwrap();
        assert_eq!(out.stdout, data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
