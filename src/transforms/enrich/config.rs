//! `[transforms.<name>]` with `type = "enrich"`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::Endpoint;
use crate::config::{Diagnostics, Fields};

/// Platforms whose income lives under `/v1/commerce/…` (`spec/insightiq.md` names none: an assumption, so it is
/// configurable).
pub const DEFAULT_COMMERCE_PLATFORMS: &[&str] =
    &["Shopify", "Amazon", "Etsy", "WooCommerce", "Stripe", "Gumroad", "BigCommerce", "eBay"];

/// Which income endpoints `TRANSACTIONS.*` and `PAYOUTS.*` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomeChoice {
    /// By the account's platform when an earlier answer told it (`commerce_platforms`), else social.
    Auto,
    /// Always `/v1/social/income/…`.
    Social,
    /// Always `/v1/commerce/income/…`.
    Commerce,
}

/// The stage's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichConfig {
    /// `api`: the `[api.<name>]` table to call (only `insightiq` exists).
    pub api: String,
    /// `max_ids`: most ids per bulk call (1–100, default 100).
    pub max_ids: usize,
    /// `max_wait`: how long a partial bulk call waits for more ids (default 500ms).
    pub max_wait: Duration,
    /// `concurrency`: most calls in flight at once (default 4).
    pub concurrency: usize,
    /// `max_pending_ids`: most ids waiting for answers; reading from the journal pauses above it (default 20000).
    pub max_pending_ids: usize,
    /// `retry_for`: how long a failing call is retried before its events go to the dead letters (default 1h,
    /// longer than InsightIQ's weekly 15-minute maintenance window).
    pub retry_for: Duration,
    /// `income`: `auto`, `social` or `commerce`.
    pub income: IncomeChoice,
    /// `commerce_platforms`: platform names whose income is commerce income (`income = "auto"`).
    pub commerce_platforms: Vec<String>,
    /// `[…paths]`: endpoint path overrides, by endpoint key (`contents = "/v2/…"`).
    pub paths: BTreeMap<Endpoint, String>,
}

impl EnrichConfig {
    /// Reads the stage's keys.
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let api = f.choice(d, "api", &["insightiq"], "insightiq");
        let max_ids = f.integer(d, "max_ids", 100, 1..101) as usize;
        let max_wait = f.duration(d, "max_wait", Duration::from_millis(500));
        let concurrency = f.integer(d, "concurrency", 4, 1..65) as usize;
        let max_pending_ids = f.integer(d, "max_pending_ids", 20_000, 100..1_000_001) as usize;
        let retry_for = f.duration(d, "retry_for", Duration::from_secs(3600));
        let income = match f.choice(d, "income", &["auto", "social", "commerce"], "auto").as_str() {
            "social" => IncomeChoice::Social,
            "commerce" => IncomeChoice::Commerce,
            _ => IncomeChoice::Auto,
        };
        let commerce_platforms = f.opt_strings(d, "commerce_platforms").map_or_else(
            || DEFAULT_COMMERCE_PLATFORMS.iter().map(|s| (*s).to_owned()).collect(),
            |v| v.into_iter().map(|s| s.value).collect(),
        );
        let mut paths = BTreeMap::new();
        if let Some(item) = f.item("paths") {
            let path = format!("{}.paths", f.path());
            match item.as_table_like() {
                None => d.error(item.span(), format!("`{path}` must be a table of endpoint = \"/path\"")),
                Some(t) => {
                    let mut pf = Fields::new(t, path.clone(), item.span());
                    for endpoint in Endpoint::ALL {
                        if let Some(p) = pf.opt_string(d, endpoint.key()) {
                            if !p.value.starts_with('/') {
                                d.error(p.span, format!("{path}.{} must start with `/`", endpoint.key()));
                            } else if !endpoint.is_bulk()
                                && endpoint.default_path().contains("{id}")
                                && !p.value.contains("{id}")
                            {
                                d.error(p.span, format!("{path}.{} must contain `{{id}}`", endpoint.key()));
                            }
                            paths.insert(endpoint, p.value);
                        }
                    }
                    pf.finish(d);
                }
            }
        }
        Some(Self {
            api,
            max_ids,
            max_wait,
            concurrency,
            max_pending_ids,
            retry_for,
            income,
            commerce_platforms,
            paths,
        })
    }

    /// The path to call for `endpoint`.
    pub fn path(&self, endpoint: Endpoint) -> &str {
        self.paths.get(&endpoint).map_or_else(|| endpoint.default_path(), String::as_str)
    }
}
