"""Which slot the operator means: `--slot`, else the slot of the current folder (through version links)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sartoris.config import Config
from sartoris.errors import UsageError


def slot_of_name(name: str, prefix: str) -> int | None:
    """3 for `php-slot3`, None for anything else."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", name)
    return int(match.group(1)) if match else None


def infer_slot(config: Config, cwd: Path) -> int:
    """The slot whose working copy (or a version link to it) holds `cwd`; the only slot when there is one."""
    root = config.deploy.checkout_root
    prefix = config.deploy.slot_prefix
    logical = Path(os.environ.get("PWD", cwd))
    for folder in (logical, cwd.resolve()):
        try:
            first = folder.relative_to(root).parts[:1]
        except ValueError:
            continue
        if not first:
            continue
        entry = root / first[0]
        target = Path(os.readlink(entry)).name if entry.is_symlink() else entry.name
        slot = slot_of_name(target, prefix)
        if slot is not None:
            return slot
    existing = sorted(s for p in _children(root) if (s := slot_of_name(p.name, prefix)) is not None)
    if len(existing) == 1:
        return existing[0]
    raise UsageError(f"--slot not given and {cwd} is not inside a slot of {root}; pass --slot N")


def _children(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
