//! How the function reads a value: through the client crate's [`Env`] seam and parsers, into a typed
//! [`ConfigError`] that names the variable and what it accepts, and never the value (some of these variables hold a
//! password). The function may refuse to start on a bad value of its own, so every reader here answers a `Result`.
//!
//! Parts: [`ConfigError`]; `optional`, `read`, `number`, `millis` and `secs`, the readers every settings module uses;
//! `misspellings`, the warning about a set variable in our namespaces that we do not read.

use std::ops::RangeInclusive;
use std::time::Duration;

use secretcache_client::env::{parse_millis, parse_secs, parse_whole_in, Env, Spelling};

use super::names::KNOWN_VARIABLES;

/// A value that cannot be used, named by its variable. The message never repeats the value, since some of these
/// variables hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse, or is out of range.
    #[error("{name} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// A group of variables is only partly set.
    #[error("{0}")]
    Incomplete(&'static str),
}

/// `name` through `parse`, or `None` when it is unset or blank; a value `parse` refuses is an error naming the
/// variable and `expected`.
pub(super) fn optional<T>(
    env: &impl Env,
    name: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    env.non_blank(name)
        .map(|v| parse(&v).ok_or(ConfigError::Invalid { name, expected }))
        .transpose()
}

/// As [`optional`], with `default` when the variable is unset.
pub(super) fn read<T>(
    env: &impl Env,
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &'static str,
) -> Result<T, ConfigError> {
    Ok(optional(env, name, parse, expected)?.unwrap_or(default))
}

/// A whole number in `range`, or `default` when unset.
pub(super) fn number<T>(
    env: &impl Env,
    name: &'static str,
    default: T,
    range: RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, ConfigError>
where
    T: TryFrom<u64> + PartialOrd,
{
    read(env, name, default, |v| parse_whole_in(v, range), expected)
}

/// A whole number of milliseconds in `range`, or `default_ms` when unset.
pub(super) fn millis(
    env: &impl Env,
    name: &'static str,
    default_ms: u64,
    range: RangeInclusive<u64>,
    expected: &'static str,
) -> Result<Duration, ConfigError> {
    let default = Duration::from_millis(default_ms);
    read(env, name, default, |v| parse_millis(v, range), expected)
}

/// A whole number of seconds in `range`, or `default_secs` when unset.
pub(super) fn secs(
    env: &impl Env,
    name: &'static str,
    default_secs: u64,
    range: RangeInclusive<u64>,
    expected: &'static str,
) -> Result<Duration, ConfigError> {
    let default = Duration::from_secs(default_secs);
    read(env, name, default, |v| parse_secs(v, range), expected)
}

/// Set variables in our namespaces (`DATABASE_*`, `DB_*`) that we do not read, with the closest name we do read.
/// A misspelt `DB_SECRET_ARN` would otherwise fall through silently to the next credential source.
pub(super) fn misspellings(env: &impl Env) -> Vec<String> {
    Spelling::new(KNOWN_VARIABLES)
        .namespaces(&["DATABASE_", "DB_", "DB-"])
        .check(env)
        .into_iter()
        .map(|(n, closest)| {
            format!("{n} is not a variable this function reads; did you mean {closest}?")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::env::from_pairs as env;

    #[test]
    fn readers_default_when_unset_or_blank_and_name_the_variable_when_bad() {
        let e = env(&[("N", " 7 "), ("BLANK", "  "), ("BAD", "hunter2")]);
        assert_eq!(number(&e, "N", 1u32, 1..=20, "1-20"), Ok(7));
        assert_eq!(number(&e, "BLANK", 1u32, 1..=20, "1-20"), Ok(1));
        assert_eq!(number(&e, "UNSET", 1u32, 1..=20, "1-20"), Ok(1));
        assert_eq!(
            millis(&e, "N", 5, 0..=10, "ms"),
            Ok(Duration::from_millis(7))
        );
        assert_eq!(
            secs(&e, "UNSET", 5, 0..=10, "s"),
            Ok(Duration::from_secs(5))
        );
        let bad = number(&e, "BAD", 1u32, 1..=20, "1-20").expect_err("bad");
        assert_eq!(
            bad,
            ConfigError::Invalid {
                name: "BAD",
                expected: "1-20"
            }
        );
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
        assert_eq!(optional(&e, "UNSET", |_| Some(()), "x"), Ok(None));
    }

    #[test]
    fn misspelt_variables_are_warned_about() {
        let warnings = misspellings(&env(&[
            ("DB_SECRET_ARM", "x"),
            ("DATABASE_SSL_MODE", "require"),
            ("DATABASE_URL", "sqlite::memory:"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].contains("did you mean DATABASE_SSLMODE"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("did you mean DB_SECRET_ARN"),
            "{warnings:?}"
        );
    }
}
