//! Identity, hunted for: generated sets of secrets and parameters with adversarial names (a name that is another's
//! name plus its random suffix, so that its partial ARN is the other's full ARN; names that only look like that; a
//! parameter's versions and labels), and generated sequences of reads through the real extension by name, full ARN,
//! partial ARN, version id, stage, field and batch. Every answer must be what the upstream (moto, asked directly with
//! the AWS SDK for that same id) answers, or an error where the upstream has one.
//!
//! The case count is modest here (`make test`); `IDENTITY_CASES` raises it (`make reliability` runs it long).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use secretcache_tests::extension::Standalone;
use secretcache_tests::http::Response;
use secretcache_tests::moto::Moto;

/// Cases per test: each creates its own secrets (a fresh prefix) in the binary's one moto, read through one extension
/// whose cache keeps everything earlier cases left, so that entries of one case sit beside the next case's look-alikes.
fn cases() -> u32 {
    std::env::var("IDENTITY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 16,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// How one secret of a case is named.
#[derive(Debug, Clone)]
enum Naming {
    /// Its own name.
    Plain,
    /// `<secret i's name>-<secret i's random suffix>`: its partial ARN is secret i's full ARN.
    LookAlike(usize),
    /// `<secret i's name>-<six other characters>`: looks like an ARN's suffix, names nothing else.
    FalseSuffix(usize),
}

#[derive(Debug, Clone)]
struct SecretSpec {
    naming: Naming,
    /// Values written after the first (PutSecretValue): AWSCURRENT moves, AWSPREVIOUS appears.
    updates: usize,
}

/// How a read names its secret.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    Name,
    Arn,
    Partial,
}

/// Which version a read asks for.
#[derive(Debug, Clone, Copy)]
enum Version {
    Current,
    /// The version id of the nth version written (wrapped to those that exist).
    Id(usize),
    Previous,
}

#[derive(Debug, Clone)]
enum Read {
    One {
        secret: usize,
        spelling: Spelling,
        version: Version,
        field: bool,
    },
    Batch(Vec<(usize, Spelling)>),
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        Just(Spelling::Name),
        Just(Spelling::Arn),
        Just(Spelling::Partial)
    ]
}

fn secret_plan() -> impl Strategy<Value = (Vec<SecretSpec>, Vec<Read>)> {
    let spec = (0..3u8, 0..4usize, 0..3usize).prop_map(|(kind, of, updates)| SecretSpec {
        naming: match kind {
            0 => Naming::Plain,
            1 => Naming::LookAlike(of),
            _ => Naming::FalseSuffix(of),
        },
        updates,
    });
    let version = prop_oneof![
        3 => Just(Version::Current),
        2 => (0..3usize).prop_map(Version::Id),
        1 => Just(Version::Previous),
    ];
    let one = (
        0..4usize,
        spelling(),
        version,
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(secret, spelling, version, field)| Read::One {
            secret,
            spelling,
            version,
            field,
        });
    let batch = proptest::collection::vec((0..4usize, spelling()), 1..5).prop_map(Read::Batch);
    (
        proptest::collection::vec(spec, 2..5),
        proptest::collection::vec(prop_oneof![4 => one, 1 => batch], 4..24),
    )
}

/// A secret as created in moto.
struct Created {
    arn: String,
    name: String,
    versions: Vec<String>,
}

impl Created {
    fn id(&self, spelling: Spelling) -> String {
        match spelling {
            Spelling::Name => self.name.clone(),
            Spelling::Arn => self.arn.clone(),
            Spelling::Partial => self.arn[..self.arn.len() - 7].to_owned(),
        }
    }
}

/// What the upstream says for one id: the answer's identity and value, or its error code.
#[derive(Debug, PartialEq)]
enum Truth {
    Value {
        arn: String,
        version: String,
        secret_string: String,
    },
    Error(String),
}

async fn truth(
    sm: &aws_sdk_secretsmanager::Client,
    id: &str,
    version: &Version,
    versions: &[String],
) -> Truth {
    let mut call = sm.get_secret_value().secret_id(id);
    call = match version {
        Version::Current => call,
        Version::Id(n) => call.version_id(&versions[n % versions.len()]),
        Version::Previous => call.version_stage("AWSPREVIOUS"),
    };
    match call.send().await {
        Ok(out) => Truth::Value {
            arn: out.arn().unwrap_or_default().to_owned(),
            version: out.version_id().unwrap_or_default().to_owned(),
            secret_string: out.secret_string().unwrap_or_default().to_owned(),
        },
        Err(e) => Truth::Error(
            aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("unknown")
                .to_owned(),
        ),
    }
}

fn served(v: &serde_json::Value) -> Truth {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Truth::Value {
        arn: text("ARN"),
        version: text("VersionId"),
        secret_string: text("SecretString"),
    }
}

fn served_error(r: &Response) -> Truth {
    Truth::Error(r.json()["__type"].as_str().unwrap_or("unknown").to_owned())
}

fn query_value(s: &str) -> String {
    s.replace('%', "%25")
        .replace('&', "%26")
        .replace('+', "%2B")
}

async fn create_secrets(
    sm: &aws_sdk_secretsmanager::Client,
    case: usize,
    specs: &[SecretSpec],
) -> Vec<Created> {
    let mut created: Vec<Created> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let name = match (&spec.naming, created.len()) {
            (Naming::LookAlike(of), n) if n > 0 => {
                let other = &created[of % n];
                format!("{}-{}", other.name, &other.arn[other.arn.len() - 6..])
            }
            (Naming::FalseSuffix(of), n) if n > 0 => format!("{}-Zz{i:04}", created[of % n].name),
            _ => format!("id{case}/s{i}"),
        };
        // Two look-alikes of one secret would be one name.
        let name = if created.iter().any(|c| c.name == name) {
            format!("id{case}/s{i}")
        } else {
            name
        };
        let value = |v: usize| format!("{{\"password\":\"{name} v{v}\",\"username\":\"u{i}\"}}");
        let out = sm
            .create_secret()
            .name(&name)
            .secret_string(value(0))
            .send()
            .await
            .expect("create_secret");
        let mut versions = vec![out.version_id().expect("version").to_owned()];
        for v in 1..=spec.updates {
            let put = sm
                .put_secret_value()
                .secret_id(&name)
                .secret_string(value(v))
                .send()
                .await
                .expect("put_secret_value");
            versions.push(put.version_id().expect("version").to_owned());
        }
        created.push(Created {
            arn: out.arn().expect("arn").to_owned(),
            name,
            versions,
        });
    }
    created
}

async fn check_secret_reads(
    ext: &Standalone,
    sm: &aws_sdk_secretsmanager::Client,
    specs: Vec<SecretSpec>,
    reads: Vec<Read>,
) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::SeqCst);
    let secrets = create_secrets(sm, case, &specs).await;
    for read in &reads {
        match read {
            Read::One {
                secret,
                spelling,
                version,
                field,
            } => {
                let s = &secrets[secret % secrets.len()];
                let id = s.id(*spelling);
                let expected = truth(sm, &id, version, &s.versions).await;
                let mut query = format!("secretId={}", query_value(&id));
                match version {
                    Version::Current => {}
                    Version::Id(n) => {
                        query += &format!("&versionId={}", s.versions[n % s.versions.len()])
                    }
                    Version::Previous => query += "&versionStage=AWSPREVIOUS",
                }
                if *field {
                    query += "&field=password";
                }
                let r = ext.get_secret(&query).await;
                match (&expected, r.status, field) {
                    (Truth::Value { secret_string, .. }, 200, true) => {
                        let want: serde_json::Value =
                            serde_json::from_str(secret_string).expect("json");
                        prop_assert_eq!(
                            r.text(),
                            want["password"].as_str().unwrap_or_default(),
                            "{:?}",
                            read
                        );
                    }
                    (Truth::Value { .. }, 200, false) => {
                        prop_assert_eq!(&served(&r.json()), &expected, "{:?} as {}", read, id)
                    }
                    (Truth::Error(_), status, _) if status != 200 => {
                        prop_assert_eq!(&served_error(&r), &expected, "{:?} as {}", read, id)
                    }
                    _ => prop_assert!(
                        false,
                        "{read:?} as {id}: served {} {}, upstream {expected:?}",
                        r.status,
                        r.text()
                    ),
                }
            }
            Read::Batch(items) => {
                let ids: Vec<String> = items
                    .iter()
                    .map(|(i, sp)| secrets[i % secrets.len()].id(*sp))
                    .collect();
                let mut unique: Vec<&String> = Vec::new();
                for id in &ids {
                    if !unique.contains(&id) {
                        unique.push(id);
                    }
                }
                let query: Vec<String> = unique
                    .iter()
                    .map(|id| format!("secretId={}", query_value(id)))
                    .collect();
                let r = secretcache_tests::http::get(
                    &format!("{}/secretsmanager/batch?{}", ext.url(), query.join("&")),
                    &[(secretcache_client::TOKEN_HEADER, &ext.token())],
                )
                .await
                .expect("batch");
                prop_assert_eq!(r.status, 200, "{}", r.text());
                let body = r.json();
                let values = body["SecretValues"].as_array().cloned().unwrap_or_default();
                let errors = body["Errors"].as_array().cloned().unwrap_or_default();
                let mut next_value = values.iter();
                for id in unique {
                    let expected = truth(sm, id, &Version::Current, &[]).await;
                    let got = match errors.iter().find(|e| e["SecretId"] == id.as_str()) {
                        Some(e) => {
                            Truth::Error(e["ErrorCode"].as_str().unwrap_or_default().to_owned())
                        }
                        None => served(next_value.next().expect("a value per id without an error")),
                    };
                    prop_assert_eq!(&got, &expected, "batch {:?}: {}", ids, id);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn identity_every_secret_read_is_what_secrets_manager_answers_for_that_id() {
    let rt = runtime();
    let (ext, sm) = rt.block_on(async {
        let moto = Moto::shared().await;
        let sm = moto.sm_client().await;
        let ext = Standalone::spawn(moto, &[]).await;
        (ext, sm)
    });
    runner()
        .run(&secret_plan(), |(specs, reads)| {
            rt.block_on(check_secret_reads(&ext, &sm, specs, reads))
        })
        .unwrap_or_else(|e| panic!("{e}\nextension log:\n{}", ext.logs()));
}

/// A parameter read: its index, the selector (none, a version number, a label), the decryption, or a batch.
#[derive(Debug, Clone)]
enum ParameterRead {
    One {
        parameter: usize,
        selector: Selector,
        decrypt: bool,
    },
    Batch(Vec<(usize, Selector)>, bool),
}

#[derive(Debug, Clone, Copy)]
enum Selector {
    Latest,
    Version(i64),
    Label,
}

fn parameter_plan() -> impl Strategy<Value = (Vec<usize>, Vec<ParameterRead>)> {
    let selector = prop_oneof![
        2 => Just(Selector::Latest),
        2 => (1..4i64).prop_map(Selector::Version),
        1 => Just(Selector::Label),
    ];
    let one =
        (0..3usize, selector.clone(), any::<bool>()).prop_map(|(parameter, selector, decrypt)| {
            ParameterRead::One {
                parameter,
                selector,
                decrypt,
            }
        });
    let batch = (
        proptest::collection::vec((0..3usize, selector), 1..5),
        any::<bool>(),
    )
        .prop_map(|(items, decrypt)| ParameterRead::Batch(items, decrypt));
    (
        proptest::collection::vec(1..4usize, 1..4),
        proptest::collection::vec(prop_oneof![3 => one, 2 => batch], 4..20),
    )
}

fn parameter_id(name: &str, selector: Selector) -> String {
    match selector {
        Selector::Latest => name.to_owned(),
        Selector::Version(v) => format!("{name}:{v}"),
        Selector::Label => format!("{name}:first"),
    }
}

async fn parameter_truth(
    ssm: &aws_sdk_ssm::Client,
    id: &str,
    decrypt: bool,
) -> Result<(String, i64), String> {
    match ssm
        .get_parameter()
        .name(id)
        .with_decryption(decrypt)
        .send()
        .await
    {
        Ok(out) => {
            let p = out.parameter().expect("parameter");
            Ok((p.value().unwrap_or_default().to_owned(), p.version()))
        }
        Err(e) => Err(aws_sdk_ssm::error::ProvideErrorMetadata::code(&e)
            .unwrap_or("unknown")
            .to_owned()),
    }
}

async fn check_parameter_reads(
    ext: &Standalone,
    ssm: &aws_sdk_ssm::Client,
    versions: Vec<usize>,
    reads: Vec<ParameterRead>,
) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::SeqCst);
    let mut names = Vec::new();
    for (i, n) in versions.iter().enumerate() {
        let name = format!("/id{case}/p{i}");
        for v in 1..=*n {
            ssm.put_parameter()
                .name(&name)
                .value(format!("{name} v{v}"))
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(v > 1)
                .send()
                .await
                .expect("put_parameter");
            if v == 1 {
                ssm.label_parameter_version()
                    .name(&name)
                    .parameter_version(1)
                    .labels("first")
                    .send()
                    .await
                    .expect("label");
            }
        }
        names.push(name);
    }
    let token = ext.token();
    for read in &reads {
        let (items, decrypt) = match read {
            ParameterRead::One {
                parameter,
                selector,
                decrypt,
            } => (vec![(*parameter, *selector)], *decrypt),
            ParameterRead::Batch(items, decrypt) => (items.clone(), *decrypt),
        };
        let mut ids: Vec<String> = Vec::new();
        for (p, selector) in items {
            let id = parameter_id(&names[p % names.len()], selector);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let answers: Vec<Result<(String, i64), String>> =
            if matches!(read, ParameterRead::One { .. }) {
                let r = secretcache_tests::http::get(
                    &format!(
                        "{}/systemsmanager/parameters/get?name={}&withDecryption={decrypt}",
                        ext.url(),
                        query_value(&ids[0])
                    ),
                    &[(secretcache_client::TOKEN_HEADER, &token)],
                )
                .await
                .expect("get");
                let v = r.json();
                vec![if r.status == 200 {
                    Ok((
                        v["Parameter"]["Value"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        v["Parameter"]["Version"].as_i64().unwrap_or_default(),
                    ))
                } else {
                    Err(v["__type"].as_str().unwrap_or("unknown").to_owned())
                }]
            } else {
                let query: Vec<String> = ids
                    .iter()
                    .map(|id| format!("name={}", query_value(id)))
                    .collect();
                let r = secretcache_tests::http::get(
                    &format!(
                        "{}/systemsmanager/parameters/batch?{}&withDecryption={decrypt}",
                        ext.url(),
                        query.join("&")
                    ),
                    &[(secretcache_client::TOKEN_HEADER, &token)],
                )
                .await
                .expect("batch");
                prop_assert_eq!(r.status, 200, "{}", r.text());
                let body = r.json();
                let invalid = body["InvalidParameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let errors = body["Errors"].as_array().cloned().unwrap_or_default();
                let mut values = body["Parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter();
                ids.iter()
                    .map(|id| {
                        if invalid.iter().any(|n| n == id.as_str()) {
                            Err("ParameterNotFound".to_owned())
                        } else if let Some(e) = errors.iter().find(|e| e["SecretId"] == id.as_str())
                        {
                            Err(e["ErrorCode"].as_str().unwrap_or_default().to_owned())
                        } else {
                            let p = values
                                .next()
                                .expect("a parameter per name without an error");
                            Ok((
                                p["Value"].as_str().unwrap_or_default().to_owned(),
                                p["Version"].as_i64().unwrap_or_default(),
                            ))
                        }
                    })
                    .collect()
            };
        for (id, got) in ids.iter().zip(answers) {
            let expected = parameter_truth(ssm, id, decrypt).await;
            match (&got, &expected) {
                // moto names a missing version or label differently; both are "not found".
                (Err(a), Err(b)) => prop_assert!(
                    a.contains("NotFound") == b.contains("NotFound"),
                    "{read:?} {id}: {a} vs {b}"
                ),
                _ => prop_assert_eq!(&got, &expected, "{:?} {} (decrypt {})", read, id, decrypt),
            }
        }
    }
    Ok(())
}

#[test]
fn identity_every_parameter_read_is_what_ssm_answers_for_that_name_and_selector() {
    let rt = runtime();
    let (ext, ssm) = rt.block_on(async {
        let moto = Moto::shared().await;
        let ssm = moto.ssm_client().await;
        let ext = Standalone::spawn(moto, &[]).await;
        (ext, ssm)
    });
    runner()
        .run(&parameter_plan(), |(versions, reads)| {
            rt.block_on(check_parameter_reads(&ext, &ssm, versions, reads))
        })
        .unwrap_or_else(|e| panic!("{e}\nextension log:\n{}", ext.logs()));
}
