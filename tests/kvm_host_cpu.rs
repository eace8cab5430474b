//! What the VMM costs the host when there is nothing to do (issue 11): an idle guest, a vCPU
//! throttled at 99% and a rate-limited migration thread must leave the cores to others.
//! CPU time is compared to wall time over the same interval, so a loaded host (which can only
//! give the threads less CPU) does not make these tests fail; the busy control shows the
//! measurement does see a running vCPU.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoconv::guest_image::{GuestSpec, Pattern};
use autoconv::kvm::host_cpu;
use autoconv::kvm::{BootPath, LoadPlan, Machine, MachineConfig};
use autoconv::migration::{CancelToken, MigrationStatus, ParamValue};
use autoconv::session::kvm::{run_migration, RunOptions};

mod common;

fn image(dir: &Path, pattern: Pattern) -> PathBuf {
    let spec = GuestSpec {
        pattern,
        wss_bytes: 1 << 20,
        marker_every_sweeps: 0,
        ..GuestSpec::default()
    };
    common::guest::image(dir, &format!("{}.img", pattern.name()), &spec)
}

fn boot(img: &Path) -> Machine {
    let plan = LoadPlan::from_file(img, 64 << 20).unwrap();
    let cfg = MachineConfig {
        mem_bytes: 64 << 20,
        vcpus: 1,
        ..MachineConfig::default()
    };
    Machine::boot(cfg, &plan, BootPath::Auto).unwrap()
}

/// Percent of one core the machine's vCPU threads used over `ms` of wall time, measured two
/// ways: the threads' own CPU clocks, and /proc/self/task/*/stat of the `vcpu*` threads.
fn vcpu_pct(m: &Machine, ms: u64) -> (f64, f64) {
    let (t0, c0, p0) = (Instant::now(), m.vcpu_cpu_ns(), host_cpu::tasks());
    std::thread::sleep(Duration::from_millis(ms));
    let (c1, p1) = (m.vcpu_cpu_ns(), host_cpu::tasks());
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let proc_ns: u64 = host_cpu::tasks_delta(&p0, &p1)
        .iter()
        .filter(|t| t.name.starts_with("vcpu"))
        .map(|t| t.cpu_ns)
        .sum();
    (
        100.0 * (c1 - c0) as f64 / wall_ns,
        100.0 * proc_ns as f64 / wall_ns,
    )
}

#[test]
fn an_idle_guest_costs_the_host_almost_nothing() {
    let test = "an_idle_guest_costs_the_host_almost_nothing";
    let Some(_kvm) = common::prereq::kvm_with_tools(test, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut idle = boot(&image(dir.path(), Pattern::Idle));
    idle.start().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // past its few emulated boot instructions
    let p0 = host_cpu::process_ns();
    let t0 = Instant::now();
    let (clock_pct, proc_pct) = vcpu_pct(&idle, 2_000);
    let process_pct = 100.0 * (host_cpu::process_ns() - p0) as f64 / t0.elapsed().as_nanos() as f64;
    eprintln!(
        "idle guest: vCPU {clock_pct:.2}% (/proc: {proc_pct:.2}%), whole process {process_pct:.2}%"
    );
    assert!(clock_pct < 5.0, "idle vCPU used {clock_pct:.1}% of a core");
    assert!(
        proc_pct < 5.0,
        "idle vCPU used {proc_pct:.1}% of a core (/proc)"
    );
    assert!(
        process_pct < 5.0,
        "idle VMM used {process_pct:.1}% of a core"
    );
    assert!(idle.failures().is_empty(), "{:?}", idle.failures());
    drop(idle);

    // Control: the same measurement sees a busy vCPU.
    let mut busy = boot(&image(dir.path(), Pattern::Sequential));
    busy.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (busy_pct, busy_proc_pct) = vcpu_pct(&busy, 1_000);
    eprintln!("busy guest: vCPU {busy_pct:.1}% (/proc: {busy_proc_pct:.1}%)");
    assert!(
        busy_pct > 2.0 && busy_pct > 4.0 * clock_pct,
        "busy {busy_pct:.1}% vs idle {clock_pct:.1}%"
    );
    assert!(
        busy_proc_pct > 2.0,
        "busy vCPU at {busy_proc_pct:.1}% (/proc)"
    );
}

/// A throttle sleep waits on a condition variable: the vCPU costs nothing while it sleeps.
/// (Under a loaded host a sleep can end after the next timer tick, which then schedules none:
/// QEMU's own rule, so the vCPU may run a whole period unthrottled. The bound is therefore on
/// the time it was not asleep, not on a fixed 1%.)
#[test]
fn a_vcpu_throttled_at_99_percent_sleeps() {
    let test = "a_vcpu_throttled_at_99_percent_sleeps";
    let Some(_kvm) = common::prereq::kvm_with_tools(test, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut m = boot(&image(dir.path(), Pattern::Sequential));
    m.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // From no sleep in progress to a stop (which ends a sleep and banks its time and the
    // thread's CPU), so both counts cover exactly this interval.
    let (t0, cpu0, slept0) = (Instant::now(), m.vcpu_cpu_ns(), m.throttle_slept_ns());
    m.set_throttle_pct(99);
    std::thread::sleep(Duration::from_millis(2_500));
    m.pause().unwrap();
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let cpu_ns = (m.vcpu_cpu_ns() - cpu0) as f64;
    let slept_ns = (m.throttle_slept_ns() - slept0) as f64;
    let timer_ns = m.timer_cpu_ns();
    eprintln!(
        "99% throttle over {:.0} ms: asleep {:.0} ms, vCPU CPU {:.1} ms, timer {:.3} ms",
        wall_ns / 1e6,
        slept_ns / 1e6,
        cpu_ns / 1e6,
        timer_ns as f64 / 1e6
    );
    assert!(
        slept_ns > 0.35 * wall_ns,
        "the throttle did not put it to sleep"
    );
    assert!(
        cpu_ns < (wall_ns - slept_ns) + 0.05 * wall_ns,
        "the vCPU used CPU while asleep: {cpu_ns} ns of CPU, {slept_ns} ns asleep, {wall_ns} ns"
    );
    assert!(timer_ns < 50_000_000, "timer thread: {timer_ns} ns");
}

#[test]
fn a_rate_limited_migration_of_an_idle_guest_leaves_the_cores_idle() {
    let test = "a_rate_limited_migration_of_an_idle_guest_leaves_the_cores_idle";
    let Some(_kvm) = common::prereq::kvm_with_tools(test, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 60 MiB of non-zero pages at 32 MiB/s: about 2 s of mostly waiting for the rate limit.
    let opts = RunOptions {
        config: common::run_options::config(&[("max-bandwidth", ParamValue::Int(32 << 20))]),
        machine: common::run_options::machine(64 << 20),
        after_ms: 1_000,
        prefill: true,
        ..common::run_options::local(image(dir.path(), Pattern::Idle))
    };
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert_eq!(r.memory_verified, Some(true));
    let c = r.host_cpu;
    eprintln!("{}", c.summary_line());
    assert!(c.wall_ms > 1_500.0, "{c:?}");
    assert!(c.pct_of_core(c.source_vcpus_ms) < 5.0, "{c:?}");
    assert!(c.pct_of_core(c.throttle_timer_ms) < 1.0, "{c:?}");
    // Reading, digesting and sending 32 MiB/s is a few % of a core; the rest is sleeping.
    assert!(c.pct_of_core(c.migration_thread_ms) < 15.0, "{c:?}");
    let d = r.destination.as_ref().unwrap();
    assert!(d.resumed);
    // The resumed idle guest costs nothing on the destination either.
    let after_ms = d.progress.as_ref().unwrap().interval_ms as f64;
    assert!(d.vcpus_cpu_ms_after < 0.05 * after_ms, "{d:?}");
}
