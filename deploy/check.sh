#!/usr/bin/env bash
# Validates the CloudFormation templates in deploy/ offline with cfn-lint from the project's virtualenv
# (`make deploy-check`, part of `make test`): template.yaml (the SAM stack) and ecs-sidecar.yaml (the ECS sidecar
# example). Any error or warning fails; informational findings are not enabled. deploy/k8s-sidecar.yaml is not
# CloudFormation; tests/tests/deploy_sidecar.rs checks it.
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

templates=(template.yaml ecs-sidecar.yaml)
echo "deploy-check: $("$cfn_lint" --version) on ${templates[*]/#/deploy/}"
failed=()
for t in "${templates[@]}"; do
  if ! "$cfn_lint" --non-zero-exit-code warning -- "$root/deploy/$t"; then
    failed+=("deploy/$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "deploy/check.sh: FAILED: cfn-lint reported errors or warnings in ${failed[*]} (listed above)" >&2
  exit 1
fi
echo "deploy-check: OK, 0 errors and 0 warnings in ${#templates[@]} templates"
