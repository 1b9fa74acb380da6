"""A contact's channel as a ticket sink: an escalation notice is a comment on the incident's ticket, sent through
the same e-mail, webhook and PagerDuty sinks (and their protocol rules) that carry tickets to vendors."""

from __future__ import annotations

from urllib.parse import urlsplit

from collector.ticketing.base import TicketSink
from collector.ticketing.email import EmailTicketSink
from collector.ticketing.pagerduty import PagerDutyTicketSink
from collector.ticketing.webhook import WebhookTicketSink
from linewarden.config.collector import EscalationConfig
from linewarden.config.contacts import Contact
from linewarden.config.contract import EmailSink, PagerDutySink, WebhookSink
from linewarden.errors import TicketRejected


def address(contact: Contact, channel: str) -> str:
    """What a notification addressed, for the record: never a secret."""
    if channel == "email":
        return contact.email or ""
    if channel == "webhook":
        return urlsplit(contact.webhook_url or "").netloc
    return "pagerduty"


def channel_sink(contact: Contact, channel: str, config: EscalationConfig) -> TicketSink:
    """The sink reaching `contact` on `channel`. Raises TicketRejected when it cannot be built (no SMTP server
    configured, a secret missing): retrying will not help."""
    if channel == "email":
        smtp = config.email
        if smtp is None or contact.email is None:
            raise TicketRejected("escalation.email (the SMTP server) is not configured")
        return EmailTicketSink(EmailSink(
            kind="email", host=smtp.host, port=smtp.port, starttls=smtp.starttls, ca_file=smtp.ca_file,
            username=smtp.username, password=smtp.password, sender=smtp.sender, to=[contact.email],
        ))
    if channel == "webhook":
        if contact.webhook_url is None or contact.webhook_secret is None:
            raise TicketRejected(f"contact {contact.id} has no webhook")
        return WebhookTicketSink(WebhookSink(kind="webhook", url=contact.webhook_url, secret=contact.webhook_secret))
    if contact.pagerduty_routing_key is None:
        raise TicketRejected(f"contact {contact.id} has no pagerduty_routing_key")
    return PagerDutyTicketSink(PagerDutySink(
        kind="pagerduty", events_url=config.pagerduty_events_url, routing_key=contact.pagerduty_routing_key,
    ))
