//! The skip policy itself: a missing prerequisite skips with a printed reason, except under
//! AUTOCONV_REQUIRE_ALL=1 (CI), where it fails the test.

mod common;

use common::require::decide;

#[test]
fn a_present_prerequisite_runs_the_test_either_way() {
    assert!(decide("t", None, false));
    assert!(decide("t", None, true));
}

#[test]
fn a_missing_prerequisite_skips_when_not_required() {
    assert!(!decide("t", Some("no /dev/kvm".into()), false));
}

#[test]
#[should_panic(expected = "prerequisite missing under AUTOCONV_REQUIRE_ALL (CI): no /dev/kvm")]
fn a_missing_prerequisite_fails_when_required() {
    decide("t", Some("no /dev/kvm".into()), true);
}

/// Run by `ci_turns_a_missing_tool_into_a_failing_test` in a child process only.
#[test]
#[ignore = "a probe run by another test with its own environment"]
fn probe_needs_a_tool_that_does_not_exist() {
    if !common::require::require_tool("probe", "autoconv-no-such-tool") {
        return;
    }
    unreachable!("the tool cannot exist");
}

/// Through the real harness and environment: the same test passes as SKIPPED on a developer's
/// machine and fails under the variable CI sets.
#[test]
fn ci_turns_a_missing_tool_into_a_failing_test() {
    let run = |require_all: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "probe_needs_a_tool_that_does_not_exist",
                "--nocapture",
            ])
            .env("AUTOCONV_REQUIRE_ALL", require_all)
            .output()
            .unwrap()
    };
    let dev = run("0");
    let out = common::text(&dev);
    assert!(dev.status.success(), "{out}");
    assert!(
        out.contains("SKIPPED probe: `autoconv-no-such-tool` cannot be run"),
        "{out}"
    );

    let ci = run("1");
    let out = common::text(&ci);
    assert!(!ci.status.success(), "{out}");
    assert!(
        out.contains("probe: prerequisite missing under AUTOCONV_REQUIRE_ALL (CI)"),
        "{out}"
    );
}
