//! `[sinks.<name>]` with `type = "parquet"`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::config::{Diagnostics, Fields};
use crate::secret::Secret;

/// Where the lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file://DIR` (relative to the config file's folder) or `file:///abs`.
    Local(PathBuf),
    /// `memory://` (tests, trying things out: gone at exit).
    Memory,
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (also `abfs://`, `azure://`).
    Cloud(Url),
}

/// Parquet compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd (default): small files, fast reads.
    Zstd,
    /// snappy: faster writes, larger files.
    Snappy,
    /// none.
    None,
}

/// Partition columns the raw table supports (each from the journal record, never from a plugin).
pub const PARTITION_KEYS: &[&str] = &["date", "event_type", "source"];

/// The Parquet sink, as parsed.
#[derive(Debug, Clone)]
pub struct ParquetConfig {
    /// `url`: where files go.
    pub location: Location,
    /// `[sinks.<name>.options]`: passed to `object_store` (endpoint, region, allow_http, credentials…); values
    /// are treated as secrets. Credentials otherwise come from the usual environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`).
    pub options: Vec<(String, Secret)>,
    /// `compression`: `zstd` (default), `snappy`, `none`.
    pub codec: Codec,
    /// `partition_by`: Hive partition keys, in order (default `["date"]`: the UTC date of `_received_at`).
    pub partition_by: Vec<String>,
    /// `roll_rows`: a file is written once this many rows are buffered (default 100000).
    pub roll_rows: u64,
    /// `roll_bytes`: … or this many payload bytes (default `128MiB`).
    pub roll_bytes: u64,
    /// `roll_interval`: … or the oldest buffered row is this old (default `60s`).
    pub roll_interval: Duration,
    /// `row_group_rows`: most rows per Parquet row group (default 131072).
    pub row_group_rows: u64,
}

impl ParquetConfig {
    /// Reads the sink's keys; relative `file://` paths resolve against the config file's folder.
    pub fn parse(f: &mut Fields<'_>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let base = d.base_dir();
        let base = base.as_path();
        let path = f.path().to_owned();
        let url = f.string(d, "url");
        let location = url.as_ref().and_then(|u| match parse_location(&u.value, base) {
            Ok(l) => Some(l),
            Err(e) => {
                d.error(u.span.clone(), format!("{path}.url: {e}"));
                None
            }
        });
        let mut options = Vec::new();
        if let Some(item) = f.item("options") {
            match item.as_table_like() {
                Some(t) => {
                    for (k, v) in t.iter() {
                        match v.as_str() {
                            Some(raw) => match crate::config::interpolate(raw, d.env()) {
                                Ok(value) => {
                                    if let Some(Location::Cloud(u)) = &location
                                        && let Err(e) = check_option(u, k)
                                    {
                                        d.error(t.key(k).and_then(|k| k.span()), format!("{path}.options: {e}"));
                                    }
                                    options.push((k.to_owned(), Secret::new(value)));
                                }
                                Err(e) => d.error(v.span(), format!("{path}.options.{k}: {e}")),
                            },
                            None => d.error(v.span(), format!("{path}.options.{k} must be a string")),
                        }
                    }
                }
                None => d.error(item.span(), format!("{path}.options must be a table")),
            }
        }
        let codec = match f.choice(d, "compression", &["zstd", "snappy", "none"], "zstd").as_str() {
            "snappy" => Codec::Snappy,
            "none" => Codec::None,
            _ => Codec::Zstd,
        };
        let partition_by = match f.opt_strings(d, "partition_by") {
            None => vec!["date".to_owned()],
            Some(keys) => {
                for k in &keys {
                    if !PARTITION_KEYS.contains(&k.value.as_str()) {
                        d.error(
                            k.span.clone(),
                            format!(
                                "{path}.partition_by: unknown key `{}` (known: {})",
                                k.value,
                                PARTITION_KEYS.join(", ")
                            ),
                        );
                    }
                }
                keys.into_iter().map(|k| k.value).collect()
            }
        };
        let roll_rows = f.integer(d, "roll_rows", 100_000, 1..100_000_001);
        let roll_bytes = f.size(d, "roll_bytes", 128 << 20);
        if roll_bytes == 0 || roll_bytes > 1 << 30 {
            // Files are built in memory, and Arrow string columns hold at most 2 GiB.
            d.error(f.value_span("roll_bytes"), format!("{path}.roll_bytes must be between 1B and 1GiB"));
        }
        let roll_interval = f.duration(d, "roll_interval", Duration::from_secs(60));
        if roll_interval.is_zero() {
            d.error(f.value_span("roll_interval"), format!("{path}.roll_interval must be above zero"));
        }
        let row_group_rows = f.integer(d, "row_group_rows", 131_072, 1..100_000_001);
        Some(Self {
            location: location.unwrap_or(Location::Memory),
            options,
            codec,
            partition_by,
            roll_rows,
            roll_bytes,
            roll_interval,
            row_group_rows,
        })
    }
}

/// Parses a sink `url`.
///
/// # Errors
/// A message naming what is wrong with it.
pub fn parse_location(raw: &str, base: &Path) -> Result<Location, String> {
    if let Some(rest) = raw.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("`file://` needs a folder, like file://lake or file:///var/lib/lake".into());
        }
        return Ok(Location::Local(base.join(rest)));
    }
    if raw == "memory://" || raw == "memory:///" {
        return Ok(Location::Memory);
    }
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL ({e})"))?;
    match url.scheme() {
        "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("`{raw}` names no bucket"));
            }
            Ok(Location::Cloud(url))
        }
        other => Err(format!("unsupported scheme `{other}://`; use file://, s3://, gs://, az:// or memory://")),
    }
}

/// Checks an `options` key against the object store's known keys.
fn check_option(url: &Url, key: &str) -> Result<(), String> {
    let known = match url.scheme() {
        "s3" | "s3a" => object_store::aws::AmazonS3ConfigKey::from_str(key).is_ok(),
        "gs" => object_store::gcp::GoogleConfigKey::from_str(key).is_ok(),
        _ => object_store::azure::AzureConfigKey::from_str(key).is_ok(),
    } || object_store::ClientConfigKey::from_str(key).is_ok();
    if known { Ok(()) } else { Err(format!("unknown option `{key}` for {}://", url.scheme())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_locations() {
        let base = Path::new("/etc/hl");
        assert_eq!(parse_location("file://lake", base), Ok(Location::Local(PathBuf::from("/etc/hl/lake"))));
        assert_eq!(parse_location("file:///var/lake", base), Ok(Location::Local(PathBuf::from("/var/lake"))));
        assert_eq!(parse_location("memory://", base), Ok(Location::Memory));
        assert!(matches!(parse_location("s3://bucket/prefix", base), Ok(Location::Cloud(_))));
        assert!(parse_location("ftp://x", base).unwrap_err().contains("unsupported scheme"));
        assert!(parse_location("s3:///nobucket", base).is_err());
        assert!(parse_location("file://", base).is_err());
    }

    #[test]
    fn option_keys_are_checked_per_store() {
        let s3 = Url::parse("s3://b/p").expect("url");
        assert!(check_option(&s3, "endpoint").is_ok());
        assert!(check_option(&s3, "aws_access_key_id").is_ok());
        assert!(check_option(&s3, "allow_http").is_ok());
        assert!(check_option(&s3, "endpoitn").is_err());
    }
}
