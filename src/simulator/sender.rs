//! The webhook sender: delivers [`events::event`](super::events::event) bodies the way InsightIQ does.
//!
//! Each body is signed with HMAC-SHA256 of the raw bytes, keyed by the client secret, lowercase hex in
//! `Webhook-Signatures`. A non-2xx answer, a transport error or the 5 s timeout schedules a retry after 1 min,
//! 5 min and 6 h (each × `retry_scale`); after the third retry fails the event is reported as failed. On top of
//! that the sender can misbehave on purpose: re-send acknowledged events (duplicates), shuffle delivery order
//! within small windows, and send extra bodies with a wrong signature that must be refused with 401.
//!
//! Bounds: at most `concurrency` requests in flight (events waiting for a retry hold no slot), one HTTP client
//! with keep-alive, a timeout on every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dice::{Dice, mix};
use super::events;

/// The header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "Webhook-Signatures";

/// InsightIQ's retry delays in seconds, before `retry_scale`.
pub const RETRY_DELAYS_SECS: [u64; 3] = [60, 300, 21_600];

/// Per-request timeout InsightIQ is assumed to use.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deliveries are shuffled within windows of this many events when `reorder` is on.
pub const REORDER_WINDOW: u64 = 8;

/// The key bad signatures are made with: any key but the real one.
const WRONG_KEY: &str = "not-the-client-secret";

/// What to send and how. `Debug` hides the secret.
#[derive(Clone)]
pub struct SendOptions {
    /// Where to POST (the pipeline's webhook URL).
    pub url: String,
    /// The client secret the signatures are keyed with.
    pub secret: String,
    /// How many events (event numbers `0..events`).
    pub events: u64,
    /// First attempts started per second; 0 = as fast as `concurrency` allows.
    pub rate: f64,
    /// The run's seed: the same seed sends the same bodies.
    pub seed: u64,
    /// Acknowledged events re-sent once more (same bytes), per 1000.
    pub duplicate_permille: u32,
    /// Shuffle delivery order within windows of [`REORDER_WINDOW`] events.
    pub reorder: bool,
    /// Extra bodies with a wrong signature, per 1000 events; they are not events and expect 401.
    pub bad_signature_permille: u32,
    /// Multiplies the retry delays (1.0 = 1 min, 5 min, 6 h; 0.001 for tests).
    pub retry_scale: f64,
    /// Per-request timeout (InsightIQ: 5 s).
    pub timeout: Duration,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// Which events to send (default: the live-like mix).
    pub mix: events::Mix,
}

impl std::fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOptions")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("events", &self.events)
            .field("rate", &self.rate)
            .field("seed", &self.seed)
            .field("duplicate_permille", &self.duplicate_permille)
            .field("reorder", &self.reorder)
            .field("bad_signature_permille", &self.bad_signature_permille)
            .field("retry_scale", &self.retry_scale)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl SendOptions {
    /// Defaults: 1000 events, unpaced, seed 1, no misbehaviour, real retry delays, 5 s timeout, 32 in flight.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            events: 1000,
            rate: 0.0,
            seed: 1,
            duplicate_permille: 0,
            reorder: false,
            bad_signature_permille: 0,
            retry_scale: 1.0,
            timeout: DEFAULT_TIMEOUT,
            concurrency: 32,
            mix: events::Mix::default(),
        }
    }
}

/// What a [`send`] run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SendReport {
    /// Events whose delivery was attempted (each counted once, however many attempts it took).
    pub sent: u64,
    /// Ids of events that got a 2xx at some attempt, each once, in event-number order.
    pub acknowledged: Vec<String>,
    /// Ids of events whose every attempt (first + 3 retries) failed, in event-number order.
    pub failed: Vec<String>,
    /// Deliberate re-sends of acknowledged events.
    pub duplicates_sent: u64,
    /// Extra bodies sent with a wrong signature.
    pub bad_signatures_sent: u64,
    /// Of those, how many got a 2xx (should be 0: the receiver must refuse them).
    pub bad_signatures_accepted: u64,
    /// Every HTTP request made: attempts, retries, duplicates and bad signatures.
    pub attempts: u64,
    /// Answers by status code, plus `timeout` and `error` for requests that got none.
    pub status_counts: BTreeMap<String, u64>,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Answer latency of every request that got an answer, in milliseconds: median.
    #[serde(default)]
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    #[serde(default)]
    pub latency_p99_ms: f64,
}

/// The `Webhook-Signatures` value for `body`: lowercase hex HMAC-SHA256 keyed by `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes any key")
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer with this status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No answer: connection refused, reset…
    Error,
}

impl Outcome {
    pub(crate) fn is_success(self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(&s))
    }

    fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Error => "error".into(),
        }
    }
}

/// One HTTP client for all deliveries: keep-alive, no proxy (the targets are explicit), up to `max_idle`
/// idle connections.
pub(crate) fn client(max_idle: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        .user_agent("hooklake-simulator")
        .build()
}

/// POSTs `body` with `signature` and reads the answer to the end (so the connection can be reused).
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    signature: &str,
    body: Bytes,
    timeout: Duration,
) -> Outcome {
    let request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .timeout(timeout)
        .body(body);
    let classify = |e: reqwest::Error| if e.is_timeout() { Outcome::Timeout } else { Outcome::Error };
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(_) => Outcome::Status(status),
                Err(e) => classify(e),
            }
        }
        Err(e) => classify(e),
    }
}

/// Sends `options.events` events and reports what happened. Returns once every event is acknowledged or has
/// failed its last retry (with `retry_scale` 1.0 that can take over 6 hours).
///
/// # Errors
/// When the URL is not http(s), a number option is out of range, or the HTTP client cannot be built.
pub async fn send(options: SendOptions) -> anyhow::Result<SendReport> {
    let url = reqwest::Url::parse(&options.url).with_context(|| format!("--send-to `{}` is not a URL", options.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--send-to `{}` must be an http:// or https:// URL", options.url);
    }
    if !(options.rate == 0.0 || (1e-3..=1e9).contains(&options.rate)) {
        bail!("rate {} must be 0 (unpaced) or between 0.001 and 1e9 events per second", options.rate);
    }
    if !(0.0..=1000.0).contains(&options.retry_scale) {
        bail!("retry scale {} must be between 0 and 1000", options.retry_scale);
    }
    let concurrency = options.concurrency.max(1);
    let client = client(concurrency).context("building the HTTP client")?;
    let job = Arc::new(Job { client, options, tally: Mutex::new(Tally::default()) });
    let slots = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut started_events: u64 = 0;
    let mut window_start = 0;
    while window_start < job.options.events {
        for n in window(&job.options, window_start) {
            if job.options.rate > 0.0 {
                let due = Duration::try_from_secs_f64(started_events as f64 / job.options.rate).ok();
                let Some(due) = due.and_then(|due| started.checked_add(due)) else {
                    bail!(
                        "{} events at {} per second would take longer than a clock can count",
                        job.options.events,
                        job.options.rate
                    );
                };
                tokio::time::sleep_until(due).await;
            }
            let permit = Arc::clone(&slots).acquire_owned().await.context("delivery slots closed")?;
            tasks.spawn(deliver(Arc::clone(&job), Arc::clone(&slots), n, permit));
            started_events += 1;
            // Reap finished tasks as we go, so the set holds only live ones.
            while let Some(done) = tasks.try_join_next() {
                done.context("a delivery task panicked")?;
            }
        }
        window_start = window_start.saturating_add(REORDER_WINDOW);
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a delivery task panicked")?;
    }
    let tally = std::mem::take(&mut *job.tally.lock().unwrap_or_else(PoisonError::into_inner));
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(tally.into_report(started_events, elapsed_ms))
}

/// The event numbers of the window starting at `start`, shuffled when `reorder` is on.
pub(crate) fn window(options: &SendOptions, start: u64) -> Vec<u64> {
    let end = start.saturating_add(REORDER_WINDOW).min(options.events);
    let mut order: Vec<u64> = (start..end).collect();
    if options.reorder {
        let mut d = Dice::new(mix(options.seed ^ 0x5eed) ^ start);
        for i in (1..order.len()).rev() {
            let j = d.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// What every delivery task shares.
struct Job {
    client: reqwest::Client,
    options: SendOptions,
    tally: Mutex<Tally>,
}

impl Job {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn post(&self, signature: &str, body: Bytes) -> Outcome {
        let started = Instant::now();
        let outcome = post(&self.client, &self.options.url, signature, body, self.options.timeout).await;
        let took = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let mut tally = self.tally();
        if matches!(outcome, Outcome::Status(_)) && tally.latencies_us.len() < MAX_LATENCIES {
            tally.latencies_us.push(took);
        }
        tally.attempts += 1;
        *tally.status_counts.entry(outcome.label()).or_default() += 1;
        outcome
    }
}

/// Delivers event `n`: an optional bad-signature decoy, then up to 4 attempts, then an optional duplicate.
async fn deliver(job: Arc<Job>, slots: Arc<Semaphore>, n: u64, mut permit: OwnedSemaphorePermit) {
    let options = &job.options;
    let mut d = Dice::new(mix(options.seed ^ 0xde11) ^ mix(n));
    if d.chance(options.bad_signature_permille) {
        // A different body (its own event id), so a receiver that wrongly stores it is caught by id.
        let decoy = body(&events::event_with(options.seed ^ 0xbad, n, &options.mix));
        let outcome = job.post(&sign(WRONG_KEY, &decoy), decoy).await;
        let mut tally = job.tally();
        tally.bad_signatures_sent += 1;
        tally.bad_signatures_accepted += u64::from(outcome.is_success());
    }
    let event = events::event_with(options.seed, n, &options.mix);
    let id = event["id"].as_str().unwrap_or_default().to_owned();
    let body = body(&event);
    let signature = sign(&options.secret, &body);
    let mut acknowledged = job.post(&signature, body.clone()).await.is_success();
    for delay in RETRY_DELAYS_SECS {
        if acknowledged {
            break;
        }
        // Waiting for a retry holds no delivery slot.
        drop(permit);
        tokio::time::sleep(Duration::from_secs_f64(delay as f64 * options.retry_scale)).await;
        permit = match Arc::clone(&slots).acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        acknowledged = job.post(&signature, body.clone()).await.is_success();
    }
    if acknowledged && d.chance(options.duplicate_permille) {
        job.post(&signature, body).await;
        job.tally().duplicates_sent += 1;
    }
    let mut tally = job.tally();
    if acknowledged {
        tally.acknowledged.push((n, id))
    } else {
        tally.failed.push((n, id))
    }
    drop(permit);
}

fn body(event: &serde_json::Value) -> Bytes {
    Bytes::from(event.to_string())
}

/// Counters shared by the delivery tasks.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: Vec<(u64, String)>,
    failed: Vec<(u64, String)>,
    duplicates_sent: u64,
    bad_signatures_sent: u64,
    bad_signatures_accepted: u64,
    attempts: u64,
    status_counts: BTreeMap<String, u64>,
    /// Answer latencies, µs (the first [`MAX_LATENCIES`]).
    latencies_us: Vec<u32>,
}

/// Most latencies a run keeps for its percentiles (16 MiB).
const MAX_LATENCIES: usize = 4 << 20;

impl Tally {
    fn into_report(mut self, sent: u64, elapsed_ms: u64) -> SendReport {
        self.acknowledged.sort_unstable();
        self.failed.sort_unstable();
        self.latencies_us.sort_unstable();
        let pct = |q: f64| {
            let n = self.latencies_us.len();
            if n == 0 {
                return 0.0;
            }
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            f64::from(self.latencies_us[i]) / 1000.0
        };
        let (latency_p50_ms, latency_p99_ms) = (pct(0.5), pct(0.99));
        SendReport {
            latency_p50_ms,
            latency_p99_ms,
            sent,
            acknowledged: self.acknowledged.into_iter().map(|(_, id)| id).collect(),
            failed: self.failed.into_iter().map(|(_, id)| id).collect(),
            duplicates_sent: self.duplicates_sent,
            bad_signatures_sent: self.bad_signatures_sent,
            bad_signatures_accepted: self.bad_signatures_accepted,
            attempts: self.attempts,
            status_counts: self.status_counts,
            elapsed_ms,
        }
    }
}
