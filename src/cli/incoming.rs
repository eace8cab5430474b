//! `autoconv incoming tcp:HOST:PORT`: be the destination of a real guest's live migration.

use super::out::{errln, outln};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;

use super::ctrl_c::ctrl_c_token;
use super::kvm_guest::counters_text;
use super::values::{parse_duration_ms, parse_size};
use autoconv::kvm::DirtyLogMode;
use autoconv::report::write_dir_atomically;
use autoconv::session::kvm as session;
use autoconv::transport::{self, incoming};

/// `autoconv incoming tcp:HOST:PORT`: be a migration destination.
#[derive(Args, Debug, Clone)]
#[command(after_help = INCOMING_HELP)]
pub struct IncomingArgs {
    /// Where to listen: tcp:HOST:PORT (port 0 picks a free port and prints it).
    #[arg(value_name = "tcp:HOST:PORT")]
    pub address: String,
    /// Write incoming.json and serial.txt there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop the resumed guest after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration_ms)]
    pub run_for: Option<u64>,
    /// Accept only sources that present a certificate signed by DIR/ca-cert.pem, inside TLS
    /// (as QEMU's tls-creds-x509 dir=, endpoint=server, verify-peer=on): DIR holds
    /// ca-cert.pem, server-cert.pem and server-key.pem.
    #[arg(long, value_name = "DIR")]
    pub tls_creds: Option<PathBuf>,
    /// Refuse a source whose guest has more memory than this (checked in the handshake, before
    /// any is allocated; 90% of the host's available memory is refused in any case).
    #[arg(long, value_parser = parse_size)]
    pub max_mem: Option<u64>,
    /// Overall deadline of one peer's handshake (TLS and the migration's opening message).
    #[arg(long, default_value = "10s", value_parser = parse_duration_ms)]
    pub handshake_timeout: u64,
    /// After the handshake, give up on a source that moves no byte for this long: mid-stream,
    /// or after this destination said READY and waits for its COMMIT (without COMMIT the
    /// guest is not resumed here). Writes to the source block at most this long too.
    #[arg(long, default_value = "30s", value_parser = parse_duration_ms)]
    pub stall_timeout: u64,
    /// Give up on one migration that has not ended this long after its connection was
    /// accepted, however steadily the source sends (default: no bound, as QEMU's -incoming).
    #[arg(long, value_parser = parse_duration_ms)]
    pub deadline: Option<u64>,
    /// After a migration that fails (the stream broke, the source aborted, memory did not
    /// verify), report it and wait for the next source instead of exiting 1 as QEMU's
    /// -incoming destination does.
    #[arg(long)]
    pub keep_listening: bool,
}

const INCOMING_HELP: &str = "\
Waits for one `autoconv run --kvm ... --migrate tcp:HOST:PORT`, checks every frame
(known commands, sizes, addresses inside guest memory), loads memory and vCPU state,
compares a CRC32 of every page with the source's (keyed for this session), loads the
vCPU state, answers READY, and resumes the guest only on the source's COMMIT (after
which the source never resumes its copy); the guest keeps running here; its progress counters continue from
the source's values. Peers that fail the handshake (no valid certificate under
--tls-creds, garbage, silence past --handshake-timeout) are reported on stderr and it
keeps listening. A source silent past --stall-timeout, or a migration past --deadline,
fails it. A migration that fails ends it with exit 1, as QEMU's -incoming
destination exits; --keep-listening reports it and waits for the next source.";

/// Handler of `autoconv incoming`.
pub fn incoming(args: &IncomingArgs) -> anyhow::Result<u8> {
    if let Some(why) = autoconv::kvm::unavailable_reason() {
        anyhow::bail!("{why}");
    }
    // Before listening: no peer can make this command write where it may not.
    if let Some(dir) = &args.out {
        autoconv::report::check_output_dir(dir)?;
    }
    let addr = transport::parse_tcp_address(&args.address)?;
    let tls = match &args.tls_creds {
        Some(dir) => {
            transport::tls::TlsCreds::load(dir, transport::tls::Endpoint::Server)?.server()
        }
        None => None,
    };
    let config = incoming::DestinationConfig {
        dirty_log: DirtyLogMode::Bitmap,
        tls,
        max_mem_bytes: args.max_mem,
        handshake_timeout: Duration::from_millis(args.handshake_timeout.max(1)),
        stall_timeout: Duration::from_millis(args.stall_timeout.max(1)),
        deadline: args.deadline.map(|ms| Duration::from_millis(ms.max(1))),
        keep_listening: args.keep_listening,
    };
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| transport::TransportError::Listen {
            addr: args.address.clone(),
            source,
        })?;
    let bound = listener.local_addr()?;
    if config.tls.is_none() && !bound.ip().is_loopback() {
        errln!(
            "autoconv: warning: listening on tcp:{bound} in the clear: anyone who can reach it can read this migration or write a guest here (use --tls-creds DIR)"
        );
    }
    outln!("listening on tcp:{bound}");
    let (cancel, done) = ctrl_c_token();
    let t0 = Instant::now();
    let received = incoming::serve_with_stats(&listener, &cancel, &config, &mut |line| {
        errln!("autoconv: incoming: {line}; still listening");
    });
    let inc = match received {
        Ok(i) => i,
        Err(incoming::IncomingFailed { error: e, stats }) => {
            done.store(true, Ordering::SeqCst);
            let msg = autoconv::migration::error_chain(&e);
            if let Some(dir) = &args.out {
                let json = pretty(&failed_json(&e, &msg, stats.as_deref()));
                write_dir_atomically(dir, &[("incoming.json", json.as_bytes())])?;
            }
            errln!("autoconv: incoming migration failed: {msg}");
            return Ok(match e.failure_kind() {
                autoconv::migration::FailureKind::MemoryMismatch { .. } => {
                    super::exit::MEMORY_MISMATCH
                }
                _ => super::exit::NOT_COMPLETED,
            });
        }
    };
    let at_resume = inc.counters_at_resume.clone();
    outln!(
        "migration received in {} ms: memory verified ({} pages, {:.1} ms), guest resumed at {}",
        t0.elapsed().as_millis(),
        inc.stats.verified_pages,
        inc.stats.verify_ms,
        counters_text(&at_resume)
    );
    let run_for = args.run_for.unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut last = at_resume.clone();
    let mut rates = Vec::new();
    while !cancel.is_cancelled() && (started.elapsed().as_millis() as u64) < run_for {
        let left = run_for.saturating_sub(started.elapsed().as_millis() as u64);
        let p = session::watch(&inc.machine, left.min(1000), &cancel);
        rates.push(p.pages_written_per_s);
        last = p.end.clone();
        outln!(
            "guest running: {} ({:.0} page writes/s)",
            counters_text(&last),
            p.pages_written_per_s
        );
        if !inc.machine.failures().is_empty() {
            outln!("guest vCPU failed: {:?}", inc.machine.failures());
            break;
        }
    }
    done.store(true, Ordering::SeqCst);
    if let Some(dir) = &args.out {
        let json = pretty(&serde_json::json!({
            "status": "completed",
            "memory_verified": true,
            "stats": inc.stats,
            "counters_at_resume": at_resume,
            "counters_last": last,
            "ran_ms": started.elapsed().as_millis() as u64,
            "write_pages_s": rates,
            "vcpu_failures": inc.machine.failures(),
            "serial_bytes": inc.machine.serial_bytes(),
        }));
        let serial = inc.machine.serial_output();
        write_dir_atomically(
            dir,
            &[("incoming.json", json.as_bytes()), ("serial.txt", &serial)],
        )?;
    }
    Ok(super::exit::OK)
}

/// incoming.json of a migration that did not end here: `cancelled` (Ctrl-C on this
/// destination) or `failed` with its kind as summary.json shows it (`failure.kind`), and the
/// stream's figures as far as it went (`stats`, with `commit_wait_ms`; null when no source
/// got past the handshake).
fn failed_json(
    e: &transport::TransportError,
    msg: &str,
    stats: Option<&incoming::IncomingStats>,
) -> serde_json::Value {
    use transport::TransportError::{Cancelled, CancelledHere};
    let mut v = serde_json::json!({ "error": msg, "stats": stats });
    if matches!(e, Cancelled | CancelledHere { .. }) {
        v["status"] = "cancelled".into();
    } else {
        v["status"] = "failed".into();
        v["failure"] = serde_json::to_value(e.failure_kind()).unwrap_or_default();
    }
    v
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}
