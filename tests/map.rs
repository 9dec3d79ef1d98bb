//! End to end through the whole pipeline: webhooks from the simulator's sender → admission → journal → enrich
//! (against the simulator's API) → the shipped `insightiq` plugin → Parquet tables, read back with DuckDB and
//! pyarrow. Needs `plugins/insightiq.wasm` (`plugins/build.sh`, which `.ci/run` runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hooklake, SECRET, Simulator, config_text, expected_rows, lake_tables};
use hooklake::simulator::records;
use hooklake::transforms::wasm::host::{Limits, Plugin, engine};
use hooklake::transforms::wasm::schema::table_schema;
use serde_json::Value;

fn plugin_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/insightiq.wasm");
    assert!(path.exists(), "{} is missing: run plugins/build.sh (CI does)", path.display());
    path
}

fn config(api: SocketAddr) -> String {
    format!(
        r#"{}
[api.insightiq]
base_url = "http://{api}"
client_id = "demo-client"
client_secret = "example-secret"
rate_limit = 100

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
roll_interval = "1s"

[sinks.raw]
type = "parquet"
inputs = ["dedup"]
url = "file://lake"
roll_interval = "1s"
"#,
        config_text("", ""),
        plugin_path().display()
    )
}

/// Waits until enrich has handed on everything the journal holds.
fn wait_enriched(h: &Hooklake, limit: Duration) {
    let start = Instant::now();
    while h.metric("hooklake_enrich_backlog{stage=\"enrich\"}") != Some(0.0) {
        assert!(start.elapsed() < limit, "enrich did not catch up:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_become_typed_tables_read_back_by_duckdb() {
    let api = Simulator::start(&["--rate-limit", "100"]);
    let h = Hooklake::start_with(&config(api.addr));
    let report = h.dir.join("report.json");
    let url = format!("http://{}/webhooks/insightiq", h.addr);
    let status = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["simulate", "--send-to", &url, "--client-secret", SECRET, "--events", "120", "--seed", "5"])
        .args(["--max-items", "5", "--retry-scale", "0.001", "--report"])
        .arg(&report)
        .status()
        .unwrap();
    assert!(status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let acked: BTreeSet<String> =
        report["acknowledged"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    wait_enriched(&h, Duration::from_secs(120));
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());

    let lake = lake_tables(&h.dir.join("lake"));
    let events = lake["events"].as_array().unwrap();
    assert_eq!(events.len(), acked.len(), "the raw table holds every acknowledged event");

    // Schemas: exactly the declared columns and types, after the host's four.
    let plugin = Plugin::load(&engine(None).unwrap(), &plugin_path(), Limits::default()).unwrap();
    let tables = lake["tables"].as_object().unwrap();
    assert!(tables.len() >= 5, "several tables landed: {:?}", tables.keys().collect::<Vec<_>>());
    for (name, t) in tables {
        let declared = plugin.describe.tables.get(name).unwrap_or_else(|| panic!("undeclared table {name}"));
        let schema = table_schema(declared);
        let got: Vec<String> =
            t["schema"].as_array().unwrap().iter().map(|c| c[0].as_str().unwrap().to_owned()).collect();
        let want: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(got, want, "{name}: columns");
        let ts = t["schema"].as_array().unwrap().iter().find(|c| c[0] == "_received_at").unwrap();
        assert_eq!(ts[1], "timestamp[us, tz=UTC]", "{name}: timestamps are µs UTC");
    }

    // Rows: one per resource per event, for every acknowledged event a plugin claims.
    let mut expected: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for e in events {
        let items: Vec<String> =
            e["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
        if let (Some(table), n) = expected_rows(e["event"].as_str().unwrap(), &items)
            && n > 0
        {
            expected.entry(table).or_default().insert(e["id"].as_str().unwrap().to_owned(), n);
        }
    }
    for (table, by_event) in &expected {
        let got: BTreeMap<String, usize> = tables[*table]["rows_by_event"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap() as usize))
            .collect();
        assert_eq!(&got, by_event, "{table}: rows per event");
    }
    let contents = &tables["contents"]["sample"];
    assert!(contents["id"].is_string() && contents["_event_type"].as_str().unwrap().starts_with("CONTENTS."));
    assert!(!h.dir.join("data/dead_letters").exists(), "nothing was dead-lettered");
}

#[test]
fn the_component_and_the_core_module_map_alike_through_the_host() {
    let component = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/insightiq.component.wasm");
    assert!(component.exists(), "{} is missing: run plugins/build.sh --component (CI does)", component.display());
    let engine = engine(None).unwrap();
    let core = Plugin::load(&engine, &plugin_path(), Limits::default()).unwrap();
    let comp = Plugin::load(&engine, &component, Limits::default()).unwrap();
    assert_eq!(core.describe, comp.describe);
    let content = records::record(records::Kind::Content, "c1");
    let account = records::record(records::Kind::Account, "a1");
    let batch = serde_json::json!([
        {"seq": 1, "id": "e1", "event": "CONTENTS.ADDED", "received_at": "2026-12-04T10:00:00.000000Z",
         "data": {"account_id": "a1", "items": ["c1"]}, "resources": [content], "missing": []},
        {"seq": 2, "id": "e2", "event": "ACCOUNTS.CONNECTED", "received_at": "2026-12-04T10:00:01.000000Z",
         "data": {"account_id": "a1"}, "resources": [account], "missing": []},
        {"seq": 3, "id": "e3", "event": "CONTENTS_FETCH.SUCCESS", "received_at": "2026-12-04T10:00:02.000000Z",
         "data": {"job_id": "j"}, "resources": [], "missing": [], "skipped": "job event"}
    ])
    .to_string();
    let a = core.instance().unwrap().transform(&batch).unwrap();
    let b = comp.instance().unwrap().transform(&batch).unwrap();
    assert_eq!(a, b);
    let results: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(results["results"][0]["rows"]["contents"][0]["id"], "c1");
    assert_eq!(results["results"][1]["rows"]["accounts"][0]["id"], "a1");
    assert_eq!(results["results"][2]["rows"], serde_json::json!({}));
}

/// A plugin (one event per call) that maps every event to one row of table `t`, except events whose document
/// holds a `!`, which it reports as errors.
fn poisonable_plugin(dir: &Path) -> PathBuf {
    let describe = r#"{"name":"poisonable","version":"1","routes":[{"events":["CONTENTS.*"],"table":"t"}],"tables":{"t":[{"name":"id","type":"string"}]}}"#;
    let ok = r#"{"results":[{"rows":{"t":[{"id":"x"}]}}]}"#;
    let bad = r#"{"results":[{"error":"poisoned event"}]}"#;
    let esc = |s: &str| s.replace('"', "\\\"");
    let wat = format!(
        r#"(module
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 1024) "{d}")
  (data (i32.const 4096) "{o}")
  (data (i32.const 4300) "{b}")
  (func (export "hooklake_abi_version") (result i32) (i32.const 1))
  (func (export "hooklake_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (drop (memory.grow (i32.add (i32.const 1) (i32.div_u (local.get $len) (i32.const 65536)))))
    (local.get $p))
  (func (export "hooklake_free") (param i32 i32))
  (func (export "hooklake_describe") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {dl})))
  (func (export "hooklake_transform") (param $ptr i32) (param $len i32) (result i64) (local $i i32)
    (block $done (loop $scan
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eq (i32.load8_u (i32.add (local.get $ptr) (local.get $i))) (i32.const 33))
        (then (return (i64.or (i64.shl (i64.const 4300) (i64.const 32)) (i64.const {bl})))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    (i64.or (i64.shl (i64.const 4096) (i64.const 32)) (i64.const {ol}))))
"#,
        d = esc(describe),
        o = esc(ok),
        b = esc(bad),
        dl = describe.len(),
        ol = ok.len(),
        bl = bad.len(),
    );
    let path = dir.join("poisonable.wat");
    std::fs::write(&path, wat).unwrap();
    path
}

#[test]
fn an_event_the_plugin_cannot_map_is_dead_lettered_and_the_others_land() {
    let api = Simulator::start(&["--rate-limit", "100"]);
    let plugins = tempfile::tempdir().unwrap();
    let plugin = poisonable_plugin(plugins.path());
    let config = config(api.addr)
        .replace(&plugin_path().display().to_string(), &plugin.display().to_string())
        .replace("plugins = [", "batch = 1\nplugins = [");
    let h = Hooklake::start_with(&config);
    for id in ["ok-1", "poison!-2", "ok-3"] {
        assert_eq!(h.post(common::envelope(id).as_bytes()).0, 200);
    }
    wait_enriched(&h, Duration::from_secs(60));
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let lake = lake_tables(&h.dir.join("lake"));
    let rows: BTreeMap<String, u64> = lake["tables"]["t"]["rows_by_event"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(rows, BTreeMap::from([("ok-1".to_owned(), 1), ("ok-3".to_owned(), 1)]));
    let dir = h.dir.join("data/dead_letters/transforms.map");
    let letters: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event_id"], "poison!-2");
    assert_eq!(letters[0]["reason"], "poisoned event");
    let document: Value = serde_json::from_str(letters[0]["document"].as_str().unwrap()).unwrap();
    assert_eq!(document["resources"][0]["id"], "0ccc5adf0d7d4eaabca56b58420f7da7", "the enriched document is kept");
}

/// A batch of three enriched CONTENTS events: two records, a skipped one, and one whose resource is not an object.
fn content_batch() -> String {
    let a = records::record(records::Kind::Content, "c1");
    let b = records::record(records::Kind::Content, "c2");
    serde_json::json!([
        {"seq": 1, "id": "e1", "event": "CONTENTS.ADDED", "received_at": "2026-12-04T10:00:00.000000Z",
         "data": {"account_id": "a1", "items": ["c1", "c2"]}, "resources": [a, b], "missing": []},
        {"seq": 2, "id": "e2", "event": "CONTENTS.UPDATED", "received_at": "2026-12-04T10:00:01.000000Z",
         "data": {"account_id": "a1"}, "resources": [], "missing": [], "skipped": "data.items is missing"},
        {"seq": 3, "id": "e3", "event": "CONTENTS.ADDED", "received_at": "2026-12-04T10:00:02.000000Z",
         "data": {"account_id": "a1", "items": ["c3"]}, "resources": [42], "missing": []}
    ])
    .to_string()
}

/// Loads an example plugin through hooklake's host and maps [`content_batch`]: two rows of `table`, nothing for
/// the skipped event, a dead-letter reason for the bad one.
fn example_maps(file: &str, build: &str, table: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    assert!(path.exists(), "{} is missing: run {build} (CI does)", path.display());
    // Compiled code is cached between runs (a Python component takes tens of seconds to compile in a debug build).
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let plugin = Plugin::load(&engine(Some(&cache)).unwrap(), &path, Limits::default()).unwrap();
    assert!(plugin.describe.tables.contains_key(table), "{:?}", plugin.describe.tables.keys());
    let batch: Vec<Value> = serde_json::from_str(&content_batch()).unwrap();
    let docs: Vec<Vec<u8>> = batch.iter().map(|d| d.to_string().into_bytes()).collect();
    let refs: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
    let mapper = hooklake::transforms::wasm::Mapper::new("map", vec![plugin], 64);
    let out = mapper.map(&refs);
    use hooklake::transforms::wasm::Outcome;
    let Outcome::Rows(rows) = &out[0] else { panic!("{:?}", out[0]) };
    let ids: Vec<&Value> = rows[table].iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, vec!["c1", "c2"], "one row per resource, checked against the declared schema");
    assert_eq!(out[1], Outcome::Rows(BTreeMap::new()));
    assert!(matches!(&out[2], Outcome::Failed(reason) if reason.contains("not an object")), "{:?}", out[2]);
}

#[test]
fn the_assemblyscript_example_loads_and_produces_rows() {
    example_maps(
        "plugins/examples/assemblyscript/content_engagement.wasm",
        "plugins/examples/assemblyscript/build.sh",
        "content_engagement",
    );
}

#[test]
fn the_python_example_loads_and_produces_rows() {
    example_maps(
        "plugins/examples/python/content_daily_metrics.wasm",
        "plugins/sdk/python/build.sh",
        "content_daily_metrics",
    );
}

#[test]
fn sighup_reloads_a_changed_plugin_without_losing_the_journal_position() {
    let api = Simulator::start(&["--rate-limit", "100"]);
    let plugins = tempfile::tempdir().unwrap();
    let plugin = poisonable_plugin(plugins.path());
    let config = config(api.addr)
        .replace(&plugin_path().display().to_string(), &plugin.display().to_string())
        .replace("plugins = [", "batch = 1\nplugins = [");
    let h = Hooklake::start_with(&config);
    let wait_caught_up = |h: &Hooklake, n: f64| {
        let start = Instant::now();
        while h.metric("hooklake_enrich_events_total{stage=\"enrich\"}") != Some(n) {
            assert!(start.elapsed() < Duration::from_secs(60), "enrich did not catch up:\n{}", h.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(h.post(common::envelope("first!").as_bytes()).0, 200);
    wait_caught_up(&h, 1.0);
    // The sink maps when it writes (within roll_interval): wait until version 1 has refused the event.
    let letters = h.dir.join("data/dead_letters/transforms.map");
    let start = Instant::now();
    while std::fs::read_dir(&letters).map_or(0, Iterator::count) == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no dead letter:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Version 2 maps what version 1 refused: the `!` check now looks for a `~` instead.
    let v2 = std::fs::read_to_string(&plugin).unwrap().replace("(i32.const 33)", "(i32.const 126)");
    std::fs::write(&plugin, v2).unwrap();
    let status = Command::new("kill").args(["-HUP", &h.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    while !h.stderr().contains("reloaded plugins") {
        assert!(start.elapsed() < Duration::from_secs(30), "no reload:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(h.post(common::envelope("second!").as_bytes()).0, 200);
    wait_caught_up(&h, 2.0);
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    let lake = lake_tables(&h.dir.join("lake"));
    let rows: Vec<&String> = lake["tables"]["t"]["rows_by_event"].as_object().unwrap().keys().collect();
    assert_eq!(rows, vec!["second!"], "the new version mapped the new event");
    let letters = std::fs::read_dir(h.dir.join("data/dead_letters/transforms.map")).unwrap().count();
    assert_eq!(letters, 1, "the event version 1 refused stays a dead letter, to replay");
}

/// Runs `hooklake ARGS -c <h's config>` and returns (exit code, stdout, stderr).
fn cli(h: &Hooklake, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hooklake")).args(args).arg("-c").arg(&h.config).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn wait_for(what: &str, h: &Hooklake, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} did not happen in {limit:?}:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dead_letters_replayed_after_a_plugin_fix_land_exactly_once_while_running_or_stopped() {
    let api = Simulator::start(&["--rate-limit", "100"]);
    let plugins = tempfile::tempdir().unwrap();
    let plugin = poisonable_plugin(plugins.path());
    let config = config(api.addr)
        .replace(&plugin_path().display().to_string(), &plugin.display().to_string())
        .replace("plugins = [", "batch = 1\nplugins = [");
    let h = Hooklake::start_with(&config);
    for id in ["ok-1", "poison!-2", "ok-3", "poison!-4"] {
        assert_eq!(h.post(common::envelope(id).as_bytes()).0, 200);
    }
    let letters = h.dir.join("data/dead_letters/transforms.map");
    wait_for("two dead letters", &h, Duration::from_secs(60), || {
        std::fs::read_dir(&letters).map_or(0, Iterator::count) == 2
    });
    // The overview of the running instance names every stage and the letters.
    let url = format!("http://{}/metrics", h.addr);
    let (code, screen, err) = cli(&h, &["status", "--url", &url]);
    assert_eq!(code, 0, "{err}");
    for part in ["SOURCES", "insightiq", "JOURNAL", "ENRICH", "PLUGINS", "map ", "errors 2", "SINKS", "DEAD LETTERS  2"]
    {
        assert!(screen.contains(part), "no `{part}` in:\n{screen}");
    }
    let (code, listed, err) = cli(&h, &["dead-letters", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(listed.contains("poison!-2") && listed.contains("poison!-4"), "{listed}");
    assert!(listed.contains("2 dead letters, by stage and reason"), "{listed}");
    assert!(listed.contains("poisoned event"), "{listed}");
    let (code, shown, _) = cli(&h, &["dead-letters", "show", "poison!-4"]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let seq4 = shown["seq"].as_u64().unwrap();
    let (code, _, err) = cli(&h, &["dead-letters", "replay"]);
    assert_eq!(code, 2, "replay without a selector is refused: {err}");
    assert!(err.contains("--all"), "{err}");

    // The fix: version 2 maps what version 1 refused. Replay one letter while the pipeline runs.
    let v2 = std::fs::read_to_string(&plugin).unwrap().replace("(i32.const 33)", "(i32.const 126)");
    std::fs::write(&plugin, v2).unwrap();
    assert!(Command::new("kill").args(["-HUP", &h.child.id().to_string()]).status().unwrap().success());
    wait_for("the reload", &h, Duration::from_secs(30), || h.stderr().contains("reloaded plugins"));
    let (code, out, err) = cli(&h, &["dead-letters", "replay", "--id", "poison!-2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed 1 dead letter"), "{out}");
    wait_for("the replayed event handed on", &h, Duration::from_secs(60), || {
        h.metric("hooklake_enrich_events_total{stage=\"enrich\"}") == Some(5.0)
    });
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());

    // The other one while it is stopped: the command appends it to the journal; the next run lands it.
    let (code, out, err) = cli(&h, &["dead-letters", "replay", "--seq", &seq4.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed 1 dead letter into the journal"), "{out}");
    let (_, out, _) = cli(&h, &["dead-letters", "replay", "--all"]);
    assert!(out.contains("no dead letters match"), "both letters left the dead letters: {out}");
    let again = Hooklake::spawn_in(&h.dir);
    wait_for("the second replay handed on", &again, Duration::from_secs(60), || {
        again.metric("hooklake_enrich_backlog{stage=\"enrich\"}") == Some(0.0)
    });
    let (code, again) = again.stop();
    assert_eq!(code, 0, "{}", again.stderr());

    let lake = lake_tables(&h.dir.join("lake"));
    let rows: BTreeMap<String, u64> = lake["tables"]["t"]["rows_by_event"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let want: BTreeMap<String, u64> =
        ["ok-1", "poison!-2", "ok-3", "poison!-4"].iter().map(|id| ((*id).to_owned(), 1)).collect();
    assert_eq!(rows, want, "every event in the mapped table exactly once");
    let raw: Vec<&str> = lake["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(raw, vec!["ok-1", "poison!-2", "ok-3", "poison!-4"], "the raw table never takes a replay");
    let dir = std::fs::read_dir(&letters).unwrap().count();
    assert_eq!(dir, 0, "no dead letter left");
    // Lineage: the replayed row keeps the event's original journal seq.
    let seqs = lake_seqs(&h.dir.join("lake/t"));
    assert_eq!(seqs.get("poison!-4"), Some(&seq4), "{seqs:?}");
}

/// `_event_id` → `_seq` of a mapped table, with DuckDB.
fn lake_seqs(table: &Path) -> BTreeMap<String, u64> {
    let pattern = table.join("**/*.parquet");
    let code = format!(
        "import duckdb, json; print(json.dumps(dict(duckdb.connect().execute(\"SELECT _event_id, _seq FROM read_parquet('{}')\").fetchall())))",
        pattern.display()
    );
    let out = Command::new("python3").args(["-c", &code]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
