//! The command line: parse arguments, set up logging, load the config, call the library, map errors to exit
//! codes. No pipeline logic lives here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hooklake::clock::{SystemClock, format_micros};
use hooklake::config::{Config, LoadError};
use hooklake::journal::Journal;

/// Exit code for a config that does not validate (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// hooklake: webhooks in, an analyst-ready Parquet lake out.
#[derive(Debug, Parser)]
#[command(name = "hooklake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=hooklake=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The pipeline config.
    #[arg(short, long, default_value = "config.toml")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline until SIGTERM or SIGINT, then drain and exit 0.
    Run(RunArgs),
    /// Check the config without starting anything: every error as file:line:col, exit 0 or 78.
    Validate(ConfigArg),
    /// The InsightIQ simulator: serve its API (--api-listen) and/or send it signed webhooks (--send-to).
    Simulate(hooklake::simulator::SimulateArgs),
    /// Check and try WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Inspect the journal (the pipeline must be stopped: the journal has one user at a time).
    #[command(subcommand)]
    Journal(JournalCommand),
    /// The whole pipeline of config.toml against the built-in InsightIQ simulator: sends signed webhooks, waits
    /// until the lake holds them, prints a summary. No credentials, no cloud.
    Demo(hooklake::demo::DemoArgs),
    /// Manage InsightIQ webhooks through /v1/webhooks (credentials from [api.insightiq]).
    Webhooks(WebhooksCli),
    /// Inspect, replay and purge dead letters (events a stage gave up on).
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// One-screen overview of a running instance, read from its /metrics.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct WebhooksCli {
    /// The pipeline config (its [api.insightiq] table).
    #[arg(short, long, default_value = "config.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    inner: hooklake::webhooks::WebhooksArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The instance's metrics URL (default: the first webhook source's listen address in the config).
    #[arg(long)]
    url: Option<String>,
    /// Redraw every this many seconds until interrupted.
    #[arg(long)]
    watch: Option<u64>,
}

/// Which dead letters: every given selector must match.
#[derive(Debug, Args)]
struct Select {
    /// Every dead letter.
    #[arg(long)]
    all: bool,
    /// Events with this envelope id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Events with this journal seq (repeatable).
    #[arg(long = "seq")]
    seqs: Vec<u64>,
    /// Letters of this stage (`enrich`, `map`, or `transforms.map`).
    #[arg(long)]
    stage: Option<String>,
    /// Letters whose reason contains this text (case-insensitive).
    #[arg(long)]
    reason: Option<String>,
}

impl From<Select> for hooklake::dead_letters::Selection {
    fn from(s: Select) -> Self {
        Self { all: s.all, ids: s.ids, seqs: s.seqs, stage: s.stage, reason: s.reason }
    }
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// List dead letters (all, or those selected) and count them by stage and reason.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        select: Select,
        /// One JSON object per letter (without the event body) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter in full (by envelope id or journal seq).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// An envelope id or a journal seq.
        key: String,
    },
    /// Put selected dead letters back into the pipeline (after a fix: a new plugin version, an API back up).
    /// They keep their id and `_seq`, go only to the stage that gave up and what follows it, and land once.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        select: Select,
        /// Return once queued, without waiting for a running pipeline to take them.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete selected dead letters for good.
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        select: Select,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Also serve the InsightIQ simulator's API in this process, at `[api.insightiq] base_url` (which must be a
    /// loopback address), with its credentials: the whole pipeline on one machine, no InsightIQ account needed.
    #[arg(long)]
    simulator: bool,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a plugin as `run` would (imports, exports, ABI version, description) and print its description.
    Describe {
        /// The plugin (.wasm, a core module or a component; or .wat text).
        file: PathBuf,
    },
    /// Run a plugin on enriched events and print, per event, its rows (as the lake will hold them) or its error.
    /// Exit 1 if any event failed.
    Test {
        /// The plugin.
        file: PathBuf,
        /// Enriched events: a JSON array, or JSON lines as `hooklake journal dump --stage enrich` prints them.
        #[arg(long)]
        input: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Counters: sequence range, entries, bytes, dedup keys.
    Stats(ConfigArg),
    /// Stored events as JSON lines, in sequence order.
    Dump {
        #[command(flatten)]
        config: ConfigArg,
        /// First sequence number to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most events to print.
        #[arg(long, default_value_t = u64::MAX)]
        limit: u64,
        /// Print what this processing stage handed on (e.g. the enriched events of `enrich`) instead of the
        /// stored events.
        #[arg(long)]
        stage: Option<String>,
    },
}

/// Runs the CLI.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's own progress and summary are its output: only warnings from the pipeline it runs.
    let default_level = if matches!(cli.command, Command::Demo(_)) { "warn" } else { "info" };
    init_logging(cli.log_format, default_level);
    match cli.command {
        Command::Validate(a) => match load(&a.config) {
            Ok(_) => {
                println!("{}: ok", a.config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run(a) => {
            let config = match load(&a.config.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_then(|| async move { run(config, a.simulator).await })
        }
        Command::Simulate(args) => runtime_then(|| hooklake::simulator::simulate(args)),
        Command::Plugin(command) => match plugin_command(command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {}", chain(e.as_ref()));
                ExitCode::FAILURE
            }
        },
        Command::Journal(JournalCommand::Stats(a)) => {
            let config = match load(&a.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_then(|| async move { journal_stats(&config) })
        }
        Command::Demo(args) => {
            let config = match load(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let flag = Arc::clone(&ok);
            let code = runtime_then(|| async move {
                let summary = hooklake::demo::run(config, &args).await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                } else {
                    print!("{}", hooklake::demo::render(&summary));
                }
                flag.store(summary.ok, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            });
            // Anything acknowledged and missing from the lake fails the demo.
            if ok.load(std::sync::atomic::Ordering::Relaxed) { code } else { ExitCode::FAILURE }
        }
        Command::Webhooks(a) => {
            let config = match load(&a.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(api) = config.api else {
                eprintln!("error: {} has no [api.insightiq] table", a.config.display());
                return ExitCode::from(EXIT_CONFIG);
            };
            runtime_then(|| async move { hooklake::webhooks::command(&api, a.inner).await })
        }
        Command::DeadLetters(command) => dead_letters(command),
        Command::Status(a) => {
            let url = match a.url {
                Some(u) => u,
                None => match load(&a.config.config) {
                    Ok(c) => match metrics_url(&c) {
                        Some(u) => u,
                        None => {
                            eprintln!("error: no webhook source in the config; give --url");
                            return ExitCode::from(EXIT_CONFIG);
                        }
                    },
                    Err(code) => return code,
                },
            };
            runtime_then(|| async move { status(&url, a.watch).await })
        }
        Command::Journal(JournalCommand::Dump { config, from, limit, stage }) => {
            let config = match load(&config.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_then(|| async move { journal_dump(&config, from, limit, stage).await })
        }
    }
}

fn plugin_command(command: PluginCommand) -> anyhow::Result<ExitCode> {
    use hooklake::transforms::wasm::{Mapper, Outcome, host};
    use std::io::Write as _;
    let engine = host::engine(None).map_err(anyhow::Error::msg)?;
    let file = match &command {
        PluginCommand::Describe { file } | PluginCommand::Test { file, .. } => file,
    };
    let plugin = host::Plugin::load(&engine, file, host::Limits::default())?;
    let PluginCommand::Test { input, .. } = command else {
        let mut tables = serde_json::Map::new();
        for (name, columns) in &plugin.describe.tables {
            let schema = hooklake::transforms::wasm::schema::table_schema(columns);
            let cols: Vec<String> =
                schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
            tables.insert(name.clone(), serde_json::json!(cols));
        }
        let routes: Vec<_> =
            plugin.describe.routes.iter().map(|r| serde_json::json!({"events": r.events, "table": r.table})).collect();
        let out = serde_json::json!({"name": plugin.describe.name, "version": plugin.describe.version, "routes": routes, "tables": tables});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    };
    let text = std::fs::read_to_string(&input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let docs: Vec<Vec<u8>> = if text.trim_start().starts_with('[') {
        let list: Vec<serde_json::Value> = serde_json::from_str(&text)?;
        list.iter().map(|v| v.to_string().into_bytes()).collect()
    } else {
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.as_bytes().to_vec()).collect()
    };
    let mapper = Mapper::new("test", vec![plugin], hooklake::transforms::wasm::DEFAULT_BATCH);
    let refs: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for (doc, outcome) in docs.iter().zip(mapper.map(&refs)) {
        let head: serde_json::Value = serde_json::from_slice(doc).unwrap_or_default();
        let line = match outcome {
            Outcome::Rows(rows) => serde_json::json!({"id": head["id"], "event": head["event"], "rows": rows}),
            Outcome::Failed(reason) => {
                failed += 1;
                serde_json::json!({"id": head["id"], "event": head["event"], "error": reason})
            }
            Outcome::Unclaimed => serde_json::json!({"id": head["id"], "event": head["event"], "unclaimed": true}),
        };
        writeln!(out, "{line}")?;
    }
    if failed > 0 {
        eprintln!("{failed} of {} events failed", docs.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => Ok(c),
        Err(LoadError::Invalid(errors)) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("{}: {n} error{}", path.display(), if n == 1 { "" } else { "s" });
            Err(ExitCode::from(EXIT_CONFIG))
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
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

fn runtime_then<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, simulator: bool) -> anyhow::Result<()> {
    // Signal handlers go in before anything is announced: a SIGTERM that arrives right after the
    // "listening" line must start a graceful stop, not kill the process.
    let shutdown = hooklake::shutdown::os_signal()?;
    let _api = if simulator { Some(embedded_simulator(&config).await?) } else { None };
    let pipeline = hooklake::topology::build(&config, Arc::new(SystemClock)).await?;
    for (name, addr, path) in pipeline.endpoints() {
        // A stable line on stdout: scripts and tests read the bound port from it (listen = "…:0").
        println!("hooklake: source {name} listening on http://{addr}{path}");
    }
    tracing::info!(data_dir = %config.data_dir.display(), "pipeline running");
    pipeline.run(shutdown).await;
    Ok(())
}

/// Serves the simulator's API where `[api.insightiq] base_url` points (loopback only).
async fn embedded_simulator(config: &Config) -> anyhow::Result<hooklake::simulator::api::Api> {
    let api = config.api.as_ref().ok_or_else(|| anyhow::anyhow!("--simulator needs an [api.insightiq] table"))?;
    let url = url::Url::parse(&api.base_url).map_err(|e| anyhow::anyhow!("[api.insightiq] base_url: {e}"))?;
    let addr = url
        .socket_addrs(|| Some(80))
        .ok()
        .and_then(|a| a.into_iter().next())
        .filter(|a| a.ip().is_loopback() && url.scheme() == "http")
        .ok_or_else(|| {
            anyhow::anyhow!("--simulator serves http on a loopback address; base_url is {}", api.base_url)
        })?;
    let secret = |s: &Option<hooklake::secret::Secret>| s.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
    let options = hooklake::simulator::api::ApiOptions::new(secret(&api.client_id), secret(&api.client_secret));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("simulator cannot listen on {addr}: {e}"))?;
    let served = hooklake::simulator::api::serve(listener, options).await?;
    println!("hooklake: simulator api listening on http://{}", served.addr());
    Ok(served)
}

fn journal_stats(config: &Config) -> anyhow::Result<()> {
    let journal = hooklake::topology::open_journal(config, Arc::new(SystemClock), None)?;
    println!("{}", serde_json::to_string_pretty(&journal.stats())?);
    journal.close();
    Ok(())
}

async fn journal_dump(config: &Config, from: u64, limit: u64, stage: Option<String>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let journal = hooklake::topology::open_journal(config, Arc::new(SystemClock), None)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut next = from;
    let mut left = limit;
    if let Some(stage) = stage {
        if !config.transforms.iter().any(|t| t.name == stage) {
            anyhow::bail!("no transform `{stage}` in {}", config.file.display());
        }
        let consumer = hooklake::transforms::enrich::consumer(&stage);
        while left > 0 {
            let page = usize::try_from(left.min(1000)).unwrap_or(1000);
            let outputs = journal.read_outputs(&consumer, next, page).await?;
            let Some((last, _)) = outputs.outputs.last() else { break };
            next = last + 1;
            left = left.saturating_sub(outputs.outputs.len() as u64);
            for (_, doc) in &outputs.outputs {
                out.write_all(doc)?;
                out.write_all(b"\n")?;
            }
        }
        left = 0;
    }
    while left > 0 {
        let page = usize::try_from(left.min(1000)).unwrap_or(1000);
        let records = journal.read(next, page).await?;
        let Some(last) = records.last() else { break };
        next = last.seq + 1;
        left = left.saturating_sub(records.len() as u64);
        for r in &records {
            let e = &r.entry;
            let line = serde_json::json!({
                "seq": r.seq,
                "source": e.source,
                "received_at": format_micros(e.received_at),
                "source_ip": e.source_ip,
                "event": e.event,
                "id": e.id,
                "name": e.name,
                "dedup_key": e.dedup_key,
                "headers": e.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "body": String::from_utf8_lossy(&e.body),
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    drop(out);
    tokio::task::spawn_blocking(move || journal.close()).await?;
    Ok(())
}

/// `http://<listen>/metrics` of the first webhook source (an unspecified address becomes loopback).
fn metrics_url(config: &Config) -> Option<String> {
    let hooklake::config::SourceConfig::Webhook(w) = &config.sources.first()?.kind;
    let mut addr = w.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(format!("http://{addr}/metrics"))
}

async fn status(url: &str, watch: Option<u64>) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    /// A metrics page is a few KiB; refuse to hold more than this of whatever answers.
    const MAX_SCRAPE: usize = 8 << 20;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    loop {
        let mut response = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| anyhow::anyhow!("cannot read {url} (is `hooklake run` running there?): {e}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(body.len() <= MAX_SCRAPE, "{url} answered more than {MAX_SCRAPE} bytes: not /metrics?");
        }
        let text = String::from_utf8_lossy(&body);
        let screen = hooklake::status::render(url, &hooklake::status::Scrape::parse(&text));
        let Some(secs) = watch else {
            print!("{screen}");
            return Ok(());
        };
        if std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
        println!("{screen}");
        tokio::time::sleep(std::time::Duration::from_secs(secs.max(1))).await;
    }
}

fn dead_letters(command: DeadLettersCommand) -> ExitCode {
    use hooklake::dead_letters::{DeadLetters, Selection};
    let config_path = match &command {
        DeadLettersCommand::List { config, .. }
        | DeadLettersCommand::Show { config, .. }
        | DeadLettersCommand::Replay { config, .. }
        | DeadLettersCommand::Purge { config, .. } => config.config.clone(),
    };
    let config = match load(&config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = DeadLetters::new(&config.data_dir);
    let letters = match store.list() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: reading {}: {e}", store.dir().display());
            return ExitCode::FAILURE;
        }
    };
    match command {
        DeadLettersCommand::List { select, json, .. } => {
            let selection: Selection = select.into();
            let chosen: Vec<_> = letters.iter().filter(|l| selection.is_empty() || selection.matches(l)).collect();
            if json {
                for l in chosen {
                    let mut v = serde_json::to_value(l).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("body");
                        o.remove("document");
                    }
                    println!("{v}");
                }
            } else {
                print!("{}", render_letters(&chosen, store.queued()));
            }
            ExitCode::SUCCESS
        }
        DeadLettersCommand::Show { key, .. } => {
            let found = letters.iter().find(|l| l.event_id == key || l.seq.to_string() == key);
            match found.map(serde_json::to_string_pretty) {
                Some(Ok(text)) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
                None => {
                    eprintln!("error: no dead letter with id or seq `{key}` in {}", store.dir().display());
                    ExitCode::FAILURE
                }
            }
        }
        DeadLettersCommand::Replay { select, no_wait, .. } => {
            let selection: Selection = select.into();
            if selection.is_empty() {
                eprintln!("error: say which dead letters to replay: --all, --id, --seq, --stage or --reason");
                return ExitCode::from(2);
            }
            let chosen: Vec<_> = letters.into_iter().filter(|l| selection.matches(l)).collect();
            let stages = hooklake::dead_letters::replay_stages(&config);
            let unknown: std::collections::BTreeSet<&str> =
                chosen.iter().map(|l| l.stage.as_str()).filter(|s| !stages.iter().any(|k| k == s)).collect();
            if !unknown.is_empty() {
                eprintln!(
                    "error: {} has no stage {}: its letters cannot go back (restore the stage, or purge them)",
                    config_path.display(),
                    unknown.into_iter().collect::<Vec<_>>().join(", ")
                );
                return ExitCode::FAILURE;
            }
            runtime_then(|| replay(config, store, chosen, no_wait))
        }
        DeadLettersCommand::Purge { select, .. } => {
            let selection: Selection = select.into();
            if selection.is_empty() {
                eprintln!("error: say which dead letters to purge: --all, --id, --seq, --stage or --reason");
                return ExitCode::from(2);
            }
            let mut n = 0;
            for l in letters.iter().filter(|l| selection.matches(l)) {
                if let Err(e) = store.remove(l) {
                    eprintln!("error: removing the letter of seq {}: {e}", l.seq);
                    return ExitCode::FAILURE;
                }
                n += 1;
            }
            println!("purged {n} dead letter{}", if n == 1 { "" } else { "s" });
            ExitCode::SUCCESS
        }
    }
}

fn render_letters(letters: &[&hooklake::dead_letters::DeadLetter], queued: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if letters.is_empty() {
        let _ = writeln!(out, "no dead letters");
    } else {
        let _ =
            writeln!(out, "{:<18} {:>8} {:<38} {:<24} {:<20} REASON", "STAGE", "SEQ", "EVENT ID", "EVENT", "DEAD AT");
        let mut by: std::collections::BTreeMap<(&str, String), u64> = std::collections::BTreeMap::new();
        for l in letters {
            let reason: String = l.reason.chars().take(80).collect();
            let dead_at: String = l.dead_at.chars().take(19).collect();
            let _ = writeln!(
                out,
                "{:<18} {:>8} {:<38} {:<24} {:<20} {reason}",
                l.stage, l.seq, l.event_id, l.event, dead_at
            );
            // Reasons carry ids and numbers; the first words group them.
            let short: String = l.reason.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
            *by.entry((l.stage.as_str(), short)).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "\n{} dead letter{}, by stage and reason:",
            letters.len(),
            if letters.len() == 1 { "" } else { "s" }
        );
        for ((stage, reason), n) in by {
            let _ = writeln!(out, "  {n:>6}  {stage:<18} {reason}…");
        }
    }
    if queued > 0 {
        let _ = writeln!(out, "{queued} more queued for replay (`hooklake run` appends them to the journal)");
    }
    out
}

async fn replay(
    config: Config,
    store: hooklake::dead_letters::DeadLetters,
    chosen: Vec<hooklake::dead_letters::DeadLetter>,
    no_wait: bool,
) -> anyhow::Result<()> {
    use hooklake::progress::Progress;
    let total = chosen.len() as u64;
    if total == 0 {
        println!("no dead letters match");
        return Ok(());
    }
    let mut progress = Progress::new("queueing");
    for (i, l) in chosen.iter().enumerate() {
        store.enqueue(l).map_err(|e| anyhow::anyhow!("queueing the letter of seq {}: {e}", l.seq))?;
        progress.set(i as u64 + 1, total, "");
    }
    progress.finish(total, total, "queued");
    // When no pipeline runs, the journal is free: append the replays now; `hooklake run` processes them.
    match hooklake::topology::open_journal(&config, Arc::new(SystemClock), None) {
        Ok(journal) => {
            let stages = hooklake::dead_letters::replay_stages(&config);
            let mut done = hooklake::dead_letters::Injected::default();
            loop {
                let step = hooklake::dead_letters::inject(&store, &journal, &stages).await?;
                done.appended += step.appended;
                done.already += step.already;
                done.waiting = step.waiting;
                if step.appended + step.already == 0 {
                    break;
                }
            }
            tokio::task::spawn_blocking(move || journal.close()).await?;
            println!(
                "replayed {} dead letter{} into the journal ({} already there); `hooklake run` takes them through the pipeline",
                done.appended,
                if done.appended == 1 { "" } else { "s" },
                done.already
            );
            if done.waiting > 0 {
                println!(
                    "{} stay queued until every stage has passed their events; `hooklake run` appends them then",
                    done.waiting
                );
            }
            Ok(())
        }
        Err(hooklake::BuildError::Journal { source: hooklake::journal::JournalError::InUse, .. }) => {
            if no_wait {
                println!("queued {total}; the running pipeline takes them within a second");
                return Ok(());
            }
            let mut progress = Progress::new("replaying");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let left = store.queued() as u64;
                let done = total.saturating_sub(left);
                if left == 0 {
                    progress.finish(done, total, "taken by the running pipeline");
                    break;
                }
                if std::time::Instant::now() > deadline {
                    progress.finish(done, total, "");
                    anyhow::bail!("the running pipeline has not taken {left} queued letters in 2 minutes; see its log");
                }
                progress.set(done, total, "taken by the running pipeline");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            println!(
                "replayed {total} dead letter{}; follow them with `hooklake status`",
                if total == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
