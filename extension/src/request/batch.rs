//! The batch routes' queries: repeated ids, bounded by the upstream operations' batch sizes.

use super::form::repeated;
use super::names::check_region;
use super::{Key, ParameterKey, Query, QueryError, SecretKey, VersionSelector};

/// A parsed `GET /secretsmanager/batch` or `GET /systemsmanager/parameters/batch`: several keys, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// What to fetch, duplicates removed, in the order first given.
    pub keys: Vec<Key>,
    /// The ids as given, one per key (a secret's `secretId`, a parameter's `name`).
    pub ids: Vec<String>,
    /// `roleArn=`: read as this role (its own cache).
    pub role: Option<String>,
    /// `field=`: answer only this top-level key of each JSON value.
    pub field: Option<String>,
}

/// BatchGetSecretValue's limit.
pub const MAX_BATCH_SECRETS: usize = secretcache_client::contract::MAX_SECRET_BATCH;
/// GetParameters' limit.
pub const MAX_BATCH_PARAMETERS: usize = secretcache_client::contract::MAX_PARAMETER_BATCH;

impl BatchRequest {
    /// Parses `secretId=a&secretId=b...` (1 to 20; their current versions), with an optional `field`.
    pub fn secrets(raw_query: &str) -> Result<Self, QueryError> {
        let ids = repeated(raw_query, "secretId", MAX_BATCH_SECRETS)?;
        for id in &ids {
            check_region("secretId", id)?;
        }
        let q = Query::parse(raw_query)?;
        let keys = ids
            .iter()
            .map(|id| {
                Key::Secret(SecretKey {
                    secret_id: id.clone(),
                    selector: VersionSelector::Current,
                })
            })
            .collect();
        Ok(Self {
            keys,
            ids,
            role: q.role()?,
            field: q.field()?,
        })
    }

    /// Parses `name=a&name=b...` (1 to 10), `withDecryption` and an optional `field`.
    pub fn parameters(raw_query: &str) -> Result<Self, QueryError> {
        let ids = repeated(raw_query, "name", MAX_BATCH_PARAMETERS)?;
        for id in &ids {
            check_region("name", id)?;
        }
        let q = Query::parse(raw_query)?;
        let with_decryption = q.flag("withDecryption")?;
        let keys = ids
            .iter()
            .map(|name| {
                Key::Parameter(ParameterKey {
                    name: name.clone(),
                    with_decryption,
                })
            })
            .collect();
        Ok(Self {
            keys,
            ids,
            role: q.role()?,
            field: q.field()?,
        })
    }
}
