//! Calibration that knows where it was made: `sim` of a scenario whose profile came from
//! another host, and `compare` of a run whose guest wrote at another rate than its profile
//! says, each warn in one line on stderr and still run.

mod common;
use autoconv::report::host::HostInfo;
use common::{autoconv, stderr, text};
use std::path::Path;

/// A profile recorded on `host` (model, cores) whose guest wrote 40000 pages/s unthrottled,
/// and a scenario around it.
fn calibrated(dir: &Path, host_model: &str, host_cores: u32) {
    let mut csv = String::from(
        "throttle_pct,dirty_pages_s,interval_ms,guest_write_pages_s,host_cpu_model,host_cores\n",
    );
    for (pct, dirty, writes) in [(0, 7000, 40000), (50, 4000, 20000), (99, 100, 400)] {
        csv.push_str(&format!(
            "{pct},{dirty},1000,{writes},\"{host_model}\",{host_cores}\n"
        ));
    }
    std::fs::write(dir.join("p.csv"), csv).unwrap();
    std::fs::write(
        dir.join("g.toml"),
        "[guest]\nmemory = \"256MiB\"\n[[region]]\nname = \"heap\"\noffset = \"4MiB\"\nsize = \"128MiB\"\npattern = \"profile\"\nprofile = \"p.csv\"\n[migration]\nauto-converge = true\nmax-bandwidth = \"32MiB/s\"\n",
    )
    .unwrap();
}

#[test]
fn sim_warns_once_when_the_profile_came_from_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    calibrated(d, "Imaginary CPU 9000", 64);
    let o = autoconv(&["sim", "g.toml", "--no-out"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    let here = HostInfo::this_host();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("was measured on Imaginary CPU 9000, 64 logical CPUs")
            && err.contains(&format!("this host is {here}"))
            && err.contains("re-profile"),
        "{err}"
    );

    // Measured here: nothing to say.
    calibrated(d, &here.cpu_model, here.cores);
    let o = autoconv(&["sim", "g.toml", "--no-out"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn compare_warns_when_the_guest_ran_at_another_rate_than_profiled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let here = HostInfo::this_host();
    calibrated(d, &here.cpu_model, here.cores);
    let o = autoconv(&["sim", "g.toml", "--out", "run"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Make it a real run's summary: the guest wrote 12000 pages/s before the migration.
    let path = d.join("run/summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    summary["guest"] = serde_json::json!({ "write_pages_s_before": 12000.0 });
    std::fs::write(&path, summary.to_string()).unwrap();
    let o = autoconv(&["compare", "run", "g.toml"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "autoconv: warning: the guest wrote 12000 pages/s unthrottled, its profile"
        ) && err.contains("says 40000")
            && err.contains("-70%")
            && err.contains("re-profile"),
        "{err}"
    );
    // Within 10%: silent.
    summary["guest"] = serde_json::json!({ "write_pages_s_before": 38000.0 });
    std::fs::write(&path, summary.to_string()).unwrap();
    let o = autoconv(&["compare", "run", "g.toml"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stderr(&o), "");
}

/// The shipped KVM profiles came from a host nobody recorded: they say `unknown`, and every
/// simulation of their calibrated scenarios says so once, with the profile's own rate.
#[test]
fn the_shipped_profiles_say_their_host_is_unknown_and_sim_warns() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (guest, rate) in [
        ("hotcold", "40009"),
        ("random", "38634"),
        ("sequential", "36130"),
    ] {
        let scenario = format!("scenarios/calibrated-kvm-{guest}.toml");
        let o = autoconv(&["sim", &scenario, "--no-out"], root);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "profile scenarios/profiles/kvm-{guest}.csv was measured on an unknown host (its guest ran at {rate}"
            )) && err.contains("re-profile it here"),
            "{err}"
        );
    }
}
