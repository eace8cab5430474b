//! autoconv's dirty-limit controller on its VMM against QEMU 7.2's own (`set-vcpu-dirty-limit`,
//! the same per-vCPU controller outside migration, with `-accel kvm,dirty-ring-size=4096`), on
//! the same guest image: the guest's own page-write counter, read every period, shows both
//! holding the guest near the quota. Needs /dev/kvm and qemu-system-x86_64 (skipped with the
//! reason, failed under AUTOCONV_REQUIRE_ALL=1).
//!
//! `AUTOCONV_DL_QUOTAS=50,100,200` runs several quotas and prints each period (the README's
//! table): `cargo test --release --test qemu_dirty_limit -- --nocapture`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use autoconv::guest_image::{GuestSpec, Pattern};
use autoconv::qemu::qmp::QmpClient;
use common::qemu_vm::QemuVm;
use serde_json::json;

/// Periods (1 s, QEMU 7.2's fixed `DIRTYLIMIT_CALC_TIME_MS`) measured after the limit is set.
const PERIODS: usize = 14;
/// Periods given to the controller before the rate is judged.
const SETTLE: usize = 4;
/// Page size of the guest (bytes), for MB/s as QEMU counts them (MiB).
const PAGE: f64 = 4096.0;

fn quotas() -> Vec<u64> {
    std::env::var("AUTOCONV_DL_QUOTAS")
        .ok()
        .map(|v| v.split(',').filter_map(|q| q.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![50])
}

/// The guest's own pages-written counter (vCPU 0), read over QMP's human monitor.
fn pages_written(q: &mut QmpClient) -> u64 {
    let r = q
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "xp /1gx 0x101048"})),
        )
        .expect("xp");
    let text = r.as_str().expect("xp returns text");
    let hex = text.split(':').nth(1).expect("xp output").trim();
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).expect("xp hex")
}

/// Per-period MB/s of the guest under QEMU 7.2 with `set-vcpu-dirty-limit dirty-rate=quota`,
/// and QEMU's own `current-rate` for vCPU 0 at each period.
fn under_qemu(img: &Path, quota: u64) -> (Vec<f64>, Vec<u64>) {
    let vm = QemuVm::boot(
        img,
        &[
            "-accel",
            "kvm,dirty-ring-size=4096",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-m",
            "192M",
        ],
    );
    let mut q = vm.qmp();
    std::thread::sleep(Duration::from_secs(1));
    q.execute("set-vcpu-dirty-limit", Some(json!({"dirty-rate": quota})))
        .unwrap();
    let (mut rates, mut qemu_rates) = (Vec::new(), Vec::new());
    let (mut t0, mut p0) = (Instant::now(), pages_written(&mut q));
    for _ in 0..PERIODS {
        std::thread::sleep(Duration::from_secs(1));
        let (t, p) = (Instant::now(), pages_written(&mut q));
        rates.push((p - p0) as f64 * PAGE / f64::from(1u32 << 20) / (t - t0).as_secs_f64());
        (t0, p0) = (t, p);
        let limits = q.execute("query-vcpu-dirty-limit", None).unwrap();
        assert_eq!(limits[0]["limit-rate"], quota, "{limits}");
        qemu_rates.push(limits[0]["current-rate"].as_u64().unwrap());
    }
    q.execute("cancel-vcpu-dirty-limit", None).unwrap();
    (rates, qemu_rates)
}

/// Per-period MB/s of the guest on autoconv's VMM (dirty rings of 4096 entries) once dirty-limit
/// at `quota` is set during a migration that cannot converge, and the sleep per ring-full in
/// force at each period.
fn under_autoconv(img: &Path, quota: u64) -> (Vec<f64>, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = common::process::bin()
        .args(["run", "--kvm"])
        .arg(img)
        .args(["--mem", "192MiB", "--warmup", "1s", "--after", "200ms"])
        .args(["--dirty-log", "ring", "--set", "auto-converge=off"])
        .args(["--set", "dirty-limit=on", "--set"])
        .arg(format!("vcpu-dirty-limit={quota}"))
        .args(["--set", "max-bandwidth=32MiB/s"])
        .args(["--set", "autoconv.time_limit_s=40", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let events = std::fs::read_to_string(out.join("events.csv")).unwrap_or_default();
    let set_ms: u64 = events
        .lines()
        .find(|l| l.contains(",dirty-limit-set,"))
        .and_then(|l| l.split(',').next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "dirty-limit's trigger never fired: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
    let ts = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let mut lines = ts.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (t, status, rate, sleep) = (
        col("t_ms"),
        col("status"),
        col("guest_write_pages_s"),
        col("dirty_limit_throttle_time_per_round_us"),
    );
    let mut sums = vec![(0.0, 0usize, 0u64); PERIODS];
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let t_ms: u64 = f[t].parse().unwrap();
        if f[status] != "active" || t_ms < set_ms {
            continue;
        }
        let k = ((t_ms - set_ms) / 1000) as usize;
        if let Some(s) = sums.get_mut(k) {
            s.0 += f[rate].parse::<f64>().unwrap();
            s.1 += 1;
            s.2 = f[sleep].parse().unwrap();
        }
    }
    assert!(
        sums.iter().all(|s| s.1 > 0),
        "the migration ended before {PERIODS} periods of dirty-limit: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let rates = sums
        .iter()
        .map(|s| s.0 / s.1 as f64 * PAGE / f64::from(1u32 << 20))
        .collect();
    (rates, sums.iter().map(|s| s.2).collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn autoconv_and_qemu_7_2_hold_the_same_guest_near_the_same_quota() {
    let Some(_kvm) =
        common::prereq::qemu("autoconv_and_qemu_7_2_hold_the_same_guest_near_the_same_quota")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = GuestSpec {
        pattern: Pattern::Sequential,
        wss_bytes: 128 << 20,
        ..GuestSpec::default()
    };
    let img = common::guest::image(dir.path(), "seq.img", &spec);
    let show = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for quota in quotas() {
        let band = 25.0 + 0.3 * quota as f64;
        // A guest starved of CPU by the host's load never reaches the quota, so the limit is
        // not exercised: measure again (twice at most), then fail saying so.
        let bit = |v: &[f64]| v[..3].iter().any(|&r| r > quota as f64 + band);
        let attempt = |what: &str, run: &dyn Fn() -> (Vec<f64>, Vec<u64>)| {
            for _ in 0..3 {
                let got = run();
                if bit(&got.0) {
                    return got;
                }
                println!("  {what}: the guest never dirtied above {band:.0} MB/s + the quota in its first periods ({}): starved by the host's load, measuring again", show(&got.0));
            }
            panic!("{what}: the guest stayed under the quota before any limit: the host is too loaded to test dirty-limit");
        };
        let (qemu, qemu_current) = attempt("QEMU 7.2", &|| under_qemu(&img, quota));
        let (ours, sleeps_us) = attempt("autoconv", &|| under_autoconv(&img, quota));
        println!("quota {quota} MB/s, the guest's MB/s per 1 s period after the limit is set:");
        println!("  QEMU 7.2 : {}", show(&qemu));
        println!("  QEMU current-rate: {qemu_current:?}");
        println!("  autoconv : {}", show(&ours));
        println!("  autoconv sleep per ring-full (us): {sleeps_us:?}");
        let (q_mean, a_mean) = (mean(&qemu[SETTLE..]), mean(&ours[SETTLE..]));
        println!(
            "  mean of periods {SETTLE}..{PERIODS}: QEMU {q_mean:.0}, autoconv {a_mean:.0} MB/s"
        );
        // QEMU's controller stops within 25 MB/s of the quota and measures whole MiB per
        // period; a loaded 2-core host adds noise: both means within 25 MB/s + 30 % of it.
        for (who, m) in [("QEMU 7.2", q_mean), ("autoconv", a_mean)] {
            assert!(
                (m - quota as f64).abs() <= band,
                "{who}: mean {m:.0} MB/s against quota {quota} (band {band:.0})"
            );
        }
        assert!(sleeps_us[SETTLE..].iter().all(|&s| s > 0), "{sleeps_us:?}");
    }
}
