//! A plugin's description (`spec/plugins.md`, "Describe"): its name, the events it claims and the tables it
//! declares. Checked when the plugin is loaded, so a broken plugin fails `validate` naming its file.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::{Column, parse_columns};

/// Events a plugin claims, and the table their rows go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Exact names or `FAMILY.*`.
    pub events: Vec<String>,
    /// The table.
    pub table: String,
}

/// A checked describe document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it claims.
    pub routes: Vec<Route>,
    /// What it declares, by table name.
    pub tables: BTreeMap<String, Vec<Column>>,
}

impl Describe {
    /// Parses and checks a describe document.
    ///
    /// # Errors
    /// A message naming the first problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("describe is not JSON: {e}"))?;
        let name = v.get("name").and_then(Value::as_str).ok_or("describe needs a string `name`")?.to_owned();
        let version = v.get("version").and_then(Value::as_str).unwrap_or("").to_owned();
        let mut tables = BTreeMap::new();
        let declared = v.get("tables").and_then(Value::as_object).ok_or("describe needs a `tables` object")?;
        for (table, cols) in declared {
            if table.is_empty()
                || table.len() > 64
                || !table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!("table `{table}`: names are lowercase letters, digits and `_`"));
            }
            if table == crate::sinks::parquet::EVENTS {
                return Err("table `events` is the raw table; a plugin cannot declare it".into());
            }
            tables.insert(table.clone(), parse_columns(cols, &format!("tables.{table}"))?);
        }
        let mut routes = Vec::new();
        for (i, r) in
            v.get("routes").and_then(Value::as_array).ok_or("describe needs a `routes` list")?.iter().enumerate()
        {
            let table = r.get("table").and_then(Value::as_str).ok_or(format!("routes[{i}] needs a `table`"))?;
            if !tables.contains_key(table) {
                return Err(format!("routes[{i}] sends rows to `{table}`, which `tables` does not declare"));
            }
            let events: Vec<String> = r
                .get("events")
                .and_then(Value::as_array)
                .ok_or(format!("routes[{i}] needs an `events` list"))?
                .iter()
                .map(|e| e.as_str().map(str::to_owned).ok_or(format!("routes[{i}].events holds a non-string")))
                .collect::<Result<_, _>>()?;
            for e in &events {
                check_pattern(e).map_err(|m| format!("routes[{i}]: {m}"))?;
            }
            routes.push(Route { events, table: table.to_owned() });
        }
        let patterns: Vec<&str> = routes.iter().flat_map(|r| r.events.iter().map(String::as_str)).collect();
        for (i, a) in patterns.iter().enumerate() {
            for b in &patterns[i + 1..] {
                if overlap(a, b) {
                    return Err(format!("routes claim `{a}` and `{b}`, which overlap: each event goes to one route"));
                }
            }
        }
        Ok(Self { name, version, routes, tables })
    }

    /// The table `event` goes to, if this plugin claims it.
    pub fn route(&self, event: &str) -> Option<&str> {
        self.routes.iter().find(|r| r.events.iter().any(|p| matches(p, event))).map(|r| r.table.as_str())
    }

    /// Every event pattern.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().flat_map(|r| r.events.iter().map(String::as_str))
    }
}

fn check_pattern(p: &str) -> Result<(), String> {
    let family = p.strip_suffix(".*").unwrap_or(p);
    if family.is_empty() || family.contains('*') || p.chars().any(char::is_whitespace) {
        return Err(format!("`{p}` is not an event pattern (an exact name or `FAMILY.*`)"));
    }
    Ok(())
}

/// Does pattern `p` (exact or `FAMILY.*`) claim `event`?
pub fn matches(p: &str, event: &str) -> bool {
    match p.strip_suffix(".*") {
        Some(family) => event.strip_prefix(family).is_some_and(|rest| rest.starts_with('.')),
        None => p == event,
    }
}

/// Can one event match both patterns?
pub fn overlap(a: &str, b: &str) -> bool {
    match (a.strip_suffix(".*"), b.strip_suffix(".*")) {
        (Some(fa), Some(fb)) => fa == fb,
        (Some(_), None) => matches(a, b),
        (None, Some(_)) => matches(b, a),
        (None, None) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"name": "insightiq", "version": "0.1.0",
      "routes": [{"events": ["CONTENTS.ADDED", "CONTENTS.UPDATED"], "table": "contents"},
                 {"events": ["ACCOUNTS.*", "SESSION.EXPIRED"], "table": "accounts"}],
      "tables": {"contents": [{"name": "id", "type": "string", "nullable": false}],
                 "accounts": [{"name": "id", "type": "string"}]}}"#;

    #[test]
    fn routes_match_exact_names_and_families() {
        let d = Describe::parse(GOOD).unwrap();
        assert_eq!(d.route("CONTENTS.ADDED"), Some("contents"));
        assert_eq!(d.route("ACCOUNTS.REMOVED"), Some("accounts"));
        assert_eq!(d.route("CONTENTS.PUBLISH_READY"), None);
        assert_eq!(d.route("ACCOUNTSX.CONNECTED"), None, "a family is matched whole");
        assert_eq!(d.tables.len(), 2);
    }

    #[test]
    fn broken_descriptions_are_refused_with_the_reason() {
        let err = |s: &str| Describe::parse(s).unwrap_err();
        assert!(err("not json").contains("not JSON"));
        assert!(err(&GOOD.replace("\"table\": \"accounts\"", "\"table\": \"nowhere\"")).contains("does not declare"));
        assert!(err(&GOOD.replace("SESSION.EXPIRED", "ACCOUNTS.CONNECTED")).contains("overlap"));
        assert!(err(&GOOD.replace("\"accounts\": [", "\"Accounts\": [")).contains("lowercase"));
        assert!(err(&GOOD.replace("SESSION.EXPIRED", "SESSION.*.X")).contains("not an event pattern"));
    }

    #[test]
    fn overlapping_patterns_are_found_in_every_combination() {
        assert!(overlap("A.*", "A.*"));
        assert!(overlap("A.*", "A.X"));
        assert!(overlap("A.X", "A.*"));
        assert!(overlap("A.X", "A.X"));
        assert!(!overlap("A.*", "AB.X"));
        assert!(!overlap("A.X", "A.Y"));
        assert!(!overlap("A.*", "B.*"));
    }
}
