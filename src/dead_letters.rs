//! Dead letters: events a processing stage gave up on (an API that kept failing, a plugin that trapped), kept
//! with the reason so an operator can inspect and replay them. They live in `data_dir/dead_letters`, one JSON
//! file per event and stage, named by the event's journal sequence number, so writing the same dead letter again
//! after a crash (the stage had not yet moved its checkpoint past it) lands on the same file: never two copies.
//!
//! A dead letter carries everything needed to put the event back into the pipeline: the stored entry (source,
//! receive time, client address, raw body) and its original `seq`.
//!
//! **Replay** (`hooklake dead-letters replay`) moves selected letters into a queue folder (`.replay`). The running
//! pipeline, or the command itself when none runs, appends each queued letter to the journal as a new entry
//! marked with the [`REPLAY_HEADER`] and a dedup key unique to that letter ([`DeadLetter::replay_key`]), then
//! removes the queued file: a crash in between appends nothing twice. The marked entry then travels only to the
//! stage that gave up and what follows it: an `enrich` letter is fetched again; a `wasm` letter's stored document
//! is handed on as it is and mapped again by the sinks of that stage only. The raw `events` table never takes a
//! replay (it holds the event already), and mapped rows keep the original `_seq`, so every event is landed once.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::journal::{Appended, Entry, Journal, JournalError, Record};

/// The folder inside `data_dir`.
pub const DIR_NAME: &str = "dead_letters";
/// The replay queue inside the dead-letter folder (a leading dot: it is not a stage).
pub const QUEUE_DIR: &str = ".replay";
/// The header a replayed journal entry carries (webhook sources never store it: see `admission::KEPT_HEADERS`).
pub const REPLAY_HEADER: &str = "hooklake-replay";
/// How long a replay's dedup key guards against appending it twice (far longer than any crash and restart).
const REPLAY_KEY_TTL_MICROS: i64 = 7 * 86_400 * 1_000_000;

/// What a replayed journal entry (and the document handed on for it, as `_replay`) says about its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The stage that gave up (`transforms.<name>`): only it and the stages after it take the entry.
    pub stage: String,
    /// The event's original journal seq: mapped rows keep it as `_seq`.
    pub seq: u64,
    /// True when the entry's body is the stored enriched document (a `wasm` letter), not the raw webhook body.
    #[serde(default)]
    pub document: bool,
}

impl Replay {
    /// The replay marker of a journal entry, if it is a replay.
    pub fn of(entry: &Entry) -> Option<Self> {
        let (_, v) = entry.headers.iter().find(|(k, _)| k == REPLAY_HEADER)?;
        serde_json::from_str(v).ok()
    }
}

/// Which dead letters a command acts on. Empty selectors select nothing; `all` selects every letter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Every letter.
    pub all: bool,
    /// Envelope ids.
    pub ids: Vec<String>,
    /// Journal seqs.
    pub seqs: Vec<u64>,
    /// Stage names (`enrich` or `transforms.enrich`).
    pub stage: Option<String>,
    /// A substring of the reason (case-insensitive).
    pub reason: Option<String>,
}

impl Selection {
    /// True when no selector is given (commands that change letters refuse that).
    pub fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty() && self.seqs.is_empty() && self.stage.is_none() && self.reason.is_none()
    }

    /// True when `letter` is selected: every given selector must match (`all` matches everything).
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let stage_ok = self
            .stage
            .as_deref()
            .is_none_or(|s| letter.stage == s || letter.stage.strip_prefix("transforms.").is_some_and(|n| n == s));
        let reason_ok = self.reason.as_deref().is_none_or(|r| letter.reason.to_lowercase().contains(&r.to_lowercase()));
        let id_ok = self.ids.is_empty() || self.ids.contains(&letter.event_id);
        let seq_ok = self.seqs.is_empty() || self.seqs.contains(&letter.seq);
        (self.all || !self.is_empty()) && stage_ok && reason_ok && id_ok && seq_ok
    }
}

/// One event a stage gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage that gave up (`transforms.<name>`).
    pub stage: String,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The API's `request-id` of the last failed call, when there was one.
    pub request_id: Option<String>,
    /// When the stage gave up (RFC 3339, UTC).
    pub dead_at: String,
    /// The event's journal sequence number.
    pub seq: u64,
    /// The envelope `id`.
    pub event_id: String,
    /// The envelope `event`.
    pub event: String,
    /// The source that received it.
    pub source: String,
    /// When it was received, µs since the epoch.
    pub received_at: i64,
    /// The client address.
    pub source_ip: String,
    /// The raw body, exactly as received (empty for a dead letter of a stage that reads handed-on documents).
    pub body: String,
    /// For stages that read what an earlier stage handed on (`wasm` reads `enrich`'s documents): that document,
    /// so a replay maps it again without fetching again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `record`, given up on by `stage`.
    pub fn new(
        stage: &str,
        record: &Record,
        reason: String,
        attempts: u32,
        request_id: Option<String>,
        now: i64,
    ) -> Self {
        let e = &record.entry;
        Self {
            stage: stage.to_owned(),
            reason,
            attempts,
            request_id,
            dead_at: crate::clock::format_micros(now),
            seq: record.seq,
            event_id: e.id.clone(),
            event: e.event.clone(),
            source: e.source.clone(),
            received_at: e.received_at,
            source_ip: e.source_ip.clone(),
            body: String::from_utf8_lossy(&e.body).into_owned(),
            document: None,
        }
    }

    /// A dead letter for a handed-on document (an enriched event) that `stage` could not process.
    #[expect(clippy::too_many_arguments, reason = "one field of the letter each; a struct would repeat DeadLetter")]
    pub fn of_document(
        stage: &str,
        seq: u64,
        event_id: &str,
        event: &str,
        source: &str,
        received_at: i64,
        document: &[u8],
        reason: String,
        now: i64,
    ) -> Self {
        Self {
            stage: stage.to_owned(),
            reason,
            attempts: 1,
            request_id: None,
            dead_at: crate::clock::format_micros(now),
            seq,
            event_id: event_id.to_owned(),
            event: event.to_owned(),
            source: source.to_owned(),
            received_at,
            source_ip: String::new(),
            body: String::new(),
            document: Some(String::from_utf8_lossy(document).into_owned()),
        }
    }
}

impl DeadLetter {
    /// The dedup key of this letter's replay: the same letter is appended once however often a crash interrupts
    /// the replay; a letter written again after a failed replay (a new `dead_at`) can be replayed again.
    pub fn replay_key(&self) -> String {
        format!("replay:{}:{}:{}", self.stage, self.seq, self.dead_at)
    }

    /// The journal entry that puts this event back into the pipeline.
    ///
    /// # Errors
    /// When a `wasm` letter's stored document is not a JSON object.
    pub fn replay_entry(&self) -> Result<Entry, String> {
        let document = self.document.is_some();
        let marker = Replay { stage: self.stage.clone(), seq: self.seq, document };
        let body = match &self.document {
            Some(doc) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(doc).map_err(|e| format!("stored document is not JSON: {e}"))?;
                let obj = v.as_object_mut().ok_or("stored document is not a JSON object")?;
                obj.insert("_replay".into(), serde_json::json!(marker));
                serde_json::to_vec(&v).map_err(|e| e.to_string())?
            }
            None => self.body.clone().into_bytes(),
        };
        Ok(Entry {
            source: self.source.clone(),
            received_at: self.received_at,
            source_ip: self.source_ip.clone(),
            event: self.event.clone(),
            id: self.event_id.clone(),
            name: None,
            dedup_key: Some(self.replay_key()),
            headers: vec![(REPLAY_HEADER.to_owned(), serde_json::to_string(&marker).map_err(|e| e.to_string())?)],
            body: bytes::Bytes::from(body),
        })
    }
}

/// The stages of `config` a replay can go back to (`transforms.<name>` of its `enrich` and `wasm` stages).
pub fn replay_stages(config: &crate::config::Config) -> Vec<String> {
    use crate::config::TransformConfig;
    config
        .transforms
        .iter()
        .filter(|t| matches!(t.kind, TransformConfig::Enrich(_) | TransformConfig::Wasm(_)))
        .map(|t| format!("transforms.{}", t.name))
        .collect()
}

/// What one call of [`inject`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// Letters appended to the journal.
    pub appended: u64,
    /// Letters whose replay was already in the journal (an interrupted earlier injection).
    pub already: u64,
    /// Queued files that are not dead letters or name an unknown stage (moved aside as `.bad`, `.unknown`).
    pub bad: u64,
    /// Letters left queued until every stage has passed their event.
    pub waiting: u64,
}

/// Most queued letters one [`inject`] call appends (housekeeping calls it every second).
pub const INJECT_BATCH: usize = 256;

/// Appends queued replays to the journal (at most [`INJECT_BATCH`]), then removes their queued files.
/// Idempotent: see the module docs.
///
/// A letter waits in the queue while any stage of the journal has not yet passed its event: a sink still behind
/// it could otherwise map the original (with the fixed plugin) and the replay both. A letter of a stage that
/// `stages` does not name (renamed or removed from the config) is moved aside as `.unknown`, never dropped.
///
/// # Errors
/// When the journal refuses (full, closed): the rest stays queued for the next call.
pub async fn inject(store: &DeadLetters, journal: &dyn Journal, stages: &[String]) -> Result<Injected, JournalError> {
    let mut done = Injected::default();
    let dir = store.queue_dir();
    let queued = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || json_files(&dir)).await.unwrap_or_else(|_| Ok(Vec::new()))
    };
    let queued = queued.map_err(|e| JournalError::Storage { op: "read the replay queue", message: e.to_string() })?;
    if queued.is_empty() {
        return Ok(done);
    }
    let mut slowest = u64::MAX;
    for consumer in journal.consumers().await? {
        slowest = slowest.min(journal.checkpoint(&consumer).await?.unwrap_or(0));
    }
    for path in queued.into_iter().take(INJECT_BATCH) {
        let letter = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<DeadLetter>(&b).map_err(|e| e.to_string()));
        let entry = letter.as_ref().map_err(Clone::clone).and_then(DeadLetter::replay_entry);
        let (letter, entry) = match (letter, entry) {
            (Ok(l), Ok(e)) => (l, e),
            (_, Err(reason)) | (Err(reason), _) => {
                tracing::error!(file = %path.display(), reason, "a queued replay is unreadable; moved aside as .bad");
                let _ = std::fs::rename(&path, path.with_extension("bad"));
                done.bad += 1;
                continue;
            }
        };
        if !stages.contains(&letter.stage) {
            tracing::error!(
                file = %path.display(),
                stage = letter.stage,
                "a queued replay names a stage the config no longer has; moved aside as .unknown"
            );
            let _ = std::fs::rename(&path, path.with_extension("unknown"));
            done.bad += 1;
            continue;
        }
        if letter.seq >= slowest {
            done.waiting += 1;
            continue;
        }
        match journal.append(entry, REPLAY_KEY_TTL_MICROS).await? {
            Appended::Stored { seq } => {
                tracing::info!(
                    stage = letter.stage,
                    event_id = letter.event_id,
                    seq = letter.seq,
                    replay_seq = seq,
                    "replayed a dead letter"
                );
                done.appended += 1;
            }
            Appended::Duplicate { .. } => done.already += 1,
        }
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a replayed letter from the queue");
        }
    }
    Ok(done)
}

fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for f in entries {
        let f = f?.path();
        if f.extension().is_some_and(|x| x == "json") {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

/// The dead-letter folder.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    dir: PathBuf,
}

impl DeadLetters {
    /// The store under `data_dir` (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join(DIR_NAME) }
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, stage: &str, seq: u64) -> PathBuf {
        self.dir.join(stage).join(format!("{seq:020}.json"))
    }

    /// The replay queue.
    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join(QUEUE_DIR)
    }

    /// Letters waiting in the replay queue.
    pub fn queued(&self) -> usize {
        json_files(&self.queue_dir()).map_or(0, |f| f.len())
    }

    /// Moves `letter` into the replay queue (one rename: it is either a letter or queued, never both).
    ///
    /// # Errors
    /// When the disk refuses.
    pub fn enqueue(&self, letter: &DeadLetter) -> std::io::Result<()> {
        let queue = self.queue_dir();
        std::fs::create_dir_all(&queue)?;
        let to = queue.join(format!("{}.{:020}.json", letter.stage, letter.seq));
        std::fs::rename(self.path_of(&letter.stage, letter.seq), to)?;
        std::fs::File::open(&queue)?.sync_all()
    }

    /// Deletes `letter`.
    ///
    /// # Errors
    /// When the disk refuses.
    pub fn remove(&self, letter: &DeadLetter) -> std::io::Result<()> {
        std::fs::remove_file(self.path_of(&letter.stage, letter.seq))
    }

    /// Writes `letter` durably (temp file, fsync, rename, fsync of the folder). Blocking: call it from
    /// `spawn_blocking`. Writing the same stage and seq again replaces the file.
    ///
    /// # Errors
    /// When the disk refuses; the caller must not move its checkpoint past the event then.
    pub fn put(&self, letter: &DeadLetter) -> std::io::Result<()> {
        let path = self.path_of(&letter.stage, letter.seq);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        // Two sinks of one `wasm` stage may write the same letter at once: each through its own temp file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("json.tmp.{}.{n}", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut file, letter)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Every dead letter, by stage then seq. A file that is not a dead letter is skipped with a warning.
    ///
    /// # Errors
    /// When the folder cannot be read.
    pub fn list(&self) -> std::io::Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        let stages = match std::fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for stage in stages {
            let stage = stage?.path();
            let hidden = stage.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !stage.is_dir() || hidden {
                continue;
            }
            files.extend(json_files(&stage)?);
        }
        files.sort();
        for f in files {
            // One damaged file must not hide the others (or keep them from being replayed or purged).
            match std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_slice::<DeadLetter>(&t).map_err(|e| e.to_string()))
            {
                Ok(letter) => out.push(letter),
                Err(e) => tracing::warn!(file = %f.display(), error = e, "skipping a file that is not a dead letter"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Entry;

    fn record(seq: u64) -> Record {
        Record {
            seq,
            entry: Entry {
                source: "insightiq".into(),
                received_at: 1_700_000_000_000_000,
                source_ip: "127.0.0.1".into(),
                event: "CONTENTS.ADDED".into(),
                id: format!("ev-{seq}"),
                name: None,
                dedup_key: None,
                headers: Vec::new(),
                body: bytes::Bytes::from_static(br#"{"id":"x"}"#),
            },
        }
    }

    #[test]
    fn selectors_must_all_match_and_none_selects_nothing() {
        let a = DeadLetter::new("transforms.enrich", &record(1), "API answered 503".into(), 3, None, 0);
        let b = DeadLetter::new("transforms.map", &record(2), "plugin trapped".into(), 1, None, 0);
        let pick = |s: &Selection| [&a, &b].iter().filter(|l| s.matches(l)).map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(pick(&Selection::default()), Vec::<u64>::new());
        assert_eq!(pick(&Selection { all: true, ..Selection::default() }), vec![1, 2]);
        assert_eq!(pick(&Selection { stage: Some("map".into()), ..Selection::default() }), vec![2]);
        assert_eq!(pick(&Selection { stage: Some("transforms.enrich".into()), ..Selection::default() }), vec![1]);
        assert_eq!(pick(&Selection { reason: Some("TRAPPED".into()), ..Selection::default() }), vec![2]);
        assert_eq!(pick(&Selection { ids: vec!["ev-1".into()], ..Selection::default() }), vec![1]);
        let both = Selection { seqs: vec![2], stage: Some("enrich".into()), ..Selection::default() };
        assert_eq!(pick(&both), Vec::<u64>::new());
    }

    #[test]
    fn a_replay_entry_is_marked_keyed_per_letter_and_carries_the_document_when_there_is_one() {
        let raw = DeadLetter::new("transforms.enrich", &record(7), "down".into(), 3, None, 5);
        let entry = raw.replay_entry().unwrap();
        assert_eq!(entry.body.as_ref(), br#"{"id":"x"}"#);
        assert_eq!(Replay::of(&entry), Some(Replay { stage: "transforms.enrich".into(), seq: 7, document: false }));
        assert_eq!(entry.dedup_key.as_deref(), Some(raw.replay_key().as_str()));
        let again = DeadLetter { dead_at: crate::clock::format_micros(6), ..raw.clone() };
        assert_ne!(again.replay_key(), raw.replay_key(), "a letter written again can be replayed again");

        let doc =
            DeadLetter::of_document("transforms.map", 9, "e", "CONTENTS.ADDED", "s", 0, br#"{"seq":9}"#, "x".into(), 0);
        let entry = doc.replay_entry().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(body["seq"], 9);
        assert_eq!(body["_replay"]["stage"], "transforms.map");
        assert_eq!(body["_replay"]["document"], true);
        let broken = DeadLetter { document: Some("[1]".into()), ..doc };
        assert!(broken.replay_entry().is_err());
    }

    #[tokio::test]
    async fn inject_waits_for_every_stage_to_pass_the_event_and_sets_aside_unknown_stages() {
        use crate::journal::{EmbeddedJournal, embedded::Options};
        let tmp = tempfile::tempdir().unwrap();
        let store = DeadLetters::new(tmp.path());
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(0));
        let opts = Options { max_bytes: 1 << 30, queue: 16, max_batch: 16, cache: 16 << 20 };
        let journal = EmbeddedJournal::open(&tmp.path().join("journal"), opts, clock, None).unwrap();
        let known = vec!["transforms.map".to_owned()];
        let letter = DeadLetter::of_document("transforms.map", 3, "e3", "CONTENTS.ADDED", "s", 0, b"{}", "x".into(), 0);
        let gone = DeadLetter::of_document("transforms.old", 1, "e1", "CONTENTS.ADDED", "s", 0, b"{}", "x".into(), 0);
        for l in [&letter, &gone] {
            store.put(l).unwrap();
            store.enqueue(l).unwrap();
        }
        journal.commit_checkpoint("sink.lake", 3).await.unwrap();
        let done = inject(&store, &journal, &known).await.unwrap();
        assert_eq!((done.appended, done.waiting, done.bad), (0, 1, 1), "sink.lake has not passed seq 3");
        assert_eq!(store.queued(), 1);
        assert!(store.queue_dir().join("transforms.old.00000000000000000001.unknown").exists(), "kept aside");
        journal.commit_checkpoint("sink.lake", 4).await.unwrap();
        assert_eq!(inject(&store, &journal, &known).await.unwrap().appended, 1);
        assert_eq!(store.queued(), 0);
        // Queued again (a crash before the queued file was removed): appended once only.
        store.put(&letter).unwrap();
        store.enqueue(&letter).unwrap();
        assert_eq!(inject(&store, &journal, &known).await.unwrap().already, 1);
        assert_eq!(journal.stats().entries, 1);
        journal.close();
    }

    #[test]
    fn writing_the_same_letter_twice_keeps_one_file_and_list_reads_them_back_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DeadLetters::new(tmp.path());
        assert!(store.list().unwrap().is_empty());
        let a = DeadLetter::new("enrich", &record(7), "API kept failing".into(), 3, Some("req-1".into()), 0);
        let b = DeadLetter::new("enrich", &record(2), "gone".into(), 1, None, 0);
        store.put(&a).unwrap();
        store.put(&a).unwrap();
        store.put(&b).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed, vec![b, a]);
        let files = std::fs::read_dir(store.dir().join("enrich")).unwrap().count();
        assert_eq!(files, 2, "no temp files left, one file per event");
    }
}
