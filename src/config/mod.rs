//! The pipeline config: raw TOML → validated [`Config`] (this module) → built components (`crate::topology`).
//!
//! Parsing is pure and collects every error with `file:line:col` before giving up, so a user fixes a config in
//! one pass. Secrets are read into [`crate::secret::Secret`] and never echoed. This module must never open a
//! socket or a file other than the config itself: that is `build`'s job, so `hooklake validate` has no effects.
//!
//! Stage kinds are listed in one explicit registry below ([`parse_source`], [`parse_transform`],
//! [`parse_sink`]): adding a kind is one module and one line in each `match`.

mod diag;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{ImDocument, Item, TableLike};

pub use diag::{ConfigError, ConfigErrors, Diagnostics, Fields, Spanned, suggest};
pub use values::{Env, InterpolationError, interpolate, parse_duration, parse_size};

use crate::secret::Secret;
use crate::sinks::parquet::ParquetConfig;
use crate::sources::webhook::WebhookConfig;
use crate::transforms::dedup::DedupConfig;
use crate::transforms::enrich::EnrichConfig;
use crate::transforms::verify::VerifyConfig;
use crate::transforms::wasm::WasmConfig;

/// Default disk budget of the journal.
pub const DEFAULT_MAX_JOURNAL_BYTES: u64 = 10 << 30;

/// A validated pipeline config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Where the journal, dedup index, checkpoints and dead letters live (`data_dir`, default `data`,
    /// relative to the config file).
    pub data_dir: PathBuf,
    /// Journal settings (`[journal]`).
    pub journal: JournalConfig,
    /// `[api.insightiq]`, when present.
    pub api: Option<InsightIqApiConfig>,
    /// `[sources.*]`, in file order.
    pub sources: Vec<Component<SourceConfig>>,
    /// `[transforms.*]`, in file order.
    pub transforms: Vec<Component<TransformConfig>>,
    /// `[sinks.*]`, in file order.
    pub sinks: Vec<Component<SinkConfig>>,
    /// Components that are declared but failed to parse (already reported): inputs naming them are not
    /// reported a second time as naming nothing.
    pub invalid: std::collections::BTreeSet<String>,
}

/// `[journal]`: the durable hand-off between admission and processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// `max_bytes` (also accepted top-level as `max_journal_bytes`): disk budget for stored events; over it the
    /// webhook source answers 503 with `Retry-After`. Default `10GiB`.
    pub max_bytes: u64,
    /// `queue`: appends waiting for the writer; when full, requests wait (bounded by the source's
    /// `ack_timeout`). Default 8192.
    pub queue: usize,
    /// `max_batch`: most entries one group commit (one fsync) takes. Default 1024.
    pub max_batch: usize,
    /// `cache`: memory for the journal's page cache. Default `64MiB`.
    pub cache: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { max_bytes: DEFAULT_MAX_JOURNAL_BYTES, queue: 8192, max_batch: 1024, cache: 64 << 20 }
    }
}

/// `[api.insightiq]`: how to reach InsightIQ (used by `enrich` and `hooklake webhooks`).
#[derive(Debug, Clone)]
pub struct InsightIqApiConfig {
    /// `environment`: `sandbox`, `staging` or `production`.
    pub environment: String,
    /// `base_url`: overrides the environment's URL (simulator, proxies).
    pub base_url: String,
    /// `client_id`.
    pub client_id: Option<Secret>,
    /// `client_secret`.
    pub client_secret: Option<Secret>,
    /// `rate_limit`: requests per second across all endpoints (default 10).
    pub rate_limit: u64,
    /// `timeout`: per request (default 30s).
    pub timeout: Duration,
    /// `webhook_url`: the public URL InsightIQ delivers to (hooklake's own webhook): the default of
    /// `hooklake webhooks ensure --url` and the webhook `webhook_watch` looks after.
    pub webhook_url: Option<String>,
    /// `webhook_watch`: how often `run` checks that hooklake's webhook is still active (off when unset).
    pub webhook_watch: Option<Duration>,
    /// `auto_reactivate`: re-enable hooklake's webhook when InsightIQ has deactivated it (default false).
    pub auto_reactivate: bool,
}

/// A named stage with its inputs.
#[derive(Debug, Clone)]
pub struct Component<K> {
    /// The table name (`[transforms.<name>]`).
    pub name: String,
    /// `inputs`: the stages this one reads from.
    pub inputs: Vec<Spanned<String>>,
    /// Where the table starts in the file.
    pub span: Option<std::ops::Range<usize>>,
    /// The kind-specific config.
    pub kind: K,
}

/// Source kinds.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `type = "webhook"`.
    Webhook(WebhookConfig),
}

/// Transform kinds.
#[derive(Debug, Clone)]
pub enum TransformConfig {
    /// `type = "verify"`.
    Verify(VerifyConfig),
    /// `type = "dedup"`.
    Dedup(DedupConfig),
    /// `type = "enrich"`.
    Enrich(EnrichConfig),
    /// `type = "wasm"`.
    Wasm(WasmConfig),
}

impl TransformConfig {
    /// True for kinds that run while the sender waits and decide the HTTP status.
    pub fn is_admission(&self) -> bool {
        matches!(self, Self::Verify(_) | Self::Dedup(_))
    }
}

/// Sink kinds.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// `type = "parquet"`.
    Parquet(ParquetConfig),
}

const SOURCE_KINDS: &[&str] = &["webhook"];
const TRANSFORM_KINDS: &[&str] = &["verify", "dedup", "enrich", "wasm"];
const SINK_KINDS: &[&str] = &["parquet"];

/// The source registry.
fn parse_source(kind: &str, f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<SourceConfig> {
    match kind {
        "webhook" => WebhookConfig::parse(f, d).map(SourceConfig::Webhook),
        _ => None,
    }
}

/// The transform registry.
fn parse_transform(kind: &str, f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<TransformConfig> {
    match kind {
        "verify" => VerifyConfig::parse(f, d).map(TransformConfig::Verify),
        "dedup" => DedupConfig::parse(f, d).map(TransformConfig::Dedup),
        "enrich" => EnrichConfig::parse(f, d).map(TransformConfig::Enrich),
        "wasm" => WasmConfig::parse(f, d).map(TransformConfig::Wasm),
        _ => None,
    }
}

/// The sink registry.
fn parse_sink(kind: &str, f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<SinkConfig> {
    match kind {
        "parquet" => ParquetConfig::parse(f, d).map(SinkConfig::Parquet),
        _ => None,
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
}

impl Config {
    /// Reads and validates `path`, interpolating from the process environment.
    ///
    /// # Errors
    /// [`LoadError::Read`] when the file cannot be read, [`LoadError::Invalid`] with every problem found.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let src = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        Ok(Self::parse(path, &src, &Env::Process)?)
    }

    /// Validates config text `src` as if read from `path`.
    ///
    /// # Errors
    /// Every problem found, in file order.
    pub fn parse(path: &Path, src: &str, env: &Env<'_>) -> Result<Self, ConfigErrors> {
        let mut d = Diagnostics::new(path.display().to_string(), src, env);
        let doc = match ImDocument::parse(src) {
            Ok(doc) => doc,
            Err(e) => {
                let message = e.message().trim().to_owned();
                d.error(e.span(), format!("invalid TOML: {message}"));
                return Err(d.into_result().err().unwrap_or(ConfigErrors(Vec::new())));
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let config = parse_root(doc.as_table(), &base, path, &mut d);
        crate::topology::validate(&config, &mut d);
        d.into_result()?;
        Ok(config)
    }
}

fn parse_root(root: &dyn TableLike, base: &Path, path: &Path, d: &mut Diagnostics<'_>) -> Config {
    let mut f = Fields::new(root, "the config", Some(0..0));
    let data_dir = f.opt_string(d, "data_dir").map_or_else(|| "data".to_owned(), |s| s.value);
    let mut journal = JournalConfig::default();
    journal.max_bytes = f.size(d, "max_journal_bytes", journal.max_bytes);
    if let Some(item) = f.item("journal")
        && let Some(t) = table_of(item, "journal", d)
    {
        let mut jf = Fields::new(t, "journal", item.span());
        journal.max_bytes = jf.size(d, "max_bytes", journal.max_bytes);
        journal.queue = usize_of(jf.integer(d, "queue", journal.queue as u64, 1..1_000_001));
        journal.max_batch = usize_of(jf.integer(d, "max_batch", journal.max_batch as u64, 1..100_001));
        journal.cache = jf.size(d, "cache", journal.cache);
        if !(1 << 20..=64 << 30).contains(&journal.cache) {
            d.error(jf.value_span("cache"), "journal.cache must be between 1MiB and 64GiB".to_owned());
        }
        jf.finish(d);
    }
    let api = f.item("api").and_then(|item| parse_api(item, d));
    let mut invalid = std::collections::BTreeSet::new();
    let sources = components(&mut f, d, "sources", SOURCE_KINDS, parse_source, &mut invalid);
    let transforms = components(&mut f, d, "transforms", TRANSFORM_KINDS, parse_transform, &mut invalid);
    let sinks = components(&mut f, d, "sinks", SINK_KINDS, parse_sink, &mut invalid);
    f.finish(d);
    Config { file: path.to_owned(), data_dir: base.join(data_dir), journal, api, sources, transforms, sinks, invalid }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn table_of<'a>(item: &'a Item, path: &str, d: &mut Diagnostics<'_>) -> Option<&'a dyn TableLike> {
    let t = item.as_table_like();
    if t.is_none() {
        d.error(item.span(), format!("`{path}` must be a table, not {}", diag::type_name(item)));
    }
    t
}

fn parse_api(item: &Item, d: &mut Diagnostics<'_>) -> Option<InsightIqApiConfig> {
    let apis = table_of(item, "api", d)?;
    let mut af = Fields::new(apis, "api", item.span());
    let mut out = None;
    if let Some(iq) = af.item("insightiq")
        && let Some(t) = table_of(iq, "api.insightiq", d)
    {
        let mut f = Fields::new(t, "api.insightiq", iq.span());
        let environment = f.choice(d, "environment", &["sandbox", "staging", "production"], "sandbox");
        let default_url = crate::insightiq::base_url(&environment);
        let base_url = f.string_or(d, "base_url", default_url);
        let client_id = f.opt_secret(d, "client_id").map(|s| s.value);
        let client_secret = f.opt_secret(d, "client_secret").map(|s| s.value);
        let rate_limit = f.integer(d, "rate_limit", 10, 1..10_001);
        let timeout = f.duration(d, "timeout", Duration::from_secs(30));
        let webhook_url = f.opt_string(d, "webhook_url").map(|s| s.value);
        let webhook_watch = f.opt_duration(d, "webhook_watch");
        let auto_reactivate = f.boolean(d, "auto_reactivate", false);
        if (webhook_watch.is_some() || auto_reactivate) && webhook_url.is_none() {
            d.error(
                t.get("webhook_watch").or_else(|| t.get("auto_reactivate")).and_then(Item::span),
                "api.insightiq: `webhook_watch` and `auto_reactivate` look after the webhook at `webhook_url`; set `webhook_url`",
            );
        } else if auto_reactivate && webhook_watch.is_none() {
            d.error(
                t.get("auto_reactivate").and_then(Item::span),
                "api.insightiq: `auto_reactivate` acts when `webhook_watch` finds the webhook inactive; set `webhook_watch` (e.g. \"5m\")",
            );
        }
        f.finish(d);
        out = Some(InsightIqApiConfig {
            environment,
            base_url,
            client_id,
            client_secret,
            rate_limit,
            timeout,
            webhook_url,
            webhook_watch,
            auto_reactivate,
        });
    }
    af.finish(d);
    out
}

type KindParser<K> = fn(&str, &mut Fields<'_>, &mut Diagnostics<'_>) -> Option<K>;

fn components<K>(
    root: &mut Fields<'_>,
    d: &mut Diagnostics<'_>,
    section: &str,
    kinds: &[&str],
    parse: KindParser<K>,
    invalid: &mut std::collections::BTreeSet<String>,
) -> Vec<Component<K>> {
    let Some(item) = root.item(section) else { return Vec::new() };
    let Some(table) = table_of(item, section, d) else { return Vec::new() };
    let mut out = Vec::new();
    for (name, item) in table.iter() {
        let path = format!("{section}.{name}");
        invalid.insert(name.to_owned());
        let Some(t) = table_of(item, &path, d) else { continue };
        let span = table.key(name).and_then(|k| k.span()).or_else(|| item.span());
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            // Names end up in metric labels, journal consumer names, dedup keys and log lines.
            d.error(span.clone(), format!("`{path}`: a name may only hold letters, digits, `_` and `-`"));
        }
        let mut f = Fields::new(t, path.clone(), span.clone());
        let Some(kind) = f.string(d, "type") else { continue };
        let inputs = f.opt_strings(d, "inputs").unwrap_or_default();
        if !kinds.contains(&kind.value.as_str()) {
            let known = if kinds.is_empty() { "none yet".to_owned() } else { kinds.join(", ") };
            let hint = diag::suggest(&kind.value, kinds.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let singular = section.trim_end_matches('s');
            d.error(kind.span, format!("{path}: unknown {singular} type `{}`{hint} (known: {known})", kind.value));
            continue;
        }
        let parsed = parse(&kind.value, &mut f, d);
        f.finish(d);
        if let Some(kind) = parsed {
            invalid.remove(name);
            out.push(Component { name: name.to_owned(), inputs, span, kind });
        }
    }
    out
}

#[cfg(test)]
mod tests;
