//! The running engine: one writer thread that owns the store's write
//! connection and commits the events of every request waiting at that
//! moment in one durable transaction (group commit), a pool of read
//! connections for the API, the current model run, and the clock.
//!
//! Every request that changes the store goes through the writer as a job,
//! and its answer is sent only after the commit: an acknowledged event is
//! on disk, and its customer's profile, scores and segment are current.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use lifecycle_engine::{ModelRun, RunConfig, live_profile, progress, segment_of, tripwires};
use lifecycle_moments::Channel;
use lifecycle_rfm::{CustomerSummary, Day, Scoring, SegmentTable};
use lifecycle_store::{
    CustomerFacts, EventStats, NewEvent, ProfileRow, Rescored, Store, StoreError, StoreUrl,
    TripwireRow,
};
use lifecycle_tripwires::{CustomTripwire, Happening, History, Start};
use serde_json::{Value, json};

use crate::journeys::{JourneyOptions, diff, journeys_from, sync_folder};

/// At most this many events are committed in one transaction.
const GROUP_EVENTS: usize = 20_000;
/// The writer thread's nice value (Linux): below the requests' threads,
/// above the events tree's background work (19). Reads come first on a
/// busy machine: a customer view waits for no batch, while a batch (whose
/// client already waits for a group commit) takes the time views leave;
/// under more reads than the cores serve, ingestion slows first. Measured
/// in 300 s soaks back to back (20,000 events/s, 1,000 views/s, 2 cores
/// shared with the load generator): view p99 5.69 ms at 0, 4.71 at 5, 4.31
/// at 10, batch p99 64 -> 193 ms, the rate kept in all three.
pub(crate) const WRITER_NICE: i32 = 10;
/// The page cache of each read and delivery connection (SQLite), in KiB;
/// the writer keeps the store's 64 MB.
const READER_CACHE_KIB: u32 = 8_192;

/// Sets the calling thread's nice value (Linux, where it is a thread's
/// own; elsewhere it would be the whole process's, so nothing happens).
pub(crate) fn lower_this_threads_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::setpriority_process(None, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The engine's clock: the system's, or a simulated one that only moves
/// when told to (for tests and for replaying history). Days are counted in
/// the store's time zone.
#[derive(Debug)]
pub struct Clock {
    simulated: Option<AtomicI64>,
    tz: jiff::tz::TimeZone,
}

impl Clock {
    pub fn system(tz: jiff::tz::TimeZone) -> Clock {
        Clock {
            simulated: None,
            tz,
        }
    }

    pub fn simulated(start_ms: i64, tz: jiff::tz::TimeZone) -> Clock {
        Clock {
            simulated: Some(AtomicI64::new(start_ms)),
            tz,
        }
    }

    /// The day (since 1970-01-01, in the clock's time zone) of an instant.
    pub fn day_of(&self, at: jiff::Timestamp) -> Day {
        let date = at.to_zoned(self.tz.clone()).date();
        jiff::civil::date(1970, 1, 1)
            .until(date)
            .map_or(0, |span| span.get_days())
    }

    /// The store's time zone.
    pub fn tz(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    pub fn now_ms(&self) -> i64 {
        match &self.simulated {
            Some(t) => t.load(Ordering::SeqCst),
            None => jiff::Timestamp::now().as_millisecond(),
        }
    }

    /// Today as days since 1970-01-01, in the clock's time zone.
    pub fn today(&self) -> Day {
        match jiff::Timestamp::from_millisecond(self.now_ms()) {
            Ok(t) => self.day_of(t),
            Err(_) => self.now_ms().div_euclid(86_400_000) as Day,
        }
    }

    /// Moves a simulated clock forward; `false` for the system clock.
    pub fn advance(&self, ms: i64) -> bool {
        match &self.simulated {
            Some(t) => {
                t.fetch_add(ms.max(0), Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// Days after a tripwire's deadline over which a run's backtest measures
/// repeat orders and revenue (as `lifecycle tripwires` does by default).
const BACKTEST_HORIZON_DAYS: u32 = 180;

/// The model run in force.
#[derive(Debug)]
pub struct CurrentRun {
    /// `None` before the first run.
    pub id: Option<i64>,
    pub at_ms: i64,
    pub run: ModelRun,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub events_stored: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub orders_new: AtomicU64,
    pub orders_updated: AtomicU64,
    pub merges: AtomicU64,
    pub merges_refused: AtomicU64,
    pub segment_events: AtomicU64,
    pub tripwire_events: AtomicU64,
    pub commits: AtomicU64,
    pub due_rescored: AtomicU64,
    pub refits: AtomicU64,
    pub journeys_woken: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_failed: AtomicU64,
    pub messages_retried: AtomicU64,
    pub messages_suppressed: AtomicU64,
    pub messages_deferred: AtomicU64,
    /// The writer's time in write transactions, µs: running statements,
    /// and committing (see [`lifecycle_store::WriteTime`]).
    pub writer_work_us: AtomicU64,
    pub writer_commit_us: AtomicU64,
}

/// What the writer does.
enum Job {
    Ingest(Vec<NewEvent>, Reply<EventStats>),
    Rescore(Vec<String>, Reply<u64>),
    Due(Reply<u64>),
    InstallRun(Box<CurrentRun>, Value, Reply<u64>),
    Merge(String, String, Reply<u64>),
    Erase(String, Reply<lifecycle_store::Erasure>),
    Audit(String, String, Reply<()>),
    Expire(i64, Reply<u64>),
    Moments(MomentsJob, Reply<Value>),
    Consent(String, Channel, bool, String, Reply<bool>),
}

/// A change to the moments.
pub enum MomentsJob {
    /// Store the folder's definitions (new versions where changed).
    SyncFolder,
    /// The same from another folder (a simulation loads its drafts after
    /// the first model run).
    SyncFrom(std::path::PathBuf),
    /// A definition from the API; `name`: the one it must have (PUT).
    Save {
        source: String,
        name: Option<String>,
    },
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// How the engine scores and values customers.
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: SegmentTable,
    pub scoring: Scoring,
    pub valuation: RunConfig,
    /// Custom tripwires (`[engine] tripwires` in lifecycle.toml).
    pub custom: Vec<CustomTripwire>,
    /// Moments, channels and delivery policy.
    pub journeys: JourneyOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            table: SegmentTable::default_table(),
            scoring: Scoring::Quintiles,
            valuation: RunConfig::default(),
            custom: Vec::new(),
            journeys: JourneyOptions::default(),
        }
    }
}

/// The delivery thread's connections and channels, made before the
/// server starts.
pub struct Delivery {
    stores: Vec<Store>,
    deliverer: crate::journeys::Deliverer,
    /// Signs unsubscribe links.
    pub secret: String,
}

/// Says on the operator's log what a folder sync changed.
fn log_sync(sync: &crate::journeys::FolderSync) {
    for c in &sync.changed {
        match &c.previous {
            Some(p) => eprintln!(
                "moment \"{}\" is now version {} (entrants of the previous version walk on):\n{}",
                c.name,
                c.version,
                crate::journeys::diff(p, &c.source)
            ),
            None => eprintln!("moment \"{}\" version {} loaded", c.name, c.version),
        }
    }
    for name in &sync.removed {
        eprintln!("moment \"{name}\": its file is gone; it takes no new entrants");
    }
}

/// Whether a run's norms need when customers were first seen.
fn needs_first_seen(run: &ModelRun) -> bool {
    run.norms
        .iter()
        .any(|n| n.step == lifecycle_tripwires::Step::FirstOrder)
}

/// Shared by every request.
pub struct Engine {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Vec<Mutex<Store>>,
    next_reader: AtomicUsize,
    pub run: RwLock<Arc<CurrentRun>>,
    pub table: SegmentTable,
    pub scoring: Scoring,
    pub custom: Vec<CustomTripwire>,
    pub clock: Clock,
    pub counters: Counters,
    pub config: RunConfig,
    pub journey_options: JourneyOptions,
    /// Set when the server shuts down (the delivery thread stops).
    pub stopping: AtomicBool,
    /// Bumped whenever the moments change (templates are re-read).
    pub moments_generation: AtomicU64,
    delivery: Mutex<Option<std::thread::JoinHandle<()>>>,
    url: StoreUrl,
}

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is shutting down")]
    ShuttingDown,
}

impl Engine {
    /// Opens the store (applying migrations), the read pool and the
    /// writer, and loads the latest model run.
    pub fn start(
        url: &StoreUrl,
        clock: Clock,
        settings: Settings,
        readers: usize,
    ) -> Result<Arc<Engine>, StoreError> {
        let mut writer_store = Store::open(url)?;
        let mut pool = Vec::with_capacity(readers.max(1));
        for _ in 0..readers.max(1) {
            let mut reader = Store::open(url)?;
            reader.limit_page_cache(READER_CACHE_KIB)?;
            pool.push(Mutex::new(reader));
        }
        let config = settings.valuation;
        let table = settings.table.clone();
        let settings_custom_names: Vec<String> = settings
            .custom
            .iter()
            .flat_map(|t| {
                let mut names = vec![t.action.event.clone()];
                if let Start::Event(e) = &t.start {
                    names.push(e.event.clone());
                }
                names
            })
            .collect();
        let latest = writer_store.runs(1)?.into_iter().next();
        let current = match latest {
            Some(stored) => match crate::runs::run_from_json(&stored.params, config) {
                Some(run) => CurrentRun {
                    id: Some(stored.id),
                    at_ms: stored.at_ms,
                    run,
                },
                None => CurrentRun {
                    id: None,
                    at_ms: clock.now_ms(),
                    run: ModelRun::empty(clock.today(), config),
                },
            },
            None => CurrentRun {
                id: None,
                at_ms: clock.now_ms(),
                run: ModelRun::empty(clock.today(), config),
            },
        };
        let mut watched: Vec<String> = Vec::new();
        for t in &settings_custom_names {
            if !watched.contains(t) {
                watched.push(t.clone());
            }
        }
        writer_store.watch_events(watched);
        writer_store.want_first_seen(needs_first_seen(&current.run));
        let options = settings.journeys.clone();
        let mut changed = Vec::new();
        if let Some(dir) = &options.dir {
            let sync =
                sync_folder(&mut writer_store, dir, &table, clock.now_ms()).map_err(|p| {
                    StoreError::Refused(format!(
                        "the moments in {} have problems:\n{p}",
                        dir.display()
                    ))
                })?;
            log_sync(&sync);
            changed = sync.changed.into_iter().map(|c| c.name).collect();
        }
        let (mut journeys, problems) =
            journeys_from(&writer_store.moments()?, &table, options.global_control);
        for p in problems {
            eprintln!("warning: {p}");
        }
        journeys.assume_consent = options.assume_consent;
        writer_store.set_journeys(journeys);
        for name in &changed {
            writer_store.arm_timers(name, clock.now_ms())?;
        }
        let (tx, rx) = mpsc::channel();
        let engine = Arc::new(Engine {
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            readers: pool,
            next_reader: AtomicUsize::new(0),
            run: RwLock::new(Arc::new(current)),
            table,
            scoring: settings.scoring,
            custom: settings.custom,
            clock,
            counters: Counters::default(),
            config,
            journey_options: options,
            stopping: AtomicBool::new(false),
            moments_generation: AtomicU64::new(0),
            delivery: Mutex::new(None),
            url: url.clone(),
        });
        let worker = engine.clone();
        let handle = std::thread::Builder::new()
            .name("lifecycle-writer".into())
            .spawn(move || worker.write_loop(writer_store, rx))
            .map_err(|e| StoreError::Refused(format!("cannot start the writer thread: {e}")))?;
        if let Ok(mut w) = engine.writer.lock() {
            *w = Some(handle);
        }
        Ok(engine)
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Stops taking jobs and waits for the writer to finish the queued
    /// ones (graceful shutdown).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        let handle = self.delivery.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Opens the delivery connections, reads the key that signs links and
    /// sets the channels up (blocking: call it outside the async runtime).
    pub fn prepare_delivery(&self) -> Result<Delivery, StoreError> {
        let mut stores = Vec::new();
        for _ in 0..self.journey_options.workers.max(1) {
            let mut store = Store::open(&self.url)?;
            store.limit_page_cache(READER_CACHE_KIB)?;
            stores.push(store);
        }
        let secret = stores[0].secret("links")?;
        let deliverer = crate::journeys::Deliverer::new(
            &self.journey_options,
            &secret,
            self.journey_options.public_url.clone().unwrap_or_default(),
            self.clock.tz().clone(),
        )
        .map_err(|e| StoreError::Refused(e.to_string()))?;
        Ok(Delivery {
            stores,
            deliverer,
            secret,
        })
    }

    /// Starts the delivery thread; `public_url` is used when none is set.
    pub fn start_delivery(
        self: &Arc<Self>,
        mut delivery: Delivery,
        public_url: String,
    ) -> Result<(), StoreError> {
        if self.journey_options.public_url.is_none() {
            delivery.deliverer.set_public_url(&public_url);
        }
        let engine = self.clone();
        let poll = self.journey_options.poll_every;
        let Delivery {
            stores, deliverer, ..
        } = delivery;
        let handle = std::thread::Builder::new()
            .name("lifecycle-delivery".into())
            .spawn(move || crate::journeys::delivery_loop(engine, stores, deliverer, poll))
            .map_err(|e| StoreError::Refused(format!("cannot start the delivery thread: {e}")))?;
        if let Ok(mut d) = self.delivery.lock() {
            *d = Some(handle);
        }
        Ok(())
    }

    pub fn count_delivery(&self, o: &lifecycle_store::Outcome) {
        use lifecycle_store::Outcome;
        let c = &self.counters;
        let counter = match o {
            Outcome::Sent { .. } => &c.messages_sent,
            Outcome::Failed { .. } => &c.messages_failed,
            Outcome::Retry { .. } => &c.messages_retried,
            Outcome::Suppressed { .. } => &c.messages_suppressed,
            Outcome::Deferred { .. } => &c.messages_deferred,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies a change to the moments; answers with what was stored.
    pub async fn moments(&self, job: MomentsJob) -> Result<Value, EngineError> {
        self.submit(|r| Job::Moments(job, r)).await
    }

    /// Records a consent change (unsubscribe link, provider notification).
    pub async fn consent(
        &self,
        customer: String,
        channel: Channel,
        granted: bool,
        source: String,
    ) -> Result<bool, EngineError> {
        self.submit(|r| Job::Consent(customer, channel, granted, source, r))
            .await
    }

    /// Runs `f` on a read connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            if let Ok(mut store) = self.readers[(start + k) % n].try_lock() {
                return f(&mut store);
            }
        }
        let mut store = match self.readers[start % n].lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&mut store)
    }

    pub fn current_run(&self) -> Arc<CurrentRun> {
        match self.run.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let jobs = self.jobs.lock().map_err(|_| EngineError::ShuttingDown)?;
            let sender = jobs.as_ref().ok_or(EngineError::ShuttingDown)?;
            sender
                .send(job(tx))
                .map_err(|_| EngineError::ShuttingDown)?;
        }
        Ok(rx.await.map_err(|_| EngineError::ShuttingDown)??)
    }

    /// Stores a request's events; answers after the durable commit.
    pub async fn ingest(&self, events: Vec<NewEvent>) -> Result<EventStats, EngineError> {
        self.submit(|r| Job::Ingest(events, r)).await
    }

    /// Moves every customer whose recency crossed a boundary by today.
    pub async fn run_due(&self) -> Result<u64, EngineError> {
        self.submit(Job::Due).await
    }

    pub async fn rescore(&self, ids: Vec<String>) -> Result<u64, EngineError> {
        self.submit(|r| Job::Rescore(ids, r)).await
    }

    pub async fn merge(&self, target: String, source: String) -> Result<u64, EngineError> {
        self.submit(|r| Job::Merge(target, source, r)).await
    }

    /// Erases a customer's personal data (see `Store::erase_customer`).
    pub async fn erase(&self, customer: String) -> Result<lifecycle_store::Erasure, EngineError> {
        self.submit(|r| Job::Erase(customer, r)).await
    }

    pub async fn audit(&self, action: &str, detail: String) -> Result<(), EngineError> {
        let action = action.to_string();
        self.submit(|r| Job::Audit(action, detail, r)).await
    }

    pub async fn expire_events(&self, cutoff_ms: i64) -> Result<u64, EngineError> {
        self.submit(|r| Job::Expire(cutoff_ms, r)).await
    }

    /// Refits on the stored history as of today (on a read connection, so
    /// ingestion goes on meanwhile), records the run and re-scores
    /// everyone under it. Returns the run.
    pub async fn refit(self: &Arc<Self>) -> Result<Arc<CurrentRun>, EngineError> {
        let engine = self.clone();
        let prepared =
            tokio::task::spawn_blocking(move || -> Result<(CurrentRun, Value), StoreError> {
                let today = engine.clock.today();
                let builder = engine.read(|s| s.load())?;
                let first_seen = engine.read(|s| s.first_seen())?;
                let mut summaries = Vec::with_capacity(builder.len());
                let mut histories = Vec::with_capacity(builder.len());
                builder.for_each_customer_orders(today, |id, entries| {
                    summaries.push(CustomerSummary::from_entries(id, entries, today));
                    let seen = first_seen.get(id).and_then(|&ms| engine.day_of_ms(ms));
                    histories.push(History::from_entries(entries, seen));
                });
                let mut run = ModelRun::fit(
                    &summaries,
                    today,
                    &engine.scoring,
                    &engine.table,
                    engine.config,
                );
                // Tripwire norms from the Champions as this run scores them.
                let champions = engine
                    .table
                    .segments()
                    .iter()
                    .position(|s| s.name == "Champions");
                let best: Vec<bool> = summaries
                    .iter()
                    .map(|s| Some(segment_of(&run, &engine.table, s, today)) == champions)
                    .collect();
                run.learn_norms(&histories, &best);
                let mut figures = crate::runs::history_figures(&run, &histories, today);
                // Each norm's backtest: learned before a split from the
                // Champions as they were then, judged on later deadlines.
                let best_at = |split: Day| -> Vec<bool> {
                    let mut at = Vec::with_capacity(builder.len());
                    builder.for_each_customer_orders(today, |id, entries| {
                        at.push(CustomerSummary::from_entries(id, entries, split));
                    });
                    let analysis = lifecycle_rfm::analyze(
                        at,
                        split,
                        &lifecycle_rfm::AnalysisConfig {
                            scoring: engine.scoring.clone(),
                            segments: engine.table.clone(),
                        },
                    );
                    analysis
                        .scores
                        .iter()
                        .map(|s| Some(usize::from(s.segment)) == champions)
                        .collect()
                };
                figures["backtests"] = crate::runs::backtests_json(
                    &run,
                    &histories,
                    today,
                    BACKTEST_HORIZON_DAYS,
                    best_at,
                );
                drop(builder);
                Ok((
                    CurrentRun {
                        id: None,
                        at_ms: engine.clock.now_ms(),
                        run,
                    },
                    figures,
                ))
            })
            .await
            .map_err(|_| EngineError::ShuttingDown)??;
        let (prepared, figures) = prepared;
        self.submit(|r| Job::InstallRun(Box::new(prepared), figures, r))
            .await?;
        self.counters.refits.fetch_add(1, Ordering::Relaxed);
        Ok(self.current_run())
    }

    /// The profile of a customer on `today` under the current run.
    fn score(&self, run: &CurrentRun, facts: &CustomerFacts<'_>, today: Day) -> ProfileRow {
        // The store's summary (every entry dated no later than now) or one
        // counted from the entries as of today.
        let mut summary = match facts.summary {
            Some(s) => CustomerSummary {
                customer_id: facts.customer_id.into(),
                ..s.clone()
            },
            None => CustomerSummary::from_entries(facts.customer_id, facts.entries, today),
        };
        summary.left_email = facts.has_email;
        let live = live_profile(&run.run, &self.table, &summary, today);
        let first_seen = facts.first_seen_ms.and_then(|ms| self.day_of_ms(ms));
        let trips = tripwires(&run.run, &summary, &progress(&summary, first_seen), today);
        let mut due_day = match (live.due_day, trips.next_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut rows: Vec<TripwireRow> = trips
            .open
            .iter()
            .map(|t| TripwireRow {
                name: t.name.clone(),
                status: t.status.name().to_string(),
                since: t.since,
                started: t.started,
                days_overdue: t.days_overdue,
                probability: t.probability,
            })
            .collect();
        for tw in &self.custom {
            let standing = self.custom_standing(tw, facts, today);
            if let Some((status, since, overdue, started)) = standing.open {
                rows.push(TripwireRow {
                    name: tw.name.clone(),
                    status: status.name().to_string(),
                    since,
                    started,
                    days_overdue: f64::from(overdue),
                    probability: None,
                });
            }
            if let Some(d) = standing.next_deadline {
                due_day = Some(due_day.map_or(d, |x| x.min(d)));
            }
        }
        let segment = self.table.segments().get(live.segment);
        let value = live.value;
        let clv = value.and_then(|v| v.clv);
        let clv_at_run = match facts.previous {
            Some(p) if p.run_id == run.id => p.clv_at_run,
            _ => clv,
        };
        let declining = match (clv, clv_at_run) {
            (Some(now), Some(then)) if then > 0.0 => now <= then * self.config.decline_share,
            _ => false,
        };
        ProfileRow {
            customer_id: facts.customer_id.to_string(),
            run_id: run.id,
            n_orders: i64::from(live.n_orders),
            total_spend: live.total_spend,
            first_order: live.first_order,
            last_order: live.last_order,
            r: live.scores.map(|s| i64::from(s.r)),
            f: live.scores.map(|s| i64::from(s.f)),
            m: live.scores.map(|s| i64::from(s.m)),
            segment: segment.map_or_else(String::new, |s| s.name.clone()),
            phase: segment.map_or_else(String::new, |s| s.phase.name().to_string()),
            p_alive: value.map(|v| v.p_alive),
            expected_purchases: value.map(|v| v.expected_purchases),
            clv,
            clv_at_run,
            declining,
            next_order_day: value.and_then(|v| v.next_order_day),
            due_day,
            updated_ms: 0,
            tripwires: rows,
        }
    }

    /// The day (engine time zone) of an instant in ms.
    pub fn day_of_ms(&self, ms: i64) -> Option<Day> {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| self.clock.day_of(t))
    }

    /// A custom tripwire's standing from the customer's watched events
    /// (their days in the engine's time zone) and traits.
    fn custom_standing(
        &self,
        tw: &CustomTripwire,
        facts: &CustomerFacts<'_>,
        today: Day,
    ) -> lifecycle_tripwires::CustomStanding {
        let happenings: Vec<Happening> = facts
            .events
            .iter()
            .filter_map(|e| {
                let payload: serde_json::Value = serde_json::from_str(&e.payload).ok()?;
                let property = |k: &str| match payload["properties"].get(k) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Null) | None => None,
                    Some(other) => Some(other.to_string()),
                };
                let start = match &tw.start {
                    Start::Event(m) => m.matches(&e.event, property),
                    Start::DateTrait(_) => false,
                };
                let action = tw.action.matches(&e.event, property);
                let at = jiff::Timestamp::from_millisecond(e.at_ms).ok()?;
                (start || action).then(|| Happening {
                    day: self.clock.day_of(at),
                    start,
                    action,
                })
            })
            .collect();
        let date_trait = match &tw.start {
            Start::DateTrait(name) => facts
                .traits
                .and_then(|t| t.get(name))
                .and_then(|v| v.as_str())
                .and_then(|s| s.get(..10))
                .and_then(|s| s.parse::<jiff::civil::Date>().ok())
                .and_then(|d| jiff::civil::date(1970, 1, 1).until(d).ok())
                .map(|span| span.get_days()),
            Start::Event(_) => None,
        };
        lifecycle_tripwires::evaluate(tw, &happenings, date_trait, today)
    }

    fn write_loop(self: Arc<Self>, mut store: Store, rx: mpsc::Receiver<Job>) {
        lower_this_threads_priority(WRITER_NICE);
        let mut pending: Option<Job> = None;
        loop {
            let spent = store.write_time();
            self.counters
                .writer_work_us
                .store(spent.work.as_micros() as u64, Ordering::Relaxed);
            self.counters
                .writer_commit_us
                .store(spent.commit.as_micros() as u64, Ordering::Relaxed);
            let job = match pending.take() {
                Some(j) => j,
                None => match rx.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                },
            };
            let run = self.current_run();
            let now_ms = self.clock.now_ms();
            let today = self.clock.today();
            let scorer = |f: &CustomerFacts<'_>| self.score(&run, f, today);
            match job {
                Job::Ingest(events, reply) => {
                    // Group commit: take every ingestion waiting now.
                    let mut requests = vec![events];
                    let mut replies = vec![reply];
                    let mut count = requests[0].len();
                    while count < GROUP_EVENTS {
                        match rx.try_recv() {
                            Ok(Job::Ingest(e, r)) => {
                                count += e.len();
                                requests.push(e);
                                replies.push(r);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    match store.ingest(&requests, &scorer, now_ms) {
                        Ok(stats) => {
                            self.counters.commits.fetch_add(1, Ordering::Relaxed);
                            for (s, r) in stats.into_iter().zip(replies) {
                                self.count(&s);
                                let _ = r.send(Ok(s));
                            }
                        }
                        Err(_) if requests.len() > 1 => {
                            // One bad request must not fail the others:
                            // retry each alone.
                            for (events, r) in requests.into_iter().zip(replies) {
                                let result = store
                                    .ingest(std::slice::from_ref(&events), &scorer, now_ms)
                                    .map(|mut s| s.pop().unwrap_or_default());
                                if let Ok(s) = &result {
                                    self.count(s);
                                }
                                let _ = r.send(result);
                            }
                        }
                        Err(e) => {
                            // One request: its own error (a storage failure
                            // stays one, so the client retries).
                            if let Some(r) = replies.into_iter().next() {
                                let _ = r.send(Err(e));
                            }
                        }
                    }
                }
                Job::Rescore(ids, reply) => {
                    let result = store.rescore(&ids, &scorer, now_ms).map(|r| {
                        self.count_rescored(r);
                        r.segment_events + r.tripwire_events
                    });
                    let _ = reply.send(result);
                }
                Job::Due(reply) => {
                    // Another instance on the same database may have made a
                    // newer run (it re-scored everyone): adopt it first.
                    let adopted = self.adopt_latest_run(&mut store);
                    let run = self.current_run();
                    let scorer = |f: &CustomerFacts<'_>| self.score(&run, f, today);
                    let result = adopted.and_then(|_| self.due(&mut store, &scorer, today, now_ms));
                    let _ = reply.send(result);
                }
                Job::InstallRun(new_run, figures, reply) => {
                    let _ = reply.send(self.install(&mut store, *new_run, figures, today, now_ms));
                }
                Job::Merge(target, source, reply) => {
                    let result = store.merge_customers(&target, &source, &scorer, now_ms);
                    let _ = reply.send(result);
                }
                Job::Erase(customer, reply) => {
                    let _ = reply.send(store.erase_customer(&customer, now_ms));
                }
                Job::Audit(action, detail, reply) => {
                    let _ = reply.send(store.audit(now_ms, &action, &detail));
                }
                Job::Expire(cutoff, reply) => {
                    let _ = reply.send(store.expire_events(cutoff));
                }
                Job::Moments(job, reply) => {
                    let _ = reply.send(self.change_moments(&mut store, job, now_ms));
                }
                Job::Consent(customer, channel, granted, source, reply) => {
                    let result =
                        store.record_consent(&customer, channel, granted, &source, &scorer, now_ms);
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn count(&self, s: &EventStats) {
        let c = &self.counters;
        c.events_stored.fetch_add(s.inserted, Ordering::Relaxed);
        c.events_duplicate
            .fetch_add(s.duplicates, Ordering::Relaxed);
        c.orders_new.fetch_add(s.orders_new, Ordering::Relaxed);
        c.orders_updated
            .fetch_add(s.orders_updated, Ordering::Relaxed);
        c.merges.fetch_add(s.merged, Ordering::Relaxed);
        c.merges_refused.fetch_add(s.refused, Ordering::Relaxed);
        c.segment_events
            .fetch_add(s.segment_events, Ordering::Relaxed);
    }

    fn due(
        &self,
        store: &mut Store,
        scorer: &dyn Fn(&CustomerFacts<'_>) -> ProfileRow,
        today: Day,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut moved = 0;
        let mut last: Vec<String> = Vec::new();
        loop {
            let ids = store.due(today, 2_000)?;
            if ids.is_empty() || ids == last {
                break;
            }
            let emitted = store.rescore(&ids, scorer, now_ms)?;
            self.counters
                .due_rescored
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            self.count_rescored(emitted);
            moved += ids.len() as u64;
            last = ids;
        }
        // Journeys whose waits have ended (the due-time index of enrolments).
        loop {
            let w = store.wake_journeys(now_ms, 5_000, scorer)?;
            self.counters
                .journeys_woken
                .fetch_add(w.woken, Ordering::Relaxed);
            if w.woken < 5_000 {
                break;
            }
        }
        Ok(moved)
    }

    fn change_moments(
        &self,
        store: &mut Store,
        job: MomentsJob,
        now_ms: i64,
    ) -> Result<Value, StoreError> {
        let mut changed: Vec<String> = Vec::new();
        let answer = match &job {
            MomentsJob::SyncFolder | MomentsJob::SyncFrom(_) => {
                let from = match &job {
                    MomentsJob::SyncFrom(d) => Some(d),
                    _ => self.journey_options.dir.as_ref(),
                };
                let Some(dir) = from else {
                    return Ok(json!({"changed": []}));
                };
                let sync = sync_folder(store, dir, &self.table, now_ms).map_err(|p| {
                    StoreError::Refused(format!(
                        "the moments in {} have problems (the running versions are kept):\n{p}",
                        dir.display()
                    ))
                })?;
                log_sync(&sync);
                changed.extend(sync.changed.iter().map(|c| c.name.clone()));
                for c in &sync.changed {
                    store.audit(
                        now_ms,
                        "moment saved",
                        &json!({"moment": c.name, "version": c.version, "origin": "folder"})
                            .to_string(),
                    )?;
                }
                json!({
                    "changed": sync.changed.iter().map(|c| json!({"name": c.name, "version": c.version})).collect::<Vec<_>>(),
                    "removed": sync.removed,
                })
            }
            MomentsJob::Save { source, name } => {
                let m = lifecycle_ingest::config::parse_moment(source, &self.table)
                    .map_err(|ps| StoreError::Refused(ps.join("\n")))?;
                if let Some(n) = name
                    && *n != m.name
                {
                    return Err(StoreError::Refused(format!(
                        "the definition is named \"{}\", not \"{n}\"",
                        m.name
                    )));
                }
                if let Some(dir) = &self.journey_options.dir {
                    let templates = lifecycle_deliver::templates::Templates::new(dir);
                    for s in &m.steps {
                        if let lifecycle_moments::Step::Send { template, .. } = &s.step {
                            templates
                                .check(template)
                                .map_err(|e| StoreError::Refused(e.to_string()))?;
                        }
                    }
                }
                let saved = store.save_moment(&m.name, source, "api", now_ms)?;
                if saved.changed {
                    changed.push(m.name.clone());
                    store.audit(
                        now_ms,
                        "moment saved",
                        &json!({"moment": m.name, "version": saved.version, "origin": "api"})
                            .to_string(),
                    )?;
                }
                json!({
                    "name": m.name,
                    "version": saved.version,
                    "changed": saved.changed,
                    "diff": saved.previous.as_deref().map(|p| diff(p, source)),
                })
            }
        };
        let (mut journeys, problems) = journeys_from(
            &store.moments()?,
            &self.table,
            self.journey_options.global_control,
        );
        for p in problems {
            eprintln!("warning: {p}");
        }
        journeys.assume_consent = self.journey_options.assume_consent;
        store.set_journeys(journeys);
        for name in &changed {
            store.arm_timers(name, now_ms)?;
        }
        self.moments_generation.fetch_add(1, Ordering::SeqCst);
        Ok(answer)
    }

    /// Switches to the store's latest run when it is newer than ours.
    fn adopt_latest_run(&self, store: &mut Store) -> Result<(), StoreError> {
        let current = self.current_run();
        let Some(latest) = store.runs(1)?.into_iter().next() else {
            return Ok(());
        };
        if current.id.is_some_and(|id| id >= latest.id) {
            return Ok(());
        }
        if let Some(run) = crate::runs::run_from_json(&latest.params, self.config) {
            store.want_first_seen(needs_first_seen(&run));
            let adopted = Arc::new(CurrentRun {
                id: Some(latest.id),
                at_ms: latest.at_ms,
                run,
            });
            match self.run.write() {
                Ok(mut r) => *r = adopted,
                Err(p) => *p.into_inner() = adopted,
            }
        }
        Ok(())
    }

    fn install(
        &self,
        store: &mut Store,
        mut new_run: CurrentRun,
        mut figures: Value,
        today: Day,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let ids = store.customer_ids()?;
        let params = crate::runs::run_to_json(&new_run.run);
        let id = store.save_run(now_ms, new_run.run.as_of, ids.len() as i64, &params)?;
        store.audit(
            now_ms,
            "model refit",
            &json!({"run": id, "customers": ids.len()}).to_string(),
        )?;
        new_run.id = Some(id);
        new_run.at_ms = now_ms;
        store.want_first_seen(needs_first_seen(&new_run.run));
        let new_run = Arc::new(new_run);
        match self.run.write() {
            Ok(mut r) => *r = new_run.clone(),
            Err(p) => *p.into_inner() = new_run.clone(),
        }
        let scorer = |f: &CustomerFacts<'_>| self.score(&new_run, f, today);
        let mut emitted = 0;
        for chunk in ids.chunks(5_000) {
            let r = store.rescore(chunk, &scorer, now_ms)?;
            self.count_rescored(r);
            emitted += r.segment_events + r.tripwire_events;
        }
        // What the store looks like under the new run (the dashboard's
        // trends and CLV distribution).
        let totals = store.segment_totals()?;
        let clv = store.clv_values()?;
        crate::runs::add_store_figures(&mut figures, &totals, &clv);
        store.set_run_figures(id, &figures.to_string())?;
        Ok(emitted)
    }

    fn count_rescored(&self, r: Rescored) {
        self.counters
            .segment_events
            .fetch_add(r.segment_events, Ordering::Relaxed);
        self.counters
            .tripwire_events
            .fetch_add(r.tripwire_events, Ordering::Relaxed);
    }
}
