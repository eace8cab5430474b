//! Ctrl-C on a one-shot destination (`accept_one_with`: `run --kvm`'s local destination, the
//! in-process soak) ends the migration it admitted, at any point until the guest starts there,
//! as `incoming`'s (`serve_with_stats`) does: it says it was cancelled here, never that the
//! source aborted, resumes nothing, and the source keeps its guest. Real KVM; skipped with a
//! printed reason without /dev/kvm, failing under AUTOCONV_REQUIRE_ALL=1.

mod common;

use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use autoconv::migration::{CancelToken, MigrationStatus};
use autoconv::session::kvm::run_migration;
use autoconv::transport::incoming::{accept_one_with, DestinationConfig, Incoming};
use autoconv::transport::link::LinkTimeouts;
use autoconv::transport::TransportError;

/// A one-shot destination on a free port with its own cancel token.
fn destination(
    cancel: &CancelToken,
) -> (
    std::net::SocketAddr,
    JoinHandle<Result<Incoming, TransportError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = cancel.clone();
    let config = DestinationConfig::plain(Default::default());
    let h = std::thread::spawn(move || accept_one_with(&listener, &cancel, &config));
    (addr, h)
}

#[test]
fn ctrl_c_on_a_one_shot_destination_during_precopy_ends_it_there_and_the_source_runs_on() {
    let Some(_g) = common::prereq::kvm("ctrl_c_on_a_one_shot_destination_during_precopy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let (addr, dest) = destination(&cancel);
    // 32 MiB of memory at 8 MiB/s: the first pass alone takes 4 s.
    let mut opts =
        common::stalled_link::options(dir.path(), addr, 8 << 20, 32 << 20, LinkTimeouts::default());
    opts.config.params.max_bandwidth = 8 << 20;
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            cancel.cancel();
        })
    };
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    canceller.join().unwrap();
    let e = match dest.join().unwrap() {
        Ok(_) => panic!("the cancelled destination resumed the guest"),
        Err(e) => e,
    };
    assert!(
        matches!(e, TransportError::CancelledHere { .. }),
        "{e}: not said as cancelled here"
    );
    let o = &r.outcome;
    assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
    assert!(!r.source_paused);
    let after = r.source_after.as_ref().expect("source watched after");
    assert!(after.pages_written_per_s > 0.0, "{after:?}");
}
