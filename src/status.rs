//! `hooklake status`: reads `/metrics` of a running instance and prints a one-screen overview, stage by stage
//! (sources, journal, enrich, plugins, sinks and their tables, dead letters, the webhook watcher).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::metrics as m;

/// One sample: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// Parsed Prometheus text: samples by metric name.
#[derive(Debug, Default)]
pub struct Scrape(BTreeMap<String, Vec<Sample>>);

impl Scrape {
    /// Parses the text exposition format (comments skipped; malformed lines ignored).
    pub fn parse(text: &str) -> Self {
        let mut out: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((head, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (head, BTreeMap::new()),
            };
            out.entry(name.to_owned()).or_default().push((labels, value));
        }
        Self(out)
    }

    /// The samples of `name`.
    pub fn samples(&self, name: &str) -> &[Sample] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// The sum of `name` over samples whose labels include every `(key, value)` of `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .iter()
            .filter(|(l, _)| want.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v)))
            .map(|(_, v)| v)
            .sum()
    }

    /// The distinct values of label `key` on `name`.
    pub fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self.samples(name).iter().filter_map(|(l, _)| l.get(key).cloned()).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    }

    /// The `q` quantile (0..1) of histogram `name` with labels `want`, as the upper bound of its bucket.
    pub fn quantile(&self, name: &str, want: &[(&str, &str)], q: f64) -> Option<f64> {
        let buckets: Vec<(f64, f64)> = {
            let mut b: Vec<(f64, f64)> = self
                .samples(&format!("{name}_bucket"))
                .iter()
                .filter(|(l, _)| want.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v)))
                .filter_map(|(l, v)| {
                    let le = l.get("le")?;
                    let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                    Some((le, *v))
                })
                .collect();
            b.sort_by(|a, b| a.0.total_cmp(&b.0));
            b
        };
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets.iter().find(|(_, c)| *c >= q * total).map(|(le, _)| *le)
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in s.split("\",") {
        if let Some((k, v)) = pair.split_once('=') {
            out.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
        }
    }
    out
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_infinite() => ">1s".into(),
        Some(v) => format!("≤{}ms", (v * 1000.0).round()),
    }
}

/// The overview of one scrape.
pub fn render(url: &str, s: &Scrape) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "hooklake status · {url}");
    let _ = writeln!(out, "\nSOURCES");
    for source in s.label_values(m::HTTP_REQUESTS, "source") {
        let want = [("source", source.as_str())];
        let mut statuses = String::new();
        for (labels, v) in s.samples(m::HTTP_REQUESTS) {
            if labels.get("source") == Some(&source) {
                let _ = write!(statuses, " {}={v}", labels.get("status").map_or("?", String::as_str));
            }
        }
        let _ = writeln!(
            out,
            "  {source:<14} accepted {:<8} duplicates {:<8} answers{statuses}",
            s.sum(m::ACCEPTED, &want),
            s.sum(m::DUPLICATES, &want)
        );
    }
    let _ = writeln!(out, "\nJOURNAL");
    let _ = writeln!(
        out,
        "  depth {} events · {:.1} MiB · next seq {} · dedup keys {} · commits {} (p50 {}, p99 {})",
        s.sum(m::JOURNAL_DEPTH, &[]),
        s.sum(m::JOURNAL_BYTES, &[]) / 1_048_576.0,
        s.sum(m::JOURNAL_NEXT_SEQ, &[]),
        s.sum(m::DEDUP_KEYS, &[]),
        s.sum(m::COMMITS, &[]),
        ms(s.quantile(m::COMMIT_SECONDS, &[], 0.5)),
        ms(s.quantile(m::COMMIT_SECONDS, &[], 0.99)),
    );
    let stages = s.label_values(m::ENRICH_EVENTS, "stage");
    if !stages.is_empty() {
        let _ = writeln!(out, "\nENRICH");
        for stage in stages {
            let w = [("stage", stage.as_str())];
            let _ = writeln!(
                out,
                "  {stage:<14} handed on {} · backlog {} · requests {} · ids {} (missing {}) · 429s {} · retries {} · failed calls {} · call p99 {}",
                s.sum(m::ENRICH_EVENTS, &w),
                s.sum(m::ENRICH_BACKLOG, &w),
                s.sum(m::ENRICH_REQUESTS, &w),
                s.sum(m::ENRICH_IDS, &w),
                s.sum(m::ENRICH_MISSING, &w),
                s.sum(m::ENRICH_THROTTLED, &w),
                s.sum(m::ENRICH_RETRIES, &w),
                s.sum(m::ENRICH_CALLS, &[("stage", stage.as_str()), ("outcome", "failed")]),
                ms(s.quantile(m::ENRICH_CALL_SECONDS, &w, 0.99)),
            );
        }
    }
    let stages = s.label_values(m::PLUGIN_CALLS, "stage");
    if !stages.is_empty() {
        let _ = writeln!(out, "\nPLUGINS");
        for stage in stages {
            let w = [("stage", stage.as_str())];
            let _ = writeln!(
                out,
                "  {stage:<14} calls {} · events {} · errors {} · call p50 {} p99 {}",
                s.sum(m::PLUGIN_CALLS, &w),
                s.sum(m::PLUGIN_EVENTS, &w),
                s.sum(m::PLUGIN_ERRORS, &w),
                ms(s.quantile(m::PLUGIN_CALL_SECONDS, &w, 0.5)),
                ms(s.quantile(m::PLUGIN_CALL_SECONDS, &w, 0.99)),
            );
        }
    }
    let sinks = s.label_values(m::SINK_ROWS, "sink");
    if !sinks.is_empty() {
        let _ = writeln!(out, "\nSINKS");
        for sink in sinks {
            let w = [("sink", sink.as_str())];
            let _ = writeln!(
                out,
                "  {sink:<14} rows {} · files {} · lag {} events · write errors {} · upload p99 {}",
                s.sum(m::SINK_ROWS, &w),
                s.sum(m::SINK_FILES, &w),
                s.sum(m::SINK_LAG, &w),
                s.sum(m::SINK_ERRORS, &w),
                ms(s.quantile(m::SINK_UPLOAD_SECONDS, &w, 0.99)),
            );
            for (labels, rows) in s.samples(m::TABLE_ROWS) {
                if labels.get("sink") != Some(&sink) {
                    continue;
                }
                let table = labels.get("table").map_or("?", String::as_str);
                let files = s.sum(m::TABLE_FILES, &[("sink", sink.as_str()), ("table", table)]);
                let _ = writeln!(out, "    {table:<20} rows {rows:<10} files {files}");
            }
        }
    }
    let dead: f64 = s.sum(m::DEAD_LETTERS, &[]);
    let _ = writeln!(out, "\nDEAD LETTERS  {dead}");
    for (labels, v) in s.samples(m::DEAD_LETTERS) {
        if *v > 0.0 {
            let _ = writeln!(
                out,
                "  {:<14} {v}  (hooklake dead-letters list)",
                labels.get("stage").map_or("?", String::as_str)
            );
        }
    }
    if !s.samples(m::WEBHOOK_INACTIVE).is_empty() {
        let inactive = s.sum(m::WEBHOOK_INACTIVE, &[]) > 0.0;
        let _ = writeln!(
            out,
            "\nWEBHOOK  {} · checks {} · re-enabled {} times · check errors {}",
            if inactive { "INACTIVE: InsightIQ is not delivering" } else { "active" },
            s.sum(m::WEBHOOK_CHECKS, &[]),
            s.sum(m::WEBHOOK_REACTIVATIONS, &[]),
            s.sum(m::WEBHOOK_ERRORS, &[]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_sums_and_quantiles() {
        let text = "# HELP x y\n\
            hooklake_http_requests_total{source=\"a\",status=\"200\"} 5\n\
            hooklake_http_requests_total{source=\"a\",status=\"401\"} 2\n\
            hooklake_journal_depth 7\n\
            hooklake_journal_commit_seconds_bucket{le=\"0.001\"} 50\n\
            hooklake_journal_commit_seconds_bucket{le=\"0.002\"} 99\n\
            hooklake_journal_commit_seconds_bucket{le=\"+Inf\"} 100\n";
        let s = Scrape::parse(text);
        assert_eq!(s.sum(m::HTTP_REQUESTS, &[("source", "a")]), 7.0);
        assert_eq!(s.sum(m::HTTP_REQUESTS, &[("status", "401")]), 2.0);
        assert_eq!(s.sum(m::JOURNAL_DEPTH, &[]), 7.0);
        assert_eq!(s.quantile(m::COMMIT_SECONDS, &[], 0.5), Some(0.001));
        assert_eq!(s.quantile(m::COMMIT_SECONDS, &[], 0.99), Some(0.002));
        assert_eq!(s.quantile(m::COMMIT_SECONDS, &[], 1.0), Some(f64::INFINITY));
        let screen = render("http://x/metrics", &s);
        assert!(screen.contains("answers 200=5 401=2"), "{screen}");
        assert!(screen.contains("depth 7 events"), "{screen}");
    }
}
