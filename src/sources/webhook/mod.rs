//! `type = "webhook"`: the HTTP server deliveries arrive at. Its 200 means "durably stored".
//!
//! Per request: route → size limit (413 from `Content-Length` before reading, or while reading) → address check
//! (403) → body read under `body_timeout` (408) → admission chain (401/400) → journal append under
//! `ack_timeout` (200, or 503 with `Retry-After`). [`Answer::status`] is the one place that maps an outcome to a
//! status. Bounds: `max_connections` (a semaphore in front of `accept`), `header_timeout` and
//! `max_header_bytes` (hyper), `max_body`, `body_timeout`, `ack_timeout`.
//!
//! This module must never store anything that admission refused, and never answer 200 before the journal says
//! the entry is on disk.

mod config;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use config::{MAX_BODY_LIMIT, WebhookConfig};

use crate::admission::{Admission, Rejection};
use crate::clock::SharedClock;
use crate::journal::{Appended, Journal, JournalError};
use crate::metrics::{Metrics, SourceMetrics};
use crate::transforms::verify::VerifyError;

/// Seconds a 503 asks the sender to wait.
pub const RETRY_AFTER_SECS: u64 = 10;

/// Most headers in one request.
const MAX_HEADERS: usize = 100;

/// How long shutdown waits for open connections to finish their request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one request to the webhook path.
#[derive(Debug)]
pub enum Answer {
    /// Stored under `seq`.
    Accepted {
        /// Journal sequence number.
        seq: u64,
    },
    /// Already stored under `seq`: acknowledged, nothing stored.
    Duplicate {
        /// Journal sequence number of the original.
        seq: u64,
    },
    /// Refused by admission.
    Rejected(Rejection),
    /// Body over `max_body`.
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// A `Content-Type` that is not JSON.
    UnsupportedMediaType,
    /// The body did not arrive within `body_timeout`.
    BodyTimeout,
    /// The body could not be read (client went away, bad chunking).
    BodyError,
    /// Not the webhook path, nor a built-in endpoint.
    NotFound,
    /// Right path, wrong method.
    MethodNotAllowed {
        /// The method to use.
        allow: &'static str,
    },
    /// Shutting down: nothing new is taken.
    ShuttingDown,
    /// The journal could not store it (full, disk error, closed).
    Journal(JournalError),
    /// The journal did not confirm within `ack_timeout`.
    AckTimeout,
}

impl Answer {
    /// The HTTP status of this outcome: the one mapping from reasons to statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Accepted { .. } | Self::Duplicate { .. } => StatusCode::OK,
            Self::Rejected(Rejection::Verify(VerifyError::IpNotAllowed { .. })) => StatusCode::FORBIDDEN,
            Self::Rejected(Rejection::Verify(VerifyError::Signature(_))) => StatusCode::UNAUTHORIZED,
            Self::Rejected(Rejection::Envelope(_) | Rejection::NoDedupKey { .. }) | Self::BodyError => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::ShuttingDown | Self::Journal(_) | Self::AckTimeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Why, in words (no secrets, no body content).
    pub fn reason(&self) -> String {
        match self {
            Self::Accepted { .. } => "accepted".into(),
            Self::Duplicate { .. } => "duplicate".into(),
            Self::Rejected(r) => r.to_string(),
            Self::TooLarge { max } => format!("body is larger than {max} bytes"),
            Self::UnsupportedMediaType => "Content-Type must be application/json".into(),
            Self::BodyTimeout => "body was not received in time".into(),
            Self::BodyError => "body could not be read".into(),
            Self::NotFound => "not found".into(),
            Self::MethodNotAllowed { allow } => format!("use {allow}"),
            Self::ShuttingDown => "shutting down; retry later".into(),
            Self::Journal(e) => format!("{e}; retry later"),
            Self::AckTimeout => "storage is slow; retry later".into(),
        }
    }

    fn body(&self) -> String {
        let json = match self {
            Self::Accepted { seq } => serde_json::json!({"status": "accepted", "seq": seq}),
            Self::Duplicate { seq } => serde_json::json!({"status": "duplicate", "seq": seq}),
            other => serde_json::json!({"error": other.reason()}),
        };
        json.to_string()
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut resp = Response::new(Full::new(Bytes::from(self.body())));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match &self {
            Self::ShuttingDown | Self::Journal(_) | Self::AckTimeout => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::MethodNotAllowed { allow } => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            // The rest of the body is unread: close, so the connection is not reused mid-body.
            Self::TooLarge { .. } | Self::BodyTimeout | Self::BodyError => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// State shared by every source of a pipeline.
pub struct Shared {
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// All metrics.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: SharedClock,
    /// Set at shutdown: new requests get 503.
    pub draining: AtomicBool,
    /// The journal's disk budget, for `/ready`.
    pub max_journal_bytes: u64,
}

impl Shared {
    /// Why this instance should not get traffic now, if it should not: shutting down, journal over its
    /// budget (every delivery would get 503), or a sink that stopped (its events pile up in the journal).
    pub fn not_ready(&self) -> Option<String> {
        if self.draining.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        let stats = self.journal.stats();
        if stats.full || stats.bytes >= self.max_journal_bytes {
            return Some(format!("journal over its disk budget ({} of {} bytes)", stats.bytes, self.max_journal_bytes));
        }
        let stopped = self.metrics.stopped_sinks();
        if !stopped.is_empty() {
            return Some(format!("sink stopped: {}", stopped.join(", ")));
        }
        None
    }
}

struct Ctx {
    name: String,
    config: WebhookConfig,
    admission: Admission,
    shared: Arc<Shared>,
    metrics: Arc<SourceMetrics>,
}

/// Every connection is a file descriptor: raise the soft open-file limit towards the hard one so that
/// `max_connections` is reachable (as Go does at start), and say so when the hard limit is lower.
fn raise_open_file_limit(source: &str, max_connections: usize) {
    // Connections plus the journal, the lake, plugins and the API client.
    let want = max_connections as u64 + 256;
    match rlimit::increase_nofile_limit(want) {
        Ok(got) if got < want => tracing::warn!(
            source,
            max_connections,
            open_files = got,
            "the open-file limit is below max_connections; connections beyond it wait in the kernel's backlog"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(source, error = %e, "cannot read or raise the open-file limit"),
    }
}

/// A webhook source with its socket bound.
pub struct Webhook {
    ctx: Arc<Ctx>,
    listener: TcpListener,
}

impl Webhook {
    /// Binds the listening socket.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(
        name: &str,
        config: WebhookConfig,
        admission: Admission,
        shared: Arc<Shared>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        raise_open_file_limit(name, config.max_connections);
        let metrics = shared.metrics.source(name);
        Ok(Self { ctx: Arc::new(Ctx { name: name.to_owned(), config, admission, shared, metrics }), listener })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    ///
    /// # Errors
    /// When the socket has no address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// The webhook path.
    pub fn path(&self) -> &str {
        &self.ctx.config.path
    }

    /// Serves until `shutdown` turns true, then stops accepting, lets open connections finish their current
    /// request (bounded by [`DRAIN_TIMEOUT`]) and returns.
    pub async fn serve(self, mut shutdown: crate::shutdown::Signal) {
        let Self { ctx, listener } = self;
        let max = ctx.config.max_connections;
        let slots = Arc::new(Semaphore::new(max));
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(r) => r,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let ctx = Arc::clone(&ctx);
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = service_fn(|req| {
                    let ctx = Arc::clone(&ctx);
                    async move { Ok::<_, Infallible>(handle(&ctx, peer, req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(ctx.config.header_timeout)
                    .max_buf_size(ctx.config.max_header_bytes)
                    .max_headers(MAX_HEADERS)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = crate::shutdown::stopped(&mut shutdown) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
                    }
                }
                drop(permit);
            });
        }
        drop(listener);
        // Wait until every connection task has given its slot back (bounded).
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), slots.acquire_many(all)).await;
    }
}

async fn handle(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let builtin = match path {
        "/health" => Some(plain(StatusCode::OK, "ok\n", "text/plain")),
        "/ready" => Some(match ctx.shared.not_ready() {
            Some(why) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"), "text/plain"),
            // Still ready (taking this instance out of a load balancer would not bring deliveries back), but
            // said: InsightIQ stopped delivering to hooklake's webhook.
            None if ctx.shared.metrics.webhook_inactive() => plain(
                StatusCode::OK,
                "ready; warning: hooklake's InsightIQ webhook is inactive or missing (no deliveries); see `hooklake webhooks list`\n",
                "text/plain",
            ),
            None => plain(StatusCode::OK, "ready\n", "text/plain"),
        }),
        "/metrics" => {
            let text = ctx.shared.metrics.render(&ctx.shared.journal.stats());
            Some(plain(StatusCode::OK, text, "text/plain; version=0.0.4"))
        }
        _ => None,
    };
    if let Some(resp) = builtin {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            return resp;
        }
        return Answer::MethodNotAllowed { allow: "GET" }.into_response();
    }
    let answer = if path != ctx.config.path {
        Answer::NotFound
    } else if req.method() != Method::POST {
        Answer::MethodNotAllowed { allow: "POST" }
    } else {
        receive(ctx, peer, req).await
    };
    let status = answer.status();
    ctx.metrics.answered(status.as_u16());
    match &answer {
        Answer::Accepted { seq } => {
            ctx.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(source = %ctx.name, seq, "accepted");
        }
        Answer::Duplicate { seq } => {
            ctx.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(source = %ctx.name, seq, "duplicate");
        }
        Answer::Journal(e) => tracing::warn!(source = %ctx.name, error = %e, "not stored"),
        other => {
            tracing::info!(source = %ctx.name, %peer, status = status.as_u16(), reason = %other.reason(), "refused")
        }
    }
    answer.into_response()
}

async fn receive(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    if ctx.shared.draining.load(Ordering::Relaxed) {
        return Answer::ShuttingDown;
    }
    let headers = req.headers();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        // `application/json`, `application/json; charset=utf-8`, `application/vnd.x+json`, any case.
        let ok = ct.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"json"));
        if !ok {
            return Answer::UnsupportedMediaType;
        }
    }
    let max = ctx.config.max_body;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Answer::TooLarge { max };
    }
    if let Err(r) = ctx.admission.check_peer(peer.ip(), headers) {
        return Answer::Rejected(r);
    }
    let client_ip = ctx.admission.client_ip(peer.ip(), headers);
    let (parts, body) = req.into_parts();
    // Preallocate for the declared length, but never much before any byte has arrived (or been authenticated).
    let capacity = declared.map_or(8 << 10, |n| n.min(64 << 10) as usize);
    let body = match tokio::time::timeout(ctx.config.body_timeout, read_body(body, max, capacity)).await {
        Err(_) => return Answer::BodyTimeout,
        Ok(Err(answer)) => return answer,
        Ok(Ok(b)) => b,
    };
    let received_at = ctx.shared.clock.now_micros();
    let admitted = match ctx.admission.admit(client_ip, &parts.headers, body, received_at) {
        Ok(a) => a,
        Err(r) => return Answer::Rejected(r),
    };
    let append = ctx.shared.journal.append(admitted.entry, admitted.dedup_ttl_micros);
    // If this times out the write may still land; the sender's retry is then answered as a duplicate.
    match tokio::time::timeout(ctx.config.ack_timeout, append).await {
        Err(_) => Answer::AckTimeout,
        Ok(Err(e)) => Answer::Journal(e),
        Ok(Ok(Appended::Stored { seq })) => Answer::Accepted { seq },
        Ok(Ok(Appended::Duplicate { seq })) => Answer::Duplicate { seq },
    }
}

async fn read_body(mut body: Incoming, max: u64, capacity: usize) -> Result<Bytes, Answer> {
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Answer::BodyError)?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > max {
                return Err(Answer::TooLarge { max });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn plain(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeError;
    use crate::transforms::verify::SignatureError;

    #[test]
    fn every_outcome_maps_to_the_contracted_status() {
        let ip = "192.0.2.1".parse().expect("ip");
        let cases: Vec<(Answer, u16)> = vec![
            (Answer::Accepted { seq: 1 }, 200),
            (Answer::Duplicate { seq: 1 }, 200),
            (Answer::Rejected(Rejection::Verify(VerifyError::IpNotAllowed { ip })), 403),
            (Answer::Rejected(Rejection::Verify(SignatureError::Missing { header: "h" }.into())), 401),
            (Answer::Rejected(Rejection::Verify(SignatureError::Mismatch { header: "h" }.into())), 401),
            (Answer::Rejected(Rejection::Envelope(EnvelopeError::MissingField { field: "id" })), 400),
            (Answer::Rejected(Rejection::NoDedupKey { field: "id".into() }), 400),
            (Answer::TooLarge { max: 1 }, 413),
            (Answer::UnsupportedMediaType, 415),
            (Answer::BodyTimeout, 408),
            (Answer::NotFound, 404),
            (Answer::MethodNotAllowed { allow: "POST" }, 405),
            (Answer::ShuttingDown, 503),
            (Answer::Journal(JournalError::Full { bytes: 2, max: 1 }), 503),
            (Answer::Journal(JournalError::Closed), 503),
            (Answer::AckTimeout, 503),
        ];
        for (answer, want) in cases {
            let retry = matches!(answer, Answer::ShuttingDown | Answer::Journal(_) | Answer::AckTimeout);
            let resp = answer.into_response();
            assert_eq!(resp.status().as_u16(), want);
            assert_eq!(resp.headers().contains_key(header::RETRY_AFTER), retry, "Retry-After only on 503");
        }
    }
}
