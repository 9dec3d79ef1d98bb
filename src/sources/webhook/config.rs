//! `[sources.<name>]` with `type = "webhook"`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::config::{Diagnostics, Fields};

/// Largest `max_body` accepted: the journal frames a body with a 32-bit length, and nothing sane is bigger.
pub const MAX_BODY_LIMIT: u64 = 256 << 20;

/// Default `max_connections`. An idle connection costs a few KiB and is closed at `header_timeout`; 10,000 of
/// them must not stop a real sender from being served (tests/reliability.rs).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 16_384;

/// The webhook source, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `listen`: address and port (default `127.0.0.1:8080`; port 0 picks a free one and prints it).
    pub listen: SocketAddr,
    /// `path`: where deliveries are POSTed (default `/webhooks/<source name>`).
    pub path: String,
    /// `max_body`: largest accepted body (default `1MiB`); larger gets 413 without reading the rest.
    pub max_body: u64,
    /// `max_connections`: concurrent connections served (default 16384: idle or slow clients must not crowd out
    /// InsightIQ); more wait in the listen backlog.
    pub max_connections: usize,
    /// `header_timeout`: time to send the request head (default `10s`).
    pub header_timeout: Duration,
    /// `body_timeout`: time to send the whole body once the head is in (default `10s`); then 408.
    pub body_timeout: Duration,
    /// `ack_timeout`: longest wait for the durable write before answering 503 (default `4s`, inside the
    /// sender's 5 s timeout).
    pub ack_timeout: Duration,
    /// `max_header_bytes`: largest request head (default `16KiB`).
    pub max_header_bytes: usize,
}

impl WebhookConfig {
    /// Reads the source's keys.
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let path_name = f.path().to_owned();
        let name = path_name.rsplit('.').next().unwrap_or("webhook").to_owned();
        let listen = match f.opt_string(d, "listen") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(s) => match resolve(&s.value) {
                Some(a) => a,
                None => {
                    d.error(
                        s.span,
                        format!(
                            "{path_name}.listen: `{}` is not an address like 127.0.0.1:8080 or 0.0.0.0:8080",
                            s.value
                        ),
                    );
                    SocketAddr::from(([127, 0, 0, 1], 8080))
                }
            },
        };
        let path = f.string_or(d, "path", &format!("/webhooks/{name}"));
        if !path.starts_with('/') {
            d.error(f.value_span("path"), format!("{path_name}.path must start with `/`"));
        }
        if ["/health", "/ready", "/metrics"].contains(&path.as_str()) {
            d.error(f.value_span("path"), format!("{path_name}.path `{path}` is reserved"));
        }
        let max_body = f.size(d, "max_body", 1 << 20);
        if max_body == 0 || max_body > MAX_BODY_LIMIT {
            d.error(f.value_span("max_body"), format!("{path_name}.max_body must be between 1B and 256MiB"));
        }
        let max_connections = f.integer(d, "max_connections", DEFAULT_MAX_CONNECTIONS, 1..1_000_001) as usize;
        let header_timeout = f.duration(d, "header_timeout", Duration::from_secs(10));
        let body_timeout = f.duration(d, "body_timeout", Duration::from_secs(10));
        let ack_timeout = f.duration(d, "ack_timeout", Duration::from_secs(4));
        for (key, v) in
            [("header_timeout", header_timeout), ("body_timeout", body_timeout), ("ack_timeout", ack_timeout)]
        {
            if v.is_zero() {
                d.error(f.value_span(key), format!("{path_name}.{key} must be above zero"));
            }
        }
        let max_header_bytes = f.size(d, "max_header_bytes", 16 << 10);
        if !(8192..=1 << 20).contains(&max_header_bytes) {
            d.error(
                f.value_span("max_header_bytes"),
                format!("{path_name}.max_header_bytes must be between 8KiB and 1MiB"),
            );
        }
        Some(Self {
            listen,
            path,
            max_body,
            max_connections,
            header_timeout,
            body_timeout,
            ack_timeout,
            max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(16 << 10),
        })
    }
}

fn resolve(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    // `localhost:8080`: resolved once here, never at request time.
    s.to_socket_addrs().ok()?.next()
}
