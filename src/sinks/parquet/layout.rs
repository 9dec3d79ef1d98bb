//! Where files go in the lake (`spec/lake.md`): `<prefix>/<table>/<key>=<value>/…/part-<first>-<last>.parquet`.
//! Pure functions: names derive only from the table, the partition values and the journal range, so a file
//! rewritten after a crash lands on the same name.

use object_store::path::{Path, PathPart};

/// Width of the zero-padded sequence numbers in file names (u64::MAX has 20 digits), so names sort by range.
pub const SEQ_WIDTH: usize = 20;

/// Makes a partition value safe as one path segment: no `/`, `\`, `=`, `..`, control characters or leading dot
/// can escape the table folder or confuse Hive partition parsing. Characters outside `[A-Za-z0-9._-]` become
/// `%XX` (Hive's own escaping), so distinct values stay distinct; an empty value becomes Hive's default.
pub fn sanitize(value: &str) -> String {
    if value.is_empty() {
        return "__HIVE_DEFAULT_PARTITION__".to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone (or any leading dot: hidden files) are escaped too.
    if out.starts_with('.') {
        out.replace_range(0..1, "%2E");
    }
    out
}

/// The file name for a journal range.
pub fn file_name(first_seq: u64, last_seq: u64) -> String {
    format!("part-{first_seq:0w$}-{last_seq:0w$}.parquet", w = SEQ_WIDTH)
}

/// The object path of a file: `prefix/table/k=v/…/part-….parquet`. Keys are config names (validated);
/// values are sanitised here.
pub fn file_path(prefix: &Path, table: &str, partition: &[(String, String)], first_seq: u64, last_seq: u64) -> Path {
    let mut p = prefix.clone().join(table);
    for (k, v) in partition {
        // Already escaped by `sanitize`: parse the segment as is (`join` would escape the `%` a second time).
        let segment = format!("{k}={}", sanitize(v));
        p = match PathPart::parse(&segment) {
            Ok(part) => p.join(part),
            Err(_) => p.join(segment),
        };
    }
    p.join(file_name(first_seq, last_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_range_and_are_deterministic() {
        assert_eq!(file_name(0, 41), "part-00000000000000000000-00000000000000000041.parquet");
        assert_eq!(file_name(u64::MAX, u64::MAX).len(), "part--.parquet".len() + 2 * SEQ_WIDTH);
        assert!(file_name(9, 10) < file_name(10, 11));
    }

    #[test]
    fn paths_follow_the_lake_contract() {
        let p = file_path(&Path::from("lake"), "events", &[("date".into(), "2026-12-04".into())], 5, 9);
        assert_eq!(p.as_ref(), "lake/events/date=2026-12-04/part-00000000000000000005-00000000000000000009.parquet");
        let escaped = file_path(&Path::from("lake"), "events", &[("event_type".into(), "A/B".into())], 1, 1);
        assert_eq!(
            escaped.as_ref(),
            "lake/events/event_type=A%2FB/part-00000000000000000001-00000000000000000001.parquet"
        );
        let root = file_path(&Path::default(), "events", &[], 1, 1);
        assert_eq!(root.as_ref(), "events/part-00000000000000000001-00000000000000000001.parquet");
    }

    #[test]
    fn event_derived_values_cannot_escape_the_table_folder() {
        for (raw, want) in [
            ("../../etc", "%2E.%2F..%2Fetc"),
            ("a/b", "a%2Fb"),
            ("k=v", "k%3Dv"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("CONTENTS.ADDED", "CONTENTS.ADDED"),
            ("x\\y", "x%5Cy"),
            ("", "__HIVE_DEFAULT_PARTITION__"),
            ("café", "caf%C3%A9"),
        ] {
            assert_eq!(sanitize(raw), want, "{raw}");
        }
    }

    proptest::proptest! {
        #[test]
        fn sanitised_values_are_one_safe_segment(v in ".{0,30}") {
            let s = sanitize(&v);
            proptest::prop_assert!(!s.contains('/') && !s.contains('=') && !s.contains('\\'));
            proptest::prop_assert!(!s.starts_with('.'));
            proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_graphic()));
            let p = file_path(&Path::from("lake"), "events", &[("k".into(), v.clone())], 0, 0);
            proptest::prop_assert_eq!(p.parts().count(), 4);
        }
    }
}
