//! `hooklake demo`: the embedded default. Runs the pipeline of `config.toml` against the built-in InsightIQ
//! simulator on loopback (no credentials, no cloud): a fresh data dir, the lake in `./demo-lake`, the webhook
//! source and the API on free ports, demo secrets. It sends a realistic stream of signed webhooks (every event
//! family, duplicates, reordering, a few bad signatures, then a burst), shows progress, waits until every
//! acknowledged event has passed every sink, stops the pipeline, reads the lake back and prints a summary.
//!
//! The check at the end is the pipeline's promise: every acknowledged id is in the raw `events` table exactly
//! once. [`run`] returns a summary whose `ok` is false otherwise, and the command exits non-zero.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::clock::SystemClock;
use crate::config::{Config, SinkConfig, SourceConfig, TransformConfig};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::simulator::{api, events, sender};
use crate::sinks::parquet::Location;

/// The marker file that makes a folder a demo lake (which a later demo may empty).
const MARKER: &str = ".hooklake-demo";
/// Demo credentials: the simulator's and the pipeline's (they never leave loopback).
const CLIENT_ID: &str = "demo-client";
const CLIENT_SECRET: &str = "demo-secret";
/// Longest wait for the lake to hold everything acknowledged.
const LAND_TIMEOUT: Duration = Duration::from_secs(300);

/// What `hooklake demo` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The pipeline to run (its API, secrets, listen address, data dir and sink locations are overridden).
    #[arg(short, long, default_value = "config.toml")]
    pub config: PathBuf,
    /// Where the lake goes (a folder that is empty, absent, or a lake of an earlier demo, which is replaced).
    #[arg(long, default_value = "demo-lake")]
    pub lake: PathBuf,
    /// Webhook events to send (one third of them as a burst at the end).
    #[arg(long, default_value_t = 300)]
    pub events: u64,
    /// Requests per second the simulated API allows, and the pipeline keeps to (InsightIQ's real limit is 10;
    /// the demo raises it so it finishes in well under a minute).
    #[arg(long, default_value_t = 50)]
    pub rate_limit: u32,
    /// Seed of the event stream (the same seed sends the same events).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the summary as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// One table of the lake.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableSummary {
    /// Rows in all its files.
    pub rows: u64,
    /// Parquet files.
    pub files: u64,
}

/// What the demo did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// True when every acknowledged event is in the lake exactly once.
    pub ok: bool,
    /// The lake folder.
    pub lake: String,
    /// Tables read back from the lake.
    pub tables: BTreeMap<String, TableSummary>,
    /// Webhook events the sender delivered (first attempts; duplicates and bad signatures come on top).
    pub events_sent: u64,
    /// Distinct events acknowledged with a 2xx.
    pub acknowledged: u64,
    /// Acknowledged events not in the `events` table.
    pub missing_from_lake: u64,
    /// Events in the `events` table more than once.
    pub landed_twice: u64,
    /// HTTP requests the webhook source answered, by status.
    pub requests_by_status: BTreeMap<u16, u64>,
    /// Deliveries refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Deliveries answered 200 as duplicates of a stored event.
    pub duplicates: u64,
    /// Requests the pipeline made to the (simulated) InsightIQ API.
    pub api_requests: u64,
    /// Bulk calls among them, and the ids they carried.
    pub api_bulk_calls: u64,
    /// Ids carried by bulk calls.
    pub api_bulk_ids: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
    /// A query to paste into DuckDB.
    pub query: String,
}

/// Runs the demo.
///
/// # Errors
/// When the config cannot be run (a missing plugin, a lake folder that is not the demo's), or the
/// lake cannot be read back.
pub async fn run(mut config: Config, args: &DemoArgs) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let lake = prepare_lake(&args.lake)?;
    let data_dir = std::env::temp_dir().join(format!("hooklake-demo-{}-{}", std::process::id(), now_nanos()));
    let _cleanup = RemoveOnDrop(data_dir.clone());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the simulator's API")?;
    let mut options = api::ApiOptions::new(CLIENT_ID, CLIENT_SECRET);
    options.rate_limit = args.rate_limit;
    let sim = api::serve(listener, options).await.context("starting the simulator's API")?;
    override_config(&mut config, &sim.base_url(), &data_dir, &lake, args.rate_limit)?;

    let pipeline =
        crate::topology::build(&config, Arc::new(SystemClock)).await.map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
    let (source, addr, path) = pipeline.endpoints().into_iter().next().context("the config has no webhook source")?;
    let url = format!("http://{addr}{path}");
    let metrics = pipeline.metrics();
    let journal = pipeline.journal_handle();
    let sinks: Vec<String> = config.sinks.iter().map(|s| s.name.clone()).collect();
    let enrich: Vec<String> = config
        .transforms
        .iter()
        .filter(|t| matches!(t.kind, TransformConfig::Enrich(_)))
        .map(|t| t.name.clone())
        .collect();
    eprintln!("hooklake demo: simulator API at {}, webhooks to {url}", sim.base_url());
    eprintln!("hooklake demo: data dir {} (removed at the end), lake {}", data_dir.display(), lake.display());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pipeline.run(async move {
        let _ = stop_rx.await;
    }));

    // A paced stream, then a burst of new events: both with duplicates, reordering and decoys.
    let paced = args.events - args.events / 3;
    let stream = tokio::spawn(send_stream(url, args.seed, paced, args.events / 3));
    let mut progress = Progress::new("demo");
    let source_metrics = metrics.source(&source);
    let mut report: Option<sender::SendReport> = None;
    let mut stream = Some(stream);
    let deadline = Instant::now() + LAND_TIMEOUT;
    loop {
        if let Some(s) = stream.take_if(|s| s.is_finished()) {
            report = Some(s.await.context("the sender failed")??);
        }
        let next_seq = journal.stats().next_seq;
        let landed = sinks.iter().map(|s| metrics.sink(s).checkpoint.load(Ordering::Relaxed)).min().unwrap_or(0);
        let enriched = enrich.iter().map(|e| metrics.enrich(e).checkpoint.load(Ordering::Relaxed)).min().unwrap_or(0);
        let requests: u64 = (100..600).map(|s| source_metrics.count(s)).sum();
        let acked = source_metrics.accepted.load(Ordering::Relaxed);
        let detail = format!(
            "requests {requests} · stored {acked} · duplicates {} · enriched {} · landed {}",
            source_metrics.duplicates.load(Ordering::Relaxed),
            enriched.min(next_seq),
            landed.min(next_seq)
        );
        if report.is_some() && landed >= next_seq && enriched >= next_seq {
            progress.finish(landed.min(next_seq), next_seq, &detail);
            break;
        }
        progress.set(landed.min(next_seq), next_seq.max(args.events), &detail);
        if Instant::now() > deadline {
            progress.finish(landed.min(next_seq), next_seq, &detail);
            drop(journal);
            let _ = stop_tx.send(());
            let _ = running.await;
            bail!("the lake did not catch up within {LAND_TIMEOUT:?}; see the logs above");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The pipeline closes its journal when it stops: let go of the handle first.
    drop(journal);
    let _ = stop_tx.send(());
    running.await.context("the pipeline task failed")?;
    let report = report.context("the sender did not finish")?;
    let stats = sim.stats();
    sim.shutdown();

    let lake_read = {
        let lake = lake.clone();
        tokio::task::spawn_blocking(move || read_lake(&lake)).await.context("reading the lake")??
    };
    let acknowledged: BTreeSet<&str> = report.acknowledged.iter().map(String::as_str).collect();
    let missing = acknowledged.iter().filter(|id| !lake_read.event_ids.contains_key(**id)).count() as u64;
    let twice = lake_read.event_ids.values().filter(|n| **n > 1).count() as u64;
    let by_status: BTreeMap<u16, u64> =
        (100..600).filter_map(|s| Some((s, source_metrics.count(s))).filter(|(_, n)| *n > 0)).collect();
    let dead_letters = crate::dead_letters::DeadLetters::new(&data_dir).list().map_or(0, |l| l.len() as u64);
    Ok(Summary {
        ok: missing == 0 && twice == 0 && report.bad_signatures_accepted == 0,
        lake: lake.display().to_string(),
        tables: lake_read.tables,
        events_sent: report.sent,
        acknowledged: acknowledged.len() as u64,
        missing_from_lake: missing,
        landed_twice: twice,
        rejected: by_status.iter().filter(|(s, _)| **s >= 400).map(|(s, n)| (reason_of(*s), *n)).collect(),
        requests_by_status: by_status,
        duplicates: source_metrics.duplicates.load(Ordering::Relaxed),
        api_requests: stats.requests,
        api_bulk_calls: stats.bulk_calls,
        api_bulk_ids: stats.bulk_ids,
        dead_letters,
        elapsed_secs: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        query: query(&lake),
    })
}

/// The two phases of the stream; their reports merged.
async fn send_stream(url: String, seed: u64, paced: u64, burst: u64) -> anyhow::Result<sender::SendReport> {
    let options = |seed: u64, events: u64, rate: f64| {
        let mut o = sender::SendOptions::new(url.clone(), CLIENT_SECRET);
        o.seed = seed;
        o.events = events;
        o.rate = rate;
        o.duplicate_permille = 60;
        o.reorder = true;
        o.bad_signature_permille = 20;
        o.retry_scale = 0.001;
        o.concurrency = 16;
        o.mix = events::Mix::default();
        o
    };
    let mut report = sender::send(options(seed, paced, 60.0)).await?;
    if burst > 0 {
        let b = sender::send(options(seed.wrapping_add(1), burst, 0.0)).await?;
        report.sent += b.sent;
        report.acknowledged.extend(b.acknowledged);
        report.failed.extend(b.failed);
        report.duplicates_sent += b.duplicates_sent;
        report.bad_signatures_sent += b.bad_signatures_sent;
        report.bad_signatures_accepted += b.bad_signatures_accepted;
        report.attempts += b.attempts;
        for (k, v) in b.status_counts {
            *report.status_counts.entry(k).or_default() += v;
        }
    }
    Ok(report)
}

/// Points `config` at the simulator, a fresh data dir and the demo lake, with the demo's secrets.
fn override_config(
    config: &mut Config,
    base_url: &str,
    data_dir: &Path,
    lake: &Path,
    rate_limit: u32,
) -> anyhow::Result<()> {
    let api = config.api.as_mut().context("the demo needs an [api.insightiq] table in the config")?;
    api.base_url = base_url.to_owned();
    api.client_id = Some(Secret::new(CLIENT_ID));
    api.client_secret = Some(Secret::new(CLIENT_SECRET));
    api.rate_limit = u64::from(rate_limit);
    api.webhook_watch = None;
    config.data_dir = data_dir.to_owned();
    for s in &mut config.sources {
        let SourceConfig::Webhook(w) = &mut s.kind;
        w.listen = "127.0.0.1:0".parse()?;
    }
    for t in &mut config.transforms {
        match &mut t.kind {
            TransformConfig::Verify(v) => {
                v.secrets = vec![Secret::new(CLIENT_SECRET)];
                v.allow_ips = None;
            }
            TransformConfig::Wasm(w) => {
                for p in &w.plugins {
                    if !p.value.exists() {
                        bail!(
                            "plugin {} is missing: build it first with `plugins/build.sh` (the README's quick start)",
                            p.value.display()
                        );
                    }
                }
            }
            _ => {}
        }
    }
    for s in &mut config.sinks {
        let SinkConfig::Parquet(p) = &mut s.kind;
        p.location = Location::Local(lake.to_owned());
        p.roll_interval = p.roll_interval.min(Duration::from_secs(2));
    }
    Ok(())
}

/// Makes `dir` an empty demo lake: absent or empty folders are fine, an earlier demo's lake is emptied, anything
/// else is refused (the demo never deletes data it did not write).
fn prepare_lake(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.peekable();
        if entries.peek().is_some() {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} is not empty and was not written by `hooklake demo`; choose another folder with --lake",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("emptying the earlier demo lake {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "written by `hooklake demo`; the next demo replaces this folder\n")?;
    Ok(std::fs::canonicalize(dir)?)
}

/// What reading the lake back found.
struct LakeRead {
    tables: BTreeMap<String, TableSummary>,
    /// `_event_id` of the `events` table, with how often each appears.
    event_ids: BTreeMap<String, u64>,
}

fn read_lake(lake: &Path) -> anyhow::Result<LakeRead> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut tables: BTreeMap<String, TableSummary> = BTreeMap::new();
    let mut event_ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut files = Vec::new();
    collect_parquet(lake, &mut files)?;
    for file in files {
        let table = file
            .strip_prefix(lake)
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let reader = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader)
            .with_context(|| format!("{} is not a readable Parquet file", file.display()))?;
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let t = tables.entry(table.clone()).or_default();
        t.rows += rows;
        t.files += 1;
        if table == crate::sinks::parquet::EVENTS {
            let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["_event_id"]);
            for batch in builder.with_projection(mask).build()? {
                let batch = batch?;
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .context("`_event_id` is not a string column")?;
                for id in ids.iter().flatten() {
                    *event_ids.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
    Ok(LakeRead { tables, event_ids })
}

fn collect_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_parquet(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "parquet") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn reason_of(status: u16) -> String {
    let why = match status {
        400 => "malformed body",
        401 => "bad or missing signature",
        403 => "source IP not allowed",
        404 => "wrong path",
        405 => "wrong method",
        408 => "too slow",
        413 => "body too large",
        415 => "not JSON",
        503 => "journal full or shutting down",
        _ => "other",
    };
    format!("{status} {why}")
}

fn query(lake: &Path) -> String {
    format!(
        "duckdb -c \"SELECT type, format, count(*) AS contents, sum(engagement.like_count) AS likes \
         FROM read_parquet('{}/contents/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY contents DESC\"",
        lake.display()
    )
}

/// The summary as people read it.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "\nhooklake demo: {} in {:.1} s", if s.ok { "done" } else { "FAILED" }, s.elapsed_secs);
    let _ = writeln!(out, "\nlake: {}", s.lake);
    let _ = writeln!(out, "  {:<20} {:>8} {:>6}", "table", "rows", "files");
    for (name, t) in &s.tables {
        let _ = writeln!(out, "  {name:<20} {:>8} {:>6}", t.rows, t.files);
    }
    let _ = writeln!(
        out,
        "\nwebhooks: {} events sent, {} acknowledged, {} duplicate deliveries answered 200 and not stored",
        s.events_sent, s.acknowledged, s.duplicates
    );
    if s.rejected.is_empty() {
        let _ = writeln!(out, "rejected deliveries: none");
    } else {
        let _ = writeln!(out, "rejected deliveries (nothing stored):");
        for (why, n) in &s.rejected {
            let _ = writeln!(out, "  {n:>6}  {why}");
        }
    }
    let _ = writeln!(
        out,
        "InsightIQ API: {} requests, of which {} bulk calls carrying {} ids ({:.1} ids per call)",
        s.api_requests,
        s.api_bulk_calls,
        s.api_bulk_ids,
        if s.api_bulk_calls == 0 { 0.0 } else { s.api_bulk_ids as f64 / s.api_bulk_calls as f64 }
    );
    let _ = writeln!(out, "dead letters: {}", s.dead_letters);
    let _ = writeln!(
        out,
        "check: {} acknowledged events missing from `events`, {} landed twice",
        s.missing_from_lake, s.landed_twice
    );
    let _ = writeln!(out, "\ntry:\n  {}", s.query);
    out
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Removes the demo's data dir however the demo ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
