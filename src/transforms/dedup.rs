//! `type = "dedup"`: the admission stage that names each delivery's identity. It picks the key (`field`,
//! default the envelope `id`) and its lifetime (`ttl`); the journal stores the key in the same atomic write
//! as the event and answers "duplicate" for a key it already holds, so a key is never marked seen for an
//! event that was not stored. This module only decides the key; it never stores anything itself.

use std::time::Duration;

use crate::config::{Diagnostics, Fields};
use crate::envelope::Envelope;

/// Default key lifetime: longer than InsightIQ's ~6 h retry horizon, with a wide margin.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 86_400);

/// `[transforms.<name>]` with `type = "dedup"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupConfig {
    /// `field`: dotted path of the key in the envelope (default `id`).
    pub field: String,
    /// `ttl`: how long a key is remembered (default `7d`; must exceed the sender's retry horizon).
    pub ttl: Duration,
}

impl DedupConfig {
    /// Reads the stage's keys.
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let field = f.string_or(d, "field", "id");
        if field.is_empty() || field.split('.').any(str::is_empty) {
            d.error(f.value_span("field"), format!("{}.field must be a dotted path like `id` or `data.id`", f.path()));
        }
        let ttl = f.duration(d, "ttl", DEFAULT_TTL);
        if ttl < Duration::from_secs(6 * 3600) {
            d.error(
                f.value_span("ttl"),
                format!(
                    "{}.ttl must be at least 6h: InsightIQ retries for about 6 hours, so a shorter TTL lets retries through as new events",
                    f.path()
                ),
            );
        }
        Some(Self { field, ttl })
    }
}

/// A built `dedup` stage.
#[derive(Debug, Clone)]
pub struct Dedup {
    field: String,
    ttl_micros: i64,
}

/// A delivery's identity and how long to remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    /// The key.
    pub key: String,
    /// Lifetime in microseconds.
    pub ttl_micros: i64,
}

impl Dedup {
    /// Builds the stage.
    pub fn build(config: &DedupConfig) -> Self {
        Self { field: config.field.clone(), ttl_micros: i64::try_from(config.ttl.as_micros()).unwrap_or(i64::MAX) }
    }

    /// The key of `envelope`, or `None` when the field is absent (the source then answers 400: a delivery that
    /// cannot be deduplicated must not be stored, or every retry would land again).
    pub fn key(&self, envelope: &Envelope) -> Option<DedupKey> {
        envelope.field(&self.field).map(|key| DedupKey { key, ttl_micros: self.ttl_micros })
    }

    /// The configured field, for messages.
    pub fn field(&self) -> &str {
        &self.field
    }
}
