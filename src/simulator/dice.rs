//! Deterministic draws and the id and timestamp text they become.
//!
//! Everything the simulator makes up (a record, an event, an id, a fault) is a pure function of its inputs, so two
//! runs, or a test and a separate simulator process, agree without sharing state. splitmix64 mixes numbers and
//! FNV-1a hashes text. Nothing here is fit for secrets.

use std::time::{SystemTime, UNIX_EPOCH};

/// splitmix64's increment.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Microseconds from the Unix epoch to 2026-01-01T00:00:00 UTC: the simulated data lives in 2026.
pub(crate) const EPOCH_2026_MICROS: i64 = 1_767_225_600_000_000;

/// Microseconds in a day.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// splitmix64's output function: a bijection on `u64` that scatters nearby inputs.
pub(crate) fn mix(z: u64) -> u64 {
    let mut z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of `salt`, a separator, then `text`, mixed: distinct salts give unrelated hashes of the same text.
pub(crate) fn hash(salt: &str, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0xff]).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// A bijection on the low 48 bits: distinct `n < 2^48` give distinct results, so ids built from it never collide.
pub(crate) fn scramble48(n: u64) -> u64 {
    const MASK: u64 = (1 << 48) - 1;
    let mut x = n & MASK;
    // Multiplying by an odd constant and xor-shifting right are both invertible modulo 2^48.
    x = x.wrapping_mul(0x9e37_79b9_7f4b) & MASK;
    x ^= x >> 24;
    x = x.wrapping_mul(0x5851_f42d_4c95) & MASK;
    x ^ (x >> 21)
}

/// A stream of deterministic draws.
#[derive(Debug, Clone)]
pub(crate) struct Dice {
    state: u64,
}

impl Dice {
    /// Draws seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: mix(seed) }
    }

    /// Draws seeded with the hash of `text` under `salt`.
    pub(crate) fn of(salt: &str, text: &str) -> Self {
        Self { state: hash(salt, text) }
    }

    /// The next 64 random-looking bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A number in `0..n` (0 when `n` is 0). The modulo bias is irrelevant at these sizes.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `permille / 1000`.
    pub(crate) fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// A float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One of `items` (which must not be empty).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A count skewed toward small values: most are near 0, a few near `max`.
    pub(crate) fn skewed(&mut self, max: u64) -> u64 {
        let u = self.unit();
        (u * u * u * max as f64) as u64
    }

    /// A 32-hex id.
    pub(crate) fn hex_id(&mut self) -> String {
        hex_id(self.next(), self.next())
    }

    /// A dashed, version-4-shaped UUID.
    pub(crate) fn uuid(&mut self) -> String {
        uuid(self.next(), self.next())
    }

    /// A 32-hex id or a dashed UUID, one in four dashed: InsightIQ uses both shapes.
    pub(crate) fn any_id(&mut self) -> String {
        if self.chance(250) { self.uuid() } else { self.hex_id() }
    }
}

/// 32 lowercase hex digits from two words.
pub(crate) fn hex_id(a: u64, b: u64) -> String {
    format!("{a:016x}{b:016x}")
}

/// A dashed UUID (version 4, variant 1 bits set) from two words; the low 48 bits of `b` are kept whole.
pub(crate) fn uuid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The text shapes of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeFormat {
    /// `2021-11-10T15:44:18.520054`: naive ISO 8601 with microseconds (records, most events).
    Naive,
    /// `2021-10-25T16:45:26.761Z`: milliseconds and a `Z`.
    Zulu,
    /// `2021-10-25 16:45:26.761622`: a space instead of the `T`.
    Space,
}

/// Formats `micros` since the Unix epoch (UTC) in `format`.
pub(crate) fn format_time(micros: i64, format: TimeFormat) -> String {
    let days = micros.div_euclid(DAY_MICROS);
    let in_day = micros.rem_euclid(DAY_MICROS);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = in_day % 1_000_000;
    match format {
        TimeFormat::Naive => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:06}"),
        TimeFormat::Zulu => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", frac / 1000),
        TimeFormat::Space => format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{frac:06}"),
    }
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_micros() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
