"""An MQTT 3.1.1 broker inside the demo's process (amqtt), on a free loopback port, for a machine without one.

amqtt runs on the caller's event loop; the agent's and the collector's paho clients reach it over TCP like any
other broker. Only anonymous access is enabled (no $SYS publisher, no packet logging) and amqtt's own logging is
held at ERROR: a client vanishing mid-demo makes it log tracebacks that mean nothing to a reader.
"""

from __future__ import annotations

import logging
from typing import Any

from linewarden.errors import SimulatorError
from simulators.broker import free_port

_QUIET = ("amqtt", "transitions")


class EmbeddedBroker:
    """`await start()`, then `host`/`port`; `await stop()` closes every session and the listener."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Any = None

    async def start(self) -> None:
        from amqtt.broker import Broker  # only the demo needs amqtt (the `demo` extra)

        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.ERROR)
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        try:
            await broker.start()
        except Exception as exc:  # amqtt wraps every start failure (port taken, bad config) in its BrokerError
            raise SimulatorError(f"embedded MQTT broker did not start on {self.host}:{self.port}: {exc}") from exc
        self._broker = broker

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
