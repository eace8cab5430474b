//! Guest images the tests build from a [`GuestSpec`].

use std::path::{Path, PathBuf};

use autoconv::guest_image::{build_image, GuestSpec, Pace};

/// Build the image of `spec` into `dir/name`.
pub fn image(dir: &Path, name: &str, spec: &GuestSpec) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, build_image(spec).unwrap()).unwrap();
    path
}

/// `dir/paced.img`: a slow writer, 8 MiB written over and over with 50 000 spins between
/// page writes (the transport tests' guest: its migrations converge without a throttle).
pub fn paced(dir: &Path) -> PathBuf {
    let spec = GuestSpec {
        wss_bytes: 8 << 20,
        pace: Pace::CpuSpin {
            iterations_per_write: 50_000,
        },
        ..GuestSpec::default()
    };
    image(dir, "paced.img", &spec)
}
