//! Answers remembered per key for a short while: the refusal memory (not-found, access denied) and the last
//! `refreshNow` call of each key. Recording is rare, so old answers are dropped whenever one is recorded.
//!
//! Every per-key memory is bounded by [`MAX_KEYS`]: the keys are whatever ids callers send, so during an outage a
//! caller cycling through made-up ids would otherwise grow them without end. Past the bound the oldest key goes
//! ([`insert_bounded`]); forgetting one costs at most an upstream call that the memory would have spared.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::request::Key;

/// The most keys any per-key memory of the cache holds (the refusals, the `refreshNow` calls, the keys in backoff).
pub(super) const MAX_KEYS: usize = 1024;

/// Inserts `key` into `map`, first dropping the entry that `age` ranks oldest when the map is full and `key` is new.
/// Returns how many entries were dropped (0 or 1). A scan of at most [`MAX_KEYS`] entries, only when full: inserts
/// are failures and refusals, rare by nature and spaced by backoff.
pub(super) fn insert_bounded<V>(
    map: &mut HashMap<Key, V>,
    key: Key,
    value: V,
    age: impl Fn(&V) -> Instant,
) -> u64 {
    let mut dropped = 0;
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| age(v))
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
            dropped = 1;
        }
    }
    map.insert(key, value);
    dropped
}

/// Answers remembered per key for a short while, each with when it was recorded.
#[derive(Debug)]
pub(super) struct Memory<V> {
    map: Mutex<HashMap<Key, (Instant, V)>>,
    ttl: Duration,
}

impl<V: Clone> Memory<V> {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value recorded for `key` less than the memory's TTL before `now`.
    pub(super) fn get(&self, key: &Key, now: Instant) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.lock();
        map.get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Remembers `value` for `key` from `now`; returns how many keys the bound made it forget.
    pub(super) fn put(&self, key: Key, now: Instant, value: V) -> u64 {
        if self.ttl.is_zero() {
            return 0;
        }
        // Recording is rare (a refusal, a refreshNow), so old answers are dropped on every record: a remembered
        // refreshNow holds a secret value, which should not outlive its interval by much.
        let mut map = self.lock();
        map.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
        insert_bounded(&mut map, key, (now, value), |(at, _)| *at)
    }

    /// How many keys are remembered now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(super) fn forget(&self, key: &Key) {
        if !self.ttl.is_zero() {
            self.lock().remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ParameterKey, SecretKey, VersionSelector};

    fn key(i: usize) -> Key {
        Key::Secret(SecretKey {
            secret_id: format!("s{i}"),
            selector: VersionSelector::Current,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_memory_never_holds_more_than_its_bound_and_forgets_the_oldest_first() {
        let m: Memory<u32> = Memory::new(Duration::from_secs(3600));
        let mut forgotten = 0;
        for i in 0..MAX_KEYS * 3 {
            forgotten += m.put(key(i), Instant::now(), 1);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(m.len(), MAX_KEYS);
        assert_eq!(forgotten, (MAX_KEYS * 2) as u64);
        let now = Instant::now();
        assert_eq!(
            m.get(&key(MAX_KEYS * 3 - 1), now),
            Some(1),
            "the newest is kept"
        );
        assert_eq!(m.get(&key(0), now), None, "the oldest went first");
        // Recording a key again replaces it and forgets nothing.
        assert_eq!(m.put(key(MAX_KEYS * 3 - 1), now, 2), 0);
        let p = Key::Parameter(ParameterKey {
            name: "/p".into(),
            with_decryption: true,
        });
        assert_eq!(m.put(p, now, 3), 1);
        assert_eq!(m.len(), MAX_KEYS);
    }
}
