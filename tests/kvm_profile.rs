//! `autoconv profile --kvm`: a real guest's curve, written in the profile format the simulator
//! reads, drives a calibrated scenario. Skipped, with a printed reason, where /dev/kvm is not
//! usable (failed instead under AUTOCONV_REQUIRE_ALL=1, as CI runs it).

mod common;

use autoconv::guest_image::{build_image, GuestSpec, Pace, Pattern};
use autoconv::report::profile::Profile;
use autoconv::scenario::Scenario;
use autoconv::sim::profile::{profile, ProfileOptions};
use std::process::Command;

#[test]
fn a_real_guests_profile_calibrates_a_scenario() {
    if !common::require::require_kvm("a_real_guests_profile_calibrates_a_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A random writer slowed by CPU work per write, so the throttle slows it.
    let spec = GuestSpec {
        pattern: Pattern::Random,
        wss_bytes: 32 << 20,
        pace: Pace::CpuSpin {
            iterations_per_write: 20_000,
        },
        ..GuestSpec::default()
    };
    std::fs::write(d.join("g.img"), build_image(&spec).unwrap()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args([
            "profile", "--kvm", "g.img", "--mem", "64MiB", "--levels", "0,50,90", "--hold", "1s",
            "-o", "p.csv", "--plot", "p.svg",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let p = Profile::read(&d.join("p.csv")).unwrap();
    assert_eq!(
        p.rows.iter().map(|r| r.throttle_pct).collect::<Vec<_>>(),
        [0, 50, 90]
    );
    let r0 = &p.rows[0];
    assert_eq!(r0.interval_ms, 1000);
    assert_eq!(r0.memory_bytes, Some(64 << 20));
    assert_eq!(r0.source.as_deref(), Some("kvm:g.img"));
    // Where it was measured, so a calibration used elsewhere can say so.
    let here = autoconv::report::host::HostInfo::this_host();
    assert_eq!(r0.host_cpu_model.as_deref(), Some(here.cpu_model.as_str()));
    assert_eq!(r0.host_cores, Some(here.cores));
    assert_eq!(p.host(), Some(here));
    // A CPU-bound guest dirties less the harder it is throttled.
    assert!(r0.dirty_pages_s > 0.0);
    assert!(p.rows[2].dirty_pages_s < r0.dirty_pages_s, "{:?}", p.rows);
    assert!(std::fs::read_to_string(d.join("p.svg"))
        .unwrap()
        .contains("dirty rate vs throttle (KVM)"));
    // The same file drives a scenario of that guest.
    std::fs::write(
        d.join("g.toml"),
        "[guest]\nmemory = \"64MiB\"\n[[region]]\nname = \"heap\"\noffset = \"4MiB\"\nsize = \"32MiB\"\npattern = \"profile\"\nprofile = \"p.csv\"\n[migration]\nauto-converge = true\nmax-bandwidth = \"16MiB/s\"\n",
    )
    .unwrap();
    let s = Scenario::load(&d.join("g.toml"), &[]).unwrap();
    // Calibrated over the period it was measured on, the simulated region dirties what the
    // real guest did: profiling the scenario gives back the measured curve.
    let opts = ProfileOptions {
        levels_pct: vec![0, 50, 90],
        hold_ms: 3000,
        interval_ms: 1000,
        source: "calibrated".into(),
    };
    let simulated = profile(&s, 1, &opts).unwrap();
    for (real, sim) in p.rows.iter().zip(&simulated.rows) {
        let err = (sim.dirty_pages_s - real.dirty_pages_s).abs() / real.dirty_pages_s;
        assert!(
            err < 0.10,
            "at {}%: simulated {:.0} pages/s, measured {:.0}",
            real.throttle_pct,
            sim.dirty_pages_s,
            real.dirty_pages_s
        );
    }
}

/// `--plot p.svg` alone draws from a CSV of its own in a private temporary directory: a
/// user's `p.svg.csv` beside the plot is neither overwritten nor deleted.
#[test]
fn a_plot_alone_leaves_the_users_files_beside_it() {
    if !common::require::require_kvm("a_plot_alone_leaves_the_users_files_beside_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = GuestSpec {
        wss_bytes: 16 << 20,
        ..GuestSpec::default()
    };
    std::fs::write(d.join("g.img"), build_image(&spec).unwrap()).unwrap();
    std::fs::write(d.join("p.svg.csv"), "mine").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args([
            "profile", "--kvm", "g.img", "--mem", "64MiB", "--levels", "0,90", "--hold", "300ms",
            "--plot", "p.svg",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(d.join("p.svg").is_file());
    assert_eq!(
        std::fs::read_to_string(d.join("p.svg.csv")).unwrap(),
        "mine"
    );
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["g.img", "p.svg", "p.svg.csv"]);
}
