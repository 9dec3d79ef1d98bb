//! InsightIQ webhook management (`hooklake webhooks list|create|get|update|delete|send|ensure`) and the watcher
//! that keeps hooklake's own webhook active while `hooklake run` runs (`webhook_watch`, `auto_reactivate`).
//!
//! Everything goes through `/v1/webhooks` (`spec/insightiq.md`, "Webhook management") with HTTP Basic auth.
//! A 429 is retried after its `Retry-After` (at most [`MAX_ATTEMPTS`] attempts); every other error is reported
//! at once with InsightIQ's `error_code`, `message` and `request-id`.
//!
//! This module must never print, log or return the client secret (nor the Basic auth token made from it), and
//! the watcher never registers a webhook on its own: a missing webhook is reported, `hooklake webhooks ensure`
//! creates it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::InsightIqApiConfig;
use crate::metrics::WebhookWatch;
use crate::shutdown::{Signal, stopped};

/// Webhooks asked for per `GET /v1/webhooks` page (the API's maximum `limit`).
pub const PAGE: usize = 100;
/// Most pages [`Client::list`] reads (10 000 webhooks): a bound on one listing's work.
pub const MAX_PAGES: usize = 100;
/// Most attempts of one request when InsightIQ answers 429.
pub const MAX_ATTEMPTS: u32 = 4;
/// Longest wait before retrying a 429, whatever `Retry-After` says.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Most bytes read from one answer.
pub const MAX_ANSWER: usize = 16 << 20;
/// Shortest interval of the watcher (a zero `webhook_watch` would poll in a busy loop).
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(10);
/// The header InsightIQ puts on every answer.
pub const REQUEST_ID_HEADER: &str = "request-id";
/// Most characters of a `request-id` kept (it is echoed into logs).
const MAX_REQUEST_ID: usize = 128;
/// Most characters of a non-InsightIQ error body quoted in an error.
const MAX_QUOTED_BODY: usize = 200;
/// Up to this many events are listed in the table's EVENTS column; more are counted.
const LISTED_EVENTS: usize = 2;

/// Every event type hooklake knows (the simulator's list): what `ensure` subscribes to without `--events`.
pub fn known_event_types() -> Vec<String> {
    crate::simulator::events::EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect()
}

/// A webhook registered with InsightIQ, as the API returns it. Unknown fields are ignored; a `null` or absent
/// `name`, `events` or timestamp reads as empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// InsightIQ's id of the webhook.
    pub id: String,
    /// Where InsightIQ delivers.
    pub url: String,
    /// The event types delivered.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<String>,
    /// A human name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// False once InsightIQ gave up delivering (after 3 failed attempts) or someone disabled it.
    pub is_active: bool,
    /// When it was created (as InsightIQ writes it).
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    /// When it last changed (as InsightIQ writes it).
    #[serde(default, deserialize_with = "null_as_default")]
    pub updated_at: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Changes for [`Client::update`]; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// New delivery URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// New name.
    pub name: Option<String>,
    /// Enable (`true`) or disable (`false`).
    pub is_active: Option<bool>,
}

impl Update {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.url.is_none() && self.events.is_none() && self.name.is_none() && self.is_active.is_none()
    }
}

/// What [`Client::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// No webhook delivered to the URL: one was registered.
    Created,
    /// The webhook existed with other events or name, or inactive: it was rewritten and enabled.
    Updated,
    /// The webhook existed as asked and active: nothing was sent.
    Unchanged,
}

impl Ensured {
    /// `created`, `updated` or `unchanged`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ensured::Created => "created",
            Ensured::Updated => "updated",
            Ensured::Unchanged => "unchanged",
        }
    }
}

impl fmt::Display for Ensured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a webhook call failed. No variant ever holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// InsightIQ answered with an error status.
    #[error("InsightIQ answered {status}: {}", http_detail(.error_code, .message, .request_id))]
    Http {
        /// The HTTP status.
        status: StatusCode,
        /// InsightIQ's `error_code` (empty when the body was not an InsightIQ error).
        error_code: String,
        /// InsightIQ's `message` (or the start of a foreign body).
        message: String,
        /// The `request-id` header (or the body's `request_id`), to quote to InsightIQ support.
        request_id: Option<String>,
    },
    /// No answer: connection refused, TLS, timeout, broken body. The URL is removed from the source (the
    /// credentials travel in a header, never in the URL).
    #[error("{request}: no usable answer from InsightIQ")]
    Transport {
        /// What was asked (`GET /v1/webhooks/{id}`).
        request: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// `[api.insightiq]` cannot be used (no credentials, unusable `base_url`).
    #[error("{0}")]
    Config(String),
    /// A 2xx answer that is not what the API documents.
    #[error("{0}")]
    Decode(String),
}

impl WebhookError {
    /// InsightIQ's `request-id` of the failed call, when there was an answer.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WebhookError::Http { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// `error_code: message (request-id …)`, leaving out what InsightIQ did not say.
fn http_detail(error_code: &str, message: &str, request_id: &Option<String>) -> String {
    let parts: Vec<&str> = [error_code, message].into_iter().filter(|p| !p.is_empty()).collect();
    let detail = if parts.is_empty() { "no error details".to_owned() } else { parts.join(": ") };
    match request_id {
        Some(id) => format!("{detail} (request-id {id})"),
        None => format!("{detail} (no request-id)"),
    }
}

fn request_id_note(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|id| format!(" (request-id {id})")).unwrap_or_default()
}

/// A 2xx answer.
struct Answer {
    /// `METHOD /path`, for errors.
    what: String,
    body: Vec<u8>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<Webhook>,
}

/// Calls `/v1/webhooks` of one InsightIQ environment.
pub struct Client {
    http: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `[api.insightiq]`: its `base_url`, credentials and `timeout`.
    ///
    /// # Errors
    /// [`WebhookError::Config`] without `client_id`/`client_secret`, with a `base_url` that is not an http(s) URL
    /// or carries credentials, or when the HTTP client cannot be built.
    pub fn new(api: &InsightIqApiConfig) -> Result<Self, WebhookError> {
        let (Some(id), Some(secret)) = (&api.client_id, &api.client_secret) else {
            return Err(WebhookError::Config(
                "api.insightiq: `client_id` and `client_secret` must be set to call the InsightIQ API".to_owned(),
            ));
        };
        // The parse error never quotes the URL, which could hold userinfo.
        let parsed = url::Url::parse(&api.base_url)
            .map_err(|e| WebhookError::Config(format!("api.insightiq: `base_url` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookError::Config("api.insightiq: `base_url` must be an http(s) URL".to_owned()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(WebhookError::Config(
                "api.insightiq: `base_url` must not carry credentials; set `client_id` and `client_secret`".to_owned(),
            ));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", id.expose(), secret.expose()));
        let mut auth = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
            // Unreachable (base64 is always a valid header value); the error must not quote the value anyway.
            WebhookError::Config("api.insightiq: the credentials do not fit in an HTTP header".to_owned())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .timeout(api.timeout)
            .connect_timeout(api.timeout.min(Duration::from_secs(10)))
            // A redirect could carry the Authorization header elsewhere; the API never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .user_agent(concat!("hooklake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base: api.base_url.trim_end_matches('/').to_owned() })
    }

    /// Every webhook, page by page ([`PAGE`] at a time until a short page).
    ///
    /// # Errors
    /// The first failed page, or [`WebhookError::Decode`] beyond [`MAX_PAGES`] pages.
    pub async fn list(&self) -> Result<Vec<Webhook>, WebhookError> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let path = format!("/v1/webhooks?limit={PAGE}&offset={}", page * PAGE);
            let answer = self.call(Method::GET, &path, None).await?;
            let listed: Page = decode(&answer)?;
            let n = listed.data.len();
            all.extend(listed.data);
            if n < PAGE {
                return Ok(all);
            }
        }
        Err(WebhookError::Decode(format!(
            "GET /v1/webhooks: more than {} webhooks; stopped listing after {MAX_PAGES} pages",
            MAX_PAGES * PAGE
        )))
    }

    /// Registers a webhook (`POST /v1/webhooks`).
    ///
    /// # Errors
    /// As [`Client::list`]; InsightIQ refuses a bad URL or event list with 400.
    pub async fn create(&self, url: &str, events: &[String], name: &str) -> Result<Webhook, WebhookError> {
        let body = json!({"url": url, "events": events, "name": name});
        let answer = self.call(Method::POST, "/v1/webhooks", Some(&body)).await?;
        decode(&answer)
    }

    /// One webhook (`GET /v1/webhooks/{id}`).
    ///
    /// # Errors
    /// [`WebhookError::Http`] 404 for an unknown id, and as [`Client::list`].
    pub async fn get(&self, id: &str) -> Result<Webhook, WebhookError> {
        let answer = self.call(Method::GET, &webhook_path(id), None).await?;
        decode(&answer)
    }

    /// Changes a webhook. InsightIQ's `PUT` takes the whole webhook, so the current one is read first and the
    /// fields `update` leaves `None` are sent as they are.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn update(&self, id: &str, update: &Update) -> Result<Webhook, WebhookError> {
        let current = self.get(id).await?;
        let body = whole(
            update.url.as_deref().unwrap_or(&current.url),
            update.events.as_deref().unwrap_or(&current.events),
            update.name.as_deref().unwrap_or(&current.name),
            update.is_active.unwrap_or(current.is_active),
        );
        self.put(id, &body).await
    }

    /// Removes a webhook (`DELETE /v1/webhooks/{id}`, 204).
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        self.call(Method::DELETE, &webhook_path(id), None).await.map(|_| ())
    }

    /// Asks InsightIQ to send a mock notification (`POST /v1/webhooks/send`). `payload` is the
    /// `{"event", "name", "data"}` object; it is sent as `{"payload": payload}`. Returns InsightIQ's answer
    /// (`null` when it has no body).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub async fn send(&self, payload: Value) -> Result<Value, WebhookError> {
        let body = json!({ "payload": payload });
        let answer = self.call(Method::POST, "/v1/webhooks/send", Some(&body)).await?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        decode(&answer)
    }

    /// Makes sure exactly what is asked is registered for `url`: creates the webhook when none delivers there;
    /// rewrites it (url, events, name, `is_active: true`) when its event set or name differ or it is inactive;
    /// else leaves it alone. Event order does not matter. When several webhooks deliver to `url`, the first
    /// active one is looked after (and a warning logged).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub async fn ensure(&self, url: &str, events: &[String], name: &str) -> Result<(Webhook, Ensured), WebhookError> {
        let all = self.list().await?;
        let same_url = all.iter().filter(|w| w.url == url).count();
        if same_url > 1 {
            tracing::warn!(
                url,
                count = same_url,
                "several InsightIQ webhooks deliver to this URL; ensuring the first active one"
            );
        }
        let Some(current) = pick(all, url) else {
            return Ok((self.create(url, events, name).await?, Ensured::Created));
        };
        if current.is_active && current.name == name && same_events(&current.events, events) {
            return Ok((current, Ensured::Unchanged));
        }
        let updated = self.put(&current.id, &whole(url, events, name, true)).await?;
        Ok((updated, Ensured::Updated))
    }

    /// `PUT /v1/webhooks/{id}` with a whole webhook body.
    async fn put(&self, id: &str, body: &Value) -> Result<Webhook, WebhookError> {
        let answer = self.call(Method::PUT, &webhook_path(id), Some(body)).await?;
        decode(&answer)
    }

    /// One logical request: retried on 429 after `Retry-After` (capped), any other non-2xx is an error.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, WebhookError> {
        let what = format!("{method} {path}");
        let url = format!("{}{path}", self.base);
        let body = body.map(ToString::to_string);
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
            }
            let response = request.send().await.map_err(|e| transport(&what, e))?;
            let status = response.status();
            let request_id = response
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(MAX_REQUEST_ID).collect::<String>());
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_WAIT);
            let bytes = read_limited(&what, response).await?;
            if status.is_success() {
                return Ok(Answer { what, body: bytes, request_id });
            }
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < MAX_ATTEMPTS {
                tracing::debug!(
                    request = %what,
                    wait = ?retry_after,
                    attempt,
                    request_id = request_id.as_deref(),
                    "InsightIQ throttled the request (429); retrying"
                );
                tokio::time::sleep(retry_after).await;
                attempt += 1;
                continue;
            }
            return Err(http_error(status, &bytes, request_id));
        }
    }
}

/// `/v1/webhooks/{id}` with the id percent-encoded.
fn webhook_path(id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v1/webhooks/{id}")
}

/// The body of a `PUT`: InsightIQ documents all four fields.
fn whole(url: &str, events: &[String], name: &str, is_active: bool) -> Value {
    json!({"url": url, "events": events, "name": name, "is_active": is_active})
}

/// The webhook delivering to `url` that matters: the first active one, else the first one.
fn pick(webhooks: Vec<Webhook>, url: &str) -> Option<Webhook> {
    let mut matching: Vec<Webhook> = webhooks.into_iter().filter(|w| w.url == url).collect();
    let i = matching.iter().position(|w| w.is_active).unwrap_or(0);
    (i < matching.len()).then(|| matching.swap_remove(i))
}

fn same_events(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let b: BTreeSet<&str> = b.iter().map(String::as_str).collect();
    a == b
}

fn transport(what: &str, e: reqwest::Error) -> WebhookError {
    WebhookError::Transport { request: what.to_owned(), source: e.without_url() }
}

async fn read_limited(what: &str, mut response: reqwest::Response) -> Result<Vec<u8>, WebhookError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(what, e))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(WebhookError::Decode(format!("{what}: answer larger than {MAX_ANSWER} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn decode<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, WebhookError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        WebhookError::Decode(format!(
            "{}: InsightIQ's answer is not what the API documents: {e}{}",
            answer.what,
            request_id_note(&answer.request_id)
        ))
    })
}

/// [`WebhookError::Http`] from an error answer: InsightIQ's `{"error": {"error_code", "message", "request_id"}}`
/// when the body is one, else the start of the body.
fn http_error(status: StatusCode, body: &[u8], request_id: Option<String>) -> WebhookError {
    let error =
        serde_json::from_slice::<Value>(body).ok().and_then(|mut v| match v.get_mut("error").map(Value::take) {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        });
    let field = |name: &str| error.as_ref().and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_owned);
    let error_code = field("error_code").or_else(|| field("code")).unwrap_or_default();
    let message = match field("message") {
        Some(m) => m,
        None if error.is_some() => String::new(),
        None => quote(body),
    };
    let request_id = request_id.or_else(|| field("request_id").map(|s| s.chars().take(MAX_REQUEST_ID).collect()));
    WebhookError::Http { status, error_code, message, request_id }
}

/// The start of a foreign body (a proxy's HTML page) on one line.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED_BODY)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `hooklake webhooks …`: manage InsightIQ webhooks through `/v1/webhooks` (uses `[api.insightiq]`).
#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WebhooksCommand,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The `hooklake webhooks` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// List every webhook registered with InsightIQ.
    List,
    /// Register a new webhook.
    Create {
        /// The URL InsightIQ delivers to.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Event types to deliver (repeat the option or separate with commas).
        #[arg(long, value_name = "EVENT", value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// A name to recognise the webhook by.
        #[arg(long, value_name = "NAME", default_value = "hooklake")]
        name: String,
    },
    /// Show one webhook.
    Get {
        /// The webhook id.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change a webhook; options left out keep their value.
    Update {
        /// The webhook id.
        #[arg(value_name = "ID")]
        id: String,
        /// New delivery URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// New event types (repeat the option or separate with commas).
        #[arg(long, value_name = "EVENT", value_delimiter = ',')]
        events: Vec<String>,
        /// New name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Enable or disable the webhook.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        active: Option<bool>,
    },
    /// Remove a webhook.
    Delete {
        /// The webhook id.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Ask InsightIQ to send a mock notification to the webhooks subscribed to an event.
    Send {
        /// The event type (`CONTENTS.ADDED`).
        #[arg(long, value_name = "EVENT")]
        event: String,
        /// The notification's name (default: InsightIQ's name of the event).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The notification's `data`, as JSON.
        #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_json)]
        data: Value,
    },
    /// Make sure hooklake's webhook exists, is active and delivers the given events (idempotent).
    Ensure {
        /// The URL InsightIQ delivers to (default: `webhook_url` of [api.insightiq]).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Event types to deliver (default: every known type; repeat the option or separate with commas).
        #[arg(long, value_name = "EVENT", value_delimiter = ',')]
        events: Vec<String>,
        /// The webhook's name.
        #[arg(long, value_name = "NAME", default_value = "hooklake")]
        name: String,
    },
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// Runs one `hooklake webhooks` command and prints its result on stdout: an aligned table, or with `--json`
/// one pretty JSON value. `ensure` also says on stderr whether it created, updated or left the webhook.
///
/// # Errors
/// Unusable `[api.insightiq]`, a failed API call (with InsightIQ's error code, message and request-id), an
/// `update` without changes, an `ensure` without a URL, or stdout closed.
pub async fn command(api: &InsightIqApiConfig, args: WebhooksArgs) -> anyhow::Result<()> {
    let client = Client::new(api)?;
    let json = args.json;
    match args.command {
        WebhooksCommand::List => {
            let webhooks = client.list().await?;
            if json { print(&pretty(&webhooks)?) } else { print(&table(&webhooks)) }
        }
        WebhooksCommand::Create { url, events, name } => {
            let webhook = client.create(&url, &clean_events(events), &name).await?;
            show(&webhook, json)
        }
        WebhooksCommand::Get { id } => show(&client.get(&id).await?, json),
        WebhooksCommand::Update { id, url, events, name, active } => {
            let events = clean_events(events);
            let update = Update { url, events: (!events.is_empty()).then_some(events), name, is_active: active };
            if update.is_empty() {
                anyhow::bail!("nothing to change: give --url, --events, --name or --active");
            }
            show(&client.update(&id, &update).await?, json)
        }
        WebhooksCommand::Delete { id } => {
            client.delete(&id).await?;
            if json { print(&pretty(&json!({ "deleted": id }))?) } else { print(&format!("deleted {id}\n")) }
        }
        WebhooksCommand::Send { event, name, data } => {
            let name = name.unwrap_or_else(|| crate::simulator::events::name_of(&event));
            let answer = client.send(json!({"event": event, "name": name, "data": data})).await?;
            print(&pretty(&answer)?)
        }
        WebhooksCommand::Ensure { url, events, name } => {
            let Some(url) = url.or_else(|| api.webhook_url.clone()) else {
                anyhow::bail!("no webhook URL: give --url or set `webhook_url` in [api.insightiq]");
            };
            let mut events = clean_events(events);
            if events.is_empty() {
                events = known_event_types();
            }
            let (webhook, outcome) = client.ensure(&url, &events, &name).await?;
            eprintln!("{outcome} webhook {} for {url}", webhook.id);
            show(&webhook, json)
        }
    }
}

fn show(webhook: &Webhook, json: bool) -> anyhow::Result<()> {
    if json { print(&pretty(webhook)?) } else { print(&table(std::slice::from_ref(webhook))) }
}

fn pretty<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Trimmed, without empty entries (`--events A,`) or repeats, in the given order.
fn clean_events(events: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    events.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty() && seen.insert(e.clone())).collect()
}

/// The plain aligned table: ID, ACTIVE, URL, EVENTS, NAME, UPDATED.
fn table(webhooks: &[Webhook]) -> String {
    let header = ["ID", "ACTIVE", "URL", "EVENTS", "NAME", "UPDATED"].map(str::to_owned);
    let rows: Vec<[String; 6]> = webhooks
        .iter()
        .map(|w| {
            [
                cell(&w.id),
                (if w.is_active { "yes" } else { "no" }).to_owned(),
                cell(&w.url),
                events_cell(&w.events),
                cell(&w.name),
                cell(&w.updated_at),
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, c) in widths.iter_mut().zip(row) {
            *width = (*width).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, width)| format!("{c:<width$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A value on one line: control characters (a newline in a name) would break the table.
fn cell(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn events_cell(events: &[String]) -> String {
    match events.len() {
        0 => "none".to_owned(),
        n if n <= LISTED_EVENTS => cell(&events.join(",")),
        n => format!("{n} events"),
    }
}

/// What the watcher last saw of hooklake's webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Active,
    Inactive,
    Missing,
}

/// Keeps an eye on hooklake's own webhook while the pipeline runs: every `webhook_watch` (the first check at
/// once) it lists the webhooks and finds the one delivering to `webhook_url`. Missing or inactive means
/// InsightIQ is not delivering: `state.inactive` is set and an error logged (once per change, a warning on each
/// later poll). With `auto_reactivate`, an inactive webhook is re-enabled (`PUT`, `is_active: true`); a missing
/// one is never created (that is `hooklake webhooks ensure`'s job). Failed polls are counted and logged, and
/// polling goes on. Returns at once unless both `webhook_watch` and `webhook_url` are set; otherwise at
/// shutdown.
pub async fn watch(api: InsightIqApiConfig, state: Arc<WebhookWatch>, mut shutdown: Signal) {
    let (Some(every), Some(url)) = (api.webhook_watch, api.webhook_url.clone()) else {
        return;
    };
    let client = match Client::new(&api) {
        Ok(c) => c,
        Err(e) => {
            state.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, url, "webhook_watch: cannot call InsightIQ; hooklake's webhook is not watched");
            return;
        }
    };
    let mut ticker = tokio::time::interval(every.max(MIN_WATCH_INTERVAL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = check(&client, &url, api.auto_reactivate, &state, &mut last) => {}
        }
    }
}

/// One poll of [`watch`].
async fn check(client: &Client, url: &str, auto_reactivate: bool, state: &WebhookWatch, last: &mut Option<Seen>) {
    state.checks.fetch_add(1, Ordering::Relaxed);
    let webhooks = match client.list().await {
        Ok(w) => w,
        Err(e) => {
            state.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %e,
                request_id = e.request_id(),
                url,
                "webhook_watch: cannot list InsightIQ webhooks; checking again at the next interval"
            );
            return;
        }
    };
    let Some(webhook) = pick(webhooks, url) else {
        state.inactive.store(true, Ordering::Relaxed);
        if *last == Some(Seen::Missing) {
            tracing::warn!(url, "hooklake's InsightIQ webhook is still missing; run `hooklake webhooks ensure`");
        } else {
            tracing::error!(
                url,
                "hooklake's InsightIQ webhook is missing: InsightIQ is not delivering events to hooklake; \
                 run `hooklake webhooks ensure`"
            );
        }
        *last = Some(Seen::Missing);
        return;
    };
    let id = webhook.id.as_str();
    if webhook.is_active {
        state.inactive.store(false, Ordering::Relaxed);
        if matches!(*last, Some(Seen::Inactive | Seen::Missing)) {
            tracing::info!(url, id, "hooklake's InsightIQ webhook is active again");
        }
        *last = Some(Seen::Active);
        return;
    }
    state.inactive.store(true, Ordering::Relaxed);
    if *last == Some(Seen::Inactive) {
        tracing::warn!(url, id, "hooklake's InsightIQ webhook is still inactive");
    } else {
        tracing::error!(
            url,
            id,
            "hooklake's InsightIQ webhook is inactive: InsightIQ is not delivering events to hooklake (it \
             deactivates a webhook after failed deliveries); re-enable it with `hooklake webhooks ensure` or set \
             `auto_reactivate = true`"
        );
    }
    *last = Some(Seen::Inactive);
    if !auto_reactivate {
        return;
    }
    let body = whole(&webhook.url, &webhook.events, &webhook.name, true);
    match client.put(id, &body).await {
        Ok(_) => {
            // `inactive` first and the count with Release: a reader that sees the reactivation counted (with an
            // Acquire load) also sees the flag cleared.
            state.inactive.store(false, Ordering::Relaxed);
            state.reactivations.fetch_add(1, Ordering::Release);
            tracing::warn!(url, id, "re-enabled hooklake's InsightIQ webhook (auto_reactivate)");
            *last = Some(Seen::Active);
        }
        Err(e) => {
            state.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %e,
                request_id = e.request_id(),
                url,
                id,
                "webhook_watch: cannot re-enable hooklake's InsightIQ webhook; trying again at the next interval"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;
    use crate::secret::Secret;
    use crate::simulator::api::{self as sim, ApiOptions};

    const URL: &str = "https://hooklake.example/webhooks/insightiq";

    /// The simulated API; `rate_limit` 0 = unlimited.
    async fn simulator(rate_limit: u32) -> sim::Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut options = ApiOptions::new("id", "secret");
        options.rate_limit = rate_limit;
        sim::serve(listener, options).await.unwrap()
    }

    fn config(api: &sim::Api) -> InsightIqApiConfig {
        InsightIqApiConfig {
            environment: "sandbox".to_owned(),
            base_url: api.base_url(),
            client_id: Some(Secret::new("id")),
            client_secret: Some(Secret::new("secret")),
            rate_limit: 10,
            timeout: Duration::from_secs(10),
            webhook_url: None,
            webhook_watch: None,
            auto_reactivate: false,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Polls `condition` every 10 ms for up to 5 s.
    async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        condition()
    }

    #[tokio::test]
    async fn webhook_round_trips_through_create_get_list_update_delete() {
        let api = simulator(0).await;
        let client = Client::new(&config(&api)).unwrap();
        let events = strings(&["CONTENTS.ADDED", "CONTENTS.UPDATED"]);

        let created = client.create(URL, &events, "first").await.unwrap();
        assert_eq!(created.url, URL);
        assert_eq!(created.events, events);
        assert_eq!(created.name, "first");
        assert!(created.is_active);
        assert!(!created.id.is_empty());

        assert_eq!(client.get(&created.id).await.unwrap(), created);
        assert!(client.list().await.unwrap().iter().any(|w| w.id == created.id));

        let update = Update { name: Some("renamed".to_owned()), is_active: Some(false), ..Update::default() };
        let updated = client.update(&created.id, &update).await.unwrap();
        assert_eq!(updated.name, "renamed");
        assert!(!updated.is_active);
        let read = client.get(&created.id).await.unwrap();
        assert_eq!(read.name, "renamed");
        assert!(!read.is_active);
        // Fields left out of the update are kept.
        assert_eq!(read.url, URL);
        assert_eq!(read.events, events);

        client.delete(&created.id).await.unwrap();
        let err = client.get(&created.id).await.unwrap_err();
        assert!(matches!(err, WebhookError::Http { status, .. } if status == StatusCode::NOT_FOUND), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("InsightIQ answered 404 Not Found: incorrect_webhook_id: "), "{text}");
        assert!(text.contains("request-id "), "{text}");
        assert!(err.request_id().is_some_and(|id| text.contains(id)), "{text}");
        assert!(client.list().await.unwrap().iter().all(|w| w.id != created.id));
        api.shutdown();
    }

    #[tokio::test]
    async fn ensure_is_idempotent_and_reenables_an_inactive_webhook() {
        let api = simulator(0).await;
        let client = Client::new(&config(&api)).unwrap();
        // Another webhook at another URL must be left alone.
        let other = client.create("https://elsewhere.example/hook", &strings(&["CONTENTS.ADDED"]), "x").await.unwrap();
        let events = strings(&["CONTENTS.ADDED", "PROFILES.UPDATED"]);

        let (first, outcome) = client.ensure(URL, &events, "hooklake").await.unwrap();
        assert_eq!(outcome, Ensured::Created);
        assert!(first.is_active);
        assert_ne!(first.id, other.id);

        let (second, outcome) = client.ensure(URL, &events, "hooklake").await.unwrap();
        assert_eq!(outcome, Ensured::Unchanged);
        assert_eq!(second.id, first.id);

        let reversed: Vec<String> = events.iter().rev().cloned().collect();
        let (_, outcome) = client.ensure(URL, &reversed, "hooklake").await.unwrap();
        assert_eq!(outcome, Ensured::Unchanged, "event order does not matter");

        assert!(api.deactivate_webhook(&first.id));
        let (third, outcome) = client.ensure(URL, &events, "hooklake").await.unwrap();
        assert_eq!(outcome, Ensured::Updated);
        assert_eq!(third.id, first.id);
        assert!(third.is_active);
        assert!(client.get(&first.id).await.unwrap().is_active);

        let more = strings(&["CONTENTS.ADDED", "PROFILES.UPDATED", "SESSION.EXPIRED"]);
        let (fourth, outcome) = client.ensure(URL, &more, "hooklake").await.unwrap();
        assert_eq!(outcome, Ensured::Updated);
        assert_eq!(fourth.id, first.id);
        assert_eq!(fourth.events, more);

        let all = client.list().await.unwrap();
        assert_eq!(all.iter().filter(|w| w.url == URL).count(), 1);
        assert_eq!(all.len(), 2);
        assert_eq!(client.get(&other.id).await.unwrap(), other);
        api.shutdown();
    }

    #[tokio::test]
    async fn wrong_secret_is_a_401_that_never_shows_the_secret() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.client_secret = Some(Secret::new("not-the-secret-xyz"));
        let client = Client::new(&cfg).unwrap();
        let token = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "id:not-the-secret-xyz");

        let err = client.list().await.unwrap_err();
        assert!(matches!(err, WebhookError::Http { status, .. } if status == StatusCode::UNAUTHORIZED), "{err:?}");
        for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
            assert!(!text.contains("not-the-secret-xyz"), "{text}");
            assert!(!text.contains(&token), "{text}");
        }
        assert!(err.to_string().contains("invalid_client_credentials"), "{err}");
        api.shutdown();
    }

    #[tokio::test]
    async fn missing_credentials_or_a_base_url_with_userinfo_are_config_errors() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.client_id = None;
        assert!(matches!(Client::new(&cfg), Err(WebhookError::Config(_))));

        let mut cfg = config(&api);
        cfg.base_url = "https://user:hunter2@api.example".to_owned();
        let err = Client::new(&cfg).unwrap_err();
        assert!(matches!(err, WebhookError::Config(_)));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        api.shutdown();
    }

    #[tokio::test]
    async fn list_reads_every_page() {
        let api = simulator(0).await;
        let client = Client::new(&config(&api)).unwrap();
        let events = strings(&["CONTENTS.ADDED"]);
        for i in 0..(2 * PAGE + 5) {
            client.create(&format!("https://hooks.example/{i}"), &events, "n").await.unwrap();
        }
        let all = client.list().await.unwrap();
        assert_eq!(all.len(), 2 * PAGE + 5);
        let ids: BTreeSet<&str> = all.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "no page read twice");
        api.shutdown();
    }

    #[tokio::test]
    async fn a_throttled_request_is_retried_after_retry_after() {
        // One request per 1-s window: of three quick requests at least two share a window, so one is answered
        // 429 and must wait for the next window instead of failing.
        let api = simulator(1).await;
        let client = Client::new(&config(&api)).unwrap();
        let created = client.create(URL, &strings(&["CONTENTS.ADDED"]), "n").await.unwrap();
        client.get(&created.id).await.unwrap();
        let all = client.list().await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(api.stats().rate_limited >= 1, "{:?}", api.stats());
        api.shutdown();
    }

    #[tokio::test]
    async fn send_returns_the_api_answer() {
        let api = simulator(0).await;
        let client = Client::new(&config(&api)).unwrap();
        // A subscriber nobody listens on: the delivery fails, and the answer says so.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let hook = client.create(&target, &strings(&["CONTENTS.ADDED"]), "n").await.unwrap();

        let payload = json!({"event": "CONTENTS.ADDED", "name": "contents added", "data": {"account_id": "a"}});
        let answer = client.send(payload).await.unwrap();
        assert_eq!(answer["status"], "sent", "{answer}");
        assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
        let deliveries = answer["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 1, "{answer}");
        assert_eq!(deliveries[0]["webhook_id"], hook.id.as_str());

        let err = client.send(json!({"name": "no event"})).await.unwrap_err();
        assert!(matches!(err, WebhookError::Http { status, .. } if status == StatusCode::BAD_REQUEST), "{err:?}");
        assert!(err.to_string().contains("invalid_payload"), "{err}");
        api.shutdown();
    }

    #[tokio::test]
    async fn watcher_reenables_a_deactivated_webhook() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.webhook_url = Some(URL.to_owned());
        cfg.webhook_watch = Some(Duration::from_millis(50));
        cfg.auto_reactivate = true;
        let client = Client::new(&cfg).unwrap();
        let (hook, _) = client.ensure(URL, &known_event_types(), "hooklake").await.unwrap();

        let state = Arc::new(WebhookWatch::default());
        let (stop, signal) = crate::shutdown::channel();
        let task = tokio::spawn(watch(cfg, Arc::clone(&state), signal));
        assert!(eventually(|| state.checks.load(Ordering::Relaxed) >= 1).await);
        assert!(!state.inactive.load(Ordering::Relaxed));

        assert!(api.deactivate_webhook(&hook.id));
        assert!(eventually(|| state.reactivations.load(Ordering::Acquire) >= 1).await, "{state:?}");
        assert!(client.get(&hook.id).await.unwrap().is_active);
        assert!(!state.inactive.load(Ordering::Relaxed));
        assert_eq!(state.errors.load(Ordering::Relaxed), 0);

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the watcher stops at shutdown").unwrap();
        api.shutdown();
    }

    #[tokio::test]
    async fn watcher_without_auto_reactivate_reports_and_leaves_the_webhook_inactive() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.webhook_url = Some(URL.to_owned());
        cfg.webhook_watch = Some(Duration::from_millis(50));
        let client = Client::new(&cfg).unwrap();
        let (hook, _) = client.ensure(URL, &strings(&["CONTENTS.ADDED"]), "hooklake").await.unwrap();

        let state = Arc::new(WebhookWatch::default());
        let (stop, signal) = crate::shutdown::channel();
        let task = tokio::spawn(watch(cfg, Arc::clone(&state), signal));
        assert!(eventually(|| state.checks.load(Ordering::Relaxed) >= 1).await);

        assert!(api.deactivate_webhook(&hook.id));
        assert!(eventually(|| state.inactive.load(Ordering::Relaxed)).await, "{state:?}");
        let seen = state.checks.load(Ordering::Relaxed);
        assert!(eventually(|| state.checks.load(Ordering::Relaxed) >= seen + 3).await, "keeps polling");
        assert!(state.inactive.load(Ordering::Relaxed));
        assert_eq!(state.reactivations.load(Ordering::Relaxed), 0);
        assert!(!client.get(&hook.id).await.unwrap().is_active);

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the watcher stops at shutdown").unwrap();
        api.shutdown();
    }

    #[tokio::test]
    async fn watcher_reports_a_missing_webhook_and_does_not_create_it() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.webhook_url = Some(URL.to_owned());
        cfg.webhook_watch = Some(Duration::from_millis(50));
        cfg.auto_reactivate = true;
        let client = Client::new(&cfg).unwrap();

        let state = Arc::new(WebhookWatch::default());
        let (stop, signal) = crate::shutdown::channel();
        let task = tokio::spawn(watch(cfg, Arc::clone(&state), signal));
        assert!(eventually(|| state.checks.load(Ordering::Relaxed) >= 2).await);
        assert!(state.inactive.load(Ordering::Relaxed));
        assert!(client.list().await.unwrap().is_empty());

        // Registered later: the watcher sees it and clears the flag.
        client.ensure(URL, &strings(&["CONTENTS.ADDED"]), "hooklake").await.unwrap();
        assert!(eventually(|| !state.inactive.load(Ordering::Relaxed)).await, "{state:?}");
        assert_eq!(state.reactivations.load(Ordering::Relaxed), 0);

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the watcher stops at shutdown").unwrap();
        api.shutdown();
    }

    #[tokio::test]
    async fn watcher_does_nothing_without_webhook_watch() {
        let api = simulator(0).await;
        let mut cfg = config(&api);
        cfg.webhook_url = Some(URL.to_owned());
        let state = Arc::new(WebhookWatch::default());
        let (_stop, signal) = crate::shutdown::channel();
        tokio::time::timeout(Duration::from_secs(5), watch(cfg, Arc::clone(&state), signal)).await.unwrap();
        assert_eq!(state.checks.load(Ordering::Relaxed), 0);
        assert_eq!(api.stats().requests, 0);
        api.shutdown();
    }

    #[test]
    fn webhook_reads_a_null_or_absent_name_as_empty_and_ignores_unknown_fields() {
        let w: Webhook = serde_json::from_value(json!({
            "id": "1", "url": "https://x.example", "events": ["A"], "name": null, "is_active": true,
            "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-02T00:00:00", "brand_new": 1
        }))
        .unwrap();
        assert_eq!(w.name, "");
        let w: Webhook =
            serde_json::from_value(json!({"id": "1", "url": "https://x.example", "is_active": false})).unwrap();
        assert_eq!((w.name.as_str(), w.events.len(), w.updated_at.as_str()), ("", 0, ""));
    }

    #[test]
    fn http_errors_show_code_message_and_request_id() {
        let body = br#"{"error": {"type": "RECORD_NOT_FOUND", "error_code": "incorrect_webhook_id",
            "message": "Webhook not found", "request_id": "from-body"}}"#;
        let err = http_error(StatusCode::NOT_FOUND, body, Some("1234".to_owned()));
        assert_eq!(
            err.to_string(),
            "InsightIQ answered 404 Not Found: incorrect_webhook_id: Webhook not found (request-id 1234)"
        );
        let err = http_error(StatusCode::NOT_FOUND, body, None);
        assert_eq!(err.request_id(), Some("from-body"));
        let err = http_error(StatusCode::BAD_GATEWAY, b"<html>\n  <body>Bad gateway</body>\n</html>", None);
        assert_eq!(
            err.to_string(),
            "InsightIQ answered 502 Bad Gateway: <html> <body>Bad gateway</body> </html> (no request-id)"
        );
    }

    #[test]
    fn table_is_aligned_and_shortens_long_event_lists() {
        let hook = |id: &str, events: &[&str], active: bool| Webhook {
            id: id.to_owned(),
            url: format!("https://h.example/{id}"),
            events: strings(events),
            name: "line\nbreak".to_owned(),
            is_active: active,
            created_at: String::new(),
            updated_at: "2026-01-02T03:04:05".to_owned(),
        };
        let text = table(&[hook("a", &["X.Y"], true), hook("bbbb", &["A", "B", "C"], false)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "ID    ACTIVE  URL                     EVENTS    NAME        UPDATED");
        assert_eq!(lines[1], "a     yes     https://h.example/a     X.Y       line break  2026-01-02T03:04:05");
        assert_eq!(lines[2], "bbbb  no      https://h.example/bbbb  3 events  line break  2026-01-02T03:04:05");
    }

    #[derive(Debug, clap::Parser)]
    enum TestCli {
        Webhooks(WebhooksArgs),
    }

    fn parse(args: &[&str]) -> WebhooksArgs {
        let TestCli::Webhooks(args) =
            TestCli::try_parse_from(["hooklake", "webhooks"].iter().chain(args)).unwrap_or_else(|e| panic!("{e}"));
        args
    }

    #[test]
    fn cli_parses_repeated_and_comma_separated_events() {
        TestCli::command().debug_assert();
        let args = parse(&["create", "--url", URL, "--events", "A,B", "--events", "C", "--json"]);
        assert!(args.json);
        match args.command {
            WebhooksCommand::Create { url, events, name } => {
                assert_eq!(url, URL);
                assert_eq!(events, strings(&["A", "B", "C"]));
                assert_eq!(name, "hooklake");
            }
            other => panic!("{other:?}"),
        }
        match parse(&["update", "abc", "--active", "false"]).command {
            WebhooksCommand::Update { id, active, events, url, name } => {
                assert_eq!(id, "abc");
                assert_eq!(active, Some(false));
                assert!(events.is_empty() && url.is_none() && name.is_none());
            }
            other => panic!("{other:?}"),
        }
        match parse(&["send", "--event", "CONTENTS.ADDED"]).command {
            WebhooksCommand::Send { event, name, data } => {
                assert_eq!(event, "CONTENTS.ADDED");
                assert_eq!(name, None);
                assert_eq!(data, json!({}));
            }
            other => panic!("{other:?}"),
        }
        assert!(TestCli::try_parse_from(["hooklake", "webhooks", "send", "--event", "X", "--data", "{"]).is_err());
        assert!(TestCli::try_parse_from(["hooklake", "webhooks", "create", "--url", URL]).is_err(), "events required");
        match parse(&["ensure"]).command {
            WebhooksCommand::Ensure { url, events, name } => {
                assert_eq!((url, events.len(), name.as_str()), (None, 0, "hooklake"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clean_events_trims_and_drops_empty_and_repeated_entries() {
        assert_eq!(clean_events(strings(&[" A", "", "B", "A"])), strings(&["A", "B"]));
        assert_eq!(known_event_types().len(), 26);
    }
}
