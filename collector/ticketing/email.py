"""E-mail sink: SMTP submission (RFC 6409) with STARTTLS (RFC 3207) and AUTH (RFC 4954), via smtplib.

The subject carries the ticket id (`[LW <incident id>]`), and the Message-ID of the first mail is derived from
it; later steps reply to it (In-Reply-To, References), so the vendor's desk threads them into one ticket.
Mail cannot be looked up, so a create whose answer was lost is sent again with the same Message-ID, which
mail systems use to drop the duplicate. smtplib blocks, so each send runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

from collector.ticketing.base import Ticket, TicketSink, VendorRef, reveal
from linewarden.config.contract import EmailSink
from linewarden.errors import TicketError, TicketRejected

SMTP_TIMEOUT_S = 60.0


def subject_tag(ticket: Ticket) -> str:
    return f"[LW {ticket.idempotency_key}]"


class EmailTicketSink(TicketSink):
    kind: ClassVar[str] = "email"

    def __init__(self, config: EmailSink) -> None:
        self._config = config
        self._password = reveal(config.password, "smtp password") if config.password else None
        self._tls = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        self._domain = config.sender.rpartition("@")[2] or "linewarden.invalid"

    def _message_id(self, ticket: Ticket, step: str) -> str:
        return f"<{step}.{ticket.idempotency_key}@{self._domain}>"

    def _message(self, ticket: Ticket, step: str, subject: str, text: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._config.sender
        msg["To"] = ", ".join(self._config.to)
        msg["Subject"] = f"{subject_tag(ticket)} {subject}"
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = self._message_id(ticket, step)
        msg["X-Linewarden-Idempotency-Key"] = ticket.idempotency_key
        if step != "created":
            msg["In-Reply-To"] = msg["References"] = self._message_id(ticket, "created")
        lines = [text, "", f"Contract: {ticket.contract_id}", f"Asset: {ticket.asset}"]
        lines += [f"Severity: {ticket.severity.value}", f"Ticket: {ticket.idempotency_key}"]
        lines += [f"{link.text}: {link.url}" for link in ticket.links]
        msg.set_content("\n".join(lines))
        return msg

    def _deliver(self, msg: EmailMessage) -> None:
        cfg = self._config
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=SMTP_TIMEOUT_S) as smtp:
                smtp.ehlo()
                if cfg.starttls:
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if cfg.username is not None and self._password is not None:
                    smtp.login(cfg.username, self._password)
                smtp.send_message(msg)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError, smtplib.SMTPRecipientsRefused) as exc:
            raise TicketRejected(f"email: {cfg.host}:{cfg.port}: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TicketError(f"email: {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}") from exc

    async def _send(self, msg: EmailMessage) -> None:
        await asyncio.to_thread(self._deliver, msg)

    async def create(self, ticket: Ticket) -> VendorRef:
        msg = self._message(ticket, "created", f"{ticket.severity.value} {ticket.title}", ticket.description)
        await self._send(msg)
        return VendorRef(self._message_id(ticket, "created"), subject_tag(ticket))

    async def update(self, ref: VendorRef, ticket: Ticket) -> None:
        subject = f"Severity raised to {ticket.severity.value}: {ticket.title}"
        await self._send(self._message(ticket, f"severity-{ticket.severity.value}", subject, ticket.description))

    async def comment(self, ref: VendorRef, ticket: Ticket, text: str) -> None:
        # Each comment needs its own Message-ID, and a re-sent one the same: derive it from the text.
        step = f"comment-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        await self._send(self._message(ticket, step, f"Re: {ticket.title}", text))

    async def resolve(self, ref: VendorRef, ticket: Ticket, note: str) -> None:
        await self._send(self._message(ticket, "resolved", f"Resolved: {ticket.title}", note or "Resolved."))

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP connection."""
