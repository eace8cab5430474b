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

/// The first pass's page counts for a 1 GiB guest whose only region is `region`.
fn first_pass(region: &str, guest_extra: &str, model: &str) -> (u64, u64) {
    let s = scenario(
        &format!(
            r#"
            [guest]
            memory = "1GiB"
            model = "{model}"
            {guest_extra}
            [[region]]
            name = "r"
            size = "1GiB"
            {region}
            [host]
            dirty_fault_us = 0
            dirty_sync_us_per_gib = 0
            [migration]
            max-bandwidth = 0
            "#
        ),
        &[],
    );
    let (o, t) = run(&s);
    assert_eq!(o.status, MigrationStatus::Completed, "{o:?}");
    // Nothing is re-dirtied (static) or little is (pages re-sent after the first pass are
    // data): the zero pages all go in the first pass.
    assert!(syncs(&t).len() >= 2);
    (o.normal_pages, o.zero_pages)
}

#[test]
fn partly_filled_regions_send_their_zero_pages_as_headers() {
    for model in ["aggregate", "page-exact"] {
        let n = 262_144.0;
        let (normal, zero) = first_pass("pattern = \"static\"\nfilled_pct = 25", "", model);
        assert_eq!(normal + zero, n as u64, "{model}: every page goes once");
        // Page-exact draws each page's fill: binomial, sd ~220 pages.
        assert!(
            (zero as f64 - 0.75 * n).abs() < 1500.0,
            "{model}: {zero} zero pages"
        );
    }
}

#[test]
fn a_warm_up_fills_a_random_working_set_as_n_one_minus_exp() {
    for model in ["aggregate", "page-exact"] {
        // 1 GiB zeroed at boot, written at random at 100K pages/s for 2 s before the migration:
        // N (1 - e^(-wT/N)) pages hold data when it starts; the rest go as zero pages.
        let n: f64 = 262_144.0;
        let region = "pattern = \"random\"\nwrite_rate_pages_s = 100000\nfilled_pct = 0";
        let (_, zero) = first_pass(region, "warmup_s = 2", model);
        let data_at_start = n * (1.0 - (-100_000.0 * 2.0 / n).exp());
        // Writes during the first pass turn more zero pages into data before the cursor gets
        // there, so at most this many zero pages: and at least what the pass leaves unwritten.
        let pass_s: f64 = 262_144.0 * 4104.0 / 1.25e9; // the 10 Gbit/s default link
        let unwritten_at_end = n * (-100_000.0 * (2.0 + pass_s) / n).exp();
        let upper = n - data_at_start;
        assert!(
            zero as f64 <= upper * 1.01 && zero as f64 >= unwritten_at_end * 0.99,
            "{model}: {zero} zero pages, expected between {unwritten_at_end:.0} and {upper:.0}"
        );
        // Without the warm-up almost everything would still have been zero.
        let (_, zero_cold) = first_pass(region, "", model);
        assert!(zero_cold as f64 > upper * 1.5, "{model}: {zero_cold}");
    }
}
