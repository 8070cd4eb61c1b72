#!/usr/bin/env bash
# make fuzz: runs each cargo-fuzz target for a set time (seconds, $1, default 60) on the nightly toolchain; further
# arguments name the targets to run.
# Saved regression inputs seed the corpus; any crash is copied into regressions/ (so the stable test
# extension/tests/fuzz_regressions.rs replays it from then on) and the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
# Further arguments name the targets to run (all when none): `run.sh 600 sigv4 sdk_body`.
only=" $* "
status=0
for pair in query_parser:query config_parser:config agent_toml:agent_toml reference:reference path_route:path_route \
  sigv4:sigv4 sdk_body:sdk_body token_file:token_file projection:projection epoch_date:epoch_date \
  listing_key:listing_key; do
  target=${pair%%:*}; dir=${pair##*:}
  if [ "$only" != "  " ] && [[ "$only" != *" $target "* ]]; then continue; fi
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzzing $target for ${secs}s"
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/regressions/$dir" -- \
      -max_total_time="$secs" -max_len=4096 -print_final_stats=1; then
    status=1
  fi
  for crash in fuzz/artifacts/"$target"/crash-* fuzz/artifacts/"$target"/oom-* fuzz/artifacts/"$target"/timeout-*; do
    [ -e "$crash" ] || continue
    cp "$crash" "fuzz/regressions/$dir/"
    echo "saved $(basename "$crash") as a regression input in extension/fuzz/regressions/$dir/"
    status=1
  done
done
exit $status
