use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::api::{self, Api, ApiOptions, ApiStats, Faults};
use super::dice::{self, TimeFormat, format_time};
use super::events::{self, EVENT_TYPES, MAX_ITEMS, event, event_id, name_of};
use super::records::{self, Kind, comment, comment_count, exists, record};
use super::sender::{self, SendOptions, sign};

const ID: &str = "demo-client";
const SECRET: &str = "example-secret";

// ---- pure parts -------------------------------------------------------------------------------------------

#[test]
fn timestamps_format_in_the_three_documented_shapes() {
    assert_eq!(format_time(0, TimeFormat::Naive), "1970-01-01T00:00:00.000000");
    assert_eq!(format_time(dice::EPOCH_2026_MICROS, TimeFormat::Naive), "2026-01-01T00:00:00.000000");
    assert_eq!(format_time(1_709_251_199_000_001, TimeFormat::Naive), "2024-02-29T23:59:59.000001");
    let t = 1_635_180_326_761_622;
    assert_eq!(format_time(t, TimeFormat::Naive), "2021-10-25T16:45:26.761622");
    assert_eq!(format_time(t, TimeFormat::Zulu), "2021-10-25T16:45:26.761Z");
    assert_eq!(format_time(t, TimeFormat::Space), "2021-10-25 16:45:26.761622");
}

#[test]
fn scramble48_never_maps_two_numbers_to_one() {
    let out: HashSet<u64> = (0..200_000u64).map(dice::scramble48).collect();
    assert_eq!(out.len(), 200_000);
    assert!(out.iter().all(|x| *x < 1 << 48));
}

fn is_naive_micros(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 26 && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.' && s.starts_with("2026-")
}

#[test]
fn records_are_deterministic_and_carry_the_requested_id() {
    for kind in Kind::ALL {
        for id in ["0ccc5adf0d7d4eaabca56b58420f7da7", "dbc4b901-0758-43f6-9955-9ed1ef7da7ee", "x"] {
            let a = record(kind, id);
            assert_eq!(a, record(kind, id), "{kind:?} {id}");
            assert_eq!(a["id"], id, "{kind:?}");
            assert!(is_naive_micros(&a["created_at"]), "{kind:?}: {}", a["created_at"]);
            assert!(is_naive_micros(&a["updated_at"]), "{kind:?}: {}", a["updated_at"]);
            assert!(a["updated_at"].as_str() >= a["created_at"].as_str());
            assert!(a["user"]["id"].is_string() && a["user"]["name"].is_string(), "{kind:?}");
            for field in ["id", "platform_username", "username"] {
                assert!(a["account"][field].is_string(), "{kind:?} account.{field}");
            }
            for field in ["id", "name", "logo_url"] {
                assert!(a["work_platform"][field].is_string(), "{kind:?} work_platform.{field}");
            }
        }
        assert_ne!(record(kind, "a"), record(kind, "b"), "{kind:?}");
    }
    // An account's own record and its audience name the account itself.
    let account = records::account_id(3);
    assert_eq!(record(Kind::Account, &account)["account"]["id"], account.as_str());
    assert_eq!(record(Kind::Audience, &account)["account"]["id"], account.as_str());
}

#[test]
fn contents_have_every_field_some_null_and_enums_that_grow() {
    let contents: Vec<Value> = (0..1000).map(|i| record(Kind::Content, &format!("content-{i}"))).collect();
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
    let first = keys(&contents[0]);
    for key in ["external_id", "title", "format", "type", "url", "engagement", "published_at", "hashtags"] {
        assert!(first.contains(key), "{key}");
    }
    let engagement_keys = keys(&contents[0]["engagement"]);
    for c in &contents {
        assert_eq!(keys(c), first, "every record has every field");
        assert_eq!(keys(&c["engagement"]), engagement_keys);
        assert!(c["engagement"]["additional_info"].is_object());
        let w = &c["engagement"]["watch_time_in_hours"];
        assert!(w.is_null() || w.is_f64(), "{w}");
    }
    assert!(contents.iter().any(|c| c["title"].is_null()));
    assert!(contents.iter().any(|c| c["title"].is_string()));
    assert!(contents.iter().any(|c| c["engagement"]["watch_time_in_hours"].is_f64()));
    assert!(contents.iter().any(|c| c["format"] == "CAROUSEL_V2"), "a format newer than the docs");
    assert!(contents.iter().any(|c| c["format"] == "IMAGE"));
}

#[test]
fn audience_shares_are_percentages() {
    let a = record(Kind::Audience, &records::account_id(0));
    for list in ["countries", "cities", "gender_age_distribution"] {
        let items = a[list].as_array().expect("list");
        assert!(!items.is_empty(), "{list}");
        let sum: f64 = items.iter().map(|i| i["value"].as_f64().expect("value")).sum();
        assert!((99.0..=101.0).contains(&sum), "{list} sums to {sum}");
    }
    assert!(a["gender_age_distribution"][0]["age_range"].is_string());
    assert!(a["countries"][0]["code"].is_string());
}

#[test]
fn missing_ids_are_missing_and_always_the_same_ones() {
    let ids: Vec<String> = (0..10_000).map(|i| format!("id-{i}")).collect();
    assert!(ids.iter().all(|id| exists(id, 0)));
    assert!(ids.iter().all(|id| !exists(id, 1000)));
    let missing: Vec<&String> = ids.iter().filter(|id| !exists(id, 100)).collect();
    assert!((800..1200).contains(&missing.len()), "{} of 10000 missing at 10 %", missing.len());
    // A higher rate keeps every id a lower rate removed.
    assert!(missing.iter().all(|id| !exists(id, 300)));
}

#[test]
fn comments_are_bounded_and_belong_to_their_content() {
    let counts: Vec<usize> = (0..2000).map(|i| comment_count(&format!("c{i}"))).collect();
    assert!(counts.iter().all(|c| *c <= records::MAX_COMMENTS));
    assert!(counts.contains(&0));
    assert!(counts.iter().any(|c| *c > 200), "some contents need three pages");
    let c = comment("content-x", 7);
    assert_eq!(c["content"]["id"], "content-x");
    assert_eq!(c["id"], records::comment_id("content-x", 7).as_str());
    assert_ne!(c["id"], comment("content-x", 8)["id"]);
    assert!(c["commenter_username"].is_string());
}

#[test]
fn events_cover_every_type_with_documented_data_shapes() {
    let n = 5000;
    let all: Vec<Value> = (0..n).map(|i| event(42, i)).collect();
    let mut seen_types = HashSet::new();
    let mut ids = HashSet::new();
    let mut item_uses: HashMap<String, usize> = HashMap::new();
    let (mut naive, mut zulu, mut space) = (0, 0, 0);
    let (mut dashed, mut hex) = (0, 0);
    let mut contents = 0;
    for e in &all {
        let kind = e["event"].as_str().expect("event");
        seen_types.insert(kind.to_owned());
        assert_eq!(e["name"], name_of(kind).as_str());
        assert!(ids.insert(e["id"].as_str().expect("id").to_owned()), "duplicate id {}", e["id"]);
        let data = e["data"].as_object().expect("data");
        if kind == "CONTENTS_FETCH.SUCCESS" {
            assert_eq!(data.keys().collect::<Vec<_>>(), ["job_id"]);
            continue;
        }
        for key in ["account_id", "user_id", "last_updated_time"] {
            assert!(data[key].is_string(), "{kind} lacks {key}");
        }
        assert_eq!(data["user_id"], records::user_id(data["account_id"].as_str().expect("account")).as_str());
        let time = data["last_updated_time"].as_str().expect("time");
        match (time.ends_with('Z'), time.as_bytes()[10]) {
            (true, b'T') => zulu += 1,
            (false, b'T') => naive += 1,
            (false, b' ') => space += 1,
            _ => panic!("unexpected time {time}"),
        }
        let has = |k: &str| data.contains_key(k);
        if kind.starts_with("PROFILES") {
            assert!(has("profile_id") && !has("items"), "{kind}");
        } else if kind.contains(".PUBLISH_") {
            assert!(has("publish_id") && !has("items"), "{kind}");
        } else if kind.starts_with("ACCOUNTS") || kind.starts_with("SESSION") {
            assert_eq!(data.len(), 3, "{kind}");
        } else {
            let items = data["items"].as_array().expect("items");
            assert!((1..=MAX_ITEMS).contains(&items.len()), "{kind}: {} items", items.len());
            let distinct: HashSet<&str> = items.iter().filter_map(Value::as_str).collect();
            assert_eq!(distinct.len(), items.len(), "items within one event are distinct");
            for item in distinct {
                if item.contains('-') {
                    dashed += 1
                } else {
                    hex += 1
                }
                *item_uses.entry(item.to_owned()).or_default() += 1;
            }
            if kind.starts_with("CONTENTS.") {
                contents += 1;
            }
        }
    }
    let expected: HashSet<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(seen_types, expected);
    assert!(naive > 0 && zulu > 0 && space > 0, "{naive} {zulu} {space}");
    assert!(dashed > 0 && hex > 0);
    assert!(item_uses.values().any(|n| *n > 1), "some item ids recur across events");
    assert!((1500..2500).contains(&contents), "{contents} CONTENTS.ADDED|UPDATED of {n}");
}

#[test]
fn events_are_a_function_of_seed_and_number() {
    assert_eq!(event(7, 123), event(7, 123));
    assert_ne!(event(7, 123)["id"], event(8, 123)["id"]);
    assert_eq!(event(7, 123)["id"], event_id(7, 123).as_str());
    assert_eq!(name_of("CONTENTS.ADDED"), "contents added");
    assert_eq!(name_of("ACCOUNTS.CONNECTED"), "account is connected");
    assert_eq!(name_of("CONTENT-GROUPS.UPDATED"), "content groups updated");
    assert_eq!(name_of("CONTENTS_FETCH.SUCCESS"), "Contents fetch success.");
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: super::SimulateArgs,
}

#[test]
fn cli_flags_are_well_formed() {
    use clap::CommandFactory as _;
    Cli::command().debug_assert();
    let cli = <Cli as clap::Parser>::try_parse_from(["x", "--send-to", "http://h/w", "--error-permille", "5"])
        .expect("parses");
    assert_eq!(cli.args.api_options().faults.error_permille, 5);
    assert_eq!(cli.args.send_options("http://h/w").secret, SECRET);
    assert!(<Cli as clap::Parser>::try_parse_from(["x", "--error-permille", "1001"]).is_err());
    let debug = format!("{:?} {:?} {:?}", cli.args, cli.args.api_options(), cli.args.send_options("http://h/w"));
    assert!(!debug.contains(SECRET), "{debug}");
}

// ---- the API over HTTP ------------------------------------------------------------------------------------

async fn start(options: ApiOptions) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    api::serve(listener, options).await.expect("serve")
}

fn unlimited() -> ApiOptions {
    ApiOptions { rate_limit: 0, max_concurrent: 0, ..ApiOptions::new(ID, SECRET) }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(api: &Api, method: &str, path: &str, body: Option<Value>, auth: bool) -> Answer {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{}{path}", api.base_url()));
    if auth {
        request = request.basic_auth(ID, Some(SECRET));
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    Answer { status, headers, body }
}

fn assert_error_body(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let error = &answer.body["error"];
    for field in ["type", "error_code", "message", "request_id"] {
        assert!(error[field].is_string(), "error.{field} in {}", answer.body);
    }
    assert_eq!(error["http_status_code"], status);
    let request_id = answer.headers.get("request-id").expect("request-id header").to_str().expect("ascii");
    assert_eq!(error["request_id"], request_id);
}

#[tokio::test]
async fn bulk_search_needs_basic_auth_and_returns_the_existing_records() {
    let api = start(ApiOptions { faults: Faults { missing_permille: 200, ..Faults::default() }, ..unlimited() }).await;
    let ids: Vec<String> = (0..60).map(|i| format!("item-{i}")).collect();
    let path = "/v1/social/contents/search";

    let refused = call(&api, "POST", path, Some(json!({ "ids": ids })), false).await;
    assert_error_body(&refused, 401);

    let found = call(&api, "POST", path, Some(json!({ "ids": ids })), true).await;
    assert_eq!(found.status, 200);
    assert_eq!(found.headers.get("request-id").map(|v| v.len()), Some(36));
    let data = found.body["data"].as_array().expect("data");
    let want: Vec<&String> = ids.iter().filter(|id| exists(id, 200)).collect();
    assert!(want.len() < ids.len() && !want.is_empty(), "some ids are missing, not all");
    let got: Vec<&str> = data.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(got, want);
    assert_eq!(data[0], record(Kind::Content, want[0]));

    let commerce = call(&api, "POST", "/v1/commerce/income/balances/search", Some(json!({"ids": ["b1"]})), true).await;
    assert_eq!(commerce.body["data"][0], record(Kind::Balance, "b1"));

    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert_error_body(&call(&api, "POST", path, Some(json!({ "ids": too_many })), true).await, 400);
    assert_error_body(&call(&api, "POST", path, Some(json!({ "ids": [] })), true).await, 400);
    assert_error_body(&call(&api, "GET", path, None, true).await, 405);

    let stats = api.stats();
    assert_eq!(stats.bulk_ids, 61);
    assert_eq!(stats.bulk_ids_distinct, 61);
    assert_eq!(stats.by_status.get(&401), Some(&1));
    assert_eq!(stats.by_endpoint.get("POST /v1/social/contents/search"), Some(&4));
    assert_eq!(stats.by_endpoint.get("other"), Some(&1), "the GET");
    api.shutdown();
}

#[tokio::test]
async fn single_records_answer_404_for_ids_that_no_longer_exist() {
    let api = start(unlimited()).await;
    let account = records::account_id(1);
    let found = call(&api, "GET", &format!("/v1/accounts/{account}"), None, true).await;
    assert_eq!(found.body, record(Kind::Account, &account));
    let profile = call(&api, "GET", "/v1/profiles/p1", None, true).await;
    assert_eq!(profile.body["id"], "p1");
    let audience = call(&api, "GET", &format!("/v1/audience?account_id={account}"), None, true).await;
    assert_eq!(audience.body, record(Kind::Audience, &account));
    assert_error_body(&call(&api, "GET", "/v1/audience", None, true).await, 400);

    api.set_faults(Faults { missing_permille: 1000, ..Faults::default() });
    let gone = call(&api, "GET", &format!("/v1/accounts/{account}"), None, true).await;
    assert_error_body(&gone, 404);
    assert_eq!(gone.body["error"]["type"], "RECORD_NOT_FOUND");
    assert_error_body(&call(&api, "GET", "/v1/profiles/p1", None, true).await, 404);
    assert_error_body(&call(&api, "GET", "/v1/nothing-here", None, true).await, 404);
    api.shutdown();
}

#[tokio::test]
async fn the_fixed_window_limit_answers_429_with_retry_after_and_is_counted() {
    let api = start(ApiOptions { rate_limit: 3, ..ApiOptions::new(ID, SECRET) }).await;
    let mut limited = 0;
    for _ in 0..10 {
        let answer = call(&api, "GET", "/v1/accounts/a1", None, true).await;
        if answer.status == 429 {
            assert_error_body(&answer, 429);
            assert_eq!(answer.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
            limited += 1;
        }
    }
    // Ten requests well within a second span at most two windows of 3.
    assert!(limited >= 4, "{limited} limited");
    let stats = api.stats();
    assert_eq!(stats.rate_limited, limited);
    assert_eq!(stats.injected_throttles, 0);
    assert!(stats.max_fixed_window >= 5, "{stats:?}");
    assert_eq!(stats.max_sliding_window, 10);

    // Injected throttles are told apart from the real limit and carry their own Retry-After.
    api.set_faults(Faults { throttle_permille: 1000, retry_after_secs: 7, ..Faults::default() });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let throttled = call(&api, "GET", "/v1/accounts/a1", None, true).await;
    assert_error_body(&throttled, 429);
    assert_eq!(throttled.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    let stats = api.stats();
    assert_eq!((stats.rate_limited, stats.injected_throttles), (limited, 1));
    api.shutdown();
}

#[tokio::test]
async fn down_and_injected_errors_answer_5xx_with_the_error_body() {
    let api = start(unlimited()).await;
    api.set_faults(Faults { down: true, ..Faults::default() });
    assert_error_body(&call(&api, "GET", "/v1/accounts/a", None, false).await, 503);
    api.set_faults(Faults { error_permille: 1000, ..Faults::default() });
    let failed = call(&api, "GET", "/v1/accounts/a", None, true).await;
    assert!([500, 502, 503].contains(&failed.status));
    assert_error_body(&failed, failed.status);
    let stats = api.stats();
    assert_eq!((stats.server_errors, stats.injected_errors), (2, 1));
    api.shutdown();
}

#[tokio::test]
async fn comments_paginate_until_a_page_has_fewer_than_limit() {
    let api = start(unlimited()).await;
    let content = (0..).map(|i| format!("content-{i}")).find(|c| comment_count(c) > 150).expect("a busy content");
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let path = format!("/v1/social/comments?account_id=a&content_id={content}&limit=100&offset={offset}");
        let page = call(&api, "GET", &path, None, true).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["metadata"], json!({"limit": 100, "offset": offset}));
        let data = page.body["data"].as_array().expect("data").clone();
        let n = data.len();
        all.extend(data);
        offset += n;
        if n < 100 {
            break;
        }
    }
    assert_eq!(all.len(), comment_count(&content));
    let ids: HashSet<&str> = all.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), all.len());
    assert!(all.iter().all(|c| c["content"]["id"] == content.as_str()));
    let bad = format!("/v1/social/comments?account_id=a&content_id={content}&limit=101");
    assert_error_body(&call(&api, "GET", &bad, None, true).await, 400);
    api.shutdown();
}

#[tokio::test]
async fn webhooks_round_trip_through_create_read_update_delete() {
    let api = start(unlimited()).await;
    let created = call(
        &api,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": "https://example.com/hook", "events": ["CONTENTS.ADDED"], "name": "lake"})),
        true,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.body["is_active"], true);
    assert!(is_naive(&created.body["created_at"]));

    let read = call(&api, "GET", &format!("/v1/webhooks/{id}"), None, true).await;
    assert_eq!(read.body, created.body);
    let list = call(&api, "GET", "/v1/webhooks?limit=10&offset=0", None, true).await;
    assert_eq!(list.body["data"], json!([created.body]));
    assert_eq!(list.body["metadata"], json!({"limit": 10, "offset": 0}));

    let update = json!({"url": "https://example.com/v2", "events": ["CONTENTS.UPDATED"], "name": "lake2",
                        "is_active": false});
    let updated = call(&api, "PUT", &format!("/v1/webhooks/{id}"), Some(update), true).await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["url"], "https://example.com/v2");
    assert_eq!(updated.body["events"], json!(["CONTENTS.UPDATED"]));
    assert_eq!(updated.body["is_active"], false);

    // Re-enabled, then deactivated again through the control endpoint and the handle.
    call(&api, "PUT", &format!("/v1/webhooks/{id}"), Some(json!({"is_active": true})), true).await;
    let off = call(&api, "POST", &format!("/_sim/webhooks/{id}/deactivate"), None, false).await;
    assert_eq!(off.body["is_active"], false);
    assert!(api.deactivate_webhook(&id));

    let bad = json!({"url": "not a url", "events": ["CONTENTS.ADDED"]});
    assert_error_body(&call(&api, "POST", "/v1/webhooks", Some(bad), true).await, 400);

    assert_eq!(call(&api, "DELETE", &format!("/v1/webhooks/{id}"), None, true).await.status, 204);
    assert_error_body(&call(&api, "GET", &format!("/v1/webhooks/{id}"), None, true).await, 404);
    assert_error_body(&call(&api, "DELETE", &format!("/v1/webhooks/{id}"), None, true).await, 404);
    assert!(!api.deactivate_webhook(&id));
    api.shutdown();
}

fn is_naive(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 26 && s.as_bytes()[10] == b'T')
}

#[tokio::test]
async fn control_endpoints_need_no_auth_and_are_not_counted() {
    let api = start(unlimited()).await;
    call(&api, "GET", "/v1/accounts/a", None, true).await;
    let set = call(&api, "PUT", "/_sim/faults", Some(json!({"error_permille": 5, "down": false})), false).await;
    assert_eq!(set.status, 200);
    assert_eq!(api.faults(), Faults { error_permille: 5, ..Faults::default() });
    assert_error_body(&call(&api, "PUT", "/_sim/faults", Some(json!({"eror_permille": 5})), false).await, 400);
    let stats = call(&api, "GET", "/_sim/stats", None, false).await;
    let stats: ApiStats = serde_json::from_value(stats.body).expect("stats JSON");
    assert_eq!(stats.requests, 1);
    assert_eq!(stats, api.stats());
    api.shutdown();
}

// ---- a tiny webhook receiver ------------------------------------------------------------------------------

/// What a [`Receiver`] saw: each request's body and whether its signature was valid.
type Seen = Arc<Mutex<Vec<(Bytes, bool)>>>;

/// A local webhook endpoint: answers 401 to bad signatures, else `status(attempt number from 0)`.
async fn receiver(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let status = Arc::new(status);
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (seen, counter, status) = (Arc::clone(&state), Arc::clone(&counter), Arc::clone(&status));
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (seen, counter, status) = (Arc::clone(&seen), Arc::clone(&counter), Arc::clone(&status));
                    async move {
                        let signature = req.headers().get(sender::SIGNATURE_HEADER).cloned();
                        let json = req.headers().get("content-type").is_some_and(|v| v == "application/json");
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let valid = json && signature.is_some_and(|s| s.as_bytes() == sign(SECRET, &body).as_bytes());
                        seen.lock().expect("lock").push((body, valid));
                        let code = if valid { status(counter.fetch_add(1, Ordering::SeqCst)) } else { 401 };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() = StatusCode::from_u16(code).expect("status");
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (format!("http://{addr}/webhook"), seen)
}

#[test]
fn reordering_shuffles_within_small_windows_only() {
    let options = SendOptions { events: 100, reorder: true, ..SendOptions::new("http://h/", SECRET) };
    let mut moved = 0;
    for start in (0..100).step_by(sender::REORDER_WINDOW as usize) {
        let mut order = sender::window(&options, start);
        moved += order.iter().zip(start..).filter(|(a, b)| **a != *b).count();
        order.sort_unstable();
        let end = (start + sender::REORDER_WINDOW).min(100);
        assert_eq!(order, (start..end).collect::<Vec<_>>());
    }
    assert!(moved > 50, "{moved} of 100 moved");
    let in_order = SendOptions { reorder: false, ..options };
    assert_eq!(sender::window(&in_order, 8), (8..16).collect::<Vec<_>>());
}

#[tokio::test]
async fn simulate_sends_and_writes_the_report_file() {
    let (url, seen) = receiver(|_| 200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.json");
    let argv = ["x", "--send-to", &url, "--events", "20", "--report", path.to_str().expect("utf-8 path")];
    let cli = <Cli as clap::Parser>::try_parse_from(argv).expect("parses");
    super::simulate(cli.args).await.expect("simulate");
    let report: sender::SendReport =
        serde_json::from_slice(&std::fs::read(&path).expect("report written")).expect("report JSON");
    assert_eq!(report.acknowledged.len(), 20);
    assert_eq!(seen.lock().expect("lock").len(), 20);
    let nothing = <Cli as clap::Parser>::try_parse_from(["x"]).expect("parses");
    assert!(super::simulate(nothing.args).await.is_err(), "neither --api-listen nor --send-to");
}

fn quick(url: &str, events: u64) -> SendOptions {
    SendOptions { events, retry_scale: 0.000_1, timeout: Duration::from_secs(2), ..SendOptions::new(url, SECRET) }
}

#[tokio::test]
async fn a_failed_first_attempt_is_retried_and_the_event_acknowledged_once() {
    let (url, seen) = receiver(|attempt| if attempt == 0 { 503 } else { 200 }).await;
    let report = sender::send(quick(&url, 1)).await.expect("send");
    assert_eq!(report.sent, 1);
    assert_eq!(report.acknowledged, vec![event_id(1, 0)]);
    assert!(report.failed.is_empty());
    assert_eq!(report.attempts, 2);
    assert_eq!(report.status_counts.get("503"), Some(&1));
    assert_eq!(report.status_counts.get("200"), Some(&1));
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "a retry sends the same bytes");
    assert!(seen[0].1, "signed with the client secret");
    assert_eq!(serde_json::from_slice::<Value>(&seen[0].0).expect("JSON"), events::event(1, 0));
}

#[tokio::test]
async fn an_event_whose_every_attempt_fails_is_reported_failed_after_three_retries() {
    let (url, seen) = receiver(|_| 500).await;
    let report = sender::send(SendOptions { retry_scale: 0.000_01, ..quick(&url, 1) }).await.expect("send");
    assert!(report.acknowledged.is_empty());
    assert_eq!(report.failed, vec![event_id(1, 0)]);
    assert_eq!(report.attempts, 4);
    assert_eq!(seen.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn duplicates_reordering_and_bad_signatures_are_reported_apart_from_events() {
    let (url, seen) = receiver(|_| 200).await;
    let options = SendOptions {
        duplicate_permille: 300,
        bad_signature_permille: 200,
        reorder: true,
        seed: 9,
        concurrency: 8,
        ..quick(&url, 300)
    };
    let report = sender::send(options).await.expect("send");
    let want: Vec<String> = (0..300).map(|n| event_id(9, n)).collect();
    assert_eq!(report.acknowledged, want);
    assert!(report.duplicates_sent > 30 && report.bad_signatures_sent > 20, "{report:?}");
    assert_eq!(report.bad_signatures_accepted, 0);
    assert_eq!(report.attempts, 300 + report.duplicates_sent + report.bad_signatures_sent);
    assert_eq!(report.status_counts.get("401"), Some(&report.bad_signatures_sent));
    let seen = seen.lock().expect("lock");
    let valid: Vec<Value> =
        seen.iter().filter(|(_, ok)| *ok).map(|(b, _)| serde_json::from_slice(b).expect("JSON")).collect();
    let ids: Vec<&str> = valid.iter().filter_map(|e| e["id"].as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 300);
    assert_eq!(ids.len() as u64, 300 + report.duplicates_sent);
    // Bad-signature bodies are not events of the run.
    for (body, ok) in seen.iter().filter(|(_, ok)| !*ok) {
        let e: Value = serde_json::from_slice(body).expect("JSON");
        assert!(!distinct.contains(e["id"].as_str().expect("id")), "{ok}");
    }
}

#[tokio::test]
async fn webhooks_send_delivers_a_signed_mock_notification_to_subscribers() {
    let (url, seen) = receiver(|_| 200).await;
    let api = start(unlimited()).await;
    let hook = json!({"url": url, "events": ["CONTENTS.ADDED"], "name": "lake"});
    call(&api, "POST", "/v1/webhooks", Some(hook), true).await;
    let payload = json!({"payload": {"event": "CONTENTS.ADDED", "name": "contents added",
                                     "data": {"account_id": "a", "items": ["c1"]}}});
    let sent = call(&api, "POST", "/v1/webhooks/send", Some(payload), true).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["deliveries"][0]["status"], 200);
    let other = json!({"payload": {"event": "PAYOUTS.ADDED", "data": {}}});
    call(&api, "POST", "/v1/webhooks/send", Some(other), true).await;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 1, "only subscribers get it");
    assert!(seen[0].1, "signed with the client secret");
    let body: Value = serde_json::from_slice(&seen[0].0).expect("JSON");
    assert_eq!(body["event"], "CONTENTS.ADDED");
    assert_eq!(body["data"]["items"], json!(["c1"]));
    assert_eq!(body["id"], sent.body["id"]);
    api.shutdown();
}

#[tokio::test]
async fn a_webhook_failing_three_mock_deliveries_in_a_row_is_set_inactive() {
    let (url, _seen) = receiver(|_| 500).await;
    let api = start(unlimited()).await;
    let hook = json!({"url": url, "events": ["BALANCES.ADDED"]});
    let id = call(&api, "POST", "/v1/webhooks", Some(hook), true).await.body["id"].clone();
    let payload = json!({"payload": {"event": "BALANCES.ADDED", "data": {}}});
    for _ in 0..3 {
        call(&api, "POST", "/v1/webhooks/send", Some(payload.clone()), true).await;
    }
    let read = call(&api, "GET", &format!("/v1/webhooks/{}", id.as_str().expect("id")), None, true).await;
    assert_eq!(read.body["is_active"], false);
    let fourth = call(&api, "POST", "/v1/webhooks/send", Some(payload), true).await;
    assert_eq!(fourth.body["deliveries"], json!([]));
    api.shutdown();
}
