//! `hooklake webhooks …` against the simulator (a separate `hooklake simulate` process, real HTTP), and the
//! watcher of `hooklake run` that notices a deactivated webhook and re-enables it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hooklake, Simulator};
use serde_json::Value;

/// The test pipeline plus `[api.insightiq]` pointing at the simulator, with `api_extra` lines.
fn config(sim: SocketAddr, secret: &str, api_extra: &str) -> String {
    format!(
        "{}\n[api.insightiq]\nbase_url = \"http://{sim}\"\nclient_id = \"demo-client\"\nclient_secret = \"{secret}\"\n{api_extra}\n",
        common::config_text("", "").replace(common::SECRET, "example-secret")
    )
}

fn webhooks(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_hooklake")).arg("webhooks").args(args).arg("-c").arg(config).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn every_command_works_against_the_api_and_errors_carry_code_message_and_request_id() {
    let sim = Simulator::start(&["--rate-limit", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let url = "http://127.0.0.1:9/webhooks/insightiq";
    std::fs::write(&cfg, config(sim.addr, "example-secret", &format!("webhook_url = \"{url}\""))).unwrap();

    let (code, out, err) = webhooks(&cfg, &["list"]);
    assert_eq!((code, out.lines().count()), (0, 1), "only the header: {out}{err}");
    let (code, out, err) = webhooks(&cfg, &["ensure", "--json", "--events", "CONTENTS.ADDED,CONTENTS.UPDATED"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("created"), "{err}");
    let created = json_of(&out);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], url);
    assert_eq!(created["events"], serde_json::json!(["CONTENTS.ADDED", "CONTENTS.UPDATED"]));
    let (code, out, err) = webhooks(&cfg, &["ensure", "--json", "--events", "CONTENTS.UPDATED,CONTENTS.ADDED"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(json_of(&out)["id"], id.as_str(), "ensure is idempotent");

    let (code, out, _) = webhooks(
        &cfg,
        &["create", "--url", "http://127.0.0.1:9/other", "--events", "ACCOUNTS.CONNECTED", "--name", "second"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("ID") && out.contains("http://127.0.0.1:9/other") && out.contains("second"), "a table: {out}");
    let (_, out, _) = webhooks(&cfg, &["list", "--json"]);
    let listed = json_of(&out);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let second =
        listed.as_array().unwrap().iter().find(|w| w["name"] == "second").unwrap()["id"].as_str().unwrap().to_owned();
    let (code, out, _) = webhooks(&cfg, &["update", &second, "--active", "false", "--name", "renamed", "--json"]);
    assert_eq!(code, 0);
    let updated = json_of(&out);
    assert_eq!((updated["is_active"].as_bool(), updated["name"].as_str()), (Some(false), Some("renamed")));
    assert_eq!(updated["events"], serde_json::json!(["ACCOUNTS.CONNECTED"]), "options left out keep their value");
    let (code, out, _) = webhooks(&cfg, &["get", &second, "--json"]);
    assert_eq!((code, json_of(&out)["name"].as_str()), (0, Some("renamed")));
    let (code, _, _) = webhooks(&cfg, &["delete", &second]);
    assert_eq!(code, 0);

    // Errors: InsightIQ's error_code, message and request-id, and never the secret.
    let (code, _, err) = webhooks(&cfg, &["get", &second]);
    assert_ne!(code, 0);
    assert!(err.contains("404") && err.contains("incorrect_webhook_id") && err.contains("request-id"), "{err}");
    let (code, _, err) = webhooks(&cfg, &["create", "--url", "http://x/y"]);
    assert_ne!(code, 0, "events are required: {err}");
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, config(sim.addr, "a-wrong-secret-value", "")).unwrap();
    let (code, out, err) = webhooks(&wrong, &["list"]);
    assert_ne!(code, 0);
    assert!(err.contains("401") && err.contains("request-id"), "{err}");
    assert!(!out.contains("a-wrong-secret-value") && !err.contains("a-wrong-secret-value"), "{err}");

    let (code, out, err) = webhooks(&cfg, &["send", "--event", "CONTENTS.ADDED", "--data", r#"{"account_id":"a"}"#]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_start().starts_with('{'), "the API's answer: {out}");
    let (code, out, _) = webhooks(&cfg, &["delete", &id]);
    assert_eq!((code, out.trim()), (0, format!("deleted {id}").as_str()));
}

fn wait_for(what: &str, h: &Hooklake, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what} did not happen:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_notices_a_deactivated_webhook_and_re_enables_it_when_told_to() {
    let sim = Simulator::start(&["--rate-limit", "100"]);
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/webhooks/insightiq");
    let api = format!("webhook_url = \"{url}\"\nwebhook_watch = \"200ms\"\nauto_reactivate = false");
    let text = config(sim.addr, "example-secret", &api)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    let h = Hooklake::start_with(&text);
    let (code, out, err) = webhooks(&h.config, &["ensure", "--json"]);
    assert_eq!(code, 0, "{err}");
    let id = json_of(&out)["id"].as_str().unwrap().to_owned();
    // Before `ensure`, the watcher may have seen no webhook yet: wait until it sees the active one.
    wait_for("the webhook seen active", &h, || h.metric("hooklake_webhook_inactive") == Some(0.0));

    // InsightIQ gives up on the webhook: reported, not repaired (auto_reactivate = false).
    sim.deactivate(&id);
    wait_for("the inactive webhook noticed", &h, || h.metric("hooklake_webhook_inactive") == Some(1.0));
    let (status, ready) = h.get("/ready");
    assert_eq!(status, 200);
    assert!(ready.contains("webhook is inactive"), "{ready}");
    assert!(h.stderr().contains(&id), "the error log names the webhook:\n{}", h.stderr());
    let (code, _, _) = webhooks(&h.config, &["update", &id, "--active", "true"]);
    assert_eq!(code, 0);
    wait_for("the webhook seen active again", &h, || h.metric("hooklake_webhook_inactive") == Some(0.0));

    // A mock notification from InsightIQ reaches this hooklake, signed, and is stored.
    let (code, _, err) =
        webhooks(&h.config, &["send", "--event", "CONTENTS.ADDED", "--data", r#"{"account_id":"a","items":["c1"]}"#]);
    assert_eq!(code, 0, "{err}");
    wait_for("the mock notification stored", &h, || {
        h.metric("hooklake_events_accepted_total{source=\"insightiq\"}") == Some(1.0)
    });
    let (code, h) = h.stop();
    assert_eq!(code, 0, "{}", h.stderr());

    // With auto_reactivate = true, the watcher re-enables it itself.
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config).unwrap().replace("auto_reactivate = false", "auto_reactivate = true"),
    )
    .unwrap();
    let h2 = Hooklake::spawn_in(&h.dir);
    wait_for("a first check", &h2, || h2.metric("hooklake_webhook_checks_total").unwrap_or(0.0) >= 1.0);
    sim.deactivate(&id);
    wait_for("the re-enable", &h2, || h2.metric("hooklake_webhook_reactivations_total").unwrap_or(0.0) >= 1.0);
    let (_, out, _) = webhooks(&h2.config, &["get", &id, "--json"]);
    assert_eq!(json_of(&out)["is_active"], true);
    let (code, h2) = h2.stop();
    assert_eq!(code, 0, "{}", h2.stderr());
}
