//! Declared table schemas (`spec/plugins.md`, "Describe"): the column types a plugin may declare, their Arrow
//! types in the lake, and the check that turns a plugin's row into exactly that shape (or says which field does
//! not fit, so only that event goes to the dead letters).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::clock::parse_timestamp;
use crate::sinks::parquet::{host_fields, timestamp_type};

/// A column type a plugin can declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// true / false.
    Bool,
    /// A 64-bit integer.
    Int64,
    /// A double.
    Float64,
    /// µs since the epoch, UTC; rows may give the InsightIQ formats or RFC 3339 text, or µs as a number.
    Timestamp,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// Any JSON value, stored as its JSON text.
    Json,
    /// A list of one type.
    List(Box<ColumnType>),
    /// Named fields.
    Struct(Vec<Column>),
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// May it be null (default true).
    pub nullable: bool,
}

/// Columns the host adds to every row; a plugin may neither declare nor emit them.
pub const HOST_COLUMNS: [&str; 4] = ["_event_id", "_event_type", "_received_at", "_seq"];

impl ColumnType {
    /// Reads a type from the describe document.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(v: &Value, at: &str) -> Result<Self, String> {
        match v {
            Value::String(s) => match s.as_str() {
                "string" => Ok(Self::String),
                "bool" => Ok(Self::Bool),
                "int64" => Ok(Self::Int64),
                "float64" => Ok(Self::Float64),
                "timestamp" => Ok(Self::Timestamp),
                "date" => Ok(Self::Date),
                "json" => Ok(Self::Json),
                other => Err(format!(
                    "{at}: unknown type `{other}` (known: string, bool, int64, float64, timestamp, date, json, {{\"list\": T}}, {{\"struct\": [...]}})"
                )),
            },
            Value::Object(o) if o.len() == 1 && o.contains_key("list") => {
                Ok(Self::List(Box::new(Self::parse(&o["list"], &format!("{at}.list"))?)))
            }
            Value::Object(o) if o.len() == 1 && o.contains_key("struct") => {
                Ok(Self::Struct(parse_columns(&o["struct"], &format!("{at}.struct"))?))
            }
            other => Err(format!("{at}: a type is a name or {{\"list\": T}} / {{\"struct\": [...]}}, not {other}")),
        }
    }

    /// The Arrow type of the column in the lake.
    pub fn arrow(&self) -> DataType {
        match self {
            Self::String | Self::Json => DataType::Utf8,
            Self::Bool => DataType::Boolean,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Timestamp => timestamp_type(),
            Self::Date => DataType::Date32,
            Self::List(t) => DataType::List(Arc::new(Field::new("item", t.arrow(), true))),
            Self::Struct(cols) => DataType::Struct(Fields::from(cols.iter().map(Column::field).collect::<Vec<_>>())),
        }
    }
}

impl Column {
    fn field(&self) -> Field {
        Field::new(&self.name, self.ty.arrow(), self.nullable)
    }
}

/// Reads a column list (`[{"name", "type", "nullable"?}]`), checking names.
///
/// # Errors
/// A message naming the first problem.
pub fn parse_columns(v: &Value, at: &str) -> Result<Vec<Column>, String> {
    let list = v.as_array().ok_or_else(|| format!("{at}: columns must be a list"))?;
    let mut out: Vec<Column> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let name = c.get("name").and_then(Value::as_str).ok_or_else(|| format!("{here}: needs a `name`"))?;
        if name.is_empty() || name.len() > 128 || name.chars().any(|ch| ch.is_control() || ch == '.') {
            return Err(format!("{here}: `{name}` is not a usable column name"));
        }
        if HOST_COLUMNS.contains(&name) || name.starts_with('_') {
            return Err(format!("{here}: `{name}`: names starting with `_` are the host's"));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(format!("{at}: column `{name}` is declared twice"));
        }
        let ty = ColumnType::parse(c.get("type").ok_or_else(|| format!("{here}: `{name}` needs a `type`"))?, &here)?;
        let nullable = match c.get("nullable") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("{here}: `nullable` must be true or false, not {other}")),
        };
        out.push(Column { name: name.to_owned(), ty, nullable });
    }
    Ok(out)
}

/// The file schema of a declared table: the host columns, then the plugin's.
pub fn table_schema(columns: &[Column]) -> SchemaRef {
    let mut fields = host_fields();
    fields.extend(columns.iter().map(Column::field));
    Arc::new(Schema::new(fields))
}

/// Checks `row` against `columns` and returns it in the shape the Arrow decoder takes: exactly the declared
/// columns, timestamps as µs numbers, dates as day numbers, `json` values as their text.
///
/// # Errors
/// The path of the first field that does not fit (`engagement.like_count: expected int64, got "7"`).
pub fn normalize_row(row: Value, columns: &[Column]) -> Result<Map<String, Value>, String> {
    let Value::Object(mut row) = row else { return Err(format!("a row must be an object, not {}", kind(&row))) };
    let out = normalize_fields(&mut row, columns, "")?;
    if let Some(extra) = row.keys().next() {
        return Err(format!("column `{extra}` is not declared"));
    }
    Ok(out)
}

fn normalize_fields(row: &mut Map<String, Value>, columns: &[Column], at: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(columns.len());
    for col in columns {
        let path = if at.is_empty() { col.name.clone() } else { format!("{at}.{}", col.name) };
        let v = row.remove(&col.name).unwrap_or(Value::Null);
        if v.is_null() && !col.nullable {
            return Err(format!("{path}: is null but declared not nullable"));
        }
        out.insert(col.name.clone(), normalize(v, &col.ty, &path)?);
    }
    Ok(out)
}

fn normalize(v: Value, ty: &ColumnType, path: &str) -> Result<Value, String> {
    if v.is_null() {
        return Ok(v);
    }
    let wrong = |v: &Value, want: &str| format!("{path}: expected {want}, got {}", shown(v));
    match ty {
        ColumnType::String => match v {
            Value::String(_) => Ok(v),
            other => Err(wrong(&other, "string")),
        },
        ColumnType::Bool => match v {
            Value::Bool(_) => Ok(v),
            other => Err(wrong(&other, "bool")),
        },
        ColumnType::Int64 => match v.as_i64() {
            Some(_) => Ok(v),
            None => Err(wrong(&v, "int64")),
        },
        ColumnType::Float64 => match v.as_f64() {
            Some(f) => Ok(Value::from(f)),
            None => Err(wrong(&v, "float64")),
        },
        ColumnType::Timestamp => match &v {
            Value::String(s) => parse_timestamp(s).map(Value::from).ok_or_else(|| wrong(&v, "a timestamp")),
            Value::Number(n) if n.is_i64() => Ok(v),
            _ => Err(wrong(&v, "a timestamp")),
        },
        ColumnType::Date => match v.as_str().and_then(days_of) {
            Some(days) => Ok(Value::from(days)),
            None => Err(wrong(&v, "a date (YYYY-MM-DD)")),
        },
        ColumnType::Json => Ok(Value::String(v.to_string())),
        ColumnType::List(item) => match v {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| normalize(x, item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(wrong(&other, "a list")),
        },
        ColumnType::Struct(cols) => match v {
            Value::Object(mut o) => {
                let out = normalize_fields(&mut o, cols, path)?;
                match o.keys().next() {
                    Some(extra) => Err(format!("{path}.{extra}: is not declared")),
                    None => Ok(Value::Object(out)),
                }
            }
            other => Err(wrong(&other, "an object")),
        },
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn days_of(s: &str) -> Option<i64> {
    let micros = parse_timestamp(&format!("{s}T00:00:00Z"))?;
    (s.len() == 10).then_some(micros.div_euclid(86_400_000_000))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for a message: short, never a whole document.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 { format!("{} …", text.chars().take(40).collect::<String>()) } else { text }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn columns(v: Value) -> Vec<Column> {
        parse_columns(&v, "t").unwrap()
    }

    #[test]
    fn every_declared_type_maps_to_its_arrow_type() {
        let cols = columns(json!([
            {"name": "id", "type": "string", "nullable": false},
            {"name": "at", "type": "timestamp"},
            {"name": "tags", "type": {"list": "string"}},
            {"name": "engagement", "type": {"struct": [{"name": "likes", "type": "int64"}, {"name": "extra", "type": "json"}]}},
            {"name": "day", "type": "date"},
            {"name": "rate", "type": "float64"},
            {"name": "ok", "type": "bool"}
        ]));
        let schema = table_schema(&cols);
        assert_eq!(schema.fields().len(), 11);
        assert_eq!(schema.field_with_name("at").unwrap().data_type(), &timestamp_type());
        assert!(!schema.field_with_name("id").unwrap().is_nullable());
        assert!(matches!(schema.field_with_name("tags").unwrap().data_type(), DataType::List(_)));
        assert!(
            matches!(schema.field_with_name("engagement").unwrap().data_type(), DataType::Struct(f) if f.len() == 2)
        );
        assert_eq!(schema.field_with_name("day").unwrap().data_type(), &DataType::Date32);
    }

    #[test]
    fn bad_declarations_are_named() {
        let err = |v: Value| parse_columns(&v, "tables.t").unwrap_err();
        assert!(err(json!([{"name": "x", "type": "uuid"}])).contains("unknown type `uuid`"));
        assert!(err(json!([{"name": "_seq", "type": "int64"}])).contains("the host's"));
        assert!(err(json!([{"name": "a", "type": "int64"}, {"name": "a", "type": "string"}])).contains("twice"));
        assert!(err(json!([{"type": "int64"}])).contains("needs a `name`"));
        assert!(err(json!([{"name": "a", "type": {"map": "string"}}])).contains("a type is a name"));
    }

    #[test]
    fn rows_are_checked_and_shaped_for_the_decoder() {
        let cols = columns(json!([
            {"name": "id", "type": "string", "nullable": false},
            {"name": "at", "type": "timestamp"},
            {"name": "day", "type": "date"},
            {"name": "engagement", "type": {"struct": [{"name": "likes", "type": "int64"}, {"name": "extra", "type": "json"}]}},
            {"name": "rate", "type": "float64"}
        ]));
        let row = json!({"id": "a", "at": "2021-10-25 16:45:26.761622", "day": "1970-01-02",
                         "engagement": {"likes": 3, "extra": {"x": [1]}}, "rate": 2});
        let out = normalize_row(row, &cols).unwrap();
        assert_eq!(out["at"], json!(1_635_180_326_761_622_i64));
        assert_eq!(out["day"], json!(1));
        assert_eq!(out["engagement"]["extra"], json!("{\"x\":[1]}"));
        assert_eq!(out["rate"], json!(2.0));
        let missing = normalize_row(json!({"id": "b"}), &cols).unwrap();
        assert_eq!(missing["at"], Value::Null, "absent columns are null");

        let err = |row: Value| normalize_row(row, &cols).unwrap_err();
        assert_eq!(
            err(json!({"id": "a", "engagement": {"likes": "7"}})),
            "engagement.likes: expected int64, got \"7\""
        );
        assert_eq!(err(json!({"id": null})), "id: is null but declared not nullable");
        assert_eq!(err(json!({"id": "a", "surprise": 1})), "column `surprise` is not declared");
        assert_eq!(err(json!({"id": "a", "at": "yesterday"})), "at: expected a timestamp, got \"yesterday\"");
        assert_eq!(err(json!([1])), "a row must be an object, not a list");
    }
}
