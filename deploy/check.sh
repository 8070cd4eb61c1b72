#!/usr/bin/env bash
# Validates deploy/template.yaml offline with cfn-lint from the project's virtualenv (`make deploy-check`, part of
# `make test`). Any error or warning fails; informational findings are not enabled.
#
# VENV names the virtualenv. Unset, it is the repository's .venv; a relative value is taken from the caller's directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
case "$venv" in
  /*) ;;
  *) venv="$PWD/$venv" ;;
esac
cfn_lint="$venv/bin/cfn-lint"

if [ ! -x "$cfn_lint" ]; then
  {
    echo "deploy/check.sh: FAILED: cfn-lint is not installed in the virtualenv $venv"
    echo "  expected an executable at $cfn_lint"
    echo "  run 'make venv' (it installs the pinned cfn-lint there), or point VENV at a virtualenv that has it"
  } >&2
  exit 1
fi

template="$root/deploy/template.yaml"
echo "deploy-check: $("$cfn_lint" --version) on deploy/template.yaml"
if ! "$cfn_lint" --non-zero-exit-code warning -- "$template"; then
  echo "deploy/check.sh: FAILED: cfn-lint reported errors or warnings in deploy/template.yaml (listed above)" >&2
  exit 1
fi
echo "deploy-check: OK, 0 errors and 0 warnings"
