//! Kubernetes versions: what a user may ask for and what follows from it.

use std::fmt;

use serde::Serialize;

/// The oldest and newest Kubernetes minors this release of kubeforge knows how to install.
pub const OLDEST_MINOR: u32 = 29;
pub const NEWEST_MINOR: u32 = 34;
/// The default: a current stable minor, whose newest patch is installed and then held.
pub const DEFAULT_MINOR: u32 = 34;
pub const DEFAULT_MINOR_STR: &str = "1.34";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KubeVersion {
    pub minor: u32,
    /// `None`: the newest patch of the minor.
    pub patch: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    Malformed,
    Unsupported(u32),
}

impl KubeVersion {
    pub const DEFAULT: KubeVersion = KubeVersion {
        minor: DEFAULT_MINOR,
        patch: None,
    };

    /// Reads `1.34`, `1.34.2`, `v1.34.2`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = text.split('.');
        let number = |p: Option<&str>| -> Result<Option<u32>, VersionError> {
            match p {
                None => Ok(None),
                Some(p)
                    if !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    p.parse().map(Some).map_err(|_| VersionError::Malformed)
                }
                Some(_) => Err(VersionError::Malformed),
            }
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = number(parts.next())?;
        if parts.next().is_some() || major != Some(1) {
            return Err(VersionError::Malformed);
        }
        let minor = minor.ok_or(VersionError::Malformed)?;
        if !(OLDEST_MINOR..=NEWEST_MINOR).contains(&minor) {
            return Err(VersionError::Unsupported(minor));
        }
        Ok(Self { minor, patch })
    }

    /// The kubeadm configuration API: `v1beta4` from 1.31 (extraArgs as name/value lists,
    /// a Timeouts struct), `v1beta3` before.
    pub fn kubeadm_api(self) -> &'static str {
        if self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }

    /// The pkgs.k8s.io repository path: one repository per minor.
    pub fn apt_repository(self) -> String {
        format!("https://pkgs.k8s.io/core:/stable:/v1.{}/deb/", self.minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "1.{}.{patch}", self.minor),
            None => write!(f, "1.{}", self.minor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minors_and_patches() {
        assert_eq!(
            KubeVersion::parse("1.31"),
            Ok(KubeVersion {
                minor: 31,
                patch: None
            })
        );
        assert_eq!(
            KubeVersion::parse("v1.31.4"),
            Ok(KubeVersion {
                minor: 31,
                patch: Some(4)
            })
        );
        assert_eq!(
            KubeVersion::parse("1.30").map(|v| v.to_string()),
            Ok("1.30".to_string())
        );
    }

    #[test]
    fn rejects_malformed_and_unsupported() {
        for bad in [
            "",
            "1",
            "2.30",
            "1.x",
            "1.30.1.2",
            "1..3",
            "1.30-rc.1",
            "latest",
        ] {
            assert_eq!(
                KubeVersion::parse(bad),
                Err(VersionError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            KubeVersion::parse("1.20"),
            Err(VersionError::Unsupported(20))
        );
    }

    #[test]
    fn kubeadm_api_follows_the_minor() {
        assert_eq!(
            KubeVersion::parse("1.30").unwrap().kubeadm_api(),
            "kubeadm.k8s.io/v1beta3"
        );
        assert_eq!(
            KubeVersion::parse("1.31").unwrap().kubeadm_api(),
            "kubeadm.k8s.io/v1beta4"
        );
    }
}
