"""`linewarden certs init|issue`: a CA and certificates that verify, keys 0600, nothing overwritten."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from linewarden.cli import main


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_init_and_issue_make_a_working_small_pki(tmp_path: Path, capsys):
    ca_dir = tmp_path / "ca"
    assert main(["certs", "init", "--dir", str(ca_dir)]) == 0
    assert _mode(ca_dir) == 0o700 and _mode(ca_dir / "ca.key") == 0o600
    out = ["--out", str(tmp_path / "a")]
    assert main(["certs", "issue", "--dir", str(ca_dir), "agent", "plant1/line3-host1", *out]) == 0
    assert main(["certs", "issue", "--dir", str(ca_dir), "broker", "--host", "mqtt.plant", "--host", "10.0.0.5"]) == 0
    assert main(["certs", "issue", "--dir", str(ca_dir), "collector"]) == 0
    ca = _cert(ca_dir / "ca.pem")
    agent, broker, collector = (_cert(p) for p in (tmp_path / "a" / "plant1.line3-host1.pem", ca_dir / "broker.pem",
                                                   ca_dir / "collector.pem"))  # fmt: skip
    for cert in (agent, broker, collector):
        cert.verify_directly_issued_by(ca)
    assert _cn(agent) == "plant1/line3-host1" and _cn(collector) == "collector"
    assert _mode(tmp_path / "a" / "plant1.line3-host1.key") == 0o600 and _mode(ca_dir / "broker.key") == 0o600
    sans = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mqtt.plant"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    usage = agent.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "valid until" in capsys.readouterr().out


def test_nothing_is_overwritten_and_bad_names_are_refused(tmp_path: Path, capsys):
    ca_dir = tmp_path / "ca"
    assert main(["certs", "init", "--dir", str(ca_dir)]) == 0
    key = (ca_dir / "ca.key").read_bytes()
    assert main(["certs", "init", "--dir", str(ca_dir)]) == 2
    assert (ca_dir / "ca.key").read_bytes() == key
    assert "exists already" in capsys.readouterr().err
    assert main(["certs", "issue", "--dir", str(ca_dir), "agent", "line3-host1"]) == 2
    assert "SITE/AGENT" in capsys.readouterr().err
    assert main(["certs", "issue", "--dir", str(ca_dir), "broker"]) == 2
    assert main(["certs", "issue", "--dir", str(tmp_path / "nowhere"), "collector"]) == 2
    assert "certs init" in capsys.readouterr().err
