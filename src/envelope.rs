//! The webhook envelope `{"event", "name", "id", "data"}`: parsed from the raw body once, after the signature
//! is checked, to find the event type and the dedup key. The raw bytes stay the record of truth; this is only
//! an index into them.

use serde_json::Value;

/// Why a body is not an envelope (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not UTF-8.
    #[error("body is not valid JSON: {reason}")]
    NotJson {
        /// The parser's complaint (position and kind, never body content).
        reason: String,
    },
    /// JSON, but not an object.
    #[error("body must be a JSON object, not {found}")]
    NotObject {
        /// What was found (`an array`, …).
        found: &'static str,
    },
    /// A required field is absent, empty or not a string.
    #[error("body has no string field `{field}`")]
    MissingField {
        /// The field.
        field: &'static str,
    },
}

/// A parsed envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The event type (`CONTENTS.ADDED`).
    pub event: String,
    /// The delivery id, stable across retries.
    pub id: String,
    /// The human name (`contents added`), when sent.
    pub name: Option<String>,
    value: Value,
}

impl Envelope {
    /// Parses a raw body.
    ///
    /// # Errors
    /// [`EnvelopeError`] when the body is not a JSON object with string `event` and `id`.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson { reason: short_reason(&e) })?;
        let Value::Object(map) = &value else {
            return Err(EnvelopeError::NotObject { found: kind(&value) });
        };
        let string = |field: &'static str| -> Result<String, EnvelopeError> {
            match map.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(EnvelopeError::MissingField { field }),
            }
        };
        let event = string("event")?;
        let id = string("id")?;
        let name = map.get("name").and_then(Value::as_str).map(str::to_owned);
        Ok(Self { event, id, name, value })
    }

    /// The value at a dotted path (`id`, `data.account_id`) as a string key: strings as they are, numbers and
    /// booleans as their JSON text; `None` for missing, null, objects and arrays.
    pub fn field(&self, path: &str) -> Option<String> {
        let mut v = &self.value;
        for part in path.split('.') {
            v = v.get(part)?;
        }
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn short_reason(e: &serde_json::Error) -> String {
    // serde_json's Display can quote input ("invalid type: string \"…\""): keep only the category and position.
    let category = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_documented_envelope() {
        let body =
            br#"{"event":"CONTENTS.ADDED","name":"contents added","id":"674c9030","data":{"account_id":"2b33","n":7}}"#;
        let e = Envelope::parse(body).expect("valid");
        assert_eq!(e.event, "CONTENTS.ADDED");
        assert_eq!(e.id, "674c9030");
        assert_eq!(e.name.as_deref(), Some("contents added"));
        assert_eq!(e.field("data.account_id").as_deref(), Some("2b33"));
        assert_eq!(e.field("data.n").as_deref(), Some("7"));
        assert_eq!(e.field("data.none"), None);
        assert_eq!(e.field("data"), None);
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        assert!(matches!(Envelope::parse(b"{not json"), Err(EnvelopeError::NotJson { .. })));
        assert!(matches!(Envelope::parse(b"[1,2]"), Err(EnvelopeError::NotObject { found: "an array" })));
        assert!(matches!(Envelope::parse(b"\"x\""), Err(EnvelopeError::NotObject { .. })));
        assert_eq!(Envelope::parse(br#"{"event":"A"}"#).err(), Some(EnvelopeError::MissingField { field: "id" }));
        assert_eq!(
            Envelope::parse(br#"{"id":"1","event":""}"#).err(),
            Some(EnvelopeError::MissingField { field: "event" })
        );
        assert_eq!(
            Envelope::parse(br#"{"id":5,"event":"A"}"#).err(),
            Some(EnvelopeError::MissingField { field: "id" })
        );
        assert!(matches!(Envelope::parse(b"{\"id\":\"\xff\xfe\"}"), Err(EnvelopeError::NotJson { .. })));
    }

    #[test]
    fn error_text_never_quotes_the_body() {
        let err = Envelope::parse(br#"{"event": secret-token}"#).expect_err("invalid");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
