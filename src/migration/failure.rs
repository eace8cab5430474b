//! How a migration failed, typed: callers (the session, the CLI's exit codes) tell the kinds
//! apart by matching, never by reading the reason text.
//!
//! The core knows which injected piece failed (the [`Guest`](super::Guest) or the
//! [`Link`](super::Link)) and takes that as the kind; a backend that knows better (the
//! destination found memory that differs) says so by boxing its error in a [`Failure`].

use serde::Serialize;

use super::env::BackendError;

/// Why a migration ended `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureKind {
    /// The destination's copy of guest memory differs from the source's, so it refused to
    /// run the guest: a page's last copy is missing or wrong there.
    MemoryMismatch {
        /// Pages that differ.
        mismatched_pages: u64,
        /// Pages compared.
        pages: u64,
        /// Guest physical address of the first page that differs.
        first_gpa: u64,
    },
    /// The destination refused the migration or could not run the guest it received.
    DestinationRefused,
    /// The migration stream broke: the connection was lost or closed, or a frame was refused.
    LinkLost,
    /// The guest being migrated failed at the source: dirty tracking, a vCPU, the throttle.
    GuestFault,
}

impl FailureKind {
    /// A short name for the kind (`summary.json`'s `failure.kind`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::MemoryMismatch { .. } => "memory-mismatch",
            FailureKind::DestinationRefused => "destination-refused",
            FailureKind::LinkLost => "link-lost",
            FailureKind::GuestFault => "guest-fault",
        }
    }
}

/// A backend's error with the failure kind it stands for. Shown as the error itself (its
/// message and causes unchanged), so the reason text does not depend on the wrapping.
#[derive(Debug)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The backend's own error.
    pub error: BackendError,
}

impl Failure {
    /// Box `error` as a [`BackendError`] that keeps `kind`.
    pub fn boxed(kind: FailureKind, error: impl Into<BackendError>) -> BackendError {
        Box::new(Failure {
            kind,
            error: error.into(),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The kind of a backend error: the one a [`Failure`] carries, else `otherwise` (the kind of
/// the piece that reported it).
pub fn kind_of(e: &BackendError, otherwise: FailureKind) -> FailureKind {
    e.downcast_ref::<Failure>().map_or(otherwise, |f| f.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_kind_and_shows_the_error_unchanged() {
        let inner = std::io::Error::other("socket gone");
        let plain: BackendError = Box::new(std::io::Error::other("socket gone"));
        let kinded = Failure::boxed(FailureKind::DestinationRefused, inner);
        assert_eq!(kinded.to_string(), plain.to_string());
        assert_eq!(
            kind_of(&kinded, FailureKind::LinkLost),
            FailureKind::DestinationRefused
        );
        assert_eq!(
            kind_of(&plain, FailureKind::LinkLost),
            FailureKind::LinkLost
        );
    }

    #[test]
    fn kinds_serialize_under_their_names() {
        let k = FailureKind::MemoryMismatch {
            mismatched_pages: 1,
            pages: 8,
            first_gpa: 0x1000,
        };
        let v = serde_json::to_value(k).unwrap();
        assert_eq!(v["kind"], k.name());
        assert_eq!(v["first_gpa"], 0x1000);
        for k in [
            FailureKind::DestinationRefused,
            FailureKind::LinkLost,
            FailureKind::GuestFault,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap()["kind"], k.name());
        }
    }
}
