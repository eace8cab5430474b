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

/// The shipped KVM profiles name the host they were measured on and the guest's unthrottled
/// rate there; a simulation of their calibrated scenarios is silent on that host and says once
/// on any other which host it was.
#[test]
fn the_shipped_profiles_name_their_host_and_sim_warns_elsewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = HostInfo::this_host();
    for guest in ["hotcold", "random", "sequential"] {
        let path = root.join(format!("scenarios/profiles/kvm-{guest}.csv"));
        let profile = autoconv::report::profile::Profile::read(&path).unwrap();
        let host = profile
            .host()
            .expect("a shipped KVM profile records its host");
        assert!(
            host.cpu_model != "unknown" && host.cores > 0,
            "{guest}: {host}"
        );
        let rate = profile
            .unthrottled_write_pages_s()
            .expect("a shipped KVM profile records the guest's unthrottled rate");
        assert!(rate > 1000.0, "{guest}: {rate}");

        let scenario = format!("scenarios/calibrated-kvm-{guest}.toml");
        let o = autoconv(&["sim", &scenario, "--no-out"], root);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let err = stderr(&o);
        if here.same_as(&host) {
            assert_eq!(err, "", "{guest}: measured on this host ({here})");
        } else {
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains(&format!(
                    "profile scenarios/profiles/kvm-{guest}.csv was measured on {host}, this host is {here}"
                )) && err.contains("re-profile it on this host"),
                "{err}"
            );
        }
    }
}

/// `run --kvm --calibrated` checks the guest it just ran against the profile: a profile that
/// says the guest wrote 10^9 pages/s (no vCPU here does) gets one line naming it after the
/// run, which still completes and writes its directory.
#[test]
fn run_kvm_calibrated_warns_when_the_guest_ran_at_another_rate_than_profiled() {
    let test = "run_kvm_calibrated_warns_when_the_guest_ran_at_another_rate_than_profiled";
    if !common::require::require_kvm(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let here = HostInfo::this_host();
    let mut csv = String::from(
        "throttle_pct,dirty_pages_s,interval_ms,guest_write_pages_s,host_cpu_model,host_cores\n",
    );
    for (pct, rate) in [(0, 1_000_000_000u64), (99, 10_000_000)] {
        csv.push_str(&format!(
            "{pct},2048,1000,{rate},\"{}\",{}\n",
            here.cpu_model, here.cores
        ));
    }
    std::fs::write(d.join("p.csv"), csv).unwrap();
    std::fs::write(
        d.join("g.toml"),
        "[guest]\nmemory = \"64MiB\"\n[[region]]\nname = \"heap\"\noffset = \"4MiB\"\nsize = \"8MiB\"\npattern = \"profile\"\nprofile = \"p.csv\"\n",
    )
    .unwrap();
    let o = autoconv(
        &[
            "guest",
            "build",
            "--pattern",
            "sequential",
            "--wss",
            "8MiB",
            "--pace",
            "cpu:100000",
            "-o",
            "g.img",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = autoconv(
        &[
            "run",
            "--kvm",
            "g.img",
            "--mem",
            "64MiB",
            "--warmup",
            "500ms",
            "--set",
            "max-bandwidth=0",
            "--calibrated",
            "g.toml",
            "--out",
            "run",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    // (A migration this short may also be flagged as having measured no guest progress.)
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("p.csv")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("autoconv: warning: the guest wrote ")
            && warnings[0].contains("its profile p.csv says 1000000000")
            && warnings[0].contains("more than 10% off")
            && warnings[0].contains("re-profile the guest on this host"),
        "{err}"
    );
    assert!(d.join("run/summary.json").exists());
}
