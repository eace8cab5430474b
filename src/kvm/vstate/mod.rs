//! Every KVM ioctl of autoconv lives under this module (as Firecracker's `vstate`): the VM
//! ([`vm`]) and its vCPUs ([`vcpu`]). Code outside it sees typed errors and plain data only.

pub mod dirty_ring;
pub mod vcpu;
pub mod vm;

use std::sync::OnceLock;

use super::error::KvmError;

/// The real-time signal used to kick a vCPU thread out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN() + 2
}

/// Install the kick handler once per process.
pub fn install_kick_handler() -> Result<(), KvmError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            vmm_sys_util::signal::register_signal_handler(kick_signal(), vcpu::kick_handler)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            KvmError::BadState(format!("cannot install the vCPU kick signal handler: {e}"))
        })
}

/// Send the kick signal to a thread.
///
/// # Safety
/// `thread` must be a thread of this process that has not been joined or detached-and-exited.
pub unsafe fn kick_thread(thread: libc::pthread_t) {
    // SAFETY: the caller guarantees the thread id is live; the signal has a handler installed
    // by `install_kick_handler`, so it cannot kill the process.
    unsafe {
        libc::pthread_kill(thread, kick_signal());
    }
}
