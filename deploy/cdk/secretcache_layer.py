"""SecretcacheLayer: the secretcache extension as a CDK construct, used through CDK's own ``params_and_secrets=``.

secretcache is a drop-in replacement for the AWS Parameters and Secrets Lambda Extension, so a function gets it the
way CDK attaches AWS's: ``lambda_.Function(..., params_and_secrets=layer.params_and_secrets(arch, ...))``. CDK then
adds the layer to the function and writes the ``PARAMETERS_SECRETS_EXTENSION_*``, ``SECRETS_MANAGER_*`` and
``SSM_PARAMETER_STORE_*`` variables itself, with its own validation of their ranges; secretcache reads every one of
them. Only the layer ARN differs: ours, published from the zip `make packages` builds, instead of AWS's.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

#: The zip of each architecture under ``zip_dir``, as layer/build.sh names them.
LAYER_ZIP = "secretcache-layer-{arch}.zip"

# layer/build.sh's names for CDK's architectures.
_ARCH_NAMES = {lambda_.Architecture.X86_64.name: "x86_64", lambda_.Architecture.ARM_64.name: "arm64"}

# An extension does not depend on the language runtime: these are the Amazon Linux 2023 runtimes, as in
# deploy/template.yaml, so a function migrating from the AWS extension attaches the layer whatever its language.
COMPATIBLE_RUNTIMES = [
    lambda_.Runtime.PROVIDED_AL2023,
    lambda_.Runtime.PYTHON_3_12,
    lambda_.Runtime.PYTHON_3_13,
    lambda_.Runtime.NODEJS_20_X,
    lambda_.Runtime.NODEJS_22_X,
    lambda_.Runtime.JAVA_21,
    lambda_.Runtime.DOTNET_8,
    lambda_.Runtime.RUBY_3_3,
]


def arch_name(architecture: lambda_.Architecture) -> str:
    """layer/build.sh's name of a CDK architecture (``x86_64`` or ``arm64``)."""
    try:
        return _ARCH_NAMES[architecture.name]
    except KeyError:
        raise ValueError(f"secretcache is built for x86_64 and arm64, not {architecture.name}") from None


class SecretcacheLayer(Construct):
    """One ``lambda_.LayerVersion`` per architecture, from the zips in ``zip_dir`` (layer/dist after `make packages`).

    Old versions are retained on update or delete: functions outside the stack may still use them by ARN.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zip_dir: str,
        architectures: Iterable[lambda_.Architecture] = (lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64),
    ) -> None:
        super().__init__(scope, construct_id)
        self._versions: dict[str, lambda_.LayerVersion] = {}
        for architecture in architectures:
            name = arch_name(architecture)
            path = os.path.join(zip_dir, LAYER_ZIP.format(arch=name))
            if not os.path.isfile(path):
                # A missing zip would otherwise surface as CDK's "Cannot find asset", without the way out.
                raise FileNotFoundError(
                    f"{path} is missing: run `make packages` (both architectures) or `make package ARCH={name}` at the "
                    f"repository's root, or pass the architectures you built"
                )
            self._versions[name] = lambda_.LayerVersion(
                self,
                name,
                code=lambda_.Code.from_asset(path),
                compatible_architectures=[architecture],
                compatible_runtimes=COMPATIBLE_RUNTIMES,
                description=(
                    "secretcache extension: Secrets Manager and SSM cache on 127.0.0.1:2773, compatible with the AWS "
                    "Parameters and Secrets Lambda Extension"
                ),
                removal_policy=RemovalPolicy.RETAIN,
            )

    @property
    def versions(self) -> Mapping[str, lambda_.LayerVersion]:
        """The published layer versions, by architecture name (``x86_64``, ``arm64``)."""
        return dict(self._versions)

    def layer_version(self, architecture: lambda_.Architecture) -> lambda_.LayerVersion:
        """The layer version of one architecture (it must be one this construct published)."""
        name = arch_name(architecture)
        if name not in self._versions:
            raise ValueError(f"this SecretcacheLayer publishes {sorted(self._versions)}, not {name}")
        return self._versions[name]

    def params_and_secrets(self, architecture: lambda_.Architecture, **options) -> lambda_.ParamsAndSecretsLayerVersion:
        """The layer of ``architecture`` for a function's ``params_and_secrets=``.

        ``options`` are those of ``ParamsAndSecretsLayerVersion.from_version_arn`` (``secrets_manager_ttl``,
        ``http_port``, ``log_level``, ``cache_size``, ...); CDK turns them into the extension's variables.
        """
        arn = self.layer_version(architecture).layer_version_arn
        return lambda_.ParamsAndSecretsLayerVersion.from_version_arn(arn, **options)
