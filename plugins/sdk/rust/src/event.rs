//! The transform input (one enriched event) and output (one result per event).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::conform::describe_value;

/// One row: column name → value. The host adds `_event_id`, `_event_type`, `_received_at` and `_seq`.
pub type Row = Map<String, Value>;

/// A read-only view of an enriched event document:
/// `{"seq", "id", "event", "name", "source", "received_at", "data", "resources": [...], "missing": [...], "skipped"?}`.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    doc: &'a Map<String, Value>,
}

impl<'a> Event<'a> {
    /// A view of `doc`.
    ///
    /// # Errors
    /// When `doc` is not an object.
    pub fn new(doc: &'a Value) -> Result<Self, String> {
        match doc {
            Value::Object(doc) => Ok(Event { doc }),
            other => Err(format!("the event is {}, not an object", describe_value(other))),
        }
    }

    /// The event type (`CONTENTS.ADDED`), or "" when absent.
    pub fn event_type(&self) -> &'a str {
        self.doc.get("event").and_then(Value::as_str).unwrap_or("")
    }

    /// The webhook id.
    pub fn id(&self) -> Option<&'a str> {
        self.doc.get("id").and_then(Value::as_str)
    }

    /// The webhook's `data` object (`Null` when absent).
    pub fn data(&self) -> &'a Value {
        self.doc.get("data").unwrap_or(&Value::Null)
    }

    /// A string field of `data` (`account_id`, `profile_id`…).
    pub fn data_str(&self, key: &str) -> Option<&'a str> {
        self.data().get(key).and_then(Value::as_str)
    }

    /// Why the event passed through un-enriched, if it did.
    pub fn skipped(&self) -> Option<&'a str> {
        match self.doc.get("skipped") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => Some("skipped"),
        }
    }

    /// The fetched records; empty when absent or null.
    ///
    /// # Errors
    /// When `resources` is there but not a list.
    pub fn resources(&self) -> Result<&'a [Value], String> {
        match self.doc.get("resources") {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(format!("resources is {}, not a list", describe_value(other))),
        }
    }

    /// The whole document.
    pub fn document(&self) -> &'a Map<String, Value> {
        self.doc
    }
}

/// The result for one event: rows by table, or why it could not be mapped (the host dead-letters it).
#[derive(Debug, Clone, PartialEq)]
pub enum EventResult {
    /// Rows by table name (tables without rows may be left out).
    Rows(BTreeMap<String, Vec<Row>>),
    /// The event cannot be mapped.
    Error(String),
}

impl EventResult {
    /// No rows.
    pub fn empty() -> Self {
        EventResult::Rows(BTreeMap::new())
    }

    /// An error result.
    pub fn error(message: impl Into<String>) -> Self {
        EventResult::Error(message.into())
    }

    /// Adds a row to `table`. Does nothing to an error result.
    pub fn push(&mut self, table: &str, row: Row) {
        if let EventResult::Rows(tables) = self {
            tables.entry(table.to_owned()).or_default().push(row);
        }
    }

    /// `{"rows": {"table": [...]}}` or `{"error": "..."}`.
    pub fn into_json(self) -> Value {
        match self {
            EventResult::Rows(tables) => {
                let rows: Map<String, Value> = tables
                    .into_iter()
                    .map(|(t, rows)| (t, Value::Array(rows.into_iter().map(Value::Object).collect())))
                    .collect();
                json!({ "rows": rows })
            }
            EventResult::Error(e) => json!({ "error": e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_reads_the_enriched_document() {
        let doc = json!({"event": "A.B", "id": "x", "data": {"account_id": "acc"}, "resources": [{"id": 1}]});
        let e = Event::new(&doc).unwrap();
        assert_eq!(e.event_type(), "A.B");
        assert_eq!(e.data_str("account_id"), Some("acc"));
        assert_eq!(e.resources().unwrap().len(), 1);
        assert_eq!(e.skipped(), None);
        assert!(Event::new(&json!([])).is_err());
        let bad = json!({"resources": {}});
        assert!(Event::new(&bad).unwrap().resources().is_err());
    }

    #[test]
    fn results_serialise_as_the_contract_says() {
        let mut r = EventResult::empty();
        assert_eq!(r.clone().into_json(), json!({"rows": {}}));
        let mut row = Row::new();
        row.insert("id".into(), json!("a"));
        r.push("t", row);
        assert_eq!(r.clone().into_json(), json!({"rows": {"t": [{"id": "a"}]}}));
        assert_eq!(EventResult::error("bad").into_json(), json!({"error": "bad"}));
    }
}
