//! Typed values out of a scenario table: integers, numbers within a range, strings, sizes and
//! sub-tables, each wrong type or range reported at the key that holds it.

use super::doc::{Fields, Kind, ScenarioError, Table, Value};
use crate::units::parse_size_bytes;

pub(super) fn want_table<'t>(
    f: &Fields<'t>,
    key: &str,
    v: &'t Value,
) -> Result<&'t Table, ScenarioError> {
    match &v.kind {
        Kind::Table(t) => Ok(t),
        other => Err(f.invalid(
            v,
            key,
            format!("expected a table, found {}", other.type_name()),
        )),
    }
}

pub(super) fn u64_field(f: &Fields, key: &str) -> Result<Option<u64>, ScenarioError> {
    let Some(v) = f.get(key) else { return Ok(None) };
    match v.kind {
        Kind::Int(n) if n >= 0 => Ok(Some(n as u64)),
        Kind::Int(_) => Err(f.invalid(v, key, "must not be negative")),
        ref other => Err(f.invalid(
            v,
            key,
            format!("expected an integer, found {}", other.type_name()),
        )),
    }
}

pub(super) fn f64_field(
    f: &Fields,
    key: &str,
    lo: f64,
    hi: f64,
) -> Result<Option<f64>, ScenarioError> {
    let Some(v) = f.get(key) else { return Ok(None) };
    let x = match v.kind {
        Kind::Int(n) => n as f64,
        Kind::Float(x) => x,
        ref other => {
            return Err(f.invalid(
                v,
                key,
                format!("expected a number, found {}", other.type_name()),
            ))
        }
    };
    if !x.is_finite() || x < lo || x > hi {
        let range = if hi == f64::MAX {
            format!("at least {lo}")
        } else {
            format!("in the range of {lo} to {hi}")
        };
        return Err(f.invalid(v, key, format!("expected a number {range}, found {x}")));
    }
    Ok(Some(x))
}

pub(super) fn str_field<'t>(f: &Fields<'t>, key: &str) -> Result<Option<&'t str>, ScenarioError> {
    let Some(v) = f.get(key) else { return Ok(None) };
    match (&v.kind, &v.raw) {
        (Kind::Str(s), _) => Ok(Some(s)),
        (_, Some(raw)) => Ok(Some(raw)),
        (other, None) => Err(f.invalid(
            v,
            key,
            format!("expected a string, found {}", other.type_name()),
        )),
    }
}

pub(super) fn size_field(f: &Fields, key: &str) -> Result<Option<u64>, ScenarioError> {
    let Some(v) = f.get(key) else { return Ok(None) };
    match &v.kind {
        Kind::Int(n) if *n >= 0 => Ok(Some(*n as u64)),
        Kind::Str(s) => parse_size_bytes(s)
            .map(Some)
            .map_err(|e| f.invalid(v, key, e.to_string())),
        other => Err(f.invalid(
            v,
            key,
            format!(
                "expected a size (bytes, or a string such as \"512MiB\"), found {}",
                other.type_name()
            ),
        )),
    }
}
