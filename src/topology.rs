//! Wires stages by `inputs`: checks the graph (pure, part of validation) and builds the running pipeline
//! (binds sockets, opens the journal). Data flows one way: source → admission chain → journal → (later)
//! processing → sinks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::admission::Admission;
use crate::clock::SharedClock;
use crate::config::{Config, Diagnostics, SinkConfig, SourceConfig, TransformConfig, suggest};
use crate::dead_letters::DeadLetters;
use crate::journal::embedded::{EmbeddedJournal, Options};
use crate::journal::{Journal, JournalError};
use crate::metrics::Metrics;
use crate::sinks::parquet::{ParquetSink, StoreError};
use crate::sources::webhook::{Shared, Webhook};
use crate::transforms::dedup::Dedup;
use crate::transforms::enrich::Enrich;
use crate::transforms::enrich::client::ApiAccess;
use crate::transforms::enrich::limiter::RateLimiter;
use crate::transforms::verify::Verifier;

/// How often expired dedup keys are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the journal is trimmed below the slowest consumer.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);
/// How often the replay queue of the dead letters is looked at.
pub const REPLAY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Source,
    Admission,
    /// Reads the journal (enrich).
    Transform,
    /// A `wasm` stage: reads an enrich stage's outputs, run by the sinks that read it.
    Map,
    Sink,
}

/// Checks names, inputs, cycles and the shape of admission chains, reporting into `d`.
pub fn validate(config: &Config, d: &mut Diagnostics<'_>) {
    let mut nodes: BTreeMap<&str, Node> = BTreeMap::new();
    let all = config
        .sources
        .iter()
        .map(|c| (c.name.as_str(), c.span.clone(), Node::Source, &c.inputs))
        .chain(config.transforms.iter().map(|c| {
            let node = match &c.kind {
                k if k.is_admission() => Node::Admission,
                TransformConfig::Wasm(_) => Node::Map,
                _ => Node::Transform,
            };
            (c.name.as_str(), c.span.clone(), node, &c.inputs)
        }))
        .chain(config.sinks.iter().map(|c| (c.name.as_str(), c.span.clone(), Node::Sink, &c.inputs)));
    let all: Vec<_> = all.collect();
    for (name, span, node, _) in &all {
        if nodes.insert(name, *node).is_some() {
            d.error(span.clone(), format!("component name `{name}` is used twice; names must be unique"));
        }
    }
    let readable: Vec<&str> = nodes.iter().filter(|(_, n)| **n != Node::Sink).map(|(k, _)| *k).collect();
    let mut feeds: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, span, node, inputs) in &all {
        if *node == Node::Source {
            if let Some(first) = inputs.first() {
                d.error(first.span.clone(), format!("source `{name}` cannot have inputs"));
            }
            continue;
        }
        if inputs.is_empty() {
            d.error(span.clone(), format!("`{name}` needs `inputs` naming the stages it reads from"));
        }
        if *node == Node::Admission && inputs.len() > 1 {
            d.error(inputs[0].span.clone(), format!("admission stage `{name}` takes exactly one input"));
        }
        for input in inputs.iter() {
            let target = input.value.as_str();
            match nodes.get(target) {
                // Declared but invalid: its own error already says why.
                None if config.invalid.contains(target) => {}
                None => {
                    let hint = suggest(target, readable.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    d.error(
                        input.span.clone(),
                        format!("`{name}` reads from `{target}`, which names no source or transform{hint}"),
                    );
                }
                Some(Node::Sink) => {
                    d.error(
                        input.span.clone(),
                        format!("`{name}` reads from sink `{target}`; sinks produce nothing to read"),
                    );
                }
                Some(_) if target == *name => {
                    d.error(input.span.clone(), format!("`{name}` reads from itself"));
                }
                Some(upstream) => {
                    if *node == Node::Sink && *upstream == Node::Map && inputs.len() > 1 {
                        d.error(
                            input.span.clone(),
                            format!(
                                "sink `{name}` writes the tables of `{target}`, so `{target}` must be its only input"
                            ),
                        );
                    }
                    if *node == Node::Sink && !matches!(upstream, Node::Source | Node::Admission | Node::Map) {
                        d.error(
                            input.span.clone(),
                            format!("sink `{name}` writes the raw `events` table (from a webhook source or an admission stage) or the tables of a `wasm` stage, not the output of `{target}`"),
                        );
                    }
                    if *node == Node::Map && !is_enrich(config, target) {
                        d.error(
                            input.span.clone(),
                            format!(
                                "`{name}` maps enriched events, so it must read from an `enrich` stage, not `{target}`"
                            ),
                        );
                    }
                    if *node == Node::Transform && !matches!(upstream, Node::Source | Node::Admission) {
                        d.error(
                            input.span.clone(),
                            format!("`{name}` reads the journal, so it must read from a webhook source or an admission stage (verify, dedup), not `{target}`"),
                        );
                    }
                    if *node == Node::Admission {
                        if !matches!(upstream, Node::Source | Node::Admission) {
                            d.error(
                                input.span.clone(),
                                format!("admission stage `{name}` must read from a webhook source or another admission stage (verify, dedup), not `{target}`"),
                            );
                        }
                        feeds.entry(target).or_default().push(name);
                    }
                }
            }
        }
    }
    for (upstream, downstream) in &feeds {
        if downstream.len() > 1 {
            let span = all.iter().find(|(n, ..)| *n == downstream[1]).and_then(|(_, s, ..)| s.clone());
            d.error(
                span,
                format!(
                    "admission stages form one chain per source, but `{upstream}` feeds {}",
                    downstream.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and ")
                ),
            );
        }
    }
    report_cycles(&all.iter().map(|(n, s, _, i)| (*n, s.clone(), *i)).collect::<Vec<_>>(), d);
    // The shipped example key is public: fine for trying hooklake on localhost, refused anywhere else.
    for source in &config.sources {
        let SourceConfig::Webhook(wc) = &source.kind;
        if wc.listen.ip().is_loopback() {
            continue;
        }
        let mut at = source.name.as_str();
        while let Some(next) =
            config.transforms.iter().find(|t| t.kind.is_admission() && t.inputs.iter().any(|i| i.value == at))
        {
            if let TransformConfig::Verify(vc) = &next.kind
                && vc.secrets.iter().any(|s| s.expose() == crate::transforms::verify::EXAMPLE_SECRET)
            {
                d.error(
                    next.span.clone(),
                    format!(
                        "`{}` uses the example signing key from the shipped config, which is public, while source `{}` listens on {}; set INSIGHTIQ_CLIENT_SECRET (or listen on 127.0.0.1)",
                        next.name, source.name, wc.listen
                    ),
                );
            }
            at = &next.name;
        }
    }
    for t in &config.transforms {
        if let TransformConfig::Enrich(_) = &t.kind {
            match &config.api {
                None => d.error(
                    t.span.clone(),
                    format!("`{}` calls InsightIQ: add an `[api.insightiq]` table (client_id, client_secret)", t.name),
                ),
                Some(api)
                    if [&api.client_id, &api.client_secret]
                        .iter()
                        .any(|s| s.as_ref().is_none_or(|s| s.expose().is_empty())) =>
                {
                    d.error(
                        t.span.clone(),
                        format!("`{}` calls InsightIQ: `[api.insightiq]` needs client_id and client_secret", t.name),
                    );
                }
                Some(_) => {}
            }
        }
    }
    check_plugins(config, d);
    // Two sinks writing the same tables at the same place would each write every event: duplicate rows. A raw
    // sink (table `events`) and a sink of mapped tables may share a lake.
    let mut places: BTreeMap<(String, String), &str> = BTreeMap::new();
    for sink in &config.sinks {
        let SinkConfig::Parquet(pc) = &sink.kind;
        if pc.location == crate::sinks::parquet::Location::Memory {
            continue;
        }
        let mapped =
            sink.inputs.first().map(|i| i.value.as_str()).filter(|i| {
                config.transforms.iter().any(|t| t.name == *i && matches!(t.kind, TransformConfig::Wasm(_)))
            });
        let tables = mapped.map_or_else(|| "the `events` table".to_owned(), |m| format!("the tables of `{m}`"));
        if let Some(other) = places.insert((format!("{:?}", pc.location), tables.clone()), &sink.name) {
            d.error(
                sink.span.clone(),
                format!(
                    "sinks `{other}` and `{}` both write {tables} at the same lake location; each event would land twice",
                    sink.name
                ),
            );
        }
    }
}

fn is_enrich(config: &Config, name: &str) -> bool {
    config.transforms.iter().any(|t| t.name == name && matches!(t.kind, TransformConfig::Enrich(_)))
}

/// Loads every plugin (compiled code is cached in `data_dir`), so a broken one fails `validate` naming its file.
fn check_plugins(config: &Config, d: &mut Diagnostics<'_>) {
    let stages: Vec<_> = config
        .transforms
        .iter()
        .filter_map(|t| match &t.kind {
            TransformConfig::Wasm(wc) => Some((t, wc)),
            _ => None,
        })
        .collect();
    if stages.is_empty() {
        return;
    }
    let engine = match crate::transforms::wasm::engine_for(&config.data_dir) {
        Ok(e) => e,
        Err(e) => return d.error(stages[0].0.span.clone(), e),
    };
    for (t, wc) in stages {
        if let Err(errors) = crate::transforms::wasm::load(&engine, wc) {
            for (span, message) in errors {
                d.error(span, format!("`{}`: {message}", t.name));
            }
        }
    }
}

type GraphNode<'a> = (&'a str, Option<std::ops::Range<usize>>, &'a Vec<crate::config::Spanned<String>>);

fn report_cycles(all: &[GraphNode<'_>], d: &mut Diagnostics<'_>) {
    let inputs: BTreeMap<&str, Vec<&str>> =
        all.iter().map(|(n, _, i)| (*n, i.iter().map(|s| s.value.as_str()).collect())).collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for (start, span, _) in all {
        // Depth-first walk upstream; a path that returns to `start` is a cycle.
        let mut stack = vec![(*start, vec![*start])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for up in inputs.get(node).into_iter().flatten() {
                if *up == *start && *up != node {
                    if path.iter().all(|p| !reported.contains(p)) {
                        // `path` runs upstream (each reads the next); print it the way data flows.
                        let mut cycle = vec![*start];
                        cycle.extend(path[1..].iter().rev().copied());
                        cycle.push(start);
                        d.error(span.clone(), format!("cycle: {}", cycle.join(" → ")));
                        reported.extend(path.iter().copied());
                    }
                } else if inputs.contains_key(up) && seen.insert(*up) {
                    let mut p = path.clone();
                    p.push(up);
                    stack.push((up, p));
                }
            }
        }
    }
}

/// Why a valid config could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The journal could not be opened.
    #[error("cannot open the journal in {dir}")]
    Journal {
        /// `data_dir`.
        dir: String,
        /// The cause.
        #[source]
        source: JournalError,
    },
    /// A source could not bind its address.
    #[error("source `{source_name}` cannot listen on {addr}")]
    Bind {
        /// The source.
        source_name: String,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A sink's store could not be opened.
    #[error("sink `{sink}`")]
    Sink {
        /// The sink.
        sink: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A sink could not take its place in the journal.
    #[error(transparent)]
    SinkStart {
        /// The cause.
        #[from]
        source: crate::sinks::parquet::SinkError,
    },
    /// A processing stage (enrich, wasm) could not be built.
    #[error("transform `{stage}`: {reason}")]
    Stage {
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
    },
    /// A verify stage could not be built.
    #[error("transform `{stage}`: {reason}")]
    Verify {
        /// The stage.
        stage: String,
        /// Why.
        reason: &'static str,
    },
}

/// A built pipeline: sockets bound, journal open, nothing served yet.
pub struct Pipeline {
    sources: Vec<Webhook>,
    enrich: Vec<Enrich>,
    sinks: Vec<ParquetSink>,
    shared: Arc<Shared>,
    journal: Arc<EmbeddedJournal>,
    /// The dead letters, and the stages their replays may go back to.
    dead_letters: (DeadLetters, Vec<String>),
    api: Option<crate::config::InsightIqApiConfig>,
}

/// Opens the embedded journal of `config`.
///
/// # Errors
/// [`BuildError::Journal`].
pub fn open_journal(
    config: &Config,
    clock: SharedClock,
    metrics: Option<Arc<Metrics>>,
) -> Result<EmbeddedJournal, BuildError> {
    let options = Options {
        max_bytes: config.journal.max_bytes,
        queue: config.journal.queue,
        max_batch: config.journal.max_batch,
        cache: usize::try_from(config.journal.cache).unwrap_or(usize::MAX),
    };
    let observer =
        metrics.map(|m| -> crate::journal::embedded::CommitObserver { Arc::new(move |n, took| m.committed(n, took)) });
    EmbeddedJournal::open(&config.data_dir, options, clock, observer)
        .map_err(|source| BuildError::Journal { dir: config.data_dir.display().to_string(), source })
}

/// Builds every stage of `config`.
///
/// # Errors
/// [`BuildError`] when the journal cannot be opened, a socket cannot be bound or a stage cannot be built.
pub async fn build(config: &Config, clock: SharedClock) -> Result<Pipeline, BuildError> {
    let metrics = Arc::new(Metrics::default());
    let journal = Arc::new(open_journal(config, Arc::clone(&clock), Some(Arc::clone(&metrics)))?);
    let shared = Arc::new(Shared {
        journal: Arc::clone(&journal) as Arc<dyn Journal>,
        metrics,
        clock,
        draining: Default::default(),
        max_journal_bytes: config.journal.max_bytes,
    });
    let mut sources = Vec::new();
    for source in &config.sources {
        match &source.kind {
            SourceConfig::Webhook(wc) => {
                let admission = admission_chain(config, &source.name)?;
                let hook = Webhook::bind(&source.name, wc.clone(), admission, Arc::clone(&shared))
                    .await
                    .map_err(|e| BuildError::Bind { source_name: source.name.clone(), addr: wc.listen, source: e })?;
                sources.push(hook);
            }
        }
    }
    let enrich = build_enrich(config, &shared)?;
    let mut engine = None;
    let mut sinks = Vec::new();
    for sink in &config.sinks {
        match &sink.kind {
            SinkConfig::Parquet(pc) => {
                let mut built = ParquetSink::build(&sink.name, pc.clone(), shared.metrics.sink(&sink.name))
                    .map_err(|source| BuildError::Sink { sink: sink.name.clone(), source })?
                    .with_sources(upstream_sources(config, sink.inputs.iter().map(|i| i.value.as_str())));
                let input = sink.inputs.first().map(|i| i.value.as_str());
                if let Some(mapping) = mapping_of(config, input, &mut engine, &shared.metrics)? {
                    built = built.with_mapping(mapping);
                }
                sinks.push(built);
            }
        }
    }
    // Before anything can be stored or trimmed: forget removed sinks, register new ones (which also refuses a
    // new sink whose lake already holds files it would overwrite).
    let configured: Vec<String> =
        sinks.iter().map(ParquetSink::consumer).chain(enrich.iter().map(Enrich::consumer)).collect();
    forget_removed_consumers(journal.as_ref(), &configured).await;
    for s in &sinks {
        s.register(journal.as_ref()).await.map_err(|source| BuildError::SinkStart { source })?;
    }
    for e in &enrich {
        e.register(journal.as_ref())
            .await
            .map_err(|source| BuildError::Journal { dir: config.data_dir.display().to_string(), source })?;
    }
    let dead_letters = (DeadLetters::new(&config.data_dir), crate::dead_letters::replay_stages(config));
    Ok(Pipeline { sources, enrich, sinks, shared, journal, dead_letters, api: config.api.clone() })
}

/// The enrich stages, sharing one rate limiter per API (the limit is per developer account, across endpoints).
fn build_enrich(config: &Config, shared: &Shared) -> Result<Vec<Enrich>, BuildError> {
    let mut out = Vec::new();
    let mut limiter: Option<Arc<RateLimiter>> = None;
    for t in &config.transforms {
        let TransformConfig::Enrich(ec) = &t.kind else { continue };
        let fail = |reason: &str| BuildError::Stage { stage: t.name.clone(), reason: reason.to_owned() };
        let api = config.api.as_ref().ok_or_else(|| fail("no [api.insightiq] table"))?;
        let (Some(client_id), Some(client_secret)) = (api.client_id.clone(), api.client_secret.clone()) else {
            return Err(fail("[api.insightiq] needs client_id and client_secret"));
        };
        let access = ApiAccess {
            base_url: api.base_url.clone(),
            client_id,
            client_secret,
            timeout: api.timeout,
            rate_limit: api.rate_limit,
        };
        let limiter = Arc::clone(limiter.get_or_insert_with(|| Arc::new(RateLimiter::new(api.rate_limit))));
        let sources = upstream_sources(config, t.inputs.iter().map(|i| i.value.as_str()));
        out.push(
            Enrich::build(
                &t.name,
                ec.clone(),
                &access,
                limiter,
                sources,
                DeadLetters::new(&config.data_dir),
                shared.metrics.enrich(&t.name),
                Arc::clone(&shared.clock),
            )
            .map_err(|reason| fail(&reason))?,
        );
    }
    Ok(out)
}

/// When `input` names a `wasm` stage: its plugins, loaded, and the enrich stage whose outputs it maps.
fn mapping_of(
    config: &Config,
    input: Option<&str>,
    engine: &mut Option<wasmtime::Engine>,
    metrics: &Metrics,
) -> Result<Option<crate::sinks::parquet::Mapping>, BuildError> {
    let Some(stage) = config.transforms.iter().find(|t| Some(t.name.as_str()) == input) else { return Ok(None) };
    let TransformConfig::Wasm(wc) = &stage.kind else { return Ok(None) };
    let fail = |reason: String| BuildError::Stage { stage: stage.name.clone(), reason };
    let engine = match engine {
        Some(e) => e.clone(),
        None => engine.insert(crate::transforms::wasm::engine_for(&config.data_dir).map_err(fail)?).clone(),
    };
    let plugins = crate::transforms::wasm::Plugins::load(&stage.name, wc, &engine)
        .map_err(|errors| fail(errors.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ")))?;
    let upstream = stage.inputs.first().map(|i| crate::transforms::enrich::consumer(&i.value)).unwrap_or_default();
    Ok(Some(crate::sinks::parquet::Mapping {
        plugins,
        upstream,
        dead_letters: DeadLetters::new(&config.data_dir),
        metrics: metrics.plugins(&stage.name),
    }))
}

/// The sources that `inputs` lead back to, through admission stages.
fn upstream_sources<'a>(config: &'a Config, inputs: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<&str> = inputs.collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if config.sources.iter().any(|s| s.name == name) {
            out.insert(name.to_owned());
        } else if let Some(t) = config.transforms.iter().find(|t| t.name == name) {
            todo.extend(t.inputs.iter().map(|i| i.value.as_str()));
        }
    }
    out
}

/// The admission stages downstream of `source`, in order.
fn admission_chain(config: &Config, source: &str) -> Result<Admission, BuildError> {
    let mut verifiers = Vec::new();
    let mut dedup = None;
    let mut at = source.to_owned();
    while let Some(next) =
        config.transforms.iter().find(|t| t.kind.is_admission() && t.inputs.iter().any(|i| i.value == at))
    {
        match &next.kind {
            TransformConfig::Verify(vc) => verifiers
                .push(Verifier::build(vc).map_err(|reason| BuildError::Verify { stage: next.name.clone(), reason })?),
            TransformConfig::Dedup(dc) => dedup = Some(Dedup::build(dc)),
            TransformConfig::Enrich(_) | TransformConfig::Wasm(_) => {}
        }
        at.clone_from(&next.name);
    }
    if verifiers.is_empty() {
        tracing::warn!(source, "no verify stage after this webhook source: anyone who can reach it can deliver");
    }
    Ok(Admission::new(source, verifiers, dedup))
}

impl Pipeline {
    /// Each source's name, bound address and webhook path.
    pub fn endpoints(&self) -> Vec<(String, SocketAddr, String)> {
        self.sources
            .iter()
            .filter_map(|s| s.local_addr().ok().map(|a| (s.name().to_owned(), a, s.path().to_owned())))
            .collect()
    }

    /// The pipeline's metrics (what `/metrics` serves), for a caller that runs it in-process (`demo`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The journal's counters now.
    pub fn journal_stats(&self) -> crate::journal::JournalStats {
        self.journal.stats()
    }

    /// A handle that reads the journal's counters while the pipeline runs.
    pub fn journal_handle(&self) -> Arc<dyn Journal> {
        Arc::clone(&self.journal) as Arc<dyn Journal>
    }

    /// Serves until `shutdown` resolves; then answers 503 to new requests, lets in-flight ones finish and
    /// their commits land, and closes the journal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { sources, enrich, sinks, shared, journal, dead_letters, api } = self;
        let (tx, rx) = crate::shutdown::channel();
        let (sinks_tx, sinks_rx) = crate::shutdown::channel();
        let mut tasks = Vec::new();
        for s in sources {
            tasks.push(tokio::spawn(s.serve(rx.clone())));
        }
        let mut sink_tasks = Vec::new();
        let stage_plugins: Vec<crate::transforms::wasm::Plugins> =
            sinks.iter().filter_map(ParquetSink::plugins).collect();
        for s in sinks {
            let journal = Arc::clone(&journal) as Arc<dyn Journal>;
            let rx = sinks_rx.clone();
            let metrics = shared.metrics.sink(s.name());
            sink_tasks.push(tokio::spawn(async move {
                let result = s.run(journal, rx).await;
                // Said at once, not only at shutdown: a stopped sink means the journal grows until it is full.
                if let Err(e) = &result {
                    tracing::error!(error = %e, "sink stopped; its events stay in the journal until the next start");
                    metrics.stopped.store(true, Ordering::Relaxed);
                }
                result
            }));
        }
        let mut stage_tasks = Vec::new();
        for e in enrich {
            let journal = Arc::clone(&journal) as Arc<dyn Journal>;
            let rx = sinks_rx.clone();
            stage_tasks.push(tokio::spawn(async move {
                let name = e.name().to_owned();
                if let Err(e) = e.run(journal, rx).await {
                    tracing::error!(stage = name, error = %e, "enrich stopped; its events wait in the journal");
                }
            }));
        }
        let reloads: Vec<_> = stage_plugins.into_iter().collect();
        let reloader = tokio::spawn(reload_on_hangup(reloads, rx.clone()));
        let housekeeping = tokio::spawn(housekeeping(Arc::clone(&journal), dead_letters, rx.clone()));
        let watcher = api.filter(|a| a.webhook_watch.is_some()).map(|a| {
            let state = shared.metrics.watch_webhook();
            tokio::spawn(crate::webhooks::watch(a, state, rx.clone()))
        });
        shutdown.await;
        tracing::info!("shutting down: refusing new deliveries, finishing in-flight ones");
        shared.draining.store(true, Ordering::SeqCst);
        let _ = tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        // Sources are quiet: now every sink writes all that was acknowledged, then stops.
        let _ = sinks_tx.send(true);
        for t in stage_tasks {
            let _ = t.await;
        }
        for t in sink_tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {} // already logged when it stopped
                Err(e) => tracing::error!(error = %e, "sink task failed"),
            }
        }
        let _ = housekeeping.await;
        let _ = reloader.await;
        if let Some(w) = watcher {
            let _ = w.await;
        }
        // Everything the sinks wrote is no longer needed in the journal.
        match drain(|| journal.trim()).await {
            Ok(n) if n > 0 => tracing::info!(records = n, "trimmed journal below the sinks' checkpoints"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "trimming journal failed"),
        }
        drop(shared);
        match Arc::try_unwrap(journal) {
            Ok(j) => {
                let _ = tokio::task::spawn_blocking(move || j.close()).await;
            }
            Err(_) => tracing::warn!("journal still referenced at shutdown; it closes when the last user ends"),
        }
        tracing::info!("stopped");
    }
}

/// Repeats a batched housekeeping call until it has nothing left to do; each call is a separate writer
/// command, so appends are served in between.
async fn drain<'a, F>(mut call: impl FnMut() -> F) -> Result<u64, JournalError>
where
    F: Future<Output = Result<u64, JournalError>> + 'a,
{
    let mut total = 0;
    loop {
        match call().await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Stages taken out of the config keep their checkpoint in the journal, which would hold back trimming forever:
/// forget the checkpoints of `sink.*` and `transform.*` consumers that no configured stage owns.
async fn forget_removed_consumers(journal: &dyn Journal, configured: &[String]) {
    let Ok(consumers) = journal.consumers().await else { return };
    for consumer in consumers {
        if (consumer.starts_with("sink.") || consumer.starts_with("transform.")) && !configured.contains(&consumer) {
            match journal.forget_consumer(&consumer).await {
                Ok(()) => tracing::warn!(consumer, "forgot the checkpoint of a stage that is no longer configured"),
                Err(e) => tracing::warn!(consumer, error = %e, "cannot forget a removed stage's checkpoint"),
            }
        }
    }
}

/// On SIGHUP, loads every plugin file again and swaps each stage's set when all of its plugins load (a broken new
/// version is refused and logged; the old one keeps running). Journal positions are untouched.
async fn reload_on_hangup(plugins: Vec<crate::transforms::wasm::Plugins>, mut shutdown: crate::shutdown::Signal) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; plugins reload only at restart");
            return;
        };
        loop {
            tokio::select! {
                () = crate::shutdown::stopped(&mut shutdown) => return,
                _ = hup.recv() => {
                    for p in &plugins {
                        let stage = p.current().stage().to_owned();
                        let p = p.clone();
                        match tokio::task::spawn_blocking(move || p.reload()).await {
                            Ok(Ok(names)) => tracing::info!(stage, plugins = names, "reloaded plugins"),
                            Ok(Err(e)) => tracing::error!(stage, error = e, "plugin reload refused; the loaded plugins keep running"),
                            Err(e) => tracing::error!(stage, error = %e, "plugin reload failed"),
                        }
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (plugins, &mut shutdown);
    }
}

async fn housekeeping(
    journal: Arc<EmbeddedJournal>,
    (dead_letters, stages): (DeadLetters, Vec<String>),
    mut shutdown: crate::shutdown::Signal,
) {
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    let mut trim = tokio::time::interval(TRIM_INTERVAL);
    let mut replays = tokio::time::interval(REPLAY_INTERVAL);
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut shutdown) => return,
            // Dead letters that `hooklake dead-letters replay` queued go back into the journal.
            _ = replays.tick() => match crate::dead_letters::inject(&dead_letters, journal.as_ref(), &stages).await {
                Ok(done) if done.appended > 0 => tracing::info!(events = done.appended, "replayed dead letters"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "replaying queued dead letters failed; retrying"),
            },
            _ = prune.tick() => match drain(|| journal.prune_keys()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(keys = n, "pruned expired dedup keys"),
                Err(e) => tracing::warn!(error = %e, "pruning dedup keys failed"),
            },
            _ = trim.tick() => match drain(|| journal.trim()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(records = n, "trimmed journal"),
                Err(e) => tracing::warn!(error = %e, "trimming journal failed"),
            },
        }
    }
}
