//! The names users bring from virsh, HMP and QMP, through the CLI: virsh's option names work
//! as aliases, real QEMU settings autoconv does not model are not called typos, and a bare
//! bandwidth that would be bytes/s by accident is refused with a hint.

mod common;
use common::{autoconv, scenarios, stderr, text};

fn heavy() -> String {
    scenarios().join("heavy.toml").to_str().unwrap().to_string()
}

/// `sim heavy --json` with these sets, in a scratch directory.
fn sim(sets: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let mut args = vec!["sim", h.as_str(), "--json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    autoconv(&args, dir.path())
}

#[test]
fn virsh_option_names_set_the_same_parameters_as_qemus() {
    let virsh = sim(&["auto-converge-initial=30", "auto-converge-increment=20"]);
    let qemu = sim(&["cpu-throttle-initial=30", "cpu-throttle-increment=20"]);
    assert_eq!(virsh.status.code(), Some(0), "{}", text(&virsh));
    let mut v: serde_json::Value = serde_json::from_slice(&virsh.stdout).unwrap();
    let mut q: serde_json::Value = serde_json::from_slice(&qemu.stdout).unwrap();
    // The summary keeps the --sets as typed; everything else must be the very same run.
    assert_eq!(v["sets"][0], "auto-converge-initial=30");
    for s in [&mut v, &mut q] {
        s.as_object_mut().unwrap().remove("sets");
    }
    assert_eq!(v, q, "the aliases must give the very same run");
    // And the run differs from QEMU's defaults' (64.4 s), so the aliases took effect.
    let d: serde_json::Value = serde_json::from_slice(&sim(&[]).stdout).unwrap();
    assert_ne!(v["elapsed_ms"], d["elapsed_ms"]);
}

#[test]
fn virsh_names_work_as_grid_axes() {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let o = autoconv(
        &[
            "sweep",
            &h,
            "--grid",
            "auto-converge-initial=20,30",
            "--grid",
            "auto-converge-increment=10",
            "--seeds",
            "1",
            "--out",
            "sw",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn real_qemu_settings_are_named_not_modelled_rather_than_unexpected() {
    for (set, want) in [
        (
            "multifd-channels=4",
            "QEMU parameter 'multifd-channels' is not modelled by autoconv",
        ),
        (
            "xbzrle-cache-size=64MiB",
            "QEMU parameter 'xbzrle-cache-size' is not modelled by autoconv",
        ),
        (
            "postcopy-ram=on",
            "QEMU capability 'postcopy-ram' is not modelled by autoconv",
        ),
    ] {
        let o = sim(&[set]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", text(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{set}: {err}");
        assert!(!err.contains("unexpected"), "{err}");
        assert!(o.stdout.is_empty());
    }
    // A typo is still a typo, with QEMU's word and a suggestion.
    let o = sim(&["cpu-throttle-intial=30"]);
    assert!(
        stderr(&o).contains("is unexpected (did you mean 'cpu-throttle-initial'?)"),
        "{}",
        stderr(&o)
    );
    // The same through a grid axis.
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let o = autoconv(&["sweep", &h, "--grid", "multifd-channels=1,2"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("QEMU parameter 'multifd-channels' is not modelled by autoconv"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bare_bandwidth_under_1_mib_s_gets_a_hint_unless_it_has_a_unit() {
    let o = sim(&["max-bandwidth=64"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("64 bytes/s: did you mean 64MiB/s?"), "{err}");
    // Through a grid, the value at fault is named.
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let o = autoconv(&["sweep", &h, "--grid", "max-bandwidth=64,128"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("did you mean 64MiB/s?"),
        "{}",
        stderr(&o)
    );
    // With a unit the user means it: a 64 B/s link does not converge within a short limit.
    let o = sim(&["max-bandwidth=64B/s", "autoconv.time_limit_s=5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["status"], "not-converged");
    // 64MiB/s and the bare 0 (unlimited) are accepted.
    for ok in ["max-bandwidth=64MiB/s", "max-bandwidth=0"] {
        let o = sim(&[ok]);
        assert_eq!(o.status.code(), Some(0), "{ok}: {}", text(&o));
    }
}
