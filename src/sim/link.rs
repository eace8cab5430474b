//! The simulated migration link: QEMU's RAM stream byte counts (`link.page_header_bytes` per
//! page beyond its data) on a wire of fixed capacity. Sending takes `bytes / capacity`
//! of virtual time; `max-bandwidth` is the core's business.

use super::clock::VirtualTime;
use crate::migration::{BackendError, Link, PageBatch, PageCost};
use crate::scenario::PAGE_SIZE_BYTES;

/// QEMU's `RAM_SAVE_FLAG_EOS` marker.
const EOS_BYTES: u64 = 8;
/// Section header around the device state.
const DEVICE_STATE_HEADER_BYTES: u64 = 32;
/// Batches carry up to this much link time. The core cuts batches at QEMU's 50 ms boundary
/// itself and the models' state does not depend on how finely sending and writing interleave,
/// so results are the same for 5, 20 or 50 ms; larger is cheaper.
const BATCH_NS: u64 = 50_000_000;

/// A link of `capacity_bytes_s`, advancing virtual time as it sends.
#[derive(Clone, Debug)]
pub struct SimLink {
    time: VirtualTime,
    capacity_bytes_s: u64,
    page_cost: PageCost,
    /// Sub-nanosecond remainder carried between sends so time never drifts (< capacity).
    carry: u64,
    /// [`Link::batch_bytes_hint`], asked for every batch: worked out once.
    batch_bytes: u64,
}

impl SimLink {
    /// A link over `time` whose pages carry `page_header_bytes` beyond their data (QEMU: 8, a
    /// zero page that + 1); `capacity_bytes_s` must be > 0.
    pub fn new(time: VirtualTime, capacity_bytes_s: u64, page_header_bytes: u64) -> Self {
        let capacity_bytes_s = capacity_bytes_s.max(1);
        Self {
            time,
            capacity_bytes_s,
            page_cost: PageCost {
                normal_page_bytes: PAGE_SIZE_BYTES + page_header_bytes,
                zero_page_bytes: page_header_bytes + 1,
            },
            carry: 0,
            batch_bytes: (u128::from(capacity_bytes_s) * u128::from(BATCH_NS) / 1_000_000_000)
                .max(64 << 10) as u64,
        }
    }

    /// This link, as it stands, on another time.
    pub fn with_time(&self, time: VirtualTime) -> Self {
        Self {
            time,
            ..self.clone()
        }
    }

    fn transmit(&mut self, bytes: u64) -> u64 {
        // In u64 while it fits (batches up to ~18 GB): a u128 division is a library call.
        let total = bytes
            .checked_mul(1_000_000_000)
            .and_then(|t| t.checked_add(self.carry));
        match total {
            Some(total) => {
                let cap = self.capacity_bytes_s;
                self.time.advance_ns(total / cap);
                self.carry = total % cap;
            }
            None => {
                let total = u128::from(bytes) * 1_000_000_000 + u128::from(self.carry);
                let cap = u128::from(self.capacity_bytes_s);
                self.time.advance_ns((total / cap) as u64);
                self.carry = (total % cap) as u64;
            }
        }
        bytes
    }
}

impl Link for SimLink {
    fn send_pages(&mut self, batch: &PageBatch) -> Result<u64, BackendError> {
        let cost = self.page_cost();
        let bytes =
            batch.normal_pages * cost.normal_page_bytes + batch.zero_pages * cost.zero_page_bytes;
        Ok(self.transmit(bytes))
    }

    fn send_end_of_iteration(&mut self) -> Result<u64, BackendError> {
        Ok(self.transmit(EOS_BYTES))
    }

    fn send_device_state(&mut self, state: &[u8]) -> Result<u64, BackendError> {
        Ok(self.transmit(state.len() as u64 + DEVICE_STATE_HEADER_BYTES))
    }

    fn page_cost(&self) -> PageCost {
        self.page_cost
    }

    fn batch_bytes_hint(&self) -> u64 {
        self.batch_bytes
    }

    fn complete(&mut self) -> Result<u64, BackendError> {
        Ok(0)
    }

    fn abort(&mut self, _reason: &str) {}
}
