#!/usr/bin/env bash
# layer/hot-text/collect.sh: writes layer/hot-text/<arch>.ld, the functions the extension runs to start, answer hits
# and misses (Secrets Manager, SSM, a batch, the SDK protocol, errors) and stop, so that the release link puts them
# side by side (layer/build.sh passes the file to the linker). A process keeps resident the blocks of its binary it
# touched, not the functions it ran: the kernel maps a fault's neighbours with it. Spread over the binary's 6.7 MB of
# code, the 2 MB of functions the extension runs kept 5.8 MB of it resident (BENCHMARKS.md, "Lean at scale").
#
# Run it after a change to the start or serving path, a dependency update or a new toolchain (layer/build.sh fails a
# release build whose list no longer matches); it takes about 10 minutes on 2 CPUs and needs valgrind, qemu-user and the
# virtualenv.
#
# How: the extension is built as layer/build.sh builds it (same packages, profile and target), with symbols kept by
# a rustflag (rustflags do not change symbol names; the profile, the target and the packages built together would),
# and run against moto, standalone and then as a Lambda extension: x86_64 under callgrind, every function it saw
# listed; arm64 under qemu-aarch64 (valgrind does not run it here), every function whose code qemu translated.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="${VENV:-$root/.venv}"
export PATH="$venv/bin:$PATH"
for tool in valgrind qemu-aarch64 cargo-zigbuild moto_server curl; do
  command -v "$tool" >/dev/null || {
    echo "layer/hot-text/collect.sh: $tool not found (make venv; apt install valgrind qemu-user)" >&2
    exit 1
  }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

moto_port="$(free_port)"
moto_server -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$moto_port/moto-api/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=token AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
for i in 0 1 2 3; do
  aws secretsmanager create-secret --name "hot/$i" --secret-string "{\"password\":\"p$i\"}" >/dev/null
done
aws ssm put-parameter --name /hot/param --type SecureString --value v >/dev/null

cargo build -q -p lambda-env --bin lambda-env --target-dir "$root/target"
mkdir -p "$work/function"
cat >"$work/function/bootstrap" <<'SCRIPT'
#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while :; do
  id="$(curl -s -D - -o /dev/null "$api/next" | tr -d '\r' | awk -F': ' 'tolower($1) == "lambda-runtime-aws-request-id" {print $2}')"
  curl -s -o /dev/null -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
    "http://127.0.0.1:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT/secretsmanager/get?secretId=hot/0"
  curl -s -o /dev/null -d '{"statusCode":200,"body":"ok"}' "$api/$id/response"
done
SCRIPT
chmod +x "$work/function/bootstrap"

# run <trace file> <command...>: the extension, standalone, through every route; then the same command as the
# extension of a Lambda environment (lambda-env, the tests' local Lambda) whose function reads a secret per invoke.
# @TRACE@ in the command is replaced by where the run's trace goes.
run() {
  local trace="$1"
  shift
  local port ext
  port="$(free_port)"
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="$port" "${@//@TRACE@/$trace.standalone}" >"$work/extension.log" 2>&1 &
  ext=$!
  pids+=($ext)
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/ping" && break; sleep 0.2; done
  local token=(-H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN")
  get() { curl -s -o /dev/null "${token[@]}" "http://127.0.0.1:$port$1"; }
  for i in 0 1 2 3; do get "/secretsmanager/get?secretId=hot/$i"; done
  for _ in $(seq 50); do get "/secretsmanager/get?secretId=hot/0"; done
  get "/secretsmanager/get?secretId=hot/missing"
  get "/secretsmanager/get?secretId=hot/0&versionStage=AWSPREVIOUS"
  get "/secretsmanager/get?secretId=hot/0&refreshNow=true"
  get "/secretsmanager/get?secretId=hot/1&secretId=hot/2"
  get "/systemsmanager/parameters/get?name=/hot/param&withDecryption=true"
  get "/systemsmanager/parameters/get?name=/hot/missing"
  curl -s -o /dev/null "http://127.0.0.1:$port/secretsmanager/get?secretId=hot/0"
  # The SDK protocol as an application's SDK speaks it (signed with SigV4).
  for _ in 1 2; do
    aws --endpoint-url "http://127.0.0.1:$port" secretsmanager get-secret-value --secret-id hot/3 >/dev/null
    aws --endpoint-url "http://127.0.0.1:$port" ssm get-parameter --name /hot/param --with-decryption >/dev/null
  done
  kill -TERM "$ext"
  wait "$ext" || true

  rm -rf "$work/layer"
  mkdir -p "$work/layer"
  local lambda_command=("${@//@TRACE@/$trace.lambda}")
  printf '#!/bin/sh\nexec %s\n' "${lambda_command[*]}" >"$work/layer/secretcache"
  chmod +x "$work/layer/secretcache"
  local door lambda
  door="$(free_port)"
  "$root/target/debug/lambda-env" --function "$work/function/bootstrap" --layer "$work/layer/secretcache" \
    --port "$door" --timeout 60 --no-freeze --quiet --env "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" \
    --env "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=$(free_port)" >"$work/lambda.log" 2>&1 &
  lambda=$!
  pids+=($lambda)
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$door/items" && break; sleep 0.2; done
  for _ in $(seq 5); do curl -s -o /dev/null "http://127.0.0.1:$door/items"; done
  kill -INT "$lambda"
  wait "$lambda" || true
}

# write <arch>: layer/hot-text/<arch>.ld from the function names on standard input.
write() {
  local out="$root/layer/hot-text/$1.ld"
  {
    echo "/* Generated by layer/hot-text/collect.sh on $(date -u +%F) from $(git rev-parse --short HEAD) with"
    echo "   $(rustc --version). The functions the extension ran, placed first in the code (INSERT BEFORE .text);"
    echo "   a name that no longer exists matches nothing. A function marked cold (#[cold]: a growth, an error path)"
    echo "   is compiled into .text.unlikely.<name>. */"
    echo "SECTIONS {"
    echo "  .text.hot : {"
    grep -vE '^(0x|\(|$)' | sort -u | sed 's/.*/    *(.text.& .text.unlikely.&)/'
    echo "  }"
    echo "} INSERT BEFORE .text;"
  } >"$out"
  echo "layer/hot-text/collect.sh: $(grep -c '^    \*' "$out") functions in $out"
}

export CARGO_TARGET_DIR="$root/target/hot-text"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-cpu=haswell -C strip=none"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-cpu=neoverse-n1 -C strip=none"
# Exactly layer/build.sh's packages: building the function with it unifies features, which changes the names too.
cargo zigbuild --profile release --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl \
  -p secretcache -p items-function --bins

run "$work/x86_64" valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file=@TRACE@ \
  "$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/secretcache"
cat "$work"/x86_64.* | grep -oE '^c?fn=\([0-9]+\) .*' | sed -E "s/^c?fn=\([0-9]+\) //; s/'[0-9]+\$//" | write x86_64

# qemu logs each block of guest code it translates, under the name of its function ("IN: <name>").
run "$work/arm64" qemu-aarch64 -d in_asm -D @TRACE@ "$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/secretcache"
cat "$work"/arm64.* | sed -nE 's/^IN: (.+)$/\1/p' | write arm64
