//! The migration stream over TCP: a framed, versioned protocol ([`protocol`]), the source side
//! as the core's [`Link`](crate::migration::Link) ([`link`]) and the destination that checks
//! every frame, verifies memory and resumes the guest ([`incoming`]).

pub mod incoming;
pub mod link;
pub mod protocol;

use std::net::{SocketAddr, ToSocketAddrs};

/// Errors of the migration stream. Each variant's doc comment is its message.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// bad address
    #[error("cannot read {0:?} as a migration address (expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444)")]
    Address(String),
    /// cannot connect
    #[error("cannot connect to the destination {addr}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cannot listen
    #[error("cannot listen on {addr}")]
    Listen {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The handshake failed.
    #[error("handshake refused: {0}")]
    BadHandshake(String),
    /// A frame broke the protocol.
    #[error("refused frame: {0}")]
    BadFrame(String),
    /// The connection broke.
    #[error("connection lost while {during}")]
    Io {
        /// What was being done.
        during: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection.
    #[error("the {peer} closed the connection mid-migration")]
    Closed {
        /// "source" or "destination".
        peer: &'static str,
    },
    /// The destination reported a failure.
    #[error("the destination failed: {0}")]
    Destination(String),
    /// The source aborted the migration.
    #[error("the source aborted the migration: {0}")]
    SourceAborted(String),
    /// Source and destination memory differ.
    #[error(
        "memory verification FAILED: {mismatched_pages} of {pages} pages differ between source and destination (first at guest address {first_gpa:#x}); the destination will not run this guest"
    )]
    VerificationFailed {
        /// Pages whose digests differ.
        mismatched_pages: u64,
        /// Pages compared.
        pages: u64,
        /// Address of the first.
        first_gpa: u64,
    },
    /// The destination could not build or resume the VM.
    #[error("destination VM: {0}")]
    Vm(String),
    /// Cancelled while waiting.
    #[error("cancelled")]
    Cancelled,
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
    }
}
