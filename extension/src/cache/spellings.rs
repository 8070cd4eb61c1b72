//! The spellings of one secret in the store: a version id found through its spelling's current entry, the spellings
//! of an evicted secret removed with it, and every spelling of a secret forgotten after a write names it.

use std::sync::Arc;

use moka::ops::compute::Op;

use crate::clock::WallClock;
use crate::request::{Key, SecretKey, VersionSelector};

use super::{Cache, Entry, Upstream};

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// The entry `key` finds: its own; or, for a version id with none, the entry of the same spelling's current
    /// version when that is the version asked for (a version's content never changes, so it answers by id for as long
    /// as it lives). The version id is not stored as more keys of every entry: that doubled the keys, and moka's
    /// bookkeeping for each, for a spelling few callers use (BENCHMARKS.md, item 5).
    pub(super) async fn cached(&self, key: &Key) -> Option<Arc<Entry>> {
        if let Some(entry) = self.store.get(key).await {
            return Some(entry);
        }
        let Key::Secret(SecretKey {
            secret_id,
            selector: VersionSelector::Id(version),
        }) = key
        else {
            return None;
        };
        let current = Key::Secret(SecretKey {
            secret_id: secret_id.clone(),
            selector: VersionSelector::Current,
        });
        self.store
            .get(&current)
            .await
            .filter(|entry| entry.version() == Some(version.as_str()))
    }

    /// After a secret's own entry was evicted (for room, or past the TTL backstop): its other spellings, which weigh
    /// nothing, go too, unless one already points at a newer entry. Run as a task: moka calls the listener from
    /// inside its own maintenance.
    pub(super) fn forget_spellings(self: &Arc<Self>, evicted: Arc<Entry>) {
        let (Some(rest), Ok(runtime)) = (
            evicted.keys.get(1..).filter(|r| !r.is_empty()),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let rest = rest.to_vec();
        let cache = Arc::clone(self);
        runtime.spawn(async move {
            for key in rest {
                cache
                    .store
                    .entry(key)
                    .and_compute_with(|existing| {
                        std::future::ready(match existing {
                            Some(e) if Arc::ptr_eq(e.value(), &evicted) => Op::Remove,
                            _ => Op::Nop,
                        })
                    })
                    .await;
            }
        });
    }

    /// Forgets what is cached for the secret or parameter `id` (a name, an ARN, or a secret's partial ARN, as a write
    /// named it), every version and spelling of it, and every remembered refusal: after a write through the
    /// extension, the same environment reads what it wrote.
    pub async fn invalidate_named(&self, id: &str) {
        let mut stale = Vec::new();
        for (key, entry) in self.store.iter() {
            let named = match &*key {
                Key::Secret(k) => {
                    k.secret_id == id
                        || entry.name() == Some(id)
                        || entry.arn().is_some_and(|arn| {
                            arn == id
                                || (arn.len() == id.len() + 7
                                    && arn.starts_with(id)
                                    && arn.as_bytes()[id.len()] == b'-')
                        })
                }
                Key::Parameter(k) => {
                    let bare = k.name.split_once(':').map_or(k.name.as_str(), |(n, _)| n);
                    k.name == id
                        || bare == id
                        || entry.name() == Some(id)
                        || entry.arn() == Some(id)
                }
            };
            if named {
                stale.push(key);
            }
        }
        for key in stale {
            self.store.invalidate(&*key).await;
        }
        self.negative.lock().clear();
        self.refreshed.lock().clear();
        self.publish_size();
    }
}
