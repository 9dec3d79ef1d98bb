//! `type = "wasm"`: per-event-type mapping logic as sandboxed WebAssembly plugins (`spec/plugins.md`). A plugin
//! declares tables and turns a batch of enriched events into rows of them.
//!
//! The stage is pure: it stores nothing. A sink reading from it runs it on the documents its `enrich` input
//! handed on ([`Mapper::map`]), so a rewrite after a crash maps the same documents again (fuel, not wall time,
//! bounds a call, so the outcome is the same too). A plugin error, trap, running out of fuel or memory, or
//! invalid output fails only the events concerned: after a trap, the other events of the batch are retried one
//! by one on a fresh instance. Failed events go to the dead letters with the reason.
//!
//! - [`host`]: wasmtime, limits, the two packagings;
//! - [`describe`]: the plugin's routes and tables;
//! - [`schema`]: column types, Arrow types, row checks.

pub mod describe;
pub mod host;
pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use self::host::{Instance, Limits, Plugin};
use self::schema::Column;
use crate::config::{Diagnostics, Fields, Spanned};

/// Events per plugin call.
pub const DEFAULT_BATCH: usize = 64;
/// Where compiled plugins are cached, inside `data_dir`.
pub const CACHE_DIR: &str = "plugin-cache";

/// `[transforms.<name>]` with `type = "wasm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmConfig {
    /// `plugins`: the files, resolved against the config's folder.
    pub plugins: Vec<Spanned<PathBuf>>,
    /// `memory`, `fuel`, `max_output`.
    pub limits: Limits,
    /// `batch`: events per call.
    pub batch: usize,
    /// `workers`: calls run at once (each on its own instance of the plugin).
    pub workers: usize,
}

impl WasmConfig {
    /// Reads the stage's keys (the files are loaded and checked by the topology's validation).
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let base = d.base_dir();
        let plugins: Vec<Spanned<PathBuf>> = f
            .opt_strings(d, "plugins")
            .unwrap_or_default()
            .into_iter()
            .map(|s| Spanned { value: base.join(&s.value), span: s.span })
            .collect();
        if plugins.is_empty() {
            d.error(f.span(), format!("{} needs `plugins`, a list of .wasm files", f.path()));
        }
        let defaults = Limits::default();
        let memory = f.size(d, "memory", defaults.memory as u64);
        let fuel = f.integer(d, "fuel", defaults.fuel, 1_000_000..1_000_000_000_001);
        let max_output = f.size(d, "max_output", defaults.max_output as u64);
        let batch = f.integer(d, "batch", DEFAULT_BATCH as u64, 1..10_001) as usize;
        let workers = f.integer(d, "workers", crate::parallel::cores() as u64, 1..257) as usize;
        let mut valid = true;
        for (key, v, max) in [("memory", memory, 4u64 << 30), ("max_output", max_output, 1 << 30)] {
            if v < 1 << 16 || v > max {
                d.error(f.value_span(key), format!("{}.{key} must be between 64KiB and {}GiB", f.path(), max >> 30));
                valid = false;
            }
        }
        // Loading the plugins under limits that are wrong would only add errors that follow from these.
        if !valid {
            return None;
        }
        let limits = Limits {
            memory: usize::try_from(memory).unwrap_or(usize::MAX),
            fuel,
            max_output: usize::try_from(max_output).unwrap_or(usize::MAX),
        };
        Some(Self { plugins, limits, batch, workers })
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Rows by table, checked against the declared schema and shaped for the Arrow decoder
    /// ([`schema::normalize_row`]).
    Rows(BTreeMap<String, Vec<serde_json::Map<String, Value>>>),
    /// The plugin could not map it: the reason, for the dead letter.
    Failed(String),
    /// No plugin claims its event type: it lands in the raw table only.
    Unclaimed,
}

/// A call's input may use at most 1/32 of a plugin's memory: the guest holds the input, its parsed form (several
/// times the text) and the output at once, so a batch of large documents (comments with many pages) would
/// otherwise exhaust the memory that one of them alone fits in.
const MEMORY_PER_INPUT_BYTE: usize = 32;

/// Splits `indices` into calls of at most `max_events` events and `max_bytes` input bytes (one event over the
/// budget goes alone).
fn chunks<'a>(indices: &'a [usize], docs: &[&[u8]], max_events: usize, max_bytes: usize) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, i) in indices.iter().enumerate() {
        let len = docs[*i].len();
        if n > start && (n - start >= max_events.max(1) || bytes + len > max_bytes) {
            out.push(&indices[start..n]);
            (start, bytes) = (n, 0);
        }
        bytes += len;
    }
    if start < indices.len() {
        out.push(&indices[start..]);
    }
    out
}

struct Loaded {
    plugin: Plugin,
    /// Idle instances: a call takes one (or makes one) and puts it back unless the call failed.
    idle: Mutex<Vec<Instance>>,
}

/// The plugins of one `wasm` stage, ready to map.
pub struct Mapper {
    stage: String,
    plugins: Vec<Loaded>,
    batch: usize,
    workers: usize,
    tables: BTreeMap<String, Vec<Column>>,
}

/// A problem with a plugin entry: where it is in the config, and what.
pub type PluginProblem = (Option<std::ops::Range<usize>>, String);

/// Loads every plugin of `config`, and checks that no two claim the same event or declare the same table.
///
/// # Errors
/// One message per problem, each with the span of the plugin entry it concerns.
pub fn load(engine: &wasmtime::Engine, config: &WasmConfig) -> Result<Vec<Plugin>, Vec<PluginProblem>> {
    let mut errors = Vec::new();
    let mut plugins: Vec<(Plugin, Option<std::ops::Range<usize>>)> = Vec::new();
    for p in &config.plugins {
        match Plugin::load(engine, &p.value, config.limits) {
            Ok(plugin) => {
                for (other, _) in &plugins {
                    if let Some((a, b)) = plugin
                        .describe
                        .patterns()
                        .flat_map(|a| other.describe.patterns().map(move |b| (a, b)))
                        .find(|(a, b)| describe::overlap(a, b))
                    {
                        errors.push((
                            p.span.clone(),
                            format!("plugins {} and {} both claim events (`{a}` / `{b}`)", plugin.path, other.path),
                        ));
                    }
                    if let Some(t) = plugin.describe.tables.keys().find(|t| other.describe.tables.contains_key(*t)) {
                        errors.push((
                            p.span.clone(),
                            format!("plugins {} and {} both declare table `{t}`", plugin.path, other.path),
                        ));
                    }
                }
                plugins.push((plugin, p.span.clone()));
            }
            Err(e) => errors.push((p.span.clone(), e.to_string())),
        }
    }
    if errors.is_empty() { Ok(plugins.into_iter().map(|(p, _)| p).collect()) } else { Err(errors) }
}

/// The engine for plugins of a pipeline whose data dir is `data_dir` (compiled code cached there).
///
/// # Errors
/// When the engine cannot start.
pub fn engine_for(data_dir: &Path) -> Result<wasmtime::Engine, String> {
    host::engine(Some(&data_dir.join(CACHE_DIR)))
}

/// The plugins a stage runs now. A reload ([`Plugins::reload`], on SIGHUP) loads the files again and swaps the
/// whole set at once: a batch in progress finishes on the old set, the next one uses the new. Nothing else moves:
/// the sinks keep their journal positions.
#[derive(Clone)]
pub struct Plugins {
    current: Arc<RwLock<Arc<Mapper>>>,
    config: WasmConfig,
    engine: wasmtime::Engine,
}

impl Plugins {
    /// The plugins of stage `stage`, loaded now.
    ///
    /// # Errors
    /// The problems of each plugin that does not load.
    pub fn load(stage: &str, config: &WasmConfig, engine: &wasmtime::Engine) -> Result<Self, Vec<PluginProblem>> {
        let mapper = Mapper::new(stage, load(engine, config)?, config.batch).with_workers(config.workers);
        Ok(Self { current: Arc::new(RwLock::new(Arc::new(mapper))), config: config.clone(), engine: engine.clone() })
    }

    /// The set in use.
    pub fn current(&self) -> Arc<Mapper> {
        match self.current.read() {
            Ok(m) => Arc::clone(&m),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the files again and, if every plugin loads, swaps the set. Blocking (it may compile).
    ///
    /// # Errors
    /// Why the new set was refused; the old one stays in use.
    pub fn reload(&self) -> Result<String, String> {
        let stage = self.current().stage().to_owned();
        let plugins = load(&self.engine, &self.config)
            .map_err(|errors| errors.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))?;
        let names: Vec<String> =
            plugins.iter().map(|p| format!("{} {}", p.describe.name, p.describe.version)).collect();
        let mapper = Arc::new(Mapper::new(&stage, plugins, self.config.batch).with_workers(self.config.workers));
        match self.current.write() {
            Ok(mut m) => *m = mapper,
            Err(poisoned) => *poisoned.into_inner() = mapper,
        }
        Ok(names.join(", "))
    }
}

#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct Results {
    results: Vec<Value>,
}

impl Mapper {
    /// A mapper over loaded `plugins`, `batch` events per call, with one worker per core.
    pub fn new(stage: &str, plugins: Vec<Plugin>, batch: usize) -> Self {
        let tables = plugins.iter().flat_map(|p| p.describe.tables.clone()).collect();
        Self {
            stage: stage.to_owned(),
            plugins: plugins.into_iter().map(|plugin| Loaded { plugin, idle: Mutex::new(Vec::new()) }).collect(),
            batch: batch.max(1),
            workers: crate::parallel::cores(),
            tables,
        }
    }

    /// Runs up to `workers` calls at once (at least one).
    #[must_use]
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// How many calls run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Every table the plugins declare, with its columns.
    pub fn tables(&self) -> &BTreeMap<String, Vec<Column>> {
        &self.tables
    }

    /// Maps enriched documents (JSON, as `enrich` handed them on); one outcome per document, same order.
    /// Blocking (it runs WebAssembly, on up to `workers` threads): call it from a blocking thread. The outcome of
    /// each document does not depend on how the calls were spread over the workers.
    pub fn map(&self, docs: &[&[u8]]) -> Vec<Outcome> {
        let mut out = vec![Outcome::Unclaimed; docs.len()];
        let mut per_plugin: Vec<Vec<usize>> = vec![Vec::new(); self.plugins.len()];
        for (i, doc) in docs.iter().enumerate() {
            match serde_json::from_slice::<Head<'_>>(doc) {
                Ok(head) => {
                    if let Some(p) = self.plugins.iter().position(|l| l.plugin.describe.route(&head.event).is_some()) {
                        per_plugin[p].push(i);
                    }
                }
                Err(e) => out[i] = Outcome::Failed(format!("the enriched document is unreadable: {e}")),
            }
        }
        let mut calls: Vec<(usize, &[usize])> = Vec::new();
        for (p, indices) in per_plugin.iter().enumerate() {
            let budget = self.plugins[p].plugin.limits.memory / MEMORY_PER_INPUT_BYTE;
            calls.extend(chunks(indices, docs, self.batch, budget).into_iter().map(|chunk| (p, chunk)));
        }
        let results = crate::parallel::map(&calls, self.workers, |(p, chunk)| self.call_isolating(*p, chunk, docs));
        for ((_, chunk), outcomes) in calls.iter().zip(results) {
            for (i, outcome) in chunk.iter().zip(outcomes) {
                out[*i] = outcome;
            }
        }
        out
    }

    /// Calls plugin `p` on `chunk`; after a failure of the whole call, retries each event alone (on a fresh
    /// instance after a trap), so only the events that fail on their own are failed.
    fn call_isolating(&self, p: usize, chunk: &[usize], docs: &[&[u8]]) -> Vec<Outcome> {
        match self.call(p, chunk, docs) {
            Ok(outcomes) => outcomes,
            Err(e) if chunk.len() == 1 => vec![Outcome::Failed(e)],
            Err(e) => {
                tracing::warn!(
                    stage = self.stage,
                    plugin = self.plugins[p].plugin.path,
                    error = e,
                    events = chunk.len(),
                    "plugin batch failed; retrying its events one by one"
                );
                chunk
                    .iter()
                    .map(|i| self.call(p, &[*i], docs).map_or_else(Outcome::Failed, |mut o| o.remove(0)))
                    .collect()
            }
        }
    }

    fn call(&self, p: usize, chunk: &[usize], docs: &[&[u8]]) -> Result<Vec<Outcome>, String> {
        let loaded = &self.plugins[p];
        let mut batch = Vec::with_capacity(chunk.iter().map(|i| docs[*i].len() + 1).sum::<usize>() + 2);
        batch.push(b'[');
        for (n, i) in chunk.iter().enumerate() {
            if n > 0 {
                batch.push(b',');
            }
            batch.extend_from_slice(docs[*i]);
        }
        batch.push(b']');
        let batch = String::from_utf8(batch).map_err(|_| "an enriched document is not UTF-8".to_owned())?;
        let idle = loaded.idle.lock().map_err(|_| "plugin instance lock poisoned".to_owned())?.pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => loaded.plugin.instance().map_err(|e| e.to_string())?,
        };
        // A trapped (or otherwise failed) instance is dropped, never used again.
        let text = instance.transform(&batch).map_err(|e| e.to_string())?;
        if let Ok(mut idle) = loaded.idle.lock() {
            idle.push(instance);
        }
        let results: Results =
            serde_json::from_str(&text).map_err(|e| format!("plugin output is not a results document: {e}"))?;
        if results.results.len() != chunk.len() {
            return Err(format!("plugin returned {} results for {} events", results.results.len(), chunk.len()));
        }
        let declared = &loaded.plugin.describe.tables;
        Ok(results.results.into_iter().map(|r| outcome(r, declared)).collect())
    }
}

/// One result of the results document.
fn outcome(r: Value, declared: &BTreeMap<String, Vec<Column>>) -> Outcome {
    let Value::Object(mut r) = r else { return Outcome::Failed("a result must be an object".into()) };
    if let Some(e) = r.remove("error") {
        return Outcome::Failed(e.as_str().map_or_else(|| e.to_string(), str::to_owned));
    }
    let Some(Value::Object(rows)) = r.remove("rows") else {
        return Outcome::Failed("a result needs `rows` (an object of tables) or `error`".into());
    };
    let mut out = BTreeMap::new();
    for (table, list) in rows {
        if !declared.contains_key(&table) {
            return Outcome::Failed(format!("rows for table `{table}`, which the plugin does not declare"));
        }
        let Value::Array(list) = list else { return Outcome::Failed(format!("rows.{table} must be a list")) };
        let columns = &declared[&table];
        let mut rows = Vec::with_capacity(list.len());
        for (i, row) in list.into_iter().enumerate() {
            match schema::normalize_row(row, columns) {
                Ok(row) => rows.push(row),
                Err(e) => return Outcome::Failed(format!("{table}[{i}]: {e}")),
            }
        }
        out.insert(table, rows);
    }
    Outcome::Rows(out)
}

#[cfg(test)]
mod tests;
