"""The pydantic side of base.py, for the collector's and the simulators' own config models.

The same parsing functions as the agent's Structs; a Struct they embed (a broker, a secret) is validated by
msgspec inside pydantic validation, and its errors keep their key path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema

from linewarden.config import base
from linewarden.config.load import convert, readable_defaults
from linewarden.config.struct_errors import struct_problem
from linewarden.limits import ID_PATTERN
from linewarden.timeutil import format_duration


class StrictModel(BaseModel):
    """Base of all pydantic config models: frozen, unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = Annotated[
    timedelta,
    BeforeValidator(base.to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "examples": base.DURATION_EXAMPLES}),
]
PositiveDuration = Annotated[Duration, BeforeValidator(lambda v: base.check_positive(base.to_duration(v)))]
TimeZoneName = Annotated[str, BeforeValidator(base.check_zone)]
ConfigId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


def _validator(kind: type[msgspec.Struct]) -> PlainValidator:
    def to_struct(value: Any) -> msgspec.Struct:
        if isinstance(value, kind):
            return value
        try:
            return convert(kind, value)
        except msgspec.ValidationError as exc:
            loc, problem = struct_problem(exc)
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
            # load.validate reads the path back into the key it reports
            raise ValueError(f"{problem} - at `${path}`" if path else problem) from None

    return PlainValidator(to_struct)


def _schema(kind: type[msgspec.Struct]) -> WithJsonSchema:
    """The Struct's JSON schema with its definitions inlined (pydantic's schema has its own `$defs`)."""
    (root,), defs = msgspec.json.schema_components([kind], schema_hook=base.schema_hook)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return WithJsonSchema(readable_defaults(inline(root)))


_BUILTINS = PlainSerializer(base.to_builtins)

BrokerField = Annotated[base.BrokerConfig, _validator(base.BrokerConfig), _BUILTINS, _schema(base.BrokerConfig)]
SecretField = Annotated[base.Secret, _validator(base.Secret), _BUILTINS, _schema(base.Secret)]
