"""Tests for the deploy history's listing: one slot's view keeps the fleet-wide pool changes."""

from __future__ import annotations

from pathlib import Path

from sartoris.state import History


def test_one_slots_history_keeps_pool_changes_and_drops_other_slots(tmp_path: Path) -> None:
    """One slot's history keeps the fleet-wide pool changes (they belong to no slot) and drops other slots' events."""
    history = History(tmp_path)
    history.record_event("start", 0, "train 0")
    history.record_event("start", 1, "train 1")
    history.record_event("depool", None, "by hand")
    history.record_event("finish", 1, "train 1")
    assert [(e.action, e.slot) for e in history.entries(1)] == [("finish", 1), ("depool", None), ("start", 1)]
    assert len(history.entries()) == 4
    assert [e.action for e in history.entries(0, limit=1)] == ["depool"]
