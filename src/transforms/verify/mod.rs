//! `type = "verify"`: the admission stage that decides who may deliver. It checks the sender's address
//! against an allow-list (403) and the signature over the raw body (401). It must never parse the body or
//! store anything: a request it refuses leaves no trace but a metric.

mod ip;
mod signature;

use std::net::IpAddr;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

pub use ip::{NetSet, client_ip, parse_net};
pub use signature::{Algorithm, Encoding, Scheme, SignatureError, SignatureVerifier, decode_standard_secret};

use crate::config::{Diagnostics, Fields};
use crate::secret::Secret;

/// The signing key of the shipped example config. Public, so it is refused on anything but loopback.
pub const EXAMPLE_SECRET: &str = "example-secret";

/// `[transforms.<name>]` with `type = "verify"`, as parsed.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// `scheme` (`insightiq` default, `hmac`, `standard`) with its `header`, `algorithm`, `encoding`,
    /// `prefix` or `tolerance` (default 5m).
    pub scheme: Scheme,
    /// `secrets`: signing keys; several = key rotation (any may match). Required, each non-empty.
    pub secrets: Vec<Secret>,
    /// `allow_ips`: named sets (`insightiq-sandbox`, `insightiq-staging`, `insightiq-production`) or CIDRs.
    /// Absent = any address.
    pub allow_ips: Option<NetSet>,
    /// `trusted_proxies`: CIDRs whose `X-Forwarded-For` is believed. Default none.
    pub trusted_proxies: NetSet,
}

impl VerifyConfig {
    /// Reads the stage's keys, reporting every problem.
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let path = f.path().to_owned();
        let scheme_name = f.choice(d, "scheme", &["insightiq", "hmac", "standard"], "insightiq");
        let header = f.opt_string(d, "header");
        let header_name = header.as_ref().and_then(|h| match HeaderName::from_bytes(h.value.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                d.error(h.span.clone(), format!("{path}.header: `{}` is not a valid header name", h.value));
                None
            }
        });
        let scheme = match scheme_name.as_str() {
            "hmac" => {
                let algorithm = match f.choice(d, "algorithm", &["sha256", "sha512"], "sha256").as_str() {
                    "sha512" => Algorithm::Sha512,
                    _ => Algorithm::Sha256,
                };
                let encoding = match f.choice(d, "encoding", &["hex", "base64"], "hex").as_str() {
                    "base64" => Encoding::Base64,
                    _ => Encoding::Hex,
                };
                let prefix = f.string_or(d, "prefix", "");
                if header.is_none() {
                    d.error(f.span(), format!("{path} needs `header` with scheme = \"hmac\""));
                }
                // A placeholder keeps the rest of the table checked; the error above already fails the config.
                let header = header_name.clone().unwrap_or(HeaderName::from_static("x-signature"));
                Scheme::Hmac { header, algorithm, encoding, prefix }
            }
            "standard" => {
                if let Some(h) = &header {
                    d.error(
                        h.span.clone(),
                        format!("{path}.header does not apply to scheme = \"standard\" (it uses webhook-id, webhook-timestamp and webhook-signature)"),
                    );
                }
                let tolerance = f.duration(d, "tolerance", Duration::from_secs(300));
                Scheme::Standard { tolerance_secs: i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX) }
            }
            _ => Scheme::InsightIq {
                header: header_name.unwrap_or(HeaderName::from_static(crate::insightiq::SIGNATURE_HEADER)),
            },
        };
        let secrets = f.opt_secrets(d, "secrets");
        let secrets = match secrets {
            None => {
                d.error(f.span(), format!("{path} needs `secrets` (one or more signing keys)"));
                Vec::new()
            }
            Some(list) if list.is_empty() && f.array_len("secrets") == Some(0) => {
                d.error(f.value_span("secrets"), format!("{path}.secrets must hold at least one key"));
                Vec::new()
            }
            Some(list) => {
                for s in &list {
                    if s.value.expose().is_empty() {
                        d.error(s.span.clone(), format!("{path}.secrets: a secret is empty (is its variable set?)"));
                    } else if matches!(scheme, Scheme::Standard { .. })
                        && let Err(e) = decode_standard_secret(&s.value)
                    {
                        d.error(s.span.clone(), format!("{path}.secrets: {e}"));
                    }
                }
                list.into_iter().map(|s| s.value).collect()
            }
        };
        let allow_ips = f.opt_strings(d, "allow_ips").map(|list| {
            let mut nets = Vec::new();
            for entry in list {
                if let Some(cidrs) = crate::insightiq::ip_set(&entry.value) {
                    nets.extend(cidrs.iter().filter_map(|c| parse_net(c)));
                } else if let Some(net) = parse_net(&entry.value) {
                    nets.push(net);
                } else {
                    let names = crate::insightiq::IP_SETS.iter().map(|(n, _)| *n);
                    let hint = crate::config::suggest(&entry.value, names)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    d.error(
                        entry.span,
                        format!("{path}.allow_ips: `{}` is neither a CIDR nor a named set{hint}", entry.value),
                    );
                }
            }
            NetSet::new(nets)
        });
        let trusted_proxies = NetSet::new(cidrs(f, d, "trusted_proxies"));
        Some(Self { scheme, secrets, allow_ips, trusted_proxies })
    }
}

fn cidrs(f: &mut Fields<'_>, d: &mut Diagnostics<'_>, key: &str) -> Vec<IpNet> {
    let path = f.path().to_owned();
    let mut out = Vec::new();
    for entry in f.opt_strings(d, key).unwrap_or_default() {
        match parse_net(&entry.value) {
            Some(n) => out.push(n),
            None => d.error(entry.span, format!("{path}.{key}: `{}` is not a CIDR or address", entry.value)),
        }
    }
    out
}

/// Why `verify` refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The client address is not on the allow-list (403).
    #[error("source address {ip} is not allowed")]
    IpNotAllowed {
        /// The client address as determined (peer or believed `X-Forwarded-For`).
        ip: IpAddr,
    },
    /// The signature is missing or wrong (401).
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A built `verify` stage.
#[derive(Debug, Clone)]
pub struct Verifier {
    signature: SignatureVerifier,
    allow_ips: Option<NetSet>,
    trusted_proxies: NetSet,
}

impl Verifier {
    /// Builds the stage.
    ///
    /// # Errors
    /// When a secret cannot be decoded (validation already reports this; kept for callers that skip it).
    pub fn build(config: &VerifyConfig) -> Result<Self, &'static str> {
        Ok(Self {
            signature: SignatureVerifier::new(config.scheme.clone(), &config.secrets)?,
            allow_ips: config.allow_ips.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// The client address of a request from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let xff = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        client_ip(peer, xff, &self.trusted_proxies)
    }

    /// Checks the sender's address; cheap, so it runs before the body is read.
    ///
    /// # Errors
    /// [`VerifyError::IpNotAllowed`].
    pub fn check_peer(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), VerifyError> {
        let Some(allow) = &self.allow_ips else { return Ok(()) };
        let ip = self.client_ip(peer, headers);
        if allow.contains(ip) { Ok(()) } else { Err(VerifyError::IpNotAllowed { ip }) }
    }

    /// Checks the signature over the raw body.
    ///
    /// # Errors
    /// [`VerifyError::Signature`].
    pub fn check_body(&self, headers: &HeaderMap, body: &[u8], now_micros: i64) -> Result<(), VerifyError> {
        Ok(self.signature.verify(headers, body, now_micros)?)
    }
}
