//! Signature checks per second through hooklake's `verify` stage (InsightIQ scheme: HMAC-SHA256 of the raw body,
//! hex, constant-time compare), on one core, for realistic bodies. Prints one JSON line. Driven by
//! `benches/signatures.py`, which measures Python's `hmac` (OpenSSL) on the same bodies as the reference.
//!
//!     cargo run --release --example hmac_bench -- BODIES.jsonl [--seconds 3]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure should stop it loudly

use std::time::{Duration, Instant};

use hooklake::transforms::verify::Verifier;
use hyper::HeaderMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bodies: Vec<Vec<u8>> =
        std::fs::read_to_string(&args[1]).unwrap().lines().map(|l| l.as_bytes().to_vec()).collect();
    let seconds: u64 = args.iter().position(|a| a == "--seconds").map_or(3, |i| args[i + 1].parse().unwrap());
    let config = hooklake::config::Config::parse(
        std::path::Path::new("bench.toml"),
        "[sources.s]\ntype = \"webhook\"\n[transforms.v]\ntype = \"verify\"\ninputs = [\"s\"]\nsecrets = [\"bench-secret\"]\n",
        &hooklake::config::Env::empty(),
    )
    .unwrap();
    let hooklake::config::TransformConfig::Verify(vc) = &config.transforms[0].kind else { panic!("verify") };
    let verifier = Verifier::build(vc).unwrap();
    let signed: Vec<(HeaderMap, Vec<u8>)> = bodies
        .into_iter()
        .map(|b| {
            let mut h = HeaderMap::new();
            let sig = hooklake::simulator::sender::sign("bench-secret", &b);
            h.insert("webhook-signatures", sig.parse().unwrap());
            (h, b)
        })
        .collect();
    let bytes: usize = signed.iter().map(|(_, b)| b.len()).sum();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        for (h, b) in &signed {
            verifier.check_body(h, b, 0).unwrap();
        }
        n += signed.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"checks_per_s\": {:.0}, \"mb_per_s\": {:.1}, \"bodies\": {}, \"mean_body_bytes\": {}}}",
        n as f64 / secs,
        (n as f64 / signed.len() as f64) * bytes as f64 / secs / 1e6,
        signed.len(),
        bytes / signed.len()
    );
}
