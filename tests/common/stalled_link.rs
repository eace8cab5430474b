//! The source side of the tests whose link to the destination stalls or is cut: a guest
//! writing sequentially, migrated over TCP to `addr` (a silent peer, a relay, a destination
//! in the test's process) with no rate limit, so whatever stops the migration is the link.

use std::net::SocketAddr;
use std::path::Path;

use autoconv::guest_image::{GuestSpec, Pattern};
use autoconv::session::kvm::{Destination, RunOptions};
use autoconv::transport::link::LinkTimeouts;

/// A guest writing `wss_bytes` sequentially in `mem_bytes`, built into `dir`, migrated to
/// `addr` after 200 ms under `timeouts`.
pub fn options(
    dir: &Path,
    addr: SocketAddr,
    wss_bytes: u64,
    mem_bytes: u64,
    timeouts: LinkTimeouts,
) -> RunOptions {
    let spec = GuestSpec {
        pattern: Pattern::Sequential,
        wss_bytes,
        ..GuestSpec::default()
    };
    RunOptions {
        machine: super::run_options::machine(mem_bytes),
        config: super::run_options::unlimited(),
        destination: Destination::Remote(addr),
        warmup_ms: 200,
        timeouts,
        ..super::run_options::local(super::guest::image(dir, "g.img", &spec))
    }
}
