"""Typed decoding of raw Modbus registers: 16/32-bit integers and IEEE floats with byte and word order.

Done with `struct` rather than pymodbus's `convert_from_registers`, which only swaps word order and
cannot express byte-swapped layouts (BADC, DCBA) that real devices use.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Literal

Datatype = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]

_WIDTH: dict[str, int] = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
_FORMAT: dict[str, str] = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def register_width(datatype: Datatype) -> int:
    """How many registers (or bits, for bool) one value of this type occupies."""
    return _WIDTH[datatype]


def decode_registers(
    registers: Sequence[int], datatype: Datatype, byte_order: Order = "big", word_order: Order = "big"
) -> int | float:
    """Decode one value from its registers.

    `byte_order` is the order of the two bytes inside each register, `word_order` the order of the registers
    of a 32-bit value ("big": most significant word first). Big/big is ABCD, little/little is DCBA,
    big/little is CDAB, little/big is BADC.
    """
    if datatype == "bool":
        raise ValueError("bool values come from coils or discrete inputs, not registers")
    width = _WIDTH[datatype]
    if len(registers) != width:
        raise ValueError(f"{datatype} needs {width} register(s), got {len(registers)}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    raw = b"".join(_word_bytes(w, byte_order) for w in words)
    value: int | float = struct.unpack(_FORMAT[datatype], raw)[0]
    return value


def encode_registers(
    value: int | float, datatype: Datatype, byte_order: Order = "big", word_order: Order = "big"
) -> list[int]:
    """The registers a device would hold for `value`; the inverse of `decode_registers`."""
    if datatype == "bool":
        raise ValueError("bool values are bits, not registers")
    raw = struct.pack(_FORMAT[datatype], value)
    words = [_bytes_word(raw[i : i + 2], byte_order) for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def _word_bytes(word: int, byte_order: Order) -> bytes:
    if not 0 <= word <= 0xFFFF:
        raise ValueError(f"register value {word} is not a 16-bit word")
    data = word.to_bytes(2, "big")
    return data if byte_order == "big" else data[::-1]


def _bytes_word(data: bytes, byte_order: Order) -> int:
    return int.from_bytes(data if byte_order == "big" else data[::-1], "big")
