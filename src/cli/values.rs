//! Parsers of option values that several commands share.

/// A size such as 256MiB.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    autoconv::units::parse_size_bytes(s).map_err(|e| e.to_string())
}

/// A duration such as 500ms, 4s or 2min (0 allowed: `run --kvm` and `incoming`).
pub(super) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60_000.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("cannot read {s:?} as a duration (e.g. 500ms, 4s, 2min)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("cannot read {s:?} as a duration"));
    }
    Ok((v * mult).round() as u64)
}
