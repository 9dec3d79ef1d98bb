//! Fuzzing harnesses, shared by the `cargo fuzz` targets in `fuzz/` (long runs by hand) and the time-bounded
//! run in CI (`tests/fuzz.rs`). Each takes arbitrary bytes, must never panic, and checks what it can about the
//! outcome. Not part of the public API.

use std::path::Path;

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::admission::{Admission, Rejection};
use crate::config::{Config, Env, TransformConfig};
use crate::transforms::dedup::Dedup;
use crate::transforms::verify::Verifier;

/// The key the request harness signs with (its config's verify secret).
pub const KEY: &str = "fuzz-secret";

const CONFIG: &str = r#"
[sources.hook]
type = "webhook"

[transforms.verify]
type = "verify"
inputs = ["hook"]
secrets = ["fuzz-secret", "fuzz-secret-2"]

[transforms.dedup]
type = "dedup"
inputs = ["verify"]
field = "data.account_id"
"#;

/// The admission chain of a small config: InsightIQ signatures with two keys, dedup on a nested field.
pub fn admission() -> Admission {
    let config = Config::parse(Path::new("fuzz.toml"), CONFIG, &Env::empty()).unwrap_or_else(|e| panic!("{e}"));
    let mut verifiers = Vec::new();
    let mut dedup = None;
    for t in &config.transforms {
        match &t.kind {
            TransformConfig::Verify(v) => verifiers.push(Verifier::build(v).unwrap_or_else(|e| panic!("{e}"))),
            TransformConfig::Dedup(d) => dedup = Some(Dedup::build(d)),
            _ => {}
        }
    }
    Admission::new("hook", verifiers, dedup)
}

/// The request path after the HTTP framing: headers and body → signature → envelope → dedup key → entry.
///
/// Input: the first byte picks how the request is signed (0: correctly with [`KEY`], so the body reaches the
/// envelope parser; 1: not at all; otherwise: the signature header is taken from the input), then header lines
/// `name: value` up to a NUL byte, then the body.
pub fn request(admission: &Admission, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (head, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    let body = Bytes::copy_from_slice(body);
    let signature = crate::insightiq::SIGNATURE_HEADER;
    match mode {
        0 => {
            let sig = crate::simulator::sender::sign(KEY, &body);
            headers.insert(signature, HeaderValue::from_str(&sig).unwrap_or_else(|e| panic!("{e}")));
        }
        1 => {
            headers.remove(signature);
        }
        _ => {}
    }
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let ip = admission.client_ip(peer, &headers);
    match admission.admit(ip, &headers, body.clone(), 1_700_000_000_000_000) {
        Ok(admitted) => {
            let e = &admitted.entry;
            assert!(mode != 1, "admitted without a signature");
            assert_eq!(e.body, body, "the stored body is the raw body");
            assert!(!e.id.is_empty() && !e.event.is_empty(), "an envelope has an id and an event");
            assert!(e.dedup_key.as_deref().is_some_and(|k| k.starts_with("hook:")));
            assert!(e.headers.iter().all(|(k, _)| crate::admission::KEPT_HEADERS.contains(&k.as_str())));
        }
        Err(Rejection::Verify(_)) => assert!(mode != 0, "a correct signature was refused"),
        Err(r) => {
            // Refusals explain themselves without echoing the body.
            let text = r.to_string();
            assert!(!text.is_empty() && text.len() < 400, "{text}");
        }
    }
}

/// The config parser: arbitrary text must give a config or errors that each point into the text.
///
/// No text may declare a `wasm` stage: validating one loads its plugins and creates `data_dir/plugin-cache`, and
/// a fuzzer must not create folders wherever a mutated `data_dir` points. So `wasm` becomes `wasn` (an unknown
/// stage type, still parsed and reported) and `\u`/`\U` escapes, which could spell it, become invalid escapes.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data).replace("wasm", "wasn").replace("\\u", "\\x").replace("\\U", "\\X");
    let lines = text.split('\n').count();
    let vars = std::collections::HashMap::from([("SET".to_owned(), "value".to_owned())]);
    if let Err(errors) = Config::parse(Path::new("config.toml"), &text, &Env::Map(&vars)) {
        assert!(!errors.0.is_empty(), "an error without a message");
        for e in &errors.0 {
            assert_eq!(e.file, "config.toml");
            assert!((1..=lines).contains(&e.line) && e.col >= 1, "{e} points outside the {lines} lines");
            assert!(!e.message.is_empty());
        }
    }
}
