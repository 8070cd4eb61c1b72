//! After the database refuses a password: which versions of the secret to try, in which order.
//!
//! Secrets Manager's rotation changes two things one after the other, never at once: the database's password and the
//! secret's versions. A client that holds `AWSCURRENT` and sees its login refused asks for:
//! 1. `AWSCURRENT` anew (`refreshNow=true`): the rotation has finished, and the cached value is the old one;
//! 2. `AWSPENDING`: single-user rotation sets the new password in the database (its `setSecret` step) before it moves
//!    `AWSCURRENT` to the new version (`finishSecret`), so in between only `AWSPENDING` logs in.
//!
//! "No `AWSPENDING` version" (a 404) means no rotation is in progress: the candidates simply end there.
//!
//! [`Client::rotation`] is written here, beside [`Rotation`]: this module builds on the client and its reads, and
//! they know nothing of it.

use crate::body::GetSecretValueBody;
use crate::client::Client;
use crate::contract::stage;
use crate::error::Error;

impl Client {
    /// The versions of `secret_id` to try after a login was refused, in order (see [`Rotation`]).
    pub fn rotation<'a>(&'a self, secret_id: &'a str) -> Rotation<'a> {
        Rotation::new(self, secret_id)
    }
}

/// A version of the secret worth trying after a refused login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Candidate {
    /// `AWSCURRENT`, fetched anew (`refreshNow=true`), bypassing the cached value that was just refused.
    Current,
    /// `AWSPENDING` (also `refreshNow=true`): what single-user rotation has already set in the database.
    Pending,
}

impl Candidate {
    /// The order to try them in.
    pub const ORDER: [Candidate; 2] = [Candidate::Current, Candidate::Pending];

    /// The staging label.
    pub fn stage(self) -> &'static str {
        match self {
            Self::Current => stage::AWSCURRENT,
            Self::Pending => stage::AWSPENDING,
        }
    }
}

/// The candidates for one refused login, fetched one at a time as [`Rotation::next`] is called, so a caller that
/// logs in with the first stops there. Built by [`Client::rotation`].
///
/// It ends after `AWSPENDING`, at a 404 for `AWSPENDING` (no rotation in progress), or after an error, which it yields
/// once. Make a new one for the next refused login.
#[derive(Debug)]
#[must_use = "the candidates are fetched by calling `next`"]
pub struct Rotation<'a> {
    client: &'a Client,
    secret_id: &'a str,
    /// Index into [`Candidate::ORDER`] of the next one to fetch.
    next: usize,
}

impl<'a> Rotation<'a> {
    fn new(client: &'a Client, secret_id: &'a str) -> Self {
        Self {
            client,
            secret_id,
            next: 0,
        }
    }

    /// The next candidate and what fetching it gave, or `None` when there is nothing more to try.
    pub async fn next(
        &mut self,
    ) -> Option<(Candidate, Result<GetSecretValueBody<'static>, Error>)> {
        let candidate = *Candidate::ORDER.get(self.next)?;
        self.next += 1;
        let request = self.client.secret(self.secret_id).refresh_now(true);
        // AWSCURRENT is asked without a stage, as a plain read asks it, so that the refresh replaces the very entry
        // that plain reads are served from.
        let request = match candidate {
            Candidate::Current => request,
            Candidate::Pending => request.version_stage(stage::AWSPENDING),
        };
        match request.send().await {
            Err(e) if candidate == Candidate::Pending && e.is_not_found() => None,
            Err(e) => {
                self.next = Candidate::ORDER.len();
                Some((candidate, Err(e)))
            }
            fetched => Some((candidate, fetched)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let client = Client::builder().token("hunter2").build();
        let text = format!("{:?}", client.rotation("db"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }
}
