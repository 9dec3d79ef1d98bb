//! Mapped tables: a sink reading from a `wasm` stage buffers the documents its `enrich` stage handed on, and at
//! write time runs the plugins on them ([`Mapper::map`]) and turns the rows into one file per (table,
//! partition), named from the seqs of the events whose rows it holds. Rows go into Arrow through `arrow-json`'s
//! decoder with the declared schema; events the plugins could not map go to the dead letters.
//!
//! Pure apart from the dead letters, which are idempotent (one file per stage and seq): a rewrite after a crash
//! maps the same documents to the same rows, names and letters.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use serde_json::{Map, Value};

use super::layout::file_path;
use super::{Doc, partition_values};
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::transforms::wasm::schema::table_schema;
use crate::transforms::wasm::{Outcome, Plugins};

/// Partition key values, in `partition_by` order.
type Partition = Vec<(String, String)>;

/// The seqs and rows of one (table, partition).
type Group = (Vec<u64>, Vec<Map<String, Value>>);

/// What a mapped sink needs besides the lake.
#[derive(Clone)]
pub struct Mapping {
    /// The plugins (swapped whole on reload).
    pub plugins: Plugins,
    /// The journal consumer whose outputs it reads (`transform.<enrich stage>`).
    pub upstream: String,
    /// Where unmappable events go.
    pub dead_letters: DeadLetters,
    /// Calls, failures and latency of the stage's plugins.
    pub metrics: Arc<crate::metrics::PluginMetrics>,
}

/// One file's worth of rows.
pub struct MappedFile {
    /// The table.
    pub table: String,
    /// Object path.
    pub path: object_store::path::Path,
    /// The rows, as a batch of the table's schema.
    pub batch: RecordBatch,
}

/// Maps `docs` and groups the rows into files; writes dead letters for events that could not be mapped.
/// Blocking.
///
/// # Errors
/// When a dead letter cannot be written or a checked row still does not decode (a bug): the caller retries.
pub fn map_files(
    mapping: &Mapping,
    docs: &[&Doc],
    keys: &[String],
    prefix: &object_store::path::Path,
    now: i64,
) -> Result<(Vec<MappedFile>, usize), String> {
    let mapper = mapping.plugins.current();
    let stage = format!("transforms.{}", mapper.stage());
    let upstream = mapping.upstream.strip_prefix("transform.").map(|n| format!("transforms.{n}"));
    // A replayed dead letter is for the stage that gave up on it and the stages after it only.
    let docs: Vec<&Doc> = docs
        .iter()
        .copied()
        .filter(|d| d.replay.as_ref().is_none_or(|r| r.stage == stage || Some(&r.stage) == upstream.as_ref()))
        .collect();
    let bytes: Vec<&[u8]> = docs.iter().map(|d| d.bytes.as_slice()).collect();
    let started = std::time::Instant::now();
    let outcomes = mapper.map(&bytes);
    mapping.metrics.mapped(bytes.len(), started.elapsed());
    let mut groups: BTreeMap<(String, Partition), Group> = BTreeMap::new();
    let mut dead = 0;
    for (doc, outcome) in docs.iter().zip(outcomes) {
        // The event's lineage: a replay keeps its original seq.
        let lineage = doc.replay.as_ref().map_or(doc.seq, |r| r.seq);
        match outcome {
            Outcome::Unclaimed => {}
            Outcome::Failed(reason) => {
                tracing::error!(stage, event_id = doc.id, seq = lineage, reason, "event sent to the dead letters");
                let mut document = doc.bytes.clone();
                if doc.replay.is_some() {
                    document = strip_replay(&document);
                }
                let letter = DeadLetter::of_document(
                    &stage,
                    lineage,
                    &doc.id,
                    &doc.event,
                    &doc.source,
                    doc.received_at,
                    &document,
                    reason,
                    now,
                );
                mapping.dead_letters.put(&letter).map_err(|e| format!("writing a dead letter: {e}"))?;
                mapping.metrics.dead_letters.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                dead += 1;
            }
            Outcome::Rows(tables) => {
                let partition = partition_values(doc.received_at, &doc.event, &doc.source, keys);
                for (table, rows) in tables {
                    let (seqs, group) = groups.entry((table, partition.clone())).or_default();
                    for mut row in rows {
                        row.insert("_event_id".into(), Value::from(doc.id.as_str()));
                        row.insert("_event_type".into(), Value::from(doc.event.as_str()));
                        row.insert("_received_at".into(), Value::from(doc.received_at));
                        row.insert("_seq".into(), Value::from(lineage));
                        group.push(row);
                        seqs.push(doc.seq);
                    }
                }
            }
        }
    }
    // One file per group, built on the mapper's workers (turning rows into columns is most of a file's cost).
    let groups: Vec<_> = groups.into_iter().collect();
    let files = crate::parallel::map(&groups, mapper.workers(), |((table, partition), (seqs, rows))| {
        let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) else { return Ok(None) };
        let schema = table_schema(&mapper.tables()[table]);
        let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| format!("table {table}: {e}"))?;
        decoder.serialize(rows).map_err(|e| format!("table {table}: rows do not decode: {e}"))?;
        let batch = decoder
            .flush()
            .map_err(|e| format!("table {table}: {e}"))?
            .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
        let path = file_path(prefix, table, partition, *first, *last);
        Ok(Some(MappedFile { table: table.clone(), path, batch }))
    });
    let files = files.into_iter().collect::<Result<Vec<_>, String>>()?.into_iter().flatten().collect();
    Ok((files, dead))
}

/// The document without its `_replay` marker (a letter stores the document as the stage first saw it).
fn strip_replay(document: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(document) {
        Ok(Value::Object(mut m)) => {
            m.remove("_replay");
            serde_json::to_vec(&Value::Object(m)).unwrap_or_else(|_| document.to_vec())
        }
        _ => document.to_vec(),
    }
}
