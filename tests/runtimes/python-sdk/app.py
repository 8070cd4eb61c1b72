"""The seed's own credentials helper, unchanged: boto3's get_secret_value on DB_SECRET_ARN, parsed as RDS writes
the secret. Nothing in this file knows of secretcache: the function reads through the layer because its environment
sets AWS_ENDPOINT_URL_SECRETS_MANAGER to the extension's address, which boto3 reads itself.

Unlike the seed, no lru_cache: every invoke reads again, so the test can show that many reads are one upstream call.
It never prints a value.
"""

import json
import os
from typing import Dict

import boto3

client = boto3.client("secretsmanager")


def get_database_credentials() -> Dict[str, str]:
    """Fetch credentials from Secrets Manager."""
    response = client.get_secret_value(SecretId=os.environ["DB_SECRET_ARN"])
    return json.loads(response["SecretString"])


def handler(event, context):
    creds = get_database_credentials()
    return {"username": creds["username"], "password": creds["password"], "requestId": context.aws_request_id}
