"""ItemsStack: the seed's deployment (issue 30) with secretcache, the CDK counterpart of deploy/template.yaml.

- a VPC (two AZs), and a Secrets Manager interface endpoint in it unless ``secrets_manager_endpoint`` is off (then a
  NAT gateway gives the private subnets their way to Secrets Manager);
- RDS PostgreSQL with a generated secret (the RDS JSON: username, password, host, port, dbname, engine), rotated by
  single-user rotation every 30 days;
- the /items function from our zip, with the secretcache layer through CDK's ``params_and_secrets=``, the secret's
  ARN in ``DB_SECRET_ARN`` (and prefetched during init), and ``secret.grant_read``: that one secret and nothing else;
- the HTTP API, every route behind a JWT authorizer unless ``api_authentication="public"`` is asked for.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from secretcache_layer import SecretcacheLayer, arch_name

#: The function zip of each architecture, as layer/build.sh names it.
FUNCTION_ZIP = "items-function-{arch}.zip"
#: Where layer/build.sh puts the CA bundle given as DATABASE_CA_BUNDLE; the function finds it there by itself.
BUNDLED_CA = "certs/database-ca.pem"
DATABASE_NAME = "collections"
#: The routes the /items function serves (as deploy/template.yaml).
ROUTES = [
    ("/items", [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.POST]),
    ("/items/{id}", [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.DELETE]),
    # /health too: it runs the function (and touches the database), so an anonymous caller could load both.
    ("/health", [apigwv2.HttpMethod.GET]),
]


@dataclass
class ItemsSettings:
    """What a deployer chooses (app.py reads it from CDK context)."""

    zip_dir: str
    architecture: lambda_.Architecture = lambda_.Architecture.X86_64
    #: "authenticated" (every route needs a JWT from jwt_issuer for jwt_audience) or, only on purpose, "public".
    api_authentication: str = "authenticated"
    jwt_issuer: str = ""
    jwt_audience: list[str] = field(default_factory=list)
    #: When set, every route also needs a token with one of these scopes (it keeps ID tokens out).
    jwt_scopes: list[str] = field(default_factory=list)
    #: A Secrets Manager interface endpoint in the VPC; off, a NAT gateway reaches the public endpoint instead.
    secrets_manager_endpoint: bool = True
    #: The function zip carries the database's CA bundle (`make package DATABASE_CA_BUNDLE=...`): verify-full.
    database_ca_bundle: bool = False
    #: Encrypt the secret with a customer managed KMS key of the stack instead of aws/secretsmanager; the function
    #: may then decrypt with it through Secrets Manager only.
    customer_managed_key: bool = False
    secrets_cache_ttl_seconds: int = 300

    def validate(self) -> None:
        """Refuses, before anything is built, what deploy/template.yaml's Rules refuse."""
        if self.api_authentication not in ("authenticated", "public"):
            raise ValueError(f"apiAuthentication is authenticated or public, not {self.api_authentication!r}")
        if self.api_authentication == "authenticated":
            if not self.jwt_issuer.startswith("https://"):
                raise ValueError(
                    "apiAuthentication=authenticated (the default) needs jwtIssuer, the token issuer's https:// URL "
                    "(-c jwtIssuer=...). To deploy an API anyone can call, set -c apiAuthentication=public explicitly."
                )
            if not self.jwt_audience or any(not a for a in self.jwt_audience):
                raise ValueError(
                    "apiAuthentication=authenticated needs jwtAudience (e.g. the Cognito app client ID; "
                    "comma-separated, with no empty entry)"
                )


class ItemsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: ItemsSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings.validate()
        arch = settings.architecture
        function_zip = os.path.join(settings.zip_dir, FUNCTION_ZIP.format(arch=arch_name(arch)))
        if not os.path.isfile(function_zip):
            raise FileNotFoundError(f"{function_zip} is missing: run `make packages` at the repository's root")

        if settings.secrets_manager_endpoint:
            # Nothing in the stack needs the internet but Secrets Manager: the endpoint costs less than a NAT gateway.
            subnets = [ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)]
            nat_gateways = 0
            private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        else:
            subnets = [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ]
            nat_gateways = 1
            private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=nat_gateways, subnet_configuration=subnets)
        endpoint = None
        if settings.secrets_manager_endpoint:
            # Private DNS: the SDK's default endpoint name resolves to it, so neither the function nor the extension
            # is configured for it. No endpoint policy: the roles are what limit each caller to its secret.
            endpoint = vpc.add_interface_endpoint(
                "SecretsManagerEndpoint",
                service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
                subnets=private,
                private_dns_enabled=True,
            )

        secret_key = None
        if settings.customer_managed_key:
            secret_key = kms.Key(
                self, "DatabaseSecretKey", description="The /items database secret", enable_key_rotation=True
            )
        database = rds.DatabaseInstance(
            self,
            "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO),
            vpc=vpc,
            vpc_subnets=private,
            credentials=rds.Credentials.from_generated_secret("postgres", encryption_key=secret_key),
            database_name=DATABASE_NAME,
            storage_encrypted=True,
            # Deleting the stack keeps a final snapshot of the data.
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        secret = database.secret
        assert secret is not None, "from_generated_secret always makes a secret"
        # Secrets Manager's own rotation function (single user: the secret's user changes its own password). The
        # extension's TTL bounds how long a function keeps the old password; a failed login refetches it.
        database.add_rotation_single_user(automatically_after=Duration.days(30), endpoint=endpoint)

        layer = SecretcacheLayer(self, "SecretcacheLayer", zip_dir=settings.zip_dir)

        environment = {
            "DB_SECRET_ARN": secret.secret_arn,
            # Fetched while the environment initialises, so the function's first read is a cache hit.
            "PARAMETERS_SECRETS_EXTENSION_PREFETCH": secret.secret_arn,
            "DATABASE_NAME": DATABASE_NAME,
        }
        if settings.database_ca_bundle:
            with zipfile.ZipFile(function_zip) as z:
                if BUNDLED_CA not in z.namelist():
                    raise ValueError(
                        f"databaseCaBundle=true, but {function_zip} has no {BUNDLED_CA}: build the zips with "
                        f"`DATABASE_CA_BUNDLE=/path/to/global-bundle.pem make packages` (AWS's RDS bundle is at "
                        f"https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
                    )
            # Said explicitly, so a function zip rebuilt without the bundle fails to connect instead of silently
            # falling back to an unverified server.
            environment["DATABASE_SSLMODE"] = "verify-full"
        else:
            environment["DATABASE_SSLMODE"] = "require"

        log_group = logs.LogGroup(
            self, "ItemsLogGroup", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        function = lambda_.Function(
            self,
            "ItemsFunction",
            description="The /items API; reads its database credentials through the secretcache extension",
            code=lambda_.Code.from_asset(function_zip),
            handler="bootstrap",
            runtime=lambda_.Runtime.PROVIDED_AL2023,
            architecture=arch,
            memory_size=256,
            timeout=Duration.seconds(15),
            vpc=vpc,
            vpc_subnets=private,
            environment=environment,
            log_group=log_group,
            params_and_secrets=layer.params_and_secrets(
                arch,
                secrets_manager_ttl=Duration.seconds(settings.secrets_cache_ttl_seconds),
                http_port=2773,
                log_level=lambda_.ParamsAndSecretsLogLevel.INFO,
            ),
        )
        # CDK makes every function depend on its role, which the function's GetAtt of the role's ARN already does;
        # cfn-lint warns of that (W3005), for this resource only.
        function.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        # GetSecretValue and DescribeSecret on this one secret (and kms:Decrypt through Secrets Manager when it has
        # a customer managed key); nothing else beyond Lambda's basic and VPC execution policies.
        secret.grant_read(function)
        database.connections.allow_default_port_from(function, "items function")

        authorizer = None
        if settings.api_authentication == "authenticated":
            # API Gateway checks the token's signature, expiry, issuer and audience before the function runs.
            authorizer = authorizers.HttpJwtAuthorizer(
                "jwt",
                settings.jwt_issuer,
                jwt_audience=settings.jwt_audience,
                identity_source=["$request.header.Authorization"],
            )
        api = apigwv2.HttpApi(
            self,
            "ItemsApi",
            description="The /items API",
            default_authorizer=authorizer,
            default_authorization_scopes=settings.jwt_scopes or None,
            create_default_stage=False,
        )
        # Each execution environment holds a small connection pool, so bursts become database connections.
        stage = apigwv2.HttpStage(
            self,
            "ItemsApiStage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=50, burst_limit=100),
        )
        integration = integrations.HttpLambdaIntegration("ItemsIntegration", function)
        for path, methods in ROUTES:
            api.add_routes(path=path, methods=methods, integration=integration)

        CfnOutput(self, "ApiUrl", value=stage.url)
        CfnOutput(self, "ApiAuthentication", value=settings.api_authentication)
        CfnOutput(self, "ItemsFunctionName", value=function.function_name)
        CfnOutput(self, "ItemsLogGroupName", value=log_group.log_group_name)
        CfnOutput(self, "DatabaseSecretArn", value=secret.secret_arn)
        for name, version in layer.versions.items():
            CfnOutput(self, f"SecretcacheLayerArn{name.replace('_', '')}", value=version.layer_version_arn)
