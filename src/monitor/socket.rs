//! The QMP unix socket: created mode 0600 (whoever can write to it steers the guest), never
//! over a file that is not a socket, one client at a time as QEMU's `server=on` socket serves
//! them, inputs framed with a length limit.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::frame::{Framer, Input};
use super::qmp::{self, After, Session};
use super::state::Monitor;

/// Why the socket could not be created. Each variant's doc comment is its message.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum SocketError {
    /// --qmp takes unix:PATH (QMP over TCP would let anyone on the network steer the guest), not {0}
    NotUnix(String),
    /// {0} exists and is not a socket: refusing to replace it
    NotASocket(String),
    /// {0} is a socket another process is serving
    InUse(String),
    /// cannot create the QMP socket {path}
    Io {
        /// The socket's path.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// The path in `unix:PATH` (QEMU's `-qmp unix:PATH,server=on,wait=off` options after a comma
/// are accepted and mean what they mean here anyway).
pub fn parse_address(text: &str) -> Result<PathBuf, SocketError> {
    let path = text
        .strip_prefix("unix:")
        .map(|rest| rest.split(',').next().unwrap_or_default())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| SocketError::NotUnix(text.to_string()))?;
    Ok(PathBuf::from(path))
}

/// A listening QMP socket.
pub struct QmpSocket {
    listener: UnixListener,
    file: SocketFile,
}

/// The socket file this run created: removed when this is dropped (the serving thread does
/// not outlive the process cleanly, so the run's owner keeps this).
pub struct SocketFile {
    path: PathBuf,
}

impl QmpSocket {
    /// Listen at `path`, mode 0600. A stale socket nobody serves is replaced (it is what a
    /// killed run leaves behind); any other file is left alone.
    pub fn bind(path: &Path) -> Result<Self, SocketError> {
        let shown = || path.display().to_string();
        let io = |source| SocketError::Io {
            path: shown(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(SocketError::NotASocket(shown()))
            }
            Ok(_) => {
                if UnixStream::connect(path).is_ok() {
                    return Err(SocketError::InUse(shown()));
                }
                std::fs::remove_file(path).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        // The file is created with the umask's mode: make it 0600 from the start, not after a
        // window in which others could connect. Nothing else in this process creates files now.
        // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the mask.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(Self {
            listener,
            file: SocketFile {
                path: path.to_path_buf(),
            },
        })
    }

    /// Serve clients one after the other on a thread of its own until one says `quit`; the
    /// file stays until the returned guard is dropped.
    pub fn serve(self, monitor: Arc<Monitor>) -> std::io::Result<SocketFile> {
        let listener = self.listener;
        std::thread::Builder::new()
            .name("qmp".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    if serve_client(&monitor, stream) {
                        break;
                    }
                }
            })?;
        Ok(self.file)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // The file this run created, and only if it is still a socket.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One client until it hangs up (false) or says `quit` (true).
pub fn serve_client(monitor: &Monitor, stream: UnixStream) -> bool {
    let Ok(mut reader) = stream.try_clone() else {
        return false;
    };
    let mut out = stream;
    if send(&mut out, &qmp::greeting(monitor)).is_err() {
        return false;
    }
    let mut session = Session::new(monitor);
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let inputs = if n == 0 {
            framer.finish().into_iter().collect()
        } else {
            framer.push(&buf[..n])
        };
        for input in inputs {
            let (reply, after) = match input {
                Input::TooLong => (qmp::too_long(), After::Continue),
                Input::Text(text) => match session.handle_input(&text) {
                    Some(r) => r,
                    None => continue,
                },
            };
            if send(&mut out, &reply).is_err() {
                return after == After::Quit;
            }
            if after == After::Quit {
                let _ = send(&mut out, &qmp::shutdown_event());
                return true;
            }
        }
        if n == 0 {
            return false;
        }
    }
}

fn send(out: &mut UnixStream, v: &Value) -> std::io::Result<()> {
    let mut text = v.to_string();
    text.push_str("\r\n");
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::MigrationConfig;
    use std::io::{BufRead, BufReader};

    #[test]
    fn addresses_are_unix_paths_only() {
        assert_eq!(
            parse_address("unix:/tmp/q.sock,server=on,wait=off").unwrap(),
            PathBuf::from("/tmp/q.sock")
        );
        assert!(matches!(
            parse_address("tcp:127.0.0.1:4444"),
            Err(SocketError::NotUnix(_))
        ));
        assert!(matches!(
            parse_address("unix:"),
            Err(SocketError::NotUnix(_))
        ));
    }

    #[test]
    fn the_socket_is_0600_and_never_replaces_a_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "mine").unwrap();
        assert!(matches!(
            QmpSocket::bind(&file),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");

        let path = dir.path().join("qmp.sock");
        let first = QmpSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Served by someone: refused. Left stale: replaced.
        assert!(matches!(QmpSocket::bind(&path), Err(SocketError::InUse(_))));
        let QmpSocket { listener, file } = first;
        drop(listener);
        std::mem::forget(file);
        let second = QmpSocket::bind(&path).unwrap();
        drop(second);
        assert!(!path.exists(), "the run's own socket is removed");
    }

    /// The framing `qemu.qmp` uses (no newline after a command), answered line by line.
    #[test]
    fn a_client_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let monitor = Monitor::new(MigrationConfig::default(), false);
        let _file = QmpSocket::bind(&path).unwrap().serve(monitor).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        let mut next =
            || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
        assert!(next()["QMP"]["version"]["qemu"].is_object());
        w.write_all(br#"{"execute":"qmp_capabilities"}{"execute":"query-status"}"#)
            .unwrap();
        assert_eq!(next(), serde_json::json!({"return": {}}));
        assert_eq!(next()["return"]["running"], true);
        let mut big = vec![b'"'; 1];
        big.extend(std::iter::repeat_n(
            b'x',
            super::super::frame::MAX_INPUT_BYTES + 10,
        ));
        big.extend_from_slice(b"\"\n");
        w.write_all(&big).unwrap();
        assert_eq!(next()["error"]["class"], "GenericError");
        w.write_all(br#"{"execute":"quit"}"#).unwrap();
        assert_eq!(next(), serde_json::json!({"return": {}}));
        assert_eq!(next()["event"], "SHUTDOWN");
    }
}
