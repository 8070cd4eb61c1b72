#!/usr/bin/env bash
# `make run`: the layer zip and the function zip (built by `make package`) in the local Lambda environment, with
# moto holding the database secret and a throwaway TLS PostgreSQL behind it. See tests/src/bin/local-lambda.rs.
# Serves on http://127.0.0.1:${PORT:-9000} until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${ARCH:-x86_64}
PORT=${PORT:-9000}
layer=layer/dist/secretcache-layer-$ARCH.zip
function=layer/dist/items-function-$ARCH.zip
for zip in "$layer" "$function"; do
  [ -f "$zip" ] || { echo "run-local.sh: $zip is missing; run 'make package' (make run does)" >&2; exit 1; }
done
case "$(uname -m)" in
  x86_64) host=x86_64 ;;
  aarch64 | arm64) host=arm64 ;;
  *) host=unknown ;;
esac
if [ "$ARCH" != "$host" ]; then
  # lambda-env starts them under qemu-user (tests/lambda-env/src/launch.rs; `make run` installs it): slower, and
  # its memory figures include the emulator's.
  echo "run-local.sh: the zips are for $ARCH and this machine is $host: they run under qemu-user" >&2
fi
cargo build --quiet -p secretcache-tests --bin local-lambda
exec target/debug/local-lambda --layer "$layer" --function "$function" --port "$PORT"
