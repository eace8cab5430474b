//! The host's TSC frequency, measured once when an image is built.

/// The host's TSC frequency in kHz, measured against CLOCK_MONOTONIC over ~20 ms. Baked into
/// images so the wall-clock pace is right under any VMM on this kind of machine.
pub fn measure_tsc_khz() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let t0 = unsafe { core::arch::x86_64::_rdtsc() };
        let w0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: as above.
        let t1 = unsafe { core::arch::x86_64::_rdtsc() };
        let ns = w0.elapsed().as_nanos().max(1) as u64;
        (t1.wrapping_sub(t0)).saturating_mul(1_000_000) / ns
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}
