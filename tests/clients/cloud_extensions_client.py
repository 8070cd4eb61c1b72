"""A client written for AWS Systems Manager Cloud Extensions' Secrets Manager extension, as AWS's Lambda example
for it is written: urllib for HTTP, botocore's SigV4Auth to sign each request with the function's credentials, the
query route and the path route, refreshNow and versionStage, and the error answers for a request that is not
signed, one with X-Forwarded-For, and a secret that does not exist. Pointed at secretcache by changing only the
port (CLOUD_EXTENSIONS_PORT; Cloud Extensions listens on 5333).

Reads SECRET_NAME (a secret whose current value is not its previous one). Prints one JSON object of what it saw.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

PORT = int(os.environ.get("CLOUD_EXTENSIONS_PORT", "5333"))
BASE = f"http://localhost:{PORT}/secretsmanager"
REGION = os.environ["AWS_REGION"]
CREDENTIALS = botocore.session.get_session().get_credentials()


def call(url, sign=True, headers=None):
    request = AWSRequest(method="GET", url=url, headers=dict(headers or {}))
    if sign:
        SigV4Auth(CREDENTIALS, "secretsmanager", REGION).add_auth(request)
    prepared = urllib.request.Request(url, headers=dict(request.headers.items()), method="GET")
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        return {
            "status": error.code,
            "type": error.headers.get("X-Amzn-Errortype"),
            "body": body,
        }


def main():
    name = os.environ["SECRET_NAME"]
    quoted = urllib.parse.quote(name, safe="")
    seen = {
        "query": call(f"{BASE}/get?secretId={quoted}"),
        "path": call(f"{BASE}/{name}"),
        "path_encoded": call(f"{BASE}/{quoted}"),
        "refreshed": call(f"{BASE}/get?secretId={quoted}&refreshNow=true"),
        "previous": call(f"{BASE}/{name}?versionStage=AWSPREVIOUS"),
        "unsigned": call(f"{BASE}/get?secretId={quoted}", sign=False),
        "forwarded": call(f"{BASE}/get?secretId={quoted}", headers={"X-Forwarded-For": "203.0.113.7"}),
        "missing": call(f"{BASE}/get?secretId={quoted}-does-not-exist"),
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
