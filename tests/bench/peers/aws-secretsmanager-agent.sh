#!/usr/bin/env bash
# Starts the AWS Secrets Manager Agent (crates.io `aws_secretsmanager_agent`) as the bench's peer.
#
# The bench runs this as BENCH_PEER_CMD with the environment it gives ours: AWS_ENDPOINT_URL (moto, or the counting
# proxy), test credentials, AWS_TOKEN (the agent's SSRF token variable) and BENCH_PEER_PORT. The agent takes its
# port from a TOML file only, so this writes one and execs the agent: the bench measures the agent's own pid.
#
# Settings are the agent's defaults (TTL 300 s, cache_size 1000, validate_credentials = true, so it calls STS
# GetCallerIdentity on moto before it listens), except: the port, log_level INFO (ours runs at info too) and
# log_to_file = false (the bench keeps stdout/stderr in target/bench/peer.log).
#
# The same file starts secretcache unchanged (`secretcache --config agent.toml` reads the Agent's keys), so this script
# also shows the drop-in: aws-secretsmanager-agent.sh target/release/secretcache runs ours from the Agent's config.
#
# Usage: aws-secretsmanager-agent.sh <agent binary, or secretcache>
set -euo pipefail
agent=${1:?usage: $0 <path to aws_secretsmanager_agent>}
port=${BENCH_PEER_PORT:?BENCH_PEER_PORT is set by the bench}
dir=$(mktemp -d "${TMPDIR:-/tmp}/peer-agent.XXXXXX")
cat > "$dir/agent.toml" <<TOML
http_port = "$port"
log_level = "INFO"
log_to_file = false
TOML
cd "$dir"
exec "$agent" --config "$dir/agent.toml"
