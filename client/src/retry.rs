//! The cold-start retry: one read, retried while the extension is not answering yet, within a bounded wait.
//!
//! A function's init code can run before the extension listens (the AWS extension does not serve during INIT at all).
//! A refused connection, and a 503 from an extension still warming up or momentarily full, are retried with a
//! doubling pause ([`COLD_START`]: 20 ms up to 250 ms) until the startup wait is spent; anything else is answered at
//! once. Each attempt is bounded by the call timeout, and an attempt that times out is not retried.

use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::backoff::Backoff;
use crate::error::Error;
use crate::transport::{Attempt, Transport};

/// The cold-start retry's pauses: one process waiting for one extension, so no jitter.
const COLD_START: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(250));

/// How long one read may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// The bound on each attempt.
    pub(crate) timeout: Duration,
    /// How long refused connections and 503s keep being retried.
    pub(crate) startup_wait: Duration,
}

/// `GET uri` with `token`, through the cold-start retry: the body of a 200, or the error. `port` is only for
/// [`Error::Unreachable`].
pub(crate) async fn get(
    transport: &Transport,
    uri: &str,
    token: &HeaderValue,
    port: u16,
    bounds: Bounds,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let give_up = Instant::now() + bounds.startup_wait;
    let mut pauses = COLD_START.delays();
    loop {
        let outcome = tokio::time::timeout(bounds.timeout, transport.get(uri, token))
            .await
            .map_err(|_| Error::Timeout(bounds.timeout))?;
        let retryable = matches!(outcome, Err(Attempt::Refused) | Ok((503, _)));
        let pause = pauses.next().unwrap_or(COLD_START.max());
        if !retryable || Instant::now() + pause > give_up {
            return match outcome {
                Err(Attempt::Refused) => Err(Error::Unreachable { port }),
                Err(Attempt::Failed(e)) => Err(e),
                Ok((200, body)) => Ok(body),
                Ok((status, body)) => Err(Error::from_answer(status, &body)),
            };
        }
        tracing::debug!(
            pause_ms = pause.as_millis() as u64,
            "secrets extension not ready yet; retrying"
        );
        tokio::time::sleep(pause).await;
    }
}
