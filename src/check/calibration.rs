//! Does a calibration still hold? A calibrated scenario's profile was measured on one host with
//! one guest; on another host the same image may run at another rate (the first shipped hot/cold
//! profile said 40K page writes/s; on an AMD EPYC host the image ran 12K and the prediction
//! was +560% off with nothing said). These checks compare what a profile recorded with what is
//! measured now, and give one line saying to re-profile when they disagree.

use crate::report::host::HostInfo;
use crate::report::profile::Profile;
use crate::scenario::{Pattern, Scenario};

/// A measured unthrottled write rate this far (%) from the profile's means another guest or
/// another host.
pub const RATE_TOLERANCE_PCT: f64 = 10.0;

/// The profiles of a scenario's `pattern = "profile"` regions, as (path, profile). A profile
/// that no longer reads is left out (the scenario loaded it a moment ago).
pub fn scenario_profiles(s: &Scenario) -> Vec<(String, Profile)> {
    let mut out: Vec<(String, Profile)> = Vec::new();
    for r in &s.regions {
        if let Pattern::Profile { profile, .. } = &r.pattern {
            if out.iter().any(|(p, _)| p == profile) {
                continue;
            }
            if let Ok(p) = Profile::read(std::path::Path::new(profile)) {
                out.push((profile.clone(), p));
            }
        }
    }
    out
}

fn measured_on(p: &Profile) -> String {
    match p.host() {
        None => "a host it does not record".into(),
        Some(h) if h.cpu_model == UNKNOWN_HOST => "an unknown host".into(),
        Some(h) => h.to_string(),
    }
}

/// The warning when a guest's measured unthrottled page writes/s differ from the profile's by
/// more than [`RATE_TOLERANCE_PCT`]; `None` when they agree or the profile has no rate.
pub fn rate_warning(path: &str, p: &Profile, measured_write_pages_s: f64) -> Option<String> {
    let profiled = p.unthrottled_write_pages_s().filter(|r| *r > 0.0)?;
    let off_pct = 100.0 * (measured_write_pages_s / profiled - 1.0);
    (off_pct.abs() > RATE_TOLERANCE_PCT).then(|| {
        format!(
            "warning: the guest wrote {measured_write_pages_s:.0} pages/s unthrottled, its profile {path} says {profiled:.0} (measured on {}): {off_pct:+.0}%, more than {RATE_TOLERANCE_PCT}% off, so the calibration does not hold here; re-profile the guest on this host (autoconv profile --kvm IMAGE)",
            measured_on(p)
        )
    })
}

/// What a profile says in `host_cpu_model` when it was measured on a real guest but nobody
/// knows on which host (the shipped profiles predate the column).
pub const UNKNOWN_HOST: &str = "unknown";

/// The warning when a profile was measured on a host unlike `here`, or on a host it marks
/// [`UNKNOWN_HOST`]; `None` when it is alike or the profile does not say (profiles from models,
/// and those written before hosts were recorded, without the mark).
pub fn host_warning(path: &str, p: &Profile, here: &HostInfo) -> Option<String> {
    let there = p.host()?;
    if there.cpu_model == UNKNOWN_HOST {
        let rate = p.unthrottled_write_pages_s().map_or_else(String::new, |r| {
            format!(" at {r:.0} page writes/s unthrottled")
        });
        return Some(format!(
            "warning: profile {path} was measured on an unknown host (its guest ran{rate}); the prediction holds only where the guest runs as fast, and this host may differ; re-profile it here (autoconv profile --kvm IMAGE) before trusting the prediction"
        ));
    }
    (!there.same_as(here)).then(|| {
        format!(
            "warning: profile {path} was measured on {there}, this host is {here}: the guest may run at another rate here; re-profile it on this host (autoconv profile --kvm IMAGE) before trusting the prediction"
        )
    })
}

/// [`rate_warning`] for each profile of `s`.
pub fn scenario_rate_warnings(s: &Scenario, measured_write_pages_s: f64) -> Vec<String> {
    scenario_profiles(s)
        .iter()
        .filter_map(|(path, p)| rate_warning(path, p, measured_write_pages_s))
        .collect()
}

/// [`host_warning`] for each profile of `s`, against this host.
pub fn scenario_host_warnings(s: &Scenario) -> Vec<String> {
    let profiles = scenario_profiles(s);
    if profiles.is_empty() {
        return Vec::new();
    }
    let here = HostInfo::this_host();
    profiles
        .iter()
        .filter_map(|(path, p)| host_warning(path, p, &here))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(extra_cols: &str, extra_vals: &str) -> Profile {
        let text = format!(
            "throttle_pct,dirty_pages_s,interval_ms,guest_write_pages_s{extra_cols}\n0,7000,1000,40000{extra_vals}\n50,3000,1000,20000{extra_vals}\n"
        );
        Profile::parse("p.csv", &text).unwrap()
    }

    #[test]
    fn a_rate_more_than_ten_percent_off_warns_once_with_both_rates() {
        let p = profile(",host_cpu_model,host_cores", ",Intel Xeon,4");
        assert_eq!(rate_warning("p.csv", &p, 43_900.0), None);
        assert_eq!(rate_warning("p.csv", &p, 36_400.0), None);
        let w = rate_warning("p.csv", &p, 12_000.0).unwrap();
        assert!(!w.contains('\n'));
        assert!(
            w.contains("wrote 12000 pages/s unthrottled, its profile p.csv says 40000 (measured on Intel Xeon, 4 logical CPUs): -70%"),
            "{w}"
        );
        assert!(w.contains("re-profile"), "{w}");
        assert!(rate_warning("p.csv", &p, 44_100.0).is_some());
    }

    #[test]
    fn old_profiles_still_warn_on_rate_and_say_the_host_is_unknown() {
        let p = profile("", "");
        assert_eq!(p.host(), None);
        let w = rate_warning("p.csv", &p, 12_000.0).unwrap();
        assert!(w.contains("measured on a host it does not record"), "{w}");
        assert_eq!(
            host_warning("p.csv", &p, &HostInfo::from_cpuinfo("model name: X")),
            None
        );
    }

    #[test]
    fn a_host_marked_unknown_always_warns_and_names_the_profiles_rate() {
        let p = profile(",host_cpu_model,host_cores", ",unknown,");
        for here in ["model name: AMD EPYC", "model name: unknown", ""] {
            let w = host_warning("p.csv", &p, &HostInfo::from_cpuinfo(here)).unwrap();
            assert!(!w.contains('\n'));
            assert!(
                w.contains("p.csv was measured on an unknown host (its guest ran at 40000 page writes/s unthrottled)"),
                "{w}"
            );
            assert!(w.contains("re-profile it here"), "{w}");
        }
        let w = rate_warning("p.csv", &p, 12_000.0).unwrap();
        assert!(w.contains("(measured on an unknown host)"), "{w}");
    }

    #[test]
    fn another_host_warns_the_same_does_not() {
        let p = profile(",host_cpu_model,host_cores", ",Intel Xeon,4");
        let same = HostInfo {
            cpu_model: "Intel Xeon".into(),
            cores: 4,
        };
        assert_eq!(host_warning("p.csv", &p, &same), None);
        let here = HostInfo {
            cpu_model: "AMD EPYC".into(),
            cores: 2,
        };
        let w = host_warning("p.csv", &p, &here).unwrap();
        assert!(
            w.contains(
                "measured on Intel Xeon, 4 logical CPUs, this host is AMD EPYC, 2 logical CPUs"
            ),
            "{w}"
        );
    }
}
