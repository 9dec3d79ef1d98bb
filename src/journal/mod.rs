//! The journal: the one durable hand-off between admission (the sender waits) and processing (at its own pace).
//!
//! An accepted event and its dedup key are written in **one atomic, fsynced write**; only then does the source
//! answer 200. Concurrent appends share one fsync (group commit). Every stored event gets a sequence number that
//! only grows and is never reused, even after restarts and trims. Consumers read from their own checkpoint; the
//! journal is trimmed only below the slowest one.
//!
//! The [`Journal`] trait is small on purpose: the embedded implementation ([`embedded`], redb in `data_dir`) is
//! the single-node one; a cluster one maps it onto NATS JetStream (publish with `Nats-Msg-Id` = dedup key inside
//! the stream's duplicate window, durable consumers as checkpoints, `purge` below the slowest as trim).
//! This module must never decide HTTP statuses or parse bodies: it stores what admission hands it.

pub mod embedded;
mod record;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub use embedded::EmbeddedJournal;
pub use record::DecodeError;

/// A boxed future, so the trait stays object-safe (`Arc<dyn Journal>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An accepted delivery, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The source that received it (`sources.<name>`).
    pub source: String,
    /// When it was received, µs since the epoch (UTC).
    pub received_at: i64,
    /// The client address (after trusted-proxy resolution).
    pub source_ip: String,
    /// The envelope's `event`.
    pub event: String,
    /// The envelope's `id`.
    pub id: String,
    /// The envelope's `name`, if any.
    pub name: Option<String>,
    /// The dedup key, if a `dedup` stage is configured.
    pub dedup_key: Option<String>,
    /// Request headers worth keeping (content type, user agent, request ids): never signatures or auth.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte.
    pub body: Bytes,
}

/// A stored entry with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The journal sequence number.
    pub seq: u64,
    /// The entry.
    pub entry: Entry,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored under `seq`.
    Stored {
        /// Its sequence number.
        seq: u64,
    },
    /// The dedup key is already held (within its TTL) by the event at `seq`; nothing was stored.
    Duplicate {
        /// The sequence number of the original.
        seq: u64,
    },
}

/// Journal failures. None of them means "stored": the source answers 503 and the sender retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Over `max_journal_bytes`.
    #[error("journal is over its disk budget ({bytes} of {max} bytes used)")]
    Full {
        /// Bytes stored.
        bytes: u64,
        /// The budget.
        max: u64,
    },
    /// Another process holds the journal.
    #[error("the journal is in use by another process (is `hooklake run` still running with this data_dir?)")]
    InUse,
    /// The journal is shutting down or its writer stopped.
    #[error("journal is closed")]
    Closed,
    /// The storage engine failed (disk full, I/O error).
    #[error("journal storage failed during {op}: {message}")]
    Storage {
        /// What was being done.
        op: &'static str,
        /// The engine's description.
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("journal record {seq} is unreadable")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
}

/// Counters that describe the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JournalStats {
    /// The sequence number the next stored event gets.
    pub next_seq: u64,
    /// The lowest sequence number still stored (`next_seq` when empty).
    pub first_seq: u64,
    /// Events stored.
    pub entries: u64,
    /// Bytes of stored events (the budget's measure).
    pub bytes: u64,
    /// Dedup keys held.
    pub keys: u64,
    /// Bytes of stored stage outputs (enriched events); they count against the disk budget too.
    pub output_bytes: u64,
    /// An append was refused for the disk budget since the last trim freed space.
    pub full: bool,
}

/// What a processing stage has handed on, as [`Journal::read_outputs`] returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageOutputs {
    /// `(seq of the event it came from, output bytes)`, in seq order.
    pub outputs: Vec<(u64, Vec<u8>)>,
    /// The stage's checkpoint: every event below it has been handed on. An event below it with no output was
    /// skipped by the stage (not its input, or dead-lettered), so a downstream consumer may move past it.
    pub upto: u64,
}

/// The durable log plus dedup index.
pub trait Journal: Send + Sync + 'static {
    /// Stores `entry` durably, unless its dedup key is already held, in which case nothing is stored.
    /// `dedup_ttl_micros` is how long the key is held (ignored without a key). Resolves only after the write
    /// is on disk (fsync).
    fn append(&self, entry: Entry, dedup_ttl_micros: i64) -> BoxFuture<'_, Result<Appended, JournalError>>;

    /// Up to `max` records with `seq >= from`, in order.
    fn read(&self, from: u64, max: usize) -> BoxFuture<'_, Result<Vec<Record>, JournalError>>;

    /// The next sequence number `consumer` has not yet handed on (`None` if it never committed one).
    fn checkpoint(&self, consumer: &str) -> BoxFuture<'_, Result<Option<u64>, JournalError>>;

    /// Records that `consumer` has handed on everything below `next`, and clears its intent, in one write.
    fn commit_checkpoint(&self, consumer: &str, next: u64) -> BoxFuture<'_, Result<(), JournalError>>;

    /// Durably records what `consumer` is about to do (opaque bytes, e.g. "write files for seq a..=b"), before
    /// it does anything visible. After a crash the consumer finds it with [`Journal::intent`] and redoes exactly
    /// that, so its side effects are the same as if it had not crashed.
    fn record_intent(&self, consumer: &str, intent: Vec<u8>) -> BoxFuture<'_, Result<(), JournalError>>;

    /// The intent `consumer` recorded and has not yet completed with [`Journal::commit_checkpoint`].
    fn intent(&self, consumer: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, JournalError>>;

    /// A receiver that changes whenever events are stored (its value is the next sequence number), so
    /// consumers wait for new data instead of polling.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Stores the outputs of processing stage `stage` (each keyed by the seq of the event it came from) and
    /// moves its checkpoint to `next`, in one durable write, so what a stage handed on and how far it got never
    /// disagree after a crash. A stage's outputs are trimmed once every other consumer has passed them.
    fn hand_on(&self, stage: &str, outputs: Vec<(u64, Vec<u8>)>, next: u64) -> BoxFuture<'_, Result<(), JournalError>>;

    /// Up to `max` outputs of `stage` with `seq >= from`, and the stage's checkpoint.
    fn read_outputs(&self, stage: &str, from: u64, max: usize) -> BoxFuture<'_, Result<StageOutputs, JournalError>>;

    /// A receiver that changes whenever a stage hands on outputs.
    fn subscribe_outputs(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Every consumer with a checkpoint.
    fn consumers(&self) -> BoxFuture<'_, Result<Vec<String>, JournalError>>;

    /// Removes `consumer`'s checkpoint, intent and outputs, so it no longer holds back trimming (a stage taken
    /// out of the config).
    fn forget_consumer(&self, consumer: &str) -> BoxFuture<'_, Result<(), JournalError>>;

    /// Deletes records below the slowest consumer's checkpoint, one bounded batch per call so appends are never
    /// held up for long; with no consumers, deletes nothing. Returns how many were deleted: call again while it
    /// is above zero.
    fn trim(&self) -> BoxFuture<'_, Result<u64, JournalError>>;

    /// Forgets dedup keys whose TTL has passed, one bounded batch per call. Returns how many were forgotten:
    /// call again while it is above zero.
    fn prune_keys(&self) -> BoxFuture<'_, Result<u64, JournalError>>;

    /// Current counters.
    fn stats(&self) -> JournalStats;
}
