"""Reading a certificate's expiry and common name from its DER gives what `cryptography` reads."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from linewarden import certs
from linewarden.certs import CertError, Role

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
CA = certs.new_authority("plant CA", NOW, days=3650)


def _self_signed(name: x509.Name, not_after: dt.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def _expected(cert: x509.Certificate) -> tuple[str, int]:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else cert.subject.rfc4514_string()
    return subject, int(cert.not_valid_after_utc.timestamp() * 1000)


@pytest.mark.parametrize("common_name", ["agent-01", "Prüfstand 3 · Linie Süd", "x" * 64])
def test_issued_certificates_read_like_cryptography_reads_them(common_name: str) -> None:
    pem = certs.issue(CA, common_name, NOW, days=400, server_names=["10.0.0.1", "broker.plant"]).cert_pem
    ((info,), cert) = certs.inspect_pem(pem, Role.OWN), x509.load_pem_x509_certificate(pem)
    assert (info.subject, info.not_after_ms) == _expected(cert)
    assert certs.inspect_der(cert.public_bytes(Encoding.DER), Role.PEER) == \
        certs.CertInfo(Role.PEER, *_expected(cert))


@pytest.mark.parametrize("not_after", [dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # UTCTime
                                       dt.datetime(2050, 1, 1, tzinfo=dt.UTC),  # GeneralizedTime from 2050
                                       dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)])
def test_both_time_encodings_and_a_subject_without_common_name(not_after: dt.datetime) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Plant"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])
    cert = _self_signed(name, not_after)
    pem = cert.public_bytes(Encoding.PEM)
    (info,) = certs.inspect_pem(pem, Role.CA)
    assert (info.subject, info.not_after_ms) == _expected(cert)


def test_a_bundle_gives_every_certificate_in_order() -> None:
    other = certs.new_authority("second CA", NOW, days=10)
    infos = certs.inspect_pem(CA.cert_pem + b"\n" + other.cert_pem, Role.CA)
    assert [i.subject for i in infos] == ["plant CA", "second CA"]


DER = x509.load_pem_x509_certificate(CA.cert_pem).public_bytes(Encoding.DER)


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, len(DER) - 1), flip=st.integers(0, len(DER) - 1), byte=st.integers(0, 255))
def test_truncated_or_corrupted_der_is_a_cert_error_or_a_reading(cut: int, flip: int, byte: int) -> None:
    with pytest.raises(CertError):
        certs.inspect_der(DER[:cut], Role.PEER)
    corrupted = DER[:flip] + bytes([byte]) + DER[flip + 1:]
    try:
        info = certs.inspect_der(corrupted, Role.PEER)
    except CertError:
        return
    assert isinstance(info.subject, str) and isinstance(info.not_after_ms, int)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_cert_error(data: bytes) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\n" + data + b"\n-----END CERTIFICATE-----"
    with contextlib.suppress(CertError):
        certs.inspect_der(data, Role.PEER)
    with contextlib.suppress(CertError):
        certs.inspect_pem(pem, Role.CA)
