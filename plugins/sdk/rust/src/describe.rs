//! The describe document (`spec/plugins.md`, "Describe"): the plugin's name and version, which events it claims
//! (routes) and the tables it writes (columns with types).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// Columns the host adds to every row; a plugin must neither declare nor emit them.
pub const HOST_COLUMNS: [&str; 4] = ["_event_id", "_event_type", "_received_at", "_seq"];

/// A column (or struct field) type.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// UTF-8 text. Ids and enums are strings.
    String,
    /// `true` / `false`.
    Bool,
    /// A signed 64-bit integer: counts.
    Int64,
    /// A double: money, rates, durations in hours.
    Float64,
    /// A timestamp (µs, UTC). Emit the source's string as is: the host parses the InsightIQ formats and RFC 3339.
    Timestamp,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// Any JSON value, stored as a JSON string.
    Json,
    /// A list of values of one type.
    List(Box<Type>),
    /// An object with declared fields.
    Struct(Vec<Column>),
}

impl Type {
    /// `{"list": item}`.
    pub fn list(item: Type) -> Type {
        Type::List(Box::new(item))
    }

    /// `{"struct": fields}`.
    pub fn structure(fields: Vec<Column>) -> Type {
        Type::Struct(fields)
    }

    /// The type as it appears in the describe document.
    pub fn to_json(&self) -> Value {
        match self {
            Type::String => json!("string"),
            Type::Bool => json!("bool"),
            Type::Int64 => json!("int64"),
            Type::Float64 => json!("float64"),
            Type::Timestamp => json!("timestamp"),
            Type::Date => json!("date"),
            Type::Json => json!("json"),
            Type::List(item) => json!({ "list": item.to_json() }),
            Type::Struct(fields) => json!({ "struct": fields.iter().map(Column::to_json).collect::<Vec<_>>() }),
        }
    }

    /// A short name for error messages: `string`, `list<string>`, `struct`…
    pub fn label(&self) -> String {
        match self {
            Type::List(item) => format!("list<{}>", item.label()),
            Type::Struct(_) => "struct".to_owned(),
            other => other.to_json().as_str().unwrap_or("?").to_owned(),
        }
    }
}

/// A table column or a struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name: the key in each row object.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Whether it may be null (or absent). True unless [`Column::required`] was called.
    pub nullable: bool,
}

impl Column {
    /// A nullable column.
    pub fn new(name: &str, ty: Type) -> Self {
        Column { name: name.to_owned(), ty, nullable: true }
    }

    /// The same column, not nullable.
    pub fn required(mut self) -> Self {
        self.nullable = false;
        self
    }

    /// `{"name", "type", "nullable"}`.
    pub fn to_json(&self) -> Value {
        json!({ "name": self.name, "type": self.ty.to_json(), "nullable": self.nullable })
    }
}

/// Shorthand for [`Column::new`].
pub fn col(name: &str, ty: Type) -> Column {
    Column::new(name, ty)
}

/// Events routed to a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Exact event names (`CONTENTS.ADDED`) or family patterns (`ACCOUNTS.*`).
    pub events: Vec<String>,
    /// The table their rows go to (declared in [`Describe::tables`]).
    pub table: String,
}

/// A declared table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Its name (the lake folder).
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

/// The whole describe document. Build it with [`Describe::new`], [`Describe::route`] and [`Describe::table`].
#[derive(Debug, Clone, PartialEq)]
pub struct Describe {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Which events it claims, and where their rows go.
    pub routes: Vec<Route>,
    /// The tables it writes.
    pub tables: Vec<Table>,
}

impl Describe {
    /// An empty description.
    pub fn new(name: &str, version: &str) -> Self {
        Describe { name: name.to_owned(), version: version.to_owned(), routes: Vec::new(), tables: Vec::new() }
    }

    /// Adds a route: these event names or patterns go to `table`.
    pub fn route(mut self, events: &[&str], table: &str) -> Self {
        self.routes.push(Route { events: events.iter().map(|e| (*e).to_owned()).collect(), table: table.to_owned() });
        self
    }

    /// Declares a table.
    pub fn table(mut self, name: &str, columns: Vec<Column>) -> Self {
        self.tables.push(Table { name: name.to_owned(), columns });
        self
    }

    /// The declared table `name`.
    pub fn find_table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The table an event type is routed to, if any route claims it.
    pub fn table_for(&self, event: &str) -> Option<&str> {
        self.routes.iter().find(|r| r.events.iter().any(|p| pattern_matches(p, event))).map(|r| r.table.as_str())
    }

    /// The describe document.
    pub fn to_json(&self) -> Value {
        let routes: Vec<Value> = self.routes.iter().map(|r| json!({ "events": r.events, "table": r.table })).collect();
        let mut tables = Map::new();
        for t in &self.tables {
            tables.insert(t.name.clone(), Value::Array(t.columns.iter().map(Column::to_json).collect()));
        }
        json!({ "name": self.name, "version": self.version, "routes": routes, "tables": tables })
    }

    /// Checks what the host would reject at load: routes to undeclared tables, bad patterns, an event claimed
    /// twice, duplicate or reserved column names, empty structs.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.version.is_empty() {
            return Err("describe: name and version must not be empty".to_owned());
        }
        let mut seen_tables = BTreeSet::new();
        for t in &self.tables {
            if t.name.is_empty() || !seen_tables.insert(t.name.as_str()) {
                return Err(format!("table {:?} is empty-named or declared twice", t.name));
            }
            check_fields(&t.columns, &t.name, true)?;
        }
        let mut patterns = BTreeSet::new();
        for r in &self.routes {
            if self.find_table(&r.table).is_none() {
                return Err(format!("route to table {:?}, which is not declared", r.table));
            }
            for p in &r.events {
                if !valid_pattern(p) {
                    return Err(format!("event pattern {p:?} is neither an exact name nor FAMILY.*"));
                }
                if !patterns.insert(p.as_str()) {
                    return Err(format!("event pattern {p:?} appears twice"));
                }
            }
        }
        Ok(())
    }
}

fn check_fields(fields: &[Column], at: &str, top: bool) -> Result<(), String> {
    if fields.is_empty() {
        return Err(format!("{at}: no columns or fields"));
    }
    let mut names = BTreeSet::new();
    for f in fields {
        if f.name.is_empty() || !names.insert(f.name.as_str()) {
            return Err(format!("{at}: column {:?} is empty-named or declared twice", f.name));
        }
        if top && HOST_COLUMNS.contains(&f.name.as_str()) {
            return Err(format!("{at}: column {} is added by the host", f.name));
        }
        let mut ty = &f.ty;
        while let Type::List(item) = ty {
            ty = item;
        }
        if let Type::Struct(inner) = ty {
            check_fields(inner, &format!("{at}.{}", f.name), false)?;
        }
    }
    Ok(())
}

/// An exact event name, or `FAMILY.*`.
fn valid_pattern(p: &str) -> bool {
    match p.strip_suffix(".*") {
        Some(family) => !family.is_empty() && !family.contains('*'),
        None => !p.is_empty() && !p.contains('*'),
    }
}

/// Whether an event type matches a route pattern: equal, or `FAMILY.*` and the event is `FAMILY.<anything>`.
pub fn pattern_matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(family) => {
            event.len() > family.len() + 1 && event.starts_with(family) && event[family.len()..].starts_with('.')
        }
        None => pattern == event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_names_and_families() {
        assert!(pattern_matches("ACCOUNTS.*", "ACCOUNTS.CONNECTED"));
        assert!(!pattern_matches("ACCOUNTS.*", "ACCOUNTS"));
        assert!(!pattern_matches("ACCOUNTS.*", "ACCOUNTS."));
        assert!(!pattern_matches("CONTENTS.*", "CONTENTS_COMMENTS.ADDED"));
        assert!(pattern_matches("CONTENTS.ADDED", "CONTENTS.ADDED"));
        assert!(!pattern_matches("CONTENTS.ADDED", "CONTENTS.ADDED2"));
    }

    #[test]
    fn the_document_has_the_documented_shape() {
        let d = Describe::new("p", "1")
            .route(&["A.*"], "t")
            .table("t", vec![col("id", Type::String).required(), col("tags", Type::list(Type::String))]);
        assert_eq!(
            d.to_json(),
            json!({"name": "p", "version": "1", "routes": [{"events": ["A.*"], "table": "t"}],
                   "tables": {"t": [{"name": "id", "type": "string", "nullable": false},
                                    {"name": "tags", "type": {"list": "string"}, "nullable": true}]}})
        );
        assert_eq!(d.check(), Ok(()));
        assert_eq!(d.table_for("A.B"), Some("t"));
        assert_eq!(d.table_for("B.A"), None);
    }

    #[test]
    fn check_finds_what_the_host_would_reject() {
        let t = || vec![col("id", Type::String)];
        assert!(Describe::new("p", "1").route(&["A.*"], "nope").table("t", t()).check().is_err());
        assert!(Describe::new("p", "1").route(&["A*"], "t").table("t", t()).check().is_err());
        assert!(Describe::new("p", "1").table("t", vec![col("_seq", Type::Int64)]).check().is_err());
        assert!(Describe::new("p", "1").table("t", vec![col("s", Type::structure(vec![]))]).check().is_err());
    }
}
