#!/usr/bin/env bash
# Builds the two deliverables for Lambda's provided.al2023 runtime (Amazon Linux 2023), per architecture:
#   layer/dist/secretcache-layer-<arch>.zip   extensions/secretcache (mode 755), and secretcache-wrapper (mode 755),
#                                             the exec wrapper script (layer/secretcache-wrapper); nothing else
#   layer/dist/items-function-<arch>.zip      bootstrap (mode 755), and certs/database-ca.pem (mode 644) when
#                                             DATABASE_CA_BUNDLE names a PEM bundle of the database server's CAs
# then runs layer/check.sh on them, so a zip that Lambda would refuse to start never leaves this script. The
# binaries are also left in target/lambda/<arch>/{secretcache,items-function}/bootstrap (deploy/Dockerfile reads
# them there), and the layer unzipped in target/lambda/<arch>/layer/ (`make bench` runs its extensions/secretcache).
#
# DATABASE_CA_BUNDLE: the function finds certs/database-ca.pem under LAMBDA_TASK_ROOT by itself and then verifies the
# server (sslmode verify-full). We never ship a bundle of our own: for RDS, download AWS's from
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem (or the region's) and pass its path.
#
# Static binaries (the `*-unknown-linux-musl` targets): they load no shared library, so they run on any Linux of
# their architecture (every Lambda runtime, distroless or scratch images, an old ECS host) whatever its glibc, and a
# cold start skips the dynamic loader. Against the same code linked to glibc 2.34 (`make bench`; CHANGELOG.md,
# 2026-12): idle RSS 8.7 -> 6.6 MiB (glibc, libm and the loader each have pages resident in every process that
# maps them), registration 4.8 -> 3.2 ms after spawn; musl's allocator cost no measurable CPU per cache hit at 8 and
# 64 connections (the extension runs at most two workers).
#
# Why cargo-zigbuild with zig (both from PyPI, in the project's virtualenv): ring compiles C and assembly, so a cross
# build needs a C toolchain for the target; zig is one, for every target, musl included.
# Several architectures are built by one cargo run: the build scripts and proc macros (SQLite for sqlx's macros
# among them) are compiled once for all, and one architecture's long single-threaded link (fat LTO) overlaps the
# other's compilation, which on 2 CPUs saves minutes against one run per architecture.
#
# Code generation assumes the CPUs Lambda runs on, as cargo-lambda does by default: Haswell (AVX2, BMI2) on x86_64,
# Neoverse N1 (Graviton2) on arm64.
#
# PROFILE: the cargo profile, `release` (what ships: fat LTO) unless set. `make test` builds its zips with `ci`, the
# release profile's behaviour (no debug assertions or overflow checks, unwinding panics, stripped) without
# optimization: 4.6 min for both architectures on 2 CPUs, against 11 to 12.5 min with optimization and no LTO
# (Cargo.toml [profile.ci]). Optimization changes size and speed, not behaviour; `make reliability`, `make bench`
# and `make run` use the shipping profile.
#
# Usage: [DATABASE_CA_BUNDLE=path.pem] [PROFILE=release] bash layer/build.sh [x86_64] [arm64]
#        (x86_64 when none; VENV=.venv)
set -euo pipefail

bundle="${DATABASE_CA_BUNDLE:-}"
if [ -n "$bundle" ]; then
  # Checked before the 5-minute build, so a wrong path fails at once.
  if [ ! -f "$bundle" ]; then
    echo "layer/build.sh: DATABASE_CA_BUNDLE=$bundle is not a file" >&2
    exit 1
  fi
  if ! grep -q -- '-----BEGIN CERTIFICATE-----' "$bundle"; then
    echo "layer/build.sh: DATABASE_CA_BUNDLE=$bundle holds no PEM certificate" >&2
    exit 1
  fi
  if grep -q -- 'PRIVATE KEY-----' "$bundle"; then
    echo "layer/build.sh: DATABASE_CA_BUNDLE=$bundle holds a private key; it must hold CA certificates only" >&2
    exit 1
  fi
  case "$bundle" in /*) ;; *) bundle="$PWD/$bundle" ;; esac
fi

archs=("$@")
if [ ${#archs[@]} -eq 0 ]; then
  archs=(x86_64)
fi
triple_of() {
  case "$1" in
    x86_64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    *)
      echo "layer/build.sh: ARCH must be x86_64 or arm64, not '$1'" >&2
      return 2
      ;;
  esac
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
# cargo-zigbuild finds zig through `python3 -m ziglang`, so the virtualenv's python must come first.
export PATH="$venv/bin:$PATH"
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "layer/build.sh: cargo-zigbuild is not in $venv; run 'make venv' first (make package does)" >&2
  exit 1
fi

targets=()
for arch in "${archs[@]}"; do
  triple="$(triple_of "$arch")" || exit 2
  if ! rustup target list --installed | grep -qx "$triple"; then
    rustup target add "$triple"
  fi
  targets+=(--target "$triple")
done

profile="${PROFILE:-release}"
# The functions the extension runs, first and side by side in the shipped binaries (layer/hot-text/): what a process
# keeps resident of its code is the blocks of the file it touched, not the functions. Only the release profile: the
# lists name the release build's functions.
hot_text() {
  [ "$profile" = release ] || return 0
  # Passed under a name made of its content: cargo does not watch a linker script, and a new list must relink.
  local ld
  ld="$root/target/hot-text-$1-$(sha256sum "$root/layer/hot-text/$1.ld" | cut -c1-16).ld"
  mkdir -p "$root/target"
  cp "$root/layer/hot-text/$1.ld" "$ld"
  echo " -C link-arg=-Wl,-T,$ld"
}
for arch in "${archs[@]}"; do
  case "$arch" in
    x86_64) export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-cpu=haswell$(hot_text x86_64)" ;;
    arm64) export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-cpu=neoverse-n1$(hot_text arm64)" ;;
  esac
done
start=$(date +%s)
cargo zigbuild --profile "$profile" "${targets[@]}" -p secretcache -p items-function --bins
echo "layer/build.sh: compiled for ${archs[*]} (profile $profile) in $(($(date +%s) - start)) s"
for arch in "${archs[@]}"; do
  [ "$profile" = release ] || break
  # A list that no longer names the build's functions (a new toolchain or dependency renames them) would silently
  # give back the resident memory it saves: 2.5 MB of functions matched when it was written.
  hot_hex="$(readelf -SW "$root/target/$(triple_of "$arch")/release/secretcache" |
    sed -nE 's/.* \.text\.hot +PROGBITS +[0-9a-f]+ +[0-9a-f]+ +([0-9a-f]+) .*/\1/p')"
  hot_bytes=$((16#${hot_hex:-0}))
  echo "layer/build.sh: layer/hot-text/$arch.ld placed $((hot_bytes / 1024)) KiB of functions first"
  if [ "$hot_bytes" -lt $((1024 * 1024)) ]; then
    echo "layer/build.sh: layer/hot-text/$arch.ld matches few of this build's functions; run layer/hot-text/collect.sh" >&2
    exit 1
  fi
done

dist="$root/layer/dist"
mkdir -p "$dist"
stage=""
trap 'rm -rf "$stage"' EXIT
for arch in "${archs[@]}"; do
  triple="$(triple_of "$arch")"
  built="$root/target/$triple/$profile"
  out="$root/target/lambda/$arch"
  install -D -m 755 "$built/secretcache" "$out/secretcache/bootstrap"
  install -D -m 755 "$built/items-function" "$out/items-function/bootstrap"

  # The layer as Lambda extracts it into /opt, kept: the extension under the name Lambda gives it (its file name in
  # /opt/extensions), which `make bench` runs.
  layer="$out/layer"
  rm -rf "$layer"
  install -D -m 755 "$built/secretcache" "$layer/extensions/secretcache"
  install -m 755 "$root/layer/secretcache-wrapper" "$layer/secretcache-wrapper"
  stage="$(mktemp -d)"
  mkdir -p "$stage/function"
  install -m 755 "$out/items-function/bootstrap" "$stage/function/bootstrap"
  function_members=(bootstrap)
  if [ -n "$bundle" ]; then
    install -D -m 644 "$bundle" "$stage/function/certs/database-ca.pem"
    touch -d '2000-01-01 00:00:00 UTC' "$stage/function/certs/database-ca.pem"
    function_members+=(certs/database-ca.pem)
  fi

  # Reproducible zips: a fixed timestamp, no extra attributes (-X), no directory entries (-D). Lambda creates the
  # folders itself when it extracts a layer into /opt.
  layer_zip="$dist/secretcache-layer-$arch.zip"
  function_zip="$dist/items-function-$arch.zip"
  rm -f "$layer_zip" "$function_zip"
  touch -d '2000-01-01 00:00:00 UTC' "$layer/extensions/secretcache" "$layer/secretcache-wrapper" \
    "$stage/function/bootstrap"
  (cd "$layer" && zip -q -X -D -9 "$layer_zip" extensions/secretcache secretcache-wrapper)
  (cd "$stage/function" && zip -q -X -D -9 "$function_zip" "${function_members[@]}")
  rm -rf "$stage"

  bash "$root/layer/check.sh" "$arch" "$layer_zip" "$function_zip"
  for z in "$layer_zip" "$function_zip"; do
    echo "layer/build.sh: $(basename "$z"): $(stat -c %s "$z") bytes ($(du -h "$z" | cut -f1))"
  done
done
