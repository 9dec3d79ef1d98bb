//! The simulated InsightIQ API: bulk searches, single-record endpoints, comments, webhook management, and
//! `/_sim/*` control endpoints for tests that run the simulator as a separate process.
//!
//! Per data request, in this order: `down` (503) → Basic auth (401) → the real limit, a fixed 1-s window across
//! all endpoints (429, `Retry-After` = seconds to the window's end) → the concurrent-request cap (429) →
//! injected faults: throttle (429, `Retry-After: retry_after_secs`), server error (500/502/503), slow answer →
//! the endpoint. Control endpoints skip all of it and are not counted in [`ApiStats`]. Every answer carries a
//! `request-id` header; every error the InsightIQ error body.
//!
//! Fault draws are a pure function of the request's number, so a run with the same traffic injects the same
//! faults. Bounds: [`MAX_BODY`] per body, [`MAX_CONNECTIONS`] connections, `max_concurrent` requests,
//! [`MAX_WEBHOOKS`] webhooks, a header timeout, and a 5 s timeout on each mock delivery.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::dice::{Dice, TimeFormat, format_time, mix, now_micros, uuid};
use super::events::name_of;
use super::records::{Kind, comment, comment_count, exists, record};
use super::sender;
use crate::shutdown::{Signal, Trigger, stopped};

/// Largest request body, in bytes (413 beyond).
pub const MAX_BODY: usize = 1 << 20;

/// Most ids in one bulk search (documented).
pub const MAX_BULK_IDS: usize = 100;

/// Largest `limit` of a list endpoint (documented).
pub const MAX_LIMIT: usize = 100;

/// `limit` when the request gives none.
pub const DEFAULT_LIMIT: usize = 10;

/// Most open connections; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// Most webhooks one developer can register (400 beyond).
pub const MAX_WEBHOOKS: usize = 1000;

/// Distinct bulk ids remembered for [`ApiStats::bulk_ids_distinct`]; beyond it the count stops growing.
pub const MAX_DISTINCT_IDS: usize = 1 << 22;

/// The header every answer carries.
pub const REQUEST_ID_HEADER: &str = "request-id";

/// Failed mock deliveries in a row after which a webhook is set inactive (InsightIQ: 3 failed attempts).
pub const FAILURES_BEFORE_DEACTIVATION: u32 = 3;

/// How long a client may take to send its headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for an open connection to finish its request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the API is set up. `Debug` hides the secret.
#[derive(Clone)]
pub struct ApiOptions {
    /// Basic auth user.
    pub client_id: String,
    /// Basic auth password and the key webhook signatures are made with.
    pub client_secret: String,
    /// Requests allowed per fixed 1-s window across all data endpoints; 0 = unlimited.
    pub rate_limit: u32,
    /// Most data requests in progress at once (429 beyond); 0 = unlimited.
    pub max_concurrent: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
}

impl std::fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("rate_limit", &self.rate_limit)
            .field("max_concurrent", &self.max_concurrent)
            .field("faults", &self.faults)
            .finish()
    }
}

impl ApiOptions {
    /// InsightIQ's limits (10 requests per second, 32 concurrent) and no faults.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            rate_limit: 10,
            max_concurrent: 32,
            faults: Faults::default(),
        }
    }
}

/// Faults injected into data requests. As JSON (`PUT /_sim/faults`) every field is optional and defaults to
/// "off"; unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Requests answered 500, 502 or 503, per 1000.
    pub error_permille: u32,
    /// Requests answered 429 (besides the real limit), per 1000.
    pub throttle_permille: u32,
    /// `Retry-After` of an injected 429, in seconds.
    pub retry_after_secs: u64,
    /// Requests answered only after `slow_ms`, per 1000.
    pub slow_permille: u32,
    /// How long a slow answer waits, in milliseconds.
    pub slow_ms: u64,
    /// Ids that "no longer exist", per 1000 (absent from bulk answers, 404 for single records).
    pub missing_permille: u32,
    /// Every data request gets 503 (a maintenance window).
    pub down: bool,
}

/// What the API has seen. Counts data requests only, never `/_sim/*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiStats {
    /// Data requests answered.
    pub requests: u64,
    /// Answers by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests by endpoint template (`POST /v1/social/contents/search`, `GET /v1/accounts/{id}`, `other`).
    pub by_endpoint: BTreeMap<String, u64>,
    /// Bulk search calls that reached the endpoint (well-formed or not).
    pub bulk_calls: u64,
    /// Ids asked for in well-formed bulk searches, repeats included.
    pub bulk_ids: u64,
    /// Distinct ids asked for in bulk searches (stops growing at [`MAX_DISTINCT_IDS`]).
    pub bulk_ids_distinct: u64,
    /// Most requests that reached the limiter in one fixed 1-s window (refused ones included).
    pub max_fixed_window: u64,
    /// Most requests that reached the limiter within any 1 s (a sliding window over arrival instants).
    pub max_sliding_window: u64,
    /// 429s from the real fixed-window limit.
    pub rate_limited: u64,
    /// 429s from the concurrent-request cap.
    pub concurrency_limited: u64,
    /// 429s injected by `throttle_permille`.
    pub injected_throttles: u64,
    /// 5xx injected by `error_permille`.
    pub injected_errors: u64,
    /// Every 5xx answered (injected, `down`, or a failed mock delivery).
    pub server_errors: u64,
    /// Mock notifications delivered by `POST /v1/webhooks/send` (one per webhook reached).
    pub webhooks_sent: u64,
}

/// A running simulated API. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

/// Binds nothing: serves on `listener` (bind it to port 0 in tests) in a spawned task and returns at once.
///
/// # Errors
/// When the listener has no local address or the HTTP client for mock deliveries cannot be built.
pub async fn serve(listener: TcpListener, options: ApiOptions) -> std::io::Result<Api> {
    let addr = listener.local_addr()?;
    let client = sender::client(8).map_err(std::io::Error::other)?;
    let (stop, signal) = crate::shutdown::channel();
    let slots = if options.max_concurrent == 0 { Semaphore::MAX_PERMITS } else { options.max_concurrent };
    let inner = Arc::new(Inner {
        addr,
        credentials: format!("{}:{}", options.client_id, options.client_secret),
        secret: options.client_secret,
        rate_limit: options.rate_limit,
        slots: Semaphore::new(slots),
        faults: Mutex::new(options.faults),
        tally: Mutex::new(Tally::default()),
        webhooks: Mutex::new(Vec::new()),
        requests: AtomicU64::new(0),
        started: Instant::now(),
        stop,
        client,
    });
    tokio::spawn(accept(listener, Arc::clone(&inner), signal));
    Ok(Api { inner })
}

impl Api {
    /// Same as [`serve`].
    ///
    /// # Errors
    /// As [`serve`].
    pub async fn serve(listener: TcpListener, options: ApiOptions) -> std::io::Result<Api> {
        serve(listener, options).await
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://ADDR`, the base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.inner.faults().clone()
    }

    /// Replaces the faults; later requests see the new ones.
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults() = faults;
    }

    /// A snapshot of what the API has seen.
    pub fn stats(&self) -> ApiStats {
        self.inner.tally().stats.clone()
    }

    /// Sets webhook `id` inactive, as InsightIQ does after failed deliveries. False when there is no such webhook.
    pub fn deactivate_webhook(&self, id: &str) -> bool {
        self.inner.deactivate(id).is_some()
    }

    /// Stops accepting connections and lets open ones finish their current request.
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
    }
}

/// State shared by every connection.
struct Inner {
    addr: SocketAddr,
    /// `client_id:client_secret`, what Basic auth must decode to.
    credentials: String,
    secret: String,
    rate_limit: u32,
    /// One permit per data request in progress.
    slots: Semaphore,
    faults: Mutex<Faults>,
    tally: Mutex<Tally>,
    webhooks: Mutex<Vec<Webhook>>,
    /// Requests received so far: numbers request ids, fault draws and mock event ids.
    requests: AtomicU64,
    /// Start of the first fixed rate-limit window.
    started: Instant,
    stop: Trigger,
    client: reqwest::Client,
}

impl Inner {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn webhooks(&self) -> MutexGuard<'_, Vec<Webhook>> {
        self.webhooks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .is_ok_and(|decoded| decoded == self.credentials.as_bytes())
    }

    fn deactivate(&self, id: &str) -> Option<Value> {
        let mut webhooks = self.webhooks();
        let webhook = webhooks.iter_mut().find(|w| w.id == id)?;
        webhook.is_active = false;
        webhook.updated_at = now();
        Some(webhook.to_json())
    }
}

/// Counters and the rate limiter's state, under one lock.
#[derive(Debug, Default)]
struct Tally {
    stats: ApiStats,
    distinct: HashSet<u64>,
    /// Index of the current fixed window (seconds since start) and how many requests reached it.
    window: u64,
    window_count: u64,
    /// Arrival instants within the last second, oldest first (at most one second's worth of requests).
    recent: VecDeque<Instant>,
}

impl Tally {
    /// Counts a request against the limit. Returns how many requests the current fixed window has seen
    /// (this one included) and the whole seconds until the window ends.
    fn arrive(&mut self, now: Instant, started: Instant) -> (u64, u64) {
        let since = now.saturating_duration_since(started);
        let window = since.as_secs();
        if window != self.window {
            self.window = window;
            self.window_count = 0;
        }
        self.window_count += 1;
        self.stats.max_fixed_window = self.stats.max_fixed_window.max(self.window_count);
        while self.recent.front().is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1)) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.stats.max_sliding_window = self.stats.max_sliding_window.max(self.recent.len() as u64);
        let left = Duration::from_secs(window + 1).saturating_sub(since);
        (self.window_count, (left.as_millis() as u64).div_ceil(1000).max(1))
    }

    fn answered(&mut self, endpoint: String, status: StatusCode) {
        self.stats.requests += 1;
        *self.stats.by_status.entry(status.as_u16()).or_default() += 1;
        *self.stats.by_endpoint.entry(endpoint).or_default() += 1;
        if status.is_server_error() {
            self.stats.server_errors += 1;
        }
    }

    fn bulk(&mut self, ids: &[&str]) {
        self.stats.bulk_ids += ids.len() as u64;
        for id in ids {
            if self.distinct.len() < MAX_DISTINCT_IDS {
                self.distinct.insert(super::dice::hash("bulk", id));
            }
        }
        self.stats.bulk_ids_distinct = self.distinct.len() as u64;
    }
}

/// A registered webhook.
#[derive(Debug, Clone)]
struct Webhook {
    id: String,
    url: String,
    events: Vec<String>,
    name: String,
    is_active: bool,
    created_at: String,
    updated_at: String,
    /// Failed mock deliveries in a row.
    failures: u32,
}

impl Webhook {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "name": self.name,
            "is_active": self.is_active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

fn now() -> String {
    format_time(now_micros(), TimeFormat::Naive)
}

/// Salts that keep the numbered ids and draws of one request unrelated.
const REQUEST_ID_SALT: u64 = 0x4e9e_5700;
const WEBHOOK_ID_SALT: u64 = 0xb00c_0000;
const EVENT_ID_SALT: u64 = 0x5e0d_0000;
const FAULT_SALT: u64 = 0xfa17_0000;

/// An id shaped like a UUID, from a counter and a salt.
fn numbered_uuid(salt: u64, n: u64) -> String {
    uuid(mix(salt), mix(n ^ salt))
}

async fn accept(listener: TcpListener, inner: Arc<Inner>, mut stop: Signal) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&connections).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "simulator api: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let inner = Arc::clone(&inner);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(|req| {
                let inner = Arc::clone(&inner);
                async move { Ok::<_, Infallible>(handle(&inner, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
                }
            }
            drop(permit);
        });
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Search(Kind),
    Account(String),
    Profile(String),
    Audience,
    Comments,
    CreateWebhook,
    ListWebhooks,
    GetWebhook(String),
    UpdateWebhook(String),
    DeleteWebhook(String),
    SendWebhook,
    Stats,
    GetFaults,
    SetFaults,
    Deactivate(String),
    MethodNotAllowed,
    NotFound,
}

impl Route {
    fn of(method: &str, path: &str) -> Route {
        if let Some(kind) = Kind::from_search_path(path) {
            return if method == "POST" { Route::Search(kind) } else { Route::MethodNotAllowed };
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        match (method, segments.as_slice()) {
            ("GET", ["v1", "accounts", id]) => Route::Account((*id).to_owned()),
            ("GET", ["v1", "profiles", id]) => Route::Profile((*id).to_owned()),
            ("GET", ["v1", "audience"]) => Route::Audience,
            ("GET", ["v1", "social", "comments"]) => Route::Comments,
            ("POST", ["v1", "webhooks"]) => Route::CreateWebhook,
            ("GET", ["v1", "webhooks"]) => Route::ListWebhooks,
            ("POST", ["v1", "webhooks", "send"]) => Route::SendWebhook,
            ("GET", ["v1", "webhooks", id]) => Route::GetWebhook((*id).to_owned()),
            ("PUT", ["v1", "webhooks", id]) => Route::UpdateWebhook((*id).to_owned()),
            ("DELETE", ["v1", "webhooks", id]) => Route::DeleteWebhook((*id).to_owned()),
            ("GET", ["_sim", "stats"]) => Route::Stats,
            ("GET", ["_sim", "faults"]) => Route::GetFaults,
            ("PUT", ["_sim", "faults"]) => Route::SetFaults,
            ("POST", ["_sim", "webhooks", id, "deactivate"]) => Route::Deactivate((*id).to_owned()),
            (_, ["v1", "accounts" | "profiles" | "webhooks", _] | ["v1", "audience" | "webhooks"]) => {
                Route::MethodNotAllowed
            }
            (
                _,
                ["v1", "social", "comments"] | ["_sim", "stats" | "faults"] | ["_sim", "webhooks", _, "deactivate"],
            ) => Route::MethodNotAllowed,
            _ => Route::NotFound,
        }
    }

    /// The endpoint template counted in [`ApiStats::by_endpoint`].
    fn template(&self) -> String {
        let template = match self {
            Route::Search(kind) => return format!("POST {}", kind.search_path().unwrap_or_default()),
            Route::Account(_) => "GET /v1/accounts/{id}",
            Route::Profile(_) => "GET /v1/profiles/{id}",
            Route::Audience => "GET /v1/audience",
            Route::Comments => "GET /v1/social/comments",
            Route::CreateWebhook => "POST /v1/webhooks",
            Route::ListWebhooks => "GET /v1/webhooks",
            Route::GetWebhook(_) => "GET /v1/webhooks/{id}",
            Route::UpdateWebhook(_) => "PUT /v1/webhooks/{id}",
            Route::DeleteWebhook(_) => "DELETE /v1/webhooks/{id}",
            Route::SendWebhook => "POST /v1/webhooks/send",
            Route::Stats | Route::GetFaults | Route::SetFaults | Route::Deactivate(_) => "control",
            Route::MethodNotAllowed | Route::NotFound => "other",
        };
        template.to_owned()
    }

    fn has_body(&self) -> bool {
        matches!(
            self,
            Route::Search(_) | Route::CreateWebhook | Route::UpdateWebhook(_) | Route::SendWebhook | Route::SetFaults
        )
    }
}

/// An answer before it becomes a response.
enum Reply {
    Json(StatusCode, Value),
    NoContent,
    Error(ApiError),
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Error(e)
    }
}

impl Reply {
    fn ok(value: Value) -> Self {
        Reply::Json(StatusCode::OK, value)
    }

    fn status(&self) -> StatusCode {
        match self {
            Reply::Json(status, _) => *status,
            Reply::NoContent => StatusCode::NO_CONTENT,
            Reply::Error(e) => e.status,
        }
    }

    fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let status = self.status();
        let (body, retry_after) = match self {
            Reply::Json(_, value) => (Bytes::from(value.to_string()), None),
            Reply::NoContent => (Bytes::new(), None),
            Reply::Error(e) => (Bytes::from(e.body(request_id).to_string()), e.retry_after),
        };
        let has_body = !body.is_empty();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if has_body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// An InsightIQ error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, code, message: message.into(), retry_after: None }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", code, message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RECORD_NOT_FOUND", code, message)
    }

    fn too_many(retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT", "too_many_requests", "Too many requests");
        e.retry_after = Some(retry_after);
        e
    }

    fn body(&self, request_id: &str) -> Value {
        let status = self.status.as_u16();
        let mut error = json!({
            "type": self.kind,
            "error_code": self.code,
            "message": self.message,
            "request_id": request_id,
            "http_status_code": status,
        });
        // The captured 404 body also carries these two (samples/errors.json).
        if self.kind == "RECORD_NOT_FOUND" {
            error["code"] = json!(self.code);
            error["status_code"] = json!(status);
        }
        json!({ "error": error })
    }
}

async fn handle(inner: &Inner, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let number = inner.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = numbered_uuid(REQUEST_ID_SALT, number);
    let route = Route::of(req.method().as_str(), req.uri().path());
    let reply = if req.uri().path().starts_with("/_sim/") {
        control(inner, route, req).await
    } else {
        let template = route.template();
        let reply = data(inner, number, route, req).await;
        inner.tally().answered(template, reply.status());
        reply
    };
    if let Reply::Error(e) = &reply {
        tracing::debug!(request_id, status = e.status.as_u16(), message = %e.message, "simulator api: error");
    }
    reply.into_response(&request_id)
}

/// A data request: faults, limits, then the endpoint.
async fn data(inner: &Inner, number: u64, route: Route, req: Request<Incoming>) -> Reply {
    let faults = inner.faults().clone();
    if faults.down {
        let message = "Service is under maintenance";
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "service_unavailable", message)
            .into();
    }
    if !inner.authorized(req.headers()) {
        let message = "Invalid client credentials";
        return ApiError::new(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR", "invalid_client_credentials", message)
            .into();
    }
    let (in_window, retry_after) = inner.tally().arrive(Instant::now(), inner.started);
    if inner.rate_limit > 0 && in_window > u64::from(inner.rate_limit) {
        inner.tally().stats.rate_limited += 1;
        return ApiError::too_many(retry_after).into();
    }
    let Ok(_slot) = inner.slots.try_acquire() else {
        inner.tally().stats.concurrency_limited += 1;
        return ApiError::too_many(1).into();
    };
    let mut dice = Dice::new(mix(number ^ FAULT_SALT));
    if dice.chance(faults.throttle_permille) {
        inner.tally().stats.injected_throttles += 1;
        return ApiError::too_many(faults.retry_after_secs).into();
    }
    if dice.chance(faults.error_permille) {
        inner.tally().stats.injected_errors += 1;
        let (status, code) = *dice.pick(&[
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error"),
            (StatusCode::BAD_GATEWAY, "bad_gateway"),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        ]);
        return ApiError::new(status, "SERVER_ERROR", code, "Something went wrong, please retry").into();
    }
    if dice.chance(faults.slow_permille) {
        tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
    }
    let query = params(req.uri().query().unwrap_or_default());
    let body = if route.has_body() {
        match read_body(req).await {
            Ok(body) => body,
            Err(e) => return e.into(),
        }
    } else {
        Bytes::new()
    };
    let missing = faults.missing_permille;
    let result = match route {
        Route::Search(kind) => search(inner, kind, &body, missing),
        Route::Account(id) => single(Kind::Account, &id, missing, "incorrect_account_id", "Account not found"),
        Route::Profile(id) => single(Kind::Profile, &id, missing, "incorrect_profile_id", "Profile not found"),
        Route::Audience => required(&query, "account_id")
            .and_then(|id| single(Kind::Audience, id, missing, "incorrect_account_id", "Account not found")),
        Route::Comments => comments(&query, missing),
        Route::CreateWebhook => create_webhook(inner, number, &body),
        Route::ListWebhooks => list_webhooks(inner, &query),
        Route::GetWebhook(id) => find_webhook(inner, &id).map(Reply::ok),
        Route::UpdateWebhook(id) => update_webhook(inner, &id, &body),
        Route::DeleteWebhook(id) => delete_webhook(inner, &id),
        Route::SendWebhook => send_webhook(inner, number, &body).await,
        Route::MethodNotAllowed => Err(method_not_allowed()),
        Route::NotFound | Route::Stats | Route::GetFaults | Route::SetFaults | Route::Deactivate(_) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not_found", "No such endpoint"))
        }
    };
    result.unwrap_or_else(Reply::Error)
}

/// A `/_sim/*` request: no auth, no faults, not counted.
async fn control(inner: &Inner, route: Route, req: Request<Incoming>) -> Reply {
    let body = if route.has_body() {
        match read_body(req).await {
            Ok(body) => body,
            Err(e) => return e.into(),
        }
    } else {
        Bytes::new()
    };
    match route {
        Route::Stats => Reply::ok(json!(inner.tally().stats)),
        Route::GetFaults => Reply::ok(json!(*inner.faults())),
        Route::SetFaults => match serde_json::from_slice::<Faults>(&body) {
            Ok(faults) => {
                *inner.faults() = faults.clone();
                Reply::ok(json!(faults))
            }
            Err(e) => ApiError::bad_request("invalid_faults", format!("not a faults object: {e}")).into(),
        },
        Route::Deactivate(id) => match inner.deactivate(&id) {
            Some(webhook) => Reply::ok(webhook),
            None => ApiError::not_found("incorrect_webhook_id", "Webhook not found").into(),
        },
        Route::MethodNotAllowed => method_not_allowed().into(),
        _ => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not_found", "No such endpoint").into(),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "INVALID_REQUEST", "method_not_allowed", "Method not allowed")
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        let message = format!("Body is larger than {MAX_BODY} bytes");
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_REQUEST", "payload_too_large", message)
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::bad_request("invalid_body", "Body could not be read")),
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", format!("Body is not JSON: {e}")))
}

/// The query string as a map (the last value wins).
fn params(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn required<'q>(query: &'q BTreeMap<String, String>, name: &'static str) -> Result<&'q str, ApiError> {
    match query.get(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::bad_request("missing_parameter", format!("`{name}` is required"))),
    }
}

/// `limit` (1..=100, default 10) and `offset` (default 0).
fn page(query: &BTreeMap<String, String>) -> Result<(usize, usize), ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v.parse().ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
            ApiError::bad_request("invalid_limit", format!("`limit` must be between 1 and {MAX_LIMIT}"))
        })?,
    };
    let offset = match query.get("offset") {
        None => 0,
        Some(v) => {
            v.parse().map_err(|_| ApiError::bad_request("invalid_offset", "`offset` must be a non-negative integer"))?
        }
    };
    Ok((limit, offset))
}

fn search(inner: &Inner, kind: Kind, body: &[u8], missing: u32) -> Result<Reply, ApiError> {
    inner.tally().stats.bulk_calls += 1;
    let bad = || ApiError::bad_request("invalid_ids", format!("`ids` must be a list of 1 to {MAX_BULK_IDS} ids"));
    let request = json_body(body)?;
    let ids = request.get("ids").and_then(Value::as_array).ok_or_else(bad)?;
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(bad());
    }
    let ids: Vec<&str> = ids.iter().map(Value::as_str).collect::<Option<_>>().ok_or_else(bad)?;
    inner.tally().bulk(&ids);
    let mut seen = HashSet::new();
    let data: Vec<Value> =
        ids.iter().filter(|id| seen.insert(**id) && exists(id, missing)).map(|id| record(kind, id)).collect();
    Ok(Reply::ok(json!({ "data": data })))
}

fn single(kind: Kind, id: &str, missing: u32, code: &'static str, message: &str) -> Result<Reply, ApiError> {
    if exists(id, missing) { Ok(Reply::ok(record(kind, id))) } else { Err(ApiError::not_found(code, message)) }
}

fn comments(query: &BTreeMap<String, String>, missing: u32) -> Result<Reply, ApiError> {
    required(query, "account_id")?;
    let content_id = required(query, "content_id")?;
    let (limit, offset) = page(query)?;
    let count = if exists(content_id, missing) { comment_count(content_id) } else { 0 };
    let end = offset.saturating_add(limit).min(count);
    let data: Vec<Value> = (offset.min(end)..end).map(|i| comment(content_id, i)).collect();
    Ok(Reply::ok(json!({"data": data, "metadata": {"limit": limit, "offset": offset}})))
}

/// The webhook fields of a create or update body; absent ones are `None`.
struct WebhookFields {
    url: Option<String>,
    events: Option<Vec<String>>,
    name: Option<String>,
    is_active: Option<bool>,
}

impl WebhookFields {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value = json_body(body)?;
        let bad =
            |field: &'static str, what: &str| ApiError::bad_request("invalid_webhook", format!("`{field}` {what}"));
        let url = match value.get("url") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let url = v.as_str().ok_or_else(|| bad("url", "must be a string"))?;
                let parsed = url::Url::parse(url).map_err(|_| bad("url", "must be a URL"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(bad("url", "must be an http(s) URL"));
                }
                Some(url.to_owned())
            }
        };
        let events = match value.get("events") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let list = v.as_array().filter(|l| !l.is_empty() && l.len() <= 100);
                let names: Option<Vec<String>> = list
                    .ok_or_else(|| bad("events", "must be a list of 1 to 100 event names"))?
                    .iter()
                    .map(|e| e.as_str().filter(|s| !s.is_empty() && s.len() <= 100).map(str::to_owned))
                    .collect();
                Some(names.ok_or_else(|| bad("events", "must hold event names"))?)
            }
        };
        let name = match value.get("name") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let name = v.as_str().filter(|s| s.len() <= 200);
                Some(name.ok_or_else(|| bad("name", "must be a short string"))?.to_owned())
            }
        };
        let is_active = match value.get("is_active") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_bool().ok_or_else(|| bad("is_active", "must be true or false"))?),
        };
        Ok(Self { url, events, name, is_active })
    }
}

fn create_webhook(inner: &Inner, number: u64, body: &[u8]) -> Result<Reply, ApiError> {
    let fields = WebhookFields::parse(body)?;
    let (Some(url), Some(events)) = (fields.url, fields.events) else {
        return Err(ApiError::bad_request("invalid_webhook", "`url` and `events` are required"));
    };
    let mut webhooks = inner.webhooks();
    if webhooks.len() >= MAX_WEBHOOKS {
        return Err(ApiError::bad_request("too_many_webhooks", format!("At most {MAX_WEBHOOKS} webhooks")));
    }
    let at = now();
    let webhook = Webhook {
        id: numbered_uuid(WEBHOOK_ID_SALT, number),
        url,
        events,
        name: fields.name.unwrap_or_default(),
        is_active: fields.is_active.unwrap_or(true),
        created_at: at.clone(),
        updated_at: at,
        failures: 0,
    };
    let answer = webhook.to_json();
    webhooks.push(webhook);
    Ok(Reply::Json(StatusCode::CREATED, answer))
}

fn list_webhooks(inner: &Inner, query: &BTreeMap<String, String>) -> Result<Reply, ApiError> {
    let (limit, offset) = page(query)?;
    let data: Vec<Value> = inner.webhooks().iter().skip(offset).take(limit).map(Webhook::to_json).collect();
    Ok(Reply::ok(json!({"data": data, "metadata": {"limit": limit, "offset": offset}})))
}

fn webhook_not_found() -> ApiError {
    ApiError::not_found("incorrect_webhook_id", "Webhook not found")
}

fn find_webhook(inner: &Inner, id: &str) -> Result<Value, ApiError> {
    inner.webhooks().iter().find(|w| w.id == id).map(Webhook::to_json).ok_or_else(webhook_not_found)
}

/// Replaces the fields the body gives; the others stay. Setting `is_active` also forgets past failures.
fn update_webhook(inner: &Inner, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let fields = WebhookFields::parse(body)?;
    let mut webhooks = inner.webhooks();
    let webhook = webhooks.iter_mut().find(|w| w.id == id).ok_or_else(webhook_not_found)?;
    if let Some(url) = fields.url {
        webhook.url = url;
    }
    if let Some(events) = fields.events {
        webhook.events = events;
    }
    if let Some(name) = fields.name {
        webhook.name = name;
    }
    if let Some(active) = fields.is_active {
        webhook.is_active = active;
        webhook.failures = 0;
    }
    webhook.updated_at = now();
    Ok(Reply::ok(webhook.to_json()))
}

fn delete_webhook(inner: &Inner, id: &str) -> Result<Reply, ApiError> {
    let mut webhooks = inner.webhooks();
    let before = webhooks.len();
    webhooks.retain(|w| w.id != id);
    if webhooks.len() == before { Err(webhook_not_found()) } else { Ok(Reply::NoContent) }
}

/// `POST /v1/webhooks/send`: one signed delivery attempt to every active webhook subscribed to the event. A
/// failed attempt is not retried; [`FAILURES_BEFORE_DEACTIVATION`] failures in a row set the webhook inactive.
async fn send_webhook(inner: &Inner, number: u64, body: &[u8]) -> Result<Reply, ApiError> {
    let request = json_body(body)?;
    let payload = request.get("payload").and_then(Value::as_object);
    let event = payload.and_then(|p| p.get("event")).and_then(Value::as_str).filter(|e| !e.is_empty());
    let Some(event) = event else {
        return Err(ApiError::bad_request("invalid_payload", "`payload.event` is required"));
    };
    let name =
        payload.and_then(|p| p.get("name")).and_then(Value::as_str).map_or_else(|| name_of(event), str::to_owned);
    let data = payload.and_then(|p| p.get("data")).cloned().unwrap_or_else(|| json!({}));
    let id = numbered_uuid(EVENT_ID_SALT, number);
    let envelope = json!({"event": event, "name": name, "id": id, "data": data});
    let bytes = Bytes::from(envelope.to_string());
    let signature = sender::sign(&inner.secret, &bytes);
    let targets: Vec<(String, String)> = inner
        .webhooks()
        .iter()
        .filter(|w| w.is_active && w.events.iter().any(|e| e == event))
        .map(|w| (w.id.clone(), w.url.clone()))
        .collect();
    let mut deliveries = Vec::with_capacity(targets.len());
    for (webhook_id, url) in targets {
        let outcome = sender::post(&inner.client, &url, &signature, bytes.clone(), sender::DEFAULT_TIMEOUT).await;
        inner.tally().stats.webhooks_sent += 1;
        if let Some(webhook) = inner.webhooks().iter_mut().find(|w| w.id == webhook_id) {
            if outcome.is_success() {
                webhook.failures = 0;
            } else {
                webhook.failures += 1;
                if webhook.failures >= FAILURES_BEFORE_DEACTIVATION {
                    webhook.is_active = false;
                    webhook.updated_at = now();
                }
            }
        }
        let status = match outcome {
            sender::Outcome::Status(s) => json!(s),
            sender::Outcome::Timeout => json!("timeout"),
            sender::Outcome::Error => json!("error"),
        };
        deliveries.push(json!({"webhook_id": webhook_id, "status": status}));
    }
    Ok(Reply::ok(json!({"status": "sent", "id": id, "deliveries": deliveries})))
}
