"""The config kinds `linewarden config` knows, and how to tell which kind a file is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linewarden.book import load_book
from linewarden.config.agent import AgentConfig
from linewarden.config.calendar import CalendarConfig
from linewarden.config.collector import CollectorConfig
from linewarden.config.contacts import ContactsConfig
from linewarden.config.contract import ContractConfig
from linewarden.config.load import read_toml, validate
from linewarden.errors import ConfigError
from linewarden.production import load_production_calendar

# Struct models (agent, calendar) and pydantic ones (the collector's).
KINDS: dict[str, type[Any]] = {
    "agent": AgentConfig,
    "collector": CollectorConfig,
    "contract": ContractConfig,
    "calendar": CalendarConfig,
    "contacts": ContactsConfig,
}
# The top-level table that marks each kind of file.
_MARKERS = {"agent": "agent", "collector": "collector", "contract": "contract", "calendar": "calendar",
            "contacts": "contact"}


def detect_kind(data: dict[str, Any]) -> str | None:
    """The kind named by the file's top-level table, or None when it is not one of ours."""
    found = [kind for kind, marker in _MARKERS.items() if marker in data]
    return found[0] if len(found) == 1 else None


def check_file(path: Path, kind: str | None = None) -> str:
    """Validate one config file of the core kinds; return its kind. Raises ConfigError. A contacts directory
    alone is checked for its own consistency; its calendars and rota gaps are checked with the collector config
    that names it."""
    data = read_toml(path)
    kind = kind or detect_kind(data)
    if kind is None:
        raise ConfigError(
            str(path), "", f"cannot tell the kind of file: expected one top-level table of [{'], ['.join(_MARKERS)}]"
        )
    config = validate(KINDS[kind], data, str(path))
    # Follow the files a config names, so a check finds what start-up would find.
    if isinstance(config, AgentConfig):
        load_production_calendar(config, path)
    elif isinstance(config, CollectorConfig):
        load_book(config, path)
    return kind
