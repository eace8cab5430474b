//! Exit code 4 end to end, from a real failure of the host, not a fake: the source's
//! dirty-limit thread cannot be created because the process may not have one more thread
//! (RLIMIT_NPROC, which Linux enforces for every uid but root's, so the run is started as an
//! unused uid with /dev/kvm's group). Needs /dev/kvm and root (to change uid): skipped with a
//! printed reason where either is missing, failed when AUTOCONV_REQUIRE_ALL=1 (as CI sets it).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{json, wait_with_limit};

/// Tasks of process `pid` now, and how many of them are named `name`.
fn tasks(pid: u32, name: &str) -> (u64, usize) {
    let mut count = 0;
    let mut named = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let Ok(t) = t else { continue };
        count += 1;
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        named += usize::from(comm.trim() == name);
    }
    (count, named)
}

/// Lower RLIMIT_NPROC of `pid` to `limit`, from a child of the same uid and gid as it: a root
/// without CAP_SYS_RESOURCE (a container's) may not change another uid's limits.
fn set_nproc_as(pid: u32, uid: u32, gid: u32, limit: u64, exe: &std::path::Path) {
    let pid = pid as libc::pid_t;
    let mut cmd = Command::new(exe);
    cmd.arg("--version").stdout(Stdio::null());
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
    // (setgroups, setgid, setuid, prlimit) and touches no lock or allocation.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            let gids = [gid];
            if libc::setgroups(1, gids.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
                || libc::prlimit(pid, libc::RLIMIT_NPROC, &rl, std::ptr::null_mut()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let status = cmd.status().expect("lowering the run's RLIMIT_NPROC");
    assert!(status.success(), "{status}");
}

#[test]
fn a_thread_the_host_refuses_mid_migration_exits_4_and_the_source_runs_on() {
    let Some(_g) = common::prereq::kvm("a_thread_the_host_refuses_mid_migration_exits_4") else {
        return;
    };
    if !common::require::require_root("a_thread_the_host_refuses_mid_migration_exits_4") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The run's uid must reach the binary, the image and the output directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = dir.path().join("autoconv");
    std::fs::copy(env!("CARGO_BIN_EXE_autoconv"), &exe).unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let out = dir.path().join("run");
    // An uid of this test alone: RLIMIT_NPROC counts every task of the uid, system-wide.
    let uid = 200_000 + std::process::id() % 100_000;
    let kvm_gid = std::fs::metadata("/dev/kvm").unwrap().gid();
    let mut cmd = Command::new(&exe);
    cmd.args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--dirty-log", "ring", "--set", "auto-converge=off"])
        .args(["--set", "dirty-limit=on", "--set", "max-bandwidth=16MiB/s"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
    // (setgroups, setgid, setuid) and touches no lock or allocation.
    unsafe {
        cmd.pre_exec(move || {
            let gids = [kvm_gid];
            if libc::setgroups(1, gids.as_ptr()) != 0
                || libc::setgid(kvm_gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let mut run = cmd.spawn().unwrap();
    // Once the migration started and its local destination made its VM (the second throttle
    // timer), the process may keep its threads but have no new one. Whatever the host's extra
    // tasks (KVM's per-VM kernel workers count too), the next thread is the dirty-limit
    // thread, which the core starts seconds later, when the guest has out-dirtied the 16 MiB/s
    // link.
    let t0 = std::time::Instant::now();
    let threads = loop {
        if tasks(run.id(), "throttle-timer").1 == 2 {
            // Let the destination VM's own workers, if any, start.
            std::thread::sleep(Duration::from_millis(300));
            break tasks(run.id(), "throttle-timer").0;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = run.kill();
            panic!("the run never started its local destination's VM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    set_nproc_as(run.id(), uid, kvm_gid, threads, &exe);
    let status = wait_with_limit(&mut run, Duration::from_secs(60), "run short of a thread");
    let mut stdout = String::new();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stdout.take().unwrap(), &mut stdout).unwrap();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(4), "{stdout}\n{stderr}");
    // One line on stderr, naming the step that failed and the kernel's answer.
    assert_eq!(
        stderr,
        "autoconv: error: the guest backend failed at the source: cannot start the dirty-limit \
         thread: Resource temporarily unavailable (os error 11)\n",
        "{stdout}"
    );
    let s = json(&out.join("summary.json"));
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["failure"]["kind"], "guest-fault", "{s}");
    // The source guest runs on, unthrottled; the destination never ran it.
    assert_eq!(s["source_after"]["throttle_pct"], 0, "{s}");
    assert!(
        s["source_after"]["progress"]["pages_written_per_s"]
            .as_f64()
            .unwrap()
            > 1000.0,
        "{s}"
    );
    assert_eq!(s["destination"]["resumed"], false, "{s}");
    assert!(
        stdout.contains("source guest after the migration ended: still running"),
        "{stdout}"
    );
}
