"""Read a TOML config file and validate it; the one module of the core that touches files.

Every failure becomes a ConfigError whose message names the file, the key path and what is wrong
(and the line, when TOML itself is malformed).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from linewarden.errors import ConfigError

T = TypeVar("T", bound=BaseModel)
_LINE = re.compile(r"at line (\d+)")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        m = _LINE.search(str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError(str(path), "", f"invalid TOML: {exc}", line=line) from None


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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = key_path(tuple(err["loc"]), data)
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
