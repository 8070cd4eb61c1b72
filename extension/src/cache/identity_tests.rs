//! The cache's identity rules against an upstream that resolves ids as Secrets Manager does (full ARN, then name,
//! then partial ARN; versions by id or the current one): a read answers exactly what it named, or goes upstream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::clock::tests::ManualWall;
use crate::request::{SecretKey, VersionSelector};

const A_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db-AbCdEf";
/// B is named `<A's name>-<A's suffix>`: its partial ARN is A's full ARN.
const B_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db-AbCdEf-XyZ123";
const B_NAME: &str = "my/db-AbCdEf";

#[derive(Clone)]
struct Secret {
    arn: String,
    name: String,
    /// (version id, value); the last is AWSCURRENT.
    versions: Vec<(String, String)>,
}

/// Secrets resolved as Secrets Manager resolves an id: a full ARN, then a name, then a partial ARN.
#[derive(Default)]
struct Catalog {
    secrets: Mutex<Vec<Secret>>,
    calls: Mutex<HashMap<Key, usize>>,
}

impl Catalog {
    fn put(&self, arn: &str, name: &str, version: &str, value: &str) {
        let mut secrets = self.secrets.lock().expect("lock");
        match secrets.iter_mut().find(|s| s.arn == arn) {
            Some(s) => s.versions.push((version.into(), value.into())),
            None => secrets.push(Secret {
                arn: arn.into(),
                name: name.into(),
                versions: vec![(version.into(), value.into())],
            }),
        }
    }

    fn delete(&self, arn: &str) {
        self.secrets.lock().expect("lock").retain(|s| s.arn != arn);
    }

    fn resolve(&self, key: &Key) -> Result<Fetched, UpstreamError> {
        let Key::Secret(k) = key else {
            unreachable!("secrets only")
        };
        let secrets = self.secrets.lock().expect("lock");
        let id = k.secret_id.as_str();
        let secret = secrets
            .iter()
            .find(|s| s.arn == id)
            .or_else(|| secrets.iter().find(|s| s.name == id))
            .or_else(|| {
                secrets
                    .iter()
                    .find(|s| alias::SecretArn::parse(&s.arn).is_some_and(|a| a.partial == id))
            });
        let not_found = || UpstreamError::NotFound {
            code: "ResourceNotFoundException".into(),
            message: "no such secret".into(),
        };
        let secret = secret.ok_or_else(not_found)?;
        let (version, value) = match &k.selector {
            VersionSelector::Current => secret.versions.last(),
            VersionSelector::Id(v) => secret.versions.iter().find(|(id, _)| id == v),
            _ => None,
        }
        .ok_or_else(not_found)?;
        Ok(Fetched {
            body: SecretBody::new(value.clone().into_bytes()),
            meta: Meta {
                arn: Some(secret.arn.clone()),
                name: Some(secret.name.clone()),
                version: Some(version.clone()),
            },
        })
    }

    fn calls(&self) -> usize {
        self.calls.lock().expect("lock").values().sum()
    }
}

impl Upstream for Arc<Catalog> {
    fn fetch(&self, key: &Key) -> impl Future<Output = Result<Fetched, UpstreamError>> + Send {
        *self
            .calls
            .lock()
            .expect("lock")
            .entry(key.clone())
            .or_default() += 1;
        std::future::ready(self.resolve(key))
    }
}

type CatalogCache = Arc<Cache<Arc<Catalog>, ManualWall>>;

fn setup() -> (Arc<Catalog>, CatalogCache, Arc<Metrics>) {
    let catalog = Arc::new(Catalog::default());
    let metrics = Arc::new(Metrics::default());
    let policy = Policy {
        secret_ttl: Duration::from_secs(100),
        parameter_ttl: Duration::from_secs(100),
        refresh_ahead_percent: 0,
        max_stale: Duration::ZERO,
        max_entries: 100,
        max_bytes: 1 << 20,
        negative_ttl: Duration::ZERO,
        refresh_now_interval: Duration::ZERO,
        forget_on_pause: false,
        home_region: Some("us-east-1".into()),
        max_pending_fetches: 0,
    };
    let cache = Cache::new(
        Arc::clone(&catalog),
        ManualWall::default(),
        policy,
        Arc::clone(&metrics),
    );
    (catalog, cache, metrics)
}

fn key(id: &str, selector: VersionSelector) -> Key {
    Key::Secret(SecretKey {
        secret_id: id.into(),
        selector,
    })
}

fn current(id: &str) -> Key {
    key(id, VersionSelector::Current)
}

async fn read(cache: &CatalogCache, k: &Key) -> String {
    let (entry, _) = cache.get(k, false).await.expect("a value");
    String::from_utf8(entry.body().bytes().to_vec()).expect("utf8")
}

#[tokio::test(start_paused = true)]
async fn identity_a_look_alike_named_secret_never_answers_for_another_secrets_arn() {
    for b_first in [true, false] {
        let (catalog, cache, _) = setup();
        catalog.put(A_ARN, "my/db", "a1", "value of A");
        catalog.put(B_ARN, B_NAME, "b1", "value of B");
        if b_first {
            assert_eq!(read(&cache, &current(B_NAME)).await, "value of B");
            assert_eq!(read(&cache, &current(B_ARN)).await, "value of B");
        }
        assert_eq!(read(&cache, &current(A_ARN)).await, "value of A");
        assert_eq!(read(&cache, &current("my/db")).await, "value of A");
        assert_eq!(read(&cache, &current(B_NAME)).await, "value of B");
        // Hits now, every one: still each secret's own value.
        for _ in 0..2 {
            assert_eq!(
                read(&cache, &current(A_ARN)).await,
                "value of A",
                "b_first={b_first}"
            );
            assert_eq!(read(&cache, &current(B_NAME)).await, "value of B");
            assert_eq!(read(&cache, &current(B_ARN)).await, "value of B");
        }
        // Several at once, on an empty cache too.
        let (catalog2, cache2, _) = setup();
        *catalog2.secrets.lock().expect("lock") = catalog.secrets.lock().expect("lock").clone();
        for c in [&cache, &cache2] {
            let answers = c.get_many(&[current(B_NAME), current(A_ARN)]).await;
            let values: Vec<String> = answers
                .into_iter()
                .map(|a| {
                    String::from_utf8(a.expect("value").0.body().bytes().to_vec()).expect("utf8")
                })
                .collect();
            assert_eq!(values, ["value of B", "value of A"]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn identity_an_expired_version_id_is_never_answered_with_the_current_version() {
    let (catalog, cache, _) = setup();
    catalog.put(A_ARN, "my/db", "v1", "one");
    assert_eq!(read(&cache, &current("my/db")).await, "one");
    let v1 = key("my/db", VersionSelector::Id("v1".into()));
    assert_eq!(
        read(&cache, &v1).await,
        "one",
        "the current version, by its id"
    );
    catalog.put(A_ARN, "my/db", "v2", "two");
    tokio::time::advance(Duration::from_secs(101)).await;
    // Expired: refreshed through the canonical key, whose answer is now v2; v1 is still v1.
    assert_eq!(read(&cache, &v1).await, "one");
    assert_eq!(read(&cache, &current("my/db")).await, "two");
    assert_eq!(
        read(&cache, &key(A_ARN, VersionSelector::Id("v2".into()))).await,
        "two"
    );
    assert_eq!(read(&cache, &v1).await, "one");
}

#[tokio::test(start_paused = true)]
async fn identity_a_name_that_moved_to_a_new_secret_is_dropped_not_shared() {
    let (catalog, cache, metrics) = setup();
    let old = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-OldOld";
    let new = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-NewNew";
    catalog.put(old, "app", "o1", "old secret");
    assert_eq!(read(&cache, &current("app")).await, "old secret");
    // Deleted and created again under the same name: a new ARN.
    catalog.delete(old);
    catalog.put(new, "app", "n1", "new secret");
    // Read by the new ARN: its answer claims the name, which points at the old secret's entry: a conflict.
    assert_eq!(read(&cache, &current(new)).await, "new secret");
    assert_eq!(metrics.snapshot().alias_conflicts, 1);
    let before = catalog.calls();
    assert_eq!(read(&cache, &current("app")).await, "new secret");
    assert_eq!(catalog.calls(), before + 1, "the name went upstream");
    assert_eq!(read(&cache, &current(new)).await, "new secret");
}

#[tokio::test(start_paused = true)]
async fn identity_a_partial_arn_is_cached_only_once_asked_for() {
    let (catalog, cache, _) = setup();
    catalog.put(A_ARN, "my/db", "a1", "value of A");
    let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db";
    assert_eq!(read(&cache, &current("my/db")).await, "value of A");
    assert_eq!(catalog.calls(), 1);
    assert_eq!(read(&cache, &current(partial)).await, "value of A");
    assert_eq!(catalog.calls(), 2, "not derived from the first answer");
    assert_eq!(read(&cache, &current(partial)).await, "value of A");
    assert_eq!(catalog.calls(), 2, "an alias once asked for");
}

#[tokio::test(start_paused = true)]
async fn the_backoff_memory_is_bounded_whatever_ids_callers_send() {
    let (catalog, cache, metrics) = setup();
    drop(catalog);
    let cache_failing = {
        // Every id fails transiently: each would stay in backoff until it next succeeds.
        struct Down;
        impl Upstream for Down {
            fn fetch(
                &self,
                _: &Key,
            ) -> impl Future<Output = Result<Fetched, UpstreamError>> + Send {
                std::future::ready(Err(UpstreamError::Timeout { millis: 1 }))
            }
        }
        drop(cache);
        Cache::new(
            Down,
            ManualWall::default(),
            Policy {
                negative_ttl: Duration::from_secs(60),
                ..super::tests::policy()
            },
            Arc::clone(&metrics),
        )
    };
    for i in 0..10_000 {
        assert!(cache_failing
            .get(&current(&format!("made-up-{i}")), false)
            .await
            .is_err());
    }
    let s = metrics.snapshot();
    assert_eq!(s.keys_remembered, memory::MAX_KEYS as u64);
    assert_eq!(s.keys_forgotten, 10_000 - memory::MAX_KEYS as u64);
    let text = metrics.prometheus();
    assert!(
        text.contains(&format!("secretcache_keys_remembered {}", memory::MAX_KEYS)),
        "{text}"
    );
}
