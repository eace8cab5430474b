//! Parsers of option values that several commands share.

/// A size such as 256MiB.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    autoconv::units::parse_size_bytes(s).map_err(|e| e.to_string())
}

/// A duration: 500ms, 4s, 2min (or 2m), 1h, 1m30s, or a bare number of milliseconds (0
/// allowed: `--warmup 0`).
pub(super) fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let bad = || format!("cannot read {s:?} as a duration (e.g. 500ms, 4s, 2min, 1m30s)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(ms) = t.parse::<f64>() {
        return (ms.is_finite() && ms >= 0.0)
            .then(|| ms.round() as u64)
            .ok_or_else(bad);
    }
    let mut total_ms = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = rest[n..].trim_start();
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total_ms += value
            * match rest[..u].trim() {
                "ms" => 1.0,
                "s" => 1000.0,
                "m" | "min" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return Err(bad()),
            };
        rest = &rest[u..];
    }
    (total_ms.is_finite() && total_ms >= 0.0)
        .then(|| total_ms.round() as u64)
        .ok_or_else(bad)
}

/// A deadline: a duration above 0 with its unit. A bare number is refused rather than read
/// as milliseconds: `--deadline 90` meant as seconds would ask for the impossible.
pub(super) fn parse_deadline_ms(s: &str) -> Result<u64, String> {
    if s.trim().parse::<f64>().is_ok() {
        return Err(format!(
            "{s:?} has no unit: write {}s, or {}ms if milliseconds were meant",
            s.trim(),
            s.trim()
        ));
    }
    parse_positive_duration_ms(s)
}

/// A duration of at least 1 ms (a hold or a harvest period).
pub(super) fn parse_positive_duration_ms(s: &str) -> Result<u64, String> {
    match parse_duration_ms(s)? {
        0 => Err(format!("{s:?}: a duration of at least 1 ms is needed")),
        ms => Ok(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_spelling() {
        for (text, ms) in [
            ("500ms", 500),
            ("4s", 4000),
            ("1.5s", 1500),
            ("2min", 120_000),
            ("2m", 120_000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("250", 250),
            ("0", 0),
        ] {
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
        }
        for text in ["", "soon", "5x", "-1s", "s"] {
            assert!(parse_duration_ms(text).is_err(), "{text}");
        }
        assert_eq!(parse_deadline_ms("90s"), Ok(90_000));
        let e = parse_deadline_ms("90").unwrap_err();
        assert!(e.contains("90s"), "{e}");
        assert!(parse_deadline_ms("0s").is_err());
    }
}
