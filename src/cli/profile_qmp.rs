//! `autoconv profile --qmp SOCKET`: a running QEMU VM's dirty rate at several intervals, the
//! working-set fit, and the profile and scenario written from it.

use super::exit;
use super::out::{out, outln};
use super::profile::{plot_to, print_rows, verdict_text, ProfileArgs};
use autoconv::qemu::dirty_rate::{
    measure_series, per_vcpu_rates, query_vm_shape, DirtyRateMode, DirtyRateReading,
};
use autoconv::qemu::measured_vm::MeasuredVm;
use autoconv::qemu::qmp::QmpClient;
use autoconv::report::host::HostInfo;
use autoconv::report::write_file_atomically;
use autoconv::sim::working_set_fit::{fit, IntervalSample};
use autoconv::units::format_bytes;
use std::path::Path;
use std::time::Duration;

/// Longest calc-time QEMU accepts (s).
const MAX_CALC_TIME_S: u64 = 60;

fn check_calc_times(times: &[u64]) -> anyhow::Result<()> {
    if let Some(bad) = times.iter().find(|&&t| t == 0 || t > MAX_CALC_TIME_S) {
        anyhow::bail!(
            "--calc-times: {bad} s is outside QEMU's calc-time range (1 to {MAX_CALC_TIME_S} s)"
        );
    }
    let mut distinct = times.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        anyhow::bail!("--calc-times: at least two different intervals are needed to separate the working set from the write rate, e.g. 1,2,4,8");
    }
    Ok(())
}

fn mode_arg(text: &str) -> anyhow::Result<Option<DirtyRateMode>> {
    if text == "auto" {
        return Ok(None);
    }
    DirtyRateMode::from_name(text).map(Some).ok_or_else(|| {
        anyhow::anyhow!("--mode {text:?}: expected auto, page-sampling, dirty-bitmap or dirty-ring")
    })
}

/// Handler of `profile --qmp`.
pub(super) fn run(args: &ProfileArgs, socket: &Path, bandwidth: Option<f64>) -> anyhow::Result<u8> {
    check_calc_times(&args.calc_times)?;
    let mode = mode_arg(&args.mode)?;
    if mode == Some(DirtyRateMode::DirtyRing) {
        anyhow::bail!("--mode dirty-ring: its rate counts pages per ring harvest, not distinct pages over calc-time, so it does not show the working set; use dirty-bitmap or page-sampling (auto also takes per-vCPU rates from the dirty rings when the VM has them)");
    }
    if args.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    if args.sample_pages.is_some() && mode.is_some_and(|m| m != DirtyRateMode::PageSampling) {
        anyhow::bail!("--sample-pages applies to --mode page-sampling only");
    }
    // QEMU's replies come at once; calc-dirty-rate returns before it measures.
    let mut qmp = QmpClient::connect(socket, Duration::from_secs(10))?;
    let version = qmp.version().clone();
    let shape = query_vm_shape(&mut qmp)?;
    if shape.status != "running" {
        anyhow::bail!(
            "the VM behind {} is {}, not running: a stopped guest dirties nothing; resume it (QMP cont) and profile again",
            socket.display(),
            shape.status
        );
    }
    let total_s: u64 = args.calc_times.iter().sum::<u64>() * u64::from(args.repeats);
    outln!(
        "{}: QEMU {}, {} RAM, {} vCPU(s); measuring the dirty rate over {} s (calc-time {} s){}",
        socket.display(),
        version.major_minor(),
        format_bytes(shape.memory_bytes),
        shape.vcpus,
        total_s,
        join(&args.calc_times, ", "),
        if args.repeats > 1 {
            format!(", {} times each", args.repeats)
        } else {
            String::new()
        }
    );
    outln!(
        "  {:>9}  {:>13}  {:>12}  {:>14}  {:>14}",
        "calc-time",
        "mode",
        "dirty-rate",
        "pages/s",
        "distinct pages"
    );
    let readings = measure_series(
        &mut qmp,
        mode,
        &args.calc_times,
        args.repeats,
        args.sample_pages,
        &mut |d| {
            std::thread::sleep(d);
            true
        },
        &mut |r| print_reading(r),
    )?;
    let used = readings[0].mode;
    // Which vCPUs write: only dirty rings tell, and only VMs started with them have them.
    let rings = if mode.is_none() {
        let shortest = *args.calc_times.iter().min().unwrap_or(&1);
        let r = per_vcpu_rates(&mut qmp, shortest, &mut |d| {
            std::thread::sleep(d);
            true
        })?;
        if let Some(r) = &r {
            outln!("  per-vCPU rates (dirty-ring; not in the fit: rings count a re-written page again):");
            print_reading(r);
        }
        r
    } else {
        None
    };
    let samples: Vec<IntervalSample> = readings
        .iter()
        .map(|r| IntervalSample {
            interval_s: r.calc_time_s as f64,
            distinct_pages: r.distinct_pages(),
        })
        .collect();
    let memory_pages = (shape.memory_bytes / 4096) as f64;
    let f = fit(&samples, memory_pages)?;
    // vCPUs seen writing, where QEMU gives per-vCPU rates.
    let writing = rings
        .iter()
        .map(|r| {
            r.vcpu_dirty_rate_mib_s
                .iter()
                .filter(|(_, v)| *v > 0)
                .count() as u32
        })
        .max()
        .unwrap_or(shape.vcpus);
    let vm = MeasuredVm {
        memory_bytes: shape.memory_bytes,
        vcpus: shape.vcpus,
        writing_vcpus: writing.max(1),
        samples,
        fit: f,
        source: format!(
            "qmp:{} (QEMU {}, {}, calc-time {} s; throttled rows modelled)",
            socket.display(),
            version.major_minor(),
            used.name(),
            join(&args.calc_times, "/")
        ),
        host: HostInfo::this_host(),
    };
    outln!(
        "fit U(T) = N(1 - e^(-wT/N)): working set N = {} pages ({}), write rate w = {:.0} pages/s, rms {:.0} pages; the longest interval reached {:.0}% of N",
        vm.working_set_pages(),
        format_bytes(vm.working_set_pages() * 4096),
        f.write_rate_pages_s,
        f.rms_pages,
        100.0 * f.saturation
    );
    if f.at_ceiling {
        outln!("  the curve had not bent by the longest interval: the working set is only known to be large (N set to the guest's memory); measure longer calc-times");
    } else if f.saturation > 0.95 {
        outln!("  every interval was long enough to nearly fill the working set: N is well measured, w only roughly; add shorter calc-times for w");
    } else if f.saturation < 0.3 {
        outln!(
            "  the curve barely bent over the intervals: N is uncertain; measure longer calc-times"
        );
    }
    let profile = vm.profile();
    outln!("modelled throttle curve (CPU-bound writes: a throttle of p% leaves (1 - p/100) of the rate), per 1 s harvest:");
    print_rows(&profile);
    let bw = bandwidth.unwrap_or(128.0 * 1024.0 * 1024.0);
    out!("{}", verdict_text(&profile, &profile.verdict(bw, 50)));
    if let Some(out) = &args.output {
        let mut bytes = Vec::new();
        let mut profile = profile.clone();
        profile.set_verdict_settings(bw, 50);
        profile.write(&mut bytes)?;
        write_file_atomically(out, &bytes)?;
        outln!("wrote {}", out.display());
    }
    if let Some(out) = &args.scenario_out {
        let name = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vm".into());
        let command = std::iter::once("autoconv".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        write_file_atomically(out, vm.scenario_toml(&name, &command).as_bytes())?;
        outln!(
            "wrote {} (autoconv sim {} runs it)",
            out.display(),
            out.display()
        );
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{}: dirty rate vs throttle (QMP, modelled)",
            socket.display()
        );
        plot_to(&profile, &title, bw, 50, path)?;
    }
    if args.json {
        super::out::print_json(&super::profile::profile_json(&profile, bw, 50));
    }
    Ok(exit::OK)
}

fn print_reading(r: &DirtyRateReading) {
    outln!(
        "  {:>7} s  {:>13}  {:>8} MiB/s  {:>14.0}  {:>14.0}",
        r.calc_time_s,
        r.mode.name(),
        r.dirty_rate_mib_s,
        r.dirty_pages_s(),
        r.distinct_pages()
    );
    if !r.vcpu_dirty_rate_mib_s.is_empty() {
        let per: Vec<String> = r
            .vcpu_dirty_rate_mib_s
            .iter()
            .map(|(id, v)| format!("vCPU {id}: {v} MiB/s"))
            .collect();
        outln!("  {:>9}  {}", "", per.join(", "));
    }
}

fn join(v: &[u64], sep: &str) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(sep)
}
