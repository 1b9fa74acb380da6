"""The production calendar an agent config names, read from its file (relative to the agent config)."""

from __future__ import annotations

from pathlib import Path

from linewarden.calendar import Calendar
from linewarden.config.agent import AgentConfig
from linewarden.config.calendar import CalendarConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError


def load_production_calendar(cfg: AgentConfig, config_path: Path) -> Calendar | None:
    """The calendar file the agent config names (relative to it). Raises ConfigError naming the agent file."""
    rel = cfg.agent.production_calendar
    if rel is None:
        return None
    path = rel if rel.is_absolute() else config_path.parent / rel
    try:
        return Calendar.from_config(load(CalendarConfig, path).calendar)
    except ConfigError as exc:
        raise ConfigError(str(config_path), "agent.production_calendar", str(exc)) from None
