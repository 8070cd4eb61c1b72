#!/usr/bin/env python3
"""Fails when a locked dependency needs a newer Rust than the workspace declares.

`rust-version` in the root Cargo.toml is a promise: "this builds with Rust X". Cargo checks our own crates against it
only when someone runs that old compiler, and nobody here does (rust-toolchain.toml pins a newer one). So this reads
`cargo metadata --locked` and compares the declared `rust-version` of every workspace member with the highest
`rust-version` of any locked crate (every platform's, as Cargo.lock holds them). Run by `make lint`.
"""

import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    metadata = json.loads(out)
    members = set(metadata["workspace_members"])
    ours = [p for p in metadata["packages"] if p["id"] in members]
    locked = [p for p in metadata["packages"] if p["id"] not in members and p.get("rust_version")]
    if not locked:
        print("check-rust-version: no locked crate declares a rust-version; nothing to compare")
        return 0
    needed = max(locked, key=lambda p: version(p["rust_version"]))
    failures = []
    for p in ours:
        declared = p.get("rust_version")
        if declared is None:
            failures.append(f"{p['name']} declares no rust-version (use rust-version.workspace = true)")
        elif version(declared) < version(needed["rust_version"]):
            failures.append(
                f"{p['name']} declares rust-version {declared}, but the locked {needed['name']} "
                f"{needed['version']} needs {needed['rust_version']}"
            )
    if failures:
        for f in failures:
            print(f"check-rust-version: {f}", file=sys.stderr)
        print(
            "check-rust-version: raise rust-version in the root Cargo.toml to the highest one the lockfile needs",
            file=sys.stderr,
        )
        return 1
    print(
        f"check-rust-version: every member declares at least {needed['rust_version']} "
        f"(the most any locked crate needs: {needed['name']} {needed['version']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
