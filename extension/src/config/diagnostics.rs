//! What reading the configuration found: errors (a value replaced by a default), notices, and likely misspellings
//! of our variable names, logged once tracing is up.

use std::fmt;

use super::names::KNOWN_VARIABLES;
use super::reader::Env;

/// A value that could not be used, and what was used instead. `main` logs each as one ERROR line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value} is not valid (expected {expected}); using {used} instead")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What was given, quoted; `<redacted>` for token variables.
    pub value: String,
    /// What is accepted, in words.
    pub expected: &'static str,
    /// The value used instead, in words.
    pub used: String,
}

/// What reading the environment found besides the values: logged once, after tracing is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Values that could not be used (ERROR lines; counted as `config_errors`).
    pub errors: Vec<ConfigError>,
    /// Values honoured beyond the AWS extension's limits, or clamped (one INFO or WARN line each).
    pub notices: Vec<Notice>,
    /// Set variables that look like misspellings of ours (WARN lines).
    pub misspellings: Vec<String>,
}

/// Something worth one log line about a value that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Honoured, but the AWS extension would not have (we deliberately go further).
    BeyondAws(String),
    /// Accepted and clamped to our limit, as the AWS extension clamps to its own.
    Clamped(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BeyondAws(s) | Self::Clamped(s) => f.write_str(s),
        }
    }
}

/// Warnings about set variables that look like misspellings of ours, for example
/// `PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL`. Users have lost hours to those.
pub(super) fn misspellings(env: &impl Env) -> Vec<String> {
    let mut names = env.names();
    names.sort();
    names
        .iter()
        .filter(|n| !KNOWN_VARIABLES.contains(&n.as_str()))
        .filter_map(|n| {
            suggestion(n).map(|known| {
                format!("environment variable {n} is not one we read; did you mean {known}? It is ignored")
            })
        })
        .collect()
}

/// The known variable that `name` most likely misspells, if any.
pub(super) fn suggestion(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    // A well-known mistake: the product is "Parameters and Secrets", the prefix is not.
    let respelled = upper
        .replacen("PARAMETERS_AND_SECRETS_", "PARAMETERS_SECRETS_", 1)
        .replacen("PARAMETER_SECRETS_", "PARAMETERS_SECRETS_", 1)
        .replacen("SECRET_MANAGER_", "SECRETS_MANAGER_", 1);
    // The edit distance is at least the difference in length (in characters), so a name that differs from a known one in length by
    // more than any distance accepted below is not compared at all: the quadratic comparison runs only for names of
    // about the same length (a function's environment holds dozens of variables; a fuzzer's names are kilobytes).
    // So is the count of characters one has and the other lacks (the bag distance), which costs one pass.
    let close = |a: &str, known: &str| {
        let bound = 3.max(known.len() / 4);
        a.chars().count().abs_diff(known.len()) <= bound && bag_distance(a, known) <= bound
    };
    KNOWN_VARIABLES
        .iter()
        .copied()
        .filter_map(|known| {
            [&respelled, &upper]
                .into_iter()
                .filter(|n| close(n, known))
                .map(|n| strsim::levenshtein(n, known))
                .min()
                .map(|d| (known, d))
        })
        .filter(|(known, d)| *d <= 3 || (*d < known.len() / 4 && respelled != upper))
        .min_by_key(|(_, d)| *d)
        .map(|(known, _)| known)
}

/// A lower bound of the edit distance (in characters, as `strsim::levenshtein` counts) of `a` and `b`: of the
/// characters one has more of than the other, the larger count (one edit removes at most one of each side's surplus).
/// Characters past ASCII share one count, which only lowers the bound.
fn bag_distance(a: &str, b: &str) -> usize {
    let mut counts = [0i32; 129];
    let bucket = |c: char| usize::try_from(u32::from(c)).map_or(128, |i| i.min(128));
    for c in a.chars() {
        counts[bucket(c)] += 1;
    }
    for c in b.chars() {
        counts[bucket(c)] -= 1;
    }
    let (surplus, lack) = counts.iter().fold((0usize, 0usize), |(s, l), &n| {
        if n > 0 {
            (s + n.unsigned_abs() as usize, l)
        } else {
            (s, l + n.unsigned_abs() as usize)
        }
    });
    surplus.max(lack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bag_distance_never_exceeds_the_edit_distance() {
        let names = [
            "",
            "A",
            "SECRETS_MANAGER_TTL",
            "SECRET_MANAGER_TTL",
            "SECRETS_MANAGER_TTLL",
            "TTL_MANAGER_SECRETS",
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            "PARAMETERS_AND_SECRETS_EXTENSION_HTTP_PORT",
            "ÉTÉ_UNICODE_NAME",
        ];
        for a in names {
            for b in names {
                assert!(bag_distance(a, b) <= strsim::levenshtein(a, b), "{a} / {b}");
            }
        }
        assert_eq!(
            bag_distance("SECRETS_MANAGER_TTL", "TTL_MANAGER_SECRETS"),
            0
        );
        assert_eq!(
            suggestion("SECRETS_MANAGER_TTLL"),
            Some("SECRETS_MANAGER_TTL")
        );
        assert_eq!(suggestion("TTL_MANAGER_SECRETS"), None);
    }
}
