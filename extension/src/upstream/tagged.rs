//! The secrets found by tag for the init prefetch (the Workload Credentials Provider's `prefetch.filter_tags`):
//! ListSecrets with a `tag-key` filter, in pages of 100, then an exact check of each entry's own tags, since the
//! service's `tag-key` filter matches prefixes (`Env` finds `Environment`) and a prefetch must fetch what was named.
//!
//! The secrets are fetched by the names ListSecrets gave: a name means the caller's own account in the home region,
//! which is what ListSecrets lists, so the answers are cached as a read by name would cache them, and reads by name
//! and by ARN are both hits (an answer fetched by ARN alone does not make its name an alias before the account is
//! known; `cache/alias.rs`).

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, SecretListEntry};

use super::{classify, usable, AwsUpstream};
use crate::error::UpstreamError;

/// Secrets per ListSecrets page, the service's largest.
const PAGE: i32 = 100;

impl AwsUpstream {
    /// The names of the home region's secrets that carry one of the tag keys `keys`, at most `limit`, in the order
    /// the service lists them.
    pub(super) async fn secrets_tagged(
        &self,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<String>, UpstreamError> {
        usable(&self.inner.secrets_endpoint)?;
        if keys.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let clients = self.clients(None).await;
        // One filter, its values ORed: ListSecrets takes 10, and the configuration allows no more keys.
        let filter = Filter::builder()
            .key(FilterNameStringType::TagKey)
            .set_values(Some(keys.to_vec()))
            .build();
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = {
                let _permit = self.permit().await?;
                clients
                    .secrets
                    .list_secrets()
                    .filters(filter.clone())
                    .max_results(PAGE)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| classify(e, self.inner.secrets_config.timeout))?
            };
            for entry in out.secret_list() {
                if let Some(name) = entry.name().filter(|_| carries_one_of(entry, keys)) {
                    if found.len() == limit {
                        return Ok(found);
                    }
                    found.push(name.to_owned());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

/// Whether the listed secret carries one of `keys` exactly (case-sensitive, as tag keys are).
fn carries_one_of(entry: &SecretListEntry, keys: &[String]) -> bool {
    entry
        .tags()
        .iter()
        .filter_map(|t| t.key())
        .any(|k| keys.iter().any(|want| want == k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::types::Tag;

    fn entry(tags: &[&str]) -> SecretListEntry {
        let mut e =
            SecretListEntry::builder().arn("arn:aws:secretsmanager:us-east-1:1:secret:s-AbCdEf");
        for t in tags {
            e = e.tags(Tag::builder().key(*t).value("v").build());
        }
        e.build()
    }

    #[test]
    fn a_tag_key_matches_exactly_never_as_a_prefix() {
        let keys = ["Env".to_owned(), "Team".to_owned()];
        assert!(carries_one_of(&entry(&["Env"]), &keys));
        assert!(carries_one_of(&entry(&["Owner", "Team"]), &keys));
        assert!(
            !carries_one_of(&entry(&["Environment"]), &keys),
            "a prefix is not the key"
        );
        assert!(
            !carries_one_of(&entry(&["env"]), &keys),
            "keys are case-sensitive"
        );
        assert!(!carries_one_of(&entry(&[]), &keys));
    }
}
