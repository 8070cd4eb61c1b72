"""Unchanged boto3 code (the seed's get_secret_value pattern, and SSM's get_parameter) reading through secretcache:
the only change is the environment, AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_SSM, which boto3 reads
itself. Reads SECRET_NAME (whose previous version differs), PARAMETER_NAME (a SecureString) and the parameters under
PARAMETER_PATH (three, in pages of two, as boto3's paginator walks them); prints one JSON object of what it saw,
exceptions by their class name.
"""

import json
import os

import boto3
from botocore.exceptions import ClientError


def attempt(fn):
    try:
        return {"ok": fn()}
    except ClientError as error:
        return {"error": error.response["Error"]["Code"], "class": type(error).__name__}


def batch(secrets, ids):
    answer = secrets.batch_get_secret_value(SecretIdList=ids)
    return {
        "values": [v["SecretString"] for v in answer["SecretValues"]],
        "errors": [(e["SecretId"], e["ErrorCode"]) for e in answer["Errors"]],
    }


def parameters(ssm, names):
    answer = ssm.get_parameters(Names=names, WithDecryption=True)
    return {
        "values": [p["Value"] for p in answer["Parameters"]],
        "invalid": answer["InvalidParameters"],
    }


def walk(ssm, path):
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 2}
    )
    return sorted(p["Name"] + "=" + p["Value"] for page in pages for p in page["Parameters"])


def filtered(secrets, name):
    answer = secrets.batch_get_secret_value(Filters=[{"Key": "name", "Values": [name]}])
    return sorted(v["Name"] for v in answer["SecretValues"])


def main():
    secrets = boto3.client("secretsmanager")
    ssm = boto3.client("ssm")
    name = os.environ["SECRET_NAME"]
    parameter = os.environ["PARAMETER_NAME"]
    seen = {
        "reads": [secrets.get_secret_value(SecretId=name)["SecretString"] for _ in range(5)],
        "created_is_a_date": type(secrets.get_secret_value(SecretId=name)["CreatedDate"]).__name__,
        "previous": secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"],
        "missing": attempt(lambda: secrets.get_secret_value(SecretId=name + "-missing")),
        "parameter": ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"],
        "parameter_missing": attempt(lambda: ssm.get_parameter(Name=parameter + "-missing")),
        "describe": attempt(lambda: secrets.describe_secret(SecretId=name)["Name"]),
        "batch": batch(secrets, [name, name + "-missing"]),
        "parameters": parameters(ssm, [parameter, parameter + "-missing"]),
        "by_path": walk(ssm, os.environ["PARAMETER_PATH"]),
        "by_path_again": walk(ssm, os.environ["PARAMETER_PATH"]),
        "filtered": filtered(secrets, name),
        "filtered_again": filtered(secrets, name),
    }
    # Writes go through, and the same environment reads what it wrote.
    secrets.put_secret_value(SecretId=name, SecretString='{"password":"three"}')
    seen["after_put"] = secrets.get_secret_value(SecretId=name)["SecretString"]
    ssm.put_parameter(Name=parameter, Value="postgres://db2", Type="SecureString", Overwrite=True)
    seen["after_put_parameter"] = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    for leaf, value in (("x", "4"), ("y", "5")):
        ssm.put_parameter(Name=os.environ["PARAMETER_PATH"] + "/" + leaf, Value=value, Type="String")
    seen["by_path_after_put"] = walk(ssm, os.environ["PARAMETER_PATH"])
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
