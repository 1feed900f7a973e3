//! Platforms (`os/arch[/variant]`) and choosing an image index's entry by one.

use super::*;

/// A platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's (linux/<arch>), as Go names architectures.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            arch: oci_spec::image::Arch::default().to_string(),
            variant: None,
        }
    }

    fn of(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            arch: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
        }
    }

    /// `self` (wanted) is satisfied by `have`: the same os and architecture,
    /// and the variant when one is wanted (arm64 without one is v8).
    pub(super) fn accepts(&self, have: &Platform) -> bool {
        let variant = |p: &Platform| match (&p.variant, p.arch.as_str()) {
            (None, "arm64") => Some("v8".to_string()),
            (v, _) => v.clone(),
        };
        self.os == have.os && self.arch == have.arch && (self.variant.is_none() || variant(self) == variant(have))
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64/v8"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The index entry for `platform`; else the platforms there are.
pub(super) fn pick<'d>(
    manifests: &'d [Descriptor],
    platform: &Platform,
) -> std::result::Result<&'d Descriptor, Vec<String>> {
    let images: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            let t = d.media_type().to_string();
            t == OCI_MANIFEST || t == DOCKER_MANIFEST || t == OCI_INDEX || t == DOCKER_MANIFEST_LIST
        })
        // Attestations and signatures come as unknown/unknown entries.
        .filter(|d| d.platform().as_ref().is_none_or(|p| p.os().to_string() != "unknown"))
        .collect();
    if let Some(d) = images.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| platform.accepts(&Platform::of(p)))
    }) {
        return Ok(d);
    }
    if let [only] = images.as_slice() {
        if only.platform().is_none() {
            return Ok(only);
        }
    }
    let mut available: Vec<String> = images
        .iter()
        .filter_map(|d| d.platform().as_ref().map(|p| Platform::of(p).to_string()))
        .collect();
    available.dedup();
    if available.is_empty() {
        available.push("no platforms listed".into());
    }
    Err(available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_print_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.accepts(&"linux/arm64".parse().unwrap()));
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.accepts(&"linux/arm/v7".parse().unwrap()));
        assert!(!"linux/arm/v6"
            .parse::<Platform>()
            .unwrap()
            .accepts(&"linux/arm/v7".parse().unwrap()));
        assert!(!arm.accepts(&"linux/amd64".parse().unwrap()));
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn index_entries_are_chosen_by_platform_and_listed_otherwise() {
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "1".repeat(64)),
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "2".repeat(64)),
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "3".repeat(64)),
                 "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        }))
        .unwrap();
        let arm = pick(index.manifests(), &"linux/arm64".parse().unwrap()).unwrap();
        assert!(arm.digest().to_string().ends_with(&"2".repeat(64)));
        let err = pick(index.manifests(), &"linux/s390x".parse().unwrap()).unwrap_err();
        assert_eq!(err, ["linux/amd64", "linux/arm64/v8"]);
    }
}
