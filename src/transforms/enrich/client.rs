//! The InsightIQ API client of the enrich stage: one call of the [`Tracker`](super::coalesce::Tracker) becomes
//! one request (or one per page for comments), each through the shared [`RateLimiter`], retried on 429 (after
//! `Retry-After`, pausing every caller), 5xx, 401/403 and timeouts (exponential backoff with jitter) for at most
//! `retry_for`. A 400 is not retried: asking again cannot help. Credentials never appear in logs or errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::time::Instant;

use super::coalesce::{Answer, Call, Failure};
use super::config::EnrichConfig;
use super::limiter::RateLimiter;
use super::plan::Endpoint;
use crate::metrics::EnrichMetrics;
use crate::secret::Secret;

/// Page size for comments (the API's maximum).
pub const PAGE: usize = 100;
/// Most pages of comments fetched for one content id: a bound on one call's work.
pub const MAX_PAGES: usize = 1_000;
/// First backoff after a failure; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most bytes read from one answer (100 full records are a few hundred KiB).
pub const MAX_ANSWER: usize = 64 << 20;

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Basic auth user.
    pub client_id: Secret,
    /// Basic auth password.
    pub client_secret: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests per second.
    pub rate_limit: u64,
}

/// Calls the API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: String,
    limiter: Arc<RateLimiter>,
    config: EnrichConfig,
    metrics: Arc<EnrichMetrics>,
}

/// One request's outcome, before retry decisions.
enum Attempt {
    Ok(Value),
    NotFound,
    /// Retry after this long (429).
    Throttled(Duration),
    /// Worth retrying (5xx, auth, timeouts, connection errors, unreadable answers).
    Retry(String),
    /// Asking again cannot help (400 and other 4xx).
    Fatal(String),
}

impl Client {
    /// A client for `access`, sharing `limiter` with every other caller of the same API.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(
        access: &ApiAccess,
        limiter: Arc<RateLimiter>,
        config: EnrichConfig,
        metrics: Arc<EnrichMetrics>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(access.timeout)
            .connect_timeout(access.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrency)
            .user_agent(concat!("hooklake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            access.client_id.expose(),
            access.client_secret.expose()
        ));
        Ok(Self {
            http,
            base: access.base_url.trim_end_matches('/').to_owned(),
            auth: format!("Basic {token}"),
            limiter,
            config,
            metrics,
        })
    }

    /// Makes `call`, with retries, and says what it found.
    pub async fn call(&self, call: &Call) -> Answer {
        let started = Instant::now();
        let result = match call.endpoint {
            e if e.is_bulk() => self.bulk(e, call).await,
            Endpoint::Comments => self.comments(call).await,
            e => self.single(e, call).await,
        };
        self.metrics.call_latency.observe(started.elapsed());
        match result {
            Ok(found) => {
                self.metrics.calls_ok.fetch_add(1, Ordering::Relaxed);
                let asked = call.wants.len() as u64;
                let missing = call.wants.iter().filter(|w| !found.contains_key(&w.id)).count() as u64;
                self.metrics.ids_requested.fetch_add(asked, Ordering::Relaxed);
                self.metrics.ids_missing.fetch_add(missing, Ordering::Relaxed);
                Answer::Found(found)
            }
            Err(failure) => {
                self.metrics.calls_failed.fetch_add(1, Ordering::Relaxed);
                Answer::Failed(failure)
            }
        }
    }

    async fn bulk(&self, endpoint: Endpoint, call: &Call) -> Result<HashMap<String, Vec<Value>>, Failure> {
        let ids: Vec<&str> = call.wants.iter().map(|w| w.id.as_str()).collect();
        let body = serde_json::json!({ "ids": ids }).to_string();
        let path = self.config.path(endpoint);
        let url = format!("{}{path}", self.base);
        let answer = self.request(&format!("POST {path}"), || self.http.post(&url).body(body.clone())).await?;
        let mut found: HashMap<String, Vec<Value>> = HashMap::new();
        if let Some(Value::Array(records)) = answer.map(|mut v| v["data"].take()) {
            for record in records {
                if let Some(id) = record.get("id").and_then(Value::as_str).map(str::to_owned)
                    && call.wants.iter().any(|w| w.id == id)
                {
                    found.entry(id).or_default().push(record);
                }
            }
        }
        Ok(found)
    }

    async fn single(&self, endpoint: Endpoint, call: &Call) -> Result<HashMap<String, Vec<Value>>, Failure> {
        let mut found = HashMap::new();
        for want in &call.wants {
            let template = self.config.path(endpoint);
            let id = encode(&want.id);
            let (path, query) = if template.contains("{id}") {
                (template.replace("{id}", &id), String::new())
            } else {
                (template.to_owned(), format!("?account_id={id}"))
            };
            let url = format!("{}{path}{query}", self.base);
            if let Some(record) = self.request(&format!("GET {template}"), || self.http.get(&url)).await? {
                found.insert(want.id.clone(), vec![record]);
            }
        }
        Ok(found)
    }

    async fn comments(&self, call: &Call) -> Result<HashMap<String, Vec<Value>>, Failure> {
        let mut found = HashMap::new();
        let path = self.config.path(Endpoint::Comments);
        for want in &call.wants {
            let account = encode(want.account_id.as_deref().unwrap_or_default());
            let content = encode(&want.id);
            let mut all = Vec::new();
            let mut exists = true;
            for page in 0..MAX_PAGES {
                let url = format!(
                    "{}{path}?account_id={account}&content_id={content}&limit={PAGE}&offset={}",
                    self.base,
                    page * PAGE
                );
                let Some(mut answer) = self.request(&format!("GET {path}"), || self.http.get(&url)).await? else {
                    exists = false;
                    break;
                };
                let Value::Array(records) = answer["data"].take() else { break };
                let n = records.len();
                all.extend(records);
                if n < PAGE {
                    break;
                }
            }
            if exists {
                found.insert(want.id.clone(), all);
            }
        }
        Ok(found)
    }

    /// One logical request with retries: `Some(body)` on 2xx, `None` on 404.
    async fn request(&self, what: &str, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Option<Value>, Failure> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut jitter = Jitter::new();
        loop {
            self.limiter.acquire().await;
            attempts += 1;
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let (attempt, request_id) = self.attempt(&build).await;
            let wait = match attempt {
                Attempt::Ok(v) => return Ok(Some(v)),
                Attempt::NotFound => return Ok(None),
                Attempt::Fatal(reason) => {
                    return Err(Failure { reason: format!("{what}: {reason}"), attempts, request_id });
                }
                Attempt::Throttled(wait) => {
                    self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                    self.limiter.pause_for(wait);
                    tracing::debug!(what, ?wait, request_id, "throttled by the API (429); every call waits");
                    (wait, "429 Too Many Requests".to_owned())
                }
                Attempt::Retry(reason) => {
                    let wait = jitter.spread(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(what, reason, attempts, request_id, "API call failed; retrying");
                    (wait, reason)
                }
            };
            let (wait, reason) = wait;
            if started.elapsed() + wait > self.config.retry_for {
                let reason = format!(
                    "{what}: {reason}; gave up after {attempts} attempts over {:.0?} (retry_for)",
                    started.elapsed()
                );
                tracing::error!(reason, request_id, "API call failed for good; its events go to the dead letters");
                return Err(Failure { reason, attempts, request_id });
            }
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, build: &impl Fn() -> reqwest::RequestBuilder) -> (Attempt, Option<String>) {
        let request = build()
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json");
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (Attempt::Retry("timed out".into()), None),
            Err(e) => return (Attempt::Retry(format!("request failed: {}", without_url(&e))), None),
        };
        let status = response.status();
        let request_id =
            response.headers().get("request-id").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(128).collect());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(1), |s| Duration::from_secs(s.min(3600)));
        let body = match read_limited(response).await {
            Ok(b) => b,
            Err(reason) => return (Attempt::Retry(reason), request_id),
        };
        let attempt = match status.as_u16() {
            // A page of 100 records is parsed off the runtime's threads, which answer webhooks.
            200..=299 => match tokio::task::spawn_blocking(move || serde_json::from_slice::<Value>(&body)).await {
                Ok(Ok(v)) => Attempt::Ok(v),
                Ok(Err(e)) => Attempt::Retry(format!("answered {status} with a body that is not JSON: {e}")),
                Err(e) => Attempt::Retry(format!("parsing the answer failed: {e}")),
            },
            404 => Attempt::NotFound,
            429 => Attempt::Throttled(retry_after),
            401 | 403 | 408 | 500..=599 => Attempt::Retry(describe(status, &body)),
            _ => Attempt::Fatal(describe(status, &body)),
        };
        (attempt, request_id)
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(format!("answer larger than {MAX_ANSWER} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err("timed out reading the answer".into()),
            Err(e) => return Err(format!("reading the answer failed: {}", without_url(&e))),
        }
    }
}

/// `answered 503 (error_code: message)` from InsightIQ's error body, when it has one.
fn describe(status: reqwest::StatusCode, body: &[u8]) -> String {
    let err = serde_json::from_slice::<Value>(body).ok().and_then(|mut v| match v["error"].take() {
        Value::Object(o) => Some(o),
        _ => None,
    });
    match err {
        Some(e) => {
            let code = e.get("error_code").and_then(Value::as_str).unwrap_or("?");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            format!("answered {status} ({code}: {message})")
        }
        None => format!("answered {status}"),
    }
}

/// A reqwest error's text without its URL (which can carry ids, and for a misconfigured base URL, userinfo).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Full jitter in [backoff/2, backoff): a tiny xorshift seeded from the clock, enough to spread retries.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| u64::from(d.subsec_nanos()) | 1);
        Self(seed)
    }

    fn spread(&mut self, backoff: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let half = backoff / 2;
        half + Duration::from_micros(self.0 % u64::try_from(half.as_micros().max(1)).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_backoff() {
        let mut j = Jitter(42);
        for _ in 0..1000 {
            let d = j.spread(Duration::from_secs(2));
            assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(2), "{d:?}");
        }
    }

    #[test]
    fn error_bodies_are_described_with_their_code() {
        let body = br#"{"error": {"type": "x", "error_code": "incorrect_account_id", "message": "Account not found"}}"#;
        assert_eq!(
            describe(reqwest::StatusCode::BAD_REQUEST, body),
            "answered 400 Bad Request (incorrect_account_id: Account not found)"
        );
        assert_eq!(describe(reqwest::StatusCode::BAD_GATEWAY, b"<html>"), "answered 502 Bad Gateway");
    }
}
