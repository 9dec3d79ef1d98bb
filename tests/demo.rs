//! `hooklake demo`, the README's main command, end to end: it must exit 0 and its summary must match the lake
//! read back with DuckDB. Needs `plugins/insightiq.wasm` (`plugins/build.sh`, which `.ci/run` runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn demo(lake: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--json", "--lake"])
        .arg(lake)
        .args(extra)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Rows per table, distinct and total `_event_id`s of `events`, and the demo's own query's row count.
fn duckdb_view(lake: &Path, query: &str) -> Value {
    let sql = query.split('"').nth(1).expect("the query is `duckdb -c \"SQL\"`");
    let script = format!(
        r#"
import duckdb, glob, json, os
con = duckdb.connect()
lake = {lake:?}
out = {{"tables": {{}}}}
for t in sorted(os.listdir(lake)):
    files = glob.glob(os.path.join(lake, t, "**", "*.parquet"), recursive=True)
    if files:
        out["tables"][t] = {{"rows": con.execute(f"SELECT count(*) FROM read_parquet({{files!r}})").fetchone()[0], "files": len(files)}}
ev = os.path.join(lake, "events", "**", "*.parquet")
out["events_distinct"], out["events_total"] = con.execute(f"SELECT count(DISTINCT _event_id), count(*) FROM read_parquet('{{ev}}')").fetchone()
out["query_rows"] = len(con.execute({sql:?}).fetchall())
print(json.dumps(out))
"#,
        lake = lake.display().to_string(),
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_demo_lands_every_acknowledged_event_and_its_summary_matches_the_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("demo-lake");
    let (code, stdout, stderr) = demo(&lake, &["--events", "200"]);
    assert_eq!(code, 0, "demo failed:\n{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["missing_from_lake"], 0);
    assert_eq!(summary["landed_twice"], 0);
    let acknowledged = summary["acknowledged"].as_u64().unwrap();
    assert!(acknowledged >= 190, "nearly every event is acknowledged at once: {summary}");
    assert!(summary["rejected"]["401 bad or missing signature"].as_u64().unwrap() > 0, "decoys were refused");
    assert!(summary["duplicates"].as_u64().unwrap() > 0, "duplicates were answered 200");
    assert!(summary["api_bulk_calls"].as_u64().unwrap() > 0);
    assert!(stderr.contains("demo ["), "progress was shown: {stderr}");

    let query = summary["query"].as_str().unwrap();
    let seen = duckdb_view(&lake, query);
    assert_eq!(seen["events_distinct"].as_u64(), Some(acknowledged), "{seen}");
    assert_eq!(seen["events_total"].as_u64(), Some(acknowledged), "each event once: {seen}");
    assert!(seen["query_rows"].as_u64().unwrap() > 0, "the printed query works and finds contents");
    let tables = summary["tables"].as_object().unwrap();
    assert!(tables.len() >= 8, "the insightiq tables and events: {tables:?}");
    for (name, t) in tables {
        assert_eq!(seen["tables"][name]["rows"], t["rows"], "rows of {name}");
        assert_eq!(seen["tables"][name]["files"], t["files"], "files of {name}");
    }

    // A second demo replaces its own earlier lake, but never a folder it did not write.
    let (code, _, stderr) = demo(&lake, &["--events", "20"]);
    assert_eq!(code, 0, "{stderr}");
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "data").unwrap();
    let (code, _, stderr) = demo(&foreign, &["--events", "20"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("was not written by `hooklake demo`"), "{stderr}");
    assert!(foreign.join("keep.txt").exists());
}
