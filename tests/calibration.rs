//! `autoconv profile` on the simulator, the profile CSV, and scenarios calibrated from a
//! profile (`pattern = "profile"`).

mod common;

use autoconv::report::profile::Profile;
use autoconv::scenario::{Scenario, ScenarioSource};
use autoconv::sim::profile::{profile, ProfileOptions};
use std::path::Path;

fn opts(levels: &[u32]) -> ProfileOptions {
    ProfileOptions {
        levels_pct: levels.to_vec(),
        hold_ms: 5000,
        interval_ms: 1000,
        source: "test".into(),
    }
}

#[test]
fn profile_of_a_uniform_writer_matches_the_saturation_closed_form() {
    // No fault cost: the writer makes w writes/s of CPU time; at throttle p it gets (1-p) of
    // it, so a 1 s harvest finds N(1 - e^(-w(1-p)/N)) distinct pages.
    let s = common::scenario(
        r#"
        [guest]
        memory = "4GiB"
        vcpus = 2
        [[region]]
        name = "heap"
        size = "1GiB"
        pattern = "random"
        write_rate_pages_s = 400000
        vcpus = 2
        [host]
        dirty_fault_us = 0
        dirty_sync_us_per_gib = 0
        "#,
        &[],
    );
    let p = profile(&s, 1, &opts(&[0, 20, 50, 80, 99])).unwrap();
    let n = (1u64 << 30) as f64 / 4096.0;
    for r in &p.rows {
        let share = 1.0 - f64::from(r.throttle_pct) / 100.0;
        let expected = n * (1.0 - (-400_000.0 * share / n).exp());
        let rel = (r.dirty_pages_s - expected).abs() / expected;
        assert!(
            rel < 0.02,
            "{}%: {} vs {expected}",
            r.throttle_pct,
            r.dirty_pages_s
        );
        let cpu = r.guest_cpu_pct.unwrap();
        assert!(
            (cpu - 100.0 * share).abs() < 1.0,
            "{}%: cpu {cpu}",
            r.throttle_pct
        );
        let writes = r.guest_write_pages_s.unwrap();
        assert!((writes - 400_000.0 * share).abs() < 0.02 * 400_000.0 * share + 1.0);
        assert_eq!(r.syncs, Some(5));
        assert_eq!(r.interval_ms, 1000);
    }
}

#[test]
fn dma_keeps_dirtying_at_full_throttle_cpu_writes_do_not() {
    let dma = common::shipped("dma", &[]);
    let p = profile(&dma, 1, &opts(&[0, 99])).unwrap();
    // 90% of the io-buffers' 110,000 pages/s is DMA; the throttle cannot touch it.
    assert!(p.rows[1].dirty_pages_s > 0.85 * 99_000.0, "{:?}", p.rows[1]);
    let heavy = common::shipped("heavy", &[]);
    let p = profile(&heavy, 1, &opts(&[0, 50, 99])).unwrap();
    assert!(p.rows[0].dirty_pages_s > p.rows[1].dirty_pages_s);
    assert!(p.rows[1].dirty_pages_s > 10.0 * p.rows[2].dirty_pages_s);
}

#[test]
fn profile_csv_round_trips_and_is_deterministic() {
    let heavy = common::shipped("heavy", &[]);
    let a = profile(&heavy, 3, &opts(&[0, 30, 60, 99])).unwrap();
    let b = profile(&heavy, 3, &opts(&[0, 30, 60, 99])).unwrap();
    let mut ta = Vec::new();
    a.write(&mut ta).unwrap();
    let mut tb = Vec::new();
    b.write(&mut tb).unwrap();
    assert_eq!(ta, tb);
    let back = Profile::parse("x.csv", std::str::from_utf8(&ta).unwrap()).unwrap();
    assert_eq!(back.rows.len(), 4);
    for (x, y) in back.rows.iter().zip(&a.rows) {
        assert_eq!(x.throttle_pct, y.throttle_pct);
        assert!((x.dirty_pages_s - y.dirty_pages_s).abs() <= 0.05);
        assert_eq!(x.memory_bytes, Some(16 << 30));
        assert_eq!(x.source.as_deref(), Some("test"));
    }
}

/// heavy.toml with its heap replaced by a profile of itself.
fn calibrated_heavy(dir: &Path, sets: &[&str]) -> Scenario {
    let heavy = common::shipped("heavy", &[]);
    let p = profile(&heavy, 1, &ProfileOptions::default()).unwrap();
    let mut csv = Vec::new();
    p.write(&mut csv).unwrap();
    std::fs::write(dir.join("heavy-profile.csv"), csv).unwrap();
    let toml = r#"
        [guest]
        memory = "16GiB"
        vcpus = 4
        [[region]]
        name = "os"
        size = "3GiB"
        pattern = "static"
        [[region]]
        name = "heap"
        size = "6GiB"
        pattern = "profile"
        profile = "heavy-profile.csv"
        [link]
        bandwidth = "10Gbit/s"
        [migration]
        auto-converge = true
        max-bandwidth = "1GiB/s"
    "#;
    let path = dir.join("cal.toml");
    std::fs::write(&path, toml).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Scenario::load(&path, &sets).unwrap()
}

#[test]
fn a_scenario_calibrated_on_a_profile_of_heavy_predicts_heavy() {
    let dir = tempfile::tempdir().unwrap();
    for sets in [
        vec![],
        vec!["cpu-throttle-initial=50"],
        vec!["cpu-throttle-increment=30"],
        vec!["max-bandwidth=512MiB/s"],
    ] {
        let cal = calibrated_heavy(dir.path(), &sets);
        let real = common::shipped("heavy", &sets);
        let (c, _) = common::run(&cal);
        let (r, _) = common::run(&real);
        assert!(c.converged() && r.converged(), "{sets:?}");
        // The throttle sequence, which decides the policy's cost, is reproduced exactly...
        assert_eq!(c.throttle_steps, r.throttle_steps, "{sets:?}");
        // ...and the time and sync count closely (the equivalent writer is exact only over
        // 1 s periods; see src/scenario/calibrate.rs).
        let (ct, rt) = (
            c.total_time_ms.unwrap() as f64,
            r.total_time_ms.unwrap() as f64,
        );
        assert!((ct - rt).abs() / rt < 0.12, "{sets:?}: {ct} vs {rt}");
        assert!(
            c.dirty_sync_count.abs_diff(r.dirty_sync_count) <= 4,
            "{sets:?}"
        );
    }
    // And it still does not converge without auto-converge.
    let cal = calibrated_heavy(
        dir.path(),
        &["auto-converge=off", "autoconv.time_limit_s=60"],
    );
    assert!(!common::run(&cal).0.converged());
}

#[test]
fn calibrated_regions_refuse_what_they_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.csv"),
        "throttle_pct,dirty_pages_s,interval_ms\n0,300000,1000\n99,1000,1000\n",
    )
    .unwrap();
    let build = |region_extra: &str| {
        let text = format!(
            "[guest]\nmemory = \"4GiB\"\n[[region]]\nname = \"w\"\nsize = \"2GiB\"\npattern = \"profile\"\n{region_extra}\n"
        );
        let path = d.join("s.toml");
        std::fs::write(&path, &text).unwrap();
        ScenarioSource::load(&path)
            .and_then(|s| s.build(&[]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(build("profile = \"p.csv\"").is_ok());
    let e = build("").unwrap_err();
    assert!(e.contains("`region[0].profile`: missing"), "{e}");
    let e = build("profile = \"nope.csv\"").unwrap_err();
    assert!(
        e.contains("s.toml:7:11: `region[0].profile`: cannot read profile"),
        "{e}"
    );
    assert!(e.contains("nope.csv"), "{e}");
    let e = build("profile = \"p.csv\"\nwrite_rate_pages_s = 5").unwrap_err();
    assert!(e.contains("takes its rates from the profile"), "{e}");
    let e = build("profile = \"p.csv\"\nprofile_access = \"zigzag\"").unwrap_err();
    assert!(
        e.contains("expected \"random\", \"hotcold\" or \"sequential\""),
        "{e}"
    );
    let e = build("profile = \"p.csv\"\nprofile_access = \"hotcold\"").unwrap_err();
    assert!(e.contains("needs hot_size"), "{e}");
    assert!(
        build("profile = \"p.csv\"\nprofile_access = \"hotcold\"\nhot_size = \"256MiB\"").is_ok()
    );
    // 300,000 pages per 1 s period do not fit in a 1 GiB (262,144-page) region.
    std::fs::write(
        d.join("s2.toml"),
        "[guest]\nmemory = \"4GiB\"\n[[region]]\nname = \"w\"\nsize = \"1GiB\"\npattern = \"profile\"\nprofile = \"p.csv\"\n",
    )
    .unwrap();
    let e = Scenario::load(&d.join("s2.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the region's 262144 pages"), "{e}");
    // A profile named on the command line is found from the working directory.
    let e = Scenario::load(
        &d.join("s2.toml"),
        &["region.w.profile=elsewhere.csv".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--set region.w.profile=elsewhere.csv"), "{e}");
}
