use hooklake_plugin::serde_json::{json, Value};
use hooklake_plugin::{transform_document, Type, HOST_COLUMNS};

use super::*;

/// A Content record shaped like the simulator's (and the live API's).
fn content() -> Value {
    json!({
        "id": "dbc4b901-0758-43f6-9955-9ed1ef7da7ee",
        "created_at": "2026-06-05T11:16:40.495041",
        "updated_at": "2026-06-05T11:16:40.495041",
        "user": {"id": "8145c37c", "name": "demo user"},
        "account": {"id": "f9ed1984", "platform_username": "demo.creator", "username": "demo.creator"},
        "work_platform": {"id": "9bb8913b", "name": "Instagram", "logo_url": "https://cdn/logo.png"},
        "external_id": "18094040162248157",
        "title": null,
        "format": "IMAGE",
        "type": "STORY",
        "media_urls": [],
        "duration": null,
        "published_at": "2026-06-04T09:49:23.000000",
        "sponsored": {"is_sponsored": true, "tags": ["#ad"]},
        "collaboration": null,
        "hashtags": ["#travel"],
        "a_field_from_the_future": 1,
        "engagement": {
            "like_count": 3, "view_count": 107.0, "watch_time_in_hours": 2, "avg_watch_time_in_sec": null,
            "additional_info": {"story_navigation": {"tap_exits": 29}}
        }
    })
}

fn event(event: &str, data: Value, resources: Vec<Value>) -> Value {
    json!({"seq": 1, "id": "evt", "event": event, "name": "x", "source": "insightiq",
           "received_at": "2026-12-04T10:00:00.123456Z", "data": data, "resources": resources, "missing": []})
}

fn run(events: Vec<Value>) -> Value {
    let input = Value::Array(events).to_string();
    hooklake_plugin::serde_json::from_slice(&transform_document::<InsightIq>(input.as_bytes())).unwrap()
}

#[test]
fn the_description_is_valid_and_claims_the_right_events() {
    let d = InsightIq::describe();
    assert_eq!(d.check(), Ok(()));
    assert_eq!(d.tables.len(), 11);
    for (name, table) in [
        ("CONTENTS.ADDED", Some("contents")),
        ("CONTENTS.UPDATED", Some("contents")),
        ("CONTENTS.PUBLISH_SUCCESS", None),
        ("CONTENTS_FETCH.SUCCESS", None),
        ("CONTENT-GROUPS.ADDED", Some("content_groups")),
        ("CONTENTS_COMMENTS.UPDATED", Some("comments")),
        ("PROFILES.ADDED", Some("profiles")),
        ("PROFILES_AUDIENCE.UPDATED", Some("audience")),
        ("ACCOUNTS.REMOVED", Some("accounts")),
        ("SESSION.EXPIRED", Some("accounts")),
        ("TRANSACTIONS.ADDED", Some("transactions")),
        ("PAYOUTS.UPDATED", Some("payouts")),
        ("BALANCES.ADDED", Some("balances")),
        ("ACTIVITY-ARTISTS.ADDED", Some("activity_artists")),
        ("ACTIVITY-CONTENTS.ADDED", Some("activity_contents")),
        ("PROFILE_ANALYTICS.FAILURE", None),
    ] {
        assert_eq!(d.table_for(name), table, "{name}");
    }
    for t in &d.tables {
        for c in &t.columns {
            assert!(c.nullable, "{}.{}", t.name, c.name);
            assert!(!HOST_COLUMNS.contains(&c.name.as_str()));
        }
    }
    let contents = d.find_table("contents").unwrap();
    let engagement = contents.columns.iter().find(|c| c.name == "engagement").unwrap();
    assert!(matches!(engagement.ty, Type::Struct(_)));
}

#[test]
fn a_content_becomes_a_flat_readable_row() {
    let out = run(vec![event("CONTENTS.ADDED", json!({"items": ["a"]}), vec![content()])]);
    let row = &out["results"][0]["rows"]["contents"][0];
    assert_eq!(row["id"], "dbc4b901-0758-43f6-9955-9ed1ef7da7ee");
    assert_eq!(row["user_id"], "8145c37c");
    assert_eq!(row["account_username"], "demo.creator");
    assert_eq!(row["work_platform_name"], "Instagram");
    assert_eq!(row["published_at"], "2026-06-04T09:49:23.000000");
    assert_eq!(row["sponsored"], json!({"is_sponsored": true, "tags": ["#ad"]}));
    assert_eq!(row["collaboration"], Value::Null);
    assert_eq!(row["engagement"]["view_count"], 107, "an integral float is an int64");
    assert_eq!(row["engagement"]["watch_time_in_hours"], 2.0);
    assert_eq!(row["engagement"]["like_count"], 3);
    assert_eq!(row["engagement"]["share_count"], Value::Null);
    assert_eq!(row["engagement"]["additional_info"], json!({"story_navigation": {"tap_exits": 29}}));
    assert!(row.get("a_field_from_the_future").is_none());
    assert!(row.get("work_platform").is_none());
    let declared = InsightIq::describe().find_table("contents").unwrap().columns.len();
    assert_eq!(row.as_object().unwrap().len(), declared, "every declared column, nothing else");
}

#[test]
fn wrong_types_make_an_error_naming_the_field() {
    let mut bad = content();
    bad["engagement"]["like_count"] = json!("12");
    let mut not_object = content();
    not_object["user"] = json!("someone");
    let mut bad_list = content();
    bad_list["hashtags"] = json!(["#a", 7]);
    let out = run(vec![
        event("CONTENTS.ADDED", json!({}), vec![content(), bad]),
        event("CONTENTS.ADDED", json!({}), vec![json!("abc")]),
        event("CONTENTS.UPDATED", json!({}), vec![not_object]),
        event("CONTENTS.UPDATED", json!({}), vec![bad_list]),
        json!(42),
        json!({"event": "CONTENTS.ADDED", "resources": {"not": "a list"}}),
    ]);
    let errors: Vec<&str> = out["results"].as_array().unwrap().iter().map(|r| r["error"].as_str().unwrap()).collect();
    assert_eq!(
        errors[0],
        "contents resources[1] (id dbc4b901-0758-43f6-9955-9ed1ef7da7ee): engagement.like_count is a string (\"12\"), \
         not int64"
    );
    assert_eq!(errors[1], "contents resources[0]: the resource is a string (\"abc\"), not an object");
    assert!(errors[2].ends_with("user is a string (\"someone\"), not an object"), "{}", errors[2]);
    assert!(errors[3].ends_with("hashtags[1] is a number (7), not string"), "{}", errors[3]);
    assert!(errors[4].contains("not an object"));
    assert!(errors[5].contains("resources is an object, not a list"));
}

#[test]
fn skipped_and_empty_events_give_no_rows() {
    let mut skipped = event("CONTENTS.ADDED", json!({}), vec![]);
    skipped["skipped"] = json!("data.items is missing");
    let no_resources = event("PROFILES.ADDED", json!({"profile_id": "p"}), vec![]);
    let unclaimed = event("CONTENTS.PUBLISH_SUCCESS", json!({}), vec![json!({"id": "x"})]);
    let out = run(vec![skipped, no_resources, unclaimed]);
    assert_eq!(out, json!({"results": [{"rows": {}}, {"rows": {}}, {"rows": {}}]}));
}

#[test]
fn audience_takes_the_account_of_the_event() {
    let audience = json!({
        "id": "acc-from-record", "account": {"id": "acc-from-record"},
        "countries": [{"code": "US", "value": 40.5}], "cities": [{"name": "Paris, FR", "value": 10}],
        "gender_age_distribution": [{"gender": "MALE", "age_range": "18-24", "value": 1.25}],
        "gender_distribution": null
    });
    let out = run(vec![event("PROFILES_AUDIENCE.UPDATED", json!({"account_id": "acc-1"}), vec![audience])]);
    let row = &out["results"][0]["rows"]["audience"][0];
    assert_eq!(row["account_id"], "acc-1");
    assert_eq!(row["countries"], json!([{"code": "US", "value": 40.5}]));
    assert_eq!(row["cities"], json!([{"name": "Paris, FR", "value": 10.0}]));
}

#[test]
fn several_resources_give_several_rows_in_order() {
    let comment = |id: &str| {
        json!({"id": id, "content": {"id": "c1", "url": "u", "published_at": "2026-01-01T00:00:00.000000"},
                                    "like_count": 2, "reply_count": null})
    };
    let out = run(vec![event("CONTENTS_COMMENTS.ADDED", json!({}), vec![comment("a"), comment("b")])]);
    let rows = out["results"][0]["rows"]["comments"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], "b");
    assert_eq!(rows[0]["content_id"], "c1");
}
