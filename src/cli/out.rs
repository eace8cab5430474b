//! Standard output for results, written so that printing never decides a command's fate.
//!
//! `println!` panics when stdout is gone (`| head -1`, `> /dev/full`). Here a write that fails
//! is remembered and later output dropped, and the command runs on to its end (a destination
//! still resumes the guest it verified, a run directory is still written). [`finish`] then says
//! what happened: a closed pipe (EPIPE) is the reader's choice, as for other Unix tools, and is
//! quiet; any other failure (ENOSPC on /dev/full) is one error line and exit 2.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first failed write to stdout, if any (later output is dropped).
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// Write `args` to stdout; a failure is remembered, not raised (see the module doc).
pub fn print(args: fmt::Arguments) {
    let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut stdout = io::stdout().lock();
    // Flushed at once: an interactive reader sees lines as they come (`incoming`'s progress),
    // and the error surfaces here rather than at exit, where std would drop it.
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        *failed = Some(e);
    }
}

/// How the output went: `Ok` if every write reached stdout or the reader closed it (EPIPE);
/// the error otherwise, for one line on stderr and exit 2.
pub fn finish() -> Result<(), io::Error> {
    let failed = FAILED.lock().unwrap_or_else(|e| e.into_inner()).take();
    match failed {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Write `args` to stderr, ignoring failure: a closed (`2>&-`) or full (`2>/dev/full`) stderr
/// must not turn a diagnostic into a panic (std's `eprintln!` panics on ENOSPC) nor change the
/// command's exit code, which still says how the command went.
pub fn print_err(args: fmt::Arguments) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// `print!` that never panics (see [`print`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!($($arg)*))
    };
}

/// `println!` that never panics (see [`print`]).
macro_rules! outln {
    () => {
        $crate::cli::out::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics (see [`print_err`]).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::out::print_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
