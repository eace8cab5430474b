//! `autoconv run --kvm IMAGE --qmp unix:PATH` / `--monitor stdio`: the guest runs until a
//! monitor's client says `migrate`; the migration is the one `run --kvm` performs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::ctrl_c::ctrl_c_token;
use super::out::errln;
use super::run_kvm::KvmRunArgs;
use autoconv::monitor::{hmp, socket, Monitor};
use autoconv::session::kvm::{self as session, RunOptions, RunReport};

/// Serve the monitors `args` asks for and run the guest until a client migrates it and quits;
/// `None` if the client quit without migrating.
pub fn run_with_monitor(
    args: &KvmRunArgs,
    opts: &RunOptions,
    dirty_ring: bool,
) -> anyhow::Result<Option<RunReport>> {
    let monitor = Monitor::new(opts.config.clone(), dirty_ring);
    // Bound before the guest boots, so a client can connect as soon as the file exists.
    let _socket_file = match &args.qmp {
        None => None,
        Some(address) => {
            let path = socket::parse_address(address)?;
            let file = socket::QmpSocket::bind(&path)?.serve(monitor.clone())?;
            errln!(
                "autoconv: QMP on unix:{}; the guest runs until a client says migrate",
                path.display()
            );
            Some(file)
        }
    };
    if args.monitor.is_some() {
        let m = monitor.clone();
        std::thread::Builder::new()
            .name("hmp".into())
            .spawn(move || hmp::serve(&m, std::io::stdin().lock(), std::io::stdout()))?;
    }
    let (ctrl_c, done) = ctrl_c_token();
    // Ctrl-C is `quit`, also while the migration runs (it is cancelled first).
    let watcher = {
        let (m, c, d) = (monitor.clone(), ctrl_c.clone(), done.clone());
        std::thread::Builder::new()
            .name("ctrl-c-monitor".into())
            .spawn(move || {
                while !d.load(Ordering::SeqCst) {
                    if c.wait_timeout(Duration::from_millis(200)) {
                        m.request_quit();
                        return;
                    }
                }
            })?
    };
    let report = session::run_migration_gated(opts, &mut monitor.gate(ctrl_c));
    done.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    Ok(report?)
}
