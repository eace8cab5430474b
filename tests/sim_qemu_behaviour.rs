//! The simulator reproduces QEMU's auto-converge behaviour end to end.

mod common;
use autoconv::migration::{Event, MigrationStatus, SyncReason};
use common::*;

#[test]
fn default_policy_steps_20_to_99() {
    // dma.toml cannot converge: the throttle walks QEMU's whole default sequence.
    let (o, _) = run(&shipped("dma", &[]));
    assert_eq!(o.status, MigrationStatus::NotConverged);
    assert_eq!(o.throttle_steps, vec![20, 30, 40, 50, 60, 70, 80, 90, 99]);
}

#[test]
fn initial_5_increment_25_max_95() {
    let s = shipped(
        "dma",
        &[
            "cpu-throttle-initial=5",
            "cpu-throttle-increment=25",
            "max-cpu-throttle=95",
        ],
    );
    let (o, _) = run(&s);
    assert_eq!(o.throttle_steps, vec![5, 30, 55, 80, 95]);
    assert_eq!(o.max_throttle_pct, 95);
}

#[test]
fn the_x_aliases_of_qemu_2_5_work() {
    let s = shipped(
        "dma",
        &["x-cpu-throttle-initial=30", "x-cpu-throttle-increment=15"],
    );
    let (o, _) = run(&s);
    assert_eq!(o.throttle_steps, vec![30, 45, 60, 75, 90, 99]);
}

#[test]
fn throttle_never_rises_faster_than_one_step_per_two_qualifying_periods() {
    for name in ["heavy", "dma", "hotcold", "big", "qemu-7.2-reference"] {
        let (_, t) = run(&shipped(name, &[]));
        // Syncs that evaluated the trigger are >= 1 s apart; between two steps there must be
        // at least two of them, so at least two syncs and more than 2 s.
        let mut syncs_since_step = 2;
        let mut last_step_ms: Option<u64> = None;
        for e in &t.events {
            match e {
                Event::DirtySync { .. } => syncs_since_step += 1,
                Event::ThrottleSet { t_ms, .. } => {
                    assert!(
                        syncs_since_step >= 2,
                        "{name}: step at {t_ms} ms after {syncs_since_step} syncs"
                    );
                    if let Some(prev) = last_step_ms {
                        assert!(t_ms - prev > 2000, "{name}: steps at {prev} and {t_ms} ms");
                    }
                    syncs_since_step = 0;
                    last_step_ms = Some(*t_ms);
                }
                _ => {}
            }
        }
    }
}

/// A sweep over 2 GiB dirtying `factor` times what 256 MiB/s carries, when unthrottled; no
/// fault cost, so the dirty rate is exactly proportional to the guest's CPU share.
fn proportional_guest(factor: f64, sets: &[&str]) -> autoconv::scenario::Scenario {
    let link_pages_s = (256u64 << 20) as f64 / 4104.0;
    let rate = factor * link_pages_s;
    scenario(
        &format!(
            r#"
            [guest]
            memory = "2GiB"
            [[region]]
            name = "ws"
            size = "2GiB"
            pattern = "sequential"
            write_rate_pages_s = {rate}
            [host]
            dirty_fault_us = 0
            dirty_sync_us_per_gib = 0
            [migration]
            auto-converge = true
            max-bandwidth = "256MiB/s"
            cpu-throttle-initial = 20
            cpu-throttle-increment = 30
            "#
        ),
        sets,
    )
}

#[test]
fn throttle_settles_at_first_step_where_dirty_is_below_threshold() {
    // Dirtying 2.2x the link when unthrottled: at 20% and 50% the guest still dirties more than
    // it can send (so it cannot converge there), at 80% it dirties 0.44x. The first step of the
    // sequence 20, 50, 80, 99 where dirty <= 50% x transferred is 80: the throttle must stop
    // there, never reaching 99.
    let factor = 2.2;
    let (o, _) = run(&proportional_guest(factor, &[]));
    let expected = [20u32, 50, 80, 99]
        .into_iter()
        .find(|p| factor * (1.0 - f64::from(*p) / 100.0) * 4096.0 / 4104.0 <= 0.5)
        .unwrap();
    assert_eq!(expected, 80);
    assert_eq!(o.status, MigrationStatus::Completed, "{o:?}");
    assert_eq!(o.throttle_steps, vec![20, 50, 80]);
    assert_eq!(o.max_throttle_pct, expected);
}

#[test]
fn tailslow_stops_short_of_the_full_increment() {
    let (plain, _) = run(&proportional_guest(2.2, &[]));
    let (slow, _) = run(&proportional_guest(2.2, &["cpu-throttle-tailslow=on"]));
    assert_eq!(slow.status, MigrationStatus::Completed);
    assert_eq!(
        slow.throttle_steps[0], 20,
        "the first step is always cpu-throttle-initial"
    );
    for w in slow.throttle_steps.windows(2) {
        assert!(
            w[1] > w[0] && w[1] - w[0] <= 30,
            "{:?}",
            slow.throttle_steps
        );
    }
    // Tailslow aims at the CPU share where dirtying meets the threshold (~77% here), so the
    // guest loses less CPU than with the full 30-point steps that overshoot to 80%.
    assert!(slow.max_throttle_pct < plain.max_throttle_pct, "{slow:?}");
    assert!(slow.max_throttle_pct >= 75, "{slow:?}");
}

#[test]
fn qemu_7_2_reference_run_is_reproduced() {
    let (o, t) = run(&shipped("qemu-7.2-reference", &[]));
    // The real QEMU 7.2 run: 20, 30, ..., 90, 99, one step every 2 syncs, 23 syncs, 71.3 s.
    assert_eq!(o.status, MigrationStatus::Completed);
    assert_eq!(o.throttle_steps, vec![20, 30, 40, 50, 60, 70, 80, 90, 99]);
    assert_eq!(o.dirty_sync_count, 23);
    let total = o.total_time_ms.unwrap() as f64;
    assert!(
        (total - 71_297.0).abs() / 71_297.0 < 0.05,
        "total {total} ms"
    );
    // QEMU stepped at syncs 3, 5, 7, ..., 19.
    let mut sync = 0;
    let mut step_syncs = Vec::new();
    for e in &t.events {
        match e {
            Event::DirtySync {
                dirty_sync_count, ..
            } => sync = *dirty_sync_count,
            Event::ThrottleSet { .. } => step_syncs.push(sync),
            _ => {}
        }
    }
    assert_eq!(step_syncs, vec![3, 5, 7, 9, 11, 13, 15, 17, 19]);
    // At 99% the guest dirtied ~3,156 pages/s (the fault cost bounds it); within 15%.
    let at_99 = t
        .samples
        .iter()
        .rev()
        .find(|s| s.throttle_pct == 99 && s.dirty_pages_rate > 0 && s.dirty_pages_rate < 10_000)
        .map(|s| s.dirty_pages_rate)
        .unwrap();
    assert!(
        (at_99 as f64 - 3156.0).abs() / 3156.0 < 0.15,
        "{at_99} pages/s at 99%"
    );
}

#[test]
fn periodic_sync_exists_from_qemu_9_2() {
    // At 512 MiB/s big.toml's passes take ~24 s: QEMU 9.2+ forces a sync every 5 s in between.
    let bw = "max-bandwidth=512MiB/s";
    let (new, tn) = run(&shipped("big", &[bw, "autoconv.qemu_version=10.2"]));
    let (old, to) = run(&shipped("big", &[bw, "autoconv.qemu_version=7.2"]));
    let periodic = |t: &autoconv::migration::Timeline| {
        syncs(t)
            .iter()
            .filter(|(_, _, r)| *r == SyncReason::Periodic)
            .count()
    };
    assert!(periodic(&tn) > 0);
    assert_eq!(periodic(&to), 0);
    // A forced sync only when no sync happened since the previous 5 s tick: so at least
    // ~5 s after the previous sync (event times carry the harvest's cost and the loop's
    // reaction time to the tick, a few hundred ms at most).
    let s = syncs(&tn);
    for w in s.windows(2) {
        if w[1].2 == SyncReason::Periodic {
            assert!(w[1].0 - w[0].0 >= 4_700, "{:?}", w);
        }
    }
    // More chances to step: the throttle reaches its level sooner with the periodic sync.
    let first_at = |t: &autoconv::migration::Timeline, pct| {
        throttle_sets(t)
            .iter()
            .find(|(_, p)| *p == pct)
            .map(|(ms, _)| *ms)
    };
    assert!(first_at(&tn, 30) < first_at(&to, 30), "{new:?} {old:?}");
}

#[test]
fn auto_converge_is_what_makes_heavy_converge() {
    let (on, _) = run(&shipped("heavy", &[]));
    let (off, _) = run(&shipped("heavy", &["auto-converge=off"]));
    assert_eq!(on.status, MigrationStatus::Completed);
    assert!(!on.throttle_steps.is_empty());
    assert_eq!(off.status, MigrationStatus::NotConverged);
    assert!(off.throttle_steps.is_empty());
    let (light, _) = run(&shipped("light", &[]));
    assert_eq!(light.status, MigrationStatus::Completed);
    assert!(
        light.throttle_steps.is_empty(),
        "light converges unthrottled"
    );
    let (dma, _) = run(&shipped("dma", &[]));
    assert_eq!(dma.status, MigrationStatus::NotConverged);
    assert_eq!(
        dma.max_throttle_pct, 99,
        "throttled to the maximum and still not converged"
    );
}

#[test]
fn throttle_share_matches_qemu_timeslice_arithmetic() {
    // Guest CPU in the timeseries is 1 - p while throttled: 10 ms run per 10/(1-p) ms period.
    let (_, t) = run(&shipped("dma", &[]));
    let near: Vec<_> = t
        .samples
        .iter()
        .filter(|s| s.throttle_pct == 50)
        .map(|s| s.guest_cpu_pct)
        .collect();
    let mean = near.iter().sum::<f64>() / near.len() as f64;
    assert!(
        (mean - 50.0).abs() < 1.0,
        "mean CPU at 50% throttle: {mean}"
    );
    let at_99: Vec<_> = t
        .samples
        .iter()
        .filter(|s| s.throttle_pct == 99 && s.status == MigrationStatus::Active)
        .map(|s| s.guest_cpu_pct)
        .collect();
    let mean = at_99.iter().sum::<f64>() / at_99.len() as f64;
    assert!((mean - 1.0).abs() < 0.5, "mean CPU at 99% throttle: {mean}");
}
