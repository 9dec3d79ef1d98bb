//! Fetch plans: what to call for each event family (`spec/insightiq.md`, "What to fetch for each event"), and
//! the ids an event needs. Pure functions of the event name and its `data`, so the whole table is unit-tested.

use serde_json::Value;

/// An endpoint enrich calls. Bulk endpoints take up to 100 ids per call; the others take one key per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /v1/social/contents/search`.
    Contents,
    /// `POST /v1/social/content-groups/search`.
    ContentGroups,
    /// `POST /v1/social/income/transactions/search`.
    SocialTransactions,
    /// `POST /v1/commerce/income/transactions/search`.
    CommerceTransactions,
    /// `POST /v1/social/income/payouts/search`.
    SocialPayouts,
    /// `POST /v1/commerce/income/payouts/search`.
    CommercePayouts,
    /// `POST /v1/commerce/income/balances/search`.
    Balances,
    /// `POST /v1/media/activity/artists/search`.
    ActivityArtists,
    /// `POST /v1/media/activity/contents/search`.
    ActivityContents,
    /// `GET /v1/accounts/{account_id}`.
    Account,
    /// `GET /v1/profiles/{profile_id}`.
    Profile,
    /// `GET /v1/audience?account_id=…`.
    Audience,
    /// `GET /v1/social/comments?account_id=…&content_id=…` (paginated).
    Comments,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Self; 13] = [
        Self::Contents,
        Self::ContentGroups,
        Self::SocialTransactions,
        Self::CommerceTransactions,
        Self::SocialPayouts,
        Self::CommercePayouts,
        Self::Balances,
        Self::ActivityArtists,
        Self::ActivityContents,
        Self::Account,
        Self::Profile,
        Self::Audience,
        Self::Comments,
    ];

    /// The name used in `[transforms.<name>.paths]` and in metric labels.
    pub fn key(self) -> &'static str {
        match self {
            Self::Contents => "contents",
            Self::ContentGroups => "content_groups",
            Self::SocialTransactions => "social_transactions",
            Self::CommerceTransactions => "commerce_transactions",
            Self::SocialPayouts => "social_payouts",
            Self::CommercePayouts => "commerce_payouts",
            Self::Balances => "balances",
            Self::ActivityArtists => "activity_artists",
            Self::ActivityContents => "activity_contents",
            Self::Account => "accounts",
            Self::Profile => "profiles",
            Self::Audience => "audience",
            Self::Comments => "comments",
        }
    }

    /// InsightIQ's path. `{id}` stands for the key of single-resource endpoints.
    pub fn default_path(self) -> &'static str {
        match self {
            Self::Contents => "/v1/social/contents/search",
            Self::ContentGroups => "/v1/social/content-groups/search",
            Self::SocialTransactions => "/v1/social/income/transactions/search",
            Self::CommerceTransactions => "/v1/commerce/income/transactions/search",
            Self::SocialPayouts => "/v1/social/income/payouts/search",
            Self::CommercePayouts => "/v1/commerce/income/payouts/search",
            Self::Balances => "/v1/commerce/income/balances/search",
            Self::ActivityArtists => "/v1/media/activity/artists/search",
            Self::ActivityContents => "/v1/media/activity/contents/search",
            Self::Account => "/v1/accounts/{id}",
            Self::Profile => "/v1/profiles/{id}",
            Self::Audience => "/v1/audience",
            Self::Comments => "/v1/social/comments",
        }
    }

    /// True for `POST …/search {"ids": [...]}` endpoints, whose ids are coalesced across events.
    pub fn is_bulk(self) -> bool {
        !matches!(self, Self::Account | Self::Profile | Self::Audience | Self::Comments)
    }
}

/// Income endpoints exist twice (social and commerce platforms); which one an account needs depends on its
/// platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Income {
    /// `TRANSACTIONS.*`.
    Transactions,
    /// `PAYOUTS.*`.
    Payouts,
}

impl Income {
    /// The endpoint for a social or a commerce account.
    pub fn endpoint(self, commerce: bool) -> Endpoint {
        match (self, commerce) {
            (Self::Transactions, false) => Endpoint::SocialTransactions,
            (Self::Transactions, true) => Endpoint::CommerceTransactions,
            (Self::Payouts, false) => Endpoint::SocialPayouts,
            (Self::Payouts, true) => Endpoint::CommercePayouts,
        }
    }
}

/// What enrich does with one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Bulk search of `data.items` at this endpoint.
    Bulk(Endpoint),
    /// Bulk search of `data.items` at the social or commerce income endpoint.
    Income(Income),
    /// `GET` the account `data.account_id`.
    Account,
    /// `GET` the profile `data.profile_id`.
    Profile,
    /// `GET` the audience of `data.account_id`.
    Audience,
    /// The comments of each content id in `data.items`, page by page.
    Comments,
    /// Nothing to fetch: the event passes through un-enriched, marked with the reason.
    Skip(Skip),
}

/// Why an event is not enriched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A job notification (`CONTENTS_FETCH.SUCCESS`, …): it only carries a `job_id`.
    Job,
    /// A publish notification: it carries a `publish_id`, not a resource to fetch.
    Publish,
    /// An event type this version does not know.
    Unknown,
}

impl Skip {
    /// The marker written on the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job event",
            Self::Publish => "publish event",
            Self::Unknown => "unknown event type",
        }
    }
}

/// The plan for an event name. Families are matched on the part before the first `.`, with the separators
/// InsightIQ really uses (`PROFILES_AUDIENCE`, `CONTENT-GROUPS`, …).
pub fn plan(event: &str) -> Plan {
    let (family, action) = event.split_once('.').unwrap_or((event, ""));
    match family {
        "CONTENTS" if action.starts_with("PUBLISH_") => Plan::Skip(Skip::Publish),
        "CONTENTS" => Plan::Bulk(Endpoint::Contents),
        "CONTENT-GROUPS" => Plan::Bulk(Endpoint::ContentGroups),
        "TRANSACTIONS" => Plan::Income(Income::Transactions),
        "PAYOUTS" => Plan::Income(Income::Payouts),
        "BALANCES" => Plan::Bulk(Endpoint::Balances),
        "ACTIVITY-ARTISTS" => Plan::Bulk(Endpoint::ActivityArtists),
        "ACTIVITY-CONTENTS" => Plan::Bulk(Endpoint::ActivityContents),
        "PROFILES" => Plan::Profile,
        "PROFILES_AUDIENCE" => Plan::Audience,
        "ACCOUNTS" | "SESSION" => Plan::Account,
        "CONTENTS_COMMENTS" => Plan::Comments,
        f if f.ends_with("_FETCH") || f.ends_with("_ANALYTICS") || f.ends_with("_JOB") => Plan::Skip(Skip::Job),
        _ => Plan::Skip(Skip::Unknown),
    }
}

/// One thing an event needs fetched: an endpoint and a key (a resource id, or for comments a content id of an
/// account). Equal wants are fetched once per flush.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Want {
    /// Where.
    pub endpoint: Endpoint,
    /// The resource id (bulk, profiles), account id (accounts, audience) or content id (comments).
    pub id: String,
    /// The account, for comments (the API wants both).
    pub account_id: Option<String>,
}

/// The wants of an event under `plan`, in the order of its `data`. `commerce` says whether the event's account
/// is on a commerce platform (income events). An event whose `data` lacks the ids its plan needs gets the reason
/// instead: it passes through un-enriched, marked so.
pub fn wants(plan: Plan, data: &Value, commerce: bool) -> Result<Vec<Want>, String> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let items = || -> Result<Vec<String>, String> {
        let items = data.get("items").and_then(Value::as_array).ok_or("data.items is missing")?;
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let id = item.as_str().filter(|s| !s.is_empty()).ok_or("data.items holds a value that is not an id")?;
            if !out.iter().any(|seen| seen == id) {
                out.push(id.to_owned());
            }
        }
        Ok(out)
    };
    let one = |endpoint, key: &str| -> Result<Vec<Want>, String> {
        let id = text(key).ok_or_else(|| format!("data.{key} is missing"))?;
        Ok(vec![Want { endpoint, id, account_id: None }])
    };
    let bulk = |endpoint| Ok(items()?.into_iter().map(|id| Want { endpoint, id, account_id: None }).collect());
    match plan {
        Plan::Bulk(endpoint) => bulk(endpoint),
        Plan::Income(income) => bulk(income.endpoint(commerce)),
        Plan::Account => one(Endpoint::Account, "account_id"),
        Plan::Profile => one(Endpoint::Profile, "profile_id"),
        Plan::Audience => one(Endpoint::Audience, "account_id"),
        Plan::Comments => {
            let account = text("account_id").ok_or("data.account_id is missing")?;
            Ok(items()?
                .into_iter()
                .map(|id| Want { endpoint: Endpoint::Comments, id, account_id: Some(account.clone()) })
                .collect())
        }
        Plan::Skip(_) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 26 event types InsightIQ documents (plus the undocumented `ACCOUNTS.REMOVED`), and what each needs.
    const TABLE: [(&str, Plan); 27] = [
        ("ACCOUNTS.CONNECTED", Plan::Account),
        ("ACCOUNTS.DISCONNECTED", Plan::Account),
        ("ACCOUNTS.REMOVED", Plan::Account),
        ("SESSION.EXPIRED", Plan::Account),
        ("PROFILES.ADDED", Plan::Profile),
        ("PROFILES.UPDATED", Plan::Profile),
        ("PROFILES_AUDIENCE.ADDED", Plan::Audience),
        ("PROFILES_AUDIENCE.UPDATED", Plan::Audience),
        ("CONTENTS.ADDED", Plan::Bulk(Endpoint::Contents)),
        ("CONTENTS.UPDATED", Plan::Bulk(Endpoint::Contents)),
        ("CONTENT-GROUPS.ADDED", Plan::Bulk(Endpoint::ContentGroups)),
        ("CONTENT-GROUPS.UPDATED", Plan::Bulk(Endpoint::ContentGroups)),
        ("CONTENTS_COMMENTS.ADDED", Plan::Comments),
        ("CONTENTS_COMMENTS.UPDATED", Plan::Comments),
        ("TRANSACTIONS.ADDED", Plan::Income(Income::Transactions)),
        ("TRANSACTIONS.UPDATED", Plan::Income(Income::Transactions)),
        ("PAYOUTS.ADDED", Plan::Income(Income::Payouts)),
        ("PAYOUTS.UPDATED", Plan::Income(Income::Payouts)),
        ("BALANCES.ADDED", Plan::Bulk(Endpoint::Balances)),
        ("BALANCES.UPDATED", Plan::Bulk(Endpoint::Balances)),
        ("ACTIVITY-ARTISTS.ADDED", Plan::Bulk(Endpoint::ActivityArtists)),
        ("ACTIVITY-CONTENTS.ADDED", Plan::Bulk(Endpoint::ActivityContents)),
        ("CONTENTS.PUBLISH_READY", Plan::Skip(Skip::Publish)),
        ("CONTENTS.PUBLISH_SUCCESS", Plan::Skip(Skip::Publish)),
        ("CONTENTS.PUBLISH_FAILURE", Plan::Skip(Skip::Publish)),
        ("CONTENTS_FETCH.SUCCESS", Plan::Skip(Skip::Job)),
        ("PROFILE_ANALYTICS.FAILURE", Plan::Skip(Skip::Job)),
    ];

    #[test]
    fn every_documented_event_type_has_its_plan() {
        for (event, expected) in TABLE {
            assert_eq!(plan(event), expected, "{event}");
        }
    }

    #[test]
    fn unknown_types_pass_through_unenriched() {
        for event in ["INCOME.ADDED", "AUDIENCE.UPDATED", "NEW_FAMILY.SOMETHING", "", "CONTENTS"] {
            let p = plan(event);
            if event == "CONTENTS" {
                assert_eq!(p, Plan::Bulk(Endpoint::Contents));
            } else {
                assert_eq!(p, Plan::Skip(Skip::Unknown), "{event}");
            }
        }
    }

    #[test]
    fn wants_follow_the_data_of_each_family() {
        let data = serde_json::json!({"account_id": "acc", "profile_id": "prof", "items": ["a", "b", "a"]});
        let ids = |p, commerce| -> Vec<(Endpoint, String, Option<String>)> {
            wants(p, &data, commerce).unwrap().into_iter().map(|w| (w.endpoint, w.id, w.account_id)).collect()
        };
        assert_eq!(
            ids(Plan::Bulk(Endpoint::Contents), false),
            vec![(Endpoint::Contents, "a".into(), None), (Endpoint::Contents, "b".into(), None)],
            "ids in data order, each once"
        );
        assert_eq!(ids(Plan::Income(Income::Payouts), true)[0].0, Endpoint::CommercePayouts);
        assert_eq!(ids(Plan::Income(Income::Transactions), false)[0].0, Endpoint::SocialTransactions);
        assert_eq!(ids(Plan::Account, false), vec![(Endpoint::Account, "acc".into(), None)]);
        assert_eq!(ids(Plan::Audience, false), vec![(Endpoint::Audience, "acc".into(), None)]);
        assert_eq!(ids(Plan::Profile, false), vec![(Endpoint::Profile, "prof".into(), None)]);
        assert_eq!(ids(Plan::Comments, false)[1], (Endpoint::Comments, "b".into(), Some("acc".into())));
        assert!(ids(Plan::Skip(Skip::Job), false).is_empty());
    }

    #[test]
    fn data_without_the_needed_ids_is_a_reason_not_a_panic() {
        let empty = serde_json::json!({});
        assert_eq!(wants(Plan::Bulk(Endpoint::Contents), &empty, false).unwrap_err(), "data.items is missing");
        assert_eq!(wants(Plan::Profile, &empty, false).unwrap_err(), "data.profile_id is missing");
        let bad = serde_json::json!({"items": [1, 2]});
        assert!(wants(Plan::Bulk(Endpoint::Contents), &bad, false).unwrap_err().contains("not an id"));
    }

    #[test]
    fn every_endpoint_has_a_distinct_key_and_path() {
        let mut keys: Vec<_> = Endpoint::ALL.iter().map(|e| e.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Endpoint::ALL.len());
        let mut paths: Vec<_> = Endpoint::ALL.iter().map(|e| e.default_path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Endpoint::ALL.len());
    }
}
