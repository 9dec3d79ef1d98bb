//! End to end: the real binary enriching from the real simulator (`hooklake simulate`) over loopback, with
//! faults switched on. Each test reads what the stage handed on with `hooklake journal dump --stage enrich`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hooklake, SECRET, Simulator, config_text};
use hooklake::simulator::records;
use hooklake::transforms::enrich::plan::{Endpoint, Plan, plan};
use serde_json::Value;

const API_ID: &str = "demo-client";
const API_SECRET: &str = "example-secret";

/// `hooklake simulate --api-listen` as its own process.
fn enrich_config(api: SocketAddr, enrich_lines: &str) -> String {
    format!(
        r#"{}
[api.insightiq]
base_url = "http://{api}"
client_id = "{API_ID}"
client_secret = "{API_SECRET}"
rate_limit = 10
timeout = "5s"

[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
max_wait = "200ms"
{enrich_lines}
"#,
        config_text("", "")
    )
}

/// Runs the simulator's sender against `h` and returns its report.
fn send(h: &Hooklake, events: u64, seed: u64) -> Value {
    let report = h.dir.join(format!("report-{seed}.json"));
    let url = format!("http://{}/webhooks/insightiq", h.addr);
    let status = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["simulate", "--send-to", &url, "--client-secret", SECRET, "--rate", "0", "--retry-scale", "0.001"])
        .args(["--events", &events.to_string(), "--seed", &seed.to_string(), "--duplicates-permille", "50"])
        .arg("--report")
        .arg(&report)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

fn acknowledged(report: &Value) -> BTreeSet<String> {
    report["acknowledged"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// Waits until the stage has handed on everything the journal holds.
fn wait_handed_on(h: &Hooklake, limit: Duration) {
    let start = Instant::now();
    loop {
        let backlog = h.metric("hooklake_enrich_backlog{stage=\"enrich\"}");
        if backlog == Some(0.0) {
            return;
        }
        assert!(start.elapsed() < limit, "enrich backlog still {backlog:?} after {limit:?}; stderr:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the stage handed on, by event id (asserting each event was handed on once).
fn handed_on(config: &Path) -> BTreeMap<String, Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["journal", "dump", "--stage", "enrich", "-c"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut docs = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let id = doc["id"].as_str().unwrap().to_owned();
        assert!(docs.insert(id.clone(), doc).is_none(), "event {id} handed on twice");
    }
    docs
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Checks one enriched document against what the simulator serves for its ids.
fn check_doc(doc: &Value, missing_permille: u32) {
    let event = doc["event"].as_str().unwrap();
    let data = &doc["data"];
    let resources = doc["resources"].as_array().unwrap();
    let missing: BTreeSet<String> = strings(&doc["missing"]).into_iter().collect();
    let ids_of =
        |rs: &[Value]| -> BTreeSet<String> { rs.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect() };
    match plan(event) {
        Plan::Bulk(_) | Plan::Income(_) => {
            let items: BTreeSet<String> = strings(&data["items"]).into_iter().collect();
            let found = ids_of(resources);
            assert_eq!(found.len(), resources.len(), "{event}: one record per id");
            assert_eq!(&found | &missing, items, "{event}: every item is found or missing");
            assert!(found.is_disjoint(&missing));
            for id in &missing {
                assert!(!records::exists(id, missing_permille), "{event}: {id} exists but is recorded missing");
            }
        }
        Plan::Account | Plan::Profile | Plan::Audience => {
            let key = if plan(event) == Plan::Profile { "profile_id" } else { "account_id" };
            let id = data[key].as_str().unwrap();
            assert_eq!(resources.len() + missing.len(), 1, "{event}: {doc}");
            if plan(event) != Plan::Audience && !resources.is_empty() {
                assert_eq!(resources[0]["id"], id, "{event}");
            }
        }
        Plan::Comments => {
            // A content that no longer exists answers an empty page, like one without comments.
            let expected: usize = strings(&data["items"])
                .iter()
                .filter(|c| records::exists(c, missing_permille))
                .map(|c| records::comment_count(c))
                .sum();
            assert_eq!(resources.len(), expected, "{event}: every page of comments");
        }
        Plan::Skip(_) => {
            assert!(resources.is_empty());
            assert!(doc["skipped"].is_string(), "{event}: un-enriched events are marked: {doc}");
        }
    }
}

#[test]
fn every_event_gets_its_records_through_faults_without_ever_exceeding_the_rate_limit() {
    let missing_permille = 20;
    let sim = Simulator::start(&[
        "--client-id",
        API_ID,
        "--client-secret",
        API_SECRET,
        "--rate-limit",
        "10",
        "--throttle-permille",
        "30",
        "--retry-after",
        "1",
        "--error-permille",
        "50",
        "--missing-permille",
        &missing_permille.to_string(),
    ]);
    let h = Hooklake::start_with(&enrich_config(sim.addr, ""));
    let report = send(&h, 150, 7);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    let mut acked = acknowledged(&report);
    // An event type nobody knows yet passes through, marked.
    let unknown = r#"{"event": "NEW_FAMILY.CREATED", "name": "new", "id": "unknown-1", "data": {"x": 1}}"#;
    assert_eq!(h.post(unknown.as_bytes()).0, 200);
    acked.insert("unknown-1".into());

    wait_handed_on(&h, Duration::from_secs(240));
    let stats = sim.stats();
    let (code, h) = h.stop();
    assert_eq!(code, 0);
    let docs = handed_on(&h.config);
    assert_eq!(docs.keys().cloned().collect::<BTreeSet<_>>(), acked, "every acknowledged event, once");
    for doc in docs.values() {
        check_doc(doc, missing_permille);
    }
    assert_eq!(docs["unknown-1"]["skipped"], "unknown event type");

    // Calls: at most 1.1 × ceil(ids / 100) bulk calls per endpoint, plus the retries the faults caused.
    let mut ids_per_endpoint: HashMap<&str, usize> = HashMap::new();
    for doc in docs.values() {
        let endpoint = match plan(doc["event"].as_str().unwrap()) {
            Plan::Bulk(e) => e,
            Plan::Income(i) => i.endpoint(false),
            _ => continue,
        };
        *ids_per_endpoint.entry(endpoint.default_path()).or_default() += strings(&doc["data"]["items"]).len();
    }
    let budget: f64 = ids_per_endpoint.values().map(|n| (*n as f64 / 100.0).ceil()).sum::<f64>() * 1.1;
    let by_endpoint = stats["by_endpoint"].as_object().expect("stats.by_endpoint");
    let bulk_calls: u64 = by_endpoint
        .iter()
        .filter(|(path, _)| Endpoint::ALL.iter().any(|e| e.is_bulk() && e.default_path() == path.as_str()))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    let failed_answers: u64 = stats["by_status"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(status, _)| status.as_str() != "200" && status.as_str() != "404")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert!(
        bulk_calls as f64 <= budget.floor() + failed_answers as f64,
        "{bulk_calls} bulk calls for {ids_per_endpoint:?} (budget {budget:.1} + {failed_answers} retries); {stats}"
    );
    assert!(stats["max_sliding_window"].as_u64().unwrap() <= 10, "{stats}");
    assert_eq!(stats["rate_limited"].as_u64().unwrap(), 0, "the simulator never had to refuse for the limit: {stats}");
    assert!(
        stats["injected_throttles"].as_u64().unwrap() + stats["injected_errors"].as_u64().unwrap() > 0,
        "faults were on"
    );
}

#[test]
fn an_api_outage_with_a_crash_in_the_middle_loses_nothing() {
    let outage =
        Duration::from_secs(std::env::var("HOOKLAKE_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120));
    let sim = Simulator::start(&["--client-id", API_ID, "--client-secret", API_SECRET]);
    sim.faults(r#"{"down": true}"#);
    let started = Instant::now();
    let h = Hooklake::start_with(&enrich_config(sim.addr, ""));
    let acked = acknowledged(&send(&h, 60, 11));
    std::thread::sleep(outage / 2);
    // Mid-outage crash: nothing was handed on, so the restart asks again.
    let h = h.kill9();
    let h = Hooklake::spawn_in(&h.dir.clone());
    std::thread::sleep(outage.saturating_sub(started.elapsed()));
    // Events that need no call (job and publish events) may pass; everything else waits for the API.
    assert!(h.metric("hooklake_enrich_backlog{stage=\"enrich\"}").unwrap() > 0.0, "events wait for the API");
    assert_eq!(h.metric("hooklake_enrich_calls_total{stage=\"enrich\",outcome=\"ok\"}"), Some(0.0));
    assert!(h.metric("hooklake_enrich_requests_total{stage=\"enrich\"}").unwrap() > 0.0, "it kept asking");
    sim.faults("{}");
    wait_handed_on(&h, Duration::from_secs(180));
    let (code, h) = h.stop();
    assert_eq!(code, 0);
    let docs = handed_on(&h.config);
    assert_eq!(docs.keys().cloned().collect::<BTreeSet<_>>(), acked);
    for doc in docs.values() {
        check_doc(doc, 0);
    }
    assert!(!h.dir.join("data/dead_letters").exists(), "an outage shorter than retry_for dead-letters nothing");
}

#[test]
fn a_call_that_keeps_failing_dead_letters_its_events_and_the_stage_goes_on() {
    let sim = Simulator::start(&["--client-id", API_ID, "--client-secret", API_SECRET]);
    sim.faults(r#"{"down": true}"#);
    let h = Hooklake::start_with(&enrich_config(sim.addr, r#"retry_for = "2s""#));
    for id in ["doomed-1", "doomed-2"] {
        assert_eq!(h.post(common::envelope(id).as_bytes()).0, 200);
    }
    let start = Instant::now();
    while h.metric("hooklake_dead_letters_total{stage=\"enrich\"}") != Some(2.0) {
        assert!(start.elapsed() < Duration::from_secs(60), "no dead letters; stderr:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    sim.faults("{}");
    assert_eq!(h.post(common::envelope("fine-1").as_bytes()).0, 200);
    wait_handed_on(&h, Duration::from_secs(60));
    let (code, h) = h.stop();
    assert_eq!(code, 0);
    let docs = handed_on(&h.config);
    assert_eq!(docs.keys().cloned().collect::<Vec<_>>(), vec!["fine-1".to_owned()]);
    check_doc(&docs["fine-1"], 0);

    let dir = h.dir.join("data/dead_letters/transforms.enrich");
    let mut letters: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    letters.sort_by_key(|l| l["seq"].as_u64());
    assert_eq!(letters.len(), 2);
    for (letter, id) in letters.iter().zip(["doomed-1", "doomed-2"]) {
        assert_eq!(letter["event_id"], id);
        assert_eq!(letter["stage"], "transforms.enrich");
        let reason = letter["reason"].as_str().unwrap();
        assert!(reason.contains("503") && reason.contains("/v1/social/contents/search"), "{reason}");
        assert!(letter["request_id"].is_string(), "the API's request-id is kept: {letter}");
        assert!(letter["attempts"].as_u64().unwrap() >= 2);
        assert_eq!(serde_json::from_str::<Value>(letter["body"].as_str().unwrap()).unwrap()["id"], id);
    }
    assert!(!h.stderr().contains(API_SECRET), "the API secret never reaches the logs");

    // The API is back: replay the stage's letters (the pipeline is stopped, so the command appends them to the
    // journal itself); the next run fetches them again and hands them on once, under their original seq.
    let out = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["dead-letters", "replay", "--stage", "enrich", "-c"])
        .arg(&h.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("replayed 2 dead letters"), "{stdout}");
    let again = Hooklake::spawn_in(&h.dir);
    wait_handed_on(&again, Duration::from_secs(60));
    let (code, again) = again.stop();
    assert_eq!(code, 0, "{}", again.stderr());
    let docs = handed_on(&h.config);
    assert_eq!(docs.keys().cloned().collect::<Vec<_>>(), vec!["doomed-1", "doomed-2", "fine-1"]);
    for letter in &letters {
        let doc = &docs[letter["event_id"].as_str().unwrap()];
        check_doc(doc, 0);
        assert_eq!(doc["seq"], letter["seq"], "the replay keeps the event's seq");
        assert_eq!(doc["_replay"]["stage"], "transforms.enrich");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no letter left");
}
