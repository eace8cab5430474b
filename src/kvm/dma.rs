//! An emulated device that writes guest memory from the host at a set rate (DMA).
//!
//! Its writes go through vm-memory, whose bitmap records them: KVM's dirty log never sees
//! host writes, so without merging that bitmap a migration would lose them (and memory
//! verification would fail). The vCPU throttle cannot slow it; it stops only with the VM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::memory::{GuestRam, PAGE_BYTES};

/// What the device writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DmaConfig {
    /// Page writes per second.
    pub pages_per_s: u64,
    /// First byte of the region it cycles through.
    pub region_gpa: u64,
    /// Bytes of that region.
    pub region_bytes: u64,
}

/// A running device.
pub struct Dma {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Dma {
    /// Start writing: the first 8 bytes of each page of the region in turn get a running
    /// count, at `pages_per_s` (in 1 ms steps). `written` continues from an earlier run.
    pub fn start(ram: Arc<GuestRam>, cfg: DmaConfig, written: u64) -> std::io::Result<Dma> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let pages = (cfg.region_bytes / PAGE_BYTES).max(1);
        let first = cfg.region_gpa / PAGE_BYTES;
        let thread = std::thread::Builder::new()
            .name("dma".into())
            .spawn(move || {
                let t0 = Instant::now();
                let mut n = written;
                let mut done_here = 0u64;
                while !s.load(Ordering::Relaxed) {
                    let due = (t0.elapsed().as_secs_f64() * cfg.pages_per_s as f64) as u64;
                    while done_here < due {
                        let gfn = first + n % pages;
                        ram.write(gfn * PAGE_BYTES, &n.to_le_bytes());
                        n += 1;
                        done_here += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            })?;
        Ok(Dma {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop and return the total writes so far.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
