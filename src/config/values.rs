//! Value syntax shared by every config key: `${VAR}` interpolation, durations and sizes.
//! Pure functions over strings; the environment is passed in, so tests need no process state.

use std::collections::HashMap;
use std::time::Duration;

/// Where `${VAR}` looks up values: the process environment, or a fixed map in tests.
pub enum Env<'a> {
    /// `std::env::var`.
    Process,
    /// A fixed set of variables.
    Map(&'a HashMap<String, String>),
    /// No variables at all.
    Empty,
}

impl Env<'_> {
    /// An environment with no variables.
    pub fn empty() -> Env<'static> {
        Env::Empty
    }

    fn get(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Map(m) => m.get(name).cloned(),
            Env::Empty => None,
        }
    }
}

/// Why `${…}` could not be replaced. Never carries the value of a variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${NAME}` with `NAME` unset and no default.
    #[error("environment variable `{name}` is not set (give a default with ${{{name}:-…}})")]
    Unset {
        /// The variable.
        name: String,
    },
    /// `${` without `}` or with an invalid name. Carries only the position: the text may hold a secret.
    #[error(
        "bad variable reference at character {at} of the value: write ${{NAME}} or ${{NAME:-default}}, and $$ for a literal $"
    )]
    Malformed {
        /// 1-based character position of the `$` in the value.
        at: usize,
    },
}

/// Replaces `${NAME}` and `${NAME:-default}` (default used when NAME is unset or empty); `$$` is a literal `$`.
pub fn interpolate(raw: &str, env: &Env<'_>) -> Result<String, InterpolationError> {
    if !raw.contains('$') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let at = raw[..raw.len() - rest.len() + i].chars().count() + 1;
            let Some(end) = body.find('}') else {
                return Err(InterpolationError::Malformed { at });
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(InterpolationError::Malformed { at });
            }
            match (env.get(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(InterpolationError::Unset { name: name.to_owned() }),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `500ms`, `30s`, `5m`, `6h`, `7d` (one number, one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration; write e.g. 500ms, 60s, 5m, 6h or 7d"))?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` has no known unit; write e.g. 500ms, 60s, 5m, 6h or 7d")),
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("`{s}` is too long"))
}

/// Parses `1MiB`, `512KiB`, `10GB`, `100B` or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size; write e.g. 1MiB, 512KiB or 10GB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(format!("`{s}` has no known unit; write e.g. 1MiB, 512KiB or 10GB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([("A".into(), "alpha".into()), ("EMPTY".into(), String::new())])
    }

    #[test]
    fn interpolates_set_default_and_literal_dollar() {
        let m = env();
        let e = Env::Map(&m);
        assert_eq!(interpolate("x-${A}-y", &e), Ok("x-alpha-y".into()));
        assert_eq!(interpolate("${B:-dflt}", &e), Ok("dflt".into()));
        assert_eq!(interpolate("${EMPTY:-d}", &e), Ok("d".into()));
        assert_eq!(interpolate("cost $$5 and $x", &e), Ok("cost $5 and $x".into()));
        assert_eq!(interpolate("${B:-}", &e), Ok(String::new()));
    }

    #[test]
    fn unset_variable_names_the_variable() {
        let m = env();
        let err = interpolate("${NOPE}", &Env::Map(&m)).expect_err("unset");
        assert_eq!(err, InterpolationError::Unset { name: "NOPE".into() });
        assert!(err.to_string().contains("`NOPE` is not set"));
    }

    #[test]
    fn malformed_references_never_echo_the_value() {
        let err = interpolate("${INSIGHTIQ-SECRET:-realkey}", &Env::Empty).expect_err("bad name");
        assert_eq!(err, InterpolationError::Malformed { at: 1 });
        assert!(!err.to_string().contains("realkey"), "{err}");
        let err = interpolate("abc${unterminated-secret", &Env::Empty).expect_err("no brace");
        assert_eq!(err, InterpolationError::Malformed { at: 4 });
    }

    #[test]
    fn malformed_references_are_errors() {
        let m = env();
        assert!(matches!(interpolate("${A", &Env::Map(&m)), Err(InterpolationError::Malformed { .. })));
        assert!(matches!(interpolate("${1A}", &Env::Map(&m)), Err(InterpolationError::Malformed { .. })));
        assert!(matches!(interpolate("${}", &Env::Map(&m)), Err(InterpolationError::Malformed { .. })));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("7 weeks").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("1 MiBs").is_err());
    }

    proptest::proptest! {
        #[test]
        fn interpolation_without_dollar_is_identity(s in "[^$]*") {
            proptest::prop_assert_eq!(interpolate(&s, &Env::Empty), Ok(s.clone()));
        }

        #[test]
        fn interpolation_never_panics(s in ".*") {
            let _ = interpolate(&s, &Env::Empty);
        }
    }
}
