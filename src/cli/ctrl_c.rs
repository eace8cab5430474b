//! Ctrl-C as a cancel token: the first SIGINT cancels the migration or measurement cleanly,
//! a second one leaves at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autoconv::migration::CancelToken;

use super::out::errln;

static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if SIGINT_SEEN.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: leave now.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// A cancel token that Ctrl-C (SIGINT) trips. The watcher thread ends when `done` is set.
pub(super) fn ctrl_c_token() -> (CancelToken, std::sync::Arc<AtomicBool>) {
    let token = CancelToken::new();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    if vmm_sys_util::signal::register_signal_handler(libc::SIGINT, on_sigint).is_ok() {
        let (t, d) = (token.clone(), done.clone());
        let _ = std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || {
                while !d.load(Ordering::SeqCst) {
                    if SIGINT_SEEN.load(Ordering::SeqCst) {
                        errln!("autoconv: Ctrl-C: cancelling (again to quit at once)");
                        t.cancel();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
    }
    (token, done)
}
