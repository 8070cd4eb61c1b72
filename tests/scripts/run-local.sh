#!/usr/bin/env bash
# Local demo: a real moto server holding a demo secret, and the secretcache extension in standalone mode on
# 127.0.0.1:2773. Shows one upstream fetch, then cache hits, and serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
MOTO_PORT=${MOTO_PORT:-5055}
PORT=${PARAMETERS_SECRETS_EXTENSION_HTTP_PORT:-2773}
TOKEN=local-demo-token
LOG=$(mktemp -d)/secretcache.log

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" >/dev/null && break; sleep 0.1; done

AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" - "$MOTO_PORT" <<'PY'
import json, sys, boto3
sm = boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}")
sm.create_secret(Name="demo/db", SecretString=json.dumps(
    {"username": "app", "password": "demo-password", "host": "127.0.0.1", "port": 5432, "dbname": "collections",
     "engine": "postgres"}))
PY

env -i PATH="$PATH" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_SESSION_TOKEN="$TOKEN" AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" \
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$PORT" PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL=debug \
  PARAMETERS_SECRETS_EXTENSION_PREFETCH=demo/db \
  target/debug/secretcache >"$LOG" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && break; sleep 0.1; done

echo "== secretcache is serving on 127.0.0.1:$PORT (moto on $MOTO_PORT) =="
CURL="curl -s -H 'X-Aws-Parameters-Secrets-Token: $TOKEN' 'http://127.0.0.1:$PORT/secretsmanager/get?secretId=demo/db'"
echo "\$ $CURL"
eval "$CURL"; echo
for _ in 1 2 3; do eval "$CURL" >/dev/null; done
echo
echo "== extension log (one upstream fetch at start-up, then cache hits) =="
grep -E "fetched from upstream|prefetched|cache hit|listening|ready" "$LOG" | sed 's/^/  /'
echo
echo "Try:"
echo "  $CURL"
echo "  curl -s -H 'X-Aws-Parameters-Secrets-Token: $TOKEN' 'http://127.0.0.1:$PORT/metrics'"
echo "Log: $LOG. Ctrl-C to stop."
wait
