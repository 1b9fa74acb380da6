"""TLS options say what they do; certificate expiry arithmetic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from linewarden import certs
from linewarden.certs import DAY_MS, Role
from linewarden.cli import main
from linewarden.config.base import TlsConfig
from linewarden.errors import BrokerError
from linewarden.mqtt import MAX_PEM_BYTES, local_certificates
from linewarden.wire import CertExpiry, HeartbeatBody, decode, encode

ROOT = Path(__file__).resolve().parents[2]
# without its production calendar, which lives next to the example
AGENT_EXAMPLE = "\n".join(
    line for line in (ROOT / "config" / "agent.toml").read_text().splitlines()
    if not line.startswith("production_calendar")
)


def _check(tmp_path: Path, tls: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "agent.toml"
    path.write_text(AGENT_EXAMPLE.replace("\n[outbox]", f"\n[broker.tls]\n{tls}\n\n[outbox]", 1))
    code = main(["config", "check", str(path)])
    return code, capsys.readouterr().err


def test_insecure_is_refused_with_a_one_line_pointer_to_verify_hostname(tmp_path, capsys):
    code, err = _check(tmp_path, "insecure = true", capsys)
    assert code == 2 and err.count("\n") == 1
    assert "verify_hostname = false" in err and "always verified" in err


def test_verify_hostname_and_expiry_days_validate(tmp_path, capsys):
    assert _check(tmp_path, "verify_hostname = false\nexpiry_warning_days = 14", capsys)[0] == 0
    code, err = _check(tmp_path, "expiry_warning_days = 0", capsys)
    assert code == 2 and "broker.tls.expiry_warning_days" in err


def test_a_key_without_its_certificate_is_an_error(tmp_path, capsys):
    code, err = _check(tmp_path, 'key_file = "/etc/linewarden/agent.key"', capsys)
    assert code == 2 and "key_file needs cert_file" in err


def test_expiry_is_reported_within_the_window_and_after_it_passed():
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    ca = certs.new_authority("ca", now, days=3650)
    soon = certs.issue(ca, "plant1/a1", now, days=10)
    (info,) = certs.inspect_pem(soon.cert_pem, Role.OWN)
    assert certs.expiring([info], now_ms, 30) == [info]
    assert certs.expiring([info], now_ms, 9) == []
    assert info.describe(now_ms + 12 * DAY_MS) == "own certificate 'plant1/a1' expired 2 days ago"
    # a certificate never outlives the CA that signed it
    short_ca = certs.new_authority("ca", now, days=5)
    (capped,) = certs.inspect_pem(certs.issue(short_ca, "x", now, days=400).cert_pem, Role.OWN)
    assert capped.days_left(now_ms) == pytest.approx(5, abs=0.01)


def test_garbage_is_a_cert_error_not_a_traceback():
    with pytest.raises(certs.CertError):
        certs.inspect_pem(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", Role.CA)
    with pytest.raises(certs.CertError):
        certs.inspect_der(b"\x30\x03nope", Role.PEER)


def test_heartbeat_carries_certificates_only_when_some_expire():
    quiet = HeartbeatBody(interval_s=60, states={})
    assert b"certificates" not in encode(quiet)  # what collectors before this field accept
    expiring = [CertExpiry(role="peer", subject="broker", not_after=1)]
    soon = HeartbeatBody(interval_s=60, states={}, certificates=expiring)
    assert decode(HeartbeatBody, encode(soon)) == soon
    assert decode(HeartbeatBody, b'{"interval_s": 60, "states": {}}').certificates is None


def test_a_certificate_file_that_is_a_device_or_huge_is_an_error_not_read(tmp_path):
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"\n" * (MAX_PEM_BYTES + 1))
    with pytest.raises(BrokerError, match=f"{huge}: larger than {MAX_PEM_BYTES} bytes"):
        local_certificates(TlsConfig(ca_file=huge))
    with pytest.raises(BrokerError, match="/dev/zero: not a regular file"):  # read, it never ends
        local_certificates(TlsConfig(ca_file=Path("/dev/zero")))
