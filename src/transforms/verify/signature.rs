//! Signature schemes over the raw body. Pure: headers, body and the current time in; a verdict out.
//!
//! - `insightiq`: `Webhook-Signatures: <hex>,<hex>,…`, HMAC-SHA256 of the raw body; any entry matching any
//!   configured secret passes (key rotation on both sides).
//! - `hmac`: a configurable header, SHA-256 or SHA-512, hex or base64, optional prefix (`sha256=`).
//! - `standard`: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`,
//!   MAC over `{id}.{timestamp}.{body}`, `whsec_` secrets); the timestamp tolerance is checked only after the
//!   MAC matched, so an unauthenticated sender learns nothing about our clock.
//!
//! Every comparison of a MAC is constant-time (`subtle`).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, HeaderName};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// MAC algorithm of the `hmac` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How the `hmac` scheme writes its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// A signature scheme, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// InsightIQ's comma-separated hex HMAC-SHA256 list.
    InsightIq {
        /// The header (default `Webhook-Signatures`).
        header: HeaderName,
    },
    /// A generic HMAC header.
    Hmac {
        /// The header.
        header: HeaderName,
        /// The hash.
        algorithm: Algorithm,
        /// The digest's text form.
        encoding: Encoding,
        /// Text before the digest (`sha256=`), stripped before decoding.
        prefix: String,
    },
    /// Standard Webhooks.
    Standard {
        /// Allowed distance between `webhook-timestamp` and now, in seconds.
        tolerance_secs: i64,
    },
}

/// Why a signature was refused (401). Carries header names, never values or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing signature header `{header}`")]
    Missing {
        /// The header.
        header: &'static str,
    },
    /// The header is there but no entry matches any key.
    #[error("signature in `{header}` does not match the body")]
    Mismatch {
        /// The header.
        header: &'static str,
    },
    /// Standard Webhooks: MAC fine, timestamp too far from now (a replay or a skewed clock).
    #[error("`webhook-timestamp` is {skew_secs}s away from now (tolerance {tolerance_secs}s)")]
    Stale {
        /// Signed distance from now.
        skew_secs: i64,
        /// The configured tolerance.
        tolerance_secs: i64,
    },
}

/// A keyed MAC, keyed once at build and cloned per request (cheaper than re-keying).
#[derive(Clone)]
enum Key {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Key {
    fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(
                <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key")),
            ),
            Algorithm::Sha512 => Self::Sha512(
                <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key")),
            ),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256(k) => {
                let mut m = k.clone();
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512(k) => {
                let mut m = k.clone();
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// A built signature check.
#[derive(Clone)]
pub struct SignatureVerifier {
    scheme: Scheme,
    keys: Vec<Key>,
    /// The header name as a `'static` str for errors (leaked once per configured verifier at start).
    header_label: &'static str,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier").field("scheme", &self.scheme).field("keys", &self.keys.len()).finish()
    }
}

/// Decodes a Standard Webhooks secret (`whsec_<base64>`, or bare base64).
///
/// # Errors
/// When the text is not base64; the message never contains the secret.
pub fn decode_standard_secret(secret: &Secret) -> Result<Vec<u8>, &'static str> {
    let text = secret.expose();
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    B64.decode(text).map_err(|_| "a Standard Webhooks secret must be `whsec_` followed by base64")
}

impl SignatureVerifier {
    /// Builds the check for `scheme` with every key in `secrets` (several = rotation).
    ///
    /// # Errors
    /// When a Standard Webhooks secret is not base64.
    pub fn new(scheme: Scheme, secrets: &[Secret]) -> Result<Self, &'static str> {
        let (algorithm, header_label): (Algorithm, &'static str) = match &scheme {
            Scheme::InsightIq { header } => (Algorithm::Sha256, leak(header)),
            Scheme::Hmac { header, algorithm, .. } => (*algorithm, leak(header)),
            Scheme::Standard { .. } => (Algorithm::Sha256, WEBHOOK_SIGNATURE),
        };
        let mut keys = Vec::with_capacity(secrets.len());
        for s in secrets {
            let bytes = match scheme {
                Scheme::Standard { .. } => decode_standard_secret(s)?,
                _ => s.expose().as_bytes().to_vec(),
            };
            keys.push(Key::new(algorithm, &bytes));
        }
        Ok(Self { scheme, keys, header_label })
    }

    /// Checks the request's signature against the raw `body`.
    ///
    /// # Errors
    /// [`SignatureError`] when a header is missing, nothing matches, or (standard) the timestamp is stale.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now_micros: i64) -> Result<(), SignatureError> {
        match &self.scheme {
            Scheme::InsightIq { header } => {
                let values = header_str(headers, header, self.header_label)?;
                let candidates = values.split(',').filter_map(|v| hex::decode(v.trim()).ok());
                self.any_matches(candidates, &[body])
            }
            Scheme::Hmac { header, encoding, prefix, .. } => {
                let values = header_str(headers, header, self.header_label)?;
                let candidates = values.split([',', ' ']).filter(|v| !v.is_empty()).filter_map(|v| {
                    let v = v.trim();
                    let v = v.strip_prefix(prefix.as_str()).unwrap_or(v);
                    match encoding {
                        Encoding::Hex => hex::decode(v).ok(),
                        Encoding::Base64 => B64.decode(v).ok(),
                    }
                });
                self.any_matches(candidates, &[body])
            }
            Scheme::Standard { tolerance_secs } => {
                let id = header_str(headers, &HeaderName::from_static(WEBHOOK_ID), WEBHOOK_ID)?;
                let ts = header_str(headers, &HeaderName::from_static(WEBHOOK_TIMESTAMP), WEBHOOK_TIMESTAMP)?;
                let sigs = header_str(headers, &HeaderName::from_static(WEBHOOK_SIGNATURE), WEBHOOK_SIGNATURE)?;
                let candidates =
                    sigs.split(' ').filter_map(|s| s.strip_prefix("v1,")).filter_map(|b| B64.decode(b).ok());
                self.any_matches(candidates, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])?;
                let ts: i64 = ts.trim().parse().map_err(|_| SignatureError::Mismatch { header: WEBHOOK_TIMESTAMP })?;
                let skew_secs = ts.saturating_sub(now_micros.div_euclid(1_000_000));
                if skew_secs.abs() > *tolerance_secs {
                    return Err(SignatureError::Stale { skew_secs, tolerance_secs: *tolerance_secs });
                }
                Ok(())
            }
        }
    }

    fn any_matches(&self, candidates: impl Iterator<Item = Vec<u8>>, parts: &[&[u8]]) -> Result<(), SignatureError> {
        let macs: Vec<Vec<u8>> = self.keys.iter().map(|k| k.mac(parts)).collect();
        let mut matched = subtle::Choice::from(0);
        // Bounded: at most MAX_CANDIDATES entries are tried, so a header with thousands of entries costs nothing.
        for candidate in candidates.take(MAX_CANDIDATES) {
            for mac in &macs {
                matched |= mac.as_slice().ct_eq(&candidate);
            }
        }
        if bool::from(matched) { Ok(()) } else { Err(SignatureError::Mismatch { header: self.header_label }) }
    }
}

/// Standard base64, padded or not (the `standardwebhooks` libraries accept unpadded secrets).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Most signature entries in one header that are checked.
pub const MAX_CANDIDATES: usize = 16;

/// Standard Webhooks header names.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks timestamp header.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signature header.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName, label: &'static str) -> Result<&'h str, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(SignatureError::Missing { header: label })?;
    value.to_str().map_err(|_| SignatureError::Mismatch { header: label })
}

fn leak(header: &HeaderName) -> &'static str {
    // Header names are few and fixed at start; leaking them keeps `SignatureError` `'static` and allocation-free.
    Box::leak(header.as_str().to_owned().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::Value;

    fn insightiq() -> Scheme {
        Scheme::InsightIq { header: HeaderName::from_static("webhook-signatures") }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    /// Vectors computed by `tests/fixtures/gen_signatures.py` with Python's `hmac` and the `standardwebhooks`
    /// package: code nobody here wrote.
    fn vectors() -> Value {
        let text = include_str!("../../../tests/fixtures/signatures.json");
        serde_json::from_str(text).expect("fixture is JSON")
    }

    fn s(v: &Value) -> &str {
        v.as_str().expect("string in fixture")
    }

    #[test]
    fn insightiq_vectors_from_python_hmac_verify() {
        for case in vectors()["insightiq"].as_array().expect("array") {
            let secrets: Vec<Secret> =
                case["secrets"].as_array().expect("secrets").iter().map(|x| Secret::new(s(x))).collect();
            let v = SignatureVerifier::new(insightiq(), &secrets).expect("build");
            let h = headers(&[("Webhook-Signatures", s(&case["header"]))]);
            let got = v.verify(&h, s(&case["body"]).as_bytes(), 0).is_ok();
            assert_eq!(got, case["valid"].as_bool().expect("bool"), "case {}", case["name"]);
        }
    }

    #[test]
    fn hmac_vectors_from_python_hmac_verify() {
        for case in vectors()["hmac"].as_array().expect("array") {
            let algorithm = if s(&case["algorithm"]) == "sha512" { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let encoding = if s(&case["encoding"]) == "base64" { Encoding::Base64 } else { Encoding::Hex };
            let scheme = Scheme::Hmac {
                header: HeaderName::from_static("x-signature"),
                algorithm,
                encoding,
                prefix: s(&case["prefix"]).to_owned(),
            };
            let v = SignatureVerifier::new(scheme, &[Secret::new(s(&case["secret"]))]).expect("build");
            let h = headers(&[("X-Signature", s(&case["header"]))]);
            let got = v.verify(&h, s(&case["body"]).as_bytes(), 0).is_ok();
            assert_eq!(got, case["valid"].as_bool().expect("bool"), "case {}", case["name"]);
        }
    }

    #[test]
    fn standard_vectors_from_the_standardwebhooks_package_verify() {
        for case in vectors()["standard"].as_array().expect("array") {
            let v =
                SignatureVerifier::new(Scheme::Standard { tolerance_secs: 300 }, &[Secret::new(s(&case["secret"]))])
                    .expect("build");
            let h = headers(&[
                ("webhook-id", s(&case["id"])),
                ("webhook-timestamp", s(&case["timestamp"])),
                ("webhook-signature", s(&case["signature"])),
            ]);
            let now = case["now"].as_i64().expect("now") * 1_000_000;
            let got = v.verify(&h, s(&case["body"]).as_bytes(), now);
            let want = s(&case["expect"]);
            match want {
                "ok" => assert_eq!(got, Ok(()), "case {}", case["name"]),
                "stale" => assert!(matches!(got, Err(SignatureError::Stale { .. })), "case {}: {got:?}", case["name"]),
                _ => assert!(matches!(got, Err(SignatureError::Mismatch { .. })), "case {}: {got:?}", case["name"]),
            }
        }
    }

    #[test]
    fn missing_header_is_reported_by_name() {
        let v = SignatureVerifier::new(insightiq(), &[Secret::new("k")]).expect("build");
        assert_eq!(
            v.verify(&HeaderMap::new(), b"{}", 0),
            Err(SignatureError::Missing { header: "webhook-signatures" })
        );
        let std = SignatureVerifier::new(Scheme::Standard { tolerance_secs: 300 }, &[Secret::new("whsec_AAAA")])
            .expect("build");
        assert_eq!(std.verify(&HeaderMap::new(), b"{}", 0), Err(SignatureError::Missing { header: "webhook-id" }));
    }

    #[test]
    fn stale_timestamp_is_only_reported_after_a_valid_mac() {
        // Wrong MAC and stale timestamp: the answer is "mismatch", never revealing the clock check.
        let std = SignatureVerifier::new(Scheme::Standard { tolerance_secs: 300 }, &[Secret::new("whsec_AAAA")])
            .expect("build");
        let h = headers(&[("webhook-id", "m"), ("webhook-timestamp", "1"), ("webhook-signature", "v1,AAAA")]);
        assert!(matches!(std.verify(&h, b"{}", 10_000_000_000_000), Err(SignatureError::Mismatch { .. })));
    }

    #[test]
    fn non_base64_standard_secret_is_refused_without_echoing_it() {
        let err = SignatureVerifier::new(Scheme::Standard { tolerance_secs: 1 }, &[Secret::new("whsec_!!not-b64")])
            .expect_err("bad secret");
        assert!(!err.contains("not-b64"));
    }
}
