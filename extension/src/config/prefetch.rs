//! What the extension fetches during init: the named secrets, parameters and SSM paths
//! (`PARAMETERS_SECRETS_EXTENSION_PREFETCH`), and the secrets found by tag with the prefetch's bounds (the Workload
//! Credentials Provider's `filter_tags`, `cache_buffer_ratio`, `max_jitter_seconds`).

use std::time::Duration;

use super::agent::AgentFile;
use super::names::{
    MAX_PREFETCH_TAGS, PREFETCH_BUFFER_PERCENT, PREFETCH_MAX_JITTER_SECONDS, PREFETCH_TAGS,
};
use super::reader::{Above, Env, Reader};

/// The tag-based part of the init prefetch, as the Workload Credentials Provider's `prefetch.filter_tags`,
/// `cache_buffer_ratio` and `max_jitter_seconds` define it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagPrefetch {
    /// Tag keys (exact, case-sensitive): every secret that carries one of them is prefetched.
    pub keys: Vec<String>,
    /// The most secrets the prefetch puts in the cache: the buffer percent of the cache's size.
    pub limit: usize,
    /// The longest random delay before the prefetch starts, so a fleet started at once does not call at once.
    pub max_jitter: Duration,
}

/// Reads the tag prefetch: `PARAMETERS_SECRETS_EXTENSION_PREFETCH_TAGS` and the file's `filter_tags`, the buffer
/// percent and the jitter. A tag key AWS would refuse is an error and left out; past [`MAX_PREFETCH_TAGS`], the rest
/// are left out with an error.
pub(super) fn tag_prefetch<E: Env>(
    r: &mut Reader<'_, E>,
    file: &AgentFile,
    cache_size: u64,
) -> TagPrefetch {
    let mut keys: Vec<String> = Vec::new();
    let from_env = r.raw(PREFETCH_TAGS).unwrap_or_default();
    let candidates = from_env
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .chain(file.prefetch_tags.iter().cloned());
    for key in candidates {
        if !is_tag_key(&key) {
            r.error(
                PREFETCH_TAGS,
                &key,
                "tag keys of 1 to 128 letters, digits, spaces and _ . : / = + - @, separated by commas",
                "that key left out".to_owned(),
            );
        } else if keys.len() == MAX_PREFETCH_TAGS {
            r.error(
                PREFETCH_TAGS,
                &key,
                "at most 10 tag keys",
                "the first 10".to_owned(),
            );
        } else if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let percent = r.number(
        PREFETCH_BUFFER_PERCENT,
        80,
        10..=100,
        Above::Clamp,
        "a percent of the cache size from 10 to 100",
    );
    let max_jitter = Duration::from_secs(r.number(
        PREFETCH_MAX_JITTER_SECONDS,
        0,
        0..=10,
        Above::Clamp,
        "seconds from 0 (no delay) to 10",
    ));
    TagPrefetch {
        keys,
        limit: if cache_size == 0 {
            0
        } else {
            // At most 1,000,000 entries (MAX_CACHE_SIZE): the product fits.
            (cache_size * percent / 100).max(1) as usize
        },
        max_jitter,
    }
}

/// An AWS tag key: 1 to 128 characters, letters, digits, white space and `_ . : / = + - @`.
fn is_tag_key(key: &str) -> bool {
    (1..=128).contains(&key.chars().count())
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

/// One item of `PARAMETERS_SECRETS_EXTENSION_PREFETCH`: a comma-separated list whose items are a secret (a name or
/// ARN, as today), `ssm:<name>` for a parameter, or `ssm-path:<path>` for every parameter under a path (recursive).
/// Parameters are fetched with decryption, as their readers ask for SecureStrings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefetch {
    /// A secret's current version.
    Secret(String),
    /// One SSM parameter (name or ARN, with an optional `:version` / `:label`).
    Parameter(String),
    /// Every SSM parameter under a path.
    Path(String),
}

impl Prefetch {
    pub(super) fn parse(item: &str) -> Option<Self> {
        let item = item.trim();
        if let Some(path) = item.strip_prefix("ssm-path:") {
            let path = path.trim();
            return (!path.is_empty()).then(|| Self::Path(path.to_owned()));
        }
        if let Some(name) = item.strip_prefix("ssm:") {
            let name = name.trim();
            return (!name.is_empty()).then(|| Self::Parameter(name.to_owned()));
        }
        if item.starts_with("arn:") && item.contains(":ssm:") {
            return Some(Self::Parameter(item.to_owned()));
        }
        (!item.is_empty()).then(|| Self::Secret(item.to_owned()))
    }
}
