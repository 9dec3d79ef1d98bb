//! The on-disk form of an [`Entry`]: a version byte, then length-prefixed fields. Hand-written so the format
//! is explicit, stable and cheap (one allocation, no schema machinery on the request path).

use bytes::Bytes;

use super::Entry;

/// Version 2 adds the dedup key's expiry after the key (version 1 records are still read).
const VERSION: u8 = 2;
/// Key lifetime assumed for version 1 records, which did not store it: the default TTL.
const V1_TTL_MICROS: i64 = 7 * 86_400 * 1_000_000;

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Written by a newer hooklake.
    #[error("unknown record version {0}")]
    Version(u8),
    /// Shorter than its lengths say.
    #[error("record is truncated")]
    Truncated,
    /// A text field is not UTF-8.
    #[error("record has a text field that is not UTF-8")]
    Utf8,
}

/// Serialises `entry`; `dedup_expires_at` (µs) is when its dedup key, if any, stops counting.
pub fn encode(entry: &Entry, dedup_expires_at: i64) -> Vec<u8> {
    let text_len: usize =
        [&entry.source, &entry.source_ip, &entry.event, &entry.id].iter().map(|s| s.len() + 4).sum::<usize>()
            + entry.name.as_ref().map_or(1, |s| s.len() + 5)
            + entry.dedup_key.as_ref().map_or(1, |s| s.len() + 5)
            + entry.headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
    let mut out = Vec::with_capacity(1 + 8 + 2 + 4 + text_len + entry.body.len());
    out.push(VERSION);
    out.extend_from_slice(&entry.received_at.to_le_bytes());
    for s in [&entry.source, &entry.source_ip, &entry.event, &entry.id] {
        put(&mut out, s.as_bytes());
    }
    for s in [&entry.name, &entry.dedup_key] {
        match s {
            Some(s) => {
                out.push(1);
                put(&mut out, s.as_bytes());
            }
            None => out.push(0),
        }
    }
    if entry.dedup_key.is_some() {
        out.extend_from_slice(&dedup_expires_at.to_le_bytes());
    }
    let n = u16::try_from(entry.headers.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    for (k, v) in entry.headers.iter().take(usize::from(n)) {
        put(&mut out, k.as_bytes());
        put(&mut out, v.as_bytes());
    }
    put(&mut out, &entry.body);
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Bodies are bounded by `max_body` (far below 4 GiB); headers by hyper's limits.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = u32::from_le_bytes(self.array()?);
        self.take(len as usize)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.string().map(Some),
        }
    }
}

/// Parses bytes written by [`encode`].
///
/// # Errors
/// [`DecodeError`] for an unknown version or damaged bytes.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    decode_with_expiry(bytes).map(|(e, _)| e)
}

/// Like [`decode`], also returning when the entry's dedup key expires (0 without a key).
///
/// # Errors
/// [`DecodeError`] for an unknown version or damaged bytes.
pub fn decode_with_expiry(bytes: &[u8]) -> Result<(Entry, i64), DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != 1 && version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let received_at = i64::from_le_bytes(r.array()?);
    let source = r.string()?;
    let source_ip = r.string()?;
    let event = r.string()?;
    let id = r.string()?;
    let name = r.opt_string()?;
    let dedup_key = r.opt_string()?;
    let expires_at = match (&dedup_key, version) {
        (None, _) => 0,
        (Some(_), 1) => received_at.saturating_add(V1_TTL_MICROS),
        (Some(_), _) => i64::from_le_bytes(r.array()?),
    };
    let n = u16::from_le_bytes(r.array()?);
    let mut headers = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        headers.push((r.string()?, r.string()?));
    }
    let body = Bytes::copy_from_slice(r.bytes()?);
    Ok((Entry { source, received_at, source_ip, event, id, name, dedup_key, headers, body }, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        (
            any::<i64>(),
            ".{0,20}",
            ".{0,40}",
            proptest::option::of(".{0,10}"),
            proptest::option::of(".{0,10}"),
            proptest::collection::vec((".{0,8}", ".{0,8}"), 0..4),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(received_at, event, id, name, dedup_key, headers, body)| Entry {
                source: "insightiq".into(),
                received_at,
                source_ip: "127.0.0.1".into(),
                event,
                id,
                name,
                dedup_key,
                headers,
                body: Bytes::from(body),
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(e in entry_strategy(), expires in any::<i64>()) {
            let want = if e.dedup_key.is_some() { expires } else { 0 };
            prop_assert_eq!(decode_with_expiry(&encode(&e, expires)), Ok((e, want)));
        }

        #[test]
        fn every_truncation_is_an_error_not_a_panic(e in entry_strategy(), cut in 0usize..1000) {
            let bytes = encode(&e, 1);
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn unknown_version_is_reported() {
        assert_eq!(decode(&[9, 0, 0]), Err(DecodeError::Version(9)));
    }
}
