"""A Python function that reads through the secretcache layer as the AWS documentation's Python example reads
through the AWS Parameters and Secrets Lambda Extension: urllib, localhost, the session token in the
X-Aws-Parameters-Secrets-Token header.

It reads a secret and a SecureString parameter once during init (at module level, as functions commonly do) and
again in every invoke, and returns what it read so that the test can compare it with what Secrets Manager holds.
It never prints a value: the test checks that no log line holds one.
"""

import json
import os
import urllib.parse
import urllib.request

PORT = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
HEADERS = {"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN")}


def get(path):
    request = urllib.request.Request("http://localhost:" + PORT + path, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def read_secret():
    secret_id = urllib.parse.quote(os.environ["SECRET_ID"], safe="")
    return get("/secretsmanager/get?secretId=" + secret_id)["SecretString"]


def read_parameter():
    name = urllib.parse.quote(os.environ["PARAMETER_NAME"], safe="")
    return get("/systemsmanager/parameters/get?name=" + name + "&withDecryption=true")["Parameter"]["Value"]


AT_INIT = {"secret": read_secret(), "parameter": read_parameter()}
print("init read the secret and the parameter")


def handler(event, context):
    return {
        "init": AT_INIT,
        "invoke": {"secret": read_secret(), "parameter": read_parameter()},
        "requestId": context.aws_request_id,
    }
