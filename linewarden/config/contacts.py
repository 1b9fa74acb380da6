"""The escalation contacts directory (docs/vendor-readback-and-escalation.md): named people per vendor and per
plant site, how to reach them, and who of them is on call for each escalation level when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from linewarden.config.pydantic_base import ConfigId, PositiveDuration, SecretField, StrictModel

Channel = Literal["email", "webhook", "pagerduty"]
PARTY = r"^(vendor|plant):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# A Monday, midnight UTC: rotations count whole turns from here unless a rota says otherwise.
ROTATION_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give the time with its offset, e.g. 2026-01-05T08:00:00+01:00")
    return value


class Contact(StrictModel):
    id: ConfigId
    name: str = Field(min_length=1, max_length=200)
    party: str = Field(pattern=PARTY, description="'vendor:<vendor id>' or 'plant:<site>'")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook_url: str | None = Field(default=None, pattern=r"^https?://.+")
    webhook_secret: SecretField | None = None
    pagerduty_routing_key: SecretField | None = Field(default=None, description="the contact's PagerDuty service key")
    channels: list[Channel] = Field(min_length=1, description="every listed channel is notified")

    @model_validator(mode="after")
    def _addresses(self) -> Contact:
        needs = {"email": self.email, "webhook": self.webhook_url, "pagerduty": self.pagerduty_routing_key}
        for channel in self.channels:
            if needs[channel] is None:
                address = {"email": "email", "webhook": "webhook_url", "pagerduty": "pagerduty_routing_key"}[channel]
                raise ValueError(f"channel {channel!r} needs {address}")
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise ValueError("webhook_url and webhook_secret go together")
        return self


class Shift(StrictModel):
    """Part of a rota: the contacts taking turns (every `rotate_every` from `rotation_start`) while `calendar`
    is open (`when = "open"`) or closed (`"closed"`: nights, weekends and holidays of that calendar)."""

    contacts: list[ConfigId] = Field(min_length=1)
    calendar: str = Field(default="24x7", description="'24x7', 'production', or a calendar id")
    when: Literal["open", "closed"] = "open"
    rotate_every: PositiveDuration = timedelta(days=7)
    rotation_start: Annotated[datetime, AfterValidator(_aware)] = ROTATION_EPOCH


class Rota(StrictModel):
    party: str = Field(pattern=PARTY)
    level: Annotated[int, Field(ge=1, le=20)]
    shifts: list[Shift] = Field(min_length=1)


class ContactsConfig(StrictModel):
    contact: list[Contact] = Field(default_factory=list)
    rota: list[Rota] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ContactsConfig:
        ids = [c.id for c in self.contact]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"contact id {dup!r} is used twice")
        known = {c.id: c for c in self.contact}
        seen: set[tuple[str, int]] = set()
        for n, rota in enumerate(self.rota):
            if (rota.party, rota.level) in seen:
                raise ValueError(f"rota[{n}]: a second rota for {rota.party} level {rota.level}")
            seen.add((rota.party, rota.level))
            for s, shift in enumerate(rota.shifts):
                for cid in shift.contacts:
                    if cid not in known:
                        raise ValueError(f"rota[{n}].shifts[{s}]: no contact {cid!r}")
                    if known[cid].party != rota.party:
                        raise ValueError(f"rota[{n}].shifts[{s}]: {cid!r} is {known[cid].party}'s, not {rota.party}'s")
        return self
