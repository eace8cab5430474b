//! The aggregate model against the page-exact one, determinism, and scale.

mod common;
use autoconv::migration::MigrationStatus;
use autoconv::report::write_timeseries;
use common::*;

fn small_guest(pattern: &str, extra: &str, rate: u64, model: &str) -> autoconv::scenario::Scenario {
    scenario(
        &format!(
            r#"
            [guest]
            memory = "768MiB"
            vcpus = 2
            model = "{model}"
            [[region]]
            name = "os"
            size = "128MiB"
            pattern = "static"
            [[region]]
            name = "ws"
            size = "384MiB"
            pattern = "{pattern}"
            write_rate_pages_s = {rate}
            vcpus = 2
            {extra}
            [migration]
            auto-converge = true
            max-bandwidth = "128MiB/s"
            "#
        ),
        &[],
    )
}

#[test]
fn aggregate_matches_page_exact_on_small_guests() {
    let cases = [
        ("random", "", 400_000),
        (
            "hotcold",
            "hot_size = \"32MiB\"\nhot_writes_pct = 90",
            300_000,
        ),
        ("sequential", "", 3_000_000),
        ("random", "cpu_bound_pct = 40", 40_000),
    ];
    // Near convergence a run can hover for a few short passes, and how many is a matter of the
    // random draw (in both models); so compare over seeds: the usual throttle sequence, and
    // mean time, bytes and syncs.
    for (pattern, extra, rate) in cases {
        let agg = small_guest(pattern, extra, rate, "aggregate");
        let exact = small_guest(pattern, extra, rate, "page-exact");
        let what = format!("{pattern} {extra}");
        let stats = |s: &autoconv::scenario::Scenario| {
            let runs: Vec<_> = (1..=8u64).map(|seed| run_seed(s, seed).0).collect();
            let n = runs.len() as f64;
            let mean = |f: &dyn Fn(&autoconv::migration::MigrationOutcome) -> f64| {
                runs.iter().map(f).sum::<f64>() / n
            };
            let mut seqs: Vec<Vec<u32>> = runs.iter().map(|o| o.throttle_steps.clone()).collect();
            seqs.sort();
            let usual = seqs
                .iter()
                .max_by_key(|s| seqs.iter().filter(|t| t == s).count())
                .cloned()
                .unwrap_or_default();
            let statuses: Vec<_> = runs.iter().map(|o| o.status).collect();
            (
                (usual, statuses),
                mean(&|o| o.elapsed_ms as f64),
                mean(&|o| o.transferred_bytes as f64),
                mean(&|o| o.dirty_sync_count as f64),
            )
        };
        let (a_seq, a_ms, a_bytes, a_syncs) = stats(&agg);
        let (e_seq, e_ms, e_bytes, e_syncs) = stats(&exact);
        assert_eq!(a_seq, e_seq, "{what}");
        assert!(
            a_seq.1.iter().all(|s| *s == MigrationStatus::Completed),
            "{what}"
        );
        assert!(
            (a_ms - e_ms).abs() / e_ms < 0.04,
            "{what}: {a_ms} vs {e_ms} ms"
        );
        assert!(
            (a_bytes - e_bytes).abs() / e_bytes < 0.04,
            "{what}: {a_bytes} vs {e_bytes} B"
        );
        assert!(
            (a_syncs - e_syncs).abs() / e_syncs < 0.15,
            "{what}: {a_syncs} vs {e_syncs} syncs"
        );
    }
}

#[test]
fn at_a_tipping_point_both_models_tip_alike() {
    // 600 K writes/s into this hot/cold set sits where the sampling noise of the dirty count
    // decides whether the throttle takes one more step (70% or 80%). The page-exact model
    // draws every page; the aggregate draws the count from its exact variance. Over seeds they
    // must tip in similar proportions (here both near half) with similar mean times.
    let extra = "hot_size = \"32MiB\"\nhot_writes_pct = 90";
    let agg = small_guest("hotcold", extra, 600_000, "aggregate");
    let exact = small_guest("hotcold", extra, 600_000, "page-exact");
    let seeds = 1..=24u64;
    let tally = |s: &autoconv::scenario::Scenario| {
        let runs: Vec<_> = seeds.clone().map(|seed| run_seed(s, seed).0).collect();
        let high = runs.iter().filter(|o| o.max_throttle_pct == 80).count();
        let low = runs.iter().filter(|o| o.max_throttle_pct == 70).count();
        let mean_ms = runs.iter().map(|o| o.elapsed_ms as f64).sum::<f64>() / runs.len() as f64;
        (high, low, mean_ms)
    };
    let (ah, al, am) = tally(&agg);
    let (eh, el, em) = tally(&exact);
    assert_eq!(ah + al, 24, "aggregate outcomes outside 70/80");
    assert_eq!(eh + el, 24, "page-exact outcomes outside 70/80");
    assert!(
        ah >= 4 && eh >= 4 && al >= 4 && el >= 4,
        "both must tip both ways: {ah}/{al} vs {eh}/{el}"
    );
    assert!(
        ah.abs_diff(eh) <= 8,
        "tipping shares differ: {ah}/24 vs {eh}/24"
    );
    assert!((am - em).abs() / em < 0.02, "mean times {am} vs {em} ms");
}

fn run_bytes(s: &autoconv::scenario::Scenario, seed: u64) -> (Vec<u8>, String) {
    let (o, t) = run_seed(s, seed);
    let mut csv = Vec::new();
    write_timeseries(&mut csv, &t.samples).unwrap();
    (csv, format!("{o:?} {:?}", t.events))
}

#[test]
fn same_seed_same_bytes_different_seed_differs_where_random() {
    for model in ["aggregate", "page-exact"] {
        let s = small_guest("random", "", 400_000, model);
        assert_eq!(run_bytes(&s, 7), run_bytes(&s, 7), "{model}");
        assert_ne!(
            run_bytes(&s, 7).0,
            run_bytes(&s, 8).0,
            "{model}: seeds must matter"
        );
    }
    // A purely sequential guest has no randomness: seeds change nothing.
    let s = shipped("qemu-7.2-reference", &[]);
    assert_eq!(run_bytes(&s, 1), run_bytes(&s, 99));
}

#[test]
fn a_1_tib_guest_simulates_in_bounded_memory() {
    let s = scenario(
        r#"
        [guest]
        memory = "1TiB"
        vcpus = 64
        [[region]]
        name = "os"
        size = "64GiB"
        pattern = "static"
        [[region]]
        name = "db"
        size = "256GiB"
        pattern = "hotcold"
        hot_size = "16GiB"
        hot_writes_pct = 80
        write_rate_pages_s = 8000000
        vcpus = 48
        [[region]]
        name = "log"
        size = "32GiB"
        pattern = "sequential"
        write_rate_pages_s = 500000
        vcpus = 8
        [link]
        bandwidth = "100Gbit/s"
        [migration]
        auto-converge = true
        max-bandwidth = "10GiB/s"
        [autoconv]
        time_limit_s = 1200
        "#,
        &[],
    );
    let model =
        autoconv::sim::aggregate::AggregateModel::new(autoconv::sim::compile::layout(&s), 1);
    let mut t = autoconv::migration::Timeline::default();
    let (o, model) = autoconv::sim::simulate_with_model(&s, model, &mut t);
    assert!(
        matches!(
            o.status,
            MigrationStatus::Completed | MigrationStatus::NotConverged
        ),
        "{o:?}"
    );
    assert!(o.transferred_bytes > 64 << 30);
    // One sample per ~100 ms of migration time, not per page.
    assert!(t.samples.len() as u64 <= o.elapsed_ms / 100 + 3);
    // After hundreds of passes over 2^28 pages, the model holds a handful of segments.
    assert!(model.segments() < 100, "{}", model.segments());
}
