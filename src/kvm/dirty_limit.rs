//! dirty-limit on a real guest: QEMU's per-vCPU controller
//! ([`crate::migration::dirty_limit::DirtyLimitController`]) run by a thread every
//! `x-vcpu-dirty-limit-period`, from each vCPU's dirty-ring entries, setting the sleep each
//! vCPU serves when its ring fills (served on the vCPU thread, see `Control::serve_dirty_limit`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::Control;
use super::memory::PAGE_BYTES;
use super::vstate::dirty_ring::DirtyRings;
use crate::migration::dirty_limit::{dirty_rate_mb_s, DirtyLimitController, VcpuDirtyLimit};

/// The running controller.
pub struct DirtyLimitThread {
    stop: Arc<AtomicBool>,
    quota_mb_s: Arc<AtomicU64>,
    controller: Arc<Mutex<DirtyLimitController>>,
    control: Arc<Control>,
    vcpus: u32,
    handle: Option<JoinHandle<()>>,
}

impl DirtyLimitThread {
    /// Start measuring and limiting every vCPU.
    pub fn start(
        limit: VcpuDirtyLimit,
        rings: Arc<DirtyRings>,
        control: Arc<Control>,
        vcpus: u32,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let quota_mb_s = Arc::new(AtomicU64::new(limit.quota_mb_s));
        let controller = Arc::new(Mutex::new(DirtyLimitController::new(
            vcpus as usize,
            rings.entries_per_ring(),
            PAGE_BYTES,
        )));
        let (s, q, c, ctl) = (
            stop.clone(),
            quota_mb_s.clone(),
            controller.clone(),
            control.clone(),
        );
        let period_ms = limit.period_ms.max(1);
        let handle = std::thread::Builder::new()
            .name("dirty-limit".into())
            .spawn(move || {
                let mut last = rings.flush_counts().unwrap_or_default();
                let mut next = Instant::now() + Duration::from_millis(period_ms);
                while !s.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        // Short naps so a stop is seen within 10 ms.
                        std::thread::sleep((next - now).min(Duration::from_millis(10)));
                        continue;
                    }
                    next += Duration::from_millis(period_ms);
                    let Ok(counts) = rings.flush_counts() else {
                        continue;
                    };
                    let quota = q.load(Ordering::SeqCst);
                    let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                    for (v, &total) in counts.iter().enumerate().take(vcpus as usize) {
                        let pages = total.saturating_sub(last.get(v).copied().unwrap_or(0));
                        c.adjust(v, quota, dirty_rate_mb_s(pages, PAGE_BYTES, period_ms));
                        ctl.set_dirty_limit_sleep_us(v as u32, c.throttle_us_per_full(v));
                    }
                    last = counts;
                }
            })?;
        Ok(Self {
            stop,
            quota_mb_s,
            controller,
            control,
            vcpus,
            handle: Some(handle),
        })
    }

    /// A new quota for the running controller (`vcpu-dirty-limit` changed).
    pub fn set_quota(&self, quota_mb_s: u64) {
        self.quota_mb_s.store(quota_mb_s, Ordering::SeqCst);
    }

    /// query-migrate's (`dirty-limit-throttle-time-per-round`, `dirty-limit-ring-full-time`).
    pub fn figures_us(&self) -> (u64, u64) {
        let c = self.controller.lock().unwrap_or_else(|e| e.into_inner());
        (c.throttle_time_per_round_us(), c.ring_full_time_avg_us())
    }

    /// Stop the controller and take every vCPU's sleep away (`qmp_cancel_vcpu_dirty_limit`).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        for v in 0..self.vcpus {
            self.control.set_dirty_limit_sleep_us(v, 0);
        }
    }
}

impl Drop for DirtyLimitThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
