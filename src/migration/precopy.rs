//! The pre-copy migration: QEMU's migration thread (`migration/migration.c`) with the RAM
//! bookkeeping of `migration/ram.c`, driving an injected [`Clock`], [`Guest`] and [`Link`].
//!
//! Loop, as in QEMU: each turn, unless the 100 ms window's byte budget is used, look at what is
//! pending; sync the dirty bitmap when it drops below `threshold_size`; complete when it is at
//! or below it; otherwise send pages until the budget is used, the bitmap is clean or 50 ms
//! passed. At each window's end, measure the bandwidth and derive `threshold_size`. The throttle
//! is decided inside bitmap syncs, at most once per second.

use super::auto_converge::{AutoConverge, PeriodFigures};
use super::dirty_limit::VcpuDirtyLimit;
use super::env::{CancelToken, Clock, Guest, GuestObservation, Link, PageBatch};
use super::failure::{kind_of, FailureKind};
use super::params::{AutoconvSettings, MigrationParameters};
use super::policy::{PeriodMeasurement, ThrottlePolicy};
use super::report::{Event, MigrationOutcome, MigrationStatus, Recorder, Sample, SyncReason};

const NS_PER_MS: u64 = 1_000_000;
/// `BUFFER_DELAY`: the rate-limit and counter window.
const BUFFER_DELAY_MS: u64 = 100;
/// `XFER_LIMIT_RATIO`: windows per second.
const XFER_LIMIT_RATIO: u64 = 1000 / BUFFER_DELAY_MS;
/// `MAX_WAIT`: longest a `ram_save_iterate` call sends before looking up again.
const MAX_WAIT_MS: u64 = 50;
/// Rate computations and throttle decisions happen at most once per this period.
const SYNC_PERIOD_MS: u64 = 1000;
/// QEMU 9.2+'s fallback dirty sync under auto-converge.
const PERIODIC_SYNC_MS: u64 = 5000;

/// Everything that decides a migration's behaviour.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MigrationConfig {
    /// QEMU's parameters and capability.
    pub params: MigrationParameters,
    /// autoconv's own settings.
    pub autoconv: AutoconvSettings,
}

/// Why the loop stopped early.
enum Stop {
    /// A backend error: its kind and the whole error chain as text.
    Failed(FailureKind, String),
    /// The link stalled past its bound ([`super::env::LinkStalled`]).
    Stalled(String),
    /// The link handed the guest over without confirmation
    /// ([`super::env::HandoverUnconfirmed`]): the source stays stopped.
    Unconfirmed(String),
    Cancelled,
    NotConverged,
}

/// Run one migration to its end. Never panics on backend errors: they end the migration as
/// `failed`, with the reason in the outcome.
pub fn migrate<C, G, L, R>(
    config: &MigrationConfig,
    clock: &mut C,
    guest: &mut G,
    link: &mut L,
    recorder: &mut R,
    cancel: &CancelToken,
) -> MigrationOutcome
where
    C: Clock + ?Sized,
    G: Guest + ?Sized,
    L: Link + ?Sized,
    R: Recorder + ?Sized,
{
    let s = State::new(config, clock, guest);
    let mut m = Precopy::new(s, config, clock, guest, link, recorder, cancel);
    let result = m.run(None).map(|_| ());
    m.finish(result)
}

/// Where [`migrate_until`] and [`resume`] pause a migration: always between two turns of the
/// migration thread's loop (turn 0 is the setup), never inside one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseAt {
    /// Before turn N starts.
    BeforeTurn(u64),
    /// After the turn in which the throttle policy picked a percentage for the Nth time.
    AfterPolicyPick(usize),
}

/// A migration paused between two turns: the core's whole state. Resumed with backends in
/// the state they were in when it paused, it goes on exactly as if it had never paused; with
/// copies of them, one pause can be resumed many times (a sweep shares a common beginning).
#[derive(Clone, Debug)]
pub struct Paused {
    s: State,
}

impl Paused {
    /// Turns run so far (the setup counts as one).
    pub fn turns(&self) -> u64 {
        self.s.turns
    }

    /// What the throttle policy picked so far.
    pub fn policy_picks(&self) -> &PolicyPicks {
        &self.s.picks
    }
}

/// What the throttle policy picked, in order (repeats included), and in which turn it last
/// picked. Only its picks read `cpu-throttle-initial`, `cpu-throttle-increment`,
/// `max-cpu-throttle` and `cpu-throttle-tailslow`
/// ([`MigrationParameters::policy_only_from`]): two migrations that differ only in those and
/// picked the same so far stand exactly alike.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyPicks {
    /// The percentages.
    pub pcts: Vec<u32>,
    /// The turn of the last one.
    pub last_turn: Option<u64>,
}

/// How far [`migrate_until`] or [`resume`] got.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per pause or end of a migration: not worth a box
pub enum Progress {
    /// The migration ended.
    Done(MigrationOutcome, PolicyPicks),
    /// It paused where asked.
    Paused(Paused),
}

/// Like [`migrate`], pausing at `pause` if the migration gets there before it ends.
pub fn migrate_until<C, G, L, R>(
    config: &MigrationConfig,
    clock: &mut C,
    guest: &mut G,
    link: &mut L,
    recorder: &mut R,
    cancel: &CancelToken,
    pause: PauseAt,
) -> Progress
where
    C: Clock + ?Sized,
    G: Guest + ?Sized,
    L: Link + ?Sized,
    R: Recorder + ?Sized,
{
    let s = State::new(config, clock, guest);
    resume(
        Paused { s },
        config,
        clock,
        guest,
        link,
        recorder,
        cancel,
        Some(pause),
    )
}

/// Go on with a paused migration, under `config` (which may differ from the one it paused
/// under only in what it has not read yet), until it ends or reaches `pause`.
#[allow(clippy::too_many_arguments)] // the backends of migrate() plus where it stands
pub fn resume<C, G, L, R>(
    paused: Paused,
    config: &MigrationConfig,
    clock: &mut C,
    guest: &mut G,
    link: &mut L,
    recorder: &mut R,
    cancel: &CancelToken,
    pause: Option<PauseAt>,
) -> Progress
where
    C: Clock + ?Sized,
    G: Guest + ?Sized,
    L: Link + ?Sized,
    R: Recorder + ?Sized,
{
    let mut m = Precopy::new(paused.s, config, clock, guest, link, recorder, cancel);
    match m.run(pause) {
        Ok(Flow::Paused) => Progress::Paused(Paused { s: m.s }),
        Ok(Flow::Completed) => {
            let picks = std::mem::take(&mut m.s.picks);
            Progress::Done(m.finish(Ok(())), picks)
        }
        Err(stop) => {
            let picks = std::mem::take(&mut m.s.picks);
            Progress::Done(m.finish(Err(stop)), picks)
        }
    }
}

/// Whether [`Precopy::run`] ended the loop or paused it.
enum Flow {
    Completed,
    Paused,
}

struct Precopy<'a, C: ?Sized, G: ?Sized, L: ?Sized, R: ?Sized> {
    cfg: &'a MigrationConfig,
    clock: &'a mut C,
    guest: &'a mut G,
    link: &'a mut L,
    recorder: &'a mut R,
    cancel: &'a CancelToken,
    s: State,
}

/// Everything of a migration but its backends and configuration.
#[derive(Clone, Debug)]
struct State {
    page: u64,
    status: MigrationStatus,
    start_ns: u64,
    setup_time_ms: u64,
    vm_stopped: bool,
    /// Turns of the loop started so far, the setup being turn 0.
    turns: u64,
    /// What the throttle policy picked.
    picks: PolicyPicks,

    // RAMState (ram.c)
    dirty_sync_count: u64,
    time_last_bitmap_sync_ms: Option<u64>,
    num_dirty_pages_period: u64,
    bytes_xfer_prev: u64,
    dirty_pages_rate: u64,
    dirty_bytes_last_sync: u64,
    auto_converge: AutoConverge,
    /// Who picks the percentage when auto-converge's trigger fires.
    policy: ThrottlePolicy,
    /// The throttle at the start of the current sync period (for the policy's measurements).
    period_start_pct: u32,
    /// The quota last handed to the guest, once dirty-limit's trigger has fired.
    dirty_limit_quota_mb_s: Option<u64>,
    /// Dirty-limit's query-migrate figures as last sampled while active (us).
    dirty_limit_figures: Option<(u64, u64)>,
    throttle_pct: u32,
    throttle_steps: Vec<u32>,

    // Counters
    transferred_bytes: u64,
    normal_pages: u64,
    zero_pages: u64,

    // MigrationState windows (migration.c)
    iteration_start_ms: u64,
    iteration_initial_bytes: u64,
    rate_limit_used: u64,
    /// Bytes per window; 0 = unlimited.
    rate_limit_max: u64,
    threshold_size: u64,
    expected_downtime_ms: u64,
    mbps: f64,

    // QEMU 9.2+ periodic sync timer
    periodic_sync_next_ns: Option<u64>,
    prev_sync_cnt: u64,
    /// A periodic sync ended after the next one was due: syncs cannot keep up (said in the
    /// reason when the time limit stops the run).
    syncs_behind: bool,

    // Reporting
    first_obs: GuestObservation,
    last_obs: GuestObservation,
    last_sample_ns: u64,
    batch: PageBatch,
    downtime_ms: Option<u64>,
    guest_pause_ms: Option<u64>,
}

impl State {
    /// A migration about to set up.
    fn new<C, G>(config: &MigrationConfig, clock: &C, guest: &mut G) -> State
    where
        C: Clock + ?Sized,
        G: Guest + ?Sized,
    {
        let start_ns = clock.now_ns();
        let first_obs = guest.observe();
        let page = guest.page_size_bytes();
        State {
            page,
            status: MigrationStatus::Setup,
            start_ns,
            setup_time_ms: 0,
            vm_stopped: false,
            dirty_sync_count: 0,
            time_last_bitmap_sync_ms: None,
            num_dirty_pages_period: 0,
            bytes_xfer_prev: 0,
            dirty_pages_rate: 0,
            dirty_bytes_last_sync: 0,
            auto_converge: AutoConverge::default(),
            policy: ThrottlePolicy::new(
                config.autoconv.policy,
                config.autoconv.profile.as_ref().map(|p| &p.curve),
            ),
            period_start_pct: 0,
            dirty_limit_quota_mb_s: None,
            dirty_limit_figures: None,
            throttle_pct: 0,
            throttle_steps: Vec::new(),
            transferred_bytes: 0,
            normal_pages: 0,
            zero_pages: 0,
            iteration_start_ms: start_ns / NS_PER_MS,
            iteration_initial_bytes: 0,
            rate_limit_used: 0,
            rate_limit_max: config.params.max_bandwidth / XFER_LIMIT_RATIO,
            threshold_size: 0,
            expected_downtime_ms: config.params.downtime_limit,
            mbps: 0.0,
            periodic_sync_next_ns: None,
            prev_sync_cnt: 0,
            syncs_behind: false,
            first_obs,
            last_obs: first_obs,
            last_sample_ns: start_ns,
            batch: PageBatch::default(),
            downtime_ms: None,
            guest_pause_ms: None,
            turns: 0,
            picks: PolicyPicks::default(),
        }
    }
}

impl<'a, C, G, L, R> Precopy<'a, C, G, L, R>
where
    C: Clock + ?Sized,
    G: Guest + ?Sized,
    L: Link + ?Sized,
    R: Recorder + ?Sized,
{
    /// A migration standing at `s` (fresh from [`State::new`], or paused), on these backends.
    fn new(
        s: State,
        cfg: &'a MigrationConfig,
        clock: &'a mut C,
        guest: &'a mut G,
        link: &'a mut L,
        recorder: &'a mut R,
        cancel: &'a CancelToken,
    ) -> Self {
        Precopy {
            cfg,
            clock,
            guest,
            link,
            recorder,
            cancel,
            s,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ns() / NS_PER_MS
    }

    fn elapsed_ms(&self) -> u64 {
        (self.now_ns() - self.s.start_ns) / NS_PER_MS
    }

    fn run(&mut self, pause: Option<PauseAt>) -> Result<Flow, Stop> {
        loop {
            if pause.is_some_and(|p| self.reached(p)) {
                return Ok(Flow::Paused);
            }
            let turn = self.s.turns;
            self.s.turns += 1;
            if turn == 0 {
                self.setup()?;
                continue;
            }
            self.check_stop()?;
            self.periodic_sync_tick()?;
            if !self.rate_limit_exceeded() && self.iteration_run()? {
                self.completion()?;
                return Ok(Flow::Completed);
            }
            let now_ms = self.now_ms();
            self.update_counters(now_ms);
            if self.rate_limit_exceeded() {
                let deadline_ms = self.s.iteration_start_ms + BUFFER_DELAY_MS;
                self.clock.sleep_until(deadline_ms * NS_PER_MS);
            }
        }
    }

    fn reached(&self, pause: PauseAt) -> bool {
        match pause {
            PauseAt::BeforeTurn(n) => self.s.turns >= n,
            PauseAt::AfterPolicyPick(n) => self.s.picks.pcts.len() >= n,
        }
    }

    /// A guest error ends the migration as a guest fault, unless the backend typed it.
    fn guest_call<T>(r: Result<T, super::env::BackendError>) -> Result<T, Stop> {
        r.map_err(|e| Self::stop(e, FailureKind::GuestFault))
    }

    /// A link error ends it as a lost link, unless the backend typed it (a stall, or the
    /// destination's verdict).
    fn link_call<T>(r: Result<T, super::env::BackendError>) -> Result<T, Stop> {
        r.map_err(|e| Self::stop(e, FailureKind::LinkLost))
    }

    fn stop(e: super::env::BackendError, otherwise: FailureKind) -> Stop {
        if let Some(stalled) = e.downcast_ref::<super::env::LinkStalled>() {
            Stop::Stalled(stalled.0.clone())
        } else if let Some(u) = e.downcast_ref::<super::env::HandoverUnconfirmed>() {
            Stop::Unconfirmed(u.0.clone())
        } else {
            Stop::Failed(kind_of(&e, otherwise), error_chain(e.as_ref()))
        }
    }

    fn setup(&mut self) -> Result<(), Stop> {
        self.emit_sample();
        if self.cfg.params.auto_converge && self.cfg.autoconv.qemu_version.has_periodic_dirty_sync()
        {
            // Started before setup, first tick 5 s later.
            self.s.periodic_sync_next_ns = Some(self.s.start_ns + PERIODIC_SYNC_MS * NS_PER_MS);
        }
        if self.cfg.params.dirty_limit {
            // QEMU refuses the capability without a dirty ring, before anything starts.
            Self::guest_call(self.guest.check_dirty_limit())?;
        }
        Self::guest_call(self.guest.start_dirty_tracking())?;
        self.bitmap_sync(SyncReason::Setup)?;
        self.s.status = MigrationStatus::Active;
        self.s.setup_time_ms = self.elapsed_ms();
        self.s.iteration_start_ms = self.now_ms();
        self.s.iteration_initial_bytes = self.s.transferred_bytes;
        Ok(())
    }

    fn check_stop(&mut self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if self.elapsed_ms() >= self.cfg.autoconv.time_limit_ms {
            return Err(Stop::NotConverged);
        }
        Ok(())
    }

    fn rate_limit_exceeded(&self) -> bool {
        self.s.rate_limit_max > 0 && self.s.rate_limit_used > self.s.rate_limit_max
    }

    /// `migration_iteration_run`. Returns true when it is time to complete.
    fn iteration_run(&mut self) -> Result<bool, Stop> {
        let mut pending = self.guest.dirty_pages() * self.s.page;
        if pending < self.s.threshold_size {
            self.bitmap_sync(SyncReason::PassEnd)?;
            pending = self.guest.dirty_pages() * self.s.page;
        }
        if pending == 0 || pending <= self.s.threshold_size {
            return Ok(true);
        }
        self.ram_save_iterate()?;
        Ok(false)
    }

    /// Bytes the next batch may take before the window's budget is exceeded.
    fn batch_budget(&self) -> u64 {
        let hint = self.link.batch_bytes_hint().max(1);
        if self.s.rate_limit_max == 0 {
            hint
        } else {
            (self.s.rate_limit_max + 1)
                .saturating_sub(self.s.rate_limit_used)
                .clamp(1, hint)
        }
    }

    /// Take one batch from the bitmap and send it. Returns false when the bitmap is clean.
    fn send_batch(&mut self, max_bytes: u64) -> Result<bool, Stop> {
        let cost = self.link.page_cost();
        self.s.batch.clear();
        Self::guest_call(
            self.guest
                .take_dirty_pages(max_bytes, cost, &mut self.s.batch),
        )?;
        if self.s.batch.is_empty() {
            return Ok(false);
        }
        let bytes = Self::link_call(self.link.send_pages(&self.s.batch))?;
        self.s.normal_pages += self.s.batch.normal_pages;
        self.s.zero_pages += self.s.batch.zero_pages;
        self.account(bytes);
        Ok(true)
    }

    fn account(&mut self, bytes: u64) {
        self.s.transferred_bytes += bytes;
        self.s.rate_limit_used += bytes;
    }

    /// `ram_save_iterate`: send until the window's budget is used, the bitmap is clean, or
    /// more than `MAX_WAIT` ms passed. QEMU reads the clock every 64 pages and leaves once the
    /// whole milliseconds elapsed exceed 50, i.e. at about 51 ms; batches are cut (from the
    /// rate seen so far in this call) so the same holds whatever the link's batch size.
    fn ram_save_iterate(&mut self) -> Result<(), Stop> {
        let t0 = self.now_ns();
        let leave_ns = (MAX_WAIT_MS + 1) * NS_PER_MS;
        let sent_before = self.s.transferred_bytes;
        while !self.rate_limit_exceeded() {
            let elapsed_ns = self.now_ns() - t0;
            let sent = self.s.transferred_bytes - sent_before;
            let mut max_bytes = self.batch_budget();
            if elapsed_ns > 0 && sent > 0 {
                let left_ns = leave_ns.saturating_sub(elapsed_ns);
                // In u64 while the product fits (a u128 division is a library call).
                let fits = match sent.checked_mul(left_ns) {
                    Some(product) => product / elapsed_ns,
                    None => {
                        (u128::from(sent) * u128::from(left_ns) / u128::from(elapsed_ns)) as u64
                    }
                };
                max_bytes = max_bytes.min(fits.max(1));
            }
            if !self.send_batch(max_bytes)? {
                break;
            }
            if (self.now_ns() - t0) / NS_PER_MS > MAX_WAIT_MS {
                break;
            }
        }
        let eos = Self::link_call(self.link.send_end_of_iteration())?;
        self.account(eos);
        Ok(())
    }

    /// `migration_bitmap_sync`, with the throttle decision inside.
    fn bitmap_sync(&mut self, reason: SyncReason) -> Result<(), Stop> {
        self.s.dirty_sync_count += 1;
        if self.s.time_last_bitmap_sync_ms.is_none() {
            self.s.time_last_bitmap_sync_ms = Some(self.now_ms());
        }
        let newly = Self::guest_call(self.guest.sync_dirty_bitmap())?;
        self.s.num_dirty_pages_period += newly;
        let end_ms = self.now_ms();
        let last_ms = self.s.time_last_bitmap_sync_ms.unwrap_or(end_ms);
        let event = Event::DirtySync {
            t_ms: self.elapsed_ms(),
            dirty_sync_count: self.s.dirty_sync_count,
            newly_dirty_pages: newly,
            reason,
        };
        self.recorder.event(&event);
        if end_ms > last_ms + SYNC_PERIOD_MS {
            let figures = PeriodFigures {
                bytes_dirty_period: self.s.num_dirty_pages_period * self.s.page,
                bytes_xfer_period: self.s.transferred_bytes - self.s.bytes_xfer_prev,
            };
            let period_ms = (end_ms - last_ms) as f64;
            self.s.policy.observe(PeriodMeasurement {
                steady_pct: (self.s.period_start_pct == self.s.throttle_pct)
                    .then_some(self.s.throttle_pct),
                dirty_bytes_s: figures.bytes_dirty_period as f64 * 1000.0 / period_ms,
                xfer_bytes_s: figures.bytes_xfer_period as f64 * 1000.0 / period_ms,
            });
            let params = &self.cfg.params;
            if params.auto_converge || params.dirty_limit {
                if let Some(threshold) = self.s.auto_converge.fires(params, figures) {
                    if params.auto_converge {
                        let pct = self.s.policy.next_pct(
                            params,
                            self.s.throttle_pct,
                            figures.bytes_dirty_period,
                            threshold,
                        );
                        self.s.picks.pcts.push(pct);
                        // The turn in progress: the one counted last.
                        self.s.picks.last_turn = Some(self.s.turns - 1);
                        self.set_throttle(pct);
                    } else {
                        self.dirty_limit_guest()?;
                    }
                }
            }
            self.s.period_start_pct = self.s.throttle_pct;
            self.s.dirty_pages_rate = self.s.num_dirty_pages_period * 1000 / (end_ms - last_ms);
            self.s.time_last_bitmap_sync_ms = Some(end_ms);
            self.s.num_dirty_pages_period = 0;
            self.s.bytes_xfer_prev = self.s.transferred_bytes;
        }
        self.s.dirty_bytes_last_sync = self.guest.dirty_pages() * self.s.page;
        Ok(())
    }

    fn set_throttle(&mut self, pct: u32) {
        self.guest.set_throttle_pct(pct);
        // At max-cpu-throttle QEMU sets the same value again; the summary lists changes only,
        // the events keep every set.
        if pct != self.s.throttle_pct {
            self.s.throttle_steps.push(pct);
        }
        self.s.throttle_pct = pct;
        let event = Event::ThrottleSet {
            t_ms: self.elapsed_ms(),
            pct,
        };
        self.recorder.event(&event);
    }

    /// `migration_dirty_limit_guest`: hand every vCPU the `vcpu-dirty-limit` quota, unless
    /// that quota is already in force.
    fn dirty_limit_guest(&mut self) -> Result<(), Stop> {
        let quota_mb_s = self.cfg.params.vcpu_dirty_limit;
        if self.s.dirty_limit_quota_mb_s == Some(quota_mb_s) {
            return Ok(());
        }
        Self::guest_call(self.guest.set_vcpu_dirty_limit(Some(VcpuDirtyLimit {
            quota_mb_s,
            period_ms: self.cfg.params.x_vcpu_dirty_limit_period,
        })))?;
        self.s.dirty_limit_quota_mb_s = Some(quota_mb_s);
        let event = Event::DirtyLimitSet {
            t_ms: self.elapsed_ms(),
            quota_mb_s,
        };
        self.recorder.event(&event);
        Ok(())
    }

    /// QEMU 9.2+: every 5 s, force a sync if none happened since the last tick.
    fn periodic_sync_tick(&mut self) -> Result<(), Stop> {
        while let Some(due_ns) = self.s.periodic_sync_next_ns {
            if self.now_ns() < due_ns {
                break;
            }
            // A sync that takes longer than the interval makes the next one due at once:
            // without this check that never ends (time advances only by syncing).
            self.check_stop()?;
            if self.s.dirty_sync_count > 1 && self.s.dirty_sync_count == self.s.prev_sync_cnt {
                self.bitmap_sync(SyncReason::Periodic)?;
                if self.now_ns() >= due_ns + PERIODIC_SYNC_MS * NS_PER_MS {
                    self.s.syncs_behind = true;
                }
            }
            self.s.prev_sync_cnt = self.s.dirty_sync_count;
            self.s.periodic_sync_next_ns = Some(due_ns + PERIODIC_SYNC_MS * NS_PER_MS);
        }
        Ok(())
    }

    /// `migration_update_counters`: close the window if 100 ms have passed.
    fn update_counters(&mut self, now_ms: u64) {
        if now_ms < self.s.iteration_start_ms + BUFFER_DELAY_MS {
            return;
        }
        let transferred = self.s.transferred_bytes - self.s.iteration_initial_bytes;
        let time_spent_ms = now_ms - self.s.iteration_start_ms;
        let bandwidth = transferred as f64 / time_spent_ms as f64; // bytes/ms
        let switchover_bw = if self.cfg.params.avail_switchover_bandwidth > 0 {
            self.cfg.params.avail_switchover_bandwidth as f64 / 1000.0
        } else {
            bandwidth
        };
        self.s.threshold_size = (switchover_bw * self.cfg.params.downtime_limit as f64) as u64;
        self.s.mbps = (transferred as f64 * 8.0) / (time_spent_ms as f64 / 1000.0) / 1e6;
        if self.s.dirty_pages_rate != 0 && transferred > 10_000 && switchover_bw > 0.0 {
            self.s.expected_downtime_ms =
                (self.s.dirty_bytes_last_sync as f64 / switchover_bw) as u64;
        }
        self.s.rate_limit_used = 0;
        self.s.iteration_start_ms = now_ms;
        self.s.iteration_initial_bytes = self.s.transferred_bytes;
        self.emit_sample();
    }

    /// `migration_completion` and `ram_save_complete`: stop, final sync, send everything.
    fn completion(&mut self) -> Result<(), Stop> {
        let downtime_start_ns = self.now_ns();
        let event = Event::Switchover {
            t_ms: self.elapsed_ms(),
            remaining_bytes: self.guest.dirty_pages() * self.s.page,
        };
        self.recorder.event(&event);
        Self::guest_call(self.guest.vm_stop())?;
        self.s.vm_stopped = true;
        self.s.status = MigrationStatus::Device;
        self.s.rate_limit_max = 0;
        self.bitmap_sync(SyncReason::Final)?;
        // migrate_cancel during stop-and-copy still cancels (QEMU shuts the stream down and
        // resumes the source): checked between batches, and by the link while it waits.
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            if !self.send_batch(self.link.batch_bytes_hint().max(1))? {
                break;
            }
        }
        let eos = Self::link_call(self.link.send_end_of_iteration())?;
        self.account(eos);
        let mut state = Vec::new();
        Self::guest_call(self.guest.save_device_state(&mut state))?;
        let bytes = Self::link_call(self.link.send_device_state(&state))?;
        self.account(bytes);
        // QEMU's downtime ends when the source has put the last byte in the stream; it does
        // not wait for the destination.
        self.s.downtime_ms = Some((self.now_ns() - downtime_start_ns) / NS_PER_MS);
        let verdict = self.link.complete();
        if verdict.is_err() && self.cancel.is_cancelled() {
            // Cancelled while the link waited for the destination's verdict: unless the link
            // says the guest may already run there, the source takes it back.
            let r = Self::link_call(verdict);
            return match r {
                Err(Stop::Unconfirmed(why)) => Err(Stop::Unconfirmed(why)),
                _ => Err(Stop::Cancelled),
            };
        }
        let bytes = Self::link_call(verdict)?;
        self.account(bytes);
        self.s.guest_pause_ms = Some((self.now_ns() - downtime_start_ns) / NS_PER_MS);
        Ok(())
    }

    fn emit_sample(&mut self) {
        // Dirty-limit's query-migrate figures are sampled here too; otherwise a recorder that
        // drops samples needs no observation.
        if !self.recorder.wants_samples() && !self.cfg.params.dirty_limit {
            return;
        }
        let now_ns = self.now_ns();
        let obs = self.guest.observe();
        let dt_ns = now_ns.saturating_sub(self.s.last_sample_ns);
        let (cpu_pct, writes_s) = if dt_ns == 0 {
            (if self.s.vm_stopped { 0.0 } else { 100.0 }, 0.0)
        } else {
            let vcpu_ns = dt_ns as f64 * f64::from(obs.vcpus.max(1));
            let slept =
                obs.throttle_sleep_vcpu_ns
                    .saturating_sub(self.s.last_obs.throttle_sleep_vcpu_ns) as f64;
            let cpu = if self.s.vm_stopped {
                0.0
            } else {
                (100.0 * (1.0 - slept / vcpu_ns)).clamp(0.0, 100.0)
            };
            let writes = obs
                .pages_written
                .saturating_sub(self.s.last_obs.pages_written) as f64;
            (cpu, writes * 1e9 / dt_ns as f64)
        };
        let sample = Sample {
            t_ms: (now_ns - self.s.start_ns) / NS_PER_MS,
            status: self.s.status,
            throttle_pct: self.s.throttle_pct,
            transferred_bytes: self.s.transferred_bytes,
            remaining_bytes: self.guest.dirty_pages() * self.s.page,
            dirty_pages_rate: self.s.dirty_pages_rate,
            dirty_sync_count: self.s.dirty_sync_count,
            expected_downtime_ms: self.s.expected_downtime_ms,
            mbps: self.s.mbps,
            guest_cpu_pct: cpu_pct,
            guest_write_pages_s: writes_s,
            dirty_limit_throttle_time_per_round_us: obs.dirty_limit_throttle_time_per_round_us,
            dirty_limit_ring_full_time_us: obs.dirty_limit_ring_full_time_us,
        };
        if self.cfg.params.dirty_limit && self.s.status == MigrationStatus::Active {
            self.s.dirty_limit_figures = Some((
                obs.dirty_limit_throttle_time_per_round_us,
                obs.dirty_limit_ring_full_time_us,
            ));
        }
        self.recorder.sample(&sample);
        self.s.last_obs = obs;
        self.s.last_sample_ns = now_ns;
    }

    fn time_limit_reason(&self) -> String {
        format!(
            "stopped at autoconv's time limit of {} s without converging (QEMU would keep trying){}",
            self.cfg.autoconv.time_limit_ms as f64 / 1000.0,
            if self.s.syncs_behind {
                "; each dirty sync took longer than the 5 s periodic-sync interval, so syncs could not keep up"
            } else {
                ""
            }
        )
    }

    /// Every exit path: throttle off, dirty logging off, the source resumed unless completed.
    fn finish(mut self, result: Result<(), Stop>) -> MigrationOutcome {
        let mut handed_over = false;
        let failure = match &result {
            Err(Stop::Failed(kind, _)) => Some(*kind),
            // COMMIT went out and its answer was lost: the link, as far as the source knows.
            Err(Stop::Unconfirmed(_)) => Some(FailureKind::LinkLost),
            _ => None,
        };
        let (status, reason) = match result {
            Ok(()) => (MigrationStatus::Completed, None),
            Err(Stop::Failed(_, why)) => (MigrationStatus::Failed, Some(why)),
            Err(Stop::Cancelled) => (
                MigrationStatus::Cancelled,
                Some("migration cancelled".to_string()),
            ),
            Err(Stop::NotConverged) => (
                MigrationStatus::NotConverged,
                Some(self.time_limit_reason()),
            ),
            // A stalled link is given up as QEMU's migrate_cancel gives up a migration:
            // cancelled, the guest resumed below; at the time limit, not-converged.
            Err(Stop::Stalled(why)) if self.elapsed_ms() >= self.cfg.autoconv.time_limit_ms => (
                MigrationStatus::NotConverged,
                Some(format!("{}; {why}", self.time_limit_reason())),
            ),
            Err(Stop::Stalled(why)) => (
                MigrationStatus::Cancelled,
                Some(format!("{why}: migration cancelled")),
            ),
            Err(Stop::Unconfirmed(why)) => {
                // Not resumed below: the destination may be running the guest.
                handed_over = true;
                (MigrationStatus::Failed, Some(why))
            }
        };
        if self.s.throttle_pct != 0 {
            self.guest.set_throttle_pct(0);
            self.s.throttle_pct = 0;
        }
        let mut cancel_failure = None;
        if self.s.dirty_limit_quota_mb_s.take().is_some() {
            // QEMU cancels the per-vCPU limits when the migration ends, whatever the way.
            if let Err(e) = self.guest.set_vcpu_dirty_limit(None) {
                cancel_failure = Some(error_chain(e.as_ref()));
            }
        }
        self.guest.stop_dirty_tracking();
        let mut reason = reason;
        if status != MigrationStatus::Completed && !handed_over {
            self.link
                .abort(reason.as_deref().unwrap_or("migration ended"));
            if self.s.vm_stopped {
                if let Err(e) = self.guest.vm_start() {
                    let why = reason.take().unwrap_or_default();
                    reason = Some(format!(
                        "{why}; resuming the source guest also failed: {}",
                        error_chain(e.as_ref())
                    ));
                }
                self.s.vm_stopped = false;
            }
        }
        if let Some(why) = cancel_failure {
            let before = reason.take();
            reason = Some(match before {
                Some(r) => format!("{r}; removing the dirty limit also failed: {why}"),
                None => format!("removing the dirty limit failed: {why}"),
            });
        }
        self.s.status = status;
        self.emit_sample();
        let obs = self.guest.observe();
        let elapsed_ms = self.elapsed_ms();
        MigrationOutcome {
            status,
            reason,
            failure,
            elapsed_ms,
            total_time_ms: (status == MigrationStatus::Completed).then_some(elapsed_ms),
            setup_time_ms: self.s.setup_time_ms,
            downtime_ms: if status == MigrationStatus::Completed {
                self.s.downtime_ms
            } else {
                None
            },
            guest_pause_ms: if status == MigrationStatus::Completed {
                self.s.guest_pause_ms
            } else {
                None
            },
            transferred_bytes: self.s.transferred_bytes,
            normal_pages: self.s.normal_pages,
            zero_pages: self.s.zero_pages,
            dirty_sync_count: self.s.dirty_sync_count,
            max_throttle_pct: self.s.throttle_steps.iter().copied().max().unwrap_or(0),
            throttle_steps: self.s.throttle_steps,
            guest_cpu_lost_s: obs
                .throttle_sleep_vcpu_ns
                .saturating_sub(self.s.first_obs.throttle_sleep_vcpu_ns)
                as f64
                / 1e9,
            guest_pages_written: obs
                .pages_written
                .saturating_sub(self.s.first_obs.pages_written),
            dirty_limit_throttle_time_per_round_us: self
                .cfg
                .params
                .dirty_limit
                .then(|| self.s.dirty_limit_figures.map_or(0, |f| f.0)),
            dirty_limit_ring_full_time_us: self
                .cfg
                .params
                .dirty_limit
                .then(|| self.s.dirty_limit_figures.map_or(0, |f| f.1)),
        }
    }
}

/// "outer: inner: innermost" for an error and its sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    //! The core against a small scripted backend: a page-exact bitmap whose guest dirties a
    //! fixed number of pages per ms of unthrottled time, a link of fixed speed, and a clock
    //! that only moves when asked. Checks the exit paths QEMU guarantees.

    use super::*;
    use crate::migration::bitmap::DirtyBitmap;
    use crate::migration::env::{BackendError, PageCost, PageRef};
    use crate::migration::report::Timeline;
    use std::cell::Cell;
    use std::rc::Rc;

    struct TestClock(Rc<Cell<u64>>);
    impl Clock for TestClock {
        fn now_ns(&self) -> u64 {
            self.0.get()
        }
        fn sleep_until(&mut self, deadline_ns: u64) {
            self.0.set(self.0.get().max(deadline_ns));
        }
    }

    /// Dirties `per_ms` sequential pages per unthrottled ms.
    struct TestGuest {
        now: Rc<Cell<u64>>,
        last_ns: u64,
        bitmap: DirtyBitmap,
        log: DirtyBitmap,
        next_write: u64,
        per_ms: f64,
        carry: f64,
        throttle: u32,
        throttle_calls: Vec<u32>,
        stopped: bool,
        starts: u32,
        fail_stop: bool,
    }

    impl TestGuest {
        fn new(now: Rc<Cell<u64>>, pages: u64, per_ms: f64) -> Self {
            Self {
                now,
                last_ns: 0,
                bitmap: DirtyBitmap::new(pages),
                log: DirtyBitmap::new(pages),
                next_write: 0,
                per_ms,
                carry: 0.0,
                throttle: 0,
                throttle_calls: Vec::new(),
                stopped: false,
                starts: 0,
                fail_stop: false,
            }
        }
        fn catch_up(&mut self) {
            let now = self.now.get();
            if !self.stopped {
                let ms = (now - self.last_ns) as f64 / 1e6;
                let share = 1.0 - f64::from(self.throttle) / 100.0;
                self.carry += ms * self.per_ms * share;
                while self.carry >= 1.0 {
                    self.log.set(self.next_write % self.log.pages());
                    self.next_write += 1;
                    self.carry -= 1.0;
                }
            }
            self.last_ns = now;
        }
    }

    impl Guest for TestGuest {
        fn page_size_bytes(&self) -> u64 {
            4096
        }
        fn ram_bytes(&self) -> u64 {
            self.bitmap.pages() * 4096
        }
        fn start_dirty_tracking(&mut self) -> Result<(), BackendError> {
            self.bitmap.set_all();
            Ok(())
        }
        fn sync_dirty_bitmap(&mut self) -> Result<u64, BackendError> {
            self.catch_up();
            let mut newly = 0;
            while let Some(p) = self.log.take_next() {
                newly += u64::from(self.bitmap.set(p));
            }
            Ok(newly)
        }
        fn dirty_pages(&self) -> u64 {
            self.bitmap.count()
        }
        fn take_dirty_pages(
            &mut self,
            max_bytes: u64,
            cost: PageCost,
            batch: &mut PageBatch,
        ) -> Result<(), BackendError> {
            self.catch_up();
            let mut spent = 0;
            while spent < max_bytes {
                let Some(gfn) = self.bitmap.take_next() else {
                    break;
                };
                batch.pages.push(PageRef { gfn, zero: false });
                batch.normal_pages += 1;
                spent += cost.normal_page_bytes;
            }
            Ok(())
        }
        fn stop_dirty_tracking(&mut self) {}
        fn set_throttle_pct(&mut self, pct: u32) {
            self.catch_up();
            self.throttle = pct;
            self.throttle_calls.push(pct);
        }
        fn vm_stop(&mut self) -> Result<(), BackendError> {
            self.catch_up();
            if self.fail_stop {
                return Err("vCPU 0 did not stop".into());
            }
            self.stopped = true;
            Ok(())
        }
        fn vm_start(&mut self) -> Result<(), BackendError> {
            self.catch_up();
            self.stopped = false;
            self.starts += 1;
            Ok(())
        }
        fn save_device_state(&mut self, out: &mut Vec<u8>) -> Result<(), BackendError> {
            out.extend_from_slice(&[0; 100]);
            Ok(())
        }
        fn observe(&mut self) -> GuestObservation {
            GuestObservation {
                vcpus: 1,
                ..GuestObservation::default()
            }
        }
    }

    /// `bytes_per_ms` of wire; can be told to fail after some bytes or at completion.
    struct TestLink {
        now: Rc<Cell<u64>>,
        bytes_per_ms: u64,
        sent: u64,
        fail_after_bytes: Option<u64>,
        /// Past this many bytes the link stalls: the send waits this long, then gives up.
        stall_after_bytes: Option<(u64, u64)>,
        aborted: Option<String>,
        /// What `complete` answers (None: the destination runs the guest).
        verdict: Option<fn() -> BackendError>,
        /// Cancel this token while waiting for the verdict (a Ctrl-C in verification).
        cancel_in_verdict: Option<CancelToken>,
    }

    impl TestLink {
        fn send(&mut self, bytes: u64) -> Result<u64, BackendError> {
            self.sent += bytes;
            if self.fail_after_bytes.is_some_and(|limit| self.sent > limit) {
                return Err("connection reset by peer".into());
            }
            if let Some((limit, wait_ms)) = self.stall_after_bytes {
                if self.sent > limit {
                    self.now.set(self.now.get() + wait_ms * 1_000_000);
                    return Err(Box::new(crate::migration::LinkStalled(format!(
                        "the destination read nothing for {wait_ms} ms"
                    ))));
                }
            }
            self.now
                .set(self.now.get() + bytes * 1_000_000 / self.bytes_per_ms);
            Ok(bytes)
        }
    }

    impl Link for TestLink {
        fn send_pages(&mut self, batch: &PageBatch) -> Result<u64, BackendError> {
            self.send(batch.normal_pages * 4104)
        }
        fn send_end_of_iteration(&mut self) -> Result<u64, BackendError> {
            self.send(8)
        }
        fn send_device_state(&mut self, state: &[u8]) -> Result<u64, BackendError> {
            self.send(state.len() as u64)
        }
        fn page_cost(&self) -> PageCost {
            PageCost::QEMU_4K
        }
        fn batch_bytes_hint(&self) -> u64 {
            256 * 4104
        }
        fn complete(&mut self) -> Result<u64, BackendError> {
            if let Some(c) = &self.cancel_in_verdict {
                c.cancel();
                return Err("cancelled while waiting for the destination".into());
            }
            self.verdict.map_or(Ok(0), |v| Err(v()))
        }
        fn abort(&mut self, reason: &str) {
            self.aborted = Some(reason.to_string());
        }
    }

    fn setup(per_ms: f64) -> (TestClock, TestGuest, TestLink, MigrationConfig) {
        let now = Rc::new(Cell::new(0));
        let clock = TestClock(now.clone());
        let guest = TestGuest::new(now.clone(), 16_384, per_ms);
        let link = TestLink {
            now,
            bytes_per_ms: 1_000_000,
            sent: 0,
            fail_after_bytes: None,
            stall_after_bytes: None,
            aborted: None,
            verdict: None,
            cancel_in_verdict: None,
        };
        let mut cfg = MigrationConfig::default();
        cfg.params.auto_converge = true;
        cfg.params.max_bandwidth = 32 << 20;
        (clock, guest, link, cfg)
    }

    /// One migration with no timeline and nobody to cancel it.
    fn run(
        cfg: &MigrationConfig,
        clock: &mut TestClock,
        guest: &mut TestGuest,
        link: &mut TestLink,
    ) -> MigrationOutcome {
        migrate(cfg, clock, guest, link, &mut (), &CancelToken::new())
    }

    #[test]
    fn completes_and_unthrottles() {
        // 8 pages/ms dirtied against ~780 pages/s sent: needs throttling to converge.
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let mut timeline = Timeline::default();
        let o = migrate(
            &cfg,
            &mut clock,
            &mut guest,
            &mut link,
            &mut timeline,
            &CancelToken::new(),
        );
        assert_eq!(o.status, MigrationStatus::Completed, "{o:?}");
        assert!(!o.throttle_steps.is_empty());
        assert_eq!(
            guest.throttle_calls.last(),
            Some(&0),
            "throttle removed at the end"
        );
        assert!(guest.stopped, "a completed source stays stopped");
        assert_eq!(guest.starts, 0);
        assert!(o.downtime_ms.is_some() && o.total_time_ms == Some(o.elapsed_ms));
        // Samples every ~100 ms, from setup to the end.
        assert_eq!(
            timeline.samples.first().map(|s| s.status),
            Some(MigrationStatus::Setup)
        );
        assert_eq!(
            timeline.samples.last().map(|s| s.status),
            Some(MigrationStatus::Completed)
        );
        for w in timeline.samples.windows(2) {
            assert!(w[1].t_ms >= w[0].t_ms);
        }
    }

    #[test]
    fn pausing_before_every_turn_changes_nothing() {
        // The same migration run through, and paused before each of its turns and resumed:
        // the same outcome, samples and events.
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let mut whole = Timeline::default();
        let cancel = CancelToken::new();
        let expected = migrate(&cfg, &mut clock, &mut guest, &mut link, &mut whole, &cancel);
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let mut paused = Timeline::default();
        let (c, g, l, t) = (&mut clock, &mut guest, &mut link, &mut paused);
        let mut progress = migrate_until(&cfg, c, g, l, t, &cancel, PauseAt::BeforeTurn(0));
        let mut pauses = 0;
        let (outcome, picks) = loop {
            match progress {
                Progress::Done(o, picks) => break (o, picks),
                Progress::Paused(p) => {
                    assert_eq!(p.turns(), pauses, "paused before the turn asked for");
                    pauses += 1;
                    let pause = Some(PauseAt::BeforeTurn(pauses));
                    progress = resume(p, &cfg, c, g, l, t, &cancel, pause);
                }
            }
        };
        assert_eq!(outcome, expected);
        assert_eq!(paused.samples, whole.samples);
        assert_eq!(paused.events, whole.events);
        assert!(pauses > 100, "{pauses} turns");
        // Every pick set the throttle: the picks without repeats are the summary's steps.
        let mut steps = picks.pcts.clone();
        steps.dedup();
        assert!(steps.len() >= 2, "{picks:?}");
        assert_eq!(steps, expected.throttle_steps);
    }

    #[test]
    fn pauses_right_after_the_turn_of_a_pick() {
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let cancel = CancelToken::new();
        let (c, g, l) = (&mut clock, &mut guest, &mut link);
        let Progress::Paused(p) =
            migrate_until(&cfg, c, g, l, &mut (), &cancel, PauseAt::AfterPolicyPick(1))
        else {
            panic!("ended before the policy picked");
        };
        let turn = p.policy_picks().last_turn.expect("the turn of the pick");
        assert_eq!(p.policy_picks().pcts, [cfg.params.cpu_throttle_initial]);
        assert_eq!(turn + 1, p.turns(), "paused after that very turn");
        // Before that turn nothing was picked.
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let (c, g, l) = (&mut clock, &mut guest, &mut link);
        let Progress::Paused(before) =
            migrate_until(&cfg, c, g, l, &mut (), &cancel, PauseAt::BeforeTurn(turn))
        else {
            panic!("ended before turn {turn}");
        };
        assert_eq!(before.turns(), turn);
        assert_eq!(*before.policy_picks(), PolicyPicks::default());
    }

    #[test]
    fn not_converged_at_time_limit_unthrottles_and_reports_no_time() {
        let (mut clock, mut guest, mut link, mut cfg) = setup(40.0);
        cfg.params.max_cpu_throttle = 30;
        cfg.autoconv.time_limit_ms = 30_000;
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::NotConverged);
        assert_eq!(o.total_time_ms, None);
        assert_eq!(o.downtime_ms, None);
        assert!(
            o.elapsed_ms >= 30_000 && o.elapsed_ms < 31_000,
            "{}",
            o.elapsed_ms
        );
        assert_eq!(o.max_throttle_pct, 30);
        assert_eq!(guest.throttle_calls.last(), Some(&0));
        assert!(!guest.stopped);
        assert!(link.aborted.is_some());
    }

    #[test]
    fn link_failure_fails_unthrottles_and_keeps_source_running() {
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        link.fail_after_bytes = Some(200 << 20);
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::Failed);
        assert_eq!(o.reason.as_deref(), Some("connection reset by peer"));
        assert_eq!(guest.throttle_calls.last(), Some(&0));
        assert!(!guest.stopped);
    }

    #[test]
    fn failure_during_stop_and_copy_resumes_the_source() {
        let (mut clock, mut guest, mut link, mut cfg) = setup(0.5);
        cfg.params.max_bandwidth = 0;
        // Let the final send fail: the guest is stopped by then and must be started again.
        let total = 16_384 * 4104;
        link.fail_after_bytes = Some(total + 4104 * 8);
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
        assert_eq!(guest.starts, 1, "the source must be resumed");
        assert!(!guest.stopped);
    }

    #[test]
    fn an_unconfirmed_handover_leaves_the_source_stopped_and_a_refusal_resumes_it() {
        // The destination may run the guest: resuming the source could run it twice.
        let (mut clock, mut guest, mut link, mut cfg) = setup(0.5);
        cfg.params.max_bandwidth = 0;
        link.verdict = Some(|| {
            Box::new(crate::migration::HandoverUnconfirmed(
                "COMMIT sent, no answer".into(),
            ))
        });
        let cancel = CancelToken::new();
        let o = migrate(&cfg, &mut clock, &mut guest, &mut link, &mut (), &cancel);
        assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
        assert_eq!(o.reason.as_deref(), Some("COMMIT sent, no answer"));
        assert!(guest.stopped, "the source must stay stopped");
        assert_eq!(guest.starts, 0);
        assert!(link.aborted.is_none(), "no abort after a handover");
        // A destination that said no: the source takes its guest back.
        let (mut clock, mut guest, mut link, mut cfg) = setup(0.5);
        cfg.params.max_bandwidth = 0;
        link.verdict = Some(|| "the destination failed: memory differs".into());
        let o = migrate(&cfg, &mut clock, &mut guest, &mut link, &mut (), &cancel);
        assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
        assert_eq!((guest.stopped, guest.starts), (false, 1));
    }

    #[test]
    fn ctrl_c_while_the_destination_verifies_cancels_and_resumes_the_source() {
        let (mut clock, mut guest, mut link, mut cfg) = setup(0.5);
        cfg.params.max_bandwidth = 0;
        let cancel = CancelToken::new();
        link.cancel_in_verdict = Some(cancel.clone());
        let o = migrate(&cfg, &mut clock, &mut guest, &mut link, &mut (), &cancel);
        assert_eq!(o.status, MigrationStatus::Cancelled, "{o:?}");
        assert_eq!((guest.stopped, guest.starts), (false, 1));
        assert!(link.aborted.is_some());
    }

    #[test]
    fn a_stalled_link_is_cancelled_not_failed_and_the_source_resumed() {
        // QEMU ends a migration given up on with migrate_cancel as `cancelled`; a stall in
        // stop-and-copy (the guest stopped) must resume the source as well.
        let (mut clock, mut guest, mut link, mut cfg) = setup(0.5);
        cfg.params.max_bandwidth = 0;
        link.stall_after_bytes = Some((16_384 * 4104 + 4104 * 8, 15_000));
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::Cancelled, "{o:?}");
        assert_eq!(
            o.reason.as_deref(),
            Some("the destination read nothing for 15000 ms: migration cancelled")
        );
        assert_eq!(guest.starts, 1, "the source must be resumed");
        assert!(!guest.stopped);
        assert!(link.aborted.is_some());
        // The same stall cut at the run's time limit: not-converged, and it says both.
        let (mut clock, mut guest, mut link, mut cfg) = setup(8.0);
        cfg.autoconv.time_limit_ms = 10_000;
        link.stall_after_bytes = Some((100 << 20, 10_000));
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::NotConverged, "{o:?}");
        let reason = o.reason.unwrap();
        assert!(
            reason.starts_with("stopped at autoconv's time limit of 10 s")
                && reason.ends_with("; the destination read nothing for 10000 ms"),
            "{reason}"
        );
        assert_eq!(guest.throttle_calls.last().copied().unwrap_or(0), 0);
    }

    #[test]
    fn vm_stop_failure_fails_cleanly() {
        let (mut clock, mut guest, mut link, cfg) = setup(0.5);
        guest.fail_stop = true;
        let o = run(&cfg, &mut clock, &mut guest, &mut link);
        assert_eq!(o.status, MigrationStatus::Failed);
        assert_eq!(o.reason.as_deref(), Some("vCPU 0 did not stop"));
    }

    #[test]
    fn cancel_is_honoured() {
        let (mut clock, mut guest, mut link, cfg) = setup(8.0);
        let cancel = CancelToken::new();
        cancel.cancel();
        let o = migrate(&cfg, &mut clock, &mut guest, &mut link, &mut (), &cancel);
        assert_eq!(o.status, MigrationStatus::Cancelled);
        assert!(!guest.stopped);
        assert_eq!(link.aborted.as_deref(), Some("migration cancelled"));
    }

    #[test]
    fn rate_limit_holds_each_window_to_its_budget() {
        let (mut clock, mut guest, mut link, cfg) = setup(0.0);
        let mut timeline = Timeline::default();
        migrate(
            &cfg,
            &mut clock,
            &mut guest,
            &mut link,
            &mut timeline,
            &CancelToken::new(),
        );
        let budget = cfg.params.max_bandwidth / 10;
        let (mut windows_checked, mut windows_at_budget) = (0, 0);
        for w in timeline.samples.windows(2) {
            if w[1].status == MigrationStatus::Active && w[0].status == MigrationStatus::Active {
                let sent = w[1].transferred_bytes - w[0].transferred_bytes;
                // QEMU checks the budget before each page: at most one page (plus EOS) over.
                assert!(sent <= budget + 4104 + 8, "window sent {sent} > {budget}");
                windows_checked += 1;
                windows_at_budget += u32::from(sent + 4104 >= budget);
            }
        }
        // The bound was checked, and the limit was what held the migration back.
        assert!(
            windows_checked >= 3,
            "only {windows_checked} windows checked"
        );
        assert!(windows_at_budget >= 1, "no window used its budget");
    }
}
