//! The webhook envelope `{"event", "name", "id", "data"}`: parsed from the raw body once, after the signature
//! is checked, to find the event type and the dedup key. The raw bytes stay the record of truth; this is only
//! an index into them.

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;

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
    body: bytes::Bytes,
}

/// The top-level fields admission needs, borrowed from the body; everything else (`data`) is checked for JSON
/// syntax and skipped without building values, which keeps the request path cheap.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
}

fn non_empty_string(raw: Option<&RawValue>) -> Option<String> {
    let s: Cow<'_, str> = serde_json::from_str(raw?.get()).ok()?;
    (!s.is_empty()).then(|| s.into_owned())
}

impl Envelope {
    /// Parses a raw body.
    ///
    /// # Errors
    /// [`EnvelopeError`] when the body is not UTF-8 JSON object with string `event` and `id`.
    pub fn parse(body: &bytes::Bytes) -> Result<Self, EnvelopeError> {
        // The whole body must be UTF-8, including parts the parser skips: the lake stores it as text.
        let text = std::str::from_utf8(body)
            .map_err(|e| EnvelopeError::NotJson { reason: format!("not UTF-8 at byte {}", e.valid_up_to()) })?;
        if !text.trim_start().starts_with('{') {
            let value: Value =
                serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson { reason: short_reason(&e) })?;
            return Err(EnvelopeError::NotObject { found: kind(&value) });
        }
        let head: Head<'_> =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson { reason: short_reason(&e) })?;
        let event = non_empty_string(head.event).ok_or(EnvelopeError::MissingField { field: "event" })?;
        let id = non_empty_string(head.id).ok_or(EnvelopeError::MissingField { field: "id" })?;
        let name = head.name.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        Ok(Self { event, id, name, body: body.clone() })
    }

    /// The value at a dotted path (`id`, `data.account_id`) as a string key: strings as they are, numbers and
    /// booleans as their JSON text; `None` for missing, null, objects and arrays.
    pub fn field(&self, path: &str) -> Option<String> {
        if path == "id" {
            return Some(self.id.clone());
        }
        // Other keys are rare (a custom `dedup.field`): parse the body fully only for them.
        let mut v: Value = serde_json::from_slice(&self.body).ok()?;
        for part in path.split('.') {
            v = v.get_mut(part)?.take();
        }
        match v {
            Value::String(s) => Some(s),
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
        let e = Envelope::parse(&bytes::Bytes::from_static(body)).expect("valid");
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
        assert!(matches!(
            Envelope::parse(&bytes::Bytes::from_static(b"{not json")),
            Err(EnvelopeError::NotJson { .. })
        ));
        assert!(matches!(
            Envelope::parse(&bytes::Bytes::from_static(b"[1,2]")),
            Err(EnvelopeError::NotObject { found: "an array" })
        ));
        assert!(matches!(Envelope::parse(&bytes::Bytes::from_static(b"\"x\"")), Err(EnvelopeError::NotObject { .. })));
        assert_eq!(
            Envelope::parse(&bytes::Bytes::from_static(br#"{"event":"A"}"#)).err(),
            Some(EnvelopeError::MissingField { field: "id" })
        );
        assert_eq!(
            Envelope::parse(&bytes::Bytes::from_static(br#"{"id":"1","event":""}"#)).err(),
            Some(EnvelopeError::MissingField { field: "event" })
        );
        assert_eq!(
            Envelope::parse(&bytes::Bytes::from_static(br#"{"id":5,"event":"A"}"#)).err(),
            Some(EnvelopeError::MissingField { field: "id" })
        );
        assert!(matches!(
            Envelope::parse(&bytes::Bytes::from_static(b"{\"id\":\"\xff\xfe\"}")),
            Err(EnvelopeError::NotJson { .. })
        ));
    }

    #[test]
    fn skipped_parts_are_still_checked_and_escapes_are_decoded() {
        let bad_utf8_in_data = bytes::Bytes::from_static(b"{\"event\":\"A\",\"id\":\"1\",\"data\":{\"t\":\"\xff\"}}");
        assert!(matches!(Envelope::parse(&bad_utf8_in_data), Err(EnvelopeError::NotJson { .. })));
        let bad_syntax_in_data = bytes::Bytes::from_static(br#"{"event":"A","id":"1","data":{"t": nope}}"#);
        assert!(matches!(Envelope::parse(&bad_syntax_in_data), Err(EnvelopeError::NotJson { .. })));
        let escaped = bytes::Bytes::from_static(br#"{"event":"A\u002eB","id":"x\"y","data":{}}"#);
        let e = Envelope::parse(&escaped).expect("valid");
        assert_eq!((e.event.as_str(), e.id.as_str()), ("A.B", "x\"y"));
        assert_eq!(e.field("id").as_deref(), Some("x\"y"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Envelope::parse(&bytes::Bytes::from(body));
        }
    }

    #[test]
    fn error_text_never_quotes_the_body() {
        let err = Envelope::parse(&bytes::Bytes::from_static(br#"{"event": secret-token}"#)).expect_err("invalid");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
