"""A Python function that reports what its environment holds, without holding it up to view: for each variable named
in REPORT_VARIABLES (comma-separated), its length in bytes and SHA-256, so that a test can compare it with the value it
expects while no value reaches a response or a log line. It also reports its pid: started through an exec wrapper,
the runtime must be the very process Lambda started.

The end-to-end tests of the exec wrapper (tests/tests/e2e_wrapper.rs) run it under awslambdaric with
AWS_LAMBDA_EXEC_WRAPPER set, as a managed runtime would.
"""

import hashlib
import os


def describe(name):
    value = os.environ.get(name)
    if value is None:
        return None
    encoded = value.encode()
    return {"length": len(encoded), "sha256": hashlib.sha256(encoded).hexdigest()}


NAMES = [n for n in os.environ.get("REPORT_VARIABLES", "").split(",") if n]
AT_INIT = {name: describe(name) for name in NAMES}
print("env_report loaded; variables described: " + ",".join(NAMES))


def handler(event, context):
    return {
        "pid": os.getpid(),
        "init": AT_INIT,
        "invoke": {name: describe(name) for name in NAMES},
    }
