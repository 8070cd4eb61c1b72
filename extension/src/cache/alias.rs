//! The names one secret answers to, learnt from the upstream's own answer, so that every spelling of a secret shares
//! one cache entry and one upstream call.
//!
//! A secret can be asked for by its name (`my/db`), its full ARN (`arn:aws:secretsmanager:us-east-1:123456789012:
//! secret:my/db-AbCdEf`) or its partial ARN (the full one without the random `-AbCdEf`), and its current version by
//! the `AWSCURRENT` stage or by the version id that stage points to. Nothing here is guessed from the spelling of a
//! request: the aliases of an answer come from the ARN, name and version id that Secrets Manager returned. A name is
//! an alias only for a secret in the extension's own region and account, because the same name in another account
//! or region is another secret; the account is learnt from the first answer to a request by name (a name always
//! means the caller's own account), and until then no name is aliased to an ARN asked for directly.

use std::sync::OnceLock;

use crate::request::{Key, SecretKey, VersionSelector};

/// What the upstream said about the value it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The secret's or parameter's ARN.
    pub arn: Option<String>,
    /// The secret's or parameter's name.
    pub name: Option<String>,
    /// The secret's `VersionId`, or the parameter's version number.
    pub version: Option<String>,
}

/// The parts of a Secrets Manager ARN that decide what it may alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretArn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// The region the secret lives in.
    pub region: &'a str,
    /// The account that owns it.
    pub account: &'a str,
    /// The ARN without its random six-character suffix (the partial ARN).
    pub partial: &'a str,
}

impl<'a> SecretArn<'a> {
    /// Parses a full ARN as Secrets Manager returns it; `None` for anything else (a name, a partial ARN).
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (prefix, partition, service, region, account, kind, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if prefix != "arn" || service != "secretsmanager" || kind != "secret" {
            return None;
        }
        // The suffix Secrets Manager adds: a dash and six characters.
        let (name, suffix) = resource.rsplit_once('-')?;
        if name.is_empty()
            || suffix.len() != 6
            || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        Some(Self {
            partition,
            region,
            account,
            partial: &arn[..arn.len() - suffix.len() - 1],
        })
    }
}

/// Whether a secret id is an ARN (full or partial) rather than a name.
pub fn is_arn(id: &str) -> bool {
    id.starts_with("arn:")
}

/// Where the extension runs: names resolve in this region and account.
#[derive(Debug, Default)]
pub struct Home {
    region: Option<String>,
    account: OnceLock<String>,
}

impl Home {
    /// The home region (`AWS_REGION`); unknown means no name is ever aliased to an ARN.
    pub fn new(region: Option<String>) -> Self {
        Self {
            region,
            account: OnceLock::new(),
        }
    }

    /// The keys under which the answer `meta` to a request for `requested` may be served, the canonical one (by full
    /// ARN) first. Parameters, and answers without an ARN, keep just the requested key.
    pub fn aliases(&self, requested: &Key, meta: &Meta) -> Vec<Key> {
        let (Key::Secret(asked), Some(arn)) = (requested, meta.arn.as_deref()) else {
            return vec![requested.clone()];
        };
        let Some(parsed) = SecretArn::parse(arn) else {
            return vec![requested.clone()];
        };
        let home_region = self.region.as_deref() == Some(parsed.region);
        if !is_arn(&asked.secret_id) && home_region {
            // A name means the caller's own account: the answer tells us which one that is.
            let _ = self.account.set(parsed.account.to_owned());
        }
        let home = home_region && self.account.get().map(String::as_str) == Some(parsed.account);
        let key = |id: &str, selector: &VersionSelector| {
            Key::Secret(SecretKey {
                secret_id: id.to_owned(),
                selector: selector.clone(),
            })
        };
        let mut ids: Vec<&str> = vec![arn, parsed.partial];
        if home {
            ids.extend(meta.name.as_deref());
        }
        // The spelling asked for resolved to this secret, whatever it was.
        ids.push(&asked.secret_id);
        let mut keys: Vec<Key> = Vec::with_capacity(ids.len() * 2);
        for id in &ids {
            let k = key(id, &asked.selector);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // The current version is also that version id, for as long as this entry lives: a version's content never
        // changes, so serving it by id from this entry stays right even after AWSCURRENT moves on.
        if let (VersionSelector::Current, Some(version)) =
            (&asked.selector, meta.version.as_deref())
        {
            for id in &ids {
                let k = key(id, &VersionSelector::Id(version.to_owned()));
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db-AbCdEf";
    const PARTIAL: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db";

    fn key(id: &str, selector: VersionSelector) -> Key {
        Key::Secret(SecretKey {
            secret_id: id.into(),
            selector,
        })
    }

    fn meta(arn: &str) -> Meta {
        Meta {
            arn: Some(arn.into()),
            name: Some("my/db".into()),
            version: Some("v1".into()),
        }
    }

    fn ids(keys: &[Key]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn arns_parse_into_their_parts() {
        let a = SecretArn::parse(ARN).expect("full ARN");
        assert_eq!(
            (a.partition, a.region, a.account, a.partial),
            ("aws", "us-east-1", "123456789012", PARTIAL)
        );
        let cn = SecretArn::parse("arn:aws-cn:secretsmanager:cn-north-1:1:secret:a-b-123456")
            .expect("China");
        assert_eq!(
            cn.partial,
            "arn:aws-cn:secretsmanager:cn-north-1:1:secret:a-b"
        );
        for not in [
            PARTIAL,
            "my/db",
            "arn:aws:ssm:us-east-1:1:parameter/x",
            "arn:aws:secretsmanager:r:1:secret:-AbCdEf",
        ] {
            assert_eq!(SecretArn::parse(not), None, "{not}");
        }
    }

    #[test]
    fn a_name_learns_the_account_and_every_spelling_aliases_the_current_version() {
        let home = Home::new(Some("us-east-1".into()));
        let keys = home.aliases(&key("my/db", VersionSelector::Current), &meta(ARN));
        assert_eq!(
            keys[0],
            key(ARN, VersionSelector::Current),
            "canonical first"
        );
        for k in [
            key(PARTIAL, VersionSelector::Current),
            key("my/db", VersionSelector::Current),
            key(ARN, VersionSelector::Id("v1".into())),
            key("my/db", VersionSelector::Id("v1".into())),
        ] {
            assert!(keys.contains(&k), "{k} missing from {:?}", ids(&keys));
        }
        // Asked by ARN afterwards: the name is known to be ours now.
        let keys = home.aliases(&key(ARN, VersionSelector::Current), &meta(ARN));
        assert!(keys.contains(&key("my/db", VersionSelector::Current)));
    }

    #[test]
    fn a_name_never_aliases_an_arn_of_another_account_or_region() {
        let home = Home::new(Some("us-east-1".into()));
        // Nothing learnt yet: an ARN asked for directly does not give its name away.
        let keys = home.aliases(&key(ARN, VersionSelector::Current), &meta(ARN));
        assert!(
            !keys.contains(&key("my/db", VersionSelector::Current)),
            "{:?}",
            ids(&keys)
        );
        assert!(keys.contains(&key(PARTIAL, VersionSelector::Current)));
        home.aliases(&key("my/db", VersionSelector::Current), &meta(ARN));
        for foreign in [
            "arn:aws:secretsmanager:us-east-1:999999999999:secret:my/db-ZzZzZz",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:my/db-YyYyYy",
        ] {
            let keys = home.aliases(&key(foreign, VersionSelector::Current), &meta(foreign));
            assert!(
                !keys.contains(&key("my/db", VersionSelector::Current)),
                "{foreign}: {:?}",
                ids(&keys)
            );
        }
    }

    #[test]
    fn other_selectors_and_parameters_keep_what_was_asked() {
        let home = Home::new(Some("us-east-1".into()));
        let pending = home.aliases(
            &key("my/db", VersionSelector::Stage("AWSPENDING".into())),
            &meta(ARN),
        );
        assert!(pending.iter().all(|k| matches!(k, Key::Secret(s) if s.selector == VersionSelector::Stage("AWSPENDING".into()))));
        let p = Key::Parameter(crate::request::ParameterKey {
            name: "/a".into(),
            with_decryption: true,
        });
        assert_eq!(
            home.aliases(&p, &meta("arn:aws:ssm:us-east-1:1:parameter/a")),
            vec![p]
        );
    }
}
