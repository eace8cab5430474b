//! Guest images the tests build from a [`GuestSpec`].

use std::path::{Path, PathBuf};

use autoconv::guest_image::{build_image, GuestSpec, Pace};

/// Build the image of `spec` into `dir/name`.
pub fn image(dir: &Path, name: &str, spec: &GuestSpec) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, build_image(spec).unwrap()).unwrap();
    path
}

/// `dir/paced.img`: `wss_bytes` written over and over, 50 000 spins between page writes (at
/// 8 MiB, the transport tests' guest: its migrations converge without a throttle).
pub fn paced(dir: &Path, wss_bytes: u64) -> PathBuf {
    let spec = GuestSpec {
        wss_bytes,
        pace: Pace::CpuSpin {
            iterations_per_write: 50_000,
        },
        ..GuestSpec::default()
    };
    image(dir, "paced.img", &spec)
}

/// The CLI tests' `run --kvm IMAGE` argument: [`paced`] at 32 MiB, a guest that dirties memory
/// faster than 16 MiB/s, so auto-converge has to throttle it.
pub fn paced_cli(dir: &Path) -> String {
    paced(dir, 32 << 20).display().to_string()
}

/// The QEMU tests' `-kernel`/`--qemu` argument: `dir/seq32.img`, a sequential writer over
/// 32 MiB (one vCPU, a marker per sweep). It re-dirties every page of a pass long before a
/// 16 MiB/s link has sent it, so it out-dirties such a link.
pub fn sequential_cli(dir: &Path) -> String {
    let spec = GuestSpec {
        wss_bytes: 32 << 20,
        ..GuestSpec::default()
    };
    image(dir, "seq32.img", &spec).display().to_string()
}
