"""The console's exceptions: all are LinewardenError, so the CLI reports them as one line."""

from __future__ import annotations

from linewarden.errors import LinewardenError


class ConsoleError(LinewardenError):
    """A console request or user command that cannot be done (the message says why)."""


class NotAllowed(ConsoleError):
    """The user's role or scope does not allow this."""
