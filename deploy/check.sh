#!/usr/bin/env bash
# Validates the CloudFormation templates in deploy/ offline with cfn-lint from the project's virtualenv
# (`make deploy-check`, part of `make test`): template.yaml (the SAM stack) and ecs-sidecar.yaml (the ECS sidecar
# example). Any error or warning fails; informational findings are not enabled. Then deploy/k8s-sidecar.yaml against
# the Kubernetes 1.29 API schema (the first release with native sidecars on by default), strictly: an unknown field
# fails. tests/tests/deploy_*.rs check what the files mean; this checks that AWS and Kubernetes would accept them.
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
k8s_validate="$venv/bin/kubernetes-validate"

for tool in "$cfn_lint" "$k8s_validate"; do
  if [ ! -x "$tool" ]; then
    {
      echo "deploy/check.sh: FAILED: $(basename "$tool") is not installed in the virtualenv $venv"
      echo "  expected an executable at $tool"
      echo "  run 'make venv' (it installs the pinned version there), or point VENV at a virtualenv that has it"
    } >&2
    exit 1
  fi
done

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

if ! "$k8s_validate" --strict --kubernetes-version 1.29.0 "$root/deploy/k8s-sidecar.yaml"; then
  echo "deploy/check.sh: FAILED: deploy/k8s-sidecar.yaml does not validate against Kubernetes 1.29 (above)" >&2
  exit 1
fi
echo "deploy-check: OK, deploy/k8s-sidecar.yaml validates against Kubernetes 1.29"
