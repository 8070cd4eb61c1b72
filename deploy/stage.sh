#!/usr/bin/env bash
# Stages the zips built by `make package` for one architecture where deploy/template.yaml expects them:
#   layer/dist/secretcache-layer-<arch>.zip -> deploy/artifacts/secretcache-layer.zip
#   layer/dist/items-function-<arch>.zip    -> deploy/artifacts/items-function.zip
# SAM cannot put a parameter into a local CodeUri, so the template names fixed paths and this script makes sure the
# staged binaries really are for <arch>: a layer built for one architecture on a function of the other only fails
# when Lambda first starts it.
#
# Usage: bash deploy/stage.sh x86_64|arm64   (then deploy with --parameter-overrides Architecture=<same arch>)
set -euo pipefail

arch="${1:-}"
case "$arch" in
  x86_64 | arm64) ;;
  *)
    echo "usage: bash deploy/stage.sh x86_64|arm64" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/deploy/artifacts"
mkdir -p "$out"

layer="$root/layer/dist/secretcache-layer-$arch.zip"
function="$root/layer/dist/items-function-$arch.zip"

# check <zip> <member that must be an executable 64-bit ELF for $arch>
check() {
  local src="$1" member="$2"
  if [ ! -f "$src" ]; then
    echo "deploy/stage.sh: $src is missing; build it first with: make package ARCH=$arch" >&2
    exit 1
  fi
  python3 - "$src" "$member" "$arch" <<'EOF'
import stat, struct, sys, zipfile

path, member, arch = sys.argv[1:]
want = {"x86_64": 62, "arm64": 183}[arch]  # ELF e_machine: EM_X86_64, EM_AARCH64
names = {62: "x86_64", 183: "arm64"}
with zipfile.ZipFile(path) as z:
    try:
        info = z.getinfo(member)
    except KeyError:
        sys.exit(f"deploy/stage.sh: {path} does not contain {member}")
    head = z.open(info).read(20)
mode = info.external_attr >> 16
if head[:4] != b"\x7fELF" or head[4] != 2:
    sys.exit(f"deploy/stage.sh: {member} in {path} is not a 64-bit ELF binary")
machine = struct.unpack("<H", head[18:20])[0]
if machine != want:
    sys.exit(f"deploy/stage.sh: {member} in {path} is built for {names.get(machine, machine)}, not {arch}")
if mode and not mode & stat.S_IXUSR:
    sys.exit(f"deploy/stage.sh: {member} in {path} is not executable (mode {oct(mode & 0o777)})")
EOF
}

# Check both before touching deploy/artifacts, so a failure never leaves a mix of two architectures staged.
check "$layer" extensions/secretcache
check "$function" bootstrap
rm -f "$out/secretcache-layer.zip" "$out/items-function.zip"
cp "$layer" "$out/secretcache-layer.zip"
cp "$function" "$out/items-function.zip"
echo "staged for $arch: deploy/artifacts/secretcache-layer.zip, deploy/artifacts/items-function.zip"
echo "deploy with: --parameter-overrides Architecture=$arch ..."
