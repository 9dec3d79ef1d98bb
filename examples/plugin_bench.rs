//! The insightiq plugin through hooklake's wasm host, timed: per-batch transform (median of ROUNDS on one warm
//! instance), instantiation, a cold load (compile) and a cached load. With `--write-batch FILE` it writes the
//! batch it uses (enriched events built from the simulator's records), so the native side maps the same bytes.
//! Driven by `benches/plugin.py`.
//!
//!     cargo run --release --example plugin_bench -- PLUGIN.wasm [--write-batch FILE] [--events N] [--rounds N]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure should stop it loudly

use std::path::PathBuf;
use std::time::Instant;

use hooklake::simulator::records::{self, Kind};
use hooklake::transforms::wasm::host::{Limits, Plugin, engine};
use serde_json::{Value, json};

fn batch(events: usize) -> Value {
    let kinds = [
        ("CONTENTS.ADDED", Some(Kind::Content), 10),
        ("CONTENTS.UPDATED", Some(Kind::Content), 3),
        ("ACCOUNTS.CONNECTED", Some(Kind::Account), 1),
        ("PROFILES.UPDATED", Some(Kind::Profile), 1),
        ("CONTENTS_COMMENTS.ADDED", Some(Kind::Comment), 20),
        ("TRANSACTIONS.ADDED", Some(Kind::SocialTransaction), 5),
        ("PROFILES_AUDIENCE.UPDATED", Some(Kind::Audience), 1),
        ("CONTENTS_FETCH.SUCCESS", None, 0),
    ];
    let docs: Vec<Value> = (0..events)
        .map(|n| {
            let (event, kind, count) = kinds[n % kinds.len()];
            let resources: Vec<Value> = match kind {
                Some(Kind::Comment) => (0..count).map(|i| records::comment(&format!("c{n}"), i)).collect(),
                Some(k) => (0..count).map(|i| records::record(k, &format!("{n:08x}{i:024x}"))).collect(),
                None => Vec::new(),
            };
            json!({"seq": n, "id": format!("ev-{n}"), "event": event, "name": "", "source": "insightiq",
                   "received_at": "2026-12-04T10:00:00.000000Z",
                   "data": {"account_id": "acc", "user_id": "usr", "profile_id": "prof", "items": ["x"]},
                   "resources": resources, "missing": []})
        })
        .collect();
    Value::Array(docs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let plugin = PathBuf::from(args.next().expect("PLUGIN.wasm"));
    let (mut write, mut events, mut rounds) = (None, 64usize, 50usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--write-batch" => write = args.next().map(PathBuf::from),
            "--events" => events = args.next().and_then(|s| s.parse().ok()).expect("--events N"),
            "--rounds" => rounds = args.next().and_then(|s| s.parse().ok()).expect("--rounds N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let text = batch(events).to_string();
    if let Some(path) = write {
        std::fs::write(path, &text).expect("write batch");
    }
    // Cold load: no cache, so this compiles.
    let start = Instant::now();
    let cold = Plugin::load(&engine(None).expect("engine"), &plugin, Limits::default()).expect("load");
    let cold_load = start.elapsed().as_secs_f64();
    // Cached load: a fresh engine with a cache folder, loaded twice; the second is a cache hit.
    let cache = std::env::temp_dir().join(format!("hooklake-bench-cache-{}", std::process::id()));
    let cached_engine = engine(Some(&cache)).expect("engine");
    Plugin::load(&cached_engine, &plugin, Limits::default()).expect("load");
    std::thread::sleep(std::time::Duration::from_millis(500)); // the cache writes in the background
    let start = Instant::now();
    Plugin::load(&engine(Some(&cache)).expect("engine"), &plugin, Limits::default()).expect("load");
    let cached_load = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&cache);
    let instantiate = median(
        (0..20)
            .map(|_| {
                let s = Instant::now();
                drop(cold.instance().expect("instance"));
                s.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let mut instance = cold.instance().expect("instance");
    let mut out_len = 0;
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            out_len = instance.transform(&text).expect("transform").len();
            s.elapsed().as_secs_f64()
        })
        .collect();
    let per_batch = median(times);
    println!(
        "{}",
        json!({"side": "wasm", "events": events, "median_batch_s": per_batch, "us_per_event": per_batch * 1e6 / events as f64,
               "output_bytes": out_len, "input_bytes": text.len(), "instantiate_s": instantiate,
               "cold_load_s": cold_load, "cached_load_s": cached_load})
    );
}
