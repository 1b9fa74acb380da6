"""A real SMTP server (aiosmtpd) on a free loopback port that requires STARTTLS before AUTH, with a self-signed
certificate for 127.0.0.1 (`ca_file`, for the client to trust), recording every message it accepts."""

from __future__ import annotations

import email
import ssl
import tempfile
import threading
from email.message import Message
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from simulators.broker import free_port
from tests.certs import self_signed

HOST = "127.0.0.1"




class FakeSmtp:
    """Accepts mail only over STARTTLS and after AUTH as `user`/`password`; `messages` and `recipients` hold
    what arrived, in order. `stop()` also removes the certificate."""

    def __init__(self, user: str, password: str) -> None:
        self._credentials = (user.encode(), password.encode())
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="lw-smtp-")
        self.ca_file, key = self_signed(Path(self._dir.name))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.ca_file, key)
        self.host, self.port = HOST, free_port()
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            tls_context=tls,
            require_starttls=True,
            authenticator=self._authenticate,
            auth_require_tls=True,
            auth_required=True,
        )

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._dir.cleanup()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == self._credentials
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.original_content))
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"
