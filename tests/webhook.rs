//! End to end: the real binary on loopback, real HTTP, the journal read back with `hooklake journal dump`.
//! Every bad-input case also proves that nothing was stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Hooklake, SECRET, config_text, envelope, read_response, request, sign};

#[test]
fn accepted_delivery_is_journaled_byte_for_byte() {
    let h = Hooklake::start();
    let body = envelope("674c9030-640a-4c83-a680-666361044f67");
    let (status, answer) = h.post(body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"accepted\""), "{answer}");
    assert_eq!(h.metric("hooklake_events_accepted_total{source=\"insightiq\"}"), Some(1.0));
    let rows = h.stop_and_dump();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["body"], body.as_str(), "raw body is stored exactly as received");
    assert_eq!(r["event"], "CONTENTS.ADDED");
    assert_eq!(r["id"], "674c9030-640a-4c83-a680-666361044f67");
    assert_eq!(r["name"], "contents added");
    assert_eq!(r["source_ip"], "127.0.0.1");
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert!(r["headers"].get("webhook-signatures").is_none(), "signatures are not kept");
    assert_eq!(r["dedup_key"], "insightiq:674c9030-640a-4c83-a680-666361044f67", "keys are per source");
    assert!(r["received_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn duplicate_gets_200_and_no_second_entry() {
    let h = Hooklake::start();
    let body = envelope("dup-1");
    assert_eq!(h.post(body.as_bytes()).0, 200);
    let (status, answer) = h.post(body.as_bytes());
    assert_eq!(status, 200);
    assert!(answer.contains("\"duplicate\""), "{answer}");
    // Same id, different bytes (a re-serialising sender): still the same delivery.
    let other = body.replace(", \"data\"", ",\"data\"");
    assert_eq!(h.post(other.as_bytes()).0, 200);
    assert_eq!(h.metric("hooklake_events_duplicate_total{source=\"insightiq\"}"), Some(2.0));
    let rows = h.stop_and_dump();
    assert_eq!(rows.len(), 1);
}

#[test]
fn duplicate_is_recognised_after_a_restart() {
    let h = Hooklake::start();
    assert_eq!(h.post(envelope("r-1").as_bytes()).0, 200);
    let (code, h) = h.stop();
    assert_eq!(code, 0);
    let dir = h.dir.clone();
    let h2 = Hooklake::spawn_in(&dir);
    let (status, answer) = h2.post(envelope("r-1").as_bytes());
    assert_eq!((status, answer.contains("duplicate")), (200, true), "{answer}");
    assert_eq!(h2.post(envelope("r-2").as_bytes()).0, 200);
    let rows = h2.stop_and_dump();
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![0, 1]);
    drop(h);
}

#[test]
fn concurrent_deliveries_of_one_new_id_store_it_once() {
    let h = Hooklake::start();
    let body = envelope("same-id");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24).map(|_| s.spawn(|| h.post(body.as_bytes()).0)).collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(h.stop_and_dump().len(), 1);
}

fn assert_refused(h: Hooklake, cases: &[(&str, u16, Vec<u8>)]) {
    for (name, want, req) in cases {
        let (status, answer) = h.raw(req);
        assert_eq!(status, *want, "{name}: {answer}");
        if *want != 405 && *want != 404 {
            assert!(answer.contains("\"error\""), "{name}: answer should say why: {answer}");
        }
    }
    assert_eq!(h.stop_and_dump().len(), 0, "nothing refused may be stored");
}

#[test]
fn bad_signatures_get_401_and_store_nothing() {
    let body = envelope("sig-1");
    let reserialised = serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&body).unwrap()).unwrap();
    assert_ne!(reserialised, body);
    let path = "/webhooks/insightiq";
    assert_refused(
        Hooklake::start(),
        &[
            (
                "wrong signature",
                401,
                request("POST", path, &[("Webhook-Signatures", &sign("other", body.as_bytes()))], body.as_bytes()),
            ),
            ("missing header", 401, request("POST", path, &[], body.as_bytes())),
            (
                "signature of a re-serialised body",
                401,
                request(
                    "POST",
                    path,
                    &[("Webhook-Signatures", &sign(SECRET, reserialised.as_bytes()))],
                    body.as_bytes(),
                ),
            ),
            ("not hex", 401, request("POST", path, &[("Webhook-Signatures", "not-a-signature")], body.as_bytes())),
        ],
    );
}

#[test]
fn malformed_bodies_get_400_and_store_nothing() {
    let signed = |b: &[u8]| request("POST", "/webhooks/insightiq", &[("Webhook-Signatures", &sign(SECRET, b))], b);
    assert_refused(
        Hooklake::start(),
        &[
            ("malformed JSON", 400, signed(b"{\"event\": ")),
            ("no id", 400, signed(br#"{"event":"CONTENTS.ADDED","data":{}}"#)),
            ("no event", 400, signed(br#"{"id":"x","data":{}}"#)),
            ("non-object JSON", 400, signed(br#"["event","id"]"#)),
            ("invalid UTF-8", 400, signed(b"{\"event\":\"A\",\"id\":\"\xff\xfe\"}")),
            ("empty body", 400, signed(b"")),
        ],
    );
}

#[test]
fn size_method_path_and_type_errors_store_nothing() {
    let h = Hooklake::start_with(&config_text("max_body = \"1KiB\"", ""));
    let big = envelope(&"x".repeat(2048));
    let sig = sign(SECRET, big.as_bytes());
    // Chunked, no Content-Length: the limit must hold while reading.
    let mut chunked = format!(
        "POST /webhooks/insightiq HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nWebhook-Signatures: {sig}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(500) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let small = envelope("small");
    let ok_sig = sign(SECRET, small.as_bytes());
    assert_refused(
        h,
        &[
            (
                "oversized body",
                413,
                request("POST", "/webhooks/insightiq", &[("Webhook-Signatures", &sig)], big.as_bytes()),
            ),
            ("oversized chunked body", 413, chunked),
            ("wrong method", 405, request("GET", "/webhooks/insightiq", &[], b"")),
            ("PUT", 405, request("PUT", "/webhooks/insightiq", &[("Webhook-Signatures", &ok_sig)], small.as_bytes())),
            (
                "wrong path",
                404,
                request("POST", "/webhooks/other", &[("Webhook-Signatures", &ok_sig)], small.as_bytes()),
            ),
            (
                "not JSON content type",
                415,
                request(
                    "POST",
                    "/webhooks/insightiq",
                    &[("Webhook-Signatures", &ok_sig), ("Content-Type", "application/x-www-form-urlencoded")],
                    small.as_bytes(),
                ),
            ),
        ],
    );
}

#[test]
fn oversized_declared_body_is_refused_without_reading_it() {
    let h = Hooklake::start_with(&config_text("max_body = \"1KiB\"", ""));
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Declare 100 MiB, send none of it: the answer must come at once.
    s.write_all(b"POST /webhooks/insightiq HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nWebhook-Signatures: 00\r\nContent-Length: 104857600\r\n\r\n").unwrap();
    let started = Instant::now();
    let (status, _) = read_response(&mut s);
    assert_eq!(status, 413);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.stop_and_dump().len(), 0);
}

#[test]
fn disallowed_addresses_get_403_even_with_a_forged_forwarded_for() {
    let body = envelope("ip-1");
    let sig = sign(SECRET, body.as_bytes());
    let h = Hooklake::start_with(&config_text("", "allow_ips = [\"insightiq-sandbox\"]"));
    assert_refused(
        h,
        &[
            (
                "loopback is not InsightIQ",
                403,
                request("POST", "/webhooks/insightiq", &[("Webhook-Signatures", &sig)], body.as_bytes()),
            ),
            (
                "forged X-Forwarded-For from an untrusted peer",
                403,
                request(
                    "POST",
                    "/webhooks/insightiq",
                    &[("Webhook-Signatures", &sig), ("X-Forwarded-For", "54.211.40.75")],
                    body.as_bytes(),
                ),
            ),
        ],
    );
}

#[test]
fn forwarded_for_from_a_trusted_proxy_is_believed() {
    let body = envelope("ip-2");
    let sig = sign(SECRET, body.as_bytes());
    let h = Hooklake::start_with(&config_text(
        "",
        "allow_ips = [\"insightiq-sandbox\"]\ntrusted_proxies = [\"127.0.0.1/32\"]",
    ));
    let (status, answer) =
        h.post_with(body.as_bytes(), &[("Webhook-Signatures", &sig), ("X-Forwarded-For", "10.1.1.1, 54.211.40.75")]);
    assert_eq!(status, 200, "{answer}");
    let (status, _) = h.post_with(
        envelope("ip-3").as_bytes(),
        &[
            ("Webhook-Signatures", &sign(SECRET, envelope("ip-3").as_bytes())),
            ("X-Forwarded-For", "54.211.40.75, 10.1.1.1"),
        ],
    );
    assert_eq!(status, 403, "the right-most untrusted hop decides");
    let rows = h.stop_and_dump();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["source_ip"], "54.211.40.75");
}

#[test]
fn a_client_that_sends_headers_and_stalls_gets_408_and_frees_its_slot() {
    let h = Hooklake::start_with(&config_text("body_timeout = \"1s\"\nmax_connections = 2", ""));
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(h.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /webhooks/insightiq HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nWebhook-Signatures: 00\r\nContent-Length: 100\r\n\r\n{\"ev").unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    for s in &mut stalled {
        let (status, _) = read_response(s);
        assert_eq!(status, 408);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // Both slots are free again: a normal delivery goes through.
    assert_eq!(h.post(envelope("after-stall").as_bytes()).0, 200);
    assert_eq!(h.stop_and_dump().len(), 1);
}

#[test]
fn a_client_that_stalls_mid_headers_is_disconnected() {
    let h = Hooklake::start_with(&config_text("header_timeout = \"1s\"", ""));
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /webhooks/insightiq HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let (status, _) = read_response(&mut s);
    assert!(status == 0 || status == 408, "got {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(h.stop_and_dump().len(), 0);
}

#[test]
fn health_ready_and_metrics_are_served() {
    let h = Hooklake::start();
    assert_eq!(h.get("/health"), (200, "ok\n".into()));
    assert_eq!(h.get("/ready").0, 200);
    h.post(envelope("m-1").as_bytes());
    h.post_with(b"{}", &[("Webhook-Signatures", "00")]);
    let (status, text) = h.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "hooklake_http_requests_total{source=\"insightiq\",status=\"200\"} 1",
        "hooklake_http_requests_total{source=\"insightiq\",status=\"401\"} 1",
        "hooklake_journal_depth 1",
        "hooklake_journal_commit_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert_eq!(h.raw(&request("POST", "/health", &[], b"")).0, 405);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let h = Hooklake::start();
    for i in 0..20 {
        assert_eq!(h.post(envelope(&format!("t-{i}")).as_bytes()).0, 200);
    }
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());
    assert!(h.stderr().contains("stopped"));
    assert_eq!(h.dump().len(), 20);
}

#[test]
fn validate_reports_errors_with_positions_and_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[sources.x]\ntype = \"webhook\"\nlisten = \"nowhere\"\n[transforms.v]\ntype = \"verify\"\ninputs = [\"x\"]\nsecrets = [\"${HOOKLAKE_TEST_UNSET_VAR}\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["validate", "-c"])
        .arg(&path)
        .env_remove("HOOKLAKE_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8(out.stderr).unwrap();
    let file = path.display().to_string();
    assert!(err.contains(&format!("{file}:3:10: sources.x.listen: `nowhere` is not an address")), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:7:12: transforms.v.secrets: environment variable `HOOKLAKE_TEST_UNSET_VAR` is not set"
        )),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");
}

#[test]
fn shipped_config_validates_with_the_binary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(["validate", "-c", concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_full_journal_answers_503_with_retry_after_and_acknowledges_nothing_unstored() {
    let config = config_text("", "").replace("data_dir = \"data\"", "data_dir = \"data\"\nmax_journal_bytes = 1200");
    let h = Hooklake::start_with(&config);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let body = envelope(&format!("full-{i}"));
        let req = request(
            "POST",
            "/webhooks/insightiq",
            &[("Webhook-Signatures", &sign(SECRET, body.as_bytes()))],
            body.as_bytes(),
        );
        let raw = {
            let mut s = TcpStream::connect(h.addr).unwrap();
            s.write_all(&req).unwrap();
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut s, &mut buf).unwrap();
            buf
        };
        let status: u16 = raw.split(' ').nth(1).unwrap().parse().unwrap();
        if status == 503 {
            assert!(raw.to_ascii_lowercase().contains("retry-after: 10"), "{raw}");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 1 && statuses[ok..].iter().all(|s| *s == 503), "{statuses:?}");
    let (ready, why) = h.get("/ready");
    assert_eq!(ready, 503, "a full journal is not ready for traffic");
    assert!(why.contains("journal over its disk budget"), "{why}");
    assert_eq!(h.stop_and_dump().len(), ok, "exactly the acknowledged deliveries are stored");
}

#[test]
fn an_idle_connection_is_closed_after_the_header_timeout() {
    let h = Hooklake::start_with(&config_text("header_timeout = \"1s\"", ""));
    let mut idle = TcpStream::connect(h.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let (status, _) = read_response(&mut idle);
    assert_eq!(status, 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // Others are still served.
    assert_eq!(h.get("/health").0, 200);
}
