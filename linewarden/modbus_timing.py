"""Timing of a Modbus RTU line, from its serial settings (Modbus over Serial Line, V1.02, 2.5.1.1).

A frame ends with at least 3.5 character times of silence, so the next request may start only then. Above
19200 baud the specification fixes that gap at 1.75 ms (the character time is too short for a UART to time).
After a unit failed to answer in time, the line stays quiet for as long as the longest answer (256
characters) takes, so a late answer that has just begun cannot collide with the next request.
"""

from __future__ import annotations

from typing import Literal

Parity = Literal["N", "E", "O"]
MAX_RTU_FRAME = 256  # bytes: address, PDU of up to 253, CRC
FIXED_GAP_ABOVE_BAUD = 19200
FIXED_GAP_S = 0.00175


def character_s(baudrate: int, parity: Parity, stopbits: int) -> float:
    """Seconds one character takes on the wire: start bit, 8 data bits, parity bit if any, stop bits."""
    bits = 1 + 8 + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def frame_gap_s(baudrate: int, parity: Parity, stopbits: int) -> float:
    """The silence that must separate two frames: 3.5 character times (1.75 ms above 19200 baud)."""
    if baudrate > FIXED_GAP_ABOVE_BAUD:
        return FIXED_GAP_S
    return 3.5 * character_s(baudrate, parity, stopbits)


def late_answer_guard_s(baudrate: int, parity: Parity, stopbits: int) -> float:
    """How long the line stays quiet after a unit did not answer in time: one longest frame plus the gap."""
    return MAX_RTU_FRAME * character_s(baudrate, parity, stopbits) + frame_gap_s(baudrate, parity, stopbits)
