//! hooklake's shipped plugin: InsightIQ resources, as the enrich stage fetched them, to lake tables.
//!
//! One row per resource per event, in the table its event is routed to ([`tables`]). An event that was not
//! enriched (`skipped`) or has no resources gives no rows. A resource that is not an object, or a field of the
//! wrong JSON type for its column, makes the event's result an error naming the field.

#![deny(unsafe_code)]

pub mod tables;

use hooklake_plugin::serde_json::{Map, Value};
use hooklake_plugin::{conform, describe_value, pattern_matches, Describe, Event, EventResult, Plugin, Row};

use crate::tables::{tables, Mapped, TableSpec};

/// The plugin.
pub struct InsightIq;

impl Plugin for InsightIq {
    fn describe() -> Describe {
        describe_of(&tables())
    }

    fn transform(events: Vec<Value>) -> Result<Vec<EventResult>, String> {
        let tables = tables();
        Ok(events.into_iter().map(|doc| map_event(&tables, doc)).collect())
    }
}

hooklake_plugin::hooklake_plugin!(InsightIq);

/// The describe document of these tables.
pub fn describe_of(tables: &[TableSpec]) -> Describe {
    let mut d = Describe::new("insightiq", env!("CARGO_PKG_VERSION"));
    for t in tables {
        d = d.route(t.events, t.name);
    }
    for t in tables {
        d = d.table(t.name, t.columns.iter().map(|m| m.column.clone()).collect());
    }
    d
}

/// The result for one enriched event. Takes the document, so field values move into rows without copies.
pub fn map_event(tables: &[TableSpec], mut doc: Value) -> EventResult {
    let (table, account) = {
        let event = match Event::new(&doc) {
            Ok(event) => event,
            Err(e) => return EventResult::error(e),
        };
        if event.skipped().is_some() {
            return EventResult::empty();
        }
        let event_type = event.event_type();
        let table = match tables.iter().find(|t| t.events.iter().any(|p| pattern_matches(p, event_type))) {
            Some(table) => table,
            // Not ours: the host does not send such events, but no rows is the right answer anyway.
            None => return EventResult::empty(),
        };
        if let Err(e) = event.resources() {
            return EventResult::error(e);
        }
        (table, event.data_str("account_id").filter(|a| !a.is_empty()).map(str::to_owned))
    };
    let resources = match doc.get_mut("resources").map(Value::take) {
        Some(Value::Array(resources)) => resources,
        _ => Vec::new(),
    };
    let mut result = EventResult::empty();
    for (i, resource) in resources.into_iter().enumerate() {
        let id = resource.get("id").and_then(Value::as_str).map(|id| format!(" (id {id})")).unwrap_or_default();
        match map_resource(table, resource) {
            Ok(mut row) => {
                if let (Some(account), "audience") = (&account, table.name) {
                    // The audience is fetched by account: the event's account id is the one that matters.
                    row.insert("account_id".to_owned(), Value::String(account.clone()));
                }
                result.push(table.name, row);
            }
            Err(e) => return EventResult::error(format!("{} resources[{i}]{id}: {e}", table.name)),
        }
    }
    result
}

/// One row of `table` from one resource.
fn map_resource(table: &TableSpec, resource: Value) -> Result<Row, String> {
    let mut resource = match resource {
        Value::Object(resource) => resource,
        other => return Err(format!("the resource is {}, not an object", describe_value(&other))),
    };
    let mut row = Map::new();
    for Mapped { column, path } in &table.columns {
        let value = take(&mut resource, path)?;
        row.insert(column.name.clone(), conform(value, &column.ty, column.nullable, path)?);
    }
    Ok(row)
}

/// Takes the value at a dotted `path` (`user.id`) out of `resource`: null when a step is missing or null, an error
/// when a step on the way is not an object.
fn take(resource: &mut Map<String, Value>, path: &str) -> Result<Value, String> {
    let mut object = resource;
    let mut walked = 0;
    for step in path.split('.') {
        walked += step.len() + 1;
        if walked > path.len() {
            // The last step: the value itself.
            return Ok(object.remove(step).unwrap_or(Value::Null));
        }
        object = match object.get_mut(step) {
            None | Some(Value::Null) => return Ok(Value::Null),
            Some(Value::Object(inner)) => inner,
            Some(other) => return Err(format!("{} is {}, not an object", &path[..walked - 1], describe_value(other))),
        };
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests;
