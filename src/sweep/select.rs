//! Which slice of a sweep to show: the axis across, the axis up (if any), and the runs that
//! `--where NAME=VALUE` keeps. Every other axis must then hold one value, so a picture never
//! mixes grid points silently.

use super::table::RunsTable;

/// A selection that cannot be made from the table.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum SelectError {
    /// the sweep has no grid axis: nothing to plot against (plot a run directory instead)
    NoAxis,
    /// no grid axis `{name}` (axes: {axes})
    UnknownAxis {
        /// The name asked for.
        name: String,
        /// The table's axes, comma-separated.
        axes: String,
    },
    /// --where {0}: expected NAME=VALUE
    BadWhere(String),
    /// no run matches the --where filters
    NoMatch,
    /// the sweep has {axes} grid axes: choose what to plot with --x and --y and fix `{axis}` with
    /// --where {axis}=VALUE (values: {values})
    Unfixed {
        /// How many grid axes the sweep has.
        axes: usize,
        /// The axis left with several values.
        axis: String,
        /// Its values, comma-separated.
        values: String,
    },
}

/// The runs to show and how they are laid out.
#[derive(Clone, Debug)]
pub struct AxisSelection {
    /// The axis across (index into the table's axes).
    pub x: usize,
    /// The axis up, if two are shown.
    pub y: Option<usize>,
    /// Axes fixed by `--where`, with their value.
    pub fixed: Vec<(usize, String)>,
    /// The rows kept, under the table's axes.
    pub table: RunsTable,
}

impl AxisSelection {
    /// The values `axis` takes among the kept rows, in order of first appearance.
    pub fn values(&self, axis: usize) -> Vec<String> {
        distinct(&self.table, axis)
    }
}

fn distinct(table: &RunsTable, axis: usize) -> Vec<String> {
    let mut v: Vec<&String> = Vec::new();
    for r in &table.rows {
        if !v.contains(&&r.axis_values[axis]) {
            v.push(&r.axis_values[axis]);
        }
    }
    v.into_iter().cloned().collect()
}

/// Choose the axes to show: `x` and `y` by name (default: the first axes not fixed), `filters`
/// as NAME=VALUE.
pub fn select_axes(
    table: &RunsTable,
    x: Option<&str>,
    y: Option<&str>,
    filters: &[String],
) -> Result<AxisSelection, SelectError> {
    if table.axes.is_empty() {
        return Err(SelectError::NoAxis);
    }
    let find = |name: &str| {
        table
            .axes
            .iter()
            .position(|a| a == name)
            .ok_or_else(|| SelectError::UnknownAxis {
                name: name.to_string(),
                axes: table.axes.join(", "),
            })
    };
    let mut fixed: Vec<(usize, String)> = Vec::new();
    for f in filters {
        let (n, v) = f
            .split_once('=')
            .ok_or_else(|| SelectError::BadWhere(f.clone()))?;
        fixed.push((find(n.trim())?, v.trim().to_string()));
    }
    let rows: Vec<_> = table
        .rows
        .iter()
        .filter(|r| fixed.iter().all(|(i, v)| &r.axis_values[*i] == v))
        .cloned()
        .collect();
    if rows.is_empty() {
        return Err(SelectError::NoMatch);
    }
    let x = match x {
        Some(n) => find(n)?,
        None => (0..table.axes.len())
            .find(|i| !fixed.iter().any(|(f, _)| f == i))
            .unwrap_or(0),
    };
    let y = match y {
        Some(n) => Some(find(n)?),
        None => (0..table.axes.len()).find(|i| *i != x && !fixed.iter().any(|(f, _)| f == i)),
    };
    let kept = RunsTable {
        axes: table.axes.clone(),
        rows,
    };
    for i in 0..table.axes.len() {
        let values = distinct(&kept, i);
        if i != x && Some(i) != y && values.len() > 1 {
            return Err(SelectError::Unfixed {
                axes: table.axes.len(),
                axis: table.axes[i].clone(),
                values: values.join(", "),
            });
        }
    }
    Ok(AxisSelection {
        x,
        y,
        fixed,
        table: kept,
    })
}
