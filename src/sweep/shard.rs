//! Slices of a sweep (`--shard K/N`), and `--shard auto`: the slice a batch system's array job
//! gives this process (a Slurm job array or a Kubernetes Indexed Job).
//!
//! The environment is passed in as a lookup function, so the rules are tested without touching
//! the process's own environment.

use super::SweepError;

/// The K-th of N slices of a sweep (1-based), taking every N-th run so each slice gets a fair
/// mix of cheap and expensive grid points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, 1..=N.
    pub k: usize,
    /// How many slices.
    pub n: usize,
}

/// A shard and where it came from, to be said before the sweep starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedShard {
    /// The slice.
    pub shard: Shard,
    /// How it was found: `given`, or the variables read, e.g.
    /// `Slurm array task 3 of indices 0-7 (SLURM_ARRAY_TASK_ID=3)`.
    pub source: String,
}

/// Variables Slurm sets in each task of a job array (`sbatch --array=...`).
const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const SLURM_MAX: &str = "SLURM_ARRAY_TASK_MAX";
const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// The variable Kubernetes sets in each pod of an Indexed Job (0-based).
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// Read `K/N`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = |message: &str| shard_error(text, message);
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| bad("expected K/N, e.g. 2/8 for the second of 8 slices"))?;
        let k: usize = k
            .trim()
            .parse()
            .map_err(|_| bad("expected K/N with whole numbers, e.g. 2/8"))?;
        let n = parse_count(text, n)?;
        if k == 0 || k > n {
            return Err(bad("K must be between 1 and N"));
        }
        Ok(Shard { k, n })
    }

    /// Read `K/N`, `auto` or `auto/N`, taking K (and N) for `auto` from `env`: a Slurm job
    /// array (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT` or `_MIN`/`_MAX`/`_STEP`)
    /// or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, 0-based; it does not carry the
    /// Job's completion count, so N must be given: `auto/N`).
    pub fn resolve(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedShard, SweepError> {
        let given_n = match text.trim() {
            "auto" => None,
            t => match t.strip_prefix("auto/") {
                Some(n) => Some(parse_count(text, n)?),
                None => {
                    return Ok(ResolvedShard {
                        shard: Shard::parse(text)?,
                        source: "given".to_string(),
                    })
                }
            },
        };
        let bad = |message: String| shard_error(text, &message);
        let slurm = env(SLURM_ID);
        let k8s = env(K8S_INDEX);
        let (shard, source) = match (slurm, k8s) {
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "both {SLURM_ID} and {K8S_INDEX} are set, so it is unclear which batch system \
                     this task belongs to; give --shard K/N"
                )))
            }
            (Some(id), None) => slurm_shard(&id, &env).map_err(bad)?,
            (None, Some(index)) => {
                let index: usize = index
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{K8S_INDEX}={index} is not a whole number")))?;
                let n = given_n.ok_or_else(|| {
                    bad(format!(
                        "{K8S_INDEX}={index} says which pod of a Kubernetes Indexed Job this is, \
                         but not how many there are: give --shard auto/N with N = the Job's \
                         spec.completions"
                    ))
                })?;
                if index >= n {
                    return Err(bad(format!(
                        "{K8S_INDEX}={index} is not below N={n} (indices run 0 to N-1): is N \
                         the Job's spec.completions?"
                    )));
                }
                (
                    Shard { k: index + 1, n },
                    format!(
                        "Kubernetes Indexed Job pod {index} of 0-{} ({K8S_INDEX}={index})",
                        n - 1
                    ),
                )
            }
            (None, None) => {
                return Err(bad(format!(
                    "auto needs a Slurm job array ({SLURM_ID}) or a Kubernetes Indexed Job \
                     ({K8S_INDEX}) in the environment, and neither is set; give --shard K/N"
                )))
            }
        };
        if let Some(n) = given_n {
            if n != shard.n {
                return Err(bad(format!(
                    "N={n} was given but the job array has {} tasks: every task must use the \
                     same N, or runs go missing",
                    shard.n
                )));
            }
        }
        Ok(ResolvedShard { shard, source })
    }

    /// Whether run `index` (0-based, over the whole sweep) belongs to this slice.
    pub fn owns(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

fn shard_error(arg: &str, message: &str) -> SweepError {
    SweepError::Shard {
        arg: arg.to_string(),
        message: message.to_string(),
    }
}

fn parse_count(arg: &str, n: &str) -> Result<usize, SweepError> {
    match n.trim().parse::<usize>() {
        Ok(0) => Err(shard_error(arg, "N must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(shard_error(
            arg,
            "expected K/N with whole numbers, e.g. 2/8",
        )),
    }
}

/// This task's slice of a Slurm job array. Slurm numbers tasks by the indices of `--array`
/// (`0-7`, `1-8`, `0-14:2`); the slices are their positions in that list. Arrays with gaps
/// (`--array=1,3,7`) have no position Slurm tells the task, so they are refused.
fn slurm_shard(id: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(Shard, String), String> {
    let num = |name: &str, text: &str| -> Result<usize, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{name}={text} is not a whole number"))
    };
    let id_n = num(SLURM_ID, id)?;
    let read = |name: &str| -> Result<Option<usize>, String> {
        env(name).map(|v| num(name, &v)).transpose()
    };
    let (min, max) = match (read(SLURM_MIN)?, read(SLURM_MAX)?) {
        (Some(min), Some(max)) if min <= max => (min, max),
        (Some(min), Some(max)) => {
            return Err(format!("{SLURM_MIN}={min} is above {SLURM_MAX}={max}"))
        }
        _ => {
            return Err(format!(
                "{SLURM_ID}={id} is set but {SLURM_MIN} and {SLURM_MAX} are not: is this a \
                 job array task (sbatch --array)?"
            ))
        }
    };
    let step = read(SLURM_STEP)?.unwrap_or(1).max(1);
    let n = (max - min) / step + 1;
    if let Some(count) = read(SLURM_COUNT)? {
        if count != n {
            return Err(format!(
                "the job array's indices are not evenly spaced ({SLURM_COUNT}={count} tasks \
                 between {min} and {max} in steps of {step}); submit it as --array=0-{} or give \
                 --shard K/N",
                count.saturating_sub(1)
            ));
        }
    }
    if id_n < min || id_n > max || (id_n - min) % step != 0 {
        return Err(format!(
            "{SLURM_ID}={id_n} is not one of the array's indices {min}-{max}:{step}"
        ));
    }
    let k = (id_n - min) / step + 1;
    let range = if step == 1 {
        format!("{min}-{max}")
    } else {
        format!("{min}-{max}:{step}")
    };
    Ok((
        Shard { k, n },
        format!("Slurm array task {id_n} of indices {range} ({SLURM_ID}={id_n})"),
    ))
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn resolve(text: &str, vars: &[(&str, &str)]) -> Result<Shard, String> {
        Shard::resolve(text, env_of(vars))
            .map(|r| r.shard)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn given_slices() {
        let s = Shard::parse("2/3").unwrap();
        assert_eq!((0..7).filter(|&i| s.owns(i)).collect::<Vec<_>>(), [1, 4]);
        for bad in ["0/3", "4/3", "1/0", "1-3", "a/b", "auto"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        // A given K/N ignores the environment.
        assert_eq!(resolve("2/3", &[(SLURM_ID, "7")]), Ok(Shard { k: 2, n: 3 }));
    }

    #[test]
    fn every_slurm_task_gets_its_own_slice() {
        // --array=0-3, --array=1-4 and --array=10-16:2 each give slices 1..=4, one per task.
        for (min, max, step) in [(0, 3, 1), (1, 4, 1), (10, 16, 2)] {
            let mut ks = Vec::new();
            for id in (min..=max).step_by(step) {
                let (id, min_s, max_s, step_s) = (
                    id.to_string(),
                    min.to_string(),
                    max.to_string(),
                    step.to_string(),
                );
                let vars = [
                    (SLURM_ID, id.as_str()),
                    (SLURM_MIN, min_s.as_str()),
                    (SLURM_MAX, max_s.as_str()),
                    (SLURM_STEP, step_s.as_str()),
                    (SLURM_COUNT, "4"),
                ];
                let s = resolve("auto", &vars).unwrap();
                assert_eq!(s.n, 4);
                ks.push(s.k);
                assert_eq!(resolve("auto/4", &vars).unwrap(), s);
            }
            assert_eq!(ks, [1, 2, 3, 4], "array {min}-{max}:{step}");
        }
    }

    #[test]
    fn kubernetes_indexed_job_needs_n() {
        assert_eq!(
            resolve("auto/8", &[(K8S_INDEX, "0")]),
            Ok(Shard { k: 1, n: 8 })
        );
        assert_eq!(
            resolve("auto/8", &[(K8S_INDEX, "7")]),
            Ok(Shard { k: 8, n: 8 })
        );
        let e = resolve("auto", &[(K8S_INDEX, "3")]).unwrap_err();
        assert!(e.contains("give --shard auto/N"), "{e}");
        let e = resolve("auto/8", &[(K8S_INDEX, "8")]).unwrap_err();
        assert!(e.contains("not below N=8"), "{e}");
    }

    /// `--shard` text, the environment, and what the refusal must say.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn what_cannot_be_sliced_is_refused() {
        let cases: [Case; 7] = [
            ("auto", &[], "neither is set"),
            ("auto", &[(SLURM_ID, "1")], "is this a job array task"),
            (
                "auto",
                &[
                    (SLURM_ID, "3"),
                    (SLURM_MIN, "1"),
                    (SLURM_MAX, "7"),
                    (SLURM_COUNT, "3"),
                ],
                "not evenly spaced",
            ),
            (
                "auto/5",
                &[(SLURM_ID, "1"), (SLURM_MIN, "0"), (SLURM_MAX, "3")],
                "N=5 was given but the job array has 4 tasks",
            ),
            (
                "auto",
                &[(SLURM_ID, "9"), (SLURM_MIN, "0"), (SLURM_MAX, "3")],
                "not one of the array's indices",
            ),
            ("auto", &[(SLURM_ID, "1"), (K8S_INDEX, "1")], "both"),
            ("auto/0", &[(K8S_INDEX, "0")], "N must be at least 1"),
        ];
        for (text, vars, needle) in cases {
            let e = resolve(text, vars).unwrap_err();
            assert!(e.starts_with(&format!("--shard {text}: ")), "{e}");
            assert!(e.contains(needle), "{text} {vars:?}: {e}");
        }
    }
}
