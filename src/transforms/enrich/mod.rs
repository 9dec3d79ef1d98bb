//! `type = "enrich"`: turns events into events-with-records. Webhooks carry ids; this stage fetches the full
//! records from InsightIQ with as few calls as its 10 requests/s allow.
//!
//! It runs from the journal with its own checkpoint (consumer `transform.<name>`):
//! 1. read events of its sources from the checkpoint on ([`plan`] says what each event type needs);
//! 2. coalesce the ids of many events into calls of up to `max_ids` per endpoint, waiting at most `max_wait`
//!    ([`coalesce`]);
//! 3. send the calls through one global rate limiter ([`limiter`]) with retries ([`client`]);
//! 4. hand on finished events **in seq order**: their enriched documents and the new checkpoint are one journal
//!    write ([`Journal::hand_on`]), so a crash re-enriches exactly what was not handed on. An event whose call
//!    failed for good goes to the dead letters (written before the checkpoint passes it).
//!
//! The enriched document is the plugin contract's input (`spec/plugins.md`): `seq`, `id`, `event`,
//! `received_at`, `data`, `resources`, `missing`, plus `name`, `source`, and `skipped` (why nothing was
//! fetched) for events that pass through un-enriched.

pub mod client;
pub mod coalesce;
pub mod config;
pub mod limiter;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::client::{ApiAccess, Client};
use self::coalesce::{Answer, Done, Ticket, Tracker};
use self::config::IncomeChoice;
use self::limiter::RateLimiter;
use self::plan::{Plan, Skip};
use crate::clock::SharedClock;
use crate::dead_letters::{DeadLetter, DeadLetters, Replay};
use crate::journal::{Journal, JournalError, Record};
use crate::metrics::EnrichMetrics;
use crate::shutdown::{Signal, stopped};

pub use config::EnrichConfig;

/// Events read from the journal per read.
const READ_BATCH: usize = 256;
/// Most events held in memory (waiting for answers or for an earlier event to finish).
const MAX_EVENTS: usize = 10_000;
/// Most bytes of finished documents held while an earlier event is still waiting.
const MAX_READY_BYTES: usize = 64 << 20;
/// Most account → platform entries remembered for `income = "auto"`.
const MAX_PLATFORMS: usize = 100_000;

/// Why an enrich stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A call task panicked (a bug): its events would wait forever, so the stage stops.
    #[error("an API call task failed: {0}")]
    Task(String),
}

/// A built enrich stage.
pub struct Enrich {
    name: String,
    config: EnrichConfig,
    client: Arc<Client>,
    sources: BTreeSet<String>,
    dead_letters: DeadLetters,
    metrics: Arc<EnrichMetrics>,
    clock: SharedClock,
    /// Account id → platform name, learned from answers (`income = "auto"`).
    platforms: HashMap<String, String>,
}

/// An event read and not yet handed on.
struct InFlight {
    record: Record,
    data: Value,
    skipped: Option<String>,
}

/// The document handed on for one event.
#[derive(Serialize)]
struct Enriched<'a> {
    seq: u64,
    id: &'a str,
    event: &'a str,
    name: Option<&'a str>,
    source: &'a str,
    received_at: String,
    data: &'a Value,
    resources: Vec<Value>,
    missing: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'a str>,
    /// Set on a replayed dead letter: where it came from (see `dead_letters`).
    #[serde(rename = "_replay", skip_serializing_if = "Option::is_none")]
    replay: Option<Replay>,
}

impl Enrich {
    /// Builds stage `name` reading the events of `sources`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        name: &str,
        config: EnrichConfig,
        access: &ApiAccess,
        limiter: Arc<RateLimiter>,
        sources: BTreeSet<String>,
        dead_letters: DeadLetters,
        metrics: Arc<EnrichMetrics>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let client = Arc::new(Client::new(access, limiter, config.clone(), Arc::clone(&metrics))?);
        Ok(Self {
            name: name.to_owned(),
            config,
            client,
            sources,
            dead_letters,
            metrics,
            clock,
            platforms: HashMap::new(),
        })
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its journal consumer: `transform.<name>`.
    pub fn consumer(&self) -> String {
        consumer(&self.name)
    }

    /// Takes its place in the journal (a checkpoint at the oldest stored event), so trimming waits for it.
    ///
    /// # Errors
    /// When the journal fails.
    pub async fn register(&self, journal: &dyn Journal) -> Result<(), JournalError> {
        let consumer = self.consumer();
        if journal.checkpoint(&consumer).await?.is_none() {
            journal.commit_checkpoint(&consumer, journal.stats().first_seq).await?;
        }
        Ok(())
    }

    /// Runs until `shutdown`. Calls in flight are dropped at shutdown: their events were not handed on, so the
    /// next start fetches them again.
    ///
    /// # Errors
    /// When the journal cannot tell the checkpoint, or a call task panicked.
    pub async fn run(mut self, journal: Arc<dyn Journal>, mut shutdown: Signal) -> Result<(), EnrichError> {
        let consumer = self.consumer();
        let mut next_read = journal.checkpoint(&consumer).await?.unwrap_or(0);
        let mut handed = next_read;
        self.metrics.checkpoint.store(handed, Ordering::Relaxed);
        let mut tracker = Tracker::new(self.config.max_ids, self.config.max_wait);
        let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
        let mut ready: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
        let mut ready_bytes = 0usize;
        let mut calls: JoinSet<(Ticket, Answer)> = JoinSet::new();
        let mut stored = journal.subscribe();
        let origin = Instant::now();
        let mut exhausted = false;
        tracing::info!(stage = self.name, from = next_read, "enrich started");
        loop {
            let room = tracker.waiting_wants() < self.config.max_pending_ids
                && in_flight.len() + ready.len() < MAX_EVENTS
                && ready_bytes < MAX_READY_BYTES;
            if room {
                let Some(batch) = self.read(journal.as_ref(), next_read, &mut shutdown).await else { break };
                exhausted = batch.len() < READ_BATCH;
                for record in batch {
                    next_read = record.seq + 1;
                    if !self.sources.contains(&record.entry.source) {
                        continue;
                    }
                    let seq = record.seq;
                    match Replay::of(&record.entry) {
                        // A replayed `wasm` letter: its stored document goes on as it is, nothing is fetched.
                        Some(r) if r.document => {
                            ready_bytes += record.entry.body.len();
                            ready.insert(seq, Some(record.entry.body.to_vec()));
                        }
                        // Another stage's replay: not for this one.
                        Some(r) if r.stage != self.dead_letter_stage() => {}
                        _ => {
                            let (wants, flight) = self.prepare(record);
                            tracker.add(seq, wants, origin.elapsed());
                            in_flight.insert(seq, flight);
                        }
                    }
                }
            }
            let free = self.config.concurrency.saturating_sub(calls.len());
            for ticket in tracker.due(origin.elapsed(), false, free) {
                let client = Arc::clone(&self.client);
                calls.spawn(async move {
                    let answer = client.call(&ticket.call).await;
                    (ticket, answer)
                });
            }
            while let Some(joined) = calls.try_join_next() {
                let (ticket, answer) = joined.map_err(|e| EnrichError::Task(e.to_string()))?;
                tracker.answer(&ticket, &answer);
            }
            for (seq, done) in tracker.take_done() {
                if let Some(flight) = in_flight.remove(&seq) {
                    let doc = self.finish(flight, done).await;
                    ready_bytes += doc.as_ref().map_or(0, Vec::len);
                    ready.insert(seq, doc);
                }
            }
            // Everything below the first event still waiting is finished (or not ours): hand it on.
            let checkpoint = in_flight.keys().next().copied().unwrap_or(next_read);
            if checkpoint > handed {
                let keep = ready.split_off(&checkpoint);
                let outputs: Vec<(u64, Vec<u8>)> =
                    std::mem::replace(&mut ready, keep).into_iter().filter_map(|(s, d)| d.map(|d| (s, d))).collect();
                ready_bytes -= outputs.iter().map(|(_, d)| d.len()).sum::<usize>();
                let n = outputs.len() as u64;
                if !self.hand_on(journal.as_ref(), &consumer, outputs, checkpoint, &mut shutdown).await {
                    break;
                }
                handed = checkpoint;
                self.metrics.events.fetch_add(n, Ordering::Relaxed);
                self.metrics.checkpoint.store(handed, Ordering::Relaxed);
            }
            if room && !exhausted {
                continue;
            }
            // A partial call's deadline matters only when a call could start; otherwise the next answer wakes us.
            let free = self.config.concurrency.saturating_sub(calls.len());
            let deadline = tracker.next_deadline().filter(|_| free > 0).map(|d| origin + d);
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                Some(joined) = calls.join_next(), if !calls.is_empty() => {
                    let (ticket, answer) = joined.map_err(|e| EnrichError::Task(e.to_string()))?;
                    tracker.answer(&ticket, &answer);
                }
                changed = stored.changed(), if room => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {}
            }
        }
        calls.abort_all();
        tracing::info!(stage = self.name, checkpoint = handed, "enrich stopped");
        Ok(())
    }

    /// What `record` needs fetched, and its in-flight state.
    fn prepare(&self, record: Record) -> (Vec<plan::Want>, InFlight) {
        let mut data = serde_json::from_slice::<Value>(&record.entry.body)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(Value::take))
            .unwrap_or(Value::Null);
        if !data.is_object() {
            data = Value::Null;
        }
        let plan = plan::plan(&record.entry.event);
        let commerce = match self.config.income {
            IncomeChoice::Social => false,
            IncomeChoice::Commerce => true,
            IncomeChoice::Auto => data
                .get("account_id")
                .and_then(Value::as_str)
                .and_then(|a| self.platforms.get(a))
                .is_some_and(|p| self.config.commerce_platforms.iter().any(|c| c.eq_ignore_ascii_case(p))),
        };
        let (wants, skipped) = match plan {
            Plan::Skip(skip) => (Vec::new(), Some(skip.as_str().to_owned())),
            _ => match plan::wants(plan, &data, commerce) {
                Ok(w) => (w, None),
                Err(reason) => (Vec::new(), Some(reason)),
            },
        };
        if let Some(reason) = &skipped
            && plan != Plan::Skip(Skip::Job)
            && plan != Plan::Skip(Skip::Publish)
        {
            tracing::debug!(stage = self.name, event_id = record.entry.id, reason, "passing event through un-enriched");
        }
        (wants, InFlight { record, data, skipped })
    }

    /// The document of a finished event, or `None` when it went to the dead letters.
    async fn finish(&mut self, flight: InFlight, done: Done) -> Option<Vec<u8>> {
        let InFlight { record, data, skipped } = flight;
        match done {
            Done::Enriched { resources, missing } => {
                self.learn_platforms(&record.entry.event, &resources);
                let e = &record.entry;
                let replay = Replay::of(e);
                let doc = Enriched {
                    // A replay keeps its original seq: the lake's `_seq` is the event's lineage.
                    seq: replay.as_ref().map_or(record.seq, |r| r.seq),
                    replay,
                    id: &e.id,
                    event: &e.event,
                    name: e.name.as_deref(),
                    source: &e.source,
                    received_at: crate::clock::format_micros(e.received_at),
                    data: &data,
                    resources,
                    missing,
                    skipped: skipped.as_deref(),
                };
                // Serialising values we built cannot fail; an empty document would be caught downstream.
                Some(serde_json::to_vec(&doc).unwrap_or_default())
            }
            Done::Failed(failure) => {
                tracing::error!(
                    stage = self.name,
                    event_id = record.entry.id,
                    seq = record.seq,
                    reason = failure.reason,
                    request_id = failure.request_id,
                    "event sent to the dead letters"
                );
                // A replay that fails again is the same letter again, under the event's original seq.
                let mut record = record;
                if let Some(r) = Replay::of(&record.entry) {
                    record.seq = r.seq;
                }
                let letter = DeadLetter::new(
                    &self.dead_letter_stage(),
                    &record,
                    failure.reason,
                    failure.attempts,
                    failure.request_id,
                    self.clock.now_micros(),
                );
                self.write_dead_letter(letter).await;
                self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// This stage's name in dead letters and replay markers.
    fn dead_letter_stage(&self) -> String {
        format!("transforms.{}", self.name)
    }

    /// Writes a dead letter, retrying until the disk takes it: the checkpoint must not pass an event that is
    /// neither handed on nor dead-lettered.
    async fn write_dead_letter(&self, letter: DeadLetter) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let store = self.dead_letters.clone();
            let l = letter.clone();
            match tokio::task::spawn_blocking(move || store.put(&l)).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => tracing::error!(error = %e, seq = letter.seq, "cannot write a dead letter; retrying"),
                Err(e) => tracing::error!(error = %e, seq = letter.seq, "dead letter task failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Reads the next events, retrying a failing journal until it works or shutdown (`None`).
    async fn read(&self, journal: &dyn Journal, from: u64, shutdown: &mut Signal) -> Option<Vec<Record>> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match journal.read(from, READ_BATCH).await {
                Ok(batch) => return Some(batch),
                Err(e) => tracing::error!(stage = self.name, error = %e, "cannot read the journal; retrying"),
            }
            tokio::select! {
                () = stopped(shutdown) => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Hands on `outputs` and moves the checkpoint, retrying a failing journal until it works or shutdown.
    /// Returns false at shutdown.
    async fn hand_on(
        &self,
        journal: &dyn Journal,
        consumer: &str,
        outputs: Vec<(u64, Vec<u8>)>,
        next: u64,
        shutdown: &mut Signal,
    ) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            match journal.hand_on(consumer, outputs.clone(), next).await {
                Ok(()) => return true,
                Err(e) => tracing::error!(stage = self.name, error = %e, "cannot hand on enriched events; retrying"),
            }
            tokio::select! {
                () = stopped(shutdown) => return false,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Remembers the platform of each account an answer names (`account.id` + `work_platform.name`; account
    /// records name themselves).
    fn learn_platforms(&mut self, event: &str, resources: &[Value]) {
        if self.config.income != IncomeChoice::Auto {
            return;
        }
        let is_account = plan::plan(event) == Plan::Account;
        for r in resources {
            let account = if is_account { r.get("id") } else { r.get("account").and_then(|a| a.get("id")) };
            let platform = r.get("work_platform").and_then(|w| w.get("name")).and_then(Value::as_str);
            if let (Some(Value::String(account)), Some(platform)) = (account, platform) {
                if self.platforms.len() >= MAX_PLATFORMS {
                    self.platforms.clear();
                }
                self.platforms.insert(account.clone(), platform.to_owned());
            }
        }
    }
}

/// The journal consumer name of transform `name`.
pub fn consumer(name: &str) -> String {
    format!("transform.{name}")
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
