//! Digests as kubeforge writes them: lower-case hexadecimal, as `sha256sum` prints them.

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, in lower-case hexadecimal (as `sha256sum` prints it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes in lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
