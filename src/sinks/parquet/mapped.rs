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
}

/// One file's worth of rows.
pub struct MappedFile {
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
    let bytes: Vec<&[u8]> = docs.iter().map(|d| d.bytes.as_slice()).collect();
    let mapper = mapping.plugins.current();
    let outcomes = mapper.map(&bytes);
    let mut groups: BTreeMap<(String, Partition), Group> = BTreeMap::new();
    let mut dead = 0;
    let stage = format!("transforms.{}", mapper.stage());
    for (doc, outcome) in docs.iter().zip(outcomes) {
        match outcome {
            Outcome::Unclaimed => {}
            Outcome::Failed(reason) => {
                tracing::error!(stage, event_id = doc.id, seq = doc.seq, reason, "event sent to the dead letters");
                let letter = DeadLetter::of_document(
                    &stage,
                    doc.seq,
                    &doc.id,
                    &doc.event,
                    &doc.source,
                    doc.received_at,
                    &doc.bytes,
                    reason,
                    now,
                );
                mapping.dead_letters.put(&letter).map_err(|e| format!("writing a dead letter: {e}"))?;
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
                        row.insert("_seq".into(), Value::from(doc.seq));
                        group.push(row);
                        seqs.push(doc.seq);
                    }
                }
            }
        }
    }
    let mut files = Vec::with_capacity(groups.len());
    for ((table, partition), (seqs, rows)) in groups {
        let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) else { continue };
        let columns = &mapper.tables()[&table];
        let schema = table_schema(columns);
        let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| format!("table {table}: {e}"))?;
        decoder.serialize(&rows).map_err(|e| format!("table {table}: rows do not decode: {e}"))?;
        let batch = decoder
            .flush()
            .map_err(|e| format!("table {table}: {e}"))?
            .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
        files.push(MappedFile { path: file_path(prefix, &table, &partition, *first, *last), batch });
    }
    Ok((files, dead))
}
