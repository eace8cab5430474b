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

/// How a grid axis is drawn: its title with the unit, each value's label on that scale, and
/// the values as numbers when every one is a number (a line plot then spaces them to scale).
#[derive(Clone, Debug, PartialEq)]
pub struct AxisScale {
    /// "cpu-throttle-initial (%)", "max-bandwidth (MiB/s)".
    pub title: String,
    /// One label per value, in the unit of the title.
    pub labels: Vec<String>,
    /// The values in that unit, if all are numbers.
    pub numbers: Option<Vec<f64>>,
}

/// The unit QEMU gives a parameter, shown on an axis (bandwidths in MiB/s, not QMP's bytes/s).
fn axis_unit(name: &str) -> Option<&'static str> {
    let name = crate::migration::vocabulary::alias_target(name).unwrap_or(name);
    Some(match name {
        "cpu-throttle-initial"
        | "cpu-throttle-increment"
        | "max-cpu-throttle"
        | "throttle-trigger-threshold" => "%",
        "downtime-limit" | "x-vcpu-dirty-limit-period" => "ms",
        "max-bandwidth" | "avail-switchover-bandwidth" => "MiB/s",
        "vcpu-dirty-limit" => "MB/s",
        _ => return None,
    })
}

/// The scale of the grid axis `name` over `values` (as the runs table spells them).
pub fn axis_scale(name: &str, values: &[String]) -> AxisScale {
    let unit = axis_unit(name);
    let title = match unit {
        Some(u) => format!("{name} ({u})"),
        None => name.to_string(),
    };
    if unit != Some("MiB/s") {
        return AxisScale {
            title,
            labels: values.to_vec(),
            numbers: values.iter().map(|v| v.trim().parse().ok()).collect(),
        };
    }
    // A bandwidth in any spelling ("512MiB/s", "536870912", "1GiB/s") on one MiB/s scale; 0
    // means unlimited and has no place on it.
    let bytes_s: Vec<Option<u64>> = values
        .iter()
        .map(|v| crate::units::parse_rate_bytes_s(v).ok())
        .collect();
    let mib_s = |b: u64| b as f64 / (1u64 << 20) as f64;
    let numbers = bytes_s
        .iter()
        .map(|b| b.filter(|&b| b > 0).map(mib_s))
        .collect();
    let labels = values
        .iter()
        .zip(&bytes_s)
        .map(|(v, b)| match *b {
            Some(0) => "unlimited".to_string(),
            Some(b) if mib_s(b).fract() == 0.0 => format!("{:.0}", mib_s(b)),
            Some(b) => format!("{:.1}", mib_s(b)),
            None => v.clone(),
        })
        .collect();
    AxisScale {
        title,
        labels,
        numbers,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn axes_carry_their_unit_and_bandwidths_one_scale() {
        let a = axis_scale("cpu-throttle-initial", &strings(&["10", "20"]));
        assert_eq!(a.title, "cpu-throttle-initial (%)");
        assert_eq!(a.numbers, Some(vec![10.0, 20.0]));
        // virsh's alias gets the same unit.
        assert_eq!(
            axis_scale("auto-converge-increment", &strings(&["5"])).title,
            "auto-converge-increment (%)"
        );
        // Raw QMP bytes/s and unit spellings land on one MiB/s scale.
        let bw = axis_scale(
            "max-bandwidth",
            &strings(&["536870912", "1GiB/s", "1536MiB/s"]),
        );
        assert_eq!(bw.title, "max-bandwidth (MiB/s)");
        assert_eq!(bw.numbers, Some(vec![512.0, 1024.0, 1536.0]));
        assert_eq!(bw.labels, strings(&["512", "1024", "1536"]));
        // Unlimited has no place on a scale: the axis turns categorical.
        let bw = axis_scale("max-bandwidth", &strings(&["0", "64MiB/s"]));
        assert_eq!(bw.numbers, None);
        assert_eq!(bw.labels, strings(&["unlimited", "64"]));
        // An axis autoconv knows no unit for keeps its name and values.
        let s = axis_scale("seed", &strings(&["1", "x"]));
        assert_eq!((s.title.as_str(), s.numbers), ("seed", None));
    }
}
