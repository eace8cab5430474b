//! TLS for the migration stream, configured as QEMU's `tls-creds-x509` object is: one
//! directory holding `ca-cert.pem`, `server-cert.pem`, `server-key.pem`, `client-cert.pem`
//! and `client-key.pem`. Both ends authenticate (QEMU's `verify-peer=on`): the destination
//! refuses a source whose certificate that CA did not sign before reading a byte of its
//! stream, and the source checks the destination's certificate against the host it migrates
//! to (or `tls-hostname`). TLS 1.3 only, rustls with the ring provider.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::conn::{Conn, Socket};
use super::TransportError;

/// QEMU's file names in a tls-creds-x509 directory.
pub const CA_CERT: &str = "ca-cert.pem";
/// The destination's certificate.
pub const SERVER_CERT: &str = "server-cert.pem";
/// Its key.
pub const SERVER_KEY: &str = "server-key.pem";
/// The source's certificate.
pub const CLIENT_CERT: &str = "client-cert.pem";
/// Its key.
pub const CLIENT_KEY: &str = "client-key.pem";

/// Which end the credentials are loaded for (QEMU's `endpoint=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The destination (`incoming`).
    Server,
    /// The source (`run --kvm --migrate`).
    Client,
    /// Both (`run --kvm` with its own local destination).
    Both,
}

/// Credentials loaded from a directory.
#[derive(Clone, Debug)]
pub struct TlsCreds {
    dir: PathBuf,
    server: Option<Arc<ServerConfig>>,
    client: Option<Arc<ClientConfig>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn creds_err(path: &Path, why: impl std::fmt::Display) -> TransportError {
    TransportError::TlsCreds {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_file_iter(path).map_err(|e| creds_err(path, e))? {
        out.push(c.map_err(|e| creds_err(path, e))?);
    }
    if out.is_empty() {
        return Err(creds_err(path, "no certificate in it"));
    }
    Ok(out)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| creds_err(path, e))
}

impl TlsCreds {
    /// Load what `endpoint` needs from `dir`; each missing or unreadable file is named.
    pub fn load(dir: &Path, endpoint: Endpoint) -> Result<Arc<TlsCreds>, TransportError> {
        if !dir.is_dir() {
            return Err(creds_err(dir, "not a directory"));
        }
        let ca_path = dir.join(CA_CERT);
        let mut roots = RootCertStore::empty();
        for c in certs(&ca_path)? {
            roots.add(c).map_err(|e| creds_err(&ca_path, e))?;
        }
        let roots = Arc::new(roots);
        let wants_server = matches!(endpoint, Endpoint::Server | Endpoint::Both);
        let wants_client = matches!(endpoint, Endpoint::Client | Endpoint::Both);
        let server = if wants_server {
            let cert_path = dir.join(SERVER_CERT);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| creds_err(&ca_path, e))?;
            let cfg = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| creds_err(dir, e))?
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs(&cert_path)?, key(&dir.join(SERVER_KEY))?)
                .map_err(|e| creds_err(&cert_path, e))?;
            Some(Arc::new(cfg))
        } else {
            None
        };
        let client = if wants_client {
            let cert_path = dir.join(CLIENT_CERT);
            let cfg = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| creds_err(dir, e))?
                .with_root_certificates(roots)
                .with_client_auth_cert(certs(&cert_path)?, key(&dir.join(CLIENT_KEY))?)
                .map_err(|e| creds_err(&cert_path, e))?;
            Some(Arc::new(cfg))
        } else {
            None
        };
        Ok(Arc::new(TlsCreds {
            dir: dir.to_path_buf(),
            server,
            client,
        }))
    }

    /// The directory they came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The destination's configuration (if loaded for it).
    pub fn server(&self) -> Option<Arc<ServerConfig>> {
        self.server.clone()
    }

    /// The source's configuration (if loaded for it).
    pub fn client(&self) -> Option<Arc<ClientConfig>> {
        self.client.clone()
    }
}

/// TLS as the source uses it: credentials and the name the destination's certificate must
/// carry (QEMU's `tls-hostname`; by default the host of the migration URI).
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Credentials (loaded for [`Endpoint::Client`] or [`Endpoint::Both`]).
    pub creds: Arc<TlsCreds>,
    /// Overrides the host the destination's certificate is checked against.
    pub hostname: Option<String>,
}

/// Wrap an accepted socket as the destination's end of a TLS session and run the handshake:
/// a client without a certificate signed by the CA fails here, before any frame is read.
pub fn accept(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<Conn, TransportError> {
    let sock = Socket::new(tcp, Some(deadline)).map_err(|source| TransportError::Io {
        during: "configuring the socket",
        source,
    })?;
    let conn = rustls::ServerConnection::new(config)
        .map_err(|e| TransportError::Tls(format!("cannot start a session: {e}")))?;
    let mut c = Conn::Server(Box::new(rustls::StreamOwned::new(conn, sock)));
    c.complete_handshake()
        .map_err(|e| TransportError::Tls(format!("handshake with the source failed: {e}")))?;
    Ok(c)
}

/// Open the source's end of a TLS session to `addr` over `tcp` and run the handshake.
pub fn connect(
    tls: &ClientTls,
    addr: SocketAddr,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<Conn, TransportError> {
    let config = tls.creds.client().ok_or_else(|| {
        TransportError::Tls("the credentials were not loaded for a source".into())
    })?;
    let host = tls
        .hostname
        .clone()
        .unwrap_or_else(|| addr.ip().to_string());
    let name = ServerName::try_from(host.clone())
        .map_err(|_| TransportError::Tls(format!("{host:?} is not a valid tls-hostname")))?;
    let sock = Socket::new(tcp, Some(deadline)).map_err(|source| TransportError::Io {
        during: "configuring the socket",
        source,
    })?;
    let conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| TransportError::Tls(format!("cannot start a session: {e}")))?;
    let mut c = Conn::Client(Box::new(rustls::StreamOwned::new(conn, sock)));
    c.complete_handshake().map_err(|e| {
        TransportError::Tls(format!(
            "handshake with the destination (checked as {host:?}) failed: {e}"
        ))
    })?;
    Ok(c)
}
