//! The simulator against closed-form pre-copy models (uniform dirtying, no throttle).

mod common;
use autoconv::migration::{MigrationStatus, SyncReason};
use common::*;

const PAGE_WIRE: f64 = 4104.0; // QEMU: 8-byte header + 4096

/// A guest whose whole 1 GiB is one sequential sweep at `dirty_pages_s`, migrated with no rate
/// limit over a link that sends `pages_s` pages/s: each round sends what the last one dirtied.
fn geometric_guest(dirty_pages_s: u64, pages_s: u64, model: &str) -> autoconv::scenario::Scenario {
    let link = pages_s * 4104;
    scenario(
        &format!(
            r#"
            [guest]
            memory = "1GiB"
            model = "{model}"
            [[region]]
            name = "ws"
            size = "1GiB"
            pattern = "sequential"
            write_rate_pages_s = {dirty_pages_s}
            [host]
            dirty_fault_us = 0
            dirty_sync_us_per_gib = 0
            [link]
            bandwidth = {link}
            [migration]
            auto-converge = false
            max-bandwidth = 0
            downtime-limit = 1
            [autoconv]
            time_limit_s = 60
            "#
        ),
        &[],
    )
}

#[test]
fn geometric_precopy_rounds_and_total_volume() {
    for model in ["aggregate", "page-exact"] {
        let m = 262_144.0; // pages of 1 GiB
        let lambda: f64 = 0.4;
        let s = geometric_guest((lambda * m) as u64, m as u64, model);
        let (o, t) = run(&s);
        assert_eq!(o.status, MigrationStatus::Completed, "{model}: {o:?}");
        // threshold_size = bandwidth * 1 ms: a round ends with at most that much unsent.
        let threshold_pages = m / 1000.0 + 2.0;
        let rounds: Vec<u64> = syncs(&t)
            .iter()
            .filter(|(_, _, r)| *r == SyncReason::PassEnd)
            .map(|(_, newly, _)| *newly)
            .collect();
        assert!(rounds.len() >= 6, "{model}: {rounds:?}");
        // Round i (i >= 1) sends M * lambda^i: what round i-1 dirtied.
        for (i, &newly) in rounds.iter().enumerate() {
            let expected = m * lambda.powi(i as i32 + 1);
            let tol = threshold_pages * 1.5 + expected * 0.005;
            assert!(
                (newly as f64 - expected).abs() <= tol,
                "{model}: round {} sent {newly}, closed form {expected:.0} (+-{tol:.0})",
                i + 1
            );
        }
        // V_mig = M (1 - lambda^(n+1)) / (1 - lambda), n rounds after the first.
        let n = rounds.len() as i32;
        let v_mig = m * (1.0 - lambda.powi(n + 1)) / (1.0 - lambda) * PAGE_WIRE;
        let got = o.transferred_bytes as f64;
        assert!(
            (got - v_mig).abs() / v_mig < 0.01,
            "{model}: transferred {got:.0}, closed form {v_mig:.0}"
        );
    }
}

#[test]
fn lambda_at_or_above_one_never_converges_without_throttling() {
    for lambda in [1.0f64, 1.3] {
        let m = 262_144.0;
        let s = geometric_guest((lambda * m) as u64, m as u64, "aggregate");
        let (o, t) = run(&s);
        assert_eq!(o.status, MigrationStatus::NotConverged, "lambda {lambda}");
        assert!(o.total_time_ms.is_none());
        // Rounds never shrink: each re-sends at least what the previous one did.
        let rounds: Vec<u64> = syncs(&t)
            .iter()
            .filter(|(_, _, r)| *r == SyncReason::PassEnd)
            .map(|(_, n, _)| *n)
            .collect();
        assert!(rounds.len() > 10);
        for w in rounds.windows(2).skip(1) {
            assert!(
                w[1] as f64 >= w[0] as f64 * 0.99,
                "lambda {lambda}: {rounds:?}"
            );
        }
    }
}

#[test]
fn uniform_random_writes_saturate_as_n_one_minus_exp() {
    for model in ["aggregate", "page-exact"] {
        // 64 MiB (16,384 pages) written at random at 8,192 writes/s, then 1984 MiB of static data:
        // the first pass takes ~2 s, so by its end U(t) = N (1 - e^(-wt/N)) pages are dirty.
        let s = scenario(
            &format!(
                r#"
                [guest]
                memory = "2GiB"
                model = "{model}"
                [[region]]
                name = "hot"
                size = "64MiB"
                pattern = "random"
                write_rate_pages_s = 8192
                [[region]]
                name = "cold"
                size = "1984MiB"
                pattern = "static"
                [host]
                dirty_fault_us = 0
                dirty_sync_us_per_gib = 0
                [link]
                bandwidth = {}
                [migration]
                max-bandwidth = 0
                downtime-limit = 1
                "#,
                262_144 * 4104
            ),
            &[],
        );
        let (o, t) = run(&s);
        assert_eq!(o.status, MigrationStatus::Completed);
        let sy = syncs(&t);
        let (t1, _, _) = sy[0];
        let (t2, newly, reason) = sy[1];
        assert_eq!(reason, SyncReason::PassEnd);
        let n = 16_384.0;
        let wt = 8192.0 * (t2 - t1) as f64 / 1000.0;
        let expected = n * (1.0 - (-wt / n).exp());
        // Within sampling noise (sd ~ 40 pages here) and the 1 ms clock resolution of t2 - t1.
        assert!(
            (newly as f64 - expected).abs() < 0.01 * expected + 200.0,
            "{model}: {newly} newly dirty, U(t) = {expected:.0}"
        );
    }
}
