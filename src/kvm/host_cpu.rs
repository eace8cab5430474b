//! Host CPU time the VMM's threads use: a vCPU that spins while its guest idles, or a migration
//! thread that polls, takes a core from the guest and the migration on a 2-core host, so runs
//! and benchmarks report it per thread.

use serde::Serialize;

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; an invalid clock id only returns an error.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time of the calling thread (ns).
pub fn this_thread_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// CPU time of a live thread of this process (ns), None if it cannot be read.
///
/// # Safety
/// `thread` must be a thread of this process that has not ended (been joined or exited).
pub unsafe fn thread_ns(thread: libc::pthread_t) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the caller guarantees the thread is live; `clock` is a valid out pointer.
    if unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } != 0 {
        return None;
    }
    clock_ns(clock)
}

/// CPU time of the whole process so far, ended threads included (ns).
pub fn process_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(0)
}

/// One thread of this process as `/proc/self/task/TID/stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskCpu {
    /// Thread id.
    pub tid: u32,
    /// Thread name (`vcpu0`, `throttle-timer`, ...).
    pub name: String,
    /// utime + stime (ns; the kernel counts in clock ticks, usually 10 ms).
    pub cpu_ns: u64,
}

/// Name and utime + stime (in clock ticks) from one `stat` line. The name may hold spaces and
/// parentheses, so the fields are counted from the last ')'.
pub fn parse_task_stat(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    // After ") " come state (field 3) ... utime (14) and stime (15): indices 11 and 12.
    let fields: Vec<&str> = line.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Every live thread of this process with its CPU time so far.
pub fn tasks() -> Vec<TaskCpu> {
    tasks_in("/proc/self/task")
}

/// Every live thread of process `pid` (a QEMU, say) with its CPU time so far; empty if the
/// process is gone or unreadable.
pub fn tasks_of(pid: u32) -> Vec<TaskCpu> {
    tasks_in(&format!("/proc/{pid}/task"))
}

fn tasks_in(task_dir: &str) -> Vec<TaskCpu> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let Ok(dir) = std::fs::read_dir(task_dir) else {
        return Vec::new();
    };
    let mut out: Vec<TaskCpu> = dir
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, ticks) = parse_task_stat(&line)?;
            Some(TaskCpu {
                tid,
                name,
                cpu_ns: ticks * 1_000_000_000 / ticks_per_s,
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// CPU each thread used between two [`tasks`] snapshots (threads present in both).
pub fn tasks_delta(before: &[TaskCpu], after: &[TaskCpu]) -> Vec<TaskCpu> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.tid == a.tid)?;
            Some(TaskCpu {
                cpu_ns: a.cpu_ns.saturating_sub(b.cpu_ns),
                ..a.clone()
            })
        })
        .collect()
}

/// The threads of another process (a QEMU) followed through a migration, sampled at each poll:
/// threads that start later (QEMU's `live_migration`) count from 0, threads that end keep
/// their last sample (up to one poll of their CPU is lost).
#[derive(Clone, Debug, Default)]
pub struct TaskWatch {
    pid: u32,
    /// Per thread: its latest sample, and its CPU at the first one (ns).
    seen: Vec<(TaskCpu, u64)>,
}

impl TaskWatch {
    /// Start following `pid`'s threads from now.
    pub fn start(pid: u32) -> TaskWatch {
        TaskWatch {
            pid,
            seen: tasks_of(pid)
                .into_iter()
                .map(|t| (t.clone(), t.cpu_ns))
                .collect(),
        }
    }

    /// Take a sample (a thread's name may be set after it starts: the latest is kept).
    pub fn sample(&mut self) {
        for t in tasks_of(self.pid) {
            match self.seen.iter_mut().find(|(s, _)| s.tid == t.tid) {
                Some((latest, _)) => *latest = t,
                None => self.seen.push((t, 0)),
            }
        }
    }

    /// CPU per thread name since the start, summed over threads sharing a name (QEMU's
    /// `worker` threads), in ms, most first.
    pub fn cpu_ms_by_name(&self) -> Vec<(String, f64)> {
        let mut by_name: Vec<(String, f64)> = Vec::new();
        for (t, first_ns) in &self.seen {
            let ms = t.cpu_ns.saturating_sub(*first_ns) as f64 / 1e6;
            match by_name.iter_mut().find(|(n, _)| *n == t.name) {
                Some((_, sum)) => *sum += ms,
                None => by_name.push((t.name.clone(), ms)),
            }
        }
        by_name.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by_name
    }
}

/// Host CPU of a migration (from the start of `migrate` to its end), by role: ms of CPU over
/// `wall_ms` (divide by it for cores).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HostCpu {
    /// Wall-clock time measured over (ms).
    pub wall_ms: f64,
    /// The whole process: every thread below, the digest threads, the local destination's
    /// vCPUs and anything else this process runs.
    pub process_ms: f64,
    /// The source's vCPU threads.
    pub source_vcpus_ms: f64,
    /// The thread running the migration (dirty syncs, reading and sending pages).
    pub migration_thread_ms: f64,
    /// The source's throttle timer.
    pub throttle_timer_ms: f64,
    /// The local destination's receiving thread (0 for a remote destination).
    pub destination_thread_ms: f64,
}

impl HostCpu {
    /// `ms` as a percentage of one core over the wall time.
    pub fn pct_of_core(&self, ms: f64) -> f64 {
        if self.wall_ms > 0.0 {
            100.0 * ms / self.wall_ms
        } else {
            0.0
        }
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        let p = |ms| self.pct_of_core(ms);
        format!(
            "host CPU over {:.0} ms (% of one core): process {:.0}%, source vCPUs {:.0}%, migration thread {:.0}%, destination thread {:.0}%, throttle timer {:.1}%",
            self.wall_ms,
            p(self.process_ms),
            p(self.source_vcpus_ms),
            p(self.migration_thread_ms),
            p(self.destination_thread_ms),
            p(self.throttle_timer_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (vcpu 0) (x)) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_task_stat(line), Some(("vcpu 0) (x)".into(), 150)));
        assert_eq!(parse_task_stat("4242 (short) S 1 2"), None);
    }

    #[test]
    fn a_spinning_thread_shows_its_cpu_and_a_sleeping_one_does_not() {
        let t0 = this_thread_ns();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        // At least some of 30 ms of spinning, even on a loaded host.
        assert!(this_thread_ns() - t0 > 1_000_000);
        let t1 = this_thread_ns();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(this_thread_ns() - t1 < 5_000_000);
        assert!(process_ns() >= this_thread_ns());
        let me = tasks();
        assert!(!me.is_empty());
        // SAFETY: pthread_self is this live thread.
        assert!(unsafe { thread_ns(libc::pthread_self()) }.unwrap() >= t1);
    }

    #[test]
    fn a_watch_keeps_a_thread_that_started_and_ended_between_its_ends() {
        let pid = std::process::id();
        let mut watch = TaskWatch::start(pid);
        let (go, stop) = (
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
        let (go2, stop2) = (go.clone(), stop.clone());
        let spinner = std::thread::Builder::new()
            .name("watched-spin".into())
            .spawn(move || {
                // Spin until told, after at least 100 ms of this thread's own CPU.
                let t0 = this_thread_ns();
                let mut x = 0u64;
                while !stop2.load(std::sync::atomic::Ordering::SeqCst)
                    || this_thread_ns() - t0 < 100_000_000
                {
                    x = std::hint::black_box(x.wrapping_add(1));
                    if this_thread_ns() - t0 >= 100_000_000 {
                        go2.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
            .unwrap();
        while !go.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The kernel's tick counters lag a tick or two behind: sample until they show it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let spun = |w: &TaskWatch| {
            w.cpu_ms_by_name()
                .iter()
                .find(|(n, _)| n == "watched-spin")
                .map_or(0.0, |(_, ms)| *ms)
        };
        while spun(&watch) < 80.0 && std::time::Instant::now() < deadline {
            watch.sample();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        spinner.join().unwrap();
        // Gone from /proc now, but its last sample stays, counted from 0 (it started later).
        watch.sample();
        let ms = spun(&watch);
        assert!((80.0..5_000.0).contains(&ms), "{ms} ms");
    }
}
