//! Time, injected. Every TTL, tolerance and timestamp reads a [`Clock`], so tests move time by hand
//! instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in microseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since 1970-01-01T00:00:00Z.
    fn now_micros(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            // A clock before 1970 is a broken host; clamp rather than panic on the request path.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `micros`.
    pub fn new(micros: i64) -> Self {
        Self(Arc::new(AtomicI64::new(micros)))
    }

    /// Moves the clock forward by `micros`.
    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds (`2026-12-04T10:00:00.123456Z`).
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Parses the timestamp formats InsightIQ sends (all UTC) and RFC 3339, to µs since the epoch:
/// `2021-11-10T15:44:18.520054`, `2021-10-25T16:45:26.761Z`, `2021-10-25 16:45:26.761622`,
/// `2021-10-25T18:45:26+02:00`, and a bare date `2021-10-25` (midnight UTC). `None` for anything else.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    if b.len() == 10 {
        return days.checked_mul(86_400_000_000);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let digits = &s[start..end.min(start + 6)];
        micros = digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32);
        i = end;
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// The UTC date (`YYYY-MM-DD`) of µs since the epoch.
pub fn date_of_micros(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(86_400_000_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_a_known_instant() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        // 2021-10-25T16:45:26.761622Z
        assert_eq!(format_micros(1_635_180_326_761_622), "2021-10-25T16:45:26.761622Z");
        assert_eq!(format_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn parses_the_three_insightiq_formats_and_rfc3339() {
        let want = 1_635_180_326_761_622;
        assert_eq!(parse_timestamp("2021-10-25 16:45:26.761622"), Some(want));
        assert_eq!(parse_timestamp("2021-10-25T16:45:26.761622"), Some(want));
        assert_eq!(parse_timestamp("2021-10-25T16:45:26.761Z"), Some(want - 622));
        assert_eq!(parse_timestamp("2021-10-25T18:45:26.761622+02:00"), Some(want));
        assert_eq!(parse_timestamp("2021-10-25T16:45:26.7616229Z"), Some(want), "beyond µs is truncated");
        assert_eq!(parse_timestamp("2021-10-25T16:45:26"), Some(want - 761_622));
        assert_eq!(parse_timestamp("2021-10-25"), Some(1_635_120_000_000_000));
        for bad in
            ["", "yesterday", "2021-13-01T00:00:00", "2021-10-25T16:45", "2021-10-25X16:45:26", "2021-10-25T16:45:26+2"]
        {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(m in -2_000_000_000_000_000i64..4_000_000_000_000_000i64) {
            proptest::prop_assert_eq!(parse_timestamp(&format_micros(m)), Some(m));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = parse_timestamp(&s);
        }
    }

    #[test]
    fn dates_of_instants() {
        assert_eq!(date_of_micros(0), "1970-01-01");
        assert_eq!(date_of_micros(1_635_180_326_761_622), "2021-10-25");
        assert_eq!(date_of_micros(-1), "1969-12-31");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_micros(), 5);
        c.advance(10);
        assert_eq!(c.now_micros(), 15);
    }
}
