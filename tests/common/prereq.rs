//! Prerequisites of tests that need the host: /dev/kvm, tools. A missing one skips the test
//! with a printed reason, or fails it when AUTOCONV_REQUIRE_ALL=1 (as CI sets it).

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// KVM tests of one binary run one at a time (two host cores, shared).
static KVM: Mutex<()> = Mutex::new(());

fn require_all() -> bool {
    std::env::var("AUTOCONV_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The KVM lock when `test` can run: /dev/kvm usable and every tool in `tools` answers
/// `--version`. Otherwise None after printing why, or a panic under AUTOCONV_REQUIRE_ALL=1.
pub fn kvm_with_tools(test: &str, tools: &[&str]) -> Option<MutexGuard<'static, ()>> {
    let mut missing = autoconv::kvm::unavailable_reason();
    for tool in tools {
        if missing.is_some() {
            break;
        }
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            missing = Some(format!("`{tool}` is not installed"));
        }
    }
    match missing {
        None => Some(KVM.lock().unwrap_or_else(|e| e.into_inner())),
        Some(why) if require_all() => panic!("{test}: {why} (AUTOCONV_REQUIRE_ALL=1)"),
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            println!("SKIPPED {test}: {why}");
            None
        }
    }
}
