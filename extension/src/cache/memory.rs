//! Answers remembered per key for a short while: the refusal memory (not-found, access denied) and the last
//! `refreshNow` call of each key. Recording is rare, so old answers are dropped whenever one is recorded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::request::Key;

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

    pub(super) fn put(&self, key: Key, now: Instant, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        // Recording is rare (a refusal, a refreshNow), so old answers are dropped on every record: a remembered
        // refreshNow holds a secret value, which should not outlive its interval by much.
        let mut map = self.lock();
        map.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
        map.insert(key, (now, value));
    }

    pub(super) fn forget(&self, key: &Key) {
        if !self.ttl.is_zero() {
            self.lock().remove(key);
        }
    }
}
