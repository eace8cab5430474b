//! The autoconv binary as a child process the CLI tests start, wait for and read after.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The autoconv binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autoconv"))
}

/// Wait for a child, killing it (and failing) if it outlives `limit`: nothing may hang.
pub fn wait_with_limit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} hung for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JSON file a run wrote (summary.json, incoming.json).
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// summary.json in a run's `--out` directory.
pub fn summary(out: &Path) -> serde_json::Value {
    json(&out.join("summary.json"))
}
