"""E-signature platforms' evidence exports, read as each platform documents them (docs/contract-lifecycle.md).

- **DocuSign** (eSignature REST API v2.1): the envelope's audit events,
  `GET /accounts/{accountId}/envelopes/{envelopeId}/audit_events` → `{"auditEvents": [{"eventFields":
  [{"name": "logTime", "value": …}, {"name": "UserName"…}, {"name": "Action"…}, {"name": "ClientIPAddress"…},
  …]}]}`, and the data of its certificate of completion, the envelope with its recipients,
  `GET /accounts/{accountId}/envelopes/{envelopeId}?include=recipients` → `{"envelopeId", "status",
  "completedDateTime", "recipients": {"signers": [{"name", "email", "status", "signedDateTime"}]}}`.
- **signNow**: the document history, `GET /document/{document_id}/historyfull` → a list of
  `{"unique_id", "document_id", "user_id", "email", "event", "created" (Unix seconds), "ip_address",
  "client_app_name", …}`.
- **Adobe Acrobat Sign** (REST v6): the agreement's audit events, `GET /agreements/{agreementId}/events` →
  `{"events": [{"type", "date", "actingUserEmail", "actingUserName", "actingUserIpAddress",
  "participantEmail", "participantRole", "description", …}]}`.

A file is someone else's export and may be anything: what is not the documented shape is refused with
the place and the reason (EsignRefused), never a traceback. Fields a platform adds later are ignored.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linewarden.errors import LinewardenError

Platform = Literal["docusign", "signnow", "adobe_sign"]
PLATFORMS: tuple[Platform, ...] = ("docusign", "signnow", "adobe_sign")
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_TEXT = 500


class EsignRefused(LinewardenError):
    """Evidence not imported: a malformed export, or a signed document that is not the contract's."""


@dataclass(frozen=True)
class Signer:
    name: str
    email: str
    signed_at_ms: int
    ip: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "signed_at_ms": self.signed_at_ms, "ip": self.ip}


@dataclass(frozen=True)
class EsignEvent:
    at_ms: int
    actor: str
    action: str
    ip: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "actor": self.actor, "action": self.action, "ip": self.ip, "detail": self.detail}


@dataclass(frozen=True)
class Evidence:
    platform: Platform
    envelope: str
    """The platform's id of what was signed: envelope, document or agreement."""
    signers: tuple[Signer, ...]
    events: tuple[EsignEvent, ...]
    completed_at_ms: int | None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=BaseModel)
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _time_ms(text: str, where: str) -> int:
    """ISO 8601 with a zone (DocuSign writes seven fractional digits; Python reads six)."""
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        raise EsignRefused(f"{where}: {text[:40]!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise EsignRefused(f"{where}: {text[:40]!r} has no time zone")
    return int(dt.timestamp() * 1000)


def _ip(text: str | None, where: str) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise EsignRefused(f"{where}: {text[:60]!r} is not an IP address") from None


def _clip(text: str | None) -> str:
    return (text or "")[:MAX_TEXT]


def load_json(data: bytes, what: str) -> Any:
    if len(data) > MAX_FILE_BYTES:
        raise EsignRefused(f"{what}: larger than {MAX_FILE_BYTES} bytes: not an evidence export")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EsignRefused(f"{what}: not JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None


def _model(cls: type[M], value: Any, what: str) -> M:
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise EsignRefused(f"{what}: {place}: {first['msg']} (not the platform's documented export)") from None


# ---------------------------------------------------------------- DocuSign


class _NameValue(_Lenient):
    name: str
    value: str | None = None


class _AuditEvent(_Lenient):
    eventFields: list[_NameValue]


class _AuditEvents(_Lenient):
    auditEvents: list[_AuditEvent] = Field(min_length=1)


class _DsSigner(_Lenient):
    name: str = Field(max_length=MAX_TEXT)
    email: str = Field(max_length=MAX_TEXT)
    status: str
    signedDateTime: str | None = None


class _DsRecipients(_Lenient):
    signers: list[_DsSigner] = Field(min_length=1)


class _Envelope(_Lenient):
    envelopeId: str = Field(min_length=1, max_length=200)
    status: str
    completedDateTime: str | None = None
    recipients: _DsRecipients


def docusign(audit_events: bytes, envelope: bytes) -> Evidence:
    """The audit events and the envelope with recipients (certificate of completion data)."""
    events_doc = _model(_AuditEvents, load_json(audit_events, "audit events"), "audit events")
    env = _model(_Envelope, load_json(envelope, "envelope"), "envelope")
    if env.status.lower() != "completed":
        raise EsignRefused(f"envelope: status is {env.status!r}, not 'completed': the contract is not signed")
    events = []
    for n, e in enumerate(events_doc.auditEvents):
        fields = {f.name: f.value or "" for f in e.eventFields}
        where = f"audit events: auditEvents.{n}"
        if "logTime" not in fields or "Action" not in fields:
            raise EsignRefused(f"{where}: an event without logTime or Action (not DocuSign's audit events)")
        ip = _ip(fields.get("ClientIPAddress"), f"{where}.ClientIPAddress")
        events.append(EsignEvent(_time_ms(fields["logTime"], f"{where}.logTime"), _clip(fields.get("UserName")),
                                 _clip(fields["Action"]), ip, _clip(fields.get("Message"))))
    signers = []
    for n, s in enumerate(env.recipients.signers):
        if s.status.lower() != "completed" or s.signedDateTime is None:
            raise EsignRefused(f"envelope: recipients.signers.{n} ({s.name}) has status {s.status!r}: not signed")
        signed = [e for e in events if e.action == "Signed" and e.actor == s.name]
        signers.append(Signer(s.name, s.email, _time_ms(s.signedDateTime, f"envelope: signers.{n}.signedDateTime"),
                              signed[-1].ip if signed else None))
    completed = None if env.completedDateTime is None else _time_ms(env.completedDateTime,
                                                                    "envelope: completedDateTime")
    return Evidence("docusign", env.envelopeId, tuple(signers), tuple(events), completed)


# ---------------------------------------------------------------- signNow


class _SnEvent(_Lenient):
    document_id: str = Field(min_length=1, max_length=200)
    email: str = Field(default="", max_length=MAX_TEXT)
    event: str = Field(min_length=1, max_length=MAX_TEXT)
    created: int | str
    ip_address: str | None = None
    client_app_name: str | None = None


def _is_signing(event: str) -> bool:
    return "sign" in event.lower() and "invite" not in event.lower() and "request" not in event.lower()


def signnow(history: bytes) -> Evidence:
    raw = load_json(history, "document history")
    if not isinstance(raw, list) or not raw:
        raise EsignRefused("document history: not a list of events (signNow's GET /document/{id}/historyfull)")
    events: list[EsignEvent] = []
    signers: list[Signer] = []
    documents: set[str] = set()
    for n, item in enumerate(raw):
        e = _model(_SnEvent, item, f"document history: {n}")
        where = f"document history: {n}"
        try:
            at = int(e.created) * 1000
        except ValueError:
            raise EsignRefused(f"{where}.created: {str(e.created)[:40]!r} is not Unix seconds") from None
        ip = _ip(e.ip_address, f"{where}.ip_address")
        documents.add(e.document_id)
        events.append(EsignEvent(at, _clip(e.email), _clip(e.event), ip, _clip(e.client_app_name)))
        if _is_signing(e.event) and e.email and e.email not in {s.email for s in signers}:
            signers.append(Signer(e.email, e.email, at, ip))
    if len(documents) != 1:
        raise EsignRefused(f"document history: events of {len(documents)} documents: export one document's history")
    return _finish("signnow", documents.pop(), signers, events, "document history")


# ---------------------------------------------------------------- Adobe Acrobat Sign

_ADOBE_SIGNING = ("ESIGNED", "DIGSIGNED", "SIGNED")


class _AdobeEvent(_Lenient):
    type: str = Field(min_length=1, max_length=100)
    date: str
    actingUserEmail: str = Field(default="", max_length=MAX_TEXT)
    actingUserName: str = Field(default="", max_length=MAX_TEXT)
    actingUserIpAddress: str | None = None
    participantEmail: str = Field(default="", max_length=MAX_TEXT)
    participantRole: str = ""
    description: str = ""


class _AdobeEvents(_Lenient):
    events: list[_AdobeEvent] = Field(min_length=1)


def adobe_sign(events_json: bytes, agreement_id: str) -> Evidence:
    """`agreement_id`: the agreement the events are of (the export itself does not name it)."""
    doc = _model(_AdobeEvents, load_json(events_json, "agreement events"), "agreement events")
    events: list[EsignEvent] = []
    signers: list[Signer] = []
    completed = None
    for n, e in enumerate(doc.events):
        where = f"agreement events: events.{n}"
        at = _time_ms(e.date, f"{where}.date")
        ip = _ip(e.actingUserIpAddress, f"{where}.actingUserIpAddress")
        events.append(EsignEvent(at, _clip(e.actingUserEmail), e.type, ip, _clip(e.description)))
        signing = e.type in _ADOBE_SIGNING or (e.type == "ACTION_COMPLETED" and e.participantRole == "SIGNER")
        email = e.participantEmail or e.actingUserEmail
        if signing and email and email not in {s.email for s in signers}:
            signers.append(Signer(e.actingUserName or email, email, at, ip))
        if e.type == "AGREEMENT_COMPLETED":
            completed = at
    return _finish("adobe_sign", agreement_id, signers, events, "agreement events", completed)


def _finish(platform: Platform, envelope: str, signers: Sequence[Signer], events: Sequence[EsignEvent], what: str,
            completed: int | None = None) -> Evidence:
    if not signers:
        raise EsignRefused(f"{what}: no signing event: this is not the evidence of a signed document")
    last = max(s.signed_at_ms for s in signers)
    return Evidence(platform, envelope, tuple(signers), tuple(sorted(events, key=lambda e: e.at_ms)),
                    completed if completed is not None else last)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
