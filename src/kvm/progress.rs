//! Did the guest do anything while it was migrated? A run whose guest wrote no page and no COM1
//! byte during the migration moved a frozen (or dead) memory image: its figures describe no
//! workload, so the run is flagged (`guest_progress: false` in summary.json, a warning on the
//! terminal) instead of passing as a measurement. The migration's own status is left as the
//! core reports it (QEMU's `completed` means the memory arrived, which it did).

use serde::Serialize;

/// What the source guest visibly did during the migration (from `migrate` until the source
/// stopped for good or the migration ended).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuestActivity {
    /// Page writes the workload counted itself (autoconv images; 0 for other kernels).
    pub workload_pages_written: u64,
    /// Guest pages KVM's dirty log reported, summed over the dirty syncs (any kernel; the
    /// VMM's own writes into guest memory are not in it).
    pub dirty_logged_pages: u64,
    /// COM1 bytes the guest wrote.
    pub serial_bytes: u64,
}

impl GuestActivity {
    /// True if the guest wrote memory or COM1 during the migration.
    pub fn progressed(&self) -> bool {
        self.workload_pages_written > 0 || self.dirty_logged_pages > 0 || self.serial_bytes > 0
    }
}

/// One line per thing that makes a run's figures suspect: a guest that made no progress (not
/// said of an image built `--pattern idle`, which is meant to do nothing) and each source vCPU
/// that stopped with an error.
pub fn run_warnings(
    activity: &GuestActivity,
    idle_image: bool,
    vcpu_failures: &[(u32, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    if !activity.progressed() && !idle_image {
        out.push(
            "the guest made no progress during the migration (no page writes, no COM1 output): \
             this run measured no workload"
                .to_string(),
        );
    }
    for (index, why) in vcpu_failures {
        out.push(format!("source vCPU {index} stopped: {why}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_write_or_output_is_progress() {
        let none = GuestActivity::default();
        assert!(!none.progressed());
        for a in [
            GuestActivity {
                workload_pages_written: 1,
                ..none.clone()
            },
            GuestActivity {
                dirty_logged_pages: 1,
                ..none.clone()
            },
            GuestActivity {
                serial_bytes: 1,
                ..none.clone()
            },
        ] {
            assert!(a.progressed(), "{a:?}");
            assert!(run_warnings(&a, false, &[]).is_empty());
        }
    }

    #[test]
    fn a_frozen_guest_is_flagged_unless_built_idle() {
        let none = GuestActivity::default();
        let w = run_warnings(&none, false, &[]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("no progress"), "{w:?}");
        assert!(run_warnings(&none, true, &[]).is_empty());
        let failed = run_warnings(&none, true, &[(0, "triple fault".into())]);
        assert_eq!(
            failed,
            vec!["source vCPU 0 stopped: triple fault".to_string()]
        );
    }
}
