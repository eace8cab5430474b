//! A quick run of every fuzz target (seconds), and what the harness must reach: the wire
//! target's seeds get through page writes and verification to the resume, its mutations
//! reach both verdicts, and no target panics. The long runs are `cargo bench --bench fuzz`.

use std::path::Path;

use autoconv::fuzz::{feature_id, features_of, fuzz, targets, Target};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target(name: &str) -> Box<dyn Target> {
    targets(root())
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap()
}

#[test]
fn every_target_has_seeds_that_its_reader_accepts() {
    let accepted = [
        ("wire", "resumed"),
        ("multiboot", "loaded"),
        ("scenario", "built"),
        ("profile", "parsed"),
        ("qmp", "negotiated"),
        ("from-log", "recorded"),
        ("monitor", "quit"),
    ];
    for (name, ok) in accepted {
        let mut t = target(name);
        let seeds = t.seeds();
        assert!(seeds.len() >= 3, "{name}: {} seeds", seeds.len());
        let first = features_of(t.as_mut(), &seeds[0]);
        assert!(
            first.contains(&feature_id(ok)),
            "{name}: its first seed is not accepted"
        );
    }
}

#[test]
fn a_quick_run_of_every_target_is_clean_and_reaches_past_the_parsers() {
    for mut t in targets(root()) {
        let r = fuzz(t.as_mut(), 3_000, 7);
        assert!(
            r.crashes.is_empty(),
            "{}: {:?}",
            r.target,
            r.crashes.first().map(|c| &c.1)
        );
        assert_eq!(r.execs, 3_000);
        assert!(
            r.features >= 10,
            "{}: only {} features",
            r.target,
            r.features
        );
        assert!(r.corpus > 3, "{}: nothing new found", r.target);
    }
}

#[test]
fn the_wire_harness_reaches_verification_both_ways() {
    // A page changed with the digests left alone fails verification; with the digests
    // recomputed it resumes: the harness drives the destination to both verdicts.
    let mut t = target("wire");
    let seed = t.seeds().remove(0);
    let mut changed = seed.clone();
    // The first PAGES frame's data starts right after the Hello and its header.
    changed[48 + 16] ^= 1;
    let f = features_of(t.as_mut(), &changed);
    assert!(f.contains(&feature_id("verified")));
    assert!(!f.contains(&feature_id("resumed")));
    assert!(f.contains(&feature_id("verification failed")));
    // Fuzzing alone reaches both, and errors deep in the stream.
    let r = fuzz(target("wire").as_mut(), 3_000, 3);
    assert!(r.crashes.is_empty());
    for label in ["resumed", "verification failed", "verified"] {
        assert!(r.seen.contains(&feature_id(label)), "{label} not reached");
    }
}

#[test]
fn one_kind_of_error_is_one_feature_whatever_it_echoes() {
    // The same JSON error on two lines of different text: serde's message quotes the
    // expected token in backticks and the reader's quotes the line (backticks, escaped
    // quotes and all); neither may make a new feature.
    let mut log = target("from-log");
    let a = features_of(log.as_mut(), b"{\"return\": {\"status\": `act\"`}}\n");
    let b = features_of(log.as_mut(), b"{\"return\": {\"status\": `ive\\\"`x`}}\n");
    assert_eq!(a, b);
    // QEMU's unknown-command error echoes the name unquoted.
    let mut monitor = target("monitor");
    let a = features_of(monitor.as_mut(), br#"{"execute":"no-such-thing"}"#);
    let b = features_of(monitor.as_mut(), br#"{"execute":"qmp_capabilitiXs"}"#);
    assert_eq!(a, b);
    // A profile's known columns are its message's own words, in the input or not.
    let mut profile = target("profile");
    let a = features_of(profile.as_mut(), b"throttle_pct,dirty_pages_s\n0,1\n");
    let b = features_of(profile.as_mut(), b"throttle_pcX,interval_ms\n0,1\n");
    assert_eq!(a, b);
    // A scenario's words are the message's own even where a value repeats them: the same
    // missing [guest] with a profile value of plain words, then of message words.
    let mut scenario = target("scenario");
    let a = features_of(scenario.as_mut(), b"[autoconv]\nprofile = \"zz\"\n");
    let b = features_of(
        scenario.as_mut(),
        b"[autoconv]\nprofile = \"a scenario with\"\n",
    );
    assert_eq!(a, b);
    // A size is one number whatever its unit.
    let region = |offset: &str| {
        format!("[guest]\nmemory = \"1GiB\"\n[[region]]\nname = \"r\"\noffset = \"{offset}\"\nsize = \"2GiB\"\npattern = \"static\"\n")
    };
    let a = features_of(scenario.as_mut(), region("0").as_bytes());
    let b = features_of(scenario.as_mut(), region("512MiB").as_bytes());
    assert_eq!(a, b);
    // So a run's features are kinds, not mutants: when the class kept the mutated text,
    // from-log found a new feature in most of its executions.
    let r = fuzz(target("from-log").as_mut(), 20_000, 1);
    assert!(r.features < 500, "from-log: {} features", r.features);
    // scenario found 480 in 200,000 executions when its echo candidates were its profile
    // values; it finds 142 without.
    let r = fuzz(target("scenario").as_mut(), 50_000, 1);
    assert!(r.features < 200, "scenario: {} features", r.features);
}

#[test]
fn a_log_with_times_past_2_to_the_50_ms_reads_back_as_the_same_migration() {
    // Found by `cargo bench --bench fuzz` (from-log): a total-time near i64::MAX made the
    // recorded polls, whose "t" is written in f64 seconds, read back with other ms.
    let log = concat!(
        r#"{"return":{"status":"active","total-time":9223372036854775807,"ram":{"total":67641344,"remaining":39260160,"transferred":24399185,"dirty-sync-count":1}},"t":3.007}"#,
        "\n",
        r#"{"return":{"status":"cancelled"},"t":3.1}"#,
        "\n"
    );
    let mut t = target("from-log");
    let f = features_of(t.as_mut(), log.as_bytes());
    assert!(f.contains(&feature_id("recorded")));
}
