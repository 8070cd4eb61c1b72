//! Resolution through the extension: each distinct secret or parameter read once, current secrets and parameters in
//! batches, the rest one request each, all under one deadline; and what an error from the extension means for a reference.

use std::collections::HashMap;
use std::time::Duration;

use secretcache_client::contract::{MAX_PARAMETER_BATCH, MAX_SECRET_BATCH};
use secretcache_client::field;
use secretcache_client::{
    Client, Error as ClientError, ExposeSecret, GetSecretValueBody, SecretString,
};
use tokio::time::Instant;

use crate::reference::{Reference, Source};

use super::Reason;

/// A value as read from the extension.
pub(super) enum Value {
    Text(SecretString),
    Binary,
}

/// One request to the extension.
pub(super) enum Unit {
    /// Current versions, up to [`MAX_SECRET_BATCH`].
    Secrets(Vec<String>),
    /// Parameters, decrypted, up to [`MAX_PARAMETER_BATCH`].
    Parameters(Vec<String>),
    /// A secret's version by stage or id.
    Versioned(Source),
}

impl Unit {
    fn sources(&self) -> Vec<Source> {
        match self {
            Unit::Secrets(ids) => ids.iter().map(|id| current(id)).collect(),
            Unit::Parameters(names) => names
                .iter()
                .map(|n| Source::Parameter { name: n.clone() })
                .collect(),
            Unit::Versioned(s) => vec![s.clone()],
        }
    }
}

pub(super) fn current(id: &str) -> Source {
    Source::Secret {
        id: id.to_owned(),
        version_stage: None,
        version_id: None,
    }
}

/// Every reference's value, or why it has none, in the order given. Each distinct secret or parameter is read once:
/// current secrets in batches of [`MAX_SECRET_BATCH`], parameters (decrypted) in batches of [`MAX_PARAMETER_BATCH`],
/// other versions one request each, all at once; whatever has not answered by `deadline` fails with
/// [`Reason::TimedOut`].
pub async fn resolve(
    client: &Client,
    references: &[(String, Reference)],
    deadline: Instant,
    budget: Duration,
) -> Vec<(String, Result<SecretString, Reason>)> {
    let mut sources: Vec<&Source> = references.iter().map(|(_, r)| &r.source).collect();
    sources.sort();
    sources.dedup();
    let mut units = Vec::new();
    let (mut ids, mut names) = (Vec::new(), Vec::new());
    for source in sources {
        match source {
            Source::Secret { id, .. } if source.is_current_secret() => ids.push(id.clone()),
            Source::Parameter { name } => names.push(name.clone()),
            versioned => units.push(Unit::Versioned(versioned.clone())),
        }
    }
    units.extend(
        ids.chunks(MAX_SECRET_BATCH)
            .map(|c| Unit::Secrets(c.to_vec())),
    );
    units.extend(
        names
            .chunks(MAX_PARAMETER_BATCH)
            .map(|c| Unit::Parameters(c.to_vec())),
    );
    let fetched = futures_util::future::join_all(units.into_iter().map(|unit| async move {
        match tokio::time::timeout_at(deadline, fetch(client, &unit)).await {
            Ok(answers) => answers,
            Err(_) => unit
                .sources()
                .into_iter()
                .map(|s| (s, Err(Reason::TimedOut(budget))))
                .collect(),
        }
    }))
    .await;
    // Dropped (and so wiped) on return: each variable gets its own copy.
    let values: HashMap<Source, Result<Value, Reason>> = fetched.into_iter().flatten().collect();
    references
        .iter()
        .map(|(variable, r)| {
            let value = match values.get(&r.source) {
                Some(Ok(Value::Text(text))) => Ok(text),
                Some(Ok(Value::Binary)) => Err(Reason::Binary),
                Some(Err(e)) => Err(e.clone()),
                None => Err(Reason::Unanswered),
            };
            let result = value
                .and_then(|text| match &r.field {
                    Some(f) => field::project(text.expose_secret(), f).map_err(Reason::Field),
                    None => Ok(text.clone()),
                })
                .and_then(|v| {
                    if v.expose_secret().contains('\0') {
                        Err(Reason::Nul)
                    } else {
                        Ok(v)
                    }
                });
            (variable.clone(), result)
        })
        .collect()
}

/// One request, and an answer for each source it asked for.
pub(super) async fn fetch(client: &Client, unit: &Unit) -> Vec<(Source, Result<Value, Reason>)> {
    match unit {
        Unit::Secrets(ids) => match client
            .secret_batch(ids.iter().map(String::as_str))
            .send()
            .await
        {
            Err(e) => every(ids, current, &e),
            Ok(body) => {
                // One entry per id, in the order asked: the ids with an error are in `errors`, and the others'
                // values follow in order in `secret_values`.
                let mut values = body.secret_values.into_iter();
                ids.iter()
                    .map(|id| {
                        let answer = match body.errors.iter().find(|e| e.secret_id == *id) {
                            Some(e) => Err(classify(&e.error_code)),
                            None => values.next().map_or(Err(Reason::Unanswered), secret_value),
                        };
                        (current(id), answer)
                    })
                    .collect()
            }
        },
        Unit::Parameters(names) => {
            let parameter = |n: &str| Source::Parameter { name: n.to_owned() };
            match client
                .parameter_batch(names.iter().map(String::as_str), true)
                .send()
                .await
            {
                Err(e) => every(names, parameter, &e),
                Ok(body) => {
                    let mut values = body.parameters.into_iter();
                    names
                        .iter()
                        .map(|name| {
                            let answer = if body.invalid_parameters.iter().any(|n| n == name) {
                                Err(Reason::NotFound {
                                    code: "ParameterNotFound".to_owned(),
                                })
                            } else if let Some(e) =
                                body.errors.iter().find(|e| e.secret_id == *name)
                            {
                                Err(classify(&e.error_code))
                            } else {
                                values
                                    .next()
                                    .and_then(|p| p.value)
                                    .map(|v| Value::Text(v.into_secret()))
                                    .ok_or(Reason::Unanswered)
                            };
                            (parameter(name), answer)
                        })
                        .collect()
                }
            }
        }
        Unit::Versioned(source) => {
            let Source::Secret {
                id,
                version_stage,
                version_id,
            } = source
            else {
                return Vec::new();
            };
            let mut request = client.secret(id);
            if let Some(stage) = version_stage {
                request = request.version_stage(stage);
            }
            if let Some(version) = version_id {
                request = request.version_id(version);
            }
            let answer = match request.send().await {
                Ok(body) => secret_value(body),
                Err(e) => Err(from_client(e)),
            };
            vec![(source.clone(), answer)]
        }
    }
}

pub(super) fn every(
    ids: &[String],
    source: impl Fn(&str) -> Source,
    e: &ClientError,
) -> Vec<(Source, Result<Value, Reason>)> {
    ids.iter()
        .map(|id| (source(id), Err(from_client(e.clone()))))
        .collect()
}

pub(super) fn secret_value(body: GetSecretValueBody<'static>) -> Result<Value, Reason> {
    match (body.secret_string, body.secret_binary) {
        (Some(text), _) => Ok(Value::Text(text.into_secret())),
        (None, Some(_)) => Ok(Value::Binary),
        (None, None) => Err(Reason::Unanswered),
    }
}

/// The reason for an error code the extension gave for one id; only a plain code is kept.
pub(super) fn classify(code: &str) -> Reason {
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    let code = if plain { code } else { "unknown" }.to_owned();
    if code.contains("NotFound") {
        Reason::NotFound { code }
    } else if code.contains("AccessDenied") || code.contains("Decryption") {
        Reason::Denied { code }
    } else {
        Reason::Failed { code }
    }
}

/// The reason for a request that failed as a whole: not found and denied keep their meaning.
pub(super) fn from_client(e: ClientError) -> Reason {
    match (e.status(), e.code()) {
        (Some(404), Some(code)) => Reason::NotFound {
            code: code.to_owned(),
        },
        (Some(403), Some(code)) if code.contains("AccessDenied") || code.contains("Decryption") => {
            Reason::Denied {
                code: code.to_owned(),
            }
        }
        _ => Reason::Extension(e),
    }
}
