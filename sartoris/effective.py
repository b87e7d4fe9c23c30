"""`sartoris config`: every setting's effective value and where it came from (the file or the default)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sartoris.config import KNOWN_KEYS, Config


@dataclass(frozen=True, slots=True)
class Setting:
    """One key's effective value and its origin."""

    section: str
    key: str
    value: Any
    source: str

    def as_json(self) -> dict[str, Any]:
        return {"section": self.section, "key": self.key, "value": self.value, "source": self.source}


_LOCATIONS = {("deploy", "publish_url"), ("deploy", "fetch_url")}  # shown as runs use them (config.url_as_used)


def effective_settings(config: Config) -> list[Setting]:
    """Each known key with the value Sartoris will use: written in the file, or the built-in default; a relative
    publish or fetch path as the absolute one runs use, as the other paths are shown."""
    written = tomllib.loads(config.path.read_text(encoding="utf-8-sig"))  # as load_config read it
    sections = {"deploy": config.deploy, "fanout": config.fanout, "ssh": config.ssh, "depool": config.depool}
    settings = []
    for section, keys in KNOWN_KEYS.items():
        for key in keys:
            value = _plain(getattr(sections[section], key))
            if (section, key) in _LOCATIONS and isinstance(value, str):
                value = config.url_as_used(value)
            source = str(config.path) if key in written.get(section, {}) else "default"
            settings.append(Setting(section, key, value, source))
    return settings


def _plain(value: Any) -> Any:
    """A value as JSON and an operator would write it (paths as text, budgets as "5%", tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def render(settings: list[Setting], found_by: str) -> str:
    """The effective configuration as TOML-like text, each line saying whether the file set it."""
    lines = [f"# found by {found_by}"]
    section = ""
    for setting in settings:
        if setting.section != section:
            section = setting.section
            lines.append(f"\n[{section}]")
        origin = "# default" if setting.source == "default" else "# set in the file"
        if (setting.section, setting.key, setting.value) == ("deploy", "fetch_url", None):
            origin += ": the hosts fetch from publish_url"
        lines.append(f"{setting.key} = {_toml_value(setting.value)}  {origin}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)
