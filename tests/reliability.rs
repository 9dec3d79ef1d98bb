//! The reliability suite: the whole pipeline under `kill -9` loops, a disk that fills up, and ten thousand idle
//! connections. CI runs a reduced size; the full size is an environment variable away:
//! `HOOKLAKE_CRASH_CYCLES=20 cargo test --test reliability`.
//!
//! Needs `plugins/insightiq.wasm` (`plugins/build.sh`), Python with DuckDB and pyarrow, and root for the tmpfs
//! of the disk-full test (`.ci/run` has all three).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Hooklake, SECRET, Simulator, config_text, envelope, expected_rows, lake_tables, try_raw_request};
use serde_json::Value;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// webhook (fixed port) → verify → dedup → enrich → insightiq plugin → lake, plus the raw `events` table.
fn pipeline(api: SocketAddr, port: u16) -> String {
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/insightiq.wasm");
    assert!(plugin.exists(), "{} is missing: run plugins/build.sh (CI does)", plugin.display());
    format!(
        r#"{}
[api.insightiq]
base_url = "http://{api}"
client_id = "demo-client"
client_secret = "example-secret"
rate_limit = 500

[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
max_wait = "100ms"

[transforms.map]
type = "wasm"
inputs = ["enrich"]
plugins = ["{}"]

[sinks.lake]
type = "parquet"
inputs = ["map"]
url = "file://lake"
roll_rows = 64
roll_interval = "1s"

[sinks.raw]
type = "parquet"
inputs = ["dedup"]
url = "file://lake"
roll_rows = 64
roll_interval = "1s"
"#,
        config_text("", "").replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\"")),
        plugin.display()
    )
}

fn wait_for(what: &str, limit: Duration, h: &Hooklake, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} did not happen in {limit:?}:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_loops_through_the_whole_pipeline_land_every_acknowledged_event_once_in_every_table() {
    let cycles = env_or("HOOKLAKE_CRASH_CYCLES", 5);
    let sim = Simulator::start(&["--rate-limit", "500"]);
    let port = common::free_port();
    let mut h = Hooklake::start_with(&pipeline(sim.addr, port));
    let dir = h.dir.clone();
    // InsightIQ's own sender, retrying (1 min / 5 min / 6 h scaled down to 0.3 s / 1.5 s / 108 s) across the
    // kills, with duplicates and reordering; its report says what was acknowledged.
    let report = dir.join("report.json");
    let events = cycles * 120;
    let mut sender = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["simulate", "--send-to", &format!("http://127.0.0.1:{port}/webhooks/insightiq")])
        .args(["--client-secret", SECRET, "--rate", "100", "--retry-scale", "0.005", "--max-items", "5"])
        .args(["--events", &events.to_string(), "--duplicates-permille", "50", "--reorder", "--report"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(std::process::id());
    // The killed processes' handles own the temp dir: keep them until the end.
    let mut killed = Vec::new();
    for _ in 0..cycles {
        // Random points: while requests are fsynced, while enrich calls the API, while files are uploaded.
        std::thread::sleep(Duration::from_millis(300 + xorshift(&mut seed) % 1200));
        killed.push(h.kill9());
        h = Hooklake::spawn_in(&dir);
    }
    let start = Instant::now();
    while sender.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(300), "the sender did not finish:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let acked: BTreeSet<String> =
        report["acknowledged"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert!(acked.len() as u64 > events * 9 / 10, "most events acknowledged: {} of {events}", acked.len());
    wait_for("the pipeline catching up", Duration::from_secs(120), &h, || {
        ["lake", "raw"].iter().all(|s| h.metric(&format!("hooklake_sink_checkpoint_lag{{sink=\"{s}\"}}")) == Some(0.0))
            && h.metric("hooklake_enrich_backlog{stage=\"enrich\"}") == Some(0.0)
    });
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());

    // Every acknowledged event is in `events` exactly once (an event stored just before a kill, unanswered, is
    // there once too: the sender's retry was a duplicate).
    let lake = lake_tables(&dir.join("lake"));
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for e in lake["events"].as_array().unwrap() {
        *seen.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "in `events` more than once: {twice:?}");
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(lost.is_empty(), "acknowledged, not in `events`: {lost:?}");
    // Every stored event has exactly its rows in its mapped table.
    let mut checked = 0;
    for e in lake["events"].as_array().unwrap() {
        let items: Vec<String> =
            e["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
        let (Some(table), rows) = expected_rows(e["event"].as_str().unwrap(), &items) else { continue };
        let id = e["id"].as_str().unwrap();
        let got = lake["tables"][table]["rows_by_event"][id].as_u64().unwrap_or(0) as usize;
        assert_eq!(got, rows, "event {id} ({}) in `{table}`", e["event"]);
        checked += 1;
    }
    assert!(checked > 0);
    // No temporary or partial files, nothing dead-lettered, the journal trimmed.
    let mut strays = Vec::new();
    walk(&dir.join("lake"), &mut |p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("part-") && name.ends_with(".parquet") && !name.contains('#')) && name != ".hooklake-demo"
        {
            strays.push(p.display().to_string());
        }
    });
    assert!(strays.is_empty(), "stray files in the lake: {strays:?}");
    assert!(
        !dir.join("data/dead_letters/transforms.enrich").exists()
            && !dir.join("data/dead_letters/transforms.map").exists()
    );
    let out =
        Command::new(env!("CARGO_BIN_EXE_hooklake")).args(["journal", "stats", "-c"]).arg(&h.config).output().unwrap();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((stats["entries"].as_u64(), stats["output_bytes"].as_u64()), (Some(0), Some(0)), "trimmed: {stats}");
    eprintln!("{cycles} kill -9 cycles: {} acknowledged, {checked} events checked row by row", acked.len());
    drop(killed);
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() { walk(&p, f) } else { f(&p) }
    }
}

/// A tmpfs mounted for the life of the value.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gets_503s_acknowledges_nothing_unstored_and_recovers_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = Tmpfs::mount(&tmp.path().join("data"), "3m");
    // A raw sink too (its lake on the ordinary disk): it must ride out the journal's failures, not stop.
    let config =
        common::with_sink(&config_text("max_body = \"1MiB\"", ""), "url = \"file://lake\"\nroll_interval = \"1s\"");
    std::fs::write(tmp.path().join("config.toml"), &config).unwrap();
    let h = Hooklake::spawn_in(tmp.path());
    // Fat deliveries (64 KiB of padding each) until the disk refuses.
    let pad = "x".repeat(64 * 1024);
    let body = |id: &str| envelope(id).replacen('{', &format!("{{\"pad\":\"{pad}\","), 1);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        let id = format!("fill-{i}");
        let (status, answer) = h.post(body(&id).as_bytes());
        match status {
            200 => acked.push(id),
            503 => {
                refused += 1;
                if refused >= 5 {
                    break;
                }
            }
            other => panic!("a full disk must answer 503, not {other}: {answer}"),
        }
    }
    assert!(refused >= 5, "the 3 MiB disk never filled: {} acknowledged", acked.len());
    assert!(!acked.is_empty());
    let (_, health) = h.get("/health");
    assert!(health.contains("ok"), "the process stays up: {health}");

    // Space comes back: deliveries are stored again, without a restart.
    data.resize("64m");
    let start = Instant::now();
    loop {
        let id = format!("after-{}", start.elapsed().as_millis());
        let (status, answer) = h.post(body(&id).as_bytes());
        if status == 200 {
            acked.push(id);
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(start.elapsed() < Duration::from_secs(30), "no recovery after space returned:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The sink is still running and lands everything acknowledged.
    let (status, ready) = h.get("/ready");
    assert_eq!(status, 200, "no sink stopped: {ready}");
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let lake = common::lake_summary(&["local", tmp.path().join("lake").to_str().unwrap()]);
    let ids = lake["ids"].as_object().unwrap();
    for id in &acked {
        assert_eq!(ids.get(id).and_then(Value::as_u64), Some(1), "{id} acknowledged: once in the lake");
    }
    assert_eq!(ids.len(), acked.len(), "nothing unacknowledged or doubled in the lake");
    drop(data);
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_others_being_served() {
    let h = Hooklake::start();
    // A separate process holds the idle connections (it raises its own open-file limit to the hard one).
    let script = format!(
        r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = [socket.create_connection(("127.0.0.1", {port})) for _ in range(10000)]
print(len(socks), flush=True)
sys.stdin.read()
"#,
        port = h.addr.port()
    );
    let mut idle =
        Command::new("python3").args(["-c", &script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(idle.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "10000", "could not open 10,000 connections");
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", h.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap()))
        .unwrap();
    // Others are still served, within InsightIQ's 5 s delivery timeout.
    for i in 0..20 {
        let body = envelope(&format!("busy-{i}"));
        let started = Instant::now();
        let answer = try_raw_request(h.addr, &common::signed_request(body.as_bytes()));
        assert_eq!(answer.as_ref().map(|a| a.0), Some(200), "{answer:?}\n{}", h.stderr());
        assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    }
    eprintln!("10,000 idle connections: hooklake RSS {} MiB", rss_kib / 1024);
    idle.stdin.take().unwrap().write_all(b"").unwrap();
    let _ = idle.kill();
    let _ = idle.wait();
    let stored = h.stop_and_dump();
    assert_eq!(stored.len(), 20);
}
