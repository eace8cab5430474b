//! Regions whose workload is a measured profile (`pattern = "profile"`): reading their keys.
//! Kept apart from the other patterns because it reads a second file and calibrates the
//! region's writer on it (see [`super::calibrate`]).

use super::calibrate::{ProfileAccess, ThrottleCurve};
use super::doc::{Context, Fields, Origin, ScenarioError, Value};
use super::values::{f64_field, size_field, str_field};
use super::{Pattern, PAGE_SIZE_BYTES};
use crate::migration::params::PolicyProfile;
use crate::report::profile::Profile;
use crate::units::format_bytes;
use std::path::Path;

/// `pattern = "profile"`: read the profile (relative to the scenario file's directory, or to
/// the working directory for a `--set`) and turn it into the region's throttle curve.
pub(super) fn read_profile_region(
    ctx: &Context,
    f: &Fields,
    prefix: &str,
    origin: Origin,
    size_bytes: u64,
) -> Result<Pattern, ScenarioError> {
    let Some(v) = f.get("profile") else {
        return Err(ctx.invalid(
            origin,
            &format!("{prefix}.profile"),
            "missing: a profile region needs profile = \"path/to/profile.csv\" (from `autoconv profile`)",
        ));
    };
    let name = str_field(f, "profile")?.unwrap_or_default();
    let path = match v.origin {
        Origin::File { .. } | Origin::Default => Path::new(&ctx.path)
            .parent()
            .unwrap_or(Path::new(""))
            .join(name),
        Origin::Set(_) => Path::new(name).to_path_buf(),
    };
    let profile = Profile::read(&path).map_err(|e| f.invalid(v, "profile", e.to_string()))?;
    let access = match str_field(f, "profile_access")? {
        None | Some("random") => ProfileAccess::Random,
        Some("sequential") => ProfileAccess::Sequential,
        Some("hotcold") => {
            let hot_bytes = size_field(f, "hot_size")?.ok_or_else(|| {
                ctx.invalid(
                    origin,
                    &format!("{prefix}.hot_size"),
                    "missing: profile_access = \"hotcold\" needs hot_size",
                )
            })?;
            if hot_bytes == 0 || hot_bytes >= size_bytes || hot_bytes % PAGE_SIZE_BYTES != 0 {
                let v = f.get("hot_size").expect("read above");
                return Err(f.invalid(
                    v,
                    "hot_size",
                    format!(
                        "must be a multiple of 4 KiB above 0 and below the region's size ({}), found {hot_bytes} bytes",
                        format_bytes(size_bytes)
                    ),
                ));
            }
            ProfileAccess::Hotcold {
                hot_pages: hot_bytes / PAGE_SIZE_BYTES,
                hot_writes_pct: f64_field(f, "hot_writes_pct", 0.0, 100.0)?.unwrap_or(90.0),
            }
        }
        Some(other) => {
            let v = f.get("profile_access").expect("read above");
            return Err(f.invalid(
                v,
                "profile_access",
                format!("expected \"random\", \"hotcold\" or \"sequential\", found {other:?}"),
            ));
        }
    };
    let curve = ThrottleCurve::from_profile(&profile, size_bytes / PAGE_SIZE_BYTES, access)
        .map_err(|e| f.invalid(v, "profile", e.to_string()))?;
    Ok(Pattern::Profile {
        profile: path.display().to_string(),
        access,
        curve,
    })
}

/// `autoconv.profile`: the guest's profile for the predictive policy, read (relative to the
/// scenario file's directory, or to the working directory for a `--set`) into its curve.
pub(super) fn read_policy_profile(
    ctx: &Context,
    f: &Fields,
    v: &Value,
) -> Result<PolicyProfile, ScenarioError> {
    let name = str_field(f, "profile")?.unwrap_or_default();
    let path = match v.origin {
        Origin::File { .. } | Origin::Default => Path::new(&ctx.path)
            .parent()
            .unwrap_or(Path::new(""))
            .join(name),
        Origin::Set(_) => Path::new(name).to_path_buf(),
    };
    let profile = Profile::read(&path).map_err(|e| f.invalid(v, "profile", e.to_string()))?;
    Ok(PolicyProfile {
        path: path.display().to_string(),
        curve: profile.dirty_bytes_curve(),
    })
}
