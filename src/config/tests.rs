//! Config validation: the messages users see are snapshots here, so a change to them is a visible diff.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::transforms::verify::Scheme;

fn parse_with(src: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    Config::parse(Path::new("config.toml"), src, &Env::Map(&map))
}

fn errors(src: &str) -> String {
    parse_with(src, &[]).expect_err("config should be invalid").to_string()
}

const GOOD: &str = r#"
data_dir = "state"

[sources.insightiq]
type = "webhook"
listen = "127.0.0.1:0"

[transforms.verify]
type = "verify"
inputs = ["insightiq"]
secrets = ["${SECRET}", "older"]
allow_ips = ["insightiq-sandbox", "10.0.0.0/8"]

[transforms.dedup]
type = "dedup"
inputs = ["verify"]
ttl = "2d"
"#;

#[test]
fn shipped_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let src = std::fs::read_to_string(&path).expect("config.toml is shipped");
    let config = Config::parse(&path, &src, &Env::Empty).expect("shipped config.toml must validate");
    assert_eq!(config.sources.len(), 1);
    assert!(config.transforms.iter().any(|t| matches!(t.kind, TransformConfig::Verify(_))));
    assert!(config.transforms.iter().any(|t| matches!(t.kind, TransformConfig::Dedup(_))));
}

#[test]
fn valid_config_is_parsed_with_defaults_and_interpolation() {
    let c = parse_with(GOOD, &[("SECRET", "s3cr3t")]).expect("valid");
    assert_eq!(c.data_dir, Path::new("state"));
    let SourceConfig::Webhook(w) = &c.sources[0].kind;
    assert_eq!(w.path, "/webhooks/insightiq");
    assert_eq!(w.max_body, 1 << 20);
    let TransformConfig::Verify(v) = &c.transforms[0].kind else { panic!("verify first") };
    assert_eq!(v.secrets[0].expose(), "s3cr3t");
    assert!(matches!(v.scheme, Scheme::InsightIq { .. }));
    let allow = v.allow_ips.as_ref().expect("allow list");
    assert!(allow.contains("54.211.40.75".parse().expect("ip")));
    assert!(allow.contains("10.9.9.9".parse().expect("ip")));
    assert!(!allow.contains("3.211.223.93".parse().expect("ip")));
    let TransformConfig::Dedup(d) = &c.transforms[1].kind else { panic!("dedup second") };
    assert_eq!(d.ttl, Duration::from_secs(2 * 86_400));
    assert_eq!(d.field, "id");
}

#[test]
fn every_error_is_reported_at_once_with_positions() {
    let src = r#"data_dir = "d"
dat_dir = "typo"

[sources.insightiq]
type = "webhook"
lisen = "0.0.0.0:80"
max_body = "1 MiBs"

[sources.other]
type = "webhok"

[transforms.verify]
type = "verify"
inputs = ["insightiqq"]
secrets = ["${NOT_SET}"]
scheme = "sha1"

[transforms.dedup]
type = "dedup"
inputs = ["verify", "nowhere"]
ttl = "1h"
"#;
    insta_like(
        &errors(src),
        "config.toml:2:1: unknown field `dat_dir` in the config; did you mean `data_dir`?
config.toml:6:1: unknown field `lisen` in sources.insightiq; did you mean `listen`?
config.toml:7:12: sources.insightiq.max_body: `1 MiBs` has no known unit; write e.g. 1MiB, 512KiB or 10GB
config.toml:10:8: sources.other: unknown source type `webhok`; did you mean `webhook`? (known: webhook)
config.toml:14:11: `verify` reads from `insightiqq`, which names no source or transform; did you mean `insightiq`?
config.toml:15:12: transforms.verify.secrets: environment variable `NOT_SET` is not set (give a default with ${NOT_SET:-…})
config.toml:16:10: transforms.verify.scheme: unknown value `sha1`; expected one of: insightiq, hmac, standard
config.toml:20:11: admission stage `dedup` takes exactly one input
config.toml:20:21: `dedup` reads from `nowhere`, which names no source or transform
config.toml:21:7: transforms.dedup.ttl must be at least 6h: InsightIQ retries for about 6 hours, so a shorter TTL lets retries through as new events",
    );
}

/// Compares a multi-line snapshot and prints both sides on mismatch.
fn insta_like(got: &str, want: &str) {
    assert!(got == want, "snapshot mismatch\n--- got ---\n{got}\n--- want ---\n{want}\n");
}

#[test]
fn cycles_and_bad_wiring_are_reported() {
    let src = r#"
[sources.hook]
type = "webhook"
inputs = ["a"]

[transforms.a]
type = "verify"
inputs = ["b"]
secrets = ["k"]

[transforms.b]
type = "dedup"
inputs = ["a"]
"#;
    insta_like(
        &errors(src),
        "config.toml:4:11: source `hook` cannot have inputs
config.toml:6:13: cycle: a → b → a",
    );
}

#[test]
fn admission_stages_must_form_one_chain() {
    let src = r#"
[sources.hook]
type = "webhook"

[transforms.v1]
type = "verify"
inputs = ["hook"]
secrets = ["k"]

[transforms.v2]
type = "verify"
inputs = ["hook"]
secrets = ["k"]
"#;
    let e = errors(src);
    assert!(e.contains("admission stages form one chain per source, but `hook` feeds `v1` and `v2`"), "{e}");
}

#[test]
fn toml_syntax_errors_have_positions() {
    let e = errors("[sources.x]\ntype = \"webhook\n");
    assert!(e.starts_with("config.toml:2:"), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
}

#[test]
fn wrong_types_are_named() {
    let e = errors("[sources.hook]\ntype = \"webhook\"\nmax_connections = \"many\"\npath = 5\n");
    insta_like(
        &e,
        "config.toml:3:19: sources.hook.max_connections must be a non-negative integer
config.toml:4:8: sources.hook.path must be a string, not an integer",
    );
}

#[test]
fn secrets_never_appear_in_errors() {
    // A standard secret that is not base64: the message names the field, not the value.
    let src = r#"
[sources.hook]
type = "webhook"

[transforms.v]
type = "verify"
inputs = ["hook"]
scheme = "standard"
secrets = ["whsec_TOP-SECRET-VALUE!"]
"#;
    let e = errors(src);
    assert!(!e.contains("TOP-SECRET"), "{e}");
    assert!(e.contains("config.toml:9:12: transforms.v.secrets: a Standard Webhooks secret"), "{e}");
    // And a valid config's Debug output shows *** for secrets.
    let c = parse_with(GOOD, &[("SECRET", "hunter2")]).expect("valid");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn hmac_scheme_needs_a_header_and_standard_rejects_one() {
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[transforms.v]\ntype=\"verify\"\ninputs=[\"h\"]\nscheme=\"hmac\"\nsecrets=[\"k\"]\n",
    );
    assert!(e.contains("transforms.v needs `header` with scheme = \"hmac\""), "{e}");
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[transforms.v]\ntype=\"verify\"\ninputs=[\"h\"]\nscheme=\"standard\"\nheader=\"x\"\nsecrets=[\"whsec_AAAA\"]\n",
    );
    assert!(e.contains("header does not apply to scheme = \"standard\""), "{e}");
}

#[test]
fn unknown_ip_set_is_suggested() {
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[transforms.v]\ntype=\"verify\"\ninputs=[\"h\"]\nsecrets=[\"k\"]\nallow_ips=[\"insightiq-sandbx\"]\n",
    );
    assert!(
        e.contains("`insightiq-sandbx` is neither a CIDR nor a named set; did you mean `insightiq-sandbox`?"),
        "{e}"
    );
}

#[test]
fn missing_secrets_and_empty_secret_are_errors() {
    let e = errors("[sources.h]\ntype=\"webhook\"\n[transforms.v]\ntype=\"verify\"\ninputs=[\"h\"]\n");
    assert!(e.contains("transforms.v needs `secrets`"), "{e}");
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[transforms.v]\ntype=\"verify\"\ninputs=[\"h\"]\nsecrets=[\"${E:-}\"]\n",
    );
    assert!(e.contains("a secret is empty"), "{e}");
}

#[test]
fn relative_data_dir_resolves_against_the_config_folder() {
    let c =
        Config::parse(Path::new("/etc/hooklake/config.toml"), "data_dir = \"state\"\n", &Env::Empty).expect("valid");
    assert_eq!(c.data_dir, Path::new("/etc/hooklake/state"));
    let c = Config::parse(Path::new("/etc/hooklake/config.toml"), "data_dir = \"/var/lib/hl\"\n", &Env::Empty)
        .expect("valid");
    assert_eq!(c.data_dir, Path::new("/var/lib/hl"));
}

#[test]
fn an_input_naming_an_invalid_stage_is_not_reported_twice() {
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[transforms.d]\ntype=\"dedupe\"\ninputs=[\"h\"]\n[sinks.raw]\ntype=\"parquet\"\ninputs=[\"d\"]\nurl=\"memory://\"\n",
    );
    insta_like(
        &e,
        "config.toml:4:6: transforms.d: unknown transform type `dedupe`; did you mean `dedup`? (known: verify, dedup, enrich, wasm)",
    );
}

#[test]
fn two_sinks_at_one_location_are_refused() {
    let e = errors(
        "[sources.h]\ntype=\"webhook\"\n[sinks.a]\ntype=\"parquet\"\ninputs=[\"h\"]\nurl=\"file://lake\"\n[sinks.b]\ntype=\"parquet\"\ninputs=[\"h\"]\nurl=\"file://lake\"\n",
    );
    insta_like(
        &e,
        "config.toml:7:8: sinks `a` and `b` both write the `events` table at the same lake location; each event would land twice",
    );
}

#[test]
fn component_names_are_plain_identifiers() {
    let e = errors("[sources.\"in:sight\"]\ntype=\"webhook\"\n");
    assert!(e.contains("a name may only hold letters, digits, `_` and `-`"), "{e}");
}

#[test]
fn the_public_example_key_is_refused_off_loopback() {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")).expect("shipped");
    let e =
        parse_with(&shipped, &[("HOOKLAKE_LISTEN", "0.0.0.0:8080")]).expect_err("public key on 0.0.0.0").to_string();
    assert!(e.contains("uses the example signing key from the shipped config"), "{e}");
    let real = parse_with(&shipped, &[("HOOKLAKE_LISTEN", "0.0.0.0:8080"), ("INSIGHTIQ_CLIENT_SECRET", "real")]);
    assert!(real.is_ok(), "{:?}", real.err().map(|e| e.to_string()));
    let local = parse_with(&shipped, &[]);
    assert!(
        local.is_ok(),
        "localhost with the example key is the quick start: {:?}",
        local.err().map(|e| e.to_string())
    );
}

#[test]
fn enrich_settings_are_checked_and_need_the_api_table() {
    let src = format!(
        r#"{GOOD}
[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
max_ids = 101
income = "both"
max_wait = "soon"

[transforms.enrich.paths]
contents = "v2/contents"
profiles = "/v2/profiles"
contentz = "/x"
"#
    );
    let got = parse_with(&src, &[("SECRET", "s")]).expect_err("invalid").to_string();
    insta_like(
        &got,
        "config.toml:19:13: `enrich` calls InsightIQ: add an `[api.insightiq]` table (client_id, client_secret)
config.toml:22:11: transforms.enrich.max_ids = 101 is out of range (1..=100)
config.toml:23:10: transforms.enrich.income: unknown value `both`; expected one of: auto, social, commerce
config.toml:24:12: transforms.enrich.max_wait: `soon` is not a duration; write e.g. 500ms, 60s, 5m, 6h or 7d
config.toml:27:12: transforms.enrich.paths.contents must start with `/`
config.toml:28:12: transforms.enrich.paths.profiles must contain `{id}`
config.toml:29:1: unknown field `contentz` in transforms.enrich.paths; did you mean `contents`?",
    );
}

/// [`GOOD`] with the InsightIQ API and an `enrich` stage reading `dedup`, then `rest`.
fn with_enrich(rest: &str) -> String {
    format!(
        r#"{GOOD}
[api.insightiq]
base_url = "http://127.0.0.1:7300"
client_id = "id"
client_secret = "secret"

[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
{rest}"#
    )
}

#[test]
fn enrich_must_read_the_journal_and_gets_its_defaults() {
    let src = with_enrich(
        r#"
[transforms.again]
type = "enrich"
inputs = ["enrich"]
"#,
    );
    let got = parse_with(&src, &[("SECRET", "s")]).expect_err("invalid").to_string();
    assert!(
        got.contains("`again` reads the journal, so it must read from a webhook source or an admission stage"),
        "{got}"
    );
    let ok =
        parse_with(&src.replace("inputs = [\"enrich\"]", "inputs = [\"dedup\"]"), &[("SECRET", "s")]).expect("valid");
    let TransformConfig::Enrich(e) = &ok.transforms[2].kind else { panic!("enrich third") };
    assert_eq!((e.max_ids, e.max_wait, e.retry_for), (100, Duration::from_millis(500), Duration::from_secs(3600)));
    assert_eq!(e.path(crate::transforms::enrich::plan::Endpoint::Contents), "/v1/social/contents/search");
}

#[test]
fn the_webhook_watcher_needs_its_url_and_reactivation_needs_the_watcher() {
    let api = |lines: &str| format!("[api.insightiq]\nbase_url = \"http://127.0.0.1:1\"\n{lines}\n");
    insta_like(
        &errors(&api("webhook_watch = \"1m\"")),
        "config.toml:3:17: api.insightiq: `webhook_watch` and `auto_reactivate` look after the webhook at `webhook_url`; set `webhook_url`",
    );
    insta_like(
        &errors(&api("webhook_url = \"https://h/x\"\nauto_reactivate = true")),
        "config.toml:4:19: api.insightiq: `auto_reactivate` acts when `webhook_watch` finds the webhook inactive; set `webhook_watch` (e.g. \"5m\")",
    );
    insta_like(
        &errors(&api("webhook_url = \"https://h/x\"\nwebhook_watch = \"soon\"")),
        "config.toml:4:17: api.insightiq.webhook_watch: `soon` is not a duration; write e.g. 500ms, 60s, 5m, 6h or 7d",
    );
    let ok = api("webhook_url = \"https://h/x\"\nwebhook_watch = \"5m\"\nauto_reactivate = true");
    let config = Config::parse(Path::new("config.toml"), &ok, &Env::empty()).unwrap();
    let a = config.api.unwrap();
    assert_eq!(
        (a.webhook_url.as_deref(), a.webhook_watch, a.auto_reactivate),
        (Some("https://h/x"), Some(Duration::from_secs(300)), true)
    );
}

#[test]
fn wasm_stage_limits_and_workers_are_checked_and_defaulted() {
    let src = with_enrich(
        r#"
[transforms.map]
type = "wasm"
inputs = ["enrich"]
plugins = ["plugins/insightiq.wasm"]
workers = 0
memory = "1KiB"
"#,
    );
    // Loading the plugin writes compiled code under data_dir: keep it out of the source tree.
    let data_dir = tempfile::tempdir().unwrap();
    let src = src.replace("data_dir = \"state\"", &format!("data_dir = {:?}", data_dir.path()));
    let got = parse_with(&src, &[("SECRET", "s")]).expect_err("invalid").to_string();
    insta_like(
        &got,
        "config.toml:32:11: transforms.map.workers = 0 is out of range (1..=256)
config.toml:33:10: transforms.map.memory must be between 64KiB and 4GiB",
    );
    let ok =
        parse_with(&src.replace("workers = 0\nmemory = \"1KiB\"\n", "batch = 8\n"), &[("SECRET", "s")]).expect("valid");
    let TransformConfig::Wasm(w) = &ok.transforms[3].kind else { panic!("wasm fourth") };
    assert_eq!((w.batch, w.workers), (8, crate::parallel::cores()));
    let three = parse_with(&src.replace("workers = 0\nmemory = \"1KiB\"\n", "workers = 3\n"), &[("SECRET", "s")])
        .expect("valid");
    let TransformConfig::Wasm(w) = &three.transforms[3].kind else { panic!("wasm fourth") };
    assert_eq!(w.workers, 3);
}

#[test]
fn the_journal_cache_is_bounded_and_defaults_to_64_mib() {
    let ok = parse_with(GOOD, &[("SECRET", "s")]).expect("valid");
    assert_eq!(ok.journal.cache, 64 << 20);
    let set = parse_with(&format!("{GOOD}\n[journal]\ncache = \"256MiB\"\n"), &[("SECRET", "s")]).expect("valid");
    assert_eq!(set.journal.cache, 256 << 20);
    let got = parse_with(&format!("{GOOD}\n[journal]\ncache = \"1KiB\"\n"), &[("SECRET", "s")]).expect_err("too small");
    let line = GOOD.lines().count() + 3;
    insta_like(&got.to_string(), &format!("config.toml:{line}:9: journal.cache must be between 1MiB and 64GiB"));
}
