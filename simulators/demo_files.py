"""The demo's data folder: wiped at each start, filled with the configs shipped in `simulators/demo_data/`
(their `$placeholders` replaced by this run's ports and paths), and left behind for `linewarden collector report`.
"""

from __future__ import annotations

import secrets
import shutil
from importlib import resources
from pathlib import Path
from string import Template

from linewarden.errors import ConfigError

MARKER = ".linewarden-demo"  # only a folder holding this (or an empty one) is ever wiped
WEBHOOK_SECRET_FILE = "vendor-webhook.secret"
_SHIPPED = ("collector.toml", "agent.toml", "calendars/business-hours.toml", "contracts/acme-mes.toml",
            "contracts/integrator-plc.toml")


def shipped(name: str) -> str:
    """The text of one file of `simulators/demo_data/`."""
    return resources.files("simulators").joinpath("demo_data", name).read_text(encoding="utf-8")


def prepare(folder: Path) -> Path:
    """An empty demo folder at `folder` (absolute); ConfigError for a folder that holds something else."""
    folder = folder.expanduser().resolve()
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(str(folder), "--data-dir", "exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise ConfigError(
                str(folder), "--data-dir", "holds files of something else; the demo only wipes its own folders"
            )
        shutil.rmtree(folder)
    for sub in ("agent", "collector", "calendars", "contracts"):
        (folder / sub).mkdir(parents=True)
    (folder / MARKER).write_text("made by `linewarden demo`; wiped by its next run\n", encoding="utf-8")
    secret = folder / WEBHOOK_SECRET_FILE
    secret.write_text(secrets.token_hex(16), encoding="utf-8")
    secret.chmod(0o600)
    return folder


def write_configs(folder: Path, values: dict[str, str]) -> None:
    """Write the collector, agent, calendar and contract files into `folder` with `values` filled in."""
    values = {
        "agent_dir": (folder / "agent").as_posix(),
        "collector_dir": (folder / "collector").as_posix(),
        "secret_file": (folder / WEBHOOK_SECRET_FILE).as_posix(),
        **values,
    }
    for name in _SHIPPED:
        (folder / name).write_text(Template(shipped(name)).substitute(values), encoding="utf-8")
