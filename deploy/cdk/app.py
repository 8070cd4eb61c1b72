#!/usr/bin/env python3
"""The CDK app: `npx aws-cdk@2 deploy -c jwtIssuer=... -c jwtAudience=...` from this directory (docs/deploy.md,
"Deploy with CDK (Python)"). Context (`-c key=value`, or cdk.json):

- zipDir: the directory of layer/build.sh's zips (default: the repository's layer/dist);
- architecture: x86_64 (default) or arm64, of the function (the layer is published for both);
- apiAuthentication: authenticated (default) or public; jwtIssuer, jwtAudience (comma-separated), jwtScopes;
- secretsManagerEndpoint: true (default) or false (a NAT gateway instead);
- databaseCaBundle: false (default) or true (the function zip carries the database's CA bundle: verify-full);
- customerManagedKey: false (default: aws/secretsmanager) or true (a KMS key of the stack encrypts the secret).

Synthesis is offline: `CDK_OUTDIR=out CDK_CONTEXT_JSON='{...}' python app.py` is what tests/tests/deploy_cdk.rs runs.
"""

import os

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from items_stack import ItemsSettings, ItemsStack

HERE = os.path.dirname(os.path.abspath(__file__))


def flag(app: cdk.App, key: str, default: bool) -> bool:
    value = app.node.try_get_context(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"context {key} is true or false, not {value!r}")


def names(app: cdk.App, key: str) -> list[str]:
    value = app.node.try_get_context(key) or []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value]


def main() -> None:
    # No CDKMetadata resource: the template is exactly the stack.
    app = cdk.App(analytics_reporting=False)
    architectures = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
    arch = app.node.try_get_context("architecture") or "x86_64"
    if arch not in architectures:
        raise ValueError(f"context architecture is x86_64 or arm64, not {arch!r}")
    settings = ItemsSettings(
        zip_dir=os.path.abspath(app.node.try_get_context("zipDir") or os.path.join(HERE, "..", "..", "layer", "dist")),
        architecture=architectures[arch],
        api_authentication=app.node.try_get_context("apiAuthentication") or "authenticated",
        jwt_issuer=app.node.try_get_context("jwtIssuer") or "",
        jwt_audience=names(app, "jwtAudience"),
        jwt_scopes=[s for s in names(app, "jwtScopes") if s],
        secrets_manager_endpoint=flag(app, "secretsManagerEndpoint", True),
        database_ca_bundle=flag(app, "databaseCaBundle", False),
        customer_managed_key=flag(app, "customerManagedKey", False),
    )
    ItemsStack(app, "SecretcacheItems", settings=settings, description="secretcache: the /items API (issue 30)")
    app.synth()


if __name__ == "__main__":
    main()
