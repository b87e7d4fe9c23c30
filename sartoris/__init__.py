"""Sartoris: git-based deploys to large fleets over SSH."""

__version__ = "0.1.0"
