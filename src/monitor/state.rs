//! What a monitor's commands read and change: the migration settings, the one migration of
//! the run (requested, running with its last figures, or ended with its outcome), and whether
//! a client asked to quit. The QMP and HMP front ends and the run's [`MonitorGate`] share it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::kvm::machine::Machine;
use crate::migration::{
    CancelToken, Event, MigrationConfig, MigrationOutcome, MigrationStatus, ParamValue,
    QemuVersion, Sample,
};
use crate::session::kvm::{Destination, MigrateRequest, MigrationGate};

/// How often a waiting run looks at Ctrl-C besides being woken by a command.
const POLL: Duration = Duration::from_millis(100);

/// A command refused: QEMU's error class and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// `GenericError` or `CommandNotFound`.
    pub class: &'static str,
    /// The message, QEMU's wording where QEMU has one.
    pub desc: String,
}

impl CommandError {
    /// A `GenericError`, the class QEMU gives nearly every refusal.
    pub fn generic(desc: impl Into<String>) -> Self {
        Self {
            class: "GenericError",
            desc: desc.into(),
        }
    }
}

/// The run's one migration.
#[derive(Clone, Debug)]
pub enum Phase {
    /// No `migrate` yet: the guest runs.
    Idle,
    /// `migrate` accepted; the run has not started it yet (QEMU's `setup`).
    Requested(MigrateRequest),
    /// Running; the last ~100 ms window's figures (none before the first window ends).
    Running(Option<Sample>),
    /// Over, whatever the way.
    Ended(MigrationOutcome),
}

#[derive(Debug)]
struct Inner {
    config: MigrationConfig,
    phase: Phase,
    quit: bool,
    /// Guest RAM (bytes), QEMU's `ram.total`; 0 until the guest runs.
    ram_bytes: u64,
}

/// The state one run's monitors share.
#[derive(Debug)]
pub struct Monitor {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Cancels the migration (`migrate_cancel`, `quit`).
    migration_cancel: CancelToken,
    /// The guest logs dirty pages in rings (QEMU needs them for `dirty-limit`).
    dirty_ring: bool,
}

impl Monitor {
    /// A monitor whose migration will start with `config` unless a client changes it.
    pub fn new(config: MigrationConfig, dirty_ring: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                config,
                phase: Phase::Idle,
                quit: false,
                ram_bytes: 0,
            }),
            changed: Condvar::new(),
            migration_cancel: CancelToken::new(),
            dirty_ring,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings the next migration starts with.
    pub fn config(&self) -> MigrationConfig {
        self.lock().config.clone()
    }

    /// The migration's phase now.
    pub fn phase(&self) -> Phase {
        self.lock().phase.clone()
    }

    /// Guest RAM (bytes) once the guest runs.
    pub fn ram_bytes(&self) -> u64 {
        self.lock().ram_bytes
    }

    /// True once a client said `quit` (or Ctrl-C ended the run).
    pub fn quit_requested(&self) -> bool {
        self.lock().quit
    }

    /// QEMU's run state and whether the vCPUs run (`query-status`, `info status`).
    pub fn run_state(&self) -> (&'static str, bool) {
        let inner = self.lock();
        match &inner.phase {
            Phase::Running(Some(s)) if s.status == MigrationStatus::Device => {
                ("finish-migrate", false)
            }
            Phase::Ended(o) if o.status == MigrationStatus::Completed => ("postmigrate", false),
            _ => ("running", true),
        }
    }

    /// Change capabilities (`migrate-set-capabilities`): all or none.
    pub fn set_capabilities(&self, caps: &[(String, bool)]) -> Result<(), CommandError> {
        let mut inner = self.lock();
        refuse_while_migrating(&inner.phase)?;
        let mut config = inner.config.clone();
        let version = config.autoconv.qemu_version;
        for (name, on) in caps {
            match name.as_str() {
                "auto-converge" => config.params.auto_converge = *on,
                "dirty-limit" if version.has_dirty_limit() => {
                    if *on && !self.dirty_ring {
                        return Err(CommandError::generic(
                            crate::migration::env::DIRTY_RING_REQUIRED,
                        ));
                    }
                    config.params.dirty_limit = *on;
                }
                n if super::query::capability_names(version).contains(&n) => {
                    // Off is what autoconv does anyway; on would be a promise it cannot keep.
                    if *on {
                        return Err(CommandError::generic(format!(
                            "QEMU capability '{n}' is not modelled by autoconv"
                        )));
                    }
                }
                n => {
                    return Err(CommandError::generic(format!(
                        "Parameter 'capability' does not accept value '{n}'"
                    )))
                }
            }
        }
        config
            .params
            .validate()
            .map_err(|e| CommandError::generic(e.to_string()))?;
        inner.config = config;
        Ok(())
    }

    /// Change parameters (`migrate-set-parameters`, `migrate_set_parameter`): checked as
    /// `--set` checks them, all or none. QEMU 2.5's `x-cpu-throttle-*` names are accepted.
    pub fn set_parameters(&self, params: &[(String, ParamValue)]) -> Result<(), CommandError> {
        let mut inner = self.lock();
        refuse_while_migrating(&inner.phase)?;
        let mut config = inner.config.clone();
        let version = config.autoconv.qemu_version;
        for (name, value) in params {
            if !is_monitor_parameter(name, version) {
                if let Some(kind) = crate::migration::vocabulary::unmodelled(name) {
                    if kind == crate::migration::vocabulary::Unmodelled::Parameter {
                        return Err(CommandError::generic(format!(
                            "QEMU parameter '{name}' is not modelled by autoconv"
                        )));
                    }
                }
                return Err(CommandError::generic(format!(
                    "Parameter '{name}' is unexpected"
                )));
            }
            config
                .params
                .set(name, value)
                .map_err(|e| CommandError::generic(e.to_string()))?;
        }
        config
            .params
            .validate()
            .map_err(|e| CommandError::generic(e.to_string()))?;
        inner.config = config;
        Ok(())
    }

    /// Start the migration (`migrate`): `uri` is `tcp:HOST:PORT` of an `autoconv incoming`.
    pub fn migrate(&self, uri: &str) -> Result<(), CommandError> {
        let mut inner = self.lock();
        match &inner.phase {
            Phase::Idle => {}
            Phase::Requested(_) | Phase::Running(_) => {
                // QEMU's words.
                return Err(CommandError::generic(
                    "There's a migration process in progress",
                ));
            }
            Phase::Ended(o) => {
                return Err(CommandError::generic(format!(
                    "autoconv runs one migration per `run --kvm`; this run's ended {}",
                    o.status
                )))
            }
        }
        let scheme = uri.split(':').next().unwrap_or_default();
        if !uri.contains(':') || !QEMU_MIGRATION_SCHEMES.contains(&scheme) {
            return Err(CommandError::generic(
                "Parameter 'uri' expects a valid migration protocol",
            ));
        }
        if scheme != "tcp" {
            return Err(CommandError::generic(format!(
                "autoconv migrates over tcp:HOST:PORT to `autoconv incoming` only, not {scheme}:"
            )));
        }
        let addr = crate::transport::parse_tcp_address(uri)
            .map_err(|e| CommandError::generic(e.to_string()))?;
        let request = MigrateRequest {
            config: inner.config.clone(),
            destination: Destination::Remote(addr),
            cancel: self.migration_cancel.clone(),
        };
        inner.phase = Phase::Requested(request);
        self.changed.notify_all();
        Ok(())
    }

    /// Cancel a migration in progress (`migrate_cancel`); nothing to do otherwise, as in QEMU.
    pub fn cancel_migration(&self) {
        let inner = self.lock();
        match inner.phase {
            Phase::Requested(_) | Phase::Running(_) => self.migration_cancel.cancel(),
            Phase::Idle | Phase::Ended(_) => {}
        }
    }

    /// End the run (`quit`, Ctrl-C): a migration in progress is cancelled first.
    pub fn request_quit(&self) {
        let mut inner = self.lock();
        inner.quit = true;
        self.migration_cancel.cancel();
        self.changed.notify_all();
    }

    /// Wait while a migration is requested or running (HMP's `migrate` without `-d`), or
    /// until the run quits.
    pub fn wait_migration_ended(&self) {
        let mut inner = self.lock();
        while !inner.quit && matches!(inner.phase, Phase::Requested(_) | Phase::Running(_)) {
            inner = self
                .changed
                .wait_timeout(inner, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The gate the run waits on: the migration starts when a client says `migrate`;
    /// `ctrl_c` ends the run as `quit` does.
    pub fn gate(self: &Arc<Self>, ctrl_c: CancelToken) -> MonitorGate {
        MonitorGate {
            monitor: self.clone(),
            ctrl_c,
        }
    }
}

/// QEMU's migration URI schemes (`migrate` knows them; autoconv serves `tcp:`).
const QEMU_MIGRATION_SCHEMES: &[&str] = &["tcp", "unix", "exec", "fd", "rdma", "file", "vsock"];

/// QEMU refuses to change capabilities while migrating; autoconv's core also takes its
/// parameters when the migration starts, so a change then would be a silent no-op.
fn refuse_while_migrating(phase: &Phase) -> Result<(), CommandError> {
    match phase {
        Phase::Requested(_) | Phase::Running(_) => Err(CommandError::generic(
            "There's a migration process in progress",
        )),
        _ => Ok(()),
    }
}

/// The parameter names a QEMU monitor takes: QEMU's own and QEMU 2.5's `x-cpu-throttle-*`
/// (virsh's option names are virsh's, not the monitor's; capabilities are not parameters).
pub(super) fn is_monitor_parameter(name: &str, version: QemuVersion) -> bool {
    // A monitor posing as an older QEMU refuses what that release did not have yet.
    let since = match name {
        "vcpu-dirty-limit" | "x-vcpu-dirty-limit-period" => QemuVersion::DIRTY_LIMIT,
        "avail-switchover-bandwidth" => QemuVersion { major: 8, minor: 2 },
        _ => QemuVersion::OLDEST,
    };
    version >= since
        && (matches!(name, "x-cpu-throttle-initial" | "x-cpu-throttle-increment")
            || (crate::migration::params::PARAMETER_NAMES.contains(&name)
                && !matches!(name, "auto-converge" | "dirty-limit")))
}

/// The run's [`MigrationGate`]: waits for `migrate`, publishes the live figures, and after the
/// migration keeps the guest until the client quits.
pub struct MonitorGate {
    monitor: Arc<Monitor>,
    ctrl_c: CancelToken,
}

impl MonitorGate {
    /// Wait on the monitor until `done` says stop; Ctrl-C counts as `quit`.
    fn wait_until(&self, mut done: impl FnMut(&mut Inner) -> bool) {
        let mut inner = self.monitor.lock();
        loop {
            if self.ctrl_c.is_cancelled() && !inner.quit {
                inner.quit = true;
                self.monitor.migration_cancel.cancel();
            }
            if done(&mut inner) {
                return;
            }
            inner = self
                .monitor
                .changed
                .wait_timeout(inner, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl MigrationGate for MonitorGate {
    fn wait_for_migrate(&mut self, machine: &Machine) -> Option<MigrateRequest> {
        self.monitor.lock().ram_bytes = machine.ram().bytes();
        let mut request = None;
        self.wait_until(|inner| {
            if inner.quit {
                return true;
            }
            if let Phase::Requested(r) = &inner.phase {
                request = Some(r.clone());
                inner.phase = Phase::Running(None);
                return true;
            }
            false
        });
        request
    }

    fn sample(&mut self, sample: &Sample) {
        let mut inner = self.monitor.lock();
        if let Phase::Running(last) = &mut inner.phase {
            *last = Some(sample.clone());
        }
    }

    fn event(&mut self, _event: &Event) {}

    fn ended(&mut self, _machine: &Machine, outcome: &MigrationOutcome) {
        {
            let mut inner = self.monitor.lock();
            inner.phase = Phase::Ended(outcome.clone());
            self.monitor.changed.notify_all();
        }
        // The guest stays (running, or stopped after a completed migration) until the client
        // is done with the monitor, as QEMU's source process does.
        self.wait_until(|inner| inner.quit);
    }
}
