"""The e-signature platforms' exports, shaped as each platform documents them (tests/data/esign/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.esign import parse
from collector.esign_formats import EsignRefused, adobe_sign, docusign, iso, signnow

DATA = Path(__file__).parent.parent / "data" / "esign"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _signers(evidence) -> list[tuple[str, str, str, str | None]]:
    return [(s.name, s.email, iso(s.signed_at_ms), s.ip) for s in evidence.signers]


EXPECTED = [("Ivo Integrator", "ivo@integrator.example", "2026-01-13T13:02:11Z", "203.0.113.45"),
            ("Petra Procurement", "petra@plant-a.example", "2026-01-13T15:40:55Z", "2001:db8::20")]


def test_docusign_audit_events_and_envelope_give_signers_times_and_addresses():
    ev = docusign(_read("docusign-audit-events.json"), _read("docusign-envelope.json"))
    assert ev.envelope == "4c3b2a19-8f7e-4d6c-b5a4-93827160f5e4"
    assert _signers(ev) == EXPECTED
    assert [e.action for e in ev.events] == ["Registered", "Sent Invitations", "Signed", "Signed"]
    assert ev.completed_at_ms is not None and iso(ev.completed_at_ms) == "2026-01-13T15:40:55Z"


def test_signnow_history_gives_signers_from_its_signing_events():
    ev = signnow(_read("signnow-history.json"))
    assert ev.envelope == "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    assert [(e, s, ip) for _, e, s, ip in _signers(ev)] == [(e, s, ip) for _, e, s, ip in EXPECTED]
    assert len(ev.events) == 4


def test_adobe_sign_events_give_signers_and_the_completion():
    ev = adobe_sign(_read("adobe-sign-events.json"), "CBJCHBCAABAAagreement")
    assert _signers(ev) == EXPECTED
    assert ev.completed_at_ms is not None and iso(ev.completed_at_ms) == "2026-01-13T15:40:56Z"


def _edited(name: str, change) -> bytes:
    doc = json.loads(_read(name))
    change(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: docusign(b"{oops", _read("docusign-envelope.json")), "audit events: not JSON"),
        (lambda: docusign(b'{"auditEvents": []}', _read("docusign-envelope.json")), "auditEvents: List should have"),
        (lambda: docusign(_read("docusign-audit-events.json"), _edited(
            "docusign-envelope.json", lambda d: d.update(status="sent"))), "not 'completed'"),
        (lambda: docusign(_read("docusign-audit-events.json"), _edited(
            "docusign-envelope.json", lambda d: d["recipients"]["signers"][0].update(status="delivered"))),
         "signers.0 (Ivo Integrator) has status 'delivered'"),
        (lambda: docusign(_edited("docusign-audit-events.json",
                                  lambda d: d["auditEvents"][2]["eventFields"][7].update(value="not-an-ip")),
                          _read("docusign-envelope.json")), "auditEvents.2.ClientIPAddress: 'not-an-ip'"),
        (lambda: docusign(_edited("docusign-audit-events.json",
                                  lambda d: d["auditEvents"][0]["eventFields"][0].update(value="yesterday")),
                          _read("docusign-envelope.json")), "logTime: 'yesterday' is not an ISO 8601 time"),
        (lambda: signnow(b'{"events": []}'), "not a list of events"),
        (lambda: signnow(_edited("signnow-history.json", lambda d: d[0].pop("event"))), "0: event: Field required"),
        (lambda: signnow(_edited("signnow-history.json", lambda d: d[1].update(document_id="other"))),
         "events of 2 documents"),
        (lambda: signnow(_edited("signnow-history.json", lambda d: [e.update(event="viewed") for e in d])),
         "no signing event"),
        (lambda: adobe_sign(_edited("adobe-sign-events.json", lambda d: d["events"][2].pop("date")), "x"),
         "events.2.date: Field required"),
        (lambda: adobe_sign(b"\xff\xfe", "x"), "agreement events: not JSON"),
        (lambda: parse("adobe_sign", {"events": _read("adobe-sign-events.json")}, None), "needs the agreement id"),
        (lambda: parse("docusign", {"audit_events": b"{}"}, None), "docusign evidence needs envelope"),
        (lambda: parse("hellosign", {}, None), "unknown platform"),
    ],
)
def test_malformed_exports_are_refused_with_where_and_why(call, message):
    with pytest.raises(EsignRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
