//! The tables: for each, the events routed to it and its columns, each column with the resource field it comes
//! from. One list drives both the describe document and the mapping, so they cannot drift apart.
//!
//! Column types follow `spec/lake.md`: ids and enums are strings, timestamps `timestamp` (the API's string is
//! passed on as is; the host parses it), counts `int64`, money, rates and durations in hours `float64`, nested
//! records structs, free-form objects `json`. Every column is nullable: the API sends `null` for what it does not
//! know, and adds fields over time (fields not listed here are dropped).

use hooklake_plugin::{col, Column, Type};

/// A column and where its value comes from.
pub struct Mapped {
    /// The declared column.
    pub column: Column,
    /// The resource field: a key, or a dotted path into nested objects (`user.id`).
    pub path: &'static str,
}

/// A table with its routes and columns.
pub struct TableSpec {
    /// The table name.
    pub name: &'static str,
    /// The event names or `FAMILY.*` patterns routed to it.
    pub events: &'static [&'static str],
    /// Its columns, in order.
    pub columns: Vec<Mapped>,
}

const S: Type = Type::String;
const B: Type = Type::Bool;
const I: Type = Type::Int64;
const F: Type = Type::Float64;
const T: Type = Type::Timestamp;
const J: Type = Type::Json;

/// A column named like its source field.
fn field(name: &'static str, ty: Type) -> Mapped {
    Mapped { column: col(name, ty), path: name }
}

/// A column from a nested field.
fn from(name: &'static str, path: &'static str, ty: Type) -> Mapped {
    Mapped { column: col(name, ty), path }
}

fn strings() -> Type {
    Type::list(S)
}

fn structure(fields: &[(&str, Type)]) -> Type {
    Type::structure(fields.iter().map(|(n, t)| col(n, t.clone())).collect())
}

/// Fields every resource has, with `user`, `account` and `work_platform` flattened.
fn common(extra: Vec<Mapped>) -> Vec<Mapped> {
    let mut columns = vec![
        field("id", S),
        field("created_at", T),
        field("updated_at", T),
        from("user_id", "user.id", S),
        from("user_name", "user.name", S),
        from("account_id", "account.id", S),
        from("account_platform_username", "account.platform_username", S),
        from("account_username", "account.username", S),
        from("work_platform_id", "work_platform.id", S),
        from("work_platform_name", "work_platform.name", S),
    ];
    columns.extend(extra);
    columns
}

/// `engagement` of contents and content groups: typed counters, the rest in `additional_info`.
fn engagement() -> Type {
    structure(&[
        ("like_count", I),
        ("dislike_count", I),
        ("comment_count", I),
        ("impression_organic_count", I),
        ("reach_organic_count", I),
        ("impression_paid_count", I),
        ("reach_paid_count", I),
        ("save_count", I),
        ("view_count", I),
        ("replay_count", I),
        ("share_count", I),
        ("repost_count", I),
        ("click_count", I),
        ("unsubscribe_count", I),
        ("spam_report_count", I),
        ("watch_time_in_hours", F),
        ("avg_watch_time_in_sec", F),
        ("email_open_rate", F),
        ("email_click_rate", F),
        ("additional_info", J),
    ])
}

/// Sync state of one product of an account (`data.identity`, `data.engagement`…).
fn sync() -> Type {
    structure(&[("status", S), ("last_sync_at", T), ("monitor_type", S)])
}

/// Every table of the plugin.
pub fn tables() -> Vec<TableSpec> {
    vec![
        TableSpec {
            name: "contents",
            // Not `CONTENTS.*`: that would also claim CONTENTS.PUBLISH_*, which carry no content.
            events: &["CONTENTS.ADDED", "CONTENTS.UPDATED"],
            columns: common(vec![
                field("external_id", S),
                field("title", S),
                field("format", S),
                field("type", S),
                field("url", S),
                field("media_url", S),
                field("media_urls", strings()),
                field("duration", I),
                field("description", S),
                field("visibility", S),
                field("thumbnail_url", S),
                field("persistent_thumbnail_url", S),
                field("published_at", T),
                field("platform_profile_id", S),
                field("platform_profile_name", S),
                field("sponsored", structure(&[("is_sponsored", B), ("tags", strings())])),
                field("collaboration", structure(&[("has_collaborators", B)])),
                field("is_owned_by_platform_user", B),
                field("hashtags", strings()),
                field("mentions", strings()),
                field("content_tags", J),
                field("authors", J),
                field("audience", J),
                field("engagement", engagement()),
            ]),
        },
        TableSpec {
            name: "content_groups",
            events: &["CONTENT-GROUPS.*"],
            columns: common(vec![
                field("external_id", S),
                field("title", S),
                field("format", S),
                field("type", S),
                field("url", S),
                field("description", S),
                field("visibility", S),
                field("thumbnail_url", S),
                field("published_at", T),
                field("platform_profile_id", S),
                field("platform_profile_name", S),
                field("item_count", I),
                field("engagement", engagement()),
            ]),
        },
        TableSpec {
            name: "comments",
            events: &["CONTENTS_COMMENTS.*"],
            columns: common(vec![
                field("published_at", T),
                from("content_id", "content.id", S),
                from("content_url", "content.url", S),
                from("content_published_at", "content.published_at", T),
                field("external_id", S),
                field("text", S),
                field("commenter_username", S),
                field("commenter_display_name", S),
                field("commenter_id", S),
                field("commenter_profile_url", S),
                field("like_count", I),
                field("reply_count", I),
            ]),
        },
        TableSpec {
            name: "profiles",
            events: &["PROFILES.*"],
            columns: common(vec![
                field("platform_username", S),
                field("full_name", S),
                field("url", S),
                field("introduction", S),
                field("image_url", S),
                field("external_id", S),
                field("gender", S),
                field("country", S),
                field("platform_profile_name", S),
                field("platform_profile_id", S),
                field("date_of_birth", Type::Date),
                field("is_verified", B),
                field("is_business", B),
                field("category", S),
                field(
                    "reputation",
                    structure(&[
                        ("follower_count", I),
                        ("following_count", I),
                        ("subscriber_count", I),
                        ("content_count", I),
                        ("content_group_count", I),
                        ("like_count", I),
                        ("watch_time_in_hours", F),
                    ]),
                ),
                field("emails", Type::list(structure(&[("type", S), ("email_id", S)]))),
                field("phone_numbers", Type::list(structure(&[("type", S), ("phone_number", S)]))),
                field("addresses", J),
            ]),
        },
        TableSpec {
            name: "accounts",
            events: &["ACCOUNTS.*", "SESSION.EXPIRED"],
            columns: common(vec![
                field("platform_username", S),
                field("username", S),
                field("profile_pic_url", S),
                field("status", S),
                field("platform_profile_name", S),
                field("platform_profile_id", S),
                field(
                    "data",
                    structure(&[
                        ("identity", sync()),
                        ("engagement", sync()),
                        ("income", sync()),
                        ("audience", sync()),
                        ("activity", sync()),
                    ]),
                ),
            ]),
        },
        TableSpec {
            name: "audience",
            events: &["PROFILES_AUDIENCE.*"],
            // `account_id` is overwritten with the event's `data.account_id` (see `lib.rs`).
            columns: common(vec![
                field("countries", Type::list(structure(&[("code", S), ("value", F)]))),
                field("cities", Type::list(structure(&[("name", S), ("value", F)]))),
                field(
                    "gender_age_distribution",
                    Type::list(structure(&[("gender", S), ("age_range", S), ("value", F)])),
                ),
                field("gender_distribution", J),
            ]),
        },
        TableSpec {
            name: "transactions",
            // Social and commerce transactions share the table; fields one of them lacks are null.
            events: &["TRANSACTIONS.*"],
            columns: common(vec![
                field("amount", F),
                field("currency", S),
                field("type", S),
                field("status", S),
                field("cpm", F),
                field("fee", F),
                field("net_amount", F),
                field("external_id", S),
                field("transaction_at", T),
                field("payout_id", S),
                field("description", S),
                field("platform_profile_id", S),
            ]),
        },
        TableSpec {
            name: "payouts",
            events: &["PAYOUTS.*"],
            columns: common(vec![
                field("amount", F),
                field("currency", S),
                field("status", S),
                field("payout_interval", S),
                field("payout_at", T),
                field("external_id", S),
                field("bank_account", S),
                field("platform_profile_id", S),
            ]),
        },
        TableSpec {
            name: "balances",
            events: &["BALANCES.*"],
            columns: common(vec![
                field("available_amount", F),
                field("pending_amount", F),
                field("currency", S),
                field("balance_at", T),
                field("platform_profile_id", S),
            ]),
        },
        TableSpec {
            name: "activity_artists",
            events: &["ACTIVITY-ARTISTS.*"],
            columns: common(vec![
                field("artist_name", S),
                field("external_id", S),
                field("url", S),
                field("image_url", S),
                field("genres", strings()),
                field("activity_type", S),
                field("popularity", I),
            ]),
        },
        TableSpec {
            name: "activity_contents",
            events: &["ACTIVITY-CONTENTS.*"],
            columns: common(vec![
                field("title", S),
                field("external_id", S),
                field("format", S),
                field("type", S),
                field("url", S),
                field("thumbnail_url", S),
                field("duration", I),
                field("artists", Type::list(structure(&[("name", S), ("external_id", S)]))),
                field("activity_type", S),
                field("activity_at", T),
            ]),
        },
    ]
}
