//! Batch answers matched to the ids asked for, exactly: full ARN, then name, then a partial ARN that was asked for;
//! a parameter by name and selector. An id that cannot be matched beyond doubt is left to a call of its own.

use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::types::SecretValueEntry;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;

use crate::cache::alias::{is_arn, SecretArn};
use crate::cache::Fetched;
use crate::error::UpstreamError;

use super::body::{parameter_fetched, secret_fetched};

use super::classify::classify_service;

/// What a BatchGetSecretValue answer says for each id asked, in order: its value, its error, or `None` when the answer
/// cannot be matched to the id beyond doubt (the caller then asks for that id alone). An answer names no id, so it is
/// matched by what it is: an id that is its full ARN first, then an id that is its name, then an id that is a partial
/// ARN its ARN extends. Several candidates (two secrets of one name in two accounts, or a secret named like another's
/// ARN) are narrowed to those no other id took; if still not one, the id is left to a call of its own. A
/// secret named `<another's name>-<its suffix>` has a partial ARN equal to the other's full ARN: matching full ARNs
/// first keeps the other's id from taking its value.
pub(super) fn match_secret_batch(
    out: &BatchGetSecretValueOutput,
    ids: &[&str],
) -> Vec<Option<Result<Fetched, UpstreamError>>> {
    let values = out.secret_values();
    let error_for = |id: &str| out.errors().iter().find(|e| e.secret_id() == Some(id));
    let mut chosen: Vec<Option<usize>> = ids
        .iter()
        .map(|id| values.iter().position(|v| v.arn() == Some(*id)))
        .collect();
    let by_name = |v: &SecretValueEntry, id: &str| !is_arn(id) && v.name() == Some(id);
    let by_partial = |v: &SecretValueEntry, id: &str| {
        is_arn(id)
            && v.arn()
                .and_then(SecretArn::parse)
                .is_some_and(|a| a.partial == id)
    };
    for matches in [
        &by_name as &dyn Fn(&SecretValueEntry, &str) -> bool,
        &by_partial,
    ] {
        for i in 0..ids.len() {
            if chosen[i].is_some() || error_for(ids[i]).is_some() {
                continue;
            }
            let candidates: Vec<usize> = (0..values.len())
                .filter(|j| matches(&values[*j], ids[i]))
                .collect();
            chosen[i] = only_one(&candidates, |j| chosen.contains(&Some(j)));
        }
    }
    ids.iter()
        .zip(chosen)
        .map(|(id, chosen)| match (chosen, error_for(id)) {
            (Some(j), _) => {
                let v = &values[j];
                let single = GetSecretValueOutput::builder()
                    .set_arn(v.arn().map(str::to_owned))
                    .set_name(v.name().map(str::to_owned))
                    .set_version_id(v.version_id().map(str::to_owned))
                    .set_secret_binary(v.secret_binary().cloned())
                    .set_secret_string(v.secret_string().map(str::to_owned))
                    .set_version_stages(Some(v.version_stages().to_vec()))
                    .set_created_date(v.created_date().cloned())
                    .build();
                Some(secret_fetched(&single))
            }
            (None, Some(e)) => Some(Err(classify_service(e.error_code(), e.message(), 400))),
            (None, None) => None,
        })
        .collect()
}

/// The one candidate, or else the one no other id took (`taken`); `None` when that is not exactly one either.
pub(super) fn only_one(candidates: &[usize], taken: impl Fn(usize) -> bool) -> Option<usize> {
    match candidates {
        [one] => Some(*one),
        _ => {
            let free: Vec<usize> = candidates.iter().copied().filter(|j| !taken(*j)).collect();
            match free[..] {
                [one] => Some(one),
                _ => None,
            }
        }
    }
}

/// A parameter id split into what names the parameter and its selector (`/p:3` into `/p` and `3`; an ARN's colons
/// are its own, so only one after the resource counts).
pub(super) fn parameter_selector(id: &str) -> (&str, Option<&str>) {
    let resource_at = if is_arn(id) {
        id.match_indices(':')
            .nth(4)
            .map_or(id.len(), |(i, _)| i + 1)
    } else {
        0
    };
    match id[resource_at..].rfind(':') {
        Some(at) => (&id[..resource_at + at], Some(&id[resource_at + at + 1..])),
        None => (id, None),
    }
}

/// The selector an SSM answer states (`:3` as `3`), if any.
pub(super) fn stated_selector(p: &aws_sdk_ssm::types::Parameter) -> Option<&str> {
    p.selector()
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix(':').unwrap_or(s))
}

/// What a GetParameters answer says for each name asked, in order: its value, not found when it is among the invalid
/// parameters, or `None` when the answer cannot be matched to it beyond doubt (the caller asks for it alone). A
/// value matches a name when its name (or ARN) is the name without its selector and its selector is the one asked:
/// none for a plain name, `:3` or `:label` for a selected one. SSM returns `Selector` on each selected answer; where
/// an answer lacks it, a version selector is checked against the answer's version instead, and a plain name with
/// several candidates is left to a call of its own: an older version must never be cached as the latest.
pub(super) fn match_parameter_batch(
    out: &GetParametersOutput,
    names: &[&str],
) -> Vec<Option<Result<Fetched, UpstreamError>>> {
    let values = out.parameters();
    let mut chosen: Vec<Option<usize>> = vec![None; names.len()];
    for (i, name) in names.iter().enumerate() {
        let (base, selector) = parameter_selector(name);
        let named =
            |p: &aws_sdk_ssm::types::Parameter| p.name() == Some(base) || p.arn() == Some(base);
        let by_selector: Vec<usize> = (0..values.len())
            .filter(|j| {
                let p = &values[*j];
                named(p) && stated_selector(p) == selector
            })
            .collect();
        // An answer without a `Selector` (not SSM's own): a version asked for is checked against its version.
        let candidates = match (selector, &by_selector[..]) {
            (Some(want), []) => (0..values.len())
                .filter(|j| {
                    let p = &values[*j];
                    named(p)
                        && stated_selector(p).is_none()
                        && want.parse::<i64>().is_ok_and(|v| v == p.version())
                })
                .collect(),
            _ => by_selector,
        };
        chosen[i] = match candidates[..] {
            [one] => Some(one),
            _ => None,
        };
    }
    names
        .iter()
        .zip(chosen)
        .map(|(name, chosen)| match chosen {
            Some(j) => Some(parameter_fetched(
                &GetParameterOutput::builder()
                    .parameter(values[j].clone())
                    .build(),
            )),
            None if out.invalid_parameters().iter().any(|n| n == name) => {
                Some(Err(UpstreamError::NotFound {
                    code: "ParameterNotFound".into(),
                    message: format!("parameter {name} was not found"),
                }))
            }
            None => None,
        })
        .collect()
}
