//! Prometheus text metrics, served at `GET /metrics`. Plain atomics: updating a metric on the request path is
//! one relaxed add. Names are `const`s here, in one place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::journal::JournalStats;

/// Requests answered, by source and status.
pub const HTTP_REQUESTS: &str = "hooklake_http_requests_total";
/// Deliveries stored in the journal.
pub const ACCEPTED: &str = "hooklake_events_accepted_total";
/// Deliveries answered as duplicates.
pub const DUPLICATES: &str = "hooklake_events_duplicate_total";
/// Group commits and the appends they carried.
pub const COMMITS: &str = "hooklake_journal_commits_total";
/// Appends carried by group commits.
pub const COMMITTED_APPENDS: &str = "hooklake_journal_committed_appends_total";
/// Group commit latency (transaction including fsync).
pub const COMMIT_SECONDS: &str = "hooklake_journal_commit_seconds";
/// Events held in the journal.
pub const JOURNAL_DEPTH: &str = "hooklake_journal_depth";
/// Bytes held in the journal.
pub const JOURNAL_BYTES: &str = "hooklake_journal_bytes";
/// Next journal sequence number.
pub const JOURNAL_NEXT_SEQ: &str = "hooklake_journal_next_seq";
/// Dedup keys held.
pub const DEDUP_KEYS: &str = "hooklake_dedup_keys";

/// Upper bounds of the commit latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024];

/// A fixed-bucket histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        self.render_labelled(out, name, "");
    }

    fn render_labelled(&self, out: &mut String, name: &str, labels: &str) {
        let (sep, braced) = if labels.is_empty() { ("", String::new()) } else { (",", format!("{{{labels}}}")) };
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {count}");
    }
}

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// Stored deliveries.
    pub accepted: AtomicU64,
    /// Duplicate deliveries.
    pub duplicates: AtomicU64,
}

impl SourceMetrics {
    /// Counts one answered request.
    pub fn answered(&self, status: u16) {
        // A short critical section per request; statuses are few. Poisoning only follows a panic elsewhere,
        // and a metric must never take the request path down with it.
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// Requests answered with `status` so far.
    pub fn count(&self, status: u16) -> u64 {
        self.by_status.lock().map(|m| m.get(&status).copied().unwrap_or(0)).unwrap_or(0)
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Rows written.
    pub rows: AtomicU64,
    /// Files committed.
    pub files: AtomicU64,
    /// Failed write attempts (each retried).
    pub upload_errors: AtomicU64,
    /// The sink's journal checkpoint (next seq to write).
    pub checkpoint: AtomicU64,
    /// Upload latency per file.
    pub upload_latency: Histogram,
    /// Set when the sink stopped with an error (it restarts with the process).
    pub stopped: std::sync::atomic::AtomicBool,
    /// Rows and files per table.
    tables: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl SinkMetrics {
    /// Counts one committed file of `rows` rows of `table`.
    pub fn wrote(&self, table: &str, rows: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        if let Ok(mut t) = self.tables.lock() {
            let (r, f) = t.entry(table.to_owned()).or_default();
            *r += rows;
            *f += 1;
        }
    }
}

/// Counters of one `wasm` stage's plugins (counted by the sinks that run them).
#[derive(Debug, Default)]
pub struct PluginMetrics {
    /// Calls of the mapper (one per file write, each a batch of events).
    pub calls: AtomicU64,
    /// Events given to the plugins.
    pub events: AtomicU64,
    /// Events the plugins failed (sent to the dead letters).
    pub dead_letters: AtomicU64,
    /// Latency of one mapper call.
    pub latency: Histogram,
}

impl PluginMetrics {
    /// Counts one mapper call over `events` events.
    pub fn mapped(&self, events: usize, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        self.latency.observe(took);
    }
}

/// Rows written, per table.
pub const TABLE_ROWS: &str = "hooklake_table_rows_total";
/// Files committed, per table.
pub const TABLE_FILES: &str = "hooklake_table_files_total";
/// Plugin mapper calls.
pub const PLUGIN_CALLS: &str = "hooklake_plugin_calls_total";
/// Events given to plugins.
pub const PLUGIN_EVENTS: &str = "hooklake_plugin_events_total";
/// Plugin errors (events dead-lettered).
pub const PLUGIN_ERRORS: &str = "hooklake_plugin_errors_total";
/// Plugin call latency.
pub const PLUGIN_CALL_SECONDS: &str = "hooklake_plugin_call_seconds";

/// Rows written by sinks.
pub const SINK_ROWS: &str = "hooklake_sink_rows_total";
/// Files committed by sinks.
pub const SINK_FILES: &str = "hooklake_sink_files_total";
/// Failed sink write attempts.
pub const SINK_ERRORS: &str = "hooklake_sink_write_errors_total";
/// Events acknowledged but not yet in a sink's files.
pub const SINK_LAG: &str = "hooklake_sink_checkpoint_lag";
/// Sink upload latency per file.
pub const SINK_UPLOAD_SECONDS: &str = "hooklake_sink_upload_seconds";

/// Counters of one `enrich` stage.
#[derive(Debug, Default)]
pub struct EnrichMetrics {
    /// HTTP requests sent (every attempt, every page).
    pub requests: AtomicU64,
    /// Calls answered (after retries).
    pub calls_ok: AtomicU64,
    /// Calls that failed for good (their events went to the dead letters).
    pub calls_failed: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
    /// Retries (after 429, 5xx, timeouts).
    pub retries: AtomicU64,
    /// Ids asked for.
    pub ids_requested: AtomicU64,
    /// Ids the API no longer knows.
    pub ids_missing: AtomicU64,
    /// Events handed on (enriched or passed through).
    pub events: AtomicU64,
    /// Events sent to the dead letters.
    pub dead_letters: AtomicU64,
    /// The stage's checkpoint (next seq not yet handed on).
    pub checkpoint: AtomicU64,
    /// Latency of a call, retries included.
    pub call_latency: Histogram,
}

/// HTTP requests an enrich stage sent.
pub const ENRICH_REQUESTS: &str = "hooklake_enrich_requests_total";
/// Enrich calls by outcome.
pub const ENRICH_CALLS: &str = "hooklake_enrich_calls_total";
/// 429 answers.
pub const ENRICH_THROTTLED: &str = "hooklake_enrich_throttled_total";
/// Retried API requests.
pub const ENRICH_RETRIES: &str = "hooklake_enrich_retries_total";
/// Ids asked for.
pub const ENRICH_IDS: &str = "hooklake_enrich_ids_requested_total";
/// Ids the API no longer knows.
pub const ENRICH_MISSING: &str = "hooklake_enrich_ids_missing_total";
/// Events an enrich stage handed on.
pub const ENRICH_EVENTS: &str = "hooklake_enrich_events_total";
/// Events sent to the dead letters.
pub const DEAD_LETTERS: &str = "hooklake_dead_letters_total";
/// Events not yet handed on by an enrich stage.
pub const ENRICH_BACKLOG: &str = "hooklake_enrich_backlog";
/// Enrich call latency.
pub const ENRICH_CALL_SECONDS: &str = "hooklake_enrich_call_seconds";

/// The state of hooklake's own InsightIQ webhook, as `webhook_watch` last saw it.
#[derive(Debug, Default)]
pub struct WebhookWatch {
    /// Polls of `GET /v1/webhooks` made.
    pub checks: AtomicU64,
    /// Polls or re-enables that failed (API down, bad credentials).
    pub errors: AtomicU64,
    /// Times the webhook was re-enabled.
    pub reactivations: AtomicU64,
    /// True while the webhook is missing or `is_active: false` (InsightIQ does not deliver).
    pub inactive: std::sync::atomic::AtomicBool,
}

/// Polls of the webhook watcher.
pub const WEBHOOK_CHECKS: &str = "hooklake_webhook_checks_total";
/// Failed polls or re-enables.
pub const WEBHOOK_ERRORS: &str = "hooklake_webhook_check_errors_total";
/// Re-enables of hooklake's webhook.
pub const WEBHOOK_REACTIVATIONS: &str = "hooklake_webhook_reactivations_total";
/// 1 when hooklake's webhook is inactive or missing at InsightIQ.
pub const WEBHOOK_INACTIVE: &str = "hooklake_webhook_inactive";

/// All metrics of a running pipeline.
#[derive(Debug, Default)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, Arc<SourceMetrics>>>,
    sinks: Mutex<BTreeMap<String, Arc<SinkMetrics>>>,
    enrich: Mutex<BTreeMap<String, Arc<EnrichMetrics>>>,
    plugins: Mutex<BTreeMap<String, Arc<PluginMetrics>>>,
    /// The webhook watcher's view, when one runs.
    pub webhook: Arc<WebhookWatch>,
    webhook_watched: std::sync::atomic::AtomicBool,
    /// Group commit latency.
    pub commit_latency: Histogram,
    commits: AtomicU64,
    committed_appends: AtomicU64,
}

impl Metrics {
    /// The metrics of source `name`, created on first use.
    pub fn source(&self, name: &str) -> Arc<SourceMetrics> {
        match self.sources.lock() {
            Ok(mut m) => Arc::clone(m.entry(name.to_owned()).or_default()),
            Err(_) => Arc::new(SourceMetrics::default()),
        }
    }

    /// The metrics of sink `name`, created on first use.
    pub fn sink(&self, name: &str) -> Arc<SinkMetrics> {
        match self.sinks.lock() {
            Ok(mut m) => Arc::clone(m.entry(name.to_owned()).or_default()),
            Err(_) => Arc::new(SinkMetrics::default()),
        }
    }

    /// The counters of enrich stage `name`.
    pub fn enrich(&self, name: &str) -> Arc<EnrichMetrics> {
        match self.enrich.lock() {
            Ok(mut m) => Arc::clone(m.entry(name.to_owned()).or_default()),
            Err(_) => Arc::new(EnrichMetrics::default()),
        }
    }

    /// The counters of `wasm` stage `name`.
    pub fn plugins(&self, name: &str) -> Arc<PluginMetrics> {
        match self.plugins.lock() {
            Ok(mut m) => Arc::clone(m.entry(name.to_owned()).or_default()),
            Err(_) => Arc::new(PluginMetrics::default()),
        }
    }

    /// The webhook watcher's state, marking that one runs (its metrics are rendered from then on).
    pub fn watch_webhook(&self) -> Arc<WebhookWatch> {
        self.webhook_watched.store(true, Ordering::Relaxed);
        Arc::clone(&self.webhook)
    }

    /// True when a watcher runs and hooklake's webhook is inactive or missing at InsightIQ.
    pub fn webhook_inactive(&self) -> bool {
        self.webhook_watched.load(Ordering::Relaxed) && self.webhook.inactive.load(Ordering::Relaxed)
    }

    /// Names of sinks that stopped with an error.
    pub fn stopped_sinks(&self) -> Vec<String> {
        self.sinks
            .lock()
            .map(|m| m.iter().filter(|(_, s)| s.stopped.load(Ordering::Relaxed)).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// Records one group commit of `appends` entries that took `took`.
    pub fn committed(&self, appends: usize, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_appends.fetch_add(appends as u64, Ordering::Relaxed);
        self.commit_latency.observe(took);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, journal: &JournalStats) -> String {
        let mut out = String::with_capacity(4096);
        let sources: Vec<(String, Arc<SourceMetrics>)> = self
            .sources
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
            .unwrap_or_default();
        header(&mut out, HTTP_REQUESTS, "counter", "Requests answered, by source and HTTP status.");
        for (name, s) in &sources {
            if let Ok(m) = s.by_status.lock() {
                for (status, n) in m.iter() {
                    let _ = writeln!(out, "{HTTP_REQUESTS}{{source=\"{name}\",status=\"{status}\"}} {n}");
                }
            }
        }
        header(&mut out, ACCEPTED, "counter", "Deliveries durably stored in the journal.");
        for (name, s) in &sources {
            let _ = writeln!(out, "{ACCEPTED}{{source=\"{name}\"}} {}", s.accepted.load(Ordering::Relaxed));
        }
        header(&mut out, DUPLICATES, "counter", "Deliveries of an already stored id (answered 200, not stored).");
        for (name, s) in &sources {
            let _ = writeln!(out, "{DUPLICATES}{{source=\"{name}\"}} {}", s.duplicates.load(Ordering::Relaxed));
        }
        header(&mut out, COMMITS, "counter", "Journal group commits (one fsync each).");
        let _ = writeln!(out, "{COMMITS} {}", self.commits.load(Ordering::Relaxed));
        header(&mut out, COMMITTED_APPENDS, "counter", "Appends made durable by group commits.");
        let _ = writeln!(out, "{COMMITTED_APPENDS} {}", self.committed_appends.load(Ordering::Relaxed));
        header(&mut out, COMMIT_SECONDS, "histogram", "Journal group commit latency, including fsync.");
        self.commit_latency.render(&mut out, COMMIT_SECONDS);
        let sinks: Vec<(String, Arc<SinkMetrics>)> =
            self.sinks.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()).unwrap_or_default();
        if !sinks.is_empty() {
            for (metric, help, get) in [
                (
                    SINK_ROWS,
                    "Rows written to the lake.",
                    (|s: &SinkMetrics| s.rows.load(Ordering::Relaxed)) as fn(&SinkMetrics) -> u64,
                ),
                (SINK_FILES, "Files committed to the lake.", |s: &SinkMetrics| s.files.load(Ordering::Relaxed)),
                (SINK_ERRORS, "Failed write attempts (retried).", |s: &SinkMetrics| {
                    s.upload_errors.load(Ordering::Relaxed)
                }),
            ] {
                header(&mut out, metric, "counter", help);
                for (name, s) in &sinks {
                    let _ = writeln!(out, "{metric}{{sink=\"{name}\"}} {}", get(s));
                }
            }
            header(&mut out, SINK_LAG, "gauge", "Events stored in the journal but not yet in this sink's files.");
            for (name, s) in &sinks {
                let lag = journal.next_seq.saturating_sub(s.checkpoint.load(Ordering::Relaxed));
                let _ = writeln!(out, "{SINK_LAG}{{sink=\"{name}\"}} {lag}");
            }
            header(&mut out, SINK_UPLOAD_SECONDS, "histogram", "Upload latency per file.");
            for (name, s) in &sinks {
                s.upload_latency.render_labelled(&mut out, SINK_UPLOAD_SECONDS, &format!("sink=\"{name}\""));
            }
            header(&mut out, TABLE_ROWS, "counter", "Rows written, per sink and table.");
            for (name, s) in &sinks {
                if let Ok(t) = s.tables.lock() {
                    for (table, (rows, _)) in t.iter() {
                        let _ = writeln!(out, "{TABLE_ROWS}{{sink=\"{name}\",table=\"{table}\"}} {rows}");
                    }
                }
            }
            header(&mut out, TABLE_FILES, "counter", "Files committed, per sink and table.");
            for (name, s) in &sinks {
                if let Ok(t) = s.tables.lock() {
                    for (table, (_, files)) in t.iter() {
                        let _ = writeln!(out, "{TABLE_FILES}{{sink=\"{name}\",table=\"{table}\"}} {files}");
                    }
                }
            }
        }
        self.render_enrich(&mut out, journal);
        self.render_plugins(&mut out);
        self.render_dead_letters(&mut out);
        if self.webhook_watched.load(Ordering::Relaxed) {
            let w = &self.webhook;
            for (name, help, value) in [
                (WEBHOOK_CHECKS, "Polls of hooklake's webhook at InsightIQ.", w.checks.load(Ordering::Relaxed)),
                (WEBHOOK_ERRORS, "Failed polls or re-enables.", w.errors.load(Ordering::Relaxed)),
                (
                    WEBHOOK_REACTIVATIONS,
                    "Times hooklake's webhook was re-enabled.",
                    w.reactivations.load(Ordering::Relaxed),
                ),
            ] {
                header(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {value}");
            }
            header(
                &mut out,
                WEBHOOK_INACTIVE,
                "gauge",
                "1 while hooklake's webhook is inactive or missing at InsightIQ.",
            );
            let _ = writeln!(out, "{WEBHOOK_INACTIVE} {}", u8::from(w.inactive.load(Ordering::Relaxed)));
        }
        for (name, help, value) in [
            (JOURNAL_DEPTH, "Events held in the journal.", journal.entries),
            (JOURNAL_BYTES, "Bytes of events held in the journal.", journal.bytes),
            (JOURNAL_NEXT_SEQ, "Sequence number of the next stored event.", journal.next_seq),
            (DEDUP_KEYS, "Dedup keys held.", journal.keys),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

impl Metrics {
    fn render_enrich(&self, out: &mut String, journal: &JournalStats) {
        let stages: Vec<(String, Arc<EnrichMetrics>)> =
            self.enrich.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()).unwrap_or_default();
        if stages.is_empty() {
            return;
        }
        type Get = fn(&EnrichMetrics) -> u64;
        let counters: [(&str, &str, Get); 6] = [
            (ENRICH_REQUESTS, "HTTP requests sent to the API (every attempt and page).", |m| {
                m.requests.load(Ordering::Relaxed)
            }),
            (ENRICH_THROTTLED, "429 answers from the API.", |m| m.throttled.load(Ordering::Relaxed)),
            (ENRICH_RETRIES, "Retried requests (429, 5xx, timeouts).", |m| m.retries.load(Ordering::Relaxed)),
            (ENRICH_IDS, "Ids asked for.", |m| m.ids_requested.load(Ordering::Relaxed)),
            (ENRICH_MISSING, "Ids the API no longer knows (recorded as missing).", |m| {
                m.ids_missing.load(Ordering::Relaxed)
            }),
            (ENRICH_EVENTS, "Events handed on.", |m| m.events.load(Ordering::Relaxed)),
        ];
        for (metric, help, get) in counters {
            header(out, metric, "counter", help);
            for (name, m) in &stages {
                let _ = writeln!(out, "{metric}{{stage=\"{name}\"}} {}", get(m));
            }
        }
        header(out, ENRICH_CALLS, "counter", "Calls made (after retries), by outcome.");
        for (name, m) in &stages {
            let _ = writeln!(
                out,
                "{ENRICH_CALLS}{{stage=\"{name}\",outcome=\"ok\"}} {}",
                m.calls_ok.load(Ordering::Relaxed)
            );
            let failed = m.calls_failed.load(Ordering::Relaxed);
            let _ = writeln!(out, "{ENRICH_CALLS}{{stage=\"{name}\",outcome=\"failed\"}} {failed}");
        }
        header(out, ENRICH_BACKLOG, "gauge", "Events stored in the journal and not yet handed on by this stage.");
        for (name, m) in &stages {
            let backlog = journal.next_seq.saturating_sub(m.checkpoint.load(Ordering::Relaxed));
            let _ = writeln!(out, "{ENRICH_BACKLOG}{{stage=\"{name}\"}} {backlog}");
        }
        header(out, ENRICH_CALL_SECONDS, "histogram", "Call latency, retries included.");
        for (name, m) in &stages {
            m.call_latency.render_labelled(out, ENRICH_CALL_SECONDS, &format!("stage=\"{name}\""));
        }
    }
}

impl Metrics {
    /// One family for the dead letters of every stage (enrich and wasm).
    fn render_dead_letters(&self, out: &mut String) {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        if let Ok(m) = self.enrich.lock() {
            for (name, e) in m.iter() {
                counts.insert(name.clone(), e.dead_letters.load(Ordering::Relaxed));
            }
        }
        if let Ok(m) = self.plugins.lock() {
            for (name, p) in m.iter() {
                *counts.entry(name.clone()).or_default() += p.dead_letters.load(Ordering::Relaxed);
            }
        }
        if counts.is_empty() {
            return;
        }
        header(out, DEAD_LETTERS, "counter", "Events sent to the dead letters, by stage.");
        for (name, n) in counts {
            let _ = writeln!(out, "{DEAD_LETTERS}{{stage=\"{name}\"}} {n}");
        }
    }

    fn render_plugins(&self, out: &mut String) {
        let stages: Vec<(String, Arc<PluginMetrics>)> = self
            .plugins
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
            .unwrap_or_default();
        if stages.is_empty() {
            return;
        }
        type Get = fn(&PluginMetrics) -> u64;
        let counters: [(&str, &str, Get); 3] = [
            (PLUGIN_CALLS, "Plugin mapper calls (one batch of events each).", |m| m.calls.load(Ordering::Relaxed)),
            (PLUGIN_EVENTS, "Events given to the plugins.", |m| m.events.load(Ordering::Relaxed)),
            (PLUGIN_ERRORS, "Events the plugins failed (sent to the dead letters).", |m| {
                m.dead_letters.load(Ordering::Relaxed)
            }),
        ];
        for (metric, help, get) in counters {
            header(out, metric, "counter", help);
            for (name, m) in &stages {
                let _ = writeln!(out, "{metric}{{stage=\"{name}\"}} {}", get(m));
            }
        }
        header(out, PLUGIN_CALL_SECONDS, "histogram", "Latency of one plugin mapper call.");
        for (name, m) in &stages {
            m.latency.render_labelled(out, PLUGIN_CALL_SECONDS, &format!("stage=\"{name}\""));
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        let s = m.source("insightiq");
        s.answered(200);
        s.answered(200);
        s.answered(401);
        s.accepted.fetch_add(2, Ordering::Relaxed);
        m.committed(2, Duration::from_micros(700));
        let text = m.render(&JournalStats {
            next_seq: 2,
            first_seq: 0,
            entries: 2,
            bytes: 99,
            output_bytes: 0,
            keys: 2,
            full: false,
        });
        assert!(text.contains("hooklake_http_requests_total{source=\"insightiq\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("hooklake_http_requests_total{source=\"insightiq\",status=\"401\"} 1"));
        assert!(text.contains("hooklake_events_accepted_total{source=\"insightiq\"} 2"));
        assert!(text.contains("hooklake_journal_commit_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("hooklake_journal_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("hooklake_journal_commit_seconds_count 1"));
        assert!(text.contains("hooklake_journal_depth 2"));
        assert!(text.contains("hooklake_journal_bytes 99"));
    }

    #[test]
    fn tables_plugins_dead_letters_and_the_webhook_watch_are_rendered_once_per_family() {
        let m = Metrics::default();
        let sink = m.sink("lake");
        sink.wrote("contents", 10);
        sink.wrote("contents", 5);
        sink.wrote("comments", 7);
        let p = m.plugins("map");
        p.mapped(64, Duration::from_millis(3));
        p.dead_letters.fetch_add(2, Ordering::Relaxed);
        m.enrich("enrich").dead_letters.fetch_add(1, Ordering::Relaxed);
        let stats = JournalStats::default();
        assert!(!m.render(&stats).contains(WEBHOOK_INACTIVE), "no watcher, no webhook metrics");
        m.watch_webhook().inactive.store(true, Ordering::Relaxed);
        assert!(m.webhook_inactive());
        let text = m.render(&stats);
        for line in [
            "hooklake_table_rows_total{sink=\"lake\",table=\"contents\"} 15",
            "hooklake_table_files_total{sink=\"lake\",table=\"contents\"} 2",
            "hooklake_table_rows_total{sink=\"lake\",table=\"comments\"} 7",
            "hooklake_sink_rows_total{sink=\"lake\"} 22",
            "hooklake_plugin_calls_total{stage=\"map\"} 1",
            "hooklake_plugin_events_total{stage=\"map\"} 64",
            "hooklake_plugin_errors_total{stage=\"map\"} 2",
            "hooklake_plugin_call_seconds_count{stage=\"map\"} 1",
            "hooklake_dead_letters_total{stage=\"enrich\"} 1",
            "hooklake_dead_letters_total{stage=\"map\"} 2",
            "hooklake_webhook_inactive 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        // Prometheus wants each family's samples together, under one TYPE line.
        let mut types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        let n = types.len();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), n, "a family declared twice");
    }

    #[test]
    fn stopped_sinks_are_listed_for_readiness() {
        let m = Metrics::default();
        m.sink("raw");
        m.sink("other").stopped.store(true, Ordering::Relaxed);
        assert_eq!(m.stopped_sinks(), vec!["other".to_owned()]);
    }
}
