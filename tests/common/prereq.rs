//! KVM tests that also need tools, run one at a time: [`super::require`] decides skip or fail.

use std::sync::{Mutex, MutexGuard};

/// KVM tests of one binary run one at a time (two host cores, shared).
static KVM: Mutex<()> = Mutex::new(());

/// The KVM lock when `test` can run: /dev/kvm usable and every tool in `tools` answers
/// `--version`. Otherwise None after printing why, or a panic under AUTOCONV_REQUIRE_ALL.
pub fn kvm_with_tools(test: &str, tools: &[&str]) -> Option<MutexGuard<'static, ()>> {
    if !super::require::require_kvm(test) {
        return None;
    }
    for tool in tools {
        if !super::require::require_tool(test, tool) {
            return None;
        }
    }
    Some(KVM.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The KVM lock when /dev/kvm is usable (see [`kvm_with_tools`]).
pub fn kvm(test: &str) -> Option<MutexGuard<'static, ()>> {
    kvm_with_tools(test, &[])
}

/// The lock when QEMU tests can run: /dev/kvm usable and `qemu-system-x86_64` there.
pub fn qemu(test: &str) -> Option<MutexGuard<'static, ()>> {
    kvm_with_tools(test, &["qemu-system-x86_64"])
}
