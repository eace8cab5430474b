//! Grid axes (`--grid NAME=START:END:STEP` or `--grid NAME=V1,V2,...`), seed sets
//! (`--seeds N|A..B`) and shards (`--shard K/N`), read from their command-line text.
//!
//! An axis is only text here: each value becomes a `NAME=VALUE` override that goes through the
//! very same `--set` machinery as `autoconv sim`, so any migration parameter or scenario value
//! can be an axis and is checked (with QEMU's wording) exactly as a `--set` would be.

use super::SweepError;
use crate::units::{parse_rate_bytes_s, parse_size_bytes};

/// Refuse grids larger than this many runs: almost certainly a typo (a step of 1 instead of 10).
/// A million keeps what a sweep holds before its first run (every value checked, one result
/// row per run) to a few hundred MB; larger studies are split with --shard.
pub const MAX_RUNS: usize = 1_000_000;

/// One grid axis: a name and the values it takes, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    /// The name as typed (a QEMU parameter or a scenario key path).
    pub name: String,
    /// The whole `--grid` argument, for messages.
    pub arg: String,
    /// Values as `--set` text, in grid order.
    pub values: Vec<String>,
}

impl Axis {
    /// Read `NAME=START:END:STEP` (numbers, or sizes/rates with units: `1GiB:4GiB:1GiB`,
    /// `256MiB/s:1GiB/s:256MiB/s`) or `NAME=V1,V2,...` (any values, e.g. `auto-converge=on,off`).
    pub fn parse(arg: &str) -> Result<Axis, SweepError> {
        let bad = |message: String| SweepError::Grid {
            arg: arg.to_string(),
            message,
        };
        let Some((name, spec)) = arg.split_once('=') else {
            return Err(bad(
                "expected NAME=START:END:STEP or NAME=V1,V2,... (e.g. cpu-throttle-initial=10:90:10)"
                    .into(),
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("the NAME before '=' is empty".into()));
        }
        let spec = spec.trim();
        let values = if spec.contains(':') {
            range_values(spec).map_err(bad)?
        } else {
            let values: Vec<String> = spec.split(',').map(|v| v.trim().to_string()).collect();
            if values.iter().any(String::is_empty) {
                return Err(bad(
                    "an empty value in the list (expected V1,V2,... or START:END:STEP)".into(),
                ));
            }
            // "10-50" reads like a range to people; say how ranges are written.
            if let [only] = &values[..] {
                if let Some((a, b)) = only.split_once('-') {
                    if !a.is_empty() && a.parse::<f64>().is_ok() && b.parse::<f64>().is_ok() {
                        return Err(bad(format!(
                            "{only:?} is not a range: write START:END:STEP (e.g. {a}:{b}:10) or list values (V1,V2,...)"
                        )));
                    }
                }
            }
            values
        };
        Ok(Axis {
            name: name.to_string(),
            arg: arg.to_string(),
            values,
        })
    }
}

/// START:END:STEP, END included when the steps land on it.
fn range_values(spec: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
    let [start, end, step] = parts[..] else {
        return Err(format!(
            "expected START:END:STEP with three parts, found {} in {spec:?}",
            parts.len()
        ));
    };
    if let (Ok(a), Ok(b), Ok(s)) = (
        start.replace('_', "").parse::<i64>(),
        end.replace('_', "").parse::<i64>(),
        step.replace('_', "").parse::<i64>(),
    ) {
        check_order(a as f64, b as f64, s as f64)?;
        let count = ((b - a) / s) as usize + 1;
        check_count(count)?;
        return Ok((0..count as i64).map(|i| (a + i * s).to_string()).collect());
    }
    if let (Ok(a), Ok(b), Ok(s)) = (
        start.parse::<f64>(),
        end.parse::<f64>(),
        step.parse::<f64>(),
    ) {
        if ![a, b, s].iter().all(|x| x.is_finite()) {
            return Err("START, END and STEP must be finite numbers".into());
        }
        check_order(a, b, s)?;
        // Print with as many decimals as the user typed, so 0.1:0.5:0.1 gives 0.3, not
        // 0.30000000000000004 (with an exponent, 4e5, the shortest exact form instead); the
        // small slack keeps END when rounding falls just short.
        let scientific = [start, end, step].iter().any(|t| t.contains(['e', 'E']));
        let decimals = [start, end, step]
            .iter()
            .map(|t| t.split_once('.').map_or(0, |(_, f)| f.len()))
            .max()
            .unwrap_or(0);
        let count = ((b - a) / s * (1.0 + 1e-12) + 1e-9).floor() as usize + 1;
        check_count(count)?;
        return Ok((0..count)
            .map(|i| {
                let v = a + i as f64 * s;
                if scientific {
                    let t = format!("{v:.9}");
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    format!("{v:.decimals$}")
                }
            })
            .collect());
    }
    // Sizes or rates with units: the values are whole bytes (or bytes/s), which every size and
    // rate key accepts.
    let rate = [start, end, step].iter().all(|t| t.ends_with("/s"));
    let parse = |t: &str| {
        if rate {
            parse_rate_bytes_s(t).map_err(|e| e.to_string())
        } else {
            parse_size_bytes(t).map_err(|e| e.to_string())
        }
    };
    let (a, b, s) = (parse(start)?, parse(end)?, parse(step)?);
    if s == 0 {
        return Err("STEP must be above 0".into());
    }
    if a > b {
        return Err(format!("START ({start}) is above END ({end})"));
    }
    let count = ((b - a) / s) as usize + 1;
    check_count(count)?;
    Ok((0..count as u64).map(|i| (a + i * s).to_string()).collect())
}

fn check_order(a: f64, b: f64, s: f64) -> Result<(), String> {
    if s <= 0.0 {
        return Err("STEP must be above 0".into());
    }
    if a > b {
        return Err(format!("START ({a}) is above END ({b})"));
    }
    Ok(())
}

fn check_count(count: usize) -> Result<(), String> {
    if count > MAX_RUNS {
        return Err(format!(
            "{count} values on one axis; at most {MAX_RUNS} runs are allowed"
        ));
    }
    Ok(())
}

/// Which seeds each grid point runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seeds {
    /// The scenario's own `seed`.
    Scenario,
    /// These, in order.
    List(Vec<u64>),
}

impl Seeds {
    /// `N` (seeds 1 to N) or `A..B` (A to B, both included).
    pub fn parse(text: &str) -> Result<Seeds, SweepError> {
        let bad = |message: &str| SweepError::Seeds {
            arg: text.to_string(),
            message: message.to_string(),
        };
        let t = text.trim();
        let (a, b) = if let Some((a, b)) = t.split_once("..") {
            let b = b.strip_prefix('=').unwrap_or(b);
            let a: u64 = a
                .trim()
                .parse()
                .map_err(|_| bad("expected N or A..B with whole numbers, e.g. 5 or 1..5"))?;
            let b: u64 = b
                .trim()
                .parse()
                .map_err(|_| bad("expected N or A..B with whole numbers, e.g. 5 or 1..5"))?;
            if a > b {
                return Err(bad("A is above B"));
            }
            (a, b)
        } else {
            let n: u64 = t
                .parse()
                .map_err(|_| bad("expected N or A..B with whole numbers, e.g. 5 or 1..5"))?;
            if n == 0 {
                return Err(bad("at least one seed is needed"));
            }
            (1, n)
        };
        if b - a >= MAX_RUNS as u64 {
            return Err(bad("too many seeds"));
        }
        Ok(Seeds::List((a..=b).collect()))
    }

    /// Seeds per grid point.
    pub fn count(&self) -> usize {
        match self {
            Seeds::Scenario => 1,
            Seeds::List(v) => v.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(arg: &str) -> Vec<String> {
        Axis::parse(arg).unwrap().values
    }

    #[test]
    fn integer_ranges_include_end_when_it_lands() {
        assert_eq!(values("a=10:30:10"), ["10", "20", "30"]);
        assert_eq!(values("a=10:35:10"), ["10", "20", "30"]);
        assert_eq!(values("a=5:5:1"), ["5"]);
    }

    #[test]
    fn float_ranges_print_as_typed() {
        assert_eq!(values("a=0.1:0.5:0.1"), ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        assert_eq!(values("a=1e5:3e5:1e5"), ["100000", "200000", "300000"]);
        assert_eq!(values("a=4e5:1.2e6:4e5"), ["400000", "800000", "1200000"]);
        assert_eq!(values("a=1.5e-1:3e-1:7.5e-2"), ["0.15", "0.225", "0.3"]);
    }

    #[test]
    fn unit_ranges_become_bytes() {
        assert_eq!(
            values("guest.memory=1GiB:3GiB:1GiB"),
            ["1073741824", "2147483648", "3221225472"]
        );
        assert_eq!(
            values("max-bandwidth=256MiB/s:512MiB/s:256MiB/s"),
            ["268435456", "536870912"]
        );
    }

    #[test]
    fn lists() {
        assert_eq!(values("auto-converge=on,off"), ["on", "off"]);
        assert_eq!(values("autoconv.qemu_version=7.2"), ["7.2"]);
    }

    #[test]
    fn bad_syntax_is_explained() {
        for (arg, needle) in [
            ("noequals", "expected NAME=START:END:STEP"),
            ("=1:2:1", "NAME before '=' is empty"),
            ("a=1:2", "three parts"),
            ("a=1:9:0", "STEP must be above 0"),
            ("a=9:1:1", "is above END"),
            ("a=1,,2", "empty value"),
            ("a=x:y:z", "cannot read"),
            ("a=0:100000000:1", "at most"),
        ] {
            let e = Axis::parse(arg).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--grid {arg}: ")), "{e}");
            assert!(e.contains(needle), "{arg}: {e}");
        }
    }

    #[test]
    fn seeds() {
        assert_eq!(Seeds::parse("3").unwrap(), Seeds::List(vec![1, 2, 3]));
        assert_eq!(Seeds::parse("4..6").unwrap(), Seeds::List(vec![4, 5, 6]));
        assert_eq!(Seeds::parse("4..=6").unwrap(), Seeds::List(vec![4, 5, 6]));
        assert!(Seeds::parse("0").is_err());
        assert!(Seeds::parse("6..4").is_err());
        assert!(Seeds::parse("x").is_err());
    }
}
