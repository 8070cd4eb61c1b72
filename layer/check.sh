#!/usr/bin/env bash
# Fails when a zip would not run on Lambda's provided.al2023 for <arch>:
# - the zip holds exactly the expected members, each with mode 755 (the layer: extensions/secretcache and the exec
#   wrapper script secretcache-wrapper; the function: bootstrap); anything else in a layer lands in every function's
#   /opt. The function zip may also hold the database's CA bundle, certs/database-ca.pem (make package
#   DATABASE_CA_BUNDLE=...): PEM certificates only, no key;
# - the wrapper script is layer/secretcache-wrapper byte for byte, a /bin/sh script that sh parses, and it starts the
#   layer's own binary (`<layer>/extensions/secretcache exec --`);
# - the member is a 64-bit ELF for <arch> (the ELF header's machine, which is what the kernel checks);
# - it is statically linked: no program interpreter and no shared library needed, so nothing on the runtime's
#   image (its glibc version, an OpenSSL) decides whether it starts. A dynamic binary fails only when Lambda first
#   starts it ("version `GLIBC_2.35' not found", "libssl.so.3: cannot open shared object file").
#
# Usage: bash layer/check.sh <x86_64|arm64> <layer.zip> <function.zip>
set -euo pipefail

arch="$1" layer_zip="$2" function_zip="$3"
case "$arch" in
  x86_64) machine='Advanced Micro Devices X86-64' ;;
  arm64) machine='AArch64' ;;
  *)
    echo "layer/check.sh: unknown arch '$arch'" >&2
    exit 2
    ;;
esac
failed=0
fail() {
  echo "layer/check.sh: FAIL: $*" >&2
  failed=1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# mode_of <zip> <member>: its Unix mode as zipinfo shows it (-rwxr-xr-x).
mode_of() {
  zipinfo -l "$1" "$2" 2>/dev/null | awk -v m="$2" '$NF == m {print $1}'
}

# check_script <zip> <member> <binary member>: the exec wrapper script is ours, runs under sh, and starts <binary>.
check_script() {
  local zip="$1" member="$2" binary="$3" script="$work/script"
  local mode
  mode="$(mode_of "$zip" "$member")"
  if [ "$mode" != "-rwxr-xr-x" ]; then
    fail "$member in $zip has mode '$mode', not -rwxr-xr-x (755)"
  fi
  unzip -p "$zip" "$member" >"$script"
  if ! cmp -s "$script" "$here/$member"; then
    fail "$member in $zip is not layer/$member"
  fi
  if [ "$(head -n1 "$script")" != '#!/bin/sh' ]; then
    fail "$member in $zip does not start with #!/bin/sh (the only shell every runtime has)"
  fi
  if ! sh -n "$script"; then
    fail "$member in $zip does not parse as a sh script"
  fi
  if ! grep -q "^exec \"\$layer/$binary\" exec -- \"\$@\"\$" "$script"; then
    fail "$member in $zip does not exec the layer's $binary"
  fi
}

bundle_member=certs/database-ca.pem

# check_bundle <zip>: the CA bundle, when the function zip has one, is certificates and nothing else.
check_bundle() {
  local zip="$1" pem="$work/bundle.pem"
  unzip -p "$zip" "$bundle_member" >"$pem"
  local certs
  certs="$(grep -c -- '-----BEGIN CERTIFICATE-----' "$pem" || true)"
  if [ "${certs:-0}" -lt 1 ]; then
    fail "$bundle_member in $zip holds no PEM certificate"
  fi
  if grep -q -- 'PRIVATE KEY-----' "$pem"; then
    fail "$bundle_member in $zip holds a private key"
  fi
  if command -v openssl >/dev/null 2>&1 && ! openssl x509 -in "$pem" -noout 2>/dev/null; then
    fail "$bundle_member in $zip does not parse as an X.509 certificate"
  fi
  if [ "$failed" = 0 ]; then
    echo "layer/check.sh: ok: $(basename "$zip"): $bundle_member, $certs certificate(s)"
  fi
}

# check <zip> <binary member> [optional extra member] [script member]
check() {
  local zip="$1" member="$2" optional="${3:-}" script="${4:-}" before="$failed"
  failed=0
  if [ ! -f "$zip" ]; then
    fail "$zip is missing"
    return
  fi
  local members expected
  members="$(zipinfo -1 "$zip" | sort)"
  expected="$(printf '%s\n' "$member" ${script:+"$script"} | sort)"
  if [ "$members" != "$expected" ] && { [ -z "$optional" ] ||
    [ "$members" != "$(printf '%s\n' "$member" ${script:+"$script"} "$optional" | sort)" ]; }; then
    fail "$zip must hold exactly '$(echo "$expected" | paste -sd' ')'${optional:+ (and optionally '$optional')}, but holds: $(echo "$members" | tr '\n' ' ')"
  fi
  if [ -n "$optional" ] && grep -qx "$optional" <<<"$members"; then
    check_bundle "$zip"
  fi
  if [ -n "$script" ] && grep -qx "$script" <<<"$members"; then
    check_script "$zip" "$script" "$member"
  fi
  local mode
  mode="$(mode_of "$zip" "$member")"
  if [ "$mode" != "-rwxr-xr-x" ]; then
    fail "$member in $zip has mode '$mode', not -rwxr-xr-x (755)"
  fi
  local bin="$work/$(basename "$zip").bin"
  unzip -p "$zip" "$member" >"$bin"

  local header
  header="$(readelf -h "$bin" 2>/dev/null || true)"
  if ! grep -q 'Class:[[:space:]]*ELF64' <<<"$header"; then
    fail "$member in $zip is not a 64-bit ELF binary ($(file -b "$bin"))"
    return
  fi
  local got
  got="$(awk -F: '/Machine:/ {gsub(/^[ \t]+/, "", $2); print $2}' <<<"$header")"
  if [ "$got" != "$machine" ]; then
    fail "$member in $zip is built for '$got', not $arch ($machine)"
  fi

  # A program header INTERP names the dynamic loader; a dynamic section's NEEDED entries name the libraries.
  if readelf -l --wide "$bin" | grep -q '^[[:space:]]*INTERP'; then
    fail "$member in $zip is dynamically linked (it has a program interpreter); build it for *-unknown-linux-musl"
  fi
  local lib
  for lib in $(readelf -d "$bin" | awk '/\(NEEDED\)/ {gsub(/[][]/, "", $NF); print $NF}'); do
    fail "$member in $zip needs the shared library $lib"
  done
  if [ "$failed" = 0 ]; then
    echo "layer/check.sh: ok: $(basename "$zip"): $member, $arch, static, mode 755${script:+; $script, mode 755}"
  fi
  failed=$((failed | before))
}

check "$layer_zip" extensions/secretcache "" secretcache-wrapper
check "$function_zip" bootstrap "$bundle_member"
exit "$failed"
