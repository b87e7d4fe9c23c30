"""Shared test set-up: the project's scripts/ folder is importable (fleet, sample_repo)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))


@pytest.fixture
def cli_main() -> Iterator[Callable[[list[str]], int]]:
    """`sartoris.cli.main`, run in this process, then its logging set-up undone: main configures structlog to cache
    each module's logger on first use, and a cached logger would ignore a later test's capture_logs."""
    import structlog

    from sartoris import cli

    yield cli.main
    structlog.reset_defaults()
    for module in [m for name, m in sys.modules.items() if name.startswith("sartoris.")]:
        if isinstance(getattr(module, "log", None), structlog._config.BoundLoggerLazyProxy):
            module.log = structlog.get_logger("sartoris")
