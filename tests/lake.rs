//! The lake end to end: the real binary, deliveries over loopback, Parquet read back by DuckDB and pyarrow,
//! on local disk and on a real S3-compatible server (moto), including `kill -9` loops and a store outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Hooklake, Proxy, S3Server, config_text, envelope, lake_summary, s3_sink_lines, signed_request, try_raw_request,
    with_sink,
};
use serde_json::Value;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Sends `ids` from `threads` concurrent senders; returns the ids answered 200.
fn deliver(h: &Hooklake, ids: &[String], threads: usize) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let acked = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let (status, answer) = h.post(envelope(id).as_bytes());
                    assert_eq!(status, 200, "{answer}");
                    acked.lock().unwrap().push(id.clone());
                }
            });
        }
    });
    acked.into_inner().unwrap()
}

fn assert_exactly_once(summary: &Value, want: &BTreeSet<String>) {
    let ids = summary["ids"].as_object().unwrap();
    let twice: Vec<_> = ids.iter().filter(|(_, c)| c.as_u64() != Some(1)).map(|(k, _)| k).collect();
    assert!(twice.is_empty(), "rows for these ids are not exactly one: {twice:?}");
    let lost: Vec<_> = want.iter().filter(|id| !ids.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not in the lake: {} ids, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(summary["other_objects"], serde_json::json!([]), "no temp or partial objects may be visible");
}

#[test]
fn delivered_events_land_in_the_lake_once_with_the_contracted_types() {
    let h = Hooklake::start_with(&with_sink(&config_text("", ""), "url = \"file://lake\"\nroll_rows = 50"));
    let ids: Vec<String> = (0..240).map(|i| format!("lake-{i:04}")).collect();
    deliver(&h, &ids, 8);
    // A retry of an already landed id adds nothing.
    assert_eq!(h.post(envelope("lake-0000").as_bytes()).0, 200);
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let s = lake_summary(&["local", h.dir.join("lake").to_str().unwrap()]);
    assert_exactly_once(&s, &ids.iter().cloned().collect());
    assert_eq!(s["rows"], 240);
    assert_eq!(s["latest"], 240);
    for (col, ty) in [
        ("_event_id", "VARCHAR"),
        ("_received_at", "TIMESTAMP WITH TIME ZONE"),
        ("_seq", "UBIGINT"),
        ("items", "VARCHAR[]"),
        ("last_updated_time", "TIMESTAMP WITH TIME ZONE"),
        ("date", "DATE"),
    ] {
        assert_eq!(s["types"][col], ty, "duckdb type of {col}");
    }
    assert_eq!(s["arrow"]["_received_at"], serde_json::json!(["timestamp[us, tz=UTC]", false]));
    assert_eq!(s["arrow"]["_seq"], serde_json::json!(["uint64", false]));
    assert_eq!(s["arrow"]["payload"], serde_json::json!(["string", true]));
    let files: Vec<&str> = s["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(files.iter().all(|f| f.starts_with("events/date=") && f.contains("/part-")), "{files:?}");
    assert!(files.len() >= 5, "roll_rows = 50 splits 240 rows into several files: {files:?}");
    // The journal is trimmed below the sink's checkpoint.
    let rows = h.dump();
    assert!(rows.len() < 240, "journal should be trimmed once the lake holds the events ({} left)", rows.len());
}

#[test]
fn the_roll_interval_makes_events_visible_without_a_shutdown() {
    let h = Hooklake::start_with(&with_sink(&config_text("", ""), "url = \"file://lake\"\nroll_interval = \"1s\""));
    deliver(&h, &["visible-1".to_owned(), "visible-2".to_owned()], 2);
    let lake = h.dir.join("lake");
    let started = Instant::now();
    loop {
        let s = lake_summary(&["local", lake.to_str().unwrap()]);
        if s["rows"] == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not visible: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(h.metric("hooklake_sink_rows_total{sink=\"raw\"}"), Some(2.0));
}

#[test]
fn kill_9_loops_under_load_leave_every_acked_id_in_the_lake_exactly_once() {
    let cycles = env_or("HOOKLAKE_LAKE_CYCLES", 10);
    let config = with_sink(&config_text("", ""), "url = \"file://lake\"\nroll_rows = 64\nroll_interval = \"1s\"");
    let mut h = Hooklake::start_with(&config);
    let dir = h.dir.clone();
    let mut killed = Vec::new();
    let mut acked = BTreeSet::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let addr = h.addr;
        let senders: Vec<_> = (0..16)
            .map(|_| {
                let (stop, got, counter) = (stop.clone(), got.clone(), counter.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("k{cycle}-{}", counter.fetch_add(1, Ordering::Relaxed));
                        let body = envelope(&id);
                        let req = signed_request(body.as_bytes());
                        match try_raw_request(addr, &req) {
                            Some((200, _)) => got.lock().unwrap().push(id),
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Long enough for files to be written (roll_rows 64), so kills also land during uploads.
        std::thread::sleep(Duration::from_millis(150 + seed % 600));
        killed.push(h.kill9());
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().unwrap();
        }
        acked.extend(got.lock().unwrap().iter().cloned());
        h = Hooklake::spawn_in(&dir);
    }
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let s = lake_summary(&["local", dir.join("lake").to_str().unwrap()]);
    assert!(acked.len() > 100, "the load must have acknowledged something: {}", acked.len());
    assert_exactly_once(&s, &acked);
    eprintln!(
        "{cycles} kill -9 cycles: {} acknowledged, {} rows in {} files",
        acked.len(),
        s["rows"],
        s["files"].as_array().unwrap().len()
    );
    drop(killed);
}

#[test]
fn events_land_once_on_a_real_s3_server() {
    let s3 = S3Server::start();
    s3.bucket("lake");
    let sink = s3_sink_lines(&s3.endpoint(), "lake", "raw", "roll_rows = 40");
    let h = Hooklake::start_with(&with_sink(&config_text("", ""), &sink));
    let ids: Vec<String> = (0..150).map(|i| format!("s3-{i:04}")).collect();
    deliver(&h, &ids, 6);
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let s = lake_summary(&["s3", &s3.endpoint(), "lake", "raw"]);
    assert_exactly_once(&s, &ids.iter().cloned().collect());
    assert_eq!(s["rows"], 150);
}

#[test]
fn an_s3_outage_under_load_loses_and_doubles_nothing() {
    let outage = Duration::from_secs(env_or("HOOKLAKE_S3_OUTAGE_SECS", 30));
    let s3 = S3Server::start();
    s3.bucket("lake");
    let proxy = Proxy::start(s3.port);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let sink = s3_sink_lines(&endpoint, "lake", "raw", "roll_rows = 50\nroll_interval = \"1s\"");
    let h = Hooklake::start_with(&with_sink(&config_text("", ""), &sink));
    let mut acked: BTreeSet<String> =
        deliver(&h, &(0..100).map(|i| format!("before-{i}")).collect::<Vec<_>>(), 4).into_iter().collect();
    proxy.cut();
    // Deliveries keep being acknowledged while the store is down: the journal holds them.
    let during: Vec<String> = (0..300).map(|i| format!("during-{i}")).collect();
    let started = Instant::now();
    acked.extend(deliver(&h, &during, 4));
    let left = outage.saturating_sub(started.elapsed());
    std::thread::sleep(left);
    assert!(
        h.metric("hooklake_sink_write_errors_total{sink=\"raw\"}").unwrap_or(0.0) >= 1.0,
        "the outage must have been felt"
    );
    proxy.restore();
    acked.extend(deliver(&h, &(0..100).map(|i| format!("after-{i}")).collect::<Vec<_>>(), 4));
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let s = lake_summary(&["s3", &s3.endpoint(), "lake", "raw"]);
    assert_exactly_once(&s, &acked);
    assert_eq!(s["rows"].as_u64(), Some(acked.len() as u64));
}

#[test]
fn a_sink_taken_out_of_the_config_no_longer_holds_back_the_journal() {
    let two = with_sink(&config_text("", ""), "url = \"file://lake\"")
        + "\n[sinks.old]\ntype = \"parquet\"\ninputs = [\"dedup\"]\nurl = \"file://lake-old\"\n";
    let h = Hooklake::start_with(&two);
    deliver(&h, &(0..5).map(|i| format!("first-{i}")).collect::<Vec<_>>(), 2);
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    assert_eq!(h.dump().len(), 0, "both sinks wrote everything: trimmed");
    // Take `old` out of the config and restart: only `raw` reads the journal now.
    std::fs::write(&h.config, with_sink(&config_text("", ""), "url = \"file://lake\"")).unwrap();
    let h2 = Hooklake::spawn_in(&h.dir);
    deliver(&h2, &(0..5).map(|i| format!("second-{i}")).collect::<Vec<_>>(), 2);
    let (code, h2) = h2.stop();
    assert_eq!(code, 0, "{}", h2.stderr());
    assert!(h2.stderr().contains("forgot the checkpoint of a stage that is no longer configured"), "{}", h2.stderr());
    assert_eq!(h2.dump().len(), 0, "the removed sink's checkpoint must not keep events in the journal");
    let s = lake_summary(&["local", h.dir.join("lake").to_str().unwrap()]);
    assert_eq!(s["rows"], 10);
    drop(h);
}

#[test]
fn files_over_the_multipart_threshold_reach_s3_whole() {
    use base64::Engine as _;
    let s3 = S3Server::start();
    s3.bucket("lake");
    let sink = s3_sink_lines(&s3.endpoint(), "lake", "big", "roll_rows = 1000\nroll_interval = \"60s\"");
    let h = Hooklake::start_with(&with_sink(&config_text("max_body = \"2MiB\"", ""), &sink));
    // Incompressible payloads: ~1.4 MB each, so one flush of 18 is a Parquet file well over 16 MiB.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut ids = Vec::new();
    for i in 0..18 {
        let noise: Vec<u8> = (0..1_050_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let blob = base64::engine::general_purpose::STANDARD.encode(noise);
        let id = format!("big-{i}");
        let body = format!(r#"{{"event":"CONTENTS.ADDED","id":"{id}","data":{{"blob":"{blob}"}}}}"#);
        let (status, answer) = h.post(body.as_bytes());
        assert_eq!(status, 200, "{answer}");
        ids.push(id);
    }
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let s = lake_summary(&["s3", &s3.endpoint(), "lake", "big"]);
    assert_exactly_once(&s, &ids.into_iter().collect());
    let biggest = s["sizes"].as_object().unwrap().values().filter_map(Value::as_u64).max().unwrap();
    assert!(biggest > 16 << 20, "the file must have taken the multipart path: {biggest} bytes");
}

#[test]
fn a_new_journal_refuses_to_overwrite_a_lake_it_did_not_write() {
    let h = Hooklake::start_with(&with_sink(&config_text("", ""), "url = \"file://lake\""));
    deliver(&h, &["old-1".to_owned()], 1);
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    // The data_dir is lost; sequence numbers would start again at 0 and overwrite part-0…
    std::fs::remove_dir_all(h.dir.join("data")).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_hooklake")).args(["run", "-c"]).arg(&h.config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds `events` files that this journal did not write"), "{err}");
    let s = lake_summary(&["local", h.dir.join("lake").to_str().unwrap()]);
    assert_eq!(s["rows"], 1, "the lake is untouched");
}
