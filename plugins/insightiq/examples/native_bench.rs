//! The insightiq mapping compiled natively, timed on a batch file: the reference for the plugin benchmark
//! (`benches/plugin.py`). Runs exactly what the wasm build runs inside `hooklake_transform` (parse the batch, map,
//! write the results document), minus the ABI.
//!
//!     cargo run --release --example native_bench -- BATCH.json ROUNDS

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = std::fs::read(&args[1]).expect("batch file");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let events = serde_json::from_slice::<serde_json::Value>(&batch).expect("json").as_array().map_or(0, Vec::len);
    let mut times = Vec::with_capacity(rounds);
    let mut out_len = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let out = hooklake_plugin::transform_document::<insightiq::InsightIq>(&batch);
        times.push(start.elapsed().as_secs_f64());
        out_len = out.len();
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"side\": \"native\", \"events\": {events}, \"median_batch_s\": {median}, \"us_per_event\": {}, \"output_bytes\": {out_len}}}",
        median * 1e6 / events as f64
    );
}
