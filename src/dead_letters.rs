//! Dead letters: events a processing stage gave up on (an API that kept failing, a plugin that trapped), kept
//! with the reason so an operator can inspect and replay them. They live in `data_dir/dead_letters`, one JSON
//! file per event and stage, named by the event's journal sequence number, so writing the same dead letter again
//! after a crash (the stage had not yet moved its checkpoint past it) lands on the same file: never two copies.
//!
//! A dead letter carries everything needed to put the event back into the pipeline: the stored entry (source,
//! receive time, client address, raw body) and its original `seq`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::journal::Record;

/// The folder inside `data_dir`.
pub const DIR_NAME: &str = "dead_letters";

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
    #[allow(clippy::too_many_arguments)]
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

    /// Writes `letter` durably (temp file, fsync, rename, fsync of the folder). Blocking: call it from
    /// `spawn_blocking`. Writing the same stage and seq again replaces the file.
    ///
    /// # Errors
    /// When the disk refuses; the caller must not move its checkpoint past the event then.
    pub fn put(&self, letter: &DeadLetter) -> std::io::Result<()> {
        let path = self.path_of(&letter.stage, letter.seq);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut file, letter)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Every dead letter, by stage then seq. Unreadable files are reported, not skipped silently.
    ///
    /// # Errors
    /// When the folder cannot be read or a file is not a dead letter.
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
            if !stage.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&stage)? {
                let f = f?.path();
                if f.extension().is_some_and(|x| x == "json") {
                    files.push(f);
                }
            }
        }
        files.sort();
        for f in files {
            let text = std::fs::read(&f)?;
            let letter = serde_json::from_slice(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", f.display())))?;
            out.push(letter);
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
