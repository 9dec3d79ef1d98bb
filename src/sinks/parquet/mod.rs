//! `type = "parquet"`: journal → Arrow → Parquet files in a Hive-partitioned lake through `object_store`
//! (local disk, S3, GCS, Azure, memory), with exactly one copy of every acknowledged event across crashes.
//!
//! The commit protocol (deterministic names, recorded intent):
//! 1. Read journal records from this sink's checkpoint; buffer until `roll_rows`, `roll_bytes` or
//!    `roll_interval`.
//! 2. Record the intent "files for seq `first..=last`" in the journal, durably, *before* writing anything.
//! 3. Write one file per (table, partition), named `part-<first>-<last>` from the seqs it holds; each appears
//!    atomically (put, completed multipart, or local temp file + rename).
//! 4. Commit the checkpoint `last + 1` (which clears the intent) in one write.
//!
//! On start, a recorded intent is redone from the same journal range: the same rows produce the same names,
//! so a crash at any point rewrites files in place and never adds a second copy. The journal is trimmed only
//! below every consumer's checkpoint, so the range is always still there.
//!
//! This module must never advance its checkpoint past a file that is not in the store, and never drop rows
//! while the store is down: it retries with capped backoff while the journal holds the backlog.

mod config;
mod layout;
mod mapped;
mod store;
mod table;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use config::{Codec, Location, PARTITION_KEYS, ParquetConfig, parse_location};
pub use layout::{file_name, file_path, sanitize};
pub use mapped::Mapping;
pub use store::{Lake, StoreError, remove_local_leftovers, upload};
pub use table::{EVENTS, Table, events_batch, events_table, host_fields, timestamp_type};
pub use writer::encode;

use crate::clock::date_of_micros;
use crate::journal::{Journal, JournalError, Record};
use crate::metrics::SinkMetrics;
use crate::shutdown::{Signal, stopped};

/// Most records read from the journal at once: with `roll_bytes`, this bounds a sink's buffer at
/// `roll_bytes + READ_PAGE × max_body`.
const READ_PAGE: usize = 256;
/// Longest wait between upload retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a stopping sink keeps retrying a failing store before leaving the rest to the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why a sink stopped with work left.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The journal failed.
    #[error("sink `{sink}`: journal")]
    Journal {
        /// The sink.
        sink: String,
        /// The cause.
        #[source]
        source: JournalError,
    },
    /// A recorded intent could not be read (written by an incompatible version?).
    #[error("sink `{sink}`: recorded intent is unreadable")]
    Intent {
        /// The sink.
        sink: String,
    },
    /// A new sink (no checkpoint in this journal) points at a lake table that already holds files: its file
    /// names restart at this journal's sequence numbers and would overwrite them.
    #[error(
        "sink `{sink}`: {location} already holds `{table}` files that this journal did not write (a new data_dir, or another pipeline's lake?); writing would overwrite them. Point the sink at an empty location, or restore the data_dir that wrote them"
    )]
    ForeignLake {
        /// The sink.
        sink: String,
        /// Where.
        location: String,
        /// The table.
        table: String,
    },
    /// The store could not be listed while checking for a foreign lake.
    #[error("sink `{sink}`: cannot list the lake")]
    List {
        /// The sink.
        sink: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// Stopped while the store was failing; the intent stays recorded and is redone at the next start.
    #[error("sink `{sink}`: stopped with seq {first}..={last} not yet written (redone at next start)")]
    Interrupted {
        /// The sink.
        sink: String,
        /// First seq of the pending range.
        first: u64,
        /// Last seq of the pending range.
        last: u64,
    },
}

/// What a sink is about to write, recorded before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Intent {
    first: u64,
    last: u64,
}

/// When a buffer should become files.
#[derive(Debug, Clone, Copy)]
pub struct Roll {
    /// Rows.
    pub rows: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Age of the oldest buffered row.
    pub interval: Duration,
}

impl Roll {
    /// True when a buffer of `rows` rows and `bytes` bytes whose oldest row is `age` old must be written.
    pub fn due(&self, rows: u64, bytes: u64, age: Duration) -> bool {
        rows > 0 && (rows >= self.rows || bytes >= self.bytes || age >= self.interval)
    }
}

/// One file to write: its path and the records it holds (in seq order).
#[derive(Debug)]
pub struct PlannedFile<'a> {
    /// Object path.
    pub path: object_store::path::Path,
    /// The records.
    pub records: Vec<&'a Record>,
}

/// The partition values of a record for `partition_by` keys.
pub fn partition_of(record: &Record, keys: &[String]) -> Vec<(String, String)> {
    let e = &record.entry;
    partition_values(e.received_at, &e.event, &e.source, keys)
}

/// The partition values of an event received at `received_at` (µs) for `partition_by` keys.
pub fn partition_values(received_at: i64, event: &str, source: &str, keys: &[String]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| {
            let v = match k.as_str() {
                "date" => date_of_micros(received_at),
                "event_type" => event.to_owned(),
                "source" => source.to_owned(),
                _ => String::new(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A document a processing stage handed on (an enriched event), as a mapped sink buffers it.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The journal seq of its event.
    pub seq: u64,
    /// The envelope `id`.
    pub id: String,
    /// The envelope `event`.
    pub event: String,
    /// The source that received it.
    pub source: String,
    /// When it was received, µs.
    pub received_at: i64,
    /// The document.
    pub bytes: Vec<u8>,
    /// Set when the document is a replayed dead letter's.
    pub replay: Option<crate::dead_letters::Replay>,
}

impl Doc {
    /// Reads the head of a handed-on document (fields it lacks stay empty; the plugins then fail it).
    pub fn new(seq: u64, bytes: Vec<u8>) -> Self {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Head {
            id: String,
            event: String,
            source: String,
            received_at: String,
            #[serde(rename = "_replay")]
            replay: Option<crate::dead_letters::Replay>,
        }
        let head: Head = serde_json::from_slice(&bytes).unwrap_or_default();
        let received_at = crate::clock::parse_timestamp(&head.received_at).unwrap_or_default();
        Self { seq, id: head.id, event: head.event, source: head.source, received_at, bytes, replay: head.replay }
    }
}

/// One journal position a sink buffers: a stored event (raw table) or a handed-on document (mapped tables).
#[derive(Debug, Clone)]
pub enum Unit {
    /// For the raw `events` table.
    Raw(Record),
    /// For tables of a `wasm` stage.
    Doc(Doc),
}

impl Unit {
    fn seq(&self) -> u64 {
        match self {
            Self::Raw(r) => r.seq,
            Self::Doc(d) => d.seq,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Self::Raw(r) => r.entry.body.len() as u64,
            Self::Doc(d) => d.bytes.len() as u64,
        }
    }
}

/// Splits a flush into files: one per partition, each named by the seq range of its own records.
pub fn plan<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    keys: &[String],
    prefix: &object_store::path::Path,
    table: &str,
) -> Vec<PlannedFile<'a>> {
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups.entry(partition_of(r, keys)).or_default().push(r);
    }
    groups
        .into_iter()
        .filter_map(|(partition, records)| {
            let first = records.first()?.seq;
            let last = records.last()?.seq;
            Some(PlannedFile { path: file_path(prefix, table, &partition, first, last), records })
        })
        .collect()
}

/// A built Parquet sink.
pub struct ParquetSink {
    name: String,
    config: ParquetConfig,
    lake: Lake,
    metrics: Arc<SinkMetrics>,
    /// The webhook sources upstream of this sink's `inputs`; `None` = every source.
    sources: Option<std::collections::BTreeSet<String>>,
    /// Set when the sink reads a `wasm` stage: it writes that stage's tables instead of `events`.
    mapping: Option<Mapping>,
}

impl ParquetSink {
    /// Opens the sink's store.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be set up.
    pub fn build(name: &str, config: ParquetConfig, metrics: Arc<SinkMetrics>) -> Result<Self, StoreError> {
        let lake = store::open(&config)?;
        Ok(Self { name: name.to_owned(), config, lake, metrics, sources: None, mapping: None })
    }

    /// Limits the sink to events received by these sources (the ones its `inputs` lead back to).
    #[must_use]
    pub fn with_sources(mut self, sources: std::collections::BTreeSet<String>) -> Self {
        self.sources = Some(sources);
        self
    }

    /// Makes this a sink of mapped tables: it reads what `mapping.upstream` handed on and runs the plugins.
    #[must_use]
    pub fn with_mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// True for the events of this sink's sources; never for a replayed dead letter (the raw table holds it).
    fn accepts(&self, record: &Record) -> bool {
        self.sources.as_ref().is_none_or(|s| s.contains(&record.entry.source))
            && crate::dead_letters::Replay::of(&record.entry).is_none()
    }

    /// The plugins this sink runs, if it writes mapped tables.
    pub fn plugins(&self) -> Option<crate::transforms::wasm::Plugins> {
        self.mapping.as_ref().map(|m| m.plugins.clone())
    }

    /// The tables this sink writes.
    pub fn tables(&self) -> Vec<String> {
        match &self.mapping {
            Some(m) => m.plugins.current().tables().keys().cloned().collect(),
            None => vec![EVENTS.to_owned()],
        }
    }

    /// Up to `max` units from `next` on, and the position after them (past skipped events too).
    async fn read_units(&self, journal: &dyn Journal, next: u64, max: usize) -> Result<(Vec<Unit>, u64), JournalError> {
        match &self.mapping {
            None => {
                let records = journal.read(next, max).await?;
                let after = records.last().map_or(next, |r| r.seq + 1);
                Ok((records.into_iter().filter(|r| self.accepts(r)).map(Unit::Raw).collect(), after))
            }
            Some(m) => {
                let out = journal.read_outputs(&m.upstream, next, max).await?;
                let full = out.outputs.len() >= max;
                let last = out.outputs.last().map(|(s, _)| s + 1);
                // Below the upstream checkpoint, an event without an output was not for us (another source, or
                // dead-lettered upstream): move past it.
                let after = if full { last.unwrap_or(next) } else { last.unwrap_or(next).max(out.upto).max(next) };
                // Reading the heads scans whole documents (megabytes per page): off the runtime's threads.
                let outputs = out.outputs;
                let units = tokio::task::spawn_blocking(move || {
                    outputs.into_iter().map(|(seq, bytes)| Unit::Doc(Doc::new(seq, bytes))).collect()
                })
                .await
                .map_err(|e| JournalError::Storage { op: "read outputs", message: e.to_string() })?;
                Ok((units, after))
            }
        }
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The journal consumer name of this sink.
    pub fn consumer(&self) -> String {
        format!("sink.{}", self.name)
    }

    fn journal_err(&self) -> impl Fn(JournalError) -> SinkError + '_ {
        |source| SinkError::Journal { sink: self.name.clone(), source }
    }

    /// Gives this sink a checkpoint if it has none yet (at the oldest event still in the journal), so trimming
    /// waits for it. Called before any source or trim starts.
    ///
    /// # Errors
    /// [`SinkError::Journal`].
    /// # Errors
    /// Also [`SinkError::ForeignLake`] when a new sink would overwrite files it did not write.
    pub async fn register(&self, journal: &dyn Journal) -> Result<(), SinkError> {
        let consumer = self.consumer();
        if journal.checkpoint(&consumer).await.map_err(self.journal_err())?.is_none() {
            for name in self.tables() {
                let table = self.lake.prefix.clone().join(name.as_str());
                let listed = self
                    .lake
                    .store
                    .list_with_delimiter(Some(&table))
                    .await
                    .map_err(|source| SinkError::List { sink: self.name.clone(), source })?;
                if !listed.common_prefixes.is_empty() || !listed.objects.is_empty() {
                    return Err(SinkError::ForeignLake {
                        sink: self.name.clone(),
                        location: format!("{:?}", self.config.location),
                        table: name,
                    });
                }
            }
            journal.commit_checkpoint(&consumer, journal.stats().first_seq).await.map_err(self.journal_err())?;
        }
        Ok(())
    }

    /// Runs until `shutdown`, then writes everything the journal holds and returns.
    ///
    /// # Errors
    /// [`SinkError`] when the journal fails or the store stays down through shutdown.
    pub async fn run(self, journal: Arc<dyn Journal>, mut shutdown: Signal) -> Result<(), SinkError> {
        let consumer = self.consumer();
        let jerr = self.journal_err();
        if let Some(root) = &self.lake.local_root {
            let n = remove_local_leftovers(root);
            if n > 0 {
                tracing::info!(sink = %self.name, files = n, "removed leftovers of interrupted local writes");
            }
        }
        // Normally done at build time already; repeated here so a sink run on its own is registered too.
        self.register(journal.as_ref()).await?;
        let mut next = journal.checkpoint(&consumer).await.map_err(&jerr)?.unwrap_or_default();
        if let Some(raw) = journal.intent(&consumer).await.map_err(&jerr)? {
            let intent: Intent =
                serde_json::from_slice(&raw).map_err(|_| SinkError::Intent { sink: self.name.clone() })?;
            tracing::info!(sink = %self.name, first = intent.first, last = intent.last, "redoing an interrupted write");
            let units = self.read_range(journal.as_ref(), intent.first, intent.last).await.map_err(&jerr)?;
            self.write_until_done(units, intent, &mut shutdown).await?;
            journal.commit_checkpoint(&consumer, intent.last + 1).await.map_err(&jerr)?;
            next = intent.last + 1;
        }
        let roll =
            Roll { rows: self.config.roll_rows, bytes: self.config.roll_bytes, interval: self.config.roll_interval };
        let mut stored = if self.mapping.is_some() { journal.subscribe_outputs() } else { journal.subscribe() };
        let mut buf: Vec<Unit> = Vec::new();
        let mut buf_bytes = 0u64;
        let mut oldest: Option<Instant> = None;
        let mut stopping = false;
        // Events of other sources are skipped; `next` still moves past them, and the checkpoint follows when
        // nothing of ours is buffered.
        let mut committed = next;
        loop {
            let room = usize::try_from(roll.rows).unwrap_or(usize::MAX).saturating_sub(buf.len()).clamp(1, READ_PAGE);
            stored.borrow_and_update();
            let (units, after) = self.retrying(&mut shutdown, || self.read_units(journal.as_ref(), next, room)).await?;
            let got = !units.is_empty() || (after > next && self.mapping.is_none());
            next = after;
            for u in units {
                buf_bytes += u.size();
                buf.push(u);
            }
            if !buf.is_empty() && oldest.is_none() {
                oldest = Some(Instant::now());
            }
            let age = oldest.map_or(Duration::ZERO, |o| o.elapsed());
            if roll.due(buf.len() as u64, buf_bytes, age) || (stopping && !got && !buf.is_empty()) {
                let records = std::mem::take(&mut buf);
                // Up to everything read, skipped records included: the redo reads and filters the same range.
                let intent = Intent { first: records[0].seq(), last: next - 1 };
                let raw = serde_json::to_vec(&intent).unwrap_or_default();
                self.retrying(&mut shutdown, || journal.record_intent(&consumer, raw.clone())).await?;
                self.write_until_done(records, intent, &mut shutdown).await?;
                self.retrying(&mut shutdown, || journal.commit_checkpoint(&consumer, intent.last + 1)).await?;
                self.metrics.checkpoint.store(intent.last + 1, std::sync::atomic::Ordering::Relaxed);
                committed = intent.last + 1;
                buf_bytes = 0;
                oldest = None;
                continue;
            }
            if got {
                continue;
            }
            if buf.is_empty() && next > committed {
                self.retrying(&mut shutdown, || journal.commit_checkpoint(&consumer, next)).await?;
                self.metrics.checkpoint.store(next, std::sync::atomic::Ordering::Relaxed);
                committed = next;
            }
            if stopping {
                return Ok(());
            }
            let deadline = oldest.map_or_else(|| Instant::now() + Duration::from_secs(3600), |o| o + roll.interval);
            tokio::select! {
                _ = stored.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stopped(&mut shutdown) => stopping = true,
            }
        }
    }

    /// Calls the journal until it answers: a storage error (a full disk, the journal reopening after one) is
    /// temporary, and a sink that stopped on it would leave its events unwritten until a restart. At shutdown the
    /// error is returned (a recorded intent is redone at the next start).
    async fn retrying<T, Fut>(&self, shutdown: &mut Signal, mut call: impl FnMut() -> Fut) -> Result<T, SinkError>
    where
        Fut: std::future::Future<Output = Result<T, JournalError>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if *shutdown.borrow() => return Err(SinkError::Journal { sink: self.name.clone(), source: e }),
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, retry_in = ?backoff, "journal call failed; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stopped(shutdown) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Writes the files of `records`, retrying with capped backoff until they are all in the store.
    async fn write_until_done(
        &self,
        records: Vec<Unit>,
        intent: Intent,
        shutdown: &mut Signal,
    ) -> Result<(), SinkError> {
        let records = Arc::new(records);
        let mut backoff = Duration::from_millis(200);
        let mut stop_seen: Option<Instant> = None;
        loop {
            match self.write_files(Arc::clone(&records)).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.metrics.upload_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(sink = %self.name, first = intent.first, last = intent.last, error = %e, retry_in = ?backoff, "writing files failed; will retry (rows stay in the journal)");
                }
            }
            if *shutdown.borrow() {
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if since.elapsed() >= SHUTDOWN_GRACE {
                    return Err(SinkError::Interrupted {
                        sink: self.name.clone(),
                        first: intent.first,
                        last: intent.last,
                    });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(shutdown), if stop_seen.is_none() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn write_files(&self, units: Arc<Vec<Unit>>) -> Result<(), String> {
        let keys = self.config.partition_by.clone();
        let prefix = self.lake.prefix.clone();
        let (codec, row_group) = (self.config.codec, usize::try_from(self.config.row_group_rows).unwrap_or(usize::MAX));
        let mapping = self.mapping.clone();
        let now = crate::clock::Clock::now_micros(&crate::clock::SystemClock);
        // Mapping, building and compressing files is CPU work: keep it off the threads that answer webhooks.
        let files = tokio::task::spawn_blocking(
            move || -> Result<Vec<(String, object_store::path::Path, usize, bytes::Bytes)>, String> {
                // Files are compressed on several threads (a mapped sink: its stage's workers; the raw table: every
                // core): each file is independent, and its bytes do not depend on where.
                let encode_all = |files: Vec<(String, object_store::path::Path, arrow_array::RecordBatch)>,
                                  workers: usize| {
                    crate::parallel::map(&files, workers, |(table, path, batch)| {
                        encode(batch.schema(), std::slice::from_ref(batch), codec, row_group)
                            .map(|bytes| (table.clone(), path.clone(), batch.num_rows(), bytes))
                            .map_err(|e| format!("encoding parquet: {e}"))
                    })
                    .into_iter()
                    .collect::<Result<Vec<_>, String>>()
                };
                if let Some(mapping) = mapping {
                    let docs: Vec<&Doc> = units
                        .iter()
                        .filter_map(|u| match u {
                            Unit::Doc(d) => Some(d),
                            Unit::Raw(_) => None,
                        })
                        .collect();
                    let (files, _dead) = mapped::map_files(&mapping, &docs, &keys, &prefix, now)?;
                    let workers = mapping.plugins.current().workers();
                    return encode_all(files.into_iter().map(|f| (f.table, f.path, f.batch)).collect(), workers);
                }
                let records = units.iter().filter_map(|u| match u {
                    Unit::Raw(r) => Some(r),
                    Unit::Doc(_) => None,
                });
                let mut batches = Vec::new();
                for file in plan(records, &keys, &prefix, EVENTS) {
                    let batch = events_batch(&file.records).map_err(|e| format!("building rows: {e}"))?;
                    batches.push((EVENTS.to_owned(), file.path, batch));
                }
                encode_all(batches, crate::parallel::cores())
            },
        )
        .await
        .map_err(|e| format!("encoder task failed: {e}"))??;
        for (table, path, rows, bytes) in files {
            let started = Instant::now();
            let size = bytes.len();
            upload(self.lake.store.as_ref(), &path, bytes).await.map_err(|e| format!("uploading {path}: {e}"))?;
            self.metrics.wrote(&table, rows as u64);
            self.metrics.upload_latency.observe(started.elapsed());
            tracing::info!(sink = %self.name, %path, rows, bytes = size, "wrote file");
        }
        Ok(())
    }
}

impl ParquetSink {
    /// The units of `first..=last` (a recorded intent), filtered as when they were first read.
    async fn read_range(&self, journal: &dyn Journal, first: u64, last: u64) -> Result<Vec<Unit>, JournalError> {
        let mut out = Vec::new();
        let mut next = first;
        while next <= last {
            let (page, after) = self.read_units(journal, next, READ_PAGE).await?;
            out.extend(page.into_iter().filter(|u| u.seq() <= last));
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
