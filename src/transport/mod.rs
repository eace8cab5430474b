//! The migration stream over TCP: a framed, versioned protocol ([`protocol`]), the source side
//! as the core's [`Link`](crate::migration::Link) ([`link`]) and the destination that checks
//! every frame, verifies memory and resumes the guest ([`incoming`]); optionally inside TLS
//! with both ends authenticated ([`tls`]), the memory digests keyed per session ([`verify`]).

pub mod conn;
pub mod incoming;
pub mod link;
pub mod protocol;
pub mod tls;
pub mod verify;

use std::net::{SocketAddr, ToSocketAddrs};

use crate::migration::FailureKind;

/// Errors of the migration stream. Each variant's doc comment is its message (displaydoc), so
/// the two cannot drift apart.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum TransportError {
    /// cannot read {0:?} as a migration address (expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444)
    Address(String),
    /// cannot connect to the destination {addr}
    Connect {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cannot listen on {addr}
    Listen {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// handshake refused: {0}
    BadHandshake(String),
    /// refused frame: {0}
    BadFrame(String),
    /// connection lost while {during}
    Io {
        /// What was being done.
        during: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// the {peer} closed the connection mid-migration
    Closed {
        /// "source" or "destination".
        peer: &'static str,
    },
    /// the destination failed: {message}
    Destination {
        /// What kind of failure (the verdict's code and figures).
        failure: protocol::DestinationFailure,
        /// The destination's words.
        message: String,
    },
    /// the source did not commit the migration ({0}); the destination will not run this guest
    NotCommitted(String),
    /// the source aborted the migration: {0}
    SourceAborted(String),
    /// memory verification FAILED: {mismatched_pages} of {pages} pages differ between source and destination (first at guest address {first_gpa:#x}); the destination will not run this guest
    VerificationFailed {
        /// Pages whose digests differ.
        mismatched_pages: u64,
        /// Pages compared.
        pages: u64,
        /// Address of the first.
        first_gpa: u64,
    },
    /// destination VM: {0}
    Vm(String),
    /// cancelled
    Cancelled,
    /// cancelled on this destination (Ctrl-C) while {during}; the destination will not run this guest
    CancelledHere {
        /// What the destination was doing.
        during: &'static str,
    },
    /// TLS credentials: {path}: {why}
    TlsCreds {
        /// The file or directory.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// TLS: {0}
    Tls(String),
}

impl TransportError {
    /// The kind of migration failure this error stands for: what the destination's verdict
    /// says, a refusal by the destination, or else a lost link.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            TransportError::Destination { failure, .. } => match *failure {
                protocol::DestinationFailure::MemoryMismatch {
                    mismatched_pages,
                    pages,
                    first_gpa,
                } => FailureKind::MemoryMismatch {
                    mismatched_pages,
                    pages,
                    first_gpa,
                },
                protocol::DestinationFailure::Vm => FailureKind::DestinationRefused,
                protocol::DestinationFailure::BadStream => FailureKind::LinkLost,
            },
            TransportError::VerificationFailed {
                mismatched_pages,
                pages,
                first_gpa,
            } => FailureKind::MemoryMismatch {
                mismatched_pages: *mismatched_pages,
                pages: *pages,
                first_gpa: *first_gpa,
            },
            TransportError::BadHandshake(_)
            | TransportError::Vm(_)
            | TransportError::Tls(_)
            | TransportError::TlsCreds { .. }
            | TransportError::CancelledHere { .. } => FailureKind::DestinationRefused,
            TransportError::Address(_)
            | TransportError::Connect { .. }
            | TransportError::Listen { .. }
            | TransportError::BadFrame(_)
            | TransportError::Io { .. }
            | TransportError::Closed { .. }
            | TransportError::SourceAborted(_)
            | TransportError::NotCommitted(_)
            | TransportError::Cancelled => FailureKind::LinkLost,
        }
    }
}

/// Parse `tcp:HOST:PORT` into a socket address.
pub fn parse_tcp_address(text: &str) -> Result<SocketAddr, TransportError> {
    let rest = text
        .strip_prefix("tcp:")
        .ok_or_else(|| TransportError::Address(text.to_string()))?;
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| TransportError::Address(text.to_string()))
}

/// The host part of `tcp:HOST:PORT` as written (the name a TLS certificate is checked
/// against, as QEMU does when `tls-hostname` is not set).
pub fn tcp_host(text: &str) -> Option<String> {
    let rest = text.strip_prefix("tcp:")?;
    let (host, _port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_string())
}

/// Read exactly `buf.len()` bytes, reporting a clean EOF as [`TransportError::Closed`].
pub(crate) fn read_full(
    r: &mut impl std::io::Read,
    buf: &mut [u8],
    peer: &'static str,
    during: &'static str,
) -> Result<(), TransportError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => return Err(TransportError::Closed { peer }),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(TransportError::Io { during, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_tcp_address("tcp:127.0.0.1:4444").unwrap(),
            "127.0.0.1:4444".parse().unwrap()
        );
        assert!(parse_tcp_address("127.0.0.1:4444").is_err());
        assert!(parse_tcp_address("tcp:nowhere").is_err());
        assert!(parse_tcp_address("unix:/tmp/x").is_err());
        assert_eq!(
            tcp_host("tcp:dest.example:4444").as_deref(),
            Some("dest.example")
        );
        assert_eq!(tcp_host("tcp:[::1]:4444").as_deref(), Some("::1"));
        assert_eq!(tcp_host("tcp::4444"), None);
    }
}
