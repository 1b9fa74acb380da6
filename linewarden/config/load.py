"""Read a TOML config file and validate it; the one module of the core that touches files.

Every failure becomes a ConfigError whose message names the file, the key path and what is wrong
(and the line, when TOML itself is malformed).
"""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from linewarden.errors import ConfigError

T = TypeVar("T", bound=BaseModel)
_LINE = re.compile(r"at line (\d+)")
MAX_CONFIG_BYTES = 1024 * 1024


def _shown(text: str) -> str:
    """A file name or key as it can be printed on one line."""
    return text.replace("\x00", "\\x00").replace("\n", "\\n")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one config file: a regular file of at most MAX_CONFIG_BYTES of UTF-8 TOML."""
    name = _shown(str(path))
    try:
        # stat first: opening a FIFO would block, and a device (/dev/zero) never ends
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigError(name, "", "not a regular file")
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(name, "", f"cannot read: {exc.strerror}") from None
    except ValueError:  # what pathlib raises for a NUL in the path
        raise ConfigError(name, "", "the path contains a NUL character") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(name, "", f"larger than {MAX_CONFIG_BYTES} bytes: not a config file")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(name, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        m = _LINE.search(str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError(name, "", f"invalid TOML: {_shown(str(exc))}", line=line) from None


def _nul_at(node: Any, loc: tuple[int | str, ...] = ()) -> tuple[int | str, ...] | None:
    """Where the first key or string holding a NUL character is, if any."""
    if isinstance(node, str):
        return loc if "\x00" in node else None
    items: list[tuple[int | str, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, value in items:
        if isinstance(key, str) and "\x00" in key:
            return (*loc, key)
        found = _nul_at(value, (*loc, key))
        if found is not None:
            return found
    return None


def key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic error location as a TOML key path: `targets[2].port`.

    Discriminated unions add the tag to the location (`targets.2.modbus.port`); drop it.
    """
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node:
            tags = {v for v in node.values() if isinstance(v, str)}
            if part in tags or part.startswith("function-"):
                continue
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out


def validate(model: type[T], data: dict[str, Any], source: str) -> T:
    # No config value may hold NUL: file systems, zone names and databases all refuse it.
    nul = _nul_at(data)
    if nul is not None:
        raise ConfigError(source, _shown(key_path(nul, data)), "contains a NUL character")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _shown(key_path(tuple(err["loc"]), data))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see `linewarden config schema`)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        more = exc.error_count() - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(source, key, msg) from None


def load(model: type[T], path: Path | str) -> T:
    p = Path(path)
    return validate(model, read_toml(p), str(p))
