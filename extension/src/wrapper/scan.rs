//! The environment scan: which variables hold `secretcache:` references, and which of those are malformed.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::reference::{self, Reference};

use super::{Failure, Reason};

/// What an environment holds for the wrapper.
#[derive(Debug, Default)]
pub struct Found {
    /// Each variable holding a reference, with it, in the environment's order.
    pub references: Vec<(String, Reference)>,
    /// Each variable that starts with `secretcache:` and is not a reference.
    pub failures: Vec<Failure>,
    /// Variables that look like a reference written slightly wrong (left as they are; worth a warning).
    pub near_misses: Vec<String>,
}

/// The references in `vars`. A variable whose name or value is not UTF-8 is not ours, unless its value starts with
/// the prefix.
pub fn scan(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Found {
    let mut found = Found::default();
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        let Some(value) = value.to_str() else {
            if value.as_bytes().starts_with(reference::PREFIX.as_bytes()) {
                found.failures.push(Failure {
                    variable: name,
                    reference: None,
                    reason: Reason::NotUtf8,
                });
            }
            continue;
        };
        match reference::parse(value) {
            Some(Ok(r)) => found.references.push((name, r)),
            Some(Err(e)) => found.failures.push(Failure {
                variable: name,
                reference: None,
                reason: Reason::Syntax(e),
            }),
            None if reference::near_miss(value) => found.near_misses.push(name),
            None => {}
        }
    }
    found
}
