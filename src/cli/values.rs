//! Parsers of option values that several commands share.

/// A size such as 256MiB.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    autoconv::units::parse_size_bytes(s).map_err(|e| e.to_string())
}

/// A duration: 500ms, 4s, 2min, or a bare number of milliseconds (0 allowed: `--warmup 0`).
pub(super) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("cannot read {s:?} as a duration (e.g. 500ms, 4s, 2min)"))?;
    let ms = (v * scale).round();
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("cannot read {s:?} as a duration"));
    }
    Ok(ms as u64)
}

/// A duration of at least 1 ms (a hold or a harvest period).
pub(super) fn parse_positive_duration_ms(s: &str) -> Result<u64, String> {
    match parse_duration_ms(s)? {
        0 => Err(format!("{s:?}: a duration of at least 1 ms is needed")),
        ms => Ok(ms),
    }
}
