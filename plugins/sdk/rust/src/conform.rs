//! Checking JSON values against declared types, so a plugin reports "engagement.like_count is a string, not an
//! int64" itself instead of leaving the host to reject the row.

use serde_json::{Map, Number, Value};

use crate::describe::{Column, Type};

/// `value` as a value of column type `ty`, or why it is not one. `path` names the field in error messages.
///
/// - `null` (or a missing field) is accepted for nullable columns and fields.
/// - `int64` accepts integers in range, and floats with no fractional part (`3.0` becomes `3`).
/// - `float64` accepts any number (written back as a float).
/// - `string`, `timestamp` and `date` accept strings, as they are (the host parses timestamps and dates).
/// - `json` accepts anything.
/// - `list` accepts arrays whose items conform (items may be null).
/// - `struct` accepts objects; declared fields are checked, undeclared ones dropped (the API adds fields over time).
///
/// # Errors
/// `"<path> is <what it is>, not <type>"`.
pub fn conform(value: Value, ty: &Type, nullable: bool, path: &str) -> Result<Value, String> {
    conform_value(value, ty, nullable).map_err(|m| m.message(path))
}

/// The declared `fields` of `object`, each conformed; undeclared keys are dropped, missing ones are null.
///
/// # Errors
/// The first field that does not conform, named `path.field` (or `field` when `path` is empty).
pub fn conform_object(object: Map<String, Value>, fields: &[Column], path: &str) -> Result<Map<String, Value>, String> {
    conform_fields(object, fields).map_err(|m| m.message(path))
}

/// Why a value does not conform, and where below the value being checked (built only on failure, from the inside
/// out, so the common path allocates no field names).
struct Mismatch {
    /// `.field`, `[3]`… from the checked value down to the offending one.
    below: String,
    /// "is a string (\"12\"), not int64".
    what: String,
}

impl Mismatch {
    fn new(what: String) -> Self {
        Mismatch { below: String::new(), what }
    }

    fn under(mut self, step: String) -> Self {
        self.below.insert_str(0, &step);
        self
    }

    fn message(self, path: &str) -> String {
        let at = format!("{path}{}", self.below);
        format!("{} {}", at.trim_start_matches('.'), self.what)
    }
}

fn conform_value(value: Value, ty: &Type, nullable: bool) -> Result<Value, Mismatch> {
    let wrong = |value: &Value| Mismatch::new(format!("is {}, not {}", describe_value(value), ty.label()));
    match (ty, value) {
        (_, Value::Null) if nullable => Ok(Value::Null),
        (_, Value::Null) => Err(Mismatch::new(format!("is null, not a {}", ty.label()))),
        (Type::String | Type::Timestamp | Type::Date, value @ Value::String(_)) => Ok(value),
        (Type::Bool, value @ Value::Bool(_)) => Ok(value),
        (Type::Int64, Value::Number(n)) => {
            int64(&n).map(Value::from).ok_or_else(|| Mismatch::new(format!("({n}) is not an int64")))
        }
        (Type::Float64, Value::Number(n)) => Ok(n.as_f64().map_or(Value::Null, Value::from)),
        (Type::Json, value) => Ok(value),
        (Type::List(item), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                out.push(conform_value(v, item, true).map_err(|m| m.under(format!("[{i}]")))?);
            }
            Ok(Value::Array(out))
        }
        (Type::Struct(fields), Value::Object(object)) => conform_fields(object, fields).map(Value::Object),
        (_, value) => Err(wrong(&value)),
    }
}

fn conform_fields(mut object: Map<String, Value>, fields: &[Column]) -> Result<Map<String, Value>, Mismatch> {
    let mut out = Map::new();
    for f in fields {
        let v = object.remove(&f.name).unwrap_or(Value::Null);
        let v = conform_value(v, &f.ty, f.nullable).map_err(|m| m.under(format!(".{}", f.name)))?;
        out.insert(f.name.clone(), v);
    }
    Ok(out)
}

/// An integral number that fits an i64.
fn int64(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None; // above i64::MAX
    }
    let f = n.as_f64()?;
    // 2^63 is exactly representable as an f64; anything at or above it does not fit.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// "a string (\"12\")", "an object"… for error messages; long values are cut.
pub fn describe_value(v: &Value) -> String {
    let quote =
        |s: String| if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s };
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a bool ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({})", quote(format!("{s:?}"))),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::describe::col;

    #[test]
    fn scalars_conform_or_say_why_not() {
        assert_eq!(conform(json!(3), &Type::Int64, true, "n"), Ok(json!(3)));
        assert_eq!(conform(json!(3.0), &Type::Int64, true, "n"), Ok(json!(3)));
        assert!(conform(json!(3.5), &Type::Int64, true, "n").unwrap_err().contains("n (3.5) is not an int64"));
        assert!(conform(json!(u64::MAX), &Type::Int64, true, "n").is_err());
        assert_eq!(conform(json!(2), &Type::Float64, true, "x"), Ok(json!(2.0)));
        assert_eq!(conform(json!("12"), &Type::Int64, true, "n"), Err("n is a string (\"12\"), not int64".to_owned()));
        assert_eq!(conform(json!(null), &Type::String, true, "s"), Ok(json!(null)));
        assert!(conform(json!(null), &Type::String, false, "s").is_err());
        assert_eq!(conform(json!({"a": [1]}), &Type::Json, true, "j"), Ok(json!({"a": [1]})));
        assert!(conform(json!(1), &Type::Timestamp, true, "t").is_err());
    }

    #[test]
    fn structs_keep_declared_fields_and_lists_check_items() {
        let ty = Type::structure(vec![col("a", Type::Int64), col("b", Type::list(Type::String))]);
        assert_eq!(conform(json!({"a": 1, "extra": true}), &ty, true, "s"), Ok(json!({"a": 1, "b": null})));
        assert_eq!(
            conform(json!({"b": ["x", 2]}), &ty, true, "s"),
            Err("s.b[1] is a number (2), not string".to_owned())
        );
        assert!(conform(json!([1]), &ty, true, "s").unwrap_err().contains("s is a list, not struct"));
        let nested = Type::list(Type::structure(vec![col("n", Type::structure(vec![col("x", Type::Bool)]))]));
        assert_eq!(
            conform(json!([{"n": {"x": true}}, {"n": {"x": 1}}]), &nested, true, "top"),
            Err("top[1].n.x is a number (1), not bool".to_owned())
        );
        assert_eq!(
            conform_object(Map::new(), &[col("r", Type::Bool).required()], ""),
            Err("r is null, not a bool".into())
        );
    }
}
