"""Typed decoding of Modbus registers in all four byte/word layouts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewarden.modbus_codec import BlockDecoder, Field, decode_registers, encode_registers, register_width

# 123456.0 as float32 is 0x47F12000: bytes A=47 B=F1 C=20 D=00
LAYOUTS = [
    ("big", "big", [0x47F1, 0x2000]),  # ABCD
    ("big", "little", [0x2000, 0x47F1]),  # CDAB
    ("little", "big", [0xF147, 0x0020]),  # BADC
    ("little", "little", [0x0020, 0xF147]),  # DCBA
]


@pytest.mark.parametrize(("byte_order", "word_order", "registers"), LAYOUTS)
def test_float32_layouts(byte_order, word_order, registers) -> None:
    assert decode_registers(registers, "float32", byte_order, word_order) == 123456.0


@pytest.mark.parametrize(
    ("registers", "datatype", "expected"),
    [
        ([0xFFFF], "int16", -1),
        ([0xFFFF], "uint16", 65535),
        ([0x8000], "int16", -32768),
        ([0x0001, 0x1170], "int32", 70000),
        ([0xFFFE, 0xEE90], "int32", -70000),
        ([0xFFFF, 0xFFFF], "uint32", 4294967295),
    ],
)
def test_integers(registers, datatype, expected) -> None:
    assert decode_registers(registers, datatype) == expected


def test_byte_swapped_int16() -> None:
    assert decode_registers([0x3412], "uint16", byte_order="little") == 0x1234


def test_wrong_register_count_and_bad_words_are_errors() -> None:
    with pytest.raises(ValueError, match="needs 2"):
        decode_registers([1], "float32")
    with pytest.raises(ValueError, match="16-bit"):
        decode_registers([70000], "uint16")
    with pytest.raises(ValueError):
        decode_registers([1], "bool")


def test_widths() -> None:
    assert [register_width(t) for t in ("bool", "int16", "uint16", "int32", "uint32", "float32")] == [1, 1, 1, 2, 2, 2]


orders = st.sampled_from(["big", "little"])


@given(st.integers(-(2**31), 2**31 - 1), orders, orders)
def test_int32_round_trip(value, byte_order, word_order) -> None:
    registers = encode_registers(value, "int32", byte_order, word_order)
    assert decode_registers(registers, "int32", byte_order, word_order) == value


@given(st.floats(width=32, allow_nan=False), orders, orders)
def test_float32_round_trip(value, byte_order, word_order) -> None:
    registers = encode_registers(value, "float32", byte_order, word_order)
    decoded = decode_registers(registers, "float32", byte_order, word_order)
    assert decoded == value or (math.isinf(value) and decoded == value)


datatypes = st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"])
fields = st.tuples(st.integers(0, 20), datatypes, orders, orders, st.sampled_from([1.0, 0.1]))


@given(st.lists(fields, min_size=1, max_size=12), st.lists(st.integers(0, 0xFFFF), min_size=22, max_size=22))
def test_block_decoder_matches_decoding_field_by_field(specs, registers) -> None:
    """Gaps, overlaps (two fields on the same registers) and mixed layouts in one block."""
    block = [Field(offset, datatype, byte_order, word_order, scale) for offset, datatype, byte_order, word_order, scale
             in specs]
    decoded = BlockDecoder(block, len(registers)).decode(registers)
    for field, value in zip(block, decoded, strict=True):
        width = register_width(field.datatype)
        one = decode_registers(registers[field.offset : field.offset + width], field.datatype, field.byte_order,
                               field.word_order)
        expected = one * field.scale if field.scale != 1.0 else one
        assert value == expected or (math.isnan(value) and math.isnan(expected))


def test_block_decoder_rejects_what_decode_registers_rejects() -> None:
    decoder = BlockDecoder([Field(0, "uint16"), Field(1, "float32")], 3)
    assert decoder.decode([7, 0x47F1, 0x2000]) == [7, 123456.0]
    with pytest.raises(ValueError, match="16-bit"):
        decoder.decode([70000, 0, 0])
    with pytest.raises(ValueError, match="needs 3"):
        decoder.decode([1, 2])
    with pytest.raises(ValueError, match="outside"):
        BlockDecoder([Field(2, "float32")], 3)
    with pytest.raises(ValueError, match="bool"):
        BlockDecoder([Field(0, "bool")], 1)
