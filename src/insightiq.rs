//! Facts about InsightIQ that the config and the stages share: environments, their API base URLs and the
//! addresses webhooks come from (`spec/insightiq.md`). One home, so a changed address is one edit.

/// The environments InsightIQ runs.
pub const ENVIRONMENTS: &[&str] = &["sandbox", "staging", "production"];

/// The API base URL of an environment (sandbox when unknown; the config validates the name).
pub fn base_url(environment: &str) -> &'static str {
    match environment {
        "production" => "https://api.insightiq.ai",
        "staging" => "https://api.staging.insightiq.ai",
        _ => "https://api.sandbox.insightiq.ai",
    }
}

/// The named IP sets usable in `allow_ips` and the addresses in each.
pub const IP_SETS: &[(&str, &[&str])] = &[
    ("insightiq-sandbox", &["54.211.40.75/32", "3.82.72.201/32"]),
    ("insightiq-staging", &["3.211.223.93/32", "44.216.173.40/32"]),
    ("insightiq-production", &["3.211.223.93/32", "44.216.173.40/32"]),
];

/// The CIDRs of a named IP set.
pub fn ip_set(name: &str) -> Option<&'static [&'static str]> {
    IP_SETS.iter().find(|(n, _)| *n == name).map(|(_, cidrs)| *cidrs)
}

/// The signature header InsightIQ sends.
pub const SIGNATURE_HEADER: &str = "webhook-signatures";
