//! The InsightIQ simulator: a faithful stand-in for the InsightIQ API and its webhook sender, for tests,
//! benchmarks and the demo (`hooklake simulate`). The facts it follows are in `spec/insightiq.md`.
//!
//! - [`records`]: what the API returns, a pure function of (kind, id).
//! - [`events`]: realistic webhook bodies, a pure function of (seed, event number).
//! - [`api`]: the HTTP API (bulk searches, accounts, profiles, audience, comments, webhook management) with
//!   InsightIQ's limits, injectable faults and `/_sim/*` control endpoints.
//! - [`sender`]: delivers events to a URL the way InsightIQ does (signature, 5 s timeout, retries after 1 min,
//!   5 min, 6 h), plus deliberate duplicates, reordering and bad signatures.
//!
//! Everything made up is deterministic (no random number generator): two runs with the same seed send the
//! same bytes, and a test can recompute what a simulator process served. The simulator never touches the
//! pipeline's state; it only talks HTTP.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hooklake::simulator::{api, sender};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let api = api::serve(listener, api::ApiOptions::new("demo-client", "example-secret")).await?;
//! let report = sender::send(sender::SendOptions::new("http://127.0.0.1:8080/webhook", "example-secret")).await?;
//! assert_eq!(report.acknowledged.len() + report.failed.len(), 1000);
//! println!("{} API requests", api.stats().requests);
//! # Ok(())
//! # }
//! ```

pub mod api;
mod dice;
pub mod events;
pub mod records;
pub mod sender;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::secret::Secret;

/// `hooklake simulate`: serve the simulated API, send webhooks, or both.
///
/// With `--api-listen` alone the API runs until SIGINT/SIGTERM. With `--send-to` alone the events are sent, the
/// report is written, and the command exits. With both, the API starts first, the events are sent, the report
/// is written, and the API keeps running until SIGINT/SIGTERM (the pipeline still fetches records after the
/// last webhook).
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Serve the simulated InsightIQ API on this address (port 0 picks one; the real address is printed).
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<SocketAddr>,

    /// The client id the API accepts (Basic auth user).
    #[arg(long, value_name = "ID", default_value = "demo-client")]
    pub client_id: String,

    /// The client secret: Basic auth password of the API and the key webhooks are signed with.
    #[arg(long, value_name = "SECRET", default_value = "example-secret", value_parser = secret)]
    pub client_secret: Secret,

    /// API requests allowed per fixed 1-second window, across all endpoints (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub rate_limit: u32,

    /// API requests allowed in progress at once (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_concurrent: usize,

    /// API requests answered 500/502/503, per 1000.
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub error_permille: u32,

    /// API requests answered 429 on top of the real limit, per 1000.
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub throttle_permille: u32,

    /// `Retry-After` seconds of an injected 429.
    #[arg(long = "retry-after", value_name = "SECS", default_value_t = 1)]
    pub retry_after_secs: u64,

    /// API requests answered late, per 1000.
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub slow_permille: u32,

    /// How late a slow answer is, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub slow_ms: u64,

    /// Ids that "no longer exist", per 1000 (missing from bulk answers, 404 for single records).
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub missing_permille: u32,

    /// Answer every API request with 503, as during the weekly maintenance window.
    #[arg(long)]
    pub down: bool,

    /// Send webhooks to this URL (the pipeline's webhook endpoint).
    #[arg(long, value_name = "URL")]
    pub send_to: Option<String>,

    /// How many events to send.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub events: u64,

    /// Events started per second (0 = as fast as `--concurrency` allows).
    #[arg(long, value_name = "PER_SEC", default_value_t = 0.0)]
    pub rate: f64,

    /// Seed of the event stream: the same seed sends the same bodies.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Acknowledged events sent once more (same bytes), per 1000.
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub duplicates_permille: u32,

    /// Shuffle delivery order within windows of 8 events.
    #[arg(long)]
    pub reorder: bool,

    /// Extra bodies with a wrong signature (expected to get 401), per 1000 events.
    #[arg(long, value_name = "PERMILLE", default_value_t = 0, value_parser = permille())]
    pub bad_signatures_permille: u32,

    /// Multiplies the retry delays of 60 s, 300 s and 21600 s (e.g. 0.001 for a quick run).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub retry_scale: f64,

    /// Webhook requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub concurrency: usize,

    /// Send only these event types (comma-separated, equally often) instead of the live-like mix.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub event_types: Vec<String>,

    /// Most ids in one event's `items` (1..=100).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_items: u16,

    /// Timeout of each webhook request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,

    /// Write the send report (JSON) to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

fn secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

fn permille() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(0..=1000)
}

impl SimulateArgs {
    /// The API options these flags describe.
    pub fn api_options(&self) -> api::ApiOptions {
        api::ApiOptions {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.expose().to_owned(),
            rate_limit: self.rate_limit,
            max_concurrent: self.max_concurrent,
            faults: api::Faults {
                error_permille: self.error_permille,
                throttle_permille: self.throttle_permille,
                retry_after_secs: self.retry_after_secs,
                slow_permille: self.slow_permille,
                slow_ms: self.slow_ms,
                missing_permille: self.missing_permille,
                down: self.down,
            },
        }
    }

    /// The sender options these flags describe, sending to `url`.
    pub fn send_options(&self, url: &str) -> sender::SendOptions {
        sender::SendOptions {
            url: url.to_owned(),
            secret: self.client_secret.expose().to_owned(),
            events: self.events,
            rate: self.rate,
            seed: self.seed,
            duplicate_permille: self.duplicates_permille,
            reorder: self.reorder,
            bad_signature_permille: self.bad_signatures_permille,
            retry_scale: self.retry_scale,
            timeout: Duration::from_millis(self.timeout_ms),
            concurrency: self.concurrency,
            mix: events::Mix { types: self.event_types.clone(), max_items: usize::from(self.max_items) },
        }
    }
}

/// Runs `hooklake simulate` (see [`SimulateArgs`] for what each combination of flags does).
///
/// # Errors
/// When neither `--api-listen` nor `--send-to` is given, the address cannot be bound, the sender's options are
/// invalid, or the report cannot be written.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    if args.api_listen.is_none() && args.send_to.is_none() {
        bail!("nothing to simulate: give --api-listen ADDR, --send-to URL, or both");
    }
    let mut running = None;
    if let Some(addr) = args.api_listen {
        // Handlers go in before the address is announced: a signal right after it must not kill the process.
        let signal = crate::shutdown::os_signal().context("installing signal handlers")?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let api = api::serve(listener, args.api_options()).await.context("starting the simulated API")?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "hooklake: simulator api listening on http://{}", api.addr())?;
        stdout.flush()?;
        running = Some((api, signal));
    }
    if let Some(url) = &args.send_to {
        let report = sender::send(args.send_options(url)).await?;
        let text = serde_json::to_string_pretty(&report)?;
        match &args.report {
            Some(path) => std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?,
            None => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{text}")?;
                stdout.flush()?;
            }
        }
    }
    if let Some((api, signal)) = running {
        signal.await;
        api.shutdown();
    }
    Ok(())
}
