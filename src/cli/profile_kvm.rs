//! `autoconv profile --kvm IMAGE`: boot a real guest and measure its throttle vs dirty-rate
//! curve into the profile CSV.

use super::out::outln;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use super::ctrl_c::ctrl_c_token;
use super::kvm_guest::KvmGuestArgs;
use super::values::parse_duration_ms;
use autoconv::kvm::profile::profile_machine;

/// `autoconv profile --kvm IMAGE`: the throttle vs dirty-rate curve.
#[derive(Args, Debug, Clone)]
#[command(after_help = PROFILE_HELP)]
pub struct KvmProfileArgs {
    /// The guest and its VM.
    #[command(flatten)]
    pub guest: KvmGuestArgs,
    /// Throttle levels (%), comma-separated.
    #[arg(
        long,
        default_value = "0,10,20,30,40,50,60,70,80,90,99",
        value_delimiter = ','
    )]
    pub levels: Vec<u32>,
    /// How long each level is held (measured after a settling period of one throttle period).
    #[arg(long, default_value = "3s", value_parser = parse_duration_ms)]
    pub hold: u64,
    /// How often the dirty log is harvested while holding (QEMU computes its dirty rate over
    /// periods of at least 1 s).
    #[arg(long, default_value = "1s", value_parser = parse_duration_ms)]
    pub sync_interval: u64,
    /// CSV output (default: print only).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

const PROFILE_HELP: &str = "\
Holds the vCPU throttle at each level with dirty logging on (as during a migration) and
measures the guest's dirty rate (distinct pages newly dirtied per second, harvested every
--sync-interval) and its own write rate. If the dirty rate at 99% is still above what the
link carries, auto-converge cannot make this workload converge.

The CSV is the profile format the simulator reads (see README, \"The profile CSV\"):
throttle_pct, dirty_pages_s, interval_ms, ..., guest_write_pages_s, guest_cpu_pct, hold_ms,
syncs, page_size_bytes, memory_bytes, vcpus, source. A scenario region with
pattern = \"profile\" takes it as its workload; `autoconv plot FILE.csv --bandwidth RATE` draws
it against auto-converge's threshold.";

/// Handler of `autoconv profile --kvm`.
pub fn profile_kvm(args: &KvmProfileArgs) -> anyhow::Result<u8> {
    if let Some(why) = autoconv::kvm::unavailable_reason() {
        anyhow::bail!("{why}");
    }
    if let Some(bad) = args.levels.iter().find(|&&p| p > 99) {
        anyhow::bail!("throttle level {bad}%: levels are 0..=99");
    }
    let plan_path = args.guest.image()?;
    let plan = autoconv::kvm::LoadPlan::from_file(plan_path, args.guest.mem)?;
    let mut cfg = args.guest.machine();
    if cfg.vcpus == 0 {
        cfg.vcpus = plan.info.as_ref().map_or(1, |i| i.vcpus);
    }
    if let Some(info) = &plan.info {
        outln!("guest: {info}");
    }
    let mut machine = autoconv::kvm::Machine::boot(cfg, &plan, args.guest.boot)?;
    machine.set_dma(args.guest.dma())?;
    machine.start()?;
    let (cancel, done) = ctrl_c_token();
    cancel.wait_timeout(Duration::from_millis(1000));
    let rows = profile_machine(
        &mut machine,
        &args.levels,
        args.hold,
        args.sync_interval,
        &cancel,
    );
    done.store(true, Ordering::SeqCst);
    let rows = rows?;
    outln!("throttle_pct  dirty_pages/s  dirty_MiB/s  guest_writes/s  guest_cpu_pct");
    for r in &rows {
        outln!(
            "{:>12}  {:>13.0}  {:>11.1}  {:>14.0}  {:>13.1}",
            r.throttle_pct,
            r.dirty_pages_per_s,
            r.dirty_bytes_per_s / (1 << 20) as f64,
            r.guest_write_pages_per_s,
            r.guest_cpu_pct
        );
    }
    if let Some(out) = &args.output {
        // The profile CSV the simulator reads (src/report/profile.rs), so a scenario region can
        // take this guest's curve as its workload.
        let vcpus = machine.vcpu_count();
        // The calibration holds on a host like this one: record which it was.
        let host = autoconv::report::host::HostInfo::this_host();
        let profile = autoconv::report::profile::Profile {
            rows: rows
                .iter()
                .map(|r| autoconv::report::profile::ProfileRow {
                    throttle_pct: r.throttle_pct,
                    dirty_pages_s: r.dirty_pages_per_s,
                    interval_ms: args.sync_interval,
                    dirty_pages_s_min: None,
                    dirty_pages_s_max: None,
                    guest_write_pages_s: Some(r.guest_write_pages_per_s),
                    guest_cpu_pct: Some(r.guest_cpu_pct),
                    hold_ms: Some(r.hold_ms),
                    syncs: Some(r.syncs),
                    page_size_bytes: Some(4096),
                    memory_bytes: Some(args.guest.mem),
                    vcpus: Some(vcpus),
                    source: Some(format!("kvm:{}", plan_path.display())),
                    host_cpu_model: Some(host.cpu_model.clone()),
                    host_cores: Some(host.cores),
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        profile.write(&mut bytes)?;
        autoconv::report::write_file_atomically(out, &bytes)?;
        outln!("wrote {}", out.display());
    }
    Ok(super::exit::OK)
}
