//! Seeding moto for one test: names no other test of the binary uses, and the create-secret / put-parameter chains
//! the tests repeat.
//!
//! The tests of a binary share one moto ([`crate::moto::Moto::shared`]) and run in parallel, so a fixed name such as
//! `app/db` would be created twice. [`unique`] gives each test its own: `app/db` becomes `app/db-u7`, `/app/url`
//! becomes `/app/url-u7`, and an SSM path made from it (`/tree-u7/a`) stays under that test's own root. Every helper
//! here takes the name as given, so the name a test reads back is the one it created.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `name` with a suffix no other call in this process gives (`app/db` -> `app/db-u7`). The suffix is short and not
/// six characters long, so a unique name never looks like a name plus an ARN's random suffix.
pub fn unique(name: &str) -> String {
    format!("{name}-u{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What CreateSecret answered.
#[derive(Debug, Clone)]
pub struct Created {
    /// The secret's full ARN.
    pub arn: String,
    /// The id of its first version (AWSCURRENT).
    pub version_id: String,
}

/// Creates the string secret `name` holding `value`.
pub async fn secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> Created {
    tagged_secret(sm, name, value, &[]).await
}

/// Creates the string secret `name` holding `value`, with the tags `tags` (key, value).
pub async fn tagged_secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
) -> Created {
    let mut call = sm.create_secret().name(name).secret_string(value);
    for (k, v) in tags {
        call = call.tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build(),
        );
    }
    let out = call
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
    Created {
        arn: out.arn.expect("CreateSecret answers an ARN"),
        version_id: out.version_id.expect("CreateSecret answers a version id"),
    }
}

/// Creates the binary secret `name` holding `value`.
pub async fn binary_secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: Vec<u8>,
) -> Created {
    let out = sm
        .create_secret()
        .name(name)
        .secret_binary(Blob::new(value))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
    Created {
        arn: out.arn.expect("CreateSecret answers an ARN"),
        version_id: out.version_id.expect("CreateSecret answers a version id"),
    }
}

/// Writes `value` as the new AWSCURRENT of the secret `id` (PutSecretValue); returns the new version's id.
pub async fn new_value(sm: &aws_sdk_secretsmanager::Client, id: &str, value: &str) -> String {
    sm.put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutSecretValue {id}: {e:?}"))
        .version_id
        .expect("PutSecretValue answers a version id")
}

/// Creates the parameter `name` of type `kind` holding `value` (PutParameter without overwrite: a name that exists
/// already is an error, so two tests can never share one unnoticed).
pub async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str, kind: ParameterType, value: &str) {
    ssm.put_parameter()
        .name(name)
        .r#type(kind)
        .value(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter {name}: {e:?}"));
}

/// Writes `value` as the next version of the parameter `name` (PutParameter with overwrite; creates it if absent).
pub async fn parameter_version(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    kind: ParameterType,
    value: &str,
) {
    ssm.put_parameter()
        .name(name)
        .r#type(kind)
        .value(value)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter {name} (overwrite): {e:?}"));
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn unique_names_differ_and_keep_the_given_name_as_their_start() {
        let (a, b) = (unique("app/db"), unique("app/db"));
        assert_ne!(a, b);
        assert!(a.starts_with("app/db-u") && b.starts_with("app/db-u"));
        let p = unique("/tree");
        assert!(p.starts_with("/tree-u") && !p[1..].contains('/'), "{p}");
    }
}
