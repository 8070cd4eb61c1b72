//! One cached value: its body, what the upstream said about it, and the keys it is stored under.
//!
//! The body and the four strings that describe it (ARN, name, version, ETag) are kept in **one allocation** of
//! exactly their size, made once the fetch's temporaries are gone: an entry lives for hours, and separate strings
//! cost an allocation each, with the allocator's rounding, for about 150 bytes of text. A body of a 4 KiB secret is
//! about 4.4 KB, which the allocator rounds up to its next size class anyway (BENCHMARKS.md, "What an entry holds").

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use tokio::time::Instant;

use crate::request::Key;
use crate::secret::SecretBody;

use super::alias::Meta;

/// The strings kept after the body, in this order.
const ARN: usize = 0;
const NAME: usize = 1;
const VERSION: usize = 2;
const ETAG: usize = 3;

/// One cached value: the body served, what the upstream said about it, and every key it is stored under.
#[derive(Debug)]
pub struct Entry {
    /// The body, then the ARN, name, version and ETag that were given, back to back; wiped when the last part of it
    /// (a body being written to a socket included) is dropped.
    packed: SecretBody,
    /// The body alone: a part of `packed`, kept so that a hit clones it without slicing.
    body: SecretBody,
    /// Where each string of `packed` starts and ends: string `i` is `ends[i]..ends[i + 1]` (`ends[0]` is the end of
    /// the body).
    ends: [u32; 5],
    /// Which strings were given (bit `i` for string `i`): an empty string and none differ.
    given: u8,
    pub(super) fetched_at: Instant,
    /// The canonical key first, then its aliases.
    pub(super) keys: Box<[Key]>,
    /// Whether a lookup was answered from this entry. A refresh stores a new entry (unread), so this means "read
    /// since the last fetch": the timer-driven refresh ([`super::Cache::refresh_read`]) keeps only such entries
    /// fresh, and one nobody reads for a TTL is left to age out as it would on demand.
    pub(super) read: AtomicBool,
}

impl Entry {
    /// An entry for `body`, described by `meta` and tagged `etag`, stored under `keys` (the canonical one first).
    pub(super) fn new(
        body: SecretBody,
        meta: Meta,
        etag: Option<String>,
        keys: Vec<Key>,
        fetched_at: Instant,
    ) -> Self {
        let strings = [meta.arn, meta.name, meta.version, etag];
        let len = body.len() + strings.iter().flatten().map(String::len).sum::<usize>();
        // Bodies are bounded by the upstream's own limits (64 KiB values) and the response cap, far below 4 GiB.
        let at = |n: usize| u32::try_from(n).expect("an entry is smaller than 4 GiB");
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(body.as_slice());
        let mut ends = [at(bytes.len()); 5];
        let mut given = 0;
        for (i, s) in strings.iter().enumerate() {
            if let Some(s) = s {
                bytes.extend_from_slice(s.as_bytes());
                given |= 1 << i;
            }
            ends[i + 1] = at(bytes.len());
        }
        let packed = SecretBody::new(bytes);
        Self {
            body: packed.slice(0..ends[0] as usize),
            packed,
            ends,
            given,
            fetched_at,
            keys: keys.into_boxed_slice(),
            read: AtomicBool::new(false),
        }
    }

    fn string(&self, i: usize) -> Option<&str> {
        if self.given & (1 << i) == 0 {
            return None;
        }
        let bytes = &self.packed.as_slice()[self.ends[i] as usize..self.ends[i + 1] as usize];
        // Written from a `String` in `new`.
        std::str::from_utf8(bytes).ok()
    }

    /// The response body.
    pub fn body(&self) -> &SecretBody {
        &self.body
    }

    /// The ETag (quoted), when the upstream gave a version: a part of the entry's allocation, so a hit's ETag costs
    /// no formatting and no allocation.
    pub fn etag(&self) -> Option<Bytes> {
        (self.given & (1 << ETAG) != 0).then(|| {
            self.packed
                .bytes_of(self.ends[ETAG] as usize..self.ends[ETAG + 1] as usize)
        })
    }

    /// The secret's or parameter's ARN.
    pub fn arn(&self) -> Option<&str> {
        self.string(ARN)
    }

    /// The secret's or parameter's name.
    pub fn name(&self) -> Option<&str> {
        self.string(NAME)
    }

    /// The secret's `VersionId`, or the parameter's version number.
    pub fn version(&self) -> Option<&str> {
        self.string(VERSION)
    }

    /// What the upstream said about the value (a copy).
    pub fn meta(&self) -> Meta {
        Meta {
            arn: self.arn().map(str::to_owned),
            name: self.name().map(str::to_owned),
            version: self.version().map(str::to_owned),
        }
    }

    pub(super) fn canonical(&self) -> &Key {
        &self.keys[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::current_secret("my/db".into())
    }

    #[test]
    fn the_body_and_what_describes_it_share_one_exact_allocation() {
        let meta = Meta {
            arn: Some("arn:aws:secretsmanager:us-east-1:1:secret:my/db-AbCdEf".into()),
            name: Some("my/db".into()),
            version: Some("v-1".into()),
        };
        let body = SecretBody::new(b"{\"SecretString\":\"hunter2\"}".to_vec());
        let e = Entry::new(
            body,
            meta.clone(),
            Some("\"v-1\"".into()),
            vec![key()],
            Instant::now(),
        );
        assert_eq!(e.body().as_slice(), b"{\"SecretString\":\"hunter2\"}");
        assert_eq!(e.meta(), meta);
        assert_eq!(e.etag().as_deref(), Some(&b"\"v-1\""[..]));
        assert_eq!(e.canonical(), &key());
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:my/db-AbCdEf";
        let whole = e.body.len() + arn.len() + "my/db".len() + 3 + 5;
        assert_eq!(e.packed.len(), whole);
    }

    #[test]
    fn strings_not_given_are_none_and_an_empty_one_is_empty() {
        let meta = Meta {
            arn: None,
            name: Some(String::new()),
            version: None,
        };
        let e = Entry::new(
            SecretBody::new(b"{}".to_vec()),
            meta.clone(),
            None,
            vec![key()],
            Instant::now(),
        );
        assert_eq!(e.arn(), None);
        assert_eq!(e.name(), Some(""));
        assert_eq!(e.version(), None);
        assert_eq!(e.etag(), None);
        assert_eq!(e.meta(), meta);
        assert_eq!(e.body().as_slice(), b"{}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let e = Entry::new(
            SecretBody::new(b"{\"SecretString\":\"hunter2\"}".to_vec()),
            Meta::default(),
            None,
            vec![key()],
            Instant::now(),
        );
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
