//! Reading configuration from the environment: the seam, the tolerant parsers, and the misspelling hint.
//!
//! The extension and the `/items` function both read their settings from environment variables, and both want the
//! same things: tests that pass a map instead of calling `set_var`, values that tolerate stray whitespace, numbers
//! and durations checked against a range, and a warning when a set variable looks like a misspelling of one of
//! theirs. What a bad value *does* stays each program's own choice (the extension logs and uses its default, the
//! function refuses to start), so the parsers here answer `Option` and each caller builds its own typed error.
//!
//! Parts:
//! - [`Env`]: the seam (get a variable, list the names that are set), with [`Env::non_blank`] and [`Env::trimmed`],
//!   the two ways an empty value counts as unset; [`ProcessEnv`] reads the process, and a `HashMap` stands in for it
//!   in tests;
//! - [`parse_bool`] (Go's `strconv.ParseBool`, which the AWS extension's flags follow) and [`parse_yes_no`] (the
//!   words a person types: `true`/`yes`/`1`, any case);
//! - [`parse_whole`], [`parse_whole_in`], [`parse_millis`] and [`parse_secs`]: whole numbers in decimal digits, and
//!   durations as a whole number of a unit;
//! - [`Spelling`]: which set variables look like misspellings of ours, and the name they most likely meant ("did you
//!   mean ...?").

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Read access to environment variables.
///
/// Production passes [`ProcessEnv`]; tests pass a `HashMap<String, String>`, so no test mutates the process
/// environment.
pub trait Env {
    /// The value of `name`, if it is set.
    fn get(&self, name: &str) -> Option<String>;

    /// Every variable name that is set (for the misspelling check).
    fn names(&self) -> Vec<String>;

    /// The value of `name` as given, when it is set and not blank: a blank value counts as unset, and a value that
    /// may mean its spaces (a password, a path) keeps them.
    fn non_blank(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The value of `name` with surrounding whitespace removed; empty counts as unset.
    fn trimmed(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, name: &str) -> Option<String> {
        (**self).get(name)
    }
    fn names(&self) -> Vec<String> {
        (**self).names()
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        // A value that is not Unicode cannot be any of ours: it is set, and unusable, so it reaches the parser (and
        // its error) instead of passing for unset.
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

/// An environment of literal pairs, for tests of any crate that reads through [`Env`] (no test ever mutates the
/// process environment).
pub fn from_pairs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Go's `strconv.ParseBool`: exactly these spellings, nothing else (no trimming either). The AWS extension's
/// boolean variables and query flags are read this way, so a drop-in replacement reads them the same.
pub fn parse_bool(s: &str) -> Option<bool> {
    if GO_TRUE.contains(&s) {
        Some(true)
    } else if GO_FALSE.contains(&s) {
        Some(false)
    } else {
        None
    }
}

/// The spellings Go's `strconv.ParseBool` reads as true.
pub const GO_TRUE: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
/// The spellings Go's `strconv.ParseBool` reads as false.
pub const GO_FALSE: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

/// Every spelling Go's `strconv.ParseBool` accepts, with its value: the table tests of every reader iterate.
pub fn go_bool_spellings() -> impl Iterator<Item = (&'static str, bool)> {
    GO_TRUE
        .iter()
        .map(|&v| (v, true))
        .chain(GO_FALSE.iter().map(|&v| (v, false)))
}

/// A yes-or-no setting as a person types it: `true`, `1` or `yes`; `false`, `0` or `no`; in any case, trimmed.
pub fn parse_yes_no(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A whole number in decimal digits, trimmed, a leading `+` allowed (as Go's `strconv.Atoi` and Rust's own parse
/// allow). More digits than a `u64` holds is still a whole number: it saturates, and a range then rejects or clamps
/// it.
pub fn parse_whole(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// A whole number (as [`parse_whole`]) within `range`, as the range's type.
pub fn parse_whole_in<T>(s: &str, range: RangeInclusive<T>) -> Option<T>
where
    T: TryFrom<u64> + PartialOrd,
{
    let n = T::try_from(parse_whole(s)?).ok()?;
    range.contains(&n).then_some(n)
}

/// A whole number of milliseconds (as [`parse_whole`]) within `range`.
pub fn parse_millis(s: &str, range: RangeInclusive<u64>) -> Option<Duration> {
    parse_whole_in(s, range).map(Duration::from_millis)
}

/// A whole number of seconds (as [`parse_whole`]) within `range`.
pub fn parse_secs(s: &str, range: RangeInclusive<u64>) -> Option<Duration> {
    parse_whole_in(s, range).map(Duration::from_secs)
}

/// Which set variables look like misspellings of ours, and what they most likely meant.
///
/// A program lists the variables it reads ([`Spelling::new`]) and chooses one of two rules:
/// - by default, any set variable that is *near* one of ours: within 3 edits, or (after a known respelling, see
///   [`Spelling::respellings`]) within a quarter of the known name's length. Case is ignored. This suits a program
///   that shares its environment with everything else in the process (the extension);
/// - with [`Spelling::namespaces`], only variables under our prefixes, and each gets the closest name we read
///   however far it is: in a namespace that is ours, an unknown name is always a mistake (the `/items` function's
///   `DATABASE_*` and `DB_*`).
#[derive(Debug, Clone, Copy)]
pub struct Spelling<'a> {
    known: &'a [&'static str],
    namespaces: &'a [&'static str],
    respellings: &'a [(&'static str, &'static str)],
}

impl<'a> Spelling<'a> {
    /// The variables we read.
    pub const fn new(known: &'a [&'static str]) -> Self {
        Self {
            known,
            namespaces: &[],
            respellings: &[],
        }
    }

    /// Only names starting with one of `prefixes` are checked, and each is matched to the closest known name
    /// (edit distance, case as given).
    pub const fn namespaces(self, prefixes: &'a [&'static str]) -> Self {
        Self {
            namespaces: prefixes,
            ..self
        }
    }

    /// Well-known wrong prefixes and their right ones, e.g. `("PARAMETERS_AND_SECRETS_", "PARAMETERS_SECRETS_")`:
    /// each is replaced once (in the upper-cased name) before the near rule compares.
    pub const fn respellings(self, pairs: &'a [(&'static str, &'static str)]) -> Self {
        Self {
            respellings: pairs,
            ..self
        }
    }

    /// The known variable `name` most likely misspells; `None` when it is one of ours or not close to any.
    pub fn suggestion(&self, name: &str) -> Option<&'static str> {
        if self.known.contains(&name) {
            return None;
        }
        if !self.namespaces.is_empty() {
            if !self.namespaces.iter().any(|p| name.starts_with(p)) {
                return None;
            }
            return self
                .known
                .iter()
                .copied()
                .min_by_key(|known| strsim::levenshtein(name, known));
        }
        let upper = name.to_ascii_uppercase();
        let respelled = self
            .respellings
            .iter()
            .fold(upper.clone(), |s, (wrong, right)| {
                s.replacen(wrong, right, 1)
            });
        self.known
            .iter()
            .copied()
            .map(|known| {
                let d =
                    strsim::levenshtein(&respelled, known).min(strsim::levenshtein(&upper, known));
                (known, d)
            })
            .filter(|(known, d)| *d <= 3 || (*d < known.len() / 4 && respelled != upper))
            .min_by_key(|(_, d)| *d)
            .map(|(known, _)| known)
    }

    /// The set variables of `env` that look like misspellings, each with the name it most likely meant, sorted by
    /// name. Each program words its own warning; "did you mean {suggestion}?" is the phrase both use.
    pub fn check(&self, env: &impl Env) -> Vec<(String, &'static str)> {
        let mut names = env.names();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| self.suggestion(&n).map(|known| (n, known)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::from_pairs as env;

    #[test]
    fn blank_values_count_as_unset_and_only_trimmed_trims() {
        let e = env(&[("A", "  "), ("B", " p w "), ("C", "")]);
        assert_eq!(Env::get(&e, "A").as_deref(), Some("  "));
        assert_eq!(e.non_blank("A"), None);
        assert_eq!(e.non_blank("C"), None);
        assert_eq!(
            e.non_blank("B").as_deref(),
            Some(" p w "),
            "a password keeps its spaces"
        );
        assert_eq!(e.trimmed("B").as_deref(), Some("p w"));
        assert_eq!(e.trimmed("A"), None);
        assert_eq!(e.trimmed("missing"), None);
        let by_ref: &dyn Env = &e;
        assert_eq!((&by_ref).trimmed("B").as_deref(), Some("p w"));
    }

    #[test]
    fn the_process_environment_is_read() {
        // PATH is set wherever the tests run; nothing here sets a variable.
        assert!(ProcessEnv.names().iter().any(|n| n == "PATH"));
        assert!(ProcessEnv.get("PATH").is_some());
    }

    #[test]
    fn booleans_are_gos_parse_bool() {
        for (v, want) in go_bool_spellings() {
            assert_eq!(parse_bool(v), Some(want), "{v}");
        }
        for v in ["yes", "no", "on", "tRUE", "2", "", " ", " true"] {
            assert_eq!(parse_bool(v), None, "{v:?}");
        }
    }

    #[test]
    fn yes_no_takes_the_words_in_any_case() {
        for v in ["true", "TRUE", " Yes ", "1"] {
            assert_eq!(parse_yes_no(v), Some(true), "{v:?}");
        }
        for v in ["false", "No", "0 "] {
            assert_eq!(parse_yes_no(v), Some(false), "{v:?}");
        }
        for v in ["t", "on", "sometimes", ""] {
            assert_eq!(parse_yes_no(v), None, "{v:?}");
        }
    }

    #[test]
    fn whole_numbers_are_digits_with_an_optional_plus() {
        assert_eq!(parse_whole(" 42 "), Some(42));
        assert_eq!(parse_whole("+7"), Some(7));
        assert_eq!(parse_whole("00"), Some(0));
        assert_eq!(
            parse_whole("99999999999999999999999"),
            Some(u64::MAX),
            "saturates"
        );
        for bad in ["", " ", "+", "++1", "-1", "-0", "1.5", "1e3", "0x10", "٣"] {
            assert_eq!(parse_whole(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ranges_bound_numbers_and_durations() {
        assert_eq!(parse_whole_in::<u16>("65535", 1..=u16::MAX), Some(65535));
        assert_eq!(
            parse_whole_in::<u16>("65536", 1..=u16::MAX),
            None,
            "not a u16"
        );
        assert_eq!(parse_whole_in::<u16>("0", 1..=u16::MAX), None, "below");
        assert_eq!(parse_whole_in::<u32>("21", 1..=20), None, "above");
        assert_eq!(
            parse_whole_in::<u64>("99999999999999999999", 0..=u64::MAX),
            Some(u64::MAX)
        );
        assert_eq!(
            parse_millis("250", 0..=1_000),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_millis("1001", 0..=1_000), None);
        assert_eq!(parse_secs("+3", 1..=5), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_secs("3s", 1..=5),
            None,
            "a whole number of the unit, no suffix"
        );
    }

    const KNOWN: &[&str] = &[
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        "SECRETS_MANAGER_TTL",
    ];
    const RESPELLINGS: &[(&str, &str)] = &[
        ("PARAMETERS_AND_SECRETS_", "PARAMETERS_SECRETS_"),
        ("PARAMETER_SECRETS_", "PARAMETERS_SECRETS_"),
        ("SECRET_MANAGER_", "SECRETS_MANAGER_"),
    ];

    #[test]
    fn near_names_and_known_respellings_get_a_suggestion() {
        let s = Spelling::new(KNOWN).respellings(RESPELLINGS);
        let found = s.check(&env(&[
            ("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
            ("SECRETS_MANAGER_TTLL", "5"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(
            found,
            [
                (
                    "PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL".to_owned(),
                    "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL"
                ),
                ("SECRETS_MANAGER_TTLL".to_owned(), "SECRETS_MANAGER_TTL"),
            ]
        );
        assert_eq!(
            s.suggestion("secrets_manager_ttl"),
            Some("SECRETS_MANAGER_TTL"),
            "case is ignored"
        );
        assert_eq!(
            s.suggestion("SECRET_MANAGER_TTL"),
            Some("SECRETS_MANAGER_TTL")
        );
        assert_eq!(s.suggestion("HOME"), None);
    }

    #[test]
    fn in_a_namespace_every_unknown_name_gets_the_closest() {
        let known = &["DB_SECRET_ARN", "DATABASE_SSLMODE", "DATABASE_URL"];
        let s = Spelling::new(known).namespaces(&["DATABASE_", "DB_"]);
        let found = s.check(&env(&[
            ("DB_SECRET_ARM", "x"),
            ("DATABASE_SSL_MODE", "require"),
            ("DATABASE_SOMETHING_ELSE_ENTIRELY", "x"),
            ("DATABASE_URL", "sqlite::memory:"),
            ("DATABSE_URL", "not in the namespace"),
        ]));
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "DATABASE_SOMETHING_ELSE_ENTIRELY",
                "DATABASE_SSL_MODE",
                "DB_SECRET_ARM"
            ]
        );
        assert_eq!(found[1].1, "DATABASE_SSLMODE");
        assert_eq!(found[2].1, "DB_SECRET_ARN");
    }
}
