#!/usr/bin/env python3
"""Builds the sample application the demo, the tests and the benchmark deploy: a slot working copy with
submodules whose .gitmodules URLs point at an unreachable upstream (as in production, where app servers
cannot reach Gerrit or GitHub). Standard library and the git CLI only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Sample Author",
    "GIT_AUTHOR_EMAIL": "author@sample.invalid",
    "GIT_COMMITTER_NAME": "Sample Author",
    "GIT_COMMITTER_EMAIL": "author@sample.invalid",
    "LC_ALL": "C",
}
UNREACHABLE_UPSTREAM = "https://gerrit.invalid/r/extensions"


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a fixed identity; its stdout, stripped."""
    done = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args],
        cwd=cwd, env=_ENV, check=True, capture_output=True, text=True, timeout=120,
    )
    return done.stdout.strip()


def _write_files(root: Path, count: int, label: str) -> None:
    for index in range(count):
        path = root / f"includes/dir{index % 20:02d}/file{index:04d}.php"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<?php\n// {label} file {index}\nfunction f{index}() {{ return {index}; }}\n")


def make_upstream(path: Path, files: int, label: str) -> Path:
    """A small repository standing for a submodule's upstream (an extension)."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    _write_files(path, files, label)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--message", f"{label}: initial import")
    return path


def make_checkout(
    root: Path, slot: int = 0, *, files: int = 200, submodules: int = 2, submodule_files: int = 20,
    slot_prefix: str = "php-slot",
) -> Path:
    """`<root>/<slot_prefix><slot>`: a committed working copy with `submodules` extensions under extensions/."""
    checkout = root / f"{slot_prefix}{slot}"
    checkout.mkdir(parents=True)
    git(checkout, "init", "--quiet", "--initial-branch=main")
    _write_files(checkout, files, "core")
    (checkout / "index.php").write_text("<?php\necho 'release 1';\n")
    git(checkout, "add", "--all")
    git(checkout, "commit", "--quiet", "--message", "core: initial import")
    for index in range(submodules):
        name = f"Ext{index}"
        upstream = make_upstream(root / "upstream" / f"slot{slot}-{name}", submodule_files, name)
        git(checkout, "submodule", "--quiet", "add", "--name", name, str(upstream), f"extensions/{name}")
        # Point .gitmodules at an upstream no app server can reach: hosts must get objects from us.
        git(checkout, "config", "--file", ".gitmodules", f"submodule.{name}.url", f"{UNREACHABLE_UPSTREAM}/{name}.git")
    if submodules:
        git(checkout, "add", ".gitmodules")
        git(checkout, "commit", "--quiet", "--message", "extensions: add submodules")
    return checkout


def add_submodule(repo: Path, upstream: Path, name: str, path: str) -> None:
    """Add `upstream` as submodule `name` at `path` of `repo` and commit; .gitmodules records an unreachable URL."""
    git(repo, "submodule", "--quiet", "add", "--name", name, str(upstream), path)
    git(repo, "config", "--file", ".gitmodules", f"submodule.{name}.url", f"{UNREACHABLE_UPSTREAM}/{name}.git")
    git(repo, "add", ".gitmodules")
    git(repo, "commit", "--quiet", "--message", f"add {name}")


def add_nested_submodules(checkout: Path, upstreams: Path) -> tuple[str, str]:
    """Give the app extensions/Skin, which has its own submodule lib/Icons; both initialised here (the deploy host
    reaches the upstreams). Returns the two submodules' paths in the app."""
    icons = make_upstream(upstreams / "Icons", 3, "Icons")
    skin = make_upstream(upstreams / "Skin", 3, "Skin")
    add_submodule(skin, icons, "Icons", "lib/Icons")
    add_submodule(checkout, skin, "Skin", "extensions/Skin")
    nested = checkout / "extensions/Skin"
    git(nested, "submodule", "--quiet", "init")
    git(nested, "config", "submodule.Icons.url", str(icons))
    git(nested, "submodule", "--quiet", "update")
    return "extensions/Skin", "extensions/Skin/lib/Icons"


def commit_change(checkout: Path, relative: str, content: str, message: str = "change") -> str:
    """Change one file (inside a submodule too: its commit is then recorded in the superproject); the new HEAD."""
    path = checkout / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    owner = checkout
    for parent in path.parents:
        if parent == checkout:
            break
        if (parent / ".git").exists():
            owner = parent
            break
    git(owner, "add", str(path.relative_to(owner)))
    git(owner, "commit", "--quiet", "--message", message)
    if owner != checkout:
        git(checkout, "add", str(owner.relative_to(checkout)))
        git(checkout, "commit", "--quiet", "--message", f"bump {owner.name}: {message}")
    return git(checkout, "rev-parse", "HEAD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="folder that will hold <slot_prefix>N")
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--submodules", type=int, default=2)
    args = parser.parse_args()
    print(make_checkout(args.root, args.slot, files=args.files, submodules=args.submodules))


if __name__ == "__main__":
    main()
