//! `deploy/cdk/` (issue 30), synthesized offline the way `cdk synth` runs it: `.venv/bin/python app.py` with
//! `CDK_OUTDIR` and `CDK_CONTEXT_JSON`, on the real zips of `make packages` (layer/dist, or `LAMBDA_ZIP_DIR`). The
//! synthesized template must pass cfn-lint as deploy/check.sh runs it on the SAM template, and mean what
//! tests/tests/deploy_template.rs holds the SAM template to: the secretcache layer of the function's architecture
//! on the function, the extension's variables written by CDK's `params_and_secrets`, the JWT authorizer on every
//! route by default, a role that reads the one database secret, and single-user rotation of that secret; with the
//! options on, a KMS key that decrypts for the function through Secrets Manager only.
//!
//! A whole-system test: it spawns Python (and jsii's Node), so it runs in `make test` only. Each configuration is
//! synthesized once and shared by the tests of this file (about 11 s of CPU each); the template is read through
//! tests/src/cfn.rs, which reads JSON as YAML.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use secretcache_tests::cfn::{cfn_lint, Resolved, Template};
use secretcache_tests::{lambda_zip, workspace_root, Arch};
use serde_json::{json, Value as Json};
use yaml_serde::Value;

const APP_DIR: &str = "deploy/cdk";
const STACK: &str = "SecretcacheItems";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
const AUDIENCE: [&str; 2] = ["client-a", "client-b"];
const SAM_TEMPLATE: &str = "deploy/template.yaml";

/// The routes the /items function serves (as in deploy_template.rs).
const EXPECTED_ROUTES: &[&str] = &[
    "GET /items",
    "POST /items",
    "GET /items/{id}",
    "DELETE /items/{id}",
    "GET /health",
];

/// What CDK's `ParamsAndSecretsLayerVersion` writes for the options app.py gives (TTL 300 s, port 2773, log level
/// info) and its own defaults for the rest; secretcache reads every one of these names (extension/src/config).
const EXTENSION_VARIABLES: &[(&str, &str)] = &[
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1000"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773"),
    ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "3"),
    // 0 is the AWS extension's "no timeout of your own"; secretcache takes it as its default of 3 s.
    ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
    ("SECRETS_MANAGER_TTL", "300"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "0"),
    ("SSM_PARAMETER_STORE_TTL", "300"),
];

/// The prefixes of the variables CDK's `params_and_secrets` owns.
const EXTENSION_PREFIXES: &[&str] = &[
    "PARAMETERS_SECRETS_EXTENSION_",
    "SECRETS_MANAGER_",
    "SSM_PARAMETER_STORE_",
];

/// One synthesis: the template's text, and which of our zips each file asset of the cloud assembly is.
struct Synthesized {
    text: String,
    /// Asset S3 key (`<hash>.zip`, as the template's `S3Key` properties name it) to the file names of the zips in the
    /// zip directory whose bytes it has (none when it is none of them).
    assets: HashMap<String, Vec<String>>,
}

/// The directory of the four zips the app publishes; fails with `make packages` as the way out if one is missing.
fn zip_dir() -> PathBuf {
    let mut dir = None;
    for arch in [Arch::X86_64, Arch::Arm64] {
        for stem in ["secretcache-layer", "items-function"] {
            dir = lambda_zip(stem, arch).parent().map(Path::to_path_buf);
        }
    }
    dir.expect("a zip directory")
}

/// The app's default context, with the issuer and audience an authenticated stack needs.
fn default_context() -> Json {
    json!({
        "zipDir": zip_dir(),
        "jwtIssuer": ISSUER,
        "jwtAudience": AUDIENCE.join(","),
    })
}

/// Runs app.py with `context` into a fresh directory: Ok(the directory) or Err(the app's output).
fn synth(context: &Json) -> Result<tempfile::TempDir, String> {
    let python = workspace_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv` (make test does)",
        python.display()
    );
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(&python)
        .arg("app.py")
        .current_dir(workspace_root().join(APP_DIR))
        .env("CDK_OUTDIR", out.path())
        .env("CDK_CONTEXT_JSON", context.to_string())
        .output()
        .expect("run app.py");
    if run.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "app.py failed ({}):\n{}{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ))
    }
}

/// The app under its default context, synthesized once for every test of this file.
fn synthesized() -> &'static Synthesized {
    static ONCE: OnceLock<Synthesized> = OnceLock::new();
    ONCE.get_or_init(|| synthesize(&default_context()))
}

/// The app with every option away from its default: a customer managed key, a NAT gateway instead of the endpoint,
/// and, asked for explicitly, no authentication.
fn synthesized_with_options() -> &'static Synthesized {
    static ONCE: OnceLock<Synthesized> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mut context = default_context();
        context["customerManagedKey"] = json!(true);
        context["secretsManagerEndpoint"] = json!(false);
        context["apiAuthentication"] = json!("public");
        synthesize(&context)
    })
}

fn synthesize(context: &Json) -> Synthesized {
    {
        let out = synth(context).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(out.path().join(format!("{STACK}.template.json")))
            .expect("synthesized template");
        let zips: Vec<(String, Vec<u8>)> = std::fs::read_dir(zip_dir())
            .expect("zip dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".zip"))
            .map(|e| {
                let bytes = std::fs::read(e.path()).expect("zip");
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        let mut assets = HashMap::new();
        for entry in std::fs::read_dir(out.path()).expect("cloud assembly") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let Some(hash) = name
                .strip_prefix("asset.")
                .and_then(|n| n.strip_suffix(".zip"))
            else {
                continue;
            };
            let bytes = std::fs::read(out.path().join(&name)).expect("asset");
            let sources = zips
                .iter()
                .filter(|(_, b)| *b == bytes)
                .map(|(n, _)| n.clone())
                .collect();
            assets.insert(format!("{hash}.zip"), sources);
        }
        Synthesized { text, assets }
    }
}

fn template() -> Template {
    synthesized().template()
}

impl Synthesized {
    fn template(&self) -> Template {
        Template::parse(&self.text).expect("synthesized template parses")
    }

    fn lint(&self) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(format!("{STACK}.template.json"));
        std::fs::write(&path, &self.text).expect("write template");
        cfn_lint(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The one resource of a type.
fn only(template: &Template, ty: &str) -> (String, Value) {
    let mut all = template.resources_of_type(ty);
    assert_eq!(
        all.len(),
        1,
        "expected one {ty}, got {:?}",
        all.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    all.remove(0)
}

/// The logical ID a `{"Ref": id}` names.
fn ref_id(v: Option<&Value>) -> Option<String> {
    v?.get("Ref")?.as_str().map(String::from)
}

/// The logical ID and attribute of a `{"Fn::GetAtt": [id, attribute]}`.
fn get_att(v: Option<&Value>) -> Option<(String, String)> {
    let args = v?.get("Fn::GetAtt")?.as_sequence()?;
    Some((
        args.first()?.as_str()?.into(),
        args.get(1)?.as_str()?.into(),
    ))
}

fn prop<'v>(resource: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter()
        .try_fold(resource.get("Properties")?, |v, k| v.get(*k))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The database secret's ARN as the template names it: a Ref to the RDS secret's target attachment (whose Ref is
/// the secret's ARN), which names the stack's one secret.
fn database_secret(template: &Template) -> String {
    let (secret, _) = only(template, "AWS::SecretsManager::Secret");
    let (attachment, body) = only(template, "AWS::SecretsManager::SecretTargetAttachment");
    assert_eq!(ref_id(prop(&body, &["SecretId"])), Some(secret));
    assert_eq!(
        prop(&body, &["TargetType"]).and_then(Value::as_str),
        Some("AWS::RDS::DBInstance")
    );
    attachment
}

/// Everything that lets a request reach the function without the JWT authorizer (empty when every route needs it).
fn unauthenticated_routes(template: &Template) -> Vec<String> {
    let eval = template.evaluator(&[]).expect("parameters");
    let mut problems = Vec::new();
    for (id, ty, _) in template.resources() {
        if ty.starts_with("AWS::ApiGateway::") || ty == "AWS::Serverless::HttpApi" {
            problems.push(format!(
                "{id} ({ty}) makes routes outside AWS::ApiGatewayV2::Route"
            ));
        }
    }
    for (id, api) in template.resources_of_type("AWS::ApiGatewayV2::Api") {
        for key in ["Target", "RouteKey", "Body", "BodyS3Location"] {
            if prop(&api, &[key]).is_some() {
                problems.push(format!("{id} has {key}, which creates routes of its own"));
            }
        }
    }
    for (id, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
        let key = prop(&route, &["RouteKey"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        let what = format!("{id} ({key})");
        let auth_type = eval
            .property(&route, &["AuthorizationType"])
            .expect("AuthorizationType");
        if auth_type.as_ref().and_then(Resolved::as_str) != Some("JWT") {
            problems.push(format!(
                "{what}: AuthorizationType is {auth_type:?}, not JWT"
            ));
            continue;
        }
        let Some(authorizer_id) = ref_id(prop(&route, &["AuthorizerId"])) else {
            problems.push(format!(
                "{what}: AuthorizerId is not a Ref to an authorizer"
            ));
            continue;
        };
        let Some(authorizer) = template.resource(&authorizer_id) else {
            problems.push(format!("{what}: no resource {authorizer_id}"));
            continue;
        };
        let check = |path: &[&str]| {
            eval.property(&authorizer, path)
                .expect("authorizer property")
        };
        let text = |s: &str| Some(Resolved::Str(s.into()));
        if authorizer.get("Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Authorizer")
            || check(&["AuthorizerType"]) != text("JWT")
        {
            problems.push(format!("{what}: {authorizer_id} is not a JWT authorizer"));
        } else if check(&["IdentitySource"])
            != Some(Resolved::List(vec![Resolved::Str(
                "$request.header.Authorization".into(),
            )]))
        {
            problems.push(format!(
                "{what}: {authorizer_id} does not read the Authorization header"
            ));
        } else if check(&["JwtConfiguration", "Issuer"]) != text(ISSUER)
            || check(&["JwtConfiguration", "Audience"])
                != Some(Resolved::List(
                    AUDIENCE
                        .iter()
                        .map(|a| Resolved::Str((*a).into()))
                        .collect(),
                ))
        {
            problems.push(format!(
                "{what}: {authorizer_id} is not for the configured issuer and audience"
            ));
        }
        if ref_id(prop(&route, &["ApiId"])) != ref_id(prop(&authorizer, &["ApiId"])) {
            problems.push(format!(
                "{what}: the route and {authorizer_id} are on different APIs"
            ));
        }
    }
    problems
}

fn route_keys(template: &Template) -> BTreeSet<String> {
    template
        .resources_of_type("AWS::ApiGatewayV2::Route")
        .iter()
        .filter_map(|(_, r)| {
            prop(r, &["RouteKey"])
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect()
}

#[test]
fn cdk_synthesized_stack_passes_cfn_lint() {
    synthesized().lint();
}

#[test]
fn cdk_function_has_the_secretcache_layer_of_its_architecture() {
    let template = template();
    let synth = synthesized();
    let (id, function) = only(&template, "AWS::Lambda::Function");
    assert_eq!(
        strings(prop(&function, &["Architectures"])),
        ["x86_64"],
        "{id}"
    );
    assert_eq!(
        prop(&function, &["Runtime"]).and_then(Value::as_str),
        Some("provided.al2023")
    );
    assert_eq!(
        prop(&function, &["Handler"]).and_then(Value::as_str),
        Some("bootstrap")
    );
    let code = prop(&function, &["Code", "S3Key"])
        .and_then(Value::as_str)
        .expect("S3Key");
    let is_asset_of = |key: &str, zip: &str| {
        let sources = synth.assets.get(key);
        assert!(
            sources.is_some_and(|s| s.iter().any(|n| n == zip)),
            "asset {key} is {sources:?}, not {zip}"
        );
    };
    is_asset_of(code, "items-function-x86_64.zip");

    // Both architectures are published, each from its own zip.
    let mut published = BTreeMap::new();
    for (layer_id, layer) in template.resources_of_type("AWS::Lambda::LayerVersion") {
        let archs = strings(prop(&layer, &["CompatibleArchitectures"]));
        assert_eq!(archs.len(), 1, "{layer_id}: {archs:?}");
        let key = prop(&layer, &["Content", "S3Key"])
            .and_then(Value::as_str)
            .expect("S3Key");
        is_asset_of(key, &format!("secretcache-layer-{}.zip", archs[0]));
        assert_eq!(
            layer.get("DeletionPolicy").and_then(Value::as_str),
            Some("Retain"),
            "{layer_id}"
        );
        published.insert(archs[0].clone(), layer_id);
    }
    assert_eq!(published.keys().collect::<Vec<_>>(), ["arm64", "x86_64"]);

    let layers = prop(&function, &["Layers"])
        .and_then(Value::as_sequence)
        .expect("Layers");
    let attached: Vec<_> = layers.iter().map(|l| ref_id(Some(l))).collect();
    assert_eq!(
        attached,
        [Some(published["x86_64"].clone())],
        "{id}'s layers"
    );
}

#[test]
fn cdk_params_and_secrets_writes_the_extension_variables() {
    let template = template();
    let (_, function) = only(&template, "AWS::Lambda::Function");
    let variables = prop(&function, &["Environment", "Variables"])
        .and_then(Value::as_mapping)
        .expect("Environment.Variables");
    let mut written = BTreeMap::new();
    for (name, value) in variables {
        let name = name.as_str().expect("name").to_string();
        if EXTENSION_PREFIXES.iter().any(|p| name.starts_with(p)) {
            written.insert(name, value.clone());
        }
    }
    let secret = database_secret(&template);
    let mut expected: BTreeMap<String, Value> = EXTENSION_VARIABLES
        .iter()
        .map(|(n, v)| (n.to_string(), Value::String(v.to_string())))
        .collect();
    // Ours on top of CDK's: the secret is fetched during init, so the first read is a hit.
    expected.insert(
        "PARAMETERS_SECRETS_EXTENSION_PREFETCH".into(),
        yaml_serde::from_str(&format!("{{Ref: {secret}}}")).expect("ref"),
    );
    assert_eq!(written, expected);

    assert_eq!(ref_id(variables.get("DB_SECRET_ARN")), Some(secret));
    assert_eq!(
        variables.get("DATABASE_SSLMODE").and_then(Value::as_str),
        Some("require")
    );
    assert_eq!(
        variables.get("DATABASE_NAME").and_then(Value::as_str),
        Some("collections")
    );
}

#[test]
fn cdk_every_route_requires_the_jwt_authorizer() {
    let template = template();
    let keys = route_keys(&template);
    assert_eq!(
        keys,
        EXPECTED_ROUTES
            .iter()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>()
    );
    let problems = unauthenticated_routes(&template);
    assert!(
        problems.is_empty(),
        "the CDK stack serves requests without a JWT:\n  {}",
        problems.join("\n  ")
    );

    // The check sees a route that lost its authorizer.
    let mut json: Json = serde_json::from_str(&synthesized().text).expect("JSON");
    let routes = json["Resources"].as_object_mut().expect("Resources");
    let (open, route) = routes
        .iter_mut()
        .find(|(_, r)| r["Type"] == "AWS::ApiGatewayV2::Route")
        .expect("a route");
    let open = open.clone();
    route["Properties"]["AuthorizationType"] = json!("NONE");
    let problems = unauthenticated_routes(&Template::parse(&json.to_string()).expect("parse"));
    assert!(
        problems.len() == 1 && problems[0].contains(&open),
        "an open route must be the one problem found, got {problems:?}"
    );
}

#[test]
fn cdk_refuses_an_authenticated_stack_without_issuer_or_audience() {
    let mut context = default_context();
    context["jwtIssuer"] = json!("");
    let error = synth(&context).expect_err("synthesized without an issuer");
    assert!(
        error.contains("needs jwtIssuer") && error.contains("apiAuthentication=public"),
        "{error}"
    );
}

/// The function's role: Lambda's basic and VPC execution policies, and the stack's policies on it allow only
/// reading the database secret, by its one ARN. Returns the role's logical ID.
fn assert_role_reads_only_the_database_secret(template: &Template) -> String {
    let secret = database_secret(template);
    let (function_id, function) = only(template, "AWS::Lambda::Function");
    let (role, attribute) = get_att(prop(&function, &["Role"])).expect("Role is a GetAtt");
    assert_eq!(attribute, "Arn");
    let role_body = template.resource(&role).expect("role");
    assert!(
        prop(&role_body, &["Policies"]).is_none(),
        "{role} has inline policies"
    );
    let managed =
        serde_json::to_string(&prop(&role_body, &["ManagedPolicyArns"]).cloned()).expect("json");
    for name in [
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
    ] {
        assert!(managed.contains(name), "{role} lacks {name}: {managed}");
    }
    assert_eq!(managed.matches(":iam::aws:policy/").count(), 2, "{managed}");

    let mut statements = Vec::new();
    for ty in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (id, policy) in template.resources_of_type(ty) {
            let roles = prop(&policy, &["Roles"])
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            if roles
                .iter()
                .any(|r| ref_id(Some(r)).as_deref() == Some(role.as_str()))
            {
                let s =
                    prop(&policy, &["PolicyDocument", "Statement"]).and_then(Value::as_sequence);
                statements.extend(
                    s.cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| (id.clone(), s)),
                );
            }
        }
    }
    assert!(
        !statements.is_empty(),
        "{function_id}'s role has no policy of the stack"
    );
    let mut actions = BTreeSet::new();
    for (id, statement) in &statements {
        assert_eq!(
            statement.get("Effect").and_then(Value::as_str),
            Some("Allow"),
            "{id}"
        );
        // One ARN, not a list and not "*".
        assert_eq!(
            ref_id(statement.get("Resource")),
            Some(secret.clone()),
            "{id}: {statement:?}"
        );
        actions.extend(strings(statement.get("Action")));
    }
    assert_eq!(
        actions,
        BTreeSet::from([
            "secretsmanager:DescribeSecret".to_string(),
            "secretsmanager:GetSecretValue".to_string()
        ])
    );
    role
}

#[test]
fn cdk_function_reads_only_its_database_secret() {
    assert_role_reads_only_the_database_secret(&template());
}

#[test]
fn cdk_database_secret_rotates_with_single_user_rotation() {
    let template = template();
    let secret = database_secret(&template);
    let (id, schedule) = only(&template, "AWS::SecretsManager::RotationSchedule");
    assert_eq!(ref_id(prop(&schedule, &["SecretId"])), Some(secret), "{id}");
    assert_eq!(
        prop(&schedule, &["RotationRules", "ScheduleExpression"]).and_then(Value::as_str),
        Some("rate(30 days)")
    );
    let (app, output) =
        get_att(prop(&schedule, &["RotationLambdaARN"])).expect("RotationLambdaARN");
    assert_eq!(output, "Outputs.RotationLambdaARN");
    let app_body = template.resource(&app).expect("rotation application");
    assert_eq!(
        app_body.get("Type").and_then(Value::as_str),
        Some("AWS::Serverless::Application")
    );
    // Secrets Manager's own single-user PostgreSQL rotation function, from the Serverless Application Repository.
    let mappings = serde_json::to_string(&template.section("Mappings")).expect("json");
    assert!(
        mappings.contains("SecretsManagerRDSPostgreSQLRotationSingleUser"),
        "{mappings}"
    );
    // It reaches Secrets Manager through the stack's endpoint, as the function does (no NAT gateway).
    let (endpoint, body) = only(&template, "AWS::EC2::VPCEndpoint");
    assert_eq!(
        prop(&body, &["PrivateDnsEnabled"]).and_then(Value::as_bool),
        Some(true)
    );
    let service = serde_json::to_string(&prop(&body, &["ServiceName"]).cloned()).expect("json");
    assert!(service.contains("secretsmanager"), "{service}");
    let parameters = serde_json::to_string(&prop(&app_body, &["Parameters", "endpoint"]).cloned())
        .expect("json");
    assert!(parameters.contains(&endpoint), "{parameters}");
    assert!(template
        .resources_of_type("AWS::EC2::NatGateway")
        .is_empty());
}

#[test]
fn cdk_and_sam_templates_describe_the_same_deployment() {
    let cdk = template();
    let sam = Template::load(SAM_TEMPLATE).expect("SAM template");
    assert_eq!(route_keys(&cdk), route_keys(&sam));

    let eval = sam.evaluator(&[]).expect("parameters");
    // SAM's default deployment: the on-demand function (its Managed Instances twin is off by default and shares every
    // property compared here, as deploy_template.rs checks).
    let sam_function = sam.resource("ItemsFunction").expect("ItemsFunction");
    let (_, cdk_function) = only(&cdk, "AWS::Lambda::Function");
    for key in ["Runtime", "Handler", "MemorySize", "Timeout"] {
        let sam_value = eval.property(&sam_function, &[key]).expect(key);
        let cdk_value = prop(&cdk_function, &[key]).map(|v| eval.eval(v).expect(key));
        assert_eq!(sam_value, cdk_value, "{key}");
    }
    // The extension's settings SAM writes have the same values (at SAM's defaults) in the CDK stack.
    let cdk_vars = prop(&cdk_function, &["Environment", "Variables"]).expect("Variables");
    for name in [
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
        "SECRETS_MANAGER_TTL",
    ] {
        let sam_value = eval
            .property(&sam_function, &["Environment", "Variables", name])
            .expect(name);
        assert_eq!(
            sam_value,
            cdk_vars.get(name).map(|v| eval.eval(v).expect(name)),
            "{name}"
        );
    }
    // Both prefetch the secret the function reads, and pass it as DB_SECRET_ARN.
    for function in [sam_function.clone(), cdk_function.clone()] {
        let vars = prop(&function, &["Environment", "Variables"]).expect("Variables");
        assert_eq!(
            vars.get("DB_SECRET_ARN"),
            vars.get("PARAMETERS_SECRETS_EXTENSION_PREFETCH")
        );
        assert!(vars.get("DB_SECRET_ARN").is_some());
    }
    // SAM's only secret grant (GetSecretValue) is among the CDK role's; the rest is asserted above.
    let sam_policies =
        serde_json::to_string(&prop(&sam_function, &["Policies"]).cloned()).expect("json");
    assert!(sam_policies.contains("secretsmanager:GetSecretValue"));
    assert_eq!(
        sam_policies.matches("secretsmanager:").count(),
        1,
        "{sam_policies}"
    );
}

#[test]
fn cdk_options_a_customer_managed_key_a_nat_gateway_and_an_explicitly_public_api() {
    let synth = synthesized_with_options();
    synth.lint();
    let template = synth.template();

    // The key decrypts for the function through Secrets Manager only, and its role still reads one secret only.
    let role = assert_role_reads_only_the_database_secret(&template);
    let (key, body) = only(&template, "AWS::KMS::Key");
    let (secret, secret_body) = only(&template, "AWS::SecretsManager::Secret");
    assert_eq!(
        get_att(prop(&secret_body, &["KmsKeyId"])),
        Some((key.clone(), "Arn".into())),
        "{secret}"
    );
    let statements = prop(&body, &["KeyPolicy", "Statement"])
        .and_then(Value::as_sequence)
        .expect("key policy");
    let for_role: Vec<_> = statements
        .iter()
        .filter(|s| {
            get_att(s.get("Principal").and_then(|p| p.get("AWS"))).map(|(id, _)| id)
                == Some(role.clone())
        })
        .collect();
    assert_eq!(for_role.len(), 1, "{key}: {for_role:?}");
    assert_eq!(strings(for_role[0].get("Action")), ["kms:Decrypt"]);
    let via = serde_json::to_string(
        &for_role[0]
            .get("Condition")
            .and_then(|c| c.get("StringEquals"))
            .and_then(|c| c.get("kms:ViaService"))
            .cloned(),
    )
    .expect("json");
    assert!(
        via.contains("secretsmanager.") && via.contains("AWS::Region"),
        "{via}"
    );

    // Public on request: no authorizer, every route open, nothing else removed.
    assert!(template
        .resources_of_type("AWS::ApiGatewayV2::Authorizer")
        .is_empty());
    assert_eq!(route_keys(&template), route_keys(&synthesized().template()));
    assert_eq!(
        unauthenticated_routes(&template).len(),
        EXPECTED_ROUTES.len()
    );

    // A NAT gateway in place of the endpoint; the rotation function then uses the public endpoint.
    assert!(template
        .resources_of_type("AWS::EC2::VPCEndpoint")
        .is_empty());
    assert_eq!(template.resources_of_type("AWS::EC2::NatGateway").len(), 1);
    let (_, app) = only(&template, "AWS::Serverless::Application");
    let endpoint =
        serde_json::to_string(&prop(&app, &["Parameters", "endpoint"]).cloned()).expect("json");
    assert!(
        endpoint.contains("https://secretsmanager.") && !endpoint.contains("Endpoint"),
        "{endpoint}"
    );
}
