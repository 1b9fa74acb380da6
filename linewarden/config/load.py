"""Read a TOML config file and validate it; the one module of the core that touches files.

Every failure becomes a ConfigError whose message names the file, the key path and what is wrong
(and the line, when TOML itself is malformed). The agent's models are msgspec Structs (`convert`); the
collector's own are pydantic models, and pydantic is imported only when one of those is validated.
"""

from __future__ import annotations

import re
import stat
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import msgspec

from linewarden.config.base import DURATION_EXAMPLES, dec_hook, schema_hook
from linewarden.config.struct_errors import parts, struct_problem
from linewarden.errors import ConfigError
from linewarden.timeutil import format_duration

if TYPE_CHECKING:
    from pydantic import ValidationError

T = TypeVar("T")
_LINE = re.compile(r"at line (\d+)")
# msgspec's message: "Expected `int` <= 65535 - at `$.targets[3].port`"
# A Struct inside a pydantic model (pydantic_base.BrokerField, SecretField) ends its message with its path.
_AT = re.compile(r"^(?P<problem>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
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
    """Render an error location as a TOML key path: `targets[2].port`.

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


@overload
def convert(model: type[T], data: Any) -> T: ...
@overload
def convert(model: Any, data: Any) -> Any: ...  # a union of Structs, e.g. TargetConfig


def convert(model: Any, data: Any) -> Any:
    """Build a Struct config model from TOML values. Raises msgspec.ValidationError; `validate` words it."""
    return msgspec.convert(data, model, dec_hook=dec_hook)


def _pydantic_problem(exc: ValidationError) -> tuple[tuple[int | str, ...], str]:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling; see `linewarden config schema`)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        inner = _AT.match(msg)
        if inner is not None:
            loc += parts(inner["path"])
            msg = inner["problem"]
    more = exc.error_count() - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return loc, msg


def validate(model: type[T], data: dict[str, Any], source: str) -> T:
    # No config value may hold NUL: file systems, zone names and databases all refuse it.
    nul = _nul_at(data)
    if nul is not None:
        raise ConfigError(source, _shown(key_path(nul, data)), "contains a NUL character")
    if issubclass(model, msgspec.Struct):
        try:
            return convert(model, data)
        except msgspec.ValidationError as exc:
            loc, problem = struct_problem(exc, model, data)
            raise ConfigError(source, _shown(key_path(loc, data)), problem) from None
    from pydantic import BaseModel, ValidationError

    try:
        return cast(T, cast(type[BaseModel], model).model_validate(data))
    except ValidationError as exc:
        loc, problem = _pydantic_problem(exc)
        raise ConfigError(source, _shown(key_path(loc, data)), problem) from None


def readable_defaults(node: Any) -> Any:
    """msgspec writes a duration's default in ISO 8601 ("PT5S"); the schema shows it as a file spells it."""
    if isinstance(node, list):
        return [readable_defaults(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: readable_defaults(v) for k, v in node.items()}
    if out.get("examples") == DURATION_EXAMPLES and isinstance(out.get("default"), str):
        out["default"] = format_duration(msgspec.convert(out["default"], timedelta))
    return out


def json_schema(model: type[Any]) -> dict[str, Any]:
    """The JSON Schema of a config model, Struct or pydantic."""
    if issubclass(model, msgspec.Struct):
        # The model itself at the root (msgspec puts a $ref there), the models it uses under $defs.
        _, defs = msgspec.json.schema_components([model], schema_hook=schema_hook)
        root = defs.pop(model.__name__)
        schema: dict[str, Any] = readable_defaults({**root, "$defs": defs})
        return schema
    from pydantic import BaseModel

    return cast(type[BaseModel], model).model_json_schema(mode="validation")


def load(model: type[T], path: Path | str) -> T:
    p = Path(path)
    return validate(model, read_toml(p), str(p))
