//! COM1, just enough of a 16550 for kernels that print: bytes written to the transmit register
//! are captured (and counted as progress markers); the line status always says "ready".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// Bytes of output kept (the count goes on past it).
const KEEP_BYTES: usize = 1 << 20;

/// The captured serial output of one VM.
#[derive(Default)]
pub struct Serial {
    bytes: Mutex<Vec<u8>>,
    count: AtomicU64,
    /// Divisor-latch access bit of the line control register (writes to +0 then set the
    /// baud divisor, not data).
    dlab: std::sync::atomic::AtomicBool,
}

impl Serial {
    /// A port write from the guest.
    pub fn port_out(&self, port: u16, data: &[u8]) {
        let Some(&byte) = data.first() else { return };
        match port.wrapping_sub(COM1) {
            0 if !self.dlab.load(Ordering::Relaxed) => {
                self.count.fetch_add(1, Ordering::Relaxed);
                let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                if b.len() < KEEP_BYTES {
                    b.push(byte);
                }
            }
            3 => self.dlab.store(byte & 0x80 != 0, Ordering::Relaxed),
            _ => {} // other UART registers, other ports: ignored
        }
    }

    /// A port read from the guest.
    pub fn port_in(&self, port: u16, data: &mut [u8]) {
        let value = match port.wrapping_sub(COM1) {
            5 => 0x60, // line status: transmitter empty, holding register empty
            2 => 0x01, // interrupt identification: none pending
            0..=7 => 0,
            _ => 0xff, // nothing there
        };
        data.fill(value);
    }

    /// Bytes the guest wrote to COM1 so far.
    pub fn byte_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The captured output (the first MiB).
    pub fn captured(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
