//! The admission chain: what runs while the sender waits, between reading the request and the journal append.
//! Built from the `verify` and `dedup` stages wired after a webhook source. Pure: a request in, a journal
//! entry or a [`Rejection`] out; the source maps the outcome to an HTTP status and does the I/O.
//!
//! Order: address (before the body is read), signature over the raw bytes, then the envelope is parsed
//! (never parse what is not authenticated), then the dedup key is taken.

use std::net::IpAddr;

use bytes::Bytes;
use hyper::header::HeaderMap;

use crate::envelope::{Envelope, EnvelopeError};
use crate::journal::Entry;
use crate::transforms::dedup::Dedup;
use crate::transforms::verify::{Verifier, VerifyError};

/// Request headers copied into the journal entry (lowercase). Never signatures or credentials.
pub const KEPT_HEADERS: &[&str] = &["content-type", "user-agent", "request-id", "x-request-id", "webhook-id"];

/// Why admission refused a delivery. Nothing refused is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Address or signature.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The body is not an envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The configured dedup field is absent.
    #[error("body has no dedup key at `{field}`")]
    NoDedupKey {
        /// The configured field.
        field: String,
    },
}

/// A source's built admission chain.
#[derive(Debug, Clone)]
pub struct Admission {
    source: String,
    verifiers: Vec<Verifier>,
    dedup: Option<Dedup>,
}

/// An admitted delivery, ready for the journal.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The entry to store.
    pub entry: Entry,
    /// How long its dedup key is held.
    pub dedup_ttl_micros: i64,
}

impl Admission {
    /// A chain for source `source` running `verifiers` in order, then `dedup`.
    pub fn new(source: impl Into<String>, verifiers: Vec<Verifier>, dedup: Option<Dedup>) -> Self {
        Self { source: source.into(), verifiers, dedup }
    }

    /// The client address of a request: decided by the first `verify` stage's trusted proxies, else the peer.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.verifiers.first().map_or(peer, |v| v.client_ip(peer, headers))
    }

    /// Address checks: run before the body is read.
    ///
    /// # Errors
    /// [`Rejection::Verify`] when an allow-list refuses the address.
    pub fn check_peer(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Rejection> {
        for v in &self.verifiers {
            v.check_peer(peer, headers)?;
        }
        Ok(())
    }

    /// Signature, envelope and dedup key: run on the complete raw body.
    ///
    /// # Errors
    /// A [`Rejection`] naming the first failed check.
    pub fn admit(
        &self,
        client_ip: IpAddr,
        headers: &HeaderMap,
        body: Bytes,
        received_at: i64,
    ) -> Result<Admitted, Rejection> {
        for v in &self.verifiers {
            v.check_body(headers, &body, received_at)?;
        }
        let envelope = Envelope::parse(&body)?;
        let (dedup_key, dedup_ttl_micros) = match &self.dedup {
            Some(d) => {
                let k = d.key(&envelope).ok_or_else(|| Rejection::NoDedupKey { field: d.field().to_owned() })?;
                // Keys are per source: two senders may well use the same ids. Names cannot hold `:`.
                (Some(format!("{}:{}", self.source, k.key)), k.ttl_micros)
            }
            None => (None, 0),
        };
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(|v| ((*h).to_owned(), v.to_owned())))
            .collect();
        let entry = Entry {
            source: self.source.clone(),
            received_at,
            source_ip: client_ip.to_string(),
            event: envelope.event,
            id: envelope.id,
            name: envelope.name,
            dedup_key,
            headers,
            body,
        };
        Ok(Admitted { entry, dedup_ttl_micros })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::transforms::dedup::DedupConfig;
    use crate::transforms::verify::{NetSet, Scheme, SignatureError, VerifyConfig, parse_net};
    use hmac::{Hmac, Mac};
    use hyper::header::{HeaderName, HeaderValue};
    use sha2::Sha256;

    fn chain(allow: Option<&[&str]>) -> Admission {
        let config = VerifyConfig {
            scheme: Scheme::InsightIq { header: HeaderName::from_static("webhook-signatures") },
            secrets: vec![Secret::new("k")],
            allow_ips: allow.map(|a| NetSet::new(a.iter().filter_map(|c| parse_net(c)).collect())),
            trusted_proxies: NetSet::default(),
        };
        let dedup = Dedup::build(&DedupConfig { field: "id".into(), ttl: std::time::Duration::from_secs(7 * 86_400) });
        Admission::new("insightiq", vec![Verifier::build(&config).expect("build")], Some(dedup))
    }

    fn signed(body: &str) -> HeaderMap {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").expect("any key");
        mac.update(body.as_bytes());
        let mut h = HeaderMap::new();
        let sig = hex::encode(mac.finalize().into_bytes());
        h.insert("webhook-signatures", HeaderValue::from_str(&sig).expect("hex"));
        h.insert("user-agent", HeaderValue::from_static("insightiq"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn signed_envelope_becomes_an_entry_with_its_key_and_safe_headers() {
        let body = r#"{"event":"ACCOUNTS.CONNECTED","id":"e1","data":{}}"#;
        let a = chain(None).admit(ip("127.0.0.1"), &signed(body), Bytes::from(body), 42).expect("admitted");
        assert_eq!(a.entry.event, "ACCOUNTS.CONNECTED");
        assert_eq!(a.entry.dedup_key.as_deref(), Some("insightiq:e1"));
        assert_eq!(a.entry.received_at, 42);
        assert_eq!(&a.entry.body[..], body.as_bytes());
        assert_eq!(a.entry.headers, vec![("user-agent".to_owned(), "insightiq".to_owned())]);
        assert_eq!(a.dedup_ttl_micros, 7 * 86_400 * 1_000_000);
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_parsed() {
        // Garbage with a wrong signature is a 401, not a 400: unauthenticated input is never parsed.
        let r = chain(None).admit(ip("127.0.0.1"), &signed("other"), Bytes::from_static(b"{garbage"), 0);
        assert_eq!(
            r.err(),
            Some(Rejection::Verify(VerifyError::Signature(SignatureError::Mismatch { header: "webhook-signatures" })))
        );
        let r = chain(None).admit(ip("127.0.0.1"), &signed("{garbage"), Bytes::from_static(b"{garbage"), 0);
        assert!(matches!(r, Err(Rejection::Envelope(_))));
    }

    #[test]
    fn address_outside_the_allow_list_is_refused() {
        let c = chain(Some(&["54.211.40.75"]));
        assert_eq!(c.check_peer(ip("54.211.40.75"), &HeaderMap::new()), Ok(()));
        let mut forged = HeaderMap::new();
        forged.insert("x-forwarded-for", HeaderValue::from_static("54.211.40.75"));
        assert!(matches!(
            c.check_peer(ip("192.0.2.1"), &forged),
            Err(Rejection::Verify(VerifyError::IpNotAllowed { .. }))
        ));
    }
}
