//! Binding the memory verification to one migration session.
//!
//! The digests a source sends at COMPLETE are keyed with a key both ends derive from a nonce
//! each contributed in the handshake (and, under TLS, from a secret exported from the TLS
//! session, which only the two authenticated ends know). A recorded stream replayed to
//! another destination, even with its digests recomputed, carries digests of another
//! session and fails verification.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::protocol::NONCE_BYTES;
use super::TransportError;

/// How the destination proves it holds the source's memory before the guest runs there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Every page travels with its keyed digest, taken by the source as it sends the page
    /// and checked by the destination as it receives it; at the end the destination only
    /// checks that every page arrived and that the last copy of each matched. Nothing is
    /// re-read after the last byte. It proves that the destination holds exactly what the
    /// source last sent of every page, in this session; it cannot see a page the source
    /// failed to re-send (a dirty bit the dirty log lost).
    #[default]
    Digest,
    /// The above, and then both sides digest all of guest memory with the source stopped and
    /// compare (`--verify full`): also proves the dirty log lost nothing, at the price of
    /// reading all memory on both sides while the guest is paused.
    Full,
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Digest => "digest",
            VerifyMode::Full => "full",
        })
    }
}

impl std::str::FromStr for VerifyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "digest" => Ok(VerifyMode::Digest),
            "full" => Ok(VerifyMode::Full),
            _ => Err(format!(
                "unknown verification {s:?} (expected digest or full)"
            )),
        }
    }
}

/// A fresh random nonce.
pub fn nonce() -> Result<[u8; NONCE_BYTES], TransportError> {
    let mut n = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| TransportError::Tls("the system random generator failed".into()))?;
    Ok(n)
}

/// The digest key of a session: HMAC-SHA256 keyed with the TLS secret (or a constant in the
/// clear) over both nonces, cut to the 32 bits a CRC32 starts from.
pub fn session_key(
    source_nonce: &[u8; NONCE_BYTES],
    destination_nonce: &[u8; NONCE_BYTES],
    tls_secret: Option<[u8; 32]>,
) -> u32 {
    let secret = tls_secret.unwrap_or([0u8; 32]);
    let k = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"autoconv migration digest key v2");
    ctx.update(source_nonce);
    ctx.update(destination_nonce);
    let tag = ctx.sign();
    let t = tag.as_ref();
    u32::from_le_bytes([t[0], t[1], t[2], t[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_key_and_nonces_differ() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(a, b);
        let k = session_key(&a, &b, None);
        assert_eq!(k, session_key(&a, &b, None));
        assert_ne!(k, session_key(&b, &a, None));
        assert_ne!(k, session_key(&a, &b, Some([1; 32])));
        assert_ne!(k, session_key(&a, &[0; NONCE_BYTES], None));
    }
}
