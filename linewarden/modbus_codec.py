"""Typed decoding of raw Modbus registers: 16/32-bit integers and IEEE floats with byte and word order.

Done with `struct` rather than pymodbus's `convert_from_registers`, which only swaps word order and
cannot express byte-swapped layouts (BADC, DCBA) that real devices use.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Datatype = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
Order = Literal["big", "little"]

_WIDTH: dict[str, int] = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
_FORMAT: dict[str, str] = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_CODE: dict[str, str] = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}


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


@dataclass(frozen=True)
class Field:
    """One value inside a block of registers: `offset` registers from the block's first."""

    offset: int
    datatype: Datatype
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0


@dataclass(frozen=True)
class _Segment:
    little_buffer: bool  # read from the block packed with each register's bytes swapped
    layout: struct.Struct
    start: int  # byte offset of the segment's first value
    indices: tuple[int, ...]  # where its values go in the decoded sequence


class BlockDecoder:
    """Decodes every field of one register block with a few precompiled `struct` calls, not one per field.

    The block is packed to bytes once (twice when some fields have swapped bytes); every layout becomes a
    read of that buffer: ABCD and DCBA read the registers as they are, big- or little-endian; CDAB and
    BADC read the byte-swapped buffer, little- or big-endian. Fields sharing a buffer and an endianness are
    read by one `Struct` with pad bytes between them, as long as they do not overlap.
    Same results as `decode_registers` field by field (see tests/unit/test_modbus_codec.py).
    """

    def __init__(self, fields: Sequence[Field], count: int) -> None:
        if any(f.datatype == "bool" for f in fields):
            raise ValueError("bool values come from coils or discrete inputs, not registers")
        if any(f.offset < 0 or f.offset + _WIDTH[f.datatype] > count for f in fields):
            raise ValueError(f"a field lies outside the block of {count} registers")
        self.count = count
        self._size = len(fields)
        self._big = struct.Struct(f">{count}H")
        self._little = struct.Struct(f"<{count}H")
        self._scaled = tuple((i, f.scale) for i, f in enumerate(fields) if f.scale != 1.0)
        self._segments = self._compile(fields)
        self._needs_little = any(s.little_buffer for s in self._segments)
        self._in_order = len(self._segments) == 1 and self._segments[0].indices == tuple(range(len(fields)))

    @staticmethod
    def _compile(fields: Sequence[Field]) -> tuple[_Segment, ...]:
        groups: dict[tuple[bool, str], list[int]] = {}
        for i, f in enumerate(fields):
            # 16-bit values have no word order; the byte order alone decides
            word_order = f.word_order if _WIDTH[f.datatype] == 2 else "big"
            little_buffer = f.byte_order != word_order
            groups.setdefault((little_buffer, ">" if word_order == "big" else "<"), []).append(i)
        segments: list[_Segment] = []
        for (little_buffer, endian), members in groups.items():
            members.sort(key=lambda i: fields[i].offset)
            codes: list[str] = []
            taken: list[int] = []
            start = end = 0
            for i in members:
                f = fields[i]
                if taken and f.offset < end:  # overlaps the previous field: a segment of its own
                    segments.append(_Segment(little_buffer, struct.Struct(endian + "".join(codes)), 2 * start,
                                             tuple(taken)))
                    codes, taken = [], []
                if not taken:
                    start = end = f.offset
                codes.append("x" * (2 * (f.offset - end)) + _CODE[f.datatype])
                taken.append(i)
                end = f.offset + _WIDTH[f.datatype]
            segments.append(_Segment(little_buffer, struct.Struct(endian + "".join(codes)), 2 * start, tuple(taken)))
        return tuple(segments)

    def decode(self, registers: Sequence[int]) -> list[int | float]:
        """The fields' values, in the order the fields were given. Raises ValueError for a word that is not 16
        bits or a block of the wrong length."""
        if len(registers) != self.count:
            raise ValueError(f"the block needs {self.count} registers, got {len(registers)}")
        try:
            big = self._big.pack(*registers)
            little = self._little.pack(*registers) if self._needs_little else b""
        except struct.error as exc:
            raise ValueError(f"a register value is not a 16-bit word: {exc}") from None
        values: list[int | float]
        if self._in_order:
            segment = self._segments[0]
            values = list(segment.layout.unpack_from(little if segment.little_buffer else big, segment.start))
        else:
            values = [0] * self._size
            for segment in self._segments:
                got = segment.layout.unpack_from(little if segment.little_buffer else big, segment.start)
                for i, value in zip(segment.indices, got, strict=True):
                    values[i] = value
        for i, scale in self._scaled:
            values[i] *= scale
        return values
