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
    init_logging(cli.log_format);
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
