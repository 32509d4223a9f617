#!/usr/bin/env python3
"""What the scripts need to know about the Cargo workspace, read from `cargo metadata` so that
no script keeps a list of its own.

  scripts/workspace.py functions           the Lambda functions (the members under functions/),
                                           one package name a line; each package's one binary
                                           has the package's name
  scripts/workspace.py check-rust-version  fails when a locked dependency declares a
                                           rust-version above the workspace's (Cargo.toml)
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metadata(*args):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", *args],
        cwd=ROOT, check=True, stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def members(meta):
    ids = set(meta["workspace_members"])
    return [p for p in meta["packages"] if p["id"] in ids]


def functions():
    meta = metadata("--no-deps")
    base = os.path.join(meta["workspace_root"], "functions") + os.sep
    names = []
    for package in members(meta):
        if not package["manifest_path"].startswith(base):
            continue
        bins = [t["name"] for t in package["targets"] if "bin" in t["kind"]]
        if bins != [package["name"]]:
            sys.exit(f"{package['name']}: a function is one binary named like its package, found {bins}")
        names.append(package["name"])
    if not names:
        sys.exit("no workspace member under functions/")
    print("\n".join(sorted(names)))


def version(text):
    """`1.94` and `1.94.0` are the same version: compare three numbers."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def check_rust_version():
    meta = metadata()
    ours = {p["rust_version"] for p in members(meta)}
    if None in ours or len(ours) != 1:
        sys.exit(f"every member inherits one rust-version from the workspace; found {sorted(map(str, ours))}")
    ours = ours.pop()
    ids = set(meta["workspace_members"])
    declared = [(version(p["rust_version"]), p["rust_version"], f"{p['name']} {p['version']}")
                for p in meta["packages"] if p["id"] not in ids and p.get("rust_version")]
    above = sorted(d for d in declared if d[0] > version(ours))
    if above:
        for _, rust_version, package in above:
            print(f"{package} declares rust-version {rust_version}", file=sys.stderr)
        sys.exit(f"rust-version {ours} (Cargo.toml) is below what {len(above)} locked dependencies "
                 "declare: raise it to the highest above")
    top = max(declared)[0]
    at_top = sorted(package for v, _, package in declared if v == top)
    print(f"rust-version {ours}: no locked dependency declares more (the highest, "
          f"{'.'.join(map(str, top))}: {at_top[0]} and {len(at_top) - 1} others)")


COMMANDS = {"functions": functions, "check-rust-version": check_rust_version}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]]()
