//! Tables as the lake sees them: a name and an Arrow schema, plus the rows. The raw `events` table is built
//! here from journal records (`spec/lake.md`); tables declared by plugins will use the same writer with their
//! own schema. Pure: records in, an Arrow batch out.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::clock::parse_timestamp;
use crate::journal::Record;

/// The raw table's name.
pub const EVENTS: &str = "events";

/// Timestamps in the lake: microseconds, UTC (Parquet `TIMESTAMP(MICROS, isAdjustedToUTC=true)`).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The four columns the host adds to every table, all required.
pub fn host_fields() -> Vec<Field> {
    vec![
        Field::new("_event_id", DataType::Utf8, false),
        Field::new("_event_type", DataType::Utf8, false),
        Field::new("_received_at", timestamp_type(), false),
        Field::new("_seq", DataType::UInt64, false),
    ]
}

/// A table: its name and schema.
#[derive(Debug, Clone)]
pub struct Table {
    /// The folder name under the sink's prefix.
    pub name: String,
    /// Column names and types; the file schema.
    pub schema: SchemaRef,
}

/// The raw `events` table: one row per accepted delivery.
pub fn events_table() -> Table {
    let mut fields = host_fields();
    let items = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    fields.extend([
        Field::new("event_name", DataType::Utf8, true),
        Field::new("account_id", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("items", items, true),
        Field::new("last_updated_time", timestamp_type(), true),
        Field::new("source_ip", DataType::Utf8, true),
        Field::new("payload", DataType::Utf8, true),
    ]);
    Table { name: EVENTS.to_owned(), schema: Arc::new(Schema::new(fields)) }
}

/// Text of a JSON scalar, for id-like fields (ids arrive as 32-hex strings or UUIDs; a number is kept as text).
fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Builds the `events` batch of `records`, in the order given.
///
/// # Errors
/// Only if Arrow rejects the arrays (a bug: the builders follow the schema).
pub fn events_batch(records: &[&Record]) -> Result<RecordBatch, ArrowError> {
    let n = records.len();
    let mut event_id = StringBuilder::with_capacity(n, n * 36);
    let mut event_type = StringBuilder::with_capacity(n, n * 16);
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut seq = UInt64Builder::with_capacity(n);
    let mut name = StringBuilder::new();
    let mut account = StringBuilder::new();
    let mut user = StringBuilder::new();
    let mut profile = StringBuilder::new();
    let mut items = ListBuilder::new(StringBuilder::new());
    let mut updated = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut source_ip = StringBuilder::new();
    let mut payload = StringBuilder::with_capacity(n, records.iter().map(|r| r.entry.body.len()).sum());
    for r in records {
        let e = &r.entry;
        event_id.append_value(&e.id);
        event_type.append_value(&e.event);
        received.append_value(e.received_at);
        seq.append_value(r.seq);
        name.append_option(e.name.as_deref());
        source_ip.append_value(&e.source_ip);
        // Admission only stores bodies that parsed as JSON objects, so this parse succeeds; if it ever does
        // not, the row keeps its raw payload and nulls elsewhere rather than failing the file.
        let body: Value = serde_json::from_slice(&e.body).unwrap_or(Value::Null);
        let data = body.get("data");
        account.append_option(scalar_text(data.and_then(|d| d.get("account_id"))));
        user.append_option(scalar_text(data.and_then(|d| d.get("user_id"))));
        profile.append_option(scalar_text(data.and_then(|d| d.get("profile_id"))));
        match data.and_then(|d| d.get("items")).and_then(Value::as_array) {
            Some(list) => {
                for item in list {
                    items.values().append_option(scalar_text(Some(item)));
                }
                items.append(true);
            }
            None => items.append(false),
        }
        updated.append_option(
            data.and_then(|d| d.get("last_updated_time")).and_then(Value::as_str).and_then(parse_timestamp),
        );
        payload.append_value(String::from_utf8_lossy(&e.body));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(received.finish()),
        Arc::new(seq.finish()),
        Arc::new(name.finish()),
        Arc::new(account.finish()),
        Arc::new(user.finish()),
        Arc::new(profile.finish()),
        Arc::new(items.finish()),
        Arc::new(updated.finish()),
        Arc::new(source_ip.finish()),
        Arc::new(payload.finish()),
    ];
    RecordBatch::try_new(events_table().schema, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Entry;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, UInt64Type};
    use bytes::Bytes;

    pub(crate) fn record(seq: u64, body: &str) -> Record {
        let v: Value = serde_json::from_str(body).expect("json");
        Record {
            seq,
            entry: Entry {
                source: "insightiq".into(),
                received_at: 1_764_842_400_000_000 + seq as i64,
                source_ip: "54.211.40.75".into(),
                event: v["event"].as_str().unwrap_or_default().into(),
                id: v["id"].as_str().unwrap_or_default().into(),
                name: v["name"].as_str().map(str::to_owned),
                dedup_key: None,
                headers: vec![],
                body: Bytes::from(body.to_owned()),
            },
        }
    }

    #[test]
    fn events_rows_carry_envelope_fields_and_the_raw_payload() {
        let a = record(
            7,
            r#"{"event":"CONTENTS.ADDED","name":"contents added","id":"e1","data":{"account_id":"acc","user_id":"u","last_updated_time":"2021-10-25 16:45:26.761622","items":["i1","i2"]}}"#,
        );
        let b = record(
            8,
            r#"{"event":"PROFILES.UPDATED","id":"e2","data":{"account_id":"acc","profile_id":"p9","last_updated_time":"not a time"}}"#,
        );
        let batch = events_batch(&[&a, &b]).expect("batch");
        assert_eq!(batch.num_rows(), 2);
        let s = |name: &str, row: usize| -> Option<String> {
            let col = batch.column_by_name(name).expect("column").as_string::<i32>();
            col.is_valid(row).then(|| col.value(row).to_owned())
        };
        assert_eq!(s("_event_id", 0).as_deref(), Some("e1"));
        assert_eq!(s("_event_type", 1).as_deref(), Some("PROFILES.UPDATED"));
        assert_eq!(s("event_name", 1), None);
        assert_eq!(s("profile_id", 1).as_deref(), Some("p9"));
        assert_eq!(s("payload", 0).as_deref(), Some(std::str::from_utf8(&a.entry.body).expect("utf8")));
        let seq = batch.column_by_name("_seq").expect("seq").as_primitive::<UInt64Type>();
        assert_eq!((seq.value(0), seq.value(1)), (7, 8));
        let lut = batch.column_by_name("last_updated_time").expect("col").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(lut.value(0), 1_635_180_326_761_622);
        assert!(lut.is_null(1), "unparsable time is null, not an error");
        let items = batch.column_by_name("items").expect("items").as_list::<i32>();
        assert_eq!(items.value(0).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), vec!["i1", "i2"]);
        assert!(items.is_null(1));
    }

    #[test]
    fn host_columns_are_required_and_timestamps_are_utc_micros() {
        let t = events_table();
        for f in host_fields() {
            assert!(!t.schema.field_with_name(f.name()).expect("present").is_nullable(), "{}", f.name());
        }
        assert_eq!(t.schema.field_with_name("_received_at").expect("f").data_type(), &timestamp_type());
        assert!(t.schema.field_with_name("payload").expect("f").is_nullable());
    }
}
