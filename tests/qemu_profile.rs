//! `autoconv profile --qmp` against a real QEMU VM running an autoconv image: the fitted
//! working set is the image's, the scenario it writes runs under `sim`, and a paused VM or a
//! socket nobody serves is refused with one line. Needs qemu-system-x86_64 and /dev/kvm:
//! skipped with a printed reason where they are missing, a failure when
//! AUTOCONV_REQUIRE_ALL=1 (CI).

mod common;
use autoconv::guest_image::{GuestSpec, Pace, Pattern};
use autoconv::report::profile::Profile;
use common::qemu_vm::QemuVm;
use common::{autoconv, stderr, text};

#[test]
fn a_running_vm_is_profiled_fitted_and_written_as_a_scenario() {
    let Some(_g) =
        common::prereq::qemu("a_running_vm_is_profiled_fitted_and_written_as_a_scenario")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 32 MiB written at random: at this host's ~5-12K writes/s the working set fills within
    // the measured intervals, so the fit sees the curve bend.
    let spec = GuestSpec {
        pattern: Pattern::Random,
        wss_bytes: 32 << 20,
        pace: Pace::CpuSpin {
            iterations_per_write: 100_000,
        },
        ..GuestSpec::default()
    };
    let image = common::guest::image(d, "rnd.img", &spec);
    let args = [
        "-enable-kvm",
        "-m",
        "256",
        "-display",
        "none",
        "-monitor",
        "none",
    ];
    let vm = QemuVm::boot(&image, &args);
    let sock = vm.qmp_arg().to_string();

    let o = autoconv(
        &[
            "profile",
            "--qmp",
            &sock,
            "--calc-times",
            "1,2,4",
            "-o",
            "p.csv",
            "--scenario-out",
            "vm.toml",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let p = Profile::read(&d.join("p.csv")).unwrap();
    let r0 = &p.rows[0];
    assert_eq!(r0.memory_bytes, Some(256 << 20));
    assert_eq!(r0.vcpus, Some(1));
    assert!(r0.source.as_deref().unwrap().starts_with("qmp:"), "{r0:?}");
    assert!(p.host().is_some());
    // The fitted working set is the image's 8192 pages, within what integer MiB/s readings
    // and a busy host allow.
    let toml = std::fs::read_to_string(d.join("vm.toml")).unwrap();
    let s = autoconv::scenario::Scenario::load(&d.join("vm.toml"), &[]).unwrap();
    let ws_pages = s.regions[0].size_bytes / 4096;
    assert!(
        (6000..=10500).contains(&ws_pages),
        "working set {ws_pages} pages, the image writes 8192\n{toml}\n{}",
        text(&o)
    );
    // Throttled rows fall with the throttle (CPU-bound model).
    assert!(p
        .rows
        .windows(2)
        .all(|w| w[1].dirty_pages_s < w[0].dirty_pages_s));
    let o = autoconv(&["sim", "vm.toml", "--no-out"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A paused VM dirties nothing: refused before measuring, one line, exit 2.
    let mut q = vm.qmp();
    q.execute("stop", None).unwrap();
    drop(q);
    let o = autoconv(&["profile", "--qmp", &sock, "-o", "paused.csv"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is paused, not running"), "{err}");
    assert!(!d.join("paused.csv").exists());
    drop(vm);
}

#[test]
fn a_socket_nobody_serves_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = autoconv(
        &[
            "profile",
            "--qmp",
            "no-such.qmp",
            "--scenario-out",
            "vm.toml",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such.qmp"), "{err}");
    assert!(!dir.path().join("vm.toml").exists());
    // Bad options are refused before connecting.
    let o = autoconv(
        &["profile", "--qmp", "no-such.qmp", "--calc-times", "2,2"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("at least two different intervals"));
    let o = autoconv(
        &["profile", "--qmp", "no-such.qmp", "--mode", "psychic"],
        dir.path(),
    );
    assert!(stderr(&o).contains("--mode \"psychic\""), "{}", text(&o));
}
