//! Turns `query-migrate` polls into the report's timeline and outcome, so a real QEMU run
//! writes the same timeseries.csv / events.csv / summary.json as `sim` and `run --kvm`.
//!
//! QEMU reports figures, not events, so the events are read off changes between polls:
//! a `dirty-sync` per step of `dirty-sync-count` (QEMU does not report how many pages each
//! sync found, so `newly_dirty_pages` is 0), a `throttle-set` per change of
//! `cpu-throttle-percentage`, and the `switchover` at `total-time - downtime` of a completed
//! migration (with the last `remaining` seen before it). A 100 ms poll can miss a throttle
//! step that QEMU overrode within the same window (two syncs in one poll): the figures are
//! what QEMU showed, never invented.

use super::qmp::{MigrationInfo, RamStats};
use crate::migration::{Event, MigrationOutcome, MigrationStatus, Sample, SyncReason, Timeline};

/// Most dirty-sync events one poll adds (QEMU syncs a few times per second at most; a 100 ms
/// poll sees one or two).
pub const MAX_SYNC_EVENTS_PER_POLL: u64 = 1000;
/// Latest time a recording holds (ms since the migration started, 2^50: 35,000 years). A
/// log may say more (`total-time` is anything a line claims); such times are held here.
pub const MAX_T_MS: u64 = 1 << 50;

/// Map QEMU's status names onto the report's statuses (postcopy, colo and pre-switchover
/// count as active: pages still flow; `none` has no row).
pub fn report_status(qemu_status: &str) -> Option<MigrationStatus> {
    Some(match qemu_status {
        "none" => return None,
        "setup" | "wait-unplug" => MigrationStatus::Setup,
        "device" => MigrationStatus::Device,
        "completed" => MigrationStatus::Completed,
        "failed" => MigrationStatus::Failed,
        "cancelling" => MigrationStatus::Cancelling,
        "cancelled" => MigrationStatus::Cancelled,
        _ => MigrationStatus::Active,
    })
}

/// Accumulates polls of one migration.
#[derive(Debug, Default)]
pub struct MigrationRecorder {
    /// Migration time minus observer time (ms, as given to [`MigrationRecorder::push`]): set
    /// at the first poll showing a migration from the `total-time` it showed (positive when
    /// attached to a migration already running).
    offset_ms: Option<i128>,
    timeline: Timeline,
    last: Option<MigrationInfo>,
    last_t_ms: u64,
    last_active_remaining: u64,
    last_ram: Option<RamStats>,
    /// The dirty-limit figures as QEMU last showed them (before the switchover).
    dirty_limit_per_round_us: Option<u64>,
    dirty_limit_ring_full_us: Option<u64>,
    throttle_steps: Vec<u32>,
    throttle_pct: u32,
    sync_count: u64,
    cpu_lost_s: f64,
    vcpus: u32,
    guest_pages_at_start: Option<u64>,
    guest_pages_last: Option<u64>,
    polls: Vec<(u64, serde_json::Map<String, serde_json::Value>)>,
}

impl MigrationRecorder {
    /// A recorder for a guest with `vcpus` vCPUs (for the vCPU-seconds the throttle took).
    pub fn new(vcpus: u32) -> Self {
        MigrationRecorder {
            vcpus: vcpus.max(1),
            ..Self::default()
        }
    }

    /// Record one poll made at observer time `obs_ms` (any monotonic ms clock), with the
    /// guest's total page writes so far if known. Polls before the migration started (status
    /// `none`) are ignored. Returns true if this poll showed a final status.
    pub fn push(&mut self, obs_ms: u64, info: &MigrationInfo, guest_pages: Option<u64>) -> bool {
        let Some(status) = report_status(&info.status) else {
            return false;
        };
        // i128: a log may say anything up to u64::MAX; the sums stay exact, never wrap.
        let offset = *self.offset_ms.get_or_insert_with(|| {
            i128::from(info.total_time_ms.unwrap_or(0)) - i128::from(obs_ms)
        });
        // Held at MAX_T_MS: past it the seconds `polls_jsonl` writes (an f64) no longer read
        // back as the same ms, and the recorded polls would be another migration.
        let t_ms = (i128::from(obs_ms) + offset).clamp(0, i128::from(MAX_T_MS)) as u64;
        let t_ms = t_ms.max(self.last_t_ms);
        let dt_s = t_ms.saturating_sub(self.last_t_ms) as f64 / 1000.0;
        // A cancelled or failed migration's reply has no `ram`: its figures stay what they
        // were at the last poll that had them.
        let ram = match &info.ram {
            Some(r) => r.clone(),
            None if status.is_final() => self.last_ram.clone().unwrap_or_default(),
            None => RamStats::default(),
        };
        if info.ram.is_some() {
            self.last_ram = info.ram.clone();
        }
        let throttle = info.cpu_throttle_percentage.unwrap_or(0).min(100) as u32;

        // The throttle in force since the last poll took this share of each vCPU.
        self.cpu_lost_s += f64::from(self.throttle_pct) / 100.0 * dt_s * f64::from(self.vcpus);

        let mut reached_final = false;
        // One event per sync QEMU counted, but a jump of more than MAX_SYNC_EVENTS_PER_POLL
        // (a sparse log, a hand-edited one: a single line once said 10^8 and took 6 GB) is
        // recorded from its last MAX_SYNC_EVENTS_PER_POLL steps: the count stays QEMU's.
        if ram.dirty_sync_count > self.sync_count.saturating_add(MAX_SYNC_EVENTS_PER_POLL) {
            self.sync_count = ram.dirty_sync_count - MAX_SYNC_EVENTS_PER_POLL;
        }
        while self.sync_count < ram.dirty_sync_count {
            self.sync_count += 1;
            let reason = if self.sync_count == 1 {
                SyncReason::Setup
            } else if status == MigrationStatus::Completed {
                SyncReason::Final
            } else {
                SyncReason::PassEnd
            };
            self.timeline.events.push(Event::DirtySync {
                t_ms,
                dirty_sync_count: self.sync_count,
                newly_dirty_pages: 0,
                reason,
            });
        }
        if throttle != self.throttle_pct && throttle > 0 {
            self.timeline.events.push(Event::ThrottleSet {
                t_ms,
                pct: throttle,
            });
            self.throttle_steps.push(throttle);
        }
        if status == MigrationStatus::Completed && !self.last.as_ref().is_some_and(|l| l.is_final())
        {
            let switch_ms = match (info.total_time_ms, info.downtime_ms) {
                (Some(total), Some(down)) => total.saturating_sub(down).min(t_ms),
                _ => t_ms,
            };
            self.timeline.events.push(Event::Switchover {
                t_ms: switch_ms,
                remaining_bytes: self.last_active_remaining,
            });
        }
        if status.is_final() {
            reached_final = true;
        }
        // A completed migration's last throttle stays in QEMU's reply; the vCPUs run free on
        // the destination, so do not count it on.
        self.throttle_pct = if status.is_final() { 0 } else { throttle };
        if matches!(status, MigrationStatus::Active | MigrationStatus::Setup) {
            self.last_active_remaining = ram.remaining;
            if info.dirty_limit_throttle_time_per_round_us.is_some() {
                self.dirty_limit_per_round_us = info.dirty_limit_throttle_time_per_round_us;
            }
            if info.dirty_limit_ring_full_time_us.is_some() {
                self.dirty_limit_ring_full_us = info.dirty_limit_ring_full_time_us;
            }
        }

        if let Some(p) = guest_pages {
            self.guest_pages_at_start.get_or_insert(p);
        }
        let write_rate = match (guest_pages, self.guest_pages_last) {
            (Some(now), Some(before)) if dt_s > 0.0 => now.saturating_sub(before) as f64 / dt_s,
            _ => 0.0,
        };
        if guest_pages.is_some() {
            self.guest_pages_last = guest_pages;
        }
        self.timeline.samples.push(Sample {
            t_ms,
            status,
            throttle_pct: throttle,
            transferred_bytes: ram.transferred,
            remaining_bytes: ram.remaining,
            dirty_pages_rate: ram.dirty_pages_rate,
            dirty_sync_count: ram.dirty_sync_count,
            expected_downtime_ms: info.expected_downtime_ms.unwrap_or(0),
            mbps: ram.mbps,
            // QEMU's throttle sleeps each vCPU for exactly its percentage of every period.
            guest_cpu_pct: if status == MigrationStatus::Device {
                0.0
            } else {
                100.0 - f64::from(throttle)
            },
            guest_write_pages_s: write_rate,
            dirty_limit_throttle_time_per_round_us: info
                .dirty_limit_throttle_time_per_round_us
                .unwrap_or(0),
            dirty_limit_ring_full_time_us: info.dirty_limit_ring_full_time_us.unwrap_or(0),
        });
        self.polls.push((t_ms, info.raw.clone()));
        self.last_t_ms = t_ms;
        self.last = Some(info.clone());
        reached_final
    }

    /// True once some poll showed a migration.
    pub fn started(&self) -> bool {
        self.offset_ms.is_some()
    }

    /// The last poll recorded.
    pub fn last(&self) -> Option<&MigrationInfo> {
        self.last.as_ref()
    }

    /// Every poll: (ms since the migration started, the `query-migrate` return value), the
    /// `--from-log` format's content.
    pub fn polls(&self) -> &[(u64, serde_json::Map<String, serde_json::Value>)] {
        &self.polls
    }

    /// The polls as `--from-log` lines: `{"t": SECONDS, "return": {...}}`.
    pub fn polls_jsonl(&self) -> String {
        let mut out = String::new();
        for (t_ms, raw) in &self.polls {
            let line = serde_json::json!({
                "t": *t_ms as f64 / 1000.0,
                "return": raw,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }

    /// The timeline and the outcome. `override_status` replaces a non-final or QEMU status
    /// when autoconv itself ended the migration (`not-converged` at the time limit, `failed`
    /// when QEMU died) with `reason`.
    pub fn finish(
        self,
        override_status: Option<MigrationStatus>,
        reason: Option<String>,
        guest_pause_ms: Option<u64>,
    ) -> (Timeline, MigrationOutcome) {
        let last = self.last.clone();
        let ram = last
            .as_ref()
            .and_then(|l| l.ram.clone())
            .or(self.last_ram.clone())
            .unwrap_or_default();
        let qemu_status = last
            .as_ref()
            .and_then(|l| report_status(&l.status))
            .unwrap_or(MigrationStatus::Failed);
        let status = override_status.unwrap_or(if qemu_status.is_final() {
            qemu_status
        } else {
            MigrationStatus::Failed
        });
        let completed = status == MigrationStatus::Completed;
        let reason = reason.or_else(|| last.as_ref().and_then(|l| l.error_desc.clone()));
        let reason = match (status, reason) {
            (MigrationStatus::Completed, _) => None,
            (_, Some(r)) => Some(r),
            (s, None) if !s.is_final() || s == MigrationStatus::Failed => {
                Some("the recording ended before the migration did".into())
            }
            (_, None) => None,
        };
        let elapsed_ms = last
            .as_ref()
            .and_then(|l| l.total_time_ms)
            .unwrap_or(self.last_t_ms);
        let max_throttle_pct = self.throttle_steps.iter().copied().max().unwrap_or(0);
        let guest_pages_written = match (self.guest_pages_at_start, self.guest_pages_last) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let outcome = MigrationOutcome {
            status,
            reason,
            // query-migrate's error-desc is text only.
            failure: None,
            elapsed_ms,
            total_time_ms: if completed { Some(elapsed_ms) } else { None },
            setup_time_ms: last.as_ref().and_then(|l| l.setup_time_ms).unwrap_or(0),
            downtime_ms: if completed {
                last.as_ref().and_then(|l| l.downtime_ms)
            } else {
                None
            },
            guest_pause_ms: if completed { guest_pause_ms } else { None },
            transferred_bytes: ram.transferred,
            normal_pages: ram.normal,
            zero_pages: ram.duplicate,
            dirty_sync_count: ram.dirty_sync_count,
            throttle_steps: dedup_max_repeats(&self.throttle_steps),
            max_throttle_pct,
            guest_cpu_lost_s: self.cpu_lost_s,
            guest_pages_written,
            dirty_limit_throttle_time_per_round_us: self.dirty_limit_per_round_us,
            dirty_limit_ring_full_time_us: self.dirty_limit_ring_full_us,
        };
        (self.timeline, outcome)
    }
}

/// Throttle steps as the core lists them: consecutive repeats listed once.
fn dedup_max_repeats(steps: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(steps.len());
    for &s in steps {
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(v: serde_json::Value) -> MigrationInfo {
        MigrationInfo::from_value(&v).unwrap()
    }

    fn poll(
        status: &str,
        total: u64,
        syncs: u64,
        throttle: Option<u64>,
        remaining: u64,
    ) -> MigrationInfo {
        let mut v = serde_json::json!({
            "status": status, "total-time": total, "setup-time": 5, "expected-downtime": 300,
            "ram": {"transferred": total * 1000, "remaining": remaining, "total": 1 << 29,
                    "duplicate": 10, "normal": total, "dirty-sync-count": syncs,
                    "dirty-pages-rate": 500, "mbps": 64.0}
        });
        if let Some(t) = throttle {
            v["cpu-throttle-percentage"] = t.into();
        }
        if status == "completed" {
            v["downtime"] = 15.into();
        }
        info(v)
    }

    #[test]
    fn events_and_outcome_follow_qemus_figures() {
        let mut r = MigrationRecorder::new(1);
        assert!(!r.push(0, &info(serde_json::json!({})), None));
        assert!(!r.started());
        // First poll 100 ms after `migrate`; QEMU says 100 ms of migration so far.
        r.push(1100, &poll("active", 100, 1, None, 4096 * 100), Some(0));
        r.push(
            1200,
            &poll("active", 200, 3, Some(20), 4096 * 50),
            Some(100),
        );
        r.push(
            1300,
            &poll("active", 300, 4, Some(30), 4096 * 10),
            Some(150),
        );
        let done = r.push(1400, &poll("completed", 390, 5, Some(30), 0), Some(160));
        assert!(done);
        let (tl, o) = r.finish(None, None, Some(20));
        assert_eq!(
            tl.samples.iter().map(|s| s.t_ms).collect::<Vec<_>>(),
            [100, 200, 300, 400]
        );
        assert_eq!(o.status, MigrationStatus::Completed);
        assert_eq!(o.total_time_ms, Some(390));
        assert_eq!(o.downtime_ms, Some(15));
        assert_eq!(o.guest_pause_ms, Some(20));
        assert_eq!(o.throttle_steps, vec![20, 30]);
        assert_eq!(o.dirty_sync_count, 5);
        assert_eq!(o.guest_pages_written, 160);
        // 20% for 100 ms then 30% for 100 ms on one vCPU.
        assert!(
            (o.guest_cpu_lost_s - 0.05).abs() < 1e-9,
            "{}",
            o.guest_cpu_lost_s
        );
        let syncs: Vec<u64> = tl
            .events
            .iter()
            .filter_map(|e| match e {
                Event::DirtySync {
                    dirty_sync_count, ..
                } => Some(*dirty_sync_count),
                _ => None,
            })
            .collect();
        assert_eq!(syncs, [1, 2, 3, 4, 5]);
        assert!(tl.events.contains(&Event::Switchover {
            t_ms: 375,
            remaining_bytes: 4096 * 10
        }));
        assert_eq!(tl.samples[1].guest_write_pages_s, 1000.0);
        assert_eq!(tl.samples[2].guest_cpu_pct, 70.0);
    }

    #[test]
    fn autoconv_can_override_the_end() {
        let mut r = MigrationRecorder::new(2);
        r.push(0, &poll("active", 5000, 2, None, 1 << 20), None);
        r.push(100, &info(serde_json::json!({"status": "cancelled"})), None);
        let (tl, o) = r.finish(
            Some(MigrationStatus::NotConverged),
            Some("not converged".into()),
            None,
        );
        assert_eq!(o.status, MigrationStatus::NotConverged);
        assert_eq!(o.total_time_ms, None);
        assert_eq!(o.reason.as_deref(), Some("not converged"));
        // QEMU's cancelled reply has no `ram`: the last figures it showed stand.
        assert_eq!(o.transferred_bytes, 5_000_000);
        assert_eq!(tl.samples[1].transferred_bytes, 5_000_000);
        assert_eq!(o.dirty_sync_count, 2);
        // Attached mid-migration: time counts from QEMU's start, not the first poll.
        let mut r = MigrationRecorder::new(1);
        r.push(10, &poll("active", 5000, 2, None, 1 << 20), None);
        r.push(110, &poll("active", 5100, 2, None, 1 << 20), None);
        let (tl, o) = r.finish(None, None, None);
        assert_eq!(tl.samples[1].t_ms, 5100);
        assert_eq!(o.status, MigrationStatus::Failed);
        assert!(o.reason.unwrap().contains("before the migration did"));
    }

    #[test]
    fn a_huge_sync_count_or_time_is_recorded_in_bounded_memory() {
        // One log line once said dirty-sync-count 10^8: 6 GB and a minute of events. The count
        // stays QEMU's; the events are the last MAX_SYNC_EVENTS_PER_POLL of the jump.
        let mut r = MigrationRecorder::new(1);
        r.push(0, &poll("active", 100, 1, None, 1 << 20), None);
        r.push(
            100,
            &poll("active", 200, 1_000_000_000_000, None, 1 << 20),
            None,
        );
        r.push(
            200,
            &poll("active", u64::MAX, u64::MAX, None, 1 << 20),
            None,
        );
        let (tl, o) = r.finish(None, None, None);
        assert_eq!(o.dirty_sync_count, u64::MAX);
        assert_eq!(tl.events.len() as u64, 1 + 2 * MAX_SYNC_EVENTS_PER_POLL);
        let counts: Vec<u64> = tl
            .events
            .iter()
            .filter_map(|e| match e {
                Event::DirtySync {
                    dirty_sync_count, ..
                } => Some(*dirty_sync_count),
                _ => None,
            })
            .collect();
        assert_eq!(counts[1], 1_000_000_000_000 - MAX_SYNC_EVENTS_PER_POLL + 1);
        assert_eq!(*counts.last().unwrap(), u64::MAX);
        // Times never go backwards, whatever total-time says.
        assert!(tl.samples.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    }
}
