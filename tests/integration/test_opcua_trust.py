"""OPC UA trust and logins against the simulated PLC serving Basic256Sha256 with its own certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.probes.context import ProbeContext
from agent.probes.opcua import OpcUaProbe
from agent.probes.opcua_session import UNTRUSTED_CAUSE
from agent.probes.opcua_trust import fingerprint, pin_name
from linewarden.cli import main
from linewarden.config.agent import OpcUaSection
from linewarden.domain import State
from simulators.opcua_plc import OpcUaPlc
from tests.integration.probe_helpers import UNHURRIED, fast_context, probe

URI = "urn:linewarden:sim:plc"
NODES = [{"name": "running", "namespace_uri": URI, "identifier": "s=Running", "condition": {"equals": True}}]


async def _certificate(directory: Path, name: str, use: Any) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.der", directory / f"{name}.pem"
    await setup_self_signed_certificate(key, cert, f"urn:linewarden:test:{name}", "localhost", [use],
                                        {"commonName": name})  # fmt: skip
    return cert, key


@pytest.fixture
async def certs(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    made = {}
    for name, use in (("plc", ExtendedKeyUsageOID.SERVER_AUTH), ("plc-new", ExtendedKeyUsageOID.SERVER_AUTH),
                      ("agent", ExtendedKeyUsageOID.CLIENT_AUTH), ("operator", ExtendedKeyUsageOID.CLIENT_AUTH),
                      ("stranger", ExtendedKeyUsageOID.CLIENT_AUTH)):  # fmt: skip
        made[name] = await _certificate(tmp_path, name, use)
    return made


@pytest.fixture
def trust_dir(tmp_path: Path) -> Path:
    return tmp_path / "trust"


@pytest.fixture
async def context(trust_dir: Path) -> AsyncIterator[ProbeContext]:
    ctx = fast_context(opcua_trust=OpcUaSection(trust_dir=trust_dir))
    yield ctx
    await ctx.close()


def _secured(context: ProbeContext, plc: OpcUaPlc, certs: dict[str, tuple[Path, Path]], **extra: Any) -> OpcUaProbe:
    cert, key = certs["agent"]
    made = probe(context, UNHURRIED, type="opcua", endpoint=plc.endpoint, nodes=NODES, min_service_level=None,
                 security_policy="Basic256Sha256", security_mode="SignAndEncrypt", certificate=str(cert),
                 private_key=str(key), id=extra.pop("id", "plc"), **extra)  # fmt: skip
    assert isinstance(made, OpcUaProbe)
    return made


def _trust(trust_dir: Path, cert: Path) -> None:
    trust_dir.mkdir()
    (trust_dir / "plc1.der").write_bytes(cert.read_bytes())


def _plc(certs: dict[str, tuple[Path, Path]], **extra: Any) -> OpcUaPlc:
    cert, key = certs["plc"]
    return OpcUaPlc("plc1", certificate=cert, private_key=key, **extra)


async def test_an_untrusted_server_is_unknown_and_a_trusted_one_up(
    context: ProbeContext, certs: dict[str, tuple[Path, Path]], trust_dir: Path
) -> None:
    server_der = certs["plc"][0].read_bytes()
    async with _plc(certs) as plc:
        result = await _secured(context, plc, certs).poll(time.time())
        assert result.state == State.UNKNOWN, "a server nobody trusted must not be believed"
        assert result.cause == UNTRUSTED_CAUSE
        assert result.reason.startswith(f"untrusted server certificate SHA-256 {fingerprint(server_der)}")
        assert result.values["server_certificate_sha256"] == fingerprint(server_der)

        _trust(trust_dir, certs["plc"][0])
        await context.close()  # a new session, as after the backoff
        context.opcua_sessions.clear()
        trusted = await _secured(context, plc, certs).poll(time.time())
        assert (trusted.state, trusted.reason) == (State.UP, "")


def _ca_issued(directory: Path) -> tuple[Path, Path, Path]:
    """A plant CA (PEM) and a server certificate (DER) with its RSA key (PEM) that the CA issued."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plant CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    usage = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                          data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)  # fmt: skip
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plc1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:linewarden:test:plc1"),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    paths = directory / "plant-ca.pem", directory / "plc1-ca.der", directory / "plc1-ca.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))  # fmt: skip
    return paths


async def test_a_server_certificate_issued_by_a_trusted_ca_is_trusted(
    context: ProbeContext, certs: dict[str, tuple[Path, Path]], trust_dir: Path, tmp_path: Path
) -> None:
    ca, cert, key = _ca_issued(tmp_path)
    async with OpcUaPlc("plc1", certificate=cert, private_key=key) as plc:
        assert (await _secured(context, plc, certs).poll(time.time())).cause == UNTRUSTED_CAUSE
        _trust(trust_dir, ca)
        await context.close()
        context.opcua_sessions.clear()
        trusted = await _secured(context, plc, certs).poll(time.time())
        assert (trusted.state, trusted.reason) == (State.UP, "")


async def test_trust_on_first_use_pins_then_refuses_a_changed_certificate(
    context: ProbeContext, certs: dict[str, tuple[Path, Path]], trust_dir: Path
) -> None:
    async with _plc(certs) as plc:
        first = await _secured(context, plc, certs, trust="tofu").poll(time.time())
        assert first.state == State.UP
        pin = trust_dir / pin_name(plc.endpoint)
        assert pin.read_bytes() == certs["plc"][0].read_bytes()
        await context.close()
        context.opcua_sessions.clear()
        await plc.replace_certificate(*certs["plc-new"])
        changed = await _secured(context, plc, certs, trust="tofu").poll(time.time())
        assert changed.state == State.UNKNOWN and changed.cause == UNTRUSTED_CAUSE
        assert "changed since first use" in changed.reason
        assert pin.read_bytes() == certs["plc"][0].read_bytes(), "the pin is never replaced silently"


async def test_username_and_password_login(
    context: ProbeContext, certs: dict[str, tuple[Path, Path]], trust_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _trust(trust_dir, certs["plc"][0])
    monkeypatch.setenv("PLC_PASSWORD", "s3cret")
    (tmp_path / "wrong").write_text("guess\n")
    async with _plc(certs, users={"monitor": "s3cret"}) as plc:
        good = await _secured(context, plc, certs, username="monitor", password={"env": "PLC_PASSWORD"}).poll(
            time.time()
        )
        assert (good.state, good.reason) == (State.UP, "")
        wrong = await _secured(context, plc, certs, id="wrong", username="intruder",
                               password={"file": str(tmp_path / "wrong")}).poll(time.time())  # fmt: skip
        assert wrong.state == State.DOWN and "BadUserAccessDenied" in wrong.reason
        anonymous = await _secured(context, plc, certs, id="anon").poll(time.time())
        assert anonymous.state == State.DOWN and anonymous.cause == "opcua.session_refused"


async def test_certificate_login(
    context: ProbeContext, certs: dict[str, tuple[Path, Path]], trust_dir: Path
) -> None:
    _trust(trust_dir, certs["plc"][0])
    operator_cert, operator_key = certs["operator"]
    async with _plc(certs, user_certificates=[operator_cert]) as plc:
        good = await _secured(context, plc, certs, user_certificate=str(operator_cert),
                              user_private_key=str(operator_key)).poll(time.time())  # fmt: skip
        assert (good.state, good.reason) == (State.UP, "")
        stranger_cert, stranger_key = certs["stranger"]
        refused = await _secured(context, plc, certs, id="stranger", user_certificate=str(stranger_cert),
                                 user_private_key=str(stranger_key)).poll(time.time())  # fmt: skip
        assert refused.state == State.DOWN and "BadUserAccessDenied" in refused.reason


async def test_agent_check_offers_the_fingerprint_and_agent_trust_saves_it(
    certs: dict[str, tuple[Path, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _plc(certs) as plc:
        cert, key = certs["agent"]
        config = tmp_path / "agent.toml"
        config.write_text(f"""
[agent]
id = "a1"
site = "s1"
data_dir = "{tmp_path / "data"}"
[[assets]]
id = "line3-plc"
criticality = "high"
[[targets]]
id = "plc"
type = "opcua"
asset = "line3-plc"
endpoint = "{plc.endpoint}"
security_policy = "Basic256Sha256"
security_mode = "SignAndEncrypt"
certificate = "{cert}"
private_key = "{key}"
min_service_level = 0
""")
        assert await asyncio.to_thread(main, ["agent", "check", "--config", str(config)]) == 1
        captured = capsys.readouterr()
        wanted = fingerprint(certs["plc"][0].read_bytes())
        assert "config.untrusted_certificate" in captured.out
        assert f"linewarden agent trust --config {config} --target plc --fingerprint {wanted}" in captured.err

        trust = ["agent", "trust", "--config", str(config), "--target", "plc", "--fingerprint"]
        assert await asyncio.to_thread(main, [*trust, "00:11"]) == 1, "a fingerprint that differs trusts nothing"
        assert not (tmp_path / "data" / "opcua-trust").exists()
        assert await asyncio.to_thread(main, [*trust, wanted]) == 0
        [saved] = (tmp_path / "data" / "opcua-trust").iterdir()
        assert saved.read_bytes() == certs["plc"][0].read_bytes()
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["agent", "check", "--config", str(config)]) == 0
