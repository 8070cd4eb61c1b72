//! The answers of the two reads that list rather than name (`AmazonSSM.GetParametersByPath` and
//! `secretsmanager.BatchGetSecretValue` with `Filters`), kept for the service's TTL so that a function that lists its
//! configuration on every invoke makes one upstream call per TTL and page.
//!
//! Such an answer is the service's own for exactly one request: the key is the region the caller signed for, the
//! operation and the request body in a canonical form (members sorted, whitespace gone), so the paging token, the
//! `Recursive`, `WithDecryption`, `MaxResults`, `ParameterFilters` and `Filters` members are all part of it, and two
//! requests share an answer only when the service would have been asked the same thing. Only successful answers are
//! kept, byte for byte. A page's `NextToken` is the one the service gave with the kept page, so the next page is
//! kept under it too and a paginator walks the same listing from the cache.
//!
//! Freshness is the cache's (the same pause-aware clock, the service's TTL, zero disabling it); a write passed on
//! through the extension to a service forgets every listing of that service, so the environment lists its own writes.
//! Memory is bounded by bytes ([`MAX_BYTES`] per service), whatever a caller asks.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::time::Instant;

/// Most bytes of kept answers per service (keys included).
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The two services' kept listings.
#[derive(Debug)]
pub struct Listings {
    secrets: Kept,
    ssm: Kept,
}

#[derive(Debug)]
struct Kept {
    store: moka::future::Cache<Bytes, std::sync::Arc<Listed>>,
    ttl: Duration,
}

/// One kept answer.
#[derive(Debug)]
pub struct Listed {
    /// The service's body, as it was: decrypted values among it, so it is wiped when dropped and never in `Debug`.
    pub body: crate::secret::SecretBody,
    /// Its content type.
    pub content_type: Option<HeaderValue>,
    fetched_at: Instant,
}

/// Which operations list: the two whose answers are kept. `BatchGetSecretValue` is passed on (and so reaches this)
/// only in its `Filters` form: `read_of` answers the `SecretIdList` form from the cache entries.
pub fn lists(target: &str) -> bool {
    matches!(
        target,
        "AmazonSSM.GetParametersByPath" | "secretsmanager.BatchGetSecretValue"
    )
}

/// The key of a listing request: region, operation and the body's canonical form (every object's members sorted, no
/// whitespace); none for a body that is not a JSON object (the service is left to refuse it).
pub fn key_of(region: &str, target: &str, body: &[u8]) -> Option<Bytes> {
    let mut canonical: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !canonical.is_object() {
        return None;
    }
    canonical.sort_all_objects();
    let mut key = Vec::with_capacity(region.len() + target.len() + body.len() + 2);
    key.extend_from_slice(region.as_bytes());
    key.push(b'\n');
    key.extend_from_slice(target.as_bytes());
    key.push(b'\n');
    serde_json::to_writer(&mut key, &canonical).ok()?;
    Some(Bytes::from(key))
}

impl Kept {
    fn new(ttl: Duration) -> Self {
        let store = moka::future::Cache::builder()
            .max_capacity(MAX_BYTES)
            .weigher(|k: &Bytes, v: &std::sync::Arc<Listed>| {
                u32::try_from(k.len() + v.body.len() + 128).unwrap_or(u32::MAX)
            })
            // A backstop only: freshness is checked on the pause-aware clock at each read.
            .time_to_live(ttl + Duration::from_secs(1))
            .build();
        Self { store, ttl }
    }
}

impl Listings {
    /// Listings kept for each service's TTL (zero: none kept).
    pub fn new(secret_ttl: Duration, parameter_ttl: Duration) -> Self {
        Self {
            secrets: Kept::new(secret_ttl),
            ssm: Kept::new(parameter_ttl),
        }
    }

    fn of(&self, service: &str) -> &Kept {
        match service {
            "secretsmanager" => &self.secrets,
            _ => &self.ssm,
        }
    }

    /// The kept answer to `key`, if it is younger than the service's TTL at `now`.
    pub async fn get(
        &self,
        service: &str,
        key: &Bytes,
        now: Instant,
    ) -> Option<std::sync::Arc<Listed>> {
        let kept = self.of(service);
        let listed = kept.store.get(key).await?;
        if now.saturating_duration_since(listed.fetched_at) < kept.ttl {
            Some(listed)
        } else {
            kept.store.invalidate(key).await;
            None
        }
    }

    /// Keeps a successful answer fetched at `fetched_at` (nothing when the service's TTL is zero).
    pub async fn put(
        &self,
        service: &str,
        key: Bytes,
        body: Bytes,
        content_type: Option<HeaderValue>,
        fetched_at: Instant,
    ) {
        let kept = self.of(service);
        if kept.ttl.is_zero() {
            return;
        }
        let listed = Listed {
            body: crate::secret::SecretBody::new(body.to_vec()),
            content_type,
            fetched_at,
        };
        kept.store.insert(key, std::sync::Arc::new(listed)).await;
    }

    /// Forgets every listing of `service`: a write went through.
    pub fn forget(&self, service: &str) {
        self.of(service).store.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_request_whatever_its_members_order_and_spacing() {
        let a = key_of(
            "eu-west-1",
            "AmazonSSM.GetParametersByPath",
            br#"{"Path":"/app","Recursive":true,"ParameterFilters":[{"Key":"Type","Values":["String"]}]}"#,
        );
        let b = key_of(
            "eu-west-1",
            "AmazonSSM.GetParametersByPath",
            br#"{ "ParameterFilters" : [ {"Values":["String"],"Key":"Type"} ], "Recursive":true, "Path":"/app" }"#,
        );
        assert!(a.is_some());
        assert_eq!(a, b);
        let differs = [
            key_of(
                "eu-west-2",
                "AmazonSSM.GetParametersByPath",
                br#"{"Path":"/app","Recursive":true}"#,
            ),
            key_of(
                "eu-west-1",
                "AmazonSSM.GetParametersByPath",
                br#"{"Path":"/app","Recursive":false}"#,
            ),
            key_of(
                "eu-west-1",
                "AmazonSSM.GetParametersByPath",
                br#"{"Path":"/app","Recursive":true,"NextToken":"t"}"#,
            ),
            key_of(
                "eu-west-1",
                "AmazonSSM.GetParametersByPath",
                br#"{"Path":"/app/","Recursive":true}"#,
            ),
            key_of(
                "eu-west-1",
                "secretsmanager.BatchGetSecretValue",
                br#"{"Path":"/app","Recursive":true}"#,
            ),
        ];
        let base = key_of(
            "eu-west-1",
            "AmazonSSM.GetParametersByPath",
            br#"{"Path":"/app","Recursive":true}"#,
        );
        for (i, other) in differs.iter().enumerate() {
            assert!(other.is_some() && *other != base, "case {i}");
        }
        assert_eq!(
            key_of("eu-west-1", "AmazonSSM.GetParametersByPath", b"[1]"),
            None
        );
        assert_eq!(
            key_of("eu-west-1", "AmazonSSM.GetParametersByPath", b"{"),
            None
        );
    }

    #[test]
    fn only_the_listing_reads_are_kept() {
        assert!(lists("AmazonSSM.GetParametersByPath"));
        assert!(lists("secretsmanager.BatchGetSecretValue"));
        assert!(!lists("secretsmanager.DescribeSecret"));
        assert!(!lists("secretsmanager.ListSecrets"));
        // The batch reaches the passthrough only in its Filters form.
        let ids = br#"{"SecretIdList":["a"]}"#;
        assert!(!matches!(
            super::super::read_of("secretsmanager.BatchGetSecretValue", ids),
            Ok(super::super::Read::PassOn)
        ));
        let filters = br#"{"Filters":[{"Key":"name","Values":["a"]}]}"#;
        assert!(matches!(
            super::super::read_of("secretsmanager.BatchGetSecretValue", filters),
            Ok(super::super::Read::PassOn)
        ));
    }

    /// Keeps an empty answer under `key` for `service`, fetched now.
    async fn keep(listings: &Listings, service: &str, key: &Bytes) {
        let body = Bytes::from_static(b"{}");
        listings
            .put(service, key.clone(), body, None, Instant::now())
            .await;
    }

    #[tokio::test]
    async fn a_kept_answer_never_shows_in_debug_output() {
        let listings = Listings::new(Duration::from_secs(60), Duration::from_secs(60));
        let key = Bytes::from_static(b"us-east-1\nAmazonSSM.GetParametersByPath\n{}");
        let body = Bytes::from_static(br#"{"Parameters":[{"Name":"/a","Value":"hunter2"}]}"#);
        listings
            .put("ssm", key.clone(), body, None, Instant::now())
            .await;
        let kept = listings
            .get("ssm", &key, Instant::now())
            .await
            .expect("kept");
        assert!(!format!("{kept:?} {listings:?}").contains("hunter2"));
        assert!(std::str::from_utf8(&kept.body.bytes())
            .expect("utf-8")
            .contains("hunter2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_lives_for_the_ttl_and_a_write_forgets_the_service_s_listings() {
        let listings = Listings::new(Duration::from_secs(60), Duration::from_secs(30));
        let key = Bytes::from_static(b"k");
        keep(&listings, "ssm", &key).await;
        keep(&listings, "secretsmanager", &key).await;
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(listings.get("ssm", &key, Instant::now()).await.is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            listings.get("ssm", &key, Instant::now()).await.is_none(),
            "past the parameters' TTL"
        );
        assert!(listings
            .get("secretsmanager", &key, Instant::now())
            .await
            .is_some());
        // A pause the monotonic clock missed reaches the check through the clock's reading.
        let later = Instant::now() + Duration::from_secs(31);
        assert!(listings.get("secretsmanager", &key, later).await.is_none());
        keep(&listings, "secretsmanager", &key).await;
        listings.forget("secretsmanager");
        assert!(listings
            .get("secretsmanager", &key, Instant::now())
            .await
            .is_none());

        let none = Listings::new(Duration::ZERO, Duration::ZERO);
        none.put(
            "ssm",
            key.clone(),
            Bytes::from_static(b"{}"),
            None,
            Instant::now(),
        )
        .await;
        assert!(
            none.get("ssm", &key, Instant::now()).await.is_none(),
            "a TTL of zero keeps nothing"
        );
    }
}
