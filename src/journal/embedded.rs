//! The single-node journal: one redb database file in `data_dir`, written by one thread that batches
//! concurrent appends into one transaction (group commit: one fsync answers many requests).
//!
//! Tables, all in the same database so one transaction covers them:
//! - `events`: `seq → record` (see `record.rs`); the record carries its dedup key and the key's expiry
//! - `keys`: `dedup key → (seq, expires_at)`; `expiry`: `(expires_at, seq) → key`, to prune in TTL order
//! - `checkpoints`: `consumer → next seq`; `intents`: `consumer → bytes`; `meta`: `next_seq`, `bytes`,
//!   `output_bytes`, `indexed_upto`
//! - `outputs`: `(stage, seq) → bytes`: what a processing stage (enrich) handed on for the event at `seq`,
//!   written in the same transaction as the stage's checkpoint
//!
//! **The key is written with the event; the index is derived.** An append transaction inserts only the event
//! row (sequential, cheap). The event's key goes to an in-memory map of not-yet-indexed keys, and the writer
//! moves those into `keys`/`expiry` in larger batches (random inserts amortised, off the acknowledgement path),
//! recording `indexed_upto`: every event below it has its key in `keys`. After a crash the map is rebuilt from
//! the events at or above `indexed_upto`, which are never trimmed before they are indexed. So "the event and its
//! key in one atomic write" holds, while the hot transaction stays small.
//!
//! The dedup check (batch, in-memory map, then `keys`) runs in the writer, so two concurrent deliveries of one
//! id are serialised: the first is stored, the second sees its key.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

use super::record::{decode, decode_with_expiry, encode};
use super::{Appended, BoxFuture, Entry, Journal, JournalError, JournalStats, Record, StageOutputs};
use crate::clock::SharedClock;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const KEYS: TableDefinition<&str, (u64, i64)> = TableDefinition::new("keys");
const EXPIRY: TableDefinition<(i64, u64), &str> = TableDefinition::new("expiry");
const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("checkpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const INTENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("intents");
const OUTPUTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outputs");

/// Most records deleted (trim) or keys forgotten (prune) per command: one transaction, so housekeeping never
/// holds the writer (and the appends queued behind it) for long. Callers repeat while work remains.
const HOUSEKEEPING_BATCH: usize = 10_000;

/// Keys moved into the on-disk index per transaction; indexing starts once this many are waiting. Small, so an
/// index transaction never holds the writer (and the appends waiting behind it) for long.
const INDEX_BATCH: usize = 256;
/// Keys never wait longer than this to be indexed while appends keep coming.
const INDEX_MAX_AGE: Duration = Duration::from_secs(1);

/// The journal file inside `data_dir`.
pub const FILE_NAME: &str = "journal.redb";

/// Tuning of the embedded journal.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Disk budget for stored records.
    pub max_bytes: u64,
    /// Appends waiting for the writer.
    pub queue: usize,
    /// Most appends in one transaction.
    pub max_batch: usize,
    /// Memory for redb's page cache, in bytes (redb's own default, 1 GiB, would be most of the process's memory).
    pub cache: usize,
}

/// Observes each group commit: how many appends it carried and how long the transaction took.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

enum Command {
    Append { entry: Entry, ttl: i64, reply: oneshot::Sender<Result<Appended, JournalError>> },
    Checkpoint { consumer: String, next: u64, reply: oneshot::Sender<Result<(), JournalError>> },
    Intent { consumer: String, intent: Vec<u8>, reply: oneshot::Sender<Result<(), JournalError>> },
    Forget { consumer: String, reply: oneshot::Sender<Result<(), JournalError>> },
    HandOn { stage: String, outputs: Vec<(u64, Vec<u8>)>, next: u64, reply: oneshot::Sender<Result<(), JournalError>> },
    Trim { reply: oneshot::Sender<Result<u64, JournalError>> },
    Prune { reply: oneshot::Sender<Result<u64, JournalError>> },
}

#[derive(Default)]
struct Counters {
    next_seq: AtomicU64,
    first_seq: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
    output_bytes: AtomicU64,
    keys: AtomicU64,
    full: std::sync::atomic::AtomicBool,
}

/// The open database, shared by the readers and the writer. After a storage error (a full disk, an I/O error)
/// redb must be closed and opened again before it takes another write: the writer empties the slot, reopens the
/// file and reloads its state from what is on disk; readers meanwhile get a storage error (a 503 upstream).
struct DbSlot(std::sync::RwLock<Option<Arc<Database>>>);

impl DbSlot {
    fn get(&self) -> Result<Arc<Database>, JournalError> {
        let slot = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.clone().ok_or_else(|| JournalError::Storage {
            op: "reopen",
            message: "the journal is being reopened after a storage error".into(),
        })
    }

    fn set(&self, db: Option<Arc<Database>>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = db;
    }
}

/// How often a writer whose database failed tries to reopen it.
const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// The embedded, redb-backed journal.
pub struct EmbeddedJournal {
    db: Arc<DbSlot>,
    tx: Option<mpsc::Sender<Command>>,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
    stored: watch::Receiver<u64>,
    handed: watch::Receiver<u64>,
}

fn storage(op: &'static str) -> impl Fn(redb::Error) -> JournalError {
    move |e| JournalError::Storage { op, message: e.to_string() }
}

macro_rules! try_db {
    ($op:expr, $e:expr) => {
        $e.map_err(|e| storage($op)(redb::Error::from(e)))
    };
}

impl EmbeddedJournal {
    /// Opens (or creates) the journal in `dir`, starting its writer thread.
    ///
    /// # Errors
    /// When the directory or database cannot be created or opened (for example, another hooklake holds it).
    pub fn open(
        dir: &Path,
        options: Options,
        clock: SharedClock,
        on_commit: Option<CommitObserver>,
    ) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| JournalError::Storage { op: "create data_dir", message: format!("{}: {e}", dir.display()) })?;
        let path = dir.join(FILE_NAME);
        let db = match redb::Builder::new().set_cache_size(options.cache).create(&path) {
            Ok(db) => Arc::new(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(JournalError::InUse),
            Err(e) => return Err(storage("open")(e.into())),
        };
        let counters = Arc::new(Counters::default());
        let pending = load_state(&db, &counters)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let (notify, stored) = watch::channel(counters.next_seq.load(Ordering::SeqCst));
        let (notify_outputs, handed) = watch::channel(0);
        let db = Arc::new(DbSlot(std::sync::RwLock::new(Some(db))));
        let writer = Writer {
            db: Arc::clone(&db),
            path: path.clone(),
            broken: None,
            counters: Arc::clone(&counters),
            options,
            clock,
            on_commit,
            notify,
            notify_outputs,
            pending,
        };
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::Storage { op: "start writer", message: e.to_string() })?;
        Ok(Self { db, tx: Some(tx), counters, writer: Some(writer), path, stored, handed })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the commands already queued, and waits for it.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            // A panicked writer has nothing left to flush; the journal on disk is still consistent.
            let _ = w.join();
        }
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Command,
    ) -> Result<T, JournalError> {
        let tx = self.tx.as_ref().ok_or(JournalError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }
}

impl Drop for EmbeddedJournal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Journal for EmbeddedJournal {
    fn append(&self, entry: Entry, dedup_ttl_micros: i64) -> BoxFuture<'_, Result<Appended, JournalError>> {
        Box::pin(self.send(move |reply| Command::Append { entry, ttl: dedup_ttl_micros, reply }))
    }

    fn read(&self, from: u64, max: usize) -> BoxFuture<'_, Result<Vec<Record>, JournalError>> {
        let slot = Arc::clone(&self.db);
        Box::pin(async move {
            let db = slot.get()?;
            tokio::task::spawn_blocking(move || read_range(&db, from, max))
                .await
                .map_err(|e| JournalError::Storage { op: "read", message: e.to_string() })?
        })
    }

    fn checkpoint(&self, consumer: &str) -> BoxFuture<'_, Result<Option<u64>, JournalError>> {
        let consumer = consumer.to_owned();
        let slot = Arc::clone(&self.db);
        Box::pin(async move {
            let db = slot.get()?;
            let txn = try_db!("read checkpoint", db.begin_read())?;
            let t = try_db!("read checkpoint", txn.open_table(CHECKPOINTS))?;
            Ok(try_db!("read checkpoint", t.get(consumer.as_str()))?.map(|v| v.value()))
        })
    }

    fn commit_checkpoint(&self, consumer: &str, next: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        let consumer = consumer.to_owned();
        Box::pin(self.send(move |reply| Command::Checkpoint { consumer, next, reply }))
    }

    fn record_intent(&self, consumer: &str, intent: Vec<u8>) -> BoxFuture<'_, Result<(), JournalError>> {
        let consumer = consumer.to_owned();
        Box::pin(self.send(move |reply| Command::Intent { consumer, intent, reply }))
    }

    fn intent(&self, consumer: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, JournalError>> {
        let consumer = consumer.to_owned();
        let slot = Arc::clone(&self.db);
        Box::pin(async move {
            let db = slot.get()?;
            let txn = try_db!("read intent", db.begin_read())?;
            let t = try_db!("read intent", txn.open_table(INTENTS))?;
            Ok(try_db!("read intent", t.get(consumer.as_str()))?.map(|v| v.value().to_vec()))
        })
    }

    fn consumers(&self) -> BoxFuture<'_, Result<Vec<String>, JournalError>> {
        let slot = Arc::clone(&self.db);
        Box::pin(async move {
            let db = slot.get()?;
            let txn = try_db!("read checkpoints", db.begin_read())?;
            let t = try_db!("read checkpoints", txn.open_table(CHECKPOINTS))?;
            let mut out = Vec::new();
            for item in try_db!("read checkpoints", t.iter())? {
                let (k, _) = try_db!("read checkpoints", item)?;
                out.push(k.value().to_owned());
            }
            Ok(out)
        })
    }

    fn forget_consumer(&self, consumer: &str) -> BoxFuture<'_, Result<(), JournalError>> {
        let consumer = consumer.to_owned();
        Box::pin(self.send(move |reply| Command::Forget { consumer, reply }))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.stored.clone()
    }

    fn hand_on(&self, stage: &str, outputs: Vec<(u64, Vec<u8>)>, next: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        let stage = stage.to_owned();
        Box::pin(self.send(move |reply| Command::HandOn { stage, outputs, next, reply }))
    }

    fn read_outputs(&self, stage: &str, from: u64, max: usize) -> BoxFuture<'_, Result<StageOutputs, JournalError>> {
        let stage = stage.to_owned();
        let slot = Arc::clone(&self.db);
        Box::pin(async move {
            let db = slot.get()?;
            tokio::task::spawn_blocking(move || read_outputs(&db, &stage, from, max))
                .await
                .map_err(|e| JournalError::Storage { op: "read outputs", message: e.to_string() })?
        })
    }

    fn subscribe_outputs(&self) -> watch::Receiver<u64> {
        self.handed.clone()
    }

    fn trim(&self) -> BoxFuture<'_, Result<u64, JournalError>> {
        Box::pin(self.send(|reply| Command::Trim { reply }))
    }

    fn prune_keys(&self) -> BoxFuture<'_, Result<u64, JournalError>> {
        Box::pin(self.send(|reply| Command::Prune { reply }))
    }

    fn stats(&self) -> JournalStats {
        let c = &self.counters;
        JournalStats {
            next_seq: c.next_seq.load(Ordering::Relaxed),
            first_seq: c.first_seq.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            output_bytes: c.output_bytes.load(Ordering::Relaxed),
            keys: c.keys.load(Ordering::Relaxed),
            full: c.full.load(Ordering::Relaxed),
        }
    }
}

/// Creates every table, reads the counters from `meta` into `counters` and rebuilds the keys not yet indexed:
/// the journal's whole in-memory state, from what is on disk (at open, and after a reopen).
fn load_state(db: &Database, counters: &Counters) -> Result<Pending, JournalError> {
    let txn = try_db!("open", db.begin_write())?;
    {
        // Create every table so readers never meet a missing one.
        let events = try_db!("open", txn.open_table(EVENTS))?;
        let keys = try_db!("open", txn.open_table(KEYS))?;
        try_db!("open", txn.open_table(EXPIRY))?;
        try_db!("open", txn.open_table(CHECKPOINTS))?;
        try_db!("open", txn.open_table(INTENTS))?;
        try_db!("open", txn.open_table(OUTPUTS))?;
        let meta = try_db!("open", txn.open_table(META))?;
        let get = |k: &str| -> Result<u64, JournalError> { Ok(try_db!("open", meta.get(k))?.map_or(0, |v| v.value())) };
        let next_seq = get("next_seq")?;
        counters.next_seq.store(next_seq, Ordering::SeqCst);
        counters.bytes.store(get("bytes")?, Ordering::SeqCst);
        counters.output_bytes.store(get("output_bytes")?, Ordering::SeqCst);
        counters.entries.store(try_db!("open", events.len())?, Ordering::SeqCst);
        counters.keys.store(try_db!("open", keys.len())?, Ordering::SeqCst);
        counters.full.store(false, Ordering::SeqCst);
        let first = try_db!("open", events.first())?.map_or(next_seq, |(k, _)| k.value());
        counters.first_seq.store(first, Ordering::SeqCst);
        // A new journal (or one from before the derived index, whose keys are all in `keys`) starts
        // indexed up to its end. Written now, durably, so a crash before the first index transaction
        // still rebuilds every key from its event.
        if try_db!("open", meta.get("indexed_upto"))?.is_none() {
            drop(meta);
            let mut meta = try_db!("open", txn.open_table(META))?;
            try_db!("open", meta.insert("indexed_upto", next_seq))?;
        }
    }
    try_db!("open", txn.commit())?;
    let pending = Pending::rebuild(db, counters.next_seq.load(Ordering::SeqCst))?;
    counters.keys.fetch_add(pending.order.len() as u64, Ordering::SeqCst);
    Ok(pending)
}

fn read_range(db: &Database, from: u64, max: usize) -> Result<Vec<Record>, JournalError> {
    let txn = try_db!("read", db.begin_read())?;
    let events = try_db!("read", txn.open_table(EVENTS))?;
    let mut out = Vec::new();
    for item in try_db!("read", events.range(from..))?.take(max) {
        let (k, v) = try_db!("read", item)?;
        let seq = k.value();
        let entry = decode(v.value()).map_err(|source| JournalError::Corrupt { seq, source })?;
        out.push(Record { seq, entry });
    }
    Ok(out)
}

fn read_outputs(db: &Database, stage: &str, from: u64, max: usize) -> Result<StageOutputs, JournalError> {
    let txn = try_db!("read outputs", db.begin_read())?;
    let checkpoints = try_db!("read outputs", txn.open_table(CHECKPOINTS))?;
    let upto = try_db!("read outputs", checkpoints.get(stage))?.map_or(0, |v| v.value());
    let table = try_db!("read outputs", txn.open_table(OUTPUTS))?;
    let mut outputs = Vec::new();
    for item in try_db!("read outputs", table.range((stage, from)..(stage, upto.max(from))))?.take(max) {
        let (k, v) = try_db!("read outputs", item)?;
        outputs.push((k.value().1, v.value().to_vec()));
    }
    Ok(StageOutputs { outputs, upto })
}

/// Removes up to `max` outputs of `stage` below `below`; returns how many, and the bytes freed.
fn remove_outputs(
    table: &mut redb::Table<(&str, u64), &[u8]>,
    stage: &str,
    below: u64,
    max: usize,
) -> Result<(u64, u64), JournalError> {
    let mut doomed = Vec::new();
    let mut freed = 0u64;
    for item in try_db!("trim outputs", table.range((stage, 0)..(stage, below)))?.take(max) {
        let (k, v) = try_db!("trim outputs", item)?;
        doomed.push(k.value().1);
        freed += v.value().len() as u64;
    }
    for seq in &doomed {
        try_db!("trim outputs", table.remove((stage, *seq)))?;
    }
    Ok((doomed.len() as u64, freed))
}

/// Keys stored with their events but not yet in the `keys` table, in seq order.
struct Pending {
    order: VecDeque<(u64, String, i64)>,
    map: HashMap<String, (u64, i64)>,
    oldest: Option<Instant>,
}

impl Pending {
    /// Rebuilds the not-yet-indexed keys from the events at or above `indexed_upto`.
    fn rebuild(db: &Database, next_seq: u64) -> Result<Self, JournalError> {
        let mut pending = Self { order: VecDeque::new(), map: HashMap::new(), oldest: None };
        let txn = try_db!("open", db.begin_read())?;
        let meta = try_db!("open", txn.open_table(META))?;
        // `open` writes `indexed_upto` before anything else can be appended.
        let indexed_upto = try_db!("open", meta.get("indexed_upto"))?.map_or(next_seq, |v| v.value());
        let events = try_db!("open", txn.open_table(EVENTS))?;
        for item in try_db!("open", events.range(indexed_upto..))? {
            let (k, v) = try_db!("open", item)?;
            let seq = k.value();
            let (entry, expires_at) =
                decode_with_expiry(v.value()).map_err(|source| JournalError::Corrupt { seq, source })?;
            if let Some(key) = entry.dedup_key {
                pending.push(seq, key, expires_at);
            }
        }
        Ok(pending)
    }

    fn push(&mut self, seq: u64, key: String, expires_at: i64) {
        self.oldest.get_or_insert_with(Instant::now);
        self.map.insert(key.clone(), (seq, expires_at));
        self.order.push_back((seq, key, expires_at));
    }

    fn get(&self, key: &str) -> Option<(u64, i64)> {
        self.map.get(key).copied()
    }
}

struct Writer {
    pending: Pending,
    db: Arc<DbSlot>,
    path: PathBuf,
    /// Set when a write failed: the database is reopened before the next command (at most every
    /// [`REOPEN_EVERY`]).
    broken: Option<Instant>,
    counters: Arc<Counters>,
    options: Options,
    clock: SharedClock,
    on_commit: Option<CommitObserver>,
    notify: watch::Sender<u64>,
    notify_outputs: watch::Sender<u64>,
}

type AppendReply = (Entry, i64, oneshot::Sender<Result<Appended, JournalError>>);

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut others = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            self.reopen_if_broken();
            let mut appends: Vec<AppendReply> = Vec::new();
            let mut next = Some(first);
            // Group commit: take everything already waiting, up to one batch.
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { entry, ttl, reply } => appends.push((entry, ttl, reply)),
                    other => others.push(other),
                }
                if appends.len() < self.options.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.append_batch(appends);
            }
            let waiting = self.pending.order.len();
            let old = self.pending.oldest.is_some_and(|t| t.elapsed() >= INDEX_MAX_AGE);
            if (waiting >= INDEX_BATCH || (waiting > 0 && old))
                && let Err(e) = self.index(INDEX_BATCH)
            {
                self.failed(&e);
                tracing::warn!(error = %e, "indexing dedup keys failed; they stay in memory and in their events");
            }
            for cmd in others.drain(..) {
                match cmd {
                    Command::Checkpoint { consumer, next, reply } => {
                        let result = self.checkpoint(&consumer, next);
                        let _ = reply.send(self.noted(result));
                    }
                    Command::Intent { consumer, intent, reply } => {
                        let result = self.record_intent(&consumer, &intent);
                        let _ = reply.send(self.noted(result));
                    }
                    Command::Forget { consumer, reply } => {
                        let result = self.forget(&consumer);
                        let _ = reply.send(self.noted(result));
                    }
                    Command::HandOn { stage, outputs, next, reply } => {
                        let result = self.hand_on(&stage, &outputs, next);
                        let _ = reply.send(self.noted(result));
                    }
                    Command::Trim { reply } => {
                        let result = self.trim();
                        let _ = reply.send(self.noted(result));
                    }
                    Command::Prune { reply } => {
                        let result = self.prune();
                        let _ = reply.send(self.noted(result));
                    }
                    Command::Append { .. } => {}
                }
            }
        }
        // Closing: index what is left and make it durable, so the next start has nothing to rebuild.
        if let Err(e) = self.index(usize::MAX).and_then(|()| self.persist()) {
            tracing::warn!(error = %e, "indexing dedup keys at close failed; the next start rebuilds them");
        }
    }

    /// An empty durable commit: makes every earlier non-durable commit durable.
    fn persist(&self) -> Result<(), JournalError> {
        let txn = try_db!("persist", self.db.get()?.begin_write())?;
        try_db!("persist", txn.commit())
    }

    /// Moves up to `max` waiting keys (oldest first) into the `keys` table (all of them for `usize::MAX`).
    ///
    /// Index transactions are not fsynced (`Durability::None`): the next append, trim or close commit makes
    /// them durable, and until then the keys are safe in their events above `indexed_upto`, which is written in
    /// the same transaction, so a crash loses either both or neither.
    fn index(&mut self, max: usize) -> Result<(), JournalError> {
        while !self.pending.order.is_empty() {
            let n = self.pending.order.len().min(max).min(HOUSEKEEPING_BATCH);
            let mut txn = try_db!("index", self.db.get()?.begin_write())?;
            txn.set_durability(redb::Durability::None);
            let total_keys = {
                let mut keys = try_db!("index", txn.open_table(KEYS))?;
                let mut expiry = try_db!("index", txn.open_table(EXPIRY))?;
                for (seq, key, expires_at) in self.pending.order.iter().take(n) {
                    if let Some(old) = try_db!("index", keys.insert(key.as_str(), (*seq, *expires_at)))? {
                        let (old_seq, old_expires) = old.value();
                        try_db!("index", expiry.remove((old_expires, old_seq)))?;
                    }
                    try_db!("index", expiry.insert((*expires_at, *seq), key.as_str()))?;
                }
                try_db!("index", keys.len())?
            };
            let upto = self
                .pending
                .order
                .get(n)
                .map_or_else(|| self.counters.next_seq.load(Ordering::SeqCst), |(seq, _, _)| *seq);
            {
                let mut meta = try_db!("index", txn.open_table(META))?;
                try_db!("index", meta.insert("indexed_upto", upto))?;
            }
            try_db!("index", txn.commit())?;
            for (seq, key, _) in self.pending.order.drain(..n) {
                if self.pending.map.get(&key).is_some_and(|(s, _)| *s == seq) {
                    self.pending.map.remove(&key);
                }
            }
            self.pending.oldest = if self.pending.order.is_empty() { None } else { Some(Instant::now()) };
            self.counters.keys.store(total_keys + self.pending.order.len() as u64, Ordering::SeqCst);
            if max != usize::MAX {
                break;
            }
        }
        Ok(())
    }

    fn append_batch(&mut self, batch: Vec<AppendReply>) {
        let started = Instant::now();
        let n = batch.len();
        match self.write_appends(&batch) {
            Ok((outcomes, stored)) => {
                if stored && let Some(observe) = &self.on_commit {
                    observe(n, started.elapsed());
                }
                for ((_, _, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                self.failed(&e);
                tracing::error!(error = %e, appends = n, "journal commit failed; answering 503 to the batch");
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Marks the database for a reopen after a storage error (redb refuses every write after an I/O error until
    /// it is opened again).
    fn failed(&mut self, e: &JournalError) {
        if matches!(e, JournalError::Storage { .. }) && self.broken.is_none() {
            self.broken = Some(Instant::now());
        }
    }

    fn noted<T>(&mut self, result: Result<T, JournalError>) -> Result<T, JournalError> {
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    /// After a storage error: closes the database and opens it again, reloading counters and pending keys from
    /// what is on disk (a commit that failed may or may not have landed; the disk decides). Until that works,
    /// every command fails with a storage error, which sources answer with 503.
    fn reopen_if_broken(&mut self) {
        let Some(since) = self.broken else { return };
        if since.elapsed() < REOPEN_EVERY {
            return;
        }
        self.db.set(None);
        // Readers may hold the old handle for the length of one read.
        let deadline = Instant::now() + Duration::from_secs(2);
        let db = loop {
            match redb::Builder::new().set_cache_size(self.options.cache).create(&self.path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reopening the journal failed; retrying");
                    self.broken = Some(Instant::now());
                    return;
                }
            }
        };
        match load_state(&db, &self.counters) {
            Ok(pending) => {
                self.pending = pending;
                self.db.set(Some(Arc::new(db)));
                self.broken = None;
                let _ = self.notify.send(self.counters.next_seq.load(Ordering::SeqCst));
                tracing::info!("journal reopened after a storage error");
            }
            Err(e) => {
                tracing::warn!(error = %e, "reopening the journal failed; retrying");
                self.broken = Some(Instant::now());
            }
        }
    }

    /// One transaction for the whole batch. Returns per-append outcomes and whether anything was written.
    fn write_appends(
        &mut self,
        batch: &[AppendReply],
    ) -> Result<(Vec<Result<Appended, JournalError>>, bool), JournalError> {
        let now = self.clock.now_micros();
        let txn = try_db!("append", self.db.get()?.begin_write())?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut next_seq = self.counters.next_seq.load(Ordering::SeqCst);
        let mut bytes = self.counters.bytes.load(Ordering::SeqCst);
        let (mut stored, mut new_keys) = (0u64, 0u64);
        // Keys stored by this batch: visible to later entries of the same batch, pending only after commit.
        let mut batch_keys: Vec<(u64, &str, i64)> = Vec::new();
        {
            let mut events = try_db!("append", txn.open_table(EVENTS))?;
            let keys = try_db!("append", txn.open_table(KEYS))?;
            for (entry, ttl, _) in batch {
                let mut replaces_expired = false;
                if let Some(key) = entry.dedup_key.as_deref() {
                    let held = match batch_keys.iter().rev().find(|(_, k, _)| *k == key) {
                        Some((seq, _, expires_at)) => Some((*seq, *expires_at)),
                        None => match self.pending.get(key) {
                            Some(v) => Some(v),
                            None => try_db!("append", keys.get(key))?.map(|v| v.value()),
                        },
                    };
                    if let Some((seq, expires_at)) = held {
                        if expires_at > now {
                            outcomes.push(Ok(Appended::Duplicate { seq }));
                            continue;
                        }
                        // Expired but not yet pruned: the key is free again.
                        replaces_expired = true;
                    }
                }
                let expires_at = now.saturating_add(*ttl);
                let record = encode(entry, expires_at);
                let size = record.len() as u64;
                let outputs = self.counters.output_bytes.load(Ordering::SeqCst);
                if bytes.saturating_add(outputs).saturating_add(size) > self.options.max_bytes {
                    self.counters.full.store(true, Ordering::Relaxed);
                    outcomes.push(Err(JournalError::Full { bytes, max: self.options.max_bytes }));
                    continue;
                }
                let seq = next_seq;
                try_db!("append", events.insert(seq, record.as_slice()))?;
                if let Some(key) = entry.dedup_key.as_deref() {
                    batch_keys.push((seq, key, expires_at));
                    if !replaces_expired {
                        new_keys += 1;
                    }
                }
                next_seq += 1;
                bytes += size;
                stored += 1;
                outcomes.push(Ok(Appended::Stored { seq }));
            }
        }
        if stored == 0 {
            // Nothing to make durable (duplicates or a full journal): skip the fsync.
            txn.abort().map_err(|e| storage("append")(e.into()))?;
            return Ok((outcomes, false));
        }
        {
            let mut meta = try_db!("append", txn.open_table(META))?;
            try_db!("append", meta.insert("next_seq", next_seq))?;
            try_db!("append", meta.insert("bytes", bytes))?;
        }
        try_db!("append", txn.commit())?;
        for (seq, key, expires_at) in batch_keys {
            self.pending.push(seq, key.to_owned(), expires_at);
        }
        let c = &self.counters;
        if c.entries.load(Ordering::SeqCst) == 0 {
            c.first_seq.store(next_seq - stored, Ordering::SeqCst);
        }
        c.next_seq.store(next_seq, Ordering::SeqCst);
        c.bytes.store(bytes, Ordering::SeqCst);
        c.entries.fetch_add(stored, Ordering::SeqCst);
        c.keys.fetch_add(new_keys, Ordering::SeqCst);
        self.notify.send_replace(next_seq);
        Ok((outcomes, true))
    }

    fn checkpoint(&self, consumer: &str, next: u64) -> Result<(), JournalError> {
        let txn = try_db!("checkpoint", self.db.get()?.begin_write())?;
        {
            let mut t = try_db!("checkpoint", txn.open_table(CHECKPOINTS))?;
            try_db!("checkpoint", t.insert(consumer, next))?;
            let mut intents = try_db!("checkpoint", txn.open_table(INTENTS))?;
            try_db!("checkpoint", intents.remove(consumer))?;
        }
        try_db!("checkpoint", txn.commit())
    }

    fn forget(&self, consumer: &str) -> Result<(), JournalError> {
        let txn = try_db!("forget", self.db.get()?.begin_write())?;
        let freed = {
            let mut t = try_db!("forget", txn.open_table(CHECKPOINTS))?;
            try_db!("forget", t.remove(consumer))?;
            let mut intents = try_db!("forget", txn.open_table(INTENTS))?;
            try_db!("forget", intents.remove(consumer))?;
            let mut outputs = try_db!("forget", txn.open_table(OUTPUTS))?;
            remove_outputs(&mut outputs, consumer, u64::MAX, usize::MAX)?.1
        };
        let output_bytes = self.counters.output_bytes.load(Ordering::SeqCst).saturating_sub(freed);
        {
            let mut meta = try_db!("forget", txn.open_table(META))?;
            try_db!("forget", meta.insert("output_bytes", output_bytes))?;
        }
        try_db!("forget", txn.commit())?;
        self.counters.output_bytes.store(output_bytes, Ordering::SeqCst);
        Ok(())
    }

    fn hand_on(&self, stage: &str, outputs: &[(u64, Vec<u8>)], next: u64) -> Result<(), JournalError> {
        let txn = try_db!("hand on", self.db.get()?.begin_write())?;
        let (mut added, mut replaced) = (0u64, 0u64);
        {
            let mut table = try_db!("hand on", txn.open_table(OUTPUTS))?;
            for (seq, bytes) in outputs {
                if let Some(old) = try_db!("hand on", table.insert((stage, *seq), bytes.as_slice()))? {
                    replaced += old.value().len() as u64;
                }
                added += bytes.len() as u64;
            }
            let mut t = try_db!("hand on", txn.open_table(CHECKPOINTS))?;
            try_db!("hand on", t.insert(stage, next))?;
        }
        let output_bytes = (self.counters.output_bytes.load(Ordering::SeqCst) + added).saturating_sub(replaced);
        {
            let mut meta = try_db!("hand on", txn.open_table(META))?;
            try_db!("hand on", meta.insert("output_bytes", output_bytes))?;
        }
        try_db!("hand on", txn.commit())?;
        self.counters.output_bytes.store(output_bytes, Ordering::SeqCst);
        self.notify_outputs.send_modify(|n| *n += 1);
        Ok(())
    }

    fn record_intent(&self, consumer: &str, intent: &[u8]) -> Result<(), JournalError> {
        let txn = try_db!("intent", self.db.get()?.begin_write())?;
        {
            let mut t = try_db!("intent", txn.open_table(INTENTS))?;
            try_db!("intent", t.insert(consumer, intent))?;
        }
        try_db!("intent", txn.commit())
    }

    fn trim(&mut self) -> Result<u64, JournalError> {
        // Events not yet indexed are the only copy of their keys: index them all before trimming.
        self.index(usize::MAX)?;
        let total = 0;
        {
            let txn = try_db!("trim", self.db.get()?.begin_write())?;
            let (mut outputs_removed, mut outputs_freed) = (0u64, 0u64);
            let (removed, freed, first) = {
                let checkpoints = try_db!("trim", txn.open_table(CHECKPOINTS))?;
                let mut low: Option<u64> = None;
                let mut all = Vec::new();
                for item in try_db!("trim", checkpoints.iter())? {
                    let (k, v) = try_db!("trim", item)?;
                    all.push((k.value().to_owned(), v.value()));
                    low = Some(low.map_or(v.value(), |l| l.min(v.value())));
                }
                let Some(low) = low else { return Ok(total) };
                // A stage's outputs are for the other consumers: kept until all of them have passed (and kept
                // for inspection while no other consumer exists).
                let mut outputs = try_db!("trim", txn.open_table(OUTPUTS))?;
                for (stage, _) in &all {
                    let Some(below) = all.iter().filter(|(c, _)| c != stage).map(|(_, n)| *n).min() else { continue };
                    let (n, freed) = remove_outputs(&mut outputs, stage, below, HOUSEKEEPING_BATCH)?;
                    outputs_removed += n;
                    outputs_freed += freed;
                }
                let mut events = try_db!("trim", txn.open_table(EVENTS))?;
                let mut doomed = Vec::new();
                let mut freed = 0u64;
                for item in try_db!("trim", events.range(..low))?.take(HOUSEKEEPING_BATCH) {
                    let (k, v) = try_db!("trim", item)?;
                    doomed.push(k.value());
                    freed += v.value().len() as u64;
                }
                for seq in &doomed {
                    try_db!("trim", events.remove(*seq))?;
                }
                let first = try_db!("trim", events.first())?.map(|(k, _)| k.value());
                (doomed.len() as u64, freed, first)
            };
            if removed == 0 && outputs_removed == 0 {
                txn.abort().map_err(|e| storage("trim")(e.into()))?;
                return Ok(total);
            }
            let bytes = self.counters.bytes.load(Ordering::SeqCst).saturating_sub(freed);
            let output_bytes = self.counters.output_bytes.load(Ordering::SeqCst).saturating_sub(outputs_freed);
            {
                let mut meta = try_db!("trim", txn.open_table(META))?;
                try_db!("trim", meta.insert("bytes", bytes))?;
                try_db!("trim", meta.insert("output_bytes", output_bytes))?;
            }
            try_db!("trim", txn.commit())?;
            let c = &self.counters;
            c.bytes.store(bytes, Ordering::SeqCst);
            c.output_bytes.store(output_bytes, Ordering::SeqCst);
            c.full.store(false, Ordering::Relaxed);
            c.entries.fetch_sub(removed, Ordering::SeqCst);
            c.first_seq.store(first.unwrap_or(c.next_seq.load(Ordering::SeqCst)), Ordering::SeqCst);
            Ok(total + removed + outputs_removed)
        }
    }

    fn prune(&mut self) -> Result<u64, JournalError> {
        // Expiry lives in the index: bring every key there first.
        self.index(usize::MAX)?;
        let now = self.clock.now_micros();
        let total = 0;
        {
            let txn = try_db!("prune", self.db.get()?.begin_write())?;
            let removed = {
                let mut expiry = try_db!("prune", txn.open_table(EXPIRY))?;
                let mut keys = try_db!("prune", txn.open_table(KEYS))?;
                let mut doomed = Vec::new();
                for item in try_db!("prune", expiry.range((i64::MIN, 0)..=(now, u64::MAX)))?.take(HOUSEKEEPING_BATCH) {
                    let (k, v) = try_db!("prune", item)?;
                    doomed.push((k.value(), v.value().to_owned()));
                }
                for ((expires_at, seq), key) in &doomed {
                    try_db!("prune", expiry.remove((*expires_at, *seq)))?;
                    try_db!("prune", keys.remove(key.as_str()))?;
                }
                doomed.len() as u64
            };
            if removed == 0 {
                txn.abort().map_err(|e| storage("prune")(e.into()))?;
                return Ok(total);
            }
            try_db!("prune", txn.commit())?;
            self.counters.keys.fetch_sub(removed, Ordering::SeqCst);
            Ok(total + removed)
        }
    }
}

#[cfg(test)]
mod tests;
