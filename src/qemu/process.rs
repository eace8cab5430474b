//! QEMU processes autoconv starts: each in its own process group, killed with its parent
//! (`PR_SET_PDEATHSIG`), and killed and reaped when dropped, so no QEMU outlives autoconv on
//! any exit path (an error, a panic, Ctrl-C, a kill of autoconv itself).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Starting or talking to a QEMU process failed.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ProcessError {
    /// QEMU binary {binary} not found ({why}); install it (apt-get install qemu-system-x86) or give
    /// --qemu-binary PATH
    Missing {
        /// The binary asked for.
        binary: String,
        /// Why it could not be used.
        why: String,
    },
    /// cannot start {binary}: {error}
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        error: std::io::Error,
    },
    /// {role} QEMU exited ({status}) {when}: {stderr}
    Exited {
        /// "source" or "destination".
        role: &'static str,
        /// Its exit status.
        status: String,
        /// At which step.
        when: String,
        /// The last line of its stderr (QEMU's own message).
        stderr: String,
    },
    /// {role} QEMU did not create its QMP socket within {timeout_ms} ms
    NoSocket {
        /// "source" or "destination".
        role: &'static str,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// cannot create {path}: {error}
    TempDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Resolve `binary` (a path, or a name looked up on PATH) to an executable file.
pub fn find_binary(binary: &str) -> Result<PathBuf, ProcessError> {
    use std::os::unix::fs::PermissionsExt;
    let missing = |why: String| ProcessError::Missing {
        binary: binary.to_string(),
        why,
    };
    let candidates: Vec<PathBuf> = if binary.contains('/') {
        vec![PathBuf::from(binary)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(binary)).collect())
            .unwrap_or_default()
    };
    for c in &candidates {
        if let Ok(m) = fs::metadata(c) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(c.clone());
            }
        }
    }
    Err(missing(if binary.contains('/') {
        "no executable file there".into()
    } else {
        "not on PATH".into()
    }))
}

/// A directory for sockets, serial files and logs, removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// A fresh private directory under the system temp dir (short, so socket paths fit).
    pub fn new() -> Result<Self, ProcessError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "autoconv-qemu-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir(&path).map_err(|error| ProcessError::TempDir {
            path: path.clone(),
            error,
        })?;
        Ok(RunDir { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Only what this run created lives here.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One running QEMU; killed (whole process group) and reaped on drop.
#[derive(Debug)]
pub struct QemuProcess {
    role: &'static str,
    child: Child,
    /// Its QMP socket.
    pub qmp_path: PathBuf,
    /// Its COM1 output file.
    pub serial_path: PathBuf,
    stderr_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl QemuProcess {
    /// Start `binary` with `args` plus a QMP socket and a serial file in `dir` named after
    /// `role`. stdout/stderr go to a log file in `dir`.
    pub fn spawn(
        role: &'static str,
        binary: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, ProcessError> {
        let qmp_path = dir.join(format!("{role}.qmp"));
        let serial_path = dir.join(format!("{role}.serial"));
        let stderr_path = dir.join(format!("{role}.log"));
        let spawn_err = |error| ProcessError::Spawn {
            binary: binary.display().to_string(),
            error,
        };
        let log = fs::File::create(&stderr_path).map_err(spawn_err)?;
        let log2 = log.try_clone().map_err(spawn_err)?;
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .arg("-serial")
            .arg(format!("file:{}", serial_path.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, _exit) run between
        // fork and exec. Own process group: a terminal's Ctrl-C reaches autoconv, which cancels
        // the migration and then kills QEMU, instead of QEMU quitting under it. PDEATHSIG: if
        // autoconv dies anyway (SIGKILL), the kernel kills QEMU. (It fires when the forking
        // thread exits; autoconv spawns QEMU from its main thread.)
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(spawn_err)?;
        Ok(QemuProcess {
            role,
            child,
            qmp_path,
            serial_path,
            stderr_path,
            exited: None,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// "source" or "destination".
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The exit status, if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// An error saying it exited (status and the last line of its stderr), if it has.
    pub fn check_alive(&mut self, when: &str) -> Result<(), ProcessError> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => Err(ProcessError::Exited {
                role: self.role,
                status: status.to_string(),
                when: when.to_string(),
                stderr: self.last_stderr_line(),
            }),
        }
    }

    /// The last meaningful line QEMU wrote to stderr ("(nothing on stderr)" if none); host
    /// feature warnings are skipped, they are noise on this kind of host.
    pub fn last_stderr_line(&self) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.contains("host doesn't support requested feature"))
            .map(str::to_string)
            .unwrap_or_else(|| "(nothing on stderr)".into())
    }

    /// Wait until its QMP socket listens (QEMU creates it before the guest starts). The file
    /// appears at bind(), a moment before listen(): a connect in between is refused.
    pub fn wait_for_socket(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        let t0 = Instant::now();
        while !unix_socket_listening(&self.qmp_path) {
            self.check_alive("before creating its QMP socket")?;
            if t0.elapsed() > timeout {
                return Err(ProcessError::NoSocket {
                    role: self.role,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// What the guest wrote to COM1 so far.
    pub fn serial(&self) -> Vec<u8> {
        fs::read(&self.serial_path).unwrap_or_default()
    }

    /// Bytes the guest wrote to COM1 so far.
    pub fn serial_len(&self) -> u64 {
        fs::metadata(&self.serial_path).map_or(0, |m| m.len())
    }

    /// Kill its whole process group and reap it.
    pub fn kill(&mut self) {
        if self.exit_status().is_none() {
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: signals the process group this QEMU leads (setpgid in pre_exec); it has
            // not been reaped yet (exit_status is None), so the id is still ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = self.child.kill();
        }
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status);
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a unix socket bound at `path` is listening, from /proc/net/unix (a listening
/// socket carries __SO_ACCEPTCON, 0x10000, in its flags). Asking QEMU itself would take the
/// one client its QMP socket serves.
pub fn unix_socket_listening(path: &Path) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        // No procfs: the file's existence is all there is to go on.
        return path.exists();
    };
    let wanted = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 8
            && fields[7..].join(" ") == wanted
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & 0x10000 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_listens_only_after_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        assert!(!unix_socket_listening(&path), "no socket yet");
        // bind() without listen(): the file exists, a connect would be refused.
        // SAFETY: socket() has no memory preconditions; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) address.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_encoded_bytes();
        assert!(bytes.len() < addr.sun_path.len());
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_un of `len` bytes.
        let rc = unsafe { libc::bind(fd, std::ptr::addr_of!(addr).cast(), len) };
        assert_eq!(rc, 0);
        assert!(path.exists());
        assert!(!unix_socket_listening(&path), "bound, not listening");
        // SAFETY: fd is the socket above.
        assert_eq!(unsafe { libc::listen(fd, 1) }, 0);
        assert!(unix_socket_listening(&path), "listening");
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(fd) };
    }
}
