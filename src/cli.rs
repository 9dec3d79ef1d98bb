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
    Run(ConfigArg),
    /// Check the config without starting anything: every error as file:line:col, exit 0 or 78.
    Validate(ConfigArg),
    /// The InsightIQ simulator: serve its API (--api-listen) and/or send it signed webhooks (--send-to).
    Simulate(hooklake::simulator::SimulateArgs),
    /// Inspect the journal (the pipeline must be stopped: the journal has one user at a time).
    #[command(subcommand)]
    Journal(JournalCommand),
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
            let config = match load(&a.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_then(|| async move { run(config).await })
        }
        Command::Simulate(args) => runtime_then(|| hooklake::simulator::simulate(args)),
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

async fn run(config: Config) -> anyhow::Result<()> {
    // Signal handlers go in before anything is announced: a SIGTERM that arrives right after the
    // "listening" line must start a graceful stop, not kill the process.
    let shutdown = shutdown_signal()?;
    let pipeline = hooklake::topology::build(&config, Arc::new(SystemClock)).await?;
    for (name, addr, path) in pipeline.endpoints() {
        // A stable line on stdout: scripts and tests read the bound port from it (listen = "…:0").
        println!("hooklake: source {name} listening on http://{addr}{path}");
    }
    tracing::info!(data_dir = %config.data_dir.display(), "pipeline running");
    pipeline.run(shutdown).await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are registered when this is called, not when it is polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
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
