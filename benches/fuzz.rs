//! The fuzz targets for as long as asked: `cargo bench --bench fuzz -- [TARGET...]`, with
//! AUTOCONV_FUZZ_EXECS executions per target (default 1,000,000) and AUTOCONV_FUZZ_SEED (default
//! 1). Prints executions, time, corpus, distinct features and findings per target; exits 1 if
//! any target panicked (each crashing input is written to target/fuzz-crashes/).

use std::path::Path;

fn main() {
    let execs: u64 = std::env::var("AUTOCONV_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("AUTOCONV_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // `cargo bench` passes --bench; the rest are target names.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = false;
    for mut t in autoconv::fuzz::targets(root) {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == t.name()) {
            continue;
        }
        let r = autoconv::fuzz::fuzz(t.as_mut(), execs, seed);
        println!(
            "{:<10} {:>9} execs in {:>7.1} s ({:>7.0}/s), corpus {:>5}, features {:>5}, slowest exec {:>6.2} ms, crashes {}",
            r.target,
            r.execs,
            r.seconds,
            r.execs as f64 / r.seconds.max(1e-9),
            r.corpus,
            r.features,
            r.slowest.as_secs_f64() * 1e3,
            r.crashes.len()
        );
        if !r.crashes.is_empty() {
            failed = true;
            let dir = root.join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            for (i, (input, msg)) in r.crashes.iter().enumerate().take(20) {
                let p = dir.join(format!("{}-{i}.bin", r.target));
                let _ = std::fs::write(&p, input);
                println!("  crash {i}: {msg} (input: {})", p.display());
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
