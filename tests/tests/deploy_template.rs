//! `deploy/template.yaml` as CloudFormation would deploy it: every route of the HTTP API requires the JWT authorizer
//! under the default parameters, only `ApiAuthentication=public` removes it, and an authenticated stack cannot be
//! deployed without an issuer and an audience (issue 15). The rotation function may be invoked for this stack's secret
//! only, and the database's TLS mode the function ends up with verifies the server whenever a CA bundle is given
//! (issue 25). Lambda Managed Instances are off by default, and on, put the same function on a capacity provider
//! of the stack, behind the API through its published alias (issue 26).
//!
//! The checks evaluate the template (tests/src/cfn.rs) instead of matching its text, so they hold whatever spelling
//! the template uses, and they fail for anything that creates a route outside `AWS::ApiGatewayV2::Route`.

use std::collections::HashMap;

use items_function::config::{Config, SslMode};
use secretcache_tests::cfn::{Resolved, Template};

const TEMPLATE: &str = "deploy/template.yaml";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
const AUDIENCE: &str = "client-a,client-b";

/// The routes the /items function serves; the template must have at least these.
const EXPECTED_ROUTES: &[&str] = &[
    "GET /items",
    "POST /items",
    "GET /items/{id}",
    "DELETE /items/{id}",
    "GET /health",
];

/// Resource types that create API Gateway routes or methods some other way than an `AWS::ApiGatewayV2::Route`.
const OTHER_ROUTE_MAKERS: &[&str] = &[
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Method",
    "AWS::ApiGatewayV2::ApiGatewayManagedOverrides",
];

/// Everything that would let a request reach the function without a JWT when deployed with `overrides` on top of
/// the defaults (empty when every route requires the authorizer).
fn unauthenticated_routes(template: &Template, overrides: &[(&str, &str)]) -> Vec<String> {
    let eval = template.evaluator(overrides).expect("parameters");
    let mut problems = Vec::new();

    for (id, ty, _) in template.resources() {
        if OTHER_ROUTE_MAKERS.contains(&ty.as_str()) {
            problems.push(format!(
                "{id} ({ty}) makes routes outside AWS::ApiGatewayV2::Route"
            ));
        }
    }
    // A SAM function's Api/HttpApi events create routes of their own (on an implicit API if none is named).
    for (id, function) in template.resources_of_type("AWS::Serverless::Function") {
        let events = function
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(|e| e.as_mapping())
            .cloned()
            .unwrap_or_default();
        for (name, event) in events {
            let kind = event
                .get("Type")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            if kind == "Api" || kind == "HttpApi" {
                problems.push(format!(
                    "{id} has a {kind} event {name:?}, a route outside the checked ones"
                ));
            }
        }
    }
    // Quick create (Target, RouteKey) and an imported OpenAPI body make routes on the API itself.
    for (id, api) in template.resources_of_type("AWS::ApiGatewayV2::Api") {
        for key in ["Target", "RouteKey", "Body", "BodyS3Location"] {
            if eval.property(&api, &[key]).expect(key).is_some() {
                problems.push(format!(
                    "{id} has {key}, which creates routes outside the checked ones"
                ));
            }
        }
    }

    for (id, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
        if !eval.is_created(&route).expect("route condition") {
            continue;
        }
        let key = eval
            .property(&route, &["RouteKey"])
            .expect("RouteKey")
            .and_then(|k| k.as_str().map(String::from))
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
        let Some(Resolved::Resource(authorizer_id)) = eval
            .property(&route, &["AuthorizerId"])
            .expect("AuthorizerId")
        else {
            problems.push(format!(
                "{what}: AuthorizerId is not a Ref to an authorizer of this template"
            ));
            continue;
        };
        let authorizer = template
            .resource(&authorizer_id)
            .expect("Ref'd resource exists");
        let check = |path: &[&str]| {
            eval.property(&authorizer, path)
                .expect("authorizer property")
        };
        if authorizer.get("Type").and_then(|t| t.as_str()) != Some("AWS::ApiGatewayV2::Authorizer")
        {
            problems.push(format!(
                "{what}: {authorizer_id} is not an AWS::ApiGatewayV2::Authorizer"
            ));
        } else if !eval.is_created(&authorizer).expect("authorizer condition") {
            problems.push(format!(
                "{what}: its authorizer {authorizer_id} is not created"
            ));
        } else if check(&["AuthorizerType"])
            .as_ref()
            .and_then(Resolved::as_str)
            != Some("JWT")
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
        } else if check(&["JwtConfiguration", "Issuer"]) != Some(Resolved::Str(ISSUER.into())) {
            problems.push(format!(
                "{what}: {authorizer_id}'s issuer is not the JwtIssuer parameter"
            ));
        } else if check(&["JwtConfiguration", "Audience"])
            != Some(Resolved::List(
                AUDIENCE
                    .split(',')
                    .map(|a| Resolved::Str(a.into()))
                    .collect(),
            ))
        {
            problems.push(format!(
                "{what}: {authorizer_id}'s audience is not the JwtAudience parameter"
            ));
        }
        // Both must be this stack's API, or the authorizer would not apply to the route.
        let route_api = eval.property(&route, &["ApiId"]).expect("ApiId");
        if route_api != check(&["ApiId"]) {
            problems.push(format!(
                "{what}: the route and {authorizer_id} are on different APIs"
            ));
        }
    }
    problems
}

/// The route keys the template creates under these parameters.
fn route_keys(template: &Template, overrides: &[(&str, &str)]) -> Vec<String> {
    let eval = template.evaluator(overrides).expect("parameters");
    template
        .resources_of_type("AWS::ApiGatewayV2::Route")
        .iter()
        .filter(|(_, r)| eval.is_created(r).expect("route condition"))
        .filter_map(|(_, r)| eval.property(r, &["RouteKey"]).expect("RouteKey"))
        .filter_map(|k| k.as_str().map(String::from))
        .collect()
}

fn with_jwt_settings() -> Vec<(&'static str, &'static str)> {
    vec![("JwtIssuer", ISSUER), ("JwtAudience", AUDIENCE)]
}

#[test]
fn every_route_of_the_template_requires_the_jwt_authorizer() {
    let template = Template::load(TEMPLATE).expect("template");
    // ApiAuthentication is left at its default: that is what an operator gets without asking for anything.
    let overrides = with_jwt_settings();
    let keys = route_keys(&template, &overrides);
    for expected in EXPECTED_ROUTES {
        assert!(
            keys.iter().any(|k| k == expected),
            "no route {expected:?} in {keys:?}"
        );
    }
    let problems = unauthenticated_routes(&template, &overrides);
    assert!(
        problems.is_empty(),
        "{TEMPLATE} with default ApiAuthentication serves requests without a JWT:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_jwt_authorizer_check_fails_for_an_open_route_or_a_flipped_default() {
    let text = std::fs::read_to_string(secretcache_tests::workspace_root().join(TEMPLATE))
        .expect("template text");
    let overrides = with_jwt_settings();

    // A route added the way the others are, but without the authorizer.
    let open_route = "Resources:\n  OpenRoute:\n    Type: AWS::ApiGatewayV2::Route\n    Properties:\n      \
        ApiId: !Ref ItemsApi\n      RouteKey: GET /open\n      Target: !Sub \"integrations/${ItemsIntegration}\"\n";
    assert_eq!(text.matches("\nResources:\n").count(), 1);
    let added = Template::parse(&text.replacen("\nResources:\n", &format!("\n{open_route}"), 1))
        .expect("template with an open route");
    let problems = unauthenticated_routes(&added, &overrides);
    assert!(
        problems.len() == 1 && problems[0].contains("OpenRoute"),
        "an open route must be the one problem found, got {problems:?}"
    );

    // A SAM HttpApi event on the function creates a route the check cannot see into: refused as such.
    // (In the first function, ItemsFunction, which the defaults deploy; ItemsManagedFunction has the same lines.)
    let event = "      Policies:\n        - Version: \"2012-10-17\"";
    assert!(text.contains(event));
    let with_event = text.replacen(
        event,
        &format!("      Events:\n        Open:\n          Type: HttpApi\n{event}"),
        1,
    );
    let problems =
        unauthenticated_routes(&Template::parse(&with_event).expect("parse"), &overrides);
    assert!(
        problems.iter().any(|p| p.contains("HttpApi event")),
        "a function event route must be refused, got {problems:?}"
    );

    // The default flipped to public: every route is open.
    let default = "    Default: authenticated\n";
    assert_eq!(text.matches(default).count(), 1);
    let flipped =
        Template::parse(&text.replacen(default, "    Default: public\n", 1)).expect("parse");
    let problems = unauthenticated_routes(&flipped, &overrides);
    assert_eq!(
        problems.len(),
        EXPECTED_ROUTES.len(),
        "a public default must open every route, got {problems:?}"
    );
}

#[test]
fn only_api_authentication_public_deploys_the_template_without_the_authorizer() {
    let template = Template::load(TEMPLATE).expect("template");
    assert_eq!(
        template.parameter_default("ApiAuthentication").as_deref(),
        Some("authenticated")
    );

    let public = [("ApiAuthentication", "public")];
    let eval = template.evaluator(&public).expect("parameters");
    let authorizers = template.resources_of_type("AWS::ApiGatewayV2::Authorizer");
    assert!(
        !authorizers.is_empty(),
        "the template has no authorizer at all"
    );
    for (id, a) in &authorizers {
        assert!(
            !eval.is_created(a).expect("condition"),
            "{id} is created on a public stack"
        );
    }
    // The routes are still all there, with no authorization: the switch removes the authorizer and nothing else.
    let keys = route_keys(&template, &public);
    for expected in EXPECTED_ROUTES {
        assert!(
            keys.iter().any(|k| k == expected),
            "no route {expected:?} in {keys:?}"
        );
    }
    assert_eq!(
        unauthenticated_routes(&template, &public).len(),
        keys.len(),
        "every route must be open on a public stack"
    );
    assert_eq!(
        eval.failing_rule_assertions().expect("rules"),
        Vec::<String>::new()
    );
}

#[test]
fn the_template_refuses_an_authenticated_stack_without_issuer_or_audience() {
    let template = Template::load(TEMPLATE).expect("template");
    let failing = |overrides: &[(&str, &str)]| {
        template
            .evaluator(overrides)
            .expect("parameters")
            .failing_rule_assertions()
            .expect("rules")
    };

    assert_eq!(failing(&with_jwt_settings()), Vec::<String>::new());

    let no_settings = failing(&[]);
    assert!(
        no_settings.iter().any(|f| f.contains("JwtIssuer"))
            && no_settings.iter().any(|f| f.contains("JwtAudience")),
        "defaults alone must fail on both the issuer and the audience, got {no_settings:?}"
    );
    let no_audience = failing(&[("JwtIssuer", ISSUER)]);
    assert!(
        no_audience.len() == 1 && no_audience[0].contains("JwtAudience"),
        "got {no_audience:?}"
    );
    // An empty entry ("a,") would be an audience no token has.
    let empty_entry = failing(&[("JwtIssuer", ISSUER), ("JwtAudience", "client-a,")]);
    assert!(
        empty_entry.len() == 1 && empty_entry[0].contains("JwtAudience"),
        "got {empty_entry:?}"
    );
}

#[test]
fn jwt_scopes_apply_to_every_route_only_when_set() {
    let template = Template::load(TEMPLATE).expect("template");
    let mut overrides = with_jwt_settings();
    overrides.push(("JwtScopes", "items-api/items,items-api/admin"));
    let scoped = template.evaluator(&overrides).expect("parameters");
    let plain = template
        .evaluator(&with_jwt_settings())
        .expect("parameters");
    let routes = template.resources_of_type("AWS::ApiGatewayV2::Route");
    assert!(!routes.is_empty());
    for (id, route) in routes {
        assert_eq!(
            scoped
                .property(&route, &["AuthorizationScopes"])
                .expect("scopes"),
            Some(Resolved::List(vec![
                Resolved::Str("items-api/items".into()),
                Resolved::Str("items-api/admin".into())
            ])),
            "{id}"
        );
        assert_eq!(
            plain
                .property(&route, &["AuthorizationScopes"])
                .expect("scopes"),
            None,
            "{id}"
        );
    }
}

const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/items-AbCdEf";

#[test]
fn the_rotation_permission_is_scoped_to_the_stacks_secret() {
    let template = Template::load(TEMPLATE).expect("template");
    let mut overrides = with_jwt_settings();
    overrides.push(("DbSecretArn", SECRET_ARN));
    overrides.push((
        "RotationLambdaArn",
        "arn:aws:lambda:us-east-1:123456789012:function:rotator",
    ));
    let eval = template.evaluator(&overrides).expect("parameters");
    let permission = template
        .resource("RotationInvokePermission")
        .expect("the rotation permission");
    assert!(eval.is_created(&permission).expect("condition"));
    let property = |name: &str| {
        eval.property(&permission, &[name])
            .expect("property")
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    assert_eq!(
        property("Principal").as_deref(),
        Some("secretsmanager.amazonaws.com")
    );
    // Without SourceArn, the rotation of any secret in the account could drive this function.
    assert_eq!(property("SourceArn").as_deref(), Some(SECRET_ARN));
    assert!(property("SourceAccount").is_some());
}

/// The TLS mode the /items function would use when deployed with `overrides`: the template's environment for it,
/// read by the function's own configuration.
fn deployed_ssl_mode(template: &Template, overrides: &[(&str, &str)]) -> SslMode {
    let mut all = with_jwt_settings();
    all.push(("DbSecretArn", SECRET_ARN));
    all.push(("DatabaseHost", "db.example.internal"));
    all.extend_from_slice(overrides);
    let eval = template.evaluator(&all).expect("parameters");
    let function = template.resource("ItemsFunction").expect("ItemsFunction");
    let variables = function
        .get("Properties")
        .and_then(|p| p.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(|v| v.as_mapping())
        .cloned()
        .expect("the function's environment");
    let mut env: HashMap<String, String> = HashMap::new();
    for (name, _) in &variables {
        let name = name.as_str().expect("a variable name");
        if let Some(value) = eval
            .property(&function, &["Environment", "Variables", name])
            .expect("a variable")
        {
            let value = value.as_str().map(str::to_owned).unwrap_or_default();
            env.insert(name.to_owned(), value);
        }
    }
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), "items".into());
    let config = Config::from_env(&env).expect("the function accepts the template's environment");
    config.tls.mode.unwrap_or_else(|| config.tls.default_mode())
}

#[test]
fn a_ca_bundle_makes_verify_full_the_default_and_require_needs_an_explicit_choice() {
    let template = Template::load(TEMPLATE).expect("template");
    let bundle = ("DatabaseSslRootCert", "/opt/rds-ca.pem");
    assert_eq!(
        deployed_ssl_mode(&template, &[bundle]),
        SslMode::VerifyFull,
        "a CA bundle alone must mean the server is verified"
    );
    assert_eq!(
        deployed_ssl_mode(&template, &[bundle, ("DatabaseSslMode", "require")]),
        SslMode::Require,
        "an explicit require is honoured"
    );
    assert_eq!(
        deployed_ssl_mode(&template, &[bundle, ("DatabaseSslMode", "verify-ca")]),
        SslMode::VerifyCa
    );
    // No bundle anywhere: nothing can be verified, so the function's fallback applies.
    assert_eq!(deployed_ssl_mode(&template, &[]), SslMode::Require);
    let description = template
        .section("Parameters")
        .get("DatabaseSslMode")
        .and_then(|p| p.get("Description"))
        .and_then(|d| d.as_str())
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        description.contains("WARNING") && description.contains("verifies nothing"),
        "the description must warn about require: {description}"
    );
}

/// What the on-demand function and the Managed Instances one must share, as written: they are one function, deployed
/// two ways.
const SHARED_FUNCTION_PROPERTIES: &[&str] = &[
    "CodeUri",
    "Handler",
    "Runtime",
    "Architectures",
    "Timeout",
    "Layers",
    "LoggingConfig",
    "Environment",
    "Policies",
];

/// The parameters a deployment must give (no defaults), and `extra`.
fn deployable(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut overrides = with_jwt_settings();
    overrides.push(("SubnetIds", "subnet-aaaa,subnet-bbbb"));
    overrides.extend_from_slice(extra);
    overrides
}

fn resource(template: &Template, id: &str) -> yaml_serde::Value {
    template
        .resource(id)
        .unwrap_or_else(|| panic!("no resource {id}"))
}

fn output(template: &Template, name: &str) -> yaml_serde::Value {
    template
        .section("Outputs")
        .get(name)
        .and_then(|o| o.get("Value"))
        .cloned()
        .unwrap_or_else(|| panic!("no output {name}"))
}

/// `!GetAtt <target>` as the evaluator keeps it.
fn get_att(target: &str) -> Resolved {
    Resolved::Unevaluated(yaml_serde::Value::String(target.to_owned()))
}

#[test]
fn managed_instances_are_off_by_default() {
    let template = Template::load(TEMPLATE).expect("template");
    assert_eq!(
        template.parameter_default("ManagedInstances").as_deref(),
        Some("false")
    );
    let eval = template.evaluator(&deployable(&[])).expect("parameters");
    for (id, created) in [
        ("ItemsFunction", true),
        ("ItemsManagedFunction", false),
        ("ItemsCapacityProvider", false),
        ("CapacityProviderOperatorRole", false),
    ] {
        assert_eq!(
            eval.is_created(&resource(&template, id))
                .expect("condition"),
            created,
            "{id}"
        );
    }
    let function = resource(&template, "ItemsFunction");
    assert!(eval
        .property(&function, &["VpcConfig", "SubnetIds"])
        .expect("VpcConfig")
        .is_some());
    assert_eq!(
        eval.property(&function, &["CapacityProviderConfig"])
            .expect("no capacity provider"),
        None
    );
    assert_eq!(
        eval.property(
            &resource(&template, "ItemsIntegration"),
            &["IntegrationUri"]
        )
        .expect("IntegrationUri"),
        Some(get_att("ItemsFunction.Arn"))
    );
    assert_eq!(
        eval.property(
            &resource(&template, "ItemsApiInvokePermission"),
            &["FunctionName"]
        )
        .expect("FunctionName"),
        Some(Resolved::Resource("ItemsFunction".into()))
    );
    assert_eq!(
        eval.eval(&output(&template, "ItemsFunctionName"))
            .expect("output"),
        Resolved::Resource("ItemsFunction".into())
    );
}

#[test]
fn managed_instances_put_the_same_function_on_a_capacity_provider_behind_its_alias() {
    let template = Template::load(TEMPLATE).expect("template");
    let eval = template
        .evaluator(&deployable(&[
            ("ManagedInstances", "true"),
            ("Architecture", "arm64"),
        ]))
        .expect("parameters");
    for (id, created) in [
        ("ItemsFunction", false),
        ("ItemsManagedFunction", true),
        ("ItemsCapacityProvider", true),
        ("CapacityProviderOperatorRole", true),
    ] {
        assert_eq!(
            eval.is_created(&resource(&template, id))
                .expect("condition"),
            created,
            "{id}"
        );
    }

    // The capacity provider: Lambda-run instances of the function's architecture, in the function's subnets with
    // the function's security group, so the database's ingress rule and the endpoint admit them unchanged.
    let provider = resource(&template, "ItemsCapacityProvider");
    let prop = |path: &[&str]| eval.property(&provider, path).expect("property");
    assert_eq!(
        prop(&["VpcConfig", "SubnetIds"]),
        Some(Resolved::List(vec![
            Resolved::Str("subnet-aaaa".into()),
            Resolved::Str("subnet-bbbb".into())
        ]))
    );
    assert_eq!(
        prop(&["VpcConfig", "SecurityGroupIds"]),
        Some(Resolved::List(vec![get_att(
            "FunctionSecurityGroup.GroupId"
        )]))
    );
    assert_eq!(
        prop(&["InstanceRequirements", "Architectures"]),
        Some(Resolved::List(vec![Resolved::Str("arm64".into())]))
    );
    assert_eq!(
        prop(&["PermissionsConfig", "CapacityProviderOperatorRoleArn"]),
        Some(get_att("CapacityProviderOperatorRole.Arn"))
    );
    assert_eq!(
        prop(&["CapacityProviderScalingConfig", "MaxVCpuCount"]),
        Some(Resolved::Str("16".into()))
    );

    // The function on it: published behind an alias, sized for an environment there, concurrency as the parameter.
    let managed = resource(&template, "ItemsManagedFunction");
    let prop = |path: &[&str]| eval.property(&managed, path).expect("property");
    assert_eq!(
        prop(&["CapacityProviderConfig", "Arn"]),
        Some(get_att("ItemsCapacityProvider.Arn"))
    );
    assert_eq!(
        prop(&[
            "CapacityProviderConfig",
            "PerExecutionEnvironmentMaxConcurrency"
        ]),
        Some(Resolved::Str("16".into()))
    );
    assert!(prop(&["AutoPublishAlias"]).is_some());
    assert_eq!(
        prop(&["VpcConfig"]),
        None,
        "SAM refuses VpcConfig beside it"
    );
    let memory: u32 = prop(&["MemorySize"])
        .and_then(|m| m.as_str().and_then(|m| m.parse().ok()))
        .expect("MemorySize");
    assert!(memory >= 2048, "{memory} MB");
    assert_eq!(
        prop(&["Architectures"]),
        Some(Resolved::List(vec![Resolved::Str("arm64".into())]))
    );

    // The same function as the on-demand one, as written.
    let on_demand = resource(&template, "ItemsFunction");
    for key in SHARED_FUNCTION_PROPERTIES {
        let of = |r: &yaml_serde::Value| r.get("Properties").and_then(|p| p.get(*key)).cloned();
        assert!(of(&on_demand).is_some(), "{key}");
        assert_eq!(of(&managed), of(&on_demand), "{key} differs");
    }

    // API Gateway, its permission and the outputs follow the alias.
    let alias = Resolved::Resource("ItemsManagedFunction.Alias".into());
    assert_eq!(
        eval.property(
            &resource(&template, "ItemsIntegration"),
            &["IntegrationUri"]
        )
        .expect("IntegrationUri"),
        Some(alias.clone())
    );
    assert_eq!(
        eval.property(
            &resource(&template, "ItemsApiInvokePermission"),
            &["FunctionName"]
        )
        .expect("FunctionName"),
        Some(alias.clone())
    );
    assert_eq!(
        eval.eval(&output(&template, "ItemsFunctionArn"))
            .expect("output"),
        alias
    );
    assert_eq!(
        eval.eval(&output(&template, "ItemsFunctionName"))
            .expect("output"),
        Resolved::Resource("ItemsManagedFunction".into())
    );
}
