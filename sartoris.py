#!/usr/bin/env python3
"""Launcher: `python sartoris.py …` from a checkout, and the zipapp's entry point."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sartoris.launch import run  # noqa: E402

if __name__ == "__main__":
    run()
