//! The credentials a caller's signature may verify with, where they come from.
//!
//! In Lambda they are fixed: the function and its extensions see the same `AWS_ACCESS_KEY_ID` for the environment's
//! life. A sidecar (ECS, EKS Pod Identity) has no keys in its environment: its credentials come from a provider (the
//! container credentials endpoint) that hands the same role's credentials to every container of the task, and rotates
//! them hours before they expire. There a caller signs with what the provider gave it, which is what it gives us:
//! [`HeldKeys::Provided`] asks the provider, keeps its answer for [`REREAD`] (or until [`EXPIRY_MARGIN`] before it
//! expires), and keeps the previous credentials too after a rotation, so a container that fetched just before or just
//! after the rotation is accepted either way. A key that is neither makes the provider be asked again (at most once
//! per [`RETRY_UNKNOWN`], so unknown keys cannot make us hammer it), then is refused with an error that says so.
//!
//! A forwarded call is signed with the current credentials: the same role as the previous ones, so it grants nothing
//! the caller's own did not.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Keys, SignatureError};

/// How long the provider's answer is used before it is asked again.
pub const REREAD: Duration = Duration::from_secs(300);
/// Credentials this close to their expiry are fetched again at the next use.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(600);
/// The shortest interval between two fetches caused by a key the extension does not hold.
pub const RETRY_UNKNOWN: Duration = Duration::from_secs(1);
/// The longest a fetch from the provider may take before the request is refused.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the provider for its current credentials.
pub type Fetch = Arc<dyn Fn() -> BoxFuture<'static, Result<Credentials, String>> + Send + Sync>;

/// Where the credentials a signature verifies with come from.
pub enum HeldKeys {
    /// The environment's keys, read once (Lambda).
    Fixed(Keys),
    /// A provider's, asked again over time; the current and the previous are accepted.
    Provided(Provided),
}

impl fmt::Debug for HeldKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(keys) => f.debug_tuple("Fixed").field(keys).finish(),
            Self::Provided(p) => p.fmt(f),
        }
    }
}

impl fmt::Debug for Provided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys themselves stay out of Debug output.
        f.write_str("Provided")
    }
}

/// A provider's credentials, the current and the previous.
pub struct Provided {
    fetch: Fetch,
    held: tokio::sync::Mutex<Held>,
}

#[derive(Default)]
struct Held {
    current: Option<Current>,
    previous: Option<Keys>,
    last_fetch: Option<Instant>,
}

struct Current {
    keys: Keys,
    fetched_at: Instant,
    expires: Option<SystemTime>,
}

impl Provided {
    /// Credentials from `fetch`, asked at first use.
    pub fn new(fetch: Fetch) -> Self {
        Self {
            fetch,
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }
}

impl Held {
    fn due(&self, now: Instant, wall: SystemTime) -> bool {
        // A provider that just failed is not asked again at once: a request never waits on it twice in a row.
        if self
            .last_fetch
            .is_some_and(|at| now.saturating_duration_since(at) < RETRY_UNKNOWN)
        {
            return false;
        }
        match &self.current {
            None => true,
            Some(c) => {
                now.saturating_duration_since(c.fetched_at) >= REREAD
                    || c.expires
                        .is_some_and(|e| e.duration_since(wall).unwrap_or_default() < EXPIRY_MARGIN)
            }
        }
    }

    /// Asks the provider; a new key moves the current one to previous. A failure keeps what is held.
    async fn refresh(&mut self, fetch: &Fetch) -> Result<(), String> {
        self.last_fetch = Some(Instant::now());
        let fresh = tokio::time::timeout(FETCH_TIMEOUT, fetch())
            .await
            .map_err(|_| {
                format!("the credentials provider did not answer within {FETCH_TIMEOUT:?}")
            })??;
        let keys = Keys::new(
            fresh.access_key_id().to_owned(),
            fresh.secret_access_key().to_owned(),
            fresh.session_token().map(str::to_owned),
        );
        if let Some(old) = self.current.take() {
            if old.keys.access_key_id != keys.access_key_id {
                tracing::info!(
                    previous = %old.keys.access_key_id,
                    current = %keys.access_key_id,
                    "the credentials provider rotated the credentials; signatures with either are accepted"
                );
                self.previous = Some(old.keys);
            }
        }
        self.current = Some(Current {
            keys,
            fetched_at: Instant::now(),
            expires: fresh.expiry(),
        });
        Ok(())
    }

    /// The held keys whose access key id is `id`.
    fn matching(&self, id: &str) -> Option<&Keys> {
        self.current
            .as_ref()
            .map(|c| &c.keys)
            .into_iter()
            .chain(&self.previous)
            .find(|k| k.access_key_id == id)
    }
}

impl HeldKeys {
    /// Verifies `req`'s signature, over its `body`, now, with the held keys its access key id names; the keys a
    /// forwarded call is signed with.
    pub async fn verify<B>(
        &self,
        req: &http::Request<B>,
        body: &[u8],
    ) -> Result<Keys, SignatureError> {
        let (method, uri, headers) = (req.method(), req.uri(), req.headers());
        let now = SystemTime::now();
        let provided = match self {
            Self::Fixed(keys) => {
                keys.verify(method, uri, headers, body, now)?;
                return Ok(keys.clone());
            }
            Self::Provided(p) => p,
        };
        let id = super::authorization(headers)?.access_key_id.to_owned();
        let mut held = provided.held.lock().await;
        let mono = Instant::now();
        if held.due(mono, now) {
            if let Err(e) = held.refresh(&provided.fetch).await {
                tracing::warn!(error = %e, "the credentials provider failed; the credentials held are used");
            }
        }
        if held.matching(&id).is_none()
            && held
                .last_fetch
                .is_none_or(|at| mono.saturating_duration_since(at) >= RETRY_UNKNOWN)
        {
            // Perhaps rotated since the last fetch: ask once more.
            if let Err(e) = held.refresh(&provided.fetch).await {
                tracing::warn!(error = %e, "the credentials provider failed");
            }
        }
        let current = held
            .current
            .as_ref()
            .map(|c| c.keys.clone())
            .ok_or(SignatureError::NoKeys)?;
        let keys = held.matching(&id).ok_or(SignatureError::UnknownKey)?;
        keys.verify(method, uri, headers, body, now)?;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A provider whose answer the test sets, counting the fetches.
    fn provider(first: &str) -> (Fetch, Arc<Mutex<(String, u32)>>) {
        let state = Arc::new(Mutex::new((first.to_owned(), 0)));
        let shared = Arc::clone(&state);
        let fetch: Fetch = Arc::new(move || {
            let shared = Arc::clone(&shared);
            Box::pin(async move {
                let mut s = shared.lock().expect("lock");
                s.1 += 1;
                Ok(Credentials::new(
                    &s.0,
                    format!("secret-of-{}", s.0),
                    Some(super::super::tests::TOKEN.into()),
                    None,
                    "test",
                ))
            })
        });
        (fetch, state)
    }

    fn signed_by(id: &str) -> http::HeaderMap {
        super::super::tests::signed_get_as(
            id,
            &format!("secret-of-{id}"),
            "/secretsmanager/get?secretId=a",
            SystemTime::now(),
        )
    }

    async fn check(held: &HeldKeys, id: &str) -> Result<Keys, SignatureError> {
        let mut req = http::Request::get("http://127.0.0.1:2773/secretsmanager/get?secretId=a")
            .body(())
            .expect("request");
        *req.headers_mut() = signed_by(id);
        held.verify(&req, b"").await
    }

    #[tokio::test(start_paused = true)]
    async fn the_current_and_the_previous_credentials_verify_and_a_stranger_is_unknown() {
        let (fetch, state) = provider("AKIDONE");
        let held = HeldKeys::Provided(Provided::new(fetch));
        assert_eq!(
            check(&held, "AKIDONE")
                .await
                .expect("current")
                .access_key_id,
            "AKIDONE"
        );
        assert_eq!(state.lock().expect("lock").1, 1, "asked once, then held");
        assert!(check(&held, "AKIDONE").await.is_ok());
        assert_eq!(state.lock().expect("lock").1, 1);

        // The provider rotates; a caller with the new key makes us ask again, and the old key still verifies.
        state.lock().expect("lock").0 = "AKIDTWO".into();
        tokio::time::advance(RETRY_UNKNOWN).await;
        let signer = check(&held, "AKIDTWO").await.expect("the rotated key");
        assert_eq!(signer.access_key_id, "AKIDTWO");
        let signer = check(&held, "AKIDONE").await.expect("the previous key");
        assert_eq!(
            signer.access_key_id, "AKIDTWO",
            "forwarded calls sign with the current key"
        );

        // A key that is neither: asked again at most once per interval, then refused as unknown.
        let before = state.lock().expect("lock").1;
        for _ in 0..5 {
            assert_eq!(
                check(&held, "AKIDSTRANGER").await,
                Err(SignatureError::UnknownKey)
            );
        }
        assert_eq!(
            state.lock().expect("lock").1,
            before,
            "no fetch within the interval"
        );
        tokio::time::advance(RETRY_UNKNOWN).await;
        assert_eq!(
            check(&held, "AKIDSTRANGER").await,
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(state.lock().expect("lock").1, before + 1);

        // Held for REREAD, then asked again.
        tokio::time::advance(REREAD).await;
        assert!(check(&held, "AKIDTWO").await.is_ok());
        assert_eq!(state.lock().expect("lock").1, before + 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_is_no_keys_and_never_a_hang() {
        let fetch: Fetch = Arc::new(|| Box::pin(std::future::pending()));
        let held = HeldKeys::Provided(Provided::new(fetch));
        assert_eq!(check(&held, "AKIDONE").await, Err(SignatureError::NoKeys));
        let asked = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&asked);
        let fetch: Fetch = Arc::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async { Err("refused".to_owned()) })
        });
        let held = HeldKeys::Provided(Provided::new(fetch));
        for _ in 0..5 {
            assert_eq!(check(&held, "AKIDONE").await, Err(SignatureError::NoKeys));
        }
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "a failing provider is asked at most once per interval"
        );
    }
}
