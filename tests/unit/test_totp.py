"""RFC 6238's test vectors (SHA-1 secret, the 6 low digits of its 8-digit codes) and the one-use rule."""

from __future__ import annotations

import base64

from collector.console import totp

SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_codes_match_rfc_6238_appendix_b() -> None:
    for seconds, code in ((59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")):
        assert totp.code_at(SECRET, seconds // 30) == code


def test_a_code_is_accepted_within_one_step_and_only_after_the_last_used() -> None:
    now = 1111111109_000
    step = totp.step_of(now)
    assert totp.matching_step(SECRET, "081804", now, 0) == step
    assert totp.matching_step(SECRET, "081804", now, step) is None
    assert totp.matching_step(SECRET, totp.code_at(SECRET, step + 2), now, 0) is None
    assert totp.matching_step(SECRET, "08180x", now, 0) is None
