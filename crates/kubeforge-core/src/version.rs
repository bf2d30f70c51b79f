//! Kubernetes versions: what a user may ask for and what follows from it.
//!
//! Everything kubeforge knows about a minor lives in one table, [`MINORS`]: the kubeadm
//! configuration API, the images `kubeadm config images list` prints, the end of upstream
//! support, and what the node needs (cgroup v2, a containerd major).

use std::fmt;

use serde::Serialize;

/// The registry kubeadm pulls from unless `imageRepository` says otherwise.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

/// What kubeforge knows about one Kubernetes minor.
///
/// The image tags are kubeadm's defaults (its `cmd/kubeadm/app/constants/constants.go`:
/// `PauseVersion`, `CoreDNSVersion` and `SupportedEtcdVersion`). Patch releases move them
/// (etcd above all: kubeadm 1.28.4 lists `etcd:3.5.9-0`, 1.28.7 `etcd:3.5.10-0`), so the
/// table holds the tag of the newest patch found, and **at run time the installed kubeadm's
/// own `kubeadm config images list` wins over this table**: the table is for planning, for
/// checking an offline bundle when its kubeadm cannot run, and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinorFacts {
    pub minor: u32,
    /// `kubeadm.k8s.io/v1beta3` or `kubeadm.k8s.io/v1beta4`.
    pub kubeadm_api: &'static str,
    /// Tag of `registry.k8s.io/pause`, the sandbox image.
    pub pause: &'static str,
    /// Tag of `registry.k8s.io/etcd`.
    pub etcd: &'static str,
    /// Tag of `registry.k8s.io/coredns/coredns`.
    pub coredns: &'static str,
    /// The day upstream support ends (kubernetes.io/releases).
    pub end_of_life: Date,
    /// The kubelet refuses to start on cgroup v1 by default (`failCgroupV1`).
    pub requires_cgroup_v2: bool,
    /// The oldest containerd major the kubelet supports (1.35 is the last minor that
    /// supports containerd 1.x).
    pub oldest_containerd_major: u32,
}

/// The kubeadm configuration APIs of the table.
pub const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
pub const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";

/// Every minor kubeforge installs, oldest first. Sources (read 2026-11-27):
///
/// - kubeadm API: v1beta4 enabled in 1.31 (kubernetes PR 125029), v1beta3 removed in 1.37
///   (CHANGELOG-1.37, PR 136016).
/// - pause: 3.9 in the v1.28.7 source (`PauseVersion`); 3.10 from 1.31 (PR 125112); 3.10.1
///   in 1.34 and 1.35 (PR 130713); 3.10.2 in 1.36 (`kubeadm config images list` of v1.36.2,
///   quoted in kubespray PR 13363). 1.37: **unconfirmed**, 3.10.2 assumed (no primary
///   source found; third parties assume 3.10.2).
/// - etcd and CoreDNS:
///   - 1.28: etcd 3.5.10-0, CoreDNS v1.10.1 (the v1.28.7 source, constants.go).
///   - 1.29: CoreDNS v1.11.1 (coredns/deployment CoreDNS-k8s_version.md, "installed by
///     kubeadm"); etcd 3.5.10-0 **unconfirmed** (1.29.0's value; later patches moved).
///   - 1.30: CoreDNS v1.11.1 (CoreDNS-k8s_version.md); etcd 3.5.12-0 **unconfirmed**.
///   - 1.31: etcd 3.5.15-0, CoreDNS v1.11.3 (`kubeadm config images list` of v1.31.1,
///     quoted in wolfi-dev/os PR 30755).
///   - 1.32: CoreDNS v1.11.3 (CoreDNS-k8s_version.md); etcd 3.5.24-0 (PR 134779: "the
///     supported etcd version to v3.5.24 for supported control plane versions v1.32, v1.33,
///     and v1.34"; that the 1.32 branch carries it is **unconfirmed**, 1.32.0 had 3.5.16-0).
///   - 1.33: CoreDNS v1.12.0 (coredns/deployment PR 306, from v1.33.0's
///     build/dependencies.yaml); etcd 3.5.24-0 (PR 135018; 1.33.0 had 3.5.21-0).
///   - 1.34: CoreDNS v1.12.1, etcd 3.6.5-0 (a copy of the 1.34 constants; **unconfirmed**
///     in kubernetes' own tree; 1.34.0 had 3.6.4-0).
///   - 1.35: CoreDNS v1.13.1, etcd 3.6.6-0 (a copy of v1.35.8's constants in a third-party
///     test; **unconfirmed** in kubernetes' own tree).
///   - 1.36: CoreDNS v1.14.2, etcd 3.6.8-0 (`kubeadm config images list` of v1.36.2).
///   - 1.37: etcd 3.7.0-0 (PR 140333, merged 2026-07-08, before the 1.37 code freeze of
///     2026-07-23) and CoreDNS v1.14.6 (PR 140497, merged 2026-07-17): both inferred from
///     the merge dates, **unconfirmed** in a v1.37 tag.
/// - End of life: kubernetes/website data/releases/eol.yaml for 1.28 (2024-10-22, the day
///   of its last patch; planned 2024-10-28), 1.29, 1.30 (2025-07-15), 1.31 (2025-11-11) and
///   1.32; kubernetes.io/releases/1.3x for 1.33 to 1.37.
/// - cgroup v2 and containerd: KEP-5573 (`failCgroupV1: true` from 1.35); "Kubernetes 1.35
///   is the last release supporting containerd 1.x" (EKS version notes); containerd's
///   RELEASES.md lists 2.x only for 1.36.
pub const MINORS: &[MinorFacts] = &[
    facts(28, V1BETA3, "3.9", "3.5.10-0", "v1.10.1", (2024, 10, 22)),
    facts(29, V1BETA3, "3.9", "3.5.10-0", "v1.11.1", (2025, 2, 28)),
    facts(30, V1BETA3, "3.9", "3.5.12-0", "v1.11.1", (2025, 7, 15)),
    facts(31, V1BETA4, "3.10", "3.5.15-0", "v1.11.3", (2025, 11, 11)),
    facts(32, V1BETA4, "3.10", "3.5.24-0", "v1.11.3", (2026, 2, 28)),
    facts(33, V1BETA4, "3.10", "3.5.24-0", "v1.12.0", (2026, 6, 28)),
    facts(34, V1BETA4, "3.10.1", "3.6.5-0", "v1.12.1", (2026, 10, 27)),
    facts(35, V1BETA4, "3.10.1", "3.6.6-0", "v1.13.1", (2027, 2, 28)),
    facts(36, V1BETA4, "3.10.2", "3.6.8-0", "v1.14.2", (2027, 6, 28)),
    facts(37, V1BETA4, "3.10.2", "3.7.0-0", "v1.14.6", (2027, 10, 28)),
];

const fn facts(
    minor: u32,
    kubeadm_api: &'static str,
    pause: &'static str,
    etcd: &'static str,
    coredns: &'static str,
    (year, month, day): (u16, u8, u8),
) -> MinorFacts {
    MinorFacts {
        minor,
        kubeadm_api,
        pause,
        etcd,
        coredns,
        end_of_life: Date { year, month, day },
        requires_cgroup_v2: minor >= 35,
        oldest_containerd_major: if minor >= 36 { 2 } else { 1 },
    }
}

/// The oldest and newest Kubernetes minors this release of kubeforge knows how to install.
pub const OLDEST_MINOR: u32 = MINORS[0].minor;
pub const NEWEST_MINOR: u32 = MINORS[MINORS.len() - 1].minor;
/// The default: the newest minor, whose newest patch is installed and then held.
pub const DEFAULT_MINOR: u32 = NEWEST_MINOR;
pub const DEFAULT_MINOR_STR: &str = "1.37";

/// The facts of a supported minor.
pub fn minor_facts(minor: u32) -> Option<&'static MinorFacts> {
    MINORS.iter().find(|f| f.minor == minor)
}

impl MinorFacts {
    /// The sandbox image: `<repository>/pause:<tag>`.
    pub fn sandbox_image(&self, image_repository: &str) -> String {
        format!("{image_repository}/pause:{}", self.pause)
    }

    /// What `kubeadm config images list` prints for `1.<minor>.<patch>`, in its order:
    /// kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, then CoreDNS,
    /// pause and etcd (1.31 and later, as v1.31.1 and v1.36.2 print them), or pause, etcd and
    /// CoreDNS (1.28: kubeadm v1.28.7 prints them so, and its `GetControlPlaneImages` appends
    /// them in that order; 1.29 and 1.30 **unconfirmed**, taken to be as 1.28).
    pub fn images(&self, patch: u32, image_repository: &str) -> Vec<String> {
        let r = image_repository;
        let v = format!("v1.{}.{patch}", self.minor);
        let coredns = format!("{r}/coredns/coredns:{}", self.coredns);
        let pause = self.sandbox_image(r);
        let etcd = format!("{r}/etcd:{}", self.etcd);
        let mut images = vec![
            format!("{r}/kube-apiserver:{v}"),
            format!("{r}/kube-controller-manager:{v}"),
            format!("{r}/kube-scheduler:{v}"),
            format!("{r}/kube-proxy:{v}"),
        ];
        if self.minor >= 31 {
            images.extend([coredns, pause, etcd]);
        } else {
            images.extend([pause, etcd, coredns]);
        }
        images
    }

    /// Upstream no longer supports this minor on `today` (the end-of-life day itself is still
    /// supported).
    pub fn is_past_end_of_life(&self, today: Date) -> bool {
        today > self.end_of_life
    }
}

/// A calendar day (proleptic Gregorian), for end-of-life dates. The pure core never reads the
/// clock: the caller passes "today".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// Reads `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Date> {
        let mut parts = text.trim().split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || y.len() != 4
            || m.len() != 2
            || d.len() != 2
            || ![y, m, d]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let date = Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let days_in_month = match date.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if date.year.is_multiple_of(4)
                && (!date.year.is_multiple_of(100) || date.year.is_multiple_of(400)) =>
            {
                29
            }
            2 => 28,
            _ => return None,
        };
        (1..=days_in_month).contains(&date.day).then_some(date)
    }

    /// Days since 1970-01-01 (days-from-civil, H. Hinnant).
    pub fn unix_days(&self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The day that is `days` days after 1970-01-01 (civil-from-days, H. Hinnant).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(
            year.clamp(0, i64::from(u16::MAX)) as u16,
            month as u8,
            day as u8,
        )
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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
        let version = Self::parse_any(text)?;
        if minor_facts(version.minor).is_none() {
            return Err(VersionError::Unsupported(version.minor));
        }
        Ok(version)
    }

    /// Reads a version of any minor, supported or not.
    pub fn parse_any(text: &str) -> Result<Self, VersionError> {
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
        Ok(Self { minor, patch })
    }

    /// This minor's row of [`MINORS`]. A version built by hand outside the table gets the
    /// nearest row.
    pub fn facts(self) -> &'static MinorFacts {
        minor_facts(self.minor).unwrap_or(if self.minor < OLDEST_MINOR {
            &MINORS[0]
        } else {
            &MINORS[MINORS.len() - 1]
        })
    }

    /// The kubeadm configuration API: `v1beta4` from 1.31 (extraArgs as name/value lists,
    /// a Timeouts struct), `v1beta3` before.
    pub fn kubeadm_api(self) -> &'static str {
        self.facts().kubeadm_api
    }

    /// The sandbox (pause) image kubeadm expects, from registry.k8s.io.
    pub fn sandbox_image(self) -> String {
        self.facts().sandbox_image(DEFAULT_IMAGE_REPOSITORY)
    }

    /// What `kubeadm config images list` prints for this exact version; `None` when only the
    /// minor is known.
    pub fn images(self, image_repository: &str) -> Option<Vec<String>> {
        self.patch
            .map(|patch| self.facts().images(patch, image_repository))
    }

    pub fn end_of_life(self) -> Date {
        self.facts().end_of_life
    }

    pub fn is_past_end_of_life(self, today: Date) -> bool {
        self.facts().is_past_end_of_life(today)
    }

    /// The kubelet refuses cgroup v1 hosts (1.35 and later).
    pub fn requires_cgroup_v2(self) -> bool {
        self.facts().requires_cgroup_v2
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

    fn v(text: &str) -> KubeVersion {
        KubeVersion::parse(text).unwrap()
    }

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
        for (text, minor) in [("1.20", 20), ("1.27", 27), ("1.38", 38), ("v1.27.9", 27)] {
            assert_eq!(
                KubeVersion::parse(text),
                Err(VersionError::Unsupported(minor)),
                "{text}"
            );
        }
        assert_eq!(
            KubeVersion::parse_any("1.27.9"),
            Ok(KubeVersion {
                minor: 27,
                patch: Some(9)
            })
        );
    }

    #[test]
    fn the_range_is_1_28_to_1_37_and_the_default_is_the_newest() {
        assert_eq!((OLDEST_MINOR, NEWEST_MINOR, DEFAULT_MINOR), (28, 37, 37));
        assert_eq!(DEFAULT_MINOR_STR, KubeVersion::DEFAULT.to_string());
        assert_eq!(v("1.28").minor, 28);
        assert_eq!(v("1.37.1").patch, Some(1));
        let minors: Vec<u32> = MINORS.iter().map(|f| f.minor).collect();
        assert_eq!(minors, (28..=37).collect::<Vec<_>>(), "one row per minor");
    }

    /// The whole table, one line per minor: a change to any fact shows here.
    #[test]
    fn the_table() {
        let rows: Vec<String> = MINORS
            .iter()
            .map(|f| {
                format!(
                    "1.{} {} pause:{} etcd:{} coredns:{} eol:{} cgroup-v2:{} containerd>={}",
                    f.minor,
                    f.kubeadm_api.trim_start_matches("kubeadm.k8s.io/"),
                    f.pause,
                    f.etcd,
                    f.coredns,
                    f.end_of_life,
                    f.requires_cgroup_v2,
                    f.oldest_containerd_major
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "1.28 v1beta3 pause:3.9 etcd:3.5.10-0 coredns:v1.10.1 eol:2024-10-22 cgroup-v2:false containerd>=1",
                "1.29 v1beta3 pause:3.9 etcd:3.5.10-0 coredns:v1.11.1 eol:2025-02-28 cgroup-v2:false containerd>=1",
                "1.30 v1beta3 pause:3.9 etcd:3.5.12-0 coredns:v1.11.1 eol:2025-07-15 cgroup-v2:false containerd>=1",
                "1.31 v1beta4 pause:3.10 etcd:3.5.15-0 coredns:v1.11.3 eol:2025-11-11 cgroup-v2:false containerd>=1",
                "1.32 v1beta4 pause:3.10 etcd:3.5.24-0 coredns:v1.11.3 eol:2026-02-28 cgroup-v2:false containerd>=1",
                "1.33 v1beta4 pause:3.10 etcd:3.5.24-0 coredns:v1.12.0 eol:2026-06-28 cgroup-v2:false containerd>=1",
                "1.34 v1beta4 pause:3.10.1 etcd:3.6.5-0 coredns:v1.12.1 eol:2026-10-27 cgroup-v2:false containerd>=1",
                "1.35 v1beta4 pause:3.10.1 etcd:3.6.6-0 coredns:v1.13.1 eol:2027-02-28 cgroup-v2:true containerd>=1",
                "1.36 v1beta4 pause:3.10.2 etcd:3.6.8-0 coredns:v1.14.2 eol:2027-06-28 cgroup-v2:true containerd>=2",
                "1.37 v1beta4 pause:3.10.2 etcd:3.7.0-0 coredns:v1.14.6 eol:2027-10-28 cgroup-v2:true containerd>=2",
            ]
        );
    }

    #[test]
    fn boundaries() {
        assert_eq!(v("1.30").kubeadm_api(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(v("1.31").kubeadm_api(), "kubeadm.k8s.io/v1beta4");
        assert_eq!(v("1.37").kubeadm_api(), "kubeadm.k8s.io/v1beta4");
        assert_eq!(v("1.30").sandbox_image(), "registry.k8s.io/pause:3.9");
        assert_eq!(v("1.31").sandbox_image(), "registry.k8s.io/pause:3.10");
        assert_eq!(v("1.33").sandbox_image(), "registry.k8s.io/pause:3.10");
        assert_eq!(v("1.34").sandbox_image(), "registry.k8s.io/pause:3.10.1");
        assert_eq!(v("1.35").sandbox_image(), "registry.k8s.io/pause:3.10.1");
        assert_eq!(v("1.36").sandbox_image(), "registry.k8s.io/pause:3.10.2");
        assert!(!v("1.34").requires_cgroup_v2());
        assert!(v("1.35").requires_cgroup_v2());
        assert_eq!(v("1.35").facts().oldest_containerd_major, 1);
        assert_eq!(v("1.36").facts().oldest_containerd_major, 2);
        assert_eq!(
            v("1.28").apt_repository(),
            "https://pkgs.k8s.io/core:/stable:/v1.28/deb/"
        );
        assert_eq!(
            v("1.37.1").apt_repository(),
            "https://pkgs.k8s.io/core:/stable:/v1.37/deb/"
        );
    }

    #[test]
    fn images_are_what_kubeadm_lists() {
        // What kubeadm v1.28.7 (built from its source) prints, line for line.
        assert_eq!(
            v("1.28.7").images(DEFAULT_IMAGE_REPOSITORY).unwrap(),
            [
                "registry.k8s.io/kube-apiserver:v1.28.7",
                "registry.k8s.io/kube-controller-manager:v1.28.7",
                "registry.k8s.io/kube-scheduler:v1.28.7",
                "registry.k8s.io/kube-proxy:v1.28.7",
                "registry.k8s.io/pause:3.9",
                "registry.k8s.io/etcd:3.5.10-0",
                "registry.k8s.io/coredns/coredns:v1.10.1",
            ]
        );
        // v1.36.2's `kubeadm config images list`, as printed.
        assert_eq!(
            v("1.36.2").images("registry.k8s.io").unwrap(),
            [
                "registry.k8s.io/kube-apiserver:v1.36.2",
                "registry.k8s.io/kube-controller-manager:v1.36.2",
                "registry.k8s.io/kube-scheduler:v1.36.2",
                "registry.k8s.io/kube-proxy:v1.36.2",
                "registry.k8s.io/coredns/coredns:v1.14.2",
                "registry.k8s.io/pause:3.10.2",
                "registry.k8s.io/etcd:3.6.8-0",
            ]
        );
        let mirrored = v("1.31.1").images("mirror.example/k8s").unwrap();
        assert_eq!(mirrored[5], "mirror.example/k8s/pause:3.10");
        assert_eq!(v("1.31").images("registry.k8s.io"), None, "no patch");
    }

    #[test]
    fn end_of_life() {
        assert_eq!(v("1.34").end_of_life(), Date::new(2026, 10, 27));
        assert!(!v("1.34").is_past_end_of_life(Date::new(2026, 10, 27)));
        assert!(v("1.34").is_past_end_of_life(Date::new(2026, 10, 28)));
        assert!(v("1.28").is_past_end_of_life(Date::new(2026, 11, 27)));
        assert!(!v("1.35").is_past_end_of_life(Date::new(2026, 11, 27)));
        assert!(!v("1.37").is_past_end_of_life(Date::new(2027, 10, 28)));
    }

    #[test]
    fn dates() {
        assert_eq!(Date::parse("2026-11-27"), Some(Date::new(2026, 11, 27)));
        assert_eq!(Date::parse("2028-02-29"), Some(Date::new(2028, 2, 29)));
        for bad in ["2026-02-29", "2026-13-01", "2026-1-01", "26-11-27", "x", ""] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(Date::from_unix_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix_days(20_784), Date::new(2026, 11, 27));
        assert_eq!(Date::from_unix_days(11_016), Date::new(2000, 2, 29));
        assert_eq!(Date::new(2026, 11, 27).to_string(), "2026-11-27");
        for days in [0, 11_016, 20_784, 59, 60, 365, 366, -1, 100_000] {
            assert_eq!(Date::from_unix_days(days).unix_days(), days, "{days}");
        }
    }
}
