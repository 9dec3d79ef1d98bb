//! The records the simulated API returns, one builder per resource kind (`spec/insightiq.md`, "Resources").
//!
//! A record is a pure function of (kind, id): the same id gives the same JSON in every run and process, and its
//! `id` is the id asked for. Every documented field is present and `null` when "unknown" (decided by the id's
//! hash); enums now and then take a value newer than the docs (`CAROUSEL_V2`), because both happen live.
//! Timestamps are naive ISO 8601 with microseconds, in 2026. Percentages are 0–100.

use serde_json::{Map, Value, json};

use super::dice::{DAY_MICROS, Dice, EPOCH_2026_MICROS, TimeFormat, format_time, hash};

/// The resource kinds the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A post, video, story… (`/v1/social/contents/search`).
    Content,
    /// A playlist, album… (`/v1/social/content-groups/search`).
    ContentGroup,
    /// Social income (`/v1/social/income/transactions/search`).
    SocialTransaction,
    /// Commerce income (`/v1/commerce/income/transactions/search`).
    CommerceTransaction,
    /// Social payout (`/v1/social/income/payouts/search`).
    SocialPayout,
    /// Commerce payout (`/v1/commerce/income/payouts/search`).
    CommercePayout,
    /// Commerce balance (`/v1/commerce/income/balances/search`).
    Balance,
    /// A listened-to artist (`/v1/media/activity/artists/search`).
    ActivityArtist,
    /// A listened-to track or episode (`/v1/media/activity/contents/search`).
    ActivityContent,
    /// A connected account (`/v1/accounts/{id}`).
    Account,
    /// A creator profile (`/v1/profiles/{id}`).
    Profile,
    /// An account's audience (`/v1/audience?account_id=`); its `id` is the account id.
    Audience,
    /// A comment on a content (`/v1/social/comments`).
    Comment,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 13] = [
        Kind::Content,
        Kind::ContentGroup,
        Kind::SocialTransaction,
        Kind::CommerceTransaction,
        Kind::SocialPayout,
        Kind::CommercePayout,
        Kind::Balance,
        Kind::ActivityArtist,
        Kind::ActivityContent,
        Kind::Account,
        Kind::Profile,
        Kind::Audience,
        Kind::Comment,
    ];

    /// A short name, also the hash salt that keeps kinds independent.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Content => "content",
            Kind::ContentGroup => "content_group",
            Kind::SocialTransaction => "social_transaction",
            Kind::CommerceTransaction => "commerce_transaction",
            Kind::SocialPayout => "social_payout",
            Kind::CommercePayout => "commerce_payout",
            Kind::Balance => "balance",
            Kind::ActivityArtist => "activity_artist",
            Kind::ActivityContent => "activity_content",
            Kind::Account => "account",
            Kind::Profile => "profile",
            Kind::Audience => "audience",
            Kind::Comment => "comment",
        }
    }

    /// The bulk search path (`POST {"ids": [...]}`) serving this kind, if it has one.
    pub fn search_path(self) -> Option<&'static str> {
        Some(match self {
            Kind::Content => "/v1/social/contents/search",
            Kind::ContentGroup => "/v1/social/content-groups/search",
            Kind::SocialTransaction => "/v1/social/income/transactions/search",
            Kind::CommerceTransaction => "/v1/commerce/income/transactions/search",
            Kind::SocialPayout => "/v1/social/income/payouts/search",
            Kind::CommercePayout => "/v1/commerce/income/payouts/search",
            Kind::Balance => "/v1/commerce/income/balances/search",
            Kind::ActivityArtist => "/v1/media/activity/artists/search",
            Kind::ActivityContent => "/v1/media/activity/contents/search",
            Kind::Account | Kind::Profile | Kind::Audience | Kind::Comment => return None,
        })
    }

    /// The kind a bulk search path serves.
    pub fn from_search_path(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.search_path() == Some(path))
    }
}

/// How many accounts the simulated developer has: events and records draw from this pool, so ids repeat.
pub const ACCOUNT_POOL: usize = 12;

/// Most comments one content has.
pub const MAX_COMMENTS: usize = 250;

/// The id of pool account `index` (taken modulo [`ACCOUNT_POOL`]). Mostly 32-hex, some dashed.
pub fn account_id(index: usize) -> String {
    let index = index % ACCOUNT_POOL;
    let mut dice = Dice::new(0xacc0_0000 + index as u64);
    if index % 5 == 4 { dice.uuid() } else { dice.hex_id() }
}

/// The user owning `account_id` (a pure function of the account id).
pub fn user_id(account_id: &str) -> String {
    Owner::of(account_id).user_id
}

/// False for ids that "no longer exist": about `missing_permille` in 1000 ids, always the same ones.
pub fn exists(id: &str, missing_permille: u32) -> bool {
    hash("missing", id) % 1000 >= u64::from(missing_permille)
}

/// How many comments `content_id` has: 0..=[`MAX_COMMENTS`], mostly few, sometimes over a page of 100.
pub fn comment_count(content_id: &str) -> usize {
    let mut dice = Dice::of("comment_count", content_id);
    let n = match dice.below(10) {
        0..=3 => dice.range(0, 5),
        4..=7 => dice.range(6, 60),
        _ => dice.range(61, MAX_COMMENTS as u64),
    };
    n as usize
}

/// The id of comment `index` of `content_id`.
pub fn comment_id(content_id: &str, index: usize) -> String {
    Dice::of("comment_id", &format!("{content_id}/{index}")).hex_id()
}

/// Comment `index` of `content_id`: its `id` is [`comment_id`] and its `content.id` is `content_id`.
pub fn comment(content_id: &str, index: usize) -> Value {
    let id = comment_id(content_id, index);
    Value::Object(comment_record(&mut Dice::of(Kind::Comment.name(), &id), &id, Some(content_id)))
}

/// The record of `kind` with this `id`. For [`Kind::Audience`] the id is the account id.
pub fn record(kind: Kind, id: &str) -> Value {
    let mut dice = Dice::of(kind.name(), id);
    let d = &mut dice;
    Value::Object(match kind {
        Kind::Content => content(d, id),
        Kind::ContentGroup => content_group(d, id),
        Kind::SocialTransaction => social_transaction(d, id),
        Kind::CommerceTransaction => commerce_transaction(d, id),
        Kind::SocialPayout | Kind::CommercePayout => payout(d, id, kind == Kind::CommercePayout),
        Kind::Balance => balance(d, id),
        Kind::ActivityArtist => activity_artist(d, id),
        Kind::ActivityContent => activity_content(d, id),
        Kind::Account => account(d, id),
        Kind::Profile => profile(d, id),
        Kind::Audience => audience(d, id),
        Kind::Comment => comment_record(d, id, None),
    })
}

/// A platform accounts connect from.
struct Platform {
    id: &'static str,
    name: &'static str,
    logo: &'static str,
    site: &'static str,
}

const PLATFORMS: [Platform; 8] = [
    Platform {
        id: "9bb8913b-ddd9-430b-a66a-d74d846e6c66",
        name: "Instagram",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_instagram.png",
        site: "https://www.instagram.com",
    },
    Platform {
        id: "14d9ddf5-51c6-415e-bde6-f8ed36ad7054",
        name: "YouTube",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_youtube.png",
        site: "https://www.youtube.com",
    },
    Platform {
        id: "de55aeec-0dc8-4119-bf90-16b3d1f0c987",
        name: "TikTok",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_tiktok.png",
        site: "https://www.tiktok.com",
    },
    Platform {
        id: "7645460a-96e0-4192-a3ce-a1fc30641f72",
        name: "X",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_x.png",
        site: "https://x.com",
    },
    Platform {
        id: "e4de6c01-5b78-4fc0-a651-24f44134457b",
        name: "Twitch",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_twitch.png",
        site: "https://www.twitch.tv",
    },
    Platform {
        id: "ad2fec62-2987-40a0-89fb-23485972598c",
        name: "Facebook",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_facebook.png",
        site: "https://www.facebook.com",
    },
    Platform {
        id: "1e8ef6d8-9c20-4c0c-a2b5-6a7c5bd2b8a3",
        name: "Spotify",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_spotify.png",
        site: "https://open.spotify.com",
    },
    Platform {
        id: "5b2b8c5e-3f6a-4f5e-9b8e-0c1d2e3f4a5b",
        name: "Shopify",
        logo: "https://cdn.insightiq.ai/platforms_logo/logos/logo_shopify.png",
        site: "https://shopify.com",
    },
];

const FIRST_NAMES: [&str; 10] = ["ada", "bo", "chen", "dara", "eli", "femi", "gia", "hana", "ivo", "juno"];
const LAST_NAMES: [&str; 8] = ["rivers", "okafor", "lindqvist", "moreau", "tanaka", "silva", "kowalski", "reyes"];
const WORDS: [&str; 16] = [
    "morning",
    "routine",
    "unboxing",
    "travel",
    "vlog",
    "recipe",
    "review",
    "tips",
    "live",
    "studio",
    "behind",
    "scenes",
    "challenge",
    "summer",
    "haul",
    "q&a",
];
const COUNTRIES: [&str; 12] = ["US", "IN", "BR", "GB", "DE", "FR", "JP", "MX", "ID", "NG", "CA", "ES"];
const CITIES: [&str; 10] = [
    "New York, US",
    "Mumbai, IN",
    "São Paulo, BR",
    "London, GB",
    "Berlin, DE",
    "Paris, FR",
    "Tokyo, JP",
    "Mexico City, MX",
    "Jakarta, ID",
    "Lagos, NG",
];
const CURRENCIES: [&str; 4] = ["USD", "USD", "EUR", "GBP"];

/// Who owns an account: derived from the account id alone, so every record of an account agrees.
struct Owner {
    account_id: String,
    user_id: String,
    user_name: String,
    username: String,
    platform: &'static Platform,
    platform_profile_id: String,
}

impl Owner {
    fn of(account_id: &str) -> Self {
        let mut d = Dice::of("owner", account_id);
        let first = *d.pick(&FIRST_NAMES);
        let last = *d.pick(&LAST_NAMES);
        let username = format!("{first}.{last}{}", d.below(100));
        Self {
            account_id: account_id.to_owned(),
            user_id: d.hex_id(),
            user_name: format!("{first} {last}"),
            username,
            platform: d.pick(&PLATFORMS),
            platform_profile_id: d.range(17_841_400_000_000_000, 17_841_499_999_999_999).to_string(),
        }
    }

    /// The owner of a pool account chosen by the record's draws.
    fn pooled(d: &mut Dice) -> Self {
        Self::of(&account_id(d.below(ACCOUNT_POOL as u64) as usize))
    }
}

fn naive(micros: i64) -> Value {
    Value::String(format_time(micros, TimeFormat::Naive))
}

/// `null` with probability `null_permille / 1000`, else `value` (which may draw more).
fn maybe<V: Into<Value>>(d: &mut Dice, null_permille: u32, value: impl FnOnce(&mut Dice) -> V) -> Value {
    if d.chance(null_permille) { Value::Null } else { value(d).into() }
}

/// A money amount with two decimals.
fn money(d: &mut Dice, max_cents: u64) -> f64 {
    (d.skewed(max_cents) + 1) as f64 / 100.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn title(d: &mut Dice) -> String {
    let n = d.range(2, 5);
    (0..n).map(|_| *d.pick(&WORDS)).collect::<Vec<_>>().join(" ")
}

/// The fields every record has; returns the map and its `created_at` (micros) for later timestamps.
fn common(d: &mut Dice, id: &str, owner: &Owner) -> (Map<String, Value>, i64) {
    let created = EPOCH_2026_MICROS + d.below(160 * DAY_MICROS as u64) as i64;
    let updated = if d.chance(500) { created } else { created + d.below(10 * DAY_MICROS as u64) as i64 };
    let p = owner.platform;
    let value = json!({
        "id": id,
        "created_at": naive(created),
        "updated_at": naive(updated),
        "user": {"id": owner.user_id, "name": owner.user_name},
        "account": {"id": owner.account_id, "platform_username": owner.username, "username": owner.username},
        "work_platform": {"id": p.id, "name": p.name, "logo_url": p.logo},
    });
    match value {
        Value::Object(map) => (map, created),
        _ => (Map::new(), created),
    }
}

/// Inserts every `(key, value)` pair into `map`.
fn extend(map: &mut Map<String, Value>, fields: Value) {
    if let Value::Object(fields) = fields {
        map.extend(fields);
    }
}

fn content(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    let format = if d.chance(20) {
        "CAROUSEL_V2"
    } else {
        *d.pick(&["VIDEO", "VIDEO", "IMAGE", "IMAGE", "AUDIO", "TEXT", "COLLECTION"])
    };
    let content_type = match format {
        "VIDEO" => *d.pick(&["VIDEO", "REELS", "STORY", "SHORT", "STREAM"]),
        "IMAGE" => *d.pick(&["POST", "STORY"]),
        "AUDIO" => *d.pick(&["PODCAST", "TRACK"]),
        "TEXT" => *d.pick(&["TWEET", "POST", "ARTICLE"]),
        _ => "POST",
    };
    let external_id = d.range(17_000_000_000_000_000, 18_999_999_999_999_999).to_string();
    let site = owner.platform.site;
    let url = format!("{site}/p/{external_id}");
    let has_media = format != "TEXT";
    let duration = if matches!(format, "VIDEO" | "AUDIO") { maybe(d, 100, |d| d.range(5, 7200)) } else { Value::Null };
    let views = d.skewed(5_000_000);
    let hashtags: Vec<String> = (0..d.below(5)).map(|_| format!("#{}", d.pick(&WORDS).replace('&', ""))).collect();
    let mentions: Vec<String> = (0..d.below(3)).map(|_| format!("@{}", d.pick(&FIRST_NAMES))).collect();
    let (watch_time_in_hours, avg_watch_time_in_sec) = if format == "VIDEO" {
        (maybe(d, 400, |d| round2(views as f64 * d.unit() / 60.0)), maybe(d, 400, |d| round2(d.unit() * 90.0)))
    } else {
        (Value::Null, Value::Null)
    };
    let engagement = json!({
        "like_count": maybe(d, 50, |_| views / 10),
        "dislike_count": if owner.platform.name == "YouTube" { maybe(d, 300, |_| views / 500) } else { Value::Null },
        "comment_count": maybe(d, 100, |_| comment_count(id) as u64),
        "impression_organic_count": maybe(d, 500, |_| views * 2),
        "reach_organic_count": maybe(d, 300, |_| views * 4 / 5),
        "save_count": maybe(d, 500, |_| views / 50),
        "view_count": maybe(d, 150, |_| views),
        "replay_count": maybe(d, 800, |_| views / 20),
        "watch_time_in_hours": watch_time_in_hours,
        "avg_watch_time_in_sec": avg_watch_time_in_sec,
        "share_count": maybe(d, 200, |_| views / 100),
        "impression_paid_count": maybe(d, 900, |_| views / 3),
        "reach_paid_count": maybe(d, 900, |_| views / 4),
        "email_open_rate": Value::Null,
        "email_click_rate": Value::Null,
        "unsubscribe_count": Value::Null,
        "spam_report_count": Value::Null,
        "click_count": maybe(d, 800, |_| views / 200),
        "repost_count": maybe(d, 700, |_| views / 300),
        "additional_info": {
            "profile_visits": maybe(d, 300, |_| views / 40),
            "bio_link_clicked": maybe(d, 600, |_| views / 400),
            "followers_gained": maybe(d, 300, |d| d.below(200)),
            "story_navigation": if content_type == "STORY" {
                json!({
                    "swipe_ups": maybe(d, 700, |d| d.below(20)),
                    "tap_backs": maybe(d, 500, |d| d.below(40)),
                    "tap_exits": d.below(60),
                    "swipe_backs": Value::Null,
                    "swipe_downs": Value::Null,
                    "tap_forwards": d.below(80),
                    "swipe_forwards": d.below(30),
                    "automatic_forwards": maybe(d, 500, |d| d.below(100)),
                })
            } else {
                Value::Null
            },
        },
    });
    extend(
        &mut m,
        json!({
            "external_id": external_id,
            "title": maybe(d, 300, title),
            "format": format,
            "type": content_type,
            "url": url,
            "media_url": if has_media { maybe(d, 400, |_| format!("{url}/media")) } else { Value::Null },
            "media_urls": if has_media { json!([format!("{url}/media/0")]) } else { json!([]) },
            "duration": duration,
            "description": maybe(d, 400, |d| format!("{} {}", title(d), hashtags.join(" "))),
            "visibility": if d.chance(50) { *d.pick(&["PRIVATE", "UNLISTED", "FOLLOWERS_ONLY"]) } else { "PUBLIC" },
            "thumbnail_url": maybe(d, 500, |_| format!("{url}/thumbnail.jpg")),
            "persistent_thumbnail_url": maybe(d, 200, |_| {
                format!("https://media-resources.getphyllo.com/public/acc_cont_{id}/thumbnail_url")
            }),
            "published_at": naive(created - d.below(3 * DAY_MICROS as u64) as i64),
            "platform_profile_id": owner.platform_profile_id,
            "platform_profile_name": owner.username,
            "sponsored": if d.chance(600) { Value::Null } else {
                let sponsored = d.chance(200);
                json!({"is_sponsored": sponsored, "tags": if sponsored { json!(["#ad"]) } else { json!([]) }})
            },
            "collaboration": maybe(d, 600, |d| json!({"has_collaborators": d.chance(150)})),
            "is_owned_by_platform_user": d.chance(950),
            "hashtags": if hashtags.is_empty() { Value::Null } else { json!(hashtags) },
            "mentions": if mentions.is_empty() { Value::Null } else { json!(mentions) },
            "content_tags": Value::Null,
            "authors": Value::Null,
            "audience": Value::Null,
            "platform": Value::Null,
            "engagement": engagement,
        }),
    );
    m
}

fn content_group(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    let external_id = format!("PL{}", d.hex_id());
    let url = format!("{}/playlist/{external_id}", owner.platform.site);
    let views = d.skewed(20_000_000);
    extend(
        &mut m,
        json!({
            "external_id": external_id,
            "title": maybe(d, 100, title),
            "format": "COLLECTION",
            "type": *d.pick(&["PLAYLIST", "PLAYLIST", "ALBUM", "SERIES", "HIGHLIGHT"]),
            "url": url,
            "description": maybe(d, 500, title),
            "visibility": "PUBLIC",
            "thumbnail_url": maybe(d, 400, |_| format!("{url}/thumbnail.jpg")),
            "published_at": naive(created - d.below(30 * DAY_MICROS as u64) as i64),
            "platform_profile_id": owner.platform_profile_id,
            "platform_profile_name": owner.username,
            "item_count": d.range(1, 200),
            "engagement": {
                "like_count": maybe(d, 300, |_| views / 12),
                "comment_count": maybe(d, 500, |_| views / 200),
                "view_count": maybe(d, 100, |_| views),
                "share_count": maybe(d, 700, |_| views / 150),
                "watch_time_in_hours": maybe(d, 600, |d| round2(views as f64 * d.unit() / 30.0)),
            },
        }),
    );
    m
}

fn social_transaction(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    let kind = if d.chance(15) { "BONUS" } else { *d.pick(&["AD", "AD", "SUBSCRIPTION", "ADDITIONAL"]) };
    extend(
        &mut m,
        json!({
            "amount": money(d, 500_000),
            "type": kind,
            "cpm": if kind == "AD" { maybe(d, 200, |d| round2(d.unit() * 20.0)) } else { Value::Null },
            "currency": *d.pick(&CURRENCIES),
            "external_id": maybe(d, 200, |d| d.hex_id()),
            "transaction_at": naive(created - d.below(DAY_MICROS as u64) as i64),
            "platform_profile_id": owner.platform_profile_id,
            "description": maybe(d, 600, |_| format!("{} revenue", kind.to_lowercase())),
        }),
    );
    m
}

fn commerce_transaction(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    let amount = money(d, 200_000);
    let fee = round2(amount * 0.029 + 0.30);
    extend(
        &mut m,
        json!({
            "amount": amount,
            "currency": *d.pick(&CURRENCIES),
            "type": *d.pick(&["SALE", "SALE", "SALE", "REFUND", "FEE", "ADJUSTMENT"]),
            "status": *d.pick(&["SUCCESS", "SUCCESS", "PENDING", "FAILED"]),
            "fee": maybe(d, 200, |_| fee),
            "net_amount": maybe(d, 200, |_| round2(amount - fee)),
            "external_id": d.hex_id(),
            "transaction_at": naive(created - d.below(DAY_MICROS as u64) as i64),
            "payout_id": maybe(d, 500, |d| d.hex_id()),
            "description": maybe(d, 600, |d| format!("order #{}", d.range(1000, 99_999))),
            "platform_profile_id": owner.platform_profile_id,
        }),
    );
    m
}

fn payout(d: &mut Dice, id: &str, commerce: bool) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    extend(
        &mut m,
        json!({
            "amount": money(d, 2_000_000),
            "currency": *d.pick(&CURRENCIES),
            "status": *d.pick(&["PAID", "PAID", "PENDING", "IN_TRANSIT", "FAILED"]),
            "payout_interval": *d.pick(&["DAILY", "WEEKLY", "MONTHLY", "MONTHLY", "MANUAL"]),
            "payout_at": naive(created + d.below(7 * DAY_MICROS as u64) as i64),
            "external_id": maybe(d, 200, |d| d.hex_id()),
            "bank_account": if commerce {
                maybe(d, 300, |d| format!("****{:04}", d.below(10_000)))
            } else {
                Value::Null
            },
            "platform_profile_id": owner.platform_profile_id,
        }),
    );
    m
}

fn balance(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    extend(
        &mut m,
        json!({
            "available_amount": money(d, 5_000_000),
            "pending_amount": maybe(d, 300, |d| money(d, 1_000_000)),
            "currency": *d.pick(&CURRENCIES),
            "balance_at": naive(created),
            "platform_profile_id": owner.platform_profile_id,
        }),
    );
    m
}

fn activity_artist(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, _) = common(d, id, &owner);
    let external_id = d.hex_id();
    let genres: Vec<&str> = (0..d.below(4)).map(|_| *d.pick(&["pop", "rock", "jazz", "hip hop", "indie"])).collect();
    extend(
        &mut m,
        json!({
            "artist_name": format!("{} {}", d.pick(&WORDS), d.pick(&LAST_NAMES)),
            "external_id": external_id,
            "url": format!("https://open.spotify.com/artist/{external_id}"),
            "image_url": maybe(d, 300, |_| format!("https://i.scdn.co/image/{external_id}")),
            "genres": genres,
            "activity_type": *d.pick(&["TOP", "TOP", "FOLLOWED", "RECENT"]),
            "popularity": maybe(d, 200, |d| d.below(101)),
        }),
    );
    m
}

fn activity_content(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, created) = common(d, id, &owner);
    let external_id = d.hex_id();
    extend(
        &mut m,
        json!({
            "title": title(d),
            "external_id": external_id,
            "format": *d.pick(&["AUDIO", "AUDIO", "VIDEO"]),
            "type": *d.pick(&["TRACK", "TRACK", "EPISODE", "AUDIOBOOK"]),
            "url": format!("https://open.spotify.com/track/{external_id}"),
            "thumbnail_url": maybe(d, 300, |_| format!("https://i.scdn.co/image/{external_id}")),
            "duration": d.range(30, 3600),
            "artists": [{"name": format!("{} {}", d.pick(&WORDS), d.pick(&LAST_NAMES)), "external_id": d.hex_id()}],
            "activity_type": *d.pick(&["RECENT", "RECENT", "TOP", "SAVED"]),
            "activity_at": naive(created),
        }),
    );
    m
}

fn account(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::of(id);
    let (mut m, created) = common(d, id, &owner);
    let sync = |d: &mut Dice| -> Value {
        if d.chance(150) {
            return json!({"status": "NOT_SUPPORTED", "last_sync_at": null, "monitor_type": null});
        }
        json!({
            "status": *d.pick(&["SYNCED", "SYNCED", "SYNCED", "IN_PROGRESS", "NOT_IN_PLAN"]),
            "last_sync_at": naive(created + d.below(5 * DAY_MICROS as u64) as i64),
            "monitor_type": *d.pick(&["WEBHOOK", "WEBHOOK", "POLLING"]),
        })
    };
    let data = json!({
        "identity": sync(d),
        "engagement": sync(d),
        "income": sync(d),
        "audience": sync(d),
        "activity": sync(d),
    });
    extend(
        &mut m,
        json!({
            "platform_username": owner.username,
            "username": owner.username,
            "profile_pic_url": maybe(d, 200, |_| format!("{}/{}/picture.jpg", owner.platform.site, owner.username)),
            "status": *d.pick(&["CONNECTED", "CONNECTED", "CONNECTED", "NOT_CONNECTED", "SESSION_EXPIRED"]),
            "platform_profile_name": owner.username,
            "platform_profile_id": owner.platform_profile_id,
            "data": data,
        }),
    );
    m
}

fn profile(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::pooled(d);
    let (mut m, _) = common(d, id, &owner);
    let followers = d.skewed(50_000_000);
    let url = format!("{}/{}", owner.platform.site, owner.username);
    extend(
        &mut m,
        json!({
            "platform_username": owner.username,
            "full_name": maybe(d, 100, |_| owner.user_name.clone()),
            "url": url,
            "introduction": maybe(d, 300, title),
            "image_url": maybe(d, 200, |_| format!("{url}/picture.jpg")),
            "external_id": owner.platform_profile_id,
            "gender": maybe(d, 400, |d| *d.pick(&["MALE", "FEMALE", "OTHER"])),
            "country": maybe(d, 300, |d| *d.pick(&COUNTRIES)),
            "platform_profile_name": owner.username,
            "platform_profile_id": owner.platform_profile_id,
            "date_of_birth": Value::Null,
            "is_verified": d.chance(100),
            "is_business": d.chance(300),
            "category": maybe(d, 500, |d| *d.pick(&["CREATOR", "ARTIST", "BRAND", "PUBLISHER", "GAMING_V2"])),
            "reputation": {
                "follower_count": maybe(d, 50, |_| followers),
                "following_count": maybe(d, 200, |d| d.below(3000)),
                "subscriber_count": if owner.platform.name == "YouTube" { json!(followers) } else { Value::Null },
                "content_count": maybe(d, 100, |d| d.range(1, 5000)),
                "content_group_count": maybe(d, 700, |d| d.below(50)),
                "like_count": maybe(d, 400, |_| followers * 3),
                "watch_time_in_hours": maybe(d, 600, |d| round2(followers as f64 * d.unit())),
            },
            "emails": if d.chance(600) { json!([]) } else {
                json!([{"type": "WORK", "email_id": format!("{}@example.com", owner.username)}])
            },
            "phone_numbers": if d.chance(850) { json!([]) } else {
                json!([{"type": "WORK", "phone_number": format!("+1555{:07}", d.below(10_000_000))}])
            },
            "addresses": [],
        }),
    );
    m
}

/// `k` shares in `labels` order, in percent (0–100), summing to about 100.
fn shares(d: &mut Dice, k: usize) -> Vec<f64> {
    let weights: Vec<f64> = (0..k).map(|i| (d.unit() + 0.05) / (i as f64 + 1.0)).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| round2(w / total * 100.0)).collect()
}

fn audience(d: &mut Dice, id: &str) -> Map<String, Value> {
    let owner = Owner::of(id);
    let (mut m, _) = common(d, id, &owner);
    let start = d.below(COUNTRIES.len() as u64) as usize;
    let k = d.range(3, 8) as usize;
    let countries: Vec<Value> = shares(d, k)
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"code": COUNTRIES[(start + i) % COUNTRIES.len()], "value": v}))
        .collect();
    let k = d.range(2, 6) as usize;
    let cities: Vec<Value> = shares(d, k)
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"name": CITIES[(start + i) % CITIES.len()], "value": v}))
        .collect();
    let ranges = ["13-17", "18-24", "25-34", "35-44", "45-64", "65-"];
    let cells: Vec<(&str, &str)> =
        ["MALE", "FEMALE"].iter().flat_map(|g| ranges.iter().map(move |r| (*g, *r))).collect();
    let gender_age: Vec<Value> = shares(d, cells.len())
        .into_iter()
        .zip(cells)
        .map(|(v, (g, r))| json!({"gender": g, "age_range": r, "value": v}))
        .collect();
    extend(
        &mut m,
        json!({
            "countries": countries,
            "cities": cities,
            "gender_age_distribution": gender_age,
            "gender_distribution": Value::Null,
        }),
    );
    m
}

fn comment_record(d: &mut Dice, id: &str, content_id: Option<&str>) -> Map<String, Value> {
    let content_id = match content_id {
        Some(c) => c.to_owned(),
        None => d.hex_id(),
    };
    // The comment belongs to the content's account, as it would live.
    let owner = Owner::pooled(&mut Dice::of(Kind::Content.name(), &content_id));
    let (mut m, created) = common(d, id, &owner);
    let commenter = format!("{}_{}", d.pick(&FIRST_NAMES), d.below(10_000));
    let content_published = created - d.below(20 * DAY_MICROS as u64) as i64;
    extend(
        &mut m,
        json!({
            "published_at": naive(created),
            "content": {
                "id": content_id,
                "url": format!("{}/p/{content_id}", owner.platform.site),
                "published_at": naive(content_published),
            },
            "external_id": d.range(17_000_000_000_000_000, 18_999_999_999_999_999).to_string(),
            "text": title(d),
            "commenter_username": commenter,
            "commenter_display_name": maybe(d, 400, |_| commenter.replace('_', " ")),
            "commenter_id": maybe(d, 300, |d| d.hex_id()),
            "commenter_profile_url": maybe(d, 300, |_| format!("{}/{commenter}", owner.platform.site)),
            "like_count": maybe(d, 100, |d| d.skewed(500)),
            "reply_count": maybe(d, 200, |d| d.skewed(40)),
        }),
    );
    m
}
