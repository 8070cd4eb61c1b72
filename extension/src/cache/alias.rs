//! The names one secret answers to, learnt from the upstream's own answer, so that every spelling of a secret shares
//! one cache entry and one upstream call, and never a spelling that names another secret.
//!
//! A secret can be asked for by its name (`my/db`), its full ARN (`arn:aws:secretsmanager:us-east-1:123456789012:
//! secret:my/db-AbCdEf`) or its partial ARN (the full one without the random `-AbCdEf`), and its current version by
//! the `AWSCURRENT` stage or by the version id that stage points to (that one found through the current version's
//! entry, `Cache::cached`, not stored as more keys).
//!
//! The identity rules (README, "Security"):
//! - An alias is a fact the upstream stated about the answer it gave: the ARN it returned, and the name it returned
//!   (only in the extension's own region and account: the same name elsewhere is another secret; the account is
//!   learnt from the first answer to a request by name, since a name always means the caller's own account).
//! - A partial ARN is never derived from an answer: cutting `-XXXXXX` off an ARN gives a string that may be another
//!   secret's full ARN (a secret may be named `<another's name>-<its suffix>`). It is an alias only when a caller asked
//!   for that exact partial ARN and the answer's ARN extends it.
//! - What was asked is stored only when the answer is an answer to it ([`answers`]): its ARN, its name, or a
//!   partial ARN of it, and for a version id, that version. The cache checks the same rule before it serves an answer
//!   fetched under another spelling, and refuses to let an alias replace one that points at another secret
//!   (`cache/mod.rs`).

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
    /// ARN) first. Parameters, and answers without a full ARN, keep just the requested key.
    pub fn aliases(&self, requested: &Key, meta: &Meta) -> Vec<Key> {
        let (Key::Secret(asked), Some(arn)) = (requested, meta.arn.as_deref()) else {
            return vec![requested.clone()];
        };
        let Some(parsed) = SecretArn::parse(arn) else {
            return vec![requested.clone()];
        };
        let home_region = self.region.as_deref() == Some(parsed.region);
        if !is_arn(&asked.secret_id)
            && home_region
            && meta.name.as_deref() == Some(&asked.secret_id)
        {
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
        let mut ids: Vec<&str> = vec![arn];
        if home {
            ids.extend(meta.name.as_deref());
        }
        // The spelling asked for, when this answer is an answer to it (a partial ARN only this way).
        if answers(requested, meta) {
            ids.push(&asked.secret_id);
        }
        // Spelled the same twice (asked by name or ARN), one key, in order; sized exactly: the entry keeps it for hours.
        let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        unique.iter().map(|id| key(id, &asked.selector)).collect()
    }
}

/// Whether an answer described by `meta` is an answer to `key`: for a secret, its id is the answer's full ARN, its
/// name, or a partial ARN the answer's ARN extends by exactly the random suffix, and a version id asked for is the
/// answer's version. An answer without an ARN or name (never one of Secrets Manager's) is taken as it is. A
/// parameter's answer is its own key's (parameters have no aliases).
pub fn answers(key: &Key, meta: &Meta) -> bool {
    let Key::Secret(k) = key else {
        return true;
    };
    let version_ok = match &k.selector {
        VersionSelector::Id(id) | VersionSelector::IdAndStage(id, _) => {
            meta.version.as_deref().is_none_or(|v| v == id)
        }
        VersionSelector::Current | VersionSelector::Stage(_) => true,
    };
    let id = k.secret_id.as_str();
    let id_ok = match (meta.arn.as_deref(), meta.name.as_deref()) {
        (None, None) => true,
        (arn, _) if is_arn(id) => {
            arn == Some(id)
                || arn
                    .and_then(SecretArn::parse)
                    .is_some_and(|a| a.partial == id)
        }
        (_, name) => name == Some(id),
    };
    version_ok && id_ok
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
    fn a_name_learns_the_account_and_every_spelling_aliases_the_current_version_but_not_its_id() {
        let home = Home::new(Some("us-east-1".into()));
        let keys = home.aliases(&key("my/db", VersionSelector::Current), &meta(ARN));
        assert_eq!(
            keys[0],
            key(ARN, VersionSelector::Current),
            "canonical first"
        );
        assert!(
            keys.contains(&key("my/db", VersionSelector::Current)),
            "{:?}",
            ids(&keys)
        );
        // The version id is found through the current version's entry (Cache::cached), not stored as more keys.
        assert_eq!(keys.len(), 2, "{:?}", ids(&keys));
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

    #[test]
    fn a_partial_arn_is_an_alias_only_when_it_was_asked_for() {
        let home = Home::new(Some("us-east-1".into()));
        let by_name = home.aliases(&key("my/db", VersionSelector::Current), &meta(ARN));
        assert!(
            !by_name.contains(&key(PARTIAL, VersionSelector::Current)),
            "{:?}",
            ids(&by_name)
        );
        let by_partial = home.aliases(&key(PARTIAL, VersionSelector::Current), &meta(ARN));
        assert!(by_partial.contains(&key(PARTIAL, VersionSelector::Current)));
        assert_eq!(by_partial[0], key(ARN, VersionSelector::Current));
    }

    /// Secret B named `<A's name>-<A's suffix>`: the partial ARN of B's ARN is A's full ARN. Nothing B's answer says
    /// may make A's ARN a key of B's value, however B was asked for.
    #[test]
    fn a_look_alike_name_never_aliases_another_secrets_arn() {
        let home = Home::new(Some("us-east-1".into()));
        let b_arn = format!("{ARN}-XyZ123");
        let b = Meta {
            arn: Some(b_arn.clone()),
            name: Some("my/db-AbCdEf".into()),
            version: Some("vb".into()),
        };
        for asked in ["my/db-AbCdEf", b_arn.as_str()] {
            let keys = home.aliases(&key(asked, VersionSelector::Current), &b);
            assert!(
                keys.iter()
                    .all(|k| !matches!(k, Key::Secret(s) if s.secret_id == ARN)),
                "{asked}: {:?}",
                ids(&keys)
            );
        }
        // Asked for by the string that is both A's ARN and B's partial ARN, B's answer is an answer to it (that is
        // what the upstream said for that id), and stays under that id only.
        assert!(answers(&key(ARN, VersionSelector::Current), &b));
        assert!(answers(&key(ARN, VersionSelector::Current), &meta(ARN)));
    }

    #[test]
    fn an_answer_answers_its_arn_name_partial_and_version_only() {
        let m = meta(ARN);
        for yes in [
            key(ARN, VersionSelector::Current),
            key(PARTIAL, VersionSelector::Current),
            key("my/db", VersionSelector::Current),
            key("my/db", VersionSelector::Id("v1".into())),
            key("my/db", VersionSelector::Stage("AWSPREVIOUS".into())),
        ] {
            assert!(answers(&yes, &m), "{yes}");
        }
        for no in [
            key("my/other", VersionSelector::Current),
            key("my", VersionSelector::Current),
            key(&format!("{ARN}-XyZ123"), VersionSelector::Current),
            key(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:my",
                VersionSelector::Current,
            ),
            key("my/db", VersionSelector::Id("v2".into())),
            key(
                ARN,
                VersionSelector::IdAndStage("v0".into(), "AWSCURRENT".into()),
            ),
        ] {
            assert!(!answers(&no, &m), "{no}");
        }
    }
}
