//! Prerequisites of the tests that need the machine: /dev/kvm, QEMU, gcc, root. Where one is
//! missing, a test skips with a printed reason; under `AUTOCONV_REQUIRE_ALL=1` (CI sets it, and
//! `CI=true` implies it) a skip would let a run go green having tested nothing, so the test
//! panics instead, naming what is missing.

/// Whether a missing prerequisite fails the test: `AUTOCONV_REQUIRE_ALL` set to anything but
/// `0`/`false`/empty, or, when it is unset, `CI=true` (what CI services set).
pub fn required() -> bool {
    match std::env::var("AUTOCONV_REQUIRE_ALL") {
        Ok(v) => !matches!(v.trim(), "" | "0" | "false"),
        Err(_) => std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
    }
}

/// Go on (true), skip with a printed reason (false), or panic when `required` and the
/// prerequisite is `missing`.
pub fn decide(test: &str, missing: Option<String>, required: bool) -> bool {
    let Some(why) = missing else { return true };
    if required {
        panic!(
            "{test}: prerequisite missing under AUTOCONV_REQUIRE_ALL (CI): {why} \
             (install it, or unset AUTOCONV_REQUIRE_ALL to let the test skip)"
        );
    }
    // Both streams: the test harness captures stdout, a terminal shows stderr.
    eprintln!("SKIPPED {test}: {why}");
    println!("SKIPPED {test}: {why}");
    false
}

/// A usable /dev/kvm.
pub fn require_kvm(test: &str) -> bool {
    decide(test, autoconv::kvm::unavailable_reason(), required())
}

/// `qemu-system-x86_64` on PATH.
pub fn require_qemu(test: &str) -> bool {
    require_tool(test, "qemu-system-x86_64")
}

/// `gcc` on PATH (the fixture kernel is built from source).
pub fn require_gcc(test: &str) -> bool {
    require_tool(test, "gcc")
}

/// Running as root (network namespaces, veth pairs, tc).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let missing = (euid != 0).then(|| format!("needs root (running as uid {euid})"));
    decide(test, missing, required())
}

/// `program --version` runs and succeeds.
pub fn require_tool(test: &str, program: &str) -> bool {
    let missing = match std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`{program} --version` failed ({s})")),
        Err(e) => Some(format!("`{program}` cannot be run: {e}")),
    };
    decide(test, missing, required())
}
