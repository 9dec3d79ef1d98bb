//! Realistic InsightIQ webhook events (`spec/insightiq.md`, "Webhook delivery").
//!
//! Event number `n` of a run with `seed` is a pure function of both: a sender and a test that checks what
//! arrived compute the same bodies. The mix is weighted like live traffic (about 40 % `CONTENTS.*`, item lists
//! mostly short), accounts come from a small pool, and some item ids recur across events so that coalescing
//! them into one bulk call has something to do. Ids come as 32-hex and as dashed UUIDs, and `last_updated_time`
//! in all three documented formats.

use serde_json::{Value, json};

use super::dice::{DAY_MICROS, Dice, EPOCH_2026_MICROS, TimeFormat, format_time, mix, scramble48};
use super::records::{ACCOUNT_POOL, account_id, user_id};

/// Most resource ids in one event's `items` (documented).
pub const MAX_ITEMS: usize = 100;

/// Every event type the generator produces.
pub const EVENT_TYPES: [&str; 26] = [
    "ACCOUNTS.CONNECTED",
    "ACCOUNTS.DISCONNECTED",
    "ACCOUNTS.REMOVED",
    "SESSION.EXPIRED",
    "PROFILES.ADDED",
    "PROFILES.UPDATED",
    "PROFILES_AUDIENCE.ADDED",
    "PROFILES_AUDIENCE.UPDATED",
    "CONTENTS.ADDED",
    "CONTENTS.UPDATED",
    "CONTENT-GROUPS.ADDED",
    "CONTENT-GROUPS.UPDATED",
    "CONTENTS_COMMENTS.ADDED",
    "CONTENTS_COMMENTS.UPDATED",
    "TRANSACTIONS.ADDED",
    "TRANSACTIONS.UPDATED",
    "PAYOUTS.ADDED",
    "PAYOUTS.UPDATED",
    "BALANCES.ADDED",
    "BALANCES.UPDATED",
    "ACTIVITY-ARTISTS.ADDED",
    "ACTIVITY-CONTENTS.ADDED",
    "CONTENTS.PUBLISH_READY",
    "CONTENTS.PUBLISH_SUCCESS",
    "CONTENTS.PUBLISH_FAILURE",
    "CONTENTS_FETCH.SUCCESS",
];

/// How often each of [`EVENT_TYPES`] occurs, per 1000 events (same order; sums to 1000).
const WEIGHTS: [u64; 26] = [
    40, 15, 10, 15, // accounts, session
    30, 70, 20, 30, // profiles, audience
    250, 150, // contents: 40 %
    20, 20, // content groups
    70, 30, // comments
    50, 20, 20, 10, 15, 15, // transactions, payouts, balances
    20, 20, // activity
    15, 15, 10, // publish
    20, // jobs
];

/// Distinct "hot" item ids per account and family: items drawn from here recur across events.
const HOT_ITEMS: u64 = 400;

/// Which fields an event's `data` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `account_id`, `user_id`, `last_updated_time`.
    Account,
    /// The above plus `profile_id`.
    Profile,
    /// The above plus `items`.
    Items,
    /// The above plus `publish_id`.
    Publish,
    /// Only `job_id`.
    Job,
}

fn family(event: &str) -> Family {
    let prefix = event.split('.').next().unwrap_or(event);
    match prefix {
        "ACCOUNTS" | "SESSION" => Family::Account,
        "PROFILES" | "PROFILES_AUDIENCE" => Family::Profile,
        "CONTENTS_FETCH" | "PROFILE_ANALYTICS" => Family::Job,
        _ if event.contains(".PUBLISH_") => Family::Publish,
        _ => Family::Items,
    }
}

/// The human `name` InsightIQ puts next to `event` ("contents added").
pub fn name_of(event: &str) -> String {
    let known = match event {
        "ACCOUNTS.CONNECTED" => "account is connected",
        "ACCOUNTS.DISCONNECTED" => "account is disconnected",
        "ACCOUNTS.REMOVED" => "account removed",
        "SESSION.EXPIRED" => "session expired",
        "PROFILES_AUDIENCE.ADDED" => "profile audience added",
        "PROFILES_AUDIENCE.UPDATED" => "profile audience updated",
        "CONTENTS_COMMENTS.ADDED" => "contents comments added",
        "CONTENTS_COMMENTS.UPDATED" => "contents comments updated",
        "CONTENTS.PUBLISH_READY" => "content publish ready",
        "CONTENTS.PUBLISH_SUCCESS" => "content publish success",
        "CONTENTS.PUBLISH_FAILURE" => "content publish failure",
        "CONTENTS_FETCH.SUCCESS" => "Contents fetch success.",
        "PROFILES.ADDED" => "profile added",
        "PROFILES.UPDATED" => "profile updated",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    // The rest follow one pattern: "content groups added", "activity artists added".
    event.to_lowercase().replace(['.', '_', '-'], " ")
}

/// Narrows the event stream, for benchmarks and focused tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Only these event types, equally often (empty: the live-like mix of all 26).
    pub types: Vec<String>,
    /// Most ids in one event's `items` (1..=100).
    pub max_items: usize,
}

impl Default for Mix {
    fn default() -> Self {
        Self { types: Vec::new(), max_items: MAX_ITEMS }
    }
}

/// Event number `n` of the run `seed`: `{"event", "name", "id", "data"}`, with a unique `id` per `n`.
pub fn event(seed: u64, n: u64) -> Value {
    event_with(seed, n, &Mix::default())
}

/// Like [`event`], narrowed by `mix`.
pub fn event_with(seed: u64, n: u64, mix_of: &Mix) -> Value {
    let mut d = Dice::new(mix(seed) ^ mix(n.wrapping_add(0xe7e7)));
    let event = match mix_of.types.len() {
        0 => pick_type(&mut d).to_owned(),
        k => mix_of.types[d.below(k as u64) as usize].clone(),
    };
    let id = event_id(seed, n);
    let data = data(&mut d, seed, n, &event, mix_of.max_items.clamp(1, MAX_ITEMS));
    json!({"event": event, "name": name_of(&event), "id": id, "data": data})
}

/// The id of event `n` of run `seed`: a dashed UUID whose low 48 bits are a bijection of `n`, so no two events
/// of one run share an id.
pub fn event_id(seed: u64, n: u64) -> String {
    let a = mix(seed ^ 0x1d1d);
    let b = (mix(n) & !((1 << 48) - 1)) | scramble48(n);
    super::dice::uuid(a, b)
}

fn pick_type(d: &mut Dice) -> &'static str {
    let total: u64 = WEIGHTS.iter().sum();
    let mut x = d.below(total);
    for (event, w) in EVENT_TYPES.iter().zip(WEIGHTS) {
        if x < w {
            return event;
        }
        x -= w;
    }
    EVENT_TYPES[8]
}

fn data(d: &mut Dice, seed: u64, n: u64, event: &str, max_items: usize) -> Value {
    let family = family(event);
    if family == Family::Job {
        return json!({"job_id": d.uuid()});
    }
    let account = account_id(d.below(ACCOUNT_POOL as u64) as usize);
    let mut data = json!({
        "account_id": account,
        "user_id": user_id(&account),
        "last_updated_time": last_updated_time(d, n),
    });
    match family {
        // One profile per account, the same in every run.
        Family::Profile => data["profile_id"] = json!(Dice::of("profile_of", &account).hex_id()),
        Family::Publish => data["publish_id"] = json!(d.uuid()),
        Family::Items => data["items"] = json!(items(d, seed, &account, event, max_items)),
        Family::Account | Family::Job => {}
    }
    data
}

/// Around `n` × 40 ms after the start of 2026, in one of the three documented formats.
fn last_updated_time(d: &mut Dice, n: u64) -> String {
    let micros = EPOCH_2026_MICROS
        + 150 * DAY_MICROS
        + i64::try_from(n.saturating_mul(40_000)).unwrap_or(i64::MAX / 2) % (30 * DAY_MICROS)
        + d.below(1_000_000) as i64;
    let format = *d.pick(&[TimeFormat::Naive, TimeFormat::Zulu, TimeFormat::Space]);
    format_time(micros, format)
}

/// 1..=100 distinct ids, mostly few; about a third come from the account's hot set, so they recur.
fn items(d: &mut Dice, seed: u64, account: &str, event: &str, max_items: usize) -> Vec<String> {
    let want = (match d.below(100) {
        0..=59 => d.range(1, 3),
        60..=84 => d.range(4, 20),
        85..=96 => d.range(21, 99),
        _ => MAX_ITEMS as u64,
    } as usize)
        .min(max_items);
    // Items of `CONTENTS_COMMENTS.*` are content ids: share the hot set with `CONTENTS.*`.
    let family = event.split('.').next().unwrap_or(event).replace("CONTENTS_COMMENTS", "CONTENTS");
    let hot_salt = super::dice::hash(&family, account) ^ mix(seed);
    let mut items: Vec<String> = Vec::with_capacity(want);
    while items.len() < want {
        let id = if d.chance(330) { Dice::new(hot_salt ^ d.below(HOT_ITEMS)).any_id() } else { d.any_id() };
        if !items.contains(&id) {
            items.push(id);
        }
    }
    items
}
