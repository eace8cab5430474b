//! How long a sweep will take, said once from its first runs, so a user can stop a sweep that
//! would run for hours and shard it instead.

/// Sweeps estimated to run longer than this are announced with how to shard them.
pub const LONG_SWEEP_S: f64 = 180.0;

/// The estimate is made once this much time has passed (or this share of the runs is done),
/// so it rests on more than the first, possibly unrepresentative, run.
const SETTLE_S: f64 = 2.0;
const SETTLE_SHARE: f64 = 0.05;

/// What to say, if anything, after `done` of `runs` finished in `elapsed_s`; `None` until
/// enough is known or when the sweep is short. `sharded` changes the advice.
pub fn long_sweep_notice(
    done: usize,
    runs: usize,
    elapsed_s: f64,
    sharded: bool,
) -> Option<String> {
    if done == 0
        || done >= runs
        || (elapsed_s < SETTLE_S && (done as f64) < SETTLE_SHARE * runs as f64)
    {
        return None;
    }
    let estimate_s = elapsed_s * runs as f64 / done as f64;
    if estimate_s < LONG_SWEEP_S {
        return None;
    }
    let advice = if sharded {
        "use more shards (a larger N) to finish sooner".to_string()
    } else {
        let n = (estimate_s / 60.0).ceil() as usize;
        format!(
            "to spread it over machines, run --shard K/N on each of N machines (e.g. N={n} for \
             about a minute each) and join them with `autoconv merge`, or --shard auto in a Slurm \
             job array or a Kubernetes Indexed Job (deploy/ has both)"
        )
    };
    Some(format!(
        "this sweep will take about {} ({runs} runs, from the first {done} in {elapsed_s:.1} s); {advice}",
        human_duration(estimate_s)
    ))
}

fn human_duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sweeps_and_early_guesses_say_nothing() {
        // 1000 runs at 10 ms each: 10 s in all.
        assert_eq!(long_sweep_notice(300, 1000, 3.0, false), None);
        // Too early to tell (1 run of 10 000 after 0.1 s).
        assert_eq!(long_sweep_notice(1, 10_000, 0.1, false), None);
        // Finished.
        assert_eq!(long_sweep_notice(10, 10, 500.0, false), None);
    }

    #[test]
    fn long_sweeps_are_estimated_with_advice() {
        // 100 of 9801 runs in 2.5 s: 245 s.
        let s = long_sweep_notice(100, 9801, 2.5, false).unwrap();
        assert!(
            s.starts_with(
                "this sweep will take about 4 min (9801 runs, from the first 100 in 2.5 s)"
            ),
            "{s}"
        );
        assert!(s.contains("N=5"), "{s}");
        assert!(s.contains("--shard auto"), "{s}");
        // A large share done early is enough: 600 of 10 000 in 1 s estimates 16.7 s: silent.
        assert_eq!(long_sweep_notice(600, 10_000, 1.0, false), None);
        let s = long_sweep_notice(10, 1000, 30.0, true).unwrap();
        assert!(
            s.contains("about 50 min") && s.contains("more shards"),
            "{s}"
        );
        let s = long_sweep_notice(1, 1000, 30.0, true).unwrap();
        assert!(s.contains("about 8.3 h"), "{s}");
    }
}
