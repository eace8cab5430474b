//! Sizes and rates as people write them: "512MiB", "64GiB", "10Gbit/s", "64MiB/s".
//!
//! Binary prefixes (KiB, MiB, GiB, TiB) are powers of 1024; decimal ones (kB, MB, GB, TB) powers
//! of 1000, as QEMU's and the kernel's tools print them. A bare number is bytes.

/// A size or rate that could not be read.
#[derive(Debug, Clone, PartialEq, displaydoc::Display, thiserror::Error)]
/// cannot read {text:?} as {what} (examples: {examples})
pub struct UnitError {
    text: String,
    what: &'static str,
    examples: &'static str,
}

fn multiplier(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "B" | "b" => 1.0,
        "K" | "KiB" | "k" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    })
}

fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// Parse a size in bytes: "4096", "4KiB", "512MiB", "1.5GiB", "1TiB".
pub fn parse_size_bytes(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        text: text.to_string(),
        what: "a size in bytes",
        examples: "4096, \"4KiB\", \"512MiB\", \"64GiB\", \"1TiB\"",
    };
    let s = text.trim();
    let (num, unit) = split_number(s);
    let value: f64 = num.replace('_', "").parse().map_err(|_| err())?;
    let bytes = value * multiplier(unit).ok_or_else(err)?;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Parse a rate in bytes per second: "134217728", "64MiB/s", "1GB/s", "10Gbit/s", "10Gb/s".
pub fn parse_rate_bytes_s(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        text: text.to_string(),
        what: "a rate in bytes per second",
        examples: "134217728, \"64MiB/s\", \"1GB/s\", \"10Gbit/s\"",
    };
    let s = text.trim();
    let body = s.strip_suffix("/s").unwrap_or(s).trim();
    let (num, unit) = split_number(body);
    let value: f64 = num.replace('_', "").parse().map_err(|_| err())?;
    let (unit, bits) = if let Some(u) = unit.strip_suffix("bit") {
        (u, true)
    } else if let Some(u) = unit.strip_suffix("bps") {
        (u, true)
    } else if unit.len() >= 2 && unit.ends_with('b') && !unit.ends_with("ib") {
        (&unit[..unit.len() - 1], true)
    } else {
        (unit, false)
    };
    // Network rates use decimal prefixes: 10 Gbit/s is 10^10 bits per second.
    let mult = if bits {
        match unit {
            "" => 1.0,
            "k" | "K" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            _ => return Err(err()),
        }
    } else {
        multiplier(unit).ok_or_else(err)?
    };
    let mut bytes = value * mult;
    if bits {
        bytes /= 8.0;
    }
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// "512 MiB", "1.50 GiB": a size for people.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_size_bytes("4KiB").unwrap(), 4096);
        assert_eq!(parse_size_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size_bytes("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size_bytes("64 GiB").unwrap(), 64 << 30);
        assert_eq!(parse_size_bytes("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size_bytes("lots").is_err());
        assert!(parse_size_bytes("12 parsecs").is_err());
        assert!(parse_size_bytes("0.3").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate_bytes_s("64MiB/s").unwrap(), 64 << 20);
        assert_eq!(parse_rate_bytes_s("10Gbit/s").unwrap(), 1_250_000_000);
        assert_eq!(parse_rate_bytes_s("10Gb/s").unwrap(), 1_250_000_000);
        assert_eq!(parse_rate_bytes_s("1GB/s").unwrap(), 1_000_000_000);
        assert_eq!(parse_rate_bytes_s("134217728").unwrap(), 134_217_728);
        assert!(parse_rate_bytes_s("fast").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(512 << 20), "512 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
        assert_eq!(format_bytes(100), "100 B");
    }
}
