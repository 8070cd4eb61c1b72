//! Recovery from a rotated password: after PostgreSQL refuses a login with `28P01`, find the version of the secret it
//! accepts (`refreshNow=true`, then `AWSPENDING`, in the order `secretcache_client::Rotation` gives) and hand it to the pool, single-flighted; and [`Rejection`], the
//! short memory of "every version was rejected" that keeps the next requests from asking the extension again.

use std::sync::atomic::Ordering;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use secretcache_client::backoff::Backoff;
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use super::error::is_invalid_password;
use super::{Database, DbError};

/// The pauses while waiting for the other half of a rotation: one process, one database, so no jitter.
const ROTATION_WAIT: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));

/// Remembers, for a short while, that the database rejected every version of the secret, so that the requests after
/// it answer at once instead of each asking the extension for every version again. On tokio's clock, so tests can
/// pause it.
#[derive(Debug)]
pub(super) struct Rejection {
    backoff: Duration,
    until: SyncMutex<Option<Instant>>,
}

impl Rejection {
    pub(super) fn new(backoff: Duration) -> Self {
        Self {
            backoff,
            until: SyncMutex::new(None),
        }
    }

    /// How long asking again stays useless, if it does.
    pub(super) fn remaining(&self) -> Option<Duration> {
        let until = (*self.until.lock().unwrap_or_else(|p| p.into_inner()))?;
        let now = Instant::now();
        (now < until).then(|| until - now)
    }

    /// Every version was rejected just now; returns the backoff that starts (none when it is zero).
    pub(super) fn remember(&self) -> Option<Duration> {
        if self.backoff.is_zero() {
            return None;
        }
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + self.backoff);
        Some(self.backoff)
    }

    /// A login worked again.
    pub(super) fn forget(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Database {
    /// After a `28P01`: find credentials the database accepts and give them to the pool.
    pub(super) async fn recover(
        &self,
        pool: &PgPool,
        failed_generation: u64,
    ) -> Result<(), DbError> {
        let source_name = self.source_name();
        let provider = match &self.credentials {
            Some(p) if p.rotates() => p,
            _ => {
                tracing::error!(
                    source = source_name,
                    "the database rejected the configured password"
                );
                return Err(DbError::CredentialsRejected {
                    source_name,
                    retry_after: None,
                });
            }
        };
        let known_useless = || {
            self.rejected
                .remaining()
                .map(|wait| DbError::CredentialsRejected {
                    source_name,
                    retry_after: Some(wait),
                })
        };
        if let Some(e) = known_useless() {
            return Err(e);
        }
        let _single_flight = self.rotation.lock().await;
        if self.generation.load(Ordering::Acquire) != failed_generation {
            // Someone recovered while we waited for the lock; their options are already in the pool.
            return Ok(());
        }
        // Or someone gave up while we waited: asking again now would only repeat their calls.
        if let Some(e) = known_useless() {
            return Err(e);
        }
        tracing::warn!(
            source = source_name,
            "the database rejected the password; the secret may have rotated, refreshing it"
        );
        let give_up = Instant::now() + self.pool.rotation_grace;
        let mut pauses = ROTATION_WAIT.delays();
        loop {
            // The client's rotation order: AWSCURRENT anew, then AWSPENDING (a parameter: read anew, once).
            let mut candidates = provider.candidates();
            while let Some(next) = candidates.next().await {
                let (version, login) = next?;
                let options = self.pg_options(&login)?;
                let probe = tokio::time::timeout(
                    self.pool.acquire_timeout,
                    PgConnection::connect_with(&options),
                )
                .await;
                match probe {
                    Ok(Ok(conn)) => {
                        // The probe was only to choose between the versions; the pool opens its own.
                        let _ = conn.close().await;
                        pool.set_connect_options(options);
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        self.rejected.forget();
                        tracing::info!(
                            source = source_name,
                            version,
                            "database login works again with the refreshed credentials"
                        );
                        return Ok(());
                    }
                    Ok(Err(e)) if is_invalid_password(&e) => {
                        tracing::warn!(
                            source = source_name,
                            version,
                            "the database rejected this version of the secret too"
                        );
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        return Err(DbError::Unavailable(
                            "timed out connecting to the database".to_owned(),
                        ))
                    }
                }
            }
            // The database's password and the secret are changed one after the other, never at once: wait a
            // little for the other half of the rotation before giving up.
            let pause = pauses.next().unwrap_or(ROTATION_WAIT.max());
            if Instant::now() + pause > give_up {
                let retry_after = self.rejected.remember();
                tracing::error!(
                    source = source_name,
                    backoff_ms = retry_after.map_or(0, |d| d.as_millis() as u64),
                    "the database rejects every version of the secret; check the rotation"
                );
                return Err(DbError::CredentialsRejected {
                    source_name,
                    retry_after,
                });
            }
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_remembered_for_the_backoff_only() {
        let r = Rejection::new(Duration::from_secs(5));
        assert_eq!(r.remaining(), None);
        assert_eq!(r.remember(), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.remaining(), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(r.remaining(), None, "over at the deadline");
        r.remember();
        r.forget();
        assert_eq!(r.remaining(), None, "a login that works ends it");
        let off = Rejection::new(Duration::ZERO);
        assert_eq!(off.remember(), None);
        assert_eq!(off.remaining(), None);
    }
}
