//! Policy sweeps: every combination of a grid of parameter (or scenario) values, each with one
//! or more seeds, simulated in parallel; one [`RunRow`] per run.
//!
//! The grid is checked whole before anything runs: every axis value and every combination is
//! built into a scenario through the same `--set` machinery as `autoconv sim`, so a value QEMU
//! would refuse is refused here with QEMU's wording, naming the `--grid` it came from.
//!
//! Results come back in run order whatever the thread scheduling (run index = combination
//! index x seeds + seed position, first axis slowest), so the CSV is byte-identical from run to
//! run, across `-j` values, and between a sharded sweep merged and an unsharded one.

pub mod eta;
pub mod grid;
pub mod rank;
pub mod select;
pub mod shard;
pub mod table;

pub use grid::{Axis, Seeds};
pub use rank::{rank_combos, summarize, ComboSummary, Metric, Stats};
pub use select::{axis_scale, select_axes, AxisScale, AxisSelection, SelectError};
pub use shard::{ResolvedShard, Shard};
pub use table::{merge_tables, RunMetrics, RunRow, RunsTable, TableError};

use crate::scenario::doc::Origin;
use crate::scenario::{Override, Scenario, ScenarioError, ScenarioSource};
use crate::sim;
use rayon::prelude::*;

/// Why a sweep cannot run.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum SweepError {
    /// --grid {arg}: {message}
    Grid {
        /// The axis as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// --seeds {arg}: {message}
    Seeds {
        /// As given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// --shard {arg}: {message}
    Shard {
        /// As given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// --set {arg}: {message}
    Set {
        /// As given.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// grid point {point}: {message}
    Point {
        /// NAME=VALUE of every axis.
        point: String,
        /// What the scenario reader said.
        message: String,
    },
    /// the grid has {runs} runs; at most {max} are allowed (use a larger STEP, or --shard across
    /// machines)
    TooLarge {
        /// Runs asked for.
        runs: u128,
        /// [`grid::MAX_RUNS`].
        max: usize,
    },
    /// {0}
    Scenario(#[from] ScenarioError),
}

/// What to sweep, besides the scenario file.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// `--set` arguments applied to every run (before the grid values).
    pub sets: Vec<String>,
    /// Grid axes, first one slowest.
    pub axes: Vec<Axis>,
    /// Seeds per grid point.
    pub seeds: Seeds,
    /// Run only one slice.
    pub shard: Option<Shard>,
}

/// A checked sweep, ready to run.
#[derive(Debug)]
pub struct Plan {
    source: ScenarioSource,
    sets: Vec<String>,
    base: Vec<Override>,
    axes: Vec<Axis>,
    /// `[axis][value]`, each with its position among a run's overrides as its index.
    axis_overrides: Vec<Vec<Override>>,
    seeds: Seeds,
    shard: Option<Shard>,
    combos: usize,
    scenario_name: String,
}

/// Build one grid point: `base` then the axis overrides.
fn build(
    source: &ScenarioSource,
    base: &[Override],
    point: &[&Override],
) -> Result<Scenario, ScenarioError> {
    let mut all = Vec::with_capacity(base.len() + point.len());
    all.extend_from_slice(base);
    all.extend(point.iter().map(|o| (*o).clone()));
    source.build_with(&all)
}

/// The reader's message for an error caused by grid values, without the "--set NAME=VALUE"
/// it names them by (the caller says which `--grid` and value); other errors whole.
fn describe(e: &ScenarioError, grid: &[&Override]) -> String {
    let is_grid = |arg: &str| grid.iter().any(|o| o.arg == arg);
    match e {
        ScenarioError::Invalid { at, key, message }
            if at.strip_prefix("--set ").is_some_and(is_grid) =>
        {
            // QEMU's parameter messages name the parameter already.
            if key.starts_with("migration.") {
                message.clone()
            } else {
                format!("`{key}`: {message}")
            }
        }
        ScenarioError::BadSet { arg, message } if is_grid(arg) => message.clone(),
        other => other.to_string(),
    }
}

impl Plan {
    /// Check everything: base scenario, each axis value on its own, then every combination.
    pub fn new(source: ScenarioSource, spec: SweepSpec) -> Result<Plan, SweepError> {
        for s in &spec.sets {
            // The runs CSV keeps the --set list in one cell, separated by ';'.
            if s.contains(';') {
                return Err(SweepError::Set {
                    arg: s.clone(),
                    message: "a sweep cannot record a value containing ';'".into(),
                });
            }
        }
        let base: Vec<Override> = spec
            .sets
            .iter()
            .enumerate()
            .map(|(i, s)| crate::scenario::doc::parse_override(s, i))
            .collect::<Result<_, _>>()?;
        let scenario = source.build_with(&base)?;
        // Sized before anything per value or per run is built: checking each value builds a
        // scenario, and a grid that will be refused must not cost minutes and gigabytes first.
        let runs = spec
            .axes
            .iter()
            .map(|a| a.values.len() as u128)
            .product::<u128>()
            * spec.seeds.count() as u128;
        if runs > grid::MAX_RUNS as u128 {
            return Err(SweepError::TooLarge {
                runs,
                max: grid::MAX_RUNS,
            });
        }
        let mut axis_overrides = Vec::new();
        for (a, axis) in spec.axes.iter().enumerate() {
            let bad = |message: String| SweepError::Grid {
                arg: axis.arg.clone(),
                message,
            };
            if axis.name == "seed" {
                return Err(bad(
                    "the seed is not a grid axis: use --seeds N or --seeds A..B".into(),
                ));
            }
            let index = base.len() + a;
            let overrides: Vec<Override> = axis
                .values
                .iter()
                .map(|v| crate::scenario::doc::parse_override(&format!("{}={v}", axis.name), index))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            let path = &overrides[0].path;
            if let Some(prev) = spec.axes[..a]
                .iter()
                .zip(&axis_overrides)
                .find(|(_, o): &(_, &Vec<Override>)| &o[0].path == path)
            {
                return Err(bad(format!(
                    "`{}` is already an axis (--grid {})",
                    path.join("."),
                    prev.0.arg
                )));
            }
            if let Some(set) = base.iter().find(|o| &o.path == path) {
                return Err(bad(format!(
                    "--set {} names the same value; drop one of them",
                    set.arg
                )));
            }
            if path.len() == 2 && path[0] == "migration" {
                if let Some(e) = unknown_parameter(&path[1]) {
                    return Err(bad(e));
                }
            }
            // Each value on its own (base + this value) first, so the message names the value
            // at fault; rules between axes are checked on whole combinations below.
            for o in &overrides {
                let mut alone = o.clone();
                alone.value.origin = Origin::Set(base.len());
                if let Err(e) = build(&source, &base, &[&alone]) {
                    let value = o.arg.split_once('=').map_or("", |(_, v)| v);
                    return Err(bad(format!("value {value}: {}", describe(&e, &[&alone]))));
                }
            }
            axis_overrides.push(overrides);
        }
        let combos: u128 = axis_overrides.iter().map(|v| v.len() as u128).product();
        let runs = combos * spec.seeds.count() as u128;
        if runs > grid::MAX_RUNS as u128 {
            return Err(SweepError::TooLarge {
                runs,
                max: grid::MAX_RUNS,
            });
        }
        let plan = Plan {
            scenario_name: scenario.name.clone(),
            source,
            sets: spec.sets,
            base,
            axes: spec.axes,
            axis_overrides,
            seeds: spec.seeds,
            shard: spec.shard,
            combos: combos as usize,
        };
        if plan.axes.len() > 1 {
            // Rules between values (max-cpu-throttle >= cpu-throttle-initial, regions that
            // must fit in memory) can only be checked on whole combinations. Report the first
            // failing one in grid order, whatever the thread scheduling.
            let first_bad = (0..plan.combos)
                .into_par_iter()
                .filter_map(|c| plan.build_combo(c).err().map(|e| (c, e)))
                .min_by_key(|(c, _)| *c);
            if let Some((c, e)) = first_bad {
                return Err(plan.point_error(c, &e));
            }
        }
        Ok(plan)
    }

    /// The scenario file as the user named it.
    pub fn scenario_path(&self) -> &str {
        &self.source.path
    }

    /// The scenario's name (after `--set`s).
    pub fn scenario_name(&self) -> &str {
        &self.scenario_name
    }

    /// The axes.
    pub fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// The seeds.
    pub fn seeds(&self) -> &Seeds {
        &self.seeds
    }

    /// The shard, if any.
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }

    /// Grid points.
    pub fn combos(&self) -> usize {
        self.combos
    }

    /// Runs in the whole sweep (all shards).
    pub fn total_runs(&self) -> usize {
        self.combos * self.seeds.count()
    }

    /// Run indices this plan runs (its shard's, or all).
    pub fn run_indices(&self) -> Vec<usize> {
        (0..self.total_runs())
            .filter(|&i| self.shard.is_none_or(|s| s.owns(i)))
            .collect()
    }

    /// Value index on each axis of combination `c` (first axis slowest).
    fn value_indices(&self, mut c: usize) -> Vec<usize> {
        let mut idx = vec![0; self.axes.len()];
        for (a, values) in self.axis_overrides.iter().enumerate().rev() {
            idx[a] = c % values.len();
            c /= values.len();
        }
        idx
    }

    fn point_text(&self, c: usize) -> String {
        self.value_indices(c)
            .iter()
            .zip(&self.axes)
            .map(|(&v, axis)| format!("{}={}", axis.name, axis.values[v]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn point_overrides(&self, c: usize) -> Vec<&Override> {
        self.value_indices(c)
            .iter()
            .zip(&self.axis_overrides)
            .map(|(&v, overrides)| &overrides[v])
            .collect()
    }

    fn point_error(&self, c: usize, e: &ScenarioError) -> SweepError {
        SweepError::Point {
            point: self.point_text(c),
            message: describe(e, &self.point_overrides(c)),
        }
    }

    fn build_combo(&self, c: usize) -> Result<Scenario, ScenarioError> {
        build(&self.source, &self.base, &self.point_overrides(c))
    }

    /// Simulate run `index` of the whole sweep.
    pub fn run_one(&self, index: usize) -> Result<RunRow, SweepError> {
        self.run_from(index, &[])
    }

    /// The seed of seed position `s` for a grid point's `scenario`.
    fn seed(&self, scenario: &Scenario, s: usize) -> u64 {
        match &self.seeds {
            Seeds::Scenario => scenario.seed,
            Seeds::List(list) => list[s],
        }
    }

    /// Per seed position, the beginning its runs share when the grid varies only what the
    /// throttle policy reads ([`sim::SharedStarts`]): simulated once here instead of once per
    /// run. Worth it from 3 grid points on (it costs about two runs' beginnings).
    fn shared_starts(&self) -> Vec<Option<sim::SharedStarts>> {
        if self.combos < 3 {
            return Vec::new();
        }
        let Ok(first) = self.build_combo(0) else {
            return Vec::new();
        };
        (0..self.seeds.count())
            .into_par_iter()
            .map(|s| sim::SharedStarts::new(&first, self.seed(&first, s)))
            .collect()
    }

    /// Run `index`, from its seed's shared start where there is one and it applies.
    fn run_from(
        &self,
        index: usize,
        starts: &[Option<sim::SharedStarts>],
    ) -> Result<RunRow, SweepError> {
        let seeds = self.seeds.count();
        let (c, s) = (index / seeds, index % seeds);
        let scenario = self.build_combo(c).map_err(|e| self.point_error(c, &e))?;
        let seed = self.seed(&scenario, s);
        let shared = starts
            .get(s)
            .and_then(Option::as_ref)
            .and_then(|start| start.finish(&scenario, seed));
        let outcome = shared.unwrap_or_else(|| sim::simulate(&scenario, seed, &mut ()));
        Ok(RunRow {
            run_index: index,
            run_count: self.total_runs(),
            scenario: self.source.path.clone(),
            sets: self.sets.clone(),
            axis_values: self
                .value_indices(c)
                .iter()
                .zip(&self.axes)
                .map(|(&v, axis)| axis.values[v].clone())
                .collect(),
            seed,
            metrics: RunMetrics::from(&outcome),
        })
    }

    /// Run this plan's runs on the current rayon pool; `done` is called after each run (for a
    /// progress bar). Rows come back in run order.
    pub fn run(&self, done: &(dyn Fn() + Sync)) -> Result<RunsTable, SweepError> {
        let starts = self.shared_starts();
        let rows = self
            .run_indices()
            .into_par_iter()
            .map(|i| {
                let row = self.run_from(i, &starts);
                done();
                row
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunsTable {
            axes: self.axes.iter().map(|a| a.name.clone()).collect(),
            rows,
        })
    }
}

/// QEMU's "is unexpected" for a name that is not a migration parameter.
fn unknown_parameter(name: &str) -> Option<String> {
    use crate::migration::{MigrationParameters, ParamValue};
    if MigrationParameters::canonical_name(name).is_some() {
        return None;
    }
    MigrationParameters::default()
        .set(name, &ParamValue::Int(0))
        .err()
        .map(|e| e.to_string())
}
