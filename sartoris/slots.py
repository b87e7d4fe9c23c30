"""Slots on the deploy host: which one the operator means, what each holds, and the version links
(`php-1.20wmf1 -> php-slot0`) that name them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sartoris.config import Config, folder_configs, load_config, logical_folder
from sartoris.errors import SartorisError, StateError, UsageError

_LINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")  # fullmatch; a file name fits


def infer_slot(config: Config, cwd: Path, pwd: str | None = None) -> int:
    """The slot whose working copy (or a version link to it) holds `cwd`; the only slot when there is one."""
    here = slot_at(config, cwd, pwd)
    if here is not None:
        return here
    root = config.deploy.checkout_root
    other = _another_project(config, cwd, pwd)
    if other is not None:  # --config, $SARTORIS_CONFIG or git config chose this project; the folder is another's
        where, unreadable = other
        said = f"names a config that cannot be read ({where})" if unreadable else f"is in another project ({where})"
        raise UsageError(
            f"--slot not given and {cwd} {said}, not in a slot of {root} (the config in use is {config.path});"
            " pass --slot N"
        )
    existing = sorted(slot for slot, _ in _slot_folders(config))
    if len(existing) == 1:
        return existing[0]
    raise UsageError(f"--slot not given and {cwd} is not inside a slot of {root}; pass --slot N")


def _another_project(config: Config, cwd: Path, pwd: str | None) -> tuple[Path, bool] | None:
    """A config the folder `cwd` names by itself (config.folder_configs: its repository's git config, its nearest
    sartoris.toml) for another project than `config`'s, which holds `cwd` in one of its slots, or whose slots
    cannot be placed (a `{slot}` checkout_root: the folder is under its config, or in its repository): the
    fallback to `config`'s only slot must not take that project's folder for this one's (it deployed the wrong
    code). Another config of the same slots (checkout_root, however spelt, and slot_prefix: one config per
    datacenter, say) is the same project. A config that cannot be read (being edited) may be another project's:
    it is returned too, marked unreadable (True), as the fallback cannot tell."""
    environ = {**os.environ, **({"PWD": pwd} if pwd is not None else {})}
    for other in folder_configs(cwd, environ):
        if other.resolve() == config.path.resolve():
            continue
        said = Path(os.path.normpath(other))  # git config's may be relative (`../../parsoid.toml`)
        try:
            theirs = load_config(other)
        except (SartorisError, OSError):
            return said, True
        if _same_slots(theirs, config):
            continue
        if "{slot}" in str(theirs.deploy.checkout_root) or slot_at(theirs, cwd, pwd) is not None:
            return said, False
    return None


def _same_slots(one: Config, other: Config) -> bool:
    """Whether two configs name the same slot folders: one checkout_root (links and `..` resolved) and prefix."""
    if one.deploy.slot_prefix != other.deploy.slot_prefix:
        return False
    return one.deploy.checkout_root.resolve() == other.deploy.checkout_root.resolve()


def slot_at(config: Config, cwd: Path, pwd: str | None = None) -> int | None:
    """The slot whose working copy (or a version link to it) holds `cwd`, or None.

    `pwd` is the shell's $PWD, which keeps the version link's name when the operator `cd`ed through one; it is
    trusted only when it is the same folder as `cwd` (a script may start Sartoris elsewhere with a stale $PWD).
    """
    for folder, root in _where_we_are(config.deploy.checkout_root, cwd, pwd):
        try:
            first = folder.relative_to(root).parts[:1]
        except ValueError:
            continue
        if not first:
            continue
        slot = _named_slot(config, root / first[0])
        if slot is not None:
            return slot
    return None


_MAX_HOPS = 40  # links followed from a version link to its slot, as the kernel's own limit


def _named_slot(config: Config, entry: Path) -> int | None:
    """The slot an entry of checkout_root names: a slot folder by its name (a link to a folder elsewhere too), a
    version link by the links it leads through in checkout_root (php-chain -> php-1.20wmf1 -> php-slot0 names
    slot 0). None for anything else: a link that leaves checkout_root before reaching a slot's name
    (php-other -> /elsewhere/php-slot0 is not this deploy host's slot 0), a loop, an unreadable link."""
    root = entry.parent
    for _ in range(_MAX_HOPS):
        slot = config.slot_of(entry.name)
        if slot is not None or not entry.is_symlink():
            return slot
        try:
            target = Path(os.path.normpath(root / os.readlink(entry)))
        except OSError:
            return None
        if not _same_folder(target.parent, root):
            return None
        entry = root / target.name
    return None


def _same_folder(one: Path, other: Path) -> bool:
    """Whether two paths name the same folder (one may be written through links); False when either is gone."""
    try:
        return one == other or os.path.samefile(one, other)
    except OSError:
        return False


def _where_we_are(root: Path, cwd: Path, pwd: str | None) -> list[tuple[Path, Path]]:
    """(folder, checkout_root) pairs to compare: the logical path (through links, `..` folded) when $PWD is
    really `cwd`, then both with every link resolved."""
    pairs = []
    if (logical := logical_folder(cwd, pwd)) is not None:
        pairs.append((logical, Path(os.path.normpath(root))))
    pairs.append((cwd.resolve(), root.resolve()))
    return pairs


def _slot_folders(config: Config) -> list[tuple[int, Path]]:
    root = config.deploy.checkout_root
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    # a slot folder may be a link to a working copy elsewhere (php-slot0 -> /data/php-slot0)
    return [(slot, p) for p in entries if (slot := config.slot_of(p.name)) is not None and p.is_dir()]


def refuse_an_unknown_slot(config: Config, slot: int, in_history: bool) -> None:
    """Bad input (exit 2) when this deploy host knows nothing of `slot`: no working copy, and not `in_history` (the
    caller's test of its rows). A typo of a slot number is then said, not answered as a fleet or a history that
    lacks it."""
    if not config.checkout_path(slot).is_dir() and not in_history:
        raise UsageError(
            f"slot {slot} is unknown here: no working copy at {config.checkout_path(slot)} and no deploy of it in the"
            " history (`sartoris slots` lists the slots)"
        )


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """One slot's working copy on the deploy host, its last deployed tag and the version links naming it."""

    slot: int
    path: Path
    tag: str | None
    links: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"slot": self.slot, "path": str(self.path), "tag": self.tag, "links": list(self.links)}


def list_slots(config: Config, last_tags: dict[int, str]) -> list[SlotInfo]:
    """Every slot folder under checkout_root with the links in checkout_root that point at it."""
    root = config.deploy.checkout_root
    links: dict[int, list[str]] = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        # php-chain -> php-1.20wmf1 -> php-slot1 names slot 1 too
        if entry.is_symlink() and config.slot_of(entry.name) is None:
            slot = _named_slot(config, entry)
            if slot is not None:
                links.setdefault(slot, []).append(entry.name)
    return [
        SlotInfo(slot, path, last_tags.get(slot), tuple(links.get(slot, ()))) for slot, path in _slot_folders(config)
    ]


@dataclass(frozen=True, slots=True)
class VersionLink:
    """A version link `slots link` made or moved, and the slot it named before (None: it is new, or named this
    slot already): moving a link that web servers follow to another slot is said, never done silently."""

    path: Path
    moved_from: int | None


def link_slot(config: Config, slot: int, name: str) -> VersionLink:
    """Create or move `name -> <slot_prefix>N` in checkout_root atomically (a new link renamed over the old)."""
    if config.looks_like_a_slot(name):
        raise UsageError(f"version link name {name!r} must be a plain name like php-1.20wmf1, not a slot name")
    if not _LINK_NAME.fullmatch(name):
        raise UsageError(
            f"version link name {name!r} must be a plain name like php-1.20wmf1: letters, digits and . _ + -,"
            " starting with a letter or digit"
        )
    root = config.deploy.checkout_root
    target = config.slot_name(slot)
    if not (root / target).is_dir():
        raise UsageError(f"slot {slot} has no working copy at {root / target}")
    link, before = root / name, None
    if link.is_symlink():
        before = _named_slot(config, link)
        if before is None:
            pointed = _followed(link)
            raise UsageError(f"{link} points at {pointed or 'a link loop'}, not at a slot; refusing to replace it")
    elif link.exists():
        raise UsageError(f"{link} exists and is not a version link; refusing to replace it")
    temporary = root / f".{name}.sartoris-new"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as exc:
        raise StateError(f"cannot link {link} -> {target}: {exc.strerror or exc}") from None
    return VersionLink(link, before if before != slot else None)


def _followed(link: Path) -> Path | None:
    """Where a link ends, all links followed; None for a loop (Python 3.11 raises there) or an unreadable one."""
    try:
        return link.resolve()
    except (RuntimeError, OSError):
        return None
