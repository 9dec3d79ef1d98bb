//! Config diagnostics: byte spans → `file:line:col: message`, collected so a user sees every mistake at once,
//! and [`Fields`], the reader every stage uses to take its keys out of a TOML table.
//!
//! `Fields` remembers which keys were read; whatever is left at [`Fields::finish`] is an unknown key and is
//! reported at its own position with a "did you mean" hint. So a stage's parser is the single list of the keys
//! it accepts, and a typo can never be silently ignored.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::values::{self, Env};
use crate::secret::Secret;

/// One config problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors against one source text.
pub struct Diagnostics<'s> {
    file: String,
    src: &'s str,
    errors: Vec<(usize, ConfigError)>,
    env: &'s Env<'s>,
}

impl<'s> Diagnostics<'s> {
    /// Diagnostics for `src`, read from `file`, interpolating `${VAR}` from `env`.
    pub fn new(file: impl Into<String>, src: &'s str, env: &'s Env<'s>) -> Self {
        Self { file: file.into(), src, errors: Vec::new(), env }
    }

    /// Records `message` at byte offset `span.start`.
    pub fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let offset = span.map_or(0, |s| s.start).min(self.src.len());
        let before = &self.src[..floor_char_boundary(self.src, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let error = ConfigError { file: self.file.clone(), line, col, message: message.into() };
        self.errors.push((offset, error));
    }

    /// True when no error has been recorded.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in file order, or `Ok` when there are none.
    pub fn into_result(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        // Stable: errors at the same place keep the order they were found in.
        self.errors.sort_by_key(|(offset, _)| *offset);
        Err(ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect()))
    }

    /// Where `${VAR}` values come from.
    pub fn env(&self) -> &Env<'s> {
        self.env
    }

    /// The config file's folder: relative paths in the config resolve against it.
    pub fn base_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.file).parent().map(std::path::Path::to_path_buf).unwrap_or_default()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A value with the byte range it came from, so later checks (an input naming nothing) can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it stands in the config file.
    pub span: Option<Range<usize>>,
}

/// Reads the keys of one TOML table, reporting wrong types and unknown keys.
pub struct Fields<'a> {
    table: &'a dyn TableLike,
    /// Dotted path of the table (`sources.insightiq`), used in messages.
    path: String,
    /// Where to point when a required key is missing.
    span: Option<Range<usize>>,
    used: BTreeSet<String>,
}

impl<'a> Fields<'a> {
    /// A reader over `table`, named `path` in messages, whose header stands at `span`.
    pub fn new(table: &'a dyn TableLike, path: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self { table, path: path.into(), span, used: BTreeSet::new() }
    }

    /// The dotted path of this table.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where this table starts.
    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    /// The raw item under `key`, marked as read.
    pub fn item(&mut self, key: &str) -> Option<&'a Item> {
        // Asked-for keys are the known keys: present or not, they are what suggestions draw on.
        self.used.insert(key.to_owned());
        self.table.get(key)
    }

    /// The span of `key`'s value (or of the table when the key is absent).
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get(key).and_then(Item::span).or_else(|| self.span.clone())
    }

    /// A string; `${VAR}` interpolated.
    pub fn opt_string(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Spanned<String>> {
        let item = self.item(key)?;
        let span = item.span();
        match item.as_str() {
            Some(raw) => match values::interpolate(raw, d.env()) {
                Ok(value) => Some(Spanned { value, span }),
                Err(e) => {
                    d.error(span, format!("{}.{key}: {e}", self.path));
                    None
                }
            },
            None => {
                d.error(span, format!("{}.{key} must be a string, not {}", self.path, type_name(item)));
                None
            }
        }
    }

    /// A required string.
    pub fn string(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Spanned<String>> {
        if self.table.get(key).is_none() {
            d.error(self.span.clone(), format!("{} needs `{key}`", self.path));
            return None;
        }
        self.opt_string(d, key)
    }

    /// A string with a default.
    pub fn string_or(&mut self, d: &mut Diagnostics<'_>, key: &str, default: &str) -> String {
        self.opt_string(d, key).map_or_else(|| default.to_owned(), |s| s.value)
    }

    /// One of `choices`, defaulting to `default`.
    pub fn choice(&mut self, d: &mut Diagnostics<'_>, key: &str, choices: &[&str], default: &str) -> String {
        match self.opt_string(d, key) {
            None => default.to_owned(),
            Some(s) if choices.contains(&s.value.as_str()) => s.value,
            Some(s) => {
                d.error(
                    s.span,
                    format!(
                        "{}.{key}: unknown value `{}`; expected one of: {}",
                        self.path,
                        s.value,
                        choices.join(", ")
                    ),
                );
                default.to_owned()
            }
        }
    }

    /// An array of strings, each with its span; `${VAR}` interpolated. `None` when absent.
    pub fn opt_strings(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Vec<Spanned<String>>> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            d.error(item.span(), format!("{}.{key} must be an array of strings, not {}", self.path, type_name(item)));
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for v in array.iter() {
            let span = v.span();
            match v.as_str() {
                Some(raw) => match values::interpolate(raw, d.env()) {
                    Ok(value) => out.push(Spanned { value, span }),
                    Err(e) => d.error(span, format!("{}.{key}: {e}", self.path)),
                },
                None => d.error(span, format!("{}.{key} must hold strings, not {}", self.path, value_type_name(v))),
            }
        }
        Some(out)
    }

    /// The length of the array under `key`, if it is one.
    pub fn array_len(&self, key: &str) -> Option<usize> {
        self.table.get(key).and_then(Item::as_array).map(toml_edit::Array::len)
    }

    /// A secret string: like [`Fields::opt_string`], but its value never appears in a message.
    pub fn opt_secret(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Spanned<Secret>> {
        self.opt_string(d, key).map(|s| Spanned { value: Secret::new(s.value), span: s.span })
    }

    /// An array of secrets.
    pub fn opt_secrets(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Vec<Spanned<Secret>>> {
        self.opt_strings(d, key)
            .map(|v| v.into_iter().map(|s| Spanned { value: Secret::new(s.value), span: s.span }).collect())
    }

    /// A duration string (`500ms`, `60s`, `5m`, `6h`, `7d`).
    pub fn duration(&mut self, d: &mut Diagnostics<'_>, key: &str, default: Duration) -> Duration {
        let Some(s) = self.opt_string(d, key) else { return default };
        match values::parse_duration(&s.value) {
            Ok(v) => v,
            Err(e) => {
                d.error(s.span, format!("{}.{key}: {e}", self.path));
                default
            }
        }
    }

    /// An optional duration string.
    pub fn opt_duration(&mut self, d: &mut Diagnostics<'_>, key: &str) -> Option<Duration> {
        let s = self.opt_string(d, key)?;
        match values::parse_duration(&s.value) {
            Ok(v) => Some(v),
            Err(e) => {
                d.error(s.span, format!("{}.{key}: {e}", self.path));
                None
            }
        }
    }

    /// A size string (`1MiB`, `512KiB`, `10GB`) or a plain integer of bytes.
    pub fn size(&mut self, d: &mut Diagnostics<'_>, key: &str, default: u64) -> u64 {
        let Some(item) = self.item(key) else { return default };
        if let Some(n) = item.as_integer() {
            return u64::try_from(n).unwrap_or_else(|_| {
                d.error(item.span(), format!("{}.{key} must not be negative", self.path));
                default
            });
        }
        let Some(s) = self.opt_string(d, key) else { return default };
        match values::parse_size(&s.value) {
            Ok(v) => v,
            Err(e) => {
                d.error(s.span, format!("{}.{key}: {e}", self.path));
                default
            }
        }
    }

    /// A non-negative integer in `range`.
    pub fn integer(&mut self, d: &mut Diagnostics<'_>, key: &str, default: u64, range: Range<u64>) -> u64 {
        let Some(item) = self.item(key) else { return default };
        match item.as_integer().and_then(|n| u64::try_from(n).ok()) {
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                d.error(
                    item.span(),
                    format!("{}.{key} = {n} is out of range ({}..={})", self.path, range.start, range.end - 1),
                );
                default
            }
            None => {
                d.error(item.span(), format!("{}.{key} must be a non-negative integer", self.path));
                default
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, d: &mut Diagnostics<'_>, key: &str, default: bool) -> bool {
        let Some(item) = self.item(key) else { return default };
        item.as_bool().unwrap_or_else(|| {
            d.error(item.span(), format!("{}.{key} must be true or false", self.path));
            default
        })
    }

    /// Reports every key that no reader asked for, with a suggestion when one is close.
    pub fn finish(self, d: &mut Diagnostics<'_>) {
        for (key, item) in self.table.iter() {
            if self.used.contains(key) {
                continue;
            }
            let span = self.table.key(key).and_then(|k| k.span()).or_else(|| item.span());
            let hint = suggest(key, self.used.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            d.error(span, format!("unknown field `{key}` in {}{hint}", self.path));
        }
    }

    /// Marks `keys` as known without reading them (keys a caller handles itself).
    pub fn known(&mut self, keys: &[&str]) {
        for k in keys {
            self.used.insert((*k).to_owned());
        }
    }
}

/// The closest candidate within edit distance 2, if any.
pub fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(dist, _)| *dist <= 2)
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A TOML type name for messages.
pub fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type_name(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["listen", "path", "max_body"];
        assert_eq!(suggest("lisen", keys.iter().copied()), Some("listen"));
        assert_eq!(suggest("max_bdy", keys.iter().copied()), Some("max_body"));
        assert_eq!(suggest("completely_else", keys.iter().copied()), None);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let env = Env::empty();
        let src = "a = 1\nbé = 2\n";
        let mut d = Diagnostics::new("c.toml", src, &env);
        let offset = src.find("= 2").expect("present");
        d.error(Some(offset..offset + 1), "x");
        let errs = d.into_result().expect_err("one error");
        assert_eq!(errs.to_string(), "c.toml:2:4: x");
    }
}
